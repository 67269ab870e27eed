"""The paper's printed numbers beside the recomputed ones (no computation of estimates here).

The published tables are the CSV files in ``data/published/`` (copied from the open-access
paper, CC BY 4.0). Each function returns a display frame: what the paper printed, and what
the data at hand give, so a reader sees at a glance where they agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .formatting import fmt_ci, fmt_num, fmt_p
from .tables import OUTCOME_LABELS, format_table1, measure_label, subgroup_names


@dataclass(frozen=True)
class Published:
    """The paper's Table 1, Table 2 and text results as printed."""

    table1: pd.DataFrame = field(repr=False)
    table2: pd.DataFrame = field(repr=False)
    text: pd.DataFrame = field(repr=False)

    def __repr__(self) -> str:
        return (f"Published(Table 1: {len(self.table1)} rows, Table 2: {len(self.table2)} rows, "
                f"text results: {len(self.text)})")


PUBLISHED_FILES: dict[str, tuple[str, ...]] = {
    "table1_published.csv": ("variable", "summary", "mt_only_n", "mt_only_total", "mt_rs_n", "mt_rs_total",
                             "p_value_reported"),
    "table2_published.csv": ("outcome", "subgroup", "analysis", "measure", "estimate", "ci_lower", "ci_upper",
                             "p_value_reported", "p_interaction_reported"),
    "text_results_published.csv": ("quantity", "value", "ci_lower", "ci_upper", "p_reported", "note"),
    "text_claims_published.csv": ("claim", "section", "quote", "outcome", "analysis", "subgroup", "estimate"),
}


def check_published_dir(published_dir: str | Path) -> str | None:
    """``None`` when the folder holds every published table with its columns, otherwise one line
    saying what is missing (for the parameter ``published_dir``)."""
    d = Path(published_dir)
    if not d.is_dir():
        return f"parameter 'published_dir': {d} is not a folder (expected the paper's tables, e.g. data/published)"
    for name, columns in PUBLISHED_FILES.items():
        if not (d / name).is_file():
            return f"parameter 'published_dir': {d} lacks {name} (it needs {', '.join(PUBLISHED_FILES)})"
        try:
            header = pd.read_csv(d / name, nrows=0).columns
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
            return f"parameter 'published_dir': {d / name} is not a readable CSV file ({type(err).__name__})"
        absent = [c for c in columns if c not in header]
        if absent:
            return f"parameter 'published_dir': {d / name} lacks the column(s) {', '.join(absent)}"
    return None


def load_published(published_dir: str | Path) -> Published:
    """Read ``table1_published.csv``, ``table2_published.csv`` and ``text_results_published.csv``."""
    d = Path(published_dir)
    read = lambda name: pd.read_csv(d / name, dtype={"p_value_reported": str, "p_interaction_reported": str,
                                                     "p_reported": str}, keep_default_na=False, na_values=[""])
    return Published(table1=read("table1_published.csv"), table2=read("table2_published.csv"),
                     text=read("text_results_published.csv"))


def table1_beside(tidy: pd.DataFrame, published: Published) -> pd.DataFrame:
    """Table 1 of the data beside the published Table 1, row by row."""
    ours = format_table1(tidy, sections=False)
    pub = published.table1.copy()
    pub["test"] = ""
    pub = pub.rename(columns={"p_value_reported": "p_value"})
    pub_fmt = format_table1(pub.assign(p_value=float("nan"))[tidy.columns], sections=False)
    pub_p = dict(zip(published.table1["variable"], published.table1["p_value_reported"].fillna("-")))
    ours_cols = list(ours.columns)
    out = pd.DataFrame({"Characteristic": ours["Characteristic"]})
    index = {v: i for i, v in enumerate(pub["variable"])}
    for col_ours, col_pub, arm in ((ours_cols[1], pub_fmt.columns[1], "MT only"),
                                   (ours_cols[2], pub_fmt.columns[2], "MT+RS")):
        out[f"{arm}: published"] = [pub_fmt.iloc[index[v]][col_pub] if v in index else "-" for v in tidy["variable"]]
        out[f"{arm}: recomputed"] = ours[col_ours]
    out["p: published"] = [pub_p.get(v, "-") or "-" for v in tidy["variable"]]
    out["p: recomputed"] = ours["p"]
    return out


def table2_beside(tidy: pd.DataFrame, published: Published, cutoff: float) -> pd.DataFrame:
    """Table 2 of the data beside the published Table 2 (which used the 75 % cutoff)."""
    pub = published.table2.set_index(["outcome", "analysis", "subgroup"])
    rows = []
    for _, r in tidy.iterrows():
        key = (r["outcome"], r["analysis"], r["subgroup"])
        p = pub.loc[key] if key in pub.index else None
        rows.append({
            "Outcome": OUTCOME_LABELS.get(r["outcome"], r["outcome"]),
            "Analysis": "IPTW" if r["analysis"] == "iptw" else "Unadjusted",
            "Subgroup": subgroup_names(cutoff)[r["subgroup"]],
            "Measure": measure_label(r["measure"]),
            "Published (95% CI)": "-" if p is None else f"{fmt_num(p['estimate'])} ({fmt_ci(p['ci_lower'], p['ci_upper'])})",
            "Recomputed (95% CI)": ("not estimable" if pd.isna(r["estimate"])
                                    else f"{fmt_num(r['estimate'])} ({fmt_ci(r['ci_lower'], r['ci_upper'])})"),
            "p: published": "-" if p is None else _text(p["p_value_reported"]),
            "p: recomputed": fmt_p(r["p_value"]),
            "p-int: published": "-" if p is None else _text(p["p_interaction_reported"]),
            "p-int: recomputed": fmt_p(r["p_interaction"]) if r["subgroup"] != "overall" else "-",
        })
    out = pd.DataFrame(rows)
    if cutoff != 75:
        out.attrs["caption_note"] = f"the recomputed subgroups use the {cutoff:g} % cutoff, the published ones 75 %"
    return out


TEXT_RESULTS = {  # quantity of text_results_published.csv: (label, what it is)
    "optimal_cutoff_pct": ("Optimal cutoff, %", "the cutoff (40-90 %, step 5) with the largest absolute difference "
                           "between the subgroup effects on the mRS"),
    "difference_of_ates_at_optimal_cutoff": ("Difference of the subgroup effects on the mRS at the optimal cutoff",
                                             "effect above minus effect at or below; p is the interaction p-value"),
    "continuous_interaction_beta_per_pct": ("Interaction per 1% stenosis", "treatment x continuous stenosis in the "
                                            "weighted linear model of the 90-day mRS"),
    "crossing_point_pct": ("Crossing point, %", "stenosis at which the effect on the mRS changes sign in the "
                           "continuous model"),
    "patients_screened": ("Patients screened", "flow diagram (a parameter of the build)"),
    "patients_icas_lvo_evt": ("Patients treated for ICAS-LVO", "flow diagram (a parameter of the build)"),
    "patients_analysed": ("Patients analysed", "flow diagram"),
    "patients_mt_rs": ("Patients with MT+RS", "analysed"),
    "patients_mt_only": ("Patients with MT only", "analysed"),
    "centers": ("Centers", "contributing patients"),
    "gpi_alone_pct_of_mt_rs": ("Glycoprotein IIb/IIIa inhibitor alone, % of MT+RS", "peri-procedural regimen"),
    "gpi_combination_pct_of_mt_rs": ("Glycoprotein IIb/IIIa inhibitor with other agents, % of MT+RS",
                                     "peri-procedural regimen"),
}


def _text(value) -> str:
    """A printed value of the paper as text; ``-`` where it printed none."""
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) or value == "" else str(value)


def text_results_beside(published: Published, recomputed: dict[str, float]) -> pd.DataFrame:
    """The paper's text results (cutoff, difference, beta, crossing, patient counts) beside ours,
    each named in words (:data:`TEXT_RESULTS`).

    ``recomputed`` maps the ``quantity`` names of ``text_results_published.csv`` to values;
    quantities without a recomputed value are shown as not applicable.
    """
    rows = []
    for _, r in published.text.iterrows():
        q = r["quantity"]
        label, meaning = TEXT_RESULTS.get(q, (q.replace("_", " ").capitalize(), _text(r["note"])))
        value = recomputed.get(q)
        ci = "" if pd.isna(r["ci_lower"]) else f" ({fmt_ci(r['ci_lower'], r['ci_upper'], 3)})"
        p = _text(r["p_reported"])
        rows.append({
            "Quantity": label,
            "Published": f"{r['value']:g}{ci}" + (f", p {p}" if p != "-" else ""),
            "Recomputed": "-" if value is None else (f"{value:.3g}" if isinstance(value, float) else str(value)),
            "Note": meaning,
        })
    return pd.DataFrame(rows)
