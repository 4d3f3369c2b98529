"""Learn as I annotate: each image marked done starts a short update of the model (warm start,
on every done image) on the model thread, then the next unfinished images are re-predicted, so
the image the user goes to next already shows what the model learnt. Versions are listed with
their validation score; any earlier one can be rolled back to."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QPushButton, QSpinBox,
                               QVBoxLayout, QWidget)

from segstudio.core.errors import describe
from segstudio.core.records import DONE
from segstudio.gui.docks.common import KeptChoices, plain_label
from segstudio.gui.plot_style import BACKGROUND, ink_plot
from segstudio.gui.plot_wheel import guard_plot_wheel
from segstudio.inference.family import LEARN_LIVE
from segstudio.inference.training.live import version_arch
from segstudio.gui.signals import connect_plain

if TYPE_CHECKING:
    from segstudio.gui.model_choice import ModelChoice
    from segstudio.gui.model_worker import ModelWorker

SETTINGS_KEY = "live_panel"
DEFAULT_SECONDS = 30  # training per update: long enough to learn from the new image, short enough to keep up
DEFAULT_AHEAD = 3  # unfinished images re-predicted after each update


def _live_job(panel: "LivePanel", settings: dict):
    """What the model thread runs (torch is imported there): one update, then the next unfinished
    images re-predicted by the new version, loaded once; the window then adopts that same model
    as its pre-label model (ModelWorker.adopt) instead of loading the file again."""
    def run(worker, cancelled) -> None:
        from segstudio.inference.runtime.engine import ModelSpec, load_segmenter
        from segstudio.inference.training.live import LiveConfig, LiveLearner
        try:
            learner = LiveLearner(worker.project, LiveConfig(arch=settings["arch"], seconds=settings["seconds"],
                                                             ahead=settings["ahead"], device=settings["device"],
                                                             trainer=settings.get("trainer", {})))
            learner.current = settings["start"]
            version = learner.update(cancel=cancelled)
            seg = load_segmenter(ModelSpec(**{**settings["spec"], "weights": version.path}), worker.project)
            ids = [] if cancelled() else learner.next_images(panel.open_path)
            # the open image is never re-predicted under the user (read at commit time)
            rep = learner.repredict(ids, may_write=lambda iid: iid != panel.open_id, cancel=cancelled,
                                    segmenter=seg) if ids else None
            panel.updated.emit((version, rep, seg))
        except Exception as e:  # noqa: BLE001 - shown in the panel; the next done image tries again
            panel.update_failed.emit(describe(e))
    return run


def _warm_up(worker, cancelled) -> None:
    """The model thread loads the trainers when the switch goes on (see inference.live.warm_up)."""
    from segstudio.inference.training.live import warm_up
    warm_up()


class LivePanel(QWidget):
    updated = Signal(object)  # (LiveVersion, PredictReport | None, its segmenter), from the model thread
    update_failed = Signal(str)
    repredicted = Signal(list)  # ids of images that got new predictions

    def __init__(self, choice: ModelChoice, worker: ModelWorker, flush_edits: Callable[[], None],
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.choice, self.worker, self.project = choice, worker, worker.project
        self._flush_edits = flush_edits
        self.open_id: int | None = None  # the image in the window (read by the model thread)
        self.open_path: str | None = None
        self.running = self._again = False
        self._updating: dict | None = None  # the pre-label spec of the running update
        self._start: str | None = None  # a version rolled back to: the next update starts there
        self.enabled = QCheckBox("Learn as I annotate")
        self.enabled.setToolTip("Each image you mark done (Ctrl+Enter) teaches the model for a short while, "
                                "then the next unfinished images are predicted again with what it learnt. "
                                "Images you have edited are never re-predicted.")
        self.seconds = QSpinBox()
        self.seconds.setRange(5, 3600)
        self.seconds.setSuffix(" s")
        self.seconds.setValue(DEFAULT_SECONDS)
        self.seconds.setToolTip("Training time per update")
        self.ahead = QSpinBox()
        self.ahead.setRange(0, 50)
        self.ahead.setValue(DEFAULT_AHEAD)
        self.ahead.setToolTip("How many of the next unfinished images to predict again after each update")
        self.status = plain_label("Off.")
        self.plot = pg.PlotWidget()
        self.plot.setBackground(BACKGROUND)
        self.plot.setMinimumHeight(140)
        ink_plot(self.plot.getPlotItem(), "validation score per version")
        self.plot.setLabel("bottom", "version")
        self.plot_wheel = guard_plot_wheel(self.plot)  # the wheel scrolls the panel until the chart is clicked
        self.curve = self.plot.plot(pen=pg.mkPen((30, 140, 30), width=2), symbol="o", symbolSize=6, antialias=True)
        self.versions = QComboBox()
        self.rollback_button = QPushButton("Roll back")
        self.rollback_button.setToolTip("Use this version: it predicts from now on and the next update starts from it")
        connect_plain(self.rollback_button.clicked, self.rollback)
        box = QGroupBox("Learn as I annotate")
        form = QFormLayout(box)
        form.addRow(self.enabled)
        form.addRow("Update for", self.seconds)
        form.addRow("Re-predict next", self.ahead)
        form.addRow(self.status)
        form.addRow(self.plot)
        row = QHBoxLayout()
        row.addWidget(self.versions, 1)
        row.addWidget(self.rollback_button)
        form.addRow("Version", row)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(box)
        self.updated.connect(self._updated)
        self.update_failed.connect(self._failed)
        self.kept = KeptChoices(self.project.store, SETTINGS_KEY, self.choices, self)
        self.restore_choices()
        for sig in (self.enabled.toggled, self.seconds.valueChanged, self.ahead.valueChanged):
            sig.connect(self.kept.changed)
        self.enabled.toggled.connect(self._switched)
        choice.on_change(lambda what: self.refresh_versions() if what in ("family", "loaded") else None)
        self.refresh_versions()
        if self.enabled.isChecked():
            self._switched(True)

    def _switched(self, on: bool) -> None:
        self.status.setText("On: mark an image done to start an update." if on else "Off.")
        if on:
            self.worker.run_job("live warm-up", _warm_up)

    # ---------------------------------------------------------------- kept with the project
    def choices(self) -> dict:
        return {"enabled": self.enabled.isChecked(), "seconds": self.seconds.value(), "ahead": self.ahead.value()}

    def restore_choices(self) -> None:
        c = self.kept.load()
        if isinstance(c.get("seconds"), int):
            self.seconds.setValue(c["seconds"])
        if isinstance(c.get("ahead"), int):
            self.ahead.setValue(c["ahead"])
        self.enabled.setChecked(bool(c.get("enabled", False)))

    # ---------------------------------------------------------------- the window tells
    def image_opened(self, image_id: int, path: str) -> None:
        self.open_id, self.open_path = image_id, path

    def status_changed(self, image_id: int, status: str) -> None:
        if status == DONE and self.enabled.isChecked():
            self.request_update(flushed=True)  # the window saved the image's edits before its status

    # ---------------------------------------------------------------- updates
    def arch(self) -> str | None:
        """The checkpoint kind the pre-label model's live versions are ("unet" for every class-per-pixel
        network, "maskrcnn"); None for a family the learner cannot train."""
        fam = self.choice.learning_family()
        return fam.checkpoint_kind if fam.can(LEARN_LIVE) else None

    def request_update(self, flushed: bool = False) -> None:
        """Start an update, or one more after the running one (marks made meanwhile are coalesced).
        `flushed`: the caller saved the edits just now (marking an image done does)."""
        if self.running:
            self._again = True
            return
        if self.arch() is None:
            self.status.setText(f"Nothing learnt: {self.choice.learning_family().title} is the pre-label model, and "
                                "it does not learn as you annotate. Choose one that does in the Model panel.")
            return
        self.running, self._again = True, False
        if not flushed:
            self._flush_edits()  # the image just marked done is in the store before training reads it
        fam = self.choice.learning_family()  # the loaded pre-label model's, whatever the Kind list shows
        self._updating = spec = self.choice.learning_spec()  # the model the update loads its version as
        settings = {"arch": self.arch(), "seconds": float(self.seconds.value()), "ahead": self.ahead.value(),
                    "device": self.choice.device, "start": self._start, "spec": spec,
                    "trainer": dict(fam.trainer)}  # FCN / DeepLabV3: the first version fine-tunes their network
        self.status.setText(f"Updating {fam.title} for {self.seconds.value()} s…"
                            + (" (after the model's current task)" if self.worker.busy else ""))
        self.worker.run_job("live update", _live_job(self, settings))

    def _updated(self, result) -> None:
        version, rep, seg = result
        self.running = False
        self._start = None  # from now on the newest version is the one to build on
        score = _score(version.metrics)
        n = version.done_images
        text = (f"Version {version.version}: learnt from {n} done image{'' if n == 1 else 's'} "
                f"in {version.seconds:.0f} s")
        text += f", validation {score:.3f}" if score is not None else \
            " (scored once 4 images are done: one is then held aside to score each version)"
        ids: list[int] = []
        if rep is not None:
            ids = list(rep.written)
            text += f"; re-predicted {len(ids)} images"
            if rep.skipped:
                text += f" ({len(rep.skipped)} left alone: edited or open)"
        not_loaded = self._use(version.path, seg, self._updating)
        self.status.setText(text + "." + (f" {not_loaded}" if not_loaded else ""))
        self.refresh_versions()
        if ids:
            self.repredicted.emit(ids)
        if self._again and self.enabled.isChecked():
            self.request_update()

    def _failed(self, msg: str) -> None:
        self.running = False
        self.status.setText(f"Update failed: {msg}")
        if self._again and self.enabled.isChecked():
            self.request_update()

    def _use(self, path: str, seg=None, spec: dict | None = None) -> str | None:
        """The pre-label model's predictions (Segment image, its click answer) come from this version
        from now on, when the pre-label choice is still of its kind (the click model is never
        touched); else nothing is loaded over the chosen model (a kind switched to during the
        update), and the returned text says so. `seg`: the version already loaded by the update as
        `spec` says (adopted as it is only when the same family is still chosen: UNet and FCN
        versions are both "unet" checkpoints)."""
        kind = version_arch(path)
        fam = self.choice.learning_family()
        switched = spec is not None and spec.get("arch") != fam.key
        if kind is None or kind != self.arch() or switched:
            return (f"{Path(path).name} is kept but not loaded: the Model panel has "
                    f"{fam.title} as the pre-label model now.")
        if seg is not None:
            self.choice.adopt_checkpoint(path, seg, spec or self.choice.learning_spec())
        else:
            self.choice.load_checkpoint(path, spec or self.choice.learning_spec())
        return None

    # ---------------------------------------------------------------- versions
    def refresh_versions(self) -> None:
        from segstudio.inference.training.live import LiveConfig, LiveLearner  # no torch: listing reads the store
        arch = self.arch()
        vs = LiveLearner(self.project, LiveConfig(arch=arch)).versions() if arch is not None else []
        self.versions.clear()
        for v in reversed(vs):
            s = _score(v.metrics)
            self.versions.addItem(f"v{v.version} · {v.done_images} images" + (f" · {s:.3f}" if s is not None else ""),
                                  v.path)
        pts = [(v.version, _score(v.metrics)) for v in vs]
        pts = [(x, y) for x, y in pts if y is not None]
        self.curve.setData([x for x, _ in pts], [y for _, y in pts])
        self.rollback_button.setEnabled(len(vs) > 1)

    def version_scores(self) -> list[tuple[int, float]]:
        xs, ys = self.curve.getData()
        return [] if xs is None else [(int(x), float(y)) for x, y in zip(xs, ys, strict=True)]

    def rollback(self) -> None:
        path = self.versions.currentData()
        if not path:
            return
        self._start = path
        not_loaded = self._use(path)
        self.status.setText(f"Rolled back to {Path(path).name}: the next update starts from it"
                            + (f". {not_loaded}" if not_loaded else ", and it predicts now."))


def _score(metrics: dict) -> float | None:
    for key in ("mean_iou", "mask_AP", "mask_ap"):
        v = metrics.get(key)
        if isinstance(v, (int, float)):
            return float(v)
    return None

