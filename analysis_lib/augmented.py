"""Augmented (doubly robust) weighting, as R's PSweight with ``augmentation = TRUE`` (Mao, Li &
Greene 2019; ANALYSIS.md §14): consistent when either the propensity model or the outcome model
is right.

With ``h`` the tilting function of the estimand (ATO ``e (1 - e)``, ATE 1, ATT ``e``, ATM
``min(e, 1 - e)``), ``w`` its balancing weights and ``m_z`` an outcome regression fitted in arm
``z`` alone (least squares, or logistic for a 0/1 outcome) on ``outcome_formula``:

    mu_z = sum_i h_i m_z(x_i) / sum_i h_i  +  sum_{Z_i = z} w_i (Y_i - m_z(x_i)) / sum_{Z_i = z} w_i

The effect is ``mu_1 - mu_0`` (or ``log(mu_1 / mu_0)`` for a 0/1 outcome, reported as a ratio).
Its variance is the M-estimation sandwich ``A^-1 B A^-T`` of the stacked estimating functions of
the logistic propensity model, both outcome models and the four means ``nu_z`` (the first sum)
and ``delta_z`` (the second); ``A`` is differentiated numerically (central differences with
Richardson extrapolation, as numDeriv, which PSweight uses), ``B = sum psi psi'``. Checked against
PSweight's published NCDS example (tests/test_augmented.py) to its printed 6 decimals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .data import OUTCOMES, TREATMENT, measure_for
from .numerics import critical_value, newton_glm, sigmoid, two_sided_p
from .weighting import estimand_weights


def tilting(p: np.ndarray, estimand: str) -> np.ndarray:
    """The tilting function ``h(e)`` of the estimand's target population."""
    return {"ATO": p * (1 - p), "ATE": np.ones_like(p), "ATT": p, "ATM": np.minimum(p, 1 - p)}[estimand]


@dataclass(frozen=True)
class AugmentedFit:
    """The augmented means of each arm, the effect on the link scale and its standard error."""

    mu1: float
    mu0: float
    coef: float
    std_error: float
    ratio: bool
    note: str = ""

    def row(self, conf_level: float = 0.95) -> dict:
        """Estimate, normal interval and p on the natural scale (a ratio for 0/1 outcomes)."""
        if not np.isfinite(self.coef):
            return {"estimate": np.nan, "ci_lower": np.nan, "ci_upper": np.nan, "p_value": np.nan}
        z = critical_value(conf_level, None)
        lo, hi = self.coef - z * self.std_error, self.coef + z * self.std_error
        est = self.coef
        if self.ratio:
            est, lo, hi = np.exp(est), np.exp(lo), np.exp(hi)
        return {"estimate": est, "ci_lower": lo, "ci_upper": hi,
                "p_value": float(two_sided_p(self.coef / self.std_error, None))}


def _outcome_fit(X: np.ndarray, y: np.ndarray, binary: bool, arm: str = "an arm") -> tuple[np.ndarray | None, str]:
    """The outcome model of one arm, or None and the reason it cannot be fitted. A logistic fit
    is refused when it does not converge or a fitted logit exceeds 30 in size (a probability
    within 1e-13 of 0 or 1: complete or quasi-complete separation, where R's glm warns "fitted
    probabilities numerically 0 or 1" and its coefficients are arbitrary)."""
    if binary:
        events = f"{int(y.sum())} events in {y.size}"
        if y.min() == y.max():
            return None, f"outcome model not estimable: {'no' if y.max() == 0 else 'only'} events in {arm}"
        with np.errstate(all="ignore"):  # a separated arm diverges: reported below, never used
            beta, _, _, converged = newton_glm(X, y, None, "binomial", tol=1e-12, max_iter=100)
        if not converged or not np.all(np.isfinite(beta)) or np.max(np.abs(X @ beta)) > 30:
            return None, f"outcome model not estimable: separation in the logistic model of {arm} ({events})"
        return beta, ""
    if np.linalg.matrix_rank(X) < X.shape[1]:
        return None, f"outcome model not estimable: fewer patients than terms in {arm}"
    return np.linalg.lstsq(X, y, rcond=None)[0], ""


def augmented_effect(Z: np.ndarray, t: np.ndarray, X: np.ndarray, y: np.ndarray, estimand: str,
                     binary: bool) -> AugmentedFit:
    """The augmented estimator of the module docstring: ``Z`` the propensity design (with its
    intercept), ``X`` the outcome design (with its intercept), ``t`` 0/1, ``y`` the outcome."""
    Z, X, t, y = (np.asarray(a, float) for a in (Z, X, t, y))
    gamma, _, _, converged = newton_glm(Z, t, None, "binomial", tol=1e-12, max_iter=100)
    if not converged:
        return AugmentedFit(np.nan, np.nan, np.nan, np.nan, binary, "propensity model did not converge")
    arms = {}
    for arm, label in ((1, "the MT+RS arm"), (0, "the MT only arm")):
        beta, problem = _outcome_fit(X[t == arm], y[t == arm], binary, label)
        if beta is None:
            return AugmentedFit(np.nan, np.nan, np.nan, np.nan, binary, problem)
        arms[arm] = beta
    k, q = Z.shape[1], X.shape[1]
    link = sigmoid if binary else (lambda eta: eta)

    def psi(theta: np.ndarray) -> np.ndarray:
        g, a1, a0 = theta[:k], theta[k:k + q], theta[k + q:k + 2 * q]
        nu1, nu0, d1, d0 = theta[k + 2 * q:]
        p = sigmoid(Z @ g)
        h, w = tilting(p, estimand), estimand_weights(p, t, estimand)
        m1, m0 = link(X @ a1), link(X @ a0)
        return np.column_stack([(t - p)[:, None] * Z, (t * (y - m1))[:, None] * X, ((1 - t) * (y - m0))[:, None] * X,
                                h * (m1 - nu1), h * (m0 - nu0), t * w * (y - m1 - d1), (1 - t) * w * (y - m0 - d0)])

    p = sigmoid(Z @ gamma)
    h, w = tilting(p, estimand), estimand_weights(p, t, estimand)
    m1, m0 = link(X @ arms[1]), link(X @ arms[0])
    means = [h @ m1 / h.sum(), h @ m0 / h.sum(), (t * w) @ (y - m1) / (t * w).sum(),
             ((1 - t) * w) @ (y - m0) / ((1 - t) * w).sum()]
    theta = np.concatenate([gamma, arms[1], arms[0], means])
    A = _jacobian(lambda th: psi(th).sum(axis=0), theta)
    scores = psi(theta)
    V = np.linalg.solve(A, np.linalg.solve(A, scores.T @ scores).T)  # A^-1 B A^-T
    mu1, mu0 = means[0] + means[2], means[1] + means[3]
    grad = np.zeros(theta.size)
    idx = k + 2 * q
    if binary:
        if mu1 <= 0 or mu0 <= 0:
            return AugmentedFit(mu1, mu0, np.nan, np.nan, True, "RR not estimable: an augmented mean is not positive")
        grad[[idx, idx + 2]], grad[[idx + 1, idx + 3]] = 1 / mu1, -1 / mu0
        coef = np.log(mu1 / mu0)
    else:
        grad[[idx, idx + 2]], grad[[idx + 1, idx + 3]] = 1.0, -1.0
        coef = mu1 - mu0
    return AugmentedFit(float(mu1), float(mu0), float(coef), float(np.sqrt(grad @ V @ grad)), binary)


def _jacobian(f, x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """``d f / d x'`` by central differences with one Richardson extrapolation (error O(h^4))."""
    def central(step: float) -> np.ndarray:
        out = np.empty((f(x).size, x.size))
        for j in range(x.size):
            e = np.zeros(x.size)
            e[j] = step * max(1.0, abs(x[j]))
            out[:, j] = (f(x + e) - f(x - e)) / (2 * e[j])
        return out

    return (4 * central(h / 2) - central(h)) / 3


AUGMENTED_COLUMNS = ["outcome", "measure", "estimate", "ci_lower", "ci_upper", "p_value", "mu_mt_rs", "mu_mt_only",
                     "n", "note"]


def augmented_rows(df: pd.DataFrame, Z: np.ndarray, X: np.ndarray, estimand: str, conf_level: float = 0.95,
                   outcomes: tuple[str, ...] = OUTCOMES, treatment: str = TREATMENT) -> pd.DataFrame:
    """``tables/augmented.csv``: the augmented estimate of every Table 2 outcome in the entire
    cohort (difference in mean mRS; ratio of augmented means for 0/1 outcomes), on the patients with
    a known outcome, the propensity model refitted on them; the reason where an outcome model
    cannot be fitted."""
    rows = []
    t_all = df[treatment].to_numpy(float)
    for outcome in outcomes:
        y_all = df[outcome].to_numpy(float)
        keep = ~np.isnan(y_all)
        y = y_all[keep]
        measure = measure_for(y)
        fit = augmented_effect(Z[keep], t_all[keep], X[keep], y, estimand, measure == "RR")
        rows.append({"outcome": outcome, "measure": measure, **fit.row(conf_level),
                     "mu_mt_rs": fit.mu1, "mu_mt_only": fit.mu0, "n": int(keep.sum()), "note": fit.note})
    return pd.DataFrame(rows, columns=AUGMENTED_COLUMNS)
