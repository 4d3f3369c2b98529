import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest_plugins = ["tests.pg_fixtures"]  # a throwaway PostgreSQL server (pg_url, pg_cluster) for the team store's tests

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared(*parts) -> Path:
    """A file of ../shared/data, or skip the test where that folder is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not present: {p}")
    return p


def make_image(path: Path, w: int = 64, h: int = 48, seed: int = 0, mode: str = "RGB") -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "RGB":
        a = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    elif mode == "L":
        a = rng.integers(0, 255, (h, w), dtype=np.uint8)
    elif mode == "I;16":
        a = rng.integers(0, 65535, (h, w), dtype=np.uint16)
    Image.fromarray(a).save(path)
    return path


@pytest.fixture
def image_folder(tmp_path) -> Path:
    d = tmp_path / "imgs"
    for i in range(4):
        make_image(d / f"img{i}.png", seed=i)
    make_image(d / "sub" / "deep.png", seed=9)
    return d


@pytest.fixture
def project(image_folder):
    from segstudio.core.project import Project
    p = Project.open(image_folder)
    yield p
    p.close()
