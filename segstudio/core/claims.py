"""The image a person has open, held in the project store so that every predictor, in every
process (a `train --watch` watcher, `segstudio predict`, a Ray run, another window), leaves it
alone: a model's regions written under an open image would mix with the person's edits.

A claim lapses `TTL_S` seconds after its last renewal; a thread renews it every `RENEW_S`, so a
window that crashes (or is killed) frees its image within `TTL_S`, while a window whose GUI
thread is busy keeps it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

from segstudio.core.owners import describe_owner, owner_user, split_owner
from segstudio.core.store.api import Store, StoreError

__all__ = ["OpenImageClaim", "describe_owner", "holder_gone", "owner_user", "process_owner", "store_owner"]

log = logging.getLogger(__name__)

TTL_S = 60.0
RENEW_S = 15.0

_owner: tuple[int, str] | None = None


def process_owner(user: str | None = None) -> str:
    """This process's name as a claim holder: `user@host:pid:random` (pids are reused). `user` is who
    the store says writes (on a team's store, the server's login); without one, the plain form."""
    global _owner
    if _owner is None or _owner[0] != os.getpid():  # a forked child is another holder
        _owner = (os.getpid(), f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    return f"{user}@{_owner[1]}" if user else _owner[1]


def store_owner(store: Store) -> str:
    """This process's claim holder name on `store` (with the store's user on a team's store): what the
    window holds its image as, and what the model runs of this window pass as their own."""
    return process_owner(store.user if store.exclusive_claims else None)


def holder_gone(owner: str) -> bool:
    """True when `owner` ran on this host and its process no longer exists: its claim is a
    leftover that lapses within TTL_S, no window holds the image. Holders on other hosts cannot
    be checked from here; they count as live until their claim lapses."""
    _, host, pid = split_owner(owner)
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError, OverflowError):  # another user's process: it exists
        return False
    return False


class OpenImageClaim:
    """Holds at most one image (the one shown) for `owner`, renewed in the background."""

    def __init__(self, store: Store, owner: str | None = None, ttl: float = TTL_S,
                 renew_every: float = RENEW_S):
        self.store = store
        self.owner = owner or store_owner(store)
        self.ttl, self.renew_every = ttl, renew_every
        self.image_id: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # the renewing thread never re-claims an image being let go

    def hold(self, image_id: int) -> list[str]:
        """Claim `image_id` (dropping the image held before). Call it before the image's regions
        are read, so nothing written after the read can slip under the claim. Returns the other
        holders of the image. A store that cannot be written is logged, never raised: the
        person can still look at and edit the image (the statuses protect saved work)."""
        with self._lock:
            previous, self.image_id = self.image_id, image_id
            try:
                if previous is not None and previous != image_id:
                    self.store.release_image(previous, self.owner)
                others = self.store.claim_image(image_id, self.owner, self.ttl)
            except (StoreError, OSError) as e:
                log.warning("could not hold image %s open in the project store: %s", image_id, e)
                others = []
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._renew, name="segstudio-claim", daemon=True)
            self._thread.start()
        return others

    def release(self) -> None:
        """Let the held image go and stop renewing (the window closes)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            self.image_id = None
            try:
                self.store.release_image(None, self.owner)
            except (StoreError, OSError) as e:  # it lapses after ttl anyway
                log.warning("could not release the open image's claim: %s", e)

    def _renew(self) -> None:
        while not self._stop.wait(self.renew_every):
            with self._lock:
                try:
                    if self.store.renew_claims(self.owner, self.ttl) == 0 and self.image_id is not None:
                        self.store.claim_image(self.image_id, self.owner, self.ttl)  # lapsed (a long sleep)
                except (StoreError, OSError) as e:  # a busy or failing store: the next beat tries again
                    log.warning("could not renew the open image's claim: %s", e)
