"""The formatted tables a reader sees, from small explicit tidy frames: the paper's conventions
(two decimals, ``lower to upper``, p with two or three decimals and ``<0.001``), dashes and
``not estimable`` where there is no number, notes carried over."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis_lib import tables


def tidy_table2() -> pd.DataFrame:
    rows = []
    for analysis, estimate in (("unadjusted", -0.1547), ("iptw", 0.0899)):
        rows.append(("mrs_90d", analysis, "overall", "ATE", estimate, -0.61, 0.2990, 0.5026, np.nan, 303, ""))
        rows.append(("mrs_90d", analysis, "low", "ATE", 0.9656, 0.2252, 1.7059, 0.0108, 0.000213, 167, ""))
        rows.append(("mrs_90d", analysis, "high", "ATE", np.nan, np.nan, np.nan, np.nan, np.nan, 136,
                     "not estimable: no MT-only patients with a known outcome with stenosis > 75 %"))
    return pd.DataFrame(rows, columns=["outcome", "analysis", "subgroup", "measure", "estimate", "ci_lower",
                                       "ci_upper", "p_value", "p_interaction", "n", "note"])


def test_table2_prints_the_paper_s_conventions_and_says_what_is_not_estimable():
    shown = tables.format_table2(tidy_table2(), 75.0)
    assert list(shown["Subgroup"]) == ["Entire cohort", "≤75% stenosis", ">75% stenosis"]
    low = shown.iloc[1]
    assert low["IPTW (95% CI)"] == "0.97 (0.23 to 1.71)" and low["IPTW p"] == "0.01" and low["IPTW p-int"] == "<0.001"
    assert shown.iloc[0]["IPTW p-int"] == "-" and shown.iloc[0]["Unadjusted (95% CI)"] == "-0.15 (-0.61 to 0.30)"
    high = shown.iloc[2]
    assert high["IPTW (95% CI)"] == "not estimable" and high["IPTW p"] == "-"
    assert high["Note"] == "not estimable: no MT-only patients with a known outcome with stenosis > 75 %"


def test_sweep_shows_eligibility_selection_and_the_reason_of_a_missing_row():
    sweep = pd.DataFrame({"cutoff": [40.0, 75.0], "n_low": [68, 167], "n_high": [235, 136],
                          "ate_low": [np.nan, 0.97], "ate_low_ci_lower": [np.nan, 0.23], "ate_low_ci_upper": [np.nan, 1.71],
                          "ate_low_p": [np.nan, 0.0108], "ate_high": [np.nan, -1.22], "ate_high_ci_lower": [np.nan, -2.1],
                          "ate_high_ci_upper": [np.nan, -0.34], "ate_high_p": [np.nan, 0.0065],
                          "difference": [np.nan, -2.19], "p_interaction": [np.nan, 0.0002], "eligible": [False, True],
                          "selected": [False, True], "note": ["not estimable: no patient with a known outcome in "
                                                              "MT+RS <= 40 %", ""]})
    shown = tables.format_sweep(sweep)
    assert list(shown["Cutoff (%)"]) == ["40", "75"] and list(shown["n low / high"]) == ["68 / 235", "167 / 136"]
    assert list(shown["Eligible"]) == ["no", "yes"] and list(shown["Selected"]) == ["", "selected"]
    assert shown.iloc[0]["MD low (95% CI)"] == "not estimable" and shown.iloc[0]["Note"].startswith("not estimable")
    assert shown.iloc[1]["Difference"] == "-2.19" and shown.iloc[1]["p-interaction"] == "<0.001"


def test_table1_counts_percentages_medians_and_masked_cells():
    tidy = pd.DataFrame({
        "variable": ["age", "sex_female"], "summary": ["median", "count"],
        "mt_only_n": [np.nan, 65.0], "mt_only_total": [131, 131], "mt_only_pct": [np.nan, 49.618],
        "mt_only_median": [71.0, np.nan], "mt_only_q1": [63.0, np.nan], "mt_only_q3": [78.5, np.nan],
        "mt_rs_n": [np.nan, np.nan], "mt_rs_total": [172, 172], "mt_rs_pct": [np.nan, np.nan],
        "mt_rs_median": [71.0, np.nan], "mt_rs_q1": [61.0, np.nan], "mt_rs_q3": [77.0, np.nan],
        "p_value": [0.41, 0.1234], "test": ["Mann-Whitney", "Fisher"]})
    tidy.attrs["min_cell_size"] = 5
    shown = tables.format_table1(tidy)
    assert list(shown.columns) == ["Characteristic", "MT only (N = 131)", "MT+RS (N = 172)", "p", "Test"]
    assert shown.iloc[0].tolist() == ["Demographic and baseline characteristics", "", "", "", ""]  # a section row
    assert shown.iloc[1]["Characteristic"] == "Age, years, median (IQR)"
    assert shown.iloc[1]["MT only (N = 131)"] == "71 (63-79)" and shown.iloc[1]["p"] == "0.41"  # whole, half up
    assert shown.iloc[2]["MT only (N = 131)"] == "65/131 (49.6)" and shown.iloc[2]["MT+RS (N = 172)"] == "<5/172"
    assert len(tables.format_table1(tidy, sections=False)) == 2
