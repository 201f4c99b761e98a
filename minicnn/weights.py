"""Sample and class weights of a fit, validated once per call (:func:`minicnn.losses.weighted_loss` applies them).

Normalization (as scikit-learn's ``MLPClassifier`` since 1.7): a batch's loss
is the weighted *average* of its samples' loss terms,
``sum_i w_i * l_i / sum_i w_i``, so the scale of the weights does not change
the step size; a batch whose weights are all zero contributes no gradient.
The epoch loss in ``loss_curve_`` is the weighted average over the epoch.
"""

import numpy as np
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.validation import _check_sample_weight


def check_class_weight(class_weight, classes):
    """Raise ``ValueError`` naming the first key of a dict ``class_weight`` that is not a class, or a bad weight."""
    if not isinstance(class_weight, dict):
        return
    for key, value in class_weight.items():
        if key not in set(classes.tolist()):
            raise ValueError(f"class_weight has key {key!r}, which is not a class; classes_={classes.tolist()}")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not (
                np.isfinite(value) and value >= 0):
            raise ValueError(f"class_weight[{key!r}] must be a finite number >= 0; received {value!r}")


def training_weights(sample_weight, class_weight, targets, classes, n_samples):
    """Per-sample weights of a fit, or None when every weight is 1 (the unweighted code path, bit-identical).

    Parameters
    ----------
    sample_weight : array-like of shape (n_samples,) or None
        Non-negative, finite.
    class_weight : None, "balanced" or dict
        Multiplies ``sample_weight``. ``"balanced"``: ``n_samples / (n_classes
        * count(class))`` over the labels of this call (scikit-learn's
        :func:`~sklearn.utils.class_weight.compute_sample_weight`); a dict maps
        labels to weights, classes it omits weigh 1.
    targets : ndarray of int64 of shape (n_samples,)
        Indices into ``classes`` (classifier) or the regression targets.
    classes : ndarray or None
        ``classes_`` of the classifier (None: no class weights).
    n_samples : int

    Returns
    -------
    ndarray of float64 of shape (n_samples,) or None

    Raises
    ------
    ValueError
        Wrong length, negative or non-finite weights (scikit-learn's
        ``_check_sample_weight``); a dict key that is not a class.
    """
    weights = None
    if sample_weight is not None:
        values = np.asarray(sample_weight)
        if values.ndim == 1 and values.dtype.kind in "biuf":
            bad = np.flatnonzero(~(np.isfinite(values) & (values >= 0)))
            if bad.size:
                raise ValueError(f"sample_weight must hold finite values >= 0; received {bad.size} other values, "
                                 f"the first sample_weight[{bad[0]}]={values[bad[0]].item()!r}")
        weights = _check_sample_weight(sample_weight, np.empty((n_samples, 0)), dtype=np.float64, copy=True)
    if class_weight is not None and classes is not None:
        if class_weight == "balanced":
            per_class = compute_sample_weight("balanced", targets)
        else:
            check_class_weight(class_weight, classes)
            per_class = np.array([float(class_weight.get(c, 1.0)) for c in classes.tolist()])[targets]
        weights = per_class if weights is None else weights * per_class
    if weights is None or np.all(weights == 1.0):
        return None
    return weights


def fit_weights(estimator, sample_weight, targets, incremental):
    """The per-sample weights of one ``fit``/``partial_fit`` call, or None (see :func:`training_weights`).

    Raises ``ValueError`` when ``class_weight`` is set on an estimator without
    classes (the regressor), or is ``"balanced"`` in ``partial_fit`` (its class
    frequencies would be those of one batch: as scikit-learn's ``SGDClassifier``,
    pass ``compute_class_weight("balanced", ...)`` of the whole data as a dict).
    """
    classes = getattr(estimator, "classes_", None)   # None: a regressor
    class_weight = estimator.class_weight
    if class_weight is not None and classes is None:
        raise ValueError(f"class_weight applies to classifiers only; {type(estimator).__name__} received "
                         f"class_weight={class_weight!r} (use sample_weight)")
    if class_weight == "balanced" and incremental:
        raise ValueError("class_weight='balanced' is not supported by partial_fit (the class frequencies of one "
                         "call are not those of the data): pass sklearn.utils.class_weight.compute_class_weight("
                         "'balanced', classes=classes, y=y_all) as a dict instead")
    return training_weights(sample_weight, class_weight, targets, classes, len(targets))
