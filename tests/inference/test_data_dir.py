"""The project's own files (model versions, embedding caches, run folders) go under
`Project.data_dir`, never beside the store's database by assumption: a store whose database is
somewhere else (another backend, another folder) leaves them where the project says."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from segstudio.core.project import STORE_DIR, Project
from segstudio.core.store import SqliteStore
from tests.conftest import make_image

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def folder(tmp_path):
    make_image(tmp_path / "imgs" / "a.png")
    return tmp_path / "imgs"


def test_data_dir_is_where_the_project_keeps_its_files(folder, tmp_path):
    p = Project.open(folder)
    assert p.data_dir == folder / STORE_DIR and p.store.db_path == p.data_dir / "project.db"
    p.close()
    elsewhere = tmp_path / "elsewhere" / "mine.db"
    p = Project.open(folder, elsewhere)  # --project FILE: the folder it is in
    assert p.data_dir == elsewhere.parent and p.store.db_path == elsewhere
    p.close()
    (tmp_path / "store_dir").mkdir()
    p = Project.open(folder, tmp_path / "store_dir")  # --project FOLDER: the folder itself
    assert p.data_dir == tmp_path / "store_dir" and p.store.db_path == p.data_dir / "project.db"
    p.close()


@pytest.fixture
def split_project(folder, tmp_path):
    """A project whose database and data folder are in different places."""
    store = SqliteStore(tmp_path / "db" / "project.db", folder)
    p = Project(folder, store, tmp_path / "data")
    yield p
    p.close()


def _beside_db(project) -> set[str]:
    return set(os.listdir(project.store.db_path.parent)) - {"project.db", "project.db-wal", "project.db-shm"}


def test_model_versions_go_under_data_dir(split_project, tmp_path):
    from segstudio.inference.training.live import LiveConfig, LiveLearner
    assert split_project.models_dir == tmp_path / "data" / "models"
    version, path = LiveLearner(split_project, LiveConfig(arch="unet"))._reserve_version()
    assert version == 1 and path.parent == tmp_path / "data" / "models" and path.is_file()
    assert _beside_db(split_project) == set()


def test_embedding_caches_go_under_data_dir(split_project, tmp_path):
    from segstudio.inference.sam.spec import embedding_dir
    d = embedding_dir(split_project, "vit_b")
    assert d == tmp_path / "data" / "sam" / "vit_b"
    try:
        from segstudio.inference.sam2.spec import embedding_dir as sam2_dir
    except ImportError:
        return
    assert (tmp_path / "data") in sam2_dir(split_project, "tiny").parents


def _db_path_as_folder(source: str) -> list[int]:
    """Lines that treat a store's db_path as a folder: `.db_path.parent(s)`, `db_path / x`."""
    out = []
    for n in ast.walk(ast.parse(source)):
        if (isinstance(n, ast.Attribute) and n.attr in ("parent", "parents")
                and isinstance(n.value, ast.Attribute) and n.value.attr == "db_path"):
            out.append(n.lineno)
        elif (isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div) and isinstance(n.left, ast.Attribute)
              and n.left.attr == "db_path"):
            out.append(n.lineno)
    return out


def test_the_db_path_scan_sees_folder_uses():
    assert sorted(_db_path_as_folder("x = project.store.db_path.parent / 'sam'\ny = s.db_path / 'a'\n")) == [1, 2]
    assert _db_path_as_folder("print(project.store.db_path)\n") == []


def test_nothing_outside_the_store_uses_db_path_as_a_folder():
    pkg = ROOT / "segstudio"
    store_pkg = pkg / "core" / "store"
    found = [f"{p.relative_to(ROOT)}:{line}" for p in sorted(pkg.rglob("*.py")) if store_pkg not in p.parents
             for line in _db_path_as_folder(p.read_text(encoding="utf-8"))]
    assert found == [], "use Project.data_dir"
