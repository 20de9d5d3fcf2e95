"""``qsar``: the training hooks the engine's skeleton calls (see :mod:`medlearn.tasks.base`).

Members are the plan's models (:meth:`QSARTask.member_specs`): ``auto``'s candidates, trained side by side,
or one chosen model (``train.ensemble`` seeds for ``dnn`` / ``mpnn``). Features are computed once
(``prepare``) and travel to every member; each finished member is kept by the engine and reused on
``--resume``. Model choice uses the validation molecules only (:mod:`medlearn.tasks.qsar.selection`); the
test molecules are predicted once, after it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medlearn.chem.splits import split_molecules
from medlearn.data.splits import Splits
from medlearn.engine.members import MemberJob, MemberOutput, TrainedMember
from medlearn.engine.rundir import RunDirectory
from medlearn.errors import InputError
from medlearn.tasks.base import Echo, Task, TrainRequest
from medlearn.tasks.qsar.data import QSARDataset, load_evaluation_data, load_training_data, molecule_keys
from medlearn.tasks.qsar.features import Featurizer, MemberData
from medlearn.tasks.qsar.members import fit_member, member_from_artifact, predict_member
from medlearn.tasks.qsar.model import QSARModel
from medlearn.tasks.qsar.plan import NEURAL, QSARPlan, plan_qsar


class QSARTask(Task):
    name = "qsar"
    description = "QSAR: molecular property prediction from SMILES."
    model_class = QSARModel
    plan_class = QSARPlan
    split_unit = "molecule"

    # -- data ------------------------------------------------------------------------------------
    def load_data(self, source: str, options: dict[str, Any], *, overrides: dict[str, Any] | None = None,
                  model: QSARModel | None = None) -> QSARDataset:
        if model is not None:
            d = model.plan_.data
            return load_evaluation_data(source, options, d.smiles_column, d.targets, d.task_type)
        return load_training_data(source, options)

    def item_ids(self, data: QSARDataset) -> list[Any]:
        return [int(r) for r in data.table.rows]

    def split(self, data: QSARDataset, request: TrainRequest, seed: int) -> Splits:
        splits = split_molecules(data.table, str(request.option("split", "random")), seed, unit=self.split_unit)
        if not splits.mask("train").any():
            raise InputError(data.source, "the split leaves no training molecules", "use more data or another --split")
        return splits

    # -- plan ------------------------------------------------------------------------------------
    def make_plan(self, data: QSARDataset, splits: Splits, request: TrainRequest) -> QSARPlan:
        return plan_qsar(data.source, data.smiles_column, data.table.targets, data.task_type,
                         str(request.option("split", "random")), splits.sizes(), data.table.invalid_rows)

    def finish_plan(self, plan: QSARPlan, data: QSARDataset, splits: Splits, overrides: dict[str, Any],
                    echo: Echo) -> QSARPlan:
        if plan.network.name != "auto" and "network.candidates" not in overrides:
            plan.network.candidates = None  # auto's rule does not apply to a chosen model
        return plan

    # -- training ----------------------------------------------------------------------------------
    def member_specs(self, plan: QSARPlan) -> list[dict[str, Any]]:
        """``auto``: one member per candidate (the run's seed each, as each is a different model); ``dnn`` /
        ``mpnn``: ``train.ensemble`` seeds; a baseline: one member."""
        seed, name = plan.train.seed, plan.network.name
        if name == "auto":
            return [{"kind": kind, "seed": seed} for kind in plan.models()]
        if name in NEURAL:
            return [{"kind": name, "seed": seed + k} for k in range(plan.train.ensemble)]
        return [{"kind": name, "seed": seed}]

    def prepare(self, plan: QSARPlan, data: QSARDataset, splits: Splits, run: RunDirectory, request: TrainRequest,
                echo: Echo) -> MemberData:
        warning = data.invalid_warning()
        if warning:
            echo(f"warning: {warning}")
        return member_data(plan, data, splits, [s["kind"] for s in self.member_specs(plan)])

    @staticmethod
    def fit_member(job: MemberJob) -> MemberOutput:
        return fit_member(job)

    def assemble(self, plan: QSARPlan, payload: MemberData, members: list[TrainedMember], data: QSARDataset,
                 splits: Splits, run: RunDirectory) -> QSARModel:
        return assemble_model(plan, payload, members)

    # -- evaluation ----------------------------------------------------------------------------------
    def evaluate(self, model: QSARModel, data: QSARDataset, splits: Splits | None, n_boot: int) -> dict[str, Any]:
        from medlearn.tasks.qsar.evaluate import evaluate_model

        return evaluate_model(model, data, splits, n_boot)

    def report(self, path: Path, model: QSARModel, data: QSARDataset, splits: Splits | None,
               metrics: dict[str, Any], run: RunDirectory | None, title: str) -> None:
        from medlearn.tasks.qsar.evaluate import write_report

        write_report(path, model, data, metrics, run, title)

    def seen_in_training(self, model: QSARModel, data: QSARDataset) -> int:
        from medlearn.tasks.qsar.evaluate import seen_splits

        return int((seen_splits(model, data) != "").sum())

    def headline(self, metrics: dict[str, Any]) -> dict[str, Any]:
        from medlearn.tasks.qsar.evaluate import headline

        return headline(metrics)


def member_data(plan: QSARPlan, data: QSARDataset, splits: Splits, kinds: list[str]) -> MemberData:
    """Features of the train / val molecules in the views ``kinds`` read, the descriptor statistics fitted on
    train; featurised as one list, the whole table (so the evaluation's predictions hit the disk cache)."""
    featurizer = Featurizer.from_plan(plan.features)
    raw = featurizer.raw(data.table.smiles)
    train, val = splits.indices("train"), splits.indices("val")
    featurizer.fit(raw[train])
    views_train, views_val = featurizer.views(raw[train], kinds), featurizer.views(raw[val], kinds)
    smiles = data.table.smiles
    return MemberData(data.task_type, featurizer, data.y[train], data.y[val], [smiles[i] for i in train],
                      [smiles[i] for i in val], {k: (views_train[k], views_val[k]) for k in views_train})


def assemble_model(plan: QSARPlan, payload: MemberData, members: list[TrainedMember]) -> QSARModel:
    """The model from trained members: each scored on validation, then kept by
    :func:`~medlearn.tasks.qsar.selection.select_members`."""
    from medlearn.tasks.qsar.selection import select_members

    candidates = []
    for trained in members:
        kind = trained.spec["kind"]
        candidates.append(member_from_artifact(plan, payload.task_type, payload.n_tasks, kind,
                                               int(trained.spec.get("seed", plan.train.seed)), trained.load(),
                                               "net" if kind in NEURAL else "model", trained.summary))
    val_views = payload.val_views()
    predictions = [predict_member(c, payload.smiles_val, val_views, payload.featurizer) if len(payload.y_val) else
                   None for c in candidates]
    kept, selection = select_members(plan.network.name == "auto", payload.task_type, candidates, predictions,
                                     payload.y_val)
    seen = {"train": [k for k in molecule_keys(payload.smiles_train) if k],
            "val": [k for k in molecule_keys(payload.smiles_val) if k]}
    return QSARModel.from_parts(plan, kept, [c.describe() for c in candidates], selection, payload.featurizer,
                                payload.featurizer.bits(payload.smiles_train), seen)


TASK = QSARTask()
