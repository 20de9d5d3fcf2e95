"""``register``: the training hooks the engine's skeleton calls (see :mod:`medlearn.tasks.base`).

Data: a Learn2Reg dataset, a CSV of pairs or atlas mode, every pair read and checked first
(:mod:`.dataset`). Split (unit: pair): the layout's own (Learn2Reg ``registration_val``, a CSV ``split``
column), else a seeded ``data.val_fraction`` of the pairs validates (one pair: it trains and validates).
Plan: the fingerprint rules of :mod:`.plan`. Members: ``train.ensemble`` networks trained side by side for
the time budget on working-grid pairs (:mod:`.preprocess`), their fields averaged. A ``network.name=classical``
run trains nothing: its model registers with SimpleITK, so ``evaluate`` scores classical registration on a
user's data through the same run directory. Evaluation registers every validation (and test) pair at
full resolution on its fixed grid (:mod:`.evaluate`).
"""

from __future__ import annotations

import time
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
from medlearn.tasks.register.dataset import RegistrationData, load_registration_data, train_loader, val_loader
from medlearn.tasks.register.model import Registrator, build_net
from medlearn.tasks.register.plan import (
    CLASSICAL,
    RegistrationDataSection,
    RegistrationPlan,
    evidence_steps,
    make_plan,
    planned_steps,
)

#: what ``evaluate`` passes through ``EvaluationRequest.options`` to the scoring (the contract gives
#: ``Task.evaluate`` no options, so they travel on the data object)
EVALUATION_OPTIONS = ("method", "refine")


class RegisterTask(Task):
    name = "register"
    description = "Image registration (2D/3D pairs, learned VoxelMorph-family networks, SimpleITK references)."
    model_class = Registrator
    plan_class = RegistrationPlan
    split_unit = "pair"

    # -- data ------------------------------------------------------------------------------------
    def load_data(self, source: str, options: dict[str, Any], *, overrides: dict[str, Any] | None = None,
                  model: Registrator | None = None) -> RegistrationData:
        if model is not None:  # evaluation: pairs the model can register
            from medlearn.tasks.register.inference import resolve_method

            resolve_method(model.plan_, options.get("method"))  # a bad --method stops before any pair is read
            if options.get("refine") is not None and int(options["refine"]) < 0:
                raise InputError("--refine", f"must be >= 0, got {options['refine']}")
            return load_registration_data(source, options, training=False, model_plan=model.plan_)
        seed = (overrides or {}).get("train.seed", 0)
        return load_registration_data(source, {**options, "seed": seed if isinstance(seed, int) else 0})

    def item_ids(self, data: RegistrationData) -> list[Any]:
        return data.names

    def split(self, data: RegistrationData, request: TrainRequest, seed: int) -> Splits:
        """The layout's split when it names one (pairs it leaves unassigned train); else a seeded
        ``data.val_fraction`` of the pairs (at least one) validates, the rest trains."""
        n = len(data.pairs)
        if data.assignment is not None and any(a == "val" for a in data.assignment):
            assignment = np.asarray([a or "train" for a in data.assignment], dtype=object)
            if not (assignment == "train").any():
                raise InputError(data.source, "every pair is a validation or test pair", "mark training pairs")
            return Splits(data.names, assignment, seed, self.split_unit)
        fraction = float(request.override("data.val_fraction", RegistrationDataSection.val_fraction))
        if n < 2 or fraction <= 0:
            return Splits.from_parts(data.names, {"val": np.arange(n)}, seed, self.split_unit, data.source)
        parts = random_fractions(n, seed, (1.0 - fraction, fraction, 0.0))
        val = np.sort(np.concatenate([parts["val"], parts["test"]]))
        if not len(val):
            val = parts["train"][-1:]
        train = np.setdiff1d(parts["train"], val)
        test = np.flatnonzero(np.asarray(data.assignment or [""] * n, dtype=object) == "test")
        train, val = np.setdiff1d(train, test), np.setdiff1d(val, test)
        return Splits.from_parts(data.names, {"train": train, "val": val, "test": test}, seed, self.split_unit,
                                 data.source)

    # -- plan ------------------------------------------------------------------------------------
    def make_plan(self, data: RegistrationData, splits: Splits, request: TrainRequest) -> RegistrationPlan:
        from medlearn.tasks.register.nets import REGISTRATION_NETWORKS

        network = str(request.override("network.name", "voxelmorph"))  # the working grid fits its divisor
        known = network == CLASSICAL or network in REGISTRATION_NETWORKS
        return make_plan(data.fingerprint(training_indices(splits)), network if known else "voxelmorph",
                         dataset=str(data.source))

    def finish_plan(self, plan: RegistrationPlan, data: RegistrationData, splits: Splits,
                    overrides: dict[str, Any], echo: Echo) -> RegistrationPlan:
        notes = data.resampled_notes()
        if notes:
            echo(f"note: {len(notes)} pair(s) have a moving image on another grid; it is resampled onto the fixed "
                 f"image's grid (first: {notes[0]})")
        labelled = [data.summaries[i].labels for i in training_indices(splits)]
        if any(labelled) and not all(labelled):
            echo(f"note: {sum(labelled)} of {len(labelled)} training pairs have label maps: Dice supervision needs "
                 "them on every pair, so it is off (the labelled pairs are still scored)")
        if plan.loss.dice_weight > 0 and not plan.num_labels and "loss.dice_weight" in overrides:
            echo("warning: loss.dice_weight is set but the training pairs have no label maps: it has no effect")
        return plan

    def step_timing(self, plan: RegistrationPlan, data: RegistrationData, splits: Splits) -> StepTiming | None:
        """Training runs for its time budget (``fixed_steps=False``) unless its schedule's steps end it first;
        the steps wanted are those the defaults' evidence made in this budget. A classical run trains nothing."""
        if not plan.learned:
            return None
        wanted = evidence_steps(plan) if plan.train.max_minutes else planned_steps(plan)
        fixed = plan.train.max_minutes is None or planned_steps(plan) <= wanted
        return StepTiming(lambda: _module(plan), random_batch(plan, plan.train.seed),
                          min(wanted, planned_steps(plan)), fixed_steps=fixed)

    # -- training ----------------------------------------------------------------------------------
    def prepare(self, plan: RegistrationPlan, data: RegistrationData, splits: Splits, run: RunDirectory,
                request: TrainRequest, echo: Echo) -> dict[str, Any]:
        """Working-grid pairs (small arrays every member trains from)."""
        from medlearn.tasks.register.preprocess import working_pair

        if not plan.learned:
            return {"train": [], "val": []}
        started = time.perf_counter()
        train = [working_pair(data.load(int(i)), plan) for i in training_indices(splits)]
        val = [working_pair(data.load(int(i)), plan) for i in validation_indices(splits)]
        what = " (each aligned by the optimised affine stage)" if plan.prealigned else ""
        echo(f"Prepared {len(train)} training and {len(val)} validation pairs on the {plan.data.working_shape} working "
             f"grid{what} in {time.perf_counter() - started:.0f} s")
        return {"train": train, "val": val}

    @staticmethod
    def fit_member(job: MemberJob) -> MemberOutput:
        """One network (seed ``train.seed + k``) for its share of the budget; final weights, or the lowest
        validation loss's with ``train.checkpoint=best_val``."""
        from medlearn.tasks.register.module import RegistrationModule, RegistrationSettings

        plan: RegistrationPlan = job.plan
        if not plan.learned:
            return MemberOutput(summary={"steps": 0, "weights": "none (classical)"})
        t = plan.train
        module = RegistrationModule(RegistrationSettings.from_plan(plan))
        trainer = job.trainer("val_loss", "min", t.patience)
        train = train_loader(job.payload["train"], t.batch_size, t.steps_per_epoch, t.swap_pairs, job.seed)
        started = time.perf_counter()
        job.fit(trainer, module, train, val_loader(job.payload["val"]))
        seconds = time.perf_counter() - started
        weights = "final"
        if t.checkpoint == "best_val":
            state = job.best_state(trainer)
            if state is not None:
                module.load_state_dict(state)
                weights = "best_val"
        return MemberOutput({"net": module.net.state_dict()},
                            summary={"steps": int(trainer.global_step), "epochs": int(trainer.current_epoch),
                                     "weights": weights, "seconds": round(seconds, 1)})

    def assemble(self, plan: RegistrationPlan, payload: dict[str, Any], members: list[TrainedMember],
                 data: RegistrationData, splits: Splits, run: RunDirectory) -> Registrator:
        net = build_net(plan, len(members))
        if net is not None:
            states = [m.load().tensors["net"] for m in members]
            targets = net.members if len(states) > 1 else [net]
            for target, state in zip(targets, states, strict=True):
                target.load_state_dict(state)
        trained = training_indices(splits)
        extras = {"ensemble": len(members), "trained_pairs": [data.names[i] for i in trained],
                  "seen_pairs": [data.summaries[i].digest for i in trained],
                  "members": [m.summary for m in members], "label_names": {str(k): v for k, v in
                                                                           data.label_names.items()}}
        return Registrator.from_parts(plan, net, extras)

    # -- evaluation ----------------------------------------------------------------------------------
    def evaluate(self, model: Registrator, data: RegistrationData, splits: Splits | None, n_boot: int
                 ) -> dict[str, Any]:
        from medlearn.tasks.register.evaluate import score_pairs, split_metrics

        plan = model.plan_
        seed = plan.train.seed
        names = {int(k): v for k, v in (model.extras_.get("label_names") or {}).items()} | data.label_names
        method, refine = data.options.get("method"), data.options.get("refine")
        if splits is None:  # evaluate RUN DATA: every pair
            scored = score_pairs(model, data, list(range(len(data.pairs))), method, refine)
            return {"all": split_metrics(scored, n_boot, seed, names), "_figures": scored.figures}
        out: dict[str, Any] = {"dataset": str(data.source)}
        figures = []
        for key in ("val", "test"):
            indices = splits.indices(key)
            if not len(indices):
                continue
            scored = score_pairs(model, data, indices, method, refine)
            out[key] = split_metrics(scored, n_boot, seed, names)
            figures = figures or scored.figures
        trained = set(training_indices(splits).tolist())
        out["val"]["seen_in_training"] = bool(trained & set(validation_indices(splits).tolist()))
        members = model.extras_.get("members", [])
        out["training"] = {"pairs_trained_on": len(trained), "steps_per_member": [m.get("steps", 0) for m in members],
                           "weights": [m.get("weights") for m in members]}
        out["_figures"] = figures
        return out

    def report(self, path: Path, model: Registrator, data: RegistrationData, splits: Splits | None,
               metrics: dict[str, Any], run: RunDirectory | None, title: str) -> None:
        from medlearn.tasks.register.report import write_report

        write_report(path, model, data, splits, metrics, run, title)

    def seen_in_training(self, model: Registrator, data: RegistrationData) -> int:
        seen = set(model.extras_.get("seen_pairs", []))
        return sum(s.digest in seen for s in data.summaries)

    def headline(self, metrics: dict[str, Any]) -> dict[str, Any]:
        from medlearn.tasks.register.report import headline_rows

        return headline_rows(metrics)


def training_indices(splits: Splits) -> np.ndarray:
    """The pairs members learn from: train, or the validation pairs when nothing else is left."""
    train = splits.indices("train")
    return train if len(train) else splits.indices("val")


def validation_indices(splits: Splits) -> np.ndarray:
    """The pairs that monitor training (the training pairs when there are none)."""
    val = splits.indices("val")
    return val if len(val) else splits.indices("train")


def random_batch(plan: RegistrationPlan, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch of the plan's size for timing steps: smooth noise images (and random labels)."""
    gen = torch.Generator().manual_seed(seed)
    shape = (plan.train.batch_size, 1, *plan.data.working_shape)
    batch = {"fixed": torch.rand(shape, generator=gen), "moving": torch.rand(shape, generator=gen)}
    if plan.num_labels:
        for key in ("fixed_label", "moving_label"):
            batch[key] = torch.randint(0, plan.num_labels, shape, generator=gen)
    return batch


def _module(plan: RegistrationPlan) -> Any:
    from medlearn.tasks.register.module import RegistrationModule, RegistrationSettings

    return RegistrationModule(RegistrationSettings.from_plan(plan))


TASK = RegisterTask()
