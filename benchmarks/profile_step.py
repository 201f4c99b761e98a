"""Where a training step and an inference batch spend their time, layer by layer (medians, microseconds).

    python benchmarks/profile_step.py --model mnist --threads 2 --steps 30
    python benchmarks/profile_step.py --zoo "ResNet-8 style" --threads 1 2 --steps 9 --by-kernel

Runs the reference model of ``minicnn.tools.bench`` (built through ``CNNClassifier`` as ``fit`` builds it)
inside ``thread_limits(threads)`` and times each layer's forward and backward, the loss and the
optimizer separately, step after step; then the inference forward (``training=False``) of one
training-size batch and of one sample. The sum of the parts is close to a whole step (the timer
calls add ~1 us per part).

``--by-kernel``: instead, the training step (:func:`minicnn.training.train_step`) of the model or of a
zoo net (``--zoo``, the nets of ``benchmarks/bench_zoo.py``: 32x32x3, batch 64, BatchNorm) split by
backend kernel and argument shapes (the first input's, then the first output's): each kernel call of
the network's backend is timed through a wrapper; per key, the median over the steps of its time in
one step; "outside the kernels" is the step minus their sum (Python, NumPy glue, the residual merge).
"""

import argparse
import time

import numpy as np

from minicnn.tools.bench import MODELS, MinicnnContender
from minicnn.threads import thread_limits


def profile(model, backend, n_threads, steps):
    """``{part: median microseconds}`` for a training step, then inference parts prefixed ``infer``."""
    contender = MinicnnContender(model, backend)
    net, loss_fn, opt = contender.clf.network_, contender.clf._loss_function, contender.clf._optimizer
    xb, yb = contender.xb, contender.yb
    times = {}

    def timed(name, call):
        start = time.perf_counter()
        out = call()
        times.setdefault(name, []).append(time.perf_counter() - start)
        return out

    names = [f"{i} {type(layer).__name__}" for i, layer in enumerate(net.layers)]
    with thread_limits(n_threads):
        for _ in range(steps + 3):   # the first 3 steps are warm-up, dropped below
            x = xb
            for name, layer in zip(names, net.layers):
                x = timed(f"fwd {name}", lambda: layer.forward(x, True))
            loss, dy = timed("loss", lambda: loss_fn(x, yb))
            for name, layer in zip(reversed(names), reversed(net.layers)):
                dy = timed(f"bwd {name}", lambda: layer.backward(dy))
            timed("optimizer", lambda: opt.step(net.flat_params_and_grads(), kernels=net.kernels))
            x = xb
            for name, layer in zip(names, net.layers):
                x = timed(f"infer {name}", lambda: layer.forward(x, False))
            timed("infer batch (whole forward)", lambda: net.forward(xb, False))
            timed("infer one sample (whole forward)", lambda: net.forward(contender.x1, False))
    return {name: 1e6 * float(np.median(values[3:])) for name, values in times.items()}


def _shape(a):
    return "x".join(str(n) for n in getattr(a, "shape", ()))


def kernel_profile(clf, X, y, n_threads, steps):
    """``({kernel and shapes: median seconds per step}, median step seconds)`` of ``clf``'s training step."""
    from minicnn.backend import KERNELS, OPTIONAL_KERNELS

    net, times = clf.network_, {}
    kernels = net.kernels
    originals = {name: getattr(kernels, name) for name in KERNELS + OPTIONAL_KERNELS if hasattr(kernels, name)}

    def wrapped(name, function):
        def call(*args):
            start = time.perf_counter()
            out = function(*args)
            key = f"{name} {_shape(args[1]) if len(args) > 1 else ''} -> {_shape(args[0])}"
            times[key] = times.get(key, 0.0) + time.perf_counter() - start
            return out
        return call

    for name, function in originals.items():
        setattr(kernels, name, wrapped(name, function))
    from bench_zoo import timed_steps   # this script's folder: the step loop of bench_zoo's leaf profile

    try:
        return timed_steps(clf, X, y, n_threads, steps, times, "outside the kernels")
    finally:
        for name, function in originals.items():
            setattr(kernels, name, function)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="mnist")
    parser.add_argument("--zoo", help="with --by-kernel: a net of benchmarks/bench_zoo.py instead of --model")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--threads", type=int, nargs="+", default=[2])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--by-kernel", action="store_true", help="split the training step by kernel and shapes")
    args = parser.parse_args(argv)
    if args.by_kernel:
        if args.zoo:
            import bench_zoo

            X, y = bench_zoo._data(64)
            clf = bench_zoo.minicnn_model(bench_zoo.NETS[args.zoo], 64)
        else:
            contender = MinicnnContender(args.model, args.backend)
            clf, X, y = contender.clf, contender.xb, contender.yb
        for n in args.threads:
            parts, step = kernel_profile(clf, X, y, n, args.steps)
            print(f"{args.zoo or args.model}, {n} thread(s), medians of {args.steps} steps: step {step * 1e3:.1f} ms")
            for name, value in sorted(parts.items(), key=lambda kv: -kv[1]):
                print(f"    {name:72s} {value * 1e3:8.2f} ms {100 * value / step:5.1f}%")
        return 0
    if args.zoo:
        parser.error("--zoo needs --by-kernel")
    args.threads = args.threads[0]
    parts = profile(args.model, args.backend, args.threads, args.steps)
    step = sum(v for k, v in parts.items() if not k.startswith("infer"))
    print(f"{args.model}, backend {args.backend}, {args.threads} thread(s), medians of {args.steps} steps")
    for name, value in parts.items():
        share = "" if name.startswith("infer") else f"{100 * value / step:5.1f}%"
        print(f"{name:40s} {value:10.0f} us  {share}")
    print(f"{'training step (sum of parts)':40s} {step:10.0f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
