"""Table 2 models against R (lm/glm + sandwich::vcovHC + lmtest), the closed form against the
statsmodels path, and the traps of ANALYSIS.md §4."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from conftest import assert_close, expected, sample, weights

from analysis_lib.data import OUTCOMES
from analysis_lib.effects import TABLE2_COLUMNS, estimate_effect, fit_cells, fit_weighted, table2
from analysis_lib.params import DEFAULT_PS_COVARIATES
from analysis_lib.weighting import compute_weights, fit_propensity

VALUE_COLUMNS = ["estimate", "ci_lower", "ci_upper", "p_value", "p_interaction", "n"]
CONFIGS = [("ATO", "HC0", 75), ("ATO", "HC1", 75), ("ATO", "HC2", 75), ("ATO", "HC3", 75),
           ("ATE", "HC0", 75), ("ATT", "HC0", 75), ("ATM", "HC0", 75), ("ATO", "HC0", 70)]


@pytest.mark.parametrize("estimand,hc,cutoff", CONFIGS)
def test_table2_matches_r(cohort, estimand, hc, cutoff):
    ours = table2(sample(cohort), weights(cohort, estimand), cutoff, hc, outcomes=OUTCOMES)  # R's seven
    ref = expected(cohort, f"table2_{estimand}_{hc}_{cutoff:g}")
    assert list(ours.columns) == TABLE2_COLUMNS
    key = ["outcome", "analysis", "subgroup", "measure"]
    assert ours[key].values.tolist() == ref[key].values.tolist()
    for col in VALUE_COLUMNS:
        assert_close(ours[col], ref[col], what=f"{cohort} {estimand} {hc} {col}")
    # every missing estimate says why
    missing = ours["estimate"].isna()
    assert (ours.loc[missing, "note"].str.len() > 0).all()


def test_zero_event_subgroup_gets_a_note_not_a_number():
    t2 = table2(sample("missing"), weights("missing"), 75)
    row = t2[(t2.outcome == "sich") & (t2.analysis == "iptw") & (t2.subgroup == "high")].iloc[0]
    assert np.isnan(row["estimate"]) and np.isnan(row["p_interaction"])
    assert row["note"] == "RR not estimable: no events in the MT-only arm with stenosis > 75 %"
    low = t2[(t2.outcome == "sich") & (t2.analysis == "iptw") & (t2.subgroup == "low")].iloc[0]
    assert np.isfinite(low["estimate"]) and "p-interaction not estimable" in low["note"]


def test_zero_event_arm_overall():
    t2 = table2(sample("small"), weights("small"), 75)
    rows = t2[(t2.outcome == "reocclusion")]
    assert rows["estimate"].isna().all()
    assert (rows["note"].str.contains("no events in the MT-only arm")).all()


@pytest.mark.parametrize("hc", ["HC0", "HC1", "HC2", "HC3"])
@pytest.mark.parametrize("outcome,family", [("mrs_90d", "gaussian"), ("sich", "poisson"), ("mrs_0_2", "poisson")])
def test_closed_form_equals_statsmodels_path(hc, outcome, family):
    s = sample("synthetic")
    w = weights("synthetic")
    t = s["rescue_stenting"].to_numpy()
    h = (s["stenosis_pct"].to_numpy() > 75).astype(int)
    X = pd.DataFrame({"(Intercept)": 1.0, "t": t, "high": h, "t:high": t * h})
    general = fit_weighted(X, s[outcome].to_numpy(float), w, family, hc)
    cells = fit_cells(s[outcome].to_numpy(float), w, t + 2 * h, 4, family, hc)
    for L, plus, minus in (([0, 1, 0, 0], [1], [0]), ([0, 1, 0, 1], [3], [2]), ([0, 0, 0, 1], [3, 0], [2, 1])):
        b, se = general.combination(L)
        b2, se2 = cells.contrast(plus, minus)
        assert b2 == pytest.approx(b, rel=1e-10, abs=1e-12)
        assert se2 == pytest.approx(se, rel=1e-10)


def test_statsmodels_agrees_with_our_sandwich_where_it_follows_sandwich():
    """statsmodels' WLS HC0-HC3 and GLM(var_weights) HC0 follow the sandwich package; ours must too."""
    s = sample("synthetic")
    w = weights("synthetic")
    X = sm.add_constant(s["rescue_stenting"].to_numpy(float))
    for hc in ("HC0", "HC1", "HC2", "HC3"):
        ref = sm.WLS(s["mrs_90d"], X, weights=w).fit(cov_type=hc).bse
        ours = np.sqrt(np.diag(fit_weighted(pd.DataFrame(X), s["mrs_90d"], w, "gaussian", hc).vcov))
        assert_close(ours, ref, rtol=1e-10)
    ref = sm.GLM(s["sich"], X, family=sm.families.Poisson(), var_weights=w).fit(cov_type="HC0").bse
    ours = np.sqrt(np.diag(fit_weighted(pd.DataFrame(X), s["sich"], w, "poisson", "HC0").vcov))
    assert_close(ours, ref, rtol=1e-8)


def test_weights_are_variance_weights_not_frequency_weights():
    """Frequency weights would treat the overlap weights as counts of patients and shrink the
    robust variance; R's glm(weights=) and sandwich treat them as prior (variance) weights."""
    s = sample("synthetic")
    w = weights("synthetic")
    ours = estimate_effect(s, "sich", w).iloc[0]
    X = sm.add_constant(s["rescue_stenting"].to_numpy(float))
    freq = sm.GLM(s["sich"], X, family=sm.families.Poisson(), freq_weights=w).fit(cov_type="HC0")
    ref = expected("synthetic", "table2_ATO_HC0_75")
    r = ref[(ref.outcome == "sich") & (ref.analysis == "iptw") & (ref.subgroup == "overall")].iloc[0]
    assert ours["ci_upper"] == pytest.approx(r["ci_upper"], rel=1e-6)
    freq_upper = np.exp(np.asarray(freq.params)[1] + 1.959963984540054 * np.asarray(freq.bse)[1])
    assert abs(freq_upper - r["ci_upper"]) / r["ci_upper"] > 0.05


def test_outcome_models_keep_full_sample_weights():
    """Re-occlusion is missing for many patients; the model uses the weights estimated on the
    whole analysis sample, not a propensity model refitted on the patients with the outcome."""
    s = sample("missing")
    w = weights("missing")
    ours = estimate_effect(s, "reocclusion", w).iloc[0]
    ref = expected("missing", "table2_ATO_HC0_75")
    r = ref[(ref.outcome == "reocclusion") & (ref.analysis == "iptw") & (ref.subgroup == "overall")].iloc[0]
    assert ours["estimate"] == pytest.approx(r["estimate"], rel=1e-6)
    known = s[s["reocclusion"].notna()].reset_index(drop=True)
    refit = fit_propensity(known, DEFAULT_PS_COVARIATES)
    w_refit = compute_weights(refit.propensity, known["rescue_stenting"].to_numpy())
    wrong = estimate_effect(known, "reocclusion", w_refit).iloc[0]
    assert abs(wrong["estimate"] - r["estimate"]) / r["estimate"] > 1e-3
    assert ours["n"] == len(known)


def test_cutoff_is_strictly_greater():
    s = sample("missing")
    on_cut = (s["stenosis_pct"] == 75).sum()
    assert on_cut > 0
    t2 = table2(s, weights("missing"), 75)
    mrs = t2[(t2.outcome == "mrs_90d") & (t2.analysis == "iptw")].set_index("subgroup")
    known = s["mrs_90d"].notna()
    assert mrs.loc["low", "n"] == int((known & (s["stenosis_pct"] <= 75)).sum())
    assert mrs.loc["high", "n"] == int((known & (s["stenosis_pct"] > 75)).sum())


def test_unadjusted_is_unit_weights():
    s = sample("synthetic")
    a = estimate_effect(s, "mrs_0_3", None)
    b = estimate_effect(s, "mrs_0_3", np.full(len(s), 3.7))
    assert_close(a[["estimate", "ci_lower", "ci_upper", "p_value"]].to_numpy(),
                 b[["estimate", "ci_lower", "ci_upper", "p_value"]].to_numpy(), rtol=1e-12)
    # and the unadjusted overall RR is the crude ratio of risks
    t = s["rescue_stenting"] == 1
    crude = s.loc[t, "mrs_0_3"].mean() / s.loc[~t, "mrs_0_3"].mean()
    assert a.iloc[0]["estimate"] == pytest.approx(crude, rel=1e-12)


def test_table2_adds_the_utility_weighted_mrs_as_the_mrs():
    """The utility-weighted mRS (0: 1.0, 1: 0.91, 2: 0.76, 3: 0.65, 4: 0.33, 5-6: 0) is Table 2's last
    outcome, a weighted difference in means: closed form, the weighted mean utility of each arm."""
    s, w = sample("missing"), weights("missing")
    rows = table2(s, w, 75)
    assert rows["outcome"].drop_duplicates().tolist() == [*OUTCOMES, "utility_mrs"]
    utility = s["mrs_90d"].map({0: 1.0, 1: 0.91, 2: 0.76, 3: 0.65, 4: 0.33, 5: 0.0, 6: 0.0})
    known = utility.notna().to_numpy()
    t = s["rescue_stenting"].to_numpy()
    arm = [np.average(utility[known & (t == a)], weights=w[known & (t == a)]) for a in (1, 0)]
    row = rows[(rows.outcome == "utility_mrs") & (rows.analysis == "iptw") & (rows.subgroup == "overall")].iloc[0]
    assert row["measure"] == "ATE" and row["estimate"] == pytest.approx(arm[0] - arm[1], rel=1e-12)
    assert row["n"] == known.sum()
