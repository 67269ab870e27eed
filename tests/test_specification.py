"""Propensity specification (formula, CBPS), weight choice, multiple imputation and the multiverse:
against R, the NHEFS textbook example, closed forms and their defining properties."""

import numpy as np
import pandas as pd
import pytest
from conftest import COHORTS, ROOT, assert_close, expected, sample, weights

from analysis_lib.data import load_cohort
from analysis_lib.effects import estimate_effect, table2
from analysis_lib.imputation import MI_COLUMNS, chained_equations, multiple_imputation, rubin
from analysis_lib.multiverse import fit_specifications, multiverse_specs, propensity_specifications, run_multiverse
from analysis_lib.ordinal import ordinal_shift
from analysis_lib.params import DEFAULT_PS_COVARIATES, RICH_PS_FORMULA, Parameters
from analysis_lib.specification import WEIGHT_SENSITIVITY_COLUMNS, WEIGHT_VARIANTS, weight_sensitivity, weight_variants
from analysis_lib.steps import covariate_balance
from analysis_lib.study import load_study
from analysis_lib.weighting import balance_variables, cbps, compute_weights, fit_propensity

NHEFS_FORMULA = ("sex + race + age + I(age**2) + C(education) + smokeintensity + I(smokeintensity**2)"
                 " + smokeyrs + I(smokeyrs**2) + C(exercise) + C(active) + wt71 + I(wt71**2)")


def test_nhefs_program_12_2():
    """Hernan & Robins, What If, program 12.2: 3.44 kg (2.41 to 4.47), n = 1566, robust variance."""
    nhefs = pd.read_csv(ROOT / "tests" / "public" / "nhefs" / "NHEFS.csv")
    nhefs = nhefs[nhefs["wt82"].notna()].reset_index(drop=True)
    model = fit_propensity(nhefs, formula=NHEFS_FORMULA, treatment="qsmk")
    w = compute_weights(model.propensity, nhefs["qsmk"].to_numpy(), "ATE")
    effect = estimate_effect(nhefs, "wt82_71", w, treatment="qsmk").iloc[0]
    assert effect["n"] == 1566
    assert (round(effect["estimate"], 2), round(effect["ci_lower"], 2), round(effect["ci_upper"], 2)) == (3.44, 2.41, 4.47)
    assert len(model.terms) == 18  # C(education) 4, C(exercise) 2, C(active) 2 dummies plus 10 terms


@pytest.mark.parametrize("cohort", list(COHORTS))
def test_formula_propensity_matches_glm_with_splines(cohort):
    model = fit_propensity(sample(cohort), formula=RICH_PS_FORMULA)
    assert_close(model.propensity, expected(cohort, "propensity_rich")["propensity"], rtol=1e-6, what="rich PS")


def test_formula_drives_sample_weights_and_balance(tmp_path):
    params = Parameters(data_path=str(COHORTS["missing"]), ps_formula="age + I(age**2) + C(m1_occlusion) + nihss")
    study = load_study(params)
    assert study.propensity.formula == params.ps_formula
    # complete cases on the formula's variables only (aspects is no longer required)
    cohort = study.cohort
    assert study.sample.n == int(cohort[["age", "m1_occlusion", "nihss"]].notna().all(axis=1).sum())
    balance = covariate_balance(study)
    # cobalt's convention for a formula: every term, every level of a factor, no intercept
    assert balance["covariate"].tolist() == ["age", "I(age ** 2)", "C(m1_occlusion)[0]", "C(m1_occlusion)[1]", "nihss"]
    assert balance_variables(study.data, (), params.ps_formula).shape == (study.sample.n, 5)
    # overlap weights balance every term of a logistic model exactly
    assert balance["smd_weighted"].abs().max() < 1e-8


@pytest.mark.parametrize("estimand", ["ATE", "ATT"])
def test_cbps_balances_exactly_and_improves_on_logistic(estimand):
    s = sample("synthetic")
    t = s["rescue_stenting"].to_numpy()
    logistic = fit_propensity(s, DEFAULT_PS_COVARIATES)
    model = fit_propensity(s, DEFAULT_PS_COVARIATES, method="cbps", estimand=estimand)
    assert model.method == "cbps" and model.iterations >= 1
    X = s[list(DEFAULT_PS_COVARIATES)].to_numpy(float)

    def imbalance(e):
        w = compute_weights(e, t, estimand)
        m1 = (w[t == 1, None] * X[t == 1]).sum(0) / w[t == 1].sum()
        m0 = (w[t == 0, None] * X[t == 0]).sum(0) / w[t == 0].sum()
        return np.abs(m1 - m0) / X.std(axis=0)

    assert imbalance(model.propensity).max() < 1e-8  # the defining property, on every covariate
    assert imbalance(logistic.propensity).max() > 1e-3  # the logistic fit it started from does not balance

    def loglik(e):
        return float(np.sum(t * np.log(e) + (1 - t) * np.log(1 - e)))

    # it starts from the maximum-likelihood fit and trades a little likelihood for exact balance
    assert loglik(model.propensity) < loglik(logistic.propensity)
    start = logistic.coefficients.to_numpy()
    X1 = np.column_stack([np.ones(len(s)), X])
    beta, _ = cbps(X1, t.astype(float), start, estimand)
    assert_close(beta, model.coefficients.to_numpy(), rtol=1e-10, what="CBPS from the logistic start")


@pytest.mark.parametrize("estimand", ["ATE", "ATT", "ATM"])
def test_weight_sensitivity_matches_r(cohort, estimand):
    s = sample(cohort)
    model = fit_propensity(s, DEFAULT_PS_COVARIATES)
    ours = weight_sensitivity(s, model, 75)
    assert list(ours.columns) == WEIGHT_SENSITIVITY_COLUMNS
    assert sorted(ours["estimand"].unique()) == sorted(WEIGHT_VARIANTS)
    mine = ours[ours["estimand"] == estimand].reset_index(drop=True)
    ref = expected(cohort, f"table2_{estimand}_HC0_75")
    ref = ref[(ref.analysis == "iptw") & ref.outcome.isin(["mrs_90d", "mrs_0_2", "sich"])].reset_index(drop=True)
    assert mine[["outcome", "subgroup"]].values.tolist() == ref[["outcome", "subgroup"]].values.tolist()
    for col in ("estimate", "ci_lower", "ci_upper", "p_value", "n"):
        assert_close(mine[col], ref[col], what=f"{cohort} {estimand} {col}")


def test_truncated_and_trimmed_weights():
    s = sample("synthetic")
    model = fit_propensity(s, DEFAULT_PS_COVARIATES)
    e = model.propensity
    t = s["rescue_stenting"].to_numpy()
    variants = weight_variants(e, t)
    raw = compute_weights(e, t, "ATE", normalize=False)
    lo, hi = np.quantile(raw, [0.01, 0.99])
    w, kept = variants["ATE_truncated"]
    assert kept.all() and w.max() / w.min() == pytest.approx(hi / lo)
    assert_close(w, np.clip(raw, lo, hi) / np.clip(raw, lo, hi).mean(), rtol=1e-14)
    w, kept = variants["ATE_trimmed"]
    assert kept.sum() == int(((e >= 0.1) & (e <= 0.9)).sum()) and (w[~kept] == 0).all()
    assert w[kept].mean() == pytest.approx(1.0)
    table = weight_sensitivity(s, model, 75)
    row = table[(table.estimand == "ATE_trimmed") & (table.outcome == "sich") & (table.subgroup == "overall")].iloc[0]
    assert row["n"] == kept.sum()
    ess = table[(table.estimand == "ATO") & (table.outcome == "mrs_90d") & (table.subgroup == "overall")].iloc[0]
    w_ato = weights("synthetic")
    assert ess["effective_n"] == pytest.approx(w_ato.sum() ** 2 / (w_ato ** 2).sum())


def test_rubin_rules_closed_form():
    q = np.array([1.0, 2.0, 3.0])
    u = np.array([0.5, 0.5, 0.5])
    Q, T, nu, fmi = rubin(q, u, np.inf)
    B, W, m = 1.0, 0.5, 3
    assert Q == 2.0 and T == pytest.approx(W + (1 + 1 / m) * B)
    r = (1 + 1 / m) * B / W
    assert nu == pytest.approx((m - 1) * (1 + 1 / r) ** 2)
    assert fmi == pytest.approx((r + 2 / (nu + 3)) / (r + 1))
    # Barnard-Rubin with complete-data df
    Q, T, nu_br, _ = rubin(q, u, 100.0)
    gamma = (1 + 1 / m) * B / T
    nu_obs = 101 / 103 * 100 * (1 - gamma)
    assert nu_br == pytest.approx(1 / (1 / ((m - 1) * (1 + 1 / r) ** 2) + 1 / nu_obs))
    # identical imputations: complete-data inference
    assert rubin(np.ones(5), np.full(5, 0.2), 50.0) == (1.0, 0.2, 50.0, 0.0)


def test_imputation_without_missing_values_is_the_complete_case_analysis():
    cohort = sample("synthetic")  # the complete cases: nothing to impute
    mi = multiple_imputation(cohort, DEFAULT_PS_COVARIATES, 75, m=5)
    assert list(mi.table.columns) == MI_COLUMNS
    primary = table2(sample("synthetic"), weights("synthetic"), 75)
    primary = primary[(primary.analysis == "iptw") & primary.outcome.isin(["mrs_90d", "mrs_0_2", "sich"])]
    for col in ("estimate", "ci_lower", "ci_upper", "p_value"):
        assert_close(mi.table[col], primary[col], rtol=1e-12, what=col)
    assert (mi.table["fraction_missing_info"] == 0).all()


def test_imputation_can_be_skipped():
    result = multiple_imputation(load_cohort(COHORTS["missing"]), DEFAULT_PS_COVARIATES, 75, m=0)
    assert result.table.empty and list(result.table.columns) == MI_COLUMNS and "skipped" in repr(result)


def test_imputation_is_reproducible_by_seed_and_fills_only_missing_cells():
    cohort = load_cohort(COHORTS["missing"])
    a = multiple_imputation(cohort, DEFAULT_PS_COVARIATES, 75, m=5, seed=1)
    b = multiple_imputation(cohort, DEFAULT_PS_COVARIATES, 75, m=5, seed=1)
    c = multiple_imputation(cohort, DEFAULT_PS_COVARIATES, 75, m=5, seed=2)
    pd.testing.assert_frame_equal(a.table, b.table)
    assert not a.table["estimate"].equals(c.table["estimate"])
    assert a.missing.set_index("variable")["n_missing"].to_dict()["nihss"] == 6
    ok = a.table["estimate"].notna()
    assert ((a.table.loc[ok, "fraction_missing_info"] > 0) & (a.table.loc[ok, "fraction_missing_info"] < 1)).all()
    frame = cohort[list(DEFAULT_PS_COVARIATES) + ["rescue_stenting"]]
    draws = chained_equations(frame, list(DEFAULT_PS_COVARIATES), 3, np.random.default_rng(0))
    observed = frame.notna()
    for d in draws:
        assert d.notna().all().all()
        pd.testing.assert_frame_equal(d[observed].astype(float), frame[observed].astype(float))
        assert set(np.unique(d["mtici_2b3_after_mt"])) <= {0.0, 1.0}  # predictive mean matching keeps 0/1


def test_multiverse_grid_primary_and_agreement():
    params = Parameters()
    s = sample("synthetic")
    fits = fit_specifications(s, multiverse_specs(params.ps_covariates, None, "logistic", params.multiverse_formula))
    curve = run_multiverse(fits, params, 75.0)
    n_specs = 3 * 4 * 4 * 11 * 3
    assert len(curve) == 2 * n_specs
    assert curve["primary"].sum() == 2
    primary = curve[curve["primary"]].set_index("subgroup")
    t2 = table2(s, weights("synthetic"), 75).query("outcome == 'mrs_90d' and analysis == 'iptw'").set_index("subgroup")
    assert_close(primary.loc[["low", "high"], "estimate"], t2.loc[["low", "high"], "estimate"], rtol=1e-12)
    assert primary["agrees"].all()
    sig = curve["p_value"] < 0.05
    ref_sig = curve["subgroup"].map(primary["p_value"] < 0.05)
    ref_sign = curve["subgroup"].map(np.sign(primary["estimate"]))
    assert (curve["agrees"] == ((np.sign(curve["estimate"]) == ref_sign) & (sig == ref_sig))).all()
    assert set(curve["ps_spec"]) == {"primary", "rich formula", "CBPS"}
    # the common odds ratios: the ordinal table's at the primary choices, the same for every HC type
    shift = ordinal_shift(s, weights("synthetic"), 75.0).query("analysis == 'iptw'").set_index("subgroup")
    for col, ref in (("common_or", "common_or"), ("common_or_ci_upper", "ci_upper"), ("common_or_p_value", "p_value")):
        assert_close(primary.loc[["low", "high"], col], shift.loc[["low", "high"], ref], rtol=1e-9)
    by_hc = curve.groupby(["ps_spec", "estimand", "cutoff", "min_arm_size", "subgroup"])["common_or"]
    assert (by_hc.nunique(dropna=False) == 1).all()
    or_sig = curve["common_or_p_value"] < 0.05
    ref_or = curve["subgroup"].map(np.sign(np.log(primary["common_or"])))
    ref_or_sig = curve["subgroup"].map(primary["common_or_p_value"] < 0.05)
    assert (curve["common_or_agrees"] == ((np.sign(np.log(curve["common_or"])) == ref_or) & (or_sig == ref_or_sig))).all()
    assert 0 < curve["common_or_agrees"].mean() < 1


def test_propensity_specifications_table():
    specs = multiverse_specs(DEFAULT_PS_COVARIATES, None, "logistic", RICH_PS_FORMULA)
    table = propensity_specifications(fit_specifications(sample("synthetic"), specs, "ATE"), "ATE", 75)
    by = table.set_index("ps_spec")
    assert by.loc["CBPS", "max_abs_smd_weighted"] < 1e-8 < by.loc["primary", "max_abs_smd_weighted"]
    assert by.loc["rich formula", "terms"] == 17


def test_the_donor_search_finds_the_k_nearest():
    """Predictive mean matching's k nearest observed predictions, a block of k sorted positions
    found around each query, equal those of the full distance matrix (queries inside, below and
    above the observed range, on an observed value, and k equal to the number of observed rows)."""
    from analysis_lib.imputation import _nearest

    rng = np.random.default_rng(3)
    for n, k in ((500, 20), (30, 20), (12, 12), (5000, 5), (40, 1)):
        values = np.sort(rng.normal(size=n))
        queries = np.concatenate([rng.normal(size=200), [-10.0, 10.0, values[n // 2]]])
        full = np.argpartition(np.abs(queries[:, None] - values[None, :]), k - 1, axis=1)[:, :k]
        block = _nearest(values, queries, k)[:, None] + np.arange(k)
        assert np.array_equal(block, np.sort(full, axis=1)), (n, k)
    # ties: equally close values on both sides keep the block on the left
    assert _nearest(np.array([0.0, 1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.5]), 2).tolist() == [1, 2]
    # with many tied values, against the rule written out one query and one move at a time (the
    # block moves right while the value it gains is strictly closer than the one it loses)
    for n, k in ((3000, 20), (3000, 7), (300, 16), (64, 3), (20, 20)):
        values = np.sort(np.round(rng.normal(size=n) * 4) / 4)
        queries = np.concatenate([np.round(rng.normal(size=300) * 8) / 8, [-10.0, 10.0]])
        expected = []
        for q in queries:
            start = int(np.clip(np.searchsorted(values, q) - k, 0, n - k))
            while start + k < n and q - values[start] > values[start + k] - q and start < n - k:
                start += 1
            expected.append(start)
        assert _nearest(values, queries, k).tolist() == expected, (n, k)


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_the_donors_rows_are_those_of_the_stable_sort(ties):
    """The rows of the picked donors (_rows_at, from the values sorted without their rows) and the
    order of all donors (_sorted_with_rows) are those of NumPy's stable argsort: value, then row.
    Values with and without ties, a few and many picks, a value picked twice, n of 1 and 2."""
    from analysis_lib.imputation import _rows_at, _sorted_with_rows

    rng = np.random.default_rng(11)
    for n, m in ((20000, 40), (20000, 5000), (20000, 60000), (300, 7), (2, 2), (1, 3)):
        values = rng.normal(size=n)
        if ties:
            values = np.round(values * 3) / 3  # a dozen distinct values, thousands of ties each
        stable = np.argsort(values, kind="stable")
        sorted_values, order = _sorted_with_rows(values)
        assert np.array_equal(order, stable) and np.array_equal(sorted_values, values[stable]), n
        positions = rng.integers(0, n, m)
        assert np.array_equal(_rows_at(values, np.sort(values), positions), stable[positions]), (n, m)
    # every value equal, an infinite value, a range too narrow to bin: every row sorted
    for values in (np.zeros(50), np.array([3.0, -np.inf, 1.0, 1.0, np.inf]),
                   np.array([1.0, 1.0 + 2.0 ** -52, 1.0, 5e-324, 0.0]), np.array([5e-324, 0.0, 5e-324])):
        positions = np.arange(values.size)[::-1]
        expected = np.argsort(values, kind="stable")[positions]
        assert np.array_equal(_rows_at(values, np.sort(values), positions), expected), values
