"""Model dock: choose a model, checkpoint, device and thresholds; segment the image or the
folder in the background with progress, images/s, ETA and cancel. Model outputs are cached per
image so the prompt tool answers a click at once."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QHideEvent
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QFrame, QGroupBox,
                               QHBoxLayout, QProgressBar, QPushButton, QScrollArea, QVBoxLayout, QWidget)

from segstudio.core.records import NEW, PREDICTED
from segstudio.gui.click_worker import ClickWorker
from segstudio.gui.docks.click_panel import ClickPanel, megabytes
from segstudio.gui.docks.common import KeptChoices, guard_inputs, plain_label, show_error, show_note
from segstudio.gui.model_choice import ModelChoice
from segstudio.gui.signals import connect_plain
from segstudio.inference import registry
from segstudio.inference.family import PRELABEL_ROLE, Family

if TYPE_CHECKING:
    import numpy as np

    from segstudio.core.project import Project
    from segstudio.core.records import ImageRecord
    from segstudio.gui.model_worker import ModelWorker
    from segstudio.inference.runtime.engine import PredictReport
    from segstudio.inference.runtime.segmenter import Detection, Prediction

VARIANT_SEP = "-"  # the kind combo's data: "<family>" for its first variant, "<family>-<variant>" for the others
SETTINGS_KEY = "model_panel"  # the panel's choices, kept in the project's store
DEFAULT_SCORE = 0.5  # detections below this score are left out until the user lowers it
DEFAULT_MASK_THRESHOLD = 0.5  # a pixel belongs to a mask at this probability, as torchvision's
UNCERTAINTY_TIP = ("Model uncertainty: how unsure the model was about this image, from 0 (sure of every "
                   "pixel or object) to 1 (unsure everywhere). Sort the Files list by it (Most uncertain "
                   "first) to correct the images the model found hardest.")


def plural(n: int, word: str) -> str:
    """'1 class', '2 classes', '0 regions'."""
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word}" + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")


# a stored model's metrics as the weights list shows them (the first of each group found)
SCORES = (("mean_iou", "IoU"), ("mask_AP", "mask AP"), ("mask_ap", "mask AP"), ("pixel_accuracy", "pixel accuracy"))
COMBO_CHARS = 10  # a combo box is this many characters wide at least, whatever its longest entry


def metrics_text(metrics: dict | None) -> str:
    """'11 images, 30 s, IoU 0.812' from a stored model's metrics (a live version's
    {"done_images": 11, "seconds": 30.391, "validation": {"mean_iou": 0.812}}, a trained one's
    {"mean_iou": 0.8}); keys it does not know are left out, never shown raw."""
    m = metrics if isinstance(metrics, dict) else {}
    parts = []
    n = m.get("done_images")
    if isinstance(n, (int, float)) and not isinstance(n, bool):
        parts.append(plural(int(n), "image"))
    secs = m.get("seconds")
    if isinstance(secs, (int, float)) and not isinstance(secs, bool):
        parts.append(f"{secs:.0f} s" if secs < 120 else f"{secs / 60:.0f} min")
    scores = {**m, **(m["validation"] if isinstance(m.get("validation"), dict) else {})}
    for key, label in SCORES:
        v = scores.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            parts.append(f"{label} {v:.3f}")
            break
    return ", ".join(parts)


def uncertainty_text(u: float) -> str:
    return f"model uncertainty {u:.2f} (0 sure – 1 unsure)"


class ModelDock(QWidget):
    predictions_changed = Signal(int)  # image id with a new cached prediction
    apply_prediction = Signal(int, object)  # image id, Prediction: put it into the open document
    folder_finished = Signal(object)
    focus_canvas = Signal()  # a button did its job: the keys go back to the canvas
    candidates_failed = Signal(int, str)  # image id, message: a request_candidates got no answer

    def __init__(self, project: Project, worker: ModelWorker, parent: QWidget | None = None, *,
                 flush_edits: Callable[[], object] | None = None) -> None:
        """`flush_edits` saves the pending edits; it runs before a job reads the store."""
        super().__init__(parent)
        self.project, self.worker = project, worker
        self.choice = ModelChoice()  # the one object the Train and Live panels read
        self.click_worker = ClickWorker(project, self)
        self._flush_edits = flush_edits
        self.cache: OrderedDict[int, Prediction] = OrderedDict()
        self._folder_total = 0  # images the running Segment folder goes through
        self.current_image: tuple[int, np.ndarray] | None = None  # (image id, array), set by the window
        self._apply_ids: set[int] = set()
        self._waiting: dict[int, list[Callable[[], None]]] = {}

        self.arch = QComboBox()  # the pre-label model's family (and variant)
        for fam in registry.for_role(PRELABEL_ROLE):
            for k, (variant, title) in enumerate(fam.variants or ((None, fam.title),)):
                self.arch.addItem(title, fam.key if k == 0 else f"{fam.key}{VARIANT_SEP}{variant}")
        self.arch.currentIndexChanged.connect(self._fill_weights)
        self.weights = QComboBox()
        self.weights.setEditable(False)
        self.arch.currentIndexChanged.connect(lambda _: self._kind_changed())
        self.weights.currentIndexChanged.connect(lambda _: self._kind_changed())
        self.browse = QPushButton("…")
        self.browse.setToolTip("Choose a checkpoint file")
        self.browse.setFixedWidth(self.browse.fontMetrics().horizontalAdvance("…") + 24)  # not a 80 px button
        connect_plain(self.browse.clicked, self._browse)
        wrow = QHBoxLayout()
        wrow.addWidget(self.weights, 1)
        wrow.addWidget(self.browse)
        self.get_weights = QPushButton("Get weights…")
        self.get_weights.setToolTip("Pretrained files: which are in the torch cache, download one, or add one "
                                    "brought from elsewhere")
        connect_plain(self.get_weights.clicked, self._get_weights)
        self.device = QComboBox()
        for d in ("auto", "cuda", "cpu", "mps"):
            self.device.addItem(d, d)
        self.detected = plain_label("detecting the device…")
        self.score = QDoubleSpinBox()
        self.score.setRange(0.0, 1.0)
        self.score.setSingleStep(0.05)
        self.score.setValue(DEFAULT_SCORE)
        self.score.setToolTip("Mask R-CNN: keep instances scoring at least this")
        self.mask_thr = QDoubleSpinBox()
        self.mask_thr.setRange(0.05, 0.95)
        self.mask_thr.setSingleStep(0.05)
        self.mask_thr.setValue(DEFAULT_MASK_THRESHOLD)
        self.per_component = QCheckBox("UNet: one region per connected part")
        self.per_component.setChecked(True)
        self.tta = QCheckBox("UNet: average over flips")
        self.tta.setToolTip("Predict each image flipped four ways and average: 4x slower, a little better")
        self.create_classes = QCheckBox("Create classes the project lacks")
        self.create_classes.setChecked(True)
        self.auto_load = QCheckBox("Load both models when the project opens")
        self.auto_load.setToolTip("The click and pre-label models, their weights and this choice are kept with the "
                                  "project; a model whose weights are gone is not loaded")
        self._auto_prelabel = True  # False: the pre-label weights kept are gone (said so), or it never had one
        self.load_button = QPushButton("Load pre-label model")
        connect_plain(self.load_button.clicked, self.load)
        self.model_label = plain_label("No model loaded.")
        self.click_panel = ClickPanel(self.choice, self.click_worker, self._message, self)

        box = QGroupBox("Pre-label model")
        box.setToolTip("Segment image, Segment folder, Train and Learn as I annotate use this model")
        self._form = form = QFormLayout(box)
        form.addRow("Kind", self.arch)
        form.addRow("Weights", wrow)
        form.addRow("", self.get_weights)
        form.addRow("Device", self.device)
        form.addRow("", self.detected)
        form.addRow("Score ≥", self.score)
        form.addRow("Mask ≥", self.mask_thr)
        form.addRow(self.per_component)
        form.addRow(self.tta)
        form.addRow(self.create_classes)
        form.addRow(self.auto_load)
        form.addRow(self.load_button)
        form.addRow(self.model_label)

        self.seg_image = QPushButton("Segment image")
        connect_plain(self.seg_image.clicked, self.segment_image)
        self.scope = QComboBox()
        self.scope.addItem("Unlabelled images (new, predicted)", (NEW, PREDICTED))
        self.scope.addItem("New images only", (NEW,))
        self.scope.addItem("All images (manual regions are kept)", None)
        self.seg_folder = QPushButton("Segment folder")
        connect_plain(self.seg_folder.clicked, self.segment_folder)
        self.cancel_button = QPushButton("Cancel")
        connect_plain(self.cancel_button.clicked, self.worker.cancel)
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.progress_label = plain_label("")
        run = QGroupBox("Segment")
        rl = QVBoxLayout(run)
        rl.addWidget(self.seg_image)
        rl.addWidget(self.scope)
        row = QHBoxLayout()
        row.addWidget(self.seg_folder)
        row.addWidget(self.cancel_button)
        rl.addLayout(row)
        rl.addWidget(self.progress)
        rl.addWidget(self.progress_label)

        from segstudio.gui.docks.train_panel import TrainPanel
        self.choice.load_checkpoint = self.use_checkpoint
        self.choice.adopt_checkpoint = self.adopt_checkpoint
        self.choice.segment_unlabelled = self.segment_unlabelled
        self.choice.prelabel_spec = self.spec
        self.train_panel = TrainPanel(self.choice, worker, flush_edits=self.flush_edits)
        self.layout_ = QVBoxLayout(self)
        self.layout_.addWidget(self.click_panel)
        self.layout_.addWidget(box)
        self.layout_.addWidget(run)
        self.layout_.addWidget(self.train_panel)
        from segstudio.gui.docks.live_panel import LivePanel
        self.live_panel = LivePanel(self.choice, worker, flush_edits=self.flush_edits)
        self.layout_.addWidget(self.live_panel)
        self.train_panel.busy_changed.connect(self.update_buttons)
        self.layout_.addStretch(1)
        self.kept = KeptChoices(project.store, SETTINGS_KEY, self.choices, self)
        self._wire()
        self._fill_weights()
        self.update_buttons()
        self._probed = False  # torch is imported when this panel is first looked at, not at start-up
        self.wheel_guard = guard_inputs(self, self.focus_canvas.emit)
        for combo in self.findChildren(QComboBox):  # a long entry (a file name) never widens the panel
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(COMBO_CHARS)
            combo.currentIndexChanged.connect(lambda _, c=combo: c.setToolTip(c.currentText()))
        self.restore_choices()
        for sig in (self.arch.currentIndexChanged, self.weights.currentIndexChanged, self.device.currentIndexChanged,
                    self.click_panel.kind.currentIndexChanged, self.click_panel.weights.currentIndexChanged,
                    self.click_panel.device.currentIndexChanged,
                    self.score.valueChanged, self.mask_thr.valueChanged, self.per_component.toggled,
                    self.tta.toggled, self.create_classes.toggled, self.auto_load.toggled):
            sig.connect(self.kept.changed)
        self._sync_choice()
        self._show_options()
        self.arch.currentIndexChanged.connect(lambda _: self._show_options())
        for sig in (self.arch.currentIndexChanged, self.weights.currentIndexChanged, self.device.currentIndexChanged):
            sig.connect(lambda _: self._sync_choice())
        if self.auto_load.isChecked():
            QTimer.singleShot(0, self._auto_load)

    @property
    def info(self) -> dict[str, Any] | None:
        """The loaded pre-label model (model_thread.model_info), None before one loaded: kept in the
        model choice, which the other panels and the click tool read."""
        return self.choice.loaded[PRELABEL_ROLE]

    @info.setter
    def info(self, value: dict[str, Any] | None) -> None:
        self.choice.set_loaded(PRELABEL_ROLE, value)

    def in_scroll_area(self) -> QScrollArea:
        """The panel in a vertical scroll area, as the window docks it: never a horizontal scroll
        bar or a clipped right edge (the area is at least as wide as the panel's narrowest layout,
        which long texts do not widen: they wrap, combo boxes elide)."""
        scroll = QScrollArea()
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(self.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width())
        return scroll

    def ensure_probed(self) -> None:
        """Detect the device (imports torch on the model thread) once the user looks at the panel."""
        if not self._probed and self.isVisible():
            self._probed = True
            self.worker.probe()

    def _wire(self) -> None:
        w = self.worker
        w.probed.connect(lambda d: show_note(self.detected, f"detected: {d}"))
        w.loaded.connect(self._loaded)
        w.load_failed.connect(self._load_failed)
        w.image_done.connect(self._image_done)
        w.image_failed.connect(self._image_failed)
        w.folder_progress.connect(self._folder_progress)
        w.folder_done.connect(self._folder_done)
        w.job_failed.connect(self._job_failed)
        w.busy_changed.connect(lambda _: self.update_buttons())
        self.click_worker.busy_changed.connect(lambda _: self.update_buttons())

    # ---------------------------------------------------------------- model choice
    def family(self) -> Family:
        """The pre-label model's family, as chosen in the Kind list."""
        data = self.arch.currentData() or self.arch.itemData(0)  # nothing chosen: the first in the list
        return registry.family(data.split(VARIANT_SEP)[0])

    def arch_name(self) -> str:
        return self.family().key

    def variant(self) -> str | None:
        data = self.arch.currentData() or ""
        if VARIANT_SEP in data:
            return data.split(VARIANT_SEP, 1)[1]
        fam = self.family()
        return fam.variants[0][0] if fam.variants else None

    def _show_options(self) -> None:
        """Only the options the chosen family reads (its spec's `options`)."""
        opts = self.family().options
        for w, key in ((self.score, "score"), (self.mask_thr, "mask"), (self.per_component, "per_component"),
                       (self.tta, "tta")):
            self._form.setRowVisible(w, key in opts)

    def _sync_choice(self) -> None:
        """The panel's widgets into the model choice (its listeners: the Train and Live panels)."""
        c = self.choice
        c.set("family", self.family())
        c.set("variant", self.variant())
        c.set("weights", self.weights.currentData() or None)
        c.set("device", self.device.currentData())

    def _kind_changed(self) -> None:
        """Another kind of model: a message about the previous choice no longer applies."""
        if self.info is None:
            show_note(self.model_label, "No model loaded.")
        else:
            self._show_loaded(self.info)
        self._message("")

    def _fill_weights(self) -> None:
        self.weights.clear()
        fam = self.family()
        if fam.pretrained:  # loads with no checkpoint: torchvision's pretrained weights
            self.weights.addItem(fam.pretrained, None)
        for m in self.project.store.models():  # the project's trained checkpoints of this family's kind
            if m["kind"] == fam.checkpoint_kind and Path(m["path"]).exists():
                metric = metrics_text(m["metrics"])
                self.weights.addItem(f"{Path(m['path']).name}" + (f" · {metric}" if metric else ""), m["path"])
                self.weights.setItemData(self.weights.count() - 1, m["path"], Qt.ItemDataRole.ToolTipRole)
        if self.weights.count() == 0:
            self.weights.addItem("(none yet: train one, or choose a file …)", "")

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model checkpoint", "", "Checkpoints (*.pt *.pth);;All files (*)")
        if path:
            self.add_weights(path)

    def _get_weights(self) -> None:
        """The weights manager (gui/weights_dialog.py); afterwards the Segment Anything entries
        say again which files are in the cache."""
        from segstudio.gui.weights_dialog import open_weights_dialog

        def closed() -> None:
            # the click model's entries say again whether each file is "in the cache"
            panel = self.click_panel
            w = panel.weights.currentData()
            panel._fill_weights()
            if w and w.get("weights"):
                panel.add_weights(w["weights"])  # a file chosen with …
            for i in range(panel.weights.count()):
                if panel.weights.itemData(i) == w:
                    panel.weights.setCurrentIndex(i)
        self.weights_dialog = open_weights_dialog(self.window(), closed)

    def add_weights(self, path: str) -> None:
        i = self.weights.findData(path)
        if i < 0:
            self.weights.insertItem(0, Path(path).name, path)
            i = 0
        self.weights.setCurrentIndex(i)

    # ---------------------------------------------------------------- kept with the project
    def choices(self) -> dict:
        """Kept with the project. The weights: the loaded model's when it is of the kind chosen (a file
        that failed to load is not what the project opens with next time), else those chosen."""
        spec = (self.info or {}).get("spec") or {}
        same = spec.get("arch") == self.arch_name() and spec.get("variant") == self.variant()
        weights = spec.get("weights") if same else self.weights.currentData() or None
        return {"kind": self.arch.currentData(), "weights": weights,
                "device": self.device.currentData(), "score": self.score.value(),
                "mask": self.mask_thr.value(), "per_component": self.per_component.isChecked(),
                "tta": self.tta.isChecked(), "create_classes": self.create_classes.isChecked(),
                "auto_load": self.auto_load.isChecked(), **self.click_panel.choices()}

    def restore_choices(self) -> None:
        """Select the kind, weights and options used last time in this project."""
        d = self.kept.load()
        self.kept.paused = True
        try:
            i = self.arch.findData(d.get("kind"))
            if i >= 0:
                self.arch.setCurrentIndex(i)
            # a project kept before the two roles may have a click model as its one model (its kind
            # and weights): it becomes the click model, and no pre-label model is loaded for it
            legacy = "click_kind" not in d and i < 0 and d.get("kind") is not None
            click = {"click_kind": d.get("kind"), "click_weights": d.get("weights")} if legacy else d
            self._auto_prelabel = not legacy
            self.click_panel.restore(click)
            w = d.get("weights") if i >= 0 else None
            if w:
                if Path(w).exists():
                    self.add_weights(w)
                else:
                    show_error(self.model_label, f"The weights used last time are gone: {w}")
                    self._auto_prelabel = False
            i = self.device.findData(d.get("device"))
            if i >= 0:
                self.device.setCurrentIndex(i)
            for box, key in ((self.score, "score"), (self.mask_thr, "mask")):
                if isinstance(d.get(key), (int, float)):
                    box.setValue(float(d[key]))
            for cb, key in ((self.per_component, "per_component"), (self.tta, "tta"),
                            (self.create_classes, "create_classes")):
                if isinstance(d.get(key), bool):
                    cb.setChecked(d[key])
            if d.get("auto_load"):
                self.auto_load.setChecked(True)
        finally:
            self.kept.paused = False

    def hideEvent(self, e: QHideEvent) -> None:  # noqa: N802 (Qt's name): the window closes, or the tab changes
        self.kept.flush()
        super().hideEvent(e)

    def _auto_load(self) -> None:
        """Both roles, as chosen last time (each leaves the other alone)."""
        if self.info is None and self.auto_load.isChecked() and self._auto_prelabel:
            self.load()
        if self.click_panel.info is None and self.auto_load.isChecked() and self.click_panel.restored:
            self.click_panel.load()

    def spec(self) -> dict:
        """The pre-label model to load (inference.runtime.engine.ModelSpec's fields)."""
        return {"arch": self.arch_name(), "variant": self.variant(), "weights": self.weights.currentData() or None,
                "device": self.device.currentData(),
                "score_threshold": self.score.value(), "mask_threshold": self.mask_thr.value(),
                "per_component": self.per_component.isChecked(), "tta": self.tta.isChecked()}

    def load(self) -> None:
        if not self._probed:  # what auto means on this machine, said beside the Device list
            self._probed = True
            self.worker.probe()
        spec = self.spec()
        if not self.family().pretrained and not spec["weights"]:
            show_error(self.model_label, f"{self.arch.currentText()} needs a checkpoint: train one (Train below) "
                                         "or choose a file with …")
            return
        show_note(self.model_label, "Loading…")
        self.worker.load(spec)

    def use_checkpoint(self, path: str, spec: dict | None = None) -> None:
        """A checkpoint just trained (Train, Learn as I annotate, Roll back) becomes the pre-label model:
        loaded as `spec` says (the family it was trained as), else as the panel's choice."""
        if spec is None or spec.get("arch") == self.arch_name():
            self.add_weights(path)  # the Weights list shows it when it lists that family's files
        if spec is None:
            self.load()
            return
        show_note(self.model_label, "Loading…")
        self.worker.load({**spec, "weights": path})

    def adopt_checkpoint(self, path: str, model: Any, spec: dict) -> None:
        """A checkpoint the model thread has loaded already (as `spec` says) becomes the pre-label model."""
        if spec.get("arch") == self.arch_name():
            self.add_weights(path)
        show_note(self.model_label, "Loading…")
        self.worker.adopt(model, {**spec, "weights": path})

    def segment_unlabelled(self) -> None:
        self.scope.setCurrentIndex(self.scope.findData((NEW, PREDICTED)))
        self.segment_folder()

    def _loaded(self, info: dict) -> None:
        self.info = info
        self.cache.clear()  # the proposals of the model before
        self._show_loaded(info)
        self.update_buttons()

    def _show_loaded(self, info: dict) -> None:
        show_note(self.model_label,
                  f"Loaded: {self._loaded_text(info)}\non {info['device']}{megabytes(info.get('memory'))}")

    @staticmethod
    def _loaded_text(info: dict) -> str:
        name = Path(info["checkpoint"]).name if info.get("checkpoint") else info.get("name", "")
        return f"{info['name']}, {plural(len(info['classes']), 'class')}" + (f" ({name})" if name else "")

    def _load_failed(self, msg: str) -> None:
        """The model that was loaded stays loaded (the worker keeps it): say that the load failed
        and which model still answers, so a click is never answered by something unexpected."""
        still = f"\nStill loaded: {self._loaded_text(self.info)}" if self.info is not None else "\nNo model loaded."
        show_error(self.model_label, f"Cannot load {self.arch.currentText()}: {msg}{still}")
        self.update_buttons()

    def _job_failed(self, msg: str) -> None:
        self._end_progress()
        self._message(f"Failed: {msg}")

    def _message(self, msg: str) -> None:
        self.progress_label.setText(msg)

    def update_buttons(self) -> None:
        """Enable what the loaded model and the worker's state allow (the train panel's button too)."""
        ready = self.info is not None
        busy = self.worker.busy
        self.seg_image.setEnabled(ready)
        self.seg_folder.setEnabled(ready and not busy)
        self.cancel_button.setEnabled(busy)
        self.train_panel.train_button.setEnabled(not busy and not self.train_panel.training)

    # ---------------------------------------------------------------- running
    def segment_image(self) -> None:
        if self.info is None or self.current_image is None:
            return
        image_id, array = self.current_image
        self._message("Segmenting the image…")
        self._apply_ids.add(image_id)
        self.worker.predict_image(image_id, array)

    def _image_done(self, image_id: int, pred: Prediction) -> None:
        self.cache[image_id] = pred
        while len(self.cache) > 64:
            self.cache.popitem(last=False)
        self._message(f"{plural(len(pred.detections()), 'region')}, {uncertainty_text(pred.uncertainty)}")
        self.progress_label.setToolTip(UNCERTAINTY_TIP)
        self.predictions_changed.emit(image_id)
        for then in self._waiting.pop(image_id, []):
            then()
        if image_id in self._apply_ids:
            self._apply_ids.discard(image_id)
            self.apply_prediction.emit(image_id, pred)

    def _image_failed(self, image_id: int, msg: str) -> None:
        self._message(f"Segmenting failed: {msg}")
        self._apply_ids.discard(image_id)  # a later prompt's prediction must not be applied instead
        # forget the prompts waiting for this image: the next click asks again rather than waiting
        # for an answer that will never come, and the window replaces its "Asking the model…"
        if self._waiting.pop(image_id, None):
            self.candidates_failed.emit(image_id, msg)

    def request_candidates(self, image_id: int, array: np.ndarray, then: Callable[[], None]) -> None:
        """Predict without writing regions (the prompt tool wants the proposals only)."""
        first = image_id not in self._waiting
        self._waiting.setdefault(image_id, []).append(then)
        if first:
            self.worker.predict_image(image_id, array)

    def segment_folder(self) -> None:
        if self.info is None:
            return
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self._message("Starting…")
        scope = self.scope.currentData()
        self._folder_total = len(self.project.store.image_ids(statuses=scope))  # what the run goes through
        self.worker.predict_folder(scope, self.create_classes.isChecked())
        self.update_buttons()

    def _folder_progress(self, done: int, total: int, rate: float, path: str) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        eta = (total - done) / rate if rate > 0 else 0
        self.progress_label.setText(f"{done}/{total} · {rate:.2f} images/s · ETA {int(eta) // 60}:{int(eta) % 60:02d}")

    def _folder_done(self, rep: PredictReport) -> None:
        self._end_progress()
        total = self._folder_total
        seen = rep.images + len(rep.errors) + len(rep.skipped)
        if self.worker.cancelled and seen < total:  # stopped by Cancel: not "Done"
            msg = (f"Cancelled after {seen} of {plural(total, 'image')}: {plural(rep.regions, 'region')} written "
                   f"on {plural(rep.images, 'image')}")
        else:
            msg = (f"Done: {plural(rep.images, 'image')}, {plural(rep.regions, 'region')}, "
                   f"{rep.images_per_second:.2f} images/s")
        if rep.errors:
            msg += f"; {len(rep.errors)} could not be read"
        if rep.skipped:  # held by a window of another process (core.claims): a person works on them
            msg += f"; {plural(len(rep.skipped), 'image')} left alone (open in another window)"
        self._message(msg)
        self.cache.clear()
        self.folder_finished.emit(rep)

    def _end_progress(self) -> None:
        self.progress.setVisible(False)
        self.update_buttons()

    def flush_edits(self) -> None:
        """Save pending edits (the callback given at construction) before a job reads the store."""
        if self._flush_edits is not None:
            self._flush_edits()

    # ---------------------------------------------------------------- the click model
    def image_shown(self, record: ImageRecord, array: np.ndarray, window, next_id: int | None) -> None:
        """The window shows another image: the click model embeds it now (then the next image in
        the file list), so the first click answers quickly."""
        ab = self.project.abspath
        next_path = str(ab(self.project.store.image(next_id))) if next_id is not None else None
        self.click_panel.image_shown(record.id, str(ab(record)), array, window, next_path, next_id)

    def prompt(self, image_id: int, array: np.ndarray, window, points, box, done: Callable[[Any], None]) -> None:
        """The click model's candidate masks for prompts on the open image, to `done` (None on failure)."""
        self.click_panel.prompt(image_id, array, window, points, box, done)

    def click_answer(self) -> str | None:
        """What answers the Model click / box tool (editing.editor.PROMPTABLE, INSTANCES, CLASSES or None)."""
        return self.choice.click_answer()

    def candidates(self, image_id: int) -> list[Detection] | None:
        pred = self.cache.get(image_id)
        return None if pred is None else pred.candidates()

    def shutdown(self, wait: float = 5.0) -> None:
        """Stop both model threads: the running requests see cancel, queued ones are dropped."""
        self.click_worker.shutdown(wait=0.0)  # cancel first: its embedding ahead stops between layers
        self.worker.shutdown(wait=wait)
        self.click_worker.shutdown(wait=wait)

