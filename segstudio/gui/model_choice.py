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
from segstudio.inference.family import CLICK_ROLE, PRELABEL_ROLE, Family

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
        self.load_checkpoint: Callable[..., None] = lambda path, spec=None: None
        # a checkpoint already loaded on the model thread (the live learner's new version): used as it is
        self.adopt_checkpoint: Callable[[str, Any, dict], None] = lambda path, model, spec: None
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
    def learning_family(self) -> Family:
        """The family Learn as I annotate trains: the loaded pre-label model's, else the one chosen
        (the Kind list alone never decides over a loaded model)."""
        info = self.loaded[PRELABEL_ROLE]
        fam = registry.FAMILIES.get((info or {}).get("family") or "")
        return fam if fam is not None else self.family

    def learning_spec(self) -> dict:
        """How the learnt versions are loaded: as the loaded pre-label model was, else as chosen."""
        info = self.loaded[PRELABEL_ROLE]
        spec = (info or {}).get("spec")
        return dict(spec) if isinstance(spec, dict) else self.prelabel_spec()

    def click_family(self) -> Family | None:
        """The promptable family chosen as the click model (None: the pre-label answer or none)."""
        return registry.FAMILIES.get(self.click) if self.click not in (PRELABEL_ANSWER, NO_CLICK_MODEL) else None

    def click_answer(self) -> str | None:
        """What answers the Model click / box tool now (editing.editor.PROMPTABLE, INSTANCES,
        CLASSES or None): only a loaded model answers."""
        fam = self.click_family()
        if fam is not None:  # the chosen click model answers once it is the one loaded
            loaded = self.loaded[CLICK_ROLE]
            return PROMPTABLE if loaded is not None and loaded.get("family") == fam.key else None
        if self.click == NO_CLICK_MODEL:
            return None
        info = self.loaded[PRELABEL_ROLE]
        if info is None:
            return None
        fam = registry.FAMILIES.get(info.get("family") or info.get("arch") or "")
        return CLASSES if fam is not None and fam.semantic else INSTANCES
