"""The issue's "Bad input" list, through the service: each gets a 4xx JSON error with one clear
message, and the next request still works."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.data import get_testdata_file

from medlearn.serve import ServiceConfig, create_app
from medlearn.serve.models import ServedModel
from medlearn.tasks.base import ServiceInput, ServiceOutput, TaskModel
from tests.serve.conftest import TOKEN, assert_error, post_files

CT_SMALL = Path(get_testdata_file("CT_small.dcm"))
CT5N = CT_SMALL.parent / "dicomdirtests" / "98892001" / "CT5N"  # 5 axial slices, 2.5 mm apart


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def series_zip(tmp_path: Path, edit: Callable[[list[Path]], None]) -> bytes:
    """CT5N copied, edited (headers changed with pydicom, files removed), zipped."""
    folder = tmp_path / "series"
    shutil.copytree(CT5N, folder)
    edit(sorted(folder.iterdir(), key=lambda f: float(pydicom.dcmread(f).ImagePositionPatient[2])))
    return zip_of({f"series/{f.name}": f.read_bytes() for f in sorted(folder.iterdir())})


def _drop_middle(files: list[Path]) -> None:
    files[2].unlink()


def _tilt_one(files: list[Path]) -> None:
    ds = pydicom.dcmread(files[3])
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0.8, -0.6]
    ds.save_as(files[3])


def _meta_header() -> bytes:
    return b"ObjectType = Image\nNDims = 2\nDimSize = 4 4\nElementType = MET_UCHAR\nElementDataFile = /etc/passwd\n"


#: name -> (model, how to build the upload(s) from tmp_path and shared data, status, words in the message)
FILE_CASES: dict[str, tuple[str, Callable[[Path, Path], list[bytes]], int, tuple[str, ...]]] = {
    "not an image": ("tiny", lambda t, d: [b"patient list, not an image\n" * 10], 415, ("upload 1", "not an image")),
    "second upload not an image": ("tiny", lambda t, d: [CT_SMALL.read_bytes(), b"\x00\x01 junk"], 415,
                                   ("upload 2",)),
    "MetaImage header naming a server file": ("seg", lambda t, d: [_meta_header()], 415, ("MetaImage",)),
    "empty upload": ("tiny", lambda t, d: [b""], 400, ("upload 1", "empty")),
    "truncated DICOM (pixel data cut)": ("tiny", lambda t, d: [CT_SMALL.read_bytes()[:20000]], 400, ("truncated",)),
    "truncated DICOM (header only)": ("tiny", lambda t, d: [CT_SMALL.read_bytes()[:1000]], 400, ("truncated",)),
    "series with a missing slice": ("seg", lambda t, d: [series_zip(t, _drop_middle)], 400, ("missing slice",)),
    "series with mixed orientations": ("seg", lambda t, d: [series_zip(t, _tilt_one)], 400, ("mixed orientations",)),
    "zip with ../ path": ("seg", lambda t, d: [zip_of({"ok.dcm": CT_SMALL.read_bytes(), "../../etc/x.dcm": b"x"})],
                          400, ("zip member 2", "climbs out")),
    "zip with absolute path": ("seg", lambda t, d: [zip_of({"/etc/cron.d/x": CT_SMALL.read_bytes()})], 400,
                               ("climbs out",)),
    "zip without images": ("seg", lambda t, d: [zip_of({"notes.txt": b"hello\n"})], 415, ("no DICOM or image",)),
    "damaged zip": ("seg", lambda t, d: [b"PK\x03\x04" + b"\x00" * 200], 400, ("zip",)),
    "burned-in ultrasound": ("seg", lambda t, d: [(d / "dicom_samples" / "us_burned_in_annotation.dcm").read_bytes()],
                             400, ("BurnedInAnnotation is YES", "keep_burned_in")),
    "image the model cannot take (channels)": ("tiny", lambda t, d: [CT_SMALL.read_bytes()], 400,
                                               ("upload-0001", "channel")),
}


@pytest.fixture
def good(client, sample_pngs) -> Callable[[], None]:
    def check() -> None:
        response = post_files(client, "tiny", [sample_pngs[0]])
        assert response.status_code == 200, response.text
        assert len(response.json()["results"]) == 1
    return check


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_bad_upload_is_one_clear_4xx_and_the_service_keeps_serving(case: str, client, good, tmp_path: Path,
                                                                   shared_data: Path) -> None:
    model, build, status, words = FILE_CASES[case]
    message = assert_error(post_files(client, model, build(tmp_path, shared_data)), status, *words)
    assert "/tmp" not in message and str(tmp_path) not in message  # no server path
    good()


REQUEST_CASES: dict[str, tuple[Callable[[TestClient], Any], int, tuple[str, ...]]] = {
    "SMILES that does not parse": (lambda c: c.post("/models/mol/predict", json={"records": ["CCO", "C1CC(("]}),
                                   400, ("records[1].smiles", "does not parse")),
    "malformed JSON": (lambda c: c.post("/models/mol/predict", content=b'{"records": [', headers={
        "content-type": "application/json"}), 422, ("not valid JSON",)),
    "JSON of the wrong shape": (lambda c: c.post("/models/mol/predict", json={"records": [{"name": "x"}]}), 422,
                                ("records[0].smiles",)),
    "unknown body key": (lambda c: c.post("/models/mol/predict", json={"smiles": ["CCO"]}), 422, ("unknown key",)),
    "no records": (lambda c: c.post("/models/mol/predict", json={"records": []}), 422, ("non-empty",)),
    "unknown model name": (lambda c: c.post("/models/nope/predict", json={"records": ["CCO"]}), 404,
                           ("unknown model",)),
    "unknown path": (lambda c: c.get("/nothing/here"), 404, ("no such endpoint",)),
    "wrong method": (lambda c: c.get("/models/tiny/predict"), 405, ("method",)),
    "model whose task cannot serve": (lambda c: post_files(c, "todo", [b"x"]), 501, ("cannot be served yet",)),
    "JSON to an image model": (lambda c: c.post("/models/tiny/predict", json={"records": ["CCO"]}), 415,
                               ("multipart/form-data",)),
    "files to a molecule model": (lambda c: post_files(c, "mol", [b"CCO"]), 415, ("application/json",)),
    "no file in the form": (lambda c: c.post("/models/tiny/predict", data={"options": "{}"},
                                             files=[("other", ("x", b"1"))]), 422, ("unknown form field",)),
    "only options in the form": (lambda c: c.post("/models/tiny/predict", files=[("options", (None, b"{}"))]), 400,
                                 ("no file uploaded",)),
    "options not JSON": (lambda c: c.post("/models/tiny/predict", files=[("files", ("u", b"x")),
                                                                         ("options", (None, b"{oops"))]),
                         422, ("options",)),
    "truncated multipart": (lambda c: c.post("/models/tiny/predict", content=b"--b\r\nContent-Disposition: form-data; "
                                             b'name="files"; filename="u"\r\n\r\nabc', headers={
                                                 "content-type": "multipart/form-data; boundary=b"}), 422,
                            ("multipart",)),
}


@pytest.mark.parametrize("case", list(REQUEST_CASES))
def test_bad_request_is_one_clear_4xx_and_the_service_keeps_serving(case: str, client, good) -> None:
    call, status, words = REQUEST_CASES[case]
    assert_error(call(client), status, *words)
    good()


def test_oversized_upload_is_refused_while_reading(models, sample_pngs) -> None:
    client = TestClient(create_app(models, ServiceConfig(max_upload_bytes=50_000)))
    big = b"\x89PNG\r\n\x1a\n" + bytes(60_000)
    assert_error(post_files(client, "tiny", [big]), 413, "upload limit")

    def chunks():  # no Content-Length: the limit must hold while streaming
        yield b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"u\"\r\n\r\n"
        for _ in range(100):
            yield bytes(1000)

    streamed = client.post("/models/tiny/predict", content=chunks(),
                           headers={"content-type": "multipart/form-data; boundary=b"})
    assert "content-length" not in {k.lower() for k in streamed.request.headers}
    assert_error(streamed, 413, "upload limit")
    assert_error(client.post("/models/tiny/predict", content=b"x", headers={
        "content-type": "multipart/form-data; boundary=b", "content-length": "999999999"}), 413, "MB")
    # a small zip that unpacks to much more than the limit allows
    assert_error(post_files(client, "seg", [zip_of({"a.dcm": bytes(1_000_000)})]), 413, "zip bomb")
    assert post_files(client, "tiny", [sample_pngs[0]]).status_code == 200


def test_image_declaring_too_many_voxels(client, sample_pngs, monkeypatch: pytest.MonkeyPatch) -> None:
    from medlearn.serve import uploads

    monkeypatch.setattr(uploads, "MAX_VOXELS", 100)
    assert_error(post_files(client, "tiny", [sample_pngs[0]]), 413, "voxel limit")
    assert_error(post_files(client, "tiny", [CT_SMALL.read_bytes()]), 413, "voxel limit")


def test_token_is_checked_on_every_request(token_client, sample_pngs) -> None:
    for path in ("/health", "/models"):
        missing = token_client.get(path)
        assert_error(missing, 401, "missing token")
        assert missing.headers["www-authenticate"] == "Bearer"
        assert_error(token_client.get(path, headers={"Authorization": "Bearer wrong"}), 401, "wrong token")
        assert_error(token_client.get(path, headers={"Authorization": f"Basic {TOKEN}"}), 401)
        assert token_client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert_error(token_client.get(f"/health?token={TOKEN}"), 401)  # the API takes the header only
    assert_error(post_files(token_client, "tiny", sample_pngs), 401)
    assert_error(post_files(token_client, "nope", sample_pngs), 401)  # before anything else: no model list
    ok = post_files(token_client, "tiny", sample_pngs, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and len(ok.json()["results"]) == 2
    assert token_client.get("/").status_code == 200  # the data-free page, which then sends the header


class Crashing(TaskModel):
    task_name = "crashing"
    input_kind = "smiles"

    def serve_predict(self, request: ServiceInput, workdir: Path) -> ServiceOutput:
        raise RuntimeError(f"unexpected failure on {request.records[0]['smiles']}")


def test_unexpected_failure_is_a_500_without_details(models, caplog: pytest.LogCaptureFixture) -> None:
    client = TestClient(create_app(models | {"crash": ServedModel("crash", Crashing())}))
    with caplog.at_level("INFO"):
        message = assert_error(client.post("/models/crash/predict", json={"records": ["CCO"]}), 500,
                               "RuntimeError", "keeps serving")
    assert "CCO" not in message and "CCO" not in caplog.text
    assert "RuntimeError" in caplog.text
    assert client.post("/models/mol/predict", json={"records": ["CCO"]}).status_code == 200


def test_options_reach_the_model(client, models, sample_pngs) -> None:
    response = post_files(client, "seg", [sample_pngs[0]], options={"threshold": 0.5, "keep_burned_in": False})
    assert response.status_code == 200
    assert models["seg"].model.seen[-1]["options"] == {"threshold": 0.5}  # the service's own option is consumed
    assert json.loads(json.dumps(response.json()["results"]))[0]["shape"] == [3, 16, 16]


def test_record_shapes_per_input_kind() -> None:
    from medlearn.serve.errors import ServiceError
    from medlearn.serve.records import parse_records

    pairs = [{"smiles": "CCO", "sequence": "MKT"}]
    assert parse_records(json.dumps({"records": pairs}).encode(), "pairs") == (pairs, {})
    assert parse_records(b'{"options": {"n": 10}}', "count") == (None, {"n": 10})
    assert parse_records(b'["CCO"]', "smiles") == ([{"smiles": "CCO"}], {})
    for body, kind, words in ((b'[{"smiles": "CCO"}]', "pairs", "sequence"), (b'["CCO"]', "pairs", "records[0]"),
                              (b'{"records": [{"smiles": "C", "x": [1]}]}', "smiles", "records[0].x"),
                              (b'{"options": [1]}', "count", "options"), (b'"CCO"', "smiles", "JSON object"),
                              (b"\xff\xfe", "smiles", "not valid JSON")):
        with pytest.raises(ServiceError) as info:
            parse_records(body, kind)
        assert info.value.status == 422 and words in info.value.message
