"""team_load's checks and figures, from what the clients logged, what their listeners saw, what the
claims watcher sampled and what the database holds at the end. Pure functions over plain data (the
smoke test feeds them by hand too).

- Lost commits: every region a client logged as committed ("ok") must be in the database, on that image,
  with the content it logged last, or with the content of an edit it began after that (an "intent" whose
  commit was cut off by a kill, a restart or the end: its outcome is unknown, both are right); a region
  it logged as deleted must be absent. Region ids are never shared between clients (each reserves its
  own block), so a client's log alone says what its regions must be. Each logged "done" and review must
  have its history row (written in the same transaction as the change).
- Claimed twice: the watcher's samples of the live claims (by the server's clock) never show two owners
  on one image; and from history, each region save's latest claim row on its image is the writer's own
  (another login claiming the image in between means the writer no longer held it).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def read_log(path: Path) -> list[dict]:
    """A client's log; a last line torn by a SIGKILL is left out."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def read_events(path: Path) -> list[tuple[float, str, int]]:
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 3:
            try:
                out.append((float(parts[0]), parts[1], int(parts[2])))
            except ValueError:
                continue
    return out


def pct(values, q: float) -> float | None:
    return float(np.percentile(np.asarray(values, float), q)) if len(values) else None


# ---------------------------------------------------------------------------- lost commits
def expected_regions(log: list[dict]) -> tuple[dict[int, tuple[int, set]], int]:
    """Region id -> (image, the states it may be in: ("up", hash) / ("del",)) for every region this
    client committed at least once; and how many region-changing commits it logged as ok."""
    maybe: dict[int, set] = {}
    image: dict[int, int] = {}
    confirmed: set[int] = set()
    commits = 0
    for rec in log:
        if rec["ev"] not in ("intent", "ok"):
            continue
        states = {int(k): ("up", v) for k, v in rec["up"].items()}
        states.update({int(d): ("del",) for d in rec["de"]})
        for rid, state in states.items():
            image[rid] = rec["img"]
            if rec["ev"] == "ok":
                maybe[rid] = {state}
                confirmed.add(rid)
            else:
                maybe.setdefault(rid, set()).add(state)
        if rec["ev"] == "ok" and states:
            commits += 1
    return {rid: (image[rid], maybe[rid]) for rid in confirmed}, commits


def lost_commits(logs: dict[str, list[dict]], db_regions: dict[int, tuple[int, str]]) -> dict:
    """db_regions: region id -> (image id, content hash). Returns counts and a few examples per client."""
    out = {"commits": 0, "regions": 0, "lost": 0, "examples": [], "per_client": {}}
    for key, log in logs.items():
        want, commits = expected_regions(log)
        lost = []
        for rid, (img, states) in want.items():
            got = db_regions.get(rid)
            actual = ("del",) if got is None else ("up", got[1])
            if actual not in states or (got is not None and got[0] != img):
                lost.append({"region": rid, "image": img, "expected": sorted(map(list, states)),
                             "found": None if got is None else list(got)})
        out["commits"] += commits
        out["regions"] += len(want)
        out["lost"] += len(lost)
        out["examples"] += [dict(client=key, **x) for x in lost[:3]]
        out["per_client"][key] = {"commits": commits, "regions": len(want), "lost": len(lost)}
    return out


def lost_statuses(logs: dict[str, list[dict]], users: dict[str, str], history: list[tuple]) -> dict:
    """Every logged 'done' and review has its history row. history rows: (image, who, at, what, detail)."""
    have_done = {(img, who) for img, who, _, what, d in history if what == "status" and d.get("to") == "done"}
    have_review = {(img, who, bool(d.get("accepted"))) for img, who, _, what, d in history if what == "review"}
    done = missing_done = reviews = missing_review = 0
    for key, log in logs.items():
        who = users[key]
        for rec in log:
            if rec["ev"] == "ok" and rec.get("st") == "done":
                done += 1
                missing_done += (rec["img"], who) not in have_done
            elif rec["ev"] == "review":
                reviews += 1
                missing_review += (rec["img"], who, bool(rec["accept"])) not in have_review
    return {"done": done, "done_missing": missing_done, "reviews": reviews, "reviews_missing": missing_review}


# ---------------------------------------------------------------------------- claims
def double_claims(samples: list[tuple[float, dict[int, list[str]]]]) -> dict:
    """samples: (time, image -> live owners) as the watcher read them (one query each, server clock)."""
    bad = [(t, img, owners) for t, claims in samples for img, owners in claims.items() if len(set(owners)) > 1]
    return {"samples": len(samples), "claims_seen": sum(len(c) for _, c in samples), "double": len(bad),
            "examples": [{"t": t, "image": img, "owners": o} for t, img, o in bad[:3]]}


def writes_outside_claims(history: list[tuple]) -> dict:
    """Each 'regions' history row: the latest 'claim' row on its image at or before it is by the same
    login (who and at are stamped by the server's trigger for every login but the owner's)."""
    claims: dict[int, list[tuple[float, str]]] = defaultdict(list)
    for img, who, at, what, _ in history:
        if what == "claim":
            claims[img].append((at, who))
    for v in claims.values():
        v.sort()
    checked, bad, unclaimed = 0, [], 0
    for img, who, at, what, _ in history:
        if what != "regions":
            continue
        checked += 1
        rows = claims.get(img, [])
        k = int(np.searchsorted(np.asarray([a for a, _ in rows], float), at, side="right")) - 1
        if k < 0:
            unclaimed += 1
            bad.append({"image": img, "who": who, "at": at, "last_claim": None})
        elif rows[k][1] != who:
            bad.append({"image": img, "who": who, "at": at, "last_claim": list(rows[k])})
    return {"regions_rows": checked, "outside": len(bad), "never_claimed": unclaimed, "examples": bad[:3]}


# ---------------------------------------------------------------------------- figures
def commit_figures(logs: dict[str, list[dict]], t0: float, t1: float) -> dict:
    """Commits that finished in [t0, t1): how many, per second, and their latency (ms)."""
    lat = [(r["t1"] - r["t0"]) * 1000 for log in logs.values() for r in log
           if r["ev"] == "ok" and t0 <= r["t1"] < t1]
    errors = sum(1 for log in logs.values() for r in log if r["ev"] == "error" and t0 <= r["t"] < t1)
    return {"commits": len(lat), "seconds": t1 - t0, "per_s": len(lat) / max(t1 - t0, 1e-9),
            "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": max(lat) if lat else None,
            "errors": errors}


def seen_latency(logs: dict[str, list[dict]], events: dict[str, list[tuple[float, str, int]]],
                 t0: float, t1: float, late_s: float = 2.0) -> dict:
    """For each region-changing commit sent in [t0, t1) and each other client listening then: the time
    from the writer sending it (save_regions called) to that client's listener receiving its 'regions'
    event. Events on an image come in commit order, one per transaction, so the k-th commit on an image
    is matched to the first unused event on that image after it was sent. A commit that no event answers
    counts as never seen (above any target)."""
    commits = sorted((r["t0"], r["img"], key) for key, log in logs.items() for r in log
                     if r["ev"] == "ok" and (r["up"] or r["de"]))
    by_image: dict[int, list[tuple[float, str]]] = defaultdict(list)
    for t, img, key in commits:
        by_image[img].append((t, key))
    since = {key: next((r["t"] for r in log if r["ev"] == "listening"), None) for key, log in logs.items()}
    ends = {key: next((r["t"] for r in reversed(log) if r["ev"] in ("stop", "ok")), None) for key, log in logs.items()}
    lat: list[float] = []
    unseen = 0
    for obs, evs in events.items():
        start, end = since.get(obs), ends.get(obs)
        if start is None or end is None:
            continue
        times: dict[int, list[float]] = defaultdict(list)
        for t, kind, img in evs:
            if kind == "regions":
                times[img].append(t)
        for img, cs in by_image.items():
            ev = np.asarray(times.get(img, []), float)
            j = 0
            for t, key in cs:
                j = max(j, int(np.searchsorted(ev, t)))
                hit = ev[j] if j < len(ev) else None
                j += hit is not None
                if key == obs or not (t0 <= t < t1) or t < start or t > end - late_s:
                    continue
                if hit is None:
                    unseen += 1
                else:
                    lat.append(hit - t)
    over = sum(v > late_s for v in lat) + unseen
    return {"pairs": len(lat) + unseen, "unseen": unseen, "p50_s": pct(lat, 50), "p99_s": pct(lat, 99),
            "max_s": max(lat) if lat else None, "over_target": int(over)}


# ---------------------------------------------------------------------------- faults
def held_at(log: list[dict], t: float) -> int | None:
    held = None
    for r in log:
        if r["t"] > t:
            break
        if r["ev"] == "claim" and not r.get("review"):
            held = r["img"]
        elif r["ev"] in ("release", "lost_claim", "refused") and r.get("img") == held:
            held = None
    return held


def kill_checks(kills: list[dict], logs: dict[str, list[dict]], samples, ttl: float, end: float) -> list[dict]:
    """Per kill: when the killed owner's claims stopped showing as live, and whether the image it held
    was claimed by another client afterwards."""
    out = []
    for k in kills:
        log = logs.get(k["client"], [])
        owner = next((r["owner"] for r in log if r["ev"] == "start"), None)
        last_live = max((t for t, claims in samples if any(owner in o for o in claims.values())), default=None)
        held = held_at(log, k["t"])
        taken = None
        if held is not None:
            taken = min((r["t"] for key, lg in logs.items() if key != k["client"] for r in lg
                         if r["ev"] == "claim" and r["img"] == held and r["t"] > k["t"]), default=None)
        freed_after = None if last_live is None else max(0.0, last_live - k["t"])
        observable = end - k["t"] > ttl + 5
        ok = (freed_after is None or freed_after <= ttl + 1.0) and \
            (held is None or not observable or taken is not None)
        out.append({"client": k["client"], "t": k["t"], "held": held, "claim_live_after_s": freed_after,
                    "taken_over_after_s": None if taken is None else taken - k["t"], "ok": bool(ok)})
    return out


def recovery(logs: dict[str, list[dict]], keys, t_down: float, t_up: float, limit_s: float) -> dict:
    """Each client: did it say 'reconnecting' around the fault, and when did it commit again."""
    per = {}
    for key in keys:
        log = logs[key]
        said = sum(1 for r in log if r["ev"] == "error" and r.get("reconnecting") and t_down - 1 <= r["t"])
        first_ok = next((r["t1"] for r in log if r["ev"] == "ok" and r["t1"] > t_up), None)
        per[key] = {"reconnecting": said, "commits_again_after_s": None if first_ok is None else first_ok - t_up}
    worst = max((v["commits_again_after_s"] for v in per.values() if v["commits_again_after_s"] is not None),
                default=None)
    ok = all(v["commits_again_after_s"] is not None and v["commits_again_after_s"] <= limit_s
             and v["reconnecting"] > 0 for v in per.values())
    return {"clients": per, "worst_s": worst, "ok": bool(ok and per)}
