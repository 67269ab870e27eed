"""Incremental builds (analysis_lib.cache): an unchanged rebuild copies every notebook from the
previous build, a changed notebook runs alone, a tampered or unreadable record never yields stale
results, ``force`` runs everything, and the folder is the one a full rebuild writes."""

import json
import shutil

import pytest
from conftest import COHORTS, ROOT

from analysis_lib.build import NOTEBOOKS, BuildError, run_build
from analysis_lib.provenance import without_timing

SYNTHETIC = COHORTS["synthetic"]
FAST = [("bootstrap_replicates", "0"), ("simulation_replicates", "0"), ("mi_imputations", "0")]


def build(out, log=None, data=SYNTHETIC, **kw):
    lines = []
    run_build(data, out, FAST, log=lines.append, **kw)
    return lines


def reused(lines):
    return sorted(line.split()[1] for line in lines if line.startswith("[reused]"))


def executed(lines):
    return sorted(line.split()[1] for line in lines if line.startswith("[") and " done " in line)


def files(folder):
    """Every output file (the notebooks without their timing metadata; provenance.json and the
    supplement, whose footer carries the build's time, apart)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if not p.is_file() or rel in ("provenance.json", "supplement.html"):
            continue
        out[rel] = (json.dumps(without_timing(json.loads(p.read_text())), sort_keys=True) if p.suffix == ".ipynb"
                    else p.read_bytes())
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """This module's own store of the notebooks that read no data (empty at its first build)."""
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def first(tmp_path_factory, store):
    out = tmp_path_factory.mktemp("cache") / "out"
    lines = build(out, store=store)
    return out, lines


DATA_FREE = ["00_audit", "07_simulation"]


def test_an_unchanged_rebuild_reuses_every_notebook_and_writes_what_a_full_rebuild_writes(first):
    out, lines = first
    assert executed(lines) == sorted(NOTEBOOKS) and reused(lines) == []
    record = json.loads((out / "provenance.json").read_text())
    for name in NOTEBOOKS:  # each notebook's inputs and the hash of every file it wrote
        entry = record["notebooks"][name]
        assert len(entry["inputs"]) == 64 and f"notebooks/{name}.ipynb" in entry["files"] and not entry["reused"]
    assert "tables/table2.csv" in record["notebooks"]["04_outcomes"]["files"]
    again = build(out)
    assert reused(again) == sorted(NOTEBOOKS) and executed(again) == []
    assert all(json.loads((out / "provenance.json").read_text())["notebooks"][n]["reused"] for n in NOTEBOOKS)
    incremental = files(out)
    assert executed(build(out, force=True)) == sorted(NOTEBOOKS)  # a full rebuild into the same folder
    assert files(out) == incremental


def test_an_unchanged_rebuild_does_not_read_the_data_and_other_bytes_are_validated_again(tmp_path, monkeypatch):
    from analysis_lib import build as build_module

    data, out = tmp_path / "registry.csv", tmp_path / "out"
    shutil.copy(SYNTHETIC, data)
    build(out, data=data, store=None)
    built = files(out)

    def no_reading(*args, **kwargs):
        raise AssertionError("the unchanged rebuild read the data")

    with monkeypatch.context() as patched:
        patched.setattr(build_module, "preflight", no_reading)
        assert reused(build(out, data=data, store=None)) == sorted(NOTEBOOKS)
    assert files(out) == built
    lines = data.read_text().splitlines()
    row, age = lines[1].split(","), lines[0].split(",").index("age")
    row[age] = "-5"  # the same file, one impossible age: validated, refused in one line, outputs kept
    data.write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")
    with pytest.raises(BuildError, match="age") as refused:
        build(out, data=data, store=None)
    assert "\n" not in str(refused.value) and files(out) == built


# The tests below share the folder of ``first`` (reuse is by folder: the executed notebooks name
# it) and run in this order, each leaving it as a build of the shipped notebooks and data.
def test_a_changed_notebook_runs_alone(first, tmp_path):
    out, _ = first
    notebooks = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", notebooks)
    nb = json.loads((notebooks / "05_sensitivity.ipynb").read_text())
    markdown = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    markdown["source"] = ["An edited sentence.\n"] + list(markdown["source"])
    (notebooks / "05_sensitivity.ipynb").write_text(json.dumps(nb, indent=1))
    lines = []
    run_build(SYNTHETIC, out, FAST, log=lines.append, notebook_dir=notebooks)
    assert executed(lines) == ["05_sensitivity"] and len(reused(lines)) == len(NOTEBOOKS) - 1
    assert "An edited sentence." in (out / "notebooks" / "05_sensitivity.ipynb").read_text()
    assert executed(build(out)) == ["05_sensitivity"]  # the shipped notebook again


def test_a_tampered_output_runs_its_notebook_again(first):
    out, _ = first
    table2 = out / "tables" / "table2.csv"
    original = table2.read_bytes()
    table2.write_bytes(original.replace(b"mrs_90d", b"mrs_9od", 1))  # an edit after the build
    assert executed(build(out)) == ["04_outcomes"] and table2.read_bytes() == original


def test_the_data_free_notebooks_are_reused_across_data_files(first, tmp_path):
    """The audit and the simulation study read no data: another data file reruns the others only."""
    out, _ = first
    other = tmp_path / "other.csv"
    other.write_bytes(SYNTHETIC.read_bytes().replace(b"SYN-0001,", b"SYN-9999,", 1))
    lines = []
    run_build(other, out, FAST, log=lines.append)
    assert reused(lines) == ["00_audit", "07_simulation"]
    assert executed(lines) == sorted(set(NOTEBOOKS) - {"00_audit", "07_simulation"})


def test_an_unreadable_record_is_ignored_with_a_one_line_notice(first):
    out, _ = first
    (out / "provenance.json").write_text('{"notebooks": {"00_audit": ')  # half-written
    lines = build(out, store=None)
    assert lines[0] == f"note: {out / 'provenance.json'} is unreadable; every notebook runs again"
    assert executed(lines) == sorted(NOTEBOOKS)


def test_a_new_folder_and_another_data_file_take_the_data_free_notebooks_from_the_store(first, store, tmp_path):
    out = tmp_path / "elsewhere"
    lines = build(out, data=COHORTS["missing"], store=store)
    assert reused(lines) == DATA_FREE and executed(lines) == sorted(set(NOTEBOOKS) - set(DATA_FREE))
    assert all(f"stored in {store}" in line for line in lines if line.startswith("[reused]"))
    copied = files(out)
    assert executed(build(out, data=COHORTS["missing"], force=True, store=store)) == sorted(NOTEBOOKS)
    assert files(out) == copied  # the stored copies are what a run into this folder writes
    assert str(out.parent / f".{out.name}.partial") in (out / "notebooks" / "07_simulation.ipynb").read_text()


def test_a_changed_or_half_written_store_entry_is_ignored_with_a_one_line_notice(first, store, tmp_path):
    entries = {json.loads((p / "entry.json").read_text())["notebook"]: p for p in store.iterdir() if p.is_dir()}
    assert sorted(entries) == DATA_FREE  # one entry each: the same inputs replace an entry
    notebook = entries["07_simulation"] / "notebooks" / "07_simulation.ipynb"
    notebook.write_text(notebook.read_text().replace("simulation", "simulatiom", 1))
    (entries["00_audit"] / "entry.json").write_text('{"notebook": "00_au')
    lines = build(tmp_path / "again", store=store)
    for name in DATA_FREE:
        assert f"note: the stored {name} in {entries[name]} is incomplete or was changed; it runs again" in lines
    assert executed(lines) == sorted(NOTEBOOKS) and reused(lines) == []
    assert "simulatiom" not in notebook.read_text()  # the run replaced the entry
    assert build(tmp_path / "third", store=store) and len(list(store.iterdir())) == 2


def test_the_environment_hash_reads_every_installed_version_as_importlib_metadata_does():
    from importlib import metadata

    from analysis_lib.provenance import packages

    expected = {dist.metadata["Name"]: dist.version for dist in metadata.distributions()}
    assert packages() == expected and packages()["numpy"] == metadata.version("numpy")
