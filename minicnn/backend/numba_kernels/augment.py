"""The batch augmentation kernel in Numba: the twin of :func:`minicnn.backend.reference.augment_batch`.

Shape letters: B batch rows written, H, W, C image height, width, channels (NHWC).

Same contract, same bits (the draws of row ``b`` are hashes of the counters ``AUGMENT_DRAWS * b + j``).
"""

import numpy as np
from numba import prange

from ..hash_rng import AUGMENT_DRAWS
from ..jit import jit
from ._hash import counter_hash

__all__ = ["augment_batch"]


@jit(inline="always")
def _draw(i, k0, k1, modulus):
    """``hash(i) % modulus`` as an int64 (``modulus`` >= 1)."""
    return np.int64(counter_hash(i, k0, k1) % np.uint32(modulus))


@jit(inline="always")
def _reflect(t, L):
    t = t % (2 * L)   # Python semantics: non-negative
    return 2 * L - 1 - t if t >= L else t


@jit(parallel=True)
def _augment(out, x, index, key0, key1, shift, crop, flip):
    B, H, W, C = out.shape
    k0, k1 = np.uint32(key0), np.uint32(key1)
    zero = out.dtype.type(0)
    for b in prange(B):
        base = AUGMENT_DRAWS * b
        sy = _draw(base, k0, k1, 2 * shift + 1) - shift
        sx = _draw(base + 1, k0, k1, 2 * shift + 1) - shift
        cy = _draw(base + 2, k0, k1, 2 * crop + 1) - crop
        cx = _draw(base + 3, k0, k1, 2 * crop + 1) - crop
        mirror = flip and counter_hash(base + 4, k0, k1) >= np.uint32(2**31)
        n = index[b]
        for i in range(H):
            ii = i + cy
            for j in range(W):
                jj = j + cx
                if ii < 0 or ii >= H or jj < 0 or jj >= W:
                    for c in range(C):
                        out[b, i, j, c] = zero
                else:
                    si = _reflect(ii - sy, H)
                    sj = _reflect(jj - sx, W)
                    if mirror:
                        sj = W - 1 - sj
                    for c in range(C):
                        out[b, i, j, c] = x[n, si, sj, c]


def augment_batch(out, x, index, key0, key1, shift, crop, flip):
    """See :func:`minicnn.backend.reference.augment_batch`."""
    _augment(out, x, index, key0, key1, shift, crop, bool(flip))
