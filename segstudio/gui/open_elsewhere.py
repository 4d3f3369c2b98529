"""The notice of an image shown here that another window (or process) holds open too (its claim
in the store, core/claims.py): shown when the image opens, asked again every few seconds (another
window may open or close it later), and once closed, back only when who holds it changes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from PySide6.QtCore import QObject, QTimer

from segstudio.gui.notices import NoticeBar, open_elsewhere_text

if TYPE_CHECKING:
    from segstudio.core.records import ImageRecord
    from segstudio.gui.session import Session

CLAIMS_RECHECK_MS = 3000  # how often the window asks whether the shown image is open elsewhere too


class OpenElsewhereNotice(QObject):
    def __init__(self, session: Session, is_shown: Callable[[], bool], parent: QObject | None = None):
        super().__init__(parent)
        self.session, self.is_shown = session, is_shown  # is_shown: an image is displayed (not a failed one)
        self.bar = NoticeBar("shared_notice", "info", "info")
        self.bar.dismissed.connect(self._dismissed)
        self._closed_for: tuple[int, tuple[str, ...]] | None = None  # closed: not again for these holders
        self.timer = QTimer(self)
        self.timer.setInterval(CLAIMS_RECHECK_MS)
        self.timer.timeout.connect(self.recheck)
        self.timer.start()

    def _now(self, rec: ImageRecord) -> tuple[int, tuple[str, ...]]:
        held = self.session.open_elsewhere
        return rec.id, tuple(held[1] if held is not None and held[0] == rec.id else [])

    def show_for(self, rec: ImageRecord) -> None:
        now = self._now(rec)
        if now[1] and now != self._closed_for:
            self.bar.show_text(open_elsewhere_text(rec.path, list(now[1])))
        else:
            self.bar.hide()

    def _dismissed(self) -> None:
        li = self.session.current
        if li is not None:
            self._closed_for = self._now(li.record)

    def recheck(self) -> None:
        """Ask the store again (one small read) while an image is shown."""
        li = self.session.current
        if li is None or not self.is_shown():
            return
        self.session.recheck_open_elsewhere()
        self.show_for(li.record)
