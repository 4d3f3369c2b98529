"""Which images count as finished work when a project has review on: a done image is an annotator's
claim that it is right; with review on, only a reviewer's accept makes it so. Export (by default)
and training take accepted images then; without review, done images as always.

`ACCEPTED` is a selector, not a status: in a list of statuses it stands for "done and accepted".
"""

from __future__ import annotations

from typing import Sequence

from segstudio.core.records import DONE, ImageRecord

ACCEPTED = "accepted"


def default_export_statuses(store) -> tuple[str, ...]:
    """What an export takes when the person named no statuses."""
    return (ACCEPTED,) if store.review_enabled() else (DONE,)


def store_statuses(statuses: Sequence[str] | None) -> list[str] | None:
    """The real statuses to ask the store for (ACCEPTED is done ones, filtered after)."""
    if statuses is None:
        return None
    return sorted({DONE if s == ACCEPTED else s for s in statuses})


def keep(record: ImageRecord, statuses: Sequence[str] | None) -> bool:
    """Whether a record of the store's answer to `store_statuses(statuses)` is selected."""
    if statuses is None or record.status in statuses:
        return True
    return ACCEPTED in statuses and record.status == DONE and record.review == ACCEPTED


def select_images(store, statuses: Sequence[str] | None) -> list[ImageRecord]:
    """The images (not missing) with these statuses, ACCEPTED meaning done and accepted; by path."""
    return [r for r in store.images(statuses=store_statuses(statuses)) if keep(r, statuses)]


def select_ids(store, statuses: Sequence[str] | None) -> list[int]:
    if statuses is None or ACCEPTED not in statuses:
        return store.image_ids(statuses=statuses)
    return [r.id for r in select_images(store, statuses)]


def missing_with_regions(store, statuses: Sequence[str] | None) -> list[tuple[str, int]]:
    """store.missing_with_regions for a selector that may hold ACCEPTED."""
    found = store.missing_with_regions(store_statuses(statuses))
    if statuses is None or ACCEPTED not in statuses:
        return found
    chosen = {r.path for r in store.images(statuses=store_statuses(statuses), include_missing=True)
              if r.missing and keep(r, statuses)}
    return [(path, n) for path, n in found if path in chosen]


def left_out_unaccepted(store, statuses: Sequence[str] | None) -> int:
    """Done images an export of `statuses` leaves out because no reviewer accepted them yet."""
    if statuses is None or DONE in statuses or ACCEPTED not in statuses:
        return 0
    return sum(1 for r in store.images(statuses=(DONE,)) if r.review != ACCEPTED)


def trainable(store) -> tuple[str, ...]:
    """The selector of the images a model learns from: done, or done and accepted with review on."""
    return (ACCEPTED,) if store.review_enabled() else (DONE,)


def trainable_ids(store) -> list[int]:
    return select_ids(store, trainable(store))


def learn_fingerprint(store) -> tuple:
    """What a live learner watches: the count of trainable images first (nothing to learn from at 0),
    then what changes whenever the done images, their regions or (with review on) the accepts change."""
    if store.review_enabled():
        accepted = store.review_counts()["accepted"]
        return (accepted, *store.done_fingerprint(), accepted)
    fp = store.done_fingerprint()
    return (fp[0], *fp)
