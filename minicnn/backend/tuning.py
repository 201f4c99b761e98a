"""Every tuning constant and workspace layout the Python side mirrors from ``kernels/*.pyx``, written once.

The compiled kernels choose these values (each is justified by a measurement
in the ``.pyx`` file named); the Python side needs them to size workspaces
(:mod:`minicnn.layers.conv`), to give the NumPy reference and the Numba
kernels the same summation order, and to skip thread settings for small calls.
``tests/test_tuning.py`` checks each against the compiled module that exposes
it, so a change in a ``.pyx`` file that is not made here fails the suite.

Importing this module imports nothing compiled.
"""

#: Fixed sample groups of the weight-gradient kernels (``kernels/conv.pyx``, ``kernels/conv_wgrad.pyx``):
#: partial gradients are summed in group order, so the result never depends on the thread count.
DW_GROUPS = 8
#: Rows per block of the deterministic bias-gradient reduction (``kernels/bias_act.pyx``).
DB_BLOCK_ROWS = 256
#: Work (elementary operations) below which a Cython kernel runs on the calling thread
#: (``kernels/_parallel.pxi``, ``MIN_PARALLEL_WORK``).
PARALLEL_WORK_THRESHOLD = 262144
#: Winograd tiles per block (``kernels/winograd.pyx``, ``TILE_BLOCK``).
WINOGRAD_TILE_BLOCK = 36
#: Rows per parallel block of the pointwise conv's product (``kernels/pointwise.pyx``, ``PW_BLOCK``).
POINTWISE_BLOCK_ROWS = 48
#: Elements of padding between the 16 Winograd matrices (``kernels/winograd.pyx``, ``STRIDE_PAD``).
WINOGRAD_STRIDE_PAD = 16
#: Block of output rows ``R >= 1`` per im2col + GEMM step of ``kernels/conv_wgrad.pyx``: if
#: ``Wo*K*F <= WGRAD_BLOCK_MNK``, the most rows with ``R*Wo*K*F <= WGRAD_BLOCK_MNK`` (the m*n*k of
#: one GEMM) and ``R*Wo*K <= WGRAD_SLOT_CAP``; otherwise ``WGRAD_PACKED_SLOT // (Wo*K)`` rows.
WGRAD_BLOCK_MNK = 1000000
WGRAD_SLOT_CAP = 65536
WGRAD_PACKED_SLOT = 131072
#: Tile-channels ``T * (C + F)`` per block of the Winograd weight gradient (``kernels/conv_wgrad.pyx``,
#: ``WINO_BUDGET``) and the padding between its 16 matrices (``WINO_PAD``).
WINO_WGRAD_BUDGET = 8192
WINO_WGRAD_PAD = 16
#: Below this inner size ``K = KH*KW*C`` a conv's forward product is a plain loop instead of BLAS (``kernels/conv.pyx``,
#: ``SMALL_K``): on a shallow K (a first layer on 1-channel images, K = 9) sgemm is mostly call and packing overhead.
CONV_SMALL_K = 32
#: Fewest output rows per thread's block of a dense product (``kernels/gemm.pyx``, ``MIN_BLOCK_ROWS``).
GEMM_MIN_BLOCK_ROWS = 32

#: Most input channels of the register-tile Winograd forward (``kernels/winograd16.pyx``: its stack buffer of
#: transformed tiles); the NumPy and Numba twins refuse the same shapes.
WINOGRAD16_MAX_CHANNELS = 64


def winograd_workspace_length(H, W, C, F, Ho, Wo):
    """Row length ``L`` of the ``(slots, L)`` workspace of ``conv2d_winograd_bias_act_forward``.

    The layout of the Cython kernel (``kernels/winograd.pyx``): the transformed
    weights ``U (16, C, F)`` at the head of row 0, then one thread's scratch for
    a block of ``T = min(WINOGRAD_TILE_BLOCK, ceil(Ho/2) * ceil(Wo/2))`` tiles:
    16 matrices ``V_k (T, C)`` and 16 ``M_k (T, F)``, each padded by
    ``WINOGRAD_STRIDE_PAD`` elements, a 4x4xC border patch and a 2x2xF output
    tile. A pure function of the shapes (``H`` and ``W`` do not change it).

    Parameters
    ----------
    H, W, C : int
        Input height, width, channels.
    F, Ho, Wo : int
        Filters, output height and width.

    Returns
    -------
    int
        Elements (of the kernel's dtype) per row.

    Raises
    ------
    ValueError
        If a size is negative.

    Examples
    --------
    >>> winograd_workspace_length(26, 26, 32, 64, 24, 24)
    89344
    """
    if min(H, W, C, F, Ho, Wo) < 0:
        raise ValueError(f"sizes must be >= 0; received H={H}, W={W}, C={C}, F={F}, Ho={Ho}, Wo={Wo}")
    T = min(WINOGRAD_TILE_BLOCK, ((Ho + 1) // 2) * ((Wo + 1) // 2))
    pad = WINOGRAD_STRIDE_PAD
    return 16 * C * F + 16 * (T * C + pad) + 16 * (T * F + pad) + 16 * C + 4 * F


def _wgrad_block_rows(Wo, K, F):
    """Output rows per block of the Cython ``conv2d_backward_weight_from_input`` (see ``WGRAD_BLOCK_MNK``)."""
    if Wo * K * F == 0:
        return 1
    if Wo * K * F > WGRAD_BLOCK_MNK:
        return max(1, WGRAD_PACKED_SLOT // (Wo * K))
    return max(1, min(WGRAD_BLOCK_MNK // (Wo * K * F), WGRAD_SLOT_CAP // (Wo * K)))


def conv_wgrad_workspace_length(N, H, W, C, KH, KW, F, Ho, Wo, slots):
    """Length of the 1-D workspace of ``conv2d_backward_weight_from_input`` for ``slots`` threads.

    The layout of the Cython kernel (``kernels/conv_wgrad.pyx``): ``G = min(N,
    DW_GROUPS)`` partial gradients of ``K*F`` elements (``K = KH*KW*C``), then
    ``slots`` im2col slots of ``min(R, rows) * Wo * K`` elements, where ``R``
    is the block of output rows (see ``WGRAD_BLOCK_MNK``) and ``rows =
    ceil(N / G) * Ho`` the output rows of the largest group. A pure function of
    the shapes (``H`` and ``W`` do not change it).

    Parameters
    ----------
    N, H, W, C : int
        Batch, input height, width, channels.
    KH, KW, F, Ho, Wo : int
        Kernel height and width, filters, output height and width.
    slots : int
        Threads that may run (>= 1).

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If a size is negative or ``slots < 1``.

    Examples
    --------
    >>> conv_wgrad_workspace_length(128, 26, 26, 32, 3, 3, 64, 24, 24, 2)   # 8*288*64 + 2 * 2*24*288
    175104
    """
    _check_sizes(slots, N=N, H=H, W=W, C=C, KH=KH, KW=KW, F=F, Ho=Ho, Wo=Wo)
    K = KH * KW * C
    G = min(N, DW_GROUPS)
    rows = -(-N // G) * Ho if G else 0
    return G * K * F + slots * min(_wgrad_block_rows(Wo, K, F), rows) * Wo * K


def depthwise_backward_workspace_length(N, H, W, C, KH, KW, Ho, Wo, slots):
    """Length of the 1-D workspace of ``depthwise_conv2d_bias_act_backward`` for ``slots`` threads.

    The layout of the Cython kernel (``kernels/depthwise.pyx``): ``G = min(N,
    DW_GROUPS)`` partial gradients of ``KH*KW*C`` weights and ``C`` biases,
    then ``slots`` slots of one sample's pre-activation gradient ``(Ho, Wo,
    C)``, ``C`` column sums and one input-gradient row ``(W, C)``. A pure
    function of the shapes (``H`` does not change it).

    Parameters
    ----------
    N, H, W, C : int
        Batch, input height, width, channels.
    KH, KW, Ho, Wo : int
        Kernel height and width, output height and width.
    slots : int
        Threads that may run (>= 1).

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If a size is negative or ``slots < 1``.

    Examples
    --------
    >>> depthwise_backward_workspace_length(64, 32, 32, 32, 3, 3, 16, 16, 2)   # 8*(288 + 32) + 2*(8192 + 32 + 1024)
    21056
    """
    _check_sizes(slots, N=N, H=H, W=W, C=C, KH=KH, KW=KW, Ho=Ho, Wo=Wo)
    return min(N, DW_GROUPS) * (KH * KW * C + C) + slots * (Ho * Wo * C + C + W * C)


def check_depthwise_backward_work(work, x, dw, dy):
    """Raise ``ValueError`` unless ``work`` is 1-D and holds at least one slot of
    :func:`depthwise_backward_workspace_length` for ``x (N, H, W, C)``, ``dw (KH, KW, C)``, ``dy (N, Ho, Wo, C)``
    (the check of the NumPy and Numba ``depthwise_conv2d_bias_act_backward``; the Cython kernel's is its own)."""
    need = depthwise_backward_workspace_length(*x.shape, *dw.shape[:2], *dy.shape[1:3], 1)
    if work.ndim != 1 or work.shape[0] < need:
        raise ValueError(f"work must have length >= {need} for these shapes (one slot); received shape {work.shape}")


def conv_winograd_wgrad_workspace_length(N, C, F, Ho, Wo, slots):
    """Length of the 1-D workspace of ``conv2d_winograd_backward_weight`` for ``slots`` threads.

    The layout of the Cython kernel (``kernels/conv_wgrad.pyx``): ``G = min(N, DW_GROUPS)``
    partial gradients of ``16*C*F`` elements (the Winograd domain), then ``slots`` scratch
    slots of ``16*(T*C + 16) + 16*(T*F + 16) + 16*C + 4*F`` elements for blocks of
    ``T = min(max(1, WINO_WGRAD_BUDGET // (C + F)), tiles)`` tiles, ``tiles =
    ceil(N / G) * ceil(Ho / 2) * ceil(Wo / 2)`` those of the largest group.

    Parameters
    ----------
    N, C, F, Ho, Wo : int
        Batch, input channels, filters, output height and width.
    slots : int
        Threads that may run (>= 1).

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If a size is negative or ``slots < 1``.

    Examples
    --------
    >>> conv_winograd_wgrad_workspace_length(64, 16, 16, 32, 32, 2)   # 8*16*256 + 2 * (2*16*(256*16 + 16) + 320)
    296576
    """
    if min(N, C, F, Ho, Wo) < 0:
        raise ValueError(f"sizes must be >= 0; received N={N}, C={C}, F={F}, Ho={Ho}, Wo={Wo}")
    if slots < 1:
        raise ValueError(f"slots must be >= 1; received slots={slots}")
    G = min(N, DW_GROUPS)
    tiles = -(-N // G) * ((Ho + 1) // 2) * ((Wo + 1) // 2) if G else 0
    T = max(1, WINO_WGRAD_BUDGET // (C + F)) if C + F else 1
    T = T if T < tiles else max(tiles, 1)
    pad = WINO_WGRAD_PAD
    return G * 16 * C * F + slots * (16 * (T * C + pad) + 16 * (T * F + pad) + 16 * C + 4 * F)


def winograd_wgrad_prologue(dw, dy, x, work):
    """The checks and empty problems of ``conv2d_winograd_backward_weight``'s Python twins (NumPy, Numba).

    Returns the workspace length of one slot, or None when nothing is left to compute (``dw`` empty, or
    filled with zeros for an empty batch or output map).

    Raises
    ------
    ValueError
        If ``work`` is not 1-D or shorter than
        :func:`conv_winograd_wgrad_workspace_length` for one slot.
    """
    N, C, F, Ho, Wo = x.shape[0], x.shape[3], dw.shape[3], dy.shape[1], dy.shape[2]
    need = conv_winograd_wgrad_workspace_length(N, C, F, Ho, Wo, 1)
    if work.ndim != 1 or work.shape[0] < need:
        raise ValueError(f"work must have length >= {need} for these shapes (one slot); received shape {work.shape}")
    if dw.size == 0:
        return None
    if N == 0 or Ho * Wo == 0:
        dw[...] = 0
        return None
    return need


def _check_sizes(slots, **sizes):
    """The workspace-length functions' argument check: every size >= 0 and ``slots >= 1`` (ValueError naming them)."""
    if min(sizes.values()) < 0:
        received = ", ".join(f"{name}={value}" for name, value in sizes.items())
        raise ValueError(f"sizes must be >= 0; received {received}")
    if slots < 1:
        raise ValueError(f"slots must be >= 1; received slots={slots}")
