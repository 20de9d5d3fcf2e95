"""Every bad input of the registration issue through the CLI: one line naming the file, exit code 2, and
nothing lost (no run folder created; a finished run kept, even with --force)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medlearn.data.images import ImageMeta, write_image
from tests.conftest import cli_exit_code
from tests.tasks.register.conftest import smooth_image, write_pairs

FAST = ["--set", "network.channels=[8,16]", "--set", "train.max_epochs=1", "--set", "train.steps_per_epoch=2",
        "--set", "inference.refine_steps=0", "--bootstrap", "0", "--quiet"]
META3 = ImageMeta("x", "nifti", (16, 16, 8), (1.0, 1.0, 1.0), np.eye(4))


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("bad")
    csv = write_pairs(folder / "ok", n=3, shape=(24, 24), known=False)
    run = folder / "run"
    assert cli_exit_code(["register", "train", csv, "-o", run, *FAST]) == 0
    return csv, run


def _table(folder: Path, header: str, *rows: str) -> Path:
    (folder / "t.csv").write_text("\n".join([header, *rows]) + "\n")
    return folder / "t.csv"


def _refused(args: list, capsys: pytest.CaptureFixture, match: str) -> str:
    assert cli_exit_code(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ") and match in err, err
    return err


def _bad_training(csv: Path, finished: tuple[Path, Path], tmp_path: Path, capsys, match: str) -> None:
    """Refused into a new folder (nothing created) and into the finished run with --force (kept)."""
    _, run = finished
    before = (run / "metrics.json").read_bytes()
    _refused(["register", "train", csv, "-o", tmp_path / "new", *FAST], capsys, match)
    assert not (tmp_path / "new").exists()
    _refused(["register", "train", csv, "-o", run, "--force", *FAST], capsys, match)
    assert (run / "metrics.json").read_bytes() == before and (run / "model.pt").exists()


def test_mismatched_dimensionality(finished, tmp_path, capsys):
    ds = finished[0].parent
    write_image(tmp_path / "vol.nii.gz", smooth_image((16, 16, 8))[None], META3)
    csv = _table(tmp_path, "fixed,moving", f"{ds / 'f0.nii.gz'},{tmp_path / 'vol.nii.gz'}")
    _bad_training(csv, finished, tmp_path, capsys, "moving image is 3D but the fixed image f0.nii.gz is 2D")
    # a 3D pair given to a 2D model
    write_image(tmp_path / "vol2.nii.gz", smooth_image((16, 16, 8), 1)[None], META3)
    err = _refused(["register", "predict", finished[1], tmp_path / "vol.nii.gz", tmp_path / "vol2.nii.gz", "-o",
                    tmp_path / "p"], capsys, "the model registers 2D images")
    assert "3D" in err and not (tmp_path / "p").exists()


def test_missing_files(finished, tmp_path, capsys):
    ds = finished[0].parent
    csv = _table(tmp_path, "fixed,moving", f"{ds / 'f0.nii.gz'},{ds / 'nope.nii.gz'}")
    err = _refused(["register", "train", csv, "-o", tmp_path / "new", *FAST], capsys, "moving image not found")
    assert "nope.nii.gz" in err and "t.csv row 2" in err and not (tmp_path / "new").exists()
    _refused(["register", "predict", finished[1], ds / "f0.nii.gz", tmp_path / "gone.png", "-o", tmp_path / "p"],
             capsys, "not found")
    _refused(["register", "evaluate", finished[1], tmp_path / "no_such.csv"], capsys, "not found")


def test_an_empty_label_map(finished, tmp_path, capsys):
    ds = finished[0].parent
    write_image(tmp_path / "empty.nii.gz", np.zeros((1, 24, 24), np.uint8),
                ImageMeta("x", "nifti", (24, 24), (1.0, 1.0), np.eye(4)))
    csv = _table(tmp_path, "fixed,moving,fixed_label,moving_label",
                 f"{ds / 'f0.nii.gz'},{ds / 'm0.nii.gz'},{ds / 'fl0.nii.gz'},{tmp_path / 'empty.nii.gz'}")
    _bad_training(csv, finished, tmp_path, capsys, "label map is empty")


def test_labels_in_one_image_only(finished, tmp_path, capsys):
    ds = finished[0].parent
    csv = _table(tmp_path, "fixed,moving,fixed_label,moving_label",
                 f"{ds / 'f0.nii.gz'},{ds / 'm0.nii.gz'},{ds / 'fl0.nii.gz'},")
    _bad_training(csv, finished, tmp_path, capsys, "has a label map for the fixed image only")
    _refused(["register", "evaluate", finished[1], csv], capsys, "for the fixed image only")


def test_a_pair_that_does_not_overlap_after_resampling(finished, tmp_path, capsys):
    ds = finished[0].parent
    far = np.eye(4)
    far[:3, 3] = [400.0, 0.0, 0.0]
    write_image(tmp_path / "far.nii.gz", smooth_image((24, 24))[None], ImageMeta("x", "nifti", (24, 24), (1.0, 1.0),
                                                                                   far))
    csv = _table(tmp_path, "fixed,moving", f"{ds / 'f0.nii.gz'},{tmp_path / 'far.nii.gz'}")
    _bad_training(csv, finished, tmp_path, capsys, "does not overlap the fixed image f0.nii.gz at all")
    _refused(["register", "predict", finished[1], ds / "f0.nii.gz", tmp_path / "far.nii.gz", "-o", tmp_path / "p"],
             capsys, "does not overlap")


def test_another_modality_without_a_multimodal_loss(finished, tmp_path, capsys):
    csv = write_pairs(tmp_path / "mm", n=3, shape=(24, 24), known=False,
                      extra_columns={"fixed_modality": "MR", "moving_modality": "CT"})
    _bad_training_with(csv, finished, tmp_path, capsys, ["--set", "loss.similarity=ncc"],
                       "multi-modal (CT, MR) but the similarity is ncc")
    # a one-modality model asked to register an MR -> CT pair
    _refused(["register", "evaluate", finished[1], csv], capsys, "is multi-modal (MR -> CT) but the model learnt ncc")
    _refused(["register", "evaluate", finished[1], csv, "--method", "demons"], capsys, "demons assumes one modality")
    # the planned default for such pairs is mutual information
    run = tmp_path / "mi"
    assert cli_exit_code(["register", "train", csv, "-o", run, *FAST]) == 0
    plan = json.loads((run / "plan.json").read_text())
    assert plan["loss"]["similarity"] == "mi" and not plan["data"]["same_modality"]


def _bad_training_with(csv, finished, tmp_path, capsys, extra, match):
    _, run = finished
    before = (run / "metrics.json").read_bytes()
    _refused(["register", "train", csv, "-o", tmp_path / "new", *FAST, *extra], capsys, match)
    assert not (tmp_path / "new").exists()
    _refused(["register", "train", csv, "-o", run, "--force", *FAST, *extra], capsys, match)
    assert (run / "metrics.json").read_bytes() == before


def test_bad_options_and_plan_values(finished, tmp_path, capsys):
    csv, run = finished
    ds = csv.parent
    _refused(["register", "evaluate", run, csv, "--method", "magic"], capsys, "unknown method 'magic'")
    _refused(["register", "predict", run, ds / "f0.nii.gz", ds / "m0.nii.gz", "--refine", "-3", "-o", tmp_path / "p"],
             capsys, "must be >= 0")
    _refused(["register", "train", csv, "-o", tmp_path / "n", *FAST, "--set", "data.working_shape=[30,30]",
              "--set", "network.channels=[8,16,16,16]"], capsys, "must be multiples of 4")
    _refused(["register", "train", csv, "-o", tmp_path / "n", *FAST, "--set", "train.batch_size=0"], capsys,
             "'train.batch_size' is 0")
    _refused(["register", "train", csv, "-o", tmp_path / "n", *FAST, "--set", "network.name=transmorph"], capsys,
             "unknown network 'transmorph'")
    assert not (tmp_path / "n").exists() and not (tmp_path / "p").exists()
