"""Promptable segmentation: the Segment Anything family (`sam_spec` lists the models). No Qt.

Two steps, as SAM is built: `SamModel.embed(rgb)` runs the image encoder once per image (the
expensive part: about 1-2 s for TinyViT on 2 CPU cores) and returns an `Embedding`;
`SamModel.decode(embedding, points, box, mask_input)` answers a prompt from it (tens of ms) with
`Candidates`, best first. `load_sam` makes a ready SamModel.

Beside this module: `sam_weights` (the packages, building the network, checking and reading
weights files), `sam_cache` (`Embedding`, `EmbeddingCache`: in memory and on disk, so an image is
embedded once) and `sam.segmenter` (`SamSegmenter`, the headless `Segmenter` behind
`segstudio predict --model sam`).

Weights are loaded strict, from files read weights-only (`sam_weights`); official files in the
torch hub cache are size- and sha256-checked before anything is unpickled.

Threads: a SamPredictor is stateful (the image it holds), so every call on a SamModel takes its
lock; call it from one worker thread, or accept that calls queue.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
import torch

from segstudio.core import maskops
from segstudio.core.errors import BadValue
from segstudio.inference.runtime.checkpoint import CheckpointError
from segstudio.inference.runtime.device import DeviceInfo, choose_device
from segstudio.inference.sam.cache import Embedding, EmbeddingCache
from segstudio.inference.sam.runtime import (PromptsFirst, constant_dense_pe, contiguous_tokens, decoder_in,
                                            low_res_only, resolve_precision)
from segstudio.inference.sam.spec import (MODELS, OPTIONS, SamModelInfo, embedding_dir, full_size_mask, model_info,
                                          to_sam_rgb, weights_file)
from segstudio.inference.runtime.prompt_input import check_box, check_low_res_mask, check_points  # noqa: F401 (check_box: callers find it here)
from segstudio.inference.runtime.pretrained import WeightsUnavailable, first_line
from segstudio.inference.sam.weights import (build_model, download_weights, guess_model, import_package,
                                             missing_message, official_for, read_state_dict, verify_official)

if TYPE_CHECKING:
    from segstudio.core.project import Project

MAX_POINTS = 256  # point prompts per decode; SAM was trained with far fewer
LOW_RES = 256  # side of SAM's low-resolution mask logits (the mask_input it takes back)


def load_sam(name: str | None = None, weights: str | Path | None = None, device: DeviceInfo | str = "auto",
             download: bool = True, *, random_weights: bool = False, progress: bool = True,
             precision: str | None = "auto") -> "SamModel":
    """A ready SamModel.

    name: a sam_spec.MODELS key (None: guessed from `weights`' keys, else the default model).
    weights: a file of the user's (loaded weights-only and strict, its hash unchecked: it may be
    fine-tuned); None: the model's official file in the torch hub cache, downloaded when missing
    and `download`, size- and sha256-checked where those are known.
    random_weights: tests only, and only with weights=None: random initialisation, said so in
    `SamModel.cache_id`. Never the fallback for missing weights.
    precision: auto | float32 | bfloat16 (`sam_runtime.resolve_precision`).
    """
    dev = device if isinstance(device, DeviceInfo) else choose_device(device)
    info: SamModelInfo | None
    if random_weights:
        if weights is not None:
            raise BadValue("random_weights and a weights file exclude each other")
        info = model_info(name)
        return SamModel(build_model(info).to(dev.device).eval().requires_grad_(False), info, dev, None,
                        precision=precision)
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.exists():
            raise CheckpointError(f"weights file not found: {path}")
        if path.is_dir():
            raise CheckpointError(f"{path} is a folder, not a weights file")
        info = model_info(name) if name is not None else None
        official = official_for(path)
        if official is not None:
            verify_official(path, official)  # an official file in the cache picked by hand: checked all the same
    else:
        info = model_info(name)
        path = weights_file(info.name)
        if not path.exists():
            if not download:
                raise WeightsUnavailable(missing_message(info))
            try:
                download_weights(info, progress)
            except Exception as e:  # no network, a proxy, a hash mismatch: whatever raised it  # noqa: BLE001
                raise WeightsUnavailable(missing_message(info) + f" (download failed: {first_line(e)})") from None
        verify_official(path, info)
    sd = read_state_dict(path)
    if info is None:
        info = model_info(guess_model(sd))
    net = build_model(info)
    if info.drop_keys:
        sd = {k: v for k, v in sd.items() if not k.startswith(info.drop_keys)}
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        detail = [ln.strip() for ln in str(e).splitlines() if ln.strip()]  # line 1 is "Error(s) in loading"
        raise CheckpointError(f"{path.name}: the weights do not fit {info.name} "
                              f"({(detail[1] if len(detail) > 1 else first_line(e))[:160]}); choose the model "
                              "they were made for "
                              f"(--sam-model {' | '.join(MODELS)})") from None
    del sd
    return SamModel(net.to(dev.device).eval().requires_grad_(False), info, dev, path, precision=precision)


def load_click(spec, device: DeviceInfo, project=None) -> "SamModel":
    """The Segment Anything family's click model (`Family.load_click`; spec: an engine.ModelSpec):
    options["sam_model"] (None: guessed from the weights file, else the CPU default), the spec's
    weights file or the official one; amp False (--no-amp): float32 everywhere, otherwise bfloat16
    where the hardware has it (sam/runtime.py). The project is not needed to load it (its
    embeddings: `SamModel.open_cache(project)`)."""
    from segstudio.inference.runtime.model_spec import check_options
    opts = check_options(spec, OPTIONS)
    return load_sam(opts.get("sam_model"), spec.weights, device, spec.download,
                    precision="float32" if spec.amp is False else "auto")


# ----------------------------------------------------------------------------- prompts
class Candidates:
    """A prompt's answer, best first: the model's predicted IoU and low-resolution logits for each
    candidate; `mask(k)` is candidate k at the image's full size and `crop(k)` the same cropped to
    its content, each made when first asked for (the first one by `SamModel.decode`, before the
    answer is shown). Feed `low_res_logits[k]` back as
    `mask_input` to refine candidate k. Torch-free: the window cycles candidates with it."""

    def __init__(self, scores: np.ndarray, low_res_logits: np.ndarray, input_size: tuple[int, int],
                 original_size: tuple[int, int], threshold: float = 0.0):
        self.scores = np.asarray(scores, np.float32)  # (C,), descending
        self.low_res_logits = np.asarray(low_res_logits, np.float32)  # (C, 256, 256)
        self.input_size, self.original_size, self.threshold = input_size, original_size, threshold
        self._full: dict[int, np.ndarray] = {}
        self._crops: dict[int, tuple[np.ndarray, int, int] | None] = {}

    def __len__(self) -> int:
        return len(self.scores)

    def mask(self, k: int) -> np.ndarray:
        """Candidate k as an (H, W) bool mask at the image's size."""
        m = self._full.get(k)
        if m is None:
            m = self._full[k] = full_size_mask(self.low_res_logits[k], self.input_size, self.original_size,
                                               self.threshold)
        return m

    def crop(self, k: int) -> tuple[np.ndarray, int, int] | None:
        """Candidate k cropped to its content, (mask, x, y), None when empty; made once (the window
        draws the preview from it on every repaint)."""
        if k not in self._crops:
            self._crops[k] = maskops.crop_to_content(self.mask(k))
        return self._crops[k]

    @property
    def masks(self) -> np.ndarray:
        """All candidates at full size, (C, H, W) bool."""
        return np.stack([self.mask(k) for k in range(len(self))])

    @property
    def best(self) -> np.ndarray:
        return self.mask(0)


def check_prompts(points: Iterable[tuple[float, float, bool]] | None, box: Sequence[float] | None,
                  mask_input: np.ndarray | None, width: int, height: int
                  ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Prompts in image pixels -> the arrays SamPredictor.predict takes. Non-numbers and NaN/inf
    raise BadValue; points outside the image and box corners are clipped to it (a box that lies
    wholly outside, or has no area, raises); the box's corners may come in any order."""
    # the checks every promptable family makes (runtime/prompt_input.py)
    pts = check_points(points, width, height, MAX_POINTS)
    coords, labels = pts if pts is not None else (None, None)
    box_a = check_box(box, width, height) if box is not None else None
    mask_a = check_low_res_mask(mask_input, LOW_RES) if mask_input is not None else None
    if coords is None and box_a is None:
        raise BadValue("a prompt needs at least one point or a box")
    return coords, labels, box_a, mask_a


def check_rgb(rgb: np.ndarray) -> np.ndarray:
    a = np.asarray(rgb)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise BadValue(f"SAM takes uint8 RGB (H, W, 3), not {a.dtype} {a.shape}: convert with "
                       "sam_spec.to_sam_rgb(image, window)")
    h, w = a.shape[:2]
    if min(h, w) < 1 or min(h, w) * 1024 / max(h, w) + 0.5 < 1:  # the short side would resize to 0 px
        raise BadValue(f"a {w}x{h} image is too small or too elongated for Segment Anything")
    return np.ascontiguousarray(a)


# ----------------------------------------------------------------------------- the model
class SamModel:
    """A loaded promptable model: embed an image once, decode prompts from the embedding."""

    def __init__(self, net: torch.nn.Module, info: SamModelInfo, device: DeviceInfo, weights: Path | None,
                 store_dtype: torch.dtype = torch.float16, precision: str | None = "auto"):
        self.net, self.info, self.device = net, info, device
        self.name = info.name
        self.weights = weights
        self.store_dtype = store_dtype
        self.dtype = resolve_precision(precision, device)  # what the encoder and decoder compute in
        self.package = import_package(info.package)
        n: Any = net  # the package's Sam
        runs: Any = decoder_in(n.mask_decoder, self.dtype) if self.dtype != torch.float32 else n.mask_decoder
        contiguous_tokens(runs.transformer)
        constant_dense_pe(n.prompt_encoder, self.dtype)
        self.channels_last = device.type == "cpu"
        if self.channels_last:
            n.image_encoder.to(memory_format=torch.channels_last)
        self.priority = PromptsFirst()
        self.priority.attach(n.image_encoder)
        self.predictor = self.package.SamPredictor(net)
        self.lock = threading.RLock()
        self._current: Embedding | None = None  # the embedding the predictor holds now
        bf16 = "-bf16" if self.dtype == torch.bfloat16 else ""  # embeddings differ by a little: kept apart
        if weights is None:
            self.cache_id = f"{info.name}-random-{id(net):x}{bf16}"
        else:
            st = weights.stat()
            self.cache_id = f"{info.name}-{weights.name}-{st.st_size}-{st.st_mtime_ns}{bf16}"
        self._decode_kw = {"hq_token_only": False} if info.package == "segment_anything_hq" else {}

    def __repr__(self) -> str:
        return f"SamModel({self.name}, {self.weights or 'random weights'}, {self.device.describe()})"

    def open_cache(self, project: "Project | None") -> EmbeddingCache:
        """This model's embedding cache in `project` (memory and the project's folder for it,
        sam_spec.embedding_dir); None: in memory only."""
        return EmbeddingCache(embedding_dir(project, self.name) if project is not None else None)

    def embed(self, rgb: np.ndarray, cancel: Callable[[], bool] | None = None) -> Embedding:
        """Run the image encoder on uint8 RGB (H, W, 3) (`sam_spec.to_sam_rgb` makes it from any
        image, through the window/level the user sees). `cancel` is asked before the encoder runs
        (it cannot stop half-way).

        The encoder runs outside the model's lock and leaves the predictor alone (the steps of
        the package's SamPredictor.set_image, by its own transform, preprocess and encoder): the
        next image is embedded on another thread while prompts on this one are decoded."""
        rgb = check_rgb(rgb)
        if cancel is not None and cancel():
            raise InterruptedError("cancelled")
        p = self.predictor
        with torch.inference_mode(), self.priority.encoding(cancel):
            resized = p.transform.apply_image(rgb)
            x = torch.as_tensor(resized, device=self.device.device).permute(2, 0, 1).contiguous()[None]
            net: Any = self.net  # the package's Sam: image_encoder and preprocess are its own
            x = net.preprocess(x)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
                out = net.image_encoder(x)
            # HQ-SAM's encoders also return their intermediate ViT maps; its decoder uses the first
            features, interm = out if isinstance(out, tuple) else (out, None)
            keep = interm[0].to("cpu", self.store_dtype) if self.info.hq_decoder and interm is not None else None
            emb = Embedding(features.to("cpu", self.store_dtype), keep, (int(rgb.shape[0]), int(rgb.shape[1])),
                            (int(resized.shape[0]), int(resized.shape[1])), self.cache_id)
        return emb

    def embedding_for(self, image: np.ndarray, image_path: str | Path | None, cache: EmbeddingCache | None = None,
                      window: tuple[float, float] | None = None,
                      cancel: Callable[[], bool] | None = None) -> Embedding:
        """The embedding of a decoded image (any depth: converted through `window`, the one the
        user sees), from `cache` when it has it (keyed by this model, the file and the window)."""
        def compute() -> Embedding:
            return self.embed(to_sam_rgb(image, window), cancel)
        if cache is None or image_path is None:
            return compute()
        try:
            key = EmbeddingCache.key(self.cache_id, image_path, window)
        except OSError:  # the file went away after decoding: nothing to key the cache on
            return compute()
        return cache.get_or_compute(key, compute, cancel)

    def _restore(self, emb: Embedding, predictor: Any = None) -> None:
        """Put a (cached) embedding into the predictor (default: this model's own) without running
        the encoder."""
        if predictor is None and self._current is emb:
            return
        if emb.model != self.cache_id:
            raise BadValue(f"this embedding was made by another model ({emb.model}), not {self.cache_id}")
        if self.info.hq_decoder and emb.interm is None:
            raise BadValue("the HQ decoder needs an embedding with intermediate features")
        p, dev = predictor or self.predictor, self.device.device
        p.reset_image()
        p.features = emb.features.to(dev, self.dtype)  # the predictor hands them to the decoder only
        if self.info.package == "segment_anything_hq":
            p.interm_features = [emb.interm.to(dev, self.dtype)] if emb.interm is not None else None
        p.original_size = emb.original_size
        p.input_size = emb.input_size
        p.is_image_set = True
        if predictor is None:
            self._current = emb

    def set_image(self, predictor: Any, rgb: np.ndarray, cancel: Callable[[], bool] | None = None) -> None:
        """What the package's SamPredictor.set_image does, through `embed` (this model's precision,
        layout and cancel): for the package's automatic mask generator, which sets each crop."""
        self._restore(self.embed(rgb, cancel), predictor)

    def decode(self, emb: Embedding, points: Iterable[tuple[float, float, bool]] | None = None,
               box: Sequence[float] | None = None, mask_input: np.ndarray | None = None,
               multimask: bool | None = None) -> Candidates:
        """Masks for a prompt, from the embedding (the encoder does not run).

        points: (x, y, positive) in image pixels; box: (x0, y0, x1, y1); mask_input: a previous
        candidate's low_res_logits[k] (SAM's own logits: a binary mask from elsewhere works
        poorly; for such regions prompt with their box and a point inside). multimask: None
        follows SAM's advice (several candidates for a lone point, the single answer otherwise).
        The vanilla decoder gives 3 candidates for multimask, HQ's decoder always 1."""
        coords, labels, box_a, mask_a = check_prompts(points, box, mask_input, emb.width, emb.height)
        if multimask is None:
            multimask = coords is not None and len(coords) == 1 and box_a is None and mask_a is None
        with self.priority.decoding(), self.lock, torch.no_grad(), low_res_only(self.net):
            self._restore(emb)
            _, scores, low = self.predictor.predict(coords, labels, box_a, mask_a, multimask_output=multimask,
                                                    **self._decode_kw)
        order = np.argsort(-scores, kind="stable")
        cands = Candidates(scores[order], low[order], emb.input_size, emb.original_size,
                           float(getattr(self.net, "mask_threshold", 0.0)))
        cands.crop(0)  # the one shown first, made here on the model's thread
        return cands

    def decode_boxes(self, emb: Embedding, boxes: np.ndarray, chunk: int = 16
                     ) -> list[tuple[np.ndarray, int, int, float] | None]:
        """One mask per box (x0, y0, x1, y1), batched: (crop, x, y, score) each, None for an empty
        mask. Boxes are checked and clipped like decode's."""
        checked = [check_box(b, emb.width, emb.height) for b in np.asarray(boxes, np.float64).reshape(-1, 4)]
        out: list[tuple[np.ndarray, int, int, float] | None] = []
        with self.priority.decoding(), self.lock, torch.no_grad():
            self._restore(emb)
            p = self.predictor
            for at in range(0, len(checked), chunk):
                bt = torch.as_tensor(np.stack(checked[at:at + chunk]), dtype=torch.float, device=p.device)
                bt = p.transform.apply_boxes_torch(bt, emb.original_size)
                masks, iou, _ = p.predict_torch(None, None, boxes=bt, multimask_output=False, **self._decode_kw)
                masks_np, iou_np = masks[:, 0].cpu().numpy(), iou[:, 0].float().cpu().numpy()
                for m, s in zip(masks_np, iou_np, strict=True):
                    c = maskops.crop_to_content(m)
                    out.append(None if c is None else (c[0], c[1], c[2], float(s)))
        return out

    def mask_generator(self, points_per_side: int, points_per_batch: int = 64, pred_iou_thresh: float = 0.88,
                       stability_score_thresh: float = 0.95, box_nms_thresh: float = 0.7):
        """The package's own SamAutomaticMaskGenerator on this network (COCO RLE output: masks
        are decoded one at a time, never all at full size at once)."""
        return self.package.SamAutomaticMaskGenerator(
            self.net, points_per_side=points_per_side, points_per_batch=points_per_batch,
            pred_iou_thresh=pred_iou_thresh, stability_score_thresh=stability_score_thresh,
            box_nms_thresh=box_nms_thresh, output_mode="coco_rle")
