"""End-to-end pipeline on this machine's CPU: `radplan demo` (embedded demo PACS, C-GET into a fresh encrypted store,
AI segmentation in the engine worker, radiomics, NLP, scores, rules, draft plan with DVH, PDF, C-STORE back), time
per step and total, for the small test study and the full-size demo study side by side. Goal: under 60 s total on a
2-core CPU for the full-size study (the pipeline steps; generating the synthetic study is reported apart).

Usage: .venv/bin/python bench/e2e.py [--sizes small,full] [--repeat 1] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_PW = {"admin": "admin-password-1", "rad": "rad-password-1"}  # throw-away store of synthetic data
SIZES = {"small": ["--shape", "96x96x40", "--spacing", "4,4,5"], "full": []}
STEPS = ["retrieve", "select_ct", "segment", "structures", "radiomics", "nlp", "scores", "rules", "plan", "pdf", "send"]


def _radplan(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RADPLAN_")},
        "RADPLAN_DATA_DIR": str(data_dir),
        "RADPLAN_PASSPHRASE": "bench-passphrase-only",
        "RADPLAN_SITE_CONFIG": str(data_dir / "none.toml"),
        "RADPLAN_USER_CONFIG": str(data_dir / "none-user.toml"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=full,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )


def run_once(size: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="radplan-bench-e2e-") as tmp:
        data = Path(tmp) / "store"
        admin = {"RADPLAN_USER": "admin", "RADPLAN_PASSWORD": BENCH_PW["admin"]}
        _radplan(data, "init", "--admin", "admin", "--key-mode", "passphrase", **admin)
        _radplan(
            data, "user", "add", "rad", "--role", "radiologist", **{"RADPLAN_NEW_PASSWORD": BENCH_PW["rad"]}, **admin
        )
        start = time.perf_counter()
        done = _radplan(
            data,
            "demo",
            "--json",
            "--out",
            str(Path(tmp) / "demo"),
            *SIZES[size],
            RADPLAN_USER="rad",
            **{"RADPLAN_PASSWORD": BENCH_PW["rad"]},
        )
        result: dict[str, Any] = json.loads(done.stdout)
        result["process_s"] = time.perf_counter() - start
        result["size"] = size
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="small,full")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="Also write every run as JSON here.")
    args = parser.parse_args()
    cpu = platform.processor() or platform.machine()
    print(f"machine: {cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    runs = [run_once(size) for size in args.sizes.split(",") for _ in range(args.repeat)]
    header = f"{'step':12}" + "".join(f"{r['size']:>10}" for r in runs)
    print(header)
    for step in STEPS:
        print(f"{step:12}" + "".join(f"{(r['seconds'].get(step) or 0.0):10.2f}" for r in runs))
    for label, key in (
        ("pipeline", "total_s"),
        ("demo data", "demo_data_s"),
        ("demo wall", "wall_s"),
        ("process", "process_s"),
    ):
        print(f"{label:12}" + "".join(f"{r[key]:10.2f}" for r in runs))
    for r in runs:
        rec = r["recommendation"] or {}
        print(
            f"{r['size']}: {rec.get('modality')} {rec.get('total_dose_gy')} Gy/{rec.get('fractions')} "
            f"[{', '.join(rec.get('rule_ids', []))}], sent back {r['received_back']}"
        )
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
