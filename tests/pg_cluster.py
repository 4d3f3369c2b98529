"""A throwaway PostgreSQL server in a temporary folder, for the tests, the benchmarks and by hand.

`PgCluster` runs initdb and pg_ctl from the newest /usr/lib/postgresql/*/bin (Debian keeps them off PATH), else from
PATH. The server listens on 127.0.0.1 only, on a random free port, with no Unix socket (a socket in a shared folder
would let any local user in under trust auth). postgres refuses to run as root, so as root every server program runs
as `nobody` through runuser, in a folder made by tempfile.mkdtemp (pytest's tmp_path sits under a 0700 folder of
root's, which nobody cannot reach) and chowned to it.

`fast=True` turns durability off (fsync, synchronous_commit, full_page_writes) for the tests; benchmarks and fault
tests that kill the server must use `fast=False`, the server's defaults, or "nothing was lost" would mean nothing.

By hand: `python tests/pg_cluster.py --serve [--durable] [--database NAME]` prints a URL and serves until Ctrl+C or
SIGTERM, then stops the server and removes its folder.
"""
from __future__ import annotations

import argparse
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

SUPERUSER = "segstudio"
RUN_AS = "nobody"  # the unprivileged account the server runs as when we are root
TOOLS = ("initdb", "pg_ctl", "postgres")
PORT_TRIES = 5
MIN_SERVER_VERSION = 13  # DROP DATABASE ... WITH (FORCE)
# a start that failed on these lines lost the race for the port we picked: pick another
PORT_TAKEN = re.compile(r"could not bind|could not create any TCP/IP sockets|Address already in use")


class PgUnavailable(RuntimeError):
    """The PostgreSQL server programs (or psycopg) are not installed here."""


class PgClusterError(RuntimeError):
    """The server could not be set up, started or stopped; the message carries the server's own words."""


def _version_key(bindir: Path) -> tuple[int, ...]:
    """/usr/lib/postgresql/9.6/bin -> (9, 6); 17 sorts above 9.6, which a string sort gets wrong."""
    parts = bindir.parent.name.split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else (-1,)


def find_binaries(root: Path = Path("/usr/lib/postgresql")) -> dict[str, Path]:
    """The paths of initdb, pg_ctl and postgres, or PgUnavailable saying where we looked."""
    for bindir in sorted(root.glob("*/bin"), key=_version_key, reverse=True):
        tools = {t: bindir / t for t in TOOLS}
        if all(p.is_file() and os.access(p, os.X_OK) for p in tools.values()):
            return tools
    found = {t: shutil.which(t) for t in TOOLS}
    if all(found.values()):
        return {t: Path(p) for t, p in found.items() if p}
    missing = ", ".join(t for t, p in found.items() if not p)
    raise PgUnavailable(f"PostgreSQL server programs not found: no {root}/*/bin with {', '.join(TOOLS)}, and no "
                        f"{missing} on PATH. On Debian: apt-get install postgresql (.ci/run does this)")


def load_psycopg():
    try:
        import psycopg
        from psycopg import sql
    except ImportError as e:
        raise PgUnavailable(f"psycopg 3 is not installed ({e}); pip install -e '.[dev]' or '.[team]'") from e
    return psycopg, sql


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _live_pid(pid: int) -> bool:
    """True for a running process; a zombie (PID 1 here reaps slowly) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return True  # no /proc (not Linux): trust kill(0)
    return fields[0] not in ("Z", "X")


class PgCluster:
    """One throwaway server. start() runs initdb the first time; the port is kept across stop/start/restart/kill so
    a URL handed out stays valid."""

    def __init__(self, fast: bool = True, max_connections: int = 300, binaries: dict[str, Path] | None = None):
        self.fast = fast
        self.max_connections = max_connections
        self.bins = binaries if binaries is not None else find_binaries()
        self.folder: Path | None = None
        self.port: int | None = None
        self.server_version = 0  # server_version_num, once started
        self._as: list[str] = []
        self._owner: tuple[int, int] | None = None
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                raise PgClusterError("running as root, postgres must run as another user, but runuser "
                                     "(util-linux) is not installed")
            try:
                pw = pwd.getpwnam(RUN_AS)
            except KeyError:
                raise PgClusterError(f"running as root, postgres must run as user {RUN_AS!r}, "
                                     f"which does not exist here") from None
            self._as = ["runuser", "-u", RUN_AS, "--"]
            self._owner = (pw.pw_uid, pw.pw_gid)

    # -- paths ---------------------------------------------------------------------------------------------------
    @property
    def data(self) -> Path:
        if self.folder is None:
            raise PgClusterError("the cluster was never started (or was removed)")
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.data.parent / "server.log"

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [*self._as, str(self.bins[tool]), *args]
        # cwd: the server user may not be able to enter ours (/root); PG* variables would override what we pass
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C.UTF-8", LANG="C.UTF-8")
        done = subprocess.run(cmd, cwd=self.data.parent, env=env, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise PgClusterError(f"{tool} {' '.join(args[:2])} failed ({done.returncode}): "
                                 f"{(done.stderr or done.stdout).strip()}\n{self._log_tail()}")
        return done

    def _log_tail(self, since: int = 0, lines: int = 15) -> str:
        try:
            with open(self.log, "rb") as f:
                f.seek(since)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "server log:\n" + "\n".join(text.splitlines()[-lines:]) if text.strip() else ""

    # -- life cycle ----------------------------------------------------------------------------------------------
    def _init(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="segstudio-pg-"))
        if self._owner is not None:
            self._check_reachable(self.folder)
            os.chown(self.folder, *self._owner)
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-sync")
        settings = {"listen_addresses": "'127.0.0.1'", "unix_socket_directories": "''",
                    "max_connections": str(self.max_connections)}
        if self.fast:
            settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as f:  # root appends; owner stays nobody
            f.write("\n# tests/pg_cluster.py\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))

    def _check_reachable(self, folder: Path) -> None:
        for parent in folder.parents:
            if not parent.stat().st_mode & 0o001:
                raise PgClusterError(f"{RUN_AS} cannot enter {parent} (mode {parent.stat().st_mode & 0o777:o}), "
                                     f"so the server cannot use {folder}: point TMPDIR at a folder others can reach")

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        pid = self._postmaster_pid() if self.folder is not None else None
        return pid is not None and _live_pid(pid)

    def start(self) -> PgCluster:
        if self.folder is None:
            self._init()
        if self.running():
            return self
        self._forget_dead_server()
        ports = [self.port] if self.port is not None else [_free_port() for _ in range(PORT_TRIES)]
        for n, port in enumerate(ports, 1):
            since = self.log.stat().st_size if self.log.exists() else 0
            done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                             "-o", f"-p {port}", "start", check=False)
            if done.returncode == 0:
                self.port = port
                self.server_version = self._query_version()
                return self
            tail = self._log_tail(since)
            if not PORT_TAKEN.search(tail) or n == len(ports):
                why = "port taken" if PORT_TAKEN.search(tail) else "not a port clash"
                raise PgClusterError(f"pg_ctl start failed on 127.0.0.1:{port} ({why}, try {n} of {len(ports)}): "
                                     f"{(done.stderr or done.stdout).strip()}\n{tail}")
        raise AssertionError("unreachable")

    def _forget_dead_server(self) -> None:
        """After kill(), a stale postmaster.pid whose pid is a zombie makes postgres think a server still runs."""
        pid = self._postmaster_pid()
        if pid is not None and not _live_pid(pid):
            self._wait_backends_gone()
            (self.data / "postmaster.pid").unlink(missing_ok=True)

    def _wait_backends_gone(self, timeout: float = 15.0) -> None:
        """Orphaned backends of a killed postmaster still hold its shared memory, and a new postmaster refuses to
        start beside them; they notice their parent's death and exit within moments. Their cwd is the data folder."""
        if not Path("/proc").is_dir():
            time.sleep(0.5)
            return
        data = str(self.data.resolve())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = []
            for p in Path("/proc").iterdir():
                if p.name.isdigit():
                    try:
                        if os.readlink(p / "cwd") == data:
                            left.append(p.name)
                    except OSError:
                        pass
            if not left:
                return
            time.sleep(0.05)
        raise PgClusterError(f"processes {', '.join(left)} of a killed server are still in {data}")

    def _query_version(self) -> int:
        psycopg, _ = load_psycopg()
        with psycopg.connect(self.url(), connect_timeout=10) as c:
            row = c.execute("SELECT current_setting('server_version_num')::int").fetchone()
        version = int(row[0]) if row else 0
        if version < MIN_SERVER_VERSION * 10000:
            self.stop("immediate")
            raise PgClusterError(f"PostgreSQL {version} is too old: the tests need {MIN_SERVER_VERSION} or newer")
        return version

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (mode: smart, fast or immediate); nothing happens when it is not running."""
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"stop mode must be smart, fast or immediate, not {mode!r}")
        if self.running():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode: str = "fast") -> None:
        """Stop and start on the same port: every open connection breaks, new ones work (pg_ctl -w waits)."""
        self.stop(mode)
        self.start()

    def kill(self) -> int:
        """SIGKILL the postmaster, as a crash would; start() brings it back (with crash recovery). Returns its pid."""
        pid = self._postmaster_pid()
        if pid is None or not _live_pid(pid):
            raise PgClusterError("kill(): the server is not running")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _live_pid(pid):
            if time.monotonic() > deadline:
                raise PgClusterError(f"postmaster {pid} survived SIGKILL for 10 s")
            time.sleep(0.01)
        return pid

    def remove(self) -> None:
        """Stop the server at once and delete its folder; safe to call twice."""
        if self.folder is None:
            return
        try:
            if self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> PgCluster:
        try:
            return self.start()
        except BaseException:
            self.remove()
            raise

    def __exit__(self, *exc) -> None:
        self.remove()

    # -- databases -----------------------------------------------------------------------------------------------
    def url(self, dbname: str = "postgres", user: str = SUPERUSER) -> str:
        if self.port is None:
            raise PgClusterError("the server has no port yet: call start() first")
        return f"postgresql://{quote(user, safe='')}@127.0.0.1:{self.port}/{quote(dbname, safe='')}"

    def create_database(self, name: str) -> str:
        """CREATE DATABASE name (the name is bound as an identifier, never formatted in); returns its URL."""
        psycopg, sql = load_psycopg()
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as c:
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE ... WITH (FORCE): connections a test left open (listeners) are ended, not waited for."""
        psycopg, sql = load_psycopg()
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def serve(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="a throwaway PostgreSQL server on 127.0.0.1 until Ctrl+C / SIGTERM")
    ap.add_argument("--serve", action="store_true", required=True, help="start, print the URL, wait, clean up")
    ap.add_argument("--durable", action="store_true", help="keep fsync/synchronous_commit on (benchmarks)")
    ap.add_argument("--database", metavar="NAME", help="also create this database and print its URL instead")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM cleans up like Ctrl+C
    try:
        with PgCluster(fast=not args.durable) as cluster:
            url = cluster.create_database(args.database) if args.database else cluster.url()
            print(url, flush=True)
            print(f"serving from {cluster.folder} ({'durable' if args.durable else 'fsync off'}); "
                  f"Ctrl+C or SIGTERM stops and removes it", file=sys.stderr, flush=True)
            while True:
                signal.pause()
    except KeyboardInterrupt:
        return 0
    except (PgUnavailable, PgClusterError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(serve())
