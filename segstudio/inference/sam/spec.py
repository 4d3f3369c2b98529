"""The promptable models (Segment Anything family) by name, without importing torch: the command
line and the window offer these choices, `sam` builds them.

Each model comes from its authors' own package, never vendored:

- "sam_hq_vit_tiny" (the default, for CPUs): Light HQ-SAM's TinyViT image encoder from
  `segment-anything-hq`, run with the package's *vanilla* SAM mask decoder
  (`sam_model_registry_baseline["vit_tiny"]`). The file `sam_hq_vit_tiny.pth` holds a full SAM
  state dict plus the HQ decoder's extra layers; Light HQ-SAM froze every non-HQ weight while
  training, so the SAM part loads (strict, minus the HQ keys) into the vanilla model. Why this
  decoder for the default: it answers a prompt with three candidate masks (Tab cycles them;
  HQ's decoder fuses them into one) and costs about a third of the HQ decoder on a CPU, which
  is what the interactive preview needs. The image embedding is the same for both decoders.
- "sam_hq_vit_tiny_hq": the same file with HQ-SAM's decoder (finer boundaries, one candidate
  per prompt, about 3x slower per prompt; the embedding also keeps one intermediate ViT map).
- "sam_vit_b", "sam_vit_l", "sam_vit_h": Meta's `segment-anything` (for GPUs: ViT-B embeds an
  image in tens of seconds on 2 CPU cores).

Weights are found the way torchvision's are: the official file name in the torch hub cache
(`Path(torch.hub.get_dir()) / "checkpoints"`), downloaded there with progress when missing, or
any file the user chooses. Files in the cache under an official name are checked against the
known size and sha256 before they are read (Meta's three: sizes and hashes agree across many
independent sources). The HQ tiny file's size and sha256 are NOT known to us (Hugging Face
could not be reached when this was written): `size`/`sha256` are None and the model says
"unverified". Never fill those in from memory; pin them from
https://huggingface.co/api/models/lkeab/hq-sam/tree/main (each file's `lfs.oid` and `size`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from segstudio.core.errors import BadValue, UserError
from segstudio.inference.family import CLICK, BOX, PRELABEL_INSTANCES, Family, WeightsFile
from segstudio.inference.hub import hub_dir
from segstudio.inference.runtime.prompt_input import model_window, to_model_rgb

if TYPE_CHECKING:
    from segstudio.core.project import Project

ARCH = "sam"  # the --model choice and ModelSpec.arch
# ModelSpec.options this family reads: the model, the headless prompts and the automatic generator's
# grid and quality filters (random test weights need both thresholds at 0 to give any mask)
OPTIONS = ("sam_model", "prompts", "points_per_side", "pred_iou_thresh", "stability_score_thresh")
CLI_OPTIONS = ("sam_model", "prompts", "points_per_side")  # of those, `segstudio predict`'s flags
PROMPT_MODES = ("everything", "boxes")  # headless prediction: the automatic grid, or existing boxes
OBJECT_CLASS = "object"  # the one class of "everything" regions (the user names them)
INSTALL_HINT = "pip install segstudio[sam]"
PACKAGES = ("segment_anything", "segment_anything_hq", "timm")  # import names


class SamUnavailable(UserError):
    """The Segment Anything packages are not installed; the message says what to install."""


@dataclass(frozen=True)
class SamModelInfo:
    name: str  # our name: the --sam-model choice and the embedding cache's folder
    title: str  # for menus
    package: str  # the import name that builds it
    registry: str  # that package's registry of builders
    key: str  # the builder's key in the registry
    file: str  # official file name (the name it has in the torch hub cache)
    url: str
    size: int | None  # bytes; None: not known (not checked)
    sha256: str | None  # None: not known (not checked, "unverified")
    hq_decoder: bool = False  # HQ-SAM's decoder: the embedding keeps the first intermediate ViT map too
    drop_keys: tuple[str, ...] = ()  # key prefixes of the file that this model has no place for
    note: str = ""

    @property
    def verified(self) -> bool:
        return self.sha256 is not None and self.size is not None


_HQ_KEYS = tuple(f"mask_decoder.{k}." for k in ("hf_token", "hf_mlp", "compress_vit_feat", "embedding_encoder",
                                                "embedding_maskfeature"))
_HQ_TINY_URL = "https://huggingface.co/lkeab/hq-sam/resolve/main/sam_hq_vit_tiny.pth"  # SysCV/sam-hq README
_META = "https://dl.fbaipublicfiles.com/segment_anything/"

MODELS: dict[str, SamModelInfo] = {m.name: m for m in (
    SamModelInfo("sam_hq_vit_tiny", "Light HQ-SAM TinyViT, SAM decoder (fast, CPU)", "segment_anything_hq",
                 "sam_model_registry_baseline", "vit_tiny", "sam_hq_vit_tiny.pth", _HQ_TINY_URL, None, None,
                 drop_keys=_HQ_KEYS, note="size and sha256 unverified"),
    SamModelInfo("sam_hq_vit_tiny_hq", "Light HQ-SAM TinyViT, HQ decoder", "segment_anything_hq",
                 "sam_model_registry", "vit_tiny", "sam_hq_vit_tiny.pth", _HQ_TINY_URL, None, None,
                 hq_decoder=True, note="size and sha256 unverified"),
    SamModelInfo("sam_vit_b", "SAM ViT-B (Meta; GPU)", "segment_anything", "sam_model_registry", "vit_b",
                 "sam_vit_b_01ec64.pth", _META + "sam_vit_b_01ec64.pth", 375042383,
                 "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912"),
    SamModelInfo("sam_vit_l", "SAM ViT-L (Meta; GPU)", "segment_anything", "sam_model_registry", "vit_l",
                 "sam_vit_l_0b3195.pth", _META + "sam_vit_l_0b3195.pth", 1249524607,
                 "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622"),
    SamModelInfo("sam_vit_h", "SAM ViT-H (Meta; GPU)", "segment_anything", "sam_model_registry", "vit_h",
                 "sam_vit_h_4b8939.pth", _META + "sam_vit_h_4b8939.pth", 2564550879,
                 "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e"),
)}
DEFAULT_MODEL = "sam_hq_vit_tiny"


def model_info(name: str | None) -> SamModelInfo:
    if name is None:
        return MODELS[DEFAULT_MODEL]
    try:
        return MODELS[name]
    except KeyError:
        raise BadValue(f"unknown Segment Anything model {name!r}; use {', '.join(MODELS)}") from None


def weights_file(name: str | None = None) -> Path:
    """Where the model's official file is (or would be) kept: the torch hub cache, as torchvision's."""
    return hub_dir() / "checkpoints" / model_info(name).file


def packages_installed() -> bool:
    """Whether the packages can be imported, found without importing them (for greying out a menu)."""
    from importlib.util import find_spec
    return all(find_spec(p) is not None for p in PACKAGES)


def embedding_dir(project: "Project", model_id: str) -> Path:
    """The project's on-disk embedding cache for one model: <data_dir>/sam/<model>/ (FOLDER/.segstudio/sam/,
    as the project's trained models are in <data_dir>/models)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model_id)[:80] or "model"
    return project.data_dir / "sam" / safe


# ----------------------------------------------------------------------------- pixels in
# SAM sees an image as the user sees it (16-bit, float and grey through the display's window/level;
# the package's own input transform would crash on grey or 16-bit input and silently wrap floats):
# the checks every promptable family shares, under the names this family's callers know
sam_window = model_window
to_sam_rgb = to_model_rgb


def full_size_mask(logits: np.ndarray, input_size: tuple[int, int], original_size: tuple[int, int],
                   threshold: float = 0.0) -> np.ndarray:
    """A candidate's (256, 256) low-resolution logits -> its (H, W) bool mask at the image's size.
    The same steps as the packages' `Sam.postprocess_masks` (bilinear to the 1024 input square,
    cropped to the resized image, bilinear to the original size; OpenCV's INTER_LINEAR is torch's
    bilinear with align_corners=False, to 1e-5), for one candidate at a time: a prompt's answer
    is shown before the other candidates are made full-size (3 of them at 12 Mpx: ~90 ms)."""
    import cv2
    lo = np.asarray(logits, np.float32)
    side = 4 * lo.shape[-1]  # the encoder's input square (1024)
    m = cv2.resize(lo, (side, side), interpolation=cv2.INTER_LINEAR)[:input_size[0], :input_size[1]]
    m = cv2.resize(np.ascontiguousarray(m), (original_size[1], original_size[0]), interpolation=cv2.INTER_LINEAR)
    return m > threshold


# ----------------------------------------------------------------------------- the family
def weights_needed() -> list[WeightsFile]:
    """Every official file and whether it is in the torch hub cache (one is enough)."""
    return [WeightsFile(info.file, str(weights_file(name)), weights_file(name).exists(),
                        f"{info.title}" + (f"; {info.note}" if info.note else ""))
            for name, info in MODELS.items()]


def add_predict_args(parser) -> dict[str, str]:
    """Segment Anything's own `segstudio predict` flags (argparse; no torch); their dests -> flags."""
    parser.add_argument("--sam-model", choices=list(MODELS), default=None,
                        help=f"SAM: which model (default {DEFAULT_MODEL}, a TinyViT fast on a CPU; with --weights: "
                             "guessed from the file)")
    parser.add_argument("--prompts", choices=PROMPT_MODES, default=None,
                        help="SAM: everything (default): a grid of points over each image, class-less regions of "
                             "class 'object' to rename; boxes: each region already on an image (e.g. imported "
                             "boxes) becomes a mask of the same class (pick the images with --status)")
    parser.add_argument("--points-per-side", type=int, default=None, metavar="N",
                        help="SAM everything: grid of N x N point prompts (default 16 on a CPU, 32 on a GPU)")
    return {"sam_model": "--sam-model", "prompts": "--prompts", "points_per_side": "--points-per-side"}


def presets() -> list[tuple[str, dict]]:
    """The official models by name, for the Model panel: whether each file is here or would be downloaded."""
    return [(f"{info.title} — {'in the cache' if weights_file(name).exists() else 'downloaded when loaded'}",
             {"sam_model": name}) for name, info in MODELS.items()]


FAMILIES = (
    Family(ARCH, "Segment Anything (click any object)", "segstudio.inference.sam",
           frozenset({CLICK, BOX, PRELABEL_INSTANCES}),
           load="segstudio.inference.sam.segmenter:load", load_click="segstudio.inference.sam.model:load_click",
           weights="segstudio.inference.sam.spec:weights_needed", packages=PACKAGES, install_hint=INSTALL_HINT,
           cli_options=CLI_OPTIONS, cli_args="segstudio.inference.sam.spec:add_predict_args",
           presets="segstudio.inference.sam.spec:presets",
           catalog="segstudio.inference.sam.weights:catalog",
           note="a click or a box gives candidate masks; headless: a grid of points, or the boxes already there"),
)

