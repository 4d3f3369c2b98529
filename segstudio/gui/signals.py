"""Connecting a button or action to a method without handing it the signal's arguments.

PySide calls a slot with as many of the signal's arguments as the slot accepts: `clicked(bool)`
and `triggered(bool)` pass `checked=False` into the first optional parameter, so
`def load(self, path=None)` receives `False` (a TypeError) and `def delete(self, answer=None)`
takes `False` for an answer and skips its question. The rule in segstudio/gui: a button's
`clicked`, an action's `triggered` (and any signal whose arguments the slot does not want) is
connected through `connect_plain`, which calls the slot with no arguments at all.
"""

from __future__ import annotations

from typing import Any, Callable


def plain(slot: Callable[[], object]) -> Callable[..., None]:
    """`slot` wrapped to drop whatever arguments the signal passes (checked, index, text…)."""

    def call(*_signal_args: Any) -> None:
        slot()

    call.__name__ = getattr(slot, "__name__", "plain_slot")
    call.__qualname__ = getattr(slot, "__qualname__", call.__name__)
    return call


def connect_plain(signal: Any, slot: Callable[[], object]) -> None:
    """`signal.connect(slot)`, with the signal's arguments dropped: `slot()` is what runs."""
    signal.connect(plain(slot))
