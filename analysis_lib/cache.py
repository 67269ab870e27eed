"""Incremental builds: a notebook whose inputs are unchanged is not executed again.

A notebook's inputs, as one content hash (its *key*): the notebook file; the parameters papermill
injects into it (those it declares, the temporary cohort file excepted); the bytes of the data
file and of the column map when it declares ``data_path``; the published tables when it declares
``published_dir``; the source of ``analysis_lib``; and the Python and package versions. The
simulation study and the audit declare no data, so their key, and their reuse, survive a change
of data file.

``provenance.json`` records each notebook's key and the SHA-256 of every file it wrote. The next
build into the same folder copies a notebook's files from the previous folder instead of running
it when the key is the same and every file is there with its recorded hash; anything else (a
changed input, a missing or edited file, an unreadable provenance) means running it again. The
copies are the bytes a new run would write (the build is deterministic), so the folder is the
same as after a full rebuild; ``--force`` runs everything.

The notebooks that read no data (the simulation study, the audit) are also kept in a *store*
shared by every build of the checkout (``.cache/notebooks/`` in it, or ``$ANALYSIS_LIB_CACHE``),
one folder per key: a build into a new folder, or with another data file, copies them from there.
Their key leaves out the output folder, and the one place a notebook names it (the executed
notebook's parameters and papermill's record of its path) is rewritten for the new folder. An
entry is written whole or not at all (a temporary folder renamed into place); one that is
incomplete, unreadable or whose files no longer have their recorded hashes is ignored with a
one-line notice, and the notebook runs again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from . import provenance
from .params import Parameters
from .registry import OUTPUTS

_LIBRARY_SUFFIXES = (".py", ".csv", ".yml", ".yaml", ".json", ".md")


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def library_hash() -> str:
    """SHA-256 over the files of ``analysis_lib`` (path and content, sorted by path)."""
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in _LIBRARY_SUFFIXES
                       and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(root)).encode("utf-8") + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def environment_hash() -> str:
    """The Python version and every installed package's version, as one hash."""
    return _digest({"python": sys.version, "packages": provenance.packages()})


def _folder_hash(folder: Path) -> str:
    return _digest({p.name: provenance.sha256(p) for p in sorted(Path(folder).glob("*")) if p.is_file()})


def build_inputs(params: Parameters) -> dict[str, str | None]:
    """The hashes every notebook's key draws on, computed once per build (the data file may be
    large): the library, the environment, the data file, the column map, the published tables."""
    return {"library": library_hash(), "environment": environment_hash(), "data": provenance.sha256(params.data_path),
            "column_map": provenance.sha256(params.column_map) if params.column_map else None,
            "published": _folder_hash(params.published_dir)}


def reads_data(injected: dict) -> bool:
    """Whether a notebook reads the registry file (it declares ``data_path``)."""
    return "data_path" in injected


def notebook_key(source: Path, injected: dict, inputs: dict[str, str | None]) -> str:
    """The content hash of a notebook's inputs (module docstring), ``inputs`` from
    :func:`build_inputs`: the data and column map only when it declares ``data_path``, the
    published tables only when it declares ``published_dir``. The output folder is part of the
    key of a notebook that reads data, not of one kept in the store (:func:`stored`)."""
    ignored = {"data_cache"} if reads_data(injected) else {"data_cache", "output_dir"}
    parts = {"notebook": provenance.sha256(source), "parameters": {k: v for k, v in injected.items()
                                                                     if k not in ignored},
             "library": inputs["library"], "environment": inputs["environment"]}
    if "data_path" in injected:
        parts["data"], parts["column_map"] = inputs["data"], inputs["column_map"]
    if "published_dir" in injected:
        parts["published"] = inputs["published"]
    return _digest(parts)


def written_files(folder: Path, name: str, parameters: dict) -> dict[str, str]:
    """The files notebook ``name`` wrote into ``folder`` (its registry outputs and the executed
    notebook), each with its SHA-256."""
    files = [f"notebooks/{name}.ipynb"]
    for output in OUTPUTS:
        if output.notebook == name and output.expected(parameters):
            files += list(output.files)
    return {f: provenance.sha256(folder / f) for f in sorted(set(files)) if (folder / f).is_file()}


def previous_record(out: Path) -> tuple[dict | None, str]:
    """The previous build's provenance record in ``out``, or None and why (empty when there is
    simply no previous build)."""
    path = Path(out) / "provenance.json"
    if not path.is_file():
        return None, ""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, f"note: {path} is unreadable; every notebook runs again"
    if not isinstance(record, dict):
        return None, f"note: {path} is not a build record; every notebook runs again"
    return record, ""  # a record without notebook keys (an older build) reuses nothing, silently


def reusable(out: Path, record: dict | None, name: str, key: str) -> dict[str, str] | None:
    """The files of notebook ``name`` to copy from the previous build, or None when it must run:
    the same key, and every recorded file present with its recorded hash."""
    if record is None:
        return None
    notebooks = record.get("notebooks")
    entry = notebooks.get(name) if isinstance(notebooks, dict) else None
    if not isinstance(entry, dict) or entry.get("inputs") != key or not isinstance(entry.get("files"), dict):
        return None
    files = entry["files"]
    if f"notebooks/{name}.ipynb" not in files or not _intact(Path(out), files):
        return None
    return files


def _intact(folder: Path, files: dict[str, str]) -> bool:
    """Every file of ``files`` (path in ``folder`` -> SHA-256) is there with its hash."""
    return all((folder / rel).is_file() and provenance.sha256(folder / rel) == digest for rel, digest in files.items())


def copy_files(out: Path, work: Path, files: dict[str, str]) -> None:
    """Copy a reused notebook's files from the previous folder into the new one."""
    for rel in files:
        target = Path(work) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(out) / rel, target)


# ------------------------------------------------------------------ the store shared by builds
STORE_ENV = "ANALYSIS_LIB_CACHE"
_MANIFEST = "entry.json"
_KEPT_PER_NOTEBOOK = 4  # the most recently used entries of each notebook; older ones are removed


def default_store(root: Path) -> Path:
    """``$ANALYSIS_LIB_CACHE``, or ``.cache/notebooks/`` in the checkout ``root``."""
    return Path(os.environ[STORE_ENV]) if os.environ.get(STORE_ENV) else Path(root) / ".cache" / "notebooks"


def stored(store: Path, name: str, key: str) -> tuple[dict | None, str]:
    """The store's entry for notebook ``name`` with inputs ``key`` (its manifest: ``files`` with
    their hashes, ``work`` the folder it was run in, ``seconds``, ``started``), or None and a
    one-line notice when an entry exists but cannot be trusted (empty when there is none)."""
    folder = Path(store) / key
    if not folder.is_dir():
        return None, ""
    notice = f"note: the stored {name} in {folder} is incomplete or was changed; it runs again"
    try:
        entry = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
        files, work = entry["files"], entry["work"]
        if (entry.get("notebook") != name or not isinstance(files, dict) or f"notebooks/{name}.ipynb" not in files
                or not _intact(folder, files)):
            return None, notice
        os.utime(folder)  # most recently used
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, notice
    return {"files": files, "work": str(work), "seconds": float(entry.get("seconds", 0.0)),
            "started": str(entry.get("started", ""))}, ""


def copy_from_store(store: Path, key: str, entry: dict, work: Path) -> None:
    """Copy a stored notebook's files into the build folder ``work``; in the executed notebook the
    folder it was run in is replaced by ``work`` (as written in JSON), which makes it the notebook
    a run into ``work`` writes."""
    old, new = (json.dumps(str(p), ensure_ascii=False)[1:-1] for p in (entry["work"], work))
    for rel in entry["files"]:
        source, target = Path(store) / key / rel, Path(work) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".ipynb"):
            target.write_text(source.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
        else:
            shutil.copy2(source, target)


def save_to_store(store: Path, name: str, key: str, work: Path, files: dict[str, str], seconds: float,
                  started: str) -> None:
    """Keep notebook ``name``'s files (``files``: path in ``work`` -> hash) under ``key``: written
    into a temporary folder, renamed into place, the oldest entries of the notebook beyond the
    few most recently used removed. A store that cannot be written is skipped silently (it only
    saves time)."""
    store = Path(store)
    temporary = store / f".{key}.{os.getpid()}.tmp"
    try:
        shutil.rmtree(temporary, ignore_errors=True)
        for rel in files:
            (temporary / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(work) / rel, temporary / rel)
        (temporary / _MANIFEST).write_text(json.dumps({"notebook": name, "files": files, "work": str(work),
                                                       "seconds": seconds, "started": started}, indent=1),
                                           encoding="utf-8")
        shutil.rmtree(store / key, ignore_errors=True)
        os.replace(temporary, store / key)
        _prune(store, name)
    except OSError:
        shutil.rmtree(temporary, ignore_errors=True)


def _prune(store: Path, name: str) -> None:
    entries = []
    for folder in store.iterdir():
        try:
            if folder.is_dir() and json.loads((folder / _MANIFEST).read_text(encoding="utf-8")).get("notebook") == name:
                entries.append((folder.stat().st_mtime, folder))
        except (OSError, ValueError, AttributeError):
            continue
    for _, folder in sorted(entries, reverse=True)[_KEPT_PER_NOTEBOOK:]:
        shutil.rmtree(folder, ignore_errors=True)
