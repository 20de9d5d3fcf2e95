"""``cpi``: the training hooks the engine's skeleton calls (see :mod:`medlearn.tasks.base`).

Pairs are split once: Davis/KIBA by their DeepDTA folds (setting 1: four training folds, the fifth,
``data.val_fold``, validates, the test fold is held out), a CSV by its ``split`` column (validation
carved from the train rows when it has none) or at random. Each member early-stops and keeps its best
epoch on the validation pairs; the test pairs are predicted once, after selection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlearn.data.splits import Splits, balanced_groups, random_fractions
from medlearn.engine.budget import StepTiming
from medlearn.engine.members import MemberJob, MemberOutput, TrainedMember
from medlearn.engine.rundir import RunDirectory
from medlearn.errors import InputError
from medlearn.tasks.base import Echo, Task, TrainRequest
from medlearn.tasks.cpi.data import (
    COLD_UNITS,
    InteractionTable,
    check_trainable,
    cold_groups,
    describe_invalid,
    load_interactions,
    pair_keys,
)
from medlearn.tasks.cpi.encode import AMINO_ACIDS, fit_kmer_projection, kmer_features, smiles_alphabet
from medlearn.tasks.cpi.model import (
    N_KMER,
    AffinityModel,
    build_network,
    encode_compounds,
    encode_proteins,
    n_kmer_features,
)
from medlearn.tasks.cpi.plan import CPIData, CPIPlan, plan_cpi, resolve_task

# Epochs a member needs, for the step timing: on Davis the default members early-stopped after 64-97
# epochs (benchmarks/results/cpi_deepdta_folds_davis.md), so ~100 epochs is what the defaults' evidence used.
EVIDENCE_EPOCHS = 100


class CPITask(Task):
    name = "cpi"
    description = "Compound-protein interaction: DeepDTA-style binding affinity (CI / MSE / r_m^2)."
    model_class = AffinityModel
    plan_class = CPIPlan
    split_unit = "pair"

    # -- data ------------------------------------------------------------------------------------
    def load_data(self, source: str, options: dict[str, Any], *, overrides: dict[str, Any] | None = None,
                  model: AffinityModel | None = None) -> InteractionTable:
        return load_interactions(source, options.get("dataset"), smiles_column=options.get("smiles_column"),
                                 sequence_column=options.get("sequence_column"),
                                 value_column=options.get("value_column"))

    def item_ids(self, data: InteractionTable) -> list[Any]:
        """CSV row numbers, or Davis/KIBA flat matrix positions (compound * n_proteins + protein)."""
        return [int(r) for r in data.rows]

    def split(self, data: InteractionTable, request: TrainRequest, seed: int) -> Splits:
        parts = pair_parts(data, split_settings(request), seed)
        splits = Splits.from_parts(self.item_ids(data), parts, seed, self.split_unit, data.source)
        sizes = splits.sizes()
        if sizes["train"] < 2 or sizes["val"] < 1:
            raise InputError(data.source, f"{sizes['train']} training and {sizes['val']} validation pair(s)",
                             "give more pairs (or a split column with train and val rows)")
        check_trainable(data, splits.indices("train"))
        return splits

    # -- plan ------------------------------------------------------------------------------------
    def make_plan(self, data: InteractionTable, splits: Splits, request: TrainRequest) -> CPIPlan:
        return plan_cpi(data.y[splits.indices("train")])

    def finish_plan(self, plan: CPIPlan, data: InteractionTable, splits: Splits, overrides: dict[str, Any],
                    echo: Echo) -> CPIPlan:
        y_train, y_val = data.y[splits.indices("train")], data.y[splits.indices("val")]
        plan.task = resolve_task(plan.task, y_train)  # `--set task=auto` given explicitly
        if plan.task == "classification":
            if not np.isin(y_train, (0.0, 1.0)).all():
                raise InputError(data.source, "task=classification needs 0/1 values", "use task=regression")
            if len(np.unique(y_val)) < 2:  # the validation AUC that selects each member's epoch is undefined
                raise InputError(data.source, "the validation pairs hold one class only, so the validation AUC "
                                 "that selects the checkpoints is undefined", "give val pairs with 0 and 1 values")
        return plan

    def step_timing(self, plan: CPIPlan, data: InteractionTable, splits: Splits) -> StepTiming:
        """A step costs what the shapes cost, so it is timed on random inputs of this data's sizes. The
        schedule is epochs (early stopping, ~EVIDENCE_EPOCHS of them), the budget only a guard: fixed steps."""
        train = splits.indices("train")
        steps = -(-len(train) // plan.train.batch_size) * min(EVIDENCE_EPOCHS, plan.train.max_epochs)
        return StepTiming(lambda: _timing_module(plan, data, train), _timing_batch(plan, data), steps)

    # -- training ----------------------------------------------------------------------------------
    def prepare(self, plan: CPIPlan, data: InteractionTable, splits: Splits, run: RunDirectory,
                request: TrainRequest, echo: Echo) -> dict[str, Any]:
        note = describe_invalid(data)
        if note:
            echo(note)
        train, val = splits.indices("train"), splits.indices("val")
        y_train = data.y[train]
        regression = plan.task == "regression"
        alphabet = smiles_alphabet(data.smiles)
        projection = None
        if plan.network.protein == "kmer" and plan.network.kmer_pca > 0:  # unsupervised, training proteins only
            proteins = np.unique(data.protein[train])
            projection = fit_kmer_projection(kmer_features([data.sequences[i] for i in proteins]),
                                             plan.network.kmer_pca)
        echo(f"{len(train)} training / {len(val)} validation pairs, {len(data.smiles)} compounds, "
             f"{len(data.sequences)} proteins, task {plan.task}, {plan.train.ensemble} model(s)")
        return {"compounds": encode_compounds(plan, data.smiles, alphabet),
                "proteins": encode_proteins(plan, data.sequences, projection),
                "drug": data.drug, "protein": data.protein, "y": data.y, "train": train, "val": val,
                "y_mean": float(y_train.mean()) if regression else 0.0,
                "y_std": float(y_train.std() or 1.0) if regression else 1.0,
                "alphabet": alphabet, "kmer_projection": projection}

    @staticmethod
    def fit_member(job: MemberJob) -> MemberOutput:
        """One member (seed ``train.seed + k``): early stopping and its best epoch on the validation pairs."""
        from torch.utils.data import DataLoader, TensorDataset

        from medlearn.tasks.cpi.module import AffinityModule, ProteinGroupedBatchSampler, monitor_for

        plan: CPIPlan = job.plan
        t, pay = plan.train, job.payload
        net = build_network(plan, len(pay["alphabet"]), n_kmer_features(pay["kmer_projection"]))
        module = AffinityModule(net, torch.as_tensor(pay["compounds"]), torch.as_tensor(pay["proteins"]), plan.task,
                                pay["y_mean"], pay["y_std"], t.lr, t.weight_decay, t.lr_schedule, t.lr_patience)

        def pairs(idx: np.ndarray) -> TensorDataset:
            return TensorDataset(torch.as_tensor(pay["drug"][idx]), torch.as_tensor(pay["protein"][idx]),
                                 torch.as_tensor(pay["y"][idx], dtype=torch.float32))

        sampler = ProteinGroupedBatchSampler(pay["protein"][pay["train"]], t.batch_size, t.protein_mix, job.seed)
        train_loader = DataLoader(pairs(pay["train"]), batch_sampler=sampler)
        val_loader = DataLoader(pairs(pay["val"]), batch_size=4096)
        monitor, mode = monitor_for(plan.task)
        trainer = job.trainer(monitor, mode, t.patience if t.checkpoint == "best_val" else None)
        job.fit(trainer, module, train_loader, val_loader)
        if t.checkpoint == "best_val":
            best = job.best_state(trainer)
            if best is not None:
                module.load_state_dict(best)
        score = trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
        return MemberOutput({"net": module.net.eval().state_dict()},
                            summary={"epochs": int(trainer.current_epoch), "steps": int(trainer.global_step),
                                     "monitor": monitor, "best_val": None if score is None else float(score)})

    def assemble(self, plan: CPIPlan, payload: dict[str, Any], members: list[TrainedMember],
                 data: InteractionTable, splits: Splits, run: RunDirectory) -> AffinityModel:
        n_kmer = n_kmer_features(payload["kmer_projection"])
        nets = []
        for member in members:
            net = build_network(plan, len(payload["alphabet"]), n_kmer)
            net.load_state_dict(member.load().tensors["net"])
            nets.append(net.eval())
        seen = pair_keys(data, splits.indices("train", "val"))  # trained on, or selected on
        return AffinityModel.from_parts(plan, nets, payload["alphabet"], payload["y_mean"], payload["y_std"],
                                        payload["kmer_projection"], [m.summary for m in members], seen)

    # -- evaluation ----------------------------------------------------------------------------------
    def evaluate(self, model: AffinityModel, data: InteractionTable, splits: Splits | None,
                 n_boot: int) -> dict[str, Any]:
        from medlearn.tasks.cpi.evaluate import evaluate_model

        return evaluate_model(model, data, splits, n_boot)

    def report(self, path: Path, model: AffinityModel, data: InteractionTable, splits: Splits | None,
               metrics: dict[str, Any], run: RunDirectory | None, title: str) -> None:
        from medlearn.tasks.cpi.evaluate import write_report

        write_report(path, model, data, metrics, run, title)

    def seen_in_training(self, model: AffinityModel, data: InteractionTable) -> int:
        from medlearn.tasks.cpi.evaluate import evaluation_parts

        idx = np.concatenate(list(evaluation_parts(data, None).values()))
        return int(np.isin(pair_keys(data, idx), model.seen_pairs_).sum())

    def headline(self, metrics: dict[str, Any]) -> dict[str, Any]:
        from medlearn.tasks.cpi.evaluate import headline

        return headline(metrics)


def split_settings(request: TrainRequest) -> CPIData:
    """The plan's ``data`` section with the request's overrides: the split is made before the plan."""
    ours = {k: v for k, v in request.plan_overrides.items() if k.startswith("data.")}
    return CPIPlan().apply_overrides(ours).data


def pair_parts(table: InteractionTable, settings: CPIData, seed: int) -> dict[str, np.ndarray]:
    """train/val/test pair positions (for :meth:`Splits.from_parts`).

    Davis/KIBA: validation = DeepDTA training fold ``data.val_fold``, training = the other four, test =
    the test fold. CSV: its ``split`` column if present (validation carved at random from the train rows
    when it has none), else a seeded random split of the pairs (:func:`~medlearn.data.splits.random_fractions`).
    ``data.split`` cold_drug / cold_protein: whole compounds / proteins per part
    (:func:`~medlearn.data.splits.balanced_groups`), on Davis/KIBA instead of the DeepDTA folds.
    """
    f = table.folds
    if settings.split != "random":
        return _cold_parts(table, settings, seed)
    if "fold0" in f and "test" in f:
        n_folds = sum(k.startswith("fold") for k in f)
        if not 0 <= settings.val_fold < n_folds:
            raise InputError("--set data.val_fold", f"must be in 0..{n_folds - 1}, got {settings.val_fold}")
        train = np.concatenate([f[f"fold{k}"] for k in range(n_folds) if k != settings.val_fold])
        return {"train": train, "val": f[f"fold{settings.val_fold}"], "test": f["test"]}
    if "train" in f:
        train, val = f["train"], f.get("val")
        if val is None:  # only the val part of the cut is used: the rest (train, "test") stays training
            cut = random_fractions(len(train), seed, (1 - settings.val_fraction, settings.val_fraction, 0.0))
            train, val = np.sort(np.concatenate([train[cut["train"]], train[cut["test"]]])), train[cut["val"]]
        return {"train": train, "val": val, "test": f.get("test", np.zeros(0, dtype=int))}
    return random_fractions(len(table), seed, _fractions(settings))


def _fractions(settings: CPIData) -> tuple[float, float, float]:
    """(train, val, test) shares of the pairs from ``data.val_fraction`` / ``data.test_fraction``."""
    val, test = settings.val_fraction, settings.test_fraction
    if val + test >= 1:
        raise InputError("--set data.val_fraction", f"val {val:g} + test {test:g} leave no training pairs")
    return 1 - val - test, val, test


def _cold_parts(table: InteractionTable, settings: CPIData, seed: int) -> dict[str, np.ndarray]:
    unit = COLD_UNITS[settings.split]
    if "train" in table.folds:
        raise InputError(table.source, f"data.split={settings.split} would ignore the CSV's split column",
                         "drop the split column, or keep data.split=random")
    fractions = _fractions(settings)
    groups = cold_groups(table, settings.split)
    parts = balanced_groups(groups, seed, fractions)
    for part in ("train", "val") + (("test",) if fractions[2] > 0 else ()):
        if len(parts[part]) == 0:
            raise InputError(table.source, f"a {settings.split} split left no {part} pairs: "
                             f"{len(np.unique(groups))} {unit} are too few for these fractions",
                             "give more " + unit + " or raise data.val_fraction / data.test_fraction")
    return parts


def _timing_module(plan: CPIPlan, data: InteractionTable, train: np.ndarray) -> Any:
    from medlearn.tasks.cpi.module import AffinityModule

    n = plan.network
    alphabet = smiles_alphabet(data.smiles)
    n_kmer = N_KMER
    if n.protein == "kmer" and n.kmer_pca > 0:  # the width fit_kmer_projection will give
        n_kmer = max(1, min(n.kmer_pca, len(np.unique(data.protein[train])) - 1, N_KMER))
    n_compounds, n_proteins = len(data.smiles), len(data.sequences)
    compounds = (torch.rand(n_compounds, n.n_bits) if n.compound == "fingerprint"
                 else torch.randint(1, len(alphabet) + 2, (n_compounds, n.max_smiles_len)))
    proteins = (torch.rand(n_proteins, n_kmer) if n.protein == "kmer"
                else torch.randint(1, len(AMINO_ACIDS) + 2, (n_proteins, n.max_protein_len)))
    t = plan.train
    return AffinityModule(build_network(plan, len(alphabet), n_kmer), compounds, proteins, plan.task,
                          lr=t.lr, weight_decay=t.weight_decay, lr_schedule=t.lr_schedule, lr_patience=t.lr_patience)


def _timing_batch(plan: CPIPlan, data: InteractionTable) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random batch of the plan's size: compound and protein indices, values."""
    b = plan.train.batch_size
    return (torch.randint(0, len(data.smiles), (b,)), torch.randint(0, len(data.sequences), (b,)), torch.rand(b))


TASK = CPITask()
