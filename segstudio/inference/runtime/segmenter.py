"""The small interface every model answers to, and what it answers.

`Segmenter.predict_batch(images)` returns one `Prediction` per image. A Prediction holds the
model's raw answer in compact form (a class map, or instance crops); `detections()` turns it
into masks on the CPU, on whatever thread calls it, so decoding, the model and storing can
overlap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol, Sequence

import numpy as np

from segstudio.core import maskops

if TYPE_CHECKING:  # this module stays torch-free: the window reads Predictions
    from segstudio.core.project import Project
    from segstudio.core.records import ImageRecord
    from segstudio.inference.runtime.device import DeviceInfo


@dataclass
class Detection:
    label: int  # model class index, 1..K-1 (0 is background)
    mask: np.ndarray  # bool, cropped
    x: int
    y: int
    score: float

    @property
    def box(self):
        h, w = self.mask.shape
        return self.x, self.y, self.x + w, self.y + h

    def contains(self, px: int, py: int) -> bool:
        h, w = self.mask.shape
        return 0 <= px - self.x < w and 0 <= py - self.y < h and bool(self.mask[py - self.y, px - self.x])


class DeferredDetections(Protocol):
    """A model's detections kept small until read (Mask R-CNN's 28x28 masks: maskrcnn.instance_masks.
    LowResMasks), made image-sized by whoever reads them: the window's model thread, or a
    post-processing worker process (so it pickles)."""

    def detections(self, width: int, height: int, min_score: float = float("-inf")) -> list[Detection]:
        """The detections scoring at least `min_score`, cropped to the (width, height) image."""
        ...


@dataclass
class Prediction:
    """Kept: detections at or above the score threshold. Candidates: everything the model
    proposed (a click can accept one of these). Uncertainty in [0, 1]."""
    width: int
    height: int
    uncertainty: float
    _detections: list[Detection] | None = None
    _candidates: list[Detection] | None = None
    class_map: np.ndarray | None = None  # UNet: (H, W) uint8/uint16 model class per pixel
    confidence: np.ndarray | None = None  # UNet: (H, W) probability of that class (uint8: x/255)
    per_component: bool = True
    min_area: int = 4
    score_threshold: float = 0.5
    extra: dict = field(default_factory=dict)
    low_res: DeferredDetections | None = None  # Mask R-CNN: small masks, pasted when first read
    _pending: Callable[[Prediction], None] | None = None  # a device-to-host copy still in flight (see wait)

    def wait(self) -> "Prediction":
        """Block until the arrays copied from the device have arrived (a no-op on the CPU). The
        model thread hands predictions on before the copy ends, so it can start the next batch."""
        if self._pending is not None:
            finish = self._pending
            self._pending = None
            finish(self)
        return self

    def detections(self) -> list[Detection]:
        if self._detections is None:
            self.wait()
            if self._candidates is None and self.low_res is not None:  # paste only the kept ones
                self._detections = self.low_res.detections(self.width, self.height, self.score_threshold)
            else:
                self._detections = [d for d in self.candidates() if d.score >= self.score_threshold]
        return self._detections

    def candidates(self) -> list[Detection]:
        self.wait()
        if self._candidates is None:
            if self.low_res is not None:
                self._candidates = self.low_res.detections(self.width, self.height)
            elif self.class_map is None:
                self._candidates = []
            else:
                assert self.confidence is not None  # a UNet prediction has both arrays
                self._candidates = semantic_detections(self.class_map, self.confidence, self.per_component,
                                                       self.min_area)
        return self._candidates


def semantic_detections(class_map: np.ndarray, confidence: np.ndarray, per_component: bool = True,
                        min_area: int = 4) -> list[Detection]:
    """One detection per class per connected component (or per class), scored by mean confidence."""
    out = []
    present = np.flatnonzero(np.bincount(class_map.ravel()))  # faster than np.unique (no sort)
    for value in present:
        label = int(value)
        if label == 0:
            continue
        m = class_map == label
        parts = maskops.components(m) if per_component else \
            [c for c in [maskops.crop_to_content(m)] if c is not None]
        for pm, x, y in parts:
            area = int(pm.sum())
            if area < min_area:
                continue
            conf = confidence[y:y + pm.shape[0], x:x + pm.shape[1]][pm].astype(np.float32)
            if confidence.dtype.kind in "iu":  # quantised probability, x / 255
                conf *= 1.0 / 255.0
            out.append(Detection(label, pm, x, y, float(conf.mean()) if conf.size else 0.0))
    return out


class Segmenter:
    arch = "model"
    name = "model"  # the region source written to the store
    classes: list[str]
    device: "DeviceInfo"

    def predict(self, image: np.ndarray) -> Prediction:
        return self.predict_batch([image])[0]

    def predict_batch(self, images: Sequence[np.ndarray], progress: Callable | None = None,
                      cancel: Callable[[], bool] | None = None) -> list[Prediction]:
        return self.predict_prepared([self.prepare(im) for im in images], progress, cancel)

    def prepare(self, image: np.ndarray):
        """The CPU half of the input (normalise, lay out, pin): thread-safe, runs on decoder threads."""
        raise NotImplementedError

    def prepare_record(self, image: np.ndarray, project: "Project", record: "ImageRecord"):
        """prepare() for an image of a project (engine.predict_project calls this, on decoder
        threads: read the store, never write it). A model prompted by what the project already
        holds on the image overrides it: SAM's box prompts come from the image's regions."""
        return self.prepare(image)

    def predict_prepared(self, items: Sequence, progress: Callable | None = None,
                         cancel: Callable[[], bool] | None = None) -> list[Prediction]:
        """The device half: prepared inputs in, predictions out."""
        raise NotImplementedError
