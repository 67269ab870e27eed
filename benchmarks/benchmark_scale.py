"""How the whole build grows with the number of patients (printed, never asserted).

Registry-like cohorts (``analysis_lib.synthetic.registry_like_cohort``: 500 centers, 12 % of the
patients missing a propensity covariate, as in the shipped export) at n = 10^3 ... 10^6, cached
in benchmarks/.cache/ (git-ignored), each built cold into a new folder with ``-p
bootstrap_replicates 0``; the simulation study, which reads no data, comes from a store filled
by a first build (it costs the same at every n; its own time is printed once). For each n: wall
time, the peak memory of the largest process (the build, a worker or a notebook's kernel) and of
the whole process tree, every notebook's time and peak memory (its kernel's), and the same
command again (an unchanged rebuild) as a share of the cold build. Targets at 10^6: 60 s and no
process above 2 GB, an unchanged rebuild at most 10 % (README.md, "Benchmarks", has the measured numbers).

    .venv/bin/python benchmarks/benchmark_scale.py [--sizes 1000 10000 100000 1000000]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import psutil

from analysis_lib.build import NOTEBOOKS

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache"
NOTEBOOK_ENV = "ANALYSIS_LIB_NOTEBOOK"  # set by the build in each notebook's kernel (analysis_lib.build)
GIB = 2 ** 30


def cohort(n: int) -> Path:
    path = CACHE / f"registry_{n}.csv"
    if not path.exists():
        from analysis_lib.synthetic import registry_like_cohort, write_cohort

        CACHE.mkdir(parents=True, exist_ok=True)
        table1 = pd.read_csv(ROOT / "data" / "published" / "table1_published.csv")
        write_cohort(registry_like_cohort(table1, n), path)
    return path


def kernel_of(p: psutil.Process) -> str:
    """The notebook a kernel process runs, or "" for another process: a kernel started as a new
    process has it in its environment; one forked by the build's kernel server (whose environment
    as the system shows it is the server's) in its process name, "kernel " and the notebook's
    first eight characters (analysis_lib.kernel_server)."""
    if "ipykernel" in " ".join(p.cmdline()):
        return p.environ().get(NOTEBOOK_ENV, "")
    name = p.name()
    if name.startswith("kernel "):
        return next((notebook for notebook in NOTEBOOKS if notebook.startswith(name[len("kernel "):])), "")
    return ""


def high_water_mark(pid: int) -> int | None:
    """A process's peak resident memory in bytes (``VmHWM`` of /proc; ``None`` elsewhere)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def build(path: Path, out: Path) -> dict:
    """Build ``path`` into ``out``: wall seconds, peak RSS of the largest process and of the tree
    (GiB), and per notebook its seconds and its kernel's peak RSS."""
    n = sum(1 for _ in open(path)) - 1
    args = [sys.executable, "-m", "analysis_lib", "build", "--data", str(path), "--out", str(out),
            "-p", "bootstrap_replicates", "0", "-p", "patients_icas_lvo_evt", str(n), "-p", "patients_screened", str(n)]
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    parent = psutil.Process(proc.pid)
    process_peak, tree_peak, kernels, names = 0, 0, {}, {}
    # Sampled four times a second (a faster sampler took 5 % of a core from the build it measured);
    # each process's peak is its own high-water mark (VmHWM), so a short peak between samples
    # still counts (only one in a process's last quarter second can be missed).
    while proc.poll() is None:
        try:
            members = [parent, *parent.children(recursive=True)]
        except psutil.Error:
            break
        total = 0
        for p in members:
            try:
                rss = p.memory_info().rss
                if not names.get(p.pid):  # asked again until it is a kernel (a new process is its parent until exec)
                    names[p.pid] = kernel_of(p)
                peak = high_water_mark(p.pid) or rss
            except psutil.Error:
                continue
            total += rss
            process_peak = max(process_peak, peak)
            if names[p.pid]:
                kernels[names[p.pid]] = max(kernels.get(names[p.pid], 0), peak)
        tree_peak = max(tree_peak, total)
        time.sleep(0.25)
    proc.wait()
    reader.join()
    wall = time.perf_counter() - start
    output = "".join(lines)
    if proc.returncode:
        raise SystemExit(f"build failed for {path}:\n{output}")
    seconds = {m.group(1): float(m.group(2)) for m in re.finditer(r"\] (\S+) done \(([\d.]+) s\)", output)}
    return {"wall": wall, "process": process_peak / GIB, "tree": tree_peak / GIB,
            "notebooks": {name: (s, kernels.get(name, 0) / GIB) for name, s in seconds.items()},
            "reused": re.findall(r"\[reused\] (\S+)", output)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000, 1000000])
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / GIB:.0f} GiB, "
          f"Python {platform.python_version()}, {platform.processor() or platform.machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ANALYSIS_LIB_CACHE"] = str(Path(tmp) / "store")  # a store of its own
        first = build(cohort(args.sizes[0]), Path(tmp) / "first")  # fills the store with the simulation
        simulation = first["notebooks"].get("07_simulation", (float("nan"), 0.0))
        print(f"the simulation study (run once, then from the store): {simulation[0]:.1f} s, "
              f"{simulation[1]:.2f} GiB")
        rows = []
        for n in args.sizes:
            result = build(cohort(n), Path(tmp) / f"n{n}")
            again = build(cohort(n), Path(tmp) / f"n{n}")  # the same command again: every notebook reused
            rows.append((n, result))
            print(f"n = {n:>9,}: {result['wall']:6.1f} s; largest process {result['process']:4.2f} GiB, "
                  f"all processes {result['tree']:4.2f} GiB (reused: {', '.join(result['reused'])}); "
                  f"unchanged rebuild {again['wall']:.2f} s ({100 * again['wall'] / result['wall']:.1f} %)", flush=True)
    names = sorted({name for _, r in rows for name in r["notebooks"]})
    print("\nper notebook, seconds / peak GiB of its kernel (notebooks share 2 workers, so they overlap):")
    print(f"{'notebook':<18}" + "".join(f"{n:>17,}" for n, _ in rows))
    for name in names:
        cells = [r["notebooks"].get(name) for _, r in rows]
        print(f"{name:<18}" + "".join(f"{c[0]:9.1f} / {c[1]:4.2f}" if c else f"{'-':>17}" for c in cells))
    n, last = rows[-1]
    print(f"\nat n = {n:,}: {last['wall']:.1f} s (target 60 s); largest process {last['process']:.2f} GiB "
          f"(target 2 GB)")


if __name__ == "__main__":
    main()
