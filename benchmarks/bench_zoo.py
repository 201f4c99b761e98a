"""Training and inference speed of the zoo's ResNet-8 and MobileNet-style nets: minicnn, PyTorch, ONNX Runtime.

Both nets of docs/LAYERS.md at 32x32x3, ``batch_norm=True``, ``padding="same"``,
batch 64, Adam, random data:

* ``train``: samples/s of one training step (forward, backward, Adam update):
  minicnn's :func:`minicnn.training.train_step` inside
  :func:`minicnn.threads.thread_limits` (as ``fit`` runs it), against the same
  architecture in PyTorch (NCHW, conv without bias before BatchNorm, the
  residual add then ReLU, depthwise as ``groups=C``; the initialization differs);
* ``infer``: samples/s of one batch at inference: minicnn's
  ``network.forward(x, training=False)`` (the engine, under the thread limits
  ``predict`` uses) against ONNX Runtime on minicnn's own exported graph
  (:func:`minicnn.export_onnx`, NHWC input; outputs checked equal first), and
  PyTorch under ``inference_mode``.

At 1 and 2 threads, every contender and thread count in turn each round
(interleaved, so a load spike hits them all); medians over the rounds after
one warm-up round. ``--profile`` adds where minicnn's training step spends its
time: forward and backward of each kind of leaf layer, inside the blocks too
(:func:`leaf_profile`).

Usage: ``python benchmarks/bench_zoo.py [--rounds 7] [--steps 3] [--batch 64] [--size 32] [--profile]
[--nets "ResNet-8 style"]`` (``--nets``: only the nets named, by their titles)
(``--size 64``: the same nets on 64x64 RGB images, the size users bring from photo folders).

``--grid-train 1 8 64``: instead of the zoo, the training step of the 3-channel grid net of
:mod:`minicnn.tools.bench` (conv32-pool-conv64-pool-dense128 at ``--size`` px, no BatchNorm) at each of
those batch sizes against PyTorch, interleaved as above; with ``--profile``, minicnn's step by leaf layer.
"""

import argparse
import os
import platform
import re
import tempfile
import time
import warnings

import numpy as np

from minicnn.tools.bench import N_CLASSES, ZOO

NETS = {name: ZOO[name] for name in ("ResNet-8 style", "MobileNet style")}
SHAPE = (32, 32, 3)


def _data(batch):
    rng = np.random.default_rng(0)
    return rng.random((batch, *SHAPE), dtype=np.float32), np.arange(batch) % N_CLASSES


def minicnn_model(layers, batch):
    """A fitted-once CNNClassifier (network, optimizer and workspaces built) of ``layers``."""
    from sklearn.exceptions import ConvergenceWarning

    from minicnn import CNNClassifier

    X, y = _data(batch)
    clf = CNNClassifier(layers=layers, padding="same", batch_norm=True, dropout="none", batch_size=batch,
                        max_iter=1, n_threads=1, random_state=0)
    with warnings.catch_warnings():   # one epoch only builds the network: not converged, by design
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(np.concatenate([X, X]), np.concatenate([y, y]))
    return clf


def torch_model(layers):
    """The same architecture in PyTorch, read from the same tokens (conv, res, sep with an ``s2`` stride; gap)."""
    import torch
    from torch import nn

    def conv_bn(c_in, c_out, k, stride, groups=1, relu=True):
        parts = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
        return parts + [nn.ReLU()] if relu else parts

    class Residual(nn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.main = nn.Sequential(*conv_bn(c_in, c_out, 3, stride), *conv_bn(c_out, c_out, 3, 1, relu=False))
            self.skip = (nn.Identity() if c_in == c_out and stride == 1
                         else nn.Sequential(*conv_bn(c_in, c_out, 1, stride, relu=False)))

        def forward(self, x):
            return torch.relu(self.main(x) + self.skip(x))

    modules, c = [], SHAPE[2]
    for token in layers:
        if token == "gap":
            modules += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            continue
        kind, width, stride = re.fullmatch(r"([a-z]+?)(\d+)(?:s(\d+))?", token).groups()
        width, stride = int(width), int(stride or 1)
        if kind == "conv":
            modules += conv_bn(c, width, 3, stride)
        elif kind == "res":
            modules.append(Residual(c, width, stride))
        elif kind == "sep":
            modules += conv_bn(c, c, 3, stride, groups=c) + conv_bn(c, width, 1, 1)
        else:
            raise ValueError(f"token {token!r} has no PyTorch twin here")
        c = width
    torch.manual_seed(0)
    return nn.Sequential(*modules, nn.Linear(c, N_CLASSES))


def _timed(call, steps):
    start = time.perf_counter()
    for _ in range(steps):
        call()
    return (time.perf_counter() - start) / steps


def _leaf_name(layer):
    """The profile row of a leaf: its kind, and for convolutions the kernel, stride and shapes too."""
    kind = type(layer).__name__
    if not hasattr(layer, "kernel_size"):
        return kind
    (KH, KW), (H, W, C), (Ho, Wo, F) = layer.kernel_size, layer.input_shape, layer.output_shape
    return f"{kind} {KH}x{KW}/{layer.strides[0]} {H}x{W}x{C}->{Ho}x{Wo}x{F}"


def leaf_profile(clf, X, y, n_threads, steps):
    """Seconds per training step spent in each kind of leaf layer (forward and backward apart), and the step.

    Every leaf reached through ``network.walk()`` (the sublayers of residual blocks and separable
    convolutions included; convolutions apart per kernel and shape, :func:`_leaf_name`) is timed through a
    wrapper around its ``forward`` and ``backward`` while :func:`minicnn.training.train_step` runs ``steps``
    times; what the leaves do not cover (the residual add and activation, the loss, the optimizer) is the
    step minus their sum. Every part is the median over the steps of its time in one step (a load spike
    in one step does not move it), the step the median of the steps.
    """
    from minicnn.layers.composite import Composite

    net, times = clf.network_, {}

    def wrapped(method, key):
        def call(*args, **kwargs):
            start = time.perf_counter()
            out = method(*args, **kwargs)
            times[key] = times.get(key, 0.0) + time.perf_counter() - start
            return out
        return call

    leaves = [layer for layer in net.walk() if not isinstance(layer, Composite)]
    for layer in leaves:
        kind = _leaf_name(layer)
        layer.forward, layer.backward = wrapped(layer.forward, f"{kind} forward"), \
            wrapped(layer.backward, f"{kind} backward")
    try:
        return timed_steps(clf, X, y, n_threads, steps, times, "rest (residual merge, loss, optimizer)")
    finally:
        for layer in leaves:   # the instance attributes shadowed the class methods: drop them
            del layer.forward, layer.backward


def timed_steps(clf, X, y, n_threads, steps, times, rest):
    """Medians over ``steps`` training steps (after one warm-up) of the parts ``times`` collects in each step
    (timers the caller wrapped around layers or kernels fill it), ``rest`` (the step less their sum), and the
    step: ``(parts, step)`` in seconds. A part absent from a step counts 0 there."""
    from minicnn.threads import thread_limits
    from minicnn.training import train_step

    net, rows = clf.network_, []
    with thread_limits(n_threads, net.training_work(len(X))):
        train_step(net, clf._loss_function, clf._optimizer, X, y)   # warm-up
        for _ in range(steps):
            times.clear()
            start = time.perf_counter()
            train_step(net, clf._loss_function, clf._optimizer, X, y)
            step = time.perf_counter() - start
            rows.append({**times, rest: step - sum(times.values()), "step": step})
    parts = {key: float(np.median([row.get(key, 0.0) for row in rows])) for key in rows[0]}
    return parts, parts.pop("step")


class Contenders:
    """Every timed call of one net: ``{(contender, metric): callable(n_threads, steps) -> seconds per call}``."""

    def __init__(self, layers, batch, folder):
        import onnxruntime as ort
        import torch

        from minicnn import export_onnx
        from minicnn.threads import kernel_thread_limits, thread_limits
        from minicnn.training import train_step

        self.clf = clf = minicnn_model(layers, batch)
        net, opt, loss = clf.network_, clf._optimizer, clf._loss_function
        X, y = _data(batch)
        self.X, self.y = X, y
        tnet = torch_model(layers)
        n_ours, n_torch = net.n_params, sum(p.numel() for p in tnet.parameters())
        if n_ours != n_torch:
            raise AssertionError(f"{layers}: {n_ours} weights in minicnn, {n_torch} in the PyTorch twin")
        topt, tloss = torch.optim.Adam(tnet.parameters(), lr=1e-3), torch.nn.CrossEntropyLoss()
        xt, yt = torch.from_numpy(np.ascontiguousarray(X.transpose(0, 3, 1, 2))), torch.from_numpy(y)
        path = export_onnx(clf, os.path.join(folder, "net.onnx"))
        sessions = {}
        for n in (1, 2):
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = n, 1
            sessions[n] = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        name = sessions[1].get_inputs()[0].name
        ours = clf.predict_proba(X)
        theirs = sessions[1].run(None, {name: X})
        proba = theirs[1] if len(theirs) > 1 else theirs[0]
        if isinstance(proba, list):   # a ZipMap output: one dict per row
            proba = np.array([[row[k] for k in sorted(row)] for row in proba], dtype=np.float32)
        np.testing.assert_allclose(ours, proba, atol=1e-4, err_msg=f"{layers}: ONNX Runtime disagrees")

        def ours_train(n, steps):
            with thread_limits(n, net.training_work(batch)):
                return _timed(lambda: train_step(net, loss, opt, X, y), steps)

        def ours_infer(n, steps):
            # the batch's work, as predict passes it (one sample's work capped the team at one thread)
            with kernel_thread_limits(n, batch * net.forward_work_per_sample(), net.kernels):
                return _timed(lambda: net.forward(X, training=False), steps)

        def torch_step():
            topt.zero_grad(set_to_none=True)
            tloss(tnet(xt), yt).backward()
            topt.step()

        def torch_train(n, steps):
            torch.set_num_threads(n)
            tnet.train()
            return _timed(torch_step, steps)

        def torch_infer(n, steps):
            torch.set_num_threads(n)
            tnet.eval()
            with torch.inference_mode():
                return _timed(lambda: tnet(xt), steps)

        def ort_infer(n, steps):
            run, feed = sessions[n].run, {name: X}
            return _timed(lambda: run(None, feed), steps)

        self.calls = {("minicnn", "train"): ours_train, ("torch", "train"): torch_train,
                      ("minicnn", "infer"): ours_infer, ("onnxruntime", "infer"): ort_infer,
                      ("torch", "infer"): torch_infer}


def grid_train(size, batches, rounds, steps, profile):
    """Training samples/s of the 3-channel grid net at ``size`` px, minicnn vs PyTorch, per batch and thread count."""
    import torch

    from minicnn.tools.bench import MinicnnContender, TorchContender
    from minicnn.threads import thread_limits
    from minicnn.training import train_step

    model = f"rgb{size}"
    ours, theirs = MinicnnContender(model, "auto"), TorchContender(model)
    net, opt, loss = ours.clf.network_, ours.clf._optimizer, ours.clf._loss_function
    X, y = _data(max(batches))
    samples = {}
    for r in range(rounds + 1):   # round 0 warms up (JIT, workspaces of every batch size)
        for batch in batches:
            xb, yb = X[:batch], y[:batch]
            xt = torch.from_numpy(np.ascontiguousarray(xb.transpose(0, 3, 1, 2)))
            yt = torch.from_numpy(yb)

            def torch_step():
                theirs.opt.zero_grad(set_to_none=True)
                theirs.loss(theirs.net(xt), yt).backward()
                theirs.opt.step()

            for n in (1, 2):
                with thread_limits(n, net.training_work(batch)):
                    t_ours = _timed(lambda: train_step(net, loss, opt, xb, yb), steps)
                torch.set_num_threads(n)
                theirs.net.train()
                t_torch = _timed(torch_step, steps)
                if r:
                    samples.setdefault((batch, n), []).append((t_ours, t_torch))
    print(f"\n3-channel grid net {model} (conv32-pool-conv64-pool-dense128), training samples/s")
    print(f"{'batch':>5s} {'thr':>3s} {'minicnn/s':>10s} {'torch/s':>9s} {'x torch':>8s}")
    for (batch, n), pairs in samples.items():
        t_ours, t_torch = (float(np.median([p[i] for p in pairs])) for i in (0, 1))
        print(f"{batch:5d} {n:3d} {batch / t_ours:10.0f} {batch / t_torch:9.0f} {t_torch / t_ours:8.2f}")
    if profile:
        for batch in batches:
            parts, step = leaf_profile(ours.clf, X[:batch], y[:batch], 1, max(5, rounds))
            print(f"  batch {batch}, training step by leaf layer, 1 thread: {step * 1e3:.2f} ms")
            for name, value in sorted(parts.items(), key=lambda kv: -kv[1]):
                print(f"    {name:52s} {value * 1e3:8.3f} ms {100 * value / step:5.1f}%")


def main(argv=None):
    import onnxruntime as ort
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=3, help="calls per timing (their mean is one sample)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--size", type=int, default=32, help="image height and width (RGB), e.g. 64")
    parser.add_argument("--nets", nargs="+", choices=sorted(NETS), default=list(NETS), metavar="NET",
                        help=f"the zoo nets to time (default: all), among {sorted(NETS)}")
    parser.add_argument("--grid-train", type=int, nargs="+", metavar="BATCH",
                        help="time the 3-channel grid net's training at these batch sizes instead of the zoo")
    args = parser.parse_args(argv)
    global SHAPE
    SHAPE = (args.size, args.size, 3)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}; torch {torch.__version__}, onnxruntime {ort.__version__}; batch "
          f"{args.batch}, {args.size}x{args.size}x3, {args.rounds} interleaved rounds x {args.steps} calls, medians")
    if args.grid_train:
        grid_train(args.size, args.grid_train, args.rounds, args.steps, args.profile)
        return
    with tempfile.TemporaryDirectory() as folder:
        for title in args.nets:
            layers = NETS[title]
            c = Contenders(layers, args.batch, folder)
            samples = {}
            for r in range(args.rounds + 1):   # round 0 warms up (JIT, workspaces, ORT arena)
                for (who, metric), call in c.calls.items():
                    for n in (1, 2):
                        seconds = call(n, args.steps)
                        if r:
                            samples.setdefault((who, metric, n), []).append(seconds)
            speed = {k: args.batch / float(np.median(v)) for k, v in samples.items()}
            print(f"\n{title}: {','.join(layers)} ({c.clf.network_.n_params:,} weights)")
            print(f"{'metric':6s} {'thr':>3s} {'minicnn/s':>10s} {'torch/s':>9s} {'x torch':>8s} {'ORT/s':>9s} "
                  f"{'x ORT':>6s}")
            for metric in ("train", "infer"):
                for n in (1, 2):
                    ours, torch_s = speed[("minicnn", metric, n)], speed[("torch", metric, n)]
                    ort_s = speed.get(("onnxruntime", metric, n))
                    ort_cols = f"{ort_s:9.0f} {ours / ort_s:6.2f}" if ort_s else f"{'-':>9s} {'-':>6s}"
                    print(f"{metric:6s} {n:3d} {ours:10.0f} {torch_s:9.0f} {ours / torch_s:8.2f} {ort_cols}")
            if args.profile:
                for n in (1, 2):
                    parts, step = leaf_profile(c.clf, c.X, c.y, n, max(5, args.rounds))
                    print(f"  training step by leaf layer, {n} thread(s): {step * 1e3:.1f} ms")
                    for name, value in sorted(parts.items(), key=lambda kv: -kv[1]):
                        print(f"    {name:52s} {value * 1e3:8.1f} ms {100 * value / step:5.1f}%")

if __name__ == "__main__":
    main()
