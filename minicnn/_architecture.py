"""Former home of the network builder, now :mod:`minicnn.architecture` and :func:`minicnn.placement.plan`."""

import warnings

from .architecture import build_layers, build_network, network_for  # noqa: F401
from .placement import plan  # noqa: F401

warnings.warn("minicnn._architecture moved to minicnn.architecture (plan: minicnn.placement.plan); the old "
              "module will be removed in the next release", DeprecationWarning, stacklevel=2)
