"""End-to-end classification on tiny synthetic data (learnable in a few epochs on CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from medlearn.cli.main import main
from medlearn.engine.parallel import available_cores
from medlearn.io.artifact import load_artifact
from medlearn.tasks.classify.model import Classifier
from medlearn.tasks.classify.outputs import TaskLoss, logits_to_proba
from medlearn.tasks.classify.patient import PatientAggregator
from tests.conftest import FAST, cli_exit_code


def run_cli(args: list[str]) -> None:
    code = cli_exit_code(args)
    assert code == 0, f"exit {code}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tests.conftest import make_images

    root = tmp_path_factory.mktemp("clf")
    arrays = {}
    for k, (split, n) in enumerate((("train", 64), ("val", 24), ("test", 24))):
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = make_images(n, seed=k)
    data = root / "tiny.npz"
    np.savez(data, **arrays)
    run_cli(["classify", "train", str(data), "-o", str(root / "run"), *FAST])
    return data, root / "run"


def test_train_writes_the_run_directory(trained: tuple[Path, Path]) -> None:
    _, run = trained
    for name in ("plan.json", "config.yaml", "model.pt", "metrics.json", "report.html", "versions.json",
                 "splits.json", "logs/metrics.csv", "checkpoints/last.ckpt"):
        assert (run / name).exists(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["auc"]["value"] > 0.9  # the bright corner is trivially learnable
    lo, hi = metrics["test"]["auc"]["ci95"]
    assert lo <= metrics["test"]["auc"]["value"] <= hi
    assert {"sensitivity", "specificity", "fpr", "fnr", "balanced_accuracy", "ece"} <= set(metrics["test"])
    assert metrics["training"]["imbalance_ratio"] == 1.0 and metrics["task"] == "classify"
    assert metrics["training"]["images_trained_on"] == 64  # one best-validation model: val stays held out
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64") >= 4 and "Grad-CAM" in html
    splits = json.loads((run / "splits.json").read_text())
    assert len(splits["test"]) == 24 and len(splits["val"]) == 24


def test_finished_run_is_not_overwritten(trained: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    data, run = trained
    with pytest.raises(SystemExit) as exc:
        main(["classify", "train", str(data), "-o", str(run), *FAST])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "finished run" in err[0] and "--force" in err[0]


def test_predict_evaluate_explain(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data, run = trained
    run_cli(["classify", "predict", str(run), str(data), "-o", str(tmp_path / "p.csv")])
    import pandas as pd

    table = pd.read_csv(tmp_path / "p.csv")
    assert len(table) == 112 and {"p_0", "p_1", "predicted"} <= set(table.columns)
    np.testing.assert_allclose(table[["p_0", "p_1"]].sum(1), 1.0, atol=1e-5)
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.is_file()}
    run_cli(["classify", "evaluate", str(run), str(data), "--name", "again", "--bootstrap", "20"])
    ev = json.loads((run / "evaluations" / "again" / "metrics.json").read_text())
    saved = json.loads((run / "metrics.json").read_text())
    assert ev["test"]["auc"]["value"] == pytest.approx(saved["test"]["auc"]["value"])
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.is_file()} == before  # run files untouched
    # the same file the model trained on: every train/val image is said to be seen
    assert ev["seen_in_training"] == {"items": 64 + 24, "of": 112}
    assert "optimistic" in (run / "evaluations" / "again" / "report.html").read_text()
    run_cli(["classify", "explain", str(run), str(data), "-o", str(tmp_path / "ex"), "--limit", "3"])
    assert len(list((tmp_path / "ex").glob("*.png"))) == 3  # image and map side by side, with a colour bar
    run_cli(["classify", "explain", str(run), str(data), "-o", str(tmp_path / "occ"), "--limit", "1",
             "--method", "occlusion"])
    assert len(list((tmp_path / "occ").glob("*occlusion*.png"))) == 1


def test_api_predicts_like_the_cli(trained: tuple[Path, Path], tmp_path: Path) -> None:
    import pandas as pd

    data, run = trained
    run_cli(["classify", "predict", str(run), str(data), "-o", str(tmp_path / "p.csv")])
    table = pd.read_csv(tmp_path / "p.csv")
    cli = table[["p_0", "p_1"]].to_numpy()
    arrays = np.load(data)
    x = np.concatenate([arrays[f"{split}_images"] for split in ("train", "val", "test")])
    clf = Classifier.load(run)
    proba = clf.predict_proba(np.swapaxes(x, 1, 2)[:, None].astype(np.float32))
    np.testing.assert_allclose(proba, cli, atol=1e-4)  # the CSV rounds
    predicted = clf.predict(np.swapaxes(x, 1, 2)[:, None].astype(np.float32))
    assert [str(p) for p in predicted] == table["predicted"].astype(str).tolist()


def test_init_from_replaces_the_head(trained: tuple[Path, Path], tmp_path: Path, tiny_csv: Path) -> None:
    _, run = trained
    run_cli(["classify", "train", str(tiny_csv), "-o", str(tmp_path / "ft"), "--init-from", str(run),
             *FAST, "--set", "train.max_epochs=1"])  # the later --set wins
    source = load_artifact(run / "model.pt").tensors["net"]
    # fine-tuning for one epoch from the source backbone: first conv starts equal, so stays close
    tuned = load_artifact(tmp_path / "ft" / "model.pt").tensors["net"]
    key = next(k for k in source if k.startswith("backbone.") and k.endswith("weight"))
    assert torch.allclose(source[key], tuned[key], atol=0.2) and not torch.equal(source[key], tuned[key])


def test_patient_level_with_gru(tiny_csv: Path, tmp_path: Path) -> None:
    run_cli(["classify", "train", str(tiny_csv), "-o", str(tmp_path / "pat"), *FAST,
             "--set", "patient.aggregation=gru", "--set", "patient.epochs=5"])
    metrics = json.loads((tmp_path / "pat" / "metrics.json").read_text())
    assert metrics["patient"]["aggregation"] == "gru" and "test" in metrics["patient"]
    splits = json.loads((tmp_path / "pat" / "splits.json").read_text())
    import pandas as pd

    table = pd.read_csv(tiny_csv)
    owner = {row.image: row.patient_id for row in table.itertuples()}
    seen: dict[str, str] = {}
    for split in ("train", "val", "test"):
        for image in splits[split]:
            pid = owner[str(Path(image).relative_to(tiny_csv.parent))]
            assert seen.setdefault(pid, split) == split
    run_cli(["classify", "predict", str(tmp_path / "pat"), str(tiny_csv), "-o", str(tmp_path / "pp.csv")])
    assert (tmp_path / "pp_patients.csv").exists()


class _Crash(Callback):
    def on_train_epoch_start(self, trainer: object, module: object) -> None:
        if trainer.current_epoch == 2:
            raise RuntimeError("simulated power cut")


def test_resume_continues_an_interrupted_run(tiny_npz: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture) -> None:
    import medlearn.engine.trainer as trainer_module

    original = trainer_module.build_trainer
    monkeypatch.setattr(trainer_module, "build_trainer",
                        lambda *a, **k: original(*a, **{**k, "extra_callbacks": [*k["extra_callbacks"], _Crash()]}))
    run = tmp_path / "r"
    with pytest.raises(RuntimeError, match="power cut"):
        main(["classify", "train", str(tiny_npz), "-o", str(run), *FAST])
    assert not (run / "metrics.json").exists() and (run / "checkpoints" / "last.ckpt").exists()
    with pytest.raises(SystemExit) as exc:  # an unfinished run is neither finished nor silently restarted
        main(["classify", "train", str(tiny_npz), "-o", str(run), *FAST])
    assert exc.value.code == 2 and "--resume" in capsys.readouterr().err
    monkeypatch.setattr(trainer_module, "build_trainer", original)
    run_cli(["classify", "train", str(tiny_npz), "-o", str(run), "--resume", *FAST])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["training"]["per_member"][0]["epochs"] == 4
    epochs = pd.read_csv(run / "logs" / "metrics.csv")["epoch"].dropna().astype(int)
    assert sorted(set(epochs)) == [0, 1, 2, 3]  # rows of the first attempt kept, epochs 2-3 added


def test_pretrain_then_finetune(tiny_npz: Path, tmp_path: Path) -> None:
    run_cli(["classify", "pretrain", str(tiny_npz), "-o", str(tmp_path / "ssl"), "--epochs", "1",
             "--set", "network.name=smallcnn", "--set", "network.widths=[8,16]", "--set", "train.batch_size=16"])
    assert json.loads((tmp_path / "ssl" / "metrics.json").read_text())["pretraining"]["method"] == "simclr"
    run_cli(["classify", "train", str(tiny_npz), "-o", str(tmp_path / "ft"), "--init-from", str(tmp_path / "ssl"),
             *FAST])
    assert (tmp_path / "ft" / "metrics.json").exists()


def test_ensemble_of_two_members(tiny_npz: Path, tmp_path: Path) -> None:
    run_cli(["classify", "train", str(tiny_npz), "-o", str(tmp_path / "ens"), *FAST, "--set", "train.ensemble=2",
             "--set", "train.max_epochs=2"])
    metrics = json.loads((tmp_path / "ens" / "metrics.json").read_text())
    assert metrics["training"]["members"] == 2 and len(metrics["training"]["per_member"]) == 2
    assert metrics["training"]["members_side_by_side"] == min(2, available_cores())
    clf = Classifier.load(tmp_path / "ens")
    assert len(clf.net_.members) == 2
    members = [m for m in clf.net_.members]
    assert not torch.equal(next(members[0].parameters()), next(members[1].parameters()))  # different seeds
    assert (tmp_path / "ens" / "logs" / "member1" / "metrics.csv").exists()


def test_final_checkpoint_runs_the_whole_schedule(tiny_npz: Path, tmp_path: Path) -> None:
    run = tmp_path / "final"
    run_cli(["classify", "train", str(tiny_npz), "-o", str(run), *FAST, "--set", "train.checkpoint=final",
             "--set", "train.patience=1", "--set", "train.max_epochs=4", "--set", "train.ema_decay=null"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert [m["epochs"] for m in metrics["training"]["per_member"]] == [4]  # patience ignored: no early stopping
    kept = load_artifact(run / "checkpoints" / "member.pt", kind="member").tensors["net"]
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    for name, tensor in kept.items():
        torch.testing.assert_close(tensor, last[f"net.{name}"])


def test_ordinal_probabilities_and_loss() -> None:
    logits = torch.tensor([[5.0, 5.0], [-5.0, -5.0], [5.0, -5.0]])
    proba = logits_to_proba(logits, "ordinal")
    assert proba.shape == (3, 3)
    np.testing.assert_allclose(proba.sum(1).numpy(), 1.0, atol=1e-6)
    assert proba.argmax(1).tolist() == [2, 0, 1]
    loss = TaskLoss("ordinal")
    assert loss(logits, torch.tensor([2, 0, 1])) < loss(logits, torch.tensor([0, 2, 0]))


def test_multilabel_loss_ignores_missing() -> None:
    loss = TaskLoss("multilabel")
    logits = torch.tensor([[10.0, -10.0]])
    assert loss(logits, torch.tensor([[1.0, float("nan")]])) < 1e-3


@pytest.mark.parametrize("mode", ["learned_mean", "learned_max", "gru"])
def test_patient_aggregator_masks_padding(mode: str) -> None:
    torch.manual_seed(0)
    agg = PatientAggregator(4, 2, mode)
    bag = torch.randn(1, 3, 4)
    padded = torch.cat([bag, torch.full((1, 2, 4), 99.0)], dim=1)
    a = agg(bag, torch.tensor([3]))
    b = agg(padded, torch.tensor([3]))
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("learns_from_val", [False, True])
def test_patient_aggregator_follows_the_image_model_on_val(learns_from_val: bool,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Selected on the val patients only while they are unseen; else trained on train + val, final weights."""
    from types import SimpleNamespace

    import medlearn.imaging.embed as embed_module
    import medlearn.tasks.classify.patient as patient_module
    from medlearn.data.splits import Splits
    from medlearn.tasks.classify import task as task_module

    calls = []
    monkeypatch.setattr(embed_module, "embed_images", lambda net, images: images)
    monkeypatch.setattr(patient_module, "fit_patient_aggregator", lambda fit, val, *a: calls.append((fit, val)))
    splits = Splits(list(range(8)), np.array(["train"] * 4 + ["val"] * 2 + ["test"] * 2))
    data = SimpleNamespace(labels=np.array([0, 1, 0, 1, 1, 0, 1, 0]), patient_ids=np.array(list("aabbccdd")))
    plan = SimpleNamespace(learns_from_val=learns_from_val, task="binary", num_outputs=2,
                           train=SimpleNamespace(seed=0), patient=SimpleNamespace(aggregation="learned_mean", epochs=3))
    task_module._fit_aggregator(None, plan, data, np.eye(8, dtype=np.float32), splits)
    (fit_bags, _, _), val = calls[0]
    assert len(fit_bags) == (3 if learns_from_val else 2)  # patients a, b (+ c from val); never d (test)
    assert (val is None) == learns_from_val


def test_patient_aggregator_without_val_keeps_its_final_weights() -> None:
    from medlearn.tasks.classify.patient import fit_patient_aggregator

    bags, lengths, labels = torch.randn(6, 2, 4), torch.full((6,), 2), np.array([0, 1] * 3)
    for epochs in (1, 2):
        agg = fit_patient_aggregator((bags, lengths, labels), None, "binary", 2, "learned_mean", epochs=epochs,
                                     seed=0)
        weights = torch.cat([p.detach().flatten() for p in agg.parameters()])
        if epochs == 1:
            after_one = weights
    assert not torch.equal(after_one, weights)  # the second epoch's update is kept, nothing is selected


def _volume_table(folder: Path, n: int = 24) -> Path:
    import nibabel as nib

    from tests.conftest import make_images

    x, y = make_images(n, size=8, seed=5)
    rows = ["image,label"]
    for i in range(n):
        vol = np.repeat(x[i][:, :, None], 8, axis=2).astype(np.float32)
        nib.save(nib.Nifti1Image(vol, np.diag([1.5, 1.5, 3.0, 1.0])), str(folder / f"v{i}.nii.gz"))
        rows.append(f"v{i}.nii.gz,{y[i]}")
    (folder / "vols.csv").write_text("\n".join(rows) + "\n")
    return folder / "vols.csv"


def test_3d_volumes_train_and_predict(tmp_path: Path) -> None:
    table = _volume_table(tmp_path)
    run_cli(["classify", "train", str(table), "-o", str(tmp_path / "r3d"), *FAST, "--set", "train.max_epochs=2"])
    plan = json.loads((tmp_path / "r3d" / "plan.json").read_text())
    assert plan["spatial_dims"] == 3 and plan["input_size"] == [8, 8, 8]
    run_cli(["classify", "predict", str(tmp_path / "r3d"), str(tmp_path / "v0.nii.gz"), "-o", str(tmp_path / "p.csv")])
    assert len(pd.read_csv(tmp_path / "p.csv")) == 1
    run_cli(["classify", "explain", str(tmp_path / "r3d"), str(tmp_path / "v1.nii.gz"), "-o", str(tmp_path / "ex")])
    assert len(list((tmp_path / "ex").glob("*.png"))) == 1


def test_multilabel_and_ordinal_tasks(tmp_path: Path) -> None:
    from PIL import Image

    from tests.conftest import make_images

    x, y = make_images(32, seed=7)
    rows_ml, rows_ord = ["image,corner_a,corner_b"], ["image,grade"]
    for i in range(len(x)):
        Image.fromarray(x[i]).save(tmp_path / f"i{i}.png")
        rows_ml.append(f"i{i}.png,{y[i]},{'' if i % 5 == 0 else 1 - y[i]}")
        rows_ord.append(f"i{i}.png,{['low', 'mid', 'high'][i % 3]}")
    (tmp_path / "ml.csv").write_text("\n".join(rows_ml) + "\n")
    (tmp_path / "ord.csv").write_text("\n".join(rows_ord) + "\n")
    run_cli(["classify", "train", str(tmp_path / "ml.csv"), "-o", str(tmp_path / "ml"), *FAST,
             "--set", "train.max_epochs=2"])
    ml = json.loads((tmp_path / "ml" / "metrics.json").read_text())
    assert ml["classification"] == "multilabel" and ml["label_names"] == ["corner_a", "corner_b"]
    run_cli(["classify", "train", str(tmp_path / "ord.csv"), "-o", str(tmp_path / "ord"), *FAST, "--task", "ordinal",
             "--classes", "low,mid,high", "--set", "train.max_epochs=2"])
    ordinal = json.loads((tmp_path / "ord" / "metrics.json").read_text())
    assert ordinal["classification"] == "ordinal" and "qwk" in ordinal["test"] and "mae" in ordinal["test"]
    assert json.loads((tmp_path / "ord" / "plan.json").read_text())["label_names"] == ["low", "mid", "high"]


def test_flip_tta_averages_the_four_training_flips() -> None:
    from medlearn.tasks.classify.predict import flip_views, predict_proba

    x = torch.arange(2 * 1 * 3 * 4, dtype=torch.float32).reshape(2, 1, 3, 4)
    views = flip_views(x)
    assert len(views) == 4 and len({tuple(v.flatten().tolist()) for v in views}) == 4
    assert len(flip_views(torch.zeros(2, 1, 3, 4, 5))) == 4  # 3D: flips of the first two axes only

    class TopLeft(torch.nn.Module):  # a net that sees one corner pixel: not flip-invariant
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return torch.stack([t[:, 0, 0, 0], -t[:, 0, 0, 0]], 1)

    images = x.numpy()
    plain = predict_proba(TopLeft(), images, "multiclass")
    averaged = predict_proba(TopLeft(), images, "multiclass", tta=True)
    expected = np.mean([predict_proba(TopLeft(), v.numpy(), "multiclass") for v in views], 0)
    assert np.allclose(averaged, expected) and not np.allclose(averaged, plain)


def test_mixup_trains_on_convex_mixtures_of_two_images_and_of_their_losses() -> None:
    from medlearn.tasks.classify.module import ClassificationModule
    from medlearn.tasks.classify.plan import ClassificationPlan

    plan = ClassificationPlan(task="binary", label_names=["a", "b"], input_size=[8, 8])
    plan.network.name, plan.network.widths = "resnet18", [4, 8, 8, 8]
    plan.augment.mixup = 0.4
    module = ClassificationModule(plan.to_dict())
    module.log = lambda *a, **k: None  # no Trainer attached
    seen: list[torch.Tensor] = []
    module.net.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
    x = torch.stack([torch.zeros(1, 8, 8), torch.ones(1, 8, 8)])  # image 0 all 0, image 1 all 1
    y = torch.tensor([0, 1])
    for _ in range(20):
        loss = module.training_step((x, y), 0)
        assert torch.isfinite(loss)
    mixed = [s[:, 0, 0, 0] for s in seen]  # each image constant, so one value per image: its weight
    assert all(torch.allclose(s[:, 0].flatten(), s[:, 0, 0, 0].repeat_interleave(64)) for s in seen)
    # each mixture pairs an image with a partner: weights lam on one and 1 - lam on the other
    assert all(torch.isclose(m.sum(), torch.tensor(1.0)) for m in mixed)
    assert any(0.01 < float(m.min()) and float(m.max()) < 0.99 for m in mixed)
    plan.augment.mixup = 0.0
    plain = ClassificationModule(plan.to_dict())
    plain.log = module.log
    plain.net.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
    plain.training_step((x, y), 0)
    assert torch.equal(seen[-1], x)


def test_final_weights_learn_from_the_val_images_unless_told_not_to(tiny_npz: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    common = [*FAST, "--set", "train.max_epochs=2", "--set", "train.ema_decay=null"]
    final = ["--set", "train.checkpoint=final"]
    run_cli(["classify", "train", str(tiny_npz), "-o", str(tmp_path / "auto"), *common, *final])
    assert "val (trained on)" in capsys.readouterr().out  # the printed headline does not pass it off as unseen
    run_cli(["classify", "train", str(tiny_npz), "-o", str(tmp_path / "held"), *common, *final,
             "--set", "train.train_on_val=false"])
    auto = json.loads((tmp_path / "auto" / "metrics.json").read_text())
    held = json.loads((tmp_path / "held" / "metrics.json").read_text())
    assert auto["training"]["images_trained_on"] == 48 + 16  # train.train_on_val=auto with final weights
    assert held["training"]["images_trained_on"] == 48
    assert auto["training"]["val_seen_in_training"] and not held["training"]["val_seen_in_training"]
    assert "also learnt from the val images" in (tmp_path / "auto" / "report.html").read_text()
    assert "Selection used val only" in (tmp_path / "held" / "report.html").read_text()
    # a best-validation checkpoint would be selected on images it trained on: refused
    code = cli_exit_code(["classify", "train", str(tiny_npz), "-o", str(tmp_path / "bad"), *common,
                          "--set", "train.checkpoint=best_val", "--set", "train.train_on_val=true"])
    assert code == 2


@pytest.mark.parametrize("epochs", [1, 2, 10])
def test_short_schedules_train(epochs: int, tmp_path: Path) -> None:
    """One batch per epoch (batch >= the training images): 1, 2 and 10 steps in all must train."""
    from tests.conftest import make_images

    arrays = {}
    for k, (split, n) in enumerate((("train", 12), ("val", 8), ("test", 8))):
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = make_images(n, seed=k)
    np.savez(tmp_path / "few.npz", **arrays)
    run_cli(["classify", "train", str(tmp_path / "few.npz"), "-o", str(tmp_path / "r"), *FAST,
             "--set", f"train.max_epochs={epochs}", "--set", "train.batch_size=64"])
