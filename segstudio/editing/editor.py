"""What the tools see of the window: the open document and image, the current class, the
selection and tool settings. Plain Python (no Qt) so the tools are tested without a display;
the main window subclasses it to connect Qt signals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol, TypeVar

import numpy as np

from segstudio.core.document import Document

if TYPE_CHECKING:
    from segstudio.core.region import Region
    from segstudio.inference.runtime.segmenter import Detection

T = TypeVar("T")


# who answers the Model click / box tool (EditorState.click_answer)
PROMPTABLE, INSTANCES, CLASSES = "promptable", "instances", "classes"
DEFAULT_BRUSH_RADIUS = 8.0  # px, until the user's own size is restored from the settings
DEFAULT_WAND_TOLERANCE = 12.0  # percent of the display range: a flat object on a busy background


class Resettable(Protocol):
    """What the editor needs of a tool (editing.tools.Tool): to make it forget its state."""

    def cancel(self) -> None: ...


class EditorState:
    def __init__(self) -> None:
        self.doc: Document | None = None
        self.image: np.ndarray | None = None
        self.window: tuple[float, float] | None = None  # display window of 16-bit/float images
        self.current_class_id: int | None = None
        self.selected: list[int] = []
        self.brush_radius: float = DEFAULT_BRUSH_RADIUS
        self.wand_tolerance: float = DEFAULT_WAND_TOLERANCE  # percent of the display range
        self.hidden_classes: set[int] = set()
        self.hidden_regions: set[int] = set()
        self.tools: list[Resettable] = []  # every Tool made for this editor (they register themselves)

    # -- hooks the window overrides
    def run_assist(self, fn: Callable[[], T], done: Callable[[T], None], label: str) -> None:
        """Run a slow assist (GrabCut, wand on a big image). Here: inline. The window: a worker."""
        done(fn())

    def message(self, text: str) -> None:
        pass

    def selection_changed(self) -> None:
        pass

    def preview_changed(self) -> None:
        pass

    # -- the model, as the prompt tool sees it (the window overrides these)
    def model_loaded(self) -> bool:
        return False

    def click_answer(self) -> str | None:
        """What answers the Model click / box tool: PROMPTABLE (the click model: candidate masks
        for each prompt), INSTANCES or CLASSES (the pre-label model's own prediction: the instance,
        or the class area, under the click), None (no model)."""
        return None

    def click_model_name(self) -> str:
        """The click model as the prompt tool's messages and undo steps name it."""
        return "Click model"

    def model_candidates(self) -> list[Detection] | None:
        """Cached model proposals (Detections) for the open image; None when there are none yet."""
        return None

    def request_model_candidates(self, then: Callable[[], None]) -> None:
        """Ask the model for the open image's proposals; call `then()` when they are cached."""

    def accept_detection(self, det: Detection) -> int | None:
        """Put a model proposal into the document as a region; returns its id."""
        return None

    def prompt_model(self, points: list[tuple[float, float, bool]], box: tuple[int, int, int, int] | None,
                     done: Callable[[Any], None]) -> None:
        """A promptable model's candidate masks (inference.sam.Candidates) for these prompts on
        the open image, to `done` (None when it failed: the message says why)."""
        self.message("No promptable model loaded")
        done(None)

    # -- tools
    def add_tool(self, tool: Resettable) -> None:
        self.tools.append(tool)

    def reset_tools(self) -> None:
        """Forget every tool's transient state (seeds, points, boxes, a drag in progress) and
        its preview. Call it when the image changes, on undo/redo and when the tool changes:
        state made for other pixels must not act on, or show over, these ones."""
        for t in self.tools:
            t.cancel()
        self.preview_changed()

    def undo(self) -> str | None:
        """Undo one step of the open document (tools forget their state first); its label."""
        if self.doc is None:
            return None
        self.reset_tools()
        return self.doc.undo()

    def redo(self) -> str | None:
        if self.doc is None:
            return None
        self.reset_tools()
        return self.doc.redo()

    # -- helpers
    def select(self, ids: list[int]) -> None:
        ids = [i for i in ids if self.doc is not None and i in self.doc.regions]
        if ids != self.selected:
            self.selected = ids
            self.selection_changed()

    @property
    def primary(self) -> int | None:
        if self.doc is None:
            return None
        sel = [i for i in self.selected if i in self.doc.regions]
        return sel[0] if sel else None

    def visible(self, region: Region) -> bool:
        return region.class_id not in self.hidden_classes and region.id not in self.hidden_regions

    def value_range(self) -> float:
        """The range a tolerance percentage refers to: 255 for 8-bit, the display window otherwise."""
        if self.image is None or self.image.dtype == np.uint8:
            return 255.0
        if self.window is not None:
            return float(self.window[1] - self.window[0])
        return float(np.ptp(self.image[::16, ::16])) or 1.0
