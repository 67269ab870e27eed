"""Causal subgroup analysis (ANALYSIS.md §11): balance within the stenosis subgroups, and the
weights that achieve it.

A subgroup estimate is only as good as the balance of the covariates *within* that subgroup
(Yang, Lorenzi, Papadogeorgou, Wojdyla, Li & Thomas, *Propensity score weighting for causal
subgroup analysis*, Stat Med 2021): its bias is bounded by the within-subgroup imbalance. Weights
from the overall propensity model balance the covariates in the whole sample, not within
``low`` (stenosis <= cutoff) and ``high`` (> cutoff). With ``subgroup_weights = "within"`` the
propensity model is fully interacted with the subgroup indicator, i.e. one model per subgroup
with the same terms, and its overlap weights balance the mean of every term exactly within each
subgroup (the logistic score equations of each subgroup's model are exactly the balance
conditions of overlap weights).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from .balance import CovariateArms
from .data import MODIFIER, TREATMENT
from .mestimation import estimation_from_design
from .weighting import PropensityError, compute_weights, design_matrix, fit_propensity, ps_variables

SUBGROUP_WEIGHTS: tuple[str, ...] = ("overall", "within")
SUBGROUP_BALANCE_COLUMNS = ["cutoff", "weights", "subgroup", "covariate", "smd_unweighted", "smd_weighted",
                            "variance_ratio_weighted", "note"]


def subgroup_label(subgroup: str, cutoff: float) -> str:
    """``≤ 75 %`` or ``> 75 %``."""
    return f"≤ {cutoff:g} %" if subgroup == "low" else f"> {cutoff:g} %"


@dataclass(frozen=True)
class SubgroupWeights:
    """The weights of the subgroup rows at one cutoff.

    ``method`` ``overall``: the weights of the overall propensity model; ``within``: the weights
    of one propensity model per subgroup (normalised to mean 1 over the analysis sample; a
    factor common to a subgroup changes no subgroup estimate). ``weights`` is ``None`` when a
    subgroup cannot carry its own model, and ``note`` says why. ``design_of()`` makes the model
    matrix of the interacted model (one block of columns per subgroup) for the M-estimation
    variance, when it is asked for: kept for every cutoff of the sweep it held 2 GB at 10^6
    patients.
    """

    cutoff: float
    method: str
    weights: np.ndarray | None = field(repr=False)
    propensity: np.ndarray | None = field(repr=False)
    design_of: Callable[[], np.ndarray] | None = field(repr=False, default=None, compare=False)
    estimand: str = "ATO"
    note: str = ""

    @property
    def estimable(self) -> bool:
        return self.weights is not None

    def estimation(self, treatment: np.ndarray):
        """:class:`~analysis_lib.mestimation.PropensityEstimation` of the interacted model (the
        M-estimation variance of the subgroup rows stacks it with the outcome model)."""
        if self.design_of is None:
            raise ValueError("the M-estimation of overall weights belongs to the overall propensity model")
        return estimation_from_design(self.design_of(), self.propensity, treatment, self.estimand)


def within_weights(df: pd.DataFrame, cutoff: float, covariates: tuple[str, ...] | list[str],
                   formula: str | None = None, method: str = "logistic", estimand: str = "ATO",
                   treatment: str = TREATMENT, modifier: str = MODIFIER,
                   start: pd.Series | None = None) -> SubgroupWeights:
    """Weights from a propensity model fitted separately in ``low`` and ``high`` at ``cutoff``
    (equivalently, the model fully interacted with the subgroup indicator), with the separation
    checks of :func:`~analysis_lib.weighting.fit_propensity`; a term constant within a subgroup
    is dropped there, as R's ``glm`` reports it NA. A subgroup without both arms, with no more
    patients than terms, or whose model separates the arms makes the weights not estimable,
    with the reason in ``note`` (never a fall-back to the overall model). ``start``: coefficients
    where each subgroup's fit starts (the overall model's: the same fits in fewer steps; see
    :func:`~analysis_lib.weighting.fit_propensity`)."""
    high = df[modifier].to_numpy(float) > cutoff
    t = df[treatment].to_numpy(float)
    propensity = np.full(len(df), np.nan)
    models = []
    columns = [treatment, *(c for c in ps_variables(covariates, formula) if c != treatment)]
    for subgroup, mask in (("low", ~high), ("high", high)):
        sub = df.loc[mask, columns].reset_index(drop=True)  # the model's columns: not a copy of every column
        label = f"the {subgroup} subgroup (stenosis {subgroup_label(subgroup, cutoff)}, {len(sub)} patients)"
        try:
            if sub.empty:
                raise PropensityError("propensity model: no patients")
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # a separating fit diverges
                model = fit_propensity(sub, covariates, treatment=treatment, formula=formula, method=method,
                                       estimand=estimand, constant="drop", start=start)
        except PropensityError as err:
            reason = str(err).removeprefix("propensity model: ").split("; remove")[0]
            return SubgroupWeights(cutoff=float(cutoff), method="within", weights=None, propensity=None,
                                   estimand=estimand, note=f"not estimable with weights within subgroups: {label} "
                                                           f"cannot carry its own propensity model ({reason})")
        propensity[mask] = model.propensity
        models.append((mask, model))

    def design_of() -> np.ndarray:
        blocks = []
        for mask, model in models:
            X = design_matrix(df.loc[mask, columns].reset_index(drop=True), model.covariates, model.formula)
            blocks.append(X[[c for c in X.columns if np.isfinite(model.coefficients.get(c, np.nan))]].to_numpy())
        design = np.zeros((len(df), sum(b.shape[1] for b in blocks)))
        first = 0
        for (mask, _), block in zip(models, blocks):
            design[mask, first:first + block.shape[1]] = block
            first += block.shape[1]
        return design

    return SubgroupWeights(cutoff=float(cutoff), method="within", weights=compute_weights(propensity, t, estimand),
                           propensity=propensity, design_of=design_of, estimand=estimand)


def overall_weights(weights: np.ndarray, propensity: np.ndarray, cutoff: float, estimand: str) -> SubgroupWeights:
    """The overall model's weights, as :class:`SubgroupWeights` of ``cutoff``."""
    return SubgroupWeights(cutoff=float(cutoff), method="overall", weights=np.asarray(weights, float),
                           propensity=np.asarray(propensity, float), estimand=estimand)


def subgroup_balance(terms: pd.DataFrame, treatment: np.ndarray, stenosis: np.ndarray,
                     weightings: list[SubgroupWeights], estimand: str = "ATO", binary: str = "std") -> pd.DataFrame:
    """Balance within the subgroups (``tables/subgroup_balance.csv``), ANALYSIS.md §11: for each
    weighting (one :class:`SubgroupWeights` per cutoff and method), subgroup and term, the SMD
    before and after weighting with the conventions of :func:`~analysis_lib.balance.smd` applied
    inside the subgroup (means of the subgroup's two arms over the SD of its *unweighted* arms;
    pooled for ATO, ATE and ATM) and the weighted variance ratio (continuous terms). Rows whose
    number cannot be computed say why in ``note``."""
    t = np.asarray(treatment, float)
    s = np.asarray(stenosis, float)
    values = [terms[c].to_numpy(float) for c in terms.columns]
    # is_binary and "constant" of a term in a subgroup from its smallest and largest value there,
    # for terms whose every value is 0 or 1 (with missing values: computed by CovariateArms)
    zero_one = [bool(np.all((x == 0) | (x == 1))) for x in values]
    complete = not any(np.isnan(x).any() for x in values)
    split = {}  # (cutoff, subgroup): the rows of each arm and each term split by arm, shared by the methods

    def arms_of(cutoff: float, subgroup: str):
        if (cutoff, subgroup) not in split:
            if not any(key[0] == cutoff for key in split):
                split.clear()  # one cutoff's split at a time (the weightings come by cutoff): 1 GB less at n = 10^6
            mask = (s > cutoff) if subgroup == "high" else ~(s > cutoff)
            rows1, rows0 = np.flatnonzero(mask & (t == 1)), np.flatnonzero(mask & (t == 0))
            empty = [arm for arm, rows in (("MT+RS", rows1), ("MT only", rows0)) if rows.size == 0]
            arms = {}
            if not empty:
                for j, c in enumerate(terms.columns):
                    x1, x0 = values[j][rows1], values[j][rows0]  # contiguous (a 2-d gather is not: 9 times slower sums)
                    if complete:
                        low, high = min(x1.min(), x0.min()), max(x1.max(), x0.max())
                        arms[c] = CovariateArms.from_arms(x1, x0, bool(zero_one[j] and low == 0 and high == 1), bool(low == high))
                    else:
                        arms[c] = CovariateArms.from_arms(x1, x0)
            unweighted = {c: a.smd(None, estimand, binary) for c, a in arms.items()}
            split[cutoff, subgroup] = (rows1, rows0), empty, arms, unweighted
        return split[cutoff, subgroup]

    rows = []
    for sw in weightings:
        for subgroup in ("low", "high"):
            (rows1, rows0), empty, arms, unweighted = arms_of(sw.cutoff, subgroup)
            arm_weights = (sw.weights[rows1], sw.weights[rows0]) if sw.estimable and not empty else None
            for covariate in terms.columns:
                row = {"cutoff": sw.cutoff, "weights": sw.method, "subgroup": subgroup, "covariate": covariate,
                       "smd_unweighted": np.nan, "smd_weighted": np.nan, "variance_ratio_weighted": np.nan, "note": ""}
                if empty:
                    row["note"] = f"no {' or '.join(empty)} patients in this subgroup"
                else:
                    row["smd_unweighted"] = unweighted[covariate]
                    if sw.estimable:
                        a = arms[covariate]
                        row["smd_weighted"] = a.smd(arm_weights, estimand, binary)
                        row["variance_ratio_weighted"] = a.variance_ratio(arm_weights)
                        if a.constant:
                            row["note"] = "constant in this subgroup: nothing to balance"
                        elif np.isnan(row["smd_unweighted"]):
                            row["note"] = "SD undefined: an arm of one patient in this subgroup"
                    else:
                        row["note"] = sw.note
                rows.append(row)
    return pd.DataFrame(rows, columns=SUBGROUP_BALANCE_COLUMNS)


def largest_imbalance(balance: pd.DataFrame, cutoff: float, method: str) -> pd.Series | None:
    """The row with the largest weighted |SMD| at ``cutoff`` under ``method`` (None if none)."""
    rows = balance[(balance["cutoff"] == cutoff) & (balance["weights"] == method)].dropna(subset=["smd_weighted"])
    if rows.empty:
        return None
    return rows.loc[rows["smd_weighted"].abs().idxmax()]
