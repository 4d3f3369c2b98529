"""SAM 2 image embeddings and their cache. No Qt.

`Sam2Embedding`: one image through SAM 2's image encoder, as `Sam2Model.get_image_embeddings`
returns it: three feature maps (the two high-resolution ones already projected by the mask
decoder's conv_s0 / conv_s1, and the 64x64 image embedding), plus the image's size.
`EmbeddingCache` is the shared runtime/embedding_cache.py with this entry: in memory and on disk,
entries read back with `torch.load(weights_only=True)` and checked here (shapes, dtype, finite,
sizes), or deleted and computed again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from segstudio.inference.runtime import embedding_cache

EMBEDDING_FORMAT = "segstudio-sam2-embedding"
EMBEDDING_VERSION = 1
# SAM 2.1's maps for a 1024x1024 input (every Hiera size: the FPN is 256 wide, conv_s0 / conv_s1 give 32 / 64)
FEATURE_SHAPES = ((1, 32, 256, 256), (1, 64, 128, 128), (1, 256, 64, 64))
DTYPES = (torch.float16, torch.bfloat16, torch.float32)
MAX_ENTRY_BYTES = 2 * 4 * sum(s[1] * s[2] * s[3] for s in FEATURE_SHAPES)  # twice float32's
MAX_SIDE = 1 << 20  # an image side in a cache entry (more is no image anyone decoded)


@dataclass(eq=False)
class Sam2Embedding:
    """Tensors on the CPU (float16 by default: half the memory)."""
    features: tuple[torch.Tensor, ...]  # FEATURE_SHAPES
    original_size: tuple[int, int]  # (H, W) of the image
    model: str  # the cache_id of the model that made it

    @property
    def nbytes(self) -> int:
        return sum(f.numel() * f.element_size() for f in self.features)

    @property
    def width(self) -> int:
        return self.original_size[1]

    @property
    def height(self) -> int:
        return self.original_size[0]

    def to_state(self, key: str) -> dict:
        """Plain tensors, ints and strings: what torch.save writes and weights_only reads back."""
        return {"format": EMBEDDING_FORMAT, "version": EMBEDDING_VERSION, "key": key, "model": self.model,
                "features": [f.contiguous() for f in self.features], "original_size": list(self.original_size)}

    @classmethod
    def from_state(cls, d: Any, key: str | None = None) -> "Sam2Embedding":
        """Checked: a damaged or foreign entry raises ValueError."""
        if not isinstance(d, dict) or d.get("format") != EMBEDDING_FORMAT or d.get("version") != EMBEDDING_VERSION:
            raise ValueError("not a segstudio SAM 2 embedding")
        if key is not None and d.get("key") != key:
            raise ValueError("the entry belongs to another key")
        feats = d.get("features")
        if not isinstance(feats, (list, tuple)) or len(feats) != len(FEATURE_SHAPES):
            raise ValueError(f"features must be {len(FEATURE_SHAPES)} maps")
        for f, shape in zip(feats, FEATURE_SHAPES, strict=True):
            if not torch.is_tensor(f) or tuple(f.shape) != shape or f.dtype not in DTYPES:
                got = f"{tuple(f.shape)} {f.dtype}" if torch.is_tensor(f) else type(f).__name__
                raise ValueError(f"a feature map of {got}, not {shape} of a float dtype")
            if not torch.isfinite(f).all():
                raise ValueError("non-finite features")
        s = d.get("original_size")
        if (not isinstance(s, (list, tuple)) or len(s) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_SIDE for v in s)):
            raise ValueError("bad original_size")
        if not isinstance(d.get("model"), str):
            raise ValueError("bad model")
        return cls(tuple(feats), (int(s[0]), int(s[1])), d["model"])


class EmbeddingCache(embedding_cache.EmbeddingCache[Sam2Embedding]):
    """SAM 2 embeddings by key, in memory and on disk (`sam2_spec.embedding_dir(project, model)`);
    runtime/embedding_cache.py says how."""
    ENTRY = Sam2Embedding
    FORMAT = EMBEDDING_FORMAT
    VERSION = EMBEDDING_VERSION
    MAX_ENTRY_BYTES = MAX_ENTRY_BYTES
