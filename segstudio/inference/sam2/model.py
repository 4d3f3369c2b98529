"""SAM 2.1 as a click model (the promptable protocol, inference/promptable.py). No Qt.

Used the way transformers documents it: `Sam2Processor` turns the image into `pixel_values`
(resized to 1024x1024, ImageNet mean/std) and prompts into its coordinates;
`Sam2Model.get_image_embeddings(pixel_values)` runs the image encoder once per image (the slow
part); `Sam2Model(image_embeddings=..., input_points / input_labels / input_boxes / input_masks,
multimask_output=...)` answers each prompt from those embeddings with low-resolution mask logits
and predicted IoUs; a candidate is made full-size by bilinear interpolation to the image's size,
as the processor's `post_process_masks` does (one candidate at a time, when it is asked for).

`load_sam2` makes a ready `Sam2ClickModel`: the package's own SAM 2.1 Hiera-Tiny configuration
with random weights (tests only, named so in its cache id), or weights read from safetensors
(sam2/spec.py says where they are found) and loaded strictly: a key missing, left over or of
another shape is an error, never a half-random model.

Threads: the model holds no per-image state, so the next image is embedded on one thread while
prompts on this one are decoded on another; a decode marks itself in the process-wide
prompts-first gate (runtime/priority.py) and the encoder waits between its blocks while one runs.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
import torch

from segstudio.core import maskops
from segstudio.core.errors import BadValue
from segstudio.inference.runtime.checkpoint import CheckpointError
from segstudio.inference.runtime.device import DeviceInfo, choose_device
from segstudio.inference.runtime.pretrained import WeightsUnavailable, first_line
from segstudio.inference.runtime.priority import PROMPTS
from segstudio.inference.runtime.prompt_input import (check_box, check_low_res_mask, check_points,
                                                      to_model_rgb)
from segstudio.inference.sam2.cache import EmbeddingCache, Sam2Embedding
from segstudio.inference.sam2.spec import (CONFIG_FILE, INSTALL_HINT, MODELS, OPTIONS, WEIGHTS_FILE,
                                           Sam2ModelInfo, Sam2Unavailable, embedding_dir, model_info)

if TYPE_CHECKING:
    from segstudio.core.project import Project

log = logging.getLogger(__name__)

MAX_POINTS = 256  # point prompts per decode
LOW_RES = 256  # side of the decoder's low-resolution mask logits (the mask_input it takes back)
MAX_CONFIG_BYTES = 1 << 20  # a config.json larger than this is no model configuration


# ----------------------------------------------------------------------------- the package
_lock = threading.Lock()


def transformers_sam2() -> Any:
    """transformers' SAM 2 module, imported on first use (a clear message when it is missing)."""
    with _lock:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                from transformers.models import sam2
        except ImportError as e:
            raise Sam2Unavailable(f"SAM 2 needs `{INSTALL_HINT}` (Hugging Face transformers with SAM 2): {e}") from None
        return sam2


def build_net(config: Any = None) -> torch.nn.Module:
    """The network from the package's own configuration (default: SAM 2.1 Hiera-Tiny), random weights."""
    t = transformers_sam2()
    return t.Sam2Model(config if config is not None else t.Sam2Config())


def _read_config(folder: Path) -> Any:
    """The folder's config.json as a Sam2Config, or None when there is none; CheckpointError for
    one that is not a SAM 2 configuration."""
    path = folder / CONFIG_FILE
    if not path.exists():
        return None
    try:
        if not path.is_file() or path.stat().st_size > MAX_CONFIG_BYTES:
            raise CheckpointError(f"{path} is not a model configuration (not a small regular file)")
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"cannot read {path}: {first_line(e)}") from None
    if not isinstance(d, dict) or d.get("model_type") != "sam2":
        kind = d.get("model_type") if isinstance(d, dict) else type(d).__name__
        raise CheckpointError(f"{path} describes a {kind!r} model, not SAM 2 (model_type 'sam2')")
    return transformers_sam2().Sam2Config.from_pretrained(str(folder), local_files_only=True)


def _weights_folder(weights: str | Path) -> Path:
    """A folder with model.safetensors (what save_pretrained writes), from a folder or that file."""
    path = Path(weights).expanduser()
    if not path.exists():
        raise CheckpointError(f"weights file not found: {path}")
    if path.is_dir():
        if not (path / WEIGHTS_FILE).is_file():
            raise CheckpointError(f"{path} holds no {WEIGHTS_FILE}: SAM 2 weights are a folder with {CONFIG_FILE} "
                                  f"and {WEIGHTS_FILE} (Hugging Face's layout), or that {WEIGHTS_FILE} file")
        return path
    if path.name != WEIGHTS_FILE:
        raise CheckpointError(f"{path.name}: SAM 2 weights are a {WEIGHTS_FILE} file (safetensors, in a folder with "
                              f"its {CONFIG_FILE}), or that folder")
    return path.parent


def _official_folder(info: Sam2ModelInfo, download: bool) -> Path:
    """The repository's snapshot in the Hugging Face cache, downloaded there when missing and allowed."""
    try:
        import huggingface_hub
    except ImportError as e:
        raise Sam2Unavailable(f"SAM 2 needs `{INSTALL_HINT}`: {e}") from None
    missing = (f"SAM 2 weights for {info.name} are not available: {CONFIG_FILE} and {WEIGHTS_FILE} of "
               f"{info.url} in the Hugging Face cache, or choose their folder (--weights FOLDER)")
    try:
        folder = Path(huggingface_hub.snapshot_download(info.repo, allow_patterns=[CONFIG_FILE, WEIGHTS_FILE],
                                                        local_files_only=not download))
    except Exception as e:  # offline, no such cache entry, a proxy: whatever raised it  # noqa: BLE001
        raise WeightsUnavailable(missing + ("" if not download else f" (download failed: {first_line(e)})")) from None
    if not (folder / WEIGHTS_FILE).is_file():
        raise WeightsUnavailable(missing)
    if not info.verified:
        log.info("%s: %s has no known size and sha256 to check it against", info.name, folder / WEIGHTS_FILE)
    return folder


def load_sam2(name: str | None = None, weights: str | Path | None = None, device: DeviceInfo | str = "auto",
              download: bool = True, *, random_weights: bool = False) -> "Sam2ClickModel":
    """A ready Sam2ClickModel.

    name: a sam2_spec.MODELS key (None: the default). weights: a folder with config.json and
    model.safetensors, or that model.safetensors file (its folder's config.json, else the
    package's SAM 2.1 Hiera-Tiny configuration); None: the official repository's files in the
    Hugging Face cache, downloaded there when missing and `download`. random_weights: tests only,
    and only with weights=None; never the fallback for missing weights."""
    dev = device if isinstance(device, DeviceInfo) else choose_device(device)
    info = model_info(name)
    if random_weights:
        if weights is not None:
            raise BadValue("random_weights and a weights file exclude each other")
        return Sam2ClickModel(build_net().to(dev.device).eval().requires_grad_(False), info, dev, None)
    folder = _weights_folder(weights) if weights is not None else _official_folder(info, download)
    config = _read_config(folder)
    t = transformers_sam2()
    config = config if config is not None else t.Sam2Config()  # a bare model.safetensors: SAM 2.1 Hiera-Tiny
    try:
        quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
        with warnings.catch_warnings(), quiet[0], quiet[1]:
            warnings.simplefilter("ignore")  # its progress bar and notes: what matters is checked below
            net, report = t.Sam2Model.from_pretrained(str(folder), config=config,
                                                      local_files_only=True, use_safetensors=True,
                                                      output_loading_info=True)
    except Exception as e:  # safetensors and transformers raise assorted errors on a damaged file  # noqa: BLE001
        raise CheckpointError(f"{folder / WEIGHTS_FILE}: cannot be read as SAM 2 weights ({first_line(e)})") from None
    problems = [f"{what}: {', '.join(map(str, keys[:3]))}" for what, keys in
                (("missing", list(report.get("missing_keys") or [])),
                 ("unexpected", list(report.get("unexpected_keys") or [])),
                 ("of another shape", list(report.get("mismatched_keys") or []))) if keys]
    if problems:
        raise CheckpointError(f"{folder / WEIGHTS_FILE}: the weights do not fit SAM 2 ({'; '.join(problems)})")
    return Sam2ClickModel(net.to(dev.device).eval().requires_grad_(False), info, dev, folder / WEIGHTS_FILE)


def load_click(spec: Any, device: DeviceInfo, project: "Project | None" = None) -> "Sam2ClickModel":
    """The family's click model (`Family.load_click`; spec: an engine.ModelSpec): options
    {"sam2_model": name}, the spec's weights (folder or model.safetensors) or the official ones.
    The project is not needed to load it (its embeddings: `open_cache(project)`)."""
    from segstudio.inference.runtime.model_spec import check_options
    opts = check_options(spec, OPTIONS)
    return load_sam2(opts.get("sam2_model"), spec.weights, device, spec.download)


# ----------------------------------------------------------------------------- prompts
class Sam2Candidates:
    """A prompt's answer, best first: predicted IoU and low-resolution logits per candidate;
    `mask(k)` is candidate k at the image's size (bilinear from the logits, as the processor's
    post_process_masks), `crop(k)` the same cropped to its content, each made when first asked
    for. Feed `low_res_logits[k]` back as `mask_input` to refine candidate k."""

    def __init__(self, scores: np.ndarray, low_res_logits: np.ndarray, original_size: tuple[int, int],
                 threshold: float = 0.0):
        self.scores = np.asarray(scores, np.float32)  # (C,), descending
        self.low_res_logits = np.asarray(low_res_logits, np.float32)  # (C, 256, 256)
        self.original_size, self.threshold = original_size, threshold
        self._full: dict[int, np.ndarray] = {}
        self._crops: dict[int, tuple[np.ndarray, int, int] | None] = {}

    def __len__(self) -> int:
        return len(self.scores)

    def mask(self, k: int) -> np.ndarray:
        """Candidate k as an (H, W) bool mask at the image's size (OpenCV's INTER_LINEAR is torch's
        bilinear with align_corners=False)."""
        m = self._full.get(k)
        if m is None:
            import cv2
            h, w = self.original_size
            m = self._full[k] = cv2.resize(self.low_res_logits[k], (w, h), interpolation=cv2.INTER_LINEAR) > \
                self.threshold
        return m

    def crop(self, k: int) -> tuple[np.ndarray, int, int] | None:
        if k not in self._crops:
            self._crops[k] = maskops.crop_to_content(self.mask(k))
        return self._crops[k]


def check_rgb(rgb: np.ndarray) -> np.ndarray:
    a = np.asarray(rgb)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3 or min(a.shape[:2]) < 1:
        raise BadValue(f"SAM 2 takes uint8 RGB (H, W, 3), not {a.dtype} {a.shape}: convert with "
                       "runtime.prompt_input.to_model_rgb(image, window)")
    return np.ascontiguousarray(a)


# ----------------------------------------------------------------------------- the model
class Sam2ClickModel:
    """A loaded SAM 2.1: embed an image once, decode prompts from the embedding (a Promptable)."""

    def __init__(self, net: torch.nn.Module, info: Sam2ModelInfo, device: DeviceInfo, weights: Path | None,
                 store_dtype: torch.dtype = torch.float16):
        t = transformers_sam2()
        self.net, self.info, self.device, self.weights = net, info, device, weights
        self.name = info.name
        self.store_dtype = store_dtype
        self.processor = t.Sam2Processor(image_processor=t.Sam2ImageProcessor())  # SAM 2.1's own preprocessing
        self._cancel = threading.local()  # the cancel of the embedding running on this thread
        for m in net.modules():  # between the encoder's blocks: wait while a prompt is answered
            if type(m).__name__ == "Sam2MultiScaleBlock":
                m.register_forward_pre_hook(self._between_blocks)
        if weights is None:
            self.cache_id = f"{info.name}-random-{id(net):x}"
        else:
            st = weights.stat()
            self.cache_id = f"{info.name}-{weights.parent.name}-{st.st_size}-{st.st_mtime_ns}"

    def __repr__(self) -> str:
        return f"Sam2ClickModel({self.name}, {self.weights or 'random weights'}, {self.device.describe()})"

    def _between_blocks(self, module: Any, args: Any) -> None:
        cancel = getattr(self._cancel, "fn", None)
        if cancel is not None and cancel():
            raise InterruptedError("cancelled")
        PROMPTS.pause_point(cancel)

    def open_cache(self, project: "Project | None") -> EmbeddingCache:
        """This model's embedding cache in `project` (memory, and the project's data folder for
        it: sam2_spec.embedding_dir); None: in memory only."""
        return EmbeddingCache(embedding_dir(project, self.name) if project is not None else None)

    def embed(self, rgb: np.ndarray, cancel: Callable[[], bool] | None = None) -> Sam2Embedding:
        """The image encoder on uint8 RGB (H, W, 3). `cancel` is asked before it runs and between
        its blocks (InterruptedError)."""
        rgb = check_rgb(rgb)
        if cancel is not None and cancel():
            raise InterruptedError("cancelled")
        inputs = self.processor(images=rgb, return_tensors="pt")
        self._cancel.fn = cancel
        try:
            with torch.inference_mode():
                net: Any = self.net  # transformers' Sam2Model
                feats = net.get_image_embeddings(inputs["pixel_values"].to(self.device.device))
        finally:
            self._cancel.fn = None
        return Sam2Embedding(tuple(f.to("cpu", self.store_dtype) for f in feats),
                             (int(rgb.shape[0]), int(rgb.shape[1])), self.cache_id)

    def embedding_for(self, image: np.ndarray, image_path: str | Path | None, cache: EmbeddingCache | None = None,
                      window: tuple[float, float] | None = None,
                      cancel: Callable[[], bool] | None = None) -> Sam2Embedding:
        """The embedding of a decoded image (any depth: converted through `window`, the one the
        user sees), from `cache` when it has it (keyed by this model, the file and the window)."""
        def compute() -> Sam2Embedding:
            return self.embed(to_model_rgb(image, window), cancel)
        if cache is None or image_path is None:
            return compute()
        try:
            key = cache.key(self.cache_id, image_path, window)
        except OSError:  # the file went away after decoding: nothing to key the cache on
            return compute()
        return cache.get_or_compute(key, compute, cancel)

    def decode(self, emb: Sam2Embedding, points: Iterable[tuple[float, float, bool]] | None = None,
               box: Sequence[float] | None = None, mask_input: np.ndarray | None = None,
               multimask: bool | None = None) -> Sam2Candidates:
        """Candidate masks for prompts in image pixels: points (x, y, positive), a box (x0, y0,
        x1, y1), mask_input (a previous candidate's low_res_logits[k]). multimask None: three
        candidates for a lone point (it is ambiguous), the single answer otherwise."""
        if not isinstance(emb, Sam2Embedding):
            raise BadValue(f"not a SAM 2 embedding: {type(emb).__name__}")
        if emb.model != self.cache_id:
            raise BadValue(f"this embedding was made by another model ({emb.model}), not {self.cache_id}")
        h, w = emb.original_size
        pts = check_points(points, w, h, MAX_POINTS)
        box_a = check_box(box, w, h) if box is not None else None
        mask_a = check_low_res_mask(mask_input, LOW_RES) if mask_input is not None else None
        if pts is None and box_a is None:
            raise BadValue("a prompt needs at least one point or a box")
        if multimask is None:
            multimask = pts is not None and len(pts[0]) == 1 and box_a is None and mask_a is None
        kw: dict[str, Any] = {"original_sizes": [[h, w]], "return_tensors": "pt"}
        if pts is not None:
            kw["input_points"] = [[pts[0].tolist()]]
            kw["input_labels"] = [[pts[1].tolist()]]
        if box_a is not None:
            kw["input_boxes"] = [[box_a.tolist()]]
        dev = self.device.device
        with PROMPTS.answering(), torch.inference_mode():
            p = self.processor(**kw)
            args: dict[str, Any] = {k: p[k].to(dev) for k in ("input_points", "input_labels", "input_boxes") if k in p}
            if mask_a is not None:
                args["input_masks"] = torch.from_numpy(mask_a)[None].to(dev)
            out = self.net(image_embeddings=[f.to(dev, torch.float32) for f in emb.features],
                           multimask_output=multimask, **args)
            scores = out.iou_scores[0, 0].float().cpu().numpy()
            low = out.pred_masks[0, 0].float().cpu().numpy()
        order = np.argsort(-scores, kind="stable")
        cands = Sam2Candidates(scores[order], low[order], emb.original_size)
        cands.crop(0)  # the one shown first, made here on the model's thread
        return cands


__all__ = ["MODELS", "Sam2Candidates", "Sam2ClickModel", "load_click", "load_sam2"]
