"""The study's data: a training pool and a held-out test set per data set, and each run's training subset.

The test set is fixed per data set (the standard test split of MNIST and
Fashion-MNIST; a stratified ``random_state=0`` hold-out of ``test_size``
otherwise). A run's training subset depends only on its size and seed, so
runs with the same (size, seed) are paired across configurations; the
validation split that chooses rates and stops training is carved from that
subset by the estimator (``early_stopping=True``), so the test set is never
seen before the final score.
"""

import functools

import numpy as np

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
FASHION_INSTALL = "sudo apt-get install dataset-fashion-mnist (Debian/Ubuntu)"


def load_fashion_mnist(path=None):
    """Fashion-MNIST through :func:`minicnn.datasets.load_fashion_mnist`, or its idx files read here.

    The library function (same contract as :func:`minicnn.datasets.load_mnist`) is used when it exists;
    otherwise the four standard idx files are read with :func:`minicnn.datasets.load_idx` from ``path``
    (default ``/usr/share/datasets/fashion-mnist``).

    Returns
    -------
    X_train : ndarray of shape (60000, 28, 28, 1), float32 in [0, 1]
    y_train : ndarray of shape (60000,), int64
    X_test, y_test : the 10000 test images and labels

    Raises
    ------
    FileNotFoundError
        When the idx files are absent, saying how to install them.
    """
    from pathlib import Path

    from minicnn import datasets

    if hasattr(datasets, "load_fashion_mnist"):
        return datasets.load_fashion_mnist(path)
    folder = Path(FASHION_DIR if path is None else path)
    files = [folder / name for name in FASHION_FILES]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"Fashion-MNIST idx files not found: {missing}; install them with "
                                f"{FASHION_INSTALL}, or pass the folder holding the four idx files")
    X_train, y_train = datasets.load_idx(files[0], files[1])
    X_test, y_test = datasets.load_idx(files[2], files[3])
    return X_train, y_train, X_test, y_test


def _hold_out(X, y, test_size):
    from sklearn.model_selection import train_test_split

    counts = np.unique(y, return_counts=True)[1]
    stratify = y if counts.min() >= 2 else None
    X_pool, X_test, y_pool, y_test = train_test_split(X, y, test_size=test_size, stratify=stratify,
                                                      random_state=0)
    return X_pool, y_pool, X_test, y_test


def _load_npz(path):
    with np.load(path, allow_pickle=False) as archive:
        missing = [k for k in ("X", "y") if k not in archive.files]
        if missing:
            raise ValueError(f"{path}: expected arrays ['X', 'y'] in the .npz file, found {archive.files}")
        return archive["X"], archive["y"]


@functools.lru_cache(maxsize=2)
def load_split(data, test_size):
    """Training pool and fixed held-out test set of ``data`` (cached per process).

    Parameters
    ----------
    data : str
        "digits", "mnist", "fashion-mnist", ``"idx:IMAGES,LABELS"`` or a ``.npz`` file with arrays X and y.
    test_size : float or None
        Held-out fraction for data without a standard test split (stratified, ``random_state=0``).

    Returns
    -------
    X_pool, y_pool, X_test, y_test : ndarray

    Raises
    ------
    ValueError
        For an unknown ``data`` or a malformed file.
    """
    from minicnn import datasets

    if data == "mnist":
        return datasets.load_mnist()
    if data == "fashion-mnist":
        return load_fashion_mnist()
    if data == "digits":
        return _hold_out(*datasets.load_digits_images(), test_size)
    if data.startswith("idx:"):
        paths = data[4:].split(",")
        if len(paths) != 2 or not all(paths):
            raise ValueError(f"--data idx:IMAGES,LABELS needs two comma-separated files; received {data!r}")
        return _hold_out(*datasets.load_idx(*paths), test_size)
    if data.endswith(".npz"):
        return _hold_out(*_load_npz(data), test_size)
    raise ValueError(f"Expected data to be digits, mnist, fashion-mnist, idx:IMAGES,LABELS or a .npz file. "
                     f"Received: data={data!r}")


def training_subset(y_pool, size, seed):
    """Indices of a run's training subset: stratified, drawn with ``seed`` (the whole pool for "full")."""
    if size == "full" or size >= len(y_pool):
        return np.arange(len(y_pool))
    from sklearn.model_selection import train_test_split

    counts = np.unique(y_pool, return_counts=True)[1]
    stratify = y_pool if counts.min() >= 2 and size >= len(counts) else None
    index, _ = train_test_split(np.arange(len(y_pool)), train_size=size, stratify=stratify, random_state=seed)
    return np.sort(index)
