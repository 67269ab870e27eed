"""Table 1: baseline, procedural and outcome characteristics by arm (ANALYSIS.md §9).

Continuous variables: median and quartiles (R's default quantile type 7); categorical
variables: n/N (%) with N the non-missing count. Tests are two-sided: Fisher's exact test
(as ``fisher.test``) for categorical and the Mann-Whitney U test (as ``wilcox.test``) for
continuous variables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .data import TREATMENT, load_dictionary


@dataclass(frozen=True)
class Table1Variable:
    name: str
    label: str
    kind: str  # "continuous", "binary" or "categorical"
    section: str


TABLE1_VARIABLES: tuple[Table1Variable, ...] = (
    Table1Variable("age", "Age, years", "continuous", "Demographic and baseline characteristics"),
    Table1Variable("sex_female", "Sex (female)", "binary", "Demographic and baseline characteristics"),
    Table1Variable("hypertension", "Hypertension", "binary", "Demographic and baseline characteristics"),
    Table1Variable("dyslipidemia", "Dyslipidemia", "binary", "Demographic and baseline characteristics"),
    Table1Variable("diabetes", "Diabetes", "binary", "Demographic and baseline characteristics"),
    Table1Variable("atrial_fibrillation", "Atrial fibrillation", "binary", "Demographic and baseline characteristics"),
    Table1Variable("coronary_artery_disease", "Coronary artery disease", "binary", "Demographic and baseline characteristics"),
    Table1Variable("prior_stroke", "Prior stroke", "binary", "Demographic and baseline characteristics"),
    Table1Variable("prior_antiplatelets", "Prior antiplatelets", "binary", "Demographic and baseline characteristics"),
    Table1Variable("prior_anticoagulants", "Prior anticoagulants", "binary", "Demographic and baseline characteristics"),
    Table1Variable("premorbid_mrs", "Pre-event mRS score", "continuous", "Demographic and baseline characteristics"),
    Table1Variable("nihss", "NIHSS score", "continuous", "Demographic and baseline characteristics"),
    Table1Variable("left_side", "Left-side stroke", "binary", "Demographic and baseline characteristics"),
    Table1Variable("m1_occlusion", "M1 segment occlusion", "binary", "Demographic and baseline characteristics"),
    Table1Variable("aspects", "ASPECTS", "continuous", "Demographic and baseline characteristics"),
    Table1Variable("ivt", "IVT", "binary", "Procedural data"),
    Table1Variable("general_anesthesia", "General anesthesia", "binary", "Procedural data"),
    Table1Variable("onset_to_end_min", "Onset-to-end of procedure, minutes", "continuous", "Procedural data"),
    Table1Variable("stenosis_pct", "Degree of MCA stenosis, %", "continuous", "Procedural data"),
    Table1Variable("mtici_2b3_after_mt", "mTICI 2b-3 at the end of MT", "binary", "Procedural data"),
    Table1Variable("antiplatelet_regimen", "Peri-procedural antiplatelet agents", "categorical", "Procedural data"),
    Table1Variable("mrs_90d", "90-day mRS score", "continuous", "90-day clinical outcomes"),
    Table1Variable("mrs_0_2", "90-day mRS 0-2", "binary", "90-day clinical outcomes"),
    Table1Variable("mrs_0_3", "90-day mRS 0-3", "binary", "90-day clinical outcomes"),
    Table1Variable("final_mtici_2b3", "Final mTICI 2b-3", "binary", "Efficacy and safety outcomes"),
    Table1Variable("reocclusion", "Post-procedure re-occlusion", "binary", "Efficacy and safety outcomes"),
    Table1Variable("sich", "sICH", "binary", "Efficacy and safety outcomes"),
    Table1Variable("death_90d", "90-day mortality", "binary", "Efficacy and safety outcomes"),
)
LABELS: dict[str, str] = {v.name: v.label for v in TABLE1_VARIABLES}
REGIMEN_WORDS = {"none": "none", "aspirin": "aspirin", "cangrelor": "cangrelor", "gpi": "GPI",
                 "clopidogrel": "clopidogrel"}


def level_label(level: str) -> str:
    """A category as printed: an antiplatelet regimen in words (``aspirin+gpi`` -> ``Aspirin + GPI``;
    GPI glycoprotein IIb/IIIa inhibitor)."""
    words = " + ".join(REGIMEN_WORDS.get(part, part) for part in str(level).split("+"))
    return words[:1].upper() + words[1:]


def variable_label(name: str) -> str:
    """The printed label of a variable or a balance term: Table 1's label (``stenosis_pct`` ->
    ``Degree of MCA stenosis, %``), a category as ``label: level``, any other model term as written."""
    if "=" in name:
        base, level = name.split("=", 1)
        return f"{LABELS.get(base, base)}: {level_label(level)}"
    return LABELS.get(name, name)

TABLE1_COLUMNS = [
    "variable", "summary",
    "mt_only_n", "mt_only_total", "mt_only_pct", "mt_only_median", "mt_only_q1", "mt_only_q3",
    "mt_rs_n", "mt_rs_total", "mt_rs_pct", "mt_rs_median", "mt_rs_q1", "mt_rs_q3",
    "p_value", "test",
]
FISHER = "Fisher's exact"
MANN_WHITNEY = "Mann-Whitney U"


def fisher_exact_p(table: np.ndarray) -> float:
    """Two-sided Fisher's exact p for a 2x2 table of counts, as R's ``fisher.test``.

    The two-sided p sums the hypergeometric probabilities not larger than that of the
    observed table, with R's relative tolerance 1 + 1e-7 (scipy implements the same rule).
    """
    from scipy import stats

    table = np.asarray(table, dtype=np.int64)
    if table.shape != (2, 2):
        raise ValueError("fisher_exact_p needs a 2x2 table")
    return float(stats.fisher_exact(table, alternative="two-sided").pvalue)


def mann_whitney_p(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided Mann-Whitney U (Wilcoxon rank-sum) p as R's ``wilcox.test(x, y)``.

    R computes the exact distribution when both samples have fewer than 50 values and there
    are no ties; otherwise the normal approximation with tie correction and continuity
    correction. scipy's ``method="auto"`` uses a different switch, so the rule is set here.
    """
    from scipy import stats

    x = np.asarray(x, float)
    y = np.asarray(y, float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    # ties matter only for small samples (no sort of a registry's values otherwise)
    exact = x.size < 50 and y.size < 50 and np.unique(np.r_[x, y]).size == x.size + y.size
    res = stats.mannwhitneyu(x, y, alternative="two-sided", use_continuity=True,
                             method="exact" if exact else "asymptotic")
    return float(res.pvalue)


def table1(df: pd.DataFrame, treatment: str = TREATMENT,
           variables: tuple[Table1Variable, ...] = TABLE1_VARIABLES) -> pd.DataFrame:
    """Table 1 as a tidy frame (columns of ``tables/table1.csv`` in OUTPUTS.md).

    Parameters
    ----------
    df : DataFrame
        The analysis sample (one row per patient, derived outcomes present).
    treatment : str
        0/1 column; 0 is MT only, 1 is MT+RS.

    Returns
    -------
    DataFrame
        One row per variable (one per level for categorical variables, named
        ``variable=level``); unrounded numbers; ``p_value`` and ``test`` empty where no test
        applies (a variable recorded in one arm only).
    """
    rows = []
    arms = {"mt_only": df[treatment] == 0, "mt_rs": df[treatment] == 1}
    for var in variables:
        if var.name not in df.columns:
            continue
        col = df[var.name]
        if var.kind == "continuous":
            row = {"variable": var.name, "summary": "median"}
            for arm, mask in arms.items():
                values = col[mask].dropna().to_numpy(float)
                row[f"{arm}_total"] = values.size
                if values.size:
                    q1, med, q3 = np.quantile(values, [0.25, 0.5, 0.75])
                    row.update({f"{arm}_median": med, f"{arm}_q1": q1, f"{arm}_q3": q3})
            x, y = col[arms["mt_only"]], col[arms["mt_rs"]]
            if x.notna().sum() and y.notna().sum():
                row.update(p_value=mann_whitney_p(x, y), test=MANN_WHITNEY)
            rows.append(row)
        elif var.kind == "binary":
            row = {"variable": var.name, "summary": "count"}
            counts = []
            for arm, mask in arms.items():
                values = col[mask].dropna()
                k, total = int((values == 1).sum()), int(values.size)
                counts.append((k, total - k))
                row.update({f"{arm}_n": k, f"{arm}_total": total,
                            f"{arm}_pct": 100.0 * k / total if total else np.nan})
            if all(sum(c) > 0 for c in counts):
                row.update(p_value=fisher_exact_p(np.array(counts)), test=FISHER)
            rows.append(row)
        else:
            levels = _levels(var.name, col)
            for level in levels:
                row = {"variable": f"{var.name}={level}", "summary": "count"}
                for arm, mask in arms.items():
                    values = col[mask].dropna()
                    total = int(values.size)
                    row[f"{arm}_total"] = total
                    if total:
                        k = int((values == level).sum())
                        row.update({f"{arm}_n": k, f"{arm}_pct": 100.0 * k / total})
                rows.append(row)
    out = pd.DataFrame(rows)
    for c in TABLE1_COLUMNS:
        if c not in out.columns:
            out[c] = np.nan
    out = out[TABLE1_COLUMNS]
    out["test"] = out["test"].fillna("")
    return out


def _levels(name: str, col: pd.Series) -> list[str]:
    spec = load_dictionary().get(name)
    if spec is not None and spec.value_set is not None:
        order = [v.strip() for v in spec.allowed.split(",")]
        return order
    return sorted(col.dropna().unique())


def mrs_distribution(df: pd.DataFrame, weights: np.ndarray | None, cutoff: float,
                     treatment: str = TREATMENT, outcome: str = "mrs_90d",
                     modifier: str = "stenosis_pct", subgroup_weights: np.ndarray | None = None) -> pd.DataFrame:
    """Weighted distribution of the 90-day mRS by arm, overall and by stenosis subgroup (Figure 1).

    ``percent = 100 * sum(w [mRS = k]) / sum(w)`` within each group and arm, over the patients
    with a known mRS, using the weights of the full analysis sample; ``subgroup_weights`` (one
    propensity model per subgroup, ANALYSIS.md §11) weight the subgroup panels when given.

    Returns
    -------
    DataFrame
        ``group`` (overall / low / high), ``arm`` (MT only / MT+RS), ``mrs`` (0-6), ``n`` (patients
        in the group and arm), ``percent``.
    """
    y = df[outcome].to_numpy(float)
    w = np.ones(len(df)) if weights is None else np.asarray(weights, float)
    t = df[treatment].to_numpy(float)
    high = df[modifier].to_numpy(float) > cutoff
    known = ~np.isnan(y)
    rows = []
    w_sub = w if subgroup_weights is None or weights is None else np.asarray(subgroup_weights, float)
    for group, mask in (("overall", np.ones(len(df), bool)), ("low", ~high), ("high", high)):
        w = w_sub if group != "overall" else (np.ones(len(df)) if weights is None else np.asarray(weights, float))
        for arm_label, arm in (("MT only", 0.0), ("MT+RS", 1.0)):
            sel = mask & known & (t == arm)
            total = w[sel].sum()
            for k in range(7):
                share = w[sel & (y == k)].sum() / total if total > 0 else np.nan
                rows.append({"group": group, "arm": arm_label, "mrs": k, "n": int(sel.sum()),
                             "percent": 100.0 * share})
    return pd.DataFrame(rows)


def patient_flow(sample, patients_screened: int, patients_icas_lvo_evt: int,
                 treatment: str = TREATMENT) -> pd.DataFrame:
    """Boxes of the patient-flow diagram (Supplementary Figure 1).

    Counts before the registry export come from parameters; the exclusions for missing
    propensity covariates are computed from the data (:class:`~analysis_lib.data.AnalysisSample`).
    When the patients treated (``patients_icas_lvo_evt``) are fewer than the patients of the file,
    the counts before the export cannot describe this file: the flow then begins at the registry
    file, and ``attrs["caption_note"]`` says why (no negative exclusion is ever printed).

    Returns
    -------
    DataFrame
        ``stage``, ``n``, ``n_mt_rs``, ``n_mt_only`` (arm counts where known).
    """
    counts = sample.arm_counts()
    before_export = patients_icas_lvo_evt >= sample.n_input
    if before_export:
        rows = [
            {"stage": "Patients screened", "n": patients_screened},
            {"stage": "Endovascular treatment for MCA ICAS-LVO", "n": patients_icas_lvo_evt},
            {"stage": "Excluded: other rescue strategies\n(not MT+RS or MT only; not in the registry file)",
             "n": patients_icas_lvo_evt - sample.n_input},
        ]
    else:
        rows = [{"stage": "Patients of the registry file", "n": sample.n_input}]
    for _, r in sample.exclusions.iterrows():
        reason = r["reason"]  # "missing <column>", named by its Table 1 label
        if reason.startswith("missing "):
            reason = f"missing {variable_label(reason.removeprefix('missing '))}"
        rows.append({"stage": f"Excluded: {reason}", "n": int(r["n"]),
                     "n_mt_rs": int(r["n_mt_rs"]), "n_mt_only": int(r["n_mt_only"])})
    if sample.exclusions.empty:  # the box stays, with its zero: every patient of the file is complete
        rows.append({"stage": "Excluded: missing propensity-model covariates", "n": 0, "n_mt_rs": 0, "n_mt_only": 0})
    rows.append({"stage": "Analysed", "n": sample.n, "n_mt_rs": counts["mt_rs"], "n_mt_only": counts["mt_only"]})
    out = pd.DataFrame(rows, columns=["stage", "n", "n_mt_rs", "n_mt_only"])
    out = out.astype({"n": "Int64", "n_mt_rs": "Int64", "n_mt_only": "Int64"})
    if not before_export:
        out.attrs["caption_note"] = (f"the flow begins at the registry file: parameter patients_icas_lvo_evt "
                                     f"({patients_icas_lvo_evt:,}) is fewer than its {sample.n_input:,} patients, "
                                     "so the counts before the export are not shown")
    return out


TABLE1_CELLS = {"mt_only_n": ("mt_only_pct",), "mt_rs_n": ("mt_rs_pct",)}


def mask_small_cells(frame: pd.DataFrame, min_cell_size: int,
                     cells: dict[str, tuple[str, ...]] = TABLE1_CELLS) -> pd.DataFrame:
    """Statistical disclosure control for exported tables: counts from 1 to ``min_cell_size - 1``
    become missing, with the columns that would reveal them (their percentages). Zero counts
    and totals stay. This is primary suppression only: a count that can be recovered from a
    total and the other levels of the same variable is not suppressed a second time.
    ``min_cell_size`` 0 or 1 returns the table unchanged."""
    if min_cell_size <= 1:
        return frame
    out = frame.copy()
    for count, revealing in cells.items():
        n = pd.to_numeric(out[count], errors="coerce")
        small = (n >= 1) & (n < min_cell_size)
        for column in (count, *revealing):
            out[column] = out[column].astype(float).where(~small)
    out.attrs["min_cell_size"] = int(min_cell_size)
    return out
