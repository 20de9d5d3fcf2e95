"""Prediction speed of the classifier: eager PyTorch vs its exported ONNX pipeline in ONNX Runtime, side by side.

The default BreastMNIST plan's network (5-member ensemble, flip TTA) is trained for one epoch (speed does not
depend on the weights), exported with ``medlearn export``, and the 156 test images are predicted by both
engines in alternating rounds on the same threads; the outputs are compared. (Segmentation predicts with ONNX
Runtime by default; its side-by-side ratio is in ``segment_speed``.)

    python benchmarks/predict_engines.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import data_root, environment, write_results


def main() -> None:
    import onnxruntime as ort
    import torch

    import medlearn
    from medlearn.engine.workflow import train
    from medlearn.tasks import get_task
    from medlearn.tasks.base import TrainRequest
    from medlearn.tasks.classify.model import from_raster

    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    data = data_root() / "medmnist_breast" / "breastmnist.npz"
    images = from_raster(np.load(data)["test_images"]).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="medlearn-engines-") as tmp:
        run = Path(tmp) / "run"
        train(get_task("classify"), TrainRequest("classify", str(data), str(run), ["train.max_epochs=1"],
                                                 progress=False), echo=lambda *a, **k: None)
        model = medlearn.load_run(run)
        model.export_onnx(Path(tmp) / "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
        session = ort.InferenceSession(str(Path(tmp) / "model.onnx"), options, providers=["CPUExecutionProvider"])
        times: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
        eager = exported = None
        for _ in range(args.rounds):
            start = time.perf_counter()
            eager = model.predict_proba(images)
            times["torch"].append(time.perf_counter() - start)
            start = time.perf_counter()
            exported = session.run(None, {"image": images})[0]
            times["onnxruntime"].append(time.perf_counter() - start)
        plan = model.plan_
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["torch"] / med["onnxruntime"]
    diff = float(np.abs(eager - exported).max())
    md = "\n".join([
        "### Classifier prediction: PyTorch vs the exported ONNX pipeline (BreastMNIST test, 156 images)", "",
        "| engine | median s (156 images) | ratio |", "|---|---|---|",
        f"| PyTorch (eager, inference mode) | {med['torch']:.3f} | 1.00 |",
        f"| ONNX Runtime (the `medlearn export` graph) | {med['onnxruntime']:.3f} | {ratio:.2f}x |", "",
        f"{args.rounds} alternating rounds, {torch.get_num_threads()} threads; network {plan.network.name} widths "
        f"{plan.network.widths}, {plan.train.ensemble} members, flip TTA {plan.flip_tta}; max |difference| of the "
        f"probabilities {diff:.1e}."])
    headline = [{"task": "classify", "benchmark": "prediction engines (BreastMNIST test, 5 members + TTA)",
                 "medlearn": f"ONNX Runtime {ratio:.2f}x eager PyTorch, max diff {diff:.0e}",
                 "reference": "eager PyTorch", "goal met": "yes" if ratio >= 1.0 else "no"}]
    write_results("predict_engines", {"seconds": times, "median": med, "ratio": ratio, "max_abs_diff": diff,
                                      "headline": headline, "environment": environment()}, md)
    print(md)


if __name__ == "__main__":
    main()
