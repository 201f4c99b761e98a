"""minicnn vs PyTorch on the reference models: a thin script around :mod:`minicnn.bench`.

Run ``python benchmarks/compare.py [--quick] [--json PATH]`` (same options as
``minicnn bench`` and ``python -m minicnn.bench``; the logic lives in the
package so an installed minicnn can run it). ``benchmarks/RESULTS.md`` holds
the latest table.
"""

import sys

from minicnn.bench import main

if __name__ == "__main__":
    sys.exit(main())
