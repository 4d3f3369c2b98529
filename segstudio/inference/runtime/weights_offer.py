"""What a family's catalogue function (`Family.catalog`) returns: the weights files it loads, for
`runtime.weights_catalog` (`segstudio weights`, the Get weights dialog). Without the registry:
the families import this, never the catalogue itself (which reads every family)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")  # torch.hub.HASH_REGEX (weights_catalog asserts it)


@dataclass(frozen=True)
class Offer:
    """One file a family loads, as its catalogue function (`Family.catalog`) lists it."""
    name: str  # the name `segstudio weights get NAME` takes
    title: str
    user: str  # what in segstudio loads it
    url: str
    file: str = ""  # its name in the torch hub cache ("": the URL's last part)
    size: int | None = None
    approx_mib: float | None = None
    sha256: str | None = None
    hash_prefix: str | None = None
    models: tuple[str, ...] = ()  # the family's model names that read it (aliases, and `reads`)
    # "module:function" (path, models, title, file) -> why the file cannot be these weights, or None:
    # the family's own check of a file whose hash is not known (read weights-only)
    reads: str | None = None


def torchvision_offer(name: str, title: str, weights: Any, user: str) -> Offer:
    """A file of torchvision's weights enums: its URL, the size in its meta, the hash prefix in its name."""
    file = os.path.basename(weights.url)
    m = HASH_REGEX.search(file)
    mib = weights.meta.get("_file_size")
    return Offer(name, title, user, weights.url, file, approx_mib=float(mib) if isinstance(mib, (int, float)) else None,
                 hash_prefix=m.group(1) if m and m.group(1) else None)
