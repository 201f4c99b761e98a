"""Shared pytest fixtures."""

import contextlib

import numpy as np
import pytest

from helpers import first_digits


@pytest.fixture
def rng():
    """A freshly seeded generator per test (tests never touch the global RNG)."""
    return np.random.default_rng(20240531)


@pytest.fixture(autouse=True)
def quiet_machine_teams(monkeypatch):
    """Thread teams as on a quiet machine: the busy-CPU reading (``minicnn.threads``) is pinned to 0 others.

    The test machine is loaded by other processes, and the teams of fit and predict shrink while CPUs are
    busy: tests that compare thread counts must get the counts they ask for. The load rule itself is tested
    in tests/test_threads.py with its own readings.
    """
    from minicnn import threads

    monkeypatch.setitem(threads._load_state, "time", float("inf"))   # the last reading stays valid
    monkeypatch.setitem(threads._load_state, "others", 0)


@pytest.fixture(scope="module")
def digits(request):
    """The first ``N_DIGITS`` of scikit-learn's digits as NHWC float32 images in [0, 1] and int64 labels.

    ``N_DIGITS`` is a constant of the requesting test module (each module states its own size); the
    arrays are loaded afresh for each module, so no module sees another's changes.
    """
    n = getattr(request.module, "N_DIGITS", None)
    if n is None:
        raise RuntimeError(f"{request.module.__name__} uses the digits fixture but sets no N_DIGITS")
    return first_digits(n)


@pytest.fixture(scope="session")
def numba_threads():
    """Context-manager factory running a block with ``numba.set_num_threads(n)``.

    Yields a function ``use(n)``; the previous thread count is restored on exit.
    """
    numba = pytest.importorskip("numba")

    @contextlib.contextmanager
    def use(n):
        previous = numba.get_num_threads()
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        try:
            yield
        finally:
            numba.set_num_threads(previous)

    return use


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked @pytest.mark.slow (long fuzzing and resource tests)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow test: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
