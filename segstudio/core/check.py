"""Decode every image of a project in full, and keep what fails on its image record.

A folder scan reads directory entries only, and most other paths read just a header, so a
truncated or corrupt file can go unnoticed until a model or an export meets it. `check_images`
finds them all at once: each file is decoded completely (on a few threads: the decoders
release the interpreter lock), a failure is stored as the image's error, and a full decode
that succeeds clears an error stored earlier (the file was replaced or repaired).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from segstudio.core import imageio
from segstudio.core.project import Project
from segstudio.core.records import ImageRecord

Progress = Callable[[int, int, str], None]


@dataclass
class CheckReport:
    images: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    missing: list[str] = field(default_factory=list)  # registered, file gone

    @property
    def readable(self) -> int:
        return self.images - len(self.unreadable)

    def as_dict(self) -> dict:
        return {"images": self.images, "readable": self.readable,
                "unreadable": [{"path": p, "error": e} for p, e in self.unreadable],
                "missing": list(self.missing)}


def _decode(project: Project, rec: ImageRecord) -> tuple[ImageRecord, tuple[int, int, str] | None, str | None]:
    try:
        data = imageio.read_bytes(project.abspath(rec))
        arr = imageio.decode_image(project.abspath(rec), allow_large=project.allow_large, data=data)
    except imageio.ImageDecodeError as e:
        return rec, None, str(e)
    h, w = arr.shape[:2]
    del arr  # only the verdict is kept: memory stays at one image per thread
    return rec, (w, h, imageio.content_hash(data)), None


def check_images(project: Project, progress: Progress | None = None, workers: int | None = None) -> CheckReport:
    """Decode every registered image in full; store each failure (and clear healed ones)."""
    project.scan()
    store = project.store
    records = store.images()
    report = CheckReport(images=len(records))
    report.missing = [r.path for r in store.images(include_missing=True) if r.missing]
    workers = workers or max(1, min(8, os.cpu_count() or 1))
    done = 0
    with ThreadPoolExecutor(workers, thread_name_prefix="segstudio-check") as pool:
        # a bounded window of files in flight: memory is a few decoded images, not the folder
        window = workers * 2
        pending = [pool.submit(_decode, project, r) for r in records[:window]]
        nxt = len(pending)
        while pending:
            rec, ok, err = pending.pop(0).result()
            if nxt < len(records):
                pending.append(pool.submit(_decode, project, records[nxt]))
                nxt += 1
            if err is not None:
                report.unreadable.append((rec.path, err))
                if rec.error != err:
                    store.set_error(rec.id, err)
            elif ok is not None and (rec.error is not None or rec.hash is None or (rec.width, rec.height) != ok[:2]):
                store.set_decoded(rec.id, *ok)
            done += 1
            if progress is not None:
                progress(done, len(records), rec.path)
    return report
