"""Plan rules: fingerprint -> working size, depth, similarity, Dice supervision, regularisation, schedule;
and the plan's own checks (ranges, clashing fields)."""

from __future__ import annotations

import math

import pytest

from medlearn.errors import InputError
from medlearn.tasks.register.nets import required_divisor
from medlearn.tasks.register.plan import (
    VOXEL_BUDGET,
    RegistrationFingerprint,
    RegistrationPlan,
    dice_weight_rule,
    make_plan,
    network_depth,
    similarity_rule,
    smoothness_weight_rule,
    working_shape,
)


def test_working_shape_fits_the_cpu_budget_and_the_network():
    brain = RegistrationFingerprint(ndim=3, image_size=(160, 192, 224), spacing=(1.0, 1.0, 1.0))
    shape = working_shape(brain)
    assert math.prod(shape) <= VOXEL_BUDGET[3] and shape == (40, 48, 56)
    assert all(s % 2 ** network_depth(shape) == 0 for s in shape)
    small = RegistrationFingerprint(ndim=2, image_size=(64, 80), spacing=(1.0, 1.0))
    assert working_shape(small) == (64, 80)  # already small: kept
    assert working_shape(RegistrationFingerprint(2, (221, 257), (1.0, 1.0))) == (112, 128)  # halved, multiple of 16
    assert working_shape(RegistrationFingerprint(2, (600, 800), (1.0, 1.0))) == (72, 104)
    assert network_depth((40, 48, 56)) == 2 and network_depth((256, 256)) == 4 and network_depth((12, 12)) == 1


def test_similarity_dice_and_weights():
    mono = RegistrationFingerprint(2, (128, 128), (1.0, 1.0), same_modality=True, labels_present=True,
                                   label_ids=(1, 2))
    multi = RegistrationFingerprint(2, (128, 128), (1.0, 1.0), same_modality=False, modalities=("CT", "MR"))
    assert similarity_rule(mono) == "ncc" and similarity_rule(multi) == "mi"
    assert dice_weight_rule(mono) == 1.0 and dice_weight_rule(multi) == 0.0
    assert smoothness_weight_rule("mse") < smoothness_weight_rule("ncc")
    plan = make_plan(mono)
    assert plan.loss.similarity == "ncc" and plan.loss.dice_weight == 1.0 and plan.num_labels == 3
    assert len(plan.network.channels) % 2 == 0
    div = required_divisor("voxelmorph", plan.network.channels)
    assert all(s % div == 0 for s in plan.data.working_shape)
    from medlearn.tasks.register.module import RegistrationSettings

    settings = RegistrationSettings.from_plan(plan)  # the rules' output builds the module's settings
    assert settings.num_labels == 3 and settings.channels == plan.network.channels
    assert make_plan(multi).loss.similarity == "mi" and not make_plan(multi).data.same_modality


def test_schedule_follows_the_dimensionality():
    two = make_plan(RegistrationFingerprint(2, (128, 128), (1.0, 1.0)))
    three = make_plan(RegistrationFingerprint(3, (160, 192, 224), (1.0, 1.0, 1.0)))
    assert two.train.batch_size == 4 and three.train.batch_size == 1
    assert three.train.max_minutes == 30 and two.train.max_minutes == 10
    assert two.inference.refine_steps > 0 and three.inference.refine_steps > 0


def test_the_plan_refuses_clashing_or_out_of_range_fields():
    plan = make_plan(RegistrationFingerprint(2, (64, 64), (1.0, 1.0), same_modality=False, modalities=("CT", "MR")))
    with pytest.raises(InputError, match="multi-modal"):
        plan.apply_overrides({"loss.similarity": "ncc"})
    with pytest.raises(InputError, match="demons assumes one modality"):
        plan.apply_overrides({"inference.method": "demons"})
    plan.apply_overrides({"network.name": "classical", "loss.similarity": "ncc"})  # no network: no loss to clash
    mono = make_plan(RegistrationFingerprint(2, (64, 64), (1.0, 1.0)))
    with pytest.raises(InputError, match="multiples of"):
        mono.apply_overrides({"data.working_shape": [30, 30]})
    with pytest.raises(InputError, match="has 3 values for 2D"):
        mono.apply_overrides({"data.working_shape": [32, 32, 32]})
    with pytest.raises(InputError, match="must be odd"):
        mono.apply_overrides({"loss.ncc_kernel": 6})
    with pytest.raises(InputError, match="inference.refine_fine_kernel.*must be odd"):
        mono.apply_overrides({"inference.refine_fine_kernel": 4})
    with pytest.raises(InputError, match="allowed: >= 1"):
        mono.apply_overrides({"train.batch_size": 0})
    with pytest.raises(InputError, match="power of 2"):
        mono.apply_overrides({"network.name": "bspline", "network.control_spacing": 6})
    assert RegistrationPlan.from_dict(mono.to_dict()).to_dict() == mono.to_dict()
