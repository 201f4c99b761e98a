"""thread_limits as an object a caller keeps: entered again while entered (nested, from several threads at once,
with an exception escaping), every exit restores the OpenMP, Numba and BLAS counts its own entry found and leaves
no team registered; every kind of ``n_threads`` value is accepted or refused as the rule says."""

import threading

import numpy as np
import pytest

from minicnn import threads as T

from helpers import run_at_once

# every count kind (a plain int, one, None, a NumPy int), with and without a work cap
LIMITS = [(1, None), (2, None), (None, None), (np.int64(2), None), (2, 10 ** 9), (None, 10 ** 9), (3, 1)]


def _counts():
    """The thread counts thread_limits sets, as this thread sees them."""
    import numba

    openmp = T._openmp()
    return (openmp.get_max_threads() if openmp is not None else None, numba.get_num_threads(),
            [get() for get, _ in T._blas_controllers()])


@pytest.mark.parametrize("n_threads, work", LIMITS)
@pytest.mark.parametrize("depth", [2, 3])
def test_one_object_entered_again_restores_each_entry(n_threads, work, depth):
    import numba  # noqa: F401  (thread_limits sets Numba's count only once Numba is imported)

    before = _counts()
    limits = T.thread_limits(n_threads, work)

    def enter(level):
        with limits as n:
            assert n >= 1
            inside = _counts()
            assert inside[0] in (None, n)
            if level < depth:
                enter(level + 1)
            assert _counts() == inside, f"level {level}: the inner exit did not restore this level's counts"

    enter(1)
    assert _counts() == before
    assert threading.get_ident() not in T._in_flight
    # an exception escaping the inner entry: both exits still restore
    with pytest.raises(KeyError):
        with limits:
            with limits:
                raise KeyError("inside")
    assert _counts() == before
    assert threading.get_ident() not in T._in_flight


@pytest.mark.parametrize("n_threads, work", LIMITS)
def test_one_object_shared_by_threads_at_once(n_threads, work):
    import numba  # noqa: F401

    limits = T.thread_limits(n_threads, work)

    before = _counts()

    def work_in_thread():
        mine = _counts()[:2]   # OpenMP's and Numba's counts are per thread (BLAS's is the process's: checked after)
        for _ in range(20):
            with limits:
                with limits:
                    pass
        assert _counts()[:2] == mine
        return threading.get_ident() in T._in_flight

    assert run_at_once([work_in_thread] * 4) == [False] * 4
    assert not T._in_flight
    assert _counts() == before


@pytest.mark.parametrize("value", [0, -1, True, False, 2.0, np.float64(2.0), "2", np.bool_(True), 1.5, [2]])
@pytest.mark.parametrize("face", ["thread_limits", "kernel_thread_limits", "resolve_n_threads"])
def test_n_threads_refused_naming_it(value, face):
    from minicnn.backend import get_backend

    with pytest.raises(ValueError, match="n_threads"):
        if face == "thread_limits":
            with T.thread_limits(value):
                pass
        elif face == "kernel_thread_limits":
            with T.kernel_thread_limits(value, 10 ** 9, get_backend("numpy")):
                pass
        else:
            T.resolve_n_threads(value)


@pytest.mark.parametrize("value, want", [(1, 1), (np.int64(1), 1), (np.int8(1), 1), (np.uint64(1), 1)])
def test_n_threads_numpy_ints_accepted(value, want):
    with T.thread_limits(value) as n:
        assert n == want
    assert T.resolve_n_threads(value) == want and type(T.resolve_n_threads(value)) is int
