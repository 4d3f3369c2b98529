"""Nothing outside a family's package compares model names (DESIGN.md "Two roles in the
window"): code asks a Family what it can do (registry, capabilities, checkpoint_kind), never
`arch == "sam"`. An AST scan, so a comparison cannot come back unnoticed: any comparison (==, !=,
in, not in, is) whose operands hold a family's key as a string literal, in a tuple, list or set
too, fails, with its file and line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from segstudio.inference import registry

ROOT = Path(__file__).resolve().parents[1] / "segstudio"
NAMES = frozenset(registry.FAMILIES)


def family_folders() -> list[Path]:
    return [ROOT.parent.joinpath(*f.package.split(".")) for f in registry.FAMILIES.values()]


def _literals(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [s for e in node.elts for s in _literals(e)]
    return []


def comparisons(source: str, label: str) -> list[str]:
    """`label:line: the comparison` for each comparison with a model name in it."""
    tree = ast.parse(source, label)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            names = {s for part in (node.left, *node.comparators) for s in _literals(part)} & NAMES
            if names:
                out.append(f"{label}:{node.lineno}: {ast.unparse(node)}")
    return out


def scanned_files() -> list[Path]:
    own = family_folders()
    return sorted(p for p in ROOT.rglob("*.py") if not any(p.is_relative_to(f) for f in own))


def test_no_model_name_comparison_outside_its_family():
    found = [hit for p in scanned_files()
             for hit in comparisons(p.read_text(encoding="utf-8"), str(p.relative_to(ROOT.parent)))]
    assert not found, "compare capabilities, not model names:\n" + "\n".join(found)


@pytest.mark.parametrize("source, hits", [
    ('if spec.arch == "sam":\n    pass\n', 1),
    ('ok = arch in ("unet", "maskrcnn")\n', 1),
    ('ok = "fcn" != name\n', 1),
    ('ok = m["kind"] == family.checkpoint_kind\n', 0),  # a stored kind against the family's: data
    ('d = {"unet": 1}\nx = d["unet"]\n', 0),  # a key, not a comparison
])
def test_the_scan_finds_what_it_is_meant_to(source, hits):
    assert len(comparisons(source, "probe.py")) == hits


def test_the_scan_covers_the_window_the_command_line_and_the_runtime():
    files = {p.relative_to(ROOT).as_posix() for p in scanned_files()}
    assert {"cli/models.py", "inference/runtime/engine.py", "gui/docks/model_dock.py"} <= files
    assert not any(f.startswith(("inference/sam/", "inference/semantic/", "inference/maskrcnn/")) for f in files)


def test_every_family_package_is_a_folder_here():
    for folder in family_folders():
        assert (folder / "__init__.py").is_file(), folder
