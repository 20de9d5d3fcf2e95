import base64
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from medlearn.evaluation.report import Report, format_value  # noqa: E402


def test_format_value_ci_and_nan():
    assert format_value({"value": 0.9, "ci95": [0.85, 0.93]}) == "0.900 [0.850, 0.930]"
    assert format_value({"value": 0.9, "ci95": None}) == "0.900"
    assert format_value(float("nan")) == "—"
    assert format_value(0.123456) == "0.1235"
    assert format_value(7) == "7"


def test_report_escapes_text_and_embeds_images(tmp_path):
    r = Report("Title <b>", subtitle="sub & co")
    r.add_heading("Results <script>")
    r.add_paragraph("a < b & c")
    r.add_metrics({"test": {"auc": {"value": 0.9, "ci95": [0.85, 0.93]}, "n": 10}}, caption="metrics")
    r.add_table([{"name": "x", "v": 0.5}, {"name": "y", "w": 2}], caption="tab")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    r.add_figure(fig, "roc curve", caption="ROC")
    assert not plt.get_fignums()  # the figure was closed
    img = np.zeros((4, 5, 3), np.uint8)
    img[0, 0] = [255, 0, 0]
    r.add_image(img, "roc curve")  # same name -> distinct file
    out = r.write(tmp_path / "run" / "report.html")
    text = out.read_text()
    assert "<script>" not in text and "Results &lt;script&gt;" in text
    assert "a &lt; b &amp; c" in text and "Title &lt;b&gt;" in text
    assert "test / auc" in text and "0.900 [0.850, 0.930]" in text
    pngs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(pngs) == 2
    assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    figs = sorted(p.name for p in (tmp_path / "run" / "figures").iterdir())
    assert figs == ["roc_curve.png", "roc_curve_2.png"]
    # the saved file is the embedded one, byte for byte
    assert (tmp_path / "run" / "figures" / "roc_curve_2.png").read_bytes() == base64.b64decode(pngs[1])
    from PIL import Image

    back = np.asarray(Image.open(tmp_path / "run" / "figures" / "roc_curve_2.png"))
    np.testing.assert_array_equal(back, img)
    # no temporary files left behind (atomic writes)
    leftovers = [p.name for p in (tmp_path / "run").rglob("*") if ".tmp" in p.name]
    assert leftovers == []


def test_report_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "report.html"
    path.write_text("old report")
    r = Report("new")

    def boom(self):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(Report, "to_html", boom)
    with pytest.raises(RuntimeError):
        r.write(path)
    assert path.read_text() == "old report"


def test_add_image_rejects_float():
    with pytest.raises(TypeError):
        Report("x").add_image(np.zeros((3, 3)), "f")
