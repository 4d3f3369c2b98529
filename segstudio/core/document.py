"""The regions of one open image: edits as undoable commands, change events, dirty tracking.

Widgets observe a Document and call its methods; they own no annotation state. Every method
that changes regions is one undo step unless it runs inside `group()`.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from segstudio.core import maskops
from segstudio.core.maskops import Box
from segstudio.core.region import Region
from segstudio.core.undo import UndoStack


@dataclass(frozen=True)
class Change:
    kind: str  # "pixels" | "added" | "removed" | "attrs" | "reset"
    region_ids: tuple[int, ...]
    box: Box | None  # image area whose look changed; None for "attrs" that do not repaint


class _EditPixels:
    def __init__(self, region_id: int, box: Box, old: np.ndarray, new: np.ndarray, label: str):
        self.region_id, self.box, self.old, self.new, self.label = region_id, box, old, new, label

    def redo(self, doc: "Document") -> None:
        doc._write_window(self.region_id, self.box, self.new)

    def undo(self, doc: "Document") -> None:
        doc._write_window(self.region_id, self.box, self.old)

    @property
    def nbytes(self) -> int:
        return self.old.nbytes + self.new.nbytes + 96


class _AddRegion:
    def __init__(self, region: Region, label: str):
        self.region, self.label = region.copy(), label

    def redo(self, doc: "Document") -> None:
        doc._insert(self.region.copy())

    def undo(self, doc: "Document") -> None:
        doc._delete(self.region.id)

    @property
    def nbytes(self) -> int:
        return self.region.mask.nbytes + 160


class _RemoveRegion(_AddRegion):
    def redo(self, doc: "Document") -> None:
        super().undo(doc)

    def undo(self, doc: "Document") -> None:
        super().redo(doc)


class _SetAttrs:
    def __init__(self, region_id: int, old: dict, new: dict, label: str):
        self.region_id, self.old, self.new, self.label = region_id, old, new, label

    def redo(self, doc: "Document") -> None:
        doc._set_attrs(self.region_id, self.new)

    def undo(self, doc: "Document") -> None:
        doc._set_attrs(self.region_id, self.old)

    @property
    def nbytes(self) -> int:
        return 200


class _EraseStroke:
    """An eraser drag over any number of regions. It keeps, per region, the old pixels of each
    dab window it changed (never a whole mask), so both the drag and its undo step cost in
    proportion to the area the brush passed over."""

    def __init__(self, only: set[int] | None, visible: Callable[[Region], bool] | None, label: str):
        self.only, self.visible, self.label = only, visible, label
        self.saved: dict[int, list[tuple[Box, np.ndarray]]] = {}  # region id -> (window, old pixels)
        self.changed: dict[int, Box] = {}  # region id -> union of its changed windows

    def old_window(self, rid: int, box: Box, now: np.ndarray) -> np.ndarray:
        """The region's pixels inside `box` as they were before the stroke."""
        old = now.copy()
        for b, pixels in reversed(self.saved[rid]):  # earliest last: the first save wins
            old[b[1] - box[1]:b[3] - box[1], b[0] - box[0]:b[2] - box[0]] = pixels
        return old


EDITABLE_ATTRS = ("class_id", "z", "source", "score", "iscrowd", "track")  # track: the object across frames


class Document:
    def __init__(self, image_id: int, width: int, height: int, regions: Iterable[Region],
                 new_id: Callable[[], int], undo_bytes: int = 256 * 1024 * 1024):
        self.image_id, self.width, self.height = image_id, width, height
        self.regions: dict[int, Region] = {r.id: r for r in regions}
        self._new_id = new_id
        self.undo_stack = UndoStack(undo_bytes)
        self.listeners: list[Callable[[Change], None]] = []
        self._dirty: set[int] = set()
        self._deleted: set[int] = set()
        # True once a person changed something (not only a model's Segment image): what makes
        # a new or predicted image "in progress"
        self.user_edited = False
        self._model_step = 0
        self.revision = 0  # bumps on every change; the autosaver compares it
        self._stroke: tuple[int, Region | None, Box | None] | None = None
        self._erase: _EraseStroke | None = None

    # ------------------------------------------------------------------ observers
    def connect(self, fn: Callable[[Change], None]) -> None:
        """Call `fn(change)` after every change (once per function, however often connected)."""
        if fn not in self.listeners:
            self.listeners.append(fn)

    def disconnect(self, fn: Callable[[Change], None]) -> None:
        """Stop calling `fn` (nothing happens when it is not connected)."""
        if fn in self.listeners:
            self.listeners.remove(fn)

    # ------------------------------------------------------------------ queries
    def ordered(self) -> list[Region]:
        return sorted(self.regions.values(), key=lambda r: (r.z, r.id))

    def region_at(self, x: int, y: int, visible: Callable[[Region], bool] | None = None) -> Region | None:
        """The top region (highest z) covering a pixel."""
        best = None
        for r in self.regions.values():
            if r.contains(x, y) and (visible is None or visible(r)):
                if best is None or (r.z, r.id) > (best.z, best.id):
                    best = r
        return best

    def regions_in(self, box: Box) -> list[Region]:
        return [r for r in self.ordered() if r.mask.size and maskops.box_intersect(r.box, box)]

    def new_region_id(self) -> int:
        return self._new_id()

    def top_z(self) -> int:
        return max((r.z for r in self.regions.values()), default=0)

    # ------------------------------------------------------------------ undo
    @contextmanager
    def group(self, label: str):
        self.undo_stack.begin_group(label)
        try:
            yield
        except BaseException:
            self.undo_stack.abort_group(self)
            raise
        self.undo_stack.end_group()

    def undo(self) -> str | None:
        self.cancel_stroke()
        return self.undo_stack.undo(self)

    def redo(self) -> str | None:
        self.cancel_stroke()
        return self.undo_stack.redo(self)

    # ------------------------------------------------------------------ edits
    def add_region(self, region: Region, label: str = "Add region") -> Region:
        region.tighten()
        region.clip_to_image(self.width, self.height)
        if region.empty:
            raise ValueError("cannot add an empty region")
        cmd = _AddRegion(region, label)
        cmd.redo(self)
        self.undo_stack.push(cmd)
        return self.regions[region.id]

    def new_region(self, class_id: int, mask: np.ndarray, x: int, y: int, label: str = "Add region",
                   **kw) -> Region | None:
        """Add a region from a cropped mask on top of the others; None when the mask is empty."""
        r = Region(self._new_id(), class_id, mask, x, y, z=kw.pop("z", self.top_z() + 1), **kw)
        r.tighten()
        r.clip_to_image(self.width, self.height)
        if r.empty:
            return None
        return self.add_region(r, label)

    def remove_region(self, region_id: int, label: str = "Delete region") -> None:
        cmd = _RemoveRegion(self.regions[region_id], label)
        cmd.redo(self)
        self.undo_stack.push(cmd)

    def set_attrs(self, region_id: int, label: str = "Change region", **attrs) -> None:
        bad = set(attrs) - set(EDITABLE_ATTRS)
        if bad:
            raise ValueError(f"not editable: {sorted(bad)}")
        r = self.regions[region_id]
        old = {k: getattr(r, k) for k in attrs}
        if old == attrs:
            return
        cmd = _SetAttrs(region_id, old, dict(attrs), label)
        cmd.redo(self)
        self.undo_stack.push(cmd)

    def replace_mask(self, region_id: int, mask: np.ndarray, x: int, y: int, label: str = "Edit mask") -> None:
        """Give a region new pixels (cropped mask at x, y); an empty result deletes the region."""
        r = self.regions[region_id]
        box = maskops.box_union(r.box if r.mask.size else None, (x, y, x + mask.shape[1], y + mask.shape[0]))
        box = maskops.box_clip(box, self.width, self.height)
        if box is None:
            return
        old = r.window(box)
        new = maskops.window(mask.astype(bool), x, y, box)
        if np.array_equal(old, new):
            return
        with self.group(label):
            cmd = _EditPixels(region_id, box, old, new, label)
            cmd.redo(self)
            self.undo_stack.push(cmd)
            if self.regions[region_id].empty:
                self.remove_region(region_id)

    # -- a brush or eraser drag: many dabs, one undo step
    def begin_stroke(self, region_id: int) -> None:
        self.cancel_stroke()
        r = self.regions[region_id]
        self._stroke = (region_id, r.copy(), None)

    def begin_new_stroke(self, class_id: int) -> int:
        """Start painting a new region of `class_id` on top; it exists once the stroke ends."""
        self.cancel_stroke()
        r = Region(self._new_id(), class_id, np.zeros((0, 0), bool), 0, 0, z=self.top_z() + 1)
        self.regions[r.id] = r
        self._stroke = (r.id, None, None)
        return r.id

    def stroke_paint(self, stamp: np.ndarray, box: Box, value: bool) -> Box | None:
        """Paint a stamp into the stroking region; returns the clipped box that changed."""
        if self._stroke is None:
            raise RuntimeError("stroke_paint outside a stroke")
        rid, before, changed = self._stroke
        clipped = maskops.box_clip(box, self.width, self.height)
        if clipped is None:
            return None
        sub = stamp[clipped[1] - box[1]:clipped[3] - box[1], clipped[0] - box[0]:clipped[2] - box[0]]
        r = self.regions[rid]
        # A generous margin makes the crop grow in big steps, not on every dab.
        margin = max(32, (clipped[2] - clipped[0]) * 4)
        r.paint(sub, clipped, value, margin=margin)
        self._stroke = (rid, before, maskops.box_union(changed, clipped))
        self.revision += 1
        self._dirty.add(rid)
        self.user_edited = True
        self._emit(Change("pixels", (rid,), clipped))
        return clipped

    def end_stroke(self, label: str | None = None) -> None:
        """Record the stroke in progress (brush or eraser) as one undo step."""
        if self._erase is not None:
            self.end_erase(label)
            return
        if self._stroke is None:
            return
        label = label or "Brush stroke"
        rid, before, changed = self._stroke
        self._stroke = None
        r = self.regions[rid]
        if before is None:  # a new region: one "add" step, or nothing if nothing was painted
            r.tighten()
            self.regions.pop(rid)
            self._dirty.discard(rid)
            if not r.empty:
                cmd = _AddRegion(r, label)
                self.regions[rid] = r
                self._dirty.add(rid)
                self.undo_stack.push(cmd)
            elif changed is not None:
                self._emit(Change("removed", (rid,), changed))
            return
        if changed is None:
            return
        old = before.window(changed)
        new = r.window(changed)
        r.tighten()
        if np.array_equal(old, new):
            return
        with self.group(label):
            self.undo_stack.push(_EditPixels(rid, changed, old, new, label))
            if r.empty:
                self.remove_region(rid)

    @property
    def stroke_region_id(self) -> int | None:
        """The region the open brush stroke paints into; None when no stroke is open."""
        return self._stroke[0] if self._stroke is not None else None

    @property
    def stroke_is_new(self) -> bool:
        """True while the open stroke paints a region it created (begin_new_stroke)."""
        return self._stroke is not None and self._stroke[1] is None

    def cancel_stroke(self) -> None:
        """Put back the region(s) as they were before the stroke began."""
        if self._erase is not None:
            self._cancel_erase()
        if self._stroke is None:
            return
        rid, before, changed = self._stroke
        self._stroke = None
        if before is None:
            self.regions.pop(rid, None)
            self._dirty.discard(rid)
            if changed is not None:
                self.revision += 1
                self._emit(Change("removed", (rid,), changed))
        elif changed is not None and rid in self.regions:
            self.regions[rid] = before
            self._touch(rid, Change("pixels", (rid,), changed))

    @property
    def stroking(self) -> bool:
        return self._stroke is not None or self._erase is not None

    # -- an eraser drag: clears the brush's pixels from every region it passes over
    def begin_erase(self, region_ids: Iterable[int] | None = None,
                    visible: Callable[[Region], bool] | None = None, label: str = "Erase") -> None:
        """Start erasing. `region_ids`: only these regions; None: every region (that `visible`
        accepts) under the brush. The whole drag is one undo step (end_stroke/end_erase)."""
        self.cancel_stroke()
        only = None if region_ids is None else set(region_ids)
        self._erase = _EraseStroke(only, visible, label)

    def erase_paint(self, stamp: np.ndarray, box: Box) -> tuple[int, ...]:
        """Clear a stamp at `box` from the regions the erase stroke covers; returns the ids of the
        regions that lost pixels. Work is proportional to the stamp (and a box test per region)."""
        er = self._erase
        if er is None:
            raise RuntimeError("erase_paint outside an erase stroke")
        clipped = maskops.box_clip(box, self.width, self.height)
        if clipped is None:
            return ()
        sub = stamp[clipped[1] - box[1]:clipped[3] - box[1], clipped[0] - box[0]:clipped[2] - box[0]]
        ids = er.only if er.only is not None else list(self.regions)
        hit = []
        for rid in ids:
            r = self.regions.get(rid)
            if r is None or not r.mask.size or (er.visible is not None and not er.visible(r)):
                continue
            inter = maskops.box_intersect(r.box, clipped)
            if inter is None:
                continue
            s = sub[inter[1] - clipped[1]:inter[3] - clipped[1], inter[0] - clipped[0]:inter[2] - clipped[0]]
            old = r.window(inter)
            if not (old & s).any():
                continue
            er.saved.setdefault(rid, []).append((inter, old))
            er.changed[rid] = maskops.box_union(er.changed.get(rid), inter)
            r.paint(s, inter, False)
            self._dirty.add(rid)
            self.user_edited = True
            hit.append(rid)
        if hit:
            self.revision += 1
            self._emit(Change("pixels", tuple(hit), clipped))
        return tuple(hit)

    def end_erase(self, label: str | None = None) -> list[int]:
        """Record the erase stroke as one undo step; returns the ids of the regions it changed
        (emptied ones are deleted). An empty list: the stroke erased nothing."""
        er, self._erase = self._erase, None
        if er is None or not er.changed:
            return []
        label = label or er.label
        with self.group(label):
            for rid, box in er.changed.items():
                r = self.regions.get(rid)
                if r is None:
                    continue
                new = r.window(box)
                old = er.old_window(rid, box, new)
                r.tighten()
                self.undo_stack.push(_EditPixels(rid, box, old, new, label))
                if r.empty:
                    self.remove_region(rid)
        return list(er.changed)

    def _cancel_erase(self) -> None:
        er, self._erase = self._erase, None
        if er is None:
            return
        for rid, box in er.changed.items():
            r = self.regions.get(rid)
            if r is None:
                continue
            r.set_window(box, er.old_window(rid, box, r.window(box)))
            self._touch(rid, Change("pixels", (rid,), box))

    # -- region operations built from the primitives above
    def merge(self, region_ids: list[int], label: str = "Merge regions") -> int:
        """Union of several regions into the first one (its class and z)."""
        if len(region_ids) < 2:
            raise ValueError("merge needs two or more regions")
        regs = [self.regions[i] for i in region_ids]
        box: Box | None = None
        for r in regs:
            box = maskops.box_union(box, r.box)
        assert box is not None  # two or more regions
        union = np.zeros((box[3] - box[1], box[2] - box[0]), dtype=bool)
        for r in regs:
            union |= r.window(box)
        with self.group(label):
            self.replace_mask(regs[0].id, union, box[0], box[1])
            for r in regs[1:]:
                self.remove_region(r.id)
        return regs[0].id

    def split(self, region_id: int, label: str = "Split region") -> list[int]:
        """One region per connected component; the largest keeps the original id."""
        r = self.regions[region_id]
        parts = sorted(maskops.components(r.mask), key=lambda p: -int(p[0].sum()))
        if len(parts) < 2:
            return [region_id]
        ids = [region_id]
        with self.group(label):
            m, dx, dy = parts[0]
            self.replace_mask(region_id, m, r.x + dx, r.y + dy)
            for m, dx, dy in parts[1:]:
                nr = Region(self._new_id(), r.class_id, m, r.x + dx, r.y + dy, z=r.z,
                            source=r.source, score=r.score)
                self.add_region(nr)
                ids.append(nr.id)
        return ids

    def fill_holes(self, region_id: int, label: str = "Fill holes") -> None:
        r = self.regions[region_id]
        filled = maskops.fill_holes(r.mask)
        if filled.sum() != r.mask.sum():
            self.replace_mask(region_id, filled, r.x, r.y, label)

    def raise_region(self, region_id: int, up: bool = True) -> None:
        r = self.regions[region_id]
        others = [o.z for o in self.regions.values() if o.id != region_id]
        if up:
            z = max(others, default=r.z - 1) + 1
            if z <= r.z:
                return
        else:
            z = min(others, default=r.z + 1) - 1
            if z >= r.z:
                return
        self.set_attrs(region_id, label="Raise region" if up else "Lower region", z=z)

    def replace_source(self, regions: Iterable[Region], source: str | None, label: str) -> None:
        """One step that removes the regions made by `source` (e.g. a model) and adds new ones.
        Not a person's edit (user_edited stays as it was); undoing it is."""
        self._model_step += 1
        try:
            with self.group(label):
                if source is not None:
                    for r in list(self.regions.values()):
                        if r.source == source:
                            self.remove_region(r.id)
                for r in regions:
                    self.add_region(r)
        finally:
            self._model_step -= 1

    # ------------------------------------------------------------------ saving
    def take_dirty(self) -> tuple[list[Region], list[int]]:
        """Copies of regions changed since the last call, and the ids deleted since then."""
        ups = [self.regions[i].copy() for i in self._dirty if i in self.regions]
        dels = list(self._deleted)
        for r in ups:
            if r.mask.size:  # a stroke in progress keeps its margin; store the tight crop
                r.tighten()
        ups = [r for r in ups if r.mask.size]
        self._dirty.clear()
        self._deleted.clear()
        return ups, dels

    def restore_dirty(self, ups: list[Region], dels: list[int]) -> None:
        """Put back what take_dirty returned when saving it failed, so it is tried again."""
        for r in ups:
            if r.id in self.regions:
                self._dirty.add(r.id)
        self._deleted.update(d for d in dels if d not in self.regions)

    @property
    def has_unsaved(self) -> bool:
        return bool(self._dirty or self._deleted)

    # ------------------------------------------------------------------ primitives (commands only)
    def _emit(self, change: Change) -> None:
        for fn in list(self.listeners):
            fn(change)

    def _touch(self, rid: int, change: Change) -> None:
        self.revision += 1
        self._dirty.add(rid)
        self.user_edited = self.user_edited or not self._model_step
        self._emit(change)

    def _insert(self, region: Region) -> None:
        self.regions[region.id] = region
        self._deleted.discard(region.id)
        self._touch(region.id, Change("added", (region.id,), region.box))

    def _delete(self, region_id: int) -> None:
        r = self.regions.pop(region_id)
        self._dirty.discard(region_id)
        self._deleted.add(region_id)
        self.user_edited = self.user_edited or not self._model_step
        self.revision += 1
        self._emit(Change("removed", (region_id,), r.box if r.mask.size else None))

    def _write_window(self, region_id: int, box: Box, pixels: np.ndarray) -> None:
        r = self.regions[region_id]
        r.set_window(box, pixels)
        r.tighten()
        self._touch(region_id, Change("pixels", (region_id,), box))

    def _set_attrs(self, region_id: int, attrs: dict) -> None:
        r = self.regions[region_id]
        for k, v in attrs.items():
            setattr(r, k, v)
        repaint = "class_id" in attrs or "z" in attrs
        self._touch(region_id, Change("attrs", (region_id,), r.box if repaint and r.mask.size else None))
