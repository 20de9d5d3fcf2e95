"""``AffinityModel``: the compound-protein interaction model and its Python API (scikit-learn style).

``AffinityModel(overrides=[...], seed=0).fit(data, run_dir)`` trains a run directory (a CSV of
(SMILES, sequence, value) pairs or the davis_kiba_dta folder; options ``dataset``, ``smiles_column``,
``sequence_column``, ``value_column``); ``AffinityModel.load(run_dir)`` (or ``medlearn.load_run``)
restores one. ``predict(smiles, sequences)`` gives ``(N,)`` affinities (the training values' units, e.g.
pKd for Davis) or interaction probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlearn.errors import InputError
from medlearn.io.artifact import Artifact
from medlearn.tasks.base import ServiceInput, ServiceOutput, TaskModel
from medlearn.tasks.cpi.data import InteractionTable
from medlearn.tasks.cpi.encode import AMINO_ACIDS, apply_kmer_projection, encode_strings, kmer_features
from medlearn.tasks.cpi.nets import DeepDTA
from medlearn.tasks.cpi.plan import CPIPlan

N_KMER = 8420  # 20 + 400 + 8000 1/2/3-mer frequencies (encode.kmer_features)


def build_network(plan: CPIPlan, n_alphabet: int, n_kmer: int) -> DeepDTA:
    """The plan's DeepDTA for a SMILES alphabet of ``n_alphabet`` characters and ``n_kmer`` protein features."""
    n = plan.network
    return DeepDTA(n_alphabet + 2, len(AMINO_ACIDS) + 2, n.compound, n.protein, n.n_bits, n_kmer, n.embed_dim,
                   n.filters, n.compound_kernel, n.protein_kernel, n.protein_pool, tuple(n.hidden), n.dropout, n.head,
                   n.tower_dim, n.tower_hidden)


def encode_compounds(plan: CPIPlan, smiles: Sequence[str], alphabet: Sequence[str]) -> np.ndarray:
    """``(D, n_bits)`` float32 fingerprints (log1p counts with ``fp_counts``) or ``(D, Ls)`` int64 token ids."""
    n = plan.network
    if n.compound == "fingerprint":
        from medlearn.chem.featurize import morgan_fingerprints

        fp = morgan_fingerprints(list(smiles), n_bits=n.n_bits, counts=n.fp_counts)
        return (np.log1p(fp) if n.fp_counts else fp).astype(np.float32)
    return encode_strings(smiles, alphabet, n.max_smiles_len)


def encode_proteins(plan: CPIPlan, sequences: Sequence[str], projection: dict[str, np.ndarray] | None) -> np.ndarray:
    """``(P, 8420)`` k-mer features, ``(P, k)`` their PCA scores, or ``(P, Lp)`` int64 residue ids."""
    n = plan.network
    if n.protein == "kmer":
        feats = kmer_features(sequences)
        return feats if projection is None else apply_kmer_projection(feats, projection)
    return encode_strings(sequences, AMINO_ACIDS, n.max_protein_len)


def n_kmer_features(projection: dict[str, np.ndarray] | None) -> int:
    return N_KMER if projection is None else int(np.asarray(projection["components"]).shape[1])


class AffinityModel(TaskModel):
    """DeepDTA-style compound-protein affinity model (Öztürk et al., Bioinformatics 2018).

    With ``train.ensemble = M > 1`` it is a deep ensemble (Lakshminarayanan et al., NeurIPS 2017): ``M``
    networks trained from seeds ``seed .. seed + M - 1`` on the same pairs; predictions are their mean
    and the spread across members is an uncertainty (``predict_table(..., return_std=True)``).

    Fitted attributes: ``plan_``, ``task_`` (regression | classification), ``alphabet_`` (SMILES
    characters), ``y_mean_`` / ``y_std_`` (training values, regression), ``kmer_projection_`` (the k-mer
    PCA fitted on the training proteins, or None), ``nets_`` (the ``M`` members), ``members_`` (their
    training summaries), ``seen_pairs_`` (keys of the pairs trained or selected on), ``metrics_``,
    ``run_dir_``.
    """

    task_name = "cpi"
    input_kind = "pairs"

    # -- artefact --------------------------------------------------------------------------------------
    @classmethod
    def from_parts(cls, plan: CPIPlan, nets: list[DeepDTA], alphabet: list[str], y_mean: float, y_std: float,
                   kmer_projection: dict[str, np.ndarray] | None, members: list[dict[str, Any]],
                   seen_pairs: np.ndarray) -> AffinityModel:
        model = cls()
        model.plan_, model.task_, model.nets_ = plan, plan.task, [net.eval() for net in nets]
        model.alphabet_, model.y_mean_, model.y_std_ = list(alphabet), float(y_mean), float(y_std)
        model.kmer_projection_, model.members_ = kmer_projection, list(members)
        model.seen_pairs_ = np.asarray(seen_pairs, dtype=np.int64)
        return model

    def to_artifact(self) -> Artifact:
        tensors: dict[str, Any] = {"members": [net.state_dict() for net in self.nets_],
                                   "seen_pairs": torch.as_tensor(self.seen_pairs_, dtype=torch.int64)}
        if self.kmer_projection_ is not None:
            tensors["kmer_projection"] = {k: torch.as_tensor(np.asarray(v)) for k, v in self.kmer_projection_.items()}
        extras = {"task": self.task_, "alphabet": self.alphabet_, "y_mean": self.y_mean_, "y_std": self.y_std_,
                  "members": self.members_}
        return Artifact(self.task_name, self.plan_.to_dict(), tensors, extras)

    def restore(self, artifact: Artifact, run_dir: Path | None) -> None:
        self.plan_ = CPIPlan.from_dict(artifact.plan, "model.pt")
        extras = artifact.extras
        self.task_, self.alphabet_ = str(extras["task"]), list(extras["alphabet"])
        self.y_mean_, self.y_std_ = float(extras["y_mean"]), float(extras["y_std"])
        self.members_ = list(extras.get("members", []))
        projection = artifact.tensors.get("kmer_projection")
        self.kmer_projection_ = None if projection is None else {k: v.numpy() for k, v in projection.items()}
        self.seen_pairs_ = artifact.tensors["seen_pairs"].numpy()
        self.nets_ = []
        for state in artifact.tensors["members"]:
            net = build_network(self.plan_, len(self.alphabet_), n_kmer_features(self.kmer_projection_))
            net.load_state_dict(state)
            self.nets_.append(net.eval())

    def describe(self) -> dict[str, Any]:
        n = self.plan_.network
        return {"task": self.task_name, "inputs": self.input_kind, "prediction": self.task_,
                "columns": {"smiles": "compound SMILES", "sequence": "protein sequence (one-letter residues)"},
                "network": n.name, "compound": n.compound, "protein": n.protein, "head": n.head,
                "ensemble": len(self.nets_), "uncertainty": "prediction_std (member spread)" if len(self.nets_) > 1
                else None}

    # -- inference --------------------------------------------------------------------------------------
    def _check(self) -> None:
        if not getattr(self, "nets_", None):
            raise RuntimeError("AffinityModel is not fitted: call fit() or load() first")

    @torch.no_grad()
    def predict_members(self, table: InteractionTable, idx: np.ndarray | Sequence[int] | None = None,
                        batch_size: int = 4096) -> np.ndarray:
        """``(M, N)`` predictions of each of the ``M`` members for the pairs ``idx`` of ``table`` (all by default)."""
        self._check()
        idx = np.arange(len(table)) if idx is None else np.asarray(idx, dtype=int)
        compounds = torch.as_tensor(encode_compounds(self.plan_, table.smiles, self.alphabet_))
        proteins = torch.as_tensor(encode_proteins(self.plan_, table.sequences, self.kmer_projection_))
        per_member = []
        for net in self.nets_:
            net.eval()
            out = []
            for s in range(0, len(idx), batch_size):
                b = idx[s:s + batch_size]
                raw = net(compounds, proteins, torch.as_tensor(table.drug[b]), torch.as_tensor(table.protein[b]))
                out.append(torch.sigmoid(raw) if self.task_ == "classification" else raw * self.y_std_ + self.y_mean_)
            per_member.append(torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32))
        return np.stack(per_member)

    def predict_table(self, table: InteractionTable, idx: np.ndarray | Sequence[int] | None = None,
                      batch_size: int = 4096, return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Predicted affinity (or interaction probability) ``(N,)`` for the pairs of ``table``.

        The mean over members; with ``return_std`` also their standard deviation ``(N,)`` (zeros for a
        single model), an uncertainty estimate.
        """
        preds = self.predict_members(table, idx, batch_size)  # (M, N)
        mean = preds.mean(0)
        return (mean, preds.std(0)) if return_std else mean

    def predict(self, smiles: Sequence[str], sequences: Sequence[str]) -> np.ndarray:
        """Predictions ``(N,)`` for aligned lists of SMILES and protein sequences."""
        if len(smiles) != len(sequences):
            raise ValueError(f"{len(smiles)} SMILES but {len(sequences)} sequences")
        return self.predict_table(self._pairs_table(smiles, sequences))

    def serve_predict(self, request: ServiceInput, workdir: Path) -> ServiceOutput:
        """Records ``{"smiles", "sequence"}``: the predicted affinity (or probability) of each pair, the members'
        spread for an ensemble, and the CSV."""
        import pandas as pd

        from medlearn.chem.data import parse_smiles

        records = request.records or []
        if not records:
            raise InputError("records", "no pairs", 'send {"records": [{"smiles": "CCO", "sequence": "MKT..."}]}')
        rows, ok = [], []
        for r in records:
            smiles, sequence = str(r.get("smiles", "")).strip(), str(r.get("sequence", "")).strip().upper()
            row: dict[str, Any] = {"smiles": smiles, "sequence": sequence[:20] + ("..." if len(sequence) > 20 else "")}
            if parse_smiles(smiles) is None:
                row["error"] = "SMILES does not parse"
            elif not sequence.isalpha():
                row["error"] = "the sequence must be one-letter residues"
            else:
                ok.append((len(rows), smiles, sequence))
            rows.append(row)
        if ok:
            members = self.predict_members(self._pairs_table([s for _, s, _ in ok], [q for _, _, q in ok]))
            for (i, _, _), mean, std in zip(ok, members.mean(0), members.std(0), strict=True):
                rows[i]["prediction"] = float(mean)
                if len(self.nets_) > 1:
                    rows[i]["prediction_std"] = float(std)
        table = Path(workdir) / "predictions.csv"
        pd.DataFrame(rows).to_csv(table, index=False)
        return ServiceOutput(rows, [table])

    def _pairs_table(self, smiles: Sequence[str], sequences: Sequence[str]) -> InteractionTable:
        s_u, d = np.unique(np.asarray(smiles, dtype=str), return_inverse=True)
        q_u, p = np.unique(np.asarray([q.strip().upper() for q in sequences], dtype=str), return_inverse=True)
        return InteractionTable(list(s_u), list(q_u), d.reshape(-1), p.reshape(-1), np.full(len(smiles), np.nan),
                                np.arange(len(smiles)))

    def export_onnx(self, path: str | Path) -> dict[str, Any]:
        """The ensemble as one ONNX graph on encoded pairs: inputs ``compounds`` (fingerprints / token ids) and
        ``proteins`` (k-mer PCA scores / residue ids), one row per pair; output the mean prediction. Encoding
        (RDKit fingerprints, k-mer counts and their PCA) stays in Python (``encode_compounds``/``encode_proteins``)."""
        from medlearn import __version__
        from medlearn.imaging.export import export_pipeline

        model = self

        class PairEnsemble(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.members = torch.nn.ModuleList(model.nets_)

            def forward(self, compounds: torch.Tensor, proteins: torch.Tensor) -> torch.Tensor:
                index = torch.arange(compounds.shape[0])
                total = None
                for net in self.members:
                    raw = net(compounds, proteins, index, index)
                    out = torch.sigmoid(raw) if model.task_ == "classification" else raw * model.y_std_ + model.y_mean_
                    total = out if total is None else total + out
                return total / len(self.members)

        example = self._pairs_table(["CCO"], ["MKTAYIAKQR"])
        comps = torch.as_tensor(encode_compounds(self.plan_, example.smiles, self.alphabet_))
        prots = torch.as_tensor(encode_proteins(self.plan_, example.sequences, self.kmer_projection_))
        n = self.plan_.network
        metadata = {"medlearn_version": __version__, "task": "cpi", "prediction": self.task_,
                    "compound_encoding": n.compound, "protein_encoding": n.protein, "ensemble": len(self.nets_),
                    "not_in_graph": "compound and protein encoding (RDKit Morgan counts, k-mer counts + PCA)",
                    "plan": self.plan_.to_dict()}
        return export_pipeline(PairEnsemble(), (comps, prots), path, input_name=["compounds", "proteins"],
                               output_names=["prediction"],
                               dynamic_axes={"compounds": {0: "pairs"}, "proteins": {0: "pairs"},
                                             "prediction": {0: "pairs"}}, metadata=metadata)

    def predict_files(self, inputs: Sequence[str | Path] | str | Path, out: str | Path,
                      smiles_column: str | None = None, sequence_column: str | None = None,
                      echo: Any = print) -> list[Path]:
        """Write ``out``: the input CSV's rows with a ``prediction`` column (empty for a row with an invalid
        SMILES or sequence) and, for an ensemble, ``prediction_std`` (the members' spread)."""
        from medlearn.chem.data import read_csv
        from medlearn.io import write_text
        from medlearn.tasks.cpi.data import describe_invalid, load_pairs_csv

        paths = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
        if len(paths) != 1:
            from medlearn.errors import InputError

            raise InputError("predict", f"got {len(paths)} inputs", "give one CSV of (smiles, sequence) pairs")
        data = paths[0]
        table = load_pairs_csv(data, smiles_column, sequence_column, None, require_values=False)
        note = describe_invalid(table)
        if note:
            echo(note)
        pred, std = self.predict_table(table, return_std=True)
        df = read_csv(data)
        column = np.full(len(df), np.nan)
        column[table.rows] = pred
        df["prediction"] = column
        if len(self.nets_) > 1:
            column_std = np.full(len(df), np.nan)
            column_std[table.rows] = std
            df["prediction_std"] = column_std
        return [write_text(out, df.to_csv(index=False))]
