"""Two images whose outputs would have the same name (`cells.png` and `cells.jpg` both write
`cells.png` as a label map) made an export overwrite one image's annotation with the other's
and report both as exported. Every format that names outputs by the image's stem now refuses,
naming the images, before it writes anything; names are compared case-insensitively (the
export may be opened on a case-insensitive filesystem). Images in different folders, and images
the export leaves out (status filter, known unreadable), do not clash."""

import numpy as np
import pytest

from segstudio.cli import main
from segstudio.core.project import Project
from segstudio.core.records import DONE, IN_PROGRESS
from segstudio.core.region import Region
from segstudio.io.bridge_formats import BRIDGE_EXPORT, bridge_available
from segstudio.io.common import FormatError
from segstudio.io.registry import run_export
from tests.conftest import make_image

NATIVE = ["labelmap", "instancemap", "yolo", "labelme", "voc"]
BRIDGE = list(BRIDGE_EXPORT) if bridge_available() else []



def _project(root, names, done=None):
    """Images `names` (each a distinct picture), each with one region of its own size; those in
    `done` (all by default) are done, the others in progress."""
    folder = root / "imgs"
    for i, n in enumerate(names):
        make_image(folder / n, 24, 16, seed=i)
    p = Project.open(folder)
    c = p.store.add_class("cell")
    for i, n in enumerate(names):
        rec = p.store.image_by_path(n)
        r = Region(0, c.id, np.ones((2 + i, 3 + i), bool), i, i)
        r.id = p.store.reserve_region_ids(1)[0]
        p.store.save_regions(rec.id, [r], status=DONE if done is None or n in done else IN_PROGRESS)
    return p


def _tree(folder):
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


def _refuses_naming(fmt, p, out, *names):
    with pytest.raises(FormatError) as e:
        run_export(fmt, p, out, statuses=(DONE,))
    msg = str(e.value)
    assert "\n" not in msg and f"cannot export to {fmt}" in msg and "rename" in msg
    for n in names:
        assert n in msg
    return msg


@pytest.mark.parametrize("fmt", NATIVE + BRIDGE)
def test_two_done_images_of_one_stem_refuse_and_leave_the_previous_export(tmp_path, fmt):
    p = _project(tmp_path, ["cells.png", "cells.jpg", "other.png"], done={"cells.png", "other.png"})
    out = tmp_path / "out"
    first = run_export(fmt, p, out, statuses=(DONE,))  # only one of the two is done: no clash
    assert first.images == 2
    before = _tree(out)
    p.store.set_status(p.store.image_by_path("cells.jpg").id, DONE)
    _refuses_naming(fmt, p, out, "cells.png", "cells.jpg")
    assert _tree(out) == before  # the previous export is untouched


@pytest.mark.parametrize("fmt", NATIVE)
def test_refused_export_writes_nothing(tmp_path, fmt):
    p = _project(tmp_path, ["cells.png", "cells.jpg"])
    out = tmp_path / "out"
    _refuses_naming(fmt, p, out, "cells.png", "cells.jpg")
    assert not out.exists()
    assert [f.name for f in tmp_path.iterdir() if f.name != "imgs"] == []  # no leftovers beside it


@pytest.mark.parametrize("fmt", NATIVE)
def test_only_one_of_them_done_exports_it(tmp_path, fmt):
    p = _project(tmp_path, ["cells.png", "cells.jpg"], done={"cells.jpg"})
    rep = run_export(fmt, p, tmp_path / "out", statuses=(DONE,))
    assert rep.images == 1 and rep.regions == 1


@pytest.mark.parametrize("fmt", NATIVE)
def test_an_image_known_unreadable_does_not_clash(tmp_path, fmt):
    p = _project(tmp_path, ["cells.png", "cells.jpg"])
    p.store.set_error(p.store.image_by_path("cells.png").id, "cannot decode")
    rep = run_export(fmt, p, tmp_path / "out", statuses=(DONE,))
    assert rep.images == 1 and [f for f, _ in rep.left_out] == ["cells.png"]


@pytest.mark.parametrize("fmt", NATIVE + BRIDGE)
def test_names_differing_only_in_case_clash(tmp_path, fmt):
    p = _project(tmp_path, ["A.png", "a.jpg"])
    if len(p.store.images()) < 2:
        pytest.skip("case-insensitive filesystem: both files cannot exist")
    _refuses_naming(fmt, p, tmp_path / "out", "A.png", "a.jpg")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt", NATIVE + BRIDGE)
def test_same_name_in_different_folders_does_not_clash(tmp_path, fmt):
    p = _project(tmp_path, ["sub/x.png", "x.png"])
    out = tmp_path / "out"
    rep = run_export(fmt, p, out, statuses=(DONE,))
    assert rep.images == 2 and rep.regions == 2
    if fmt in ("labelmap", "instancemap"):
        assert (out / "x.png").is_file() and (out / "sub" / "x.png").is_file()
    if fmt == "yolo":
        assert (out / "labels" / "x.txt").is_file() and (out / "labels" / "sub" / "x.txt").is_file()


def test_every_labelmap_written_holds_its_own_image(tmp_path):
    """Nothing exported is a merge: one map per image, each of its own size of region."""
    p = _project(tmp_path, ["sub/x.png", "x.png"])
    run_export("labelmap", p, tmp_path / "out", statuses=(DONE,))
    from PIL import Image
    counts = sorted(int(np.count_nonzero(np.asarray(Image.open(f)))) for f in (tmp_path / "out").rglob("*.png"))
    assert counts == [6, 12]


def test_voc_flattened_names_clash(tmp_path):
    # VOC writes sub/x.png as sub__x: beside an image named sub__x.png they are one file
    p = _project(tmp_path, ["sub/x.png", "sub__x.png"])
    msg = _refuses_naming("voc", p, tmp_path / "out", "sub/x.png", "sub__x.png")
    assert "sub__x" in msg


def test_coco_names_images_by_full_path_and_exports_both(tmp_path):
    p = _project(tmp_path, ["cells.png", "cells.jpg"])
    rep = run_export("coco", p, tmp_path / "c.json", statuses=(DONE,))
    assert rep.images == 2 and rep.regions == 2


def test_the_message_names_each_clash_once_and_counts_the_rest():
    from segstudio.io.export_names import check_unique_outputs
    paths = [f"im{k}.{ext}" for k in range(5) for ext in ("png", "jpg")]
    with pytest.raises(FormatError) as e:
        check_unique_outputs(paths, "yolo", lambda q: ["labels/" + q.rsplit(".", 1)[0] + ".txt"])
    msg = str(e.value)
    assert "im0.png, im0.jpg (→ labels/im0.txt)" in msg and "and 2 more" in msg and "im4" not in msg


def test_an_output_that_is_another_outputs_folder_clashes():
    from segstudio.io.export_names import check_unique_outputs
    # cells.png/x.png writes the folder cells.png; cells.tif would write the file cells.png
    with pytest.raises(FormatError, match="cells.tif, cells.png/x.png"):
        check_unique_outputs(["cells.png/x.png", "cells.tif"], "labelmap",
                             lambda q: [q.rsplit(".", 1)[0] + ".png"])
    check_unique_outputs(["cells.png", "cells/x.png"], "labelmap", lambda q: [q.rsplit(".", 1)[0] + ".png"])


def test_unicode_normalisation_clashes():
    from segstudio.io.export_names import check_unique_outputs
    # macOS takes é precomposed and decomposed as one name
    with pytest.raises(FormatError):
        check_unique_outputs(["caf\u00e9.png", "cafe\u0301.jpg"], "labelmap",
                             lambda q: [q.rsplit(".", 1)[0] + ".png"])


def test_cli_refuses_with_one_line_and_exit_2(tmp_path, capsys):
    p = _project(tmp_path, ["cells.png", "cells.jpg"])
    p.close()
    out = tmp_path / "lm"
    code = main(["export", str(tmp_path / "imgs"), "--format", "labelmap", "--out", str(out), "--status", "done"])
    _, err = capsys.readouterr()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "cells.png" in lines[0] and "cells.jpg" in lines[0] and "rename" in lines[0]
    assert not out.exists()
