"""``MoleculeGenerator``: fit on SMILES, sample new molecules, save/load.

Sequence model: a SELFIES (default) or SMILES token LSTM/GRU (Segler et al. 2018) trained by
teacher forcing and sampled with a temperature. ``model="aae"`` additionally trains the fingerprint
adversarial autoencoder of Kadurin et al. (2017); since an AAE over fingerprints generates
*fingerprints*, sampling draws codes from its Gaussian prior, decodes them to fingerprints and, for
each, keeps the most Tanimoto-similar molecule among several candidates from the sequence model
(the AAE screens the SMILES generator).

Filtering by a property model: ``sample(n, score=f, min_score=t)`` keeps only molecules with
``f(smiles_list) -> (N,) array`` >= t (e.g. a trained QSAR model's ``predict``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from medlearn.errors import InputError
from medlearn.molgen.metrics import canonical, morgan_bits
from medlearn.molgen.nets import FingerprintAAE, RecurrentGenerator
from medlearn.molgen.plan import GeneratorPlan
from medlearn.molgen.vocab import Vocabulary, from_tokens, to_sequence, tokenize

ScoreFn = Callable[[list[str]], np.ndarray]


class MoleculeGenerator:
    """Learns a distribution of molecules from SMILES and samples new ones.

    Attributes set by ``fit``: ``vocab_``, ``net_`` (``RecurrentGenerator``), ``aae_`` (or None),
    ``training_smiles_`` (canonical SMILES of the training molecules, for novelty),
    ``n_skipped_`` (molecules not encodable or longer than ``plan.max_len``), ``history_``.
    """

    def __init__(self, plan: GeneratorPlan | None = None, seed: int = 0) -> None:
        self.plan = plan or GeneratorPlan()
        self.seed = seed

    # -- training ---------------------------------------------------------------------------
    def _encode(self, smiles: Sequence[str]) -> tuple[list[list[str]], list[str]]:
        kind = self.plan.representation
        token_lists, kept = [], []
        for s in smiles:
            seq = to_sequence(s, kind)
            if not seq:
                continue
            toks = tokenize(seq, kind)
            if 0 < len(toks) <= self.plan.max_len:
                token_lists.append(toks)
                kept.append(s)
        return token_lists, kept

    def fit(self, smiles: Sequence[str], run_dir=None, progress: bool = False,
            echo: Callable[[str], None] = lambda _m: None, resume: bool = False) -> MoleculeGenerator:
        """Train on ``smiles`` (valid SMILES). ``run_dir``: a ``RunDirectory`` for checkpoints/logs."""
        from medlearn.engine.seed import seed_everything

        seed_everything(self.seed)
        canon = [c for c in (canonical(s) for s in smiles) if c is not None]
        canon = list(dict.fromkeys(canon))  # dedupe, keep order
        token_lists, kept = self._encode(canon)
        if len(kept) < 2:
            raise InputError(None, "fewer than 2 encodable molecules to train the generator on",
                             f"give more molecules (max_len={self.plan.max_len} tokens)")
        self.n_skipped_ = len(canon) - len(kept)
        self.training_smiles_ = canon
        self.vocab_ = Vocabulary.build(token_lists)
        ids = np.stack([self.vocab_.encode(t, self.plan.max_len) for t in token_lists])
        echo(f"{len(kept)} molecules ({self.n_skipped_} skipped), {len(self.vocab_)} tokens")
        self.net_ = RecurrentGenerator(len(self.vocab_), self.plan.net.embed_dim, self.plan.net.hidden,
                                       self.plan.net.layers, self.plan.net.dropout,
                                       "gru" if self.plan.model == "gru" else "lstm")
        self._fit_language_model(ids, run_dir, progress, resume)
        self.aae_ = None
        if self.plan.model == "aae":
            echo("training the fingerprint adversarial autoencoder")
            self.aae_ = self._fit_aae(kept)
        return self

    def _fit_language_model(self, ids: np.ndarray, run_dir, progress: bool, resume: bool) -> None:
        import tempfile

        from torch.utils.data import DataLoader, TensorDataset

        from medlearn.engine.rundir import RunDirectory
        from medlearn.engine.trainer import best_checkpoint, build_trainer
        from medlearn.molgen.lit import LanguageModelModule, trim_collate

        t = self.plan.train
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(ids))
        n_val = max(1, int(round(len(ids) * t.val_fraction)))
        val, train = ids[order[:n_val]], ids[order[n_val:]]
        if len(train) == 0:
            train = val
        g = torch.Generator().manual_seed(self.seed)
        train_dl = DataLoader(TensorDataset(torch.as_tensor(train)), batch_size=t.batch_size, shuffle=True,
                              collate_fn=trim_collate, generator=g)
        val_dl = DataLoader(TensorDataset(torch.as_tensor(val)), batch_size=512, collate_fn=trim_collate)
        module = LanguageModelModule(self.net_, t.lr)
        tmp = None
        if run_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="medlearn-molgen-")
            run_dir = RunDirectory(Path(tmp.name))
            run_dir.logs_dir.mkdir(parents=True, exist_ok=True)
        trainer = build_trainer(run_dir, max_epochs=t.max_epochs, monitor="val_loss", mode="min",
                                patience=t.patience, max_time_minutes=t.max_time_minutes,
                                enable_progress_bar=progress, gradient_clip_val=t.gradient_clip)
        ckpt = str(run_dir.last_checkpoint) if resume and run_dir.last_checkpoint.exists() else None
        trainer.fit(module, train_dl, val_dl, ckpt_path=ckpt)
        best = best_checkpoint(trainer)
        if best:
            state = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
            module.load_state_dict(state)
        self.history_ = {"epochs": int(trainer.current_epoch), "best_val_loss": _float(
            trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None)}
        self.net_ = module.net.eval()
        if tmp is not None:
            tmp.cleanup()

    def _fit_aae(self, smiles: Sequence[str]) -> FingerprintAAE:
        """Adversarial autoencoder training (Makhzani et al. 2016; Kadurin et al. 2017): per batch a
        reconstruction step (encoder + decoder, BCE on bits), a discriminator step (prior codes vs
        encoded codes) and a regularisation step (encoder fools the discriminator)."""
        a = self.plan.aae
        x = torch.as_tensor(morgan_bits(smiles, n_bits=a.n_bits))
        aae = FingerprintAAE(a.n_bits, a.latent, a.hidden)
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        opt_ae = torch.optim.Adam([*aae.encoder.parameters(), *aae.decoder.parameters()], lr=a.lr)
        opt_d = torch.optim.Adam(aae.discriminator.parameters(), lr=a.lr / 2)
        opt_g = torch.optim.Adam(aae.encoder.parameters(), lr=a.lr / 2)
        g = torch.Generator().manual_seed(self.seed)
        aae.train()
        for _epoch in range(a.epochs):
            for idx in torch.randperm(len(x), generator=g).split(a.batch_size):
                xb = x[idx]
                rec = bce(aae.decode(aae.encode(xb)), xb)
                opt_ae.zero_grad()
                rec.backward()
                opt_ae.step()
                z_fake = aae.encode(xb).detach()
                z_real = torch.randn(z_fake.shape, generator=g)
                d_loss = bce(aae.discriminate(z_real), torch.ones(len(xb))) + bce(
                    aae.discriminate(z_fake), torch.zeros(len(xb)))
                opt_d.zero_grad()
                d_loss.backward()
                opt_d.step()
                g_loss = bce(aae.discriminate(aae.encode(xb)), torch.ones(len(xb)))
                opt_g.zero_grad()
                g_loss.backward()
                opt_g.step()
        self.aae_history_ = {"reconstruction_bce": rec.item(), "discriminator_loss": d_loss.item()}
        return aae.eval()

    # -- sampling ---------------------------------------------------------------------------
    def _check(self) -> None:
        if not hasattr(self, "net_"):
            raise RuntimeError("MoleculeGenerator is not fitted: call fit() or load() first")

    def sample_raw(self, n: int, temperature: float | None = None, batch_size: int = 1000,
                   generator: torch.Generator | None = None) -> list[str]:
        """``n`` SMILES straight from the sequence model (invalid ones included, as '' or raw text)."""
        self._check()
        temperature = self.plan.temperature if temperature is None else temperature
        out: list[str] = []
        while len(out) < n:
            ids = self.net_.sample(min(batch_size, n - len(out)), self.plan.max_len, temperature, generator)
            out += [from_tokens(self.vocab_.decode(row), self.plan.representation) for row in ids.tolist()]
        return [canonical(s) or s for s in out]  # canonical form when valid, raw text otherwise

    def sample(self, n: int, temperature: float | None = None, score: ScoreFn | None = None,
               min_score: float | None = None, max_rounds: int = 20, seed: int | None = None) -> list[str]:
        """``n`` generated SMILES.

        With ``score`` and ``min_score`` only valid molecules scoring >= ``min_score`` are returned
        (sampling continues for up to ``max_rounds`` batches of ``n``; fewer may come back).
        """
        self._check()
        gen = torch.Generator().manual_seed(self.seed if seed is None else seed)
        if score is None or min_score is None:
            return self._sample_once(n, temperature, gen)
        kept: list[str] = []
        for _ in range(max_rounds):
            batch = [s for s in self._sample_once(n, temperature, gen) if canonical(s) is not None]
            if batch:
                values = np.asarray(score(batch), dtype=float).reshape(len(batch), -1)[:, 0]
                kept += [s for s, v in zip(batch, values, strict=False) if v >= min_score]
            if len(kept) >= n:
                break
        return kept[:n]

    def _sample_once(self, n: int, temperature: float | None, gen: torch.Generator) -> list[str]:
        if self.aae_ is None:
            return self.sample_raw(n, temperature, generator=gen)
        k = max(1, self.plan.aae.candidates_per_sample)
        candidates = [s for s in dict.fromkeys(self.sample_raw(n * k, temperature, generator=gen))
                      if canonical(s) is not None]
        return screen_by_fingerprints(self.sample_fingerprints(n, gen), candidates, self.plan.aae.n_bits)

    @torch.no_grad()
    def sample_fingerprints(self, n: int, generator: torch.Generator | None = None) -> np.ndarray:
        """``(n, n_bits)`` binary fingerprints decoded from prior samples of the AAE."""
        if self.aae_ is None:
            raise RuntimeError("no adversarial autoencoder in this generator (model != 'aae')")
        z = torch.randn(n, self.aae_.latent, generator=generator)
        return (torch.sigmoid(self.aae_.decode(z)) > 0.5).numpy().astype(np.float32)

    # -- conditioning ------------------------------------------------------------------------
    def focus(self, score: ScoreFn, rounds: int = 3, n_samples: int = 500, top_fraction: float = 0.2,
              epochs: int = 2, lr: float = 5e-4, batch_size: int = 64, seed: int | None = None) -> list[float]:
        """Shift the generator towards high ``score`` (e.g. a QSAR model's predicted activity).

        Each round samples ``n_samples`` molecules, keeps the valid ``top_fraction`` by score and
        fine-tunes the language model on them for ``epochs`` (the transfer-learning loop of Segler
        et al. 2018 with a property model as the oracle). Returns the mean score of the valid
        samples before each round and after the last.
        """
        self._check()
        if not 0 < top_fraction <= 1:
            raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction}")
        gen = torch.Generator().manual_seed(self.seed if seed is None else seed)
        opt = torch.optim.Adam(self.net_.parameters(), lr=lr)
        history: list[float] = []
        for r in range(rounds + 1):
            valid = [s for s in dict.fromkeys(self.sample_raw(n_samples, generator=gen)) if canonical(s)]
            if not valid:
                break
            values = np.asarray(score(valid), dtype=float).reshape(len(valid), -1)[:, 0]
            history.append(float(np.nanmean(values)))
            if r == rounds:
                break
            n_top = max(1, int(len(valid) * top_fraction))
            top = [valid[i] for i in np.argsort(-np.nan_to_num(values, nan=-np.inf))[:n_top]]
            token_lists = [t for t in self._encode(top)[0] if all(tok in self.vocab_.index for tok in t)]
            if not token_lists:
                continue
            ids = torch.as_tensor(np.stack([self.vocab_.encode(t, self.plan.max_len) for t in token_lists]))
            self.net_.train()
            for _ in range(epochs):
                for idx in torch.randperm(len(ids), generator=gen).split(batch_size):
                    batch = ids[idx]
                    batch = batch[:, :int((batch != 0).sum(1).max())]
                    logits, _ = self.net_(batch[:, :-1])
                    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                             batch[:, 1:].reshape(-1), ignore_index=0)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            self.net_.eval()
        return history

    # -- persistence ------------------------------------------------------------------------
    def state(self) -> dict:
        self._check()
        return {"kind": "medlearn.molgen", "plan": self.plan.to_dict(), "seed": self.seed,
                "vocab": self.vocab_.tokens, "net": self.net_.state_dict(),
                "aae": None if self.aae_ is None else self.aae_.state_dict(),
                "training_smiles": self.training_smiles_, "history": getattr(self, "history_", {})}

    def save(self, path: str | Path) -> Path:
        from medlearn.io import atomic_path

        with atomic_path(path) as tmp:
            torch.save(self.state(), tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> MoleculeGenerator:
        path = Path(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # unreadable / not a torch file
            raise InputError(path, f"cannot read generator model ({type(exc).__name__})",
                             "is this a 'medlearn generate' run?") from exc
        if not isinstance(state, dict) or state.get("kind") != "medlearn.molgen":
            raise InputError(path, "not a medlearn generator model", "is this a 'medlearn generate' run?")
        plan = GeneratorPlan.from_dict(state["plan"], str(path))
        self = cls(plan, state["seed"])
        self.vocab_ = Vocabulary(list(state["vocab"]))
        n = plan.net
        self.net_ = RecurrentGenerator(len(self.vocab_), n.embed_dim, n.hidden, n.layers, n.dropout,
                                       "gru" if plan.model == "gru" else "lstm")
        self.net_.load_state_dict(state["net"])
        self.net_.eval()
        self.aae_ = None
        if state["aae"] is not None:
            a = plan.aae
            self.aae_ = FingerprintAAE(a.n_bits, a.latent, a.hidden)
            self.aae_.load_state_dict(state["aae"])
            self.aae_.eval()
        self.training_smiles_ = list(state["training_smiles"])
        self.history_ = state.get("history", {})
        return self


def screen_by_fingerprints(targets: np.ndarray, candidates: Sequence[str], n_bits: int) -> list[str]:
    """For each target fingerprint ``(n, n_bits)``, the most Tanimoto-similar unused candidate SMILES."""
    if not candidates:
        return []
    fps = morgan_bits(candidates, n_bits=n_bits)
    t = (targets > 0).astype(np.float32)
    inter = t @ fps.T
    union = t.sum(1, keepdims=True) + fps.sum(1)[None, :] - inter
    sim = inter / np.maximum(union, 1e-9)
    chosen: list[str] = []
    used = np.zeros(len(candidates), dtype=bool)
    for row in sim:
        row = np.where(used, -1.0, row)
        j = int(row.argmax())
        if row[j] < 0:
            break
        used[j] = True
        chosen.append(candidates[j])
    return chosen


def _float(value) -> float | None:
    if value is None:
        return None
    return float(value)
