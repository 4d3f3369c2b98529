"""`segstudio propagate` on a numbered folder and on a stack file, with the real method."""

import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from segstudio.cli import main
from segstudio.core.project import Project
from segstudio.core.records import DONE, IN_PROGRESS, PREDICTED
from segstudio.core.region import Region


def _frames(n=6, size=(48, 64)):
    """A textured disc moving 2 px right per frame over a textured background."""
    rng = np.random.default_rng(0)
    bg = rng.integers(40, 90, size).astype(np.uint8)
    yy, xx = np.mgrid[:size[0], :size[1]]
    out, masks = [], []
    for i in range(n):
        m = (yy - 24) ** 2 + (xx - 18 - 2 * i) ** 2 <= 81
        a = bg.copy()
        a[m] = 200 + rng.integers(0, 30, int(m.sum()))
        out.append(a)
        masks.append(m)
    return out, masks


def _start(folder, path, mask, status=DONE):
    p = Project.open(folder)
    cls = p.store.ensure_class("cell")
    rec = p.store.image_by_path(path)
    ys, xs = np.nonzero(mask)
    r = Region(p.store.new_region_id(), cls.id, mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1].copy(),
               int(xs.min()), int(ys.min()))
    p.store.save_regions(rec.id, [r], status=status)
    p.close()
    return r.id


def test_propagate_a_numbered_folder_from_a_file_name(tmp_path, capsys):
    d = tmp_path / "seq"
    d.mkdir()
    imgs, masks = _frames()
    for i, a in enumerate(imgs):
        Image.fromarray(a).save(d / f"t{i}.png")
    rid = _start(d, "t0.png", masks[0])
    Project.open(d).store.set_status([Project.open(d).store.image_by_path("t4.png").id], IN_PROGRESS)
    assert main(["propagate", str(d), "--from", "t0.png", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [f["frame"] for f in out["frames"]] == [1, 2, 3] and out["stopped_at"] == 4
    assert "person's work" in out["reason"]
    p = Project.open(d)
    for k in (1, 2, 3):
        rec = p.store.image_by_path(f"t{k}.png")
        (r,) = p.store.regions(rec.id)
        assert rec.status == PREDICTED and r.object_id == rid
        iou = (r.full_mask(64, 48) & masks[k]).sum() / (r.full_mask(64, 48) | masks[k]).sum()
        assert iou > 0.8
    assert p.store.regions(p.store.image_by_path("t4.png").id) == []
    p.close()


def test_propagate_a_stack_file_backward_by_number(tmp_path, capsys):
    d = tmp_path / "data"
    d.mkdir()
    imgs, masks = _frames(5)
    tifffile.imwrite(d / "stack.tif", np.stack(imgs))
    p = Project.open(d)
    assert [r.path for r in p.store.images()] == [f"stack.tif/{i:06d}" for i in range(5)]
    p.close()
    rid = _start(d, "stack.tif/000004", masks[4])
    assert main(["propagate", str(d / "stack.tif"), "--from", "4", "--backward", "--frames", "2"]) == 0
    text = capsys.readouterr().out
    assert "frame 3 (stack.tif/000003)" in text and "frame 2 (stack.tif/000002)" in text and "frame 1 " not in text
    p = Project.open(d)
    assert [r.object_id for r in p.store.regions(p.store.image_by_path("stack.tif/000002").id)] == [rid]
    assert p.store.regions(p.store.image_by_path("stack.tif/000001").id) == []
    p.close()


@pytest.mark.parametrize("argv, message", [
    (["--from", "9"], "past the last frame"),
    (["--from", "nope.png"], "no frame is"),
    (["--from", "0", "--frames", "0"], "--frames must be 1 or more"),
])
def test_bad_frames_are_one_line_errors(tmp_path, capsys, argv, message):
    d = tmp_path / "seq"
    d.mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(d / f"{i}.png")
    assert main(["propagate", str(d), *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_folder_without_numbered_images_says_so(tmp_path, capsys):
    d = tmp_path / "plain"
    d.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(d / "cat.png")
    assert main(["propagate", str(d), "--from", "0"]) == 2
    assert "no numbered images" in capsys.readouterr().err


def test_info_lists_the_sequences(tmp_path, capsys):
    d = tmp_path / "data"
    (d / "numbered").mkdir(parents=True)
    imgs, _ = _frames(3)
    tifffile.imwrite(d / "stack.tif", np.stack(imgs), photometric="minisblack")  # 3 pages, not planar RGB
    for i in range(2):
        Image.fromarray(imgs[i]).save(d / "numbered" / f"{i}.png")
    Image.fromarray(imgs[0]).save(d / "single.png")
    assert main(["info", str(d), "--json"]) == 0
    seqs = json.loads(capsys.readouterr().out)["sequences"]
    assert seqs == [{"sequence": "numbered", "kind": "folder", "frames": 2, "status": {"new": 2}},
                    {"sequence": "stack.tif", "kind": "stack", "frames": 3, "status": {"new": 3}}]
    assert main(["info", str(d)]) == 0
    assert "stack.tif (stack): 3 frames: new 3" in capsys.readouterr().out


def test_a_linked_stack_and_a_one_frame_stack(tmp_path, capsys):
    """A link is registered under its own name, wherever it points; one frame has nowhere to go."""
    import os
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    imgs, masks = _frames(3)
    tifffile.imwrite(outside / "real.tif", np.stack(imgs), photometric="minisblack")
    d = tmp_path / "data"
    d.mkdir()
    os.symlink(outside / "real.tif", d / "link.tif")
    _start(d, "link.tif/000000", masks[0])
    assert main(["propagate", str(d / "link.tif"), "--from", "0"]) == 0
    assert "frame 2 (link.tif/000002)" in capsys.readouterr().out
    import av
    with av.open(str(d / "one.mp4"), "w") as c:
        s = c.add_stream("mpeg4", rate=5)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        for pkt in s.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")):
            c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    assert main(["propagate", str(d / "one.mp4"), "--from", "0"]) == 2
    assert "holds one frame" in capsys.readouterr().err


def test_the_projects_live_model_is_the_evidence_where_it_has_one(tmp_path, capsys):
    """With a live version in the project, each carried object takes the live model's matching
    object (auto); --evidence live on a project without one says how to make one."""
    from segstudio.inference.training.live import LiveConfig, LiveLearner
    from tests.inference.test_live import FAST
    d = tmp_path / "seq"
    d.mkdir()
    imgs, masks = _frames(5)
    for i, a in enumerate(imgs):
        Image.fromarray(a).save(d / f"{i}.png")
    assert main(["propagate", str(d), "--from", "0", "--evidence", "live"]) == 2
    assert "no live model" in capsys.readouterr().err
    _start(d, "0.png", masks[0])
    p = Project.open(d)
    LiveLearner(p, LiveConfig(seconds=1.5, device="cpu", trainer=dict(FAST))).update()
    p.close()
    assert main(["propagate", str(d), "--from", "0", "--frames", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["evidence"].startswith("live-unet-") and [f["frame"] for f in out["frames"]] == [1, 2]
    assert main(["propagate", str(d), "--from", "0", "--frames", "1", "--evidence", "none", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["evidence"] is None


def test_a_numbered_subfolder_is_propagated_in_its_parents_project(tmp_path, capsys):
    """A subfolder annotated in the window is a sequence of the parent's project: the CLI finds
    that project (it makes no other), and says nothing was written with exit status 1."""
    d = tmp_path / "proj"
    (d / "seq").mkdir(parents=True)
    imgs, masks = _frames(4)
    for i, a in enumerate(imgs):
        Image.fromarray(a).save(d / "seq" / f"{i}.png")
    Image.fromarray(imgs[0]).save(d / "cover.png")
    rid = _start(d, "seq/0.png", masks[0])
    assert main(["propagate", str(d / "seq"), "--from", "0.png", "--frames", "2"]) == 0
    assert "frame 2 (seq/2.png)" in capsys.readouterr().out
    assert not (d / "seq" / ".segstudio").exists()
    p = Project.open(d)
    assert [r.object_id for r in p.store.regions(p.store.image_by_path("seq/2.png").id)] == [rid]
    p.close()
    assert main(["propagate", str(d / "seq"), "--from", "3"]) == 1  # frame 3 has nothing to carry
    assert "nothing propagated" in capsys.readouterr().out
    assert main(["propagate", str(d / "seq" / "1.png"), "--from", "0"]) == 2
    assert "is an image, not a sequence" in capsys.readouterr().err
