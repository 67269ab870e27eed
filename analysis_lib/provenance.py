"""Provenance of a build: what went in (data, parameters, code, environment) and how long it took.

Written to ``provenance.json`` and summarised in the supplement's footer, so a reader can tell
exactly which data and which code produced every number.
"""

from __future__ import annotations

import copy
import hashlib
import json
import platform
import re
import subprocess
import sys
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from pathlib import Path


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_state(root: Path) -> dict:
    """Commit of the compendium's code and whether the working tree differs from it."""
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, check=True).stdout
        return {"commit": commit, "dirty": bool(status.strip())}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None, "note": "not a git checkout"}


def packages() -> dict[str, str]:
    """Every installed distribution and its version (the environment of requirements.txt)."""
    return dict(_packages())


@lru_cache(maxsize=1)
def _packages() -> tuple[tuple[str, str], ...]:
    # Name and Version are read from the head of each METADATA file: the email parser of
    # ``dist.metadata`` took 0.15 s for the 290 distributions, a tenth of an unchanged rebuild.
    found = {}
    for dist in metadata.distributions():
        head = (dist.read_text("METADATA") or dist.read_text("PKG-INFO") or "").split("\n\n", 1)[0]
        fields = dict(re.findall(r"^(Name|Version):[ \t]*(.*?)\s*$", head, flags=re.MULTILINE))
        if fields.get("Name"):  # (not fields.get("Version", dist.version): that default parses METADATA every time)
            found[fields["Name"]] = fields["Version"] if "Version" in fields else dist.version
    return tuple(sorted(found.items(), key=lambda kv: kv[0].lower()))


def collect(data_path: str | Path, parameters: dict, root: Path, started: datetime, seconds: float,
            notebooks: dict[str, dict]) -> dict:
    """The provenance record of one build (JSON-serialisable)."""
    data_path = Path(data_path)
    params = {k: v for k, v in parameters.items() if k not in ("data_cache",)}
    return {
        "data": {"file": data_path.name, "path": str(data_path), "sha256": sha256(data_path),
                 "bytes": data_path.stat().st_size},
        "parameters": params,
        "code": {"package": "analysis_lib", "version": metadata.version("analysis_lib"), **git_state(root)},
        "environment": {"python": sys.version.split()[0], "implementation": platform.python_implementation(),
                        "platform": platform.platform(), "packages": packages()},
        "build": {"started": started.astimezone(timezone.utc).isoformat(timespec="seconds"),
                  "seconds": round(seconds, 2)},
        "notebooks": notebooks,
    }


def write(record: dict, path: str | Path) -> Path:
    Path(path).write_text(json.dumps(record, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return Path(path)


TIMING_KEYS = ("start_time", "end_time", "duration")


def without_timing(notebook: dict) -> dict:
    """An executed notebook without its timing metadata (papermill's start, end and duration of
    the notebook and of each cell, and the kernel's execution timestamps), for comparing two
    executions: everything else, outputs included, must be identical for the same inputs."""
    nb = copy.deepcopy(notebook)
    for key in TIMING_KEYS:
        nb.get("metadata", {}).get("papermill", {}).pop(key, None)
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {})
        meta.pop("execution", None)
        for key in TIMING_KEYS:
            meta.get("papermill", {}).pop(key, None)
    return nb
