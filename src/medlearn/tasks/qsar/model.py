"""``QSARModel``: the QSAR model of a run and its Python API (scikit-learn style).

>>> model = QSARModel(smiles_column="smiles", targets=["logS"]).fit("esol.csv", "runs/esol")
>>> model = medlearn.load_run("runs/esol")                        # or QSARModel.load(...)
>>> values = model.predict_values(["CCO", "c1ccccc1O"])            # (N, T)
>>> mean, std = model.predict_with_uncertainty(smiles)             # (N, T) each
>>> ad = model.applicability_domain(smiles)                        # (N,) max Tanimoto to train

Models (``network.name``): ``dnn`` (multitask MLP on features, Ma et al. 2015), ``mpnn`` (D-MPNN, Yang
et al. 2019; plus normalised RDKit descriptors when the features include ``rdkit2d``), the scikit-learn
baselines of :mod:`medlearn.tasks.qsar.baselines`, and ``auto``: a few candidates chosen by rules on the
data (:func:`~medlearn.tasks.qsar.plan.auto_candidates`), each scored on the *validation* molecules, of
which the best single model or the mean of the best 2-3 is kept (test molecules are never seen).

Uncertainty (``uncertainty_``, stated by :meth:`QSARModel.describe` and in the prediction CSV):
``ensemble`` — the standard deviation over the members' predictions (seeds, or the kept candidates);
``trees`` — one random forest / extra-trees model: the standard deviation over its trees' predictions;
``none`` — any other single model: NaN, not a made-up 0. Applicability domain: the max Tanimoto
similarity (Morgan bits) to the training molecules.

Invalid SMILES get NaN rows from every ``predict*`` method (and NaN applicability).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medlearn.chem.featurize import DescriptorScaler, tanimoto_max_similarity
from medlearn.errors import InputError
from medlearn.io.artifact import Artifact
from medlearn.tasks.base import ServiceInput, ServiceOutput, TaskModel
from medlearn.tasks.qsar.features import Featurizer
from medlearn.tasks.qsar.members import QSARMember, member_from_artifact, predict_member
from medlearn.tasks.qsar.plan import NEURAL, QSARPlan

#: what each uncertainty kind means (``describe()``, reports)
UNCERTAINTY = {
    "ensemble": "standard deviation over the ensemble members' predictions",
    "trees": "standard deviation over the forest's per-tree predictions",
    "none": "this model gives no uncertainty (NaN)",
}


#: nearest-neighbour Tanimoto similarity (Morgan bits) below which a molecule is flagged outside the
#: applicability domain: a conventional cut for ECFP4-like bits (pairs below ~0.3 are rarely close analogues),
#: not tuned on any benchmark; the similarity itself is always reported
DOMAIN_SIMILARITY = 0.3


def uncertainty_kind(members: Sequence[QSARMember]) -> str:
    """``ensemble`` for several members, ``trees`` for one forest, else ``none``."""
    from medlearn.tasks.qsar.baselines import FORESTS

    if len(members) > 1:
        return "ensemble"
    return "trees" if members and members[0].kind in FORESTS else "none"


def _smiles_list(smiles: str | Sequence[str]) -> list[str]:
    if isinstance(smiles, str):
        return [smiles]
    return [str(s) if s is not None else "" for s in smiles]


class QSARModel(TaskModel):
    """Molecular property prediction from SMILES (regression or binary classification, one or more tasks).

    Parameters: ``overrides`` (plan ``--set`` items or a dict, e.g. ``{"network.name": "dnn"}``), ``seed``,
    ``progress``, ``n_boot``, and the reading options ``smiles_column``, ``targets`` (list), ``task_type``
    (regression | classification; default inferred) and ``split`` (random | scaffold | stratified | a split
    JSON of CSV rows). Fitted attributes: ``plan_``, ``members_``, ``candidates_``, ``selection_``,
    ``uncertainty_``, ``metrics_``, ``run_dir_``.
    """

    task_name = "qsar"
    input_kind = "smiles"

    # -- construction and the artefact -----------------------------------------------------------------
    @classmethod
    def from_parts(cls, plan: QSARPlan, members: list[QSARMember], candidates: list[dict[str, Any]],
                   selection: dict[str, Any], featurizer: Featurizer, train_bits: np.ndarray,
                   seen: dict[str, list[str]]) -> QSARModel:
        model = cls()
        model._set_parts(plan, members, candidates, selection, featurizer, train_bits, seen)
        return model

    def _set_parts(self, plan: QSARPlan, members: list[QSARMember], candidates: list[dict[str, Any]],
                   selection: dict[str, Any], featurizer: Featurizer, train_bits: np.ndarray,
                   seen: dict[str, list[str]]) -> None:
        self.plan_, self.members_, self.candidates_, self.selection_ = plan, members, candidates, selection
        self.featurizer_, self.train_bits_, self.seen_ = featurizer, train_bits, seen
        self.uncertainty_ = uncertainty_kind(members)

    def to_artifact(self) -> Artifact:
        import torch

        tensors: dict[str, Any] = {"train_bits": torch.from_numpy(np.ascontiguousarray(self.train_bits_))}
        estimators: dict[str, Any] = {}
        members = []
        for i, m in enumerate(self.members_):
            key = f"member{i}"
            if m.kind in NEURAL:
                tensors[key] = m.predictor.state_dict()
            else:
                estimators[key] = m.predictor
            members.append({"key": key, "kind": m.kind, "seed": m.seed, "summary": {**m.summary, "dims": m.dims,
                                                                                     "val_score": m.val_score}})
        scaler = self.featurizer_.scaler
        extras: dict[str, Any] = {"members": members, "candidates": self.candidates_, "selection": self.selection_,
                                  "seen_smiles": self.seen_, "uncertainty": self.uncertainty_,
                                  "descriptor_median": None if scaler is None else scaler.median_}
        if scaler is not None:
            estimators["descriptor_quantiles"] = scaler.quantile_
        return Artifact(self.task_name, self.plan_.to_dict(), tensors, extras, estimators)

    def restore(self, artifact: Artifact, run_dir: Path | None) -> None:
        plan = QSARPlan.from_dict(artifact.plan, "model.pt")
        featurizer = Featurizer.from_plan(plan.features)
        extras = artifact.extras
        if "descriptor_quantiles" in artifact.estimators:
            scaler = DescriptorScaler(featurizer.spec.descriptor_slice())
            scaler.median_ = np.asarray(extras["descriptor_median"], dtype=np.float64)
            scaler.quantile_ = artifact.estimators["descriptor_quantiles"]
            featurizer.scaler = scaler
        n_tasks = len(plan.data.targets)
        members = [member_from_artifact(plan, plan.data.task_type, n_tasks, m["kind"], int(m["seed"]), artifact,
                                        m["key"], m["summary"]) for m in extras["members"]]
        bits = artifact.tensors["train_bits"].numpy()
        self._set_parts(plan, members, list(extras.get("candidates", [])), dict(extras.get("selection", {})),
                        featurizer, bits, dict(extras.get("seen_smiles", {})))

    # -- what the model is ---------------------------------------------------------------------------------
    @property
    def task_type_(self) -> str:
        return self.plan_.data.task_type

    @property
    def targets_(self) -> list[str]:
        return list(self.plan_.data.targets)

    def describe(self) -> dict[str, Any]:
        p = self.plan_
        spec = self.featurizer_.spec
        return {"task": self.task_name, "inputs": "smiles", "task_type": p.data.task_type, "targets": self.targets_,
                "model": p.network.name, "kept": [m.kind for m in self.members_],
                "members": [m.describe() for m in self.members_], "candidates": self.candidates_,
                "selection": self.selection_, "features": spec.key(), "uncertainty": self.uncertainty_,
                "uncertainty_meaning": UNCERTAINTY[self.uncertainty_],
                "applicability_domain": f"max Tanimoto similarity (Morgan r={spec.radius}, {spec.n_bits} bits) to "
                                        f"the {len(self.train_bits_)} training molecules"}

    # -- inference --------------------------------------------------------------------------------------------
    def _valid(self, smiles: str | Sequence[str]) -> tuple[list[str], np.ndarray]:
        from medlearn.chem.data import parse_smiles

        if not hasattr(self, "members_"):
            raise RuntimeError("QSARModel is not fitted: call fit(data, run_dir) or QSARModel.load(run_dir)")
        items = _smiles_list(smiles)
        return items, np.array([parse_smiles(s.strip()) is not None for s in items], dtype=bool)

    def member_predictions(self, smiles: list[str], views: dict[str, np.ndarray]) -> np.ndarray:
        """``(M, N, T)`` predictions of every kept member for valid ``smiles`` with their feature ``views``."""
        return np.stack([predict_member(m, smiles, views, self.featurizer_) for m in self.members_])

    def predict_with_uncertainty(self, smiles: str | Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and uncertainty, each ``(N, T)`` (``uncertainty_`` says which; ``none``: NaN)."""
        items, valid = self._valid(smiles)
        n_tasks = len(self.plan_.data.targets)
        mean = np.full((len(items), n_tasks), np.nan)
        std = np.full((len(items), n_tasks), np.nan)
        if valid.any():
            ok = [items[i].strip() for i in np.flatnonzero(valid)]
            views = self.featurizer_.views(self.featurizer_.raw(ok), [m.kind for m in self.members_])
            predictions = self.member_predictions(ok, views)
            mean[valid] = predictions.mean(0)
            if self.uncertainty_ == "ensemble":
                std[valid] = predictions.std(0)
            elif self.uncertainty_ == "trees":
                std[valid] = self.members_[0].predictor.spread(views["tree"])
        return mean, std

    def predict_values(self, smiles: str | Sequence[str]) -> np.ndarray:
        """Probabilities (classification) or values (regression), ``(N, T)``; NaN rows for invalid SMILES."""
        return self.predict_with_uncertainty(smiles)[0]

    def predict(self, smiles: str | Sequence[str]) -> np.ndarray:
        """Values (regression) or 0/1 labels at threshold 0.5 (classification), ``(N, T)``."""
        values = self.predict_values(smiles)
        if self.task_type_ == "classification":
            return np.where(np.isnan(values), np.nan, (values >= 0.5).astype(float))
        return values

    def predict_proba(self, smiles: str | Sequence[str]) -> np.ndarray:
        """Positive-class probability per task, ``(N, T)`` (classification only)."""
        if self.task_type_ != "classification":
            raise InputError("predict_proba", "this is a regression model", "use predict()")
        return self.predict_values(smiles)

    def applicability_domain(self, smiles: str | Sequence[str]) -> np.ndarray:
        """``(N,)`` max Tanimoto similarity (Morgan bits) to the nearest training molecule (NaN: invalid)."""
        items, valid = self._valid(smiles)
        out = np.full(len(items), np.nan)
        if valid.any():
            n_bits = self.featurizer_.spec.n_bits
            train = np.unpackbits(self.train_bits_, axis=1)[:, :n_bits]
            query = np.unpackbits(self.featurizer_.bits([items[i].strip() for i in np.flatnonzero(valid)]),
                                  axis=1)[:, :n_bits]
            out[valid] = tanimoto_max_similarity(query, train)
        return out

    def serve_predict(self, request: ServiceInput, workdir: Path) -> ServiceOutput:
        """Records ``{"smiles": ...}``: per molecule its predictions and uncertainty per target, the nearest
        training similarity and the applicability-domain flag (in: >= :data:`DOMAIN_SIMILARITY`), and the CSV."""
        import pandas as pd

        records = request.records or []
        smiles = [str(r.get("smiles", "")).strip() for r in records]
        if not smiles:
            raise InputError("records", "no molecules", 'send {"records": [{"smiles": "CCO"}, ...]}')
        _, valid = self._valid(smiles)
        mean, std = self.predict_with_uncertainty(smiles)
        domain = self.applicability_domain(smiles)
        results = []
        for i, s in enumerate(smiles):
            row: dict[str, Any] = {"smiles": s, "valid": bool(valid[i])}
            if valid[i]:
                for j, target in enumerate(self.targets_):
                    row[f"{target}_pred"] = float(mean[i, j])
                    if np.isfinite(std[i, j]):
                        row[f"{target}_std"] = float(std[i, j])
                row["nearest_training_similarity"] = float(domain[i])
                row["applicability_domain"] = "in" if domain[i] >= DOMAIN_SIMILARITY else "out"
            else:
                row["error"] = "SMILES does not parse"
            results.append(row)
        table = Path(workdir) / "predictions.csv"
        pd.DataFrame(results).to_csv(table, index=False)
        return ServiceOutput(results, [table])

    def export_onnx(self, path: str | Path) -> dict[str, Any]:
        """The DNN members (averaged) as one ONNX graph on their input features; RDKit featurisation and
        descriptor normalisation stay in Python (metadata says how). Forests, boosting and the D-MPNN have no
        ONNX export here: refused in one line."""
        import torch

        from medlearn import __version__
        from medlearn.imaging.export import export_pipeline

        others = sorted({m.kind for m in self.members_ if m.kind != "dnn"})
        if others:
            raise InputError("export", f"this model keeps {', '.join(others)} members, which have no ONNX export "
                             "(only the DNN does)", "train with --set network.name=dnn to export, or predict with "
                             "`medlearn qsar predict`")

        class DNNEnsemble(torch.nn.Module):
            def __init__(self, modules: list[torch.nn.Module]) -> None:
                super().__init__()
                self.members = torch.nn.ModuleList(modules)

            def forward(self, features: torch.Tensor) -> torch.Tensor:
                out = self.members[0].predict_values(features)
                for m in self.members[1:]:
                    out = out + m.predict_values(features)
                return out / len(self.members)

        modules = [m.predictor.eval() for m in self.members_]
        width = int(self.members_[0].dims["in_dim"])
        spec = self.featurizer_.spec
        metadata = {"medlearn_version": __version__, "task": "qsar", "task_type": self.task_type_,
                    "targets": self.targets_, "features": spec.key(), "input_width": width,
                    "input": "medlearn's DNN view of the features: Morgan counts log1p-scaled, RDKit descriptors "
                             "quantile-normalised on the training rows (medlearn.tasks.qsar.features.Featurizer)",
                    "not_in_graph": "featurisation (RDKit) and descriptor normalisation", "plan": self.plan_.to_dict()}
        return export_pipeline(DNNEnsemble(modules), torch.zeros(1, width), path, input_name="features",
                               output_names=["predictions"], dynamic_axes={"features": {0: "batch"},
                                                                          "predictions": {0: "batch"}},
                               metadata=metadata)

    def predict_files(self, inputs: str | Path | Sequence[str | Path], out: str | Path,
                      smiles_column: str | None = None, echo: Any = print) -> list[Path]:
        """Write ``out`` (CSV): the input's columns, then per target ``<t>_pred`` (probability for
        classification) and ``<t>_std`` (the uncertainty), ``uncertainty`` (its kind: ensemble / trees / none)
        and ``applicability_domain``. Rows with an invalid SMILES keep empty predictions."""
        from medlearn.chem.data import describe_invalid, load_smiles_csv, read_csv
        from medlearn.io import atomic_path

        paths = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
        if len(paths) != 1:
            raise InputError("predict", f"give one CSV of SMILES, got {len(paths)} inputs",
                             "predict each file on its own")
        source = Path(paths[0])
        column = smiles_column or self.plan_.data.smiles_column
        table = load_smiles_csv(source, column, [], require_targets=False)
        message = describe_invalid(table)
        if message:
            echo(f"warning: {message}")
        frame = read_csv(source)
        mean, std = self.predict_with_uncertainty(table.smiles)
        domain = self.applicability_domain(table.smiles)
        for j, target in enumerate(self.targets_):
            for suffix, values in (("pred", mean[:, j]), ("std", std[:, j])):
                column_values = np.full(len(frame), np.nan)
                column_values[table.rows] = values
                frame[f"{target}_{suffix}"] = column_values
        frame["uncertainty"] = self.uncertainty_
        column_values = np.full(len(frame), np.nan)
        column_values[table.rows] = domain
        frame["applicability_domain"] = column_values
        with atomic_path(out, suffix=".csv") as tmp:
            frame.to_csv(tmp, index=False)
        return [Path(out)]

