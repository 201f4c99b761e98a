"""The mini-batch training loop, shared by every caller (estimator, CLI, benchmarks)."""

import numpy as np

from .losses import weighted_loss


def iterate_minibatches(n_samples, batch_size, rng, min_batch=1):
    """Yield index arrays of a seeded shuffle of ``range(n_samples)``, ``batch_size`` at a time.

    A trailing batch smaller than ``min_batch`` is merged into the one before
    it (a BatchNorm over one value per channel needs batches of 2).

    Examples
    --------
    >>> import numpy as np
    >>> [b.size for b in iterate_minibatches(5, 2, np.random.default_rng(0))]
    [2, 2, 1]
    >>> [b.size for b in iterate_minibatches(5, 2, np.random.default_rng(0), min_batch=2)]
    [2, 3]
    """
    order = rng.permutation(n_samples)
    stops = list(range(batch_size, n_samples, batch_size)) + [n_samples]
    if len(stops) > 1 and stops[-1] - stops[-2] < min_batch:
        del stops[-2]
    start = 0
    for stop in stops:
        yield order[start:stop]
        start = stop


def train_step(network, loss_fn, optimizer, xb, yb, wb=None):
    """One forward, backward and update on a batch; returns the batch loss (weighted by ``wb`` when given).

    The loss and the optimizer run on the network's kernels (:attr:`Sequential.kernels
    <minicnn.network.Sequential.kernels>`), like its layers.
    """
    kernels = network.kernels
    out = network.forward(xb, training=True)
    if wb is None:
        loss, grad = loss_fn(out, yb, kernels=kernels)
    else:
        loss, grad = weighted_loss(loss_fn, out, yb, wb, kernels=kernels)
    network.backward(grad)
    optimizer.step(network.flat_params_and_grads(), kernels=kernels)
    return loss


def train_epoch(network, loss_fn, optimizer, X, y, batch_size, rng, on_batch=None, min_batch=1, sample_weight=None,
                augmenter=None):
    """One pass over ``(X, y)`` in seeded random order; returns the sample-weighted mean loss.

    Parameters
    ----------
    network : Sequential
    loss_fn : callable
        ``loss_fn(output, target, kernels=network.kernels) -> (loss, grad)``
        (see :mod:`minicnn.losses`).
    optimizer : SGD or Adam
    X, y : ndarray
        ``X`` C-contiguous in the network's dtype.
    batch_size : int
    rng : numpy.random.Generator
    on_batch : callable, optional
        Called as ``on_batch(n_done, loss)`` after every batch (progress bars).
    min_batch : int, default=1
        A trailing batch smaller than this joins the previous one.
    sample_weight : ndarray of shape (n_samples,), optional
        Per-sample loss weights (see :mod:`minicnn.weights`); the mean is then weighted by them.
    augmenter : minicnn.augment.Augmenter, optional
        Gathers each batch augmented (instead of ``np.take``).
    """
    total, done, weight_sum = 0.0, 0, 0.0
    xb_buf = np.empty((min(batch_size + min_batch - 1, len(X)), *X.shape[1:]), dtype=X.dtype)
    if augmenter is not None:
        augmenter.start_epoch(rng)
    for idx in iterate_minibatches(len(X), batch_size, rng, min_batch):
        xb = xb_buf[:idx.size]
        if augmenter is None:
            np.take(X, idx, axis=0, out=xb)
        else:
            augmenter.gather(xb, X, idx)
        wb = None if sample_weight is None else sample_weight[idx]
        loss = train_step(network, loss_fn, optimizer, xb, y[idx], wb)
        batch_weight = idx.size if wb is None else float(wb.sum())
        total += loss * batch_weight
        weight_sum += batch_weight
        done += idx.size
        if on_batch is not None:
            on_batch(done, loss)
    return total / weight_sum if weight_sum > 0 else 0.0
