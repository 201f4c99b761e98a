"""The cold-start path of ``load_predictor``: what a fresh process imports, the build without random init, the
generator-state check without ``numpy.random``, and the BLAS thread control without threadpoolctl.

Speed itself is measured in ``benchmarks/bench_cold_start.py``; these tests check that each shortcut keeps the
results and the refusals of the long way.
"""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

import minicnn
from minicnn import CNNClassifier, CNNRegressor
from minicnn.io import ModelFileError, rng_state_problem
from minicnn import threads

N_DIGITS = 64


def _fit(est, X, y):
    with warnings.catch_warnings():   # one or two iterations do not converge: not what is tested here
        warnings.simplefilter("ignore")
        return est.fit(X, y)


# ----------------------------------------------------------------------------- what a fresh process imports
#: Modules a fresh process that loads a model with load_predictor and predicts arrays must not import, and why:
#: each costs milliseconds of a cold start and the prediction does not use it.
COLD_ABSENT = {
    "sklearn": "the estimators' base (~1 s)",
    "numba": "the Numba backend (~0.3 s); the default backend is compiled",
    "scipy.linalg": "SciPy's BLAS is found in its shared library (minicnn.backend.blas)",
    "pandas": "only feature names need it",
    "joblib": "no parallel jobs in prediction",
    "numpy.random": "nothing is drawn: the saved generator state is checked without it, the weights are read",
    "threadpoolctl": "NumPy's and SciPy's OpenBLAS are limited through their own functions",
    "hashlib": "the image reader's cache keys",
    "minicnn.images": "image files only (X is an array here)",
    "minicnn.files": "writing files only",
    "minicnn.backend.reference": "the NumPy kernels: the compiled ones serve every kernel",
    "minicnn.estimator": "the scikit-learn face",
    "minicnn.training": "fitting only",
}


def _threaded(tmp_path):
    """A 3-channel classifier whose one-batch prediction enters the thread limits (Winograd, dense GEMMs)."""
    rng = np.random.default_rng(0)
    X = rng.random((40, 24, 24, 3), dtype=np.float32)
    return _fit(CNNClassifier(layers=("conv8", "conv16", "maxpool", "dense32"), max_iter=1, random_state=0),
                X, np.arange(40) % 3), X


CASES = {
    "classifier-small": lambda digits, tmp: (_fit(CNNClassifier(layers=("conv6", "maxpool", "dense16"),
                                                                dropout="last:2", max_iter=1, random_state=0),
                                                  *digits), digits[0][:4]),
    "regressor-batchnorm": lambda digits, tmp: (_fit(CNNRegressor(layers=("conv4", "maxpool", "dense8"),
                                                                  batch_norm=True, max_iter=1, random_state=0),
                                                     digits[0], digits[1].astype(float)), digits[0][:5]),
    "classifier-threaded": lambda digits, tmp: _threaded(tmp),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_fresh_process_predicts_without_the_modules_it_does_not_need(digits, tmp_path, case):
    model, X = CASES[case](digits, tmp_path)
    path = tmp_path / "model.npz"
    model.save(path)
    np.save(tmp_path / "x.npy", X)
    method = "predict_proba" if isinstance(model, CNNClassifier) else "predict"
    code = ("import json, sys, numpy as np, minicnn\n"
            f"p = minicnn.load_predictor({str(path)!r})\n"
            f"out = p.{method}(np.load({str(tmp_path / 'x.npy')!r}))\n"
            f"print(json.dumps([out.tolist(), sorted(m for m in {sorted(COLD_ABSENT)!r} if m in sys.modules)]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    values, loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert {m: COLD_ABSENT[m] for m in loaded} == {}
    np.testing.assert_array_equal(np.asarray(values), getattr(model, method)(X))   # bit for bit


# ----------------------------------------------------------------------------- the build without random init
ARCHITECTURES = {   # every layer kind of the token table, and batch normalization and dropout
    "conv-dense": dict(layers=("conv4x3", "maxpool", "dense8")),
    "strided-dilated": dict(layers=("conv4x3s2", "conv4x3d2", "gap")),
    "residual": dict(layers=("res4", "avgpool", "dense8")),
    "depthwise-separable": dict(layers=("conv4", "dw3", "sep6", "gmp")),
    "batchnorm-dropout": dict(layers=("conv4", "maxpool", "dense8"), batch_norm=True, dropout="after_each_layer"),
}


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
@pytest.mark.parametrize("face", ["load_predictor", "load"])
def test_a_loaded_network_holds_every_saved_value_and_zero_gradients(digits, tmp_path, name, face):
    X, y = digits
    X = np.pad(X, ((0, 0), (2, 2), (2, 2), (0, 0)))   # 12 x 12: room for every layer above
    clf = _fit(CNNClassifier(**ARCHITECTURES[name], max_iter=2, random_state=0), X, y)
    clf.save(tmp_path / "m.npz")
    loaded = getattr(minicnn, face)(tmp_path / "m.npz")
    (params, grads), = loaded.network_.flat_params_and_grads()
    (want, _), = clf.network_.flat_params_and_grads()
    np.testing.assert_array_equal(params, want)
    assert not grads.any()
    for got_layer, want_layer in zip(loaded.network_.descendants(), clf.network_.descendants()):
        for key, value in getattr(want_layer, "state", {}).items():
            np.testing.assert_array_equal(got_layer.state[key], value)
        if want_layer.stochastic:
            assert (got_layer.seed, got_layer.layer_id, got_layer.step) == (want_layer.seed, want_layer.layer_id,
                                                                           want_layer.step)
    np.testing.assert_array_equal(loaded.predict_proba(X[:9]), clf.predict_proba(X[:9]))


def test_a_loaded_estimator_fits_on_from_the_saved_generator(digits, tmp_path):
    X, y = digits
    clf = _fit(CNNClassifier(layers=("conv4", "maxpool", "dense8"), dropout="last:1", max_iter=1,
                             random_state=0), X, y)
    clf.save(tmp_path / "m.npz")
    first, second = minicnn.load(tmp_path / "m.npz"), minicnn.load(tmp_path / "m.npz")
    assert first._rng.bit_generator.state == clf._rng.bit_generator.state
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first.partial_fit(X, y)
        second.partial_fit(X, y)   # (a fresh optimizer, as documented: moments are not saved)
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    assert not np.array_equal(first.predict_proba(X), clf.predict_proba(X))   # it did train on


# ----------------------------------------------------------------------------- the saved generator state
def _state(**change):
    state = np.random.default_rng(3).bit_generator.state
    inner = change.pop("inner", None)
    if inner is not None:
        state["state"] = inner
    state.update(change)
    return state


ACCEPTED = [_state(), _state(has_uint32=1, uinteger=2**32 - 1), _state(inner={"state": 2**128 - 1, "inc": 0})]
REFUSED = {
    "not a dict": [1, 2],
    "other generator": {"bit_generator": "MT19937", "state": {"key": list(range(624)), "pos": 624}},
    "missing key": {k: v for k, v in _state().items() if k != "uinteger"},
    "extra key": _state(extra=1),
    "state too large": _state(inner={"state": 2**128, "inc": 1}),
    "negative inc": _state(inner={"state": 1, "inc": -1}),
    "float state": _state(inner={"state": 1.5, "inc": 1}),
    "bool has_uint32": _state(has_uint32=True),
    "has_uint32 2": _state(has_uint32=2),
    "uinteger too large": _state(uinteger=2**32),
    "state not a dict": _state(inner=[1, 2]),
}


@pytest.mark.parametrize("state", ACCEPTED)
def test_every_state_the_check_accepts_numpy_accepts(state):
    assert rng_state_problem(state) is None
    rng = np.random.default_rng()
    rng.bit_generator.state = state   # at least as strict as PCG64's setter: this never raises
    assert rng.bit_generator.state == state


@pytest.mark.parametrize("kind", sorted(REFUSED))
@pytest.mark.parametrize("face", ["load_predictor", "load"])
def test_both_faces_refuse_a_bad_generator_state(digits, tmp_path, kind, face):
    from minicnn.io import _read_header, _Reader   # rewrite one header field, keep every array
    import zipfile

    X, y = digits
    clf = _fit(CNNClassifier(layers=("conv2", "maxpool"), max_iter=1, random_state=0), X, y)
    good = tmp_path / "good.npz"
    clf.save(good)
    with zipfile.ZipFile(good) as archive:
        header = _read_header(_Reader(archive, str(good)))
        members = {name: archive.read(name) for name in archive.namelist() if name != "header.npy"}
    header["fitted"]["rng_state"] = REFUSED[kind]
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(bad, "w") as archive:
        with archive.open("header.npy", "w") as f:
            np.lib.format.write_array(f, np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ModelFileError, match="rng_state is invalid"):
        getattr(minicnn, face)(bad)


# ----------------------------------------------------------------------------- BLAS threads without threadpoolctl
def test_the_blas_file_names_cover_every_blas_threadpoolctl_controls():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    names = {p for c in threadpoolctl._ALL_CONTROLLERS if c.user_api == "blas" for p in c.filename_prefixes}
    assert names <= set(threads.BLAS_FILE_PREFIXES), names - set(threads.BLAS_FILE_PREFIXES)


def test_the_openblas_accessors_control_what_threadpoolctl_finds():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    found = threads._openblas_accessors()
    blas = [c for c in threadpoolctl.ThreadpoolController().lib_controllers if c.user_api == "blas"]
    if found is None:   # another BLAS (or no /proc): the threadpoolctl path serves; nothing to compare
        assert any(c.internal_api != "openblas" for c in blas) or sys.platform != "linux"
        return
    assert len(found) == len(blas)
    assert sorted(get() for get, _ in found) == sorted(c.get_num_threads() for c in blas)
    old = [get() for get, _ in found]
    try:
        for _, set_threads in found:
            set_threads(1)
        assert all(c.num_threads == 1 for c in threadpoolctl.ThreadpoolController().lib_controllers
                   if c.user_api == "blas")
    finally:
        for (_, set_threads), n in zip(found, old):
            set_threads(n)


def test_thread_limits_set_one_blas_thread_and_restore_it():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = [c.num_threads for c in threadpoolctl.ThreadpoolController().lib_controllers if c.user_api == "blas"]
    with threads.thread_limits(2):
        inside = [c.num_threads for c in threadpoolctl.ThreadpoolController().lib_controllers
                  if c.user_api == "blas"]
    after = [c.num_threads for c in threadpoolctl.ThreadpoolController().lib_controllers if c.user_api == "blas"]
    assert inside == [1] * len(before) and after == before


# ----------------------------------------------------------------------------- weights read straight into place
def _model_file(digits, tmp_path):
    X, y = digits
    clf = _fit(CNNClassifier(layers=("conv4", "maxpool", "dense8"), max_iter=1, random_state=0), X, y)
    clf.save(tmp_path / "m.npz")
    return clf, tmp_path / "m.npz", X


@pytest.mark.parametrize("face", ["load_predictor", "load"])
def test_a_flipped_weight_byte_is_refused_by_its_crc(digits, tmp_path, face):
    import zipfile

    clf, path, _ = _model_file(digits, tmp_path)
    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if i.filename.startswith("layer")), key=lambda i: i.file_size)
        assert info.compress_type == zipfile.ZIP_STORED   # what save writes: the direct read applies
    raw = bytearray(path.read_bytes())
    raw[info.header_offset + 30 + len(info.filename) + info.file_size - 3] ^= 0x40   # in the array's last bytes
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="Bad CRC-32 for file 'layer"):
        getattr(minicnn, face)(path)


def test_a_compressed_model_file_loads_the_same_values(digits, tmp_path):
    import zipfile

    clf, path, X = _model_file(digits, tmp_path)
    packed = tmp_path / "deflated.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(packed, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
    for loaded in (minicnn.load_predictor(path), minicnn.load_predictor(packed)):
        np.testing.assert_array_equal(loaded.network_.flat_params_and_grads()[0][0],
                                      clf.network_.flat_params_and_grads()[0][0])
        np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


# ----------------------------------------------------------------------------- the benchmark's order
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_the_cold_start_rounds_give_every_path_every_place_and_every_predecessor(n):
    """A process run after the estimator's (scikit-learn imported) was measured slower: no path may always follow
    the same one."""
    from minicnn.tools.bench import rotated_rounds

    names = [f"path{i}" for i in range(n)]
    rounds = rotated_rounds(names, 3 * n)
    assert len(rounds) == 3 * n and all(sorted(r) == names for r in rounds)
    for name in names:
        assert sorted(r.index(name) for r in rounds) == sorted(list(range(n)) * 3)   # every place, equally often
    if n in (2, 3):   # the benchmarks' paths (estimator, predictor, ONNX Runtime; or two checkouts and ORT)
        follows = {(r[i - 1], r[i]) for r in rounds for i in range(1, n)}
        first_after = {(rounds[k - 1][-1], rounds[k][0]) for k in range(1, len(rounds))}
        for name in names:   # every other path runs right before it in some round
            assert {a for a, b in follows | first_after if b == name} - {name} == set(names) - {name}
