"""Numba's own BLAS entry point and array addresses, for calls ``np.dot`` cannot express (``kernels/_blas.pxi``).

``numba_xxgemm`` is the column-major ``?gemm`` of SciPy's BLAS (as ``np.dot``): a row-major ``c (M, N)`` is
the column-major ``c^T``, so nothing is copied or transposed. Shape letters: M, N, K of the product
``c (M, N) = a (M, K) @ b (K, N)``.
"""

from llvmlite import ir as llvm_ir
from numba.core import types as nb_types
from numba.extending import intrinsic


@intrinsic
def _address(typingctx, arr):
    """Data pointer of an array (view) as ``void *``."""
    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.bitcast(ary.data, llvm_ir.IntType(8).as_pointer())
    return nb_types.voidptr(arr), codegen


# Numba's own BLAS entry point (numba/_helperlib.c, column-major ?gemm of SciPy's cython_blas, looked up
# by name: cacheable, unlike a ctypes pointer).
_XXGEMM = nb_types.ExternalFunction("numba_xxgemm", nb_types.intc(
    nb_types.char, nb_types.char, nb_types.char, nb_types.intp, nb_types.intp, nb_types.intp,
    nb_types.voidptr, nb_types.voidptr, nb_types.intp, nb_types.voidptr, nb_types.intp,
    nb_types.voidptr, nb_types.voidptr, nb_types.intp))
