"""Generate the test cohorts whose reference results are computed in R (make_reference.R).

Run from the project root:  python tests/reference/make_cohorts.py
Every cohort is synthetic (analysis_lib.synthetic), then edited to plant the situations the
estimators must get right. The files are committed so that the R script and the tests see
exactly the same data.

* ``synthetic``: the shipped cohort ``data/synthetic_cohort.csv`` (not copied here).
* ``missing``: 260 patients, 20 centers; missing propensity covariates (excluded), missing
  90-day mRS and re-occlusion (outcome models drop them, weights of the full sample kept),
  stenosis readings exactly on the cutoffs, and no sICH among MT-only patients with
  stenosis > 75 % (a zero-event subgroup).
* ``small``: 120 patients, 12 centers, a step effect at 75 %; no re-occlusion in the MT-only
  arm at all (overall RR not estimable) and no death among MT+RS patients with stenosis > 75 %.
* ``centers40``: 400 patients in 40 centers of very unequal size (log-size SD 1.5), for the
  center random-intercept and clustered-variance checks.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from analysis_lib.synthetic import TrueEffect, generate_cohort, write_cohort

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "cohorts"


def missing_cohort(table1: pd.DataFrame) -> pd.DataFrame:
    df = generate_cohort(table1, seed=7, n_mt_rs=150, n_mt_only=110, n_centers=20).data.copy()
    rng = np.random.default_rng(70)
    for col, k in (("nihss", 6), ("aspects", 4), ("mtici_2b3_after_mt", 3), ("age", 2)):
        df.loc[rng.choice(len(df), k, replace=False), col] = np.nan
    gone = rng.choice(len(df), 8, replace=False)
    df.loc[gone, ["mrs_90d", "death_90d"]] = np.nan
    # readings exactly on candidate cutoffs
    on_cut = rng.choice(len(df), 30, replace=False)
    df.loc[on_cut, "stenosis_pct"] = rng.choice([50.0, 60.0, 65.0, 70.0, 75.0, 80.0], 30)
    zero = (df["rescue_stenting"] == 0) & (df["stenosis_pct"] > 75)
    df.loc[zero, "sich"] = 0.0
    return df


def small_cohort(table1: pd.DataFrame) -> pd.DataFrame:
    df = generate_cohort(table1, seed=11, n_mt_rs=68, n_mt_only=52, n_centers=12,
                         effect=TrueEffect("step", crossing=75.0, step=1.0)).data.copy()
    mt_only = df["rescue_stenting"] == 0
    df.loc[mt_only & df["reocclusion"].notna(), "reocclusion"] = 0.0
    high_rs = (df["rescue_stenting"] == 1) & (df["stenosis_pct"] > 75)
    dead = high_rs & (df["mrs_90d"] == 6)
    df.loc[dead, "mrs_90d"] = 5.0
    df.loc[df["mrs_90d"].notna(), "death_90d"] = (df.loc[df["mrs_90d"].notna(), "mrs_90d"] == 6).astype(float)
    return df


def centers40_cohort(table1: pd.DataFrame) -> pd.DataFrame:
    return generate_cohort(table1, seed=40, n_mt_rs=220, n_mt_only=180, n_centers=40, center_size_sd=1.5).data


def main() -> None:
    table1 = pd.read_csv(ROOT / "data" / "published" / "table1_published.csv")
    OUT.mkdir(parents=True, exist_ok=True)
    write_cohort(missing_cohort(table1), OUT / "missing.csv")
    write_cohort(small_cohort(table1), OUT / "small.csv")
    write_cohort(centers40_cohort(table1), OUT / "centers40.csv")


if __name__ == "__main__":
    main()
