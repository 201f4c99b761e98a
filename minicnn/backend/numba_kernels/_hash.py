"""The counter-based hash in Numba, shared by the dropout and augmentation kernels.

The NumPy reference and the definition are in :mod:`minicnn.backend.hash_rng`. Every intermediate is cast
back to uint32, so loops over it vectorize (AVX2). Shape letters: none (scalars).
"""

import numpy as np

from ..hash_rng import MIX_MUL1, MIX_MUL2
from ..jit import jit


@jit(inline="always")
def mix32(h):
    """Wellons' lowbias32 in uint32."""
    h = np.uint32(h ^ (h >> np.uint32(16)))
    h = np.uint32(h * np.uint32(MIX_MUL1))
    h = np.uint32(h ^ (h >> np.uint32(15)))
    h = np.uint32(h * np.uint32(MIX_MUL2))
    return np.uint32(h ^ (h >> np.uint32(16)))


@jit(inline="always")
def counter_hash(i, key0, key1):
    """``mix32(mix32(i ^ key0) ^ key1)`` as a uint32: the draw of counter ``i`` under the key ``(key0, key1)``."""
    h = mix32(np.uint32(np.uint32(i) ^ key0))
    return mix32(np.uint32(h ^ key1))
