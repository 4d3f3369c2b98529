"""Other clients' changes as they commit: a thread LISTENs on the project's channel on a connection
of its own (autocommit: notifications arrive only between transactions) and hands each event to a
callback, from that thread.

A notification's payload is read as hostile (anyone with the database's password can NOTIFY): only a
JSON object with a known kind and, where it names an image, a whole-number id gets through.
When the connection drops (a server restart, a network cut) the listener says {"t": "lost"}, tries
again with a growing pause, and says {"t": "back"} once it listens again: what was sent meanwhile is
lost, so whoever shows the project reads it again.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Callable

import psycopg

from segstudio.core.store.api import StoreError
from segstudio.core.store.pg_schema import CHANNEL

log = logging.getLogger(__name__)

KINDS = frozenset({"image", "claim", "regions", "images", "classes", "settings"})
_WITH_ID = frozenset({"image", "claim", "regions"})
RETRY_FIRST_S, RETRY_MAX_S = 0.5, 5.0


def parse_event(payload: str) -> dict | None:
    """A notification's payload as an event, or None when it is not one of ours."""
    if not isinstance(payload, str) or len(payload) > 4096:
        return None
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict) or value.get("t") not in KINDS:
        return None
    if value["t"] in _WITH_ID:
        i = value.get("id")
        if not isinstance(i, int) or isinstance(i, bool) or not 0 < i < 2 ** 63:
            return None
        return {"t": value["t"], "id": i}
    return {"t": value["t"]}


class PgListener:
    """Calls `on_event(dict)` for each change other clients (and this one) commit; `close()` stops it."""

    def __init__(self, connect: Callable[[], psycopg.Connection], on_event: Callable[[dict], None],
                 poll_s: float = 0.5):
        self._connect, self._on_event, self.poll_s = connect, on_event, poll_s
        self._stop = threading.Event()
        self._conn: psycopg.Connection | None = None
        self.listening = threading.Event()  # set while LISTEN is in force (tests wait on it)
        self._thread = threading.Thread(target=self._run, name="segstudio-listen", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._drop()

    def _drop(self) -> None:
        c, self._conn = self._conn, None
        self.listening.clear()
        if c is not None:
            try:
                c.close()
            except psycopg.Error:
                pass

    def _emit(self, event: dict) -> None:
        try:
            self._on_event(event)
        except Exception:  # the receiver's bug must not stop the feed
            log.exception("a live-view event handler failed")

    def _run(self) -> None:
        pause, was_lost = RETRY_FIRST_S, False
        while not self._stop.is_set():
            try:
                if self._conn is None:
                    self._conn = self._connect()
                    self._conn.execute("LISTEN " + CHANNEL)  # a fixed channel name
                    self.listening.set()
                    pause = RETRY_FIRST_S
                    if was_lost:
                        was_lost = False
                        self._emit({"t": "back"})
                for n in self._conn.notifies(timeout=self.poll_s):
                    event = parse_event(n.payload)
                    if event is not None:
                        self._emit(event)
                    if self._stop.is_set():
                        break
            except (psycopg.Error, StoreError) as e:  # the store's connect() says its errors as StoreError
                self._drop()
                if not was_lost:
                    was_lost = True
                    self._emit({"t": "lost", "why": str(e).strip().splitlines()[0] if str(e).strip() else "lost"})
                self._stop.wait(pause)
                pause = min(pause * 2, RETRY_MAX_S)
