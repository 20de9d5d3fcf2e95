"""Training orchestration: dataset -> fingerprint -> plan -> cache -> Lightning -> run directory.

Writes the run-directory contract (``plan.json``, ``config.yaml``, ``versions.json``,
``splits.json``, ``checkpoints/``, ``logs/``, ``model.pt``, ``model.onnx``, ``report.html`` and,
last, ``metrics.json``). ``model.pt`` holds the weights, the plan (preprocessing, label and channel
names) and the post-processing chosen on the validation cases.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from medlearn.data.msd import MSDCase, fingerprint_msd_dataset, load_msd_dataset
from medlearn.engine.cpu import native_bf16
from medlearn.engine.distributed import is_primary_process
from medlearn.engine.rundir import RunDirectory
from medlearn.engine.seed import configure_cpu_threads, seed_everything
from medlearn.io import write_json
from medlearn.plan import parse_overrides
from medlearn.tasks.segment.data import PatchDataset, WholeCaseDataset, build_cache
from medlearn.tasks.segment.plan import SegmentationPlan, make_plan

MODEL_FORMAT = "medlearn.segment/1"


def split_cases(names: list[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Seeded random train/validation split; with one case it is used for both."""
    if len(names) < 2 or val_fraction <= 0:
        return list(names), list(names)
    n_val = min(len(names) - 1, max(1, round(val_fraction * len(names))))
    order = np.random.default_rng(seed).permutation(len(names))
    val = sorted(names[i] for i in order[:n_val])
    return [n for n in names if n not in val], val


def build_plan(dataset: Path, overrides: dict[str, Any] | None = None, network: str | None = None
               ) -> SegmentationPlan:
    """Fingerprint ``dataset`` and apply the planning rules, then the user's overrides."""
    fingerprint = fingerprint_msd_dataset(dataset)
    plan = make_plan(fingerprint, dataset=str(dataset), network=network or "unet")
    if overrides:
        plan = plan.apply_overrides(overrides)
    plan.validate()
    return plan


def train_segmentation(dataset: str | Path, run: str | Path, overrides: list[str] | dict[str, Any] | None = None,
                       plan_file: str | Path | None = None, force: bool = False, resume: bool = False,
                       progress: bool = True, echo: Callable[[str], None] = print) -> RunDirectory:
    """Train on an MSD dataset into the run directory ``run``; returns it (finished)."""
    import lightning.pytorch as pl  # noqa: F401  (imported early for clear import errors)

    dataset = Path(dataset)
    rd = RunDirectory(Path(run))
    ds = load_msd_dataset(dataset, read_check=True)
    resuming = rd.prepare(force=force, resume=resume)
    if isinstance(overrides, dict):
        override_dict = dict(overrides)
    else:
        override_dict = parse_overrides(overrides, plan_file)
    if resuming and rd.plan_file.exists():
        plan = SegmentationPlan.load(rd.plan_file)
    else:
        plan = build_plan(dataset, override_dict)
        if is_primary_process():  # DDP workers re-derive the same plan and leave the files alone
            plan.save(rd.plan_file)
            rd.write_config({"task": "segment", "dataset": str(dataset), "overrides": override_dict,
                             "plan_file": str(plan_file) if plan_file else None})
            rd.write_versions(plan.train.seed)
    if progress and is_primary_process():
        echo(plan.describe())
    seed_everything(plan.train.seed)
    configure_cpu_threads()
    if plan.train.precision == "bf16" and is_primary_process() and not torch.cuda.is_available() \
            and native_bf16() is False:
        echo("warning: train.precision=bf16 on a CPU without bfloat16 instructions (avx512_bf16/amx_bf16): "
             "emulated, slower than fp32")

    names = [c.name for c in ds.training]
    train_names, val_names = split_cases(names, plan.train.val_fraction, plan.train.seed)
    if plan.train.train_on_val_cases:
        train_names += [n for n in val_names if n not in train_names]
    if is_primary_process():
        write_json(rd.splits_file, {"train": train_names, "val": val_names})
    by_name = {c.name: c for c in ds.training}
    train_cases, val_cases = [by_name[n] for n in train_names], [by_name[n] for n in val_names]
    for cases in (train_cases, val_cases):  # preprocess once here; every member reopens the cache
        build_cache(cases, plan, rd.path / "cache", plan.train.seed)

    started = time.perf_counter()
    members, workers = fit_members(plan, rd.path, train_cases, val_cases, resuming, progress, echo)
    train_seconds = time.perf_counter() - started
    if not is_primary_process():  # a DDP worker: the primary process evaluates, saves and reports
        return rd
    net = assemble_members(plan, [torch.load(m["file"], map_location="cpu", weights_only=True)["state_dict"]
                                  for m in members])

    from medlearn.tasks.segment.inference import SegmentationModel

    model = SegmentationModel(plan, net, postprocessing={"largest_component": False})
    val_eval = model.evaluate_cases([by_name[n] for n in val_names], choose_postprocessing=True)
    model.postprocessing = val_eval["postprocessing"]
    model.save(rd.model_file)
    if plan.inference.engine == "onnx":
        model.export_onnx(rd.path / "model.onnx")
    metrics = {
        "task": "segment",
        "dataset": str(dataset),
        "weights": members[0]["weights"],
        "training": training_summary(members, train_seconds, plan.train.batch_size, workers),
        # seen_in_training: the validation figures are then optimistic (the cases were learnt from)
        "validation": {"seen_in_training": bool(set(val_names) & set(train_names)),
                       **{k: v for k, v in val_eval.items() if k not in ("per_case_probabilities",)}},
    }
    from medlearn.tasks.segment.report import write_segmentation_report

    write_segmentation_report(rd.report_file, f"Segmentation: {dataset.name}", plan, metrics["validation"],
                              val_eval.get("overlays", []), extra={"training": metrics["training"]})
    metrics["validation"].pop("overlays", None)
    write_json(rd.metrics_file, metrics)  # last: the run counts as finished from here
    return rd


def fit_members(plan: SegmentationPlan, run: Path, train_cases: list[MSDCase], val_cases: list[MSDCase],
                resuming: bool, progress: bool, echo: Callable[[str], None]) -> tuple[list[dict[str, Any]], int]:
    """Train the plan's ``train.ensemble`` members, side by side when cores allow (see
    :mod:`medlearn.engine.parallel`); returns each member's result from :func:`fit_member` and how
    many trained at a time.

    A member that runs after another in the same worker gets its share of the time budget, so the whole
    ensemble stays within ``train.max_time_minutes``.
    """
    from medlearn.engine.parallel import member_layout, run_parallel

    n = plan.train.ensemble
    layout = member_layout(n, plan.train.devices)
    minutes = plan.train.max_time_minutes
    if n > 1:
        echo(layout.describe())
    jobs = []
    for k in range(n):
        member = SegmentationPlan.from_dict(plan.to_dict())
        member.train.ensemble, member.train.seed = 1, plan.train.seed + k
        if minutes is not None:
            member.train.max_time_minutes = minutes / layout.rounds
        jobs.append({"plan": member, "run": run, "tag": RunDirectory.member_tag(k, n),
                     "train_cases": train_cases, "val_cases": val_cases, "resuming": resuming,
                     "progress": progress and k == 0})
    return run_parallel(fit_member, jobs, layout), layout.workers


def fit_member(plan: SegmentationPlan, run: Path, tag: str, train_cases: list[MSDCase], val_cases: list[MSDCase],
               resuming: bool, progress: bool) -> dict[str, Any]:
    """Train one network with Lightning (checkpoints and logs under ``tag``, "" for a single model).

    The trained weights go to ``checkpoints/<tag>/member.pt`` (tensors are not returned: passing them
    back from a worker process that then exits can deadlock). Returns ``{"file", "weights" ("final" or
    the best checkpoint's name), "steps", "seconds"}``; a member that finished before an interruption
    is not retrained.
    """
    from medlearn.engine.trainer import best_checkpoint, build_trainer, ema_callbacks
    from medlearn.io import atomic_path
    from medlearn.tasks.segment.module import SegmentationModule

    rd = RunDirectory(run)
    done = rd.member_file(tag)
    member_dir = done.parent
    if done.exists():
        return _member_summary(done)
    t = plan.train
    seed_everything(t.seed)
    cache_dir = rd.path / "cache"
    train_cache = build_cache(train_cases, plan, cache_dir, t.seed)
    val_cache = build_cache(val_cases, plan, cache_dir, t.seed)
    loader = DataLoader(PatchDataset(train_cache, t.patch_size, t.steps_per_epoch * t.batch_size,
                                     t.foreground_oversampling, t.seed, flip_rotate=t.augmentation != "none"),
                        batch_size=t.batch_size, num_workers=0, pin_memory=False)
    val_loader = DataLoader(WholeCaseDataset(val_cache), batch_size=1, num_workers=0)
    module = SegmentationModule(plan.to_dict())
    trainer = build_trainer(rd, max_epochs=t.max_epochs, monitor="val_dice", mode="max", patience=t.patience,
                            devices=t.devices, max_time_minutes=t.max_time_minutes,
                            enable_progress_bar=progress, extra_callbacks=ema_callbacks(t.ema_decay),
                            checkpoint_dir=member_dir, log_version=tag)
    last = member_dir / "last.ckpt"
    start = time.perf_counter()
    trainer.fit(module, loader, val_loader, ckpt_path=str(last) if resuming and last.exists() else None)
    seconds = time.perf_counter() - start
    if trainer.interrupted:  # never let an interrupted run look finished
        raise KeyboardInterrupt
    best = best_checkpoint(trainer) if t.checkpoint == "best_val" else None
    if best:
        module.load_state_dict(torch.load(best, map_location="cpu", weights_only=False)["state_dict"])
    result = {"state_dict": module.net.state_dict(), "weights": Path(best).name if best else "final",
              "steps": int(trainer.global_step), "seconds": round(seconds, 1)}
    if is_primary_process():
        with atomic_path(done) as tmp:
            torch.save(result, tmp)
    return {**{k: v for k, v in result.items() if k != "state_dict"}, "file": str(done)}


def _member_summary(done: Path) -> dict[str, Any]:
    saved = torch.load(done, map_location="cpu", weights_only=True)
    return {k: v for k, v in saved.items() if k != "state_dict"} | {"file": str(done)}


def assemble_members(plan: SegmentationPlan, state_dicts: list[dict[str, torch.Tensor]]) -> torch.nn.Module:
    """The plan's network (one member, or :class:`MeanLogits` over all) with the trained weights, in eval mode."""
    from medlearn.tasks.segment.module import build_segmentation_net

    net = build_segmentation_net(plan)
    targets = net.members if len(state_dicts) > 1 else [net]
    for target, state in zip(targets, state_dicts, strict=True):
        target.load_state_dict(state)
    return net.eval()


def training_summary(members: list[dict[str, Any]], seconds: float, batch_size: int, workers: int = 1
                     ) -> dict[str, Any]:
    """``metrics.json["training"]``: steps and throughput (summed over members trained side by side)."""
    steps = sum(m["steps"] for m in members)
    summary = {"steps": steps, "seconds": round(seconds, 1), "steps_per_second": round(steps / max(seconds, 1e-9), 3),
               "patches_seen": steps * batch_size}
    if len(members) > 1:
        summary["members"] = len(members)
        summary["steps_per_member"] = [m["steps"] for m in members]
        summary["members_side_by_side"] = workers
    return summary
