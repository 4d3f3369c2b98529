"""A team's project in words: an image's review state, a history entry, who edits an image.

What these read is other people's input (user names, notes, class names, a history row's detail
from a server someone else writes to): a notice that is rich text escapes every piece of it, and
the rest is shown as plain text. A detail of an unexpected shape reads as what it holds, never as
an error."""

from __future__ import annotations

import html
import json
import time

from segstudio.core.claims import describe_owner, owner_user
from segstudio.core.records import DONE, ImageRecord
from segstudio.core.store.api import HistoryEntry

WAITING, ACCEPTED, RETURNED = "waiting", "accepted", "returned"
REVIEW_WORDS = {WAITING: "waiting for review", ACCEPTED: "accepted", RETURNED: "returned"}
CELL_MAX = 500  # characters of one history cell: a 10,000-character note stays readable in its tooltip


def review_state(rec: ImageRecord, review_on: bool) -> str | None:
    """'waiting', 'accepted', 'returned' or None (review off, or not done yet)."""
    if not review_on:
        return None
    if rec.review == RETURNED:
        return RETURNED
    if rec.status == DONE:
        return ACCEPTED if rec.review == ACCEPTED else WAITING
    return None


def holders_words(holders: list[str]) -> str:
    """'anna' for the people editing an image ('process 12 on host' for an owner without a user)."""
    return ", ".join(dict.fromkeys(owner_user(h) or describe_owner(h) for h in holders))


def locked_text(path: str, holders: list[str]) -> str:
    """The notice of an image another person edits (rich text: every name escaped)."""
    who = html.escape(holders_words(holders))
    detail = html.escape(", ".join(describe_owner(h) for h in holders))
    return (f"<b>{html.escape(path)} is being edited by {who}</b> ({detail}). It is read-only here: "
            "tools, undo and saving are off until they move on (then it becomes editable by itself). "
            "<b>N</b> opens the next unfinished image nobody edits.")


def note_text(rec: ImageRecord) -> str | None:
    """The reviewer's note on an image, for a plain-text strip (None: no note to show)."""
    if not rec.note:
        return None
    if rec.review == RETURNED:
        return f"Returned by the reviewer: {rec.note}\nFix it and mark it done again (Ctrl+Enter)."
    if rec.review == ACCEPTED:
        return f"Accepted, with a note: {rec.note}"
    return None


def local_time(at: float) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
    except (OverflowError, ValueError, OSError, TypeError):
        return str(at)


def _n(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _s(value: object) -> str:
    return (value if isinstance(value, str) else "" if value is None else str(value)).replace("_", " ")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def history_words(e: HistoryEntry) -> tuple[str, str]:
    """(what, detail) of a history entry in words: ('status', 'new → done'), ('regions', '3 regions
    changed, 1 deleted'), ('review', 'returned: the note'), ('review', 'accepted')."""
    d = e.detail
    if e.what == "status":
        return "status", f"status {_s(d.get('from')) or '?'} → {_s(d.get('to')) or '?'}"
    if e.what == "regions":
        changed, deleted = _n(d.get("changed")), _n(d.get("deleted"))
        parts = ([f"{_plural(changed, 'region')} changed"] if changed else []) + \
            ([f"{deleted} deleted" if changed else f"{_plural(deleted, 'region')} deleted"] if deleted else [])
        return "regions", ", ".join(parts) or "regions saved"
    if e.what == "review":
        note = _s(d.get("note")) if d.get("note") else ""
        if d.get("accepted") is True:
            return "review", "accepted" + (f": {note}" if note else "")
        return "review", f"returned: {note}" if note else "returned"
    if e.what == "model":
        return "model", f"model {_s(d.get('source')) or '?'}: {_plural(_n(d.get('regions')), 'region')}"
    if e.what == "claim":
        gone = d.get("took_over")
        if isinstance(gone, list):
            return "claim", "took it over" + (f" from {holders_words([str(g) for g in gone])}" if gone else "")
        return "claim", "opened it to edit"
    try:
        text = json.dumps(d, ensure_ascii=False)
    except (TypeError, ValueError):
        text = ""
    return _s(e.what), text


def history_row(e: HistoryEntry) -> tuple[str, str, str, str]:
    """(time, who, what, detail) of one entry, each cell plain text of bounded length."""
    what, detail = history_words(e)
    return local_time(e.at), e.who[:CELL_MAX], what[:CELL_MAX], detail


def cell(text: str) -> str:
    return text if len(text) <= CELL_MAX else text[:CELL_MAX] + "…"
