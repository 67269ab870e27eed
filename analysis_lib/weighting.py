"""Propensity score and balancing weights (ANALYSIS.md §2).

The propensity model is an unpenalised logistic regression of the treatment on the linear
terms of the covariates, fitted by maximum likelihood as R's ``glm(family = binomial)``.
Weights for the four estimands are then normalised to mean 1 over the analysis sample.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .data import ID, TREATMENT
from .numerics import newton_glm, sigmoid, weighted_gram
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
    formula: str | None = None
    method: str = "logistic"

    @property
    def terms(self) -> tuple[str, ...]:
        """Columns of the model matrix other than the intercept."""
        return tuple(c for c in self.coefficients.index if c != "Intercept")

    def __repr__(self) -> str:
        p = self.propensity
        spec = f"formula {self.formula!r}" if self.formula else f"{len(self.covariates)} covariates"
        return (f"PropensityModel({self.method}, {spec}, n={p.size}, "
                f"propensity {p.min():.3f} to {p.max():.3f}"
                + (f", aliased: {', '.join(self.aliased)}" if self.aliased else "") + ")")


def design_matrix(df: pd.DataFrame, covariates: tuple[str, ...] | list[str] | None = None,
                  formula: str | None = None) -> pd.DataFrame:
    """The propensity model matrix: intercept plus the covariates as float columns (the model
    matrix of ``~ x1 + x2 ...``), or the model matrix of a formula (formulaic, treatment coding
    of factors as R's default contrasts)."""
    if formula is None:
        X = df[list(covariates)].astype(float)
        X.insert(0, "Intercept", 1.0)
        return X
    from formulaic import model_matrix

    X = pd.DataFrame(model_matrix(formula, _formula_frame(df, formula), na_action="raise"), copy=False).astype(float)
    X.index = df.index
    return X


def model_matrix(df: pd.DataFrame, covariates: tuple[str, ...] | list[str] | None = None,
                 formula: str | None = None) -> tuple[np.ndarray, list[str]]:
    """:func:`design_matrix` as ``(values, column names)``: the values of
    ``design_matrix(...).to_numpy()`` in the same column-major layout (so that every product
    with them is the same to the last bit), written column by column for covariates instead of
    through a frame (at n = 10^6 and 13 columns, 0.01 s against 0.05 s with the frame's copies)."""
    if formula is not None:
        X = design_matrix(df, covariates, formula)
        return X.to_numpy(), list(X.columns)
    values = np.empty((len(covariates) + 1, len(df))).T  # column-major, as pandas gives a float frame
    values[:, 0] = 1.0
    for j, c in enumerate(covariates, start=1):
        values[:, j] = df[c].to_numpy(float)
    return values, ["Intercept", *covariates]


def _formula_frame(df: pd.DataFrame, formula: str) -> pd.DataFrame:
    """The formula's variables, whole-number columns as integers (factor levels read 0, 1, not 0.0)."""
    out = df[list(ps_variables((), formula))].copy()
    for c in out.columns:
        x = out[c]
        if x.dtype.kind == "f" and x.notna().all() and np.all(np.floor(x) == x):
            out[c] = x.astype(np.int64)
    return out


def ps_variables(covariates: tuple[str, ...] | list[str], formula: str | None = None) -> tuple[str, ...]:
    """The data columns a propensity specification needs, in order of first appearance.

    For a formula, the names inside every factor expression that are neither called as
    functions nor modules (``age`` in ``bs(age, df=3)`` and in ``np.log(age)``, ``x`` in
    ``C(x)``); formulaic's own ``required_variables`` misses variables that appear only inside
    a transform.

    Examples
    --------
    >>> ps_variables((), "bs(age, df=3) + log(nihss) + C(m1_occlusion) + a:b")
    ('age', 'nihss', 'm1_occlusion', 'a', 'b')
    """
    if formula is None:
        return tuple(covariates)

    from formulaic import Formula

    names: list[str] = []
    for term in Formula(formula):
        for factor in term.factors:
            tree = ast.parse(str(factor.expr), mode="eval")
            called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
            called |= {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}  # np in np.log
            for node in ast.walk(tree):
                if isinstance(node, ast.Name) and id(node) not in called and node.id not in names:
                    names.append(node.id)
    return tuple(names)


def balance_variables(df: pd.DataFrame, covariates: tuple[str, ...] | list[str],
                      formula: str | None = None) -> pd.DataFrame:
    """The variables whose balance is reported, as cobalt does for a formula: one column per
    term of the model matrix (squares, spline bases and interactions as their own variables),
    every level of a factor, no intercept. Without a formula: the covariates themselves."""
    if formula is None:
        return df[list(covariates)].astype(float)
    from formulaic import model_matrix

    X = pd.DataFrame(model_matrix(formula, _formula_frame(df, formula), na_action="raise", ensure_full_rank=False),
                     copy=False)
    X.index = df.index
    return X.drop(columns=[c for c in X.columns if c == "Intercept"]).astype(float)


def aliased_columns(X: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    """Columns that are (numerically) linear combinations of earlier columns.

    Mirrors R's ``lm``/``glm`` (LINPACK ``dqrdc2`` with tolerance 1e-7): a column whose residual
    norm, after projection on the earlier columns, is below ``tol`` times its own norm is aliased
    (R reports its coefficient as NA). The residual norms are the diagonal of ``R`` in the QR
    decomposition without pivoting, so one decomposition serves all columns.

    Those norms are first read from the Cholesky factor of ``X'X`` (:func:`weighted_gram`, 20
    times faster than the QR at n = 10^6): when every column keeps more than 1e-4 of its norm,
    far above the rounding of ``X'X``, nothing is aliased; otherwise the QR decides.
    """
    X = np.asarray(X, float)
    gram = weighted_gram(X)
    scale = np.sqrt(np.diag(gram))
    if np.all(scale > 0):
        try:
            if np.all(np.diag(np.linalg.cholesky(gram)) > 1e-4 * scale):
                return np.zeros(X.shape[1], bool)
        except np.linalg.LinAlgError:
            pass
    norms = np.linalg.norm(X, axis=0)
    R = np.linalg.qr(X, mode="r")
    resid = np.abs(np.diag(R))
    return (norms == 0) | (resid < tol * np.where(norms > 0, norms, 1.0))


def fit_propensity(df: pd.DataFrame, covariates: tuple[str, ...] | list[str] | None = None,
                   treatment: str = TREATMENT, formula: str | None = None, method: str = "logistic",
                   estimand: str = "ATE", constant: str = "refuse", start: pd.Series | None = None) -> PropensityModel:
    """Propensity model ``treatment ~ covariates`` (or ``~ formula``).

    Parameters
    ----------
    df : DataFrame
        Analysis sample: complete on ``treatment`` and the propensity variables.
    covariates : sequence of str
        Linear terms (ANALYSIS.md §2); ignored when ``formula`` is given.
    formula : str, optional
        Right-hand side in formulaic syntax (``I(x**2)``, ``bs(x, df=3)``, ``C(x)``, ``x:z``).
    method : {"logistic", "cbps"}
        Maximum likelihood, or the just-identified covariate balancing propensity score
        (:func:`cbps`) starting from the maximum-likelihood fit.
    estimand : str
        For CBPS: ``"ATT"`` balances the controls to the treated, anything else the ATE.
    constant : {"refuse", "drop"}
        A term that takes one value for every row: refused with a message (the analysis sample),
        or dropped as aliased, as R's ``glm`` reports it NA (a subgroup's own model).
    start : Series, optional
        Coefficients by term (a previous fit of the same terms, as ``coefficients``) from which
        Newton's method starts: the same fit in fewer steps. Ignored unless it has a finite
        coefficient for every fitted term; a fit that fails from there is repeated from the
        usual start (whose failure, if any, is the one reported).

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
    Newton's method (:func:`~analysis_lib.numerics.newton_glm`, the same iterations as R's IRLS
    for the logit link) until the largest step is below 1e-12 relative, far tighter than R's
    default ``epsilon = 1e-8``, so that both agree to far below 1e-6 (tests compare with R and
    with statsmodels' ``GLM``).
    """
    y = df[treatment].to_numpy(float)
    if y.size == 0 or y.min() == y.max():  # one value (no sort of 10^6 values)
        raise PropensityError(f"propensity model: '{treatment}' takes a single value; both arms are needed")
    needed = ps_variables(covariates or (), formula)
    absent = [c for c in needed if c not in df.columns]
    if absent:
        raise PropensityError(f"propensity model: no column {', '.join(absent)} in the data")
    if df[list(needed)].isna().any().any():
        bad = [c for c in needed if df[c].isna().any()]
        raise PropensityError(f"propensity model: missing values in {', '.join(bad)}; use the analysis sample")
    Xv, names = model_matrix(df, covariates, formula)
    _check_estimable(Xv, names, formula, refuse_constant=constant == "refuse")
    alias = aliased_columns(Xv)
    kept = [c for c, a in zip(names, alias) if not a]
    Xk = Xv if not alias.any() else np.asfortranarray(Xv[:, ~alias])
    beta0 = None if start is None else start.reindex(kept).to_numpy(float)
    beta, p, iterations, converged, extreme = logistic_ml(Xk, y, beta0)
    if extreme.any() or not converged:  # separation: a clear message, never a silent fit
        raise PropensityError(_separation_message(df, needed, treatment, extreme))
    if method == "cbps":
        beta, iterations = cbps(Xk, y, beta, "ATT" if estimand == "ATT" else "ATE")
        p = sigmoid(Xk @ beta)
        if np.any((p < SEPARATION_TOL) | (p > 1 - SEPARATION_TOL)):
            raise PropensityError("propensity model (CBPS): fitted propensities of 0 or 1; "
                                  "the balance conditions cannot be met with these covariates")
    elif method != "logistic":
        raise ValueError(f"method must be 'logistic' or 'cbps', got {method!r}")
    coef = pd.Series(np.nan, index=names)
    coef[kept] = beta
    return PropensityModel(covariates=tuple(needed), coefficients=coef, propensity=p, iterations=iterations,
                           aliased=tuple(c for c, a in zip(names, alias) if a), formula=formula, method=method)


def _check_estimable(X: np.ndarray, names: list[str], formula: str | None, refuse_constant: bool = True) -> None:
    """Refuse, in one line, a model the data cannot carry: a term that takes one value for every
    patient (R's glm reports it NA; its balance would be 0/0), or no more patients than terms.
    ``X``: the model matrix, columns ``names``."""
    parameter = "ps_formula" if formula is not None else "ps_covariates"
    kind = "term" if formula is not None else "covariate"
    terms = [j for j, c in enumerate(names) if c != "Intercept"]
    constant = [names[j] for j in terms if X[:, j].min() == X[:, j].max()] if len(X) else []
    if constant and refuse_constant:
        c = constant[0]
        raise PropensityError(f"propensity model: {kind} '{c}' takes the single value {X[0, names.index(c)]:g} for all "
                              f"{len(X)} patients of the analysis sample, so its effect cannot be estimated (R reports "
                              f"NA) nor its balance assessed; remove it (parameter {parameter})")
    if len(X) <= X.shape[1]:
        raise PropensityError(f"propensity model: {len(X)} patients for {X.shape[1]} terms (the intercept and "
                              f"{X.shape[1] - 1} {kind}s); it needs more patients than terms: use fewer {kind}s "
                              f"(parameter {parameter}) or more patients")


def cbps(X: np.ndarray, t: np.ndarray, start: np.ndarray, estimand: str = "ATE",
         tol: float = 1e-12, max_iter: int = 100) -> tuple[np.ndarray, int]:
    """Just-identified covariate balancing propensity score (Imai & Ratkovic 2014).

    Solves the balance conditions ``g(beta) = X' r(beta) = 0`` exactly, with
    ``r_i = t_i / e_i - (1 - t_i) / (1 - e_i)`` for the ATE (inverse-probability weighted
    covariate sums equal in both arms) or ``r_i = t_i - (1 - t_i) e_i / (1 - e_i)`` for the ATT
    (weighted controls match the treated), ``e = logistic(X beta)``. The Jacobian
    ``-X' diag(d) X`` with ``d = t (1 - e) / e + (1 - t) e / (1 - e)`` (ATE) or
    ``(1 - t) e / (1 - e)`` (ATT) is negative definite, so Newton's method with step halving
    from the maximum-likelihood fit converges to the unique root. As the intercept is among the
    columns, the weighted means of every column are then equal across arms.

    Returns ``(beta, iterations)``.
    """
    beta = np.asarray(start, float).copy()
    n = X.shape[0]
    scale = np.abs(X).mean(axis=0)

    def parts(b):
        e = sigmoid(X @ b)
        if estimand == "ATT":
            r = t - (1 - t) * e / (1 - e)
            d = (1 - t) * e / (1 - e)
        else:
            r = t / e - (1 - t) / (1 - e)
            d = t * (1 - e) / e + (1 - t) * e / (1 - e)
        return X.T @ r / n, d

    g, d = parts(beta)
    for it in range(1, max_iter + 1):
        J = -(X.T @ (d[:, None] * X)) / n
        step = np.linalg.solve(J, -g)
        size = 1.0
        for _ in range(50):
            g_new, d_new = parts(beta + size * step)
            if np.all(np.isfinite(g_new)) and np.max(np.abs(g_new) / scale) < np.max(np.abs(g) / scale):
                break
            size /= 2
        beta = beta + size * step
        g, d = g_new, d_new
        if np.max(np.abs(g) / scale) < tol:
            return beta, it
    raise PropensityError(f"propensity model (CBPS): the balance conditions were not solved in {max_iter} "
                          "iterations; use ps_method logistic or fewer covariates")


def logistic_ml(X: np.ndarray, y: np.ndarray, start: np.ndarray | None):
    """:func:`~analysis_lib.numerics.newton_glm` for the logit link from ``start`` (when finite),
    repeated from the usual start when that fit fails (so that a failure, and its message, are
    those of the usual start). Returns ``(beta, p, iterations, converged, extreme)``, ``extreme``
    marking fitted propensities within ``SEPARATION_TOL`` of 0 or 1."""
    if start is not None and not np.all(np.isfinite(start)):
        start = None
    beta, p, iterations, converged = newton_glm(X, y, family="binomial", start=start)
    converged = converged and bool(np.all(np.isfinite(beta)))
    extreme = (p < SEPARATION_TOL) | (p > 1 - SEPARATION_TOL)
    if start is not None and (extreme.any() or not converged):
        return logistic_ml(X, y, None)
    return beta, p, iterations, converged, extreme


def _separation_message(df: pd.DataFrame, covariates, treatment: str, extreme: np.ndarray) -> str:
    t = df[treatment].to_numpy(float)
    culprits = []
    for c in covariates:
        x = df[c].to_numpy(float)
        x1, x0 = x[t == 1], x[t == 0]
        if x1.max() < x0.min() or x0.max() < x1.min():
            culprits.append(f"'{c}' alone separates the arms")
            continue
        levels = np.unique(x)
        for level in levels if levels.size <= 2 else ():
            arms = np.unique(t[x == level])
            if arms.size == 1:
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
    w = estimand_weights(e, t, estimand)
    return w / w.mean() if normalize else w


def estimand_weights(e: np.ndarray, t: np.ndarray, estimand: str) -> np.ndarray:
    """The weight formulas of :func:`compute_weights`, element-wise on arrays of any shape
    (replicates of the resampling in rows), without checks or normalisation."""
    if estimand == "ATO":
        return t * (1 - e) + (1 - t) * e
    if estimand == "ATE":
        return t / e + (1 - t) / (1 - e)
    if estimand == "ATT":
        return t + (1 - t) * e / (1 - e)
    if estimand == "ATM":
        return np.minimum(e, 1 - e) / (t * e + (1 - t) * (1 - e))
    raise ValueError(f"estimand must be ATO, ATE, ATT or ATM, got {estimand!r}")


def weights_table(df: pd.DataFrame, model: PropensityModel, weights: np.ndarray) -> pd.DataFrame:
    """``private/weights.csv`` rows: patient_id, propensity, weight (patient-level: audit only)."""
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
