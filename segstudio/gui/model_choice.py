"""The model choice: what the user chose for each of the window's two roles and what is loaded
in each, as one observable object (plain Python with events, as napari keeps its models free of
Qt). The Model panel writes it; the Train and Learn-as-I-annotate panels read it and ask it for
what they need (load this checkpoint, segment the unlabelled images), never the panel's widgets.

Roles (DESIGN.md "Two roles in the window"):
- the click model answers the Model click / box tool: a promptable family (Segment Anything…),
  the pre-label model's own answer (`PRELABEL_ANSWER`), or nothing (`NO_CLICK_MODEL`);
- the pre-label model is what Segment image / Segment folder and Learn as I annotate use and train.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from segstudio.editing.editor import CLASSES, INSTANCES, PROMPTABLE
from segstudio.inference import registry
from segstudio.inference.family import CLICK_ROLE, LEARN_LIVE, PRELABEL_ROLE, Family

PRELABEL_ANSWER = "prelabel"  # the click model choice: the pre-label model answers clicks with its prediction
NO_CLICK_MODEL = "none"  # the click model choice: no model; the classical assists only

Listener = Callable[[str], None]


class ModelChoice:
    def __init__(self) -> None:
        prelabel = registry.for_role(PRELABEL_ROLE)
        self.family: Family = prelabel[0]  # the pre-label model's family
        self.variant: str | None = self.family.variants[0][0] if self.family.variants else None
        self.weights: str | None = None  # the pre-label checkpoint chosen (None: the family's pretrained weights)
        self.device = "auto"
        self.click = PRELABEL_ANSWER  # a promptable family's key, PRELABEL_ANSWER or NO_CLICK_MODEL
        self.loaded: dict[str, dict | None] = {CLICK_ROLE: None, PRELABEL_ROLE: None}
        self._listeners: list[Listener] = []
        # what the Model panel does when another panel asks (set by the panel)
        self.load_checkpoint: Callable[[str], None] = lambda path: None
        # a checkpoint already loaded on the model thread (the live learner's new version): used as it is
        self.adopt_checkpoint: Callable[[str, Any], None] = lambda path, model: None
        self.segment_unlabelled: Callable[[], None] = lambda: None
        self.prelabel_spec: Callable[[], dict] = lambda: {}

    # ---------------------------------------------------------------- events
    def on_change(self, listener: Listener) -> None:
        """`listener(what)` after each change: "family", "variant", "weights", "device", "click",
        "loaded"."""
        self._listeners.append(listener)

    def set(self, what: str, value: Any) -> None:
        if getattr(self, what) == value:
            return
        setattr(self, what, value)
        self._emit(what)

    def set_loaded(self, role: str, info: dict | None) -> None:
        self.loaded[role] = info
        self._emit("loaded")

    def _emit(self, what: str) -> None:
        for fn in list(self._listeners):
            fn(what)

    # ---------------------------------------------------------------- what the choice means
    @property
    def learns_live(self) -> bool:
        return self.family.can(LEARN_LIVE)

    @property
    def checkpoint_kind(self) -> str | None:
        """The kind of the pre-label family's trained checkpoints ("unet", "maskrcnn")."""
        return self.family.checkpoint_kind

    def click_family(self) -> Family | None:
        """The promptable family chosen as the click model (None: the pre-label answer or none)."""
        return registry.FAMILIES.get(self.click) if self.click not in (PRELABEL_ANSWER, NO_CLICK_MODEL) else None

    def click_answer(self) -> str | None:
        """What answers the Model click / box tool now (editing.editor.PROMPTABLE, INSTANCES,
        CLASSES or None): only a loaded model answers."""
        if self.click_family() is not None:
            return PROMPTABLE if self.loaded[CLICK_ROLE] is not None else None
        if self.click == NO_CLICK_MODEL:
            return None
        info = self.loaded[PRELABEL_ROLE]
        if info is None:
            return None
        fam = registry.FAMILIES.get(info.get("family") or info.get("arch") or "")
        return CLASSES if fam is not None and fam.semantic else INSTANCES
