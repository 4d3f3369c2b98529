"""Loading a model by what the user chose, mapping its classes onto the project's, and running
it over a project with decoding, the model and storing overlapped (the GPU stays busy)."""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from segstudio.core.errors import BadValue
from segstudio.core.imageio import ImageDecodeError, is_transient
from segstudio.core.project import Project
from segstudio.core.records import NEW, PREDICTED, ImageRecord
from segstudio.core.store import encoded_region_row
from segstudio.inference import registry
from segstudio.inference.family import resolve
from segstudio.inference.promptable import Promptable
from segstudio.inference.runtime.device import choose_device
from segstudio.inference.runtime.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from segstudio.inference.runtime.classmap import ClassMapper
from segstudio.inference.runtime.model_spec import ModelSpec, latest_model
from segstudio.inference.runtime.postprocess import encode_detections, payload, process_pool
from segstudio.inference.runtime.priority import PROMPTS
from segstudio.inference.runtime.segmenter import Prediction, Segmenter

log = logging.getLogger(__name__)
__all__ = ["ModelSpec", "PredictReport", "latest_model", "load_clicker", "load_segmenter", "predict_project",
           "prediction_entry", "read_checkpoint", "store_prediction"]


def load_segmenter(spec: ModelSpec, project: Project | None = None) -> Segmenter:
    """The family's headless model (`Family.load`), loaded on the device the spec asks for."""
    fam = _checked(spec)
    if fam.load is None:
        raise BadValue(f"{fam.title} does not segment whole images; use "
                       f"{', '.join(k for k, f in registry.FAMILIES.items() if f.load is not None)}")
    return resolve(fam.load)(spec, choose_device(spec.device, spec.amp), project)


def load_clicker(spec: ModelSpec, project: Project | None = None) -> Promptable:
    """The family's click model (`Family.load_click`): a Promptable (inference/promptable.py)."""
    fam = _checked(spec)
    if fam.load_click is None:
        own = [k for k, f in registry.FAMILIES.items() if f.load_click is not None]
        raise BadValue(f"{fam.title} has no click model of its own (its clicks are answered from its prediction); "
                       f"click models: {', '.join(own) or 'none'}")
    return resolve(fam.load_click)(spec, choose_device(spec.device, spec.amp), project)


def _checked(spec: ModelSpec):
    fam = registry.family(spec.arch)
    if spec.variant is not None and spec.variant not in dict(fam.variants):
        have = f"use {', '.join(dict(fam.variants))}" if fam.variants else "it has none"
        raise BadValue(f"{fam.title}: unknown variant {spec.variant!r}; {have}")
    if not isinstance(spec.options, dict):
        raise BadValue(f"model options are a dict of settings, not {type(spec.options).__name__}")
    return fam


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Any checkpoint a family can use: a segstudio checkpoint of a kind some family reads, or a
    plain state dict a family recognises (`Family.reads_state_dict`: torchvision's Mask R-CNN)."""
    readers = list(dict.fromkeys(f.reads_state_dict for f in registry.FAMILIES.values() if f.reads_state_dict))

    def plain(sd: dict, p: Path) -> Checkpoint | None:
        for ref in readers:
            ckpt = resolve(ref)(sd, p)
            if ckpt is not None:
                return ckpt
        return None
    ckpt = load_checkpoint(path, plain=plain)
    if not registry.of_checkpoint(ckpt.arch):
        raise CheckpointError(f"{Path(path).name}: unknown architecture {ckpt.arch!r}")
    return ckpt


def lower_thread_priority() -> None:
    """Make the calling thread nicer than the model's (Linux: a thread has its own nice value).
    torch's CPU threads meet at a barrier after every operation, so a decoder or post-processing
    thread that takes a core from one of them stalls all of them; at a lower priority the
    helpers run in the gaps between operations instead. Elsewhere, or when refused: no change."""
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + 10))
    except OSError:
        pass


@dataclass
class PredictReport:
    images: int = 0
    regions: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    model_seconds: float = 0.0
    # where the time went (model thread waiting for decoding / for the writer; writer busy)
    timing: dict = field(default_factory=lambda: {"wait_decode": 0.0, "wait_writer": 0.0, "post": 0.0,
                                                 "commit": 0.0})
    device: str = ""
    dropped: dict = field(default_factory=dict)
    written: list[int] = field(default_factory=list)  # ids of the images that got this model's regions
    skipped: list[int] = field(default_factory=list)  # predicted but left as they were (see only_statuses)

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


def store_prediction(project: Project, rec: ImageRecord, pred: Prediction, mapper: ClassMapper,
                     source: str) -> int:
    """Replace the regions this model made on the image; new images become 'predicted'."""
    entry = prediction_entry(project, rec, pred, encode_detections(payload(pred)), mapper, source)
    project.store.replace_source_regions_many([entry])
    return len(entry["rows"])


def prediction_entry(project: Project, rec: ImageRecord, pred: Prediction, encoded: list, mapper: ClassMapper,
                     source: str) -> dict:
    """Everything to store for one image: the encoded detections get project classes, ids and
    z above the image's other regions."""
    rows = []
    kept = [(mapper(e[0]), e) for e in encoded]
    kept_ids: list[tuple[int, tuple]] = [(cid, e) for cid, e in kept if cid is not None]
    ids = project.store.reserve_region_ids(len(kept_ids)) if kept_ids else []
    z0 = project.store.max_z(rec.id) + 1 if kept_ids else 0
    for k, ((cid, (_, x, y, w, h, counts, area, score)), rid) in enumerate(zip(kept_ids, ids, strict=True)):
        rows.append(encoded_region_row(rid, rec.id, cid, x, y, w, h, counts, area, z0 + k, source, score))
    return {"image_id": rec.id, "source": source, "rows": rows, "uncertainty": pred.uncertainty,
            "status": PREDICTED if rec.status in (NEW, PREDICTED) else None,
            "width": pred.width, "height": pred.height}


def predict_project(project: Project, segmenter: Segmenter, statuses: Sequence[str] | None = (NEW,),
                    batch: int = 4, create_classes: bool = True, decode_workers: int | None = None,
                    progress: Callable[[int, int, str], None] | None = None,
                    cancel: Callable[[], bool] | None = None, image_ids: Sequence[int] | None = None,
                    post_processes: bool | None = None, only_statuses: Sequence[str] | None = None,
                    may_write: Callable[[int], bool] | None = None,
                    claim_owner: str | None = None) -> PredictReport:
    """Run a model over a project's images.

    Three stages overlap: decoder threads read and normalise images ahead; this thread feeds the
    model batch after batch; a writer thread has the predictions turned into RLE regions (by
    worker processes on a GPU machine, threads otherwise) and commits them, a batch per
    transaction. An exception in any stage stops the others and is raised here.

    Re-predicting under a person at work (learning while annotating): with `only_statuses`, an
    image whose status is no longer one of them when its batch commits keeps what it has, and
    `may_write(image_id)`, asked just before the commit, can refuse an image (the one open in
    the window). Both land in `report.skipped`, and so does an image open in a window, in this
    process or another (a claim in the store, see core.claims), unless `claim_owner` holds it
    (the window's own Segment folder writes the image it shows, then reloads it).
    """
    store = project.store
    ids = list(image_ids) if image_ids is not None else store.image_ids(statuses=statuses)
    report = PredictReport(device=segmenter.device.describe())
    mapper = ClassMapper(project, segmenter.classes, create_classes)
    t0 = time.perf_counter()
    if not ids:
        return report
    n_dec = decode_workers or max(2, min(8, (os.cpu_count() or 2) - 2))
    # on a CPU the model's own threads use every core: the helpers yield to them (see below)
    helper_init = lower_thread_priority if segmenter.device.type == "cpu" else None
    pool = ThreadPoolExecutor(n_dec, thread_name_prefix="segstudio-decode", initializer=helper_init)
    records = store.images_by_ids(ids)

    def decode(image_id):
        # decoding and the CPU half of the model input run here, on decoder threads; nothing is
        # written to the store from these threads (they would queue on its write lock)
        rec = records[image_id]
        try:
            return rec, segmenter.prepare_record(project.load_image(rec, record=False), project, rec), None
        except ImageDecodeError as e:
            if is_transient(e):  # too little memory now: reported, never stored on the image
                transient.add(rec.id)
            return rec, None, str(e)

    transient: set[int] = set()

    ahead = max(batch * 3, n_dec * 2)
    futures: list[Future | None] = [pool.submit(decode, i) for i in ids[:ahead]]
    next_submit = len(futures)
    results: queue.Queue = queue.Queue(maxsize=32)  # room to ride out a slow commit
    # the writer and this thread both add to the report: every change to it holds this lock
    report_lock = threading.Lock()
    written = 0  # the writer's alone
    # set when a stage fails: the others stop waiting on it (a full or empty queue would hang)
    failed = threading.Event()

    def put(q: queue.Queue, item) -> bool:
        while not failed.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def get(q: queue.Queue):
        while not failed.is_set():
            try:
                return q.get(timeout=0.05)
            except queue.Empty:
                pass
        return None

    n_post = max(2, min(8, (os.cpu_count() or 2) // 2))
    if post_processes is None:  # a fast GPU would wait on the interpreter lock held by this work
        post_processes = segmenter.device.type == "cuda" and (os.cpu_count() or 1) >= 4
    post = process_pool(n_post) if post_processes else \
        ThreadPoolExecutor(n_post, thread_name_prefix="segstudio-post", initializer=helper_init)
    for _ in range(n_post):  # start the workers now, while the first images decode
        post.submit(int)
    encoding: queue.Queue = queue.Queue(maxsize=16)

    def stage(fn):
        # a failing stage stops the pipeline; its future carries the exception to the caller
        def run():
            try:
                fn()
            except BaseException:
                failed.set()
                raise
        return run

    def dispatcher():
        # hands each prediction to the post workers as soon as it arrives: batches overlap
        while True:
            item = get(results)
            if item is None:
                put(encoding, None)
                return
            recs, preds = item
            if not put(encoding, (recs, preds, [post.submit(encode_detections, payload(p)) for p in preds])):
                return

    def writer():
        # collects the RLE-encoded regions in order; one transaction per batch
        nonlocal written
        while True:
            item = get(encoding)
            if item is None:
                return
            recs, preds, futs = item
            tp = time.perf_counter()
            encoded = [f.result() for f in futs]
            entries = [prediction_entry(project, rec, pred, enc, mapper, segmenter.name)
                       for rec, pred, enc in zip(recs, preds, encoded, strict=True)]
            tc = time.perf_counter()
            refused = {e["image_id"] for e in entries if may_write is not None and not may_write(e["image_id"])}
            left = set(store.replace_source_regions_many([e for e in entries if e["image_id"] not in refused],
                                                         only_statuses=only_statuses,
                                                         claim_owner=claim_owner)) | refused
            with report_lock:
                report.timing["post"] += tc - tp
                report.timing["commit"] += time.perf_counter() - tc
            for rec, e in zip(recs, entries, strict=True):
                with report_lock:
                    if rec.id in left:
                        report.skipped.append(rec.id)
                    else:
                        report.regions += len(e["rows"])
                        report.images += 1
                        report.written.append(rec.id)
                    written += 1
                    done = written + len(report.errors)
                if progress is not None:
                    progress(done, len(ids), rec.path)

    stages = ThreadPoolExecutor(2, thread_name_prefix="segstudio-pipeline")
    stage_futures = [stages.submit(stage(dispatcher)), stages.submit(stage(writer))]
    try:
        k = 0
        while k < len(futures) and not failed.is_set():
            if cancel is not None and cancel():
                break
            recs: list[ImageRecord] = []
            arrays: list = []
            while k < len(futures) and len(arrays) < batch:
                tw = time.perf_counter()
                fut = futures[k]
                assert fut is not None  # each is taken once, in order
                rec, arr, err = fut.result()
                waited = time.perf_counter() - tw
                futures[k] = None  # let the pixels go once used
                k += 1
                if next_submit < len(ids):
                    futures.append(pool.submit(decode, ids[next_submit]))
                    next_submit += 1
                with report_lock:
                    report.timing["wait_decode"] += waited
                    if err is not None:
                        report.errors.append((rec.path, err))
                if err is not None:
                    if rec.id not in transient:
                        store.set_error(rec.id, err)
                    continue
                recs.append(rec)
                arrays.append(arr)
            if not arrays:
                continue
            try:
                PROMPTS.pause_point(cancel)  # a click answered on another thread goes first
                tm = time.perf_counter()
                preds = segmenter.predict_prepared(arrays, cancel=cancel)
            except InterruptedError:
                break
            except RuntimeError as e:
                if "out of memory" not in str(e) or len(arrays) == 1:
                    raise
                torch.cuda.empty_cache()  # a batch too big for the GPU: one image at a time
                preds = [segmenter.predict_prepared([a])[0] for a in arrays]
            tw = time.perf_counter()
            put(results, (recs, preds))
            with report_lock:
                report.model_seconds += tw - tm
                report.timing["wait_writer"] += time.perf_counter() - tw
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        put(results, None)  # the stages finish what was queued (or stop at once if one failed)
        stages.shutdown(wait=True)
        post.shutdown(wait=True)
    for f in stage_futures:
        f.result()  # a stage's exception, raised here
    report.seconds = time.perf_counter() - t0
    report.dropped = dict(mapper.dropped)
    return report
