"""The audit finds planted reporting errors with the right reason and leaves correct numbers alone."""

import re

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from analysis_lib.audit import (
    AUDIT_COLUMNS,
    SEVERITIES,
    PublishedText,
    audit_consistency,
    audit_findings,
    audit_published,
    audit_table1,
    audit_text,
    audit_unadjusted,
    how_printed,
    implied_p_range,
    monotone_effect_bound,
    p_interval,
    two_by_two,
)
from analysis_lib.params import Parameters
from analysis_lib.steps import load_paper

T1_COLUMNS = ["variable", "summary", "mt_only_n", "mt_only_total", "mt_only_pct", "mt_only_median", "mt_only_q1",
              "mt_only_q3", "mt_rs_n", "mt_rs_total", "mt_rs_pct", "mt_rs_median", "mt_rs_q1", "mt_rs_q3",
              "p_value_reported"]


def t1_row(variable, c, n0, a, n1, pct0=None, pct1=None, p=""):
    pct0 = pct0 or f"{100 * c / n0:.1f}"
    pct1 = pct1 or f"{100 * a / n1:.1f}"
    return {"variable": variable, "summary": "count", "mt_only_n": str(c), "mt_only_total": str(n0), "mt_only_pct": pct0,
            "mt_only_median": "", "mt_only_q1": "", "mt_only_q3": "", "mt_rs_n": str(a), "mt_rs_total": str(n1),
            "mt_rs_pct": pct1, "mt_rs_median": "", "mt_rs_q1": "", "mt_rs_q3": "", "p_value_reported": p}


def t2_row(outcome, analysis, subgroup, measure, est, lo, hi, p, pint=""):
    return {"outcome": outcome, "subgroup": subgroup, "analysis": analysis, "measure": measure, "estimate": est,
            "ci_lower": lo, "ci_upper": hi, "p_value_reported": p, "p_interaction_reported": pint}


def fmt(x, d=2):
    return f"{x:.{d}f}"


def status_of(rows, item, quantity_start):
    hits = [r for r in rows if r["item"] == item and r["quantity"].startswith(quantity_start)]
    assert hits, (item, quantity_start, rows)
    return hits[0]


def test_printed_precision_helpers():
    assert how_printed(0.0453, "0.05") == "rounded" and how_printed(0.0453, "0.04") == "truncated"
    assert how_printed(0.0453, "0.03") is None
    assert p_interval("<0.001") == (0.0, 0.001)
    lo, hi = p_interval("0.04")
    assert lo == pytest.approx(0.035) and hi == pytest.approx(0.05)
    # a ratio whose rounding box contains 1: the implied p reaches 1
    assert implied_p_range("1.00", "0.63", "1.58", ratio=True)[1] == 1.0


def test_wrong_percentage_and_correct_percentage():
    t1 = pd.DataFrame([t1_row("hypertension", 78, 131, 125, 172),
                       t1_row("diabetes", 24, 131, 51, 172, pct0="21.9")], columns=T1_COLUMNS)
    rows = audit_table1(t1)
    ok = status_of(rows, "hypertension, MT only", "percentage")
    assert ok["status"] == "reproduced"
    bad = status_of(rows, "diabetes, MT only", "percentage")
    assert bad["status"] == "inconsistent" and bad["reason"].startswith("24/131 is 18.3%, not 21.9%")


def test_truncated_percentage_is_explained():
    t1 = pd.DataFrame([t1_row("prior_stroke", 23, 131, 30, 172, pct0="17.5")], columns=T1_COLUMNS)
    row = status_of(audit_table1(t1), "prior_stroke, MT only", "percentage")
    assert row["status"] == "explained" and "truncated" in row["reason"]


def test_fisher_p_reproduced_and_a_wrong_p_flagged():
    a, n1, c, n0 = 51, 172, 24, 131
    fisher = two_by_two(a, n1, c, n0)["Fisher's exact test"][3]
    t1 = pd.DataFrame([t1_row("diabetes", c, n0, a, n1, p=fmt(fisher, 3)),
                       t1_row("sich", c, n0, a, n1, p="0.50")], columns=T1_COLUMNS)
    rows = audit_table1(t1)
    assert status_of(rows, "diabetes", "p-value")["status"] == "reproduced"
    assert status_of(rows, "sich", "p-value")["status"] == "inconsistent"


def _unadjusted_tables(est, lo, hi, p):
    t1 = pd.DataFrame([t1_row("sich", 6, 131, 20, 172)], columns=T1_COLUMNS)
    t2 = pd.DataFrame([t2_row("sich", "unadjusted", "overall", "RR", est, lo, hi, p)])
    return audit_unadjusted(t1, t2)


def test_correct_unadjusted_ratio_is_reproduced():
    est, lo, hi, p = two_by_two(20, 172, 6, 131)["RR, robust Wald (modified Poisson / log-binomial)"]
    rows = _unadjusted_tables(fmt(est), fmt(lo), fmt(hi), fmt(p))
    assert {r["status"] for r in rows} == {"reproduced"}


def test_odds_ratio_labelled_as_risk_ratio():
    est, lo, hi, p = two_by_two(20, 172, 6, 131)["OR, Wald"]
    rows = _unadjusted_tables(fmt(est), fmt(lo), fmt(hi), fmt(p))
    estimate = status_of(rows, "sich, unadjusted, overall", "estimate")
    assert estimate["status"] == "inconsistent" and "odds ratio" in estimate["reason"]
    ci = status_of(rows, "sich, unadjusted, overall", "95% CI")
    assert ci["status"] == "inconsistent" and "odds ratio" in ci["reason"]


def test_profile_likelihood_interval_is_explained():
    est, lo, hi, p = two_by_two(20, 172, 6, 131)["RR, Poisson GLM profile likelihood (R confint)"]
    rows = _unadjusted_tables(fmt(est), fmt(lo), fmt(hi), fmt(p))
    ci = status_of(rows, "sich, unadjusted, overall", "95% CI")
    assert ci["status"] == "explained" and "Poisson GLM profile likelihood" in ci["reason"]


@pytest.mark.parametrize("p,status,reason", [
    ("0.004", "reproduced", ""),                      # z = 2.95 gives p = 0.0035-0.0036
    ("0.005", "inconsistent", "off by one rounding step"),
    ("0.04", "inconsistent", "does not match its interval"),
])
def test_p_against_its_interval(p, status, reason):
    # ATE 0.70 (0.23 to 1.17): SE = 0.94 / 3.92 = 0.2398, z = 2.92, p = 0.0035
    t2 = pd.DataFrame([t2_row("mrs_90d", "iptw", "low", "ATE", "0.70", "0.23", "1.17", p)])
    row = audit_consistency(t2)[0]
    assert row["status"] == status and reason in row["reason"]


def test_interval_with_a_lost_minus_sign():
    t2 = pd.DataFrame([t2_row("mrs_90d", "iptw", "high", "ATE", "-1.03", "-1.71", "0.35", "0.004")])
    row = audit_consistency(t2)[0]
    assert row["status"] == "inconsistent" and row["reason"] == "the upper limit appears to have lost its minus sign"


def test_asymmetric_adjusted_ratio_interval_is_inconsistent():
    t2 = pd.DataFrame([t2_row("sich", "iptw", "overall", "RR", "5.15", "1.78", "30.00", "0.002")])
    row = audit_consistency(t2)[0]
    assert row["status"] == "inconsistent" and "symmetric on the log scale" in row["reason"]


def test_text_against_tables():
    t2 = pd.DataFrame([t2_row("sich", "iptw", "low", "RR", "5.00", "1.54", "16.28", "0.01", "0.90"),
                       t2_row("sich", "iptw", "high", "RR", "5.33", "0.66", "42.95", "0.11", "0.90")])
    claims = pd.DataFrame([
        {"claim": "a", "section": "Results", "quote": "RR 5.0 (1.54-16.28; p=0.01)", "outcome": "sich", "analysis": "iptw",
         "subgroup": "low", "estimate": "5.0", "ci_lower": "1.54", "ci_upper": "16.28", "p_value": "0.01", "p_interaction": ""},
        {"claim": "b", "section": "Results", "quote": "p-interaction <0.001", "outcome": "sich", "analysis": "iptw",
         "subgroup": "high", "estimate": "", "ci_lower": "", "ci_upper": "", "p_value": "", "p_interaction": "<0.001"},
    ])
    rows = audit_text(PublishedText(table1=pd.DataFrame(), table2=t2, text=pd.DataFrame(), claims=claims))
    assert {r["status"] for r in rows if r["item"].endswith("low")} <= {"reproduced", "explained"}
    bad = [r for r in rows if r["quantity"] == "p interaction"][0]
    assert bad["status"] == "inconsistent" and "Table 2 says 0.90" in bad["reason"]


def test_the_paper():
    """What the audit finds in the published tables (the closing note lists it)."""
    audit = audit_published(ROOT / "data" / "published")
    assert list(audit.columns) == AUDIT_COLUMNS
    assert audit["status"].iloc[0] == "inconsistent"  # real problems first
    bad = audit[audit["status"] == "inconsistent"]
    found = set(zip(bad["item"], bad["quantity"]))
    assert ("prior_antiplatelets, MT only", "percentage") in found
    assert ("mrs_0_3, unadjusted, overall", "estimate (RR)") in found
    assert ("Results: mrs_0_2, high", "p interaction") in found
    explained = audit[audit["status"] == "explained"]
    assert explained["reason"].str.contains("chi-square test, no continuity correction").sum() >= 5
    assert (audit[audit["item"] == "sich, unadjusted, overall"]["reason"].str.contains("profile likelihood")).any()


def test_every_check_that_is_not_reproduced_has_a_severity():
    audit = audit_published(ROOT / "data" / "published")
    flagged = audit["severity"] != ""
    assert set(audit.loc[flagged, "severity"]) <= set(SEVERITIES)
    assert (audit.loc[audit["status"] == "inconsistent", "severity"] != "").all()
    # an "explained" p-value from another test than the Methods name is a finding about the Methods
    fisher = audit[audit["quantity"].str.startswith("p-value (Fisher") & (audit["status"] == "explained")]
    assert len(fisher) and (fisher["severity"] == "methods").all()
    # truncation is a rounding slip; reproduced and not-checkable rows carry none
    assert (audit.loc[audit["reason"] == "truncated to one decimal instead of rounded", "severity"] == "rounding").all()
    assert (audit.loc[audit["status"].isin(["reproduced", "not_checkable"]), "severity"] == "").all()


def test_the_findings_of_the_paper_name_the_patterns_with_their_counts():
    audit = audit_published(ROOT / "data" / "published")
    findings = audit_findings(audit, ROOT / "data" / "published").set_index("finding")
    order = [list(SEVERITIES).index(s) for s in findings["severity"]]
    assert order == sorted(order)  # most severe first
    assert ("15 of the 20 categorical p-values in Table 1 equal Pearson's chi-square test without continuity "
            "correction and only 5 equal Fisher's exact test (3 of those are '<0.001'") in findings.loc["table1_tests",
                                                                                                   "statement"]
    assert findings.loc["table1_tests", "severity"] == "methods"
    assert "final_mtici_2b3 has p = 0.16 in Table 2 against p <0.001 in Table 1" in findings.loc["model_based",
                                                                                                 "statement"]
    assert "35/172 is 20.3%; 20.2% is the sum of the printed 13.9% + 5.2% + 1.1%" in findings.loc["text_percentage",
                                                                                                  "statement"]
    assert findings.loc["text_percentage", "severity"] == "rounding"
    assert "exactly 75% belongs to neither subgroup" in findings.loc["subgroup_definition", "statement"]
    assert findings.loc["table1_numbers", "checks"] == 3 and findings.loc["table1_numbers", "severity"] == "unreproducible"
    assert "effect_shape" not in findings.index  # needs the reconstructed stenosis distribution


def test_the_monotone_effect_bound_is_reached_by_a_step_and_holds_for_every_monotone_effect():
    s = np.arange(1.0, 101.0)
    w = np.ones_like(s)
    ratio, at = monotone_effect_bound(s, w, 50.0)
    # closed form: the step at 50 on 1..100 has difference 1 and slope cov / var = 12.5 / 833.25
    assert at == 50.0 and ratio == pytest.approx(12.5 / 833.25, rel=1e-12)
    rng = np.random.default_rng(1)
    s = np.round(rng.uniform(20, 99, 400))
    w = rng.uniform(0.2, 1.0, 400)
    ratio, at = monotone_effect_bound(s, w, 75.0)
    high = s > 75
    for _ in range(200):  # any non-increasing effect of stenosis: slope / difference >= the bound
        levels = np.sort(np.unique(s))
        g = dict(zip(levels, -np.cumsum(rng.exponential(size=levels.size) * (rng.random(levels.size) < 0.3))))
        y = np.array([g[v] for v in s])
        diff = np.average(y[high], weights=w[high]) - np.average(y[~high], weights=w[~high])
        slope = np.cov(s, y, aweights=w)[0, 1] / np.cov(s, aweights=w)
        if diff < 0:
            assert slope / diff >= ratio - 1e-12


def test_the_paper_s_subgroup_difference_and_slope_agree_only_at_the_edge_of_the_slope_s_interval():
    """With the stenosis of a cohort reconstructed from Table 1 and its overlap weights, a
    difference of 2.06 needs a slope of at least ~0.044 per %: above the printed 0.028, inside its
    CI (0.009 to 0.047) only at the edge."""
    paper = load_paper(Parameters(published_dir=str(ROOT / "data" / "published")))
    audit = paper.audit().table
    row = audit[audit["finding"] == "effect_shape"].iloc[0]
    assert row["severity"] == "tension" and row["status"] == "inconsistent"
    implied = float(re.search(r"needs a slope of at least ([0-9.]+)", row["recomputed"]).group(1))
    assert 0.028 < implied <= 0.047
    allowed = float(re.search(r"allows a difference of at most ([0-9.]+)", row["recomputed"]).group(1))
    assert allowed < 2.06 - 0.5  # the printed slope cannot carry the printed difference
