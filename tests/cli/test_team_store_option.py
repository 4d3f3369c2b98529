"""--store URL on every command (and the window): a team's PostgreSQL project; a password in it is
refused in one line before anything connects."""

import json
import os

import pytest

from segstudio.cli import _first_positional, main
from segstudio.cli.common import CliError, check_store_spec


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("spec", ["postgresql://anna:s3cret@db/x", "postgres://anna:s3cret@db:5/x?sslmode=require",
                                  "postgresql://anna@db/x?password=s3cret", "host=db user=anna password=s3cret",
                                  "password = s3cret host=db"])
def test_a_password_is_refused_in_one_line(image_folder, capsys, spec):
    code, out, err = run(capsys, "info", image_folder, "--store", spec)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "password" in err and "s3cret" not in err and "pgpass" in err
    assert not (image_folder / ".segstudio").exists()
    code, _, err = run(capsys, "--store", spec, "export", image_folder, "--format", "coco", "--out", "x.json")
    assert code == 2 and "s3cret" not in err


@pytest.mark.parametrize("spec", ["", "  ", "post\x00gresql://a@b/c"])
def test_empty_or_nul_spec(spec):
    with pytest.raises(CliError):
        check_store_spec(spec)


def test_plain_specs_pass():
    assert check_store_spec(None) is None
    assert check_store_spec(" postgresql://anna@db.lab/cells?sslmode=verify-full ") == \
        "postgresql://anna@db.lab/cells?sslmode=verify-full"
    assert check_store_spec("service=cells") == "service=cells"


def test_store_option_is_skipped_when_finding_the_command():
    assert _first_positional(["--store", "postgresql://a@b/c", "info", "f"]) == "info"
    assert _first_positional(["--store", "service=x", "folder"]) == "folder"


def test_commands_open_the_postgresql_store(image_folder, pg_url, capsys):
    code, out, err = run(capsys, "--store", pg_url, "info", image_folder, "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["store"] == "postgresql" and d["images"] == 5 and d["project"].startswith("postgresql://")
    assert not (image_folder / ".segstudio").exists()  # nothing written beside the images
    code, out, err = run(capsys, "info", image_folder, "--store", pg_url)
    assert code == 0 and "postgresql://" in out, err
    code, out, err = run(capsys, "export", image_folder, "--store", pg_url, "--format", "coco",
                         "--out", image_folder.parent / "c.json", "--status", "all")
    assert code == 0 and "5 images" in out, err


def test_store_toml_and_env_open_it_too(image_folder, pg_url, capsys, monkeypatch):
    (image_folder / "store.toml").write_text(f'[store]\nurl = "{pg_url}"\n')
    code, out, err = run(capsys, "info", image_folder, "--json")
    assert code == 0 and json.loads(out)["store"] == "postgresql", err
    (image_folder / "store.toml").unlink()
    monkeypatch.setenv("SEGSTUDIO_STORE", pg_url)
    code, out, err = run(capsys, "info", image_folder, "--json")
    assert code == 0 and json.loads(out)["store"] == "postgresql", err


def test_the_window_refuses_a_password_too(image_folder, tmp_path, capsys):
    pytest.importorskip("PySide6")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    code, _, err = run(capsys, "--store", "postgresql://a:s3cret@db/x", image_folder, "--screenshot",
                       tmp_path / "w.png")
    assert code == 2 and "password" in err and "s3cret" not in err and not (tmp_path / "w.png").exists()


def test_ray_workers_open_the_same_store(image_folder, pg_url, tmp_path):
    pytest.importorskip("torch")
    from segstudio.core.project import Project
    from segstudio.inference.cluster.train import _store_of
    p = Project.open(image_folder, store=pg_url)
    try:
        spec = _store_of(p)
        assert spec["store"] == p.store.location and "postgresql://" in spec["store"]
        worker = Project.open(image_folder, spec["db"], store=spec["store"])  # what a Ray worker does
        try:
            assert worker.store.kind == "postgresql" and worker.data_dir == p.data_dir
            assert worker.store.image_ids() == p.store.image_ids()
        finally:
            worker.close()
    finally:
        p.close()
    q = Project.open(image_folder, tmp_path / "p.db")
    try:
        assert _store_of(q) == {"db": str((tmp_path / "p.db").resolve()), "store": None}
    finally:
        q.close()
