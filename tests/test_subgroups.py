"""Causal subgroup analysis (ANALYSIS.md §11): balance within the stenosis subgroups under both
weightings, and Table 2's subgroup rows under weights from one propensity model per subgroup,
against R (tests/reference/make_subgroups.R: glm per subgroup, lm/glm with sandwich HC0,
numDeriv for the stacked M-estimation)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import COHORTS, assert_close, expected, sample, weights

from analysis_lib import cli
from analysis_lib.params import DEFAULT_PS_COVARIATES, Parameters
from analysis_lib.steps import subgroup_balance_of, subgroup_weights_comparison, sweep_of, table2_of
from analysis_lib.study import load_study
from analysis_lib.subgroups import overall_weights, subgroup_balance, within_weights
from analysis_lib.weighting import balance_variables

R_COHORTS = ["synthetic", "missing", "centers40"]
CUTOFFS = [float(c) for c in range(40, 95, 5)]


def study_of(cohort: str, **params):
    return load_study(Parameters(data_path=str(COHORTS[cohort]), **params))


def python_balance(cohort: str) -> pd.DataFrame:
    s = sample(cohort)
    weightings = []
    for c in CUTOFFS:
        weightings += [overall_weights(weights(cohort), np.full(len(s), 0.5), c, "ATO"),
                       within_weights(s, c, DEFAULT_PS_COVARIATES)]
    return subgroup_balance(balance_variables(s, DEFAULT_PS_COVARIATES), s["rescue_stenting"], s["stenosis_pct"],
                            weightings)


@pytest.mark.parametrize("cohort", R_COHORTS)
def test_which_cutoffs_carry_a_model_in_each_subgroup_agrees_with_r(cohort):
    s = sample(cohort)
    ours = [within_weights(s, c, DEFAULT_PS_COVARIATES).estimable for c in CUTOFFS]
    ref = expected(cohort, "subgroup_estimable_ATO")
    assert ref["cutoff"].tolist() == CUTOFFS and ours == ref["estimable"].tolist()
    assert any(ours) and not all(ours)  # both kinds occur: the check can fail either way


@pytest.mark.parametrize("cohort", R_COHORTS)
def test_subgroup_balance_under_both_weightings_equals_r(cohort):
    ours = python_balance(cohort)
    ref = expected(cohort, "subgroup_balance_ATO")
    keys = ["cutoff", "weights", "subgroup", "covariate"]
    merged = ref.merge(ours, on=keys, how="left", suffixes=("_r", ""), validate="one_to_one")
    assert len(merged) == len(ref) and merged["smd_weighted"].notna().sum() > 0
    for column in ("smd_unweighted", "smd_weighted", "variance_ratio_weighted"):
        assert_close(merged[column], merged[f"{column}_r"], atol=1e-9, what=f"{cohort} {column}")
    # rows R could not compute are rows without a number here, each with its reason
    unmatched = ours.merge(ref[keys], on=keys, how="left", indicator=True)
    missing = unmatched[unmatched["_merge"] == "left_only"]
    assert missing["smd_weighted"].isna().all() and (missing["note"] != "").all()


@pytest.mark.parametrize("cohort", R_COHORTS)
def test_within_weights_balance_every_covariate_exactly_within_each_subgroup(cohort):
    ours = python_balance(cohort)
    within = ours[(ours["weights"] == "within")].dropna(subset=["smd_weighted"])
    assert len(within) > 100
    assert within["smd_weighted"].abs().max() < 1e-8
    overall = ours[(ours["weights"] == "overall")].dropna(subset=["smd_weighted"])
    assert overall["smd_weighted"].abs().max() > 0.1  # what the overall weights leave within subgroups


@pytest.mark.parametrize("cohort", R_COHORTS)
def test_table2_subgroup_rows_under_within_weights_equal_r(cohort):
    study = study_of(cohort, subgroup_weights="within")
    table = table2_of(study, 75.0, full=True)
    ref = expected(cohort, "subgroup_table2_within_ATO_HC0_75")
    ours = table[table["analysis"] == "iptw"].merge(ref, on=["outcome", "subgroup"], suffixes=("", "_r"))
    assert len(ours) == 4
    for column in ("estimate", "ci_lower", "ci_upper", "p_value", "std_error", "p_interaction"):
        assert_close(ours[column], ours[f"{column}_r"], what=f"{cohort} {column}")
    # the overall rows keep the overall model
    primary = table2_of(study_of(cohort), 75.0)
    both = table.merge(primary, on=["outcome", "analysis", "subgroup"], suffixes=("", "_p"))
    same = both[(both["subgroup"] == "overall") | (both["analysis"] == "unadjusted")]
    assert_close(same["estimate"], same["estimate_p"], rtol=0, atol=0, what="overall rows")


@pytest.mark.parametrize("cohort", R_COHORTS)
def test_m_estimation_of_the_interacted_propensity_model_equals_r(cohort):
    study = study_of(cohort, subgroup_weights="within", variance="m_estimation")
    rows = table2_of(study, 75.0, full=True).query("outcome == 'mrs_90d' and analysis == 'iptw'")
    ref = expected(cohort, "subgroup_mestimation_within_ATO_75").set_index("quantity")
    ours = rows.set_index("subgroup")
    for subgroup in ("low", "high"):
        assert_close(ours.loc[subgroup, "estimate"], ref.loc[subgroup, "estimate"], what=subgroup)
        assert_close(ours.loc[subgroup, "std_error"], ref.loc[subgroup, "se_m_estimation"], rtol=1e-5, what=subgroup)


def test_the_sweep_under_within_weights_says_which_cutoffs_cannot_be_estimated():
    sweep = sweep_of(study_of("synthetic", subgroup_weights="within")).set_index("cutoff")
    assert not sweep.loc[40.0, "eligible"] and np.isnan(sweep.loc[40.0, "ate_low"])
    assert sweep.loc[40.0, "note"].startswith("not estimable with weights within subgroups: the low subgroup "
                                              "(stenosis ≤ 40 %, 67 patients) cannot carry its own propensity model")
    assert sweep.loc[75.0, "note"] == "" and sweep["selected"].sum() == 1
    # at an estimable cutoff the sweep's row equals Table 2's mRS rows under the same weights
    row = table2_of(study_of("synthetic", subgroup_weights="within"), 75.0).query(
        "outcome == 'mrs_90d' and analysis == 'iptw'").set_index("subgroup")
    assert_close(sweep.loc[75.0, ["ate_low", "ate_high"]].to_numpy(float), row.loc[["low", "high"], "estimate"],
                 rtol=1e-12)


def test_both_weightings_side_by_side():
    study = study_of("synthetic")
    table = subgroup_weights_comparison(study, 75.0)
    assert len(table) == 8 * 2 * 2 and set(table["weights"]) == {"overall", "within"}
    mrs = table[table["outcome"] == "mrs_90d"].set_index(["subgroup", "weights"])
    ref = expected("synthetic", "subgroup_table2_within_ATO_HC0_75").set_index(["outcome", "subgroup"])
    assert_close(mrs.loc[("low", "within"), "estimate"], ref.loc[("mrs_90d", "low"), "estimate"])
    primary = table2_of(study, 75.0).query("outcome == 'mrs_90d' and analysis == 'iptw'").set_index("subgroup")
    assert_close(mrs.loc[("high", "overall"), "estimate"], primary.loc["high", "estimate"], rtol=0, atol=0)


def test_subgroup_balance_table_of_a_study_covers_every_cutoff_and_both_weightings():
    balance = subgroup_balance_of(study_of("synthetic"), 72.5)
    assert sorted(balance["cutoff"].unique()) == sorted(CUTOFFS + [72.5])
    assert set(balance["weights"]) == {"overall", "within"} and set(balance["subgroup"]) == {"low", "high"}
    assert len(balance) == 12 * 2 * 2 * 12


def test_a_table2_cutoff_whose_subgroup_cannot_carry_a_model_stops_the_build(capsys, tmp_path):
    code = cli.main(["build", "--data", str(COHORTS["synthetic"]), "--out", str(tmp_path / "out"),
                     "-p", "subgroup_weights", "within", "-p", "cutoff", "50"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 1 and not (tmp_path / "out").exists()
    assert err[0].startswith("error: parameter 'subgroup_weights' within, cutoff 50 of Table 2: not estimable with "
                             "weights within subgroups: the low subgroup (stenosis ≤ 50 %, 82 patients) cannot "
                             "carry its own propensity model (")


def test_the_connect_s_plot_and_the_formatted_table_show_every_covariate_and_subgroup():
    from analysis_lib.figures import subgroup_balance_plot
    from analysis_lib.tables import format_subgroup_balance

    balance = subgroup_balance_of(study_of("synthetic"), 75.0)
    figure = subgroup_balance_plot(balance, 75.0)
    panels = figure.axes[:3]
    assert [ax.get_title() for ax in panels] == ["Unweighted", "Overall model", "Model per subgroup"]
    assert all(sum(len(c.get_offsets()) for c in ax.collections) == 24 for ax in panels)  # 12 covariates x 2
    table = format_subgroup_balance(balance, 75.0)
    assert list(table.columns[1:]) == [f"{w} {s}" for w in ("Unweighted", "Overall model", "Model per subgroup")
                                       for s in ("≤75%", ">75%")]
    assert (table["Model per subgroup ≤75%"] == "0.000").all() and (table["Overall model ≤75%"] != "0.000").any()
    # at a cutoff where a subgroup cannot carry its own model, its cells are crossed, not squares
    crossed = subgroup_balance_plot(subgroup_balance_of(study_of("synthetic"), 50.0), 50.0).axes[2]
    assert sum(len(line.get_xdata()) for line in crossed.lines) == 24
