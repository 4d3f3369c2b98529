"""Click to segment anything: the prompt tool's logic with a stand-in model (no Qt, no torch);
the end-to-end test with the real worker and random SAM weights is at the bottom."""

import itertools
from dataclasses import dataclass

import numpy as np
import pytest

from segstudio.core import maskops
from segstudio.core.document import Document
from segstudio.core.region import Region
from segstudio.editing.assist_tools import PromptTool
from segstudio.editing.editor import INSTANCES, PROMPTABLE, EditorState
from segstudio.editing.tools import Pointer

H, W = 80, 100


@dataclass
class Cands:  # the shape of inference.sam.Candidates the tool reads
    masks: np.ndarray
    scores: np.ndarray

    def __len__(self):
        return len(self.masks)

    def mask(self, k):
        return self.masks[k]

    def crop(self, k):
        return maskops.crop_to_content(self.masks[k])


def disc(cx, cy, r):
    yy, xx = np.mgrid[:H, :W]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


class PromptEditor(EditorState):
    """Answers prompts like a promptable model: a disc around the last positive point (small and
    large), or the box filled; `hold` keeps the answers back to deliver them later."""

    def __init__(self, regions=()):
        super().__init__()
        ids = itertools.count(1000)
        self.doc = Document(1, W, H, regions, lambda: next(ids))
        self.image = np.zeros((H, W, 3), np.uint8)
        self.current_class_id = 1
        self.asked: list[tuple[list, tuple | None]] = []
        self.messages: list[str] = []
        self.hold = False
        self.held: list = []

    def model_loaded(self):
        return True

    def click_answer(self):
        return PROMPTABLE

    def message(self, text):
        self.messages.append(text)

    def prompt_model(self, points, box, done):
        self.asked.append((points, box))
        pos = [(x, y) for x, y, positive in points if positive]
        if pos:
            x, y = pos[-1]
            masks = np.stack([disc(x, y, 6), disc(x, y, 12)])
        elif box is not None:
            m = np.zeros((H, W), bool)
            m[box[1]:box[3], box[0]:box[2]] = True
            masks = m[None]
        else:
            masks = np.zeros((0, H, W), bool)
        cands = Cands(masks, np.linspace(0.9, 0.5, len(masks)).astype(np.float32))
        if self.hold:
            self.held.append((done, cands))
        else:
            done(cands)


def click(tool, x, y, button="left", **mods):
    tool.press(Pointer(x, y, button=button, **mods))
    tool.release(Pointer(x, y, button=button, **mods))


def test_click_previews_tab_cycles_enter_accepts_as_one_undo_step():
    ed = PromptEditor()
    tool = PromptTool(ed)
    click(tool, 50, 40)
    assert ed.asked[-1] == ([(50, 40, True)], None)
    pv = tool.preview()
    assert pv["points"] == [(50, 40, True)]
    m, x, y = pv["mask"]
    assert m.sum() == disc(50, 40, 6).sum() and (x, y) == (44, 34)
    assert tool.key("Tab")
    assert tool.preview()["mask"][0].sum() == disc(50, 40, 12).sum()  # the second candidate
    assert tool.key("Tab") and tool.preview()["mask"][0].sum() == disc(50, 40, 6).sum()  # round again
    assert tool.key("Return")
    (r,) = ed.doc.regions.values()
    assert r.class_id == 1 and r.mask.sum() == disc(50, 40, 6).sum() and ed.selected == [r.id]
    assert tool.preview() == {}  # prompts cleared after accepting
    ed.doc.undo()
    assert not ed.doc.regions


def test_right_click_is_negative_drag_is_a_box_escape_clears():
    ed = PromptEditor()
    tool = PromptTool(ed)
    click(tool, 50, 40)
    click(tool, 60, 40, button="right")
    assert ed.asked[-1][0] == [(50, 40, True), (60, 40, False)]
    tool.press(Pointer(10, 10))
    tool.move(Pointer(20, 20), True)
    assert tool.preview()["rect"] == (10, 10, 20, 20)  # the drag is drawn while it goes
    tool.release(Pointer(30, 25))
    assert ed.asked[-1][1] == (10, 10, 31, 26)
    assert tool.key("Escape")
    assert tool.preview() == {} and not tool.key("Escape")  # nothing left to clear: Esc is not used
    assert not ed.doc.regions


def test_shift_enter_adds_to_the_selected_region():
    base = Region(7, 1, disc(30, 40, 8)[32:49, 22:39], 22, 32)
    ed = PromptEditor([base])
    ed.select([7])
    tool = PromptTool(ed)
    click(tool, 70, 40)  # outside the region: a new object's prompt, not a refinement
    assert tool.sam.refine is None
    assert tool.key("Shift+Return")
    assert list(ed.doc.regions) == [7]
    assert ed.doc.regions[7].mask.sum() == disc(30, 40, 8).sum() + disc(70, 40, 6).sum()
    ed.doc.undo()
    assert ed.doc.regions[7].mask.sum() == disc(30, 40, 8).sum()


def test_a_first_click_on_a_region_refines_it():
    old = np.zeros((H, W), bool)
    old[30:50, 40:60] = True
    ed = PromptEditor([Region(7, 1, old[30:50, 40:60].copy(), 40, 30)])
    tool = PromptTool(ed)
    click(tool, 50, 40)
    assert tool.sam.refine == 7 and ed.asked[-1][1] == (40, 30, 60, 50)  # its box joins the prompts
    assert tool.key("Enter")
    assert list(ed.doc.regions) == [7]  # the same region, new pixels
    r = ed.doc.regions[7]
    full = np.zeros((H, W), bool)
    full[r.y:r.y + r.mask.shape[0], r.x:r.x + r.mask.shape[1]] = r.mask
    assert np.array_equal(full, disc(50, 40, 6))
    ed.doc.undo()
    assert ed.doc.regions[7].mask.sum() == old.sum()


def test_an_answer_to_older_prompts_is_dropped():
    ed = PromptEditor()
    ed.hold = True
    tool = PromptTool(ed)
    click(tool, 50, 40)
    click(tool, 20, 20)
    (done1, c1), (done2, c2) = ed.held
    done2(c2)
    done1(c1)  # late: belongs to the first click alone
    m, x, y = tool.preview()["mask"]
    assert (x, y) == (14, 14)
    tool.key("Escape")
    done2(c2)  # an answer after Esc shows nothing
    assert "mask" not in tool.preview()


def test_enter_before_an_answer_and_no_model_answer_say_why():
    ed = PromptEditor()
    ed.hold = True
    tool = PromptTool(ed)
    click(tool, 50, 40)
    assert tool.key("Return")
    assert not ed.doc.regions and "wait for the preview" in ed.messages[-1]
    done, _ = ed.held[-1]
    done(Cands(np.zeros((0, H, W), bool), np.zeros(0, np.float32)))
    assert "found nothing" in ed.messages[-1]


def test_other_models_keep_the_old_prompt_tool():
    ed = PromptEditor()
    ed.click_answer = lambda: INSTANCES
    tool = PromptTool(ed)
    assert not tool.key("Tab") and not tool.key("Return")
    assert not ed.asked


@pytest.mark.slow  # random-weight TinyViT: one image embedding (2-3 s on 2 CPU cores) and a decode
def test_window_click_segments_with_a_promptable_model(window, qtbot, tmp_path):
    pytest.importorskip("segment_anything_hq")
    import torch

    from segstudio.inference.sam.model import load_sam
    model = load_sam("sam_hq_vit_tiny", device="cpu", random_weights=True, download=False)
    path = tmp_path / "random_sam.pth"
    torch.save(model.net.state_dict(), path)
    dock = window.model_dock
    panel = dock.click_panel
    panel.kind.setCurrentIndex(panel.kind.findData("sam"))
    panel.add_weights(str(path))
    panel.device.setCurrentIndex(panel.device.findData("cpu"))
    ready = []
    dock.click_worker.ready.connect(ready.append)
    panel.load()
    qtbot.waitUntil(lambda: panel.info is not None or "Cannot" in panel.label.text(), timeout=60000)
    assert panel.info is not None and panel.info["family"] == "sam", panel.label.text()
    doc = window.editor.doc
    qtbot.waitUntil(lambda: doc.image_id in ready, timeout=60000)  # the open image's embedding
    tool = PromptTool(window.editor)
    before = len(doc.regions)
    h, w = window.editor.image.shape[:2]
    click(tool, w / 2, h / 2)
    qtbot.waitUntil(lambda: tool.sam.cands is not None, timeout=60000)
    if len(tool.sam.cands) and tool.sam.cands.masks[0].any():  # random weights may propose an empty mask
        assert tool.key("Return")
        assert len(doc.regions) == before + 1
        window.undo()
        assert len(doc.regions) == before
    # the embedding is on disk in the project's store area, for the next visit
    assert list((window.project.data_dir / "sam").rglob("*.pt"))


class SlowFakeSam:
    """Stands in for SamModel on the worker's thread: records what it is asked, takes its time."""

    def __init__(self):
        import threading
        self.embedded: list[str] = []
        self.decoded = 0
        self.gate = threading.Event()

    def embedding_for(self, image, path, cache, window, cancel=None):
        self.gate.wait(5)  # the first request holds the thread until the test has queued the rest
        self.embedded.append(str(path))
        return path

    def decode(self, emb, points, box, mask_input=None):
        self.decoded += 1
        return Cands(np.zeros((1, 4, 4), bool), np.ones(1, np.float32))


def test_worker_skips_what_nobody_waits_for(qtbot, tmp_path):
    from types import SimpleNamespace

    from PIL import Image

    from segstudio.gui.click_worker import ClickWorker
    nxt = tmp_path / "d.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(nxt)
    w = ClickWorker(project=SimpleNamespace(allow_large=False))
    fake = SlowFakeSam()
    fake.gate.set()
    w._need_model = lambda: (fake, None)
    ready, answers = [], []
    w.ready.connect(ready.append)
    w.candidates.connect(lambda i, n, c: answers.append((i, n)))
    hold = __import__("threading").Event()
    w._request("busy", lambda: hold.wait(5))  # the click thread is busy meanwhile (loading, say)
    img = np.zeros((4, 4, 3), np.uint8)
    w.open(1, "a.png", img, None)
    w.open(2, "b.png", img, None)  # the user moved on before these started
    w.open(3, "c.png", img, None, next_path=str(nxt))
    n1 = w.prompt(3, "c.png", img, None, [(1, 1, True)], None)
    n2 = w.prompt(3, "c.png", img, None, [(1, 1, True), (2, 2, False)], None)
    hold.set()
    qtbot.waitUntil(lambda: not w.busy and str(nxt) in fake.embedded, timeout=10000)
    assert fake.embedded[0] == "c.png"  # images 1 and 2 were skipped: no longer shown
    assert "a.png" not in fake.embedded and "b.png" not in fake.embedded
    # the next image in the list was embedded ahead, on its own thread
    assert ready == [3]
    assert answers == [(3, n2)] and n1 < n2 and fake.decoded == 1  # only the newest prompt decoded
    w.shutdown()


class CancellableFakeSam:
    """Embeds in 0.3 s, stopping when its cancel says so (as the encoder does between layers)."""

    def __init__(self):
        self.done: list[str] = []
        self.cancelled: list[str] = []

    def embedding_for(self, image, path, cache, window, cancel=None):
        import time
        for _ in range(30):
            if cancel is not None and cancel():
                self.cancelled.append(str(path))
                raise InterruptedError("cancelled")
            time.sleep(0.01)
        self.done.append(str(path))
        return path

    def decode(self, emb, points, box, mask_input=None):
        return Cands(np.zeros((1, 4, 4), bool), np.ones(1, np.float32))


@pytest.mark.parametrize("opened, kept", [(4, True), (5, False)])
def test_the_embedding_ahead_goes_on_when_the_user_opens_that_image(qtbot, tmp_path, opened, kept):
    """Opening the image being embedded ahead keeps that work (it used to be cancelled and started
    again); opening any other image stops it."""
    import time
    from types import SimpleNamespace

    from PIL import Image

    from segstudio.gui.click_worker import ClickWorker
    nxt = tmp_path / "d.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(nxt)
    w = ClickWorker(project=SimpleNamespace(allow_large=False))
    fake = CancellableFakeSam()
    w._need_model = lambda: (fake, None)
    img = np.zeros((4, 4, 3), np.uint8)
    w.open(3, "c.png", img, None, next_path=str(nxt), next_id=4)
    qtbot.waitUntil(lambda: "c.png" in fake.done, timeout=10000)
    time.sleep(0.05)  # the embedding ahead has started
    w.open(opened, str(nxt) if opened == 4 else "e.png", img, None)
    qtbot.waitUntil(lambda: not w.busy, timeout=10000)
    time.sleep(0.4)
    assert (str(nxt) in fake.done) == kept, (fake.done, fake.cancelled)
    assert (str(nxt) in fake.cancelled) == (not kept)
    w.shutdown()


def test_enter_with_no_class_keeps_the_candidate_and_says_why():
    ed = PromptEditor()
    ed.current_class_id = None  # a fresh project: no class yet
    tool = PromptTool(ed)
    click(tool, 50, 40)
    assert tool.key("Return")
    assert not ed.doc.regions and "Add a class first" in ed.messages[-1]
    assert "mask" in tool.preview()  # the candidate is still there: add a class, then Enter again
    ed.current_class_id = 1
    assert tool.key("Return") and len(ed.doc.regions) == 1
