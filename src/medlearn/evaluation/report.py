"""A self-contained HTML report: one ``.html`` file that works offline.

Styles are inline and every image is embedded as a base64 PNG, so the report can be mailed or
archived on its own. Each image is also saved as a PNG in a ``figures/`` folder next to the report,
for slides and papers. All text the caller passes is HTML-escaped.

Example::

    report = Report("BreastMNIST", subtitle="ResNet-18, seed 0")
    report.add_metrics({"test": {"auc": {"value": 0.9, "ci95": [0.85, 0.93]}}})
    report.add_figure(fig, "roc", caption="ROC curve on the test split")
    report.write(run_dir / "report.html")
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medlearn.io import write_bytes, write_text

__all__ = ["Report", "format_value"]

_CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;color:#222;
  max-width:1100px;margin:2em auto;padding:0 1.5em;line-height:1.45;background:#fff}
h1{font-size:1.7em;margin-bottom:.1em;border-bottom:2px solid #2b6cb0;padding-bottom:.2em}
h2{font-size:1.3em;margin-top:1.8em;color:#2b6cb0}
h3{font-size:1.1em;margin-top:1.4em}
p.subtitle{color:#666;margin-top:.2em}
p.meta{color:#999;font-size:.8em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.3em .7em;text-align:left;vertical-align:top}
th{background:#f3f6fa}
tr:nth-child(even) td{background:#fafafa}
td.num{text-align:right;font-variant-numeric:tabular-nums;font-family:ui-monospace,Menlo,Consolas,monospace}
caption{caption-side:top;text-align:left;font-weight:600;padding-bottom:.3em}
figure{margin:1.2em 0}
figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.9em;margin-top:.3em}
pre{background:#f6f8fa;padding:.7em;overflow-x:auto;font-size:.85em}
"""


def _is_ci_entry(value: Any) -> bool:
    return isinstance(value, Mapping) and "value" in value and set(value) <= {"value", "ci95", "ci_note"}


def format_value(value: Any, float_format: str = "{:.4f}") -> str:
    """Format one table cell as plain text (the caller escapes it).

    ``{"value": v, "ci95": [lo, hi]}`` becomes ``"v [lo, hi]"`` with 3 decimals (``"v (CI not estimable:
    why)"`` when the entry has a ``ci_note``); floats use
    ``float_format``; NaN and None become an em dash; short lists are written inline.
    """
    if value is None:
        return "—"
    if _is_ci_entry(value):
        point = format_value(value["value"], "{:.3f}")
        ci = value.get("ci95")
        if value.get("ci_note"):
            return f"{point} (CI {value['ci_note']})"
        if ci is None or len(ci) != 2 or any(c is None or _isnan(c) for c in ci):
            return point
        return f"{point} [{format_value(ci[0], '{:.3f}')}, {format_value(ci[1], '{:.3f}')}]"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return "—" if _isnan(value) else float_format.format(float(value))
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v, float_format) for v in value) + "]"
    return str(value)


def _isnan(value: Any) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def _is_numeric(value: Any) -> bool:
    return _is_ci_entry(value) or (
        isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    )


def _flatten(metrics: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Flatten nested dicts into ``("test / auc", value)`` pairs; CI entries stay whole."""
    out: list[tuple[str, Any]] = []
    for key, value in metrics.items():
        name = f"{prefix} / {key}" if prefix else str(key)
        if isinstance(value, Mapping) and not _is_ci_entry(value):
            out.extend(_flatten(value, name))
        else:
            out.append((name, value))
    return out


def _png_bytes_from_array(array: np.ndarray) -> bytes:
    from PIL import Image

    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        raise TypeError(f"add_image expects a uint8 array, got {arr.dtype}; scale it to 0..255 first")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ValueError(f"add_image expects HxW, HxWx3 or HxWx4, got shape {arr.shape}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG")
    return buf.getvalue()


class Report:
    """Build a self-contained HTML report block by block, then :meth:`write` it.

    Args:
        title: page title and top heading.
        subtitle: optional line under the title (e.g. dataset and model).
    """

    def __init__(self, title: str, subtitle: str | None = None) -> None:
        self.title = title
        self.subtitle = subtitle
        self._blocks: list[str] = []
        self._figures: dict[str, bytes] = {}  # file name -> PNG bytes, in insertion order

    # -- blocks -----------------------------------------------------------------------------------
    def add_heading(self, text: str, level: int = 2) -> Report:
        """Add a heading ``<h{level}>`` (level 1..6; the title is the only ``h1`` by convention)."""
        if not 1 <= int(level) <= 6:
            raise ValueError(f"heading level must be 1..6, got {level}")
        self._blocks.append(f"<h{int(level)}>{html.escape(str(text))}</h{int(level)}>")
        return self

    def add_paragraph(self, text: str) -> Report:
        """Add a paragraph of plain text (escaped; blank lines start new paragraphs)."""
        for part in re.split(r"\n\s*\n", str(text)):
            if part.strip():
                self._blocks.append(f"<p>{html.escape(part.strip())}</p>")
        return self

    def add_preformatted(self, text: str) -> Report:
        """Add a block of monospaced text (e.g. a plan or a command line), escaped."""
        self._blocks.append(f"<pre>{html.escape(str(text))}</pre>")
        return self

    def add_table(
        self, rows: Sequence[Mapping[str, Any]], caption: str | None = None, float_format: str = "{:.4f}"
    ) -> Report:
        """Add a table; columns are the union of the rows' keys in first-seen order.

        Cells are formatted by :func:`format_value` (so ``{"value", "ci95"}`` entries read
        ``0.900 [0.850, 0.930]``); missing cells are empty; numbers are right-aligned.
        """
        columns: list[str] = []
        for row in rows:
            for key in row:
                if key not in columns:
                    columns.append(key)
        parts = ["<table>"]
        if caption:
            parts.append(f"<caption>{html.escape(str(caption))}</caption>")
        parts.append("<thead><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in columns) + "</tr></thead>")
        parts.append("<tbody>")
        for row in rows:
            cells = []
            for col in columns:
                if col not in row:
                    cells.append("<td></td>")
                    continue
                value = row[col]
                cls = ' class="num"' if _is_numeric(value) else ""
                cells.append(f"<td{cls}>{html.escape(format_value(value, float_format))}</td>")
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</tbody></table>")
        self._blocks.append("".join(parts))
        return self

    def add_metrics(self, metrics: Mapping[str, Any], caption: str | None = None) -> Report:
        """Add a two-column table (metric, value) from a possibly nested metrics dict.

        ``{"test": {"auc": {"value": .9, "ci95": [.85, .93]}}}`` gives the row
        ``test / auc | 0.900 [0.850, 0.930]``. Nested lists (e.g. a confusion matrix) are written
        inline; add them as a figure for anything large.
        """
        rows = [{"metric": name, "value": value} for name, value in _flatten(metrics)]
        return self.add_table(rows, caption=caption)

    def add_figure(self, fig: Any, name: str, caption: str | None = None, dpi: int = 110) -> Report:
        """Embed a matplotlib Figure as PNG (saved as ``figures/<name>.png`` too) and close it."""
        buf = io.BytesIO()
        try:
            fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
        finally:
            if getattr(fig.canvas, "manager", None) is not None:  # made by pyplot: release it
                import matplotlib.pyplot as plt

                plt.close(fig)
        return self._add_png(buf.getvalue(), name, caption)

    def add_training_curves(self, log_csv: str | Path, caption: str = "Training curves") -> Report:
        """Plot a Lightning CSV log (``logs/metrics.csv``) if it exists and holds curves; else add nothing.

        A report without curves beats no report, so a log that cannot be plotted is skipped.
        """
        if not Path(log_csv).exists():
            return self
        try:
            from medlearn.evaluation.plots import plot_training_curves

            return self.add_figure(plot_training_curves(log_csv), "training_curves", caption=caption)
        except Exception:  # noqa: BLE001 -- an empty or partial log must not fail the whole report
            return self

    def add_image(self, array: np.ndarray, name: str, caption: str | None = None) -> Report:
        """Embed a uint8 image (HxW grayscale, HxWx3 RGB or HxWx4 RGBA) at its native resolution."""
        return self._add_png(_png_bytes_from_array(array), name, caption)

    def _add_png(self, png: bytes, name: str, caption: str | None) -> Report:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._") or "figure"
        file_name, k = f"{stem}.png", 2
        while file_name in self._figures:
            file_name, k = f"{stem}_{k}.png", k + 1
        self._figures[file_name] = png
        b64 = base64.b64encode(png).decode("ascii")
        alt = html.escape(str(caption or name), quote=True)
        cap = f"<figcaption>{html.escape(str(caption))}</figcaption>" if caption else ""
        self._blocks.append(f'<figure><img src="data:image/png;base64,{b64}" alt="{alt}">{cap}</figure>')
        return self

    # -- output -----------------------------------------------------------------------------------
    @property
    def figure_names(self) -> list[str]:
        """File names (inside ``figures/``) of the images added so far."""
        return list(self._figures)

    def to_html(self) -> str:
        """The complete HTML document as a string."""
        head = [f"<h1>{html.escape(self.title)}</h1>"]
        if self.subtitle:
            head.append(f'<p class="subtitle">{html.escape(self.subtitle)}</p>')
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        head.append(f'<p class="meta">Generated by medlearn on {stamp}.</p>')
        body = "\n".join(head + self._blocks)
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(self.title)}</title>\n<style>{_CSS}</style>\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n"
        )

    def write(self, path: str | Path) -> Path:
        """Write the report to ``path`` and its PNGs to ``path.parent / "figures"``, atomically."""
        path = Path(path)
        fig_dir = path.parent / "figures"
        for file_name, png in self._figures.items():
            write_bytes(fig_dir / file_name, png)
        return write_text(path, self.to_html())
