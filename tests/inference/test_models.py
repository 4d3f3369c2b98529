"""Models on the CPU with tiny configurations and random weights saved as checkpoints."""

import numpy as np
import pytest
import torch

from segstudio.inference.runtime.checkpoint import CheckpointError, load_checkpoint
from segstudio.inference.runtime.device import DeviceError, choose_device
from segstudio.inference.runtime.pretrained import WeightsUnavailable
from segstudio.inference.runtime.tiling import blend_window, predict_tiled, tile_starts
from segstudio.inference.semantic.unet import UNet, UNetConfig
from tests.inference.helpers import (blob_image, discs_image, tiny_maskrcnn_checkpoint, tiny_unet_checkpoint,
                                     trained_disc_unet)


@pytest.mark.parametrize("up", ["bilinear", "transpose"])
@pytest.mark.parametrize("down", ["pool", "strided"])
@pytest.mark.parametrize("hw", [(37, 53), (64, 64), (1, 5), (33, 17)])
def test_unet_output_matches_input_size(up, down, hw):
    m = UNet(UNetConfig(in_channels=1, num_classes=3, depth=3, width=4, up_mode=up, down_mode=down)).eval()
    with torch.no_grad():
        y = m(torch.randn(2, 1, *hw))
    assert y.shape == (2, 3, *hw)


def test_unet_modes_really_differ():
    a = UNet(UNetConfig(depth=2, width=4, up_mode="transpose"))
    b = UNet(UNetConfig(depth=2, width=4, up_mode="bilinear"))
    assert any(isinstance(x, torch.nn.ConvTranspose2d) for x in a.modules())
    assert not any(isinstance(x, torch.nn.ConvTranspose2d) for x in b.modules())


def test_unet_config_validation():
    with pytest.raises(ValueError):
        UNetConfig(up_mode="nearest")


def test_tiling_seams_blend_to_the_untiled_result():
    torch.manual_seed(0)
    x = torch.randn(1, 70, 90)

    def fn(t):  # a per-pixel function: tiling must give exactly the same answer
        return torch.cat([t * 2.0, t.sin()], dim=1)
    whole = fn(x[None])[0]
    tiled = predict_tiled(x, fn, 2, tile=32, overlap=8, batch=3)
    assert torch.allclose(whole, tiled, atol=1e-5)
    assert tile_starts(100, 32, 8)[-1] == 68 and tile_starts(20, 32, 8) == [0]
    w = blend_window(32, 32, 8)
    assert w.min() > 0 and w[16, 16] == 1.0


def test_tiled_unet_has_no_seams(tmp_path):
    """A trained model on an image with objects everywhere: the whole-image map has structure
    across every tile border, so tiles that were misplaced, mis-blended or cut without context
    would disagree with it."""
    from segstudio.inference.runtime.device import choose_device
    from segstudio.inference.runtime.tiling import tile_starts
    from segstudio.inference.semantic.segmenter import UNetSegmenter
    ck = load_checkpoint(trained_disc_unet(tmp_path / "u.pt"))
    dev = choose_device("cpu")
    img, truth = discs_image(150, 170, seed=7)
    whole = UNetSegmenter(ck, dev, tile=512).predict(img).class_map.astype(bool)
    assert (whole == truth).mean() > 0.95  # the model found the discs: the map is not all one class
    starts = tile_starts(170, 64, 24)[1:] + tile_starts(150, 64, 24)[1:]
    assert sum(whole[:, s].sum() for s in tile_starts(170, 64, 24)[1:]) > 20 and len(starts) >= 4
    for shift in (1, 2):  # a paste one or two pixels off would be caught
        assert (whole == np.roll(whole, shift, axis=1)).mean() < 0.985
    tiled = UNetSegmenter(ck, dev, tile=64, overlap=24).predict(img).class_map.astype(bool)
    assert (whole == tiled).mean() > 0.999
    cut = UNetSegmenter(ck, dev, tile=64, overlap=0).predict(img).class_map.astype(bool)
    assert (whole != cut).sum() >= (whole != tiled).sum()  # context across borders is what overlap buys


def test_unet_segmenter_regions_and_uncertainty(tmp_path):
    from segstudio.inference.semantic.segmenter import UNetSegmenter
    ck = load_checkpoint(tiny_unet_checkpoint(tmp_path / "u.pt", classes=("a", "b")))
    seg = UNetSegmenter(ck, choose_device("cpu"))
    preds = seg.predict_batch([blob_image(), blob_image(40, 50), np.zeros((30, 30), np.uint16)])
    assert [p.class_map.shape for p in preds] == [(64, 80), (40, 50), (30, 30)]
    for p in preds:
        assert 0.0 <= p.uncertainty <= 1.0
        for d in p.detections():
            assert d.label in (1, 2) and d.mask.sum() >= 4
            assert np.all(p.class_map[d.y:d.y + d.mask.shape[0], d.x:d.x + d.mask.shape[1]][d.mask] == d.label)


def test_checkpoint_roundtrip_and_errors(tmp_path):
    p = tiny_unet_checkpoint(tmp_path / "u.pt", classes=("x",))
    ck = load_checkpoint(p)
    assert ck.arch == "unet" and ck.classes == ["x"] and ck.config["up_mode"] == "bilinear"
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(p.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="corrupt|not a"):
        load_checkpoint(bad)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"x" * 1000)
    with pytest.raises(CheckpointError):
        load_checkpoint(junk)
    torch.save({"a": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a segstudio checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a maskrcnn"):
        load_checkpoint(p, expect_arch="maskrcnn")


def test_mismatched_weights_give_clear_error(tmp_path):
    from segstudio.inference.runtime.checkpoint import Checkpoint, save_checkpoint
    from segstudio.inference.semantic.segmenter import UNetSegmenter
    ck = load_checkpoint(tiny_unet_checkpoint(tmp_path / "u.pt"))
    ck.config["width"] = 8  # the weights were made for width 4
    save_checkpoint(Checkpoint("unet", ck.config, ck.classes, ck.state_dict), tmp_path / "mm.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        UNetSegmenter(load_checkpoint(tmp_path / "mm.pt"), choose_device("cpu"))


def test_device_choice():
    d = choose_device("auto")
    assert d.type in ("cpu", "cuda", "mps")
    if d.type == "cpu":
        assert "no GPU" in d.note  # a fallback is said, never silent
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA was asked for"):
            choose_device("cuda")
    with pytest.raises(DeviceError):
        choose_device("tpu")


@pytest.mark.slow  # builds and runs a Mask R-CNN: ~17 s on 2 CPU cores
def test_maskrcnn_load_predict_threshold(tmp_path):
    from segstudio.inference.maskrcnn.model import MaskRCNNSegmenter
    ck = load_checkpoint(tiny_maskrcnn_checkpoint(tmp_path / "m.pt"))
    assert ck.arch == "maskrcnn" and ck.classes == ["thing", "other"]
    seg = MaskRCNNSegmenter(ck, choose_device("cpu"), score_threshold=0.0, candidate_threshold=0.0)
    seg.model.transform.min_size, seg.model.transform.max_size = (64,), 96
    preds = seg.predict_batch([blob_image(), blob_image(50, 60, seed=1)])
    assert len(preds) == 2
    p = preds[0]
    assert len(p.candidates()) > 0  # random weights still propose boxes at threshold 0
    for d in p.candidates():
        assert d.label in (1, 2) and d.mask.dtype == bool and d.mask.any()
        assert d.x >= 0 and d.y >= 0 and d.x + d.mask.shape[1] <= 80 and d.y + d.mask.shape[0] <= 64
    seg.score_threshold = 1.01
    high = seg.predict(blob_image())
    assert high.detections() == [] and len(high.candidates()) > 0


def test_torchvision_state_dict_accepted(tmp_path):
    from segstudio.inference.maskrcnn.model import build_maskrcnn
    m = build_maskrcnn("v1", 91)
    torch.save(m.state_dict(), tmp_path / "tv.pth")
    from segstudio.inference.runtime.engine import read_checkpoint  # the family reads its plain state dicts
    ck = read_checkpoint(tmp_path / "tv.pth")
    assert ck.arch == "maskrcnn" and ck.config["version"] == "v1" and "person" in ck.classes


def test_coco_weights_missing_message(monkeypatch, tmp_path):
    from segstudio.inference.maskrcnn import model as maskrcnn
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsUnavailable) as e:
        maskrcnn.coco_state_dict("v2", download=False)
    msg = str(e.value)
    assert "maskrcnn_resnet50_fpn_v2_coco" in msg and str(tmp_path / "hub" / "checkpoints") in msg


def test_unet_flip_averaging(tmp_path):
    from segstudio.inference.semantic.segmenter import UNetSegmenter
    ck = load_checkpoint(tiny_unet_checkpoint(tmp_path / "u.pt"))
    plain = UNetSegmenter(ck, choose_device("cpu"))
    tta = UNetSegmenter(ck, choose_device("cpu"), tta=True)
    img = blob_image()
    a, b = plain.predict(img), tta.predict(img)
    assert a.class_map.shape == b.class_map.shape
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        avg = tta.forward(x)
        manual = sum(plain.forward(x.flip(d)).flip(d) for d in ((3,), (2,), (2, 3))) + plain.forward(x)
    assert torch.allclose(avg, manual / 4, atol=1e-6)
