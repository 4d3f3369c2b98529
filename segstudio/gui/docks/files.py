"""Files dock: a virtual list over the store (rows are fetched a page at a time, nothing is
decoded to list), filters by status and name, counts per status. An image that cannot be read
is counted apart ("unreadable"), not among its status: the status filters leave it out, the
Unreadable filter (or a click on its count) lists it, and the next-unfinished key passes it by."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable, Sequence

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                               QTableView, QVBoxLayout, QWidget)

from segstudio.core.records import DONE, IN_PROGRESS, NEW, PREDICTED, SKIPPED, STATUSES, UNFINISHED
from segstudio.gui.docks.common import guard_inputs
from segstudio.gui.docks.file_groups import FrameGroup, fold, groups_of

if TYPE_CHECKING:
    from segstudio.core.records import ImageRecord
    from segstudio.core.store import Store

STATUS_COLORS = {NEW: (150, 150, 150), PREDICTED: (80, 150, 240), IN_PROGRESS: (240, 180, 40),
                 DONE: (60, 190, 90), SKIPPED: (110, 110, 110)}
PAGE = 256
_ROOT = QModelIndex()  # the invalid index: a model's root, the default parent
_DIGITS = re.compile(r"\d+")
UNCERTAINTY_COLUMN = 2  # shown only while the list is sorted by it
UNREADABLE = "unreadable"  # the status filter's entry for images whose file could not be read


def natural_key(path: str) -> tuple[str, str]:
    """Sort key of a path as a person reads it: img2 before img10, case ignored, a folder's
    files together ('/' sorts before any other character). Digit runs are zero-padded, so the
    key is one string and sorting stays in C."""
    padded = _DIGITS.sub(lambda m: m.group().zfill(20), path.casefold().replace("/", "\0"))
    return padded, path


def status_icon(status: str, error: bool = False) -> QIcon:
    key = (status, error)
    if key not in _ICONS:
        pm = QPixmap(12, 12)
        pm.fill(Qt.GlobalColor.transparent)
        p = QPainter(pm)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        if error:
            # a white rim under the red cross: it reads on the selection's highlight as well
            for colour, width in ((QColor(255, 255, 255), 4.0), (QColor(220, 40, 40), 2.0)):
                p.setPen(QPen(colour, width, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
                p.drawLine(3, 3, 9, 9)
                p.drawLine(9, 3, 3, 9)
        else:
            p.setBrush(QColor(*STATUS_COLORS.get(status, (128, 128, 128))))
            p.setPen(Qt.PenStyle.NoPen)
            p.drawEllipse(1, 1, 10, 10)
        p.end()
        ic = QIcon()
        # the same pixels when the row is selected: the style would otherwise tint the icon
        # with the highlight colour, and a thin red cross vanishes into it
        for mode in (QIcon.Mode.Normal, QIcon.Mode.Selected, QIcon.Mode.Active):
            ic.addPixmap(pm, mode)
        _ICONS[key] = ic
    return _ICONS[key]


_ICONS: dict[tuple[str, bool], QIcon] = {}


class FilesModel(QAbstractTableModel):
    def __init__(self, store: Store, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.ids: list[int] = []  # every listed image, in list order (a sequence's frames one by one)
        # the rows shown: an image id, or one row for a sequence's frames (by name order only)
        self.entries: list[int | FrameGroup] = []
        self.group_of: dict[int, FrameGroup] = {}  # image id -> its sequence's row
        self.last_seen: dict[str, int] = {}  # a sequence's key -> the frame shown last in it
        self.row_of: dict[int, int] = {}  # image id -> the row that shows it
        self.index_of: dict[int, int] = {}  # image id -> its place in ids
        self.pages: dict[int, dict[int, ImageRecord]] = {}  # pages of ids, PAGE at a time
        self._keys: dict[int, object] = {}  # image id -> its sequence row's key (paths never change)
        self.statuses: Sequence[str] | None = None
        # None: readable or not; False: readable only (a status filter: an image nobody can open
        # is counted apart, not as work of its status); True: only the unreadable ones
        self.unreadable: bool | None = None
        self.name_filter = ""
        self.order = "path"
        self._rank: dict[int, int] = {}  # image id -> place in natural name order
        self.paths: dict[int, str] = {}  # image id -> path, of the ids listed so far (paths never change)
        self.id_of: dict[str, int] = {}  # and back
        # what the status column adds to a record's status (a team's project: review state, who edits it)
        self.marker: Callable[[ImageRecord], str] | None = None

    def refresh(self) -> None:
        self.beginResetModel()
        self.ids = self.store.image_ids(self.statuses, self.name_filter or None, order=self.order,
                                        unreadable=self.unreadable)
        if self.order == "path":
            self._natural_order()
            self.entries = fold(self.ids, self.paths, self._keys)
        else:
            self.entries = self.ids  # type: ignore[assignment]  # most uncertain first: every frame a row
        self.group_of = groups_of(self.entries) if self.entries is not self.ids else {}
        self.row_of = {}
        self.index_of = {}
        self.pages = {}
        self.endResetModel()

    def _natural_order(self) -> None:
        """The store sorts names as strings (1, 10, 11, 2): sort them as a person counts. An
        image's path never changes, so the ranks are computed once and again only when new files
        appear (100k images: 0.5 s the first time, 5 ms a refresh after)."""
        new = [i for i in self.ids if i not in self._rank]
        if new:
            recs = self.store.images_by_ids(new)
            self.paths.update((i, r.path) for i, r in recs.items())
            self.id_of.update((r.path, i) for i, r in recs.items())
            order = sorted(self.paths, key=lambda i: natural_key(self.paths[i]))
            self._rank = {i: k for k, i in enumerate(order)}
        self.ids.sort(key=lambda i: self._rank.get(i, len(self._rank)))

    def row(self, image_id: int) -> int | None:
        """The row that shows the image (its sequence's row for a folded frame)."""
        if not self.row_of and self.entries:
            self.row_of = {i: r for r, i in enumerate(self.entries) if not isinstance(i, FrameGroup)}
            self.row_of.update((i, r) for r, g in enumerate(self.entries) if isinstance(g, FrameGroup) for i in g.ids)
        return self.row_of.get(image_id)

    def position(self, image_id: int) -> int | None:
        """The image's place in `ids` (the list with every frame on its own)."""
        if self.entries is self.ids:
            return self.row(image_id)
        if not self.index_of and self.ids:
            self.index_of = {i: k for k, i in enumerate(self.ids)}
        return self.index_of.get(image_id)

    def group(self, row: int) -> FrameGroup | None:
        """The sequence the row shows (None: an image's row)."""
        e = self.entries[row] if 0 <= row < len(self.entries) else None
        if isinstance(e, FrameGroup):
            if e.counts is None:
                e.read(self.store)
            return e
        return None

    def target(self, row: int) -> int | None:
        """The image a click on the row opens: a sequence's frame shown last (the person comes back
        to where they were), else its first unfinished frame."""
        if not 0 <= row < len(self.entries):
            return None
        e = self.entries[row]
        if not isinstance(e, FrameGroup):
            return e
        seen = self.last_seen.get(e.key)
        return seen if seen is not None and seen in e else e.target(self.store)

    def record(self, row: int) -> ImageRecord | None:
        """The image shown on a row (None for a sequence's row: see group())."""
        if not 0 <= row < len(self.entries):
            return None
        e = self.entries[row]
        if isinstance(e, FrameGroup):
            return None
        k = row if self.entries is self.ids else self.position(e)
        return None if k is None else self.at(k)

    def at(self, k: int) -> ImageRecord | None:
        """The record of ids[k], read a page at a time."""
        if not 0 <= k < len(self.ids):
            return None
        page = k // PAGE
        if page not in self.pages:
            self.pages[page] = self.store.images_by_ids(self.ids[page * PAGE:(page + 1) * PAGE])
        return self.pages[page].get(self.ids[k])

    def invalidate(self, image_id: int) -> None:
        r, k = self.row(image_id), self.position(image_id)
        if r is None or k is None:
            return
        self.pages.pop(k // PAGE, None)
        g = self.group_of.get(image_id)
        if g is not None:
            g.counts = None  # its summary is read again when the row is painted
        self.dataChanged.emit(self.index(r, 0), self.index(r, UNCERTAINTY_COLUMN))

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.entries)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 3

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return ("Image", "Status", "Uncertainty")[section]
        if role == Qt.ItemDataRole.ToolTipRole and orientation == Qt.Orientation.Horizontal \
                and section == UNCERTAINTY_COLUMN:
            return "The model's uncertainty on the image: 0 sure – 1 unsure (– : not predicted yet)"
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        g = self.group(index.row())
        if g is not None:
            return _group_data(g, index.column(), role)
        rec = self.record(index.row())
        if rec is None:
            return None
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return rec.path
            if col == UNCERTAINTY_COLUMN:
                return "–" if rec.uncertainty is None else f"{rec.uncertainty:.2f}"
            return ("unreadable" if rec.error else rec.status.replace("_", " ")) + \
                (" (missing)" if rec.missing else "") + (self.marker(rec) if self.marker is not None else "")
        if role == Qt.ItemDataRole.TextAlignmentRole and col == UNCERTAINTY_COLUMN:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.DecorationRole and col == 0:
            return status_icon(rec.status, bool(rec.error))
        if role == Qt.ItemDataRole.ToolTipRole:
            tip = rec.path
            if rec.width:
                tip += f"\n{rec.width} x {rec.height}"
            if rec.uncertainty is not None:
                tip += f"\nmodel uncertainty {rec.uncertainty:.2f} (0 sure – 1 unsure)"
            if rec.error:
                tip += f"\ncannot open: {rec.error}\n(status {rec.status.replace('_', ' ')}; not counted, "\
                       "and N passes it by, until a readable copy replaces it and it is opened again)"
            return tip
        if role == Qt.ItemDataRole.ForegroundRole and rec.error:
            return QColor(220, 60, 60)
        return None


def _group_data(g: FrameGroup, col: int, role: int) -> Any:
    if role == Qt.ItemDataRole.DisplayRole:
        return g.title if col == 0 else (g.short if col == 1 else "")
    if role == Qt.ItemDataRole.DecorationRole and col == 0:
        return status_icon(g.status)
    if role == Qt.ItemDataRole.ToolTipRole:
        kind = "stack or video file" if g.container else "folder of numbered frames"
        return (f"{g.key}: {kind}, {len(g.ids)} frame(s) listed\n{g.summary()}\n"
                "A click opens its first unfinished frame; the frame bar under the image steps "
                "through the frames (, and .)")
    if role == Qt.ItemDataRole.FontRole and col == 0:
        f = QFont()
        f.setBold(True)
        return f
    return None


class WrappedLabel(QLabel):
    """A word-wrapped label that asks its layout for the height its text needs at its width: a dock's
    layout does not ask for it, and a counts line cut to two lines hid its third (the unreadable link)."""

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._fit()

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        super().setText(text)
        self._fit()

    def _fit(self) -> None:
        h = self.heightForWidth(max(1, self.width()))
        if h > 0 and h != self.minimumHeight():
            self.setMinimumHeight(h)


class FilesDock(QWidget):
    activated = Signal(int)  # image id

    def __init__(self, store: Store, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.model = FilesModel(store, self)
        self.view = QTableView(self)
        self.view.setModel(self.model)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setDefaultSectionSize(20)
        self.view.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.view.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.view.horizontalHeader().setSectionResizeMode(UNCERTAINTY_COLUMN, QHeaderView.ResizeMode.ResizeToContents)
        self.view.setColumnHidden(UNCERTAINTY_COLUMN, True)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.view.clicked.connect(self._clicked)
        self.view.activated.connect(self._clicked)
        self.status_combo = QComboBox()
        self.status_combo.addItem("All", None)
        self.status_combo.addItem("Unfinished", UNFINISHED)
        for s in STATUSES:
            self.status_combo.addItem(s.replace("_", " ").capitalize(), (s,))
        self.status_combo.addItem("Unreadable", UNREADABLE)
        self.status_combo.setToolTip("A status lists the readable images of it; Unreadable lists the "
                                     "images whose file could not be opened; All lists both")
        self.status_combo.currentIndexChanged.connect(self._filter_changed)
        self.order_combo = QComboBox()
        self.order_combo.addItem("By name", "path")
        self.order_combo.addItem("Most uncertain first", "uncertainty")
        self.order_combo.setToolTip("Most uncertain first: after predicting, fix the images the model "
                                    "was least sure about")
        self.order_combo.currentIndexChanged.connect(self._filter_changed)
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("Filter by name…")
        self.name_edit.setClearButtonEnabled(True)
        self.name_edit.textChanged.connect(self._filter_changed)
        self.counts = WrappedLabel()
        self.counts.setWordWrap(True)
        # "unreadable n" is a link to the Unreadable filter: the count says there are some, one
        # click lists them
        self.counts.setTextInteractionFlags(Qt.TextInteractionFlag.LinksAccessibleByMouse)
        self.counts.linkActivated.connect(self._count_clicked)
        top = QHBoxLayout()
        top.addWidget(self.status_combo)
        top.addWidget(self.order_combo)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.name_edit)
        lay.addWidget(self.view)
        lay.addWidget(self.counts)
        self.current_id: int | None = None
        self.wheel_guard = guard_inputs(self)

    def refresh(self) -> None:
        self.model.refresh()
        self.update_counts()
        if self.current_id is not None:
            self.show_current(self.current_id)

    def update_counts(self) -> None:
        c = self.store.status_counts()
        total = sum(c.values())
        unreadable = self._unreadable_by_status()
        for s, n in unreadable.items():
            c[s] = c.get(s, 0) - n  # counted apart: an image nobody can open is not "new" work
        parts = [f"<b>{total}</b> images"] + [
            f"<span style='color:rgb{STATUS_COLORS[s]}'>●</span> {s.replace('_', ' ')} {n}" for s, n in c.items()]
        if unreadable:
            parts.append(f"<span style='color:#dc2828'>✕</span> <a href='{UNREADABLE}'>unreadable "
                         f"{sum(unreadable.values())}</a>")
        missing = self.store.missing_count()
        if missing:
            parts.append(f"{missing} missing")
        self.counts.setText(" · ".join(parts))

    def _unreadable_by_status(self) -> dict[str, int]:
        """Status -> how many images of it cannot be read. Read from the store each time (the list
        keeps no status of its own): the error paths, their ids from the list's path cache where
        it has them (one query per 900 then), else one look-up each."""
        ids_of = self.model.id_of
        paths = [path for path, _ in self.store.errors()]
        if not paths:
            return {}
        recs = list(self.store.images_by_ids([ids_of[p] for p in paths if p in ids_of]).values())
        recs += [r for r in (self.store.image_by_path(p) for p in paths if p not in ids_of) if r is not None]
        out: dict[str, int] = {}
        for rec in recs:
            if rec.error:
                out[rec.status] = out.get(rec.status, 0) + 1
        return out

    def record_changed(self, image_id: int) -> None:
        """An image's status or error changed in the store: its row and the counts read it again
        (the store is the one source of truth; the list keeps no status of its own)."""
        self.model.invalidate(image_id)
        self.update_counts()

    def _count_clicked(self, link: str) -> None:
        if link == UNREADABLE:
            self.status_combo.setCurrentIndex(self.status_combo.findData(UNREADABLE))

    def _filter_changed(self, *_: Any) -> None:
        data = self.status_combo.currentData()
        if data == UNREADABLE:
            self.model.statuses, self.model.unreadable = None, True
        else:
            self.model.statuses, self.model.unreadable = data, (None if data is None else False)
        self.model.name_filter = self.name_edit.text().strip()
        self.model.order = self.order_combo.currentData()
        self.view.setColumnHidden(UNCERTAINTY_COLUMN, self.model.order != "uncertainty")
        self.refresh()

    def _clicked(self, index: QModelIndex) -> None:
        target = self.model.target(index.row())
        if target is not None:
            self.activated.emit(target)

    def show_current(self, image_id: int) -> None:
        self.current_id = image_id
        g = self.model.group_of.get(image_id)
        if g is not None:
            self.model.last_seen[g.key] = image_id
        r = self.model.row(image_id)
        if r is None:
            self.view.clearSelection()
            return
        self.view.selectRow(r)
        self.view.scrollTo(self.model.index(r, 0))

    def neighbours(self, image_id: int | None) -> tuple[int | None, int | None]:
        """Previous and next image ids in the list as filtered and sorted now: the rows above and
        below (a sequence's row: its first unfinished frame; the frame keys step inside it)."""
        m = self.model
        if not m.entries:
            return None, None
        r = m.row(image_id) if image_id is not None else None
        if r is None:
            return None, m.target(0)
        return m.target(r - 1) if r > 0 else None, m.target(r + 1)

    def next_unfinished(self, image_id: int | None) -> int | None:
        """The next image in the list that is unfinished and readable (an image that could not
        be opened is no work to do until its file is replaced)."""
        ids = self.model.ids
        start = (self.model.position(image_id) or 0) + 1 if image_id is not None else 0
        for k in range(len(ids)):  # frame by frame through a sequence's row
            rec = self.model.at((start + k) % len(ids))
            if rec is not None and rec.status in UNFINISHED and not rec.error and rec.id != image_id:
                return rec.id
        return None
