"""Model answers into the open project: a whole prediction (one undo step) or one clicked
proposal. Functions of the main window, kept apart to keep the window short."""

from __future__ import annotations

from segstudio.inference.classmap import ClassMapper, prediction_regions


def model_mapper(win) -> ClassMapper | None:
    """Model classes onto the project's; missing ones are created when the panel says so."""
    info = win.model_dock.info
    if info is None:
        return None
    return ClassMapper(win.project, info["classes"], win.model_dock.create_classes.isChecked())


def apply_prediction(win, image_id: int, pred) -> None:
    """A model's answer for one image: one undo step that replaces that model's regions."""
    mapper, source = model_mapper(win), win.model_dock.info["name"]
    doc = win.editor.doc
    n_classes = len(win.project.store.classes())
    if doc is not None and doc.image_id == image_id:
        regions = prediction_regions(pred, mapper, source, z0=doc.top_z() + 1)
        for r in regions:
            r.id = doc.new_region_id()
        doc.replace_source(regions, source, f"Segment image ({source})")
        win.project.store.set_uncertainty({image_id: pred.uncertainty})
        if win.session.current.record.status == "new":
            win.session.set_status("predicted")
    else:
        regions = prediction_regions(pred, mapper, source, z0=win.project.store.max_z(image_id) + 1)
        for r, i in zip(regions, win.project.store.reserve_region_ids(len(regions)), strict=True):
            r.id = i
        rec = win.project.store.image(image_id)
        win.project.store.replace_source_regions(image_id, source, regions, uncertainty=pred.uncertainty,
                                                  status="predicted" if rec.status == "new" else None)
    if len(win.project.store.classes()) != n_classes:
        win.classes_dock.refresh()
        win.classes_changed()
    win.files.model.invalidate(image_id)
    win.files.update_counts()


def accept_detection(win, det) -> int | None:
    """A clicked model proposal becomes a region (or selects the one already made from it)."""
    doc, mapper = win.editor.doc, model_mapper(win)
    if doc is None or mapper is None:
        return None
    cid = mapper(det.label)
    if cid is None:
        win.statusBar().showMessage("That class is not in the project (enable 'Create classes')", 5000)
        return None
    for r in doc.regions_in(det.box):
        if r.class_id == cid:
            inter = (r.window(det.box) & det.mask).sum()
            union = r.area + int(det.mask.sum()) - inter
            if union and inter / union >= 0.9:
                return r.id
    n = len(win.project.store.classes())
    r = doc.new_region(cid, det.mask.copy(), det.x, det.y, label=f"Accept {win.model_dock.info['name']}",
                       source=win.model_dock.info["name"], score=round(det.score, 4))
    if len(win.project.store.classes()) != n:
        win.classes_dock.refresh()
        win.classes_changed()
    return r.id if r is not None else None
