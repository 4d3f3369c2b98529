"""One annotator process of team_load: a PostgresStore client with a claim owner of its own that claims
images, commits brush strokes and region edits at a fixed pace, marks images done and (a reviewer)
accepts or returns done images. Everything it believes happened goes to its log, one JSON line each,
written before the next step (a SIGKILL loses at most the line of the step under way):

  intent  the edit it is about to commit (ids and content hashes); ok  the same edit, committed;
  claim / release / refused / lost_claim / error / review / listening ... as named.

Its listener (store.listen) writes each event it sees, with the time, to a second file: what the
orchestrator matches against the other clients' commits to measure how fast a change is seen.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from segstudio.core.errors import BadValue  # noqa: E402
from segstudio.core.records import DONE, IN_PROGRESS  # noqa: E402
from segstudio.core.region import Region  # noqa: E402
from segstudio.core.store.api import ClaimedElsewhere, StoreError  # noqa: E402
from segstudio.core.store.rows import region_row  # noqa: E402

SIZE = 256  # the synthetic images' side: strokes land inside it
CLASSES = (1, 2, 3)


def row_hash(class_id, x, y, w, h, rle) -> str:
    """What a region's stored content is, as the checks compare it (its class, box and mask)."""
    return hashlib.sha1(json.dumps([int(class_id), int(x), int(y), int(w), int(h)]).encode()
                        + bytes(rle)).hexdigest()[:16]


def region_hash(image_id: int, r: Region) -> str:
    row = region_row(image_id, r)  # tightens r, as the store will
    return row_hash(row[2], row[3], row[4], row[5], row[6], row[7])


class Log:
    def __init__(self, path: str):
        self.f = open(path, "a", buffering=1, encoding="utf-8")  # one write() per line: a kill keeps whole lines

    def __call__(self, ev: str, **rec) -> None:
        rec.update(ev=ev, t=time.time())
        self.f.write(json.dumps(rec) + "\n")


class Events:
    """The listener's feed, timed on arrival, flushed a few times a second."""

    def __init__(self, path: str):
        self.f = open(path, "a", encoding="utf-8")
        self.lock = threading.Lock()
        self.last_flush = time.monotonic()

    def __call__(self, e: dict) -> None:
        line = f"{time.time():.6f} {e.get('t')} {e.get('id', 0)}\n"
        with self.lock:
            self.f.write(line)
            if time.monotonic() - self.last_flush > 0.2:
                self.f.flush()
                self.last_flush = time.monotonic()


def open_store(url: str, stop_at: float):
    """The project store, trying again while the server is away (a restart, a cut)."""
    from segstudio.core.store.postgres import PostgresStore
    while True:
        try:
            return PostgresStore(url, create=False)
        except StoreError:
            if time.time() > stop_at:
                raise
            time.sleep(0.2)


class Annotator:
    def __init__(self, cfg: dict):
        from segstudio.core.claims import process_owner
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg["seed"])
        self.log = Log(cfg["log"])
        self.stop_at = cfg["stop_at"]
        self.store = open_store(cfg["url"], self.stop_at)
        self.owner = process_owner(self.store.user)
        self.ttl, self.period = cfg["ttl"], 1.0 / cfg["rate"]
        self.held: int | None = None
        self.mine: dict[int, Region] = {}
        self.pending: dict | None = None
        self.left = 0
        self.first = False
        self.last_renew = 0.0
        self.seq = 0
        self.done_since_review = 0
        self.log("start", owner=self.owner, user=self.store.user, pid=os.getpid(), slot=cfg["slot"])
        self.events = Events(cfg["events"])
        self.listener = self.store.listen(self._on_event)

    def _on_event(self, e: dict) -> None:
        self.events(e)

    # ------------------------------------------------------------------ the loop
    def run(self) -> None:
        listening_logged = False
        tick = time.monotonic()
        while time.time() < self.stop_at:
            if not listening_logged and self.listener is not None and self.listener.listening.is_set():
                self.log("listening")
                listening_logged = True
            tick += self.period
            wait = tick - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            elif wait < -self.period:
                tick = time.monotonic()  # fell behind (a reconnect): no burst to catch up
            try:
                self.step()
            except ClaimedElsewhere as e:
                self.log("refused", img=self.held, msg=str(e)[:200])
                self.drop()
            except StoreError as e:
                self.log("error", img=self.held, msg=str(e)[:300], reconnecting="reconnecting" in str(e))
                self.last_renew = 0.0  # make sure the claim still stands before the next write
            except BadValue as e:
                self.log("bad", img=self.held, msg=str(e)[:200])
                self.drop()
        self.log("stop")
        if self.listener is not None:
            self.listener.close()
        self.events.f.flush()

    def drop(self) -> None:
        self.held, self.mine, self.pending = None, {}, None

    def step(self) -> None:
        if self.held is None:
            self.acquire()
            return
        if time.monotonic() - self.last_renew > min(1.0, self.ttl / 4):
            if self.store.renew_claims(self.owner, self.ttl) == 0:
                others = self.store.claim_image(self.held, self.owner, self.ttl)
                if others:
                    self.log("lost_claim", img=self.held, to=others[0])
                    self.drop()
                    return
                self.log("reclaim", img=self.held)
            self.last_renew = time.monotonic()
        if self.left <= 0:
            self.finish()
            return
        if self.pending is None:
            self.pending = self.edit()
        self.commit(self.pending)  # raises on a lost connection: the same edit is sent again next tick
        self.pending = None

    def acquire(self) -> None:
        if self.cfg["reviewer"] and self.done_since_review >= 1 and self.rng.random() < 0.6:
            self.review()
            return
        for _ in range(20):
            img = self.store.next_image(None, skip_claimed=self.owner)
            if img is None:
                return
            others = self.store.claim_image(img.id, self.owner, self.ttl)
            if not others:
                self.log("claim", img=img.id)
                self.held, self.mine, self.pending = img.id, {}, None
                self.left, self.first = int(self.rng.integers(20, 41)), True
                self.last_renew = time.monotonic()
                return
            self.log("race", img=img.id)  # another client claimed it between our read and our claim

    def review(self) -> None:
        img = self.store.next_for_review(None, skip_claimed=self.owner)
        if img is None:
            return
        if self.store.claim_image(img.id, self.owner, self.ttl):
            return
        self.log("claim", img=img.id, review=True)
        accept = bool(self.rng.random() < 0.7)
        self.log("review_intent", img=img.id, accept=accept)
        try:
            self.store.review_image(img.id, accept, "" if accept else "the <b>edges</b> are off; fix 'em")
            self.log("review", img=img.id, accept=accept)
            self.done_since_review = 0
        finally:
            self.store.release_image(img.id, self.owner)
            self.log("release", img=img.id)

    # ------------------------------------------------------------------ edits
    def stroke(self) -> tuple[np.ndarray, int, int]:
        h, w = (int(v) for v in self.rng.integers(4, 24, 2))
        yy, xx = np.mgrid[:h, :w]
        mask = ((yy - h / 2) ** 2 / (h / 2) ** 2 + (xx - w / 2) ** 2 / (w / 2) ** 2) <= 1.0
        mask[h // 2, :] = True  # never empty, never all its box
        x, y = (int(v) for v in self.rng.integers(0, SIZE - 24, 2))
        return mask, x, y

    def edit(self) -> dict:
        """A new stroke (a new region), a redrawn region of ours, or (now and then) a deleted one."""
        roll = self.rng.random()
        upserts: list[Region] = []
        deletes: list[int] = []
        if self.mine and roll < 0.4:
            rid = int(self.rng.choice(list(self.mine)))
            mask, x, y = self.stroke()
            upserts.append(Region(rid, self.mine[rid].class_id, mask, x, y))
        elif len(self.mine) >= 2 and roll < 0.5:
            deletes.append(int(self.rng.choice(list(self.mine))))
        else:
            for _ in range(int(self.rng.integers(1, 3))):
                mask, x, y = self.stroke()
                upserts.append(Region(self.store.new_region_id(), int(self.rng.choice(CLASSES)), mask, x, y))
        status = IN_PROGRESS if self.first else None
        hashes = {str(r.id): region_hash(self.held, r) for r in upserts}
        self.seq += 1
        return dict(seq=self.seq, img=self.held, up=hashes, de=deletes, st=status, regions=upserts)

    def commit(self, p: dict) -> None:
        rec = {k: p[k] for k in ("seq", "img", "up", "de", "st")}
        self.log("intent", **rec)
        t0 = time.time()
        self.store.save_regions(p["img"], p["regions"], p["de"], status=p["st"], owner=self.owner)
        t1 = time.time()
        self.log("ok", t0=t0, t1=t1, **rec)
        for r in p["regions"]:
            self.mine[r.id] = r
        for d in p["de"]:
            self.mine.pop(d, None)
        self.first = False
        self.left -= 1

    def finish(self) -> None:
        """Mark the image done (a commit of its own: the status, under the claim) and let it go."""
        self.seq += 1
        rec = dict(seq=self.seq, img=self.held, up={}, de=[], st=DONE)
        self.log("intent", **rec)
        t0 = time.time()
        self.store.save_regions(self.held, (), (), status=DONE, owner=self.owner)
        self.log("ok", t0=t0, t1=time.time(), **rec)
        img, self.held = self.held, None
        self.mine, self.done_since_review = {}, self.done_since_review + 1
        try:
            self.store.release_image(img, self.owner)
            self.log("release", img=img)
        except StoreError as e:  # it lapses after the ttl anyway
            self.log("error", img=img, msg=str(e)[:300], reconnecting="reconnecting" in str(e))


def main(cfg: dict) -> None:
    """The process's entry (multiprocessing, spawn)."""
    try:
        Annotator(cfg).run()
    except StoreError as e:
        Log(cfg["log"])("fatal", msg=str(e)[:300])
        raise SystemExit(2) from None
