"""A team on one PostgreSQL project, under load and faults (issue 27).

    python benchmarks/team_load.py [--store postgresql://USER@HOST:PORT/DB] [--clients 8] [--seconds 180]
                                   [--fault-seconds 40] [--ttl 5] [--rate 10] [--json OUT]

Without --store it starts its own throwaway server (tests/pg_cluster.py) with the server's durable
defaults (fsync and synchronous_commit on): "nothing was lost" after a kill or a restart means
something only then. With --store the database must be empty; the server restart phase is skipped
(this script cannot restart a server it did not start).

The project: N images in the images table (store.sync_files: the clients never read pixels), three
classes, review on. Then `--clients` annotator PROCESSES (multiprocessing, spawn; benchmarks/
_team_client.py), each a PostgresStore client with its own claim owner and, where this script may
create roles, its own login (a member of the team's annotator or, for every fourth client, reviewer
role): the server then stamps history with who wrote each row and enforces "regions only on an image
you hold" itself (row-level security). Each claims the next unclaimed unfinished image, commits brush
strokes and region edits at `--rate` commits/s, marks the image done after 20-40 commits, releases it;
reviewers also accept or return done images. Claims last `--ttl` seconds (5 s here, against the
window's 60 s, so a killed client's images come free within the run) and are renewed every second.

Phases, one after the other, the clients running throughout:
  load     `--seconds`: commits/s, commit latency, time until another client sees a change.
  kill     SIGKILL clients at random moments (a fresh one replaces each): their committed work is
           all there, their claims lapse within the ttl, others take the images they held.
  restart  the server restarts (pg_ctl restart -m fast): clients say "reconnecting", send their
           unsaved edit again (same region ids: idempotent upserts), commit again, lose nothing.
  netcut   client 0 talks to the server through a loopback proxy, which closes every socket and
           refuses connections for `--cut-seconds`, then opens again: the same checks.
At the end: zero lost commits, zero images claimed twice, zero regions written where the writer held
no claim (see _team_checks.py for how each is verified). Exit 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import _team_checks as checks  # noqa: E402
import _team_client  # noqa: E402
from _team_proxy import CutProxy  # noqa: E402

SEEN_TARGET_S = 2.0
RECOVER_TARGET_S = 15.0  # a client commits again this soon after the server (or the network) is back
RATE_SHARE = 0.9  # commits/s under load: at least this share of what the clients offer


class Run:
    """The server, the project, the clients and the watcher of one benchmark run."""

    def __init__(self, args, out: Path, cluster=None):
        self.args, self.out = args, out
        self.cluster, self.own_cluster = cluster, cluster is None and not args.store
        self.roles_ok = False
        self.role_prefix = f"tl{uuid.uuid4().hex[:6]}"
        self.procs: dict[str, mp.process.BaseProcess] = {}
        self.meta: dict[str, dict] = {}
        self.gen = [0] * args.clients
        self.current: list[str] = [""] * args.clients
        self.samples: list[tuple[float, dict[int, list[str]]]] = []
        self.stop_watch = threading.Event()
        self.ctx = mp.get_context("spawn")
        self.phases: dict[str, tuple[float, float]] = {}
        self.kills: list[dict] = []
        self.faults: dict[str, dict] = {}

    # ------------------------------------------------------------------ server and project
    def setup(self) -> None:
        import psycopg
        from psycopg import conninfo as ci
        if self.args.store:
            self.admin_url = self.args.store
        else:
            if self.cluster is None:
                from tests.pg_cluster import PgCluster
                self.cluster = PgCluster(fast=False).start()
            self.admin_url = self.cluster.create_database(f"team_load_{uuid.uuid4().hex[:8]}")
        from segstudio.core.store import pg_schema
        from segstudio.core.store.postgres import PostgresStore
        self.admin = PostgresStore(self.admin_url, root=self.out / "images")
        if self.admin.image_count(include_missing=True):
            raise SystemExit(f"error: {self.admin.location} already holds a project; give an empty database")
        (self.out / "images").mkdir(exist_ok=True)
        self.admin.sync_files([f"img_{i:05d}.png" for i in range(self.args.images)])
        for name in ("cell", "nucleus", "debris"):
            self.admin.add_class(name)
        self.admin.set_review_enabled(True)
        self.raw = psycopg.connect(self.admin.conninfo, autocommit=True)
        row = self.raw.execute("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = session_user").fetchone()
        self.roles_ok = bool(row and row[0])
        if self.roles_ok:
            pg_schema.setup_roles(self.admin.conn)
        self.base = ci.conninfo_to_dict(self.admin_url)
        self.make_conninfo = ci.make_conninfo

    def client_url(self, slot: int, role: str | None, port: int | None) -> str:
        extra = {}
        if role:
            extra["user"] = role
        if port:
            extra.update(host="127.0.0.1", port=str(port))
        return self.make_conninfo(self.admin_url, **extra) if extra else self.admin_url

    def new_role(self, slot: int, gen: int) -> str | None:
        if not self.roles_ok:
            return None
        from psycopg import sql

        from segstudio.core.store import pg_schema
        name = f"{self.role_prefix}_c{slot}_{gen}"
        group = "reviewer" if self.is_reviewer(slot) else "annotator"
        self.raw.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        pg_schema.add_member(self.admin.conn, name, group)
        return name

    def is_reviewer(self, slot: int) -> bool:
        return slot % 4 == 3 or (self.args.clients < 4 and slot == self.args.clients - 1)

    # ------------------------------------------------------------------ clients
    def spawn(self, slot: int) -> None:
        gen = self.gen[slot]
        self.gen[slot] += 1
        key = f"c{slot}g{gen}"
        role = self.new_role(slot, gen)
        port = self.proxy.port if slot == 0 else None
        cfg = dict(url=self.client_url(slot, role, port), slot=slot, seed=hash((slot, gen)) & 0xFFFF,
                   log=str(self.out / f"{key}.log"), events=str(self.out / f"{key}.events"),
                   stop_at=self.end, ttl=self.args.ttl, rate=self.args.rate, reviewer=self.is_reviewer(slot))
        p = self.ctx.Process(target=_team_client.main, args=(cfg,), name=key, daemon=True)
        p.start()
        self.procs[key] = p
        self.meta[key] = {"slot": slot, "role": role, "pid": p.pid, "spawned": time.time()}
        self.current[slot] = key

    def kill(self, slot: int) -> None:
        key = self.current[slot]
        p = self.procs[key]
        os.kill(p.pid, signal.SIGKILL)
        p.join(5)
        t = time.time()
        self.meta[key]["killed"] = t
        self.kills.append({"client": key, "t": t})
        print(f"  killed {key} (pid {p.pid}) at +{t - self.t_start:.1f} s", flush=True)

    def watch(self) -> None:
        """Sample the live claims (by the server's clock) until told to stop."""
        import psycopg
        conn = None
        while not self.stop_watch.is_set():
            try:
                if conn is None or conn.closed or conn.broken:
                    conn = psycopg.connect(self.admin.conninfo, autocommit=True)
                rows = conn.execute("SELECT image_id, owner FROM claims "
                                    "WHERE expires > EXTRACT(EPOCH FROM clock_timestamp())").fetchall()
                claims: dict[int, list[str]] = {}
                for img, owner in rows:
                    claims.setdefault(int(img), []).append(owner)
                self.samples.append((time.time(), claims))
            except psycopg.Error:
                conn = None  # the restart phase: sample again once the server is back
                time.sleep(0.1)
            self.stop_watch.wait(self.args.sample_every)
        if conn is not None:
            conn.close()

    # ------------------------------------------------------------------ the run
    def run(self) -> None:
        a = self.args
        target = (self.base.get("host") or "127.0.0.1", int(self.base.get("port") or 5432))
        self.proxy = CutProxy(target)
        skip = set(a.skip)
        if self.cluster is None:  # --store: a server this script did not start, so cannot restart
            skip.add("restart")
            self.faults["restart"] = {"skipped": "--store given: this script cannot restart that server"}
        plan = [("load", a.seconds)] + [(f, a.fault_seconds) for f in ("kill", "restart", "netcut") if f not in skip]
        total = sum(s for _, s in plan)
        self.t_start = time.time() + 3  # the clients' spawn and connect happen before the clock starts
        self.end = self.t_start + total
        for slot in range(a.clients):
            self.spawn(slot)
        watcher = threading.Thread(target=self.watch, daemon=True)
        watcher.start()
        rng = random.Random(a.seed)
        t = self.t_start
        time.sleep(max(0.0, self.t_start - time.time()))
        for name, seconds in plan:
            self.phases[name] = (t, t + seconds)
            print(f"phase {name}: {seconds:.0f} s", flush=True)
            getattr(self, f"phase_{name}")(t, t + seconds, rng)
            _sleep_until(t + seconds)
            t += seconds
        for p in self.procs.values():
            p.join(30)
        self.stop_watch.set()
        watcher.join(5)
        self.proxy.close()

    def phase_load(self, t0, t1, rng) -> None:
        pass

    def phase_kill(self, t0, t1, rng) -> None:
        """SIGKILL at random moments in the phase's first half (so the ttl's expiry and the takeover are
        seen before its end); a fresh client replaces each a second later."""
        n = self.args.kills
        span = (t1 - t0) / 2
        moments = sorted(t0 + rng.uniform(0.1, 1.0) * span for _ in range(n))
        slots = list(range(1, self.args.clients)) or [0]
        for m in moments:
            _sleep_until(m)
            slot = rng.choice(slots)
            self.kill(slot)
            time.sleep(1.0)
            self.spawn(slot)

    def phase_restart(self, t0, t1, rng) -> None:
        _sleep_until(t0 + (t1 - t0) / 3)
        down = time.time()
        self.cluster.restart("fast")
        up = time.time()
        print(f"  server restarted in {up - down:.2f} s", flush=True)
        self.faults["restart"] = {"down": down, "up": up}

    def phase_netcut(self, t0, t1, rng) -> None:
        _sleep_until(t0 + (t1 - t0) / 3)
        down = time.time()
        self.proxy.cut()
        time.sleep(self.args.cut_seconds)
        self.proxy.reopen()
        up = time.time()
        print(f"  client 0's connection cut for {up - down:.1f} s", flush=True)
        self.faults["netcut"] = {"down": down, "up": up, "client": self.current[0]}

    # ------------------------------------------------------------------ results
    def database_state(self):
        from segstudio.core.store.postgres import PostgresStore
        store = PostgresStore(self.admin_url, create=False)
        regions = {}
        cols, rows = store.table_rows("regions")
        at = [cols.index(c) for c in ("id", "image_id", "class_id", "x", "y", "w", "h", "rle")]
        for row in rows:
            rid, img, cls, x, y, w, h, rle = (row[k] for k in at)
            regions[int(rid)] = (int(img), _team_client.row_hash(cls, x, y, w, h, bytes(rle)))
        history = [(e.image_id, e.who, e.at, e.what, e.detail) for e in store.history()]
        statuses = store.status_counts()
        reviews = store.review_counts()
        store.close()
        return regions, history, statuses, reviews

    def close(self) -> None:
        for p in self.procs.values():
            if p.is_alive():
                p.kill()
        try:
            self.admin.close()
            self.raw.close()
        except Exception:  # noqa: BLE001 - teardown of a server that may be gone
            pass
        if self.own_cluster and self.cluster is not None:
            self.cluster.remove()
        elif self.roles_ok:
            self.drop_roles()

    def drop_roles(self) -> None:
        """The login roles made on someone else's server go again (their database stays: it is theirs)."""
        import psycopg
        from psycopg import sql
        with psycopg.connect(self.admin.conninfo, autocommit=True) as c:
            for m in self.meta.values():
                if m.get("role"):
                    c.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(m["role"])))
                    c.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(m["role"])))


def _sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.time()))


def evaluate(run: Run) -> dict:
    a = run.args
    logs = {k: checks.read_log(run.out / f"{k}.log") for k in run.meta}
    events = {k: checks.read_events(run.out / f"{k}.events") for k in run.meta if (run.out / f"{k}.events").exists()}
    users = {k: next((r["user"] for r in log if r["ev"] == "start"), "?") for k, log in logs.items()}
    regions, history, statuses, reviews = run.database_state()
    res: dict = {"clients": a.clients, "seconds": a.seconds, "fault_seconds": a.fault_seconds, "ttl_s": a.ttl,
                 "rate_per_client": a.rate, "images": a.images, "logins": "one per client" if run.roles_ok else
                 "one for all clients (no CREATEROLE): history cannot tell clients apart",
                 "server": ("throwaway, fsync " + ("off" if run.cluster.fast else "on")) if run.cluster else "--store",
                 "cpus": os.cpu_count(),
                 "statuses": statuses, "reviews": reviews, "fatal": {k: r["msg"] for k, log in logs.items()
                                                                     for r in log if r["ev"] == "fatal"}}
    for name, (t0, t1) in run.phases.items():
        res[f"{name}_commits"] = checks.commit_figures(logs, t0, t1)
    t0, t1 = run.phases["load"]
    res["seen"] = checks.seen_latency(logs, events, t0, t1, SEEN_TARGET_S)
    res["lost"] = checks.lost_commits(logs, regions)
    res["lost_status"] = checks.lost_statuses(logs, users, history)
    res["double_claims"] = checks.double_claims(run.samples)
    res["outside_claims"] = checks.writes_outside_claims(history) if run.roles_ok else \
        {"skipped": "one login for all clients: history cannot tell the writer from the holder"}
    res["refused"] = sum(1 for log in logs.values() for r in log if r["ev"] == "refused")
    res["races"] = sum(1 for log in logs.values() for r in log if r["ev"] == "race")
    res["resent"] = resent(logs)
    if "kill" in run.phases:
        res["kills"] = checks.kill_checks(run.kills, logs, run.samples, a.ttl, run.end)
        killed = {k["client"] for k in run.kills}
        res["killed_lost"] = sum(res["lost"]["per_client"][k]["lost"] for k in killed)
        res["killed_commits"] = sum(res["lost"]["per_client"][k]["commits"] for k in killed)
    for name in ("restart", "netcut"):
        f = run.faults.get(name)
        if f and "down" in f:
            keys = [k for k, m in run.meta.items() if m["spawned"] < f["down"] and "killed" not in m]
            if name == "netcut":
                keys = [f["client"]]
            f.update(checks.recovery(logs, keys, f["down"], f["up"], RECOVER_TARGET_S))
            backs = [min((t for t, kind, _ in events.get(k, []) if kind == "back" and t >= f["down"]), default=None)
                     for k in keys]
            f["listeners"] = len(keys)
            f["listeners_back"] = sum(b is not None for b in backs)
            f["listeners_back_after_s"] = max((b - f["up"] for b in backs if b is not None), default=None)
        if f:
            res[name] = f
    return res


def resent(logs: dict[str, list[dict]]) -> dict:
    """Edits whose commit failed (a lost connection) and that were sent again, same ids, until committed."""
    sent_again = committed = 0
    for log in logs.values():
        tries: dict[int, int] = {}
        for r in log:
            if r["ev"] == "intent":
                tries[r["seq"]] = tries.get(r["seq"], 0) + 1
            elif r["ev"] == "ok" and tries.get(r["seq"], 0) > 1:
                committed += 1
        sent_again += sum(1 for n in tries.values() if n > 1)
    return {"edits_sent_again": sent_again, "then_committed": committed}


def table(run: Run, res: dict) -> list[tuple[str, str, str, bool | None]]:
    """(what, measured, target, met) rows; met None where the issue sets no target."""
    a, rows = run.args, []
    load = res["load_commits"]
    offered = a.clients * a.rate
    rows.append(("load: commits/s (all clients)", f"{load['per_s']:.1f}", f">= {RATE_SHARE * offered:.0f} "
                 f"({a.clients} x {a.rate:g}/s offered)", load["per_s"] >= RATE_SHARE * offered))
    rows.append(("load: commit latency p50 / p99 / max", _ms(load), "none set (a stroke every "
                 f"{1000 / a.rate:.0f} ms)", None))
    s = res["seen"]
    rows.append((f"load: change seen by another client p50 / p99 / max ({s['pairs']} pairs)",
                 "/".join(_s(s[k]) for k in ("p50_s", "p99_s", "max_s")),
                 f"all <= {SEEN_TARGET_S:g} s", s["pairs"] > 0 and s["over_target"] == 0))
    lost = res["lost"]
    rows.append((f"lost commits ({lost['commits']} commits, {lost['regions']} regions checked)",
                 str(lost["lost"]), "0", lost["lost"] == 0))
    ls = res["lost_status"]
    rows.append((f"lost done/review commits ({ls['done']} done, {ls['reviews']} reviews)",
                 str(ls["done_missing"] + ls["reviews_missing"]), "0",
                 ls["done_missing"] + ls["reviews_missing"] == 0))
    d = res["double_claims"]
    rows.append((f"images claimed twice ({d['samples']} watcher samples, {d['claims_seen']} live claims)",
                 str(d["double"]), "0", d["double"] == 0))
    o = res["outside_claims"]
    if "skipped" in o:
        rows.append(("regions written where the writer held no claim", "not checked", o["skipped"], None))
    else:
        rows.append((f"regions written where the writer held no claim ({o['regions_rows']} history rows)",
                     str(o["outside"]), "0", o["outside"] == 0))
    for name in ("kill", "restart", "netcut"):
        if f"{name}_commits" in res:
            c = res[f"{name}_commits"]
            rows.append((f"{name}: commits/s, p50 / p99 latency", f"{c['per_s']:.1f}, {_ms(c, max_=False)}",
                         "none set", None))
    if "kills" in res:
        ks = res["kills"]
        free = [k["claim_live_after_s"] for k in ks if k["claim_live_after_s"] is not None]
        taken = [k["taken_over_after_s"] for k in ks if k["taken_over_after_s"] is not None]
        rows.append((f"kill: {len(ks)} clients killed; their claims live after the kill (max)",
                     _s(max(free)) if free else "none held", f"<= ttl {a.ttl:g} s + 1", all(k["ok"] for k in ks)))
        rows.append(("kill: images they held taken by others after (max)", _s(max(taken)) if taken else "-",
                     "all, within the phase", all(k["ok"] for k in ks)))
        rows.append((f"kill: killed clients' commits lost ({res['killed_commits']} commits)",
                     str(res["killed_lost"]), "0", res["killed_lost"] == 0))
    for name in ("restart", "netcut"):
        f = res.get(name)
        if not f:
            continue
        if "skipped" in f:
            rows.append((f"{name}", "skipped", f["skipped"], None))
            continue
        said = sum(1 for v in f["clients"].values() if v["reconnecting"])
        rows.append((f"{name}: clients that said 'reconnecting' / committed again (worst after)",
                     f"{said}/{len(f['clients'])}, {_s(f['worst_s'])}",
                     f"all, <= {RECOVER_TARGET_S:g} s", f["ok"]))
        rows.append((f"{name}: clients' listeners heard again (worst after)",
                     f"{f['listeners_back']}/{f['listeners']}, {_s(f['listeners_back_after_s'])}",
                     f"all, <= {RECOVER_TARGET_S:g} s", f["listeners_back"] == f["listeners"] and
                     (f["listeners_back_after_s"] or 0) <= RECOVER_TARGET_S))
    rs = res["resent"]
    rows.append(("edits sent again after a lost connection / then committed", f"{rs['edits_sent_again']} / "
                 f"{rs['then_committed']}", "none set (checked as lost commits above)", None))
    if res["fatal"]:
        rows.append(("clients that gave up", json.dumps(res["fatal"])[:80], "none", False))
    return rows


def _ms(c: dict, max_: bool = True) -> str:
    keys = ("p50_ms", "p99_ms", "max_ms") if max_ else ("p50_ms", "p99_ms")
    return " / ".join("-" if c[k] is None else f"{c[k]:.1f}" for k in keys) + " ms"


def _s(v) -> str:
    return "-" if v is None else f"{v:.3f} s"


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", help="postgresql://USER@HOST:PORT/DB of an empty database (default: own server)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=180, help="the load phase")
    ap.add_argument("--fault-seconds", type=float, default=40, help="each fault phase")
    ap.add_argument("--skip", nargs="*", default=[], choices=["kill", "restart", "netcut"])
    ap.add_argument("--kills", type=int, default=3, help="clients SIGKILLed in the kill phase")
    ap.add_argument("--cut-seconds", type=float, default=3.0)
    ap.add_argument("--ttl", type=float, default=5.0, help="claim lifetime in seconds (the window's is 60)")
    ap.add_argument("--rate", type=float, default=10.0, help="commits per second per client")
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--sample-every", type=float, default=0.1, help="seconds between claim samples")
    ap.add_argument("--seed", type=int, default=27)
    ap.add_argument("--json", type=Path, help="write the figures and checks here")
    ap.add_argument("--keep", type=Path, help="keep the clients' logs in this folder")
    args = ap.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0 or args.fault_seconds <= 0 or args.ttl <= 0 or args.rate <= 0:
        ap.error("--clients, --seconds, --fault-seconds, --ttl and --rate must be positive")
    return args


def main(argv=None, cluster=None) -> int:
    """`cluster`: a started tests.pg_cluster.PgCluster to run on (the smoke test's), else --store or our own."""
    args = parse(argv)
    out = args.keep or Path(tempfile.mkdtemp(prefix="team-load-"))
    out.mkdir(parents=True, exist_ok=True)
    run = Run(args, out, cluster)
    try:
        run.setup()
        print(f"{args.clients} clients on {run.admin.location}, {args.images} images, ttl {args.ttl:g} s, "
              f"{args.rate:g} commits/s each; logs in {out}", flush=True)
        run.run()
        res = evaluate(run)
    finally:
        run.close()
    rows = table(run, res)
    print(f"\n{'what':<86} {'measured':>26}   target")
    for what, value, target, ok in rows:
        mark = "" if ok is None else ("  MET" if ok else "  MISSED")
        print(f"{what:<86} {value:>26}   {target}{mark}")
    res["table"] = [{"what": w, "measured": v, "target": t, "met": ok} for w, v, t, ok in rows]
    res["command"] = " ".join([Path(sys.argv[0]).name] + (sys.argv[1:] if argv is None else list(argv)))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=str))
    missed = [w for w, _, _, ok in rows if ok is False]
    if missed:
        print(f"\nMISSED: {'; '.join(missed)}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
