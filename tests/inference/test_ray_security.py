"""`--ray`: a local runtime listens on 127.0.0.1 only and uses token authentication; an address
where no cluster answers is said in seconds, not after Ray's minutes of retries. Each run is a
subprocess: Ray's state (and a run that hangs on today's code) stays out of the test process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[cluster]'")

from tests.inference.helpers import tiny_unet_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args: list[str], timeout: float, env: dict | None = None,
        drop: tuple[str, ...] = ()) -> tuple[subprocess.CompletedProcess, float]:
    environ = {k: v for k, v in os.environ.items() if k not in drop}
    t0 = time.monotonic()
    try:
        p = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                           env={**environ, "PYTHONPATH": str(ROOT), **(env or {})})
    except subprocess.TimeoutExpired:
        pytest.fail(f"still waiting after {timeout:.0f} s: {' '.join(args[:4])} ...")
    return p, time.monotonic() - t0


# ----------------------------------------------------------------------------- nothing there
@pytest.fixture
def no_runtime():
    """connect() returns a runtime this process already joined: none here."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


@pytest.mark.parametrize("form", ["{h}:{p}", "ray://{h}:{p}"])
def test_no_cluster_there_is_said_in_seconds(form, no_runtime):
    from segstudio.inference.cluster.connect import RayUnavailable, connect
    address = form.format(h="127.0.0.1", p=free_port())
    t0 = time.monotonic()
    with pytest.raises(RayUnavailable) as e:
        connect(address)
    assert time.monotonic() - t0 < 10
    assert f"no Ray cluster answers at {address}" in str(e.value) and "connection refused" in str(e.value)


def test_a_malformed_address_is_named(no_runtime):
    from segstudio.inference.cluster.connect import RayUnavailable, connect
    for bad in ("127.0.0.1", "ray://host:port", "host:99999"):
        with pytest.raises(RayUnavailable, match="not a Ray address"):
            connect(bad)


def _folder(tmp_path: Path) -> Path:
    from PIL import Image

    from tests.inference.helpers import blob_image
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(blob_image(48, 64, seed=0)).save(d / "a.png")
    return d


@pytest.mark.slow
@pytest.mark.parametrize("command", ["predict", "train"])
def test_cli_says_in_seconds_that_no_cluster_answers(tmp_path, command):
    """`segstudio predict|train FOLDER ... --ray 127.0.0.1:PORT` with nothing listening: one line,
    exit code 2, well under 10 s of Ray's own time (the process also starts Python and torch)."""
    folder = _folder(tmp_path)
    address = f"127.0.0.1:{free_port()}"
    if command == "predict":
        ck = tiny_unet_checkpoint(tmp_path / "u.pt", classes=("blob",))
        args = ["predict", str(folder), "--model", "unet", "--weights", str(ck), "--device", "cpu"]
    else:
        args = ["train", str(folder), "--model", "unet", "--out", str(tmp_path / "m.pt"), "--epochs", "1"]
    p, seconds = run(["-m", "segstudio", *args, "--ray", address], timeout=60)
    assert p.returncode == 2, p.stderr[-2000:]
    assert f"no Ray cluster answers at {address}" in p.stderr
    assert seconds < 20, seconds  # Python + torch start-up included; Ray's part is the 3 s probe at most


# ----------------------------------------------------------------------------- a local runtime
PROBE = r"""
import json, os, socket, sys
from segstudio.inference.cluster.predict import connect

def sockets_by_inode():
    out = {}
    for name in ("tcp", "tcp6", "udp", "udp6"):
        try:
            rows = open(f"/proc/net/{name}").read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if (name.startswith("tcp") and f[3] != "0A") or (name.startswith("udp") and f[3] != "07"):
                continue  # tcp: LISTEN only; udp: unconnected (bound) sockets only
            ip, port = f[1].split(":")
            raw = bytes.fromhex(ip)
            if len(raw) == 4:
                host = socket.inet_ntop(socket.AF_INET, raw[::-1])
            else:
                host = socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
            out[int(f[9])] = (name, host, int(port, 16))
    return out

def tree(root):
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    todo, seen = [root], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += kids.get(p, [])
    return seen

ray = connect(None, num_cpus=1)

@ray.remote
def task():
    return os.getpid()

@ray.remote
class Actor:
    def pid(self):
        return os.getpid()

actor = Actor.remote()
pids = {ray.get(task.remote()), ray.get(actor.pid.remote())}
table, listening = sockets_by_inode(), []
procs = tree(os.getpid())
for pid in procs:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
        comm = open(f"/proc/{pid}/comm").read().strip()
    except OSError:
        continue
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and int(link[8:-1]) in table:
            listening.append([pid, comm, *table[int(link[8:-1])]])

# the GCS without the token, then with it
import grpc
from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc
gcs = ray._private.worker._global_node.gcs_address
stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(grpc.insecure_channel(gcs))
calls = {}
for name, meta in (("none", ()), ("wrong", (("authorization", "Bearer " + "0" * 64),)),
                   ("right", (("authorization", "Bearer " + os.environ.get("RAY_AUTH_TOKEN", "")),))):
    try:
        stub.GetAllNodeInfo(gcs_service_pb2.GetAllNodeInfoRequest(), timeout=10, metadata=meta)
        calls[name] = "OK"
    except grpc.RpcError as e:
        calls[name] = e.code().name
print(json.dumps({"listening": listening, "workers": sorted(p in procs for p in pids), "gcs": gcs, "calls": calls,
                  "nodes": [n["NodeManagerAddress"] for n in ray.nodes()]}))
ray.shutdown()
"""


def _loopback(host: str) -> bool:
    import ipaddress
    ip = ipaddress.ip_address(host)
    return ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the sockets from Linux's /proc")
def test_a_local_runtime_listens_on_loopback_only_and_wants_its_token(tmp_path):
    home = tmp_path / "home"  # no ~/.ray/auth_token of the user's is read or written
    home.mkdir()
    p, _ = run(["-c", PROBE], timeout=300, env={"HOME": str(home)},
               drop=("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS",
                     "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"))
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["workers"] == [True, True]  # the task's and the actor's processes were looked at
    comms = {row[1] for row in got["listening"]}
    assert {"gcs_server", "raylet"} <= comms, got["listening"]
    exposed = [row for row in got["listening"] if not _loopback(row[3])]
    assert not exposed, f"listening beyond loopback: {exposed}"
    assert got["gcs"].startswith("127.0.0.1:") and set(got["nodes"]) == {"127.0.0.1"}
    assert got["calls"] == {"none": "UNAUTHENTICATED", "wrong": "UNAUTHENTICATED", "right": "OK"}, got["calls"]
    assert not (home / ".ray" / "auth_token").exists()  # this run's token lived in its environment only
