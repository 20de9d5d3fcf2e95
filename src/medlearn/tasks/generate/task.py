"""``generate``: the training hooks the engine's skeleton calls (see :mod:`medlearn.tasks.base`).

One model per run (``train.ensemble`` 1): the token language model is trained with the engine's
Trainer, early-stopped and selected on the next-token loss of a random validation fraction of the
distinct molecules (``train.val_fraction``, through :mod:`medlearn.data.splits`); with
``network.name=aae`` the fingerprint AAE is then trained on every encodable molecule. The run's metrics
sample ``eval_samples`` molecules and score them against the training molecules.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlearn.data.splits import Splits, random_fractions
from medlearn.engine.budget import StepTiming
from medlearn.engine.members import MemberJob, MemberOutput, TrainedMember
from medlearn.engine.rundir import RunDirectory
from medlearn.errors import InputError
from medlearn.tasks.base import Echo, Task, TrainRequest
from medlearn.tasks.generate.data import MoleculeSet, load_molecules, token_ids
from medlearn.tasks.generate.evaluate import evaluate_generator, headline_rows, write_report
from medlearn.tasks.generate.model import MoleculeGenerator, build_networks
from medlearn.tasks.generate.plan import EVIDENCE_STEPS, GeneratorPlan
from medlearn.tasks.generate.vocab import Vocabulary

#: what the run's history keeps of the member's training summary
HISTORY_KEYS = ("epochs", "steps", "best_val_loss", "aae")


class GenerateTask(Task):
    name = "generate"
    description = "Molecule generation: SELFIES/SMILES LSTM or GRU, fingerprint AAE, focus on a QSAR score."
    model_class = MoleculeGenerator
    plan_class = GeneratorPlan
    split_unit = "molecule"

    # -- data ------------------------------------------------------------------------------------
    def load_data(self, source: str, options: dict[str, Any], *, overrides: dict[str, Any] | None = None,
                  model: MoleculeGenerator | None = None) -> MoleculeSet:
        # training needs a molecule to learn from and one to select on; a reference set needs one
        return load_molecules(source, options, min_molecules=1 if model is not None else 2)

    def item_ids(self, data: MoleculeSet) -> list[Any]:
        return [int(r) for r in data.rows]

    def split(self, data: MoleculeSet, request: TrainRequest, seed: int) -> Splits:
        fraction = requested_val_fraction(request)
        parts = random_fractions(len(data), seed, (1.0 - fraction, fraction, 0.0))
        return Splits.from_parts(self.item_ids(data), parts, seed, self.split_unit, data.source)

    # -- plan ------------------------------------------------------------------------------------
    def make_plan(self, data: MoleculeSet, splits: Splits, request: TrainRequest) -> GeneratorPlan:
        return GeneratorPlan()  # no data-dependent rule: the defaults' evidence is in plan.py

    def finish_plan(self, plan: GeneratorPlan, data: MoleculeSet, splits: Splits, overrides: dict[str, Any],
                    echo: Echo) -> GeneratorPlan:
        training_payload(plan, data, splits)  # refuse, before anything is written, a split max_len leaves empty
        return plan

    def step_timing(self, plan: GeneratorPlan, data: MoleculeSet, splits: Splits) -> StepTiming:
        payload = training_payload(plan, data, splits)
        train = torch.as_tensor(payload["train"][: plan.train.batch_size])
        length = int((train != 0).sum(1).max())
        schedule = plan.train.max_epochs * math.ceil(len(payload["train"]) / plan.train.batch_size)
        # a schedule within the evidence's steps runs whole (early stopping may cut it); a longer one runs for
        # the time budget, which should buy the steps the defaults' evidence trained
        return StepTiming(lambda: _timing_module(plan, len(payload["vocab"])), (train[:, :length],),
                          min(schedule, EVIDENCE_STEPS), fixed_steps=schedule <= EVIDENCE_STEPS)

    # -- training ----------------------------------------------------------------------------------
    def prepare(self, plan: GeneratorPlan, data: MoleculeSet, splits: Splits, run: RunDirectory,
                request: TrainRequest, echo: Echo) -> dict[str, Any]:
        if data.invalid_note:
            echo(data.invalid_note)
        payload = training_payload(plan, data, splits)
        echo(f"{len(payload['kept_smiles'])} molecules ({payload['n_skipped']} skipped: not encodable or over "
             f"max_len={plan.max_len} tokens), {len(payload['vocab'])} tokens")
        return payload

    @staticmethod
    def fit_member(job: MemberJob) -> MemberOutput:
        """The language model (the engine's Trainer; best validation loss unless ``train.checkpoint=final``),
        then with ``network.name=aae`` the fingerprint AAE (a plain adversarial loop)."""
        from torch.utils.data import DataLoader, TensorDataset

        from medlearn.chem.properties import morgan_bits
        from medlearn.tasks.generate.module import LanguageModelModule, train_aae, trim_collate

        plan: GeneratorPlan = job.plan
        payload, t = job.payload, job.plan.train
        net, aae = build_networks(plan, len(payload["vocab"]))
        module = LanguageModelModule(net, t.lr)
        train_loader = DataLoader(TensorDataset(torch.as_tensor(payload["train"])), batch_size=t.batch_size,
                                  shuffle=True, collate_fn=trim_collate,
                                  generator=torch.Generator().manual_seed(job.seed))
        val_loader = DataLoader(TensorDataset(torch.as_tensor(payload["val"])), batch_size=512,
                                collate_fn=trim_collate)
        final = t.checkpoint == "final"
        trainer = job.trainer("val_loss", "min", None if final else t.patience,
                              gradient_clip_val=t.gradient_clip or None)
        job.fit(trainer, module, train_loader, val_loader)
        best = None if final else job.best_state(trainer)
        if best is not None:
            module.load_state_dict(best)
        score = trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
        summary: dict[str, Any] = {"epochs": int(trainer.current_epoch), "steps": int(trainer.global_step),
                                   "best_val_loss": None if score is None else float(score)}
        tensors: dict[str, Any] = {"net": module.net.eval().state_dict()}
        if aae is not None:
            a = plan.aae
            x = torch.as_tensor(morgan_bits(payload["kept_smiles"], n_bits=a.n_bits))
            summary["aae"] = train_aae(aae, x, a.epochs, a.batch_size, a.lr, torch.Generator().manual_seed(job.seed))
            tensors["aae"] = aae.state_dict()
        return MemberOutput(tensors, summary=summary)

    def assemble(self, plan: GeneratorPlan, payload: dict[str, Any], members: list[TrainedMember],
                 data: MoleculeSet, splits: Splits, run: RunDirectory) -> MoleculeGenerator:
        member = members[0]
        tensors = member.load().tensors
        vocab = Vocabulary(list(payload["vocab"]))
        net, aae = build_networks(plan, len(vocab))
        net.load_state_dict(tensors["net"])
        if aae is not None:
            aae.load_state_dict(tensors["aae"])
        history = {"n_molecules": len(data), "n_invalid_rows": len(data.invalid_rows),
                   "n_skipped_too_long": payload["n_skipped"],
                   **{k: member.summary[k] for k in HISTORY_KEYS if k in member.summary}}
        return MoleculeGenerator.from_parts(plan, vocab, net, aae, list(data.smiles), history)

    # -- evaluation ----------------------------------------------------------------------------------
    def evaluate(self, model: MoleculeGenerator, data: MoleculeSet, splits: Splits | None,
                 n_boot: int) -> dict[str, Any]:
        """After training: ``eval_samples`` samples against the training molecules. ``evaluate RUN DATA``:
        against DATA's molecules (``-n``, ``--temperature``, ``--seed`` travel in ``data.options``)."""
        if splits is not None:
            metrics = evaluate_generator(model, model.training_smiles_, "the training molecules",
                                         model.plan_.eval_samples, None, None, n_boot, reference_is_canonical=True)
            metrics["training"] = dict(model.history_)
            return metrics
        options = data.options
        metrics = evaluate_generator(model, data.smiles, data.source, options.get("n") or model.plan_.eval_samples,
                                     options.get("temperature"), options.get("seed"), n_boot,
                                     reference_is_canonical=True)
        metrics["reference_molecules"] = len(data)
        metrics["reference_invalid_rows"] = len(data.invalid_rows)
        return metrics

    def report(self, path: Path, model: MoleculeGenerator, data: MoleculeSet, splits: Splits | None,
               metrics: dict[str, Any], run: RunDirectory | None, title: str) -> None:
        write_report(path, model, metrics, run, title)

    def seen_in_training(self, model: MoleculeGenerator, data: MoleculeSet) -> int:
        return len(set(data.smiles) & set(model.training_smiles_))

    def headline(self, metrics: dict[str, Any]) -> dict[str, Any]:
        return headline_rows(metrics)


def requested_val_fraction(request: TrainRequest) -> float:
    """``train.val_fraction`` as the overrides set it (checked), for the split made before the plan."""
    from medlearn.plan import parse_overrides

    if isinstance(request.overrides, dict):
        overrides = {**(parse_overrides(None, request.plan_file) if request.plan_file else {}), **request.overrides}
    else:
        overrides = parse_overrides(list(request.overrides or []), request.plan_file)
    key = "train.val_fraction"
    return GeneratorPlan().apply_overrides({key: overrides[key]} if key in overrides else {}).train.val_fraction


def training_payload(plan: GeneratorPlan, data: MoleculeSet, splits: Splits) -> dict[str, Any]:
    """What the member trains from: ``train`` / ``val`` ``(K, max_len + 2)`` token ids of the encodable
    molecules of each split, the vocabulary (built on both), and the encodable molecules (for the AAE).

    Raises InputError when encoding (SELFIES, ``max_len``) leaves the train or val split empty.
    """
    tokens, kept = data.encoded(plan.representation, plan.max_len)
    vocab = Vocabulary.build(tokens)
    ids = token_ids(vocab, tokens, plan.max_len)
    where = np.asarray(splits.assignment, dtype=object)[kept] if len(kept) else np.zeros(0, dtype=object)
    train, val = ids[where == "train"], ids[where == "val"]
    if len(train) == 0 or len(val) == 0:
        raise InputError(data.source, f"{len(kept)} of {len(data)} molecules encode as {plan.representation} within "
                         f"max_len={plan.max_len} tokens, leaving {len(train)} to train on and {len(val)} to "
                         "validate on", "raise max_len (--set max_len=...) or give more molecules")
    return {"train": train, "val": val, "vocab": list(vocab.tokens), "kept_smiles": [data.smiles[i] for i in kept],
            "n_skipped": len(data) - len(kept)}


def _timing_module(plan: GeneratorPlan, vocab_size: int) -> Any:
    from medlearn.tasks.generate.module import LanguageModelModule

    return LanguageModelModule(build_networks(plan, vocab_size)[0], plan.train.lr)


TASK = GenerateTask()
