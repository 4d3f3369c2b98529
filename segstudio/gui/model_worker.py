"""The model's thread: one long-lived worker per loaded model (the model and its CUDA context
stay on it), requests run in order on a one-thread executor (gui/workers.py), results come back
by Qt signals, cancel between steps.

torch is imported on this thread, when the first request arrives, so the window opens without
paying for it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Callable

from PySide6.QtCore import QObject, Signal

from segstudio.core.errors import UserError, describe
from segstudio.gui.window_words import window_words
from segstudio.inference.runtime.torch_once import import_torch
from segstudio.gui.workers import Background, Failure, Task

log = logging.getLogger("segstudio")


class ModelWorker(QObject):
    probed = Signal(str)  # what device auto would use
    loaded = Signal(object)  # {"arch", "name", "classes", "device"}
    load_failed = Signal(str)
    image_done = Signal(int, object)  # image id, Prediction (candidates already computed)
    image_failed = Signal(int, str)
    folder_progress = Signal(int, int, float, str)  # done, total, images/s, current file
    folder_done = Signal(object)  # PredictReport
    job_failed = Signal(str)
    busy_changed = Signal(bool)
    # the learning loop (training / evaluation) reports through these
    train_progress = Signal(object)  # inference.train_common.TrainProgress: phase, epoch, step, loss, ...
    train_done = Signal(object)
    eval_done = Signal(object)
    # a promptable model (Segment Anything): the open image's embedding, candidates per prompt
    sam_ready = Signal(int)  # image id whose embedding is computed (or came from the cache)
    sam_candidates = Signal(int, int, object)  # image id, prompt number, inference.sam.Candidates
    sam_failed = Signal(int, str)  # image id, message

    def __init__(self, project, parent=None):
        super().__init__(parent)
        self.project = project
        self.segmenter = None
        self._cancel = threading.Event()
        self._busy = 0  # requests submitted and not finished (GUI thread only)
        # one thread for the worker's life: the model and its CUDA context stay on it
        self._executor = Background(1, "segstudio-model", self)
        self._futures: list[Future] = []  # requests not known to be done (pruned on the GUI thread)
        # SAM: the image the window shows and the newest prompt on it, written by the GUI thread
        # and read by the model thread, which skips requests nobody waits for any more
        self._sam_image: int | None = None
        self._sam_prompt = 0
        self._sam_cache = None  # inference.sam_cache.EmbeddingCache, made on the model thread
        self._sam_cache_model: str | None = None
        self._prefetch = ThreadPoolExecutor(1, thread_name_prefix="segstudio-sam-ahead")

    # ---------------------------------------------------------------- requests (GUI thread)
    def probe(self) -> None:
        self._request("probe", self._do_probe, self.probed.emit)

    def load(self, spec: dict) -> None:
        """spec: the fields of inference.engine.ModelSpec (a dict: the GUI never imports torch)."""
        self._request("load", lambda: self._do_load(spec), self.loaded.emit,
                      lambda msg: self.load_failed.emit(msg))

    def predict_image(self, image_id: int, array) -> None:
        self._request("image", lambda: self._do_image(array), lambda pred: self.image_done.emit(image_id, pred),
                      lambda msg: self.image_failed.emit(image_id, msg))

    def predict_folder(self, statuses, create_classes: bool, batch: int = 2) -> None:
        self._cancel.clear()
        self._request("folder", lambda: self._do_folder(statuses, create_classes, batch), self.folder_done.emit)

    def run_job(self, name: str, fn) -> None:
        """Run fn(worker, cancelled) on the model thread (training, evaluation)."""
        self._cancel.clear()
        self._request(name, lambda: fn(self, self._cancel.is_set))

    def sam_open(self, image_id: int, path: str, array, window, next_path: str | None = None) -> None:
        """The window shows this image: compute its embedding (cached in memory and in the
        project's store area), then the next image's, so it is ready when the user gets there.
        Queued requests for the image shown before are skipped when their turn comes."""
        self._sam_image = image_id
        self._request("sam-embed", lambda: self._do_sam_embed(image_id, path, array, window, next_path),
                      lambda done: self.sam_ready.emit(image_id) if done else None,
                      lambda msg: self.sam_failed.emit(image_id, msg))

    def sam_prompt(self, image_id: int, path: str, array, window, points, box, mask_input=None) -> int:
        """Candidate masks for the prompts on the open image; returns the prompt's number (the
        answer to an older prompt is dropped: only the newest one is decoded)."""
        self._sam_prompt += 1
        n = self._sam_prompt
        self._request("sam-prompt", lambda: self._do_sam_prompt(image_id, n, path, array, window, points, box,
                                                                mask_input),
                      lambda cands: self.sam_candidates.emit(image_id, n, cands) if cands is not None else None,
                      lambda msg: self.sam_failed.emit(image_id, msg))
        return n

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def busy(self) -> bool:
        return self._busy > 0

    def shutdown(self, wait: float = 5.0) -> None:
        self._cancel.set()
        self._executor.shutdown(wait=False)  # drops queued requests; the running one sees cancel
        self._sam_image = None  # an embedding ahead that has not started is skipped
        self._prefetch.shutdown(wait=False, cancel_futures=True)
        wait_futures(self._futures, timeout=wait)

    # ---------------------------------------------------------------- plumbing (GUI thread)
    def _request(self, what: str, fn: Callable[[], object], on_done: Callable[[object], None] | None = None,
                 on_failed: Callable[[str], None] | None = None) -> None:
        def run() -> object:
            import_torch()  # never two threads inside torch's import (inference/torch_once.py)
            return fn()
        task = Task(run)
        task.started.connect(lambda: self.busy_changed.emit(True))
        if on_done is not None:
            task.returned.connect(on_done)
        task.errored.connect(lambda f: self._failed(what, f, on_failed or self.job_failed.emit))
        task.finished.connect(self._finished)
        self._busy += 1
        self._futures = [f for f in self._futures if not f.done()] + [self._executor.start(task)]

    def _failed(self, what: str, failure: Failure, report: Callable[[str], None]) -> None:
        # every failure reaches the window as a message: a UserError's alone, anything else with its
        # type; its command-line remedies (--weights FILE) in the window's words (the panel's controls)
        if isinstance(failure.error, UserError):  # the user's file or choice: one line; where, for debugging
            log.warning("model request %s failed: %s", what, failure.error)
            log.debug("%s", failure.traceback_text)
        else:
            log.warning("model request %s failed\n%s", what, failure.traceback_text)
        report(window_words(describe(failure.error)))

    def _finished(self) -> None:
        self._busy -= 1
        if not self._busy:
            self.busy_changed.emit(False)

    # ---------------------------------------------------------------- the model thread
    def _do_probe(self) -> str:
        from segstudio.inference.runtime.device import probe
        return probe(threads=max(1, (os.cpu_count() or 2) - 1))  # leave a core to the window

    def _do_load(self, spec: dict) -> dict:
        from segstudio.inference.runtime.engine import ModelSpec, load_segmenter
        # the model in use stays until the new one has loaded: a load that fails (a bad file,
        # out of memory) leaves the user with the working model, not with none
        seg = load_segmenter(ModelSpec(**spec), self.project)
        self.segmenter = seg
        return {"arch": seg.arch, "name": seg.name, "classes": list(seg.classes),
                "device": seg.device.describe(), "checkpoint": getattr(getattr(seg, "ckpt", None), "path", None)}

    def _need_model(self):
        if self.segmenter is None:
            raise RuntimeError("no model loaded: choose one in the Model panel and press Load")
        return self.segmenter

    def _do_image(self, array):
        seg = self._need_model()
        pred = seg.predict(array)
        pred.candidates()  # components / crops computed here, not on the GUI thread
        pred.detections()
        return pred

    def _sam_model(self):
        """The loaded SamModel and the embedding cache of this project (made on first use)."""
        model = getattr(self._need_model(), "model", None)
        if model is None or not hasattr(model, "embedding_for"):
            raise RuntimeError("the loaded model takes no prompts: load Segment Anything in the Model panel")
        if self._sam_cache is None or self._sam_cache_model != model.name:
            from segstudio.inference.sam.cache import EmbeddingCache
            from segstudio.inference.sam.spec import embedding_dir
            self._sam_cache = EmbeddingCache(embedding_dir(self.project, model.name))
            self._sam_cache_model = model.name
        return model, self._sam_cache

    def _do_sam_embed(self, image_id: int, path: str, array, window, next_path: str | None) -> bool:
        if image_id != self._sam_image:
            return False  # the user moved on before this started
        model, cache = self._sam_model()
        from segstudio.inference.runtime.device import cpu_cores, cpu_threads
        try:
            with cpu_threads(cpu_cores()):  # the user waits for this one: all cores, not just the model's share
                model.embedding_for(array, path, cache, window, cancel=lambda: image_id != self._sam_image)
        except InterruptedError:
            return False  # the user moved on while it ran: stopped between the encoder's layers
        if next_path:
            # on a thread of its own: prompts on this image are decoded meanwhile (the encoder
            # does not hold the model's lock); a failure only means no head start
            self._prefetch.submit(self._do_sam_prefetch, image_id, next_path, model, cache)
        return True

    def _do_sam_prefetch(self, image_id: int, path: str, model, cache) -> None:
        if image_id != self._sam_image:
            return
        from segstudio.core.imageio import auto_window, decode_image
        from segstudio.inference.runtime.device import cpu_cores, cpu_threads
        try:
            image = decode_image(path, allow_large=self.project.allow_large)
            # the window the display will first show it with (session.load_image): the same key
            window = None if image.dtype.name == "uint8" else auto_window(image)
            # in the background: a core left to the window; it pauses while a prompt is decoded
            with cpu_threads(max(1, cpu_cores() - 1)):
                model.embedding_for(image, path, cache, window, cancel=lambda: image_id != self._sam_image)
        except Exception as e:  # noqa: BLE001 (the next image is embedded when it is shown instead)
            log.info("SAM: embedding %s ahead failed: %s", path, describe(e))

    def _do_sam_prompt(self, image_id: int, n: int, path: str, array, window, points, box, mask_input):
        if image_id != self._sam_image or n != self._sam_prompt:
            return None  # another image, or a newer prompt: nobody waits for this answer
        model, cache = self._sam_model()
        from segstudio.inference.runtime.device import cpu_cores, cpu_threads
        try:
            with cpu_threads(cpu_cores()):  # tens of ms the user waits on: all cores (the embedding ahead pauses)
                emb = model.embedding_for(array, path, cache, window, cancel=lambda: image_id != self._sam_image)
                return model.decode(emb, points, box, mask_input)
        except InterruptedError:
            return None  # the user moved on to another image

    def _do_folder(self, statuses, create_classes: bool, batch: int):
        from segstudio.inference.runtime.engine import predict_project
        seg = self._need_model()
        t0 = time.perf_counter()

        def progress(done, total, path):
            el = time.perf_counter() - t0
            self.folder_progress.emit(done, total, done / el if el > 0 else 0.0, path)
        from segstudio.core.claims import process_owner
        # the image this window shows is written too (and reloaded); one open elsewhere is not
        return predict_project(self.project, seg, statuses, batch, create_classes, progress=progress,
                               cancel=self._cancel.is_set, claim_owner=process_owner())
