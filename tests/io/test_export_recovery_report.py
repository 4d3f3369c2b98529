"""What the next export does with a killed export's leftovers (puts the previous export back,
removes what it left, keeps what is not provably its own) is in the export's report, which the
CLI prints and the window's dialog shows; not only in the log."""

from __future__ import annotations

import errno
import logging
import os
import time
from pathlib import Path

import pytest

import segstudio.io.labelmap as lm
from segstudio.cli import main
from segstudio.core.project import EXPORT_MARKER, Project
from segstudio.io.export_leftovers import IN_PROGRESS
from segstudio.io.registry import run_export
from tests.io.helpers import annotated_project

GONE_RUN = "deadbeef"  # this process's pid with another run token: an earlier process, gone


def leave_killed_export(project, out: Path) -> dict[str, Path]:
    """The state an export to `out` killed between the two renames of its swap leaves (see
    export_leftovers): the previous export moved aside, `out` missing, the new export's
    temporary folder half written; and an older segstudio's unfinished temporary folder."""
    run_export("labelmap", project, out)
    old = out.parent / f".{out.name}.segstudio-old-{os.getpid()}-{GONE_RUN}-00000001"
    out.rename(old)
    tmp = out.parent / f".{out.name}.segstudio-tmp-{os.getpid()}-{GONE_RUN}-00000002"
    tmp.mkdir(0o700)
    (tmp / EXPORT_MARKER).write_bytes(IN_PROGRESS)
    (tmp / "half.png").write_bytes(b"half a png")
    legacy = out.parent / f".{out.name}.tmp-zzzz9999"
    legacy.mkdir()
    (legacy / "half.png").write_bytes(b"half")
    os.utime(legacy, (time.time() - 3600, time.time() - 3600))  # quiet for an hour: not being written
    return {"old": old, "tmp": tmp, "legacy": legacy}


def check_lines(lines: list[str], out: Path, left: dict[str, Path]) -> None:
    text = "\n".join(lines)
    assert f"note: put the previous export back in {out}" in text, text
    assert f"note: removed 1 leftover of killed or interrupted exports to {out} ({left['tmp'].name})" in text, text
    assert f"warning: kept {left['legacy']}: an unfinished export of an older segstudio" in text, text


def test_the_report_carries_what_recovery_did(tmp_path):
    p = annotated_project(tmp_path / "imgs")
    try:
        out = tmp_path / "exports" / "out"
        out.parent.mkdir()
        left = leave_killed_export(p, out)
        rep = run_export("labelmap", p, out)
        check_lines(rep.lines(), out, left)
        assert "1 warning" in rep.summary()
        assert not left["old"].exists() and not left["tmp"].exists() and left["legacy"].exists()
        rep = run_export("labelmap", p, out)  # nothing left to recover: nothing said
        assert not any("put the previous" in ln or "removed" in ln for ln in rep.lines()), rep.lines()
    finally:
        p.close()


def test_the_cli_prints_what_recovery_did(tmp_path, capsys):
    folder = tmp_path / "imgs"
    annotated_project(folder).close()
    out = tmp_path / "exports" / "out"
    out.parent.mkdir()
    p = Project.open(folder)
    try:
        left = leave_killed_export(p, out)
    finally:
        p.close()
    capsys.readouterr()
    assert main(["export", str(folder), "--format", "labelmap", "--out", str(out), "--status", "all"]) == 0
    printed = capsys.readouterr().out
    check_lines([ln.strip() for ln in printed.splitlines()], out, left)


def test_an_export_that_fails_after_recovery_still_says_what_recovery_did(tmp_path, monkeypatch, caplog):
    p = annotated_project(tmp_path / "imgs")
    try:
        out = tmp_path / "exports" / "out"
        out.parent.mkdir()
        leave_killed_export(p, out)

        def full(*a, **k):
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(lm, "write_png", full)
        with caplog.at_level(logging.WARNING, logger="segstudio"), pytest.raises(OSError, match="disk is full"):
            run_export("labelmap", p, out)
        warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert any("previous export" in m and str(out) in m for m in warned), warned
        assert (out / EXPORT_MARKER).is_file()  # and it is back
    finally:
        p.close()
