"""Sample and class weights: validated once per fit, applied to each batch's loss and gradient.

Normalization (as scikit-learn's ``MLPClassifier`` since 1.7): a batch's loss
is the weighted *average* of its samples' loss terms,
``sum_i w_i * l_i / sum_i w_i``, so the scale of the weights does not change
the step size; a batch whose weights are all zero contributes no gradient.
The epoch loss in ``loss_curve_`` is the weighted average over the epoch.
"""

import numpy as np
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.validation import _check_sample_weight

from .losses import mean_squared_error, softmax_cross_entropy


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


def training_weights(sample_weight, class_weight, labels, classes, n_samples, dtype):
    """Per-sample weights of a fit, or None when every weight is 1 (the unweighted code path).

    Parameters
    ----------
    sample_weight : array-like of shape (n_samples,) or None
        Non-negative, finite.
    class_weight : None, "balanced" or dict
        Multiplies ``sample_weight`` (``"balanced"``: ``n_samples / (n_classes
        * count(class))`` computed on these labels, weighted by
        ``sample_weight``, as scikit-learn's linear models).
    labels : ndarray of shape (n_samples,) or None
        Class labels as given by the user (classifier), None for a regressor.
    classes : ndarray
        ``classes_`` of the classifier.
    n_samples : int
    dtype : numpy dtype
        Dtype of the returned weights.

    Returns
    -------
    ndarray of shape (n_samples,) or None

    Raises
    ------
    ValueError
        Wrong length, negative or non-finite weights; an unknown class key.
    """
    weights = None
    if sample_weight is not None:
        weights = _check_sample_weight(sample_weight, np.empty((n_samples, 0)), dtype=np.float64,
                                       ensure_non_negative=True, copy=True)
    if class_weight is not None and labels is not None:
        check_class_weight(class_weight, classes)
        cw = class_weight
        if isinstance(cw, dict):   # compute_sample_weight needs every present class: default 1
            cw = {c: 1.0 for c in classes.tolist()} | cw
        per_class = compute_sample_weight(cw, labels)
        weights = per_class if weights is None else weights * per_class
    if weights is None or np.all(weights == 1.0):
        return None
    return weights.astype(dtype)


def _per_sample_cross_entropy(logits, labels):
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return log_norm - z[np.arange(len(z)), labels]


def _per_sample_squared_error(outputs, targets):
    diff = outputs.astype(np.float64) - targets
    return (diff * diff).mean(axis=1)


_PER_SAMPLE = {softmax_cross_entropy: _per_sample_cross_entropy, mean_squared_error: _per_sample_squared_error}


def weighted_loss(loss_fn, output, target, weights):
    """``loss_fn`` with per-sample ``weights``: weighted-average loss and its gradient.

    ``loss_fn`` returns the gradient of the *mean* over the batch; each row is
    rescaled by ``n * w_i / sum(w)``. Returns ``(loss, grad)`` like ``loss_fn``.
    """
    loss, grad = loss_fn(output, target)
    total = float(weights.sum())
    if total == 0.0:
        grad[...] = 0
        return 0.0, grad
    grad *= (weights * (len(weights) / total)).astype(grad.dtype).reshape(-1, *([1] * (grad.ndim - 1)))
    return float(np.dot(_PER_SAMPLE[loss_fn](output, target), weights) / total), grad
