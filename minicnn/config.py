"""Deprecated alias of :mod:`minicnn.backend.jit` (the Numba flags), kept for one release.

``import minicnn.config`` warns and returns the :mod:`minicnn.backend.jit`
module itself, so reading or setting a flag through the old name still acts
on the one place the flags live.
"""

import sys
import warnings

from .backend import jit as _jit

warnings.warn("minicnn.config moved to minicnn.backend.jit; the old name will be removed in the next release",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _jit
