"""`segstudio --self-test`: check that an install works, offscreen, in seconds.

Each check drives the app's own code on a copy of the bundled samples in a temporary folder:
the project store, the main window (brush stroke and undo through real mouse events, GrabCut
on its assist worker, autosave on close), UNet training and prediction on the CPU from random
weights (nothing is downloaded), and the COCO exporter, whose file pycocotools then reads back.
One line per check, then a summary; the exit code is 0 only when every check passed. The same
code runs from a pip install and inside the PyInstaller bundle (no source tree, no `python`).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

BRUSH_IMAGE = "hopper.jpg"  # 8-bit RGB, small: the brush and GrabCut checks
TRAIN_IMAGE = "nuclei-16bit.tif"  # the sample with annotations (done): training and prediction
TIMEOUT_S = 60.0  # the longest a check waits for the window's workers


class CheckFailed(Exception):
    """A check found the app misbehaving; the message is the one line shown after FAIL."""


@dataclass
class Context:
    """What the checks share: the temporary folder, and what each check leaves for the next."""
    tmp: Path
    app: Any = None  # QApplication
    project: Any = None  # segstudio.core.project.Project
    window: Any = None  # segstudio.gui.main_window.MainWindow
    image_id: int | None = None  # the image shown in the window
    checkpoint: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def images(self) -> Path:
        return self.tmp / "images"


def _need(value: Any, what: str) -> Any:
    if value is None:
        raise CheckFailed(f"no {what} (an earlier check failed)")
    return value


def _wait(ctx: Context, cond: Callable[[], bool], what: str, timeout: float = TIMEOUT_S) -> None:
    from segstudio.gui.screenshot import wait_until
    if not wait_until(ctx.app, cond, timeout):
        raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}")


def _record(project: Any, name: str) -> Any:
    rec = next((r for r in project.store.images() if r.path == name), None)
    if rec is None:
        raise CheckFailed(f"{name} is not in the project")
    return rec


# ---------------------------------------------------------------------------------- the checks
def check_samples(ctx: Context) -> str:
    """Copy the bundled samples, open them as the app does (store elsewhere, sample annotations
    imported) and decode every image."""
    from segstudio.app import SAMPLES, open_samples, sample_images
    found = sample_images()
    if not found:
        raise CheckFailed(f"no sample images in {SAMPLES}")
    ctx.images.mkdir()
    for p in found:
        shutil.copy2(p, ctx.images / p.name)
    ctx.project = project = open_samples(ctx.tmp / "store" / "project.db", folder=ctx.images)
    recs = project.store.images()
    if len(recs) != len(found):
        raise CheckFailed(f"{len(found)} sample images, {len(recs)} in the project")
    for rec in recs:
        project.load_image(rec)
        if project.store.image(rec.id).error:
            raise CheckFailed(f"{rec.path}: {project.store.image(rec.id).error}")
    regions = project.store.region_count()
    if not regions:
        raise CheckFailed("the sample annotations were not imported")
    return f"{len(recs)} images decoded, {regions} regions imported"


def check_window(ctx: Context) -> str:
    """The main window, offscreen, showing one sample."""
    from PySide6.QtCore import QSettings

    from segstudio.gui.main_window import MainWindow
    project = _need(ctx.project, "project")
    settings = QSettings(str(ctx.tmp / "settings.ini"), QSettings.Format.IniFormat)  # not the user's
    ctx.window = win = MainWindow(project, settings)
    win.resize(1000, 700)
    win.show()
    rec = _record(project, BRUSH_IMAGE)
    win.open_image(rec.id)
    _wait(ctx, lambda: win.editor.doc is not None and win.editor.doc.image_id == rec.id, f"{rec.path} to open")
    win.canvas.fit()
    ctx.app.processEvents()
    ctx.image_id = rec.id
    if win.editor.current_class_id is None:
        raise CheckFailed("no current class after opening the samples")
    image = win.editor.image
    if image is None:
        raise CheckFailed(f"{rec.path} opened without pixels")
    return f"{rec.path} ({image.shape[1]}x{image.shape[0]}) shown"


def _drag(win: Any, points: list[tuple[float, float]]) -> None:
    """Mouse press, moves and release on the canvas, at image coordinates."""
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtTest import QTest
    vp = win.canvas.viewport()

    def at(x: float, y: float):
        return win.canvas.mapFromScene(QPointF(x, y))

    left, none = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    QTest.mousePress(vp, left, none, at(*points[0]))
    for p in points[1:]:
        QTest.mouseMove(vp, at(*p))
    QTest.mouseRelease(vp, left, none, at(*points[-1]))


def _pixel(win: Any, x: float, y: float) -> int:
    """The canvas's rendered colour (ARGB) at an image point, after pending repaints."""
    from PySide6.QtCore import QPointF
    from PySide6.QtWidgets import QApplication
    QApplication.processEvents()
    vp = win.canvas.viewport()
    return vp.grab().toImage().pixel(win.canvas.mapFromScene(QPointF(x, y)))


def check_brush_undo(ctx: Context) -> str:
    """One brush stroke with the mouse makes one region, saved to the store; Undo removes it
    from the document and the store."""
    win = _need(ctx.window, "window")
    doc = win.editor.doc
    store = ctx.project.store
    before = set(doc.regions)
    stored = store.region_count(ctx.image_id)
    win.set_tool("brush")
    win.brush_spin.setValue(4)
    probe = (30.0, 20.0)  # on the stroke, away from where the brush outline is left
    shown = _pixel(win, *probe)
    _drag(win, [(20.0, 20.0), (40.0, 20.0), (60.0, 30.0)])
    new = set(doc.regions) - before
    if len(new) != 1:
        raise CheckFailed(f"the stroke made {len(new)} regions, not 1")
    area = doc.regions[new.pop()].area
    if area < 100:
        raise CheckFailed(f"the stroke painted {area} pixels, expected over 100")
    if _pixel(win, *probe) == shown:
        raise CheckFailed("the canvas does not show the stroke")
    if not win.session.flush(timeout=TIMEOUT_S) or store.region_count(ctx.image_id) != stored + 1:
        raise CheckFailed("the stroke was not saved to the store")
    win.undo_action.trigger()
    if set(doc.regions) != before:
        raise CheckFailed("Undo did not remove the stroke")
    if _pixel(win, *probe) != shown:
        raise CheckFailed("the canvas still shows the undone stroke")
    if not win.session.flush(timeout=TIMEOUT_S) or store.region_count(ctx.image_id) != stored:
        raise CheckFailed("the undone stroke is still in the store")
    return f"{area} px painted, saved, undone"


def check_grabcut(ctx: Context) -> str:
    """A box drawn with the GrabCut tool: the assist worker segments it into one region."""
    win = _need(ctx.window, "window")
    doc = win.editor.doc
    before = set(doc.regions)
    win.set_tool("grabcut")
    box = (14.0, 6.0, 114.0, 124.0)  # around the portrait in hopper.jpg
    _drag(win, [(box[0], box[1]), ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), (box[2], box[3])])
    _wait(ctx, lambda: set(doc.regions) != before, "GrabCut's region")
    new = set(doc.regions) - before
    if len(new) != 1:
        raise CheckFailed(f"GrabCut made {len(new)} regions, not 1")
    r = doc.regions[new.pop()]
    box_area = (box[2] - box[0]) * (box[3] - box[1])
    if not 0 < r.area < box_area:
        raise CheckFailed(f"GrabCut's region has {r.area} px, the box {box_area:.0f}")
    ctx.extra["grabcut_area"] = r.area
    return f"{r.area} px of a {box_area:.0f} px box"


def check_close(ctx: Context) -> str:
    """Closing the window writes its edits: the GrabCut region is in the store."""
    win = _need(ctx.window, "window")
    win.close()
    ctx.app.processEvents()
    ctx.window = None
    if win.isVisible():
        raise CheckFailed("the window refused to close")
    areas = [r.area for r in ctx.project.store.regions(ctx.image_id)]
    if ctx.extra.get("grabcut_area") not in areas:
        raise CheckFailed(f"the store holds {len(areas)} regions for {BRUSH_IMAGE}, not the GrabCut one")
    return f"{len(areas)} region saved for {BRUSH_IMAGE}"


def check_train(ctx: Context) -> str:
    """A tiny UNet trained for a few steps on the CPU, from random weights."""
    from segstudio.inference.training.unet import UNetTrainConfig, train_unet
    project = _need(ctx.project, "project")
    rec = _record(project, TRAIN_IMAGE)
    cfg = UNetTrainConfig(epochs=1, steps_per_epoch=4, batch=2, crop=64, val_fraction=0.0, device="cpu",
                          amp=False, pretrained=False, download=False, unet={"depth": 2, "width": 8})
    res = train_unet(project, ctx.tmp / "models" / "selftest-unet.pt", cfg, image_ids=[rec.id], val_ids=[])
    if res.best_path is None or not Path(res.best_path).is_file():
        raise CheckFailed(f"no checkpoint written ({res.best_path})")
    ctx.checkpoint = Path(res.best_path)
    losses = [float(h["loss"]) for h in res.history if "loss" in h]
    if not losses or not all(math.isfinite(loss) for loss in losses):
        raise CheckFailed(f"training loss {losses}")
    return f"{cfg.steps_per_epoch} steps on the CPU, loss {losses[-1]:.3f}"


def check_predict(ctx: Context) -> str:
    """The trained checkpoint loaded as the app loads one, run on one sample."""
    from segstudio.inference.runtime.checkpoint import load_checkpoint
    from segstudio.inference.runtime.device import choose_device
    from segstudio.inference.semantic.segmenter import UNetSegmenter
    project = _need(ctx.project, "project")
    path = _need(ctx.checkpoint, "checkpoint")
    seg = UNetSegmenter(load_checkpoint(path, expect_arch="unet"), choose_device("cpu"))
    rec = _record(project, TRAIN_IMAGE)
    image = project.load_image(rec)
    pred = seg.predict(image).wait()
    if pred.class_map is None or pred.class_map.shape != image.shape[:2]:
        got = None if pred.class_map is None else pred.class_map.shape
        raise CheckFailed(f"class map {got} for a {image.shape[:2]} image")
    h, w = pred.class_map.shape
    return f"{rec.path}: {w}x{h} class map, {len(pred.candidates())} regions proposed"


def check_two_models(ctx: Context) -> str:
    """Two models at once, in the window: Segment Anything (a TinyViT with random weights, saved
    and loaded as a user's file: no weights are downloaded) is the click model and answers clicks
    while the pre-label UNet learns from an image marked done; after the update the new version
    is the pre-label model and Segment Anything is still loaded."""
    from importlib.util import find_spec

    from PySide6.QtCore import QPoint, QPointF, QSettings, Qt
    from PySide6.QtTest import QTest
    if find_spec("segment_anything_hq") is None:
        return "skipped: Segment Anything is not installed (pip install segstudio[sam])"
    import torch

    from segstudio.gui.main_window import MainWindow
    from segstudio.inference.sam.model import load_sam
    project = _need(ctx.project, "project")
    weights = ctx.tmp / "models" / "random-sam-tiny.pth"
    weights.parent.mkdir(exist_ok=True)
    torch.save(load_sam("sam_hq_vit_tiny", device="cpu", random_weights=True, download=False).net.state_dict(),
               weights)
    settings = QSettings(str(ctx.tmp / "settings2.ini"), QSettings.Format.IniFormat)
    win = MainWindow(project, settings)
    try:
        win.resize(1000, 700)
        win.show()
        rec = _record(project, TRAIN_IMAGE)
        win.open_image(rec.id)
        _wait(ctx, lambda: win.editor.doc is not None and win.editor.doc.image_id == rec.id, f"{rec.path} to open")
        dock, panel, live = win.model_dock, win.model_dock.click_panel, win.model_dock.live_panel
        ready: list[int] = []
        answers: list[float] = []
        dock.click_worker.ready.connect(ready.append)
        dock.click_worker.candidates.connect(lambda *_: answers.append(time.perf_counter()))
        for device in (dock.device, panel.device):  # the pre-label and the click model's
            device.setCurrentIndex(device.findData("cpu"))
        panel.kind.setCurrentIndex(panel.kind.findData("sam"))
        panel.add_weights(str(weights))
        QTest.mouseClick(panel.load_button, Qt.MouseButton.LeftButton)
        _wait(ctx, lambda: panel.info is not None or "Cannot" in panel.label.text(), "Segment Anything to load",
              timeout=120)
        if panel.info is None:
            raise CheckFailed(panel.label.text().replace("\n", " "))
        _wait(ctx, lambda: rec.id in ready, "the image's embedding", timeout=120)
        dock.arch.setCurrentIndex(dock.arch.findData("unet"))
        live.seconds.setValue(5)
        live.ahead.setValue(1)
        QTest.mouseClick(live.enabled, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         QPoint(8, live.enabled.height() // 2))  # on its box: its middle may be past the text
        if not live.enabled.isChecked():
            raise CheckFailed("Learn as I annotate did not switch on")
        versions: list = []
        live.updated.connect(versions.append)
        win.canvas.setFocus()
        QTest.keyClick(win.canvas, Qt.Key.Key_I)  # the Model click / box tool
        QTest.keyClick(win.canvas, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)  # done: an update
        _wait(ctx, lambda: live.running or bool(versions), "the live update to start")
        h, w = _need(win.editor.image, "image").shape[:2]
        waits: list[float] = []

        def answered(n: int) -> Callable[[], bool]:
            return lambda: len(answers) > n
        while live.running and len(waits) < 10:
            n, t0 = len(answers), time.perf_counter()
            QTest.mouseClick(win.canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                             win.canvas.mapFromScene(QPointF(w * (0.3 + 0.04 * len(waits)), h / 2)))
            _wait(ctx, answered(n), "Segment Anything's answer during the update")
            waits.append(answers[-1] - t0)
            QTest.keyClick(win.canvas, Qt.Key.Key_Escape)
        _wait(ctx, lambda: bool(versions), "the live update", timeout=180)
        version = versions[0][0]
        _wait(ctx, lambda: (dock.info or {}).get("checkpoint") == version.path, "the new version to be the model")
        if not waits:
            raise CheckFailed("the update ended before a click could be made")
        if panel.info is None or dock.click_worker.model is None:
            raise CheckFailed("Segment Anything was unloaded by the update")
        return (f"{len(waits)} clicks answered during a UNet update (slowest {max(waits) * 1e3:.0f} ms); "
                f"{Path(version.path).name} is the pre-label model, Segment Anything still loaded")
    finally:
        win.close()
        ctx.app.processEvents()


def check_export_coco(ctx: Context) -> str:
    """The COCO exporter, its file read back with pycocotools and every mask decoded."""
    from pycocotools.coco import COCO

    from segstudio.io.coco import export_coco
    project = _need(ctx.project, "project")
    out = ctx.tmp / "export" / "annotations.json"
    report = export_coco(project, out)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco = COCO(str(out))
    expected = project.store.region_count()
    if len(coco.anns) != expected or report.regions != expected:
        raise CheckFailed(f"{len(coco.anns)} annotations read back, {expected} regions in the project")
    for ann in coco.anns.values():
        m = coco.annToMask(ann)
        if int(m.sum()) != int(ann["area"]) or not m.any():
            raise CheckFailed(f"annotation {ann['id']}: {int(m.sum())} px decoded, area {ann['area']}")
    return f"{len(coco.anns)} annotations on {len(coco.imgs)} images decoded"


def check_self_contained(ctx: Context) -> str:
    """Everything the checks above loaded came from this install: inside a PyInstaller bundle,
    no module read from a Python installed elsewhere on the machine (a stray site-packages on the
    path would make the bundle work here and fail on a clean machine). Modules read from files are
    those of a file loader; the bundle's own come from its archive or its folder."""
    import importlib.machinery as im
    _FILE_LOADERS = (im.SourceFileLoader, im.SourcelessFileLoader, im.ExtensionFileLoader)
    read: dict[str, str] = {}
    for name, mod in list(sys.modules.items()):
        spec = getattr(mod, "__spec__", None)
        origin = getattr(spec, "origin", None)
        # absolute and there: read from that file (the bundle's bootstrap modules name bare file names)
        if spec is not None and isinstance(spec.loader, _FILE_LOADERS) and origin and os.path.isabs(origin) \
                and os.path.exists(origin):
            read[name] = origin
    if not getattr(sys, "frozen", False):
        return f"{len(sys.modules)} modules loaded ({len(read)} from files); not a bundle, nothing more to check"
    home = Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent)).resolve()
    outside = sorted(f"{name} ({f})" for name, f in read.items() if not Path(f).resolve().is_relative_to(home))
    if outside:
        raise CheckFailed(f"{len(outside)} modules from outside the bundle {home}: {', '.join(outside[:5])}")
    return f"{len(sys.modules)} modules, none from outside {home}"


def check_torchvision_ops(ctx: Context) -> str:
    """torchvision's compiled operators, which Mask R-CNN needs (its C++ library is loaded by path,
    so a bundle can lack it while `import torchvision` works)."""
    import torch
    import torchvision
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]])
    keep = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
    if keep.tolist() != [0, 2]:
        raise CheckFailed(f"nms kept {keep.tolist()}, not [0, 2]")
    pooled = torchvision.ops.roi_align(torch.ones(1, 1, 16, 16), [boxes[:1]], output_size=(2, 2))
    if pooled.shape != (1, 1, 2, 2) or not torch.allclose(pooled, torch.ones_like(pooled)):
        raise CheckFailed("roi_align gave a wrong answer")
    return f"nms and roi_align (torchvision {torchvision.__version__})"


CHECKS: list[tuple[str, Callable[[Context], str]]] = [
    ("open bundled samples", check_samples),
    ("main window", check_window),
    ("brush stroke + undo", check_brush_undo),
    ("grabcut", check_grabcut),
    ("close window, edits saved", check_close),
    ("train tiny UNet", check_train),
    ("predict one image", check_predict),
    ("click model beside a learning pre-label model", check_two_models),
    ("torchvision operators for Mask R-CNN", check_torchvision_ops),
    ("export COCO + pycocotools", check_export_coco),
    ("nothing from outside the install", check_self_contained),
]


# ---------------------------------------------------------------------------------- the runner
def _say(line: str) -> None:
    if sys.stdout is not None:
        print(line, file=sys.stdout, flush=True)


def _attach_console() -> None:
    """A windowed build on Windows starts without stdout: write to the console it was started
    from (the cmd or PowerShell window), when there is one."""
    if sys.platform != "win32" or sys.stdout is not None:
        return
    import ctypes
    with contextlib.suppress(Exception):
        if ctypes.windll.kernel32.AttachConsole(-1):  # ATTACH_PARENT_PROCESS
            sys.stdout = open("CONOUT$", "w", encoding="utf-8", errors="replace")
            if sys.stderr is None:
                sys.stderr = sys.stdout


def run(verbose: bool = False, keep: bool = False) -> int:
    """Run every check; 0 when all passed, 1 otherwise. The temporary folder is removed
    afterwards unless a check failed (or `keep`): then its path is printed."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before the QApplication exists
    _attach_console()
    from PySide6 import QtCore
    from PySide6 import __version__ as qt_version
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from segstudio import __version__
    app = QApplication.instance() or QApplication(sys.argv[:1])
    frozen = " (frozen)" if getattr(sys, "frozen", False) else ""
    _say(f"segstudio {__version__} self-test{frozen}: Python {sys.version.split()[0]}, PySide6 {qt_version}, "
         f"Qt platform {QGuiApplication.platformName()}")
    ctx = Context(Path(tempfile.mkdtemp(prefix="segstudio-selftest-")), app=app)
    failed: list[str] = []
    start = time.perf_counter()
    previous = QtCore.qInstallMessageHandler(_qt_message)
    try:
        for name, check in CHECKS:
            t0 = time.perf_counter()
            try:
                detail = check(ctx)
            except Exception as e:  # noqa: BLE001 - any failure is one FAIL line, and the next check runs
                ms = (time.perf_counter() - t0) * 1000
                failed.append(name)
                reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
                if not isinstance(e, CheckFailed):
                    reason = f"{type(e).__name__}: {reason}" if reason else type(e).__name__
                _say(f"FAIL {name}: {reason} ({ms:.0f} ms)")
                if verbose:
                    traceback.print_exc()
            else:
                ms = (time.perf_counter() - t0) * 1000
                _say(f"ok   {name} ({ms:.0f} ms): {detail}")
    finally:
        _close(ctx)
        QtCore.qInstallMessageHandler(previous)
    total = time.perf_counter() - start
    if failed or keep:
        _say(f"kept the self-test's files: {ctx.tmp}")
    else:
        shutil.rmtree(ctx.tmp, ignore_errors=True)
    if failed:
        _say(f"self-test FAILED: {len(failed)} of {len(CHECKS)} checks ({', '.join(failed)}) in {total:.1f} s")
        return 1
    _say(f"self-test passed: {len(CHECKS)} checks in {total:.1f} s")
    return 0


# what Qt's offscreen platform says about itself, not about the app
_QT_NOISE = ("This plugin does not support",)


def _qt_message(mode: Any, context: Any, message: str) -> None:
    if not message.startswith(_QT_NOISE) and sys.stderr is not None:
        print(message, file=sys.stderr)


def _close(ctx: Context) -> None:
    """Close what the checks left open (after a failure): the window, then the store."""
    with contextlib.suppress(Exception):
        if ctx.window is not None:
            ctx.window.close()
            ctx.app.processEvents()
    with contextlib.suppress(Exception):
        if ctx.project is not None:
            ctx.project.close()
