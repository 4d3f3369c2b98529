"""Train on a Ray cluster: `segstudio train FOLDER --model MODEL --ray [ADDRESS] --workers N`.

Ray Train's TorchTrainer starts N workers and a process group (gloo on CPUs, NCCL on GPUs); each
runs the same recipe as local training (`train_unet`, `train_maskrcnn`) with the network wrapped by
`ray.train.torch.prepare_model` (DistributedDataParallel: gradients averaged every step), its
own random crops, and the same epoch budget, so every worker validates and stops together.
Worker 0 writes the checkpoints (the same format and paths as local training); the driver then
puts them in the project's model list. Every worker opens the project itself: the folder and its
store must be on a path all of them see. The budget is in epochs (workers' clocks differ).
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from segstudio.core.errors import UserError
from segstudio.core.project import Project
from segstudio.inference import registry
from segstudio.inference.cluster.connect import check_address, connect
from segstudio.inference.family import resolve
from segstudio.inference.training.live import trainer_family


STORE_METRICS = ("mask_AP", "mean_iou", "pixel_accuracy")  # the best metrics the project's model list keeps


def _kind_of(cfg: Any) -> str:
    """The checkpoint kind of the family whose trainer takes this config (`Family.train_config`)."""
    for f in registry.FAMILIES.values():
        if f.train_config and f.checkpoint_kind and resolve(f.train_config) is type(cfg):
            return f.checkpoint_kind
    raise UserError(f"no model family trains with a {type(cfg).__name__}")


def _worker_loop(config: dict) -> None:
    """One Ray Train worker: the local recipe under DDP; reports each epoch's metrics."""
    import ray.train
    import ray.train.torch
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    # the driver's store: its SQLite file, or the same PostgreSQL project (its location has no password:
    # each worker's libpq finds it as the driver's did)
    project = Project.open(config["folder"], config["db"], store=config.get("store"))
    device = "cuda" if config["use_gpu"] else "cpu"

    def progress(p) -> None:
        if p.phase == "val":  # once an epoch, on every worker alike (Ray Train wants as many reports from each)
            ray.train.report({"epoch": p.epoch, "loss": float(p.loss), **{k: v for k, v in p.val.items()
                                                                            if v is not None}})
    with tempfile.TemporaryDirectory() as scratch:  # the other workers' checkpoints: thrown away
        out = config["out"] if rank == 0 else str(Path(scratch) / "model.pt")
        kw = dict(progress=progress, image_ids=config["image_ids"], val_ids=config["val_ids"], rank=rank,
                  register=False)
        fam = trainer_family(config["arch"])
        assert fam.train is not None and fam.train_config is not None
        cfg_cls = resolve(fam.train_config)
        cfg = cfg_cls(**{**config["cfg"], "device": device})
        ddp = {"find_unused_parameters": True} if getattr(cfg_cls, "ddp_find_unused_parameters", False) else None
        resolve(fam.train)(project, out, cfg, wrap_model=lambda m: ray.train.torch.prepare_model(
            m, parallel_strategy_kwargs=ddp), **kw)
    project.close()


def _store_of(project: Project) -> dict[str, Any]:
    """How a worker opens the driver's project: the SQLite file (absolute: the workers do not run in this
    process's folder), or the PostgreSQL location with this machine's data folder."""
    store = project.store
    if store.kind == "sqlite":
        return {"db": str(store.db_path.resolve()), "store": None}
    return {"db": str(Path(project.data_dir).resolve()), "store": store.location}


def train_on_ray(project: Project, cfg: Any, out: str | Path | None, address: str | None = None,
                 workers: int = 2, use_gpu: bool = False, image_ids: Sequence[int] | None = None,
                 val_ids: Sequence[int] | None = None) -> dict[str, Any]:
    """Train with `workers` Ray Train workers (cfg: a UNetTrainConfig or a MaskRCNNTrainConfig); the
    checkpoints land where local training puts them and in the project's model list. Returns their
    paths, the best metrics and the run's history."""
    arch = _kind_of(cfg)
    from segstudio.inference.training.common import checkpoint_paths, split_images
    if workers < 1:
        raise UserError("--workers must be 1 or more")
    check_address(address)  # a wrong address is said in seconds, before anything starts
    if (cfg.epochs is None and getattr(cfg, "steps", None) is None) or cfg.minutes is not None:
        raise UserError("training on Ray takes an epoch budget (--epochs N), not minutes: the workers must stop "
                        "at the same epoch")
    connect(address)
    import ray.train
    from ray.train.torch import TorchTrainer
    train_ids, vids = split_images(project, cfg.val_fraction, cfg.seed, None, image_ids, val_ids)
    best_path, last_path = checkpoint_paths(project, arch, out)
    storage = project.data_dir / "ray"  # Ray Train's run folder, in the project's data folder
    storage.mkdir(parents=True, exist_ok=True)
    trainer = TorchTrainer(
        _worker_loop,
        # absolute: the workers do not run in this process's folder
        train_loop_config={"arch": arch, "folder": str(Path(project.folder).resolve()),
                           **_store_of(project),
                           "cfg": asdict(cfg),
                           "use_gpu": use_gpu, "out": str(best_path), "image_ids": list(train_ids),
                           "val_ids": list(vids)},
        scaling_config=ray.train.ScalingConfig(num_workers=workers, use_gpu=use_gpu),
        run_config=ray.train.RunConfig(storage_path=str(storage.resolve()), name=arch))
    result = trainer.fit()
    if result.error is not None:
        raise UserError(f"training on Ray failed: {str(result.error).splitlines()[0][:300]}")
    for p in (last_path, best_path):
        if not Path(p).is_file():
            raise UserError(f"training on Ray wrote no checkpoint at {p}")
    # worker 0's own record of the run (Ray Train keeps metrics only with checkpoints it stores)
    from segstudio.inference.runtime.checkpoint import load_checkpoint
    best = dict(load_checkpoint(best_path, expect_arch=arch).training.get("metrics") or {})
    keep = {k: v for k, v in best.items() if k in STORE_METRICS}  # what local training stores
    for p in (last_path, best_path):
        project.store.add_model(str(p), arch, keep)
    last = load_checkpoint(last_path, expect_arch=arch).training  # the whole run's history
    history = list(last.get("history") or [])
    return {"arch": arch, "best": str(best_path), "last": str(last_path), "metrics": best, "history": history,
            "epochs": int(last.get("epoch", len(history))), "workers": workers, "seconds": last.get("seconds")}


__all__ = ["train_on_ray"]
