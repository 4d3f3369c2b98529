"""A model's thread as the window sees it: requests run in order on a one-thread executor
(gui/workers.py), results come back by Qt signals, every failure as a message. The pre-label
model (gui/model_worker.py) and the click model (gui/click_worker.py) each have one, so a click is
never queued behind training or a folder run.

torch is imported on the thread, when the first request arrives, so the window opens without
paying for it."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from typing import Callable

from PySide6.QtCore import QObject, Signal

from segstudio.core.errors import UserError, describe
from segstudio.gui.window_words import window_words
from segstudio.gui.workers import Background, Failure, Task
from segstudio.inference.runtime.priority import run_in_background
from segstudio.inference.runtime.torch_once import import_torch

log = logging.getLogger("segstudio")


class ModelThread(QObject):
    busy_changed = Signal(bool)
    job_failed = Signal(str)

    def __init__(self, project, name: str, parent=None, background: bool = False):
        """`background`: the thread runs at a lower priority than the window and the click model
        (inference/runtime/priority.run_in_background): training and folder runs yield the CPU to a click."""
        super().__init__(parent)
        self.project = project
        self._background = background
        self._cancel = threading.Event()
        self._busy = 0  # requests submitted and not finished (GUI thread only)
        # one thread for the worker's life: the model and its CUDA context stay on it
        self._executor = Background(1, name, self)
        self._futures: list[Future] = []  # requests not known to be done (pruned on the GUI thread)

    @property
    def busy(self) -> bool:
        return self._busy > 0

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def shutdown(self, wait: float = 5.0) -> None:
        self._cancel.set()
        self._executor.shutdown(wait=False)  # drops queued requests; the running one sees cancel
        wait_futures(self._futures, timeout=wait)

    def _request(self, what: str, fn: Callable[[], object], on_done: Callable[[object], None] | None = None,
                 on_failed: Callable[[str], None] | None = None) -> None:
        def run() -> object:
            if self._background:
                run_in_background()
            import_torch()  # never two threads inside torch's import (inference/runtime/torch_once.py)
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


def model_info(model, family: str, device) -> dict:
    """What the panel shows of a loaded model: its family, name, classes, device and memory (run on
    the model's thread: the parameters' and buffers' bytes are counted with torch there)."""
    from segstudio.inference.runtime.device import model_bytes
    ckpt = getattr(getattr(model, "ckpt", None), "path", None) or getattr(model, "weights", None)
    return {"family": family, "arch": getattr(model, "arch", family), "name": getattr(model, "name", family),
            "classes": list(getattr(model, "classes", [])), "device": device.describe(),
            "checkpoint": str(ckpt) if ckpt else None, "memory": model_bytes(model)}
