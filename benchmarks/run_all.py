"""``make bench``: run every benchmark script here, one at a time, then refresh the README table.

    python benchmarks/run_all.py [NAME ...]     # e.g. medmnist classify_throughput
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SKIP = {"run_all", "update_readme"}


def main() -> None:
    wanted = set(sys.argv[1:])
    scripts = sorted(p for p in HERE.glob("*.py") if not p.name.startswith("_") and p.stem not in SKIP)
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    failed = []
    for script in scripts:
        if wanted and script.stem not in wanted:
            continue
        print(f"== {script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=HERE.parent, env=env).returncode != 0:
            failed.append(script.name)
    subprocess.run([sys.executable, str(HERE / "update_readme.py")], check=True)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
