"""Depthwise 3x3 convolution, forward + backward (input and weight gradients): minicnn vs PyTorch CPU.

Run ``python benchmarks/bench_depthwise.py [--rounds R] [--threads 1 2] [--backends cython numba]``.
For each shape (batch 64, 32 and 64 px maps, 32-128 channels, padding 1, stride 1
("same") and one stride-2 downsampling shape, float32) it first checks every contender's output and both gradients against
the NumPy reference, then times one training step of the layer's convolution
in interleaved rounds (one step of each contender per round) with 1 and 2
threads, and prints the medians (ms) and the ratio torch / minicnn (> 1:
minicnn is faster; the target is >= 2).

* minicnn: the kernels ``DepthwiseConv2D`` trains with: ``depthwise_conv2d_bias_act_forward``
  (identity, zero bias) and ``depthwise_conv2d_bias_act_backward`` (the
  weight and input gradients in one pass over ``dy``) on NHWC arrays, outputs
  and workspace preallocated (as a layer keeps them), inside
  :func:`minicnn.threads.thread_limits`. With ``--unfused`` also the three
  separate kernels ``depthwise_conv2d_forward``, ``depthwise_conv2d_backward_input``,
  ``depthwise_conv2d_backward_weight`` ("cython unfused"), side by side.
* torch: ``conv2d(x, w, stride, padding=1, groups=C)`` then ``backward`` for the
  gradients of ``x`` and ``w`` (no bias on either side), with
  ``torch.set_num_threads``, on the same data in two memory formats: the
  NHWC array seen as a channels-last tensor (``torch nhwc``, no copy) and a
  contiguous NCHW copy (``torch nchw``, PyTorch's default). The ratio is
  against the faster of the two in each cell.

The machine may be shared: the load average is printed before and after;
compare ratios (measured side by side), and medians only from quiet runs.
"""

import argparse
import os
import time

import numpy as np

from minicnn.backend.reference import depthwise as ref
from minicnn.backend.tuning import depthwise_backward_workspace_length
from minicnn.threads import thread_limits

#         N   H   W    C  stride (padding 1, dilation 1: "same" at stride 1, MobileNet's downsampling at 2)
SHAPES = [(64, 32, 32, 32, 1), (64, 32, 32, 64, 1), (64, 32, 32, 128, 1), (64, 64, 64, 32, 1), (64, 64, 64, 64, 1),
          (64, 64, 64, 32, 2)]


def _label(shape):
    return "x".join(map(str, shape[:4])) + "/" + str(shape[4])


def _geometry(stride):
    return (stride, stride, 1, 1, 1, 1)


def _problem(N, H, W, C, stride, rng):
    x = rng.standard_normal((N, H, W, C), dtype=np.float32)
    w = rng.standard_normal((3, 3, C), dtype=np.float32) / np.float32(3)
    dy = rng.standard_normal((N, (H - 1) // stride + 1, (W - 1) // stride + 1, C), dtype=np.float32)
    return x, w, dy


def _minicnn_step(module, x, w, dy, geometry):
    """A closure running the layer's training kernels (the forward with its epilogue, identity and a zero bias,
    then the fused backward, no bias gradient as torch's side) into preallocated arrays and a kept workspace;
    returns (y, dx, dw)."""
    y, dx, dw = np.empty_like(dy), np.empty_like(x), np.empty_like(w)
    b, no_db = np.zeros(x.shape[3], x.dtype), np.empty(0, x.dtype)
    work = np.empty(depthwise_backward_workspace_length(*x.shape, *w.shape[:2], *dy.shape[1:3], 2), x.dtype)

    def step():
        module.depthwise_conv2d_bias_act_forward(y, x, w, b, 0, 0.0, *geometry)
        module.depthwise_conv2d_bias_act_backward(dx, dw, no_db, work, dy, y, x, w, 0, 0.0, *geometry)
        return y, dx, dw

    return step


def _minicnn_unfused_step(module, x, w, dy, geometry):
    """A closure running the three separate kernels (forward, input gradient, weight gradient); returns (y, dx, dw)."""
    y, dx, dw = np.empty_like(dy), np.empty_like(x), np.empty_like(w)

    def step():
        module.depthwise_conv2d_forward(y, x, w, *geometry)
        module.depthwise_conv2d_backward_input(dx, dy, w, *geometry)
        module.depthwise_conv2d_backward_weight(dw, dy, x, *geometry)
        return y, dx, dw

    return step


def _torch_step(torch, x, w, dy, stride, channels_last):
    """One ``conv2d(groups=C)`` forward + backward; returns (y, dx, dw) as NHWC / (KH, KW, C) arrays."""
    C = x.shape[3]
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    dyt = torch.from_numpy(dy).permute(0, 3, 1, 2)
    if not channels_last:
        xt, dyt = xt.contiguous(), dyt.contiguous()
    xt.requires_grad_(True)
    wt = torch.from_numpy(np.ascontiguousarray(w.transpose(2, 0, 1)[:, None])).requires_grad_(True)

    def step():
        xt.grad = wt.grad = None
        yt = torch.nn.functional.conv2d(xt, wt, stride=stride, padding=1, groups=C)
        yt.backward(dyt)
        return yt, xt.grad, wt.grad

    def as_numpy(result):
        yt, dxt, dwt = result
        return (yt.detach().permute(0, 2, 3, 1).numpy(), dxt.permute(0, 2, 3, 1).numpy(),
                dwt[:, 0].permute(1, 2, 0).numpy())

    return step, as_numpy


def _check(got, x, w, dy, geometry):
    """Output and both gradients against the NumPy reference (float32; only the summation order differs)."""
    want = [np.empty_like(dy), np.empty_like(x), np.empty_like(w)]
    ref.depthwise_conv2d_forward(want[0], x, w, *geometry)
    ref.depthwise_conv2d_backward_input(want[1], dy, w, *geometry)
    ref.depthwise_conv2d_backward_weight(want[2], dy, x, *geometry)
    for name, g, r in zip(("y", "dx", "dw"), got, want):
        scale = max(float(np.abs(r).max()), 1.0)
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4 * scale, err_msg=name)


def bench(shape, threads, rounds, contenders):
    """Median ms per contender over ``rounds`` interleaved rounds with ``threads`` threads."""
    import torch

    stride = shape[-1]
    geometry = _geometry(stride)
    x, w, dy = _problem(*shape, np.random.default_rng(0))
    steps = {name: ((_minicnn_unfused_step if name.endswith(" unfused") else _minicnn_step)(module, x, w, dy,
                                                                                            geometry),
                    lambda result: result)
             for name, module in contenders.items()}
    for name, channels_last in (("torch nhwc", True), ("torch nchw", False)):
        steps[name] = _torch_step(torch, x, w, dy, stride, channels_last)
    times = {name: [] for name in steps}
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with thread_limits(threads):
            for step, as_numpy in steps.values():   # correctness first, and warm-up (first touch, JIT)
                _check(as_numpy(step()), x, w, dy, geometry)
                step()
            for _ in range(rounds):
                for name, (step, _) in steps.items():
                    t0 = time.perf_counter()
                    step()
                    times[name].append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(previous)
    return {name: 1e3 * float(np.median(t)) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11, help="interleaved timing rounds per cell")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to time")
    parser.add_argument("--backends", nargs="+", default=["cython", "numba"], choices=["cython", "numba"],
                        help="minicnn backends to time")
    parser.add_argument("--shapes", nargs="+", default=None,
                        help="time only these shapes, written as printed (e.g. 64x32x32x64/1)")
    parser.add_argument("--unfused", action="store_true",
                        help="also time each backend's three separate kernels (forward, dx, dw: 'B unfused')")
    args = parser.parse_args()
    import importlib

    contenders = {name: importlib.import_module(f"minicnn.backend.{module}") for name, module in
                  (("cython", "cython_kernels"), ("numba", "numba_kernels")) if name in args.backends}
    if args.unfused:
        contenders.update({f"{name} unfused": module for name, module in list(contenders.items())})
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"medians of {args.rounds} interleaved rounds (ms), 3x3, padding 1, float32, forward + dx + dw")
    names = list(contenders) + ["torch nhwc", "torch nchw"]
    width = {n: max(11, len(n)) for n in names}
    ratio_width = {n: max(13, len(n) + 6) for n in contenders}
    print(f"{'NxHxWxC/stride':>17s} {'T':>2s} " + " ".join(f"{n:>{width[n]}s}" for n in names)
          + " " + " ".join(f"{'torch/' + n:>{ratio_width[n]}s}" for n in contenders))
    shapes = SHAPES if args.shapes is None else [s for s in SHAPES if _label(s) in args.shapes]
    if args.shapes is not None and len(shapes) != len(set(args.shapes)):
        parser.error(f"--shapes must be among {[_label(s) for s in SHAPES]}; received {args.shapes}")
    for shape in shapes:
        for threads in args.threads:
            ms = bench(shape, threads, args.rounds, contenders)
            best_torch = min(ms["torch nhwc"], ms["torch nchw"])
            print(f"{_label(shape):>17s} {threads:2d} "
                  + " ".join(f"{ms[n]:{width[n]}.2f}" for n in names)
                  + " " + " ".join(f"{best_torch / ms[n]:{ratio_width[n]}.2f}" for n in contenders), flush=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
