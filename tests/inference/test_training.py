"""The learning loop on the CPU with tiny data."""

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from segstudio.cli import main
from segstudio.core.project import Project
from segstudio.core.region import Region
from segstudio.inference.runtime.checkpoint import load_checkpoint
from segstudio.inference.training.evaluate import confusion, instance_metrics, semantic_metrics


def disc_project(root, n=6, size=96, seed=0):
    d = root / "imgs"
    d.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    p = Project.open(d)
    c = p.store.add_class("disc")
    masks = {}
    for i in range(n):
        img = rng.normal(60, 20, (size, size))
        m = np.zeros((size, size), np.uint8)
        for _ in range(3):
            cv2.circle(m, (int(rng.integers(15, size - 15)), int(rng.integers(15, size - 15))),
                       int(rng.integers(8, 16)), 1, -1)
        img[m > 0] += 90
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(d / f"{i}.png")
        masks[f"{i}.png"] = m.astype(bool)
    p.scan()
    for rec in p.store.images():
        parts = []
        from segstudio.core import maskops
        for pm, x, y in maskops.components(masks[rec.path]):  # one instance per disc
            parts.append(Region(p.store.new_region_id(), c.id, pm, x, y))
        p.store.save_regions(rec.id, parts, status="done")
    return p


def test_unet_learns_two_class_task(tmp_path):
    from segstudio.inference.training.unet import UNetTrainConfig, train_unet
    p = disc_project(tmp_path)
    cfg = UNetTrainConfig(epochs=12, batch=4, crop=64, seed=0, val_fraction=0.34, device="cpu",
                          unet={"depth": 2, "width": 8})
    res = train_unet(p, tmp_path / "m.pt", cfg)
    assert res.best_metrics["per_class_iou"]["1"] >= 0.9, res.history
    ck = load_checkpoint(res.best_path)
    assert ck.classes == ["disc"] and ck.training["val_images"] == res.val_images
    assert p.store.models()[0]["path"] == res.best_path
    assert res.seconds < 120


def test_training_is_deterministic_with_a_seed(tmp_path):
    from segstudio.inference.training.unet import UNetTrainConfig, train_unet
    p = disc_project(tmp_path, n=3)
    cfg = UNetTrainConfig(epochs=2, batch=2, crop=32, seed=7, device="cpu", unet={"depth": 1, "width": 4},
                          steps_per_epoch=3)
    a = load_checkpoint(train_unet(p, tmp_path / "a.pt", cfg).last_path)
    b = load_checkpoint(train_unet(p, tmp_path / "b.pt", cfg).last_path)
    for k in a.state_dict:
        assert np.array_equal(a.state_dict[k].numpy(), b.state_dict[k].numpy()), k


def test_cancel_then_resume(tmp_path):
    from segstudio.inference.training.unet import UNetTrainConfig, train_unet
    p = disc_project(tmp_path, n=3)
    cfg = UNetTrainConfig(epochs=4, batch=2, crop=32, seed=1, device="cpu", unet={"depth": 1, "width": 4},
                          steps_per_epoch=3)
    calls = {"n": 0}

    def cancel():
        calls["n"] += 1
        return calls["n"] > 5  # stops in the second epoch
    res = train_unet(p, tmp_path / "m.pt", cfg, cancel=cancel)
    assert res.stopped == "cancelled" and len(res.history) == 2
    last = load_checkpoint(res.last_path)
    assert last.resume["epoch"] == 2 and last.resume["optimizer"]
    res2 = train_unet(p, tmp_path / "m2.pt", cfg, resume=res.last_path)
    assert res2.stopped == "epochs" and [h["epoch"] for h in res2.history] == [1, 2, 3, 4]


def test_maskrcnn_finetune_few_steps(tmp_path, monkeypatch):
    from segstudio.inference.maskrcnn import model as maskrcnn
    from segstudio.inference.training.maskrcnn import MaskRCNNTrainConfig, train_maskrcnn
    monkeypatch.setattr(maskrcnn.torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no COCO file here
    p = disc_project(tmp_path, n=3, size=64)
    p.store.add_class("square")
    cfg = MaskRCNNTrainConfig(steps=2, batch=1, device="cpu", min_size=64, max_size=64, download=False,
                              val_fraction=0.34)
    res = train_maskrcnn(p, tmp_path / "mr.pt", cfg)
    assert res.stopped == "steps" and res.start.startswith("scratch")
    ck = load_checkpoint(res.best_path)
    assert ck.arch == "maskrcnn" and ck.classes == ["disc", "square"] and ck.config["num_classes"] == 3
    from segstudio.inference.runtime.device import choose_device
    from segstudio.inference.maskrcnn.model import MaskRCNNSegmenter
    MaskRCNNSegmenter(ck, choose_device("cpu"))  # the checkpoint loads as a model


def test_semantic_metrics_match_hand_computation():
    gt = np.array([[0, 0, 1, 1],
                   [0, 0, 1, 1],
                   [2, 2, 255, 1]])
    pred = np.array([[0, 1, 1, 1],
                     [0, 0, 1, 0],
                     [2, 1, 0, 1]])
    conf = confusion(pred, gt, 3, ignore=255)
    # class 0: gt {(0,0),(0,1),(1,0),(1,1)}, pred0 {(0,0),(1,0),(1,1),(1,3)} -> tp 3, union 5
    # class 1: gt {(0,2),(0,3),(1,2),(1,3),(2,3)}, pred1 {(0,1),(0,2),(0,3),(1,2),(2,1),(2,3)} -> tp 4, union 7
    # class 2: gt {(2,0),(2,1)}, pred2 {(2,0)} -> tp 1, union 2; the ignore pixel does not count
    m = semantic_metrics(conf, ["bg", "a", "b"])
    assert m["per_class_iou"] == pytest.approx({"bg": 3 / 5, "a": 4 / 7, "b": 1 / 2})
    assert m["pixel_accuracy"] == pytest.approx(8 / 11)
    assert m["mean_iou"] == pytest.approx((3 / 5 + 4 / 7 + 1 / 2) / 3)
    assert m["pixels"] == 11


def test_instance_ap_on_crafted_masks():
    a = np.zeros((40, 40), bool)
    a[5:15, 5:15] = True
    b = np.zeros((40, 40), bool)
    b[20:35, 20:35] = True
    gt = {0: [(1, a, False), (1, b, False)]}
    assert instance_metrics(gt, {0: [(1, a, 0.9), (1, b, 0.8)]}, 2)["mask_AP"] == pytest.approx(1.0)
    half = np.zeros((40, 40), bool)
    half[20:35, 20:27] = True  # IoU 7/15 < 0.5 with b: a false positive, b missed
    r = instance_metrics(gt, {0: [(1, a, 0.9), (1, half, 0.8)]}, 2)
    assert r["mask_AP50"] == pytest.approx(0.5, abs=0.02)
    assert instance_metrics(gt, {0: []}, 2)["mask_AP"] == 0.0


def test_cli_train_and_evaluate(tmp_path, capsys):
    p = disc_project(tmp_path, n=4)
    p.close()
    folder = tmp_path / "imgs"
    out = tmp_path / "u.pt"
    # no final fit: its validation image stays held out, for --split val below
    code = main(["train", str(folder), "--model", "unet", "--out", str(out), "--epochs", "2", "--device", "cpu",
                 "--width", "4", "--depth", "2", "--crop", "48", "--final-fit", "0", "--json"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    d = json.loads(cap.out)
    assert d["best"] == str(out) and out.exists() and d["epochs"] == 2
    code = main(["evaluate", str(folder), "--weights", str(out), "--device", "cpu", "--json"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    e = json.loads(cap.out)
    assert e["kind"] == "semantic" and e["images"] == 4 and 0 <= e["metrics"]["pixel_accuracy"] <= 1
    code = main(["evaluate", str(folder), "--weights", str(out), "--split", "val", "--device", "cpu", "--json"])
    cap = capsys.readouterr()
    assert json.loads(cap.out)["images"] == 1
    with pytest.raises(SystemExit) as e:  # --epochs and --minutes exclude each other
        main(["train", str(folder), "--model", "unet", "--out", str(out), "--epochs", "1", "--minutes", "1"])
    assert e.value.code == 2


def test_training_without_done_images_says_why(tmp_path):
    from segstudio.inference.training.common import TrainingError
    from segstudio.inference.training.unet import train_unet
    d = tmp_path / "e"
    d.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(d / "a.png")
    p = Project.open(d)
    p.store.add_class("x")
    with pytest.raises(TrainingError, match="no annotated images"):
        train_unet(p, tmp_path / "m.pt")
