"""Generation evaluation: sample the model, score the samples against a reference set of molecules, and
the report's sections.

The metrics (GuacaMol, Brown et al. 2019; MOSES, Polykovskiy et al. 2020) come from
:mod:`medlearn.evaluation.generation` (validity, uniqueness and novelty with 95% bootstrap CIs over the
samples; internal diversity over Morgan fingerprints, radius 2, 2048 bits, of the distinct valid
molecules; Wasserstein distances) with the chemistry of :mod:`medlearn.chem.properties` (canonical
SMILES as a sample's identity; QED, Crippen logP and molecular weight as its properties). The reference
is the training set after training, and the given SMILES CSV for ``evaluate RUN DATA``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlearn.chem.properties import PROPERTIES, PROPERTY_LABELS, canonical_all, molecular_properties, morgan_bits
from medlearn.evaluation.generation import finite, internal_diversity, sample_fractions, wasserstein_distances
from medlearn.evaluation.report import Report

if TYPE_CHECKING:
    from medlearn.engine.rundir import RunDirectory
    from medlearn.tasks.generate.model import MoleculeGenerator

HEADLINE = ("validity", "uniqueness", "novelty", "internal_diversity")
N_SHOWN = 20


def generation_metrics(generated: Sequence[str], reference: Sequence[str], n_boot: int = 1000, seed: int = 0,
                       with_properties: bool = True, reference_is_canonical: bool = False) -> dict[str, Any]:
    """Every metric of ``generated`` SMILES against the ``reference`` SMILES.

    Returns ``n_generated``, ``validity``, ``uniqueness``, ``novelty`` (``{"value", "ci95"}``), the counts
    ``n_valid``, ``n_unique``, ``n_novel``, ``internal_diversity`` and, with ``with_properties``,
    ``property_means`` (``{name: {"generated", "reference"}}``) and ``property_wasserstein``.
    """
    keys = canonical_all(generated)
    reference_set = set(reference) if reference_is_canonical else {c for c in canonical_all(reference) if c}
    metrics = sample_fractions(keys, reference_set, n_boot, seed)
    unique = sorted({k for k in keys if k is not None})
    metrics["internal_diversity"] = internal_diversity(morgan_bits(unique)) if len(unique) > 1 else float("nan")
    if with_properties and unique:
        generated_props = molecular_properties(unique)
        reference_props = molecular_properties(sorted(reference_set))
        metrics["property_means"] = {k: {"generated": _mean(generated_props[k]), "reference": _mean(reference_props[k])}
                                     for k in PROPERTIES}
        metrics["property_wasserstein"] = wasserstein_distances(generated_props, reference_props)
    return metrics


def _mean(values: np.ndarray) -> float:
    values = finite(values)
    return float(values.mean()) if values.size else float("nan")


def evaluate_generator(model: MoleculeGenerator, reference: Sequence[str], reference_name: str, n: int,
                       temperature: float | None, seed: int | None, n_boot: int,
                       reference_is_canonical: bool = False) -> dict[str, Any]:
    """Sample ``n`` molecules (``seed`` None: the plan's) and score them against ``reference``.

    ``_samples`` (the samples, for the report) and ``_reference`` are removed before ``metrics.json``.
    """
    plan = model.plan_
    temperature = plan.temperature if temperature is None else temperature
    seed = plan.train.seed if seed is None else int(seed)
    samples = model.sample(n, temperature, seed=seed)
    metrics = generation_metrics(samples, reference, n_boot, seed, reference_is_canonical=reference_is_canonical)
    metrics.update({"reference": reference_name, "temperature": temperature, "seed": seed,
                    "network": plan.network.name, "representation": plan.representation,
                    "_samples": samples, "_reference": list(reference)})
    return metrics


def headline_rows(metrics: dict[str, Any]) -> dict[str, Any]:
    """The printed numbers: validity, uniqueness, novelty (with CIs) and internal diversity."""
    from medlearn.evaluation.report import format_value

    return {k: format_value(metrics[k], "{:.3f}") for k in HEADLINE if k in metrics}


def write_report(path: Path, model: MoleculeGenerator, metrics: dict[str, Any], run: RunDirectory | None,
                 title: str) -> None:
    """Metrics, property distributions, the first samples, training curves (a run) and the plan."""
    plan = model.plan_
    samples: list[str] = metrics.get("_samples", [])
    report = Report(title, f"{plan.network.name} over {plan.representation}, {metrics['n_generated']} samples at "
                           f"temperature {metrics['temperature']:g}, against {metrics['reference']}")
    seen = metrics.get("seen_in_training", {})
    if seen.get("items"):
        report.add_paragraph(f"{seen['items']} of {seen['of']} reference molecules are training molecules: "
                             "novelty against them and the match of their properties are optimistic, not measured "
                             "against unseen molecules.")
    report.add_metrics({k: metrics[k] for k in ("n_generated", "n_valid", "n_unique", "n_novel", *HEADLINE)
                        if k in metrics}, caption="Generation metrics (95% bootstrap CIs over the samples)")
    if "property_means" in metrics:
        report.add_table([{"property": PROPERTY_LABELS[k], "generated mean": v["generated"],
                           "reference mean": v["reference"], "Wasserstein": metrics["property_wasserstein"][k]}
                          for k, v in metrics["property_means"].items()], caption="Property distributions")
        valid = [s for s in dict.fromkeys(samples) if s]
        reference = metrics.get("_reference", [])
        rng = np.random.default_rng(metrics.get("seed", 0))
        shown = list(rng.choice(reference, min(5000, len(reference)), replace=False)) if reference else []
        if valid and shown:
            report.add_figure(plot_property_distributions(valid, shown), "properties",
                              caption="QED, logP and molecular weight: generated vs reference molecules")
    report.add_table([{"SMILES": s} for s in samples[:N_SHOWN]], caption=f"First {N_SHOWN} samples")
    if run is not None:
        report.add_training_curves(run.logs_dir / "metrics.csv")
    report.add_heading("Plan", 3)
    report.add_preformatted(plan.describe())
    report.write(path)


def plot_property_distributions(generated: Sequence[str], reference: Sequence[str]) -> Any:
    """A matplotlib figure: histograms of QED, logP and MW, generated vs reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gen, ref = molecular_properties(generated), molecular_properties(reference)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, key in zip(axes, PROPERTIES, strict=True):
        both = np.concatenate([finite(gen[key]), finite(ref[key])])
        if both.size == 0:
            continue
        bins = np.linspace(np.percentile(both, 0.5), np.percentile(both, 99.5), 40)
        ax.hist(finite(ref[key]), bins=bins, density=True, alpha=0.5, label="reference")
        ax.hist(finite(gen[key]), bins=bins, density=True, alpha=0.5, label="generated")
        ax.set_xlabel(PROPERTY_LABELS[key])
        ax.set_yticks([])
    axes[0].legend(frameon=False)
    fig.tight_layout()
    return fig
