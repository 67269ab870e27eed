"""Table 1 against R (quantile type 7, wilcox.test, fisher.test) and scipy on the same counts;
the weighted mRS distribution and the patient flow."""

import numpy as np
import pytest
from conftest import COHORTS, assert_close, expected, sample, weights
from scipy import stats

from analysis_lib.data import analysis_sample, load_cohort
from analysis_lib.descriptives import (
    FISHER,
    MANN_WHITNEY,
    TABLE1_COLUMNS,
    mann_whitney_p,
    mrs_distribution,
    patient_flow,
    table1,
)
from analysis_lib.params import DEFAULT_PS_COVARIATES


def test_table1_matches_r(cohort):
    t1 = table1(sample(cohort)).set_index("variable")
    ref = expected(cohort, "table1").set_index("variable")
    t1 = t1.loc[ref.index]
    for col in ("mt_only_median", "mt_only_q1", "mt_only_q3", "mt_rs_median", "mt_rs_q1", "mt_rs_q3",
                "mt_only_n", "mt_rs_n"):
        assert_close(t1[col], ref[col], rtol=1e-12, what=col)
    assert_close(t1["p_value"], ref["p_value"], rtol=1e-6, what="p_value")


def test_table1_contract_and_tests_named():
    t1 = table1(sample("synthetic"))
    assert list(t1.columns) == TABLE1_COLUMNS
    tests = dict(zip(t1["variable"], t1["test"]))
    assert tests["age"] == MANN_WHITNEY and tests["sich"] == FISHER
    regimen = t1[t1["variable"].str.startswith("antiplatelet_regimen=")]
    assert (regimen["test"] == "").all() and regimen["p_value"].isna().all()
    assert regimen["mt_rs_n"].sum() == 172 and (regimen["mt_only_total"] == 0).all()


@pytest.mark.parametrize("variable", ["hypertension", "atrial_fibrillation", "sich", "reocclusion"])
def test_fisher_p_equals_scipy_on_the_counts(variable):
    row = table1(sample("synthetic")).set_index("variable").loc[variable]
    counts = [[row["mt_only_n"], row["mt_only_total"] - row["mt_only_n"]],
              [row["mt_rs_n"], row["mt_rs_total"] - row["mt_rs_n"]]]
    assert row["p_value"] == stats.fisher_exact(np.array(counts, dtype=int)).pvalue
    assert row["mt_only_pct"] == pytest.approx(100 * row["mt_only_n"] / row["mt_only_total"])


@pytest.mark.parametrize("variable", ["age", "nihss", "stenosis_pct"])
def test_mann_whitney_p_equals_scipy_on_the_values(variable):
    s = sample("synthetic")
    row = table1(s).set_index("variable").loc[variable]
    x0 = s.loc[s.rescue_stenting == 0, variable]
    x1 = s.loc[s.rescue_stenting == 1, variable]
    ref = stats.mannwhitneyu(x0, x1, alternative="two-sided", method="asymptotic", use_continuity=True).pvalue
    assert row["p_value"] == pytest.approx(ref, rel=1e-12)


def test_mann_whitney_exact_for_small_samples_without_ties_as_r():
    # wilcox.test(c(1.1, 2.3, 3.5), c(4.2, 5.4, 6.6, 7.1))$p.value == 0.05714285714285714 (exact)
    assert mann_whitney_p(np.array([1.1, 2.3, 3.5]), np.array([4.2, 5.4, 6.6, 7.1])) == pytest.approx(4 / 70)


def test_mrs_distribution_sums_and_weights():
    s = sample("synthetic")
    d = mrs_distribution(s, weights("synthetic"), 75)
    totals = d.groupby(["group", "arm"])["percent"].sum()
    assert np.allclose(totals, 100)
    unweighted = mrs_distribution(s, None, 75)
    mt_only = s[s.rescue_stenting == 0]
    share0 = 100 * (mt_only["mrs_90d"] == 0).mean()
    row = unweighted[(unweighted.group == "overall") & (unweighted.arm == "MT only") & (unweighted.mrs == 0)]
    assert row["percent"].iloc[0] == pytest.approx(share0)


def test_patient_flow_counts_exclusions():
    cohort = load_cohort(COHORTS["missing"])
    smp = analysis_sample(cohort, DEFAULT_PS_COVARIATES)
    table = patient_flow(smp, 18732, 541)
    flow = table.set_index("stage")
    assert table["stage"].str.contains("\\.\\.\\.").sum() == 0  # no placeholder box
    assert flow.loc[flow.index.str.startswith("Excluded: other rescue"), "n"].item() == 541 - 260
    assert flow.loc["Analysed", "n"] == smp.n == 246
    excluded = flow[flow.index.str.startswith("Excluded: missing")]
    assert excluded["n"].sum() == 260 - 246
    assert (excluded["n_mt_rs"] + excluded["n_mt_only"] == excluded["n"]).all()
    assert table["n"].iloc[1] - table["n"].iloc[2] - excluded["n"].sum() == table["n"].iloc[-1]  # every box adds up
    # the shipped export: 41 incomplete patients, each box named by the variable's label
    shipped = patient_flow(analysis_sample(load_cohort(COHORTS["synthetic"]), DEFAULT_PS_COVARIATES), 18732, 541)
    boxes = shipped.set_index("stage")["n"]
    assert boxes["Excluded: other rescue strategies\n(not MT+RS or MT only; not in the registry file)"] == 197
    assert boxes[boxes.index.str.startswith("Excluded: missing")].sum() == 41 and boxes["Analysed"] == 303
    assert "Excluded: missing ASPECTS" in boxes.index or any("ASPECTS" in s for s in boxes.index)
    # a file without missing covariates keeps the box, with its zero
    complete_file = analysis_sample(load_cohort(COHORTS["synthetic"]), DEFAULT_PS_COVARIATES).data
    complete = patient_flow(analysis_sample(complete_file, DEFAULT_PS_COVARIATES), 18732, 541)
    assert complete["stage"].tolist()[-2:] == ["Excluded: missing propensity-model covariates", "Analysed"]
    assert complete["n"].tolist()[-2:] == [0, 303]


def test_patient_flow_of_a_file_larger_than_the_treated_count_begins_at_the_file():
    # 344 patients, but only 300 treated before the export (a larger registry than the paper's with the
    # default 541): no negative exclusion, the flow begins at the file and its caption says why
    smp = analysis_sample(load_cohort(COHORTS["synthetic"]), DEFAULT_PS_COVARIATES)
    flow = patient_flow(smp, 18732, 300)
    assert flow["stage"].iloc[0] == "Patients of the registry file" and flow["n"].iloc[0] == 344
    assert not flow["stage"].str.contains("screened|other rescue").any() and (flow["n"] >= 0).all()
    assert flow["n"].iloc[0] - flow.loc[flow["stage"].str.startswith("Excluded"), "n"].sum() == flow["n"].iloc[-1]
    assert flow.attrs["caption_note"] == ("the flow begins at the registry file: parameter patients_icas_lvo_evt "
                                          "(300) is fewer than its 344 patients, so the counts before the export "
                                          "are not shown")
    assert "caption_note" not in patient_flow(smp, 18732, 344).attrs  # as many treated as in the file: all boxes


def test_the_flow_figure_caption_says_where_the_flow_begins_as_the_table_does():
    from analysis_lib.params import Parameters
    from analysis_lib.study import load_study

    study = load_study(Parameters(data_path=str(COHORTS["synthetic"]), patients_icas_lvo_evt=300))
    note = "the flow begins at the registry file: parameter patients_icas_lvo_evt (300) is fewer than its 344"
    assert note in study.patient_flow().caption and note in study.patient_flow_figure().caption
    default = load_study(Parameters(data_path=str(COHORTS["synthetic"])))
    assert "begins at the registry file" not in default.patient_flow_figure().caption
