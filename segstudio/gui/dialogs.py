"""Import and export dialogs (a worker thread, a progress bar, cancel, a report at the end) and
the keyboard-shortcut reference, generated from the window's actions.

The import and export dialogs keep their choices (format, path, options) in the project's store
and open with them; after a run the form stays usable: change it and Run again, or Close."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from PySide6.QtCore import QTimer
from PySide6.QtGui import QCloseEvent, QKeySequence
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QGridLayout, QHBoxLayout, QHeaderView, QLineEdit, QMessageBox, QPlainTextEdit,
                               QProgressBar, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from segstudio.core.records import DONE, SKIPPED, STATUSES
from segstudio.gui.class_questions import BinaryQuestion
from segstudio.gui.docks.common import KeptChoices, plain_label
from segstudio.gui.export_review import ACCEPTED, ReviewChoice
from segstudio.gui.workers import Job
from segstudio.io.common import counted
from segstudio.io.export_target import ExportTargetError
from segstudio.io.registry import (IMPORT_FORMATS, check_export_target, offered_export_formats, offered_import_formats,
                                  run_export, run_import)
from segstudio.gui.signals import connect_plain

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMenu

    from segstudio.core.project import Project
    from segstudio.core.store import Store
    from segstudio.gui.session import Session
    from segstudio.gui.workers import Failure
    from segstudio.io.common import CancelCheck, Progress, Report

    WorkFn = Callable[[Progress, CancelCheck], Report]  # what a dialog's job runs on the worker


def report_text(rep: Report, verb: str) -> str:
    head = f"{verb}: {rep.summary()}" + (f"\n→ {rep.out}" if rep.out else "")
    return "\n".join([head, *rep.lines(200)])


def start_dir(text: str) -> str:
    """Where a Browse… dialog opens: the folder of the path typed or remembered (else the default)."""
    t = text.strip()
    if not t:
        return ""
    p = Path(t).expanduser()
    for d in (p, p.parent):
        if d.is_dir():
            return str(d)
    return ""


def _path_row(edit: QLineEdit, pick: Callable[[], None]) -> QWidget:
    w = QWidget()
    lay = QHBoxLayout(w)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(edit)
    b = QPushButton("Browse…")
    connect_plain(b.clicked, pick)
    lay.addWidget(b)
    return w


CLASS_LIST_FORMATS = ("labelmap", "yolo")
IMPORT_HINTS = {
    "labelmap": ("One PNG per image, named like the image. Pixel values: 0 = background (no region), "
                 "1…N = the classes, line k of the class list naming value k (a class_names.txt beside the "
                 "PNGs is read when no list is given; unnamed values become class_<value>), "
                 "255 (65535 in 16-bit maps) = ignore: imported as an “__ignore__” class that training "
                 "skips and exports leave out. Binary masks (only 0 and 255): 255 is a class, named by a "
                 "one-line class list, or you are asked."),
    "yolo": "Class numbers count from 0, line 0 of the class names file naming class 0.",
    "coco": "Categories become classes by name; a “background” category is left out.",
}


def _select(combo: QComboBox, data: Any) -> None:
    """Choose the entry whose data is `data` (a remembered choice no longer offered is left alone)."""
    k = combo.findData(data) if data is not None else -1
    if k >= 0:
        combo.setCurrentIndex(k)


class _JobDialog(QDialog):
    """Shared body: a form, Run/Cancel/Close, a progress bar and a report box."""

    verb = "Done"

    def __init__(self, parent: QWidget | None, title: str) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumWidth(560)
        self.form_box = QWidget()  # the choices: disabled while a run goes on, usable again after it
        self.form = QFormLayout(self.form_box)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.report = QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.setVisible(False)
        self.buttons = QDialogButtonBox()
        self.run_button = self.buttons.addButton("Run", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.close_button.setVisible(False)
        connect_plain(self.run_button.clicked, self.run)
        connect_plain(self.cancel_button.clicked, self._cancel)
        connect_plain(self.close_button.clicked, self.accept)
        # the report takes what height is left and gives it up first: the form's wrapped hints keep theirs
        self.report.setMinimumHeight(3 * self.report.fontMetrics().lineSpacing() + 12)
        lay = QVBoxLayout(self)
        lay.addWidget(self.form_box)
        lay.addWidget(self.progress)
        lay.addWidget(self.report, 1)
        lay.addWidget(self.buttons)
        self.job: Job | None = None
        self.kept: KeptChoices | None = None
        self.result = None  # type: ignore[method-assign,assignment]  # the Report once run (tests read it); QDialog.result() unused

    def work(self) -> WorkFn | None:  # None: nothing to run (the reason is shown)
        raise NotImplementedError

    def fit_height(self) -> None:
        """Grow to the height the wrapped labels need at the dialog's width, once their text or
        what is shown changed: Qt sizes a window from its size hint, blind to height-for-width,
        and squeezes a longer hint into one line's height, cut at top and bottom. Never taller
        than the screen (the report box then shrinks); never shrinks (the user's size stays).
        Again once the events queued now are handled: a label's new text reaches the form's
        height-for-width only then."""
        self._fit_now()
        QTimer.singleShot(0, self, self._fit_now)  # with the dialog as context: not after it is gone

    def _fit_now(self) -> None:
        lay = self.layout()
        if lay is None:
            return
        lay.activate()
        need = lay.totalHeightForWidth(self.width()) if lay.hasHeightForWidth() else -1
        need = max(need, lay.totalSizeHint().height() if need < 0 else need, lay.totalMinimumSize().height())
        screen = self.screen()
        if screen is not None:
            need = min(need, screen.availableGeometry().height() - 40)
        if self.height() < need:
            self.resize(self.width(), need)

    def _show_in_report(self, text: str) -> None:
        """A reason nothing was run, in the report box."""
        self.report.setVisible(True)
        self.report.setPlainText(text)
        self.fit_height()

    # the choices kept in the project's store (subclasses name the key and the fields)
    kept_key = ""

    def choices(self) -> dict[str, Any]:
        return {}

    def restore(self, kept: dict[str, Any]) -> None:
        pass

    def _keep_choices(self, store: Store) -> None:
        """Open with the choices of the last run on this project (called once the form is built)."""
        self.kept = KeptChoices(store, self.kept_key, self.choices, self)
        self.restore(self.kept.load())

    def ready(self) -> bool:
        """Whether Run can be pressed now (the export needs an image to export)."""
        return True

    def run(self) -> None:
        fn = self.work()
        if fn is None:
            return
        if self.kept is not None:  # a run's choices are the ones to open with next time
            self.kept.changed()
            self.kept.flush()
        self.run_button.setEnabled(False)
        self.form_box.setEnabled(False)
        self.report.setVisible(False)
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.fit_height()
        self.job = Job(fn, self)
        self.job.progress.connect(self._progress)
        self.job.returned.connect(self._finished)
        self.job.errored.connect(self._failed)
        self.job.start()

    def _progress(self, done: int, total: int, text: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"%v / %m  {text[-60:]}")

    def _finished(self, rep: Report) -> None:
        self.result = rep  # type: ignore[method-assign,assignment]  # see __init__
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self._show_report(report_text(rep, self.verb))

    def _failed(self, failure: Failure) -> None:
        from segstudio.core.errors import describe
        from segstudio.io.common import Cancelled
        e = failure.error
        if isinstance(e, Cancelled):
            self._show_report("Cancelled. " + self.cancelled_note)
            return
        self._show_report(f"Failed: {describe(e)}\n\n{self.failed_note}")

    cancelled_note = ""
    failed_note = "Fix what the message above names and run again."

    def _show_report(self, text: str) -> None:
        """The run is over: its report, and the form usable again (change it and Run again, or Close)."""
        self.report.setVisible(True)
        self.report.setPlainText(text)
        self.cancel_button.setVisible(False)
        self.close_button.setVisible(True)
        self.form_box.setEnabled(True)
        self.run_button.setText("Run again")
        self.run_button.setVisible(True)
        self.run_button.setEnabled(self.ready())
        self.fit_height()

    def _cancel(self) -> None:
        if self.job is not None and self.job.running():
            self.job.cancel()
        else:
            self.reject()

    def closeEvent(self, e: QCloseEvent) -> None:
        if self.job is not None and self.job.running():
            self.job.cancel()
            self.job.wait(30)
        super().closeEvent(e)


class ImportDialog(_JobDialog):
    verb = "Imported"
    cancelled_note = "Images imported before the cancel keep their annotations."
    failed_note = ("What to do: check that the source is in the format chosen above (and the class list, "
                   "if one is given), then Run again. Images imported before the failure keep their annotations.")

    def __init__(self, parent: QWidget | None, project: Project) -> None:
        super().__init__(parent, "Import annotations")
        self.project = project
        self.binary_question = BinaryQuestion(self, project.store)
        self.fmt = QComboBox()
        for k, (label, _) in offered_import_formats().items():  # datumaro's formats when it is installed
            self.fmt.addItem(label, k)
        self.source = QLineEdit()
        self.classes = QLineEdit()
        self.classes.setPlaceholderText("optional: class names, one per line")
        self.status = QComboBox()
        for s in STATUSES:
            self.status.addItem(s.replace("_", " "), s)
        self.status.setCurrentIndex(STATUSES.index(DONE))
        self.hint = plain_label("")
        self.form.addRow("Format", self.fmt)
        self.form.addRow("", self.hint)
        self.form.addRow("Source", _path_row(self.source, self._pick_source))
        self.class_row = _path_row(self.classes, self._pick_classes)
        self.form.addRow("Class list", self.class_row)
        self.form.addRow("Mark images", self.status)
        self.fmt.currentIndexChanged.connect(self._show_hint)
        self._keep_choices(project.store)
        self._show_hint()

    kept_key = "dialog/import"

    def choices(self) -> dict[str, Any]:
        return {"format": self.fmt.currentData(), "source": self.source.text().strip(),
                "classes": self.classes.text().strip(), "status": self.status.currentData()}

    def restore(self, kept: dict[str, Any]) -> None:
        _select(self.fmt, kept.get("format"))
        _select(self.status, kept.get("status"))
        for edit, key in ((self.source, "source"), (self.classes, "classes")):
            if isinstance(kept.get(key), str):
                edit.setText(kept[key])

    def _show_hint(self, *_: Any) -> None:
        self.hint.setText(IMPORT_HINTS.get(self.fmt.currentData(), ""))
        self.hint.setVisible(bool(self.hint.text()))
        self.fit_height()
        # only label maps and YOLO labels need a class list; the other formats name their classes
        self.form.setRowVisible(self.class_row, self.fmt.currentData() in CLASS_LIST_FORMATS)

    def _pick_source(self) -> None:
        kind = IMPORT_FORMATS[self.fmt.currentData()][1]
        if kind == "file":
            p, _ = QFileDialog.getOpenFileName(self, "COCO JSON", start_dir(self.source.text()),
                                               "JSON (*.json);;All files (*)")
        else:
            p = QFileDialog.getExistingDirectory(self, "Source folder", start_dir(self.source.text()))
        if p:
            self.source.setText(p)

    def _pick_classes(self) -> None:
        p, _ = QFileDialog.getOpenFileName(self, "Class names", start_dir(self.classes.text() or self.source.text()),
                                           "Text (*.txt *.names *.yaml);;All files (*)")
        if p:
            self.classes.setText(p)

    def work(self) -> WorkFn | None:
        src = self.source.text().strip()
        if not src or not Path(src).exists():
            self._show_error(f"Source not found: {src or '(none)'}")
            return None
        fmt, status = self.fmt.currentData(), self.status.currentData()
        classes = self.classes.text().strip() or None
        project = self.project
        ask = self.binary_question if fmt == "labelmap" else None  # what 255 of 0/255 masks is
        return lambda progress, cancelled: run_import(fmt, project, src, classes, status, progress, cancelled, ask)

    def _show_error(self, text: str) -> None:
        self._show_in_report(text)


class ExportDialog(_JobDialog):
    verb = "Exported"
    cancelled_note = "Nothing was written."
    failed_note = ("What to do: choose another output, or fix the cause named above (a folder you may not write "
                   "to, a full disk, a file another program holds open), then Run again. The export writes to a "
                   "temporary file first: an earlier export at the output is left as it was.")

    def __init__(self, parent: QWidget | None, project: Project) -> None:
        super().__init__(parent, "Export dataset")
        self.project = project
        self.fmt = QComboBox()
        for k, label in offered_export_formats().items():
            self.fmt.addItem(label, k)
        self.out = QLineEdit()
        self.polygons = QCheckBox("Polygons where faithful (else RLE)")
        self.status_boxes = {}
        # counted as the Files panel counts: an image whose file cannot be read is not work of its
        # status (the export leaves it out and says so)
        self.unreadable = {s: len(project.store.image_ids([s], unreadable=True)) for s in STATUSES}
        self.counts = {s: n - self.unreadable.get(s, 0) for s, n in project.store.status_counts().items()}
        self.review = ReviewChoice(project.store)  # with review on: an "accepted" box, ticked instead of done
        self.counts[ACCEPTED], self.unreadable[ACCEPTED] = self.review.accepted, self.review.accepted_unreadable
        sw = QWidget()
        sl = QGridLayout(sw)  # three a row: six boxes (review's "accepted" too) fit the dialog's width
        sl.setContentsMargins(0, 0, 0, 0)
        for k, s in enumerate(self.review.boxes()):
            cb = QCheckBox(f"{s.replace('_', ' ')} ({self.counts.get(s, 0)})")
            # only reviewed images by default: a new, predicted or half-corrected image's regions
            # are not ground truth (nor, with review on, a done one no reviewer accepted yet)
            cb.setChecked(s in self.review.defaults)
            cb.toggled.connect(self._update_summary)
            self.status_boxes[s] = cb
            sl.addWidget(cb, k // 3, k % 3)
        sl.setColumnStretch(3, 1)
        self.summary = plain_label("")
        self.form.addRow("Format", self.fmt)
        self.form.addRow("Output", _path_row(self.out, self._pick_out))
        self.form.addRow("COCO", self.polygons)
        self.form.addRow("Images", sw)
        self.form.addRow("", self.summary)
        self.fmt.currentIndexChanged.connect(self._format_changed)
        self._keep_choices(project.store)
        self._format_changed()
        self._update_summary()

    kept_key = "dialog/export"

    def choices(self) -> dict[str, Any]:
        return {"format": self.fmt.currentData(), "out": self.out.text().strip(),
                "polygons": self.polygons.isChecked(), "statuses": list(self.statuses()), "review": self.review.on}

    def restore(self, kept: dict[str, Any]) -> None:
        _select(self.fmt, kept.get("format"))
        if isinstance(kept.get("out"), str):
            self.out.setText(kept["out"])
        if isinstance(kept.get("polygons"), bool):
            self.polygons.setChecked(kept["polygons"])
        statuses = kept.get("statuses")
        # statuses chosen before review was turned on (or off) give way to the defaults of now
        if isinstance(statuses, list) and statuses and kept.get("review", False) is self.review.on:
            for s, cb in self.status_boxes.items():
                cb.setChecked(s in statuses)

    def _format_changed(self, *_: Any) -> None:
        self.polygons.setEnabled(self.fmt.currentData() == "coco")

    def ready(self) -> bool:
        return any(self.counts.get(s, 0) for s in self.review.counted(self.statuses()))

    def statuses(self) -> tuple[str, ...]:
        return tuple(s for s, cb in self.status_boxes.items() if cb.isChecked())

    def _update_summary(self, *_: Any) -> None:
        """How many images of each status the export takes, as the boxes are ticked."""
        chosen = sorted(((s, self.counts.get(s, 0)) for s in self.review.counted(self.statuses())),
                        key=lambda t: (t[0] != ACCEPTED, t[0] != DONE))
        total = sum(n for _, n in chosen)
        parts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in chosen if n)
        bad = sum(self.unreadable.get(s, 0) for s, _ in chosen)
        left_out = f". {counted(bad, 'unreadable image')} {'is' if bad == 1 else 'are'} left out" if bad else ""
        unaccepted = self.review.left_out(self.statuses())
        left_out += f". {unaccepted}" if unaccepted else ""
        if total == 0:
            self.summary.setText(("No images to export: no image has the statuses ticked"
                                  if chosen else "No images to export: tick at least one status") + left_out + ".")
            self.summary.setStyleSheet("color: #c33;")
        else:
            unreviewed = [s for s, n in chosen if n and s not in (DONE, SKIPPED, ACCEPTED)]
            self.summary.setText(f"Will export {counted(total, 'image')}: {parts}" +
                                 (". Images not marked done may hold uncorrected model output"
                                  if unreviewed else "") + left_out + ("." if unreviewed or left_out else ""))
            self.summary.setStyleSheet("")
        self.run_button.setEnabled(total > 0 and (self.job is None or not self.job.running()))
        self.fit_height()

    def _pick_out(self) -> None:
        if self.fmt.currentData() == "coco":
            # segstudio decides what may be replaced (only its own files): no "replace?" prompt here
            start = self.out.text().strip()
            if not start.lower().endswith(".json"):
                start = str(Path(start_dir(start) or ".") / "annotations.json")
            p, _ = QFileDialog.getSaveFileName(self, "COCO JSON", start, "JSON (*.json)",
                                               options=QFileDialog.Option.DontConfirmOverwrite)
        else:
            p = QFileDialog.getExistingDirectory(
                self, "Output folder (new, empty, or an earlier segstudio export)", start_dir(self.out.text()))
        if p:
            self.out.setText(p)

    def work(self) -> WorkFn | None:
        out = self.out.text().strip()
        if not out:
            self._show_in_report("Choose where to write the export.")
            return None
        statuses = self.statuses()
        if not statuses:
            return None
        fmt, poly, project = self.fmt.currentData(), self.polygons.isChecked(), self.project
        try:
            check_export_target(fmt, project, out)  # refuse now; the export checks again
        except ExportTargetError as e:
            self._show_in_report(f"Cannot export there: {e}")
            return None
        return lambda progress, cancelled: run_export(fmt, project, out, statuses, poly, progress, cancelled)


# shortcuts that are not actions (mouse and canvas keys), listed after the menus' ones
EXTRA_SHORTCUTS = [("Canvas", "Zoom about the cursor", "Mouse wheel, trackpad pinch"),
                   ("Canvas", "Pan", "Middle drag, Space + drag"),
                   ("Canvas", "Close polygon", "Enter, double-click"),
                   ("Canvas", "Cancel shape", "Esc"), ("Classes", "Current class", "1 … 9")]


class ShortcutsDialog(QDialog):
    """Every action with a shortcut, read from the live actions (so it never goes stale)."""

    def __init__(self, parent: QWidget | None, menus: Iterable[QMenu]) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        rows = []
        for menu in menus:
            for a in menu.actions():
                keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in a.shortcuts()]
                if keys and a.text():
                    rows.append((menu.title().replace("&", ""), a.text().replace("&", ""), ", ".join(keys)))
        rows += EXTRA_SHORTCUTS
        self.table = QTableWidget(len(rows), 3, self)
        self.table.setHorizontalHeaderLabels(["Menu", "Action", "Shortcut"])
        for r, row in enumerate(rows):
            for c, v in enumerate(row):
                self.table.setItem(r, c, QTableWidgetItem(v))
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        lay = QVBoxLayout(self)
        lay.addWidget(self.table)
        bb = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        bb.rejected.connect(self.reject)
        bb.accepted.connect(self.accept)
        connect_plain(bb.button(QDialogButtonBox.StandardButton.Close).clicked, self.accept)
        lay.addWidget(bb)
        self.resize(560, 620)
        self.rows = rows


def confirm_unsaved(parent: QWidget, session: Session) -> bool:
    """Flush the session; while the store refuses, ask Retry / Discard / Cancel. True: nothing
    unsaved is left (written, or discarded by the person's choice); False: keep working."""
    while not session.flush():
        names = session.unsaved_images()
        if not names:
            return True
        reasons = sorted(set(session.save_errors.values())) or ["the writes did not finish"]
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        B = QMessageBox.StandardButton
        answer = QMessageBox.warning(
            parent, "Edits not saved",
            f"The edits to {shown} could not be saved: {'; '.join(reasons)}.\n\n"
            "Retry to try again (free some disk space or close the other program first), "
            "Discard to close and lose these edits, Cancel to keep working.",
            B.Retry | B.Discard | B.Cancel, B.Retry)
        if answer == B.Discard:
            session.discard_unsaved()
            return True
        if answer != B.Retry:
            return False
    return True
