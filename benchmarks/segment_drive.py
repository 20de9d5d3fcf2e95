"""DRIVE retinal vessels: `medlearn segment` with default settings vs the MONAI U-Net anchor.

python benchmarks/segment_drive.py [--minutes 30] [--work runs/bench-drive]

Protocol (as ../shared/benchmarks/imaging/ANCHORS.md): train on the 20 official training images
(medlearn's plan trains on all 20; 4 of them, seeded, are the validation cases that monitor training and
choose the post-processing), test on the 20 official test images; metrics
pooled over all FOV pixels against 1st_manual, threshold 0.5 (argmax), AUC from the probabilities.
Every default was chosen on validation images; the test labels are only read at the end.
Writes benchmarks/results/segment_drive.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("MEDLEARN_DATA", HERE.parent.parent / "shared" / "data"))
ANCHORS = HERE.parent.parent / "shared" / "benchmarks" / "imaging" / "results_drive.json"
PUBLISHED = {"U-Net (Alom et al. 2018)": {"f1": 0.8142, "auc": 0.9755},
             "SA-UNet (Guo et al. 2021)": {"f1": 0.8263, "auc": 0.9864}}


def import_drive(work: Path) -> tuple[Path, Path]:
    from medlearn.data.msd import import_pairs

    drive = DATA / "drive"
    train, test = work / "drive_train", work / "drive_test"
    if not (train / "dataset.json").exists():
        import_pairs(drive / "training/images", drive / "training/1st_manual", train, drive / "training/mask")
    if not (test / "dataset.json").exists():
        import_pairs(drive / "testing/images", drive / "testing/1st_manual", test, drive / "testing/mask")
    return train, test


def second_observer(test: Path) -> dict[str, float]:
    from medlearn.data.images import read_image
    from medlearn.data.msd import load_msd_dataset, read_mask
    from medlearn.evaluation.segmentation import pooled_binary_metrics

    ds = load_msd_dataset(test)
    probs, truths, rois = [], [], []
    for case in ds.training:
        number = int(case.name.split("_")[-1])
        obs2 = read_mask(DATA / "drive" / "testing" / "2nd_manual" / f"{number:02d}_manual2.gif")[0][0]
        probs.append((obs2 > 127).astype(np.float32))  # palette grey 3 / 253
        truths.append(read_image(case.label, dtype=None)[0][0])
        rois.append(read_image(case.roi, dtype=None)[0][0] > 0)
    out = pooled_binary_metrics(probs, truths, rois)
    out.pop("auc")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=None, help="override the plan's time budget")
    parser.add_argument("--work", type=Path, default=HERE.parent / "runs" / "bench-drive")
    parser.add_argument("--set", action="append", default=[], help="plan override key=value (not default!)")
    parser.add_argument("--tag", default="segment_drive")
    parser.add_argument("--skip-train", action="store_true")
    args = parser.parse_args()

    import torch

    from medlearn.data.msd import load_msd_dataset
    from medlearn.engine.workflow import train as run_training
    from medlearn.tasks import get_task
    from medlearn.tasks.base import TrainRequest
    from medlearn.tasks.segment.evaluate import score_cases, split_metrics
    from medlearn.tasks.segment.model import Segmenter

    args.work.mkdir(parents=True, exist_ok=True)
    train, test = import_drive(args.work)
    run = args.work / f"run-{args.tag}"
    overrides = list(args.set)
    if args.minutes is not None:
        overrides.append(f"train.max_minutes={args.minutes}")
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    if not args.skip_train:  # the engine prints the plan, the measured step time and any undertraining warning
        run_training(get_task("segment"), TrainRequest("segment", str(train), str(run), overrides, force=True,
                                                       progress=False), echo=print)
    wall = time.perf_counter() - t0
    metrics = json.loads((run / "metrics.json").read_text())

    ds = load_msd_dataset(test)
    results, cis = {}, {}
    for label, engine, mirror in (("medlearn (default: ONNX Runtime, whole image)", "onnx", False),
                                  ("medlearn + mirroring TTA (not default)", "onnx", True)):
        model = Segmenter.load(run, engine=engine)
        model.plan_.inference.mirror_tta = mirror
        start = time.perf_counter()
        scored = score_cases(model, ds.training, surface=False, n_overlays=0)
        seconds = time.perf_counter() - start
        dice = [v["foreground"]["dice"] for v in scored.per_case.values()]
        results[label] = {**scored.pooled.values(), "mean_per_image_dice": float(np.mean(dice)),
                          "eval_seconds_per_image": round(seconds / len(ds.training), 3)}
        # 95% bootstrap CIs over the 20 test images (pooled pixels; Dice per image)
        summary = split_metrics(scored, 1000, 0)
        cis[label] = {"pooled": summary["pooled"], "dice": summary["classes"]["foreground"]["dice"]}
        print(label, json.dumps(results[label]), flush=True)
    anchors = json.loads(ANCHORS.read_text()) if ANCHORS.exists() else {}
    out = {
        "benchmark": "DRIVE vessel segmentation, official 20/20 split, pooled FOV pixels vs 1st_manual",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "overrides": overrides,
        "torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_average_start": load_start, "load_average_end": os.getloadavg(),
        "train": metrics["training"], "validation_pooled": metrics["val"].get("pooled"),
        "validation_seen_in_training": metrics["val"].get("seen_in_training", False),
        "postprocessing": metrics["val"].get("postprocessing"),
        "wall_seconds_total": round(wall, 1),
        "test": results, "test_ci95": cis,
        "second_observer": second_observer(test),
        "anchor_monai_unet_best_val": anchors.get("test_best_val"),
        "anchor_iterations": anchors.get("iterations"), "anchor_train_seconds": anchors.get("train_seconds"),
        "published": PUBLISHED,
        "goal": {"f1": 0.82, "auc": 0.98, "train_minutes": 30},
    }
    default = results["medlearn (default: ONNX Runtime, whole image)"]
    met = default["f1"] >= 0.82 and default["auc"] >= 0.98
    out["headline"] = [{"task": "segment", "benchmark": "DRIVE test (20 images, FOV pixels)",
                        "medlearn": f"AUC {default['auc']:.4f} / F1 {default['f1']:.4f}, "
                                    f"{metrics['training']['seconds'] / 60:.0f} min training",
                        "reference": "U-Net (Alom 2018) 0.9755 / 0.8142; SA-UNet 0.9864 / 0.8263",
                        "goal met": "yes" if met else "no"}]
    res_dir = HERE / "results"
    from medlearn.io import write_json, write_text

    write_json(res_dir / f"{args.tag}.json", out)
    rows = ["| model | AUC | F1 | Acc | Se | Sp | mean per-image Dice |", "|---|---|---|---|---|---|---|"]
    for name, m in results.items():
        rows.append(f"| {name} | {m['auc']:.4f} | {m['f1']:.4f} | {m['accuracy']:.4f} | {m['sensitivity']:.4f} | "
                    f"{m['specificity']:.4f} | {m['mean_per_image_dice']:.4f} |")
    if anchors.get("test_best_val"):
        a = anchors["test_best_val"]
        rows.append(f"| MONAI U-Net anchor (20 min, ANCHORS.md) | {a['auc']:.4f} | {a['f1']:.4f} | {a['acc']:.4f} | "
                    f"{a['sens']:.4f} | {a['spec']:.4f} | {a['mean_per_image_dice']:.4f} |")
    h = out["second_observer"]
    rows.append(f"| 2nd human observer | – | {h['f1']:.4f} | {h['accuracy']:.4f} | {h['sensitivity']:.4f} | "
                f"{h['specificity']:.4f} | – |")
    for name, m in PUBLISHED.items():
        rows.append(f"| {name} (published) | {m['auc']:.4f} | {m['f1']:.4f} | – | – | – | – |")
    tr = metrics["training"]
    default = cis["medlearn (default: ONNX Runtime, whole image)"]["pooled"]
    planned = tr.get("planned", {})
    text = (f"# DRIVE: medlearn segment (defaults{', overrides ' + str(overrides) if overrides else ''})\n\n"
            + "\n".join(rows)
            + f"\n\nTraining: {tr['steps']} steps in {tr['seconds']} s ({tr['steps'] / max(tr['seconds'], 1e-9):.3f} "
            f"it/s, {tr['patches_seen']} patches) {_workers_text(tr)}; load average at start "
            f"{load_start[0]:.1f}; step time measured before training {planned.get('seconds_per_step', 'n/a')} s "
            f"(~{planned.get('steps_in_budget', 'n/a')} steps per member in the budget, the evidence wants "
            f"{planned.get('steps_wanted', 'n/a')}). Test 95% bootstrap CIs over the 20 images (default row): "
            f"AUC {_ci(default['auc'])}, F1 {_ci(default['f1'])}. "
            f"Goal: F1 >= 0.82 and AUC >= 0.98 within 30 min of CPU training.\n")
    write_text(res_dir / f"{args.tag}.md", text)
    print(text)


def _ci(entry: dict) -> str:
    ci = entry.get("ci95")
    return f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "(not estimable)"


def _workers_text(training: dict) -> str:
    """How the training used the CPU: ensemble members side by side, or one network on N threads."""
    from _common import members_text

    if members := members_text(training):
        return f"by {members}, on {os.cpu_count()} cores"
    import torch

    return f"on {torch.get_num_threads()} CPU thread(s)"


if __name__ == "__main__":
    main()
