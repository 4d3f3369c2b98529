"""Peak memory of `segstudio predict` against the folder's size: the same model over folders of
1,000 and 10,000 images, each in a fresh process; target: the 10,000-image peak within 10 % of
the 1,000-image one (memory bounded by the batch and the queues, not by the folder).

    python benchmarks/predict_memory.py [--size 128] [--counts 1000 10000] [--json OUT]

The model is a small UNet trained for 200 steps to find the discs drawn in the images (cached),
so every image gives real regions to encode and commit; the regions per image are printed. The
resident set size is sampled every 0.2 s from /proc; the peak is the kernel's (wait4's maxrss).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cv2  # noqa: E402
from _common import CACHE, ROOT, report, summary  # noqa: E402
from _infer import disc_images, small_disc_unet  # noqa: E402


def make_folder(folder: Path, n: int, size: int, distinct: int = 64) -> None:
    folder.mkdir(parents=True)
    imgs, _ = disc_images(distinct, size)
    blobs = [cv2.imencode(".png", im)[1].tobytes() for im in imgs]
    for i in range(n):
        (folder / f"{i:05d}.png").write_bytes(blobs[i % distinct])


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_predict(folder: Path, weights: Path, db: Path) -> dict:
    cmd = [sys.executable, "-m", "segstudio", "predict", str(folder), "--model", "unet", "--weights", str(weights),
           "--device", "cpu", "--batch", "4", "--status", "new", "--json", "--project", str(db)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample():
        while not done.is_set():
            r = rss_mb(proc.pid)
            if r is not None:
                samples.append((time.perf_counter() - t0, r))
            time.sleep(0.2)
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    pipes: dict[str, str] = {}
    readers = [threading.Thread(target=lambda k=k, f=f: pipes.__setitem__(k, f.read()), daemon=True)
               for k, f in (("out", proc.stdout), ("err", proc.stderr))]
    for r in readers:
        r.start()
    _, status, usage = os.wait4(proc.pid, 0)  # reaps it and gives this child's own peak
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    for r in (th, *readers):
        r.join()
    if proc.returncode != 0:
        raise RuntimeError(pipes.get("err", "")[-1500:])
    d = json.loads(pipes["out"])
    d["wall_seconds"] = time.perf_counter() - t0
    d["samples"] = samples
    d["peak_sampled_mb"] = max(r for _, r in samples) if samples else 0.0
    d["peak_mb"] = usage.ru_maxrss / 1024
    return d


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--counts", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    weights = small_disc_unet(CACHE)
    results = {}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for n in a.counts:
            folder = tmp / f"f{n}"
            make_folder(folder, n, a.size)
            d = run_predict(folder, weights, tmp / f"p{n}.db")
            s = d.pop("samples")
            qs = [s[int(q * (len(s) - 1))][1] for q in (0.1, 0.25, 0.5, 0.75, 0.9)] if s else []
            d["rss_at_time_fractions_mb"] = dict(zip(["10%", "25%", "50%", "75%", "90%"], qs))
            results[n] = d
            print(f"{n} images of {a.size} px: {d['images']} predicted, {d['regions'] / max(1, d['images']):.1f} "
                  f"regions/image, {d['images_per_second']:.1f} img/s, wall {d['wall_seconds']:.0f} s; "
                  f"peak RSS {d['peak_mb']:.0f} MB (sampled {d['peak_sampled_mb']:.0f}); RSS over the run "
                  + ", ".join(f"{k} {v:.0f}" for k, v in d["rss_at_time_fractions_mb"].items()), flush=True)
            report(f"predict {n} images: peak RSS", f"{d['peak_mb']:.0f} MB", "(reported)", None)
    lo, hi = results[min(a.counts)], results[max(a.counts)]
    growth = hi["peak_mb"] / lo["peak_mb"] - 1
    report(f"peak RSS growth, {min(a.counts)} -> {max(a.counts)} images", f"{growth * 100:+.1f} %", "<= +10 %",
           growth <= 0.10)
    if a.json:
        a.json.write_text(json.dumps(results, indent=2, default=str))
    return summary()


if __name__ == "__main__":
    raise SystemExit(main())
