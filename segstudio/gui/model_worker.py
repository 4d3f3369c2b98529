"""The pre-label model's thread: one long-lived worker (the model and its CUDA context stay on
it) for Segment image, Segment folder, training, evaluation and the live learner; requests run in
order (gui/model_thread.py), results come back by Qt signals, cancel between steps. The click
model has a thread of its own (gui/click_worker.py): a click never waits behind this one.
"""

from __future__ import annotations

import os
import time

from PySide6.QtCore import Signal

from segstudio.gui.model_thread import ModelThread, model_info


class ModelWorker(ModelThread):
    probed = Signal(str)  # what device auto would use
    loaded = Signal(object)  # model_thread.model_info of the pre-label model
    load_failed = Signal(str)
    image_done = Signal(int, object)  # image id, Prediction (candidates already computed)
    image_failed = Signal(int, str)
    folder_progress = Signal(int, int, float, str)  # done, total, images/s, current file
    folder_done = Signal(object)  # PredictReport
    # the learning loop (training / evaluation) reports through these
    train_progress = Signal(object)  # inference.training.common.TrainProgress: phase, epoch, step, loss, ...
    train_done = Signal(object)
    eval_done = Signal(object)

    def __init__(self, project, parent=None):
        super().__init__(project, "segstudio-model", parent, background=True)  # a click goes first
        self.segmenter = None

    # ---------------------------------------------------------------- requests (GUI thread)
    def probe(self) -> None:
        self._request("probe", self._do_probe, self.probed.emit)

    def load(self, spec: dict) -> None:
        """spec: the fields of inference.runtime.engine.ModelSpec (a dict: the GUI never imports torch)."""
        self._request("load", lambda: self._do_load(spec), self.loaded.emit,
                      lambda msg: self.load_failed.emit(msg))

    def adopt(self, segmenter, spec: dict) -> None:
        """Use a model already loaded on this thread (the live learner's new version: loaded once,
        for its re-prediction, never twice)."""
        self._request("adopt", lambda: self._do_adopt(segmenter, spec), self.loaded.emit,
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
        return {**model_info(seg, spec["arch"], seg.device), "spec": dict(spec)}

    def _do_adopt(self, seg, spec: dict) -> dict:
        self.segmenter = seg
        return {**model_info(seg, spec["arch"], seg.device), "spec": dict(spec)}

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

    def _do_folder(self, statuses, create_classes: bool, batch: int):
        from segstudio.inference.runtime.engine import predict_project
        seg = self._need_model()
        t0 = time.perf_counter()

        def progress(done, total, path):
            el = time.perf_counter() - t0
            self.folder_progress.emit(done, total, done / el if el > 0 else 0.0, path)
        from segstudio.core.claims import store_owner
        # the image this window shows is written too (and reloaded); one open elsewhere is not
        return predict_project(self.project, seg, statuses, batch, create_classes, progress=progress,
                               cancel=self._cancel.is_set, claim_owner=store_owner(self.project.store))
