"""The *Get weights…* dialog (Model panel): every pretrained file segstudio knows
(inference/weights_catalog.py) with where it goes and its status; *Download* fetches the selected
one and *Add file…* verifies a file brought from elsewhere and copies it into place. Listing,
hashing, downloading and copying run on a worker thread (gui/workers.py Job) with a progress bar
and Cancel; the catalogue imports torchvision there, never on the GUI thread."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QCloseEvent, QColor
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QFileDialog, QHBoxLayout, QHeaderView, QProgressBar,
                               QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from segstudio.core.errors import describe
from segstudio.gui.docks.common import plain_label, show_error, show_note
from segstudio.gui.window_words import window_words
from segstudio.gui.workers import Job
from segstudio.inference.runtime import weights_catalog as wc
from segstudio.inference.runtime.torch_once import import_torch
from segstudio.gui.signals import connect_plain

if TYPE_CHECKING:
    from segstudio.gui.workers import Failure

COLUMNS = ("Name", "Status", "Size", "Check", "Used by", "File")
_RED, _GREEN, _GREY = QColor("#c33"), QColor("#2a7"), QColor("#888")


def _kib(progress: Callable[[int, int, str], None]) -> Callable[[int, int, str], None]:
    """Byte counts as KiB: the progress signal carries C ints, and a 2.5 GB file would not fit."""
    def kib(done: int, total: int, text: str = "") -> None:
        progress(done >> 10, total >> 10, text)
    return kib


class WeightsDialog(QDialog):
    job_done = Signal(str)  # what the finished job said (tests wait for it)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Get weights")
        self.setMinimumSize(820, 420)
        self.folder = plain_label(f"Weights folder: {wc.checkpoints_dir()} (the torch hub cache; "
                                  "TORCH_HOME moves it). The app, the command line and the bundle all look here.")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        head = self.table.horizontalHeader()
        for i in range(len(COLUMNS)):
            head.setSectionResizeMode(i, QHeaderView.ResizeMode.ResizeToContents)
        head.setSectionResizeMode(COLUMNS.index("Used by"), QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.note = plain_label("Reading the list…")
        self.download_button = QPushButton("Download")
        self.download_button.setToolTip("Download the selected file into the weights folder; its hash is checked "
                                        "before it gets its final name")
        connect_plain(self.download_button.clicked, lambda: self.download(self.selected()))
        self.add_button = QPushButton("Add file…")
        self.add_button.setToolTip("A weights file brought from elsewhere (a USB stick): identified, verified and "
                                   "copied into the weights folder (your file is left where it is)")
        connect_plain(self.add_button.clicked, self._choose_file)
        self.refresh_button = QPushButton("Check again")
        self.refresh_button.setToolTip("Look at the folder again and check every file's hash")
        connect_plain(self.refresh_button.clicked, lambda: self.refresh(deep=True))
        self.cancel_button = QPushButton("Cancel")
        connect_plain(self.cancel_button.clicked, self.cancel)
        self.close_button = QPushButton("Close")
        connect_plain(self.close_button.clicked, self.accept)
        row = QHBoxLayout()
        for b in (self.download_button, self.add_button, self.refresh_button):
            row.addWidget(b)
        row.addStretch(1)
        row.addWidget(self.cancel_button)
        row.addWidget(self.close_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.folder)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.progress)
        lay.addWidget(self.note)
        lay.addLayout(row)
        self.job: Job | None = None
        self.statuses: list[Any] = []  # weights_catalog.EntryStatus, as shown
        self._kib = False  # the running job reports KiB (a transfer) rather than files
        self._result = ""  # what the last download / add did, kept above the list's summary
        self._update_buttons()
        self.refresh(deep=False)  # sizes first (instant), then the hashes

    # ---------------------------------------------------------------- the list
    def refresh(self, deep: bool = True) -> None:
        def work(progress, cancelled):
            return wc.status_list(deep=deep, progress=progress, cancelled=cancelled)
        self._start(work, lambda statuses: self._listed(statuses, deep), "Checking the hashes…" if deep else "")

    def _listed(self, statuses: list, deep: bool) -> str:
        self.statuses = list(statuses)
        self.folder.setText(f"Weights folder: {wc.checkpoints_dir()} (the torch hub cache; TORCH_HOME moves it). "
                            "The app, the command line and the bundle all look here.")
        keep = self.selected()
        self.table.setRowCount(len(self.statuses))
        for r, s in enumerate(self.statuses):
            e = s.entry
            size = wc.mib_text(s.size) if s.size is not None else e.size_text()
            cells = (e.name, s.status, size, e.check, "; ".join(e.used_by), e.file)
            tip = "\n".join(x for x in (e.title, str(s.path), e.url, s.detail) if x)
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(tip)
                if c == 1:
                    colour = _RED if s.wrong or s.status == wc.NO_ACCESS else _GREY if not s.present else \
                        _GREEN if s.status in wc.GOOD else None
                    if colour is not None:
                        item.setForeground(QBrush(colour))
                self.table.setItem(r, c, item)
            if e.name == keep:
                self.table.selectRow(r)
        if not deep:
            self.refresh(deep=True)  # the job slot is free again: the hashes next
            return ""
        result, self._result = self._result, ""
        missing = sum(1 for s in self.statuses if not s.present)
        wrong = [s for s in self.statuses if s.wrong or s.status == wc.NO_ACCESS]
        msg = f"{len(self.statuses) - missing} of {len(self.statuses)} files present"
        if wrong:
            msg += "; wrong: " + "; ".join(f"{s.entry.name} ({s.status}: {s.detail})" for s in wrong)
        else:
            # one full stop: "Add file…" ends in its own ellipsis
            msg += ". Download needs the internet; offline, bring the file here with “Add file…”"
        msg = f"{result}\n{msg}" if result else msg
        (show_error if wrong else show_note)(self.note, msg)
        return msg

    def status_of(self, name: str) -> str | None:
        return next((s.status for s in self.statuses if s.entry.name == name), None)

    def selected(self) -> str | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows or rows[0].row() >= len(self.statuses):
            return None
        return self.statuses[rows[0].row()].entry.name

    def select(self, name: str) -> None:
        for r, s in enumerate(self.statuses):
            if s.entry.name == name:
                self.table.selectRow(r)

    # ---------------------------------------------------------------- actions
    def download(self, name: str | None) -> None:
        if name is None:
            return

        def work(progress, cancelled):
            return wc.get(name, _kib(progress), cancelled)
        self._start(work, self._placed, f"Downloading {name}…", kib=True)

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Weights file", "", "Weights (*.pth *.pt *.bin);;All files (*)")
        if path:
            self.add_file(path)

    def add_file(self, path: str) -> None:
        def work(progress, cancelled):
            return wc.add(path, None, _kib(progress), cancelled)
        self._start(work, self._placed, "Checking and copying the file…", kib=True)

    def _placed(self, result) -> str:
        self._result = result.message
        self.refresh(deep=True)
        show_note(self.note, result.message)
        return result.message

    # ---------------------------------------------------------------- the worker
    def _start(self, fn, then: Callable[[Any], str], text: str, kib: bool = False) -> None:
        if self.job is not None and self.job.running():
            return
        self._kib = kib
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.progress.setFormat("%p%")
        if text:
            show_note(self.note, text)
        def run(progress, cancelled):
            import_torch()  # not at the same moment as the model thread (inference/torch_once.py)
            return fn(progress, cancelled)
        job = Job(run, self)
        self.job = job
        job.progress.connect(self._progress)
        job.returned.connect(lambda value: self._returned(job, then, value))
        job.errored.connect(lambda failure: self._failed(job, failure))
        self._update_buttons()
        job.start()

    def _progress(self, done: int, total: int, text: str) -> None:
        if total <= 0:
            self.progress.setRange(0, 0)
            return
        self.progress.setRange(0, total)
        self.progress.setValue(min(done, total))
        if self._kib:
            self.progress.setFormat(f"{done / 1024:.1f} / {total / 1024:.1f} MiB  {text[-48:]}")
        else:
            self.progress.setFormat(f"%v / %m  {text[-48:]}")

    def _returned(self, job: Job, then: Callable[[Any], str], value: Any) -> None:
        if job is not self.job:
            return
        self.job = None
        self.progress.setVisible(False)
        msg = then(value)  # may start the next job
        self._update_buttons()
        if msg:
            self.job_done.emit(msg)

    def _failed(self, job: Job, failure: Failure) -> None:
        from segstudio.io.common import Cancelled
        if job is not self.job:
            return
        self.job = None
        self.progress.setVisible(False)
        msg = ("Cancelled; nothing was written." if isinstance(failure.error, Cancelled)
               else window_words(describe(failure.error), in_weights_dialog=True))  # not `segstudio weights add`
        show_error(self.note, msg)
        self._update_buttons()
        self.job_done.emit(msg)

    def busy(self) -> bool:
        return self.job is not None and self.job.running()

    def _update_buttons(self) -> None:
        busy = self.job is not None
        name = self.selected()
        status = self.status_of(name) if name else None
        self.download_button.setEnabled(not busy and status is not None
                                        and (status == wc.MISSING or status in wc.WRONG))
        self.add_button.setEnabled(not busy)
        self.refresh_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def _stop(self) -> None:
        """Cancel the work and give it a moment to clean up its temporary file (it always does, on
        its own thread, even when this times out)."""
        job = self.job
        if job is not None and job.running():
            job.cancel()
            job.wait(10)

    def done(self, r: int) -> None:  # accept, reject (Esc) and close all end here
        self._stop()
        super().done(r)

    def closeEvent(self, e: QCloseEvent) -> None:  # noqa: N802 (Qt's name)
        self._stop()
        super().closeEvent(e)


def open_weights_dialog(parent: QWidget | None, on_closed: Callable[[], None] | None = None) -> WeightsDialog:
    """Show the dialog window-modal without blocking; `on_closed` runs when it is closed."""
    dlg = WeightsDialog(parent)
    dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    if on_closed is not None:
        dlg.finished.connect(lambda _: on_closed())
    dlg.open()
    return dlg
