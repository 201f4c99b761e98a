"""The dropout-placement study: does the blog post's advice hold on real training runs?

:func:`run_study` trains a grid of placements x rates x kinds x training-set
sizes x seeds (plus batch-norm and deeper-model variants; see
:mod:`minicnn.tools.study.grid`), writes every run to ``runs.csv``, tests each claim
with paired tests over seeds (:mod:`minicnn.tools.study.stats`) and writes
``report.md`` (and PNG plots when matplotlib is installed;
:mod:`minicnn.tools.study.report`). ``minicnn study`` on the command line calls it.

Examples
--------
>>> from minicnn.tools.study import make_plan
>>> plan = make_plan("digits", seeds=5)
>>> plan.sizes, len(plan.seeds)
((100, 300, 'full'), 5)
"""

import json
import platform
import time
from pathlib import Path

from .grid import make_plan
from .report import plot, read_runs, render, write_runs
from .runner import load_split, run_plan
from .stats import analyse

__all__ = ["make_plan", "run_study", "report_from_csv"]


def _write_outputs(rows, meta, out_dir):
    out_dir = Path(out_dir)
    primary, exploratory = analyse(rows)
    plots = plot(rows, primary, out_dir)
    report = render(rows, primary, exploratory, meta, plots)
    (out_dir / "report.md").write_text(report, encoding="utf-8")
    return primary


def run_study(out_dir="study", data="digits", sizes=None, seeds=None, quick=False, steps=None, n_jobs=-1,
              scheduler=None, verbose=1, command=None):
    """Run the placement study and write ``runs.csv``, ``study.json`` and ``report.md`` into ``out_dir``.

    Parameters
    ----------
    out_dir : str or path-like, default="study"
        Created if missing.
    data : {"digits", "mnist"}, default="digits"
    sizes : sequence of int or "full", default=None
        Training-set sizes (None: the data set's defaults).
    seeds : int or sequence of int, default=None
        An int ``k`` means seeds ``0..k-1``; None means 5 (3 with ``quick``).
    quick : bool, default=False
        Tiny grid (for tests and smoke runs).
    steps : int, default=None
        Gradient steps per run (None: the data set's default).
    n_jobs : int, default=-1
        joblib workers.
    scheduler : str or None, default=None
        Dask scheduler address; requires ``distributed``.
    verbose : int, default=1
    command : str, default=None
        Command line recorded in the report.

    Returns
    -------
    list of dict
        The primary claims' results (title, mean difference, p-values, verdict).
    """
    plan = make_plan(data, sizes=sizes, seeds=seeds, quick=quick, steps=steps)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    X_pool, _, X_test, _ = load_split(plan.data, plan.profile.test_size)
    if verbose:
        print(f"study: {plan.n_runs} runs ({len(plan.unique_configs)} distinct networks x {len(plan.sizes)} sizes "
              f"x {len(plan.seeds)} seeds) on {data}", flush=True)
    start = time.perf_counter()
    rows = run_plan(plan, n_jobs=n_jobs, scheduler=scheduler, verbose=verbose)
    meta = dict(data=data, n_test=len(X_test), n_pool=len(X_pool), steps=plan.steps,
                batch_size=plan.profile.batch_size, learning_rate=plan.profile.learning_rate,
                wall_time_s=time.perf_counter() - start, n_jobs=n_jobs, quick=quick,
                machine=f"{platform.machine()}, {_cpus()} CPUs", command=command, load_average=_load())
    write_runs(rows, out_dir / "runs.csv")
    (out_dir / "study.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return _write_outputs(rows, meta, out_dir)


def report_from_csv(csv_path, out_dir):
    """Re-analyse an existing ``runs.csv`` (and its ``study.json`` if present) into ``out_dir/report.md``.

    Returns
    -------
    list of dict
        The primary claims' results.
    """
    csv_path = Path(csv_path)
    rows = read_runs(csv_path)
    meta_path = csv_path.with_name("study.json")
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return _write_outputs(rows, meta, out_dir)


def _load():
    """The 5-minute load average at the end of the run, when it exceeds the CPU count (else None)."""
    import os

    if not hasattr(os, "getloadavg"):
        return None
    load = os.getloadavg()[1]
    return f"{load:.1f} on {_cpus()} CPUs" if load > _cpus() + 0.5 else None


def _cpus():
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
