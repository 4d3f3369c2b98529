"""The window on a team's project (a store with exclusive claims: PostgreSQL): an image someone else
edits opens read-only with a notice; review (accept, return with a note, the note on the image);
the History panel; and the live view, other clients' commits arriving through the store's listener.

On a SQLite project most of this stays quiet: claims are shared (the "also open in another window"
notice), there is no listener, and review works the same when it is turned on.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QBoxLayout, QDockWidget, QLabel, QToolButton, QWidget

from segstudio.core.claims import TTL_S, owner_user
from segstudio.core.errors import UserError
from segstudio.core.records import DONE, ImageRecord
from segstudio.gui import status_times
from segstudio.gui.history_panel import HistoryPanel
from segstudio.gui.notices import NoticeBar
from segstudio.gui.review_dialog import ReturnDialog
from segstudio.gui.signals import connect_plain
from segstudio.gui.team_text import REVIEW_WORDS, locked_text, note_text, review_state
from segstudio.gui.window_menus import add_action

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMenuBar, QStatusBar

    from segstudio.core.project import Project
    from segstudio.core.store.api import Listener
    from segstudio.gui.canvas import Canvas
    from segstudio.gui.docks.classes import ClassesDock
    from segstudio.gui.docks.files import FilesDock
    from segstudio.gui.session import Session
    from segstudio.gui.window_menus import MenuWindow

log = logging.getLogger(__name__)

EVENT_BATCH_MS = 80  # a save of many regions notifies once per row: handle them together, a moment later
LAST_IMAGE_KEY = "team/last_image/"  # QSettings, per store location: a team's settings table is the lead's


class TeamWindow(Protocol):
    """The main window (gui/main_window.py) as this module sees it (it imports this module)."""

    @property
    def project(self) -> Project: ...
    @property
    def session(self) -> Session: ...
    @property
    def canvas(self) -> Canvas: ...
    @property
    def files(self) -> FilesDock: ...
    @property
    def classes_dock(self) -> ClassesDock: ...
    @property
    def settings(self) -> QSettings: ...
    @property
    def model_dw(self) -> QDockWidget: ...
    @property
    def regions_dw(self) -> QDockWidget: ...
    edit_actions: list[QAction]
    menus: list
    def statusBar(self) -> QStatusBar: ...
    def menuBar(self) -> QMenuBar: ...
    def centralWidget(self) -> QWidget | None: ...
    def addDockWidget(self, area: Qt.DockWidgetArea, dock: QDockWidget) -> None: ...
    def tabifyDockWidget(self, first: QDockWidget, second: QDockWidget) -> None: ...
    def update_title(self, note: str | None = None) -> None: ...
    def open_image(self, image_id: int) -> None: ...
    def classes_changed(self) -> None: ...


class TeamView(QObject):
    # a store event, handed from the listener's thread to the GUI thread (a queued connection)
    store_event = Signal(object)

    def __init__(self, win: TeamWindow, menu_window: MenuWindow, widget: QWidget) -> None:
        super().__init__(widget)
        self.win, self.menu_window, self.widget = win, menu_window, widget  # the same window, three ways
        self.store = win.project.store
        self.session = win.session
        self.owner = self.session.claim.owner
        self.exclusive = bool(self.store.exclusive_claims)
        self._build_notices()
        self._build_review_menu()
        self._build_history()
        self.review_label = QLabel("")
        self.review_label.setObjectName("review_state")
        self.review_label.setTextFormat(Qt.TextFormat.PlainText)
        win.statusBar().addPermanentWidget(self.review_label)
        self.link_label = QLabel("")
        self.link_label.setObjectName("store_link")
        self.link_label.setTextFormat(Qt.TextFormat.PlainText)
        self.link_label.setStyleSheet("color: #d03030; font-weight: bold")
        self.link_label.hide()
        win.statusBar().addPermanentWidget(self.link_label)
        win.canvas.refuse_edit = self.refuse_edit
        self.claimed: dict[int, str] = {}  # image id -> another owner editing it (the Files list's marker)
        win.files.model.marker = self.marker
        self.review_on = self._read_review_on()
        self._pending: dict[str, set[int]] = {}
        self._batch = QTimer(self)
        self._batch.setSingleShot(True)
        self._batch.setInterval(EVENT_BATCH_MS)
        self._batch.timeout.connect(self._handle_batch)
        self.store_event.connect(self._queue, Qt.ConnectionType.QueuedConnection)
        self.listener: Listener | None = None
        self.closed = False
        if self.exclusive:
            self._read_claims()
            try:
                self.listener = self.store.listen(self.store_event.emit)  # runs on the listener's thread
            except UserError as e:
                log.warning("no live view of the other clients' changes: %s", e)
        self.sync_review_actions()

    # ================================================================= construction
    def _build_notices(self) -> None:
        win = self.win
        self.lock_bar = NoticeBar("claim_notice", "triangle-alert", "error")
        self.take_over_button = QToolButton()
        self.take_over_button.setObjectName("take_over")
        self.take_over_button.setText("Take over")
        self.take_over_button.setToolTip("A lead takes the image: the other window can no longer save to it")
        connect_plain(self.take_over_button.clicked, self.take_over)
        bar_layout = self.lock_bar.layout()
        assert isinstance(bar_layout, QBoxLayout)  # NoticeBar lays out its icon, text and button in a row
        bar_layout.addWidget(self.take_over_button)
        self.note_bar = NoticeBar("review_notice", "info", "info")
        self.note_bar.text.setTextFormat(Qt.TextFormat.PlainText)  # the reviewer's words, never markup
        central = win.centralWidget()
        lay = central.layout() if central is not None else None
        assert isinstance(lay, QBoxLayout)  # MainWindow.__init__ stacks the strips above the canvas
        at = lay.indexOf(win.canvas)
        lay.insertWidget(at, self.note_bar)
        lay.insertWidget(at, self.lock_bar)

    def _build_review_menu(self) -> None:
        win = self.win
        m = win.menuBar().addMenu("&Review")
        mw = self.menu_window
        self.review_toggle = add_action(mw, m, "Review &done images", self.toggle_review, checkable=True,
                                        tip="Done images wait for a reviewer, who accepts them or returns them "
                                            "with a note (on a team's project: a lead turns this on)")
        m.addSeparator()
        self.accept_action = add_action(mw, m, "&Accept", self.accept, "Ctrl+Shift+A",
                                        "Accept the shown done image", icon_name="circle-check")
        self.return_action = add_action(mw, m, "&Return with note…", self.ask_return, "Ctrl+Shift+R",
                                        "Send the shown done image back to its annotator with what to fix")
        self.next_review_action = add_action(mw, m, "&Next to review", self.next_to_review, "Ctrl+Shift+N",
                                             "Open the next done image waiting for review (nobody else has open)")
        m.addSeparator()
        self.history_action: QAction = m.addAction("Show &history")
        connect_plain(self.history_action.triggered, self.show_history)
        win.menus.append(m)
        self.menu = m
        self.return_dialog: ReturnDialog | None = None

    def _build_history(self) -> None:
        win = self.win
        self.history = HistoryPanel(self.store, self.widget)
        dock = QDockWidget("History", self.widget)
        dock.setObjectName("history_dock")
        dock.setWidget(self.history)
        win.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        win.tabifyDockWidget(win.model_dw, dock)
        win.regions_dw.raise_()
        self.history_dock = dock

    def show_history(self) -> None:
        self.history_dock.show()
        self.history_dock.raise_()
        self.history.refresh()

    # ================================================================= the shown image
    def shown_record(self) -> ImageRecord | None:
        li = self.session.current
        return li.record if li is not None else None

    def image_shown(self, rec: ImageRecord) -> None:
        """An image is shown (opened, or read again): its lock, review state, note and history."""
        self.apply_lock()
        self.show_review(rec)
        self.history.show_image(rec.id)

    def image_failed(self) -> None:
        self.lock_bar.hide()
        self.note_bar.hide()
        self.review_label.setText("")
        self.history.show_image(None)
        self._enable_edits(True)

    def apply_lock(self) -> None:
        """The notice and the edit actions follow whether the shown image is read-only."""
        rec = self.shown_record()
        locked = self.session.read_only and rec is not None and self.session.locked is not None
        if locked:
            assert rec is not None and self.session.locked is not None  # checked above
            self.lock_bar.show_text(locked_text(rec.path, self.session.locked[1]))
        else:
            self.lock_bar.hide()
        self._enable_edits(not locked)

    def _enable_edits(self, on: bool) -> None:
        for a in self.win.edit_actions:
            a.setEnabled(on)
        self.win.update_title()

    def refuse_edit(self) -> bool:
        """The gate of every edit by the mouse (the canvas asks it): True, with a word why, while the
        shown image is read-only."""
        if not self.session.read_only or self.session.locked is None:
            return False
        self.win.statusBar().showMessage(
            f"Read-only: this image is being edited by {self._who(self.session.locked[1])}", status_times.NOTE_MS)
        return True

    @staticmethod
    def _who(holders: list[str]) -> str:
        from segstudio.gui.team_text import holders_words
        return holders_words(holders)

    def take_over(self) -> None:
        rec = self.shown_record()
        if rec is None:
            return
        try:
            gone = self.store.take_over(rec.id, self.owner, TTL_S)
            # a role that may not take over is not always refused: the claims it may not drop stay
            still = self.store.image_holders(rec.id, except_owner=self.owner)
            if still:
                self.store.release_image(rec.id, self.owner)
        except UserError as e:
            self._error(f"Could not take over {rec.path}: {e}")
            return
        if still:
            self._error(f"Could not take over {rec.path}: {self._who(still)} still holds it (only a lead may "
                        "take an image over)")
            return
        self.session.locked = None
        self.session.reread([rec.id])
        self.win.statusBar().showMessage(f"Took over {rec.path}" + (f" from {self._who(gone)}" if gone else ""),
                                         status_times.NOTE_MS)

    def _error(self, text: str) -> None:
        self.win.statusBar().showMessage(text, status_times.ERROR_MS)

    # ================================================================= review
    def _read_review_on(self) -> bool:
        try:
            return bool(self.store.review_enabled())
        except UserError as e:
            log.warning("could not read whether review is on: %s", e)
            return False

    def sync_review_actions(self) -> None:
        self.review_toggle.setChecked(self.review_on)
        for a in (self.accept_action, self.return_action, self.next_review_action):
            a.setEnabled(self.review_on)
        m = self.win.files.model
        if m.rowCount():  # the markers follow
            m.dataChanged.emit(m.index(0, 1), m.index(m.rowCount() - 1, 1))

    def toggle_review(self) -> None:
        on = self.review_toggle.isChecked()
        try:
            self.store.set_review_enabled(on)
        except UserError as e:
            self.review_toggle.setChecked(self.review_on)
            self._error(f"Could not turn review {'on' if on else 'off'}: {e}")
            return
        self.review_on = on
        self.sync_review_actions()
        rec = self.shown_record()
        if rec is not None:
            self.show_review(rec)
        self.win.files.update_counts()

    def show_review(self, rec: ImageRecord) -> None:
        state = review_state(rec, self.review_on)
        self.review_label.setText(f"Review: {REVIEW_WORDS[state]}" if state else "")
        note = note_text(rec) if self.review_on or rec.review else None
        if note:
            self.note_bar.show_text(note)
        else:
            self.note_bar.hide()

    def _reviewable(self) -> ImageRecord | None:
        rec = self.shown_record()
        if rec is None:
            self._error("No image is shown to review")
            return None
        if not self.review_on:
            self._error("Review is off (Review › Review done images)")
            return None
        if rec.status != DONE:
            self._error(f"{rec.path} is not done: only a done image is reviewed")
            return None
        return rec

    def accept(self) -> None:
        rec = self._reviewable()
        if rec is not None and self._review(rec, True, ""):
            self.win.statusBar().showMessage(f"Accepted {rec.path}", status_times.NOTE_MS)

    def ask_return(self) -> ReturnDialog | None:
        rec = self._reviewable()
        if rec is None:
            return None
        dlg = ReturnDialog(rec.path, self.widget)
        self.return_dialog = dlg

        def done() -> None:
            if self._review(rec, False, dlg.note()):
                self.win.statusBar().showMessage(f"Returned {rec.path} with a note", status_times.NOTE_MS)
        connect_plain(dlg.accepted, done)
        dlg.open()
        return dlg

    def _review(self, rec: ImageRecord, accept: bool, note: str) -> bool:
        try:
            self.store.review_image(rec.id, accept, note)
        except UserError as e:
            self._error(f"Could not {'accept' if accept else 'return'} {rec.path}: {e}")
            return False
        self.refresh_image(rec.id)
        return True

    def next_to_review(self) -> None:
        if not self.review_on:
            self._error("Review is off (Review › Review done images)")
            return
        rec = self.shown_record()
        try:
            nxt = self.store.next_for_review(rec.path if rec is not None else None,
                                             skip_claimed=self.owner if self.exclusive else None)
        except UserError as e:
            self._error(f"Could not find the next image to review: {e}")
            return
        if nxt is None or (rec is not None and nxt.id == rec.id):
            self.win.statusBar().showMessage("No other image waits for review", status_times.NOTE_MS)
            return
        self.win.open_image(nxt.id)

    # ================================================================= next unfinished, settings
    def next_unfinished(self, current: int | None) -> int | None:
        """On a team's store: the next unfinished image (by name, wrapping round) that nobody else has
        open, so two annotators never get the same one."""
        rec = self.store.images_by_ids([current]).get(current) if current is not None else None
        after, wrapped = (rec.path if rec is not None else None), rec is None
        for _ in range(1000):  # unreadable images are passed by; a bound against a lying store
            nxt = self.store.next_image(after, skip_claimed=self.owner)
            if nxt is None:
                if wrapped:
                    return None
                after, wrapped = None, True
                continue
            if nxt.id == current:
                return None
            if not nxt.error:
                return nxt.id
            after = nxt.path
        return None

    def remember_last_image(self, image_id: int) -> None:
        """The image to open next time: in the project on SQLite; in this user's settings on a team's
        store (its settings are the lead's to write)."""
        if self.store.kind == "sqlite":
            try:
                self.store.set_setting("last_image", image_id)
            except UserError as e:
                log.warning("could not keep the last image: %s", e)
            return
        self.win.settings.setValue(LAST_IMAGE_KEY + self.store.location, image_id)

    def last_image(self) -> Any:
        if self.store.kind == "sqlite":
            return self.store.get_setting("last_image")
        value = self.win.settings.value(LAST_IMAGE_KEY + self.store.location)
        try:
            return int(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    # ================================================================= the Files list
    def _read_claims(self) -> None:
        try:
            self.claimed = self.store.claimed_images(except_owner=self.owner)
        except UserError as e:
            log.warning("could not read who edits which image: %s", e)

    def marker(self, rec: ImageRecord) -> str:
        """What the Files list's status column adds: the review state, who else edits it."""
        parts = []
        state = review_state(rec, self.review_on)
        if state:
            parts.append(REVIEW_WORDS[state])
        holder = self.claimed.get(rec.id)
        if holder is not None:
            parts.append(f"open by {owner_user(holder) or 'another process'}")
        return "".join(f" · {p}" for p in parts)

    # ================================================================= live view
    def _queue(self, event: dict) -> None:
        kind = event.get("t")
        if self.closed or not isinstance(kind, str):  # an event queued before the window closed
            return
        ids = self._pending.setdefault(kind, set())
        if isinstance(event.get("id"), int):
            ids.add(event["id"])
        if kind == "lost":
            self._handle_batch()  # say it at once
        elif not self._batch.isActive():
            self._batch.start()

    def _handle_batch(self) -> None:
        pending, self._pending = self._pending, {}
        try:
            self._handle(pending)
        except UserError as e:  # the store went away meanwhile: the listener says when it is back
            log.warning("could not follow the other clients' changes: %s", e)
            self.win.statusBar().showMessage(f"Live view: {e}", status_times.ERROR_MS)

    def _handle(self, pending: dict[str, set[int]]) -> None:
        if "lost" in pending and "back" not in pending:
            self.link_label.setText("Project database: reconnecting…")
            self.link_label.show()
        if "back" in pending:
            self.link_label.hide()
            self.reread_all()
            return
        if "settings" in pending:
            self.review_on = self._read_review_on()
            self.sync_review_actions()
        if "classes" in pending:
            self.win.classes_dock.refresh()
            self.win.classes_changed()
        if "images" in pending:
            self.win.files.refresh()
        claims = pending.get("claim", set())
        if claims:
            self._read_claims()
        for image_id in claims | pending.get("image", set()) | pending.get("regions", set()):
            self.refresh_image(image_id, regions=image_id in pending.get("regions", set()),
                               claim=image_id in claims)
        if "settings" in pending:
            rec = self.shown_record()
            if rec is not None:
                self.show_review(rec)

    def refresh_image(self, image_id: int, regions: bool = False, claim: bool = False) -> None:
        """Another client (or this one) changed an image: its row, and when it is the one shown, its
        record, lock, review state and history; its regions are read again while it is read-only."""
        self.win.files.record_changed(image_id)
        li = self.session.current
        if li is None or li.record.id != image_id:
            if image_id in self.session.cache:
                self.session.forget(image_id)  # a decoded-ahead copy's record would be stale
            return
        try:
            rec = self.store.image(image_id)
        except (UserError, KeyError) as e:
            log.warning("could not read image %s again: %s", image_id, e)
            return
        li.record = replace(li.record, status=rec.status, review=rec.review, note=rec.note)
        changed = self.session.recheck_lock() if claim or regions else False  # reread when it became editable
        if regions and self.session.read_only and not changed:
            self.session.reread([image_id])  # image_shown follows, with the new regions
        else:
            self.image_shown(li.record)

    def reread_all(self) -> None:
        """The connection came back: what happened meanwhile was not told; read it all again."""
        self._read_claims()
        self.review_on = self._read_review_on()
        self.sync_review_actions()
        self.win.files.refresh()
        li = self.session.current
        if li is not None:
            self.refresh_image(li.record.id, regions=True, claim=True)

    def recheck(self) -> None:
        """The timer's look (the listener may have missed a claim that lapsed): the shown image's lock."""
        li = self.session.current
        if self.exclusive and not self.closed and li is not None and self.session.recheck_lock():
            self.image_shown(li.record)

    def shutdown(self) -> None:
        self.closed = True
        if self.listener is not None:
            listener, self.listener = self.listener, None
            listener.close()
        self._batch.stop()
