"""Warnings raised in a worker (joblib/loky process, thread, pool) say where they come from.

In a worker no user's line is on the stack: the walk of ``minicnn._caller.warn`` would end in the standard
library's process or thread runner (``multiprocessing/process.py``). There the warning points at the estimator
method the worker ran and names the estimator with its parameters (which grid-search candidate it was).
"""

import concurrent.futures
import functools
import os
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import minicnn
from minicnn import CNNClassifier, CNNRegressor

from helpers import random_images

PACKAGE = os.path.dirname(os.path.abspath(minicnn.__file__))
TINY = dict(layers=("conv4", "maxpool", "dense8"), max_iter=2, batch_size=16, random_state=0, backend="numpy")
#: Warning kinds a fit issues through minicnn._caller.warn: (parameters, category, text in the message).
KINDS = {
    "max_iter": (dict(TINY), ConvergenceWarning, "maximum iterations"),
    "placement_lint": (dict(TINY, layers=("conv4", "conv4", "dense8"), batch_norm=True, dropout="after_each_layer"),
                       UserWarning, "BatchNorm"),
}


def _data(cls, n=48):
    X = random_images(n)
    y = np.arange(n) % 3 if cls is CNNClassifier else np.linspace(0, 1, n)
    return X, y


def _in_thread(fit):
    thread = threading.Thread(target=fit)
    thread.start()
    thread.join()


def _in_pool(fit):
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(fit).result()


def _in_joblib_threads(fit):
    from joblib import Parallel, delayed

    Parallel(n_jobs=2, backend="threading")(delayed(fit.func)(*fit.args) for _ in range(1))


@pytest.mark.parametrize("runner", [_in_thread, _in_pool, _in_joblib_threads])
@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("cls", [CNNClassifier, CNNRegressor])
def test_a_worker_s_warning_points_at_minicnn_and_names_the_estimator(cls, kind, runner):
    options, category, text = KINDS[kind]
    if kind == "max_iter" and cls is CNNRegressor:
        options = dict(options, max_iter=3)
    est = cls(**options)
    X, y = _data(cls)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runner(functools.partial(est.fit, X, y))   # no user frame in the worker: the runner calls fit
    hits = [w for w in caught if text in str(w.message)]
    assert hits, [str(w.message) for w in caught]
    for w in hits:
        assert issubclass(w.category, category)
        assert os.path.abspath(w.filename).startswith(PACKAGE), f"attributed to {w.filename}:{w.lineno}"
        assert "threading.py" not in w.filename and "concurrent" not in w.filename
        message = str(w.message)
        assert f"[in a worker process or thread: {cls.__name__}(" in message, message
        assert f"max_iter={options['max_iter']}" in message.split("[in a worker")[1], message


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_caller_s_own_thread_keeps_the_caller_s_line(kind):
    """A fit called from the user's code in the main thread points at that line and adds no worker note."""
    options, _, text = KINDS[kind]
    X, y = _data(CNNClassifier)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        CNNClassifier(**options).fit(X, y)
    hits = [w for w in caught if text in str(w.message)]
    assert hits and all(w.filename == __file__ for w in hits)
    assert not any("in a worker" in str(w.message) for w in hits)


SCRIPT = textwrap.dedent("""
    import numpy as np
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from minicnn import CNNClassifier
    from minicnn.datasets import load_digits_images

    X, y = load_digits_images()
    X, y = X[:120], y[:120]
    est = CNNClassifier(layers=("conv4", "maxpool", "dense8"), max_iter=2, batch_size=16, random_state=0,
                        backend="numpy", n_threads=1)
    GridSearchCV(est, {"dropout_rate": [0.1, 0.2]}, cv=2, n_jobs=2).fit(X, y)
    cross_val_score(est.set_params(dropout_rate=0.3), X, y, cv=2, n_jobs=2)
    print("done")
""")


def test_grid_search_and_cross_val_score_workers_warn_usefully(tmp_path):
    """A real loky run (n_jobs=2): every printed warning names a file of minicnn or of the script, never
    multiprocessing's or joblib's, and a worker's warning names the candidate's parameters."""
    script = tmp_path / "search.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(PACKAGE).parent), str(Path(__file__).parent)]))
    env.pop("PYTHONWARNINGS", None)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    warned = [line for line in done.stderr.splitlines() if "Warning: " in line]
    assert warned, done.stderr[-3000:]
    for line in warned:
        location = line.split(": ", 1)[0]
        assert location.startswith((PACKAGE, str(script))), line
        assert "multiprocessing" not in location and "joblib" not in location, line
        if location.startswith(PACKAGE):
            assert "[in a worker process or thread: CNNClassifier(" in line and "dropout_rate=0." in line, line
    workers = {line.split("dropout_rate=")[1][:3] for line in warned if "in a worker" in line}
    assert workers == {"0.1", "0.2", "0.3"}, warned
