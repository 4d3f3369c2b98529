"""Tiled inference for images larger than a tile: overlapping tiles, each weighted by a ramp
that falls towards its edges, summed and normalised, so seams blend away."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    step = max(1, tile - overlap)
    starts = list(range(0, size - tile + 1, step))
    if starts[-1] != size - tile:
        starts.append(size - tile)
    return starts


def blend_window(th: int, tw: int, overlap: int) -> torch.Tensor:
    """Weights 1 in the middle, ramping linearly (never to 0) across `overlap` pixels at the edges."""
    def ramp(n):
        w = np.ones(n, np.float32)
        r = min(overlap, n // 2)
        if r > 0:
            w[:r] = np.arange(1, r + 1, dtype=np.float32) / (r + 1)
            w[-r:] = w[:r][::-1]
        return w
    return torch.from_numpy(np.outer(ramp(th), ramp(tw)))


def predict_tiled(x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], num_out: int, tile: int = 512,
                  overlap: int = 64, batch: int = 4, cancel: Callable[[], bool] | None = None) -> torch.Tensor:
    """Run `fn` (N, C, h, w) -> (N, K, h, w) over a (C, H, W) image in tiles; returns (K, H, W)
    probabilities (or whatever fn returns), blended. A small image is one tile."""
    C, H, W = x.shape
    th, tw = min(tile, H), min(tile, W)
    ys, xs = tile_starts(H, th, overlap), tile_starts(W, tw, overlap)
    if len(ys) == 1 and len(xs) == 1:
        return fn(x[None])[0]
    win = blend_window(th, tw, overlap).to(x.device)
    out = torch.zeros((num_out, H, W), device=x.device, dtype=torch.float32)
    norm = torch.zeros((H, W), device=x.device, dtype=torch.float32)
    coords = [(y, xx) for y in ys for xx in xs]
    for k in range(0, len(coords), batch):
        if cancel is not None and cancel():
            raise InterruptedError("cancelled")
        chunk = coords[k:k + batch]
        tiles = torch.stack([x[:, y:y + th, xx:xx + tw] for y, xx in chunk])
        pred = fn(tiles).float()
        for (y, xx), p in zip(chunk, pred, strict=True):
            out[:, y:y + th, xx:xx + tw] += p * win
            norm[y:y + th, xx:xx + tw] += win
    return out / norm
