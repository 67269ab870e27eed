"""Center sensitivity (weighted REML mixed model, random-intercept Poisson model), center-clustered
variance and E-values, against lme4, sandwich::vcovCL and the closed forms of VanderWeele & Ding."""

import numpy as np
import pandas as pd
import pytest
from conftest import assert_close, expected, sample, weights

from analysis_lib.effects import table2
from analysis_lib.sensitivity import (
    CENTER_COLUMNS,
    CLUSTER_COLUMNS,
    EVALUE_COLUMNS,
    center_sensitivity,
    cluster_robust,
    evalue,
    evalue_ci,
    evalues,
    fit_lmm,
    fit_poisson_glmm,
    mrs_sd,
)

SENSITIVITY_COHORTS = ["synthetic", "missing", "centers40"]


@pytest.fixture(scope="module", params=SENSITIVITY_COHORTS)
def cohort_result(request):
    cohort = request.param
    return cohort, center_sensitivity(sample(cohort), weights(cohort), 75)


def test_linear_mixed_model_matches_lmer(cohort_result):
    cohort, result = cohort_result
    ref = expected(cohort, "center_lmm_ATO_75")
    ours = result.table[result.table["outcome"] == "mrs_90d"].set_index("subgroup")
    for _, r in ref.iterrows():
        row = ours.loc[r["subgroup"]]
        # acceptance: fixed effects and SEs to 1e-4 relative; lme4 stops its optimiser near 1e-8
        for col in ("estimate", "ci_lower", "ci_upper", "p_value"):
            assert row[col] == pytest.approx(r[col], rel=1e-4, abs=1e-8), (cohort, r["subgroup"], col)
    models = result.models[result.models["outcome"] == "mrs_90d"].set_index("model")
    for model, r in ref.groupby("model").first().iterrows():
        assert models.loc[model, "center_variance"] == pytest.approx(r["center_variance"], rel=1e-3, abs=1e-8)
        assert models.loc[model, "residual_variance"] == pytest.approx(r["residual_variance"], rel=1e-3)


def test_reml_criterion_and_standard_errors_match_lmer():
    s, w = sample("centers40"), weights("centers40")
    known = s["mrs_90d"].notna().to_numpy()
    t = s["rescue_stenting"].to_numpy(float)[known]
    X = pd.DataFrame({"(Intercept)": 1.0, "trt": t})
    fit = fit_lmm(X, s["mrs_90d"].to_numpy(float)[known], w[known], s["center"].to_numpy()[known])
    ref = expected("centers40", "center_lmm_ATO_75").set_index("model").loc["overall"]
    assert fit.criterion == pytest.approx(ref["reml_criterion"], rel=1e-9)
    assert fit.coef[1] == pytest.approx(ref["b_treat"], rel=1e-6)
    assert np.sqrt(fit.vcov[1, 1]) == pytest.approx(ref["se_treat"], rel=1e-6)


@pytest.mark.parametrize("weighting", ["unweighted", "ATO"])
@pytest.mark.parametrize("cohort", SENSITIVITY_COHORTS)
def test_poisson_mixed_model_matches_glmer(cohort, weighting):
    """Fixed effects and the random-intercept SD to 1e-3 (the acceptance compares unit weights,
    where glmer is a trustworthy reference; with the overlap weights as prior weights it agrees
    too). Standard errors: glmer's default comes from a finite-difference Hessian of a deviance
    that its PIRLS solves to a relative 1e-7 only, so they are compared to 1 %, and only where
    glmer's Hessian-based and RX-based values agree (they do not for a few ill-conditioned fits)."""
    s = sample(cohort)
    w_all = np.ones(len(s)) if weighting == "unweighted" else weights(cohort)
    ref = expected(cohort, f"center_glmm_{weighting}_75")
    for (outcome, model), r in ref.groupby(["outcome", "model"], sort=False):
        known = s[outcome].notna().to_numpy()
        t = s["rescue_stenting"].to_numpy(float)[known]
        h = (s["stenosis_pct"].to_numpy(float)[known] > 75).astype(float)
        X = pd.DataFrame({"(Intercept)": 1.0, "trt": t} if model == "overall" else
                         {"(Intercept)": 1.0, "trt": t, "high": h, "trt:high": t * h})
        fit = fit_poisson_glmm(X, s[outcome].to_numpy(float)[known], w_all[known], s["center"].to_numpy()[known])
        assert_close(fit.coef, r["estimate"], rtol=1e-3, atol=1e-4, what=f"{cohort} {outcome} {model}")
        assert fit.singular == bool(r["singular"].iloc[0] or r["theta"].iloc[0] < 1e-4), (outcome, model)
        if not fit.singular:
            assert np.sqrt(fit.center_variance) == pytest.approx(r["theta"].iloc[0], rel=1e-3, abs=1e-4)
            lme4_consistent = np.allclose(r["std_error"], r["std_error_rx"], rtol=0.05)
            if lme4_consistent:
                assert_close(np.sqrt(np.diag(fit.vcov)), r["std_error"], rtol=1e-2, what="SE")


def test_laplace_and_quadrature_agree_with_brute_force_integration():
    s = sample("synthetic")
    t = s["rescue_stenting"].to_numpy(float)
    X = pd.DataFrame({"(Intercept)": 1.0, "trt": t})
    y = s["death_90d"].to_numpy(float)
    laplace = fit_poisson_glmm(X, y, np.ones(len(s)), s["center"].to_numpy(), nagq=1)
    agq = fit_poisson_glmm(X, y, np.ones(len(s)), s["center"].to_numpy(), nagq=15)
    assert agq.method == "AGQ(15)" and laplace.method == "Laplace"
    assert_close(agq.coef, laplace.coef, rtol=0.05, what="AGQ vs Laplace")


def test_center_table_contract_and_notes(cohort_result):
    cohort, result = cohort_result
    table = result.table
    assert list(table.columns) == CENTER_COLUMNS
    assert len(table) == 7 * 3
    missing = table["estimate"].isna()
    assert (table.loc[missing, "note"].str.len() > 0).all()
    poisson = result.models[result.models["family"] == "poisson"]
    singular = poisson[poisson["singular"] == True]  # noqa: E712
    for _, m in singular.iterrows():  # lme4's boundary estimate, printed with a note (the paper prints one)
        rows = table[(table.outcome == m["outcome"]) &
                     (table.subgroup.isin(["overall"] if m["model"] == "overall" else ["low", "high"]))]
        assert rows["estimate"].notna().all() and rows["note"].str.startswith("singular fit").all()
    assert poisson["residual_variance"].isna().all()  # a Poisson model has none


@pytest.mark.parametrize("cohort", ["synthetic", "missing", "centers40"])
def test_singular_poisson_fits_equal_lme4_at_the_boundary(cohort):
    """Where glmer's center variance is 0, its fixed effects and vcov are those of the weighted
    Poisson GLM; ours too (estimates and model-based SEs against R's glmer)."""
    s, w = sample(cohort), weights(cohort)
    ref = expected(cohort, "center_glmm_ATO_75")
    codes = pd.factorize(s["center"].to_numpy())[0]
    checked = 0
    for (outcome, model), r in ref[ref["singular"]].groupby(["outcome", "model"]):
        y_all = s[outcome].to_numpy(float)
        keep = ~np.isnan(y_all)
        t = s["rescue_stenting"].to_numpy(float)[keep]
        h = (s["stenosis_pct"].to_numpy(float)[keep] > 75).astype(float)
        X = (pd.DataFrame({"(Intercept)": 1.0, "trt": t}) if model == "overall" else
             pd.DataFrame({"(Intercept)": 1.0, "trt": t, "high": h, "trt:high": t * h}))
        fit = fit_poisson_glmm(X, y_all[keep], w[keep], codes[keep])
        if len(r) != X.shape[1]:
            continue
        assert fit.singular
        assert_close(fit.coef, r["estimate"], rtol=1e-5, atol=1e-6, what=f"{outcome} {model}")
        assert_close(np.sqrt(np.diag(fit.vcov)), r["std_error_rx"], rtol=1e-5, what=f"{outcome} {model}")
        checked += 1
    assert checked >= 3


def test_zero_event_cell_is_not_fitted():
    result = center_sensitivity(sample("missing"), weights("missing"), 75)
    rows = result.table[(result.table.outcome == "sich") & result.table.subgroup.isin(["low", "high"])]
    assert rows["estimate"].isna().all()
    assert rows["note"].str.contains("no events in the MT-only arm with stenosis > 75 %").all()


@pytest.mark.parametrize("cohort", SENSITIVITY_COHORTS)
def test_cluster_robust_matches_vcovcl(cohort):
    both = cluster_robust(sample(cohort), weights(cohort), 75)
    assert list(both.columns) == CLUSTER_COLUMNS
    assert both["method"].tolist() == ["CR1"] * (len(both) // 2) + ["CR2"] * (len(both) // 2)
    ours = both[both["method"] == "CR1"].reset_index(drop=True)
    ref = expected(cohort, "cluster_ATO_75")
    assert ((ours["df"] == np.inf) == (ours["measure"] == "RR")).all()  # normal for Poisson, t for the mRS
    assert ours[["outcome", "subgroup", "measure"]].values.tolist() == ref[["outcome", "subgroup", "measure"]].values.tolist()
    for col in ("estimate", "ci_lower", "ci_upper", "p_value", "p_interaction"):
        assert_close(ours[col], ref[col], what=f"{cohort} {col}")


@pytest.mark.parametrize("cohort", SENSITIVITY_COHORTS)
def test_cr2_with_satterthwaite_df_matches_clubsandwich(cohort):
    """CR2 standard errors, Satterthwaite df, t intervals and p (tests/reference/make_cr2.R) at 1e-6."""
    both = cluster_robust(sample(cohort), weights(cohort), 75)
    ours = both[both["method"] == "CR2"].reset_index(drop=True)
    ref = expected(cohort, "cluster_cr2_ATO_75")
    assert ours[["outcome", "subgroup", "measure"]].values.tolist() == ref[["outcome", "subgroup", "measure"]].values.tolist()
    for col in ("estimate", "std_error", "ci_lower", "ci_upper", "p_value", "p_interaction", "df"):
        a, b = ours[col].to_numpy(float), ref[col].to_numpy(float)
        assert (np.isnan(a) == np.isnan(b)).all(), (cohort, col)
        assert np.allclose(a[~np.isnan(b)], b[~np.isnan(b)], rtol=1e-6, atol=0), (cohort, col)
    cr1 = both[both["method"] == "CR1"].reset_index(drop=True)
    assert (ours["df"].dropna() < 25).all() and (ours["df"].dropna() > 5).all()  # far below the residual df
    assert np.array_equal(ours["estimate"].to_numpy(), cr1["estimate"].to_numpy(), equal_nan=True)


def test_cr2_of_one_cluster_per_patient_with_unit_weights_is_hc2():
    """With every patient its own center and unit weights, CR2 is HC2 (Bell & McCaffrey 2002)."""
    from analysis_lib.clustered import fit_cells_cr2
    from analysis_lib.effects import fit_cells

    rng = np.random.default_rng(4)
    cell = rng.integers(0, 2, 60)
    y = rng.normal(size=60) + cell
    cr2 = fit_cells_cr2(y, np.ones(60), cell, 2, "gaussian", np.arange(60))
    hc2 = fit_cells(y, np.ones(60), cell, 2, "gaussian", "HC2")
    assert cr2.contrast([-1, 1])[1] == pytest.approx(hc2.contrast([1], [0])[1], rel=1e-12)


def test_evalue_closed_forms():
    assert evalue(1.0) == 1.0
    assert evalue(2.0) == pytest.approx(2 + np.sqrt(2))
    assert evalue(0.5) == pytest.approx(2 + np.sqrt(2))  # a protective RR is inverted
    assert evalue_ci(2.0, 1.5, 2.7) == pytest.approx(1.5 + np.sqrt(1.5 * 0.5))  # lower limit nearer 1
    assert evalue_ci(0.4, 0.2, 0.8) == pytest.approx(1.25 + np.sqrt(1.25 * 0.25))  # upper limit nearer 1
    assert evalue_ci(1.3, 0.9, 1.8) == 1.0  # interval contains 1
    assert np.isnan(evalue(np.nan)) and np.isnan(evalue_ci(np.nan, np.nan, np.nan))


def test_evalues_table():
    s = sample("missing")
    t2 = table2(s, weights("missing"), 75)
    sd = mrs_sd(s)
    assert sd == pytest.approx(s["mrs_90d"].std(ddof=1))
    table = evalues(t2, sd)
    assert list(table.columns) == EVALUE_COLUMNS
    assert (table["analysis"] == "iptw").all() and len(table) == 21
    mrs = table[(table.outcome == "mrs_90d") & (table.subgroup == "low")].iloc[0]
    src = t2[(t2.outcome == "mrs_90d") & (t2.analysis == "iptw") & (t2.subgroup == "low")].iloc[0]
    rr = np.exp(0.91 * src["estimate"] / sd)
    assert mrs["evalue_point"] == pytest.approx(evalue(rr), rel=1e-12)
    lo, hi = np.exp(0.91 * src["ci_lower"] / sd), np.exp(0.91 * src["ci_upper"] / sd)
    assert mrs["evalue_ci"] == pytest.approx(evalue_ci(rr, lo, hi), rel=1e-12)
    zero = table[(table.outcome == "sich") & (table.subgroup == "high")].iloc[0]
    assert np.isnan(zero["evalue_point"]) and zero["note"].startswith("no estimate")
