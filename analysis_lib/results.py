"""Steps as result objects: a table that renders itself in JupyterLab and saves itself with its
caption, as R users get from WeightIt/cobalt and Python users from statsmodels' results.

A :class:`TableResult` holds the tidy table (unrounded, the CSV of the output contract), the
formatted table a reader sees (one formatting path, :mod:`analysis_lib.formatting`) and its
caption. ``_repr_html_`` shows the caption, the formatted table and where it comes from (the
registry's notebook and function); :meth:`TableResult.save` writes the CSV, HTML and Word copies.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .outputs import save_table
from .registry import OUTPUTS


@dataclass(frozen=True)
class TableResult:
    """A computed table: ``name`` (its entry in :data:`~analysis_lib.registry.OUTPUTS`), the tidy
    ``table``, the ``formatted`` table and its ``caption``; ``output_dir`` is where :meth:`save`
    writes by default (the study's parameter)."""

    name: str
    table: pd.DataFrame = field(repr=False)
    formatted: pd.DataFrame = field(repr=False)
    caption: str
    output_dir: str | None = field(default=None, repr=False)

    @property
    def source(self) -> str:
        """``notebooks/NN_name.ipynb, analysis_lib.module.function`` of the registry."""
        output = next((o for o in OUTPUTS if o.name == self.name and o.kind != "figure"), None)
        return "" if output is None else f"notebooks/{output.notebook}.ipynb, {output.source}"

    def save(self, output_dir: str | Path | None = None) -> "TableResult":
        """Write ``tables/<name>.csv`` and its formatted ``.html`` and ``.docx`` copies (into
        ``output_dir``, default the study's; nothing when both are ``None``); returns itself, so
        that a notebook cell saves and shows a step in one line."""
        save_table(self.table, self.name, output_dir if output_dir is not None else self.output_dir,
                   formatted=self.formatted, caption=self.caption)
        return self

    def _repr_html_(self) -> str:
        table = self.formatted.to_html(index=False, border=0, escape=True)
        return (f"<p><strong>{html.escape(self.caption)}</strong></p>{table}"
                f"<p><small>Source: {html.escape(self.source)}</small></p>")

    def __repr__(self) -> str:
        return f"{self.caption}\n{self.formatted.to_string(index=False)}"
