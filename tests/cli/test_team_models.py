"""The model runs keep working on a team's PostgreSQL project, through the real CLI and as the logins a
team has: a UNet trained on the project, `predict` as an annotator (new images get the model's regions;
an image another annotator has open and a person's done image are left as they were), the live learner
(`train --watch`) learning from accepted images only when review is on, and `predict --ray` writing the
regions local predict writes."""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote, urlsplit, urlunsplit

import cv2
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")
psycopg = pytest.importorskip("psycopg")
from psycopg import sql  # noqa: E402

from segstudio.cli import main  # noqa: E402
from segstudio.core import maskops  # noqa: E402
from segstudio.core.claims import process_owner  # noqa: E402
from segstudio.core.project import Project  # noqa: E402
from segstudio.core.records import DONE, NEW  # noqa: E402
from segstudio.core.region import Region  # noqa: E402
from segstudio.core.store.postgres import PostgresStore  # noqa: E402

N_IMAGES, N_DONE = 6, 3
TINY = ("--device", "cpu", "--width", "4", "--depth", "1", "--crop", "32", "--batch", "2")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def as_user(url: str, user: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}@{host}"))


def make_images(folder) -> dict:
    """N_IMAGES images of a bright disc each; returns {path: the disc's mask}."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    truth = {}
    for i in range(N_IMAGES):
        img = rng.normal(40, 15, (48, 48))
        m = np.zeros((48, 48), np.uint8)
        cv2.circle(m, (int(rng.integers(18, 30)), int(rng.integers(18, 30))), 14, 1, -1)
        img[m > 0] += 170
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"{i:02d}.png")
        truth[f"{i:02d}.png"] = m.astype(bool)
    return truth


def fill_store(folder, url, truth) -> None:
    """The project on `url`, as its owner: class "disc", the first N_DONE images drawn (the disc) and done."""
    p = Project.open(folder, store=url)
    try:
        assert p.store.kind == "postgresql"
        disc = p.store.add_class("disc")
        for rec in p.store.images()[:N_DONE]:
            parts = [Region(p.store.new_region_id(), disc.id, pm, x, y)
                     for pm, x, y in maskops.components(truth[rec.path])]
            p.store.save_regions(rec.id, parts, status=DONE)
    finally:
        p.close()


def grant(capsys, url, names: dict) -> None:
    """`store init --roles`, then `store grant` each login its role (names: login -> role)."""
    code, _, err = run(capsys, "store", "init", url, "--roles")
    assert code == 0, err
    for login, role in names.items():
        code, _, err = run(capsys, "store", "grant", url, login, "--role", role)
        assert code == 0, err


@pytest.fixture
def logins(pg_url):
    """Fresh login roles anna, bob (annotators) and rita (a reviewer): cluster-wide names, unique per test,
    dropped after. {who: login name}."""
    tag = uuid.uuid4().hex[:8]
    names = {k: f"{k}_{tag}" for k in ("anna", "bob", "rita")}
    with psycopg.connect(pg_url, autocommit=True) as c:
        for n in names.values():
            c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(n)))
    yield names
    with psycopg.connect(pg_url, autocommit=True) as c:
        for n in names.values():
            c.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(n)))
            c.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(n)))


ROLES = {"anna": "annotator", "bob": "annotator", "rita": "reviewer"}


@pytest.fixture
def team(tmp_path, pg_url, logins, capsys, monkeypatch):
    """A PostgreSQL project (N_IMAGES images, N_DONE done) with its roles set up and anna, bob and rita
    granted theirs by the CLI: {"url", "folder", "truth", who: (login, URL as that login)}."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))  # each client's data folder (model versions)
    folder = tmp_path / "imgs"
    truth = make_images(folder)
    fill_store(folder, pg_url, truth)
    grant(capsys, pg_url, {logins[k]: role for k, role in ROLES.items()})
    return {"url": pg_url, "folder": folder, "truth": truth,
            **{k: (n, as_user(pg_url, n)) for k, n in logins.items()}}


def train_tiny(capsys, folder, url, out):
    code, text, err = run(capsys, "train", folder, "--store", url, "--model", "unet", "--epochs", "10",
                          "--final-fit", "0", "--val-fraction", "0.34", "--out", out, *TINY, "--json")
    assert code == 0, err
    return json.loads(text)


def model_regions(store, image_id) -> list:
    return [r for r in store.regions(image_id) if r.source != "manual"]


def test_train_then_predict_as_an_annotator_leaves_peoples_images_alone(team, tmp_path, capsys):
    """`train` on the PostgreSQL project registers its model there; `predict` as anna (an annotator) writes
    the model's regions on the new images (recorded as hers), leaves the one bob has open and the done
    ones as they were, and predicts bob's image once he has moved on."""
    folder, url = team["folder"], team["url"]
    ck = tmp_path / "m" / "unet.pt"
    train_tiny(capsys, folder, url, ck)
    assert ck.exists()
    owner = PostgresStore(url)
    try:
        assert str(ck.resolve()) in {m["path"] for m in owner.models()}  # registered in the shared store
        recs = owner.images()
        done, new = [r for r in recs if r.status == DONE], [r for r in recs if r.status == NEW]
        assert len(done) == N_DONE and len(new) == N_IMAGES - N_DONE
        manual_before = {r.id: owner.regions(r.id) for r in done}
    finally:
        owner.close()

    bob, bob_url = team["bob"]
    held = new[0]
    b = PostgresStore(bob_url)
    try:
        bob_owner = process_owner(bob)
        assert b.claim_image(held.id, bob_owner, 120) == []  # bob has this image open in his window
        anna, anna_url = team["anna"]
        code, text, err = run(capsys, "predict", folder, "--store", anna_url, "--model", "unet", "--weights", ck,
                              "--device", "cpu", "--json")
        assert code == 0, err
        rep = json.loads(text)
        free = [r.id for r in new[1:]]
        assert rep["left_alone"] == [held.id] and rep["images"] == len(free) and not rep["errors"]
        a = PostgresStore(anna_url)
        try:
            assert a.user == anna
            for i in free:
                assert a.image(i).status == "predicted" and model_regions(a, i), i
            assert rep["regions"] == sum(len(model_regions(a, i)) for i in free) > 0
            assert a.image(held.id).status == NEW and a.regions(held.id) == []  # bob's: untouched
            for r in done:  # a person's work: status and regions as they were
                assert a.image(r.id).status == DONE
                assert [(x.id, x.source, x.mask.tobytes()) for x in a.regions(r.id)] == \
                    [(x.id, x.source, x.mask.tobytes()) for x in manual_before[r.id]]
            who = {h.who for i in free for h in a.history(image_id=i) if h.what == "model"}
            assert who == {anna}  # the model run is recorded as hers
        finally:
            a.close()
        # bob moves on: the next run predicts his image too, and only it
        b.release_image(held.id, bob_owner)
        code, text, err = run(capsys, "predict", folder, "--store", anna_url, "--model", "unet", "--weights", ck,
                              "--device", "cpu", "--json")
        assert code == 0, err
        rep = json.loads(text)
        assert rep["images"] == 1 and rep["left_alone"] == [] and model_regions(b, held.id)
    finally:
        b.close()


def test_an_annotators_live_learner_trains_on_accepted_images_when_review_is_on(team, capsys):
    """`train --watch` run by an annotator: with review on, of three done images (one accepted, one waiting
    for review, one returned) it learns from the accepted one; its version is in the shared model list,
    and its re-prediction ahead writes the new images but not the one bob has open."""
    folder, url = team["folder"], team["url"]
    anna, anna_url = team["anna"]
    rita, rita_url = team["rita"]
    bob, bob_url = team["bob"]
    lead = PostgresStore(url)
    r, b = PostgresStore(rita_url), PostgresStore(bob_url)
    try:
        lead.set_review_enabled(True)
        done = [x.id for x in lead.images(statuses=(DONE,))]
        new = [x.id for x in lead.images(statuses=(NEW,))]
        assert len(done) == 3 and len(new) == N_IMAGES - N_DONE
        r.review_image(done[0], True)
        r.review_image(done[2], False, "the disc's edge")
        assert lead.image(done[0]).review == "accepted" and lead.image(done[1]).review is None
        assert lead.image(done[2]).status == "in_progress"
        bob_owner = process_owner(bob)
        assert b.claim_image(new[0], bob_owner, 120) == []

        code, out, err = run(capsys, "train", folder, "--store", anna_url, "--model", "unet", "--watch",
                             "--max-updates", "1", "--seconds", "1", "--poll", "0.1", "--ahead", str(len(new)),
                             *TINY, "--json")
        assert code == 0, err
        (v,) = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
        assert v["version"] == 1 and v["done_images"] == 1  # the accepted image only
        models = {m["path"]: m for m in lead.models()}
        assert v["checkpoint"] in models and models[v["checkpoint"]]["metrics"]["done_images"] == 1
        assert sorted(v["repredicted"]) == new[1:] and v["left_alone"] == [new[0]]
        for i in new[1:]:
            assert lead.image(i).status == "predicted"
        assert lead.regions(new[0]) == [] and lead.image(new[0]).status == NEW  # bob's
        for i in done:  # people's work: no model regions written on it
            assert [x.source for x in lead.regions(i)] and not model_regions(lead, i)

        # nothing accepted any more: an update says why rather than learn from unreviewed work (`--watch`
        # waits for an accept)
        from segstudio.inference.training.live import LiveConfig, LiveError, LiveLearner
        lead.review_image(done[0], False, "again")
        p = Project.open(folder, store=anna_url, scan=False)
        try:
            with pytest.raises(LiveError, match="accepted"):
                LiveLearner(p, LiveConfig(seconds=1, device="cpu")).update()
        finally:
            p.close()
    finally:
        for s in (lead, r, b):
            s.close()


def regions_by_image(store) -> dict:
    names = {c.id: c.name for c in store.classes()}
    return {rec.path: (rec.status, sorted((r.source, names[r.class_id], r.x, r.y, r.mask.shape, r.mask.tobytes(),
                                           r.score) for r in store.regions(rec.id)))
            for rec in store.images()}


@pytest.mark.slow
def test_ray_predict_on_postgresql_writes_what_local_predict_writes(team, pg_url_factory, logins, tmp_path,
                                                                     capsys):
    """`predict --ray --workers 1` as an annotator on one PostgreSQL project and local predict on a twin:
    the same regions and statuses, and bob's open image left alone by both."""
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[cluster]'")
    folder, url = team["folder"], team["url"]
    twin = pg_url_factory()
    fill_store(folder, twin, team["truth"])
    grant(capsys, twin, {logins[k]: role for k, role in ROLES.items()})
    ck = tmp_path / "m" / "unet.pt"
    train_tiny(capsys, folder, url, ck)
    bob = logins["bob"]
    stores = [PostgresStore(as_user(u, bob)) for u in (url, twin)]
    try:
        held = [s.image_ids(statuses=(NEW,))[0] for s in stores]
        for s, i in zip(stores, held, strict=True):
            assert s.claim_image(i, process_owner(bob), 300) == []
        reps = []
        for u, extra in ((url, ()), (twin, ("--ray", "--workers", "1"))):
            code, out, err = run(capsys, "predict", folder, "--store", as_user(u, logins["anna"]), "--model",
                                 "unet", "--weights", ck, "--device", "cpu", *extra, "--json")
            assert code == 0, err
            reps.append(json.loads(out))
        local, on_ray = reps
        assert on_ray["device"].startswith("Ray") and not on_ray["errors"]
        assert local["regions"] == on_ray["regions"] > 0 and local["images"] == on_ray["images"] == 2
        assert [local["left_alone"], on_ray["left_alone"]] == [[i] for i in held]
        assert regions_by_image(stores[0]) == regions_by_image(stores[1])
    finally:
        for s in stores:
            s.close()
        ray.shutdown()


def test_an_annotators_predict_on_done_images_leaves_them_alone(team, tmp_path, capsys):
    """A lead may add a model's regions beside a person's on done images (`--status done,new`); an annotator
    may not (the server's rule): the run leaves them alone, says so, and still predicts the new images."""
    folder, url = team["folder"], team["url"]
    ck = tmp_path / "m" / "unet.pt"
    train_tiny(capsys, folder, url, ck)
    anna, anna_url = team["anna"]
    code, out, err = run(capsys, "predict", folder, "--store", anna_url, "--model", "unet", "--weights", ck,
                         "--device", "cpu", "--status", "done,new", "--json")
    assert code == 0, err
    rep = json.loads(out)
    s = PostgresStore(url)
    try:
        done = [x.id for x in s.images(statuses=(DONE,))]
        new = [x.id for x in s.images(statuses=("predicted",))]
        assert len(done) == N_DONE and len(new) == N_IMAGES - N_DONE  # every new image predicted
        assert sorted(rep["left_alone"]) == done and rep["images"] == len(new)
        assert not any(model_regions(s, i) for i in done)
    finally:
        s.close()
