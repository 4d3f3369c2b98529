import json
import sys

import numpy as np
import pytest
from PIL import Image

from segstudio.cli import main
from segstudio.core.project import Project
from segstudio.inference.runtime.engine import ClassMapper, ModelSpec, load_segmenter, predict_project
from tests.inference.helpers import blob_image, tiny_maskrcnn_checkpoint, tiny_unet_checkpoint


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(5):
        Image.fromarray(blob_image(48, 64, seed=i)).save(d / f"{i}.png")
    (d / "broken.jpg").write_bytes(b"garbage")
    return d


def test_predict_project_unet_stores_regions_status_uncertainty(folder, tmp_path):
    ck = tiny_unet_checkpoint(tmp_path / "u.pt", classes=("blob",))
    p = Project.open(folder)
    seg = load_segmenter(ModelSpec("unet", str(ck), "cpu"), p)
    rep = predict_project(p, seg, ("new",), batch=2)
    assert rep.images == 5 and len(rep.errors) == 1 and "broken.jpg" in rep.errors[0][0]
    recs = [r for r in p.store.images() if r.path != "broken.jpg"]
    assert all(r.status == "predicted" and r.uncertainty is not None for r in recs)
    n = p.store.region_count()
    assert n == rep.regions
    # predicting again replaces this model's regions, keeps manual ones, and does not touch done images
    from segstudio.core.region import Region
    r0 = recs[0]
    cid = p.store.ensure_class("blob").id
    p.store.save_regions(r0.id, [Region(p.store.new_region_id(), cid, np.ones((3, 3), bool), 0, 0)])
    p.store.set_status(recs[1].id, "done")
    rep2 = predict_project(p, seg, ("new", "predicted"), batch=3)
    assert rep2.images == 4
    assert any(r.source == "manual" for r in p.store.regions(r0.id))
    assert p.store.image(recs[1].id).status == "done"


def test_predict_maskrcnn_maps_and_creates_classes(folder, tmp_path):
    ck = tiny_maskrcnn_checkpoint(tmp_path / "m.pt", classes=("thing", "other"))
    p = Project.open(folder)
    seg = load_segmenter(ModelSpec("maskrcnn", str(ck), "cpu", score_threshold=0.0), p)
    seg.model.transform.min_size, seg.model.transform.max_size = (48,), 64
    rep = predict_project(p, seg, ("new",), batch=2)
    assert rep.images == 5 and rep.regions > 0
    names = {c.name for c in p.store.classes()}
    assert names <= {"thing", "other"} and names
    assert all(r.source == "maskrcnn" and r.score is not None for rec in p.store.images()
               for r in p.store.regions(rec.id))


def test_class_mapper_without_create_drops(folder):
    p = Project.open(folder)
    p.store.add_class("cat")
    m = ClassMapper(p, ["cat", "dog", "N/A"], create=False)
    assert m(1) == p.store.class_by_name("cat").id
    assert m(2) is None and m.dropped == {"dog": 1} and m(3) is None and m(9) is None


def test_cancel_stops_between_batches(folder, tmp_path):
    ck = tiny_unet_checkpoint(tmp_path / "u.pt")
    p = Project.open(folder)
    seg = load_segmenter(ModelSpec("unet", str(ck), "cpu"), p)
    calls = {"n": 0}

    def cancel():
        calls["n"] += 1
        return calls["n"] > 1
    rep = predict_project(p, seg, None, batch=1, cancel=cancel)
    assert rep.images < 5


def test_unet_without_checkpoint_says_what_to_do(folder):
    p = Project.open(folder)
    from segstudio.inference.runtime.checkpoint import CheckpointError
    with pytest.raises(CheckpointError, match="train one first"):
        load_segmenter(ModelSpec("unet", None, "cpu"), p)


def test_cli_predict(folder, tmp_path, capsys):
    ck = tiny_unet_checkpoint(tmp_path / "u.pt", classes=("blob",))
    code = main(["predict", str(folder), "--model", "unet", "--weights", str(ck), "--device", "cpu",
                 "--batch", "2", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    d = json.loads(out)
    assert d["images"] == 5 and len(d["errors"]) == 1
    code = main(["predict", str(folder), "--model", "unet", "--weights", str(tmp_path / "missing.pt")])
    err = capsys.readouterr().err
    assert code == 2 and "checkpoint not found" in err
    code = main(["predict", str(folder), "--model", "maskrcnn", "--device", "cuda"])
    err = capsys.readouterr().err
    if not __import__("torch").cuda.is_available():
        assert code == 2 and "CUDA was asked for" in err


@pytest.mark.parametrize("arch", ["unet", "maskrcnn"])
def test_post_processing_in_worker_processes_gives_the_same_regions(folder, tmp_path, arch):
    """Mask R-CNN's workers get the 28x28 masks and paste them (instance_masks) in the process."""
    import shutil
    from tests.inference.helpers import trained_disc_unet
    # models that write regions (an untrained UNet's map is all background: both sides would agree on nothing)
    ck = trained_disc_unet(tmp_path / "u.pt") if arch == "unet" else tiny_maskrcnn_checkpoint(tmp_path / "m.pt")
    other = tmp_path / "copy"
    shutil.copytree(folder, other)
    out = []
    for f, procs in ((folder, False), (other, True)):
        p = Project.open(f)
        seg = load_segmenter(ModelSpec(arch, str(ck), "cpu", score_threshold=0.05), p)
        rep = predict_project(p, seg, ("new",), batch=2, post_processes=procs)
        out.append(sorted((r.path, reg.area, reg.x, reg.y) for r in p.store.images() for reg in p.store.regions(r.id)))
        assert rep.images == 5
    assert out[0] == out[1] and len(out[0]) > 0


def _pipeline_threads():
    import threading
    return [t for t in threading.enumerate() if t.name.startswith("segstudio-pipeline")]


@pytest.mark.timeout(120)
def test_a_failing_store_write_is_raised_not_hung(tmp_path, monkeypatch):
    # more batches than the pipeline's queues hold: a writer that died and left them full would hang
    d = tmp_path / "many"
    d.mkdir()
    for i in range(60):
        Image.fromarray(blob_image(16, 16, seed=i)).save(d / f"{i}.png")
    ck = tiny_unet_checkpoint(tmp_path / "u.pt", classes=("blob",))
    p = Project.open(d)
    seg = load_segmenter(ModelSpec("unet", str(ck), "cpu"), p)

    def broken(entries, only_statuses=None, claim_owner=None):
        raise OSError("disk full")
    monkeypatch.setattr(p.store, "replace_source_regions_many", broken)
    with pytest.raises(OSError, match="disk full"):
        predict_project(p, seg, ("new",), batch=1)
    assert not _pipeline_threads()
    assert all(r.status == "new" for r in p.store.images())


@pytest.mark.timeout(120)
def test_a_failing_post_dispatch_is_raised(folder, tmp_path, monkeypatch):
    import segstudio.inference.runtime.engine as engine
    ck = tiny_unet_checkpoint(tmp_path / "u.pt", classes=("blob",))
    p = Project.open(folder)
    seg = load_segmenter(ModelSpec("unet", str(ck), "cpu"), p)

    def broken(pred):
        raise ValueError("bad prediction")
    monkeypatch.setattr(engine, "payload", broken)
    with pytest.raises(ValueError, match="bad prediction"):
        predict_project(p, seg, ("new",), batch=2)
    assert not _pipeline_threads()


def test_progress_counts_every_image_once(folder, tmp_path):
    ck = tiny_unet_checkpoint(tmp_path / "u.pt", classes=("blob",))
    p = Project.open(folder)
    seg = load_segmenter(ModelSpec("unet", str(ck), "cpu"), p)
    seen = []
    rep = predict_project(p, seg, ("new",), batch=2, progress=lambda d, t, path: seen.append((d, t)))
    assert rep.images == 5 and len(rep.errors) == 1
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and all(t == 6 for _, t in seen)
    assert len(seen) == 5 and seen[-1][0] >= 5


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_helper_threads_yield_to_the_model():
    import os
    import threading

    from segstudio.inference.runtime.engine import lower_thread_priority
    seen = {}

    def helper():
        tid = threading.get_native_id()
        before = os.getpriority(os.PRIO_PROCESS, tid)
        lower_thread_priority()
        seen["after"], seen["before"] = os.getpriority(os.PRIO_PROCESS, tid), before
    t = threading.Thread(target=helper)
    t.start()
    t.join()
    assert seen["after"] == min(19, seen["before"] + 10)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == seen["before"]  # only that thread
