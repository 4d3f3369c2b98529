"""The bundled samples: found by the app, and every file under resources/ is installed package data
(setup.py maps resources/ to segstudio.resources; pyproject's package-data says which files)."""

import fnmatch
import sys
from pathlib import Path

from segstudio.app import RESOURCES, resources_dir, sample_images

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = None

ROOT = Path(__file__).resolve().parents[2]


def test_sample_images_exist():
    imgs = sample_images()
    assert {p.name for p in imgs} >= {"hopper.jpg", "flower.jpg", "nuclei-16bit.tif"}
    assert all(p.is_file() for p in imgs)
    assert (RESOURCES / "sample_annotations" / "nuclei.coco.json").is_file()


def test_resources_dir_prefers_installed_package_data(tmp_path, monkeypatch):
    import segstudio.app as app
    pkg = tmp_path / "site" / "segstudio"
    (pkg / "resources" / "samples").mkdir(parents=True)
    (tmp_path / "site" / "resources" / "samples").mkdir(parents=True)  # someone else's folder
    monkeypatch.setattr(app, "__file__", str(pkg / "app.py"))
    assert resources_dir() == pkg / "resources"


def test_every_resource_file_is_package_data():
    if tomllib is None:
        return
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    src = ROOT / "resources"
    if not src.is_dir():  # an installed copy without the source tree
        return
    for f in src.rglob("*"):
        if f.is_file() and "__pycache__" not in f.parts:
            pkg = ".".join(("segstudio", "resources") + f.parent.relative_to(src).parts)
            assert any(fnmatch.fnmatch(f.name, pat) for pat in cfg.get(pkg, [])), \
                f"{f.relative_to(ROOT)} would be left out of the wheel: add it to package-data of {pkg}"
