"""Timing of the heavier analysis functions on the synthetic cohort (printed, never asserted):
the multiverse of specifications, multiple imputation, the center mixed models, Table 2 and the
cutoff sweep. Run with the environment installed: .venv/bin/python benchmarks/benchmark_analyses.py
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from analysis_lib.cutoffs import cutoff_sweep
from analysis_lib.effects import table2
from analysis_lib.imputation import multiple_imputation
from analysis_lib.multiverse import fit_specifications, multiverse_specs, run_multiverse
from analysis_lib.params import Parameters
from analysis_lib.sensitivity import center_sensitivity
from analysis_lib.study import load_study

ROOT = Path(__file__).resolve().parents[1]


def timed(label: str, fn, repeat: int = 3) -> object:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    print(f"{label:<52} {statistics.median(times):8.3f} s")
    return result


def main() -> None:
    params = Parameters(data_path=str(ROOT / "data" / "synthetic_cohort.csv"))
    study = timed("load, validate, propensity model, weights", lambda: load_study(params))
    timed("Table 2 (7 outcomes x 2 analyses x 3 rows)", lambda: table2(study.data, study.weights, 75))
    timed("cutoff sweep (11 cutoffs)", lambda: cutoff_sweep(study.data, study.weights, params.cutoffs()))
    specs = multiverse_specs(params.ps_covariates, None, "logistic", params.multiverse_formula)
    fits = timed("three propensity specifications", lambda: fit_specifications(study.data, specs))
    curve = timed("multiverse", lambda: run_multiverse(fits, params, 75.0))
    specs = len(curve) // 2
    print(f"{'  specifications (x 2 subgroups)':<52} {specs:8d}")
    timed("multiple imputation, m = 20 (no missing covariates)",
          lambda: multiple_imputation(study.cohort, params.ps_covariates, 75, m=20), repeat=1)
    cohort = study.cohort.copy()
    rng = np.random.default_rng(1)
    cohort.loc[rng.choice(len(cohort), 30, replace=False), "nihss"] = np.nan
    timed("multiple imputation, m = 20 (30 missing NIHSS)",
          lambda: multiple_imputation(cohort, params.ps_covariates, 75, m=20), repeat=1)
    timed("center random intercept, 7 outcomes x 2 models", lambda: center_sensitivity(study.data, study.weights, 75),
          repeat=1)


if __name__ == "__main__":
    main()
