"""In-domain self-supervised pre-training for small labelled sets: SimCLR (Chen et al. 2020).

Two random augmentations of each unlabeled image are pulled together and pushed away from the other
images in the batch (NT-Xent loss, MONAI ``ContrastiveLoss``). The backbone is the one the classification
planner would choose for these images; the run is a classify model (random head) that
``medlearn classify train --init-from RUN`` loads (backbone kept, head replaced). Only training-split
images are used when the data define splits (no peeking at val/test). It runs through the engine's one
training skeleton as an auxiliary task (``classify-pretrain``), so it gets the same run directory,
resume and budget rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from monai.losses import ContrastiveLoss
from torch import nn

from medlearn.data.classification import ClassificationData, load_classification_data, load_csv_table
from medlearn.data.fingerprint import fingerprint_classification
from medlearn.data.splits import Splits
from medlearn.engine.members import MemberJob, MemberOutput, TrainedMember
from medlearn.engine.rundir import RunDirectory
from medlearn.evaluation.report import Report
from medlearn.tasks.base import Echo, TrainRequest
from medlearn.tasks.classify import data as cdata
from medlearn.tasks.classify.model import Classifier
from medlearn.tasks.classify.module import build_classifier_network
from medlearn.tasks.classify.plan import ClassificationPlan, plan_classification
from medlearn.tasks.classify.task import ClassifyTask
from medlearn.transforms.batch import augment_images
from medlearn.transforms.intensity import fit_normalization, normalize


class SimCLRModule(pl.LightningModule):
    """Backbone + 2-layer projection head trained with NT-Xent."""

    def __init__(self, plan: dict[str, Any], lr: float = 1e-3, temperature: float = 0.5) -> None:
        super().__init__()
        self.save_hyperparameters()
        parsed = ClassificationPlan.from_dict(plan)
        self.net = build_classifier_network(parsed)
        dim = self.net.embed_dim
        self.projector = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, 128))
        self.loss = ContrastiveLoss(temperature=temperature)
        self.views = parsed.augment
        self._gen = torch.Generator().manual_seed(parsed.train.seed)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, _ = batch
        a, b = augment_images(x, self.views, self._gen), augment_images(x, self.views, self._gen)
        loss = self.loss(self.projector(self.net.embed(a)), self.projector(self.net.embed(b)))
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(a))
        return loss

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        epochs = self.trainer.max_epochs if self._trainer is not None else 1
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
        return [opt], [sched]


class PretrainTask(ClassifyTask):
    """SimCLR pre-training through the training skeleton (options: ``epochs``, ``temperature``)."""

    name = "classify-pretrain"
    description = "Self-supervised contrastive pre-training (SimCLR) of a classification backbone."

    def load_data(self, source: str, options: dict[str, Any], *, overrides: dict[str, Any] | None = None,
                  model: Classifier | None = None) -> ClassificationData:
        path = Path(source)
        if path.suffix.lower() in (".csv", ".tsv"):
            data = load_csv_table(path, require_labels=False,
                                  allow_outside=bool(options.get("allow_outside_paths")))
        else:
            data = load_classification_data(path)
        if data.splits is not None and (data.splits == "train").any():
            data = data.subset(data.splits == "train")
        if len(data) < 2:
            from medlearn.errors import InputError

            raise InputError(source, f"{len(data)} image(s): contrastive pre-training needs at least 2")
        return data

    def split(self, data: ClassificationData, request: TrainRequest, seed: int) -> Splits:
        return Splits(list(data.ids), np.full(len(data), "train", dtype=object), seed, self.split_unit)

    def make_plan(self, data: ClassificationData, splits: Splits, request: TrainRequest) -> ClassificationPlan:
        fp = fingerprint_classification(data)
        plan = plan_classification(fp, len(data), list(fp["class_counts"].values()) or [1])
        plan.augment.level = "heavy"  # contrastive learning needs strong views (Chen et al. 2020)
        plan.train.ensemble, plan.train.checkpoint, plan.train.train_on_val = 1, "final", False
        plan.train.max_epochs = int(request.option("epochs", 30))
        plan.train.monitor, plan.train.patience, plan.patient.aggregation = "train_loss", None, "none"
        return plan

    def finish_plan(self, plan: ClassificationPlan, data: ClassificationData, splits: Splits,
                    overrides: dict[str, Any], echo: Echo) -> ClassificationPlan:
        plan.data.mean, plan.data.std = fit_normalization(data.images, plan.data.normalization)
        echo(f"SimCLR pre-training of {plan.network.name} on {len(data)} unlabeled images for "
             f"{plan.train.max_epochs} epochs")
        return plan

    def step_timing(self, plan: ClassificationPlan, data: ClassificationData, splits: Splits) -> None:
        return None

    def prepare(self, plan: ClassificationPlan, data: ClassificationData, splits: Splits, run: RunDirectory,
                request: TrainRequest, echo: Echo) -> dict[str, Any]:
        x = normalize(data.images, plan.data.normalization, plan.data.mean, plan.data.std)
        return {"images": x, "temperature": float(request.option("temperature", 0.5))}

    @staticmethod
    def fit_member(job: MemberJob) -> MemberOutput:
        plan: ClassificationPlan = job.plan
        x = job.payload["images"]
        module = SimCLRModule(plan.to_dict(), temperature=job.payload["temperature"])
        dataset = cdata.ImageArrayDataset(x, np.zeros(len(x), np.int64))
        # contrastive batches need >= 2 images: drop a trailing singleton batch
        loader = torch.utils.data.DataLoader(dataset, batch_size=plan.train.batch_size, shuffle=True,
                                             drop_last=len(x) > plan.train.batch_size,
                                             generator=torch.Generator().manual_seed(job.seed))
        trainer = job.fit(job.trainer("train_loss", "min", None), module, loader)
        final = float(trainer.callback_metrics.get("train_loss", torch.tensor(float("nan"))))
        return MemberOutput({"net": module.net.state_dict()}, summary={"final_loss": final,
                                                                      "epochs": int(trainer.current_epoch)})

    def assemble(self, plan: ClassificationPlan, payload: dict[str, Any], members: list[TrainedMember],
                 data: ClassificationData, splits: Splits, run: RunDirectory) -> Classifier:
        net = build_classifier_network(plan)
        net.load_state_dict(members[0].load().tensors["net"])
        return Classifier.from_parts(plan, net, None, {"pretraining": {"method": "simclr", **members[0].summary}})

    def evaluate(self, model: Classifier, data: ClassificationData, splits: Splits | None,
                 n_boot: int) -> dict[str, Any]:
        summary = model.extras_["pretraining"]
        return {"pretraining": {**summary, "n_images": len(data), "network": model.plan_.network.name}}

    def report(self, path: Path, model: Classifier, data: ClassificationData, splits: Splits | None,
               metrics: dict[str, Any], run: RunDirectory | None, title: str) -> None:
        report = Report(title, f"SimCLR pre-training, {len(data)} images, network {model.plan_.network.name}")
        report.add_metrics(metrics["pretraining"])
        if run is not None:
            report.add_training_curves(run.logs_dir / "metrics.csv")
        report.add_preformatted(model.plan_.describe())
        report.write(path)

    def headline(self, metrics: dict[str, Any]) -> dict[str, Any]:
        return {"final_loss": metrics["pretraining"]["final_loss"]}


TASK = PretrainTask()
