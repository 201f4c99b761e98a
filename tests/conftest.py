"""Shared pytest fixtures."""

import contextlib

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A freshly seeded generator per test (tests never touch the global RNG)."""
    return np.random.default_rng(20240531)


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
