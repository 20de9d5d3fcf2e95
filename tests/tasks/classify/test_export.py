"""The exported ONNX pipeline gives what the eager model gives, with onnxruntime alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medlearn.imaging.export import read_metadata, run_exported
from medlearn.tasks.classify.model import Classifier, from_raster
from tests.conftest import FAST, cli_exit_code, make_images

# parity bound: float32 graphs, same operations; exceeded only if the graph computes something else
MAX_ABS_DIFF = 1e-4


@pytest.mark.parametrize("extra", [
    ["--set", "train.ensemble=2", "--set", "train.checkpoint=final", "--set", "tta=true"],  # ensemble + flips
    ["--task", "ordinal", "--classes", "0,1"],  # the CORAL head's monotone cumulative probabilities
])
def test_export_matches_the_eager_model(extra: list[str], tiny_npz: Path, tmp_path: Path) -> None:
    assert cli_exit_code(["classify", "train", tiny_npz, "-o", tmp_path / "run", *FAST, "--set", "train.max_epochs=2",
                          *extra]) == 0
    assert cli_exit_code(["export", tmp_path / "run", "-o", tmp_path / "m.onnx"]) == 0
    model = Classifier.load(tmp_path / "run")
    images = from_raster(np.load(tiny_npz)["test_images"]).astype(np.float32)
    exported = run_exported(tmp_path / "m.onnx", images)[0]
    assert np.abs(exported - model.predict_proba(images)).max() < MAX_ABS_DIFF
    meta = read_metadata(tmp_path / "m.onnx")
    assert meta["label_names"] == model.classes_ and meta["input_size"] == model.plan_.input_size
    assert meta["plan"]["train"]["ensemble"] == model.plan_.train.ensemble


def test_export_resizes_inside_the_graph(tmp_path: Path) -> None:
    x, y = make_images(40, size=24, seed=4)
    rows = ["image,label"]
    for i in range(len(x)):
        Image.fromarray(x[i]).save(tmp_path / f"i{i}.png")
        rows.append(f"i{i}.png,{y[i]}")
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    assert cli_exit_code(["classify", "train", tmp_path / "t.csv", "-o", tmp_path / "run", *FAST,
                          "--set", "data.resize=[16,16]", "--set", "train.max_epochs=1"]) == 0
    assert cli_exit_code(["export", tmp_path / "run", "-o", tmp_path / "m.onnx"]) == 0
    model = Classifier.load(tmp_path / "run")
    raw = from_raster(x[:8]).astype(np.float32)  # 24 x 24: the graph resizes to 16 x 16
    exported = run_exported(tmp_path / "m.onnx", raw)[0]
    eager = model.predict_proba(raw)  # area resampling outside the network
    assert exported.shape == eager.shape == (8, 2)
    # linear in the graph vs area in training: close, not identical (documented in the metadata)
    assert np.abs(exported - eager).max() < 0.1
    assert "area" in read_metadata(tmp_path / "m.onnx")["resize"]


def test_export_of_an_unknown_format_is_one_line(tiny_npz: Path, tmp_path: Path, capsys) -> None:
    assert cli_exit_code(["classify", "train", tiny_npz, "-o", tmp_path / "run", *FAST,
                          "--set", "train.max_epochs=1"]) == 0
    assert cli_exit_code(["export", tmp_path / "run", "-o", tmp_path / "m.bin", "--format", "tflite"]) == 2
    assert "unknown format" in capsys.readouterr().err
