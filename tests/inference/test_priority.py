"""Prompts first: background work waits at its pause points while another thread answers a prompt."""

import threading
import time

import pytest

from segstudio.inference.runtime.priority import PromptsFirst


def test_background_waits_while_a_prompt_is_answered():
    gate = PromptsFirst()
    steps: list[float] = []
    stop = threading.Event()
    answering = threading.Event()

    def background():
        while not stop.is_set():
            gate.pause_point()
            steps.append(time.perf_counter())
            time.sleep(0.002)

    t = threading.Thread(target=background)
    t.start()
    try:
        time.sleep(0.05)
        with gate.answering():
            answering.set()
            time.sleep(0.02)  # a step already past its pause point may finish
            n = len(steps)
            time.sleep(0.2)
            during = len(steps) - n
        time.sleep(0.05)
        after = len(steps)
    finally:
        stop.set()
        t.join()
    assert during == 0, "background work ran steps while a prompt was answered"
    assert after > n, "background work did not resume after the prompt"
    assert gate.paused_seconds >= 0.15


def test_own_prompt_never_blocks_its_thread():
    gate = PromptsFirst()
    with gate.answering():
        t0 = time.perf_counter()
        assert gate.pause_point() < 0.01
        assert time.perf_counter() - t0 < 0.05


def test_the_wait_is_bounded_and_cancel_stops_it():
    gate = PromptsFirst()
    done = threading.Event()
    waited: list[float] = []
    errors: list[BaseException] = []

    def hold():
        with gate.answering():
            done.wait(5)

    h = threading.Thread(target=hold)
    h.start()
    time.sleep(0.02)
    try:
        waited.append(gate.pause_point(limit=0.2))
        assert 0.15 <= waited[0] < 1.0
        with pytest.raises(InterruptedError):
            gate.pause_point(cancel=lambda: True, limit=2.0)
    except BaseException as e:  # noqa: BLE001
        errors.append(e)
    finally:
        done.set()
        h.join()
    assert not errors, errors
    assert not gate.waiting
