"""A text progress bar on stderr: count, rate and ETA. Quiet when stderr is not a terminal
(one line every few seconds instead, so logs stay readable)."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    def __init__(self, total: int, label: str = "", stream=None, width: int = 28, unit: str = "img"):
        self.total, self.label, self.width, self.unit = max(0, total), label, width, unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.n = 0
        self.n0 = 0  # done before the bar started: not counted in the rate
        self.t0 = time.perf_counter()
        self._last = 0.0

    def update(self, n: int = 1, note: str = "") -> None:
        self.n += n
        now = time.perf_counter()
        if now - self._last < (0.1 if self.tty else 5.0) and self.n < self.total:
            return
        self._last = now
        self._draw(note)

    def _draw(self, note: str = "") -> None:
        el = time.perf_counter() - self.t0
        rate = (self.n - self.n0) / el if el > 0 else 0.0
        eta = (self.total - self.n) / rate if rate > 0 and self.total else 0.0
        frac = self.n / self.total if self.total else 1.0
        fill = int(frac * self.width)
        bar = "#" * fill + "-" * (self.width - fill)
        msg = (f"{self.label} [{bar}] {self.n}/{self.total} {rate:.1f} {self.unit}/s "
               f"ETA {_fmt(eta)}{' ' + note if note else ''}")
        if self.tty:
            self.stream.write("\r" + msg[:160].ljust(100))
        else:
            self.stream.write(msg + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.total:
            self._draw()
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _fmt(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}:{seconds % 60:02d}"
