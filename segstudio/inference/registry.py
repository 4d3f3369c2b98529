"""Every model family and what it can do, in one place, without importing torch.

The command line (`--model` choices, `segstudio models`), the Model panel (its two roles), the
weights catalog and the engine (`load_segmenter`, `load_clicker`) read this. A new family is a
package under `inference/` whose `spec.py` declares its `FAMILIES`, added to `_SPECS` below.
"""

from __future__ import annotations

from segstudio.core.errors import BadValue
from segstudio.inference.family import CLICK_ROLE, PRELABEL_ROLE, Family, WeightsFile, resolve
from segstudio.inference.maskrcnn import spec as maskrcnn_spec
from segstudio.inference.sam import spec as sam_spec
from segstudio.inference.sam2 import spec as sam2_spec
from segstudio.inference.semantic import spec as semantic_spec

# the order of the lists: Mask R-CNN first, the pre-label model a new project starts with (COCO's
# classes with no training); then the class-per-pixel networks; then the click models
_SPECS = (maskrcnn_spec, semantic_spec, sam_spec, sam2_spec)
FAMILIES: dict[str, Family] = {f.key: f for s in _SPECS for f in s.FAMILIES}


def family(key: str | None) -> Family:
    """The family of a --model choice / ModelSpec.arch; a clear message for any other."""
    f = FAMILIES.get(key) if isinstance(key, str) else None
    if f is None:
        raise BadValue(f"unknown model {key!r}; use {', '.join(FAMILIES)}")
    return f


def keys(capability: str | None = None) -> list[str]:
    """The families' keys, in the order they are declared; only those that can `capability`."""
    return [k for k, f in FAMILIES.items() if capability is None or f.can(capability)]


def for_role(role: str) -> list[Family]:
    """The families that can fill a window role (family.CLICK_ROLE or family.PRELABEL_ROLE)."""
    assert role in (CLICK_ROLE, PRELABEL_ROLE)
    return [f for f in FAMILIES.values() if role in f.roles]


def of_checkpoint(kind: str | None) -> list[Family]:
    """The families whose trained checkpoints are stored as `kind` ("unet", "maskrcnn")."""
    return [f for f in FAMILIES.values() if kind is not None and f.checkpoint_kind == kind]


def weights(f: Family) -> list[WeightsFile]:
    """The files a family needs and whether they are here (no torch: file names and paths)."""
    return list(resolve(f.weights)()) if f.weights else []


def packages_missing(f: Family) -> list[str]:
    """The import names of its extra packages that cannot be found (found without importing them)."""
    from importlib.util import find_spec
    out = []
    for p in f.packages:
        try:
            if find_spec(p) is None:
                out.append(p)
        except (ImportError, ValueError):
            out.append(p)
    return out
