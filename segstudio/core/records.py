"""Image records: one file of the project folder and where its annotation stands."""

from __future__ import annotations

from dataclasses import dataclass

from segstudio.core.errors import BadValue

NEW, PREDICTED, IN_PROGRESS, DONE, SKIPPED = "new", "predicted", "in_progress", "done", "skipped"
STATUSES = (NEW, PREDICTED, IN_PROGRESS, DONE, SKIPPED)
UNFINISHED = (NEW, PREDICTED, IN_PROGRESS)


def parse_statuses(text: str | None) -> tuple[str, ...] | None:
    """'done,predicted' -> ('done', 'predicted'); None/'' -> None (all). Raises on unknown names."""
    if not text:
        return None
    out = tuple(s.strip().replace("-", "_") for s in text.split(",") if s.strip())
    bad = [s for s in out if s not in STATUSES]
    if bad:
        raise BadValue(f"unknown status {', '.join(bad)}; use {', '.join(STATUSES)}")
    return out


@dataclass(frozen=True)
class ImageRecord:
    id: int
    path: str  # relative to the project folder, '/' separated
    width: int | None  # after EXIF orientation; None until first read
    height: int | None
    status: str = NEW
    error: str | None = None
    missing: bool = False
    hash: str | None = None
    uncertainty: float | None = None
    review: str | None = None  # None (not reviewed: waiting when done and review is on), "accepted", "returned"
    note: str | None = None  # the reviewer's note (why it was returned)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]
