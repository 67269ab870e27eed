"""Balance statistics against R (spec formula written in R), closed forms and the exact-balance
property of overlap weights."""

import numpy as np
import pytest
from conftest import assert_close, expected, sample, weights

from analysis_lib.balance import (
    BALANCE_COLUMNS,
    balance_table,
    effective_sample_size,
    is_binary,
    sample_sizes,
    smd,
    variance_ratio,
    weighted_variance,
)
from analysis_lib.params import DEFAULT_PS_COVARIATES


@pytest.mark.parametrize("estimand", ["ATO", "ATE"])
def test_balance_matches_r(cohort, estimand):
    table = balance_table(sample(cohort), DEFAULT_PS_COVARIATES, weights(cohort, estimand))
    ref = expected(cohort, f"balance_{estimand}")
    assert list(table["covariate"]) == list(ref["covariate"])
    for col in BALANCE_COLUMNS[1:]:
        # weighted SMDs under ATO are zero up to rounding: compare absolutely there
        assert_close(table[col], ref[col], rtol=1e-6, atol=1e-9, what=col)


def test_overlap_weights_balance_model_covariates_exactly(cohort):
    """Li, Morgan & Zaslavsky (2018): with a logistic propensity model, overlap weights give
    identical weighted means of every model covariate in both arms."""
    table = balance_table(sample(cohort), DEFAULT_PS_COVARIATES, weights(cohort, "ATO"))
    assert np.abs(table["smd_weighted"]).max() < 1e-8
    assert_close(table["mean_mt_rs_weighted"], table["mean_mt_only_weighted"], rtol=1e-9, atol=1e-9)


def test_smd_closed_forms():
    t = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    xb = np.array([1, 1, 1, 0, 1, 0, 0, 0.0])  # p1 = .75, p0 = .25
    assert smd(xb, t) == pytest.approx(0.5 / np.sqrt((0.75 * 0.25 + 0.25 * 0.75) / 2), rel=1e-14)
    xc = np.array([1, 2, 3, 4, 2, 3, 4, 5.0])  # means 2.5 and 3.5, variances 5/3 each
    assert smd(xc, t) == pytest.approx(-1 / np.sqrt(5 / 3), rel=1e-14)
    w = np.array([1, 1, 1, 3, 1, 1, 1, 1.0])  # weighted treated mean 2*... = (1+2+3+12)/6 = 3
    # the denominator stays the unweighted pooled SD
    assert smd(xc, t, w) == pytest.approx((3 - 3.5) / np.sqrt(5 / 3), rel=1e-14)
    assert smd(np.ones(8), t) == 0.0


def test_variance_ratio_and_weighted_variance():
    t = np.array([1, 1, 1, 0, 0, 0])
    x = np.array([1.0, 2.0, 6.0, 1.0, 2.0, 3.0])
    assert variance_ratio(x, t) == pytest.approx(np.var([1, 2, 6], ddof=1) / np.var([1, 2, 3], ddof=1))
    assert np.isnan(variance_ratio(np.array([0, 1, 1, 0, 0, 1.0]), t))
    # unit weights reproduce the n - 1 variance; integer weights the replicated-sample variance
    assert weighted_variance(x, np.ones(6), False) == pytest.approx(np.var(x, ddof=1))
    v = weighted_variance(np.array([1.0, 2.0]), np.array([1.0, 3.0]), False)
    # cobalt: sum v (x-m)^2 / (1 - sum v^2) with v = (.25, .75), m = 1.75
    assert v == pytest.approx((0.25 * 0.75 ** 2 + 0.75 * 0.25 ** 2) / (1 - 0.25 ** 2 - 0.75 ** 2))


def test_binary_detection():
    assert is_binary(np.array([0, 1, 1, np.nan]))
    assert not is_binary(np.array([0, 1, 2.0]))
    assert not is_binary(np.array([1, 1, 1.0]))


def test_effective_sample_size():
    assert effective_sample_size(np.ones(10)) == pytest.approx(10)
    assert effective_sample_size(np.array([1.0, 3.0])) == pytest.approx(16 / 10)
    s = sample("synthetic")
    sizes = sample_sizes(s, weights("synthetic"))
    assert list(sizes["arm"]) == ["MT only", "MT+RS"]
    assert sizes["n"].tolist() == [131, 172]
    assert (sizes["ess_weighted"] < sizes["n"]).all()


def test_cobalt_conventions_per_estimand_on_lalonde():
    """WeightIt's lalonde example read with cobalt's defaults for the ATT: the treated group's SD
    as denominator (s.d.denom = "treated"), binary covariates as raw differences."""
    import pandas as pd
    from conftest import REFERENCE, assert_close

    from analysis_lib.balance import balance_table, sample_sizes
    from analysis_lib.weighting import compute_weights, fit_propensity

    df = pd.read_csv(REFERENCE / "lalonde" / "lalonde.csv")
    for level in ("black", "hispan", "white"):
        df[f"race_{level}"] = (df["race"] == level).astype(float)
    model = fit_propensity(df, treatment="treat", formula="age + educ + nodegree + married + C(race) + re74 + re75")
    w = compute_weights(model.propensity, df["treat"].to_numpy(), "ATT")
    covariates = ["age", "educ", "nodegree", "married", "race_black", "race_hispan", "race_white", "re74", "re75"]
    att = balance_table(df, covariates, w, treatment="treat", estimand="ATT", binary="raw").set_index("covariate")
    published = {"age": 0.1188, "educ": -0.0284, "nodegree": 0.0184, "married": 0.0186, "race_black": -0.0022,
                 "re74": -0.0021, "re75": 0.0110}
    for name, value in published.items():
        assert round(att.loc[name, "smd_weighted"], 4) == value, name
    ref = pd.read_csv(REFERENCE / "expected" / "mestimation" / "lalonde_balance.csv").set_index("covariate")
    denominator = np.where(ref["binary"], 1.0, ref["sd_treated"])
    assert_close(att.loc[ref.index, "smd_weighted"], ref["diff_weighted"] / denominator, what="ATT weighted")
    assert_close(att.loc[ref.index, "smd_unweighted"], ref["diff_unweighted"] / denominator, what="ATT unweighted")
    # the paper's convention (ATO, ATE, ATM): pooled SD, binary covariates standardised too
    pooled = balance_table(df, covariates, w, treatment="treat", estimand="ATE").set_index("covariate")
    assert_close(pooled.loc[ref.index, "smd_weighted"], ref["diff_weighted"] / ref["sd_pooled"], what="pooled")
    sizes = sample_sizes(df, w, treatment="treat").set_index("arm")
    assert round(sizes.loc["MT only", "ess_weighted"], 2) == 99.82
    assert sizes.loc["MT only", "ess_unweighted"] == 429 and sizes.loc["MT+RS", "ess_weighted"] == pytest.approx(185)
