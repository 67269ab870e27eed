"""Shared fixtures: the reference cohorts, their R results, and numeric comparison helpers."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis_lib.data import analysis_sample, load_cohort
from analysis_lib.params import DEFAULT_PS_COVARIATES
from analysis_lib.weighting import compute_weights, fit_propensity

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "reference"
COHORTS = {
    "synthetic": ROOT / "data" / "synthetic_cohort.csv",
    "missing": REFERENCE / "cohorts" / "missing.csv",
    "small": REFERENCE / "cohorts" / "small.csv",
    "centers40": REFERENCE / "cohorts" / "centers40.csv",
}
RTOL = 1e-6


def expected(cohort: str, name: str) -> pd.DataFrame:
    """A reference table written by tests/reference/make_reference.R."""
    return pd.read_csv(REFERENCE / "expected" / cohort / f"{name}.csv")


@lru_cache(maxsize=None)
def sample(cohort: str) -> pd.DataFrame:
    """The analysis sample of a reference cohort (complete cases on the default covariates)."""
    return analysis_sample(load_cohort(COHORTS[cohort]), DEFAULT_PS_COVARIATES).data


@lru_cache(maxsize=None)
def weights(cohort: str, estimand: str = "ATO") -> np.ndarray:
    s = sample(cohort)
    model = fit_propensity(s, DEFAULT_PS_COVARIATES)
    return compute_weights(model.propensity, s["rescue_stenting"].to_numpy(), estimand)


def assert_close(actual, reference, rtol: float = RTOL, atol: float = 1e-10, what: str = "") -> None:
    """Element-wise ``|a - r| <= atol + rtol |r|``, with missing values required in the same places."""
    a = np.asarray(actual, dtype=float)
    r = np.asarray(reference, dtype=float)
    assert a.shape == r.shape, f"{what}: shapes {a.shape} and {r.shape}"
    nan_a, nan_r = np.isnan(a), np.isnan(r)
    assert np.array_equal(nan_a, nan_r), f"{what}: missing at {np.flatnonzero(nan_a != nan_r)}"
    ok = ~nan_a
    both_inf = np.isinf(a) & np.isinf(r) & (np.sign(a) == np.sign(r))
    close = np.abs(a - r) <= atol + rtol * np.abs(r)
    bad = ok & ~(close | both_inf)
    assert not bad.any(), (
        f"{what}: {bad.sum()} values differ, e.g. index {np.flatnonzero(bad)[:5]}: "
        f"{a[bad][:5]} vs reference {r[bad][:5]}"
    )


@pytest.fixture(params=list(COHORTS))
def cohort(request) -> str:
    return request.param


@pytest.fixture
def previous(tmp_path):
    """An earlier, good output folder (with the marker of a build) that a refused or failing build
    must leave exactly as it was."""
    out = tmp_path / "outputs"
    (out / "tables").mkdir(parents=True)
    (out / "tables" / "table2.csv").write_text("an earlier, good result\n")
    (out / "supplement.html").write_text("<html>earlier</html>\n")
    (out / "provenance.json").write_text("{}\n")  # the marker of an earlier build
    return out


@pytest.fixture(scope="session", autouse=True)
def notebook_store(tmp_path_factory):
    """The store of the notebooks that read no data (analysis_lib.cache), one per test session:
    builds in tests (and the processes they start) never use the checkout's .cache/."""
    from analysis_lib.cache import STORE_ENV

    store = tmp_path_factory.mktemp("store")
    previous = os.environ.get(STORE_ENV)
    os.environ[STORE_ENV] = str(store)
    yield store
    if previous is None:
        os.environ.pop(STORE_ENV, None)
    else:
        os.environ[STORE_ENV] = previous


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """One full build on the synthetic cohort, shared by the build and supplement tests."""
    from analysis_lib.build import run_build

    out = tmp_path_factory.mktemp("build") / "outputs"
    return run_build(COHORTS["synthetic"], out, log=lambda m: None)
