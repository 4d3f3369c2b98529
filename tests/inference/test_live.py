"""Learning while annotating: warm-started updates, versions, rollback, and re-predicting ahead
without ever overwriting what a person drew."""

import cv2
import numpy as np
import pytest
from PIL import Image

from segstudio.core import maskops
from segstudio.core.project import Project
from segstudio.core.records import DONE, IN_PROGRESS, NEW, PREDICTED
from segstudio.core.region import Region
from segstudio.inference.training import live
from segstudio.inference.training.live import LiveConfig, LiveLearner, held_aside

FAST = {"unet": {"depth": 1, "width": 4}, "crop": 32, "batch": 2, "steps_per_epoch": 2}


def disc_folder(root, n=6, done=3, size=64, seed=0):
    d = root / "imgs"
    d.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    p = Project.open(d)
    c = p.store.add_class("disc")
    masks = {}
    for i in range(n):
        img = rng.normal(60, 20, (size, size))
        m = np.zeros((size, size), np.uint8)
        cv2.circle(m, (int(rng.integers(16, size - 16)), int(rng.integers(16, size - 16))), 10, 1, -1)
        img[m > 0] += 100
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(d / f"{i:02d}.png")
        masks[f"{i:02d}.png"] = m.astype(bool)
    p.scan()
    for rec in p.store.images()[:done]:
        parts = [Region(p.store.new_region_id(), c.id, pm, x, y) for pm, x, y in maskops.components(masks[rec.path])]
        p.store.save_regions(rec.id, parts, status=DONE)
    return p


def learner(p, **kw):
    return LiveLearner(p, LiveConfig(seconds=kw.pop("seconds", 1.5), device="cpu", trainer=dict(FAST), **kw))


def test_updates_warm_start_and_register_versions(tmp_path):
    p = disc_folder(tmp_path, n=6, done=4)  # from 4 done images, one is held aside to score versions
    lr = learner(p)
    v1 = lr.update()
    assert v1.version == 1 and v1.start == "random initialisation" and v1.done_images == 4
    v2 = lr.update()
    assert v2.version == 2 and v2.start.startswith("warm start from live-unet-0001.pt")
    assert [v.version for v in lr.versions()] == [1, 2]
    # only the version itself is kept, not the trainer's last-epoch twin
    assert sorted(f.name for f in p.models_dir.iterdir()) == ["live-unet-0001.pt", "live-unet-0002.pt"]
    assert {m["path"] for m in p.store.models()} == {v1.path, v2.path}
    assert "mean_iou" in v2.metrics
    # a version is the update's last epoch, not the one its 1-2 validation images scored best
    from segstudio.inference.runtime.checkpoint import load_checkpoint
    ck = load_checkpoint(v2.path)
    assert ck.training["history"] and ck.training["epoch"] == ck.training["history"][-1]["epoch"]
    assert ck.training["metrics"]["mean_iou"] == pytest.approx(ck.training["history"][-1]["val_mean_iou"])


def test_rollback_makes_the_next_update_start_there(tmp_path):
    p = disc_folder(tmp_path)
    lr = learner(p)
    lr.update()
    lr.update()
    lr.rollback(1)
    assert lr.start_checkpoint().endswith("live-unet-0001.pt")
    v3 = lr.update()
    assert v3.version == 3 and "live-unet-0001.pt" in v3.start
    with pytest.raises(live.LiveError):
        lr.rollback(99)


def test_old_versions_are_pruned(tmp_path, monkeypatch):
    monkeypatch.setattr(live, "KEEP_VERSIONS", 2)
    p = disc_folder(tmp_path)
    lr = learner(p, seconds=0.5)
    for _ in range(3):
        lr.update()
    assert [v.version for v in lr.versions()] == [2, 3]
    assert not (p.models_dir / "live-unet-0001.pt").exists()


def test_repredict_never_overwrites_a_persons_work(tmp_path):
    p = disc_folder(tmp_path, n=6, done=3)
    lr = learner(p)
    lr.update()
    recs = p.store.images()
    untouched, edited, opened = recs[3], recs[4], recs[5]
    # a person drew on one image (the window marks it in progress when it saves)...
    mine = Region(p.store.new_region_id(), p.store.classes()[0].id, np.ones((5, 5), bool), 1, 1)
    p.store.save_regions(edited.id, [mine], status=IN_PROGRESS)
    ids = lr.next_images(recs[2].path)
    assert ids == [untouched.id, opened.id]  # only images nobody touched, in list order
    # ... and has another open in the window
    rep = lr.repredict([untouched.id, edited.id, opened.id], may_write=lambda iid: iid != opened.id)
    assert p.store.image(untouched.id).status == PREDICTED
    assert p.store.region_count(untouched.id) > 0
    assert [r.id for r in p.store.regions(edited.id)] == [mine.id]
    assert p.store.image(edited.id).status == IN_PROGRESS
    assert p.store.region_count(opened.id) == 0 and p.store.image(opened.id).status == NEW
    assert set(rep.skipped) == {edited.id, opened.id}


def test_next_images_wraps_round_the_list(tmp_path):
    p = disc_folder(tmp_path, n=6, done=2)
    lr = learner(p, ahead=3)
    recs = p.store.images()
    assert lr.next_images(recs[4].path) == [recs[5].id, recs[2].id, recs[3].id]
    assert lr.next_images(None, 10) == [r.id for r in recs[2:]]


def test_next_images_leave_out_frames_that_hold_carried_objects(tmp_path):
    """A frame propagation wrote is the person's request: the learner does not draw over it."""
    from segstudio.core.sequences import PROPAGATED
    p = disc_folder(tmp_path, n=6, done=2)
    lr = learner(p, ahead=3)
    recs = p.store.images()
    carried = Region(p.store.new_region_id(), p.store.classes()[0].id, np.ones((4, 4), bool), 2, 2,
                     source=PROPAGATED, track=7)
    p.store.save_regions(recs[3].id, [carried], status=PREDICTED)
    assert lr.next_images(recs[1].path) == [recs[2].id, recs[4].id, recs[5].id]
    for k in (2, 4, 5):  # every unfinished image holds carried objects: nothing to re-predict
        p.store.save_regions(recs[k].id, [Region(p.store.new_region_id(), 1, np.ones((2, 2), bool), source=PROPAGATED)])
    assert lr.next_images(recs[1].path) == [] and lr.next_images(None, 10) == []


def test_held_aside_is_stable_as_images_arrive():
    paths = [f"img{i:03d}.png" for i in range(30)]
    assert held_aside(paths[:3]) == []
    one = held_aside(paths[:4])
    assert len(one) == 1
    grown = [held_aside(paths[:n]) for n in range(10, 30)]
    assert all(len(g) == 2 for g in grown)
    # adding images changes the choice only when a newcomer sorts first
    changes = sum(a != b for a, b in zip(grown, grown[1:], strict=False))
    assert changes <= 4


def test_no_done_image_says_why(tmp_path):
    p = disc_folder(tmp_path, n=2, done=0)
    with pytest.raises(live.LiveError, match="done"):
        learner(p).update()


def test_train_watch_learns_from_images_marked_done_elsewhere(tmp_path, capsys):
    """`segstudio train --watch` updates at once, then again when another process marks an image done."""
    import json
    import threading
    import time

    from segstudio.cli import main
    p = disc_folder(tmp_path, n=6, done=3)
    folder = p.folder
    target = p.store.images()[3]

    def second_annotator():
        other = Project.open(folder, scan=False)  # its own connection, as another process has
        deadline = time.time() + 120
        while not (other.models_dir / "live-unet-0001.pt").exists() and time.time() < deadline:
            time.sleep(0.05)
        c = other.store.classes()[0]
        drawn = Region(other.store.new_region_id(), c.id, np.ones((12, 12), bool), 20, 20)
        other.store.save_regions(target.id, [drawn], status=DONE)

    t = threading.Thread(target=second_annotator)
    t.start()
    rc = main(["train", str(folder), "--model", "unet", "--watch", "--seconds", "1", "--poll", "0.1",
               "--max-updates", "2", "--device", "cpu", "--width", "4", "--depth", "1", "--crop", "32", "--json"])
    t.join(5)
    assert rc == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert [d["version"] for d in lines] == [1, 2]
    assert [d["done_images"] for d in lines] == [3, 4]
    # the first update re-predicted the images after the last done one; the second left the
    # newly done image alone
    assert target.id not in lines[1]["repredicted"]
    assert p.store.image(target.id).status == DONE


def test_train_needs_out_or_watch(tmp_path, capsys):
    from segstudio.cli import main
    p = disc_folder(tmp_path, n=2, done=1)
    assert main(["train", str(p.folder), "--model", "unet"]) == 2
    assert "--out" in capsys.readouterr().err


@pytest.mark.slow
def test_maskrcnn_live_updates_warm_start_and_repredict(tmp_path, monkeypatch):
    """Instances go through the same loop: Mask R-CNN versions warm-start from the last one and
    re-predict only untouched images."""
    from segstudio.inference.maskrcnn import model as maskrcnn
    monkeypatch.setattr(maskrcnn.torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no COCO file here
    p = disc_folder(tmp_path, n=4, done=2)
    lr = LiveLearner(p, LiveConfig(arch="maskrcnn", seconds=2, device="cpu",
                                   trainer={"steps": 2, "batch": 1, "min_size": 64, "max_size": 64,
                                            "download": False}))
    v1 = lr.update()
    assert v1.start.startswith("scratch")
    v2 = lr.update()
    assert v2.version == 2 and "live-maskrcnn-0001.pt" in v2.start
    recs = p.store.images()
    rep = lr.repredict(lr.next_images(recs[1].path), may_write=lambda iid: iid != recs[3].id)
    assert rep.skipped == [recs[3].id] and rep.written == [recs[2].id]
    assert p.store.image(recs[2].id).status == PREDICTED


def test_warm_up_loads_the_trainers_and_freezes_their_objects():
    import gc
    import sys
    before = gc.get_freeze_count()
    try:
        live.warm_up()
        assert "segstudio.inference.training.unet" in sys.modules and "segstudio.inference.training.maskrcnn" in sys.modules
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()
