"""The assembled supplement: every named table and figure in the HTML and as Word tables, nothing
fetched from the network, provenance that identifies the data byte for byte, and a real browser."""

import base64
import json
import os
import shutil
from html.parser import HTMLParser

import docx
import pandas as pd
import pytest
from conftest import COHORTS, ROOT

from analysis_lib import provenance
from analysis_lib.outputs import write_docx
from analysis_lib.supplement import SUPPLEMENT

PAPER_NAMES = ["Table 1", "Table 2", "Figure 1", "Supplementary Table 1", "Supplementary Table 2",
               "Supplementary Table 3", "Supplementary Figure 1", "Supplementary Figure 2"]
ARTIFACTS = ROOT / "tests" / "artifacts"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """The pieces of the supplement a test needs: sections, headings, images, tables, references."""

    def __init__(self):
        super().__init__()
        self.sections: list[str] = []
        self.headings: list[str] = []
        self.images: list[dict] = []
        self.tables = 0
        self.references: list[str] = []
        self.tags: set[str] = set()
        self.text: list[str] = []
        self._in_heading = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "section":
            self.sections.append(attrs.get("id"))
        if tag in ("h2", "h3"):
            self._in_heading = True
            self.headings.append("")
        if tag == "img":
            self.images.append(attrs)
        if tag == "table":
            self.tables += 1
        for key in ("src", "href", "action", "data", "poster"):
            if attrs.get(key):
                self.references.append(attrs[key])

    def handle_endtag(self, tag):
        if tag in ("h2", "h3"):
            self._in_heading = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_heading:
            self.headings[-1] += data


@pytest.fixture(scope="module")
def page(built):
    parser = Page()
    parser.feed((built.out / "supplement.html").read_text(encoding="utf-8"))
    return parser


def test_every_named_table_and_figure_is_in_the_supplement(built, page):
    assert page.sections == [e.anchor for e in SUPPLEMENT]
    for name in PAPER_NAMES:
        assert any(h.startswith(f"{name}. ") for h in page.headings), name
    text = "".join(page.text)
    assert "Not produced in this build" not in text
    assert "Synthetic cohort." in text  # the banner: these are not patient data
    figures = [rel for e in SUPPLEMENT for kind, rel in e.items if kind == "figure"]
    assert len(page.images) == len(figures) == 9
    for attrs, rel in zip(page.images, figures):
        kind, payload = attrs["src"].split(",", 1)
        assert kind == "data:image/png;base64"
        assert base64.b64decode(payload) == (built.out / rel).read_bytes(), rel
    tables = [rel for e in SUPPLEMENT for kind, rel in e.items if kind in ("table", "beside", "details")]
    assert page.tables == len(tables) + 3  # plus the footer's parameters, notebooks and packages
    source = (built.out / "supplement.html").read_text(encoding="utf-8")
    for rel in tables:
        assert (built.out / rel).read_text(encoding="utf-8") in source, rel
    # Table 2 of the supplement is table2.csv formatted: one row per outcome and subgroup, the
    # unadjusted and weighted estimates side by side, rounded to two decimals
    shown = pd.read_html(built.out / "tables" / "table2.html")[0]
    tidy = pd.read_csv(built.out / "tables" / "table2.csv")
    assert 2 * len(shown) == len(tidy) == 48  # 8 outcomes x 3 rows, unadjusted and weighted
    mrs = tidy.query("outcome == 'mrs_90d' and analysis == 'iptw' and subgroup == 'overall'").iloc[0]
    assert f"{mrs.estimate:.2f}" in shown.iloc[0].to_string()


def test_supplement_is_self_contained_and_has_no_code(page):
    assert all(ref.startswith(("data:", "#")) for ref in page.references), page.references
    assert not {"script", "link", "iframe", "object", "embed"} & page.tags
    assert "In [" not in "".join(page.text) and "import " not in "".join(page.text)


def test_provenance_describes_the_build(built):
    record = json.loads((built.out / "provenance.json").read_text())
    assert record["data"]["sha256"] == provenance.sha256(COHORTS["synthetic"])
    assert record["data"]["bytes"] == COHORTS["synthetic"].stat().st_size
    assert record["parameters"]["cutoff"] == built.params.cutoff
    assert record["environment"]["packages"]["pandas"] == pd.__version__
    assert set(record["notebooks"]) == set(built.timings)
    for name, entry in record["notebooks"].items():
        assert entry["seconds"] > 0 and entry["started"] >= record["build"]["started"][:19]
    footer = (built.out / "supplement.html").read_text(encoding="utf-8")
    assert record["data"]["sha256"] in footer and str(record["code"]["commit"]) in footer


def test_provenance_changes_when_one_byte_of_the_data_changes(tmp_path):
    original = COHORTS["synthetic"].read_bytes()
    changed = bytearray(original)
    position = original.index(b"\n") + 1 + original[original.index(b"\n") + 1:].index(b",") - 1
    changed[position] = ord("7") if changed[position] != ord("7") else ord("8")  # last digit of the first ID
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_bytes(original)
    b.write_bytes(bytes(changed))
    args = ({"cutoff": 75}, ROOT, pd.Timestamp("2026-01-01", tz="UTC").to_pydatetime(), 1.0, {})
    first, second = provenance.collect(a, *args), provenance.collect(b, *args)
    assert first["data"]["bytes"] == second["data"]["bytes"]
    assert first["data"]["sha256"] != second["data"]["sha256"]
    assert first["data"]["sha256"] == "6c4910d8b0911f1bbf0d68e895a171706e0ff0d0fe4a1ba41f39dd59dffa76a1"


def test_every_table_is_also_a_word_table(built):
    formatted = sorted((built.out / "tables").glob("*.html"))
    assert len(formatted) >= 20
    for html_path in formatted:
        word = docx.Document(html_path.with_suffix(".docx"))
        frame = pd.read_html(html_path)[0]
        assert len(word.tables) == 1, html_path.name
        table = word.tables[0]
        assert len(table.rows) == len(frame) + 1, html_path.name
        assert len(table.columns) == len(frame.columns), html_path.name
        header = [c.text for c in table.rows[0].cells]
        assert header == [str(c) for c in frame.columns], html_path.name
    word = docx.Document(built.out / "tables" / "table2.docx")
    cells = [[c.text for c in row.cells] for row in word.tables[0].rows]
    frame = pd.read_html(built.out / "tables" / "table2.html", keep_default_na=False)[0].astype(str)
    assert cells[1:] == frame.to_numpy().tolist()


def test_word_tables_are_deterministic(tmp_path):
    frame = pd.DataFrame({"Outcome": ["mRS", "sICH"], "Estimate (95% CI)": ["-0.12 (-0.5 to 0.3)", "0.80 (0.4-1.6)"]})
    write_docx(frame, tmp_path / "a.docx", "Table X. A caption.")
    write_docx(frame, tmp_path / "b.docx", "Table X. A caption.")
    assert (tmp_path / "a.docx").read_bytes() == (tmp_path / "b.docx").read_bytes()
    document = docx.Document(tmp_path / "a.docx")
    assert document.paragraphs[0].text == "Table X. A caption."
    assert [c.text for c in document.tables[0].rows[2].cells] == ["sICH", "0.80 (0.4-1.6)"]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def test_supplement_renders_in_a_real_browser(built):
    """Headless Chromium opens the file: every section and figure is rendered and no request leaves
    the machine. The screenshot is kept in tests/artifacts/ (git-ignored)."""
    executable = _chromium()
    if executable is None:
        if os.environ.get("REQUIRE_BROWSER"):
            pytest.fail("REQUIRE_BROWSER is set but no Chromium executable was found")
        pytest.skip("no Chromium on this machine (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            view = browser.new_page(viewport={"width": 1200, "height": 900})
            view.on("request", lambda r: requests.append(r.url))
            view.goto((built.out / "supplement.html").as_uri(), wait_until="load")
            sections = view.eval_on_selector_all("section", "els => els.map(e => e.id)")
            rendered = view.eval_on_selector_all(
                "img", "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight])")
            toc = view.eval_on_selector_all("nav a", "els => els.map(e => e.getAttribute('href'))")
            visible = view.is_visible("#table2 table")
            view.set_viewport_size({"width": 800, "height": 900})
            narrow = view.evaluate("() => document.documentElement.scrollWidth")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            view.screenshot(path=str(ARTIFACTS / "supplement.png"), full_page=True)
        finally:
            browser.close()
    assert sections == [e.anchor for e in SUPPLEMENT]
    assert toc == [f"#{e.anchor}" for e in SUPPLEMENT]
    figures = sum(kind == "figure" for e in SUPPLEMENT for kind, _ in e.items)
    assert len(rendered) == figures == 9 and all(ok and w > 500 and h > 300 for ok, w, h in rendered), rendered
    assert visible
    assert narrow <= 800, f"at 800 px the page scrolls sideways ({narrow} px wide)"
    outside = [u for u in requests if not u.startswith(("file:", "data:"))]
    assert outside == [], outside
    assert (ARTIFACTS / "supplement.png").read_bytes()[:8] == PNG_MAGIC


def test_captions_describe_the_analysis_that_was_run(built):
    from analysis_lib.supplement import caption_terms

    page = (built.out / "supplement.html").read_text(encoding="utf-8")
    assert "Unadjusted and overlap-weighted (IPTW) effects" in page
    assert "HC0 sandwich variance with the weights treated as known" in page
    assert "pooled SD of the unweighted groups, binary covariates standardised too" in page
    table2 = next(e for e in SUPPLEMENT if e.anchor == "table2").caption
    balance = next(e for e in SUPPLEMENT if e.anchor == "stable1").caption
    other = caption_terms({"estimand": "ATT", "variance": "m_estimation", "smd_binary": "raw", "hc_type": "HC3"})
    assert "ATT-weighted (IPTW)" in table2.format(**other)
    assert "M-estimation variance accounting for the estimated propensity score" in table2.format(**other)
    assert "SD of the unweighted treated group, binary covariates as raw differences" in balance.format(**other)
    assert "HC3 sandwich variance" in table2.format(**caption_terms({"hc_type": "HC3"}))


def test_every_table_and_figure_of_the_supplement_names_its_notebook_and_function(built):
    """A reviewer goes from any table or figure to its code in one step: the Source line."""
    import re

    from analysis_lib.registry import output_for

    page = (built.out / "supplement.html").read_text(encoding="utf-8")
    items = [rel for e in SUPPLEMENT for kind, rel in e.items if kind in ("table", "figure")]
    assert all(output_for(rel) is not None for rel in items), [r for r in items if output_for(r) is None]
    sources = re.findall(r'<p class="source">Source: <code>notebooks/(\d\d_\w+)\.ipynb</code>, '
                         r"<code>(analysis_lib\.[\w.]+)</code></p>", page)
    assert len(sources) == len(items)
    assert ("04_outcomes", "analysis_lib.steps.table2_of") in sources
    for notebook, function in set(sources):
        module, name = function.rsplit(".", 1)
        assert hasattr(__import__(module, fromlist=[name]), name), function  # the function exists
        assert (built.out / "notebooks" / f"{notebook}.ipynb").exists()


def test_figures_embed_truetype_fonts_and_word_tables_are_a4_with_repeated_headers(built):
    """Journals want TrueType (Type 42) or Type 1 fonts, not Type 3; European pages; a header row
    repeated on every page of a long table."""
    import re
    import zipfile

    pdfs = sorted((built.out / "figures").glob("*.pdf"))
    assert len(pdfs) == 9
    for pdf in pdfs:
        data = pdf.read_bytes()
        assert b"/Subtype /Type3" not in data and b"/FontFile2" in data, pdf.name
    for word in sorted((built.out / "tables").glob("*.docx")):
        xml = zipfile.ZipFile(word).read("word/document.xml").decode("utf-8")
        size = re.search(r'<w:pgSz w:w="(\d+)" w:h="(\d+)"', xml)
        assert sorted(map(int, size.groups())) == [11906, 16838], word.name  # A4 in twentieths of a point
        assert '<w:tblHeader w:val="true"/>' in xml, word.name


def test_every_figure_has_its_own_alt_text(built):
    import re

    page = (built.out / "supplement.html").read_text(encoding="utf-8")
    alts = re.findall(r'<img alt="([^"]+)" src="data:image/png', page)
    assert len(alts) == 9 and len(set(alts)) == len(alts), alts
    assert "Supplementary Table 1: balance within the subgroups at a glance (Connect-S plot)" in alts


def test_the_visible_text_has_no_internals_and_names_the_estimand(built, page):
    """What a reader sees: no nan, no negative zero, no raw keys of the data or the code, the
    paper's symbols, and the estimand of the weights (overlap weights: the ATO, never "ATE"
    for the primary effect)."""
    import html
    import re

    text = html.unescape(" ".join(page.text))
    text = text[:text.index("Provenance")]  # the footer lists parameters and packages by their names
    visible = re.sub(r"Source: .*?\n|notebooks/\S+|analysis_lib\.\S+|tables/\S+\.csv", " ", text)
    for pattern in (r"\bnan\b", r"\bNaN\b", r"-0\.0+\b", r"<=", r"\bstenosis_pct\b", r"\bmtici_2b3_after_mt\b",
                    r"=gpi\b", r"\bgpi\b", r"optimal cutoff pct", r"\bATE average\b",
                    r"\b(?!analysis_lib\b)[a-z0-9]+_[a-z0-9_]+\b"):  # no snake_case key of the data or the code
        hits = [visible[max(0, m.start() - 40):m.end() + 20] for m in re.finditer(pattern, visible)]
        assert not hits, (pattern, hits[:3])
    assert "ATO, the average treatment effect in the overlap population" in visible
    assert "≤75% stenosis" in visible and "Degree of MCA stenosis, %" in visible
    for name in ("table2", "cutoff_sweep", "center_sensitivity", "cluster_robust", "evalues"):
        shown = (built.out / "tables" / f"{name}.html").read_text(encoding="utf-8")
        assert not re.search(r"\bATE\b", html.unescape(shown)), name  # the mRS effect is an MD under ATO weights
    table2 = pd.read_html(built.out / "tables" / "table2.html")[0]
    assert "Note" not in table2.columns  # no row has a note on the synthetic cohort: no empty column
    table1 = pd.read_html(built.out / "tables" / "table1.html")[0]
    assert table1["Characteristic"].tolist()[0] == "Demographic and baseline characteristics"
    assert "Peri-procedural antiplatelet agents: GPI, n/N (%)" in table1["Characteristic"].tolist()
    assert not table1.filter(like="N = ").apply(lambda c: c.astype(str).str.contains(r"\d\.\d+-")).any().any()


def test_every_figure_has_a_number_and_a_caption(built, page):
    text = " ".join(page.text)
    for number in range(3, 9):
        assert text.count(f"Supplementary Figure {number}.") == 1, number
    assert "n beside each bar is the unweighted number of patients" in text
    assert "instability of the selected maximum, not a confidence interval" in text
    assert "fixed in advance as in the paper" in text  # the cutoff used and the one selected, reconciled


def test_plain_csv_writes_the_bytes_of_pandas_or_leaves_the_frame_to_it():
    import numpy as np

    from analysis_lib.outputs import plain_csv

    rng = np.random.default_rng(7)
    x = np.concatenate([rng.random(50), [1e-05, 1e16, 1.2345678901234568e17, 0.1, 1.0, -0.0, 5e-324, 1e22, 1.5e-07,
                                         12345.678, 1e15, 2.0 ** 60, np.nan, -3.5, 7.0]])
    plain = pd.DataFrame({"patient_id": [f"P-{i:04d} x" for i in range(x.size)], "propensity": x,
                          "count": np.arange(x.size, dtype=np.int64) - 20, "weight": x[::-1]})
    assert plain_csv(plain) == plain.to_csv(index=False, lineterminator="\n")
    # what would need pandas' quoting or formatting is left to pandas
    for column, values in (("patient_id", ["a,b"] + ["c"] * (x.size - 1)), ("patient_id", ['say "hi"'] * x.size),
                           ("patient_id", [""] * x.size), ("patient_id", [None] * x.size),
                           ("propensity", np.full(x.size, np.inf)), ("count", np.ones(x.size, bool))):
        assert plain_csv(plain.assign(**{column: values})) is None
