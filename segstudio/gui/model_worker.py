"""The model's thread: one long-lived worker per loaded model (the model and its CUDA context
stay on it), a request queue, results back by Qt signals, cancel between steps.

torch is imported on this thread, when the first request arrives, so the window opens without
paying for it.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import traceback

from PySide6.QtCore import QObject, Signal

from segstudio.core.errors import describe


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
    train_progress = Signal(object)  # dict: epoch, step, loss, val metric, ...
    train_done = Signal(object)
    eval_done = Signal(object)

    def __init__(self, project, parent=None):
        super().__init__(parent)
        self.project = project
        self.segmenter = None
        self._q: queue.Queue = queue.Queue()
        self._cancel = threading.Event()
        self._busy = 0
        self._thread = threading.Thread(target=self._loop, name="segstudio-model", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- requests (GUI thread)
    def probe(self) -> None:
        self._q.put(("probe",))

    def load(self, spec: dict) -> None:
        """spec: the fields of inference.engine.ModelSpec (a dict: the GUI never imports torch)."""
        self._q.put(("load", spec))

    def predict_image(self, image_id: int, array) -> None:
        self._q.put(("image", image_id, array))

    def predict_folder(self, statuses, create_classes: bool, batch: int = 2) -> None:
        self._cancel.clear()
        self._q.put(("folder", statuses, create_classes, batch))

    def run_job(self, name: str, fn) -> None:
        """Run fn(worker, cancelled) on the model thread (training, evaluation)."""
        self._cancel.clear()
        self._q.put(("job", name, fn))

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
        self._q.put(None)
        self._thread.join(wait)

    # ---------------------------------------------------------------- the model thread
    def _loop(self) -> None:
        while True:
            req = self._q.get()
            if req is None:
                return
            self._busy += 1
            self.busy_changed.emit(True)
            try:
                getattr(self, "_do_" + req[0])(*req[1:])
            except Exception as e:  # every failure reaches the window as a message  # noqa: BLE001
                msg = describe(e)  # a UserError's message alone; anything else with its type
                import logging
                logging.getLogger("segstudio").warning("model request %s failed\n%s", req[0], traceback.format_exc())
                if req[0] == "load":
                    self.load_failed.emit(msg)
                elif req[0] == "image":
                    self.image_failed.emit(req[1], msg)
                else:
                    self.job_failed.emit(msg)
            finally:
                self._busy -= 1
                if self._q.empty():
                    self.busy_changed.emit(False)

    def _do_probe(self) -> None:
        from segstudio.inference.device import probe
        self.probed.emit(probe(threads=max(1, (os.cpu_count() or 2) - 1)))  # leave a core to the window

    def _do_load(self, spec: dict) -> None:
        from segstudio.inference.engine import ModelSpec, load_segmenter
        self.segmenter = None
        seg = load_segmenter(ModelSpec(**spec), self.project)
        self.segmenter = seg
        self.loaded.emit({"arch": seg.arch, "name": seg.name, "classes": list(seg.classes),
                          "device": seg.device.describe(), "checkpoint": getattr(seg.ckpt, "path", None)})

    def _need_model(self):
        if self.segmenter is None:
            raise RuntimeError("no model loaded: choose one in the Model panel and press Load")
        return self.segmenter

    def _do_image(self, image_id: int, array) -> None:
        seg = self._need_model()
        pred = seg.predict(array)
        pred.candidates()  # components / crops computed here, not on the GUI thread
        pred.detections()
        self.image_done.emit(image_id, pred)

    def _do_folder(self, statuses, create_classes: bool, batch: int) -> None:
        from segstudio.inference.engine import predict_project
        seg = self._need_model()
        t0 = time.perf_counter()

        def progress(done, total, path):
            el = time.perf_counter() - t0
            self.folder_progress.emit(done, total, done / el if el > 0 else 0.0, path)
        rep = predict_project(self.project, seg, statuses, batch, create_classes, progress=progress,
                              cancel=self._cancel.is_set)
        self.folder_done.emit(rep)

    def _do_job(self, name: str, fn) -> None:
        fn(self, self._cancel.is_set)
