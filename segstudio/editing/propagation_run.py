"""Propagation over a project's sequence: a frame's objects carried frame by frame into the
following (or previous) frames, written as `predicted` regions that keep each object's track.

What it may write: only frames whose status is `new` or `predicted`, never one a window holds
(the open image) and never a frame listed in `protect`. The store checks status and claims again
inside its write transaction, so a person's save cannot slip in between. The run stops at the
first frame it may not write, at the end of the sequence, at a frame that fails to decode, or
when every object's confidence has fallen below the threshold (an object below it is no longer
carried, from that frame on). What each written frame held before is kept, so the whole run is
one undo step (`undo_run`), and a frame a person changed since is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from segstudio.core.imageio import ImageDecodeError
from segstudio.core.sequences import PROPAGATED
from segstudio.core.project import Project
from segstudio.core.records import NEW, PREDICTED, ImageRecord
from segstudio.core.region import Region
from segstudio.core.store import region_row

SOURCE = PROPAGATED
WRITABLE = (NEW, PREDICTED)


@dataclass
class FrameResult:
    index: int  # position in the sequence
    path: str
    objects: int  # objects written on it
    confidence: float  # the lowest among them
    dropped: list[int] = field(default_factory=list)  # tracks that fell below the threshold here


@dataclass
class PropagationRun:
    start: int
    backward: bool
    frames: list[FrameResult] = field(default_factory=list)
    stopped_at: int | None = None  # the sequence position where it stopped (None: it did all it was asked)
    reason: str = ""
    # what each written frame held before, and what the run wrote: image id -> (status, regions)
    before: dict[int, tuple[str, list[Region]]] = field(default_factory=dict)
    written: dict[int, list[tuple]] = field(default_factory=dict)
    evidence: str | None = None  # the model whose predictions the carry used as evidence (its file's name)

    @property
    def written_count(self) -> int:
        return len(self.frames)

    @property
    def nbytes(self) -> int:
        old = sum(r.mask.nbytes + 128 for _, regions in self.before.values() for r in regions)
        new = sum(len(row[7]) + 128 for rows in self.written.values() for row in rows)
        return old + new + 256

    def summary(self) -> str:
        if not self.frames:
            return f"nothing propagated: {self.reason}" if self.reason else "nothing propagated"
        first, last = self.frames[0].index, self.frames[-1].index
        dropped = sum(len(f.dropped) for f in self.frames)
        text = f"propagated to {len(self.frames)} frame(s), {first}–{last}" if first <= last else \
            f"propagated to {len(self.frames)} frame(s), {first}–{last} (backward)"
        if dropped:
            text += f"; {dropped} object(s) stopped on the way (confidence below the threshold)"
        if self.evidence:
            text += f"; the live model {self.evidence} as evidence"
        if self.reason:
            text += f"; stopped: {self.reason}"
        return text


def _objects(regions: Sequence[Region], width: int, height: int) -> list[tuple[int, int, np.ndarray]]:
    return [(r.object_id, r.class_id, r.full_mask(width, height)) for r in regions if not r.empty]


def propagate(project: Project, frames: Sequence[ImageRecord], start: int, count: int | None = None,
              backward: bool = False, *, carry: Callable | None = None, refine: Callable | None = None,
              threshold: float | None = None, protect: Sequence[int] = (), owner: str | None = None,
              cancel: Callable[[], bool] | None = None,
              progress: Callable[[int, int], None] | None = None) -> PropagationRun:
    """Carry the objects of `frames[start]` into up to `count` frames after it (before it with
    `backward`; None: to the sequence's end). `frames`: the sequence's records in frame order.
    `carry`: the step (editing.propagate.carry by default); `owner`: the claim holder that may
    write (the window's own claim on a frame does not stop it)."""
    from segstudio.editing import propagate as step  # the method (flow, refinement): see there
    carry = carry or step.carry
    threshold = step.CONFIDENCE_STOP if threshold is None else threshold
    store = project.store
    if not 0 <= start < len(frames):
        raise ValueError(f"frame {start} is not in the sequence (0 to {len(frames) - 1})")
    run = PropagationRun(start, backward)
    src = store.image(frames[start].id)
    regions = store.regions(src.id)
    image = project.load_image(src)
    h, w = image.shape[:2]
    objects = _objects(regions, w, h)
    if not objects:
        run.reason = f"frame {start} has no regions to carry"
        return run
    last = -1 if backward else len(frames)
    end = last if count is None else (max(last, start - count - 1) if backward else min(last, start + count + 1))
    steps = list(range(start - 1, end, -1) if backward else range(start + 1, end))
    protect_ids = set(protect)
    for n, k in enumerate(steps):
        if cancel is not None and cancel():
            run.stopped_at, run.reason = k, "cancelled"
            break
        rec = store.image(frames[k].id)
        if rec.id in protect_ids:
            run.stopped_at, run.reason = k, f"frame {k} is open"
            break
        if rec.status not in WRITABLE:
            run.stopped_at, run.reason = k, f"frame {k} holds a person's work ({rec.status.replace('_', ' ')})"
            break
        try:
            nxt = project.load_image(rec)
        except ImageDecodeError as e:
            run.stopped_at, run.reason = k, f"frame {k} cannot be read: {e}"
            break
        if nxt.shape[:2] != (h, w):
            run.stopped_at, run.reason = k, f"frame {k} is {nxt.shape[1]}x{nxt.shape[0]}, not {w}x{h}"
            break
        carried = carry(image, nxt, objects, refine)
        kept = [c for c in carried if c.confidence >= threshold and c.mask.any()]
        dropped = sorted({t for t, _, _ in objects} - {c.track for c in kept})
        if not kept:
            run.stopped_at = k
            run.reason = f"no object carried to frame {k} with confidence {threshold:g} or more"
            break
        ids = iter(store.reserve_region_ids(len(kept)))
        new_regions = []
        for z, c in enumerate(kept):
            r = Region(next(ids), c.class_id, c.mask, z=z, source=SOURCE, score=round(float(c.confidence), 4),
                       track=c.track)
            r.tighten()
            new_regions.append(r)
        rows = [region_row(rec.id, r) for r in new_regions]
        old = (rec.status, store.regions(rec.id))
        skipped = store.replace_source_regions_many(
            [{"image_id": rec.id, "source": None, "rows": rows, "status": PREDICTED,
              "uncertainty": round(1.0 - min(c.confidence for c in kept), 4)}],
            only_statuses=WRITABLE, claim_owner=owner)
        if skipped:
            run.stopped_at, run.reason = k, f"frame {k} was opened or changed meanwhile"
            break
        run.before[rec.id] = old
        run.written[rec.id] = rows
        run.frames.append(FrameResult(k, rec.path, len(kept), min(c.confidence for c in kept), dropped))
        objects = [(c.track, c.class_id, c.mask) for c in kept]
        image = nxt
        if progress is not None:
            progress(n + 1, len(steps))
    return run


def undo_run(project: Project, run: PropagationRun, owner: str | None = None) -> list[str]:
    """Put back what the run's frames held before it. A frame whose regions are no longer the
    ones the run wrote (a person edited it since, or it is open elsewhere) keeps what it has;
    their paths are returned."""
    return _swap(project, run.written, {iid: (status, [region_row(iid, r.copy()) for r in regions])
                                        for iid, (status, regions) in run.before.items()}, owner)


def redo_run(project: Project, run: PropagationRun, owner: str | None = None) -> list[str]:
    """Write the run's frames again after `undo_run` (the same regions, the same ids)."""
    now = {iid: [region_row(iid, r.copy()) for r in regions] for iid, (_, regions) in run.before.items()}
    return _swap(project, now, {iid: (PREDICTED, rows) for iid, rows in run.written.items()}, owner)


def _swap(project: Project, expect: dict[int, list[tuple]], put: dict[int, tuple[str, list[tuple]]],
          owner: str | None) -> list[str]:
    store = project.store
    entries, kept = [], []
    for iid, (status, rows) in put.items():
        have = {row[0] for row in store.region_rows(iid)}
        if have != {row[0] for row in expect.get(iid, [])}:
            kept.append(store.image(iid).path)
            continue
        entries.append({"image_id": iid, "source": None, "rows": rows, "status": status,
                        "uncertainty": None})
    skipped = store.replace_source_regions_many(entries, only_statuses=WRITABLE, claim_owner=owner)
    kept.extend(store.image(i).path for i in skipped)
    return kept
