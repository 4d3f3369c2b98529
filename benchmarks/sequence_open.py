"""Opening a long video and a 3D TIFF stack as frames (core.frame_sources), against the issue's targets.

    python benchmarks/sequence_open.py [--video FILE] [--frames 10000] [--steps 300] [--json OUT]

Targets (issue 26): a 10,000-frame 1080p video opens to its first frame in <= 2 s (measured
here in a fresh process: import, probe, first read_frame; the window's first painted frame is
measured by the GUI side), stepping to the next frame takes <= 30 ms (median and p95 over
--steps steps), and the process stays under 2 GB (peak RSS of the process that opened, stepped
and seeked). Reported beside them: random seeks, stepping backward, and a 3D TIFF stack (500
pages of 1024x1024 uint16) opened and stepped.

The test video is made once into the cache folder ($SEGSTUDIO_BENCH_CACHE, /tmp/segstudio-bench):
H.264 (libx264 through PyAV, preset ultrafast with 2 B-frames, a keyframe every 250 frames as
x264's default), 1920x1080, 25 fps; each frame shows its own number as 16 bright/dark bars (so
every read is checked to be the frame asked for) over a moving gradient. Low content: it
decodes faster than camera footage of the same size; give a real file with --video.
Exit status 1 when a target is missed or a frame read back is not the frame asked for.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, ROOT, peak_rss_mb, report  # noqa: E402

BITS = 16
W, H = 1920, 1080


def _bars(k: int, w: int, h: int) -> np.ndarray:
    """Luma plane with frame number k in 16 bars (bright = 1), least significant bit on the left."""
    y = np.empty((h, w), np.uint8)
    y[:] = (np.arange(w, dtype=np.uint32)[None, :] + 4 * k) % 64 + 16  # a moving gradient
    sw = w // BITS
    for b in range(BITS):
        y[: h // 2, b * sw:(b + 1) * sw] = 235 if (k >> b) & 1 else 16
    return y


def frame_number(rgb: np.ndarray) -> int:
    """The number a frame shows in its bars (the inverse of _bars)."""
    g = rgb.mean(axis=2) if rgb.ndim == 3 else rgb
    h, w = g.shape
    sw = w // BITS
    band = g[h // 8: 3 * h // 8]
    return sum(1 << b for b in range(BITS) if band[:, b * sw + sw // 4:(b + 1) * sw - sw // 4].mean() > 128)


def make_video(path: Path, frames: int, w: int = W, h: int = H) -> Path:
    """H.264 test video (made once; a finished file is kept beside a .complete marker)."""
    import av
    done = path.with_suffix(path.suffix + ".complete")
    if path.exists() and done.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("partial-" + path.name)
    chroma = np.full((h // 2, w), 128, np.uint8)
    with av.open(str(tmp), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=25, options={"preset": "ultrafast", "bf": "2", "g": "250"})
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        t = time.perf_counter()
        for k in range(frames):
            f = av.VideoFrame.from_ndarray(np.concatenate([_bars(k, w, h), chroma]), format="yuv420p")
            for p in s.encode(f):
                c.mux(p)
            if k % 1000 == 999:
                print(f"  encoded {k + 1}/{frames} frames ({time.perf_counter() - t:.0f} s)", flush=True)
        for p in s.encode():
            c.mux(p)
    tmp.replace(path)
    done.write_text("")
    return path


def remux(src: Path, dst: Path) -> Path:
    """The same packets in another container (made once)."""
    import av
    if dst.exists():
        return dst
    tmp = dst.with_name("partial-" + dst.name)
    with av.open(str(src)) as i, av.open(str(tmp), "w", format="matroska") as o:
        s = o.add_stream_from_template(i.streams.video[0])
        for p in i.demux(i.streams.video[0]):
            if p.dts is not None:
                p.stream = s
                o.mux(p)
    tmp.replace(dst)
    return dst


def make_stack(path: Path, pages: int = 500, size: int = 1024) -> Path:
    import tifffile
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("partial-" + path.name)
    with tifffile.TiffWriter(tmp) as tw:
        for k in range(pages):
            page = np.full((size, size), k * 100, np.uint16)
            page[: size // 4] = np.arange(size, dtype=np.uint16)[None, :] * 50
            tw.write(page, contiguous=True, metadata={"axes": "ZYX"} if k == 0 else None)
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------- measured in a fresh process
_COLD = r"""
import json, sys, time
t0 = time.perf_counter()
from segstudio.core import frame_sources
t1 = time.perf_counter()
info = frame_sources.probe(sys.argv[1])
t2 = time.perf_counter()
a = frame_sources.read_frame(sys.argv[1], 0)
t3 = time.perf_counter()
sys.path.insert(0, sys.argv[2])
from sequence_open import frame_number
print(json.dumps({"import_s": t1 - t0, "probe_s": t2 - t1, "first_frame_s": t3 - t2, "open_s": t3 - t0,
                  "frames": info.frames, "width": info.width, "height": info.height, "first_ok": frame_number(a) == 0}))
"""


def cold_open(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", _COLD, str(path), str(Path(__file__).resolve().parent)],
                         capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _steps(path: Path, start: int, n: int, step: int, check) -> tuple[list[float], int]:
    from segstudio.core import frame_sources as fs
    times, wrong = [], 0
    for i in range(n):
        k = start + i * step
        t = time.perf_counter()
        a = fs.read_frame(path, k)
        times.append(time.perf_counter() - t)
        wrong += check(a) != k
    return times, wrong


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _ms(ts: list[float]) -> tuple[float, float]:
    ts = sorted(ts)
    return statistics.median(ts) * 1e3, ts[min(len(ts) - 1, int(0.95 * len(ts)))] * 1e3


def measure_core(video_path: Path | str, steps: int = 300, seeks: int = 10) -> dict:
    """The core's figures on one video: cold open (fresh process), next-frame steps from frame
    1000 (or the middle), random seeks, backward steps; each read checked against the frame number."""
    from segstudio.core import frame_sources as fs
    video_path = Path(video_path)
    cold = [cold_open(video_path) for _ in range(3)]
    best = sorted(cold, key=lambda r: r["open_s"])[1]  # the median of 3 cold processes
    info = fs.probe(video_path)
    assert info is not None
    warm_probe = statistics.median(_timed(lambda: fs.probe(video_path)) for _ in range(7))
    check = frame_number if best["first_ok"] else (lambda a: -1)
    start = min(1000, info.frames // 2)
    fs.read_frame(video_path, start - 1)  # position the decoder (a seek: not counted in steps)
    fwd, wrong = _steps(video_path, start, min(steps, info.frames - start), 1, check)
    rng = random.Random(0)
    seek_t, seek_wrong = [], 0
    for _ in range(seeks):
        k = rng.randrange(info.frames)
        fs.forget(video_path)  # a seek into frames never seen: nothing cached
        fs.read_frame(video_path, max(0, k - 300) if k > 300 else info.frames - 1)  # decoder elsewhere
        t = time.perf_counter()
        a = fs.read_frame(video_path, k)
        seek_t.append(time.perf_counter() - t)
        seek_wrong += check(a) != k
    fs.forget(video_path)
    back_start = max(1, min(info.frames - 2, start + 700))
    fs.read_frame(video_path, back_start + 1)
    back, back_wrong = _steps(video_path, back_start, min(100, back_start), -1, check)
    fs.forget(video_path)
    med, p95 = _ms(fwd)
    bmed, bp95 = _ms(back)
    return {
        "video": str(video_path), "frames": info.frames, "size": f"{info.width}x{info.height}",
        "cold_open_s": best["open_s"], "cold_import_s": best["import_s"], "cold_probe_s": best["probe_s"],
        "cold_first_frame_s": best["first_frame_s"], "warm_probe_s": warm_probe,
        "cold_open_all_s": [r["open_s"] for r in cold],
        "step_next_ms_median": med, "step_next_ms_p95": p95, "steps": len(fwd),
        "step_back_ms_median": bmed, "step_back_ms_p95": bp95, "back_steps": len(back),
        "seek_ms_median": statistics.median(seek_t) * 1e3, "seek_ms_max": max(seek_t) * 1e3, "seeks": seeks,
        "wrong_frames": wrong + seek_wrong + back_wrong + (0 if best["first_ok"] else 1),
        "checked": best["first_ok"],
    }


def measure_stack(path: Path, steps: int = 100) -> dict:
    from segstudio.core import frame_sources as fs
    cold = sorted((cold_open(path) for _ in range(3)), key=lambda r: r["open_s"])[1]
    fs.forget(path)
    info = fs.probe(path)
    assert info is not None
    times, wrong = _steps(path, 0, min(steps, info.frames), 1, lambda a: int(a[-1, 0]) // 100)
    med, p95 = _ms(times)
    return {"stack": str(path), "frames": info.frames, "axes": info.axes, "size": f"{info.width}x{info.height}",
            "cold_open_s": cold["open_s"], "cold_probe_s": cold["probe_s"], "step_ms_median": med,
            "step_ms_p95": p95, "steps": len(times), "wrong_frames": wrong}


# ---------------------------------------------------------------------------- the decoder choice
def make_vfr_video(path: Path, n: int = 200, w: int = 320, h: int = 240) -> Path:
    """A variable-frame-rate H.264 mp4/mkv (frame gaps of 10 to 120 ms), frames numbered as above."""
    import av
    from fractions import Fraction
    rng = random.Random(3)
    chroma = np.full((h // 2, w), 128, np.uint8)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25, options={"bf": "3", "g": "24"})
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for k in range(n):
            f = av.VideoFrame.from_ndarray(np.concatenate([_bars(k, w, h), chroma]), format="yuv420p")
            f.pts, f.time_base = t, Fraction(1, 1000)
            t += rng.choice([40, 40, 40, 120, 10])
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def compare_opencv(video: Path, steps: int, seeks: int = 10) -> dict:
    """OpenCV's VideoCapture on the same files: open to first frame, next-frame steps, random
    seeks by CAP_PROP_POS_FRAMES (checked), and seeks on variable-frame-rate mp4 and mkv."""
    import cv2
    from segstudio.core import frame_sources as fs
    out: dict = {}
    t = time.perf_counter()
    cap = cv2.VideoCapture(str(video))
    ok, a = cap.read()
    out["cv2_open_first_frame_s"] = time.perf_counter() - t
    out["cv2_frames"] = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    start = min(1000, int(out["cv2_frames"]) // 2)
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    ts, wrong = [], 0
    for i in range(steps):
        t = time.perf_counter()
        ok, a = cap.read()
        ts.append(time.perf_counter() - t)
        wrong += not ok or frame_number(a[:, :, ::-1]) != start + i
    out["cv2_step_ms_median"], out["cv2_step_ms_p95"] = _ms(ts)
    rng = random.Random(0)
    ts = []
    for _ in range(seeks):
        k = rng.randrange(int(out["cv2_frames"]))
        t = time.perf_counter()
        cap.set(cv2.CAP_PROP_POS_FRAMES, k)
        ok, a = cap.read()
        ts.append(time.perf_counter() - t)
        wrong += not ok or frame_number(a[:, :, ::-1]) != k
    out["cv2_seek_ms_median"] = statistics.median(ts) * 1e3
    out["cv2_wrong_frames"] = wrong
    for ext in ("mp4", "mkv"):
        vfr = make_vfr_video(CACHE / f"vfr-200.{ext}")
        cap = cv2.VideoCapture(str(vfr))
        rng = random.Random(1)
        picks = [rng.randrange(200) for _ in range(40)]
        bad_cv2 = bad_av = 0
        for k in picks:
            cap.set(cv2.CAP_PROP_POS_FRAMES, k)
            ok, a = cap.read()
            bad_cv2 += not ok or frame_number(a[:, :, ::-1]) != k
            fs.forget(vfr)
            bad_av += frame_number(fs.read_frame(vfr, k)) != k
        out[f"vfr_{ext}_frames_cv2_counts"] = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        out[f"vfr_{ext}_frames_pyav"] = fs.probe(vfr).frames  # type: ignore[union-attr]
        out[f"vfr_{ext}_wrong_seeks_cv2"], out[f"vfr_{ext}_wrong_seeks_pyav"] = bad_cv2, bad_av
        out["vfr_seeks"] = len(picks)
    return out


WINDOW_CHILD = r"""
import os, sys, time, json, statistics, resource
os.environ["QT_QPA_PLATFORM"] = "offscreen"
t0 = time.perf_counter()
from PySide6.QtWidgets import QApplication
from PySide6.QtCore import QSettings, Qt
from PySide6.QtTest import QTest
app = QApplication([])
from segstudio.core.project import Project
from segstudio.gui.main_window import MainWindow
from segstudio.gui.settings import app_settings
t_imports = time.perf_counter() - t0
QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, sys.argv[2] + ".qs")
def wait(cond, timeout=60.0):
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        app.processEvents()
        if cond():
            return
        time.sleep(0.0005)
    raise TimeoutError("the frame was not shown")
t1 = time.perf_counter()
p = Project.open(sys.argv[1], sys.argv[2])
win = MainWindow(p, app_settings())
win.resize(1400, 900)
win.show()
win.open_first()
def shown(path):
    cur, doc = win.session.current, win.editor.doc
    return doc is not None and cur is not None and cur.record.path == path and doc.image_id == cur.record.id
wait(lambda: shown("clip.mp4/000000"))
win.canvas.viewport().repaint()
t_paint = time.perf_counter() - t1
frames = len(p.sequence_ids("clip.mp4"))
steps = []
for k in range(1, int(sys.argv[3]) + 1):
    want = f"clip.mp4/{k:06d}"
    wait(lambda: not win.session.pending)  # decoded ahead, as when a person looks at each frame
    t = time.perf_counter()
    QTest.keyClick(win.canvas.viewport(), Qt.Key.Key_Period)
    wait(lambda: shown(want))
    win.canvas.viewport().repaint()
    steps.append(time.perf_counter() - t)
held = []
for k in range(int(sys.argv[3]) + 1, int(sys.argv[3]) + 31):  # the key held: no time to decode ahead
    want = f"clip.mp4/{k:06d}"
    t = time.perf_counter()
    QTest.keyClick(win.canvas.viewport(), Qt.Key.Key_Period)
    wait(lambda: shown(want))
    win.canvas.viewport().repaint()
    held.append(time.perf_counter() - t)
steps.sort(); held.sort()
print(json.dumps({"open_to_paint_s": t_paint, "imports_s": t_imports, "frames": frames,
                  "step_ms_median": 1e3 * statistics.median(steps),
                  "step_ms_p95": 1e3 * steps[int(0.95 * (len(steps) - 1))],
                  "held_ms_median": 1e3 * statistics.median(held), "held_ms_max": 1e3 * held[-1],
                  "steps": len(steps), "held_steps": len(held),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
win.close()
"""


def measure_window(video: Path, steps: int = 60) -> dict:
    """The window in a fresh process (offscreen): open a folder holding the video (a link to it) to
    the first frame painted (scan, probe, the frames registered, the window built, the frame
    decoded and shown); then the next-frame key ('.') to the next frame shown, `steps` times with
    the frames ahead decoded, and 30 times in a row as when the key is held."""
    import os
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "seq"
        folder.mkdir()
        os.symlink(video.resolve(), folder / "clip.mp4")
        r = subprocess.run([sys.executable, "-c", WINDOW_CHILD, str(folder), str(Path(d) / "p.db"), str(steps)],
                           capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        if r.returncode != 0:
            raise RuntimeError(r.stderr[-3000:])
        return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, help="a video to measure (default: the generated H.264 1080p test video)")
    ap.add_argument("--frames", type=int, default=10_000, help="frames of the generated video")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--stack-pages", type=int, default=500)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--no-window", action="store_true", help="leave out the window's figures")
    ap.add_argument("--compare-opencv", action="store_true",
                    help="also measure OpenCV's VideoCapture on the same video and on variable-rate clips")
    a = ap.parse_args()
    video = a.video or make_video(CACHE / f"h264-1080p-{a.frames}.mp4", a.frames)
    stack = make_stack(CACHE / f"stack-{a.stack_pages}x1024x1024-u16.tif", a.stack_pages)
    core = measure_core(video, a.steps)
    mkv = remux(video, video.with_suffix(".mkv"))
    from segstudio.core import frame_sources as fs
    mkv_probe = statistics.median(_timed(lambda: fs.probe(mkv)) for _ in range(5))
    st = measure_stack(stack)
    rss = peak_rss_mb()
    n = core["frames"]
    print(f"video {core['video']}: {n} frames of {core['size']}")
    report(f"open to first frame, cold process ({n} frames)", f"{core['cold_open_s']:.2f} s", "<= 2 s",
           core["cold_open_s"] <= 2.0)
    report("  of which import / probe / first read_frame",
           f"{core['cold_import_s']:.2f}/{core['cold_probe_s']:.3f}/{core['cold_first_frame_s']:.3f}", "-", None)
    report("  probe in a warm process (the scan's cost per new video file), median of 7",
           f"{core['warm_probe_s'] * 1e3:.1f} ms", "-", None)
    mb = mkv.stat().st_size / 1e6
    report(f"  warm probe of it remuxed to Matroska (no count in the header: {mb:.0f} MB demuxed)",
           f"{mkv_probe * 1e3:.0f} ms", "-", None)
    report(f"step to next frame, median of {core['steps']}", f"{core['step_next_ms_median']:.1f} ms", "<= 30 ms",
           core["step_next_ms_median"] <= 30)
    report(f"step to next frame, p95 of {core['steps']}", f"{core['step_next_ms_p95']:.1f} ms", "<= 30 ms",
           core["step_next_ms_p95"] <= 30)
    report(f"step to previous frame, median / p95 of {core['back_steps']}",
           f"{core['step_back_ms_median']:.0f}/{core['step_back_ms_p95']:.0f} ms", "-", None)
    report(f"random seek (uncached), median / max of {core['seeks']}",
           f"{core['seek_ms_median']:.0f}/{core['seek_ms_max']:.0f} ms", "-", None)
    report("frames read back that were not the frame asked for", f"{core['wrong_frames']}", "0",
           core["wrong_frames"] == 0 and core["checked"])
    report(f"stack {st['frames']} x {st['size']} uint16 ({st['axes']}): cold open", f"{st['cold_open_s']:.2f} s",
           "-", None)
    report(f"stack: step to next frame, median / p95 of {st['steps']}",
           f"{st['step_ms_median']:.1f}/{st['step_ms_p95']:.1f} ms", "<= 30 ms", st["step_ms_p95"] <= 30)
    report("stack frames read back wrong", f"{st['wrong_frames']}", "0", st["wrong_frames"] == 0)
    report("peak RSS of this process (video + stack)", f"{rss:.0f} MB", "< 2048 MB", rss < 2048)
    win = None
    if not a.no_window:
        win = measure_window(video)
        launch = win["imports_s"] + win["open_to_paint_s"]
        report(f"window: start to the first frame painted ({win['frames']} frames; Qt + segstudio imports, "
               "scan, probe, window, frame)", f"{launch:.2f} s", "<= 2 s", launch <= 2.0)
        report("  of which opening the folder to the frame painted (imports done)",
               f"{win['open_to_paint_s']:.2f} s", "-", None)
        report(f"window: next-frame key to the frame shown, median / p95 of {win['steps']}",
               f"{win['step_ms_median']:.1f}/{win['step_ms_p95']:.1f} ms", "<= 30 ms", win["step_ms_median"] <= 30)
        report(f"window: the key held (nothing decoded ahead), median / max of {win['held_steps']}",
               f"{win['held_ms_median']:.1f}/{win['held_ms_max']:.1f} ms", "-", None)
        report("window: peak RSS of its process", f"{win['peak_rss_mb']:.0f} MB", "< 2048 MB",
               win["peak_rss_mb"] < 2048)
    cmp = None
    if a.compare_opencv:
        cmp = compare_opencv(video, a.steps)
        report("OpenCV VideoCapture: open to first frame (in this process)",
               f"{cmp['cv2_open_first_frame_s']:.2f} s", "-", None)
        report(f"OpenCV: step to next frame, median / p95 of {a.steps}",
               f"{cmp['cv2_step_ms_median']:.1f}/{cmp['cv2_step_ms_p95']:.1f} ms", "-", None)
        report("OpenCV: random seek (CAP_PROP_POS_FRAMES), median", f"{cmp['cv2_seek_ms_median']:.0f} ms", "-", None)
        report("OpenCV: frames read back wrong on this video", f"{cmp['cv2_wrong_frames']}", "-", None)
        for ext in ("mp4", "mkv"):
            report(f"variable-rate {ext}, 200 frames: wrong seeks OpenCV / PyAV of {cmp['vfr_seeks']}",
                   f"{cmp[f'vfr_{ext}_wrong_seeks_cv2']}/{cmp[f'vfr_{ext}_wrong_seeks_pyav']}", "-", None)
            report(f"variable-rate {ext}: frame count OpenCV / frame_sources",
                   f"{cmp[f'vfr_{ext}_frames_cv2_counts']:.0f}/{cmp[f'vfr_{ext}_frames_pyav']}", "200", None)
    from _common import RESULTS
    missed = [r for r in RESULTS if r[3] is False]
    print(f"\n{len(RESULTS)} figures, {len(missed)} missed targets")
    if a.json:
        a.json.write_text(json.dumps({"video": core, "stack": st, "peak_rss_mb": rss, "opencv": cmp, "window": win,
                                      "mkv_probe_s": mkv_probe,
                                      "missed": [r[0] for r in missed]}, indent=2))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
