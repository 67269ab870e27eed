"""Sensitivity to center effects and to unmeasured confounding (ANALYSIS.md §7-§8;
Supplementary Table 3, center-clustered variance, E-values).

Mixed models are written here because the libraries at hand do not fit them as the paper's
toolchain does: statsmodels' ``MixedLM`` takes no observation weights, and its Bayesian GLMMs
are not ``glmer``. With a single random intercept, both likelihoods reduce to one-dimensional
problems per center, which is what the functions below exploit (formulas in the docstrings).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .clustered import MAX_CENTER_SIZE, fit_cells_cr2
from .data import CENTER, MODIFIER, OUTCOMES, TREATMENT, measure_for
from .effects import _cell_problem, _where, effect_rows, fit_cells, table2
from .mestimation import PropensityEstimation
from .numerics import critical_value, newton_glm, two_sided_p, wald

CENTER_COLUMNS = ["outcome", "subgroup", "measure", "estimate", "ci_lower", "ci_upper", "p_value", "note"]
CLUSTER_COLUMNS = ["outcome", "subgroup", "method", "measure", "estimate", "std_error", "df", "ci_lower", "ci_upper",
                   "p_value", "p_interaction", "note"]  # OUTPUTS.md; std_error on the link scale (log RR)
EVALUE_COLUMNS = ["outcome", "analysis", "subgroup", "measure", "estimate", "evalue_point", "evalue_ci", "note"]
SINGULAR_TOL = 1e-4  # relative random-intercept SD below which a fit is on the boundary (lme4: 1e-4)


@dataclass(frozen=True)
class MixedFit:
    """A random-intercept model: fixed effects, their covariance and the variance components.

    ``sigma2`` is the residual variance (``sigma^2``; observation ``i`` has ``sigma^2 / w_i``)
    and is 1 for the Poisson model; ``center_variance`` is the random-intercept variance.
    """

    names: tuple[str, ...]
    coef: np.ndarray
    vcov: np.ndarray = field(repr=False)
    family: str
    method: str
    sigma2: float
    center_variance: float
    n: int
    n_groups: int
    criterion: float
    converged: bool
    singular: bool

    def combination(self, L) -> tuple[float, float]:
        L = np.asarray(L, float)
        return float(L @ self.coef), float(np.sqrt(L @ self.vcov @ L))


def _group_sums(groups: np.ndarray, n_groups: int, values: np.ndarray) -> np.ndarray:
    if values.ndim == 1:
        return np.bincount(groups, weights=values, minlength=n_groups)
    return np.column_stack([np.bincount(groups, weights=values[:, j], minlength=n_groups)
                            for j in range(values.shape[1])])


def fit_lmm(X: pd.DataFrame, y: np.ndarray, w: np.ndarray, groups: np.ndarray) -> MixedFit:
    """Weighted linear mixed model with a random intercept per group, by REML, as
    ``lme4::lmer(y ~ X + (1 | group), weights = w, REML = TRUE)``.

    Notes
    -----
    Model ``y = X beta + b_g + e`` with ``b_g ~ N(0, sigma_b^2)``, ``e_i ~ N(0, sigma^2 / w_i)``.
    With ``theta = sigma_b / sigma`` and, per group, ``W_g = sum w_i``, ``s_g = sum w_i x_i``,
    ``t_g = sum w_i y_i`` and ``f_g = theta^2 / (1 + theta^2 W_g)`` (Sherman-Morrison), the
    generalised least-squares pieces are ``A = X'WX - sum f_g s_g s_g'``,
    ``b = X'Wy - sum f_g s_g t_g``, ``c = y'Wy - sum f_g t_g^2``, giving
    ``beta(theta) = A^-1 b`` and ``r^2(theta) = c - b' A^-1 b``. The profiled REML criterion
    ``sum_g log(1 + theta^2 W_g) + log|A| + (n - p) log r^2`` is minimised over ``theta >= 0``
    (grid, then Brent); ``sigma^2 = r^2 / (n - p)``, ``sigma_b^2 = theta^2 sigma^2`` and the
    model-based covariance of the fixed effects is ``sigma^2 A^-1`` (``vcov(lmer)``).
    ``criterion`` is lme4's ``REMLcrit``.
    """
    from scipy import optimize

    Xv = np.asarray(X, float)
    y = np.asarray(y, float)
    w = np.asarray(w, float)
    g, labels = pd.factorize(np.asarray(groups))
    G = labels.size
    n, p = Xv.shape
    XtWX = Xv.T @ (w[:, None] * Xv)
    XtWy = Xv.T @ (w * y)
    ytWy = float(np.sum(w * y * y))
    Wg = _group_sums(g, G, w)
    Sx = _group_sums(g, G, w[:, None] * Xv)
    Sy = _group_sums(g, G, w * y)

    def pieces(theta: float):
        f = theta ** 2 / (1 + theta ** 2 * Wg)
        A = XtWX - (Sx * f[:, None]).T @ Sx
        b = XtWy - Sx.T @ (f * Sy)
        c = ytWy - float(np.sum(f * Sy ** 2))
        beta = np.linalg.solve(A, b)
        return A, beta, c - float(b @ beta)

    def crit(theta: float) -> float:
        A, _, r2 = pieces(theta)
        return float(np.sum(np.log1p(theta ** 2 * Wg)) + np.linalg.slogdet(A)[1] + (n - p) * np.log(r2))

    grid = np.r_[0.0, np.logspace(-3, 1.5, 46)]
    values = np.array([crit(t) for t in grid])
    k = int(np.argmin(values))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
    res = optimize.minimize_scalar(crit, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12})
    theta = float(res.x) if res.fun <= values[k] else float(grid[k])
    A, beta, r2 = pieces(theta)
    sigma2 = r2 / (n - p)
    reml = crit(theta) - (n - p) * np.log(n - p) + (n - p) * (1 + np.log(2 * np.pi)) - float(np.sum(np.log(w)))
    names = tuple(X.columns) if isinstance(X, pd.DataFrame) else tuple(f"x{j}" for j in range(p))
    return MixedFit(names=names, coef=beta, vcov=sigma2 * np.linalg.inv(A), family="gaussian", method="REML",
                    sigma2=float(sigma2), center_variance=float(theta ** 2 * sigma2), n=n, n_groups=G,
                    criterion=float(reml), converged=True, singular=theta < SINGULAR_TOL)


def _poisson_loglik(beta, sigma, Xv, wy, w, g, G, nodes, node_weights, const):
    """Marginal log-likelihood of the random-intercept Poisson model by adaptive Gauss-Hermite
    quadrature (one node: the Laplace approximation), on records with summed ``w y`` and ``w``."""
    eta = np.clip(Xv @ beta, -700, 700)

    def h_of(u):
        e = np.clip(eta + sigma * u[g], -700, 700)
        return _group_sums(g, G, wy * e - w * np.exp(e)) - u ** 2 / 2

    u = np.zeros(G)
    h = h_of(u)
    for _ in range(200):  # Newton with backtracking for the conditional modes (h is concave in u)
        mu = np.exp(np.clip(eta + sigma * u[g], -700, 700))
        grad = sigma * _group_sums(g, G, wy - w * mu) - u
        hess = -(sigma ** 2) * _group_sums(g, G, w * mu) - 1.0
        step = -grad / hess  # Newton ascent step (hess < 0)
        t = np.ones(G)
        for _ in range(60):
            h_new = h_of(u + t * step)
            worse = h_new < h - 1e-15 * np.abs(h)
            if not worse.any():
                break
            t = np.where(worse, t / 2, t)
        u = u + t * step
        h = h_of(u)
        if np.max(np.abs(t * step)) < 1e-11:
            break
    mu = np.exp(np.clip(eta + sigma * u[g], -700, 700))
    scale = 1.0 / np.sqrt(sigma ** 2 * _group_sums(g, G, w * mu) + 1.0)
    terms = np.array([np.log(om) + z ** 2 + h_of(u + np.sqrt(2.0) * scale * z) for z, om in zip(nodes, node_weights)])
    top = terms.max(axis=0)
    log_int = top + np.log(np.exp(terms - top).sum(axis=0)) + np.log(np.sqrt(2.0) * scale) - 0.5 * np.log(2 * np.pi)
    return float(log_int.sum()) + const


def _aggregate(Xv: np.ndarray, y: np.ndarray, w: np.ndarray, groups: np.ndarray):
    """Records with identical group and design row, with summed ``w y`` and ``w``: the Poisson
    log-likelihood ``sum w (y eta - exp(eta))`` depends on the data only through these, so the
    fit is exact and its cost independent of the number of patients for categorical designs."""
    g, labels = pd.factorize(np.asarray(groups))
    record = g.astype(np.int64)
    for j in range(Xv.shape[1]):  # mixed-radix key, re-factorised after each column (linear time)
        column = pd.factorize(Xv[:, j])[0]
        record = pd.factorize(record * (int(column.max()) + 1) + column)[0]
    R = int(record.max()) + 1
    wy = np.bincount(record, weights=w * y, minlength=R)
    ws = np.bincount(record, weights=w, minlength=R)
    first = np.zeros(R, dtype=np.int64)
    first[record[::-1]] = np.arange(record.size)[::-1]
    return Xv[first], wy, ws, g[first], labels.size


def fit_poisson_glmm(X: pd.DataFrame, y: np.ndarray, w: np.ndarray, groups: np.ndarray, nagq: int = 1) -> MixedFit:
    """Random-intercept Poisson model (log link) with prior weights, by maximum likelihood on the
    Laplace approximation (``nagq = 1``, as ``glmer``'s default) or adaptive Gauss-Hermite
    quadrature with ``nagq`` nodes.

    Notes
    -----
    ``log mu_i = x_i' beta + sigma u_g``, ``u_g ~ N(0, 1)``; the log-likelihood
    ``sum_i w_i (y_i log mu_i - mu_i - log y_i!)``. Per group the integrand in ``u`` is
    ``exp(h(u)) / sqrt(2 pi)`` with ``h(u) = l_g(u) - u^2 / 2``, concave; its mode ``u_hat``
    (Newton) and curvature ``1 / s^2 = sigma^2 sum w_i mu_i + 1`` place the nodes
    ``u_hat + sqrt(2) s z_k``. ``(beta, sigma >= 0)`` maximise the approximation (L-BFGS-B from
    the single-level fit). The covariance of ``beta`` is the fixed-effects block of the inverse
    Hessian of ``-log L`` in ``(sigma, beta)`` (central differences), as ``vcov`` of a
    ``glmer`` fit with its default ``use.hessian = TRUE``. A fit whose ``sigma`` is on the
    boundary (below ``SINGULAR_TOL``) is flagged ``singular``.
    """
    from scipy import optimize
    from scipy.special import gammaln

    Xfull = np.asarray(X, float)
    y = np.asarray(y, float)
    w_full = np.asarray(w, float)
    n, p = Xfull.shape
    const = -float(np.sum(w_full * gammaln(y + 1)))
    Xv, wy, w, g, G = _aggregate(Xfull, y, w_full, groups)
    nodes, node_weights = np.polynomial.hermite.hermgauss(nagq)
    start_beta = newton_glm(Xv, wy / w, w, "poisson", tol=1e-13, max_iter=200)[0]

    def objective(params):
        return -_poisson_loglik(params[:p], params[p], Xv, wy, w, g, G, nodes, node_weights, const)

    def gradient(params):
        # central differences; the boundary sigma = 0 uses a one-sided difference
        grad = np.empty_like(params)
        for j in range(params.size):
            step = 1e-6 * max(1.0, abs(params[j]))
            up, down = params.copy(), params.copy()
            up[j] += step
            if j == p and params[j] - step < 0:
                grad[j] = (objective(up) - objective(params)) / step
                continue
            down[j] -= step
            grad[j] = (objective(up) - objective(down)) / (2 * step)
        return grad

    best = None
    for sigma0 in (0.5, 1.5):  # a second start only when the first ends on the boundary sigma = 0
        res = optimize.minimize(objective, np.r_[start_beta, sigma0], jac=gradient, method="L-BFGS-B",
                                bounds=[(None, None)] * p + [(0.0, None)],
                                options={"ftol": 1e-14, "gtol": 1e-9, "maxiter": 1000})
        if best is None or res.fun < best.fun - 1e-10:
            best = res
        if best.x[p] >= SINGULAR_TOL:
            break
    res = best
    params = res.x
    sigma = float(params[p])
    singular = sigma < SINGULAR_TOL
    converged = bool(res.success) or np.max(np.abs(res.jac[:p])) < 1e-5
    if not singular:
        H = _numeric_hessian(objective, np.r_[params[p], params[:p]], order=np.r_[p, np.arange(p)])
        try:
            cov = np.linalg.inv(H)[1:, 1:]
            converged = converged and bool(np.all(np.linalg.eigvalsh(H) > 0))
        except np.linalg.LinAlgError:
            cov, converged = np.full((p, p), np.nan), False
    else:  # the boundary: lme4's vcov is then that of the weighted Poisson GLM, (X' diag(w mu) X)^-1
        mu = np.exp(np.clip(Xv @ params[:p], -700, 700))  # (on the aggregated records, w summed)
        try:
            cov = np.linalg.inv(Xv.T @ ((w * mu)[:, None] * Xv))
        except np.linalg.LinAlgError:
            cov, converged = np.full((p, p), np.nan), False
    names = tuple(X.columns) if isinstance(X, pd.DataFrame) else tuple(f"x{j}" for j in range(p))
    return MixedFit(names=names, coef=params[:p], vcov=cov, family="poisson",
                    method="Laplace" if nagq == 1 else f"AGQ({nagq})", sigma2=1.0,
                    center_variance=sigma ** 2, n=n, n_groups=G, criterion=2 * float(res.fun),
                    converged=converged, singular=singular)


def _numeric_hessian(f, x0: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Central-difference Hessian of ``f`` at ``x0`` given in the permuted order ``order``
    (``f`` takes parameters in their natural order)."""
    k = x0.size
    inv = np.argsort(order)
    fx = lambda z: f(z[inv])
    h = 1e-4 * np.maximum(np.abs(x0), 1.0)
    H = np.empty((k, k))
    for i in range(k):
        for j in range(i, k):
            def at(di, dj):
                z = x0.copy()
                z[i] += di
                z[j] += dj
                return fx(z)
            H[i, j] = H[j, i] = (at(h[i], h[j]) - at(h[i], -h[j]) - at(-h[i], h[j]) + at(-h[i], -h[j])) / (4 * h[i] * h[j])
    return H


# ------------------------------------------------------------------ Supplementary Table 3
@dataclass(frozen=True)
class CenterSensitivity:
    """Supplementary Table 3 (``table``: the columns of ``center_sensitivity.csv``) and the
    fitted models (``models``: variance components, p-interaction, convergence)."""

    table: pd.DataFrame
    models: pd.DataFrame


def center_sensitivity(df: pd.DataFrame, weights: np.ndarray, cutoff: float, outcomes: tuple[str, ...] = OUTCOMES,
                       conf_level: float = 0.95, nagq: int = 1, treatment: str = TREATMENT,
                       modifier: str = MODIFIER, center: str = CENTER,
                       subgroup_weights: np.ndarray | None = None) -> CenterSensitivity:
    """Every Table 2 outcome with a random intercept for center (ANALYSIS.md §7).

    Weighted linear mixed model (REML) for the 90-day mRS, random-intercept Poisson model for
    binary outcomes, with the primary weights; ``overall`` from ``y ~ t + (1 | center)``,
    ``low``/``high`` from ``y ~ t * high + (1 | center)`` by the same linear combinations as
    Table 2. Wald intervals and p with normal quantiles (``confint(method = "Wald")``).
    A binary outcome with a cell without events or a fit that does not converge gives a note and
    no number; a singular fit (center variance at 0) gives lme4's boundary estimate, that of the
    weighted fixed-effects model, with a note. ``subgroup_weights`` (one propensity model per
    subgroup, ANALYSIS.md §11) weight the interaction model when given.
    """
    z = critical_value(conf_level)
    rows, models = [], []
    codes = pd.factorize(df[center].to_numpy())[0]  # integer center codes, once
    for outcome in outcomes:
        y_all = df[outcome].to_numpy(float)
        keep = ~np.isnan(y_all)
        y = y_all[keep]
        t = df[treatment].to_numpy(float)[keep]
        h = (df[modifier].to_numpy(float)[keep] > cutoff).astype(float)
        w_overall = np.asarray(weights, float)[keep]
        w_sub = w_overall if subgroup_weights is None else np.asarray(subgroup_weights, float)[keep]
        family = "gaussian" if measure_for(y) == "ATE" else "poisson"
        designs = {
            "overall": (pd.DataFrame({"(Intercept)": 1.0, treatment: t}), {"overall": [0, 1]}, t.astype(int), 2,
                        {"overall": (0, 1, "")}, w_overall),
            "interaction": (pd.DataFrame({"(Intercept)": 1.0, treatment: t, "high": h, f"{treatment}:high": t * h}),
                            {"low": [0, 1, 0, 0], "high": [0, 1, 0, 1]}, (t + 2 * h).astype(int), 4,
                            {"low": (0, 1, _where("low", cutoff)), "high": (2, 3, _where("high", cutoff))}, w_sub),
        }
        for model_name, (X, combos, cells, k, cell_pairs, w) in designs.items():
            model, fit, problems, blocking = _center_model(X, y, w, codes[keep], cells, k, cell_pairs, family, nagq)
            models.append({"outcome": outcome, "model": model_name, **model,
                           "p_interaction": model["p_interaction"] if model_name == "interaction" else np.nan})
            for sub, L in combos.items():
                rows.append({"outcome": outcome, "subgroup": sub, "measure": measure_for(y),
                             **_center_row(fit, L, family, z, problems[sub], blocking, model["note"])})
    return CenterSensitivity(table=pd.DataFrame(rows)[CENTER_COLUMNS],
                             models=pd.DataFrame(models)[["outcome", "model", "family", "method", "n", "n_centers",
                                                         "center_variance", "residual_variance", "p_interaction",
                                                         "converged", "singular", "note"]])


def _center_model(X: pd.DataFrame, y: np.ndarray, w: np.ndarray, groups: np.ndarray, cells: np.ndarray, k: int,
                  cell_pairs: dict, family: str, nagq: int) -> tuple[dict, MixedFit | None, dict, str]:
    """One random-intercept model of :func:`center_sensitivity`: fitted unless a subgroup-arm has
    no patients or events, or fewer than two centers hold patients; its row of ``center_models``,
    the fit, the problems of each subgroup and what blocked the fit."""
    cf = fit_cells(y, w, cells, k, family)
    problems = {sub: _cell_problem(cf, c0, c1, where) for sub, (c0, c1, where) in cell_pairs.items()}
    problems = {sub: (p if not p.startswith("CI not estimable") else "") for sub, p in problems.items()}
    blocking = "; ".join(p for p in problems.values() if p)
    n_centers = int(np.unique(groups).size)
    if n_centers < 2:  # lme4: "grouping factors must have > 1 sampled level"
        blocking = (f"{n_centers} center{'s' if n_centers != 1 else ''}: a center variance needs two or more"
                    + (f"; {blocking}" if blocking else ""))
        problems = {sub: f"not estimable: {blocking}" for sub in problems}
    fit, note = None, ""
    if blocking:
        note = f"not fitted: {blocking}"
    else:
        fit = fit_lmm(X, y, w, groups) if family == "gaussian" else fit_poisson_glmm(X, y, w, groups, nagq)
        note = ("did not converge" if not fit.converged else
                "singular fit: center variance estimated at 0" if fit.singular else "")
    p_int = np.nan
    if fit is not None and k == 4 and np.isfinite(fit.vcov[3, 3]):
        p_int = two_sided_p(fit.coef[3] / np.sqrt(fit.vcov[3, 3]))
    model = {"family": family, "method": None if fit is None else fit.method, "n": int(y.size),
             "n_centers": int(np.bincount(groups).astype(bool).sum()),
             "center_variance": np.nan if fit is None else fit.center_variance,
             # a Poisson model has no residual variance (lme4's sigma of 1 means nothing there)
             "residual_variance": np.nan if fit is None or family == "poisson" else fit.sigma2, "p_interaction": p_int,
             "converged": None if fit is None else fit.converged, "singular": None if fit is None else fit.singular,
             "note": note}
    return model, fit, problems, blocking


def _center_row(fit: MixedFit | None, L: list[float], family: str, z: float, problem: str, blocking: str,
                model_note: str) -> dict:
    """A subgroup row of Supplementary Table 3: the Wald estimate of ``L' beta`` or a note saying why
    there is none (a singular linear fit keeps its number, equal to the weighted linear model's)."""
    no_number = fit is None or not fit.converged
    note = problem or (f"not estimated: {model_note}" if no_number and model_note else "")
    if no_number and not note:
        note = "not estimated: " + (blocking or model_note)
    if fit is not None and fit.singular and fit.converged:  # lme4's boundary estimate, printed as the paper does
        model = "weighted linear model" if family == "gaussian" else "weighted Poisson model"
        note = f"singular fit: center variance estimated at 0 (equal to the {model})"
    if no_number:
        return {"estimate": np.nan, "ci_lower": np.nan, "ci_upper": np.nan, "p_value": np.nan, "note": note}
    b, se = fit.combination(L)
    lo, hi = b - z * se, b + z * se
    est = b
    if family == "poisson":
        est, lo, hi = np.exp(b), np.exp(lo), np.exp(hi)
    return {"estimate": est, "ci_lower": lo, "ci_upper": hi, "p_value": two_sided_p(b / se), "note": note}


# --------------------------------------------------------------- clustered variance
def cluster_robust(df: pd.DataFrame, weights: np.ndarray, cutoff: float, outcomes: tuple[str, ...] = OUTCOMES,
                   conf_level: float = 0.95, treatment: str = TREATMENT, modifier: str = MODIFIER,
                   center: str = CENTER, subgroup_weights: np.ndarray | None = None) -> pd.DataFrame:
    """Every weighted (IPTW) row of Table 2 with center-clustered standard errors, twice
    (``method``): ``CR1``, as ``sandwich::vcovCL(fit, cluster = ~ center, type = "HC0", cadjust =
    TRUE)`` and ``lmtest::coeftest`` (t with residual df for the linear model, normal for Poisson;
    ``df`` inf); and ``CR2`` with Satterthwaite df and t intervals, as ``clubSandwich``
    (:mod:`analysis_lib.clustered`, ANALYSIS.md §12). Rows of CR1 then rows of CR2."""
    high = df[modifier].to_numpy(float) > cutoff
    cl = pd.factorize(df[center].to_numpy())[0]  # integer codes once, not string sorting per row
    one = np.unique(cl).size < 2  # G / (G - 1) and the sandwich need two or more clusters
    rows = effect_rows(df, outcomes, weights, high, cutoff, treatment=treatment, conf_level=conf_level,
                       cluster=None if one else cl, subgroup_weights=subgroup_weights)
    rows = rows.assign(method="CR1", df=rows["df_resid"])
    if one:
        rows = rows.assign(ci_lower=np.nan, ci_upper=np.nan, p_value=np.nan, p_interaction=np.nan, df=np.nan,
                           std_error=np.nan,
                           note="CI not estimable: one center (clustered variance needs two or more)")
        return pd.concat([rows, rows.assign(method="CR2")], ignore_index=True)[CLUSTER_COLUMNS]
    cr2 = _cr2_rows(df, rows, weights, high, cl, conf_level, treatment, subgroup_weights)
    return pd.concat([rows, cr2], ignore_index=True)[CLUSTER_COLUMNS]


def _cr2_rows(df: pd.DataFrame, cr1: pd.DataFrame, weights: np.ndarray, high: np.ndarray, cl: np.ndarray,
              conf_level: float, treatment: str, subgroup_weights: np.ndarray | None) -> pd.DataFrame:
    """The CR2 twin of every CR1 row: same estimate and note, CR2 standard error, Satterthwaite df,
    t interval and p; a row without a CR1 interval gets none either."""
    out = cr1.copy().assign(method="CR2")
    t_all = df[treatment].to_numpy(int)
    for outcome in dict.fromkeys(cr1["outcome"]):
        y_all = df[outcome].to_numpy(float)
        keep = ~np.isnan(y_all)
        this = out.index[out["outcome"] == outcome]
        family = "gaussian" if out.loc[this[0], "measure"] == "ATE" else "poisson"
        t, h = t_all[keep], high[keep].astype(int)
        for subgroups, w_all, cells, n_cells in ((("overall",), weights, t, 2), (("low", "high"),
                                                 weights if subgroup_weights is None else subgroup_weights,
                                                 t + 2 * h, 4)):
            rows = [i for i in this if out.loc[i, "subgroup"] in subgroups]
            fit = fit_cells_cr2(y_all[keep], np.asarray(w_all, float)[keep], cells, n_cells, family, cl[keep])
            for i in rows:
                plus, minus = {"overall": (1, 0), "low": (1, 0), "high": (3, 2)}[out.loc[i, "subgroup"]]
                out.loc[i, ["std_error", "ci_lower", "ci_upper", "p_value", "p_interaction", "df"]] = np.nan
                if fit is None:
                    out.loc[i, "note"] = (f"CR2 not computed: a center has more than {MAX_CENTER_SIZE} patients with "
                                          f"a known {outcome}")
                    continue
                if np.isnan(cr1.loc[i, "ci_lower"]):
                    continue
                L = np.zeros(n_cells)
                L[plus], L[minus] = 1.0, -1.0
                est, se, dof = fit.contrast(L)
                _, lo, hi, p = wald(est, se, dof, conf_level)
                if family == "poisson":
                    lo, hi = np.exp(lo), np.exp(hi)
                out.loc[i, ["std_error", "ci_lower", "ci_upper", "p_value", "df"]] = [se, lo, hi, p, dof]
                if n_cells == 4 and np.isfinite(cr1.loc[i, "p_interaction"]):
                    est, se, dof = fit.contrast([1.0, -1.0, -1.0, 1.0])
                    out.loc[i, "p_interaction"] = wald(est, se, dof, conf_level)[3]
    return out


# ------------------------------------------------------------------------ E-values
def evalue(rr: float) -> float:
    """E-value of a risk ratio (VanderWeele & Ding 2017): ``RR + sqrt(RR (RR - 1))`` after
    inverting a ratio below 1.

    Examples
    --------
    >>> round(evalue(3.9), 3)
    7.263
    >>> evalue(0.5) == evalue(2.0)
    True
    """
    if rr is None or not np.isfinite(rr) or rr <= 0:
        return float("nan")
    rr = 1 / rr if rr < 1 else rr
    return float(rr + np.sqrt(rr * (rr - 1)))


def evalue_ci(rr: float, lower: float, upper: float) -> float:
    """E-value of the confidence limit nearer the null; 1 when the interval contains 1."""
    if any(v is None or not np.isfinite(v) for v in (rr, lower, upper)):
        return float("nan")
    if lower <= 1 <= upper:
        return 1.0
    return evalue(lower if rr > 1 else upper)


def evalues(table2: pd.DataFrame, sd_mrs: float, outcome_sd: str = "mrs_90d") -> pd.DataFrame:
    """E-values for every weighted (IPTW) row of Table 2.

    Risk ratios are used directly. The mRS ATE is first standardised, ``d = ATE / SD(mRS)``
    with the unweighted SD of the analysis sample, and converted with ``RR = exp(0.91 d)``
    (VanderWeele & Ding 2017, for a continuous outcome); its interval limits likewise.
    Rows without an estimate stay missing, with a note.
    """
    rows = []
    for _, r in table2[(table2["analysis"] == "iptw") & (table2["outcome"].isin(OUTCOMES))].iterrows():
        est, lo, hi = r["estimate"], r["ci_lower"], r["ci_upper"]
        note = ""
        if r["measure"] == "ATE":
            est, lo, hi = (np.exp(0.91 * v / sd_mrs) for v in (est, lo, hi))
            note = f"MD converted: RR = exp(0.91 MD / SD), SD = {sd_mrs:.3f}"
        if not np.isfinite(est):
            note = "no estimate" + (f" ({r['note']})" if isinstance(r["note"], str) and r["note"] else "")
        rows.append({"outcome": r["outcome"], "analysis": "iptw", "subgroup": r["subgroup"], "measure": r["measure"],
                     "estimate": r["estimate"], "evalue_point": evalue(est), "evalue_ci": evalue_ci(est, lo, hi),
                     "note": note})
    return pd.DataFrame(rows)[EVALUE_COLUMNS]


def mrs_sd(df: pd.DataFrame, outcome: str = "mrs_90d") -> float:
    """Unweighted SD (n - 1) of the 90-day mRS in the analysis sample (known values)."""
    return float(df[outcome].dropna().std(ddof=1))


# ------------------------------------------------ variance with the propensity score estimated
COMPARISON_COLUMNS = ["outcome", "subgroup", "measure", "estimate", "se_robust", "se_m_estimation",
                      "ci_lower_robust", "ci_upper_robust", "ci_lower_m_estimation", "ci_upper_m_estimation"]


def variance_comparison(df: pd.DataFrame, weights: np.ndarray, ps: PropensityEstimation, cutoff: float,
                        hc_type: str = "HC0", conf_level: float = 0.95, subgroup_weights: np.ndarray | None = None,
                        subgroup_ps: PropensityEstimation | None = None) -> pd.DataFrame:
    """Every weighted Table 2 row with both variances side by side (``tables/variance_comparison.csv``):
    the paper's sandwich with the weights as known (``hc_type``, t intervals for the mRS) and the
    M-estimation sandwich (normal intervals). Standard errors of RRs are on the log scale.
    ``subgroup_weights`` and their ``subgroup_ps``: the subgroup rows' weights (ANALYSIS.md §11)."""
    kw = dict(hc_type=hc_type, conf_level=conf_level, full=True, subgroup_weights=subgroup_weights)
    robust = table2(df, weights, cutoff, **kw).query("analysis == 'iptw'").reset_index(drop=True)
    mest = table2(df, weights, cutoff, ps=ps, subgroup_ps=subgroup_ps, **kw).query("analysis == 'iptw'")
    mest = mest.reset_index(drop=True)
    return pd.DataFrame({
        "outcome": robust["outcome"], "subgroup": robust["subgroup"], "measure": robust["measure"],
        "estimate": robust["estimate"], "se_robust": robust["std_error"], "se_m_estimation": mest["std_error"],
        "ci_lower_robust": robust["ci_lower"], "ci_upper_robust": robust["ci_upper"],
        "ci_lower_m_estimation": mest["ci_lower"], "ci_upper_m_estimation": mest["ci_upper"],
    })[COMPARISON_COLUMNS]


def compare_variances(study, cutoff: float) -> pd.DataFrame | None:
    """:func:`variance_comparison` for a :class:`~analysis_lib.study.Study`; ``None`` when its
    propensity model is CBPS (not stacked here)."""
    if study.propensity.method != "logistic":
        return None
    p = study.params
    options = study.subgroup_options(cutoff, variance="m_estimation") if p.subgroup_weights == "within" else {}
    return variance_comparison(study.data, study.weights, study.ps_estimation(), cutoff, p.hc_type, p.conf_level,
                               **options)
