"""Where a training step and an inference batch spend their time, layer by layer (medians, microseconds).

    python benchmarks/profile_step.py --model mnist --threads 2 --steps 30

Runs the reference model of ``minicnn.tools.bench`` (built through ``CNNClassifier`` as ``fit`` builds it)
inside ``thread_limits(threads)`` and times each layer's forward and backward, the loss and the
optimizer separately, step after step; then the inference forward (``training=False``) of one
training-size batch and of one sample. The sum of the parts is close to a whole step (the timer
calls add ~1 us per part).
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="mnist")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)
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
