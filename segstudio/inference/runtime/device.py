"""Which device a model runs on: cuda -> mps -> cpu, or as the user asks; says plainly when it
fell back to the CPU and why (no silent fallback)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch

from segstudio.core.errors import UserError


class DeviceError(UserError):
    """The device asked for cannot be used; the message says why."""


@dataclass(frozen=True)
class DeviceInfo:
    device: torch.device
    name: str  # e.g. "NVIDIA H100 80GB HBM3", "CPU, 2 cores (the model uses 1 thread)"
    amp: bool  # mixed precision for inference and training
    note: str = ""  # why this device, e.g. "CUDA not available (torch built without CUDA); using the CPU"

    @property
    def type(self) -> str:
        return self.device.type

    def describe(self) -> str:
        return f"{self.type}: {self.name}{' (mixed precision)' if self.amp else ''}" + \
            (f" — {self.note}" if self.note else "")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def cpu_cores() -> int:
    """Cores this process may use (its CPU affinity where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cpu_name() -> str:
    """'CPU, 2 cores (the model uses 1 thread)': the machine's cores and torch's threads."""
    cores, threads = cpu_cores(), torch.get_num_threads()
    return f"CPU, {_plural(cores, 'core')} (the model uses {_plural(threads, 'thread')})"


def _cuda_reason() -> str:
    if torch.version.cuda is None:
        return "this torch build has no CUDA support"
    try:
        n = torch.cuda.device_count()
    except Exception as e:  # driver problems surface here  # noqa: BLE001
        return f"the CUDA driver failed: {e}"
    return "no CUDA GPU was found" if n == 0 else "CUDA is not usable"


def _mps_ok() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def choose_device(request: str = "auto", amp: bool | None = None) -> DeviceInfo:
    """`request`: auto | cuda | cuda:N | mps | cpu. AMP defaults to on for CUDA only."""
    request = (request or "auto").lower()
    if request.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"CUDA was asked for but {_cuda_reason()}; use --device cpu or auto")
        dev = torch.device(request)
        return DeviceInfo(dev, torch.cuda.get_device_name(dev), amp if amp is not None else True)
    if request == "mps":
        if not _mps_ok():
            raise DeviceError("MPS (Apple GPU) was asked for but is not available")
        return DeviceInfo(torch.device("mps"), "Apple GPU (MPS)", bool(amp))
    if request == "cpu":
        return DeviceInfo(torch.device("cpu"), cpu_name(), False, "as asked")
    if request != "auto":
        raise DeviceError(f"unknown device {request!r}; use auto, cuda, cuda:N, mps or cpu")
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        return DeviceInfo(dev, torch.cuda.get_device_name(dev), amp if amp is not None else True)
    if _mps_ok():
        return DeviceInfo(torch.device("mps"), "Apple GPU (MPS)", bool(amp))
    return DeviceInfo(torch.device("cpu"), cpu_name(), False,
                      f"no GPU: {_cuda_reason()}; running on the CPU")


def autocast(info: DeviceInfo):
    """Mixed-precision context for CUDA when enabled, a no-op otherwise."""
    if info.amp and info.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return torch.autocast(info.type, enabled=False) if info.type in ("cuda", "cpu") else _Null()


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


@contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """torch's CPU threads for this thread's work inside the block (OpenMP's count is per calling
    thread; torch's default for threads started later is set here too, so it is put back)."""
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def probe(threads: int | None = None) -> str:
    """What `auto` would pick, in words; optionally cap torch's CPU threads (the window keeps a
    core for itself)."""
    if threads:
        torch.set_num_threads(threads)
    return choose_device("auto").describe()


def model_bytes(model: object) -> int:
    """Bytes held by a loaded model's parameters and buffers: the torch modules found on it (itself,
    its `model` or `net`, and their `net`)."""
    found = [model, getattr(model, "model", None), getattr(model, "net", None)]
    found += [getattr(c, "net", None) for c in found[1:] if c is not None]
    mods = [m for i, m in enumerate(found) if isinstance(m, torch.nn.Module) and all(m is not o for o in found[:i])]
    seen: set[int] = set()
    total = 0
    for m in mods:
        for t in (*m.parameters(), *m.buffers()):
            if id(t) not in seen:
                seen.add(id(t))
                total += t.numel() * t.element_size()
    return total
