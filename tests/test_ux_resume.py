"""A resumed fit says so; its progress totals count the epochs left; a callback's stop is a finished fit.

Sweeps both estimators, the three progress views of a fit (``verbose=1`` lines, ``verbose=2`` bar, a
scikit-learn callback's ``max_subtasks`` -- what ``sklearn.callback.ProgressBar`` draws as its total) and both
faces of a resume (the estimator and ``minicnn fit --checkpoint``, with and without ``--quiet``).
"""

import re
import warnings

import numpy as np
import pytest

import minicnn._estimator_base as base
from minicnn import CNNClassifier, CNNRegressor

from helpers import run_cli

N_DIGITS = 120
ESTIMATORS = [CNNClassifier, CNNRegressor]


def _params(path, **extra):
    return dict(layers=("conv4", "maxpool", "dense8"), max_iter=5, backend="numpy", random_state=0,
                checkpoint_path=str(path), **extra)


def _target(cls, y):
    return y if cls is CNNClassifier else y.astype(np.float32) / 9


def _quiet(call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the short fits' ConvergenceWarning and the interrupt's warning
        return call()


def _interrupt_at(monkeypatch, epoch):
    """Make the ``epoch``-th call of train_epoch raise KeyboardInterrupt (a Ctrl-C in that epoch)."""
    real, calls = base.train_epoch, [0]

    def train_epoch(*args, **kwargs):
        calls[0] += 1
        if calls[0] == epoch:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(base, "train_epoch", train_epoch)
    return lambda: monkeypatch.setattr(base, "train_epoch", real)


class Totals:
    """A callback recording the root task's announced subtasks (ProgressBar's total) and the epochs run; it asks
    to stop after epoch ``stop_at``."""

    def __init__(self, stop_at=None):
        self.max_subtasks, self.epochs, self.stop_at = None, 0, stop_at

    def setup(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context, **kwargs):
        if context.task_name == "fit":
            self.max_subtasks = context.max_subtasks

    def on_fit_task_end(self, estimator, context, **kwargs):
        self.epochs += context.task_name == "epoch"
        return context.task_name == "epoch" and self.epochs == self.stop_at


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("verbose", [1, 2])
def test_a_resumed_fit_says_so_and_counts_the_epochs_left(cls, verbose, digits, tmp_path, monkeypatch, capsys):
    X, y = digits
    y = _target(cls, y)
    path = tmp_path / "fit.ckpt.npz"
    restore = _interrupt_at(monkeypatch, 3)
    _quiet(lambda: cls(**_params(path)).fit(X, y))   # epochs 1-2 complete, Ctrl-C in epoch 3
    restore()
    capsys.readouterr()
    totals = Totals()
    est = _quiet(lambda: cls(**_params(path, verbose=verbose)).set_callbacks(totals).fit(X, y))
    out = capsys.readouterr().out
    assert f"Resumed from {path} at epoch 2 of 5\n" in out
    assert re.findall(r"Epoch (\d+)/(\d+) - loss", out) == [("3", "5"), ("4", "5"), ("5", "5")]
    assert (totals.max_subtasks, totals.epochs, est.n_iter_) == (3, 3, 5)   # the bar's total: the epochs left
    again = Totals()
    _quiet(lambda: cls(**_params(path, verbose=verbose)).set_callbacks(again).fit(X, y))
    out = capsys.readouterr().out
    assert f"Resumed from {path}: it holds the finished fit (epoch 5 of 5); nothing left to train" in out
    assert (again.max_subtasks, again.epochs) == (0, 0)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_a_silent_fit_resumes_silently_and_a_new_fit_says_nothing(cls, digits, tmp_path, capsys):
    X, y = digits
    path = tmp_path / "fit.ckpt.npz"
    totals = Totals()
    _quiet(lambda: cls(**_params(path, verbose=1)).set_callbacks(totals).fit(X, _target(cls, y)))
    assert "Resumed" not in capsys.readouterr().out and totals.max_subtasks == 5
    est = _quiet(lambda: cls(**_params(path)).fit(X, _target(cls, y)))
    assert capsys.readouterr().out == ""
    assert est._resumed_note.startswith(f"Resumed from {path}: it holds the finished fit")


@pytest.mark.parametrize("quiet", [False, True])
def test_minicnn_fit_says_it_resumed(quiet, tmp_path, monkeypatch):
    ckpt, out = tmp_path / "fit.ckpt.npz", tmp_path / "model.npz"
    argv = ["fit", "--layers", "conv4,maxpool,dense8", "--epochs", "4", "--backend", "numpy", "--checkpoint", ckpt,
            "--out", out] + (["--quiet"] if quiet else [])
    restore = _interrupt_at(monkeypatch, 3)
    _quiet(lambda: run_cli(*argv))
    restore()
    code, stdout, _ = _quiet(lambda: run_cli(*argv))
    assert code == 0
    assert stdout.count(f"Resumed from {ckpt} at epoch 2 of 4\n") == 1, stdout
    code, stdout, _ = _quiet(lambda: run_cli(*argv))
    assert stdout.count(f"Resumed from {ckpt}: it holds the finished fit (epoch 4 of 4)") == 1, stdout


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_a_callback_stop_is_a_finished_fit_and_an_interrupt_is_not(cls, digits, tmp_path, monkeypatch):
    """docs/TRAINING.md: a callback asking to stop ends the fit as early stopping does (the checkpoint holds the
    finished fit: fitting again returns it, training nothing); Ctrl-C does not (fitting again resumes)."""
    X, y = digits
    y = _target(cls, y)
    stopped = cls(**_params(tmp_path / "stop.ckpt.npz")).set_callbacks(Totals(stop_at=2))
    _quiet(lambda: stopped.fit(X, y))
    assert stopped.n_iter_ == 2
    again = _quiet(lambda: cls(**_params(tmp_path / "stop.ckpt.npz")).fit(X, y))   # no callback: would run 5
    assert again.n_iter_ == 2 and again._resumed_note.endswith("it holds the finished fit (epoch 2 of 5); "
                                                                "nothing left to train")
    assert np.array_equal(again.predict(X), stopped.predict(X))
    restore = _interrupt_at(monkeypatch, 3)
    interrupted = _quiet(lambda: cls(**_params(tmp_path / "kill.ckpt.npz")).fit(X, y))
    restore()
    assert interrupted.n_iter_ == 2 and interrupted.interrupted_
    resumed = _quiet(lambda: cls(**_params(tmp_path / "kill.ckpt.npz")).fit(X, y))
    assert resumed.n_iter_ == 5 and resumed._resumed_note.endswith("at epoch 2 of 5")


def test_the_training_doc_states_the_callback_stop_semantics():
    from pathlib import Path

    text = " ".join((Path(__file__).resolve().parent.parent / "docs" / "TRAINING.md").read_text().split())
    assert "A callback that asks to stop ends the fit as early stopping does" in text
