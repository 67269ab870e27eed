"""Reading and validation: every rule of the data dictionary gives one line naming the column,
the rows and the rule; derived outcomes; the analysis sample."""

import numpy as np
import pandas as pd
import pytest
from conftest import COHORTS

from analysis_lib.data import (
    DataError,
    analysis_sample,
    derive_outcomes,
    load_cohort,
    load_dictionary,
    read_registry,
    validate,
)
from analysis_lib.params import DEFAULT_PS_COVARIATES

SYNTHETIC = COHORTS["synthetic"]


def raw():
    return read_registry(SYNTHETIC)


def problems_of(frame):
    return validate(frame)[1]


def one_problem(frame):
    problems = problems_of(frame)
    assert len(problems) == 1, problems
    assert "\n" not in problems[0]
    return problems[0]


def test_shipped_cohort_is_valid():
    assert problems_of(raw()) == []


def test_dictionary_covers_the_contract():
    d = load_dictionary()
    assert d["age"].value_range == (18, 110)
    assert d["sex_female"].value_set == {0.0, 1.0}
    assert "aspirin+gpi" in d["antiplatelet_regimen"].value_set


def test_missing_column_with_rename_hint():
    frame = raw().rename(columns={"nihss": "NIHSS"})
    message = one_problem(frame)
    assert message.startswith("nihss: required column is missing; found 'NIHSS' - rename it")


def test_out_of_range_names_rows_ids_and_rule():
    frame = raw()
    frame.loc[[3, 8], "age"] = ["150", "7"]
    message = one_problem(frame)
    assert message == ("age: 2 rows break the rule 'must be from 18 to 110': "
                       f"row 4 ({frame.loc[3, 'patient_id']}) = '150', row 9 ({frame.loc[8, 'patient_id']}) = '7'")


def test_at_most_five_rows_listed():
    frame = raw()
    frame.loc[:9, "nihss"] = "50"
    message = one_problem(frame)
    assert "10 rows break the rule 'must be from 0 to 42'" in message and message.endswith("and 5 more")
    assert message.count("row ") == 5  # five rows listed, the rest counted


@pytest.mark.parametrize("column,value,rule", [
    ("rescue_stenting", "2", "must be 0 or 1"),
    ("sex_female", "yes", "must be a whole number"),
    ("premorbid_mrs", "1.5", "must be a whole number"),
    ("aspects", "11", "must be from 0 to 10"),
    ("stenosis_pct", "", "must not be empty"),
    ("stenosis_pct", "101", "must be from 0 to 100"),
    ("onset_to_end_min", "-5", "must be from 0 to 10080"),
    ("center", "", "must not be empty"),
    ("mrs_90d", "7", "must be from 0 to 6"),
])
def test_rule_violations(column, value, rule):
    frame = raw()
    i = next(i for i in range(5, len(frame)) if frame.loc[i, "mrs_90d"] != "6")  # no death rule in the way
    frame.loc[i, column] = value
    message = one_problem(frame)
    assert message.startswith(f"{column}: 1 row break") and f"'{rule}'" in message and f"row {i + 1} (" in message


def test_unknown_regimen_and_regimen_for_mt_only():
    frame = raw()
    mt_only = frame.index[frame["rescue_stenting"] == "0"][0]
    frame.loc[mt_only, "antiplatelet_regimen"] = "aspirin"
    assert "must be empty for MT-only patients" in one_problem(frame)
    frame = raw()
    rs = frame.index[frame["rescue_stenting"] == "1"][0]
    frame.loc[rs, "antiplatelet_regimen"] = "heparin"
    assert "antiplatelet_regimen: 1 row break the rule 'must be one of: none, aspirin" in one_problem(frame)


def test_duplicate_ids():
    frame = raw()
    frame.loc[1, "patient_id"] = frame.loc[0, "patient_id"]
    message = one_problem(frame)
    assert message.startswith("patient_id: 2 rows break the rule 'must be unique (duplicated patient ID)'")


def test_death_inconsistent_with_mrs():
    frame = raw()
    alive = frame.index[frame["mrs_90d"] == "2"][0]
    frame.loc[alive, "death_90d"] = "1"
    assert one_problem(frame).startswith("death_90d: 1 row break the rule 'must equal (mrs_90d == 6)")


def test_arm_without_patients():
    frame = raw()
    frame["rescue_stenting"] = "1"
    frame["antiplatelet_regimen"] = frame["antiplatelet_regimen"].replace("", "none")
    assert one_problem(frame) == "rescue_stenting: no patient in the MT only (0) arm; both arms are needed"


def test_every_problem_reported_at_once():
    frame = raw()
    frame.loc[0, "age"] = "abc"
    frame.loc[1, "nihss"] = "99"
    frame = frame.drop(columns=["sich"])
    problems = problems_of(frame)
    assert len(problems) == 3
    assert {p.split(":")[0] for p in problems} == {"age", "nihss", "sich"}


def test_load_cohort_raises_with_file_name(tmp_path):
    frame = raw()
    frame.loc[0, "age"] = "abc"
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        load_cohort(path)
    assert err.value.problems == [f"bad.csv: age: 1 row break the rule 'must be a number': row 1 ({frame.loc[0, 'patient_id']}) = 'abc'"]


@pytest.mark.parametrize("content,message", [
    (b"", "the file is empty"),
    (b"patient_id,center\n", "has a header row but no patient rows"),
    (b"\x89PNG\r\n\x1a\n\x00\x00binary", "not a text CSV file"),
])
def test_unreadable_files(tmp_path, content, message):
    path = tmp_path / "registry.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_registry(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        read_registry(tmp_path / "nope.csv")


def test_bom_and_trailing_blank_rows_are_tolerated(tmp_path):
    text = SYNTHETIC.read_text(encoding="utf-8")
    path = tmp_path / "export.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode() + b",,,,\n\n")
    frame = read_registry(path)
    assert list(frame.columns)[0] == "patient_id" and len(frame) == 344
    assert problems_of(frame) == []


def test_derived_outcomes():
    df = pd.DataFrame({"mrs_90d": [0, 2, 3, 4, 6, np.nan]})
    out = derive_outcomes(df)
    assert out["mrs_0_2"].tolist()[:5] == [1, 1, 0, 0, 0]
    assert out["mrs_0_3"].tolist()[:5] == [1, 1, 1, 0, 0]
    assert out["death_90d"].tolist()[:5] == [0, 0, 0, 0, 1]
    assert out.iloc[5][["mrs_0_2", "mrs_0_3", "death_90d"]].isna().all()


def test_death_derived_when_column_absent(tmp_path):
    frame = raw().drop(columns=["death_90d"])
    path = tmp_path / "no_death.csv"
    frame.to_csv(path, index=False)
    cohort = load_cohort(path)
    assert (cohort["death_90d"] == (cohort["mrs_90d"] == 6)).all()


def test_analysis_sample_counts_exclusions_once():
    cohort = load_cohort(COHORTS["missing"])
    smp = analysis_sample(cohort, DEFAULT_PS_COVARIATES)
    incomplete = cohort[list(DEFAULT_PS_COVARIATES)].isna().any(axis=1)
    assert smp.n == int((~incomplete).sum())
    assert smp.exclusions["n"].sum() == int(incomplete.sum())
    assert smp.data[list(DEFAULT_PS_COVARIATES)].notna().all().all()
    assert smp.data["mrs_90d"].isna().sum() > 0  # outcomes may stay missing


BROKEN = [  # (column, row, value, the rule the report names): one per kind of rule
    ("stenosis_pct", 3, "", "must not be empty"),
    ("center", 3, "NA", "must not be empty"),
    ("age", 3, "130", "must be from 18 to 110"),
    ("sex_female", 3, "2", "must be 0 or 1"),
    ("nihss", 3, "7.5", "must be a whole number"),
    ("aspects", 3, "11", "must be from 0 to 10"),
    ("antiplatelet_regimen", 3, "aspirin only", "must be "),
    ("patient_id", 3, None, "must be unique"),
    ("death_90d", 3, None, "must equal (mrs_90d == 6)"),
]


@pytest.mark.parametrize("column,row,value,rule", BROKEN, ids=[b[0] for b in BROKEN])
def test_the_fast_reader_and_the_validator_apply_one_set_of_rules(tmp_path, column, row, value, rule):
    """A valid file read fast equals the validated text; a file breaking one rule is refused by
    the fast reader and reported by the validator under that rule."""
    from analysis_lib.data import _fast_load

    text = raw()
    valid = tmp_path / "valid.csv"
    text.to_csv(valid, index=False)
    pd.testing.assert_frame_equal(_fast_load(valid), validate(read_registry(valid))[0])
    broken = text.copy()
    if column == "patient_id":
        value = broken.loc[row + 1, "patient_id"]
    elif column == "death_90d":
        row = int(np.flatnonzero(broken["mrs_90d"].isin(["0", "1", "2"]))[0])
        value = "1"
    elif column == "antiplatelet_regimen":
        row = int(np.flatnonzero(broken["rescue_stenting"] == "1")[0])
    broken.loc[row, column] = value
    path = tmp_path / "broken.csv"
    broken.to_csv(path, index=False)
    assert _fast_load(path) is None
    problem = one_problem(read_registry(path))
    assert problem.startswith(f"{column}: ") and f"'{rule}" in problem


TEXT_CASES = [["C01", "C02"], [" C01", "C02"], ["C01 ", "C02"], ["C01", "C02\t"], ["C01\x1f"], ["C01\xa0"],
              ["aspirin clopidogrel"], ["NA"], ["Nan", "x"], ["x", "n/a"], ["."], ["a.b"], ["NULL"], ["nulls"],
              ["na b"], ["Zentrum Zürich"], ["Zürich "], ["\u200bC01"], ["C0\x001"], ["\u212aa"]]


@pytest.mark.parametrize("values", TEXT_CASES, ids=[repr(v) for v in TEXT_CASES])
def test_the_fast_text_check_refuses_what_the_value_by_value_check_refuses(values):
    """The fast reader's check of a text column's distinct values (one joined string) accepts
    exactly the values that have no surrounding white space and spell no missing value, as
    str.strip and str.lower see them (a NUL inside a value may only send a file to the text path)."""
    from analysis_lib.data import NA_TOKENS, _plain_text

    plain = all(v == v.strip() and v.lower() not in NA_TOKENS for v in values)
    accepted = _plain_text(np.array(values, dtype=object)) is not None
    assert accepted == plain or ("\x00" in "".join(values) and not accepted)


@pytest.mark.parametrize("second", ["P0002", "P0001\u200b", "P0001\xa0", " P0001"],
                         ids=["distinct", "zero-width space", "non-breaking space", "leading space"])
def test_the_fast_reader_leaves_ids_that_need_cleaning_to_the_text_path(tmp_path, second):
    """IDs that are the same patient once cleaned (id_keys) are never accepted by the fast
    reader, which skips the comparison only for plain ASCII IDs as many as the rows."""
    from analysis_lib.data import _fast_load

    text = raw().head(40).copy()
    text.loc[0, "patient_id"], text.loc[1, "patient_id"] = "P0001", second
    path = tmp_path / "ids.csv"
    text.to_csv(path, index=False)
    assert (_fast_load(path) is not None) == (second == "P0002")
    if second != "P0002":
        assert "patient_id: 2 rows break the rule 'must be unique" in one_problem(read_registry(path))


def test_the_cohort_cache_maps_the_same_cohort_sample_and_fit(tmp_path):
    """The build's cache (write_cohort_cache) gives back the cohort and the stored entries equal,
    column by column with their dtypes; its arrays are writable views of a private map, so a
    notebook that writes into one changes neither the file nor another reader's copy."""
    from analysis_lib.data import read_cohort_cache, write_cohort_cache

    cohort = load_cohort(SYNTHETIC)
    sample = analysis_sample(cohort, DEFAULT_PS_COVARIATES)
    cache = tmp_path / "cohort.cache"
    write_cohort_cache(cohort, SYNTHETIC, cache, sample=(("age",), sample), fit=np.arange(5.0))
    first, second = read_cohort_cache(SYNTHETIC, cache), read_cohort_cache(SYNTHETIC, cache)
    pd.testing.assert_frame_equal(first["cohort"], cohort, check_exact=True)
    pd.testing.assert_frame_equal(first["sample"][1].data, sample.data, check_exact=True)
    pd.testing.assert_frame_equal(first["sample"][1].exclusions, sample.exclusions)
    assert first["sample"][0] == ("age",) and first["fit"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert cache.stat().st_size % 4096 == 0  # arrays on their own pages
    ages = first["cohort"]["age"].to_numpy(copy=False)
    assert not np.shares_memory(ages, cohort["age"].to_numpy(copy=False))
    first["fit"][0] = 99.0
    assert second["fit"][0] == 0.0 and read_cohort_cache(SYNTHETIC, cache)["fit"][0] == 0.0


def test_entries_fitted_after_the_cohort_are_read_with_it_only_for_the_same_file(tmp_path):
    """The build writes the cohort while it fits the propensity model, then the model beside it
    (write_fitted_cache): read_cohort_cache gives both; entries of another data file, or a
    damaged file of them, are left out; remove_cohort_cache deletes both files."""
    from analysis_lib.data import (
        fitted_cache,
        read_cohort_cache,
        remove_cohort_cache,
        write_cohort_cache,
        write_fitted_cache,
    )

    cohort = load_cohort(SYNTHETIC)
    cache = tmp_path / "cohort.cache"
    write_cohort_cache(cohort, SYNTHETIC, cache, sample=(("age",), None))
    assert set(read_cohort_cache(SYNTHETIC, cache)) == {"source", "cohort", "sample"}
    write_fitted_cache(SYNTHETIC, cache, propensity=(("age",), np.arange(3.0)))
    stored = read_cohort_cache(SYNTHETIC, cache)
    assert stored["propensity"][1].tolist() == [0.0, 1.0, 2.0] and stored["sample"][0] == ("age",)
    pd.testing.assert_frame_equal(stored["cohort"], cohort, check_exact=True)
    other = tmp_path / "other.csv"
    other.write_bytes(SYNTHETIC.read_bytes() + b"\n")
    write_fitted_cache(other, cache, propensity=(("age",), np.arange(3.0)))
    assert "propensity" not in read_cohort_cache(SYNTHETIC, cache)
    fitted_cache(cache).write_bytes(b"damaged")
    assert set(read_cohort_cache(SYNTHETIC, cache)) == {"source", "cohort", "sample"}
    remove_cohort_cache(cache)
    assert not cache.exists() and not fitted_cache(cache).exists()
    remove_cohort_cache(cache)  # nothing left to remove: no error


@pytest.mark.parametrize("damage", ["cut", "magic", "empty", "other file"])
def test_a_damaged_or_foreign_cohort_cache_is_ignored(tmp_path, damage):
    """A cache cut short, of another format, empty, or of another data file gives None: the
    notebook then reads and validates the data file itself."""
    from analysis_lib.data import read_cohort_cache, write_cohort_cache

    cohort = load_cohort(SYNTHETIC)
    cache = tmp_path / "cohort.cache"
    write_cohort_cache(cohort, SYNTHETIC, cache)
    other = tmp_path / "other.csv"
    other.write_bytes(SYNTHETIC.read_bytes())
    data = cache.read_bytes()
    if damage == "cut":
        cache.write_bytes(data[:-100])
    elif damage == "magic":
        cache.write_bytes(b"X" + data[1:])
    elif damage == "empty":
        cache.write_bytes(b"")
    assert read_cohort_cache(SYNTHETIC, cache) is None or damage == "other file"
    assert read_cohort_cache(other, cache) is None
    pd.testing.assert_frame_equal(load_cohort(SYNTHETIC, cache), cohort, check_exact=True)
