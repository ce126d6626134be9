"""Start-up time of `radplan --version`: the frozen bundle (what hospitals install) side by side with the
development virtualenv, in one run. Cold = after dropping the page cache (needs root and a writable
/proc/sys/vm/drop_caches; otherwise reported as unavailable); warm = median of N runs.

Usage: .venv/bin/python bench/startup.py --bundle build/pyinstaller/dist/radplan/radplan [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], data_dir: str) -> float:
    env = {**os.environ, "RADPLAN_DATA_DIR": data_dir}
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=ROOT / "build" / "pyinstaller" / "dist" / "radplan" / "radplan")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    commands = {
        "bundle": [str(args.bundle), "--version"],
        "venv": [str(ROOT / ".venv" / "bin" / "radplan"), "--version"],
    }
    print(f"{'target':8} {'cold s':>8} {'warm median s':>14} {'warm min s':>11}")
    with tempfile.TemporaryDirectory(prefix="radplan-bench-startup-") as data_dir:
        for name, cmd in commands.items():
            cold = f"{timed(cmd, data_dir):8.3f}" if drop_caches() else "     n/a"
            warm = [timed(cmd, data_dir) for _ in range(args.runs)]
            print(f"{name:8} {cold} {statistics.median(warm):14.3f} {min(warm):11.3f}")
    print("time to a visible window: bench/gui_startup.py")


if __name__ == "__main__":
    main()
