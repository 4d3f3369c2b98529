"""The Model panel and the model tools keep the user's trust: a failed load keeps the working
model and says so, the Model click never answers with GrabCut in silence, Segment Anything's Tab
stays on the canvas, and the panel neither clips nor widens."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFileDialog, QWidget

from segstudio.core.records import DONE
from tests.gui.test_input_events import click, message


def _choose_file_and_load(win, qtbot, monkeypatch, path) -> None:
    """The panel's … button picks `path` (the file dialog answers it), then Load model is clicked."""
    dock = win.model_dock
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(path), "")))
    win.model_dw.raise_()
    QTest.mouseClick(dock.browse, Qt.MouseButton.LeftButton)
    assert dock.weights.currentData() == str(path)
    before = dock.model_label.text()
    QTest.mouseClick(dock.load_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock.model_label.text() not in (before, "Loading…"), timeout=60000)


def _hostile_checkpoint(tmp_path):
    bad = tmp_path / "half_copied.pt"
    bad.write_bytes(b"PK\x03\x04 not a checkpoint: the copy stopped here")
    return bad


def _done_image(win):
    doc = win.editor.doc
    win.project.store.set_status(doc.image_id, DONE)
    return doc.image_id


@pytest.mark.slow  # loads a tiny UNet on the model thread (torch import: 3-6 s on 2 CPU cores)
def test_a_failed_load_keeps_the_loaded_model_and_says_so(window, qtbot, monkeypatch, tmp_path):
    pytest.importorskip("torch")
    from tests.inference.helpers import tiny_unet_checkpoint
    win, dock = window, window.model_dock
    dock.arch.setCurrentIndex(dock.arch.findData("unet"))
    dock.device.setCurrentIndex(dock.device.findData("cpu"))
    good = tiny_unet_checkpoint(tmp_path / "good.pt", classes=("object",), width=4, seed=3)
    _choose_file_and_load(win, qtbot, monkeypatch, good)
    assert dock.info is not None and "good.pt" in dock.model_label.text()
    _choose_file_and_load(win, qtbot, monkeypatch, _hostile_checkpoint(tmp_path))
    text = dock.model_label.text()
    assert "Cannot load" in text and "Still loaded" in text and "good.pt" in text, text
    assert dock.info is not None and "good.pt" in str(dock.info.get("checkpoint"))
    assert win.worker.segmenter is not None  # the worker kept it too
    assert dock.seg_image.isEnabled()
    # the Model click is answered by the kept model (a UNet: no GrabCut fallback; "unet" source)
    _done_image(win)
    win.set_tool("prompt")
    click(win, 80, 60)
    qtbot.waitUntil(lambda: "Asking the model" not in message(win), timeout=30000)
    assert "no click model is loaded" not in message(win)
    # a region, if any, is the model's (a GrabCut fallback would write a "manual" one)
    assert all(r.source != "manual" for r in win.editor.doc.regions.values())


def test_model_click_with_no_model_says_so_and_adds_nothing(window, qtbot):
    win = window
    image_id = _done_image(win)
    win.session.reload_current()
    qtbot.waitUntil(lambda: win.editor.doc is not None and win.editor.doc.image_id == image_id, timeout=5000)
    assert win.model_dock.info is None
    win.set_tool("prompt")
    for _ in range(2):  # a click, then a box
        click(win, 80, 60)
        QTest.qWait(300)  # an assist (GrabCut) would be back by now
    from tests.gui.test_input_events import drag
    drag(win, [(50.5, 35.5), (90.5, 60.5), (110.5, 85.5)])
    QTest.qWait(500)
    assert not win.editor.doc.regions
    assert "no click model is loaded" in message(win) and "Model panel" in message(win)
    win.session.flush()
    assert win.project.store.image(image_id).status == DONE
    assert win.project.store.region_count(image_id) == 0


def test_a_failed_first_load_says_no_model_is_loaded(window, qtbot, monkeypatch, tmp_path):
    pytest.importorskip("torch")
    win, dock = window, window.model_dock
    dock.arch.setCurrentIndex(dock.arch.findData("unet"))
    dock.device.setCurrentIndex(dock.device.findData("cpu"))
    _choose_file_and_load(win, qtbot, monkeypatch, _hostile_checkpoint(tmp_path))
    text = dock.model_label.text()
    assert "Cannot load" in text and "half_copied.pt" in text and "No model loaded" in text, text
    assert dock.info is None and not dock.seg_image.isEnabled()


class _OneCandidate:  # the shape of inference.sam.Candidates the prompt tool reads
    def __init__(self, h, w):
        m = np.zeros((1, h, w), bool)
        m[0, 40:80, 60:100] = True
        self.masks, self.scores = m, np.array([0.9], np.float32)

    def __len__(self):
        return 1

    def mask(self, k):
        return self.masks[k]

    def crop(self, k):
        from segstudio.core import maskops
        return maskops.crop_to_content(self.masks[k])


def test_segment_anything_tab_with_one_candidate_keeps_the_focus_and_enter_accepts(window, qtbot, monkeypatch):
    """Segment Anything stood in by its answer (one candidate): the keys are real key events sent
    where the keyboard focus is."""
    win, dock = window, window.model_dock
    dock.click_panel.kind.setCurrentIndex(dock.click_panel.kind.findData("sam"))
    dock.choice.set_loaded("click", {"family": "sam", "name": "sam-test", "classes": [], "device": "cpu"})
    h, w = win.editor.image.shape[:2]
    monkeypatch.setattr(dock, "prompt", lambda image_id, array, window_, points, box, done: done(_OneCandidate(h, w)))
    win.set_tool("prompt")
    win.activateWindow()
    win.canvas.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is win.canvas, timeout=3000)
    click(win, 80, 60)
    assert "candidate 1/1" in message(win)
    QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
    assert QApplication.focusWidget() is win.canvas, QApplication.focusWidget()
    assert "only candidate" in message(win)
    QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_Backtab, Qt.KeyboardModifier.ShiftModifier)
    assert QApplication.focusWidget() is win.canvas
    QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_Return)
    regions = list(win.editor.doc.regions.values())
    assert len(regions) == 1 and regions[0].area == 40 * 40
    QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)  # no prompt now: still the canvas's
    assert QApplication.focusWidget() is win.canvas


# ------------------------------------------------------------------ the panel's width and wheel
def _panel(win):
    win.model_dw.raise_()
    scroll = win.model_dw.widget()
    QApplication.processEvents()
    return win.model_dock, scroll


def _fits(dock, scroll) -> list[str]:
    """What sticks out past the right edge of the scroll area's viewport (nothing, when it fits)."""
    right = scroll.viewport().width()
    out = []
    if scroll.horizontalScrollBar().maximum() > 0:
        out.append(f"horizontal scroll of {scroll.horizontalScrollBar().maximum()} px")
    for w in dock.findChildren(QWidget):
        if w.isVisible() and w.mapTo(scroll.viewport(), w.rect().topRight()).x() > right:
            out.append(f"{type(w).__name__} {getattr(w, 'text', lambda: '')()!r:.40}")
    return out


def test_the_model_panel_fits_and_shows_a_live_versions_metrics_as_words(qtbot, gui_folder, tmp_path):
    from segstudio.core.project import Project
    from tests.gui.conftest import open_window
    project = Project.open(gui_folder)
    version = tmp_path / "unet_live_version_0011_of_a_project_with_a_rather_long_name.pt"
    version.write_bytes(b"stands in for a checkpoint: only listed")
    project.store.add_model(str(version), "unet", {"validation": {"mean_iou": 0.8123}, "done_images": 11,
                                                    "seconds": 30.391, "start": None, "held_aside": []})
    project.close()
    win = open_window(qtbot, gui_folder, size=(1200, 800))
    dock, scroll = _panel(win)
    width = scroll.viewport().width()
    assert _fits(dock, scroll) == []
    dock.arch.setCurrentIndex(dock.arch.findData("unet"))
    QApplication.processEvents()
    entry = dock.weights.itemText(dock.weights.findData(str(version)))
    assert "done_images" not in entry and "seconds" not in entry, entry
    assert "11 images" in entry and "30 s" in entry and "IoU 0.812" in entry, entry
    # a long error (a path with no spaces) wraps in the panel: the panel neither widens nor clips
    dock._load_failed(f"{tmp_path}/{'very_long_directory_name_' * 4}/x.pt is not a model checkpoint (44 bytes)")
    QApplication.processEvents()
    assert _fits(dock, scroll) == [] and scroll.viewport().width() == width
    win.model_dw.grab().save(str(tmp_path / "model_panel.png"))  # looked at by hand when this test changes


def _wheel_at(widget, dy=-120):
    from PySide6.QtCore import QPoint, QPointF
    from PySide6.QtGui import QWheelEvent
    pos = widget.rect().center()
    ev = QWheelEvent(QPointF(pos), QPointF(widget.mapToGlobal(pos)), QPoint(0, 0), QPoint(0, dy),
                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, ev)


def test_the_wheel_over_an_empty_loss_plot_scrolls_the_panel(window, qtbot):
    win = window
    dock, scroll = _panel(win)
    plot = dock.train_panel.plot
    bar = scroll.verticalScrollBar()
    assert bar.maximum() > 0  # the panel is taller than the dock
    bar.setValue(0)
    scroll.ensureWidgetVisible(plot, 0, 0)
    start = bar.value()
    view = dock.train_panel.loss_plot.getViewBox()
    before = view.viewRange()
    _wheel_at(plot.viewport())
    QApplication.processEvents()
    assert view.viewRange() == before, "the empty plot zoomed"
    assert bar.value() > start, "the panel did not scroll"
    # the live panel's chart too
    live = dock.live_panel.plot
    scroll.ensureWidgetVisible(live, 0, 0)
    start, lbefore = bar.value(), live.getPlotItem().getViewBox().viewRange()
    _wheel_at(live.viewport(), dy=120)
    QApplication.processEvents()
    assert live.getPlotItem().getViewBox().viewRange() == lbefore and bar.value() < start


def test_the_wheel_zooms_a_plot_with_data_once_it_is_clicked(window, qtbot):
    win = window
    dock, scroll = _panel(win)
    tp = dock.train_panel
    tp.loss_curve.setData([0, 1, 2, 3], [1.0, 0.7, 0.5, 0.4])
    scroll.ensureWidgetVisible(tp.plot, 0, 0)
    view = tp.loss_plot.getViewBox()
    before = view.viewRange()
    bar = scroll.verticalScrollBar()
    start = bar.value()
    win.activateWindow()
    QTest.mouseClick(tp.plot.viewport(), Qt.MouseButton.LeftButton, pos=tp.plot.viewport().rect().center())
    qtbot.waitUntil(tp.plot.hasFocus, timeout=2000)
    _wheel_at(tp.plot.viewport())
    QApplication.processEvents()
    assert view.viewRange() != before and bar.value() == start


# ------------------------------------------------------------------ window words, not flags
CLI_WORDS = ("--weights", "segstudio weights", "segstudio train", "--model", "--out FILE")


def _missing_weights_messages():
    """The model layer's real 'not available' messages (the ones a Load shows in the window)."""
    from segstudio.inference.maskrcnn import model as maskrcnn
    from segstudio.inference.sam import spec as sam_spec
    from segstudio.inference.sam import weights as sam_weights
    msgs = [sam_weights.missing_message(info) for info in sam_spec.MODELS.values()]
    msgs.append(maskrcnn._missing("v2"))
    from segstudio.inference.semantic import nets as semantic_nets
    msgs += [semantic_nets._missing(w, "COCO-VOC weights") for w in _voc_weights()]
    return msgs


def _voc_weights():
    pytest.importorskip("torchvision")
    from torchvision.models.segmentation import DeepLabV3_ResNet50_Weights, FCN_ResNet50_Weights
    return [FCN_ResNet50_Weights.DEFAULT, DeepLabV3_ResNet50_Weights.DEFAULT]


def test_model_layer_remedies_read_in_window_words():
    from segstudio.gui.window_words import window_words
    unet = ("a UNet needs a checkpoint: train one first (segstudio train FOLDER --model unet --out FILE, or Train "
            "in the Model panel) or give --weights FILE")
    unknown = ("x.pth is none of the weights files segstudio knows: no known file is named so and its sha256 (ab…) "
               "matches none of the known ones (`segstudio weights` lists them; to use this file as it is, choose "
               "it with --weights FILE or the Model panel's …); nothing was copied")
    offline = ("cannot download a.pth from https://x/a.pth: no network. Offline: get the file on another machine "
               "and run `segstudio weights add FILE`")
    for msg in [*_missing_weights_messages(), unet, unknown, offline]:
        shown = window_words(msg)
        assert not any(w in shown for w in CLI_WORDS), shown
        assert "Model panel" in shown, shown


def test_a_load_that_finds_no_weights_tells_the_window_user_what_to_click(window, qtbot, monkeypatch):
    from segstudio.inference.runtime import engine
    from segstudio.inference.sam import spec as sam_spec
    from segstudio.inference.sam import weights as sam_weights
    from segstudio.inference.runtime.checkpoint import CheckpointError
    info = next(iter(sam_spec.MODELS.values()))

    def no_weights(spec, project=None):  # what load_clicker raises where the file is not there
        raise CheckpointError(sam_weights.missing_message(info))
    monkeypatch.setattr(engine, "load_clicker", no_weights)
    win, dock = window, window.model_dock
    win.model_dw.raise_()
    panel = dock.click_panel
    panel.kind.setCurrentIndex(panel.kind.findData("sam"))
    QTest.mouseClick(panel.load_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Cannot load" in panel.label.text(), timeout=30000)
    text = panel.label.text()
    assert not any(w in text for w in CLI_WORDS), text
    assert "Get weights…" in text and "…" in text, text


@pytest.mark.slow  # the dialog checks the catalogue's files first (imports torch): 10-25 s on 2 CPU cores
def test_get_weights_add_file_of_an_unknown_file_says_what_to_click(window, qtbot, monkeypatch, tmp_path):
    mystery = tmp_path / "mystery.pth"
    mystery.write_bytes(np.random.default_rng(0).bytes(4096))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(mystery), "")))
    win, dock = window, window.model_dock
    win.model_dw.raise_()
    QTest.mouseClick(dock.get_weights, Qt.MouseButton.LeftButton)
    dlg = dock.weights_dialog
    qtbot.waitUntil(lambda: dlg.isVisible() and dlg.add_button.isEnabled(), timeout=30000)  # its hash check ran
    QTest.mouseClick(dlg.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "mystery.pth" in dlg.note.text() and dlg.add_button.isEnabled(), timeout=30000)
    text = dlg.note.text()
    assert not any(w in text for w in CLI_WORDS), text
    assert "Model panel" in text, text
    dlg.reject()
