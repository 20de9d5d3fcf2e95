"""Regenerate ``docs/results.md`` (every table of ``benchmarks/results/*.md``) and the README's headline
table (the ``headline`` rows each benchmark stores in its JSON, between the README's markers)."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
BEGIN, END = "<!-- headline:begin -->", "<!-- headline:end -->"
ORDER = ["medmnist", "classify_3d", "classify_throughput", "segment_drive", "segment_isbi", "segment_brain",
         "segment_speed", "register_brain", "register_2d", "qsar_moleculenet", "qsar_scale",
         "cpi_deepdta_folds_davis", "cpi_deepdta_folds_kiba", "cpi_cold_split_davis",
         "generate_selfies_lstm_lipophilicity",
         "generate_selfies_aae_lipophilicity", "serve_load"]
COLUMNS = ("task", "benchmark", "medlearn", "reference", "goal met")


def _key(path: Path) -> tuple[int, str]:
    stem = path.stem.removesuffix("_partial")  # a partial run (fewer parts or pairs) sits where its full one would
    return (ORDER.index(stem) if stem in ORDER else len(ORDER), path.stem)


def headline_rows() -> list[dict[str, str]]:
    """The ``headline`` rows of every result JSON, in :data:`ORDER`."""
    rows = []
    for path in sorted(RESULTS.glob("*.json"), key=_key):
        try:
            payload = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        for row in payload.get("headline", []) if isinstance(payload, dict) else []:
            rows.append({c: str(row.get(c, "")) for c in COLUMNS} | {"source": path.stem})
    return rows


def headline_table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "_no headline results yet: run `make bench`_"
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join(r[c] for c in COLUMNS) + " |")
    return "\n".join(lines)


def main() -> None:
    from medlearn.io import write_text

    files = sorted(RESULTS.glob("*.md"), key=_key)
    body = "\n\n".join(f.read_text().strip() + f"\n\n<sub>source: `benchmarks/results/{f.name}`</sub>" for f in files)
    results_page = ("# Results\n\nEvery benchmark table, measured by `make bench` on this project's 2-core CPU "
                    "machine (no GPU), generated from `benchmarks/results/` by `benchmarks/update_readme.py`. "
                    "Speed is a ratio measured side by side in one run; quality is compared with the published "
                    "numbers and the anchors in `../shared/benchmarks/`.\n\n" + (body or "_none yet_") + "\n")
    write_text(REPO / "docs" / "results.md", results_page)
    readme = REPO / "README.md"
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"README.md lacks the {BEGIN} / {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    rows = headline_rows()
    write_text(readme, f"{head}{BEGIN}\n{headline_table(rows)}\n{END}{tail}")
    print(f"docs/results.md: {len(files)} table(s); README headline: {len(rows)} row(s)")


if __name__ == "__main__":
    main()
