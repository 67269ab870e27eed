"""Benchmark of incremental builds on the synthetic cohort (numbers printed, never asserted):

1. a cold build into an empty folder (every notebook runs);
2. the same command again (inputs unchanged: every notebook is reused) and its ratio to 1;
3. a build of another data file into the same folder (the audit and the simulation study, which
   read no data, are reused; the other six notebooks run): the cold time without the simulation;
4. ``--force`` (every notebook runs again).

Each step is the whole command in a new process (`python -m analysis_lib build`), as a user runs
it. Run with the environment installed:  .venv/bin/python benchmarks/benchmark_incremental.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "synthetic_cohort.csv"


def timed_build(data: Path, out: Path, *extra: str) -> tuple[float, list[str]]:
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "analysis_lib", "build", "--data", str(data), "--out", str(out),
                          *extra], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        raise SystemExit(run.stderr)
    return seconds, run.stdout.splitlines()


def main() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from benchmark_build import machine

    print(f"Machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "outputs"
        other = Path(tmp) / "other.csv"
        other.write_bytes(DATA.read_bytes().replace(b"SYN-0001,", b"SYN-9999,", 1))  # another data file
        cold, _ = timed_build(DATA, out)
        again, lines = timed_build(DATA, out)
        reused = sum(line.startswith("[reused]") for line in lines)
        new_data, lines = timed_build(other, out)
        kept = [line.split()[1] for line in lines if line.startswith("[reused]")]
        forced, _ = timed_build(DATA, out, "--force")
    print(f"cold build (8 notebooks run):                       {cold:6.1f} s")
    print(f"unchanged rebuild ({reused} notebooks reused):            {again:6.1f} s  "
          f"= {100 * again / cold:.0f} % of the cold build (target: at most 10 %)")
    print(f"another data file ({', '.join(kept)} reused): {new_data:6.1f} s  "
          f"= the cold time without the simulation study")
    print(f"--force (8 notebooks run):                          {forced:6.1f} s")


if __name__ == "__main__":
    main()
