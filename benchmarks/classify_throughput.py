"""Training throughput: medlearn's classification pipeline vs a plain MONAI/PyTorch loop.

Same network (the plan's default for BreastMNIST: MONAI ResNet-18, quarter width, CIFAR stem), same
normalised data, same batch size and optimiser family, measured side by side in one process,
alternating rounds so that machine load hits both alike. medlearn runs through its Lightning
trainer (checkpointing, CSV logging, callbacks) with augmentation and EMA off (the plain loop has
neither); a second medlearn row with the default augmentation + EMA shows their cost.

    python benchmarks/classify_throughput.py [--steps 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from _common import data_root, environment, write_results


class StepTimer(Callback):
    """Seconds per step after ``warmup`` steps."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start: float | None = None
        self.steps = 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.global_step == self.warmup and self.start is None:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if self.start is not None:
            self.steps += 1
            self.elapsed = time.perf_counter() - self.start


def load_data():  # noqa: ANN201
    from medlearn.data.classification import load_classification_data
    from medlearn.data.fingerprint import fingerprint_classification
    from medlearn.tasks.classify.plan import plan_classification
    from medlearn.transforms.intensity import fit_normalization, normalize

    data = load_classification_data(data_root() / "medmnist_breast" / "breastmnist.npz")
    train = data.subset(data.splits == "train")
    plan = plan_classification(fingerprint_classification(train), len(train), list(train.class_counts()))
    plan.data.mean, plan.data.std = fit_normalization(train.images, "zscore")
    x = normalize(train.images, "zscore", plan.data.mean, plan.data.std)
    return plan, x, train.labels


def plain_loop(plan, x: np.ndarray, y: np.ndarray, steps: int, warmup: int) -> float:  # noqa: ANN001
    """it/s of a hand-written loop: MONAI ResNet, DataLoader, AdamW, cross-entropy."""
    from monai.networks.nets import ResNet

    torch.manual_seed(0)
    backbone = ResNet(block="basic", layers=[2, 2, 2, 2], block_inplanes=plan.network.widths, spatial_dims=2,
                      n_input_channels=1, num_classes=2, conv1_t_size=3, conv1_t_stride=1, no_max_pool=True,
                      shortcut_type="B", bias_downsample=False)
    opt = torch.optim.AdamW(backbone.parameters(), lr=plan.train.lr, weight_decay=plan.train.weight_decay)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                                         batch_size=plan.train.batch_size, shuffle=True)
    done, start = 0, None
    backbone.train()
    while done < steps + warmup:
        for xb, yb in loader:
            if done == warmup:
                start = time.perf_counter()
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(backbone(xb), yb)
            loss.backward()
            opt.step()
            done += 1
            if done == steps + warmup:
                break
    return steps / (time.perf_counter() - start)


def medlearn_pipeline(plan, x: np.ndarray, y: np.ndarray, steps: int, warmup: int, defaults: bool) -> float:  # noqa: ANN001
    """it/s of medlearn's LightningModule + trainer (checkpoints, CSV logs) on the same data."""
    from medlearn.engine.rundir import RunDirectory
    from medlearn.engine.trainer import build_trainer, ema_callbacks
    from medlearn.tasks.classify.data import ImageArrayDataset, make_loader
    from medlearn.tasks.classify.module import ClassificationModule

    torch.manual_seed(0)
    p = plan.from_dict(plan.to_dict())
    if not defaults:
        p.augment.level, p.train.ema_decay = "none", None
    run = RunDirectory(tempfile.mkdtemp(prefix="medlearn-tput-"))
    run.prepare()
    timer = StepTimer(warmup)
    trainer = build_trainer(run, max_epochs=1000, monitor="train_loss", mode="min", patience=None,
                            max_steps=steps + warmup, enable_progress_bar=False,
                            extra_callbacks=[timer, *ema_callbacks(p.train.ema_decay)])
    module = ClassificationModule(p.to_dict())
    trainer.fit(module, make_loader(ImageArrayDataset(x, y), p.train.batch_size, True, 0))
    return timer.steps / timer.elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    plan, x, y = load_data()
    results: dict[str, list[float]] = {"plain": [], "medlearn": [], "medlearn_defaults": []}
    for r in range(args.rounds):
        results["plain"].append(plain_loop(plan, x, y, args.steps, args.warmup))
        results["medlearn"].append(medlearn_pipeline(plan, x, y, args.steps, args.warmup, defaults=False))
        results["medlearn_defaults"].append(medlearn_pipeline(plan, x, y, args.steps, args.warmup, defaults=True))
        print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.2f} it/s" for k, v in results.items()), flush=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    ratio = med["medlearn"] / med["plain"]
    ratio_defaults = med["medlearn_defaults"] / med["plain"]
    payload = {"its": results, "median_its": med, "ratio": ratio, "ratio_with_augmentation_and_ema": ratio_defaults,
               "target_ratio": 1.0, "network": f"resnet18 widths {plan.model.widths}",
               "batch_size": plan.train.batch_size,
               "steps_per_round": args.steps, "rounds": args.rounds, "environment": environment()}
    md = ("### Classification training throughput (BreastMNIST, side by side, same network and data)\n\n"
          "| pipeline | median it/s | ratio vs plain loop | target |\n|---|---|---|---|\n"
          f"| plain MONAI/PyTorch loop | {med['plain']:.2f} | 1.00 | |\n"
          f"| medlearn (Lightning engine, same work) | {med['medlearn']:.2f} | {ratio:.2f} | >= 1.0 |\n"
          f"| medlearn defaults (+ batch augmentation + EMA) | {med['medlearn_defaults']:.2f} | "
          f"{ratio_defaults:.2f} | |\n\n"
          f"{args.rounds} alternating rounds of {args.steps} steps (batch {plan.train.batch_size}, "
          f"ResNet-18 widths {plan.model.widths}); other jobs may have shared the 2 cores.")
    write_results("classify_throughput", payload, md)
    print(md)


if __name__ == "__main__":
    main()
