"""Deprecated alias of :mod:`minicnn.tools.study` (the placement study moved there; this alias goes in the next release).

Importing ``minicnn.study`` (or one of its submodules ``grid``, ``report``,
``runner``, ``stats``) issues a ``DeprecationWarning`` and returns the same
objects as ``minicnn.tools.study``.
"""

import sys
import warnings

warnings.warn("minicnn.study is deprecated and will be removed in the next release; import minicnn.tools.study "
              "instead", DeprecationWarning, stacklevel=2)

from .tools import study as _study  # noqa: E402
from .tools.study import *  # noqa: E402,F401,F403

__all__ = list(_study.__all__)

for _name in ("grid", "report", "runner", "stats"):
    _module = __import__(f"{_study.__name__}.{_name}", fromlist=[_name])
    globals()[_name] = _module
    sys.modules[f"{__name__}.{_name}"] = _module
