"""Model answers into the open project: a whole prediction (one undo step) or one clicked
proposal. Plain functions: they get the document, the store, the class mapper and callbacks
for what the window shows, never the window itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from segstudio.core.claims import store_owner
from segstudio.core.records import NEW, PREDICTED
from segstudio.core.store import region_row
from segstudio.inference.runtime.classmap import ClassMapper, prediction_regions

if TYPE_CHECKING:
    from segstudio.core.document import Document
    from segstudio.core.project import Project
    from segstudio.core.store import Store
    from segstudio.inference.runtime.segmenter import Detection, Prediction

# A clicked proposal overlapping a region of its class this much (IoU) is that region, already
# accepted: clicking it again selects the region instead of stacking a copy.
SAME_REGION_IOU = 0.9


def model_mapper(project: Project, info: dict[str, Any] | None, create_classes: bool) -> ClassMapper | None:
    """Model classes onto the project's; missing ones are created when `create_classes` is set."""
    if info is None:
        return None
    return ClassMapper(project, info["classes"], create_classes)


def apply_prediction(doc: Document | None, store: Store, mapper: ClassMapper, source: str, image_id: int,
                     pred: Prediction, *,
                     open_status: Callable[[], str], set_status: Callable[[str], None],
                     classes_added: Callable[[], None]) -> None:
    """A model's answer for one image: one undo step that replaces that model's regions.

    `doc` is the open document (or None), `open_status()` reads the open image's status and
    `set_status` changes it; `classes_added` runs when the mapper created classes."""
    n_classes = len(store.classes())
    if doc is not None and doc.image_id == image_id:
        regions = prediction_regions(pred, mapper, source, z0=doc.top_z() + 1)
        for r in regions:
            r.id = doc.new_region_id()
        doc.replace_source(regions, source, f"Segment image ({source})")
        store.set_uncertainty({image_id: pred.uncertainty})
        if open_status() == NEW:
            set_status(PREDICTED)
    else:  # the window moved on before the answer came: into the store, unless another window holds it
        regions = prediction_regions(pred, mapper, source, z0=store.max_z(image_id) + 1)
        for r, i in zip(regions, store.reserve_region_ids(len(regions)), strict=True):
            r.id = i
        rec = store.image(image_id)
        store.replace_source_regions_many(
            [{"image_id": image_id, "source": source, "rows": [region_row(image_id, r) for r in regions if r.mask.size],
              "status": PREDICTED if rec.status == NEW else None, "uncertainty": pred.uncertainty}],
            claim_owner=store_owner(store))
    if len(store.classes()) != n_classes:
        classes_added()


def accept_detection(doc: Document | None, store: Store, mapper: ClassMapper | None, source: str,
                     det: Detection, *,
                     message: Callable[[str], None], classes_added: Callable[[], None]) -> int | None:
    """A clicked model proposal becomes a region (or selects the one already made from it)."""
    if doc is None or mapper is None:
        return None
    cid = mapper(det.label)
    if cid is None:
        message("That class is not in the project (enable 'Create classes')")
        return None
    for r in doc.regions_in(det.box):
        if r.class_id == cid:
            inter = (r.window(det.box) & det.mask).sum()
            union = r.area + int(det.mask.sum()) - inter
            if union and inter / union >= SAME_REGION_IOU:
                return r.id
    n = len(store.classes())
    new = doc.new_region(cid, det.mask.copy(), det.x, det.y, label=f"Accept {source}",
                         source=source, score=round(det.score, 4))
    if len(store.classes()) != n:
        classes_added()
    return new.id if new is not None else None
