"""M-estimation variance (the propensity score as estimated): WeightIt's published lalonde values,
R references built from numerically differentiated stacked equations, analytic against numerical
derivatives, and the same point estimates as the HC path."""

import numpy as np
import pandas as pd
import pytest
from conftest import REFERENCE, assert_close, sample

from analysis_lib.balance import effective_sample_size
from analysis_lib.cutoffs import continuous_interaction, cutoff_sweep
from analysis_lib.effects import estimate_effect, table2
from analysis_lib.mestimation import (
    estimating_functions,
    jacobian,
    model_vcov,
    propensity_estimation,
    raw_weights,
    weight_derivative,
)
from analysis_lib.params import DEFAULT_PS_COVARIATES
from analysis_lib.weighting import compute_weights, design_matrix, fit_propensity

EXPECTED = REFERENCE / "expected" / "mestimation"
LALONDE_FORMULA = "age + educ + nodegree + married + C(race) + re74 + re75"
ESTIMANDS = ("ATO", "ATE", "ATT", "ATM")


@pytest.fixture(scope="module")
def lalonde():
    df = pd.read_csv(REFERENCE / "lalonde" / "lalonde.csv")
    model = fit_propensity(df, treatment="treat", formula=LALONDE_FORMULA)
    return df, model


def test_lalonde_att_matches_weightit(lalonde):
    """WeightIt's example: lm_weightit(re78 ~ treat) after weightit(..., estimand = "ATT")."""
    df, model = lalonde
    t = df["treat"].to_numpy()
    w = compute_weights(model.propensity, t, "ATT")
    ps = propensity_estimation(df, model, "ATT", treatment="treat")
    robust = estimate_effect(df, "re78", w, treatment="treat", measure="ATE").iloc[0]
    mest = estimate_effect(df, "re78", w, treatment="treat", measure="ATE", ps=ps).iloc[0]
    assert round(mest["estimate"], 1) == 1214.1 and mest["estimate"] == robust["estimate"]
    assert round(mest["std_error"], 1) == 798.2
    assert round(robust["std_error"], 1) == 824.1
    assert round(effective_sample_size(w[t == 0]), 2) == 99.82
    ref = pd.read_csv(EXPECTED / "lalonde_att.csv").set_index("quantity")["value"]
    assert_close(mest["estimate"], ref["att_re78"], what="ATT")
    assert_close(mest["std_error"], ref["se_m_estimation"], what="M-estimation SE")
    assert_close(robust["std_error"], ref["se_hc0"], what="HC0 SE")
    assert_close(effective_sample_size(w[t == 0]), ref["ess_control"], what="ESS")
    # normal quantiles, as WeightIt
    assert_close(mest["ci_upper"] - mest["estimate"], 1.959963984540054 * mest["std_error"], what="normal CI")


@pytest.mark.parametrize("estimand", ESTIMANDS)
def test_subgroup_effects_match_the_r_stacked_sandwich(estimand):
    s = sample("synthetic")
    model = fit_propensity(s, DEFAULT_PS_COVARIATES)
    w = compute_weights(model.propensity, s["rescue_stenting"].to_numpy(), estimand)
    ps = propensity_estimation(s, model, estimand)
    ref = pd.read_csv(EXPECTED / "synthetic_effects.csv").query("estimand == @estimand")
    high = s["stenosis_pct"].to_numpy() > 75
    for outcome, r in ref.groupby("outcome", sort=False):
        r = r.set_index("quantity")
        overall = estimate_effect(s, outcome, w, ps=ps).iloc[0]
        by = estimate_effect(s, outcome, w, high=high, cutoff=75, ps=ps).set_index("subgroup")
        got = pd.DataFrame({"estimate": [overall["coef"], by.loc["low", "coef"], by.loc["high", "coef"]],
                            "se": [overall["std_error"], by.loc["low", "std_error"], by.loc["high", "std_error"]]},
                           index=["overall", "low", "high"])
        assert_close(got["estimate"], r.loc[got.index, "estimate"], what=f"{estimand} {outcome} estimate")
        assert_close(got["se"], r.loc[got.index, "se_m_estimation"], what=f"{estimand} {outcome} SE")
        # the interaction p-value: Wald with the M-estimation SE of b_t:high, normal
        z = r.loc["interaction", "estimate"] / r.loc["interaction", "se_m_estimation"]
        from scipy.stats import norm
        assert_close(by.loc["low", "p_interaction"], 2 * norm.sf(abs(z)), what=f"{estimand} {outcome} p-int")
        # and the weights-as-known path of the same model is R's vcovHC(type = "HC0")
        robust = estimate_effect(s, outcome, w, high=high, cutoff=75).set_index("subgroup")
        assert_close(robust.loc[["low", "high"], "std_error"], r.loc[["low", "high"], "se_hc0"],
                     what=f"{estimand} {outcome} HC0")


def test_m_estimation_and_hc0_paths_give_the_same_point_estimates():
    s = sample("synthetic")
    model = fit_propensity(s, DEFAULT_PS_COVARIATES)
    w = compute_weights(model.propensity, s["rescue_stenting"].to_numpy(), "ATO")
    ps = propensity_estimation(s, model, "ATO")
    a, b = table2(s, w, 75), table2(s, w, 75, ps=ps)
    np.testing.assert_array_equal(a["estimate"].to_numpy(), b["estimate"].to_numpy())
    unadjusted = a["analysis"] == "unadjusted"
    pd.testing.assert_frame_equal(a[unadjusted], b[unadjusted])  # no weights: nothing to account for
    weighted = ~unadjusted & a["ci_lower"].notna()
    assert (b.loc[weighted, "ci_lower"] != a.loc[weighted, "ci_lower"]).all()
    sweep_a = cutoff_sweep(s, w, list(range(40, 95, 5)))
    sweep_b = cutoff_sweep(s, w, list(range(40, 95, 5)), ps=ps)
    pd.testing.assert_series_equal(sweep_a["difference"], sweep_b["difference"])
    assert (sweep_a["selected"] == sweep_b["selected"]).all()


def test_continuous_interaction_matches_r():
    s = sample("synthetic")
    model = fit_propensity(s, DEFAULT_PS_COVARIATES)
    w = compute_weights(model.propensity, s["rescue_stenting"].to_numpy(), "ATO")
    ps = propensity_estimation(s, model, "ATO")
    ref = pd.read_csv(EXPECTED / "synthetic_continuous.csv")
    fit = continuous_interaction(s, w, ps=ps).fit
    assert_close(fit.coef, ref["estimate"], what="coefficients")
    assert_close(np.sqrt(np.diag(fit.vcov)), ref["se_m_estimation"], what="M-estimation SEs")
    assert_close(fit.vcov[1, 3], ref["cov_t_interaction"].iloc[0], what="covariance b_t, b_t:s")


@pytest.mark.parametrize("estimand", ESTIMANDS)
@pytest.mark.parametrize("family, outcome", [("gaussian", "mrs_90d"), ("poisson", "mrs_0_2")])
def test_analytic_jacobian_equals_numerical_differentiation(estimand, family, outcome):
    s = sample("missing")  # with missing outcomes: those rows have no outcome score
    model = fit_propensity(s, DEFAULT_PS_COVARIATES)
    Z = design_matrix(s, DEFAULT_PS_COVARIATES).to_numpy()
    t = s["rescue_stenting"].to_numpy(float)
    high = (s["stenosis_pct"].to_numpy() > 75).astype(float)
    X = np.column_stack([np.ones_like(t), t, high, t * high])
    y = s[outcome].to_numpy(float)
    gamma = model.coefficients.to_numpy()
    # any point (not only the solution): the derivatives are identities in theta
    beta = np.log([0.4, 1.1, 0.9, 1.2]) if family == "poisson" else np.array([3.0, 0.5, -0.4, -1.0])
    theta = np.concatenate([gamma, beta])
    k = gamma.size

    def total(th):
        return estimating_functions(th[:k], th[k:], Z, t, X, y, estimand, family).sum(axis=0)

    numerical = np.empty((theta.size, theta.size))
    for j in range(theta.size):  # central differences, step relative to the parameter
        h = 1e-6 * max(1.0, abs(theta[j])) / max(1.0, np.abs(Z[:, j]).mean() if j < k else 1.0)
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        numerical[:, j] = (total(up) - total(down)) / (2 * h)
    analytic = jacobian(gamma, beta, Z, t, X, y, estimand, family)
    scale = np.abs(analytic).max(axis=1, keepdims=True)
    assert np.all(np.abs(analytic - numerical) <= 1e-6 * scale), np.abs(analytic - numerical).max()


@pytest.mark.parametrize("estimand", ESTIMANDS)
def test_closed_form_equals_the_full_stacked_sandwich(estimand):
    s = sample("missing")
    model = fit_propensity(s, DEFAULT_PS_COVARIATES)
    Z = design_matrix(s, DEFAULT_PS_COVARIATES).to_numpy()
    t = s["rescue_stenting"].to_numpy(float)
    y = s["mrs_90d"].to_numpy(float)
    keep = ~np.isnan(y)
    X = np.column_stack([np.ones_like(t), t, s["stenosis_pct"].to_numpy(), t * s["stenosis_pct"].to_numpy()])
    w_raw = raw_weights(model.propensity, t, estimand)
    sw = np.sqrt(w_raw[keep])
    beta = np.linalg.lstsq(X[keep] * sw[:, None], y[keep] * sw, rcond=None)[0]
    gamma = model.coefficients.to_numpy()
    A = jacobian(gamma, beta, Z, t, X, y, estimand)
    psi = estimating_functions(gamma, beta, Z, t, X, y, estimand)
    A_inv = np.linalg.inv(A)
    full = (A_inv @ psi.T @ psi @ A_inv.T)[Z.shape[1]:, Z.shape[1]:]
    ps = propensity_estimation(s, model, estimand, normalize=False)
    closed = model_vcov(X[keep], y[keep], w_raw[keep], X[keep] @ beta, "gaussian", ps, keep)
    assert_close(closed, full, rtol=1e-9, what="V_beta")
    # normalising the weights to mean 1 changes nothing
    normalised = propensity_estimation(s, model, estimand)
    again = model_vcov(X[keep], y[keep], w_raw[keep] / w_raw.mean(), X[keep] @ beta, "gaussian", normalised, keep)
    assert_close(again, full, rtol=1e-9, what="V_beta, normalised weights")


def test_weight_derivative_of_matching_weights_is_zero_where_the_weight_is_one():
    p = np.array([0.3, 0.7, 0.3, 0.7])
    t = np.array([1.0, 1.0, 0.0, 0.0])
    d = weight_derivative(p, t, np.ones((4, 1)), "ATM")[:, 0]
    np.testing.assert_allclose(d, [0.0, -0.3 / 0.7, 0.3 / 0.7, 0.0])
    assert (raw_weights(p, t, "ATM")[[0, 3]] == 1).all()


def test_cbps_is_refused_with_a_clear_message():
    s = sample("synthetic")
    model = fit_propensity(s, DEFAULT_PS_COVARIATES, method="cbps")
    with pytest.raises(ValueError, match="M-estimation variance needs the logistic propensity model"):
        propensity_estimation(s, model, "ATO")


def test_variance_parameter_switches_the_tables_of_the_build(tmp_path):
    from conftest import COHORTS

    from analysis_lib.build import run_build

    overrides = [("variance", "m_estimation"), ("bootstrap_replicates", "0")]
    out = run_build(COHORTS["synthetic"], tmp_path / "out", overrides, notebooks=("03_cutoffs", "04_outcomes"),
                    log=lambda m: None).out
    s = sample("synthetic")
    model = fit_propensity(s, DEFAULT_PS_COVARIATES)
    w = compute_weights(model.propensity, s["rescue_stenting"].to_numpy(), "ATO")
    ps = propensity_estimation(s, model, "ATO")
    built = pd.read_csv(out / "tables" / "table2.csv")
    direct = table2(s, w, 75, ps=ps)
    for column in ("estimate", "ci_lower", "ci_upper", "p_value", "p_interaction"):
        assert_close(built[column], direct[column], rtol=1e-12, what=f"table2 {column}")
    sweep = pd.read_csv(out / "tables" / "cutoff_sweep.csv")
    assert_close(sweep["ate_high_ci_lower"], cutoff_sweep(s, w, list(range(40, 95, 5)), ps=ps)["ate_high_ci_lower"],
                 rtol=1e-12, what="sweep")
    continuous = pd.read_csv(out / "tables" / "continuous_interaction.csv")
    assert_close(continuous["crossing_ci_lower"], continuous_interaction(s, w, ps=ps).summary["crossing_ci_lower"],
                 rtol=1e-12, what="crossing point")


def test_variance_parameter_values():
    from analysis_lib.params import ParameterError, Parameters

    assert Parameters(variance="M_Estimation").variance == "m_estimation"
    with pytest.raises(ParameterError, match="parameter 'variance': 'sandwich' is not one of robust, m_estimation"):
        Parameters(variance="sandwich")
    with pytest.raises(ParameterError, match="m_estimation needs ps_method logistic"):
        Parameters(variance="m_estimation", ps_method="cbps")
    with pytest.raises(ParameterError, match="parameter 'smd_binary': 'proportion' is not one of std, raw"):
        Parameters(smd_binary="proportion")


def test_the_whole_analysis_on_any_data_frame():
    from analysis_lib.effects import weighted_effect

    df = pd.read_csv(REFERENCE / "lalonde" / "lalonde.csv")
    m = weighted_effect(df, "treat", "re78", formula=LALONDE_FORMULA, estimand="ATT", variance="m_estimation").iloc[0]
    r = weighted_effect(df, "treat", "re78", formula=LALONDE_FORMULA, estimand="ATT").iloc[0]
    assert (round(m["estimate"], 1), round(m["std_error"], 1), round(r["std_error"], 1)) == (1214.1, 798.2, 824.1)
    linear = weighted_effect(df.assign(black=(df["race"] == "black").astype(int)), "treat", "re78",
                             covariates=["age", "educ", "black", "re74"], estimand="ATO", variance="m_estimation")
    assert linear.iloc[0]["n"] == 614 and np.isfinite(linear.iloc[0]["std_error"])


def test_weight_sensitivity_rows_switch_to_m_estimation():
    from analysis_lib.specification import weight_sensitivity

    s = sample("synthetic")
    model = fit_propensity(s, DEFAULT_PS_COVARIATES)
    table = weight_sensitivity(s, model, 75, variance="m_estimation")
    robust = weight_sensitivity(s, model, 75)
    ref = pd.read_csv(EXPECTED / "synthetic_effects.csv")
    for estimand in ESTIMANDS:
        rows = table.query("estimand == @estimand and outcome == 'mrs_90d'").set_index("subgroup")
        r = ref.query("estimand == @estimand and outcome == 'mrs_90d'").set_index("quantity")
        se = (rows["ci_upper"] - rows["estimate"]) / 1.959963984540054  # normal intervals
        assert_close(se.loc[["overall", "low", "high"]], r.loc[["overall", "low", "high"], "se_m_estimation"],
                     rtol=1e-9, what=f"{estimand} M-estimation SE")
    for variant in ("ATE_truncated", "ATE_trimmed"):
        mine = table.query("estimand == @variant")
        pd.testing.assert_series_equal(mine["ci_lower"], robust.query("estimand == @variant")["ci_lower"])
        assert mine["note"].str.contains("weights as known").all()
