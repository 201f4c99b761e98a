"""A process forked after a multi-threaded fit works (one thread) or fails with a clear error; it never hangs."""

import os
import subprocess
import sys
import textwrap

import pytest

from helpers import importable_backends

CHILD_TIMEOUT = 120   # generous: a hang is the failure this guards against, not slowness

SCRIPT = textwrap.dedent("""
    import multiprocessing, os, sys
    import numpy as np
    from minicnn import CNNClassifier

    backend = sys.argv[1]
    rng = np.random.default_rng(0)
    X = rng.random((96, 32, 32, 1), dtype=np.float32)   # large enough for every kernel to go parallel
    y = np.arange(96) % 3
    clf = CNNClassifier(layers=("conv8", "maxpool", "dense16"), max_iter=1, backend=backend, n_threads=2,
                        random_state=0).fit(X, y)
    expected = clf.predict_proba(X)

    def child(conn):
        try:
            conn.send(("ok", float(np.abs(clf.predict_proba(X) - expected).max()),
                       clf.set_params(max_iter=1).fit(X, y).n_iter_))
        except RuntimeError as exc:
            conn.send(("error", str(exc), None))

    r, w = multiprocessing.Pipe(duplex=False)
    pid = os.fork()
    if pid == 0:
        child(w)
        os._exit(0)
    print(r.recv())
    assert os.waitpid(pid, 0)[1] == 0
    ctx = multiprocessing.get_context("fork")
    r, w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=child, args=(w,))
    p.start()
    print(r.recv())
    p.join()
    assert p.exitcode == 0, p.exitcode
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
@pytest.mark.parametrize("backend", ["cython", "numba"])
def test_forked_child_after_a_two_thread_fit_works_or_fails_clearly(tmp_path, backend):
    """os.fork, then multiprocessing's 'fork' start method (also joblib's multiprocessing backend)."""
    if backend not in importable_backends((backend,)):
        pytest.skip(f"{backend} backend not available")
    (tmp_path / "fork_child.py").write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(tmp_path / "fork_child.py"), backend], capture_output=True,
                          text=True, timeout=CHILD_TIMEOUT, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    results = [eval(line) for line in done.stdout.strip().splitlines()]
    assert len(results) == 2
    for status, value, n_iter in results:
        if status == "ok":   # the child predicted and trained, single-threaded, with the parent's results
            assert value == 0.0 and n_iter == 1
        else:                # only where Numba's OpenMP pool cannot run in a child: an error naming the start method
            assert backend != "cython" and "start method 'fork'" in value and "spawn" in value
