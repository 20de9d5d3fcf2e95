"""End to end in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

The service runs on a free loopback port with the tiny trained classifier and a molecular model,
behind a token given to the page once as ``?token=``. A real image (a DRIVE fundus photograph) is
uploaded; the test waits for the Grad-CAM overlay to be drawn, checks the probabilities shown equal
the API's for the same bytes (3 decimals), moves the viewer's sliders, then predicts molecules and
reads the table. Screenshots go to the test's temporary folder. Missing browser = failure: run
``make setup``.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import httpx
import numpy as np
import pytest

from medlearn.serve import ServiceConfig, create_app
from medlearn.serve.models import ServedModel
from medlearn.serve.server import background
from tests.serve.conftest import TOKEN, FakeMolecules, FakeSegmenter

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _browser_tools():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: run `make setup` (pip install -r requirements.lock)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} not found: run `make setup` as root, or `apt-get install chromium`")
    return sync_playwright


@pytest.fixture
def fundus_png(shared_data: Path, tmp_path: Path) -> Path:
    """DRIVE test image 01 (565x584 RGB TIFF) resized to 96x100 and saved as PNG."""
    from PIL import Image

    with Image.open(shared_data / "drive" / "testing" / "images" / "01_test.tif") as im:
        small = im.convert("RGB").resize((96, 100))
    path = tmp_path / "fundus 01 (patient copy).png"
    small.save(path)
    return path


def test_page_end_to_end_in_chromium(classifier, fundus_png: Path, tmp_path: Path) -> None:
    sync_playwright = _browser_tools()
    models = {"tiny": ServedModel("tiny", classifier), "mol": ServedModel("mol", FakeMolecules()),
              "seg": ServedModel("seg", FakeSegmenter())}
    volume = tmp_path / "volume.nii.gz"
    _write_volume(volume)
    app = create_app(models, ServiceConfig(token=TOKEN))
    with background(app) as base:
        api = httpx.post(f"{base}/models/tiny/predict", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60,
                         files=[("files", ("u", fundus_png.read_bytes()))]).json()
        expected = api["results"][0]["probabilities"]
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                            headless=True, args=ARGS,
                                                            viewport={"width": 1200, "height": 1000})
            try:
                page = context.new_page()
                page.set_default_timeout(15_000)
                console_errors: list[str] = []
                page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: console_errors.append(str(e)))
                page.goto(f"{base}/?token={TOKEN}")
                # locator waits, not wait_for_function: the page's CSP (rightly) forbids eval
                page.locator("#model option").nth(1).wait_for(state="attached")
                assert "token" not in page.url  # taken once, then removed from the address bar
                assert page.get_by_test_id("status").inner_text() == "3 models"

                page.get_by_test_id("model-select").select_option("tiny")
                page.get_by_test_id("file-input").set_input_files(str(fundus_png))
                page.get_by_test_id("predict-button").click()
                canvas = page.locator('[data-testid="viewer-canvas-0"][data-overlay-drawn="1"]')
                canvas.wait_for()
                shown = {label: page.get_by_test_id(f"prob-0-{label}").inner_text() for label in expected}
                assert shown == {label: f"{p:.3f}" for label, p in expected.items()}
                assert page.get_by_test_id("predicted-0").inner_text() == api["results"][0]["predicted"]
                assert fundus_png.name in page.get_by_test_id("result-0").inner_text()  # the user's name, locally
                assert page.get_by_test_id("download-0").get_attribute("download") == "predictions.csv"
                pixels = _canvas_pixels(page, "canvas-0")
                assert pixels.std() > 1  # an image was drawn, not a blank canvas

                # viewer controls: opacity and window/level change what is drawn
                _slide(page, "opacity-0", "1")
                _slide(page, "window-0", page.get_by_test_id("window-0").get_attribute("min"))
                assert not np.array_equal(_canvas_pixels(page, "canvas-0"), pixels)
                page.screenshot(path=str(tmp_path / "classify.png"), full_page=True)

                # a 3D volume with a mask overlay: the slice slider moves through it
                page.get_by_test_id("model-select").select_option("seg")
                page.get_by_test_id("file-input").set_input_files(str(volume))
                page.get_by_test_id("predict-button").click()
                page.locator('[data-testid="viewer-canvas-0"][data-overlay-drawn="1"]').wait_for()
                assert page.get_by_test_id("slice-0").get_attribute("max") == "5"
                first = page.get_by_test_id("viewer-canvas-0").get_attribute("data-slice")
                assert first in ("2", "3")  # starts where the mask is largest (the cube's slices)
                before = _canvas_pixels(page, "canvas-0")
                _slide(page, "slice-0", "0")
                assert page.get_by_test_id("viewer-canvas-0").get_attribute("data-slice") == "0"
                assert not np.array_equal(_canvas_pixels(page, "canvas-0"), before)
                assert "bright" in page.get_by_test_id("viewer-0").inner_text()  # the mask's legend
                assert page.get_by_test_id("download-0").get_attribute("download") == "upload-0001_mask.nii.gz"
                page.screenshot(path=str(tmp_path / "volume.png"), full_page=True)

                page.get_by_test_id("model-select").select_option("mol")
                page.get_by_test_id("records-input").fill("CCO\nc1ccccc1O\nCCCCCCCCCCCCCCCCCCCCCCCCC")
                page.get_by_test_id("predict-button").click()
                page.get_by_test_id("cell-2-prediction").wait_for()
                assert page.get_by_test_id("cell-0-prediction").inner_text() == "0.461"
                assert page.get_by_test_id("ad-0").inner_text() == "in domain"
                assert page.get_by_test_id("ad-2").inner_text() == "outside domain"
                page.screenshot(path=str(tmp_path / "molecules.png"), full_page=True)

                assert not console_errors, console_errors
                page.get_by_test_id("records-input").fill("C1CC((")
                page.get_by_test_id("predict-button").click()
                page.get_by_test_id("error").wait_for(state="visible")
                assert "does not parse" in page.get_by_test_id("error").inner_text()
            finally:
                context.close()
    for name in ("classify.png", "volume.png", "molecules.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    print(f"screenshots in {tmp_path}")


def _write_volume(path: Path) -> None:
    """A 24x24x6 noisy volume with a bright cube on slices 2-3 (the fake segmenter's mask)."""
    import nibabel as nib

    rng = np.random.default_rng(0)
    volume = rng.normal(100, 10, (24, 24, 6)).astype(np.float32)
    volume[6:14, 8:18, 2:4] += 400
    nib.save(nib.Nifti1Image(volume, np.diag([1.0, 1.0, 2.5, 1.0])), str(path))


def _slide(page, testid: str, value: str) -> None:
    page.get_by_test_id(testid).evaluate(
        "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", value)


def _canvas_pixels(page, canvas_id: str) -> np.ndarray:
    from PIL import Image

    data_url = page.evaluate(f"document.getElementById('{canvas_id}').toDataURL('image/png')")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB"), np.int16)
