"""Undo history bounded by memory, not by count. Commands keep only the pixels they changed."""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol


class Command(Protocol):
    label: str

    def redo(self, target: Any) -> None: ...

    def undo(self, target: Any) -> None: ...

    @property
    def nbytes(self) -> int: ...


class GroupCommand:
    """Several commands that undo and redo as one step (one stroke, one import, one model run)."""

    def __init__(self, label: str, commands: list | None = None):
        self.label = label
        self.commands: list = list(commands or [])

    def redo(self, target) -> None:
        for c in self.commands:
            c.redo(target)

    def undo(self, target) -> None:
        for c in reversed(self.commands):
            c.undo(target)

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.commands) + 64


class UndoStack:
    """Applied commands, newest last. `push` takes a command that has already been applied.

    Groups nest: only the outermost `end_group` pushes, so a tool can open a group inside an
    import without thinking about it. When the history outgrows `max_bytes` the oldest steps
    are dropped (never the newest, even if it alone is larger).
    """

    def __init__(self, max_bytes: int = 256 * 1024 * 1024):
        self.max_bytes = max_bytes
        self._done: deque = deque()
        self._undone: list = []
        self._bytes = 0
        self._groups: list[GroupCommand] = []
        self._dropped = False  # the oldest steps went to keep within max_bytes: the start is out of reach

    # -- recording
    def push(self, cmd) -> None:
        if self._groups:
            self._groups[-1].commands.append(cmd)
            return
        self._done.append(cmd)
        self._bytes += cmd.nbytes
        self._undone.clear()
        self._trim()

    def begin_group(self, label: str) -> None:
        self._groups.append(GroupCommand(label))

    def end_group(self) -> None:
        g = self._groups.pop()
        if not g.commands:
            return
        self.push(g)  # even with one command inside: the step keeps the group's name

    def abort_group(self, target) -> None:
        """Undo and drop what the open group recorded (an edit that failed half-way)."""
        g = self._groups.pop()
        g.undo(target)

    @property
    def in_group(self) -> bool:
        return bool(self._groups)

    # -- moving through history
    def undo(self, target) -> str | None:
        if self._groups or not self._done:
            return None
        cmd = self._done.pop()
        self._bytes -= cmd.nbytes
        cmd.undo(target)
        self._undone.append(cmd)
        return cmd.label

    def redo(self, target) -> str | None:
        if self._groups or not self._undone:
            return None
        cmd = self._undone.pop()
        cmd.redo(target)
        self._done.append(cmd)
        self._bytes += cmd.nbytes
        self._trim()
        return cmd.label

    @property
    def can_undo(self) -> bool:
        return bool(self._done) and not self._groups

    @property
    def at_start(self) -> bool:
        """Back where the history began: every step undone and none of them dropped."""
        return not self._done and not self._groups and not self._dropped

    @property
    def can_redo(self) -> bool:
        return bool(self._undone) and not self._groups

    @property
    def last_step(self):
        """The step undo would revert (None when there is none): what inspectors and tests read."""
        return self._done[-1] if self._done else None

    @property
    def undo_label(self) -> str | None:
        return self._done[-1].label if self._done else None

    @property
    def redo_label(self) -> str | None:
        return self._undone[-1].label if self._undone else None

    @property
    def nbytes(self) -> int:
        return self._bytes + sum(c.nbytes for c in self._undone)

    def __len__(self) -> int:
        return len(self._done)

    def clear(self) -> None:
        self._done.clear()
        self._undone.clear()
        self._bytes = 0
        self._dropped = False

    def _trim(self) -> None:
        while self._bytes + sum(c.nbytes for c in self._undone) > self.max_bytes and len(self._done) > 1:
            old = self._done.popleft()
            self._bytes -= old.nbytes
            self._dropped = True
