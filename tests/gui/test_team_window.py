"""Two windows on one PostgreSQL project, driven with real mouse and key events (issue 27's "done
when"): an image one annotator edits is read-only in the other window, each sees the other's
changes within 2 s (LISTEN/NOTIFY), N never hands out an image someone else has open, and a review
round goes through. Each window is its own Project and store connection, under its own login role."""

from __future__ import annotations

import html
import uuid
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

psycopg = pytest.importorskip("psycopg")

LIVE_MS = 2000  # the bound for another client's change to show
HOSTILE = "<b>x</b><script>alert(1)</script>"
CTRL, SHIFT = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier


def view_point(win, x, y) -> QPoint:
    return win.canvas.mapFromScene(QPointF(x, y))


def drag(win, pts) -> None:
    vp, left, none = win.canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    QTest.mousePress(vp, left, none, view_point(win, *pts[0]))
    for p in pts[1:]:
        QTest.mouseMove(vp, view_point(win, *p))
    QTest.mouseRelease(vp, left, none, view_point(win, *pts[-1]))


def key(win, k, mods=Qt.KeyboardModifier.NoModifier) -> None:
    """A key on the window's canvas, the window active first (its shortcuts answer only then)."""
    if not win.isActiveWindow():
        win.activateWindow()
        QTest.qWaitForWindowActive(win, 2000)
    win.canvas.setFocus()
    QTest.keyClick(win.canvas, k, mods)


def shown(win) -> int | None:
    return win.editor.doc.image_id if win.editor.doc is not None else None


def status_cell(win, image_id: int) -> str:
    m = win.files.model
    return m.data(m.index(m.row(image_id), 1))


@pytest.fixture
def team(pg_url, gui_folder):
    """A project on a fresh database; an annotator whose role name is markup, and a reviewer."""
    from psycopg import sql

    from segstudio.core.project import Project
    from segstudio.core.store import pg_schema
    tag = uuid.uuid4().hex[:6]
    anna, rita = f"<i>anna</i>{tag}", f"rita_{tag}"
    with psycopg.connect(pg_url, autocommit=True) as c:
        for role in (anna, rita):
            c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    lead = Project.open(gui_folder, store=pg_url)
    lead.store.add_class("object")
    pg_schema.setup_roles(lead.store.conn)
    pg_schema.add_member(lead.store.conn, anna, "annotator")
    pg_schema.add_member(lead.store.conn, rita, "reviewer")
    lead.store.set_review_enabled(True)
    user, rest = pg_url.split("://", 1)[1].split("@", 1)

    def url(role: str) -> str:
        return f"postgresql://{quote(role, safe='')}@{rest}"

    ids = lead.store.image_ids()
    ns = SimpleNamespace(folder=gui_folder, lead=lead, lead_url=pg_url, anna=anna, anna_url=url(anna),
                         rita=rita, rita_url=url(rita), ids=ids, windows=[])
    yield ns
    for win in ns.windows:  # before their roles and database go
        win.close()
    lead.store.close()
    with psycopg.connect(pg_url, autocommit=True) as c:  # the roles are the server's: gone with the test
        for role in (anna, rita):
            try:
                c.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                c.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
            except psycopg.Error:
                pass


def team_window(qtbot, team, url, size=(1100, 720)):
    from segstudio.core.project import Project
    from segstudio.gui.main_window import MainWindow
    from segstudio.gui.settings import app_settings
    win = MainWindow(Project.open(team.folder, store=url), app_settings())
    qtbot.addWidget(win)
    team.windows.append(win)
    win.resize(*size)
    win.show()
    win.open_first()
    qtbot.waitUntil(lambda: win.editor.doc is not None, timeout=10000)
    assert win.team.listener is not None and win.team.listener.listening.wait(5)
    return win


def test_two_windows_claims_live_view_and_a_review_round(team, qtbot):
    first, second, third = team.ids
    a = team_window(qtbot, team, team.anna_url)  # the annotator: opens the first image, holds it
    b = team_window(qtbot, team, team.rita_url)  # the reviewer: the same image, read-only
    assert shown(a) == shown(b) == first
    assert not a.session.read_only and b.session.read_only
    assert f"on {a.project.store.location}" in a.windowTitle()  # which server the edits go to
    assert b.team.lock_bar.isVisible() and not a.team.lock_bar.isVisible()
    text = b.team.lock_bar.text.text()
    assert "is being edited by" in text and html.escape(team.anna) in text and team.anna not in text  # plain
    assert not any(act.isEnabled() for act in b.edit_actions)
    # B's brush drag changes nothing: no region in its window, none in the store
    b.set_tool("brush")
    b.brush_spin.setValue(5)
    drag(b, [(20, 20), (50, 20), (60, 30)])
    assert not b.editor.doc.regions and "Read-only" in b.statusBar().currentMessage()
    # A paints: the store has it, and B (read-only) shows it within 2 s
    a.set_tool("brush")
    a.brush_spin.setValue(5)
    drag(a, [(20, 20), (50, 20), (60, 30)])
    assert len(a.editor.doc.regions) == 1
    qtbot.waitUntil(lambda: team.lead.store.region_count(first) == 1, timeout=3000)
    qtbot.waitUntil(lambda: len(b.editor.doc.regions) == 1, timeout=LIVE_MS)
    assert "open by" in status_cell(b, first) or b.session.read_only  # the Files list marks who edits it
    # A marks it done (Ctrl+Enter) and goes on: B sees the status within 2 s, and the image is B's to edit
    a.canvas.setFocus()
    key(a, Qt.Key.Key_Return, CTRL)
    qtbot.waitUntil(lambda: shown(a) == second, timeout=5000)
    qtbot.waitUntil(lambda: status_cell(b, first).startswith("done"), timeout=LIVE_MS)
    qtbot.waitUntil(lambda: not b.session.read_only, timeout=LIVE_MS)
    assert "waiting for review" in status_cell(b, first) and b.team.review_label.text() == "Review: waiting for review"
    assert not b.team.lock_bar.isVisible() and all(act.isEnabled() for act in b.edit_actions)
    # N in B passes over the image A holds (the second) to the third
    b.canvas.setFocus()
    key(b, Qt.Key.Key_N)
    qtbot.waitUntil(lambda: shown(b) == third, timeout=5000)
    # the reviewer: Next to review opens the done image; Return with note… asks for the note
    key(b, Qt.Key.Key_N, CTRL | SHIFT)
    qtbot.waitUntil(lambda: shown(b) == first, timeout=5000)
    key(b, Qt.Key.Key_R, CTRL | SHIFT)
    dlg = b.team.return_dialog
    assert dlg is not None and dlg.isVisible() and not dlg.ok_button.isEnabled()  # a note is required
    QTest.keyClicks(dlg.edit, HOSTILE)
    assert dlg.ok_button.isEnabled()
    QTest.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    rec = team.lead.store.image(first)
    assert (rec.status, rec.review, rec.note) == ("in_progress", "returned", HOSTILE)
    key(b, Qt.Key.Key_N)  # B moves on to an unfinished image nobody has open (the third)
    qtbot.waitUntil(lambda: shown(b) == third, timeout=5000)
    # A sees the returned image in its list within 2 s, opens it with a click, reads the note as text
    qtbot.waitUntil(lambda: "returned" in status_cell(a, first), timeout=LIVE_MS)
    row = a.files.model.row(first)
    QTest.mouseClick(a.files.view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     a.files.view.visualRect(a.files.model.index(row, 0)).center())
    qtbot.waitUntil(lambda: shown(a) == first, timeout=5000)
    assert not a.session.read_only and a.team.note_bar.isVisible()
    assert a.team.note_bar.text.textFormat() == Qt.TextFormat.PlainText and HOSTILE in a.team.note_bar.text.text()
    # A fixes it and marks it done again: waiting for review once more
    drag(a, [(80, 80), (100, 90)])
    a.canvas.setFocus()
    key(a, Qt.Key.Key_Return, CTRL)
    qtbot.waitUntil(lambda: shown(a) != first, timeout=5000)
    qtbot.waitUntil(lambda: team.lead.store.image(first).status == "done", timeout=3000)
    assert team.lead.store.image(first).review is None
    # the reviewer accepts it (Ctrl+Shift+N, Ctrl+Shift+A); A's list says so within 2 s
    b.canvas.setFocus()
    key(b, Qt.Key.Key_N, CTRL | SHIFT)
    qtbot.waitUntil(lambda: shown(b) == first, timeout=5000)
    key(b, Qt.Key.Key_A, CTRL | SHIFT)
    assert team.lead.store.image(first).review == "accepted"
    qtbot.waitUntil(lambda: "accepted" in status_cell(a, first), timeout=LIVE_MS)
    # the History panel: who did what, in words, the hostile note as literal text
    rows = b.team.history.rows()
    details = [r[3] for r in rows]
    assert f"returned: {HOSTILE}" in details and "accepted" in details
    assert "status new → in progress" in details and details.count("status in progress → done") == 2
    assert any(r[1] == team.anna and r[2] == "regions" and r[3] == "1 region changed" for r in rows)
    assert {r[1] for r in rows if r[2] == "review"} == {team.rita}


def test_lead_takes_over_and_the_annotator_keeps_its_edits(team, qtbot):
    first = team.ids[0]
    a = team_window(qtbot, team, team.anna_url)
    lead = team_window(qtbot, team, team.lead_url)
    assert shown(lead) == first and lead.session.read_only
    a.session.timer.stop()  # A's stroke stays unsaved until Ctrl+S, after the take-over
    a.set_tool("brush")
    drag(a, [(20, 20), (50, 20)])
    QTest.mouseClick(lead.team.take_over_button, Qt.MouseButton.LeftButton)
    assert not lead.session.read_only and not lead.team.lock_bar.isVisible()
    qtbot.waitUntil(lambda: a.session.read_only, timeout=LIVE_MS)  # A's window follows the take-over
    assert a.team.lock_bar.isVisible() and len(a.editor.doc.regions) == 1  # its edit is still in memory
    key(a, Qt.Key.Key_S, CTRL)  # the store refuses the save (ClaimedElsewhere): said, kept, no crash
    assert "being edited by" in a.save_label.text() and a.save_label.textFormat() == Qt.TextFormat.PlainText
    assert team.lead.store.region_count(first) == 0 and a.session.unsaved_images()
    assert "●" in a.windowTitle()
    a.session.discard_unsaved()  # the test's end: nothing to ask about when the window closes


def test_an_annotator_cannot_turn_review_off_or_take_over(team, qtbot):
    a = team_window(qtbot, team, team.anna_url)
    b = team_window(qtbot, team, team.rita_url)
    assert a.team.review_toggle.isChecked()
    a.team.review_toggle.trigger()  # the menu's checkable action, as a click on it
    assert a.team.review_toggle.isChecked() and team.lead.store.review_enabled()
    assert "Could not turn review off" in a.statusBar().currentMessage()
    QTest.mouseClick(b.team.take_over_button, Qt.MouseButton.LeftButton)  # a reviewer is no lead
    assert b.session.read_only and "Could not take over" in b.statusBar().currentMessage()
    # an annotator's window keeps its last image in its own settings, not in the lead's table
    assert team.lead.store.get_setting("last_image") is None
    assert a.team.last_image() == a.editor.doc.image_id


def test_live_classes_and_a_server_restart(team, qtbot, pg_cluster):
    """A class the lead adds shows in an annotator's window by itself (its markup as text); a server
    restart says 'reconnecting…' in the status bar and, once back, the window reads the project again."""
    a = team_window(qtbot, team, team.anna_url)
    team.lead.store.add_class(HOSTILE)

    def names() -> list[str]:
        return [a.classes_dock.list.item(i).text() for i in range(a.classes_dock.list.count())]
    qtbot.waitUntil(lambda: any(HOSTILE in n for n in names()), timeout=LIVE_MS)
    first = team.ids[0]
    team.lead.store.close()
    pg_cluster.restart()
    qtbot.waitUntil(lambda: a.team.link_label.isVisible(), timeout=5000)
    assert "reconnecting" in a.team.link_label.text()
    qtbot.waitUntil(lambda: not a.team.link_label.isVisible(), timeout=10000)
    team.lead.store.set_status(team.ids[1], "skipped")  # a commit after the restart shows within 2 s
    qtbot.waitUntil(lambda: status_cell(a, team.ids[1]).startswith("skipped"), timeout=LIVE_MS)
    assert shown(a) == first and not a.session.read_only


def test_opening_the_same_folder_again_keeps_the_teams_store(team, qtbot):
    """File > Open folder on the folder a team's window shows: the server's project again, not the
    SQLite file a copy may have left beside the images."""
    a = team_window(qtbot, team, team.anna_url)
    location = a.project.store.location
    b = a.open_folder(str(team.folder))  # what Ctrl+O does once its folder dialog has answered
    assert b is not None
    qtbot.addWidget(b)
    try:
        assert b.project.store.kind == "postgresql" and b.project.store.location == location
        assert f"as {b.project.store.user}" in b.windowTitle()
    finally:
        b.close()
        b.project.close()
