"""The propagation run over a project's frames: which frames it writes, where it stops, and that
the whole run is one undo step. The step is a known shift here (the method has its own tests)."""

from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

from segstudio.core.project import Project
from segstudio.core.records import DONE, IN_PROGRESS, NEW, PREDICTED
from segstudio.core.region import Region
from segstudio.editing.propagation_run import SOURCE, propagate, redo_run, undo_run


@dataclass
class Carried:
    track: int
    class_id: int
    mask: np.ndarray
    confidence: float


def shift_carry(confidences=None):
    """Moves every mask 2 px right per frame (the frames' square does); confidences per call."""
    calls = []

    def carry(prev, nxt, objects, refine=None):
        conf = 0.9 if confidences is None else confidences[min(len(calls), len(confidences) - 1)]
        calls.append(len(objects))
        return [Carried(t, c, np.roll(m, 2, axis=1), conf) for t, c, m in objects]
    carry.calls = calls
    return carry


@pytest.fixture
def seq(tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    for i in range(8):
        a = np.zeros((20, 40), np.uint8)
        a[5:12, 4 + 2 * i:10 + 2 * i] = 200
        Image.fromarray(a).save(d / f"{i}.png")
    p = Project.open(d)
    p.store.add_class("thing")
    frames = p.sequence_frames("")
    m = np.zeros((20, 40), bool)
    m[5:12, 4:10] = True
    start = Region(p.store.new_region_id(), 1, m[5:12, 4:10].copy(), 4, 5)
    p.store.save_regions(frames[0].id, [start], status=DONE)
    yield p, frames, start
    p.close()


def _state(p, frames):
    return [(p.store.image(f.id).status, sorted((r.id, r.track, r.x, r.y, r.area) for r in p.store.regions(f.id)))
            for f in frames]


def test_objects_are_carried_with_their_identity_as_predictions(seq):
    p, frames, start = seq
    run = propagate(p, frames, 0, 4, carry=shift_carry(), threshold=0.5)
    assert [f.index for f in run.frames] == [1, 2, 3, 4] and run.stopped_at is None
    for k in range(1, 5):
        (r,) = p.store.regions(frames[k].id)
        assert r.track == start.id and r.object_id == start.id and r.id != start.id
        assert (r.x, r.y, r.area) == (4 + 2 * k, 5, 42) and r.source == SOURCE and r.score == 0.9
        assert p.store.image(frames[k].id).status == PREDICTED
    assert p.store.regions(frames[5].id) == []  # asked for 4 frames
    assert "4 frame(s), 1–4" in run.summary()


def test_it_never_writes_over_a_persons_work_nor_the_open_frame(seq):
    p, frames, _ = seq
    p.store.save_regions(frames[3].id, [], status=IN_PROGRESS)
    run = propagate(p, frames, 0, carry=shift_carry(), threshold=0.5)
    assert [f.index for f in run.frames] == [1, 2] and run.stopped_at == 3
    assert "person's work" in run.reason and p.store.image(frames[3].id).status == IN_PROGRESS
    run = propagate(p, frames, 0, carry=shift_carry(), threshold=0.5, protect=[frames[2].id])
    assert run.frames[-1].index == 1 and run.stopped_at == 2 and "open" in run.reason
    p.store.claim_image(frames[1].id, "another window", 60)
    run = propagate(p, frames, 0, carry=shift_carry(), threshold=0.5, owner="me")
    assert run.frames == [] and run.stopped_at == 1
    assert p.store.regions(frames[1].id)[0].source == SOURCE  # the earlier run's, untouched


def test_a_predicted_frame_is_replaced_whole_and_a_done_one_kept(seq):
    p, frames, start = seq
    stale = Region(p.store.new_region_id(), 1, np.ones((3, 3), bool), 30, 10, source="unet")
    p.store.save_regions(frames[1].id, [stale], status=PREDICTED)
    p.store.save_regions(frames[2].id, [], status=DONE)
    run = propagate(p, frames, 0, carry=shift_carry(), threshold=0.5)
    assert [f.index for f in run.frames] == [1]
    assert [r.track for r in p.store.regions(frames[1].id)] == [start.id]  # the model's region is gone


def test_backward_and_low_confidence_stops(seq):
    p, frames, start = seq
    p.store.save_regions(frames[0].id, [], status=NEW)  # the object moves to the last frame instead
    p.store.save_regions(frames[7].id, [Region(p.store.new_region_id(), 1, np.ones((7, 6), bool), 18, 5)],
                         status=DONE)
    run = propagate(p, frames, 7, backward=True, carry=shift_carry([0.9, 0.8, 0.3]), threshold=0.5)
    assert [f.index for f in run.frames] == [6, 5] and run.stopped_at == 4 and "confidence" in run.reason
    assert "backward" in run.summary()


def test_the_run_is_one_undo_step_and_a_changed_frame_is_kept(seq):
    p, frames, _ = seq
    p.store.save_regions(frames[2].id, [Region(p.store.new_region_id(), 1, np.ones((2, 2), bool), 1, 1,
                                               source="unet")], status=PREDICTED)
    before = _state(p, frames)
    run = propagate(p, frames, 0, 5, carry=shift_carry(), threshold=0.5)
    after = _state(p, frames)
    assert after != before
    assert undo_run(p, run) == []
    assert _state(p, frames) == before
    assert redo_run(p, run) == []
    assert _state(p, frames) == after
    # a person opens frame 4 and edits it: undo leaves that frame as the person made it
    p.store.save_regions(frames[4].id, [], deletes=[r.id for r in p.store.regions(frames[4].id)], status=IN_PROGRESS)
    edited = _state(p, frames)[4]
    assert undo_run(p, run) == [frames[4].path]
    now = _state(p, frames)
    assert now[4] == edited and now[:4] == before[:4] and now[5:] == before[5:]


def test_nothing_to_carry_and_bad_start(seq):
    p, frames, _ = seq
    run = propagate(p, frames, 5, carry=shift_carry(), threshold=0.5)
    assert run.frames == [] and "no regions" in run.reason
    with pytest.raises(ValueError):
        propagate(p, frames, 8, carry=shift_carry(), threshold=0.5)
