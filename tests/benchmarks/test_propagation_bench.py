"""benchmarks/propagation.py on tiny stacks whose answers are known: how frames and masks are read,
how objects are matched and counted, and what the script reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import _propagation_data as data  # noqa: E402
import propagation  # noqa: E402


def squares(n=5, shape=(40, 48), step=0):
    """n frames of two textured squares (ids 3 and 8) on a textured background, moved `step` px right
    a frame."""
    rng = np.random.default_rng(0)
    bg = rng.integers(40, 90, shape).astype(np.uint8)
    tex = rng.integers(150, 250, (10, 10)).astype(np.uint8)
    frames, labels = [], []
    for i in range(n):
        f, lab = bg.copy(), np.zeros(shape, np.uint16)
        for ident, (y, x) in ((3, (5, 5)), (8, (22, 25))):
            x += step * i
            f[y:y + 10, x:x + 10] = tex
            lab[y:y + 10, x:x + 10] = ident
        frames.append(f)
        labels.append(lab)
    return frames, labels


def test_a_perfect_prediction_needs_nothing_and_a_shifted_one_is_redrawn():
    _, labels = squares()
    truth = data.objects_of(labels[0])
    same = [(t, m, 1.0) for t, m in truth.items()]
    c = propagation.compare(truth, same, labels[0].shape)
    assert c["pixels"] == 0 and c["by_iou"] == {"kept": 2, "good": 2, "redraw": 0, "add": 0, "delete": 0}
    assert c["by_track"] == {"kept": 2, "redraw": 0, "add": 0, "delete": 0}
    moved = [(3, np.roll(truth[3], 6, axis=1), 1.0)]  # IoU 4/16: redraw; object 8 missing: add
    c = propagation.compare(truth, moved, labels[0].shape)
    assert c["by_iou"]["redraw"] == 1 and c["by_iou"]["add"] == 1 and c["by_iou"]["delete"] == 0
    assert c["by_track"] == {"kept": 0, "redraw": 1, "add": 1, "delete": 0}
    assert c["pixels"] == 100 + 60 + 60  # object 8, and the two parts of 3 that differ
    wrong_id = [(99, truth[3], 1.0), (8, truth[8], 1.0)]  # right place, wrong identity
    c = propagation.compare(truth, wrong_id, labels[0].shape)
    assert c["by_iou"]["kept"] == 2 and c["by_track"] == {"kept": 1, "redraw": 0, "add": 1, "delete": 1}


def test_a_false_object_is_a_deletion():
    _, labels = squares()
    truth = data.objects_of(labels[0])
    extra = np.zeros(labels[0].shape, bool)
    extra[30:35, 0:5] = True
    pred = [(t, m, 1.0) for t, m in truth.items()] + [(50, extra, 1.0)]
    c = propagation.compare(truth, pred, labels[0].shape)
    assert c["by_iou"]["delete"] == 1 and c["by_track"]["delete"] == 1 and c["pixels"] == 25


def test_greedy_pairs_takes_the_best_pair_first():
    iou = np.array([[0.6, 0.7], [0.0, 0.55]])
    assert data.greedy_pairs(iou, 0.5) == [(0, 1)]
    assert data.greedy_pairs(np.zeros((0, 3)), 0.5) == []


def test_instances_are_linked_across_frames_by_overlap():
    a = np.zeros((30, 30), bool)
    a[2:12, 2:12] = True  # object A
    a[18:28, 18:28] = True  # object B
    b = np.zeros((30, 30), bool)
    b[3:13, 3:13] = True  # A, moved a little
    b[2:8, 20:28] = True  # a new one
    maps = data.link_instances([a, b])
    ida = int(maps[0][5, 5])
    assert maps[1][5, 5] == ida
    assert maps[1][4, 22] not in (0, ida, int(maps[0][20, 20]))
    assert len(np.unique(maps[1])) == 3  # background, A, the new one (B is gone)


def test_stacks_read_as_tiff_and_as_numbered_folders_alike(tmp_path):
    import tifffile
    frames, labels = squares(n=12)
    tifffile.imwrite(tmp_path / "f.tif", np.stack(frames))
    tifffile.imwrite(tmp_path / "m.tif", np.stack(labels))
    (tmp_path / "f").mkdir()
    (tmp_path / "m").mkdir()
    for i, (f, lab) in enumerate(zip(frames, labels, strict=True)):
        f = f.copy()
        f[0, 0] = i  # the frame's number, to check the order (2 before 10)
        frames[i] = f
        Image.fromarray(f).save(tmp_path / "f" / f"{i}.png")
        Image.fromarray(lab).save(tmp_path / "m" / f"{i}.png")
    got = data.read_sequence(tmp_path / "f")
    assert [int(g[0, 0]) for g in got] == list(range(12))
    for stack in ("m", "m.tif"):
        got_masks = data.read_sequence(tmp_path / stack, masks=True)
        assert all(np.array_equal(a, b) for a, b in zip(got_masks, labels, strict=True))
    assert len(data.read_sequence(tmp_path / "f.tif")) == 12


def test_bad_masks_and_paths_are_refused_clearly(tmp_path):
    import tifffile
    tifffile.imwrite(tmp_path / "m.tif", np.zeros((3, 8, 8), np.float32))
    with pytest.raises(SystemExit, match="unsigned integer"):
        data.read_sequence(tmp_path / "m.tif", masks=True)
    with pytest.raises(SystemExit, match="numbered images or a .tif"):
        data.read_sequence(tmp_path / "nothing.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no image files"):
        data.read_sequence(tmp_path / "empty")


def test_the_synthetic_video_has_exact_masks_of_three_objects():
    frames, labels = data.synthetic(frames=4)
    assert len(frames) == len(labels) == 4
    assert frames[0].dtype == np.uint8 and frames[0].shape == labels[0].shape + (3,)
    assert [sorted(data.objects_of(lab)) for lab in labels] == [[1, 2, 3]] * 4
    assert not np.array_equal(labels[0], labels[1])  # they move


def test_the_script_on_a_known_stack(tmp_path):
    frames, labels = squares(n=5, step=2)
    (tmp_path / "f").mkdir()
    (tmp_path / "m").mkdir()
    for i, (f, lab) in enumerate(zip(frames, labels, strict=True)):
        Image.fromarray(f).save(tmp_path / "f" / f"{i}.png")
        Image.fromarray(lab).save(tmp_path / "m" / f"{i}.png")
    out = tmp_path / "r.json"
    assert propagation.main(["--frames", str(tmp_path / "f"), "--masks", str(tmp_path / "m"), "--from", "2",
                             "--methods", "flow", "--actions", "0", "--live-budget", "0", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["from"] == 2 and res["forward"] == [3, 4] and res["backward"] == [1, 0]
    none = res["totals"]["chain/none"]
    assert none["truth_objects"] == 8 and none["by_iou"]["add"] == 8 and none["pixels"] == 8 * 100
    copy = res["totals"]["chain/copy"]  # the squares moved 2 and 4 px: IoU 8/12 and 6/14
    assert copy["by_iou"]["kept"] == 4 and copy["by_iou"]["redraw"] == 4
    assert res["totals"]["step/copy"]["by_iou"]["kept"] == 8
    flow = res["totals"]["chain/flow"]  # textured squares on texture: flow follows them exactly
    assert flow["by_track"]["kept"] == 8 and flow["pixels"] <= 40
    assert flow["carried"] == [2, 2]


def test_frames_and_masks_must_agree(tmp_path):
    frames, labels = squares(n=3)
    (tmp_path / "f").mkdir()
    (tmp_path / "m").mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / "f" / f"{i}.png")
    Image.fromarray(labels[0]).save(tmp_path / "m" / "0.png")
    with pytest.raises(SystemExit, match="3 frames but 1 masks"):
        propagation.main(["--frames", str(tmp_path / "f"), "--masks", str(tmp_path / "m"),
                          "--actions", "0", "--live-budget", "0"])
