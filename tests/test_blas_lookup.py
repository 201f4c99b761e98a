"""The Cython kernels' BLAS (``minicnn.backend.blas``): found without importing ``scipy.linalg``, the same
functions whichever lookup finds them, and a bad ``MINICNN_BLAS_LOOKUP`` named in a clear error."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minicnn.backend import blas

ROOT = str(Path(__file__).resolve().parent.parent)

pytest.importorskip("minicnn.backend.cython_kernels", reason="Cython kernels not built")

# Every kernel family that calls BLAS (kernels/_blas.pxi), in both precisions: the dense product on many rows
# (gemm) and on one row over a large weight matrix (gemv), the im2col convolution (gemm), Winograd (gemm).
_KERNELS = """
import hashlib, json, sys
import numpy as np
from minicnn.backend import blas, cython_kernels as cy, get_backend
rng = np.random.default_rng(0)
out = {"lookup": blas.blas_addresses()["lookup"], "scipy.linalg": "scipy.linalg" in sys.modules}
for dtype in (np.float32, np.float64):
    name = np.dtype(dtype).name
    # sgemm/dgemm, then sgemv/dgemv (one row, k * 512 >= GEMV_MIN_WEIGHTS, b transposed: stream_gemm.h takes none)
    for rows, k, tb in ((37, 70, 0), (1, 1024, 1)):
        a = rng.standard_normal((rows, k)).astype(dtype)
        b = rng.standard_normal((512, k) if tb else (k, 512)).astype(dtype)
        c = np.full((rows, 512), np.nan, dtype)
        cy.matmul(c, a, b, 0, tb)
        out[f"matmul {name} {rows}x{k}"] = [hashlib.sha1(c.tobytes()).hexdigest(),
                                            float(np.abs(c - a.astype(np.float64) @ (b.T if tb else b)).max())]
    x = rng.standard_normal((3, 9, 9, 8)).astype(dtype)
    w, bias = rng.standard_normal((3, 3, 8, 16)).astype(dtype), rng.standard_normal(16).astype(dtype)
    y, col = np.full((3, 7, 7, 16), np.nan, dtype), np.empty((3, 49, 72), dtype)
    expected = np.full_like(y, np.nan)
    cy.conv2d_bias_act_forward(y, x, w, bias, col, 0, 0.0, 1, 1, 0, 0, 1, 1)
    get_backend("numpy").conv2d_bias_act_forward(expected, x, w, bias, col.copy(), 0, 0.0, 1, 1, 0, 0, 1, 1)
    out[f"conv {name}"] = [hashlib.sha1(y.tobytes()).hexdigest(), float(np.abs(y - expected).max())]
print(json.dumps(out))
"""


def _run(code, **env):
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=ROOT, **env))
    return done


def test_every_lookup_gives_the_same_functions_and_results():
    results = {}
    for lookup in blas.LOOKUPS:
        done = _run(_KERNELS, MINICNN_BLAS_LOOKUP=lookup)
        assert done.returncode == 0, done.stderr
        results[lookup] = json.loads(done.stdout.strip().splitlines()[-1])
    library, module = results["library"], results["module"]
    assert module["lookup"] == "module" and module["scipy.linalg"]
    # Where SciPy's BLAS library is found (its wheels), scipy.linalg is never imported.
    assert library["lookup"] == "module" or not library["scipy.linalg"]
    kernel_keys = [k for k in library if k not in ("lookup", "scipy.linalg")]
    assert len(kernel_keys) == 6
    for key in kernel_keys:
        assert library[key][0] == module[key][0], key   # bit-identical: the same BLAS routines
        assert library[key][1] < (1e-3 if "float32" in key else 1e-10), key   # and right


def test_the_library_lookup_finds_the_routines_scipy_calls_where_scipy_bundles_openblas():
    found = blas._library_addresses()
    if found is None:
        pytest.skip("SciPy's BLAS library has no scipy_-prefixed symbols here (the module lookup is used)")
    module = blas._module_addresses()
    # cython_blas's exported functions are its own wrappers; both must compute the same products (above), and the
    # library lookup must find every routine.
    assert set(found) == set(module) == set(blas.ROUTINES) and all(found.values())


@pytest.mark.parametrize("value", ["numpy", "LIBRARY", " module"])
def test_a_bad_lookup_is_refused_naming_the_variable(value):
    done = _run("from minicnn.backend import cython_kernels", MINICNN_BLAS_LOOKUP=value)
    assert done.returncode != 0
    assert f"MINICNN_BLAS_LOOKUP={value!r}" in done.stderr and "RuntimeError" in done.stderr
