"""`segstudio train --model unet --ray` with 2 Ray Train workers (DDP, gloo) on a local runtime:
a checkpoint in the local format, in the project's model list, that predicts. Skipped where Ray
is not installed (`.[cluster]`)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[cluster]'")

from segstudio.core.project import Project  # noqa: E402
from segstudio.core.records import DONE  # noqa: E402
from segstudio.core.region import Region  # noqa: E402
from segstudio.inference.runtime.checkpoint import load_checkpoint  # noqa: E402
from segstudio.inference.runtime.engine import ModelSpec, load_segmenter, predict_project  # noqa: E402
from segstudio.inference.cluster.connect import connect  # noqa: E402
from segstudio.inference.training.unet import UNetTrainConfig  # noqa: E402

pytestmark = pytest.mark.slow


def disc_project(root, n=6):
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        img = (rng.random((64, 64, 3)) * 40).astype(np.uint8)
        yy, xx = np.ogrid[:64, :64]
        img[(xx - 20 - 3 * i) ** 2 + (yy - 30) ** 2 <= 100] = 220
        Image.fromarray(img).save(root / f"{i}.png")
    p = Project.open(root)
    cls = p.store.ensure_class("disc")
    for rec in p.store.images()[:4]:
        m = p.load_image(rec).max(axis=2) > 150
        p.store.save_regions(rec.id, [Region(p.store.new_region_id(), cls.id, m, 0, 0)])
        p.store.set_status(rec.id, DONE)
    return p


def test_two_workers_train_a_checkpoint_that_predicts(tmp_path):
    from segstudio.inference.cluster.train import train_on_ray
    connect(None, num_cpus=2)  # segstudio's local runtime: loopback, token
    try:
        p = disc_project(tmp_path / "imgs")
        cfg = UNetTrainConfig(epochs=3, steps_per_epoch=4, batch=2, crop=64, val_fraction=0.25, pretrained=False,
                              download=False, amp=False, unet={"depth": 2, "width": 8})
        out = tmp_path / "models" / "ray-unet.pt"
        res = train_on_ray(p, cfg, out, None, workers=2)
    finally:
        ray.shutdown()
    assert res["workers"] == 2 and res["epochs"] == 3
    ck = load_checkpoint(res["best"], expect_arch="unet")  # the local format
    assert ck.classes == ["disc"] and ck.training["epoch"] >= 1
    assert {m["path"] for m in p.store.models()} >= {res["best"], res["last"]}  # in the project's list
    seg = load_segmenter(ModelSpec("unet", res["best"], "cpu"), p)
    rep = predict_project(p, seg, ("new",), batch=2)
    assert rep.images == 2 and not rep.errors  # it predicts


def test_ray_training_wants_an_epoch_budget(tmp_path):
    from segstudio.core.errors import UserError
    from segstudio.inference.cluster.train import train_on_ray
    p = disc_project(tmp_path / "imgs")
    with pytest.raises(UserError, match="epoch budget"):
        train_on_ray(p, UNetTrainConfig(epochs=None, minutes=1.0), None, None, workers=2)


def test_cli_train_ray(tmp_path, capsys):
    import json

    from segstudio.cli import main
    disc_project(tmp_path / "imgs").close()
    out = tmp_path / "unet.pt"
    code = main(["train", str(tmp_path / "imgs"), "--model", "unet", "--out", str(out), "--epochs", "2",
                 "--batch", "2", "--crop", "64", "--width", "8", "--depth", "2", "--no-pretrained", "--no-amp",
                 "--device", "cpu", "--ray", "--workers", "2", "--json"])
    if ray.is_initialized():
        ray.shutdown()
    assert code == 0
    d = json.loads(capsys.readouterr().out)
    assert d["workers"] == 2 and d["epochs"] == 2 and out.is_file()
    assert main(["train", str(tmp_path / "imgs"), "--model", "unet", "--out", str(out), "--ray", "--minutes", "1"]) == 2


def test_two_workers_fine_tune_mask_rcnn(tmp_path, monkeypatch):
    from segstudio.inference.maskrcnn import model as maskrcnn
    from segstudio.inference.cluster.train import train_on_ray
    from segstudio.inference.training.maskrcnn import MaskRCNNTrainConfig
    from tests.inference.helpers import tiny_maskrcnn_checkpoint
    monkeypatch.setattr(maskrcnn.torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no COCO file here
    p = disc_project(tmp_path / "imgs")
    start = tiny_maskrcnn_checkpoint(tmp_path / "start.pt", classes=("disc",))
    cfg = MaskRCNNTrainConfig(epochs=2, batch=1, device="cpu", min_size=64, max_size=64, download=False,
                              val_fraction=0.25, weights=str(start))
    connect(None, num_cpus=2)  # segstudio's local runtime: loopback, token
    try:
        res = train_on_ray(p, cfg, tmp_path / "mr.pt", None, workers=2)
    finally:
        ray.shutdown()
    ck = load_checkpoint(res["best"], expect_arch="maskrcnn")
    assert res["arch"] == "maskrcnn" and ck.classes == ["disc"] and len(res["history"]) == 2
    assert {m["path"] for m in p.store.models()} >= {res["best"], res["last"]}
    seg = load_segmenter(ModelSpec("maskrcnn", res["best"], "cpu", score_threshold=0.0), p)
    assert predict_project(p, seg, ("new",), batch=1).images == 2
