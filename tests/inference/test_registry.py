"""The engine loads every family through the registry (`Family.load` / `load_click`), with tiny
checkpoints these tests write; ModelSpec is a dict round trip with the family's own settings in
`options`; the registry's other references (trainers, weights catalogue, plain state dicts) resolve."""

from __future__ import annotations

import dataclasses
import os

import pytest

torch = pytest.importorskip("torch")

from segstudio.core.errors import BadValue  # noqa: E402
from segstudio.core.project import Project  # noqa: E402
from segstudio.inference import registry  # noqa: E402
from segstudio.inference.family import LEARN_LIVE, resolve  # noqa: E402
from segstudio.inference.promptable import Promptable  # noqa: E402
from segstudio.inference.runtime.checkpoint import CheckpointError, load_checkpoint  # noqa: E402
from segstudio.inference.runtime.engine import ModelSpec, load_clicker, load_segmenter, read_checkpoint  # noqa: E402
from tests.inference.helpers import blob_image, tiny_maskrcnn_checkpoint, tiny_unet_checkpoint  # noqa: E402


@pytest.fixture
def project(tmp_path):
    from PIL import Image
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(blob_image(48, 64)).save(d / "a.png")
    p = Project.open(d)
    yield p
    p.close()


def test_every_reference_in_the_registry_resolves():
    for f in registry.FAMILIES.values():
        for ref in (f.load, f.load_click, f.train, f.train_config, f.catalog, f.reads_state_dict, f.weights):
            if ref is not None:
                assert callable(resolve(ref)), (f.key, ref)
        assert f.load is not None or f.load_click is not None, f.key  # it loads as something


def test_spec_is_a_dict_round_trip():
    spec = ModelSpec("sam", "w.pt", "cpu", variant=None, options={"sam_model": "sam_vit_b", "prompts": "boxes"})
    assert ModelSpec(**dataclasses.asdict(spec)) == spec
    assert not {"version", "sam_model", "prompts", "points_per_side"} & {f.name for f in dataclasses.fields(ModelSpec)}


def test_unknown_model_says_which_there_are():
    with pytest.raises(BadValue, match=r"unknown model 'nope'; use (?=.*\bunet\b)(?=.*\bmaskrcnn\b)(?=.*\bsam\b)"):
        load_segmenter(ModelSpec("nope", device="cpu"))


def test_unet_family_loads_its_checkpoint(tmp_path, project):
    ck = tiny_unet_checkpoint(tmp_path / "u.pt", classes=("blob",))
    seg = load_segmenter(ModelSpec("unet", str(ck), "cpu"), project)
    assert type(seg).__name__ == "UNetSegmenter" and seg.classes == ["blob"] and seg.name == "unet"
    assert seg.project_checkpoint is None  # a file was given
    assert len(seg.predict(blob_image(48, 64)).detections()) >= 0
    with pytest.raises(BadValue, match="has no setting sam_model"):  # another family's setting
        load_segmenter(ModelSpec("unet", str(ck), "cpu", options={"sam_model": "sam_vit_b"}))
    with pytest.raises(BadValue, match="unknown variant 'v2'"):
        load_segmenter(ModelSpec("unet", str(ck), "cpu", variant="v2"))
    with pytest.raises(BadValue, match="no click model of its own"):
        load_clicker(ModelSpec("unet", str(ck), "cpu"))


def test_unet_without_a_file_takes_the_projects_latest(tmp_path, project):
    with pytest.raises(CheckpointError, match="a UNet needs a checkpoint"):
        load_segmenter(ModelSpec("unet", None, "cpu"), project)
    ck = tiny_unet_checkpoint(tmp_path / "u.pt", classes=("blob",))
    project.store.add_model(str(ck), "unet", {})
    seg = load_segmenter(ModelSpec("unet", None, "cpu"), project)
    assert seg.project_checkpoint == str(ck)


def test_maskrcnn_family_loads_its_checkpoint_and_torchvisions_state_dict(tmp_path):
    ck = tiny_maskrcnn_checkpoint(tmp_path / "m.pt", version="v1")
    seg = load_segmenter(ModelSpec("maskrcnn", str(ck), "cpu", score_threshold=0.0))
    assert type(seg).__name__ == "MaskRCNNSegmenter" and seg.classes == ["thing", "other"]
    with pytest.raises(BadValue, match=r"unknown variant 'v3'; use v2, v1"):
        load_segmenter(ModelSpec("maskrcnn", str(ck), "cpu", variant="v3"))
    # a plain torchvision state dict: read by the family that knows it (Family.reads_state_dict)
    from segstudio.inference.maskrcnn.model import build_maskrcnn
    plain = tmp_path / "plain.pth"
    torch.save(build_maskrcnn("v1", 3, min_size=64, max_size=96).state_dict(), plain)
    with pytest.raises(CheckpointError, match="not a segstudio checkpoint"):
        load_checkpoint(plain)  # the runtime alone knows no family
    ckpt = read_checkpoint(plain)
    assert ckpt.arch == "maskrcnn" and ckpt.config["version"] == "v1" and ckpt.classes == ["class_1", "class_2"]
    seg = load_segmenter(ModelSpec("maskrcnn", str(plain), "cpu"))
    assert seg.classes == ["class_1", "class_2"]


def test_read_checkpoint_refuses_a_kind_no_family_reads(tmp_path):
    from segstudio.inference.runtime.checkpoint import Checkpoint, save_checkpoint
    path = save_checkpoint(Checkpoint("yolo", {}, ["a"], {"w": torch.zeros(1)}), tmp_path / "y.pt")
    assert load_checkpoint(path).arch == "yolo"  # the format is fine
    with pytest.raises(CheckpointError, match="unknown architecture 'yolo'"):
        read_checkpoint(path)


@pytest.fixture(scope="module")
def sam_file(tmp_path_factory):
    pytest.importorskip("segment_anything_hq")
    from segstudio.inference.sam.model import load_sam
    torch.manual_seed(0)
    tiny = load_sam("sam_hq_vit_tiny", None, "cpu", random_weights=True)
    p = tmp_path_factory.mktemp("weights") / "random_tiny.pt"
    torch.save(tiny.net.state_dict(), p)
    return p


def test_sam_family_loads_a_click_model_and_a_headless_one(sam_file, project):
    from segstudio.inference.sam.spec import embedding_dir
    spec = ModelSpec("sam", str(sam_file), "cpu", options={"sam_model": "sam_hq_vit_tiny"})
    model = load_clicker(spec, project)
    assert isinstance(model, Promptable) and model.name == "sam_hq_vit_tiny"
    assert model.open_cache(None).folder is None  # no project: memory only
    cache = model.open_cache(project)
    assert cache.folder == embedding_dir(project, model.name)
    emb = model.embedding_for(blob_image(48, 64), None, cache)
    assert len(model.decode(emb, [(20.0, 20.0, True)])) >= 1
    seg = load_segmenter(dataclasses.replace(spec, options={**spec.options, "points_per_side": 4}), project)
    assert type(seg).__name__ == "SamSegmenter" and seg.points_per_side == 4
    with pytest.raises(BadValue, match="has no setting tta_rounds"):
        load_clicker(dataclasses.replace(spec, options={"tta_rounds": 2}))
    with pytest.raises(BadValue, match="points per side are for the everything prompts"):
        load_segmenter(dataclasses.replace(spec, options={"prompts": "boxes", "points_per_side": 4}), project)
    with pytest.raises(BadValue, match="pred_iou_thresh is a number"):
        load_segmenter(dataclasses.replace(spec, options={"pred_iou_thresh": "high"}), project)


def test_weights_file_names_are_torchvisions():
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights, MaskRCNN_ResNet50_FPN_Weights
    from torchvision.models.segmentation import (DeepLabV3_MobileNet_V3_Large_Weights, DeepLabV3_ResNet50_Weights,
                                                 FCN_ResNet50_Weights)

    from segstudio.inference.maskrcnn.spec import COCO_FILES
    from segstudio.inference.semantic.spec import VOC_FILES
    name = os.path.basename
    assert COCO_FILES == {"v2": name(MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1.url),
                          "v1": name(MaskRCNN_ResNet50_FPN_Weights.COCO_V1.url)}
    assert VOC_FILES == {"fcn_resnet50": name(FCN_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1.url),
                         "deeplabv3_resnet50": name(DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1.url),
                         "deeplabv3_mobilenet_v3_large":
                             name(DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1.url)}


def test_live_kinds_come_from_the_families_that_learn_live():
    from segstudio.inference.training.live import LIVE_ARCHS, trainer_family
    assert LIVE_ARCHS == tuple(dict.fromkeys(f.checkpoint_kind for f in registry.FAMILIES.values()
                                             if f.can(LEARN_LIVE)))
    assert set(LIVE_ARCHS) == {"unet", "maskrcnn"}
    for kind in LIVE_ARCHS:
        fam = trainer_family(kind)
        assert fam.checkpoint_kind == kind and resolve(fam.train).__name__.startswith("train_")


def test_weights_catalogue_lists_each_familys_files():
    from segstudio.inference.runtime import weights_catalog as wc
    files = {e.file for e in wc.entries()}
    for f in registry.FAMILIES.values():
        for w in registry.weights(f) if f.catalog else []:  # files of the torch hub cache
            if w.path is not None:  # a file by name (a UNet needs a trained checkpoint, no file of ours)
                assert w.name in files, (f.key, w.name)
