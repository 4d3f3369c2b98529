"""The U-Net border weight map, and how per-pixel weights ride through augmentation and the loss."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from segstudio.inference.training.unet import IGNORE, _Item, ce_loss, sample_batch
from segstudio.inference.training.weight_maps import border_weight_map


def two_cells(gap: int) -> np.ndarray:
    lab = np.zeros((40, 60), np.uint8)
    lab[10:30, 5:25] = 1
    lab[10:30, 25 + gap:45 + gap] = 1
    return lab


def test_narrow_gap_between_two_objects_weighs_most():
    lab = two_cells(gap=2)
    w = border_weight_map(lab, w0=10, sigma=5)
    gap = w[15:25, 25:27]
    assert gap.min() > 8  # d1 + d2 about 2 px: close to 1 + w0
    assert w[0, 0] < 1.5  # a corner far from both cells
    assert np.all(w >= 1) and np.all(w <= 11)
    wide = border_weight_map(two_cells(gap=20), w0=10, sigma=5)
    assert wide[15:25, 35].max() < 2  # the middle of a wide gap: d1 + d2 = 20 px = 4 sigma
    assert gap.mean() > wide[15:25, 25:45].mean() + 5


def test_one_object_or_none_gives_plain_weights():
    lab = np.zeros((30, 30), np.uint8)
    assert np.array_equal(border_weight_map(lab), np.ones((30, 30), np.float32))
    lab[5:20, 5:20] = 2
    assert np.array_equal(border_weight_map(lab), np.ones((30, 30), np.float32))  # no second object


def test_objects_of_different_classes_are_separate_and_ignore_is_plain():
    lab = two_cells(gap=2)
    lab[:, 27:] *= 2  # the right-hand cell is class 2
    w = border_weight_map(lab, w0=10, sigma=5)
    assert w[15:25, 25:27].min() > 8
    lab[15:25, 25:27] = IGNORE
    w = border_weight_map(lab, w0=10, sigma=5)
    assert np.all(w[15:25, 25:27] == 1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40)), elements=st.sampled_from([0, 1, 2, IGNORE])),
       st.floats(0.5, 20), st.floats(0.5, 15))
def test_any_label_map_gives_finite_bounded_weights(lab, w0, sigma):
    w = border_weight_map(lab, w0, sigma)
    assert w.shape == lab.shape and w.dtype == np.float32
    assert np.all(np.isfinite(w))
    assert np.all(w >= 1) and np.all(w <= 1 + w0 + 1e-4)


def test_weights_follow_the_labels_through_augmentation():
    rng = np.random.default_rng(0)
    lab = np.zeros((96, 96), np.uint8)
    for _ in range(12):
        y, x = rng.integers(0, 80, 2)
        lab[y:y + 16, x:x + 10] = 1
    img = rng.random((96, 96, 1), dtype=np.float32)
    weight = np.where(lab == 1, 5.0, 1.0).astype(np.float32)  # easy to recognise after warping
    items = [_Item("a.png", img, lab, weight)]
    xs, ys, ws = sample_batch(items, np.random.default_rng(1), batch=16, crop=64)
    assert ws is not None and ws.shape == ys.shape and xs.shape == (16, 1, 64, 64)
    agree = ((ws > 3) == (ys == 1)).mean()
    assert agree > 0.95  # the same crop, flips, rotation and deformation (interpolation differs at edges)
    _, _, none = sample_batch([_Item("a.png", img, lab)], np.random.default_rng(1), batch=2, crop=64)
    assert none is None


def test_pixel_weights_in_the_loss():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8)
    target = torch.randint(0, 3, (2, 8, 8))
    plain = ce_loss(logits, target, 3)
    assert torch.allclose(ce_loss(logits, target, 3, pixel_weights=torch.full((2, 8, 8), 4.0)), plain)
    w = torch.ones(2, 8, 8)
    w[0, 0, 0] = 0.0  # a zero-weight pixel counts as if it were ignored
    t_ignored = target.clone()
    t_ignored[0, 0, 0] = IGNORE
    assert torch.allclose(ce_loss(logits, target, 3, pixel_weights=w), ce_loss(logits, t_ignored, 3))
    heavy = torch.ones(2, 8, 8)
    per = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    worst = per.flatten().argmax()
    heavy.view(-1)[worst] = 100.0
    assert ce_loss(logits, target, 3, pixel_weights=heavy) > plain


def test_all_ignored_crop_with_weights_is_zero_not_nan():
    logits = torch.randn(1, 2, 4, 4, requires_grad=True)
    target = torch.full((1, 4, 4), IGNORE, dtype=torch.long)
    loss = ce_loss(logits, target, 2, pixel_weights=torch.ones(1, 4, 4) * 3)
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_cpu_mixed_precision_is_bfloat16_only_where_native(monkeypatch):
    from segstudio.inference.training import common as train_common
    from segstudio.inference.training.common import amp_context
    with amp_context("cpu", True):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    with amp_context("cpu", False):
        assert not torch.is_autocast_enabled("cpu")
    train_common.cpu_bf16_native.cache_clear()
    monkeypatch.setattr(train_common.Path, "read_text", lambda self, **k: "flags : fpu avx2 avx512f\n")
    assert train_common.cpu_bf16_native() is False  # AVX-512 without BF16: emulated, slower
    train_common.cpu_bf16_native.cache_clear()
    monkeypatch.setattr(train_common.Path, "read_text", lambda self, **k: "flags : fpu avx512f avx512_bf16\n")
    assert train_common.cpu_bf16_native() is (torch.backends.mkldnn.is_available())
    train_common.cpu_bf16_native.cache_clear()


def test_training_with_the_border_map_and_either_precision(tmp_path):
    from segstudio.inference.training.common import cpu_bf16_native
    from segstudio.inference.training.unet import UNetTrainConfig, train_unet
    from tests.inference.test_training import disc_project
    p = disc_project(tmp_path, n=4)
    # no final fit: the validation figure below is of all 8 epochs (the final fit is tested with
    # the border map in test_train_budget)
    cfg = UNetTrainConfig(epochs=8, batch=4, crop=64, seed=0, val_fraction=0.25, device="cpu",
                          unet={"depth": 2, "width": 8}, border_weight=10, border_sigma=3, final_fit=0.0)
    res = train_unet(p, tmp_path / "m.pt", cfg)
    assert res.best_metrics["per_class_iou"]["1"] >= 0.8, res.history
    assert ("bfloat16" in res.device) == cpu_bf16_native()
    full = train_unet(p, tmp_path / "f.pt", UNetTrainConfig(**{**cfg.__dict__, "amp": False, "epochs": 1}))
    assert "bfloat16" not in full.device


def test_cli_border_weight(tmp_path, capsys):
    from segstudio.cli import main
    from segstudio.inference.runtime.checkpoint import load_checkpoint
    from tests.inference.test_training import disc_project
    disc_project(tmp_path, n=3).close()
    folder, out = tmp_path / "imgs", tmp_path / "u.pt"
    for bad, model in (("nan", "unet"), ("-1", "unet"), ("10", "maskrcnn")):
        code = main(["train", str(folder), "--model", model, "--out", str(out), "--epochs", "1", "--device", "cpu",
                     "--border-weight", bad])
        assert code != 0 and "--border-weight" in capsys.readouterr().err and not out.exists()
    code = main(["train", str(folder), "--model", "unet", "--out", str(out), "--epochs", "1", "--device", "cpu",
                 "--width", "4", "--depth", "2", "--crop", "48", "--border-weight", "10"])
    assert code == 0, capsys.readouterr().err
    assert load_checkpoint(out).training["config"]["border_weight"] == 10
