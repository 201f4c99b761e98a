# Included by kernels whose def wrappers take plain ndarrays instead of typed memoryviews.
#
# Acquiring a typed memoryview costs ~1 us per 4-D argument (buffer protocol,
# format-string check, a memoryview object); on a one-sample prediction the
# kernels themselves run for less than that. These helpers check the same
# contract (ndarray, dtype, ndim, C-contiguous, writable outputs) by reading
# the array struct directly and hand back its data pointer.

cimport numpy as cnp

cnp.import_array()


cdef inline cnp.ndarray _array(object a, int typenum, int ndim, bint writable, str name):
    """``a`` as an ndarray after the contract checks; raises TypeError/ValueError naming ``name``."""
    if not isinstance(a, cnp.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray; received {type(a).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != typenum:
        raise ValueError(f"{name} has dtype {(<object>arr).dtype}, expected {cnp.PyArray_DescrFromType(typenum)}")
    if not cnp.PyArray_ISNOTSWAPPED(arr):   # the type number is the same in either byte order
        raise ValueError(f"{name} has non-native byte order ({(<object>arr).dtype.str}); a typed memoryview "
                         f"refuses it too: pass {name}.astype({(<object>arr).dtype.newbyteorder('=').name!r})")
    if cnp.PyArray_NDIM(arr) != ndim:
        raise ValueError(f"{name} must be {ndim}-D; received shape {(<object>arr).shape}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError(f"{name} must be C-contiguous")
    if writable and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{name} must be writable")
    return arr


cdef inline int _float_type(object x, str name) except -1:
    """NPY_FLOAT or NPY_DOUBLE: the dtype of the kernel's data argument ``x``."""
    if isinstance(x, cnp.ndarray):
        t = cnp.PyArray_TYPE(<cnp.ndarray>x)
        if t == cnp.NPY_FLOAT or t == cnp.NPY_DOUBLE:
            return t
    raise TypeError(f"{name} must be a float32 or float64 numpy.ndarray; received {getattr(x, 'dtype', type(x))}")
