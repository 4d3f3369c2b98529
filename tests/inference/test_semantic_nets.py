"""ResNet-UNet, FCN and DeepLabV3 on the CPU: random weights, tiny inputs, and a torch hub cache
in a temporary folder. Nothing is downloaded: every download is refused, and the weight files
put in the cache are randomly initialised torchvision state dicts saved under the file names
torchvision looks for (they test the loading, not the pretrained results)."""

import json

import pytest
import torch
import torchvision
from PIL import Image

from segstudio.cli import main
from segstudio.core.errors import UserError
from segstudio.core.project import Project
from segstudio.inference.semantic import nets as sn
from segstudio.inference.runtime.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from segstudio.inference.runtime.device import choose_device
from segstudio.inference.runtime.engine import ModelSpec, load_segmenter
from segstudio.inference.runtime.pretrained import WeightsUnavailable
from segstudio.inference.semantic.unet import UNet, UNetConfig
from segstudio.inference.semantic.segmenter import UNetSegmenter, build_unet
from tests.inference.helpers import blob_image, tiny_unet_checkpoint


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache, and no downloads (a try fails at once, as offline)."""
    d = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(d))

    def refuse(url, dst, *a, **k):
        raise OSError(f"no network in the tests ({url})")
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return d


def put_in_cache(weights, state_dict) -> None:
    path = sn.weights_file(weights)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state_dict, path)


# ---------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("encoder,channels,up", [("resnet18", 1, "bilinear"), ("resnet18", 3, "transpose"),
                                                 ("resnet34", 3, "bilinear"), ("resnet50", 1, "transpose")])
def test_resnet_unet_output_is_input_size(encoder, channels, up):
    torch.manual_seed(0)
    m = sn.build_semantic_net(UNetConfig(in_channels=channels, num_classes=3, width=2, up_mode=up,
                                         encoder=encoder)).eval()
    assert isinstance(m, sn.ResNetUNet)
    for hw in ((37, 53), (33, 17), (1, 5), (64, 64)):
        with torch.no_grad():
            y = m(torch.rand(2, channels, *hw))
        assert y.shape == (2, 3, *hw) and torch.isfinite(y).all()


@pytest.mark.parametrize("encoder", ["fcn_resnet50", "deeplabv3_resnet50", "deeplabv3_mobilenet_v3_large"])
@pytest.mark.parametrize("channels", [1, 3])
def test_torchvision_nets_output_is_input_size(encoder, channels):
    torch.manual_seed(0)
    m = sn.build_semantic_net(UNetConfig(in_channels=channels, num_classes=4, encoder=encoder)).eval()
    assert isinstance(m, sn.TorchvisionSegNet) and m.net.aux_classifier is None
    for hw in ((37, 53), (33, 17)):
        with torch.no_grad():
            y = m(torch.rand(1, channels, *hw))
        assert y.shape == (1, 4, *hw)


def test_imagenet_normalisation_is_inside_the_model_and_not_saved():
    m = sn.build_semantic_net(UNetConfig(num_classes=2, width=2, encoder="resnet18"))
    x = torch.rand(1, 3, 4, 4)
    expect = (x - torch.tensor(sn.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(sn.IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(m.norm(x), expect)
    assert not any(k.startswith("norm.") for k in m.state_dict())


def test_plain_unet_is_unchanged_and_old_checkpoints_load(tmp_path):
    cfg = UNetConfig(num_classes=2, depth=2, width=4)
    assert cfg.encoder == "plain" and isinstance(sn.build_semantic_net(cfg), UNet)
    # a checkpoint written before the encoder setting existed: no "encoder" in its config
    torch.manual_seed(0)
    model = UNet(cfg)
    old = {k: v for k, v in cfg.to_dict().items() if k != "encoder"}
    path = save_checkpoint(Checkpoint("unet", old, ["fg"], model.state_dict()), tmp_path / "old.pt")
    built = build_unet(load_checkpoint(path, expect_arch="unet"))
    assert isinstance(built, UNet) and set(built.state_dict()) == set(model.state_dict())


# ---------------------------------------------------------------------------- pretrained weights
def test_missing_imagenet_weights_mean_random_init_with_a_clear_note(hub):
    torch.manual_seed(0)
    m = sn.build_semantic_net(UNetConfig(num_classes=2, width=2, encoder="resnet34"))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    for download in (False, True):  # not cached; the download fails (offline): both are handled
        note = sn.init_pretrained(m, download=download)
        assert note.startswith("random initialisation (ImageNet weights for resnet34 not available: put "
                               f"resnet34-b627a593.pth in {hub / 'checkpoints'}"), note
    assert "download failed" in note
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())


@pytest.mark.parametrize("channels", [3, 1])
def test_cached_imagenet_weights_are_picked_up(hub, channels):
    torch.manual_seed(1)
    ref = torchvision.models.resnet18(weights=None).state_dict()
    put_in_cache(torchvision.models.ResNet18_Weights.IMAGENET1K_V1, ref)
    torch.manual_seed(2)
    m = sn.build_semantic_net(UNetConfig(in_channels=channels, num_classes=2, width=2, encoder="resnet18"))
    assert isinstance(m, sn.ResNetUNet)
    assert sn.init_pretrained(m, download=False) == "ImageNet weights (resnet18 encoder)"
    got = m.encoder.state_dict()
    assert set(got) == {k for k in ref if not k.startswith("fc.")}
    for k, v in got.items():
        if k == "conv1.weight" and channels == 1:  # grey: the RGB weights summed
            assert torch.allclose(v, ref[k].sum(dim=1, keepdim=True))
        else:
            assert torch.equal(v, ref[k]), k


def test_cached_weights_that_run_code_are_refused(hub, tmp_path):
    import os

    class RunsCode:
        def __reduce__(self):
            return (os.makedirs, (str(tmp_path / "code_ran"),))
    put_in_cache(torchvision.models.ResNet18_Weights.IMAGENET1K_V1, {"conv1.weight": torch.zeros(1), "x": RunsCode()})
    m = sn.build_semantic_net(UNetConfig(num_classes=2, width=2, encoder="resnet18"))
    with pytest.raises(CheckpointError, match=r"holds Python objects segstudio does not load.*os\.makedirs"):
        sn.init_pretrained(m, download=False)
    assert not (tmp_path / "code_ran").exists()


def test_torchvision_net_falls_back_voc_then_imagenet_backbone_then_random(hub):
    cfg = UNetConfig(num_classes=3, encoder="deeplabv3_mobilenet_v3_large")
    spec = sn.TV_NETS[cfg.encoder]
    m = sn.build_semantic_net(cfg)
    note = sn.init_pretrained(m, download=False)
    assert note.startswith("random initialisation (COCO-VOC weights for DeepLabV3 MobileNetV3-Large not available: "
                           f"put deeplabv3_mobilenet_v3_large-fc3c493d.pth in {hub / 'checkpoints'}"), note
    assert "mobilenet_v3_large-8738ca79.pth" in note
    # the ImageNet backbone (a MobileNet's features, by index)
    torch.manual_seed(3)
    backbone = torchvision.models.mobilenet_v3_large(weights=None).state_dict()
    put_in_cache(spec.backbone, backbone)
    m = sn.build_semantic_net(cfg)
    assert sn.init_pretrained(m, download=False).startswith("ImageNet backbone (COCO-VOC weights for")
    assert torch.equal(m.net.backbone.state_dict()["0.0.weight"], backbone["features.0.0.weight"])
    # the COCO-VOC weights: everything but the class layer of the head
    torch.manual_seed(4)
    voc = torchvision.models.segmentation.deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=21, aux_loss=True).state_dict()
    put_in_cache(spec.voc, voc)
    m = sn.build_semantic_net(cfg)
    before_head = m.net.classifier[4].weight.clone()
    assert sn.init_pretrained(m, download=False) == \
        "COCO-VOC weights (DeepLabV3 MobileNetV3-Large; new 2-class head)"
    sd = m.net.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in voc.items() if not k.startswith(("aux_classifier.", "classifier.4.")))
    assert torch.equal(m.net.classifier[4].weight, before_head) and before_head.shape[0] == 3


def test_fcn_backbone_from_imagenet_resnet50(hub):
    torch.manual_seed(5)
    ref = torchvision.models.resnet50(weights=None).state_dict()
    put_in_cache(torchvision.models.ResNet50_Weights.IMAGENET1K_V1, ref)
    m = sn.build_semantic_net(UNetConfig(in_channels=1, num_classes=2, encoder="fcn_resnet50"))
    assert sn.init_pretrained(m, download=False).startswith("ImageNet backbone")
    got = m.net.backbone.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in got.items())


@pytest.mark.parametrize("arch,file", [("fcn", "fcn_resnet50_coco-1167a1af.pth"),
                                       ("deeplabv3", "deeplabv3_resnet50_coco-cd0a2569.pth")])
def test_prelabelling_without_weights_says_which_file_where(hub, arch, file):
    for download in (False, True):
        with pytest.raises(WeightsUnavailable) as e:
            load_segmenter(ModelSpec(arch, device="cpu", download=download))
        msg = str(e.value)
        assert isinstance(e.value, UserError) and file in msg and str(hub / "checkpoints") in msg, msg


def test_prelabelling_with_cached_voc_weights(hub, tmp_path, capsys):
    """The COCO-VOC path end to end: 20 VOC class names, a class map the size of the image, the
    command line's --model choice. (Random weights under torchvision's file name: the mechanics,
    not the quality, which needs the real file.)"""
    spec = sn.TV_NETS["deeplabv3_mobilenet_v3_large"]
    torch.manual_seed(6)
    put_in_cache(spec.voc, torchvision.models.segmentation.deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=21, aux_loss=True).state_dict())
    seg = load_segmenter(ModelSpec("deeplabv3_mobilenet", device="cpu", download=False))
    assert seg.arch == "unet" and seg.name == "deeplabv3_mobilenet"
    assert len(seg.classes) == 20 and seg.classes[0] == "aeroplane" and "__background__" not in seg.classes
    pred = seg.predict(blob_image(45, 61))
    assert pred.class_map.shape == (45, 61)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(blob_image(40, 52, seed=i)).save(folder / f"{i}.png")
    code = main(["predict", str(folder), "--model", "deeplabv3_mobilenet", "--device", "cpu", "--json"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert json.loads(cap.out)["images"] == 2


# ---------------------------------------------------------------------------- hostile checkpoints
@pytest.mark.parametrize("encoder", ["resnet99", ["resnet18"], "fcn_resnet50"])
def test_wrong_encoder_in_a_checkpoint_is_a_checkpoint_error(tmp_path, encoder):
    path = tiny_unet_checkpoint(tmp_path / "u.pt")  # plain UNet weights
    ck = load_checkpoint(path)
    ck.config["encoder"] = encoder
    save_checkpoint(ck, path)
    with pytest.raises(CheckpointError):
        load_segmenter(ModelSpec("unet", str(path), "cpu"))


def test_torchvision_net_with_four_channels_is_a_checkpoint_error(tmp_path):
    ck = Checkpoint("unet", UNetConfig(in_channels=4, num_classes=2).to_dict() | {"encoder": "fcn_resnet50"},
                    ["fg"], {"x": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="1 or 3 channels"):
        UNetSegmenter(ck, choose_device("cpu"))


# ---------------------------------------------------------------------------- training
def _train(project, tmp_path, unet: dict, **kw):
    from segstudio.inference.training.unet import UNetTrainConfig, train_unet
    cfg = UNetTrainConfig(epochs=1, batch=2, crop=32, seed=0, device="cpu", val_fraction=0.34, steps_per_epoch=2,
                          download=False, unet=unet, **kw)
    return train_unet(project, tmp_path / "m.pt", cfg)


def _predicts(project: Project, res, arch: str) -> None:
    seg = load_segmenter(ModelSpec(arch, res.best_path, "cpu"), project)
    rec = project.store.images()[0]
    img = project.load_image(rec)
    pred = seg.predict(img)
    assert pred.class_map.shape == img.shape[:2]


@pytest.mark.slow  # builds and trains a ResNet-18 UNet: ~15 s on 2 CPU cores
def test_train_resnet_unet_then_predict(hub, tmp_path):
    from tests.inference.test_training import disc_project
    p = disc_project(tmp_path, n=3, size=48)
    res = _train(p, tmp_path, {"encoder": "resnet18", "width": 2})
    assert res.start.startswith("random initialisation (ImageNet weights for resnet18 not available: put "
                                f"resnet18-f37072fd.pth in {hub / 'checkpoints'}"), res.start
    ck = load_checkpoint(res.best_path, expect_arch="unet")
    assert ck.config["encoder"] == "resnet18" and ck.config["in_channels"] == 1 and ck.training["start"] == res.start
    assert p.store.models()[0]["kind"] == "unet"
    _predicts(p, res, "unet")
    # warm start from it: the checkpoint's weights, never a pretrained file
    from segstudio.inference.training.unet import UNetTrainConfig, train_unet
    res2 = train_unet(p, tmp_path / "m2.pt", UNetTrainConfig(epochs=1, batch=2, crop=32, device="cpu",
                                                            steps_per_epoch=1, download=False), init=res.best_path)
    assert res2.start.startswith("warm start from")


@pytest.mark.slow  # trains a DeepLabV3 MobileNetV3: ~12 s on 2 CPU cores
def test_train_deeplab_then_predict(hub, tmp_path):
    from tests.inference.test_training import disc_project
    p = disc_project(tmp_path, n=3, size=48)
    res = _train(p, tmp_path, {"encoder": "deeplabv3_mobilenet_v3_large"})
    assert res.start.startswith("random initialisation (COCO-VOC weights for DeepLabV3 MobileNetV3-Large not "
                                "available"), res.start
    ck = load_checkpoint(res.best_path, expect_arch="unet")
    assert ck.config["encoder"] == "deeplabv3_mobilenet_v3_large" and ck.classes == ["disc"]
    assert not any(k.startswith("net.aux_classifier") for k in ck.state_dict)
    _predicts(p, res, "deeplabv3_mobilenet")  # a fine-tuned checkpoint, through --model deeplabv3_mobilenet
    _predicts(p, res, "unet")  # and as any semantic checkpoint
