"""The Files list's sequence rows: the frames of a stack or video file, or of a numbered
subfolder, listed as one row with the frame count and a status summary (core/sequences names
the frames). The project's top folder is never folded into one row: a folder of numbered
images opened as the project lists them one by one, as before (the frame bar steps through them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from segstudio.core import sequences
from segstudio.core.records import DONE, STATUSES, UNFINISHED

if TYPE_CHECKING:
    from segstudio.core.store import Store

_UNKNOWN = object()


def group_key(path: str) -> str | None:
    """The row a record folds into: its container file for a frame, its folder for a numbered
    file in a subfolder; None for a row of its own (top-level files, names with no number)."""
    key = sequences.sequence_key(path)
    return key or None


@dataclass(eq=False)
class FrameGroup:
    """One row for a sequence's listed frames (`ids`, in list order)."""
    key: str
    ids: list[int]
    container: bool
    counts: dict[str, int] | None = None  # status -> frames; None until read (or after a change)
    unreadable: int = 0
    first_unfinished: int | None = None
    _members: set[int] = field(default_factory=set)

    def __contains__(self, image_id: int) -> bool:
        if not self._members:
            self._members = set(self.ids)
        return image_id in self._members

    def read(self, store: Store) -> None:
        """Statuses of the frames, from the store (once per change: a 10,000-frame video is one
        query a page of 900 ids, about 20 ms)."""
        recs = store.images_by_ids(self.ids)
        counts: dict[str, int] = {}
        self.unreadable, self.first_unfinished = 0, None
        for i in self.ids:
            r = recs.get(i)
            if r is None:
                continue
            if r.error:
                self.unreadable += 1
                continue
            counts[r.status] = counts.get(r.status, 0) + 1
            if self.first_unfinished is None and r.status in UNFINISHED:
                self.first_unfinished = i
        self.counts = counts

    def target(self, store: Store) -> int:
        """The frame a click on the row opens: the first unfinished one, else the first."""
        if self.counts is None:
            self.read(store)
        return self.first_unfinished if self.first_unfinished is not None else self.ids[0]

    @property
    def title(self) -> str:
        n = len(self.ids)
        return f"{self.key}  ({n} frame{'s' * (n != 1)})"

    @property
    def short(self) -> str:
        """'2/40 done' (the Status column: as narrow as an image's status)."""
        done = (self.counts or {}).get(DONE, 0)
        broken = f" · {self.unreadable} ✕" if self.unreadable else ""  # frames that cannot be read
        return f"{done}/{len(self.ids)} done{broken}"

    def summary(self) -> str:
        """'30 new · 8 predicted · 2 done' (the row's tooltip)."""
        counts = self.counts or {}
        parts = [f"{counts[s]} {s.replace('_', ' ')}" for s in STATUSES if counts.get(s)]
        if self.unreadable:
            parts.append(f"{self.unreadable} unreadable")
        return " · ".join(parts)

    @property
    def status(self) -> str:
        """The status its icon shows: done when every readable frame is done (or skipped), else
        the furthest along of its frames' unfinished statuses (in progress before predicted)."""
        counts = self.counts or {}
        unfinished = [s for s in STATUSES if s in UNFINISHED and counts.get(s)]
        return unfinished[-1] if unfinished else DONE


def fold(ids: list[int], paths: dict[int, str], keys: dict[int, object]) -> list[int | FrameGroup]:
    """Display rows for the listed ids (in list order): a sequence's frames become one row, placed
    where its first listed frame is. `keys` caches each id's group key (a path never changes);
    a numbered subfolder is a sequence when two or more of its files are listed."""
    members: dict[str, list[int]] = {}
    for i in ids:
        k = keys.get(i, _UNKNOWN)
        if k is _UNKNOWN:
            p = paths.get(i)
            if p is None:
                continue  # not known yet: a row of its own this time
            k = keys[i] = group_key(p)
        if k is not None:
            members.setdefault(k, []).append(i)  # type: ignore[arg-type]
    groups = {}
    for k, m in members.items():
        container = sequences.split_frame_path(paths[m[0]]) is not None
        if not container:  # a subfolder's numbered files: a sequence when they run evenly (core/sequences)
            run = set(sequences.numbered_run([paths[i] for i in m]))
            m = [i for i in m if paths[i] in run]  # the others: rows of their own
        if container or len(m) >= 2:
            groups[k] = FrameGroup(k, m, container)
    if not groups:
        return ids  # type: ignore[return-value]  # no sequence: the rows are the ids themselves
    rows: list[int | FrameGroup] = []
    placed: set[str] = set()
    for i in ids:
        k = keys.get(i)
        g = groups.get(k) if isinstance(k, str) else None
        if g is None or i not in g:
            rows.append(i)
        elif g.key not in placed:
            placed.add(g.key)
            rows.append(g)
    return rows


def groups_of(rows: Iterable[int | FrameGroup]) -> dict[int, FrameGroup]:
    """Image id -> the group row it is folded into."""
    return {i: g for g in rows if isinstance(g, FrameGroup) for i in g.ids}
