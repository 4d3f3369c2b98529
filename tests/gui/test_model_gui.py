"""The Model dock and its worker thread, offscreen, with tiny random-weight checkpoints."""

import numpy as np
import pytest
from PySide6.QtCore import QElapsedTimer, QTimer

pytest.importorskip("torch")

from segstudio.editing.assist_tools import PromptTool  # noqa: E402
from segstudio.editing.tools import Pointer  # noqa: E402
from segstudio.inference.runtime.segmenter import Detection  # noqa: E402
from tests.inference.helpers import tiny_unet_checkpoint  # noqa: E402


def load_unet(win, qtbot, path):
    dock = win.model_dock
    dock.arch.setCurrentIndex(dock.arch.findData("unet"))
    dock.add_weights(str(path))
    dock.device.setCurrentIndex(dock.device.findData("cpu"))
    dock.load()
    qtbot.waitUntil(lambda: dock.info is not None or "Cannot" in dock.model_label.text(), timeout=30000)
    assert dock.info is not None, dock.model_label.text()


def test_segment_image_is_one_undo_step(window, qtbot, tmp_path):
    ck = tiny_unet_checkpoint(tmp_path / "u.pt", classes=("object", "thing"), width=4, seed=3)
    load_unet(window, qtbot, ck)
    doc = window.editor.doc
    # force a decision everywhere so the random model yields regions: score threshold 0
    window.model_dock.segment_image()
    qtbot.waitUntil(lambda: doc.image_id in window.model_dock.cache, timeout=30000)
    pred = window.model_dock.cache[doc.image_id]
    n = len([d for d in pred.detections()])
    assert len(doc.regions) == n
    if n:
        assert all(r.source == "unet" for r in doc.regions.values())
        assert doc.undo_stack.undo_label.startswith("Segment image")
        window.undo()
        assert not doc.regions
    assert window.project.store.image(doc.image_id).status == "predicted"
    assert window.project.store.image(doc.image_id).uncertainty is not None


def test_segment_folder_with_progress(window, qtbot, tmp_path):
    ck = tiny_unet_checkpoint(tmp_path / "u.pt", classes=("object",))
    load_unet(window, qtbot, ck)
    done = []
    window.model_dock.folder_finished.connect(done.append)
    window.model_dock.scope.setCurrentIndex(window.model_dock.scope.findData(None))
    window.model_dock.segment_folder()
    qtbot.waitUntil(lambda: bool(done), timeout=60000)
    assert done[0].images == 3
    assert "3 images" in window.model_dock.progress_label.text()


@pytest.mark.slow  # a real forward pass over a 768x768 image: 4-8 s on 2 CPU cores
def test_event_loop_keeps_ticking_while_model_runs(window, qtbot, tmp_path):
    ck = tiny_unet_checkpoint(tmp_path / "u.pt", classes=("object",), width=16, depth=3)
    load_unet(window, qtbot, ck)
    gaps, clock = [], QElapsedTimer()
    clock.start()
    last = [clock.elapsed()]

    def tick():
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now
    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(5)
    big = (np.random.default_rng(0).random((768, 768, 3)) * 255).astype(np.uint8)
    window.model_dock.worker.predict_image(-1, big)
    got = []
    window.model_dock.worker.image_done.connect(lambda i, p: got.append(i))
    qtbot.waitUntil(lambda: -1 in got, timeout=60000)
    timer.stop()
    assert len(gaps) > 10
    # a model run on the GUI thread would stall it for the whole forward pass (seconds); the
    # margin over a frame keeps a busy 2-core machine from failing this (the figure itself is
    # measured in benchmarks/gui_bench.py)
    assert max(gaps[2:]) <= 250, max(gaps)


def test_load_failure_is_reported(window, qtbot, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 500)
    dock = window.model_dock
    dock.arch.setCurrentIndex(dock.arch.findData("unet"))
    dock.add_weights(str(bad))
    dock.load()
    qtbot.waitUntil(lambda: "Cannot load" in dock.model_label.text(), timeout=30000)
    assert dock.info is None and not dock.seg_image.isEnabled()


def test_accept_detection_adds_region_once(window, qtbot, tmp_path):
    ck = tiny_unet_checkpoint(tmp_path / "u.pt", classes=("object",))
    load_unet(window, qtbot, ck)
    det = Detection(1, np.ones((10, 12), bool), 5, 6, 0.8)
    doc = window.editor.doc
    rid = window.accept_detection(det)
    assert doc.regions[rid].source == "unet" and doc.regions[rid].area == 120
    assert window.accept_detection(det) == rid and len(doc.regions) == 1


class FakeEditor:
    """The prompt tool's view of a window with a model."""

    def __init__(self, cands):
        from segstudio.editing.editor import EditorState
        self.state = EditorState()
        self.cands = cands
        self.accepted = []

    def __getattr__(self, k):
        return getattr(self.state, k)


def test_prompt_tool_picks_best_instance_under_click_and_in_box():
    from segstudio.editing.editor import EditorState

    class Ed(EditorState):
        def __init__(self, cands):
            super().__init__()
            self.cands, self.accepted, self.requested = cands, [], []

        def model_loaded(self):
            return True

        def click_answer(self):
            return "instances"

        def model_candidates(self):
            return self.cands

        def request_model_candidates(self, then):
            self.requested.append(then)

        def accept_detection(self, det):
            self.accepted.append(det)
            return None

    a = Detection(1, np.ones((20, 20), bool), 0, 0, 0.6)
    b = Detection(1, np.ones((10, 10), bool), 5, 5, 0.9)
    c = Detection(2, np.ones((10, 10), bool), 60, 60, 0.7)
    ed = Ed([a, b, c])
    t = PromptTool(ed)
    t.press(Pointer(7, 7))
    t.release(Pointer(7, 7))
    assert ed.accepted[-1] is b  # the best-scoring instance under the click
    t.press(Pointer(2, 18))
    t.release(Pointer(2, 18))
    assert ed.accepted[-1] is a
    t.press(Pointer(50, 50))
    t.release(Pointer(80, 80))  # a box: the instance inside it
    assert ed.accepted[-1] is c
    ed2 = Ed(None)  # no cached prediction yet: ask the model, answer when it arrives
    t2 = PromptTool(ed2)
    t2.press(Pointer(7, 7))
    t2.release(Pointer(7, 7))
    assert ed2.requested and not ed2.accepted
    ed2.cands = [a, b]
    ed2.requested[0]()
    assert ed2.accepted[-1] is b


def test_segment_image_leaves_the_image_predicted_until_a_person_edits_it(window, qtbot, tmp_path):
    from tests.gui.test_window import drag
    ck = tiny_unet_checkpoint(tmp_path / "u.pt", classes=("object", "thing"), width=4, seed=3)
    load_unet(window, qtbot, ck)
    doc = window.editor.doc
    store = window.project.store
    for _ in range(2):  # the second time the image is already predicted
        window.model_dock.cache.pop(doc.image_id, None)
        window.model_dock.segment_image()
        qtbot.waitUntil(lambda: doc.image_id in window.model_dock.cache, timeout=30000)
        qtbot.wait(50)
        window.session.flush()
        assert doc.regions and store.image(doc.image_id).status == "predicted"
    assert store.region_count(doc.image_id) == len(doc.regions)  # the model's regions are stored
    window.set_tool("brush")
    drag(qtbot, window, [(20, 20), (40, 20)])
    window.session.flush()
    assert store.image(doc.image_id).status == "in_progress"


def test_fcn_and_deeplab_are_offered_and_offline_prelabelling_says_which_file(window, qtbot, tmp_path,
                                                                               monkeypatch):
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no cached weights

    def refuse(url, dst, *a, **k):
        raise OSError("no network in the tests")
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    dock = window.model_dock
    for kind in ("fcn", "deeplabv3", "deeplabv3_mobilenet"):
        assert dock.arch.findData(kind) >= 0
    ck = tiny_unet_checkpoint(tmp_path / "u.pt", classes=("object",))
    window.project.store.add_model(str(ck), "unet", {})
    dock.arch.setCurrentIndex(dock.arch.findData("fcn"))
    dock.device.setCurrentIndex(dock.device.findData("cpu"))
    items = [dock.weights.itemData(i) for i in range(dock.weights.count())]
    assert items == [None, str(ck)]  # the COCO-VOC weights first, then the project's semantic checkpoints
    assert dock.train_panel.ignore_unlabelled.isEnabled()  # a class-per-pixel model
    dock.weights.setCurrentIndex(0)
    dock.load()
    qtbot.waitUntil(lambda: "Cannot load" in dock.model_label.text(), timeout=60000)
    text = dock.model_label.text()
    assert "fcn_resnet50_coco-1167a1af.pth" in text and str(tmp_path / "hub" / "checkpoints") in text, text
    assert dock.info is None
