"""Every compiled kernel at one instruction-set level: against the NumPy reference, and 1 vs 2 threads bit-identical.

Run in a fresh process by ``tests/test_dispatch.py`` as
``MINICNN_CPU_LEVEL=<level> python tests/level_check.py <level>`` (the level
is chosen once per process, at import). The contract checked, per machine and
level: each kernel's output (pre-filled with NaN) agrees with the reference
within the tolerances of ``tests/test_kernels.py`` (bit for bit where the
reference is exact: dropout masks, the Adam update, the augmentation copy),
and the same call on 1 and on 2 OpenMP threads gives the same bits. Shapes are
large enough that the kernels really run on two threads. Prints one line per
kernel and ``ok <level>`` at the end.
"""

import sys

import numpy as np

from minicnn.backend import cython_kernels as ck
from minicnn.backend import isa, tuning
from minicnn.backend import reference as ref
from minicnn.backend.reference.augment import augment_batch as ref_augment_batch
from minicnn.backend.hash_rng import dropout_key, keep_threshold
from minicnn.threads import thread_limits

#: Kernels compared bit for bit with the reference (no rounding differs: selects, copies, the reference's order).
EXACT = {"dropout_forward", "dropout_backward", "spatial_dropout_forward", "spatial_dropout_backward",
         "adam_update", "augment_batch", "softmax_shift_rows", "softmax_normalize_rows"}
#: Exported names that are not kernels (workspace sizes, checked by tests/test_tuning.py).
NOT_KERNELS = {"conv_wgrad_workspace_length", "conv_winograd_wgrad_workspace_length", "winograd_workspace_length",
               "depthwise_backward_workspace_length"}


def _conv(rng, dtype, N, H, W, C, F):
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    w = (rng.standard_normal((3, 3, C, F)) / (3 * C ** 0.5)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    return x, w, b


def cases(dtype, slots):
    """``{kernel: [make, ...]}``: ``make()`` returns fresh arguments (the outputs first, NaN-filled) and the
    number of output arguments; the NumPy reference takes the same arguments."""
    rng = np.random.default_rng(7)
    nan = lambda shape, t=dtype: np.full(shape, np.nan, t)  # noqa: E731
    N, H, W, C, F = 16, 14, 13, 8, 32
    Ho, Wo = H - 2, W - 2
    x, w, b = _conv(rng, dtype, N, H, W, C, F)
    col_shape = (N, Ho * Wo, 9 * C)
    col = np.empty(col_shape, dtype)
    ref.conv2d_forward(np.empty((N, Ho, Wo, F), dtype), x, w, col, 1, 1, 0, 0, 1, 1)
    dy = rng.standard_normal((N, Ho, Wo, F)).astype(dtype)
    wlen = tuning.winograd_workspace_length(H, W, C, F, Ho, Wo)
    glen = tuning.conv_wgrad_workspace_length(N, H, W, C, 3, 3, F, Ho, Wo, slots)
    gwlen = tuning.conv_winograd_wgrad_workspace_length(N, C, F, Ho, Wo, slots)
    uw = np.empty((4, 4, C, F), dtype)
    ref.winograd_weight_transform(uw, w)
    first = {c: _conv(rng, dtype, 32, 28, 27, c, 32) for c in (1, 3)}   # the shallow first layers: direct paths
    y = rng.standard_normal((N, 12, 10, F)).astype(dtype)
    yp, am = np.empty((N, 6, 5, F), dtype), np.empty((N, 6, 5, F), np.int64)
    ref.maxpool2d_forward(yp, am, y, 2, 2, 2, 2, 0, 0)
    z = y.reshape(-1, F)
    flat = rng.standard_normal(300_001).astype(dtype)
    key, thr = dropout_key(3, 1, 4), keep_threshold(0.3)
    p = rng.standard_normal(300_001).astype(dtype)
    m, v = rng.standard_normal(p.size).astype(dtype), np.abs(rng.standard_normal(p.size)).astype(dtype)
    a, wd = rng.standard_normal((64, 2000)).astype(dtype), (rng.standard_normal((2000, 40)) / 40).astype(dtype)
    bd = rng.standard_normal(40).astype(dtype)
    xs, ws = rng.standard_normal((8, 2731)).astype(dtype), (rng.standard_normal((2731, 97)) / 52).astype(dtype)
    bs = rng.standard_normal(97).astype(dtype)
    logits, labels = rng.standard_normal((3000, 10)).astype(dtype), (np.arange(3000) % 10).astype(np.int64)
    images, index = rng.random((80, 28, 28, 3)).astype(dtype), rng.permutation(80)[:64].astype(np.int64)
    wd3 = rng.standard_normal((3, 3, C)).astype(dtype)   # depthwise (KH, KW, C), stride 2, "same" padding
    x16, wd16, bd16 = (rng.standard_normal(s).astype(dtype) for s in ((N, H, W, 16), (3, 3, 16), 16))
    Hd, Wd = (H + 1) // 2, (W + 1) // 2
    w16 = (rng.standard_normal((3, 3, 16, 32)) / 12).astype(dtype)   # the register-tile Winograd: 16 -> 32
    u16 = np.empty((4, 4, 16, 32), dtype)
    ref.winograd_weight_transform(u16, w16)
    s16 = rng.standard_normal((N, H, W, 32)).astype(dtype)
    dyd = rng.standard_normal((N, Hd, Wd, C)).astype(dtype)
    yd, y16, dy16 = np.empty(dyd.shape, dtype), np.empty(x16.shape, dtype), rng.standard_normal(x16.shape).astype(dtype)
    ref.depthwise_conv2d_bias_act_forward(yd, x, wd3, b[:C], 2, 0.1, 2, 2, 1, 1, 1, 1)
    ref.depthwise_conv2d_bias_act_forward(y16, x16, wd16, bd16, 1, 0.0, 1, 1, 1, 1, 1, 1)
    dwork = {c: tuning.depthwise_backward_workspace_length(N, H, W, c, 3, 3, h, w_, slots) for c, h, w_ in
             ((C, Hd, Wd), (16, H, W))}
    gamma, beta = (1 + 0.1 * rng.standard_normal(F)).astype(dtype), rng.standard_normal(F).astype(dtype)
    bmean, bvar = z.mean(axis=0).astype(dtype), z.var(axis=0).astype(dtype)
    ybn = np.empty_like(z)
    ref.batchnorm_inference_forward(ybn, z, bmean, bvar, gamma, beta, 1e-5, 2, 0.1)
    dybn = rng.standard_normal(z.shape).astype(dtype)
    wb = (rng.standard_normal((3, 3, 16, 40)) / 12).astype(dtype)   # the blocked conv: 16 -> 40, stride 2
    return {
        "batchnorm_inference_forward": lambda: ((nan(z.shape), z, bmean, bvar, gamma, beta, 1e-5, 2, 0.1), 1),
        "batchnorm_forward": lambda: ((nan(z.shape), nan(F), nan(F), np.zeros((4, 2, F)), z, gamma, beta, 1e-5,
                                       2, 0.1), 3),
        "batchnorm_backward": lambda: ((nan(z.shape), nan(F), nan(F), np.zeros((4, 2, F)), dybn, ybn, z, bmean, bvar,
                                        gamma, 1e-5, 2, 0.1), 3),
        "depthwise_conv2d_forward": lambda: ((nan((N, Hd, Wd, C)), x, wd3, 2, 2, 1, 1, 1, 1), 1),
        "depthwise_conv2d_bias_act_forward": lambda: ((nan((N, Hd, Wd, C)), x, wd3, b[:C], 2, 0.1,
                                                       2, 2, 1, 1, 1, 1), 1),
        "depthwise_conv2d_backward_input": lambda: ((nan(x.shape), dyd, wd3, 2, 2, 1, 1, 1, 1), 1),
        "depthwise_conv2d_backward_weight": lambda: ((nan(wd3.shape), dyd, x, 2, 2, 1, 1, 1, 1), 1),
        "depthwise_conv2d_bias_act_backward": [   # stride 2, leaky relu; stride 1 "same" on 16 channels, relu
            lambda: ((nan(x.shape), nan(wd3.shape), nan(C), nan(dwork[C]), dyd, yd, x, wd3, 2, 0.1, 2, 2, 1, 1, 1, 1),
                     3),
            lambda: ((nan(x16.shape), nan(wd16.shape), nan(16), nan(dwork[16]), dy16, y16, x16, wd16, 1, 0.0,
                      1, 1, 1, 1, 1, 1), 3)],
        "conv2d_forward": lambda: ((nan((N, Ho, Wo, F)), x, w, nan(col_shape), 1, 1, 0, 0, 1, 1), 2),
        "conv2d_bias_act_forward": lambda: ((nan((N, Ho, Wo, F)), x, w, b, nan(col_shape), 2, 0.1,
                                             1, 1, 0, 0, 1, 1), 1),
        "conv2d_backward_input": lambda: ((nan(x.shape), nan(col_shape), dy, w, 1, 1, 0, 0, 1, 1), 1),
        "conv2d_backward_weight": lambda: ((nan(w.shape), dy, col), 1),
        "conv2d_direct_bias_act_maxpool2_forward": [
            lambda c=c: ((nan((32, 13, 12, 32)), *first[c], 1, 0.0, 1, 1, 0, 0, 1, 1), 1) for c in first],
        "conv2d_direct_bias_act_forward": [
            lambda c=c: ((nan((32, 14, 14, 32)), *first[c], 2, 0.1, 2, 2, 1, 0, 1, 1), 1) for c in first],
        "conv2d_winograd_bias_act_forward": lambda: ((nan((N, Ho, Wo, F)), x, w, b, np.empty((slots, wlen), dtype),
                                                      2, 0.1, 0, 0), 1),
        "conv2d_winograd_bias_add_act_forward": [
            lambda v=v: ((nan((N, Ho, Wo, F)), x, v, b, dy, np.empty((slots, wlen), dtype), 1, 0.0, 0, 0), 1)
            for v in (w, uw)],   # the weights, and their transform
        "winograd_weight_transform": lambda: ((nan(uw.shape), w), 1),
        "conv2d_winograd_bias_act_maxpool2_forward": lambda: (
            (nan((N, Ho // 2, Wo // 2, F)), x, w, b, np.empty((slots, wlen), dtype), 1, 0.0, 0, 0, Ho, Wo), 1),
        "conv2d_backward_weight_from_input": lambda: ((nan(w.shape), dy, x, np.empty(glen, dtype),
                                                       1, 1, 0, 0, 1, 1), 1),
        "conv2d_winograd_backward_weight": lambda: ((nan(w.shape), dy, x, nan(gwlen), 0, 0), 1),
        "maxpool2d_forward": lambda: ((nan(yp.shape), np.full(am.shape, -1, np.int64), y, 2, 2, 2, 2, 0, 0), 2),
        "maxpool2d_backward": lambda: ((nan(y.shape), yp, am), 1),
        "avgpool2d_forward": lambda: ((nan(yp.shape), y, 2, 2, 2, 2, 0, 0), 1),
        "avgpool2d_backward": lambda: ((nan(y.shape), yp, 2, 2, 2, 2, 0, 0), 1),
        "bias_act_forward": lambda: ((nan(z.shape), z, b, 2, 0.1), 1),
        "bias_act_backward": lambda: ((nan(z.shape), nan(b.shape), z, np.abs(z), 2, 0.1), 2),
        "dropout_forward": lambda: ((nan(flat.shape), flat, *key, thr, 1 / 0.7), 1),
        "dropout_backward": lambda: ((nan(flat.shape), flat, *key, thr, 1 / 0.7), 1),
        "spatial_dropout_forward": lambda: ((nan(y.shape).reshape(N, -1, F), y.reshape(N, -1, F), *key, thr,
                                             1 / 0.7), 1),
        "spatial_dropout_backward": lambda: ((nan(y.shape).reshape(N, -1, F), y.reshape(N, -1, F), *key, thr,
                                              1 / 0.7), 1),
        "adam_update": lambda: ((p.copy(), m.copy(), v.copy(), flat, 0.01, 0.9, 0.999, 0.1, 1e-8, 0.999), 3),
        "matmul": [lambda: ((nan((64, 40)), a, wd, 0, 0), 1)] + [
            lambda m=m: ((nan((m, 97)), xs[:m], ws, 0, 0), 1) for m in (1, 3, 8)],
        "dense_bias_act_forward": [lambda: ((nan((64, 40)), a, wd, bd, 2, 0.1), 1)] + [   # 1-16 rows: stream_gemm.h
            lambda m=m, act=act: ((nan((m, 97)), xs[:m], ws, bs, act, 0.1), 1) for m in (1, 3, 8) for act in (1, 4)],
        "conv2d_winograd16_bias_act_forward": [
            lambda act=act: ((nan((N, H, W, 32)), x16, u16, bd[:32].copy(), act, 0.1, 1, 1), 1) for act in range(5)] + [
            lambda: ((nan((N, H - 2, W - 2, 32)), x16, u16, bd[:32].copy(), 2, 0.1, 0, 0), 1)],
        "conv2d_winograd16_bias_add_act_forward": [
            lambda act=act: ((nan((N, H, W, 32)), x16, u16, bd[:32].copy(), s16, act, 0.1, 1, 1), 1)
            for act in range(5)],
        "conv2d_blocked_bias_act_forward": [
            lambda: ((nan((32, 28, 27, 32)), *first[3], 2, 0.1, 1, 1, 1, 1, 1, 1), 1),
            lambda: ((nan((N, Hd, Wd, 40)), x16, wb, bd, 1, 0.0, 2, 2, 1, 1, 1, 1), 1),
            lambda: ((nan((N, Hd, Wd, 40)), x16, wb[1:2, 1:2].copy(), bd, 3, 0.0, 2, 2, 0, 0, 1, 1), 1)],
        "pointwise_conv2d_bias_act_forward": lambda: ((nan((N * 14 * 13, 40)), x.reshape(-1, C), wd[:C], bd, 2, 0.1),
                                                      1),
        "separable_conv2d_bias_act_forward": lambda: ((nan((N, Hd, Wd, 40)), x16, wd16, bd16, 1, 0.0, wd[:16], bd, 2,
                                                       0.1, 2, 2, 1, 1, 1, 1), 1),
        "softmax_xent": lambda: ((nan(logits.shape), logits, labels), 1),
        "softmax_shift_rows": lambda: ((nan(logits.shape, np.float64), logits), 1),
        "softmax_normalize_rows": lambda: ((np.abs(logits).astype(np.float64) + 0.5,), 1),
        "augment_batch": lambda: ((nan((64, 28, 28, 3)), images, index, 9, 2, 3, 2, 1), 1),
    }


#: Kernels that take only one dtype (the float64 prediction softmax passes; the float32 separable inference).
FLOAT64_ONLY = {"softmax_shift_rows", "softmax_normalize_rows"}
FLOAT32_ONLY = {"separable_conv2d_bias_act_forward", "conv2d_winograd16_bias_act_forward",
                "conv2d_winograd16_bias_add_act_forward"}


def _reference(name):
    return ref_augment_batch if name == "augment_batch" else getattr(ref, name)


def _assert_close(got, want, name):
    if got.dtype.kind != "f":
        np.testing.assert_array_equal(got, want, err_msg=name)
    elif name in EXACT:
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8), err_msg=name)
    else:
        tol = 2e-5 if got.dtype == np.float32 else 1e-12
        scale = max(float(np.abs(want).max(initial=0.0)), 1.0)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, err_msg=name)


def check(level):
    assert ck.CPU_LEVEL == level, (ck.CPU_LEVEL, level)
    for module, loaded in ck.MODULE_LEVELS.items():
        wanted = [lv for lv in isa.levels_of(module) if isa.LEVELS.index(lv) <= isa.LEVELS.index(level)][-1]
        assert loaded == wanted, (module, loaded, wanted)
        for kernel in ck.EXPORTS[module]:
            assert getattr(ck, kernel).__module__ == isa.module_name(module, loaded), (kernel, loaded)
    exported = {k for names in ck.EXPORTS.values() for k in names} - NOT_KERNELS
    for dtype in (np.float32, np.float64):
        table = cases(dtype, slots=2)
        assert set(table) == exported, sorted(set(table) ^ exported)
        for name, make in ((n, mk) for n, m in table.items() for mk in (m if isinstance(m, list) else [m])):
            if (name in FLOAT64_ONLY and dtype != np.float64) or (name in FLOAT32_ONLY and dtype != np.float32):
                continue
            want, n_out = make()
            _reference(name)(*want)
            runs = []
            for threads in (1, 2):
                args, _ = make()
                with thread_limits(threads):
                    getattr(ck, name)(*args)
                runs.append(args[:n_out])
            for got, expected, again in zip(runs[0], want[:n_out], runs[1]):
                _assert_close(got, expected, f"{name} {dtype.__name__} at {level}")
                np.testing.assert_array_equal(again.view(np.uint8), got.view(np.uint8),
                                              err_msg=f"{name} {dtype.__name__} at {level}: 1 vs 2 threads")
            print(f"{level} {name} {dtype.__name__} ok", flush=True)
    check_feature_modules(level)
    check_pointwise_route(level)
    check_blocked_route(level)
    check_winograd16_route(level)
    print(f"ok {level}")


def check_pointwise_route(level):
    """The layers run the compiled pointwise product (and the fused separable block) only at the levels where it
    was measured faster than the dense product (``minicnn.layers.conv.POINTWISE_LEVELS``)."""
    from minicnn.backend import get_backend
    from minicnn.layers.conv import POINTWISE_LEVELS, pointwise_kernel

    runs = pointwise_kernel(get_backend("cython")) is not None
    assert runs == (ck.MODULE_LEVELS["pointwise"] in POINTWISE_LEVELS), (level, ck.MODULE_LEVELS["pointwise"])
    print(f"{level} pointwise route {'on' if runs else 'off'} ok", flush=True)


def check_feature_modules(level):
    """The reduced-precision kernels (``isa.FEATURE_MODULES``; all of them are tested in
    tests/test_quantize_kernels.py): refused below their level, and at it one conv + pool product of each against
    its NumPy twin (int8 bit for bit, bf16 within 1e-4 of the largest value) and on 1 vs 2 threads bit-identical."""
    from minicnn.backend import lowp

    rng = np.random.default_rng(3)
    for precision, family in lowp.MODULES.items():
        if lowp.missing(precision):
            print(f"{level} {precision}: the CPU lacks {lowp.missing(precision)}", flush=True)
            continue
        if isa.LEVELS.index(level) < isa.LEVELS.index(isa.FEATURE_MODULES[family][0]):
            try:
                lowp.kernels(precision)
            except lowp.UnsupportedPrecisionError:
                print(f"{level} {precision} refused ok", flush=True)
                continue
            raise AssertionError(f"precision={precision!r} loaded at level {level}")
        fast, twin = lowp.kernels(precision), lowp.kernels(precision, "numpy")
        xp = rng.integers(0, 120, (16, 14, 13, 8)).astype(np.uint8 if precision == "int8" else np.uint16)
        F, geometry = 64, (12, 11, 3, 3, 1, 1, 1, 1, True)
        if precision == "int8":
            w = rng.integers(-127, 128, (72, F)).astype(np.int8)
            args = (twin.pack_int8(w), np.zeros(F, np.int32), np.full(F, 1e-3, np.float32), np.ones(F, np.float32), 1)
            name = "qconv_u8s8_bias_act"
        else:
            w = twin.bf16_bits(rng.standard_normal((72, F)).astype(np.float32))
            args, name = (twin.pack_bf16(w), np.ones(F, np.float32), 1), "conv_bf16_bias_act"
        want = np.full((16 * 6 * 5, F), np.nan, np.float32)
        getattr(twin, name)(want, xp, *args, *geometry)
        runs = []
        for threads in (1, 2):
            got = np.full_like(want, np.nan)
            with thread_limits(threads):
                getattr(fast, name)(got, xp, *args, *geometry)
            runs.append(got)
        np.testing.assert_array_equal(runs[0].view(np.uint8), runs[1].view(np.uint8), err_msg=f"{name}: threads")
        tol = 0 if precision == "int8" else 1e-4
        np.testing.assert_allclose(runs[0], want, rtol=tol, atol=tol * float(np.abs(want).max()), err_msg=name)
        print(f"{level} {name} ok", flush=True)


def check_blocked_route(level):
    """The layers run the compiled blocked conv only at the levels of ``minicnn.layers.conv.BLOCKED_LEVELS``; its
    baseline build (no fused multiply-add) gives the NumPy twin's bits (identity, relu, leaky relu)."""
    from minicnn.backend import get_backend
    from minicnn.layers.conv import BLOCKED_LEVELS, blocked_kernel

    loaded = ck.MODULE_LEVELS["blocked_conv"]
    runs = blocked_kernel(get_backend("cython")) is not None
    assert runs == (loaded in BLOCKED_LEVELS), (level, loaded)
    if loaded == "baseline":
        for make in cases(np.float32, slots=2)["conv2d_blocked_bias_act_forward"]:
            (want, *args), _ = make()
            if args[3] > 2:   # tanh, sigmoid: NumPy's and the C library's functions may differ in the last bit
                continue
            got = np.full_like(want, np.nan)
            ref.conv2d_blocked_bias_act_forward(want, *args)
            ck.conv2d_blocked_bias_act_forward(got, *args)
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32), err_msg="blocked at baseline")
    print(f"{level} blocked route {'on' if runs else 'off'} ok", flush=True)


def check_winograd16_route(level):
    """The layers run the register-tile Winograd only at the levels of ``minicnn.layers.conv.WINOGRAD16_LEVELS``
    (both kernels)."""
    from minicnn.backend import get_backend
    from minicnn.layers.conv import WINOGRAD16_ADD_KERNEL, WINOGRAD16_LEVELS, winograd16_kernel

    loaded = ck.MODULE_LEVELS["winograd16"]
    for name in ("conv2d_winograd16_bias_act_forward", WINOGRAD16_ADD_KERNEL):
        runs = winograd16_kernel(get_backend("cython"), name) is not None
        assert runs == (loaded in WINOGRAD16_LEVELS), (level, loaded, name)
    print(f"{level} winograd16 route {'on' if runs else 'off'} ok", flush=True)


if __name__ == "__main__":
    check(sys.argv[1])

