"""Plain-language sentences from result tables, for the notebooks and the supplement.

Nothing is estimated here: each function reads tidy frames computed elsewhere and says what
they mean for the paper's conclusion, so the text stays true when the data change.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .descriptives import variable_label
from .formatting import fmt_ci, fmt_num, fmt_p, fmt_pct
from .subgroups import largest_imbalance, subgroup_label
from .tables import OUTCOME_LABELS, item_label


def _p(p: float) -> str:
    """``p < 0.001`` or ``p = 0.03``, for sentences."""
    text = fmt_p(p)
    return f"p {text[0]} {text[1:]}" if text.startswith("<") else f"p = {text}"


def _row(table: pd.DataFrame, outcome: str, subgroup: str, analysis: str | None = None) -> pd.Series:
    sel = (table["outcome"] == outcome) & (table["subgroup"] == subgroup)
    if analysis is not None and "analysis" in table.columns:
        sel &= table["analysis"] == analysis
    return table[sel].iloc[0]


def _effect(r: pd.Series, with_p: bool = False) -> str:
    if pd.isna(r["estimate"]):
        return "not estimable"
    p = f"; {_p(r['p_value'])}" if with_p else ""
    return f"{fmt_num(r['estimate'], sign=r['measure'] == 'ATE')} (95% CI {fmt_ci(r['ci_lower'], r['ci_upper'])}{p})"


def _reason(note: str) -> str:
    """The reason of a note, without its 'not estimable:' lead."""
    return str(note).split(": ", 1)[-1] if isinstance(note, str) and note else "no estimate"


def _verdict(primary: pd.Series, other: pd.Series, alpha: float = 0.05) -> str:
    null = 0.0 if primary["measure"] == "ATE" else 1.0
    if pd.isna(other["estimate"]):
        return "cannot be compared"
    same_sign = np.sign(primary["estimate"] - null) == np.sign(other["estimate"] - null)
    sig_p, sig_o = primary["p_value"] < alpha, other["p_value"] < alpha
    if not same_sign:
        return "changes direction"
    if sig_p == sig_o:
        return "keeps its direction and significance"
    return "keeps its direction but loses significance" if sig_p else "keeps its direction and becomes significant"


def center_summary(center: pd.DataFrame, primary: pd.DataFrame, cutoff: float) -> str:
    """What the random-intercept analysis means for the mRS result and the binary outcomes."""
    iptw = primary[primary["analysis"] == "iptw"]
    low_p, high_p = _row(iptw, "mrs_90d", "low"), _row(iptw, "mrs_90d", "high")
    low_c, high_c = _row(center, "mrs_90d", "low"), _row(center, "mrs_90d", "high")
    if center["estimate"].isna().all():
        return (f"The random-intercept models could not be fitted on these data ({_reason(low_c['note'])}), so "
                "this analysis cannot say whether differences between centers explain the results.")
    verdicts = {_verdict(low_p, low_c), _verdict(high_p, high_c)}
    conclusion = ("so differences between centers do not explain the effect modification by stenosis"
                  if verdicts == {"keeps its direction and significance"} else
                  "so the conclusion is sensitive to differences between centers: " + "; ".join(sorted(verdicts)))
    text = (f"With a random intercept for center, stenting changes the mean 90-day mRS by {_effect(low_c)} at or "
            f"below {cutoff:g}% stenosis and by {_effect(high_c)} above, against {_effect(low_p)} and "
            f"{_effect(high_p)} in the primary analysis, {conclusion}.")
    binary = center[center["outcome"] != "mrs_90d"]
    singular = int(binary["note"].str.startswith("singular").sum())
    if singular:
        text += (f" For {singular} of {len(binary)} binary-outcome rows the center variance is estimated at zero "
                 "(a singular fit): the random-intercept model is then the weighted Poisson model itself, and its "
                 "estimate is printed as lme4 reports it.")
    missing = int(binary["estimate"].isna().sum())
    if missing:
        text += (f" For {missing} of {len(binary)} binary-outcome rows the model gives no number (a subgroup-arm "
                 "without events or a fit that did not converge).")
    return text


def cluster_summary(cluster: pd.DataFrame, primary: pd.DataFrame) -> str:
    """What center-clustered standard errors change, and which of CR1 and CR2 to believe."""
    iptw = primary[primary["analysis"] == "iptw"]
    cr1, cr2 = (cluster[cluster["method"] == m] for m in ("CR1", "CR2"))
    rows = []
    changed = []
    for _, c in cr2.iterrows():
        p = _row(iptw, c["outcome"], c["subgroup"])
        if pd.isna(c["p_value"]) or pd.isna(p["p_value"]):
            continue
        rows.append(c)
        if (c["p_value"] < 0.05) != (p["p_value"] < 0.05):
            changed.append(f"{OUTCOME_LABELS.get(c['outcome'], c['outcome'])} ({c['subgroup']}: {_p(p['p_value'])} "
                           f"becomes {fmt_p(c['p_value'])})")
    low, high = _row(cr2, "mrs_90d", "low"), _row(cr2, "mrs_90d", "high")
    if not rows:
        return (f"Center-clustered standard errors could not be computed on these data ({_reason(low['note'])}), "
                "so this analysis cannot say whether correlation within centers changes the conclusions.")
    dfs = pd.Series([r["df"] for r in rows])
    text = ("With few centers, the usual clustered sandwich (CR1) understates the uncertainty and its tests reject "
            "too often; the bias-reduced CR2 sandwich with Satterthwaite degrees of freedom corrects both "
            "(Pustejovsky & Tipton 2018), so CR2 is the one to believe here. Its degrees of freedom, "
            f"{fmt_num(dfs.min(), 1)} to {fmt_num(dfs.max(), 1)}, say how few independent centers each estimate "
            f"rests on. With CR2, the mRS effects are {_effect(low, True)} below and {_effect(high, True)} above the "
            f"cutoff, with p-interaction {_p(low['p_interaction'])[2:]} (CR1: "
            f"{_p(_row(cr1, 'mrs_90d', 'low')['p_interaction'])[2:]}). ")
    if changed:
        text += (f"Against the primary analysis, significance at 5% changes for {len(changed)} of {len(rows)} rows: "
                 + "; ".join(changed) + ".")
    else:
        text += f"No row of Table 2 changes its significance at 5% ({len(rows)} rows compared)."
    return text


def evalue_summary(ev: pd.DataFrame, cutoff: float) -> str:
    """How strong an unmeasured confounder would have to be."""
    low, high = _row(ev, "mrs_90d", "low"), _row(ev, "mrs_90d", "high")

    def part(r: pd.Series, where: str) -> str:
        if pd.isna(r["evalue_point"]):
            return f"{where}: not estimable"
        ci = ("the confidence interval already includes no effect" if r["evalue_ci"] == 1 else
              f"{fmt_num(r['evalue_ci'])} to move its confidence interval to include no effect")
        return f"{where}, a risk ratio of {fmt_num(r['evalue_point'])} to explain the effect away and {ci}"

    return ("To explain away the effects on the 90-day mRS, an unmeasured confounder would need to be associated "
            "with both stenting and the outcome by, "
            + part(low, f"at or below {cutoff:g}% stenosis") + "; " + part(high, f"above {cutoff:g}%")
            + ". An E-value near 1 means that weak unmeasured confounding could explain the estimate; the larger "
            "it is, the stronger such confounding would have to be, beyond the measured covariates.")


def multiverse_summary(curve: pd.DataFrame) -> str:
    """One sentence: how many specifications agree in sign and significance with the primary."""
    eligible = curve[curve["eligible"]]
    agree, total = _agreeing(eligible, "agrees", ["ps_spec", "estimand", "hc_type", "cutoff", "min_arm_size"], 2)
    return (f"Of {total} specifications with an eligible cutoff, {agree} ({100 * agree / max(total, 1):.0f}%) "
            "agree with the primary result in sign and in significance at 5% in both stenosis subgroups "
            f"({int(eligible.loc[eligible.subgroup == 'low', 'agrees'].sum())} of "
            f"{int((eligible.subgroup == 'low').sum())} below the cutoff, "
            f"{int(eligible.loc[eligible.subgroup == 'high', 'agrees'].sum())} of "
            f"{int((eligible.subgroup == 'high').sum())} above). "
            + _ordinal_agreement(eligible))


def _agreeing(eligible: pd.DataFrame, column: str, keys: list[str], rows: int) -> tuple[int, int]:
    """Of the specifications (``keys``) with all ``rows`` rows eligible, how many agree in every
    row (``column``), and how many there are."""
    per_spec = eligible.groupby(keys)[column].agg(["all", "size"])
    complete = per_spec[per_spec["size"] == rows]
    return int(complete["all"].sum()), len(complete)


def _ordinal_agreement(eligible: pd.DataFrame) -> str:
    """The same count for the common odds ratio (one per specification: it has no HC type)."""
    agree, total = _agreeing(eligible, "common_or_agrees", ["ps_spec", "estimand", "cutoff", "min_arm_size"],
                             2 * eligible["hc_type"].nunique())
    return (f"The common odds ratio of a lower mRS agrees with its primary value in direction and significance in "
            f"{agree} of the {total} ({100 * agree / max(total, 1):.0f}%) specifications without the choice "
            "of sandwich, which the proportional-odds model does not make (HC0 throughout).")


def weights_summary(table: pd.DataFrame, cutoff: float) -> str:
    """How the mRS subgroup effects move across weightings."""
    mrs = table[(table["outcome"] == "mrs_90d") & table["subgroup"].isin(["low", "high"])]
    parts = []
    for subgroup, label in (("low", f"at or below {cutoff:g}%"), ("high", f"above {cutoff:g}%")):
        d = mrs[mrs["subgroup"] == subgroup]
        sig = int((d["p_value"] < 0.05).sum())
        parts.append(f"{label} from {fmt_num(d['estimate'].min())} to {fmt_num(d['estimate'].max())} "
                     f"({sig} of {len(d)} weightings significant at 5%)")
    return ("Across the six weightings, the effect of stenting on the mean 90-day mRS ranges "
            + " and ".join(parts) + "; the effective sample size shows what each weighting costs in precision.")


def imputation_summary(mi: pd.DataFrame, primary: pd.DataFrame, n_excluded: int) -> str:
    """Multiple imputation against the complete-case primary analysis."""
    if mi.empty:
        return "Multiple imputation was skipped (mi_imputations = 0)."
    iptw = primary[primary["analysis"] == "iptw"]
    low_m, high_m = _row(mi, "mrs_90d", "low"), _row(mi, "mrs_90d", "high")
    low_p, high_p = _row(iptw, "mrs_90d", "low"), _row(iptw, "mrs_90d", "high")
    if n_excluded == 0:
        return ("No patient was excluded for missing propensity covariates, so multiple imputation reproduces "
                f"the complete-case analysis ({_effect(low_m)} and {_effect(high_m)}).")
    verdicts = {_verdict(low_p, low_m), _verdict(high_p, high_m)}
    return (f"Imputing the covariates of the {n_excluded} patients excluded from the primary analysis, stenting changes "
            f"the mean 90-day mRS by {_effect(low_m, True)} below and {_effect(high_m, True)} above the cutoff "
            f"(complete cases: {_effect(low_p)} and {_effect(high_p)}); the result "
            + ("is robust to the exclusions" if verdicts == {"keeps its direction and significance"}
               else "; ".join(sorted(verdicts))) + ".")


def cutoff_choice(sweep: pd.DataFrame, used: float, fixed: bool) -> str:
    """Which cutoff the tables use and which the sweep selects, and why they may differ."""
    chosen = sweep[sweep["selected"]]
    selected = float(chosen["cutoff"].iloc[0]) if len(chosen) else None
    tables = "Table 2, Figure 1, Supplementary Table 3 and the sensitivity analyses"
    if not fixed:
        return (f"{tables} use the cutoff the sweep selects on these data, {used:g}% (parameter cutoff auto): the "
                "eligible cutoff with the largest absolute difference between the subgroup effects. Additional "
                "analysis 1 shows how stable that choice is.")
    text = f"{tables} use the {used:g}% cutoff, fixed in advance as in the paper (parameter cutoff). "
    if selected is None:
        return text + "No cutoff of the sweep is eligible, so the sweep selects none."
    if selected == used:
        return text + f"On these data the sweep selects the same cutoff, {selected:g}%."
    return (text + f"On these data the sweep selects {selected:g}% instead (the largest absolute difference between "
            f"the subgroup effects; it is marked in Supplementary Table 2 and the forest plot beside the {used:g}% "
            "used). The tables are not re-run at the selected cutoff: a cutoff chosen because it gives the largest "
            "difference overstates that difference; Additional analysis 1 shows how unstable the choice is "
            "(run with -p cutoff auto to use it).")


def resampling_summary(result, sweep: pd.DataFrame) -> str:
    """How much the data-driven cutoff can be trusted."""
    if result is None:
        return "The resampling analysis was skipped (bootstrap_replicates = 0)."
    chosen = sweep[sweep["selected"]]
    if chosen.empty:
        return "No cutoff was eligible, so none was selected."
    cutoff = float(chosen["cutoff"].iloc[0])
    sel = result.cutoff_selection.set_index("cutoff")
    share = float(sel.loc[cutoff, "share"]) if cutoff in sel.index else 0.0
    top = result.cutoff_selection.sort_values("share", ascending=False).head(3)
    cross = result.crossing_bootstrap.set_index("quantity").loc["crossing_point"]
    test = result.selection_test.iloc[0]
    return (f"The sweep selects {cutoff:g}%, but the same procedure selects it in only {100 * share:.0f}% of "
            f"{int(result.crossing_bootstrap['replicates'].iloc[0])} bootstrap samples (most often: "
            + ", ".join(f"{r.cutoff:g}% in {100 * r.share:.0f}%" for r in top.itertuples())
            + f"); the crossing point of the continuous model is {fmt_num(cross['estimate'], 1)}% "
            f"(bootstrap percentile interval {fmt_ci(cross['ci_lower'], cross['ci_upper'], 1)}). Accounting for the choice of the "
            f"largest of the eligible differences, the effect modification has {_p(test['p_value'])} "
            f"(naive p-interaction at the selected cutoff: {_p(chosen['p_interaction'].iloc[0])[2:]}): "
            + ("the evidence for effect modification survives the data-driven choice, while the exact cutoff is "
               "uncertain." if test["p_value"] < 0.05 else
               "once the selection is accounted for, the data do not show effect modification at the 5% level."))


def _against(value: float, se: float, nominal: float) -> str:
    """How a simulated rate compares with its nominal value, at twice its Monte-Carlo SE."""
    if abs(value - nominal) <= 2 * se:
        return f"consistent with the nominal {fmt_pct(nominal)}"
    return f"{'above' if value > nominal else 'below'} the nominal {fmt_pct(nominal)}"


def _rate(row: pd.Series) -> str:
    return f"{fmt_pct(row['value'], 1)} (Monte-Carlo SE {fmt_pct(row['mc_se'], 1)})"


def simulation_summary(summary: pd.DataFrame) -> str:
    """What the simulation says about the procedure; every comparison is made at twice the
    Monte-Carlo SE of the number it rests on, and a bias counts only beyond max(3 SE, 0.03)."""
    def get(scenario: str, start: str) -> pd.Series | None:
        rows = summary[(summary["scenario"] == scenario) & summary["quantity"].str.startswith(start)]
        return rows.iloc[0] if len(rows) else None

    parts = []
    null = "no effect modification"
    naive = get(null, "significant effect modification, naive")
    adjusted = get(null, "significant effect modification, selection-adjusted")
    if naive is not None and adjusted is not None:
        parts.append(f"Without any effect modification, testing the interaction at the selected cutoff declares it "
                     f"significant in {_rate(naive)} of cohorts, {_against(naive['value'], naive['mc_se'], 0.05)}; "
                     f"the selection-adjusted test in {_rate(adjusted)}, "
                     f"{_against(adjusted['value'], adjusted['mc_se'], 0.05)}.")
    step_power = get("step at 75%", "significant effect modification, selection-adjusted")
    step_cut = get("step at 75%", "true cutoff")
    if step_power is not None and step_cut is not None:
        parts.append(f"With a true step at 75%, the adjusted test detects it in {_rate(step_power)} of cohorts and "
                     f"the sweep picks 75% in {_rate(step_cut)}.")
    lin_cut = get("linear, crossing at 70%", "true cutoff")
    if lin_cut is not None:
        parts.append(f"With a linear modification crossing at 70%, the sweep picks 70% in {_rate(lin_cut)}: a "
                     "selected cutoff locates no threshold when there is none.")
    for method, label in (("overall model", "the overall model's weights"),
                          ("model per subgroup", "weights from one propensity model per subgroup")):
        bias = summary[summary["quantity"].str.startswith("bias") & summary["quantity"].str.endswith(f"({method})")]
        if bias.empty:
            continue
        material = bias[bias["value"].abs() > np.maximum(3 * bias["mc_se"], 0.03)]
        worst = bias.loc[bias["value"].abs().idxmax()]
        side = "at or below" if ", MD low " in worst["quantity"] else "above"
        where = f"{side} the cutoff, scenario '{worst['scenario']}'"
        why = ("balance in the whole cohort does not balance the covariates within the subgroups"
               if method == "overall model" else
               "balancing the covariates' means within a subgroup leaves some bias where the effect changes "
               "steeply with stenosis inside it")
        if material.empty:
            parts.append(f"With {label}, no subgroup estimate is biased beyond max(3 Monte-Carlo SEs, 0.03) in any "
                         f"scenario (largest |bias| {fmt_num(abs(worst['value']), 3)}, {where}).")
        else:
            parts.append(f"With {label}, {len(material)} of {len(bias)} subgroup estimates are biased beyond max(3 "
                         f"Monte-Carlo SEs, 0.03), up to {fmt_num(worst['value'], 2)} (Monte-Carlo SE "
                         f"{fmt_num(worst['mc_se'], 2)}; {where}): {why}.")
    for variance, words in (("M-estimation", "by M-estimation"), ("HC sandwich", "with the HC sandwich (weights as "
                                                                                  "known)")):
        coverage = summary[summary["quantity"].str.endswith(f"(model per subgroup, {variance})")]
        if coverage.empty:
            continue
        low, high = coverage["value"].min(), coverage["value"].max()
        inside = int(((coverage["value"] - 0.95).abs() <= 2 * coverage["mc_se"]).sum())
        parts.append(f"With weights from one model per subgroup, the 95% intervals {words} cover the truth in "
                     f"{fmt_pct(low, 1)} to {fmt_pct(high, 1)} of cohorts across scenarios and subgroups ({inside} of "
                     f"{len(coverage)} consistent with 95% at twice their Monte-Carlo SE of about "
                     f"{fmt_pct(coverage['mc_se'].mean(), 1)}).")
    return " ".join(parts)


def audit_summary_text(audit: pd.DataFrame, findings: pd.DataFrame) -> str:
    """The audit in a paragraph: how many printed numbers were checked, then the findings a
    referee would write to the authors, most severe first, each with its severity."""
    counts = audit["status"].value_counts()
    flagged = int((audit["severity"].astype(str) != "").sum())
    head = (f"{len(audit)} printed numbers checked: {counts.get('reproduced', 0)} reproduced, "
            f"{counts.get('not_checkable', 0)} not checkable without patient data, and {flagged} that raise "
            f"{len(findings)} findings")
    if findings.empty:
        return head + "."
    by = findings["severity"].value_counts()
    head += " (" + ", ".join(f"{by[k]} {SEVERITY_WORDS[k]}" for k in SEVERITY_WORDS if k in by) + ")."
    items = " ".join(f"({i}) {item_label(r.headline)} [{SEVERITY_WORDS_SHORT[r.severity]}]"
                     for i, r in enumerate(findings.itertuples(), 1))
    return f"{head} Most severe first: {items}"


SEVERITY_WORDS = {"unreproducible": "with numbers that no method reproduces",
                  "methods": "where the Methods and the numbers disagree",
                  "tension": "with results compatible only at the edges of their uncertainty",
                  "rounding": "of rounding slips"}
SEVERITY_WORDS_SHORT = {"unreproducible": "no method reproduces it", "methods": "Methods vs numbers",
                        "tension": "tension", "rounding": "rounding slip"}


def variance_summary(comparison: pd.DataFrame) -> str:
    """What accounting for the estimated propensity score changes."""
    ratio = (comparison["se_m_estimation"] / comparison["se_robust"]).dropna()
    smaller = int((ratio < 1).sum())
    crossed = []
    for r in comparison.itertuples():
        null = 1.0 if r.measure == "RR" else 0.0
        a = r.ci_lower_robust <= null <= r.ci_upper_robust
        b = r.ci_lower_m_estimation <= null <= r.ci_upper_m_estimation
        if np.isfinite(r.ci_lower_robust) and np.isfinite(r.ci_lower_m_estimation) and a != b:
            crossed.append(f"{OUTCOME_LABELS.get(r.outcome, r.outcome)} ({r.subgroup})")
    low = _row(comparison, "mrs_90d", "low")
    high = _row(comparison, "mrs_90d", "high")
    text = (f"Accounting for the estimated propensity score gives smaller standard errors for {smaller} of "
            f"{ratio.size} weighted rows (ratio M-estimation / weights as known from {ratio.min():.2f} to "
            f"{ratio.max():.2f}); for the mRS the intervals become {fmt_ci(low['ci_lower_m_estimation'], low['ci_upper_m_estimation'])} "
            f"below and {fmt_ci(high['ci_lower_m_estimation'], high['ci_upper_m_estimation'])} above the cutoff. ")
    if crossed:
        text += "Whether the interval includes no effect changes for: " + "; ".join(crossed) + "."
    else:
        text += "No interval changes whether it includes no effect."
    return text


def subgroup_balance_summary(balance: pd.DataFrame, cutoff: float, used: str) -> str:
    """What the balance within the subgroups means for the subgroup rows of Table 2."""
    worst = largest_imbalance(balance, cutoff, "overall")
    within = largest_imbalance(balance, cutoff, "within")
    if worst is None:
        return f"No within-subgroup balance could be computed at the {cutoff:g}% cutoff."
    where = (f"{variable_label(worst['covariate'])}, stenosis "
             f"{subgroup_label(worst['subgroup'], cutoff).replace(' %', '%')}")
    size = abs(worst["smd_weighted"])
    text = (f"At the {cutoff:g}% cutoff, the weights of the overall propensity model leave a largest "
            f"within-subgroup |SMD| of {fmt_num(size, 2)} ({where}): ")
    text += ("the covariates are balanced within both subgroups too. " if size < 0.1 else
             "overall balance does not carry over to the subgroups, and a subgroup estimate of Table 2 can be "
             "biased by that imbalance. ")
    if within is None:
        text += "No propensity model can be fitted within each subgroup at this cutoff."
    else:
        text += (f"One propensity model per subgroup balances every covariate within each subgroup (largest |SMD| "
                 f"{fmt_num(abs(within['smd_weighted']), 3)}).")
    text += (" Table 2 and the cutoff sweep use the weights of one model per subgroup for their subgroup rows."
             if used == "within" else
             " Table 2 uses the overall model's weights, as the paper; the additional analysis 'Weights within "
             "the stenosis subgroups' sets both side by side.")
    return text


def subgroup_weights_summary(comparison: pd.DataFrame) -> str:
    """What changes for the mRS when the weights balance the covariates within each subgroup."""
    mrs = comparison[comparison["outcome"] == "mrs_90d"]
    get = lambda subgroup, method: mrs[(mrs["subgroup"] == subgroup) & (mrs["weights"] == method)].iloc[0]
    low_o, high_o, low_w, high_w = get("low", "overall"), get("high", "overall"), get("low", "within"), get("high", "within")
    if pd.isna(low_w["estimate"]):
        return (f"Weights within the subgroups cannot be estimated at this cutoff ({_reason(low_w['note'])}), "
                "so only the overall model's weights are available.")
    verdicts = {_verdict(low_o, low_w), _verdict(high_o, high_w)}
    conclusion = ("so the subgroup conclusions do not depend on balance within the subgroups"
                  if verdicts == {"keeps its direction and significance"} else
                  "so the subgroup conclusions depend on how the weights are estimated: " + "; ".join(sorted(verdicts)))
    return (f"With weights that balance every covariate within each subgroup, stenting changes the mean 90-day mRS "
            f"by {_effect(low_w, True)} at or below the cutoff and by {_effect(high_w, True)} above, against "
            f"{_effect(low_o, True)} and {_effect(high_o, True)} with the overall model's weights, {conclusion}.")


def ordinal_summary(ordinal: pd.DataFrame, cutoff: float) -> str:
    """The ordinal shift in plain words, beside the mean difference of Table 2."""
    iptw = ordinal[ordinal["analysis"] == "iptw"].set_index("subgroup")

    def odds(name: str) -> str:
        r = iptw.loc[name]
        if pd.isna(r["common_or"]):
            return f"not estimable ({_reason(r['note'])})"
        return f"{fmt_num(r['common_or'])} (95% CI {fmt_ci(r['ci_lower'], r['ci_upper'])}; {_p(r['p_value'])})"

    low = iptw.loc["low"]
    po = iptw["p_proportional_odds"].dropna()
    text = (f"Across the whole mRS scale, the weighted odds of a better (lower) 90-day mRS with stenting are "
            f"{odds('overall')} in the entire cohort, {odds('low')} at or below {cutoff:g}% stenosis and {odds('high')} "
            f"above (common odds ratios, > 1 favours stenting; p-interaction "
            f"{_p(low['p_interaction'])[2:] if pd.notna(low['p_interaction']) else 'not estimable'}). ")
    if len(po):
        worst = float(po.min())
        text += ("The proportional-odds assumption is not contradicted in any weighted row (smallest p = "
                 f"{fmt_p(worst)})." if worst >= 0.05 else
                 f"The proportional-odds assumption is questionable in at least one weighted row (p = {fmt_p(worst)}): "
                 "there the common odds ratio averages effects that differ along the scale.")
    return text


def augmented_summary(augmented: pd.DataFrame, primary: pd.DataFrame) -> str:
    """What agreement between the weighted and the augmented estimates means."""
    iptw = primary[(primary["analysis"] == "iptw") & (primary["subgroup"] == "overall")].set_index("outcome")
    compared, differ = 0, []
    for _, r in augmented.iterrows():
        p = iptw.loc[r["outcome"]]
        if pd.isna(r["estimate"]) or pd.isna(p["estimate"]):
            continue
        compared += 1
        if not (r["ci_lower"] <= p["estimate"] <= r["ci_upper"]):
            differ.append(OUTCOME_LABELS.get(r["outcome"], r["outcome"]))
    if compared == 0:
        return "No augmented estimate could be computed on these data."
    text = ("The augmented estimator adds an outcome model to the weights and stays consistent when either model "
            "is right. ")
    if differ:
        return text + (f"For {', '.join(differ)} the weighted estimate lies outside the augmented interval: the "
                       "weights alone leave covariate-outcome structure that the outcome model removes, and the "
                       "weighted estimate should be read with caution.")
    return text + (f"For all {compared} outcomes compared, the weighted estimate lies inside the augmented interval: "
                   "the conclusions do not depend on relying on the propensity model alone.")
