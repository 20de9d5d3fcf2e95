"""2D registration benchmark: medlearn's default plan (network, and network + instance optimisation) vs
SimpleITK (the product's ``--method`` classical paths) on real slices, four parts:

* ``pd``: the ITK proton-density slice (``itk_brain_slices_registration``) moved by ITK's known transforms
  (shift 13/17 px, rotation 10 degrees, rotation + shift, rotation + shift + scale 1.2, and the B-spline
  warp of ``BSplineDisplacements1.txt``) -> TRE of the recovered transform in px over the brain mask
  (goal: < 1 px for the rigid and similarity cases). The network is trained on synthetic deformations of
  the same slice (``synthetic.py``: random affine + smooth field + bias/gamma/noise, ``train`` seed
  stream) and validated on others (``val`` stream): the instance-optimisation evidence of the plan comes
  from these validation pairs, never from the ITK test pairs;
* ``t1pd``: T1 -> PD, multi-modal (mutual information): fixed the T1 slice, moving the PD slice moved by
  the same known transforms; trained on synthetic T1 (fixed) / PD (moving) pairs;
* ``subjects``: the six subject slices of ``antspy_brain_slices_templates`` pairwise (inter-subject, no
  ground truth): trained on the 12 ordered pairs of subjects 16, 27, 30 and 62, tested on the 18 ordered
  pairs that involve 64 or 85: NCC before/after, folding, seconds;
* ``serial``: the 12 serial sections of ``elastix_lung_sem_serial``, each registered to its predecessor
  (11 pairs): trained on the 6 odd pairs, tested on the 5 even ones (they share sections, not pairs).

The ground truth of the ITK transforms was checked against the images (``verify_known``): rotations turn
about (110.5, 128.5) px; the rigid case R10X13Y17 fits a (13, 16) px shift (NCC 0.992 inside the mask; the
nominal (13, 17) gives 0.957), the similarity case R10X13Y17S12 is the inverse of "scale 1.2, rotate 10,
shift (13, 17)"; the B-spline warp is ITK's order-3 grid of 7 x 7 nodes over the image (NCC 0.99999).

Run with the repository's venv; one training per part at the default plan (``train.max_minutes`` 10 for 2D):

    .venv/bin/python benchmarks/register_2d.py [--parts pd t1pd subjects serial] [--minutes M]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import ci_footnote, data_root, environment, load_average, value_text, write_results

ITK = "itk_brain_slices_registration"
SUBJECTS = (16, 27, 30, 62, 64, 85)
TRAIN_SUBJECTS = (16, 27, 30, 62)
CENTRE = np.array([110.5, 128.5])
N_TRAIN, N_VAL = 64, 16
#: ITK's known transforms (our convention: fixed voxel x lies at M @ [x, 1] in the moving image)
KNOWN = ("Shifted13x17y", "Rotated10", "R10X13Y17", "R10X13Y17S12")
RIGID = ("Shifted13x17y", "Rotated10", "R10X13Y17", "R10X13Y17S12")  # the rigid and similarity cases (goal < 1 px)
REFINE_STUDY = (0, 25, 50, 100, 200)


def deformation():
    from medlearn.tasks.register.synthetic import DeformationSettings

    # each image of a pair gets its own transform, so pairs differ by up to ~24 degrees, ~1.3x scale, ~24 px
    return DeformationSettings(max_displacement=5.0, smoothness=16.0, rotation_deg=12.0, scale=0.12, shear=0.02,
                               translation=12.0, bias=0.2, gamma=0.15, noise=0.02)


def _rot(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


def _matrix(lin: np.ndarray, offset: np.ndarray) -> np.ndarray:
    m = np.eye(3)
    m[:2, :2], m[:2, 2] = lin, offset
    return m


def known_matrix(name: str) -> np.ndarray:
    """Fixed (the PD slice) voxel -> moving voxel for ITK's transformed PD slices (checked, module docstring)."""
    c = CENTRE
    if name == "Shifted13x17y":
        return _matrix(np.eye(2), np.array([13.0, 17.0]))
    if name == "Rotated10":
        r = _rot(10)
        return _matrix(r, c - r @ c)
    if name == "R10X13Y17":
        r = _rot(10)
        return _matrix(r, c - r @ c + np.array([13.0, 16.0]))
    if name == "R10X13Y17S12":
        a = 1.2 * _rot(10)
        return np.linalg.inv(_matrix(a, c - a @ c + np.array([13.0, 17.0])))
    raise KeyError(name)


def bspline_truth(reference: np.ndarray) -> np.ndarray:
    """The voxel DDF of ITK's ``BSplineDisplacements1.txt`` warp (BSplined10(x) = PD(x + u(x)))."""
    import SimpleITK as sitk

    from medlearn.tasks.register.classical import field_from_transform, to_sitk

    values = np.loadtxt(data_root() / ITK / "BSplineDisplacements1.txt").ravel()
    n = len(values) // 2
    params = np.concatenate([values[0::2], values[1::2]])
    ref = to_sitk(reference)
    t = sitk.BSplineTransform(2, 3)
    t.SetTransformDomainOrigin(ref.GetOrigin())
    extent = [sp * (sz - 1) for sp, sz in zip(ref.GetSpacing(), ref.GetSize(), strict=True)]  # ITK's example
    t.SetTransformDomainPhysicalDimensions(extent)
    t.SetTransformDomainMeshSize([4, 4])
    t.SetTransformDomainDirection(ref.GetDirection())
    t.SetParameters(params.tolist())
    assert n == 49
    return field_from_transform(t, ref)


def verify_known() -> dict[str, float]:
    """NCC inside the brain mask between the fixed slice and each moving slice pulled back by the truth."""
    import torch

    from medlearn.data.images import read_image
    from medlearn.evaluation.registration import global_ncc
    from medlearn.tasks.register.transforms import affine_to_ddf, warp

    root = data_root() / ITK
    pd = read_image(root / "BrainProtonDensitySliceBorder20.png")[0][0]
    mask = read_image(root / "BrainProtonDensitySliceBorder20Mask.png")[0][0] > 0
    out = {}
    for name in KNOWN:
        moving = read_image(root / f"BrainProtonDensitySlice{name}.png")[0][0]
        u = affine_to_ddf(known_matrix(name), pd.shape, torch.float64)
        back = warp(torch.tensor(moving, dtype=torch.float64)[None, None], u, padding="zeros")[0, 0].numpy()
        out[name] = round(global_ncc(back, pd, mask), 4)
    bs = read_image(root / "BrainProtonDensitySliceBSplined10.png")[0][0]
    u = torch.tensor(bspline_truth(pd), dtype=torch.float64)[None]
    back = warp(torch.tensor(pd, dtype=torch.float64)[None, None], u, padding="zeros")[0, 0].numpy()
    out["BSplined10"] = round(global_ncc(back, bs, mask), 4)
    return out


# -- datasets on disk -----------------------------------------------------------------------------------
def _meta(shape: tuple[int, ...]):
    from medlearn.data.images import ImageMeta

    return ImageMeta("x", "nifti", tuple(shape), (1.0, 1.0), np.eye(4))


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    lines = [",".join(columns)] + [",".join(str(row.get(c, "")) for c in columns) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def synthetic_csvs(root: Path, fixed_source: np.ndarray, moving_source: np.ndarray, mask: np.ndarray,
                   modalities: tuple[str, str] | None) -> tuple[Path, Path]:
    """``train.csv`` (64 train + 16 val synthetic pairs, known fields, warped brain masks) and ``val.csv``."""
    from medlearn.data.images import write_image
    from medlearn.tasks.register.io import write_displacement_field
    from medlearn.tasks.register.synthetic import synthetic_pairs

    root.mkdir(parents=True, exist_ok=True)
    meta = _meta(fixed_source.shape)
    rows = []
    for split, n in (("train", N_TRAIN), ("val", N_VAL)):
        pairs = synthetic_pairs(fixed_source, mask.astype(np.int32), n, split, seed=0, settings=deformation(),
                                moving_image=moving_source)
        for k, pair in enumerate(pairs):
            stem = f"{split}{k:03d}"
            write_image(root / f"{stem}_f.nii.gz", pair.fixed * 255.0, meta)
            write_image(root / f"{stem}_m.nii.gz", pair.moving * 255.0, meta)
            write_image(root / f"{stem}_fm.nii.gz", pair.fixed_label.astype(np.uint8), meta)
            write_image(root / f"{stem}_mm.nii.gz", pair.moving_label.astype(np.uint8), meta)
            write_displacement_field(root / f"{stem}_u.nii.gz", pair.known_ddf, meta)
            row = {"name": stem, "fixed": f"{stem}_f.nii.gz", "moving": f"{stem}_m.nii.gz",
                   "fixed_mask": f"{stem}_fm.nii.gz", "moving_mask": f"{stem}_mm.nii.gz",
                   "displacement": f"{stem}_u.nii.gz", "split": split}
            if modalities:
                row.update(fixed_modality=modalities[0], moving_modality=modalities[1])
            rows.append(row)
    train = write_csv(root / "train.csv", rows)
    val_rows = [{k: v for k, v in r.items() if k != "split"} for r in rows if r["split"] == "val"]
    val = write_csv(root / "val.csv", val_rows)
    return train, val


def known_csv(root: Path, fixed: str, modalities: tuple[str, str] | None, bspline: bool) -> Path:
    """The ITK test pairs with their true fields (fixed: ``fixed``; moving: the transformed PD slices)."""
    import torch

    from medlearn.data.images import read_image, write_image
    from medlearn.tasks.register.io import write_displacement_field
    from medlearn.tasks.register.transforms import affine_to_ddf, warp_labels

    src = data_root() / ITK
    root.mkdir(parents=True, exist_ok=True)
    pd, meta = read_image(src / "BrainProtonDensitySliceBorder20.png")
    mask = src / "BrainProtonDensitySliceBorder20Mask.png"
    rows = []
    for name in KNOWN:
        u = affine_to_ddf(known_matrix(name), pd.shape[1:])[0].numpy()
        write_displacement_field(root / f"{name}_u.nii.gz", u, meta)
        row = {"name": name, "fixed": src / fixed, "moving": src / f"BrainProtonDensitySlice{name}.png",
               "fixed_mask": mask, "displacement": f"{name}_u.nii.gz"}
        if modalities:
            row.update(fixed_modality=modalities[0], moving_modality=modalities[1])
        rows.append(row)
    if bspline:  # fixed: the warped slice, moving: the PD slice (BSplined10(x) = PD(x + u(x)))
        u = bspline_truth(pd[0])
        write_displacement_field(root / "BSplined10_u.nii.gz", u, meta)
        m = read_image(mask)[0][0].astype(np.int64)
        warped_mask = warp_labels(torch.tensor(m)[None, None], torch.tensor(u)[None])[0].numpy().astype(np.uint8)
        write_image(root / "BSplined10_mask.png", warped_mask * 255, meta)
        rows.append({"name": "BSplined10", "fixed": src / "BrainProtonDensitySliceBSplined10.png",
                     "moving": src / "BrainProtonDensitySliceBorder20.png", "fixed_mask": "BSplined10_mask.png",
                     "displacement": "BSplined10_u.nii.gz"})
    return write_csv(root / "test.csv", rows)


def subject_csvs(root: Path) -> tuple[Path, Path]:
    src = data_root() / "antspy_brain_slices_templates"
    root.mkdir(parents=True, exist_ok=True)
    train, test = [], []
    for a in SUBJECTS:
        for b in SUBJECTS:
            if a == b:
                continue
            row = {"name": f"r{a}<-r{b}", "fixed": src / f"r{a}slice.jpg", "moving": src / f"r{b}slice.jpg"}
            (train if a in TRAIN_SUBJECTS and b in TRAIN_SUBJECTS else test).append(row)
    return write_csv(root / "train.csv", train), write_csv(root / "test.csv", test)


def serial_csvs(root: Path) -> tuple[Path, Path]:
    src = data_root() / "elastix_lung_sem_serial"
    root.mkdir(parents=True, exist_ok=True)
    rows = [{"name": f"s{k:02d}<-s{k + 1:02d}", "fixed": src / f"2016_12_02_0101_s00_{k:02d}.png",
             "moving": src / f"2016_12_02_0101_s00_{k + 1:02d}.png"} for k in range(1, 12)]
    return write_csv(root / "train.csv", rows[0::2]), write_csv(root / "test.csv", rows[1::2])


# -- runs -----------------------------------------------------------------------------------------------
def train(csv: Path, out: Path, minutes: float | None) -> dict[str, Any]:
    from medlearn.engine.workflow import train as run_training
    from medlearn.tasks import get_task
    from medlearn.tasks.base import TrainRequest

    overrides = {"train.max_minutes": minutes} if minutes else {}
    started = time.perf_counter()
    request = TrainRequest("register", str(csv), str(out), overrides, progress=False, n_boot=200)
    metrics = run_training(get_task("register"), request, echo=lambda *a, **k: None)
    return {"metrics": metrics, "wall_seconds": round(time.perf_counter() - started, 1)}


def evaluate(model: Any, csv: Path, name: str, method: str, refine: int | None = None,
             key: str = "") -> dict[str, Any]:
    metrics = model.evaluate(csv, name=name, n_boot=1000, method=method, refine=refine)
    split = metrics["all"]
    row = {"key": key or method, "pairs": split["n"], "per_pair": split["per_pair"],
           "method": f"SimpleITK {method}" if method != "network" else
           f"network + {split['refine_steps']} refine steps"}
    for key in ("tre_mm", "tre_mm_before", "ncc_before", "ncc_after", "mi_before", "mi_after", "folding_percent",
                "std_log_jacobian", "seconds"):
        if key in split:
            row[key] = {k: split[key][k] for k in ("value", "ci95") if k in split[key]}
    return row


def run_part(part: str, work: Path, minutes: float | None) -> dict[str, Any]:
    from medlearn.data.images import read_image
    from medlearn.tasks.register.model import Registrator

    src = data_root() / ITK
    pd = read_image(src / "BrainProtonDensitySliceBorder20.png")[0][0]
    t1 = read_image(src / "BrainT1SliceBorder20.png")[0][0]
    mask = read_image(src / "BrainProtonDensitySliceBorder20Mask.png")[0][0] > 0
    load_before = load_average()
    val_csv = None
    if part == "pd":
        train_csv, val_csv = synthetic_csvs(work / "pd", pd, pd, mask, None)
        test_csv = known_csv(work / "pd_test", "BrainProtonDensitySliceBorder20.png", None, bspline=True)
        methods = ["network0", "network", "affine", "bspline", "demons"]
    elif part == "t1pd":
        train_csv, val_csv = synthetic_csvs(work / "t1pd", t1, pd, mask, ("T1", "PD"))
        test_csv = known_csv(work / "t1pd_test", "BrainT1SliceBorder20.png", ("T1", "PD"), bspline=False)
        methods = ["network0", "network", "affine", "bspline"]
    elif part == "subjects":
        train_csv, test_csv = subject_csvs(work / "subjects")
        methods = ["network0", "network", "affine", "bspline", "demons"]
    else:
        train_csv, test_csv = serial_csvs(work / "serial")
        methods = ["network0", "network", "affine", "bspline", "demons"]
    run = work / f"run_{part}"
    trained = train(train_csv, run, minutes)
    model = Registrator.load(run)
    training = trained["metrics"]["training"]
    out: dict[str, Any] = {"part": part, "run_dir": str(run), "train_wall_seconds": trained["wall_seconds"],
                           "steps": training.get("steps_per_member"), "planned": training.get("planned"),
                           "plan": {"working_shape": model.plan_.data.working_shape,
                                    "similarity": model.plan_.loss.similarity,
                                    "refine_steps": model.plan_.inference.refine_steps,
                                    "refine_full_max_voxels": model.plan_.inference.refine_full_max_voxels,
                                    "max_minutes": model.plan_.train.max_minutes},
                           "validation": _pick(trained["metrics"].get("val", {}))}
    if val_csv is not None:  # the instance-optimisation evidence: validation pairs only
        out["refine_study_val"] = [evaluate(model, val_csv, f"val_refine{s}", "network", s) for s in REFINE_STUDY]
    out["test"] = []
    for method in methods:
        if method == "network0":
            out["test"].append(evaluate(model, test_csv, "test_network0", "network", 0, key="network0"))
        else:
            out["test"].append(evaluate(model, test_csv, f"test_{method}", method))
        print(part, out["test"][-1]["method"], {k: v for k, v in out["test"][-1].items() if k != "per_pair"},
              flush=True)
    out["load_average_1min_before"], out["load_average_1min_after"] = load_before, load_average()
    return out


def _pick(split: dict[str, Any]) -> dict[str, Any]:
    return {k: {"value": split[k]["value"], "ci95": split[k].get("ci95")} for k in ("tre_mm", "tre_mm_before",
                                                                                    "ncc_before", "ncc_after",
                                                                                    "folding_percent") if k in split}


# -- tables ---------------------------------------------------------------------------------------------
#: (field, label, larger is better) of the test rows, in the order the "who wins" line names them
WIN_METRICS = (("tre_mm", "TRE", False), ("ncc_after", "NCC after", True), ("mi_after", "MI after", True),
               ("folding_percent", "folding", False), ("seconds", "time", False))


def winners(rows: list[dict[str, Any]]) -> str:
    """One sentence: which method is best on each metric of a part's test rows, and by how much over the
    next ("ties" when they are equal at the table's precision)."""
    said = []
    for key, label, larger in WIN_METRICS:
        scored = [(r[key]["value"], r["method"]) for r in rows
                  if isinstance(r.get(key), dict) and r[key].get("value") is not None]
        if len(scored) < 2:
            continue
        scored.sort(key=lambda t: -t[0] if larger else t[0])
        (best, who), (second, runner) = scored[0], scored[1]
        fmt = "{:.2f}" if key == "seconds" else "{:.3f}"
        if fmt.format(best) == fmt.format(second):
            ties = [m for v, m in scored if fmt.format(v) == fmt.format(best)]
            who_ties = "all methods" if len(ties) == len(scored) else " and ".join(ties)
            said.append(f"{label}: {who_ties} tie ({fmt.format(best)})")
        else:
            said.append(f"{label}: {who} ({fmt.format(best)}; next {runner}, {fmt.format(second)})")
    return ("Who wins: " + "; ".join(said) + ".") if said else ""


def markdown(parts: list[dict[str, Any]], truth: dict[str, float], env: dict[str, Any]) -> str:
    lines = ["### Registration, 2D (`benchmarks/register_2d.py`)", "",
             f"CPU, {env['threads']} threads; 1-min load average at the end {env['load_average_1min_at_end']:.1f} "
             "(other jobs shared the cores). Ground truth of the ITK transforms checked against the images "
             f"(NCC inside the mask after pulling the moving slice back): {truth}.", ""]
    for part in parts:
        p = part["plan"]
        lines += [f"#### {part['part']}: trained {part['train_wall_seconds'] / 60:.1f} min ({part['steps']} steps), "
                  f"working grid {p['working_shape']}, similarity {p['similarity']}, default refine "
                  f"{p['refine_steps']} steps", ""]
        if part.get("earlier_run"):
            when = (part["earlier_run"].get("environment") or {}).get("date", "?")
            lines += [f"(This part: an earlier run of the same plan, {when}, from {part['earlier_run']['file']}.)", ""]
        if part.get("refine_study_val"):
            lines += ["Instance optimisation on the validation pairs (synthetic, `val` stream; the plan's "
                      "evidence):", "",
                      "| refine steps | TRE px [95% CI] | folding % | s per pair |", "|---|---|---|---|"]
            for row in part["refine_study_val"]:
                cells = [row["method"]] + [value_text(row.get(k)) for k in ("tre_mm", "folding_percent", "seconds")]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        has_tre = any("tre_mm" in r for r in part["test"])
        head = "| method | " + ("TRE px per pair | mean TRE px | " if has_tre else "") + \
            "NCC before | NCC after [95% CI] | folding % | s per pair |"
        lines += [head, "|" + "---|" * (head.count("|") - 1)]
        for row in part["test"]:
            cells = [row["method"]]
            if has_tre:
                per = ", ".join(f"{r['name']} {r['tre_mm']:.2f}" for r in row["per_pair"]
                                if r.get("tre_mm") is not None)
                cells += [per, value_text(row.get("tre_mm"))]
            cells += [value_text(row.get(k)) for k in ("ncc_before", "ncc_after", "folding_percent")]
            cells.append(value_text(row.get("seconds"), "{:.2f}"))
            lines.append("| " + " | ".join(cells) + " |")
        lines += [""] + ([note, ""] if (note := ci_footnote(part["test"][0]["pairs"])) else [])
        lines += [winners(part["test"]), ""]
    return "\n".join(lines)


def headline(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for part in parts:
        test = {r["key"]: r for r in part["test"]}
        net, sitk = test["network"], test["bspline"]
        if part["part"] in ("pd", "t1pd"):
            worst = max(r["tre_mm"] for r in net["per_pair"] if r["name"] in RIGID)
            ref = max(r["tre_mm"] for r in sitk["per_pair"] if r["name"] in RIGID)
            rows.append({"task": "register", "benchmark": f"2D {part['part']}: worst TRE, ITK rigid/similarity cases",
                         "medlearn": f"{worst:.2f} px ({net['method']})",
                         "reference": f"SimpleITK B-spline {ref:.2f} px",
                         "goal met": "yes" if worst < 1.0 else "no"})
        else:
            rows.append({"task": "register", "benchmark": f"2D {part['part']}: NCC after (test pairs)",
                         "medlearn": f"{value_text(net.get('ncc_after'))} ({net['method']})",
                         "reference": f"SimpleITK B-spline {value_text(sitk.get('ncc_after'))}", "goal met": "—"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", nargs="+", default=["pd", "t1pd", "subjects", "serial"])
    parser.add_argument("--minutes", type=float, default=None, help="override train.max_minutes (exploration only)")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--merge", type=Path, default=None,
                        help="an earlier results JSON of this benchmark whose parts not run now join this table "
                             "(each keeps its own date and machine figures)")
    parser.add_argument("--render", type=Path, default=None,
                        help="rebuild the markdown of a results JSON of this benchmark (nothing is run)")
    args = parser.parse_args()
    if args.render:
        done = json.loads(args.render.read_text())
        write_results(args.render.stem, done, markdown(done["parts"], done["ground_truth_ncc"], done["environment"]))
        return
    truth = verify_known()
    print("ground truth check", truth, flush=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="medlearn-bench-register2d-"))
    parts = [run_part(p, work, args.minutes) for p in args.parts]
    env = environment()
    if args.merge:
        earlier = json.loads(args.merge.read_text())
        if earlier.get("train_minutes_override") != args.minutes:
            raise SystemExit(f"{args.merge}: trained with another budget; merge only runs of the same plan")
        for part in earlier["parts"]:
            if part["part"] not in args.parts:
                parts.append({**part, "earlier_run": {"file": args.merge.name,
                                                      "environment": earlier.get("environment")}})
        order = ["pd", "t1pd", "subjects", "serial"]
        parts.sort(key=lambda q: order.index(q["part"]))
    payload = {"benchmark": "register_2d", "parts": parts, "ground_truth_ncc": truth, "environment": env,
               "train_minutes_override": args.minutes, "headline": headline(parts)}
    name = "register_2d" if args.minutes is None and len(parts) == 4 else "register_2d_partial"
    write_results(name, json.loads(json.dumps(payload, default=str)), markdown(parts, truth, env))


if __name__ == "__main__":
    main()
