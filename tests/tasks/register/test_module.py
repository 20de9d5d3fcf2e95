"""The LightningModule learns: a tiny VoxelMorph-style network lowers its loss and raises NCC."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from medlearn.tasks.register.module import RegistrationModule, RegistrationSettings, batch_ncc, label_dice
from medlearn.tasks.register.synthetic import DeformationSettings, make_synthetic_pair
from tests.tasks.register.conftest import smooth_image

SMALL = DeformationSettings(max_displacement=2.5, smoothness=5, rotation_deg=0, scale=0, shear=0, translation=1,
                            bias=0.05, gamma=0.05, noise=0.01)


def _batches(n: int = 4, size: int = 32):
    img = smooth_image((size, size), 0, sigma=2.0)
    lab = (img > 0.55).astype(int) + (img > 0.7)
    out = []
    for k in range(n):
        p = make_synthetic_pair(img, lab, seed=k, settings=SMALL)
        out.append({"fixed": torch.tensor(p.fixed), "moving": torch.tensor(p.moving),
                    "fixed_label": torch.tensor(p.fixed_label).long(),
                    "moving_label": torch.tensor(p.moving_label).long()})
    return torch.utils.data.DataLoader(out, batch_size=n)


def _trainer(steps: int) -> pl.Trainer:
    return pl.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, accelerator="cpu",
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)


def test_voxelmorph_module_learns():
    torch.manual_seed(0)
    loader = _batches()
    module = RegistrationModule(RegistrationSettings(network="voxelmorph", channels=[8, 16, 16, 16], similarity="mse",
                                                     smoothness_weight=0.01, lr=1e-2))
    batch = next(iter(loader))
    with torch.no_grad():
        loss0 = float(module._loss(batch)[0])
        ncc0 = float(batch_ncc(batch["moving"], batch["fixed"]).mean())
    trainer = _trainer(50)
    trainer.fit(module, loader, loader)
    with torch.no_grad():
        loss1, _, ddf, warped = module._loss(batch)
    ncc1 = float(batch_ncc(warped, batch["fixed"]).mean())
    assert float(loss1) < 0.7 * loss0
    assert ncc1 > ncc0 + 0.05
    metrics = trainer.callback_metrics
    assert {"train_loss", "val_loss", "val_ncc", "val_dice"} <= set(metrics)
    assert float(metrics["val_ncc"]) == pytest.approx(ncc1, abs=1e-4)


@pytest.mark.parametrize("network", ["diffeomorphic", "bspline", "affine+voxelmorph"])
def test_other_networks_train_with_dice_and_a_pyramid(network):
    torch.manual_seed(0)
    loader = _batches(2)
    settings = RegistrationSettings(network=network, channels=[8, 16, 16, 16] if network != "bspline" else [8, 16],
                                    similarity="ncc", ncc_kernel=5, dice_weight=1.0, num_labels=3, lr=3e-3,
                                    control_spacing=4, pyramid=[2, 1])
    module = RegistrationModule(settings)
    trainer = _trainer(6)
    trainer.fit(module, loader, loader)
    assert np.isfinite(float(trainer.callback_metrics["train_loss"]))
    assert "train_dice_loss" in trainer.callback_metrics and "val_dice" in trainer.callback_metrics
    restored = RegistrationModule(module.hparams["settings"])  # rebuilt from its saved hyperparameters
    restored.load_state_dict(module.state_dict())


def test_label_dice():
    a = torch.zeros(1, 1, 8, 8, dtype=torch.int64)
    a[..., :4, :] = 1
    b = a.clone()
    b[..., :2, :] = 2
    assert float(label_dice(a, a, 3)[0]) == 1.0
    assert float(label_dice(b, a, 3)[0]) == pytest.approx((2 * 16 / 48 + 0.0) / 2)
