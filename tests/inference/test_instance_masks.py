"""Mask R-CNN's masks pasted by segstudio (OpenCV, into each box only, after the model) against
torchvision's own full-size paste."""

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.models.detection.roi_heads import expand_boxes, paste_masks_in_image

from segstudio.inference.runtime.checkpoint import load_checkpoint
from segstudio.inference.runtime.device import choose_device
from segstudio.inference.maskrcnn.instance_masks import LowResMasks, paste_mask
from segstudio.inference.maskrcnn.model import MaskRCNNSegmenter, model_from_checkpoint
from segstudio.inference.runtime.postprocess import encode_detections, payload
from segstudio.inference.runtime.preprocess import to_device
from tests.inference.helpers import tiny_maskrcnn_checkpoint


def _canvas(d, h, w):
    c = np.zeros((h, w), bool)
    c[d.y:d.y + d.mask.shape[0], d.x:d.x + d.mask.shape[1]] = d.mask
    return c


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 120), st.integers(1, 90), st.lists(st.tuples(
    st.floats(-20, 140), st.floats(-20, 100), st.floats(0.2, 160), st.floats(0.2, 120)), min_size=1, max_size=6),
    st.integers(0, 2 ** 16))
def test_paste_matches_torchvision(w, h, boxes, seed):
    rng = np.random.default_rng(seed)
    masks = torch.from_numpy(cv2.GaussianBlur(rng.random((len(boxes), 28, 28)).astype(np.float32), (5, 5), 2)
                             .reshape(len(boxes), 1, 28, 28))
    b = torch.tensor([[x, y, x + bw, y + bh] for x, y, bw, bh in boxes], dtype=torch.float32)
    b[:, 0::2] = b[:, 0::2].clamp(0, w)  # the detector clips its boxes to the image
    b[:, 1::2] = b[:, 1::2].clamp(0, h)
    full = paste_masks_in_image(masks, b, (h, w))[:, 0]
    eb = expand_boxes(b, 30 / 28).to(torch.int64).numpy()
    padded = F.pad(masks[:, 0], (1, 1, 1, 1)).numpy()
    for k in range(len(boxes)):
        got = paste_mask(padded[k], eb[k], w, h, 0.5)
        ref = full[k].numpy()
        if got is None:
            assert not (ref > 0.5).any()
            continue
        crop, x, y = got
        assert 0 <= x and 0 <= y and x + crop.shape[1] <= w and y + crop.shape[0] <= h
        canvas = np.zeros((h, w), bool)
        canvas[y:y + crop.shape[0], x:x + crop.shape[1]] = crop
        # the same bilinear resampling: probabilities agree to float rounding, so only pixels
        # within that rounding of the threshold may differ
        near = np.abs(ref - 0.5) < 1e-4
        assert np.array_equal(canvas[~near], ref[~near] > 0.5)


def test_hostile_boxes_give_nothing_or_bounded_crops():
    m = np.full((30, 30), 0.9, np.float32)
    assert paste_mask(m, np.array([500, 500, 600, 600]), 100, 100, 0.5) is None  # outside
    assert paste_mask(m, np.array([0, 0, 10 ** 9, 10 ** 9]), 100, 100, 0.5) is None  # absurd size
    crop, x, y = paste_mask(m, np.array([-5, -5, 5, 5]), 100, 100, 0.5)
    assert (x, y) == (0, 0) and crop.shape == (6, 6) and crop.all()
    assert paste_mask(np.zeros((30, 30), np.float32), np.array([0, 0, 9, 9]), 100, 100, 0.5) is None


def test_segmenter_gives_torchvision_masks_and_pastes_only_what_is_read(tmp_path):
    ck = load_checkpoint(tiny_maskrcnn_checkpoint(tmp_path / "m.pt"))
    seg = MaskRCNNSegmenter(ck, choose_device("cpu"), score_threshold=0.5, candidate_threshold=0.0)
    stock = model_from_checkpoint(ck, box_score_thresh=0.0, box_detections_per_img=100).eval()
    rng = np.random.default_rng(1)
    img = (rng.random((70, 90, 3)) * 255).astype(np.uint8)
    pred = seg.predict(img)
    assert isinstance(pred.low_res, LowResMasks) and pred._candidates is None  # nothing pasted yet
    with torch.inference_mode():
        out = stock(to_device([seg.prepare(img)], torch.device("cpu"), 3))[0]
    probs = out["masks"][:, 0].numpy()
    ref = [k for k in range(len(probs)) if (probs[k] > 0.5).any()]
    cands = pred.candidates()
    assert len(ref) > 0 and [round(d.score, 5) for d in cands] == [round(float(out["scores"][k]), 5) for k in ref]
    for d, k in zip(cands, ref):
        near = np.abs(probs[k] - 0.5) < 1e-4
        assert np.array_equal(_canvas(d, 70, 90)[~near], probs[k][~near] > 0.5)
        assert d.label == int(out["labels"][k])
    # what the pipeline's workers get is the small masks; they paste the kept ones only
    fresh = seg.predict(img)
    p = payload(fresh)
    assert p[0] == "low_res" and p[1].masks.shape[1:] == (30, 30)
    enc = encode_detections(p)
    assert len(enc) == len([d for d in cands if d.score >= 0.5])
    assert [e[7] for e in enc] == [round(d.score, 4) for d in cands if d.score >= 0.5]
