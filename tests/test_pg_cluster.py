"""The throwaway PostgreSQL server the team-store tests run against (tests/pg_cluster.py, tests/pg_fixtures.py)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pg_cluster import PgCluster, PgUnavailable, find_binaries
from tests.pg_fixtures import _unavailable

psycopg = pytest.importorskip("psycopg")

REPO = Path(__file__).resolve().parents[1]


def _one(url: str, query: str, params=()):
    with psycopg.connect(url, connect_timeout=5) as c:
        return c.execute(query, params).fetchone()


def test_server_answers_and_is_recent(pg_url, request):
    assert _one(pg_url, "SELECT 1") == (1,)
    assert _one(pg_url, "SELECT current_setting('server_version_num')::int")[0] >= 130000
    assert request.node.get_closest_marker("pg") is not None  # so -m "not pg" leaves it out


def test_each_database_is_its_own(pg_url_factory):
    a, b = pg_url_factory(), pg_url_factory()
    assert a != b
    with psycopg.connect(a) as c:
        c.execute("CREATE TABLE only_here (x int)")
        c.execute("INSERT INTO only_here VALUES (1)")
    assert _one(a, "SELECT count(*) FROM only_here") == (1,)
    assert _one(b, "SELECT to_regclass('only_here')") == (None,)
    assert _one(a, "SELECT current_database()") != _one(b, "SELECT current_database()")


_SEEN: list[str] = []


def test_a_test_database_exists_during_the_test(pg_url):
    _SEEN.append(_one(pg_url, "SELECT current_database()")[0])


def test_a_test_database_is_dropped_after_the_test(pg_cluster):
    if not _SEEN:
        pytest.skip("runs after test_a_test_database_exists_during_the_test")
    left = _one(pg_cluster.url(), "SELECT count(*) FROM pg_database WHERE datname = ANY(%s)", (_SEEN,))
    assert left == (0,)


def test_hostile_database_name_is_one_identifier(pg_cluster):
    name = 'x"; DROP DATABASE postgres; --\'%s'
    url = pg_cluster.create_database(name)
    try:
        assert _one(url, "SELECT current_database()") == (name,)
        assert _one(pg_cluster.url(), "SELECT count(*) FROM pg_database WHERE datname = 'postgres'") == (1,)
    finally:
        pg_cluster.drop_database(name)
    assert _one(pg_cluster.url(), "SELECT count(*) FROM pg_database WHERE datname = %s", (name,)) == (0,)


def test_restart_breaks_open_connections_and_new_ones_work(pg_cluster, pg_url):
    port = pg_cluster.port
    old = psycopg.connect(pg_url)
    try:
        assert old.execute("SELECT 1").fetchone() == (1,)
        pg_cluster.restart()
        with pytest.raises(psycopg.OperationalError):
            old.execute("SELECT 1")
        assert old.broken
    finally:
        old.close()
    assert pg_cluster.port == port  # the URLs handed out stay valid
    assert _one(pg_url, "SELECT 1") == (1,)


def test_server_runs_as_a_non_root_user(pg_cluster, pg_url):
    data = Path(_one(pg_url, "SELECT current_setting('data_directory')")[0])
    assert data == pg_cluster.data
    owner = data.stat().st_uid
    pid = int((data / "postmaster.pid").read_text().split()[0])
    status = Path(f"/proc/{pid}/status")
    server_uid = int(next(ln.split()[1] for ln in status.read_text().splitlines() if ln.startswith("Uid:")))
    if os.geteuid() == 0:
        assert owner != 0 and server_uid != 0
    else:
        assert owner == os.geteuid() == server_uid


def _tcp_listeners(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of sockets listening on this port."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                found.append(local)
    return found


def test_listens_on_loopback_only(pg_cluster, pg_url):
    assert _one(pg_url, "SELECT current_setting('listen_addresses')") == ("127.0.0.1",)
    assert _one(pg_url, "SELECT current_setting('unix_socket_directories')") == ("",)
    assert _one(pg_url, "SELECT host(inet_server_addr())") == ("127.0.0.1",)
    if Path("/proc/net/tcp").exists():
        assert _tcp_listeners(pg_cluster.port) == [f"0100007F:{pg_cluster.port:04X}"]


def test_kill_then_start_keeps_committed_work_when_durable(pg_cluster_factory):
    cluster = pg_cluster_factory(fast=False)
    url = cluster.create_database("crash")
    assert _one(url, "SELECT current_setting('fsync'), current_setting('synchronous_commit')") == ("on", "on")
    with psycopg.connect(url) as c:
        c.execute("CREATE TABLE t (x int)")
        c.execute("INSERT INTO t SELECT generate_series(1, 100)")
    cluster.kill()
    assert not cluster.running()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
    cluster.start()  # crash recovery
    assert _one(url, "SELECT count(*), sum(x) FROM t") == (100, 5050)


def test_binaries_newest_version_first(tmp_path, monkeypatch):
    for version in ("9.6", "10", "17", "junk"):
        bindir = tmp_path / version / "bin"
        bindir.mkdir(parents=True)
        for tool in ("initdb", "pg_ctl", "postgres"):
            (bindir / tool).write_text("#!/bin/sh\n")
            (bindir / tool).chmod(0o755)
    (tmp_path / "17" / "bin" / "postgres").unlink()  # an incomplete install is passed over
    assert find_binaries(tmp_path)["initdb"] == tmp_path / "10" / "bin" / "initdb"


def test_missing_binaries_skip_or_fail_as_ci_asks(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PgUnavailable, match="apt-get install postgresql") as e:
        find_binaries(tmp_path)
    monkeypatch.delenv("SEGSTUDIO_REQUIRE_PG", raising=False)
    with pytest.raises(pytest.skip.Exception):
        _unavailable(e.value)
    monkeypatch.setenv("SEGSTUDIO_REQUIRE_PG", "1")
    with pytest.raises(pytest.fail.Exception, match="SEGSTUDIO_REQUIRE_PG=1"):
        _unavailable(e.value)


def test_bad_stop_mode_is_refused(pg_cluster):
    with pytest.raises(ValueError, match="smart, fast or immediate"):
        pg_cluster.stop("now")
    assert pg_cluster.running()


def test_serve_prints_a_url_and_cleans_up_on_sigterm(pg_cluster):
    assert isinstance(pg_cluster, PgCluster)  # only where PostgreSQL is installed
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "pg_cluster.py"), "--serve", "--database", "demo"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("postgresql://segstudio@127.0.0.1:") and url.endswith("/demo"), proc.stderr.read()
        folder = Path(proc.stderr.readline().split()[2])
        assert _one(url, "SELECT current_database()") == ("demo",)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not folder.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
