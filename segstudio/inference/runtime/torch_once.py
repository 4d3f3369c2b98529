"""torch imported by one thread at a time.

The window imports torch lazily, on whichever worker thread first needs it: the model thread
(probing the device, loading a model) and the weights dialog's check (torch.hub's cache folder)
can start at the same moment. Two threads inside torch's own import then meet its circular
imports half done: one gets "cannot import name 'tqdm' from partially initialized module
'torch.hub'", and the Model panel reported that instead of the device. Every worker that may be
first to import torch calls `import_torch()`; the second waits until the first has finished."""

from __future__ import annotations

import threading

_lock = threading.Lock()
_done = threading.Event()  # set once torch's import has finished ("torch" in sys.modules is set at its start)


def import_torch() -> None:
    """Import torch (with torch.hub, which the weights code reads) unless that has finished already."""
    if _done.is_set():
        return
    with _lock:
        import torch  # noqa: F401
        import torch.hub  # noqa: F401
        _done.set()
