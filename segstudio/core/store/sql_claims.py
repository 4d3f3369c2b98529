"""Claims on open images in the SQL stores (a mixin of SqlStore): who holds which image, by the
store's clock (the server's on PostgreSQL), exclusive on a team's store; and the checks a write makes
against them."""

from __future__ import annotations

import time
from typing import Any, Iterable

import segstudio.core.store.sql_team as team_sql
from segstudio.core.owners import owner_user
from segstudio.core.store.api import ClaimedElsewhere, StoreError

REHOLD_S = 60.0  # a lapsed claim taken again by its writer's save lasts this long (core/claims.TTL_S)


class SqlClaims:
    """The claims part of SqlStore (it provides conn, transaction, _clock, _may_lead, user)."""

    exclusive_claims = False
    conn: Any
    user: str

    def transaction(self) -> Any:
        raise NotImplementedError

    def _clock(self, c) -> float:
        return time.time()

    def _may_lead(self, t) -> bool:
        """Whether this client may do a lead's part (take over a claim). Everyone on SQLite."""
        return True

    def _model_may_not_write(self, t, image_ids: list[int]) -> set[int]:
        """The images this client may not add a model's regions to (a team's rule). None on SQLite."""
        return set()

    def _check_holder(self, t, image_id: int, owner: str | None) -> None:
        """On a store whose claims are exclusive, refuse a write to an image another owner holds."""
        if not self.exclusive_claims:
            return
        now = self._clock(t)
        row = t.execute("SELECT owner FROM claims WHERE image_id=? AND owner<>? AND expires>? ORDER BY owner LIMIT 1",
                        (image_id, owner or "", now)).fetchone()
        if row is not None:
            raise ClaimedElsewhere(image_id, row[0])
        if owner and t.execute("SELECT 1 FROM claims WHERE image_id=? AND owner=? AND expires>?",
                               (image_id, owner, now)).fetchone() is None:
            # the writer's claim lapsed (a long sleep) and nobody took the image meanwhile: it holds the
            # image again before it writes, so no write lands on an image its writer does not hold
            t.execute("INSERT INTO claims(image_id, owner, expires) VALUES (?,?,?) ON CONFLICT(image_id, owner) "
                      "DO UPDATE SET expires=excluded.expires", (image_id, owner, now + REHOLD_S))

    def _check_others(self, t, ids: list[int]) -> None:
        """On a store with exclusive claims, refuse to change images another person has open (this
        person's other windows are theirs to change; a lead may)."""
        if not self.exclusive_claims or not ids or self._may_lead(t):  # a lead may (as on the server)
            return
        now = self._clock(t)
        for k in range(0, len(ids), 900):
            chunk = ids[k:k + 900]
            for iid, owner in t.execute(f"SELECT image_id, owner FROM claims WHERE image_id IN "
                                        f"({','.join('?' * len(chunk))}) AND expires>? ORDER BY owner", chunk + [now]):
                if owner_user(owner) != self.user:
                    raise ClaimedElsewhere(int(iid), owner)

    # ------------------------------------------------------------------ claims on open images
    def claim_image(self, image_id: int, owner: str, ttl: float) -> list[str]:
        """`owner` holds this image (open in its window) for `ttl` seconds unless renewed: any
        predictor of another holder leaves it alone meanwhile. Lapsed claims are dropped here.
        Returns the other holders that have it open too; on a store with exclusive claims (a team's),
        the claim is not taken while there are any."""
        with self.transaction() as t:
            now = self._clock(t)
            t.execute("DELETE FROM claims WHERE expires<=?", (now,))
            others = [r[0] for r in t.execute("SELECT owner FROM claims WHERE image_id=? AND owner<>? AND expires>? "
                                              "ORDER BY owner", (image_id, owner, now))]
            if others and self.exclusive_claims:
                return others
            fresh = t.execute("SELECT 1 FROM claims WHERE image_id=? AND owner=?", (image_id, owner)).fetchone() is None
            t.execute("INSERT INTO claims(image_id, owner, expires) VALUES (?,?,?) ON CONFLICT(image_id, owner) "
                      "DO UPDATE SET expires=excluded.expires", (image_id, owner, now + ttl))
            if fresh and self.exclusive_claims:
                team_sql.record(t, image_id, self.user, time.time(), "claim", {"open": True})
            return others

    def take_over(self, image_id: int, owner: str, ttl: float) -> list[str]:
        """A lead takes an image another holder has open (their window can no longer save to it).
        Returns the holders whose claims were dropped."""
        with self.transaction() as t:
            if not self._may_lead(t):
                raise StoreError("only a lead may take over an image another annotator has open")
            now = self._clock(t)
            gone = [r[0] for r in t.execute("SELECT owner FROM claims WHERE image_id=? AND owner<>? AND expires>? "
                                            "ORDER BY owner", (image_id, owner, now))]
            t.execute("DELETE FROM claims WHERE image_id=? AND owner<>?", (image_id, owner))
            t.execute("INSERT INTO claims(image_id, owner, expires) VALUES (?,?,?) ON CONFLICT(image_id, owner) "
                      "DO UPDATE SET expires=excluded.expires", (image_id, owner, now + ttl))
            team_sql.record(t, image_id, self.user, time.time(), "claim", {"took_over": gone})
            return gone

    def release_image(self, image_id: int | None, owner: str) -> None:
        """Drop `owner`'s claim on an image (None: on every image)."""
        with self.transaction() as t:
            if image_id is None:
                t.execute("DELETE FROM claims WHERE owner=?", (owner,))
            else:
                t.execute("DELETE FROM claims WHERE image_id=? AND owner=?", (image_id, owner))

    def renew_claims(self, owner: str, ttl: float) -> int:
        """Push back the expiry of `owner`'s live claims (its heartbeat). Returns how many it holds."""
        with self.transaction() as t:
            now = self._clock(t)
            return t.execute("UPDATE claims SET expires=? WHERE owner=? AND expires>?",
                             (now + ttl, owner, now)).rowcount

    def image_holders(self, image_id: int, except_owner: str | None = None) -> list[str]:
        """Every live holder of an image (but `except_owner`), sorted."""
        return [r[0] for r in self.conn.execute("SELECT owner FROM claims WHERE image_id=? AND expires>? AND "
                                                "owner<>? ORDER BY owner",
                                                (image_id, self._clock(self.conn), except_owner or ""))]

    def claimed_images(self, image_ids: Iterable[int] | None = None, except_owner: str | None = None) -> dict[int, str]:
        """Image id -> a holder, for the live claims (of holders other than `except_owner`)."""
        rows = self.conn.execute("SELECT image_id, owner FROM claims WHERE expires>? AND owner<>? ORDER BY owner",
                                 (self._clock(self.conn), except_owner or ""))
        wanted = None if image_ids is None else set(image_ids)
        out: dict[int, str] = {}
        for iid, owner in rows:
            if wanted is None or iid in wanted:
                out.setdefault(iid, owner)
        return out

