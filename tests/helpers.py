"""Small helpers shared by several test modules (one definition each)."""

import contextlib
import io
import threading
from contextlib import redirect_stderr, redirect_stdout

import numpy as np

from minicnn.backend import get_backend


def importable_backends(names=("numpy", "numba", "cython", "auto")):
    """The backends among ``names`` that import on this machine (a missing build is skipped, not failed)."""
    found = []
    for name in names:
        try:
            get_backend(name)
        except ImportError:
            continue
        found.append(name)
    return found


def kernel_module(backend):
    """The module holding ``backend``'s kernels, optional ones included; skips if absent."""
    import importlib

    import pytest

    name = {"numpy": "minicnn.backend.reference", "numba": "minicnn.backend.numba_kernels",
            "cython": "minicnn.backend.cython_kernels"}[backend]
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.skip(f"backend {backend!r} not importable: {exc}")


def parameter_names(func):
    """Parameter names of a kernel, in order (a Numba dispatcher's through its ``py_func``)."""
    import inspect

    return list(inspect.signature(getattr(func, "py_func", func)).parameters)


def first_digits(n):
    """The first ``n`` of scikit-learn's digits: images (n, 8, 8, 1) float32 in [0, 1], labels (n,) int64."""
    from minicnn.datasets import load_digits_images

    X, y = load_digits_images()
    return X[:n], y[:n]


def random_images(n, shape=(8, 8, 1), seed=0):
    """``n`` float32 samples of per-sample ``shape``, uniform in [0, 1), drawn from ``seed``."""
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


def random_data(cls, n=48, shape=(8, 8, 1), seed=0, n_classes=3):
    """:func:`random_images` and targets for estimator class ``cls``.

    A classifier gets the labels ``arange(n) % n_classes``; a regressor gets four times each sample's mean.
    """
    from minicnn import CNNClassifier

    X = random_images(n, shape, seed)
    y = np.arange(n) % n_classes if cls is CNNClassifier else X.mean(axis=(1, 2, 3)) * 4
    return X, y


def weights(est):
    """Copies of a fitted estimator's trainable arrays, in the network's order."""
    return [p.copy() for p, _ in est.network_.params_and_grads()]


def weights_and_state(est):
    """:func:`weights` followed by copies of every layer's state (BatchNorm running statistics)."""
    return weights(est) + [v.copy() for layer in est.network_.layers for v in getattr(layer, "state", {}).values()]


def build_layer(layer, shape, backend, dtype=np.float64, seed=0):
    """``layer`` built for per-sample ``shape`` on ``backend`` (a name or a Backend), weights from ``seed``."""
    kernels = get_backend(backend) if isinstance(backend, str) else backend
    layer.build(shape, dtype=dtype, rng=np.random.default_rng(seed), backend=kernels)
    return layer


def run_at_once(works, rounds=1, timeout=600):
    """Run each callable of ``works`` ``rounds`` times in its own thread, all released together by a barrier.

    Returns each callable's last result, in order; re-raises the first error a thread met; fails when a
    thread is still running ``timeout`` seconds after it was joined (a hang fails instead of blocking).
    """
    results, errors, barrier = [None] * len(works), [], threading.Barrier(len(works))

    def target(i):
        try:
            barrier.wait(timeout=120)
            for _ in range(rounds):
                results[i] = works[i]()
        except BaseException as exc:   # noqa: BLE001 - reported to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(len(works))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    if errors:
        raise errors[0]
    return results


def run_cli(*argv):
    """Run the ``minicnn`` command in-process with ``argv`` (any objects, passed as strings).

    Returns ``(exit code, stdout, stderr)``.
    """
    from minicnn.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


#: Modules of the package that need an optional extra, with the packages it brings (the tests of such a module
#: skip when one is missing, so the README's test command runs on a machine with only the test extra).
OPTIONAL_MODULES = {
    "minicnn.dask_wrappers": ("dask", "dask_ml", "distributed"),
    "minicnn.onnx": ("onnx", "onnxruntime", "skl2onnx"),
    "minicnn.images": ("PIL",),   # importable without Pillow (which it imports when reading); its examples read
}


def skip_without_extras(module):
    """``pytest.importorskip`` each package that ``module`` (a name of the package) needs beyond the core."""
    import pytest

    for name, needs in OPTIONAL_MODULES.items():
        if module == name or module.startswith(name + "."):
            for package in needs:
                pytest.importorskip(package, reason=f"{module} needs the optional package {package}")



@contextlib.contextmanager
def checkpoint_copies(path, directory):
    """While active, copy the checkpoint at ``path`` aside after every write; yields the list of copies (in order).

    ``directory`` receives ``epoch0.npz``, ``epoch1.npz``, ...: the state a kill after each write would leave.
    """
    from minicnn import checkpoint

    copies = []
    original = checkpoint.Checkpoint.write

    def spy(self, est, rng, **state):
        original(self, est, rng, **state)
        copy = directory / f"epoch{len(copies)}.npz"
        copy.write_bytes(path.read_bytes())
        copies.append(copy)

    checkpoint.Checkpoint.write = spy
    try:
        yield copies
    finally:
        checkpoint.Checkpoint.write = original
