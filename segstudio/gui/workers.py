"""Background work for the window: plain threads that hand results back through Qt signals.

Work functions never touch widgets; they return numpy arrays / regions / reports, and the
callback runs on the GUI thread. A `Job` adds progress and cancel for long work.
"""

from __future__ import annotations

import threading
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

from PySide6.QtCore import QObject, Signal


class Background(QObject):
    """A thread pool whose results come back on the GUI thread."""

    _deliver = Signal(object, object)  # callback, value

    def __init__(self, workers: int = 1, name: str = "segstudio", parent: QObject | None = None):
        super().__init__(parent)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._deliver.connect(self._on_deliver)
        self._pending = 0
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[], object], on_done: Callable[[object], None] | None = None,
               on_error: Callable[[BaseException], None] | None = None) -> Future:
        with self._lock:
            self._pending += 1

        def run():
            try:
                value = fn()
            except BaseException as e:  # handed to the GUI thread, never lost  # noqa: BLE001
                e.__segstudio_tb__ = traceback.format_exc()
                self._deliver.emit(on_error or _log_error, e)
            else:
                if on_done is not None:
                    self._deliver.emit(on_done, value)
            finally:
                with self._lock:
                    self._pending -= 1
        return self.pool.submit(run)

    @property
    def busy(self) -> bool:
        return self._pending > 0

    def _on_deliver(self, cb, value) -> None:
        cb(value)

    def shutdown(self, wait: bool = True) -> None:
        self.pool.shutdown(wait=wait, cancel_futures=not wait)


def _log_error(e: BaseException) -> None:
    import logging
    logging.getLogger("segstudio").error("background task failed: %s\n%s", e, getattr(e, "__segstudio_tb__", ""))


class Job(QObject):
    """Long work with progress and cancel. `fn(progress, cancelled)` runs on a thread of its own;
    progress(done, total, text) may be called from it at any rate (signals are queued)."""

    progress = Signal(int, int, str)
    finished = Signal(object)
    failed = Signal(object)

    def __init__(self, fn: Callable, parent: QObject | None = None):
        super().__init__(parent)
        self._fn = fn
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self.result = None
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="segstudio-job", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self.result = self._fn(lambda d, t, s="": self.progress.emit(int(d), int(t), str(s)),
                                   self._cancel.is_set)
        except BaseException as e:  # handed to the GUI thread through `failed`, never lost  # noqa: BLE001
            e.__segstudio_tb__ = traceback.format_exc()
            self.error = e
            self.failed.emit(e)
        else:
            self.finished.emit(self.result)
