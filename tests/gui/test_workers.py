"""The one worker model: tasks report started → progress → returned | errored → finished on the
GUI thread; failures come back as a Failure with the traceback text; the future keeps the
exception; Job adds progress and cancel; ModelWorker runs its requests in order on one thread."""

import logging
import threading

import pytest

from segstudio.gui.model_worker import ModelWorker
from segstudio.gui.workers import Background, Failure, Job, Task


def _on_gui_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def test_result_comes_back_on_the_gui_thread(qtbot):
    bg = Background(1, "test-bg")
    got = []
    fut = bg.submit(lambda: threading.current_thread().name, lambda v: got.append((v, _on_gui_thread())))
    qtbot.waitUntil(lambda: bool(got), timeout=5000)
    name, on_gui = got[0]
    assert name.startswith("test-bg") and on_gui
    assert fut.result() == name and not bg.busy
    bg.shutdown()


def _explode():
    raise ValueError("broken input")


def test_failure_carries_the_exception_and_its_traceback(qtbot):
    bg = Background(1, "test-bg")
    got = []
    fut = bg.submit(_explode, lambda v: got.append(("done", v)), lambda f: got.append((f, _on_gui_thread())))
    qtbot.waitUntil(lambda: bool(got), timeout=5000)
    failure, on_gui = got[0]
    assert on_gui and isinstance(failure, Failure)
    assert isinstance(failure.error, ValueError) and str(failure.error) == "broken input"
    assert "_explode" in failure.traceback_text and "ValueError: broken input" in failure.traceback_text
    assert vars(failure.error) == {}  # nothing glued onto the exception
    assert fut.exception() is failure.error  # the future carries it too
    bg.shutdown()


def test_an_unhandled_failure_is_logged_with_its_traceback(qtbot, caplog):
    bg = Background(1, "test-bg")
    fut = bg.submit(_explode)
    with caplog.at_level(logging.ERROR, logger="segstudio"):
        qtbot.waitUntil(lambda: "_explode" in caplog.text, timeout=5000)
    assert "broken input" in caplog.text and fut.done()
    bg.shutdown()


def test_task_signals_arrive_in_order_on_the_gui_thread(qtbot):
    bg = Background(2, "test-bg")
    task = Task(lambda p, c: [p(i, 3, f"step {i}") for i in range(3)] and "ok", reports=True)
    seen = []
    task.started.connect(lambda: seen.append(("started", _on_gui_thread())))
    task.progress.connect(lambda d, t, s: seen.append((("progress", d, t, s), _on_gui_thread())))
    task.returned.connect(lambda v: seen.append((("returned", v), _on_gui_thread())))
    task.finished.connect(lambda: seen.append(("finished", _on_gui_thread())))
    bg.start(task)
    qtbot.waitUntil(lambda: bool(seen) and seen[-1][0] == "finished", timeout=5000)
    assert all(on_gui for _, on_gui in seen)
    assert [s for s, _ in seen] == ["started", ("progress", 0, 3, "step 0"), ("progress", 1, 3, "step 1"),
                                    ("progress", 2, 3, "step 2"), ("returned", "ok"), "finished"]
    assert task.result == "ok" and task.failure is None and not task.running()
    bg.shutdown()


def test_job_reports_progress_and_stops_when_cancelled(qtbot):
    gate = threading.Event()

    def work(progress, cancelled):
        n = 0
        while not cancelled():
            n += 1
            progress(n, 0, "working")
            gate.wait(0.01)
        return n

    job = Job(work)
    progress, returned = [], []
    job.progress.connect(lambda d, t, s: progress.append(d))
    job.returned.connect(returned.append)
    job.start()
    qtbot.waitUntil(lambda: len(progress) >= 3, timeout=5000)
    assert job.running() and not job.cancelled
    job.cancel()
    job.wait(5)
    qtbot.waitUntil(lambda: bool(returned), timeout=5000)
    assert not job.running() and job.cancelled and returned[0] >= 3


def test_job_failure_arrives_through_errored(qtbot):
    job = Job(lambda progress, cancelled: _explode())
    with qtbot.waitSignal(job.errored, timeout=5000) as sig:
        job.start()
    failure = sig.args[0]
    assert isinstance(failure.error, ValueError) and "_explode" in failure.traceback_text
    assert job.failure is failure and job.result is None


@pytest.fixture
def worker():
    w = ModelWorker(project=None)
    yield w
    w.shutdown()


def test_model_worker_runs_requests_in_order_on_one_thread(qtbot, worker):
    threads, order = [], []
    busy = []
    worker.busy_changed.connect(busy.append)

    def job(name):
        def fn(w, cancelled):
            assert w is worker
            threads.append(threading.get_ident())
            order.append(name)
        return fn
    for name in ("a", "b", "c"):
        worker.run_job(name, job(name))
    assert worker.busy  # queued counts as busy: nothing else should start meanwhile
    qtbot.waitUntil(lambda: not worker.busy, timeout=5000)
    assert order == ["a", "b", "c"] and len(set(threads)) == 1 and threads[0] != threading.get_ident()
    assert busy[0] is True and busy[-1] is False and busy.count(False) == 1


def test_model_worker_failures_become_messages(qtbot, worker, caplog):
    with qtbot.waitSignal(worker.job_failed, timeout=5000) as sig, caplog.at_level(logging.WARNING, "segstudio"):
        worker.run_job("train", lambda w, cancelled: _explode())
    assert sig.args == ["ValueError: broken input"]
    assert "_explode" in caplog.text  # the traceback goes to the log
    with qtbot.waitSignal(worker.image_failed, timeout=5000) as sig:
        worker.predict_image(7, None)  # no model loaded
    assert sig.args[0] == 7 and "no model loaded" in sig.args[1]


def test_model_worker_cancel_reaches_the_running_job(qtbot, worker):
    started, result = threading.Event(), []

    def fn(w, cancelled):
        started.set()
        while not cancelled():
            started.wait(0.01)
        result.append("stopped")
    worker.run_job("train", fn)
    assert started.wait(5)
    worker.cancel()
    qtbot.waitUntil(lambda: not worker.busy, timeout=5000)
    assert result == ["stopped"]
