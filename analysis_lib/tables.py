"""Formatted tables for the manuscript, built from the tidy frames (no computation here).

Conventions of the paper: estimates with two decimals, ``95 % CI`` as ``lower to upper``,
p-values with two decimals, three below 0.01 and ``<0.001`` below 0.001.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from .audit import SEVERITIES
from .descriptives import LABELS, TABLE1_VARIABLES, variable_label
from .formatting import MISSING, fmt_ci, fmt_num, fmt_p, fmt_pct  # noqa: F401  (the formatters of every table)

OUTCOME_LABELS = {
    "mrs_90d": "90-day mRS score",
    "mrs_0_2": "90-day mRS 0-2",
    "mrs_0_3": "90-day mRS 0-3",
    "final_mtici_2b3": "mTICI 2b-3",
    "reocclusion": "Post-procedure re-occlusion",
    "sich": "sICH",
    "death_90d": "90-day mortality",
    "utility_mrs": "90-day utility-weighted mRS",
}
ABBREVIATIONS = (
    "MD difference in mean 90-day mRS (MT+RS minus MT only; negative favours MT+RS; weighted, it estimates the "
    "effect in the population of the weights, see the captions); CI confidence interval; ESS effective sample size; IQR interquartile range; IPTW inverse "
    "probability of treatment weighting (here overlap weights unless stated); MT mechanical thrombectomy; "
    "mRS modified Rankin Scale; mTICI modified Treatment In Cerebral Infarction; RR relative risk (MT only "
    "is the reference); RS rescue stenting; SMD standardised mean difference; sICH symptomatic intracranial "
    "hemorrhage."
)


def _count(n, total, pct, masked_below: int = 0) -> str:
    if total is None or (isinstance(total, float) and math.isnan(total)) or total == 0:
        return "-"
    if pd.isna(n):
        return f"<{masked_below}/{int(total)}" if masked_below > 1 else "-"
    return f"{int(n)}/{int(total)} ({fmt_num(pct, 1)})"


def _whole(value: float) -> str:
    """A median or quartile as the paper prints it: a whole number, halves rounded up (322.5 -> 323)."""
    return str(int(math.floor(round(value, 6) + 0.5)))  # (round first: 322.5 - 1e-12 is still 322.5)


def _median(med, q1, q3) -> str:
    if pd.isna(med):
        return "-"
    return f"{_whole(med)} ({_whole(q1)}-{_whole(q3)})"


def format_table1(tidy: pd.DataFrame, sections: bool = True) -> pd.DataFrame:
    """Table 1 as printed: variable (unit), n/N (%) or median (IQR, whole numbers as the paper)
    per arm, p and test, under the paper's section rows (``sections``); counts masked by
    :func:`~analysis_lib.descriptives.mask_small_cells` print as ``<k/N``."""
    masked_below = int(tidy.attrs.get("min_cell_size", 0))
    section_of = {v.name: v.section for v in TABLE1_VARIABLES}
    n0 = int(tidy.loc[tidy["variable"] == "age", "mt_only_total"].iloc[0]) if (tidy["variable"] == "age").any() else None
    n1 = int(tidy.loc[tidy["variable"] == "age", "mt_rs_total"].iloc[0]) if (tidy["variable"] == "age").any() else None
    arms = (f"MT only (N = {n0})", f"MT+RS (N = {n1})")
    rows = []
    current = None
    for _, r in tidy.iterrows():
        name = r["variable"]
        section = section_of.get(name.split("=", 1)[0])
        if sections and section and section != current:
            rows.append({"Characteristic": section, arms[0]: "", arms[1]: "", "p": "", "Test": ""})
            current = section
        label = variable_label(name)
        if r["summary"] == "median":
            label += ", median (IQR)"
            a = _median(r["mt_only_median"], r["mt_only_q1"], r["mt_only_q3"])
            b = _median(r["mt_rs_median"], r["mt_rs_q1"], r["mt_rs_q3"])
        else:
            label += ", n/N (%)"
            a = _count(r["mt_only_n"], r["mt_only_total"], r["mt_only_pct"], masked_below)
            b = _count(r["mt_rs_n"], r["mt_rs_total"], r["mt_rs_pct"], masked_below)
        rows.append({"Characteristic": label, arms[0]: a, arms[1]: b, "p": fmt_p(r["p_value"]), "Test": r["test"] or "-"})
    return pd.DataFrame(rows)


def subgroup_names(cutoff: float) -> dict[str, str]:
    """The printed names of the subgroups, as the paper writes them (``≤``, ``>``)."""
    return {"overall": "Entire cohort", "low": f"≤{cutoff:g}% stenosis", "high": f">{cutoff:g}% stenosis"}


def measure_label(measure: str) -> str:
    """How a measure is printed: ``MD`` (difference in means; weighted, it estimates the average
    treatment effect of the weights' population, named in the captions) or ``RR``."""
    return "MD" if measure == "ATE" else measure


def drop_empty_notes(table: pd.DataFrame) -> pd.DataFrame:
    """A printed table without its ``Note`` column when no row has a note."""
    if "Note" in table.columns and not table["Note"].astype(str).str.strip().any():
        return table.drop(columns="Note")
    return table


def format_effect(measure: str, est: float, lo: float, hi: float) -> str:
    if pd.isna(est):
        return "not estimable"
    return f"{fmt_num(est)} ({fmt_ci(lo, hi)})"


def format_table2(tidy: pd.DataFrame, cutoff: float) -> pd.DataFrame:
    """Table 2 as printed: one row per outcome and subgroup, unadjusted and IPTW side by side."""
    names = subgroup_names(cutoff)
    rows = []
    for (outcome, subgroup), g in tidy.groupby(["outcome", "subgroup"], sort=False):
        first = g.iloc[0]
        row = {"Outcome": OUTCOME_LABELS.get(outcome, outcome), "Subgroup": names[subgroup],
               "Measure": measure_label(first["measure"])}
        for analysis, label in (("unadjusted", "Unadjusted"), ("iptw", "IPTW")):
            r = g[g["analysis"] == analysis].iloc[0]
            row[f"{label} (95% CI)"] = format_effect(r["measure"], r["estimate"], r["ci_lower"], r["ci_upper"])
            row[f"{label} p"] = fmt_p(r["p_value"])
            row[f"{label} p-int"] = fmt_p(r["p_interaction"]) if subgroup != "overall" else "-"
        row["Note"] = "; ".join(sorted({n for n in g["note"] if isinstance(n, str) and n}))
        rows.append(row)
    return drop_empty_notes(pd.DataFrame(rows))


def format_balance(tidy: pd.DataFrame) -> pd.DataFrame:
    """Supplementary Table 1: SMDs and variance ratios before and after weighting, as bal.tab."""
    return pd.DataFrame({
        "Covariate": tidy["covariate"].map(variable_label),
        "Type": tidy["type"],
        "SMD unweighted": tidy["smd_unweighted"].map(lambda v: fmt_num(v, 3)),
        "SMD weighted": tidy["smd_weighted"].map(lambda v: fmt_num(v, 3)),
        "Variance ratio unweighted": tidy["variance_ratio_unweighted"].map(lambda v: fmt_num(v, 2)),
        "Variance ratio weighted": tidy["variance_ratio_weighted"].map(lambda v: fmt_num(v, 2)),
        "Balance (|SMD| < 0.1)": tidy["balanced"],
    })


def format_sample_sizes(tidy: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "Arm": tidy["arm"], "Patients": tidy["n"],
        "ESS unweighted": tidy["ess_unweighted"].map(lambda v: fmt_num(v, 1)),
        "ESS weighted": tidy["ess_weighted"].map(lambda v: fmt_num(v, 1)),
    })


def format_sweep(tidy: pd.DataFrame) -> pd.DataFrame:
    """Supplementary Table 2: the cutoff sweep."""
    return pd.DataFrame({
        "Cutoff (%)": tidy["cutoff"].map(lambda v: f"{v:g}"),
        "n low / high": [f"{a} / {b}" for a, b in zip(tidy["n_low"], tidy["n_high"])],
        "MD low (95% CI)": [format_effect("ATE", e, l, h) for e, l, h in
                             zip(tidy["ate_low"], tidy["ate_low_ci_lower"], tidy["ate_low_ci_upper"])],
        "p low": tidy["ate_low_p"].map(fmt_p),
        "MD high (95% CI)": [format_effect("ATE", e, l, h) for e, l, h in
                              zip(tidy["ate_high"], tidy["ate_high_ci_lower"], tidy["ate_high_ci_upper"])],
        "p high": tidy["ate_high_p"].map(fmt_p),
        "Difference": tidy["difference"].map(fmt_num),
        "p-interaction": tidy["p_interaction"].map(fmt_p),
        **({} if "common_or_low" not in tidy.columns else {
            "Common OR low (95% CI)": [format_effect("RR", e, lo, hi) for e, lo, hi in zip(
                tidy["common_or_low"], tidy["common_or_low_ci_lower"], tidy["common_or_low_ci_upper"])],
            "Common OR high (95% CI)": [format_effect("RR", e, lo, hi) for e, lo, hi in zip(
                tidy["common_or_high"], tidy["common_or_high_ci_lower"], tidy["common_or_high_ci_upper"])],
            "OR p-interaction": tidy["common_or_p_interaction"].map(fmt_p)}),
        "Eligible": np.where(tidy["eligible"], "yes", "no"),
        "Selected": np.where(tidy["selected"], "selected", ""),
        "Note": tidy["note"].fillna("") if "note" in tidy.columns else "",
    })


def format_continuous(summary: pd.DataFrame, crossing: pd.DataFrame) -> pd.DataFrame:
    """The continuous interaction: beta per 1 % stenosis and the crossing point with both CIs."""
    r = summary.iloc[0]
    rows = [{"Quantity": "Interaction beta per 1% stenosis", "Estimate": fmt_num(r["interaction_beta"], 3),
             "95% CI": fmt_ci(r["interaction_ci_lower"], r["interaction_ci_upper"], 3),
             "p": fmt_p(r["interaction_p"]), "Note": ""}]
    for _, c in crossing.iterrows():
        rows.append({"Quantity": f"Crossing point, % ({c['method']} CI)", "Estimate": fmt_num(c["estimate"], 1),
                     "95% CI": fmt_ci(c["ci_lower"], c["ci_upper"], 1), "p": "-",
                     "Note": c["note"] if isinstance(c["note"], str) else ""})
    return pd.DataFrame(rows)


def _beside(primary: pd.DataFrame, other: pd.DataFrame, label: str, cutoff: float) -> pd.DataFrame:
    names = subgroup_names(cutoff)
    iptw = primary[primary["analysis"] == "iptw"].set_index(["outcome", "subgroup"])
    rows = []
    for _, r in other.iterrows():
        p = iptw.loc[(r["outcome"], r["subgroup"])]
        rows.append({
            "Outcome": OUTCOME_LABELS.get(r["outcome"], r["outcome"]), "Subgroup": names[r["subgroup"]],
            "Measure": measure_label(r["measure"]),
            "Primary IPTW (95% CI)": format_effect(p["measure"], p["estimate"], p["ci_lower"], p["ci_upper"]),
            "Primary p": fmt_p(p["p_value"]),
            f"{label} (95% CI)": format_effect(r["measure"], r["estimate"], r["ci_lower"], r["ci_upper"]),
            f"{label} p": fmt_p(r["p_value"]),
            "Note": r["note"] if isinstance(r.get("note"), str) else "",
        })
    return pd.DataFrame(rows)


def format_center(center: pd.DataFrame, primary: pd.DataFrame, cutoff: float) -> pd.DataFrame:
    """Supplementary Table 3: random intercept for center beside the primary IPTW estimates."""
    return _beside(primary, center, "Center random intercept", cutoff)


def format_cluster(cluster: pd.DataFrame, primary: pd.DataFrame, cutoff: float) -> pd.DataFrame:
    """The primary (HC) IPTW estimates beside the center-clustered CR1 and CR2 intervals, p and
    p-interaction (CR2 with its Satterthwaite df)."""
    cr1 = cluster[cluster["method"] == "CR1"].reset_index(drop=True)
    cr2 = cluster[cluster["method"] == "CR2"].reset_index(drop=True)
    out = _beside(primary, cr1, "CR1", cutoff)
    note = out.pop("Note")
    overall = cr1["subgroup"] == "overall"
    out["CR1 p-int"] = [("-" if o else fmt_p(v)) for v, o in zip(cr1["p_interaction"], overall)]
    out["CR2 (95% CI)"] = [format_effect(r["measure"], r["estimate"], r["ci_lower"], r["ci_upper"])
                           for _, r in cr2.iterrows()]
    out["CR2 p"] = cr2["p_value"].map(fmt_p)
    out["CR2 p-int"] = [("-" if o else fmt_p(v)) for v, o in zip(cr2["p_interaction"], overall)]
    out["CR2 df"] = cr2["df"].map(lambda v: fmt_num(v, 1))
    out["Note"] = note
    return out


def format_evalues(ev: pd.DataFrame, cutoff: float) -> pd.DataFrame:
    names = subgroup_names(cutoff)
    return pd.DataFrame({
        "Outcome": ev["outcome"].map(lambda o: OUTCOME_LABELS.get(o, o)),
        "Subgroup": ev["subgroup"].map(names),
        "Measure": ev["measure"].map(measure_label),
        "Estimate": ev["estimate"].map(fmt_num),
        "E-value (point)": ev["evalue_point"].map(fmt_num),
        "E-value (CI)": ev["evalue_ci"].map(fmt_num),
        "Note": ev["note"].fillna(""),
    })


def format_center_models(models: pd.DataFrame) -> pd.DataFrame:
    """Variance components of the center models, as summary(lmer) reports them."""
    return pd.DataFrame({
        "Outcome": models["outcome"].map(lambda o: OUTCOME_LABELS.get(o, o)),
        "Model": models["model"].map(lambda m: {"overall": "Treatment", "interaction": "Treatment x subgroup"}.get(m, m)),
        "Method": models["method"].fillna("-"),
        "Patients": models["n"], "Centers": models["n_centers"],
        "Center variance": models["center_variance"].map(lambda v: fmt_num(v, 3)),
        "Residual variance": models["residual_variance"].map(lambda v: fmt_num(v, 3)),
        "p-interaction": models["p_interaction"].map(fmt_p),
        "Note": models["note"].fillna(""),
    })


WEIGHT_LABELS = {"ATO": "ATO (overlap)", "ATE": "ATE (inverse probability)", "ATT": "ATT (treated)",
                 "ATM": "ATM (matching)", "ATE_truncated": "ATE, truncated at the 1st/99th percentiles",
                 "ATE_trimmed": "ATE, propensity 0.1-0.9 only"}


def format_weight_sensitivity(tidy: pd.DataFrame, cutoff: float) -> pd.DataFrame:
    names = subgroup_names(cutoff)
    return pd.DataFrame({
        "Weights": tidy["estimand"].map(lambda e: WEIGHT_LABELS.get(e, e)), "Outcome": tidy["outcome"].map(lambda o: OUTCOME_LABELS.get(o, o)),
        "Subgroup": tidy["subgroup"].map(names), "Measure": tidy["measure"].map(measure_label),
        "Estimate (95% CI)": [format_effect(m, e, l, h) for m, e, l, h in
                              zip(tidy["measure"], tidy["estimate"], tidy["ci_lower"], tidy["ci_upper"])],
        "p": tidy["p_value"].map(fmt_p), "Patients": tidy["n"],
        "ESS": tidy["effective_n"].map(lambda v: fmt_num(v, 1)), "Note": tidy["note"].fillna(""),
    })


def format_imputation(mi: pd.DataFrame, primary: pd.DataFrame, cutoff: float) -> pd.DataFrame:
    if mi.empty:
        return pd.DataFrame({"Multiple imputation": ["skipped (mi_imputations = 0)"]})
    out = _beside(primary, mi, "Multiple imputation", cutoff)
    out.insert(out.columns.get_loc("Note"), "Fraction of missing information",
               mi["fraction_missing_info"].map(lambda v: fmt_num(v, 3)).to_numpy())
    return out.rename(columns={"Primary IPTW (95% CI)": "Complete case (95% CI)", "Primary p": "Complete case p"})


def format_propensity_specifications(tidy: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "Propensity model": tidy["ps_spec"], "Method": tidy["method"],
        "Terms": tidy["terms"].map(lambda v: MISSING if pd.isna(v) else f"{int(v)}"),
        "Max |SMD| unweighted": tidy["max_abs_smd_unweighted"].map(lambda v: fmt_num(v, 3)),
        "Max |SMD| weighted": tidy["max_abs_smd_weighted"].map(lambda v: fmt_num(v, 3)),
        "ESS MT only": tidy["ess_mt_only"].map(lambda v: fmt_num(v, 1)),
        "ESS MT+RS": tidy["ess_mt_rs"].map(lambda v: fmt_num(v, 1)),
        "MD low (95% CI)": [format_effect("ATE", e, l, h) for e, l, h in
                             zip(tidy["ate_low"], tidy["ate_low_ci_lower"], tidy["ate_low_ci_upper"])],
        "MD high (95% CI)": [format_effect("ATE", e, l, h) for e, l, h in
                              zip(tidy["ate_high"], tidy["ate_high_ci_lower"], tidy["ate_high_ci_upper"])],
        "Note": tidy["note"].fillna("") if "note" in tidy.columns else "",
    })


def format_resampling(result, sweep: pd.DataFrame) -> pd.DataFrame:
    """The resampling analysis in one table: how often each cutoff is selected, percentile
    intervals, and the naive and selection-adjusted tests of the largest difference."""
    if result is None:
        return pd.DataFrame({"Resampling": ["skipped (bootstrap_replicates = 0)"]})
    rows = []
    chosen = sweep[sweep["selected"]]
    cross = result.crossing_bootstrap.set_index("quantity")
    test = result.selection_test.iloc[0]
    spread = "Bootstrap 2.5th-97.5th percentile"
    for name, label, digits in (
            ("crossing_point", "Crossing point, % (percentile interval)", 1),
            ("selected_difference", "High minus low MD at the selected cutoff (instability of the selected maximum, "
                                    "not a confidence interval)", 2)):
        r = cross.loc[name]
        rows.append({"Quantity": label, "Value": fmt_num(r["estimate"], digits),
                     spread: fmt_ci(r["ci_lower"], r["ci_upper"], digits), "Replicates": int(r["replicates"])})
    rows.append({"Quantity": "p-interaction at the selected cutoff, naive",
                 "Value": fmt_p(chosen["p_interaction"].iloc[0]) if len(chosen) else "-", spread: "-", "Replicates": "-"})
    rows.append({"Quantity": "p of the largest |difference|, adjusted for the selection", "Value": fmt_p(test["p_value"]),
                 spread: "-", "Replicates": int(test["replicates"])})
    return pd.DataFrame(rows)


def format_cutoff_selection(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"Cutoff (%)": table["cutoff"].map(lambda v: f"{v:g}"),
                         "Selected in bootstrap samples": table["times_selected"],
                         "Share": table["share"].map(lambda v: fmt_pct(v, 1))})


def format_simulation(summary: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "Scenario": summary["scenario"], "Quantity": summary["quantity"],
        "Value": [fmt_pct(v, 1) if not q.startswith("bias") else fmt_num(v, 3)
                  for q, v in zip(summary["quantity"], summary["value"])],
        "Monte-Carlo SE": [fmt_pct(v, 1) if not q.startswith("bias") else fmt_num(v, 3)
                           for q, v in zip(summary["quantity"], summary["mc_se"])],
        "Replicates": summary["replicates"],
    })


def item_label(item: str) -> str:
    """An audited item in words: every variable by its label (``antiplatelet_regimen=gpi, MT+RS`` ->
    ``Peri-procedural antiplatelet agents: GPI, MT+RS``; ``Results: mrs_0_2, high`` -> ``Results:
    90-day mRS 0-2, high``)."""
    def label(match: re.Match) -> str:
        return variable_label(match.group(0)) if match.group(1) in LABELS else match.group(0)

    return re.sub(r"\b([a-z][a-z0-9_]*)(?:=[a-z+]+)?\b", label, str(item))


def format_audit(audit: pd.DataFrame, statuses: tuple[str, ...] | None = None) -> pd.DataFrame:
    """The audit for reading: source, item, check, printed, recomputed, status, reason."""
    d = audit if statuses is None else audit[audit["status"].isin(statuses)]
    return pd.DataFrame({"Source": d["source"], "Item": d["item"].map(item_label), "Check": d["quantity"],
                         "Printed": d["published"], "Recomputed": d["recomputed"],
                         "Status": d["status"].str.replace("_", " "),
                         "Severity": d["severity"].map(lambda v: SEVERITIES.get(v, "")),
                         "Reason": d["reason"]}).reset_index(drop=True)


def format_findings(findings: pd.DataFrame) -> pd.DataFrame:
    """The audit's findings for reading: rank, severity in words, the statement, its checks."""
    return pd.DataFrame({"#": np.arange(1, len(findings) + 1), "Severity": findings["severity"].map(SEVERITIES),
                         "Finding": findings["statement"].map(item_label),
                         "Checks": findings["checks"]}).reset_index(drop=True)


def format_variance_comparison(comparison: pd.DataFrame, cutoff: float) -> pd.DataFrame:
    """The weighted Table 2 rows with the weights treated as known beside M-estimation."""
    names = subgroup_names(cutoff)
    scale = np.where(comparison["measure"] == "RR", "log RR", "MD")
    return pd.DataFrame({
        "Outcome": comparison["outcome"].map(lambda o: OUTCOME_LABELS.get(o, o)),
        "Subgroup": comparison["subgroup"].map(names),
        "Measure": comparison["measure"].map(measure_label),
        "Estimate": comparison["estimate"].map(fmt_num),
        "SE, weights as known": [f"{fmt_num(v, 3)} ({s})" for v, s in zip(comparison["se_robust"], scale)],
        "SE, M-estimation": [f"{fmt_num(v, 3)} ({s})" for v, s in zip(comparison["se_m_estimation"], scale)],
        "Ratio": (comparison["se_m_estimation"] / comparison["se_robust"]).map(fmt_num),
        "95% CI, weights as known": [fmt_ci(a, b) for a, b in zip(comparison["ci_lower_robust"],
                                                                   comparison["ci_upper_robust"])],
        "95% CI, M-estimation": [fmt_ci(a, b) for a, b in zip(comparison["ci_lower_m_estimation"],
                                                             comparison["ci_upper_m_estimation"])],
    })


def format_subgroup_balance(balance: pd.DataFrame, cutoff: float) -> pd.DataFrame:
    """Balance within the stenosis subgroups at ``cutoff``: SMD of each covariate in each subgroup,
    unweighted, with the overall model's weights and with one model per subgroup."""
    rows = balance[balance["cutoff"] == cutoff]
    covariates = list(dict.fromkeys(rows["covariate"]))
    out = pd.DataFrame({"Covariate": [variable_label(c) for c in covariates]})
    for label, method, column in (("Unweighted", "overall", "smd_unweighted"),
                                  ("Overall model", "overall", "smd_weighted"),
                                  ("Model per subgroup", "within", "smd_weighted")):
        for subgroup, where in (("low", f"≤{cutoff:g}%"), ("high", f">{cutoff:g}%")):
            part = rows[(rows["weights"] == method) & (rows["subgroup"] == subgroup)].set_index("covariate")
            out[f"{label} {where}"] = [fmt_num(part[column].get(c, np.nan), 3) for c in covariates]
    return out


def format_subgroup_weights_comparison(table: pd.DataFrame, cutoff: float) -> pd.DataFrame:
    """The weighted subgroup rows of Table 2 with the overall model's weights and with one
    propensity model per subgroup, side by side."""
    names = subgroup_names(cutoff)
    rows = []
    for (outcome, subgroup), g in table.groupby(["outcome", "subgroup"], sort=False):
        row = {"Outcome": OUTCOME_LABELS.get(outcome, outcome), "Subgroup": names[subgroup],
               "Measure": measure_label(g["measure"].iloc[0])}
        for method, label in (("overall", "Overall model"), ("within", "Model per subgroup")):
            r = g[g["weights"] == method].iloc[0]
            row[f"{label} (95% CI)"] = format_effect(r["measure"], r["estimate"], r["ci_lower"], r["ci_upper"])
            row[f"{label} p"] = fmt_p(r["p_value"])
            row[f"{label} p-int"] = fmt_p(r["p_interaction"])
        row["Note"] = "; ".join(sorted({n for n in g["note"] if isinstance(n, str) and n}))
        rows.append(row)
    return drop_empty_notes(pd.DataFrame(rows))


def format_ordinal(tidy: pd.DataFrame, cutoff: float) -> pd.DataFrame:
    """The ordinal shift analysis: common odds ratio of a lower 90-day mRS with MT+RS (> 1 favours
    MT+RS), its interval and p, p-interaction and the test of proportional odds."""
    names = subgroup_names(cutoff)
    out = pd.DataFrame({
        "Analysis": tidy["analysis"].map({"unadjusted": "Unadjusted", "iptw": "IPTW"}),
        "Subgroup": tidy["subgroup"].map(names),
        "Common OR (95% CI)": [format_effect("RR", e, lo, hi) for e, lo, hi in
                               zip(tidy["common_or"], tidy["ci_lower"], tidy["ci_upper"])],
        "p": tidy["p_value"].map(fmt_p),
        "p-int": [fmt_p(v) if s != "overall" else "-" for v, s in zip(tidy["p_interaction"], tidy["subgroup"])],
        "p proportional odds": tidy["p_proportional_odds"].map(fmt_p),
        "Patients": tidy["n"],
        "Note": tidy["note"].fillna(""),
    })
    return drop_empty_notes(out)


def format_augmented(augmented: pd.DataFrame, primary: pd.DataFrame) -> pd.DataFrame:
    """The augmented estimate of every outcome beside the weighted estimate of Table 2 (entire cohort)."""
    iptw = primary[(primary["analysis"] == "iptw") & (primary["subgroup"] == "overall")].set_index("outcome")
    out = pd.DataFrame({
        "Outcome": augmented["outcome"].map(lambda o: OUTCOME_LABELS.get(o, o)),
        "Measure": augmented["measure"].map(measure_label),
        "Weighted (95% CI)": [format_effect(m, iptw.loc[o, "estimate"], iptw.loc[o, "ci_lower"], iptw.loc[o, "ci_upper"])
                              for m, o in zip(augmented["measure"], augmented["outcome"])],
        "Augmented (95% CI)": [format_effect(m, e, lo, hi) for m, e, lo, hi in
                               zip(augmented["measure"], augmented["estimate"], augmented["ci_lower"],
                                   augmented["ci_upper"])],
        "Augmented p": augmented["p_value"].map(fmt_p),
        "Note": augmented["note"].fillna(""),
    })
    return drop_empty_notes(out)
