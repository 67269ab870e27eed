"""Audit of the published numbers: what the paper prints, checked against itself.

From the published tables alone (no patient data): percentages from their counts, categorical
p-values from their 2 x 2 tables, unadjusted ratios of Table 2 from the Table 1 counts by several
plausible methods, every interval and p-value for internal consistency, and the statements of
the text against the tables. Every check allows for the printed precision: a value "reproduces"
a printed number when it rounds to it, and the consistency checks use interval arithmetic over
the rounding boxes of the printed digits.

Statuses: ``inconsistent`` (the numbers contradict each other), ``explained`` (they agree once
a stated reason is accepted: truncation instead of rounding, another interval method...),
``reproduced`` and ``not_checkable`` (the published numbers alone cannot decide).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd

from .descriptives import level_label
from .formatting import fmt_num

AUDIT_COLUMNS = ["source", "item", "quantity", "published", "recomputed", "status", "reason", "severity", "finding"]
STATUS_ORDER = {"inconsistent": 0, "explained": 1, "reproduced": 2, "not_checkable": 3}
# The severity of a finding, most severe first: a number that no method reproduces (or that
# contradicts another printed number); a disagreement between the Methods and the numbers (they
# follow once another test or interval than the stated one is assumed); two results that agree
# only at the edges of their uncertainty; a rounding slip. Reproduced checks have none.
SEVERITIES = {
    "unreproducible": "a number that no method reproduces",
    "methods": "the Methods and the numbers disagree",
    "tension": "results compatible only at the edges of their uncertainty",
    "rounding": "a rounding slip",
}
Z = 1.959963984540054


# ------------------------------------------------------------------------ printed numbers
def decimals(text: str) -> int:
    """Digits after the decimal point of a printed number ('0.60' -> 2, '<0.001' -> 3)."""
    text = str(text).strip().lstrip("<>")
    return len(text.split(".")[1]) if "." in text else 0


def is_blank(text) -> bool:
    return text is None or (isinstance(text, float) and math.isnan(text)) or str(text).strip() in ("", "nan", "-")


def rounds_to(value: float, printed: str) -> bool:
    """Whether ``value`` printed with the same number of decimals gives ``printed``."""
    d = decimals(printed)
    return abs(round(value, d) - float(printed)) < 0.5 * 10 ** -(d + 3)


def truncates_to(value: float, printed: str) -> bool:
    """Whether ``value`` cut (not rounded) to the printed decimals gives ``printed``."""
    d = decimals(printed)
    target = float(printed)
    cut = math.floor(abs(value) * 10 ** d + 1e-9) / 10 ** d
    return abs(math.copysign(cut, value) - target) < 0.5 * 10 ** -(d + 3)


def how_printed(value: float, printed: str) -> str | None:
    """'rounded', 'truncated' or None: how ``value`` became ``printed``."""
    if not np.isfinite(value):
        return None
    if rounds_to(value, printed):
        return "rounded"
    if truncates_to(value, printed):
        return "truncated"
    return None


def p_matches(p: float, printed: str) -> str | None:
    """How a p-value became its printed form ('<0.001' needs p < 0.001)."""
    text = str(printed).strip()
    if text.startswith("<"):
        return "rounded" if p < float(text[1:]) else None
    return how_printed(p, text)


def p_interval(printed: str) -> tuple[float, float]:
    """The true p-values that can print as ``printed``, by rounding or by truncation."""
    text = str(printed).strip()
    if text.startswith("<"):
        return 0.0, float(text[1:])
    d = decimals(text)
    v = float(text)
    return max(v - 0.5 * 10 ** -d, 0.0), min(v + 10 ** -d, 1.0)


def near(value: float, printed: str, units: float = 1.0) -> bool:
    """Within ``units`` of the last printed digit (R's ``confint`` on a GLM interpolates the
    profile likelihood, so its limits can differ from the exact profile by one such unit)."""
    d = decimals(printed)
    return np.isfinite(value) and abs(value - float(printed)) <= (units + 0.5) * 10 ** -d + 1e-12


def box(printed: str) -> tuple[float, float]:
    """The true values that round to ``printed``."""
    d = decimals(printed)
    v = float(printed)
    return v - 0.5 * 10 ** -d, v + 0.5 * 10 ** -d


def _normal_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def implied_p_range(est: str, lo: str, hi: str, ratio: bool, df: float | None = None) -> tuple[float, float]:
    """Range of the Wald p implied by a printed estimate and 95% CI, over the rounding boxes of
    the three printed numbers (log scale for a ratio; t with ``df`` degrees of freedom for a
    difference from a linear model, normal otherwise). The p is monotone in each number, so the
    corners of the box bound it, except that it reaches 1 when the estimate's box contains the
    null."""
    from scipy import stats

    q = stats.t.ppf(0.975, df) if df else Z
    values = []
    for e, l, h in product(box(est), box(lo), box(hi)):
        if ratio:
            if min(e, l, h) <= 0:
                continue
            e, l, h = math.log(e), math.log(l), math.log(h)
        se = (h - l) / (2 * q)
        if se <= 0:
            continue
        values.append(2 * stats.t.sf(abs(e / se), df) if df else _normal_p(e / se))
    if not values:
        return float("nan"), float("nan")
    e_lo, e_hi = box(est)
    null = 1.0 if ratio else 0.0
    top = 1.0 if e_lo <= null <= e_hi else max(values)
    return min(values), top


def symmetric(est: str, lo: str, hi: str, ratio: bool) -> bool:
    """Whether a Wald-type interval is possible: the estimate at the centre of the interval (on
    the log scale for a ratio) for some values inside the rounding boxes."""
    e_lo, e_hi = box(est)
    l_lo, l_hi = box(lo)
    h_lo, h_hi = box(hi)
    if ratio:
        if min(e_lo, l_lo, h_lo) <= 0:
            return False
        e_lo, e_hi, l_lo, l_hi, h_lo, h_hi = map(math.log, (e_lo, e_hi, l_lo, l_hi, h_lo, h_hi))
    return (l_lo + h_lo) / 2 <= e_hi and (l_hi + h_hi) / 2 >= e_lo


# ------------------------------------------------------------------------ 2 x 2 methods
def _profile_ci(loglik, beta1_hat: float, level_chi2: float = 3.841458820694124) -> tuple[float, float]:
    """Profile-likelihood interval of the log ratio ``beta1`` (the intercept profiled out)."""
    from scipy import optimize

    top = loglik(beta1_hat)

    def drop(b1):
        return 2 * (top - loglik(b1)) - level_chi2

    lo = optimize.brentq(drop, beta1_hat - 20, beta1_hat, xtol=1e-12)
    hi = optimize.brentq(drop, beta1_hat, beta1_hat + 20, xtol=1e-12)
    return lo, hi


def two_by_two(a: int, n1: int, c: int, n0: int) -> dict[str, tuple[float, float, float, float]]:
    """Unadjusted comparisons of ``a/n1`` (treated) with ``c/n0`` (reference) by the methods a
    paper might have used: ``{method: (estimate, ci_lower, ci_upper, p)}``.

    Risk ratio: Wald intervals with the robust (= log-binomial, delta-method) standard error
    ``sqrt(1/a - 1/n1 + 1/c - 1/n0)`` and with the model-based Poisson one ``sqrt(1/a + 1/c)``;
    profile-likelihood intervals of the Poisson and log-binomial GLMs (R's ``confint``), with
    their Wald p. Odds ratio: Wald and logistic profile likelihood. Fisher's exact and the
    chi-square tests (with and without continuity correction) give p-values only.
    """
    from scipy import optimize, stats

    b, d = n1 - a, n0 - c
    p1, p0 = a / n1, c / n0
    out: dict[str, tuple[float, float, float, float]] = {}
    rr = p1 / p0 if p0 > 0 else float("nan")
    if a > 0 and c > 0:
        log_rr = math.log(rr)
        se_robust = math.sqrt(1 / a - 1 / n1 + 1 / c - 1 / n0)
        se_pois = math.sqrt(1 / a + 1 / c)
        out["RR, robust Wald (modified Poisson / log-binomial)"] = (
            rr, math.exp(log_rr - Z * se_robust), math.exp(log_rr + Z * se_robust), _normal_p(log_rr / se_robust))
        out["RR, Poisson model-based Wald"] = (
            rr, math.exp(log_rr - Z * se_pois), math.exp(log_rr + Z * se_pois), _normal_p(log_rr / se_pois))

        def pois(b1):  # intercept profiled in closed form
            e0 = (a + c) / (n1 * math.exp(b1) + n0)
            return a * (math.log(e0) + b1) - n1 * e0 * math.exp(b1) + c * math.log(e0) - n0 * e0

        lo, hi = _profile_ci(pois, log_rr)
        out["RR, Poisson GLM profile likelihood (R confint)"] = (rr, math.exp(lo), math.exp(hi), _normal_p(log_rr / se_pois))

        def logbin(b1):
            # the intercept maximises a concave log-likelihood: the root of its score in b0
            def ll(b0):
                q0, q1 = math.exp(b0), math.exp(b0 + b1)
                return a * math.log(q1) + b * math.log1p(-q1) + c * math.log(q0) + d * math.log1p(-q0)

            def score(b0):
                q0, q1 = math.exp(b0), math.exp(b0 + b1)
                return a - b * q1 / (1 - q1) + c - d * q0 / (1 - q0)

            upper = -max(b1, 0.0) - 1e-12
            lower = -30.0
            if score(upper - 1e-9) > 0:  # maximum on the boundary (a proportion reaching 1)
                return ll(upper - 1e-9)
            return ll(optimize.brentq(score, lower, upper - 1e-9, xtol=1e-14))

        if p1 < 1 and p0 < 1:
            lo, hi = _profile_ci(logbin, log_rr)
            out["RR, log-binomial GLM profile likelihood (R confint)"] = (rr, math.exp(lo), math.exp(hi),
                                                                         _normal_p(log_rr / se_robust))
    if min(a, b, c, d) > 0:
        odds = (a * d) / (b * c)
        log_or = math.log(odds)
        se_or = math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
        out["OR, Wald"] = (odds, math.exp(log_or - Z * se_or), math.exp(log_or + Z * se_or), _normal_p(log_or / se_or))

        def logit(b1):
            def score(b0):  # d/d b0 of the log-likelihood: observed minus expected events
                return a + c - n1 / (1 + math.exp(-(b0 + b1))) - n0 / (1 + math.exp(-b0))

            b0 = optimize.brentq(score, -40, 40, xtol=1e-14)
            l1, l0 = b0 + b1, b0
            return a * l1 - n1 * float(np.logaddexp(0, l1)) + c * l0 - n0 * float(np.logaddexp(0, l0))

        lo, hi = _profile_ci(logit, log_or)
        out["OR, logistic GLM profile likelihood (R confint)"] = (odds, math.exp(lo), math.exp(hi), _normal_p(log_or / se_or))
    table = np.array([[a, b], [c, d]])
    out["Fisher's exact test"] = (float("nan"),) * 3 + (float(stats.fisher_exact(table).pvalue),)
    if min(a + c, b + d) > 0:
        out["chi-square test, continuity correction"] = (float("nan"),) * 3 + (
            float(stats.chi2_contingency(table, correction=True)[1]),)
        out["chi-square test, no continuity correction"] = (float("nan"),) * 3 + (
            float(stats.chi2_contingency(table, correction=False)[1]),)
    return out


# --------------------------------------------------------------------------------- audit
@dataclass(frozen=True)
class PublishedText:
    """The published tables as printed text (numbers keep their printed digits)."""

    table1: pd.DataFrame
    table2: pd.DataFrame
    text: pd.DataFrame
    claims: pd.DataFrame


def load_printed(published_dir: str | Path) -> PublishedText:
    d = Path(published_dir)
    read = lambda name: pd.read_csv(d / name, dtype=str, keep_default_na=False) if (d / name).exists() else pd.DataFrame()
    return PublishedText(table1=read("table1_published.csv"), table2=read("table2_published.csv"),
                         text=read("text_results_published.csv"), claims=read("text_claims_published.csv"))


_DEFAULT_SEVERITY = {"inconsistent": "unreproducible", "explained": "methods"}


def _row(source, item, quantity, published, recomputed, status, reason="", severity=None, finding="") -> dict:
    """One check. ``severity`` defaults from the status (inconsistent: unreproducible; explained:
    methods; otherwise none); ``finding`` names the pattern the check belongs to (see
    :func:`audit_findings`)."""
    if severity is None:
        severity = _DEFAULT_SEVERITY.get(status, "")
    return {"source": source, "item": item, "quantity": quantity, "published": published,
            "recomputed": recomputed, "status": status, "reason": reason, "severity": severity,
            "finding": finding if severity else ""}


def _fmt(x: float, digits: int = 2) -> str:
    return "-" if not np.isfinite(x) else fmt_num(x, max(digits, 1)) if abs(x) >= 10 ** -digits or x == 0 else f"{x:.2g}"


ARMS = (("mt_only", "MT only"), ("mt_rs", "MT+RS"))


def audit_table1(t1: pd.DataFrame) -> list[dict]:
    """Percentages against n/N, categorical p-values against Fisher and chi-square, group sizes."""
    rows = []
    for _, r in t1.iterrows():
        var = r["variable"]
        if r["summary"] == "count":
            for arm, label in ARMS:
                n, total, pct = r[f"{arm}_n"], r[f"{arm}_total"], r[f"{arm}_pct"]
                if is_blank(n) or is_blank(pct):
                    continue
                value = 100 * float(n) / float(total)
                kind = how_printed(value, pct)
                item = f"{var}, {label}"
                shown = f"{n}/{total} ({pct})"
                if kind == "rounded":
                    rows.append(_row("Table 1", item, "percentage", shown, f"{value:.2f}%", "reproduced"))
                elif kind == "truncated":
                    rows.append(_row("Table 1", item, "percentage", shown, f"{value:.2f}%", "explained",
                                     "truncated to one decimal instead of rounded", "rounding", "truncated"))
                else:
                    implied = round(float(pct) * float(total) / 100)
                    rows.append(_row("Table 1", item, "percentage", shown, f"{value:.2f}%", "inconsistent",
                                     f"{n}/{total} is {value:.1f}%, not {pct}% ({pct}% of {total} would be {implied} patients)",
                                     finding="table1_numbers"))
            p_text = r.get("p_value_reported", "")
            both = all(not is_blank(r[f"{arm}_n"]) for arm, _ in ARMS)
            if is_blank(p_text) or not both:
                continue
            a, n1 = int(r["mt_rs_n"]), int(r["mt_rs_total"])
            c, n0 = int(r["mt_only_n"]), int(r["mt_only_total"])
            methods = {k: v[3] for k, v in two_by_two(a, n1, c, n0).items()
                       if not k.endswith("(R confint)") and k != "RR, Poisson model-based Wald"}
            fisher = methods["Fisher's exact test"]
            kind = p_matches(fisher, p_text)
            detail = "; ".join(f"{k} {v:.4f}" for k, v in methods.items())
            if kind == "rounded":
                rows.append(_row("Table 1", var, "p-value (Fisher's exact, as the Methods state)", p_text, detail, "reproduced"))
                continue
            alternatives = [k for k, v in methods.items() if p_matches(v, p_text)]
            if alternatives:
                how = {k: p_matches(methods[k], p_text) for k in alternatives}
                reason = "; ".join(f"{k} ({how[k]})" for k in alternatives)
                rows.append(_row("Table 1", var, "p-value (Fisher's exact, as the Methods state)", p_text, detail, "explained",
                                 f"matches {reason}, not Fisher's exact test rounded", finding="table1_tests"))
            else:
                nearest = min(methods, key=lambda k: abs(methods[k] - float(p_text.lstrip("<"))))
                rows.append(_row("Table 1", var, "p-value (Fisher's exact, as the Methods state)", p_text, detail,
                                 "inconsistent", f"no test of the printed counts gives the printed p (nearest: "
                                 f"{nearest}, {methods[nearest]:.4f})", finding="table1_numbers"))
        elif r["summary"] == "median" and not is_blank(r.get("p_value_reported", "")):
            rows.append(_row("Table 1", var, "p-value (Mann-Whitney U)", r["p_value_reported"], "-", "not_checkable",
                             "needs the patient data"))
    # group sizes and the antiplatelet regimens
    totals = {arm: sorted({int(x) for x in t1[f"{arm}_total"] if not is_blank(x)}) for arm, _ in ARMS}
    sizes = {arm: max(v) for arm, v in totals.items() if v}
    for arm, label in ARMS:
        over = [r["variable"] for _, r in t1.iterrows() if not is_blank(r[f"{arm}_total"]) and int(r[f"{arm}_total"]) > sizes[arm]]
        rows.append(_row("Table 1", f"denominators, {label}", "N of every row ≤ arm size", str(sizes[arm]),
                         "ok" if not over else ", ".join(over), "reproduced" if not over else "inconsistent",
                         "" if not over else "a row has more patients than the arm", finding="table1_numbers"))
    regimen = t1[t1["variable"].str.startswith("antiplatelet_regimen=")]
    if len(regimen):
        total = sum(int(x) for x in regimen["mt_rs_n"])
        arm_n = sizes.get("mt_rs")
        rows.append(_row("Table 1", "antiplatelet regimens, MT+RS", "counts add up to the arm", str(arm_n), str(total),
                         "reproduced" if total == arm_n else "inconsistent",
                         "" if total == arm_n else f"the regimens count {total} patients, the arm {arm_n}",
                         finding="table1_numbers"))
    return rows


TABLE2_TO_TABLE1 = {"mrs_0_2": "mrs_0_2", "mrs_0_3": "mrs_0_3", "final_mtici_2b3": "final_mtici_2b3",
                    "reocclusion": "reocclusion", "sich": "sich", "death_90d": "death_90d"}


def audit_unadjusted(t1: pd.DataFrame, t2: pd.DataFrame) -> list[dict]:
    """Unadjusted overall ratios of Table 2 recomputed from the Table 1 counts."""
    rows = []
    counts = t1.set_index("variable")
    for _, r in t2[(t2["analysis"] == "unadjusted") & (t2["subgroup"] == "overall")].iterrows():
        outcome = r["outcome"]
        item = f"{outcome}, unadjusted, overall"
        if r["measure"] != "RR" or outcome not in counts.index:
            rows.append(_row("Table 2", item, "estimate", r["estimate"], "-", "not_checkable",
                             "a difference in mean mRS needs means and SDs, which the paper does not print"))
            continue
        c1 = counts.loc[TABLE2_TO_TABLE1[outcome]]
        a, n1, c, n0 = int(c1["mt_rs_n"]), int(c1["mt_rs_total"]), int(c1["mt_only_n"]), int(c1["mt_only_total"])
        methods = two_by_two(a, n1, c, n0)
        ratio_methods = {k: v for k, v in methods.items() if k.startswith(("RR", "OR"))}
        rr = a / n1 / (c / n0)
        odds = (a * (n0 - c)) / ((n1 - a) * c) if min(n1 - a, c) > 0 else float("nan")
        counts_text = f"{a}/{n1} vs {c}/{n0}"
        # estimate
        kind_rr, kind_or = how_printed(rr, r["estimate"]), how_printed(odds, r["estimate"])
        recomputed = f"RR {rr:.4f}, OR {odds:.4f} ({counts_text})"
        if kind_rr == "rounded":
            rows.append(_row("Table 2", item, "estimate (RR)", r["estimate"], recomputed, "reproduced"))
        elif kind_rr == "truncated":
            rows.append(_row("Table 2", item, "estimate (RR)", r["estimate"], recomputed, "explained", "truncated, not rounded",
                             "rounding", "truncated"))
        elif kind_or:
            rows.append(_row("Table 2", item, "estimate (RR)", r["estimate"], recomputed, "inconsistent",
                             "the printed risk ratio is the odds ratio of the Table 1 counts", "methods", "odds_ratios"))
        else:
            rows.append(_row("Table 2", item, "estimate (RR)", r["estimate"], recomputed, "inconsistent",
                             "neither the risk ratio nor the odds ratio of the Table 1 counts",
                             finding="table2_unadjusted"))
        # interval
        printed_ci = f"{r['ci_lower']}-{r['ci_upper']}"
        def ci_match(method: str, v) -> bool:
            if how_printed(v[1], r["ci_lower"]) and how_printed(v[2], r["ci_upper"]):
                return True
            return method.endswith("(R confint)") and near(v[1], r["ci_lower"]) and near(v[2], r["ci_upper"])

        ci_hits = [k for k, v in ratio_methods.items() if ci_match(k, v)]
        detail = "; ".join(f"{k} {v[1]:.2f}-{v[2]:.2f}" for k, v in ratio_methods.items())
        stated = "RR, robust Wald (modified Poisson / log-binomial)"
        if stated in ci_hits:
            rows.append(_row("Table 2", item, "95% CI", printed_ci, detail, "reproduced"))
        elif any(k.startswith("RR") for k in ci_hits):
            k = next(k for k in ci_hits if k.startswith("RR"))
            exact = how_printed(ratio_methods[k][1], r["ci_lower"]) and how_printed(ratio_methods[k][2], r["ci_upper"])
            note = "" if exact else " (within one unit of the last digit, as R interpolates the profile)"
            rows.append(_row("Table 2", item, "95% CI", printed_ci, detail, "explained",
                             f"the interval of the {k.split(', ', 1)[1]}{note}, not the robust Wald interval the "
                             "Methods describe", finding="model_based"))
        elif ci_hits:
            rows.append(_row("Table 2", item, "95% CI", printed_ci, detail, "inconsistent",
                             f"the interval of an odds ratio ({ci_hits[0].split(', ', 1)[1]})", "methods", "odds_ratios"))
        else:
            rows.append(_row("Table 2", item, "95% CI", printed_ci, detail, "inconsistent",
                             "no method reproduces the interval from the Table 1 counts", finding="table2_unadjusted"))
        # p-value
        p_hits = {k: p_matches(v[3], r["p_value_reported"]) for k, v in methods.items()}
        p_hits = {k: v for k, v in p_hits.items() if v}
        detail = "; ".join(f"{k} {v[3]:.4f}" for k, v in methods.items())
        if p_hits.get(stated) == "rounded":
            rows.append(_row("Table 2", item, "p-value", r["p_value_reported"], detail, "reproduced"))
        elif stated in p_hits:  # the stated robust Wald p, truncated instead of rounded
            rows.append(_row("Table 2", item, "p-value", r["p_value_reported"], detail, "explained",
                             "matches " + "; ".join(f"{k} ({how})" for k, how in p_hits.items()), "rounding",
                             "truncated"))
        elif p_hits:
            rows.append(_row("Table 2", item, "p-value", r["p_value_reported"], detail, "explained",
                             "matches " + "; ".join(f"{k} ({how})" for k, how in p_hits.items())
                             + ", not the robust Wald test the Methods describe", finding="model_based"))
        else:
            rows.append(_row("Table 2", item, "p-value", r["p_value_reported"], detail, "inconsistent",
                             "no method gives the printed p from the Table 1 counts", finding="table2_unadjusted"))
    return rows


def _lost_sign(est: str, lo: str, hi: str) -> str | None:
    """Which limit, negated, makes a difference's interval symmetric around its estimate."""
    for name, l, h in (("lower", f"{-float(lo)}", hi), ("upper", lo, f"{-float(hi)}")):
        if float(l) <= float(est) <= float(h) and symmetric(est, l, h, ratio=False):
            return name
    return None


def audit_consistency(t2: pd.DataFrame, profile_unadjusted: bool = True, n_patients: int | None = None) -> list[dict]:
    """Every row of Table 2: estimate inside its interval, a Wald interval symmetric on the right
    scale, and the p implied by estimate and interval against the printed p.

    ``profile_unadjusted``: unadjusted intervals asymmetric on the log scale are explained as
    profile-likelihood intervals (as :func:`audit_unadjusted` finds for the overall rows).
    ``n_patients``: for the t distribution of differences (residual df ``n - 2`` overall,
    ``n - 4`` by subgroup); normal when unknown.
    """
    rows = []
    for _, r in t2.iterrows():
        est, lo, hi, p = r["estimate"], r["ci_lower"], r["ci_upper"], r["p_value_reported"]
        item = f"{r['outcome']}, {r['analysis']}, {r['subgroup']}"
        ratio = r["measure"] == "RR"
        if any(is_blank(x) for x in (est, lo, hi)):
            continue
        shown = f"{est} ({lo} to {hi})"
        if not float(lo) <= float(est) <= float(hi):
            lost = None if ratio else _lost_sign(est, lo, hi)
            reason = (f"the {lost} limit appears to have lost its minus sign" if lost else
                      "the estimate lies outside its interval")
            rows.append(_row("Table 2", item, "estimate within its 95% CI", shown, "-", "inconsistent", reason,
                             finding="table2_intervals"))
            continue
        if not symmetric(est, lo, hi, ratio):
            if not ratio:
                lost = _lost_sign(est, lo, hi)
                reason = (f"the {lost} limit appears to have lost its minus sign" if lost else
                          "a difference's Wald interval is symmetric around the estimate; this one is not")
                rows.append(_row("Table 2", item, "interval symmetric around the estimate", shown, "-", "inconsistent", reason,
                                 finding="table2_intervals"))
                continue
            if profile_unadjusted and r["analysis"] == "unadjusted":
                rows.append(_row("Table 2", item, "interval symmetric on the log scale", shown, "-", "explained",
                                 "asymmetric, as a profile-likelihood interval (the unadjusted intervals are profile "
                                 "intervals of a Poisson GLM); its p is the Wald p, not implied by the interval",
                                 finding="profile_intervals"))
                continue
            rows.append(_row("Table 2", item, "interval symmetric on the log scale", shown, "-", "inconsistent",
                             "a Wald interval of a ratio is symmetric on the log scale; this one is not",
                             finding="table2_intervals"))
            continue
        if is_blank(p):
            continue
        df = None if ratio or not n_patients else n_patients - (2 if r["subgroup"] == "overall" else 4)
        low, high = implied_p_range(est, lo, hi, ratio, df)
        p_lo, p_hi = p_interval(p)
        recomputed = f"{fmt_num(low, 4)} to {fmt_num(high, 4)}"
        if high >= p_lo and low <= p_hi:
            rows.append(_row("Table 2", item, "p implied by estimate and 95% CI", p, recomputed, "reproduced"))
        else:
            d = decimals(p)
            step = 10 ** -d if not str(p).startswith("<") else 0.001
            off = high >= p_lo - step and low <= p_hi + step
            rows.append(_row("Table 2", item, "p implied by estimate and 95% CI", p, recomputed, "inconsistent",
                             "the printed p is off by one rounding step" if off else
                             "the printed p does not match its interval", "rounding" if off else None,
                             "off_by_one" if off else "table2_intervals"))
    return rows


def audit_text(printed: PublishedText) -> list[dict]:
    """The text against the tables: stated estimates, intervals and p-values, derived quantities."""
    rows = []
    t2 = printed.table2.set_index(["outcome", "analysis", "subgroup"])
    fields = (("estimate", "estimate"), ("ci_lower", "ci_lower"), ("ci_upper", "ci_upper"),
              ("p_value", "p_value_reported"), ("p_interaction", "p_interaction_reported"))
    for _, c in printed.claims.iterrows():
        key = (c["outcome"], c["analysis"], c["subgroup"])
        if key not in t2.index:
            rows.append(_row("Text", c["claim"], "refers to a Table 2 row", c["quote"], "-", "inconsistent",
                             "no such row in Table 2", finding="text_tables"))
            continue
        table_row = t2.loc[key]
        for claim_field, table_field in fields:
            said = c.get(claim_field, "")
            if is_blank(said):
                continue
            table_value = table_row[table_field]
            if claim_field == "p_interaction" and is_blank(table_value):
                other = t2.loc[(c["outcome"], c["analysis"], "low" if c["subgroup"] == "high" else "high")]
                table_value = other["p_interaction_reported"]
            same = (said.strip() == str(table_value).strip() or
                    (not said.startswith("<") and not str(table_value).startswith("<") and
                     abs(float(said) - float(table_value)) < 1e-9))
            item = f"{c['section']}: {c['outcome']}, {c['subgroup']}"
            quantity = claim_field.replace("_", " ")
            if same:
                rows.append(_row("Text", item, quantity, said, f"Table 2: {table_value}", "reproduced"))
            elif not said.startswith("<") and not str(table_value).startswith("<") and \
                    rounds_to(float(table_value), said):
                rows.append(_row("Text", item, quantity, said, f"Table 2: {table_value}", "explained",
                                 "the text gives fewer digits than the table", ""))
            else:
                rows.append(_row("Text", item, quantity, said, f"Table 2: {table_value}", "inconsistent",
                                 f"the text says {said} ({c['quote'][:80]}...), Table 2 says {table_value}",
                                 finding="text_tables"))
    # derived quantities of the text results
    text = printed.text.set_index("quantity") if len(printed.text) else pd.DataFrame()
    if "difference_of_ates_at_optimal_cutoff" in text.index:
        low = printed.table2.query("outcome == 'mrs_90d' and analysis == 'iptw' and subgroup == 'low'")
        high = printed.table2.query("outcome == 'mrs_90d' and analysis == 'iptw' and subgroup == 'high'")
        if len(low) and len(high):
            diff = float(high["estimate"].iloc[0]) - float(low["estimate"].iloc[0])
            said = text.loc["difference_of_ates_at_optimal_cutoff", "value"]
            ok = abs(diff - float(said)) <= 10 ** -decimals(said) + 1e-9
            rows.append(_row("Text", "difference of the subgroup effects at the optimal cutoff", "= MD high - MD low (Table 2)", said,
                             fmt_num(diff), "reproduced" if ok else "inconsistent",
                             "" if ok else "not the difference of the Table 2 subgroup ATEs", finding="text_tables"))
    if "continuous_interaction_beta_per_pct" in text.index:
        r = text.loc["continuous_interaction_beta_per_pct"]
        if not any(is_blank(r[k]) for k in ("value", "ci_lower", "ci_upper", "p_reported")):
            low, high = implied_p_range(r["value"], r["ci_lower"], r["ci_upper"], ratio=False)
            p_lo, p_hi = p_interval(r["p_reported"])
            ok = high >= p_lo and low <= p_hi
            rows.append(_row("Text", "continuous interaction beta", "p implied by estimate and 95% CI", r["p_reported"],
                             f"{fmt_num(low, 4)} to {fmt_num(high, 4)}", "reproduced" if ok else "inconsistent",
                             "" if ok else "the printed p does not match its interval", finding="text_tables"))
    if {"patients_analysed", "patients_mt_rs", "patients_mt_only"} <= set(text.index):
        total = int(float(text.loc["patients_analysed", "value"]))
        parts = int(float(text.loc["patients_mt_rs", "value"])) + int(float(text.loc["patients_mt_only", "value"]))
        rows.append(_row("Text", "patients analysed", "= MT+RS + MT only", str(total), str(parts),
                         "reproduced" if total == parts else "inconsistent",
                         "" if total == parts else "the arms do not add up to the analysed patients",
                         finding="text_tables"))
        t1 = printed.table1
        if len(t1):
            sizes = (int(t1.loc[t1.variable == "age", "mt_rs_total"].iloc[0]), int(t1.loc[t1.variable == "age", "mt_only_total"].iloc[0]))
            said = (int(float(text.loc["patients_mt_rs", "value"])), int(float(text.loc["patients_mt_only", "value"])))
            rows.append(_row("Text", "arm sizes", "= Table 1 N", f"{said[0]} / {said[1]}", f"{sizes[0]} / {sizes[1]}",
                             "reproduced" if said == sizes else "inconsistent",
                             "" if said == sizes else "the text and Table 1 give different arm sizes",
                             finding="text_tables"))
    rows += _audit_text_percentages(printed, text) + _audit_subgroup_definition(printed)
    return rows


# The percentages of MT+RS patients the Results give for the glycoprotein IIb/IIIa inhibitor
# regimens (text_results_published.csv), and the Table 1 regimens they summarise.
TEXT_PERCENTAGES = {"gpi_alone_pct_of_mt_rs": lambda regimen: regimen == "gpi",
                    "gpi_combination_pct_of_mt_rs": lambda regimen: "gpi" in regimen.split("+") and regimen != "gpi"}
TEXT_PERCENTAGE_LABELS = {"gpi_alone_pct_of_mt_rs": "glycoprotein IIb/IIIa inhibitor alone",
                          "gpi_combination_pct_of_mt_rs": "glycoprotein IIb/IIIa inhibitor with other antiplatelet agents"}


def _audit_text_percentages(printed: PublishedText, text: pd.DataFrame) -> list[dict]:
    """The regimen percentages of the text against the Table 1 counts; a printed value that is
    the sum of the printed percentages of its regimens (each rounded) rather than the rounded
    share of their patients is a rounding slip."""
    rows = []
    t1 = printed.table1
    regimens = t1[t1["variable"].str.startswith("antiplatelet_regimen=")] if len(t1) else t1
    for quantity, chosen in TEXT_PERCENTAGES.items():
        if quantity not in text.index or not len(regimens):
            continue
        said = str(text.loc[quantity, "value"])
        parts = regimens[[chosen(v.split("=", 1)[1]) for v in regimens["variable"]]]
        n, total = sum(int(x) for x in parts["mt_rs_n"]), int(parts["mt_rs_total"].iloc[0])
        value = 100 * n / total
        names = ", ".join(level_label(v.split("=", 1)[1]) for v in parts["variable"])
        item = f"Results: {TEXT_PERCENTAGE_LABELS[quantity]} ({names})"
        if rounds_to(value, said):
            rows.append(_row("Text", item, "percentage of MT+RS patients", f"{said}%", f"{n}/{total} = {value:.2f}%",
                             "reproduced"))
            continue
        summed = sum(float(x) for x in parts["mt_rs_pct"])
        how = (f"; {said}% is the sum of the printed "
               + " + ".join(f"{float(x):g}%" for x in parts["mt_rs_pct"]) if abs(summed - float(said)) < 1e-9 else "")
        rows.append(_row("Text", item, "percentage of MT+RS patients", f"{said}%", f"{n}/{total} = {value:.2f}%",
                         "inconsistent", f"{n}/{total} is {value:.1f}%{how}", "rounding", "text_percentage"))
    return rows


def _audit_subgroup_definition(printed: PublishedText) -> list[dict]:
    """Whether the subgroups as printed ('<75%' and '>75%') cover every stenosis degree."""
    quotes = " ".join(printed.claims["quote"].astype(str)) if len(printed.claims) else ""
    below = set(re.findall(r"<\s*(\d+)\s*%", quotes))
    above = set(re.findall(r">\s*(\d+)\s*%", quotes))
    rows = []
    for c in sorted(below & above, key=float):
        rows.append(_row("Text", "stenosis subgroups", "every stenosis degree in one subgroup", f"<{c}% and >{c}%",
                         f"{c}% in neither", "inconsistent",
                         f"as printed, a stenosis of exactly {c}% belongs to neither subgroup, although readings "
                         f"are often reported in steps of 5%; the analysis must have put {c}% on one side (this "
                         "compendium: at or below the cutoff, ANALYSIS.md)", "methods", "subgroup_definition"))
    return rows


def monotone_effect_bound(stenosis: np.ndarray, weights: np.ndarray, cutoff: float) -> tuple[float, float]:
    """The smallest ratio ``slope / difference`` over all effects ``g`` monotone in stenosis, and
    the stenosis where it is reached: for the weighted population ``(stenosis, weights)``,
    ``difference = E[g | s > cutoff] - E[g | s <= cutoff]`` (the dichotomised analysis) and ``slope
    = cov(g, s) / var(s)`` (the linear interaction). Both are linear in ``g``, and a monotone ``g``
    is a non-negative mixture of steps ``1{s > t}``, so the ratio of the mixture is at least the
    smallest ratio of a step: the minimum over the observed ``t`` is the bound."""
    s, w = np.asarray(stenosis, float), np.asarray(weights, float)
    mean = np.average(s, weights=w)
    var = np.average((s - mean) ** 2, weights=w)
    high = s > cutoff
    best = (np.inf, np.nan)
    for t in np.unique(s)[:-1]:
        g = (s > t).astype(float)
        diff = np.average(g[high], weights=w[high]) - np.average(g[~high], weights=w[~high])
        slope = np.average((s - mean) * g, weights=w) / var
        if diff > 0 and slope / diff < best[0]:
            best = (slope / diff, float(t))
    return best


def audit_effect_shape(printed: PublishedText, reference: tuple[np.ndarray, np.ndarray] | None) -> list[dict]:
    """Whether one effect of stenting, monotone in stenosis, can give both the subgroup difference
    and the continuous interaction the text reports (:func:`monotone_effect_bound` on
    ``reference``: stenosis and overlap weights of a cohort reconstructed from Table 1)."""
    text = printed.text.set_index("quantity") if len(printed.text) else pd.DataFrame()
    needed = {"difference_of_ates_at_optimal_cutoff", "continuous_interaction_beta_per_pct", "optimal_cutoff_pct"}
    if reference is None or not needed <= set(text.index):
        return []
    cutoff = float(text.loc["optimal_cutoff_pct", "value"])
    ratio, at = monotone_effect_bound(*reference, cutoff)
    diff = abs(float(text.loc["difference_of_ates_at_optimal_cutoff", "value"]))
    beta = text.loc["continuous_interaction_beta_per_pct"]
    slope, edge = abs(float(beta["value"])), max(abs(float(beta["ci_lower"])), abs(float(beta["ci_upper"])))
    implied_slope, implied_diff = ratio * diff, slope / ratio
    # short enough (under 50 characters) that a notebook's table never cuts it to "-0.0..."
    shown = (f"difference {text.loc['difference_of_ates_at_optimal_cutoff', 'value']}, slope {beta['value']} "
             f"({beta['ci_lower']}, {beta['ci_upper']})")
    recomputed = (f"a difference of {diff:g} needs a slope of at least {implied_slope:.3f} per %; a slope of "
                  f"{slope:g} allows a difference of at most {implied_diff:.2f}")
    item = "subgroup difference and continuous interaction"
    quantity = "one effect monotone in stenosis gives both"
    if implied_slope <= slope:
        return [_row("Text", item, quantity, shown, recomputed, "reproduced")]
    reason = (f"for any effect of stenting that changes monotonically with stenosis, the slope is at least "
              f"{ratio:.4f} times the subgroup difference (the step at {at:g}% is the extreme; stenosis "
              f"distribution and overlap weights reconstructed from Table 1): {recomputed}")
    if implied_slope <= edge:
        return [_row("Text", item, quantity, shown, recomputed, "inconsistent",
                     reason + ", so the two agree only at the edge of the slope's 95% CI", "tension", "effect_shape")]
    return [_row("Text", item, quantity, shown, recomputed, "inconsistent",
                 reason + ", outside the slope's 95% CI", "unreproducible", "effect_shape")]


def audit_published(published_dir: str | Path,
                    stenosis_reference: tuple[np.ndarray, np.ndarray] | None = None) -> pd.DataFrame:
    """Every check, sorted so that real problems come first (``tables/published_audit.csv``);
    ``stenosis_reference`` (stenosis and overlap weights of a cohort reconstructed from Table 1)
    adds the check of :func:`audit_effect_shape`."""
    printed = load_printed(published_dir)
    n = None
    if len(printed.table1) and (printed.table1["variable"] == "age").any():
        age = printed.table1[printed.table1["variable"] == "age"].iloc[0]
        n = int(age["mt_only_total"]) + int(age["mt_rs_total"])
    rows = audit_table1(printed.table1) + audit_unadjusted(printed.table1, printed.table2) + \
        audit_consistency(printed.table2, n_patients=n) + audit_text(printed) + \
        audit_effect_shape(printed, stenosis_reference)
    out = pd.DataFrame(rows, columns=AUDIT_COLUMNS)
    source_order = {"Table 1": 0, "Table 2": 1, "Text": 2}
    out = out.assign(_s=out["status"].map(STATUS_ORDER), _o=out["source"].map(source_order))
    return out.sort_values(["_s", "_o"], kind="stable").drop(columns=["_s", "_o"]).reset_index(drop=True)


def audit_summary(audit: pd.DataFrame) -> pd.DataFrame:
    """Counts of checks by source and status."""
    return (audit.groupby(["source", "status"]).size().unstack(fill_value=0)
            .reindex(columns=list(STATUS_ORDER), fill_value=0).reset_index())


# ------------------------------------------------------------------------ findings
FINDINGS_COLUMNS = ["severity", "finding", "checks", "statement", "headline", "items"]
_PATTERN_TITLES = {
    "table1_numbers": "numbers of Table 1 that no test or count reproduces",  # titles: plural, count appended
    "table2_unadjusted": "unadjusted numbers of Table 2 that no method reproduces from the Table 1 counts",
    "table2_intervals": "rows of Table 2 whose estimate, interval and p-value do not fit together",
    "text_tables": "numbers of the text that contradict the tables",
    "odds_ratios": "unadjusted 'relative risks' of Table 2 that are odds ratios of the Table 1 counts",
    "profile_intervals": "unadjusted intervals of Table 2 asymmetric on the log scale, as profile-likelihood "
                         "intervals, whose p-values are Wald p-values",
    "truncated": "numbers truncated instead of rounded",
    "off_by_one": "p-values off by one rounding step from their estimate and interval",
}


def _table1_test_counts(t1: pd.DataFrame) -> dict:
    """Of the categorical p-values of Table 1: how many equal Pearson's chi-square without
    continuity correction, and how many Fisher's exact test, each rounded as printed."""
    out = {"total": 0, "chi2": 0, "fisher": 0, "fisher_small": 0}
    for _, r in t1.iterrows():
        p_text = r.get("p_value_reported", "")
        if r["summary"] != "count" or is_blank(p_text) or any(is_blank(r[f"{a}_n"]) for a, _ in ARMS):
            continue
        methods = two_by_two(int(r["mt_rs_n"]), int(r["mt_rs_total"]), int(r["mt_only_n"]), int(r["mt_only_total"]))
        out["total"] += 1
        out["chi2"] += p_matches(methods["chi-square test, no continuity correction"][3], p_text) == "rounded"
        fisher = p_matches(methods["Fisher's exact test"][3], p_text) == "rounded"
        out["fisher"] += fisher
        out["fisher_small"] += fisher and str(p_text).strip().startswith("<")
    return out


def audit_findings(audit: pd.DataFrame, published_dir: str | Path) -> pd.DataFrame:
    """``tables/audit_findings.csv``: the checks with a severity grouped into the findings a
    referee would write to the authors, each with its count, most severe first (then the most
    checks). Systematic patterns are one finding each, with their counts."""
    printed = load_printed(published_dir)
    flagged = audit[audit["severity"].astype(str) != ""]
    rows = []
    for key, group in flagged.groupby("finding", sort=False):
        severity = group["severity"].iloc[0]
        items = "; ".join(f"{r.item} ({r.quantity}: {r.published})" for r in group.itertuples())
        headline = ""
        if key == "table1_tests":
            c = _table1_test_counts(printed.table1)
            statement = (f"The Methods name Fisher's exact test for the categorical variables, yet, rounded as printed, "
                         f"{c['chi2']} of the {c['total']} categorical p-values in Table 1 equal Pearson's chi-square "
                         f"test without continuity correction and only {c['fisher']} equal Fisher's exact test "
                         f"({c['fisher_small']} of those are '<0.001', which every test gives).")
        elif key == "model_based":
            statement = (f"The Methods describe robust variance for every model, yet {len(group)} intervals or p-values "
                         "of the unadjusted relative risks in Table 2 are those of a model-based (Poisson) or "
                         "profile-likelihood fit of the Table 1 counts" + _significance_flips(printed) + ".")
        elif key in ("subgroup_definition", "effect_shape", "text_percentage"):
            r = group.iloc[0]
            statement = f"{r['item'][0].upper()}{r['item'][1:]}: {r['reason']}."
        else:  # the reasons where each number is its own problem; the items where the pattern says it all
            title = _PATTERN_TITLES.get(key, key.replace("_", " "))
            listed = (f"{r.item} ({r.published}): {r.reason}" if severity == "unreproducible" else
                      f"{r.item} ({r.published})" for r in group.itertuples())
            title = f"{title[0].upper()}{title[1:]} ({len(group)})"
            statement = f"{title}: " + "; ".join(listed) + "."
            short = "; ".join(f"{r.item} ({r.published})" for r in group.itertuples())
            headline = title + (f": {short}." if len(group) <= 3 else ".")
        rows.append({"severity": severity, "finding": key, "checks": len(group), "statement": statement,
                     "headline": headline or statement, "items": items})
    out = pd.DataFrame(rows, columns=FINDINGS_COLUMNS)
    if out.empty:
        return out
    order = {k: i for i, k in enumerate(SEVERITIES)}
    out = out.assign(_s=out["severity"].map(order), _n=-out["checks"])
    return out.sort_values(["_s", "_n", "finding"], kind="stable").drop(columns=["_s", "_n"]).reset_index(drop=True)


def _significance_flips(printed: PublishedText) -> str:
    """Outcomes whose unadjusted Table 2 p and Table 1 p, from the same counts, disagree at 5%."""
    t1 = printed.table1.set_index("variable")
    t2 = printed.table2
    flips = []
    for _, r in t2[(t2["analysis"] == "unadjusted") & (t2["subgroup"] == "overall")].iterrows():
        var = TABLE2_TO_TABLE1.get(r["outcome"])
        if var not in t1.index or is_blank(t1.loc[var, "p_value_reported"]) or is_blank(r["p_value_reported"]):
            continue
        p1, p2 = t1.loc[var, "p_value_reported"], r["p_value_reported"]
        if (p_interval(p1)[1] <= 0.05) != (p_interval(p2)[1] <= 0.05):
            flips.append(f"{r['outcome']} has p = {p2} in Table 2 against p {p1 if p1.startswith('<') else '= ' + p1} "
                         "in Table 1")
    return ("; as a result " + " and ".join(flips) + " for the same counts") if flips else ""
