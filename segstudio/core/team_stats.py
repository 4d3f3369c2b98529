"""Who did what, from a project's history (`store.history()`): per person, the images they marked
done, the regions they changed, their active time, the returns of their work, and their reviews.

Active time is the sum of the gaps between a person's consecutive events that are at most
`IDLE_S` apart: a longer gap is a pause (lunch, another task) and counts nothing. Model runs
("model" events: a folder predicted in one go) are not a person's pace, and opening an image
("claim") changes nothing: neither counts time.
A return is charged to whoever marked the image done last before the reviewer returned it.
History is read as hostile (another client, a copied file wrote it): an event with a time that
is not a finite number, or a detail of the wrong type, counts as little as it can.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable

from segstudio.core.records import DONE
from segstudio.core.store.api import HistoryEntry

IDLE_S = 300.0  # a gap longer than five minutes is a pause


@dataclass
class PersonStats:
    who: str
    done: int = 0  # distinct images this person marked done
    regions: int = 0  # regions saved or deleted by hand (model runs are not counted)
    active_s: float = 0.0
    returns: int = 0  # review returns of images this person had marked done
    reviewed: int = 0  # reviews this person made (accepted + returned)
    accepted: int = 0  # of them, accepts
    events: int = 0
    first: float | None = None
    last: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _count(value) -> int:
    """A count from a detail: a non-negative int, anything else 0 (bool is not a count)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def by_user(history: Iterable[HistoryEntry], idle_s: float = IDLE_S) -> list[PersonStats]:
    """Per person, sorted by name. `history` in any order (it is sorted by time, then id)."""
    events = [e for e in history if isinstance(e.at, (int, float)) and math.isfinite(e.at)]
    events.sort(key=lambda e: (e.at, e.id))
    people: dict[str, PersonStats] = {}
    done_images: dict[str, set[int]] = {}
    last_active: dict[str, float] = {}
    marked_by: dict[int, str] = {}  # image -> who marked it done last
    for e in events:
        p = people.get(e.who)
        if p is None:
            p = people[e.who] = PersonStats(e.who)
        p.events += 1
        p.first = e.at if p.first is None else p.first
        p.last = e.at
        detail = e.detail if isinstance(e.detail, dict) else {}
        if e.what not in ("model", "claim"):  # a model's writes and opening an image are no one's changes
            prev = last_active.get(e.who)
            if prev is not None and 0 <= e.at - prev <= idle_s:
                p.active_s += e.at - prev
            last_active[e.who] = e.at
        if e.what == "status" and detail.get("to") == DONE:
            done_images.setdefault(e.who, set()).add(e.image_id)
            marked_by[e.image_id] = e.who
        elif e.what == "regions":
            p.regions += _count(detail.get("changed")) + _count(detail.get("deleted"))
        elif e.what == "review":
            p.reviewed += 1
            if detail.get("accepted") is True:
                p.accepted += 1
            else:
                owner = marked_by.get(e.image_id)
                if owner is not None:
                    people[owner].returns += 1
    for who, images in done_images.items():
        people[who].done = len(images)
    return [people[k] for k in sorted(people)]


def format_duration(seconds: float) -> str:
    """1h 02m, 12m 05s, 40s."""
    s = int(round(max(0.0, seconds)))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h}h {m:02d}m"
    if m:
        return f"{m}m {sec:02d}s"
    return f"{sec}s"
