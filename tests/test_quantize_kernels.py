"""The reduced-precision kernels (kernels/qgemm.pyx on AVX512-VNNI, kernels/bf16gemm.pyx on AVX512-BF16) against
their NumPy twins: int8 exactly (integers, and the float epilogue's one rounding per operation), bf16 within the
float32 summation bound; outputs pre-filled with NaN (or a sentinel); 1 vs 2 threads bit-identical. Skipped where
this CPU or build lacks the instructions (the refusal is tested in tests/test_quantize.py)."""

import numpy as np
import pytest

from minicnn.backend import lowp
from minicnn.backend.reference import bf16gemm
from minicnn.backend.reference import qgemm as ref
from minicnn.threads import thread_limits

#: (M, K, N): one row (a one-sample dense layer), tails of every block (rows % 4, K % 4, N % 16), the MNIST
#: shapes (first conv K=9 -> 32, second conv K=288 -> 64 over many rows, dense 9216 -> 128, output 128 -> 10);
#: more than one 64-row chunk where the product is large enough for 2 threads.
PRODUCTS = [(1, 9, 32), (1, 9216, 128), (7, 288, 64), (5, 3, 1), (130, 130, 10), (67, 21, 77), (2000, 288, 64),
            (130, 4608, 128), (33, 1, 200)]
#: (KH, KW, sh, sw, pt, pl, dh, dw) of a conv: "same", strided "valid", dilated and asymmetric, 1x1.
GEOMETRIES = [(3, 3, 1, 1, 1, 1, 1, 1), (3, 3, 2, 2, 0, 0, 1, 1), (5, 3, 1, 2, 2, 1, 2, 1), (1, 1, 1, 1, 0, 0, 1, 1),
              (2, 2, 2, 2, 0, 0, 1, 1)]


def compiled(precision):
    if lowp.missing(precision):
        pytest.skip(f"this CPU lacks {lowp.missing(precision)} for precision={precision!r}")
    try:
        return lowp.kernels(precision)
    except lowp.UnsupportedPrecisionError as exc:
        pytest.skip(str(exc))


def twice(call, make):
    """``call(*args)`` on fresh arguments from ``make()`` with 1 and with 2 threads: the two first arguments."""
    runs = []
    for threads in (1, 2):
        args = make()
        with thread_limits(threads):
            call(*args)
        runs.append(args[0])
    np.testing.assert_array_equal(runs[0].view(np.uint8), runs[1].view(np.uint8), err_msg="1 vs 2 threads")
    return runs[0]


def _operands(rng, M, K, N):
    a = rng.integers(0, 256, (M, ref.padded(K, 4)), dtype=np.uint8)
    w = rng.integers(-127, 128, (K, N), dtype=np.int8)
    w[:, 0] = 127   # the extremes, where an intermediate saturation (VPMADDUBSW) would show
    a[:, :K][:, ::3] = 255
    return a, w


@pytest.mark.parametrize("M, K, N", PRODUCTS)
def test_qgemm_matches_reference_exactly(M, K, N, rng):
    fast = compiled("int8")
    a, w = _operands(rng, M, K, N)
    bp = ref.pack_int8(w)
    want = np.full((M, N), -7, np.int32)
    ref.qgemm_u8s8(want, a, bp)
    np.testing.assert_array_equal(want, a[:, :K].astype(np.int64) @ w.astype(np.int64))
    got = twice(fast.qgemm_u8s8, lambda: (np.full((M, N), -7, np.int32), a, bp))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("act", [0, 1])
@pytest.mark.parametrize("M, K, N", PRODUCTS)
def test_qgemm_bias_act_matches_reference_exactly(M, K, N, act, rng):
    fast = compiled("int8")
    a, w = _operands(rng, M, K, N)
    bp = ref.pack_int8(w)
    zcorr = (int(rng.integers(0, 256)) * w.sum(axis=0, dtype=np.int64)).astype(np.int32)
    scale = (rng.random(N) * 1e-3).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32)
    want = np.full((M, N), np.nan, np.float32)
    ref.qgemm_u8s8_bias_act(want, a, bp, zcorr, scale, bias, act)
    got = twice(fast.qgemm_u8s8_bias_act, lambda: (np.full((M, N), np.nan, np.float32), a, bp, zcorr, scale, bias,
                                                   act))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("zero_point", [0, 1, 128, 255])
def test_quantize_u8_matches_reference_exactly(zero_point, rng):
    fast = compiled("int8")
    x = (rng.standard_normal((999, 37)) * 3).astype(np.float32)
    x[0, :6] = [0.5 / 40, 1.5 / 40, -2.5 / 40, 1e30, -1e30, 0.0]   # ties to even, saturation both ways
    want = np.full((999, 40), 3, np.uint8)
    ref.quantize_u8(want, x, 40.0, zero_point)
    got = twice(fast.quantize_u8, lambda: (np.full((999, 40), 3, np.uint8), x, 40.0, zero_point))
    np.testing.assert_array_equal(got, want)
    assert (want[:, 37:] == zero_point).all()


def test_to_bf16_matches_reference_exactly(rng):
    fast, ref = compiled("bf16"), bf16gemm
    x = (rng.standard_normal((1000, 37)) * 10.0 ** rng.integers(-30, 30, (1000, 37))).astype(np.float32)
    x[0, :5] = [np.inf, -np.inf, np.nan, 1.00390625, 1.01171875]   # specials; ties to even (down, up)
    want = np.full((1000, 38), 7, np.uint16)
    ref.to_bf16(want, x)
    got = twice(fast.to_bf16, lambda: (np.full((1000, 38), 7, np.uint16), x))
    np.testing.assert_array_equal(got, want)
    assert list(want[0, 3:5]) == [0x3F80, 0x3F82] and want[0, 37] == 0


@pytest.mark.parametrize("act", [0, 1])
@pytest.mark.parametrize("M, K, N", PRODUCTS)
def test_gemm_bf16_matches_reference_within_the_summation_bound(M, K, N, act, rng):
    """Stated tolerance: the float32 rounding of a K-term sum, ``K * 2**-24 * sum_k |a_k w_k|``, plus the
    rounding of the bias add (the reference sums the exact products in float64 and rounds once)."""
    fast, ref = compiled("bf16"), bf16gemm
    Kp = ref.padded(K, 2)
    a = np.empty((M, Kp), np.uint16)
    ref.to_bf16(a, rng.standard_normal((M, K)).astype(np.float32))
    w = ref.bf16_bits(rng.standard_normal((K, N)).astype(np.float32))
    bp, bias = ref.pack_bf16(w), rng.standard_normal(N).astype(np.float32)
    want = np.full((M, N), np.nan, np.float32)
    ref.gemm_bf16_bias_act(want, a, bp, bias, act)
    got = twice(fast.gemm_bf16_bias_act, lambda: (np.full((M, N), np.nan, np.float32), a, bp, bias, act))
    magnitude = np.abs(ref.bf16_values(a[:, :K]).astype(np.float64)) @ np.abs(ref.bf16_values(w))
    bound = K * 2.0**-24 * magnitude + 2.0**-23 * np.abs(want)
    assert (np.abs(got.astype(np.float64) - want) <= bound).all()


@pytest.mark.parametrize("precision, call, args", [
    ("int8", "qgemm_u8s8", lambda: (np.empty((4, 8), np.int32), np.zeros((4, 6), np.uint8),
                                    np.zeros((2, 16, 4), np.int8))),
    ("int8", "qgemm_u8s8_bias_act", lambda: (np.empty((4, 8), np.float32), np.zeros((4, 8), np.uint8),
                                             np.zeros((2, 16, 4), np.int8), np.zeros(8, np.int32),
                                             np.ones(8, np.float32), np.zeros(8, np.float32), 2)),
    ("bf16", "gemm_bf16_bias_act", lambda: (np.empty((4, 20), np.float32), np.zeros((4, 8), np.uint16),
                                            np.zeros((4, 16, 2), np.uint16), np.zeros(20, np.float32), 0)),
])
def test_compiled_kernels_refuse_operands_they_would_read_past(precision, call, args):
    """The compiled kernels check their operands' shapes (a mismatch would read out of bounds) and ``act``."""
    with pytest.raises(ValueError, match="shapes do not match|act must be"):
        getattr(compiled(precision), call)(*args())


@pytest.mark.parametrize("C, Cp", [(8, 8), (1, 4), (3, 4), (5, 8)])
@pytest.mark.parametrize("pt, pl, extra", [(0, 0, 0), (1, 1, 1), (2, 0, 3)])
def test_quantize_pad_u8_matches_reference_exactly(pt, pl, extra, C, Cp, rng):
    fast = compiled("int8")
    x = (rng.standard_normal((3, 9, 7, C)) * 2).astype(np.float32)
    shape = (3, 9 + pt + extra, 7 + pl + extra, Cp)
    want = np.full(shape, 3, np.uint8)
    ref.quantize_pad_u8(want, x, 50.0, 77, pt, pl)
    got = twice(fast.quantize_pad_u8, lambda: (np.full(shape, 3, np.uint8), x, 50.0, 77, pt, pl))
    np.testing.assert_array_equal(got, want)
    inner = np.empty((x.size // C, C), np.uint8)
    ref.quantize_u8(inner, x.reshape(-1, C), 50.0, 77)
    np.testing.assert_array_equal(want[:, pt:pt + 9, pl:pl + 7, :C], inner.reshape(x.shape))
    assert (want[:, :pt] == 77).all() and (want[:, pt + 9:] == 77).all() and (want[:, :, pl + 7:] == 77).all()
    assert (want[..., C:] == 77).all()


@pytest.mark.parametrize("pool", [False, True])
@pytest.mark.parametrize("act", [0, 1])
@pytest.mark.parametrize("geometry", [g for g in GEOMETRIES])
@pytest.mark.parametrize("C, F", [(4, 1), (32, 64), (8, 77)])
def test_qconv_matches_reference_exactly(C, F, geometry, act, pool, rng):
    """The implicit-im2col conv (and conv + 2x2 max-pool) equals its twin, and both equal im2col +
    :func:`qgemm_u8s8_bias_act` (then the pool)."""
    fast = compiled("int8")
    KH, KW, sh, sw, pt, pl, dh, dw = geometry
    N, H, W = 3, 11 + 2 * pt, 9 + 2 * pl   # already padded
    Ho, Wo = (H - dh * (KH - 1) - 1) // sh + 1, (W - dw * (KW - 1) - 1) // sw + 1
    xp = rng.integers(0, 256, (N, H, W, C), dtype=np.uint8)
    w = rng.integers(-127, 128, (KH * KW * C, F), dtype=np.int8)
    bp, zcorr = ref.pack_int8(w), (9 * w.sum(axis=0, dtype=np.int64)).astype(np.int32)
    scale, bias = (rng.random(F) * 1e-3).astype(np.float32), rng.standard_normal(F).astype(np.float32)
    args = (bp, zcorr, scale, bias, act, Ho, Wo, KH, KW, sh, sw, dh, dw, pool)
    Hq, Wq = (Ho // 2, Wo // 2) if pool else (Ho, Wo)
    want = np.full((N * Hq * Wq, F), np.nan, np.float32)
    ref.qconv_u8s8_bias_act(want, xp, *args)
    got = twice(fast.qconv_u8s8_bias_act, lambda: (np.full((N * Hq * Wq, F), np.nan, np.float32), xp, *args))
    np.testing.assert_array_equal(got, want)
    col = np.empty((N * Ho * Wo, KH * KW * C), np.uint8)
    ref.im2col_windows(col, xp, 0, Ho, Wo, KH, KW, sh, sw, 0, 0, dh, dw)
    direct = np.empty((N * Ho * Wo, F), np.float32)
    ref.qgemm_u8s8_bias_act(direct, col, bp, zcorr, scale, bias, act)
    if pool:
        direct = direct.reshape(N, Ho, Wo, F)[:, :2 * Hq, :2 * Wq].reshape(N, Hq, 2, Wq, 2, F).max(axis=(2, 4))
    np.testing.assert_array_equal(want, direct.reshape(want.shape))


@pytest.mark.parametrize("C, Cp", [(8, 8), (1, 2), (3, 4)])
@pytest.mark.parametrize("pt, pl, extra", [(0, 0, 0), (1, 1, 1), (2, 0, 3)])
def test_to_bf16_pad_matches_reference_exactly(pt, pl, extra, C, Cp, rng):
    fast, ref = compiled("bf16"), bf16gemm
    x = (rng.standard_normal((3, 9, 7, C)) * 2).astype(np.float32)
    shape = (3, 9 + pt + extra, 7 + pl + extra, Cp)
    want = np.full(shape, 3, np.uint16)
    ref.to_bf16_pad(want, x, pt, pl)
    got = twice(fast.to_bf16_pad, lambda: (np.full(shape, 3, np.uint16), x, pt, pl))
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(want[:, pt:pt + 9, pl:pl + 7, :C], ref.bf16_bits(x))
    assert want.sum(dtype=np.int64) == ref.bf16_bits(x).sum(dtype=np.int64)   # zeros elsewhere


@pytest.mark.parametrize("pool", [False, True])
@pytest.mark.parametrize("act", [0, 1])
@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("C, F", [(2, 1), (32, 64), (8, 77)])
def test_conv_bf16_matches_reference_within_the_summation_bound(C, F, geometry, act, pool, rng):
    """The in-place conv (and conv + 2x2 max-pool) against its twin, within the bound of
    :func:`test_gemm_bf16_matches_reference_within_the_summation_bound` taken at the largest window."""
    fast, ref = compiled("bf16"), bf16gemm
    KH, KW, sh, sw, pt, pl, dh, dw = geometry
    N, H, W = 3, 11 + 2 * pt, 9 + 2 * pl
    Ho, Wo = (H - dh * (KH - 1) - 1) // sh + 1, (W - dw * (KW - 1) - 1) // sw + 1
    xp = ref.bf16_bits(rng.standard_normal((N, H, W, C)).astype(np.float32))
    w = ref.bf16_bits(rng.standard_normal((KH * KW * C, F)).astype(np.float32))
    bp, bias = ref.pack_bf16(w), rng.standard_normal(F).astype(np.float32)
    args = (bp, bias, act, Ho, Wo, KH, KW, sh, sw, dh, dw, pool)
    Hq, Wq = (Ho // 2, Wo // 2) if pool else (Ho, Wo)
    want = np.full((N * Hq * Wq, F), np.nan, np.float32)
    ref.conv_bf16_bias_act(want, xp, *args)
    got = twice(fast.conv_bf16_bias_act, lambda: (np.full((N * Hq * Wq, F), np.nan, np.float32), xp, *args))
    K = KH * KW * C
    magnitude = float(np.abs(ref.bf16_values(xp)).max()) * np.abs(ref.bf16_values(w)).sum(axis=0)
    bound = K * 2.0**-24 * magnitude + 2.0**-23 * np.abs(want)
    assert (np.abs(got.astype(np.float64) - want) <= bound).all()


@pytest.mark.parametrize("act", [0, 1])
@pytest.mark.parametrize("extra", [0, 3])
@pytest.mark.parametrize("M, K, N", PRODUCTS)
def test_qgemm_requant_matches_reference_and_the_two_steps_exactly(M, K, N, extra, act, rng):
    """A dense product quantized in its epilogue as the next layer's input (``q (M, N + extra)``, the zero point
    past ``N``) equals its twin and the float32 output quantized by :func:`quantize_u8` (bit for bit)."""
    fast = compiled("int8")
    a, w = _operands(rng, M, K, N)
    bp = ref.pack_int8(w)
    zcorr = (int(rng.integers(0, 256)) * w.sum(axis=0, dtype=np.int64)).astype(np.int32)
    scale = (rng.random(N) * 1e-4).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32)
    args = (a, bp, zcorr, scale, bias, act, 9.5, 31)
    want = np.full((M, N + extra), 3, np.uint8)
    ref.qgemm_u8s8_requant(want, *args)
    got = twice(fast.qgemm_u8s8_requant, lambda: (np.full((M, N + extra), 3, np.uint8), *args))
    np.testing.assert_array_equal(got, want)
    y = np.full((M, N), np.nan, np.float32)
    fast.qgemm_u8s8_bias_act(y, a, bp, zcorr, scale, bias, act)
    two_steps = np.full((M, N + extra), 3, np.uint8)
    fast.quantize_u8(two_steps, y, 9.5, 31)
    np.testing.assert_array_equal(got, two_steps)
    assert len(np.unique(got[:, :N])) > 1   # not all clipped to one value


@pytest.mark.parametrize("pool", [False, True])
@pytest.mark.parametrize("pt, pl, extra, Cq", [(0, 0, 0, None), (1, 1, 1, None), (2, 0, 3, 4)])
@pytest.mark.parametrize("geometry", [GEOMETRIES[0], GEOMETRIES[2]])
@pytest.mark.parametrize("C, F", [(4, 1), (32, 64), (8, 77)])
def test_qconv_requant_matches_reference_and_the_two_steps_exactly(C, F, geometry, pt, pl, extra, Cq, pool, rng):
    """A conv (+ 2x2 max-pool) quantized in its epilogue into the next conv's padded input ``q`` (offset
    ``(pt, pl)``, ``extra`` rows and columns and ``Cq - F`` channels of zero point) equals its twin and
    :func:`quantize_pad_u8` of the float32 output (bit for bit)."""
    fast = compiled("int8")
    KH, KW, sh, sw, _, _, dh, dw = geometry
    N, H, W = 3, 13, 10
    Ho, Wo = (H - dh * (KH - 1) - 1) // sh + 1, (W - dw * (KW - 1) - 1) // sw + 1
    Hy, Wy = (Ho // 2, Wo // 2) if pool else (Ho, Wo)
    Cq = ref.padded(F, 4) if Cq is None else F + Cq
    xp = rng.integers(0, 256, (N, H, W, C), dtype=np.uint8)
    w = rng.integers(-127, 128, (KH * KW * C, F), dtype=np.int8)
    bp, zcorr = ref.pack_int8(w), (9 * w.sum(axis=0, dtype=np.int64)).astype(np.int32)
    scale, bias = (rng.random(F) * 1e-4).astype(np.float32), rng.standard_normal(F).astype(np.float32)
    geo = (Ho, Wo, KH, KW, sh, sw, dh, dw, pool)
    args = (xp, bp, zcorr, scale, bias, 1, 7.25, 40, pt, pl, *geo)
    shape = (N, pt + Hy + extra, pl + Wy + extra, Cq)
    want = np.full(shape, 3, np.uint8)
    ref.qconv_u8s8_requant(want, *args)
    got = twice(fast.qconv_u8s8_requant, lambda: (np.full(shape, 3, np.uint8), *args))
    np.testing.assert_array_equal(got, want)
    y = np.full((N * Hy * Wy, F), np.nan, np.float32)
    fast.qconv_u8s8_bias_act(y, xp, bp, zcorr, scale, bias, 1, *geo)
    two_steps = np.full(shape, 3, np.uint8)
    fast.quantize_pad_u8(two_steps, y.reshape(N, Hy, Wy, F), 7.25, 40, pt, pl)
    np.testing.assert_array_equal(got, two_steps)
    assert (got[:, pt:pt + Hy, pl:pl + Wy, :F] > 40).any()


@pytest.mark.parametrize("call, args", [
    ("qgemm_u8s8_requant", lambda: (np.empty((4, 7), np.uint8), np.zeros((4, 8), np.uint8),
                                    np.zeros((2, 16, 4), np.int8), np.zeros(8, np.int32), np.ones(8, np.float32),
                                    np.zeros(8, np.float32), 0, 1.0, 0)),                     # q narrower than N
    ("qgemm_u8s8_requant", lambda: (np.empty((3, 8), np.uint8), np.zeros((4, 8), np.uint8),
                                    np.zeros((2, 16, 4), np.int8), np.zeros(8, np.int32), np.ones(8, np.float32),
                                    np.zeros(8, np.float32), 0, 1.0, 0)),                     # q has fewer rows
    ("qconv_u8s8_requant", lambda: (np.empty((2, 4, 5, 8), np.uint8), np.zeros((2, 6, 6, 4), np.uint8),
                                    np.zeros((9, 16, 4), np.int8), np.zeros(8, np.int32), np.ones(8, np.float32),
                                    np.zeros(8, np.float32), 0, 1.0, 0, 1, 1, 4, 4, 3, 3, 1, 1, 1, 1, False)),   # past the bottom
    ("qconv_u8s8_requant", lambda: (np.empty((2, 4, 4, 8), np.uint8), np.zeros((2, 6, 6, 4), np.uint8),
                                    np.zeros((9, 16, 4), np.int8), np.zeros(8, np.int32), np.ones(8, np.float32),
                                    np.zeros(8, np.float32), 0, 1.0, 256, 0, 0, 4, 4, 3, 3, 1, 1, 1, 1, False)),   # zero point
])
def test_requant_kernels_refuse_targets_they_would_write_past(call, args):
    """The epilogue-quantizing kernels check their target's shape, offset and zero point (a mismatch would
    write out of bounds)."""
    with pytest.raises(ValueError, match="cannot hold"):
        getattr(compiled("int8"), call)(*args())


@pytest.mark.parametrize("zero_point", [0, 77])
@pytest.mark.parametrize("W, Wp, pt, pl, extra", [(9, 7, 0, 0, 0), (12, 7, 0, 0, 0), (9, 9, 1, 1, 1), (7, 6, 2, 0, 3), (5, 9, 1, 2, 0),
                                                   (40, 38, 0, 0, 0)])
def test_quantize_pad_rows4_u8_matches_reference_exactly(W, Wp, pt, pl, extra, zero_point, rng):
    """Each pixel of a one-channel image with its next 3 as 4 channels: equals its twin, and pixel ``j`` channel
    ``c`` is :func:`quantize_pad_u8`'s pixel ``j + c`` (the zero point past the image)."""
    fast = compiled("int8")
    x = (rng.standard_normal((3, 9, W, 1)) * 2).astype(np.float32)
    shape = (3, 9 + pt + extra, Wp, 4)
    want = np.full(shape, 3, np.uint8)
    ref.quantize_pad_rows4_u8(want, x, 50.0, zero_point, pt, pl)
    got = twice(fast.quantize_pad_rows4_u8, lambda: (np.full(shape, 3, np.uint8), x, 50.0, zero_point, pt, pl))
    np.testing.assert_array_equal(got, want)
    padded = np.full((3, shape[1], max(Wp + 3, pl + W), 1), 5, np.uint8)
    ref.quantize_pad_u8(padded, x, 50.0, zero_point, pt, pl)
    for c in range(4):
        np.testing.assert_array_equal(want[..., c], padded[:, :, c:c + Wp, 0])


def test_quantize_pad_rows4_u8_refuses_what_it_cannot_write():
    with pytest.raises(ValueError, match="cannot hold"):
        compiled("int8").quantize_pad_rows4_u8(np.empty((2, 5, 5, 4), np.uint8), np.zeros((2, 5, 5, 2), np.float32),
                                               1.0, 0, 0, 0)
