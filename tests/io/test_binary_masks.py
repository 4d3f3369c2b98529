"""Binary masks (only 0 and 255) import as a class, never silently as "ignore"; the report counts
the pixels that do become ignore; no import merges a named class into an ignore class."""

import shutil

import numpy as np
import pytest
from PIL import Image

from segstudio.cli import main
from segstudio.core.project import Project
from segstudio.io import coco, labelmap
from segstudio.io.common import Cancelled, FormatError
from tests.conftest import make_image, shared

W, H = 40, 30
DEFAULT = "foreground"  # the class of binary masks that nothing names (labelmap.BINARY_DEFAULT)


def _masks(d, n=2, high=255, dtype=np.uint8):
    """`n` binary masks, each a different rectangle of `high` on 0; returns their pixel counts."""
    d.mkdir(parents=True, exist_ok=True)
    counts = {}
    for i in range(n):
        m = np.zeros((H, W), dtype)
        m[3 + i:15 + i, 5:20 + 2 * i] = high
        Image.fromarray(m).save(d / f"im{i}.png")
        counts[f"im{i}.png"] = int((m == high).sum())
    return counts


@pytest.fixture
def proj(tmp_path):
    for i in range(3):
        make_image(tmp_path / "imgs" / f"im{i}.png", W, H, seed=i)
    p = Project.open(tmp_path / "imgs")
    yield p
    p.close()


def _by_class(p):
    names = {c.id: c for c in p.store.classes()}
    out = {}
    for rec in p.store.images():
        for r in p.store.regions(rec.id):
            c = names[r.class_id]
            out.setdefault((c.name, c.ignore), {})[rec.path] = int(r.mask.sum())
    return out


def test_binary_masks_without_a_class_list_become_a_class_with_a_warning(proj, tmp_path):
    counts = _masks(tmp_path / "lm")
    rep = labelmap.import_labelmap(proj, tmp_path / "lm")
    assert _by_class(proj) == {(DEFAULT, False): counts}
    assert not any(c.ignore for c in proj.store.classes())
    assert rep.ignore_pixels == 0 and "ignore" not in rep.summary()
    assert len(rep.warnings) == 1 and "only 0 and 255" in rep.warnings[0]
    assert "1 warning" in rep.summary() and any(line.startswith("warning: ") for line in rep.lines())


def test_a_one_line_class_list_names_the_masks_class(proj, tmp_path):
    counts = _masks(tmp_path / "lm")
    (tmp_path / "names.txt").write_text("cell\n")
    rep = labelmap.import_labelmap(proj, tmp_path / "lm", tmp_path / "names.txt")
    assert _by_class(proj) == {("cell", False): counts}
    assert "'cell'" in rep.warnings[0] and "named by the class list" in rep.warnings[0]
    assert [i.status for i in proj.store.images() if i.path in counts] == ["done", "done"]


def test_sixteen_bit_binary_masks_too(proj, tmp_path):
    counts = _masks(tmp_path / "lm", high=65535, dtype=np.uint16)
    labelmap.import_labelmap(proj, tmp_path / "lm", binary_class="nucleus")
    assert _by_class(proj) == {("nucleus", False): counts}


def test_the_callers_question_is_asked_once(proj, tmp_path):
    counts = _masks(tmp_path / "lm", n=3)
    asked = []

    def ask(name):
        asked.append(name)
        return "membrane"

    rep = labelmap.import_labelmap(proj, tmp_path / "lm", binary_class=ask)
    assert asked == ["im0.png"]
    assert _by_class(proj) == {("membrane", False): counts}
    assert "as chosen" in rep.warnings[0]


def test_answering_ignore_keeps_255_as_ignore_and_counts_it(proj, tmp_path):
    counts = _masks(tmp_path / "lm")
    rep = labelmap.import_labelmap(proj, tmp_path / "lm", binary_class=lambda _: "__ignore__")
    assert _by_class(proj) == {("__ignore__", True): counts}
    assert rep.ignore_pixels == sum(counts.values())
    assert f"{sum(counts.values()):,} pixels imported as ignore" in rep.summary()


def test_cancelling_the_question_writes_nothing(proj, tmp_path):
    _masks(tmp_path / "lm")
    with pytest.raises(Cancelled):
        labelmap.import_labelmap(proj, tmp_path / "lm", binary_class=lambda _: None)
    assert proj.store.region_count() == 0 and proj.store.classes() == []
    assert {i.status for i in proj.store.images()} == {"new"}


def test_in_a_label_map_folder_255_stays_ignore_and_the_report_counts_it(proj, tmp_path):
    d = tmp_path / "lm"
    d.mkdir()
    a = np.zeros((H, W), np.uint8)
    a[5:15, 5:15] = 1
    a[4, 4:16] = 255  # a VOC-style boundary
    Image.fromarray(a).save(d / "im0.png")
    b = np.zeros((H, W), np.uint8)
    b[0:3, 0:7] = 255  # only 0 and 255, in a folder whose other map has a class value
    Image.fromarray(b).save(d / "im1.png")
    rep = labelmap.import_labelmap(proj, d)
    got = _by_class(proj)
    assert got[("__ignore__", True)] == {"im0.png": 12, "im1.png": 21}
    assert got[("class_1", False)] == {"im0.png": 100}
    assert rep.ignore_pixels == 33 and "33 pixels imported as ignore" in rep.summary()
    assert any("33 pixels in 2 maps" in n and "'__ignore__'" in n for n in rep.notes)


def test_a_class_list_with_an_ignore_line_keeps_255_as_ignore(proj, tmp_path):
    counts = _masks(tmp_path / "lm")
    (tmp_path / "labels.txt").write_text("__ignore__\ncell\n")
    rep = labelmap.import_labelmap(proj, tmp_path / "lm", tmp_path / "labels.txt")
    assert _by_class(proj) == {("__ignore__", True): counts}
    assert rep.ignore_pixels == sum(counts.values())


def test_no_import_merges_a_named_class_into_an_ignore_class(proj, tmp_path):
    """The issue's sequence: the masks' class is an ignore class (an older import, then renamed);
    a later import that names `cell` is refused, saying how to settle it, and writes nothing."""
    _masks(tmp_path / "lm")
    proj.store.add_class("cell", ignore=True)
    (tmp_path / "names.txt").write_text("cell\n")
    with pytest.raises(FormatError, match="'cell' is an ignore class.*Classes panel"):  # a ClassClash
        labelmap.import_labelmap(proj, tmp_path / "lm", tmp_path / "names.txt")
    with pytest.raises(FormatError, match="'cell' is an ignore class"):
        labelmap.import_labelmap(proj, tmp_path / "lm", binary_class="cell")
    assert proj.store.region_count() == 0
    # once "ignore" is off, the same import goes into the class
    c = proj.store.class_by_name("cell")
    proj.store.update_class(c.with_(ignore=False))
    labelmap.import_labelmap(proj, tmp_path / "lm", tmp_path / "names.txt")
    assert set(_by_class(proj)) == {("cell", False)}


def test_coco_category_is_not_merged_into_an_ignore_class(proj, tmp_path):
    import json
    proj.store.add_class("cell", ignore=True)
    src = tmp_path / "c.json"
    src.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "im0.png", "width": W, "height": H}],
        "categories": [{"id": 1, "name": "cell"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[2, 2, 20, 2, 20, 20]]}]}))
    with pytest.raises(FormatError, match="'cell' is an ignore class"):
        coco.import_coco(proj, src)
    assert proj.store.region_count() == 0


def test_cli_names_the_class_and_counts_ignore(proj, tmp_path, capsys):
    counts = _masks(tmp_path / "lm")
    (tmp_path / "names.txt").write_text("cell\n")
    folder = str(proj.folder)
    proj.close()
    assert main(["import", folder, "--format", "labelmap", str(tmp_path / "lm"), "--classes",
                 str(tmp_path / "names.txt")]) == 0
    out = capsys.readouterr().out
    assert "1 warning" in out and "255 imported as class 'cell'" in out
    p = Project.open(folder)
    try:
        assert _by_class(p) == {("cell", False): counts}
    finally:
        p.close()


def test_cli_refuses_to_merge_with_an_ignore_class(proj, tmp_path, capsys):
    _masks(tmp_path / "lm")
    proj.store.add_class("cell", ignore=True)
    (tmp_path / "names.txt").write_text("cell\n")
    folder = str(proj.folder)
    proj.close()
    code = main(["import", folder, "--format", "labelmap", str(tmp_path / "lm"), "--classes",
                 str(tmp_path / "names.txt")])
    err = capsys.readouterr().err
    assert code != 0 and "'cell' is an ignore class" in err


def test_real_isbi_labels(tmp_path):
    src = shared("isbi2012-membrane")
    imgs, labels = tmp_path / "imgs", tmp_path / "labels"
    imgs.mkdir()
    labels.mkdir()
    for n in ("0.png", "1.png"):
        shutil.copy(src / "image" / n, imgs / n)
        shutil.copy(src / "label" / n, labels / n)
    p = Project.open(imgs)
    try:
        rep = labelmap.import_labelmap(p, labels)
        got = _by_class(p)
        assert set(got) == {(DEFAULT, False)}
        for n in ("0.png", "1.png"):
            assert got[(DEFAULT, False)][n] == int((np.array(Image.open(labels / n)) == 255).sum())
        assert rep.ignore_pixels == 0 and "only 0 and 255" in rep.warnings[0]
    finally:
        p.close()


@pytest.mark.parametrize("name", ["", "  ", "x" * 100_000])
def test_a_name_that_cannot_be_a_class_stops_the_import(proj, tmp_path, name):
    _masks(tmp_path / "lm")
    with pytest.raises(labelmap.BadBinaryClass):
        labelmap.import_labelmap(proj, tmp_path / "lm", binary_class=name)
    assert proj.store.region_count() == 0 and proj.store.classes() == []


def test_reading_ahead_checks_each_maps_size_before_decoding_it(proj, tmp_path):
    """Deciding whether the folder holds binary masks reads the other maps first: a map whose
    header does not match its image (here 8000x8000, 64 Mpx under the bomb guard) is refused from
    the header there too, never decoded."""
    from tests.io.hostile import traced_peak
    counts = _masks(tmp_path / "lm", n=1)
    big = np.zeros((8000, 8000), np.uint8)
    big[0, 0] = 7  # a value other than 0 and 255: decoded, it would make the folder a label map
    Image.fromarray(big).save(tmp_path / "lm" / "im1.png")
    del big
    with traced_peak() as mem:
        rep = labelmap.import_labelmap(proj, tmp_path / "lm")
    assert mem["peak"] < 20_000_000
    assert [f for f, _ in rep.errors] == ["im1.png"] and "8000x8000" in rep.errors[0][1]
    assert _by_class(proj) == {(DEFAULT, False): counts}
