"""The compiled Cython kernels (built by ``setup.py`` from ``kernels/*.pyx``).

Importing this module fails with ImportError when the extensions were not built
(e.g. the source tree imported without ``pip install -e .``).
"""

from ._dropout import (  # noqa: F401
    dropout_backward,
    dropout_forward,
    spatial_dropout_backward,
    spatial_dropout_forward,
)

NAME = "cython"
