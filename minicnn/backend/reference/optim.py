"""The fused Adam (AdamW) update reference.

Shape letters: P parameters; ``param, m, v, grad (P,)`` flat arrays of one dtype.
"""

import numpy as np

__all__ = ["adam_update"]


def adam_update(param, m, v, grad, step_size, beta1, beta2, bias2, eps, decay):
    """One fused Adam (AdamW) step on flat arrays, every operation in the data dtype.

    ``param = param * decay - step_size * m / (sqrt(v / bias2) + eps)`` after
    ``m = beta1 * m + (1 - beta1) * grad`` and ``v = beta2 * v + (1 - beta2) * grad**2``;
    ``step_size = lr / (1 - beta1**t)``, ``bias2 = 1 - beta2**t`` and
    ``decay = 1 - lr * weight_decay`` are computed by the caller. Each scalar is
    cast to the dtype first, and the operations happen in this order, so the
    compiled twins are bit-identical.
    """
    t = param.dtype.type
    m *= t(beta1)
    m += t(1.0 - beta1) * grad
    v *= t(beta2)
    v += t(1.0 - beta2) * (grad * grad)
    denom = np.sqrt(v / t(bias2))
    denom += t(eps)
    param *= t(decay)
    param -= t(step_size) * (m / denom)
