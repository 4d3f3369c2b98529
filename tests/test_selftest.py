"""`segstudio --self-test`: every check passes on this install, in-process and as the command a
user runs; a failing check makes the exit code non-zero and the others still run."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

from segstudio import selftest  # noqa: E402
from segstudio.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def check_lines(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if ln.startswith(("ok ", "FAIL "))]


@pytest.fixture
def own_tmp(tmp_path, monkeypatch):
    """tempfile's folder for this test only, to see what the self-test leaves behind."""
    d = tmp_path / "tmp"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


def resources_state() -> dict:
    from segstudio.app import RESOURCES
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in RESOURCES.rglob("*")}


@pytest.mark.slow
def test_self_test_passes_in_process(own_tmp, capsys):
    before = resources_state()
    code = main(["--self-test"])
    out = capsys.readouterr().out
    lines = check_lines(out)
    assert code == 0, out
    assert len(lines) == len(selftest.CHECKS) and all(ln.startswith("ok   ") for ln in lines), out
    assert [ln.split(" (")[0][5:] for ln in lines] == [name for name, _ in selftest.CHECKS]
    assert all(" ms)" in ln for ln in lines)  # each check says how long it took
    assert out.splitlines()[-1].startswith("self-test passed: ")
    assert not list(own_tmp.glob("segstudio-selftest-*"))  # its temporary folder is gone (torch may leave its own)
    assert resources_state() == before  # nothing written beside the bundled samples


@pytest.mark.slow
def test_self_test_command_forces_offscreen(tmp_path):
    """As a user runs it, with no QT_QPA_PLATFORM (no display here either): it sets offscreen
    itself. Its files go to TMPDIR and are removed; nothing is written to the home folder."""
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    env.update(HOME=str(home), TMPDIR=str(tmp), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local" / "share"), XDG_CACHE_HOME=str(home / ".cache"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    r = subprocess.run([sys.executable, "-m", "segstudio", "--self-test"], capture_output=True, text=True,
                       env=env, cwd=tmp_path, timeout=300)
    lines = check_lines(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(lines) == len(selftest.CHECKS) and all(ln.startswith("ok   ") for ln in lines), r.stdout
    assert "Qt platform offscreen" in r.stdout
    assert not list(tmp.glob("segstudio-selftest-*"))
    assert not [p for p in home.rglob("*") if p.is_file()], "the self-test wrote to the home folder"


def test_a_failing_check_fails_the_run(own_tmp, monkeypatch, capsys):
    def boom(ctx):
        raise RuntimeError("simulated\nsecond line")

    def refuses(ctx):
        raise selftest.CheckFailed("no grabcut today")

    ran = []
    monkeypatch.setattr(selftest, "CHECKS", [("open bundled samples", selftest.check_samples),
                                             ("boom", boom), ("grabcut", refuses),
                                             ("last", lambda ctx: ran.append(ctx) or "fine")])
    code = main(["--self-test"])
    out = capsys.readouterr().out
    lines = check_lines(out)
    assert code == 1
    assert len(lines) == 4 and lines[0].startswith("ok   open bundled samples (")
    assert lines[1].startswith("FAIL boom: RuntimeError: simulated (") and "second line" not in out
    assert lines[2].startswith("FAIL grabcut: no grabcut today (")
    assert lines[3].startswith("ok   last (") and ran  # a failure does not stop the other checks
    assert "self-test FAILED: 2 of 4 checks (boom, grabcut)" in out.splitlines()[-1]
    kept = list(own_tmp.glob("segstudio-selftest-*"))
    assert len(kept) == 1 and f"kept the self-test's files: {kept[0]}" in out  # for the bug report
    assert ran[0].project is not None  # opened by the first check, closed by the runner


def test_a_check_after_a_failed_one_says_why(tmp_path):
    ctx = selftest.Context(tmp_path)
    with pytest.raises(selftest.CheckFailed, match="earlier check failed"):
        selftest.check_brush_undo(ctx)


def test_self_test_takes_no_folder(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--self-test", "some/folder"])
    assert e.value.code == 2
    assert "--self-test takes no folder" in capsys.readouterr().err
