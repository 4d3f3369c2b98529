"""Background work for the window: one model for all of it, after superqt's thread workers.

A `Task` is a piece of work with signals started → progress* → returned | errored → finished.
A `Background` executor runs tasks on its threads and emits every one of those signals on the
GUI thread, so slots (lambdas included) never run on a worker. A failed task hands back a
`Failure` (the exception and its traceback text) and its future carries the exception itself:
nothing is glued onto exception objects. Work functions never touch widgets; they return numpy
arrays / regions / reports. `Job` is a task with progress and cancel on a thread of its own;
the model worker is a one-thread executor (gui/model_worker.py).
"""

from __future__ import annotations

import itertools
import logging
import threading
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, TypeVar

from PySide6.QtCore import QObject, Signal

log = logging.getLogger("segstudio")
T = TypeVar("T")


@dataclass(frozen=True)
class Failure:
    """How a task failed: the exception, and its traceback as text (formatted on the worker, so
    it survives the exception's frames being freed)."""
    error: BaseException
    traceback_text: str

    @classmethod
    def of(cls, error: BaseException) -> Failure:
        return cls(error, "".join(traceback.format_exception(type(error), error, error.__traceback__)))


class Task(QObject):
    """One piece of work. `fn()` or, with `reports=True`, `fn(progress, cancelled)` where
    progress(done, total, text="") may be called at any rate and cancelled() says whether
    cancel() was asked for. All signals arrive on the GUI thread."""

    started = Signal()
    progress = Signal(int, int, str)  # superqt's "yielded": done, total, text
    returned = Signal(object)  # the value fn returned
    errored = Signal(object)  # Failure
    finished = Signal()  # after returned or errored

    def __init__(self, fn: Callable, parent: QObject | None = None, *, reports: bool = False):
        super().__init__(parent)
        self._fn = fn
        self._reports = reports
        self._cancel = threading.Event()
        self.future: Future | None = None
        self.result = None
        self.failure: Failure | None = None

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def running(self) -> bool:
        """Started (or queued) and not finished on its thread yet."""
        return self.future is not None and not self.future.done()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the work ended on its thread (its signals may still be queued)."""
        if self.future is not None:
            try:
                self.future.exception(timeout)
            except Exception:  # timed out or cancelled: the caller only wanted to wait  # noqa: BLE001
                pass


class Background(QObject):
    """A thread pool whose tasks report back on the GUI thread (the executor of every Task)."""

    # task key, what happened, its value: the worker side touches only this long-lived object,
    # never a Task, so no Qt object is ever freed off the GUI thread
    _relay = Signal(int, str, object)

    def __init__(self, workers: int = 1, name: str = "segstudio", parent: QObject | None = None):
        super().__init__(parent)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._relay.connect(self._on_relay)
        self._live: dict[int, Task] = {}  # tasks whose finished has not been delivered yet
        self._keys = itertools.count()
        self._pending = 0
        self._lock = threading.Lock()

    def start(self, task: Task) -> Future:
        """Queue the task. Its future gives fn's value or raises its exception."""
        if task.thread() is not self.thread():  # its signals' slots run where the executor lives
            task.moveToThread(self.thread())
        key = next(self._keys)
        self._live[key] = task
        fn, reports, cancelled = task._fn, task._reports, task._cancel.is_set
        relay = self._relay.emit

        def progress(done, total, text=""):
            relay(key, "progress", (int(done), int(total), str(text)))

        def run():
            relay(key, "started", None)
            try:
                value = fn(progress, cancelled) if reports else fn()
            except BaseException as e:  # handed to the GUI thread, and kept by the future  # noqa: BLE001
                relay(key, "errored", Failure.of(e))
                raise
            else:
                relay(key, "returned", value)
                return value
            finally:
                with self._lock:
                    self._pending -= 1

        with self._lock:
            self._pending += 1
        try:
            task.future = self.pool.submit(run)
        except BaseException:  # shut down: nothing will run it
            with self._lock:
                self._pending -= 1
            del self._live[key]
            raise
        return task.future

    def submit(self, fn: Callable[[], T], on_done: Callable[[T], None] | None = None,
               on_error: Callable[[Failure], None] | None = None) -> Future[T]:
        """Run fn(); on_done(value) or on_error(Failure) (default: logged) on the GUI thread."""
        task = Task(fn)
        if on_done is not None:
            task.returned.connect(on_done)
        task.errored.connect(on_error or log_failure)
        return self.start(task)

    @property
    def busy(self) -> bool:
        return self._pending > 0

    def _on_relay(self, key: int, what: str, value) -> None:
        task = self._live.get(key)
        if task is None:
            return
        if what == "started":
            task.started.emit()
        elif what == "progress":
            task.progress.emit(*value)
        else:
            if what == "returned":
                task.result = value
                task.returned.emit(value)
            else:
                task.failure = value
                task.errored.emit(value)
            del self._live[key]
            task.finished.emit()

    def shutdown(self, wait: bool = True) -> None:
        self.pool.shutdown(wait=wait, cancel_futures=not wait)


def log_failure(failure: Failure) -> None:
    log.error("background task failed: %s\n%s", failure.error, failure.traceback_text)


class Job(Task):
    """Long work with progress and cancel: `fn(progress, cancelled)` runs on a thread of its own."""

    def __init__(self, fn: Callable, parent: QObject | None = None):
        super().__init__(fn, parent, reports=True)
        self._executor: Background | None = None

    def start(self) -> None:
        self._executor = Background(1, "segstudio-job", self)
        self._executor.start(self)
        self._executor.pool.shutdown(wait=False)  # the job is queued already (not cancelled): the thread ends with it
