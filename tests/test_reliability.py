"""Reliability: real registry exports (column maps, separators, encodings, Excel), the bad-input
matrix (one line, exit code 2, earlier outputs untouched), and the privacy guard."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import COHORTS, ROOT

from analysis_lib import cli
from analysis_lib.data import DataError, load_cohort, read_column_map, read_registry

SYNTHETIC = COHORTS["synthetic"]


def registry() -> pd.DataFrame:
    return pd.read_csv(SYNTHETIC, dtype=str, keep_default_na=False)


def first_id(frame: pd.DataFrame, mask) -> tuple[int, str]:
    """1-based data row and patient ID of the first row where ``mask`` holds."""
    i = int(np.flatnonzero(np.asarray(mask))[0])
    return i + 1, frame.loc[i, "patient_id"]


# ------------------------------------------------------------------ real-world exports
def test_semicolon_separated_with_decimal_commas_reads_as_the_comma_file(tmp_path):
    frame = registry()
    frame.loc[0, "age"] = "71.5"
    frame.loc[1, "stenosis_pct"] = "62.5"
    comma = tmp_path / "comma.csv"
    frame.to_csv(comma, index=False)
    european = tmp_path / "european.csv"
    european.write_text(frame.apply(lambda c: c.str.replace(".", ",", regex=False)).to_csv(index=False, sep=";"))
    raw = read_registry(european)
    assert raw.attrs["read_as"] == "UTF-8 text, semicolon-separated, decimal commas"
    assert raw.attrs["decimal"] == ","  # cells stay as written; validation reads "71,5" as 71.5
    assert raw.loc[0, "age"] == "71,5" and raw.loc[1, "stenosis_pct"] == "62,5"
    pd.testing.assert_frame_equal(load_cohort(european), load_cohort(comma))


def test_latin1_export_is_read_and_reported(tmp_path):
    frame = registry()
    frame["center"] = frame["center"].str.replace("C1", "Zürich-", regex=False)
    utf8 = tmp_path / "utf8.csv"
    frame.to_csv(utf8, index=False)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(frame.to_csv(index=False).encode("cp1252"))
    raw = read_registry(latin)
    assert raw.attrs["read_as"] == "Windows-1252 text, comma-separated"
    assert raw["center"].str.contains("Zürich-").any()
    pd.testing.assert_frame_equal(load_cohort(latin), load_cohort(utf8))


def test_excel_workbook_reads_as_the_csv(tmp_path):
    frame = pd.read_csv(SYNTHETIC)  # numbers as numbers, as a spreadsheet holds them
    book = tmp_path / "registry.xlsx"
    frame.to_excel(book, index=False)
    raw = read_registry(book)
    assert raw.attrs["read_as"] == "Excel workbook (first sheet)"
    assert raw.loc[0, "age"] == registry().loc[0, "age"]  # 72, not 72.0
    pd.testing.assert_frame_equal(load_cohort(book), load_cohort(SYNTHETIC))


def test_bom_trailing_blank_rows_and_tabs(tmp_path):
    tabbed = tmp_path / "export.tsv"
    tabbed.write_bytes(b"\xef\xbb\xbf" + registry().to_csv(index=False, sep="\t").encode() + b"\t\t\n\n\n")
    raw = read_registry(tabbed)
    assert raw.attrs["read_as"] == "UTF-8 text, tab-separated" and len(raw) == 344
    pd.testing.assert_frame_equal(load_cohort(tabbed), load_cohort(SYNTHETIC))


COLUMN_MAP = """\
columns:
  PatientID: patient_id
  Site: center
  Stent: rescue_stenting
  Occlusion: m1_occlusion
values:
  rescue_stenting: {"yes": 1, "no": 0}
  m1_occlusion: {M1: 1, M2: 0}
missing: [-99, unknown]
"""


def export_with_registry_names(tmp_path) -> Path:
    frame = registry().rename(columns={"patient_id": "PatientID", "center": "Site",
                                       "rescue_stenting": "Stent", "m1_occlusion": "Occlusion"})
    frame["Stent"] = frame["Stent"].map({"1": "yes", "0": "no"})
    frame["Occlusion"] = frame["Occlusion"].map({"1": "M1", "0": "M2", "": "unknown"})
    frame["nihss"] = frame["nihss"].replace("", "-99")
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False)
    (tmp_path / "map.yml").write_text(COLUMN_MAP)
    return path


def test_column_map_renames_and_recodes(tmp_path):
    export = export_with_registry_names(tmp_path)
    mapped = load_cohort(export, column_map=tmp_path / "map.yml")
    pd.testing.assert_frame_equal(mapped, load_cohort(SYNTHETIC))


def test_validate_command_with_a_column_map(tmp_path, capsys):
    export = export_with_registry_names(tmp_path)
    assert cli.main(["validate", "--data", str(export), "--columns", str(tmp_path / "map.yml")]) == 0
    out = capsys.readouterr().out
    assert out == (f"{export}: valid (344 patients, 32 columns; read as UTF-8 text, comma-separated, "
                   "columns mapped by map.yml)\n")
    assert cli.main(["validate", "--data", str(export)]) == 2  # without the map: the names are wrong
    err = capsys.readouterr().err.splitlines()
    assert "error: export.csv: patient_id: required column is missing" in err[0]
    assert err[-1] == f"5 problem(s) found in {export}"  # names, codes and the -99 of the 3 unknown NIHSS


def test_column_map_problems_are_listed_at_once(tmp_path):
    (tmp_path / "map.yml").write_text("columns: {PatID: patient_idd, Site: center, Centre: center}\n"
                                      "values: {stent: {yes: 1}}\nrecode: {}\n")
    with pytest.raises(DataError) as err:
        read_column_map(tmp_path / "map.yml")
    assert err.value.problems == [
        "map.yml: unknown key(s) recode; valid keys: columns, values, missing",
        "map.yml: columns: 'PatID' maps to 'patient_idd', not a column of the data dictionary "
        "(did you mean 'patient_id'?)",
        "map.yml: columns: several registry columns map to 'center'",
        "map.yml: values: 'stent' is not a column of the data dictionary",
    ]


# ------------------------------------------------------------------ the bad-input matrix
ROW = 7  # an MT+RS patient alive at 90 days (mRS 3): a changed mRS breaks no other rule


def _set(column, value, where=lambda f: f.index == ROW):
    def change(frame):
        frame.loc[where(frame), column] = value
        return frame
    return change


def _row(frame, i=ROW):
    return f"row {i + 1} ({frame.loc[i, 'patient_id']})"


RANGED = [("age", "17", "must be from 18 to 110"), ("age", "111", "must be from 18 to 110"),
          ("premorbid_mrs", "6", "must be from 0 to 5"), ("nihss", "43", "must be from 0 to 42"),
          ("aspects", "-1", "must be from 0 to 10"), ("onset_to_end_min", "10081", "must be from 0 to 10080"),
          ("stenosis_pct", "100.5", "must be from 0 to 100"), ("mrs_90d", "7", "must be from 0 to 6")]
BINARY = ["sex_female", "hypertension", "ivt", "mtici_2b3_after_mt", "final_mtici_2b3", "sich"]

# (case id, change of the registry frame, expected first error line after "error: synthetic.csv: ")
DATA_CASES = [
    *[(f"range-{c}-{v}", _set(c, v), f"{c}: 1 row break the rule '{rule}': {{row}} = '{v}'") for c, v, rule in RANGED],
    *[(f"binary-{c}", _set(c, "2"), f"{c}: 1 row break the rule 'must be 0 or 1': {{row}} = '2'") for c in BINARY],
    ("treatment-not-0-1", _set("rescue_stenting", "yes"),
     "rescue_stenting: 1 row break the rule 'must be a whole number': {row} = 'yes'"),
    ("type-age-text", _set("age", "seventy"), "age: 1 row break the rule 'must be a number': {row} = 'seventy'"),
    ("type-nihss-decimal", _set("nihss", "7.5"), "nihss: 1 row break the rule 'must be a whole number': {row} = '7.5'"),
    ("required-stenosis-empty", _set("stenosis_pct", ""), "stenosis_pct: 1 row break the rule 'must not be empty': {row} = ''"),
    ("missing-column", lambda f: f.drop(columns=["nihss"]), "nihss: required column is missing (data dictionary: Admission NIHSS score)"),
    ("misspelled-column", lambda f: f.rename(columns={"aspects": "aspect"}),
     "aspects: required column is missing; found 'aspect' - rename it (data dictionary: Baseline ASPECTS)"),
    ("duplicate-id", _set("patient_id", "SYN-0001", lambda f: f.index == 5),
     "patient_id: 2 rows break the rule 'must be unique (duplicated patient ID)': row 1 (SYN-0001) = 'SYN-0001', row 6 (SYN-0001) = 'SYN-0001'"),
    ("arm-without-patients", lambda f: f.assign(rescue_stenting="1", antiplatelet_regimen=f["antiplatelet_regimen"].replace("", "none")),
     "rescue_stenting: no patient in the MT only (0) arm; both arms are needed"),
    ("death-inconsistent", _set("death_90d", "1", lambda f: f.index == int(np.flatnonzero(f["mrs_90d"] == "2")[0])),
     "death_90d: 1 row break the rule 'must equal (mrs_90d == 6) where mrs_90d is known': {row2} = '1'"),
]


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def build_fails(capsys, data: Path, out: Path, *extra: str) -> list[str]:
    before = snapshot(out)
    siblings = sorted(p.name for p in out.parent.iterdir())
    code = cli.main(["build", "--data", str(data), "--out", str(out), *extra])
    captured = capsys.readouterr()
    assert code == 2, captured
    assert "Traceback" not in captured.err and captured.out == ""
    assert snapshot(out) == before  # earlier outputs untouched
    assert sorted(p.name for p in out.parent.iterdir()) == siblings  # and nothing left beside them
    lines = captured.err.splitlines()
    assert lines and all(line.startswith("error: ") for line in lines)
    return [line[len("error: "):] for line in lines]


@pytest.mark.parametrize("case, change, message", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_data_matrix(tmp_path, capsys, previous, case, change, message):
    frame = change(registry())
    data = tmp_path / "synthetic.csv"
    frame.to_csv(data, index=False)
    row2 = ""
    if case == "death-inconsistent":
        row2 = _row(frame, int(np.flatnonzero(frame["mrs_90d"] == "2")[0]))
    expected = "synthetic.csv: " + message.format(row=_row(frame), row2=row2)
    assert build_fails(capsys, data, previous) == [expected]


FILE_CASES = [
    ("empty-file", b"", "empty.csv: the file is empty (expected a header row and one row per patient)"),
    ("header-only", b"patient_id,center,rescue_stenting\n", "empty.csv: the file has a header row but no patient rows"),
    ("blank-lines-only", b"\n\n  \n", "empty.csv: the file is empty (expected a header row and one row per patient)"),
    ("binary-file", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "empty.csv: not a text CSV file (binary content; export the registry as UTF-8 CSV)"),
    ("legacy-xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "empty.csv: legacy Excel .xls workbook; save it as .xlsx or as CSV (UTF-8)"),
    ("corrupt-xlsx", b"PK\x03\x04 this is not really a zip archive",
     "empty.csv: not a readable Excel workbook (BadZipFile: File is not a zip file)"),
    ("ragged-csv", b"patient_id,center\nA,1\nB,2,3,4\n",
     "empty.csv: row 2 has 4 fields where the header has 2 (a ragged comma-separated file: is a separator inside "
     "an unquoted cell?)"),
    ("short-row", b"patient_id,center,age\nA,1,70\nB,2\n",
     "empty.csv: row 2 has 2 fields where the header has 3 (a ragged comma-separated file: is a separator inside "
     "an unquoted cell?)"),
]


@pytest.mark.parametrize("case, content, message", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_unreadable_file_matrix(tmp_path, capsys, previous, case, content, message):
    data = tmp_path / "empty.csv"
    data.write_bytes(content)
    assert build_fails(capsys, data, previous) == [message]


def test_missing_file(tmp_path, capsys, previous):
    assert build_fails(capsys, tmp_path / "nope.csv", previous) == [f"data file not found: {tmp_path / 'nope.csv'}"]


def test_complete_separation_in_the_propensity_model(tmp_path, capsys, previous):
    frame = registry()
    frame["ivt"] = frame["rescue_stenting"]  # a covariate that predicts the treatment perfectly
    data = tmp_path / "separated.csv"
    frame.to_csv(data, index=False)
    lines = build_fails(capsys, data, previous, "-p", "ps_covariates", "age,ivt")  # 343 of 344 with a known age
    assert lines == ["propensity model: complete or quasi-complete separation (fitted propensity 0 or 1 for 343 "
                     "patients, e.g. rows 1, 2, 3, 4, 5): 'ivt' alone separates the arms; remove or recode the "
                     "covariate (parameter ps_covariates)"]


def test_no_eligible_cutoff(capsys, previous):
    lines = build_fails(capsys, SYNTHETIC, previous, "-p", "cutoff", "auto", "-p", "min_arm_size", "200")
    assert lines == ["cutoff sweep: no eligible cutoff between 40 and 90: every candidate leaves a subgroup-arm "
                     "with fewer than 200 patients; lower min_arm_size, widen the range, or fix the cutoff "
                     "(parameter cutoff)"]


@pytest.mark.parametrize("args, message", [
    (("-p", "cutoff", "150"), "parameter 'cutoff': 150 is outside the open interval 0 to 100 (a stenosis "
                               "percentage; use 'auto' to take the cutoff selected by the sweep)"),
    (("-p", "estimand", "XYZ"), "parameter 'estimand': 'XYZ' is not one of ATO, ATE, ATT, ATM"),
    (("-p", "hc_typ", "HC3"), "unknown parameter 'hc_typ' (did you mean 'hc_type'?); valid parameters: "),
    (("-p", "min_cell_size", "-1"), "parameter 'min_cell_size': 0 (no masking) or more, got -1"),
    (("--columns", "nowhere.yml"), f"column map not found: {ROOT / 'nowhere.yml'}"),
])
def test_bad_parameters_and_column_maps(capsys, previous, args, message):
    lines = build_fails(capsys, SYNTHETIC, previous, *args)
    assert len(lines) == 1 and lines[0].startswith(message)


def test_a_mapped_column_absent_from_the_file(tmp_path, capsys, previous):
    (tmp_path / "map.yml").write_text("columns: {Stent: rescue_stenting}\n")
    lines = build_fails(capsys, SYNTHETIC, previous, "--columns", str(tmp_path / "map.yml"))
    assert lines == ["synthetic_cohort.csv: column 'Stent' of the column map (map.yml, mapped to "
                     "'rescue_stenting') is not in the file"]


# ------------------------------------------------------------------ privacy guard
def test_tracked_data_are_synthetic_or_published_aggregates():
    tracked = subprocess.run(["git", "ls-files", "data"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    allowed = re.compile(r"^data/(README\.md|synthetic_cohort\.csv|published/(README\.md|[a-z0-9_]+_published\.csv))$")
    assert tracked and all(allowed.match(p) for p in tracked), tracked
    assert registry()["patient_id"].str.match(r"^SYN-\d{4}$").all()  # synthetic identifiers only


def test_committed_notebooks_hold_no_patient_rows():
    ids = set(registry()["patient_id"])
    pattern = re.compile(r"SYN-\d{4}")
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            for output in cell.get("outputs", []):
                text = json.dumps(output.get("data", {}).get("text/plain", "")) + json.dumps(output.get("text", ""))
                html = json.dumps(output.get("data", {}).get("text/html", ""))
                assert not (set(pattern.findall(text + html)) & ids), f"{path.name}: a patient identifier in an output"
                # a patient-level table would show its identifier or its propensity/weight columns
                for column in ("patient_id", "propensity", "weight"):
                    assert f"<th>{column}</th>" not in html, f"{path.name}: a table with a {column} column"


def test_real_files_are_ignored_by_git():
    probe = ["data/registry.csv", "data/export.xlsx", "outputs/private/weights.csv", "data/published/raw.csv"]
    done = subprocess.run(["git", "check-ignore", *probe], cwd=ROOT, capture_output=True, text=True)
    assert done.stdout.split() == probe


def test_supplement_and_notebooks_of_a_build_print_no_identifier(built):
    pattern = re.compile(r"SYN-\d{4}")
    assert not pattern.search((built.out / "supplement.html").read_text(encoding="utf-8"))
    for path in (built.out / "notebooks").glob("*.ipynb"):
        assert not pattern.search(path.read_text()), path.name
    for path in (built.out / "tables").iterdir():  # shared with coauthors: aggregates only
        assert not pattern.search(path.read_text(errors="ignore")), path.name
    assert pattern.search((built.out / "private" / "weights.csv").read_text())  # the patient-level file, for audit


def test_small_cells_are_masked_on_request():
    from conftest import sample

    from analysis_lib.descriptives import mask_small_cells, table1
    from analysis_lib.tables import format_table1

    t1 = table1(sample("synthetic"))
    masked = mask_small_cells(t1, 5)
    small = (t1["mt_only_n"] >= 1) & (t1["mt_only_n"] < 5)
    small_rs = (t1["mt_rs_n"] >= 1) & (t1["mt_rs_n"] < 5)
    assert small.sum() + small_rs.sum() >= 2  # the synthetic cohort has such cells
    assert masked.loc[small_rs, ["mt_rs_n", "mt_rs_pct"]].isna().all().all()
    assert masked.loc[small, ["mt_only_n", "mt_only_pct"]].isna().all().all()
    assert masked.loc[~small, "mt_only_n"].equals(t1.loc[~small, "mt_only_n"])
    assert masked["mt_only_total"].equals(t1["mt_only_total"])
    shown = format_table1(masked, sections=False)
    row = int(np.flatnonzero(small)[0])
    assert shown.iloc[row, 1] == f"<5/{int(t1.loc[row, 'mt_only_total'])}"
    assert mask_small_cells(t1, 0) is t1


def test_ctrl_c_mid_build_leaves_earlier_outputs_and_says_where_the_partial_run_is(previous):
    """Ctrl-C in a terminal interrupts the whole process group: the build, its workers, the kernels."""
    import os
    import signal
    import sys

    before = snapshot(previous)
    empty_store = {**os.environ, "ANALYSIS_LIB_CACHE": str(previous.parent / "store")}  # every notebook runs
    build = subprocess.Popen([sys.executable, "-m", "analysis_lib", "build", "--data", str(SYNTHETIC),
                              "--out", str(previous)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True, env=empty_store)
    assert build.stdout.readline().startswith("running 8 notebooks")
    work = previous.parent / ".outputs.partial"
    import time

    deadline = time.monotonic() + 60
    while not list((work / "notebooks").glob("*.ipynb")) and time.monotonic() < deadline:
        time.sleep(0.2)  # until the first notebook is being written
    os.killpg(build.pid, signal.SIGINT)
    _, err = build.communicate(timeout=120)
    assert build.returncode == 130
    assert err.strip() == (f"error: build interrupted - previous outputs in {previous} untouched; "
                           f"partial run kept in {previous.parent / 'outputs.failed'}")
    assert snapshot(previous) == before
    assert not work.exists() and (previous.parent / "outputs.failed" / "notebooks").is_dir()
