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
    assert small.network.name == "resnet18" and small.imbalance.strategy == "weighted_loss"
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
    assert ct.data.normalization == "ct" and ct.network.name == "resnet10" and ct.imbalance.strategy == "oversample"


def test_overrides_from_cli_and_yaml(tmp_path: Path) -> None:
    plan = plan_classification(_fp([28, 28]), 500, [250, 250])
    (tmp_path / "p.yaml").write_text("train:\n  max_epochs: 7\nnetwork:\n  name: smallcnn\n")
    changed = plan.apply_overrides(parse_overrides(["train.lr=0.1"], tmp_path / "p.yaml"))
    assert (changed.train.max_epochs, changed.network.name, changed.train.lr) == (7, "smallcnn", 0.1)
    changed.save(tmp_path / "plan.json")
    assert ClassificationPlan.load(tmp_path / "plan.json") == changed


@pytest.mark.parametrize("item,message", [("train.nope=1", "unknown plan field"), ("train.max_epochs=abc", "integer"),
                                          ("task=regression", "must be one of"), ("novalue", "key=value")])
def test_bad_overrides(item: str, message: str) -> None:
    plan = plan_classification(_fp([28, 28]), 500, [250, 250])
    with pytest.raises(InputError, match=message):
        plan.apply_overrides(parse_overrides([item]))


def test_every_field_declares_its_range_and_the_shared_names() -> None:
    rows = {row["field"]: row for row in ClassificationPlan.field_table()}
    for shared in ("train.seed", "train.max_epochs", "train.max_minutes", "train.patience", "train.ensemble",
                   "train.checkpoint", "train.devices", "train.precision", "network.name"):
        assert shared in rows, shared
    assert rows["train.ensemble"]["range"] == ">= 1, <= 64" and rows["train.lr"]["range"] == "> 0"
    plan = plan_classification(_fp([28, 28]), 500, [250, 250])
    with pytest.raises(InputError, match="'train.max_minutes' is 0.0; allowed: > 0"):
        plan.apply_overrides({"train.max_minutes": 0})
    with pytest.raises(InputError, match="allowed: >= 1"):
        plan.apply_overrides({"network.widths": [8, 0]})  # every number of a list is checked


def test_a_whole_section_cannot_be_replaced_by_a_scalar() -> None:
    plan = plan_classification(_fp([28, 28]), 500, [250, 250])
    with pytest.raises(InputError, match="unknown plan field 'train'"):
        plan.apply_overrides({"train": 5})
