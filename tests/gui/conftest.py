import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings  # noqa: E402


@pytest.fixture(autouse=True)
def collect_on_the_gui_thread():
    """As the app does (gui/gc_guard.py): no cycle collection on worker threads, where freeing a
    Qt object deadlocks; collect here, on the main thread, after each test."""
    import gc
    was = gc.isenabled()
    gc.disable()
    yield
    gc.collect()
    if was:
        gc.enable()


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path):
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    yield


@pytest.fixture
def gui_folder(tmp_path):
    import cv2
    from PIL import Image
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(3):
        img = np.zeros((120, 160, 3), np.uint8)
        img[:] = (40, 110, 40)
        cv2.circle(img, (80, 60), 25, (220, 60, 60), -1)
        img = (img + np.random.default_rng(i).integers(0, 10, img.shape)).astype(np.uint8)
        Image.fromarray(img).save(d / f"photo{i}.png")
    return d


def open_window(qtbot, folder, class_name="object", size=(1200, 800)):
    """A shown main window over `folder` with one class, its first image open."""
    from segstudio.core.project import Project
    from segstudio.gui.main_window import MainWindow
    from segstudio.gui.settings import app_settings
    project = Project.open(folder)
    project.store.add_class(class_name)
    win = MainWindow(project, app_settings())
    qtbot.addWidget(win)
    win.resize(*size)
    win.show()
    win.open_first()
    qtbot.waitUntil(lambda: win.editor.doc is not None, timeout=10000)
    return win


@pytest.fixture
def window(qtbot, gui_folder):
    win = open_window(qtbot, gui_folder)
    yield win
    if win.isVisible():
        win.close()
