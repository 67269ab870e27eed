"""Benchmark of the resampling engine (printed, never asserted).

Whole-process times of ``python -m analysis_lib resample`` on the synthetic cohort (n = 303)
with 2,000 and 20,000 replicates (each replicate: a bootstrap replicate of the whole selection
procedure and a null replicate of the selection test), against the targets: 2,000 in 2 s or
less, and per replicate at least 100 times faster than the same procedure written with R's
glm + lm + sandwich (benchmarks/resample_procedure.R, run here when Rscript is available).

    .venv/bin/python benchmarks/benchmark_resample.py
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
R_REPLICATES = 200


def whole_process(replicates: int, repeat: int = 3) -> float:
    times = []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(repeat):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "analysis_lib", "resample", "--data", "data/synthetic_cohort.csv",
                            "--replicates", str(replicates), "--seed", "1", "--out", out],
                           cwd=ROOT, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def r_seconds_per_replicate(with_sandwich: bool) -> float | None:
    if shutil.which("Rscript") is None:
        return None
    run = subprocess.run(["Rscript", "benchmarks/resample_procedure.R", str(R_REPLICATES), "1" if with_sandwich else "0"],
                         cwd=ROOT, capture_output=True, text=True)
    match = re.search(r"([\d.]+) s per replicate", run.stdout)
    return float(match.group(1)) if match else None


def main() -> None:
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}")
    t2k = whole_process(2000)
    t20k = whole_process(20000)
    print(f"n = 303, 2,000 replicates, whole process:  {t2k:6.2f} s  (target 2 s: {'met' if t2k <= 2 else 'NOT met'})")
    print(f"n = 303, 20,000 replicates, whole process: {t20k:6.2f} s  ({1000 * t20k / 20000:.3f} ms per replicate)")
    ours = t20k / 20000
    for label, with_sandwich in (("glm + lm + sandwich", True), ("glm + lm, no sandwich", False)):
        r = r_seconds_per_replicate(with_sandwich)
        if r is None:
            print(f"R ({label}): Rscript not available")
            continue
        print(f"R ({label}), {R_REPLICATES} replicates: {1000 * r:8.2f} ms per replicate -> ours is "
              f"{r / ours:,.0f}x faster (target 100x)")


if __name__ == "__main__":
    main()
