"""Variance that accounts for the estimated propensity score: M-estimation (stacked estimating
equations), as WeightIt's ``lm_weightit``/``glm_weightit`` and PSweight compute it.

The propensity model (logistic, parameters ``gamma``, design ``Z``) and the weighted outcome
model (parameters ``beta``, design ``X``) are solved jointly by the stacked estimating functions

    psi_gamma,i = (t_i - p_i) z_i                          (logistic score, every analysis row)
    psi_beta,i  = w_i(gamma) x_i (y_i - mu_i(beta))        (rows whose outcome is known)

with ``mu = x'beta`` (linear model) or ``exp(x'beta)`` (modified Poisson). The sandwich
``A^-1 B A^-T`` over the stack (``A`` the Jacobian of the summed functions, ``B = sum psi psi'``)
has, for ``beta``, the closed form

    V_beta = A_bb^-1 (sum_i u_i u_i') A_bb^-T,     u_i = psi_beta,i + A_bg H^-1 psi_gamma,i

where ``A_bb = -X' diag(w dmu/deta) X``, ``A_bg = sum_i x_i (y_i - mu_i) dw_i/dgamma'`` and
``H = Z' diag(p (1 - p)) Z`` (so ``A_gg = -H``): the outcome scores are corrected by their
projection on the propensity scores. No small-sample factor (HC0 type) and normal quantiles,
as WeightIt. The derivatives are analytic (:func:`weight_derivative`); the tests compare them
with numerical differentiation of :func:`estimating_functions`.

A constant factor common to all weights (the normalisation to mean 1) leaves ``V_beta``
unchanged, because ``sum_i w_i x_i (y_i - mu_i) = 0`` at the solution; the derivative of the
normalised weights is therefore the derivative of the raw weights divided by their mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .data import TREATMENT
from .numerics import sigmoid
from .weighting import design_matrix
from .weighting import estimand_weights as raw_weights  # the weights before normalisation

METHOD = "M-estimation"


@dataclass(frozen=True)
class PropensityEstimation:
    """What the stacked sandwich needs of a fitted logistic propensity model, on the rows of
    the analysis sample: the scores ``psi_gamma`` (n x k), ``H^-1`` (k x k), ``Q = sum psi_gamma
    psi_gamma'`` and the derivative of each patient's (normalised) weight (n x k)."""

    scores: np.ndarray = field(repr=False)
    info_inv: np.ndarray = field(repr=False)
    score_cross: np.ndarray = field(repr=False)
    dweights: np.ndarray = field(repr=False)
    estimand: str
    terms: tuple[str, ...]


def weight_derivative(p: np.ndarray, t: np.ndarray, Z: np.ndarray, estimand: str) -> np.ndarray:
    """``dw_i / dgamma`` (n x k) of the raw weights, with ``dp/dgamma = p (1 - p) z``:

    * ATO ``t (1 - p) + (1 - t) p``: ``(1 - 2t) p (1 - p) z``
    * ATE ``t / p + (1 - t) / (1 - p)``: ``(-t (1 - p) / p + (1 - t) p / (1 - p)) z``
    * ATT ``t + (1 - t) p / (1 - p)``: ``(1 - t) p / (1 - p) z``
    * ATM ``min(p, 1 - p) / (t p + (1 - t)(1 - p))``: ``-(1 - p) / p z`` for treated with
      ``p > 1/2``, ``p / (1 - p) z`` for controls with ``p < 1/2``, 0 otherwise (the weight is 1).
    """
    return weight_derivative_factor(p, t, estimand)[:, None] * np.asarray(Z, float)


def weight_derivative_factor(p: np.ndarray, t: np.ndarray, estimand: str) -> np.ndarray:
    """The factor ``g_i`` of :func:`weight_derivative`, ``dw_i / dgamma = g_i z_i``."""
    p = np.asarray(p, float)
    t = np.asarray(t, float)
    if estimand == "ATO":
        return (1 - 2 * t) * p * (1 - p)
    if estimand == "ATE":
        return -t * (1 - p) / p + (1 - t) * p / (1 - p)
    if estimand == "ATT":
        return (1 - t) * p / (1 - p)
    if estimand == "ATM":
        return np.where((t == 1) & (p > 0.5), -(1 - p) / p, 0.0) + np.where((t == 0) & (p < 0.5), p / (1 - p), 0.0)
    raise ValueError(f"estimand must be ATO, ATE, ATT or ATM, got {estimand!r}")


def propensity_estimation(df: pd.DataFrame, model, estimand: str, treatment: str = TREATMENT,
                          normalize: bool = True) -> PropensityEstimation:
    """:class:`PropensityEstimation` of a fitted :class:`~analysis_lib.weighting.PropensityModel`
    (logistic; its design rebuilt from ``df``, aliased terms left out as in the fit)."""
    if model.method != "logistic":
        raise ValueError("M-estimation variance needs the logistic propensity model (ps_method logistic): "
                         "the estimating equations of CBPS are not stacked here")
    X = design_matrix(df, model.covariates, model.formula)
    kept = [c for c in X.columns if np.isfinite(model.coefficients.get(c, np.nan))]
    return estimation_from_design(X[kept].to_numpy(float), model.propensity, df[treatment].to_numpy(float),
                                  estimand, normalize, tuple(kept))


def estimation_from_design(Z: np.ndarray, propensity: np.ndarray, treatment: np.ndarray, estimand: str,
                           normalize: bool = True, terms: tuple[str, ...] = ()) -> PropensityEstimation:
    """:class:`PropensityEstimation` of a logistic model with design ``Z`` (full rank) and fitted
    ``propensity``: the overall model, or the model interacted with the subgroups (one block of
    columns per subgroup, :func:`~analysis_lib.subgroups.within_weights`), whose ``H`` is then
    block diagonal."""
    Z = np.asarray(Z, float)
    t = np.asarray(treatment, float)
    p = np.asarray(propensity, float)
    scores = (t - p)[:, None] * Z
    H = Z.T @ ((p * (1 - p))[:, None] * Z)
    dw = weight_derivative(p, t, Z, estimand)
    if normalize:
        dw = dw / raw_weights(p, t, estimand).mean()
    return PropensityEstimation(scores=scores, info_inv=np.linalg.inv(H), score_cross=scores.T @ scores,
                                dweights=dw, estimand=estimand, terms=tuple(terms))


def stacked_vcov(psi_beta: np.ndarray, jac_beta_gamma: np.ndarray, a_bb_inv: np.ndarray,
                 ps: PropensityEstimation, keep: np.ndarray | None = None) -> np.ndarray:
    """``V_beta`` of the module docstring from the outcome scores of the kept rows
    (``psi_beta``, n_kept x q), ``A_bg`` (q x k) and ``A_bb^-1`` (q x q).

    ``sum u u' = D + S G + (S G)' + G' Q G`` with ``G = H^-1 A_bg'``, ``D = sum psi_beta
    psi_beta'``, ``S = sum psi_beta psi_gamma'`` over the kept rows and ``Q = sum psi_gamma
    psi_gamma'`` over all rows (rows without an outcome contribute their propensity scores only).
    """
    G = ps.info_inv @ jac_beta_gamma.T
    S = over_all_rows(psi_beta, keep).T @ ps.scores  # rows without an outcome add nothing to S
    SG = S @ G
    meat = psi_beta.T @ psi_beta + SG + SG.T + G.T @ ps.score_cross @ G
    return a_bb_inv @ meat @ a_bb_inv.T


def over_all_rows(values: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
    """``values`` of the kept rows (n_kept x q) as n x q, zero in the other rows: products with the
    propensity model's n x k arrays then need no copy of their kept rows (100 MB at n = 10^6)."""
    if keep is None:
        return values
    keep = np.asarray(keep, bool)
    full = np.zeros((keep.size, values.shape[1]))
    full[keep] = values
    return full


def model_vcov(X: np.ndarray, y: np.ndarray, w: np.ndarray, mu: np.ndarray, family: str,
               ps: PropensityEstimation, keep: np.ndarray | None = None) -> np.ndarray:
    """M-estimation covariance of a weighted linear (``gaussian``) or log-link Poisson model with
    design ``X``, fitted means ``mu`` and weights ``w`` on the kept rows."""
    X = np.asarray(X, float)
    resid = np.asarray(y, float) - np.asarray(mu, float)
    work = w if family == "gaussian" else w * mu
    dw = ps.dweights if keep is None else ps.dweights[np.asarray(keep, bool)]
    a_bb_inv = np.linalg.inv(X.T @ (work[:, None] * X))  # the sign of A_bb cancels in the sandwich
    jac = X.T @ (resid[:, None] * dw)
    return stacked_vcov(X * (w * resid)[:, None], jac, a_bb_inv, ps, keep)


# ---------------------------------------------------------------- for tests and reading
def estimating_functions(gamma: np.ndarray, beta: np.ndarray, Z: np.ndarray, t: np.ndarray, X: np.ndarray,
                         y: np.ndarray, estimand: str, family: str = "gaussian") -> np.ndarray:
    """The stacked estimating functions ``[psi_gamma, psi_beta]`` (n x (k + q)) at any
    ``(gamma, beta)``, with raw weights; rows with a missing ``y`` have ``psi_beta = 0``."""
    p = sigmoid(Z @ gamma)
    w = raw_weights(p, t, estimand)
    eta = X @ beta
    mu = eta if family == "gaussian" else np.exp(eta)
    r = np.where(np.isnan(y), 0.0, y - mu)
    return np.hstack([(t - p)[:, None] * Z, X * (w * r)[:, None]])


def jacobian(gamma: np.ndarray, beta: np.ndarray, Z: np.ndarray, t: np.ndarray, X: np.ndarray, y: np.ndarray,
             estimand: str, family: str = "gaussian") -> np.ndarray:
    """Analytic Jacobian ``A = d sum psi / d theta'`` of :func:`estimating_functions`:
    ``[[-H, 0], [A_bg, A_bb]]``."""
    p = sigmoid(Z @ gamma)
    w = raw_weights(p, t, estimand)
    eta = X @ beta
    mu = eta if family == "gaussian" else np.exp(eta)
    known = ~np.isnan(y)
    r = np.where(known, y - mu, 0.0)
    dmu = np.ones_like(mu) if family == "gaussian" else mu
    k, q = Z.shape[1], X.shape[1]
    A = np.zeros((k + q, k + q))
    A[:k, :k] = -Z.T @ ((p * (1 - p))[:, None] * Z)
    A[k:, :k] = X.T @ (r[:, None] * weight_derivative(p, t, Z, estimand))
    A[k:, k:] = -X.T @ ((known * w * dmu)[:, None] * X)
    return A
