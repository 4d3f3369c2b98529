"""SAM 2.1 through transformers as a click model: a Promptable built from the package's own
configuration with random weights (compute only, never a fake answer); points and boxes give
candidates at the image's size, best first; hostile prompts and weights get clear messages; the
embedding cache round-trips and refuses foreign entries; the spec imports no torch."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers.models.sam2", reason="SAM 2 is optional: pip install segstudio[sam2]")

from segstudio.core.errors import BadValue  # noqa: E402
from segstudio.core.project import Project  # noqa: E402
from segstudio.inference import registry  # noqa: E402
from segstudio.inference.family import BOX, CLICK, CLICK_ROLE, resolve  # noqa: E402
from segstudio.inference.promptable import CandidateMasks, Promptable  # noqa: E402
from segstudio.inference.runtime.checkpoint import CheckpointError  # noqa: E402
from segstudio.inference.runtime.pretrained import WeightsUnavailable  # noqa: E402
from segstudio.inference.sam2 import spec as sam2_spec  # noqa: E402
from segstudio.inference.sam2.cache import EmbeddingCache, Sam2Embedding  # noqa: E402
from segstudio.inference.sam2.model import Sam2Candidates, load_sam2  # noqa: E402

H, W = 48, 72


def blob(h=H, w=W, seed=0):
    rng = np.random.default_rng(seed)
    img = (rng.random((h, w, 3)) * 60).astype(np.uint8)
    img[10:30, 20:50] += 150
    return img


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return load_sam2(device="cpu", random_weights=True)


@pytest.fixture(scope="module")
def emb(model):
    return model.embedding_for(blob(), None)


# ----------------------------------------------------------------------------- the family
def test_the_family_is_in_the_registry_as_a_click_model():
    fam = registry.family("sam2")
    assert fam.can(CLICK) and fam.can(BOX) and fam.roles == (CLICK_ROLE,)
    assert fam in registry.for_role(CLICK_ROLE)
    assert resolve(fam.load_click).__module__ == "segstudio.inference.sam2.model"
    assert registry.packages_missing(fam) == []
    files = registry.weights(fam)
    assert [f.name for f in files] == ["facebook/sam2.1-hiera-tiny/model.safetensors"] and "unverified" in files[0].note


def test_the_spec_imports_no_torch(tmp_path):
    code = ("import sys; from segstudio.inference import registry; from segstudio.inference.sam2 import spec as s; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'imported'; "
            "print(registry.weights(registry.family('sam2'))[0].path)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HF_HUB_CACHE": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(str(tmp_path / "models--facebook--sam2.1-hiera-tiny"))


def test_a_cached_snapshot_is_found_by_huggingface_hub_s_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--facebook--sam2.1-hiera-tiny"
    rev = "a" * 40
    (repo / "snapshots" / rev).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    assert sam2_spec.weights_file() == repo / "snapshots" / rev / "model.safetensors"
    assert not sam2_spec.weights_needed()[0].here
    (repo / "refs" / "main").write_text("../../etc")  # a ref is a commit hash, nothing else
    assert sam2_spec.cached_snapshot() is None


# ----------------------------------------------------------------------------- prompts
def test_random_weights_model_is_a_promptable(model):
    assert isinstance(model, Promptable) and model.name == "sam2.1_hiera_tiny" and "random" in model.cache_id


def test_a_point_gives_three_candidates_of_the_image_s_size_best_first(model, emb):
    c = model.decode(emb, [(30, 20, True)])
    assert isinstance(c, CandidateMasks) and len(c) == 3
    assert np.all(np.diff(c.scores) <= 0)
    for k in range(len(c)):
        m = c.mask(k)
        assert m.shape == (H, W) and m.dtype == bool
        crop = c.crop(k)
        if crop is not None:
            part, x, y = crop
            assert np.array_equal(m[y:y + part.shape[0], x:x + part.shape[1]], part) and part.sum() == m.sum()


def test_a_box_gives_one_candidate_and_the_package_s_post_processing_agrees(model, emb):
    c = model.decode(emb, None, box=(20, 10, 50, 30))
    assert len(c) == 1 and c.mask(0).shape == (H, W)
    full = model.processor.post_process_masks([torch.from_numpy(c.low_res_logits)[None]], [[H, W]])[0][0]
    assert np.array_equal(c.mask(0), full[0].numpy())


def test_points_box_and_a_previous_mask_together(model, emb):
    first = model.decode(emb, [(30, 20, True)])
    c = model.decode(emb, [(30, 20, True), (5, 5, False)], box=(50, 30, 20, 10),  # corners in any order
                     mask_input=first.low_res_logits[0])
    assert len(c) == 1 and c.mask(0).shape == (H, W)


@pytest.mark.slow
def test_grey_and_16_bit_images_embed_through_the_display_window(model):
    grey16 = (np.arange(H * W, dtype=np.uint16).reshape(H, W) * 7)
    e = model.embedding_for(grey16, None, window=(0, 20000))
    assert e.original_size == (H, W) and len(model.decode(e, [(3, 3, True)])) == 3


@pytest.mark.parametrize("points, box, mask_input, words", [
    (None, None, None, "at least one point or a box"),
    ([(float("nan"), 3, True)], None, None, "finite"),
    ([(1e400, 3, True)], None, None, "finite"),
    ([("x", 3, True)], None, None, "must be a number"),
    ([(1, 2)], None, None, "(x, y, positive)"),
    ([(1, 2, True)] * 257, None, None, "at most 256"),
    (None, (1000, 1000, 2000, 2000), None, "no area inside"),
    (None, (1, 2, 3), None, "(x0, y0, x1, y1)"),
    (None, (0, 0, float("inf"), 5), None, "finite"),
    ([(1, 2, True)], None, np.zeros((3, 3)), "low-resolution logits"),
])
def test_hostile_prompts_get_clear_errors(model, emb, points, box, mask_input, words):
    with pytest.raises(BadValue) as e:
        model.decode(emb, points, box, mask_input)
    assert words in str(e.value)


def test_points_outside_the_image_are_clipped(model, emb):
    assert model.decode(emb, [(-50, 1e6, True)]).mask(0).shape == (H, W)


def test_an_embedding_of_another_model_or_family_is_refused(model, emb):
    other = Sam2Embedding(emb.features, emb.original_size, "someone-else")
    with pytest.raises(BadValue, match="another model"):
        model.decode(other, [(1, 1, True)])
    with pytest.raises(BadValue, match="not a SAM 2 embedding"):
        model.decode(object(), [(1, 1, True)])


def test_cancel_stops_the_embedding(model):
    with pytest.raises(InterruptedError):
        model.embed(blob(), cancel=lambda: True)
    asked = []

    def later():  # asked before the encoder and then between its blocks
        asked.append(1)
        return len(asked) > 3
    with pytest.raises(InterruptedError):
        model.embed(blob(), cancel=later)
    assert len(asked) == 4


def test_not_an_image_is_refused(model):
    with pytest.raises(BadValue, match="not an image"):
        model.embedding_for(np.zeros((0, 5, 3), np.uint8), None)
    with pytest.raises(BadValue, match="uint8 RGB"):
        model.embed(np.zeros((5, 5), np.float32))


# ----------------------------------------------------------------------------- the cache
@pytest.mark.slow
def test_the_embedding_cache_round_trips_on_disk(model, emb, tmp_path):
    img_path = tmp_path / "img.png"
    img_path.write_bytes(b"not decoded here, only keyed" * 10)
    project = Project.open(tmp_path)
    cache = model.open_cache(project)
    assert cache.folder == sam2_spec.embedding_dir(project, model.name) and "sam2" in cache.folder.parts
    calls = []
    real = model.embed

    def counting(rgb, cancel=None):
        calls.append(1)
        return real(rgb, cancel)
    model.embed = counting
    try:
        first = model.embedding_for(blob(), img_path, cache)
        again = model.open_cache(project).get(cache.key(model.cache_id, img_path))  # a fresh cache: from disk
    finally:
        del model.embed
    assert calls == [1] and again is not None and again.original_size == (H, W) and again.model == model.cache_id
    assert all(torch.equal(a, b) for a, b in zip(first.features, again.features, strict=True))
    assert np.array_equal(model.decode(again, [(30, 20, True)]).mask(0), model.decode(first, [(30, 20, True)]).mask(0))


@pytest.mark.parametrize("damage", ["shape", "nan", "size", "format", "count"])
def test_a_damaged_entry_is_refused(emb, damage):
    d = emb.to_state("k")
    if damage == "shape":
        d["features"][2] = torch.zeros(1, 256, 32, 32)
    elif damage == "nan":
        d["features"][0] = d["features"][0].clone().fill_(float("nan"))
    elif damage == "size":
        d["original_size"] = [0, 5]
    elif damage == "format":
        d["format"] = "segstudio-sam-embedding"
    else:
        d["features"] = d["features"][:2]
    with pytest.raises(ValueError):
        Sam2Embedding.from_state(d, "k")
    assert Sam2Embedding.from_state(emb.to_state("k"), "k").original_size == (H, W)


def test_sam_and_sam2_keys_never_meet(tmp_path):
    from segstudio.inference.sam.cache import EmbeddingCache as SamCache
    f = tmp_path / "a.png"
    f.write_bytes(b"x" * 100)
    assert EmbeddingCache.key("m", f) != SamCache.key("m", f)


# ----------------------------------------------------------------------------- weights
def test_saved_weights_load_back_strict_from_the_folder_or_the_file(model, tmp_path):
    model.net.save_pretrained(tmp_path / "w")
    for where in (tmp_path / "w", tmp_path / "w" / "model.safetensors"):
        back = load_sam2(weights=where, device="cpu")
        assert back.weights == tmp_path / "w" / "model.safetensors"
        sd = back.net.state_dict()
        assert all(torch.equal(v, sd[k]) for k, v in model.net.state_dict().items())


def test_weights_that_do_not_fit_are_refused(model, tmp_path):
    from safetensors.torch import save_file
    model.net.save_pretrained(tmp_path / "w")
    sd = {k: v.contiguous() for k, v in model.net.state_dict().items() if not k.startswith("mask_decoder.")}
    save_file(sd, str(tmp_path / "w" / "model.safetensors"))
    with pytest.raises(CheckpointError, match="do not fit SAM 2"):
        load_sam2(weights=tmp_path / "w", device="cpu")


@pytest.mark.parametrize("case", ["missing", "other_name", "no_file", "not_sam2", "garbage"])
def test_hostile_weights_get_clear_errors(tmp_path, case):
    w = tmp_path / "w"
    w.mkdir()
    if case == "missing":
        where, words = tmp_path / "nope", "not found"
    elif case == "other_name":
        where, words = w / "sam2.pt", "model.safetensors file"
        where.write_bytes(b"x" * 2000)
    elif case == "no_file":
        where, words = w, "holds no model.safetensors"
    elif case == "not_sam2":
        (w / "model.safetensors").write_bytes(b"x" * 2000)
        (w / "config.json").write_text('{"model_type": "bert"}')
        where, words = w, "not SAM 2"
    else:
        (w / "model.safetensors").write_bytes(b"\xff" * 2000)
        where, words = w, "cannot be read as SAM 2 weights"
    with pytest.raises(CheckpointError) as e:
        load_sam2(weights=where, device="cpu")
    assert words in str(e.value)


def test_missing_official_weights_offline_say_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(WeightsUnavailable) as e:
        load_sam2(device="cpu", download=False)
    assert "https://huggingface.co/facebook/sam2.1-hiera-tiny" in str(e.value) and "--weights" in str(e.value)


def test_random_weights_exclude_a_file(tmp_path):
    with pytest.raises(BadValue, match="exclude"):
        load_sam2(weights=tmp_path, random_weights=True)


def test_the_candidates_need_no_model():
    logits = np.full((2, 256, 256), -1.0, np.float32)
    logits[1, 100:150, 100:150] = 5.0
    c = Sam2Candidates(np.array([0.9, 0.1]), logits, (30, 40))
    assert len(c) == 2 and c.crop(0) is None and c.mask(1).any() and c.mask(1).shape == (30, 40)


def test_the_engine_loads_it_as_a_click_model_through_the_registry(model, tmp_path, monkeypatch):
    from segstudio.inference.runtime.engine import ModelSpec, load_clicker
    model.net.save_pretrained(tmp_path / "w")
    loaded = load_clicker(ModelSpec("sam2", weights=str(tmp_path / "w"), device="cpu"))
    assert isinstance(loaded, Promptable) and loaded.weights == tmp_path / "w" / "model.safetensors"
    with pytest.raises(BadValue, match="no setting sam_model"):
        load_clicker(ModelSpec("sam2", device="cpu", options={"sam_model": "sam_vit_b"}))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(WeightsUnavailable, match="not available"):
        load_clicker(ModelSpec("sam2", device="cpu", download=False))
