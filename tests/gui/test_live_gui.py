"""Learn as I annotate, in the window: marking an image done updates the model on the model
thread, re-predicts the next untouched images, never the open or an edited one; versions can be
rolled back."""

import numpy as np
import pytest

pytest.importorskip("torch")


@pytest.fixture
def live_window(qtbot, tmp_path):
    import cv2
    from PIL import Image

    from segstudio.core import maskops
    from segstudio.core.region import Region
    from tests.gui.conftest import open_window
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(0)
    masks = {}
    for i in range(6):
        img = rng.normal(60, 15, (64, 64, 3))
        m = np.zeros((64, 64), np.uint8)
        cv2.circle(m, (int(rng.integers(20, 44)), int(rng.integers(20, 44))), 12, 1, -1)
        img[m > 0] += 110
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(d / f"im{i}.png")
        masks[f"im{i}.png"] = m.astype(bool)
    win = open_window(qtbot, d, "disc", size=(1200, 900))
    p = win.project
    cls = p.store.classes()[0]
    for rec in p.store.images()[1:3]:  # two done images besides the open one
        c = maskops.crop_to_content(masks[rec.path])
        p.store.save_regions(rec.id, [Region(p.store.new_region_id(), cls.id, *c)], status="done")
    dock = win.model_dock
    dock.arch.setCurrentIndex(dock.arch.findData("unet"))
    dock.device.setCurrentIndex(dock.device.findData("cpu"))
    panel = dock.live_panel
    panel.seconds.setValue(5)
    panel.ahead.setValue(3)
    panel.enabled.setChecked(True)
    yield win, masks
    win.model_dock.worker.cancel()
    if win.isVisible():
        win.close()


@pytest.mark.slow
def test_marking_done_updates_and_repredicts_what_nobody_touched(live_window, qtbot):
    from segstudio.core.records import DONE, IN_PROGRESS, PREDICTED
    from segstudio.core.region import Region
    win, masks = live_window
    p, panel = win.project, win.model_dock.live_panel
    recs = p.store.images()
    first = recs[0]
    assert win.session.current.record.id == first.id
    # the person paints the open image and has already drawn on im4 (in progress)
    cls = p.store.classes()[0]
    mine = Region(p.store.new_region_id(), cls.id, np.ones((6, 6), bool), 2, 2)
    p.store.save_regions(recs[4].id, [mine], status=IN_PROGRESS)
    from segstudio.core import maskops
    c = maskops.crop_to_content(masks[first.path])
    p.store.save_regions(first.id, [Region(p.store.new_region_id(), cls.id, *c)])
    win.session.reload_current()
    with qtbot.waitSignal(panel.updated, timeout=180000) as got:
        win.set_status(DONE)  # Ctrl+Enter without moving on: im0 stays open
    version, rep, _ = got.args[0]
    assert version.version == 1 and version.done_images == 3
    assert "Version 1" in panel.status.text()
    # the next untouched images after the open one were re-predicted; im4 (edited) was not
    assert set(rep.written) == {recs[3].id, recs[5].id}
    assert [r.id for r in p.store.regions(recs[4].id)] == [mine.id]
    assert p.store.image(recs[4].id).status == IN_PROGRESS
    for r in (recs[3], recs[5]):
        assert p.store.image(r.id).status == PREDICTED and p.store.region_count(r.id) > 0
    assert p.store.image(first.id).status == DONE
    # the window's model is the new version
    qtbot.waitUntil(lambda: (win.model_dock.info or {}).get("checkpoint") == version.path, timeout=60000)
    assert win.model_dock.weights.currentData() == version.path
    assert panel.versions.count() == 1


@pytest.mark.slow
def test_the_open_image_is_left_alone_and_rollback(live_window, qtbot):
    win, _ = live_window
    p, panel = win.model_dock.project, win.model_dock.live_panel
    recs = p.store.images()
    # two versions, each started by hand (as a mark done does)
    for want in (1, 2):
        with qtbot.waitSignal(panel.updated, timeout=180000) as got:
            panel.request_update()
        assert got.args[0][0].version == want
    # open im3 (untouched, 'predicted') and update again with every untouched image in reach:
    # im3 is the open image, so it keeps what it has
    panel.ahead.setValue(10)
    win.open_image(recs[3].id)
    qtbot.waitUntil(lambda: win.session.current.record.id == recs[3].id, timeout=10000)
    before = [(r.id, r.x, r.y) for r in p.store.regions(recs[3].id)]
    with qtbot.waitSignal(panel.updated, timeout=180000) as got:
        panel.request_update()
    version, rep, _ = got.args[0]
    assert recs[3].id in rep.skipped and recs[3].id not in rep.written
    assert [(r.id, r.x, r.y) for r in p.store.regions(recs[3].id)] == before
    assert recs[0].id in rep.written  # the list wraps round: the untouched image before it too
    # roll back to version 1: it predicts now and the next update starts from it
    assert panel.versions.count() == 3
    panel.versions.setCurrentIndex(panel.versions.findData(str(p.models_dir / "live-unet-0001.pt")))
    panel.rollback()
    qtbot.waitUntil(lambda: (win.model_dock.info or {}).get("checkpoint", "").endswith("live-unet-0001.pt"),
                    timeout=60000)
    with qtbot.waitSignal(panel.updated, timeout=180000) as got:
        panel.request_update()
    assert "live-unet-0001.pt" in got.args[0][0].start


def _mark_done_with_keys(win):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    QTest.keyClick(win.canvas, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)


@pytest.mark.slow
@pytest.mark.parametrize("other, title", [("maskrcnn", "Mask R-CNN"), ("fcn", "FCN")])  # FCN: also a "unet" kind
def test_a_version_is_not_loaded_over_a_model_of_another_kind(live_window, qtbot, other, title):
    """The pre-label model chosen in the Model panel changes while an update runs: the new version
    is kept, not loaded over the other choice, and the panel says so."""
    win, _ = live_window
    dock, panel = win.model_dock, win.model_dock.live_panel
    with qtbot.waitSignal(panel.updated, timeout=180000) as got:
        _mark_done_with_keys(win)
        assert panel.running
        dock.arch.setCurrentIndex(dock.arch.findData(other))
    version = got.args[0][0]
    assert version.path.endswith("live-unet-0001.pt")
    assert "live-unet-0001.pt is kept but not loaded" in panel.status.text()
    assert title in panel.status.text()
    assert dock.weights.findData(version.path) < 0 and dock.info is None
    qtbot.wait(200)
    assert dock.info is None  # nothing was loading either
    dock.arch.setCurrentIndex(dock.arch.findData("unet"))  # back to UNet: the version is there
    assert panel.versions.count() == 1


@pytest.mark.slow
def test_a_watcher_in_another_process_leaves_the_image_open_in_the_window_alone(live_window, qtbot):
    """A separate `train --watch` re-predicts the predicted images but not the one open in the
    window: the person's edits never mix with a model's regions drawn under them."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from segstudio.core.records import PREDICTED
    from segstudio.core.region import Region
    from segstudio.core.store import region_row
    win, masks = live_window
    p = win.project
    win.model_dock.live_panel.enabled.setChecked(False)  # the window's own learner stays out of it
    recs = p.store.images()
    # an earlier version predicted the last three images (a UNet's regions: source "unet")
    cls = p.store.classes()[0]
    for rec in recs[3:]:
        r = Region(p.store.new_region_id(), cls.id, masks[rec.path], 0, 0, source="unet", score=0.9)
        p.store.replace_source_regions_many([{"image_id": rec.id, "source": "unet", "rows": [region_row(rec.id, r)],
                                              "status": PREDICTED, "uncertainty": 0.1}])
    assert p.store.image(recs[4].id).status == PREDICTED
    from PySide6.QtGui import QAction
    [next_image] = [a for a in win.findChildren(QAction) if a.text() == "&Next image"]
    for rec in recs[1:5]:  # the person goes on to im4 (Image › Next image)
        next_image.trigger()
        qtbot.waitUntil(lambda rec=rec: win.editor.doc is not None and win.editor.doc.image_id == rec.id,
                        timeout=10000)
    shown = sorted((r.id, r.area) for r in win.editor.doc.regions.values())
    assert shown  # the model's regions, as the window shows them
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "segstudio", "train", str(p.folder), "--model", "unet", "--watch", "--seconds", "2",
         "--poll", "0.1", "--max-updates", "1", "--ahead", "10", "--device", "cpu", "--width", "4", "--depth", "1",
         "--crop", "32", "--json"],
        capture_output=True, text=True, cwd=root, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr[-3000:]
    [doc] = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
    assert recs[4].id in doc["left_alone"] and recs[4].id not in doc["repredicted"]
    assert recs[5].id in doc["repredicted"]
    # the store still holds exactly what the window shows
    assert sorted((r.id, r.area) for r in p.store.regions(recs[4].id)) == shown


def test_segment_folder_leaves_an_image_open_in_another_window_alone(window, qtbot, tmp_path):
    """The window's own Segment folder writes the image it shows (and reloads it) but not one
    another window holds (a claim in the store by another holder)."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from tests.gui.test_model_gui import load_unet
    from tests.inference.helpers import tiny_unet_checkpoint
    p, dock = window.project, window.model_dock
    recs = p.store.images()
    assert window.session.current.record.id == recs[0].id
    p.store.claim_image(recs[2].id, "another-host:4242:feedbeef", 60)  # open in another process's window
    load_unet(window, qtbot, tiny_unet_checkpoint(tmp_path / "u.pt", classes=("object",)))
    done = []
    dock.folder_finished.connect(done.append)
    dock.scope.setCurrentIndex(dock.scope.findData(None))
    QTest.mouseClick(dock.seg_folder, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(done), timeout=60000)
    assert done[0].skipped == [recs[2].id] and sorted(done[0].written) == sorted([recs[0].id, recs[1].id])
    assert p.store.image(recs[2].id).status == "new" and p.store.image(recs[0].id).status == "predicted"
    assert "1 image left alone (open in another window)" in dock.progress_label.text()


def test_segment_image_answer_after_moving_on_leaves_an_image_held_elsewhere_alone(tmp_path):
    """Segment image's answer for an image the window no longer shows goes into the store, but
    not under another process's window that has it open."""
    from PIL import Image

    from segstudio.core.project import Project
    from segstudio.gui.model_results import apply_prediction
    from segstudio.inference.runtime.classmap import ClassMapper
    from segstudio.inference.runtime.segmenter import Prediction
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(2):
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(d / f"im{i}.png")
    p = Project.open(d)
    p.store.add_class("thing")
    a, b = p.store.images()
    cmap = np.zeros((16, 16), np.uint8)
    cmap[4:10, 4:10] = 1
    pred = Prediction(16, 16, 0.2, class_map=cmap, confidence=np.full((16, 16), 255, np.uint8))
    p.store.claim_image(b.id, "another-host:4242:feedbeef", 60)
    for rec in (a, b):
        apply_prediction(None, p.store, ClassMapper(p, ["thing"], False), "unet", rec.id, pred,
                         open_status=lambda: "new", set_status=lambda s: None, classes_added=lambda: None)
    assert p.store.region_count(a.id) == 1 and p.store.image(a.id).status == "predicted"
    assert p.store.region_count(b.id) == 0 and p.store.image(b.id).status == "new"
