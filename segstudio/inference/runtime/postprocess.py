"""Predictions to stored rows: masks -> tight crops -> RLE. No torch, so it can run in worker
processes: on a GPU the model thread then shares no interpreter lock with this work."""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from segstudio.core import maskops, rle
from segstudio.inference.runtime.segmenter import Detection, Prediction

# (model label, x, y, w, h, RLE counts, area, score) for each detection kept
Encoded = tuple[int, int, int, int, int, bytes, int, float]


def payload(pred: Prediction) -> tuple:
    """What a worker needs to rebuild the detections (numpy arrays pickle fast)."""
    pred.wait()
    if pred.class_map is not None and pred._detections is None:
        return ("semantic", pred.class_map, pred.confidence, pred.per_component, pred.min_area,
                pred.score_threshold, pred.width, pred.height)
    if pred.low_res is not None and pred._detections is None:  # the worker pastes the masks
        return ("low_res", pred.low_res, pred.width, pred.height, pred.score_threshold)
    return ("instances", [(d.label, d.mask, d.x, d.y, d.score) for d in pred.detections()])


def encode_detections(p: tuple) -> list[Encoded]:
    if p[0] == "semantic":
        _, cm, conf, per_comp, min_area, thr, w, h = p
        dets = Prediction(w, h, 0.0, class_map=cm, confidence=conf, per_component=per_comp, min_area=min_area,
                          score_threshold=thr).detections()
    elif p[0] == "low_res":
        _, low, w, h, thr = p
        dets = low.detections(w, h, thr)
    else:
        dets = [Detection(*d) for d in p[1]]
    out = []
    for d in dets:
        c = maskops.crop_to_content(d.mask, d.x, d.y)
        if c is None:
            continue
        m, x, y = c
        out.append((int(d.label), x, y, m.shape[1], m.shape[0], rle.encode(m), int(np.count_nonzero(m)),
                    round(float(d.score), 4)))
    return out


def process_pool(workers: int) -> ProcessPoolExecutor:
    """Spawned (not forked: the parent holds a CUDA context and threads)."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))
