"""``segment``: the training hooks the engine's skeleton calls (see :mod:`medlearn.tasks.base`).

Data: an MSD / nnU-Net raw dataset, checked file by file (:mod:`.data`). Split: a seeded share of the
labelled cases (``train.val_fraction``) validates; the rest trains (datasets under
``SMALL_DATASET_CASES`` cases also train on the validation cases, ``train.train_on_val_cases``: then
validation only monitors and chooses the post-processing, and its metrics say the cases were seen).
Plan: the fingerprint rules of :mod:`.plan`. Members: ``train.ensemble`` U-Nets trained side by side
for the time budget (:mod:`medlearn.engine.members`), each from the preprocessed-case cache, their
logits averaged in one network. Post-processing (largest component) is chosen on the validation cases.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlearn.data.msd import MSDCase, fingerprint_msd_dataset
from medlearn.data.splits import Splits, random_fractions
from medlearn.engine.budget import StepTiming
from medlearn.engine.cpu import native_bf16
from medlearn.engine.members import MemberJob, MemberOutput, TrainedMember
from medlearn.engine.rundir import RunDirectory
from medlearn.tasks.base import Echo, Task, TrainRequest
from medlearn.tasks.segment.data import (
    SegmentationData,
    build_cache,
    load_segmentation_data,
    patch_loader,
    random_batch,
    whole_case_loader,
)
from medlearn.tasks.segment.model import Segmenter
from medlearn.tasks.segment.plan import (
    COMPILE_SPEEDUP,
    SegmentationPlan,
    SegmentationTrain,
    evidence_steps,
    make_plan,
    planned_steps,
    should_compile,
)


def training_intensity(cases: list[MSDCase], limit: int = 20) -> dict[str, Any]:
    """The raw-intensity profile of (up to ``limit``) training images, for the out-of-distribution warning
    at prediction (:mod:`medlearn.imaging.ood`)."""
    from medlearn.data.msd import load_case_image
    from medlearn.imaging.ood import intensity_profile

    step = max(1, len(cases) // limit)
    # an equal-sized sample of each image's first channel (the cases may differ in size)
    samples = []
    for case in cases[::step]:
        values = load_case_image(case)[0][0].astype(np.float32).ravel()
        samples.append(np.random.default_rng(0).choice(values, size=min(50_000, values.size), replace=True))
    size = min(len(v) for v in samples)
    return intensity_profile(np.stack([v[:size] for v in samples])[:, None])


class SegmentTask(Task):
    name = "segment"
    description = "Image segmentation (2D/3D, self-configuring U-Net family, MSD / nnU-Net raw layout)."
    model_class = Segmenter
    plan_class = SegmentationPlan
    split_unit = "case"

    # -- data ------------------------------------------------------------------------------------
    def load_data(self, source: str, options: dict[str, Any], *, overrides: dict[str, Any] | None = None,
                  model: Segmenter | None = None) -> SegmentationData:
        if model is not None:  # evaluation: the model's channels and classes
            return load_segmentation_data(source, model.plan_)
        return load_segmentation_data(source, overrides=overrides)

    def item_ids(self, data: SegmentationData) -> list[Any]:
        return data.names

    def split(self, data: SegmentationData, request: TrainRequest, seed: int) -> Splits:
        """``train.val_fraction`` of the cases (at least one) validate; one case, or a fraction of 0: every
        case validates and trains."""
        fraction = SegmentationTrain.val_fraction if data.val_fraction is None else data.val_fraction
        n = len(data.cases)
        if n < 2 or fraction <= 0:
            parts = {"val": np.arange(n)}
        else:
            parts = random_fractions(n, seed, (1.0 - fraction, fraction, 0.0))
            parts = {"train": parts["train"], "val": np.sort(np.concatenate([parts["val"], parts["test"]]))}
        return Splits.from_parts(data.names, parts, seed, self.split_unit, str(data.source))

    # -- plan ------------------------------------------------------------------------------------
    def make_plan(self, data: SegmentationData, splits: Splits, request: TrainRequest) -> SegmentationPlan:
        return make_plan(fingerprint_msd_dataset(data.source), dataset=str(data.source))

    def finish_plan(self, plan: SegmentationPlan, data: SegmentationData, splits: Splits,
                    overrides: dict[str, Any], echo: Echo) -> SegmentationPlan:
        for line in data.warnings:
            echo(f"warning: {line}")
        if plan.train.precision == "bf16" and not torch.cuda.is_available() and native_bf16() is False:
            echo("warning: train.precision=bf16 on a CPU without bfloat16 instructions (avx512_bf16/amx_bf16): "
                 "emulated, slower than fp32")
        return plan

    def step_timing(self, plan: SegmentationPlan, data: SegmentationData, splits: Splits) -> StepTiming:
        """Training runs for its time budget (``fixed_steps=False``) unless the schedule's steps end it first;
        the steps wanted are those the defaults' evidence made in this budget (``plan.evidence_steps``)."""
        wanted = evidence_steps(plan)
        fixed = plan.train.max_minutes is None or planned_steps(plan.train) <= wanted
        # the step is timed eagerly; a compiled run's steps are ~1.3x faster (COMPILE_SPEEDUP, measured on DRIVE)
        speedup = COMPILE_SPEEDUP if should_compile(plan.train) else 1.0
        return StepTiming(lambda: timing_module(plan), random_batch(plan, plan.train.seed), wanted, fixed_steps=fixed,
                          speedup=speedup)

    # -- training ----------------------------------------------------------------------------------
    def prepare(self, plan: SegmentationPlan, data: SegmentationData, splits: Splits, run: RunDirectory,
                request: TrainRequest, echo: Echo) -> dict[str, Any]:
        train_cases, val_cases = training_cases(plan, data, splits), validation_cases(data, splits)
        cache = run.cache_dir
        for cases in (train_cases, val_cases):  # preprocess once here; every member reopens the cache
            build_cache(cases, plan, cache, plan.train.seed)
        return {"cache": str(cache), "train": train_cases, "val": val_cases}

    @staticmethod
    def fit_member(job: MemberJob) -> MemberOutput:
        """One U-Net (seed ``train.seed + k``) on random patches for its share of the budget; keeps the final
        (EMA) weights, or the best validation Dice's with ``train.checkpoint=best_val``."""
        from medlearn.engine.trainer import best_checkpoint, ema_callbacks
        from medlearn.tasks.segment.module import SegmentationModule

        plan: SegmentationPlan = job.plan
        t = plan.train
        cache = Path(job.payload["cache"])
        train_cache = build_cache(job.payload["train"], plan, cache, t.seed)
        val_cache = build_cache(job.payload["val"], plan, cache, t.seed)
        module = SegmentationModule(plan.to_dict())
        trainer = job.trainer("val_dice", "max", t.patience, callbacks=ema_callbacks(t.ema_decay))
        started = time.perf_counter()
        job.fit(trainer, module, patch_loader(train_cache, plan, t.seed), whole_case_loader(val_cache))
        seconds = time.perf_counter() - started
        best = best_checkpoint(trainer) if t.checkpoint == "best_val" else None
        if best:
            state = job.best_state(trainer)
            if state is not None:
                module.load_state_dict(state)
        return MemberOutput({"net": module.net.state_dict()},
                            summary={"weights": Path(best).name if best else "final", "steps": int(trainer.global_step),
                                     "seconds": round(seconds, 1)})

    def assemble(self, plan: SegmentationPlan, payload: dict[str, Any], members: list[TrainedMember],
                 data: SegmentationData, splits: Splits, run: RunDirectory) -> Segmenter:
        """The members as one network; the largest-component filter chosen on the validation cases."""
        from medlearn.tasks.segment.evaluate import score_cases

        net = assemble_members(plan, [m.load().tensors["net"] for m in members])
        trained: list[MSDCase] = payload["train"]
        extras = {"trained_cases": [c.name for c in trained],
                  "seen_images": cached_digests(trained, Path(payload["cache"])),
                  "intensity": training_intensity(trained),
                  "members": [m.summary for m in members]}
        model = Segmenter.from_parts(plan, net, extras=extras)
        scored = score_cases(model, payload["val"], choose=True)
        model.postprocessing_ = scored.postprocessing or {"largest_component": False}
        model.__dict__["_scored_validation"] = scored  # evaluate() reports these predictions, not new ones
        return model

    # -- evaluation ----------------------------------------------------------------------------------
    def evaluate(self, model: Segmenter, data: SegmentationData, splits: Splits | None, n_boot: int
                 ) -> dict[str, Any]:
        from medlearn.tasks.segment.evaluate import score_cases, split_metrics

        seed = model.plan_.train.seed
        if splits is None:  # evaluate RUN DATA: every labelled case
            scored = score_cases(model, data.cases)
            data.digests.update(scored.digests)
            return {"all": split_metrics(scored, n_boot, seed), "_overlays": scored.overlays}
        val_cases = validation_cases(data, splits)
        scored = model.__dict__.pop("_scored_validation", None) or score_cases(model, val_cases)
        trained = set(model.extras_.get("trained_cases", []))
        val = split_metrics(scored, n_boot, seed)
        # seen_in_training: the validation figures are then optimistic (the cases were learnt from)
        val["seen_in_training"] = bool(trained & {c.name for c in val_cases})
        val["postprocessing"] = dict(model.postprocessing_)
        members = model.extras_.get("members", [])
        steps = [int(m.get("steps", 0)) for m in members]
        training = {"steps": sum(steps), "steps_per_member": steps,
                    "patches_seen": sum(steps) * model.plan_.train.batch_size, "cases_trained_on": len(trained),
                    "weights": [m.get("weights") for m in members]}
        return {"dataset": str(data.source), "val": val, "training": training, "_overlays": scored.overlays}

    def report(self, path: Path, model: Segmenter, data: SegmentationData, splits: Splits | None,
               metrics: dict[str, Any], run: RunDirectory | None, title: str) -> None:
        from medlearn.tasks.segment.report import write_report

        write_report(path, model, data, splits, metrics, run, title)

    def seen_in_training(self, model: Segmenter, data: SegmentationData) -> int:
        from medlearn.data.msd import load_case_image
        from medlearn.tasks.segment.data import image_digest

        seen = set(model.extras_.get("seen_images", []))
        digests = [data.digests.get(c.name) or image_digest(load_case_image(c)[0]) for c in data.cases]
        return sum(d in seen for d in digests)

    def headline(self, metrics: dict[str, Any]) -> dict[str, Any]:
        from medlearn.tasks.segment.report import headline_rows

        return headline_rows(metrics)


def training_cases(plan: SegmentationPlan, data: SegmentationData, splits: Splits) -> list[MSDCase]:
    """The cases members learn from: train (dataset order), then validation when the plan trains on it
    too or nothing else is left."""
    train, val = splits.mask("train"), splits.mask("val")
    cases = [c for c, t in zip(data.cases, train, strict=True) if t]
    if plan.train.train_on_val_cases or not cases:
        cases += [c for c, v in zip(data.cases, val, strict=True) if v]
    return cases


def validation_cases(data: SegmentationData, splits: Splits) -> list[MSDCase]:
    """The cases that monitor training and choose the post-processing (the training cases without any)."""
    val = [c for c, v in zip(data.cases, splits.mask("val"), strict=True) if v]
    return val or [c for c, t in zip(data.cases, splits.mask("train"), strict=True) if t]


def cached_digests(cases: list[MSDCase], cache: Path) -> list[str]:
    """Raw-image digests of cached cases (written by :func:`~medlearn.tasks.segment.data.build_cache`)."""
    out = []
    for case in cases:
        done = cache / f"{case.name}.json"
        if done.exists():
            out.append(json.loads(done.read_text()).get("digest", ""))
    return [d for d in out if d]


def timing_module(plan: SegmentationPlan) -> Any:
    """The plan's LightningModule in its training memory layout, not compiled (a ~45 s compile would
    dwarf the few steps the engine times)."""
    from medlearn.tasks.segment.module import SegmentationModule

    module = SegmentationModule(plan.to_dict())
    module.use_training_layout()
    return module


def assemble_members(plan: SegmentationPlan, state_dicts: list[dict[str, torch.Tensor]]) -> torch.nn.Module:
    """The plan's network (one member, or :class:`~.module.MeanLogits` over all) with the trained weights."""
    from medlearn.tasks.segment.module import build_segmentation_net

    net = build_segmentation_net(plan)
    targets = net.members if len(state_dicts) > 1 else [net]
    for target, state in zip(targets, state_dicts, strict=True):
        target.load_state_dict(state)
    return net.eval()


TASK = SegmentTask()
