"""Pre-label a project on a Ray cluster: `segstudio predict FOLDER --model ... --ray [ADDRESS]`.

Ray Data does the distribution: the driver (this process, which owns the project's SQLite store)
makes a dataset of the images to predict (id and absolute path), `map_batches` runs
`ImagePredictor` on a pool of actors, each of which loads the model once and decodes, predicts
and RLE-encodes with the same code as local predict (`engine.load_segmenter`,
`Segmenter.predict_prepared`, `postprocess.encode_detections`), and only the compact encoded
regions come back. The driver commits them through the store exactly as local predict does
(`engine.prediction_entry`, `Store.replace_source_regions_many`: the same regions, statuses and
source), a batch per transaction, as they stream in.

Exactly once: an image's regions from this model are replaced, never added to, and the driver
keeps the ids it committed in this run, so an image that Ray computes twice (a task retried after
a lost worker) is committed once. Resuming: images that already carry this model's regions are
left out of the next run (and with the default `--status new`, every predicted image is).

The workers read the images by path: the folder must be on a path every node sees (a shared
filesystem, mounted at the same place). A path a worker cannot read is that image's error (in
the store and the report) when the driver cannot read it either, never a hung job; a worker short
of memory, or one that cannot reach a path the driver reads, is reported and nothing is stored.
Ray is optional: `pip install -e ".[cluster]"`.
"""

from __future__ import annotations

import logging
import os
import pickle
import stat
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

from segstudio.core.errors import UserError
from segstudio.core.project import Project
from segstudio.core.records import NEW
from segstudio.inference import registry
from segstudio.inference.runtime.engine import ModelSpec, PredictReport, load_segmenter, prediction_entry
from segstudio.inference.runtime.classmap import ClassMapper
from segstudio.inference.cluster.connect import INSTALL_HINT, RayUnavailable, check_address, connect, import_ray

log = logging.getLogger(__name__)

__all__ = ["INSTALL_HINT", "ImagePredictor", "RayUnavailable", "connect", "import_ray", "predict_on_ray"]


@dataclass
class _Prediction:
    """What prediction_entry reads of a Prediction (its encoded regions travel apart)."""
    width: int
    height: int
    uncertainty: float


class ImagePredictor:
    """The Ray Data UDF: one per actor. Loads the model once; for each batch of {image_id, path}
    rows decodes, predicts and encodes, and returns per image its size, uncertainty, the pickled
    encoded regions (label, x, y, w, h, RLE counts, area, score), or its error."""

    def __init__(self, spec: dict, threads: int = 1, allow_large: bool = False):
        import torch
        torch.set_num_threads(max(1, threads))  # the actor's share of its node's cores
        self.seg = load_segmenter(ModelSpec(**spec))
        self.allow_large = allow_large

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from segstudio.core import imageio
        from segstudio.core.imageio import ImageDecodeError
        from segstudio.inference.runtime.postprocess import encode_detections, payload
        ids = [int(i) for i in batch["image_id"]]
        rows: dict[int, dict[str, Any]] = {}
        arrays, kept = [], []
        frames = batch["frame"] if "frame" in batch else [-1] * len(ids)
        for image_id, path, frame in zip(ids, batch["path"], frames, strict=True):
            try:
                if int(frame) >= 0:  # a frame of a stack or video file: decoded from that file
                    from segstudio.core import frame_sources
                    image = frame_sources.read_frame(str(path), int(frame), allow_large=self.allow_large)
                else:
                    image = imageio.decode_image(str(path), allow_large=self.allow_large)
                arrays.append(self.seg.prepare(image))  # no project here: not for models prompted by its regions
                kept.append(image_id)
            except (ImageDecodeError, OSError) as e:  # a path this worker cannot read: that image's error
                # what the failure says about the file: nothing when this node is short of memory or
                # cannot reach the path (the driver decides); a decode error is the file's own
                kind = "memory" if imageio.is_transient(e) else "file" if isinstance(e, ImageDecodeError) else "io"
                rows[image_id] = {"error": f"{e} (on {os.uname().nodename})", "width": 0, "height": 0,
                                  "uncertainty": 0.0, "regions": b"", "kind": kind}
        if arrays:
            for image_id, pred in zip(kept, self.seg.predict_prepared(arrays), strict=True):
                enc = encode_detections(payload(pred))
                rows[image_id] = {"error": "", "width": pred.width, "height": pred.height,
                                  "uncertainty": float(pred.uncertainty), "regions": pickle.dumps(enc), "kind": ""}
        out = [rows[i] for i in ids]
        return {"image_id": np.asarray(ids, np.int64),
                "width": np.asarray([r["width"] for r in out], np.int64),
                "height": np.asarray([r["height"] for r in out], np.int64),
                "uncertainty": np.asarray([r["uncertainty"] for r in out], np.float64),
                "regions": np.asarray([r["regions"] for r in out], dtype=object),
                "error": np.asarray([r["error"] for r in out], dtype=object),
                "kind": np.asarray([r["kind"] for r in out], dtype=object)}


def images_to_predict(project: Project, statuses, source: str) -> list[int]:
    """The images of those statuses, less those that already carry this model's regions (a run
    stopped half-way resumes where it stopped)."""
    ids = project.store.image_ids(statuses=statuses)
    done = set(project.store.image_ids_with_source(source))
    return [i for i in ids if i not in done]


def predict_on_ray(project: Project, spec: ModelSpec, statuses=(NEW,), address: str | None = None,
                   workers: int = 1, gpus_per_worker: float = 0.0, batch: int = 4, create_classes: bool = True,
                   progress: Callable[[int, int, str], None] | None = None, commit_every: int = 64,
                   predictor_cls: type = ImagePredictor, cpus_per_worker: float = 1.0) -> PredictReport:
    """Predict the project's images on Ray and commit them here. `workers` actors, each with
    `cpus_per_worker` CPUs and `gpus_per_worker` GPUs (fractions share a GPU)."""
    if workers < 1:
        raise UserError("--workers must be 1 or more")
    check_address(address)  # a wrong address is said before the model loads
    fam = registry.family(spec.arch)
    if not fam.cluster:
        raise UserError(f"{fam.title} has no Ray path; on Ray: "
                        f"{', '.join(k for k, f in registry.FAMILIES.items() if f.cluster)}")
    # the driver loads the model too (on its CPU): its name and classes, and a bad file fails here, once
    driver_seg = load_segmenter(ModelSpec(**{**asdict(spec), "device": "cpu"}), project)
    source, classes = driver_seg.name, driver_seg.classes
    from_project = getattr(driver_seg, "project_checkpoint", None)
    if spec.weights is None and from_project:  # the workers have no project: name the file it chose
        spec = ModelSpec(**{**asdict(spec), "weights": from_project})
    del driver_seg
    ids = images_to_predict(project, statuses, source)
    report = PredictReport(device=f"Ray: {workers} worker(s), {cpus_per_worker:g} CPU"
                                  + (f" + {gpus_per_worker:g} GPU" if gpus_per_worker else "") + " each")
    if not ids:
        return report
    records = project.store.images_by_ids(ids)
    ray = connect(address, num_cpus=None)
    worker_spec = asdict(ModelSpec(**{**asdict(spec), "device": "cuda" if gpus_per_worker else "cpu"}))
    rows = [_row(project, records[i]) for i in ids]
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver's own bar says images/s and ETA
    ctx.print_on_execution_start = False
    ds = ray.data.from_items(rows).map_batches(
        predictor_cls, batch_size=batch, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=cpus_per_worker, num_gpus=gpus_per_worker or None,
        fn_constructor_kwargs={"spec": worker_spec, "threads": max(1, int(cpus_per_worker)),
                               "allow_large": project.allow_large})
    mapper = ClassMapper(project, classes, create_classes)
    committed: set[int] = set()
    pending: list[dict] = []
    t0 = time.perf_counter()

    def commit() -> None:
        if pending:
            tc = time.perf_counter()
            left = set(project.store.replace_source_regions_many(pending))
            report.timing["commit"] += time.perf_counter() - tc
            for e in pending:  # open in a window (a claim in the store): the person's, left alone
                if e["image_id"] in left:
                    report.images -= 1
                    report.regions -= len(e["rows"])
                    report.written.remove(e["image_id"])
                    report.skipped.append(e["image_id"])
            pending.clear()

    try:
        for out in ds.iter_batches(batch_size=None, batch_format="numpy"):
            if "startup" not in report.timing:  # actors started and loaded their models: the first answer
                report.timing["startup"] = time.perf_counter() - t0
            for k, image_id in enumerate(out["image_id"]):
                image_id = int(image_id)
                if image_id in committed or image_id not in records:
                    continue  # computed twice (a retried task): committed once
                committed.add(image_id)
                rec = records[image_id]
                err = str(out["error"][k])
                if err:
                    if _says_something_about_the_file(project, rec, str(out["kind"][k])):
                        project.store.set_error(image_id, err)
                    else:  # reported, not stored: the next run tries the image again
                        err += " (not stored on the image: not a fault of the file)"
                    report.errors.append((rec.path, err))
                else:
                    enc = pickle.loads(out["regions"][k])
                    pred = _Prediction(int(out["width"][k]), int(out["height"][k]), float(out["uncertainty"][k]))
                    entry = prediction_entry(project, rec, pred, enc, mapper, source)  # type: ignore[arg-type]
                    pending.append(entry)
                    report.images += 1
                    report.regions += len(entry["rows"])
                    report.written.append(image_id)
                if len(pending) >= commit_every:
                    commit()
                if progress is not None:
                    progress(len(committed), len(ids), rec.path)
    finally:  # Ctrl+C or a failed run: what came back is kept (the next run leaves it out)
        commit()
    report.seconds = time.perf_counter() - t0
    report.dropped = dict(mapper.dropped)
    return report


def _row(project, rec) -> dict:
    """What a worker needs to decode an image: its absolute path (the workers' cwd differs), and
    for a frame the stack or video file's path and the frame number (-1: an image file)."""
    frame = project.frame_of(rec)
    if frame is not None:
        return {"image_id": rec.id, "path": str(frame[0].resolve()), "frame": frame[1]}
    return {"image_id": rec.id, "path": str(project.abspath(rec).resolve()), "frame": -1}


def _says_something_about_the_file(project, rec, kind: str) -> bool:
    """Whether a worker's failure is the image's own error, to store: a decode error is; a worker
    short of memory is not; a path the worker could not read is only when the driver cannot read
    it either (a share missing on one node says nothing about the file)."""
    if kind == "memory":
        return False
    if kind == "io":
        try:
            frame = project.frame_of(rec)
            return not stat.S_ISREG(os.stat(frame[0] if frame is not None else project.abspath(rec)).st_mode)
        except OSError:
            return True
    return True
