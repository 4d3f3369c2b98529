"""Loading a model by what the user chose, mapping its classes onto the project's, and running
it over a project with decoding, the model and storing overlapped (the GPU stays busy)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from segstudio.core.imageio import ImageDecodeError
from segstudio.core.project import Project
from segstudio.core.records import NEW, PREDICTED, ImageRecord
from segstudio.inference.checkpoint import CheckpointError, load_checkpoint
from segstudio.inference.device import DeviceInfo, choose_device
from segstudio.inference.classmap import ClassMapper, prediction_regions
from segstudio.inference.segmenter import Prediction, Segmenter

log = logging.getLogger(__name__)


@dataclass
class ModelSpec:
    """What to load: the architecture, a checkpoint file (None: Mask R-CNN COCO weights, or the
    project's best UNet), the device and the thresholds."""
    arch: str = "maskrcnn"
    weights: str | None = None
    device: str = "auto"
    score_threshold: float = 0.5
    mask_threshold: float = 0.5
    per_component: bool = True
    amp: bool | None = None
    version: str = "v2"
    download: bool = True


def load_segmenter(spec: ModelSpec, project: Project | None = None) -> Segmenter:
    device = choose_device(spec.device, spec.amp)
    if spec.arch == "unet":
        from segstudio.inference.unet_segmenter import UNetSegmenter
        path = spec.weights or (latest_model(project, "unet") if project is not None else None)
        if path is None:
            raise CheckpointError("a UNet needs a checkpoint: train one first (segstudio train FOLDER --model unet "
                                  "--out FILE, or Train in the Model panel) or give --weights FILE")
        ckpt = load_checkpoint(path, expect_arch="unet")
        return UNetSegmenter(ckpt, device, per_component=spec.per_component, score_threshold=0.0)
    if spec.arch == "maskrcnn":
        from segstudio.inference.maskrcnn import MaskRCNNSegmenter, coco_checkpoint
        ckpt = load_checkpoint(spec.weights, expect_arch="maskrcnn") if spec.weights else \
            coco_checkpoint(spec.version, spec.download)
        return MaskRCNNSegmenter(ckpt, device, spec.score_threshold, spec.mask_threshold)
    raise ValueError(f"unknown model {spec.arch!r}; use unet or maskrcnn")


def latest_model(project: Project, arch: str) -> str | None:
    """The project's newest checkpoint of that architecture that still exists (best before last)."""
    for m in project.store.models():
        if m["kind"] == arch and Path(m["path"]).exists():
            return m["path"]
    return None


@dataclass
class PredictReport:
    images: int = 0
    regions: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    model_seconds: float = 0.0
    device: str = ""
    dropped: dict = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


def store_prediction(project: Project, rec: ImageRecord, pred: Prediction, mapper: ClassMapper,
                     source: str) -> int:
    """Replace the regions this model made on the image; new images become 'predicted'."""
    regions = prediction_regions(pred, mapper, source, z0=project.store.max_z(rec.id) + 1)
    ids = project.store.reserve_region_ids(len(regions)) if regions else []
    for r, i in zip(regions, ids):
        r.id = i
    status = PREDICTED if rec.status in (NEW, PREDICTED) else None
    project.store.replace_source_regions(rec.id, source, regions, status=status, uncertainty=pred.uncertainty)
    return len(regions)


def predict_project(project: Project, segmenter: Segmenter, statuses: Sequence[str] | None = (NEW,),
                    batch: int = 4, create_classes: bool = True, decode_workers: int | None = None,
                    progress: Callable[[int, int, str], None] | None = None,
                    cancel: Callable[[], bool] | None = None, image_ids: Sequence[int] | None = None) -> PredictReport:
    """Run a model over a project's images.

    Three stages overlap: decoder threads read and normalise images ahead; this thread feeds the
    model batch after batch; a writer thread turns predictions into regions and commits them.
    """
    store = project.store
    ids = list(image_ids) if image_ids is not None else store.image_ids(statuses=statuses)
    report = PredictReport(device=segmenter.device.describe())
    mapper = ClassMapper(project, segmenter.classes, create_classes)
    t0 = time.perf_counter()
    if not ids:
        return report
    n_dec = decode_workers or max(2, min(8, (torch.get_num_threads() or 2)))
    pool = ThreadPoolExecutor(n_dec, thread_name_prefix="segstudio-decode")
    records = store.images_by_ids(ids)

    def decode(image_id):
        # decoding and the CPU half of the model input run here, on decoder threads
        rec = records[image_id]
        try:
            return rec, segmenter.prepare(project.load_image(rec)), None
        except ImageDecodeError as e:
            return rec, None, str(e)

    ahead = max(batch * 3, n_dec * 2)
    futures = [pool.submit(decode, i) for i in ids[:ahead]]
    next_submit = len(futures)
    results: queue.Queue = queue.Queue(maxsize=8)
    written = {"n": 0}
    writer_error: list[BaseException] = []

    post = ThreadPoolExecutor(2, thread_name_prefix="segstudio-post")

    def writer():
        # masks -> regions (connected components, crops) on two threads; commits in order here
        while True:
            item = results.get()
            if item is None:
                return
            recs, preds = item
            try:
                for pred in post.map(lambda p: p.detections(), preds):
                    pass
                for rec, pred in zip(recs, preds):
                    report.regions += store_prediction(project, rec, pred, mapper, segmenter.name)
                    report.images += 1
                    written["n"] += 1
                    if progress is not None:
                        progress(written["n"] + len(report.errors), len(ids), rec.path)
            except BaseException as e:  # surfaced to the caller after the loop
                writer_error.append(e)

    wt = threading.Thread(target=writer, name="segstudio-store", daemon=True)
    wt.start()
    try:
        k = 0
        while k < len(futures):
            if cancel is not None and cancel():
                break
            recs, arrays = [], []
            while k < len(futures) and len(arrays) < batch:
                rec, arr, err = futures[k].result()
                futures[k] = None  # let the pixels go once used
                k += 1
                if next_submit < len(ids):
                    futures.append(pool.submit(decode, ids[next_submit]))
                    next_submit += 1
                if err is not None:
                    report.errors.append((rec.path, err))
                    continue
                recs.append(rec)
                arrays.append(arr)
            if not arrays:
                continue
            tm = time.perf_counter()
            try:
                preds = segmenter.predict_prepared(arrays, cancel=cancel)
            except InterruptedError:
                break
            except RuntimeError as e:
                if "out of memory" not in str(e) or len(arrays) == 1:
                    raise
                torch.cuda.empty_cache()  # a batch too big for the GPU: one image at a time
                preds = [segmenter.predict_prepared([a])[0] for a in arrays]
            report.model_seconds += time.perf_counter() - tm
            results.put((recs, preds))
            if writer_error:
                break
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        results.put(None)
        wt.join()
        post.shutdown(wait=True)
    if writer_error:
        raise writer_error[0]
    report.seconds = time.perf_counter() - t0
    report.dropped = dict(mapper.dropped)
    return report
