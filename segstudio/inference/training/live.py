"""Learning while annotating: after each image a person marks done, the model updates on every
done image for a bounded time (warm start from the current version), and the next unfinished
images are re-predicted so the one the person opens next shows the improved model.

One update is `LiveLearner.update()`; the window runs it on its model thread, `segstudio train
--watch` in a loop, and `benchmarks/annotation_effort.py` between simulated images: the same code
in all three. Nothing here overwrites a person's work: only images still `new` or `predicted`
are re-predicted (checked inside the commit's transaction), never one open in a window of any
process (its claim in the store, core.claims) nor one the caller says is open.

Several learners may run on one project at once (the window's panel and a `train --watch`):
version numbers come from a counter in the store and each version's file is created exclusively,
so no two processes report the same version or write over each other's checkpoint.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from segstudio.core import review_filter
from segstudio.core.errors import UserError
from segstudio.core.project import Project
from segstudio.core.records import NEW, PREDICTED
from segstudio.core.sequences import PROPAGATED
from segstudio.inference import registry
from segstudio.inference.family import LEARN_LIVE, TRAIN, Family, resolve

if TYPE_CHECKING:  # torch comes with the trainers; the window lists versions without it
    from segstudio.inference.training.common import TrainResult

# the checkpoint kinds of the families that learn live (registry order, each once)
LIVE_ARCHS = tuple(dict.fromkeys(f.checkpoint_kind for f in registry.FAMILIES.values()
                                 if f.can(LEARN_LIVE) and f.checkpoint_kind))
KEEP_VERSIONS = 10  # older live checkpoints are removed (rollback reaches this far back)
REPREDICT_STATUSES = (NEW, PREDICTED)  # images nobody has touched since the model drew them
_KINDS = "|".join(re.escape(k) for k in LIVE_ARCHS)
_VERSION_RE = re.compile(rf"^live-({_KINDS})-(\d{{4,}})\.pt$")
# what a killed update leaves: its reservation (a version name holding only this stamp) and its
# staging file (.live-unet-0003.training-PID.pt, and its -last twin)
_RESERVED = "segstudio live reservation pid={pid} host={host}\n"
_RESERVED_RE = re.compile(r"^segstudio live reservation pid=(\d+) host=(.+)\n$")
_STAGING_RE = re.compile(rf"^\.live-(?:{_KINDS})-\d{{4,}}\.training-(\d+)(?:-last)?\.pt$")


class LiveError(UserError):
    """The live loop cannot go on (no done image yet, an unknown version); the message says why."""


def trainer_family(kind: str) -> Family:
    """The family that trains checkpoints of this kind (the first one declared: the semantic
    networks share one trainer, their settings apart)."""
    for f in registry.of_checkpoint(kind):
        if f.can(TRAIN) and f.train and f.train_config:
            return f
    raise LiveError(f"no model family trains {kind!r} checkpoints")


@dataclass
class LiveConfig:
    arch: str = "unet"
    seconds: float = 30.0  # training time per update
    ahead: int = 3  # unfinished images re-predicted after each update
    device: str = "auto"
    seed: int = 0
    # extra trainer settings (UNetTrainConfig / MaskRCNNTrainConfig field names)
    trainer: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LiveVersion:
    version: int
    path: str
    metrics: dict  # the trainer's validation metrics for this version
    done_images: int  # how many done images it learned from (train + held aside)
    seconds: float
    start: str  # what its weights started from


def held_aside(paths: Sequence[str]) -> list[str]:
    """Done images kept out of training to score each version: none below 4 images (every image
    teaches more than a score would tell), one from 4, two from 10. Chosen by a hash of the path,
    so the choice stays put as images are added (the curve compares like with like)."""
    n = 0 if len(paths) < 4 else (1 if len(paths) < 10 else 2)
    return sorted(paths, key=lambda p: hashlib.sha1(p.encode()).hexdigest())[:n]


class LiveLearner:
    """The versions of one live model in a project, and the update / re-predict steps."""

    def __init__(self, project: Project, cfg: LiveConfig | None = None):
        self.project = project
        self.cfg = cfg or LiveConfig()
        if self.cfg.arch not in LIVE_ARCHS:
            raise LiveError(f"learning while annotating works with {' or '.join(LIVE_ARCHS)}, "
                                f"not {self.cfg.arch!r}")
        self.current: str | None = None  # checkpoint the next update starts from (None: latest)

    # ------------------------------------------------------------------ versions
    def versions(self) -> list[LiveVersion]:
        """This project's live versions of the configured architecture, oldest first."""
        out = []
        for m in self.project.store.models():
            name = Path(m["path"]).name
            hit = _VERSION_RE.match(name)
            if hit is None or hit.group(1) != self.cfg.arch or not Path(m["path"]).exists():
                continue
            met = m["metrics"] or {}
            out.append(LiveVersion(int(hit.group(2)), m["path"], met.get("validation", {}),
                                   int(met.get("done_images", 0)), float(met.get("seconds", 0.0)),
                                   str(met.get("start", ""))))
        return sorted(out, key=lambda v: v.version)

    def start_checkpoint(self) -> str | None:
        """What the next update starts from: the version rolled back to, else the newest."""
        if self.current is not None and Path(self.current).exists():
            return self.current
        vs = self.versions()
        return vs[-1].path if vs else None

    def rollback(self, version: int) -> LiveVersion:
        """Make an earlier version the current one (the next update starts from it)."""
        for v in self.versions():
            if v.version == version:
                self.current = v.path
                return v
        raise LiveError(f"no live version {version} of the {self.cfg.arch} model in this project")

    # ------------------------------------------------------------------ one update
    def update(self, cancel: Callable[[], bool] | None = None,
               progress: Callable[[object], None] | None = None) -> LiveVersion:
        """Train on every done image (done and accepted, with review on) for `cfg.seconds`, starting
        from the current version, and register the result as the next version."""
        store = self.project.store
        chosen = review_filter.trainable(store)  # done; with review on, done and accepted
        done = [r for r in review_filter.select_images(store, chosen) if store.region_count(r.id) > 0]
        if not done:
            if review_filter.ACCEPTED in chosen:
                raise LiveError("no accepted image with regions yet: review is on, and the model learns from "
                                "done images a reviewer accepted")
            raise LiveError("no done image with regions yet: mark a corrected image done (Ctrl+Enter)")
        val_paths = set(held_aside([r.path for r in done]))
        val_ids = [r.id for r in done if r.path in val_paths]
        ids = [r.id for r in done]
        start = self.start_checkpoint()
        version, out = self._reserve_version()
        # the trainer writes its epochs to a file of this process's own, published under the
        # reserved name at the end: nobody else's checkpoint is ever overwritten
        staging = out.with_name(f".{out.stem}.training-{os.getpid()}.pt")
        try:
            res = self._train(staging, ids, val_ids or None, start, cancel, progress)
            os.replace(staging, out)  # the trainer's best (= last) epoch, over the empty file that reserved the name
        except BaseException:
            out.unlink(missing_ok=True)
            raise
        finally:
            # the last epoch of this update is the version; the trainer's "-last" twin is not kept
            staging.unlink(missing_ok=True)
            staging.with_name(f"{staging.stem}-last.pt").unlink(missing_ok=True)
        metrics: dict[str, Any] = {"validation": _plain(res.best_metrics), "done_images": len(ids),
                                   "seconds": res.seconds, "start": res.start, "stopped": res.stopped,
                                   "held_aside": sorted(val_paths)}
        store.add_model(str(out), self.cfg.arch, metrics)
        self.current = str(out)
        self._prune()
        return LiveVersion(version, str(out), metrics["validation"], len(ids), res.seconds, res.start)

    def _reserve_version(self) -> tuple[int, Path]:
        """The next version number, unique across every process on this project (a counter in the
        store, taken under its write lock), and its checkpoint name, reserved by creating the
        file exclusively. A number whose file exists already (left by a crashed update, or by a
        process writing through another store) is passed over: a version file is never replaced."""
        vs = self.versions()
        floor = (vs[-1].version + 1) if vs else 1  # versions made before the counter existed
        d = self.project.models_dir
        d.mkdir(parents=True, exist_ok=True)
        remove_killed_updates(d)
        for _ in range(1000):
            version = self.project.store.take_number(f"live-{self.cfg.arch}-version", floor)
            out = d / f"live-{self.cfg.arch}-{version:04d}.pt"
            try:
                fd = os.open(out, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                floor = version + 1
                continue
            with os.fdopen(fd, "w") as f:  # whose reservation it is, for the cleanup after a killed update
                f.write(_RESERVED.format(pid=os.getpid(), host=socket.gethostname()))
            return version, out
        raise LiveError(f"no free live version name in {d}: 1000 taken in a row (remove stale live-* files)")

    def _train(self, out: Path, ids: list[int], val_ids: list[int] | None, start: str | None,
               cancel, progress) -> "TrainResult":
        minutes = self.cfg.seconds / 60.0
        # validation only on the images held aside (val_fraction 0: with few images, all of them
        # train); the version is the update's last epoch (the learning rate has annealed by then;
        # rollback covers a worse one); no early stop inside an update: the budget is the limit
        # (a time budget never stops early); no final fit on every image: the images held aside
        # stay unseen, so each version's score is measured on images no version learnt from
        fam = trainer_family(self.cfg.arch)
        assert fam.train is not None and fam.train_config is not None
        cfg = replace(resolve(fam.train_config)(minutes=minutes, device=self.cfg.device, seed=self.cfg.seed,
                                                patience=10 ** 6, val_fraction=0.0, keep="last", final_fit=0.0),
                      **self.cfg.trainer)
        return resolve(fam.train)(self.project, out, cfg, progress=progress, cancel=cancel, image_ids=ids,
                                  val_ids=val_ids, init=start, register=False)

    def _prune(self) -> None:
        vs = self.versions()
        for v in vs[:-KEEP_VERSIONS]:
            if v.path != self.current:
                _remove_model_file(self.project, v.path)

    # ------------------------------------------------------------------ re-predicting ahead
    def next_images(self, after_path: str | None, n: int | None = None) -> list[int]:
        """The next unfinished images in file-list order after `after_path` (wrapping around)
        that nobody has touched: the ones a re-prediction may replace. A frame that holds objects
        carried from another frame (propagation, which the person asked for) is not one: the
        model's regions would be drawn over them."""
        n = self.cfg.ahead if n is None else n
        out: list[int] = []
        carried = set(self.project.store.image_ids_with_source(PROPAGATED))
        for start in ((after_path, None) if after_path is not None else (None,)):
            path = start
            while len(out) < n:
                rec = self.project.store.next_image(path, statuses=REPREDICT_STATUSES)
                if rec is None or rec.id in out:  # the end, or wrapped round to what was taken
                    break
                if rec.id not in carried:
                    out.append(rec.id)
                path = rec.path
        return out

    def repredict(self, image_ids: Sequence[int], may_write: Callable[[int], bool] | None = None,
                  cancel: Callable[[], bool] | None = None, segmenter=None):
        """Predict these images with the current version; an image a person touched since (its
        status moved on) or that `may_write` refuses (it is open in the window) keeps what it has.
        Returns the PredictReport (its `skipped` lists the ids left alone)."""
        from segstudio.inference.runtime.engine import ModelSpec, load_segmenter, predict_project
        if segmenter is None:
            path = self.start_checkpoint()
            if path is None:
                raise LiveError("no live model yet: mark an image done first")
            segmenter = load_segmenter(ModelSpec(arch=trainer_family(self.cfg.arch).key, weights=path,
                                                 device=self.cfg.device),
                                       self.project)
        return predict_project(self.project, segmenter, statuses=None, image_ids=list(image_ids),
                               create_classes=False, cancel=cancel, only_statuses=REPREDICT_STATUSES,
                               may_write=may_write)


def version_arch(path: str) -> str | None:
    """The live model kind ("unet", "maskrcnn") a version file is, from its name; None when it
    is not a live version."""
    hit = _VERSION_RE.match(Path(path).name)
    return hit.group(1) if hit else None


def _plain(metrics: dict) -> dict:
    """Validation metrics as JSON numbers (the store keeps them as JSON)."""
    out = {}
    for k, v in (metrics or {}).items():
        if isinstance(v, (int, float, str)) or v is None:
            out[k] = v
    return out


def remove_killed_updates(models_dir: Path) -> list[str]:
    """Remove what updates killed on this machine left in `models_dir`: reservations (a version
    name holding only its stamp) and staging files of processes that are gone. Nothing else: a
    reservation or staging file of a process still running, or of another machine, stays."""
    host = socket.gethostname()
    removed: list[str] = []
    try:
        entries = list(os.scandir(models_dir))
    except OSError:
        return removed
    for e in entries:
        try:
            if not e.is_file(follow_symlinks=False):
                continue
            pid = None
            hit = _STAGING_RE.match(e.name)
            if hit is not None:
                pid = int(hit.group(1))
            elif _VERSION_RE.match(e.name) and e.stat(follow_symlinks=False).st_size < 256:
                with open(e.path, "rb") as f:
                    stamp = _RESERVED_RE.match(f.read(256).decode("utf-8", "replace"))
                if stamp is None or stamp.group(2) != host:
                    continue
                pid = int(stamp.group(1))
            if pid is None or _alive(pid):
                continue
            os.unlink(e.path)
            removed.append(e.name)
        except OSError:
            continue
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process, or not ours to signal: alive
        return True
    return True


def _remove_model_file(project: Project, path: str) -> None:
    """Delete a checkpoint this module wrote (a live version or its last-epoch twin)."""
    p = Path(path)
    if p.parent.resolve() == project.models_dir.resolve() and _VERSION_RE.match(p.name.replace("-last", "")):
        p.unlink(missing_ok=True)
    project.store.remove_model(path)


def watch(learner: LiveLearner, poll: float = 5.0, stop: Callable[[], bool] = lambda: False,
          on_version: Callable[[LiveVersion, object], None] | None = None,
          max_updates: int | None = None, sleep: Callable[[float], None] | None = None) -> int:
    """Keep the model current while others (the window, another annotator's import) mark images
    done: whenever the done images or their regions change, update and re-predict the images after
    the most recently done one. Returns the number of updates made (when `stop` says so, or after
    `max_updates`)."""
    import time
    sleep = sleep or time.sleep
    store = learner.project.store
    seen = None
    made = 0
    while not stop():
        now = review_filter.learn_fingerprint(store)  # accepts count too when review is on
        if now != seen and now[0] > 0:
            seen = now  # taken before training: marks made during the update start another
            version = learner.update(cancel=stop)
            ids = [] if stop() else learner.next_images(store.last_done_path())
            rep = learner.repredict(ids, cancel=stop) if ids else None
            made += 1
            if on_version is not None:
                on_version(version, rep)
            if max_updates is not None and made >= max_updates:
                break
            continue
        step = min(poll, 0.25)
        waited = 0.0
        while waited < poll and not stop():
            sleep(step)
            waited += step
    return made


def warm_up() -> None:
    """Import the trainers and let torch set up its optimizers once, ahead of the first update.

    Imports hold the interpreter lock for whole seconds, which a window would feel as stalls if
    they came with the first update while a person paints. The millions of objects they make
    live as long as the process: freezing them keeps them out of the cycle collector's full
    passes, each of which would otherwise stall the window a few hundred ms."""
    import gc

    import torch

    for kind in LIVE_ARCHS:
        fam = trainer_family(kind)
        assert fam.train is not None
        resolve(fam.train)
    p = torch.nn.Parameter(torch.zeros(1))
    torch.optim.AdamW([p])
    torch.optim.SGD([p], lr=0.1, momentum=0.9)
    gc.freeze()
