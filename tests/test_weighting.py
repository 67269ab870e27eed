"""Propensity model and weights against R's glm, closed forms and error handling."""

import numpy as np
import pytest
from conftest import assert_close, expected, sample, weights

from analysis_lib.params import DEFAULT_PS_COVARIATES
from analysis_lib.weighting import (
    PropensityError,
    aliased_columns,
    compute_weights,
    fit_propensity,
    weight_summary,
    weights_table,
)


def test_propensity_and_coefficients_match_glm(cohort):
    s = sample(cohort)
    model = fit_propensity(s, DEFAULT_PS_COVARIATES)
    ref = expected(cohort, "weights")
    assert list(ref["patient_id"]) == list(s["patient_id"])
    assert_close(model.propensity, ref["propensity"], what="propensity")
    coef = expected(cohort, "propensity_coefficients")
    assert_close(model.coefficients.to_numpy(), coef["estimate"], rtol=1e-6, atol=1e-8, what="coefficients")


@pytest.mark.parametrize("estimand", ["ATO", "ATE", "ATT", "ATM"])
def test_normalised_weights_match_r(cohort, estimand):
    w = weights(cohort, estimand)
    assert_close(w, expected(cohort, "weights")[f"w_{estimand}"], what=f"{estimand} weights")
    assert w.mean() == pytest.approx(1.0, abs=1e-12)


def test_weight_formulas_closed_form():
    e = np.array([0.1, 0.4, 0.7, 0.2, 0.9])
    t = np.array([1, 1, 1, 0, 0])
    raw = {
        "ATO": [0.9, 0.6, 0.3, 0.2, 0.9],
        "ATE": [10.0, 2.5, 1 / 0.7, 1.25, 10.0],
        "ATT": [1.0, 1.0, 1.0, 0.25, 9.0],
        "ATM": [1.0, 1.0, 0.3 / 0.7, 0.25, 1.0],
    }
    for estimand, values in raw.items():
        assert_close(compute_weights(e, t, estimand, normalize=False), values, rtol=1e-14, what=estimand)
        normalised = compute_weights(e, t, estimand)
        assert_close(normalised, np.array(values) / np.mean(values), rtol=1e-14, what=estimand)


def test_a_warm_start_gives_the_fit_of_the_usual_start_and_never_a_failure_of_its_own(cohort):
    s = sample(cohort)
    cold = fit_propensity(s, DEFAULT_PS_COVARIATES)
    ref = expected(cohort, "propensity_coefficients")["estimate"]
    near = fit_propensity(s, DEFAULT_PS_COVARIATES, start=cold.coefficients * 1.001)
    assert near.iterations < cold.iterations
    far = cold.coefficients * 0 + 40.0  # Newton's method diverges from here: the usual start is used
    from_far = fit_propensity(s, DEFAULT_PS_COVARIATES, start=far)
    assert from_far.iterations == cold.iterations  # the fit of the usual start
    for model in (near, from_far):
        assert_close(model.coefficients.to_numpy(), ref, rtol=1e-6, atol=1e-8, what="coefficients")
        assert_close(model.propensity, cold.propensity, rtol=1e-10, atol=1e-12, what="propensity")
    # a start that does not name every term is ignored
    partial = fit_propensity(s, DEFAULT_PS_COVARIATES, start=cold.coefficients.iloc[:3])
    assert partial.iterations == cold.iterations


def test_separation_is_a_clear_error():
    s = sample("synthetic").copy()
    s["perfect"] = s["rescue_stenting"]  # a covariate equal to the treatment
    with pytest.raises(PropensityError) as err:
        fit_propensity(s, [*DEFAULT_PS_COVARIATES, "perfect"])
    message = str(err.value)
    assert "separation" in message and "'perfect'" in message and "\n" not in message


def test_single_arm_is_a_clear_error():
    s = sample("synthetic")
    with pytest.raises(PropensityError, match="both arms"):
        fit_propensity(s[s["rescue_stenting"] == 1], DEFAULT_PS_COVARIATES)


def test_aliased_covariate_is_dropped_like_r():
    s = sample("synthetic").copy()
    s["age_copy"] = 2 * s["age"] + 1  # collinear with the intercept and age
    base = fit_propensity(s, DEFAULT_PS_COVARIATES)
    model = fit_propensity(s, [*DEFAULT_PS_COVARIATES, "age_copy"])
    assert model.aliased == ("age_copy",)
    assert np.isnan(model.coefficients["age_copy"])
    assert_close(model.propensity, base.propensity, rtol=1e-9, what="propensity")


def test_aliased_columns_follow_column_order():
    x = np.arange(6.0)
    X = np.column_stack([np.ones(6), x, 3 * x, x ** 2, np.zeros(6)])
    assert aliased_columns(X).tolist() == [False, False, True, False, True]


def test_propensity_of_zero_or_one_rejected():
    with pytest.raises(PropensityError, match="exactly 0 or 1"):
        compute_weights(np.array([0.0, 0.5]), np.array([1, 0]))


def test_weights_table_and_summary():
    s = sample("synthetic")
    model = fit_propensity(s, DEFAULT_PS_COVARIATES)
    w = weights("synthetic")
    table = weights_table(s, model, w)
    assert list(table.columns) == ["patient_id", "propensity", "weight"]
    assert len(table) == len(s)
    summary = weight_summary(w, s["rescue_stenting"])
    assert summary["n"].sum() == len(s)
    assert summary["sum"].sum() == pytest.approx(len(s))


def test_newton_fits_equal_statsmodels():
    """The NumPy Newton fits are pinned to statsmodels' GLM (logistic; Poisson with variance weights)."""
    import statsmodels.api as sm

    from analysis_lib.effects import newton_glm

    s = sample("missing")
    X = sm.add_constant(s[list(DEFAULT_PS_COVARIATES)].to_numpy(float))
    t = s["rescue_stenting"].to_numpy(float)
    beta, mu, _, converged = newton_glm(X, t, family="binomial")
    ref = sm.GLM(t, X, family=sm.families.Binomial()).fit(tol=1e-14, maxiter=200)
    assert converged
    assert_close(beta, ref.params, rtol=1e-9, atol=1e-12, what="logistic coefficients")
    w = weights("missing")
    y = s["mrs_0_3"].to_numpy(float)
    known = ~np.isnan(y)
    beta, mu, _, converged = newton_glm(X[known], y[known], w[known], family="poisson")
    ref = sm.GLM(y[known], X[known], family=sm.families.Poisson(), var_weights=w[known]).fit(tol=1e-14, maxiter=200)
    assert converged
    assert_close(beta, ref.params, rtol=1e-8, atol=1e-11, what="Poisson coefficients")
