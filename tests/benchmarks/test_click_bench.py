"""The NoC harness (benchmarks/click_bench.py, benchmarks/_clicks.py) on tiny sets whose answers
are known: where the protocol clicks, what the masks mean, and what the script reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import _clicks  # noqa: E402
import click_bench  # noqa: E402


def square(shape=(40, 60), box=(10, 20, 30, 50)) -> np.ndarray:
    gt = np.zeros(shape, np.int8)
    gt[box[0]:box[2], box[1]:box[3]] = 1
    return gt


def test_first_click_is_positive_at_the_object_centre():
    gt = square()
    c = _clicks.Clicker(gt).next_click(np.zeros(gt.shape, bool))
    assert c is not None and c.positive
    assert 19 <= c.y <= 20 and 29 <= c.x <= 40  # on the ridge farthest from the 20x30 box's boundary


def test_image_border_counts_as_boundary():
    gt = np.zeros((20, 100), np.int8)
    gt[:, :50] = 1  # touches the left, top and bottom borders
    c = _clicks.Clicker(gt).next_click(np.zeros(gt.shape, bool))
    assert c is not None and c.positive
    assert 9 <= c.y <= 10  # the middle row, not the top one the padding-free transform would pick
    assert c.x < 50


def test_negative_click_when_the_false_positive_is_larger():
    gt = square()
    pred = gt.astype(bool).copy()
    pred[:, :] = True  # everything: the background is the larger error
    c = _clicks.Clicker(gt).next_click(pred)
    assert c is not None and not c.positive and gt[c.y, c.x] == 0


def test_a_pixel_is_never_clicked_twice_and_perfect_means_no_click():
    gt = square()
    ck = _clicks.Clicker(gt)
    empty = np.zeros(gt.shape, bool)
    a, b = ck.next_click(empty), ck.next_click(empty)
    assert (a.x, a.y) != (b.x, b.y)
    assert _clicks.Clicker(gt).next_click(gt == 1) is None


def test_the_unsure_band_counts_neither_way():
    gt = square()
    gt[8:10, :] = _clicks.IGNORE
    pred = gt == 1
    pred[8:10, :] = True  # wrong only inside the band
    assert _clicks.iou(gt, pred) == 1.0
    assert _clicks.Clicker(gt).next_click(pred) is None


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2 ** 32 - 1))
def test_every_click_lands_on_an_error_of_its_sign(seed):
    rng = np.random.default_rng(seed)
    gt = rng.integers(-1, 2, (12, 17)).astype(np.int8)
    pred = rng.random((12, 17)) < 0.5
    c = _clicks.Clicker(gt).next_click(pred)
    errors = (gt != _clicks.IGNORE) & ((gt == 1) != pred)
    if not errors.any():
        assert c is None
        return
    assert c is not None and errors[c.y, c.x]
    assert c.positive == bool(gt[c.y, c.x] == 1)


def test_masks_read_as_the_protocol_says():
    band = np.zeros((4, 4), np.uint8)
    band[1:3, 1:3] = 255
    band[0, :] = 128
    [(name, gt)] = _clicks.objects_of(band)
    assert name == "" and (gt == 1).sum() == 4 and (gt == _clicks.IGNORE).sum() == 4
    [(_, gt01)] = _clicks.objects_of((band == 255).astype(np.uint8))
    assert (gt01 == 1).sum() == 4 and not (gt01 == _clicks.IGNORE).any()
    ids = np.zeros((4, 4), np.uint16)
    ids[0, 0], ids[3, 3], ids[1, 1:3] = 7, 9, 12
    objs = _clicks.objects_of(ids)
    assert [n for n, _ in objs] == ["#7", "#9", "#12"] and (objs[2][1] == 1).sum() == 2
    assert _clicks.objects_of(np.zeros((3, 3), np.uint8)) == []
    with pytest.raises(ValueError):
        _clicks.objects_of(np.zeros((3, 3), np.float32))


def test_noc_and_summary():
    assert _clicks.noc([0.5, 0.86, 0.91], 0.85, 20) == 2
    assert _clicks.noc([0.5, 0.86, 0.91], 0.90, 20) == 3
    assert _clicks.noc([0.5] * 20, 0.90, 20) == 20
    runs = [_clicks.Run("a", "t", [0.95]), _clicks.Run("b", "t", [0.2] * 20)]
    s = _clicks.summarise(runs, 20)
    assert s["noc90"] == pytest.approx(10.5) and s["failures90"] == 1
    assert s["iou_per_click"][0] == pytest.approx(0.575)
    assert s["iou_per_click"][5] == pytest.approx(0.575)  # a finished run keeps its last IoU


class Oracle(_clicks.Session):
    def __init__(self, gt):
        self.gt = gt

    def answer(self, clicks, previous):
        return self.gt == 1


class Nothing(_clicks.Session):
    def answer(self, clicks, previous):
        return np.zeros(previous.shape, bool)


def test_run_object_stops_at_the_target_and_counts_failures():
    gt = square()
    r = _clicks.run_object(lambda img, key: Oracle(gt), "oracle", np.zeros((40, 60), np.uint8), "k", gt, "x")
    assert r.ious == [1.0] and r.clicks_to(0.9) == 1
    r = _clicks.run_object(lambda img, key: Nothing(), "none", np.zeros((40, 60), np.uint8), "k", gt, "x",
                           max_clicks=7)
    assert len(r.ious) == 7 and r.clicks_to(0.85) is None


def write_set(root: Path, n: int = 2) -> tuple[Path, Path]:
    """Dark photos with one bright disc each; masks 0/128/255 with an unsure band."""
    import cv2
    images, masks = root / "images", root / "masks"
    images.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(0)
    for k in range(n):
        img = (rng.random((120, 160, 3)) * 50).astype(np.uint8)
        m = np.zeros((120, 160), np.uint8)
        cv2.circle(m, (60 + 20 * k, 60), 30, 255, -1)
        img[m > 0] = (200, 180, 40)
        band = cv2.dilate(m, np.ones((3, 3), np.uint8)) - cv2.erode(m, np.ones((3, 3), np.uint8))
        m[band > 0] = 128
        Image.fromarray(img).save(images / f"p{k}.png")
        Image.fromarray(m).save(masks / f"p{k}.png")
    return images, masks


def test_script_on_a_tiny_set_reports_and_skips_bad_files(tmp_path, capsys):
    images, masks = write_set(tmp_path)
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    Image.fromarray(np.zeros((10, 10), np.uint8) + 255).save(masks / "broken.png")
    Image.fromarray(np.zeros((50, 50, 3), np.uint8)).save(images / "small.png")
    Image.fromarray(np.zeros((40, 40), np.uint8) + 255).save(masks / "small.png")  # another size
    out = tmp_path / "r.json"
    assert click_bench.main(["--images", str(images), "--masks", str(masks), "--tools", "grabcut",
                             "--max-clicks", "8", "--json", str(out), "--quiet"]) == 0
    r = json.loads(out.read_text())
    g = r["tools"]["grabcut"]
    assert g["objects"] == 2 and set(g) >= {"noc85", "noc90", "failures90", "iou_per_click", "seconds_per_click"}
    assert g["noc90"] <= 3 and g["failures90"] == 0  # a bright disc on a dark ground: a click or two
    assert len(g["iou_per_click"]) == 8
    assert {i["name"] for i in r["images"]} == {"p0.png", "p1.png"}
    assert all(set(i) >= {"name", "tool", "clicks_to_85", "clicks_to_90", "ious"} for i in r["images"])
    assert any("broken.png" in s and "image" in s for s in r["skipped"])
    assert any("small.png" in s and "40x40" in s for s in r["skipped"])
    assert "| grabcut | 2 |" in capsys.readouterr().out


def test_instance_maps_run_once_per_instance(tmp_path):
    images, masks = tmp_path / "i", tmp_path / "m"
    images.mkdir()
    masks.mkdir()
    img = np.zeros((80, 120, 3), np.uint8)
    ids = np.zeros((80, 120), np.uint8)
    img[10:40, 10:50], ids[10:40, 10:50] = (250, 30, 30), 3
    img[45:75, 60:110], ids[45:75, 60:110] = (30, 250, 30), 5
    img[5:20, 80:110], ids[5:20, 80:110] = (30, 30, 250), 8
    Image.fromarray(img).save(images / "a.png")
    Image.fromarray(ids).save(masks / "a.png")
    r = click_bench.bench({"grabcut": click_bench.classical_tool("grabcut")}, _clicks.pairs(images, masks), 5,
                          say=lambda s: None)
    assert sorted(i["name"] for i in r["images"]) == ["a.png#3", "a.png#5", "a.png#8"]


def test_unknown_tool_and_missing_model_say_so(tmp_path):
    images, masks = write_set(tmp_path, 1)
    with pytest.raises(SystemExit, match="unknown tool"):
        click_bench.main(["--images", str(images), "--masks", str(masks), "--tools", "magic"])
    with pytest.raises(SystemExit, match="--checkpoint"):
        click_bench.main(["--images", str(images), "--masks", str(masks), "--tools", "model"])


def test_components_and_sample_pick_the_same_cells_every_run(tmp_path):
    images, masks = tmp_path / "i", tmp_path / "m"
    images.mkdir()
    masks.mkdir()
    lab = np.zeros((60, 90), np.uint8)
    for k in range(6):  # six "cells" in a two-valued map, split by one-pixel "membranes"
        lab[5:55, 1 + 15 * k:15 + 15 * k] = 255
    Image.fromarray(np.dstack([lab] * 3)).save(images / "s.png")
    Image.fromarray(lab).save(masks / "s.png")
    img, objs = click_bench.load_pair(images / "s.png", masks / "s.png", components=True)
    assert len(objs) == 6 and all((g == 1).sum() == 50 * 14 for _, g in objs)
    _, a = click_bench.load_pair(images / "s.png", masks / "s.png", components=True, sample=3)
    _, b = click_bench.load_pair(images / "s.png", masks / "s.png", components=True, sample=3)
    assert [n for n, _ in a] == [n for n, _ in b] and len(a) == 3
    _, whole = click_bench.load_pair(images / "s.png", masks / "s.png")
    assert len(whole) == 1


def test_the_model_tool_answers_the_predicted_area_under_the_first_click():
    from segstudio.inference.runtime.segmenter import Prediction
    cm = np.zeros((40, 60), np.uint8)
    cm[5:20, 5:25] = 1
    cm[25:35, 30:55] = 1  # two areas of one class: a click takes the one under it
    cm[5:15, 40:55] = 2
    pred = Prediction(60, 40, 0.0, class_map=cm, confidence=np.full(cm.shape, 200, np.uint8))
    tool = _clicks.model_tool(lambda image: pred.candidates(), lambda i, k: Oracle(None))
    s = tool(np.zeros((40, 60, 3), np.uint8), "k")
    out = s.answer([_clicks.Click(40, 30, True)], np.zeros(cm.shape, bool))
    want = np.zeros(cm.shape, bool)
    want[25:35, 30:55] = True
    assert np.array_equal(out, want)


def test_the_model_tool_loads_a_checkpoint_and_refines_after_the_first_click(tmp_path):
    pytest.importorskip("torch")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
    from helpers import tiny_unet_checkpoint
    ck = tiny_unet_checkpoint(tmp_path / "u.pt")
    img, masks = write_set(tmp_path, 1)
    args = click_bench.argparse.Namespace(checkpoint=str(ck), device="cpu", then="grabcut")
    r = click_bench.bench({"model": click_bench.model(args)}, _clicks.pairs(img, masks), 6, say=lambda s: None)
    # a random UNet labels nothing here: the first click takes nothing, GrabCut's clicks do the rest
    assert r["tools"]["model"]["objects"] == 1 and r["images"][0]["ious"][-1] > 0.85


def test_soft_edged_band_masks_and_float_masks(tmp_path):
    soft = np.zeros((6, 6), np.uint8)
    soft[1:5, 1:5] = 128
    soft[2:4, 2:4] = 250  # a band at 128, an object at 250: > 128 is the object
    soft[2, 2] = 200
    [(_, gt)] = _clicks.objects_of(soft)
    assert (gt == 1).sum() == 4 and (gt == _clicks.IGNORE).sum() == 12
    Image.fromarray(np.zeros((4, 4), np.float32) + 0.9).save(tmp_path / "f.tif")
    with pytest.raises(ValueError, match="mask"):
        _clicks.read_labels(tmp_path / "f.tif")
