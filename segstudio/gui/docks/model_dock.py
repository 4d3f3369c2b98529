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
from segstudio.gui.docks.common import KeptChoices, guard_inputs, plain_label, show_error, show_note
from segstudio.inference.sam import spec as sam_spec
from segstudio.inference.semantic.spec import MODEL_NETS, is_semantic
from segstudio.gui.signals import connect_plain

if TYPE_CHECKING:
    import numpy as np

    from segstudio.core.project import Project
    from segstudio.core.records import ImageRecord
    from segstudio.gui.model_worker import ModelWorker
    from segstudio.inference.runtime.engine import PredictReport
    from segstudio.inference.runtime.segmenter import Detection, Prediction

COCO = "COCO weights (torchvision)"
VOC = "COCO-VOC weights, 20 classes (torchvision)"
SAM_PREFIX = "sam:"  # weights combo data of an official Segment Anything file: "sam:<model name>"
PROJECT_LATEST = "Project's latest trained UNet"
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
        self._flush_edits = flush_edits
        self.cache: OrderedDict[int, Prediction] = OrderedDict()
        self._folder_total = 0  # images the running Segment folder goes through
        self.info: dict[str, Any] | None = None
        self.current_image: tuple[int, np.ndarray] | None = None  # (image id, array), set by the window
        self._apply_ids: set[int] = set()
        self._waiting: dict[int, list[Callable[[], None]]] = {}

        self.arch = QComboBox()
        self.arch.addItem("Mask R-CNN v2 (instances)", "maskrcnn")
        self.arch.addItem("Mask R-CNN v1 (instances)", "maskrcnn-v1")
        self.arch.addItem("UNet (class per pixel)", "unet")
        self.arch.addItem("FCN ResNet-50 (class per pixel)", "fcn")
        self.arch.addItem("DeepLabV3 ResNet-50 (class per pixel)", "deeplabv3")
        self.arch.addItem("DeepLabV3 MobileNetV3 (class per pixel, light)", "deeplabv3_mobilenet")
        self.arch.addItem("Segment Anything (click any object)", "sam")
        # the open image and the next one (set by the window) and the prompt tool's callbacks
        self._sam_open: tuple[int, str, np.ndarray, Any, str | None] | None = None
        self._sam_waiting: dict[int, Callable[[Any], None]] = {}
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
        self.auto_load = QCheckBox("Load this model when the project opens")
        self.auto_load.setToolTip("Kind, weights and this choice are kept with the project")
        self.load_button = QPushButton("Load model")
        connect_plain(self.load_button.clicked, self.load)
        self.model_label = plain_label("No model loaded.")

        box = QGroupBox("Model")
        form = QFormLayout(box)
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
        self.train_panel = TrainPanel(self)
        self.layout_ = QVBoxLayout(self)
        self.layout_.addWidget(box)
        self.layout_.addWidget(run)
        self.layout_.addWidget(self.train_panel)
        from segstudio.gui.docks.live_panel import LivePanel
        self.live_panel = LivePanel(self)
        self.layout_.addWidget(self.live_panel)
        self.arch.currentIndexChanged.connect(lambda _: self.live_panel.refresh_versions())
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
                    self.score.valueChanged, self.mask_thr.valueChanged, self.per_component.toggled,
                    self.tta.toggled, self.create_classes.toggled, self.auto_load.toggled):
            sig.connect(self.kept.changed)
        if self.auto_load.isChecked():
            QTimer.singleShot(0, self._auto_load)

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
        w.sam_candidates.connect(self._sam_candidates)
        w.sam_failed.connect(self._sam_failed)
        w.image_failed.connect(self._image_failed)
        w.folder_progress.connect(self._folder_progress)
        w.folder_done.connect(self._folder_done)
        w.job_failed.connect(self._job_failed)
        w.busy_changed.connect(lambda _: self.update_buttons())

    # ---------------------------------------------------------------- model choice
    def arch_name(self) -> str:
        return self.arch.currentData().split("-")[0]

    def arch_version(self) -> str:
        return "v1" if self.arch.currentData().endswith("-v1") else "v2"

    def _kind_changed(self) -> None:
        """Another kind of model: a message about the previous choice no longer applies."""
        if self.info is None:
            show_note(self.model_label, "No model loaded.")
        else:
            self._show_loaded(self.info)
        self._message("")

    def _fill_weights(self) -> None:
        self.weights.clear()
        arch = self.arch_name()
        if arch == "maskrcnn":
            self.weights.addItem(COCO, None)
        elif arch in MODEL_NETS:  # pre-labels the VOC classes with no training
            self.weights.addItem(VOC, None)
        elif arch == "sam":  # the official files, from the torch cache or downloaded; or a file (…)
            for name, info in sam_spec.MODELS.items():
                there = "in the cache" if sam_spec.weights_file(name).exists() else "downloaded when loaded"
                self.weights.addItem(f"{info.title} — {there}", SAM_PREFIX + name)
            return
        kind = "unet" if is_semantic(arch) else arch  # every class-per-pixel checkpoint is a "unet" one
        for m in self.project.store.models():
            if m["kind"] == kind and Path(m["path"]).exists():
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
            if self.arch_name() == "sam":  # "in the cache" / "downloaded when loaded" may have changed
                w = self.weights.currentData()
                self._fill_weights()
                if w and self.weights.findData(w) < 0:
                    self.add_weights(w)  # a file chosen with …
                self.weights.setCurrentIndex(max(self.weights.findData(w), 0))
        self.weights_dialog = open_weights_dialog(self.window(), closed)

    def add_weights(self, path: str) -> None:
        i = self.weights.findData(path)
        if i < 0:
            self.weights.insertItem(0, Path(path).name, path)
            i = 0
        self.weights.setCurrentIndex(i)

    # ---------------------------------------------------------------- kept with the project
    def choices(self) -> dict:
        return {"kind": self.arch.currentData(), "weights": self.weights.currentData() or None,
                "device": self.device.currentData(), "score": self.score.value(),
                "mask": self.mask_thr.value(), "per_component": self.per_component.isChecked(),
                "tta": self.tta.isChecked(), "create_classes": self.create_classes.isChecked(),
                "auto_load": self.auto_load.isChecked()}

    def restore_choices(self) -> None:
        """Select the kind, weights and options used last time in this project."""
        d = self.kept.load()
        self.kept.paused = True
        try:
            i = self.arch.findData(d.get("kind"))
            if i >= 0:
                self.arch.setCurrentIndex(i)
            w = d.get("weights")
            if w:
                if Path(w).exists():
                    self.add_weights(w)
                else:
                    show_error(self.model_label, f"The weights used last time are gone: {w}")
                    self.auto_load.setChecked(False)
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
            if d.get("auto_load") and (not w or Path(w).exists()):
                self.auto_load.setChecked(True)
        finally:
            self.kept.paused = False

    def hideEvent(self, e: QHideEvent) -> None:  # noqa: N802 (Qt's name): the window closes, or the tab changes
        self.kept.flush()
        super().hideEvent(e)

    def _auto_load(self) -> None:
        if self.info is None and self.auto_load.isChecked():
            self.load()

    def spec(self) -> dict:
        w = self.weights.currentData()
        if self.arch_name() == "sam":
            official = isinstance(w, str) and w.startswith(SAM_PREFIX)
            return {"arch": "sam", "weights": None if official else (w or None),
                    "sam_model": w[len(SAM_PREFIX):] if official else None, "device": self.device.currentData()}
        return {"arch": self.arch_name(), "version": self.arch_version(), "weights": w or None,
                "device": self.device.currentData(),
                "score_threshold": self.score.value(), "mask_threshold": self.mask_thr.value(),
                "per_component": self.per_component.isChecked(), "tta": self.tta.isChecked()}

    def load(self) -> None:
        self._probed = True
        spec = self.spec()
        if spec["arch"] == "unet" and not spec["weights"]:
            show_error(self.model_label, "A UNet needs a checkpoint: train one (Train below) or choose a file with …")
            return
        show_note(self.model_label, "Loading…")
        self.worker.load(spec)

    def _loaded(self, info: dict) -> None:
        self.info = info
        self.cache.clear()  # the proposals of the model before
        self._show_loaded(info)
        self.update_buttons()
        self._sam_embed()  # a promptable model: the open image's embedding right away

    def _show_loaded(self, info: dict) -> None:
        show_note(self.model_label, f"Loaded: {self._loaded_text(info)}\non {info['device']}")

    @staticmethod
    def _loaded_text(info: dict) -> str:
        name = Path(info["checkpoint"]).name if info.get("checkpoint") else info.get("name", "")
        return f"{info['arch']}, {plural(len(info['classes']), 'class')}" + (f" ({name})" if name else "")

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
        self.train_panel.train_button.setEnabled(not busy)

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

    # ---------------------------------------------------------------- promptable model (SAM)
    def image_shown(self, record: ImageRecord, array: np.ndarray, window, next_id: int | None) -> None:
        """The window shows another image: with Segment Anything loaded, its embedding is
        computed now (then the next image's in the file list), so the first click answers quickly."""
        ab = self.project.abspath
        next_path = str(ab(self.project.store.image(next_id))) if next_id is not None else None
        self._sam_open = (record.id, str(ab(record)), array, window, next_path)
        self._sam_waiting.clear()  # prompts on the image before are gone with it
        self._sam_embed()

    def _sam_embed(self) -> None:
        if self.info is not None and self.info.get("arch") == "sam" and self._sam_open is not None:
            self.worker.sam_open(*self._sam_open)

    def prompt(self, image_id: int, array: np.ndarray, window, points, box, done: Callable[[Any], None]) -> None:
        """Candidate masks for prompts on the open image, to `done` (None on failure)."""
        if self.info is None or self.info.get("arch") != "sam" or self._sam_open is None \
                or self._sam_open[0] != image_id:
            done(None)
            return
        n = self.worker.sam_prompt(image_id, self._sam_open[1], array, window, points, box)
        self._sam_waiting = {n: done}  # only the newest prompt is answered

    def _sam_candidates(self, image_id: int, n: int, cands: Any) -> None:
        done = self._sam_waiting.pop(n, None)
        if done is not None and self._sam_open is not None and self._sam_open[0] == image_id:
            done(cands)

    def _sam_failed(self, image_id: int, msg: str) -> None:
        if self._sam_open is None or self._sam_open[0] != image_id:
            return  # an image the user has left: its prompts were dropped with it
        self._message(f"Segment Anything: {msg}")
        for done in self._sam_waiting.values():
            done(None)
        self._sam_waiting.clear()

    def click_answer(self) -> str | None:
        """What answers the Model click / box tool (editing.editor.PROMPTABLE, INSTANCES, CLASSES or None)."""
        from segstudio.editing.editor import CLASSES, INSTANCES, PROMPTABLE
        if self.info is None:
            return None
        if self.info.get("arch") == "sam":
            return PROMPTABLE
        return CLASSES if self.info.get("arch") == "unet" else INSTANCES

    def candidates(self, image_id: int) -> list[Detection] | None:
        pred = self.cache.get(image_id)
        return None if pred is None else pred.candidates()

    def shutdown(self) -> None:
        self.worker.shutdown()

