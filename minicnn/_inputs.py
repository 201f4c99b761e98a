"""Former name of :mod:`minicnn.inputs`, kept importable: the same functions, not copies.

Examples
--------
>>> from minicnn import _inputs, inputs
>>> _inputs.prepare_X is inputs.prepare_X and _inputs.describe is inputs.describe
True
"""

from .inputs import *  # noqa: F401,F403
from .inputs import (_already_prepared, _as_array, _check_kind, _flat_to_nhwc, _ndim,  # noqa: F401
                     _shape_for_flat, _validated, prepare_X)
