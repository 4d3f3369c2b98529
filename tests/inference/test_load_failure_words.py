"""A file torch cannot load is described in the user's words: random bytes, a truncated archive or
an empty file are "not a PyTorch checkpoint"; a real pickle that names a class outside torch's
allowlist is "not loaded, for safety". torch's own advice to re-run with weights_only=False (which
would run the file's code) is never shown."""

import io
import logging
import os
import random
import pickle
import zipfile

import pytest

torch = pytest.importorskip("torch")

from segstudio.inference.runtime.checkpoint import CheckpointError, load_checkpoint  # noqa: E402
from segstudio.inference.sam.weights import read_state_dict  # noqa: E402

NOT_TORCH = "is not a PyTorch checkpoint (corrupt, truncated, or another kind of file)"
SAFETY = "holds Python objects segstudio does not load (only tensors and plain data): not loaded, for safety"


class Pickled:  # a class torch's weights-only unpickler does not allow
    def __init__(self):
        self.pad = b"x" * 4096


def _archive() -> bytes:
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(600)}, buf)
    return buf.getvalue()


def _hostile(kind: str) -> bytes:
    if kind == "random":
        return random.Random(1).randbytes(5000)
    if kind == "truncated":
        return _archive()[:-200]
    if kind == "zip-garbage":
        return b"PK\x03\x04" + random.Random(2).randbytes(5000)
    if kind == "not-torch-zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("readme.txt", "x" * 5000)
        return buf.getvalue()
    if kind == "plain-pickle":
        return pickle.dumps({"w": list(range(2000))}, protocol=2)[:-1]  # no STOP: EOF
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["random", "truncated", "zip-garbage", "not-torch-zip", "plain-pickle"])
def test_a_file_that_is_not_torch_says_so_in_plain_words(tmp_path, kind):
    p = tmp_path / "broken.pt"
    p.write_bytes(_hostile(kind))
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(p)
    assert str(e.value) == f"broken.pt {NOT_TORCH}"
    with pytest.raises(CheckpointError) as e:
        read_state_dict(p)
    assert str(e.value) == f"{p} is not a PyTorch weights file (corrupt, truncated, or another kind of file)"


def test_a_pickle_with_objects_is_refused_for_safety_without_advice_to_turn_the_check_off(tmp_path):
    p = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(600), "obj": Pickled()}, p)
    for read in (load_checkpoint, read_state_dict):
        with pytest.raises(CheckpointError) as e:
            read(p)
        msg = str(e.value)
        assert SAFETY in msg and "Pickled" in msg, msg
        assert "weights_only" not in msg and "False" not in msg and "trust" not in msg


def test_torch_text_goes_to_the_debug_log_only(tmp_path):
    p = tmp_path / "broken.pt"
    p.write_bytes(random.Random(7).randbytes(5000))  # the same bytes every run: torch's text depends on them
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    log = logging.getLogger("segstudio")
    level, disabled = log.level, log.disabled
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.disabled = False  # an earlier test's logging.config (Ray, datumaro) may have disabled it
    try:
        with pytest.raises(CheckpointError):
            load_checkpoint(p)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        log.disabled = disabled
    torch_text = [r for r in records if r.getMessage().startswith("torch.load of")]
    assert torch_text and all(r.levelno == logging.DEBUG for r in torch_text)
