"""In-domain self-supervised pre-training for small labelled sets: SimCLR (Chen et al. 2020).

Two random augmentations of each unlabeled image are pulled together and pushed away from the
other images in the batch (NT-Xent loss, MONAI ``ContrastiveLoss``). The backbone is the one the
classification planner would choose for these images, saved in a ``model.pt`` that
``medlearn classify train --init-from RUN`` loads (backbone kept, head replaced).
Only training-split images are used when the data define splits (no peeking at val/test).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from monai.losses import ContrastiveLoss
from torch import nn

from medlearn.data.classification import load_classification_data, load_csv_table
from medlearn.data.fingerprint import fingerprint_classification
from medlearn.engine.rundir import RunDirectory
from medlearn.engine.seed import configure_cpu_threads, seed_everything
from medlearn.engine.trainer import build_trainer
from medlearn.io import write_json
from medlearn.plan import parse_overrides
from medlearn.tasks.classify.dataset import ImageArrayDataset
from medlearn.tasks.classify.model_io import save_classifier
from medlearn.tasks.classify.module import build_classifier_network
from medlearn.tasks.classify.plan import ClassificationPlan, plan_classification
from medlearn.transforms.batch import augment_images
from medlearn.transforms.intensity import fit_normalization, normalize


@dataclass
class PretrainOptions:
    data: str
    run_dir: str
    overrides: list[str]
    epochs: int = 30
    seed: int = 0
    force: bool = False
    temperature: float = 0.5


class SimCLRModule(pl.LightningModule):
    """Backbone + 2-layer projection head trained with NT-Xent."""

    def __init__(self, plan: dict[str, Any], lr: float = 1e-3, temperature: float = 0.5) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = build_classifier_network(ClassificationPlan.from_dict(plan))
        dim = self.net.embed_dim
        self.projector = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, 128))
        self.loss = ContrastiveLoss(temperature=temperature)
        self.views = ClassificationPlan.from_dict(plan).augment
        self._gen = torch.Generator().manual_seed(ClassificationPlan.from_dict(plan).seed)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, _ = batch
        a, b = augment_images(x, self.views, self._gen), augment_images(x, self.views, self._gen)
        za = self.projector(self.net.embed(a))
        zb = self.projector(self.net.embed(b))
        loss = self.loss(za, zb)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(a))
        return loss

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.trainer.max_epochs))
        return [opt], [sched]


def _unlabeled_images(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    if path.suffix.lower() in (".csv", ".tsv"):
        data = load_csv_table(path, require_labels=False)
    else:
        data = load_classification_data(path)
    if data.splits is not None and (data.splits == "train").any():
        data = data.subset(data.splits == "train")
    return data.images, fingerprint_classification(data)


def pretrain_backbone(options: PretrainOptions, echo: Any = print) -> dict[str, Any]:
    run = RunDirectory(Path(options.run_dir))
    seed_everything(options.seed)
    configure_cpu_threads()
    images, fp = _unlabeled_images(Path(options.data))
    run.prepare(force=options.force)
    counts = list(fp["class_counts"].values())
    plan = plan_classification(fp, len(images), counts or [1])
    plan.seed = options.seed
    overrides = parse_overrides(options.overrides)
    if overrides:
        plan = plan.apply_overrides(overrides)
    plan.augment.level = "heavy"  # contrastive learning needs strong views (Chen et al. 2020)
    plan.data.mean, plan.data.std = fit_normalization(images, plan.data.normalization)
    x = normalize(images, plan.data.normalization, plan.data.mean, plan.data.std)
    plan.save(run.plan_file)
    run.write_config(vars(options))
    run.write_versions(options.seed)
    echo(f"SimCLR pre-training of {plan.model.network} on {len(x)} unlabeled images for {options.epochs} epochs")
    module = SimCLRModule(plan.to_dict(), temperature=options.temperature)
    # Contrastive batches need >= 2 images; drop a trailing singleton batch.
    dataset = ImageArrayDataset(x, np.zeros(len(x), np.int64))
    loader = torch.utils.data.DataLoader(dataset, batch_size=plan.train.batch_size, shuffle=True,
                                         drop_last=len(x) > plan.train.batch_size,
                                         generator=torch.Generator().manual_seed(options.seed))
    trainer = build_trainer(run, options.epochs, "train_loss", "min", patience=None, enable_progress_bar=True)
    started = time.perf_counter()
    trainer.fit(module, loader)
    final = float(trainer.callback_metrics.get("train_loss", torch.tensor(float("nan"))))
    save_classifier(run.model_file, plan, module.net, {"pretraining": "simclr", "epochs": options.epochs})
    result = {"final_loss": final, "seconds": round(time.perf_counter() - started, 2), "n_images": len(x),
              "method": "simclr", "network": plan.model.network}
    write_json(run.metrics_file, result)
    return result
