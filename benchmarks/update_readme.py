"""Regenerate the README's results section from ``benchmarks/results/*.md`` (between the markers)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
ORDER = ["medmnist", "classify_throughput"]  # the rest follow alphabetically


def main() -> None:
    results = REPO / "benchmarks" / "results"
    files = sorted(results.glob("*.md"), key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else len(ORDER), p.stem))
    body = "\n\n".join(f.read_text().strip() + f"\n\n<sub>source: `benchmarks/results/{f.name}`</sub>" for f in files)
    readme = REPO / "README.md"
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"README.md lacks the {BEGIN} / {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    from medlearn.io import write_text

    write_text(readme, f"{head}{BEGIN}\n{body or '_no benchmark results yet: run `make bench`_'}\n{END}{tail}")
    print(f"README results: {len(files)} table(s)")


if __name__ == "__main__":
    main()
