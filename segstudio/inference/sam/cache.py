"""SAM image embeddings and their cache. No Qt.

`Embedding`: one image through the image encoder (what `sam.SamModel.embed` returns and
`SamModel.decode` answers prompts from). `EmbeddingCache` (the shared runtime/embedding_cache.py
with this entry) keeps embeddings in memory (LRU, bounded by bytes) and on disk under the
project's store folder, so an image is embedded once; disk entries are plain tensors, read back
with `torch.load(weights_only=True)` and checked.

A disk entry is data from disk like any other: its file and the sizes its archive declares are
bounded before it is read (a 2.7 MB entry cannot inflate to gigabytes), and what it holds must be
what the decoder takes (SAM's 256x64x64 image embedding, of a float dtype, sizes that agree), or it
is deleted and computed again. The key holds a digest of the image file's content (all of a small
file, the first and last blocks of a large one), so a file rewritten with the same size and mtime
misses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from segstudio.inference.runtime import embedding_cache
from segstudio.inference.runtime.embedding_cache import content_digest  # noqa: F401  (where callers look)

EMBEDDING_FORMAT = "segstudio-sam-embedding"
EMBEDDING_VERSION = 1
INPUT_SIDE = 1024  # SAM's encoder input: the long side resized to this
FEATURES_SHAPE = (1, 256, 64, 64)  # the image embedding every SAM decoder here takes
MAX_INTERM_CHANNELS = 2048  # HQ-SAM's intermediate ViT map: the encoder's width (ViT-H: 1280)
DTYPES = (torch.float16, torch.bfloat16, torch.float32)
# an entry holds the features and at most one (1, 64, 64, C) map, float32 at most: ~36 MiB; twice that
MAX_ENTRY_BYTES = 2 * 4 * (256 * 64 * 64 + 64 * 64 * MAX_INTERM_CHANNELS)


def resized_size(h: int, w: int) -> tuple[int, int]:
    """(h, w) after SAM's ResizeLongestSide(1024), as the packages compute it."""
    scale = INPUT_SIDE / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


@dataclass(eq=False)
class Embedding:
    """One image through the image encoder. Tensors on the CPU (float16 by default: half the
    memory, masks identical to within rounding). `interm` only for the HQ decoder."""
    features: torch.Tensor  # (1, 256, 64, 64)
    interm: torch.Tensor | None  # (1, 64, 64, C): HQ decoder's first intermediate ViT map
    original_size: tuple[int, int]  # (H, W) of the image
    input_size: tuple[int, int]  # (h, w) after resizing the long side to 1024
    model: str  # SamModel.cache_id of the model that made it

    @property
    def nbytes(self) -> int:
        n = self.features.numel() * self.features.element_size()
        if self.interm is not None:
            n += self.interm.numel() * self.interm.element_size()
        return n

    @property
    def width(self) -> int:
        return self.original_size[1]

    @property
    def height(self) -> int:
        return self.original_size[0]

    def to_state(self, key: str) -> dict:
        """Plain tensors, ints and strings: what torch.save writes and weights_only reads back."""
        d: dict[str, Any] = {"format": EMBEDDING_FORMAT, "version": EMBEDDING_VERSION, "key": key,
                             "model": self.model, "features": self.features.contiguous(),
                             "original_size": list(self.original_size), "input_size": list(self.input_size)}
        if self.interm is not None:
            d["interm"] = self.interm.contiguous()
        return d

    @classmethod
    def from_state(cls, d: Any, key: str | None = None) -> "Embedding":
        """Checked: a damaged or foreign entry raises ValueError."""
        if not isinstance(d, dict) or d.get("format") != EMBEDDING_FORMAT or d.get("version") != EMBEDDING_VERSION:
            raise ValueError("not a segstudio SAM embedding")
        if key is not None and d.get("key") != key:
            raise ValueError("the entry belongs to another key")
        f, interm = d.get("features"), d.get("interm")
        if not torch.is_tensor(f) or tuple(f.shape) != FEATURES_SHAPE or f.dtype not in DTYPES:
            raise ValueError(f"features of shape {_shape(f)}, not {FEATURES_SHAPE} of a float dtype")
        if interm is not None and (not torch.is_tensor(interm) or interm.dim() != 4
                                   or tuple(interm.shape[:3]) != (1, 64, 64)
                                   or not 0 < interm.shape[3] <= MAX_INTERM_CHANNELS or interm.dtype not in DTYPES):
            raise ValueError(f"intermediate features of shape {_shape(interm)}, not (1, 64, 64, C) of a float dtype")
        sizes = []
        for k in ("original_size", "input_size"):
            s = d.get(k)
            if not isinstance(s, (list, tuple)) or len(s) != 2 or not all(isinstance(v, int) and v > 0 for v in s):
                raise ValueError(f"bad {k}")
            sizes.append((int(s[0]), int(s[1])))
        if sizes[1] != resized_size(*sizes[0]):
            raise ValueError(f"input size {sizes[1]} is not SAM's for an image of {sizes[0]}")
        if not isinstance(d.get("model"), str):
            raise ValueError("bad model")
        if not (torch.isfinite(f).all() and (interm is None or torch.isfinite(interm).all())):
            raise ValueError("non-finite features")
        return cls(f, interm, sizes[0], sizes[1], d["model"])


def _shape(t: Any) -> str:
    return str(tuple(t.shape)) + f" {t.dtype}" if torch.is_tensor(t) else type(t).__name__


class EmbeddingCache(embedding_cache.EmbeddingCache[Embedding]):
    """SAM embeddings by key, in memory and on disk (`sam_spec.embedding_dir(project, model)`:
    FOLDER/.segstudio/sam/<model>/<key>.pt); runtime/embedding_cache.py says how."""
    ENTRY = Embedding
    FORMAT = EMBEDDING_FORMAT
    VERSION = EMBEDDING_VERSION
    MAX_ENTRY_BYTES = MAX_ENTRY_BYTES
