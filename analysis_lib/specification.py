"""Sensitivity to analysis choices: the weights, the propensity specification, the patients
excluded for missing covariates, and all of them at once (ANALYSIS.md §8; the multiverse).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special

from .balance import balance_table, effective_sample_size
from .data import MODIFIER, TREATMENT, analysis_sample
from .effects import effect_rows, estimate_effect, fit_cells_hc
from .mestimation import propensity_estimation
from .numerics import critical_value, two_sided_p
from .params import ESTIMANDS, HC_TYPES
from .weighting import PropensityError, compute_weights, fit_propensity, ps_variables

WEIGHT_SENSITIVITY_COLUMNS = ["estimand", "outcome", "subgroup", "measure", "estimate", "ci_lower", "ci_upper",
                              "p_value", "n", "effective_n", "note"]
MI_COLUMNS = ["outcome", "subgroup", "measure", "estimate", "ci_lower", "ci_upper", "p_value", "m",
              "fraction_missing_info", "note"]
SENSITIVITY_OUTCOMES = ("mrs_90d", "mrs_0_2", "sich")
WEIGHT_VARIANTS = (*ESTIMANDS, "ATE_truncated", "ATE_trimmed")


def weight_variants(propensity: np.ndarray, treatment: np.ndarray, truncate: tuple[float, float] = (0.01, 0.99),
                    trim: tuple[float, float] = (0.1, 0.9)) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Weights of every variant, each ``(weights, kept)`` with ``kept`` the patients retained.

    ``ATO``, ``ATE``, ``ATT``, ``ATM`` as :func:`~analysis_lib.weighting.compute_weights`;
    ``ATE_truncated``: ATE weights truncated at their 1st and 99th percentiles (R's quantile
    type 7); ``ATE_trimmed``: ATE weights of the patients whose propensity lies in [0.1, 0.9]
    (Crump et al. 2009; the propensity model is not refitted). Every vector is normalised to
    mean 1 over the patients it keeps; dropped patients get weight 0.
    """
    e = np.asarray(propensity, float)
    t = np.asarray(treatment, float)
    everyone = np.ones(e.size, bool)
    out = {est: (compute_weights(e, t, est), everyone) for est in ESTIMANDS}
    raw = compute_weights(e, t, "ATE", normalize=False)
    lo, hi = np.quantile(raw, truncate)
    w = np.clip(raw, lo, hi)
    out["ATE_truncated"] = (w / w.mean(), everyone)
    kept = (e >= trim[0]) & (e <= trim[1])
    w = np.zeros(e.size)
    w[kept] = compute_weights(e[kept], t[kept], "ATE")
    out["ATE_trimmed"] = (w, kept)
    return out


def weight_sensitivity(df: pd.DataFrame, propensity: np.ndarray, cutoff: float, hc_type: str = "HC0",
                       conf_level: float = 0.95, outcomes: tuple[str, ...] = SENSITIVITY_OUTCOMES,
                       treatment: str = TREATMENT, modifier: str = MODIFIER, m_estimation=None) -> pd.DataFrame:
    """The mRS, mRS 0-2 and sICH rows of Table 2 (overall, low, high) under every weighting
    (``tables/weight_sensitivity.csv``); ``effective_n`` is Kish's ``(sum w)^2 / sum w^2`` over
    the patients of the row (outcome known, in the subgroup).

    ``m_estimation`` (the fitted logistic :class:`~analysis_lib.weighting.PropensityModel` behind
    ``propensity``) switches the ATO, ATE, ATT and ATM rows to the M-estimation variance; the
    truncated and trimmed weights are not smooth functions of the propensity model, so their rows
    keep the sandwich with the weights as known and say so in ``note``."""
    high_all = df[modifier].to_numpy(float) > cutoff
    rows = []
    for name, (w, kept) in weight_variants(propensity, df[treatment].to_numpy()).items():
        sub = df.loc[kept].reset_index(drop=True)
        ws, hs = w[kept], high_all[kept]
        ps, remark = None, ""
        if m_estimation is not None:
            if name in ESTIMANDS:
                ps = propensity_estimation(df, m_estimation, name, treatment=treatment)
            else:
                remark = f"{hc_type} sandwich, weights as known (M-estimation needs smooth weights)"
        for outcome in outcomes:
            known = sub[outcome].notna().to_numpy()
            for h in (None, hs):
                part = estimate_effect(sub, outcome, ws, high=h, cutoff=cutoff, treatment=treatment,
                                       hc_type=hc_type, conf_level=conf_level, ps=ps)
                if remark:
                    part["note"] = [f"{n}; {remark}" if n else remark for n in part["note"]]
                for _, r in part.iterrows():
                    mask = known.copy()
                    if r["subgroup"] == "low":
                        mask &= ~hs
                    elif r["subgroup"] == "high":
                        mask &= hs
                    rows.append({"estimand": name, "outcome": outcome, **{k: r[k] for k in (
                        "subgroup", "measure", "estimate", "ci_lower", "ci_upper", "p_value", "n", "note")},
                        "effective_n": effective_sample_size(ws[mask])})
    return pd.DataFrame(rows)[WEIGHT_SENSITIVITY_COLUMNS]


# ------------------------------------------------------------------ multiple imputation
@dataclass(frozen=True)
class ImputationResult:
    """Pooled estimates (``table``: ``tables/mi_sensitivity.csv``) and what was imputed."""

    table: pd.DataFrame
    missing: pd.DataFrame = field(repr=False)
    m: int

    def __repr__(self) -> str:
        if self.m == 0:
            return "ImputationResult(skipped: mi_imputations = 0)"
        imputed = self.missing[self.missing["n_missing"] > 0]
        what = ", ".join(f"{r.variable} ({r.n_missing})" for r in imputed.itertuples()) or "nothing"
        return f"ImputationResult(m={self.m}; imputed: {what})"


def rubin(estimates: np.ndarray, variances: np.ndarray, df_complete: float) -> tuple[float, float, float, float]:
    """Rubin's rules with the Barnard & Rubin (1999) degrees of freedom.

    ``Q = mean(q)``, ``W = mean(u)``, ``B = var(q)`` (n - 1), ``T = W + (1 + 1/m) B``;
    ``r = (1 + 1/m) B / W``, ``nu_old = (m - 1)(1 + 1/r)^2``, and with complete-data df
    ``nu_com``, ``nu_obs = (nu_com + 1)/(nu_com + 3) nu_com (1 - gamma)``,
    ``gamma = (1 + 1/m) B / T``, ``nu = 1 / (1/nu_old + 1/nu_obs)``; ``nu_com = inf`` gives
    ``nu_old``. The fraction of missing information is ``(r + 2 / (nu + 3)) / (r + 1)``. When
    the imputations agree (``B = 0``, nothing was missing) the result is the complete-data
    inference: ``T = W``, ``nu = nu_com``, fraction 0.

    Returns ``(Q, T, nu, fmi)``.
    """
    q = np.asarray(estimates, float)
    u = np.asarray(variances, float)
    m = q.size
    Q, W = float(q.mean()), float(u.mean())
    B = float(q.var(ddof=1)) if m > 1 else 0.0
    T = W + (1 + 1 / m) * B
    if B <= 1e-14 * max(W, 1e-300):
        return Q, W, df_complete, 0.0
    r = (1 + 1 / m) * B / W
    nu_old = (m - 1) * (1 + 1 / r) ** 2
    if np.isfinite(df_complete):
        gamma = (1 + 1 / m) * B / T
        nu_obs = (df_complete + 1) / (df_complete + 3) * df_complete * (1 - gamma)
        nu = 1 / (1 / nu_old + 1 / nu_obs)
    else:
        nu = nu_old
    return Q, T, float(nu), float((r + 2 / (nu + 3)) / (r + 1))


def chained_equations(frame: pd.DataFrame, columns: list[str], m: int, rng: np.random.Generator,
                      burn_in: int = 10, between: int = 1, k_pmm: int = 20) -> list[pd.DataFrame]:
    """``m`` imputed copies of ``frame`` by chained equations with predictive mean matching.

    The algorithm of statsmodels' ``MICEData`` and of R's ``mice(method = "pmm")`` (van Buuren
    2018, ch. 3.4 and 4.5): start from random observed values; then, cycling over the
    ``columns`` with missing values (fewest missing first), regress each on all other columns
    by least squares on its observed rows, draw coefficients ``beta* ~ N(beta_hat,
    sigma^2 (X'X)^-1)``, predict every row with ``beta*``, and give each missing row the
    observed value of one of the ``k_pmm`` observed rows with the closest prediction, chosen at
    random. After ``burn_in`` cycles a copy is kept every ``between`` cycles.

    Written with NumPy because ``MICEData`` rebuilds patsy design matrices for every variable
    in every cycle: 20 imputations took 25 s there, a fraction of a second here.
    """
    data = frame.astype(float).to_numpy().copy()
    names = list(frame.columns)
    miss = np.isnan(data)
    todo = [names.index(c) for c in columns if miss[:, names.index(c)].any()]
    todo.sort(key=lambda j: miss[:, j].sum())
    for j in range(data.shape[1]):
        if miss[:, j].any():
            observed = data[~miss[:, j], j]
            data[miss[:, j], j] = rng.choice(observed, size=int(miss[:, j].sum()))

    def cycle() -> None:
        for j in todo:
            obs, mis = ~miss[:, j], miss[:, j]
            X = np.column_stack([np.ones(len(data)), np.delete(data, j, axis=1)])
            y = data[obs, j]
            XtX_inv = np.linalg.pinv(X[obs].T @ X[obs])
            beta = XtX_inv @ X[obs].T @ y
            dof = max(int(obs.sum()) - X.shape[1], 1)
            sigma2 = float(np.sum((y - X[obs] @ beta) ** 2)) / dof
            cov = sigma2 * (XtX_inv + XtX_inv.T) / 2
            draw = rng.multivariate_normal(beta, cov, method="eigh")
            pred = X @ draw
            order = np.argsort(pred[obs], kind="stable")
            sorted_pred, sorted_y = pred[obs][order], y[order]
            k = min(k_pmm, sorted_pred.size)
            # the k observed rows whose predictions are closest to each missing row's prediction
            distance = np.abs(pred[mis][:, None] - sorted_pred[None, :])
            nearest = np.argpartition(distance, k - 1, axis=1)[:, :k]
            pick = nearest[np.arange(nearest.shape[0]), rng.integers(0, k, nearest.shape[0])]
            data[mis, j] = sorted_y[pick]

    for _ in range(burn_in):
        cycle()
    copies = []
    for _ in range(m):
        for _ in range(between):
            cycle()
        copies.append(pd.DataFrame(data.copy(), columns=names, index=frame.index))
    return copies


def multiple_imputation(cohort: pd.DataFrame, ps_covariates: tuple[str, ...], cutoff: float, m: int = 20,
                        seed: int = 20260213, ps_formula: str | None = None, estimand: str = "ATO",
                        hc_type: str = "HC0", conf_level: float = 0.95,
                        outcomes: tuple[str, ...] = SENSITIVITY_OUTCOMES, burn_in: int = 10, between: int = 1,
                        treatment: str = TREATMENT, modifier: str = MODIFIER) -> ImputationResult:
    """Multiple imputation by chained equations of the propensity covariates
    (:func:`chained_equations`, seeded with ``numpy.random.default_rng(seed)``), the propensity
    model and weights re-estimated in each imputed data set, Rubin's rules (:func:`rubin`).

    Predictors of the imputation models: the other propensity variables, the treatment, the
    stenosis and, when completely observed, the 90-day mRS. Estimates are pooled on the link
    scale (difference in means, log RR) with complete-data df ``n - k`` for the linear model.
    With nothing missing every imputed set is the data, and the pooled result is the
    complete-case analysis.
    """
    needed = ps_variables(ps_covariates, ps_formula)
    base = cohort[cohort[treatment].notna() & cohort[modifier].notna()].reset_index(drop=True)
    missing = pd.DataFrame({"variable": list(needed), "n_missing": [int(base[c].isna().sum()) for c in needed]})
    if m == 0:
        return ImputationResult(table=pd.DataFrame(columns=MI_COLUMNS), missing=missing, m=0)
    auxiliary = [treatment] + ([modifier] if modifier not in needed else [])
    if "mrs_90d" in base.columns and base["mrs_90d"].notna().all():
        auxiliary.append("mrs_90d")
    if missing["n_missing"].sum() == 0:
        datasets = [base]  # every imputed set would be the data: analyse once, pool m identical copies
    else:
        frame = base[list(needed) + auxiliary]
        datasets = []
        for imputed in chained_equations(frame, list(needed), m, np.random.default_rng(seed), burn_in, between):
            filled = base.copy()
            filled[list(needed)] = imputed[list(needed)].to_numpy()
            datasets.append(filled)
    per_set = []
    for data in datasets:
        sample = analysis_sample(data, needed).data
        model = fit_propensity(sample, ps_covariates, formula=ps_formula, estimand=estimand)
        w = compute_weights(model.propensity, sample[treatment].to_numpy(), estimand)
        high = sample[modifier].to_numpy(float) > cutoff
        per_set.append(effect_rows(sample, outcomes, w, high, cutoff, treatment=treatment, hc_type=hc_type,
                                   conf_level=conf_level))
    results = pd.concat(per_set, ignore_index=True)
    if len(datasets) == 1:
        results = pd.concat([results] * m, ignore_index=True)
    rows = []
    for (outcome, subgroup), g in results.groupby(["outcome", "subgroup"], sort=False):
        measure = g["measure"].iloc[0]
        if g["std_error"].isna().any():
            note = next((n for n in g["note"] if n), "not estimable in some imputed data sets")
            rows.append({"outcome": outcome, "subgroup": subgroup, "measure": measure, "estimate": np.nan,
                         "ci_lower": np.nan, "ci_upper": np.nan, "p_value": np.nan, "m": m,
                         "fraction_missing_info": np.nan, "note": note})
            continue
        Q, T, nu, fmi = rubin(g["coef"].to_numpy(), g["std_error"].to_numpy() ** 2, float(g["df_resid"].iloc[0]))
        q = critical_value(conf_level, nu)
        se = np.sqrt(T)
        p = two_sided_p(Q / se, nu)
        est, lo, hi = Q, Q - q * se, Q + q * se
        if measure == "RR":
            est, lo, hi = np.exp(est), np.exp(lo), np.exp(hi)
        rows.append({"outcome": outcome, "subgroup": subgroup, "measure": measure, "estimate": est,
                     "ci_lower": lo, "ci_upper": hi, "p_value": float(p), "m": m,
                     "fraction_missing_info": fmi, "note": ""})
    return ImputationResult(table=pd.DataFrame(rows)[MI_COLUMNS], missing=missing, m=m)


# -------------------------------------------------------------------------- multiverse
@dataclass(frozen=True)
class PropensitySpec:
    """One propensity specification of the multiverse."""

    name: str
    covariates: tuple[str, ...]
    formula: str | None = None
    method: str = "logistic"


@dataclass(frozen=True)
class SpecificationFit:
    """A propensity specification fitted on its complete cases."""

    spec: PropensitySpec
    sample: pd.DataFrame = field(repr=False)
    propensity: np.ndarray | None = field(repr=False)
    terms: int
    note: str = ""  # why the model could not be fitted (then ``propensity`` is None)


def fit_specifications(df: pd.DataFrame, specs: list[PropensitySpec], estimand: str = "ATE",
                       treatment: str = TREATMENT) -> list[SpecificationFit]:
    """Fit each propensity specification once (CBPS balances for ``estimand``: ATT or else ATE).
    The primary one (the first) must fit; another that cannot (separation, too few patients for
    its terms) is kept with the reason in ``note`` and no propensity, never dropped silently."""
    fits = []
    for i, spec in enumerate(specs):
        sample = df.dropna(subset=list(ps_variables(spec.covariates, spec.formula))).reset_index(drop=True)
        try:
            model = fit_propensity(sample, spec.covariates, treatment=treatment, formula=spec.formula,
                                   method=spec.method, estimand=estimand)
        except PropensityError as err:
            if i == 0:
                raise
            fits.append(SpecificationFit(spec=spec, sample=sample, propensity=None, terms=0,
                                         note=f"not fitted: {str(err).removeprefix('propensity model: ')}"))
            continue
        fits.append(SpecificationFit(spec=spec, sample=sample, propensity=model.propensity, terms=len(model.terms)))
    return fits


def specification_curve(fits: list[SpecificationFit], cutoffs: list[float], min_arm_sizes: tuple[int, ...],
                        primary: dict, estimands: tuple[str, ...] = ESTIMANDS, hc_types: tuple[str, ...] = HC_TYPES,
                        conf_level: float = 0.95, outcome: str = "mrs_90d", treatment: str = TREATMENT,
                        modifier: str = MODIFIER) -> pd.DataFrame:
    """The low and high subgroup ATEs on the 90-day mRS over every combination of propensity
    specification, estimand, ``hc_type``, cutoff and ``min_arm_size`` (Simonsohn, Simmons &
    Nelson 2020).

    One row per specification and subgroup (``tables/specification_curve.csv``), every choice a
    column, with ``eligible`` (the cutoff's subgroup-arms all reach ``min_arm_size``),
    ``primary`` (the specification of the primary analysis, given by ``primary``: a dict of the
    five choices) and ``agrees`` (same sign and same significance at 5 % as the primary
    estimate of that subgroup). The models are the cell fits of the sweep, the four HC types
    from one pass, so thousands of specifications take a fraction of a second.
    """
    records = {k: [] for k in ("ps_spec", "estimand", "hc_type", "cutoff", "subgroup", "estimate", "se", "df",
                               "smallest")}
    for fit in (f for f in fits if f.propensity is not None):
        sample = fit.sample
        y_all = sample[outcome].to_numpy(float)
        keep = ~np.isnan(y_all)
        y = y_all[keep]
        t = sample[treatment].to_numpy(int)[keep]
        s = sample[modifier].to_numpy(float)[keep]
        for estimand in estimands:
            w = compute_weights(fit.propensity, sample[treatment].to_numpy(), estimand)[keep]
            for cutoff in cutoffs:
                cells = t + 2 * (s > cutoff).astype(int)
                by_hc = fit_cells_hc(y, w, cells, 4, "gaussian", tuple(hc_types))
                for hc in hc_types:
                    cf = by_hc[hc]
                    for subgroup, plus, minus in (("low", [1], [0]), ("high", [3], [2])):
                        b, se = cf.contrast(plus, minus) if cf.count.min() > 0 else (np.nan, np.nan)
                        for key, value in (("ps_spec", fit.spec.name), ("estimand", estimand), ("hc_type", hc),
                                           ("cutoff", float(cutoff)), ("subgroup", subgroup), ("estimate", b),
                                           ("se", se), ("df", cf.df_resid), ("smallest", cf.count.min())):
                            records[key].append(value)
    base = pd.DataFrame(records)
    # intervals and p for all specifications at once (the t quantile depends on df only)
    q = base["df"].map(lambda d: critical_value(conf_level, d)).to_numpy()
    est, se = base["estimate"].to_numpy(), base["se"].to_numpy()
    base["ci_lower"], base["ci_upper"] = est - q * se, est + q * se

    base["p_value"] = 2 * special.stdtr(base["df"].to_numpy(float), -np.abs(est / se))
    base["_order"] = np.arange(len(base))
    parts = []
    for size in min_arm_sizes:
        part = base.assign(min_arm_size=int(size))
        part["eligible"] = np.isfinite(part["ci_lower"]) & (part["smallest"] >= size)
        parts.append(part)
    # the order of the loops (specification, estimand, cutoff, HC type, subgroup), then min_arm_size
    curve = pd.concat(parts, ignore_index=True).sort_values(["_order", "min_arm_size"], kind="stable")
    curve = curve.reset_index(drop=True)
    curve = curve[["ps_spec", "estimand", "hc_type", "cutoff", "min_arm_size", "subgroup", "estimate", "ci_lower",
                   "ci_upper", "p_value", "eligible"]]
    choice = ["ps_spec", "estimand", "hc_type", "cutoff", "min_arm_size"]
    is_primary = np.ones(len(curve), bool)
    for c in choice:
        is_primary &= curve[c] == primary[c]
    curve["primary"] = is_primary
    reference = curve[is_primary].set_index("subgroup")
    if len(reference) != 2:
        raise ValueError("the primary specification is not among the combinations of the multiverse")
    ref_est = curve["subgroup"].map(reference["estimate"])
    ref_sig = curve["subgroup"].map(reference["p_value"] < 0.05)
    curve["agrees"] = (np.sign(curve["estimate"]) == np.sign(ref_est)) & ((curve["p_value"] < 0.05) == ref_sig)
    return curve


def multiverse_specs(ps_covariates: tuple[str, ...], ps_formula: str | None, ps_method: str,
                     rich_formula: str) -> list[PropensitySpec]:
    """The propensity specifications compared: the primary one, the richer formula, and the
    primary covariates with the other method (CBPS for a logistic primary, and vice versa)."""
    other = "cbps" if ps_method == "logistic" else "logistic"
    return [PropensitySpec("primary", tuple(ps_covariates), ps_formula, ps_method),
            PropensitySpec("rich formula", tuple(ps_covariates), rich_formula, "logistic"),
            PropensitySpec("CBPS" if other == "cbps" else "logistic", tuple(ps_covariates), ps_formula, other)]


def run_multiverse(fits: list[SpecificationFit], params, cutoff: float) -> pd.DataFrame:
    """:func:`specification_curve` over the fitted specifications (:func:`fit_specifications` of
    :func:`multiverse_specs`) and the choices of ``params`` (estimands ATO/ATE/ATT/ATM, HC0-HC3,
    the sweep's cutoffs, ``multiverse_min_arm_sizes``), the primary analysis being ``params``
    with the cutoff in use."""
    cutoffs = sorted(set(params.cutoffs()) | {float(cutoff)})
    sizes = tuple(sorted(set(params.multiverse_min_arm_sizes) | {params.min_arm_size}))
    primary = {"ps_spec": "primary", "estimand": params.estimand, "hc_type": params.hc_type,
               "cutoff": float(cutoff), "min_arm_size": params.min_arm_size}
    return specification_curve(fits, cutoffs, sizes, primary, conf_level=params.conf_level)


def propensity_specifications(fits: list[SpecificationFit], estimand: str, cutoff: float, hc_type: str = "HC0",
                              conf_level: float = 0.95, treatment: str = TREATMENT,
                              modifier: str = MODIFIER) -> pd.DataFrame:
    """Each propensity specification side by side: the largest |SMD| of the primary covariates
    before and after weighting, the effective sample size per arm, and the mRS subgroup ATEs."""
    rows = []
    base_covariates = list(fits[0].spec.covariates)
    for fit in fits:
        spec = fit.spec
        if fit.propensity is None:
            rows.append({"ps_spec": spec.name, "method": spec.method,
                         "specification": spec.formula or " + ".join(spec.covariates), "terms": np.nan,
                         **{c: np.nan for c in SPEC_VALUE_COLUMNS}, "note": fit.note})
            continue
        sample = fit.sample
        t = sample[treatment].to_numpy()
        w = compute_weights(fit.propensity, t, estimand)
        bal = balance_table(sample, base_covariates, w)
        effects = estimate_effect(sample, "mrs_90d", w, high=sample[modifier].to_numpy(float) > cutoff, cutoff=cutoff,
                                  treatment=treatment, hc_type=hc_type, conf_level=conf_level).set_index("subgroup")
        rows.append({"ps_spec": spec.name, "method": spec.method,
                     "specification": spec.formula or " + ".join(spec.covariates), "terms": fit.terms,
                     "max_abs_smd_unweighted": float(bal["smd_unweighted"].abs().max()),
                     "max_abs_smd_weighted": float(bal["smd_weighted"].abs().max()),
                     "ess_mt_only": effective_sample_size(w[t == 0]), "ess_mt_rs": effective_sample_size(w[t == 1]),
                     "ate_low": effects.loc["low", "estimate"], "ate_low_ci_lower": effects.loc["low", "ci_lower"],
                     "ate_low_ci_upper": effects.loc["low", "ci_upper"], "ate_high": effects.loc["high", "estimate"],
                     "ate_high_ci_lower": effects.loc["high", "ci_lower"],
                     "ate_high_ci_upper": effects.loc["high", "ci_upper"], "note": ""})
    return pd.DataFrame(rows)


SPEC_VALUE_COLUMNS = ("max_abs_smd_unweighted", "max_abs_smd_weighted", "ess_mt_only", "ess_mt_rs", "ate_low",
                      "ate_low_ci_lower", "ate_low_ci_upper", "ate_high", "ate_high_ci_lower", "ate_high_ci_upper")
