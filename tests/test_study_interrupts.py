"""An interrupted long job never records a partial result as complete; one study per directory; planning is cheap.

* Ctrl-C in any epoch of any run: the study stops (``KeyboardInterrupt``, ``minicnn study`` exits 130), the CSV
  holds only finished runs, and a resume trains the interrupted run again, giving the uninterrupted study's rows.
* The estimator says when a KeyboardInterrupt ended a call (``interrupted_``).
* A second study (or ``--from-csv`` report) on a directory where a study runs is refused, naming ``--out``.
* Planning work does not grow with the seeds a wall-time budget cuts away (``--seeds 10000 --budget 20s``).
"""

import threading
import warnings
from dataclasses import replace

import numpy as np
import pytest

import minicnn._estimator_base as estimator_base
from minicnn import CNNClassifier, CNNRegressor
from minicnn.tools.study import grid, make_plan, run_study
from minicnn.tools.study.runner import read_csv, run_plan

from helpers import random_data, run_cli

LABELS = ("base/none", "base/after_last_pool/element/0.5")


def tiny_plan():
    plan = make_plan("digits", quick=True, seeds=2)
    return replace(plan, configs=[c for c in plan.configs if c.label in LABELS], shared={})


def interrupt_at(monkeypatch, epoch_call):
    """Raise KeyboardInterrupt in the ``epoch_call``-th training epoch of this process (counting from 1)."""
    real, calls = estimator_base.train_epoch, [0]

    def train_epoch(*args, **kwargs):
        calls[0] += 1
        if calls[0] == epoch_call:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(estimator_base, "train_epoch", train_epoch)
    return calls


def strip(rows):
    return sorted(str({k: v for k, v in r.items() if k != "train_time_s"}) for r in rows)


# ------------------------------------------------------------------------- the estimator says so
@pytest.mark.parametrize("cls", [CNNClassifier, CNNRegressor])
@pytest.mark.parametrize("call", ["fit", "warm_start", "partial_fit"])
def test_the_estimator_records_that_a_keyboard_interrupt_ended_the_call(cls, call, monkeypatch):
    X, y = random_data(cls)
    est = cls(layers=("conv2", "maxpool"), max_iter=3, batch_size=16, random_state=0, backend="numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
        assert est.interrupted_ is False
        n_before = est.n_iter_
        # fit: the 2nd epoch of the new fit; warm_start / partial_fit: the first epoch of the call
        interrupt_at(monkeypatch, 2 if call == "fit" else 1)
        if call == "fit":
            est.fit(X, y)
        elif call == "warm_start":
            est.set_params(warm_start=True).fit(X, y)
        else:
            extra = {"classes": np.unique(y)} if cls is CNNClassifier else {}
            est.partial_fit(X, y, **extra)
    assert est.interrupted_ is True
    assert est.n_iter_ == (1 if call == "fit" else n_before)   # the completed epochs, not the asked ones
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.set_params(warm_start=False).fit(X, y)
    assert est.interrupted_ is False


# ------------------------------------------------------------------------- the study never records it
@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    path = tmp_path_factory.mktemp("clean") / "runs.csv"
    return strip(run_plan(tiny_plan(), path, n_jobs=1, verbose=0))


@pytest.mark.parametrize("epoch_call", [1, 2, 4, 7])   # first epoch of run 1, later epochs, inside later runs
def test_ctrl_c_in_any_epoch_stops_the_study_and_records_no_partial_run(uninterrupted, epoch_call, tmp_path,
                                                                        monkeypatch):
    path = tmp_path / "runs.csv"
    calls = interrupt_at(monkeypatch, epoch_call)
    with pytest.raises(KeyboardInterrupt):
        run_plan(tiny_plan(), path, n_jobs=1, verbose=0)
    assert calls[0] == epoch_call                      # stopped at the interrupt: nothing trained after it
    finished = read_csv(path)
    assert len(finished) < 4
    assert set(strip(finished)) <= set(uninterrupted)  # every recorded row is a whole run
    monkeypatch.undo()
    assert strip(run_plan(tiny_plan(), path, n_jobs=1, verbose=0)) == uninterrupted   # the resume repairs it


def test_the_study_command_exits_130_and_writes_no_partial_row(tmp_path, monkeypatch):
    interrupt_at(monkeypatch, 2)
    out = tmp_path / "out"
    code, _, err = run_cli("study", "--data", "digits", "--quick", "--n-jobs", "1", "--out", out)
    assert code == 130 and "interrupted" in err
    assert read_csv(out / "runs.csv") == []


# ------------------------------------------------------------------------- one study per directory
def _blocked_study(monkeypatch, out):
    """Start run_study on ``out`` in a thread, held inside its training until the returned event is set."""
    import minicnn.tools.study as study

    inside, go, errors = threading.Event(), threading.Event(), []

    def held_run_plan(*args, **kwargs):
        inside.set()
        go.wait(timeout=120)
        raise KeyboardInterrupt   # leave without training

    monkeypatch.setattr(study, "run_plan", held_run_plan)

    def target():
        try:
            run_study(out, data="digits", quick=True, n_jobs=1, verbose=0)
        except KeyboardInterrupt:
            pass
        except BaseException as exc:   # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    assert inside.wait(timeout=300)
    return thread, go, errors


@pytest.mark.parametrize("exists", [True, False])
def test_a_second_study_on_the_same_directory_is_refused(tmp_path, monkeypatch, exists):
    out = tmp_path / "out"
    if exists:
        out.mkdir()
    thread, go, errors = _blocked_study(monkeypatch, out)
    try:
        with pytest.raises(ValueError, match=r"--out .*another minicnn study is running"):
            run_study(out, data="digits", quick=True, n_jobs=1, verbose=0)
        code, _, err = run_cli("study", "--data", "digits", "--quick", "--n-jobs", "1", "--out", out)
        assert code == 1 and err.count("\n") == 1 and "another minicnn study is running" in err
        (tmp_path / "runs.csv").write_text("")
        code, _, err = run_cli("study", "--from-csv", tmp_path / "runs.csv", "--out", out)
        assert code == 1 and "another minicnn study is running" in err
    finally:
        go.set()
        thread.join(timeout=120)
    assert not thread.is_alive() and not errors
    # the lock went with the first study: the directory takes a study again
    monkeypatch.undo()
    _, meta = run_study(out, data="digits", quick=True, n_jobs=1, verbose=0)
    assert meta["n_seeds"] == 2


# ------------------------------------------------------------------------- planning is cheap and bounded
def test_the_cost_estimate_is_linear_in_the_seeds_and_never_loops_over_them():
    few, many = make_plan("mnist", seeds=10), make_plan("mnist", seeds=10000)
    assert many.estimated_cost_s(60000) == pytest.approx(1000 * few.estimated_cost_s(60000), rel=1e-12)


@pytest.mark.parametrize("seeds", [10, 1000, 10000])
def test_a_budget_cuts_any_number_of_seeds_in_a_bounded_number_of_steps(seeds, monkeypatch):
    calls = [0]
    real = grid.StudyPlan.estimated_cost_s

    def counted(self, *args, **kwargs):
        calls[0] += 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(grid.StudyPlan, "estimated_cost_s", counted)
    plan = make_plan("mnist", seeds=seeds)
    per_seed = plan.estimated_cost_s(60000) / seeds / 2
    cut, wall = grid.fit_budget(plan, 4.5 * per_seed, 60000, 2)
    assert calls[0] < 20                                # not one estimate per seed
    n, budget = len(cut.seeds), 4.5 * per_seed
    assert 3 <= n < seeds and cut.seeds == plan.seeds[:n]
    if n > 3:                                           # the most seeds that fit after the cheaper cuts
        assert wall <= budget
        more = replace(cut, seeds=plan.seeds[:n + 1], shared={})
        more.__post_init__()
        assert real(more, 60000) / 2 > budget
    assert sum(c.startswith("seeds") for c in cut.cuts) <= 1   # one cut for the seeds, not one per seed


def test_a_budget_study_checks_only_the_runs_it_keeps(tmp_path, monkeypatch):
    """--seeds 10000 --budget 20s: the training subsets of the 9997 seeds cut away are never drawn."""
    import minicnn.tools.study as study
    from minicnn.tools.study import data as study_data

    drawn = []
    real = study_data.training_subset
    monkeypatch.setattr(study_data, "training_subset", lambda *a: drawn.append(a) or real(*a))
    monkeypatch.setattr(study, "measure_epoch_cost", lambda plan: {g: 1.0 for g in grid.EPOCH_COST_S["digits"]})

    class Planned(Exception):
        pass

    def planned(plan, *args, **kwargs):
        raise Planned(plan)

    monkeypatch.setattr(study, "run_plan", planned)
    with pytest.raises(Planned) as info:
        run_study(tmp_path / "out", data="digits", seeds=10000, budget_s=20.0, n_jobs=1, verbose=0)
    plan = info.value.args[0]
    assert len(plan.seeds) < 100
    assert len(drawn) <= len(plan.seeds) * len(plan.sizes)
