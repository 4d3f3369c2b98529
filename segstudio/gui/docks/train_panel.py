"""The learning loop in the Model dock: train on the done images in the background with a live
loss / validation curve (pyqtgraph), cancel (the best checkpoint so far is kept), then re-predict
the unfinished images with the new checkpoint, and evaluate into a table."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout,
                               QHeaderView, QProgressBar, QPushButton, QSpinBox, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from segstudio.gui.docks.common import KeptChoices, plain_label
from segstudio.gui.plot_wheel import guard_plot_wheel
from segstudio.gui.plot_style import BACKGROUND, ink_plot
from segstudio.gui.workers import Background
from segstudio.gui.signals import connect_plain

if TYPE_CHECKING:  # torch is imported on the model thread, when training starts
    from segstudio.gui.model_choice import ModelChoice
    from segstudio.gui.model_worker import ModelWorker
    from segstudio.inference.training.common import TrainProgress

SETTINGS_KEY = "train_panel"  # budget and options, kept in the project's store


def _train_job(family_key: str, settings: dict):
    """The function the model thread runs (torch is imported there, not here): the family's own
    trainer, from the settings its config understands (inference/training/recipes.py)."""
    def run(worker, cancelled):
        from segstudio.inference import registry
        from segstudio.inference.training.recipes import train_family
        res = train_family(worker.project, registry.family(family_key), settings,
                           progress=worker.train_progress.emit, cancel=cancelled)
        worker.train_done.emit(res)
    return run


def _eval_job(spec: dict, split: str | None):
    def run(worker, cancelled):
        from segstudio.inference.runtime.engine import ModelSpec, load_segmenter, read_checkpoint
        from segstudio.inference.training.evaluate import evaluate_project
        seg = load_segmenter(ModelSpec(**{**spec, "score_threshold": 0.05}), worker.project)
        ids = None
        if split and spec.get("weights"):
            paths = read_checkpoint(spec["weights"]).training.get(f"{split}_images") or []
            recs = [worker.project.store.image_by_path(p) for p in paths]
            ids = [r.id for r in recs if r is not None] or None
        worker.eval_done.emit(evaluate_project(worker.project, seg, image_ids=ids, cancel=cancelled))
    return run


class TrainPanel(QWidget):
    trained = Signal(object)  # TrainResult
    busy_changed = Signal()  # training started or stopped: the Model panel's buttons follow

    def __init__(self, choice: ModelChoice, worker: ModelWorker, flush_edits: Callable[[], None],
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.choice, self.worker, self.project = choice, worker, worker.project
        self._flush_edits = flush_edits
        self.budget_kind = QComboBox()
        self.budget_kind.addItem("Epochs", "epochs")
        self.budget_kind.addItem("Minutes", "minutes")
        self.budget = QDoubleSpinBox()
        self.budget.setRange(1, 100000)
        self.budget.setDecimals(0)
        self.budget.setValue(30)
        brow = QHBoxLayout()
        brow.addWidget(self.budget)
        brow.addWidget(self.budget_kind)
        self.val_fraction = QDoubleSpinBox()
        self.val_fraction.setRange(0.0, 0.5)
        self.val_fraction.setSingleStep(0.05)
        self.val_fraction.setValue(0.2)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2 ** 31 - 1)
        self.ignore_unlabelled = QCheckBox("Ignore unlabelled pixels (scribbles)")
        self.ignore_unlabelled.setToolTip(
            "Sparse or scribble labels. UNet: learn only from the pixels you painted. Without it, every "
            "pixel no region covers is "
            "learned as background, right for complete labels, wrong for scribbles. With it, paint "
            "background with a class named “background”.")
        self.ignore_unlabelled.toggled.connect(self._show_coverage)
        self.coverage_label = plain_label("")
        self.coverage_label.setStyleSheet("color: #a60;")
        self.coverage_label.setVisible(False)
        self.coverage = None  # core.coverage.Coverage of the done images, when checked
        self._checks = Background(1, "segstudio-coverage", self)
        self._checking = self._again = False
        self._stale = True
        self._recheck = QTimer(self)
        self._recheck.setSingleShot(True)
        self._recheck.setInterval(500)
        self._recheck.timeout.connect(self.check_coverage)
        self.train_button = QPushButton("Train on done images")
        connect_plain(self.train_button.clicked, self.train)
        self.repredict = QPushButton("Re-predict unfinished images")
        self.repredict.setToolTip("Segment the new and predicted images again with the newest checkpoint")
        connect_plain(self.repredict.clicked, self.re_predict)
        self.repredict.setEnabled(False)
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.setToolTip("Score the chosen checkpoint on its validation images "
                                        "(or on all done images when it records none)")
        connect_plain(self.evaluate_button.clicked, self.evaluate)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.status = plain_label("")
        # styled per plot: pyqtgraph's global options would restyle every plot in the process
        self.plot = pg.GraphicsLayoutWidget()
        self.plot.setBackground(BACKGROUND)
        self.plot.setMinimumHeight(200)
        self.loss_plot = self.plot.addPlot(row=0, col=0)
        self.val_plot = self.plot.addPlot(row=1, col=0)
        for item, title in ((self.loss_plot, "training loss"), (self.val_plot, "validation")):
            ink_plot(item, title)
        self.val_plot.setXLink(self.loss_plot)
        self.plot_wheel = guard_plot_wheel(self.plot)  # the wheel scrolls the panel until the chart is clicked
        self.loss_curve = self.loss_plot.plot(pen=pg.mkPen((200, 80, 20), width=1.5), antialias=True)
        self.val_curve = self.val_plot.plot(pen=pg.mkPen((30, 140, 30), width=2), symbol="o", symbolSize=5,
                                            antialias=True)
        self.val_plot.setLabel("bottom", "step")
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Metric", "Value"])
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().hide()
        self.table.setVisible(False)
        self.val_fraction.setToolTip("Share of the done images held out to choose the best checkpoint")
        box = QGroupBox("Train")
        form = QFormLayout(box)
        form.addRow("Budget", brow)
        form.addRow("Validation", self.val_fraction)
        form.addRow("Seed", self.seed)
        form.addRow(self.ignore_unlabelled)
        form.addRow(self.coverage_label)
        form.addRow(self.train_button)
        form.addRow(self.progress)
        form.addRow(self.status)
        form.addRow(self.plot)
        row = QHBoxLayout()
        row.addWidget(self.repredict)
        row.addWidget(self.evaluate_button)
        form.addRow(row)
        form.addRow(self.table)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(box)
        self._steps: list[int] = []
        self._losses: list[float] = []
        self._val_steps: list[int] = []
        self._vals: list[float] = []
        self.worker.train_progress.connect(self._progress)
        self.worker.train_done.connect(self._done)
        self.worker.eval_done.connect(self._eval_done)
        self.worker.job_failed.connect(lambda m: self._stop(f"Failed: {m}"))
        self.training = False
        self.kept = KeptChoices(self.project.store, SETTINGS_KEY, self.choices, self)
        self.restore_choices()
        for sig in (self.budget.valueChanged, self.budget_kind.currentIndexChanged, self.val_fraction.valueChanged,
                    self.seed.valueChanged, self.ignore_unlabelled.toggled):
            sig.connect(self.kept.changed)
        choice.on_change(lambda what: self._arch_changed() if what == "family" else None)
        self._arch_changed()

    @property
    def losses(self) -> tuple[float, ...]:
        """The training loss of each step of the current (or last) run, as the curve has them."""
        return tuple(self._losses)

    @property
    def val_scores(self) -> tuple[float, ...]:
        """The validation score of each finished epoch of the current (or last) run."""
        return tuple(self._vals)

    # ---------------------------------------------------------------- kept with the project
    def choices(self) -> dict:
        return {"budget": self.budget.value(), "budget_kind": self.budget_kind.currentData(),
                "val_fraction": self.val_fraction.value(), "seed": self.seed.value(),
                "ignore_unlabelled": self.ignore_unlabelled.isChecked()}

    def restore_choices(self) -> None:
        d = self.kept.load()
        self.kept.paused = True
        try:
            i = self.budget_kind.findData(d.get("budget_kind"))
            if i >= 0:
                self.budget_kind.setCurrentIndex(i)
            for box, key in ((self.budget, "budget"), (self.val_fraction, "val_fraction")):
                if isinstance(d.get(key), (int, float)):
                    box.setValue(float(d[key]))
            if isinstance(d.get("seed"), int):
                self.seed.setValue(d["seed"])
            if isinstance(d.get("ignore_unlabelled"), bool):
                self.ignore_unlabelled.setChecked(d["ignore_unlabelled"])
        finally:
            self.kept.paused = False

    # ---------------------------------------------------------------- how completely the done images are labelled
    def _arch_changed(self) -> None:
        unet = self.choice.family.semantic
        self.ignore_unlabelled.setEnabled(unet)
        self._show_coverage()
        if unet:
            self.check_coverage()

    def showEvent(self, e) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(e)
        if self._stale:
            self.check_coverage()

    def hideEvent(self, e) -> None:  # noqa: N802 (Qt's name)
        self.kept.flush()
        super().hideEvent(e)

    def labels_changed(self) -> None:
        """Statuses or regions changed (the window calls this): look again, a moment later
        (now when the panel is shown, else when it is next shown)."""
        self._stale = True
        if self.isVisible():
            self._recheck.start()

    def check_coverage(self) -> None:
        """Look (on a thread) for done images whose regions cover little of the image; the panel
        then says so before training learns their unlabelled pixels as background (a UNet's
        concern: Mask R-CNN learns the objects drawn)."""
        if not self.choice.family.semantic:
            self._stale = True  # looked at when a UNet is chosen
            return
        self._stale = False
        if self._checking:
            self._again = True  # the running check may have missed the latest change
            return
        self._checking, self._again = True, False
        project = self.project

        def work():
            from segstudio.core.coverage import sparse_images
            return sparse_images(project)
        self._checks.submit(work, self._coverage_done, self._coverage_failed)

    def _coverage_done(self, cov) -> None:
        self._checking = False
        self.coverage = cov
        self._show_coverage()
        if self._again:
            self.check_coverage()

    def _coverage_failed(self, f) -> None:
        self._checking = False
        import logging
        logging.getLogger(__name__).warning("could not check how much of the done images is labelled: %s", f.error)

    def _show_coverage(self, *_) -> None:
        cov = self.coverage
        text = cov.warning(self.ignore_unlabelled.isChecked()) if cov is not None else ""
        if not self.choice.family.semantic:
            text = ""  # Mask R-CNN learns the objects drawn, not a class for every pixel
        self.coverage_label.setText(text)
        self.coverage_label.setVisible(bool(text))

    def settings(self) -> dict:
        kind, value = self.budget_kind.currentData(), self.budget.value()
        return {"epochs": int(value) if kind == "epochs" else None,
                "minutes": float(value) if kind == "minutes" else None,
                "device": self.choice.device, "val_fraction": self.val_fraction.value(),
                "seed": self.seed.value(), "weights": self.choice.weights, "version": self.choice.variant,
                "ignore_unlabelled": self.ignore_unlabelled.isChecked() and self.choice.family.semantic}

    def train(self) -> None:
        if self.training:
            return
        self._flush_edits()
        self.check_coverage()  # the edits just saved may have changed what is done
        fam = self.choice.family
        self._steps, self._losses, self._val_steps, self._vals = [], [], [], []
        self.loss_curve.setData([], [])
        self.val_curve.setData([], [])
        self.val_plot.setTitle("validation mean IoU" if fam.semantic else "validation mask AP")
        self.training = True
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.status.setText(f"Training {fam.title} on the done images… (annotating goes on meanwhile)"
                            + (" — queued after the model's current task" if self.worker.busy else ""))
        self.busy_changed.emit()
        self.worker.run_job("train", _train_job(fam.key, self.settings()))

    def _progress(self, p: TrainProgress) -> None:
        if p.phase == "train":
            self._steps.append(p.step)
            self._losses.append(p.loss)
            if len(self._steps) % 5 == 0 or len(self._steps) < 20:
                k = max(1, len(self._losses) // 60)
                ys = np.convolve(self._losses, np.ones(k) / k, mode="valid")
                self.loss_curve.setData(self._steps[k - 1:], ys)
            if p.minutes:
                self.progress.setRange(0, int(p.minutes * 60))
                self.progress.setValue(int(p.elapsed))
            elif p.epochs:
                total = p.epochs * p.steps_per_epoch
                self.progress.setRange(0, total)
                self.progress.setValue(p.step)
            if p.stage == "final fit":  # no validation in this stage: say what it does instead
                self.status.setText(f"{p.note}: loss {p.loss:.4f}, {p.elapsed:.0f} s")
        else:
            metric = p.score or 0.0
            self._val_steps.append(p.step)
            self._vals.append(metric)
            self.val_curve.setData(self._val_steps, self._vals)
            self.status.setText(f"epoch {p.epoch}: loss {p.loss:.4f}, validation {metric:.4f} "
                                f"(best {p.best:.4f}), {p.elapsed:.0f} s")

    def _done(self, res) -> None:
        ff = res.final_fit
        if ff is not None and not ff.get("cancelled"):
            best = (f"validation before the final fit {self._metric_text(res.best_metrics)}, then a final fit on "
                    f"all {len(ff['images'])} images")
        else:
            best = f"best {self._metric_text(res.best_metrics)}"
        self._stop(f"Done ({res.stopped}): {best} in {res.seconds:.0f} s on "
                   f"{res.device}; started from {res.start}. Saved {res.best_path}")
        self.choice.load_checkpoint(res.best_path)  # the new checkpoint is the pre-label model now
        self.repredict.setEnabled(True)
        self.trained.emit(res)

    @staticmethod
    def _metric_text(m: dict) -> str:
        if "mean_iou" in m and m["mean_iou"] is not None:
            return f"mean IoU {m['mean_iou']:.4f}, pixel accuracy {m['pixel_accuracy']:.4f}"
        if m.get("mask_AP") is not None:
            return f"mask AP {m['mask_AP']:.4f}"
        return "(no validation images)"

    def _stop(self, text: str) -> None:
        self.training = False
        self.progress.setVisible(False)
        self.status.setText(text)
        self.busy_changed.emit()

    def re_predict(self) -> None:
        self.choice.segment_unlabelled()

    def evaluate(self) -> None:
        spec = self.choice.prelabel_spec()
        if not self.choice.family.pretrained and not spec["weights"]:
            self.status.setText("Choose a checkpoint to evaluate")
            return
        self._flush_edits()
        self.status.setText("Evaluating…")
        self.worker.run_job("evaluate", _eval_job(spec, "val"))

    def _eval_done(self, rep) -> None:
        rows = [("images", str(rep.images)), ("kind", rep.kind)]
        for k, v in rep.metrics.items():
            if isinstance(v, dict):
                rows += [(f"IoU {n}", "-" if x is None else f"{x:.4f}") for n, x in v.items()]
            elif isinstance(v, float):
                rows.append((k.replace("_", " "), f"{v:.4f}"))
            elif v is not None:
                rows.append((k.replace("_", " "), str(v)))
        self.table.setRowCount(len(rows))
        for r, (a, b) in enumerate(rows):
            self.table.setItem(r, 0, QTableWidgetItem(a))
            self.table.setItem(r, 1, QTableWidgetItem(b))
        self.table.setVisible(True)
        self.status.setText(f"Evaluated on {rep.images} images")
