"""``AffinityModel``: fit on an ``InteractionTable``, predict affinities for (SMILES, sequence) pairs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from medlearn.cpi.data import InteractionTable
from medlearn.cpi.encode import (
    AMINO_ACIDS,
    apply_kmer_projection,
    encode_strings,
    fit_kmer_projection,
    kmer_features,
    smiles_alphabet,
)
from medlearn.cpi.nets import DeepDTA
from medlearn.cpi.plan import CPIPlan
from medlearn.errors import InputError

# net fields added after the first model files: their values in files that predate them
LEGACY_NET = {"fp_counts": False, "kmer_pca": 0, "head": "concat", "tower_dim": 0, "tower_hidden": 512}


class AffinityModel:
    """DeepDTA-style compound-protein affinity model (scikit-learn-like: ``fit`` sets ``*_``).

    With ``plan.train.ensemble = M > 1`` it is a deep ensemble (Lakshminarayanan et al., NeurIPS
    2017): ``M`` networks trained from seeds ``seed .. seed + M - 1`` on the same data; predictions
    are their mean and the spread across members is available as an uncertainty
    (``predict_table(..., return_std=True)``).

    Attributes after ``fit``: ``task_`` (regression | classification), ``alphabet_`` (SMILES
    characters), ``y_mean_``/``y_std_``, ``kmer_projection_`` (k-mer PCA fitted on the training
    proteins, or None), ``nets_`` (the ``M`` members), ``history_``.
    """

    def __init__(self, plan: CPIPlan | None = None, seed: int = 0) -> None:
        self.plan = plan or CPIPlan()
        self.seed = seed
        self.kmer_projection_: dict[str, np.ndarray] | None = None

    # -- encodings --------------------------------------------------------------------------
    def encode_compounds(self, smiles: Sequence[str]) -> torch.Tensor:
        """``(D, n_bits)`` float fingerprints (log1p counts with ``fp_counts``) or ``(D, Ls)`` token ids."""
        n = self.plan.net
        if n.compound == "fingerprint":
            from medlearn.chem.featurize import morgan_fingerprints

            fp = morgan_fingerprints(list(smiles), n_bits=n.n_bits, counts=n.fp_counts)
            return torch.as_tensor(np.log1p(fp) if n.fp_counts else fp)
        return torch.as_tensor(encode_strings(smiles, self.alphabet_, n.max_smiles_len))

    def encode_proteins(self, sequences: Sequence[str]) -> torch.Tensor:
        """``(P, 8420)`` k-mer features, ``(P, k)`` their PCA scores, or ``(P, Lp)`` residue ids."""
        n = self.plan.net
        if n.protein == "kmer":
            feats = kmer_features(sequences)
            if self.kmer_projection_ is not None:
                feats = apply_kmer_projection(feats, self.kmer_projection_)
            return torch.as_tensor(feats)
        return torch.as_tensor(encode_strings(sequences, AMINO_ACIDS, n.max_protein_len))

    def _n_kmer(self) -> int:
        return 8420 if self.kmer_projection_ is None else int(self.kmer_projection_["components"].shape[1])

    def _build_net(self) -> DeepDTA:
        n = self.plan.net
        return DeepDTA(len(self.alphabet_) + 2, len(AMINO_ACIDS) + 2, n.compound, n.protein, n.n_bits,
                       self._n_kmer(), n.embed_dim, n.filters, n.compound_kernel, n.protein_kernel, n.protein_pool,
                       tuple(n.hidden), n.dropout, n.head, n.tower_dim, n.tower_hidden)

    # -- training ---------------------------------------------------------------------------
    def fit(self, table: InteractionTable, train_idx: np.ndarray, val_idx: np.ndarray, run_dir=None,
            progress: bool = False, resume: bool = False,
            echo: Callable[[str], None] = lambda _m: None) -> AffinityModel:
        """Train on ``table`` pairs ``train_idx``, early-stop and pick the best epoch on ``val_idx``.

        Ensemble members train one after the other, each with its own checkpoints
        (``RUN/checkpoints/member<k>/``) and logs (``RUN/logs/member<k>/``); a finished member is
        saved atomically to ``member.pt`` there, so ``resume`` skips it and continues the
        interrupted one from its ``last.ckpt``. ``train.max_time_minutes`` is shared equally.
        """
        import tempfile

        from medlearn.chem.data import infer_task_type
        from medlearn.engine.rundir import RunDirectory

        t, n = self.plan.train, self.plan.net
        y_train = table.y[train_idx]
        if np.isnan(y_train).any():
            raise InputError(table.source, "training pairs without a value", "every training row needs a value")
        self.task_ = infer_task_type(y_train[:, None]) if self.plan.task == "auto" else self.plan.task
        self.y_mean_ = float(y_train.mean()) if self.task_ == "regression" else 0.0
        self.y_std_ = float(y_train.std() or 1.0) if self.task_ == "regression" else 1.0
        self.alphabet_ = smiles_alphabet(table.smiles)
        self.kmer_projection_ = None
        if n.protein == "kmer" and n.kmer_pca > 0:
            train_proteins = np.unique(table.protein[train_idx])
            self.kmer_projection_ = fit_kmer_projection(
                kmer_features([table.sequences[i] for i in train_proteins]), n.kmer_pca)
        echo(f"{len(train_idx)} training / {len(val_idx)} validation pairs, {len(table.smiles)} compounds, "
             f"{len(table.sequences)} proteins, task {self.task_}, {t.ensemble} model(s)")
        compounds, proteins = self.encode_compounds(table.smiles), self.encode_proteins(table.sequences)
        tmp = None
        if run_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="medlearn-cpi-")
            run_dir = RunDirectory(Path(tmp.name))
            run_dir.logs_dir.mkdir(parents=True, exist_ok=True)
        self.nets_, members = [], []
        try:
            for k in range(t.ensemble):
                net, hist = self._fit_member(k, table, train_idx, val_idx, compounds, proteins, run_dir, progress,
                                             resume)
                self.nets_.append(net)
                members.append(hist)
                if t.ensemble > 1:
                    echo(f"member {k + 1}/{t.ensemble}: {hist['epochs']} epochs, best {hist['monitor']} "
                         f"{hist['best_val']}")
        finally:
            if tmp is not None:
                tmp.cleanup()
        vals = [m["best_val"] for m in members if m["best_val"] is not None]
        self.history_ = {"epochs": int(sum(m["epochs"] for m in members)), "monitor": members[0]["monitor"],
                         "best_val": float(np.mean(vals)) if vals else None, "members": members}
        return self

    def _fit_member(self, k: int, table: InteractionTable, train_idx: np.ndarray, val_idx: np.ndarray,
                    compounds: torch.Tensor, proteins: torch.Tensor, run_dir, progress: bool,
                    resume: bool) -> tuple[DeepDTA, dict]:
        """Train ensemble member ``k`` (seed ``seed + k``); returns its best network and history."""
        from torch.utils.data import DataLoader, TensorDataset

        from medlearn.cpi.lit import AffinityModule, ProteinGroupedBatchSampler, monitor_for
        from medlearn.engine.seed import seed_everything
        from medlearn.engine.trainer import best_checkpoint, build_trainer
        from medlearn.io import atomic_path

        t = self.plan.train
        seed = self.seed + k
        tag = run_dir.member_tag(k, t.ensemble)
        done = run_dir.member_file(tag)
        ckpt_dir = done.parent
        seed_everything(seed)
        net = self._build_net()
        if resume and done.exists():
            state = torch.load(done, map_location="cpu", weights_only=False)
            net.load_state_dict(state["net"])
            return net.eval(), state["history"]
        module = AffinityModule(net, compounds, proteins, self.task_, self.y_mean_, self.y_std_, t.lr,
                                t.weight_decay, t.lr_schedule, t.lr_patience)

        def tensors(idx):
            return TensorDataset(torch.as_tensor(table.drug[idx]), torch.as_tensor(table.protein[idx]),
                                 torch.as_tensor(table.y[idx], dtype=torch.float32))

        sampler = ProteinGroupedBatchSampler(table.protein[train_idx], t.batch_size, t.protein_mix, seed)
        train_dl = DataLoader(tensors(train_idx), batch_sampler=sampler)
        val_dl = DataLoader(tensors(val_idx), batch_size=4096)
        monitor, mode = monitor_for(self.task_)
        minutes = t.max_time_minutes / t.ensemble if t.max_time_minutes else None
        trainer = build_trainer(run_dir, max_epochs=t.max_epochs, monitor=monitor, mode=mode, patience=t.patience,
                                max_time_minutes=minutes, enable_progress_bar=progress, checkpoint_dir=ckpt_dir,
                                log_version=tag)
        last = ckpt_dir / "last.ckpt"
        trainer.fit(module, train_dl, val_dl, ckpt_path=str(last) if resume and last.exists() else None)
        best = best_checkpoint(trainer)
        if best:
            module.load_state_dict(torch.load(best, map_location="cpu", weights_only=False)["state_dict"])
        score = trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
        hist = {"seed": seed, "epochs": int(trainer.current_epoch), "monitor": monitor,
                "best_val": None if score is None else float(score)}
        with atomic_path(done) as tmp_file:
            torch.save({"net": module.net.state_dict(), "history": hist}, tmp_file)
        return module.net.eval(), hist

    # -- inference --------------------------------------------------------------------------
    def _check(self) -> None:
        if not getattr(self, "nets_", None):
            raise RuntimeError("AffinityModel is not fitted: call fit() or load() first")

    @torch.no_grad()
    def predict_members(self, table: InteractionTable, idx: np.ndarray | None = None,
                        batch_size: int = 4096) -> np.ndarray:
        """``(M, N)`` predictions of each of the ``M`` ensemble members for the pairs ``idx`` of ``table``."""
        self._check()
        idx = np.arange(len(table)) if idx is None else np.asarray(idx, dtype=int)
        comps = self.encode_compounds(table.smiles)
        prots = self.encode_proteins(table.sequences)
        per_member = []
        for net in self.nets_:
            net.eval()
            out = []
            for s in range(0, len(idx), batch_size):
                b = idx[s:s + batch_size]
                raw = net(comps, prots, torch.as_tensor(table.drug[b]), torch.as_tensor(table.protein[b]))
                out.append(torch.sigmoid(raw) if self.task_ == "classification" else raw * self.y_std_ + self.y_mean_)
            per_member.append(torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32))
        return np.stack(per_member)

    def predict_table(self, table: InteractionTable, idx: np.ndarray | None = None, batch_size: int = 4096,
                      return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Predicted affinity (or interaction probability) ``(N,)`` for the pairs of ``table``.

        The mean over ensemble members; with ``return_std`` also their standard deviation ``(N,)``
        (zeros for a single model), an uncertainty estimate.
        """
        preds = self.predict_members(table, idx, batch_size)  # (M, N)
        mean = preds.mean(0)
        return (mean, preds.std(0)) if return_std else mean

    def predict(self, smiles: Sequence[str], sequences: Sequence[str]) -> np.ndarray:
        """Predictions ``(N,)`` for aligned lists of SMILES and protein sequences."""
        if len(smiles) != len(sequences):
            raise ValueError(f"{len(smiles)} SMILES but {len(sequences)} sequences")
        s_u, d = np.unique(np.asarray(smiles, dtype=str), return_inverse=True)
        q_u, p = np.unique(np.asarray(sequences, dtype=str), return_inverse=True)
        table = InteractionTable(list(s_u), list(q_u), d, p, np.full(len(smiles), np.nan), np.arange(len(smiles)))
        return self.predict_table(table)

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path, extra: dict | None = None) -> Path:
        from medlearn.io import atomic_path

        self._check()
        state = {"kind": "medlearn.cpi", "version": 2, "plan": self.plan.to_dict(), "seed": self.seed,
                 "task": self.task_, "alphabet": self.alphabet_, "y_mean": self.y_mean_, "y_std": self.y_std_,
                 "kmer_projection": self.kmer_projection_, "nets": [net.state_dict() for net in self.nets_],
                 "history": self.history_, "extra": extra or {}}
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> AffinityModel:
        path = Path(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise InputError(path, f"cannot read CPI model ({type(exc).__name__})", "is this a 'medlearn cpi' run?") \
                from exc
        if not isinstance(state, dict) or state.get("kind") != "medlearn.cpi":
            raise InputError(path, "not a medlearn CPI model", "is this a 'medlearn cpi' run?")
        plan = dict(state["plan"])
        if state.get("version", 1) < 2:  # written before the new net fields: keep what it was trained with
            plan["net"] = {**LEGACY_NET, **plan.get("net", {})}
        self = cls(CPIPlan.from_dict(plan, str(path)), state["seed"])
        self.task_, self.alphabet_ = state["task"], list(state["alphabet"])
        self.y_mean_, self.y_std_ = state["y_mean"], state["y_std"]
        self.kmer_projection_ = state.get("kmer_projection")
        self.nets_ = []
        for sd in state["nets"] if "nets" in state else [state["net"]]:
            net = self._build_net()
            net.load_state_dict(sd)
            self.nets_.append(net.eval())
        self.history_ = state.get("history", {})
        self.extra_ = state.get("extra", {})
        return self
