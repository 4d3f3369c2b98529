"""The Model panel's *Get weights…* dialog (gui/weights_dialog.py), offline: TORCH_HOME is a
temporary folder, the catalogue holds test entries whose files these tests save, and downloads
come from a fake `open_url`."""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from segstudio.gui.weights_dialog import COLUMNS, WeightsDialog  # noqa: E402
from segstudio.inference.runtime import weights_catalog as wc  # noqa: E402

SAM_KEYS = ("image_encoder.layers.0.weight", "mask_decoder.hf_token.weight", "mask_decoder.output.weight")


def save_sd(path: Path, seed: int = 0, keys=("w",), n: int = 48) -> Path:
    g = torch.Generator().manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: torch.randn(n, n, generator=g) for k in keys}, path)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(h))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return h


@pytest.fixture
def cat(tmp_path, home, monkeypatch):
    off = tmp_path / "official"
    a = save_sd(off / "a.pth", 1)
    a = a.rename(off / f"tinynet-{sha(a)[:8]}.pth")
    b = save_sd(off / "tiny_full.pth", 2)
    c = save_sd(off / "tiny_hq.pth", 3, SAM_KEYS, n=32)
    es = [wc.WeightsEntry("tinynet", "Tiny net", ("tests",), a.name, f"https://example.invalid/{a.name}",
                          hash_prefix=sha(a)[:8]),
          wc.WeightsEntry("tiny_full", "Tiny full", ("tests",), b.name, "https://example.invalid/tiny_full.pth",
                          size=b.stat().st_size, sha256=sha(b)),
          wc.WeightsEntry("tiny_hq", "Tiny HQ", ("tests", "more tests"), c.name,
                          "https://example.invalid/tiny_hq.pth", models=("sam_hq_vit_tiny",),
                          reads="segstudio.inference.sam.weights:catalog_problem")]
    monkeypatch.setattr(wc, "entries", lambda: list(es))
    wc._hashed.clear()
    return {"tinynet": a, "tiny_full": b, "tiny_hq": c}


def cache(home) -> Path:
    return home / "hub" / "checkpoints"


def idle(dlg: WeightsDialog) -> bool:
    return dlg.job is None and bool(dlg.statuses) and not dlg.progress.isVisible()


def opened(qtbot) -> WeightsDialog:
    dlg = WeightsDialog()
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitUntil(lambda: idle(dlg), timeout=30000)
    return dlg


def cell(dlg: WeightsDialog, name: str, column: str) -> str:
    r = next(i for i, s in enumerate(dlg.statuses) if s.entry.name == name)
    return dlg.table.item(r, COLUMNS.index(column)).text()


def test_lists_the_catalogue_with_status(cat, home, qtbot):
    c = cache(home)
    c.mkdir(parents=True)
    (c / cat["tinynet"].name).write_bytes(cat["tinynet"].read_bytes())
    bad = bytearray(cat["tiny_full"].read_bytes())
    bad[-40] ^= 0xFF
    (c / "tiny_full.pth").write_bytes(bytes(bad))
    dlg = opened(qtbot)
    assert dlg.table.rowCount() == 3
    assert cell(dlg, "tinynet", "Status") == wc.PREFIX_OK and cell(dlg, "tinynet", "Check") == "sha256 prefix"
    assert cell(dlg, "tiny_full", "Status") == wc.HASH_MISMATCH
    assert cell(dlg, "tiny_hq", "Status") == wc.MISSING and cell(dlg, "tiny_hq", "Used by") == "tests; more tests"
    assert str(c) in dlg.folder.text()
    assert "tiny_full (hash MISMATCH" in dlg.note.text()
    dlg.select("tinynet")
    assert not dlg.download_button.isEnabled()  # good already
    dlg.select("tiny_full")
    assert dlg.download_button.isEnabled()  # verified wrong: may be replaced
    dlg.select("tiny_hq")
    assert dlg.download_button.isEnabled()


def test_add_file_verifies_and_copies(cat, home, tmp_path, qtbot):
    dlg = opened(qtbot)
    usb = tmp_path / "usb"
    usb.mkdir()
    src = usb / "renamed.pth"
    src.write_bytes(cat["tiny_full"].read_bytes())
    before = (src.read_bytes(), src.stat().st_mtime_ns)
    dlg.add_file(str(src))
    qtbot.waitUntil(lambda: idle(dlg) and dlg.status_of("tiny_full") == wc.HASH_OK, timeout=30000)
    assert (cache(home) / "tiny_full.pth").read_bytes() == before[0]
    assert (src.read_bytes(), src.stat().st_mtime_ns) == before
    assert "copied" in dlg.note.text() and "1 of 3 files present" in dlg.note.text()


def test_add_file_refuses_a_wrong_hash(cat, home, tmp_path, qtbot):
    dlg = opened(qtbot)
    src = save_sd(tmp_path / "tiny_full.pth", 11)
    with qtbot.waitSignal(dlg.job_done, timeout=30000) as sig:
        dlg.add_file(str(src))
    assert "is not the expected tiny_full.pth" in sig.args[0] and "nothing was" in dlg.note.text()
    assert "c33" in dlg.note.styleSheet()  # shown as an error
    assert not cache(home).exists() or not any(cache(home).iterdir())
    assert dlg.add_button.isEnabled() and not dlg.cancel_button.isEnabled()


def test_download_with_progress(cat, home, qtbot, monkeypatch):
    monkeypatch.setattr(wc, "CHUNK", 4096)
    data = cat["tinynet"].read_bytes()
    monkeypatch.setattr(wc, "open_url", lambda url: (io.BytesIO(data), len(data)))
    dlg = opened(qtbot)
    seen: list[tuple[int, int]] = []
    dlg.select("tinynet")
    dlg.download_button.click()
    assert dlg.job is not None
    dlg.job.progress.connect(lambda d, t, s: seen.append((d, t)))
    qtbot.waitUntil(lambda: idle(dlg) and dlg.status_of("tinynet") == wc.PREFIX_OK, timeout=30000)
    assert (cache(home) / cat["tinynet"].name).read_bytes() == data
    assert "downloaded" in dlg.note.text()
    assert seen and seen[-1][0] == seen[-1][1] == len(data) >> 10  # KiB: a C int holds a 2.5 GB file's count
    assert not [p for p in cache(home).iterdir() if "partial" in p.name]


def test_cancelled_download_leaves_nothing(cat, home, qtbot, monkeypatch):
    monkeypatch.setattr(wc, "CHUNK", 1024)
    data = cat["tiny_full"].read_bytes()
    first, go = threading.Event(), threading.Event()

    class Slow(io.BytesIO):
        def read(self, n=-1):
            if self.tell() > 0:
                first.set()
                go.wait(10)
            return super().read(n)
    monkeypatch.setattr(wc, "open_url", lambda url: (Slow(data), len(data)))
    dlg = opened(qtbot)
    dlg.download("tiny_full")
    qtbot.waitUntil(first.is_set, timeout=10000)
    assert dlg.cancel_button.isEnabled()
    with qtbot.waitSignal(dlg.job_done, timeout=10000) as sig:
        dlg.cancel_button.click()
        go.set()
    assert sig.args[0].startswith("Cancelled")
    assert not (cache(home) / "tiny_full.pth").exists()
    assert not [p for p in cache(home).iterdir() if "partial" in p.name]


def test_failed_download_is_shown(cat, home, qtbot, monkeypatch):
    from urllib.error import URLError

    def offline(url):
        raise URLError("no network")
    monkeypatch.setattr(wc, "open_url", offline)
    dlg = opened(qtbot)
    with qtbot.waitSignal(dlg.job_done, timeout=10000) as sig:
        dlg.download("tiny_hq")
    # the offline remedy in the window's words: this dialog's Add file… (not `segstudio weights add FILE`)
    assert "cannot download tiny_hq.pth" in sig.args[0] and "Add file…" in dlg.note.text()


def test_closing_while_downloading_cancels(cat, home, qtbot, monkeypatch):
    monkeypatch.setattr(wc, "CHUNK", 1024)
    data = cat["tiny_full"].read_bytes()
    first = threading.Event()

    class Slow(io.BytesIO):
        def read(self, n=-1):
            first.set()
            threading.Event().wait(0.01)
            return super().read(n)
    monkeypatch.setattr(wc, "open_url", lambda url: (Slow(data), len(data)))
    dlg = opened(qtbot)
    dlg.download("tiny_full")
    qtbot.waitUntil(first.is_set, timeout=10000)
    dlg.reject()  # Esc
    assert not (cache(home) / "tiny_full.pth").exists()
    assert not [p for p in cache(home).iterdir() if "partial" in p.name]


def test_the_model_panel_opens_it(cat, home, qtbot, gui_folder):
    from tests.gui.conftest import open_window
    win = open_window(qtbot, gui_folder)
    dock = win.model_dock
    panel = dock.click_panel
    panel.kind.setCurrentIndex(panel.kind.findData("sam"))
    dock.get_weights.click()
    dlg = dock.weights_dialog
    assert isinstance(dlg, WeightsDialog) and dlg.isVisible()
    qtbot.waitUntil(lambda: idle(dlg), timeout=30000)
    assert dlg.table.rowCount() == 3
    dlg.accept()
    qtbot.waitUntil(lambda: not dlg.isVisible(), timeout=5000)
    # the click model's entries are made again (whether each file is in the cache), the choice kept
    assert panel.weights.currentData() == {"options": {"sam_model": "sam_hq_vit_tiny"}}
