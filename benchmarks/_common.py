"""Shared helpers for the benchmarks: timing, peak memory, a results line with its target."""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CACHE = Path(os.environ.get("SEGSTUDIO_BENCH_CACHE", "/tmp/segstudio-bench"))

RESULTS: list[tuple[str, str, str, bool | None]] = []


def peak_rss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 if sys.platform != "darwin" else r / 1024 / 1024


def median_time(fn, repeat: int = 7, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def report(name: str, value: str, target: str, ok: bool | None) -> None:
    RESULTS.append((name, value, target, ok))
    mark = "" if ok is None else ("  MET" if ok else "  MISSED")
    print(f"{name:<58} {value:>16}   target {target}{mark}", flush=True)


def summary() -> int:
    missed = [r for r in RESULTS if r[3] is False]
    print(f"\n{len(RESULTS)} figures, {len(missed)} missed targets")
    return 0
