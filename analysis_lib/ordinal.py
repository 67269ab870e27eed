"""The ordinal shift analysis of the 90-day mRS (ANALYSIS.md §13): weighted proportional-odds
logistic regression, as R's ``MASS::polr(factor(mrs_90d) ~ t, weights = w)`` (and ``~ t * high``
for the subgroups), with the HC0 sandwich of the per-patient scores or, under ``variance
m_estimation``, the sandwich stacked with the propensity model (:mod:`analysis_lib.mestimation`).

The model (polr's parameterisation): ``logit P(Y <= j) = zeta_j - x'beta`` for the levels ``j``
observed except the last. The **common odds ratio** is ``exp(-beta_t)``: the odds of a lower (better)
mRS with MT+RS, so that > 1 favours stenting. Written here because statsmodels' ``OrderedModel``
takes no case weights and no sandwich; the fit is Newton's method on the analytic gradient and
Hessian of the weighted log-likelihood (tests: point estimates equal polr at 1e-6, the sandwich
equals one from numerical derivatives of the per-patient log-likelihood).

**Proportional odds.** A robust Brant test: for each dichotomy ``Y <= j`` the weighted log odds ratio
of the arms (``b_j``, the saturated logistic fit of that dichotomy), their joint HC0 covariance from
the per-patient influence functions, and the Wald test of ``b_0 = b_1 = ...`` (chi-square on the
number of dichotomies minus one). Dichotomies with no patient on one side in an arm are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .data import MODIFIER, TREATMENT
from .mestimation import stacked_vcov
from .numerics import critical_value, sigmoid, two_sided_p

ORDINAL_COLUMNS = ["analysis", "subgroup", "common_or", "ci_lower", "ci_upper", "p_value", "p_interaction",
                   "p_proportional_odds", "n", "note"]


@dataclass(frozen=True)
class PolrFit:
    """A weighted proportional-odds fit: cutpoints ``zeta`` and coefficients ``beta`` (polr's
    signs), the Hessian of the weighted log-likelihood and the per-patient scores (unweighted)."""

    zeta: np.ndarray
    beta: np.ndarray
    hessian: np.ndarray = field(repr=False)
    scores: np.ndarray = field(repr=False)
    weights: np.ndarray = field(repr=False)
    converged: bool

    @property
    def theta(self) -> np.ndarray:
        return np.concatenate([self.zeta, self.beta])

    def vcov(self, ps=None, keep: np.ndarray | None = None) -> np.ndarray:
        """HC0 sandwich ``H^-1 (sum w^2 s s') H^-1`` or, with ``ps``, the M-estimation sandwich
        stacked with the propensity model (``keep``: the rows of the analysis sample fitted)."""
        bread = np.linalg.inv(self.hessian)
        psi = self.scores * self.weights[:, None]
        if ps is None:
            return bread @ (psi.T @ psi) @ bread.T
        dw = ps.dweights if keep is None else ps.dweights[np.asarray(keep, bool)]
        return stacked_vcov(psi, self.scores.T @ dw, bread, ps, keep)


def _parts(theta: np.ndarray, y: np.ndarray, X: np.ndarray, n_cut: int):
    """Per patient: the log-likelihood, the derivatives of ``log p`` in the upper and lower
    arguments and the Jacobians of those arguments in ``theta``."""
    zeta, beta = theta[:n_cut], theta[n_cut:]
    eta = X @ beta
    n = y.size
    upper = np.where(y < n_cut, zeta[np.minimum(y, n_cut - 1)] - eta, np.inf)
    lower = np.where(y > 0, zeta[np.maximum(y - 1, 0)] - eta, -np.inf)
    Fu, Fl = sigmoid(upper), sigmoid(lower)
    fu, fl = Fu * (1 - Fu), Fl * (1 - Fl)
    p = np.clip(Fu - Fl, 1e-300, None)
    Ja = np.zeros((n, n_cut + X.shape[1]))
    Jb = np.zeros_like(Ja)
    rows = np.arange(n)
    has_u, has_l = y < n_cut, y > 0
    Ja[rows[has_u], y[has_u]] = 1.0
    Jb[rows[has_l], y[has_l] - 1] = 1.0
    Ja[has_u, n_cut:] = -X[has_u]
    Jb[has_l, n_cut:] = -X[has_l]
    return np.log(p), fu / p, -fl / p, (fu * (1 - 2 * Fu), fl * (1 - 2 * Fl), p), Ja, Jb


def loglik_terms(theta: np.ndarray, y: np.ndarray, X: np.ndarray, n_cut: int) -> np.ndarray:
    """Each patient's log-likelihood (unweighted), for the tests' numerical derivatives."""
    return _parts(theta, y, X, n_cut)[0]


def fit_polr(y: np.ndarray, X: np.ndarray, w: np.ndarray, tol: float = 1e-12, max_iter: int = 100) -> PolrFit:
    """Weighted proportional-odds fit of ``y`` (0, 1, ... consecutive level codes) on ``X`` (no
    intercept) by Newton's method with step halving, started at the marginal cutpoints."""
    y = np.asarray(y, int)
    X = np.asarray(X, float)
    w = np.asarray(w, float)
    n_cut = int(y.max())
    cum = np.cumsum(np.bincount(y, weights=w, minlength=n_cut + 1))[:-1] / w.sum()
    theta = np.concatenate([np.log(cum / (1 - cum)), np.zeros(X.shape[1])])

    def evaluate(th):
        logp, ga, gb, (fpa, fpb, p), Ja, Jb = _parts(th, y, X, n_cut)
        score = ga[:, None] * Ja + gb[:, None] * Jb
        haa, hbb, hab = fpa / p - ga ** 2, -fpb / p - gb ** 2, -ga * gb
        hess = ((w * haa)[:, None] * Ja).T @ Ja + ((w * hbb)[:, None] * Jb).T @ Jb
        cross = ((w * hab)[:, None] * Ja).T @ Jb
        return float(w @ logp), score, hess + cross + cross.T

    value, score, hess = evaluate(theta)
    converged = False
    for _ in range(max_iter):
        grad = w @ score
        try:
            step = np.linalg.solve(hess, -grad)
        except np.linalg.LinAlgError:  # a flat likelihood (no finite maximum): reported as not converged
            break
        scale = 1.0
        while True:
            trial = theta + scale * step
            if np.all(np.diff(trial[:n_cut]) > 0):
                new_value, new_score, new_hess = evaluate(trial)
                if new_value >= value - 1e-12 * abs(value) or scale < 1e-8:
                    break
            scale /= 2
        theta, value, score, hess = trial, new_value, new_score, new_hess
        if np.max(np.abs(scale * step)) < tol:
            converged = True
            break
    return PolrFit(zeta=theta[:n_cut], beta=theta[n_cut:], hessian=-hess, scores=score, weights=w,
                   converged=converged)


def proportional_odds_p(y: np.ndarray, t: np.ndarray, w: np.ndarray) -> float:
    """The robust Brant test of the module docstring for one treatment contrast (two arms)."""
    from scipy.stats import chi2

    levels = np.unique(y)
    b, influence = [], []
    arms = []  # each arm's rows, weights and outcomes, split once
    for arm, sign in ((1, 1.0), (0, -1.0)):
        a = t == arm
        arms.append((a, sign, w[a], y[a], w[a].sum()))
    for j in levels[:-1]:
        row, ok = np.zeros(y.size), True
        est = 0.0
        for a, sign, wa, ya, W in arms:
            below = (ya <= j).astype(float)
            P = float(wa @ below) / W if W > 0 else np.nan
            if not 0 < P < 1:
                ok = False
                break
            est += sign * np.log(P / (1 - P))
            row[a] = sign * wa * (below - P) / (W * P * (1 - P))
        if ok:
            b.append(est)
            influence.append(row)
    if len(b) < 2:
        return float("nan")
    b, L = np.array(b), np.array(influence)
    V = L @ L.T
    D = np.diff(np.eye(len(b)), axis=0)
    d = D @ b
    stat = float(d @ np.linalg.solve(D @ V @ D.T, d))
    return float(chi2.sf(stat, len(b) - 1))


def separated(y: np.ndarray, t: np.ndarray) -> str:
    """Why the common odds ratio of two arms is infinite, or "": with one binary covariate the
    proportional-odds likelihood has a finite maximum only if the arms' outcomes overlap (some
    MT+RS patient has a lower mRS than some MT-only patient, and vice versa); otherwise the
    coefficient runs to infinity (R's polr stops with non-finite values or warns)."""
    a, b = y[t == 1], y[t == 0]
    return _separation(a.min(), a.max(), b.min(), b.max())


def _separation(treated_min, treated_max, control_min, control_max) -> str:
    """:func:`separated` from the smallest and largest mRS of each arm."""
    if treated_min >= control_max:
        return "every MT+RS patient has a 90-day mRS at least as high as every MT-only patient"
    if control_min >= treated_max:
        return "every MT+RS patient has a 90-day mRS at most as high as every MT-only patient"
    return ""


def level_codes(y: np.ndarray) -> np.ndarray:
    """The consecutive codes of the observed levels of ``y`` (as the proportional-odds fits use them)."""
    return _coded(np.asarray(y, float))


def _coded(y: np.ndarray) -> np.ndarray:
    """Consecutive codes of the observed levels (polr drops the empty levels of the factor)."""
    if y.size and np.all((y >= 0) & (y <= 100) & (y == np.floor(y))):  # small whole numbers (the mRS): no sort
        whole = y.astype(np.intp)
        return (np.cumsum(np.bincount(whole) > 0) - 1)[whole]
    return np.searchsorted(np.unique(y), y)


def ordinal_shift(df: pd.DataFrame, weights: np.ndarray, cutoff: float, conf_level: float = 0.95,
                  ps=None, subgroup_weights: np.ndarray | None = None, subgroup_ps=None,
                  outcome: str = "mrs_90d", treatment: str = TREATMENT, modifier: str = MODIFIER) -> pd.DataFrame:
    """``tables/ordinal_shift.csv``: the common odds ratio of a lower 90-day mRS with MT+RS,
    unadjusted and weighted, overall (``y ~ t``) and by stenosis subgroup (``y ~ t * high``, the
    effects ``exp(-b_t)`` and ``exp(-(b_t + b_t:high))``, p-interaction the Wald p of ``b_t:high``),
    normal Wald intervals on the log scale, and the proportional-odds test of each row."""
    y_all = df[outcome].to_numpy(float)
    keep = ~np.isnan(y_all)
    y, t = _coded(y_all[keep]), df[treatment].to_numpy(float)[keep]
    high = (df[modifier].to_numpy(float) > cutoff)[keep]
    z = critical_value(conf_level, None)
    rows = []
    for analysis in ("unadjusted", "iptw"):
        for subgroups, w_all, ps_rows in ((("overall",), weights, ps),
                                          (("low", "high"), weights if subgroup_weights is None else subgroup_weights,
                                           ps if subgroup_weights is None else subgroup_ps)):
            w = np.ones(y.size) if analysis == "unadjusted" else np.asarray(w_all, float)[keep]
            m = None if analysis == "unadjusted" else ps_rows
            rows += _model_rows(y, t, high, w, m, keep, subgroups, analysis, z)
    return pd.DataFrame(rows, columns=ORDINAL_COLUMNS)


def _common_or(beta: np.ndarray, V: np.ndarray, L, z: float) -> tuple[float, float, float, float]:
    """The common OR ``exp(-L'beta)`` of a lower mRS, its normal interval and Wald p (``V`` the
    covariance of ``beta``)."""
    L = np.asarray(L, float)
    b = float(L @ beta)
    se = float(np.sqrt(L @ V @ L))
    return float(np.exp(-b)), float(np.exp(-b - z * se)), float(np.exp(-b + z * se)), float(two_sided_p(b / se, None))


def _model_rows(y, t, high, w, ps, keep, subgroups, analysis, z) -> list[dict]:
    """The rows of one model: overall (``y ~ t``) or the two subgroups (``y ~ t * high``)."""
    overall = subgroups == ("overall",)
    X = t[:, None] if overall else np.column_stack([t, high, t * high])
    masks = {"overall": np.ones(y.size, bool), "low": ~high, "high": high}
    problem = ""
    for name in subgroups:
        for arm, label in ((1, "MT+RS"), (0, "MT only")):
            if not np.any(masks[name] & (t == arm)):
                problem = f"not estimable: no {label} patients with a known 90-day mRS in the {name} subgroup"
    if not problem and np.unique(y).size < 2:
        problem = "not estimable: every patient has the same 90-day mRS"
    for name in subgroups if not problem else ():
        why = separated(y[masks[name]], t[masks[name]])
        if why:
            problem = f"not estimable (infinite common odds ratio): in the {name} subgroup {why}"
            break
    fit = V = None
    if not problem and ps is None:  # the HC0 sandwich: exact on the cells, at a cost independent of n
        fit, V = cell_fit(y, t, high, w, overall)
    elif not problem:
        fit = fit_polr(y, X, w)
        V = fit.vcov(ps, keep) if fit.converged else None
    if fit is not None and not fit.converged:
        problem, fit = "not estimable: the proportional-odds fit did not converge", None
    n_cut = 0 if fit is None else fit.zeta.size
    out = []
    for name, L in (("overall", [1.0]), ("low", [1.0, 0, 0]), ("high", [1.0, 0, 1.0])):
        if name not in subgroups:
            continue
        row = {"analysis": analysis, "subgroup": name, "n": int(masks[name].sum()), "note": problem,
               "common_or": np.nan, "ci_lower": np.nan, "ci_upper": np.nan, "p_value": np.nan,
               "p_interaction": np.nan, "p_proportional_odds": np.nan}
        if fit is not None:
            estimate = _common_or(fit.beta, V[n_cut:, n_cut:], L, z)
            row["common_or"], row["ci_lower"], row["ci_upper"], row["p_value"] = estimate
            if not overall:
                row["p_interaction"] = float(two_sided_p(fit.beta[2] / np.sqrt(V[n_cut + 2, n_cut + 2]), None))
            sel = masks[name]
            row["p_proportional_odds"] = proportional_odds_p(y[sel], t[sel], w[sel])
        out.append(row)
    return out


ORDINAL_SWEEP_COLUMNS = ["cutoff", "common_or_low", "common_or_low_ci_lower", "common_or_low_ci_upper",
                         "common_or_high", "common_or_high_ci_lower", "common_or_high_ci_upper",
                         "common_or_p_interaction", "common_or_note"]


def ordinal_sweep(df: pd.DataFrame, weights: np.ndarray, cutoffs: list[float], conf_level: float = 0.95, ps=None,
                  by_cutoff: dict | None = None, outcome: str = "mrs_90d", treatment: str = TREATMENT,
                  modifier: str = MODIFIER) -> pd.DataFrame:
    """The common odds ratios of the weighted ``y ~ t * high`` proportional-odds model at every
    cutoff of the sweep (the columns the cutoff sweep adds beside its mean differences);
    ``by_cutoff`` as :func:`~analysis_lib.cutoffs.cutoff_sweep` (weights within the subgroups)."""
    y_all = df[outcome].to_numpy(float)
    keep = ~np.isnan(y_all)
    y, t = _coded(y_all[keep]), df[treatment].to_numpy(float)[keep]
    z = critical_value(conf_level, None)
    rows = []
    for c in cutoffs:
        high = (df[modifier].to_numpy(float) > c)[keep]
        w_all, ps_c, note = (weights, ps, "") if by_cutoff is None else by_cutoff[float(c)]
        row = {"cutoff": float(c), "common_or_note": note or ""}
        if w_all is None:
            rows.append(row)
            continue
        low_row, high_row = _model_rows(y, t, high, np.asarray(w_all, float)[keep], ps_c, keep, ("low", "high"),
                                        "iptw", z)
        for name, r in (("low", low_row), ("high", high_row)):
            row.update({f"common_or_{name}": r["common_or"], f"common_or_{name}_ci_lower": r["ci_lower"],
                        f"common_or_{name}_ci_upper": r["ci_upper"]})
        row["common_or_p_interaction"] = low_row["p_interaction"]
        row["common_or_note"] = row["common_or_note"] or low_row["note"] or high_row["note"]
        rows.append(row)
    return pd.DataFrame(rows, columns=ORDINAL_SWEEP_COLUMNS)


def cell_fit(y: np.ndarray, t: np.ndarray, high: np.ndarray, w: np.ndarray,
             overall: bool) -> tuple[PolrFit, np.ndarray | None]:
    """The weighted proportional-odds fit of ``y ~ t`` (``overall``) or ``y ~ t * high`` and its
    HC0 sandwich, on the cells of (level, arm, subgroup) instead of the patients: the weighted
    log-likelihood and the meat ``sum w_i^2 s_i s_i'`` depend on the patients only through the
    sums of ``w`` and ``w^2`` within a cell (every patient of a cell has the same score), so the
    fit is exact and its cost independent of n (a fit on 10^6 patients took 2.5 s). ``y`` holds
    consecutive level codes; the covariance is None when the fit did not converge."""
    cell = np.asarray(y, int) * 4 + np.asarray(t, int) + 2 * np.asarray(high, int)
    size = 4 * (int(np.max(y)) + 1)
    present = np.flatnonzero(np.bincount(cell, minlength=size))
    W = np.bincount(cell, weights=w, minlength=size)[present]
    W2 = np.bincount(cell, weights=np.asarray(w, float) ** 2, minlength=size)[present]
    yc, tc, hc = present // 4, present % 2, (present % 4) // 2
    X = tc[:, None].astype(float) if overall else np.column_stack([tc, hc, tc * hc]).astype(float)
    fit = fit_polr(yc, X, W)
    if not fit.converged:
        return fit, None
    bread = np.linalg.inv(fit.hessian)
    return fit, bread @ ((fit.scores * W2[:, None]).T @ fit.scores) @ bread.T


@dataclass(frozen=True)
class SubgroupOdds:
    """The common odds ratios of the weighted ``y ~ t * high`` model (HC0), low and high."""

    common_or: tuple[float, float]
    ci_lower: tuple[float, float]
    ci_upper: tuple[float, float]
    p_value: tuple[float, float]


def subgroup_common_ors(y: np.ndarray, t: np.ndarray, high: np.ndarray, w: np.ndarray,
                        conf_level: float = 0.95, coded: bool = False) -> SubgroupOdds:
    """The subgroup common odds ratios of :func:`ordinal_shift` with the HC0 sandwich, fitted on
    the cells (:func:`cell_fit`; the specification curve makes hundreds of these fits). NaN when
    an arm of a subgroup is empty or the mRS has one level. ``coded``: ``y`` already holds the
    consecutive level codes of :func:`level_codes` (one coding for the many fits of one outcome)."""
    nan = SubgroupOdds((np.nan,) * 2, (np.nan,) * 2, (np.nan,) * 2, (np.nan,) * 2)
    y = np.asarray(y, np.intp) if coded else _coded(np.asarray(y, float))
    t, high, w = np.asarray(t, int), np.asarray(high, int), np.asarray(w, float)
    groups = t + 2 * high
    top = int(y.max()) if y.size else 0
    if np.bincount(groups, minlength=4).min() == 0 or top < 1:
        return nan
    # separation (:func:`separated`) in each subgroup, from the counts of each level by arm and subgroup
    counts = np.bincount(groups * (top + 1) + y, minlength=4 * (top + 1)).reshape(4, -1)
    seen = [np.flatnonzero(c) for c in counts]
    for control, treated in ((seen[0], seen[1]), (seen[2], seen[3])):
        if _separation(treated[0], treated[-1], control[0], control[-1]):
            return nan
    fit, V = cell_fit(y, t, high, w, overall=False)
    if not fit.converged:
        return nan
    z = critical_value(conf_level, None)
    n_cut = fit.zeta.size
    out = []
    for L in (np.array([1.0, 0, 0]), np.array([1.0, 0, 1.0])):
        out.append(_common_or(fit.beta, V[n_cut:, n_cut:], L, z))
    return SubgroupOdds(*(tuple(float(v) for v in col) for col in zip(*out)))
