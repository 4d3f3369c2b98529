"""Deleting a class as one project-level undo step.

A class's regions lie on many images, while a Document's undo history covers one image. So a
class delete is recorded here instead: the store's `remove_class` returns what it took out (the
class, its region rows or the ids of the regions it moved, the statuses it changed) and its
`restore_class` puts all of it back in one transaction. `ProjectHistory` holds those steps for
the window's Edit > Undo, which turns to it when the open image has nothing left to undo (a class
delete forgets the per-image histories, so any step they hold is newer).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from segstudio.core.classes import LabelClass
    from segstudio.core.store.api import RemovedClass, Store


class ClassDeletion:
    """One undo step: a class and every region of it (or the move of its regions), statuses included."""

    def __init__(self, removed: RemovedClass):
        self.removed = removed
        self.label = f"Delete class “{removed.cls.name}”"
        self.restored: LabelClass | None = None

    def undo(self, store: Store) -> None:
        self.restored = store.restore_class(self.removed)

    @property
    def nbytes(self) -> int:
        return self.removed.nbytes


class ProjectHistory:
    """Project-level steps (class deletes), newest last, bounded by memory like UndoStack.

    Undo only: once a class is back, a new edit could give it regions that a blind redo would
    delete again, so deleting it again is the Delete button's job, with its question.
    """

    def __init__(self, max_bytes: int = 256 * 1024 * 1024):
        self.max_bytes = max_bytes
        self._done: deque[ClassDeletion] = deque()

    def push(self, step: ClassDeletion) -> None:
        self._done.append(step)
        while sum(s.nbytes for s in self._done) > self.max_bytes and len(self._done) > 1:
            self._done.popleft()  # the oldest goes first; the newest stays even if alone too large

    def undo(self, store: Store) -> ClassDeletion | None:
        """Revert the newest step; returns it (its `restored` class says under which id and name)."""
        if not self._done:
            return None
        step = self._done.pop()
        try:
            step.undo(store)
        except Exception:
            self._done.append(step)  # nothing changed (one transaction): it can be tried again
            raise
        return step

    @property
    def can_undo(self) -> bool:
        return bool(self._done)

    @property
    def undo_label(self) -> str | None:
        return self._done[-1].label if self._done else None

    def __len__(self) -> int:
        return len(self._done)
