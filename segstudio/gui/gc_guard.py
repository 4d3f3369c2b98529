"""Python's cycle collector runs only on the GUI thread while a window is open.

Left automatic, it runs in whatever thread happens to allocate: a model or decoder thread can
then free a Qt widget caught in a reference cycle, and Qt widgets must die on the GUI thread
(seen here as a deadlock: a collection on the model thread destroying a widget waited forever
for the interpreter lock). pyqtgraph's GarbageCollector switches automatic collection off and
collects from a timer on the GUI thread instead; this keeps count of the windows that asked
for it, so collection comes back on when the last one closes.
"""

from __future__ import annotations

import gc

from pyqtgraph.util.garbage_collector import GarbageCollector

COLLECT_INTERVAL_S = 0.5
_collector: GarbageCollector | None = None
_users = 0


def acquire() -> None:
    global _collector, _users
    _users += 1
    if _collector is None:
        _collector = GarbageCollector(interval=COLLECT_INTERVAL_S)


def release() -> None:
    global _collector, _users
    _users = max(0, _users - 1)
    if _users == 0 and _collector is not None:
        _collector.timer.stop()
        _collector = None
        gc.enable()
        gc.collect()  # here, on the GUI thread, what the timer had not collected yet
