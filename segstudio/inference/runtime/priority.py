"""Prompts first: a click waits for no background work of this process.

A person clicking expects an answer in tens of milliseconds, while the same cores may be training
the pre-label model (Learn as I annotate), re-predicting images, or embedding the next image.
`PROMPTS.answering()` marks a prompt being answered, from the moment it is asked for until its
candidates are out; background work calls `PROMPTS.pause_point()` between its steps (a training
step, an encoder layer, a batch) and waits there while any other thread answers one. The wait is
bounded (`MAX_PAUSE`) so a stream of clicks slows background work and never starves it.

No torch here: the click worker marks prompts before it touches the model.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

MAX_PAUSE = 5.0  # s: the longest one pause point waits (the user clicks on and on)


class PromptsFirst:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._answering: dict[int, int] = {}  # thread id -> prompts it is answering
        self.paused_seconds = 0.0  # total time background work waited (for benchmarks and tests)

    @contextmanager
    def answering(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            self._answering[me] = self._answering.get(me, 0) + 1
        try:
            yield
        finally:
            with self._cond:
                self._answering[me] -= 1
                if not self._answering[me]:
                    del self._answering[me]
                self._cond.notify_all()

    def _others(self) -> bool:
        me = threading.get_ident()
        return any(t != me for t in self._answering)  # never this thread's own prompt: it would wait forever

    @property
    def waiting(self) -> bool:
        """Whether a prompt is being answered on some thread (a cheap, unlocked look)."""
        return bool(self._answering)

    def pause_point(self, cancel: Callable[[], bool] | None = None, limit: float = MAX_PAUSE) -> float:
        """Wait while another thread answers a prompt (at most `limit` s); the seconds waited.
        InterruptedError when `cancel` says so meanwhile."""
        if not self._answering:  # the common case, without the lock
            return 0.0
        t0 = time.perf_counter()
        with self._cond:
            while self._others():
                left = limit - (time.perf_counter() - t0)
                if left <= 0:
                    break
                self._cond.wait(min(0.05, left))
                if cancel is not None and cancel():
                    raise InterruptedError("cancelled")
        waited = time.perf_counter() - t0
        self.paused_seconds += waited
        return waited


PROMPTS = PromptsFirst()  # one per process: every click model and every background job share it


# how much nicer than the window and its click model the background model threads run: 5 (weight
# about 1:3) keeps a click's worst case under a training step's on a quiet machine; 10 starved
# training when other programs kept the cores busy (4 steps in 20 s; benchmarks/README.md)
BACKGROUND_NICE = 5


def run_in_background() -> None:
    """Make the calling thread (and the CPU threads torch starts from it later) nicer than the
    window's and the click model's, once: on a machine with few cores, the scheduler then gives a
    click's decode the cores while a training step or a folder run is in the middle of an
    operation (a pause point comes only between steps or layers). Linux only (a thread has its own
    nice value there, and threads inherit their creator's); elsewhere, or when refused: no change."""
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        now = os.getpriority(os.PRIO_PROCESS, tid)
        if now < BACKGROUND_NICE:
            os.setpriority(os.PRIO_PROCESS, tid, BACKGROUND_NICE)
    except OSError:
        pass
