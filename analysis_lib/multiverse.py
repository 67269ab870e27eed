"""The multiverse of analysis choices (ANALYSIS.md §8): propensity specifications (primary, a
richer formula, the other method) and every combination of specification, estimand, sandwich,
cutoff and minimum subgroup-arm size, as a specification curve (Simonsohn, Simmons & Nelson 2020).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .balance import balance_table, effective_sample_size
from .data import MODIFIER, TREATMENT
from .effects import estimate_effect, fit_cells_hc
from .numerics import critical_value, two_sided_p
from .ordinal import level_codes, subgroup_common_ors
from .params import ESTIMANDS, HC_TYPES
from .weighting import PropensityError, PropensityModel, compute_weights, fit_propensity, ps_variables


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
                       treatment: str = TREATMENT, primary: PropensityModel | None = None) -> list[SpecificationFit]:
    """Fit each propensity specification once (CBPS balances for ``estimand``: ATT or else ATE).
    The primary one (the first) must fit; another that cannot (separation, too few patients for
    its terms) is kept with the reason in ``note`` and no propensity, never dropped silently.
    ``primary``: the first specification's model, when already fitted on ``df`` (it is not
    refitted, and the maximum-likelihood stage of the others starts from its coefficients)."""
    fits = []
    for i, spec in enumerate(specs):
        needed = list(ps_variables(spec.covariates, spec.formula))
        complete = df.index.equals(pd.RangeIndex(len(df))) and not df[needed].isna().to_numpy().any()
        sample = df if complete else df.dropna(subset=needed).reset_index(drop=True)  # no copy of complete data
        try:
            if i == 0 and primary is not None and complete:
                model = primary
            else:
                model = fit_propensity(sample, spec.covariates, treatment=treatment, formula=spec.formula,
                                       method=spec.method, estimand=estimand,
                                       start=None if primary is None else primary.coefficients)
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
    """The low and high subgroup ATEs on the 90-day mRS, and their common odds ratios of a lower
    mRS (:data:`OR_COLUMNS`), over every combination of propensity specification, estimand,
    ``hc_type``, cutoff and ``min_arm_size`` (Simonsohn, Simmons & Nelson 2020).

    One row per specification and subgroup (``tables/specification_curve.csv``), every choice a
    column, with ``eligible`` (the cutoff's subgroup-arms all reach ``min_arm_size``),
    ``primary`` (the specification of the primary analysis, given by ``primary``: a dict of the
    five choices) and ``agrees`` (same sign and same significance at 5 % as the primary
    estimate of that subgroup; ``common_or_agrees`` the same for the common odds ratio). The
    models are the cell fits of the sweep, the four HC types from one pass, and the
    proportional-odds fits on cells, so thousands of specifications take a fraction of a second.
    """
    records = {k: [] for k in ("ps_spec", "estimand", "hc_type", "cutoff", "subgroup", "estimate", "se", "df",
                               "smallest", *OR_COLUMNS)}
    for fit in (f for f in fits if f.propensity is not None):
        sample = fit.sample
        y_all = sample[outcome].to_numpy(float)
        keep = ~np.isnan(y_all)
        y = y_all[keep]
        levels = level_codes(y)  # coded once for the proportional-odds fits of every choice below
        t = sample[treatment].to_numpy(int)[keep]
        s = sample[modifier].to_numpy(float)[keep]
        for estimand in estimands:
            w = compute_weights(fit.propensity, sample[treatment].to_numpy(), estimand)[keep]
            for cutoff in cutoffs:
                cells = t + 2 * (s > cutoff).astype(int)
                by_hc = fit_cells_hc(y, w, cells, 4, "gaussian", tuple(hc_types))
                odds = subgroup_common_ors(levels, t, s > cutoff, w, conf_level, coded=True)
                for hc in hc_types:
                    cf = by_hc[hc]
                    for i, (subgroup, plus, minus) in enumerate((("low", [1], [0]), ("high", [3], [2]))):
                        b, se = cf.contrast(plus, minus) if cf.count.min() > 0 else (np.nan, np.nan)
                        for key, value in (("ps_spec", fit.spec.name), ("estimand", estimand), ("hc_type", hc),
                                           ("cutoff", float(cutoff)), ("subgroup", subgroup), ("estimate", b),
                                           ("se", se), ("df", cf.df_resid), ("smallest", cf.count.min()),
                                           ("common_or", odds.common_or[i]), ("common_or_ci_lower", odds.ci_lower[i]),
                                           ("common_or_ci_upper", odds.ci_upper[i]),
                                           ("common_or_p_value", odds.p_value[i])):
                            records[key].append(value)
    base = pd.DataFrame(records)
    # intervals and p for all specifications at once (the t quantile depends on df only)
    q = base["df"].map(lambda d: critical_value(conf_level, d)).to_numpy()
    est, se = base["estimate"].to_numpy(), base["se"].to_numpy()
    base["ci_lower"], base["ci_upper"] = est - q * se, est + q * se
    base["p_value"] = [two_sided_p(z, d) for z, d in zip(est / se, base["df"].to_numpy(float))]
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
                   "ci_upper", "p_value", "eligible", *OR_COLUMNS]]
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
    # the common odds ratio: the same direction (> 1 or < 1) and significance as the primary's
    ref_or = curve["subgroup"].map(np.sign(np.log(reference["common_or"])))
    ref_or_sig = curve["subgroup"].map(reference["common_or_p_value"] < 0.05)
    curve["common_or_agrees"] = ((np.sign(np.log(curve["common_or"])) == ref_or)
                                 & ((curve["common_or_p_value"] < 0.05) == ref_or_sig))
    # the mean-difference columns first (as before the ordinal columns existed), then the ordinal ones
    first = [c for c in curve.columns if c not in OR_COLUMNS and c != "common_or_agrees"]
    return curve[first + [*OR_COLUMNS, "common_or_agrees"]]


# The ordinal columns of the specification curve: the weighted proportional-odds model of the
# same subgroups (ordinal.subgroup_common_ors), with the HC0 sandwich whatever ``hc_type`` (the
# HC1-HC3 leverage corrections are defined for least squares, not for the proportional-odds
# likelihood; R's sandwich::vcovHC gives only HC0 for polr), so they repeat across hc_type.
OR_COLUMNS = ("common_or", "common_or_ci_lower", "common_or_ci_upper", "common_or_p_value")


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
