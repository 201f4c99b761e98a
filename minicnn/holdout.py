"""Whether a data set is large enough to hold part of it out, said once for every place that splits.

The command's ``--test-size`` split, the study's held-out test set and its
validation splits, and the estimator's ``early_stopping`` /
``validation_fraction`` split all hold out part of the data, stratified by
class when every class has two samples. On a data set too small for that,
scikit-learn's ``train_test_split`` answers in its own terms ("The test_size
= 1 should be greater or equal to the number of classes = 2"), which names
neither the option the user set nor how many images are missing.
:func:`check_holdout` answers first, naming the parameter, the counts per
class and what would be enough.
"""

import math

import numpy as np


def ceil_count(fraction, n):
    """Held-out count of ``train_test_split(test_size=fraction)`` on ``n`` samples (an int is a count)."""
    return int(fraction) if isinstance(fraction, (int, np.integer)) else math.ceil(fraction * n)


def round_count(fraction, n):
    """Held-out count of the estimator's ``validation_fraction``: at least one, rounded."""
    return max(1, int(round(fraction * n)))


def _per_class(counts, names, unit):
    if counts.min() == counts.max():
        return f"{counts.min()} {unit} per class"
    rare = names[int(np.argmin(counts))]
    rare = rare.item() if isinstance(rare, np.generic) else rare   # a NumPy scalar, or an object array's str
    return f"{counts.min()} to {counts.max()} {unit} per class ({rare!r} has {counts.min()})"


def _fractions(works):
    """The smallest and largest fractions with the fewest decimals (0.1 steps, then 0.01, ...) that work."""
    for digits in range(1, 5):
        found = [round(i / 10**digits, digits) for i in range(1, 10**digits) if works(round(i / 10**digits, digits))]
        if found:
            return found[0], found[-1]
    return None


def _set(parameter, value):
    """``validation_fraction=0.1`` for a parameter, ``--test-size 0.2`` for an option."""
    value = value if isinstance(value, str) else repr(value)
    return f"{parameter}={value}" if parameter.isidentifier() else f"{parameter} {value}"


def _enough_per_class(k, fraction, count_of, limit=1_000_000):
    """The fewest samples per class (classes of equal size) that leave every class on both sides."""
    for m in range(2, limit // max(k, 1) + 2):
        held = count_of(fraction, k * m)
        if k <= held <= k * m - k:
            return m
    return None


def check_holdout(y, fraction, *, parameter, count_of=ceil_count, stratify=None, unit="samples",
                  other="", settable=True, context=""):
    """Refuse a hold-out split that cannot keep a sample of every class on both sides.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Class labels (any comparable values).
    fraction : float or int
        The held-out fraction (an int: a count), as the user gave it.
    parameter : str
        How the user set it, e.g. ``"--test-size"`` or ``"validation_fraction"``:
        the message says ``{parameter} {fraction}``.
    count_of : callable, default=ceil_count
        ``count_of(fraction, n)`` -> held-out count (``ceil_count`` is
        ``train_test_split``'s rule, ``round_count`` the estimator's).
    stratify : bool, default=None
        Whether the split is stratified; None: when every class has at least 2
        samples (the rule of the command and the study).
    unit : str, default="samples"
        What a sample is called in the message ("images").
    other : str, default=""
        A further remedy, e.g. ``", or pass --test-data"``.
    settable : bool, default=True
        Whether the user can change ``fraction`` (else no fraction is suggested).
    context : str, default=""
        Said before the setting, e.g. ``"early_stopping=True with "``.

    Returns
    -------
    stratify : bool
        Whether the split is stratified.

    Raises
    ------
    ValueError
        When the held-out or the kept part would be empty, or (stratified)
        would miss a class; the message gives the counts per class, the
        held-out count, and the samples per class or the fraction that would
        be enough.

    Examples
    --------
    >>> check_holdout([0, 0, 1, 1, 0, 1, 0, 1, 0, 1], 0.2, parameter="--test-size")
    True
    >>> check_holdout(["a", "a", "b", "b"], 0.2, parameter="--test-size", unit="images")
    Traceback (most recent call last):
    ...
    ValueError: --test-size 0.2 holds out 1 of 4 images (2 classes, 2 images per class) and keeps 3; the split is stratified by class, so both parts need at least 2 images, one of each class. Pass at least 3 images per class, or --test-size 0.3 to 0.5
    """
    names, counts = np.unique(np.asarray(y), return_counts=True)
    n, k = int(counts.sum()), len(counts)
    by_rule = stratify is None   # classes: stratified when every class has 2 samples
    if by_rule:
        stratify = k > 0 and counts.min() >= 2
    held = count_of(fraction, n)
    setting = context + _set(parameter, fraction)
    where = f"{setting} holds out {held} of {n} {unit} ({k} classes, {_per_class(counts, names, unit)})" \
        if k else f"{setting} holds out {held} of {n} {unit}"
    if not stratify:
        if by_rule and 1 <= held and n - held < min(k, 2):
            raise ValueError(f"{where} and keeps {n - held} for training, which needs {unit} of at least 2 "
                             f"classes. Pass more {unit}{other}")
        if 1 <= held <= n - 1:
            return False
        raise ValueError(f"{where} and keeps {n - held}; both parts need at least one. Pass more {unit}{other}")
    if k <= held <= n - k:
        return True
    enough = _enough_per_class(k, fraction, count_of)
    remedies = [f"at least {enough} {unit} per class"] if enough else []
    if not settable:
        pass
    elif n >= 2 * k:
        found = _fractions(lambda v: k <= count_of(v, n) <= n - k)
        if found is not None:
            low, high = found
            remedies.append(_set(parameter, f"{low}" if low == high else f"{low} to {high}"))
    else:
        remedies.append(f"more {unit} (no fraction of {n} leaves one of each of {k} classes on both sides)")
    remedies = remedies or [f"more {unit}"]
    ask = f"Pass {remedies[0]}" + "".join(f", or {r}" for r in remedies[1:])
    raise ValueError(f"{where} and keeps {n - held}; the split is stratified by class, so both parts need at "
                     f"least {k} {unit}, one of each class. {ask}{other}")


#: Validation samples a regressor's early stopping needs: R^2 is undefined on fewer than 2.
R2_MIN_SAMPLES = 2


def check_score_holdout(n, fraction, *, parameter, minimum=None, count_of=round_count, unit="samples",
                        other="", context="", score="R^2"):
    """Refuse an unstratified hold-out of ``n`` samples that leaves fewer than ``minimum`` to score or none to fit.

    The remedies come from the same rule (``count_of`` and ``minimum``): the
    fewest samples that are enough at ``fraction``, and the fractions that work
    for ``n`` samples (none when ``n`` is too small for any).

    Raises
    ------
    ValueError
        Naming ``{parameter} {fraction}``, the held-out and kept counts, and
        what would be enough.

    Examples
    --------
    >>> check_score_holdout(3, 0.1, parameter="validation_fraction")
    Traceback (most recent call last):
    ...
    ValueError: validation_fraction=0.1 holds out 1 of 3 samples and keeps 2; the validation score (R^2) needs at least 2 held out and 1 kept. Pass at least 15 samples, or validation_fraction=0.5 to 0.8
    """
    minimum = R2_MIN_SAMPLES if minimum is None else minimum
    held = count_of(fraction, n)
    works = (lambda v, m: minimum <= count_of(v, m) <= m - 1)
    if works(fraction, n):
        return
    enough = next((m for m in range(minimum + 1, 10_000_000) if works(fraction, m)), None)
    remedies = [f"at least {enough} {unit}"] if enough else []
    found = _fractions(lambda v: works(v, n))
    if found is not None:
        low, high = found
        remedies.append(_set(parameter, f"{low}" if low == high else f"{low} to {high}"))
    elif not remedies:
        remedies.append(f"more {unit} (no fraction of {n} holds out {minimum} and keeps 1)")
    remedies = remedies or [f"more {unit}"]
    ask = f"Pass {remedies[0]}" + "".join(f", or {r}" for r in remedies[1:])
    raise ValueError(f"{context}{_set(parameter, fraction)} holds out {held} of {n} {unit} and keeps {n - held}; "
                     f"the validation score ({score}) needs at least {minimum} held out and 1 kept. {ask}{other}")
