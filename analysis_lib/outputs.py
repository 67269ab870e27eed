"""Writing results: tidy CSV (unrounded), formatted HTML tables and figure files.

Every writer is a no-op when ``output_dir`` is ``None`` (a notebook opened for review writes
nothing). Files are written so that the same inputs give the same bytes: floats in their
shortest round-trip form, figures without creation dates.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # matplotlib is imported by whoever draws the figure, not to write tables
    from matplotlib.figure import Figure

FIGURE_DPI = 300


def save_table(tidy: pd.DataFrame, name: str, output_dir: str | Path | None,
               formatted: pd.DataFrame | None = None, caption: str | None = None, footnote: str | None = None,
               page_size: str = "A4") -> Path | None:
    """Write ``tables/<name>.csv`` (tidy) and, if given, the formatted table as
    ``tables/<name>.html`` and ``tables/<name>.docx`` (journal-ready Word table)."""
    path = _write_csv(tidy, name, output_dir, "tables")
    if formatted is not None:
        save_formatted(formatted, name, output_dir, caption, footnote, page_size)
    return path


def save_private(tidy: pd.DataFrame, name: str, output_dir: str | Path | None) -> Path | None:
    """Write a patient-level table to ``private/<name>.csv`` (for audit): kept apart from
    ``tables/``, which coauthors share, and never part of the supplement (OUTPUTS.md)."""
    return _write_csv(tidy, name, output_dir, "private")


def _write_csv(tidy: pd.DataFrame, name: str, output_dir: str | Path | None, folder: str) -> Path | None:
    """``<output_dir>/<folder>/<name>.csv`` (nothing when ``output_dir`` is ``None``)."""
    if output_dir is None:
        return None
    path = Path(output_dir) / folder / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = plain_csv(tidy) if len(tidy) >= PLAIN_CSV_ROWS else None
    if text is None:
        tidy.to_csv(path, index=False, lineterminator="\n")
    else:
        path.write_text(text, encoding="utf-8")
    return path


PLAIN_CSV_ROWS = 10_000


def plain_csv(tidy: pd.DataFrame) -> str | None:
    """The bytes of ``tidy.to_csv(index=False, lineterminator="\n")`` for a frame of plain
    columns (float64, int64, and text that needs no quoting), written directly: 2.5 times faster
    for the patient-level tables at n = 10^6 (floats by ``repr``, the shortest round-trip form
    pandas writes too, a missing float as an empty field). ``None`` for anything else (pandas
    writes it)."""
    names = [str(c) for c in tidy.columns]
    if any(_needs_quotes(c) or not c for c in names):
        return None
    columns = []
    for c in tidy.columns:
        x = tidy[c].to_numpy()
        if x.dtype == np.float64:
            if np.isinf(x).any():
                return None
            columns.append(["" if v != v else repr(v) for v in x.tolist()] if np.isnan(x).any()
                           else list(map(repr, x.tolist())))
        elif x.dtype == np.int64:
            columns.append(list(map(str, x.tolist())))
        elif x.dtype == object and all(type(v) is str for v in x.tolist()):
            values = x.tolist()
            if _needs_quotes("\x1f".join(values)) or "" in values:
                return None
            columns.append(values)
        else:
            return None
    return ",".join(names) + "\n" + "".join([",".join(row) + "\n" for row in zip(*columns)])


def _needs_quotes(text: str) -> bool:
    """Whether the csv module would quote a field (``QUOTE_MINIMAL``) holding ``text``."""
    return any(ch in text for ch in ',"\n\r')


def save_formatted(formatted: pd.DataFrame, name: str, output_dir: str | Path | None,
                   caption: str | None = None, footnote: str | None = None, page_size: str = "A4") -> pd.DataFrame:
    """Write a formatted table that has no tidy counterpart (a summary for reading) as
    ``tables/<name>.html`` and ``.docx``; returns the table, for display."""
    if output_dir is not None:
        folder = Path(output_dir) / "tables"
        folder.mkdir(parents=True, exist_ok=True)
        html = formatted.to_html(index=False, border=0, classes="table", escape=True)
        if caption:  # right after the opening tag, whatever attributes pandas writes on it
            html = re.sub(r"(<table[^>]*>)", lambda m: f"{m.group(1)}\n  <caption>{_escape(caption)}</caption>", html,
                          count=1)
        # non-ASCII characters (the paper's "≤") as character references: the fragment has no <meta charset>
        html = html.encode("ascii", "xmlcharrefreplace").decode("ascii")
        (folder / f"{name}.html").write_text(html + "\n", encoding="utf-8")
        write_docx(formatted, folder / f"{name}.docx", caption, footnote, page_size)
    return formatted


PAGES = {"A4": (210, 297), "letter": (215.9, 279.4)}  # millimetres


def write_docx(table: pd.DataFrame, path: str | Path, caption: str | None = None, footnote: str | None = None,
               page_size: str = "A4") -> Path:
    """A Word document with the table (header row bold and repeated on every page, 8 pt, grid)
    under its caption, with its footnote (what the supplement says of it, and the abbreviations)
    beneath, on an A4 or US letter page (``page_size``).

    The zip is rewritten with fixed timestamps and without python-docx's creation date, so the
    same table gives the same bytes.
    """
    from docx import Document
    from docx.enum.section import WD_ORIENT
    from docx.shared import Mm, Pt

    doc = Document()
    section = doc.sections[0]
    section.page_width, section.page_height = (Mm(v) for v in PAGES[page_size])  # A4 by default: a European journal
    props = doc.core_properties
    props.author = props.last_modified_by = "analysis_lib"
    props.created = props.modified = pd.Timestamp("2000-01-01").to_pydatetime()
    props.revision = 1
    if table.shape[1] > 6:  # wide tables read better in landscape
        section.orientation = WD_ORIENT.LANDSCAPE
        section.page_width, section.page_height = section.page_height, section.page_width
    if caption:
        doc.add_paragraph().add_run(caption).bold = True
    grid = doc.add_table(rows=1, cols=table.shape[1])
    grid.style = "Table Grid"
    for cell, name in zip(grid.rows[0].cells, table.columns):
        run = cell.paragraphs[0].add_run(str(name))
        run.bold = True
        run.font.size = Pt(8)
    _repeat_as_header(grid.rows[0])
    for values in table.itertuples(index=False):
        cells = grid.add_row().cells
        for cell, value in zip(cells, values):
            cell.paragraphs[0].add_run("" if value is None or (isinstance(value, float) and pd.isna(value))
                                       else str(value)).font.size = Pt(8)
    if footnote:
        doc.add_paragraph().add_run(footnote).font.size = Pt(8)
    buffer = io.BytesIO()
    doc.save(buffer)
    buffer.seek(0)
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for info in sorted(source.infolist(), key=lambda i: i.filename):
            fixed = zipfile.ZipInfo(info.filename, date_time=(2000, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(fixed, source.read(info.filename))
    return Path(path)


def _repeat_as_header(row) -> None:
    """Mark a Word table row as a header row, repeated at the top of every page (``w:tblHeader``)."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    properties = row._tr.get_or_add_trPr()  # python-docx has no public API for the header-row flag
    header = OxmlElement("w:tblHeader")
    header.set(qn("w:val"), "true")
    properties.append(header)


BUILD_ENVIRONMENT = "ANALYSIS_LIB_BUILD"


def interactive() -> bool:
    """False inside a build (whose worker sets ``ANALYSIS_LIB_BUILD`` for its kernels): progress
    bars, whose rates and refreshes depend on timing, then stay out of the executed notebooks,
    which are identical for the same inputs."""
    return not os.environ.get(BUILD_ENVIRONMENT)


def save_note(text: str, name: str, output_dir: str | Path | None) -> str:
    """Write a plain-language conclusion to ``notes/<name>.md`` (for the supplement); returns the text."""
    if output_dir is not None:
        folder = Path(output_dir) / "notes"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.md").write_text(text.strip() + "\n", encoding="utf-8")
    return text


def save_figure(fig: Figure, name: str, output_dir: str | Path | None) -> Path | None:
    """Write ``figures/<name>.png`` (300 dpi) and ``figures/<name>.pdf`` (vector)."""
    if output_dir is None:
        return None
    folder = Path(output_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    png = folder / f"{name}.png"
    # Figures use constrained layout, so no second "tight" rendering pass is needed.
    fig.savefig(png, dpi=FIGURE_DPI, metadata={"Software": None})
    # TrueType (Type 42) fonts, as journals require: matplotlib's default embeds Type 3 fonts
    from matplotlib import rc_context

    with rc_context({"pdf.fonttype": 42}):
        fig.savefig(folder / f"{name}.pdf", metadata={"CreationDate": None, "Producer": None})
    return png


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
