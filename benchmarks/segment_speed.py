"""Speed side by side on DRIVE: medlearn vs a plain MONAI loop (training) and MONAI sliding window (inference).

python benchmarks/segment_speed.py [--run runs/bench-drive/run-segment_drive] [--steps 60] [--rounds 3]

Training: the same network (the plan's MONAI UNet, batch norm; one member when the run is an ensemble, as
each member trains in its own process), batch, patch size, optimiser and data
(the preprocessed DRIVE training cases): medlearn's Lightning module with its patch sampler,
augmentation and masked Dice+CE, against a plain PyTorch/MONAI loop (numpy crops + flips/rot90,
MONAI DiceCELoss). Rounds alternate A/B so machine-load drift hits both equally.

Inference: the 20 DRIVE test images, preprocessed identically, same trained weights (the whole
ensemble on both sides when the run is one):
MONAI ``sliding_window_inference`` (roi = training patch, overlap 0.5, Gaussian, sw_batch 8) in
eager PyTorch under ``no_grad`` (the anchor's recipe) vs medlearn's predictor (one whole-image pass
in ONNX Runtime). Outputs compared: max |dp|, share of pixels with the same label, F1 of each.
Writes benchmarks/results/segment_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent


def plain_monai_steps(net, cases, patch: int, batch: int, steps: int, seed: int, bf16: bool = False) -> float:
    """Seconds for ``steps`` steps of a plain MONAI training loop (data sampling included); ``bf16``: the
    forward under bfloat16 autocast, as medlearn runs it with ``train.precision=bf16``."""
    import torch
    from monai.losses import DiceCELoss

    rng = np.random.default_rng(seed)
    loss_fn = DiceCELoss(softmax=True, to_onehot_y=True)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    net.train()
    start = None
    for i in range(steps + 3):
        if i == 3:
            start = time.perf_counter()  # 3 warm-up steps
        x = np.empty((batch, cases[0].image.shape[0], patch, patch), np.float32)
        y = np.empty((batch, 1, patch, patch), np.int64)
        for b in range(batch):
            c = cases[rng.integers(len(cases))]
            x0, y0 = (rng.integers(n - patch + 1) for n in c.label.shape)
            xi = np.asarray(c.image[:, x0:x0 + patch, y0:y0 + patch])
            yi = np.asarray(c.label[x0:x0 + patch, y0:y0 + patch])
            k = rng.integers(4)
            xi, yi = np.rot90(xi, k, (1, 2)), np.rot90(yi, k)
            if rng.random() < 0.5:
                xi, yi = xi[:, ::-1], yi[::-1]
            x[b], y[b, 0] = xi, yi
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = net(torch.from_numpy(x))
        loss = loss_fn(logits.float(), torch.from_numpy(y))
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def medlearn_steps(plan, cases, steps: int, run_dir: Path) -> tuple[float, float]:
    """Seconds for ``steps`` Lightning training steps of medlearn's module (with the plan's weight EMA),
    and for the 3 warm-up steps before them (which include the one-off ``torch.compile`` when the plan
    compiles)."""
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader

    from medlearn.engine.trainer import ema_callbacks
    from medlearn.tasks.segment.data import PatchDataset
    from medlearn.tasks.segment.module import SegmentationModule

    class Timer(pl.Callback):
        first = start = end = 0.0

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if batch_idx == 0:
                Timer.first = time.perf_counter()
            if batch_idx == 3:
                Timer.start = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            Timer.end = time.perf_counter()

    t = plan.train
    module = SegmentationModule(plan.to_dict())
    loader = DataLoader(PatchDataset(cases, t.patch_size, (steps + 3) * t.batch_size, t.foreground_oversampling,
                                     t.seed, flip_rotate=t.augmentation != "none"),
                        batch_size=t.batch_size, num_workers=0)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[Timer(), *ema_callbacks(t.ema_decay)],
                         default_root_dir=str(run_dir), limit_val_batches=0)
    trainer.fit(module, loader)
    return Timer.end - Timer.start, Timer.start - Timer.first


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path, default=HERE.parent / "runs" / "bench-drive" / "run-segment_drive")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=20)
    args = parser.parse_args()

    import torch
    from monai.inferers import sliding_window_inference

    from medlearn.data.images import read_image
    from medlearn.data.msd import load_case_image, load_msd_dataset
    from medlearn.engine.seed import configure_cpu_threads
    from medlearn.evaluation.segmentation import pooled_binary_metrics
    from medlearn.imaging.preprocess import preprocess_case
    from medlearn.io import write_json, write_text
    from medlearn.tasks.segment.data import build_cache
    from medlearn.tasks.segment.model import Segmenter
    from medlearn.tasks.segment.module import build_segmentation_net
    from medlearn.tasks.segment.plan import should_compile

    threads = configure_cpu_threads(2)
    model = Segmenter.load(args.run, engine="onnx")
    plan = model.plan_
    work = args.run.parent
    train_ds = load_msd_dataset(work / "drive_train")
    cases = build_cache(train_ds.training[:16], plan, work / "speed-cache")

    # -- training: alternate rounds ------------------------------------------------------------
    # the overhead ratio compares like with like (the plain loop in the plan's precision); a bf16 plan is
    # also timed against the plain float32 loop (the anchor's recipe)
    bf16 = plan.train.precision == "bf16"
    plain_variants = [("plain_monai_it_s", bf16)] + ([("plain_monai_fp32_it_s", False)] if bf16 else [])
    train_rows = []
    for r in range(args.rounds):
        row = {"round": r}
        for key, plain_bf16 in plain_variants:
            torch.manual_seed(r)
            net = build_segmentation_net(plan, single=True)  # one ensemble member: what each training process runs
            row[key] = args.steps / plain_monai_steps(net, cases, plan.train.patch_size[0], plan.train.batch_size,
                                                      args.steps, r, plain_bf16)
        ours, warmup = medlearn_steps(plan, cases, args.steps, work / "speed-lightning")
        train_rows.append({**row, "medlearn_it_s": args.steps / ours, "medlearn_warmup_s": round(warmup, 1),
                           "load1": os.getloadavg()[0]})
        print(train_rows[-1], flush=True)

    def mean_rate(key: str) -> float:  # steps over summed seconds
        return round(len(train_rows) * args.steps / sum(args.steps / row[key] for row in train_rows), 3)

    # -- inference -------------------------------------------------------------------------------
    test_ds = load_msd_dataset(work / "drive_test")
    inputs, truths, rois = [], [], []
    for case in test_ds.training[: args.images]:
        image, meta = load_case_image(case)
        roi = read_image(case.roi, dtype=None)[0][0] > 0
        inputs.append(preprocess_case(case.name, image, meta.spacing, plan.preprocessing, roi=roi).image)
        truths.append(read_image(case.label, dtype=None)[0][0])
        rois.append(roi)
    net = model.net_.eval()
    predictor = model.predictor(mirror=False)
    roi_size = tuple(plan.train.patch_size)

    def monai_probs(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = sliding_window_inference(torch.from_numpy(x)[None], roi_size, 8, net, overlap=0.5, mode="gaussian")
        return torch.softmax(out, 1)[0].numpy()

    monai_probs(inputs[0])
    predictor(inputs[0])  # warm-up both
    t_monai = t_ours = 0.0
    p_monai, p_ours = [], []
    for x in inputs:  # alternate per image
        s = time.perf_counter()
        p_monai.append(monai_probs(x))
        t_monai += time.perf_counter() - s
        s = time.perf_counter()
        p_ours.append(predictor(x))
        t_ours += time.perf_counter() - s
    max_diff = max(float(np.abs(a - b)[:, r].max()) for a, b, r in zip(p_monai, p_ours, rois, strict=True))
    mean_diff = float(np.mean([np.abs(a - b)[:, r].mean() for a, b, r in zip(p_monai, p_ours, rois, strict=True)]))
    same = float(np.mean(np.concatenate([(a.argmax(0) == b.argmax(0))[r] for a, b, r in
                                         zip(p_monai, p_ours, rois, strict=True)])))
    m_monai = pooled_binary_metrics([p[1] for p in p_monai], truths, rois)
    m_ours = pooled_binary_metrics([p[1] for p in p_ours], truths, rois)

    out = {
        "threads": threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "run": str(args.run),
        "network": plan.network.name, "channels": plan.network.channels, "patch": plan.train.patch_size,
        "batch": plan.train.batch_size,
        "training": {"rounds": train_rows, "steps_per_round": args.steps,
                     "precision": plan.train.precision, "plain_monai_it_s": mean_rate("plain_monai_it_s"),
                     "medlearn_it_s": mean_rate("medlearn_it_s"), "goal": ">= 1.0",
                     "medlearn_compiled": should_compile(plan.train)},
        "inference": {"images": len(inputs), "monai_sliding_window_s_per_image": round(t_monai / len(inputs), 4),
                      "medlearn_s_per_image": round(t_ours / len(inputs), 4),
                      "speedup": round(t_monai / t_ours, 3), "goal": ">= 1.5",
                      "engine": "onnxruntime" if model.session_ is not None else "torch",
                      "max_abs_prob_diff_in_fov": max_diff, "mean_abs_prob_diff_in_fov": mean_diff,
                      "same_label_fraction_in_fov": same, "f1_monai": m_monai["f1"], "f1_medlearn": m_ours["f1"],
                      "auc_monai": m_monai["auc"], "auc_medlearn": m_ours["auc"]},
        "load_average_end": os.getloadavg(),
    }
    tr, inf = out["training"], out["inference"]
    tr["ratio"] = round(tr["medlearn_it_s"] / tr["plain_monai_it_s"], 3)
    if bf16:
        tr["plain_monai_fp32_it_s"] = mean_rate("plain_monai_fp32_it_s")
        tr["ratio_vs_fp32"] = round(tr["medlearn_it_s"] / tr["plain_monai_fp32_it_s"], 3)
    write_json(HERE / "results" / "segment_speed.json", out)
    precision = "bfloat16 autocast" if bf16 else "float32"
    text = ("# Segmentation speed, side by side in one run (DRIVE, same network and weights)\n\n"
            "| measure | MONAI reference | medlearn | ratio | goal |\n|---|---|---|---|---|\n"
            f"| training it/s (batch {plan.train.batch_size}, {plan.train.patch_size} patches, both {precision}) | "
            f"{tr['plain_monai_it_s']} | {tr['medlearn_it_s']} | {tr['ratio']} | >= 1.0 |\n"
            + (f"| training it/s, plain loop in float32 (the anchor's recipe) vs medlearn's default | "
               f"{tr['plain_monai_fp32_it_s']} | {tr['medlearn_it_s']} | {tr['ratio_vs_fp32']} | - |\n" if bf16 else "")
            + f"| inference s/image (584x565, {len(inputs)} images) | {inf['monai_sliding_window_s_per_image']} "
            f"(sliding window, eager) | {inf['medlearn_s_per_image']} ({inf['engine']}, whole image) | "
            f"{inf['speedup']}x | >= 1.5x |\n\n"
            f"Outputs inside the FOV: max |dp| {max_diff:.4f}, mean |dp| {mean_diff:.5f}, same label for "
            f"{100 * same:.3f}% of pixels; F1 {m_monai['f1']:.4f} (MONAI) vs {m_ours['f1']:.4f} (medlearn), "
            f"AUC {m_monai['auc']:.4f} vs {m_ours['auc']:.4f}. Threads {threads}, load average at end "
            f"{out['load_average_end'][0]:.1f}.\n")
    if tr["medlearn_compiled"]:
        text += ("\nmedlearn's plan compiles the training step (`train.compile=auto`, runs of >= 2000 steps): "
                 f"its first 3 steps took {', '.join(str(r['medlearn_warmup_s']) for r in train_rows)} s per round "
                 "(the one-off compile, excluded from both it/s like every warm-up).\n")
    write_text(HERE / "results" / "segment_speed.md", text)
    print(text)


if __name__ == "__main__":
    main()
