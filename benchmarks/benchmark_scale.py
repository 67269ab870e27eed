"""How the whole build grows with the number of patients (printed, never asserted).

Cohorts from the synthetic generator with 500 centers at n = 10^3, 10^4, 10^5 and 10^6 (cached
in benchmarks/.cache/, git-ignored), each built with ``-p bootstrap_replicates 0``: wall time,
peak memory of the whole process tree (the build, its workers and the notebook kernels) and the
time of each notebook; then, at the largest n, the time of each library step in one process,
to show what dominates. Targets at 10^6: 120 s and 4 GB.

    .venv/bin/python benchmarks/benchmark_scale.py [--sizes 1000 10000 100000 1000000]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache"


def cohort(n: int) -> Path:
    path = CACHE / f"cohort_{n}.csv"
    if not path.exists():
        from analysis_lib.synthetic import generate_cohort, write_cohort

        CACHE.mkdir(parents=True, exist_ok=True)
        table1 = pd.read_csv(ROOT / "data" / "published" / "table1_published.csv")
        n_rs = round(n * 172 / 303)
        write_cohort(generate_cohort(table1, seed=1, n_mt_rs=n_rs, n_mt_only=n - n_rs, n_centers=500).data, path)
    return path


def build(path: Path) -> tuple[float, float, dict[str, float]]:
    """Wall seconds, peak RSS (GiB) of the process tree, seconds per notebook."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "analysis_lib", "build", "--data", str(path), "--out",
                                 str(Path(tmp) / "out"), "-p", "bootstrap_replicates", "0"],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        parent = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            try:
                peak = max(peak, parent.memory_info().rss + sum(c.memory_info().rss for c in parent.children(recursive=True)))
            except psutil.Error:
                pass
            time.sleep(0.1)
        wall = time.perf_counter() - start
        output = proc.stdout.read()
        if proc.returncode:
            raise SystemExit(f"build failed for {path}:\n{output}")
    notebooks = {m.group(1): float(m.group(2)) for m in re.finditer(r"\] (\S+) done \(([\d.]+) s\)", output)}
    return wall, peak / 2 ** 30, notebooks


def steps(path: Path) -> None:
    """Each library step of the build once, in one process."""
    code = f"""
import time
t = time.perf_counter()
def tick(label):
    global t
    now = time.perf_counter(); print(f"  {{label:<44}} {{now - t:6.1f}} s", flush=True); t = now
from analysis_lib.params import Parameters
from analysis_lib.steps import covariate_balance
from analysis_lib.study import load_study
from analysis_lib.descriptives import table1
from analysis_lib.effects import table2
from analysis_lib.cutoffs import cutoff_sweep, continuous_interaction
from analysis_lib.sensitivity import center_sensitivity, cluster_robust
from analysis_lib.specification import weight_sensitivity
from analysis_lib.imputation import multiple_imputation
from analysis_lib.multiverse import fit_specifications, multiverse_specs, propensity_specifications, run_multiverse
from analysis_lib.weighting import weights_table
tick("imports")
p = Parameters(data_path={str(path)!r})
st = load_study(p); tick("read, validate, propensity model, weights")
table1(st.data); tick("Table 1")
weights_table(st.data, st.propensity, st.weights).to_csv("/dev/null", index=False); tick("weights.csv")
covariate_balance(st); tick("balance")
cutoff_sweep(st.data, st.weights, p.cutoffs()); continuous_interaction(st.data, st.weights); tick("sweep and continuous model")
table2(st.data, st.weights, 75); tick("Table 2")
cluster_robust(st.data, st.weights, 75); tick("center-clustered variance")
center_sensitivity(st.data, st.weights, 75); tick("center random intercept (14 mixed models)")
weight_sensitivity(st.data, st.propensity, 75); tick("weight sensitivity")
multiple_imputation(st.cohort, p.ps_covariates, 75, m=20); tick("multiple imputation (nothing missing)")
fits = fit_specifications(st.data, multiverse_specs(p.ps_covariates, None, "logistic", p.multiverse_formula))
tick("three propensity specifications")
propensity_specifications(fits, "ATO", 75); tick("their balance and effects")
run_multiverse(fits, p, 75); tick("multiverse")
"""
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000, 1000000])
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
          f"Python {platform.python_version()}")
    rows = []
    for n in args.sizes:
        wall, peak, notebooks = build(cohort(n))
        rows.append((n, wall, peak, notebooks))
        slowest = max(notebooks, key=notebooks.get)
        print(f"n = {n:>9,}: {wall:6.1f} s, peak {peak:4.2f} GiB; slowest notebook {slowest} ({notebooks[slowest]:.1f} s)")
    names = list(rows[-1][3])
    print("\nseconds per notebook (notebooks share 2 workers, so they overlap):")
    print(f"{'notebook':<18}" + "".join(f"{n:>11,}" for n, *_ in rows))
    for name in sorted(names):
        print(f"{name:<18}" + "".join(f"{r[3].get(name, float('nan')):11.1f}" for r in rows))
    n, wall, peak, _ = rows[-1]
    print(f"\nat n = {n:,}: {wall:.1f} s (target 120 s) and {peak:.2f} GiB (target 4 GB)")
    print(f"\nlibrary steps at n = {n:,}, one process:")
    steps(cohort(n))


if __name__ == "__main__":
    main()
