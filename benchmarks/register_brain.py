"""3D brain registration benchmark: medlearn's default plan vs SimpleITK B-spline vs ANTs SyN, side by side.

Data: the real T1 MRI and its FreeSurfer aseg labels of ``voxelmorph_brain_t1_aseg`` (160x192x224, 1 mm).
Each pair is two independent random transforms of the scan (``synthetic.py``: a random affine, a smooth
random field, and realistic intensity changes: bias field, gamma and noise), so the true field is known;
training pairs come from the ``train`` seed stream, validation pairs from ``val``, test pairs from ``test``:
no test deformation is ever trained on. (There is no second real subject in the data; inter-subject
anatomy differences are therefore absent, which favours every method alike.)

Scored on the test pairs with the same code for all methods (:func:`medlearn.evaluation.registration.pair_metrics`):
Dice of the warped moving labels over VoxelMorph's 30 structures (``STRUCTURES``: the ids of the
VoxelMorph repository's ``data/labels.npz``, checked against the copy in the data folder; Balakrishnan et al.
2019, IEEE TMI 38:1788, Dice over these structures), folding % (``det J <= 0``), SDlogJ, TRE (mm, inside
the brain) and seconds per pair (registration only; reading and writing excluded) on this machine's 2 cores.

* medlearn: ``medlearn register train`` on the training CSV with the default plan (no override), then the
  API's ``register_pair`` (the default, instance optimisation included, and the network alone);
* SimpleITK: the product's ``--method bspline`` (affine + cubic B-spline, correlation) with the run's
  classical defaults;
* ANTs SyN: ``antspyx`` installed in a separate venv for this benchmark only (``python3.11 -m venv
  /tmp/bench-venv && /tmp/bench-venv/bin/pip install antspyx``; not a medlearn dependency), called in a
  subprocess running this same file with ``--ants-worker`` (that interpreter has no medlearn): affine +
  SyN with cross-correlation (``ants.registration(type_of_transform="SyN", syn_metric="CC", ...)``, see
  ``SYN``). Its Jacobian is that of the SyN warp (the affine part has one positive determinant).

Also scored: the medlearn default without its finer refinement level and the network alone (the same run), and
the known field itself (the ceiling: the labels are resampled twice by nearest neighbour). One untimed
registration runs first, so no pair pays the first call's imports.

Published anchors (context, not this data): VoxelMorph, TMI 2019, atlas-based brain MRI, Dice over the 30
structures: affine 0.584, ANTs SyN 0.749 (~9,000 s CPU per pair), VoxelMorph 0.753 (57 s CPU).

    .venv/bin/python benchmarks/register_brain.py [--minutes M] [--n-test N] [--syn-python /tmp/bench-venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

#: VoxelMorph's 30 evaluation structures (FreeSurfer aseg ids; voxelmorph repository ``data/labels.npz``)
STRUCTURES = (2, 3, 4, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 24, 28, 31, 41, 42, 43, 46, 47, 49, 50, 51, 52, 53,
              54, 60, 63)
N_TRAIN, N_VAL, N_TEST = 24, 4, 4  # 4 test pairs: ANTs SyN takes ~11 min per pair on these 2 cores
FIELD_FACTOR = 4  # random fields made on a 4x coarser grid (smooth: nothing lost) and resized to 1 mm
#: ANTs SyN: CC (radius 2), SyN[0.25, 3, 0], 3 levels (shrink 4/2/1) with 40/20/10 iterations
SYN = {"type_of_transform": "SyN", "syn_metric": "CC", "syn_sampling": 2, "reg_iterations": (40, 20, 10)}
PUBLISHED = {"affine": 0.584, "ANTs SyN": 0.749, "VoxelMorph": 0.753}
PUBLISHED_SECONDS = {"ANTs SyN": 9000, "VoxelMorph": 57}


def ants_worker(args: list[str]) -> None:
    """Run in the benchmark venv: ``--ants-worker FIXED MOVING MOVING_LABEL OUT``; writes the warped labels,
    the warp's Jacobian and ``result.json`` (seconds)."""
    import os

    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "2")
    import ants

    fixed_path, moving_path, label_path, out = args
    fixed, moving, label = ants.image_read(fixed_path), ants.image_read(moving_path), ants.image_read(label_path)
    started = time.perf_counter()
    reg = ants.registration(fixed, moving, **SYN)
    seconds = time.perf_counter() - started
    warped = ants.apply_transforms(fixed, label, reg["fwdtransforms"], interpolator="nearestNeighbor")
    ants.image_write(warped, str(Path(out) / "warped_label.nii"))
    warp = [t for t in reg["fwdtransforms"] if t.endswith(".nii.gz")][0]
    jac = ants.create_jacobian_determinant_image(fixed, warp, do_log=False)
    ants.image_write(jac, str(Path(out) / "jacobian.nii"))
    ants.image_write(reg["warpedmovout"], str(Path(out) / "warped.nii"))
    (Path(out) / "result.json").write_text(json.dumps({"seconds": seconds, "ants": ants.__version__}))


if __name__ == "__main__" and "--ants-worker" in sys.argv:  # the benchmark venv: no medlearn there
    ants_worker(sys.argv[sys.argv.index("--ants-worker") + 1:])
    raise SystemExit(0)

from _common import ci_footnote, data_root, environment, load_average, value_text, write_results  # noqa: E402


def deformation():
    from medlearn.tasks.register.synthetic import DeformationSettings

    # per image (a pair differs by about twice): smooth field up to 6 mm (sigma 12 mm), +-4 degrees, +-4 %
    # scale, +-4 mm shift; bias field, gamma and noise
    return DeformationSettings(max_displacement=6.0, smoothness=12.0, rotation_deg=4.0, scale=0.04, shear=0.02,
                               translation=4.0, bias=0.2, gamma=0.15, noise=0.02)


def write_pairs(root: Path, vol: np.ndarray, seg: np.ndarray) -> tuple[Path, Path]:
    """``train.csv`` (train + val rows, labels) and ``test.csv`` (labels and known fields), NIfTI at 1 mm."""
    from medlearn.data.images import ImageMeta, write_image
    from medlearn.tasks.register.io import write_displacement_field
    from medlearn.tasks.register.synthetic import make_synthetic_pair

    root.mkdir(parents=True, exist_ok=True)
    meta = ImageMeta("brain", "nifti", vol.shape, (1.0, 1.0, 1.0), np.eye(4))
    rows: dict[str, list[str]] = {"train": [], "test": []}
    for split, n in (("train", N_TRAIN), ("val", N_VAL), ("test", N_TEST)):
        # the seed streams of synthetic_pairs (SeedSequence(0).spawn: train, val, test), one pair at a time
        # (a 1 mm pair with its field is ~200 MB)
        seeds = np.random.SeedSequence(0).spawn(3)[{"train": 0, "val": 1, "test": 2}[split]].generate_state(n)
        for k in range(n):
            started = time.perf_counter()
            seed = int(seeds[k])
            pair = make_synthetic_pair(vol, seg, seed, deformation(), meta, f"{split}_{k:03d}",
                                       field_factor=FIELD_FACTOR)
            stem = f"{split}{k:03d}"
            write_image(root / f"{stem}_f.nii", pair.fixed.astype(np.float32), meta)
            write_image(root / f"{stem}_m.nii", pair.moving.astype(np.float32), meta)
            write_image(root / f"{stem}_fl.nii", pair.fixed_label.astype(np.uint8), meta)
            write_image(root / f"{stem}_ml.nii", pair.moving_label.astype(np.uint8), meta)
            cells = [stem, f"{stem}_f.nii", f"{stem}_m.nii", f"{stem}_fl.nii", f"{stem}_ml.nii"]
            if split == "test":
                write_displacement_field(root / f"{stem}_u.nii", pair.known_ddf, meta)
                rows["test"].append(",".join([*cells, f"{stem}_u.nii"]))
            else:
                rows["train"].append(",".join([*cells, split]))
            print(f"pair {stem}: {time.perf_counter() - started:.1f} s", flush=True)
    head = "name,fixed,moving,fixed_label,moving_label"
    (root / "train.csv").write_text("\n".join([head + ",split", *rows["train"]]) + "\n")
    (root / "test.csv").write_text("\n".join([head + ",displacement", *rows["test"]]) + "\n")
    return root / "train.csv", root / "test.csv"


def score(pair: Any, warped: np.ndarray, warped_label: np.ndarray, ddf: np.ndarray | None, seconds: float,
          jacobian: np.ndarray | None = None) -> dict[str, Any]:
    """Dice over the 30 structures (mean over those present in both maps), folding, SDlogJ, TRE."""
    from medlearn.evaluation.registration import dice_hd95_per_label, pair_metrics, tre_known_field

    ids = [i for i in STRUCTURES if i in set(np.unique(pair.fixed_label).tolist())]
    per = dice_hd95_per_label(warped_label.reshape(pair.spatial_shape), pair.fixed_label[0], ids, hd95=False)
    before = dice_hd95_per_label(pair.moving_label[0], pair.fixed_label[0], ids, hd95=False)
    row = {"name": pair.name, "dice": float(np.nanmean([v["dice"] for v in per.values()])),
           "dice_before": float(np.nanmean([v["dice"] for v in before.values()])), "seconds": seconds,
           "per_structure": {str(i): v["dice"] for i, v in per.items()}}
    if ddf is not None:
        m = pair_metrics(pair.fixed, pair.moving, warped, ddf, spacing=pair.spacing)
        row.update(folding_percent=m["folding_percent"], std_log_jacobian=m["std_log_jacobian"],
                   ncc_after=m["ncc_after"], ncc_before=m["ncc_before"])
        row["tre_mm"] = float(tre_known_field(ddf, pair.known_ddf, pair.spacing, pair.fixed_label[0] > 0).mean())
    if jacobian is not None:
        det = jacobian.reshape(pair.spatial_shape)
        from medlearn.evaluation.registration import folding_percent, global_ncc, log_jacobian_std

        row.update(folding_percent=folding_percent(det), std_log_jacobian=log_jacobian_std(det))

        row.update(ncc_after=global_ncc(warped.reshape(pair.spatial_shape), pair.fixed[0]),
                   ncc_before=global_ncc(pair.moving[0], pair.fixed[0]))
    return row


def known_field_row(pair: Any) -> dict[str, Any]:
    """The pair scored with its true field: the Dice any method can reach here (the labels are resampled twice,
    once when the pair was made and once by the warp, both nearest neighbour)."""
    import torch

    from medlearn.tasks.register.transforms import warp, warp_labels

    u = torch.as_tensor(pair.known_ddf, dtype=torch.float32)[None]
    warped = warp(torch.as_tensor(pair.moving)[None], u)[0].numpy()
    label = warp_labels(torch.as_tensor(pair.moving_label.astype(np.int64))[None], u)[0].numpy()
    return score(pair, warped, label, pair.known_ddf, 0.0)


def run_syn(python: str, pair_source: Any, work: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    import subprocess

    from medlearn.data.images import read_image

    out = work / f"syn_{pair_source.name}"
    out.mkdir(parents=True, exist_ok=True)
    cmd = [python, str(Path(__file__).resolve()), "--ants-worker", str(pair_source.fixed), str(pair_source.moving),
           str(pair_source.moving_label), str(out)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    result = json.loads((out / "result.json").read_text())
    label = read_image(out / "warped_label.nii", dtype=None)[0]
    jac = read_image(out / "jacobian.nii")[0]
    warped = read_image(out / "warped.nii")[0]
    return warped, label, jac, float(result["seconds"])


def summarise(rows: list[dict[str, Any]], n_boot: int = 1000) -> dict[str, Any]:
    from medlearn.evaluation.registration import registration_metrics

    agg = registration_metrics([{k: v for k, v in r.items() if k != "per_structure"} for r in rows], n_boot)
    return {k: {"value": v["value"], "ci95": v["ci95"]} for k, v in agg.items() if isinstance(v, dict) and "value" in v}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=None, help="override train.max_minutes (exploration only)")
    parser.add_argument("--n-test", type=int, default=N_TEST)
    parser.add_argument("--syn-python", default="/tmp/bench-venv/bin/python")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--skip", nargs="*", default=[], help="methods to skip: syn, sitk")
    args = parser.parse_args()

    import tempfile

    from medlearn.engine.workflow import train
    from medlearn.tasks import get_task
    from medlearn.tasks.base import TrainRequest
    from medlearn.tasks.register.data import load_pair, read_pairs_csv
    from medlearn.tasks.register.model import Registrator

    root = data_root() / "voxelmorph_brain_t1_aseg"
    scan = np.load(root / "test_scan.npz")
    listed = tuple(int(i) for i in np.load(root / "labels.npz")["labels"])
    assert listed == STRUCTURES, listed
    vol, seg = scan["vol"].astype(np.float32), scan["seg"].astype(np.int32)
    work = args.work or Path(tempfile.mkdtemp(prefix="medlearn-bench-brain-"))
    load_start = load_average()
    started = time.perf_counter()
    if not (work / "data" / "test.csv").exists():
        write_pairs(work / "data", vol, seg)
    data_seconds = time.perf_counter() - started
    run = work / "run"
    overrides = {"train.max_minutes": args.minutes} if args.minutes else {}
    started = time.perf_counter()
    reused = (run / "metrics.json").exists()
    if not reused:
        metrics = train(get_task("register"), TrainRequest("register", str(work / "data" / "train.csv"), str(run),
                                                           overrides, progress=False, n_boot=200),
                        echo=lambda *a, **k: print(*a, flush=True) if str(a[0]).startswith(("Training", "warning"))
                        else None)
    else:
        metrics = json.loads((run / "metrics.json").read_text())
    train_wall = time.perf_counter() - started
    model = Registrator.load(run)
    plan = model.plan_
    if reused:  # a run trained by earlier code: today's prediction-time defaults (training is unaffected by them)
        from medlearn.tasks.register.plan import refine_rule

        for key, value in refine_rule(plan.ndim).items():
            setattr(plan.inference, key, value)
        train_wall = float(metrics.get("training", {}).get("seconds", 0.0))
    sources = read_pairs_csv(work / "data" / "test.csv").pairs[: args.n_test]
    results: dict[str, list[dict[str, Any]]] = {"medlearn": [], "medlearn (working grid only)": [],
                                                "medlearn (network alone)": [], "SimpleITK B-spline": [],
                                                "ANTs SyN": [], "known field (ceiling)": []}
    # one untimed registration first, on the default path (both refinement levels): lazy imports and
    # first-call allocations are not a pair's cost
    model.register_pair(load_pair(read_pairs_csv(work / "data" / "train.csv").pairs[0]))
    fine_steps = plan.inference.refine_fine_steps
    for source in sources:
        pair = load_pair(source)
        for key, refine, fine in (("medlearn", None, fine_steps), ("medlearn (working grid only)", None, 0),
                                  ("medlearn (network alone)", 0, 0)):
            plan.inference.refine_fine_steps = fine  # the second refinement level on or off
            r = model.register_pair(pair, refine=refine)
            results[key].append(score(pair, r.warped, r.warped_label, r.ddf, r.seconds))
        plan.inference.refine_fine_steps = fine_steps
        results["known field (ceiling)"].append(known_field_row(pair))
        if "sitk" not in args.skip:
            r = model.register_pair(pair, method="bspline")
            results["SimpleITK B-spline"].append(score(pair, r.warped, r.warped_label, r.ddf, r.seconds))
        if "syn" not in args.skip:
            warped, label, jac, seconds = run_syn(args.syn_python, source, work)
            results["ANTs SyN"].append(score(pair, warped, label, None, seconds, jac))
        print(source.name, {k: {m: round(v[-1][m], 4) for m in ("dice", "dice_before", "seconds", "folding_percent")
                                if v and m in v[-1]} for k, v in results.items()}, flush=True)
    results = {k: v for k, v in results.items() if v}
    summary = {k: summarise(v) for k, v in results.items()}
    syn_s = summary.get("ANTs SyN", {}).get("seconds", {}).get("value")
    for s in summary.values():
        s["speed_vs_syn"] = round(syn_s / s["seconds"]["value"], 1) if syn_s and s["seconds"]["value"] else None
    env = environment()
    training = metrics.get("training", {})
    payload = {"benchmark": "register_brain", "structures": list(STRUCTURES), "n_train": N_TRAIN, "n_val": N_VAL,
               "n_test": len(sources), "deformation": vars(deformation()), "field_factor": FIELD_FACTOR,
               "syn": {k: list(v) if isinstance(v, tuple) else v for k, v in SYN.items()},
               "plan": plan.to_dict(), "training": training, "train_wall_seconds": round(train_wall, 1),
               "data_seconds": round(data_seconds, 1), "summary": summary, "per_pair": results,
               "published": PUBLISHED, "load_average_1min_before": load_start, "environment": env,
               "train_minutes_override": args.minutes, "run_dir": str(run), "run_reused": reused}
    payload["headline"] = headline(payload)
    name = "register_brain" if args.minutes is None and args.n_test == N_TEST else "register_brain_partial"
    write_results(name, json.loads(json.dumps(payload, default=str)), markdown(payload))


def markdown(p: dict[str, Any]) -> str:
    t = p["training"]
    steps = t.get("steps_per_member")
    lines = ["### Registration, 3D brain (`benchmarks/register_brain.py`)", "",
             f"Real T1 + aseg (160x192x224, 1 mm), {p['n_train']} training / {p['n_val']} validation / {p['n_test']} "
             "test pairs of independent random deformations (affine + smooth field, bias/gamma/noise; test "
             "deformations never trained on). Dice over VoxelMorph's 30 structures. medlearn: default plan, "
             f"trained {t.get('seconds', p['train_wall_seconds']) / 60:.1f} min wall ({steps} steps; the whole "
             f"`register train` with its own evaluation {p['train_wall_seconds'] / 60:.1f} min), working grid "
             f"{p['plan']['data']['working_shape']}, {p['plan']['inference']['refine_steps']} refine steps there and "
             f"{p['plan']['inference'].get('refine_fine_steps', 0)} on a grid twice as fine. "
             f"2 CPU cores shared with other jobs: 1-min load average {p['load_average_1min_before']:.1f} before, "
             f"{p['environment']['load_average_1min_at_end']:.1f} at the end.", "",
             "| method | Dice (30 structures) [95% CI] | Dice before | folding % | SDlogJ | TRE mm | s per pair | "
             "speed vs SyN |", "|---|---|---|---|---|---|---|---|"]
    for name, s in p["summary"].items():
        lines.append(f"| {name} | {value_text(s.get('dice'))} | {value_text(s.get('dice_before'))} | "
                     f"{value_text(s.get('folding_percent'), '{:.3f}')} | {value_text(s.get('std_log_jacobian'))} | "
                     f"{value_text(s.get('tre_mm'), '{:.2f}')} | {value_text(s.get('seconds'), '{:.1f}')} | "
                     f"{s['speed_vs_syn'] if s.get('speed_vs_syn') else '—'}x |")
    for name, dice in PUBLISHED.items():
        secs = PUBLISHED_SECONDS.get(name)
        lines.append(f"| published: {name} (VoxelMorph TMI 2019, other data) | {dice:.3f} | | | | | "
                     f"{'~' + str(secs) + ' (CPU)' if secs else ''} | |")
    lines += [""] + ([note, ""] if (note := ci_footnote(p["n_test"])) else [])
    lines += [f"ANTs SyN settings: {p['syn']}. SimpleITK: the product's `--method bspline` with the plan's "
              f"classical section {p['plan']['classical']}."]
    return "\n".join(lines)


def headline(p: dict[str, Any]) -> list[dict[str, Any]]:
    s = p["summary"]
    ours, syn = s.get("medlearn", {}), s.get("ANTs SyN", {})
    rows = []
    if ours and syn:
        d, ds = ours["dice"]["value"], syn["dice"]["value"]
        minutes = p["training"].get("seconds", p["train_wall_seconds"]) / 60
        rows.append({"task": "register", "benchmark": f"3D brain, Dice over 30 structures ({p['n_test']} test pairs)",
                     "medlearn": f"{d:.3f}, folding {ours['folding_percent']['value']:.3f} %, "
                                 f"{ours['seconds']['value']:.1f} s/pair, trained {minutes:.0f} min",
                     "reference": f"ANTs SyN {ds:.3f}, {syn['seconds']['value']:.0f} s/pair",
                     "goal met": "yes" if (d >= ds and ours["folding_percent"]["value"] < 0.5
                                           and (ours.get("speed_vs_syn") or 0) >= 100 and minutes <= 30) else "no"})
    return rows


if __name__ == "__main__":
    main()
