"""A memory budget shared by the threads that decode images.

Decoding one image can take gigabytes (a 10000 x 10000 TIFF with 8 16-bit samples holds 1.6 GB
of pixels before any copy), so "one image per worker" bounds nothing: eight workers on eight
such files need eight times that at once. Each decode reserves what it will hold (known from the
header, `imageio.decode_cost`) and waits, first come first served, until that fits in the
budget; the budget is a share of the memory available when it is made.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from contextlib import contextmanager
from typing import Iterator

# The share of the machine's available memory that decoding may hold at once by default
DEFAULT_SHARE = 0.5
MIN_BUDGET = 256 << 20
FALLBACK_AVAILABLE = 4 << 30  # where the platform does not say


def available_memory() -> int | None:
    """Bytes this machine can give without swapping (Linux MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def parse_bytes(text: str) -> int:
    """'2G', '500M', '1.5GB', '800000000' -> bytes (powers of 1024 for K/M/G/T)."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(t[-1:] or "", 1)
    number = t[:-1] if mult != 1 else t
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"not a size: {text!r} (write e.g. 2G or 500M)") from None
    if value <= 0:
        raise ValueError(f"not a size: {text!r} (must be more than 0)")
    return int(value * mult)


class MemoryBudget:
    """Bytes that decoding may hold at once, shared by threads. `reserve(n)` waits (in arrival
    order, so a large image is not starved by small ones) until n more bytes fit."""

    def __init__(self, total: int):
        if total <= 0:
            raise ValueError("a memory budget must be more than 0 bytes")
        self.total = int(total)
        self.used = 0
        self.peak = 0  # the most ever held at once (reported by check, asserted by tests)
        self.most_holders = 0  # the most reservations held at once
        self._holders = 0
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        n = max(0, int(nbytes))
        if n > self.total:
            raise ValueError(f"{n} bytes can never fit a budget of {self.total}")
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            try:
                while self._queue[0] is not ticket or self.used + n > self.total:
                    self._cond.wait()
            except BaseException:
                self._queue.remove(ticket)
                self._cond.notify_all()
                raise
            self._queue.popleft()
            self.used += n
            self._holders += 1
            self.peak = max(self.peak, self.used)
            self.most_holders = max(self.most_holders, self._holders)
            self._cond.notify_all()  # the next in line may fit too
        try:
            yield
        finally:
            with self._cond:
                self.used -= n
                self._holders -= 1
                self._cond.notify_all()


    def grow_to(self, total: int) -> None:
        """Raise the budget (never lower it: what is held stays valid); waiters look again."""
        with self._cond:
            if total > self.total:
                self.total = int(total)
                self._cond.notify_all()


def budget_for(share: float = DEFAULT_SHARE) -> MemoryBudget:
    """A budget of `share` of the memory available now (at least MIN_BUDGET)."""
    avail = available_memory() or FALLBACK_AVAILABLE
    return MemoryBudget(max(MIN_BUDGET, int(avail * share)))


_default: MemoryBudget | None = None
_default_lock = threading.Lock()


def default_budget() -> MemoryBudget:
    """The process's shared budget: every decoder that is not given its own. Made on first use
    and raised whenever more memory has come free since (a busy moment at start-up does not
    hold the app to a small budget for good)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = budget_for()
        else:
            _default.grow_to(int((available_memory() or 0) * DEFAULT_SHARE))
        return _default
