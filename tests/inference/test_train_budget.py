"""A budget is used: a time budget is never cut short by early stopping, the learning rate falls
along the whole budget to its low end, and the final model has learnt from every done image (a
final fit after the validated fit); an epoch budget may still stop early; cancel still works."""

import json
import time

import numpy as np
import pytest
import torch

from segstudio.cli import main
from segstudio.core.records import DONE
from segstudio.inference.runtime.checkpoint import Checkpoint, load_checkpoint
from segstudio.inference.training import common
from segstudio.inference.training import unet as tu
from segstudio.inference.training.common import (FINAL, FIT, Budget, FinalFit, LoopState, Validation, cosine_lr,
                                                 run_training)
from segstudio.inference.training.unet import UNetTrainConfig, train_unet
from tests.inference.test_training import disc_project

FAST = {"batch": 2, "crop": 32, "device": "cpu", "unet": {"depth": 1, "width": 4}, "steps_per_epoch": 3}
LR = 1e-2


class _Clock:
    """The training loop's clock, advanced by `tick` seconds at each look: a time budget spent
    in the same steps however busy the machine is."""

    def __init__(self, tick: float):
        self.t, self.tick = 0.0, tick
        self.strftime = time.strftime

    def perf_counter(self) -> float:
        self.t += self.tick
        return self.t


class _Loop:
    """run_training on a one-parameter model: validation scores are given (a flat score never
    improves); batches say which stage drew them."""

    def __init__(self, tmp_path, scores=None):
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.opt = torch.optim.SGD([self.w], lr=LR)
        self.scores = list(scores or [])
        self.drawn: list[str] = []
        self.restored: list[str] = []
        self.reports: list = []
        self.best, self.last = tmp_path / "b.pt", tmp_path / "b-last.pt"
        self.state = LoopState()

    def batches(self, stage):
        def gen():
            while True:
                yield stage
        return gen

    def loss(self, batch):
        self.drawn.append(batch)
        return (self.w - 1.0).pow(2).sum()

    def validate(self):
        s = self.scores.pop(0) if self.scores else 0.5
        return Validation({"score": s}, s, {"val_score": s})

    def ckpt(self, metrics):
        return Checkpoint("unet", {}, ["x"], {"w": self.w.detach().clone()}, {},
                          {"metrics": metrics, "final_fit": self.state.final_fit})

    def run(self, budget, final=True, patience=2, **kw):
        ff = FinalFit(["a", "b", "c"], 2, self.batches(FINAL), lambda p: self.restored.append(p.name), 0.2) \
            if final else None
        return run_training(budget=budget, state=self.state, steps_per_epoch=3, batches=self.batches(FIT),
                            loss=self.loss, opt=self.opt, scaler=torch.amp.GradScaler("cuda", enabled=False),
                            validate=self.validate, make_checkpoint=self.ckpt, best_path=self.best,
                            last_path=self.last, patience=patience, progress=self.reports.append,
                            lr_schedule=cosine_lr(LR), final_fit=ff, images=(2, 1), **kw)


def test_a_time_budget_is_not_cut_short_by_early_stopping(tmp_path, monkeypatch):
    clock = _Clock(0.005)  # a step looks at the clock 3 times: 15 ms a step
    monkeypatch.setattr(common, "time", clock)
    loop = _Loop(tmp_path, scores=[0.9] + [0.1] * 1000)  # never better than epoch 1
    state = loop.run(Budget(None, 0.02, None), patience=1)  # 1.2 s
    assert clock.t >= 1.2 and state.stopped == "time"
    fit = [h for h in state.history if h["stage"] == FIT]
    assert len(fit) > 3  # patience 1 would have stopped after epoch 2
    # validation picked epoch 1: the final fit started from its weights
    assert loop.restored == ["b.pt"] and state.final_fit["from_epoch"] == 1


def test_the_schedule_reaches_its_low_end_where_the_time_budget_does(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "time", _Clock(0.005))
    loop = _Loop(tmp_path)
    state = loop.run(Budget(None, 0.02, None))
    lrs = [(r.stage, r.elapsed, r.lr) for r in loop.reports if r.phase == "train"]
    assert lrs[0][2] == pytest.approx(LR, rel=0.02)
    assert lrs[-1][2] <= cosine_lr(LR)(0.98) < 0.051 * LR  # down to its low end (5 %) where the budget ends
    assert all(a[2] >= b[2] for a, b in zip(lrs, lrs[1:], strict=False))  # falling, through both stages
    # the fit takes the first 80 % of the time, the final fit the rest
    first_final = next(e for s, e, _ in lrs if s == FINAL)
    assert 0.8 * 1.2 <= first_final <= 1.2
    assert state.final_fit["steps"] == sum(1 for r in lrs if r[0] == FINAL) > 0


def test_an_epoch_budget_still_stops_early_then_fits_on_everything(tmp_path):
    loop = _Loop(tmp_path, scores=[0.9] + [0.1] * 100)
    state = loop.run(Budget(20, None, None), patience=2)
    assert state.stopped == "early stopping"
    stages = [h["stage"] for h in state.history]
    assert stages == [FIT] * 3 + [FINAL] * 4  # 1 best + 2 without improvement; the last 20 % of 20 epochs
    assert loop.drawn.count(FINAL) == 4 * 2 and state.final_fit["epochs"] == 4
    assert loop.restored == ["b.pt"]
    # the final fit runs on the schedule's tail: the budget's last 4 of 20 epochs
    final_lrs = [r.lr for r in loop.reports if r.phase == "train" and r.stage == FINAL]
    assert final_lrs[0] == pytest.approx(cosine_lr(LR)(16 / 20)) and final_lrs[-1] < cosine_lr(LR)(0.97)


def test_an_epoch_budget_that_runs_its_course(tmp_path):
    loop = _Loop(tmp_path, scores=[0.1 * i for i in range(1, 100)])  # always improving
    state = loop.run(Budget(5, None, None))
    assert state.stopped == "epochs" and [h["stage"] for h in state.history] == [FIT] * 4 + [FINAL]
    assert loop.restored == []  # the last validated epoch was the best: no reload
    # one epoch has no room for a final fit
    loop = _Loop(tmp_path)
    state = loop.run(Budget(1, None, None))
    assert [h["stage"] for h in state.history] == [FIT] and state.final_fit is None


def test_cancel_in_the_fit_and_in_the_final_fit(tmp_path):
    steps = {"n": 0}

    def cancel_after(n):
        def cancel():
            steps["n"] += 1
            return steps["n"] > n
        return cancel
    loop = _Loop(tmp_path)
    state = loop.run(Budget(10, None, cancel_after(4)))  # in the fit's second epoch
    assert state.stopped == "cancelled" and state.final_fit is None
    assert all(h["stage"] == FIT for h in state.history) and loop.best.exists()
    steps["n"] = 0
    loop = _Loop(tmp_path / "2", scores=[0.1 * i for i in range(1, 100)])
    state = loop.run(Budget(5, None, cancel_after(13)))  # 4 fit epochs of 3 steps, then a final step
    assert state.stopped == "cancelled"
    assert state.final_fit["cancelled"] and state.final_fit["steps"] == 1
    # the best checkpoint stays the validated one; the last one says it saw every image, partly
    assert load_checkpoint(loop.best).training["final_fit"] is None
    assert load_checkpoint(loop.last).training["final_fit"]["cancelled"]


def test_a_step_budget_has_no_final_fit(tmp_path):
    loop = _Loop(tmp_path)
    state = loop.run(Budget(None, None, None, steps=4))
    assert state.stopped == "steps" and state.final_fit is None and FINAL not in loop.drawn


@pytest.fixture
def steady_clock(monkeypatch):
    monkeypatch.setattr(common, "time", _Clock(0.02))  # 2.4 s (0.04 min): about 40 steps


def _every_done_path(p):
    return sorted(r.path for r in p.store.images(statuses=(DONE,)))


def test_the_final_unet_learnt_from_every_done_image(tmp_path, monkeypatch, steady_clock):
    p = disc_project(tmp_path, n=5, size=48)
    made = []
    real = tu.BatchPrefetcher

    def recording(items, *a, **k):
        made.append(sorted(it.path for it in items))
        return real(items, *a, **k)
    monkeypatch.setattr(tu, "BatchPrefetcher", recording)
    cfg = UNetTrainConfig(minutes=0.04, val_fraction=0.4, patience=1, **FAST)
    res = train_unet(p, tmp_path / "m.pt", cfg)
    every = _every_done_path(p)
    assert res.stopped == "time" and len(res.validated_on) == 2
    # the fit drew from the 3 training images, the final fit from all 5
    assert made == [sorted(set(every) - set(res.validated_on)), every]
    assert sorted(res.final_fit["images"]) == every and res.final_fit["steps"] > 0
    assert sorted(res.train_images) == every and res.val_images == []
    ck = load_checkpoint(res.best_path)
    assert sorted(ck.training["final_fit"]["images"]) == every and ck.training["val_images"] == []
    assert sorted(ck.training["validated_on"]) == sorted(res.validated_on)
    assert ck.training["history"][-1]["stage"] == FINAL and ck.training["metrics"] == res.best_metrics
    # the best and the last checkpoint are the final model
    last = load_checkpoint(res.last_path)
    for k in ck.state_dict:
        assert torch.equal(ck.state_dict[k], last.state_dict[k]), k


def test_the_final_fit_learns_the_border_map_of_every_image(tmp_path, monkeypatch):
    p = disc_project(tmp_path, n=3, size=48)
    made = []
    real = tu.BatchPrefetcher

    def recording(items, *a, **k):
        made.append([it.weight is not None for it in items])
        return real(items, *a, **k)
    monkeypatch.setattr(tu, "BatchPrefetcher", recording)
    res = train_unet(p, tmp_path / "m.pt", UNetTrainConfig(epochs=2, val_fraction=0.34, border_weight=10, **FAST))
    assert res.final_fit is not None and made == [[True, True], [True, True, True]]


def test_no_final_fit_when_asked_or_without_validation_images(tmp_path):
    p = disc_project(tmp_path, n=3, size=48)
    res = train_unet(p, tmp_path / "a.pt", UNetTrainConfig(epochs=3, val_fraction=0.34, final_fit=0.0, **FAST))
    assert res.final_fit is None and len(res.val_images) == 1 and len(res.history) == 3
    res = train_unet(p, tmp_path / "b.pt", UNetTrainConfig(epochs=3, val_fraction=0.0, **FAST))
    assert res.final_fit is None and res.val_images == [] and len(res.train_images) == 3


def test_live_updates_keep_their_held_aside_images_unseen(tmp_path):
    from tests.inference.test_live import learner, disc_folder
    p = disc_folder(tmp_path, n=5, done=4)
    v = learner(p).update()
    ck = load_checkpoint(v.path)
    assert ck.training["final_fit"] is None
    assert set(ck.training["val_images"]).isdisjoint(ck.training["train_images"])
    assert len(ck.training["val_images"]) == 1


def test_cli_train_shows_both_stages(tmp_path, capsys, steady_clock):
    p = disc_project(tmp_path, n=4, size=48)
    p.close()
    folder, out = tmp_path / "imgs", tmp_path / "m.pt"
    args = ["train", str(folder), "--model", "unet", "--device", "cpu", "--width", "4", "--depth", "1",
            "--crop", "32", "--batch", "2", "--out", str(out)]
    assert main([*args, "--minutes", "0.04"]) == 0
    cap = capsys.readouterr()
    assert "fit: training on 3 images, validating on 1; then a final fit on all 4 images" in cap.err
    assert "final fit: final fit on all 4 images" in cap.err
    assert "stopped by time" in cap.out and "final fit on all 4 images from epoch" in cap.out
    assert "validation before the final fit mean_iou" in cap.out
    # the final model holds nothing out: evaluating "its validation images" is refused, with the reason
    assert main(["evaluate", str(folder), "--weights", str(out), "--split", "val"]) != 0
    assert "final fit learnt from every image" in capsys.readouterr().err
    assert main([*args, "--epochs", "1", "--final-fit", "1"]) != 0
    assert "--final-fit must be a share" in capsys.readouterr().err
    assert main([*args, "--epochs", "3", "--final-fit", "0", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["final_fit"] is None and d["val_images"] == 1 and d["stopped"] == "epochs"
    # no validation images: the epoch line says so instead of a validation score of 0
    assert main([*args, "--epochs", "1", "--val-fraction", "0"]) == 0
    err = capsys.readouterr().err
    assert "(no validation images)" in err and "val 0.0000" not in err


@pytest.mark.slow
def test_maskrcnn_final_fit_on_every_image(tmp_path, monkeypatch):
    from segstudio.inference.maskrcnn import model as maskrcnn
    from segstudio.inference.training.maskrcnn import MaskRCNNTrainConfig, train_maskrcnn
    monkeypatch.setattr(maskrcnn.torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no COCO file here
    p = disc_project(tmp_path, n=3, size=64)
    cfg = MaskRCNNTrainConfig(epochs=2, batch=1, device="cpu", min_size=64, max_size=64, download=False,
                              val_fraction=0.34, patience=1)
    res = train_maskrcnn(p, tmp_path / "mr.pt", cfg)
    assert res.stopped == "epochs" and [h["stage"] for h in res.history] == [FIT, FINAL]
    assert sorted(res.final_fit["images"]) == _every_done_path(p) and len(res.validated_on) == 1
    assert load_checkpoint(res.best_path).training["final_fit"]["steps"] == 3  # 3 images, batch 1
    assert np.isfinite(res.history[-1]["loss"])
