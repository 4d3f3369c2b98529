"""The window never loses a stroke when the store refuses a write: the edits stay in memory,
are retried, the user is told, and closing asks before anything is discarded."""

import errno

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from segstudio.core.store import StoreError
from tests.gui.test_window import drag, key

LOCKED = "the project database /p/project.db is locked by another process (database is locked)"
FAILURES = {
    "locked": (StoreError(LOCKED), LOCKED),
    "disk full": (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
}


@pytest.fixture(autouse=True)
def never_block(monkeypatch):
    """pytest-qt closes the window before fixtures are torn down, maybe with the store still
    failing: the close question must then not wait on a real dialog. Tests that look at the
    question patch it again (`_answers`)."""
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: QMessageBox.StandardButton.Discard)


class BrokenStore:
    """Makes the store's region writes raise until `fix()` is called."""

    def __init__(self, store, monkeypatch, error):
        self.store, self.error, self.broken, self.calls = store, error, True, 0
        real = store.save_regions

        def save_regions(*args, **kw):
            self.calls += 1
            if self.broken:
                raise self.error
            return real(*args, **kw)

        monkeypatch.setattr(store, "save_regions", save_regions)

    def fix(self):
        self.broken = False


def paint(qtbot, win, y=20):
    win.set_tool("brush")
    win.brush_spin.setValue(4)
    drag(qtbot, win, [(20, y), (40, y), (60, y + 10)])
    doc = win.editor.doc
    rid = max(doc.regions)
    return doc.image_id, rid, doc.regions[rid].area


@pytest.mark.parametrize("failure", list(FAILURES))
def test_failed_save_keeps_the_edits_across_switching_and_writes_them_later(window, qtbot, monkeypatch,
                                                                            failure):
    win = window
    store = win.project.store
    error, reason = FAILURES[failure]
    broken = BrokenStore(store, monkeypatch, error)
    first, rid, area = paint(qtbot, win)
    first_name = store.image(first).path
    assert store.image(first).status == "new"
    win.canvas.setFocus()
    key(win, Qt.Key.Key_D)  # next image: the switch flushes, the write fails
    qtbot.waitUntil(lambda: win.editor.doc is not None and win.editor.doc.image_id != first, timeout=5000)
    second = win.editor.doc.image_id
    assert broken.calls >= 1
    # the edits are held in memory, the user is told, the title keeps its unsaved mark
    assert store.region_count(first) == 0
    held = win.session.held[first]
    assert held.regions[rid].area == area and held.has_unsaved
    assert win.save_label.isVisible()
    assert win.save_label.text() == f"Could not save {first_name}: {reason}; retrying"
    assert "●" in win.windowTitle() and "not saved" in win.windowTitle()
    assert win.session.save_errors[first] == reason
    assert not win.session.flush()  # Ctrl+S does not pretend
    # a stroke on the second image fails too, and switching back shows the first one's stroke
    second_id, rid2, area2 = paint(qtbot, win, y=70)
    assert second_id == second
    key(win, Qt.Key.Key_A)
    qtbot.waitUntil(lambda: win.editor.doc.image_id == first, timeout=5000)
    assert win.editor.doc.regions[rid].area == area
    assert second in win.session.held and rid2 in win.session.held[second].regions
    assert store.region_count(first) == 0 and store.region_count(second) == 0
    assert "●" in win.windowTitle()
    # the store works again: the timer's retry writes both images, once each, and the mark clears
    broken.fix()
    qtbot.waitUntil(lambda: store.region_count(first) == 1 and store.region_count(second) == 1, timeout=20000)
    qtbot.waitUntil(lambda: "●" not in win.windowTitle(), timeout=5000)
    assert store.regions(first)[0].area == area and store.regions(second)[0].area == area2
    assert store.image(first).status == "in_progress" and store.image(second).status == "in_progress"
    assert not win.session.held and not win.session.save_errors and win.session.all_saved
    assert not win.save_label.isVisible()


def test_failed_autosave_keeps_the_current_document(window, qtbot, monkeypatch):
    win = window
    store = win.project.store
    broken = BrokenStore(store, monkeypatch, FAILURES["locked"][0])
    image_id, rid, area = paint(qtbot, win)
    qtbot.waitUntil(lambda: broken.calls >= 1 and image_id in win.session.save_errors, timeout=5000)
    assert win.editor.doc.has_unsaved and win.editor.doc.regions[rid].area == area
    assert "●" in win.windowTitle()
    broken.fix()
    qtbot.waitUntil(lambda: store.region_count(image_id) == 1, timeout=20000)
    qtbot.waitUntil(lambda: win.session.all_saved, timeout=5000)
    assert "●" not in win.windowTitle()


def _answers(monkeypatch, *answers, then=None):
    """Patch the close question: answer in turn, and record what was asked."""
    asked = []
    todo = list(answers)

    def warning(parent, title, text, *rest):
        asked.append(text)
        answer = todo.pop(0) if todo else B.Discard  # (the teardown's close, if still failing)
        if then is not None and not todo:
            then()
        return answer

    monkeypatch.setattr(QMessageBox, "warning", warning)
    return asked


B = QMessageBox.StandardButton


def test_close_after_a_failed_save_asks_and_cancel_keeps_everything(window, qtbot, monkeypatch):
    win = window
    store = win.project.store
    broken = BrokenStore(store, monkeypatch, FAILURES["disk full"][0])
    image_id, rid, area = paint(qtbot, win)
    name = store.image(image_id).path
    asked = _answers(monkeypatch, B.Cancel)
    assert win.close() is False
    assert len(asked) == 1 and name in asked[0] and "No space left on device" in asked[0]
    assert win.isVisible()
    assert win.editor.doc.regions[rid].area == area and win.editor.doc.has_unsaved
    assert "●" in win.windowTitle()
    assert store.region_count(image_id) == 0
    # the user frees some space and closes again: saved, closed, no question
    broken.fix()
    asked2 = _answers(monkeypatch)
    assert win.close() is True
    assert not asked2 and store.region_count(image_id) == 1
    assert store.regions(image_id)[0].area == area


def test_close_retry_then_saved(window, qtbot, monkeypatch):
    win = window
    store = win.project.store
    broken = BrokenStore(store, monkeypatch, FAILURES["locked"][0])
    image_id, rid, area = paint(qtbot, win)
    # first Retry still fails (asked again); before the second Retry the other program lets go
    asked = _answers(monkeypatch, B.Retry, B.Retry, then=broken.fix)
    assert win.close() is True
    assert len(asked) == 2 and "database is locked" in asked[0]
    assert store.region_count(image_id) == 1 and store.regions(image_id)[0].area == area


def test_close_discard_only_when_the_user_says_so(window, qtbot, monkeypatch):
    win = window
    store = win.project.store
    BrokenStore(store, monkeypatch, FAILURES["locked"][0])
    first, rid, _ = paint(qtbot, win)
    win.canvas.setFocus()
    key(win, Qt.Key.Key_D)  # the edits of the first image are held, not shown
    qtbot.waitUntil(lambda: win.editor.doc.image_id != first, timeout=5000)
    asked = _answers(monkeypatch, B.Discard)
    assert win.close() is True
    assert len(asked) == 1 and store.image(first).path in asked[0]
    assert store.region_count(first) == 0


def test_set_status_failure_is_retried(window, qtbot, monkeypatch):
    win = window
    store = win.project.store
    image_id = win.editor.doc.image_id
    real = store.set_status
    broken = [True]

    def set_status(*a, **k):
        if broken[0]:
            raise StoreError(LOCKED)
        return real(*a, **k)

    monkeypatch.setattr(store, "set_status", set_status)
    win.session.set_status("skipped")
    assert store.image(image_id).status == "new"
    assert "Could not save" in win.save_label.text() and "●" in win.windowTitle()
    broken[0] = False
    qtbot.waitUntil(lambda: store.image(image_id).status == "skipped", timeout=20000)
    qtbot.waitUntil(lambda: win.session.all_saved, timeout=5000)
    assert not win.save_label.isVisible()
    paint(qtbot, win)  # a later edit does not turn the status back to in_progress
    qtbot.waitUntil(lambda: store.region_count(image_id) == 1 and win.session.all_saved, timeout=5000)
    assert store.image(image_id).status == "skipped"


def test_reload_and_a_failed_decode_keep_unsaved_edits(window, qtbot, monkeypatch):
    """Other ways the shown document is replaced: re-reading it after an import, and switching
    to an image that fails to decode."""
    from segstudio.core.imageio import ImageDecodeError
    win = window
    store = win.project.store
    broken = BrokenStore(store, monkeypatch, FAILURES["locked"][0])
    first, rid, area = paint(qtbot, win)
    win.session.reload_current()  # e.g. after an import: regions re-read, the stroke stays on top
    assert win.editor.doc.regions[rid].area == area and win.editor.doc.has_unsaved
    real_load = win.project.load_image

    def load_image(rec, *a, **k):
        if rec.id != first:
            raise ImageDecodeError(f"{rec.path}: broken")
        return real_load(rec, *a, **k)

    monkeypatch.setattr(win.project, "load_image", load_image)
    for i in list(win.session.cache):
        if i != first:
            win.session.forget(i)
    win.canvas.setFocus()
    key(win, Qt.Key.Key_D)
    qtbot.waitUntil(lambda: win.editor.doc is None, timeout=5000)
    assert win.session.held[first].regions[rid].area == area
    broken.fix()
    qtbot.waitUntil(lambda: store.region_count(first) == 1, timeout=20000)
    qtbot.waitUntil(lambda: win.session.all_saved, timeout=5000)
    assert not win.session.held
