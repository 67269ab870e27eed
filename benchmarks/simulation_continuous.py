"""Does the continuous model y ~ t * stenosis need covariate x stenosis terms in the propensity
model? A simulation of the interaction's bias and coverage with the primary propensity model and
with the model that adds every covariate's product with the stenosis degree (printed, never
asserted; the numbers are in the README).

    .venv/bin/python benchmarks/simulation_continuous.py [replicates per scenario]
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from analysis_lib.simulation import SCENARIOS, SimulationSettings, continuous_one, summarize_continuous

ROOT = Path(__file__).resolve().parents[1]
SEED = 20260213


def _batch(settings, tasks):
    targets = settings.targets
    return [continuous_one(settings, scenario, r, SEED, targets) for scenario, r in tasks]


def main(replicates: int = 500) -> None:
    settings = SimulationSettings(table1_published=pd.read_csv(ROOT / "data/published/table1_published.csv"))
    tasks = [(s, r) for s in SCENARIOS for r in range(replicates)]
    batches = [tasks[i:i + 25] for i in range(0, len(tasks), 25)]
    start = time.perf_counter()
    with ProcessPoolExecutor() as pool:
        rows = [row for part in pool.map(_batch, [settings] * len(batches), batches) for row in part]
    summary = summarize_continuous(pd.DataFrame(rows))
    print(f"{replicates} cohorts per scenario, {time.perf_counter() - start:.0f} s")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
