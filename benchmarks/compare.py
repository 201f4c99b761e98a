"""minicnn vs ONNX Runtime and PyTorch on the reference models: ``python benchmarks/compare.py [options]``.

The same as ``minicnn bench`` and ``python -m minicnn.tools.bench`` (the logic lives in
:mod:`minicnn.tools.bench`, so an installed minicnn can run it); ``--help`` lists the options.
"""

import sys

from minicnn.tools.bench import main

if __name__ == "__main__":
    sys.exit(main())
