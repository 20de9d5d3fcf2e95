from pathlib import Path

import pytest

from medlearn.errors import InputError
from medlearn.plan import parse_overrides
from medlearn.tasks.classify.plan import ClassificationPlan, plan_classification


def _fp(shape: list[int], dims: int = 2, lo: float = 0, hi: float = 255) -> dict:
    return {"spatial_dims": dims, "shape": shape, "task": "binary", "labels": ["a", "b"], "channels": 1,
            "intensity": {"min": lo, "max": hi}}


def test_rules_follow_the_data() -> None:
    small = plan_classification(_fp([28, 28]), 500, [100, 400])
    assert small.model.network == "resnet18" and small.imbalance.strategy == "weighted_loss"
    assert small.imbalance.ratio == 4.0 and small.augment.level == "heavy"
    big = plan_classification(_fp([1024, 1024]), 5000, [2500, 2500])
    assert max(big.input_size) == 256 and big.data.resize == [256, 256] and big.imbalance.strategy == "none"
    assert big.train.batch_size < small.train.batch_size
    # small sets: a 5-member deep ensemble, ~400 steps per member; large sets: one model, ~1200 steps
    assert small.train.ensemble == 5 and small.train.max_epochs == 50  # 8 steps/epoch of 64 images
    assert big.train.ensemble == 1
    # ensemble members keep their final weights; a single model its best validation checkpoint
    assert small.final_weights and not big.final_weights
    assert small.flip_tta and not big.flip_tta  # small sets average flipped views at prediction...
    assert not small.apply_overrides({"augment.flip": False}).flip_tta  # ...only of flips the model learnt
    # both follow an overridden ensemble size, and explicit values win
    single = small.apply_overrides({"train.ensemble": 1})
    assert not single.final_weights and not single.flip_tta
    assert not small.apply_overrides({"train.checkpoint": "best_val"}).final_weights
    assert not small.apply_overrides({"tta": False}).flip_tta and big.apply_overrides({"tta": True}).flip_tta
    assert big.apply_overrides({"train.checkpoint": "final"}).final_weights
    ct = plan_classification(_fp([64, 64, 64], 3, -1024, 3000), 100, [10, 200])
    assert ct.data.normalization == "ct" and ct.model.network == "resnet10" and ct.imbalance.strategy == "oversample"


def test_overrides_from_cli_and_yaml(tmp_path: Path) -> None:
    plan = plan_classification(_fp([28, 28]), 500, [250, 250])
    (tmp_path / "p.yaml").write_text("train:\n  max_epochs: 7\nmodel:\n  network: smallcnn\n")
    changed = plan.apply_overrides(parse_overrides(["train.lr=0.1"], tmp_path / "p.yaml"))
    assert (changed.train.max_epochs, changed.model.network, changed.train.lr) == (7, "smallcnn", 0.1)
    changed.save(tmp_path / "plan.json")
    assert ClassificationPlan.load(tmp_path / "plan.json") == changed


@pytest.mark.parametrize("item,message", [("train.nope=1", "unknown plan field"), ("train.max_epochs=abc", "integer"),
                                          ("task=regression", "must be one of"), ("novalue", "key=value")])
def test_bad_overrides(item: str, message: str) -> None:
    plan = plan_classification(_fp([28, 28]), 500, [250, 250])
    with pytest.raises(InputError, match=message):
        plan.apply_overrides(parse_overrides([item]))


def test_a_plan_from_before_train_on_val_keeps_its_val_images_held_out() -> None:
    plan = plan_classification(_fp([28, 28]), 500, [150, 350])
    assert plan.train.ensemble > 1 and plan.learns_from_val  # a new small-data plan: auto, final weights
    old = plan.to_dict()
    del old["train"]["train_on_val"]
    assert not ClassificationPlan.from_dict(old).learns_from_val
