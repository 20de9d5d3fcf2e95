"""One QSAR member: trained (:func:`fit_member`, in this process or a worker), rebuilt from its weights
or estimator (:func:`member_from_artifact`), and predicted (:func:`predict_member`).

A member is one model of the plan: an ``auto`` candidate, one seed of a ``dnn`` / ``mpnn`` ensemble, or a
single baseline. The neural models train through the engine's trainer (``job.trainer`` / ``job.fit``):
early stopping on ``val_score`` after ``train.patience`` epochs and the best epoch on validation kept
(``train.checkpoint=best_val``), a stop at the first non-finite loss, checkpoints that ``--resume``
continues. The baselines are scikit-learn estimators (:mod:`medlearn.tasks.qsar.baselines`), stored with
skops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from medlearn.chem.graph import graphs_from_smiles
from medlearn.engine.members import MemberJob, MemberOutput
from medlearn.tasks.qsar.features import VIEW, Featurizer, MemberData
from medlearn.tasks.qsar.module import (
    ArrayDataset,
    GraphDataset,
    QSARModule,
    make_loader,
    predict_module,
    primary_metric,
    target_stats,
)
from medlearn.tasks.qsar.nets import DMPNN, MultitaskMLP
from medlearn.tasks.qsar.plan import NEURAL, QSARPlan

if TYPE_CHECKING:
    from medlearn.io.artifact import Artifact


@dataclass
class QSARMember:
    """A fitted member: its model kind, seed, predictor (a :class:`QSARModule` or a
    :class:`~medlearn.tasks.qsar.baselines.MaskedMultiTask`), its network's input sizes, validation score."""

    kind: str
    seed: int
    predictor: Any
    dims: dict[str, int] = field(default_factory=dict)
    val_score: float | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        keep = ("epochs", "best_epoch", "steps", "seconds")
        return {"kind": self.kind, "seed": self.seed, "val_score": self.val_score,
                **{k: self.summary[k] for k in keep if k in self.summary}}


# -- training -----------------------------------------------------------------------------------------
def fit_member(job: MemberJob) -> MemberOutput:
    """Train the member ``job.spec`` (``{"kind", "seed"}``) on ``job.payload`` (a :class:`MemberData`)."""
    kind = job.spec["kind"]
    output = fit_neural(job, kind) if kind in NEURAL else fit_baseline(job, kind)
    output.summary = {"kind": kind, **output.summary}
    return output


def build_network(kind: str, plan: QSARPlan, dims: dict[str, int], n_tasks: int) -> torch.nn.Module:
    """The plan's network for ``kind`` (``dims``: ``in_dim`` for the DNN, ``extra_dim`` for the D-MPNN)."""
    if kind == "dnn":
        d = plan.network.dnn
        return MultitaskMLP(dims["in_dim"], n_tasks, tuple(d.hidden), d.dropout)
    m = plan.network.mpnn
    return DMPNN(n_tasks, m.hidden, m.depth, m.ffn_hidden, m.ffn_layers, m.dropout, dims.get("extra_dim", 0))


def _datasets(kind: str, data: MemberData) -> tuple[Any, Any, dict[str, int]]:
    nn_train, nn_val = data.views["nn"]
    has_val = len(data.y_val) > 0
    if kind == "dnn":
        val = ArrayDataset(nn_val, data.y_val) if has_val else None
        return ArrayDataset(nn_train, data.y_train), val, {"in_dim": int(nn_train.shape[1])}
    extra_train, extra_val = data.featurizer.descriptors(nn_train), data.featurizer.descriptors(nn_val)
    extra_dim = 0 if extra_train is None else int(extra_train.shape[1])
    train = GraphDataset(graphs_from_smiles(data.smiles_train), data.y_train, extra_train)
    val = GraphDataset(graphs_from_smiles(data.smiles_val), data.y_val, extra_val) if has_val else None
    return train, val, {"extra_dim": extra_dim}


def fit_neural(job: MemberJob, kind: str) -> MemberOutput:
    """A DNN or D-MPNN member: best epoch on the validation score (none: the final weights)."""
    from medlearn.engine.seed import seed_everything
    from medlearn.engine.trainer import best_checkpoint

    plan: QSARPlan = job.plan
    data: MemberData = job.payload
    train, val, dims = _datasets(kind, data)
    mean, std, pos_weight = target_stats(data.y_train, data.task_type)
    torch.manual_seed(job.seed)
    net = build_network(kind, plan, dims, data.n_tasks)
    weight_decay = plan.train.weight_decay if kind == "dnn" else plan.network.mpnn.weight_decay
    module = QSARModule(net, data.task_type, mean, std, plan.train.lr, weight_decay, pos_weight)
    batch_size = plan.train.batch_size if kind == "dnn" else plan.network.mpnn.batch_size
    max_epochs = plan.train.max_epochs if kind == "dnn" else min(plan.train.max_epochs, plan.network.mpnn.max_epochs)
    seed_everything(job.seed)
    train_loader = make_loader(train, batch_size, True, job.seed)
    val_loader = make_loader(val, 1024, False) if val is not None else None
    _, higher = primary_metric(data.task_type)
    selects = val_loader is not None and plan.train.checkpoint == "best_val"
    if selects:
        trainer = job.trainer("val_score", "max" if higher else "min", plan.train.patience, max_epochs=max_epochs)
    else:  # nothing selected on validation: train the whole schedule, keep the final weights
        trainer = job.trainer("train_loss", "min", None, max_epochs=max_epochs)
    job.fit(trainer, module, train_loader, val_loader)
    best_epoch = best_val = None
    path = best_checkpoint(trainer) if selects else None
    if path:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        module.load_state_dict(checkpoint["state_dict"])
        best_epoch = int(checkpoint.get("epoch", -1))
        score = trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
        best_val = None if score is None else float(score)
    module.eval()
    return MemberOutput({"net": module.state_dict()}, summary={
        "epochs": int(trainer.current_epoch), "steps": int(trainer.global_step), "best_epoch": best_epoch,
        "best_val": best_val, "dims": dims})


def fit_baseline(job: MemberJob, kind: str) -> MemberOutput:
    """A scikit-learn baseline, one clone per task (:class:`MaskedMultiTask`), on ``job.cores`` threads."""
    from threadpoolctl import threadpool_limits

    from medlearn.tasks.qsar.baselines import FORESTS, MaskedMultiTask, make_baseline

    plan: QSARPlan = job.plan
    data: MemberData = job.payload
    params = {"n_estimators": plan.network.n_estimators} if kind in FORESTS else {}
    X = data.views[VIEW[kind]][0]
    with threadpool_limits(limits=max(1, job.cores)):  # boosting's OpenMP threads: one member's share of cores
        base = make_baseline(kind, data.task_type, seed=job.seed, n_jobs=max(1, job.cores), **params)
        estimator = MaskedMultiTask(base, data.task_type).fit(X, data.y_train)
    if hasattr(estimator, "estimators_"):
        for est in estimator.estimators_:  # fitted with job.cores; predict anywhere with one thread
            if hasattr(est, "n_jobs"):
                est.n_jobs = 1
    return MemberOutput(estimators={"model": estimator})


# -- rebuilding and prediction ------------------------------------------------------------------------------
def member_from_artifact(plan: QSARPlan, task_type: str, n_tasks: int, kind: str, seed: int,
                         artifact: Artifact, key: str, summary: dict[str, Any]) -> QSARMember:
    """A member from a stored artefact: ``artifact.tensors[key]`` (neural) or ``artifact.estimators[key]``."""
    dims = {k: int(v) for k, v in summary.get("dims", {}).items()}
    if kind in NEURAL:
        net = build_network(kind, plan, dims, n_tasks)
        module = QSARModule(net, task_type, np.zeros(n_tasks), np.ones(n_tasks))
        module.load_state_dict(artifact.tensors[key])
        predictor: Any = module.eval()
    else:
        predictor = artifact.estimators[key]
    return QSARMember(kind, seed, predictor, dims, summary.get("val_score"), dict(summary))


def predict_member(member: QSARMember, smiles: list[str], views: dict[str, np.ndarray],
                   featurizer: Featurizer) -> np.ndarray:
    """``(N, T)`` probabilities (classification) or values (regression) of one member."""
    if member.kind == "dnn":
        return predict_module(member.predictor, ArrayDataset(views["nn"], None))
    if member.kind == "mpnn":
        n_tasks = int(member.predictor.y_mean.shape[0])
        dataset = GraphDataset(graphs_from_smiles(smiles), None, featurizer.descriptors(views["nn"]), n_tasks)
        return predict_module(member.predictor, dataset)
    return member.predictor.score_values(views[VIEW[member.kind]])
