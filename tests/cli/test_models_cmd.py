"""`segstudio models [--json]` lists every family of the registry without importing torch; the
--model choices of predict and train come from the registry; family-only flags and --ray are
refused by what a family declares, with a clear message."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from segstudio.cli import build_parser, main
from segstudio.inference import registry
from segstudio.inference.family import CAPABILITIES, TRAIN


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty torch hub cache: the families' weights are all missing until a test puts one there."""
    h = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(h))
    torch = sys.modules.get("torch")
    if torch is not None:  # torch's own answer wins when torch is loaded (another test imported it)
        monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return h


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    Image.new("RGB", (16, 12)).save(d / "a.png")
    return d


def test_json_lists_every_family_with_its_capabilities(home, capsys):
    code, out, err = run(capsys, "models", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["key"] for r in rows] == list(registry.FAMILIES)
    by = {r["key"]: r for r in rows}
    for r in rows:
        assert list(r["capabilities"]) == list(CAPABILITIES)
        assert all(isinstance(v, bool) for v in r["capabilities"].values())
        assert r["title"] and isinstance(r["roles"], list) and isinstance(r["packages_missing"], list)
    assert by["sam"]["capabilities"]["click"] and not by["sam"]["capabilities"]["train"]
    assert by["sam"]["roles"] == ["click"] and by["sam"]["install_hint"] == "pip install segstudio[sam]"
    assert by["maskrcnn"]["capabilities"]["pre-label instances"] and by["maskrcnn"]["variants"] == ["v2", "v1"]
    assert by["unet"]["capabilities"]["learn live"] and "pre-label" in by["unet"]["roles"]
    coco = {w["name"]: w for w in by["maskrcnn"]["weights"]}
    v2 = coco["maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth"]
    assert v2["here"] is False and v2["path"].startswith(str(home))
    # a file put where torchvision looks is seen
    os.makedirs(os.path.dirname(v2["path"]))
    open(v2["path"], "wb").close()
    code, out, _ = run(capsys, "models", "--json")
    coco = {w["name"]: w for w in {r["key"]: r for r in json.loads(out)}["maskrcnn"]["weights"]}
    assert coco["maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth"]["here"] is True
    assert coco["maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"]["here"] is False


def test_text_is_a_table_with_a_section_per_family(home, capsys):
    code, out, err = run(capsys, "models")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["model", "click"] and "learn live" in lines[0] and lines[0].endswith("roles")
    for key in registry.FAMILIES:
        row = next(ln for ln in lines[1:] if ln.split()[0] == key)
        f = registry.family(key)
        assert row.split()[1:1 + 2] == ["yes" if f.can(c) else "no" for c in CAPABILITIES[:2]]
        assert any(ln.startswith(f"{key}: {f.title}") for ln in lines)
    assert "weights: maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth: not here" in out


def test_listing_imports_no_torch(home):
    code = ("import sys, argparse\n"
            "from segstudio.cli.model_list import cmd_models\n"
            "for js in (False, True):\n"
            "    assert cmd_models(argparse.Namespace(json=js)) == 0\n"
            "assert 'torch' not in sys.modules and 'torchvision' not in sys.modules, 'torch imported'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "TORCH_HOME": str(home)})
    assert out.returncode == 0, out.stderr
    assert '"key": "sam"' in out.stdout


def _choices(command: str) -> list[str]:
    p = build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return list(next(a for a in sub.choices[command]._actions if a.dest == "model").choices)


def test_model_choices_come_from_the_registry():
    assert _choices("predict") == [k for k, f in registry.FAMILIES.items() if f.load is not None]
    assert _choices("train") == registry.keys(TRAIN)
    assert "sam" in _choices("predict") and "sam" not in _choices("train")


def test_unknown_model_is_a_clear_message(folder, capsys):
    with pytest.raises(SystemExit) as e:
        main(["predict", str(folder), "--model", "resnet"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --model: invalid choice: 'resnet'" in err and "'unet'" in err and "'maskrcnn'" in err


def test_family_flags_belong_to_the_family_that_declares_them(folder, capsys):
    code, _, err = run(capsys, "predict", folder, "--model", "maskrcnn", "--sam-model", "sam_vit_b")
    assert code == 2 and "--sam-model: only with --model sam" in err
    code, _, err = run(capsys, "predict", folder, "--model", "unet", "--maskrcnn-version", "v1")
    assert code == 2 and "--maskrcnn-version: only with --model maskrcnn" in err
    code, _, err = run(capsys, "predict", folder, "--model", "sam", "--ray")
    assert code == 2 and "--ray: not for Segment Anything" in err and "maskrcnn" in err
    code, _, err = run(capsys, "train", folder, "--model", "unet", "--maskrcnn-version", "v1", "--out",
                       folder / "x.pt")
    assert code == 2 and "--maskrcnn-version" in err


def test_ray_is_refused_for_a_family_without_a_ray_path(folder, capsys, monkeypatch):
    import dataclasses
    no_ray = dataclasses.replace(registry.FAMILIES["unet"], cluster=False)
    monkeypatch.setitem(registry.FAMILIES, "unet", no_ray)
    code, _, err = run(capsys, "train", folder, "--model", "unet", "--out", folder / "x.pt", "--epochs", "1",
                       "--ray")
    assert code == 2 and "--ray: UNet (class per pixel) has no Ray path" in err
    code, _, err = run(capsys, "predict", folder, "--model", "unet", "--ray")
    assert code == 2 and "--ray: not for UNet (class per pixel)" in err
