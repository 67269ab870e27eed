"""Reading, validation, derived outcomes and the analysis sample (ANALYSIS.md §1).

The registry file is read as text and checked against ``data_dictionary.csv`` before any
number is computed. Every violation becomes one line naming the column, up to five offending
rows (1-based data rows, with the patient ID) and the rule, so that a data manager can fix the
export in one pass. No statistics live here.
"""

from __future__ import annotations

import csv
import difflib
import io
import mmap
import os
import pickle
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

TREATMENT = "rescue_stenting"
MODIFIER = "stenosis_pct"
ID = "patient_id"
CENTER = "center"
OUTCOMES: tuple[str, ...] = (
    "mrs_90d",
    "mrs_0_2",
    "mrs_0_3",
    "final_mtici_2b3",
    "reocclusion",
    "sich",
    "death_90d",
)
BINARY_OUTCOMES: tuple[str, ...] = OUTCOMES[1:]
# Utility weights of the mRS (Chaisinanunkul et al., Stroke 2015; ANALYSIS.md §13): a secondary
# continuous outcome of Table 2, analysed as the mRS (weighted linear model, difference in means).
MRS_UTILITY: dict[int, float] = {0: 1.0, 1: 0.91, 2: 0.76, 3: 0.65, 4: 0.33, 5: 0.0, 6: 0.0}
TABLE2_OUTCOMES: tuple[str, ...] = (*OUTCOMES, "utility_mrs")
NA_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "."})  # not "none": a regimen value
MAX_LISTED_ROWS = 5


class DataError(ValueError):
    """The input data break the data dictionary. ``problems`` holds one line per violation."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class ColumnSpec:
    """One row of the data dictionary."""

    name: str
    type: str  # "string", "integer" or "number"
    allowed: str
    missing_allowed: bool
    role: str
    description: str

    @property
    def value_range(self) -> tuple[float, float] | None:
        m = re.fullmatch(r"\s*(-?[\d.]+)\s+to\s+(-?[\d.]+)\s*", self.allowed)
        return (float(m.group(1)), float(m.group(2))) if m else None

    @property
    def value_set(self) -> frozenset | None:
        m = re.fullmatch(r"\s*(\d+)\s+or\s+(\d+)\s*", self.allowed)
        if m:
            return frozenset({float(m.group(1)), float(m.group(2))})
        if self.type == "string" and "," in self.allowed:
            return frozenset(v.strip() for v in self.allowed.split(","))
        return None

    @property
    def rule(self) -> str:
        """The allowed values as a phrase, for messages."""
        rng = self.value_range
        if rng is not None:
            return f"{self.type} from {rng[0]:g} to {rng[1]:g}"
        return f"one of: {self.allowed}" if self.type == "string" else f"{self.allowed}"


def load_dictionary() -> dict[str, ColumnSpec]:
    """The data dictionary shipped with the package, keyed by column name (file order)."""
    return dict(_dictionary())


@lru_cache(maxsize=1)
def _dictionary() -> dict[str, ColumnSpec]:
    text = resources.files("analysis_lib").joinpath("data_dictionary.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    return {
        r["column"]: ColumnSpec(
            name=r["column"],
            type=r["type"],
            allowed=r["allowed"],
            missing_allowed=r["missing_allowed"].strip() == "yes",
            role=r["role"],
            description=r["description"],
        )
        for r in rows
    }


# ------------------------------------------------------------------------------ reading
EXCEL_SUFFIXES = (".xlsx", ".xlsm")


@dataclass(frozen=True)
class ColumnMap:
    """How a registry export's columns and codes map onto the data dictionary (``--columns``).

    ``columns`` renames registry columns to dictionary names; ``values`` recodes cells of a
    dictionary column (after renaming), e.g. ``{"rescue_stenting": {"yes": "1", "no": "0"}}``;
    ``missing`` lists extra codes that mean a missing value (e.g. ``"-99"``, ``"unknown"``).
    Codes are compared as trimmed text, case-sensitively.
    """

    columns: dict[str, str]
    values: dict[str, dict[str, str]]
    missing: tuple[str, ...] = ()
    source: str = ""


def read_column_map(path: str | Path) -> ColumnMap:
    """Read a column map (YAML with keys ``columns``, ``values``, ``missing``; every key and code
    read as text); every problem found is reported at once as :class:`DataError`."""
    path = Path(path)
    if not path.exists():
        raise DataError([f"column map not found: {path}"])
    if not path.is_file():
        raise DataError([f"column map is a folder, not a YAML file: {path}"])
    try:
        spec = yaml.load(path.read_text(encoding="utf-8"), Loader=_TextLoader) or {}
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as err:
        raise DataError([f"{path.name}: not a valid YAML column map ({_first_line(err)})"]) from None
    problems = []
    if not isinstance(spec, dict):
        raise DataError([f"{path.name}: expected a mapping with keys columns, values, missing"])
    unknown = [str(k) for k in spec if k not in ("columns", "values", "missing")]
    if unknown:
        problems.append(f"{path.name}: unknown key(s) {', '.join(unknown)}; valid keys: columns, values, missing")
    dictionary = load_dictionary()
    columns = spec.get("columns") or {}
    values = spec.get("values") or {}
    missing = spec.get("missing") or []
    if not isinstance(columns, dict):
        problems.append(f"{path.name}: 'columns' must map registry column names to dictionary names")
        columns = {}
    if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
        problems.append(f"{path.name}: 'values' must map a dictionary column to a mapping of codes, "
                        "e.g. rescue_stenting: {yes: 1, no: 0}")
        values = {}
    if not isinstance(missing, list):
        problems.append(f"{path.name}: 'missing' must be a list of codes, e.g. [-99, unknown]")
        missing = []
    for source, target in columns.items():
        if str(target) not in dictionary:
            close = difflib.get_close_matches(str(target), list(dictionary), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"{path.name}: columns: '{source}' maps to '{target}', not a column of the data "
                            f"dictionary{hint}")
    targets = [str(t) for t in columns.values()]
    for target in sorted({t for t in targets if targets.count(t) > 1}):
        problems.append(f"{path.name}: columns: several registry columns map to '{target}'")
    for target in values:
        if str(target) not in dictionary:
            problems.append(f"{path.name}: values: '{target}' is not a column of the data dictionary")
    if problems:
        raise DataError(problems)

    def text(v) -> str:
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return "" if v is None else str(v).strip()

    return ColumnMap(columns={str(k).strip(): str(v) for k, v in columns.items()},
                     values={str(c): {text(k): text(v) for k, v in codes.items()} for c, codes in values.items()},
                     missing=tuple(text(m) for m in missing), source=path.name)


class _TextLoader(yaml.SafeLoader):
    """YAML without booleans: in a column map ``yes``, ``no``, ``on``, ``off``, ``true`` and
    ``false`` are codes as written in the registry, never True/False (YAML 1.1 would turn
    ``{yes: 1, no: 0}`` into ``{True: 1, False: 0}`` and the cells would not be recoded)."""


_TextLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def apply_column_map(frame: pd.DataFrame, mapping: ColumnMap, name: str = "") -> pd.DataFrame:
    """Rename, recode and blank the extra missing codes of a text frame (:func:`read_registry`).

    A mapped registry column that the file lacks is an error naming it; codes that the map
    does not list are left as they are, so that validation reports them with their rows."""
    prefix = f"{name}: " if name else ""
    absent = [c for c in mapping.columns if c not in frame.columns]
    if absent:
        raise DataError([f"{prefix}column '{c}' of the column map ({mapping.source}, mapped to "
                         f"'{mapping.columns[c]}') is not in the file" for c in absent])
    clash = [t for s, t in mapping.columns.items() if t in frame.columns and t != s and t not in mapping.columns]
    if clash:
        raise DataError([f"{prefix}column '{t}' is in the file and is also the target of the column map "
                         f"({mapping.source}); map or drop one of them" for t in clash])
    out = frame.rename(columns=mapping.columns)
    for column, codes in mapping.values.items():
        if column in out.columns:
            trimmed = out[column].str.strip()
            out[column] = trimmed.map(codes).where(trimmed.isin(list(codes)), out[column])
    if mapping.missing:
        out = out.apply(lambda col: col.where(~col.str.strip().isin(mapping.missing), ""))
    return out


def _decode(raw: bytes) -> tuple[str, str]:
    """Text of a CSV export and its encoding: UTF-8 (with or without byte-order mark), else
    Windows-1252 / Latin-1, the encodings of spreadsheet exports on European systems. Only the
    text columns (center, regimen) can hold non-ASCII characters, and they are reported as read."""
    try:
        return raw.decode("utf-8-sig"), "UTF-8"
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252"), "Windows-1252"
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "Latin-1"


def _delimiter(header: str) -> str:
    """The separator of the header row: comma, semicolon (European spreadsheets) or tab."""
    counts = {sep: header.count(sep) for sep in (",", ";", "\t")}
    best = max(counts, key=lambda sep: (counts[sep], sep == ","))
    return best if counts[best] else ","


_DECIMAL_COMMA = re.compile(r"^\s*-?\d+,\d+\s*$")


def read_registry(path: str | Path, columns: ColumnMap | None = None) -> pd.DataFrame:
    """Read a registry export as text (cells stay strings so that validation can quote them).

    Accepted: CSV separated by commas, semicolons (then decimal commas such as ``1,5`` mean
    ``1.5``: ``frame.attrs["decimal"]``, applied by :func:`validate`) or tabs; UTF-8 with or
    without a byte-order mark, or Windows-1252/Latin-1; fully blank rows and trailing separators
    dropped; Excel ``.xlsx``/``.xlsm`` (first sheet, read with openpyxl). Header names are
    cleaned of invisible characters (:func:`clean_text`); a duplicated name, a ragged row or an
    unnamed column with values are refused. How the file was read is in ``frame.attrs["read_as"]``. ``columns`` maps the
    registry's names and codes onto the dictionary (:class:`ColumnMap`). Unreadable files raise
    :class:`DataError`.
    """
    path = Path(path)
    if not path.exists():
        raise DataError([f"data file not found: {path}"])
    if path.is_dir():
        raise DataError([f"data path is a folder, not a CSV file: {path}"])
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError([f"{path.name}: the file is empty (expected a header row and one row per patient)"])
    suffix = path.suffix.lower()
    decimal = "."
    if suffix in EXCEL_SUFFIXES or raw[:4] == b"PK\x03\x04":
        frame, read_as = _read_excel(path), "Excel workbook (first sheet)"
    elif suffix == ".xls" or raw[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise DataError([f"{path.name}: legacy Excel .xls workbook; save it as .xlsx or as CSV (UTF-8)"])
    else:
        if b"\x00" in raw[:4096]:
            raise DataError([f"{path.name}: not a text CSV file (binary content; export the registry as UTF-8 CSV)"])
        text, encoding = _decode(raw)
        sep = _delimiter(text.lstrip("\ufeff").split("\n", 1)[0])
        frame = _read_delimited(text.lstrip("\ufeff"), sep, path.name)
        decimal = "," if sep == ";" else "."
        read_as = f"{encoding} text, {_SEP_NAMES[sep]}-separated" + (", decimal commas" if sep == ";" else "")
    frame.columns = [clean_text(c) for c in frame.columns]
    _refuse_duplicate_columns(list(frame.columns), path.name)
    frame = _drop_unnamed_blank_columns(frame, path.name)
    # Drop rows in which every cell is blank (trailing separators in spreadsheet exports).
    blank = frame.apply(lambda col: col.str.strip().eq("")).all(axis=1)
    frame = frame.loc[~blank].reset_index(drop=True)
    if frame.empty:
        raise DataError([f"{path.name}: the file has a header row but no patient rows"])
    if columns is not None:
        frame = apply_column_map(frame, columns, path.name)
        read_as += f", columns mapped by {columns.source}"
    frame.attrs["read_as"] = read_as
    frame.attrs["decimal"] = decimal
    return frame


def clean_text(value) -> str:
    """A header or identifier as a reader sees it: Unicode-normalised (NFKC, so that a
    non-breaking space is a space), invisible format characters (zero-width spaces and joiners,
    byte-order marks, direction marks) removed, surrounding white space stripped."""
    text = unicodedata.normalize("NFKC", str(value))
    if not text.isascii():
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return text.strip()


def _and(items: list) -> str:
    words = [str(i) for i in items]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _drop_unnamed_blank_columns(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Columns without a header name: dropped when empty (spreadsheet residue), refused otherwise."""
    unnamed = [i for i, c in enumerate(frame.columns) if not c]
    for i in unnamed:
        filled = np.flatnonzero(frame.iloc[:, i].astype(str).str.strip().ne("").to_numpy())
        if filled.size:
            raise DataError([f"{name}: column {i + 1} has no name in the header but holds values (rows "
                             f"{', '.join(str(r + 1) for r in filled[:MAX_LISTED_ROWS])}); name it or delete it"])
    keep = [i for i in range(frame.shape[1]) if i not in unnamed]
    return frame.iloc[:, keep] if unnamed else frame


def _refuse_duplicate_columns(header: list[str], name: str) -> None:
    seen: dict[str, list[int]] = {}
    for i, column in enumerate(header):
        if column:
            seen.setdefault(column, []).append(i + 1)
    problems = [f"{name}: column '{c}' appears {len(at)} times in the header (columns {_and(at)}; "
                "identical apart from invisible characters counts as the same name); keep one"
                for c, at in seen.items() if len(at) > 1]
    if problems:
        raise DataError(problems)


def _read_delimited(text: str, sep: str, name: str) -> pd.DataFrame:
    """Cells of a delimited text as strings. Trailing separators (empty trailing fields, on the
    header or on data rows) are dropped; a row with more or fewer fields than the header is
    refused with its number, never shifted into other columns or truncated."""
    rows = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=sep)
            if any(cell.strip() for cell in row)]
    if not rows:
        raise DataError([f"{name}: the file is empty (expected a header row and one row per patient)"])
    header = rows[0]
    while header and not header[-1].strip():
        header = header[:-1]
    width = len(header)
    body = []
    for number, row in enumerate(rows[1:], start=1):
        while len(row) > width and not row[-1].strip():
            row = row[:-1]
        if len(row) != width:
            raise DataError([f"{name}: row {number} has {len(row)} fields where the header has {width} (a ragged "
                             f"{_SEP_NAMES[sep]}-separated file: is a separator inside an unquoted cell?)"])
        body.append(row)
    return pd.DataFrame(body, columns=header, dtype=object) if body else pd.DataFrame(columns=header, dtype=object)


_SEP_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}


def _read_excel(path: Path) -> pd.DataFrame:
    """The first sheet of a workbook as text cells (numbers written without a spurious ``.0``)."""
    try:  # header=None: pandas would rename a duplicated header ("age", "age.1")
        sheet = pd.read_excel(path, sheet_name=0, dtype=object, engine="openpyxl", header=None)
    except Exception as err:  # openpyxl raises many types for damaged files; all mean the same here
        raise DataError([f"{path.name}: not a readable Excel workbook ({type(err).__name__}: {_first_line(err)})"]) from None

    def cell(v) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)

    if sheet.empty:
        return pd.DataFrame()
    frame = sheet.iloc[1:].apply(lambda col: col.map(cell)).astype(object).reset_index(drop=True)
    frame.columns = [cell(v) for v in sheet.iloc[0]]
    return frame


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


# ---------------------------------------------------------------------------- validation
def validate(raw: pd.DataFrame, dictionary: dict[str, ColumnSpec] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Check a text frame against the data dictionary.

    Returns the typed frame (numbers as float64 with NaN for missing, strings as object) and
    the list of problems, one line each. An empty list means the data are valid.
    """
    dictionary = dictionary or load_dictionary()
    problems = _missing_columns(raw, dictionary)
    dup_cols = sorted({c for c in raw.columns if list(raw.columns).count(c) > 1})
    problems += [f"{c}: the column appears more than once in the header" for c in dup_cols]
    if dup_cols:
        return raw, problems
    ids = raw[ID].astype(str).str.strip() if ID in raw.columns else None
    typed = pd.DataFrame(index=raw.index)
    for name in raw.columns:
        spec = dictionary.get(name)
        typed[name] = raw[name] if spec is None else _typed_column(raw, spec, ids, raw.attrs.get("decimal", "."),
                                                                     problems)
    _check_rows(raw, typed, ids, problems)
    return typed, problems


def _missing_columns(raw: pd.DataFrame, dictionary: dict[str, ColumnSpec]) -> list[str]:
    """One line per required column the file lacks, with the likely misspelling it holds."""
    problems = []
    for spec in dictionary.values():
        if spec.name in raw.columns or spec.name == "death_90d":  # derived from mrs_90d when absent (§1)
            continue
        close = difflib.get_close_matches(spec.name, [c for c in raw.columns if c not in dictionary], n=1, cutoff=0.6)
        if not close:
            close = [c for c in raw.columns if c.lower() == spec.name.lower()]
        hint = f"; found '{close[0]}' - rename it" if close else ""
        problems.append(f"{spec.name}: required column is missing{hint} (data dictionary: {spec.description})")
    return problems


def _typed_column(raw: pd.DataFrame, spec: ColumnSpec, ids: pd.Series | None, decimal: str,
                  problems: list[str]) -> pd.Series:
    """A column of the dictionary as typed values, its rule violations appended to ``problems``."""
    name = spec.name
    text = raw[name].astype(str).str.strip()
    missing = text.str.lower().isin(NA_TOKENS)
    if spec.type == "string":
        for mask, rule in column_rules(spec, text, missing):
            _add(problems, name, mask, ids, raw[name], rule)
        return text.where(~missing, None).astype(object)
    numbers, ambiguous = _parse_numbers(text, missing, decimal)
    unparsed = ~missing & ~ambiguous & numbers.isna()
    rules = column_rules(spec, numbers, missing | ambiguous | unparsed)
    if not spec.missing_allowed:  # the first rule: reported on the empty cells, before the unreadable ones
        _add(problems, name, missing, ids, raw[name], rules.pop(0)[1])
    _add(problems, name, ambiguous, ids, raw[name], AMBIGUOUS_RULE[decimal])
    _add(problems, name, unparsed, ids, raw[name], f"must be {'a whole number' if spec.type == 'integer' else 'a number'}")
    for mask, rule in rules:
        _add(problems, name, mask, ids, raw[name], rule)
    return numbers.astype("float64")


# The data rules, one set for both readers: :func:`validate` reports every row that breaks one,
# :func:`_fast_load` only accepts a file that breaks none.
def column_rules(spec: ColumnSpec, values: pd.Series, missing: pd.Series) -> list[tuple[pd.Series, str]]:
    """The data dictionary's rules of one column as ``(rows that break it, rule)`` pairs, on its
    typed values (stripped text, or numbers) and its missing cells."""
    rules = []
    if not spec.missing_allowed:
        rules.append((missing, "must not be empty"))
    known = ~missing
    if spec.type == "string":
        if spec.value_set is not None:
            rules.append((known & ~values.isin(spec.value_set), f"must be {spec.rule}"))
        return rules
    if spec.type == "integer":
        rules.append((known & (values != np.floor(values)), "must be a whole number"))
    rng, allowed = spec.value_range, spec.value_set
    if rng is not None:
        rules.append((known & ((values < rng[0]) | (values > rng[1])), f"must be from {rng[0]:g} to {rng[1]:g}"))
    elif allowed is not None:
        rules.append((known & ~values.isin(allowed), f"must be {spec.allowed}"))
    return rules


def row_rules(typed: pd.DataFrame, ids: pd.Series | None) -> list[tuple[str, pd.Series, str]]:
    """The rules across columns and rows as ``(column, rows that break it, rule)``: unique IDs
    (compared by :func:`id_keys`), death consistent with the mRS, an antiplatelet regimen only
    for stented patients."""
    rules = []
    if ids is not None:
        keys = id_keys(ids)
        if pd.unique(keys.to_numpy()).size == len(keys):  # every ID distinct: 3 times faster than duplicated()
            dup = pd.Series(False, index=keys.index)
        else:
            dup = keys.duplicated(keep=False) & keys.ne("")
        # which message: only asked when there are duplicates (a second pass over every ID)
        cleaned = dup.any() and (keys != ids.astype(str).str.strip()).any()
        rules.append((ID, dup, "must be unique (duplicated patient ID; IDs that differ only by invisible "
                      "characters or spaces count as the same)" if cleaned else "must be unique (duplicated patient ID)"))
    if "death_90d" in typed.columns and "mrs_90d" in typed.columns:
        both = typed["death_90d"].notna() & typed["mrs_90d"].notna()
        rules.append(("death_90d", both & (typed["death_90d"] != (typed["mrs_90d"] == 6).astype(float)),
                      "must equal (mrs_90d == 6) where mrs_90d is known"))
    if "antiplatelet_regimen" in typed.columns and TREATMENT in typed.columns:
        rules.append(("antiplatelet_regimen", typed["antiplatelet_regimen"].notna() & (typed[TREATMENT] == 0),
                      "must be empty for MT-only patients (rescue_stenting = 0)"))
    return rules


def missing_arms(typed: pd.DataFrame) -> list[str]:
    """One line per treatment arm without a patient (both arms are needed)."""
    counts = typed[TREATMENT].value_counts()
    return [f"{TREATMENT}: no patient in the {label} arm; both arms are needed"
            for arm, label in ((1.0, "MT+RS (1)"), (0.0, "MT only (0)")) if counts.get(arm, 0) == 0]


def _check_rows(raw: pd.DataFrame, typed: pd.DataFrame, ids: pd.Series | None, problems: list[str]) -> None:
    """The rules across columns and rows (:func:`row_rules`, :func:`missing_arms`)."""
    for column, mask, rule in row_rules(typed, raw[ID] if ID in raw.columns else None):
        _add(problems, column, mask, ids, raw[column], rule)
    if TREATMENT in typed.columns and not any(p.startswith(TREATMENT) for p in problems):
        problems += missing_arms(typed)


_DOT_THOUSANDS = r"^[+-]?\d{1,3}(?:\.\d{3})+$"
AMBIGUOUS_RULE = {
    ".": "must not contain a comma (a thousands separator or a decimal comma is ambiguous in a file with "
         "decimal points: write 1234 or 1.5)",
    ",": "must not group digits with points (1.234 is ambiguous in a file with decimal commas: write 1234 "
         "or 1,234)",
}


def _parse_numbers(text: pd.Series, missing: pd.Series, decimal: str) -> tuple[pd.Series, pd.Series]:
    """Numbers of a text column and the cells whose meaning depends on a guess (refused):
    with decimal points, any comma ("1,234" is 1234 or 1.234); with decimal commas (semicolon
    files), digits grouped by points ("1.234") or several commas."""
    if decimal == ",":
        ambiguous = ~missing & (text.str.match(_DOT_THOUSANDS) | (text.str.count(",") > 1))
        text = text.where(~text.str.match(_DECIMAL_COMMA), text.str.replace(",", ".", regex=False))
    else:
        ambiguous = ~missing & text.str.contains(",", regex=False)
    numbers = pd.to_numeric(text.where(~missing & ~ambiguous), errors="coerce")
    return numbers, ambiguous


def id_keys(ids: pd.Series) -> pd.Series:
    """Patient identifiers as compared for uniqueness: :func:`clean_text` of each, so that IDs
    that differ only by invisible characters, a non-breaking space or surrounding spaces are the
    same patient."""
    text = ids.astype(str)
    if text.str.isascii().all():
        return text.str.strip()
    return text.map(clean_text)


def _add(problems: list[str], column: str, mask: pd.Series, ids: pd.Series | None,
         values: pd.Series, rule: str) -> None:
    """Append one line for ``column`` if ``mask`` flags any row."""
    rows = np.flatnonzero(mask.to_numpy())
    if rows.size == 0:
        return
    shown = []
    for r in rows[:MAX_LISTED_ROWS]:
        who = f" ({ids.iloc[r]})" if ids is not None and ids.iloc[r] not in ("", None) else ""
        shown.append(f"row {r + 1}{who} = {values.iloc[r]!r}")
    more = f" and {rows.size - MAX_LISTED_ROWS} more" if rows.size > MAX_LISTED_ROWS else ""
    noun = "row" if rows.size == 1 else "rows"
    problems.append(f"{column}: {rows.size} {noun} break the rule '{rule}': {', '.join(shown)}{more}")


# ------------------------------------------------------------------------------ outcomes
def measure_for(y: pd.Series | np.ndarray) -> str:
    """``RR`` for a 0/1 outcome, ``ATE`` otherwise."""
    y = np.asarray(y, float)
    return "RR" if bool(np.all((y == 0) | (y == 1) | np.isnan(y))) else "ATE"  # linear: no sort of 10^6 values


def derive_outcomes(df: pd.DataFrame, copy: bool = True) -> pd.DataFrame:
    """Add ``mrs_0_2 = mrs_90d <= 2``, ``mrs_0_3 = mrs_90d <= 3``, the utility-weighted mRS
    ``utility_mrs`` (:data:`MRS_UTILITY`) and, when absent, ``death_90d = mrs_90d == 6``; missing
    mRS stays missing in every derived column. ``copy=False`` adds them to ``df`` itself (a frame
    the caller owns: a copy of 10^6 rows took 1 s)."""
    out = df.copy() if copy else df
    mrs = out["mrs_90d"]
    known = mrs.notna()
    out["mrs_0_2"] = np.where(known, (mrs <= 2).astype(float), np.nan)
    out["mrs_0_3"] = np.where(known, (mrs <= 3).astype(float), np.nan)
    out["utility_mrs"] = mrs.map(MRS_UTILITY).astype(float)
    if "death_90d" not in out.columns:
        out["death_90d"] = np.where(known, (mrs == 6).astype(float), np.nan)
    return out


def load_cohort(path: str | Path, cache: str | Path | None = None,
                column_map: str | Path | ColumnMap | None = None) -> pd.DataFrame:
    """Read, validate and derive: the typed cohort, or :class:`DataError` with every problem.

    A valid file is read by :func:`_fast_load`; anything it does not accept goes through
    :func:`read_registry` and :func:`validate`, which quote the offending cells. ``cache`` is a
    file written by :func:`write_cohort_cache` for this very file (the build validates once and
    its notebooks read the result); a cache of another or a changed file is ignored.
    ``column_map`` (a :class:`ColumnMap` or the path of its YAML file) maps a registry export's
    names and codes onto the dictionary.
    """
    cached = read_cohort_cache(path, cache)
    if cached is not None:
        return cached["cohort"]
    if column_map is not None and not isinstance(column_map, ColumnMap):
        column_map = read_column_map(column_map)
    typed = _fast_load(path) if column_map is None else None
    if typed is None:
        raw = read_registry(path, column_map)
        typed, problems = validate(raw)
        if problems:
            raise DataError([f"{Path(path).name}: {p}" for p in problems])
    return derive_outcomes(typed, copy=False)  # typed is this function's own frame


def _source_stamp(path: str | Path) -> tuple[str, int, int]:
    stat = Path(path).stat()
    return str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns


def write_cohort_cache(cohort: pd.DataFrame, path: str | Path, cache: str | Path, **fitted) -> None:
    """Store the validated cohort of ``path`` for :func:`load_cohort` (private to a build), and
    with it what the build derived from it (``fitted``, read back by :func:`read_cohort_cache`),
    in the layout of :func:`_write_mapped`."""
    # stored as read, one block per column: no step consolidates the cohort's blocks (each takes the
    # columns it needs), and a consolidating copy here cost 0.6 s before any notebook could start
    _write_mapped({"source": _source_stamp(path), "cohort": cohort, **fitted}, cache)


def write_fitted_cache(path: str | Path, cache: str | Path, **fitted) -> None:
    """Store, beside the cache of ``path`` (:func:`write_cohort_cache`), entries derived after it
    was begun (the build fits the propensity model while the cohort is being written);
    :func:`read_cohort_cache` returns them with the cohort."""
    _write_mapped({"source": _source_stamp(path), **fitted}, fitted_cache(cache))


def fitted_cache(cache: str | Path) -> Path:
    """The file of :func:`write_fitted_cache` beside ``cache``."""
    return Path(cache).with_name(Path(cache).name + ".fitted")


def remove_cohort_cache(cache: str | Path) -> None:
    """Delete a cache and the entries stored beside it, where they exist."""
    Path(cache).unlink(missing_ok=True)
    fitted_cache(cache).unlink(missing_ok=True)


def read_cohort_cache(path: str | Path, cache: str | Path | None) -> dict | None:
    """What :func:`write_cohort_cache` (and :func:`write_fitted_cache`) stored for ``path``
    (``cohort`` and the fitted entries), or ``None`` when there is no cache, it belongs to another
    or a changed file, or it is unreadable (then the file itself is read); fitted entries that
    are unreadable or of another file are left out."""
    if cache is None or not Path(cache).exists() or not Path(path).exists():
        return None
    stored = _read_mapped(cache)
    if not (isinstance(stored, dict) and stored.get("source") == _source_stamp(path)):
        return None
    fitted = _read_mapped(fitted_cache(cache)) if fitted_cache(cache).exists() else None
    if isinstance(fitted, dict) and fitted.get("source") == stored["source"]:
        stored = {**fitted, **stored}
    return stored


_MAPPED_MAGIC = b"ALIBMAP1"
_MAPPED_ALIGN = 4096  # every array starts on a page


def _write_mapped(obj, file: str | Path) -> None:
    """Pickle ``obj`` with its arrays' data out of band (protocol 5), each array's bytes on their
    own pages after the pickle: ``magic, index length, data start, index, pickle, arrays``.

    :func:`_read_mapped` maps the arrays from the file instead of copying them: every notebook
    kernel of a build reads the same cohort, and the pages the build wrote stay shared in the
    page cache (at 10^6 patients, 0.7 GB that each kernel would otherwise allocate and fill)."""
    buffers: list = []
    head = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    raws = [buffer.raw() for buffer in buffers]
    def to_page(size: int) -> int:  # the next page boundary at or after size
        return -(-size // _MAPPED_ALIGN) * _MAPPED_ALIGN

    spans, at = [], 0
    for raw in raws:
        spans.append((at, raw.nbytes))
        at += to_page(raw.nbytes)
    index = pickle.dumps((len(head), spans, at))
    start = to_page(24 + len(index) + len(head))
    with open(file, "wb") as out:
        out.write(_MAPPED_MAGIC + len(index).to_bytes(8, "little") + start.to_bytes(8, "little") + index + head)
        for (offset, _), raw in zip(spans, raws):
            out.seek(start + offset)
            out.write(raw)
        out.truncate(start + at)


def _read_mapped(file: str | Path):
    """The object :func:`_write_mapped` stored, its arrays views of a private (copy-on-write)
    map of the file: writable, and what a process writes stays its own. ``None`` when the file
    is not such a file or is cut short."""
    try:
        with open(file, "rb") as source:
            prefix = source.read(24)
            if len(prefix) < 24 or prefix[:8] != _MAPPED_MAGIC:
                return None
            length, start = int.from_bytes(prefix[8:16], "little"), int.from_bytes(prefix[16:24], "little")
            head_length, spans, size = pickle.loads(source.read(length))
            if 24 + length + head_length > start or os.fstat(source.fileno()).st_size != start + size:
                return None
            mapped = memoryview(mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_COPY))
        # the pickle too is read from the map: its bytes (40 MB at 10^6 patients, most of them the
        # text columns) are then pages shared with the build, not a copy in each kernel
        head = mapped[24 + length:24 + length + head_length]
        return pickle.loads(head, buffers=[mapped[start + offset:start + offset + n] for offset, n in spans])
    except (OSError, ValueError, EOFError, TypeError, IndexError, AttributeError, ImportError, pickle.UnpicklingError):
        return None


# The common spellings of a missing value; a file using others takes the text path (NA_TOKENS).
_FAST_NA = ["", "NA", "na", "N/A", "n/a", "NaN", "nan", "NAN", "null", "NULL", "Null", "."]


def _fast_load(path: str | Path) -> pd.DataFrame | None:
    """The typed frame of a file that meets every rule, read with numeric columns parsed directly
    as numbers (fast at registry scale), or ``None`` when anything is unusual or wrong.

    Equivalent to :func:`read_registry` + :func:`validate` for valid files: the same columns,
    values, missing cells and order. It only accepts, it never reports: a ``None`` sends the file
    through the text path, which finds and quotes every problem.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8-sig") as handle:
            header = [c.strip() for c in handle.readline().rstrip("\r\n").split(",")]
    except (OSError, UnicodeDecodeError):
        return None
    dictionary = load_dictionary()
    required = [c for c in dictionary if c != "death_90d"]
    if (len(set(header)) != len(header) or any(c not in header for c in required)
            or any(c != clean_text(c) or not c for c in header)):
        return None
    numeric = {c for c in header if c in dictionary and dictionary[c].type in ("integer", "number")}
    dtypes = {c: ("float64" if c in numeric else "object") for c in header}
    try:
        df = pd.read_csv(path, dtype=dtypes, na_values=_FAST_NA, keep_default_na=False, encoding="utf-8-sig",
                         skip_blank_lines=True)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return None
    if list(df.columns) != header or df.empty or not isinstance(df.index, pd.RangeIndex):
        return None  # (an index that is not a range: rows with more fields than the header)
    blank = df.isna().all(axis=1)
    if blank.any():
        df = df.loc[~blank].reset_index(drop=True)  # blank trailing rows, as the text path
    distinct = {}
    for c in header:
        spec = dictionary.get(c)
        if spec is None:
            continue
        x = df[c]
        missing = x.isna()
        if c not in numeric:
            # the distinct values are checked (a center or regimen column has a few hundred)
            distinct[c] = _plain_text(pd.unique(x[~missing].to_numpy()))
            if distinct[c] is None:
                return None
            df[c] = x = x.astype(object)
        if any(mask.any() for mask, _ in column_rules(spec, x, missing)):
            return None
    # patient IDs that are plain ASCII (nothing for id_keys to clean) with as many distinct
    # non-missing IDs as rows (so none is missing) are unique: the row rules need not compare them
    # again (0.4 s at n = 10^6)
    ids = distinct.get(ID)
    unique = ids is not None and ids[0].isascii() and ids[1] == len(df)
    if any(mask.any() for _, mask, _ in row_rules(df, None if unique else df[ID])) or missing_arms(df):
        return None
    return df


_ASCII_SPACE = "".join(chr(i) for i in range(128) if chr(i).isspace())  # what str.strip() removes


def _plain_text(values: np.ndarray) -> tuple[str, int] | None:
    """``(the values joined by NUL, how many)`` when no value has surrounding white space or
    spells a missing value (:data:`NA_TOKENS`, in any case), else ``None``.

    ASCII values are checked on the joined string by substring searches in C (a NUL beside a
    space, a NUL-framed token in the lower-cased string; a NUL inside a value can only add
    matches, so a file is never wrongly accepted); ``str.strip`` and ``str.lower`` on each of
    10^6 patient IDs took 1.2 s. Other text is checked value by value."""
    joined = "\x00".join(map(str, values))
    if joined.isascii():
        framed = f"\x00{joined.lower()}\x00"
        spaced = any(space in framed and (f"\x00{space}" in framed or f"{space}\x00" in framed) for space in _ASCII_SPACE)
        plain = not spaced and not any(f"\x00{token}\x00" in framed for token in NA_TOKENS if token)
    else:
        text = pd.Series(values, dtype=object).astype(str)
        plain = not ((text != text.str.strip()).any() or text.str.lower().isin(NA_TOKENS).any())
    return (joined, len(values)) if plain else None


# ------------------------------------------------------------------------- analysis sample
@dataclass(frozen=True)
class AnalysisSample:
    """The complete-case analysis sample and what was excluded on the way.

    Attributes
    ----------
    data : DataFrame
        Patients complete on treatment, ``stenosis_pct`` and every propensity covariate.
    exclusions : DataFrame
        One row per reason (``reason``, ``n``, ``n_mt_rs``, ``n_mt_only``) in the order applied;
        a patient is counted once, under the first covariate (in ``ps_covariates`` order)
        that is missing.
    n_input : int
        Rows in the input file.
    """

    data: pd.DataFrame
    exclusions: pd.DataFrame
    n_input: int

    @property
    def n(self) -> int:
        return len(self.data)

    def arm_counts(self) -> dict[str, int]:
        t = self.data[TREATMENT]
        return {"mt_rs": int((t == 1).sum()), "mt_only": int((t == 0).sum())}

    def __repr__(self) -> str:
        c = self.arm_counts()
        return (f"AnalysisSample(n={self.n}: MT+RS {c['mt_rs']}, MT only {c['mt_only']}; "
                f"excluded {self.n_input - self.n} of {self.n_input})")


def analysis_sample(df: pd.DataFrame, ps_covariates: tuple[str, ...] | list[str],
                    treatment: str = TREATMENT, modifier: str = MODIFIER) -> AnalysisSample:
    """Complete cases on treatment, modifier and propensity covariates (ANALYSIS.md §1).

    Outcomes may be missing: each outcome model later uses the rows whose outcome is known.
    """
    missing_cols = [c for c in (treatment, modifier, *ps_covariates) if c not in df.columns]
    if missing_cols:
        raise DataError([f"{c}: column needed by the analysis is missing" for c in missing_cols])
    keep = pd.Series(True, index=df.index)
    rows = []
    for col in (treatment, modifier, *[c for c in ps_covariates if c != modifier]):
        miss = keep & df[col].isna()
        if miss.any():
            t = df.loc[miss, treatment]
            rows.append({"reason": f"missing {col}", "n": int(miss.sum()),
                         "n_mt_rs": int((t == 1).sum()), "n_mt_only": int((t == 0).sum())})
        keep &= ~miss
    exclusions = pd.DataFrame(rows, columns=["reason", "n", "n_mt_rs", "n_mt_only"])
    data = df.loc[keep].reset_index(drop=True)
    return AnalysisSample(data=data, exclusions=exclusions, n_input=len(df))
