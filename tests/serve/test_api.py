"""The service's endpoints with FastAPI's TestClient: shapes of /health, /models, predict (images,
NIfTI, DICOM series zip, molecules), the page, the OpenAPI schema, request-local folders, concurrency."""

from __future__ import annotations

import base64
import gzip
import io
import json
import re
import tempfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydicom.data import get_testdata_file

from medlearn.serve import create_app
from medlearn.serve.models import ServedModel
from medlearn.serve.server import background
from tests.serve.conftest import FakeSegmenter, assert_error, png_bytes, post_files

CT5N = Path(get_testdata_file("CT_small.dcm")).parent / "dicomdirtests" / "98892001" / "CT5N"


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_health_and_models(client, classify_run: Path) -> None:
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "version": health.json()["version"], "models": 4}
    body = client.get("/models").json()
    by_name = {m["name"]: m for m in body["models"]}
    assert list(by_name) == ["tiny", "mol", "seg", "todo"]
    tiny = by_name["tiny"]
    assert (tiny["task"], tiny["inputs"], tiny["labels"], tiny["servable"]) == ("classify", "image", ["0", "1"], True)
    assert tiny["summary"]["input_size"] == [16, 16] and tiny["summary"]["channels"] == 3
    assert by_name["mol"]["inputs"] == "smiles"
    assert by_name["todo"]["servable"] is False
    assert str(classify_run) not in json.dumps(body)  # no server path


def test_predict_images_matches_the_model_in_process(client, classifier, sample_pngs, tmp_path: Path) -> None:
    response = post_files(client, "tiny", sample_pngs)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"model", "task", "inputs", "uploads", "results", "files", "viewer", "elapsed_ms"}
    assert [u["stored_as"] for u in body["uploads"]] == ["upload-0001.png", "upload-0002.png"]
    assert [r["name"] for r in body["results"]] == ["upload-0001", "upload-0002"]
    for k, data in enumerate(sample_pngs):
        path = tmp_path / f"image{k}.png"
        path.write_bytes(data)
        expected = classifier.predict_proba([path])[0]
        served = body["results"][k]["probabilities"]
        assert list(served) == ["0", "1"]
        np.testing.assert_allclose([served["0"], served["1"]], expected, atol=1e-6)
        assert body["results"][k]["predicted"] == ["0", "1"][int(np.argmax(expected))]
    (csv,) = body["files"]
    assert (csv["name"], csv["media_type"]) == ("predictions.csv", "text/csv")
    text = base64.b64decode(csv["data"]).decode()
    assert csv["bytes"] == len(text) and "upload-0001" in text and "upload-0002" in text
    assert len(body["viewer"]) == 2
    view = body["viewer"][0]
    assert view["shape"] == [16, 16, 1] and view["channels"] == 3 and view["overlay_kind"] == "heatmap"
    assert len(base64.b64decode(view["image"])) == 3 * 16 * 16
    assert len(base64.b64decode(view["overlay"])) == 16 * 16
    assert response.headers["cache-control"] == "no-store"


def test_format_is_sniffed_from_content_not_from_the_name(client, sample_pngs, shared_data: Path) -> None:
    from PIL import Image

    misnamed = client.post("/models/tiny/predict", files=[("files", ("scan.dcm", sample_pngs[0], "application/dicom"))])
    assert misnamed.status_code == 200, misnamed.text
    assert misnamed.json()["uploads"][0]["stored_as"] == "upload-0001.png"
    tiff = (shared_data / "drive" / "testing" / "images" / "01_test.tif").read_bytes()
    jpeg = io.BytesIO()
    Image.open(io.BytesIO(sample_pngs[1])).save(jpeg, format="JPEG")
    both = post_files(client, "tiny", [tiff, jpeg.getvalue()])
    assert both.status_code == 200, both.text
    assert [u["format"] for u in both.json()["uploads"]] == ["tif", "jpg"]
    assert len(both.json()["results"]) == 2


def test_nifti_keeps_its_affine_and_a_zipped_series_is_one_volume(models, tmp_path: Path) -> None:
    import nibabel as nib

    seg: FakeSegmenter = models["seg"].model
    client = TestClient(create_app(models))
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    affine[:3, 3] = [10, -20, 5]
    volume = np.random.default_rng(0).random((8, 8, 4)).astype(np.float32)
    nii = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine), str(nii))
    response = post_files(client, "seg", [nii.read_bytes()])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["uploads"][0]["stored_as"] == "upload-0001.nii.gz"
    assert body["results"][0]["shape"] == [1, 8, 8, 4]
    (mask_file,) = body["files"]
    assert (mask_file["name"], mask_file["media_type"]) == ("upload-0001_mask.nii.gz", "application/gzip")
    mask = nib.Nifti1Image.from_bytes(gzip.decompress(base64.b64decode(mask_file["data"])))
    np.testing.assert_allclose(mask.affine, affine)
    np.testing.assert_array_equal(np.asarray(mask.dataobj), volume > volume.mean())
    view = body["viewer"][0]
    assert view["shape"] == [8, 8, 4] and view["overlay_kind"] == "mask" and view["labels"] == ["background", "bright"]

    series = zip_of({f"CT5N/{f.name}": f.read_bytes() for f in sorted(CT5N.iterdir())} | {"README.txt": b"export\n"})
    response = post_files(client, "seg", [series])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["uploads"][0] == {"index": 1, "stored_as": "upload-0001", "format": "zip", "bytes": len(series),
                                  "members": 5}
    assert body["results"][0]["shape"][-1] == 5 and body["viewer"][0]["shape"][-1] == 5
    stored = seg.seen[-1]["stored"]
    assert sorted(stored) == [f"upload-0001/member-{k:04d}.dcm" for k in range(1, 6)]


def test_molecule_records(client) -> None:
    response = client.post("/models/mol/predict", json={"records": [{"smiles": "CCO", "id": "a"}, "c1ccccc1O"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["uploads"] == [] and body["viewer"] == []
    rows = body["results"]
    assert [r["smiles"] for r in rows] == ["CCO", "c1ccccc1O"]
    assert rows[0]["applicability_domain"] is True and abs(rows[0]["prediction"] - 0.46069) < 1e-3
    assert base64.b64decode(body["files"][0]["data"]).decode().startswith("smiles,prediction\nCCO,")
    bare = client.post("/models/mol/predict", json=["CCO"])
    assert bare.status_code == 200 and len(bare.json()["results"]) == 1


def test_openapi_schema_and_docs(client) -> None:
    schema = client.get("/openapi.json").json()
    predict = schema["paths"]["/models/{name}/predict"]["post"]
    assert set(predict["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    assert {"400", "401", "404", "413", "415", "422"} <= set(predict["responses"])
    assert {"/health", "/models"} <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    docs = client.get("/docs")  # readable offline: the schema rendered here, nothing loaded from elsewhere
    assert docs.status_code == 200 and "/openapi.json" in docs.text
    assert not re.search(r"https?://", docs.text) and "<script" not in docs.text
    assert "default-src 'none'" in docs.headers["content-security-policy"]
    for path in schema["paths"]:
        assert f"<code>{path}</code>" in docs.text
    assert "multipart/form-data" in docs.text and "415" in docs.text


def test_page_is_one_self_contained_file(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert not re.search(r"https?://", html), "the page must not load anything from elsewhere"
    assert not re.search(r"<script[^>]*\bsrc=|<link[^>]*\bhref=", html)
    csp = page.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "default-src 'none'" in csp and "connect-src 'self'" in csp
    for testid in ("model-select", "file-input", "records-input", "predict-button", "error", "downloads"):
        assert f'data-testid="{testid}"' in html


def test_each_request_has_its_own_folder_removed_afterwards(models, sample_pngs, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    client = TestClient(create_app(models))
    seg: FakeSegmenter = models["seg"].model
    assert post_files(client, "seg", sample_pngs).status_code == 200
    assert list(scratch.iterdir()) == []
    folder = seg.seen[-1]["folder"]
    assert folder.name.startswith("medlearn-serve-") and folder.parent == scratch and not folder.exists()
    assert [p.name for p in seg.seen[-1]["paths"]] == ["upload-0001.png", "upload-0002.png"]
    assert_error(post_files(client, "tiny", [b"not an image at all"]), 415)
    assert_error(post_files(client, "seg", [zip_of({"../x.png": sample_pngs[0]})]), 400)
    assert list(scratch.iterdir()) == []


def test_concurrent_requests_never_mix_results(classifier, sample_pngs, tmp_path: Path) -> None:
    import httpx

    seg = FakeSegmenter(delay=0.05)
    models = {"tiny": ServedModel("tiny", classifier), "seg": ServedModel("seg", seg)}
    expected = []
    for k, data in enumerate(sample_pngs):
        (tmp_path / f"{k}.png").write_bytes(data)
        expected.append(classifier.predict_proba([tmp_path / f"{k}.png"])[0])
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (12, 12), dtype=np.uint8) for _ in range(6)]
    failures: list[str] = []

    def client_thread(base: str, i: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            for j in range(2):
                k = (i + j) % 2
                got = http.post("/models/tiny/predict", files=[("files", ("u", sample_pngs[k]))]).json()
                probs = got["results"][0]["probabilities"]
                if not np.allclose([probs["0"], probs["1"]], expected[k], atol=1e-6):
                    failures.append(f"thread {i}: image {k} got {probs}")
            image = images[i % len(images)]
            got = http.post("/models/seg/predict", files=[("files", ("u", png_bytes(image)))]).json()
            if abs(got["results"][0]["mean"] - float(image.mean())) > 1e-3:
                failures.append(f"thread {i}: segmenter mixed images")

    with background(create_app(models)) as base:
        threads = [threading.Thread(target=client_thread, args=(base, i)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert not failures, failures
    assert len(seg.seen) == 8 and seg.max_active == 1  # one model's requests take turns (its lock)

