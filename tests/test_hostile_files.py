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
from minicnn.io import MAX_EXPANSION, ModelFileError

from helpers import first_digits, run_cli

FAST, SLOW = 25, 300          # examples per strategy (4 strategies): 100 by default, 1,200 with --runslow
HYPOTHESIS = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def model():
    X, y = first_digits(120)
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


# ---------------------------------------------------------------- the command line: no traceback, whatever the file
def _png(width, height, idat=b"", bit_depth=8, color=0):
    """A PNG whose IHDR declares ``width`` x ``height`` (its data need not match: decoders must check first)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _hostile_inputs(tmp, good_model_bytes):
    """name -> path of one hostile file of every kind the command reads."""
    import gzip
    import zlib

    idx_images = (0x803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (3, 8, 8)) + bytes(192)
    idx_labels = (0x801).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes([1, 2, 3])
    gz_images = gzip.compress(idx_images)
    files = {
        "npy_0d.npy": ("npy", lambda p: np.save(p, np.float32(3.0))),
        "npy_1d.npy": ("npy", lambda p: np.save(p, np.zeros(5, np.float32))),
        "npy_object.npy": ("npy", lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)),
        "npy_truncated.npy": ("npy", lambda p: (np.save(p, np.zeros((4, 8, 8, 1))),
                                                p.write_bytes(p.read_bytes()[:200]))),
        "npy_empty.npy": ("npy", lambda p: p.write_bytes(b"")),
        "npy_strings.npy": ("npy", lambda p: np.save(p, np.array([["a", "b"], ["c", "d"]]))),
        "npy_zero_images.npy": ("npy", lambda p: np.save(p, np.zeros((0, 8, 8, 1), np.float32))),
        "idx_empty.idx": ("idx", lambda p: p.write_bytes(b"")),
        "idx_zero_images.idx": ("idx", lambda p: p.write_bytes(
            (0x803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (0, 8, 8)))),
        "idx_truncated.idx": ("idx", lambda p: p.write_bytes(idx_images[:-5])),
        "idx_truncated.idx.gz": ("idx", lambda p: p.write_bytes(gz_images[: len(gz_images) // 2])),
        "idx_bad_crc.idx.gz": ("idx", lambda p: p.write_bytes(gz_images[:-8] + b"\x00" * 8)),
        "idx_corrupt_deflate.idx.gz": ("idx", lambda p: p.write_bytes(gz_images[:10] + b"\xff" * 20 + gz_images[30:])),
        "idx_labels_as_images.idx": ("idx", lambda p: p.write_bytes(idx_labels)),
        "png_bomb.png": ("png", lambda p: p.write_bytes(_png(100_000, 100_000, zlib.compress(b"\x00" * 1000)))),
        "png_large_header.png": ("png", lambda p: p.write_bytes(_png(12_000, 12_000, zlib.compress(b"\x00" * 10)))),
        "png_truncated.png": ("png", lambda p: p.write_bytes(_png(8, 8, zlib.compress(bytes(72)))[:40])),
        "png_not_png.png": ("png", lambda p: p.write_bytes(b"GIF89a not a png")),
        "png_empty.png": ("png", lambda p: p.write_bytes(b"")),
        "npz_truncated.npz": ("npz", lambda p: p.write_bytes(good_model_bytes[: len(good_model_bytes) // 3])),
        "npz_not_zip.npz": ("npz", lambda p: p.write_bytes(b"PK\x03\x04 not really")),
        "npz_empty.npz": ("npz", lambda p: p.write_bytes(b"")),
        "npz_object.npz": ("npz", lambda p: np.savez(p, X=np.array([None, 1], dtype=object),
                                                       y=np.array([None], dtype=object))),
        "npz_0d.npz": ("npz", lambda p: np.savez(p, X=np.float32(1), y=np.int64(1))),
        "npz_no_images.npz": ("npz", lambda p: np.savez(p, X=np.zeros((0, 8, 8, 1)), y=np.zeros(0))),
        "csv_empty.csv": ("csv", lambda p: p.write_text("")),
        "csv_binary.csv": ("csv", lambda p: p.write_bytes(b"\x00\xff\xfe" * 50)),
        "csv_header_only.csv": ("csv", lambda p: p.write_text("placement,rate,seed,accuracy\n")),
        "csv_bad_numbers.csv": ("csv", lambda p: p.write_text("placement,rate,seed,accuracy\na,b,c,d\n")),
    }
    out = {}
    for name, (kind, make) in files.items():
        make(tmp / name)
        out[name] = (kind, tmp / name)
    return out


def _cli_cases(tmp, model_path, files):
    """Every command, fed every hostile file where it reads one of that kind."""
    good_idx = tmp / "good_labels.idx"
    good_idx.write_bytes((0x801).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes([1, 2, 3]))
    cases = []
    for name, (kind, path) in files.items():
        if kind in ("npy", "idx", "png", "npz"):
            cases.append(["predict", "--model", model_path, path])
        if kind == "npz":
            cases += [["predict", "--model", path, tmp / "npy_1d.npy"], ["summary", "--model", path],
                      ["fit", "--data", path, "--epochs", "1", "--quiet", "--out", tmp / "o.npz"],
                      ["fit", "--test-data", path, "--epochs", "1", "--quiet", "--out", tmp / "o.npz",
                       "--layers", "conv2,maxpool"]]
        if kind == "idx":
            cases += [["fit", "--data", f"idx:{path},{good_idx}", "--epochs", "1", "--quiet", "--out", tmp / "o.npz"],
                      ["fit", "--data", f"idx:{good_idx},{path}", "--epochs", "1", "--quiet", "--out", tmp / "o.npz"]]
        if kind == "csv":
            cases.append(["study", "--from-csv", path, "--out", tmp / "study"])
        if kind in ("npy", "png"):
            cases.append(["summary", "--model", path])
    return cases


def test_every_command_with_every_hostile_file_ends_in_one_line_never_a_traceback(model, tmp_path):
    model_path = tmp_path / "model.npz"
    model_path.write_bytes(model["bytes"])
    files = _hostile_inputs(tmp_path, model["bytes"])
    cases = _cli_cases(tmp_path, model_path, files)
    assert len(cases) > 50
    for argv in cases:
        code, _, err = run_cli(*argv)
        lines = err.strip().splitlines()
        assert code in (1, 2) and len(lines) == 1 and "Traceback" not in err, (argv, code, err)
        assert lines[0].startswith(f"minicnn {argv[0]}: error: "), (argv, lines)
    assert model_path.read_bytes() == model["bytes"]


def test_debug_shows_the_traceback(model, tmp_path):
    from minicnn.cli import main

    np.save(tmp_path / "x.npy", np.float32(3.0))
    (tmp_path / "m.npz").write_bytes(model["bytes"])
    with pytest.raises(ValueError, match="x.npy"):
        main(["predict", "--debug", "--model", str(tmp_path / "m.npz"), str(tmp_path / "x.npy")])


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS is enforced on Linux")
@pytest.mark.parametrize("argv", [
    ["fit", "--layers", "conv1000000", "--epochs", "1", "--backend", "numpy", "--quiet", "--dropout", "none"],
    ["fit", "--layers", "dense100000000", "--epochs", "1", "--backend", "numpy", "--quiet", "--dropout", "none"],
])
def test_out_of_memory_is_one_line(tmp_path, argv):
    """Under a 3 GiB address-space limit, networks too large for memory end in one line, exit code 1."""
    script = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 * 1024**3, 3 * 1024**3)); "
              "from minicnn.cli import main; sys.exit(main(sys.argv[1:]))")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", script, *argv, "--out", str(tmp_path / "m.npz")],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "memory" in lines[0].lower()



# Ten labels of each label dtype kind the files allow (io._CLASS_KINDS; booleans give two classes, not ten).
_CLASS_VALUES = {"i": (np.int64, list(range(-3, 7))), "u": (np.uint8, list(range(10))),
                 "f": (np.float64, [v / 2 for v in range(-4, 6)]), "U": ("<U3", [f"c{v}" for v in range(10)])}


@pytest.mark.parametrize("kind, order", [(kind, order) for kind in sorted(_CLASS_VALUES)
                                         for order in ("sorted", "unsorted", "duplicate", "nan")
                                         if order != "nan" or kind == "f"])   # only float labels can be NaN
def test_stored_classes_must_be_sorted_and_unique_for_every_label_dtype(model, kind, order, tmp_path):
    dtype, values = _CLASS_VALUES[kind]
    values = {"sorted": values, "unsorted": values[1:2] + values[:1] + values[2:],
              "duplicate": values[:1] + values[:-1], "nan": values[:-1] + [float("nan")]}[order]
    classes = np.array(values, dtype=dtype)
    members = dict(model["members"])
    header = json.loads(members["header"].tobytes())
    header["classes"].update(dtype=classes.dtype.str)
    members["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    members["classes"] = classes
    data = pack(members)
    outcome = check_load(model, data)   # both loaders agree
    assert outcome == ("loaded" if order == "sorted" else "refused")
    if order != "sorted":
        (tmp_path / "m.npz").write_bytes(data)
        with pytest.raises(ModelFileError, match="classes are not sorted and unique"):
            minicnn.load_predictor(tmp_path / "m.npz")
