"""The plain-language sentences: what they say follows the numbers, and a simulated rate is
compared with its nominal value only at twice its Monte-Carlo SE."""

from __future__ import annotations

import pandas as pd

from analysis_lib.narrative import simulation_summary, subgroup_balance_summary


def summary(rate: float, se: float) -> pd.DataFrame:
    rows = [("no effect modification", "significant effect modification, naive (p-interaction at the selected "
             "cutoff < 0.05)", 0.26, 0.02),
            ("no effect modification", "significant effect modification, selection-adjusted (p < 0.05)", rate, se)]
    for scenario, bias_o, bias_w in (("no effect modification", 0.17, 0.002), ("linear, crossing at 70%", -0.55, -0.02)):
        for method, bias in (("overall model", bias_o), ("model per subgroup", bias_w)):
            rows.append((scenario, f"bias, MD low ({method})", bias, 0.016))
            rows.append((scenario, f"coverage of the 95% CI, MD low ({method}, M-estimation)", 0.94, 0.0106))
            rows.append((scenario, f"coverage of the 95% CI, MD low ({method}, HC sandwich)", 0.99, 0.005))
    return pd.DataFrame(rows, columns=["scenario", "quantity", "value", "mc_se"]).assign(replicates=500)


def test_a_rate_is_judged_against_its_monte_carlo_error():
    assert "selection-adjusted test in 14.0% (Monte-Carlo SE 4.9%), consistent with the nominal 5%" in \
        simulation_summary(summary(0.14, 0.049))  # 50 replicates cannot tell 14% from 5%
    assert "selection-adjusted test in 14.0% (Monte-Carlo SE 1.6%), above the nominal 5%" in \
        simulation_summary(summary(0.14, 0.016))
    assert "selection-adjusted test in 4.5% (Monte-Carlo SE 0.5%), consistent with the nominal 5%" in \
        simulation_summary(summary(0.045, 0.005))


def test_bias_counts_beyond_three_monte_carlo_errors_and_coverage_is_compared_with_95():
    text = simulation_summary(summary(0.05, 0.01))
    assert ("With the overall model's weights, 2 of 2 subgroup estimates are biased beyond max(3 Monte-Carlo SEs, "
            "0.03), up to -0.55 (Monte-Carlo SE 0.02; at or below the cutoff, scenario 'linear, crossing at 70%')") in text
    assert ("With weights from one propensity model per subgroup, no subgroup estimate is biased beyond max(3 "
            "Monte-Carlo SEs, 0.03) in any scenario (largest |bias| 0.020") in text
    assert ("the 95% intervals by M-estimation cover the truth in 94.0% to 94.0% of cohorts across scenarios and "
            "subgroups (2 of 2 consistent with 95%") in text


def test_the_subgroup_balance_sentence_names_the_largest_imbalance():
    balance = pd.DataFrame({
        "cutoff": [75.0] * 4, "weights": ["overall", "overall", "within", "within"], "subgroup": ["low", "high"] * 2,
        "covariate": ["stenosis_pct", "nihss", "stenosis_pct", "nihss"], "smd_unweighted": [1.5, 0.3, 1.5, 0.3],
        "smd_weighted": [1.01, -0.2, 1e-15, -2e-16], "variance_ratio_weighted": [1.0] * 4, "note": [""] * 4})
    text = subgroup_balance_summary(balance, 75.0, "overall")
    assert text.startswith("At the 75% cutoff, the weights of the overall propensity model leave a largest "
                           "within-subgroup |SMD| of 1.01 (Degree of MCA stenosis, %, stenosis ≤ 75%)")
    assert "(largest |SMD| 0.000)" in text and "Table 2 uses the overall model's weights" in text
    assert "Table 2 and the cutoff sweep use the weights of one model per subgroup" in \
        subgroup_balance_summary(balance, 75.0, "within")


def test_the_cutoff_sentence_reconciles_the_fixed_and_the_selected_cutoff():
    from analysis_lib.narrative import cutoff_choice

    sweep = pd.DataFrame({"cutoff": [65.0, 75.0], "selected": [True, False]})
    text = cutoff_choice(sweep, 75.0, fixed=True)
    assert text.startswith("Table 2, Figure 1, Supplementary Table 3 and the sensitivity analyses use the 75% cutoff, "
                           "fixed in advance as in the paper")
    assert "the sweep selects 65% instead" in text and "overstates that difference" in text
    assert "selects the same cutoff, 75%" in cutoff_choice(sweep.assign(selected=[False, True]), 75.0, fixed=True)
    assert "use the cutoff the sweep selects on these data, 65%" in cutoff_choice(sweep, 65.0, fixed=False)
    assert "selects none" in cutoff_choice(sweep.assign(selected=False), 75.0, fixed=True)
