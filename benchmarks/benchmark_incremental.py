"""Benchmark of incremental builds on the synthetic cohort (numbers printed, never asserted).

With an empty store of the notebooks that read no data (``ANALYSIS_LIB_CACHE`` set to a new
temporary folder, see analysis_lib/cache.py):

1. a cold build into an empty folder, the store empty: every notebook runs;
2. the same command again (inputs unchanged: every notebook is reused), and its ratio to 1;
3. a cold build into another empty folder, the simulation study and the audit in the store: the
   cold default build of a checkout that has built once, and the ratio of 2 to it;
4. a build of another data file into a third folder (the same two notebooks from the store);
5. ``--force`` (every notebook runs again);

then where the time of 3 goes: the build's own steps, timed in one process (checking parameters
and data, hashing the inputs, the notebooks on two workers, provenance and the supplement), the
six notebooks that run, and the fixed cost of one notebook (a kernel that imports the library
and matplotlib, executed as the build executes notebooks).

Each numbered step is the whole command in a new process (``python -m analysis_lib build``), as
a user runs it. Run with the environment installed:  .venv/bin/python benchmarks/benchmark_incremental.py
"""

from __future__ import annotations

import json
import os
import re
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


def reused(lines: list[str]) -> list[str]:
    return [line.split()[1] for line in lines if line.startswith("[reused]")]


def notebook_seconds(lines: list[str]) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in (re.search(r"\] (\S+) done \(([\d.]+) s\)", x) for x in lines) if m}


def build_steps(data: Path, out: Path) -> dict[str, float]:
    """The steps of ``run_build``, timed in this process (a cold build into ``out``)."""
    from analysis_lib import build as b

    times, t = {}, time.perf_counter()
    plan = b.plan_build(data, out, store=Path(os.environ["ANALYSIS_LIB_CACHE"]))
    times["parameters, data and design checked; inputs hashed"] = time.perf_counter() - t
    t = time.perf_counter()
    done = b.reuse_previous(plan, lambda _: None)
    times["simulation and audit copied from the store"] = time.perf_counter() - t
    t = time.perf_counter()
    todo = {(task[0],): task for task in plan.tasks if task[0] not in done}
    results = b.run_tasks(b._worker_pool(2), todo, lambda _: None)
    times[f"{len(todo)} notebooks on 2 workers"] = time.perf_counter() - t
    t = time.perf_counter()
    b.complete_build(plan, {**done, **{k[0]: v for k, v in results.items()}})
    times["provenance, supplement, swap into place"] = time.perf_counter() - t
    return times


def kernel_overhead(folder: Path) -> float:
    """Seconds to execute a one-cell notebook that imports what every notebook imports."""
    from analysis_lib.build import _execute

    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": "imports", "metadata": {}, "outputs": [],
                     "source": "from analysis_lib.study import load_study\nimport matplotlib.figure"}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    source = folder / "imports.ipynb"
    source.write_text(json.dumps(nb))
    return _execute("imports", str(source), str(folder / "imports.out.ipynb"), {})["seconds"]


def main() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from benchmark_build import machine

    print(f"Machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["ANALYSIS_LIB_CACHE"] = str(tmp / "store")  # an empty store, inherited by the builds
        other = tmp / "other.csv"
        other.write_bytes(DATA.read_bytes().replace(b"SYN-0001,", b"SYN-9999,", 1))  # another data file
        cold, _ = timed_build(DATA, tmp / "first")
        again, lines_again = timed_build(DATA, tmp / "first")
        stored, lines_stored = timed_build(DATA, tmp / "second")
        new_data, lines_new = timed_build(other, tmp / "third")
        forced, _ = timed_build(DATA, tmp / "first", "--force")
        steps = build_steps(DATA, tmp / "fourth")
        overhead = kernel_overhead(tmp)
    print(f"1. cold build, empty store (8 notebooks run):          {cold:6.1f} s")
    print(f"2. unchanged rebuild ({len(reused(lines_again))} notebooks reused):             {again:6.1f} s  "
          f"= {100 * again / cold:.1f} % of 1 (target: at most 10 %)")
    print(f"3. cold build, new folder ({', '.join(reused(lines_stored))} stored): {stored:6.1f} s  "
          f"(target: at most 15 s); 2 is {100 * again / stored:.1f} % of it")
    print(f"4. another data file, new folder ({len(reused(lines_new))} stored):       {new_data:6.1f} s")
    print(f"5. --force (8 notebooks run):                          {forced:6.1f} s")
    print("\nwhere the time of 3 goes (its steps in one process):")
    for label, seconds in steps.items():
        print(f"  {label:<52} {seconds:5.2f} s")
    print("  the notebooks that run (each alone on its worker):")
    for name, seconds in sorted(notebook_seconds(lines_stored).items(), key=lambda kv: -kv[1]):
        print(f"    {name:<50} {seconds:5.1f} s")
    print(f"  of which each notebook spends starting a kernel and importing the library: {overhead:.1f} s")


if __name__ == "__main__":
    main()
