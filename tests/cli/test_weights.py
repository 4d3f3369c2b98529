"""`segstudio weights` and inference/weights_catalog.py, offline: TORCH_HOME is a temporary folder,
the weights are small state dicts these tests save, and the catalogue's known hashes and sizes
are those of the test files (monkeypatched entries); downloads come from a fake `open_url`."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from segstudio.cli import main  # noqa: E402
from segstudio.inference.runtime import weights_catalog as wc  # noqa: E402
from segstudio.io.common import Cancelled  # noqa: E402


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_sd(path: Path, seed: int = 0, keys=("w",), n: int = 48) -> Path:
    g = torch.Generator().manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: torch.randn(n, n, generator=g) for k in keys}, path)
    return path


SAM_KEYS = ("image_encoder.layers.0.weight", "mask_decoder.hf_token.weight", "mask_decoder.output.weight")


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(h))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # a set_dir() elsewhere must not win
    return h


@pytest.fixture
def cat(tmp_path, home, monkeypatch):
    """Three test entries, one per kind of check, whose official files are in tmp_path/official."""
    off = tmp_path / "official"
    a = save_sd(off / "src_a.pth", 1)  # its prefix goes into its cache name, torchvision style
    b = save_sd(off / "tiny_full.pth", 2)
    c = save_sd(off / "tiny_hq.pth", 3, SAM_KEYS, n=32)
    pa = sha(a)[:8]
    a = a.rename(off / f"tinynet-{pa}.pth")
    es = [wc.WeightsEntry("tinynet", "Tiny net", ("tests",), a.name, f"https://example.invalid/{a.name}",
                          hash_prefix=pa),
          wc.WeightsEntry("tiny_full", "Tiny full", ("tests",), b.name, "https://example.invalid/tiny_full.pth",
                          size=b.stat().st_size, sha256=sha(b)),
          wc.WeightsEntry("tiny_hq", "Tiny HQ", ("tests",), c.name, "https://example.invalid/tiny_hq.pth",
                          models=("sam_hq_vit_tiny",),
                          reads="segstudio.inference.sam.weights:catalog_problem")]
    monkeypatch.setattr(wc, "entries", lambda: list(es))
    wc._hashed.clear()
    return {"tinynet": a, "tiny_full": b, "tiny_hq": c}


def cache(home) -> Path:
    return home / "hub" / "checkpoints"


def leftovers(home) -> list[str]:
    d = cache(home)
    return sorted(p.name for p in d.iterdir() if "partial" in p.name) if d.exists() else []


def statuses(capsys, *extra) -> dict[str, dict]:
    code, out, err = run(capsys, "weights", "--json", *extra)
    assert code == 0, err
    return {d["name"]: d for d in json.loads(out)["weights"]}


def serve(monkeypatch, data: bytes, calls: list | None = None, length: int | None = None):
    def fake(url):
        if calls is not None:
            calls.append(url)
        return io.BytesIO(data), len(data) if length is None else length
    monkeypatch.setattr(wc, "open_url", fake)


# ----------------------------------------------------------------------------- the real catalogue
def test_catalogue_comes_from_the_loaders_sources(home):
    from segstudio.inference.maskrcnn import versions as maskrcnn_spec
    from segstudio.inference.sam import spec as sam_spec
    from segstudio.inference.semantic import nets as semantic_nets
    es = {e.name: e for e in wc.entries()}
    assert es["maskrcnn_v2_coco"].path == maskrcnn_spec.weights_file("v2")
    assert es["maskrcnn_v1_coco"].path == maskrcnn_spec.weights_file("v1")
    assert str(es["maskrcnn_v2_coco"].path).startswith(str(home))
    for enc, r in semantic_nets.RESNETS.items():
        assert es[f"{enc}_imagenet"].path == semantic_nets.weights_file(r.imagenet)
    files = {e.file for e in es.values()}
    for spec in semantic_nets.TV_NETS.values():
        assert semantic_nets.weights_file(spec.voc).name in files
        assert semantic_nets.weights_file(spec.backbone).name in files
    for name, info in sam_spec.MODELS.items():
        e = wc.find(name)
        assert e.path == sam_spec.weights_file(name) and e.sha256 == info.sha256 and e.size == info.size
    assert wc.find("sam_hq_vit_tiny_hq") is wc.find("sam_hq_vit_tiny")  # one file, two models
    for e in es.values():  # nothing invented: a torchvision file's only hash is the prefix in its name
        if e.sha256 is None and e.hash_prefix:
            assert f"-{e.hash_prefix}." in e.file and e.size is None
    assert wc.find("sam_hq_vit_tiny").check == "none"
    assert len(files) == len(es) == 13


def test_list_empty_cache_says_missing(home, capsys):
    code, out, err = run(capsys, "weights")
    assert code == 0, err
    assert f"weights folder: {cache(home)}" in out
    for name in ("maskrcnn_v2_coco", "maskrcnn_v1_coco", "fcn_voc", "deeplabv3_voc", "deeplabv3_mobilenet_voc",
                 "resnet18_imagenet", "resnet34_imagenet", "resnet50_imagenet", "sam_hq_vit_tiny", "sam_vit_b",
                 "sam_vit_l", "sam_vit_h"):
        line = next(ln for ln in out.splitlines() if ln.startswith(name + " "))
        assert " missing " in line
    assert "13 files: 0 present, 13 missing" in out
    d = statuses(capsys)
    assert d["sam_vit_b"]["sha256"] and d["resnet18_imagenet"]["sha256_prefix"] == "f37072fd"
    assert run(capsys, "weights", "list", "--json")[0] == 0


def test_unknown_name_is_one_line(home, capsys):
    code, out, err = run(capsys, "weights", "get", "resnet19")
    assert code == 2 and err.startswith("segstudio: error: no weights named 'resnet19'") and err.count("\n") == 1


def test_a_torchvision_named_file_with_the_wrong_hash_is_a_mismatch(home, capsys, tmp_path):
    e = wc.find("resnet18_imagenet")
    e.path.parent.mkdir(parents=True)
    save_sd(e.path)  # not the real file: its hash does not start with f37072fd, nor is the size right
    s = wc.check(e)
    assert s.status == wc.SIZE_MISMATCH and s.wrong
    assert wc.check(e, deep=False).status == wc.SIZE_MISMATCH


# ----------------------------------------------------------------------------- list
def test_list_shows_missing_present_and_mismatch(cat, home, capsys):
    d = statuses(capsys)
    assert {k: v["status"] for k, v in d.items()} == {"tinynet": "missing", "tiny_full": "missing",
                                                       "tiny_hq": "missing"}
    c = cache(home)
    c.mkdir(parents=True)
    (c / cat["tinynet"].name).write_bytes(cat["tinynet"].read_bytes())
    (c / "tiny_hq.pth").write_bytes(cat["tiny_hq"].read_bytes())
    bad = bytearray(cat["tiny_full"].read_bytes())
    bad[-40] ^= 0xFF  # same size, other content
    (c / "tiny_full.pth").write_bytes(bytes(bad))
    d = statuses(capsys)
    assert d["tinynet"]["status"] == wc.PREFIX_OK and "prefix" in d["tinynet"]["detail"]
    assert d["tiny_hq"]["status"] == wc.UNVERIFIED
    assert d["tiny_full"]["status"] == wc.HASH_MISMATCH
    code, out, _ = run(capsys, "weights")
    assert "hash MISMATCH" in out and "problems:" in out and "tiny_full: hash MISMATCH" in out
    (c / "tiny_full.pth").write_bytes(bytes(bad[:-10]))  # truncated
    assert statuses(capsys, "--quick")["tiny_full"]["status"] == wc.SIZE_MISMATCH
    (c / "tiny_full.pth").write_bytes(cat["tiny_full"].read_bytes())
    d = statuses(capsys)
    assert d["tiny_full"]["status"] == wc.HASH_OK and d["tiny_full"]["sha256_on_disk"] == d["tiny_full"]["sha256"]
    assert statuses(capsys, "--quick")["tiny_full"]["status"] == wc.PRESENT


def test_corrupt_and_odd_files_are_reported_not_raised(cat, home, capsys):
    c = cache(home)
    c.mkdir(parents=True)
    data = cat["tiny_hq"].read_bytes()
    (c / "tiny_hq.pth").write_bytes(data[: len(data) // 2])  # truncated, no hash known: its keys tell
    (c / "tiny_full.pth").mkdir()  # a folder under the file's name
    (c / cat["tinynet"].name).write_bytes(b"version https://git-lfs.github.com/spec/v1\n")  # an LFS pointer
    d = statuses(capsys)
    assert d["tiny_hq"]["status"] == wc.CORRUPT and "is not a PyTorch weights file" in d["tiny_hq"]["detail"]
    assert d["tiny_full"]["status"] == wc.NO_ACCESS
    assert d["tinynet"]["status"] == wc.SIZE_MISMATCH and "git-LFS" in d["tinynet"]["detail"]
    code, out, _ = run(capsys, "weights")
    assert code == 0 and "unusable" in out


def test_an_unverified_file_of_another_kind_is_unreadable(cat, home):
    c = cache(home)
    save_sd(c / "tiny_hq.pth", 5, ("image_encoder.layers.0.weight", "mask_decoder.output.weight"))  # MobileSAM-ish
    s = wc.check(wc.find("tiny_hq"))
    assert s.status == wc.CORRUPT and "HQ-SAM layers" in s.detail


# ----------------------------------------------------------------------------- add
def test_add_verifies_and_copies_leaving_the_source_alone(cat, home, tmp_path, capsys):
    usb = tmp_path / "usb"
    usb.mkdir()
    src = usb / cat["tiny_full"].name
    src.write_bytes(cat["tiny_full"].read_bytes())
    before = (src.read_bytes(), src.stat().st_mtime_ns)
    code, out, err = run(capsys, "weights", "add", src)
    assert code == 0, err
    dest = cache(home) / "tiny_full.pth"
    assert dest.read_bytes() == before[0] and "copied" in out and "hash ok" in out
    assert (src.read_bytes(), src.stat().st_mtime_ns) == before and src.exists()
    assert leftovers(home) == []
    code, out, _ = run(capsys, "weights", "add", src)  # again: nothing to do
    assert code == 0 and "already" in out
    assert statuses(capsys)["tiny_full"]["status"] == wc.HASH_OK


def test_add_finds_a_renamed_file_by_its_hash(cat, home, tmp_path, capsys):
    src = tmp_path / "download (1).pth"
    src.write_bytes(cat["tinynet"].read_bytes())
    code, out, err = run(capsys, "weights", "add", src, "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["name"] == "tinynet" and r["status"] == wc.PREFIX_OK and Path(r["path"]).name == cat["tinynet"].name
    assert src.exists()


def test_add_finds_an_unverified_file_by_its_keys_or_by_as(cat, home, tmp_path, capsys):
    src = tmp_path / "hq tiny copy.pth"
    src.write_bytes(cat["tiny_hq"].read_bytes())
    code, out, err = run(capsys, "weights", "add", src)
    assert code == 0, err
    assert "unverified" in out and (cache(home) / "tiny_hq.pth").read_bytes() == src.read_bytes()


def test_add_refuses_a_file_whose_hash_contradicts_its_name(cat, home, tmp_path, capsys):
    src = tmp_path / cat["tinynet"].name
    save_sd(src, 9)  # the right name, other weights
    code, out, err = run(capsys, "weights", "add", src)
    assert code == 2 and err.count("\n") == 1
    assert f"is not the expected {cat['tinynet'].name}" in err and "nothing was written" in err
    assert not (cache(home) / cat["tinynet"].name).exists() and leftovers(home) == []
    src2 = tmp_path / "other.pth"
    save_sd(src2, 9)
    code, _, err = run(capsys, "weights", "add", src2, "--as", "tiny_full")
    assert code == 2 and "is not the expected tiny_full.pth" in err
    code, _, err = run(capsys, "weights", "add", src2)  # neither name, hash nor keys: refused
    assert code == 2 and "none of the weights files segstudio knows" in err
    assert leftovers(home) == [] and not any(cache(home).iterdir())


def test_add_never_replaces_a_good_file_and_replaces_a_wrong_one(cat, home, tmp_path, capsys):
    c = cache(home)
    other = save_sd(c / "tiny_hq.pth", 7, SAM_KEYS, n=32)  # another file that passes the key check
    kept = other.read_bytes()
    code, _, err = run(capsys, "weights", "add", cat["tiny_hq"])
    assert code == 2 and "already holds another" in err and other.read_bytes() == kept
    bad = c / "tiny_full.pth"
    bad.write_bytes(b"x" * 5000)
    code, out, err = run(capsys, "weights", "add", cat["tiny_full"])
    assert code == 0, err
    assert "replaced" in out and "size mismatch" in out and bad.read_bytes() == cat["tiny_full"].read_bytes()


def test_add_a_missing_or_odd_source(cat, home, tmp_path, capsys):
    code, _, err = run(capsys, "weights", "add", tmp_path / "nope.pth")
    assert code == 2 and "cannot read" in err
    code, _, err = run(capsys, "weights", "add", tmp_path)
    assert code == 2 and "is not a file" in err


def test_add_refuses_a_pickle_that_would_run_code(cat, home, tmp_path, capsys):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    src = tmp_path / "tiny_hq.pth"  # no hash known: only the keys could vouch for it
    torch.save({"a": torch.zeros(400), "b": Evil()}, src)
    code, _, err = run(capsys, "weights", "add", src)
    assert code == 2 and "not loaded, for safety" in err and not marker.exists()
    assert "weights_only" not in err
    assert not (cache(home) / "tiny_hq.pth").exists() and leftovers(home) == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=0, max_size=4096), name=st.sampled_from(["tiny_hq.pth", "tiny_full.pth", "x.pth"]),
       cut=st.integers(0, 99))
def test_hostile_files_are_refused_in_one_line(cat, home, tmp_path, capsys, data, name, cut):
    src = tmp_path / "hostile" / name
    src.parent.mkdir(exist_ok=True)
    real = cat["tiny_hq"].read_bytes()
    src.write_bytes(data if cut % 2 else data + real[: len(real) * cut // 100])  # garbage, or a torn real file
    code, out, err = run(capsys, "weights", "add", src)
    assert code == 2 and err.startswith("segstudio: error: ") and err.count("\n") == 1, err
    assert not re.match(r"segstudio: error: \w+(Error|Exception): ", err)  # a user error, not a surprise
    d = cache(home)
    assert not d.exists() or not any(d.iterdir())


# ----------------------------------------------------------------------------- get
def test_get_downloads_verifies_and_renames(cat, home, monkeypatch, capsys):
    calls: list[str] = []
    serve(monkeypatch, cat["tinynet"].read_bytes(), calls)
    code, out, err = run(capsys, "weights", "get", "tinynet")
    assert code == 0, err
    dest = cache(home) / cat["tinynet"].name
    assert dest.read_bytes() == cat["tinynet"].read_bytes() and "downloaded" in out and wc.PREFIX_OK in out
    assert calls == [f"https://example.invalid/{cat['tinynet'].name}"] and leftovers(home) == []
    code, out, _ = run(capsys, "weights", "get", "tinynet")  # there and good: not downloaded again
    assert code == 0 and "already there" in out and len(calls) == 1


def test_get_with_a_wrong_download_leaves_nothing(cat, home, monkeypatch, capsys):
    bad = bytearray(cat["tiny_full"].read_bytes())
    bad[-40] ^= 1
    serve(monkeypatch, bytes(bad))
    code, _, err = run(capsys, "weights", "get", "tiny_full")
    assert code == 2 and "is not the expected tiny_full.pth" in err and "nothing was written" in err
    assert not (cache(home) / "tiny_full.pth").exists() and leftovers(home) == []
    serve(monkeypatch, cat["tiny_full"].read_bytes()[:100], length=cat["tiny_full"].stat().st_size)
    code, _, err = run(capsys, "weights", "get", "tiny_full")
    assert code == 2 and "stopped after 100 of" in err
    assert not (cache(home) / "tiny_full.pth").exists() and leftovers(home) == []


def test_get_offline_says_what_to_do(cat, home, monkeypatch, capsys):
    from urllib.error import URLError

    def offline(url):
        raise URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(wc, "open_url", offline)
    code, _, err = run(capsys, "weights", "get", "tiny_hq")
    assert code == 2 and "cannot download tiny_hq.pth" in err and "segstudio weights add FILE" in err
    assert not cache(home).exists() or not any(cache(home).iterdir())


def test_get_interrupted_or_cancelled_leaves_nothing(cat, home, monkeypatch):
    monkeypatch.setattr(wc, "CHUNK", 1000)
    data = cat["tiny_full"].read_bytes()

    class Broken(io.BytesIO):
        def read(self, n=-1):
            if self.tell() > 3000:
                raise ConnectionResetError(104, "Connection reset by peer")
            return super().read(n)
    monkeypatch.setattr(wc, "open_url", lambda url: (Broken(data), len(data)))
    with pytest.raises(wc.WeightsFileError, match="Connection reset"):
        wc.get("tiny_full")
    assert not (cache(home) / "tiny_full.pth").exists() and leftovers(home) == []
    serve(monkeypatch, data)
    seen = []
    with pytest.raises(Cancelled):
        wc.get("tiny_full", progress=lambda d, t, s: seen.append(d), cancelled=lambda: len(seen) >= 3)
    assert seen[:3] == [1000, 2000, 3000] and leftovers(home) == []
    assert not (cache(home) / "tiny_full.pth").exists()


def test_get_replaces_only_a_wrong_file_and_says_so(cat, home, monkeypatch, capsys):
    c = cache(home)
    c.mkdir(parents=True)
    (c / "tiny_full.pth").write_bytes(b"<html>404</html>" * 100)
    serve(monkeypatch, cat["tiny_full"].read_bytes())
    code, out, err = run(capsys, "weights", "get", "tiny_full")
    assert code == 0, err
    assert "replaced" in out and "size mismatch" in out
    assert (c / "tiny_full.pth").read_bytes() == cat["tiny_full"].read_bytes()


def test_get_never_overwrites_a_file_that_appears_meanwhile(cat, home, monkeypatch):
    data = cat["tinynet"].read_bytes()
    dest = cache(home) / cat["tinynet"].name

    class Racing(io.BytesIO):
        def read(self, n=-1):
            if not dest.exists():
                dest.write_bytes(b"someone else's")  # e.g. torchvision downloading at the same time
            return super().read(n)
    monkeypatch.setattr(wc, "open_url", lambda url: (Racing(data), len(data)))
    with pytest.raises(wc.WeightsFileError, match="appeared"):
        wc.get("tinynet")
    assert dest.read_bytes() == b"someone else's" and leftovers(home) == []


def test_place_keeps_the_old_file_when_the_rename_fails(cat, home, monkeypatch):
    c = cache(home)
    c.mkdir(parents=True)
    old = c / "tiny_full.pth"
    old.write_bytes(b"y" * 3000)
    serve(monkeypatch, cat["tiny_full"].read_bytes())

    def boom(a, b):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(wc.os, "replace", boom)
    with pytest.raises(wc.WeightsFileError, match="Permission denied; the file there was left as it was"):
        wc.get("tiny_full")
    assert old.read_bytes() == b"y" * 3000 and leftovers(home) == []


def test_status_of_pickled_garbage_never_raises(cat, home):
    c = cache(home)
    c.mkdir(parents=True)
    (c / "tiny_hq.pth").write_bytes(pickle.dumps({"x": list(range(2000))}))
    s = wc.check(wc.find("tiny_hq"))
    assert s.status == wc.CORRUPT


def test_options_before_or_after_the_action(cat, home, monkeypatch, capsys):
    for argv in (("weights", "--json"), ("weights", "--json", "list"), ("weights", "list", "--json", "--quick")):
        code, out, _ = run(capsys, *argv)
        assert code == 0 and len(json.loads(out)["weights"]) == 3, argv
    serve(monkeypatch, cat["tiny_full"].read_bytes())
    code, out, _ = run(capsys, "weights", "--json", "get", "tiny_full")
    assert code == 0 and json.loads(out)[0]["status"] == wc.HASH_OK


def test_adding_the_file_already_in_place(cat, home, capsys):
    dest = cache(home) / "tiny_full.pth"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(cat["tiny_full"].read_bytes())
    code, out, err = run(capsys, "weights", "add", dest)
    assert code == 0, err
    assert "already" in out and dest.read_bytes() == cat["tiny_full"].read_bytes() and leftovers(home) == []


def test_get_clears_only_stale_temporary_files_of_its_own(cat, home, monkeypatch):
    c = cache(home)
    c.mkdir(parents=True)
    stale, fresh = c / ".tiny_full.pth.aaaa.segstudio-partial", c / ".tiny_full.pth.bbbb.segstudio-partial"
    torch_own = c / "tiny_full.pth.cccc.partial"  # torch.hub's: not ours to remove
    for p in (stale, fresh, torch_own):
        p.write_bytes(b"half")
    os.utime(stale, (1, 1))
    serve(monkeypatch, cat["tiny_full"].read_bytes())
    wc.get("tiny_full")
    assert not stale.exists() and fresh.exists() and torch_own.exists()
