"""`segstudio models [--json]`: every model family in the registry, what it can do, the weights
it needs and whether they are here, the packages it still lacks. No torch is imported: the
registry and the families' specs know all of it by file names and paths."""

from __future__ import annotations

import json
from typing import Any

from segstudio.cli.common import add_common
from segstudio.inference import registry
from segstudio.inference.family import CAPABILITIES, Family


def add_parsers(sub) -> None:
    s = sub.add_parser("models", help="list the model families: what each can do, the weights it needs")
    s.set_defaults(func=cmd_models)
    s.add_argument("--json", action="store_true", help="a list of objects, one per family")
    add_common(s)


def describe(f: Family) -> dict[str, Any]:
    """One family as `segstudio models --json` prints it."""
    return {"key": f.key, "title": f.title, "package": f.package,
            "capabilities": {c: f.can(c) for c in CAPABILITIES},
            "roles": list(f.roles),
            "variants": [v for v, _ in f.variants],
            "weights": [{"name": w.name, "path": w.path, "here": w.here, "note": w.note} for w in registry.weights(f)],
            "packages_missing": registry.packages_missing(f),
            "install_hint": f.install_hint,
            "note": f.note}


def families() -> list[dict[str, Any]]:
    return [describe(f) for f in registry.FAMILIES.values()]


def _yes(v: bool) -> str:
    return "yes" if v else "no"


def table(rows: list[dict[str, Any]]) -> str:
    """A readable table of the capabilities, then each family's roles, weights, packages and note."""
    head = ["model", *CAPABILITIES, "roles"]
    cells = [[r["key"], *(_yes(r["capabilities"][c]) for c in CAPABILITIES), ", ".join(r["roles"]) or "-"]
             for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *cells, strict=True)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
             for line in (head, *cells)]
    for r in rows:
        lines += ["", f"{r['key']}: {r['title']}"]
        if r["variants"]:
            lines.append(f"  variants: {', '.join(r['variants'])} (the first is the default)")
        for w in r["weights"]:
            where = f" ({w['path']})" if w["path"] else ""
            lines.append(f"  weights: {w['name']}: {'here' if w['here'] else 'not here'}{where}"
                         + (f"; {w['note']}" if w["note"] else ""))
        if r["packages_missing"]:
            lines.append(f"  missing packages: {', '.join(r['packages_missing'])}"
                         + (f" ({r['install_hint']})" if r["install_hint"] else ""))
        if r["note"]:
            lines.append(f"  {r['note']}")
    return "\n".join(lines)


def cmd_models(args) -> int:
    rows = families()
    print(json.dumps(rows, indent=2) if args.json else table(rows))
    return 0
