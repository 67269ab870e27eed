"""The synthetic cohort: calibrated to the published Table 1, reproducible, with a known truth."""

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from analysis_lib.data import analysis_sample, derive_outcomes, load_cohort
from analysis_lib.descriptives import table1
from analysis_lib.params import DEFAULT_PS_COVARIATES, Parameters
from analysis_lib.study import load_study
from analysis_lib.synthetic import (
    MISSING_SHARES,
    PAPER_EFFECT,
    PAPER_INCOMPLETE,
    TrueEffect,
    generate_cohort,
    paper_cohort,
    registry_like_cohort,
    write_cohort,
)

PUBLISHED = pd.read_csv(ROOT / "data" / "published" / "table1_published.csv")


@pytest.fixture(scope="module")
def export():
    """The registry export as shipped: analysed and incomplete patients."""
    return load_cohort(ROOT / "data" / "synthetic_cohort.csv")


@pytest.fixture(scope="module")
def shipped(export):
    """The complete cases: the patients the paper analysed."""
    return analysis_sample(export, DEFAULT_PS_COVARIATES).data


def test_size_arms_centers(export, shipped):
    assert len(shipped) == 303
    assert (shipped["rescue_stenting"] == 1).sum() == 172
    assert (shipped["rescue_stenting"] == 0).sum() == 131
    assert shipped["center"].nunique() == 25
    # the export also holds 41 patients with a missing propensity covariate (541 -> 303 in the paper)
    incomplete = export[~export["patient_id"].isin(shipped["patient_id"])]
    assert len(export) == 344 and len(incomplete) == sum(PAPER_INCOMPLETE.values()) == 41
    assert (incomplete["rescue_stenting"] == 1).sum() == PAPER_INCOMPLETE[1] == 23
    assert incomplete[list(DEFAULT_PS_COVARIATES)].isna().any(axis=1).all()
    assert incomplete["aspects"].isna().sum() > incomplete["age"].isna().sum()  # the items registries leave empty
    assert set(incomplete["center"]) <= set(shipped["center"])  # the same centers
    assert incomplete["mrs_90d"].notna().all()  # outcomes known: multiple imputation uses them


def test_matches_published_table1(shipped):
    """Every proportion within 2 percentage points of the printed one, every median within 5 %
    (at least 1 unit) and quartiles within 5 % (at least 1 unit), in both arms."""
    ours = table1(shipped).set_index("variable")
    failures = []
    for _, pub in PUBLISHED.iterrows():
        var = pub["variable"]
        for arm in ("mt_only", "mt_rs"):
            if pub["summary"] == "count":
                if pd.isna(pub[f"{arm}_pct"]):
                    continue
                diff = ours.loc[var, f"{arm}_pct"] - pub[f"{arm}_pct"]
                if abs(diff) > 2:
                    failures.append(f"{var} {arm}: {ours.loc[var, f'{arm}_pct']:.1f} vs {pub[f'{arm}_pct']}")
            else:
                for stat in ("median", "q1", "q3"):
                    got, want = ours.loc[var, f"{arm}_{stat}"], pub[f"{arm}_{stat}"]
                    if abs(got - want) > max(1.0, 0.05 * abs(want)):
                        failures.append(f"{var} {arm} {stat}: {got} vs {want}")
    assert not failures, failures


def test_committed_file_is_the_generator_output(tmp_path):
    cohort = paper_cohort(PUBLISHED)
    path = tmp_path / "regenerated.csv"
    write_cohort(cohort.data, path)
    assert path.read_bytes() == (ROOT / "data" / "synthetic_cohort.csv").read_bytes()


def test_seed_determines_the_cohort():
    a = generate_cohort(PUBLISHED, seed=5).data
    b = generate_cohort(PUBLISHED, seed=5).data
    c = generate_cohort(PUBLISHED, seed=6).data
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_the_default_build_reproduces_the_paper_s_headline_results():
    """The calibration targets, as ranges from the published numbers: the sweep selects 75 %; the
    IPTW subgroup effects on the mRS fall inside the published 95% CIs (1.08, 0.32 to 1.83;
    -0.98, -1.73 to -0.22) and their difference within 0.5 of -2.06; the continuous interaction
    inside its published CI (-0.047 to -0.009) with the crossing point between 65 and 76 %."""
    study = load_study(Parameters(data_path=str(ROOT / "data" / "synthetic_cohort.csv")))
    sweep = study.sweep().table
    assert sweep.loc[sweep["selected"], "cutoff"].tolist() == [75.0]
    assert study.cutoff == 75.0
    t2 = study.table2().table.query("outcome == 'mrs_90d' and analysis == 'iptw'").set_index("subgroup")
    assert 0.32 <= t2.loc["low", "estimate"] <= 1.83
    assert -1.73 <= t2.loc["high", "estimate"] <= -0.22
    assert abs(t2.loc["high", "estimate"] - t2.loc["low", "estimate"] - (-2.06)) <= 0.5
    fit = study.continuous_interaction().value.summary.iloc[0]
    assert -0.047 <= fit["interaction_beta"] <= -0.009
    assert 65 <= fit["crossing_point"] <= 76
    # the incomplete patients do real work: excluded by the complete-case analysis, imputed by MI
    assert study.sample.n_input - study.sample.n == 41
    mi = study.multiple_imputation().table
    assert (mi.loc[mi["outcome"] == "mrs_90d", "fraction_missing_info"] > 0).all()


def test_the_paper_truth_is_a_step_at_75():
    cohort = paper_cohort(PUBLISHED)
    p = cohort.potential
    assert set(np.round(p["tau"], 12)) == {0.8, -0.8} and PAPER_EFFECT.kind == "step"
    assert (p.loc[p["stenosis_pct"] <= 75, "tau"] > 0).all() and (p.loc[p["stenosis_pct"] > 75, "tau"] < 0).all()
    truth = cohort.true_effects(75).set_index("subgroup")["true_ate_mrs"]
    assert truth["low"] > 0.3 and truth["high"] < -0.3


def test_treatment_relations_are_those_of_table1(shipped):
    rs = shipped["rescue_stenting"] == 1
    assert shipped.loc[rs, "stenosis_pct"].median() > shipped.loc[~rs, "stenosis_pct"].median()
    assert shipped.loc[rs, "mtici_2b3_after_mt"].mean() < shipped.loc[~rs, "mtici_2b3_after_mt"].mean()
    # final recanalization after MT only is the post-MT result
    mt = shipped[~rs]
    assert (mt["final_mtici_2b3"] == mt["mtici_2b3_after_mt"]).all()


def test_true_effect_changes_sign_with_stenosis():
    cohort = generate_cohort(PUBLISHED)
    truth = cohort.true_effects(75).set_index("subgroup")["true_ate_mrs"]
    assert truth["low"] > 0.5 and truth["high"] < -0.5
    p = cohort.potential
    assert np.all(np.diff(p.groupby(pd.cut(p["stenosis_pct"], [0, 50, 70, 90, 100]), observed=True)["tau"].mean()) < 0)


def test_sharp_null_with_common_cutpoints():
    cohort = generate_cohort(PUBLISHED, seed=3, effect=TrueEffect("none"), mrs_calibration="common")
    assert (cohort.potential["mrs_0"] == cohort.potential["mrs_1"]).all()


def test_step_effect():
    eff = TrueEffect("step", crossing=75, step=1.0)
    assert eff.tau(np.array([60.0, 75.0, 75.5])).tolist() == [1.0, 1.0, -1.0]
    with pytest.raises(ValueError):
        TrueEffect("wiggly").tau(np.array([1.0]))


def test_other_sizes_rescale_counts():
    df = derive_outcomes(generate_cohort(PUBLISHED, seed=1, n_mt_rs=60, n_mt_only=40, n_centers=8).data)
    assert len(df) == 100 and df["center"].nunique() == 8
    t1 = table1(df).set_index("variable")
    assert abs(t1.loc["atrial_fibrillation", "mt_only_pct"] - 38.2) < 2.5


def test_a_registry_like_cohort_misses_covariates_in_the_shipped_share():
    table1_published = pd.read_csv(ROOT / "data/published/table1_published.csv")
    data = registry_like_cohort(table1_published, 6000, n_centers=40, seed=2)
    assert len(data) == 6000 and data["center"].nunique() == 40
    assert (data["rescue_stenting"] == 1).sum() == round(6000 * 172 / 303)
    incomplete = data[list(MISSING_SHARES)].isna().any(axis=1)
    share = incomplete.mean()  # 41 of 344 in the shipped cohort: binomial SE 0.004 at n = 6000
    assert abs(share - 41 / 344) < 4 * np.sqrt(41 / 344 * (1 - 41 / 344) / 6000)
    assert data.loc[incomplete, "aspects"].isna().mean() > 0.5  # ASPECTS: half, and whenever nothing else is
    sample = analysis_sample(data, DEFAULT_PS_COVARIATES)
    assert sample.n == (~incomplete).sum()  # the others stay complete
