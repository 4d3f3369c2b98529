"""Frames in the window, driven with real key and mouse events: a numbered folder opens with the
frame bar, the frame keys and the slider step in numeric order, the Files list folds the frames
into one row, the Regions panel shows and changes a region's object, and Propagate ▶ writes the
following frames as one undo step that never touches a person's frame."""

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractSpinBox, QStyle, QStyleOptionSlider, QWidget

from segstudio.core.region import Region
from tests.gui.conftest import open_window
from tests.gui.test_window import click, key, view_point

N_FRAMES = 12
W, H = 96, 72
NO = Qt.KeyboardModifier.NoModifier
CTRL = Qt.KeyboardModifier.ControlModifier


def disc(i: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return (xx - 24 - 2 * i) ** 2 + (yy - 36) ** 2 <= 12 ** 2


def frame(i: int) -> np.ndarray:
    img = (np.random.default_rng(i).integers(0, 40, (H, W, 3)) + 60).astype(np.uint8)
    img[disc(i)] = (220, 80, 80)
    return img


@pytest.fixture
def seq_folder(tmp_path):
    """A project with one ordinary image and a subfolder of numbered frames 0.png..11.png (a disc
    moving 2 px a frame); names sort as text as 0, 1, 10, 11, 2…: the frames are in numeric order."""
    d = tmp_path / "proj"
    (d / "seq").mkdir(parents=True)
    for i in range(N_FRAMES):
        Image.fromarray(frame(i)).save(d / "seq" / f"{i}.png")
    Image.fromarray(frame(0)).save(d / "other.png")
    return d


@pytest.fixture
def win(qtbot, seq_folder):
    w = open_window(qtbot, seq_folder)
    yield w
    if w.isVisible():
        w.close()


def shown(w) -> str:
    return w.session.current.record.path


def wait_shown(qtbot, w, path):
    qtbot.waitUntil(lambda: w.session.current is not None and shown(w) == path and w.editor.doc is not None
                    and w.editor.doc.image_id == w.session.current.record.id, timeout=10000)


def group_row(w):
    m = w.files.model
    return next(r for r in range(m.rowCount()) if m.group(r) is not None)


def handle_center(slider) -> QPoint:
    opt = QStyleOptionSlider()
    slider.initStyleOption(opt)
    return slider.style().subControlRect(QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderHandle,
                                         slider).center()


def click_row(w, row):
    view, m = w.files.view, w.files.model
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, NO, view.visualRect(m.index(row, 0)).center())


def test_a_numbered_folder_is_one_row_and_the_frame_keys_step_in_numeric_order(win, qtbot):
    m = win.files.model
    assert shown(win) == "other.png" and not win.sequence.bar.isVisible()  # an ordinary image: no frame bar
    assert m.rowCount() == 2 and len(m.ids) == N_FRAMES + 1  # other.png, and seq as one row
    r = group_row(win)
    assert m.data(m.index(r, 0)) == f"seq  ({N_FRAMES} frames)"
    assert m.data(m.index(r, 1)) == f"0/{N_FRAMES} done"
    assert f"{N_FRAMES} new" in m.data(m.index(r, 0), Qt.ItemDataRole.ToolTipRole)
    click_row(win, r)  # opens the sequence at its first unfinished frame
    wait_shown(qtbot, win, "seq/0.png")
    bar = win.sequence.bar
    assert bar.isVisible() and bar.frame_label.text() == f"frame 0 of 0–{N_FRAMES - 1}"
    assert bar.name_label.text() == "0.png"
    assert win.files.view.selectionModel().isRowSelected(r, m.index(r, 0).parent())  # the row shows the frame
    seen = ["0.png"]
    win.canvas.setFocus()
    for _ in range(N_FRAMES - 1):
        key(win, Qt.Key.Key_Period)  # next frame
        k = len(seen)
        wait_shown(qtbot, win, f"seq/{k}.png")
        seen.append(shown(win).rpartition("/")[2])
    assert seen == [f"{i}.png" for i in range(N_FRAMES)]  # 2 before 10
    assert bar.frame_label.text() == f"frame {N_FRAMES - 1} of 0–{N_FRAMES - 1}" and bar.slider.value() == N_FRAMES - 1
    key(win, Qt.Key.Key_Comma)  # previous frame
    wait_shown(qtbot, win, "seq/10.png")
    key(win, Qt.Key.Key_Left, Qt.KeyboardModifier.AltModifier)  # the other previous-frame key
    wait_shown(qtbot, win, "seq/9.png")
    # the slider: Home and End on it, and a drag of its handle
    QTest.keyClick(bar.slider, Qt.Key.Key_Home)
    wait_shown(qtbot, win, "seq/0.png")
    QTest.keyClick(bar.slider, Qt.Key.Key_Right)  # PgUp / PgDown stay the window's image keys
    wait_shown(qtbot, win, "seq/1.png")
    QTest.keyClick(bar.slider, Qt.Key.Key_End)
    wait_shown(qtbot, win, f"seq/{N_FRAMES - 1}.png")
    handle = handle_center(bar.slider)  # drag the handle to the slider's left end
    QTest.mousePress(bar.slider, Qt.MouseButton.LeftButton, NO, handle)
    for x in range(handle.x(), -20, -15):
        QTest.mouseMove(bar.slider, QPoint(x, handle.y()))
    QTest.mouseRelease(bar.slider, Qt.MouseButton.LeftButton, NO, QPoint(0, handle.y()))
    wait_shown(qtbot, win, "seq/0.png")
    # the frame keys are in the Frames menu with their shortcuts shown
    frames_menu = next(mm for mm in win.menus if mm.title() == "F&rames")
    texts = {a.text(): a.shortcut().toString() for a in frames_menu.actions()}
    assert texts["&Next frame"] == "." and texts["&Previous frame"] == ","
    # D leaves the sequence: the next row (here none after it), A the row above
    key(win, Qt.Key.Key_A)
    wait_shown(qtbot, win, "other.png")
    assert not win.sequence.bar.isVisible()


def test_the_object_column_gives_a_region_another_objects_identity_in_one_undo_step(win, qtbot):
    store = win.project.store
    cls = store.classes()[0]
    win.open_image(win.files.model.target(group_row(win)))
    wait_shown(qtbot, win, "seq/0.png")
    doc = win.editor.doc
    a = doc.new_region(cls.id, disc(0)[24:49, 12:37], 12, 24)
    b = doc.new_region(cls.id, np.ones((5, 5), bool), 80, 5)
    win.regions_dock.refresh()
    t = win.regions_dock.table
    row = next(r for r in range(t.rowCount()) if t.item(r, 4).data(Qt.ItemDataRole.DisplayRole) == b.id)
    item = t.item(row, 5)
    assert item.text() == str(b.id) and item.flags() & Qt.ItemFlag.ItemIsEditable
    assert not t.item(row, 3).flags() & Qt.ItemFlag.ItemIsEditable
    t.scrollToItem(item)
    pos = t.visualItemRect(item).center()  # double-click the cell, type the other region's object number
    QTest.mouseClick(t.viewport(), Qt.MouseButton.LeftButton, NO, pos)
    QTest.mouseDClick(t.viewport(), Qt.MouseButton.LeftButton, NO, pos)
    (editor,) = [w for w in t.viewport().findChildren(QWidget) if w.isVisible() and isinstance(w, QAbstractSpinBox)]
    QTest.keyClick(editor, Qt.Key.Key_A, CTRL)
    QTest.keyClicks(editor, str(a.id))
    QTest.keyClick(editor, Qt.Key.Key_Return)  # the delegate commits on its next turn of the event loop
    qtbot.waitUntil(lambda: doc.regions[b.id].track is not None, timeout=3000)
    assert doc.regions[b.id].object_id == a.id and doc.regions[b.id].track == a.id
    win.session.flush()
    assert {r.id: r.track for r in store.regions(doc.image_id)}[b.id] == a.id  # stored with the region
    win.canvas.setFocus()
    key(win, Qt.Key.Key_Z, CTRL)  # one step back: its own identity again
    assert doc.regions[b.id].object_id == b.id and doc.regions[b.id].track is None
    qtbot.waitUntil(lambda: t.item(0, 5) is not None and
                    {t.item(r, 4).data(Qt.ItemDataRole.DisplayRole): t.item(r, 5).text()
                     for r in range(t.rowCount())}[b.id] == str(b.id), timeout=3000)


def open_done_frame0(win, qtbot):
    """Frame 0 done with the disc outlined, and open: (the store, the frames' ids)."""
    store = win.project.store
    cls = store.classes()[0]
    ids = [r.id for r in win.project.sequence_frames("seq")]
    store.save_regions(ids[0], [Region(store.new_region_id(), cls.id, disc(0)[24:49, 12:37], 12, 24)],
                       status="done")
    win.open_image(ids[0])
    wait_shown(qtbot, win, "seq/0.png")
    return store, ids


def run_propagation(win, qtbot, action):
    action.trigger()
    assert win.propagation.running
    qtbot.waitUntil(lambda: not win.propagation.running, timeout=30000)


def test_propagate_writes_the_next_frames_stops_at_a_persons_frame_and_undoes_in_one_step(win, qtbot):
    pytest.importorskip("cv2")
    store, proj = win.project.store, win.project
    cls = store.classes()[0]
    frames = proj.sequence_frames("seq")
    ids = [r.id for r in frames]
    # frame 6 is a person's work: done, with a region of its own
    done_region = Region(store.new_region_id(), cls.id, np.ones((4, 4), bool), 2, 2)
    store.save_regions(ids[6], [done_region], status="done")
    win.open_image(ids[2])
    wait_shown(qtbot, win, "seq/2.png")
    win.set_tool("polygon")  # the person outlines the disc on frame 2
    for x, y in [(16, 36), (20, 27), (28, 24), (36, 27), (40, 36), (36, 45), (28, 48), (20, 45)]:  # disc(2)
        click(win, x, y)
    key(win, Qt.Key.Key_Return)
    doc = win.editor.doc
    (rid,) = doc.regions
    assert win.propagation.forward_action.shortcut().toString() == "Ctrl+."
    win.sequence.bar.count.setValue(10)
    run_propagation(win, qtbot, win.propagation.forward_action)
    # frames 3, 4, 5 are written, predicted, the object keeps its identity; 6 stops it
    for k in (3, 4, 5):
        rec = store.image(ids[k])
        regs = store.regions(ids[k])
        assert rec.status == "predicted" and len(regs) == 1, (k, rec.status, regs)
        assert regs[0].object_id == rid and regs[0].source == "propagate" and regs[0].score >= 0.5
        full = regs[0].full_mask(W, H)
        assert (full & disc(k)).sum() / (full | disc(k)).sum() > 0.7
    assert store.image(ids[6]).status == "done" and [r.id for r in store.regions(ids[6])] == [done_region.id]
    assert store.image(ids[2]).status == "in_progress" and [r.id for r in store.regions(ids[2])] == [rid]
    assert all(not store.regions(i) for i in ids[7:])
    bar = win.sequence.bar
    assert bar.slider.mark == 6 and bar.stop_label.isVisible()
    assert bar.stop_label.text() == "Propagation stopped at frame 6: holds a person's work (done)"
    assert "propagated to 3 frame(s)" in win.statusBar().currentMessage()
    m = win.files.model
    r = group_row(win)
    assert m.data(m.index(r, 1)) == f"1/{N_FRAMES} done"
    assert "7 new · 3 predicted · 1 in progress · 1 done" in m.data(m.index(r, 0), Qt.ItemDataRole.ToolTipRole)
    # Ctrl+Z: the whole run at once; the open frame keeps its outline
    win.canvas.setFocus()
    key(win, Qt.Key.Key_Z, CTRL)
    assert all(store.image(ids[k]).status == "new" and not store.regions(ids[k]) for k in (3, 4, 5))
    assert rid in doc.regions and win.editor.doc is doc
    assert "Undo: Propagate to 3 frames" in win.statusBar().currentMessage()
    assert bar.slider.mark is None
    # redo writes it again; undo twice: the run, then the outline
    key(win, Qt.Key.Key_Z, CTRL | Qt.KeyboardModifier.ShiftModifier)
    assert all(store.image(ids[k]).status == "predicted" for k in (3, 4, 5))
    key(win, Qt.Key.Key_Z, CTRL)
    assert all(store.image(ids[k]).status == "new" for k in (3, 4, 5)) and rid in doc.regions
    key(win, Qt.Key.Key_Z, CTRL)
    assert not doc.regions


def test_undo_keeps_a_frame_a_person_changed_after_the_run(win, qtbot):
    pytest.importorskip("cv2")
    store, ids = open_done_frame0(win, qtbot)
    win.sequence.bar.count.setValue(3)
    run_propagation(win, qtbot, win.propagation.forward_action)
    assert [store.image(ids[k]).status for k in (1, 2, 3, 4)] == ["predicted"] * 3 + ["new"]
    assert win.sequence.bar.slider.mark is None  # it did all it was asked: no stop mark
    win.canvas.setFocus()
    key(win, Qt.Key.Key_Period)  # the person opens frame 1 and deletes the carried region
    wait_shown(qtbot, win, "seq/1.png")
    win.set_tool("select")
    click(win, 26, 36)  # the disc on frame 1
    key(win, Qt.Key.Key_Delete)
    assert not win.editor.doc.regions
    key(win, Qt.Key.Key_Comma)
    wait_shown(qtbot, win, "seq/0.png")
    key(win, Qt.Key.Key_Z, CTRL)  # frame 0 has no edits of its own: the run is the newest step
    assert [store.image(ids[k]).status for k in (2, 3)] == ["new", "new"]
    assert store.image(ids[1]).status == "in_progress" and not store.regions(ids[1])  # the person's
    assert "kept 1 frame a person changed since: seq/1.png" in win.statusBar().currentMessage()


def test_propagate_from_an_ordinary_image_says_why_not(win, qtbot):
    assert shown(win) == "other.png"
    win.propagation.forward_action.trigger()
    assert not win.propagation.running
    assert "Open a frame of a sequence" in win.statusBar().currentMessage()


def test_a_frame_opened_while_the_run_goes_on_is_not_written_and_cancel_stops_it(win, qtbot, monkeypatch):
    pytest.importorskip("cv2")
    import threading

    from segstudio.editing import propagate as step
    gate, entered, real = threading.Event(), threading.Event(), step.carry

    def held(*args, **kwargs):  # each step waits for the test: the person acts meanwhile
        entered.set()
        assert gate.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(step, "carry", held)
    store, ids = open_done_frame0(win, qtbot)
    win.sequence.bar.count.setValue(6)
    win.propagation.forward_action.trigger()
    assert win.propagation.running and not win.propagation.forward_action.isEnabled()
    assert win.sequence.bar.cancel_button.isVisible()
    win.canvas.setFocus()
    for k in (1, 2, 3):  # the person walks on to frame 3 while the run waits on frame 1
        key(win, Qt.Key.Key_Period)
        wait_shown(qtbot, win, f"seq/{k}.png")
    gate.set()
    qtbot.waitUntil(lambda: not win.propagation.running, timeout=30000)
    assert [store.image(ids[k]).status for k in (1, 2, 3)] == ["predicted", "predicted", "new"]
    assert not store.regions(ids[3]) and not win.editor.doc.regions  # the open frame is the person's
    assert win.sequence.bar.slider.mark == 3
    assert "stopped at frame 3" in win.sequence.bar.stop_label.text()
    assert win.propagation.forward_action.isEnabled() and not win.sequence.bar.cancel_button.isVisible()
    win.open_image(win.project.store.image_by_path("other.png").id)  # another image, and back: the mark stays
    wait_shown(qtbot, win, "other.png")
    assert win.sequence.bar.slider.mark is None and not win.sequence.bar.isVisible()
    win.open_image(ids[3])
    wait_shown(qtbot, win, "seq/3.png")
    assert win.sequence.bar.slider.mark == 3 and "stopped at frame 3" in win.sequence.bar.stop_label.text()
    # Cancel: the run stops after the frame it is on
    gate.clear()
    entered.clear()
    win.sequence.bar.count.setValue(5)
    win.propagation.forward_action.trigger()  # from frame 3, which has no regions: nothing to carry
    qtbot.waitUntil(lambda: not win.propagation.running, timeout=10000)
    assert "frame 3 has no regions to carry" in win.statusBar().currentMessage()
    key(win, Qt.Key.Key_Comma)
    wait_shown(qtbot, win, "seq/2.png")
    win.propagation.forward_action.trigger()  # from frame 2's carried object
    assert entered.wait(10)  # the run is carrying frame 3
    win.propagation.cancel_action.trigger()
    gate.set()
    qtbot.waitUntil(lambda: not win.propagation.running, timeout=30000)
    assert win.sequence.bar.stop_label.text() == "Propagation stopped at frame 4: cancelled"
    assert [store.image(ids[k]).status for k in (3, 4)] == ["predicted", "new"]


@pytest.fixture
def stack_folder(tmp_path):
    """A project holding one 8-page TIFF (the disc moving through its pages) and an ordinary image."""
    tifffile = pytest.importorskip("tifffile")
    d = tmp_path / "stackproj"
    d.mkdir()
    tifffile.imwrite(d / "stack.tif", np.stack([frame(i) for i in range(8)]), photometric="rgb")
    Image.fromarray(frame(0)).save(d / "a.png")
    return d


def test_a_multipage_tiff_opens_as_frames_steps_and_propagates(qtbot, stack_folder):
    pytest.importorskip("cv2")
    w = open_window(qtbot, stack_folder)
    store, m = w.project.store, w.files.model
    assert m.rowCount() == 2 and len(m.ids) == 9
    r = group_row(w)
    assert m.data(m.index(r, 0)) == "stack.tif  (8 frames)"
    click_row(w, r)
    wait_shown(qtbot, w, "stack.tif/000000")
    assert np.array_equal(w.session.current.array, frame(0))  # decoded from its page, not from a file
    bar = w.sequence.bar
    assert bar.isVisible() and bar.frame_label.text() == "frame 0 of 0–7"
    w.canvas.setFocus()
    key(w, Qt.Key.Key_Period)
    wait_shown(qtbot, w, "stack.tif/000001")
    assert np.array_equal(w.session.current.array, frame(1))
    w.set_tool("polygon")  # the person outlines the disc on frame 1 and propagates 3 frames
    for x, y in [(14, 36), (18, 27), (26, 24), (34, 27), (38, 36), (34, 45), (26, 48), (18, 45)]:  # disc(1)
        click(w, x, y)
    key(w, Qt.Key.Key_Return)
    (rid,) = w.editor.doc.regions
    bar.count.setValue(3)
    run_propagation(w, qtbot, w.propagation.forward_action)
    ids = w.project.sequence_ids("stack.tif")
    assert [store.image(i).status for i in ids] == ["new", "in_progress"] + ["predicted"] * 3 + ["new"] * 3
    assert {r.object_id for i in ids[2:5] for r in store.regions(i)} == {rid}
    key(w, Qt.Key.Key_Z, CTRL)
    assert [store.image(i).status for i in ids] == ["new", "in_progress"] + ["new"] * 6
    w.close()


def test_the_click_models_next_frame_is_decoded_from_its_stack(qtbot, stack_folder):
    """The embedding ahead decodes the next image as the display does: a frame has no file."""
    pytest.importorskip("torch")
    import threading

    from segstudio.core.project import Project
    from segstudio.gui.click_worker import ClickWorker
    project = Project.open(stack_folder)
    ids = project.sequence_ids("stack.tif")
    seen = []

    class Model:
        def embedding_for(self, image, path, cache, window, cancel=None):
            seen.append((image, path))

    cw = ClickWorker(project)
    cw._image = ids[0]
    nxt = project.store.image(ids[1])
    t = threading.Thread(target=cw._do_prefetch, args=((ids[0], ids[1]), str(project.abspath(nxt)), Model(), None))
    t.start()  # a thread of its own: it lowers its thread's priority
    t.join(20)
    cw.shutdown(wait=1.0)
    assert len(seen) == 1 and np.array_equal(seen[0][0], frame(1))


def test_a_numbered_folder_opened_as_the_project_lists_its_frames_and_shows_the_bar(window, qtbot):
    """photo0..photo2 at the project's top: listed one by one as before (D and A step through
    them), and the frame bar steps through them as frames."""
    w = window
    assert w.files.model.rowCount() == 3 and all(w.files.model.group(r) is None for r in range(3))
    assert shown(w) == "photo0.png"
    bar = w.sequence.bar
    assert bar.isVisible() and bar.frame_label.text() == "frame 0 of 0–2" and bar.name_label.text() == "photo0.png"
    w.canvas.setFocus()
    key(w, Qt.Key.Key_Period)
    wait_shown(qtbot, w, "photo1.png")
    assert bar.frame_label.text() == "frame 1 of 0–2" and bar.slider.value() == 1


def test_undo_while_a_written_frame_is_open_shows_it_as_it_was(win, qtbot):
    pytest.importorskip("cv2")
    store, ids = open_done_frame0(win, qtbot)
    win.sequence.bar.count.setValue(2)
    run_propagation(win, qtbot, win.propagation.forward_action)
    win.canvas.setFocus()
    key(win, Qt.Key.Key_Period)
    wait_shown(qtbot, win, "seq/1.png")
    carried = win.editor.doc.ordered()[0]
    assert len(win.editor.doc.regions) == 1 and carried.source == "propagate"
    QTest.mouseMove(win.canvas.viewport(), view_point(win, 26, 36))  # the readout names its object
    qtbot.waitUntil(lambda: f"(object {carried.object_id})" in win.readout.region_label.text(), timeout=3000)
    key(win, Qt.Key.Key_Z, CTRL)  # the open frame has no edits: the run goes, and the frame shows it
    assert [store.image(ids[k]).status for k in (1, 2)] == ["new", "new"]
    assert shown(win) == "seq/1.png" and not win.editor.doc.regions
    assert not win.canvas.overlay.labels.any()
    key(win, Qt.Key.Key_Z, CTRL | Qt.KeyboardModifier.ShiftModifier)  # and back
    assert len(win.editor.doc.regions) == 1 and store.image(ids[1]).status == "predicted"


def test_a_subfolder_of_photos_named_by_id_is_not_folded():
    """COCO-style names hold numbers but are no sequence: each stays a row of its own, while a
    subfolder's evenly numbered frames fold into one row beside them."""
    from segstudio.gui.docks.file_groups import FrameGroup, fold
    paths = {1: "coco/000000397133.jpg", 2: "coco/000000037777.jpg", 3: "t/1.png", 4: "t/2.png", 5: "t/3.png",
             6: "t/notes7x.png"}
    rows = fold(list(paths), paths, {})
    assert rows[:2] == [1, 2] and isinstance(rows[2], FrameGroup) and rows[2].ids == [3, 4, 5]
    assert rows[3:] == [6]


def test_a_frame_opened_and_edited_after_the_run_wrote_it_keeps_its_undo(win, qtbot, monkeypatch):
    """The person opens a frame the run has written while it goes on, and draws there: when the
    run ends their edit keeps its undo. Ctrl+Z takes back the run (it ended last) but keeps that
    frame as the person made it; the next Ctrl+Z takes back their outline."""
    pytest.importorskip("cv2")
    import threading

    from segstudio.editing import propagate as step
    gate, calls, real = threading.Event(), [], step.carry

    def held(*args, **kwargs):
        calls.append(1)
        if len(calls) >= 2:  # frame 1 is written; the run waits on frame 2
            assert gate.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(step, "carry", held)
    store, ids = open_done_frame0(win, qtbot)
    win.sequence.bar.count.setValue(3)
    win.propagation.forward_action.trigger()
    qtbot.waitUntil(lambda: len(calls) >= 2, timeout=10000)
    win.canvas.setFocus()
    key(win, Qt.Key.Key_Period)
    wait_shown(qtbot, win, "seq/1.png")
    carried = set(win.editor.doc.regions)
    assert len(carried) == 1
    win.set_tool("polygon")  # the person adds an object on frame 1
    for x, y in [(70, 10), (90, 10), (90, 30), (70, 30)]:
        click(win, x, y)
    key(win, Qt.Key.Key_Return)
    doc = win.editor.doc
    assert len(doc.regions) == 2 and doc.undo_stack.can_undo
    gate.set()
    qtbot.waitUntil(lambda: not win.propagation.running, timeout=30000)
    assert win.editor.doc is doc and doc.undo_stack.can_undo
    win.canvas.setFocus()
    key(win, Qt.Key.Key_Z, CTRL)
    assert "kept 1 frame a person changed since: seq/1.png" in win.statusBar().currentMessage()
    assert len(doc.regions) == 2 and store.image(ids[2]).status == "new"
    key(win, Qt.Key.Key_Z, CTRL)
    assert set(doc.regions) == carried


def test_the_frame_bar_follows_a_frame_that_cannot_be_read(win, qtbot, seq_folder):
    (seq_folder / "seq" / "5.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    ids = [r.id for r in win.project.sequence_frames("seq")]
    win.open_image(ids[4])
    wait_shown(qtbot, win, "seq/4.png")
    win.canvas.setFocus()
    key(win, Qt.Key.Key_Period)
    bar = win.sequence.bar
    qtbot.waitUntil(lambda: bar.frame_label.text() == f"frame 5 of 0–{N_FRAMES - 1}", timeout=10000)
    assert "Cannot open seq/5.png" in win.statusBar().currentMessage()
    m = win.files.model
    qtbot.waitUntil(lambda: m.data(m.index(group_row(win), 1)) == f"0/{N_FRAMES} done · 1 ✕", timeout=5000)
    key(win, Qt.Key.Key_Period)  # the keys step on from the frame that failed
    wait_shown(qtbot, win, "seq/6.png")


def test_the_frame_keys_step_while_the_frame_count_box_has_the_focus(win, qtbot):
    ids = [r.id for r in win.project.sequence_frames("seq")]
    win.open_image(ids[3])
    wait_shown(qtbot, win, "seq/3.png")
    box = win.sequence.bar.count
    box.setFocus()
    QTest.keyClicks(box.lineEdit(), "5")  # the person types a count...
    QTest.keyClick(box.lineEdit(), Qt.Key.Key_Period)  # ...then steps on without clicking the image
    wait_shown(qtbot, win, "seq/4.png")
    QTest.keyClick(box.lineEdit(), Qt.Key.Key_Comma)
    wait_shown(qtbot, win, "seq/3.png")


def test_a_video_opens_as_one_row_steps_frame_exact_and_propagates(qtbot, tmp_path):
    """A video file in the folder: one Files row, the frame keys step through its frames (each the
    frame asked for, also backwards), and Propagate ▶ writes the next frames from an outlined one."""
    av = pytest.importorskip("av")
    pytest.importorskip("cv2")
    d = tmp_path / "videoproj"
    d.mkdir()
    n = 8
    with av.open(str(d / "clip.mp4"), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        for i in range(n):
            for pkt in s.encode(av.VideoFrame.from_ndarray(frame(i), format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    Image.fromarray(frame(0)).save(d / "a.png")
    w = open_window(qtbot, d)
    try:
        m = w.files.model
        r = group_row(w)
        assert m.data(m.index(r, 0)) == f"clip.mp4  ({n} frames)"
        click_row(w, r)
        wait_shown(qtbot, w, "clip.mp4/000000")
        w.canvas.setFocus()
        for k in (1, 2, 3, 2):  # forward, then back: lossy, so compared by where the disc is
            key(w, Qt.Key.Key_Period if k > int(shown(w)[-6:]) else Qt.Key.Key_Comma)
            wait_shown(qtbot, w, f"clip.mp4/{k:06d}")
            red = w.session.current.array[..., 0].astype(int) - w.session.current.array[..., 1]
            assert (red > 80).sum() > 0.8 * disc(k).sum() and ((red > 80) & disc(k)).sum() > 0.8 * disc(k).sum()
        assert w.sequence.bar.frame_label.text() == f"frame 2 of 0–{n - 1}"
        store = w.project.store
        cls = store.ensure_class("cell")
        ids = [rec.id for rec in w.project.sequence_frames("clip.mp4")]
        store.save_regions(ids[2], [Region(store.new_region_id(), cls.id, disc(2)[24:49, 16:41], 16, 24)],
                           status="done")
        w.open_image(ids[2])
        wait_shown(qtbot, w, "clip.mp4/000002")
        w.sequence.bar.count.setValue(3)
        run_propagation(w, qtbot, w.propagation.forward_action)
        for k in (3, 4, 5):
            (reg,) = store.regions(ids[k])
            full = reg.full_mask(W, H)
            assert (full & disc(k)).sum() / (full | disc(k)).sum() > 0.7 and store.image(ids[k]).status == "predicted"
        assert not store.regions(ids[6])
    finally:
        w.close()


def test_leaving_a_sequence_and_coming_back_returns_to_the_frame_left(win, qtbot):
    """D / A (next / previous row) and a click on the sequence's row: back where the person was,
    not at the first unfinished frame."""
    ids = [r.id for r in win.project.sequence_frames("seq")]
    win.open_image(ids[7])
    wait_shown(qtbot, win, "seq/7.png")
    rows = win.files.model.entries
    other_row = next(k for k, e in enumerate(rows) if e == win.project.store.image_by_path("other.png").id)
    seq_row = group_row(win)
    win.canvas.setFocus()
    key(win, Qt.Key.Key_D if other_row > seq_row else Qt.Key.Key_A)
    wait_shown(qtbot, win, "other.png")
    key(win, Qt.Key.Key_A if other_row > seq_row else Qt.Key.Key_D)
    wait_shown(qtbot, win, "seq/7.png")
    win.open_image(win.project.store.image_by_path("other.png").id)
    wait_shown(qtbot, win, "other.png")
    click_row(win, seq_row)
    wait_shown(qtbot, win, "seq/7.png")
