"""Train a classifier end to end: data -> splits -> plan -> Lightning -> model.pt -> metrics + report.

Selection uses the validation split only (early stopping and best checkpoint on ``val_auc``); when
the data define a test split it is predicted once, after selection, and written under ``test``. Members
that keep their final weights select nothing and train on the validation images too
(``ClassificationPlan.learns_from_val``); the test split is never trained on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlearn.data.classification import ClassificationData, load_classification_data, resize_image
from medlearn.data.fingerprint import fingerprint_classification
from medlearn.data.splits import assign_splits, check_grouping, load_split_file, save_splits
from medlearn.engine.distributed import is_primary_process
from medlearn.engine.parallel import member_layout, run_parallel
from medlearn.engine.rundir import RunDirectory
from medlearn.engine.seed import configure_cpu_threads, seed_everything
from medlearn.engine.trainer import best_checkpoint, build_trainer, ema_callbacks
from medlearn.errors import InputError
from medlearn.io import atomic_path, write_json
from medlearn.plan import parse_overrides
from medlearn.tasks.classify.dataset import (
    ImageArrayDataset,
    class_weights,
    make_loader,
    oversampling_weights,
)
from medlearn.tasks.classify.model_io import load_backbone_weights, save_classifier
from medlearn.tasks.classify.module import ClassificationModule, build_classifier_network, combine_members
from medlearn.tasks.classify.patient import PatientAggregator, fit_patient_aggregator, patient_bags
from medlearn.tasks.classify.plan import ClassificationPlan, plan_classification
from medlearn.tasks.classify.predict import embed_images
from medlearn.transforms.intensity import fit_normalization, normalize


@dataclass
class TrainOptions:
    """What the user asked for (saved as ``config.yaml``)."""

    data: str
    run_dir: str
    label_columns: list[str] | None = None
    task: str | None = None
    classes: list[str] | None = None
    split_file: str | None = None
    overrides: list[str] | None = None
    plan_file: str | None = None
    seed: int = 0
    force: bool = False
    resume: bool = False
    init_from: str | None = None
    progress: bool = True
    n_boot: int = 1000


def prepare_data(data: ClassificationData, options: TrainOptions) -> tuple[ClassificationData, np.ndarray]:
    """The split of every image (fixed where the data or a split file say, the rest seeded)."""
    fixed = data.splits
    if options.split_file:
        fixed = load_split_file(options.split_file, data.ids)
    if fixed is not None and data.patient_ids is not None:  # a given split must not already leak patients
        assigned = fixed != ""
        check_grouping(fixed[assigned], data.patient_ids[assigned], data.source)
    splits = assign_splits(data.labels, data.patient_ids, fixed, seed=options.seed)
    check_grouping(splits, data.patient_ids)
    if not (splits == "val").any():
        raise InputError(data.source, "no validation images", "add val rows or more training images")
    return data, splits


def make_plan(data: ClassificationData, splits: np.ndarray, options: TrainOptions) -> ClassificationPlan:
    train = data.subset(splits == "train")
    fp = fingerprint_classification(train)
    plan = plan_classification(fp, len(train), list(train.class_counts()), data.patient_ids is not None,
                               gpu=torch.cuda.is_available())
    plan.seed = options.seed
    overrides = parse_overrides(options.overrides, options.plan_file)
    if overrides:
        plan = plan.apply_overrides(overrides)
    if plan.data.resize:
        plan.input_size = list(plan.data.resize)
    return plan


def train_classifier(options: TrainOptions, echo: Any = print) -> dict[str, Any]:
    """Run a full training; returns the metrics written to ``metrics.json``."""
    run = RunDirectory(Path(options.run_dir))
    if run.is_finished() and not options.force:
        run.prepare(force=False)  # raises RunExistsError with the standard message
    seed_everything(options.seed)
    configure_cpu_threads()
    data = load_classification_data(options.data, label_columns=options.label_columns, task=options.task,
                                    classes=options.classes)
    data, splits = prepare_data(data, options)
    resuming = run.prepare(force=options.force, resume=options.resume)
    if resuming and run.plan_file.exists():  # continue with the interrupted run's plan
        plan = ClassificationPlan.load(run.plan_file)
    else:
        plan = make_plan(data, splits, options)
    if plan.learns_from_val and not plan.final_weights:
        raise InputError("train.train_on_val", "needs final weights (nothing may be selected on images trained on)",
                         "set train.checkpoint=final or train.train_on_val=false")
    if plan.data.resize and list(data.images.shape[2:]) != list(plan.data.resize):
        data.images = np.stack([resize_image(im, plan.data.resize) for im in data.images])
    if plan.data.normalization in ("zscore", "ct") and (plan.data.mean is None or plan.data.std is None):
        plan.data.mean, plan.data.std = fit_normalization(data.images[splits == "train"], plan.data.normalization)
    images = normalize(data.images, plan.data.normalization, plan.data.mean, plan.data.std)

    if is_primary_process():
        echo(f"Plan ({run.plan_file}):\n{plan.describe()}")
        plan.save(run.plan_file)
        run.write_config({k: v for k, v in vars(options).items()})
        run.write_versions(options.seed)
        save_splits(run.splits_file, splits, data.ids, options.seed)

    train_idx, val_idx = splits == "train", splits == "val"
    if plan.learns_from_val:
        train_idx = train_idx | val_idx
    weights = None
    sample_weights = None
    if plan.imbalance.strategy == "weighted_loss":
        weights = class_weights(data.labels[train_idx], len(plan.label_names)).tolist()
    elif plan.imbalance.strategy == "oversample":
        sample_weights = oversampling_weights(data.labels[train_idx])
    train_set = ImageArrayDataset(images[train_idx], data.labels[train_idx])
    val_set = ImageArrayDataset(images[val_idx], data.labels[val_idx])
    layout = member_layout(plan.train.ensemble, plan.train.devices, plan.train.accelerator)
    if layout.workers > 1:
        echo(layout.describe())
    jobs = [{"run": run.path, "plan": plan, "k": k, "weights": weights, "train_set": train_set, "val_set": val_set,
             "sample_weights": sample_weights, "options": options, "resuming": resuming,
             "progress": options.progress and layout.workers == 1, "echo": echo if layout.workers == 1 else print}
            for k in range(plan.train.ensemble)]
    started = time.perf_counter()
    results = run_parallel(train_member, jobs, layout)
    train_seconds = time.perf_counter() - started
    if not is_primary_process():  # a DDP worker: the primary process saves, evaluates and reports
        return {}
    members = [load_member(plan, r["file"]) for r in results]
    epochs_run, best_epochs = [r["epochs"] for r in results], [r["best_epoch"] for r in results]
    net = combine_members(members, plan)
    net = net.eval()
    aggregator = None
    if plan.patient.aggregation != "none" and data.patient_ids is not None:
        aggregator = train_patient_model(net, plan, data, images, splits)
    extra = {"best_epochs": best_epochs, "train_seconds": train_seconds,
             "patient_aggregator": aggregator.state_dict() if aggregator is not None else None}
    save_classifier(run.model_file, plan, net, extra)

    from medlearn.tasks.classify.evaluate import evaluate_splits  # heavy plotting imports only here

    metrics = evaluate_splits(run, plan, net, data, images, splits, n_boot=options.n_boot, aggregator=aggregator)
    metrics["training"] = {"seconds": round(train_seconds, 2), "epochs_run": sum(epochs_run),
                           "epochs_per_member": epochs_run, "best_epochs": best_epochs, "ensemble": len(members),
                           "members_side_by_side": layout.workers, "images_trained_on": int(train_idx.sum()),
                           "val_seen_in_training": plan.learns_from_val,
                           "imbalance_ratio": plan.imbalance.ratio,
                           "imbalance_strategy": plan.imbalance.strategy}
    write_json(run.metrics_file, metrics)  # last: marks the run finished
    return metrics


def train_member(run: Path, plan: ClassificationPlan, k: int, weights: list[float] | None,
                 train_set: ImageArrayDataset, val_set: ImageArrayDataset, sample_weights: np.ndarray | None,
                 options: TrainOptions, resuming: bool, progress: bool, echo: Any) -> dict[str, Any]:
    """Train ensemble member ``k`` (seed ``seed + k``), possibly in a worker process, unless an earlier
    attempt finished it.

    Its network (final or best-validation weights, per ``plan.final_weights``) goes to ``member.pt``
    under the member's checkpoint folder (tensors are not sent back from a worker process: one that
    exits while the parent still maps them can deadlock). Returns ``{"file", "epochs", "best_epoch"}``.
    """
    run_dir = RunDirectory(run)
    several = plan.train.ensemble > 1
    tag = RunDirectory.member_tag(k, plan.train.ensemble)
    done = run_dir.member_file(tag)
    member_dir = done.parent
    if done.exists():  # finished before an interruption: reuse, don't retrain
        saved = torch.load(done, map_location="cpu", weights_only=False)
        return {"file": str(done), "epochs": saved["epochs"], "best_epoch": saved["best_epoch"]}
    seed = options.seed + k
    seed_everything(seed)
    train_loader = make_loader(train_set, plan.train.batch_size, True, seed, sample_weights)
    val_loader = make_loader(val_set, max(plan.train.batch_size, 128), False, seed)
    plan_k = ClassificationPlan.from_dict({**plan.to_dict(), "seed": seed})
    module = ClassificationModule(plan_k.to_dict(), weights)
    if options.init_from and not resuming:
        n = load_backbone_weights(module.net, options.init_from)
        echo(f"Initialised {n} backbone tensors from {options.init_from} (new head)")
    if several:
        echo(f"Ensemble member {k + 1}/{plan.train.ensemble} (seed {seed})")
    final = plan.final_weights
    trainer = build_trainer(run_dir, plan.train.max_epochs, plan.train.monitor,
                            "min" if "loss" in plan.train.monitor else "max", None if final else plan.train.patience,
                            plan.train.devices, plan.train.accelerator, plan.train.max_minutes,
                            enable_progress_bar=progress, extra_callbacks=ema_callbacks(plan.train.ema_decay),
                            checkpoint_dir=member_dir, log_version=tag)
    last = member_dir / "last.ckpt"
    trainer.fit(module, train_loader, val_loader, ckpt_path=str(last) if resuming and last.exists() else None)
    if trainer.interrupted:  # never let an interrupted run look finished
        raise KeyboardInterrupt
    best = best_checkpoint(trainer)
    if best and not final:
        module.load_state_dict(torch.load(best, map_location="cpu", weights_only=False)["state_dict"])
    result = {"epochs": int(trainer.current_epoch), "best_epoch": _best_epoch(best)}
    if is_primary_process():
        with atomic_path(done) as tmp:
            torch.save({"state_dict": module.net.eval().state_dict(), **result}, tmp)
    return {"file": str(done), **result}


def load_member(plan: ClassificationPlan, file: str | Path) -> torch.nn.Module:
    """One trained member network from its ``member.pt``."""
    net = build_classifier_network(plan, single=True)
    net.load_state_dict(torch.load(file, map_location="cpu", weights_only=False)["state_dict"])
    return net.eval()


def train_patient_model(net: torch.nn.Module, plan: ClassificationPlan, data: ClassificationData,
                        images: np.ndarray, splits: np.ndarray) -> PatientAggregator:
    """Fit the patient-level aggregator on frozen image embeddings.

    It follows the image model: when that selects on the validation patients, the aggregator trains on the
    train patients and keeps its best epoch on val; when the image model also learnt from the val images
    (``plan.learns_from_val``), val is no longer unseen, so the aggregator trains on train + val for
    ``plan.patient.epochs`` and keeps its final weights.
    """
    emb = embed_images(net, images)
    fit_splits = ("train", "val") if plan.learns_from_val else ("train",)

    def bags_of(rows: np.ndarray) -> tuple:
        _, b, lengths, labels = patient_bags(emb[rows], data.labels[rows], data.patient_ids[rows])
        return b, lengths, labels

    val = None if plan.learns_from_val else bags_of(splits == "val")
    return fit_patient_aggregator(bags_of(np.isin(splits, fit_splits)), val, plan.task, plan.num_outputs,
                                  plan.patient.aggregation, plan.patient.epochs, plan.seed)


def _best_epoch(path: str | None) -> int | None:
    if not path:
        return None
    try:
        return int(torch.load(path, map_location="cpu", weights_only=False)["epoch"])
    except (OSError, KeyError, RuntimeError):
        return None
