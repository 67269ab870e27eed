"""Augmented (doubly robust) weighting against PSweight's published example: the NCDS data of the
PSweight package (tests/reference/ncds/README.md), vignette section 4.2, to the printed 6 decimals;
and the public API."""

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

import analysis_lib
from analysis_lib.augmented import augmented_effect

NCDS = ROOT / "tests" / "reference" / "ncds" / "NCDS.csv"
FORMULA = ("white + maemp + C(scht) + C(qmab) + C(qmab2) + C(qvab) + C(qvab2) + paed_u + maed_u + agepa + agema"
           " + sib_u + paed_u*agepa + maed_u*agema")


@pytest.fixture(scope="module")
def ncds():
    return pd.read_csv(NCDS)


@pytest.mark.parametrize("estimand,outcome_formula,estimate,se", [
    ("ATE", None, 0.192543, 0.021122),           # IPW
    ("ATO", None, 0.179129, 0.015609),           # overlap
    ("ATE", FORMULA, 0.186079, 0.019842),        # augmented IPW
])
def test_psweight_s_published_ncds_numbers(ncds, estimand, outcome_formula, estimate, se):
    row = analysis_lib.weighted_effect(ncds, "Dany", "wage", formula=FORMULA, estimand=estimand,
                                       variance="m_estimation", outcome_formula=outcome_formula).iloc[0]
    assert round(row["estimate"], 6) == estimate and round(row["std_error"], 6) == se
    assert row["ci_lower"] == pytest.approx(estimate - 1.959964 * row["std_error"], abs=1e-5)


def simulated(n=3000, seed=11, binary=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    t = (rng.random(n) < 1 / (1 + np.exp(-0.8 * x))).astype(float)
    if binary:
        y = (rng.random(n) < 1 / (1 + np.exp(-(-0.5 + 0.7 * x + 0.6 * t)))).astype(float)
    else:
        y = 1.0 + 2.0 * x + 0.5 * t + rng.normal(size=n)
    return np.column_stack([np.ones(n), x]), t, y


def test_a_correct_outcome_model_rescues_a_wrong_propensity_model():
    X, t, y = simulated()
    wrong = np.ones((len(t), 1))  # an intercept only: no adjustment by the weights
    fit = augmented_effect(wrong, t, X, y, "ATE", binary=False)
    assert abs(fit.coef - 0.5) < 3 * fit.std_error  # doubly robust: still the truth 0.5
    naive = y[t == 1].mean() - y[t == 0].mean()
    assert abs(naive - 0.5) > 10 * fit.std_error  # while the unadjusted difference is far off


def test_a_binary_outcome_gives_a_ratio_of_augmented_means_and_a_reason_when_an_arm_has_no_event():
    X, t, y = simulated(binary=True)
    fit = augmented_effect(X, t, X, y, "ATO", binary=True)
    assert fit.ratio and fit.coef == pytest.approx(np.log(fit.mu1 / fit.mu0))
    row = fit.row()
    assert row["estimate"] == pytest.approx(fit.mu1 / fit.mu0) and row["ci_lower"] < row["estimate"] < row["ci_upper"]
    y0 = np.where(t == 0, 0.0, y)
    empty = augmented_effect(X, t, X, y0, "ATO", binary=True)
    assert np.isnan(empty.coef) and empty.note == "outcome model not estimable: no events in the MT only arm"
    assert np.isnan(empty.row()["estimate"])


def test_a_separated_arm_gives_its_reason_not_a_number():
    """In the MT+RS arm the last covariate decides the outcome (quasi-complete separation): R's glm
    warns and returns arbitrary coefficients; the row says why instead."""
    X, t, y = simulated(binary=True)
    y = np.where(t == 1, (X[:, -1] > 0).astype(float), y)
    fit = augmented_effect(X, t, X, y, "ATO", binary=True)
    events = int(y[t == 1].sum())
    assert np.isnan(fit.coef) and fit.note == ("outcome model not estimable: separation in the logistic model of the "
                                               f"MT+RS arm ({events} events in {int(t.sum())})")


def _numerical_jacobian(f, x, h=1e-5):
    """Central differences with one Richardson extrapolation (numDeriv's method, which PSweight uses)."""
    def central(step):
        out = np.empty((f(x).size, x.size))
        for j in range(x.size):
            e = np.zeros(x.size)
            e[j] = step * max(1.0, abs(x[j]))
            out[:, j] = (f(x + e) - f(x - e)) / (2 * e[j])
        return out
    return (4 * central(h / 2) - central(h)) / 3


@pytest.mark.parametrize("estimand", ["ATO", "ATE", "ATT", "ATM"])
@pytest.mark.parametrize("binary", [False, True])
def test_the_analytic_bread_is_the_derivative_of_the_estimating_functions(estimand, binary):
    from analysis_lib.augmented import bread, estimating_functions, meat
    from analysis_lib.numerics import sigmoid

    X, t, y = simulated(n=400, seed=5, binary=binary)
    Z = np.column_stack([X, X[:, 1] ** 2])
    k, q = Z.shape[1], X.shape[1]
    link = sigmoid if binary else (lambda eta: eta)
    rng = np.random.default_rng(1)
    theta = np.concatenate([[0.1, 0.7, -0.2], rng.normal(0, 0.3, 2 * q), [0.4, 0.3, 0.05, -0.02]])

    def parts(th):
        p = sigmoid(Z @ th[:k])
        return p, link(X @ th[k:k + q]), link(X @ th[k + q:k + 2 * q]), th[k + 2 * q:]

    A = bread(Z, X, t, y, *parts(theta), estimand, binary)
    numerical = _numerical_jacobian(lambda th: estimating_functions(Z, X, t, y, *parts(th), estimand).sum(axis=0),
                                    theta)
    assert np.allclose(A, numerical, rtol=1e-7, atol=1e-7 * np.abs(numerical).max())
    psi = estimating_functions(Z, X, t, y, *parts(theta), estimand)
    assert np.allclose(meat(Z, X, t, y, *parts(theta), estimand, chunk=37), psi.T @ psi, rtol=1e-12)
