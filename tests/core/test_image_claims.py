"""The image open in a window is held in the project store: a predictor in another process
leaves it alone, the hold lapses when its window dies, and stays while the window lives."""

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from PIL import Image

from segstudio.core.claims import OpenImageClaim, describe_owner, process_owner
from segstudio.core.project import Project
from segstudio.core.store import SqliteStore, default_db_path
from segstudio.core.store.schema import SCHEMA_V1, SCHEMA_VERSION

# A predictor in its own process: the model's regions for every image, committed the way every
# predictor commits them (engine.predict_project, Ray's driver): prints the ids it left alone.
PREDICTOR = textwrap.dedent("""
    import json, sys
    import numpy as np
    from segstudio.core import rle
    from segstudio.core.project import Project
    from segstudio.core.store import encoded_region_row
    p = Project.open(sys.argv[1], scan=False)
    cid = p.store.classes()[0].id
    entries = []
    for rec in p.store.images():
        [rid] = p.store.reserve_region_ids(1)
        m = np.ones((4, 4), bool)
        row = encoded_region_row(rid, rec.id, cid, 0, 0, 4, 4, rle.encode(m), 16, source="model")
        entries.append({"image_id": rec.id, "source": "model", "rows": [row], "status": "predicted",
                        "uncertainty": None})
    print(json.dumps(p.store.replace_source_regions_many(entries, claim_owner=sys.argv[2] or None)))
""")

# A window in its own process that holds an image and then hangs (killed by the test).
HOLDER = textwrap.dedent("""
    import sys, time
    from segstudio.core.claims import OpenImageClaim
    from segstudio.core.project import Project
    p = Project.open(sys.argv[1], scan=False)
    OpenImageClaim(p.store, ttl=float(sys.argv[3]), renew_every=0.1).hold(int(sys.argv[2]))
    print("holding", flush=True)
    time.sleep(600)
""")


def run_predictor(folder, owner: str = "") -> list[int]:
    out = subprocess.run([sys.executable, "-c", PREDICTOR, str(folder), owner], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def proj(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), i * 40, np.uint8)).save(d / f"im{i}.png")
    p = Project.open(d)
    p.store.add_class("thing")
    yield p
    p.close()


def test_a_predictor_in_another_process_leaves_the_held_image_alone(proj):
    a, b, c = proj.store.images()
    claim = OpenImageClaim(proj.store)
    claim.hold(a.id)
    assert run_predictor(proj.folder) == [a.id]
    assert proj.store.region_count(a.id) == 0 and proj.store.image(a.id).status == "new"
    assert proj.store.region_count(b.id) == 1 and proj.store.image(b.id).status == "predicted"
    # the window moves on: the image it left is free, the new one is held
    claim.hold(b.id)
    assert run_predictor(proj.folder) == [b.id]
    assert proj.store.region_count(a.id) == 1
    claim.release()
    assert run_predictor(proj.folder) == []
    assert proj.store.claimed_images() == {}


def test_the_holder_itself_may_write_its_image(proj):
    """The window's own Segment folder writes the image it shows (and reloads it)."""
    a = proj.store.images()[0]
    claim = OpenImageClaim(proj.store, owner="window-1")
    claim.hold(a.id)
    assert run_predictor(proj.folder, owner="window-1") == []
    assert run_predictor(proj.folder, owner="window-2") == [a.id]
    claim.release()


def test_a_killed_window_frees_its_image_when_the_claim_lapses(proj):
    a = proj.store.images()[0]
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(proj.folder), str(a.id), "1.5"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        time.sleep(2.0)  # longer than the claim's life: the holder's renewals keep it
        assert run_predictor(proj.folder) == [a.id]
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        deadline = time.time() + 10
        while proj.store.claimed_images() and time.time() < deadline:
            time.sleep(0.1)
        assert run_predictor(proj.folder) == []
        assert proj.store.region_count(a.id) == 1
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)


def test_claims_of_several_holders(proj):
    a, b, _ = proj.store.images()
    s = proj.store
    assert s.claim_image(a.id, "w1", 60) == []
    assert s.claim_image(a.id, "w2", 60) == ["w1"]  # open in two windows: both hold it
    s.release_image(a.id, "w1")
    assert s.claimed_images() == {a.id: "w2"}
    assert s.claimed_images(except_owner="w2") == {}
    assert s.renew_claims("w2", 60) == 1 and s.renew_claims("nobody", 60) == 0
    s.claim_image(b.id, "w3", -1)  # lapsed at once
    assert s.claimed_images([a.id, b.id]) == {a.id: "w2"}
    s.claim_image(b.id, "w4", 60)  # taking a claim drops lapsed ones
    assert s.conn.execute("SELECT COUNT(*) FROM claims WHERE owner='w3'").fetchone()[0] == 0


def test_a_deleted_image_takes_its_claims_with_it(proj):
    a = proj.store.images()[0]
    proj.store.claim_image(a.id, "w1", 60)
    with proj.store.transaction() as t:
        t.execute("DELETE FROM images WHERE id=?", (a.id,))
    assert proj.store.claimed_images() == {}


def test_owner_names_the_process():
    owner = process_owner()
    assert owner == process_owner()
    assert describe_owner(owner).startswith("process ")


def test_a_version_1_project_is_migrated_with_its_data(tmp_path):
    """Projects written before claims existed open, keep their images, and gain the table."""
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(d / "a.png")
    db = default_db_path(d)
    db.parent.mkdir()
    c = sqlite3.connect(str(db))
    c.executescript(SCHEMA_V1)
    c.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    c.execute("INSERT INTO images(path, status) VALUES ('a.png', 'done')")
    c.commit()
    c.close()
    s = SqliteStore(db, d)
    assert s._version(s.conn) == SCHEMA_VERSION == 4
    assert s.image_by_path("a.png").status == "done"
    assert s.claim_image(s.image_by_path("a.png").id, "w", 60) == []
    s.close()
    # a new project is created at the newest version too
    fresh = SqliteStore(tmp_path / "new.db")
    assert fresh._version(fresh.conn) == SCHEMA_VERSION
    assert "claims" in fresh._tables(fresh.conn)
    fresh.close()
