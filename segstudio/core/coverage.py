"""How much of an image its annotations cover: training on a partly labelled image teaches a
semantic model that every unlabelled pixel is background, which is wrong for scribbles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from segstudio.core.labelmap import paint_label_map
from segstudio.core.records import DONE

SPARSE_FRACTION = 0.05  # an image with less than this share of its pixels labelled is "sparse"


@dataclass(frozen=True)
class Coverage:
    checked: int  # images looked at
    sparse: list[tuple[str, float]]  # (path, labelled fraction) of those under the threshold

    def warning(self, ignoring: bool, option: str = "“Ignore unlabelled pixels”", turn_on: str = "tick") -> str:
        """The sentence for a person ('' when no image is sparse); `option` names the switch."""
        if not self.sparse:
            return ""
        n = len(self.sparse)
        few = ", ".join(f"{p} {100 * f:.1f} %" for p, f in self.sparse[:3]) + (", …" if n > 3 else "")
        head = (f"{n} of {self.checked} done image{'' if self.checked == 1 else 's'} "
                f"{'has' if n == 1 else 'have'} less than {100 * SPARSE_FRACTION:.0f} % of "
                f"{'its' if n == 1 else 'their'} pixels labelled ({few}).")
        if ignoring:
            return (head + f" Unlabelled pixels are ignored in training ({option} is on): "
                    "paint background with a class named “background”.")
        return (head + " Training learns every unlabelled pixel as background. If these are scribbles "
                f"rather than complete labels, {turn_on} {option}.")


def labelled_fraction(regions, width: int, height: int) -> float:
    """Share of the image's pixels under at least one region (overlaps counted once)."""
    if not width or not height:
        return 0.0
    regions = list(regions)
    if not regions:
        return 0.0
    covered = paint_label_map(regions, width, height, {r.class_id: 1 for r in regions})
    return float(np.count_nonzero(covered)) / (width * height)


def sparse_images(project, image_ids: Sequence[int] | None = None, threshold: float = SPARSE_FRACTION,
                  cancel: Callable[[], bool] | None = None) -> Coverage:
    """The done images (or `image_ids`) with regions that cover less than `threshold` of the
    image. Images without regions are not training images and are not counted."""
    store = project.store
    ids = list(image_ids) if image_ids is not None else store.image_ids(statuses=(DONE,))
    sparse, checked = [], 0
    for i in ids:
        if cancel is not None and cancel():
            break
        regions = store.regions(i)
        if not regions:
            continue
        rec = store.image(i)
        w, h = rec.width, rec.height
        if not w or not h:
            try:
                w, h = project.image_size(rec)
            except Exception:  # an unreadable image is reported where it is read, not here  # noqa: BLE001
                continue
        checked += 1
        f = labelled_fraction(regions, w, h)
        if f < threshold:
            sparse.append((rec.path, f))
    return Coverage(checked, sparse)
