"""PromptRefiner: a click model refines a carried mask (a fake model of the promptable protocol
here; with SAM 2.1's random weights it only runs, which the last test checks where transformers is)."""

from __future__ import annotations

import numpy as np
import pytest

from segstudio.editing.propagate import carry
from segstudio.inference.propagate_refine import PromptRefiner, inside_points


class Cands:
    def __init__(self, masks, scores):
        self.masks, self.scores = masks, np.asarray(scores, float)

    def __len__(self):
        return len(self.masks)

    def mask(self, k):
        return self.masks[k]

    def crop(self, k):
        return None


class FakeModel:
    """Answers three candidates: a part of the object (scored best), the object, the whole frame."""
    name, device = "fake", "cpu"

    def __init__(self, obj):
        self.obj, self.embedded, self.prompts = obj, 0, []

    def open_cache(self, project):
        return None

    def embedding_for(self, image, image_path, cache=None, window=None, cancel=None):
        self.embedded += 1
        return object()

    def decode(self, emb, points=None, box=None, mask_input=None):
        self.prompts.append((list(points or []), box))
        part = self.obj.copy()
        part[:, : part.shape[1] // 2] = False
        return Cands([part, self.obj, np.ones_like(self.obj)], [0.99, 0.9, 0.5])


def blob(shape=(40, 50), y=(10, 25), x=(12, 30)):
    m = np.zeros(shape, bool)
    m[y[0]:y[1], x[0]:x[1]] = True
    return m


def test_the_candidate_that_agrees_with_the_warped_mask_wins_and_the_frame_is_embedded_once():
    obj = blob()
    model = FakeModel(obj)
    refine = PromptRefiner(model)
    image = np.zeros((40, 50), np.uint8)
    warped = blob(x=(13, 31))
    assert np.array_equal(refine(image, warped), obj)
    assert np.array_equal(refine(image, blob(y=(11, 26))), obj)
    assert model.embedded == 1  # the same frame: its embedding is kept
    points, box = model.prompts[0]
    assert box == (13.0, 10.0, 31.0, 25.0)
    assert 1 <= len(points) <= 3 and all(p[2] for p in points)
    assert all(warped[int(p[1]), int(p[0])] for p in points)
    refine(image + 1, warped)
    assert model.embedded == 2  # another frame


def test_an_empty_or_mismatched_mask():
    refine = PromptRefiner(FakeModel(blob()))
    assert refine(np.zeros((40, 50), np.uint8), np.zeros((40, 50), bool)) is None
    with pytest.raises(ValueError):
        refine(np.zeros((40, 50), np.uint8), np.zeros((41, 50), bool))
    with pytest.raises(ValueError):
        PromptRefiner(FakeModel(blob()), points=0)


def test_inside_points_are_deep_inside_and_apart():
    m = blob(shape=(60, 60), y=(5, 55), x=(20, 30))
    pts = inside_points(m, 3)
    assert len(pts) == 3
    ys = sorted(p[1] for p in pts)
    assert ys[1] - ys[0] >= 5 and ys[2] - ys[1] >= 5
    assert inside_points(np.zeros((5, 5), bool), 3) == []


def test_carry_uses_the_refiner():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (40, 50), dtype=np.uint8)
    obj = blob()
    out = carry(a, a, [(4, 1, obj)], PromptRefiner(FakeModel(obj)))
    assert [c.track for c in out] == [4] and np.array_equal(out[0].mask, obj)


@pytest.mark.slow
def test_sam2_with_random_weights_runs_behind_the_refiner():
    pytest.importorskip("transformers")
    pytest.importorskip("torch")
    from segstudio.inference.sam2.model import load_sam2
    from segstudio.inference.sam2.spec import Sam2Unavailable
    try:
        model = load_sam2(random_weights=True, device="cpu")
    except Sam2Unavailable as e:  # the SAM 2 extra is not installed here
        pytest.skip(str(e))
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    out = PromptRefiner(model)(image, blob(shape=(48, 64)))
    assert out is not None and out.shape == (48, 64) and out.dtype == bool


def test_evidence_replaces_the_warped_mask_where_a_predicted_object_matches():
    from segstudio.inference.propagate_refine import EvidenceRefiner, segmenter_masks
    obj, far = blob(), blob(y=(30, 38), x=(40, 48))
    calls = []

    def predict(image):
        calls.append(1)
        return [far, obj]

    refine = EvidenceRefiner(predict)
    image = np.zeros((40, 50), np.uint8)
    assert np.array_equal(refine(image, blob(x=(13, 31))), obj)  # IoU 17/19: the model's object
    lonely = blob(y=(0, 4), x=(0, 4))
    assert refine(image, lonely) is None  # nothing matches: no opinion (carry's GrabCut answers)
    assert len(calls) == 1  # one prediction a frame

    class Det:
        def __init__(self, m, x, y):
            self.mask, self.x, self.y = m, x, y

    class Seg:
        def predict(self, image):
            class P:
                def candidates(self):
                    return [Det(np.ones((3, 4), bool), 5, 6)]
            return P()

    (m,) = segmenter_masks(Seg())(image)
    assert m.shape == (40, 50) and m.sum() == 12 and m[6:9, 5:9].all()
