"""train and evaluate commands (the learning loop)."""

from __future__ import annotations


def add_train_parsers(sub, add_common) -> None:
    return None


def dispatch_train(args) -> int:
    raise SystemExit(f"unknown command {args.command}")
