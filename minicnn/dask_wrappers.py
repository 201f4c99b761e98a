"""Image arrays on Dask: dask-ml's ``ParallelPostFit`` and ``Incremental`` for 3-D and 4-D image arrays.

dask-ml's wrappers assume 2-D ``(n_samples, n_features)`` arrays: on a 4-D
image array ``ParallelPostFit`` maps its blocks to a wrong meta ("X has 8
features ...") and ``Incremental`` builds block keys of a 2-D array, so the
key, not the block, reaches ``partial_fit``. These subclasses change one
thing: a dask image array (3-D ``(n, height, width)`` or 4-D in the
estimator's ``data_format``), chunked along the sample axis, is flattened
*blockwise* to ``(n, height * width * channels)`` before dask-ml sees it (no
data moves: each block is reshaped where it lies). Everything else (the
scheduler, block order, shuffling, ``partial_fit`` keyword arguments) is
dask-ml's.

* :class:`ParallelPostFit`: ``predict``, ``predict_proba``,
  ``predict_log_proba`` and ``score`` of a fitted estimator run block by
  block; a model fitted on images predicts flat blocks through its fitted
  ``input_shape_``.
* :class:`Incremental`: ``fit`` / ``partial_fit`` call the estimator's
  ``partial_fit`` once per block, in dask-ml's block order. The estimator
  receives flat blocks, so the adapter sets its ``input_shape`` to the
  array's per-sample shape when it is None (and raises ``ValueError`` when
  it is set to another shape); the weights are the same as those of the
  same ``partial_fit`` calls on the image blocks in memory.

Requires ``dask[array]`` and ``dask-ml``: the ``distributed`` extra (``pip install ".[distributed]"`` from a
checkout, or the built wheel with ``[distributed]``; see docs/CLUSTER.md).

Examples
--------
>>> import dask.array as da, numpy as np
>>> from minicnn import CNNClassifier
>>> from minicnn.dask_wrappers import Incremental
>>> X = da.random.random((40, 6, 6, 1), chunks=(20, -1, -1, -1)).astype(np.float32)
>>> y = da.from_array(np.arange(40) % 2, chunks=20)
>>> model = Incremental(CNNClassifier(layers=("conv2", "gap"), dropout="none", random_state=0),
...                     shuffle_blocks=False).fit(X, y, classes=[0, 1])
>>> model.estimator_.n_iter_, model.predict(X).shape
(2, (40,))
"""

import dask.array as da
from dask_ml import wrappers


def flatten_images(X):
    """A dask image array as a 2-D ``(n, n_features)`` dask array, flattened block by block.

    Parameters
    ----------
    X : object
        Dask arrays with ``ndim > 2`` are flattened; anything else is returned
        unchanged.

    Returns
    -------
    same type as ``X``
        For an image array: a 2-D dask array with the same row chunks
        (trailing axes are first gathered into one chunk if they were split).

    Examples
    --------
    >>> import dask.array as da
    >>> flatten_images(da.zeros((10, 4, 4, 3), chunks=(5, -1, -1, -1))).chunks
    ((5, 5), (48,))
    """
    if not isinstance(X, da.Array) or X.ndim <= 2:
        return X
    if any(n != 1 for n in X.numblocks[1:]):
        X = X.rechunk({axis: -1 for axis in range(1, X.ndim)})
    return X.map_blocks(lambda block: block.reshape(len(block), -1), chunks=(X.chunks[0], (X[0].size,)),
                        drop_axis=list(range(2, X.ndim)), dtype=X.dtype)


def _with_input_shape(estimator, X):
    """Set ``input_shape`` of an unfitted estimator to the per-sample shape of image array ``X`` (or check it)."""
    if not isinstance(X, da.Array) or X.ndim <= 2:
        return
    shape = tuple(int(d) for d in X.shape[1:])
    declared = estimator.get_params().get("input_shape")
    if declared is None and not hasattr(estimator, "input_shape_"):
        estimator.set_params(input_shape=shape)
    elif declared is not None and tuple(declared) != shape:
        raise ValueError(f"X has per-sample shape {shape} but the estimator has input_shape={declared!r}")


def check_like_predict(estimator, X):
    """Raise what ``estimator.predict`` raises for the shape and dtype of dask array ``X``, before any block runs.

    Flat blocks lose the layout of the images: channels-first images for a
    channels-last model, or ``(4, 16)`` images for an ``(8, 8)`` model, hold
    the same number of values per sample as the images the model was fitted
    on. One all-zero sample of ``X``'s per-sample shape and dtype goes through
    the estimator's own input check (``_images``: the one that in-memory
    ``predict`` runs), so every view refuses what ``predict`` refuses, with
    its message. Anything else (a NumPy array, an unfitted estimator) is left
    to the estimator.
    """
    check = getattr(estimator, "_images", None)
    if not isinstance(X, da.Array) or check is None or not hasattr(estimator, "network_"):
        return
    if X.ndim < 2 or any(d != d for d in X.shape[1:]):   # 1-D or unknown per-sample shape: the blocks check it
        return
    import numpy as np

    try:
        check(np.zeros((1, *(int(d) for d in X.shape[1:])), dtype=X.dtype))
    except ValueError as exc:   # the message describes the dask array, not the one-sample probe
        if X.shape[0] != X.shape[0]:
            raise
        raise type(exc)(str(exc).replace("with shape (1, ", f"with shape ({X.shape[0]}, ")) from None


class _PostFitChecks:
    """Predictions and scores check the dask array's per-sample shape as ``predict`` does, then flatten it."""

    def _check_array(self, X):
        check_like_predict(self._postfit_estimator, X)
        return super()._check_array(flatten_images(X))

    def score(self, X, y, compute=True):
        check_like_predict(self._postfit_estimator, X)
        return super().score(flatten_images(X), y, compute=compute)


class ParallelPostFit(_PostFitChecks, wrappers.ParallelPostFit):
    """``dask_ml.wrappers.ParallelPostFit`` that also takes dask image arrays (see :mod:`minicnn.dask_wrappers`)."""


class Incremental(_PostFitChecks, wrappers.Incremental):
    """``dask_ml.wrappers.Incremental`` that also takes dask image arrays (see :mod:`minicnn.dask_wrappers`)."""

    def _fit_for_estimator(self, estimator, X, y, **fit_kwargs):
        _with_input_shape(estimator, X)
        return super()._fit_for_estimator(estimator, flatten_images(X), y, **fit_kwargs)
