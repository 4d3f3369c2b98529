"""The PostgreSQL store against a real server (tests/pg_fixtures.py starts a throwaway one): it
implements the Store protocol like SQLite's, has the same schema, answers the same as SQLite for the
same calls (hostile text included), keeps claims exclusive on the server's clock, tells listeners,
and comes back after the server restarts."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segstudio.core.errors import BadValue
from segstudio.core.region import Region
from segstudio.core.store import ClaimedElsewhere, SqliteStore, StoreError
from segstudio.core.store.schema import COPY_TABLES

psycopg = pytest.importorskip("psycopg")
from segstudio.core.store.postgres import PostgresStore, checked_conninfo, pg_sql  # noqa: E402
from tests.core.test_store_protocol import signature_mismatches  # noqa: E402

HOSTILE = ["x'); DROP TABLE images;--", "<b>bold</b><script>alert(1)</script>", "100% ?? \\ '' \"q\"",
           "名前 ☃ \u202e", "a" * 3000, "$1 %s %(x)s {}"]


@pytest.fixture
def pg(pg_url):
    s = PostgresStore(pg_url)
    yield s
    s.close()


def _mask(h=6, w=7, seed=0):
    m = np.random.default_rng(seed).random((h, w)) > 0.4
    m[0, 0] = m[-1, -1] = True
    return m


def test_the_postgres_store_implements_the_protocol(pg):
    assert signature_mismatches(PostgresStore) == []
    assert pg.kind == "postgresql" and pg.exclusive_claims and pg.user == "segstudio"
    assert pg.location.startswith("postgresql://segstudio@127.0.0.1:") and "password" not in pg.location


def test_both_backends_have_the_same_tables_and_columns(pg, tmp_path):
    s = SqliteStore(tmp_path / "p.db")
    try:
        for table in COPY_TABLES + ("claims",):
            lite = [r[1] for r in s.conn.execute(f"PRAGMA table_info({table})")]
            cols = [r[0] for r in pg.conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name=? ORDER BY ordinal_position",
                (table,))]
            assert lite == cols, table
        assert pg.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == \
            s.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "4"
    finally:
        s.close()


def _script(s) -> dict:
    """The same calls on a store; what it answers."""
    out: dict = {}
    s.sync_files(["b.png", "a.png", "B.png", "a_1.png", "a-2.png", "a0.png", "sub/c.png", "x%y.png"])
    out["order"] = [r.path for r in s.images()]
    out["filter"] = [r.path for r in s.images(name_contains="A_")] + [r.path for r in s.images(name_contains="%")]
    out["next"] = [getattr(s.next_image(p), "path", None) for p in (None, "a.png", "sub/c.png")]
    out["prev"] = getattr(s.next_image("b.png", backwards=True), "path", None)
    c = s.add_class("cell")
    s.add_class("nucleus", hotkey="n")
    out["classes"] = [(k.id, k.name, k.hex_color, k.hotkey, k.ignore) for k in s.classes()]
    ids = s.reserve_region_ids(3)
    img = s.image_by_path("a.png").id
    s.save_regions(img, [Region(ids[0], c.id, _mask(), 3, 4, score=0.25, extra={"k": [1, 2]}, track=7),
                         Region(ids[1], c.id, _mask(5, 5, 1), 0, 0)], status="in_progress")
    s.save_regions(img, deletes=[ids[1]])
    out["regions"] = [(r.id, r.class_id, r.x, r.y, r.score, r.extra, r.track, r.mask.tobytes()) for r in s.regions(img)]
    s.set_status([img, s.image_by_path("b.png").id], "done")
    out["counts"] = s.status_counts()
    out["area"] = s.area_per_class()
    out["fp"] = s.done_fingerprint()[0]
    out["number"] = [s.take_number("v"), s.take_number("v"), s.take_number("v", floor=10)]
    s.set_setting("k", {"a": [1, None, "x"]})
    out["setting"] = s.get_setting("k")
    s.review_image(img, False, "redo the <edge>")
    out["returned"] = (s.image(img).status, s.image(img).review, s.image(img).note, s.review_counts())
    s.set_status(img, "done")
    s.review_image(img, True)
    out["accepted"] = (s.image(img).review, s.review_counts())
    out["history"] = [(h.what, h.detail) for h in s.history(img)]
    out["missing"] = s.sync_files(["a.png"])
    out["missing_regions"] = s.missing_with_regions()
    return out


def test_postgres_answers_what_sqlite_answers(pg, tmp_path):
    s = SqliteStore(tmp_path / "p.db")
    try:
        lite, srv = _script(s), _script(pg)
    finally:
        s.close()
    assert srv == lite
    assert lite["order"][:3] == ["B.png", "a-2.png", "a.png"]  # bytewise, whatever the server's locale
    assert lite["filter"] == ["a_1.png", "x%y.png"]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                        min_size=1, max_size=40).filter(lambda t: t.strip()), min_size=1, max_size=4, unique_by=str.strip))
def test_hostile_text_is_stored_as_it_is(pg, names):
    for name in names + HOSTILE[:2]:
        if pg.class_by_name(name.strip()) is None:
            pg.add_class(name)
    got = {c.name for c in pg.classes()}
    assert {n.strip() for n in names} <= got
    assert pg.conn.execute("SELECT to_regclass('images')").fetchone()[0] is not None


def test_hostile_values_never_become_sql(pg):
    pg.sync_files(HOSTILE[:4])
    for text in HOSTILE:
        pg.set_setting(text, text)
        assert pg.get_setting(text) == text
    img = pg.image_by_path(HOSTILE[0]).id
    pg.set_status(img, "done")
    pg.review_image(img, False, HOSTILE[0])
    assert pg.image(img).note == HOSTILE[0]
    assert sorted(r.path for r in pg.images()) == sorted(HOSTILE[:4])
    with pytest.raises(BadValue):
        pg.add_class("nul\x00name")
    with pytest.raises(BadValue):
        pg.review_image(img, True, "nul\x00note")


def test_placeholders_and_percent_signs_are_translated_outside_quotes():
    assert pg_sql("SELECT ? WHERE a LIKE ? ESCAPE '\\' AND b='?%'") == \
        "SELECT %s WHERE a LIKE %s ESCAPE '\\' AND b='?%%'"


def test_a_password_never_sits_in_the_address(pg_url):
    with pytest.raises(StoreError, match="password"):
        PostgresStore(pg_url.replace("segstudio@", "segstudio:hunter2@"))
    with pytest.raises(StoreError, match="password"):
        checked_conninfo("host=h dbname=d password=x")
    conninfo, where = checked_conninfo("host=db.lab port=5433 dbname=cells user=anna sslmode=verify-full")
    assert where == "postgresql://anna@db.lab:5433/cells?sslmode=verify-full"
    assert "connect_timeout" in conninfo and "application_name=segstudio" in conninfo


def test_a_conninfo_string_opens_the_same_project(pg, pg_url):
    p = psycopg.conninfo.conninfo_to_dict(pg_url)
    other = PostgresStore(f"host={p['host']} port={p['port']} user={p['user']} dbname={p['dbname']}")
    try:
        pg.sync_files(["a.png"])
        assert other.image_count() == 1
    finally:
        other.close()


def test_claims_are_exclusive_and_lapse_on_the_servers_clock(pg):
    pg.sync_files(["a.png", "b.png"])
    c = pg.add_class("cell")
    anna, bob = "anna@h:1:a", "bob@h:2:b"
    assert pg.claim_image(1, anna, 0.6) == []
    assert pg.claim_image(1, bob, 30) == [anna]  # not taken
    assert pg.claimed_images() == {1: anna}
    assert pg.next_image(None, skip_claimed=bob).path == "b.png"
    with pytest.raises(ClaimedElsewhere, match="anna"):
        pg.save_regions(1, [Region(pg.new_region_id(), c.id, _mask(), 0, 0)], status="in_progress", owner=bob)
    assert pg.region_count(1) == 0 and pg.image(1).status == "new"  # nothing written
    pg.save_regions(1, [Region(pg.new_region_id(), c.id, _mask(), 0, 0)], owner=anna)
    time.sleep(0.8)
    assert pg.claim_image(1, bob, 30) == []  # anna's lapsed: bob holds it now
    assert pg.renew_claims(anna, 30) == 0
    assert pg.take_over(1, anna, 30) == [bob]
    assert pg.image_holders(1) == [anna]


def test_region_ids_and_numbers_are_unique_across_clients(pg, pg_url):
    other = PostgresStore(pg_url)
    got: list[int] = []
    numbers: list[int] = []
    lock = threading.Lock()

    def work(s):
        for _ in range(20):
            ids = s.reserve_region_ids(5)
            n = s.take_number("model")
            with lock:
                got.extend(ids)
                numbers.append(n)

    threads = [threading.Thread(target=work, args=(s,)) for s in (pg, other, pg, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    assert len(got) == len(set(got)) == 400
    assert sorted(numbers) == list(range(1, 81))


def test_a_listener_hears_another_clients_commit_within_two_seconds(pg, pg_url):
    pg.sync_files(["a.png"])
    events: list[tuple[float, dict]] = []
    listener = pg.listen(lambda e: events.append((time.monotonic(), e)))
    try:
        assert listener.listening.wait(5)
        other = PostgresStore(pg_url)
        t0 = time.monotonic()
        other.set_status(1, "done")
        other.claim_image(1, "bob@h:2:b", 30)
        other.close()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and len({e["t"] for _, e in events}) < 2:
            time.sleep(0.02)
        kinds = {e["t"]: at for at, e in events}
        assert {"image", "claim"} <= set(kinds)
        assert max(kinds["image"], kinds["claim"]) - t0 < 2.0
        assert all(e.get("id") == 1 for _, e in events if e["t"] in ("image", "claim"))
    finally:
        listener.close()


def test_the_store_and_its_listener_come_back_after_a_server_restart(pg, pg_cluster):
    pg.sync_files(["a.png"])
    events: list[dict] = []
    listener = pg.listen(events.append)
    try:
        assert listener.listening.wait(5)
        pg_cluster.restart()
        with pytest.raises(StoreError, match="reconnecting"):
            for _ in range(3):  # the first use of the old connection fails, once
                pg.set_status(1, "done")
                time.sleep(0.05)
        pg.set_status(1, "done")  # a new connection
        assert pg.image(1).status == "done"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(e["t"] == "back" for e in events):
            time.sleep(0.05)
        assert [e["t"] for e in events if e["t"] in ("lost", "back")][:2] == ["lost", "back"]
    finally:
        listener.close()


def test_a_database_of_another_application_is_refused_untouched(pg_url):
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("CREATE TABLE invoices(id int)")
    with pytest.raises(StoreError, match="another application"):
        PostgresStore(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as c:
        assert [r[0] for r in c.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")] == ["invoices"]


def test_a_newer_schema_is_refused(pg, pg_url):
    pg.conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(StoreError, match="newer segstudio"):
        PostgresStore(pg_url)


def test_two_clients_opening_a_new_project_at_once_create_it_once(pg_url):
    stores: list = []
    errors: list = []

    def open_one():
        try:
            stores.append(PostgresStore(pg_url))
        except Exception as e:  # noqa: BLE001 - the test reports it
            errors.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(stores) == 4
    assert stores[0].conn.execute("SELECT COUNT(*) FROM counters WHERE name='region'").fetchone()[0] == 1
    for s in stores:
        s.close()


def _new_login(pg_url: str, prefix: str = "t_") -> str:
    """A new login role with a unique name (roles are the whole server's), in no project yet."""
    import uuid

    from psycopg import sql
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    return name


def _login(pg_url: str, role: str) -> tuple[str, str]:
    """A new login role made a member of the project as `role`, and the URL as that role."""
    from segstudio.core.store import pg_schema
    name = _new_login(pg_url)
    owner = PostgresStore(pg_url)
    try:
        pg_schema.setup_roles(owner.conn)
        pg_schema.add_member(owner.conn, name, role)
    finally:
        owner.close()
    return name, pg_url.replace("segstudio@", f"{name}@")


def test_only_a_lead_takes_over_and_a_return_is_a_status_change_too(pg, pg_url):
    pg.sync_files(["a.png"])
    anna, anna_url = _login(pg_url, "annotator")
    lead, lead_url = _login(pg_url, "lead")
    a, boss = PostgresStore(anna_url), PostgresStore(lead_url)
    try:
        assert boss.claim_image(1, f"{lead}@h:1:x", 30) == []
        with pytest.raises(StoreError, match="only a lead"):
            a.take_over(1, f"{anna}@h:2:y", 30)
        assert a.image_holders(1) == [f"{lead}@h:1:x"]  # nothing changed
        boss.release_image(1, f"{lead}@h:1:x")
        assert a.claim_image(1, f"{anna}@h:2:y", 30) == []
        assert boss.take_over(1, f"{lead}@h:1:x", 30) == [f"{anna}@h:2:y"]
        pg.set_status(1, "done")
        pg.review_image(1, False, "the edge")
        assert [(h.what, h.detail.get("to")) for h in pg.history(1)][-2:] == [("status", "in_progress"),
                                                                              ("review", None)]
    finally:
        a.close()
        boss.close()


def test_an_annotator_cannot_get_round_the_rules_with_raw_sql(pg, pg_url):
    """Temporary look-alike tables, forged ids and authors, a second claim, a review: the server says no."""
    pg.sync_files(["a.png", "b.png"])
    cls = pg.add_class("cell")
    anna, anna_url = _login(pg_url, "annotator")
    bob, bob_url = _login(pg_url, "annotator")
    b = PostgresStore(bob_url)
    try:
        assert b.claim_image(1, f"{bob}@h:1:x", 30) == []
        with psycopg.connect(anna_url, autocommit=True) as raw:
            for stmt in ("CREATE TEMP TABLE claims(image_id bigint, owner text, expires float8)",
                         "CREATE TEMP VIEW pg_roles AS SELECT 'x'::name AS rolname, true AS rolsuper",
                         "INSERT INTO history(id, image_id, who, at, what) VALUES (999999, 1, 'x', 0, 'status')",
                         "INSERT INTO images(id, path) VALUES (999999, 'forged.png')",
                         "UPDATE images SET path='renamed.png' WHERE id=1",
                         "INSERT INTO images(path, status, review) VALUES ('c.png', 'done', 'accepted')",
                         "UPDATE images SET note='fine' WHERE id=2",
                         "UPDATE counters SET name='x'"):
                with pytest.raises(psycopg.Error):
                    raw.execute(stmt)
            assert raw.execute("DELETE FROM claims").rowcount == 0  # bob's live claim is not hers to drop
            # a second live claim on the image bob holds, with an expiry far away
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="being edited"):
                raw.execute("INSERT INTO claims(image_id, owner, expires) VALUES (1, %s, 1e18)", (f"{anna}@h:2:y",))
            # her history rows carry her login and the server's clock, whatever she writes
            raw.execute("INSERT INTO history(image_id, who, at, what) VALUES (2, 'lena', 0, 'status')")
            who, at = raw.execute("SELECT who, at FROM history ORDER BY id DESC LIMIT 1").fetchone()
            assert who == anna and at > 1e9
            # her own claim cannot outlive her by more than an hour
            raw.execute("INSERT INTO claims(image_id, owner, expires) VALUES (2, %s, 1e18)", (f"{anna}@h:2:y",))
            assert raw.execute("SELECT expires - EXTRACT(EPOCH FROM now()) FROM claims WHERE image_id=2"
                               ).fetchone()[0] <= 3700
        assert pg.image_holders(1) == [f"{bob}@h:1:x"] and pg.region_count(1) == 0
        assert b.conn.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 2
        b.save_regions(1, [Region(b.new_region_id(), cls.id, _mask(), 0, 0)], owner=f"{bob}@h:1:x")
        assert pg.region_count(1) == 1
    finally:
        b.close()


def test_a_login_with_an_at_sign_holds_and_writes_its_images(pg, pg_url):
    from segstudio.core.claims import process_owner
    from segstudio.core.store import pg_schema
    name = _new_login(pg_url, "ann@lab")
    pg_schema.setup_roles(pg.conn)
    pg_schema.add_member(pg.conn, name, "annotator")
    pg.sync_files(["a.png"])
    cls = pg.add_class("cell")
    d = psycopg.conninfo.conninfo_to_dict(pg_url)
    s = PostgresStore(f"host={d['host']} port={d['port']} dbname={d['dbname']} user='{name}'")
    try:
        assert s.user == name
        assert PostgresStore(s.location).user == name  # the location another process gets opens the same
        owner = process_owner(s.user)
        assert s.claim_image(1, owner, 30) == []
        s.save_regions(1, [Region(s.new_region_id(), cls.id, _mask(), 0, 0)], owner=owner)
        assert pg.region_count(1) == 1
    finally:
        s.close()


def test_connections_of_threads_that_ended_are_closed(pg):
    def one():
        pg.image_count()

    for _ in range(12):
        t = threading.Thread(target=one)
        t.start()
        t.join()
    pg.image_count()
    mine = pg.conn.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE datname=current_database() "
                           "AND application_name='segstudio' AND backend_type='client backend'").fetchone()[0]
    assert mine <= 3


def test_a_refusal_on_a_live_connection_is_not_a_lost_connection(pg, caplog):
    long = "d/" + "x" * 3000 + ".png"
    assert pg.sync_files(["a.png", long])[0] == 2  # counted as found, but only the short one is added
    assert [r.path for r in pg.images()] == ["a.png"]
    assert "longer than" in caplog.text
    with pytest.raises(StoreError) as err:
        pg.set_setting("".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(3000)), "v")  # too long to index
    assert "could not do this" in str(err.value) and "reconnecting" not in str(err.value)
    assert pg.image_count() == 1  # the same connection goes on


@pytest.mark.parametrize("spec,where", [
    ("host=/var/run/postgresql dbname=proj", "host=/var/run/postgresql dbname=proj"),
    ("hostaddr=10.1.2.3 dbname=proj user=anna", "hostaddr=10.1.2.3 dbname=proj user=anna"),
    ("postgresql://anna@db.lab:5433/cells?sslmode=verify-full", "postgresql://anna@db.lab:5433/cells?sslmode=verify-full"),
    ("service=cells", "service=cells"),
])
def test_the_location_opens_the_same_database_and_holds_no_secret(spec, where):
    conninfo, location = checked_conninfo(spec)
    parse = psycopg.conninfo.conninfo_to_dict
    assert location == where if "://" in where else parse(location) == parse(where)
    with pytest.raises(StoreError, match="password"):
        checked_conninfo(spec + (" sslpassword=x" if "=" in spec and "://" not in spec else "&sslpassword=x"))


def test_the_persons_own_server_options_are_kept():
    conninfo, _ = checked_conninfo("host=h dbname=d options='-c search_path=lab'")
    opts = psycopg.conninfo.conninfo_to_dict(conninfo)["options"]
    assert "search_path=lab" in opts and "statement_timeout" in opts


def test_a_first_connection_that_fails_says_why_and_what_to_do(pg_url, pg_cluster):
    with pytest.raises(StoreError, match="cannot connect.*no database of that name") as e:
        PostgresStore(pg_url.rsplit("/", 1)[0] + "/no_such_db")
    assert "reconnecting" not in str(e.value)
    with pytest.raises(StoreError, match="no login of that name"):
        PostgresStore(pg_url.replace("segstudio@", "zed@"))
    name, url = _login(pg_url, "annotator")
    with psycopg.connect(pg_url, autocommit=True) as c:
        from psycopg import sql
        db = c.execute("SELECT current_database()").fetchone()[0]
        c.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {}").format(sql.Identifier(db), sql.Identifier(name)))
    with pytest.raises(StoreError, match="store grant"):
        PostgresStore(url)


def test_grant_needs_the_roles_set_up_and_gives_one_role(pg, pg_url):
    from segstudio.core.store import pg_schema
    name = _new_login(pg_url)
    pg_schema.setup_roles(pg.conn)
    pg_schema.add_member(pg.conn, name, "annotator")
    pg_schema.add_member(pg.conn, name, "reviewer")
    assert (name, "reviewer") in pg_schema.members(pg.conn) and (name, "annotator") not in pg_schema.members(pg.conn)


def test_grant_in_a_database_without_the_roles_says_so(pg_url_factory):
    from segstudio.core.store import pg_schema
    url = pg_url_factory()
    s = PostgresStore(url)
    try:
        with pytest.raises(StoreError, match="store init URL --roles"):
            pg_schema.add_member(s.conn, "segstudio", "annotator")
    finally:
        s.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_changing_the_regions_of_an_accepted_image_takes_the_acceptance_back(backend, pg, tmp_path):
    s = pg if backend == "postgresql" else SqliteStore(tmp_path / "p.db")
    try:
        s.sync_files(["a.png"])
        cls = s.add_class("cell")
        rid = s.new_region_id()
        s.save_regions(1, [Region(rid, cls.id, _mask(), 0, 0)], status="done")
        s.review_image(1, True)
        assert s.image(1).review == "accepted"
        s.save_regions(1, deletes=[rid])  # no status change: still done, but not what was accepted
        assert s.image(1).status == "done" and s.image(1).review is None
        assert s.review_counts()["waiting"] == 1
        assert s.history(1)[-1].what == "review" and s.history(1)[-1].detail["accepted"] is False
        s.save_regions(1, [Region(s.new_region_id(), cls.id, _mask(), 0, 0)])
        s.remove_class(cls.id)  # a class delete is a change of the image, recorded as one
        assert any(h.what == "regions" and h.detail.get("class removed") == "cell" for h in s.history(1))
    finally:
        if s is not pg:
            s.close()


def test_raw_region_writes_take_an_acceptance_back_and_statuses_of_held_images_stay(pg, pg_url):
    pg.sync_files(["a.png", "b.png"])
    cls = pg.add_class("cell")
    pg.set_status([1, 2], "done")
    pg.review_image(1, True)
    anna, anna_url = _login(pg_url, "annotator")
    bob, bob_url = _login(pg_url, "annotator")
    a, b = PostgresStore(anna_url), PostgresStore(bob_url)
    try:
        owner = f"{anna}@h:1:x"
        assert a.claim_image(1, owner, 30) == []
        with psycopg.connect(anna_url, autocommit=True) as raw:
            raw.execute("INSERT INTO regions(id, image_id, class_id, x, y, w, h, rle, area) "
                        "VALUES (%s, 1, %s, 0, 0, 1, 1, %s, 1)", (a.new_region_id(), cls.id, b"\x00\x01"))
        assert pg.image(1).review is None  # the server took the acceptance back
        with pytest.raises(ClaimedElsewhere, match=anna):
            b.set_status(1, "skipped")  # anna has it open
        with psycopg.connect(bob_url, autocommit=True) as raw, \
                pytest.raises(psycopg.errors.InsufficientPrivilege, match="being edited"):
            raw.execute("UPDATE images SET status='new' WHERE id=1")
        assert pg.image(1).status == "done"
        b.set_status(2, "in_progress")  # nobody holds it
        a.set_status(1, "in_progress")  # hers to change
    finally:
        a.close()
        b.close()


def test_a_lead_of_one_project_is_nobody_special_in_another(pg_url_factory):
    import uuid

    from psycopg import sql

    from segstudio.core.store import pg_schema
    a_url, b_url = pg_url_factory(), pg_url_factory()
    name = f"t_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(a_url, autocommit=True) as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    stores = [PostgresStore(u) for u in (a_url, b_url)]
    try:
        groups = [pg_schema.setup_roles(s.conn) for s in stores]
        assert groups[0]["lead"] != groups[1]["lead"]  # each project's own groups
        pg_schema.add_member(stores[0].conn, name, "lead")
        pg_schema.add_member(stores[1].conn, name, "annotator")
        assert pg_schema.members(stores[0].conn) == [(name, "lead")]  # B's grant took nothing from A
        lea_a, lea_b = (PostgresStore(u.replace("segstudio@", f"{name}@")) for u in (a_url, b_url))
        try:
            lea_a.add_class("cell")
            with pytest.raises(StoreError, match="only a lead"):
                lea_b.add_class("cell")
        finally:
            lea_a.close()
            lea_b.close()
        third = pg_url_factory()  # a database she was never let into
        with pytest.raises(StoreError, match="store grant"):
            s = PostgresStore(third)
            try:
                pg_schema.setup_roles(s.conn)
            finally:
                s.close()
            PostgresStore(third.replace("segstudio@", f"{name}@"))
    finally:
        for s in stores:
            s.close()


def test_the_copy_columns_are_the_schemas_on_both_backends(pg, tmp_path):
    from segstudio.core.store.schema import COPY_COLUMNS
    s = SqliteStore(tmp_path / "p.db")
    try:
        for table in COPY_TABLES:
            assert tuple(s.table_rows(table)[0]) == tuple(pg.table_rows(table)[0]) == COPY_COLUMNS[table]
    finally:
        s.close()


def test_a_source_file_with_a_crafted_column_is_not_copied_from(tmp_path):
    import sqlite3
    s = SqliteStore(tmp_path / "p.db")
    s.sync_files(["a.png"])
    s.close()
    c = sqlite3.connect(tmp_path / "p.db")
    c.execute('ALTER TABLE images RENAME COLUMN note TO "(SELECT 1) AS x, note"')
    c.commit()
    c.close()
    s = SqliteStore(tmp_path / "p.db", create=False)
    try:
        with pytest.raises(StoreError, match="lacks columns"):
            s.table_rows("images")
        with pytest.raises(StoreError, match="not a table"):
            s.table_rows("sqlite_master")
    finally:
        s.close()
