"""The ``minicnn`` command: ``fit``, ``predict``, ``summary``, ``bench`` and ``study``.

Run ``minicnn COMMAND --help`` for the options of each command. Bad
arguments and bad files end with a one-line error on stderr and a non-zero
exit code (2 for bad arguments, 1 for errors while running); ``--debug``
shows the full traceback instead.

Examples
--------
>>> from minicnn.cli import main
>>> main(["summary"])   # --model is required
2
"""

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

COMMANDS = ("fit", "predict", "summary", "export", "bench", "study")
DEFAULT_LAYERS = "conv16,maxpool,dense64"
PNG_INSTALL = "pip install pillow (or pip install 'minicnn[plot]' for matplotlib)"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit code 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# --------------------------------------------------------------------------- argument types


def _number(kind, low=None, high=None, low_open=False, what=None):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what or kind.__name__}, received {text!r}") from None
        if value != value:   # NaN
            raise argparse.ArgumentTypeError(f"expected {what}, received {text!r}")
        if (low is not None and (value < low or (low_open and value == low))) or (high is not None and value >= high):
            raise argparse.ArgumentTypeError(f"expected {what}, received {text!r}")
        return value
    return parse


_POSITIVE_INT = _number(int, 1, what="an integer >= 1")
_POSITIVE_FLOAT = _number(float, 0.0, low_open=True, what="a number > 0")
_FRACTION = _number(float, 0.0, 1.0, low_open=True, what="a number in (0, 1)")
_RATE = _number(float, 0.0, 1.0, what="a dropout rate in [0, 1)")


def _layers(text):
    tokens = tuple(t.strip() for t in text.split(",") if t.strip())
    if not tokens:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer tokens, e.g. {DEFAULT_LAYERS}; "
                                         f"received {text!r}")
    return tokens


def _dropout(text):
    parts = [p.strip() for p in text.split(",")]
    if all(p.lstrip("-").isdigit() for p in parts):
        return tuple(int(p) for p in parts)
    if len(parts) > 1:
        raise argparse.ArgumentTypeError(f"expected a policy (none, after_last_pool, after_each_layer, dense, "
                                         f"last:K) or comma-separated layer indices; received {text!r}")
    return text


def _rates(text):
    rates = tuple(_RATE(p.strip()) for p in text.split(","))
    return rates[0] if len(rates) == 1 else rates


def _seeds(text):
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seeds or comma-separated seeds; "
                                         f"received {text!r}") from None
    return values[0] if len(values) == 1 else tuple(values)


def _sizes(text):
    sizes = []
    for part in (p.strip() for p in text.split(",")):
        if part == "full":
            sizes.append(part)
        elif part.isdigit() and int(part) >= 20:
            sizes.append(int(part))
        else:
            raise argparse.ArgumentTypeError(f"expected comma-separated sizes (integers >= 20 or 'full'); "
                                             f"received {text!r}")
    return tuple(sizes)


# --------------------------------------------------------------------------- data


def _split(X, y, test_size, seed):
    from sklearn.model_selection import train_test_split

    counts = np.unique(y, return_counts=True)[1]
    stratify = y if counts.min() >= 2 else None
    return train_test_split(X, y, test_size=test_size, stratify=stratify, random_state=seed)


def _load_npz(path, keys):
    with np.load(path, allow_pickle=False) as archive:
        missing = [k for k in keys if k not in archive.files]
        if missing:
            raise ValueError(f"{path}: expected arrays {list(keys)} in the .npz file, found {archive.files}")
        return tuple(archive[k] for k in keys)


def load_training_data(data, test_size, seed):
    """Training and test arrays for ``minicnn fit --data DATA``.

    Parameters
    ----------
    data : str
        ``"digits"``, ``"mnist"`` (its standard test set), ``"idx:IMAGES,LABELS"``
        or a ``.npz`` file with arrays ``X`` and ``y``.
    test_size : float
        Held-out fraction (stratified when every class has two samples).
    seed : int

    Returns
    -------
    X_train, X_test, y_train, y_test : ndarray
    """
    from . import datasets

    if data == "digits":
        return _split(*datasets.load_digits_images(), test_size, seed)
    if data == "mnist":
        X_train, y_train, X_test, y_test = datasets.load_mnist()
        return X_train, X_test, y_train, y_test
    if data.startswith("idx:"):
        paths = data[4:].split(",")
        if len(paths) != 2 or not all(paths):
            raise ValueError(f"--data idx:IMAGES,LABELS needs two comma-separated files; received {data!r}")
        return _split(*datasets.load_idx(*paths), test_size, seed)
    if data.endswith(".npz"):
        return _split(*_load_npz(data, ("X", "y")), test_size, seed)
    raise ValueError(f"--data: expected digits, mnist, idx:IMAGES,LABELS or a .npz file; received {data!r}")


def _read_png(path):
    try:
        from PIL import Image
    except ImportError:
        try:
            import matplotlib.image as mpimg
        except ImportError:
            raise ImportError(f"reading PNG images ({path}) needs Pillow or matplotlib: {PNG_INSTALL}") from None
        image = np.asarray(mpimg.imread(path), dtype=np.float32)   # PNG: floats in [0, 1]
        return image[..., :3].mean(axis=-1) if image.ndim == 3 else image
    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.float32) / np.float32(255.0)


def load_inputs(paths):
    """Images to predict and their ids, from a .npz (array ``X``), .npy, idx(.gz) file or PNG files.

    Returns
    -------
    X : ndarray
    ids : list of str
        Row numbers, or the file names for PNG images.
    """
    paths = [str(p) for p in paths]
    if all(p.lower().endswith(".png") for p in paths):
        images = [_read_png(p) for p in paths]
        shapes = {im.shape for im in images}
        if len(shapes) > 1:
            raise ValueError(f"PNG images must all have the same size; received sizes {sorted(shapes)}")
        return np.stack(images)[..., np.newaxis], [Path(p).name for p in paths]
    if len(paths) > 1:
        raise ValueError(f"several INPUT files are only allowed for PNG images; received {paths}")
    path = paths[0]
    if not Path(path).is_file():
        raise FileNotFoundError(f"INPUT file not found: {path}")
    if path.endswith(".npz"):
        (X,) = _load_npz(path, ("X",))
    elif path.endswith(".npy"):
        X = np.load(path, allow_pickle=False)
    else:
        from .datasets import load_idx_images

        X = load_idx_images(path)
    return X, [str(i) for i in range(len(X))]


# --------------------------------------------------------------------------- commands


def _fit(args):
    from .estimator import CNNClassifier

    X_train, X_test, y_train, y_test = load_training_data(args.data, args.test_size, args.seed)
    clf = CNNClassifier(layers=args.layers, padding=args.padding, batch_norm=args.batch_norm, dropout=args.dropout,
                        dropout_rate=args.dropout_rate, dropout_kind=args.dropout_kind,
                        dropout_scaling=args.dropout_scaling, learning_rate=args.learning_rate,
                        batch_size=args.batch_size, max_iter=args.epochs, backend=args.backend,
                        n_threads=_threads(args), random_state=args.seed, verbose=0 if args.quiet else 1)
    if not args.quiet:
        print(f"Training on {len(X_train)} images from {args.data}, testing on {len(X_test)}")
    start = time.perf_counter()
    clf.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    accuracy = clf.score(X_test, y_test)
    clf.save(args.out)
    print(f"test accuracy: {accuracy:.4f} ({len(X_test)} images)")
    print(f"train time: {seconds:.2f} s ({clf.n_iter_} epochs)")
    print(f"saved model to {args.out}")
    return 0


def _threads(args):
    return 1 if args.n_threads is None and args.data == "digits" else args.n_threads


def _load_model(path, predict_only=False):
    if not Path(path).is_file():
        raise FileNotFoundError(f"--model file not found: {path}")
    if predict_only:   # no scikit-learn import: ~1 s less per call
        from .predictor import load_predictor

        return load_predictor(path)
    from .io import load

    return load(path)


def _predict(args):
    model = _load_model(args.model, predict_only=True)
    X, ids = load_inputs(args.inputs)
    predictions = model.predict(X)
    header = ["id", "prediction"]
    columns = [ids, predictions.tolist()]
    if args.proba:
        if model.estimator != "CNNClassifier":
            raise ValueError(f"--proba needs a classifier; {args.model} holds a {model.estimator}")
        proba = model.predict_proba(X)
        header += [f"proba_{c}" for c in model.classes_]
        columns += [[f"{p:.6g}" for p in proba[:, j]] for j in range(proba.shape[1])]
    out = open(args.out, "w", newline="") if args.out else sys.stdout
    try:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(zip(*columns))
    finally:
        if args.out:
            out.close()
    if args.out:
        print(f"wrote {len(ids)} predictions to {args.out}", file=sys.stderr)
    return 0


def _summary(args):
    print(_load_model(args.model).summary())
    return 0


def _bench(args):
    """Delegate to ``benchmarks/compare.py``'s ``main`` (source checkout) or to ``minicnn.bench``."""
    import importlib
    import importlib.util

    argv = list(args.bench_args[1:] if args.bench_args[:1] == ["--"] else args.bench_args)
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "compare.py"
    if script.is_file():
        spec = importlib.util.spec_from_file_location("minicnn_benchmarks_compare", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return _call_bench(module.main, argv)
    try:
        bench = importlib.import_module(".bench", __package__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.bench":
            raise
        raise ImportError("minicnn bench needs benchmarks/compare.py (run it from a source checkout of minicnn) "
                          "or a minicnn.bench module; neither is available") from None
    return _call_bench(bench.main if hasattr(bench, "main") else bench, argv)


def _call_bench(entry, argv):
    """Run a benchmark entry point; its ``SystemExit("message")`` becomes a one-line error."""
    try:
        return entry(argv) or 0
    except SystemExit as exc:
        if isinstance(exc.code, str):
            raise ValueError(exc.code.removeprefix("minicnn bench: ")) from None
        return exc.code or 0


# --------------------------------------------------------------------------- parser


def _add_fit(sub, common):
    p = sub.add_parser("fit", parents=[common], help="train a CNNClassifier and save it",
                       description="Train a CNNClassifier, print its test accuracy and time, save the model file. "
                                   "With no options: digits, a small CNN, >= 0.97 test accuracy in seconds.")
    p.add_argument("--data", default="digits", help="digits (default), mnist, idx:IMAGES,LABELS or a .npz file "
                                                    "with arrays X and y")
    p.add_argument("--layers", type=_layers, default=_layers(DEFAULT_LAYERS),
                   help=f"comma-separated layer tokens (default {DEFAULT_LAYERS})")
    p.add_argument("--padding", choices=("valid", "same"), default="same", help="conv/pool padding (default same)")
    p.add_argument("--batch-norm", action="store_true", help="BatchNorm after every conv and dense layer")
    p.add_argument("--dropout", type=_dropout, default="after_last_pool",
                   help="none, after_last_pool (default), after_each_layer, dense, last:K, or layer indices 2,3")
    p.add_argument("--dropout-rate", type=_rates, default=0.25, help="one rate, or one per dropout: 0.25,0.5")
    p.add_argument("--dropout-kind", choices=("auto", "element", "spatial"), default="element",
                   help="element (default), spatial (whole channels) or auto (spatial on maps)")
    p.add_argument("--dropout-scaling", choices=("inverted", "test_time"), default="inverted")
    p.add_argument("--epochs", type=_POSITIVE_INT, default=30, help="maximum number of epochs (default 30)")
    p.add_argument("--batch-size", type=_POSITIVE_INT, default=32)
    p.add_argument("--learning-rate", type=_POSITIVE_FLOAT, default=3e-3)
    p.add_argument("--backend", choices=("auto", "numpy", "numba", "cython"), default="auto")
    p.add_argument("--n-threads", type=_POSITIVE_INT, default=None,
                   help="kernel threads (default: 1 for digits, whose 8x8 images gain nothing from threads; "
                        "every CPU otherwise)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the split and the model (default 0)")
    p.add_argument("--test-size", type=_FRACTION, default=0.2, help="held-out fraction (default 0.2; mnist "
                                                                     "uses its standard test set)")
    p.add_argument("--out", default="model.npz", help="model file to write (default model.npz)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    p.set_defaults(func=_fit)


def _add_predict(sub, common):
    p = sub.add_parser("predict", parents=[common], help="predict with a saved model, CSV output",
                       description="Predict with a saved model; writes CSV (id,prediction[,proba_<class>...]).")
    p.add_argument("--model", required=True, help="model file written by 'minicnn fit'")
    p.add_argument("inputs", metavar="INPUT", nargs="+",
                   help=".npz (array X), .npy, idx(.gz) images, or PNG image(s) (needs Pillow or matplotlib)")
    p.add_argument("--out", default=None, help="CSV file (default: stdout)")
    p.add_argument("--proba", action="store_true", help="add one probability column per class")
    p.set_defaults(func=_predict)


def _add_study(sub, common):
    from .tools.study import cli as study_cli

    p = sub.add_parser("study", parents=[common], help="the dropout-placement study (built-in or your data)",
                       description="Where should dropout go? Trains placements x rates x sizes x seeds, chooses "
                                   "rates on validation data, tests the claims, writes runs.csv and report.md.")
    study_cli.add_arguments(p)
    p.set_defaults(func=study_cli.run)


def build_parser():
    """The ``minicnn`` argument parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback on errors")
    parser = _Parser(prog="minicnn", description="minicnn: a small, fast, CPU-only CNN engine.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_fit(sub, common)
    _add_predict(sub, common)
    p = sub.add_parser("summary", parents=[common], help="print a saved model's layers and dropout placement")
    p.add_argument("--model", required=True, help="model file written by 'minicnn fit'")
    p.set_defaults(func=_summary)
    from .onnx import _cli as onnx_cli   # imports no onnx until the command runs

    onnx_cli.add_parser(sub, common)
    p = sub.add_parser("bench", parents=[common], help="benchmarks (delegates to benchmarks/compare.py)",
                       description="Run the benchmarks: arguments after 'bench' go to benchmarks/compare.py "
                                   "(use 'minicnn bench -- --help' for its options).")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments for benchmarks/compare.py")
    p.set_defaults(func=_bench)
    _add_study(sub, common)
    return parser


def _split_bench(argv):
    """Arguments after ``bench`` (passed through untouched), or None for other commands and ``bench --help``."""
    commands = [i for i, a in enumerate(argv) if not a.startswith("-")]
    if not commands or argv[commands[0]] != "bench":
        return None
    rest = argv[commands[0] + 1:]
    return None if rest in (["-h"], ["--help"]) else rest


def _one_line(exc):
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if not text or isinstance(exc, (KeyError, ImportError)) else text


def main(argv=None):
    """Entry point of the ``minicnn`` console script and of ``python -m minicnn``.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name (None: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit code: 0 on success, 1 on an error while running, 2 on bad arguments.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    bench_args = _split_bench(argv)
    try:
        args = parser.parse_args(argv if bench_args is None else argv[:len(argv) - len(bench_args)])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    if bench_args is not None:
        args.bench_args = bench_args
    if args.command is None:
        if not argv:
            parser.print_help()
            return 0
        print(f"minicnn: error: choose a command: {', '.join(COMMANDS)} (see 'minicnn --help')", file=sys.stderr)
        return 2
    args.argv = argv
    try:
        return args.func(args)
    except (ValueError, OSError, ImportError, KeyError) as exc:
        if args.debug:
            raise
        print(f"minicnn {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"minicnn {args.command}: interrupted", file=sys.stderr)
        return 130
