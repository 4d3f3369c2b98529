"""The SAM embedding cache's disk entries are data from disk: an entry under the right key whose
features have the wrong shape or dtype, or whose storage inflates to gigabytes, is dropped (and
the embedding computed again) before it reaches the decoder or costs memory; a file rewritten
with the same size and mtime misses; `prune` removes the temporary files of writes that were cut
short. No model is loaded: embeddings are made of zeros here."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")

from segstudio.inference.sam.cache import Embedding, EmbeddingCache  # noqa: E402
from tests.inference.test_weights_bomb import write_bomb  # noqa: E402

MIB = 1 << 20
H, W = 48, 64
INPUT = (768, 1024)  # SAM's long side 1024 for a 48x64 image


def good(model: str = "m") -> Embedding:
    return Embedding(torch.zeros(1, 256, 64, 64, dtype=torch.float16), None, (H, W), INPUT, model)


@pytest.fixture
def image_file(tmp_path):
    p = tmp_path / "img.raw"
    p.write_bytes(os.urandom(5000))
    return p


def session(folder, key, computed):
    """A new start of the app: a fresh cache over the same folder, asked for one key."""
    def fn():
        computed.append(1)
        return good()
    cache = EmbeddingCache(folder)
    return cache, cache.get_or_compute(key, fn)


def _state(key, features, interm=None, original=(H, W), input_size=INPUT):
    d = good().to_state(key)
    d.update(features=features, original_size=list(original), input_size=list(input_size))
    if interm is not None:
        d["interm"] = interm
    return d


HOSTILE = {
    "small features": lambda k: _state(k, torch.zeros(1, 256, 32, 32, dtype=torch.float16)),
    "wrong channels": lambda k: _state(k, torch.zeros(1, 64, 64, 64, dtype=torch.float16)),
    "float64": lambda k: _state(k, torch.zeros(1, 256, 64, 64, dtype=torch.float64)),
    "interm shape": lambda k: _state(k, torch.zeros(1, 256, 64, 64, dtype=torch.float16),
                                     interm=torch.zeros(1, 32, 32, 160, dtype=torch.float16)),
    "sizes disagree": lambda k: _state(k, torch.zeros(1, 256, 64, 64, dtype=torch.float16), input_size=(1024, 1024)),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_an_entry_the_decoder_cannot_take_is_dropped_once(tmp_path, image_file, kind, caplog):
    folder = tmp_path / "sam"
    folder.mkdir()
    key = EmbeddingCache.key("m", image_file)
    entry = folder / f"{key}.pt"
    torch.save(HOSTILE[kind](key), entry)
    computed: list = []
    cache, emb = session(folder, key, computed)
    assert computed == [1] and cache.stats["corrupt"] == 1
    assert tuple(emb.features.shape) == (1, 256, 64, 64)
    assert str(entry) in caplog.text and "unusable" in caplog.text
    # the next start reads the good entry that replaced it: no recomputation, no error, every time
    for _ in range(2):
        cache, emb = session(folder, key, computed)
        assert computed == [1] and cache.stats == {"memory": 0, "disk": 1, "computed": 0, "corrupt": 0}


@pytest.fixture
def loads(monkeypatch):
    seen: list = []
    real = torch.load

    def spy(f, *a, **kw):
        seen.append(f)
        return real(f, *a, **kw)
    monkeypatch.setattr(torch, "load", spy)
    return seen


def test_an_entry_that_inflates_is_dropped_before_reading(tmp_path, image_file, loads, caplog):
    folder = tmp_path / "sam"
    folder.mkdir()
    key = EmbeddingCache.key("m", image_file)
    entry = folder / f"{key}.pt"
    write_bomb(entry, 256 * MIB, lambda t: {**good().to_state(key), "features": t}, shape=(1, 256, 64, 4096))
    assert entry.stat().st_size < MIB
    computed: list = []
    t0 = time.monotonic()
    cache, emb = session(folder, key, computed)
    assert time.monotonic() - t0 < 5
    assert computed == [1] and cache.stats["corrupt"] == 1 and "inflate" in caplog.text
    assert loads == []  # nothing was read before the entry was replaced
    assert entry.stat().st_size < 4 * MIB  # the good entry took its place


def test_an_entry_too_large_on_disk_is_dropped_unread(tmp_path, image_file, loads):
    folder = tmp_path / "sam"
    folder.mkdir()
    key = EmbeddingCache.key("m", image_file)
    entry = folder / f"{key}.pt"
    with open(entry, "wb") as f:  # sparse: 200 MiB declared by the file system, nothing written
        f.truncate(200 * MIB)
    computed: list = []
    cache, _ = session(folder, key, computed)
    assert computed == [1] and cache.stats["corrupt"] == 1 and loads == []


def test_a_rewrite_with_the_same_size_and_mtime_misses(tmp_path):
    small = tmp_path / "small.raw"
    small.write_bytes(os.urandom(5000))
    large = tmp_path / "large.raw"
    large.write_bytes(os.urandom(3 * MIB))
    for path, offset in ((small, 2500), (large, 3 * MIB - 100)):
        k = EmbeddingCache.key("m", path)
        assert EmbeddingCache.key("m", path) == k  # stable
        st = path.stat()
        data = bytearray(path.read_bytes())
        data[offset] ^= 0xFF
        path.write_bytes(bytes(data))  # the same size
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same mtime
        now = path.stat()
        assert (now.st_size, now.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
        assert EmbeddingCache.key("m", path) != k, path.name


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_gives_no_key_and_never_hangs(tmp_path):
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with pytest.raises(OSError):
        EmbeddingCache.key("m", fifo)
    assert time.monotonic() - t0 < 2


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_prune_removes_the_cache_s_own_orphaned_temporary_files(tmp_path):
    folder = tmp_path / "sam"
    folder.mkdir()
    key = "a" * 40
    old = time.time() - 7200
    orphans = [folder / f".{key}.pt.tmp-{_dead_pid()}-1", folder / f".{key}.pt.tmp-{os.getpid()}-5"]
    writing = folder / f".{key}.pt.tmp-1-7"  # process 1 is alive: a write in progress, perhaps
    foreign = [folder / ".notes.tmp", folder / f"{key}.pt.tmp-99-1", folder / "mine.txt"]
    for p in orphans + [writing] + foreign:
        p.write_bytes(b"x" * 100)
    os.utime(orphans[0], (old, old))
    os.utime(foreign[0], (old, old))
    os.utime(foreign[1], (old, old))
    cache = EmbeddingCache(folder, max_disk_bytes=None)
    assert cache.prune() == 2
    assert not any(p.exists() for p in orphans)
    assert writing.exists() and all(p.exists() for p in foreign)
    os.utime(writing, (old, old))  # left for two hours: no write takes that long
    assert cache.prune() == 1 and not writing.exists()


def test_a_write_in_progress_is_not_pruned(tmp_path, monkeypatch):
    """prune runs while another thread of this process writes an entry: its temporary file stays."""
    import threading

    from segstudio.inference.sam import cache as sam_cache
    folder = tmp_path / "sam"
    cache = EmbeddingCache(folder, max_disk_bytes=None)
    inside, release = threading.Event(), threading.Event()
    real = sam_cache.torch.save

    def slow_save(obj, f, *a, **kw):
        real(obj, f, *a, **kw)
        inside.set()
        release.wait(10)
    monkeypatch.setattr(sam_cache.torch, "save", slow_save)
    t = threading.Thread(target=cache.put, args=("b" * 40, good()))
    t.start()
    assert inside.wait(10)
    tmps = [p for p in folder.iterdir() if p.name.startswith(".")]
    assert len(tmps) == 1 and cache.prune() == 0 and tmps[0].exists()
    release.set()
    t.join(10)
    assert [p.name for p in folder.iterdir()] == ["b" * 40 + ".pt"]


def test_a_fifo_swapped_in_after_the_stat_does_not_hang_the_digest(tmp_path):
    """The stat said regular file; by the time the digest opens it, it is a FIFO."""
    import os
    import threading

    from segstudio.inference.sam.cache import content_digest
    f = tmp_path / "a.png"
    f.write_bytes(b"x" * 100)
    st = os.stat(f)
    f.unlink()
    os.mkfifo(f)
    got: list = []

    def run():
        try:
            content_digest(f, st)
        except OSError as e:
            got.append(str(e))
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(10)
    assert got and "not a regular file" in got[0]


def test_a_frames_key_is_its_file_and_number(tmp_path):
    """A stack's frame has no file of its own: its key comes from the stack file and the frame
    number, so each frame is cached apart and a changed stack invalidates them all."""
    import numpy as np
    import tifffile
    stack = tmp_path / "s.tif"
    tifffile.imwrite(stack, np.zeros((3, 8, 8), np.uint8), photometric="minisblack")
    k0, k1 = EmbeddingCache.key("m", f"{stack}/000000"), EmbeddingCache.key("m", f"{stack}/000001")
    assert k0 != k1 and EmbeddingCache.key("m", f"{stack}/000000") == k0
    tifffile.imwrite(stack, np.ones((3, 8, 8), np.uint8), photometric="minisblack")
    assert EmbeddingCache.key("m", f"{stack}/000000") != k0
    with pytest.raises(FileNotFoundError):
        EmbeddingCache.key("m", f"{tmp_path}/gone.tif/000000")
