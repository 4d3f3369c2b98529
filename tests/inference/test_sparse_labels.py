"""Sparse (scribble) labels: unlabelled pixels are ignored by the UNet loss when asked, instead
of being learned as background; partly labelled done images are named before training."""

import numpy as np
import pytest
import torch
from PIL import Image

from segstudio.cli import main
from segstudio.core.coverage import SPARSE_FRACTION, sparse_images
from segstudio.core.project import Project
from segstudio.core.region import Region
from segstudio.inference.training.common import TrainingError, training_classes
from segstudio.inference.training.unet import IGNORE, UNetTrainConfig, load_items, train_unet, unet_loss

SIZE = 48


def square_project(root, n=3, seed=0):
    """Bright squares on a dark ground. Labels are scribbles: a short stroke inside the square
    (class 'object') and one on the ground (class 'background'); every other pixel unlabelled."""
    d = root / "imgs"
    d.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = rng.normal(50, 8, (SIZE, SIZE))
        img[8:40, 8:40] = rng.normal(200, 8, (32, 32))
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(d / f"{i}.png")
    p = Project.open(d)
    obj = p.store.add_class("object")
    bg = p.store.add_class("background")
    for rec in p.store.images():
        p.store.save_regions(rec.id, [
            Region(p.store.new_region_id(), obj.id, np.ones((2, 6), bool), 20, 20),   # in the square
            Region(p.store.new_region_id(), bg.id, np.ones((2, 6), bool), 1, 44),     # on the ground
        ], status="done")
    return p


def test_unlabelled_pixels_get_the_ignore_value_and_background_class_label_0(tmp_path):
    p = square_project(tmp_path, n=1)
    names, value_of, k = training_classes(p, ignore_value=IGNORE, background_class=True)
    assert names == ["object"] and k == 2  # "background" is label 0, not a class of the model
    rec = p.store.images()[0]
    (it,) = load_items(p, [rec.id], value_of, 1, ignore_unlabelled=True)
    assert it.label[20, 20] == 1 and it.label[44, 1] == 0
    assert np.count_nonzero(it.label != IGNORE) == 24
    # without the option, every unlabelled pixel is background (0) and "background" a class
    names, value_of, k = training_classes(p, ignore_value=IGNORE)
    assert names == ["object", "background"]
    (it,) = load_items(p, [rec.id], value_of, 1)
    assert (it.label != IGNORE).all() and np.count_nonzero(it.label == 0) == SIZE * SIZE - 24


def test_loss_ignores_unlabelled_pixels():
    torch.manual_seed(0)
    k = 2
    logits = torch.randn(1, k, 8, 8, requires_grad=True)
    target = torch.full((1, 8, 8), IGNORE, dtype=torch.long)
    target[0, 2, 2], target[0, 5, 5] = 1, 0
    loss = unet_loss(logits, target, k, weights=torch.tensor([1.0, 3.0]), dice_weight=0.5)
    loss.backward()
    g = logits.grad.abs().sum(1)[0]
    assert g[2, 2] > 0 and g[5, 5] > 0
    g[2, 2] = g[5, 5] = 0
    assert float(g.abs().max()) == 0.0  # no unlabelled pixel pulls the model anywhere
    # the same loss as if only the two labelled pixels existed
    both = unet_loss(logits.detach()[:, :, [2, 5], [2, 5]].unsqueeze(-1), torch.tensor([[[1], [0]]]), k,
                     weights=torch.tensor([1.0, 3.0]), dice_weight=0.0)
    alone = unet_loss(logits.detach(), target, k, weights=torch.tensor([1.0, 3.0]), dice_weight=0.0)
    assert torch.allclose(both, alone)
    # a crop with no labelled pixel at all: 0, not NaN
    empty = unet_loss(logits, torch.full((1, 8, 8), IGNORE, dtype=torch.long), k, dice_weight=0.5)
    assert torch.isfinite(empty) and float(empty.detach()) == 0.0


def object_share_in_square(project, res) -> float:
    from segstudio.inference.runtime.engine import ModelSpec, load_segmenter
    seg = load_segmenter(ModelSpec("unet", res.best_path, "cpu"), project)
    img = project.load_image(project.store.images()[0])
    pred = seg.predict(img)
    cm = np.asarray(pred.class_map)
    return float((cm[10:38, 10:38] == 1).mean())


@pytest.mark.slow  # trains a UNet: 15-25 s on 2 CPU cores
@pytest.mark.parametrize("ignore", [False, True])
def test_tiny_training_with_scribbles(tmp_path, ignore):
    """With the option the model learns 'bright = object' from a 12-pixel scribble; without it
    the unlabelled rest of the square (98 % of its pixels) teaches it 'bright = background'."""
    p = square_project(tmp_path)
    # crops as large as the images keep both scribbles in view; no class weighting or Dice, so the
    # difference comes from the ignored pixels alone (no validation images: best = last)
    cfg = UNetTrainConfig(epochs=6, batch=4, crop=SIZE, lr=1e-2, seed=0, val_fraction=0.0, device="cpu",
                          class_weighting=False, dice_weight=0.0, steps_per_epoch=8, patience=100,
                          unet={"depth": 1, "width": 8, "dropout": 0.0}, ignore_unlabelled=ignore)
    res = train_unet(p, tmp_path / "m.pt", cfg)
    share = object_share_in_square(p, res)
    if ignore:
        assert share > 0.8, share
    else:
        assert share < 0.2, share


def test_nothing_labelled_is_refused_with_the_option(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(d / "a.png")
    p = Project.open(d)
    ign = p.store.add_class("__ignore__", ignore=True)
    p.store.add_class("object")
    p.store.save_regions(p.store.images()[0].id, [Region(p.store.new_region_id(), ign.id, np.ones((4, 4), bool), 0, 0)],
                         status="done")
    with pytest.raises(TrainingError, match="no labelled pixels"):
        train_unet(p, tmp_path / "m.pt", UNetTrainConfig(epochs=1, device="cpu", ignore_unlabelled=True,
                                                         unet={"depth": 1, "width": 4}))


def test_sparse_done_images_are_named(tmp_path):
    p = square_project(tmp_path)
    cov = sparse_images(p)
    assert cov.checked == 3 and len(cov.sparse) == 3
    assert all(f == pytest.approx(24 / SIZE ** 2) for _, f in cov.sparse) and 24 / SIZE ** 2 < SPARSE_FRACTION
    text = cov.warning(False)
    assert text.startswith("3 of 3 done images have less than 5 % of their pixels labelled (0.png 1.0 %")
    assert "learns every unlabelled pixel as background" in text
    assert "ignored in training" in cov.warning(True)
    full = p.store.images()[0]
    p.store.save_regions(full.id, [Region(p.store.new_region_id(), p.store.classes()[0].id,
                                          np.ones((SIZE, SIZE), bool), 0, 0)])
    assert [path for path, _ in sparse_images(p).sparse] == ["1.png", "2.png"]


@pytest.mark.slow  # trains through the CLI: ~5 s
def test_cli_train_warns_and_takes_the_option(tmp_path, capsys):
    p = square_project(tmp_path)
    folder = p.folder
    p.close()
    args = ["train", str(folder), "--model", "unet", "--out", str(tmp_path / "m.pt"), "--epochs", "1",
            "--device", "cpu", "--crop", "32", "--width", "4", "--depth", "1", "--val-fraction", "0"]
    assert main(args + ["--json"]) == 0
    err = capsys.readouterr().err
    assert "warning: 3 of 3 done images" in err and "add --ignore-unlabelled" in err
    assert main(args + ["--ignore-unlabelled", "--json"]) == 0
    out, err = capsys.readouterr()
    assert "ignored in training (--ignore-unlabelled is on)" in err
    from segstudio.inference.runtime.checkpoint import load_checkpoint
    ck = load_checkpoint(str(tmp_path / "m.pt"))
    assert ck.classes == ["object"] and ck.training["config"]["ignore_unlabelled"] is True
    assert main(["train", str(folder), "--model", "maskrcnn", "--out", str(tmp_path / "r.pt"),
                 "--ignore-unlabelled"]) == 2
    assert "--ignore-unlabelled is for --model unet" in capsys.readouterr().err
