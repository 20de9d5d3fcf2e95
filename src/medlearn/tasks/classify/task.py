"""``classify``: the training hooks the engine's skeleton calls (see :mod:`medlearn.tasks.base`).

Selection uses the validation split only (early stopping and best checkpoint on ``train.monitor``); a
test split is predicted once, after selection. Members that keep their final weights select nothing and
train on the validation images too (``ClassificationPlan.learns_from_val``); the test split is never
trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlearn.data.classification import ClassificationData
from medlearn.data.fingerprint import fingerprint_classification
from medlearn.data.splits import Splits, check_grouping, read_split_file, stratified_grouped
from medlearn.engine.budget import StepTiming
from medlearn.engine.members import MemberJob, MemberOutput, TrainedMember
from medlearn.engine.rundir import RunDirectory
from medlearn.errors import InputError
from medlearn.tasks.base import Echo, Task, TrainRequest
from medlearn.tasks.classify import data as cdata
from medlearn.tasks.classify.model import Classifier
from medlearn.tasks.classify.plan import ClassificationPlan, fit_to_budget, plan_classification, steps_per_member
from medlearn.transforms.intensity import fit_normalization, normalize


class ClassifyTask(Task):
    name = "classify"
    description = "Image classification (2D/3D, per image and per patient)."
    model_class = Classifier
    plan_class = ClassificationPlan
    split_unit = "image"

    # -- data ------------------------------------------------------------------------------------
    def load_data(self, source: str, options: dict[str, Any], *, overrides: dict[str, Any] | None = None,
                  model: Classifier | None = None) -> ClassificationData:
        if model is not None:  # evaluation: the model's label set, its input size
            plan = model.plan_
            resize = plan.input_size if plan.data.resize else None
            return cdata.load_data(source, options, resize, plan.label_names, plan.task)
        resize = (overrides or {}).get("data.resize")
        data = cdata.load_data(source, options, resize)
        cdata.check_trainable(data)
        return data

    def item_ids(self, data: ClassificationData) -> list[Any]:
        return list(data.ids)

    def split(self, data: ClassificationData, request: TrainRequest, seed: int) -> Splits:
        fixed = data.splits
        split_file = request.option("split_file")
        if split_file:
            fixed = read_split_file(split_file, data.ids, self.split_unit).assignment.astype(str)
        if fixed is not None and data.patient_ids is not None:  # a given split must not already leak patients
            assigned = fixed != ""
            check_grouping(fixed[assigned], data.patient_ids[assigned], data.source)
        defaults = ClassificationPlan().data
        assignment = stratified_grouped(data.labels, data.patient_ids, fixed,
                                        val_fraction=request.override("data.val_fraction", defaults.val_fraction),
                                        test_fraction=request.override("data.test_fraction", defaults.test_fraction),
                                        seed=seed, source=data.source)
        if not (assignment == "val").any():
            raise InputError(data.source, "no validation images", "add val rows or more training images")
        if not (assignment == "train").any():
            raise InputError(data.source, "no training images", "assign rows to the train split")
        return Splits(list(data.ids), assignment, seed, self.split_unit)

    # -- plan ------------------------------------------------------------------------------------
    def make_plan(self, data: ClassificationData, splits: Splits, request: TrainRequest) -> ClassificationPlan:
        train = data.subset(splits.mask("train"))
        fp = fingerprint_classification(train)
        plan = plan_classification(fp, len(train), list(train.class_counts()), data.patient_ids is not None,
                                   gpu=torch.cuda.is_available())
        # An undefined validation AUC (one class among the val images) cannot select a checkpoint: monitor the
        # validation loss instead (the printed plan shows it).
        val = data.subset(splits.mask("val"))
        if data.task != "multilabel" and (val.class_counts() > 0).sum() < 2:
            plan.train.monitor = "val_loss"
        return plan

    def finish_plan(self, plan: ClassificationPlan, data: ClassificationData, splits: Splits,
                    overrides: dict[str, Any], echo: Echo) -> ClassificationPlan:
        if plan.train.monitor == "val_loss" and "train.monitor" not in overrides:
            echo("warning: the validation images hold a single class, so AUC is undefined on them: checkpoints "
                 "and early stopping use the validation loss (train.monitor=val_loss)")
        if plan.data.resize:
            plan.input_size = list(plan.data.resize)
            data.images = cdata.resize_all(data.images, plan.input_size)
        if plan.data.normalization in ("zscore", "ct") and (plan.data.mean is None or plan.data.std is None):
            plan.data.mean, plan.data.std = fit_normalization(data.images[splits.mask("train")],
                                                              plan.data.normalization)
        return plan

    def step_timing(self, plan: ClassificationPlan, data: ClassificationData, splits: Splits) -> StepTiming:
        rows = splits.mask("train", "val") if plan.learns_from_val else splits.mask("train")
        return StepTiming(lambda: _timing_module(plan), _timing_batch(plan), steps_per_member(plan, int(rows.sum())))

    def fit_budget(self, plan: ClassificationPlan, timing: StepTiming, seconds_per_step: float, workers: int,
                   overrides: dict[str, Any], echo: Echo) -> ClassificationPlan:
        if {"train.max_epochs", "train.ensemble"} & set(overrides):
            return plan  # the user chose the schedule; the engine warns if it will not fit
        n_train = timing.steps_wanted // plan.train.max_epochs * plan.train.batch_size
        return fit_to_budget(plan, n_train, seconds_per_step, workers, echo)

    # -- training ----------------------------------------------------------------------------------
    def prepare(self, plan: ClassificationPlan, data: ClassificationData, splits: Splits, run: RunDirectory,
                request: TrainRequest, echo: Echo) -> dict[str, Any]:
        if plan.data.resize and list(data.images.shape[2:]) != list(plan.input_size):
            data.images = cdata.resize_all(data.images, plan.input_size)
        images = normalize(data.images, plan.data.normalization, plan.data.mean, plan.data.std)
        train_rows = splits.mask("train", "val") if plan.learns_from_val else splits.mask("train")
        val_rows = splits.mask("val")
        weights = sample_weights = None
        if plan.imbalance.strategy == "weighted_loss":
            weights = cdata.class_weights(data.labels[train_rows], len(plan.label_names)).tolist()
        elif plan.imbalance.strategy == "oversample":
            sample_weights = cdata.oversampling_weights(data.labels[train_rows])
        return {"train": cdata.ImageArrayDataset(images[train_rows], data.labels[train_rows]),
                "val": cdata.ImageArrayDataset(images[val_rows], data.labels[val_rows]),
                "weights": weights, "sample_weights": sample_weights, "init_from": request.option("init_from"),
                "images": images, "train_rows": train_rows}

    @staticmethod
    def fit_member(job: MemberJob) -> MemberOutput:
        """One member (seed ``train.seed + k``): final or best-validation weights, per ``plan.final_weights``."""
        from medlearn.engine.trainer import ema_callbacks
        from medlearn.tasks.classify.module import ClassificationModule

        plan: ClassificationPlan = job.plan
        payload = job.payload
        train_loader = cdata.make_loader(payload["train"], plan.train.batch_size, True, job.seed,
                                         payload["sample_weights"])
        val_loader = cdata.make_loader(payload["val"], max(plan.train.batch_size, 128), False, job.seed)
        module = ClassificationModule(plan.to_dict(), payload["weights"])
        if payload.get("init_from") and not job.has_checkpoint:
            n = load_backbone_weights(module.net, payload["init_from"])
            if job.index == 0:
                print(f"Initialised {n} backbone tensors from {payload['init_from']} (new head)", flush=True)
        final = plan.final_weights
        mode = "min" if "loss" in plan.train.monitor else "max"
        trainer = job.trainer(plan.train.monitor, mode, None if final else plan.train.patience,
                              callbacks=ema_callbacks(plan.train.ema_decay))
        job.fit(trainer, module, train_loader, val_loader)
        best = None if final else job.best_state(trainer)
        if best is not None:
            module.load_state_dict(best)
        from medlearn.engine.trainer import best_checkpoint

        return MemberOutput({"net": module.net.eval().state_dict()},
                            summary={"epochs": int(trainer.current_epoch),
                                     "best_epoch": _checkpoint_epoch(best_checkpoint(trainer)) if not final else None,
                                     "steps": int(trainer.global_step)})

    def assemble(self, plan: ClassificationPlan, payload: dict[str, Any], members: list[TrainedMember],
                 data: ClassificationData, splits: Splits, run: RunDirectory) -> Classifier:
        from medlearn.imaging.ood import intensity_profile
        from medlearn.tasks.classify.module import build_classifier_network, combine_members
        from medlearn.tasks.classify.patient import LEARNED

        nets = []
        for member in members:
            net = build_classifier_network(plan, single=True)
            net.load_state_dict(member.load().tensors["net"])
            nets.append(net.eval())
        net = combine_members(nets, plan).eval()
        aggregator = None
        if plan.patient.aggregation in LEARNED and data.patient_ids is not None:
            aggregator = _fit_aggregator(net, plan, data, payload["images"], splits)
        seen_rows = splits.mask("train", "val")
        extras = {"seen_images": cdata.image_hashes(data.images[seen_rows]),
                  "intensity": intensity_profile(data.images[splits.mask("train")]),
                  "best_epochs": [m.summary.get("best_epoch") for m in members]}
        return Classifier.from_parts(plan, net, aggregator, extras)

    # -- evaluation ----------------------------------------------------------------------------------
    def evaluate(self, model: Classifier, data: ClassificationData, splits: Splits | None,
                 n_boot: int) -> dict[str, Any]:
        from medlearn.tasks.classify.evaluate import evaluate_model

        metrics = evaluate_model(model, data, None if splits is None else splits.assignment, n_boot)
        if splits is not None:
            plan = model.plan_
            train_rows = splits.mask("train", "val") if plan.learns_from_val else splits.mask("train")
            metrics["training"] = {"images_trained_on": int(train_rows.sum()),
                                   "val_seen_in_training": plan.learns_from_val,
                                   "imbalance_ratio": plan.imbalance.ratio,
                                   "imbalance_strategy": plan.imbalance.strategy}
        return metrics

    def report(self, path: Path, model: Classifier, data: ClassificationData, splits: Splits | None,
               metrics: dict[str, Any], run: RunDirectory | None, title: str) -> None:
        from medlearn.tasks.classify.evaluate import write_report

        write_report(path, model, data, metrics, run, title)

    def seen_in_training(self, model: Classifier, data: ClassificationData) -> int:
        seen = set(model.extras_.get("seen_images", []))
        images = cdata.resize_all(data.images, model.plan_.input_size) if model.plan_.data.resize else data.images
        return sum(h in seen for h in cdata.image_hashes(images))

    def headline(self, metrics: dict[str, Any]) -> dict[str, Any]:
        def pick(split_metrics: dict[str, Any]) -> dict[str, Any]:
            return {m: _entry(split_metrics[m]) for m in ("auc", "accuracy", "balanced_accuracy", "ece")
                    if m in split_metrics}

        rows = {split: pick(metrics[split]) for split in ("val", "test", "all") if split in metrics}
        if "patient" in metrics:
            rows["patient"] = {s: pick(metrics["patient"][s]) for s in ("val", "test", "all")
                               if s in metrics["patient"]}
        if "val" in rows and metrics.get("training", {}).get("val_seen_in_training"):
            rows["val (trained on)"] = rows.pop("val")  # not an estimate on unseen images
        return rows


def _entry(entry: dict[str, Any]) -> Any:
    """A headline value: "v [lo, hi]", or "v (CI not estimable: why)"."""
    from medlearn.evaluation.report import format_value

    return format_value(entry)


def _timing_module(plan: ClassificationPlan) -> Any:
    from medlearn.tasks.classify.module import ClassificationModule

    return ClassificationModule(plan.to_dict())


def _timing_batch(plan: ClassificationPlan) -> tuple[torch.Tensor, torch.Tensor]:
    """A random batch of the plan's size for timing steps."""
    x = torch.randn(plan.train.batch_size, plan.in_channels, *plan.input_size)
    if plan.task == "multilabel":
        y = torch.randint(0, 2, (plan.train.batch_size, len(plan.label_names))).float()
    else:
        y = torch.randint(0, len(plan.label_names), (plan.train.batch_size,))
    return x, y


def _checkpoint_epoch(path: str | None) -> int | None:
    if not path:
        return None
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except (OSError, KeyError, RuntimeError):
        return None


def _fit_aggregator(net: torch.nn.Module, plan: ClassificationPlan, data: ClassificationData, images: np.ndarray,
                    splits: Splits) -> Any:
    """Fit the learned patient-level aggregator on frozen image embeddings.

    It follows the image model: when that selects on the validation patients, the aggregator trains on the
    train patients and keeps its best epoch on val; when the image model also learnt from the val images
    (``plan.learns_from_val``), val is no longer unseen, so the aggregator trains on train + val for
    ``plan.patient.epochs`` and keeps its final weights.
    """
    from medlearn.imaging.embed import embed_images
    from medlearn.tasks.classify.patient import fit_patient_aggregator, patient_bags

    emb = embed_images(net, images)

    def bags_of(rows: np.ndarray) -> tuple:
        _, b, lengths, labels = patient_bags(emb[rows], data.labels[rows], data.patient_ids[rows])
        return b, lengths, labels

    fit_rows = splits.mask("train", "val") if plan.learns_from_val else splits.mask("train")
    val = None if plan.learns_from_val else bags_of(splits.mask("val"))
    return fit_patient_aggregator(bags_of(fit_rows), val, plan.task, plan.num_outputs, plan.patient.aggregation,
                                  plan.patient.epochs, plan.train.seed)


def load_backbone_weights(net: torch.nn.Module, source_run: str | Path) -> int:
    """Copy every weight except the head from another classify run (or a pre-training run) into ``net``.

    The source ``model.pt`` is read as a model artefact (``weights_only``). Returns the number of tensors
    copied; InputError when the backbones do not match.
    """
    from medlearn.io.artifact import load_artifact

    path = Path(source_run)
    model_file = path / "model.pt" if path.is_dir() else path
    if not model_file.exists():
        raise InputError(path, "no model.pt to initialise from", "pass a finished run directory to --init-from")
    source = load_artifact(model_file, task="classify").tensors.get("net", {})
    if any(k.startswith("members.0.") for k in source):  # an ensemble: start from its first member
        source = {k[len("members.0."):]: v for k, v in source.items() if k.startswith("members.0.")}
    own = net.state_dict()
    copied = {k: v for k, v in source.items() if k.startswith("backbone.") and k in own and own[k].shape == v.shape}
    backbone_keys = [k for k in own if k.startswith("backbone.")]
    if len(copied) < len(backbone_keys):
        raise InputError(model_file, f"backbone does not match: {len(copied)} of {len(backbone_keys)} tensors fit",
                         "use the same network, widths and input channels as the source run (--set network.name=...)")
    net.load_state_dict(copied, strict=False)
    return len(copied)


TASK = ClassifyTask()
