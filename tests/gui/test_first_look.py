"""First run and look: icons on the actions, the getting-started strip, instance colours, and errors
shown in the window (a broken image, a failed export)."""

import re
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QImage

from tests.gui.conftest import open_window

ROOT = Path(__file__).resolve().parents[2]


def _opaque_pixels(ic, size=24) -> int:
    img = ic.pixmap(size, size).toImage().convertToFormat(QImage.Format.Format_ARGB32)
    a = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine() // 4, 4)
    return int((a[..., 3] > 0).sum())


# ---------------------------------------------------------------- icons
def test_every_icon_the_window_uses_is_there_and_renders(window):
    from PySide6.QtWidgets import QToolButton

    from segstudio.gui.toolbox import TOOL_ICONS, app_icon, icon, icons_dir
    src = "".join((ROOT / "segstudio" / "gui" / f).read_text()
                  for f in ("main_window.py", "window_menus.py", "notices.py"))
    names = set(re.findall(r'icon_name="([a-z0-9-]+)"', src)) | set(re.findall(r'icon\("([a-z0-9-]+)"', src))
    names |= set(TOOL_ICONS.values())
    assert len(names) > 30
    for n in sorted(names):
        assert (icons_dir() / f"{n}.svg").is_file(), n
        assert _opaque_pixels(icon(n)) > 10, f"{n}.svg renders empty"  # Qt's SVG plugin draws it offscreen
    assert _opaque_pixels(app_icon(), 64) > 1000
    assert not window.windowIcon().isNull()
    # every tool, undo/redo, open, export and save carry an icon, in the toolbar and the menus
    for a in [*window.tool_actions.values(), window.undo_action, window.redo_action, window.open_action,
              window.export_action, window.save_action, window.instances_action]:
        assert not a.icon().isNull(), a.text()
    shown = [window.toolbar.widgetForAction(a) for a in window.tool_actions.values()]
    assert all(isinstance(b, QToolButton) and not b.icon().isNull() for b in shown)
    assert window.toolbar.widgetForAction(window.undo_action) is not None


def test_icons_on_a_dark_palette_are_drawn_light(qapp, tmp_path, monkeypatch):
    import segstudio.gui.toolbox as toolbox
    monkeypatch.setattr(toolbox, "_recoloured_dir", lambda _color: tmp_path)  # not the user's cache folder
    ic = toolbox._icon.__wrapped__("paintbrush", "#e6e6e6")  # type: ignore[attr-defined]
    assert (tmp_path / "paintbrush.svg").is_file() and not list(tmp_path.glob("*.part"))
    img = ic.pixmap(24, 24).toImage().convertToFormat(QImage.Format.Format_ARGB32)
    a = np.frombuffer(img.constBits(), np.uint8).reshape(24, img.bytesPerLine() // 4, 4)
    drawn = a[a[..., 3] == 255]
    assert len(drawn) and drawn[:, :3].min() > 150  # BGRA: light, not Qt's black for currentColor


def test_icons_have_their_licence_and_are_package_data():
    d = ROOT / "resources" / "icons"
    if not d.is_dir():
        pytest.skip("an installed copy without the source tree")
    readme = (d / "README.md").read_text()
    assert "Lucide" in readme and "ISC" in readme and "`lucide` **1.1.4**" in readme
    assert "Permission to use, copy, modify" in (d / "LICENSE.lucide").read_text()
    desktop = (ROOT / "packaging" / "segstudio.desktop").read_text()
    for line in ("Exec=segstudio %f", "Icon=segstudio", "Categories=Graphics;Science;", "MimeType=image/png;"):
        assert line in desktop


def test_icons_dir_prefers_installed_package_data(tmp_path, monkeypatch):
    import segstudio.gui.toolbox as toolbox
    pkg = tmp_path / "site" / "segstudio"
    (pkg / "resources" / "icons").mkdir(parents=True)
    (pkg / "gui").mkdir()
    monkeypatch.setattr(toolbox, "__file__", str(pkg / "gui" / "toolbox.py"))
    assert toolbox.icons_dir() == pkg / "resources" / "icons"  # a wheel
    src = tmp_path / "checkout"
    (src / "segstudio" / "gui").mkdir(parents=True)
    (src / "resources" / "icons").mkdir(parents=True)
    monkeypatch.setattr(toolbox, "__file__", str(src / "segstudio" / "gui" / "toolbox.py"))
    assert toolbox.icons_dir() == src / "resources" / "icons"  # a source checkout


# ---------------------------------------------------------------- getting started
def _samples_window(qtbot, tmp_path):
    from segstudio.app import open_samples, sample_images
    from segstudio.gui.main_window import MainWindow
    from segstudio.gui.settings import app_settings
    if not sample_images():
        pytest.skip("no bundled samples in this install")
    project = open_samples(tmp_path / "samples.db")
    win = MainWindow(project, app_settings())
    qtbot.addWidget(win)
    win.show()
    return win


def test_getting_started_shows_with_no_folder_hides_on_close_and_stays_hidden(qtbot, tmp_path):
    from PySide6.QtCore import Qt

    from segstudio.gui.notices import GETTING_STARTED_KEY
    from segstudio.gui.settings import app_settings, get_bool
    win = _samples_window(qtbot, tmp_path)
    strip = win.getting_started
    assert strip.isVisible()
    text = strip.text.text()
    for keys in ("Ctrl+O", "Ctrl+Enter", "<b>W</b>", "<b>1</b>"):
        assert keys in text
    # the shortcuts it names are the window's
    assert "Ctrl+O" in win.open_action.shortcut().toString()
    qtbot.mouseClick(strip.close_button, Qt.MouseButton.LeftButton)
    assert not strip.isVisible()
    assert get_bool(app_settings(), GETTING_STARTED_KEY, False)
    win.close()
    win.project.close()
    again = _samples_window(qtbot, tmp_path)  # the next start
    assert not again.getting_started.isVisible()
    again.show_getting_started()  # Help › Getting started
    assert again.getting_started.isVisible()
    again.close()
    again.project.close()


def test_getting_started_not_shown_on_a_folder_after_the_first_run(qtbot, gui_folder):
    from segstudio.gui.settings import app_settings
    s = app_settings()
    s.setValue("last_folder", "/somewhere/else")
    s.sync()
    win = open_window(qtbot, gui_folder)
    assert not win.getting_started.isVisible()
    win.close()


# ---------------------------------------------------------------- instance colours
def _touching_pair(win):
    doc = win.editor.doc
    cid = win.editor.current_class_id
    a = np.ones((20, 20), bool)
    r1 = doc.new_region(cid, a, 20, 20)
    r2 = doc.new_region(cid, a, 40, 20)  # shares the edge x = 40
    return r1, r2


def _overlay_rgba(win, x, y):
    return win.canvas.overlay.qimage.pixel(x, y)


def test_instance_colours_tell_touching_regions_of_one_class_apart(window, qtbot):
    from segstudio.gui.settings import app_settings, get_bool
    win = window
    r1, r2 = _touching_pair(win)
    assert r1.class_id == r2.class_id and r1.id != r2.id
    assert not win.instances_action.isChecked()
    assert _overlay_rgba(win, 39, 30) == _overlay_rgba(win, 40, 30) != 0  # off: one colour per class
    win.instances_action.trigger()
    assert win.instances_action.isChecked()
    c1, c2 = _overlay_rgba(win, 39, 30), _overlay_rgba(win, 40, 30)
    assert c1 != c2 and c1 != 0 and c2 != 0
    assert get_bool(app_settings(), "view/instance_colours", False)
    # deterministic: a repaint gives each region the same shade
    win.canvas.overlay.rebuild()
    assert (_overlay_rgba(win, 39, 30), _overlay_rgba(win, 40, 30)) == (c1, c2)
    # a brush stroke on one repaints only its box, in its own shade
    win.canvas.overlay.refresh((35, 25, 45, 35))
    assert (_overlay_rgba(win, 39, 30), _overlay_rgba(win, 40, 30)) == (c1, c2)
    win.instances_action.trigger()
    assert _overlay_rgba(win, 39, 30) == _overlay_rgba(win, 40, 30)


def test_instance_colours_option_is_remembered(qtbot, gui_folder):
    win = open_window(qtbot, gui_folder)
    win.instances_action.trigger()
    win.close()
    win2 = open_window(qtbot, gui_folder, class_name="another")
    assert win2.instances_action.isChecked() and win2.canvas.overlay.instances
    r1, r2 = _touching_pair(win2)
    assert _overlay_rgba(win2, 39, 30) != _overlay_rgba(win2, 40, 30)
    win2.close()


def test_shades_stay_within_the_palette_with_many_classes(qapp):
    from segstudio.core.classes import LabelClass
    from segstudio.gui.overlay import OverlayItem, shade
    ov = OverlayItem()
    ov.set_instances(True)
    for n in (1, 3, 31, 32, 127, 128, 300):
        ov.set_classes([LabelClass(i + 1, f"c{i}", (200, 40, 40)) for i in range(n)])
        assert max(ov.index_of.values()) + ov.shades - 1 <= 255
        assert len(ov._color_table()) == 256
    assert ov.shades == 1  # 300 classes: no room for shades, one entry per class as before
    base = (230, 25, 75)
    shades = [shade(base, k) for k in range(8)]
    assert shades[0] == base and len(set(shades)) == 8
    for rgb in [(255, 255, 255), (0, 0, 0), (128, 128, 128)]:  # extremes still give distinct shades
        assert len({shade(rgb, k) for k in range(8)}) >= 6


# ---------------------------------------------------------------- errors in the window
def test_broken_image_is_shown_in_the_window_and_the_folder_still_works(qtbot, gui_folder):
    (gui_folder / "zz-broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00garbage" * 50)  # a JPEG header, no image
    win = open_window(qtbot, gui_folder)
    store = win.project.store
    broken = next(r for r in store.images() if r.path == "zz-broken.jpg")
    good = next(r for r in store.images() if r.path != "zz-broken.jpg")
    win.open_image(broken.id)
    qtbot.waitUntil(lambda: win.image_notice.isVisible(), timeout=10000)
    assert "Cannot open zz-broken.jpg" in win.statusBar().currentMessage()
    text = win.image_notice.text.text()
    assert "zz-broken.jpg" in text and "next image" in text and "segstudio check" in text
    assert win.editor.doc is None
    assert store.image(broken.id).error  # stored on its image: the Files list marks it
    win.open_image(good.id)
    qtbot.waitUntil(lambda: win.editor.doc is not None and win.editor.doc.image_id == good.id, timeout=10000)
    assert not win.image_notice.isVisible()
    win.close()


def test_failed_export_says_what_to_do_and_can_run_again(window, qtbot, monkeypatch, tmp_path):
    import segstudio.gui.dialogs as dialogs

    def boom(*_a, **_k):
        raise PermissionError(13, "Permission denied", str(tmp_path / "out"))

    monkeypatch.setattr(dialogs, "run_export", boom)
    dlg = window.export_dialog()
    dlg.status_boxes["new"].setChecked(True)  # images to export: Run again stays enabled only then
    dlg.out.setText(str(tmp_path / "out" / "annotations.json"))
    dlg.run()
    qtbot.waitUntil(lambda: dlg.report.toPlainText().startswith("Failed"), timeout=10000)
    report = dlg.report.toPlainText()
    assert "PermissionError" in report and "Permission denied" in report and "What to do" in report
    assert dlg.run_button.isVisible() and dlg.run_button.isEnabled()
    dlg.close()
