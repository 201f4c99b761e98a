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
import math

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

    from minicnn.holdout import check_holdout

    stratify = y if check_holdout(y, test_size, parameter="test_size", settable=False) else None
    X_pool, X_test, y_pool, y_test = train_test_split(X, y, test_size=test_size, stratify=stratify,
                                                      random_state=0)
    return X_pool, y_pool, X_test, y_test


def _read_npz(path):
    import zipfile
    import zlib

    where = f"--data {path}"
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{where}: is a directory, not a .npz file") from None
    except PermissionError:
        raise ValueError(f"{where}: permission denied") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise ValueError(f"{where}: not a readable .npz archive ({type(exc).__name__}: {exc}); save one with "
                         f"numpy.savez(path, X=X, y=y)") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{where}: holds one array in .npy format, not a .npz archive with arrays X and y; save one "
                         f"with numpy.savez(path, X=X, y=y)")
    with archive:
        missing = [k for k in ("X", "y") if k not in archive.files]
        if missing:
            raise ValueError(f"{where}: expected arrays ['X', 'y'] in the .npz file, found {archive.files}")
        try:
            return archive["X"], archive["y"]
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
            hint = "; save numbers, not Python objects" if "Object arrays" in str(exc) else ""
            raise ValueError(f"{where}: array X or y cannot be read ({type(exc).__name__}: {exc}){hint}") from None


def _read_idx(data):
    from minicnn import datasets

    images, labels = data[4:].split(",")
    try:
        return datasets.load_idx(images, labels)
    except FileNotFoundError as exc:
        raise ValueError(f"--data {data}: no such file {exc.filename or ''}".rstrip()) from None
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"--data {data}: {exc}") from None


def _check_arrays(X, y, data):
    """Shapes of the user's ``X`` and ``y`` (one line naming ``--data`` and the file)."""
    where = f"--data {data}"
    if X.ndim < 2:
        raise ValueError(f"{where}: X has shape {X.shape}; expected images (n, height, width[, channels]) or "
                         f"(n, features)")
    if y.ndim == 0:
        raise ValueError(f"{where}: y is a scalar ({y.item()!r}); expected one class label per sample, shape (n,)")
    if y.ndim == 2 and y.shape[1] > 1:
        raise ValueError(f"{where}: y has shape {y.shape} (one-hot or several outputs?); expected one class label "
                         f"per sample, shape (n,) (for one-hot y pass y.argmax(axis=1))")
    if y.ndim > 2:
        raise ValueError(f"{where}: y has shape {y.shape}; expected one class label per sample, shape (n,)")
    if len(X) == 0 or len(y) == 0:
        raise ValueError(f"{where}: X has {len(X)} samples and y {len(y)}; the study needs data")
    if len(X) != len(y):
        raise ValueError(f"{where}: X has {len(X)} samples but y has {len(y)} labels")
    if y.dtype.kind == "f" and not (np.isfinite(y).all() and np.array_equal(y, np.rint(y))):
        bad = y[~(np.isfinite(y) & (y == np.rint(y)))].ravel()[0]
        raise ValueError(f"{where}: y holds non-integer labels such as {bad.item()!r}; expected class labels "
                         f"(integers or strings)")


def _stamp(data):
    """What identifies the file(s) of user data now: resolved path, size and modification time (None: built-in)."""
    import os

    if not (data.startswith("idx:") or data.endswith(".npz")):
        return None
    paths = data[4:].split(",") if data.startswith("idx:") else [data]
    out = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append((os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino))
        except OSError:
            out.append((path, None))
    return tuple(out)


def user_arrays(data):
    """The user's ``X`` and ``y`` from ``"idx:IMAGES,LABELS"`` or a ``.npz`` file, shapes checked.

    Cached per process while the file is unchanged (a file rewritten in between is read again).
    """
    return _user_arrays(data, _stamp(data))


@functools.lru_cache(maxsize=2)
def _user_arrays(data, stamp):
    X, y = _read_idx(data) if data.startswith("idx:") else _read_npz(data)
    _check_arrays(X, y, data)
    return X, y


def load_split(data, test_size):
    """Training pool and fixed held-out test set of ``data`` (cached per process while its file is unchanged).

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
        For an unknown ``data`` or a malformed file (naming ``--data`` and the file).
    """
    return _load_split(data, test_size, _stamp(data))


@functools.lru_cache(maxsize=2)
def _load_split(data, test_size, stamp):
    from minicnn import datasets

    if data == "mnist":
        return datasets.load_mnist()
    if data == "fashion-mnist":
        return load_fashion_mnist()
    if data == "digits":
        return _hold_out(*datasets.load_digits_images(), test_size)
    if data.startswith("idx:") or data.endswith(".npz"):
        if data.startswith("idx:") and (len(data[4:].split(",")) != 2 or not all(data[4:].split(","))):
            raise ValueError(f"--data idx:IMAGES,LABELS needs two comma-separated files; received {data!r}")
        X, y = user_arrays(data)
        check_class_counts(data, y.reshape(len(y)), test_size)
        try:
            return _hold_out(X, y.reshape(len(y)), test_size)
        except ValueError as exc:
            raise ValueError(f"--data {data}: its {len(y)} samples are too few to hold out a stratified test set "
                             f"of {test_size:.0%} ({exc})") from None
    raise ValueError(f"Expected data to be digits, mnist, fashion-mnist, idx:IMAGES,LABELS or a .npz file. "
                     f"Received: data={data!r}")


def pool_per_class(n_classes):
    """Samples per class the training pool needs for the estimator's stratified validation split (the rule of
    :func:`minicnn.holdout.check_holdout` with the study's ``VALIDATION_FRACTION`` and the estimator's rounding)."""
    from minicnn.holdout import _enough_per_class, round_count

    from .grid import VALIDATION_FRACTION

    return _enough_per_class(n_classes, VALIDATION_FRACTION, round_count) or 2


def min_per_class(test_size, n_classes=2):
    """The fewest samples of a class the study's splits take: a stratified ``test_size`` hold-out must leave
    :func:`pool_per_class` in the training pool (the stratified validation split of early stopping)."""
    pool = pool_per_class(n_classes)
    c = 2
    while c - math.ceil(test_size * c) < pool or math.ceil(test_size * c) < 1:
        c += 1
    return c


def check_class_counts(data, y, test_size):
    """Refuse a class with too few samples for the stratified splits (naming ``--data``, the file and the class)."""
    from .grid import VALIDATION_FRACTION

    classes, counts = np.unique(y, return_counts=True)
    need = min_per_class(test_size, len(classes))
    if counts.min() < need:
        rare = classes[np.argmin(counts)]
        raise ValueError(f"--data {data}: class {rare.item()!r} has {counts.min()} sample(s); the study needs at least "
                         f"{need} samples per class (a stratified {test_size:.0%} test hold-out, then "
                         f"{pool_per_class(len(classes))} per class left for the stratified validation split of "
                         f"{VALIDATION_FRACTION:.0%} that stops training)")


def check_subsets(data, y_pool, sizes, seeds):
    """Every run's training subset passes the estimator's stratified validation split (its rule, its words)."""
    from minicnn.holdout import check_holdout, round_count

    from .grid import VALIDATION_FRACTION

    for size in sizes:
        if size == "full":
            continue
        for seed in seeds:
            try:
                check_holdout(y_pool[training_subset(y_pool, size, seed)], VALIDATION_FRACTION,
                              parameter="the validation fraction", count_of=round_count, stratify=True,
                              settable=False)
            except ValueError as exc:
                raise ValueError(f"--sizes: {size} is too small for --data {data}: with seed {seed} its training "
                                 f"subset fails the stratified validation split that stops training ({exc}); choose "
                                 f"larger sizes") from None


def check_architecture(data, layers, padding, input_shape, n_classes):
    """Build the network of ``layers`` for the data's image shape once (no training): refuse layers that do not
    fit, naming ``--layers`` and ``--padding``."""
    from minicnn import CNNClassifier
    from minicnn.architecture import build_network, network_options, parse_layers

    clf = CNNClassifier(layers=tuple(layers), padding=padding)
    try:
        build_network(parse_layers(tuple(layers)), [], n_outputs=max(2, n_classes), input_shape=tuple(input_shape),
                      rng=np.random.default_rng(0), backend="numpy", **network_options(clf))
    except ValueError as exc:
        raise ValueError(f"--layers {','.join(layers)} with --padding {padding} does not fit the images of --data "
                         f"{data} (height, width, channels = {tuple(input_shape)}): {exc}") from None


def _suspicious(data, X):
    """Warnings the estimator does not give: large float values, and images with all pixels equal."""
    import warnings

    from minicnn.inputs import _gray_levels_top

    values = np.asarray(X)
    if values.dtype.kind in "fiu" and values.size and _gray_levels_top(values) is None:
        top = float(np.max(np.abs(values)))
        if top > 10:
            warnings.warn(f"--data {data}: X values reach {top:g} ({values.dtype}), far from the order 1 networks "
                          f"train well on; scale them (e.g. X / {255 if top <= 255 else 'X.max()'})", UserWarning)
    if values.size and values.ndim >= 2:
        flat = values.reshape(len(values), -1)
        constant = int(np.sum(np.all(flat == flat[:, :1], axis=1)))
        if constant:
            warnings.warn(f"--data {data}: {constant} of {len(values)} images have all pixels equal (nothing to "
                          f"learn from them)", UserWarning)


def check_user_data(data, layers, padding="same"):
    """Validate the user's data once, as :class:`minicnn.CNNClassifier` will, with its warnings shown.

    The runs silence the estimator's warnings (they would repeat in every run), so the warnings about ``X``
    (unscaled gray levels, a channels-first layout, a flat strip) and ``y`` (a column vector) are given here,
    in the main process, before anything trains.

    Raises
    ------
    ValueError
        Naming ``--data`` and the file: NaN or infinite values, a single class, labels the estimator refuses.
    """
    from minicnn import CNNClassifier
    from minicnn.inputs import prepare_X

    X, y = user_arrays(data)
    clf = CNNClassifier(layers=tuple(layers), padding=padding)
    try:
        prepare_X(clf, X, reset=True)
        clf._prepare_y(y, True, None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"--data {data}: {exc}") from None
    _suspicious(data, X)
    check_architecture(data, layers, padding, clf.input_shape_, len(np.unique(np.asarray(y).reshape(len(y)))))


def data_digest(data, test_size):
    """SHA-256 of the pool and test arrays of ``data`` (shapes and dtypes included): the data's identity."""
    import hashlib

    digest = hashlib.sha256()
    for array in load_split(data, test_size):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}{array.dtype.str}".encode())
        digest.update(array.tobytes() if array.dtype.kind != "O" else repr(array.tolist()).encode())
    return digest.hexdigest()


def training_subset(y_pool, size, seed):
    """Indices of a run's training subset: stratified, drawn with ``seed`` (the whole pool for "full")."""
    if size == "full" or size >= len(y_pool):
        return np.arange(len(y_pool))
    from sklearn.model_selection import train_test_split

    counts = np.unique(y_pool, return_counts=True)[1]
    stratify = y_pool if counts.min() >= 2 and size >= len(counts) else None
    index, _ = train_test_split(np.arange(len(y_pool)), train_size=size, stratify=stratify, random_state=seed)
    return np.sort(index)
