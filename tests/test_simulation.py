"""The simulation study: known truth, reproducible by seed, identical on 1 or 2 local workers and
on a Dask LocalCluster, and summaries with their Monte-Carlo standard errors."""

import numpy as np
import pandas as pd
import pytest

from analysis_lib.simulation import SCENARIOS, SimulationSettings, run_simulation, simulate_one, summarize

from conftest import ROOT

TABLE1 = pd.read_csv(ROOT / "data" / "published" / "table1_published.csv")
SETTINGS = SimulationSettings(table1_published=TABLE1, null_replicates=19)


def test_truth_is_known():
    null = simulate_one(SETTINGS, "no effect modification", 0, seed=3)
    assert null["truth_low"] == 0.0 and null["truth_high"] == 0.0  # a sharp null: Y(1) = Y(0)
    step = simulate_one(SETTINGS, "step at 75%", 0, seed=3)
    assert step["truth_low"] > 0 > step["truth_high"]
    assert 0 < step["adjusted_p"] <= 1 and step["selected_cutoff"] in SETTINGS.cutoffs


def test_identical_serial_parallel_and_on_a_dask_cluster():
    distributed = pytest.importorskip("distributed")
    serial = run_simulation(SETTINGS, 3, seed=11, workers=1, batch=2)
    parallel = run_simulation(SETTINGS, 3, seed=11, workers=2, batch=2)
    pd.testing.assert_frame_equal(serial.replicates, parallel.replicates)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        on_dask = run_simulation(SETTINGS, 3, seed=11, scheduler=cluster.scheduler_address, batch=2)
    pd.testing.assert_frame_equal(serial.replicates, on_dask.replicates)
    other = run_simulation(SETTINGS, 3, seed=12, workers=1)
    assert not other.replicates["estimate_low"].equals(serial.replicates["estimate_low"])
    assert list(serial.replicates["scenario"].unique()) == list(SCENARIOS)


def test_summary_and_monte_carlo_errors():
    table = pd.DataFrame({
        "scenario": ["step at 75%"] * 4, "replicate": range(4),
        "estimate_low": [1.0, 2.0, 3.0, 4.0], "truth_low": [1.0, 1.0, 1.0, 1.0], "covered_low": [True, True, False, True],
        "estimate_high": [0.0] * 4, "truth_high": [0.0] * 4, "covered_high": [True] * 4,
        "selected_cutoff": [75.0, 75.0, 70.0, 75.0], "naive_p": [0.01, 0.2, 0.03, 0.5], "adjusted_p": [0.2, 0.2, 0.04, 0.6],
    })
    s = summarize(table).set_index("quantity")["value"]
    se = summarize(table).set_index("quantity")["mc_se"]
    assert s["bias, ATE low"] == pytest.approx(1.5) and se["bias, ATE low"] == pytest.approx(np.std([0, 1, 2, 3], ddof=1) / 2)
    assert s["coverage of the 95% CI, ATE low"] == 0.75 and se["coverage of the 95% CI, ATE low"] == pytest.approx(np.sqrt(0.75 * 0.25 / 4))
    assert s["true cutoff (75%) selected"] == 0.75
    assert s["significant effect modification, naive (p-interaction at the selected cutoff < 0.05)"] == 0.5
    assert s["significant effect modification, selection-adjusted (p < 0.05)"] == 0.25
