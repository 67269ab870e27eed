"""Data safety: an output folder never destroys anything, every parameter is checked before any
notebook runs, data that cannot be analysed are refused (or get an honest note), ambiguous cells
are refused, and a propensity formula cannot run code.

Every refusal is one line on standard error, exit code 2, no traceback, and leaves every file
(the earlier outputs, the data, the column map, the checkout) byte-identical, with nothing left
beside them.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import COHORTS, ROOT

from analysis_lib import cli
from analysis_lib.build import OUTPUT_README, BuildError, _keep_failed, check_output_folder
from analysis_lib.data import DataError, load_cohort, read_column_map, read_registry
from analysis_lib.effects import estimate_effect
from analysis_lib.multiverse import PropensitySpec, fit_specifications, propensity_specifications
from analysis_lib.params import DEFAULT_PS_COVARIATES, ParameterError, Parameters
from analysis_lib.resample import run_resampling
from analysis_lib.sensitivity import center_sensitivity, cluster_robust
from analysis_lib.study import load_study

SYNTHETIC = COHORTS["synthetic"]


def registry() -> pd.DataFrame:
    return pd.read_csv(SYNTHETIC, dtype=str, keep_default_na=False)


def analysed(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the export with every propensity covariate known (the 303 the paper analysed)."""
    return frame[(frame[list(DEFAULT_PS_COVARIATES)] != "").all(axis=1)].reset_index(drop=True)


def tree(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes (hidden files and folders included)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(capsys, *args: str) -> str:
    """Run the command line in-process; it must refuse with exactly one line and exit code 2."""
    code = cli.main(list(args))
    captured = capsys.readouterr()
    assert code == 2, captured
    assert "Traceback" not in captured.err and captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0][len("error: "):]


@pytest.fixture
def raw_folder(tmp_path):
    """A data manager's folder: the registry export and other files of theirs."""
    raw = tmp_path / "raw"
    raw.mkdir()
    registry().to_csv(raw / "registry.csv", index=False)
    (raw / "notes.txt").write_text("keep me\n")
    (raw / "map.yml").write_text("columns: {}\n")
    return raw


# ----------------------------------------------------------------- the output folder
def test_out_is_the_folder_holding_the_registry(capsys, tmp_path, raw_folder):
    before = tree(tmp_path)
    line = refused(capsys, "build", "--data", str(raw_folder / "registry.csv"), "--out", str(raw_folder))
    assert line == (f"--out {raw_folder} contains the data file ({raw_folder / 'registry.csv'}); a build replaces "
                    "its output folder, so choose a new folder, e.g. --out outputs")
    assert tree(tmp_path) == before


def test_out_is_the_data_file_itself(capsys, tmp_path, raw_folder):
    before = tree(tmp_path)
    data = raw_folder / "registry.csv"
    line = refused(capsys, "build", "--data", str(data), "--out", str(data))
    assert line == (f"--out {data}: an existing file, not a folder; a build replaces its output folder, so name a "
                    "new folder")
    assert tree(tmp_path) == before


def test_out_is_another_existing_file(capsys, tmp_path, raw_folder):
    before = tree(tmp_path)
    line = refused(capsys, "build", "--data", str(SYNTHETIC), "--out", str(raw_folder / "notes.txt"))
    assert line.startswith(f"--out {raw_folder / 'notes.txt'}: an existing file, not a folder")
    assert tree(tmp_path) == before


def test_out_contains_the_column_map(capsys, tmp_path, raw_folder):
    (raw_folder / "registry.csv").rename(tmp_path / "registry.csv")
    before = tree(tmp_path)
    line = refused(capsys, "build", "--data", str(tmp_path / "registry.csv"), "--out", str(raw_folder),
                   "--columns", str(raw_folder / "map.yml"))
    assert line.startswith(f"--out {raw_folder} contains the column map ({raw_folder / 'map.yml'})")
    assert tree(tmp_path) == before


def test_out_is_a_folder_of_other_files_without_a_build_marker(capsys, tmp_path):
    other = tmp_path / "thesis"
    other.mkdir()
    (other / "chapter1.docx").write_bytes(b"irreplaceable")
    before = tree(tmp_path)
    line = refused(capsys, "build", "--data", str(SYNTHETIC), "--out", str(other))
    assert line == (f"--out {other}: a folder with other content and no provenance.json of an earlier build; a "
                    "build replaces its output folder, so choose a new or empty folder")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("where", ["root", "above"])
def test_out_is_the_checkout_or_above_it(capsys, where):
    out = ROOT if where == "root" else ROOT.parent
    line = refused(capsys, "build", "--data", str(SYNTHETIC), "--out", str(out))
    assert line.startswith(f"--out {out} {'is' if where == 'root' else 'contains'} the compendium's checkout ({ROOT})")
    assert (ROOT / ".git").exists() and (ROOT / "analysis_lib" / "build.py").is_file()


def test_out_is_the_file_system_root_or_the_home_folder(capsys, tmp_path, monkeypatch):
    assert refused(capsys, "build", "--data", str(SYNTHETIC), "--out", "/").startswith(
        "--out /: the file-system root cannot be an output folder")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    assert refused(capsys, "build", "--data", str(SYNTHETIC), "--out", "~") == (
        f"--out {home}: the home folder cannot be an output folder; name a new folder inside it")
    assert list(home.iterdir()) == []


def test_out_that_cannot_be_written(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x\n")
    line = refused(capsys, "build", "--data", str(SYNTHETIC), "--out", str(blocker / "outputs"))
    assert line.startswith(f"--out {blocker / 'outputs'}: cannot write there (")
    assert blocker.read_text() == "x\n"


def make(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", "-s", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "MAKEFLAGS": ""})


def test_make_supplement_into_the_checkout_is_refused():
    before = sorted(p.name for p in ROOT.iterdir())
    run = make("supplement", "OUT=.")
    assert run.returncode != 0
    assert f"error: --out {ROOT} is the compendium's checkout ({ROOT})" in run.stderr
    assert "Traceback" not in run.stderr
    assert sorted(p.name for p in ROOT.iterdir()) == before


def test_make_supplement_into_the_registry_folder_is_refused(tmp_path, raw_folder):
    before = tree(tmp_path)
    run = make("supplement", f"DATA={raw_folder / 'registry.csv'}", f"OUT={raw_folder}")
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert f"error: --out {raw_folder} contains the data file" in run.stderr
    assert tree(tmp_path) == before


def test_a_batch_into_the_checkout_and_resampling_into_a_file_are_refused(capsys, tmp_path, raw_folder):
    (tmp_path / "s.yml").write_text(f"data: {SYNTHETIC}\nscenarios:\n  primary: {{}}\n")
    assert refused(capsys, "batch", str(tmp_path / "s.yml"), "--out", str(ROOT)).startswith(
        f"--out {ROOT} is the compendium's checkout")
    before = tree(tmp_path)
    assert refused(capsys, "resample", "--data", str(SYNTHETIC), "--out", str(raw_folder / "notes.txt"),
                   "--replicates", "10").startswith(f"--out {raw_folder / 'notes.txt'}: an existing file")
    assert refused(capsys, "resample", "--data", str(raw_folder / "registry.csv"), "--out", str(raw_folder),
                   "--replicates", "10").startswith(f"--out {raw_folder} contains the data file")
    assert tree(tmp_path) == before


def test_replaceable_folders(tmp_path):
    """New, empty, the checkout's outputs/ (only the README every build writes), or an earlier build."""
    assert check_output_folder(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    check_output_folder(tmp_path / "empty")
    shipped = tmp_path / "outputs"
    shipped.mkdir()
    (shipped / "README.md").write_text(OUTPUT_README)
    check_output_folder(shipped)
    (shipped / "README.md").write_text("my own notes\n")
    with pytest.raises(BuildError, match="no provenance.json"):
        check_output_folder(shipped)
    (shipped / "provenance.json").write_text("{}")
    check_output_folder(shipped)


def test_a_failed_folder_that_a_build_did_not_make_is_never_replaced(tmp_path):
    out = tmp_path / "results"
    mine = tmp_path / "results.failed"
    mine.mkdir()
    (mine / "data.csv").write_text("a user's file\n")
    work = tmp_path / ".results.partial"
    (work / "notebooks").mkdir(parents=True)
    kept = _keep_failed(work, out)
    assert kept == work and (mine / "data.csv").read_text() == "a user's file\n"
    assert _keep_failed(work, tmp_path / "other") == tmp_path / "other.failed"  # an unclaimed name: used
    again = tmp_path / ".other.partial"
    (again / "notebooks").mkdir(parents=True)
    assert _keep_failed(again, tmp_path / "other") == tmp_path / "other.failed"  # a failed run replaces its own


# ------------------------------------------------------------------- every parameter
def incomplete_published(tmp_path) -> Path:
    folder = tmp_path / "published"
    folder.mkdir()
    (folder / "table1_published.csv").write_bytes((ROOT / "data/published/table1_published.csv").read_bytes())
    return folder


PARAMETER_CASES = [
    (("-p", "seed", "-1"), "parameter 'seed': a whole number from 0 to 2^63 - 1, got -1"),
    (("-p", "seed", "inf"), "parameter 'seed': expected a finite number, got 'inf'"),
    (("-p", "seed", "nan"), "parameter 'seed': expected a finite number, got 'nan'"),
    (("-p", "seed", "1.5"), "parameter 'seed': expected a whole number, got 1.5"),
    (("-p", "min_arm_size", "1e400"), "parameter 'min_arm_size': expected a finite number, got '1e400'"),
    (("-p", "cutoff_step", "nan"), "parameter 'cutoff_step': expected a finite number, got 'nan'"),
    (("-p", "cutoff_step", "0.001"), "parameter 'cutoff_step': 0.001 gives 50001 cutoffs; at most 1000"),
    (("-p", "conf_level", "inf"), "parameter 'conf_level': expected a finite number, got 'inf'"),
    (("-p", "patients_screened", "10"),
     "parameters 'patients_screened'/'patients_icas_lvo_evt': the patients screened (10) include those treated "
     "(541), so patients_screened >= patients_icas_lvo_evt"),
    (("-p", "published_dir", "/nonexistent"),
     "parameter 'published_dir': /nonexistent is not a folder (expected the paper's tables, e.g. data/published)"),
    (("-p", "ps_covariates", "age,center"),
     "parameter 'ps_covariates': 'center' is a text column (Enrolling stroke center identifier (random intercept "
     "in the sensitivity analysis)); the propensity model takes numeric baseline covariates"),
    (("-p", "ps_covariates", "age,mrs_90d"),
     "parameter 'ps_covariates': 'mrs_90d' is the outcome (Modified Rankin Scale score at 90 days (6 = dead)), "
     "not a baseline covariate"),
    (("-p", "ps_covariates", "age,nihs"),
     "parameter 'ps_covariates': 'nihs' is not a column of the data dictionary (did you mean 'nihss'?)"),
    (("-p", "data_cache", "/tmp/evil.pkl"), "parameter 'data_cache' is set by the build, not by users"),
    (("-p", "ps_formula", "np.log(age)"),
     "parameter 'ps_formula': term 'np.log(age)' uses attribute access ('.log'; write log(x), not np.log(x))"),
    (("-p", "ps_formula", "age + I(open('x'))"),
     "parameter 'ps_formula': term 'I(open('x'))' calls 'open', which is not a formula transform"),
    (("-p", "ps_formula", "age + I((lambda: 1)())"), "parameter 'ps_formula': term 'I((lambda: 1)())' calls 'Lambda'"),
    (("-p", "ps_formula", "age + I(nihss[0])"), "parameter 'ps_formula': term 'I(nihss[0])' uses Subscript"),
    (("-p", "ps_formula", "age + I(__class__)"), "parameter 'ps_formula': term 'I(__class__)' uses the name"),
    (("-p", "ps_formula", "ag + nihss"),
     "parameter 'ps_formula': 'ag' in term 'ag' is not a column of the data dictionary (did you mean 'age'?)"),
]


@pytest.mark.parametrize("args, message", PARAMETER_CASES, ids=[" ".join(c[0][1:]) for c in PARAMETER_CASES])
def test_bad_parameters_are_refused_before_any_notebook(capsys, tmp_path, previous, args, message):
    before = tree(tmp_path)
    assert refused(capsys, "build", "--data", str(SYNTHETIC), "--out", str(previous), *args).startswith(message)
    assert tree(tmp_path) == before


def test_an_incomplete_published_folder(capsys, tmp_path, previous):
    folder = incomplete_published(tmp_path)
    line = refused(capsys, "build", "--data", str(SYNTHETIC), "--out", str(previous), "-p", "published_dir", str(folder))
    assert line == (f"parameter 'published_dir': {folder} lacks table2_published.csv (it needs table1_published.csv, "
                    "table2_published.csv, text_results_published.csv, text_claims_published.csv)")


def test_a_formula_cannot_run_code(capsys, tmp_path, previous):
    witness = tmp_path / "witness"
    formula = f"age + I(__import__('os').system('touch {witness}'))"
    line = refused(capsys, "build", "--data", str(SYNTHETIC), "--out", str(previous), "-p", "ps_formula", formula)
    assert line.startswith(f"parameter 'ps_formula': term 'I(__import__('os').system('touch {witness}'))' uses "
                           "attribute access ('.system'")
    assert not witness.exists()
    with pytest.raises(ParameterError, match="uses attribute access"):
        Parameters(multiverse_formula=formula)
    assert not witness.exists()


def test_a_scenario_file_cannot_set_the_cache(tmp_path):
    from analysis_lib.batch import run_batch

    (tmp_path / "s.yml").write_text(f"data: {SYNTHETIC}\nout: {tmp_path / 'out'}\n"
                                    "scenarios:\n  evil: {data_cache: /tmp/evil.pkl}\n")
    with pytest.raises(BuildError, match="scenario 'evil': parameter 'data_cache' is set by the build, not by users"):
        run_batch(tmp_path / "s.yml", log=lambda m: None)
    assert not (tmp_path / "out").exists()


def test_columns_pointing_at_a_folder(capsys, tmp_path, previous):
    assert refused(capsys, "build", "--data", str(SYNTHETIC), "--out", str(previous), "--columns",
                   str(tmp_path)) == f"column map is a folder, not a YAML file: {tmp_path}"


# ------------------------------------------------------- data that cannot be analysed
def write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


DEGENERATE = [
    ("ten-patients", lambda f: analysed(f).head(10),
     "propensity model: 10 patients for 13 terms (the intercept and 12 covariates); it needs more patients than "
     "terms: use fewer covariates (parameter ps_covariates) or more patients"),
    ("constant-stenosis", lambda f: f.assign(stenosis_pct="80"),
     "stenosis_pct: all 303 patients of the analysis sample have 80 % stenosis; effect modification by the "
     "stenosis degree needs varying degrees"),
    ("constant-hypertension", lambda f: f.assign(hypertension="1"),
     "propensity model: covariate 'hypertension' takes the single value 1 for all 303 patients of the analysis "
     "sample, so its effect cannot be estimated (R reports NA) nor its balance assessed; remove it (parameter "
     "ps_covariates)"),
    ("no-mrs", lambda f: f.assign(mrs_90d="", death_90d=""),
     "mrs_90d: none of the 303 patients of the analysis sample has a known 90-day mRS, the primary outcome "
     "(Table 2, the cutoff sweep and the continuous model need it)"),
    ("mrs-in-one-arm", lambda f: f.assign(mrs_90d=f["mrs_90d"].where(f["rescue_stenting"] == "1", ""),
                                          death_90d=f["death_90d"].where(f["rescue_stenting"] == "1", "")),
     "mrs_90d: the MT only arm has a known 90-day mRS at 0 stenosis degree(s); the continuous model needs two or "
     "more in each arm"),
]


@pytest.mark.parametrize("case, change, message", DEGENERATE, ids=[c[0] for c in DEGENERATE])
def test_data_that_cannot_be_analysed_are_refused_before_the_notebooks(capsys, tmp_path, previous, case, change,
                                                                      message):
    data = write(change(registry()), tmp_path / "registry.csv")
    before = tree(tmp_path)
    assert refused(capsys, "build", "--data", str(data), "--out", str(previous)) == message
    assert tree(tmp_path) == before


def test_a_constant_formula_term_is_named(capsys, tmp_path, previous):
    line = refused(capsys, "build", "--data", str(SYNTHETIC), "--out", str(previous), "-p", "ps_formula",
                   "age + I(0*age)")
    assert line == ("propensity model: term 'I(0 * age)' takes the single value 0 for all 343 patients of the "
                    "analysis sample, so its effect cannot be estimated (R reports NA) nor its balance assessed; "
                    "remove it (parameter ps_formula)")


def small_study(n: int, seed: int = 5):  # 40 analysed patients whose primary model fits
    frame = analysed(registry()).sample(n, random_state=seed).reset_index(drop=True)
    return frame


def test_forty_patients_resample_without_a_crash(tmp_path):
    """Bootstrap samples of 40 patients often lack two stenosis degrees in an arm: such replicates
    are dropped (and counted), like those whose propensity model separates."""
    data = write(small_study(40), tmp_path / "forty.csv")
    study = load_study(Parameters(data_path=str(data), bootstrap_replicates=500))
    result = run_resampling(study, progress_bar=False)
    kept = int(result.crossing_bootstrap["replicates"].iloc[0])
    assert 0 < kept <= 500
    assert np.isfinite(result.bootstrap_crossing).all()


def test_a_specification_that_cannot_be_fitted_is_a_row_with_its_reason(tmp_path):
    data = write(small_study(40), tmp_path / "forty.csv")
    study = load_study(Parameters(data_path=str(data)))
    rich = Parameters().multiverse_formula
    fits = fit_specifications(study.data, [PropensitySpec("primary", study.params.ps_covariates),
                                           PropensitySpec("rich formula", study.params.ps_covariates, rich)])
    table = propensity_specifications(fits, "ATO", 75.0)
    rich_row = table.set_index("ps_spec").loc["rich formula"]
    assert rich_row["note"].startswith("not fitted: complete or quasi-complete separation")
    assert np.isnan(rich_row["ate_low"]) and table.set_index("ps_spec").loc["primary", "note"] == ""


def test_one_center_gives_notes_not_numbers():
    frame = load_cohort(SYNTHETIC).assign(center="C01")
    study = load_study(Parameters(data_path=str(SYNTHETIC)), cohort=frame)
    center = center_sensitivity(study.data, study.weights, 75.0, outcomes=("mrs_90d", "sich"))
    assert center.table["estimate"].isna().all()
    assert (center.table["note"] == "not estimable: 1 center: a center variance needs two or more").all()
    cluster = cluster_robust(study.data, study.weights, 75.0, outcomes=("mrs_90d",))
    assert cluster["ci_lower"].isna().all() and cluster["estimate"].notna().all()
    assert (cluster["note"] == "CI not estimable: one center (clustered variance needs two or more)").all()


def test_an_outcome_nobody_has_says_so():
    frame = load_cohort(SYNTHETIC).assign(sich=np.nan)
    rows = estimate_effect(frame, "sich", None, high=frame["stenosis_pct"].to_numpy() > 75, cutoff=75)
    assert rows["estimate"].isna().all()
    assert (rows["note"] == "not estimable: no patient has a known sich").all()


# ---------------------------------------------------------- ambiguous cells are refused
def test_a_thousands_separator_in_a_comma_file(capsys, tmp_path, previous):
    frame = registry()
    frame.loc[4, "onset_to_end_min"] = "1,234"
    data = tmp_path / "registry.csv"
    frame.to_csv(data, index=False)  # pandas quotes the cell: "1,234"
    assert '"1,234"' in data.read_text()
    line = refused(capsys, "build", "--data", str(data), "--out", str(previous))
    assert line == ("registry.csv: onset_to_end_min: 1 row break the rule 'must not contain a comma (a thousands "
                    "separator or a decimal comma is ambiguous in a file with decimal points: write 1234 or 1.5)': "
                    f"row 5 ({frame.loc[4, 'patient_id']}) = '1,234'")


def test_grouped_digits_in_a_semicolon_file(capsys, tmp_path, previous):
    frame = registry()
    frame.loc[2, "onset_to_end_min"] = "1.234"
    frame.loc[3, "age"] = "71,5"  # a decimal comma, as the file's convention: fine
    data = tmp_path / "registry.csv"
    data.write_text(frame.to_csv(index=False, sep=";"))
    line = refused(capsys, "build", "--data", str(data), "--out", str(previous))
    assert line == ("registry.csv: onset_to_end_min: 1 row break the rule 'must not group digits with points "
                    "(1.234 is ambiguous in a file with decimal commas: write 1234 or 1,234)': "
                    f"row 3 ({frame.loc[2, 'patient_id']}) = '1.234'")


def test_a_duplicated_column_name(capsys, tmp_path, previous):
    text = SYNTHETIC.read_text().splitlines()
    header = text[0].split(",")
    header[-1] = "age"  # the last column renamed to a name that is already there
    data = tmp_path / "registry.csv"
    data.write_text("\n".join([",".join(header), *text[1:]]) + "\n")
    line = refused(capsys, "build", "--data", str(data), "--out", str(previous))
    assert line == (f"registry.csv: column 'age' appears 2 times in the header (columns 4 and {len(header)}; "
                    "identical apart from invisible characters counts as the same name); keep one")


def test_a_column_name_with_an_invisible_character_is_a_duplicate(tmp_path):
    frame = registry()
    frame.insert(5, "age\u200b", frame["age"])
    data = write(frame, tmp_path / "registry.csv")
    with pytest.raises(DataError, match="column 'age' appears 2 times"):
        read_registry(data)


def test_identifiers_differing_only_by_invisible_characters_are_duplicates(capsys, tmp_path, previous):
    frame = registry()
    first = frame.loc[0, "patient_id"]
    frame.loc[7, "patient_id"] = first + "\u200b"
    frame.loc[9, "patient_id"] = "\u00a0" + frame.loc[8, "patient_id"]
    data = write(frame, tmp_path / "registry.csv")
    line = refused(capsys, "build", "--data", str(data), "--out", str(previous))
    assert line.startswith("registry.csv: patient_id: 4 rows break the rule 'must be unique (duplicated patient ID; "
                           "IDs that differ only by invisible characters or spaces count as the same)': row 1 ")


def test_trailing_separators_on_data_rows_are_dropped(tmp_path):
    lines = SYNTHETIC.read_text().splitlines()
    trailing = tmp_path / "trailing.csv"
    trailing.write_text("\n".join([lines[0]] + [line + "," for line in lines[1:]]) + "\n")
    pd.testing.assert_frame_equal(load_cohort(trailing), load_cohort(SYNTHETIC))
    both = tmp_path / "both.csv"
    both.write_text("\n".join(line + ",," for line in lines) + "\n")
    pd.testing.assert_frame_equal(load_cohort(both), load_cohort(SYNTHETIC))


def test_a_row_with_a_value_beyond_the_header_is_refused_not_shifted(tmp_path):
    lines = SYNTHETIC.read_text().splitlines()
    lines[3] += ",surplus"
    data = tmp_path / "registry.csv"
    data.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"^registry.csv: row 3 has 30 fields where the header has 29"):
        load_cohort(data)


@pytest.mark.parametrize("yaml_map", ["{yes: 1, no: 0}", "{'yes': 1, 'no': 0}", "{Yes: 1, No: 0}"])
def test_column_map_codes_are_text_not_yaml_booleans(tmp_path, yaml_map):
    frame = registry()
    frame["rescue_stenting"] = frame["rescue_stenting"].map({"1": "yes", "0": "no"})
    if "Yes" in yaml_map:
        frame["rescue_stenting"] = frame["rescue_stenting"].str.capitalize()
    data = write(frame, tmp_path / "export.csv")
    (tmp_path / "map.yml").write_text(f"values:\n  rescue_stenting: {yaml_map}\n")
    mapping = read_column_map(tmp_path / "map.yml")
    assert set(mapping.values["rescue_stenting"]) == ({"Yes", "No"} if "Yes" in yaml_map else {"yes", "no"})
    pd.testing.assert_frame_equal(load_cohort(data, column_map=mapping), load_cohort(SYNTHETIC))


def test_a_yes_no_map_on_a_0_1_column_swaps_nothing(tmp_path):
    (tmp_path / "map.yml").write_text("values:\n  sex_female: {no: 1, yes: 0}\n")
    cohort = load_cohort(SYNTHETIC, column_map=tmp_path / "map.yml")
    pd.testing.assert_series_equal(cohort["sex_female"], load_cohort(SYNTHETIC)["sex_female"])
