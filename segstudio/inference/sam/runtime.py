"""How a Segment Anything network runs here: its precision, its memory layout, and prompts before
embeddings. No Qt; the package's modules are wrapped, never copied.

- Precision: bfloat16 where the hardware computes it natively (CUDA GPUs with bf16 and mixed
  precision on; CPUs with AVX512-BF16 or AMX), as SAM 2's authors run their models; float32
  elsewhere, where bfloat16 would be emulated and slower. On 2 CPU cores bfloat16 halves the
  TinyViT encoder's time and cuts the decoder's by about a third; its masks agree with
  float32's at IoU >= 0.99 (tests/inference/test_sam.py).
- Layout: the image encoder runs channels-last on the CPU (its convolutions are oneDNN's fast
  path; the same float32 arithmetic, about 10-20 % faster on its own).
- Prompts first: the encoder of the image *after* the one shown runs on another thread while the
  user clicks. `PromptsFirst` makes it wait between layers while a prompt is decoded, so a click
  gets the cores, and lets a cancel stop it between layers (switching images mid-run).
"""

from __future__ import annotations

import copy
import threading
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Callable, Iterator

import torch

from segstudio.inference.runtime.device import DeviceInfo
from segstudio.inference.runtime.priority import PROMPTS
from segstudio.inference.training.common import cpu_bf16_native

PRECISIONS = ("auto", "float32", "bfloat16")


def resolve_precision(precision: str | None, device: DeviceInfo) -> torch.dtype:
    """'auto' (or None): bfloat16 where native (see the module's doc), else float32."""
    p = (precision or "auto").lower()
    if p not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
    if p == "float32":
        return torch.float32
    if p == "bfloat16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if device.amp and torch.cuda.is_bf16_supported() else torch.float32
    if device.type == "cpu":
        return torch.bfloat16 if cpu_bf16_native() else torch.float32
    return torch.float32  # MPS and others: bf16 support varies


def _cast(v: Any, dtype: torch.dtype) -> Any:
    if isinstance(v, torch.Tensor):
        return v.to(dtype) if v.is_floating_point() else v
    if isinstance(v, (list, tuple)):  # HQ-SAM's interm_embeddings: a list of maps
        return type(v)(_cast(x, dtype) for x in v)
    return v


def decoder_in(decoder: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """Run the package's mask decoder in `dtype`: its forward becomes a copy's with weights in
    `dtype`, float inputs cast to it and float outputs back to float32, so the package's predictor
    and mask generator (which call `net.mask_decoder(...)` and post-process in float32) run
    unchanged. The module's own weights, and so the network's state_dict, stay as they were."""
    inner = copy.deepcopy(decoder).to(dtype)

    def forward(*args: Any, **kw: Any) -> Any:
        out = inner(*(_cast(a, dtype) for a in args), **{k: _cast(v, dtype) for k, v in kw.items()})
        return _cast(out, torch.float32)
    d: Any = decoder
    d.forward = forward  # an instance attribute: the package's class stays as it is
    return inner


def contiguous_tokens(transformer: torch.nn.Module) -> None:
    """The package's two-way transformer flattens the (B, C, 64, 64) image embedding and its
    positional encoding into (B, 4096, C) token views that are transposed in memory, so every
    add between them and the attention's (contiguous) outputs takes a slow strided path. Handing
    it channels-last maps makes those views contiguous: the same arithmetic, ~10 % off a prompt's
    time on 2 CPU cores (interleaved A/B, float32 and bfloat16 alike)."""
    def channels_last(module: torch.nn.Module, args: tuple) -> tuple:
        image, pe, *rest = args
        return (image.contiguous(memory_format=torch.channels_last),
                pe.contiguous(memory_format=torch.channels_last), *rest)
    transformer.register_forward_pre_hook(channels_last)


class PromptsFirst:
    """Decoding has priority over encoding, and over any other background work of the process:
    `decoding()` marks a decode in progress in the process-wide gate (runtime.priority.PROMPTS);
    the encoder's hook (`encoder_step`, run before each of its modules) waits there while another
    thread answers a prompt, and raises InterruptedError when the running embedding's cancel says so."""

    def __init__(self) -> None:
        self._local = threading.local()  # the cancel of the embedding running on this thread

    def decoding(self) -> AbstractContextManager[None]:
        return PROMPTS.answering()

    @contextmanager
    def encoding(self, cancel: Callable[[], bool] | None) -> Iterator[None]:
        old = getattr(self._local, "cancel", None)
        self._local.cancel = cancel
        try:
            yield
        finally:
            self._local.cancel = old

    def encoder_step(self, module: torch.nn.Module, args: Any) -> None:
        cancel = getattr(self._local, "cancel", None)
        if cancel is not None and cancel():
            raise InterruptedError("cancelled")
        PROMPTS.pause_point(cancel)

    def attach(self, encoder: torch.nn.Module) -> None:
        for m in encoder.modules():
            if m is not encoder:
                m.register_forward_pre_hook(self.encoder_step)


def constant_dense_pe(prompt_encoder: torch.nn.Module, dtype: torch.dtype) -> None:
    """The prompt encoder's dense positional encoding depends on fixed buffers only, yet the
    predictor recomputes it (sines and cosines over 64x64x128) for every prompt: compute it
    once, in the decoder's dtype (the predictor only hands it to the decoder)."""
    with torch.no_grad():
        enc: Any = prompt_encoder
        pe = enc.get_dense_pe().to(dtype)
    enc.get_dense_pe = lambda: pe


@contextmanager
def low_res_only(net: torch.nn.Module) -> Iterator[None]:
    """Inside the block the package's predictor skips its full-size post-processing (its masks
    stay at 256x256; the logits and scores are unchanged): `sam.Candidates` makes each candidate
    full-size when asked, with `sam_spec.full_size_mask`, the same steps. Take the model's lock
    around it: the network is shared."""
    n: Any = net
    mine = n.__dict__.get("postprocess_masks")  # someone's own wrapper (a benchmark's timer): put back
    n.postprocess_masks = lambda masks, input_size, original_size: masks
    try:
        yield
    finally:
        if mine is None:
            del n.postprocess_masks
        else:
            n.postprocess_masks = mine
