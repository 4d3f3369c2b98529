"""Which store a project opens (--store, SEGSTUDIO_STORE, store.toml, else SQLite), store.toml read
as hostile, and a team's project opened from two folders (two clients' mounts of one share)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segstudio.core.project import Project
from segstudio.core.store import StoreError
from segstudio.core.store.open import ENV, STORE_FILE, is_postgres_spec, spec_from_file, store_spec
from tests.conftest import make_image


def test_sqlite_is_the_default_and_the_spec_comes_from_flag_env_or_file(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert store_spec(None, tmp_path) is None
    (tmp_path / STORE_FILE).write_text('[store]\nurl = "postgresql://anna@db/proj"\n')
    assert store_spec(None, tmp_path) == "postgresql://anna@db/proj"
    monkeypatch.setenv(ENV, "service=segteam")
    assert store_spec(None, tmp_path) == "service=segteam"
    assert store_spec("postgresql://x@y/z", tmp_path) == "postgresql://x@y/z"


@pytest.mark.parametrize("spec,yes", [("postgresql://a@b/c", True), ("postgres://b/c", True),
                                      ("service=team", True), ("host=h dbname=d", True),
                                      ("/tmp/p.db", False), ("./x=y.db", False), ("project.db", False)])
def test_what_names_a_server(spec, yes):
    assert is_postgres_spec(spec) is yes


def test_a_spec_that_is_not_a_server_says_so(tmp_path):
    make_image(tmp_path / "a.png")
    with pytest.raises(StoreError, match="postgresql://"):
        Project.open(tmp_path, store="/tmp/some.db")


@pytest.mark.parametrize("text,why", [
    ("[store]\nurl = 3\n", "no \\[store\\] url"),
    ("url = 'postgresql://a@b/c'\n", "no \\[store\\] url"),
    ("[store\nurl=", "not valid TOML"),
    (b"\xff\xfe[store]", "not valid TOML"),
    ('[store]\nurl = "post\\u0000gres"\n', "no \\[store\\] url"),
])
def test_a_broken_store_file_is_a_clear_error(tmp_path, text, why):
    f = tmp_path / STORE_FILE
    f.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(StoreError, match=why):
        spec_from_file(f)


def test_a_fifo_huge_file_or_link_named_store_toml_is_refused(tmp_path):
    f = tmp_path / STORE_FILE
    os.mkfifo(f)
    with pytest.raises(StoreError, match="not a regular file"):
        spec_from_file(f)  # never blocks on the FIFO
    f.unlink()
    f.write_bytes(b"#" * 70_000)
    with pytest.raises(StoreError, match="bytes"):
        spec_from_file(f)
    f.unlink()
    target = tmp_path / "elsewhere.toml"
    target.write_text('[store]\nurl = "postgresql://a@b/c"\n')
    f.symlink_to(target)
    with pytest.raises(StoreError):
        spec_from_file(f)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_store_file_gives_a_spec_or_a_store_error(tmp_path, data):
    f = tmp_path / STORE_FILE
    f.write_bytes(data)
    try:
        spec = spec_from_file(f)
    except StoreError:
        return
    assert spec is None or (isinstance(spec, str) and spec and "\x00" not in spec)


def test_two_clients_mounts_share_one_project_and_a_partial_mount_hides_nothing(pg_url, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    a, b = tmp_path / "anna", tmp_path / "bob"
    for name in ("1.png", "2.png", "sub/3.png"):
        make_image(a / name)
    make_image(b / "1.png")  # bob's mount lacks two files
    pa = Project.open(a, store=pg_url)
    pb = Project.open(b, store=pg_url)
    try:
        assert pa.store.image_count() == pb.store.image_count() == 3
        assert pb.store.missing_count() == 0
        assert pa.data_dir != a / ".segstudio" and not (a / ".segstudio").exists()  # the share is not written
        assert pa.data_dir == pb.data_dir and pa.data_dir.is_dir()  # this machine's, by the store's location
    finally:
        pa.store.close()
        pb.store.close()


def test_the_data_folder_of_a_shared_project_follows_xdg(pg_url, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    make_image(tmp_path / "imgs" / "1.png")
    p = Project.open(tmp_path / "imgs", store=pg_url)
    try:
        assert Path(p.data_dir).is_relative_to(tmp_path / "xdg" / "segstudio" / "projects")
    finally:
        p.store.close()


def test_an_explicit_project_file_wins_over_the_environment_and_store_toml(tmp_path, monkeypatch):
    make_image(tmp_path / "imgs" / "1.png")
    (tmp_path / "imgs" / STORE_FILE).write_text('[store]\nurl = "postgresql://nobody@127.0.0.1:1/none"\n')
    monkeypatch.setenv(ENV, "postgresql://nobody@127.0.0.1:1/none")
    p = Project.open(tmp_path / "imgs", tmp_path / "mine.db")
    try:
        assert p.store.kind == "sqlite" and p.store.location == str(tmp_path / "mine.db")
    finally:
        p.store.close()
    with pytest.raises(StoreError, match="cannot connect"):
        Project.open(tmp_path / "imgs")  # without it, the folder's store.toml / the variable decides


def test_a_folder_holding_none_of_a_teams_images_is_refused_before_it_adds_any(pg_url, tmp_path, monkeypatch):
    from segstudio.core.project import ProjectError
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    for name in ("1.png", "2.png"):
        make_image(tmp_path / "share" / name)
    make_image(tmp_path / "elsewhere" / "personal.png")
    make_image(tmp_path / "share" / "sub" / "3.png")
    Project.open(tmp_path / "share", store=pg_url).store.close()
    with pytest.raises(ProjectError, match="holds none of the 3 images"):
        Project.open(tmp_path / "elsewhere", store=pg_url)
    with pytest.raises(ProjectError, match="holds none"):
        Project.open(tmp_path / "share" / "sub", store=pg_url)  # a subfolder: its paths are not the project's
    make_image(tmp_path / "share" / "new.png")  # a new file beside known ones joins the project
    p = Project.open(tmp_path / "share", store=pg_url)
    try:
        assert p.store.image_count() == 4 and p.store.image_by_path("personal.png") is None
    finally:
        p.store.close()
