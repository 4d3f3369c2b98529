"""A team's words in the window (gui/team_text.py) and review on a SQLite project, driven by keys."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from segstudio.core.records import ImageRecord
from segstudio.core.store.api import HistoryEntry
from segstudio.gui.team_text import history_row, history_words, local_time, locked_text, note_text, review_state

HOSTILE = "<b>x</b><script>alert(1)</script>"
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(what=st.sampled_from(["status", "regions", "review", "model", "claim", "other", ""]) | st.text(max_size=20),
       detail=st.dictionaries(st.sampled_from(["from", "to", "changed", "deleted", "accepted", "note", "source",
                                               "regions", "took_over", "open"]) | st.text(max_size=8),
                              json_values, max_size=6),
       at=st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10**30, 10**30))
def test_any_history_entry_reads_as_four_text_cells(what, detail, at):
    """A history row from a server someone else writes to: any shape reads as text, never an error."""
    cells = history_row(HistoryEntry(1, 1, "anna", at, what, detail))
    assert len(cells) == 4 and all(isinstance(c, str) for c in cells)


def test_history_in_words():
    def words(what, **d):
        return history_words(HistoryEntry(1, 1, "anna", 0.0, what, d))[1]
    assert words("status", **{"from": "new", "to": "done"}) == "status new → done"
    assert words("status", **{"from": "in_progress", "to": "done"}) == "status in progress → done"
    assert words("regions", changed=3, deleted=1) == "3 regions changed, 1 deleted"
    assert words("regions", changed=1, deleted=0) == "1 region changed"
    assert words("regions", changed=0, deleted=2) == "2 regions deleted"
    assert words("regions", changed="3", deleted=True) == "regions saved"  # not numbers: nothing made up
    assert words("review", accepted=False, note=HOSTILE) == f"returned: {HOSTILE}"
    assert words("review", accepted=True, note="") == "accepted"
    assert words("claim", took_over=["bob@h:1:a"]) == "took it over from bob"
    assert local_time(math.nan) == "nan" and local_time(1e300) == "1e+300"


def test_lock_notice_escapes_names_and_paths():
    text = locked_text(f"{HOSTILE}.png", [f"{HOSTILE}@host:12:ab"])
    assert "<script>" not in text and "&lt;script&gt;" in text and "is being edited by" in text


def test_review_state_and_note():
    rec = ImageRecord(1, "a.png", 10, 10, "done", None, False, None, None, None, None)
    assert review_state(rec, False) is None and review_state(rec, True) == "waiting"
    returned = ImageRecord(1, "a.png", 10, 10, "in_progress", None, False, None, None, "returned", HOSTILE)
    assert review_state(returned, True) == "returned"
    assert note_text(returned).startswith(f"Returned by the reviewer: {HOSTILE}")
    accepted = ImageRecord(1, "a.png", 10, 10, "done", None, False, None, None, "accepted", None)
    assert review_state(accepted, True) == "accepted" and note_text(accepted) is None


def test_review_on_a_sqlite_project_by_keys(window, qtbot):
    """SQLite: claims stay shared (nothing is read-only), review works the same from the Review menu."""
    win = window
    store, first = win.project.store, win.editor.doc.image_id
    assert not win.team.exclusive and win.team.listener is None and not win.session.read_only
    assert not win.team.accept_action.isEnabled()  # review is off
    win.team.review_toggle.trigger()
    assert store.review_enabled() and win.team.accept_action.isEnabled()
    win.canvas.setFocus()
    QTest.keyClick(win.canvas, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)  # done, next
    qtbot.waitUntil(lambda: win.editor.doc.image_id != first, timeout=5000)
    mods = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    QTest.keyClick(win.canvas, Qt.Key.Key_N, mods)  # next to review
    qtbot.waitUntil(lambda: win.editor.doc.image_id == first, timeout=5000)
    assert win.team.review_label.text() == "Review: waiting for review"
    QTest.keyClick(win.canvas, Qt.Key.Key_A, mods)  # accept
    assert store.image(first).review == "accepted" and win.team.review_label.text() == "Review: accepted"
    assert [r[3] for r in win.team.history.rows()][-2:] == ["status new → done", "accepted"]
    # the last image is the project's own setting on SQLite
    assert store.get_setting("last_image") == first
