"""The one training loop: progress reports, a failing batch thread, warm starts, and what --out
may overwrite."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from segstudio.cli import main
from segstudio.inference.training import unet as tu
from segstudio.inference.runtime.checkpoint import is_segstudio_checkpoint, load_checkpoint
from segstudio.inference.training.common import TrainingError, TrainProgress
from segstudio.inference.training.unet import BatchPrefetcher, UNetTrainConfig, train_unet
from tests.inference.helpers import tiny_maskrcnn_checkpoint, tiny_unet_checkpoint
from tests.inference.test_training import disc_project

FAST = {"batch": 2, "crop": 32, "device": "cpu", "unet": {"depth": 1, "width": 4}, "steps_per_epoch": 3}


def test_progress_reports_are_train_steps_then_a_validation(tmp_path):
    p = disc_project(tmp_path, n=3)
    seen: list[TrainProgress] = []
    res = train_unet(p, tmp_path / "m.pt", UNetTrainConfig(epochs=2, **FAST), progress=seen.append)
    # 2 epochs: one validated, then a final fit on every image (no validation in it)
    assert [s.phase for s in seen] == ["train"] * 3 + ["val"] + ["train"] * 3
    assert [s.stage for s in seen] == ["fit"] * 4 + ["final fit"] * 3
    assert seen[0].note == ("training on 2 images, validating on 1; then a final fit on all 3 images for the "
                            "last 1 epoch")
    assert seen[-1].note.startswith("final fit on all 3 images (from epoch 1's weights)")
    assert [s.step for s in seen if s.phase == "train"] == [1, 2, 3, 4, 5, 6]
    first, val = seen[0], seen[3]
    assert (first.epoch, first.steps_per_epoch, first.epochs, first.minutes) == (0, 3, 2, None)
    assert first.val == {} and first.score is None and first.best is None
    # a validation report carries what the history entry has, plus the best score so far
    h = res.history[0]
    assert val.epoch == 1 and val.loss == pytest.approx(h["loss"])
    assert val.val == {"val_mean_iou": h["val_mean_iou"], "val_pixel_accuracy": h["val_pixel_accuracy"]}
    assert val.score == h["val_mean_iou"] and val.best == val.score
    with pytest.raises(dataclasses.FrozenInstanceError):
        val.loss = 0.0


def _broken_sample_batch(*a, **k):
    raise ValueError("cannot crop this image")


@pytest.mark.timeout(60)
def test_prefetcher_raises_the_error_of_its_thread(monkeypatch):
    monkeypatch.setattr(tu, "sample_batch", _broken_sample_batch)
    b = BatchPrefetcher([], np.random.default_rng(0), 2, 16)
    try:
        for _ in range(2):  # and again: a second call must not wait on the empty queue
            with pytest.raises(ValueError, match="cannot crop"):
                b.next()
    finally:
        b.close()
    assert not b.t.is_alive()


@pytest.mark.timeout(120)
def test_training_fails_instead_of_hanging_when_batches_fail(tmp_path, monkeypatch):
    p = disc_project(tmp_path, n=3)
    monkeypatch.setattr(tu, "sample_batch", _broken_sample_batch)
    with pytest.raises(ValueError, match="cannot crop"):
        train_unet(p, tmp_path / "m.pt", UNetTrainConfig(epochs=1, **FAST))


def _first_loss(p, out, cfg, **kw):
    losses = []
    res = train_unet(p, out, cfg, progress=lambda s: losses.append(s.loss) if s.phase == "train" else None, **kw)
    return losses[0], res


def test_warm_start_begins_where_the_checkpoint_left_off(tmp_path):
    p = disc_project(tmp_path, n=4, size=64)
    learn = UNetTrainConfig(epochs=10, batch=4, crop=48, seed=0, device="cpu", steps_per_epoch=6,
                            unet={"depth": 2, "width": 8})
    trained = train_unet(p, tmp_path / "trained.pt", learn)
    # a short run with other UNet settings: the warm start takes the checkpoint's architecture
    short = UNetTrainConfig(epochs=1, batch=4, crop=48, seed=5, device="cpu", steps_per_epoch=2,
                            unet={"depth": 1, "width": 4})
    cold, _ = _first_loss(p, tmp_path / "cold.pt", short)
    warm, res = _first_loss(p, tmp_path / "warm.pt", short, init=trained.best_path)
    assert warm < 0.6 * cold, (warm, cold)
    assert warm < 1.5 * trained.history[-1]["loss"], (warm, trained.history)
    assert res.start == "warm start from trained.pt"
    # a new run: its own epoch count, history and optimizer (not resumed)
    assert [h["epoch"] for h in res.history] == [1]
    last = load_checkpoint(res.last_path)
    assert last.resume["epoch"] == 1 and last.resume["step"] == 2
    assert last.config["width"] == 8 and last.config["depth"] == 2
    assert last.training["start"] == "warm start from trained.pt"


def test_warm_start_needs_the_projects_classes(tmp_path):
    p = disc_project(tmp_path, n=3)
    ck = tiny_unet_checkpoint(tmp_path / "other.pt", classes=("cell",), in_channels=1, depth=1)
    with pytest.raises(TrainingError, match=r"cannot warm-start: the checkpoint's classes \['cell'\] differ"):
        train_unet(p, tmp_path / "m.pt", UNetTrainConfig(epochs=1, **FAST), init=ck)
    with pytest.raises(TrainingError, match="not both"):
        train_unet(p, tmp_path / "m.pt", UNetTrainConfig(epochs=1, **FAST), init=ck, resume=ck)
    assert not (tmp_path / "m.pt").exists()


def test_maskrcnn_warm_start(tmp_path, monkeypatch):
    from segstudio.inference.maskrcnn import model as maskrcnn
    from segstudio.inference.training.maskrcnn import MaskRCNNTrainConfig, train_maskrcnn
    monkeypatch.setattr(maskrcnn.torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no COCO file here
    p = disc_project(tmp_path, n=2, size=64)
    start = tiny_maskrcnn_checkpoint(tmp_path / "start.pt", classes=("thing", "other"))
    cfg = MaskRCNNTrainConfig(steps=1, batch=1, device="cpu", min_size=64, max_size=64, download=False,
                              val_fraction=0.5, lr=0.0)  # the step leaves the weights as they started
    res = train_maskrcnn(p, tmp_path / "mr.pt", cfg, init=start)
    assert res.start == "warm start from start.pt" and res.stopped == "steps"
    ck = load_checkpoint(res.best_path)
    assert ck.classes == ["disc"] and ck.config["num_classes"] == 2  # heads replaced for the project's classes
    # the backbone starts from the checkpoint's weights, not from scratch
    first = load_checkpoint(start).state_dict
    assert torch.equal(ck.state_dict["backbone.body.conv1.weight"], first["backbone.body.conv1.weight"])
    with pytest.raises(TrainingError, match="not both"):
        train_maskrcnn(p, tmp_path / "mr2.pt", MaskRCNNTrainConfig(weights=str(tmp_path / "x.pt")), init=start)


def test_is_segstudio_checkpoint(tmp_path):
    ck = tiny_unet_checkpoint(tmp_path / "a.pt")
    torch.save({"w": torch.zeros(3)}, tmp_path / "plain.pt")
    (tmp_path / "notes.txt").write_text("do not lose me")
    assert is_segstudio_checkpoint(ck)
    assert not is_segstudio_checkpoint(tmp_path / "plain.pt")
    assert not is_segstudio_checkpoint(tmp_path / "notes.txt")
    assert not is_segstudio_checkpoint(tmp_path / "missing.pt")


def test_cli_train_does_not_overwrite_other_files(tmp_path, capsys):
    p = disc_project(tmp_path, n=3)
    p.close()
    folder = tmp_path / "imgs"
    args = ["train", str(folder), "--model", "unet", "--epochs", "1", "--device", "cpu", "--width", "4",
            "--depth", "1", "--crop", "32", "--json"]
    notes = tmp_path / "notes.txt"
    notes.write_text("do not lose me")
    assert main([*args, "--out", str(notes)]) != 0
    err = capsys.readouterr().err
    assert "notes.txt exists and is not a segstudio checkpoint" in err and "Traceback" not in err
    assert notes.read_text() == "do not lose me"
    # the -last file beside --out is written too, so it is checked too
    out = tmp_path / "m.pt"
    (tmp_path / "m-last.pt").write_bytes(b"\x89PNG not a checkpoint")
    assert main([*args, "--out", str(out)]) != 0
    assert "m-last.pt exists" in capsys.readouterr().err and not out.exists()
    (tmp_path / "m-last.pt").unlink()
    # a checkpoint (an earlier run's) is replaced as before
    tiny_unet_checkpoint(out, classes=("old",))
    assert main([*args, "--out", str(out)]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["best"] == str(out)
    assert load_checkpoint(out).classes == ["disc"]
