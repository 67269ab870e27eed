"""The ordinal shift analysis: weighted proportional odds as MASS::polr (tests/reference/make_polr.R),
its sandwich against numerical derivatives of the per-patient log-likelihood (and, stacked with the
propensity model, of the stacked estimating functions), the direction of the common OR and the
proportional-odds test."""

import numpy as np
import pandas as pd
import pytest
from conftest import COHORTS, expected, sample, weights

from analysis_lib.mestimation import estimation_from_design
from analysis_lib.numerics import sigmoid
from analysis_lib.ordinal import (
    ORDINAL_COLUMNS,
    _coded,
    _parts,
    fit_polr,
    level_codes,
    loglik_terms,
    ordinal_shift,
    proportional_odds_p,
    subgroup_common_ors,
)
from analysis_lib.params import Parameters
from analysis_lib.study import load_study
from analysis_lib.weighting import estimand_weights

COHORTS_R = ["synthetic", "missing", "centers40"]


def design(cohort, model):
    s = sample(cohort)
    keep = s["mrs_90d"].notna().to_numpy()
    y = _coded(s["mrs_90d"].to_numpy(float)[keep])
    t = s["rescue_stenting"].to_numpy(float)[keep]
    h = (s["stenosis_pct"].to_numpy(float) > 75)[keep].astype(float)
    X = t[:, None] if model == "overall" else np.column_stack([t, h, t * h])
    return y, X, keep


@pytest.mark.parametrize("cohort", COHORTS_R)
@pytest.mark.parametrize("analysis", ["unadjusted", "iptw"])
@pytest.mark.parametrize("model", ["overall", "interaction"])
def test_the_fit_equals_polr(cohort, analysis, model):
    y, X, keep = design(cohort, model)
    w = np.ones(y.size) if analysis == "unadjusted" else weights(cohort)[keep]
    fit = fit_polr(y, X, w)
    ref = expected(cohort, "polr_ATO_75")
    ref = ref[(ref["analysis"] == analysis) & (ref["model"] == model)]
    assert fit.converged
    assert np.allclose(fit.theta, ref["estimate"].to_numpy(), atol=1e-6, rtol=0)
    assert float(w @ loglik_terms(fit.theta, y, X, fit.zeta.size)) == pytest.approx(ref["loglik"].iloc[0], abs=1e-8)


def numerical_scores(theta, y, X, n_cut, h=1e-6):
    out = np.zeros((y.size, theta.size))
    for k in range(theta.size):
        e = np.zeros(theta.size)
        e[k] = h
        out[:, k] = (loglik_terms(theta + e, y, X, n_cut) - loglik_terms(theta - e, y, X, n_cut)) / (2 * h)
    return out


@pytest.mark.parametrize("cohort", ["synthetic", "missing"])
def test_the_hc0_sandwich_equals_one_from_numerical_derivatives(cohort):
    y, X, keep = design(cohort, "interaction")
    w = weights(cohort)[keep]
    fit = fit_polr(y, X, w)
    n_cut = fit.zeta.size
    scores = numerical_scores(fit.theta, y, X, n_cut)

    def hessian(h):  # central differences of the summed numerical score
        out = np.zeros((fit.theta.size, fit.theta.size))
        for k in range(fit.theta.size):
            e = np.zeros(fit.theta.size)
            e[k] = h
            out[:, k] = (w @ numerical_scores(fit.theta + e, y, X, n_cut, 1e-4)
                         - w @ numerical_scores(fit.theta - e, y, X, n_cut, 1e-4)) / (2 * h)
        return out

    bread = np.linalg.inv((4 * hessian(1e-3) - hessian(2e-3)) / 3)  # Richardson: error O(h^4)
    V = bread @ ((scores * w[:, None]).T @ (scores * w[:, None])) @ bread.T
    assert np.allclose(fit.vcov(), V, rtol=1e-6, atol=1e-12)
    assert np.allclose(fit.scores, scores, rtol=1e-6, atol=1e-8)


def test_the_m_estimation_sandwich_equals_the_stacked_numerical_one():
    study = load_study(Parameters(data_path=str(COHORTS["synthetic"]), variance="m_estimation"))
    Z = np.column_stack([np.ones(study.sample.n), study.data[list(study.params.ps_covariates)].to_numpy(float)])
    t_all = study.data["rescue_stenting"].to_numpy(float)
    gamma0 = np.linalg.lstsq(Z, np.log(study.propensity.propensity / (1 - study.propensity.propensity)), rcond=None)[0]
    y, X, keep = design("synthetic", "interaction")
    w0 = estimand_weights(sigmoid(Z @ gamma0), t_all, "ATO")[keep]
    fit = fit_polr(y, X, w0)
    n_cut, k = fit.zeta.size, Z.shape[1]

    def psi(params):
        gamma, theta = params[:k], params[k:]
        p = sigmoid(Z @ gamma)
        w = estimand_weights(p, t_all, "ATO")[keep]
        out = np.zeros((t_all.size, params.size))
        out[:, :k] = (t_all - p)[:, None] * Z
        _, ga, gb, _, Ja, Jb = _parts(theta, y, X, n_cut)  # the scores, checked numerically above
        out[keep, k:] = w[:, None] * (ga[:, None] * Ja + gb[:, None] * Jb)
        return out

    params = np.concatenate([gamma0, fit.theta])

    def jacobian(h):
        A = np.zeros((params.size, params.size))
        for j in range(params.size):
            e = np.zeros(params.size)
            e[j] = h
            A[:, j] = (psi(params + e).sum(0) - psi(params - e).sum(0)) / (2 * h)
        return A

    A = (4 * jacobian(1e-4) - jacobian(2e-4)) / 3  # Richardson: error O(h^4), no nested differences
    B = psi(params).T @ psi(params)
    V = (np.linalg.inv(A) @ B @ np.linalg.inv(A).T)[k:, k:]
    ps = estimation_from_design(Z, sigmoid(Z @ gamma0), t_all, "ATO", normalize=False)
    assert np.allclose(fit.vcov(ps, keep), V, rtol=1e-7, atol=1e-12)


def test_the_common_odds_ratio_above_one_favours_stenting():
    rng = np.random.default_rng(3)
    n = 400
    t = rng.integers(0, 2, n)
    mrs = np.clip(np.round(rng.normal(3.2 - 1.0 * t, 1.5)), 0, 6)  # stenting lowers the mRS
    df = pd.DataFrame({"mrs_90d": mrs, "rescue_stenting": t, "stenosis_pct": rng.uniform(40, 99, n)})
    table = ordinal_shift(df, np.ones(n), 75.0)
    assert list(table.columns) == ORDINAL_COLUMNS
    overall = table[(table["analysis"] == "iptw") & (table["subgroup"] == "overall")].iloc[0]
    assert overall["common_or"] > 2 and overall["p_value"] < 1e-6 and overall["ci_lower"] > 1
    assert overall["p_proportional_odds"] > 0.01  # a normal shift is close to proportional odds


def test_the_proportional_odds_test_detects_an_effect_only_at_one_end_of_the_scale():
    rng = np.random.default_rng(5)
    n = 2000
    t = rng.integers(0, 2, n)
    base = rng.integers(0, 7, n)
    y = np.where((t == 1) & (base == 6) & (rng.random(n) < 0.8), 0, base)  # treatment only moves mRS 6 to 0
    assert proportional_odds_p(y, t, np.ones(n)) < 1e-6
    assert np.isnan(proportional_odds_p(np.zeros(n, int), t, np.ones(n)))  # one level: nothing to test


def test_a_subgroup_without_an_arm_gets_a_reason_not_a_number():
    df = pd.DataFrame({"mrs_90d": [0, 1, 2, 3, 4, 5, 2, 3], "rescue_stenting": [0, 1, 0, 1, 0, 0, 0, 0],
                       "stenosis_pct": [50, 50, 60, 60, 90, 90, 95, 95]})
    table = ordinal_shift(df, np.ones(8), 75.0)
    high = table[table["subgroup"] == "high"]
    assert high["common_or"].isna().all()
    assert high["note"].str.contains("no MT+RS patients with a known 90-day mRS in the high subgroup",
                                     regex=False).all()


def test_the_sweep_carries_the_common_odds_ratios_of_the_same_subgroups():
    study = load_study(Parameters(data_path=str(COHORTS["synthetic"])))
    sweep = study.sweep().table
    at75 = sweep[sweep["cutoff"] == 75].iloc[0]
    shift = ordinal_shift(study.data, study.weights, 75.0).set_index(["analysis", "subgroup"])
    assert at75["common_or_low"] == pytest.approx(shift.loc[("iptw", "low"), "common_or"], rel=1e-12)
    assert at75["common_or_high_ci_upper"] == pytest.approx(shift.loc[("iptw", "high"), "ci_upper"], rel=1e-12)
    assert at75["common_or_p_interaction"] == pytest.approx(shift.loc[("iptw", "low"), "p_interaction"], rel=1e-12)
    assert sweep.loc[sweep["cutoff"] == 40, "common_or_low"].isna().all()  # no MT+RS patient at or below 40 %
    assert "Common OR low (95% CI)" in study.sweep().shown.columns


@pytest.mark.parametrize("cohort", ["synthetic", "missing"])
def test_the_fit_on_cells_equals_the_fit_on_patients(cohort):
    """Every patient of an (mRS level, arm, subgroup) cell has the same score: the sums of w and
    w^2 per cell give the same estimates and the same HC0 sandwich."""
    s = sample(cohort)
    w = weights(cohort)
    keep = s["mrs_90d"].notna().to_numpy()
    high = s["stenosis_pct"].to_numpy(float) > 70
    odds = subgroup_common_ors(s["mrs_90d"].to_numpy(float)[keep], s["rescue_stenting"].to_numpy()[keep], high[keep],
                               w[keep], 0.9)
    shift = ordinal_shift(s, w, 70.0, 0.9).query("analysis == 'iptw'").set_index("subgroup")
    for got, col in ((odds.common_or, "common_or"), (odds.ci_lower, "ci_lower"), (odds.ci_upper, "ci_upper"),
                     (odds.p_value, "p_value")):
        assert np.allclose(got, shift.loc[["low", "high"], col].to_numpy(float), rtol=1e-9, atol=0)
    y = s["mrs_90d"].to_numpy(float)[keep]  # the levels coded once for many fits (the specification curve)
    assert level_codes(y).max() < 7 and subgroup_common_ors(level_codes(y), s["rescue_stenting"].to_numpy()[keep],
                                                             high[keep], w[keep], 0.9, coded=True) == odds
    empty = subgroup_common_ors(np.array([0.0, 1, 2, 3]), np.array([1, 0, 1, 0]), np.zeros(4, bool), np.ones(4))
    assert np.isnan(empty.common_or).all()  # no patient above the cutoff: no number


def test_arms_that_do_not_overlap_give_a_reason_not_a_traceback():
    """One MT+RS patient at or below the cutoff, dead at 90 days: no MT-only patient of that
    subgroup has a worse mRS, so the common odds ratio there is infinite (no finite maximum)."""
    s = sample("synthetic").copy()
    low_rs = (s["rescue_stenting"] == 1) & (s["stenosis_pct"] <= 75)
    first = s.index[low_rs][0]
    s = s[~low_rs | (s.index == first)].reset_index(drop=True)
    s.loc[(s["rescue_stenting"] == 1) & (s["stenosis_pct"] <= 75), "mrs_90d"] = 6
    table = ordinal_shift(s, np.ones(len(s)), 75.0).query("analysis == 'iptw' and subgroup != 'overall'")
    assert table["common_or"].isna().all()
    assert (table["note"] == "not estimable (infinite common odds ratio): in the low subgroup every MT+RS patient "
                             "has a 90-day mRS at least as high as every MT-only patient").all()
    y, t, high = s["mrs_90d"].to_numpy(float), s["rescue_stenting"].to_numpy(), s["stenosis_pct"].to_numpy() > 75
    assert np.isnan(subgroup_common_ors(y, t, high, np.ones(len(s))).common_or).all()
