"""The resampling fast path: equal to the library and to statsmodels on the expanded data,
reproducible by seed, independent of batching, and with a uniform p-value under the null."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from conftest import COHORTS, ROOT, assert_close, sample, weights

from analysis_lib.cutoffs import continuous_interaction, cutoff_sweep
from analysis_lib.data import derive_outcomes
from analysis_lib.params import DEFAULT_PS_COVARIATES, Parameters
from analysis_lib.resample import (
    CHUNK,
    CROSSING_COLUMNS,
    SELECTION_COLUMNS,
    TEST_COLUMNS,
    _bootstrap_batch,
    bootstrap,
    observed,
    prepare,
    resample,
    wild_null_test,
)
from analysis_lib.synthetic import TrueEffect, generate_cohort
from analysis_lib.weighting import compute_weights, fit_propensity

CUTOFFS = Parameters().cutoffs()


@pytest.mark.parametrize("cohort", ["synthetic", "missing", "small"])
@pytest.mark.parametrize("estimand", ["ATO", "ATE"])
def test_observed_procedure_equals_the_library(cohort, estimand):
    s = sample(cohort)
    design = prepare(s, DEFAULT_PS_COVARIATES, CUTOFFS, estimand)
    obs = observed(design)
    sweep = cutoff_sweep(s, weights(cohort, estimand), CUTOFFS)
    assert_close(obs.difference[0], sweep["difference"], rtol=1e-9, atol=1e-12, what="differences")
    assert obs.eligible[0].tolist() == sweep["eligible"].tolist()
    chosen = sweep.index[sweep["selected"]]
    assert (obs.selected[0] == chosen[0]) if len(chosen) else obs.selected[0] == -1
    cont = continuous_interaction(s, weights(cohort, estimand))
    assert obs.crossing[0] == pytest.approx(cont.summary["crossing_point"].iloc[0], rel=1e-9)


def test_bootstrap_replicates_equal_statsmodels_on_the_expanded_data():
    """A replicate's multiplicities define a data set with repeated rows; statsmodels' GLM and
    WLS on it give the same propensity, differences and crossing point to 1e-8."""
    s = sample("synthetic")
    design = prepare(s, DEFAULT_PS_COVARIATES, CUTOFFS)
    rng = np.random.default_rng(12)
    M = rng.multinomial(len(s), np.full(len(s), 1 / len(s)), size=3).astype(float)
    proc, ok = _bootstrap_batch(design, M)
    assert ok.all()
    for b in range(3):
        rows = np.repeat(np.arange(len(s)), M[b].astype(int))
        boot = s.iloc[rows].reset_index(drop=True)
        X = sm.add_constant(boot[list(DEFAULT_PS_COVARIATES)].to_numpy(float))
        t = boot["rescue_stenting"].to_numpy(float)
        e = sm.GLM(t, X, family=sm.families.Binomial()).fit(tol=1e-14, maxiter=100).fittedvalues
        w = np.where(t == 1, 1 - e, e)
        y = boot["mrs_90d"].to_numpy(float)
        st = boot["stenosis_pct"].to_numpy(float)
        diffs = []
        for c in CUTOFFS:
            h = (st > c).astype(float)
            Xs = np.column_stack([np.ones_like(t), t, h, t * h])
            diffs.append(sm.WLS(y, Xs, weights=w).fit().params[3] if np.linalg.matrix_rank(Xs) == 4 else np.nan)
        eligible = proc.eligible[b]
        assert_close(proc.difference[b][eligible], np.array(diffs)[eligible], rtol=1e-8, what="differences")
        beta = sm.WLS(y, np.column_stack([np.ones_like(t), t, st, t * st]), weights=w).fit().params
        assert proc.crossing[b] == pytest.approx(-beta[1] / beta[3], rel=1e-8)


def test_reproducible_by_seed_and_independent_of_batching():
    design = prepare(sample("synthetic"), DEFAULT_PS_COVARIATES, CUTOFFS)
    a = bootstrap(design, CHUNK + 200, seed=5)
    b = bootstrap(design, CHUNK + 200, seed=5)
    c = bootstrap(design, CHUNK + 200, seed=6)
    first = bootstrap(design, CHUNK, seed=5)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[2], c[2])
    np.testing.assert_array_equal(a[2][:CHUNK], first[2])  # the first batch does not depend on how many follow


def test_result_tables():
    s = sample("synthetic")
    result = resample(s, weights("synthetic"), DEFAULT_PS_COVARIATES, CUTOFFS, 300, seed=3)
    assert list(result.cutoff_selection.columns) == SELECTION_COLUMNS
    assert list(result.crossing_bootstrap.columns) == CROSSING_COLUMNS
    assert list(result.selection_test.columns) == TEST_COLUMNS
    sel = result.cutoff_selection
    assert sel["times_selected"].sum() == 300 and sel["share"].sum() == pytest.approx(1)
    cross = result.crossing_bootstrap.set_index("quantity")
    values = result.bootstrap_crossing
    assert cross.loc["crossing_point", "ci_lower"] == pytest.approx(np.quantile(values, 0.025))
    sweep = cutoff_sweep(s, weights("synthetic"), CUTOFFS)
    assert cross.loc["selected_difference", "estimate"] == pytest.approx(sweep.loc[sweep.selected, "difference"].iloc[0])
    test = result.selection_test.iloc[0]
    assert test["observed"] == pytest.approx(abs(sweep.loc[sweep.selected, "difference"].iloc[0]))
    assert test["p_value"] == (1 + np.sum(result.null_statistics >= test["observed"])) / 301


def test_selection_adjusted_p_is_uniform_under_the_null():
    """60 cohorts without any effect of stenting (so no effect modification), 99 null replicates
    each: the selection-adjusted p-values must look uniform. Tolerance: the rejection rate at 5 %
    within 0.05 +- 3 Monte-Carlo SEs (0.0-0.135) and a Kolmogorov-Smirnov p above 0.01. The naive
    p-interaction at the selected cutoff, for contrast, is not uniform."""
    from scipy import stats

    table1 = pd.read_csv(ROOT / "data" / "published" / "table1_published.csv")
    adjusted, naive = [], []
    for r in range(60):
        df = derive_outcomes(generate_cohort(table1, seed=1000 + r, effect=TrueEffect("none"),
                                             mrs_calibration="common").data)
        model = fit_propensity(df, DEFAULT_PS_COVARIATES)
        w = compute_weights(model.propensity, df["rescue_stenting"].to_numpy())
        design = prepare(df, DEFAULT_PS_COVARIATES, CUTOFFS)
        stat, null = wild_null_test(design, w, 99, seed=r)
        adjusted.append((1 + np.sum(null >= stat - 1e-12)) / 100)
        sweep = cutoff_sweep(df, w, CUTOFFS)
        naive.append(sweep.loc[sweep.selected, "p_interaction"].iloc[0])
    adjusted = np.array(adjusted)
    assert np.mean(adjusted < 0.05) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 60)
    assert stats.kstest(adjusted, "uniform").pvalue > 0.01
    assert np.mean(np.array(naive) < 0.05) > np.mean(adjusted < 0.05)


def test_within_subgroup_weights_on_the_fast_path_equal_the_library():
    """Under subgroup_weights within, the fast path's sweep on the data equals the library's sweep,
    and one bootstrap replicate equals the library run on the expanded data (the subgroup models
    refitted on the replicate)."""
    from analysis_lib.params import Parameters
    from analysis_lib.resample import _bootstrap_batch, prepare
    from analysis_lib.steps import sweep_of
    from analysis_lib.study import load_study

    study = load_study(Parameters(data_path=str(COHORTS["synthetic"]), subgroup_weights="within"))
    p = study.params
    design = prepare(study.data, p.ps_covariates, p.cutoffs(), subgroup_weights="within")
    sweep = sweep_of(study)
    fast = observed(design)
    assert np.array_equal(fast.eligible[0], sweep["eligible"].to_numpy())
    assert_close(fast.difference[0], sweep["difference"], rtol=1e-9)
    M = np.random.default_rng(5).multinomial(design.n, np.full(design.n, 1 / design.n), size=1).astype(float)
    proc, ok = _bootstrap_batch(design, M)
    expanded = study.data.loc[study.data.index.repeat(M[0].astype(int))].reset_index(drop=True)
    again = load_study(Parameters(data_path=str(COHORTS["synthetic"]), subgroup_weights="within"), cohort=expanded)
    library = sweep_of(again)
    assert ok[0] and np.array_equal(proc.eligible[0], library["eligible"].to_numpy())
    estimable = library["eligible"].to_numpy()
    assert_close(proc.difference[0][estimable], library["difference"][estimable], rtol=1e-6)
