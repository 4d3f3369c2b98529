"""The click model in the Model panel: which model answers the Model click / box tool, loaded
beside the pre-label model on a thread of its own (gui/click_worker.py).

The choices come from the registry: every family that has a click model of its own (the Segment
Anything family, and any other promptable family), the pre-label model's own answer (the instance
or the class area under the click), or none (the classical assists only). Loading or failing to
load one never touches the pre-label model, and a failed load leaves the loaded click model in
place and says so."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QPushButton, QWidget

from segstudio.editing.editor import PROMPTABLE
from segstudio.gui.docks.common import plain_label, show_error, show_note
from segstudio.gui.model_choice import NO_CLICK_MODEL, PRELABEL_ANSWER, ModelChoice
from segstudio.gui.signals import connect_plain
from segstudio.inference import registry
from segstudio.inference.family import CLICK_ROLE, resolve

if TYPE_CHECKING:
    import numpy as np

    from segstudio.gui.click_worker import ClickWorker

PRELABEL_TITLE = "The pre-label model's answer"
NONE_TITLE = "None (the classical assists only)"


def megabytes(n: int | None) -> str:
    return "" if not n else f", {n / 2 ** 20:.0f} MB"


class ClickPanel(QGroupBox):
    def __init__(self, choice: ModelChoice, worker: ClickWorker, message: Callable[[str], None],
                 parent: QWidget | None = None) -> None:
        super().__init__("Click model", parent)
        self.choice, self.worker, self._message = choice, worker, message
        self.info: dict[str, Any] | None = None  # the loaded click model (model_thread.model_info)
        self.restored = False  # the kept choice can be loaded as it was (restore)
        self._loaded_weights: Any = None
        self._loading_weights: Any = None  # the weights entry of the loaded model (what is kept with the project)
        self._chosen: dict[str, Any] = {}  # family -> its weights entry chosen last (switching away and back)
        self._filled_for: str | None = None  # the family whose weights the list holds
        # the open image and the next one (set by the window) and the prompt tool's callbacks
        self._open: tuple[int, str, np.ndarray, Any, str | None, int | None] | None = None
        self._waiting: dict[int, Callable[[Any], None]] = {}
        self.kind = QComboBox()
        self.kind.addItem(PRELABEL_TITLE, PRELABEL_ANSWER)
        for fam in registry.for_role(CLICK_ROLE):  # one whose packages are missing says what installs them
            missing = registry.packages_missing(fam)
            self.kind.addItem(fam.title + (f" — not installed: {fam.install_hint}" if missing else ""), fam.key)
        self.kind.addItem(NONE_TITLE, NO_CLICK_MODEL)
        self.kind.setToolTip("What answers the Model click / box tool (I). A click model is loaded beside the "
                             "pre-label model: it keeps answering while that one segments or learns.")
        self.weights = QComboBox()
        self.browse = QPushButton("…")
        self.browse.setToolTip("Choose a weights file for the click model")
        self.browse.setFixedWidth(self.browse.fontMetrics().horizontalAdvance("…") + 24)
        connect_plain(self.browse.clicked, self._browse)
        self.device = QComboBox()  # its own: Segment Anything on the GPU while a UNet trains on the CPU, say
        for d in ("auto", "cuda", "cpu", "mps"):
            self.device.addItem(d, d)
        self.load_button = QPushButton("Load click model")
        connect_plain(self.load_button.clicked, self.load)
        self.label = plain_label("")
        wrow = QHBoxLayout()
        wrow.addWidget(self.weights, 1)
        wrow.addWidget(self.browse)
        form = QFormLayout(self)
        form.addRow("Model", self.kind)
        form.addRow("Weights", wrow)
        form.addRow("Device", self.device)
        form.addRow(self.load_button)
        form.addRow(self.label)
        self.kind.currentIndexChanged.connect(lambda _: self._kind_changed())
        w = self.worker
        w.loaded.connect(self._loaded)
        w.load_failed.connect(self._load_failed)
        w.unloaded.connect(self._show)
        w.candidates.connect(self._candidates)
        w.failed.connect(self._failed)
        self._fill_weights()
        self._show()

    # ---------------------------------------------------------------- the choice
    def key(self) -> str:
        return self.kind.currentData()

    def _kind_changed(self) -> None:
        """Another click model chosen: the loaded one stays loaded (switching back needs no reload;
        its memory is shown) but answers no click unless it is the one chosen."""
        self.choice.set("click", self.key())
        self._fill_weights()
        self._show()
        self._embed()  # back to the loaded one: the open image's embedding (from the cache when it has it)

    def _fill_weights(self) -> None:
        if self.weights.count() and self._filled_for is not None:  # remember what was chosen for the family left
            self._chosen[self._filled_for] = self.weights.currentData()
        self.weights.clear()
        fam = self.choice.click_family()
        self._filled_for = fam.key if fam is not None else None
        promptable = fam is not None
        for wdg in (self.weights, self.browse, self.device, self.load_button):
            wdg.setEnabled(promptable)
        if fam is None:
            return
        for title, options in (resolve(fam.presets)() if fam.presets else []):
            self.weights.addItem(title, {"options": options})
        before = self._chosen.get(fam.key)
        if isinstance(before, dict) and isinstance(before.get("weights"), str):
            self.add_weights(before["weights"])
        elif before is not None:
            for k in range(self.weights.count()):
                if self.weights.itemData(k) == before:
                    self.weights.setCurrentIndex(k)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Click model weights", "",
                                              "Weights (*.pt *.pth *.safetensors);;All files (*)")
        if path:
            self.add_weights(path)

    def add_weights(self, path: str) -> None:
        for i in range(self.weights.count()):
            if (self.weights.itemData(i) or {}).get("weights") == path:
                self.weights.setCurrentIndex(i)
                return
        self.weights.insertItem(0, Path(path).name, {"weights": path})
        self.weights.setCurrentIndex(0)

    def choices(self) -> dict:
        """Kept with the project: the weights of the loaded click model when it is the one chosen (a
        file that failed to load is never what the project opens with next time), else those chosen."""
        loaded = self.info is not None and self.info.get("family") == self.key()
        weights = self._loaded_weights if loaded else self.weights.currentData()
        return {"click_kind": self.key(), "click_weights": weights, "click_device": self.device.currentData()}

    def restore(self, d: dict) -> None:
        """The click model and weights kept with the project. `restored` says whether they can be
        loaded as they were: a weights file that is gone is said so, and nothing else is loaded
        in its place (no preset, no download the user did not choose)."""
        self.restored = False
        k = self.device.findData(d.get("click_device"))
        if k >= 0:
            self.device.setCurrentIndex(k)
        i = self.kind.findData(d.get("click_kind"))
        if i < 0:
            return
        self.kind.setCurrentIndex(i)
        w = d.get("click_weights")
        if isinstance(w, str):  # kept before the two roles: a file, or "<family>:<preset name>"
            w = {"weights": w} if Path(w).exists() or ":" not in w else self._preset_named(w.split(":", 1)[1])
        if isinstance(w, dict) and isinstance(w.get("weights"), str):
            if not Path(w["weights"]).exists():
                show_error(self.label, f"The click model's weights used last time are gone: {w['weights']}")
                return
            self.add_weights(w["weights"])
        elif isinstance(w, dict):
            for k in range(self.weights.count()):
                if self.weights.itemData(k) == w:
                    self.weights.setCurrentIndex(k)
                    break
            else:
                return
        self.restored = self.choice.click_family() is not None

    def _preset_named(self, name: str) -> dict | None:
        for k in range(self.weights.count()):
            data = self.weights.itemData(k) or {}
            if name in (data.get("options") or {}).values():
                return data
        return None

    def spec(self) -> dict:
        data = self.weights.currentData() or {}
        return {"arch": self.key(), "weights": data.get("weights"), "device": self.device.currentData(),
                "options": dict(data.get("options") or {})}

    # ---------------------------------------------------------------- loading
    def load(self) -> None:
        if self.choice.click_family() is None:
            return
        show_note(self.label, f"Loading {self.kind.currentText()}…")
        self._loading_weights = self.weights.currentData()
        self.worker.load(self.spec())

    def _loaded(self, info: dict) -> None:
        self.info = info
        self._loaded_weights = self._loading_weights
        self.choice.set_loaded(CLICK_ROLE, info)
        self._show()
        self._embed()  # the open image's embedding right away

    def _load_failed(self, msg: str) -> None:
        """The click model that was loaded stays loaded (the worker keeps it): say so."""
        still = f"\nStill loaded: {self.describe(self.info)}" if self.info is not None else "\nNo click model loaded."
        show_error(self.label, f"Cannot load {self.kind.currentText()}: {msg}{still}")

    @staticmethod
    def describe(info: dict) -> str:
        name = Path(info["checkpoint"]).name if info.get("checkpoint") else info.get("name", "")
        return f"{info['name']}" + (f" ({name})" if name and name != info["name"] else "") + \
            f" on {info['device']}{megabytes(info.get('memory'))}"

    def _show(self) -> None:
        key = self.key()
        idle = f"\n{self.describe(self.info)} stays loaded, unused: choose it again to use it." \
            if self.info is not None and self.info.get("family") != key else ""
        if key == PRELABEL_ANSWER:
            show_note(self.label, "Clicks take the pre-label model's instance or class area under the cursor." + idle)
        elif key == NO_CLICK_MODEL:
            show_note(self.label, "No click model: GrabCut, the wand and watershed are in the Assist tools." + idle)
        elif not idle and self.info is not None:
            show_note(self.label, f"Loaded: {self.describe(self.info)}")
        else:
            show_note(self.label, "Not loaded: press Load click model." + idle)

    # ---------------------------------------------------------------- prompts
    def image_shown(self, image_id: int, path: str, array: np.ndarray, window, next_path: str | None,
                    next_id: int | None = None) -> None:
        """The window shows another image: with a click model loaded, its embedding is computed
        now (then the next image's), so the first click answers quickly."""
        self._open = (image_id, path, array, window, next_path, next_id)
        self._waiting.clear()  # prompts on the image before are gone with it
        self._embed()

    def _in_use(self) -> bool:
        return self.choice.click_answer() == PROMPTABLE

    def _embed(self) -> None:
        if self._in_use() and self._open is not None:
            self.worker.open(*self._open)

    def prompt(self, image_id: int, array: np.ndarray, window, points, box, done: Callable[[Any], None]) -> None:
        """Candidate masks for prompts on the open image, to `done` (None on failure)."""
        if not self._in_use() or self._open is None or self._open[0] != image_id:
            done(None)
            return
        n = self.worker.prompt(image_id, self._open[1], array, window, points, box)
        self._waiting = {n: done}  # only the newest prompt is answered

    def _candidates(self, image_id: int, n: int, cands: Any) -> None:
        done = self._waiting.pop(n, None)
        if done is not None and self._open is not None and self._open[0] == image_id:
            done(cands)

    def _failed(self, image_id: int, msg: str) -> None:
        if self._open is None or self._open[0] != image_id:
            return  # an image the user has left: its prompts were dropped with it
        self._message(f"{self.kind.currentText()}: {msg}")
        for done in self._waiting.values():
            done(None)
        self._waiting.clear()
