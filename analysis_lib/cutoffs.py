"""Effect modification by stenosis: the cutoff sweep and the continuous interaction
(ANALYSIS.md §5 and §6; Supplementary Table 2 and Supplementary Figure 2).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .data import MODIFIER, TREATMENT
from .effects import ModelFit, fit_cells, fit_cells_m, fit_weighted
from .mestimation import METHOD, model_vcov
from .numerics import critical_value, wald

SWEEP_COLUMNS = [
    "cutoff", "n_low", "n_high",
    "ate_low", "ate_low_ci_lower", "ate_low_ci_upper", "ate_low_p",
    "ate_high", "ate_high_ci_lower", "ate_high_ci_upper", "ate_high_p",
    "difference", "p_interaction", "eligible", "selected", "note",
]
CONTINUOUS_COLUMNS = [
    "interaction_beta", "interaction_ci_lower", "interaction_ci_upper", "interaction_p",
    "crossing_point", "crossing_ci_lower", "crossing_ci_upper",
]


class CutoffError(ValueError):
    """No candidate cutoff can be used (one line)."""


def cutoff_sweep(df: pd.DataFrame, weights: np.ndarray, cutoffs: list[float], min_arm_size: int = 10,
                 outcome: str = "mrs_90d", hc_type: str = "HC0", conf_level: float = 0.95,
                 modifier: str = MODIFIER, treatment: str = TREATMENT, ps=None,
                 by_cutoff: dict | None = None) -> pd.DataFrame:
    """Subgroup effects on the outcome at every candidate cutoff (Supplementary Table 2).

    For each cutoff ``c`` the weighted linear model ``y ~ t * high`` with
    ``high = modifier > c`` gives the low and high subgroup ATEs (t intervals with the
    residual degrees of freedom), their difference ``b_t:high`` and its p (p-interaction).
    A cutoff is *eligible* when each of the four subgroup-arms has at least ``min_arm_size``
    patients with a known outcome; the *selected* cutoff is the eligible one with the largest
    absolute difference (the lowest such cutoff on a tie). ``ps`` (a
    :class:`~analysis_lib.mestimation.PropensityEstimation`) switches to the M-estimation
    variance with normal intervals. ``by_cutoff`` (``cutoff -> (weights, ps, note)``, from
    :func:`~analysis_lib.steps.sweep_weights`) gives each cutoff weights of its own, those of one
    propensity model per subgroup (ANALYSIS.md §11); a cutoff whose weights are ``None`` is not
    estimable, with the reason in ``note``, and never eligible.

    Returns
    -------
    DataFrame
        The columns of ``tables/cutoff_sweep.csv``.
    """
    y_all = df[outcome].to_numpy(float)
    keep = ~np.isnan(y_all)
    y = y_all[keep]
    t = df[treatment].to_numpy(int)[keep]
    s = df[modifier].to_numpy(float)[keep]
    w_all = np.asarray(weights, float)[keep]
    rows = []
    for c in cutoffs:
        high = s > c
        cells = t + 2 * high.astype(int)
        w, ps_c, note = w_all, ps, ""
        if by_cutoff is not None:
            w_c, ps_c, note = by_cutoff[float(c)]
            if w_c is None:
                rows.append({"cutoff": float(c), "n_low": int((~high).sum()), "n_high": int(high.sum()),
                             **{k: np.nan for k in SWEEP_COLUMNS[3:13]}, "eligible": False, "note": note})
                continue
            w = np.asarray(w_c, float)[keep]
        fit = (fit_cells(y, w, cells, 4, "gaussian", hc_type) if ps_c is None
               else fit_cells_m(y, w, cells, 4, "gaussian", ps_c, keep))
        df_t = fit.df_resid if ps_c is None else None
        row = {"cutoff": float(c), "n_low": int((~high).sum()), "n_high": int(high.sum()), "note": note}
        # Estimates need every cell; intervals also need finite variances (HC2/HC3 are
        # undefined for a cell holding one patient, whose hat value is 1).
        estimable = bool(np.all(fit.count > 0))
        has_variance = estimable and bool(np.all(np.isfinite(fit.var)))
        if not estimable:
            empty = [f"{arm} {'≤' if cell < 2 else '>'} {c:g} %" for cell, arm in
                     enumerate(("MT only", "MT+RS", "MT only", "MT+RS")) if fit.count[cell] == 0]
            row["note"] = f"not estimable: no patient with a known outcome in {', '.join(empty)}"
        elif not has_variance:
            row["note"] = f"CI not estimable: {hc_type} variance undefined (a subgroup-arm of one patient)"
        for name, plus, minus in (("ate_low", [1], [0]), ("ate_high", [3], [2]), ("difference", [3, 0], [2, 1])):
            b, se = fit.contrast(plus, minus) if estimable else (np.nan, np.nan)
            _, lo, hi, p = wald(b, se, df_t, conf_level) if has_variance else (b, np.nan, np.nan, np.nan)
            if name == "difference":
                row.update(difference=b, p_interaction=p)
            else:
                row.update({name: b, f"{name}_ci_lower": lo, f"{name}_ci_upper": hi, f"{name}_p": p})
        row["eligible"] = bool(has_variance and fit.count.min() >= min_arm_size)
        rows.append(row)
    out = pd.DataFrame(rows)
    out["selected"] = False
    eligible = out[out["eligible"]]
    if not eligible.empty:
        best = eligible["difference"].abs()
        out.loc[best[best == best.max()].index[0], "selected"] = True
    return out[SWEEP_COLUMNS]


def selected_cutoff(sweep: pd.DataFrame, min_arm_size: int | None = None) -> float:
    """The selected cutoff of a sweep, or :class:`CutoffError` if none is eligible."""
    chosen = sweep.loc[sweep["selected"], "cutoff"]
    if chosen.empty:
        size = f" {min_arm_size}" if min_arm_size is not None else " min_arm_size"
        raise CutoffError(
            f"cutoff sweep: no eligible cutoff between {sweep['cutoff'].min():g} and {sweep['cutoff'].max():g}: "
            f"every candidate leaves a subgroup-arm with fewer than{size} patients; "
            "lower min_arm_size, widen the range, or fix the cutoff (parameter cutoff)"
        )
    return float(chosen.iloc[0])


def resolve_cutoff(cutoff: float | None, sweep: pd.DataFrame, min_arm_size: int | None = None) -> float:
    """The cutoff used downstream: the fixed parameter, or the sweep's selection when ``None``."""
    return float(cutoff) if cutoff is not None else selected_cutoff(sweep, min_arm_size)


@dataclass(frozen=True)
class ContinuousInteraction:
    """Continuous effect modification: ``y ~ t * s`` with sandwich variance.

    Attributes
    ----------
    fit : ModelFit
        Coefficients ``(Intercept, t, s, t:s)`` and their covariance.
    summary : DataFrame
        One row, the columns of ``tables/continuous_interaction.csv`` (crossing CI: delta method).
    crossing : DataFrame
        The crossing point with both intervals (``method`` = delta / fieller, ``bounded``, ``note``).
    band : DataFrame
        ``stenosis_pct, ate, ci_lower, ci_upper``: the pointwise band of ATE(s).
    """

    fit: ModelFit = field(repr=False)
    summary: pd.DataFrame
    crossing: pd.DataFrame
    band: pd.DataFrame = field(repr=False)


def fieller_interval(b1: float, b3: float, v11: float, v13: float, v33: float, q: float) -> tuple[float, float, bool, str]:
    """Fieller confidence set for the ratio ``-b1 / b3``.

    The set of ``s`` with ``(b1 + s b3)^2 <= q^2 (v11 + 2 s v13 + s^2 v33)``, i.e. where the
    pointwise band of ``b1 + s b3`` covers zero: ``a s^2 + b s + c <= 0`` with
    ``a = b3^2 - q^2 v33``, ``b = 2 (b1 b3 - q^2 v13)``, ``c = b1^2 - q^2 v11``.
    Bounded exactly when ``a > 0`` (``b3`` significantly different from zero at that level).

    Returns ``(lower, upper, bounded, note)``; unbounded sets are returned as ``(-inf, inf)``
    with the exact set described in ``note``.
    """
    a = b3 ** 2 - q ** 2 * v33
    b = 2 * (b1 * b3 - q ** 2 * v13)
    c = b1 ** 2 - q ** 2 * v11
    disc = b * b - 4 * a * c
    if a > 0 and disc >= 0:
        r = np.sort([(-b - np.sqrt(disc)) / (2 * a), (-b + np.sqrt(disc)) / (2 * a)])
        return float(r[0]), float(r[1]), True, ""
    if a < 0 and disc > 0:
        r = np.sort([(-b - np.sqrt(disc)) / (2 * a), (-b + np.sqrt(disc)) / (2 * a)])
        return (-np.inf, np.inf, False,
                f"unbounded: the Fieller set is (-inf, {r[0]:.4g}] and [{r[1]:.4g}, inf), "
                "because the interaction is not significant at this level")
    return (-np.inf, np.inf, False,
            "unbounded: the Fieller set is the whole line, because the interaction is not significant at this level")


def continuous_interaction(df: pd.DataFrame, weights: np.ndarray, hc_type: str = "HC0",
                           conf_level: float = 0.95, outcome: str = "mrs_90d",
                           modifier: str = MODIFIER, treatment: str = TREATMENT,
                           grid_points: int = 101, ps=None) -> ContinuousInteraction:
    """Weighted linear model ``y ~ t * s`` (ANALYSIS.md §6).

    ``ATE(s) = b_t + b_t:s * s`` with pointwise band ``ATE(s) +- q se(s)``,
    ``se(s)^2 = v_tt + 2 s v_t,ts + s^2 v_ts,ts``. Crossing point ``s* = -b_t / b_t:s``;
    delta-method standard error from the gradient ``(-1 / b_t:s, b_t / b_t:s^2)``; Fieller set
    from :func:`fieller_interval`. Every interval uses the t quantile with the residual degrees
    of freedom, as ``coefci`` does for the coefficients of this linear model.

    Notes
    -----
    The Fieller set is the set of stenosis values at which the pointwise band covers zero,
    so it agrees with the band by construction; the delta-method interval is symmetric and
    can be misleading when ``b_t:s`` is imprecise. ``ps`` switches to the M-estimation
    covariance (normal quantiles instead of t).
    """
    y_all = df[outcome].to_numpy(float)
    keep = ~np.isnan(y_all)
    t = df[treatment].to_numpy(float)[keep]
    s = df[modifier].to_numpy(float)[keep]
    X = pd.DataFrame({"(Intercept)": 1.0, treatment: t, modifier: s, f"{treatment}:{modifier}": t * s})
    w = np.asarray(weights, float)[keep]
    fit = fit_weighted(X, y_all[keep], w, "gaussian", hc_type)
    df_t = fit.df_resid
    if ps is not None:
        Xv = X.to_numpy(float)
        fit = dataclasses.replace(fit, hc_type=METHOD,
                                  vcov=model_vcov(Xv, y_all[keep], w, Xv @ fit.coef, "gaussian", ps, keep))
        df_t = None
    b1, b3 = fit.coef[1], fit.coef[3]
    V = fit.vcov
    v11, v13, v33 = V[1, 1], V[1, 3], V[3, 3]
    q = critical_value(conf_level, df_t)
    beta, beta_lo, beta_hi, beta_p = wald(b3, np.sqrt(v33), df_t, conf_level)
    cross = -b1 / b3
    grad = np.array([-1 / b3, b1 / b3 ** 2])
    se_cross = float(np.sqrt(grad @ np.array([[v11, v13], [v13, v33]]) @ grad))
    f_lo, f_hi, bounded, f_note = fieller_interval(b1, b3, v11, v13, v33, q)
    outside = ""
    if not s.min() <= cross <= s.max():
        outside = f"the crossing point lies outside the observed stenosis range ({s.min():g} to {s.max():g})"
    summary = pd.DataFrame([{
        "interaction_beta": beta, "interaction_ci_lower": beta_lo, "interaction_ci_upper": beta_hi,
        "interaction_p": beta_p, "crossing_point": cross,
        "crossing_ci_lower": cross - q * se_cross, "crossing_ci_upper": cross + q * se_cross,
    }])[CONTINUOUS_COLUMNS]
    crossing = pd.DataFrame([
        {"method": "delta", "estimate": cross, "std_error": se_cross, "ci_lower": cross - q * se_cross,
         "ci_upper": cross + q * se_cross, "bounded": True, "note": outside},
        {"method": "fieller", "estimate": cross, "std_error": np.nan, "ci_lower": f_lo, "ci_upper": f_hi,
         "bounded": bounded, "note": "; ".join(x for x in (f_note, outside) if x)},
    ])
    grid = np.linspace(s.min(), s.max(), grid_points)
    ate = b1 + b3 * grid
    se = np.sqrt(v11 + 2 * grid * v13 + grid ** 2 * v33)
    band = pd.DataFrame({modifier: grid, "ate": ate, "ci_lower": ate - q * se, "ci_upper": ate + q * se})
    return ContinuousInteraction(fit=fit, summary=summary, crossing=crossing, band=band)
