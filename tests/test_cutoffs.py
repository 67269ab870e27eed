"""Cutoff sweep and continuous interaction against R (lm + vcovHC + coeftest/coefci)."""

import numpy as np
import pandas as pd
import pytest
from conftest import assert_close, expected, sample, weights

from analysis_lib.cutoffs import (
    CONTINUOUS_COLUMNS,
    SWEEP_COLUMNS,
    CutoffError,
    continuous_interaction,
    cutoff_sweep,
    fieller_interval,
    resolve_cutoff,
    selected_cutoff,
)
from analysis_lib.params import Parameters

CUTOFFS = Parameters().cutoffs()


@pytest.mark.parametrize("hc", ["HC0", "HC1", "HC2", "HC3"])
def test_sweep_matches_r(cohort, hc):
    ours = cutoff_sweep(sample(cohort), weights(cohort), CUTOFFS, 10, hc_type=hc)
    ref = expected(cohort, f"sweep_ATO_{hc}")
    assert list(ours.columns) == SWEEP_COLUMNS
    for col in SWEEP_COLUMNS[1:-2]:
        assert_close(ours[col], ref[col], what=f"{cohort} {hc} {col}")
    assert ours["eligible"].tolist() == ref["eligible"].tolist()
    assert ours["selected"].tolist() == ref["selected"].tolist()


@pytest.mark.parametrize("estimand,hc", [("ATO", "HC0"), ("ATO", "HC1"), ("ATO", "HC2"), ("ATO", "HC3"),
                                         ("ATE", "HC0"), ("ATT", "HC0"), ("ATM", "HC0")])
def test_continuous_interaction_matches_r(cohort, estimand, hc):
    result = continuous_interaction(sample(cohort), weights(cohort, estimand), hc)
    ref = expected(cohort, f"continuous_{estimand}_{hc}")
    assert list(result.summary.columns) == CONTINUOUS_COLUMNS
    for col in CONTINUOUS_COLUMNS:
        assert_close(result.summary[col], ref[col], what=col)
    fieller = result.crossing.set_index("method").loc["fieller"]
    assert bool(fieller["bounded"]) == bool(ref["fieller_bounded"].iloc[0])
    assert_close([fieller["ci_lower"], fieller["ci_upper"]],
                 [ref["fieller_ci_lower"].iloc[0], ref["fieller_ci_upper"].iloc[0]], what="Fieller")
    assert_close(result.fit.coef, ref[["b_intercept", "b_treat", "b_stenosis", "interaction_beta"]].iloc[0],
                 what="coefficients")


def test_band_crosses_zero_at_the_crossing_point():
    result = continuous_interaction(sample("synthetic"), weights("synthetic"))
    s_star = result.summary["crossing_point"].iloc[0]
    b = result.fit.coef
    assert b[1] + b[3] * s_star == pytest.approx(0, abs=1e-12)
    # the Fieller limits are where the band's edges cross zero (ATE(s) decreases here)
    lo, hi = result.crossing.set_index("method").loc["fieller", ["ci_lower", "ci_upper"]]
    V = result.fit.vcov
    se = lambda x: np.sqrt(V[1, 1] + 2 * x * V[1, 3] + x * x * V[3, 3])
    q = (result.summary["crossing_point"].iloc[0] - result.summary["crossing_ci_lower"].iloc[0]) / \
        result.crossing.set_index("method").loc["delta", "std_error"]
    assert b[1] + b[3] * lo - q * se(lo) == pytest.approx(0, abs=1e-9)
    assert b[1] + b[3] * hi + q * se(hi) == pytest.approx(0, abs=1e-9)


def test_fieller_closed_forms():
    # a precise ratio: bounded and close to the delta interval
    lo, hi, bounded, note = fieller_interval(-7.0, 0.1, 0.04, 0.0, 1e-6, 1.96)
    assert bounded and lo < 70 < hi and note == ""
    # an interaction not significantly different from 0: unbounded, said so
    lo, hi, bounded, note = fieller_interval(-1.0, 0.01, 0.04, 0.0, 1e-3, 1.96)
    assert not bounded and np.isinf(lo) and np.isinf(hi) and note.startswith("unbounded")


def test_selection_rules():
    sweep = cutoff_sweep(sample("synthetic"), weights("synthetic"), CUTOFFS, 10)
    eligible = sweep[sweep["eligible"]]
    assert sweep["selected"].sum() == 1
    assert selected_cutoff(sweep) == eligible.loc[eligible["difference"].abs().idxmax(), "cutoff"]
    assert resolve_cutoff(75.0, sweep) == 75.0
    assert resolve_cutoff(None, sweep) == selected_cutoff(sweep)
    counts = pd.crosstab(sample("synthetic")["stenosis_pct"] > 45, sample("synthetic")["rescue_stenting"])
    assert not sweep.set_index("cutoff").loc[45.0, "eligible"] and counts.values.min() < 10


def test_no_eligible_cutoff_is_a_clear_error():
    sweep = cutoff_sweep(sample("small"), weights("small"), CUTOFFS, min_arm_size=200)
    assert not sweep["eligible"].any()
    with pytest.raises(CutoffError, match="no eligible cutoff between 40 and 90"):
        resolve_cutoff(None, sweep, 200)
