"""Benchmark of the build on the synthetic cohort: time of each notebook and of the whole build,
with the notebooks run one at a time and in parallel, and the whole `make supplement` command
(a new process, environment installed), against the 30 s target.

Run with the environment installed:  .venv/bin/python benchmarks/benchmark_build.py [--repeat N]
(or `make benchmark`). Numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 30.0


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"


def import_seconds() -> float:
    """Cold import of what every notebook imports, in a fresh interpreter."""
    code = ("import time; t = time.perf_counter(); import analysis_lib.study, analysis_lib.figures, "
            "analysis_lib.published, analysis_lib.cutoffs, analysis_lib.effects; print(time.perf_counter() - t)")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def build_once(jobs: int) -> tuple[float, dict[str, float]]:
    from analysis_lib.build import run_build

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = run_build(ROOT / "data" / "synthetic_cohort.csv", Path(tmp) / "outputs", jobs=jobs, log=lambda m: None)
        return time.perf_counter() - start, result.timings


def command_once() -> float:
    """The whole command `make supplement` runs, in a new process: start-up, validation, the
    notebooks, the supplement's assembly and the swap of the output folder."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "analysis_lib", "build", "--data",
                        str(ROOT / "data" / "synthetic_cohort.csv"), "--out", str(Path(tmp) / "outputs")],
                       check=True, capture_output=True)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"import of analysis_lib (cold, fresh interpreter): {import_seconds():.2f} s")
    walls = {}
    for jobs in (1, 2):
        runs = [build_once(jobs) for _ in range(args.repeat)]
        walls[jobs] = statistics.median(r[0] for r in runs)
        per_notebook = {name: statistics.median(r[1][name] for r in runs) for name in runs[0][1]}
        print(f"\nbuild with {jobs} worker{'s' if jobs > 1 else ''} (median of {args.repeat}): {walls[jobs]:.1f} s")
        for name, seconds in per_notebook.items():
            print(f"  {name:<14} {seconds:5.1f} s")
    print(f"\nparallel speed-up: {walls[1] / walls[2]:.2f}x")
    commands = [command_once() for _ in range(args.repeat)]
    print(f"whole command (python -m analysis_lib build, new process; median of {args.repeat}): "
          f"{statistics.median(commands):.1f} s")
    best = statistics.median(commands)
    print(f"target {TARGET_SECONDS:.0f} s for the whole command: {'met' if best <= TARGET_SECONDS else 'NOT met'} "
          f"({best:.1f} s, {best / TARGET_SECONDS:.0%} of the target)")


if __name__ == "__main__":
    main()
