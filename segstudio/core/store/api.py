"""The store as the layers above core see it: the `Store` protocol, the `StoreError` every backend
raises for its own failures, and the records its methods hand back. SQLite (store/sqlite.py) is one
backend; nothing here knows which one is in use.

The protocol names what io, inference, gui, cli, the self-test and the benchmarks use, plus what
core's Project, claims and class deletes need from a store (tests/core/test_store_protocol.py
keeps both sides honest: the SQLite store implements every member with the same signature, and no
module above core uses a store member that is not declared here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol, Sequence

from segstudio.core.classes import LabelClass
from segstudio.core.errors import UserError
from segstudio.core.owners import describe_owner
from segstudio.core.records import UNFINISHED, ImageRecord
from segstudio.core.region import Region


class StoreError(UserError):
    """The project store cannot be used or refused an operation (not a segstudio project, newer
    schema, damaged, locked, read-only); the message says which database and why. Backends wrap
    their own errors in it: callers never see a driver's exception type."""


class ClaimedElsewhere(StoreError):
    """A write to an image another owner holds open on a store whose claims are exclusive (a team's):
    nothing was written."""

    def __init__(self, image_id: int, owner: str):
        self.image_id, self.owner = image_id, owner
        super().__init__(f"image {image_id} is being edited by {describe_owner(owner)}; nothing was saved to it")


@dataclass(frozen=True)
class HistoryEntry:
    """One change to an image: who (the store's user), when (epoch seconds), what ("status",
    "regions", "review", "model", "claim") and its detail (e.g. {"from": "new", "to": "done"})."""

    id: int
    image_id: int
    who: str
    at: float
    what: str
    detail: dict


class Listener(Protocol):
    """A store's live feed of other clients' changes (`Store.listen`)."""

    def close(self) -> None: ...


@dataclass
class RemovedClass:
    """What `Store.remove_class` took out, enough for `Store.restore_class` to put it back."""

    cls: LabelClass
    position: int
    moved_to: int | None = None  # the class its regions went to; None: they were deleted
    moved: list[int] = field(default_factory=list)  # ids of the regions moved to `moved_to`
    deleted: list[tuple] = field(default_factory=list)  # full region rows (rows.REGION_COLUMNS order)
    reopened: dict[int, str] = field(default_factory=dict)  # image id -> status before in_progress

    @property
    def regions(self) -> int:
        return len(self.moved) if self.moved_to is not None else len(self.deleted)

    @property
    def images(self) -> int:
        return len({row[1] for row in self.deleted})

    @property
    def nbytes(self) -> int:
        return 256 + 8 * len(self.moved) + sum(128 + len(row[7]) for row in self.deleted)


@dataclass(frozen=True)
class ContainerInfo:
    """What a probe of a stack or video file found, kept with the file's size and mtime (a scan
    probes a file again only when they change, or while the last probe failed)."""

    path: str
    size: int
    mtime_ns: int
    frames: int  # 0 when the probe failed (error); 1 with kind "image": a single-image TIFF
    kind: str  # "video", "stack" or "image"
    width: int = 0
    height: int = 0
    error: str | None = None


class Store(Protocol):
    """A project's images, classes, regions, settings, model index and claims on open images.

    Every write is one transaction. Failures of the backend raise StoreError; a bad argument
    raises BadValue (core.errors); an unknown image id in `image` raises KeyError."""

    db_path: Path  # SQLite: the database file; other backends: their location as a Path (never opened as a file)
    location: str  # where the store is, to show and to hand to other processes (a path, or a URL without password)
    kind: str  # "sqlite" or "postgresql"
    user: str  # who this client writes as (PostgreSQL: the server's session user; SQLite: the OS login)
    exclusive_claims: bool  # True: an image one owner holds cannot be claimed or written by another (a team)

    def close(self) -> None: ...

    # ------------------------------------------------------------------ images
    def sync_files(self, found: Iterable[str], mark_missing: bool = True) -> tuple[int, int, int]: ...

    def image_count(self, include_missing: bool = False) -> int: ...

    def image(self, image_id: int) -> ImageRecord: ...

    def image_by_path(self, path: str) -> ImageRecord | None: ...

    def images(self, statuses: Sequence[str] | None = None, name_contains: str | None = None,
               include_missing: bool = False, order: str = "path", limit: int | None = None,
               offset: int = 0) -> list[ImageRecord]: ...

    def image_ids(self, statuses: Sequence[str] | None = None, name_contains: str | None = None,
                  include_missing: bool = False, order: str = "path",
                  unreadable: bool | None = None) -> list[int]: ...

    def images_by_ids(self, ids: Sequence[int]) -> dict[int, ImageRecord]: ...

    def status_counts(self, include_missing: bool = False) -> dict[str, int]: ...

    def missing_count(self) -> int: ...

    def missing_with_regions(self, statuses: Sequence[str] | None = None) -> list[tuple[str, int]]: ...

    def errors(self) -> list[tuple[str, str]]: ...

    def next_image(self, after_path: str | None, statuses: Sequence[str] | None = UNFINISHED,
                   backwards: bool = False, skip_claimed: str | None = None) -> ImageRecord | None: ...

    def set_status(self, image_ids: int | Iterable[int], status: str) -> None: ...

    def set_decoded(self, image_id: int, width: int, height: int, hash_: str | None) -> None: ...

    def set_error(self, image_id: int, error: str | None) -> None: ...

    def set_uncertainty(self, values: dict[int, float | None]) -> None: ...

    # ------------------------------------------------------------------ classes
    def classes(self) -> list[LabelClass]: ...

    def add_class(self, name: str, color: tuple[int, int, int] | None = None, hotkey: str = "",
                  ignore: bool = False) -> LabelClass: ...

    def ensure_class(self, name: str, color=None, ignore: bool = False) -> LabelClass: ...

    def update_class(self, cls: LabelClass) -> None: ...

    def move_class(self, class_id: int, new_index: int) -> None: ...

    def class_usage(self, class_id: int) -> tuple[int, int, int]: ...

    def remove_class(self, class_id: int, reassign_to: int | None = None) -> RemovedClass: ...

    def restore_class(self, removed: RemovedClass) -> LabelClass: ...

    # ------------------------------------------------------------------ regions
    def new_region_id(self) -> int: ...

    def reserve_region_ids(self, n: int) -> list[int]: ...

    def regions(self, image_id: int) -> list[Region]: ...

    def region_rows(self, image_id: int) -> list[tuple]: ...

    def region_count(self, image_id: int | None = None) -> int: ...

    def save_regions(self, image_id: int, upserts: Iterable[Region] = (), deletes: Iterable[int] = (),
                     status: str | None = None, owner: str | None = None) -> None: ...

    def container_info(self, path: str) -> ContainerInfo | None: ...

    def set_container_infos(self, infos: Iterable[ContainerInfo]) -> None: ...

    def set_frame_sizes(self, container: str, width: int, height: int) -> None: ...

    def move_annotations(self, from_id: int, to_id: int) -> bool: ...

    def max_z(self, image_id: int) -> int: ...

    def replace_source_regions_many(self, entries: Iterable[dict],
                                    only_statuses: Sequence[str] | None = None,
                                    claim_owner: str | None = None) -> list[int]: ...

    def region_keys(self, image_id: int) -> set[tuple]: ...

    def regions_per_class(self) -> dict[int, int]: ...

    def area_per_class(self, statuses: Sequence[str] | None = None) -> dict[int, int]: ...

    def sources(self) -> dict[str, int]: ...

    def image_ids_with_source(self, source: str) -> list[int]: ...

    # ------------------------------------------------------------------ settings and models
    def get_setting(self, key: str, default=None): ...

    def set_setting(self, key: str, value) -> None: ...

    def add_model(self, path: str, kind: str, metrics: dict | None = None) -> None: ...

    def done_fingerprint(self) -> tuple: ...

    def last_done_path(self) -> str | None: ...

    def remove_model(self, path: str) -> None: ...

    def models(self) -> list[dict]: ...

    def take_number(self, name: str, floor: int = 1) -> int: ...

    # ------------------------------------------------------------------ claims on open images
    def claim_image(self, image_id: int, owner: str, ttl: float) -> list[str]: ...

    def release_image(self, image_id: int | None, owner: str) -> None: ...

    def renew_claims(self, owner: str, ttl: float) -> int: ...

    def image_holders(self, image_id: int, except_owner: str | None = None) -> list[str]: ...

    def claimed_images(self, image_ids: Iterable[int] | None = None,
                       except_owner: str | None = None) -> dict[int, str]: ...

    def take_over(self, image_id: int, owner: str, ttl: float) -> list[str]: ...

    # ------------------------------------------------------------------ a team: review, history, live view, copy
    def review_enabled(self) -> bool: ...

    def set_review_enabled(self, on: bool) -> None: ...

    def review_image(self, image_id: int, accept: bool, note: str = "") -> None: ...

    def review_counts(self) -> dict[str, int]: ...

    def next_for_review(self, after_path: str | None, skip_claimed: str | None = None) -> ImageRecord | None: ...

    def history(self, image_id: int | None = None, who: str | None = None,
                limit: int | None = None) -> list[HistoryEntry]: ...

    def listen(self, on_event: Callable[[dict], None]) -> Listener | None: ...

    def table_rows(self, table: str) -> tuple[list[str], list[tuple]]: ...

    def load_rows(self, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> None: ...


def protocol_members() -> frozenset[str]:
    """The names the Store protocol declares (methods and attributes)."""
    names = set(getattr(Store, "__annotations__", {}))
    names.update(n for n, v in vars(Store).items() if callable(v) and not n.startswith("_"))
    return frozenset(names)
