"""Run-directory workflows: train a generator, sample from it, evaluate it (metrics + report)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medlearn.engine.rundir import RunDirectory
from medlearn.errors import InputError
from medlearn.molgen.api import MoleculeGenerator
from medlearn.molgen.metrics import generation_metrics, plot_property_distributions
from medlearn.molgen.plan import GeneratorPlan


@dataclass
class GenerateTrainOptions:
    data: str
    out: str
    smiles_column: str | None = None
    model: str = "lstm"
    overrides: list[str] | None = None
    plan_file: str | None = None
    seed: int = 0
    force: bool = False
    resume: bool = False
    progress: bool = True


def build_plan(model: str, overrides: list[str] | None, plan_file: str | None) -> GeneratorPlan:
    from medlearn.plan import parse_overrides

    return GeneratorPlan(model=model).apply_overrides(parse_overrides(overrides, plan_file))


def train_generator(opts: GenerateTrainOptions, echo: Callable[[str], None] = print) -> dict:
    """Read the CSV, train, sample ``plan.eval_samples`` molecules, write metrics + report last."""
    from medlearn.chem.data import describe_invalid, load_smiles_csv
    from medlearn.engine.seed import configure_cpu_threads

    plan = build_plan(opts.model, opts.overrides, opts.plan_file)
    table = load_smiles_csv(opts.data, opts.smiles_column, require_targets=False)
    note = describe_invalid(table)
    if note:
        echo(note)
    run = RunDirectory(Path(opts.out))
    resuming = run.prepare(force=opts.force, resume=opts.resume)
    configure_cpu_threads()
    echo(plan.describe())
    plan.save(run.plan_file)
    run.write_config({"data": opts.data, "smiles_column": opts.smiles_column, "model": opts.model,
                      "overrides": opts.overrides or [], "plan_file": opts.plan_file, "seed": opts.seed})
    run.write_versions(opts.seed)
    gen = MoleculeGenerator(plan, opts.seed).fit(table.smiles, run_dir=run, progress=opts.progress,
                                                 echo=echo, resume=resuming)
    gen.save(run.model_file)
    return evaluate_run(run.path, plan.eval_samples, None, opts.seed, echo,
                        extra={"training": {"n_molecules": len(gen.training_smiles_),
                                            "n_invalid_rows": len(table.invalid_rows),
                                            "n_skipped_too_long": gen.n_skipped_, **gen.history_}})


def sample_run(run_path: str | Path, n: int, temperature: float | None = None, seed: int = 0,
               score: Callable | None = None, min_score: float | None = None, focus_rounds: int = 0) -> list[str]:
    """``n`` molecules from a finished run; ``focus_rounds`` > 0 first fine-tunes (in memory) towards
    high ``score``, ``min_score`` keeps only molecules scoring at least that."""
    run = RunDirectory(Path(run_path)).require_finished()
    if n < 1:
        raise InputError("-n", f"must be >= 1, got {n}")
    gen = MoleculeGenerator.load(run.model_file)
    if focus_rounds > 0 and score is not None:
        gen.focus(score, rounds=focus_rounds, seed=seed)
    return gen.sample(n, temperature, score=score, min_score=min_score, seed=seed)


def evaluate_run(run_path: str | Path, n: int = 2000, temperature: float | None = None, seed: int = 0,
                 echo: Callable[[str], None] = print, extra: dict | None = None) -> dict:
    """Sample ``n`` molecules, compute the metrics, write ``report.html`` then ``metrics.json``."""
    from medlearn.evaluation.report import Report
    from medlearn.io import write_json

    run = RunDirectory(Path(run_path)).require_finished()
    gen = MoleculeGenerator.load(run.model_file)
    temperature = gen.plan.temperature if temperature is None else temperature
    samples = gen.sample(n, temperature, seed=seed)
    metrics = generation_metrics(samples, gen.training_smiles_, set(gen.training_smiles_))
    metrics["temperature"] = temperature
    metrics["model"] = gen.plan.model
    metrics["representation"] = gen.plan.representation
    metrics.update(extra or {})
    if extra is None and run.metrics_file.exists():  # keep what training recorded
        import json

        metrics["training"] = json.loads(run.metrics_file.read_text()).get("training")
    report = Report("Molecule generation", f"{gen.plan.model} over {gen.plan.representation}, "
                                           f"{n} samples at temperature {temperature}")
    report.add_metrics({k: v for k, v in metrics.items() if k in (
        "validity", "uniqueness", "novelty", "internal_diversity", "n_generated")}, caption="Generation metrics")
    if "property_means" in metrics:
        report.add_table([{"property": k, "generated mean": v["generated"], "training mean": v["training"],
                           "Wasserstein": metrics["property_wasserstein"][k]}
                          for k, v in metrics["property_means"].items()], caption="Property distributions")
        valid = [s for s in dict.fromkeys(samples) if s]
        rng = np.random.default_rng(seed)
        train_sub = list(rng.choice(gen.training_smiles_, min(5000, len(gen.training_smiles_)), replace=False))
        report.add_figure(plot_property_distributions(valid, train_sub), "properties",
                          caption="QED, logP and molecular weight: generated vs training molecules")
    report.add_table([{"SMILES": s} for s in samples[:20]], caption="First 20 samples")
    report.add_training_curves(run.logs_dir / "metrics.csv")
    report.write(run.report_file)
    write_json(run.metrics_file, metrics)
    echo(f"validity {metrics['validity']:.3f}  uniqueness {metrics['uniqueness']:.3f}  "
         f"novelty {metrics['novelty']:.3f}  internal diversity {metrics['internal_diversity']:.3f}")
    return metrics
