"""Every editing tool, in toolbar order, and the icons of the toolbar and menus.

The icons are SVG files in `resources/icons/` (Lucide, ISC licence: resources/icons/README.md),
installed as `segstudio/resources/icons/` by a wheel. They draw with `currentColor`: black on a
light palette, the palette's text colour on a dark one.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

from PySide6.QtCore import QStandardPaths
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPalette

from segstudio.editing.assist_tools import BoxGrabCutTool, ClickObjectTool, PromptTool, WatershedTool
from segstudio.editing.tools import BrushTool, EraserTool, LassoTool, PolygonTool, SelectTool, WandTool

TOOLS = [SelectTool, BrushTool, EraserTool, PolygonTool, LassoTool, WandTool, BoxGrabCutTool,
         ClickObjectTool, WatershedTool, PromptTool]

# tool name -> icon file (resources/icons/NAME.svg)
TOOL_ICONS = {"select": "mouse-pointer-2", "brush": "paintbrush", "eraser": "eraser", "polygon": "pentagon",
              "lasso": "lasso", "wand": "wand-sparkles", "grabcut": "square-dashed-mouse-pointer",
              "refine": "mouse-pointer-click", "watershed": "droplets", "prompt": "sparkles"}
APP_ICON = "segstudio"  # the application's own icon (resources/icons/segstudio.svg), in colour


def icons_dir() -> Path:
    """`segstudio/resources/icons` where segstudio is installed (a wheel: setup.py maps the top-level
    `resources/` there), else `resources/icons` beside the package (a source checkout, an editable
    install, the PyInstaller bundle) — the order segstudio.app.resources_dir() looks in."""
    pkg = Path(__file__).resolve().parent.parent  # .../segstudio
    for d in (pkg / "resources" / "icons", pkg.parent / "resources" / "icons"):
        if d.is_dir():
            return d
    return pkg / "resources" / "icons"


@functools.lru_cache(maxsize=1)
def _icons_dir_once() -> Path:
    return icons_dir()


def icon_path(name: str) -> Path:
    return _icons_dir_once() / f"{name}.svg"


def _text_color() -> QColor:
    if QGuiApplication.instance() is None:
        return QColor(0, 0, 0)
    return QGuiApplication.palette().color(QPalette.ColorRole.WindowText)


@functools.lru_cache(maxsize=None)
def _recoloured_dir(color: str) -> Path:
    """Where the icons drawn in `color` go: the user's cache folder (reused by the next start),
    else a temporary folder."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.CacheLocation)
    try:
        if not base:
            raise OSError("no cache folder")
        d = Path(base) / "icons" / color.lstrip("#")
        d.mkdir(parents=True, exist_ok=True)
        return d
    except OSError:
        return Path(tempfile.mkdtemp(prefix="segstudio-icons-"))


@functools.lru_cache(maxsize=None)
def _icon(name: str, color: str | None) -> QIcon:
    p = icon_path(name)
    if not p.is_file():
        return QIcon()  # an install without its icons: the actions keep their text
    if color is not None:  # a dark theme: a copy drawn in the text colour
        try:
            q = _recoloured_dir(color) / p.name
            part = q.with_name(f"{q.name}.{os.getpid()}.part")  # another segstudio may be reading q
            part.write_text(p.read_text(encoding="utf-8").replace("currentColor", color), encoding="utf-8")
            os.replace(part, q)
            p = q
        except OSError:
            pass  # black icons on a dark theme beat none
    # Qt's SVG icon engine renders each size when it is first asked for: a window with fifty icons
    # starts without rendering any of them
    return QIcon(str(p))


def icon(name: str, black: bool = False) -> QIcon:
    """The icon `resources/icons/NAME.svg` (a null QIcon when the file is missing). Qt draws
    `currentColor` black, right for a light palette; on a dark one the icon is drawn in the
    palette's text colour instead, unless `black` (the icon sits on a light background of its
    own). Needs a QGuiApplication."""
    c = _text_color()
    return _icon(name, None if black or c.lightnessF() < 0.5 else c.name())


def app_icon() -> QIcon:
    """The application icon as drawn (its own colours), from the SVG file."""
    p = icon_path(APP_ICON)
    return QIcon(str(p)) if p.is_file() else QIcon()


def set_window_icon(win) -> None:
    """The application icon on a main window, and on the application while it has none (dialogs, the task bar)."""
    from PySide6.QtGui import QGuiApplication
    win.setWindowIcon(app_icon())
    app = QGuiApplication.instance()
    if isinstance(app, QGuiApplication) and app.windowIcon().isNull():
        app.setWindowIcon(win.windowIcon())
