"""Counter-based hash RNG for dropout masks: one definition, every backend.

A dropout mask bit is a pure function of ``(seed, layer, step, element index)``,
so a mask never has to be stored: the backward pass regenerates it, and every
backend (NumPy, Numba, Cython) and every thread count produces the same bits.

The definition, in 32-bit unsigned arithmetic (all products wrap mod 2**32)::

    mix32(h):  h ^= h >> 16; h *= 0x7FEB352D; h ^= h >> 15; h *= 0x846CA68B; h ^= h >> 16
    hash(i) = mix32(mix32(i ^ key0) ^ key1)
    keep element i  <=>  hash(i) < threshold

``mix32`` is Chris Wellons' "lowbias32" integer finalizer. ``key0, key1`` are the
two 32-bit halves of a SplitMix64 chain over ``(seed, layer, step)``, computed
once per call in Python (:func:`dropout_key`). ``threshold`` is the keep
probability scaled to 2**32 (:func:`keep_threshold`).

This module holds the key derivation and the NumPy reference of the hash; the
Numba and Cython kernels implement the same two lines in ``uint32``.
"""

import numpy as np

_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF
MIX_MUL1 = 0x7FEB352D
MIX_MUL2 = 0x846CA68B
#: Hashes drawn per row of an augmented batch: row ``b`` uses the counters ``AUGMENT_DRAWS * b + j``, ``j <
#: AUGMENT_DRAWS`` (shift y, shift x, crop y, crop x, flip; see :func:`minicnn.backend.reference.augment_batch`).
AUGMENT_DRAWS = 5


def _splitmix64(z):
    """One SplitMix64 step on a Python int (mod 2**64)."""
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def dropout_key(seed, layer, step):
    """Derive the two 32-bit hash keys of one dropout call.

    Parameters
    ----------
    seed : int
        Non-negative network seed (drawn once from ``random_state`` in ``fit``).
    layer : int
        Position of the dropout layer in its network.
    step : int
        How many stochastic forward passes this layer has made before.

    Returns
    -------
    key0, key1 : int
        Two integers in ``[0, 2**32)``.

    Examples
    --------
    >>> dropout_key(0, 1, 2) == dropout_key(0, 1, 2)
    True
    >>> dropout_key(0, 1, 2) != dropout_key(0, 1, 3)
    True
    """
    z = _splitmix64(int(seed) & _MASK64)
    z = _splitmix64(z ^ (int(layer) & _MASK64))
    z = _splitmix64(z ^ (int(step) & _MASK64))
    return z & _MASK32, z >> 32


def keep_threshold(rate):
    """Map a drop probability in ``(0, 1)`` to the uint32 keep threshold.

    An element is kept when its hash is below the threshold, so the keep
    probability is ``threshold / 2**32`` (exact to 2**-32).

    Examples
    --------
    >>> keep_threshold(0.5)
    2147483648
    """
    threshold = int(round((1.0 - float(rate)) * 2.0**32))
    return min(max(threshold, 1), _MASK32)


def mix32_reference(h):
    """Wellons' lowbias32 on a uint64 array holding 32-bit values (wraps explicitly)."""
    h = h ^ (h >> np.uint64(16))
    h = (h * np.uint64(MIX_MUL1)) & np.uint64(_MASK32)
    h = h ^ (h >> np.uint64(15))
    h = (h * np.uint64(MIX_MUL2)) & np.uint64(_MASK32)
    return h ^ (h >> np.uint64(16))


def hash_reference(index, key0, key1):
    """The dropout hash of each element index, vectorized NumPy on uint64.

    Parameters
    ----------
    index : ndarray of integers in ``[0, 2**32)``
    key0, key1 : int
        Keys from :func:`dropout_key`.

    Returns
    -------
    ndarray of uint64 holding values in ``[0, 2**32)``.

    Examples
    --------
    >>> hash_reference(np.arange(3), 1, 2).dtype
    dtype('uint64')
    """
    h = np.asarray(index, dtype=np.uint64) ^ np.uint64(key0)
    h = mix32_reference(h) ^ np.uint64(key1)
    return mix32_reference(h)
