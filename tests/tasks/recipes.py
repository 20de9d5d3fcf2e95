"""A tiny dataset and the CLI arguments to train, predict and evaluate each registered task quickly.

``RECIPES[name](folder)`` returns a :class:`Recipe`; the contract test (``test_contract.py``) runs every
task through the same checks with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Recipe:
    """``train``: the training arguments after ``medlearn <task> train`` (data first, no ``-o``);
    ``slow``: extra ``--set`` items that make training last a few seconds (to kill it mid-way);
    ``predict``: arguments after ``predict RUN`` (``-o`` added by the test: a file, or a folder when
    ``predict_folder``); ``evaluate``: arguments after ``evaluate RUN``."""

    train: list[str]
    predict: list[str]
    evaluate: list[str]
    slow: list[str] = field(default_factory=list)
    predict_folder: bool = False
    #: what the web service is sent: uploaded files, or JSON records / options
    serve_files: list[str] = field(default_factory=list)
    serve_json: dict = field(default_factory=dict)
    #: False where the model keeps parts ONNX cannot hold (then export must refuse in one line)
    exports: bool = True


def classify(folder: Path) -> Recipe:
    from tests.conftest import FAST, make_images

    arrays = {}
    for k, (split, n) in enumerate((("train", 48), ("val", 16), ("test", 16))):
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = make_images(n, seed=k)
    np.savez(folder / "tiny.npz", **arrays)
    data = str(folder / "tiny.npz")
    from PIL import Image

    Image.fromarray(arrays["test_images"][0]).save(folder / "upload.png")
    return Recipe([data, *FAST], [data], [data, "--bootstrap", "20"],
                  slow=["--set", "train.max_epochs=300", "--set", "train.patience=null"],
                  serve_files=[str(folder / "upload.png")])


def generate(folder: Path) -> Recipe:
    from tests.tasks.generate.conftest import DRUGS, write_smiles_csv

    csv = str(write_smiles_csv(folder / "mols.csv", DRUGS))
    tiny = ["--set", "train.max_epochs=2", "--set", "network.hidden=32", "--set", "network.layers=1",
            "--set", "eval_samples=30", "--set", "train.batch_size=16", "--bootstrap", "20", "--quiet"]
    return Recipe([csv, *tiny], ["-n", "10"], [csv, "--bootstrap", "20"],
                  slow=["--set", "train.max_epochs=400", "--set", "train.patience=null"],
                  serve_json={"options": {"n": 5}}, exports=False)


def segment(folder: Path) -> Recipe:
    from medlearn.tasks.segment.synthetic import make_synthetic_dataset

    data = str(make_synthetic_dataset(folder / "ds", n_cases=3, size=32, roi=True, n_test=1))
    tiny = ["--set", "network.channels=[8,16,32]", "--set", "network.strides=[2,2]",
            "--set", "train.patch_size=[32,32]", "--set", "train.batch_size=4", "--set", "train.steps_per_epoch=10",
            "--set", "train.max_epochs=2",
            "--set", "train.ensemble=1", "--quiet", "--bootstrap", "20"]
    upload = next((Path(data) / "imagesTs").iterdir())
    return Recipe([data, *tiny], [data], [data, "--bootstrap", "20"], slow=["--set", "train.max_epochs=30"],
                  predict_folder=True, serve_files=[str(upload)])


def qsar(folder: Path) -> Recipe:
    import pandas as pd

    from tests.tasks.qsar.conftest import crippen_logp, many_smiles

    smiles = many_smiles(8)
    pd.DataFrame({"smiles": smiles, "logp": crippen_logp(smiles)}).to_csv(folder / "mols.csv", index=False)
    csv = str(folder / "mols.csv")
    return Recipe([csv, "--target", "logp", "--set", "network.name=dnn", "--set", "train.max_epochs=3",
                   "--bootstrap", "20", "--quiet"], [csv], [csv, "--bootstrap", "20"],
                  slow=["--set", "train.max_epochs=400", "--set", "train.patience=null"],
                  serve_json={"records": [{"smiles": "CCO"}, {"smiles": "c1ccccc1O"}]})


def cpi(folder: Path) -> Recipe:
    rng = np.random.default_rng(0)
    smiles = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "CCN(CC)CC", "OC(=O)c1ccccc1", "CCCCCC"]
    proteins = ["MKTAYIAKQRQISFVKSHFSRQ", "MSDNELKQLLEEAGYTVKAEV", "MGSSHHHHHHSSGLVPRGSHM", "MADQLTEEQIAEFKEAFSLFD",
                "MKVLAAGIVGLLLAACSSNDQ"]
    rows = ["smiles,sequence,value"]
    for i, s in enumerate(smiles):
        for j, p in enumerate(proteins):
            rows.append(f"{s},{p},{5 + 0.3 * i - 0.2 * j + 0.05 * rng.normal():.3f}")
    (folder / "pairs.csv").write_text("\n".join(rows) + "\n")
    csv = str(folder / "pairs.csv")
    tiny = ["--set", "train.max_epochs=2", "--set", "network.hidden=[16]", "--set", "network.tower_dim=16",
            "--set", "network.tower_hidden=16", "--set", "network.kmer_pca=4", "--set", "train.batch_size=8",
            "--set", "train.ensemble=2", "--quiet", "--bootstrap", "20"]
    return Recipe([csv, *tiny], [csv], [csv, "--bootstrap", "20"],
                  slow=["--set", "train.max_epochs=300", "--set", "train.patience=null"],
                  serve_json={"records": [{"smiles": smiles[0], "sequence": proteins[0]}]})


def register(folder: Path) -> Recipe:
    from tests.tasks.register.conftest import write_pairs

    csv = write_pairs(folder / "pairs", n=6, shape=(32, 32))
    tiny = ["--set", "network.channels=[8,16,16,16]", "--set", "train.max_epochs=2", "--set", "train.steps_per_epoch=4",
            "--set", "inference.refine_steps=5", "--quiet", "--bootstrap", "20"]
    pair = [str(folder / "pairs" / "f0.nii.gz"), str(folder / "pairs" / "m0.nii.gz")]
    return Recipe([str(csv), *tiny], pair, [str(csv), "--bootstrap", "20"],
                  slow=["--set", "train.max_epochs=40", "--set", "train.steps_per_epoch=5"], predict_folder=True,
                  serve_files=pair)


RECIPES: dict[str, Callable[[Path], Recipe]] = {"classify": classify, "segment": segment, "qsar": qsar, "cpi": cpi,
                                                "generate": generate, "register": register}
