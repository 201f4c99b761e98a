"""BLAS thread counts held in C (``kernels/openmp.pyx``: ``blas_enter`` / ``blas_exit``) keep the one-knob contract.

Inside :func:`minicnn.threads.thread_limits` every loaded BLAS runs one thread and each count is restored after the
last context closes, whichever path holds them: the compiled one (every BLAS an OpenBLAS reached by its C functions,
the usual case) or the Python one (a library threadpoolctl controls); contexts nested, from several Python threads
at once, across a change of the loaded modules, and never both paths at once.
"""

import sys
import threading
import types

import pytest

from minicnn import threads

openmp = pytest.importorskip("minicnn.backend._openmp")
threadpoolctl = pytest.importorskip("threadpoolctl")

WORK = 10 ** 9   # a step large enough to take the limits


def _blas_counts():
    return sorted(lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas")


@pytest.fixture
def two_blas_threads():
    """Every BLAS at 2 threads before the test (so a limit to 1 shows), restored after."""
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        assert set(_blas_counts()) == {2}
        yield
    assert openmp.blas_depth() == 0 and threads._blas_state["depth"] == 0


def test_the_usual_openblas_is_held_in_c_and_restored(two_blas_threads):
    with threads.thread_limits(1, WORK):
        assert openmp.blas_depth() == 1 and threads._blas_state["depth"] == 0
        assert set(_blas_counts()) == {1}
        with threads.thread_limits(1, WORK):   # nested: only the outermost exit restores
            assert openmp.blas_depth() == 2
        assert set(_blas_counts()) == {1}
    assert set(_blas_counts()) == {2}


def test_contexts_of_several_python_threads_at_once(two_blas_threads):
    inside, leave, seen = threading.Barrier(3), threading.Event(), []

    def work():
        with threads.thread_limits(1, WORK):
            inside.wait()
            leave.wait()
            seen.append(_blas_counts())

    workers = [threading.Thread(target=work) for _ in range(2)]
    for worker in workers:
        worker.start()
    inside.wait()
    assert set(_blas_counts()) == {1} and openmp.blas_depth() == 2
    leave.set()
    for worker in workers:
        worker.join()
    assert all(set(counts) == {1} for counts in seen)
    assert set(_blas_counts()) == {2}


def test_a_new_module_rescans_at_the_next_outermost_entry(two_blas_threads, monkeypatch):
    with threads.thread_limits(1, WORK):
        pass
    monkeypatch.setitem(sys.modules, "minicnn_test_new_module", types.ModuleType("minicnn_test_new_module"))
    with threads.thread_limits(1, WORK):
        assert threads._blas_state["scan_key"] == len(sys.modules)
        assert openmp.blas_depth() == 1 and set(_blas_counts()) == {1}
    assert set(_blas_counts()) == {2}


def test_a_library_without_c_functions_takes_the_python_path_and_never_both(two_blas_threads, monkeypatch):
    real = threads._blas_controllers()
    wrapped = [(lambda g=g: g(), lambda n, s=s: s(n)) for g, s in real]   # Python callables, as threadpoolctl's
    monkeypatch.setattr(threads, "_blas_controllers", lambda: wrapped)
    # a module loaded since the last scan: the held set is stale, the next outermost entry scans again
    for i in range(3):   # (a count of modules no earlier scan saw)
        monkeypatch.setitem(sys.modules, f"minicnn_test_blas_module{i}", types.ModuleType("minicnn_test_module"))
    with threads.thread_limits(1, WORK):
        assert threads._blas_state["depth"] == 1 and openmp.blas_depth() == 0
        assert set(_blas_counts()) == {1}
        with threads.thread_limits(1, WORK):   # nested, while the Python path holds: the Python path again
            assert threads._blas_state["depth"] == 2 and openmp.blas_depth() == 0
    assert set(_blas_counts()) == {2}
    monkeypatch.setattr(threads, "_blas_controllers", lambda: real)   # C functions again: held in C again
    with threads.thread_limits(1, WORK):
        assert openmp.blas_depth() == 1 and threads._blas_state["depth"] == 0
        assert set(_blas_counts()) == {1}
    assert set(_blas_counts()) == {2}


def test_the_compiled_helper_refuses_what_it_does_not_hold():
    assert openmp.blas_depth() == 0
    assert openmp.blas_exit() is False   # nothing open: nothing undone
    with pytest.raises(ValueError, match="at most"):
        openmp.blas_configure([(1, 1)] * (openmp.BLAS_MAX_LIBRARIES + 1), 0)
