"""The simulation study: known truth, reproducible by seed, identical on 1 or 2 local workers and
on a Dask LocalCluster, and summaries with their Monte-Carlo standard errors."""

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from analysis_lib.simulation import SCENARIOS, SimulationSettings, run_simulation, simulate_one, summarize

TABLE1 = pd.read_csv(ROOT / "data" / "published" / "table1_published.csv")
SETTINGS = SimulationSettings(table1_published=TABLE1, null_replicates=19)


def test_truth_is_known():
    null = simulate_one(SETTINGS, "no effect modification", 0, seed=3)
    for method in ("overall", "within"):  # a sharp null: Y(1) = Y(0)
        assert null[f"truth_low_{method}"] == 0.0 and null[f"truth_high_{method}"] == 0.0
    step = simulate_one(SETTINGS, "step at 75%", 0, seed=3)
    assert step["truth_low_overall"] > 0 > step["truth_high_overall"]
    assert step["truth_low_within"] > 0 > step["truth_high_within"]
    assert 0 < step["adjusted_p"] <= 1 and step["selected_cutoff"] in SETTINGS.cutoffs


def test_the_within_estimate_is_the_library_s_with_its_own_target():
    """A replicate's within-subgroup estimate is Table 2's estimate under weights from one model per
    subgroup, on the same cohort; its target uses that model's overlap tilting e (1 - e)."""
    from analysis_lib.data import derive_outcomes
    from analysis_lib.effects import estimate_effect
    from analysis_lib.simulation import SCENARIOS, replicate_seed
    from analysis_lib.subgroups import within_weights
    from analysis_lib.synthetic import generate_cohort

    row = simulate_one(SETTINGS, "confounding differs by subgroup", 4, seed=3)
    truth = SCENARIOS["confounding differs by subgroup"]
    cohort = generate_cohort(SETTINGS.targets, seed=replicate_seed(3, 3, 4), effect=truth.effect,
                             mrs_calibration="common", mediators_in_outcome=False,
                             subgroup_confounding=truth.subgroup_confounding)
    df = derive_outcomes(cohort.data)
    high = df["stenosis_pct"].to_numpy() > 75
    within = within_weights(df, 75.0, SETTINGS.ps_covariates)
    effect = estimate_effect(df, "mrs_90d", within.weights, high=high, cutoff=75.0).set_index("subgroup")
    assert row["estimate_low_within"] == pytest.approx(effect.loc["low", "estimate"], rel=1e-12)
    assert row["estimate_high_within"] == pytest.approx(effect.loc["high", "estimate"], rel=1e-12)


def test_confounding_that_differs_by_subgroup_keeps_table_1():
    """The scenario's NIHSS-stenosis link differs by arm, but each arm's NIHSS distribution is the same."""
    from analysis_lib.synthetic import TrueEffect, generate_cohort

    plain = generate_cohort(TABLE1, seed=9, effect=TrueEffect("none")).data
    linked = generate_cohort(TABLE1, seed=9, effect=TrueEffect("none"), subgroup_confounding=0.6).data
    for arm in (0, 1):
        a = np.sort(plain.loc[plain["rescue_stenting"] == arm, "nihss"].to_numpy())
        b = np.sort(linked.loc[linked["rescue_stenting"] == arm, "nihss"].to_numpy())
        assert np.array_equal(a, b)
    corr = {arm: np.corrcoef(*linked.loc[linked["rescue_stenting"] == arm, ["nihss", "stenosis_pct"]].to_numpy().T)[0, 1]
            for arm in (0, 1)}
    assert corr[1] > 0.25 and corr[0] < -0.25


def test_identical_serial_parallel_and_on_a_dask_cluster():
    distributed = pytest.importorskip("distributed")
    serial = run_simulation(SETTINGS, 3, seed=11, workers=1, batch=2)
    parallel = run_simulation(SETTINGS, 3, seed=11, workers=2, batch=2)
    pd.testing.assert_frame_equal(serial.replicates, parallel.replicates)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        on_dask = run_simulation(SETTINGS, 3, seed=11, scheduler=cluster.scheduler_address, batch=2)
    pd.testing.assert_frame_equal(serial.replicates, on_dask.replicates)
    other = run_simulation(SETTINGS, 3, seed=12, workers=1)
    assert not other.replicates["estimate_low_overall"].equals(serial.replicates["estimate_low_overall"])
    assert list(serial.replicates["scenario"].unique()) == list(SCENARIOS)


def test_summary_and_monte_carlo_errors():
    table = pd.DataFrame({
        "scenario": ["step at 75%"] * 4, "replicate": range(4),
        "estimate_low_overall": [1.0, 2.0, 3.0, 4.0], "truth_low_overall": [1.0] * 4,
        "covered_low_overall": [1.0, 1.0, 0.0, 1.0], "covered_m_low_overall": [1.0, 0.0, 0.0, 1.0],
        "estimate_high_overall": [0.0] * 4, "truth_high_overall": [0.0] * 4, "covered_high_overall": [1.0] * 4,
        "covered_m_high_overall": [1.0] * 4,
        "estimate_low_within": [1.0, 1.0, np.nan, 1.0], "truth_low_within": [1.0, 0.5, np.nan, 1.0],
        "covered_low_within": [1.0, 1.0, np.nan, 1.0], "covered_m_low_within": [1.0, 0.0, np.nan, 1.0],
        "estimate_high_within": [0.0] * 4, "truth_high_within": [0.0] * 4, "covered_high_within": [1.0] * 4,
        "covered_m_high_within": [1.0] * 4,
        "selected_cutoff": [75.0, 75.0, 70.0, 75.0], "naive_p": [0.01, 0.2, 0.03, 0.5], "adjusted_p": [0.2, 0.2, 0.04, 0.6],
    })
    summary = summarize(table).set_index("quantity")
    s, se, R = summary["value"], summary["mc_se"], summary["replicates"]
    assert s["bias, MD low (overall model)"] == pytest.approx(1.5)
    assert se["bias, MD low (overall model)"] == pytest.approx(np.std([0, 1, 2, 3], ddof=1) / 2)
    assert s["coverage of the 95% CI, MD low (overall model, HC sandwich)"] == 0.75
    assert se["coverage of the 95% CI, MD low (overall model, HC sandwich)"] == pytest.approx(np.sqrt(0.75 * 0.25 / 4))
    assert s["coverage of the 95% CI, MD low (overall model, M-estimation)"] == 0.5
    # a replicate whose subgroup model could not be fitted counts in neither bias nor coverage
    assert R["bias, MD low (model per subgroup)"] == 3 and s["bias, MD low (model per subgroup)"] == pytest.approx(1 / 6)
    assert s["coverage of the 95% CI, MD low (model per subgroup, M-estimation)"] == pytest.approx(2 / 3)
    assert s["true cutoff (75%) selected"] == 0.75
    assert s["significant effect modification, naive (p-interaction at the selected cutoff < 0.05)"] == 0.5
    assert s["significant effect modification, selection-adjusted (p < 0.05)"] == 0.25


def test_the_stenosis_product_model_balances_the_products_its_slope_needs():
    """Overlap weights from the model with covariate x stenosis terms balance the means of every
    product exactly (its score equations), which the primary model's weights do not."""
    from analysis_lib.balance import smd
    from analysis_lib.data import load_cohort
    from analysis_lib.simulation import stenosis_product_formula
    from analysis_lib.weighting import compute_weights, fit_propensity

    df = load_cohort(ROOT / "data" / "synthetic_cohort.csv").dropna(subset=list(SETTINGS.ps_covariates))
    t = df["rescue_stenting"].to_numpy(float)
    products = {c: df[c].to_numpy(float) * df["stenosis_pct"].to_numpy(float) for c in ("age", "nihss", "aspects")}
    for formula, balanced in ((None, False), (stenosis_product_formula(SETTINGS.ps_covariates), True)):
        e = fit_propensity(df, SETTINGS.ps_covariates, formula=formula).propensity
        w = compute_weights(e, t, "ATO")
        largest = max(abs(smd(x, t, w)) for x in products.values())
        assert (largest < 1e-8) == balanced, (formula, largest)


def test_a_continuous_replicate_is_the_library_s_continuous_model():
    from analysis_lib.cutoffs import continuous_interaction
    from analysis_lib.data import derive_outcomes
    from analysis_lib.simulation import SCENARIOS, continuous_one, replicate_seed
    from analysis_lib.synthetic import generate_cohort
    from analysis_lib.weighting import compute_weights, fit_propensity

    row = continuous_one(SETTINGS, "linear, crossing at 70%", 1, seed=3)
    cohort = generate_cohort(SETTINGS.targets, seed=replicate_seed(3, 2, 1), effect=SCENARIOS["linear, crossing at 70%"].effect,
                             mrs_calibration="common", mediators_in_outcome=False)
    df = derive_outcomes(cohort.data)
    e = fit_propensity(df, SETTINGS.ps_covariates).propensity
    fit = continuous_interaction(df, compute_weights(e, df["rescue_stenting"].to_numpy(), "ATO")).summary.iloc[0]
    assert row["slope_primary"] == pytest.approx(fit["interaction_beta"], rel=1e-12)
    assert row["truth_primary"] < 0  # the effect falls with stenosis in this scenario
