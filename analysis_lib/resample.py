"""Honest inference on the data-driven cutoff (ANALYSIS.md §8): the whole selection procedure
repeated inside every resample, on a vectorised fast path.

The per-replicate work is small matrices, so replicates are processed in batches:

* a bootstrap replicate is a vector of multiplicities ``m`` (how often each patient is drawn);
  every weighted sum of the procedure is then a matrix product of the ``B x n`` matrix of
  multiplicities (times weights) with a fixed ``n x k`` matrix;
* the propensity model is refitted in every replicate by Newton's method, batched: the
  Hessians ``X' diag(m mu (1 - mu)) X`` of all replicates are one product with the ``n x p^2``
  matrix of column products;
* the sweep's weighted cell sums for all cutoffs are one product with the ``n x 4K`` matrix of
  cell indicators, and the continuous model ``y ~ t * s`` is a batched 4 x 4 solve.

The statistics exist once, in :mod:`~analysis_lib.effects`, :mod:`~analysis_lib.cutoffs` and
:mod:`~analysis_lib.weighting`; tests pin this fast path to them (and to statsmodels) at 1e-8.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from .data import MODIFIER, TREATMENT
from .numerics import batched_logistic, sigmoid
from .outputs import interactive
from .weighting import PropensityError, aliased_columns, design_matrix, estimand_weights, fit_propensity

CHUNK = 500  # replicates per batch; fixed, so results do not depend on how batches are distributed
SELECTION_COLUMNS = ["cutoff", "times_selected", "share"]
CROSSING_COLUMNS = ["quantity", "estimate", "ci_lower", "ci_upper", "replicates"]
TEST_COLUMNS = ["statistic", "observed", "p_value", "replicates", "method"]
NULL_TREND_DEGREE = 3
WILD_METHOD = ("wild bootstrap under the null (Rademacher multipliers; restricted model: constant treatment "
               "effect and a cubic polynomial in stenosis)")


@dataclass(frozen=True)
class SubgroupModel:
    """One subgroup's own propensity model at one cutoff (``subgroup_weights = "within"``): its
    rows among all analysis rows, its model matrix (terms aliased there dropped) and the
    coefficients of the fit on the data (the Newton start of every replicate)."""

    rows: np.ndarray = field(repr=False)
    X: np.ndarray = field(repr=False)
    beta0: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class Design:
    """Everything the selection procedure needs, as arrays (built once by :func:`prepare`)."""

    X_ps: np.ndarray = field(repr=False)      # propensity model matrix (aliased columns dropped)
    t: np.ndarray = field(repr=False)         # treatment (all analysis-sample rows)
    known: np.ndarray = field(repr=False)     # rows with a known outcome
    y: np.ndarray = field(repr=False)         # outcome of the known rows
    s: np.ndarray = field(repr=False)         # stenosis of the known rows
    cutoffs: np.ndarray
    cell_indicators: np.ndarray = field(repr=False)  # known rows x (4 cells x K cutoffs)
    continuous_X: np.ndarray = field(repr=False)     # known rows x 4: 1, t, s, t*s
    beta0: np.ndarray = field(repr=False)     # full-sample propensity coefficients (Newton start)
    estimand: str = "ATO"
    min_arm_size: int = 10
    # Under within-subgroup weights: per cutoff, the (low, high) subgroup models, or None when a
    # subgroup cannot carry its own model on the data (that cutoff is then never eligible).
    subgroup_models: tuple | None = field(repr=False, default=None)

    @property
    def n(self) -> int:
        return int(self.t.size)


def prepare(df: pd.DataFrame, ps_covariates, cutoffs, estimand: str = "ATO", min_arm_size: int = 10,
            ps_formula: str | None = None, outcome: str = "mrs_90d", treatment: str = TREATMENT,
            modifier: str = MODIFIER, model=None, subgroup_weights: str = "overall") -> Design:
    """Arrays of the selection procedure for the analysis sample ``df`` (``model``: its fitted
    propensity model, refitted here when not given). ``subgroup_weights = "within"`` adds, for
    every cutoff, the propensity model of each subgroup (ANALYSIS.md §11)."""
    X = design_matrix(df, ps_covariates, ps_formula).to_numpy()
    X = X[:, ~aliased_columns(X)]
    t = df[treatment].to_numpy(float)
    y_all = df[outcome].to_numpy(float)
    known = ~np.isnan(y_all)
    y, s, tk = y_all[known], df[modifier].to_numpy(float)[known], t[known]
    cutoffs = np.asarray(cutoffs, float)
    cells = []
    for c in cutoffs:
        index = tk.astype(int) + 2 * (s > c).astype(int)
        cells.append(np.eye(4)[index])
    if model is None:
        model = fit_propensity(df, ps_covariates, formula=ps_formula, treatment=treatment)
    beta0 = model.coefficients.dropna().to_numpy()
    subgroup_models = None
    if subgroup_weights == "within":
        stenosis = df[modifier].to_numpy(float)
        subgroup_models = tuple(_subgroup_models(df, stenosis <= c, ps_covariates, ps_formula, treatment, estimand)
                                for c in cutoffs)
    return Design(X_ps=X, t=t, known=known, y=y, s=s, cutoffs=cutoffs, cell_indicators=np.hstack(cells),
                  continuous_X=np.column_stack([np.ones_like(s), tk, s, tk * s]), beta0=beta0,
                  estimand=estimand, min_arm_size=min_arm_size, subgroup_models=subgroup_models)


def _subgroup_models(df: pd.DataFrame, low: np.ndarray, ps_covariates, ps_formula, treatment: str,
                     estimand: str) -> tuple[SubgroupModel, SubgroupModel] | None:
    """The two subgroup models of one cutoff, fitted on the data (as
    :func:`~analysis_lib.subgroups.within_weights`), or ``None`` if either cannot be fitted."""
    models = []
    for mask in (low, ~low):
        rows = np.flatnonzero(mask)
        sub = df.iloc[rows].reset_index(drop=True)
        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                fit = fit_propensity(sub, ps_covariates, formula=ps_formula, treatment=treatment, estimand=estimand,
                                     constant="drop")
        except PropensityError:
            return None
        X = design_matrix(sub, fit.covariates, fit.formula)
        kept = [c for c in X.columns if np.isfinite(fit.coefficients.get(c, np.nan))]
        models.append(SubgroupModel(rows=rows, X=X[kept].to_numpy(float), beta0=fit.coefficients[kept].to_numpy()))
    return models[0], models[1]


def cutoff_weights(design: Design, M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Under within-subgroup weights, each cutoff's weights in ``B`` replicates: the subgroup
    models refitted on each replicate's multiplicities ``M`` (B x n). Returns ``W`` (K x B x
    n_known, weights times multiplicities of the rows with a known outcome) and ``valid`` (B x
    K): False where a subgroup model fails in that replicate (separation), or on the data."""
    B, K = M.shape[0], design.cutoffs.size
    W = np.zeros((K, B, int(design.known.sum())))
    valid = np.zeros((B, K), bool)
    for k, models in enumerate(design.subgroup_models):
        if models is None:
            continue
        e = np.full(M.shape, 0.5)
        ok = np.ones(B, bool)
        for model in models:
            with np.errstate(over="ignore", invalid="ignore"):
                beta, fitted = batched_logistic(model.X, design.t[model.rows], M[:, model.rows], model.beta0)
                e[:, model.rows] = sigmoid(beta @ model.X.T)
            ok &= fitted
        W[k] = (M * estimand_weights(e, design.t[None, :], design.estimand))[:, design.known]
        valid[:, k] = ok
    return W, valid


@dataclass(frozen=True)
class Procedure:
    """The selection procedure's results for ``B`` replicates (arrays of length B or B x K)."""

    difference: np.ndarray = field(repr=False)
    eligible: np.ndarray = field(repr=False)
    selected: np.ndarray   # index of the selected cutoff, -1 when none is eligible
    selected_difference: np.ndarray = field(repr=False)
    crossing: np.ndarray = field(repr=False)
    interaction: np.ndarray = field(repr=False)


def selection_procedure(design: Design, W: np.ndarray, counts: np.ndarray, y: np.ndarray | None = None,
                        by_cutoff: tuple[np.ndarray, np.ndarray] | None = None) -> Procedure:
    """Sweep, eligibility, selection and continuous model for ``B`` weight vectors at once.

    ``W`` (B x n_known): weights times multiplicities of the rows with a known outcome;
    ``counts`` (B x n_known): multiplicities (patients per subgroup-arm); ``y`` (B x n_known)
    outcomes per replicate, default the observed ones. Weighted cell means give the subgroup
    ATEs ``m1 - m0`` and ``m3 - m2`` and their difference at every cutoff, exactly as
    :func:`~analysis_lib.cutoffs.cutoff_sweep`; the selected cutoff maximises |difference|
    among the eligible ones (the lowest on a tie); the continuous model gives ``-b_t / b_t:s``.
    ``by_cutoff`` (``W_k, valid`` of :func:`cutoff_weights`): each cutoff's own weights for the
    subgroup cells (within-subgroup weights; ``W`` then weights the continuous model only).
    """
    K = design.cutoffs.size
    Y = design.y[None, :] if y is None else y
    if by_cutoff is None:
        sw = (W @ design.cell_indicators).reshape(-1, K, 4)
        swy = ((W * Y) @ design.cell_indicators).reshape(-1, K, 4)
    else:
        Wk, _ = by_cutoff
        cells = design.cell_indicators.reshape(-1, K, 4)
        sw = np.einsum("kbn,nkc->bkc", Wk, cells)
        swy = np.einsum("kbn,nkc->bkc", Wk * Y[None, :, :] if Y.ndim == 2 else Wk * Y, cells)
    n_cell = (counts @ design.cell_indicators).reshape(-1, K, 4)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = swy / sw
    difference = (mean[:, :, 3] - mean[:, :, 2]) - (mean[:, :, 1] - mean[:, :, 0])
    eligible = (n_cell.min(axis=2) >= design.min_arm_size) & np.all(n_cell > 0, axis=2)
    if by_cutoff is not None:
        eligible &= by_cutoff[1]
    score = np.where(eligible, np.abs(difference), -np.inf)
    selected = np.where(eligible.any(axis=1), np.argmax(score, axis=1), -1)
    rows = np.arange(difference.shape[0])
    selected_difference = np.where(selected >= 0, difference[rows, np.maximum(selected, 0)], np.nan)
    Xc = design.continuous_X
    XX = (Xc[:, :, None] * Xc[:, None, :]).reshape(Xc.shape[0], 16)
    A = (W @ XX).reshape(-1, 4, 4)
    b = (W * Y) @ Xc
    beta = _solve_each(A, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        crossing = -beta[:, 1] / beta[:, 3]
    return Procedure(difference=difference, eligible=eligible, selected=selected,
                     selected_difference=selected_difference, crossing=crossing, interaction=beta[:, 3])


def _solve_each(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``A[k] x[k] = b[k]`` for every replicate; a singular system (a resample without two
    stenosis degrees in an arm) gives NaN for that replicate instead of stopping the batch."""
    try:
        return np.linalg.solve(A, b[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        out = np.full(b.shape, np.nan)
        for k in range(A.shape[0]):
            try:
                out[k] = np.linalg.solve(A[k], b[k])
            except np.linalg.LinAlgError:
                pass
        return out


def observed(design: Design) -> Procedure:
    """The procedure on the data themselves (one replicate, every multiplicity 1)."""
    M = np.ones((1, design.n))
    return _bootstrap_batch(design, M)[0]


def _bootstrap_batch(design: Design, M: np.ndarray) -> tuple[Procedure, np.ndarray]:
    with np.errstate(over="ignore", invalid="ignore"):  # diverging (separated) replicates: dropped by ``ok``
        beta, ok = batched_logistic(design.X_ps, design.t, M, design.beta0)
        e = sigmoid(beta @ design.X_ps.T)
    W = M * estimand_weights(e, design.t[None, :], design.estimand)  # not normalised: scale-free
    Mk = M[:, design.known]
    by_cutoff = cutoff_weights(design, M) if design.subgroup_models is not None else None
    proc = selection_procedure(design, W[:, design.known], Mk, by_cutoff=by_cutoff)
    return proc, ok & np.isfinite(proc.interaction)


@dataclass(frozen=True)
class ResamplingResult:
    """The three tables of the resampling analysis and the replicate values behind them."""

    cutoff_selection: pd.DataFrame
    crossing_bootstrap: pd.DataFrame
    selection_test: pd.DataFrame
    bootstrap_selected: np.ndarray = field(repr=False)
    bootstrap_crossing: np.ndarray = field(repr=False)
    null_statistics: np.ndarray = field(repr=False)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tidy tables by file name."""
        return {"cutoff_selection": self.cutoff_selection, "crossing_bootstrap": self.crossing_bootstrap,
                "selection_test": self.selection_test}

    def __repr__(self) -> str:
        test = self.selection_test.iloc[0]
        return (f"ResamplingResult({int(self.crossing_bootstrap['replicates'].iloc[0])} bootstrap replicates, "
                f"{int(test['replicates'])} null replicates; selection-adjusted p = {test['p_value']:.4f})")


def _chunks(B: int) -> list[int]:
    return [min(CHUNK, B - start) for start in range(0, B, CHUNK)]


def bootstrap(design: Design, replicates: int, seed: int,
              progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nonparametric bootstrap of the whole procedure (propensity refit, weights, every cutoff,
    eligibility, selection, continuous model). Returns per-replicate ``selected`` (cutoff index
    or -1), ``selected_difference`` and ``crossing``; replicates whose propensity model fails
    (separation in the resample, or a singular continuous model) are dropped.

    Replicate batch ``j`` draws its multiplicities from ``numpy.random.default_rng`` seeded with
    the ``j``-th child of ``SeedSequence(seed)``, so results do not depend on the batching.
    """
    children = np.random.SeedSequence(seed).spawn(len(_chunks(replicates)))
    selected, diff, cross = [], [], []
    for size, child in zip(_chunks(replicates), children):
        rng = np.random.default_rng(child)
        M = rng.multinomial(design.n, np.full(design.n, 1.0 / design.n), size=size).astype(float)
        proc, ok = _bootstrap_batch(design, M)
        selected.append(proc.selected[ok])
        diff.append(proc.selected_difference[ok])
        cross.append(proc.crossing[ok])
        if progress is not None:
            progress(size)
    return np.concatenate(selected), np.concatenate(diff), np.concatenate(cross)


def null_residuals(design: Design, weights: np.ndarray, degree: int = NULL_TREND_DEGREE) -> tuple[np.ndarray, np.ndarray]:
    """Fitted values and residuals of the restricted (null) model of the selection test:
    weighted least squares of the outcome on the treatment and a polynomial of the given degree
    in standardised stenosis (no treatment-by-stenosis interaction), with the primary weights."""
    z = (design.s - design.s.mean()) / design.s.std()
    Z = np.column_stack([np.ones_like(z), design.continuous_X[:, 1]] + [z ** k for k in range(1, degree + 1)])
    w = weights[design.known]
    sw = np.sqrt(w)
    gamma = np.linalg.lstsq(Z * sw[:, None], design.y * sw, rcond=None)[0]
    fitted = Z @ gamma
    return fitted, design.y - fitted


def wild_null_test(design: Design, weights: np.ndarray, replicates: int, seed: int,
                   progress: Callable[[int], None] | None = None) -> tuple[float, np.ndarray]:
    """Selection-adjusted test of the largest |difference| over the eligible cutoffs.

    Null hypothesis: the treatment effect on the outcome does not depend on stenosis. Data
    under the null keep the design, the weights and the heteroskedasticity of the data: the
    restricted model of :func:`null_residuals` gives fitted values ``f`` and residuals ``r``,
    and replicate ``b`` has outcomes ``f + v_b r`` with independent Rademacher signs ``v_b``
    (wild bootstrap; Wu 1986, Davidson & Flachaire 2008). The whole selection (every cutoff,
    eligibility, the largest |difference|) is repeated in each replicate. Permuting the
    stenosis would break its strong association with the treatment and the covariates, and
    permuting the treatment would test the null of no effect at all: neither is this null.
    The treatment and covariates are unchanged, so the weights are too.

    Returns ``(observed statistic, null statistics)``; the p-value is
    ``(1 + #{T* >= T}) / (B + 1)``.
    """
    w_known = weights[design.known]
    counts = np.ones((1, design.y.size))
    # within-subgroup weights: fixed too, as only the outcomes change (the refit gives the same)
    fixed = cutoff_weights(design, np.ones((1, design.n))) if design.subgroup_models is not None else None
    obs = selection_procedure(design, w_known[None, :], counts, by_cutoff=fixed)
    statistic = float(obs.selected_difference[0])
    fitted, resid = null_residuals(design, weights)
    children = np.random.SeedSequence([seed, 1]).spawn(len(_chunks(replicates)))
    stats = []
    for size, child in zip(_chunks(replicates), children):
        rng = np.random.default_rng(child)
        v = rng.integers(0, 2, size=(size, design.y.size)) * 2.0 - 1.0
        Y = fitted[None, :] + v * resid[None, :]
        W = np.repeat(w_known[None, :], size, axis=0)
        by_cutoff = None if fixed is None else (np.repeat(fixed[0], size, axis=1), np.repeat(fixed[1], size, axis=0))
        proc = selection_procedure(design, W, np.repeat(counts, size, axis=0), y=Y, by_cutoff=by_cutoff)
        stats.append(np.abs(proc.selected_difference))
        if progress is not None:
            progress(size)
    return abs(statistic), np.concatenate(stats)


def resample(df: pd.DataFrame, weights: np.ndarray, ps_covariates, cutoffs, replicates: int, seed: int,
             estimand: str = "ATO", min_arm_size: int = 10, conf_level: float = 0.95, ps_formula: str | None = None,
             progress: Callable[[int], None] | None = None, subgroup_weights: str = "overall") -> ResamplingResult:
    """Bootstrap of the selection procedure and the selection-adjusted test
    (``tables/cutoff_selection.csv``, ``tables/crossing_bootstrap.csv``, ``tables/selection_test.csv``).

    Percentile intervals (R's quantile type 7) of the crossing point and of the selected
    difference; selection shares over the successful replicates (replicates without an eligible
    cutoff select none, so the shares may sum to less than 1). ``subgroup_weights = "within"``
    refits every cutoff's subgroup models inside every bootstrap replicate.
    """
    design = prepare(df, ps_covariates, cutoffs, estimand, min_arm_size, ps_formula,
                     subgroup_weights=subgroup_weights)
    obs = observed(design)
    sel, diff, cross = bootstrap(design, replicates, seed, progress)
    statistic, null = wild_null_test(design, weights, replicates, seed, progress)
    alpha = 1 - conf_level
    counts = np.bincount(sel[sel >= 0], minlength=design.cutoffs.size)
    selection = pd.DataFrame({"cutoff": design.cutoffs, "times_selected": counts,
                              "share": counts / max(sel.size, 1)})
    rows = []
    for name, estimate, values in (("crossing_point", obs.crossing[0], cross),
                                   ("selected_difference", obs.selected_difference[0], diff)):
        finite = values[np.isfinite(values)]
        lo, hi = np.quantile(finite, [alpha / 2, 1 - alpha / 2]) if finite.size else (np.nan, np.nan)
        rows.append({"quantity": name, "estimate": float(estimate), "ci_lower": float(lo), "ci_upper": float(hi),
                     "replicates": int(finite.size)})
    p = (1 + int(np.sum(null >= statistic - 1e-12 * abs(statistic)))) / (null.size + 1)
    test = pd.DataFrame([{"statistic": "max_abs_difference", "observed": statistic, "p_value": p,
                          "replicates": int(null.size), "method": WILD_METHOD}])
    return ResamplingResult(cutoff_selection=selection[SELECTION_COLUMNS], crossing_bootstrap=pd.DataFrame(rows),
                            selection_test=test[TEST_COLUMNS], bootstrap_selected=sel, bootstrap_crossing=cross,
                            null_statistics=null)


def run_resampling(study, replicates: int | None = None, progress_bar: bool | None = None) -> ResamplingResult | None:
    """:func:`resample` on a :class:`~analysis_lib.study.Study` with its parameters (replicates:
    ``bootstrap_replicates`` unless given), with a tqdm progress bar on standard error
    (``progress_bar=None``: except inside a build, see :func:`~analysis_lib.outputs.interactive`).
    ``None`` when the number of replicates is 0 (the analysis is skipped)."""
    progress_bar = interactive() if progress_bar is None else progress_bar
    p = study.params
    B = p.bootstrap_replicates if replicates is None else replicates
    if B == 0:
        return None
    bar = None
    if progress_bar:
        from tqdm import tqdm

        bar = tqdm(total=2 * B, unit="replicate", desc="resampling", file=sys.stderr, mininterval=0.5,
                   dynamic_ncols=True)
    try:
        return resample(study.data, study.weights, p.ps_covariates, p.cutoffs(), B, p.seed, p.estimand,
                        p.min_arm_size, p.conf_level, p.ps_formula, progress=None if bar is None else bar.update,
                        subgroup_weights=p.subgroup_weights)
    finally:
        if bar is not None:
            bar.close()
