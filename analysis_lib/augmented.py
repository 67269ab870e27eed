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
and ``delta_z`` (the second); ``A`` is analytic (:func:`bread`; PSweight differentiates
numerically with numDeriv), ``B = sum psi psi'``. Checked against
PSweight's published NCDS example (tests/test_augmented.py) to its printed 6 decimals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .data import OUTCOMES, TREATMENT, measure_for
from .mestimation import weight_derivative_factor
from .numerics import critical_value, newton_glm, sigmoid, two_sided_p, weighted_gram
from .weighting import estimand_weights, logistic_ml


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


def propensity_fit(Z: np.ndarray, t: np.ndarray, start: np.ndarray | None = None) -> tuple[np.ndarray, bool]:
    """The logistic propensity model of the augmented estimator: ``(gamma, converged)``; ``start``:
    coefficients where Newton's method starts (the study's propensity model: the same maximum in
    fewer steps; :func:`~analysis_lib.weighting.logistic_ml`)."""
    gamma, _, _, converged, _ = logistic_ml(np.asarray(Z, float), np.asarray(t, float), start)
    return gamma, converged


def augmented_effect(Z: np.ndarray, t: np.ndarray, X: np.ndarray, y: np.ndarray, estimand: str,
                     binary: bool, propensity: tuple[np.ndarray, bool] | None = None,
                     arm_designs: dict[int, np.ndarray] | None = None) -> AugmentedFit:
    """The augmented estimator of the module docstring: ``Z`` the propensity design (with its
    intercept), ``X`` the outcome design (with its intercept), ``t`` 0/1, ``y`` the outcome;
    ``propensity`` the :func:`propensity_fit` of ``Z`` and ``t`` when already fitted, and
    ``arm_designs`` the rows of ``X`` in each arm (``{1: X[t == 1], 0: X[t == 0]}``) when already split."""
    Z, X, t, y = (np.asarray(a, float) for a in (Z, X, t, y))
    gamma, converged = propensity or propensity_fit(Z, t)
    if not converged:
        return AugmentedFit(np.nan, np.nan, np.nan, np.nan, binary, "propensity model did not converge")
    arm_designs = arm_designs or {arm: X[t == arm] for arm in (1, 0)}
    arms = {}
    for arm, label in ((1, "the MT+RS arm"), (0, "the MT only arm")):
        beta, problem = _outcome_fit(arm_designs[arm], y[t == arm], binary, label)
        if beta is None:
            return AugmentedFit(np.nan, np.nan, np.nan, np.nan, binary, problem)
        arms[arm] = beta
    link = sigmoid if binary else (lambda eta: eta)
    p = sigmoid(Z @ gamma)
    h, w = tilting(p, estimand), estimand_weights(p, t, estimand)
    m1, m0 = link(X @ arms[1]), link(X @ arms[0])
    means = np.array([h @ m1 / h.sum(), h @ m0 / h.sum(), (t * w) @ (y - m1) / (t * w).sum(),
                      ((1 - t) * w) @ (y - m0) / ((1 - t) * w).sum()])
    theta = np.concatenate([gamma, arms[1], arms[0], means])
    A = bread(Z, X, t, y, p, m1, m0, means, estimand, binary)
    V = np.linalg.solve(A, np.linalg.solve(A, meat(Z, X, t, y, p, m1, m0, means, estimand)).T)  # A^-1 B A^-T
    mu1, mu0 = means[0] + means[2], means[1] + means[3]
    grad = np.zeros(theta.size)
    idx = Z.shape[1] + 2 * X.shape[1]
    if binary:
        if mu1 <= 0 or mu0 <= 0:
            return AugmentedFit(mu1, mu0, np.nan, np.nan, True, "RR not estimable: an augmented mean is not positive")
        grad[[idx, idx + 2]], grad[[idx + 1, idx + 3]] = 1 / mu1, -1 / mu0
        coef = np.log(mu1 / mu0)
    else:
        grad[[idx, idx + 2]], grad[[idx + 1, idx + 3]] = 1.0, -1.0
        coef = mu1 - mu0
    return AugmentedFit(float(mu1), float(mu0), float(coef), float(np.sqrt(grad @ V @ grad)), binary)


def estimating_functions(Z, X, t, y, p, m1, m0, means, estimand) -> np.ndarray:
    """``psi_i`` (n x (k + 2q + 4)) at the estimates, in the order of ``theta``: ``(t - p) z``,
    ``t (y - m1) x``, ``(1 - t)(y - m0) x``, ``h (m1 - nu1)``, ``h (m0 - nu0)``,
    ``t w (y - m1 - delta1)``, ``(1 - t) w (y - m0 - delta0)``."""
    nu1, nu0, d1, d0 = means
    h, w = tilting(p, estimand), estimand_weights(p, t, estimand)
    return np.column_stack([(t - p)[:, None] * Z, (t * (y - m1))[:, None] * X, ((1 - t) * (y - m0))[:, None] * X,
                            h * (m1 - nu1), h * (m0 - nu0), t * w * (y - m1 - d1), (1 - t) * w * (y - m0 - d0)])


def meat(Z, X, t, y, p, m1, m0, means, estimand, chunk: int = 65536) -> np.ndarray:
    """``B = sum_i psi_i psi_i'``, accumulated over blocks of ``chunk`` rows so that the n x
    (k + 2q + 4) matrix of estimating functions is never held whole (344 MB at n = 10^6)."""
    B = 0.0
    for s in range(0, len(t), chunk):
        part = slice(s, s + chunk)
        psi = estimating_functions(Z[part], X[part], t[part], y[part], p[part], m1[part], m0[part], means, estimand)
        B = B + psi.T @ psi
    return B


def bread(Z, X, t, y, p, m1, m0, means, estimand, binary) -> np.ndarray:
    """``A = sum_i d psi_i / d theta'``, analytic (PSweight differentiates numerically with
    numDeriv; that needs 4 (k + 2q + 4) passes over the data, 170 at the default model, and took
    minutes at n = 10^6). With ``s = p (1 - p)`` (``dp/dgamma = s z``), ``m'`` the derivative of
    the outcome model's inverse link (``m (1 - m)`` for a logistic model, 1 for least squares),
    ``h'`` the tilting function's and ``g`` the weights' derivative factor
    (:func:`~analysis_lib.mestimation.weight_derivative_factor`):

    * ``d psi_gamma / d gamma' = -Z' diag(s) Z``; ``d psi_a1 / d a1' = -X' diag(t m1') X``, and
      ``d psi_a0 / d a0' = -X' diag((1 - t) m0') X``;
    * ``d psi_nu1 / d gamma' = sum h' s (m1 - nu1) z'``, ``/ d a1' = sum h m1' x'``, ``/ d nu1 = -sum h``;
    * ``d psi_delta1 / d gamma' = sum t g (y - m1 - delta1) z'``, ``/ d a1' = -sum t w m1' x'``,
      ``/ d delta1 = -sum t w``; and the same for arm 0 with ``1 - t``.

    tests/test_augmented.py compares it with numerical differentiation."""
    k, q = Z.shape[1], X.shape[1]
    nu1, nu0, d1, d0 = means
    s = p * (1 - p)
    h, w = tilting(p, estimand), estimand_weights(p, t, estimand)
    dh = {"ATO": 1 - 2 * p, "ATE": np.zeros_like(p), "ATT": np.ones_like(p),
          "ATM": np.where(p < 0.5, 1.0, -1.0)}[estimand]
    g = weight_derivative_factor(p, t, estimand)
    dm1, dm0 = (m1 * (1 - m1), m0 * (1 - m0)) if binary else (np.ones_like(p), np.ones_like(p))
    c = 1 - t
    a1, a0, n1, n0, e1, e0 = (slice(k, k + q), slice(k + q, k + 2 * q), k + 2 * q, k + 2 * q + 1, k + 2 * q + 2,
                              k + 2 * q + 3)
    A = np.zeros((k + 2 * q + 4, k + 2 * q + 4))
    A[:k, :k] = -weighted_gram(Z, s)
    A[a1, a1] = -weighted_gram(X, t * dm1)
    A[a0, a0] = -weighted_gram(X, c * dm0)
    A[n1, :k], A[n1, a1], A[n1, n1] = Z.T @ (dh * s * (m1 - nu1)), X.T @ (h * dm1), -h.sum()
    A[n0, :k], A[n0, a0], A[n0, n0] = Z.T @ (dh * s * (m0 - nu0)), X.T @ (h * dm0), -h.sum()
    # -(X'v), not (-X')v: the latter negates a copy of the whole design first
    A[e1, :k], A[e1, a1], A[e1, e1] = Z.T @ (t * g * (y - m1 - d1)), -(X.T @ (t * w * dm1)), -(t * w).sum()
    A[e0, :k], A[e0, a0], A[e0, e0] = Z.T @ (c * g * (y - m0 - d0)), -(X.T @ (c * w * dm0)), -(c * w).sum()
    return A


AUGMENTED_COLUMNS = ["outcome", "measure", "estimate", "ci_lower", "ci_upper", "p_value", "mu_mt_rs", "mu_mt_only",
                     "n", "note"]


def augmented_rows(df: pd.DataFrame, Z: np.ndarray, X: np.ndarray, estimand: str, conf_level: float = 0.95,
                   outcomes: tuple[str, ...] = OUTCOMES, treatment: str = TREATMENT,
                   start: np.ndarray | None = None) -> pd.DataFrame:
    """``tables/augmented.csv``: the augmented estimate of every Table 2 outcome in the entire
    cohort (difference in mean mRS; ratio of augmented means for 0/1 outcomes), on the patients with
    a known outcome, the propensity model refitted on them; the reason where an outcome model
    cannot be fitted. ``start``: the propensity coefficients (of ``Z``'s columns) where each
    refit starts (:func:`propensity_fit`)."""
    t_all = df[treatment].to_numpy(float)
    # the outcomes by the set of patients with a known outcome (the mRS and its dichotomies share
    # one): each set's rows of the designs, split by arm, and its propensity model are made once,
    # and freed before the next set's (at 10^6 patients, 200 MB a set)
    sets: dict[bytes, list] = {}
    for i, outcome in enumerate(outcomes):
        keep = ~np.isnan(df[outcome].to_numpy(float))
        sets.setdefault(np.packbits(keep).tobytes(), []).append((i, outcome, keep))
    rows = [None] * len(outcomes)
    for members in sets.values():
        keep = members[0][2]
        Zk, tk = np.asarray(Z, float)[keep], t_all[keep]
        Xk = Zk if X is Z else np.asarray(X, float)[keep]
        propensity, arm_designs = propensity_fit(Zk, tk, start), {arm: Xk[tk == arm] for arm in (1, 0)}
        for i, outcome, _ in members:
            y = df[outcome].to_numpy(float)[keep]
            measure = measure_for(y)
            fit = augmented_effect(Zk, tk, Xk, y, estimand, measure == "RR", propensity, arm_designs)
            rows[i] = {"outcome": outcome, "measure": measure, **fit.row(conf_level),
                       "mu_mt_rs": fit.mu1, "mu_mt_only": fit.mu0, "n": int(keep.sum()), "note": fit.note}
        del Zk, Xk, arm_designs, propensity
    return pd.DataFrame(rows, columns=AUGMENTED_COLUMNS)
