"""store init --roles and store grant, and least privilege checked for real: login roles connect as
themselves to the throwaway server and are refused what their role may not do."""

import uuid
from urllib.parse import quote, urlsplit, urlunsplit

import numpy as np
import pytest

from segstudio.cli import main
from segstudio.core.claims import process_owner
from segstudio.core.region import Region
from segstudio.core.store.api import StoreError

psycopg = pytest.importorskip("psycopg")
from psycopg import sql  # noqa: E402


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def as_user(url: str, user: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}@{host}"))


@pytest.fixture
def logins(pg_url):
    """Three fresh login roles (cluster-wide names, unique per test), dropped after."""
    tag = uuid.uuid4().hex[:8]
    names = {k: f"{k}_{tag}" for k in ("anna", "rita", "lee", "nobody")}
    with psycopg.connect(pg_url, autocommit=True) as c:
        for n in names.values():
            c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(n)))
    yield names
    with psycopg.connect(pg_url, autocommit=True) as c:
        for n in names.values():
            c.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(n)))
            c.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(n)))


def open_as(url, user, folder):
    from segstudio.core.store.open import open_store
    return open_store(as_user(url, user), folder, folder / "unused.db")


def test_least_privilege(tmp_path, pg_url, logins, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    code, out, err = run(capsys, "store", "init", pg_url, "--roles")
    assert code == 0 and "project ready" in out, err
    for who, role in (("anna", "annotator"), ("rita", "reviewer"), ("lee", "lead")):
        code, out, err = run(capsys, "store", "grant", pg_url, logins[who], "--role", role)
        assert code == 0 and f"is now a{'n' if role == 'annotator' else ''} {role}" in out, err
    code, _, err = run(capsys, "store", "grant", pg_url, "ghost_" + uuid.uuid4().hex[:6], "--role", "annotator")
    assert code == 2 and "does not exist" in err and "CREATE ROLE" in err
    with pytest.raises(SystemExit) as e:  # argparse: not a role
        run(capsys, "store", "grant", pg_url, logins["anna"], "--role", "admin")
    assert e.value.code == 2

    # the lead sets the project up: classes, images, review on
    lee = open_as(pg_url, logins["lee"], folder)
    cat = lee.add_class("cat")
    lee.sync_files(["a.png", "b.png", "c.png"])
    a, b, c = (lee.image_by_path(p).id for p in ("a.png", "b.png", "c.png"))
    lee.set_review_enabled(True)
    assert lee.review_enabled()
    code, out, err = run(capsys, "store", "init", pg_url, "--roles")  # again (after an upgrade): harmless
    assert code == 0 and "project already there" in out and lee.review_enabled(), err

    anna = open_as(pg_url, logins["anna"], folder)
    assert anna.user == logins["anna"]
    for attempt in (lambda: anna.add_class("dog"), lambda: anna.remove_class(cat.id),
                    lambda: anna.set_review_enabled(False)):
        with pytest.raises(StoreError, match="may not|not allowed|permission"):
            attempt()
    with psycopg.connect(as_user(pg_url, logins["anna"]), autocommit=True) as raw:
        for stmt in ("DELETE FROM images", "DELETE FROM classes", "DELETE FROM history", "DROP TABLE regions"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                raw.execute(stmt)
    # regions only on an image she holds
    region = Region(anna.new_region_id(), cat.id, np.ones((3, 3), bool))
    with pytest.raises(StoreError):
        anna.save_regions(b, [region], status="done")
    assert anna.region_count(b) == 0
    owner = process_owner(anna.user)
    assert anna.claim_image(a, owner, 60) == []
    anna.save_regions(a, [region], status="done", owner=owner)
    assert anna.region_count(a) == 1
    with pytest.raises(StoreError, match="may not|not allowed|reviewer"):
        anna.review_image(a, True)
    assert anna.image(a).review is None

    rita = open_as(pg_url, logins["rita"], folder)
    with pytest.raises(StoreError, match="being edited"):  # anna still has it open
        rita.review_image(a, False, "the cat's tail is missing")
    anna.release_image(a, owner)  # she moves on
    rita.review_image(a, False, "the cat's tail is missing")
    assert rita.image(a).review == "returned" and rita.image(a).status == "in_progress"
    with pytest.raises(StoreError, match="may not|not allowed|permission"):
        rita.set_review_enabled(False)
    history = lee.history(image_id=a)
    assert {h.who for h in history} >= {logins["anna"], logins["rita"]}
    for s in (anna, rita, lee):
        s.close()

    # someone with a login but no grant cannot even connect to the project's database
    with pytest.raises(psycopg.OperationalError, match="CONNECT privilege"):
        psycopg.connect(as_user(pg_url, logins["nobody"]), autocommit=True)


def test_init_and_grant_refuse_what_is_not_a_server(tmp_path, capsys):
    code, _, err = run(capsys, "store", "init", tmp_path / "x.db")
    assert code == 2 and "postgresql://" in err
    code, _, err = run(capsys, "store", "init", "postgresql://lee:pw@127.0.0.1:1/x")
    assert code == 2 and "password" in err and "pw" not in err.replace("password", "")
    code, _, err = run(capsys, "store", "grant", "postgresql://lee@127.0.0.1:1/x", " anna", "--role", "lead")
    assert code == 2 and "spaces" in err
