"""What a reader sees survives another machine: no negative zero anywhere, and every formatted
table and sentence of the notebooks prints the same strings when the inputs change by a relative
1e-12 (as a change of CPU, BLAS or thread count does), except where a value lies within 1e-9 of a
rounding boundary. The exact numbers are pinned elsewhere, against R."""

from __future__ import annotations

import dataclasses
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from conftest import COHORTS

from analysis_lib import narrative, tables
from analysis_lib.balance import sample_sizes
from analysis_lib.cutoffs import continuous_interaction, cutoff_sweep
from analysis_lib.data import load_cohort
from analysis_lib.descriptives import table1
from analysis_lib.effects import table2
from analysis_lib.formatting import NEGATIVE_ZERO, fmt_ci, fmt_frame, fmt_num, fmt_p, fmt_pct
from analysis_lib.imputation import multiple_imputation
from analysis_lib.multiverse import fit_specifications, multiverse_specs, propensity_specifications, run_multiverse
from analysis_lib.params import Parameters
from analysis_lib.resample import run_resampling
from analysis_lib.sensitivity import center_sensitivity, cluster_robust, compare_variances, evalues, mrs_sd
from analysis_lib.specification import weight_sensitivity
from analysis_lib.steps import covariate_balance
from analysis_lib.study import load_study
from analysis_lib.weighting import weight_summary

CUTOFF = 75.0


# ------------------------------------------------------------------------ negative zero
@pytest.mark.parametrize("value", [-1e-17, -0.0, -4.9e-4, -1e-300])
def test_a_value_that_rounds_to_zero_prints_unsigned(value):
    assert fmt_num(value, 3) == "0.000" and fmt_num(value, 2, sign=True) == "0.00"
    assert fmt_num(value, 0) == "0" and fmt_pct(value / 100, 1) == "0.0%"
    assert fmt_ci(value, -value, 2) == "0.00 to 0.00"
    assert fmt_frame(pd.DataFrame({"smd": [value]}), 3)["smd"].iloc[0] == "0.000"


def test_values_away_from_zero_keep_their_sign():
    assert fmt_num(-0.0006, 3) == "-0.001" and fmt_num(0.004, 2, sign=True) == "0.00"
    assert fmt_num(0.005, 1, sign=True) == "0.0" and fmt_num(0.05, 1, sign=True) == "+0.1"
    assert fmt_num(-1.25, 1) == "-1.2" and fmt_num(float("nan")) == "-" and fmt_num(None) == "-"
    assert fmt_p(0.0004) == "<0.001" and fmt_p(0.0095) == "0.009" and fmt_p(0.049) == "0.05"


def test_the_balance_table_prints_exact_balance_as_zero():
    frame = pd.DataFrame({"covariate": ["age"], "type": ["Contin."], "smd_unweighted": [0.3],
                          "smd_weighted": [-1e-17], "variance_ratio_unweighted": [1.1],
                          "variance_ratio_weighted": [1.0], "balanced": ["Balanced, <0.1"]})
    assert tables.format_balance(frame).loc[0, "SMD weighted"] == "0.000"


def visible_texts(out) -> dict[str, str]:
    """Every text of a build that a reader sees: the supplement, HTML tables, notes, the executed
    notebooks' outputs and the Word tables."""
    texts = {str(p.relative_to(out)): p.read_text(encoding="utf-8")
             for pattern in ("supplement.html", "tables/*.html", "notes/*.md") for p in out.glob(pattern)}
    for path in out.glob("notebooks/*.ipynb"):
        nb = json.loads(path.read_text(encoding="utf-8"))
        shown = []
        for cell in nb["cells"]:
            for output in cell.get("outputs", []):
                shown.append("".join(output.get("text", "")))
                for kind in ("text/plain", "text/html", "text/markdown"):
                    shown.append("".join(output.get("data", {}).get(kind, "")))
        texts[str(path.relative_to(out))] = "\n".join(shown)
    for path in out.glob("tables/*.docx"):
        with zipfile.ZipFile(path) as archive:
            texts[str(path.relative_to(out))] = archive.read("word/document.xml").decode("utf-8")
    return texts


def test_no_text_of_a_build_prints_a_negative_zero(built):
    texts = visible_texts(built.out)
    assert len(texts) > 40
    hits = {name: NEGATIVE_ZERO.findall(text) for name, text in texts.items()}
    assert not {k: v for k, v in hits.items() if v}
    # the synthetic cohort does hold exact zeros computed as -1e-16 (overlap weights balance exactly,
    # within each subgroup under weights within subgroups)
    balance = pd.read_csv(built.out / "tables" / "subgroup_balance.csv")
    balance = balance[balance["weights"] == "within"].dropna(subset=["smd_weighted"])
    assert (balance["smd_weighted"] < 0).any() and (balance["smd_weighted"].abs() < 1e-12).all()


# ------------------------------------------------------------- formatting stability
def perturbed_cohort(relative: float = 1e-12) -> pd.DataFrame:
    """The synthetic cohort with its continuous covariates scaled by ``1 + relative`` (age) and
    ``1 - relative`` (onset-to-end time): ties and order stay (rank tests see the same data, as
    they do on every machine), while every weight and estimate moves by about ``relative``.
    (The stenosis degree is left alone: a reading equal to a cutoff would change subgroup, which
    no change of machine does.)"""
    cohort = load_cohort(COHORTS["synthetic"])
    cohort["age"] = cohort["age"] * (1 + relative)
    cohort["onset_to_end_min"] = cohort["onset_to_end_min"] * (1 - relative)
    return cohort


def displays(cohort: pd.DataFrame) -> dict[str, tuple[tuple, object]]:
    """Each formatted table and sentence the notebooks display, as (tidy inputs, formatter)."""
    params = Parameters(data_path=str(COHORTS["synthetic"]), bootstrap_replicates=400, mi_imputations=5)
    study = load_study(params, cohort=cohort)
    d, w = study.data, study.weights
    balance = covariate_balance(study)
    primary = table2(d, w, CUTOFF, params.hc_type, params.conf_level)
    sweep = cutoff_sweep(d, w, params.cutoffs(), params.min_arm_size, hc_type=params.hc_type)
    continuous = continuous_interaction(d, w, params.hc_type, params.conf_level)
    resampling = run_resampling(study, progress_bar=False)
    center = center_sensitivity(d, w, CUTOFF, outcomes=("mrs_90d", "mrs_0_2", "sich"))
    cluster = cluster_robust(d, w, CUTOFF)
    ev = evalues(primary, mrs_sd(d))
    comparison = compare_variances(study, CUTOFF)
    fits = fit_specifications(d, multiverse_specs(params.ps_covariates, None, "logistic", params.multiverse_formula),
                              params.estimand)
    specs = propensity_specifications(fits, params.estimand, CUTOFF)
    weights = weight_sensitivity(d, study.propensity, CUTOFF)
    mi = multiple_imputation(study.cohort, params.ps_covariates, CUTOFF, m=params.mi_imputations, seed=params.seed)
    curve = run_multiverse(fits, params, CUTOFF)
    coefficients = study.propensity.coefficients.rename("log-odds").to_frame()
    return {
        "01 Table 1": ((table1(d),), tables.format_table1),
        "02 coefficients": ((coefficients,), lambda c: fmt_frame(c, 4)),
        "02 weights": ((weight_summary(w, d["rescue_stenting"]),), lambda s: fmt_frame(s, {"sum": 1})),
        "02 balance": ((balance,), tables.format_balance),
        "02 sample sizes": ((sample_sizes(d, w),), tables.format_sample_sizes),
        "03 sweep": ((sweep,), tables.format_sweep),
        "03 continuous": ((continuous.summary, continuous.crossing), tables.format_continuous),
        "03 resampling": ((resampling, sweep), tables.format_resampling),
        "03 selection": ((resampling.cutoff_selection,), tables.format_cutoff_selection),
        "03 note": ((resampling, sweep), narrative.resampling_summary),
        "04 Table 2": ((primary, CUTOFF), tables.format_table2),
        "05 center": ((center.table, primary, CUTOFF), tables.format_center),
        "05 center models": ((center.models,), tables.format_center_models),
        "05 center note": ((center.table, primary, CUTOFF), narrative.center_summary),
        "05 cluster": ((cluster, primary, CUTOFF), tables.format_cluster),
        "05 cluster note": ((cluster, primary), narrative.cluster_summary),
        "05 E-values": ((ev, CUTOFF), tables.format_evalues),
        "05 E-value note": ((ev, CUTOFF), narrative.evalue_summary),
        "05 variances": ((comparison, CUTOFF), tables.format_variance_comparison),
        "05 variance note": ((comparison,), narrative.variance_summary),
        "06 specifications": ((specs,), tables.format_propensity_specifications),
        "06 weights": ((weights, CUTOFF), tables.format_weight_sensitivity),
        "06 weights note": ((weights, CUTOFF), narrative.weights_summary),
        "06 imputation": ((mi.table, primary, CUTOFF), tables.format_imputation),
        "06 multiverse note": ((curve,), narrative.multiverse_summary),
    }


def nudge(obj, factor: float):
    """``obj`` with every non-integral float scaled by ``factor`` (counts, cutoffs and other whole
    numbers stay: they are not results of floating-point arithmetic)."""
    if isinstance(obj, pd.DataFrame):
        out = obj.copy()
        for column in out.columns:
            if pd.api.types.is_float_dtype(out[column]):
                x = out[column].to_numpy(float)
                out[column] = np.where(np.isfinite(x) & (x != np.round(x)), x * factor, x)
        return out
    if isinstance(obj, np.ndarray) and obj.dtype.kind == "f":
        return np.where(np.isfinite(obj) & (obj != np.round(obj)), obj * factor, obj)
    if isinstance(obj, float) and np.isfinite(obj) and obj != round(obj):
        return obj * factor
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: nudge(getattr(obj, f.name), factor)
                                           for f in dataclasses.fields(obj) if f.init})
    return obj


def cells(shown) -> dict:
    if isinstance(shown, pd.DataFrame):
        return {(i, c): str(v) for i, row in shown.reset_index(drop=True).iterrows() for c, v in row.items()}
    return {0: str(shown)}


@pytest.fixture(scope="module")
def both():
    return displays(load_cohort(COHORTS["synthetic"])), displays(perturbed_cohort())


def test_every_notebook_display_is_covered(both):
    """Each notebook with results contributes (00 audits printed numbers, 07 simulates: neither reads the data)."""
    original, _ = both
    assert sorted(original) == sorted(DISPLAYS)
    assert {name[:2] for name in original} == {"01", "02", "03", "04", "05", "06"}


DISPLAYS = ["01 Table 1", "02 coefficients", "02 weights", "02 balance", "02 sample sizes", "03 sweep",
            "03 continuous", "03 resampling", "03 selection", "03 note", "04 Table 2", "05 center",
            "05 center models", "05 center note", "05 cluster", "05 cluster note", "05 E-values", "05 E-value note",
            "05 variances", "05 variance note", "06 specifications", "06 weights", "06 weights note",
            "06 imputation", "06 multiverse note"]


@pytest.mark.parametrize("name", DISPLAYS)
def test_formatted_output_survives_a_relative_change_of_1e_12(both, name):
    original, perturbed = both
    (inputs, formatter), (inputs_p, _) = original[name], perturbed[name]
    shown, shown_p = cells(formatter(*inputs)), cells(formatter(*inputs_p))
    assert shown.keys() == shown_p.keys()
    changed = [k for k in shown if shown[k] != shown_p[k]]
    if not changed:
        return
    # a change is allowed only where the value sits within 1e-9 of a rounding boundary: there,
    # moving every number by a relative 1e-9 changes the printed string too
    low, high = cells(formatter(*nudge(inputs, 1 - 1e-9))), cells(formatter(*nudge(inputs, 1 + 1e-9)))
    unexplained = [k for k in changed if low[k] == high[k]]
    assert not unexplained, {k: (shown[k], shown_p[k]) for k in unexplained}


def test_the_perturbation_moves_the_numbers_and_the_check_can_fail(both):
    original, perturbed = both
    estimate = original["04 Table 2"][0][0]["estimate"].to_numpy(float)
    estimate_p = perturbed["04 Table 2"][0][0]["estimate"].to_numpy(float)
    relative = np.abs(estimate_p - estimate)[np.isfinite(estimate)] / np.abs(estimate[np.isfinite(estimate)])
    assert 1e-16 < relative.max() < 1e-9  # every number moved, by about what another machine does
    # a display of all the digits would differ: exactly what the check exists to catch
    raw = lambda t, cutoff: t[["estimate"]].map(repr)
    assert cells(raw(*original["04 Table 2"][0])) != cells(raw(*perturbed["04 Table 2"][0]))
