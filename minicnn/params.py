"""The one table of the estimators' constructor parameters.

Every fact about a parameter (its default, its type, its range or choices,
a one-line description) is written here once. Three faces are built from it:

* the scikit-learn constraints of :class:`~minicnn.CNNClassifier` and
  :class:`~minicnn.CNNRegressor` (:func:`sklearn_constraints`, plus
  :func:`invalid` for what scikit-learn's constraints let through: a bool
  is an ``Integral`` there, but never a batch size here);
* the checks of a model file's saved parameters (:func:`invalid`, used by
  :func:`minicnn.load` and :func:`minicnn.load_predictor`, without
  importing scikit-learn);
* the ``minicnn`` command's option types, choices and defaults
  (:func:`cli_type`).

Examples
--------
>>> from minicnn import params
>>> params.DEFAULTS["batch_size"]
64
>>> params.invalid("batch_size", True)
'an int in the range [1, inf), not a bool'
>>> params.invalid("batch_size", 32) is None
True
"""

import math
import numbers
import os
from dataclasses import dataclass

import numpy as np

from .augment import parse_augment
from .backend import BACKEND_NAMES
from .backend.activation_codes import CODES
from .architecture import TOKEN_FORMS
from .placement import KINDS, number_hint
from .schedules import SCHEDULES
from .threads import MAX_THREADS


@dataclass(frozen=True)
class Param:
    """One constructor parameter.

    Attributes
    ----------
    name : str
    default : object
    kind : str
        ``"int"``, ``"float"``, ``"bool"``, ``"choice"`` (one of
        ``choices``), ``"tokens"`` (tuple of str), ``"dropout"`` (str or tuple
        of int), ``"rates"`` (float in [low, high) or a tuple of them),
        ``"shape"`` (None or tuple of int), ``"seed"`` (None, an int in
        [0, 2**32) or a ``numpy.random.RandomState``), ``"verbose"`` (int >= 0
        or bool), ``"augment"`` (tuple of augmentation tokens, see
        :func:`minicnn.augment.parse_augment`), ``"class_weight"`` (None,
        ``"balanced"`` or a dict label -> finite weight >= 0), ``"path"``
        (None, a non-empty str or a ``str``-valued ``os.PathLike``).
    low, high : float or None
        Bounds of ``"int"``, ``"float"`` and ``"rates"`` values (None: unbounded).
    closed : {"left", "right", "both", "neither"}
        Which bounds are included (scikit-learn's ``Interval`` convention).
    choices : tuple of str
        The allowed values of a ``"choice"``.
    none : bool
        Whether None is allowed too (``"int"`` and ``"float"``).
    doc : str
        One line for ``--help``.
    """

    name: str
    default: object
    kind: str
    low: float = None
    high: float = None
    closed: str = "left"
    choices: tuple = ()
    none: bool = False
    doc: str = ""


PARAMS = (
    Param("layers", ("conv32", "conv64", "maxpool", "dense128"), "tokens",
          doc=f"hidden layers in order ({TOKEN_FORMS})"),
    Param("kernel_size", 3, "int", 1, doc="kernel of conv<N> and sep<N> tokens written without x<K>"),
    Param("padding", "same", "choice", choices=("valid", "same"), doc="padding of conv and pooling layers"),
    Param("pool_size", 2, "int", 1, doc="window and stride of maxpool and avgpool"),
    Param("activation", "relu", "choice", choices=tuple(CODES), doc="activation of hidden conv and dense layers"),
    Param("batch_norm", False, "bool", doc="BatchNorm after every hidden conv and dense layer"),
    Param("dropout", "after_last_pool", "dropout",
          doc="placement: none, after_last_pool, after_each_layer, last:K, dense, or indices into layers"),
    Param("dropout_rate", 0.25, "rates", 0, 1, doc="drop probability in [0, 1), or one per placed dropout"),
    Param("dropout_kind", "element", "choice", choices=KINDS, doc="element-wise, spatial (whole channels) or auto"),
    Param("dropout_scaling", "inverted", "choice", choices=("inverted", "test_time"),
          doc="inverted (scale by 1/(1-rate) in training) or test_time (scale by 1-rate at inference)"),
    Param("optimizer", "adam", "choice", choices=("adam", "sgd"), doc="adam, or sgd with Nesterov momentum 0.9"),
    Param("learning_rate", 3e-3, "float", 0, None, "neither", doc="step size"),
    Param("lr_schedule", "constant", "choice", choices=SCHEDULES,
          doc="learning-rate schedule over the epochs of a fit: constant, cosine, step or adaptive"),
    Param("batch_size", 64, "int", 1, doc="samples per training step"),
    Param("augment", (), "augment", doc="training-batch augmentation tokens: shift<k>, crop<k>, hflip"),
    Param("class_weight", None, "class_weight",
          doc="CNNClassifier: None, 'balanced' or a dict class -> weight multiplying the loss of its samples"),
    Param("max_iter", 20, "int", 1, doc="maximum number of epochs"),
    Param("weight_decay", 0.0, "float", 0, doc="decoupled weight decay (AdamW style)"),
    Param("early_stopping", False, "bool", doc="stop when the score on a held-out validation split stops improving"),
    Param("validation_fraction", 0.1, "float", 0, 1, "neither", doc="fraction held out with early stopping"),
    Param("n_iter_no_change", 5, "int", 1, doc="epochs without improvement before stopping"),
    Param("tol", 1e-4, "float", 0, doc="smallest improvement that counts"),
    Param("input_shape", None, "shape", doc="per-sample image shape of flat 2-D inputs, in data_format order"),
    Param("data_format", "channels_last", "choice", choices=("channels_last", "channels_first"),
          doc="layout of image inputs"),
    Param("backend", "auto", "choice", choices=BACKEND_NAMES, doc="kernel backend"),
    Param("n_threads", None, "int", 1, MAX_THREADS, "both", none=True,
          doc="most threads of the kernels; small steps use fewer (None: every CPU this process may use)"),
    Param("random_state", None, "seed", doc="seed of initialization, dropout masks, shuffling and splits"),
    Param("verbose", 0, "verbose", doc="1: a line per epoch; 2: also a progress bar"),
    Param("warm_start", False, "bool", doc="continue training the fitted network on the next fit"),
    Param("checkpoint_path", None, "path",
          doc="file written at the end of every epoch of fit; a fit finding a matching one resumes from it"),
)

#: Parameters added after model files were first written: a file without them loads them at their defaults.
ADDED_PARAMS = ("lr_schedule", "augment", "class_weight", "checkpoint_path")

#: Parameters by name, in constructor order.
TABLE = {p.name: p for p in PARAMS}
#: Constructor defaults, in constructor order.
DEFAULTS = {p.name: p.default for p in PARAMS}


def _interval(p):
    left = "[" if p.closed in ("left", "both") else "("
    right = "]" if p.closed in ("right", "both") else ")"
    as_given = int if p.kind == "int" else float   # scikit-learn's Interval prints float bounds as floats
    low = "-inf" if p.low is None else as_given(p.low)
    high = "inf" if p.high is None else as_given(p.high)
    return f"{left}{low}, {high}{right}"


def describe(name):
    """What a valid value of parameter ``name`` is, in words (for error messages)."""
    p = TABLE[name]
    if p.kind in ("int", "float"):
        text = f"{'an int' if p.kind == 'int' else 'a float'} in the range {_interval(p)}"
        return text + " or None" if p.none else text
    return {
        "bool": "a bool",
        "choice": "a str among {" + ", ".join(repr(c) for c in p.choices) + "}",
        "tokens": "a tuple of layer tokens (str)",
        "dropout": "a placement name (str) or a tuple of layer indices",
        "rates": f"a float in the range {_interval(p)} or a tuple of them",
        "shape": "None or a tuple of int",
        "seed": "None, an int in [0, 2**32) or a numpy.random.RandomState",
        "verbose": "an int >= 0 or a bool",
        "augment": "a tuple of augmentation tokens ('shift<k>', 'crop<k>' with k >= 1, 'hflip'), each kind once",
        "class_weight": "None, 'balanced' or a dict {class label: finite weight >= 0}",
        "path": "None or a file path (a non-empty str or os.PathLike)",
    }[p.kind]


def _is_bool(value):
    return isinstance(value, (bool, np.bool_))


def _in_range(p, value):
    if p.low is not None and (value < p.low or (value == p.low and p.closed in ("right", "neither"))):
        return False
    if p.high is not None and (value > p.high or (value == p.high and p.closed in ("left", "neither"))):
        return False
    return True


def _number_ok(p, value, integral):
    kind = numbers.Integral if integral else numbers.Real
    if not isinstance(value, kind) or _is_bool(value):
        return False
    return (integral or math.isfinite(value)) and _in_range(p, value)


def invalid(name, value):
    """None when ``value`` is valid for parameter ``name``; else what a valid value is.

    Stricter than scikit-learn's constraints where they are loose: a bool is
    never a number here, and floats must be finite.

    Parameters
    ----------
    name : str
        A parameter in :data:`TABLE`.
    value : object

    Returns
    -------
    str or None
        None, or the text of :func:`describe` (with a hint where a common
        mistake is recognized).

    Raises
    ------
    KeyError
        When ``name`` is not a parameter.
    """
    p = TABLE[name]
    kind = p.kind
    if kind in ("int", "float"):
        ok = (p.none and value is None) or _number_ok(p, value, kind == "int")
    elif kind == "bool":
        ok = _is_bool(value)
    elif kind == "choice":
        ok = isinstance(value, str) and value in p.choices
    elif kind == "tokens":
        ok = isinstance(value, (tuple, list))
    elif kind == "dropout":
        if number_hint(value):
            return f"{describe(name)} ({number_hint(value)})"
        ok = isinstance(value, (str, tuple, list))
    elif kind == "rates":
        ok = isinstance(value, (tuple, list)) or _number_ok(p, value, False)
    elif kind == "shape":
        ok = value is None or isinstance(value, (tuple, list))
    elif kind == "seed":
        ok = (value is None or (isinstance(value, numbers.Integral) and not _is_bool(value) and 0 <= value < 2**32)
              or isinstance(value, np.random.RandomState))   # last: np.random's first use imports it (~7 ms)
    elif kind == "verbose":
        ok = _is_bool(value) or (isinstance(value, numbers.Integral) and value >= 0)
    elif kind == "augment":
        try:
            parse_augment(value)
            ok = True
        except ValueError:
            ok = False
    elif kind == "class_weight":
        ok = value is None or value == "balanced" or (isinstance(value, dict) and all(
            isinstance(w, numbers.Real) and not _is_bool(w) and math.isfinite(w) and w >= 0
            for w in value.values()))
    elif kind == "path":
        ok = value is None or (isinstance(value, (str, os.PathLike)) and isinstance(os.fspath(value), str)
                               and os.fspath(value) != "")
    else:   # pragma: no cover - a new kind must be handled above
        raise AssertionError(f"unknown parameter kind {kind!r}")
    if ok:
        return None
    text = describe(name)
    if _is_bool(value) and kind in ("int", "float", "rates"):
        text += ", not a bool"
    return text


def python_value(value):
    """``value`` with every NumPy scalar replaced by the Python value it holds (``value`` itself if none).

    NumPy scalars keep their type in arithmetic: ``np.int8(100) + 28`` wraps
    and ``np.int8(100) * 20`` raises ``OverflowError``. A parameter given as a
    NumPy scalar (``batch_size=np.int8(100)``, ``learning_rate=np.float16(0.01)``,
    ``input_shape=(np.int64(8), np.int64(8))``) therefore behaves as
    ``value.item()``, the Python int, float, bool or str of equal value.
    Tuples and lists are converted element by element (same container type),
    dict values (not keys) likewise; other objects are returned unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> python_value(np.int8(100)), python_value((np.uint64(3), 4))
    (100, (3, 4))
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list)):
        items = [python_value(v) for v in value]
        return value if all(a is b for a, b in zip(items, value)) else type(value)(items)
    if isinstance(value, dict):
        items = {k: python_value(v) for k, v in value.items()}
        return value if all(items[k] is value[k] for k in value) else items
    return value


def sklearn_constraints():
    """``_parameter_constraints`` for scikit-learn's parameter validation (imports scikit-learn).

    Returns
    -------
    dict
        Parameter name -> list of constraints, as
        ``sklearn.utils._param_validation.validate_parameter_constraints`` takes.
    """
    from numbers import Integral, Real

    from sklearn.utils._param_validation import Interval, StrOptions

    def interval(p, integral):
        return Interval(Integral if integral else Real, p.low, p.high, closed=p.closed)

    constraints = {}
    for p in PARAMS:
        constraints[p.name] = {
            "int": lambda: [interval(p, True)] + ([None] if p.none else []),
            "float": lambda: [interval(p, False)] + ([None] if p.none else []),
            "bool": lambda: ["boolean"],
            "choice": lambda: [StrOptions(set(p.choices))],
            "tokens": lambda: [tuple, list],
            "dropout": lambda: [str, tuple, list],
            "rates": lambda: [interval(p, False), tuple, list],
            "shape": lambda: [tuple, list, None],
            "seed": lambda: ["random_state"],
            "verbose": lambda: ["verbose"],
            "augment": lambda: [tuple, list],
            "class_weight": lambda: [None, StrOptions({"balanced"}), dict],
            "path": lambda: [None, str, os.PathLike],
        }[p.kind]()
    return constraints


def cli_type(name):
    """An ``argparse`` ``type=`` callable for parameter ``name``: text -> checked value.

    Parameters
    ----------
    name : str
        An ``"int"``, ``"float"`` or ``"choice"`` parameter.

    Returns
    -------
    callable
        Parses one command-line string and raises
        ``argparse.ArgumentTypeError`` saying what was expected and what was
        received.
    """
    import argparse

    p = TABLE[name]
    convert = {"int": int, "float": float, "choice": str}[p.kind]

    def parse(text):
        if p.none and text.lower() == "none":
            return None
        try:
            value = convert(text)
        except ValueError:
            value = text
        problem = invalid(name, value)
        if problem is not None:
            raise argparse.ArgumentTypeError(f"expected {problem}, received {text!r}")
        return value

    parse.__name__ = name
    return parse
