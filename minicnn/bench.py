"""Deprecated alias of :mod:`minicnn.tools.bench` (kept for one release; import ``minicnn.tools.bench``)."""

import sys
import warnings

from .tools import bench as _bench

warnings.warn("minicnn.bench moved to minicnn.tools.bench; the old name will be removed in the next release",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _bench

if __name__ == "__main__":
    sys.exit(_bench.main())
