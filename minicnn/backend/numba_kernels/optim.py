"""The fused Adam (AdamW) update in Numba, in the reference's operation order (bit-identical).

Shape letters: P parameters; ``param, m, v, grad (P,)`` flat arrays of one dtype.
"""

import numpy as np
from numba import prange

from ..jit import jit

__all__ = ["adam_update"]


@jit(parallel=True)
def adam_update(param, m, v, grad, step_size, beta1, beta2, bias2, eps, decay):
    """One fused Adam (AdamW) step on flat arrays, in the reference's operation order."""
    t = param.dtype.type
    b1, b2 = t(beta1), t(beta2)
    c1, c2 = t(1.0 - beta1), t(1.0 - beta2)
    bc2, e, ss, dec = t(bias2), t(eps), t(step_size), t(decay)
    for i in prange(param.shape[0]):
        g = grad[i]
        mi = m[i] * b1
        mi = mi + c1 * g
        vi = v[i] * b2
        vi = vi + c2 * (g * g)
        m[i] = mi
        v[i] = vi
        d = np.sqrt(vi / bc2)
        d = d + e
        p = param[i] * dec
        param[i] = p - ss * (mi / d)
