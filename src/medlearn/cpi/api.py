"""``AffinityModel``: fit on an ``InteractionTable``, predict affinities for (SMILES, sequence) pairs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from medlearn.cpi.data import InteractionTable
from medlearn.cpi.encode import AMINO_ACIDS, encode_strings, kmer_features, smiles_alphabet
from medlearn.cpi.nets import DeepDTA
from medlearn.cpi.plan import CPIPlan
from medlearn.errors import InputError


class AffinityModel:
    """DeepDTA-style compound-protein affinity model (scikit-learn-like: ``fit`` sets ``*_``).

    Attributes after ``fit``: ``task_`` (regression | classification), ``alphabet_`` (SMILES
    characters), ``y_mean_``/``y_std_``, ``net_``, ``history_``.
    """

    def __init__(self, plan: CPIPlan | None = None, seed: int = 0) -> None:
        self.plan = plan or CPIPlan()
        self.seed = seed

    # -- encodings --------------------------------------------------------------------------
    def encode_compounds(self, smiles: Sequence[str]) -> torch.Tensor:
        n = self.plan.net
        if n.compound == "fingerprint":
            from medlearn.chem.featurize import morgan_fingerprints

            return torch.as_tensor(morgan_fingerprints(list(smiles), n_bits=n.n_bits))
        return torch.as_tensor(encode_strings(smiles, self.alphabet_, n.max_smiles_len))

    def encode_proteins(self, sequences: Sequence[str]) -> torch.Tensor:
        n = self.plan.net
        if n.protein == "kmer":
            return torch.as_tensor(kmer_features(sequences))
        return torch.as_tensor(encode_strings(sequences, AMINO_ACIDS, n.max_protein_len))

    def _build_net(self) -> DeepDTA:
        n = self.plan.net
        return DeepDTA(len(self.alphabet_) + 2, len(AMINO_ACIDS) + 2, n.compound, n.protein, n.n_bits, 8420,
                       n.embed_dim, n.filters, n.compound_kernel, n.protein_kernel, n.protein_pool,
                       tuple(n.hidden), n.dropout)

    # -- training ---------------------------------------------------------------------------
    def fit(self, table: InteractionTable, train_idx: np.ndarray, val_idx: np.ndarray, run_dir=None,
            progress: bool = False, resume: bool = False,
            echo: Callable[[str], None] = lambda _m: None) -> AffinityModel:
        """Train on ``table`` pairs ``train_idx``, early-stop and pick the best epoch on ``val_idx``."""
        import tempfile

        from torch.utils.data import DataLoader, TensorDataset

        from medlearn.chem.data import infer_task_type
        from medlearn.cpi.lit import AffinityModule, ProteinGroupedBatchSampler, monitor_for
        from medlearn.engine.rundir import RunDirectory
        from medlearn.engine.seed import seed_everything
        from medlearn.engine.trainer import best_checkpoint, build_trainer

        seed_everything(self.seed)
        t = self.plan.train
        y_train = table.y[train_idx]
        if np.isnan(y_train).any():
            raise InputError(table.source, "training pairs without a value", "every training row needs a value")
        self.task_ = infer_task_type(y_train[:, None]) if self.plan.task == "auto" else self.plan.task
        self.y_mean_ = float(y_train.mean()) if self.task_ == "regression" else 0.0
        self.y_std_ = float(y_train.std() or 1.0) if self.task_ == "regression" else 1.0
        self.alphabet_ = smiles_alphabet(table.smiles)
        echo(f"{len(train_idx)} training / {len(val_idx)} validation pairs, {len(table.smiles)} compounds, "
             f"{len(table.sequences)} proteins, task {self.task_}")
        self.net_ = self._build_net()
        module = AffinityModule(self.net_, self.encode_compounds(table.smiles), self.encode_proteins(table.sequences),
                                self.task_, self.y_mean_, self.y_std_, t.lr, t.weight_decay)

        def tensors(idx):
            return TensorDataset(torch.as_tensor(table.drug[idx]), torch.as_tensor(table.protein[idx]),
                                 torch.as_tensor(table.y[idx], dtype=torch.float32))

        sampler = ProteinGroupedBatchSampler(table.protein[train_idx], t.batch_size, t.protein_mix, self.seed)
        train_dl = DataLoader(tensors(train_idx), batch_sampler=sampler)
        val_dl = DataLoader(tensors(val_idx), batch_size=2048)
        tmp = None
        if run_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="medlearn-cpi-")
            run_dir = RunDirectory(Path(tmp.name))
            run_dir.logs_dir.mkdir(parents=True, exist_ok=True)
        monitor, mode = monitor_for(self.task_)
        trainer = build_trainer(run_dir, max_epochs=t.max_epochs, monitor=monitor, mode=mode, patience=t.patience,
                                max_time_minutes=t.max_time_minutes, enable_progress_bar=progress)
        ckpt = str(run_dir.last_checkpoint) if resume and run_dir.last_checkpoint.exists() else None
        trainer.fit(module, train_dl, val_dl, ckpt_path=ckpt)
        best = best_checkpoint(trainer)
        if best:
            module.load_state_dict(torch.load(best, map_location="cpu", weights_only=False)["state_dict"])
        score = trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
        self.history_ = {"epochs": int(trainer.current_epoch), "monitor": monitor,
                         "best_val": None if score is None else float(score)}
        self.net_ = module.net.eval()
        if tmp is not None:
            tmp.cleanup()
        return self

    # -- inference --------------------------------------------------------------------------
    def _check(self) -> None:
        if not hasattr(self, "net_"):
            raise RuntimeError("AffinityModel is not fitted: call fit() or load() first")

    @torch.no_grad()
    def predict_table(self, table: InteractionTable, idx: np.ndarray | None = None,
                      batch_size: int = 4096) -> np.ndarray:
        """Predicted affinity (or interaction probability) ``(N,)`` for the pairs of ``table``."""
        self._check()
        idx = np.arange(len(table)) if idx is None else np.asarray(idx, dtype=int)
        self.net_.eval()
        comps = self.encode_compounds(table.smiles)
        prots = self.encode_proteins(table.sequences)
        out = []
        for s in range(0, len(idx), batch_size):
            b = idx[s:s + batch_size]
            raw = self.net_(comps, prots, torch.as_tensor(table.drug[b]), torch.as_tensor(table.protein[b]))
            out.append(torch.sigmoid(raw) if self.task_ == "classification" else raw * self.y_std_ + self.y_mean_)
        return torch.cat(out).numpy() if out else np.zeros(0)

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
        state = {"kind": "medlearn.cpi", "plan": self.plan.to_dict(), "seed": self.seed, "task": self.task_,
                 "alphabet": self.alphabet_, "y_mean": self.y_mean_, "y_std": self.y_std_,
                 "net": self.net_.state_dict(), "history": self.history_, "extra": extra or {}}
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
        self = cls(CPIPlan.from_dict(state["plan"], str(path)), state["seed"])
        self.task_, self.alphabet_ = state["task"], list(state["alphabet"])
        self.y_mean_, self.y_std_ = state["y_mean"], state["y_std"]
        self.net_ = self._build_net()
        self.net_.load_state_dict(state["net"])
        self.net_.eval()
        self.history_ = state.get("history", {})
        self.extra_ = state.get("extra", {})
        return self
