"""Model commands (predict, train, evaluate); filled in by the models issues."""

from __future__ import annotations


def add_parsers(sub, add_common) -> None:
    return None


def dispatch(args) -> int:
    raise SystemExit(f"unknown command {args.command}")
