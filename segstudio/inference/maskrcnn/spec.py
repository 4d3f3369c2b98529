"""The Mask R-CNN family, without importing torch: its versions, the COCO files it starts from
and what it can do (the registry reads this; `versions.py` holds torchvision's builders)."""

from __future__ import annotations

from segstudio.inference.family import BOX, CLICK, LEARN_LIVE, PRELABEL_INSTANCES, TRAIN, Family, WeightsFile
from segstudio.inference.hub import hub_dir

ARCH = "maskrcnn"
# torchvision's COCO files by version (their names in the torch hub cache; a test checks them
# against torchvision's weights enums)
COCO_FILES = {"v2": "maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth", "v1": "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"}


def weights_needed() -> list[WeightsFile]:
    return [WeightsFile(f, str(hub_dir() / "checkpoints" / f), (hub_dir() / "checkpoints" / f).exists(),
                        f"COCO weights of {v} (torchvision), or a checkpoint") for v, f in COCO_FILES.items()]


FAMILIES = (
    Family(ARCH, "Mask R-CNN (instances)", "segstudio.inference.maskrcnn",
           frozenset({CLICK, BOX, PRELABEL_INSTANCES, TRAIN, LEARN_LIVE}),
           load="segstudio.inference.maskrcnn.model:load", checkpoint_kind="maskrcnn",
           variants=(("v2", "Mask R-CNN v2 (instances)"), ("v1", "Mask R-CNN v1 (instances)")),
           weights="segstudio.inference.maskrcnn.spec:weights_needed", options=("score", "mask"), cluster=True,
           train="segstudio.inference.training.maskrcnn:train_maskrcnn",
           train_config="segstudio.inference.training.maskrcnn:MaskRCNNTrainConfig",
           catalog="segstudio.inference.maskrcnn.versions:catalog",
           reads_state_dict="segstudio.inference.maskrcnn.versions:from_state_dict",
           pretrained="COCO weights (torchvision)",
           note="COCO's 80 classes with no training; its click answer is the instance under the click"),
)
