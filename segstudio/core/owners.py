"""A claim holder's name (`user@host:pid:random`, or `host:pid:random` without a user) read back
for messages: the store's errors and the window's notices say who holds an image."""

from __future__ import annotations


def split_owner(owner: str) -> tuple[str, str, str]:
    """(user, host, pid) of an owner string ('' where it has none)."""
    user, at, rest = owner.rpartition("@") if "@" in owner else ("", "", owner)
    host, _, tail = rest.partition(":")
    return user, host, tail.partition(":")[0]


def owner_user(owner: str) -> str:
    """Who holds a claim: the user part of its owner ('' for a plain process owner)."""
    return split_owner(owner)[0]


def describe_owner(owner: str) -> str:
    """'anna (process 1234 on host)' or 'process 1234 on host' for messages."""
    user, host, pid = split_owner(owner)
    where = f"process {pid} on {host}" if pid else owner
    return f"{user} ({where})" if user else where
