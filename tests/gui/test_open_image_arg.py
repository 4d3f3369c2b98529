"""`segstudio IMAGE` (a file manager's "Open with", the .desktop file's %f) opens the image's
folder on that image."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

from segstudio import app as app_mod
from segstudio.gui import screenshot

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"


def test_an_image_path_opens_its_folder_on_it(qapp, tmp_path, monkeypatch):
    folder = tmp_path / "imgs"
    shutil.copytree(SAMPLES, folder)
    seen = {}

    def fake_take(app, win, out, image_name=None):
        seen["folder"] = Path(win.project.folder)
        seen["image"] = image_name
        win.close()  # as the real take does: a window left open takes later tests' mouse events
        return 0
    monkeypatch.setattr(screenshot, "take", fake_take)
    args = SimpleNamespace(folder=str(folder / "hopper.jpg"), project=None, allow_large=False,
                           screenshot=str(tmp_path / "x.png"), image=None)
    assert app_mod.run_gui(args) == 0
    assert seen == {"folder": folder, "image": "hopper.jpg"}
    assert not (SAMPLES / ".segstudio").exists()  # the bundled samples were not opened


def test_a_stack_path_opens_its_folder_on_its_first_frame(qapp, tmp_path, monkeypatch):
    import numpy as np
    import tifffile
    folder = tmp_path / "stacks"
    folder.mkdir()
    tifffile.imwrite(folder / "z.tif", np.zeros((4, 16, 20), np.uint16), photometric="minisblack")
    seen = {}

    def fake_take(app, win, out, image_name=None):
        seen["image"] = image_name
        win.close()
        return 0
    monkeypatch.setattr(screenshot, "take", fake_take)
    args = SimpleNamespace(folder=str(folder / "z.tif"), project=None, allow_large=False,
                           screenshot=str(tmp_path / "x.png"), image=None)
    assert app_mod.run_gui(args) == 0
    assert seen == {"image": "z.tif/000000"}
