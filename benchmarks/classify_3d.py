"""3D classification with the default plan on a MedMNIST-3D-sized set: does it finish within 30 CPU-minutes?

No MedMNIST 3D set is on this machine (and nothing may be downloaded), so the set is made of 28^3 crops of
the real T1 brain MRI in ``voxelmorph_brain_t1_aseg`` (FreeSurfer aseg labels): the class of a crop is the
structure at its centre (cerebral white matter, cortex, lateral ventricle, thalamus, cerebellum cortex,
hippocampus), the crops are jittered in position and intensity (gamma, noise), and the split is anatomical:
train and validation crops come from the left hemisphere, test crops from the right one (no voxel of a test
crop's centre region was trained on). ~1,200 training crops, as the issue's MedMNIST-3D-sized example.

The MedMNIST v2 3D baselines (ResNet-18+3D, AUC ~.83-.86 across the 3D sets) are for context only: a
different task on different data.

    python benchmarks/classify_3d.py [--train 1200] [--seed 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import data_root, environment, load_average, write_results

STRUCTURES = {"cerebral white matter": (2, 41), "cerebral cortex": (3, 42), "lateral ventricle": (4, 43),
              "thalamus": (10, 49), "cerebellum cortex": (8, 47), "hippocampus": (17, 53)}
SIDE = 28
BUDGET_MINUTES = 30.0


def make_crops(n_train: int, seed: int) -> dict[str, np.ndarray]:
    """MedMNIST-3D layout arrays: ``{split}_images`` (N, D, H, W) uint8, ``{split}_labels`` (N, 1)."""
    scan = np.load(data_root() / "voxelmorph_brain_t1_aseg" / "test_scan.npz")
    vol, seg = scan["vol"].astype(np.float32), scan["seg"].astype(np.int32)
    rng = np.random.default_rng(seed)
    half, mid = SIDE // 2, vol.shape[0] // 2  # axis 0 is left-right in this scan
    sizes = {"train": n_train, "val": max(60, n_train // 8), "test": max(120, n_train // 4)}
    centres = {}  # (structure, left?) -> candidate crop centres
    for label, ids in enumerate(STRUCTURES.values()):
        mask = np.isin(seg, ids)
        for left in (True, False):
            side = mask.copy()
            side[mid:] = False if left else side[mid:]
            side[:mid] = side[:mid] if left else False
            centres[label, left] = np.argwhere(side[half:-half, half:-half, half:-half]) + half
    out: dict[str, np.ndarray] = {}
    for split, n in sizes.items():
        images, labels = [], []
        left = split != "test"
        for k in range(n):
            label = k % len(STRUCTURES)
            coords = centres[label, left]
            x, y, z = coords[rng.integers(len(coords))] + rng.integers(-2, 3, 3)
            x, y, z = (int(np.clip(c, half, s - half)) for c, s in zip((x, y, z), vol.shape, strict=True))
            crop = vol[x - half:x + half, y - half:y + half, z - half:z + half]
            crop = np.clip(crop, 0, 1) ** rng.uniform(0.8, 1.25) + rng.normal(0, 0.02, crop.shape)
            images.append((np.clip(crop, 0, 1) * 255).astype(np.uint8))
            labels.append(label)
        order = rng.permutation(n)
        out[f"{split}_images"] = np.stack(images)[order]
        out[f"{split}_labels"] = np.asarray(labels, np.int64)[order, None]
    return out


def main() -> None:
    from medlearn.engine.workflow import train
    from medlearn.tasks import get_task
    from medlearn.tasks.base import TrainRequest

    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="medlearn-3d-") as tmp:
        data = Path(tmp) / "crops3d.npz"
        np.savez(data, **make_crops(args.train, args.seed))
        lines: list[str] = []
        load_before = load_average()
        started = time.perf_counter()
        request = TrainRequest("classify", str(data), str(Path(tmp) / "run"), seed=args.seed, progress=False)
        metrics = train(get_task("classify"), request, echo=lambda *a, **k: lines.append(" ".join(map(str, a))))
        wall = time.perf_counter() - started
        plan = (Path(tmp) / "run" / "plan.json").read_text()
    import json

    plan = json.loads(plan)
    test, training = metrics["test"], metrics["training"]
    planned = training.get("planned", {})
    notes = [line for line in lines if line.startswith(("note", "warning", "Training:"))]
    row = {"n_train": args.train, "seed": args.seed, "test_auc": test["auc"], "test_accuracy": test["accuracy"],
           "wall_minutes": round(wall / 60, 2), "train_minutes": round(training["seconds"] / 60, 2),
           "network": plan["network"], "ensemble": plan["train"]["ensemble"], "max_epochs": plan["train"]["max_epochs"],
           "batch_size": plan["train"]["batch_size"], "planned": planned, "notes": notes,
           "epochs_per_member": [m.get("epochs") for m in training["per_member"]],
           "load_average_1min_before": load_before, "load_average_1min_after": load_average()}
    met = wall / 60 <= BUDGET_MINUTES
    auc, acc = test["auc"], test["accuracy"]
    md = "\n".join([
        "### 3D classification, MedMNIST-3D-sized (28^3 crops of a real T1 brain, 6 structures, default plan)", "",
        "| training crops | test AUC [95% CI] | test ACC [95% CI] | wall time | plan | goal |",
        "|---|---|---|---|---|---|",
        f"| {args.train} | {auc['value']:.3f} [{auc['ci95'][0]:.3f}, {auc['ci95'][1]:.3f}] | "
        f"{acc['value']:.3f} [{acc['ci95'][0]:.3f}, {acc['ci95'][1]:.3f}] | {wall / 60:.1f} min | "
        f"{plan['network']['name']} widths {plan['network']['widths']}, {row['ensemble']} member(s) x "
        f"{row['max_epochs']} epochs, batch {row['batch_size']} | finished within {BUDGET_MINUTES:g} min: "
        f"{'yes' if met else 'no'} |", "",
        "What the plan said before training: " + " / ".join(notes) if notes else "",
        "",
        "Crops: class = the structure at the crop's centre; train/val from the left hemisphere, test from the right. "
        "The MedMNIST v2 3D ResNet-18 baselines (AUC ~.83-.86) are on other data and tasks: context, not a target. "
        f"Load average {load_before:.2f} before, {row['load_average_1min_after']:.2f} after."])
    headline = [{"task": "classify", "benchmark": f"3D, {args.train} crops of 28^3 (default plan)",
                 "medlearn": f"AUC {auc['value']:.3f} / ACC {acc['value']:.3f}, {wall / 60:.1f} min",
                 "reference": "goal: finished in 30 CPU-min (was hours)", "goal met": "yes" if met else "no"}]
    write_results("classify_3d", {"row": row, "headline": headline, "environment": environment()}, md)
    print(md)


if __name__ == "__main__":
    main()
