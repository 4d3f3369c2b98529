"""The Store protocol is the real seam between the project store and the layers above core:
the SQLite store implements every member of it with the same signature, no module above core
uses a store member the protocol does not declare, and only the SQLite backend's modules touch
sqlite3."""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path

import pytest

from segstudio.core.store import SqliteStore, Store
from segstudio.core.store.api import protocol_members

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "segstudio"
STORE_TYPES = {"Store", "SqliteStore"}
_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


# ----------------------------------------------------------------------------- signatures
def _shape(fn) -> tuple:
    sig = inspect.signature(fn)
    params = tuple((p.name, p.kind, p.default, str(p.annotation)) for p in sig.parameters.values())
    return params, str(sig.return_annotation)


def signature_mismatches(cls: type, protocol: type = Store) -> list[str]:
    """Members of `protocol` that `cls` lacks or declares with another signature."""
    out = []
    attrs = getattr(protocol, "__annotations__", {})
    for name in sorted(protocol_members()):
        if name in attrs:
            continue  # an attribute: checked on an instance
        mine = getattr(cls, name, None)
        if mine is None or not callable(mine):
            out.append(f"{name}: missing")
        elif _shape(mine) != _shape(getattr(protocol, name)):
            out.append(f"{name}: {inspect.signature(mine)} != {inspect.signature(getattr(protocol, name))}")
    return out


def test_the_protocol_declares_what_the_layers_above_core_use():
    members = protocol_members()
    assert {"db_path", "images", "save_regions", "replace_source_regions_many", "claim_image",
            "remove_class", "restore_class", "class_usage", "take_number"} <= members
    # the backend's own plumbing is not part of the seam
    assert not members & {"conn", "transaction", "integrity_check", "root"}


def test_sqlite_store_implements_every_member_with_the_same_signature(tmp_path):
    assert signature_mismatches(SqliteStore) == []
    s = SqliteStore(tmp_path / "p.db")
    try:
        for name in Store.__annotations__:
            assert hasattr(s, name), name
        assert isinstance(s.db_path, Path)
        store: Store = s  # what mypy checks structurally everywhere a Store is expected
        assert store.image_count() == 0
    finally:
        s.close()


def test_a_different_signature_or_a_missing_member_is_caught():
    class Drifted(SqliteStore):
        def images(self, statuses=None):  # fewer parameters than the protocol's
            return []

        def take_number(self, name: str, floor: int = 2) -> int:  # another default
            return floor

    del_member = type("NoClaims", (Drifted,), {"claim_image": None})
    found = signature_mismatches(del_member)
    assert any(m.startswith("images:") for m in found)
    assert any(m.startswith("take_number:") for m in found)
    assert "claim_image: missing" in found


def test_backend_errors_do_not_change_signatures():
    """The StoreError wrapping keeps each method's own signature (functools.wraps)."""
    assert inspect.signature(SqliteStore.save_regions) != inspect.signature(lambda self, *a, **k: None)
    assert "upserts" in inspect.signature(SqliteStore.save_regions).parameters


# ----------------------------------------------------------------------------- uses above core
def _own_nodes(scope):
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        n = stack.pop()
        yield n
        if not isinstance(n, _FUNCS):
            stack.extend(ast.iter_child_nodes(n))


def _is_store_annotation(a) -> bool:
    if a is None:
        return False
    text = ast.unparse(a).strip("'\"").split("|")[0].strip()
    return text.split(".")[-1] in STORE_TYPES


def store_attributes(source: str) -> list[tuple[int, str]]:
    """(line, attribute) of every attribute read on a store: `x.store.attr`, a name `store`,
    a parameter annotated Store, or a local name bound to one of those (`s = project.store`)."""
    tree = ast.parse(source)
    out: list[tuple[int, str]] = []

    def is_store(v, names) -> bool:
        return ((isinstance(v, ast.Name) and v.id in names)
                or (isinstance(v, ast.Attribute) and v.attr == "store"))

    def visit(scope, inherited: set[str]) -> None:
        names = set(inherited) | {"store"}
        if isinstance(scope, _FUNCS):
            a = scope.args
            names |= {p.arg for p in a.posonlyargs + a.args + a.kwonlyargs if _is_store_annotation(p.annotation)}
        nodes = list(_own_nodes(scope))
        for n in nodes:
            if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name):
                if is_store(n.value, names):
                    names.add(n.targets[0].id)
            elif isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and _is_store_annotation(n.annotation):
                names.add(n.target.id)
        for n in nodes:
            if isinstance(n, ast.Attribute) and is_store(n.value, names):
                out.append((n.lineno, n.attr))
            elif isinstance(n, _FUNCS):
                visit(n, names)

    visit(tree, set())
    return out


def _modules_outside_the_store() -> list[Path]:
    """Every module above core, the benchmarks, and core's own modules that use a store (Project,
    claims, class deletes, checks): all of them reach the store through the protocol."""
    files = [p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[:2] != ("core", "store")]
    bench = ROOT / "benchmarks"
    if bench.is_dir():
        files += list(bench.rglob("*.py"))
    return sorted(files)


def test_the_scanner_sees_store_uses_in_every_form():
    src = textwrap.dedent("""
        def a(project):
            s = project.store
            s.conn.execute("x")
        def b(store):
            store.transaction()
        def c(thing: "Store"):
            thing.integrity_check()
        class W:
            def d(self):
                self.project.store.images()
                other = self.store
                def inner():
                    other.root
    """)
    assert sorted(a for _, a in store_attributes(src)) == ["conn", "images", "integrity_check", "root",
                                                           "transaction"]


def test_no_module_outside_the_store_uses_a_store_member_the_protocol_does_not_declare():
    declared = protocol_members()
    undeclared = []
    files = _modules_outside_the_store()
    assert PACKAGE / "gui" / "session.py" in files and PACKAGE / "core" / "project.py" in files
    assert PACKAGE / "core" / "store" / "sqlite.py" not in files
    for path in files:
        for line, attr in store_attributes(path.read_text(encoding="utf-8")):
            if attr not in declared:
                undeclared.append(f"{path.relative_to(ROOT)}:{line}: store.{attr}")
    assert undeclared == [], "declare these in core/store/api.py Store, or go through it:\n" + "\n".join(undeclared)


# ----------------------------------------------------------------------------- sqlite3 confined
def sqlite3_uses(source: str) -> list[int]:
    """Lines that import sqlite3 or name it."""
    lines = []
    for n in ast.walk(ast.parse(source)):
        if isinstance(n, ast.Import) and any(a.name.split(".")[0] == "sqlite3" for a in n.names):
            lines.append(n.lineno)
        elif isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "sqlite3":
            lines.append(n.lineno)
        elif isinstance(n, ast.Name) and n.id == "sqlite3":
            lines.append(n.lineno)
    return lines


def _is_sqlite_backend(path: Path) -> bool:
    rel = path.relative_to(PACKAGE).parts
    return rel[:2] == ("core", "store") and rel[-1].startswith("sqlite")


def test_only_the_sqlite_backend_touches_sqlite3():
    offenders = [f"{p.relative_to(ROOT)}:{line}" for p in sorted(PACKAGE.rglob("*.py")) if not _is_sqlite_backend(p)
                 for line in sqlite3_uses(p.read_text(encoding="utf-8"))]
    assert offenders == []
    backend = [p for p in PACKAGE.rglob("*.py") if _is_sqlite_backend(p)]
    assert any(sqlite3_uses(p.read_text(encoding="utf-8")) for p in backend)  # the scan finds real uses


@pytest.mark.parametrize("src", ["import sqlite3\n", "from sqlite3 import Error\n",
                                 "def f(e):\n    return isinstance(e, sqlite3.Error)\n"])
def test_the_sqlite3_scan_sees_every_form(src):
    assert sqlite3_uses(src)
