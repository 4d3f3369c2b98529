"""The promptable protocol: what the window's click model answers to, without torch.

A click model embeds an image once (the slow part, cached) and then decodes each prompt (points,
a box) into candidate masks in tens of milliseconds. The Segment Anything family implements it;
so can any family that declares a `load_click` (inference/family.py). The window's click worker,
the engine and the prompt tool speak only this protocol: they never ask which model it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from segstudio.core.project import Project

Point = tuple[float, float, bool]  # x, y, positive


@runtime_checkable
class CandidateMasks(Protocol):
    """A prompt's answer, best first."""
    scores: "np.ndarray"  # (C,) float, descending

    def __len__(self) -> int: ...

    def mask(self, k: int) -> "np.ndarray":
        """Candidate k as an (H, W) bool mask at the image's size."""
        ...

    def crop(self, k: int) -> "tuple[np.ndarray, int, int] | None":
        """Candidate k cropped to its content (mask, x, y); None when empty."""
        ...


@runtime_checkable
class Promptable(Protocol):
    name: str  # the model's id: its embedding cache's folder; a new id means new embeddings
    device: Any  # inference.runtime.device.DeviceInfo: where it runs (the panel shows it)

    def open_cache(self, project: "Project | None") -> Any:
        """The embedding cache of this model in this project (None: memory only)."""
        ...

    def embedding_for(self, image: "np.ndarray", image_path: "str | Path | None", cache: Any = None,
                      window: "tuple[float, float] | None" = None,
                      cancel: Callable[[], bool] | None = None) -> Any:
        """The image's embedding: from the cache, or computed now (InterruptedError when cancel says so)."""
        ...

    def decode(self, emb: Any, points: "Iterable[Point] | None" = None,
               box: "Sequence[float] | None" = None, mask_input: Any = None) -> CandidateMasks:
        """Candidate masks for the prompts on an embedded image."""
        ...
