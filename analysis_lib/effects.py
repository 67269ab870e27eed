"""Weighted effect models with sandwich variances (ANALYSIS.md §4, Table 2).

Two paths compute the same statistics:

* :func:`fit_weighted` fits any design matrix: weighted least squares (``lm(..., weights = w)``)
  or the modified Poisson model (``glm(..., family = poisson, weights = w)``), and the
  heteroskedasticity-consistent covariance of :func:`hc_vcov`, a transcription of
  ``sandwich::vcovHC``. The fits are written with NumPy (:func:`newton_glm`, QR least squares):
  importing statsmodels and ``scipy.stats`` costs two seconds in every notebook kernel, more
  than all the statistics of a build; the tests pin these fits to statsmodels and to R.
* :func:`fit_cells` is the closed form of the same models when the design is saturated in a
  few cells, which is the case of every Table 2 and cutoff-sweep model (``y ~ t`` and
  ``y ~ t * high``): the weighted least-squares and Poisson maximum-likelihood fits are then
  the weighted cell means, exactly, without iterations. It is exact where the iterative fit
  diverges (a cell without events, where ``glm`` drifts to a huge coefficient) and fast
  enough for resampling; tests pin it to :func:`fit_weighted` and to R.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .augmented import augmented_effect
from .data import TABLE2_OUTCOMES, TREATMENT, measure_for
from .mestimation import METHOD, over_all_rows, propensity_estimation, stacked_vcov
from .numerics import critical_value, hc_omega, hc_vcov, newton_glm, two_sided_p, wald  # noqa: F401
from .weighting import compute_weights, design_matrix, fit_propensity, ps_variables

TABLE2_COLUMNS = ["outcome", "analysis", "subgroup", "measure", "estimate", "ci_lower", "ci_upper",
                  "p_value", "p_interaction", "n", "note"]
ARM_LABEL = {0: "MT-only", 1: "MT+RS"}


@dataclass(frozen=True)
class ModelFit:
    """A weighted linear or modified-Poisson fit with its sandwich covariance."""

    names: tuple[str, ...]
    coef: np.ndarray
    vcov: np.ndarray = field(repr=False)
    family: str
    hc_type: str
    n: int
    df_resid: int

    def combination(self, L: np.ndarray | list[float]) -> tuple[float, float]:
        """Estimate and standard error of the linear combination ``L' beta``."""
        L = np.asarray(L, float)
        return float(L @ self.coef), float(np.sqrt(L @ self.vcov @ L))

    def table(self, conf_level: float = 0.95) -> pd.DataFrame:
        """Coefficients as ``lmtest::coeftest`` prints them, with ``coefci`` intervals."""
        se = np.sqrt(np.diag(self.vcov))
        rows = [wald(b, s, self.df_resid if self.family == "gaussian" else None, conf_level)
                for b, s in zip(self.coef, se)]
        return pd.DataFrame({"term": self.names, "estimate": self.coef, "std_error": se,
                             "ci_lower": [r[1] for r in rows], "ci_upper": [r[2] for r in rows],
                             "p_value": [r[3] for r in rows]})


def fit_weighted(X: pd.DataFrame, y: np.ndarray, w: np.ndarray, family: str = "gaussian",
                 hc_type: str = "HC0") -> ModelFit:
    """Fit ``y ~ X`` with weights ``w`` and sandwich covariance.

    ``family="gaussian"``: weighted least squares as ``lm(y ~ X, weights = w)``;
    ``family="poisson"``: log-link Poisson quasi-likelihood with ``w`` as prior (variance)
    weights, as ``glm(y ~ X, family = poisson, weights = w)`` (the modified Poisson model of
    Zou 2004 when ``y`` is binary). QR least squares or :func:`newton_glm` fit;
    :func:`hc_vcov` gives the covariance.
    """
    Xv = np.asarray(X, float)
    y = np.asarray(y, float)
    w = np.asarray(w, float)
    names = tuple(X.columns) if isinstance(X, pd.DataFrame) else tuple(f"x{j}" for j in range(Xv.shape[1]))
    if family == "gaussian":
        sw = np.sqrt(w)
        beta = np.linalg.lstsq(Xv * sw[:, None], y * sw, rcond=None)[0]
        work, score = w, w * (y - Xv @ beta)
    elif family == "poisson":
        beta, mu, _, _ = newton_glm(Xv, y, w, "poisson", tol=1e-13, max_iter=200)
        work, score = w * mu, w * (y - mu)
    else:
        raise ValueError(f"family must be 'gaussian' or 'poisson', got {family!r}")
    V = hc_vcov(Xv, work, score, hc_type)
    n, k = Xv.shape
    return ModelFit(names=names, coef=beta, vcov=V, family=family, hc_type=hc_type, n=n, df_resid=n - k)


# ------------------------------------------------------------------- saturated cells
@dataclass(frozen=True)
class CellFit:
    """Closed-form fit of a model saturated in ``k`` cells (see the module docstring).

    For cell ``c`` with weights ``w_i``, ``W_c = sum w_i`` and weighted mean
    ``m_c = sum w_i y_i / W_c``, the link-scale coefficient is ``m_c`` (identity) or
    ``log m_c`` (log). The sandwich is ``A^-1 M A^-1`` with ``A = diag(W_c)`` (identity) or
    ``diag(m_c W_c)`` (log) and, for the HC types, the diagonal meat
    ``M_cc = sum_i omega_i w_i^2 (y_i - m_c)^2`` (``omega`` as :func:`hc_omega`, hat values
    ``h_i = w_i / W_c``; HC1 uses ``n`` rows and ``k`` non-empty cells). With a ``cluster``,
    the meat is ``G / (G - 1) S'S`` with ``S[g, c] = sum_{i in g, c} w_i (y_i - m_c)``, as
    ``sandwich::vcovCL(type = "HC0", cadjust = TRUE)``; cells are then correlated.
    """

    family: str
    hc_type: str
    count: np.ndarray
    events: np.ndarray
    sum_w: np.ndarray
    mean: np.ndarray
    coef: np.ndarray
    vcov: np.ndarray
    n: int
    rank: int

    @property
    def var(self) -> np.ndarray:
        return np.diag(self.vcov)

    @property
    def df_resid(self) -> int:
        return self.n - self.rank

    def contrast(self, plus: list[int], minus: list[int]) -> tuple[float, float]:
        """Estimate and standard error of ``sum coef[plus] - sum coef[minus]``."""
        L = np.zeros(self.coef.size)
        L[plus] += 1.0
        L[minus] -= 1.0
        used = L != 0
        est = float(L[used] @ self.coef[used])
        V = self.vcov[np.ix_(used, used)]
        return est, float(np.sqrt(L[used] @ V @ L[used]))


def fit_cells(y: np.ndarray, w: np.ndarray, cell: np.ndarray, n_cells: int, family: str = "gaussian",
              hc_type: str = "HC0", cluster: np.ndarray | None = None) -> CellFit:
    """Weighted cell means and their sandwich covariance (see :class:`CellFit`).

    ``cluster`` (labels, one per row) switches to the center-clustered sandwich; ``hc_type``
    is then reported as ``"CL"``.
    """
    return fit_cells_hc(y, w, cell, n_cells, family, (hc_type,), cluster)[hc_type]


def fit_cells_hc(y: np.ndarray, w: np.ndarray, cell: np.ndarray, n_cells: int, family: str = "gaussian",
                 hc_types: tuple[str, ...] = ("HC0",), cluster: np.ndarray | None = None) -> dict[str, CellFit]:
    """:func:`fit_cells` for several HC types at once, sharing the sums (the multiverse uses all four)."""
    y = np.asarray(y, float)
    w = np.asarray(w, float)
    cell = np.asarray(cell, int)
    count = np.bincount(cell, minlength=n_cells).astype(float)
    sum_w = np.bincount(cell, weights=w, minlength=n_cells)
    sum_wy = np.bincount(cell, weights=w * y, minlength=n_cells)
    events = np.bincount(cell[y != 0], minlength=n_cells).astype(float)  # counts: exact, as sums of ones were
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(count > 0, sum_wy / sum_w, np.nan)
    n, rank = y.size, int((count > 0).sum())
    resid = y - mean[cell]
    with np.errstate(divide="ignore", invalid="ignore"):
        if family == "gaussian":
            coef = mean
            bread = 1.0 / sum_w
        elif family == "poisson":
            coef = np.where(mean > 0, np.log(mean), -np.inf)
            bread = np.where(mean > 0, 1.0 / (mean * sum_w), np.nan)
        else:
            raise ValueError(f"family must be 'gaussian' or 'poisson', got {family!r}")
    bread = np.where(count > 0, bread, np.nan)
    meats = {}
    if cluster is None:
        # hat values only where HC2 or HC3 use them (two passes over the rows saved in HC0's fits)
        hat = w / sum_w[cell] if {"HC2", "HC3"} & set(hc_types) else None
        score = w * resid
        squared = score ** 2  # once for all the HC types
        for hc in hc_types:
            omega = hc_omega(score, hat, n, rank, hc, squared)
            meats[hc] = np.diag(np.bincount(cell, weights=omega, minlength=n_cells))
    else:
        index, groups = pd.factorize(np.asarray(cluster))  # hashing: fast for many string labels
        G = groups.size
        S = np.zeros((G, n_cells))
        np.add.at(S, (index, cell), w * np.nan_to_num(resid))
        meats = {hc: S.T @ S * G / (G - 1) for hc in hc_types}
    fits = {}
    for hc, meat in meats.items():
        with np.errstate(invalid="ignore"):
            vcov = bread[:, None] * meat * bread[None, :]
        fits[hc] = CellFit(family=family, hc_type="CL" if cluster is not None else hc, count=count, events=events,
                           sum_w=sum_w, mean=mean, coef=coef, vcov=vcov, n=n, rank=rank)
    return fits


def fit_cells_m(y: np.ndarray, w: np.ndarray, cell: np.ndarray, n_cells: int, family: str, ps,
                keep: np.ndarray | None = None) -> CellFit:
    """:func:`fit_cells` with the M-estimation covariance that accounts for the estimated
    propensity score (:mod:`analysis_lib.mestimation`; ``ps`` a
    :class:`~analysis_lib.mestimation.PropensityEstimation` of the analysis sample, ``keep`` the
    rows with a known outcome). Cells that are empty (or, for the log link, without events) get
    no variance; the others are estimated jointly with the propensity model."""

    base = fit_cells(y, w, cell, n_cells, family, "HC0")
    y = np.asarray(y, float)
    w = np.asarray(w, float)
    cell = np.asarray(cell, int)
    ok = (base.count > 0) & np.isfinite(base.var) & (base.mean > 0 if family == "poisson" else True)
    idx = np.flatnonzero(ok)
    vcov = np.full((n_cells, n_cells), np.nan)
    if idx.size:
        resid = y - np.where(base.count > 0, base.mean, 0.0)[cell]
        onehot = (cell[:, None] == idx[None, :]).astype(float)
        psi = onehot * (w * resid)[:, None]
        jac = over_all_rows(onehot * resid[:, None], keep).T @ ps.dweights  # sum_i 1[cell_i = c] r_i dw_i
        work = base.sum_w if family == "gaussian" else base.mean * base.sum_w
        a_bb_inv = np.diag(1.0 / work[idx])
        vcov[np.ix_(idx, idx)] = stacked_vcov(psi, jac, a_bb_inv, ps, keep)
    return dataclasses.replace(base, hc_type=METHOD, vcov=vcov)


# --------------------------------------------------------------------- effect rows
def _where(subgroup: str, cutoff: float | None) -> str:
    if subgroup == "low":
        return f" with stenosis ≤ {cutoff:g} %"
    if subgroup == "high":
        return f" with stenosis > {cutoff:g} %"
    return ""


def _cell_problem(fit: CellFit, control: int, treated: int, where: str) -> str:
    """Why the contrast treated - control cannot be estimated ('' if it can)."""
    for c, arm in ((control, 0), (treated, 1)):
        if fit.count[c] == 0:
            return f"not estimable: no {ARM_LABEL[arm]} patients with a known outcome{where}"
    if fit.family == "poisson":
        empty = [ARM_LABEL[a] for c, a in ((control, 0), (treated, 1)) if fit.mean[c] == 0]
        if len(empty) == 2:
            return f"RR not estimable: no events in either arm{where}"
        if empty:
            return f"RR not estimable: no events in the {empty[0]} arm{where}"
    if not (np.isfinite(fit.var[control]) and np.isfinite(fit.var[treated])):
        return (f"CI not estimable: {fit.hc_type} variance undefined{where} "
                "(hat value 1: a single patient in an arm)")
    if fit.var[control] + fit.var[treated] == 0:
        return f"CI not estimable: no variation in the outcome{where}"
    return ""


def _row(fit: CellFit, plus: list[int], minus: list[int], problem: str, conf_level: float) -> dict:
    """Estimate, interval and p on the natural scale, plus the link-scale coefficient (``coef``:
    difference in means or log RR), its standard error and the t degrees of freedom (``inf``
    for the Poisson model)."""
    df = fit.df_resid if fit.family == "gaussian" and fit.hc_type != "M-estimation" else None
    extra = {"df_resid": float(df) if df is not None else np.inf}
    if problem and not problem.startswith("CI not estimable"):
        return {"estimate": np.nan, "ci_lower": np.nan, "ci_upper": np.nan, "p_value": np.nan,
                "coef": np.nan, "std_error": np.nan, **extra}
    est, se = fit.contrast(plus, minus)
    b, lo, hi, p = wald(est, se, df, conf_level) if not problem else (est, np.nan, np.nan, np.nan)
    if fit.family == "poisson":
        b, lo, hi = np.exp(b), np.exp(lo), np.exp(hi)
    return {"estimate": b, "ci_lower": lo, "ci_upper": hi, "p_value": p, "coef": est,
            "std_error": se if not problem else np.nan, **extra}


def estimate_effect(df: pd.DataFrame, outcome: str, weights: np.ndarray | None = None,
                    high: np.ndarray | None = None, cutoff: float | None = None,
                    treatment: str = TREATMENT, measure: str | None = None, hc_type: str = "HC0",
                    conf_level: float = 0.95, cluster: np.ndarray | None = None,
                    ps=None) -> pd.DataFrame:
    """Effect of the treatment on one outcome, overall or by a binary modifier.

    Parameters
    ----------
    df : DataFrame
        Analysis sample; rows with a missing outcome are dropped here, keeping the weights of
        the full sample (ANALYSIS.md §1).
    outcome : str
        Outcome column.
    weights : array, optional
        Balancing weights aligned with ``df``; ``None`` is the unadjusted analysis (unit weights).
    high : bool array, optional
        Modifier (``stenosis_pct > cutoff``). Without it: one row, ``overall``, from
        ``y ~ t``. With it: rows ``low`` and ``high`` from ``y ~ t * high``, subgroup effects
        ``b_t`` and ``b_t + b_t:high`` and p-interaction the Wald p of ``b_t:high``.
    cutoff : float, optional
        Only used in notes.
    measure : {"ATE", "RR"}, optional
        Difference in means by weighted least squares (t, residual df) or relative risk by
        modified Poisson (normal); default from the outcome values.
    cluster : array, optional
        Cluster labels (centers) aligned with ``df``: center-clustered sandwich instead of HC.
    ps : PropensityEstimation, optional
        With ``weights``: the M-estimation covariance that accounts for the estimated propensity
        score (:func:`~analysis_lib.mestimation.propensity_estimation` of the model behind the
        weights, on the rows of ``df``), with normal intervals and p as WeightIt; ``hc_type``
        is then not used.

    Returns
    -------
    DataFrame
        ``subgroup, measure, estimate, ci_lower, ci_upper, p_value, p_interaction, n, note`` and,
        for pooling and resampling, ``coef`` (difference in means or log RR), ``std_error`` and
        ``df_resid``.
    """
    y_all = df[outcome].to_numpy(float)
    keep = ~np.isnan(y_all)
    y = y_all[keep]
    if y.size == 0:  # an outcome nobody has: every row says so (not "no patients in an arm")
        return _no_outcome(outcome, measure, high is None)
    t = df[treatment].to_numpy(int)[keep]
    w = np.ones(y.size) if weights is None else np.asarray(weights, float)[keep]
    cl = None if cluster is None else np.asarray(cluster)[keep]
    measure = measure or measure_for(y)
    family = "gaussian" if measure == "ATE" else "poisson"
    use_m = ps is not None and weights is not None

    def fit_model(cell: np.ndarray, n_cells: int) -> CellFit:
        if use_m:
            return fit_cells_m(y, w, cell, n_cells, family, ps, keep)
        return fit_cells(y, w, cell, n_cells, family, hc_type, cl)

    if high is None:
        fit = fit_model(t, 2)
        problem = _cell_problem(fit, 0, 1, "")
        row = {"subgroup": "overall", "measure": measure, **_row(fit, [1], [0], problem, conf_level),
               "p_interaction": np.nan, "n": int(y.size), "note": problem}
        return pd.DataFrame([row])
    h = np.asarray(high, bool)[keep]
    fit = fit_model(t + 2 * h.astype(int), 4)  # cells 0 control-low, 1 treated-low, 2 control-high, 3 treated-high
    df_t = fit.df_resid if family == "gaussian" and not use_m else None
    return _subgroup_rows(fit, h, measure, cutoff, df_t, conf_level)


def _no_outcome(outcome: str, measure: str | None, overall: bool) -> pd.DataFrame:
    """The rows of an outcome that no patient has: no number, and a note that says so."""
    note = f"not estimable: no patient has a known {outcome}"
    empty = {"estimate": np.nan, "ci_lower": np.nan, "ci_upper": np.nan, "p_value": np.nan, "coef": np.nan,
             "std_error": np.nan, "df_resid": np.nan, "p_interaction": np.nan, "n": 0, "note": note}
    return pd.DataFrame([{"subgroup": name, "measure": measure or "RR", **empty}
                         for name in (["overall"] if overall else ["low", "high"])])


def _subgroup_rows(fit: CellFit, h: np.ndarray, measure: str, cutoff: float | None, df_t: float | None,
                   conf_level: float) -> pd.DataFrame:
    """The ``low`` and ``high`` rows of a fit saturated in the four treatment x subgroup cells:
    subgroup contrasts, p-interaction (the Wald p of the difference) and notes."""
    problems = {"low": _cell_problem(fit, 0, 1, _where("low", cutoff)),
                "high": _cell_problem(fit, 2, 3, _where("high", cutoff))}
    if problems["low"] or problems["high"]:
        p_int = np.nan  # the interaction needs all four cells with estimable variances
    else:
        est, se = fit.contrast([3, 0], [2, 1])
        p_int = wald(est, se, df_t, conf_level)[3]
    rows = []
    for name, plus, minus, mask in (("low", [1], [0], ~h), ("high", [3], [2], h)):
        note = problems[name]
        other = problems["high" if name == "low" else "low"]
        if not note and other:
            note = f"p-interaction not estimable ({other.split(': ', 1)[-1]})"
        rows.append({"subgroup": name, "measure": measure,
                     **_row(fit, plus, minus, problems[name], conf_level),
                     "p_interaction": p_int, "n": int(mask.sum()), "note": note})
    return pd.DataFrame(rows)


def effect_rows(df: pd.DataFrame, outcomes: tuple[str, ...], weights: np.ndarray | None, high: np.ndarray,
                cutoff: float, **options) -> pd.DataFrame:
    """:func:`estimate_effect` for each outcome, overall then by subgroup (``high``), with an
    ``outcome`` column first; ``options`` are passed on (treatment, hc_type, conf_level, cluster, ps).
    ``subgroup_weights`` (and ``subgroup_ps``, their M-estimation) among the options replace
    ``weights`` (and ``ps``) in the subgroup rows: weights from one propensity model per
    subgroup (:mod:`analysis_lib.subgroups`)."""
    sub_w = options.pop("subgroup_weights", None)
    sub_ps = options.pop("subgroup_ps", None)
    parts = []
    for outcome in outcomes:
        for h in (None, high):
            if h is not None and sub_w is not None and weights is not None:  # within-subgroup weights
                part = estimate_effect(df, outcome, sub_w, high=h, cutoff=cutoff, **{**options, "ps": sub_ps})
            else:
                part = estimate_effect(df, outcome, weights, high=h, cutoff=cutoff, **options)
            part.insert(0, "outcome", outcome)
            parts.append(part)
    return pd.concat(parts, ignore_index=True)


def table2(df: pd.DataFrame, weights: np.ndarray, cutoff: float, hc_type: str = "HC0",
           conf_level: float = 0.95, outcomes: tuple[str, ...] = TABLE2_OUTCOMES,
           modifier: str = "stenosis_pct", treatment: str = TREATMENT, ps=None, full: bool = False,
           subgroup_weights: np.ndarray | None = None, subgroup_ps=None) -> pd.DataFrame:
    """Table 2: every outcome, unadjusted and weighted, overall and by stenosis subgroup.

    ``high = modifier > cutoff`` (strictly greater; ``low`` is ``<=``), ANALYSIS.md §4.
    ``ps`` switches the weighted rows to the M-estimation variance (:func:`estimate_effect`).
    ``subgroup_weights`` (with ``subgroup_ps``, their M-estimation) weight the weighted subgroup
    rows instead of ``weights`` (ANALYSIS.md §11); the overall rows keep ``weights``.
    Returns the columns of ``tables/table2.csv`` (``full``: also ``coef``, ``std_error`` and
    ``df_resid`` of :func:`estimate_effect`).
    """
    high = df[modifier].to_numpy(float) > cutoff
    parts = []
    for outcome in outcomes:
        for analysis, w in (("unadjusted", None), ("iptw", weights)):
            part = effect_rows(df, (outcome,), w, high, cutoff, treatment=treatment, hc_type=hc_type,
                               conf_level=conf_level, ps=ps if w is not None else None,
                               subgroup_weights=subgroup_weights, subgroup_ps=subgroup_ps)
            part.insert(1, "analysis", analysis)
            parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    return out[TABLE2_COLUMNS + ["coef", "std_error", "df_resid"]] if full else out[TABLE2_COLUMNS]


def weighted_effect(df: pd.DataFrame, treatment: str, outcome: str, covariates: list[str] | None = None,
                    formula: str | None = None, estimand: str = "ATO", variance: str = "robust",
                    hc_type: str = "HC0", conf_level: float = 0.95, measure: str | None = None,
                    outcome_formula: str | None = None) -> pd.DataFrame:
    """The whole weighted analysis on any data frame: a logistic propensity model of ``treatment``
    (0/1) on ``covariates`` or a ``formula``, ``estimand`` weights, and the effect on ``outcome``
    (difference in means, or RR for a 0/1 outcome) with the ``robust`` sandwich (weights as known,
    ``hc_type``) or by ``m_estimation`` (propensity score as estimated). Rows with a missing
    covariate are dropped first; returns the row of :func:`estimate_effect`. With an
    ``outcome_formula``, the augmented (doubly robust) estimator of :mod:`analysis_lib.augmented`
    instead, with its M-estimation variance (``variance`` and ``hc_type`` are then not used).

    Examples
    --------
    The lalonde example of WeightIt (tests/test_mestimation.py): ``weighted_effect(lalonde, "treat",
    "re78", formula="age + educ + nodegree + married + C(race) + re74 + re75", estimand="ATT",
    variance="m_estimation")`` gives 1214.1 with standard error 798.2.
    """
    needed = [treatment, *ps_variables(covariates or (), formula)]
    if outcome_formula is not None:
        return _augmented_row(df, treatment, outcome, covariates, formula, estimand, conf_level, measure,
                              outcome_formula, needed)
    data = df.dropna(subset=needed).reset_index(drop=True)
    model = fit_propensity(data, covariates, treatment=treatment, formula=formula)
    w = compute_weights(model.propensity, data[treatment].to_numpy(), estimand)
    if variance not in ("robust", "m_estimation"):
        raise ValueError(f"variance must be 'robust' or 'm_estimation', got {variance!r}")
    ps = propensity_estimation(data, model, estimand, treatment=treatment) if variance == "m_estimation" else None
    return estimate_effect(data, outcome, w, treatment=treatment, measure=measure, hc_type=hc_type,
                           conf_level=conf_level, ps=ps)


def _augmented_row(df, treatment, outcome, covariates, formula, estimand, conf_level, measure, outcome_formula,
                   needed) -> pd.DataFrame:
    """:func:`weighted_effect` with an outcome formula: the augmented estimator on the rows
    complete on the treatment, the outcome and both models' variables."""
    needed = [*needed, outcome, *ps_variables((), outcome_formula)]
    data = df.dropna(subset=list(dict.fromkeys(needed))).reset_index(drop=True)
    Z = design_matrix(data, covariates, formula).to_numpy(float)
    X = design_matrix(data, None, outcome_formula).to_numpy(float)
    y = data[outcome].to_numpy(float)
    measure = measure or measure_for(y)
    fit = augmented_effect(Z, data[treatment].to_numpy(float), X, y, estimand, measure == "RR")
    return pd.DataFrame([{"subgroup": "overall", "measure": measure, **fit.row(conf_level), "p_interaction": np.nan,
                          "n": len(data), "note": fit.note, "coef": fit.coef, "std_error": fit.std_error,
                          "df_resid": np.inf}])
