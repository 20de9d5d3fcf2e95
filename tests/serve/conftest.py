"""Fixtures for the service tests: one tiny trained classify run (3-channel 16x16 images, resized on
input, so RGB PNGs, DRIVE images and the colour CT captures of the de-identification samples all fit),
and two models registered nowhere: a molecular one (SMILES in, a prediction table out) and an image
"segmenter" that reads inputs through the real reader and returns a mask, like the segment task will.
"""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from medlearn.errors import InputError
from medlearn.serve import ServiceConfig, create_app
from medlearn.serve.models import ServedModel
from medlearn.tasks.base import ServiceInput, ServiceOutput, TaskModel
from tests.conftest import FAST, cli_exit_code, make_images

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="session")
def classify_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished classify run trained in seconds (smallcnn, 1 epoch)."""
    folder = tmp_path_factory.mktemp("serve_run")
    arrays = {}
    for k, (split, n) in enumerate((("train", 48), ("val", 16), ("test", 16))):
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = make_images(n, seed=k, channels=3)
    np.savez(folder / "tiny.npz", **arrays)
    run = folder / "tiny"
    code = cli_exit_code(["classify", "train", folder / "tiny.npz", "-o", run, *FAST, "--set", "data.resize=[16,16]",
                          "--set", "train.max_epochs=1", "--bootstrap", "10"])
    assert code == 0
    return run


@pytest.fixture(scope="session")
def classifier(classify_run: Path) -> TaskModel:
    import medlearn

    return medlearn.load_run(classify_run)


class FakeMolecules(TaskModel):
    """SMILES in; per molecule a "prediction" (molecular weight / 100), an "uncertainty" and the
    applicability-domain flag (fewer than 20 heavy atoms), and a CSV file."""

    task_name = "fake_qsar"
    input_kind = "smiles"

    def describe(self) -> dict[str, Any]:
        return {"task": self.task_name, "inputs": self.input_kind, "labels": ["weight"], "targets": ["weight"]}

    def serve_predict(self, request: ServiceInput, workdir: Path) -> ServiceOutput:
        from rdkit import Chem, RDLogger
        from rdkit.Chem import Descriptors

        RDLogger.DisableLog("rdApp.*")
        rows = []
        for i, record in enumerate(request.records or []):
            mol = Chem.MolFromSmiles(record["smiles"])
            if mol is None:
                raise InputError(f"records[{i}].smiles", "does not parse as SMILES", "check the molecule")
            weight = Descriptors.MolWt(mol) / 100
            rows.append({"smiles": record["smiles"], "prediction": weight, "uncertainty": 0.1 * weight,
                         "applicability_domain": mol.GetNumHeavyAtoms() < 20})
        table = workdir / "predictions.csv"
        table.write_text("smiles,prediction\n" + "".join(f"{r['smiles']},{r['prediction']:.6f}\n" for r in rows))
        return ServiceOutput(rows, [table])


class FakeSegmenter(TaskModel):
    """Images in through the real reader (:mod:`medlearn.imaging.inputs`); per image its shape and
    mean, a mask (above the mean) as viewer overlay and as NIfTI with the input's affine. Records what
    it was given (file names, bytes) for the tests; ``delay`` makes requests overlap."""

    task_name = "fake_segment"
    input_kind = "image"

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay
        self.seen: list[dict[str, Any]] = []
        self.active = 0
        self.max_active = 0
        self._count = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {"task": self.task_name, "inputs": "image", "labels": ["background", "bright"]}

    def serve_predict(self, request: ServiceInput, workdir: Path) -> ServiceOutput:
        import time

        from medlearn.data.images import write_image
        from medlearn.imaging.inputs import collect_images, read_input
        from medlearn.imaging.viewer import viewer_volume

        with self._count:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            self.seen.append({"paths": list(request.files), "options": dict(request.options),
                              "stored": {str(f.relative_to(p.parent)): f.read_bytes() for p in request.files
                                         for f in ([p] if p.is_file() else sorted(p.rglob("*"))) if f.is_file()},
                              "folder": request.files[0].parent if request.files else None})
            results, files, viewer = [], [], []
            for item in collect_images(request.files):
                array, meta = read_input(item)
                mask = (array[0] > array[0].mean()).astype(np.uint8)
                results.append({"name": item.name, "shape": list(array.shape), "mean": float(array.mean()),
                                "foreground": int(mask.sum())})
                if meta is not None:
                    files.append(write_image(workdir / f"{item.name}_mask.nii.gz", mask, like=meta))
                viewer.append(viewer_volume(item.name, array, mask, "mask", ["background", "bright"]))
            time.sleep(self.delay)
            return ServiceOutput(results, files, viewer)
        finally:
            with self._count:
                self.active -= 1


class Unservable(TaskModel):
    """A task that keeps the base class's ``serve_predict``."""

    task_name = "unservable"
    input_kind = "image"


@pytest.fixture
def models(classifier: TaskModel) -> dict[str, ServedModel]:
    return {"tiny": ServedModel("tiny", classifier), "mol": ServedModel("mol", FakeMolecules()),
            "seg": ServedModel("seg", FakeSegmenter()), "todo": ServedModel("todo", Unservable())}


@pytest.fixture
def client(models: dict[str, ServedModel]) -> TestClient:
    return TestClient(create_app(models))


@pytest.fixture
def token_client(models: dict[str, ServedModel]) -> TestClient:
    return TestClient(create_app(models, ServiceConfig(token=TOKEN)))


def png_bytes(image: np.ndarray) -> bytes:
    """A raster ``(H, W)`` or ``(H, W, 3)`` uint8 as PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def sample_pngs() -> list[bytes]:
    """Two 16x16 RGB images, one of each class of the tiny model's training data."""
    images, labels = make_images(4, seed=7, channels=3)
    return [png_bytes(images[int(np.flatnonzero(labels == k)[0])]) for k in (0, 1)]


def post_files(client: Any, model: str, files: list[bytes], options: dict[str, Any] | None = None,
               headers: dict[str, str] | None = None) -> Any:
    """POST ``files`` (bytes, named "upload": the service ignores names) as multipart to a model."""
    data = {"options": json.dumps(options)} if options is not None else None
    return client.post(f"/models/{model}/predict", files=[("files", ("upload", f, "application/octet-stream"))
                                                          for f in files], data=data, headers=headers or {})


def assert_error(response: Any, status: int, *words: str) -> str:
    """A JSON error ``{"error": message}`` with ``status``; the message (one line) contains ``words``."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    message = body["error"]
    assert message and "\n" not in message
    for word in words:
        assert word in message, message
    return message
