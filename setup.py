"""Only what pyproject.toml cannot say: `resources/` (top-level in the source tree, as DESIGN.md
asks) is installed as the package data `segstudio.resources`, so a wheel or a plain `pip install .`
carries the sample images too (which files: package-data in pyproject.toml). Everything else is in
pyproject.toml."""

from pathlib import Path

from setuptools import find_namespace_packages, setup

HERE = Path(__file__).resolve().parent
RESOURCES = ["segstudio.resources"] + sorted(
    ".".join(("segstudio.resources",) + d.relative_to(HERE / "resources").parts)
    for d in (HERE / "resources").rglob("*") if d.is_dir() and "__pycache__" not in d.parts)

setup(
    packages=find_namespace_packages(include=["segstudio", "segstudio.*"], exclude=["*.__pycache__"]) + RESOURCES,
    package_dir={"segstudio.resources": "resources"},
)
