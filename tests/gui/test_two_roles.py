"""Two models at once: Segment Anything answers clicks while the pre-label model (a UNet) learns
as the person annotates; loading or failing to load either never unloads the other. Driven with
real clicks and keys."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog

from tests.gui.test_input_events import click

pytest.importorskip("torch")


def _disc_folder(tmp_path, n=6):
    import cv2
    from PIL import Image
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(0)
    masks = {}
    for i in range(n):
        img = rng.normal(60, 15, (64, 64, 3))
        m = np.zeros((64, 64), np.uint8)
        cv2.circle(m, (int(rng.integers(20, 44)), int(rng.integers(20, 44))), 12, 1, -1)
        img[m > 0] += 110
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(d / f"im{i}.png")
        masks[f"im{i}.png"] = m.astype(bool)
    return d, masks


def _tick(box) -> None:
    """A real click on a check box's indicator (its middle may be past its text: no hit there)."""
    from PySide6.QtCore import QPoint
    QTest.mouseClick(box, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(8, box.height() // 2))
    assert box.isChecked()


def _random_sam_file(tmp_path):
    pytest.importorskip("segment_anything_hq")
    import torch

    from segstudio.inference.sam.model import load_sam
    model = load_sam("sam_hq_vit_tiny", device="cpu", random_weights=True, download=False)
    path = tmp_path / "random_sam.pth"
    torch.save(model.net.state_dict(), path)
    return path


def _load_click_model(win, qtbot, monkeypatch, path) -> None:
    """Click model: Segment Anything, its weights chosen with … and Load click model clicked."""
    dock, panel = win.model_dock, win.model_dock.click_panel
    win.model_dw.raise_()
    panel.kind.setCurrentIndex(panel.kind.findData("sam"))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(path), "")))
    QTest.mouseClick(panel.browse, Qt.MouseButton.LeftButton)
    panel.device.setCurrentIndex(panel.device.findData("cpu"))
    QTest.mouseClick(panel.load_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.info is not None or "Cannot" in panel.label.text(), timeout=120000)
    assert panel.info is not None, panel.label.text()


@pytest.fixture
def two_role_window(qtbot, tmp_path, monkeypatch):
    from segstudio.core import maskops
    from segstudio.core.region import Region
    from tests.gui.conftest import open_window
    d, masks = _disc_folder(tmp_path)
    win = open_window(qtbot, d, "disc", size=(1200, 900))
    p = win.project
    cls = p.store.classes()[0]
    for rec in p.store.images()[1:3]:  # two done images besides the open one
        c = maskops.crop_to_content(masks[rec.path])
        p.store.save_regions(rec.id, [Region(p.store.new_region_id(), cls.id, *c)], status="done")
    ready: list[int] = []
    win.model_dock.click_worker.ready.connect(ready.append)
    _load_click_model(win, qtbot, monkeypatch, _random_sam_file(tmp_path))
    qtbot.waitUntil(lambda: win.editor.doc.image_id in ready, timeout=120000)  # the open image's embedding
    yield win, masks
    win.model_dock.worker.cancel()
    if win.isVisible():
        win.close()


def _ask_and_time(win, qtbot, answers, x, y) -> float:
    """A real click with the Model click / box tool; seconds until its candidates arrived."""
    n = len(answers)
    t0 = time.perf_counter()
    click(win, x, y)
    qtbot.waitUntil(lambda: len(answers) > n, timeout=60000)
    dt = time.perf_counter() - t0
    QTest.keyClick(win.canvas, Qt.Key.Key_Escape)  # clear the prompts: the next click starts afresh
    return dt


@pytest.mark.slow  # a random-weight TinyViT embedding and a 5 s UNet update on 2 CPU cores
def test_clicks_answer_while_the_unet_learns_and_segment_anything_stays_loaded(two_role_window, qtbot):
    from segstudio.core.records import DONE
    win, _ = two_role_window
    dock, panel, live = win.model_dock, win.model_dock.click_panel, win.model_dock.live_panel
    sam_info = panel.info
    # the pre-label model: a UNet, learning as the person annotates
    dock.arch.setCurrentIndex(dock.arch.findData("unet"))
    live.seconds.setValue(5)
    live.ahead.setValue(2)
    _tick(live.enabled)
    assert dock.click_answer() == "promptable"
    answers: list = []
    dock.click_worker.candidates.connect(lambda i, n, c: answers.append((time.perf_counter(), c)))
    win.canvas.setFocus()
    QTest.keyClick(win.canvas, Qt.Key.Key_I)  # the Model click / box tool
    h, w = win.editor.image.shape[:2]
    first = win.editor.doc.image_id
    during: list[float] = []
    with qtbot.waitSignal(live.updated, timeout=300000) as got:
        QTest.keyClick(win.canvas, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)  # done: an update starts
        assert win.project.store.image(first).status == DONE
        qtbot.waitUntil(lambda: live.running, timeout=10000)
        k = 0
        while live.running and k < 20:
            during.append(_ask_and_time(win, qtbot, answers, w * (0.3 + 0.02 * k), h * 0.5))
            k += 1
    version = got.args[0][0]
    assert during, "no click was made during the update"
    assert max(during) < 30, during  # every click answered while the UNet trained (times: the benchmark's)
    # the update trained the UNet: its new version is the pre-label model, Segment Anything is still loaded
    assert version.path.endswith(".pt") and "live-unet-" in version.path
    qtbot.waitUntil(lambda: (dock.info or {}).get("checkpoint") == version.path, timeout=60000)
    assert dock.info["family"] == "unet"
    assert panel.info is sam_info and dock.click_worker.model is not None
    assert dock.choice.loaded["click"] is sam_info
    # and a click after the update is Segment Anything's, accepted with Enter
    n = len(answers)
    click(win, w / 2, h / 2)
    qtbot.waitUntil(lambda: len(answers) > n, timeout=60000)


def test_a_failed_click_model_load_keeps_the_loaded_one_and_the_pre_label_model(two_role_window, qtbot,
                                                                                monkeypatch, tmp_path):
    win, _ = two_role_window
    dock, panel = win.model_dock, win.model_dock.click_panel
    loaded = panel.info
    bad = tmp_path / "half.pth"
    bad.write_bytes(b"PK\x03\x04 not weights")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(bad), "")))
    QTest.mouseClick(panel.browse, Qt.MouseButton.LeftButton)
    QTest.mouseClick(panel.load_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Cannot load" in panel.label.text(), timeout=60000)
    assert "Still loaded" in panel.label.text() and "half.pth" in panel.label.text()
    assert panel.info is loaded and dock.click_worker.model is not None
    # the project keeps the file that loaded, not the one that failed (reopened, it loads the good one)
    assert panel.choices()["click_weights"]["weights"].endswith("random_sam.pth")
    assert dock.click_answer() == "promptable"  # a click is still Segment Anything's, not GrabCut's
    # and a failed pre-label load leaves Segment Anything alone
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(bad), "")))
    dock.arch.setCurrentIndex(dock.arch.findData("maskrcnn"))
    QTest.mouseClick(dock.browse, Qt.MouseButton.LeftButton)
    QTest.mouseClick(dock.load_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Cannot load" in dock.model_label.text(), timeout=60000)
    assert dock.info is None and panel.info is loaded and dock.click_worker.model is not None


def test_switching_the_click_model_away_and_back_keeps_it_loaded_and_its_weights(two_role_window, qtbot):
    """The pre-label answer or none chosen: Segment Anything stays loaded, unused (its memory is
    shown), clicks follow the choice; chosen again it answers at once, with the file chosen before."""
    win, _ = two_role_window
    dock, panel = win.model_dock, win.model_dock.click_panel
    loaded, chosen = panel.info, panel.weights.currentData()
    panel.kind.setCurrentIndex(panel.kind.findData("prelabel"))
    assert dock.click_answer() is None  # no pre-label model loaded yet
    assert "pre-label model" in panel.label.text() and "stays loaded, unused" in panel.label.text()
    panel.kind.setCurrentIndex(panel.kind.findData("none"))
    assert dock.click_answer() is None and not panel.load_button.isEnabled()
    panel.kind.setCurrentIndex(panel.kind.findData("sam"))
    assert panel.weights.currentData() == chosen  # the file chosen before, not the first preset
    assert panel.info is loaded and dock.click_answer() == "promptable" and "Loaded:" in panel.label.text()
    assert dock.click_worker.model is not None


@pytest.fixture
def learner_window(qtbot, tmp_path):
    """Two done images besides the open one; the pre-label model a UNet, learning for 5 s."""
    from segstudio.core import maskops
    from segstudio.core.region import Region
    from tests.gui.conftest import open_window
    d, masks = _disc_folder(tmp_path)
    win = open_window(qtbot, d, "disc", size=(1200, 900))
    p = win.project
    cls = p.store.classes()[0]
    for rec in p.store.images()[1:3]:
        c = maskops.crop_to_content(masks[rec.path])
        p.store.save_regions(rec.id, [Region(p.store.new_region_id(), cls.id, *c)], status="done")
    dock = win.model_dock
    dock.arch.setCurrentIndex(dock.arch.findData("unet"))
    dock.device.setCurrentIndex(dock.device.findData("cpu"))
    dock.live_panel.seconds.setValue(5)
    dock.live_panel.ahead.setValue(1)
    _tick(dock.live_panel.enabled)
    yield win
    dock.worker.cancel()
    if win.isVisible():
        win.close()


@pytest.mark.slow  # a 5 s UNet update
@pytest.mark.parametrize("click_model, answers", [("prelabel", "classes"), ("none", None)])
def test_the_learner_trains_and_loads_once_whatever_the_click_model(learner_window, qtbot, monkeypatch,
                                                                    click_model, answers):
    """Marking an image done flushes the edits once, trains the UNet, loads its new version once
    (the re-prediction's model is the one the window adopts), and the click answer follows."""
    from segstudio.inference.runtime import engine
    win = learner_window
    dock, live = win.model_dock, win.model_dock.live_panel
    dock.click_panel.kind.setCurrentIndex(dock.click_panel.kind.findData(click_model))
    flushes, loads, requests = [], [], []
    session_flush = win.session.flush
    win.session.flush = lambda *a, **k: (flushes.append("session"), session_flush(*a, **k))[1]
    dock._flush_edits = lambda: (flushes.append("panel"), session_flush())[1]
    real_load = engine.load_segmenter
    monkeypatch.setattr(engine, "load_segmenter", lambda *a, **k: (loads.append(a[0].weights), real_load(*a, **k))[1])
    real_request = dock.worker.load
    dock.worker.load = lambda spec: (requests.append(spec), real_request(spec))[1]
    with qtbot.waitSignal(live.updated, timeout=300000) as got:
        win.canvas.setFocus()
        QTest.keyClick(win.canvas, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    version = got.args[0][0]
    qtbot.waitUntil(lambda: (dock.info or {}).get("checkpoint") == version.path, timeout=60000)
    # marking done saved the edits (and moving on to the next image saved nothing new): the update did
    # not save them again
    assert "panel" not in flushes and flushes.count("session") <= 2, flushes
    assert loads == [version.path], loads  # loaded once, on the model thread, for re-prediction and the window
    assert requests == []  # the window adopted that model: no second load from the file
    assert dock.click_answer() == answers


@pytest.mark.parametrize("kind", ["none", "sam"])  # none chosen, or Segment Anything chosen and not loaded
def test_with_no_click_model_a_click_says_so_and_never_asks_the_pre_label_model(window, qtbot, monkeypatch, kind):
    """A pre-label model is loaded, the click model is none (or not loaded yet): a click and a box
    say so and add nothing: no pre-label answer, no GrabCut in silence."""
    from tests.gui.test_input_events import drag, message
    win = window
    dock = win.model_dock
    dock.info = {"family": "maskrcnn", "arch": "maskrcnn", "name": "mrcnn-test", "classes": ["cell"], "device": "cpu"}
    dock.click_panel.kind.setCurrentIndex(dock.click_panel.kind.findData(kind))
    asked = []
    monkeypatch.setattr(dock, "request_candidates", lambda *a: asked.append(a))
    monkeypatch.setattr(dock.click_worker, "prompt", lambda *a, **k: asked.append(a) or 0)
    win.canvas.setFocus()
    QTest.keyClick(win.canvas, Qt.Key.Key_I)
    click(win, 60.5, 40.5)
    assert "no click model is loaded" in message(win) and "Model panel" in message(win)
    drag(win, [(40.5, 30.5), (90.5, 60.5), (120.5, 90.5)])
    assert "no click model is loaded" in message(win)
    assert not asked and not win.editor.doc.regions
    dock.click_panel.kind.setCurrentIndex(dock.click_panel.kind.findData("prelabel"))
    assert dock.click_answer() == "instances"  # the pre-label model answers once it is chosen to


@pytest.mark.parametrize("kept, click_loads, prelabel_loads, says", [
    # the click model's weights file is gone: said so, nothing else loaded in its place
    ({"kind": "maskrcnn", "click_kind": "sam", "click_weights": {"weights": "/gone/sam.pth"}, "auto_load": True},
     0, 1, "weights used last time are gone"),
    # a project kept before the two roles, whose one model was Segment Anything: it is the click
    # model now, with the same preset; no pre-label model is loaded that the project never had
    ({"kind": "sam", "weights": "sam:sam_hq_vit_tiny_hq", "auto_load": True}, 1, 0, ""),
])
def test_kept_choices_load_what_was_chosen_and_nothing_else(qtbot, gui_folder, monkeypatch, kept, click_loads,
                                                            prelabel_loads, says):
    from segstudio.core.project import Project
    from segstudio.gui.click_worker import ClickWorker
    from segstudio.gui.model_worker import ModelWorker
    from tests.gui.conftest import open_window
    project = Project.open(gui_folder)
    project.store.set_setting("model_panel", kept)
    project.store.close()
    clicks, prelabels = [], []
    monkeypatch.setattr(ClickWorker, "load", lambda self, spec: clicks.append(spec))
    monkeypatch.setattr(ModelWorker, "load", lambda self, spec: prelabels.append(spec))
    win = open_window(qtbot, gui_folder)
    try:
        qtbot.wait(300)  # the auto-load runs from the event loop
        panel = win.model_dock.click_panel
        assert panel.key() == "sam"
        assert len(clicks) == click_loads and len(prelabels) == prelabel_loads, (clicks, prelabels)
        if click_loads:
            assert clicks[0]["options"] == {"sam_model": "sam_hq_vit_tiny_hq"} and clicks[0]["weights"] is None
        assert says in panel.label.text()
    finally:
        win.close()


@pytest.mark.slow  # two 5 s UNet updates
def test_the_learner_trains_the_loaded_pre_label_model_not_the_kind_list(learner_window, qtbot):
    """A UNet version is the loaded pre-label model; the Kind list then shows Mask R-CNN (not
    loaded): the next update trains and loads the UNet again, never a Mask R-CNN from scratch."""
    win = learner_window
    dock, live = win.model_dock, win.model_dock.live_panel
    with qtbot.waitSignal(live.updated, timeout=300000) as got:
        win.canvas.setFocus()
        QTest.keyClick(win.canvas, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    first = got.args[0][0]
    qtbot.waitUntil(lambda: (dock.info or {}).get("checkpoint") == first.path, timeout=60000)
    dock.arch.setCurrentIndex(dock.arch.findData("maskrcnn"))  # looked at, not loaded
    with qtbot.waitSignal(live.updated, timeout=300000) as got:
        win.canvas.setFocus()
        QTest.keyClick(win.canvas, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    second = got.args[0][0]
    assert "live-unet-" in second.path and second.version == first.version + 1, second.path
    assert "UNet" in live.status.text() or "Version" in live.status.text()
    qtbot.waitUntil(lambda: (dock.info or {}).get("checkpoint") == second.path, timeout=60000)
    assert dock.info["family"] == "unet"
