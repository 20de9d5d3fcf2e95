"""``MoleculeGenerator``: learn a distribution of molecules from SMILES, sample new ones (scikit-learn style).

``MoleculeGenerator(overrides=[...], seed=0, smiles_column=None).fit(csv, run_dir)`` trains a run
directory (setting ``plan_``, ``vocab_``, ``net_``, ``aae_``, ``training_smiles_``, ``history_``,
``metrics_``, ``run_dir_``); ``MoleculeGenerator.load(run_dir)`` (or ``medlearn.load_run``) restores one.

Sequence model: a SELFIES (default) or SMILES token LSTM/GRU (Segler et al., ACS Cent. Sci. 2018)
trained by teacher forcing and sampled with a temperature. ``network.name=aae`` also trains the
fingerprint adversarial autoencoder of Kadurin et al. (Oncotarget 2017); since an AAE over fingerprints
generates *fingerprints*, sampling draws codes from its Gaussian prior, decodes them to fingerprints
and, for each, keeps the most Tanimoto-similar molecule among several candidates from the sequence
model (the AAE screens the SMILES generator).

Filtering and focusing by a property model: ``sample(n, score=f, min_score=t)`` keeps only molecules
with ``f(smiles_list) -> (N,) array`` >= t; :meth:`focus` fine-tunes towards high ``f``. From the CLI,
``--qsar RUN`` makes ``f`` the first target of a QSAR run's ``predict_values``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlearn.chem.properties import canonical_smiles, morgan_bits
from medlearn.errors import InputError
from medlearn.io.artifact import Artifact
from medlearn.tasks.base import ServiceInput, ServiceOutput, TaskModel
from medlearn.tasks.generate.data import encode_molecules, token_ids
from medlearn.tasks.generate.nets import FingerprintAAE, RecurrentGenerator
from medlearn.tasks.generate.plan import GeneratorPlan
from medlearn.tasks.generate.vocab import Vocabulary, from_tokens

ScoreFn = Callable[[list[str]], np.ndarray]
#: the most molecules one service request samples (the CLI has no limit)
SERVICE_MAX_SAMPLES = 10_000


def build_networks(plan: GeneratorPlan, vocab_size: int) -> tuple[RecurrentGenerator, FingerprintAAE | None]:
    """The plan's language model over ``vocab_size`` tokens, and its AAE (``network.name=aae``) or None."""
    n = plan.network
    net = RecurrentGenerator(vocab_size, n.embed_dim, n.hidden, n.layers, n.dropout, plan.cell)
    aae = None
    if n.name == "aae":
        aae = FingerprintAAE(plan.aae.n_bits, plan.aae.latent, plan.aae.hidden)
    return net, aae


class MoleculeGenerator(TaskModel):
    """Learns a distribution of molecules from SMILES and samples new ones.

    Parameters: ``overrides`` (plan ``--set`` items or a dict), ``seed``, ``progress``, ``n_boot``, and the
    reading option ``smiles_column``. Fitted attributes: ``plan_``, ``vocab_``, ``net_``
    (``RecurrentGenerator``), ``aae_`` (or None), ``training_smiles_`` (canonical SMILES of every training
    molecule, train and val, for novelty), ``history_`` (epochs, validation loss, skipped molecules).
    """

    task_name = "generate"
    input_kind = "count"

    # -- artefact --------------------------------------------------------------------------------------
    def to_artifact(self) -> Artifact:
        self._check()
        tensors: dict[str, Any] = {"net": self.net_.state_dict()}
        if self.aae_ is not None:
            tensors["aae"] = self.aae_.state_dict()
        extras = {"vocab": list(self.vocab_.tokens), "training_smiles": list(self.training_smiles_),
                  "history": dict(self.history_)}
        return Artifact(self.task_name, self.plan_.to_dict(), tensors, extras)

    def restore(self, artifact: Artifact, run_dir: Path | None) -> None:
        plan = GeneratorPlan.from_dict(artifact.plan, "model.pt")
        extras = artifact.extras
        vocab = Vocabulary(list(extras["vocab"]))
        net, aae = build_networks(plan, len(vocab))
        net.load_state_dict(artifact.tensors["net"])
        if aae is not None:
            aae.load_state_dict(artifact.tensors["aae"])
        self._set(plan, vocab, net, aae, list(extras["training_smiles"]), dict(extras.get("history", {})))

    @classmethod
    def from_parts(cls, plan: GeneratorPlan, vocab: Vocabulary, net: RecurrentGenerator, aae: FingerprintAAE | None,
                   training_smiles: list[str], history: dict[str, Any]) -> MoleculeGenerator:
        model = cls()
        model._set(plan, vocab, net, aae, training_smiles, history)
        return model

    def _set(self, plan: GeneratorPlan, vocab: Vocabulary, net: RecurrentGenerator, aae: FingerprintAAE | None,
             training_smiles: list[str], history: dict[str, Any]) -> None:
        self.plan_, self.vocab_, self.net_ = plan, vocab, net.eval()
        self.aae_ = None if aae is None else aae.eval()
        self.training_smiles_, self.history_ = training_smiles, history

    def describe(self) -> dict[str, Any]:
        self._check()
        p = self.plan_
        return {"task": self.task_name, "inputs": self.input_kind, "outputs": "SMILES", "network": p.network.name,
                "representation": p.representation, "max_len": p.max_len, "temperature": p.temperature,
                "vocabulary": len(self.vocab_), "training_molecules": len(self.training_smiles_),
                "fingerprint_aae": self.aae_ is not None}

    # -- sampling --------------------------------------------------------------------------------------
    def _check(self) -> None:
        if not hasattr(self, "net_"):
            raise RuntimeError("MoleculeGenerator is not fitted: call fit() or load() first")

    def _generator(self, seed: int | None) -> torch.Generator:
        return torch.Generator().manual_seed(self.plan_.train.seed if seed is None else int(seed))

    def sample_raw(self, n: int, temperature: float | None = None, batch_size: int = 1000,
                   generator: torch.Generator | None = None) -> list[str]:
        """``n`` SMILES straight from the sequence model: canonical when valid, the raw text ('' for an
        empty sequence) otherwise."""
        self._check()
        temperature = self.plan_.temperature if temperature is None else temperature
        if not temperature > 0:
            raise InputError("temperature", f"must be > 0, got {temperature}")
        out: list[str] = []
        while len(out) < n:
            ids = self.net_.sample(min(batch_size, n - len(out)), self.plan_.max_len, temperature, generator)
            out += [from_tokens(self.vocab_.decode(row), self.plan_.representation) for row in ids.tolist()]
        return [canonical_smiles(s) or s for s in out]

    def sample(self, n: int, temperature: float | None = None, score: ScoreFn | None = None,
               min_score: float | None = None, seed: int | None = None, max_rounds: int = 20) -> list[str]:
        """``n`` generated SMILES (``seed`` None: the plan's ``train.seed``).

        With ``score`` and ``min_score`` only valid molecules scoring >= ``min_score`` are returned
        (sampling continues for up to ``max_rounds`` batches of ``n``; fewer may come back).
        """
        self._check()
        if n < 1:
            raise InputError("-n", f"must be >= 1, got {n}")
        gen = self._generator(seed)
        if score is None or min_score is None:
            return self._sample_once(n, temperature, gen)
        kept: list[str] = []
        for _ in range(max_rounds):
            batch = [s for s in self._sample_once(n, temperature, gen) if canonical_smiles(s) is not None]
            if batch:
                kept += [s for s, v in zip(batch, first_score(score, batch), strict=True) if v >= min_score]
            if len(kept) >= n:
                break
        return kept[:n]

    def _sample_once(self, n: int, temperature: float | None, gen: torch.Generator) -> list[str]:
        if self.aae_ is None:
            return self.sample_raw(n, temperature, generator=gen)
        k = self.plan_.aae.candidates_per_sample
        candidates = [s for s in dict.fromkeys(self.sample_raw(n * k, temperature, generator=gen))
                      if canonical_smiles(s) is not None]
        return screen_by_fingerprints(self.sample_fingerprints(n, gen), candidates, self.plan_.aae.n_bits)

    @torch.no_grad()
    def sample_fingerprints(self, n: int, generator: torch.Generator | None = None) -> np.ndarray:
        """``(n, n_bits)`` binary fingerprints decoded from prior samples of the AAE."""
        if self.aae_ is None:
            raise RuntimeError("no adversarial autoencoder in this generator (network.name != 'aae')")
        z = torch.randn(n, self.aae_.latent, generator=generator)
        return (torch.sigmoid(self.aae_.decode(z)) > 0.5).numpy().astype(np.float32)

    # -- conditioning ----------------------------------------------------------------------------------
    def focus(self, score: ScoreFn, rounds: int = 3, n_samples: int = 500, top_fraction: float = 0.2,
              epochs: int = 2, lr: float = 5e-4, batch_size: int = 64, seed: int | None = None) -> list[float]:
        """Shift the generator (in memory) towards high ``score`` (e.g. a QSAR model's predicted activity).

        Each round samples ``n_samples`` molecules, keeps the valid ``top_fraction`` by score and
        fine-tunes the language model on them for ``epochs`` (the transfer-learning loop of Segler
        et al. 2018 with a property model as the oracle). Returns the mean score of the valid
        samples before each round and after the last.
        """
        self._check()
        if not 0 < top_fraction <= 1:
            raise InputError("top_fraction", f"must be in (0, 1], got {top_fraction}")
        gen = self._generator(seed)
        opt = torch.optim.Adam(self.net_.parameters(), lr=lr)
        history: list[float] = []
        for r in range(rounds + 1):
            valid = [s for s in dict.fromkeys(self.sample_raw(n_samples, generator=gen)) if canonical_smiles(s)]
            if not valid:
                break
            values = first_score(score, valid)
            history.append(float(np.nanmean(values)))
            if r == rounds:
                break
            n_top = max(1, int(len(valid) * top_fraction))
            top = [valid[i] for i in np.argsort(-np.nan_to_num(values, nan=-np.inf))[:n_top]]
            token_lists = encode_molecules(top, self.plan_.representation, self.plan_.max_len)[0]
            token_lists = [t for t in token_lists if all(tok in self.vocab_.index for tok in t)]
            if not token_lists:
                continue
            ids = torch.as_tensor(token_ids(self.vocab_, token_lists, self.plan_.max_len))
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

    # -- files -----------------------------------------------------------------------------------------
    def predict_files(self, inputs: Sequence[str | Path] = (), out: str | Path = "samples.csv", n: int = 1000,
                      temperature: float | None = None, qsar: str | Path | None = None,
                      min_score: float | None = None, focus: int = 0, seed: int | None = None,
                      echo: Callable[[str], None] | None = None) -> list[Path]:
        """Write ``n`` samples to the CSV ``out`` (columns ``smiles``, ``valid``, and ``score`` with ``qsar``).

        ``inputs`` is unused (a generator takes a count, not files). ``qsar``: a finished QSAR run whose
        first target scores the samples; ``min_score`` keeps only those scoring at least that; ``focus``
        rounds of :meth:`focus` towards its high scores come first, on a copy (the run is not changed).
        """
        import pandas as pd

        from medlearn.io import write_text

        if n < 1:
            raise InputError("-n", f"must be >= 1, got {n}")
        if qsar is None and (min_score is not None or focus > 0):
            raise InputError("--min-score", "--min-score/--focus need --qsar RUN", "give a `medlearn qsar train` run")
        if qsar is not None and min_score is None and focus <= 0:
            raise InputError("--qsar", "--qsar needs --min-score and/or --focus", "e.g. --min-score 0.5 --focus 3")
        score = qsar_score(qsar) if qsar is not None else None
        model = self
        if score is not None and focus > 0:
            model = copy.deepcopy(self)
            model.focus(score, rounds=focus, seed=seed)
        smiles = model.sample(n, temperature, score=score, min_score=min_score, seed=seed)
        table = pd.DataFrame({"smiles": smiles, "valid": [canonical_smiles(s) is not None for s in smiles]})
        if score is not None and smiles:
            table["score"] = first_score(score, smiles)
        written = write_text(out, table.to_csv(index=False))
        if echo is not None:
            echo(f"{len(table)} molecules ({int(table['valid'].sum())} valid) written to {out}")
        return [Path(written)]

    def serve_predict(self, request: ServiceInput, workdir: Path) -> ServiceOutput:
        """``options``: ``n`` (1..SERVICE_MAX_SAMPLES, default 100), ``temperature``, ``seed``; one result per
        sample (``smiles``, ``valid``) and the CSV. Inputs (files, records) are not used."""
        options = request.options
        try:
            n = int(options.get("n", 100))
            temperature = None if options.get("temperature") is None else float(options["temperature"])
            seed = None if options.get("seed") is None else int(options["seed"])
        except (TypeError, ValueError) as exc:
            raise InputError("options", f"n, temperature and seed must be numbers ({exc})") from exc
        if not 1 <= n <= SERVICE_MAX_SAMPLES:
            raise InputError("n", f"must be 1..{SERVICE_MAX_SAMPLES}, got {n}", "sample more with `generate predict`")
        table = self.predict_files([], Path(workdir) / "samples.csv", n=n, temperature=temperature, seed=seed)[0]
        import pandas as pd

        rows = pd.read_csv(table, keep_default_na=False).to_dict("records")
        return ServiceOutput([{"smiles": str(r["smiles"]), "valid": bool(r["valid"])} for r in rows], [table])


def first_score(score: ScoreFn, smiles: list[str]) -> np.ndarray:
    """``(N,)`` float: the first column of ``score(smiles)`` (``(N,)`` or ``(N, T)``)."""
    return np.asarray(score(smiles), dtype=float).reshape(len(smiles), -1)[:, 0]


def qsar_score(run: str | Path) -> ScoreFn:
    """``score(smiles) -> (N,)``: the first target's ``predict_values`` of the finished QSAR run ``run``
    (loaded with :func:`medlearn.load_run`, so its model file is read ``weights_only``)."""
    import medlearn

    model = medlearn.load_run(run)
    if getattr(model, "task_name", None) != "qsar" or not hasattr(model, "predict_values"):
        raise InputError(run, f"is a '{getattr(model, 'task_name', '?')}' run, not a QSAR run",
                         "give --qsar a finished `medlearn qsar train` run")

    def score(smiles: list[str]) -> np.ndarray:
        return first_score(model.predict_values, list(smiles))

    return score


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
