"""Propensity score and balancing weights (ANALYSIS.md §2).

The propensity model is an unpenalised logistic regression of the treatment on the linear
terms of the covariates, fitted by maximum likelihood as R's ``glm(family = binomial)``.
Weights for the four estimands are then normalised to mean 1 over the analysis sample.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.api as sm

from .data import ID, TREATMENT
from .params import ESTIMANDS

# R's glm flags fitted probabilities within 10 * machine epsilon of 0 or 1; we stop earlier,
# because propensities this extreme make every weighted estimate meaningless.
SEPARATION_TOL = 1e-8


class PropensityError(ValueError):
    """The propensity model cannot be estimated (separation, no variation, ...). One line."""


@dataclass(frozen=True)
class PropensityModel:
    """A fitted propensity model.

    Attributes
    ----------
    covariates : tuple of str
        Linear terms, in model order.
    coefficients : Series
        ``Intercept`` and one coefficient per covariate (NaN for an aliased covariate, as R's NA).
    propensity : ndarray
        Fitted P(treatment = 1 | covariates) for every analysis-sample row.
    iterations : int
        Fisher-scoring iterations.
    aliased : tuple of str
        Covariates dropped because they are linear combinations of earlier terms.
    """

    covariates: tuple[str, ...]
    coefficients: pd.Series
    propensity: np.ndarray = field(repr=False)
    iterations: int
    aliased: tuple[str, ...] = ()

    def __repr__(self) -> str:
        p = self.propensity
        return (f"PropensityModel(logistic, {len(self.covariates)} covariates, n={p.size}, "
                f"propensity {p.min():.3f} to {p.max():.3f}"
                + (f", aliased: {', '.join(self.aliased)}" if self.aliased else "") + ")")


def design_matrix(df: pd.DataFrame, covariates: tuple[str, ...] | list[str]) -> pd.DataFrame:
    """Intercept plus the covariates as float columns (the model matrix of ``~ x1 + x2 ...``)."""
    X = df[list(covariates)].astype(float)
    X.insert(0, "Intercept", 1.0)
    return X


def aliased_columns(X: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    """Columns that are (numerically) linear combinations of earlier columns.

    Mirrors R's ``lm``/``glm`` (LINPACK ``dqrdc2`` with tolerance 1e-7): columns are taken in
    order and a column whose residual norm, after projection on the kept columns, is below
    ``tol`` times its own norm is aliased (R reports its coefficient as NA).
    """
    keep: list[int] = []
    aliased = np.zeros(X.shape[1], dtype=bool)
    for j in range(X.shape[1]):
        col = X[:, j]
        norm = np.linalg.norm(col)
        if norm == 0:
            aliased[j] = True
            continue
        if keep:
            Q, _ = np.linalg.qr(X[:, keep])
            resid = col - Q @ (Q.T @ col)
        else:
            resid = col
        if np.linalg.norm(resid) < tol * norm:
            aliased[j] = True
        else:
            keep.append(j)
    return aliased


def fit_propensity(df: pd.DataFrame, covariates: tuple[str, ...] | list[str],
                   treatment: str = TREATMENT) -> PropensityModel:
    """Logistic propensity model ``treatment ~ covariates`` by maximum likelihood.

    Parameters
    ----------
    df : DataFrame
        Analysis sample: complete on ``treatment`` and ``covariates``.
    covariates : sequence of str
        Linear terms (ANALYSIS.md §2).

    Returns
    -------
    PropensityModel

    Raises
    ------
    PropensityError
        When a treatment arm is empty, a covariate is missing, or the covariates separate the
        arms (fitted propensities of 0 or 1): the message names the covariate when one
        covariate alone separates, and the rows concerned.

    Notes
    -----
    Fisher scoring (statsmodels ``GLM(Binomial)``, IRLS) to a deviance change below 1e-12,
    tighter than R's default ``epsilon = 1e-8``, so that both agree to far below 1e-6.
    """
    y = df[treatment].to_numpy(float)
    if np.unique(y).size < 2:
        raise PropensityError(f"propensity model: '{treatment}' takes a single value; both arms are needed")
    X = design_matrix(df, covariates)
    if X.isna().any().any():
        bad = [c for c in X.columns if X[c].isna().any()]
        raise PropensityError(f"propensity model: missing values in {', '.join(bad)}; use the analysis sample")
    Xv = X.to_numpy()
    alias = aliased_columns(Xv)
    kept = [c for c, a in zip(X.columns, alias) if not a]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # separation is diagnosed below, with a clear message
        res = sm.GLM(y, X[kept].to_numpy(), family=sm.families.Binomial()).fit(
            method="IRLS", tol=1e-12, maxiter=100)
    coef = pd.Series(np.nan, index=X.columns)
    coef[kept] = res.params
    p = np.asarray(res.fittedvalues, float)
    extreme = (p < SEPARATION_TOL) | (p > 1 - SEPARATION_TOL)
    converged = bool(res.converged) and np.all(np.isfinite(res.params))
    if extreme.any() or not converged:
        raise PropensityError(_separation_message(df, covariates, treatment, extreme))
    return PropensityModel(covariates=tuple(covariates), coefficients=coef, propensity=p,
                           iterations=int(getattr(res, "fit_history", {}).get("iteration", 0)),
                           aliased=tuple(c for c, a in zip(X.columns, alias) if a))


def _separation_message(df: pd.DataFrame, covariates, treatment: str, extreme: np.ndarray) -> str:
    t = df[treatment].to_numpy(float)
    culprits = []
    for c in covariates:
        x = df[c].to_numpy(float)
        x1, x0 = x[t == 1], x[t == 0]
        if x1.max() < x0.min() or x0.max() < x1.min():
            culprits.append(f"'{c}' alone separates the arms")
            continue
        for level in np.unique(x):
            arms = np.unique(t[x == level])
            if np.unique(x).size <= 2 and arms.size == 1:
                arm = "MT+RS" if arms[0] == 1 else "MT only"
                culprits.append(f"'{c}' = {level:g} occurs only in {arm}")
    rows = np.flatnonzero(extreme)[:5] + 1
    where = f" (fitted propensity 0 or 1 for {int(extreme.sum())} patients, e.g. rows {', '.join(map(str, rows))})" if extreme.any() else ""
    why = "; ".join(culprits) if culprits else "a combination of covariates predicts the treatment perfectly"
    return (f"propensity model: complete or quasi-complete separation{where}: {why}; "
            "remove or recode the covariate (parameter ps_covariates)")


def compute_weights(propensity: np.ndarray, treatment: np.ndarray, estimand: str = "ATO",
                    normalize: bool = True) -> np.ndarray:
    """Balancing weights for the chosen estimand, normalised to mean 1.

    Parameters
    ----------
    propensity : array
        Fitted propensity ``e`` in (0, 1).
    treatment : array
        0/1 treatment indicator ``t``.
    estimand : {"ATO", "ATE", "ATT", "ATM"}
        * ATO (overlap weights, Li, Morgan & Zaslavsky 2018): ``t (1 - e) + (1 - t) e``
        * ATE (inverse probability): ``t / e + (1 - t) / (1 - e)``
        * ATT: ``t + (1 - t) e / (1 - e)``
        * ATM (matching weights, Li & Greene 2013): ``min(e, 1 - e) / (t e + (1 - t)(1 - e))``
    normalize : bool
        Divide by the mean weight over all patients (ANALYSIS.md §2), so weights average 1.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> compute_weights(np.array([0.2, 0.5, 0.8]), np.array([1, 0, 0]), "ATO", normalize=False)
    array([0.8, 0.5, 0.8])
    """
    e = np.asarray(propensity, float)
    t = np.asarray(treatment, float)
    if estimand not in ESTIMANDS:
        raise ValueError(f"estimand must be one of {', '.join(ESTIMANDS)}, got {estimand!r}")
    if np.any((e <= 0) | (e >= 1)):
        raise PropensityError("weights: propensity of exactly 0 or 1; the weights are undefined")
    if estimand == "ATO":
        w = t * (1 - e) + (1 - t) * e
    elif estimand == "ATE":
        w = t / e + (1 - t) / (1 - e)
    elif estimand == "ATT":
        w = t + (1 - t) * e / (1 - e)
    else:
        w = np.minimum(e, 1 - e) / (t * e + (1 - t) * (1 - e))
    return w / w.mean() if normalize else w


def weights_table(df: pd.DataFrame, model: PropensityModel, weights: np.ndarray) -> pd.DataFrame:
    """``tables/weights.csv`` rows: patient_id, propensity, weight (patient-level: audit only)."""
    return pd.DataFrame({ID: df[ID].to_numpy(), "propensity": model.propensity, "weight": weights})


def weight_summary(weights: np.ndarray, treatment: np.ndarray) -> pd.DataFrame:
    """Distribution of the normalised weights by arm (min, quartiles, max, sum)."""
    w = np.asarray(weights, float)
    t = np.asarray(treatment, float)
    rows = []
    for label, arm in (("MT only", 0.0), ("MT+RS", 1.0)):
        x = w[t == arm]
        q = np.quantile(x, [0, 0.25, 0.5, 0.75, 1])
        rows.append({"arm": label, "n": int(x.size), "min": q[0], "q1": q[1], "median": q[2],
                     "q3": q[3], "max": q[4], "sum": float(x.sum())})
    return pd.DataFrame(rows)
