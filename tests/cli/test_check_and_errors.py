"""`segstudio check`, and errors that stay on their image until a full decode proves them wrong;
exports leave out what cannot be read, and say what happened to the annotations of files that
vanished."""

import json

import numpy as np
import pytest

from segstudio.cli import main
from segstudio.core.check import check_images
from segstudio.core.project import Project
from segstudio.core.region import Region
from segstudio.io import coco
from segstudio.io.registry import run_export
from tests.conftest import make_image


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def truncate(path, keep=0.6):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "imgs"
    for i in range(5):
        make_image(d / f"ok{i}.jpg", 96, 64, seed=i)
    make_image(d / "broken.jpg", 96, 64, seed=9)
    truncate(d / "broken.jpg")  # the header still reads: only a full decode finds it
    (d / "empty.png").write_bytes(b"")
    return d


def annotate(p, path, n=2):
    rec = p.store.image_by_path(path)
    cls = p.store.class_by_name("thing") or p.store.add_class("thing")
    regs = [Region(0, cls.id, np.ones((5, 5), bool), 3 + 10 * k, 3) for k in range(n)]
    for r, i in zip(regs, p.store.reserve_region_ids(n)):
        r.id = i
    p.store.save_regions(rec.id, regs, status="done")


def test_check_finds_stores_and_lists_unreadable_files(folder, capsys):
    code, out, _ = run(capsys, "check", folder)
    assert code == 1
    assert "7 images, 5 readable, 2 unreadable" in out
    assert "broken.jpg" in out and "truncated" in out and "empty.png" in out
    code, out, _ = run(capsys, "check", folder, "--json")
    d = json.loads(out)
    assert code == 1 and d["readable"] == 5
    assert sorted(u["path"] for u in d["unreadable"]) == ["broken.jpg", "empty.png"]
    code, out, _ = run(capsys, "info", folder, "--json")
    errors = {e["path"]: e["error"] for e in json.loads(out)["errors"]}
    assert set(errors) == {"broken.jpg", "empty.png"} and "truncated" in errors["broken.jpg"]
    code, out, _ = run(capsys, "info", folder)
    assert "errors: 2" in out and "broken.jpg" in out


def test_check_exits_0_when_every_image_reads(tmp_path, capsys):
    for i in range(3):
        make_image(tmp_path / "f" / f"{i}.png", seed=i)
    code, out, _ = run(capsys, "check", tmp_path / "f")
    assert code == 0 and "3 readable, 0 unreadable" in out


def test_a_repaired_file_is_cleared_by_a_full_decode_only(folder):
    p = Project.open(folder)
    try:
        check_images(p, workers=2)
        rec = p.store.image_by_path("broken.jpg")
        assert rec.error
        p.image_size(rec)  # a header read (what export does) proves nothing
        assert p.store.image_by_path("broken.jpg").error
        p.store.set_decoded(rec.id, 96, 64, None)
        assert p.store.image_by_path("broken.jpg").error
        make_image(folder / "broken.jpg", 96, 64, seed=9)  # the user copies it again
        rep = check_images(p)
        assert rep.readable == 6 and p.store.image_by_path("broken.jpg").error is None
    finally:
        p.close()


def test_export_leaves_out_images_known_to_be_unreadable(folder, tmp_path, capsys):
    code, out, _ = run(capsys, "check", folder)
    assert code == 1
    p = Project.open(folder)
    annotate(p, "ok0.jpg")
    annotate(p, "broken.jpg")
    p.store.set_error(p.store.image_by_path("ok1.jpg").id, "CUDA decode failed")  # stored by predict
    annotate(p, "ok1.jpg")
    p.close()
    code, out, err = run(capsys, "export", folder, "--format", "coco", "--out", tmp_path / "c.json",
                         "--status", "done")
    assert code == 0, err
    data = json.loads((tmp_path / "c.json").read_text())
    assert [im["file_name"] for im in data["images"]] == ["ok0.jpg"]
    assert "2 unreadable images left out" in out
    assert "left out (unreadable): broken.jpg" in out and "left out (unreadable): ok1.jpg" in out
    p = Project.open(folder)
    try:  # the export did not clear what predict stored
        assert p.store.image_by_path("ok1.jpg").error == "CUDA decode failed"
    finally:
        p.close()


def test_a_file_that_vanished_before_a_copying_export_is_left_out_and_stored(folder, tmp_path):
    p = Project.open(folder)
    try:
        annotate(p, "ok0.jpg")
        annotate(p, "ok2.jpg")
        p.image_size(p.store.image_by_path("ok2.jpg"))
        (folder / "ok2.jpg").unlink()  # gone after the last scan
        rep = run_export("yolo", p, tmp_path / "y", statuses=("done",))
        assert rep.images == 1 and [f for f, _ in rep.left_out] == ["ok2.jpg"]
        assert p.store.image_by_path("ok2.jpg").error
    finally:
        p.close()


def test_export_names_missing_images_and_what_happened_to_their_annotations(folder, tmp_path, capsys):
    p = Project.open(folder)
    annotate(p, "ok0.jpg", n=1)
    annotate(p, "ok3.jpg", n=3)
    p.close()
    (folder / "ok3.jpg").unlink()
    code, out, err = run(capsys, "export", folder, "--format", "labelmap", "--out", tmp_path / "lm",
                         "--status", "done")
    assert code == 0, err
    assert "1 image," in out
    assert "1 missing image left out (3 annotations kept in the project)" in out
    assert "ok3.jpg: its 3 annotations are kept in the project, not exported" in out
    p = Project.open(folder)
    try:
        rep = coco.export_coco(p, tmp_path / "c.json", statuses=("done",))
        assert rep.missing == [("ok3.jpg", 3)]
        assert p.store.region_count() == 4  # nothing was dropped from the project
    finally:
        p.close()


def test_an_export_that_decodes_a_broken_file_stores_it_and_leaves_it_out(tmp_path):
    d = tmp_path / "imgs"
    make_image(d / "good.png", 64, 48, seed=1)
    make_image(d / "cut.png", 64, 48, seed=2)
    truncate(d / "cut.png", 0.5)  # VOC re-encodes PNGs as JPEG: it has to decode this one
    p = Project.open(d)
    try:
        annotate(p, "good.png")
        annotate(p, "cut.png")
        rep = run_export("voc", p, tmp_path / "voc", statuses=("done",))
        assert rep.images == 1 and [f for f, _ in rep.left_out] == ["cut.png"]
        assert "1 unreadable image left out" in rep.summary()
        assert p.store.image_by_path("cut.png").error
        assert not list((tmp_path / "voc" / "JPEGImages").glob("cut*"))
    finally:
        p.close()


def test_check_reports_its_memory_budget_and_refuses_a_bad_one(folder, capsys):
    code, out, _ = run(capsys, "check", folder, "--json", "--memory", "300M", "--workers", "4")
    d = json.loads(out)
    assert code == 1 and d["memory_budget_bytes"] == 300 << 20 and d["not_checked"] == []
    assert 0 < d["memory_peak_reserved_bytes"] <= d["memory_budget_bytes"]
    code, _, err = run(capsys, "check", folder, "--memory", "lots")
    assert code == 2 and "--memory" in err and "not a size" in err
