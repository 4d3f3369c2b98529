"""Decode every image of a project in full, and keep what fails on its image record.

A folder scan reads directory entries only, and most other paths read just a header, so a
truncated or corrupt file can go unnoticed until a model or an export meets it. `check_images`
finds them all at once: each file is decoded completely (on a few threads: the decoders
release the interpreter lock), a failure is stored as the image's error, and a full decode
that succeeds clears an error stored earlier (the file was replaced or repaired).

Memory is bounded by bytes, not by a count of files: every decode reserves what its header
says it will hold (imageio.decode_cost: pixels x samples x bytes per sample, plus the file)
from one MemoryBudget shared by the workers, and waits for room. A failure for want of memory
(an image bigger than the whole budget, or a MemoryError) says nothing about the file: it is
reported as not checked and never stored on the image.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from segstudio.core import imageio
from segstudio.core.memory import MemoryBudget, budget_for
from segstudio.core.project import Project
from segstudio.core.records import ImageRecord

Progress = Callable[[int, int, str], None]


@dataclass
class CheckReport:
    images: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    missing: list[str] = field(default_factory=list)  # registered, file gone
    not_checked: list[tuple[str, str]] = field(default_factory=list)  # (path, why): this machine, not the file
    budget: int = 0  # bytes the decoders could hold at once
    peak_reserved: int = 0  # the most they held
    most_at_once: int = 0  # the most images decoding at the same time

    @property
    def readable(self) -> int:
        return self.images - len(self.unreadable) - len(self.not_checked)

    def as_dict(self) -> dict:
        return {"images": self.images, "readable": self.readable,
                "unreadable": [{"path": p, "error": e} for p, e in self.unreadable],
                "not_checked": [{"path": p, "reason": e} for p, e in self.not_checked],
                "missing": list(self.missing),
                "memory_budget_bytes": self.budget, "memory_peak_reserved_bytes": self.peak_reserved,
                "most_decoding_at_once": self.most_at_once}


Outcome = tuple[ImageRecord, "tuple[int, int, str] | None", "str | None", "str | None"]


def _decode(project: Project, rec: ImageRecord, budget: MemoryBudget) -> Outcome:
    """(record, (w, h, hash) when it decodes, the file's error, a reason it was not checked)."""
    try:
        arr, digest = project.decode(rec, budget)
    except imageio.NotEnoughMemory as e:
        return rec, None, None, str(e)
    except imageio.ImageDecodeError as e:
        return rec, None, str(e), None
    h, w = arr.shape[:2]
    del arr  # only the verdict is kept
    return rec, (w, h, digest()), None, None


def check_images(project: Project, progress: Progress | None = None, workers: int | None = None,
                 memory: int | None = None) -> CheckReport:
    """Decode every registered image in full; store each failure (and clear healed ones).

    `memory`: bytes the decoders may hold at once (default: half of the memory available now).
    """
    project.scan()
    store = project.store
    records = store.images()
    report = CheckReport(images=len(records))
    report.missing = [r.path for r in store.images(include_missing=True) if r.missing]
    workers = workers or max(1, min(8, os.cpu_count() or 1))
    budget = MemoryBudget(memory) if memory else budget_for()
    report.budget = budget.total
    done = 0
    with ThreadPoolExecutor(workers, thread_name_prefix="segstudio-check") as pool:
        # a bounded window of files in flight (each waits for its share of the budget)
        window = workers * 2
        pending = [pool.submit(_decode, project, r, budget) for r in records[:window]]
        nxt = len(pending)
        while pending:
            rec, ok, err, skipped = pending.pop(0).result()
            if nxt < len(records):
                pending.append(pool.submit(_decode, project, records[nxt], budget))
                nxt += 1
            if skipped is not None:
                report.not_checked.append((rec.path, skipped))  # nothing stored: a verdict on memory
            elif err is not None:
                report.unreadable.append((rec.path, err))
                if rec.error != err:
                    store.set_error(rec.id, err)
            elif ok is not None and (rec.error is not None or rec.hash is None or (rec.width, rec.height) != ok[:2]):
                store.set_decoded(rec.id, *ok)
            done += 1
            if progress is not None:
                progress(done, len(records), rec.path)
    # a MemoryError may come from what the rest of the process held: each gets one more try alone
    retry, report.not_checked = report.not_checked, []
    for path, _why in retry:
        rec2 = store.image_by_path(path)
        if rec2 is None:
            continue
        _, ok, err, skipped = _decode(project, rec2, budget)
        if skipped is not None:
            report.not_checked.append((path, skipped))
        elif err is not None:
            report.unreadable.append((path, err))
            if rec2.error != err:
                store.set_error(rec2.id, err)
        elif ok is not None and (rec2.error is not None or rec2.hash is None or (rec2.width, rec2.height) != ok[:2]):
            store.set_decoded(rec2.id, *ok)
    report.peak_reserved, report.most_at_once = budget.peak, budget.most_holders
    return report
