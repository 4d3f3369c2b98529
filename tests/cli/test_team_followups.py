"""What a lead meets after moving a project: the copy says what to do next and the SQLite file it
came from says it was copied; an export that would hold nothing replaces nothing."""

from __future__ import annotations

import logging

from segstudio.cli import main
from segstudio.core.project import Project
from tests.conftest import make_image


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_copy_to_the_server_says_how_to_open_it_and_the_old_file_says_it_moved(tmp_path, pg_url, capsys, caplog):
    make_image(tmp_path / "imgs" / "a.png")
    Project.open(tmp_path / "imgs").store.close()
    code, out, err = run(capsys, "store", "copy", tmp_path / "imgs", "--to", pg_url)
    assert code == 0, err
    assert "--store" in out and "store.toml" in out and "does not reach the team" in out
    with caplog.at_level(logging.WARNING):
        p = Project.open(tmp_path / "imgs")
        p.store.close()
    assert "was copied to postgresql://" in caplog.text


def test_an_export_that_would_hold_nothing_leaves_the_old_one(tmp_path, capsys):
    make_image(tmp_path / "imgs" / "a.png")
    p = Project.open(tmp_path / "imgs")
    p.store.set_status(p.store.image_ids(), "done")
    p.store.close()
    out = tmp_path / "export.json"
    code, _, err = run(capsys, "export", tmp_path / "imgs", "--format", "coco", "--out", out)
    assert code == 0, err
    before = out.read_bytes()
    code, _, err = run(capsys, "export", tmp_path / "imgs", "--format", "coco", "--out", out, "--status", "skipped")
    assert code == 2 and "nothing to export" in err and "1 done" in err and "was not written" in err
    assert out.read_bytes() == before


def test_names_reach_the_terminal_as_text_not_escapes(tmp_path, capsys):
    make_image(tmp_path / "imgs" / "a.png")
    p = Project.open(tmp_path / "imgs")
    p.store.add_class("evil\x1b]0;pwned\x07\x1b[31mred")
    p.store.set_status(p.store.image_ids(), "done")
    p.store.close()
    for argv in (("info", tmp_path / "imgs"), ("info", tmp_path / "imgs", "--by-user")):
        code, out, err = run(capsys, *argv)
        assert code == 0, err
        assert "\x1b" not in out and "\x07" not in out
    code, out, _ = run(capsys, "info", tmp_path / "imgs")
    assert "evil\\u001b]0;pwned\\u0007\\u001b[31mred" in out


def test_a_lead_lists_and_takes_out_members(pg_url, capsys):
    import uuid

    import psycopg
    from psycopg import sql
    name = f"t_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    assert run(capsys, "store", "init", pg_url)[0] == 0
    code, out, err = run(capsys, "store", "grant", pg_url, name, "--role", "annotator")
    assert code == 2 and "store init URL --roles" in err  # the roles first
    assert run(capsys, "store", "init", pg_url, "--roles")[0] == 0
    assert run(capsys, "store", "grant", pg_url, name, "--role", "reviewer")[0] == 0
    code, out, _ = run(capsys, "store", "members", pg_url)
    assert code == 0 and f"{name}: reviewer" in out
    assert run(capsys, "store", "revoke", pg_url, name)[0] == 0
    code, out, _ = run(capsys, "store", "members", pg_url)
    assert name not in out and "nobody yet" in out
    with __import__("pytest").raises(psycopg.OperationalError, match="CONNECT"):
        psycopg.connect(pg_url.replace("segstudio@", f"{name}@"))


def test_a_copy_never_takes_a_journal_file_it_did_not_make(tmp_path, capsys):
    make_image(tmp_path / "imgs" / "a.png")
    Project.open(tmp_path / "imgs").store.close()
    (tmp_path / "new.db-wal").write_bytes(b"someone's")
    code, _, err = run(capsys, "store", "copy", tmp_path / "imgs", "--to", tmp_path / "new.db")
    assert code == 2 and "new.db-wal" in err
    assert (tmp_path / "new.db-wal").read_bytes() == b"someone's" and not (tmp_path / "new.db").exists()
