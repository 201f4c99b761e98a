"""The thread knob (minicnn.threads) and thread-count independence of the Cython kernels."""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from minicnn import threads
from minicnn.backend import reference
from minicnn.backend.hash_rng import dropout_key, keep_threshold

ck = pytest.importorskip("minicnn.backend.cython_kernels")
openmp = pytest.importorskip("minicnn.backend._openmp")
numba = pytest.importorskip("numba")

TWO = min(2, threads.available_cpus())
N_DIGITS = 100


def _blas_threads():
    return sorted({lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"})


def _state():
    return numba.get_num_threads(), openmp.get_max_threads(), _blas_threads()


# ----------------------------------------------------------------------------- resolve
@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True, np.float64(2.0)])
def test_resolve_rejects_non_positive_int(bad):
    with pytest.raises(ValueError, match=r"n_threads.*" + repr(bad).replace("(", r"\(").replace(")", r"\)")):
        threads.resolve_n_threads(bad)


def test_resolve_accepts_ints_and_numpy_ints():
    assert threads.resolve_n_threads(3) == 3
    assert threads.resolve_n_threads(np.int64(2)) == 2


def test_resolve_none_honours_affinity_and_env(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 5}, raising=False)
    assert threads.resolve_n_threads(None) == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "3,1")
    assert threads.resolve_n_threads(None) == 3
    monkeypatch.setenv("NUMBA_NUM_THREADS", "2")
    assert threads.resolve_n_threads(None) == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "not-a-number")
    monkeypatch.delenv("NUMBA_NUM_THREADS")
    assert threads.resolve_n_threads(None) == 4


def test_thread_limits_validates_before_touching_anything():
    before = _state()
    with pytest.raises(ValueError, match="n_threads=0"):
        with threads.thread_limits(0):
            pass
    assert _state() == before


# ----------------------------------------------------------------------------- the knob
@pytest.mark.parametrize("n", [1, TWO])
def test_thread_limits_sets_all_three_runtimes_and_restores(n):
    threads._numba()  # choose the threading layer before reading Numba's state
    saved = numba.get_num_threads(), openmp.get_max_threads()
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    openmp.set_num_threads(3)  # an outer value distinct from every n used here
    try:
        before = _state()
        with threads.thread_limits(n) as resolved:
            assert resolved == n
            assert numba.get_num_threads() == min(n, numba.config.NUMBA_NUM_THREADS)
            assert openmp.get_max_threads() == n
            assert _blas_threads() == [1]
        assert _state() == before
    finally:
        numba.set_num_threads(saved[0])
        openmp.set_num_threads(saved[1])


def test_thread_limits_restores_on_exception_and_when_nested():
    before = _state()
    with pytest.raises(RuntimeError):
        with threads.thread_limits(1):
            with threads.thread_limits(TWO):
                assert openmp.get_max_threads() == TWO
                assert _blas_threads() == [1]
            assert openmp.get_max_threads() == 1
            assert _blas_threads() == [1]
            raise RuntimeError("boom")
    assert _state() == before


# ----------------------------------------------------------------------------- kernels vs thread count
def _conv_case(seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((10, 9, 8, 5)).astype(dtype)
    w = rng.standard_normal((3, 3, 5, 7)).astype(dtype)
    dy = rng.standard_normal((10, 5, 4, 7)).astype(dtype)   # stride 2, padding 1
    return x, w, dy


def _conv_fwd_bwd(k, x, w, dy):
    y = np.empty(dy.shape, x.dtype)
    col = np.empty((x.shape[0], dy.shape[1] * dy.shape[2], 3 * 3 * x.shape[3]), x.dtype)
    dx, dcol, dw = np.empty_like(x), np.empty_like(col), np.empty_like(w)
    k.conv2d_forward(y, x, w, col, 2, 2, 1, 1, 1, 1)
    k.conv2d_backward_input(dx, dcol, dy, w, 2, 2, 1, 1, 1, 1)
    k.conv2d_backward_weight(dw, dy, col)
    return y, dx, dw


def test_conv_forward_backward_identical_for_1_and_2_threads():
    x, w, dy = _conv_case()
    with threads.thread_limits(1):
        one = _conv_fwd_bwd(ck, x, w, dy)
    with threads.thread_limits(TWO):
        two = _conv_fwd_bwd(ck, x, w, dy)
    for a, b, ref in zip(one, two, _conv_fwd_bwd(reference, x, w, dy)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, ref, rtol=1e-4, atol=1e-4)


def test_bias_act_db_identical_for_1_and_2_threads():
    rng = np.random.default_rng(1)
    dy = rng.standard_normal((1000, 6)).astype(np.float32)
    y = rng.standard_normal((1000, 6)).astype(np.float32)
    results = []
    for n in (1, TWO):
        dx, db = np.empty_like(dy), np.empty(6, np.float32)
        with threads.thread_limits(n):
            ck.bias_act_backward(dx, db, dy, y, 2, 0.1)
        results.append(db)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_allclose(results[0], np.where(y > 0, dy, dy * np.float32(0.1)).sum(0), rtol=1e-5)


def _mixed_work(seed):
    """Conv forward/backward, max-pool and dropout on one worker's own arrays."""
    x, w, dy = _conv_case(seed)
    y, dx, dw = _conv_fwd_bwd(ck, x, w, dy)
    p = np.empty((10, 2, 2, 7), np.float32)
    am = np.empty(p.shape, np.int64)
    ck.maxpool2d_forward(p, am, y, 2, 2, 2, 2, 0, 0)
    d = np.empty(y.size, np.float32)
    key0, key1 = dropout_key(seed, 1, 0)
    ck.dropout_forward(d, y.reshape(-1), key0, key1, keep_threshold(0.5), 2.0)
    return y, dx, dw, p, am, d


def test_cython_kernels_concurrent_python_threads_give_identical_results():
    seeds = [0, 1, 2, 3] * 2
    expected = {s: _mixed_work(s) for s in set(seeds)}
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(_mixed_work, seeds))
    for s, result in zip(seeds, got):
        for a, b in zip(result, expected[s]):
            np.testing.assert_array_equal(a, b)


def test_blas_is_limited_inside_a_second_python_thread_after_the_main_thread_limited_it():
    """threadpoolctl ignores limits set from a thread other than the first one that set them;
    thread_limits must still hold BLAS at one thread there (Dask worker tasks, server threads)."""
    import threading

    from threadpoolctl import threadpool_info

    from minicnn.threads import thread_limits

    def blas_threads():
        return max(info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas")

    with thread_limits(1):
        assert blas_threads() == 1
    seen = []

    def worker():
        with thread_limits(1):
            seen.append(blas_threads())

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == [1]


# ----------------------------------------------------------------------------- calls too small to go parallel
def test_kernel_thread_limits_skips_only_calls_below_the_parallel_threshold():
    from minicnn.backend import get_backend

    cython, numba_backend = get_backend("cython"), get_backend("numba")
    below = openmp.PARALLEL_WORK_THRESHOLD - 1
    assert openmp.PARALLEL_WORK_THRESHOLD == 2**18   # kernels/_parallel.pxi
    with threads.thread_limits(TWO):
        with threads.kernel_thread_limits(1, below, cython):   # nothing can go parallel: nothing is touched
            assert openmp.get_max_threads() == TWO
        with threads.kernel_thread_limits(1, below + 1, cython):
            assert openmp.get_max_threads() == 1 and _blas_threads() == [1]
        with threads.kernel_thread_limits(1, 10, numba_backend):   # Numba kernels have no threshold
            assert numba.get_num_threads() == 1 and openmp.get_max_threads() == 1
    with pytest.raises(ValueError, match="n_threads=0"):
        threads.kernel_thread_limits(0, 10, cython)


@pytest.mark.parametrize("n_threads", [0, -1, 1.5, True, "2", 2.0])
@pytest.mark.parametrize("work", [10, 2**18, 10**9])
def test_kernel_thread_limits_checks_n_threads_whether_or_not_it_skips(n_threads, work):
    from minicnn.backend import get_backend

    for backend in ("cython", "numpy"):
        with pytest.raises(ValueError, match=f"n_threads={n_threads!r}"):
            threads.kernel_thread_limits(n_threads, work, get_backend(backend))


@pytest.mark.parametrize("n_threads", [None, 1, TWO, np.int64(1)])
def test_kernel_thread_limits_accepts_every_valid_n_threads(n_threads):
    from minicnn.backend import get_backend

    with threads.kernel_thread_limits(n_threads, 2**30, get_backend("cython")):   # above the threshold: a team
        team = openmp.get_max_threads()
    assert 1 <= team <= (threads.available_cpus() if n_threads is None else int(n_threads))


# ----------------------------------------------------------------------------- team size from the work of a step
@pytest.mark.parametrize("n, work, team", [
    (4, None, 4), (4, 0, 1), (4, threads.MIN_WORK_PER_THREAD - 1, 1), (4, threads.MIN_WORK_PER_THREAD, 1),
    (4, 2 * threads.MIN_WORK_PER_THREAD, 2), (4, 3 * threads.MIN_WORK_PER_THREAD + 5, 3),
    (4, 100 * threads.MIN_WORK_PER_THREAD, 4), (1, 100 * threads.MIN_WORK_PER_THREAD, 1)])
def test_the_team_is_capped_by_the_work_of_a_step(n, work, team):
    threads._numba()
    assert threads.team_for_work(n, work) == team
    with threads.thread_limits(n, work) as resolved:
        assert resolved == team
        assert openmp.get_max_threads() == team
        assert numba.get_num_threads() == min(team, numba.config.NUMBA_NUM_THREADS)
        assert _blas_threads() == [1]


def test_fit_and_predict_size_the_team_from_their_steps(monkeypatch, digits):
    """fit sizes its team from a training step (forward + backward) of its batch, predict from a forward batch."""
    import minicnn._estimator_base as base
    from minicnn import CNNClassifier

    X, y = digits
    calls = []
    real = threads.thread_limits

    def recorder(n=None, work=None):
        calls.append((n, work))
        return real(n, work)

    monkeypatch.setattr(base, "thread_limits", recorder)
    monkeypatch.setattr(threads, "thread_limits", recorder)
    clf = CNNClassifier(layers=("conv4", "maxpool", "dense16"), batch_size=32, max_iter=1, n_threads=3,
                        backend="numba", random_state=0).fit(X[:100], y[:100])
    per_sample = clf.network_.forward_work_per_sample()
    assert calls == [(3, 3 * 32 * per_sample)]
    clf.predict(X[:40])
    assert calls[1:] == [(3, 40 * per_sample)]


def test_forward_work_bounds_every_layer_of_the_reference_model():
    from minicnn.tools.bench import MinicnnContender

    network = MinicnnContender("digits", "cython").clf.network_
    work = network.forward_work_per_sample()
    for layer in network.layers:
        w = layer.params.get("w")
        macs = np.prod(layer.output_shape) * (w.size // w.shape[-1] if w is not None else 1)
        assert work >= macs + np.prod(layer.input_shape)


def test_one_sample_predict_leaves_thread_settings_alone_and_a_large_batch_sets_them(monkeypatch):
    from minicnn.tools.bench import MinicnnContender

    clf = MinicnnContender("digits", "cython").clf
    entered = []
    real = threads.thread_limits
    monkeypatch.setattr(threads, "thread_limits", lambda n=None, work=None: entered.append(n) or real(n, work))
    clf.n_threads = 1
    one = clf.predict_proba(clf._images(np.zeros((1, 8, 8, 1), np.float32)))
    assert entered == []
    many = clf.predict_proba(np.zeros((64, 8, 8, 1), np.float32))
    assert entered == [1]
    np.testing.assert_array_equal(one[0], many[0])


def test_blas_libraries_without_direct_functions_go_through_their_controller():
    """A BLAS whose C functions are not looked up (MKL, BLIS, OpenBLAS on OpenMP) is limited via threadpoolctl."""
    from threadpoolctl import ThreadpoolController

    controller = next(lc for lc in ThreadpoolController().lib_controllers if lc.user_api == "blas")

    class Opaque:   # a controller of another library: only the threadpoolctl methods
        internal_api = "mkl"

        def get_num_threads(self):
            return controller.get_num_threads()

        def set_num_threads(self, n):
            controller.set_num_threads(n)

    get_threads, set_threads = threads._blas_accessors(Opaque())
    old = get_threads()
    try:
        set_threads(1)
        assert get_threads() == 1
    finally:
        set_threads(old)


# ----------------------------------------------------------------------------- OpenMP wait policy
def test_openmp_spin_count_set_only_when_the_user_chose_no_wait_policy():
    env = {}
    assert threads.configure_openmp_waiting(env) and env == {"GOMP_SPINCOUNT": threads.OPENMP_SPINCOUNT}
    for name in threads.WAIT_POLICY_ENV_VARS:
        env = {name: "passive" if name == "OMP_WAIT_POLICY" else "5"}
        before = dict(env)
        assert not threads.configure_openmp_waiting(env) and env == before


@pytest.mark.parametrize("module", ["minicnn.backend.cython_kernels", "minicnn.backend.numba_kernels"])
@pytest.mark.parametrize("user", [None, "123"])
def test_kernel_modules_set_the_spin_count_before_openmp_loads(module, user):
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not available")
    # libgomp reads the variable when it loads: it must not be loaded before the kernel module is imported
    code = ("import os\n"
            "gomp = lambda: 'libgomp' in open('/proc/self/maps').read()\n"
            "assert not gomp()\n"
            f"import {module}\n"
            "print(os.environ.get('GOMP_SPINCOUNT'))\n")
    env = {k: v for k, v in os.environ.items() if k not in threads.WAIT_POLICY_ENV_VARS}
    if user is not None:
        env["GOMP_SPINCOUNT"] = user
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == (user or threads.OPENMP_SPINCOUNT)


def test_default_team_leaves_out_the_cpus_other_processes_keep_busy(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "_machine_cpus", lambda: 4)   # os.cpu_count(), read once
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    for others, team in ((0, 4), (1, 3), (3, 1), (9, 1)):
        monkeypatch.setattr(threads, "_other_runnable_tasks", lambda others=others: others)
        assert threads.default_team_size() == team
        assert threads.resolve_n_threads(None) == 4   # the estimators' parameter still resolves to every CPU
        with threads.thread_limits(None) as n:
            assert n == team
        with threads.thread_limits(4) as n:   # an explicit count without a step's work is never lowered
            assert n == 4
        for work in (1, 10 * threads.MIN_WORK_PER_THREAD, 10**12):   # a step: lowered while CPUs are busy
            for explicit in (4, 2, 1):
                with threads.thread_limits(explicit, work) as n:
                    assert n == min(threads.team_for_work(explicit, work), team)
    # on a quiet machine, an explicit count above the CPUs is kept (oversubscription on request)
    monkeypatch.setattr(threads, "_other_runnable_tasks", lambda: 0)
    with threads.thread_limits(8, 10**12) as n:
        assert n == 8
    # a process confined to some CPUs cannot read its share of the machine-wide count: no adjustment
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert threads.default_team_size() == 2


def test_runnable_task_count_is_read_from_proc_and_reused_briefly(monkeypatch):
    if not os.path.exists("/proc/loadavg"):
        pytest.skip("no /proc/loadavg")
    monkeypatch.setitem(threads._load_state, "time", -1e9)
    first = threads._other_runnable_tasks()
    assert first >= 0
    opened = []
    real_read = threads._read_proc
    monkeypatch.setattr(threads, "_read_proc", lambda path: opened.append(path) or real_read(path))
    threads._other_runnable_tasks()
    assert opened == []   # within LOAD_SAMPLE_SECONDS: no second read
    monkeypatch.setitem(threads._load_state, "time", -1e9)
    threads._other_runnable_tasks()
    assert opened[0] == "/proc/loadavg"   # past it: read again


def test_this_processs_own_threads_are_not_counted_as_other_processes(monkeypatch):
    """Runnable tasks of the machine less this process's own (a PyTorch or OpenMP pool still spinning)."""
    loadavg = []
    real_read = threads._read_proc
    monkeypatch.setattr(threads, "_read_proc",
                        lambda path: loadavg[0] if path == "/proc/loadavg" else real_read(path))
    for running, own, others in ((5, 1, 4), (5, 3, 2), (5, 5, 0), (5, 7, 0), (2, 1, 1), (2, 2, 0)):
        loadavg[:] = [f"0.50 0.40 0.30 {running}/300 12345\n".encode()]
        monkeypatch.setattr(threads, "_own_runnable_threads", lambda own=own: own)
        monkeypatch.setitem(threads._load_state, "time", -1e9)
        assert threads._other_runnable_tasks() == others
    # one running task is the reader itself: no other process, and this process's threads are not read
    loadavg[:] = [b"0.50 0.40 0.30 1/300 12345\n"]
    monkeypatch.setattr(threads, "_own_runnable_threads", lambda: pytest.fail("own threads read for nothing"))
    monkeypatch.setitem(threads._load_state, "time", -1e9)
    assert threads._other_runnable_tasks() == 0


def test_a_busy_thread_of_this_process_is_one_of_its_runnable_threads():
    if not os.path.exists("/proc/self/task"):
        pytest.skip("no /proc/self/task")
    import hashlib
    import threading

    stop = threading.Event()
    data = bytes(1 << 22)

    def busy():   # sha256 of a large buffer releases the GIL: the thread stays runnable (state R)
        while not stop.is_set():
            hashlib.sha256(data).digest()

    worker = threading.Thread(target=busy)
    worker.start()
    try:
        counts = [threads._own_runnable_threads() for _ in range(200)]
    finally:
        stop.set()
        worker.join()
    assert min(counts) >= 1 and max(counts) >= 2, counts


def test_a_concurrent_call_of_another_thread_of_this_process_keeps_its_cpus(monkeypatch):
    """Own threads are left out of the machine's count, so another thread's team inside thread_limits is added."""
    import threading

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "_machine_cpus", lambda: 4)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(threads, "_other_runnable_tasks", lambda: 0)
    inside, leave = threading.Event(), threading.Event()

    def other_caller():
        with threads.thread_limits(3, 10**12):
            inside.set()
            leave.wait(60)

    worker = threading.Thread(target=other_caller)
    worker.start()
    try:
        assert inside.wait(60)
        assert threads.default_team_size() == 1                  # 4 CPUs, 3 kept busy by the other call
        with threads.thread_limits(None) as n:
            assert n == 1
            with threads.thread_limits(2, 10**12) as inner:       # nested: the other call still keeps 3
                assert inner == 1
    finally:
        leave.set()
        worker.join()
    assert threads.default_team_size() == 4 and threads._in_flight == {}
    with threads.thread_limits(2, 10**12) as n:                  # this thread alone: its own team is not "other"
        assert n == 2 and threads.default_team_size() == 4


def _team_as_before(n_threads, work):
    """The team rule as one formula: resolve, lower an explicit count of a step to the free CPUs (or take the
    default team), then cap by the step's work (what thread_limits computed before it skipped the CPU count
    for steps too small to share)."""
    if n_threads is None:
        n = threads.default_team_size()
    else:
        n = threads.resolve_n_threads(n_threads)
        if n > 1 and work is not None:
            n = threads._busy_capped(n)
    return threads.team_for_work(n, work)


@pytest.mark.parametrize("others", [0, 1, 3])
def test_the_team_skips_counting_cpus_only_where_the_work_caps_it_at_one(monkeypatch, others):
    """Every (n_threads, work) gives the team of the full rule, whether or not the CPU count was read."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "_machine_cpus", lambda: 4)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(threads, "_other_runnable_tasks", lambda: others)
    m = threads.MIN_WORK_PER_THREAD
    for n_threads in (None, 1, 2, 3, 4, 8, np.int64(2)):
        for work in (None, 0, 1, m - 1, m, 2 * m - 1, 2 * m, 3 * m + 5, 10**12, 2.5 * m):
            with threads.thread_limits(n_threads, work) as team:
                assert team == _team_as_before(n_threads, work), (n_threads, work)
                assert openmp.get_max_threads() == team and _blas_threads() == [1]


def test_unset_and_set_thread_variables_read_as_os_environ_says(monkeypatch):
    """The environment read without os.environ.get (unset names) sees every change made through os.environ."""
    for name in threads.LIMIT_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
        assert threads._env_limit(name) is None
        monkeypatch.setenv(name, " 3,1")
        assert threads._env_limit(name) == 3
        monkeypatch.setenv(name, "0")
        assert threads._env_limit(name) is None
        monkeypatch.delenv(name)
        assert threads._env_limit(name) is None
    monkeypatch.setattr(os, "environ", {"OMP_NUM_THREADS": "2"})   # a replaced mapping is asked directly
    assert threads._env_limit("OMP_NUM_THREADS") == 2 and threads._env_limit("NUMBA_NUM_THREADS") is None
