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
    version, rep = got.args[0]
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
    version, rep = got.args[0]
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
