"""Dropout placement: from the estimator's parameters to positions in a layer list, plus a lint.

Everything here is a pure function of the parameters (no layers, no arrays),
so the rules are easy to read and to test:

* :func:`plan` parses a model's layer tokens (the grammar lives in
  :mod:`minicnn.architecture`) and resolves its dropout parameters.
* :func:`resolve_dropout` turns ``dropout`` (a policy name, ``"last:K"`` or a
  tuple of indices), ``dropout_rate`` and ``dropout_kind`` into
  :class:`DropoutSpec` records, one per dropout layer, in network order.
* :func:`lint_placement` returns warnings for placements known to hurt, e.g.
  dropout feeding a BatchNorm (the "variance shift" of Li et al. 2019).

Placement policies (``dropout=``):

``"none"``
    No dropout.
``"after_last_pool"``
    After the last pooling layer (``maxpool``, ``avgpool``, ``gap``, ``gmp``): the
    rule of thumb of the blog post that started this project.
``"after_each_layer"``
    After every conv and dense layer.
``"last:K"``
    After the last ``K`` hidden layers (whatever their type).
``"dense"``
    After each dense layer only (the fully connected setting of Srivastava et
    al. 2014).
tuple of int
    Explicit, strictly increasing indices into ``layers``: dropout after
    ``layers[i]``.

"After" a conv or dense layer means after its activation (and after its
BatchNorm and activation when ``batch_norm=True``). Dropout is never placed on
the output layer, which is not part of ``layers``.

Positions are indices into ``layers`` (one per token): a block (``res<N>``,
``sep<N>``) is one position, whatever the number of layers inside it.

Inside blocks:

* a dropout placed at a residual block (``res<N>``; by ``"after_each_layer"``,
  ``"last:K"`` or an index) goes *inside* it, between its two convolutions
  (after the first one's BatchNorm and activation), as in Wide ResNet
  (Zagoruyko & Komodakis 2016); it is never on the skip path and never after
  the add, so the identity path carries the signal undropped;
* a dropout placed at a separable convolution (``sep<N>``) follows the whole
  block (after the pointwise convolution's activation), as after a conv;
* ``"after_last_pool"`` with a global pooling head (``gap`` or ``gmp``, the
  last pooling layer) puts element-wise dropout on the pooled vector, right
  before the output layer (or the dense layers that follow).
"""

import numbers
import re
from dataclasses import dataclass

from . import architecture

POLICIES = ("none", "after_last_pool", "after_each_layer", "dense", "last:K")
KINDS = ("element", "spatial", "auto")

_LAST = re.compile(r"last:([0-9]+)")


@dataclass(frozen=True)
class DropoutSpec:
    """One dropout layer to insert.

    Attributes
    ----------
    after : int
        Index into ``layers``: the dropout follows ``layers[after]``.
    rate : float
        Drop probability in [0, 1).
    kind : {"element", "spatial"}
        Element-wise :class:`~minicnn.layers.Dropout` or channel-wise
        :class:`~minicnn.layers.SpatialDropout2D`.
    """

    after: int
    rate: float
    kind: str


def _positions(tokens, dropout):
    """Indices into ``layers`` after which a dropout goes, in increasing order."""
    n = len(tokens)
    if isinstance(dropout, str):
        if dropout == "none":
            return []
        if dropout == "after_last_pool":
            pools = [t.index for t in tokens if t.pooling]
            if not pools:
                raise ValueError(f"dropout='after_last_pool' needs a pooling layer {architecture.POOLING_TOKENS} "
                                 f"in layers; received layers={tuple(t.text for t in tokens)!r}. Add a pooling "
                                 f"layer or choose another placement: {POLICIES} or a tuple of layer indices")
            return [pools[-1]]
        if dropout == "after_each_layer":
            return [t.index for t in tokens if t.weighted]
        if dropout == "dense":
            dense = [t.index for t in tokens if t.kind == "dense"]
            if not dense:
                raise ValueError(f"dropout='dense' needs at least one dense layer in layers; received "
                                 f"layers={tuple(t.text for t in tokens)!r}")
            return dense
        last = _LAST.fullmatch(dropout)
        if last:
            k = int(last.group(1))
            if not 1 <= k <= n:
                raise ValueError(f"Expected dropout='last:K' with 1 <= K <= len(layers)={n}. "
                                 f"Received: dropout={dropout!r}")
            return list(range(n - k, n))
        raise ValueError(f"Expected dropout to be one of {POLICIES} or a tuple of layer indices. "
                         f"Received: dropout={dropout!r}")
    if isinstance(dropout, (tuple, list)):
        for i in dropout:
            if not (isinstance(i, numbers.Integral) and not isinstance(i, bool) and 0 <= i < n):
                raise ValueError(f"Expected dropout indices to be ints in [0, {n}) (indices into layers, which has "
                                 f"{n} entries). Received: dropout={tuple(dropout)!r}")
        if any(b <= a for a, b in zip(dropout, dropout[1:])):
            raise ValueError(f"Expected dropout indices in strictly increasing order. "
                             f"Received: dropout={tuple(dropout)!r}")
        return [int(i) for i in dropout]
    if number_hint(dropout):
        raise ValueError(f"Expected dropout to be one of {POLICIES} or a tuple of layer indices. "
                         f"Received: dropout={dropout!r}. {number_hint(dropout)}")
    raise ValueError(f"Expected dropout to be one of {POLICIES} or a tuple of layer indices. "
                     f"Received: dropout={dropout!r}")


def number_hint(dropout):
    """For a number passed as ``dropout`` (the placement), the sentence pointing to ``dropout_rate``; else "".

    Examples
    --------
    >>> number_hint(0.5)
    'dropout places dropout layers; their drop probability is dropout_rate: did you mean dropout_rate=0.5?'
    >>> number_hint("dense")
    ''
    """
    if isinstance(dropout, numbers.Real) and not isinstance(dropout, bool):
        return (f"dropout places dropout layers; their drop probability is dropout_rate: did you mean "
                f"dropout_rate={dropout!r}?")
    return ""


def _rates(dropout_rate, n_placed, dropout):
    def valid(rate):
        return isinstance(rate, numbers.Real) and not isinstance(rate, bool) and 0.0 <= rate < 1.0

    if isinstance(dropout_rate, (tuple, list)):
        if len(dropout_rate) != n_placed:
            raise ValueError(f"Expected one dropout_rate per placed dropout: dropout={dropout!r} places "
                             f"{n_placed}, but {len(dropout_rate)} rates were given. "
                             f"Received: dropout_rate={tuple(dropout_rate)!r}")
        rates = list(dropout_rate)
    else:
        rates = [dropout_rate] * n_placed
        if not valid(dropout_rate):
            raise ValueError(f"Expected dropout_rate to be a float in [0, 1) or a tuple of them. "
                             f"Received: dropout_rate={dropout_rate!r}")
    for rate in rates:
        if not valid(rate):
            raise ValueError(f"Expected every dropout rate to be a float in [0, 1). "
                             f"Received: dropout_rate={tuple(dropout_rate)!r}")
    return [float(r) for r in rates]


def resolve_dropout(tokens, dropout="after_last_pool", dropout_rate=0.25, dropout_kind="element"):
    """Turn the placement parameters into dropout layers to insert.

    Parameters
    ----------
    tokens : tuple of LayerToken
        From :func:`minicnn.architecture.parse_layers`.
    dropout : str or tuple of int, default="after_last_pool"
        A policy (see the module docstring) or strictly increasing indices
        into ``layers``.
    dropout_rate : float or tuple of float, default=0.25
        One rate for every dropout, or one per placed dropout (in network
        order).
    dropout_kind : {"element", "spatial", "auto"}, default="element"
        ``"auto"``: channel-wise (spatial) dropout after layers that output
        maps (conv, pooling), element-wise after layers that output vectors.

    Returns
    -------
    list of DropoutSpec
        In network order.

    Raises
    ------
    ValueError
        Naming the parameter, the value received and the valid choices.

    Examples
    --------
    >>> from minicnn.architecture import parse_layers
    >>> tokens = parse_layers(("conv16", "maxpool", "dense64"))
    >>> resolve_dropout(tokens, "after_last_pool", 0.25)
    [DropoutSpec(after=1, rate=0.25, kind='element')]
    >>> resolve_dropout(tokens, "last:2", (0.1, 0.5), "auto")
    [DropoutSpec(after=1, rate=0.1, kind='spatial'), DropoutSpec(after=2, rate=0.5, kind='element')]
    >>> resolve_dropout(tokens, (0, 2), 0.3, "element")
    [DropoutSpec(after=0, rate=0.3, kind='element'), DropoutSpec(after=2, rate=0.3, kind='element')]
    """
    if dropout_kind not in KINDS:
        raise ValueError(f"Expected dropout_kind to be one of {KINDS}. Received: dropout_kind={dropout_kind!r}")
    positions = _positions(tokens, dropout)
    rates = _rates(dropout_rate, len(positions), dropout)
    specs = []
    for after, rate in zip(positions, rates):
        token = tokens[after]
        kind = dropout_kind
        if kind == "auto":
            kind = "spatial" if token.output == "map" else "element"
        elif kind == "spatial" and token.output != "map":
            raise ValueError(f"dropout_kind='spatial' drops whole channels of (height, width, channels) maps, but "
                             f"dropout after layers[{after}]={token.text!r} sees flat vectors. Use "
                             f"dropout_kind='auto' or 'element'. Received: dropout={dropout!r}")
        specs.append(DropoutSpec(after, rate, kind))
    return specs


def lint_placement(tokens, specs, batch_norm):
    """Warnings about placements known to hurt (empty list when all is well).

    With ``batch_norm=True`` every conv and dense hidden layer is followed by
    a BatchNorm. A dropout placed before one of them (directly, or through
    pooling layers) makes that BatchNorm see a different variance in training
    (dropout active, kept units rescaled) than at inference (dropout off), so
    its running statistics do not match the test-time inputs: the "variance
    shift" of Li, Chen, Hu & Yang (2019), "Understanding the Disharmony
    between Dropout and Batch Normalization by Variance Shift".

    Parameters
    ----------
    tokens : tuple of LayerToken
    specs : list of DropoutSpec
    batch_norm : bool

    Returns
    -------
    list of str

    Examples
    --------
    >>> from minicnn.architecture import parse_layers
    >>> tokens = parse_layers(("conv8", "maxpool", "dense16"))
    >>> lint_placement(tokens, resolve_dropout(tokens, "after_last_pool"), batch_norm=False)
    []
    >>> msgs = lint_placement(tokens, resolve_dropout(tokens, "after_last_pool"), batch_norm=True)
    >>> "variance shift" in msgs[0]
    True
    """
    if not batch_norm:
        return []
    weighted = [t.index for t in tokens if t.weighted]
    if not weighted:
        return []
    last_norm = weighted[-1]
    messages = []
    for spec in specs:
        token = tokens[spec.after]
        if architecture.LAYER_KINDS[token.kind].inner_dropout:
            messages.append(
                f"Dropout inside the block layers[{spec.after}]={token.text!r} sits right before the BatchNorm of "
                f"its second convolution (batch_norm=True). This causes a variance shift (Li et al. 2019): the "
                f"BatchNorm's running statistics are gathered on dropped activations and no longer match the "
                f"inputs it sees at inference. Use batch_norm=False for dropout inside blocks, or place dropout "
                f"after the blocks (e.g. dropout='after_last_pool' or dropout='dense').")
            continue
        fed = [i for i in weighted if i > spec.after]
        if not fed:
            continue
        target = tokens[fed[0]]
        messages.append(
            f"Dropout after layers[{spec.after}]={tokens[spec.after].text!r} feeds the BatchNorm of "
            f"layers[{target.index}]={target.text!r} (batch_norm=True normalizes every conv and dense layer). "
            f"This causes a variance shift (Li et al. 2019): in training the BatchNorm normalizes activations "
            f"thinned and rescaled by dropout, at inference dropout is off, so the variance it sees no longer "
            f"matches its running statistics and accuracy can drop. Place dropout after the last normalization, "
            f"e.g. dropout=({last_norm},) (after layers[{last_norm}]={tokens[last_norm].text!r}) or later.")
    return messages


def plan(model):
    """Parse ``model.layers`` and place dropout from its ``dropout*`` parameters: ``(tokens, specs)``.

    Parameters
    ----------
    model : estimator or Predictor
        Anything with ``layers``, ``dropout``, ``dropout_rate`` and ``dropout_kind`` attributes.

    Returns
    -------
    tokens : tuple of LayerToken
    specs : list of DropoutSpec

    Raises
    ------
    ValueError
        Naming the bad parameter and the value received.
    """
    tokens = architecture.parse_layers(model.layers)
    return tokens, resolve_dropout(tokens, model.dropout, model.dropout_rate, model.dropout_kind)
