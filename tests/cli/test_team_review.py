"""With review on, export takes accepted images by default (an explicit --status still works, and the
message says how many done images were left out), and the learners train on accepted images."""

import json

import pytest

from segstudio.cli import main
from segstudio.core import review_filter
from segstudio.core.project import Project
from tests.io.helpers import annotated_project


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def exported_files(path) -> list[str]:
    return sorted(im["file_name"] for im in json.loads(path.read_text())["images"])


@pytest.fixture
def reviewed(tmp_path):
    """3 done images, one accepted and one returned and marked done again (waiting)."""
    p = annotated_project(tmp_path / "src")
    s = p.store
    ids = s.image_ids()
    s.set_review_enabled(True)
    s.review_image(ids[0], True)
    s.review_image(ids[1], False, "redo the dog")
    s.set_status(ids[1], "done")
    accepted = s.image(ids[0]).path
    p.close()
    return tmp_path / "src", accepted


def test_export_takes_accepted_images_when_review_is_on(reviewed, tmp_path, capsys):
    folder, accepted = reviewed
    code, out, err = run(capsys, "export", folder, "--format", "coco", "--out", tmp_path / "a.json")
    assert code == 0, err
    assert exported_files(tmp_path / "a.json") == [accepted]
    assert "2 done images left out: not accepted" in out
    code, out, err = run(capsys, "export", folder, "--format", "coco", "--out", tmp_path / "d.json",
                         "--status", "done")
    assert code == 0 and len(exported_files(tmp_path / "d.json")) == 3 and "left out" not in out
    code, out, _ = run(capsys, "export", folder, "--format", "yolo", "--out", tmp_path / "y", "--status", "accepted")
    assert code == 0 and "left out: not accepted" in out
    assert len(list((tmp_path / "y" / "labels").rglob("*.txt"))) == 1
    code, _, err = run(capsys, "export", folder, "--format", "coco", "--out", tmp_path / "x.json",
                       "--status", "acepted")
    assert code == 2 and "unknown status" in err


def test_export_without_review_is_unchanged(tmp_path, capsys):
    p = annotated_project(tmp_path / "src")
    p.store.review_image(p.store.image_ids()[0], True)  # a review without the setting on changes nothing
    p.close()
    code, out, err = run(capsys, "export", tmp_path / "src", "--format", "coco", "--out", tmp_path / "a.json")
    assert code == 0 and len(exported_files(tmp_path / "a.json")) == 3 and "left out" not in out


def test_training_takes_accepted_images(reviewed):
    pytest.importorskip("torch")
    from segstudio.inference.training.common import TrainingError, split_images
    folder, accepted = reviewed
    p = Project.open(folder)
    try:
        s = p.store
        assert review_filter.trainable(s) == ("accepted",)
        train, val = split_images(p, 0.0, 0)
        assert [s.image(i).path for i in train + val] == [accepted, accepted]  # one image serves both
        fp = review_filter.learn_fingerprint(s)
        s.review_image(s.image_by_path(sorted(r.path for r in s.images() if r.path != accepted)[0]).id, True)
        assert review_filter.learn_fingerprint(s) != fp and review_filter.learn_fingerprint(s)[0] == 2
        s.set_review_enabled(False)
        assert len(split_images(p, 0.0, 0)[0]) == 3
        s.set_review_enabled(True)
        for i in s.image_ids():
            s.set_status(i, "in_progress")
        with pytest.raises(TrainingError, match="accepted"):
            split_images(p, 0.0, 0)
    finally:
        p.close()


def test_live_learner_updates_on_accepted_images(reviewed, monkeypatch):
    pytest.importorskip("torch")
    from segstudio.inference.training.live import LiveError, LiveLearner
    folder, accepted = reviewed
    p = Project.open(folder)
    try:
        learner = LiveLearner(p)
        seen = {}

        class Stop(Exception):
            pass

        def fake_train(out, ids, val_ids, start, cancel, progress):
            seen["ids"] = ids
            raise Stop

        monkeypatch.setattr(learner, "_train", fake_train)
        with pytest.raises(Stop):
            learner.update()
        assert [p.store.image(i).path for i in seen["ids"]] == [accepted]
        p.store.review_image(p.store.image_by_path(accepted).id, False, "no")
        with pytest.raises(LiveError, match="accepted"):
            learner.update()
    finally:
        p.close()


def test_review_export_on_postgresql(tmp_path, pg_url, capsys):
    p = annotated_project(tmp_path / "src")
    p.close()
    code, _, err = run(capsys, "store", "copy", tmp_path / "src", "--to", pg_url)
    assert code == 0, err
    q = Project.open(tmp_path / "src", store=pg_url)
    s = q.store
    s.set_review_enabled(True)
    first = s.image_ids()[0]
    s.review_image(first, True)
    path = s.image(first).path
    q.close()
    code, out, err = run(capsys, "--store", pg_url, "export", tmp_path / "src", "--format", "coco",
                         "--out", tmp_path / "pg.json")
    assert code == 0, err
    assert exported_files(tmp_path / "pg.json") == [path] and "2 done images left out" in out
    code, out, err = run(capsys, "info", tmp_path / "src", "--store", pg_url, "--json")
    d = json.loads(out)
    assert d["store"] == "postgresql" and d["project"].startswith("postgresql://") and d["review"]["accepted"] == 1
