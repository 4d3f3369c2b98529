"""Segment Anything: weights (random ones saved to a file, through the same loading code as the
official ones), embeddings and their cache, prompts, and `predict --model sam`.

CPU only, tiny images (SAM resizes every image to 1024 px, so one TinyViT embedding costs a
couple of seconds whatever the image): one random model for the module, few embeddings."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

torch = pytest.importorskip("torch")
for _pkg in ("segment_anything", "segment_anything_hq", "timm"):
    pytest.importorskip(_pkg, reason="Segment Anything is optional: pip install segstudio[sam]")

from segstudio.cli import main  # noqa: E402
from segstudio.core.errors import BadValue, UserError  # noqa: E402
from segstudio.core.project import Project  # noqa: E402
from segstudio.core.region import IMPORTED, Region  # noqa: E402
from segstudio.inference.sam import segmenter as sam_segmenter_mod  # noqa: E402
from segstudio.inference.sam import spec as sam_spec  # noqa: E402
from segstudio.inference.sam import weights as sam_weights  # noqa: E402
from segstudio.inference.runtime.checkpoint import CheckpointError  # noqa: E402
from segstudio.inference.sam.model import check_prompts, check_rgb, load_sam  # noqa: E402
from segstudio.inference.sam.cache import Embedding, EmbeddingCache  # noqa: E402
from segstudio.inference.sam.segmenter import SamSegmenter  # noqa: E402
from segstudio.inference.runtime.pretrained import WeightsUnavailable  # noqa: E402
from segstudio.inference.sam.weights import guess_model  # noqa: E402
from segstudio.inference.sam.spec import SamUnavailable, embedding_dir, to_sam_rgb, weights_file  # noqa: E402

H, W = 64, 96


def blob(seed=0, h=H, w=W):
    rng = np.random.default_rng(seed)
    img = (rng.random((h, w, 3)) * 60).astype(np.uint8)
    img[16:40, 20:60] += 150
    return img


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return load_sam("sam_hq_vit_tiny", None, "cpu", random_weights=True)


@pytest.fixture(scope="module")
def tiny_file(tiny, tmp_path_factory):
    """Random weights as a user's file: loaded weights-only and strict, its hash unchecked."""
    p = tmp_path_factory.mktemp("weights") / "random_tiny.pt"
    torch.save(tiny.net.state_dict(), p)
    return p


@pytest.fixture(scope="module")
def emb(tiny):
    return tiny.embed(blob())


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return home / "hub" / "checkpoints"


def _no_download(monkeypatch):
    def refuse(*a, **k):
        raise OSError("network is unreachable")
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def _spy_torch_load(monkeypatch):
    calls = []
    real = torch.load

    def spy(*a, **k):
        calls.append(k)
        return real(*a, **k)
    monkeypatch.setattr(torch, "load", spy)
    return calls


# ----------------------------------------------------------------------------- weights
def test_random_weights_saved_and_reloaded_weights_only(tiny, tiny_file, monkeypatch):
    calls = _spy_torch_load(monkeypatch)
    m = load_sam(None, tiny_file, "cpu")  # the model is guessed from the file's keys
    assert m.name == "sam_hq_vit_tiny" and m.weights == tiny_file
    assert calls and all(k.get("weights_only") is True and k.get("map_location") == "cpu" for k in calls)
    a, b = tiny.net.state_dict(), m.net.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert m.cache_id != tiny.cache_id and "random_tiny.pt" in m.cache_id
    assert "random" in tiny.cache_id  # random weights say so


def test_official_file_in_cache_loads_without_download(tiny_file, torch_home, monkeypatch):
    _no_download(monkeypatch)
    dst = weights_file("sam_hq_vit_tiny")
    assert dst.parent == torch_home
    dst.parent.mkdir(parents=True)
    dst.write_bytes(tiny_file.read_bytes())  # HQ tiny: hash unknown, so loaded unverified (still weights-only)
    m = load_sam("sam_hq_vit_tiny", None, "cpu", download=False)
    assert m.weights == dst


def test_missing_weights_offline_names_file_and_folder(torch_home, monkeypatch):
    _no_download(monkeypatch)
    with pytest.raises(WeightsUnavailable) as e:
        load_sam("sam_hq_vit_tiny", None, "cpu", download=False)
    msg = str(e.value)
    assert "sam_hq_vit_tiny.pth" in msg and str(torch_home) in msg and "huggingface.co" in msg
    with pytest.raises(WeightsUnavailable, match="download failed: network is unreachable"):
        load_sam("sam_vit_b", None, "cpu", download=True)
    assert not list(torch_home.glob("*"))  # nothing random, nothing half-written


def test_download_goes_to_the_cache_with_the_known_hash(torch_home, tiny_file, monkeypatch):
    seen = {}

    def fake(url, dst, hash_prefix=None, progress=True):
        seen.update(url=url, dst=dst, hash_prefix=hash_prefix)
        with open(dst, "wb") as f:
            f.write(tiny_file.read_bytes())
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake)
    m = load_sam("sam_hq_vit_tiny", None, "cpu", download=True)
    assert seen["dst"] == str(weights_file("sam_hq_vit_tiny")) and seen["url"].endswith("sam_hq_vit_tiny.pth")
    assert seen["hash_prefix"] is None  # unknown for the HQ tiny file: never invented
    assert m.weights == weights_file("sam_hq_vit_tiny")
    assert sam_spec.MODELS["sam_vit_b"].sha256 and len(sam_spec.MODELS["sam_vit_b"].sha256) == 64


def test_wrong_size_or_hash_in_cache_is_refused_before_reading(torch_home, monkeypatch):
    _no_download(monkeypatch)
    calls = _spy_torch_load(monkeypatch)
    dst = weights_file("sam_vit_b")
    dst.parent.mkdir(parents=True)
    dst.write_bytes(b"\0" * 4096)
    with pytest.raises(CheckpointError, match="4096 bytes but the official sam_vit_b_01ec64.pth has 375042383"):
        load_sam("sam_vit_b", None, "cpu", download=False)
    # right size, wrong content: the sha256 says so (the size is shrunk here to keep the test small)
    info = dataclasses.replace(sam_spec.MODELS["sam_vit_b"], size=4096)
    monkeypatch.setitem(sam_spec.MODELS, "sam_vit_b", info)
    with pytest.raises(CheckpointError, match="is not the official sam_vit_b_01ec64.pth: its sha256"):
        load_sam("sam_vit_b", None, "cpu", download=False)
    # the same file picked by hand with --weights: checked all the same
    with pytest.raises(CheckpointError, match="sha256"):
        load_sam(None, dst, "cpu")
    assert calls == []  # nothing was unpickled


class Evil:
    def __init__(self):
        self.pad = b"x" * 4096  # a file big enough to be taken for weights


def test_user_files_that_are_not_weights(tmp_path):
    p = tmp_path / "code.pt"
    torch.save({"x": Evil()}, p)
    with pytest.raises(CheckpointError, match="holds Python objects .*not loaded, for safety") as refused:
        load_sam(None, p, "cpu")
    assert "weights_only" not in str(refused.value)  # never advice to turn the check off
    lfs = tmp_path / "sam_vit_b_01ec64.pth"
    lfs.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ec2d\nsize 375042383\n")
    with pytest.raises(CheckpointError, match="git-LFS pointer"):
        load_sam(None, lfs, "cpu")
    with pytest.raises(CheckpointError, match="not found"):
        load_sam(None, tmp_path / "nope.pth", "cpu")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(os.urandom(5000))
    with pytest.raises(CheckpointError, match=r"junk.pth is not a PyTorch weights file \(corrupt, truncated"):
        load_sam(None, junk, "cpu")


def test_guess_model_from_keys():
    t = torch.zeros(1)
    assert guess_model({"image_encoder.layers.0.x": t}) == "sam_hq_vit_tiny"
    assert guess_model({f"image_encoder.blocks.{i}.w": t for i in range(12)}) == "sam_vit_b"
    assert guess_model({f"image_encoder.blocks.{i}.w": t for i in range(32)}) == "sam_vit_h"
    with pytest.raises(CheckpointError, match="HQ-SAM ViT"):
        guess_model({**{f"image_encoder.blocks.{i}.w": t for i in range(24)}, "mask_decoder.hf_token.weight": t})
    with pytest.raises(CheckpointError, match="not a Segment Anything"):
        guess_model({"backbone.body.conv1.weight": t})


@pytest.mark.slow
def test_weights_for_another_model_do_not_fit(tiny_file):
    with pytest.raises(CheckpointError, match="do not fit sam_vit_b"):
        load_sam("sam_vit_b", tiny_file, "cpu")


def test_missing_packages_say_what_to_install(monkeypatch):
    import importlib
    real = importlib.import_module

    def no_sam(name, *a, **k):
        if name.startswith("segment_anything"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *a, **k)
    monkeypatch.setattr(sam_weights, "_modules", {})
    monkeypatch.setattr(importlib, "import_module", no_sam)
    with pytest.raises(SamUnavailable, match=r"pip install segstudio\[sam\]"):
        load_sam("sam_hq_vit_tiny", None, "cpu", random_weights=True)
    assert isinstance(SamUnavailable("x"), UserError)


def test_spec_is_torch_free_and_knows_the_cache_folder():
    code = ("import sys; from segstudio.inference.sam import spec as s; "
            "assert 'torch' not in sys.modules, 'torch imported'; print(s.weights_file('sam_vit_h'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "TORCH_HOME": "/tmp/th-x"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "/tmp/th-x/hub/checkpoints/sam_vit_h_4b8939.pth"
    from pathlib import Path
    assert weights_file("sam_vit_b") == Path(torch.hub.get_dir()) / "checkpoints" / "sam_vit_b_01ec64.pth"


# ----------------------------------------------------------------------------- prompts
def _count_encoder(monkeypatch, model):
    enc = model.net.image_encoder
    calls = []
    real = enc.forward

    def counted(*a, **k):
        calls.append(1)
        return real(*a, **k)
    monkeypatch.setattr(enc, "forward", counted)
    return calls


def test_decode_from_the_embedding_without_the_encoder(tiny, emb, monkeypatch):
    calls = _count_encoder(monkeypatch, tiny)
    assert emb.original_size == (H, W) and emb.input_size == (683, 1024)
    assert emb.features.dtype == torch.float16 and emb.interm is None and emb.nbytes == 256 * 64 * 64 * 2
    c = tiny.decode(emb, points=[(40, 30, True)])
    assert len(c) == 3 and c.masks.shape == (3, H, W) and c.masks.dtype == bool
    assert c.low_res_logits.shape == (3, 256, 256)
    assert list(c.scores) == sorted(c.scores, reverse=True)
    one = tiny.decode(emb, points=[(40, 30, True), (5, 5, False)], box=(20, 16, 60, 40))
    assert len(one) == 1 and one.best.shape == (H, W)
    refined = tiny.decode(emb, points=[(40, 30, True)], mask_input=c.low_res_logits[0])
    assert refined.masks.shape[1:] == (H, W)
    assert len(tiny.decode(emb, box=(20, 16, 60, 40), multimask=True)) == 3
    assert calls == []  # no prompt ran the image encoder


@pytest.fixture(scope="module")
def tiny32(tiny):
    """`tiny`'s weights in float32 whatever the CPU (the `tiny` fixture takes bfloat16 where the CPU
    computes it natively)."""
    torch.manual_seed(0)
    m = load_sam("sam_hq_vit_tiny", None, "cpu", random_weights=True, precision="float32")
    a, b = tiny.net.state_dict(), m.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    return m


def test_embed_matches_the_package_predictor_and_leaves_it_alone(tiny32):
    """embed() runs the package's own steps (transform, preprocess, encoder) outside the lock:
    the features of SamPredictor.set_image (but for channels-last summation order), and the
    predictor keeps the image it holds."""
    tiny = tiny32
    emb = tiny.embed(blob())
    tiny.decode(emb, points=[(40, 30, True)])
    rgb = blob(1)
    held = tiny.predictor.features
    mine = tiny.embed(rgb)
    assert tiny.predictor.features is held
    with torch.no_grad():
        tiny.predictor.set_image(rgb)
        theirs = tiny.predictor.features.to("cpu", torch.float16)
    assert mine.input_size == tuple(tiny.predictor.input_size) and mine.original_size == rgb.shape[:2]
    torch.testing.assert_close(mine.features.float(), theirs.float(), rtol=2e-3, atol=2e-3)
    tiny._current = None  # the predictor was changed behind the model's back above
    a = tiny.decode(mine, points=[(40, 30, True)])
    b = tiny.decode(emb, points=[(40, 30, True)])
    assert a.masks.shape == b.masks.shape  # switching embeddings restores each one


def test_bfloat16_agrees_with_float32(tiny32):
    """The bfloat16 path (encoder under autocast, decoder's weights in bfloat16) gives float32's
    masks but for a few boundary pixels; the network's own weights stay float32."""
    torch.manual_seed(0)
    bf = load_sam("sam_hq_vit_tiny", None, "cpu", random_weights=True, precision="bfloat16")
    assert bf.dtype == torch.bfloat16 and tiny32.dtype == torch.float32
    assert all(v.dtype == torch.float32 for v in bf.net.state_dict().values() if v.is_floating_point())
    assert bf.cache_id.endswith("-bf16") and not tiny32.cache_id.endswith("-bf16")
    rgb = blob(2, 4 * H, 4 * W)  # the encoder sees 1024 px whatever the size; more mask pixels to compare
    e32, e16 = tiny32.embed(rgb), bf.embed(rgb)
    f32, f16 = e32.features.float(), e16.features.float()
    assert float((f32 - f16).norm() / f32.norm()) < 0.05
    ious = []
    for pts, box in [([(160, 120, True)], None), ([(80, 80, True), (240, 160, False)], None),
                     ([(160, 120, True)], (80, 64, 240, 160)), ([], (20, 20, 280, 200))]:
        a, b = tiny32.decode(e32, pts, box), bf.decode(e16, pts, box)
        assert len(a) == len(b)
        for x in a.masks:  # each float32 candidate has a bfloat16 twin
            ious.append(max(np.logical_and(x, y).sum() / max(1, np.logical_or(x, y).sum()) for y in b.masks))
    assert min(ious) >= 0.95 and float(np.mean(ious)) >= 0.98, ious


def test_encoder_stops_between_layers_when_cancelled(tiny32):
    """A cancel that turns true while the encoder runs stops it at its next layer, not at the end."""
    steps = []

    def cancel():
        steps.append(1)
        return len(steps) > 5  # false for the check before the encoder and its first layers
    with pytest.raises(InterruptedError):
        tiny32.embed(blob(3), cancel)
    n_modules = sum(1 for _ in tiny32.net.image_encoder.modules())
    assert 5 < len(steps) < n_modules


def test_encoder_waits_while_another_thread_decodes(tiny32):
    """Prompts first: an embedding on another thread pauses between layers while a prompt is
    decoded, and goes on after it."""
    import threading
    import time
    emb = tiny32.embed(blob())
    order = []
    with tiny32.priority.decoding():
        t = threading.Thread(target=lambda: (tiny32.embed(blob(4)), order.append("embedded")))
        t.start()
        time.sleep(0.3)
        order.append("decoded")  # the encoder has not got past its first layer meanwhile
    t.join(60)
    assert order == ["decoded", "embedded"]
    assert len(tiny32.decode(emb, points=[(40, 30, True)])) == 3  # this thread's own decodes never wait


def test_embed_checks_its_input(tiny):
    with pytest.raises(BadValue, match="uint8 RGB"):
        tiny.embed(np.zeros((H, W), np.uint16))
    with pytest.raises(BadValue, match="uint8 RGB"):
        tiny.embed(np.zeros((H, W, 4), np.uint8))
    with pytest.raises(BadValue, match="too small or too elongated"):
        check_rgb(np.zeros((1, 4000, 3), np.uint8))
    with pytest.raises(InterruptedError):
        tiny.embed(blob(), cancel=lambda: True)


def test_hostile_prompts_on_the_model(tiny, emb):
    for bad in [dict(points=[(float("nan"), 3, True)]), dict(box=(0, 0, float("inf"), 5)), dict(),
                dict(box=(200, 200, 300, 300)), dict(points=[(1, 2)]), dict(box="abcd"),
                dict(points=[(1, 1, True)], mask_input=np.zeros((3, 3)))]:
        with pytest.raises(BadValue):
            tiny.decode(emb, **bad)
    c = tiny.decode(emb, points=[(-1e300, 1e300, True)], box=(-1e308, -5, 1e308, 1e9))  # clipped
    assert c.masks.shape == (1, H, W)


finite_or_not = st.floats(allow_nan=True, allow_infinity=True)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(points=st.lists(st.tuples(finite_or_not, finite_or_not, st.booleans()), max_size=4),
       box=st.one_of(st.none(), st.lists(finite_or_not, min_size=3, max_size=5)),
       w=st.integers(1, 3000), h=st.integers(1, 3000))
def test_prompt_validation_never_crashes(points, box, w, h):
    try:
        coords, labels, b, _ = check_prompts(points, box, None, w, h)
    except BadValue:
        return
    if coords is not None:
        assert np.isfinite(coords).all() and (coords[:, 0] <= w - 1).all() and (coords[:, 1] <= h - 1).all()
        assert (coords >= 0).all() and set(labels.tolist()) <= {0, 1}
    if b is not None:
        assert np.isfinite(b).all() and 0 <= b[0] < b[2] <= w and 0 <= b[1] < b[3] <= h


def test_to_sam_rgb_through_the_window():
    g16 = (np.arange(H * W, dtype=np.uint16).reshape(H, W) * 7)
    a = to_sam_rgb(g16)
    assert a.dtype == np.uint8 and a.shape == (H, W, 3) and a[..., 0].max() == 255
    b = to_sam_rgb(g16, (0, 65535))
    assert b.max() < a.max()  # another window, other pixels (and another cache key)
    f = np.full((H, W), np.nan, np.float32)
    f[0, 0] = np.inf
    assert to_sam_rgb(f).shape == (H, W, 3)
    assert to_sam_rgb(np.zeros((H, W, 4), np.uint8)).shape == (H, W, 3)
    rgb = blob()
    assert np.array_equal(to_sam_rgb(rgb, (10, 20)), rgb)  # 8-bit images are shown as they are: SAM too
    with pytest.raises(BadValue):
        to_sam_rgb(g16, (5, 5))
    with pytest.raises(BadValue):
        to_sam_rgb(g16, (float("nan"), 5))
    with pytest.raises(BadValue):
        to_sam_rgb(np.zeros((0, 5), np.uint8))


# ----------------------------------------------------------------------------- the embedding cache
def _clone(e: Embedding) -> Embedding:
    return Embedding(e.features.clone(), None, e.original_size, e.input_size, e.model)


@pytest.fixture
def image_file(tmp_path):
    p = tmp_path / "img.png"
    Image.fromarray(blob()).save(p)
    return p


def test_cache_memory_then_disk_hit_decodes_the_same(tiny, emb, image_file, tmp_path, monkeypatch):
    folder = tmp_path / ".segstudio" / "sam" / "m"
    computed = []

    def fn():
        computed.append(1)
        return _clone(emb)
    cache = EmbeddingCache(folder)
    key = EmbeddingCache.key(tiny.cache_id, image_file)
    e1 = cache.get_or_compute(key, fn)
    assert cache.get_or_compute(key, fn) is e1 and computed == [1] and cache.stats["memory"] == 1
    assert [p.name for p in folder.iterdir()] == [f"{key}.pt"]
    fresh = EmbeddingCache(folder)  # a new session
    e2 = fresh.get_or_compute(key, fn)
    assert computed == [1] and fresh.stats["disk"] == 1 and e2 is not e1
    assert torch.equal(e2.features, emb.features) and e2.original_size == emb.original_size
    calls = _count_encoder(monkeypatch, tiny)
    a = tiny.decode(emb, points=[(40, 30, True)])
    b = tiny.decode(e2, points=[(40, 30, True)])
    assert np.array_equal(a.masks, b.masks) and np.allclose(a.scores, b.scores) and calls == []


def test_cache_key_changes_with_file_window_and_model(image_file):
    k = EmbeddingCache.key("m", image_file)
    assert EmbeddingCache.key("m", image_file) == k
    assert EmbeddingCache.key("m", image_file, (0, 4095)) != k
    assert EmbeddingCache.key("m", image_file, (0, 4095)) != EmbeddingCache.key("m", image_file, (0, 4096))
    assert EmbeddingCache.key("other", image_file) != k
    st0 = image_file.stat()
    os.utime(image_file, ns=(st0.st_atime_ns, st0.st_mtime_ns + 1_000_000_000))  # touched
    k2 = EmbeddingCache.key("m", image_file)
    assert k2 != k
    Image.fromarray(blob(seed=3)).save(image_file)  # edited
    os.utime(image_file, ns=(st0.st_atime_ns, st0.st_mtime_ns + 1_000_000_000))
    if image_file.stat().st_size != st0.st_size:
        assert EmbeddingCache.key("m", image_file) != k2
    image_file.unlink()
    with pytest.raises(FileNotFoundError):
        EmbeddingCache.key("m", image_file)


def test_edited_image_misses_the_disk_cache(emb, image_file, tmp_path):
    folder = tmp_path / "sam"
    computed = []

    def fn():
        computed.append(1)
        return _clone(emb)
    EmbeddingCache(folder).get_or_compute(EmbeddingCache.key("m", image_file), fn)
    st0 = image_file.stat()
    os.utime(image_file, ns=(st0.st_atime_ns, st0.st_mtime_ns + 5_000_000_000))
    EmbeddingCache(folder).get_or_compute(EmbeddingCache.key("m", image_file), fn)
    EmbeddingCache(folder).get_or_compute(EmbeddingCache.key("m", image_file, (0, 100)), fn)
    assert computed == [1, 1, 1]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other_key", "code"])
def test_corrupt_disk_entry_is_deleted_and_recomputed(emb, image_file, tmp_path, damage):
    folder = tmp_path / "sam"
    key = EmbeddingCache.key("m", image_file)
    EmbeddingCache(folder).put(key, _clone(emb))
    entry = folder / f"{key}.pt"
    mine = folder / "notes.txt"
    mine.write_text("not the cache's")
    if damage == "garbage":
        entry.write_bytes(os.urandom(300))
    elif damage == "truncated":
        entry.write_bytes(entry.read_bytes()[:1000])
    elif damage == "other_key":
        torch.save(_clone(emb).to_state("0" * 40), entry)
    else:
        torch.save({"format": "segstudio-sam-embedding", "x": Evil()}, entry)
    computed = []

    def fn():
        computed.append(1)
        return _clone(emb)
    cache = EmbeddingCache(folder)
    e = cache.get_or_compute(key, fn)
    assert computed == [1] and cache.stats["corrupt"] == 1 and torch.equal(e.features, emb.features)
    assert mine.exists()  # only the cache's own files are ever deleted
    assert Embedding.from_state(torch.load(entry, weights_only=True), key).original_size == emb.original_size


def test_memory_is_bounded_by_bytes(emb):
    cache = EmbeddingCache(None, max_bytes=int(emb.nbytes * 2.5))
    for k in "abc":
        cache.put(k, _clone(emb))
    assert len(cache) == 2 and "a" not in cache and "c" in cache and cache.memory_bytes == 2 * emb.nbytes
    cache.get("b")  # used: now "c" is the oldest
    cache.put("d", _clone(emb))
    assert "c" not in cache and "b" in cache


def test_disk_is_bounded_oldest_first(emb, tmp_path):
    folder = tmp_path / "sam"
    folder.mkdir()
    (folder / "keep.txt").write_text("not the cache's")
    cache = EmbeddingCache(folder, max_disk_bytes=None)
    for k, key in enumerate(["a" * 40, "b" * 40, "c" * 40]):
        cache.put(key, _clone(emb))
        os.utime(folder / f"{key}.pt", ns=(10**18 + k, 10**18 + k))
    one = (folder / ("a" * 40 + ".pt")).stat().st_size
    cache.max_disk_bytes = int(one * 2.5)
    assert cache.prune() == 1
    assert sorted(p.name[0] for p in folder.glob("*.pt")) == ["b", "c"] and (folder / "keep.txt").exists()


def test_cancel_before_and_while_waiting(emb):
    cache = EmbeddingCache(None)
    with pytest.raises(InterruptedError):
        cache.get_or_compute("k", lambda: pytest.fail("computed although cancelled"), cancel=lambda: True)
    assert "k" not in cache
    started, release = threading.Event(), threading.Event()

    def slow():
        started.set()
        release.wait(10)
        return _clone(emb)
    t = threading.Thread(target=cache.get_or_compute, args=("k", slow))
    t.start()
    assert started.wait(10)
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    t0 = time.monotonic()
    with pytest.raises(InterruptedError):  # the user switched images while another thread computes it
        cache.get_or_compute("k", lambda: pytest.fail("computed twice"), cancel=stop.is_set)
    assert time.monotonic() - t0 < 5
    release.set()
    t.join(10)
    assert cache.get_or_compute("k", lambda: pytest.fail("computed twice")) is not None


def test_embedding_for_uses_the_project_cache_folder(tiny, emb, project, monkeypatch):
    rec = project.store.images()[0]
    folder = embedding_dir(project, tiny.name)
    assert folder.parent == project.data_dir / "sam"
    cache = EmbeddingCache(folder)
    calls = []
    monkeypatch.setattr(tiny, "embed", lambda rgb, cancel=None: calls.append(rgb.shape) or _clone(emb))
    img = project.load_image(rec)
    tiny.embedding_for(img, project.abspath(rec), cache)
    tiny.embedding_for(img, project.abspath(rec), cache)
    assert calls == [img.shape[:2] + (3,)] and len(list(folder.glob("*.pt"))) == 1


# ----------------------------------------------------------------------------- headless
@pytest.fixture
def two_images(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(2):
        Image.fromarray(blob(seed=i)).save(d / f"im{i}.png")
    return d


@pytest.mark.slow
def test_cli_predict_everything(two_images, tiny_file, monkeypatch, capsys):
    real = sam_segmenter_mod.load

    def permissive(spec, device, project=None):  # random weights: nothing passes the real quality filters
        opts = {**spec.options, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
        return real(dataclasses.replace(spec, options=opts), device, project)
    monkeypatch.setattr(sam_segmenter_mod, "load", permissive)  # the registry names it: found at load time
    code = main(["predict", str(two_images), "--model", "sam", "--weights", str(tiny_file), "--prompts", "everything",
                 "--points-per-side", "4", "--device", "cpu", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    p = Project.open(two_images)
    try:
        assert [c.name for c in p.store.classes()] == ["object"]
        recs = p.store.images()
        assert {r.status for r in recs} == {"predicted"}
        regions = [r for rec in recs for r in p.store.regions(rec.id)]
        assert regions and {r.source for r in regions} == {"sam"}
        assert all(0.0 <= r.score <= 1.0 for r in regions)
    finally:
        p.close()


@pytest.mark.slow
def test_cli_predict_boxes_keeps_each_box_class(two_images, tiny_file, capsys):
    p = Project.open(two_images)
    try:
        cat, dog = p.store.add_class("cat"), p.store.add_class("dog")
        rec = p.store.image_by_path("im0.png")
        boxes = {cat.id: (20, 16, 60, 40), dog.id: (2, 40, 30, 62)}
        regs = [Region(p.store.new_region_id(), cid, np.ones((y1 - y0, x1 - x0), bool), x0, y0, z=k + 1,
                       source=IMPORTED) for k, (cid, (x0, y0, x1, y1)) in enumerate(boxes.items())]
        p.store.save_regions(rec.id, regs)
    finally:
        p.close()
    args = ["predict", str(two_images), "--model", "sam", "--weights", str(tiny_file), "--prompts", "boxes",
            "--device", "cpu"]
    assert main(args) == 0, capsys.readouterr().err
    p = Project.open(two_images)
    try:
        made = [r for r in p.store.regions(rec.id) if r.source == "sam_boxes"]
        assert made and len(made) <= 2 and {r.class_id for r in made} <= {cat.id, dog.id}
        assert len([r for r in p.store.regions(rec.id) if r.source == IMPORTED]) == 2  # the boxes stay
        assert [c.name for c in p.store.classes()] == ["cat", "dog"]  # no class invented
        assert p.store.regions(p.store.image_by_path("im1.png").id) == []
        first = sorted((r.class_id, r.x, r.y, r.mask.shape) for r in made)
    finally:
        p.close()
    # a rerun prompts with the boxes again, not with its own masks, and replaces them
    assert main(args[:-2] + ["--device", "cpu", "--status", "predicted"]) == 0
    p = Project.open(two_images)
    try:
        again = [r for r in p.store.regions(rec.id) if r.source == "sam_boxes"]
        assert sorted((r.class_id, r.x, r.y, r.mask.shape) for r in again) == first
    finally:
        p.close()


def test_cli_sam_options_need_model_sam(two_images, capsys):
    assert main(["predict", str(two_images), "--model", "unet", "--prompts", "boxes"]) == 2
    assert "only with --model sam" in capsys.readouterr().err
    assert main(["predict", str(two_images), "--model", "sam", "--points-per-side", "0"]) == 2
    assert "--points-per-side" in capsys.readouterr().err


def test_cli_sam_without_weights_offline_names_file_and_folder(two_images, torch_home, monkeypatch, capsys):
    _no_download(monkeypatch)
    assert main(["predict", str(two_images), "--model", "sam", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "sam_hq_vit_tiny.pth" in err and str(torch_home) in err and "Traceback" not in err


def test_segmenter_checks_its_settings(tiny):
    with pytest.raises(BadValue):
        SamSegmenter(tiny, "circles")
    with pytest.raises(BadValue):
        SamSegmenter(tiny, "everything", points_per_side=0)
    with pytest.raises(BadValue):
        SamSegmenter(tiny, "everything", pred_iou_thresh=float("nan"))
    seg = SamSegmenter(tiny, "everything")
    assert seg.points_per_side == 16 and seg.classes == ["object"] and seg.name == "sam"


@pytest.mark.parametrize("input_size, original_size", [((768, 1024), (768, 1024)), ((768, 1024), (1512, 2016)),
                                                       ((1024, 683), (1500, 1000)), ((1024, 1024), (300, 300)),
                                                       ((7, 1024), (20, 3000))])
def test_full_size_mask_is_the_packages_post_processing(tiny32, input_size, original_size):
    """Candidates are made full-size one at a time with OpenCV: the same masks as the package's
    Sam.postprocess_masks (torch, all candidates at once), but for pixels at exactly the threshold."""
    from segstudio.inference.sam.spec import full_size_mask
    rng = np.random.default_rng(0)
    low = np.stack([cv2_blur(rng.standard_normal((256, 256)).astype(np.float32)) for _ in range(2)])
    with torch.no_grad():
        theirs = tiny32.net.postprocess_masks(torch.from_numpy(low)[None], input_size, original_size)[0] > 0
    for k in range(2):
        mine = full_size_mask(low[k], input_size, original_size)
        assert mine.shape == original_size and mine.dtype == bool
        assert int((mine != theirs[k].numpy()).sum()) <= max(2, mine.size // 100_000)


def cv2_blur(a):
    import cv2
    return cv2.GaussianBlur(a, (0, 0), 4) * 30


def test_decode_makes_only_the_shown_candidate_full_size(tiny, emb):
    c = tiny.decode(emb, points=[(40, 30, True)])
    assert len(c) == 3 and set(c._full) == {0}  # the others when Tab asks for them
    assert c.mask(2).shape == (H, W) and set(c._full) == {0, 2}
    assert c.masks.shape == (3, H, W) and c.best is c.mask(0)
