"""Who did what: core/team_stats.by_user on generated histories (checked against a plain re-count),
and `segstudio info --by-user` on a real project's history."""

import json
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from segstudio.cli import main
from segstudio.core.project import Project
from segstudio.core.region import Region
from segstudio.core.store.api import HistoryEntry
from segstudio.core.team_stats import IDLE_S, by_user, format_duration

PEOPLE = ["anna", "bo", "'; DROP TABLE x; --", "日本"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@st.composite
def histories(draw):
    n = draw(st.integers(0, 40))
    t = 1_700_000_000.0
    out = []
    for i in range(n):
        t += draw(st.sampled_from([0.0, 1.5, 60.0, IDLE_S, IDLE_S + 0.5, 3600.0]))
        who = draw(st.sampled_from(PEOPLE))
        what = draw(st.sampled_from(["status", "regions", "review", "model", "claim"]))
        detail = {"status": lambda: {"from": "new", "to": draw(st.sampled_from(["done", "in_progress"]))},
                  "regions": lambda: {"changed": draw(st.integers(0, 5)), "deleted": draw(st.integers(0, 3))},
                  "review": lambda: {"accepted": draw(st.booleans()), "note": "x"},
                  "model": lambda: {"source": "unet", "regions": 3},
                  "claim": lambda: {"open": True}}[what]()
        out.append(HistoryEntry(i + 1, draw(st.integers(1, 4)), who, t, what, detail))
    return out


def recount(history):
    """The same figures, counted the slow and obvious way."""
    want = {}
    for who in {h.who for h in history}:
        mine = [h for h in history if h.who == who]
        timed = [h.at for h in mine if h.what not in ("model", "claim")]
        active = sum(b - a for a, b in zip(timed, timed[1:], strict=False) if b - a <= IDLE_S)
        done = len({h.image_id for h in mine if h.what == "status" and h.detail["to"] == "done"})
        regions = sum(h.detail["changed"] + h.detail["deleted"] for h in mine if h.what == "regions")
        reviews = [h for h in mine if h.what == "review"]
        returns = 0
        for r in (h for h in history if h.what == "review" and not h.detail["accepted"]):
            marks = [h for h in history if h.what == "status" and h.detail["to"] == "done"
                     and h.image_id == r.image_id and (h.at, h.id) < (r.at, r.id)]
            returns += bool(marks) and marks[-1].who == who
        want[who] = (done, regions, active, returns, len(reviews), sum(h.detail["accepted"] for h in reviews))
    return want


@settings(max_examples=200, deadline=None)
@given(histories(), st.randoms())
def test_by_user_matches_a_plain_count(history, rnd):
    shuffled = list(history)
    rnd.shuffle(shuffled)  # any order in: sorted by time inside
    got = {p.who: (p.done, p.regions, p.active_s, p.returns, p.reviewed, p.accepted) for p in by_user(shuffled)}
    want = recount(history)
    assert got.keys() == want.keys()
    for who in want:
        assert got[who][:2] == want[who][:2] and got[who][3:] == want[who][3:]
        assert math.isclose(got[who][2], want[who][2], abs_tol=1e-6)


def test_hostile_history_counts_little():
    bad = [HistoryEntry(1, 1, "anna", float("nan"), "status", {"to": "done"}),
           HistoryEntry(2, 1, "anna", 10.0, "regions", {"changed": "lots", "deleted": -4}),
           HistoryEntry(3, 1, "anna", 20.0, "regions", {"changed": True}),
           HistoryEntry(4, 1, "anna", float("inf"), "review", {}),
           HistoryEntry(5, 2, "anna", 30.0, "status", {"to": ["done"]})]
    [p] = by_user(bad)
    assert (p.done, p.regions, p.active_s, p.events) == (0, 0, 20.0, 3)
    assert format_duration(3725) == "1h 02m" and format_duration(65) == "1m 05s" and format_duration(-3) == "0s"


def test_info_by_user_on_a_project(tmp_path, capsys):
    from tests.conftest import make_image
    folder = tmp_path / "imgs"
    for i in range(3):
        make_image(folder / f"im{i}.png", seed=i)
    p = Project.open(folder)
    s = p.store
    cat = s.add_class("cat")
    ids = s.image_ids()
    for k, iid in enumerate(ids):
        r = Region(s.new_region_id(), cat.id, np.ones((3, 3), bool), x=k)
        s.save_regions(iid, [r], status="done")
    s.set_review_enabled(True)
    s.review_image(ids[0], False, "fix the cat")
    s.review_image(ids[1], True)
    p.close()
    code, out, err = run(capsys, "info", folder, "--by-user")
    assert code == 0, err
    me = s.user
    assert me in out and "returns" in out
    code, out, err = run(capsys, "info", folder, "--by-user", "--json")
    d = json.loads(out)
    [person] = d["people"]
    assert person["who"] == me and person["done"] == 3 and person["regions"] == 3
    assert person["returns"] == 1 and person["reviewed"] == 2 and person["accepted"] == 1
    code, out, err = run(capsys, "info", folder, "--json")
    d = json.loads(out)
    assert d["review"] == {"enabled": True, "waiting": 1, "accepted": 1, "returned": 1}
    assert d["store"] == "sqlite" and d["project"].endswith("project.db")


def test_info_by_user_with_no_history(image_folder, capsys):
    code, out, _ = run(capsys, "info", image_folder, "--by-user")
    assert code == 0 and "no history yet" in out
