"""Hostile model files: minicnn.load raises ValueError (ModelFileError) for every malformed file, executes
nothing, and reads in bounded memory. Hypothesis fuzzes truncation, byte flips, header edits and array swaps
(~100 cases by default, >= 1,200 with --runslow)."""

import io
import json
import os
import subprocess
import sys
import tempfile
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minicnn
from minicnn import CNNClassifier
from minicnn.datasets import load_digits_images
from minicnn.io import MAX_EXPANSION, ModelFileError

FAST, SLOW = 25, 300          # examples per strategy (4 strategies): 100 by default, 1,200 with --runslow
HYPOTHESIS = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def model():
    X, y = load_digits_images()
    X, y = X[:120], y[:120]
    est = CNNClassifier(layers=("conv4", "maxpool", "dense8"), batch_norm=True, dropout="last:1", max_iter=1,
                        backend="numpy", random_state=0).fit(X, y)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "good.npz")
        est.save(path)
        with open(path, "rb") as f:
            data = f.read()
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        members = {k: npz[k] for k in npz.files}
    return {"bytes": data, "members": members, "X": X[:5], "dir": tempfile.mkdtemp(prefix="minicnn-hostile-")}


class _Exploit:
    def __reduce__(self):
        return (exec, ("import os; os.environ['MINICNN_PWNED'] = '1'",))


def pack(members):
    """An .npz (zip of .npy) from ``members``; object arrays are pickled into it on purpose."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for key, value in members.items():
            with archive.open(f"{key}.npy", "w") as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=True)
    return out.getvalue()


def check_load(model, data):
    """Load ``data`` with both loaders: a usable model or a ModelFileError naming the file, never anything else.

    ``minicnn.load`` (estimator) and ``minicnn.load_predictor`` (no scikit-learn, its own parameter checks)
    must agree: both refuse, or both load and predict the same.
    """
    path = os.path.join(model["dir"], "case.npz")
    with open(path, "wb") as f:
        f.write(data)
    outcomes = [_load_and_predict(loader, path, model["X"]) for loader in (minicnn.load, minicnn.load_predictor)]
    assert outcomes[0][0] == outcomes[1][0], (outcomes, path)
    if outcomes[0][1] is not None:
        np.testing.assert_array_equal(outcomes[0][1], outcomes[1][1])
    return outcomes[0][0]


def _load_and_predict(loader, path, X):
    os.environ.pop("MINICNN_PWNED", None)
    try:
        est = loader(path)
    except ModelFileError as exc:
        assert isinstance(exc, ValueError)
        assert str(exc).startswith(f"{path} is not a valid minicnn model file: "), str(exc)
        assert "\n" not in str(exc).strip() or len(str(exc)) < 2000
        return "refused", None
    finally:
        assert "MINICNN_PWNED" not in os.environ, "a payload in the file was executed"
    try:
        out = est.predict(X)
    except ValueError:     # e.g. an edited but self-consistent input_shape that the probe images do not match
        return "loaded", None
    assert out.shape == (len(X),)
    return "loaded", out


def header_paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from header_paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from header_paths(v, prefix + (i,))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
    | st.sampled_from([0, -1, 1, 2, 10**9, 10**12, 2**63, 10**18])
    | st.floats(allow_nan=False) | st.text(max_size=12)
    | st.sampled_from(["conv1000000", "dense100000000", "conv4x999", "numba", "os.system", "|O", "<U999999999",
                       "float64", "CNNRegressor", "PCG64", "last:99"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8)


def _fuzz(n):
    return settings(max_examples=n, **HYPOTHESIS)


def truncations(model, data):
    size = data.draw(st.integers(0, len(model["bytes"]) - 1), label="cut")
    assert check_load(model, model["bytes"][:size]) == "refused"


def byte_flips(model, data):
    raw = bytearray(model["bytes"])
    for _ in range(data.draw(st.integers(1, 4), label="flips")):
        i = data.draw(st.integers(0, len(raw) - 1), label="offset")
        raw[i] ^= data.draw(st.integers(1, 255), label="mask")
    check_load(model, bytes(raw))


def header_edits(model, data):
    header = json.loads(model["members"]["header"].tobytes())
    paths = list(header_paths(header))
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        path = data.draw(st.sampled_from(paths[1:]), label="path")
        target = header
        for key in path[:-1]:
            target = target[key]
        if data.draw(st.booleans(), label="delete") and isinstance(target, dict):
            target.pop(path[-1], None)
        else:
            try:
                target[path[-1]] = data.draw(JSON_VALUES, label="value")
            except (IndexError, KeyError, TypeError):
                pass
        paths = list(header_paths(header))
    members = dict(model["members"])
    members["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    check_load(model, pack(members))


ARRAYS = st.one_of(
    st.builds(lambda shape, dtype: np.zeros(shape, dtype=dtype),
              st.lists(st.integers(0, 5), max_size=4).map(tuple),
              st.sampled_from(["f4", "f8", "i8", "u1", "?", "<U3", "c8", "f2", ">f4", "V4", "M8[s]"])),
    st.builds(lambda n: np.array([_Exploit()] * n, dtype=object), st.integers(1, 3)),
    st.builds(lambda fill: np.full(3, fill, dtype=np.float32), st.sampled_from([np.nan, np.inf, -1.0, 3e38])),
)


def array_swaps(model, data):
    members = dict(model["members"])
    for _ in range(data.draw(st.integers(1, 2), label="swaps")):
        key = data.draw(st.sampled_from(sorted(members)), label="member")
        action = data.draw(st.sampled_from(["replace", "retype", "reshape", "drop", "add"]), label="action")
        value = members.get(key)
        if action == "replace":
            members[key] = data.draw(ARRAYS, label="array")
        elif action == "retype" and value is not None:
            members[key] = value.astype(data.draw(st.sampled_from(["f8", "f2", "i4", ">f4", "u1"])))
        elif action == "reshape" and value is not None:
            members[key] = value.reshape(-1)[: max(value.size - 1, 0)] if value.ndim == 1 else value.reshape(-1)
        elif action == "drop":
            members.pop(key)
        else:
            members[f"extra{len(members)}"] = data.draw(ARRAYS, label="extra")
    check_load(model, pack(members))


STRATEGIES = {"truncation": truncations, "byte-flips": byte_flips, "header-edits": header_edits,
              "array-swaps": array_swaps}


@pytest.mark.parametrize("kind", STRATEGIES)
def test_fuzz_load(model, kind):
    @_fuzz(FAST)
    @given(st.data())
    def run(data):
        STRATEGIES[kind](model, data)

    run()


@pytest.mark.slow
@pytest.mark.parametrize("kind", STRATEGIES)
def test_fuzz_load_many(model, kind):
    @_fuzz(SLOW)
    @given(st.data())
    def run(data):
        STRATEGIES[kind](model, data)

    run()


# ---------------------------------------------------------------- deterministic hostile files
def test_the_unmodified_file_loads(model):
    assert check_load(model, model["bytes"]) == "loaded"
    assert check_load(model, pack(model["members"])) == "loaded"


def test_pickled_object_array_is_refused_and_not_executed(model):
    for key in ("header", "classes", "layer0.w"):
        members = dict(model["members"], **{key: np.array([_Exploit()], dtype=object)})
        assert check_load(model, pack(members)) == "refused"
    with pytest.raises(ModelFileError, match=r"'layer0.w' has dtype object; object and structured arrays are "
                                             r"refused"):
        path = os.path.join(model["dir"], "pickle.npz")
        with open(path, "wb") as f:
            f.write(pack(dict(model["members"], **{"layer0.w": np.array([_Exploit()], dtype=object)})))
        minicnn.load(path)


def _bomb(model, declared):
    """The good members plus one deflated member of ``declared`` zero bytes (a few KiB on disk)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for key, value in model["members"].items():
            with archive.open(f"{key}.npy", "w") as f:
                np.lib.format.write_array(f, value)
        info = zipfile.ZipInfo("zeros.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as f:
            chunk = bytes(1 << 20)
            for _ in range(declared >> 20):
                f.write(chunk)
    return out.getvalue()


def test_zip_bomb_is_refused_from_the_directory_in_bounded_memory(model):
    data = _bomb(model, 256 << 20)                        # 256 MiB declared, ~256 KiB on disk
    assert len(data) * MAX_EXPANSION < 256 << 20
    path = os.path.join(model["dir"], "bomb.npz")
    with open(path, "wb") as f:
        f.write(data)
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=r"declares \d+ uncompressed bytes, more than the limit .*zip bomb"):
            minicnn.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"load used {peak} bytes on a zip bomb"


def _patched_header(model, change):
    header = json.loads(model["members"]["header"].tobytes())
    change(header)
    members = dict(model["members"])
    members["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    return pack(members)


@pytest.mark.parametrize("change, match", [
    (lambda h: h["params"].update(layers=["conv4", "maxpool", "dense100000000"]),
     r"describe a network of \d+ weights .*far more than"),
    (lambda h: h.update(n_outputs=10**12), r"describe a network of \d+ weights|n_outputs|classes"),
    (lambda h: h["params"].update(kernel_size=10**6, padding="same"), r"describe a network of \d+ weights"),
    (lambda h: h["params"].update(layers=["conv1"] * 100_000), r"more than the limit 1000"),
    (lambda h: h["params"].update(n_threads=10**6), r"invalid params.*n_threads"),
    (lambda h: h["fitted"].update(rng_state={"bit_generator": "PCG64", "state": {"state": 2**200, "inc": 1},
                                             "has_uint32": 0, "uinteger": 0}), r"rng_state is invalid"),
    (lambda h: h["classes"].update(dtype="<U999999999999"), r"classes dtype .* (invalid|not allowed)|classes"),
], ids=["huge-dense", "huge-n-outputs", "huge-kernel", "many-layers", "thread-bomb", "rng-overflow",
        "huge-dtype"])
def test_header_asking_for_huge_resources_is_refused_cheaply(model, change, match):
    path = os.path.join(model["dir"], "huge.npz")
    with open(path, "wb") as f:
        f.write(_patched_header(model, change))
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=match):
            minicnn.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"load used {peak} bytes"


def test_integer_literal_too_long_to_parse(model):
    text = model["members"]["header"].tobytes().replace(b'"n_outputs": 10', b'"n_outputs": ' + b"9" * 5000)
    assert text != model["members"]["header"].tobytes()
    members = dict(model["members"], header=np.frombuffer(text, dtype=np.uint8))
    path = os.path.join(model["dir"], "int.npz")
    with open(path, "wb") as f:
        f.write(pack(members))
    with pytest.raises(ModelFileError, match=r"header is not valid JSON \(ValueError: Exceeds the limit"):
        minicnn.load(path)


def test_deeply_nested_header_json(model):
    members = dict(model["members"], header=np.frombuffer(b"[" * 200_000 + b"]" * 200_000, dtype=np.uint8))
    assert check_load(model, pack(members)) == "refused"


def test_encrypted_flag_and_unknown_compression_are_refused(model):
    data = bytearray(model["bytes"])
    # every central-directory entry: set the "encrypted" flag bit
    start = 0
    while (i := data.find(b"PK\x01\x02", start)) >= 0:
        data[i + 8] |= 0x1
        start = i + 4
    assert check_load(model, bytes(data)) == "refused"
    data = bytearray(model["bytes"])
    i = data.find(b"PK\x01\x02")
    data[i + 10:i + 12] = (99).to_bytes(2, "little")    # compression method 99 (AES), unsupported
    assert check_load(model, bytes(data)) == "refused"


def test_duplicate_member_names_are_refused(model):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for key, value in model["members"].items():
            with archive.open(f"{key}.npy", "w") as f:
                np.lib.format.write_array(f, value)
        with pytest.warns(UserWarning, match="Duplicate name"):
            with archive.open("layer0.w.npy", "w") as f:
                np.lib.format.write_array(f, np.zeros_like(model["members"]["layer0.w"]))
    assert check_load(model, out.getvalue()) == "refused"


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        minicnn.load(tmp_path / "nope.npz")


def test_cli_predict_with_a_bad_model_exits_nonzero_with_one_line(model, tmp_path):
    pytest.importorskip("minicnn.cli")
    bad = tmp_path / "BAD.npz"
    bad.write_bytes(model["bytes"][: len(model["bytes"]) // 2])
    X = tmp_path / "X.npy"
    np.save(X, model["X"])
    result = subprocess.run([sys.executable, "-m", "minicnn", "predict", "--model", str(bad), str(X)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "not a valid minicnn model file" in lines[0] and "BAD.npz" in lines[0]
    assert result.stdout == ""
