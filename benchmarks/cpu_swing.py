"""Why the raw model's images/s swings between runs on this machine: the same raw measurement
(`_infer.raw_throughput`) in fresh processes, alternating, under the default allocator settings
and under glibc tunables that change how large blocks are taken from the kernel; beside each,
page faults per image and a matmul speed probe taken just before.

    python benchmarks/cpu_swing.py [--arch unet|maskrcnn] [--rounds 3] [--iters 3]

glibc serves blocks over its mmap threshold (at most 32 MiB) with a fresh mmap and returns them
on free, so every large activation of every forward is faulted in and zeroed again, 4 KiB at a
time; the threshold also moves with what was freed before, so the count differs from run to run.
`hugetlb=1` asks for transparent huge pages on those mappings (2 MiB per fault).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, ROOT  # noqa: E402

SETTINGS = {
    "default": "",
    "hugetlb": "glibc.malloc.hugetlb=1",
    "threshold 32M": "glibc.malloc.mmap_threshold=33554432",
    "threshold+trim": "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296",
}

CHILD = r'''
import json, sys
sys.path.insert(0, {bench!r})
from _infer import raw_throughput, speed_probe
from pathlib import Path
probe = speed_probe()
r = raw_throughput({arch!r}, Path({ck!r}), Path({folder!r}), "cpu", 1, {iters})
import resource
print(json.dumps({{"probe": probe, "ips": r["images_per_second"], "minflt": r["minflt_per_batch"],
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
'''


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", choices=["unet", "maskrcnn"], default="unet")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    from _infer import make_folder, make_isbi_folder, maskrcnn_checkpoint, trained_unet
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        if a.arch == "unet":
            ck, _ = trained_unet(CACHE)
            folder = make_isbi_folder(tmp / "imgs", 2, 1024)
        else:
            ck, _ = maskrcnn_checkpoint(tmp / "m.pt")
            folder = make_folder(tmp / "imgs", 2, 800, 1067)
        rows: dict[str, list[dict]] = {k: [] for k in SETTINGS}
        for rnd in range(a.rounds):
            for name, tun in SETTINGS.items():
                env = dict(os.environ, PYTHONPATH=str(ROOT))
                if tun:
                    env["GLIBC_TUNABLES"] = tun
                code = CHILD.format(bench=str(Path(__file__).parent), arch=a.arch, ck=str(ck), folder=str(folder),
                                    iters=a.iters)
                out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
                if out.returncode:
                    raise RuntimeError(out.stderr[-1500:])
                d = json.loads(out.stdout.strip().splitlines()[-1])
                rows[name].append(d)
                print(f"round {rnd + 1} {name:>16}: {d['ips']:.4f} img/s, {d['minflt']:.0f} page faults/image, "
                      f"probe {d['probe']:.0f} GFLOP/s, peak RSS {d['maxrss_mb']:.0f} MB", flush=True)
    for name, rs in rows.items():
        ips = [r["ips"] for r in rs]
        print(f"{name:>16}: img/s median {statistics.median(ips):.4f} ({min(ips):.4f}–{max(ips):.4f}), "
              f"page faults/image median {statistics.median(r['minflt'] for r in rs):.0f}")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
