"""Cached torchvision COCO weights are read with weights_only=True: a pickle that would run code
is refused with a clear error and never executed; a plain state dict loads. (No download: the
cache is a temporary TORCH_HOME; nothing here pretends to be the pretrained weights.)"""

import os

import pytest

torch = pytest.importorskip("torch")

from segstudio.inference.maskrcnn import model as maskrcnn  # noqa: E402
from segstudio.inference.runtime.checkpoint import CheckpointError  # noqa: E402
from segstudio.inference.runtime.pretrained import WeightsUnavailable  # noqa: E402


class RunsCode:
    """Unpickling this calls os.makedirs(marker): proof that the pickle ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # a set_dir() elsewhere must not win
    return home


def _no_download(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("tried to download")
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_cached_weights_with_code_are_refused(torch_home, tmp_path, monkeypatch, version):
    _no_download(monkeypatch)
    path = maskrcnn.weights_file(version)
    assert str(path).startswith(str(torch_home))
    path.parent.mkdir(parents=True)
    marker = tmp_path / "code_ran"
    torch.save({"backbone.body.conv1.weight": torch.zeros(2, 2), "payload": RunsCode(marker)}, path)
    for download in (False, True):
        with pytest.raises(CheckpointError) as e:
            maskrcnn.coco_state_dict(version, download=download)
        msg = str(e.value)
        assert str(path) in msg and "not loaded, for safety" in msg and "os.makedirs" in msg
        assert "weights_only" not in msg  # never advice to turn the check off
        assert not marker.exists()
    with pytest.raises(CheckpointError):
        maskrcnn.coco_checkpoint(version, download=False)
    assert not marker.exists()
    # the payload is real: an unguarded load (what torchvision does by default) would run it
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_downloaded_weights_are_loaded_weights_only_too(torch_home, tmp_path, monkeypatch):
    marker = tmp_path / "code_ran"

    def fake_download(url, dst, hash_prefix=None, progress=True):
        torch.save({"w": torch.ones(1), "payload": RunsCode(marker)}, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    with pytest.raises(CheckpointError, match="for safety"):
        maskrcnn.coco_state_dict("v2", download=True, progress=False)
    assert not marker.exists()


def test_cached_plain_state_dict_loads(torch_home, monkeypatch):
    _no_download(monkeypatch)
    path = maskrcnn.weights_file("v2")
    path.parent.mkdir(parents=True)
    sd = {"backbone.body.conv1.weight": torch.arange(6.0).reshape(2, 3), "roi_heads.x": torch.zeros(1)}
    torch.save(sd, path)
    got = maskrcnn.coco_state_dict("v2", download=False)
    assert set(got) == set(sd) and torch.equal(got["backbone.body.conv1.weight"], sd["backbone.body.conv1.weight"])
    assert got["roi_heads.x"].device.type == "cpu"


def test_cached_file_that_is_not_a_state_dict(torch_home, monkeypatch):
    _no_download(monkeypatch)
    path = maskrcnn.weights_file("v2")
    path.parent.mkdir(parents=True)
    torch.save([torch.zeros(1)], path)
    with pytest.raises(CheckpointError, match="not a state dict"):
        maskrcnn.coco_state_dict("v2", download=False)


def test_corrupt_cached_file_says_so(torch_home, monkeypatch):
    _no_download(monkeypatch)
    path = maskrcnn.weights_file("v2")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a torch file " * 20)
    with pytest.raises(WeightsUnavailable) as e:
        maskrcnn.coco_state_dict("v2", download=False)
    msg = str(e.value)
    assert str(path) in msg and "is not a PyTorch weights file (corrupt, truncated" in msg
    assert "download failed" not in msg and "weights_only" not in msg
