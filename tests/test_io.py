"""Safe save/load: round trips, atomic writes, and clear errors for every kind of bad file."""

import json
import os
import pickle
import zipfile

import joblib
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import minicnn
from minicnn import CNNClassifier, CNNRegressor

SMALL = dict(layers=("conv4", "maxpool", "dense16"), max_iter=2, backend="numpy", random_state=0)


N_DIGITS = 200   # samples in the digits fixture (conftest.py)


@pytest.fixture(scope="module")
def fitted(digits):
    X, y = digits
    return CNNClassifier(**SMALL, batch_norm=True, dropout="last:1", early_stopping=True).fit(X, y)


def read_members(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def write_members(path, members):
    with open(path, "wb") as f:
        np.savez(f, **members)


def edit_header(path, out, change):
    members = read_members(path)
    header = json.loads(members["header"].tobytes())
    change(header)
    members["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    write_members(out, members)


# ---------------------------------------------------------------- round trips
def assert_same_fitted(a, b, X):
    assert type(a) is type(b) and a.get_params() == b.get_params()
    for name in ("n_features_in_", "input_shape_", "n_outputs_", "n_iter_", "t_", "loss_curve_",
                 "validation_scores_", "best_validation_score_", "best_loss_", "dropout_layers_"):
        assert getattr(a, name) == getattr(b, name), name
    for la, lb in zip(a.network_.layers, b.network_.layers):
        assert type(la) is type(lb)
        for k in la.params:
            np.testing.assert_array_equal(la.params[k], lb.params[k])
        for k, v in getattr(la, "state", {}).items():
            np.testing.assert_array_equal(v, lb.state[k])
        if la.stochastic:
            assert (la.seed, la.layer_id, la.step) == (lb.seed, lb.layer_id, lb.step)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_classifier_round_trip(fitted, digits, tmp_path):
    X, y = digits
    path = tmp_path / "model.npz"
    fitted.save(path)
    loaded = minicnn.load(path)
    assert_same_fitted(fitted, loaded, X)
    np.testing.assert_array_equal(loaded.classes_, fitted.classes_)
    assert loaded.classes_.dtype == fitted.classes_.dtype
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict_proba(X, mc_samples=3), fitted.predict_proba(X, mc_samples=3))
    assert loaded.summary() == fitted.summary()
    loaded.partial_fit(X, y)          # a loaded model keeps training (with a fresh optimizer)
    assert loaded.n_iter_ == fitted.n_iter_ + 1
    assert minicnn.load(path, backend="auto").backend == "auto"


# tiny targets and a few epochs: the regressor ends "no better than a constant", which is not what is tested here
@pytest.mark.filterwarnings("ignore:CNN[A-Za-z]+. training was unstable:sklearn.exceptions.ConvergenceWarning")
def test_string_classes_and_regressor_round_trip(digits, tmp_path):
    X, y = digits
    labels = np.array([f"digit-{d}" for d in y], dtype=object)
    clf = CNNClassifier(**SMALL).fit(X.reshape(len(X), -1), labels)
    clf.save(tmp_path / "c.npz")
    loaded = minicnn.load(tmp_path / "c.npz")
    assert loaded.classes_.dtype == object and list(loaded.classes_) == list(clf.classes_)
    assert_same_fitted(clf, loaded, X.reshape(len(X), -1))
    for target in (X.mean(axis=(1, 2, 3)), np.c_[X.mean(axis=(1, 2, 3)), X.max(axis=(1, 2, 3))]):
        reg = CNNRegressor(**SMALL, dropout_kind="element", dropout_scaling="test_time").fit(X, target)
        reg.save(tmp_path / "r.npz")
        loaded = minicnn.load(tmp_path / "r.npz")
        assert_same_fitted(reg, loaded, X)
        assert loaded.predict(X).shape == target.shape


def test_pickle_and_joblib_round_trip(fitted, digits, tmp_path):
    X, _ = digits
    for restored in (pickle.loads(pickle.dumps(fitted)),
                     joblib.load(joblib.dump(fitted, tmp_path / "m.joblib")[0])):
        assert_same_fitted(fitted, restored, X)
        np.testing.assert_array_equal(restored.predict_proba(X, mc_samples=2), fitted.predict_proba(X, mc_samples=2))


def test_save_is_atomic_and_leaves_no_temporary_files(fitted, digits, tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(b"old contents")
    fitted.save(path)
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]
    minicnn.load(path)
    with pytest.raises(NotFittedError):
        CNNClassifier().save(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError):
        fitted.save(tmp_path / "missing-dir" / "m.npz")
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]


# ---------------------------------------------------------------- bad files
@pytest.fixture
def saved(fitted, tmp_path):
    path = tmp_path / "good.npz"
    fitted.save(path)
    return path


def expect_invalid(path, match):
    """Both loaders (estimator and scikit-learn-free predictor) refuse ``path`` with the same message."""
    with pytest.raises(ValueError, match=match):
        minicnn.load(path)
    with pytest.raises(ValueError, match=match):
        minicnn.load_predictor(path)


def test_not_a_zip_and_truncated(saved, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"hello")
    expect_invalid(bad, "not a zip archive")
    data = saved.read_bytes()
    for cut in (len(data) // 3, len(data) - 30):
        bad.write_bytes(data[:cut])
        expect_invalid(bad, "not a valid minicnn model file")


@pytest.mark.parametrize("change, match", [
    (lambda h: h.update(version=2), "format version 2 is not supported"),
    (lambda h: h.update(format="keras"), "format is 'keras'"),
    (lambda h: h.update(estimator="os.system"), "estimator 'os.system' is not one of"),
    (lambda h: h.pop("layers"), "header field 'layers' is missing"),
    (lambda h: h["params"].update(dropout_rate=2.0), "invalid params.*dropout_rate"),
    (lambda h: h["params"].update(layers=["conv4", "maxpool", "dense32"]), "layer 5 params are"),
    (lambda h: h["params"].pop("tol"), "params have keys"),
    (lambda h: h["params"].update(evil=1), "params have keys"),
    (lambda h: h.update(input_shape=[8, 8]), "input_shape"),
    (lambda h: h["params"].update(input_shape=[4, 16, 1]), r"params input_shape=\(4, 16, 1\) does not match"),
    (lambda h: h["params"].update(input_shape=["a"]), "invalid params.*input_shape"),
    (lambda h: h.update(n_features_in=65), "n_features_in 65 does not match"),
    (lambda h: h["layers"][0].update(type="Dense"), "layer 0 is 'Dense', the parameters rebuild Conv2D"),
    (lambda h: h["layers"].pop(), "the header lists"),
    (lambda h: h["layers"][8].update(step=-1), "dropout layer 8 has invalid"),
    (lambda h: h["layers"][8].update(seed="1"), "dropout layer 8 has invalid"),
    (lambda h: h["fitted"].update(loss_curve=["x"]), "loss_curve is invalid"),
    (lambda h: h["fitted"].update(rng_state={"bit_generator": "MT19937"}), "rng_state is invalid"),
    (lambda h: h["classes"].update(dtype="|O"), "classes dtype object is not allowed"),
])
def test_invalid_header_fields(saved, tmp_path, change, match):
    out = tmp_path / "edited.npz"
    edit_header(saved, out, change)
    expect_invalid(out, match)


def test_header_must_be_json(saved, tmp_path):
    members = read_members(saved)
    members["header"] = np.frombuffer(b"\xff{not json", dtype=np.uint8)
    write_members(tmp_path / "b.npz", members)
    expect_invalid(tmp_path / "b.npz", "header is not valid JSON")
    members["header"] = np.frombuffer(b"[1, 2]", dtype=np.uint8)
    write_members(tmp_path / "b.npz", members)
    expect_invalid(tmp_path / "b.npz", "not a JSON object")


@pytest.mark.parametrize("mutate, match", [
    (lambda m: m.pop("layer0.w"), "missing array 'layer0.w'"),
    (lambda m: m.update({"layer0.w": m["layer0.w"][..., :2]}), r"'layer0.w' has shape \(3, 3, 1, 2\)"),
    (lambda m: m.update({"layer0.w": m["layer0.w"].astype(np.float64)}), "'layer0.w' has dtype float64"),
    (lambda m: m.update({"layer5.w": np.full_like(m["layer5.w"], np.nan)}), "non-finite"),
    (lambda m: m.update({"layer1.state.running_var": -m["layer1.state.running_var"]}), "negative variances"),
    (lambda m: m.update({"classes": m["classes"][::-1].copy()}), "not sorted"),
    (lambda m: m.update(extra=np.zeros(3)), r"unexpected members \['extra.npy'\]"),
])
def test_invalid_arrays(saved, tmp_path, mutate, match):
    members = read_members(saved)
    mutate(members)
    write_members(tmp_path / "m.npz", members)
    expect_invalid(tmp_path / "m.npz", match)


class _Exploit:
    def __reduce__(self):
        return (exec, ("import os; os.environ['MINICNN_PWNED'] = '1'",))


def test_pickled_members_are_refused_and_never_executed(saved, tmp_path):
    members = read_members(saved)
    out = tmp_path / "evil.npz"
    with zipfile.ZipFile(out, "w") as archive:
        for key, value in members.items():
            payload = np.array([_Exploit()], dtype=object) if key == "layer0.w" else value
            with archive.open(f"{key}.npy", "w") as f:
                np.lib.format.write_array(f, payload, allow_pickle=True)
    expect_invalid(out, "'layer0.w' has dtype object; object and structured arrays are refused")
    assert "MINICNN_PWNED" not in os.environ


def test_declared_size_is_checked_before_reading(saved, tmp_path):
    members = read_members(saved)
    out = tmp_path / "huge.npz"
    with zipfile.ZipFile(out, "w") as archive:
        for key, value in members.items():
            with archive.open(f"{key}.npy", "w") as f:
                if key == "header":   # claims 10**12 bytes, holds a few
                    header = {"descr": "|u1", "fortran_order": False, "shape": (10**12,)}
                    np.lib.format.write_array_header_1_0(f, header)
                    f.write(b"{}")
                else:
                    np.lib.format.write_array(f, value)
    expect_invalid(out, "declares 1000000000000 bytes, more than the limit")


# ---------------------------------------------------------------- model files behave like files (np.save/open)
TINY = dict(layers=("conv2", "maxpool"), max_iter=1, backend="numpy", random_state=0)


@pytest.fixture(scope="module")
def tiny():
    X = np.random.default_rng(0).random((12, 16), dtype=np.float32)
    return CNNClassifier(**TINY).fit(X, np.arange(12) % 3), X


@pytest.fixture
def umask():
    def set_umask(mask):
        restore.append(os.umask(mask))
    restore = []
    yield set_umask
    for mask in restore[:1]:
        os.umask(mask)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002, 0o027, 0o000])
def test_save_new_file_mode_follows_the_umask_like_np_save(tiny, tmp_path, umask, mask):
    umask(mask)
    tiny[0].save(tmp_path / "m.npz")
    np.save(tmp_path / "ref.npy", np.zeros(1))
    expected = os.stat(tmp_path / "ref.npy").st_mode & 0o7777
    assert os.stat(tmp_path / "m.npz").st_mode & 0o7777 == expected == 0o666 & ~mask


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o600, 0o664, 0o755])
def test_resave_keeps_the_existing_mode(tiny, tmp_path, umask, mode):
    umask(0o077)
    path = tmp_path / "m.npz"
    path.write_bytes(b"old")
    os.chmod(path, mode)
    tiny[0].save(path)
    assert os.stat(path).st_mode & 0o7777 == mode
    minicnn.load(path)


@pytest.mark.parametrize("layout", ["absolute", "relative", "chain", "dangling", "into_other_dir"])
def test_save_through_a_symlink_writes_the_target_and_keeps_the_link(tiny, tmp_path, layout):
    clf, X = tiny
    other = tmp_path / "models"
    other.mkdir()
    target = (other if layout == "into_other_dir" else tmp_path) / "real.npz"
    if layout != "dangling":
        target.write_bytes(b"old model")
    link = tmp_path / "link.npz"
    if layout == "relative":
        link.symlink_to(target.name)
    elif layout == "chain":
        (tmp_path / "mid.npz").symlink_to(target)
        link.symlink_to(tmp_path / "mid.npz")
    else:
        link.symlink_to(target)
    clf.save(link)
    assert link.is_symlink() and target.is_file() and not target.is_symlink()
    np.testing.assert_array_equal(minicnn.load(target).predict_proba(X), clf.predict_proba(X))
    assert sorted(p.name for p in target.parent.iterdir() if p.name.startswith(".minicnn-")) == []


@pytest.mark.parametrize("mode", [0o444, 0o400, 0o555, 0o044])
def test_save_over_a_read_only_file_raises_permission_error_and_keeps_it(tiny, tmp_path, mode):
    path = tmp_path / "m.npz"
    path.write_bytes(b"precious")
    os.chmod(path, mode)
    link = tmp_path / "link.npz"
    link.symlink_to(path)
    for target in (path, link):
        with pytest.raises(PermissionError, match="m.npz|link.npz"):
            tiny[0].save(target)
    os.chmod(path, 0o600)
    assert path.read_bytes() == b"precious" and sorted(os.listdir(tmp_path)) == ["link.npz", "m.npz"]


def test_save_to_a_directory_or_missing_directory_is_an_os_error(tiny, tmp_path):
    with pytest.raises(IsADirectoryError):
        tiny[0].save(tmp_path)
    with pytest.raises(FileNotFoundError):
        tiny[0].save(tmp_path / "missing" / "m.npz")


LABEL_SETS = {
    "nul_suffix": np.array(["cat", "cat\x00"], dtype=object),
    "nul_runs": np.array(["a", "a\x00\x00", "a\x00", "\x00"], dtype=object),
    "empty_and_space": np.array(["", " ", "x "], dtype=object),
    "unicode": np.array(["é", "猫", "🐈", "e\u0301"], dtype=object),
    "unicode_dtype": np.array(["ab", "b", "c"]),
    "int8": np.array([-3, 0, 5], dtype=np.int8),
    "uint64_large": np.array([0, 2**64 - 1, 2**63 + 1], dtype=np.uint64),
    "float": np.array([0.0, -3.0, 7.0]),
    "float32": np.array([1.0, 9.0], dtype=np.float32),
    "bool": np.array([True, False]),
}


@pytest.mark.parametrize("name", sorted(LABEL_SETS))
def test_every_label_set_round_trips_exactly(tiny, tmp_path, name):
    """Labels that fit are the labels that load: same values, types and dtype, from both loaders."""
    _, X = tiny
    labels = LABEL_SETS[name]
    y = labels[np.arange(len(X)) % len(labels)]
    clf = CNNClassifier(**TINY).fit(X, y)
    clf.save(tmp_path / "m.npz")
    for loaded in (minicnn.load(tmp_path / "m.npz"), minicnn.load_predictor(tmp_path / "m.npz")):
        assert loaded.classes_.dtype == clf.classes_.dtype
        assert [(type(c), c) for c in loaded.classes_.tolist()] == [(type(c), c) for c in clf.classes_.tolist()]
        assert [(type(c), c) for c in loaded.predict(X).tolist()] == [(type(c), c) for c in clf.predict(X).tolist()]


@pytest.mark.parametrize("loader", [minicnn.load, minicnn.load_predictor])
@pytest.mark.parametrize("backend", ["bogus", "", "NUMPY", 3, ("numpy",)])
def test_a_bad_backend_argument_is_blamed_not_the_file(tiny, tmp_path, loader, backend):
    tiny[0].save(tmp_path / "m.npz")
    with pytest.raises(ValueError, match=r"backend must be .*received backend=") as info:
        loader(tmp_path / "m.npz", backend=backend)
    assert not isinstance(info.value, minicnn.io.ModelFileError) and "not a valid" not in str(info.value)
    with pytest.raises(ValueError, match="received backend="):   # before the file is even opened
        loader(tmp_path / "missing.npz", backend=backend)


def test_save_over_a_hard_linked_file_replaces_the_name_and_the_other_link_keeps_the_old_file(tiny, tmp_path):
    """The promise for hard links: the name given is replaced atomically (mode kept); other names keep the old
    content whole (copying over the shared inode would let their readers see a half-written file)."""
    clf, X = tiny
    path, other = tmp_path / "m.npz", tmp_path / "same.npz"
    path.write_bytes(b"old model")
    os.chmod(path, 0o640)
    os.link(path, other)
    clf.save(path)
    assert not os.path.samefile(path, other) and other.read_bytes() == b"old model"
    assert os.stat(path).st_mode & 0o7777 == 0o640 and os.stat(other).st_nlink == 1
    np.testing.assert_array_equal(minicnn.load(path).predict_proba(X), clf.predict_proba(X))
    assert sorted(os.listdir(tmp_path)) == ["m.npz", "same.npz"]


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_resave_keeps_the_owner_and_group(tiny, tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(b"old")
    os.chown(path, 12345, 23456)
    tiny[0].save(path)
    assert (os.stat(path).st_uid, os.stat(path).st_gid) == (12345, 23456)


# ---------------------------------------------------------------- save checks every parameter before writing
def _invalid_candidates(p):
    """Values of the kinds users get wrong for parameter ``p`` (filtered to the ones the table refuses)."""
    nan, inf = float("nan"), float("inf")
    by_kind = {
        "int": [True, False, 1.5, "3", None, 0, -1, 10**9, (p.low or 0) - 1],
        "float": [nan, inf, -inf, True, "0.1", None, -1.0, (p.low or 0) - 1.0, p.low, p.high, 1e300 if p.high else nan],
        "bool": ["yes", 1, 0, None, 1.0],
        "choice": ["bogus", None, 3, ("numpy",), ""],
        "tokens": ["conv4", 3, None],
        "dropout": [3, 0.5, None, True],
        "rates": [1.0, -0.1, nan, inf, True, "x", None],
        "shape": [3, "8x8", 8.0],
        "seed": [-5, 2**32, True, "x", 1.5],
        "verbose": [-1, 1.5, "x", None],
        "augment": ["bogus", ("bogus",), 3, ("shift-1",)],
        "class_weight": ["bal", {0: -1.0}, {0: float("nan")}, {0: True}, 3],
        "path": ["", 3, b"c.npz", True],
    }[p.kind]
    return [v for v in by_kind if minicnn.params.invalid(p.name, v) is not None]


@pytest.mark.parametrize("name", sorted(minicnn.params.TABLE))
def test_save_refuses_every_invalid_parameter_before_writing(tiny, tmp_path, name):
    """After fit, ``set_params(name=<invalid>)`` then ``save`` never writes a file that load refuses.

    Parameters that shape the network are saved with their fitted values (they take effect at the next
    fit); every other invalid value is refused with a ValueError naming the parameter, nothing is
    written, and a good model already at the path stays byte for byte.
    """
    import copy

    from minicnn._estimator_base import ARCHITECTURE_PARAMS

    clf, X = tiny
    expected = clf.predict_proba(X)
    good, new = tmp_path / "good.npz", tmp_path / "new.npz"
    clf.save(good)
    before = good.read_bytes()
    candidates = _invalid_candidates(minicnn.params.TABLE[name])
    assert candidates, name
    for value in candidates:
        est = copy.deepcopy(clf)
        est.set_params(**{name: value})
        if name in ARCHITECTURE_PARAMS:
            est.save(new)
            for loader in (minicnn.load, minicnn.load_predictor):
                np.testing.assert_array_equal(loader(new).predict_proba(X), expected)
            continue
        for path in (good, new):
            with pytest.raises(ValueError, match=rf"'{name}' parameter") as info:
                est.save(path)
            assert "not JSON compliant" not in str(info.value)
        assert good.read_bytes() == before and not new.exists(), (name, value)
        assert sorted(os.listdir(tmp_path)) == ["good.npz"]
    for loader in (minicnn.load, minicnn.load_predictor):
        np.testing.assert_array_equal(loader(good).predict_proba(X), expected)


# ---------------------------------------------------------------- every kind of path behaves as open(path, "wb")
def _read_in_thread(path_or_fd, out):
    """Start a thread that reads everything from a FIFO path or a pipe's read end into ``out`` (a list)."""
    import threading

    def read():
        if isinstance(path_or_fd, int):
            with os.fdopen(path_or_fd, "rb") as f:
                out.append(f.read())
        else:
            with open(path_or_fd, "rb") as f:
                out.append(f.read())
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def _assert_model_bytes(data, tmp_path, clf, X):
    copy = tmp_path / "copy.npz"
    copy.write_bytes(data)
    np.testing.assert_array_equal(minicnn.load(copy).predict_proba(X), clf.predict_proba(X))


@pytest.mark.parametrize("via", ["fifo", "symlink_to_fifo", "proc_fd_pipe", "bytes_fifo"])
def test_save_into_a_fifo_or_pipe_writes_in_place_and_keeps_it(tiny, tmp_path, via):
    """A FIFO or a pipe (``/dev/stdout | cat``) receives the model, as with open(path, "wb"); never replaced."""
    import stat as stat_

    clf, X = tiny
    received = []
    if via == "proc_fd_pipe":
        r, w = os.pipe()
        path = f"/proc/self/fd/{w}"
        thread = _read_in_thread(r, received)
    else:
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        path = {"fifo": fifo, "bytes_fifo": os.fsencode(fifo), "symlink_to_fifo": tmp_path / "link"}[via]
        if via == "symlink_to_fifo":
            path.symlink_to(fifo)
        thread = _read_in_thread(fifo, received)
    try:
        clf.save(path)
    finally:
        if via == "proc_fd_pipe":
            os.close(w)
    thread.join(timeout=30)
    assert not thread.is_alive() and received
    _assert_model_bytes(received[0], tmp_path, clf, X)
    if via != "proc_fd_pipe":
        assert stat_.S_ISFIFO(os.stat(tmp_path / "fifo").st_mode)
        assert not [p for p in os.listdir(tmp_path) if p.startswith(".minicnn-")]


def test_a_character_device_is_written_in_place_never_replaced(tiny, tmp_path):
    """A device node (here a private null device made under tmp_path) stays a device after save."""
    import stat as stat_

    from minicnn.files import writable_target as _writable_target

    assert _writable_target(os.devnull)[1] is None   # read-only check of the real one: written in place
    node = tmp_path / "null"
    try:
        os.mknod(node, 0o666 | stat_.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot make a device node here: {exc}")
    tiny[0].save(node)
    assert stat_.S_ISCHR(os.stat(node).st_mode) and os.stat(node).st_rdev == os.makedev(1, 3)
    assert sorted(os.listdir(tmp_path)) == ["null"]


def _open_error(path):
    try:
        with open(path, "wb"):
            pass
    except OSError as exc:
        return exc
    raise AssertionError(f"open({path!r}) succeeded")


@pytest.mark.parametrize("as_bytes", [False, True])
@pytest.mark.parametrize("kind", ["missing_dir", "nested_missing_dir", "trailing_slash_new", "trailing_slash_file",
                                  "trailing_slash_dir", "directory", "under_a_file"])
def test_a_path_open_refuses_is_refused_by_save_with_open_s_error(tiny, tmp_path, kind, as_bytes):
    """Same exception type as open(path, "wb"), naming the user's path (never a temporary file); nothing made."""
    (tmp_path / "file.npz").write_bytes(b"keep")
    (tmp_path / "dir").mkdir()
    path = {"missing_dir": tmp_path / "nodir" / "m.npz", "nested_missing_dir": tmp_path / "a" / "b" / "m.npz",
            "trailing_slash_new": str(tmp_path / "m.npz") + "/", "trailing_slash_file": str(tmp_path / "file.npz") + "/",
            "trailing_slash_dir": str(tmp_path / "dir") + "/", "directory": tmp_path / "dir",
            "under_a_file": tmp_path / "file.npz" / "m.npz"}[kind]
    path = os.fsencode(path) if as_bytes else os.fspath(path)
    before = sorted(os.listdir(tmp_path))
    expected = _open_error(path)
    with pytest.raises(OSError) as info:
        tiny[0].save(path)
    assert type(info.value) is type(expected) or (kind == "under_a_file" and isinstance(info.value, OSError))
    assert os.fsdecode(info.value.filename) == os.fsdecode(path) and ".tmp" not in str(info.value)
    assert sorted(os.listdir(tmp_path)) == before and (tmp_path / "file.npz").read_bytes() == b"keep"


def test_bytes_and_pathlike_paths_save_like_str(tiny, tmp_path):
    clf, X = tiny
    for path in (os.fsencode(tmp_path / "b.npz"), tmp_path / "p.npz", str(tmp_path / "s.npz")):
        clf.save(path)
        np.testing.assert_array_equal(minicnn.load(path).predict_proba(X), clf.predict_proba(X))
    assert (tmp_path / "b.npz").read_bytes() == (tmp_path / "s.npz").read_bytes()


def _label_kinds():
    import datetime
    import decimal
    import fractions

    return {
        "datetime64_D": np.array(["2020-01-01", "2021-06-30", "1999-12-31"], dtype="datetime64[D]"),
        "datetime64_ns": np.array([0, 10**18, 5], dtype="datetime64[ns]"),
        "timedelta64_s": np.array([1, 2, 3], dtype="timedelta64[s]"),
        "bytes": np.array([b"cat", b"dog"]),
        "bytes_nul": np.array([b"a", b"a\x00"], dtype=object),
        "object_date": np.array([datetime.date(2020, 1, 1), datetime.date(2021, 1, 1)], dtype=object),
        "object_decimal": np.array([decimal.Decimal("0.1"), decimal.Decimal("0.2")], dtype=object),
        "object_fraction": np.array([fractions.Fraction(1, 3), fractions.Fraction(2, 3)], dtype=object),
        "object_nan": np.array([1.0, float("nan")], dtype=object),
        "object_inf": np.array([1.0, float("inf")], dtype=object),
        "object_tuple": np.array([(1, 2), (3, 4)] + [None], dtype=object)[:2],
        "float16": np.array([0.5, 1.5], dtype=np.float16),
        "longdouble": np.array([0.1, 0.2], dtype=np.longdouble),
        "object_int_huge": np.array([2**70, 3], dtype=object),
        "object_np_scalars": np.array([np.int32(3), np.float32(0.25)], dtype=object),
        "str_": np.array(["a", "b"], dtype=np.str_),
    }


@pytest.mark.parametrize("name", sorted(_label_kinds()))
def test_labels_fit_accepts_are_labels_save_stores(tiny, tmp_path, name):
    """Every label kind: fit refuses it with a ValueError naming y, or save -> load gives the same labels exactly."""
    _, X = tiny
    labels = _label_kinds()[name]
    y = labels[np.arange(len(X)) % len(labels)]
    try:
        clf = CNNClassifier(**TINY).fit(X, y)
    except (ValueError, TypeError) as exc:
        assert isinstance(exc, ValueError) and "y" in str(exc), (name, exc)
        return
    clf.save(tmp_path / "m.npz")
    for loaded in (minicnn.load(tmp_path / "m.npz"), minicnn.load_predictor(tmp_path / "m.npz")):
        assert loaded.classes_.dtype == clf.classes_.dtype
        assert [(type(c), c) for c in loaded.classes_.tolist()] == [(type(c), c) for c in clf.classes_.tolist()]
        assert [(type(c), c) for c in loaded.predict(X).tolist()] == [(type(c), c) for c in clf.predict(X).tolist()]
    # partial_fit's classes= argument follows the same rule
    if labels.dtype.kind in "mM":
        with pytest.raises(ValueError, match="classes"):
            CNNClassifier(**TINY).partial_fit(X, y, classes=labels)


def test_io_writes_a_plain_record_and_imports_no_estimator_and_no_scikit_learn(tiny, tmp_path):
    """The estimator hands io a plain record (dicts, lists, arrays): io reads no estimator state."""
    import subprocess
    import sys
    from pathlib import Path

    from minicnn._record import model_record

    clf, X = tiny
    record = model_record(clf)
    assert all(isinstance(layer, dict) for layer in record["layers"])
    minicnn.io.save(record, tmp_path / "m.npz")
    np.testing.assert_array_equal(minicnn.load(tmp_path / "m.npz").predict_proba(X), clf.predict_proba(X))
    code = ("import sys, minicnn.io, minicnn.files; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy'}), "
            "'minicnn.estimator' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent)))
    assert done.stdout.split() == ["[]", "False"], done.stderr
