"""The folder scan skips only folders whose marker reads as a segstudio export, and `segstudio
info` names the folders it skipped; a stray file of that name hides nothing."""

import json
import os
import shutil

import pytest

from segstudio.cli import main
from segstudio.core.project import EXPORT_MARKER, Project
from segstudio.io.registry import run_export
from tests.conftest import make_image


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "imgs"
    make_image(d / "a.png")
    make_image(d / "notes" / "b.png", seed=1)
    make_image(d / "piped" / "c.png", seed=2)
    make_image(d / "linked" / "d.png", seed=3)
    return d


def _paths(folder):
    p = Project.open(folder)
    try:
        return sorted(r.path for r in p.store.images()), getattr(p, "skipped_folders", None)
    finally:
        p.close()


def test_a_stray_marker_hides_no_images(folder, tmp_path):
    (folder / "notes" / EXPORT_MARKER).write_text("my own notes, not segstudio's\n")
    (folder / "linked" / EXPORT_MARKER).symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").write_text("written by segstudio\n")  # a link is never a marker export writes
    if hasattr(os, "mkfifo"):
        os.mkfifo(folder / "piped" / EXPORT_MARKER)  # never opened for reading: the scan does not hang
    paths, skipped = _paths(folder)
    assert paths == ["a.png", "linked/d.png", "notes/b.png", "piped/c.png"]
    assert skipped == []


def test_info_names_the_export_folders_it_skipped(folder, tmp_path, capsys):
    p = Project.open(folder)
    run_export("labelmap", p, tmp_path / "labels")
    p.close()
    shutil.move(tmp_path / "labels", folder / "notes" / "labels")  # an export moved inside the image folder
    paths, skipped = _paths(folder)
    assert "notes/labels/SegmentationClass/a.png" not in paths and "notes/b.png" in paths
    assert skipped == ["notes/labels"]
    assert main(["info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "skipped folders" in out and "  notes/labels/" in out
    assert main(["info", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped_folders"] == ["notes/labels"]
