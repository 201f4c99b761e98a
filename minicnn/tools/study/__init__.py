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

from ...files import write_text
from .grid import DEFAULT_DATA, MIN_SEEDS, fit_budget, load_note, make_plan, with_options
from .lock import holding_out_lock, lock_out
from .report import check_one_study, plot, read_runs, render, seeds_per_block, typed, warning_text
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
        clf = CNNClassifier(**config.estimator_params(), **plan.profile.estimator_params(), max_iter=1,
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


def _workers(n_jobs, scheduler=None):
    """The workers that will really run side by side (joblib runs at most one per CPU here usefully)."""
    if n_jobs == -1:
        return _cpus()
    return max(1, n_jobs if scheduler else min(n_jobs, _cpus()))


def _check_out(out_dir, option="--out"):
    """Refuse an output directory that is a file, or lies under one (naming ``option``)."""
    out_dir = Path(out_dir)
    for parent in (out_dir, *out_dir.parents):
        if parent.exists():
            if not parent.is_dir():
                what = "exists and is not a directory" if parent == out_dir else f"{parent} is not a directory"
                raise ValueError(f"{option} {out_dir}: {what}")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ValueError(f"{option} {out_dir}: {parent} is not writable")
            break


def _canonical_data(data):
    """One spelling per data file: ``a.npz``, ``./a.npz`` and a symlink to it all name the resolved file (relative
    to the working directory when it lies below it), so that resuming and re-analysing never split one data set."""
    def one(path):
        real = os.path.realpath(path)
        cwd = os.path.realpath(os.getcwd())
        return os.path.relpath(real, cwd) if real.startswith(cwd + os.sep) else real

    if data.startswith("idx:"):
        parts = data[4:].split(",")
        return "idx:" + ",".join(one(p) if p else p for p in parts)
    if data.endswith(".npz"):
        return one(data)
    return data


def _check_sizes(plan, n_pool, n_classes):
    """Every size of ``plan`` below the pool and large enough for the validation split (naming ``--sizes``)."""
    from .grid import VALIDATION_FRACTION, min_size

    smallest = min_size(n_classes)
    for size in plan.sizes:
        n = n_pool if size == "full" else size
        if size != "full" and size >= n_pool:
            raise ValueError(f"--sizes: {size} is not below the training pool of {plan.data} ({n_pool} images): it "
                             f"would train on the whole pool, as 'full' does; choose sizes below {n_pool}, or 'full'")
        if n < smallest:
            what = (f"--sizes: {size}" if size != "full" else f"--sizes: full (the training pool of {plan.data}, "
                                                                  f"{n_pool} images)")
            raise ValueError(f"{what} is too small: the {VALIDATION_FRACTION:.0%} validation split that stops training "
                             f"and chooses rates needs one image of each of the {n_classes} classes, and so does the "
                             f"rest; sizes of {plan.data} start at {smallest}")


def plan_settings(plan, digest):
    """The settings that make runs of ``plan`` comparable: its fingerprint, recorded in the meta JSON.

    Rates, sizes and seeds are left out (a resumed study may add some); everything that changes what a run of a
    given (configuration, size, seed) is, is in: the models, the schedule, the epoch budgets, the optimiser, the
    early stopping, the test split and the data's contents (``digest``, see
    :func:`minicnn.tools.study.data.data_digest`).
    """
    from .grid import VALIDATION_FRACTION, schedule_params

    profile = plan.profile
    return dict(models={m.group: dict(layers=",".join(m.layers), padding=m.padding, batch_norm=m.batch_norm)
                        for m in profile.models},
                schedule=schedule_params(plan.schedule).get("lr_schedule", "constant"), quick=plan.quick,
                max_epochs={str(size): plan.max_epochs(size) for size in plan.sizes},
                batch_size=profile.batch_size, learning_rate=profile.learning_rate,
                patience=profile.n_iter_no_change, validation_fraction=VALIDATION_FRACTION,
                test_size=profile.test_size, data_sha256=digest,
                **({"estimator": dict(profile.estimator)} if profile.estimator else {}))


def _settings_differences(old, new):
    """What differs between two :func:`plan_settings` (epoch budgets compared on the sizes both have)."""
    out = []
    for key in new:
        if key not in old:
            continue
        a, b = old[key], new[key]
        if key == "max_epochs":
            a = {s: e for s, e in a.items() if s in b}
            b = {s: e for s, e in b.items() if s in a}
        if a != b:
            out.append(f"{key} {a} then, {b} now" if key != "data_sha256" else "the data's contents changed")
    return out


def _row_differences(rows, plan, settings):
    """What the runs of ``plan.data`` in an older CSV (without a fingerprint) show to differ from ``plan``."""
    models = settings["models"]
    out = set()
    for row in rows:
        if row["data"] != plan.data:
            continue
        model = models.get(row["group"])
        if model is None:
            out.add(f"model {row['group']} (layers {row['layers']}) is not trained now")
        elif row["layers"] != model["layers"] or row["batch_norm"] != model["batch_norm"]:
            out.add(f"model {row['group']}: layers {row['layers']} then, {model['layers']} now")
        if row["schedule"] != settings["schedule"]:
            out.add(f"schedule {row['schedule']} then, {settings['schedule']} now")
        budget = settings["max_epochs"].get(row["size"])
        if budget is not None and row["max_epochs"] != budget:
            out.add(f"max_epochs at size {row['size']}: {row['max_epochs']} then, {budget} now")
    return sorted(out)


def _read_meta(path, required=False):
    """The meta JSON at ``path`` as a dict ({} when absent and not ``required``); errors name the file."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a study meta JSON file ({exc}); delete it or fix it") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: not a study meta JSON file (a {type(meta).__name__}, not an object); delete it "
                         f"or fix it")
    return meta


def _check_resume(rows, old_meta, settings, plans, csv_path, meta_path):
    """Refuse to resume ``csv_path`` when its runs were trained with other settings than ``plans``.

    Compares the fingerprint recorded in the meta JSON when there is one; a CSV without one (written by an older
    version) is checked on what its rows and meta record (layers, schedule, epoch budgets, quick, optimiser), and
    resumed with a warning that the rest (padding, the data's contents) cannot be checked.
    """
    import warnings

    recorded = old_meta.get("settings") if isinstance(old_meta.get("settings"), dict) else {}
    try:
        check_one_study(rows, csv_path)
    except ValueError as exc:
        raise ValueError(f"--out {csv_path.parent}: {exc} (resuming would count them as more seeds); choose another "
                         f"--out directory, or keep one run's rows in {csv_path.name}") from None
    unverified = {}
    for plan in plans:
        others = sorted({r["data"] for r in rows if r["data"] != plan.data
                         and r["data"] not in DEFAULT_DATA and _canonical_data(r["data"]) == plan.data})
        if others:   # rows of an older version, which named the file as given
            raise ValueError(f"--out {csv_path.parent}: {csv_path.name} holds runs of --data {plan.data} under the "
                             f"name {others[0]}; resume them with --data {others[0]} (the name would otherwise "
                             f"split one data set in two)")
        if not any(r["data"] == plan.data for r in rows):
            continue
        new = settings[plan.data]
        old = recorded.get(plan.data)
        differences = _row_differences(rows, plan, new)   # the rows themselves, whatever the meta says
        if isinstance(old, dict):
            differences += _settings_differences(old, new)
        else:
            legacy = dict(quick=plan.quick, schedule=plan.schedule, batch_size=plans[0].profile.batch_size,
                          learning_rate=plans[0].profile.learning_rate, patience=plans[0].profile.n_iter_no_change)
            differences += [f"{k} {old_meta[k]!r} then, {v!r} now" for k, v in legacy.items()
                            if k in old_meta and old_meta[k] != v]
        if differences:
            raise ValueError(f"--out {csv_path.parent}: {csv_path.name} holds runs of {plan.data} trained with other "
                             f"settings ({'; '.join(differences)}); resuming would mix them. Choose another --out "
                             f"directory, or delete {csv_path} to train anew")
        if not isinstance(old, dict):
            if meta_path.is_file():
                source = f"{meta_path.name} records no settings fingerprint for {plan.data} (older study files)"
            else:
                source = f"there is no {meta_path.name}"
                unverified[plan.data] = (f"{csv_path.name} was resumed without {meta_path.name}: the padding and "
                                         f"data contents of its runs of {plan.data} are unknown")
            warnings.warn(f"resuming {csv_path}: {source}, so its padding and data contents cannot be checked; its "
                          f"runs with the same layers, schedule and epoch budgets are reused"
                          + (" and the report is marked settings-unknown" if plan.data in unverified else ""),
                          UserWarning, stacklevel=3)
    return unverified


@holding_out_lock
def run_study(out_dir="study", data=DEFAULT_DATA, sizes=None, seeds=None, quick=False, layers=None,
              padding="same", rates=None, schedule="cosine", budget_s=None, n_jobs=-1, scheduler=None, verbose=1,
              command=None, stream=None, names=None, options=None):
    """Run (or resume) the placement study and write ``runs.csv``, ``study.json`` and ``report.md``.

    Parameters
    ----------
    out_dir : str or path-like, default="study"
        Created if missing; a ``runs.csv`` already there is resumed (finished runs are skipped) when its runs
        were trained with the same settings (the fingerprint in ``study.json``), refused otherwise. One study
        at a time: a study running in ``out_dir`` locks it (:mod:`minicnn.tools.study.lock`).
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
    options : dict, default=None
        Estimator parameters set in every run (name -> value; any of
        :func:`minicnn.tools.study.grid.estimator_options`), recorded in the meta JSON.

    Returns
    -------
    results : list of dict
        :func:`minicnn.tools.study.stats.analyse` results.
    meta : dict
        Run facts, including ``warning`` (None for a meaningful study).

    Raises
    ------
    ValueError
        For bad input (data, sizes, schedule, n_jobs, an ``out_dir`` that is a file, a damaged CSV or meta JSON
        there, runs there trained with other settings, or another study running there), before anything
        trains or is written.
    """
    import sys

    from minicnn.params import invalid

    from .data import check_architecture, check_subsets, check_user_data, data_digest, load_split

    names = dict(NAMES, **(names or {}))
    datas = (data,) if isinstance(data, str) else tuple(data)
    out_dir = Path(out_dir)
    _check_out(out_dir)
    lock_out(out_dir)   # another study in this directory is refused before anything is read or trained
    if schedule not in (None, "constant") and invalid("lr_schedule", schedule):
        raise ValueError(f"--schedule: expected {invalid('lr_schedule', schedule)}; received {schedule!r}")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or not (n_jobs == -1 or n_jobs >= 1):
        raise ValueError(f"--n-jobs: expected -1 (every CPU) or a number of workers >= 1; received {n_jobs!r}")
    if scheduler is None and n_jobs > _cpus():
        raise ValueError(f"--n-jobs {n_jobs}: more workers than the {_cpus()} CPUs available here (they would only "
                         f"share them, and the budget would assume {n_jobs}x the speed); pass at most {_cpus()}, or "
                         f"-1 for every CPU")
    if scheduler is not None:
        from .runner import check_scheduler

        check_scheduler(scheduler)
    datas = tuple(_canonical_data(d) for d in datas)
    if len(set(datas)) != len(datas):
        raise ValueError(f"--data: a data set is given twice (its runs would count twice); received {datas}")
    plans = [with_options(make_plan(d, sizes=sizes, seeds=seeds, quick=quick, layers=layers, padding=padding,
                                    rates=rates, schedule=schedule), options) for d in datas]
    pools = {}
    for p in plans:   # the data, checked before anything trains or is written
        if p.data not in DEFAULT_DATA:
            check_user_data(p.data, layers, padding)
        X_pool, y_pool, X_test, _ = load_split(p.data, p.profile.test_size)
        _check_sizes(p, len(X_pool), len(set(y_pool.tolist())))
        if p.data in DEFAULT_DATA and layers is not None:
            check_architecture(p.data, layers, padding, X_pool.shape[1:], len(set(y_pool.tolist())))
        pools[p.data] = dict(n_pool=len(X_pool), n_test=len(X_test))
    csv_path, meta_path = out_dir / names["runs"], out_dir / names["meta"]
    old_rows = read_runs(csv_path, allow_empty=True) if csv_path.is_file() else []
    old_meta = _read_meta(meta_path) if old_rows else {}
    workers = _workers(n_jobs, scheduler)
    over_budget, cuts, estimates = False, [], {}
    if budget_s is not None:
        costs = {p.data: measure_epoch_cost(p) for p in plans}
        full = {p.data: p.estimated_cost_s(pools[p.data]["n_pool"], costs[p.data]) for p in plans}
        fitted = []
        for p in plans:
            share = budget_s * full[p.data] / max(sum(full.values()), 1e-9)
            was_meaningful = p.meaningful
            p, wall = fit_budget(p, share, pools[p.data]["n_pool"], workers, costs[p.data])
            estimates[p.data] = wall
            # over budget: the cuts did not reach the budget, or the budget cut a meaningful plan below meaning
            over_budget |= wall > share * 1.05 or (was_meaningful and not p.meaningful)
            cuts += [f"{p.data}: {c}" for c in p.cuts]
            fitted.append(p)
        plans = fitted
    else:
        for p in plans:
            estimates[p.data] = p.estimated_cost_s(pools[p.data]["n_pool"]) / workers
    for p in plans:   # every run's subset, once the budget fixed the runs (10000 seeds cost no planning time)
        check_subsets(p.data, load_split(p.data, p.profile.test_size)[1], p.sizes, p.seeds)
    settings = {p.data: plan_settings(p, data_digest(p.data, p.profile.test_size)) for p in plans}
    unverified = _check_resume(old_rows, old_meta, settings, plans, csv_path, meta_path)
    if isinstance(old_meta.get("unverified"), dict):
        unverified = dict(old_meta["unverified"], **unverified)
    # never record a fingerprint over rows whose settings could not be checked
    settings = {d: s for d, s in settings.items() if d not in unverified}
    out = sys.stdout if stream is None else stream
    recorded = old_meta.get("settings") if isinstance(old_meta.get("settings"), dict) else {}
    kept = {d: s for d, s in recorded.items() if d not in settings and any(r["data"] == d for r in old_rows)}
    meta = dict(command=command, quick=quick, over_budget=over_budget, cuts=cuts,
                few_seeds=any(len(p.seeds) < 10 for p in plans), n_seeds=min(len(p.seeds) for p in plans),
                schedule=schedule, batch_size=plans[0].profile.batch_size,
                learning_rate=plans[0].profile.learning_rate, patience=plans[0].profile.n_iter_no_change,
                n_jobs=n_jobs, machine=f"{platform.machine()}, {_cpus()} CPUs", budget_s=budget_s,
                estimated_wall_s={d: round(s) for d, s in estimates.items()},
                default_cuts={p.data: p.profile.cut for p in plans if p.profile.cut},
                settings=dict(kept, **settings), estimator_options=dict(options or {}))
    if unverified:   # kept for later resumes; the report is settings-unknown when it analyses such rows
        meta["unverified"] = unverified
        notes = [note for d, note in unverified.items() if any(p.data == d for p in plans)]
        if notes:
            meta["unknown_settings"] = "; ".join(notes)
    warning = warning_text(meta)
    out_dir.mkdir(parents=True, exist_ok=True)
    lock_out(out_dir)   # a directory this study created
    write_text(meta_path, json.dumps(dict(meta, warning=warning), indent=2))   # the fingerprint (atomically)
    if verbose:
        for p in plans:
            n = pools[p.data]["n_pool"]
            print(f"study: {p.data}: {len(p.runs(n))} runs ({len(p.unique_configs)} networks, sizes "
                  f"{', '.join(map(str, p.sizes))}, {len(p.seeds)} seeds), estimated "
                  f"{estimates[p.data] / 60:.0f} min on {workers} workers{load_note(workers)}",
                  file=out, flush=True)
        if warning:
            print(f"study: {warning}", file=out, flush=True)
    start = time.perf_counter()
    rows = []
    for p in plans:
        rows += [typed(r) for r in run_plan(p, csv_path, n_jobs=n_jobs, scheduler=scheduler,
                                            verbose=verbose, stream=stream)]
        meta.setdefault("data_info", {})[p.data] = pools[p.data]
    meta.update(wall_time_s=time.perf_counter() - start, load_average=_load(), warning=warning)
    write_text(meta_path, json.dumps(meta, indent=2))
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
    write_text(out_dir / report_name, render(rows, results, recs, meta, plots))
    meta["recommendations"] = recs
    return results


@holding_out_lock
def report_from_csv(csv_path, out_dir, names=None):
    """Re-analyse an existing runs CSV (and its ``study.json`` or ``study_meta.json``) into ``out_dir``.

    Without a meta JSON next to the CSV the settings are unknown, and the report says its verdicts are not
    meaningful; the number of seeds is read from the rows either way.

    Returns
    -------
    results : list of dict
    meta : dict

    Raises
    ------
    ValueError
        For a damaged CSV or meta JSON, or a CSV holding rows of different study runs (naming the file).
    """
    csv_path = Path(csv_path)
    advice = "--from-csv takes the runs CSV that minicnn study wrote"
    if not csv_path.exists():
        raise ValueError(f"--from-csv {csv_path}: no such file")
    if not csv_path.is_file():
        raise ValueError(f"--from-csv {csv_path}: not a file")
    _check_out(out_dir)
    lock_out(Path(out_dir))   # never write a report where a study is running
    rows = read_runs(csv_path, advice)
    names = dict(NAMES, **(names or {}))
    meta_path = csv_path.with_name(meta_name(csv_path.name))
    metas = [meta_path] if meta_path.is_file() else []
    meta = _read_meta(metas[0]) if metas else {}
    rows = _merge_same_data(rows, meta)
    check_one_study(rows, csv_path)
    seeds = seeds_per_block(rows)
    meta["n_seeds"] = min(seeds, meta["n_seeds"]) if isinstance(meta.get("n_seeds"), int) else seeds
    meta["few_seeds"] = bool(meta.get("few_seeds")) or seeds < MIN_SEEDS
    if not metas:
        meta["unknown_settings"] = f"no {meta_path.name} (the meta of {csv_path.name}) next to it"
    meta["warning"] = warning_text(meta)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lock_out(out_dir)
    return _write_outputs(rows, meta, out_dir, names["report"]), meta


def meta_name(csv_name):
    """The meta JSON written with a runs CSV: ``study_meta.json`` for ``study_runs.csv`` (``--docs``),
    ``study.json`` otherwise (never the other run's meta)."""
    return DOCS_NAMES["meta"] if csv_name == DOCS_NAMES["runs"] else NAMES["meta"]


def _merge_same_data(rows, meta):
    """Rows of one data file under several spellings (the meta records the same contents digest for them) under
    one name, so that they are analysed as one data set (and duplicates among them are found)."""
    settings = meta.get("settings") if isinstance(meta.get("settings"), dict) else {}
    first, alias = {}, {}
    for name in sorted(settings):
        digest = settings[name].get("data_sha256") if isinstance(settings[name], dict) else None
        if digest:
            alias[name] = first.setdefault(digest, name)
    if all(a == n for n, a in alias.items()):
        return rows
    return [dict(r, data=alias.get(r["data"], r["data"])) for r in rows]
