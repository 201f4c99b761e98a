"""Per-thread workspaces on a cache line or 16 bytes past one: the kernels that hand each thread a slot, 1 and 2 threads.

``python benchmarks/bench_workspace_alignment.py [--rounds 61] [--threads 1,2]``: the Winograd conv forward
(``work (slots, L)``, one row per thread), its weight gradient and the im2col weight gradient (``[G partial
gradients | slot per thread]``), 3x3 pad 1, float32, on the ResNet-8 16 -> 16 (32x32) and 64 -> 64 (8x8) and the
3-channel grid's 16 -> 32 (14x14) shapes, batch 64. Each call gets the same workspace length twice: starting on a
64-byte line (what ``Layer._buffer`` hands out) and 16 bytes past one (where NumPy puts a large array), so a slot
boundary that is a multiple of 16 floats shares a line between two threads in the second. The two are timed in
interleaved rounds in one process; minima and medians in ms (on a loaded machine the minima: a two-thread call
whose worker was descheduled takes milliseconds more). The outputs of the two runs are compared bit for bit.

``--zoo``: the same comparison end to end, on the zoo's ResNet-8 and MobileNet nets (``bench_zoo.py``, 32x32x3,
batch 64): two copies of a net, one whose layer workspaces were all allocated 16 bytes past a line, one on lines
(``Layer._buffer``), inference and a training step at 1 and 2 threads in interleaved rounds.
"""

import argparse
import time

import numpy as np

from minicnn.backend import cython_kernels as cy
from minicnn.backend import tuning
from minicnn.threads import thread_limits

RELU = 1
#: (label, batch, map side, input channels, output channels).
SHAPES = (("ResNet-8 16->16 32px", 64, 32, 16, 16), ("ResNet-8 64->64 8px", 64, 8, 64, 64),
          ("grid 16->32 14px", 64, 14, 16, 32))
#: Byte offsets from a 64-byte line compared: on the line, and NumPy's offset for large arrays.
OFFSETS = (0, 16)


def workspace(size, offset, dtype=np.float32):
    """An array of ``size`` elements of ``dtype`` starting ``offset`` bytes past a 64-byte line."""
    itemsize = np.dtype(dtype).itemsize
    raw = np.empty(size * itemsize + 128, dtype=np.uint8)
    start = (offset - raw.ctypes.data) % 64
    return raw[start:start + size * itemsize].view(dtype)


def _cases(N, H, C, F, rng):
    x = rng.standard_normal((N, H, H, C), dtype=np.float32)
    w = rng.standard_normal((3, 3, C, F), dtype=np.float32)
    b = rng.standard_normal(F, dtype=np.float32)
    dy = rng.standard_normal((N, H, H, F), dtype=np.float32)
    slots = 2
    L = tuning.winograd_workspace_length(H + 2, H + 2, C, F, H, H)
    yield ("Winograd forward", (N, H, H, F), slots * L,
           lambda out, work: cy.conv2d_winograd_bias_act_forward(out, x, w, b, work.reshape(slots, L), RELU, 0.0,
                                                                 1, 1))
    yield ("Winograd weight grad", (3, 3, C, F), tuning.conv_winograd_wgrad_workspace_length(N, C, F, H, H, slots),
           lambda out, work: cy.conv2d_winograd_backward_weight(out, dy, x, work, 1, 1))
    yield ("im2col weight grad", (3, 3, C, F),
           tuning.conv_wgrad_workspace_length(N, H, H, C, 3, 3, F, H, H, slots),
           lambda out, work: cy.conv2d_backward_weight_from_input(out, dy, x, work, 1, 1, 1, 1, 1, 1))


def _past_line(size, dtype):
    """``Layer._buffer``'s store placed as NumPy places a large array: 16 bytes past a 64-byte line."""
    return workspace(size, 16, dtype)


def zoo(rounds, teams):
    """Both placements of every workspace of the zoo nets, inference and a training step (min / median ms)."""
    from bench_zoo import NETS, _data, minicnn_model

    from minicnn.layers import base
    from minicnn.training import train_step

    on_line = base._aligned_empty
    X, y = _data(64)
    for name, layers in NETS.items():
        clfs = {}
        for placement, allocate in (("@16", _past_line), ("@0", on_line)):
            clf = clfs[placement] = minicnn_model(layers, len(X))
            clf.network_.release_buffers()
            base._aligned_empty = allocate   # the workspaces are created on the first calls
            try:
                for team in teams:
                    with thread_limits(team):
                        clf.network_.forward(X)
                        train_step(clf.network_, clf._loss_function, clf._optimizer, X, y)
            finally:
                base._aligned_empty = on_line
        for what in ("inference", "training step"):
            cells = []
            for team in teams:
                times = {placement: [] for placement in clfs}
                with thread_limits(team):
                    for r in range(rounds):
                        for placement in (list(clfs) if r % 2 else list(clfs)[::-1]):
                            clf = clfs[placement]
                            start = time.perf_counter()
                            if what == "inference":
                                clf.network_.forward(X)
                            else:
                                train_step(clf.network_, clf._loss_function, clf._optimizer, X, y)
                            times[placement].append(time.perf_counter() - start)
                cells += [f"{team}t {p}: {1e3 * min(t):.2f} / {1e3 * np.median(t):.2f}" for p, t in times.items()]
            print(f"{name:22} {what:21}", "  ".join(cells), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=61)
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--zoo", action="store_true", help="the zoo nets end to end instead of the kernels")
    args = p.parse_args(argv)
    teams = [int(t) for t in args.threads.split(",")]
    if args.zoo:
        print(f"batch 64, min / median of {args.rounds} interleaved rounds (ms); workspaces @16 or @0 bytes from a line")
        zoo(args.rounds, teams)
        return
    rng = np.random.default_rng(0)
    print(f"float32, min / median of {args.rounds} interleaved rounds (ms); workspace offset from a 64-byte line")
    for label, N, H, C, F in SHAPES:
        for name, out_shape, size, call in _cases(N, H, C, F, rng):
            works = {off: workspace(size, off) for off in OFFSETS}
            outs = {off: np.full(out_shape, np.nan, np.float32) for off in OFFSETS}
            cells = []
            for team in teams:
                with thread_limits(team):
                    times = {off: [] for off in OFFSETS}
                    for r in range(args.rounds + 1):
                        for off in (OFFSETS if r % 2 else OFFSETS[::-1]):
                            start = time.perf_counter()
                            call(outs[off], works[off])
                            if r:   # round 0 warms up
                                times[off].append(time.perf_counter() - start)
                    if not np.array_equal(outs[0], outs[16]):
                        raise SystemExit(f"{label} {name}: the two workspaces gave different bits")
                cells += [f"{team}t @{off}: {1e3 * min(t):.3f} / {1e3 * np.median(t):.3f}" for off, t in times.items()]
            print(f"{label:22} {name:21}", "  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
