"""Several live learners on one project, in separate processes (the window's panel and a
`train --watch`): every version number is handed out once and no checkpoint is written over
another; a watcher leaves the image open in a window alone."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from segstudio.core.records import DONE, PREDICTED
from tests.inference.test_live import disc_folder

ROOT = Path(__file__).resolve().parents[2]

# Takes live version numbers the way an update does, all processes released at the same moment
RESERVER = textwrap.dedent("""
    import json, os, sys, time
    from segstudio.core.project import Project
    from segstudio.inference.training.live import LiveConfig, LiveLearner
    folder, go, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    learner = LiveLearner(Project.open(folder, scan=False), LiveConfig(arch="unet"))
    while time.time() < go:
        time.sleep(0.002)
    print(json.dumps([learner._reserve_version()[0] for _ in range(n)]))
""")


def _env():
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def _start_together(args_list, delay=1.5):
    """Popen each argument list; they are released together by a start time they all wait for."""
    go = time.time() + delay
    return [subprocess.Popen([a.replace("{go}", repr(go)) for a in args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT) for args in args_list]


def _finish(procs, timeout=300):
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err[-3000:]
        outs.append(out)
    return outs


@pytest.mark.parametrize("round_", range(3))
def test_version_numbers_are_unique_across_processes(tmp_path, round_):
    p = disc_folder(tmp_path, n=2, done=1)
    # a version file nobody registered (a crashed update, another store) is never replaced
    p.models_dir.mkdir(parents=True)
    stray = p.models_dir / "live-unet-0003.pt"
    stray.write_bytes(b"someone's file")
    procs = _start_together([[sys.executable, "-c", RESERVER, str(p.folder), "{go}", "10"] for _ in range(4)],
                            delay=3.0)
    taken = [json.loads(o) for o in _finish(procs, timeout=120)]
    numbers = sorted(v for t in taken for v in t)
    assert len(numbers) == len(set(numbers)) == 40
    assert 3 not in numbers and stray.read_bytes() == b"someone's file"
    assert numbers == [v for v in range(1, 42) if v != 3]
    for t in taken:
        assert t == sorted(t)  # each process's own versions go up


def _watch_args(folder, *extra):
    return [sys.executable, "-m", "segstudio", "train", str(folder), "--model", "unet", "--watch", "--seconds", "2",
            "--poll", "0.1", "--max-updates", "1", "--device", "cpu", "--width", "4", "--depth", "1", "--crop", "32",
            "--json", *extra]


# A `train --watch` whose update starts when the test says go: the imports (torch, the trainer)
# are done first, so the two processes really start their updates together
WATCHER = textwrap.dedent("""
    import os, sys, time
    import torch  # noqa: F401
    import segstudio.inference.training.unet  # noqa: F401
    from segstudio.cli import main
    go = sys.argv.pop(1)
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.005)
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(2))
def test_two_watchers_started_at_once_make_two_versions(tmp_path, round_):
    """The window's panel and a CLI watcher used to both report version 1, one checkpoint
    replacing the other."""
    p = disc_folder(tmp_path, n=5, done=3)
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WATCHER, str(go), *_watch_args(p.folder)[3:]],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
             for _ in range(2)]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    go.touch()
    docs = [json.loads(line) for out in _finish(procs) for line in out.splitlines() if line.startswith("{")]
    assert len(docs) == 2
    assert sorted(d["version"] for d in docs) == [1, 2]
    paths = {d["checkpoint"] for d in docs}
    assert len(paths) == 2 and all(Path(x).exists() for x in paths)
    assert sorted(f.name for f in p.models_dir.iterdir()) == ["live-unet-0001.pt", "live-unet-0002.pt"]
    from segstudio.core.project import Project
    q = Project.open(p.folder, scan=False)
    assert {m["path"] for m in q.store.models()} == paths
    # each file is the checkpoint its process reported (learnt from the same done images)
    from segstudio.inference.runtime.checkpoint import load_checkpoint
    for x in paths:
        assert load_checkpoint(x).arch == "unet"


@pytest.mark.slow
def test_a_watcher_in_another_process_leaves_the_open_image_alone(tmp_path):
    """The image a window holds (the store API the window uses: core.claims) keeps its model
    regions while a separate `train --watch` re-predicts everything else."""
    p = disc_folder(tmp_path, n=6, done=3)
    recs = p.store.images()
    # a first version predicts the rest; the person then opens one of the predicted images
    from segstudio.inference.training.live import LiveConfig, LiveLearner
    from tests.inference.test_live import FAST
    lr = LiveLearner(p, LiveConfig(seconds=1.0, device="cpu", trainer=dict(FAST)))
    lr.update()
    lr.repredict([r.id for r in recs[3:]])
    opened = recs[4]
    assert p.store.image(opened.id).status == PREDICTED
    before = [(r.id, r.x, r.y, r.area) for r in p.store.regions(opened.id)]
    from segstudio.core.claims import OpenImageClaim
    claim = OpenImageClaim(p.store)
    claim.hold(opened.id)
    try:
        out = subprocess.run(_watch_args(p.folder, "--ahead", "10"), capture_output=True, text=True, env=_env(),
                             cwd=ROOT, timeout=300)
    finally:
        claim.release()
    assert out.returncode == 0, out.stderr[-3000:]
    [doc] = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
    assert doc["version"] == 2
    assert opened.id in doc["left_alone"] and opened.id not in doc["repredicted"]
    assert {recs[3].id, recs[5].id} <= set(doc["repredicted"])
    assert [(r.id, r.x, r.y, r.area) for r in p.store.regions(opened.id)] == before
    assert p.store.image(recs[0].id).status == DONE


@pytest.mark.slow
def test_segstudio_predict_in_another_process_leaves_the_open_image_alone(tmp_path):
    from tests.inference.helpers import tiny_unet_checkpoint
    p = disc_folder(tmp_path, n=4, done=0)
    ck = tiny_unet_checkpoint(tmp_path / "tiny.pt", classes=("disc",))
    recs = p.store.images()
    from segstudio.core.claims import OpenImageClaim
    claim = OpenImageClaim(p.store)
    claim.hold(recs[1].id)
    try:
        out = subprocess.run([sys.executable, "-m", "segstudio", "predict", str(p.folder), "--model", "unet",
                              "--weights", str(ck), "--device", "cpu", "--status", "new"],
                             capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=300)
    finally:
        claim.release()
    assert out.returncode == 0, out.stderr[-3000:]
    assert "left alone: 1 images open in a window" in out.stdout
    assert f"{recs[1].path} (process {os.getpid()} on " in out.stdout  # who holds it
    assert p.store.image(recs[1].id).status == "new"
    assert [p.store.image(r.id).status for r in (recs[0], recs[2], recs[3])] == [PREDICTED] * 3


def test_what_a_killed_update_left_is_removed_and_nothing_else(tmp_path):
    """A reservation and a staging file of a process that is gone are removed by the next update's
    reservation; a running process's, another machine's, a user's file and a link stay."""
    import socket

    from segstudio.core.project import Project
    from segstudio.inference.training.live import LiveConfig, LiveLearner, remove_killed_updates
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    d = tmp_path / "models"
    d.mkdir()
    stamp = "segstudio live reservation pid={} host={}\n"
    (d / "live-unet-0001.pt").write_text(stamp.format(dead.pid, host))
    (d / f".live-unet-0001.training-{dead.pid}.pt").write_bytes(b"half an epoch")
    (d / f".live-unet-0001.training-{dead.pid}-last.pt").write_bytes(b"half an epoch")
    keep = {"live-unet-0002.pt": stamp.format(os.getpid(), host),  # an update running now
            "live-unet-0003.pt": stamp.format(dead.pid, "another-machine"),
            "live-unet-0004.pt": "someone's own small file\n",
            f".live-unet-0002.training-{os.getpid()}.pt": "in progress"}
    for name, text in keep.items():
        (d / name).write_text(text)
    (d / "outside.txt").write_text("not ours")
    os.symlink(d / "outside.txt", d / f".live-unet-0005.training-{dead.pid}.pt")
    assert sorted(remove_killed_updates(d)) == sorted([
        "live-unet-0001.pt", f".live-unet-0001.training-{dead.pid}.pt", f".live-unet-0001.training-{dead.pid}-last.pt"])
    assert {n: (d / n).read_text() for n in keep} == keep
    assert (d / "outside.txt").read_text() == "not ours" and (d / f".live-unet-0005.training-{dead.pid}.pt").is_symlink()
    # and through the learner: its reservation removes a dead one and is itself stamped
    (d / "live-unet-0001.pt").write_text(stamp.format(dead.pid, host))
    p = disc_folder(tmp_path / "proj", n=2, done=1)
    p.models_dir.mkdir(parents=True, exist_ok=True)
    (p.models_dir / "live-unet-0007.pt").write_text(stamp.format(dead.pid, host))
    version, out = LiveLearner(Project.open(p.folder, scan=False), LiveConfig(arch="unet"))._reserve_version()
    assert not (p.models_dir / "live-unet-0007.pt").exists()
    assert out.read_text() == stamp.format(os.getpid(), host)
