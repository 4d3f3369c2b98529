"""Compressed bombs in weights files: a small `.pth` whose tensor record is deflated zeros that
inflate to hundreds of MB. Every loader (checkpoints, `--weights`, `weights add`, cached
torchvision weights, Segment Anything files) refuses it from the archive's declared sizes, before
`torch.load` reads (and inflates) anything. The bombs are generated here."""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from segstudio.inference.runtime.checkpoint import CheckpointError, load_checkpoint  # noqa: E402
from tests.inference.helpers import tiny_unet_checkpoint  # noqa: E402

MIB = 1 << 20
ROOT = Path(__file__).resolve().parents[2]


class _Storage:
    def __init__(self, numel: int):
        self.numel = numel


class _Tensor:
    """Pickles as torch.save pickles a float32 tensor of `shape` whose storage is record "0"."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape
        n = 1
        for s in shape:
            n *= s
        self.storage = _Storage(n)

    def __reduce__(self):
        stride, acc = [], 1
        for s in reversed(self.shape):
            stride.insert(0, acc)
            acc *= s
        return (torch._utils._rebuild_tensor_v2,
                (self.storage, 0, tuple(self.shape), tuple(stride), False, collections.OrderedDict()))


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):  # what torch.save writes for a storage: ("storage", type, key, location, numel)
        if isinstance(obj, _Storage):
            return ("storage", torch.FloatStorage, "0", "cpu", obj.numel)
        return None


def write_bomb(path: Path, nbytes: int, wrap=lambda t: {"weight": t}, shape: tuple[int, ...] | None = None) -> Path:
    """A torch archive laid out as torch.save lays it out, whose one tensor record is `nbytes` of
    zeros, deflated (about 1000:1). `wrap(tensor)` is the pickled top-level object."""
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(wrap(_Tensor(shape or (nbytes // 4,))))
    ref = io.BytesIO()
    torch.save({}, ref)
    ref.seek(0)
    with zipfile.ZipFile(ref) as z, zipfile.ZipFile(path, "w") as out:
        prefix = z.namelist()[0].split("/")[0]
        for info in z.infolist():
            out.writestr(info.filename, buf.getvalue() if info.filename.endswith("/data.pkl") else z.read(info))
        record = zipfile.ZipInfo(f"{prefix}/data/0")
        record.compress_type = zipfile.ZIP_DEFLATED
        zeros = bytes(MIB)
        with out.open(record, "w", force_zip64=True) as f:
            for _ in range(nbytes // MIB):
                f.write(zeros)
    return path


def unet_bomb(path: Path, nbytes: int = 256 * MIB) -> Path:
    """A well-formed segstudio UNet checkpoint, but for its one tensor."""
    return write_bomb(path, nbytes, lambda t: {
        "format": "segstudio-checkpoint", "format_version": 1, "arch": "unet", "config": {}, "classes": ["blob"],
        "normalization": {}, "training": {}, "segstudio_version": "0", "state_dict": {"inc.weight": t}})


@pytest.fixture
def loads(monkeypatch):
    """Every torch.load call's source, the real load still done (today's code reads the bombs)."""
    seen: list = []
    real = torch.load

    def spy(f, *a, **kw):
        seen.append(f)
        return real(f, *a, **kw)
    monkeypatch.setattr(torch, "load", spy)
    return seen


def test_a_bomb_really_inflates(tmp_path):
    """The generated file is what it claims: small on disk, its record declaring the full size,
    and a real torch archive (torch loads it into a tensor of that size)."""
    path = unet_bomb(tmp_path / "b.pt", 128 * MIB)
    assert path.stat().st_size < MIB
    with zipfile.ZipFile(path) as z:
        assert max(i.file_size for i in z.infolist()) == 128 * MIB
    d = torch.load(path, weights_only=True)
    assert d["state_dict"]["inc.weight"].numel() * 4 == 128 * MIB


def test_a_checkpoint_bomb_is_refused_before_reading(tmp_path, loads):
    path = unet_bomb(tmp_path / "bomb.pt")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    msg = str(e.value)
    assert str(path) in msg and "inflate to 256.0 MiB" in msg and "data/0" in msg
    assert loads == []


def test_real_checkpoints_still_load(tmp_path):
    from segstudio.inference.runtime.torch_archive import archive_problem
    ck = tiny_unet_checkpoint(tmp_path / "u.pt")
    assert archive_problem(ck) is None and load_checkpoint(ck).arch == "unet"
    big = tmp_path / "big.pt"  # 80 MiB of real (stored) weights: the ratio rule leaves it alone
    torch.save({"w": torch.ones(20 * MIB)}, big)
    assert archive_problem(big) is None
    small = write_bomb(tmp_path / "small.pt", 8 * MIB)  # compressed, but small: harmless
    assert archive_problem(small) is None


def test_a_declared_size_over_the_bound_is_refused(tmp_path):
    """Stored, not compressed, but more than the caller's bound for its kind."""
    from segstudio.inference.runtime.torch_archive import archive_problem
    path = tmp_path / "w.pt"
    torch.save({"w": torch.zeros(MIB)}, path)  # 4 MiB
    problem = archive_problem(path, max_bytes=2 * MIB)
    assert problem is not None and "more than the 2.0 MiB" in problem


@pytest.mark.parametrize("model", ["unet", "sam"])
def test_predict_weights_bomb_is_refused_before_reading(tmp_path, loads, capsys, model):
    """`segstudio predict FOLDER --model unet|sam --weights BOMB`: exit 2, one line naming the file."""
    from PIL import Image

    from segstudio.cli import main
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("RGB", (32, 24)).save(folder / "a.png")
    bomb = unet_bomb(tmp_path / "bomb.pt") if model == "unet" else \
        write_bomb(tmp_path / "sam_hq_vit_tiny.pth", 256 * MIB, lambda t: {"image_encoder.layers.0.w": t})
    code = main(["predict", str(folder), "--model", model, "--weights", str(bomb), "--device", "cpu"])
    err = capsys.readouterr().err
    if model == "sam" and "segment_anything" in err.lower() and "install" in err.lower():
        pytest.skip("Segment Anything's package is not installed")
    assert code == 2 and str(bomb) in err and "inflate to 256.0 MiB" in err
    assert all(Path(str(getattr(f, "name", f))) != bomb for f in loads)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)

    def refuse(*a, **k):
        raise AssertionError("tried to download")
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return home


def test_weights_add_bomb_is_refused_before_reading(tmp_path, torch_home, loads, capsys):
    """`segstudio weights add sam_hq_vit_tiny.pth` (a file with no known hash: its keys are read to
    identify it): refused from its sizes, nothing copied into the cache."""
    from segstudio.cli import main
    from segstudio.inference.runtime import weights_catalog as wc
    bomb = write_bomb(tmp_path / "sam_hq_vit_tiny.pth", 256 * MIB, lambda t: {"image_encoder.layers.0.w": t})
    code = main(["weights", "add", str(bomb)])
    err = capsys.readouterr().err
    assert code == 2 and str(bomb) in err and "inflate to 256.0 MiB" in err and "nothing was copied" in err
    assert loads == []
    assert not wc.find("sam_hq_vit_tiny").path.exists()
    assert not wc.checkpoints_dir().exists() or not list(wc.checkpoints_dir().iterdir())


def test_a_cached_torchvision_bomb_is_refused_before_reading(torch_home, loads):
    """A bomb under the name of Mask R-CNN's COCO weights in the torch hub cache (torchvision checks
    the hash of downloads only)."""
    from segstudio.inference.maskrcnn import model as maskrcnn
    path = maskrcnn.weights_file("v2")
    path.parent.mkdir(parents=True)
    write_bomb(path, 256 * MIB, lambda t: {"backbone.body.conv1.weight": t})
    with pytest.raises(CheckpointError) as e:
        maskrcnn.coco_state_dict("v2", download=False)
    assert str(path) in str(e.value) and "inflate to 256.0 MiB" in str(e.value)
    assert loads == []


RSS = r"""
import resource, sys, json
import torch
from segstudio.inference.runtime.checkpoint import load_checkpoint
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_checkpoint(sys.argv[1])
    what = "loaded"
except Exception as e:
    what = str(e)
print(json.dumps({"grew_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024, "what": what}))
"""


@pytest.mark.slow
def test_peak_memory_of_a_1_gib_bomb(tmp_path):
    """A 1 MiB file that inflates to 1 GiB: the process's peak memory grows by (almost) nothing."""
    bomb = unet_bomb(tmp_path / "bomb.pt", 1024 * MIB)
    p = subprocess.run([sys.executable, "-c", RSS, str(bomb)], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr[-2000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert "inflate to 1.0 GiB" in got["what"], got
    assert got["grew_mib"] < 64, got


def test_a_pickle_bomb_at_the_out_path_is_not_inflated(tmp_path, monkeypatch):
    """Before training overwrites --out it asks whether the file there is a segstudio checkpoint
    (from the pickle's format marker): a pickle record that inflates to 256 MiB is not read."""
    from segstudio.inference.runtime.checkpoint import is_segstudio_checkpoint
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as z:
        record = zipfile.ZipInfo("archive/data.pkl")
        record.compress_type = zipfile.ZIP_DEFLATED
        with z.open(record, "w", force_zip64=True) as f:
            for _ in range(256):
                f.write(bytes(MIB))
    opened: list = []
    real = zipfile.ZipFile.open

    def spy(self, name, *a, **kw):
        opened.append(getattr(name, "filename", name))
        return real(self, name, *a, **kw)
    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    assert is_segstudio_checkpoint(path) is False and opened == []
    assert is_segstudio_checkpoint(tiny_unet_checkpoint(tmp_path / "u.pt")) is True


def test_a_file_inflating_four_times_over_is_refused_and_a_fifo_does_not_hang(tmp_path):
    """The ratio is tight enough that a large file cannot declare many times its size (real weights
    deflate to ~0.9 at best), and a FIFO named like weights is refused without blocking."""
    import os
    import threading

    from segstudio.inference.runtime.torch_archive import archive_problem
    import numpy as np
    path = tmp_path / "x8.pt"  # 80 MiB declared, ~8:1 deflated (an eighth of each MiB random): past 4, under 16
    rng = np.random.default_rng(0)
    record = zipfile.ZipInfo("archive/data/0")
    record.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w") as z, z.open(record, "w", force_zip64=True) as f:
        for _ in range(80):
            f.write(rng.bytes(MIB // 8) + bytes(MIB - MIB // 8))
    assert 4 < 80 * MIB / path.stat().st_size < 16
    assert "compressed bomb" in (archive_problem(path) or "")
    fifo = tmp_path / "w.pth"
    os.mkfifo(fifo)
    got = []
    t = threading.Thread(target=lambda: got.append(archive_problem(fifo)), daemon=True)
    t.start()
    t.join(10)
    assert got == ["it is not a regular file (a pipe, device or folder)"]
