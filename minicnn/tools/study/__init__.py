"""The dropout-placement study: where should dropout go, on these data sets or on yours?

:func:`run_study` trains, per data set, every model of its profile with every
dropout arm and rate over training-set sizes and seeds
(:mod:`minicnn.tools.study.grid`), appends each run to ``runs.csv`` as it
finishes (:mod:`minicnn.tools.study.runner`; a re-run skips finished runs),
chooses each arm's rate on validation data and tests each claim per data set
and size with paired tests and Holm's correction
(:mod:`minicnn.tools.study.stats`), and writes ``report.md`` ending in a
recommendation, plus PNG plots with matplotlib
(:mod:`minicnn.tools.study.report`). ``minicnn study`` calls it.

The default study (digits, MNIST, Fashion-MNIST; 10 seeds) is sized for about
two hours on a quiet 2-core machine: ``estimate`` below prints the plan's
estimated time from the measured per-epoch costs in
:data:`minicnn.tools.study.grid.EPOCH_COST_S`.

Examples
--------
>>> from minicnn.tools.study import make_plan
>>> plan = make_plan("mnist")
>>> plan.sizes, len(plan.seeds), plan.meaningful
((1000, 10000), 10, True)
"""

import json
import os
import platform
import time
from pathlib import Path

from .grid import DEFAULT_DATA, fit_budget, make_plan
from .report import plot, read_runs, render, typed, warning_text
from .runner import run_plan
from .stats import analyse, recommend

__all__ = ["make_plan", "run_study", "report_from_csv", "estimate", "measure_epoch_cost"]

NAMES = dict(report="report.md", runs="runs.csv", meta="study.json")
DOCS_NAMES = dict(report="STUDY.md", runs="study_runs.csv", meta="study_meta.json")   # ``minicnn study --docs``


def _cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _load():
    if not hasattr(os, "getloadavg"):
        return None
    load = os.getloadavg()[1]
    return f"{load:.1f} on {_cpus()} CPUs" if load > _cpus() + 0.5 else None


def measure_epoch_cost(plan, n_images=300):
    """CPU seconds of one training epoch over 1000 images, per model group of ``plan`` (measured now).

    Trains each group's heaviest configuration (dropout after every layer) for one epoch on ``n_images``
    images with one thread and reads the process CPU time, so another load on the machine does not inflate
    it much. Used by a wall-time budget on data the cost table does not know (e.g. the user's own).

    Returns
    -------
    dict
        group -> seconds per epoch per 1000 training images.
    """
    import warnings

    from minicnn import CNNClassifier

    from .data import load_split

    X, y = load_split(plan.data, plan.profile.test_size)[:2]
    n = min(n_images, len(X))
    heaviest = {}
    for config in plan.unique_configs:
        if config.group not in heaviest or config.placement == "after_each_layer":
            heaviest.setdefault(config.group, config)
            if config.placement == "after_each_layer":
                heaviest[config.group] = config
    costs = {}
    for config in heaviest.values():
        clf = CNNClassifier(**config.estimator_params(), batch_size=plan.profile.batch_size, max_iter=1,
                            n_threads=1, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            clf.fit(X[:2], y[:2])   # JIT compilation and first-touch costs outside the measurement
            start = time.process_time()
            clf.fit(X[:n], y[:n])
            costs[config.group] = (time.process_time() - start) * 1000 / n
    return costs


def estimate(plans, n_workers):
    """Estimated wall seconds of ``plans`` on ``n_workers`` CPUs (from the measured per-epoch cost table)."""
    from .data import load_split

    return sum(p.estimated_cost_s(len(load_split(p.data, p.profile.test_size)[0])) for p in plans) / n_workers


def _workers(n_jobs):
    return _cpus() if n_jobs == -1 else max(1, n_jobs)


def run_study(out_dir="study", data=DEFAULT_DATA, sizes=None, seeds=None, quick=False, layers=None,
              padding="same", rates=None, schedule="cosine", budget_s=None, n_jobs=-1, scheduler=None, verbose=1,
              command=None, stream=None, names=None):
    """Run (or resume) the placement study and write ``runs.csv``, ``study.json`` and ``report.md``.

    Parameters
    ----------
    out_dir : str or path-like, default="study"
        Created if missing; a ``runs.csv`` already there is resumed (finished runs are skipped).
    data : str or sequence of str, default=("digits", "mnist", "fashion-mnist")
        Built-in data sets, ``"idx:IMAGES,LABELS"`` or a ``.npz`` file with arrays ``X`` and ``y``.
    sizes, seeds, quick, layers, padding, rates, schedule
        See :func:`minicnn.tools.study.grid.make_plan`.
    budget_s : float, default=None
        Wall-time budget in seconds: the per-epoch cost is measured on the data, then the grid is cut
        (:func:`minicnn.tools.study.grid.fit_budget`) until the estimate fits.
    n_jobs : int, default=-1
        joblib workers (-1: one per CPU).
    scheduler : str or None, default=None
        Dask scheduler address; requires ``distributed``.
    verbose : int, default=1
    command : str, default=None
        Command line recorded in the report.
    stream : file, default=None
        Where progress and the plan summary go (default: stderr for progress, stdout for the summary).
    names : dict, default=None
        File names of the ``report``, the ``runs`` CSV and the ``meta`` JSON (default :data:`NAMES`;
        :data:`DOCS_NAMES` writes the project's ``docs/STUDY.md`` and ``docs/study_runs.csv``).

    Returns
    -------
    results : list of dict
        :func:`minicnn.tools.study.stats.analyse` results.
    meta : dict
        Run facts, including ``warning`` (None for a meaningful study).
    """
    import sys

    from .data import load_split

    names = dict(NAMES, **(names or {}))
    datas = (data,) if isinstance(data, str) else tuple(data)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plans = [make_plan(d, sizes=sizes, seeds=seeds, quick=quick, layers=layers, padding=padding, rates=rates,
                       schedule=schedule) for d in datas]
    workers = _workers(n_jobs)
    over_budget, cuts, estimates = False, [], {}
    if budget_s is not None:
        costs = {p.data: measure_epoch_cost(p) for p in plans}
        pools = {p.data: len(load_split(p.data, p.profile.test_size)[0]) for p in plans}
        full = {p.data: p.estimated_cost_s(pools[p.data], costs[p.data]) for p in plans}
        fitted = []
        for p in plans:
            share = budget_s * full[p.data] / max(sum(full.values()), 1e-9)
            p, wall = fit_budget(p, share, pools[p.data], workers, costs[p.data])
            estimates[p.data] = wall
            over_budget |= wall > share * 1.05 or not p.meaningful
            cuts += [f"{p.data}: {c}" for c in p.cuts]
            fitted.append(p)
        plans = fitted
    else:
        for p in plans:
            estimates[p.data] = p.estimated_cost_s(len(load_split(p.data, p.profile.test_size)[0])) / workers
    out = sys.stdout if stream is None else stream
    meta = dict(command=command, quick=quick, over_budget=over_budget, cuts=cuts,
                few_seeds=any(len(p.seeds) < 10 for p in plans), n_seeds=min(len(p.seeds) for p in plans),
                schedule=schedule, batch_size=plans[0].profile.batch_size,
                learning_rate=plans[0].profile.learning_rate, patience=plans[0].profile.n_iter_no_change,
                n_jobs=n_jobs, machine=f"{platform.machine()}, {_cpus()} CPUs", budget_s=budget_s,
                estimated_wall_s={d: round(s) for d, s in estimates.items()},
                default_cuts={p.data: p.profile.cut for p in plans if p.profile.cut})
    warning = warning_text(meta)
    if verbose:
        for p in plans:
            n = len(load_split(p.data, p.profile.test_size)[0])
            print(f"study: {p.data}: {len(p.runs(n))} runs ({len(p.unique_configs)} networks, sizes "
                  f"{', '.join(map(str, p.sizes))}, {len(p.seeds)} seeds), estimated "
                  f"{estimates[p.data] / 60:.0f} min on {workers} workers", file=out, flush=True)
        if warning:
            print(f"study: {warning}", file=out, flush=True)
    start = time.perf_counter()
    rows = []
    for p in plans:
        rows += [typed(r) for r in run_plan(p, out_dir / names["runs"], n_jobs=n_jobs, scheduler=scheduler,
                                            verbose=verbose, stream=stream)]
        X_pool, _, X_test, _ = load_split(p.data, p.profile.test_size)
        meta.setdefault("data_info", {})[p.data] = dict(n_pool=len(X_pool), n_test=len(X_test))
    meta.update(wall_time_s=time.perf_counter() - start, load_average=_load(), warning=warning)
    (out_dir / names["meta"]).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return _write_outputs(rows, meta, out_dir, names["report"]), meta


def _write_outputs(rows, meta, out_dir, report_name):
    out_dir = Path(out_dir)
    results = analyse(rows)
    recs = {}
    for data in sorted({r["data"] for r in rows}):
        groups = {r["group"] for r in rows if r["data"] == data}
        recs[data] = recommend(rows, data, "user" if "user" in groups else "base" if "base" in groups
                               else sorted(groups)[0])
    plots = plot(rows, results, out_dir)
    (out_dir / report_name).write_text(render(rows, results, recs, meta, plots), encoding="utf-8")
    meta["recommendations"] = recs
    return results


def report_from_csv(csv_path, out_dir, names=None):
    """Re-analyse an existing runs CSV (and its ``study.json`` or ``study_meta.json``) into ``out_dir``.

    Returns
    -------
    results : list of dict
    meta : dict
    """
    csv_path = Path(csv_path)
    rows = read_runs(csv_path)
    names = dict(NAMES, **(names or {}))
    metas = [csv_path.with_name(n) for n in (NAMES["meta"], DOCS_NAMES["meta"]) if csv_path.with_name(n).is_file()]
    meta = json.loads(metas[0].read_text(encoding="utf-8")) if metas else {}
    meta["warning"] = warning_text(meta)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return _write_outputs(rows, meta, out_dir, names["report"]), meta
