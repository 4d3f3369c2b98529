"""segstudio.editing runs without Qt and without torch (its import-linter contract checks the
imports; this checks what importing every one of its modules actually loads)."""

import subprocess
import sys


def test_importing_the_editing_package_loads_no_qt_and_no_torch():
    code = ("import pkgutil, sys, importlib, segstudio.editing as e\n"
            "for m in pkgutil.iter_modules(e.__path__):\n"
            "    importlib.import_module('segstudio.editing.' + m.name)\n"
            "print(sorted(n for n in ('PySide6', 'pyqtgraph', 'torch', 'torchvision') if n in sys.modules))\n"
            "print(len([m for m in sys.modules if m.startswith('segstudio.editing.')]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded, count = out.stdout.split("\n")[:2]
    assert loaded == "[]"
    assert int(count) >= 6  # editor, tools, box_drag, prompt_tool, assist_tools, classical
