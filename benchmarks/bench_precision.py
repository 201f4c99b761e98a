"""Reduced-precision inference: accuracy cost and throughput of int8 and bf16 against float32, side by side.

For MNIST and Fashion-MNIST, the reference MNIST CNN (``minicnn.tools.bench.MODELS["mnist"]``: conv32 -
conv64 - maxpool - dense128, the Keras example) is fitted on the training set (or loaded from ``--model-dir``),
quantized with :func:`minicnn.quantize.quantize` (int8 calibrated on ``--calibration`` training images, max
calibration; bf16) and scored on the 10000 test images: test accuracy and top-1 agreement with float32.
Then, correctness first (the agreement above), throughput: ``predict_proba`` on a batch (``--batch``) and on
one sample, 1 thread, interleaved rounds, medians (and the best round), float32 vs int8 vs bf16, and ONNX
Runtime / OpenVINO (float32 and its default precision) on the exported float32 model when installed::

    python benchmarks/bench_precision.py [--epochs 2] [--rounds 15] [--model-dir DIR] [--json out.json]
    python benchmarks/bench_precision.py --kernels [--rounds 31]   # the second convolution's kernels alone
    python benchmarks/bench_precision.py --steps [--batch 1]       # CPU time of each step of the int8 pass
"""

import argparse
import json
import os
import statistics
import tempfile
import time
import warnings

import numpy as np

import minicnn
from minicnn import CNNClassifier
from minicnn.backend import isa, lowp
from minicnn.datasets import load_fashion_mnist, load_mnist
from minicnn.quantize import quantize
from minicnn.tools.bench import MODELS, OPENVINO_PRECISIONS, _openvino

DATASETS = {"mnist": load_mnist, "fashion-mnist": load_fashion_mnist}


def fitted_model(name, X, y, epochs, model_dir):
    path = os.path.join(model_dir, f"{name}-cnn-{epochs}ep.npz") if model_dir else None
    if path and os.path.exists(path):
        return minicnn.load(path)
    spec = {k: v for k, v in MODELS["mnist"].items() if k != "input_shape"}
    with warnings.catch_warnings():   # a fixed number of epochs: not converged is expected
        warnings.filterwarnings("ignore", message=".*maximum iterations", category=UserWarning)
        clf = CNNClassifier(**spec, max_iter=epochs, random_state=0, tol=0.0).fit(X, y)
    if path:
        os.makedirs(model_dir, exist_ok=True)
        clf.save(path)
    return clf


def peers(clf, threads):
    """ONNX Runtime and OpenVINO sessions on the exported float32 model: {name: (run(x), precision)}."""
    found = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        try:
            minicnn.export_onnx(clf, path)
            import onnxruntime as ort
        except ImportError:
            return found
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        found["onnxruntime"] = (lambda x, s=session, n=name: s.run(None, {n: x})[0], "f32")
        ov = _openvino()
        if ov is not None:
            core = ov.Core()
            model = core.read_model(path)
            for key, hint in OPENVINO_PRECISIONS.items():
                config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, **hint}
                request = core.compile_model(model, "CPU", config).create_infer_request()
                hint = request.get_compiled_model().get_property("INFERENCE_PRECISION_HINT")
                precision = hint.to_string() if hasattr(hint, "to_string") else str(hint)   # "f32", "bf16"
                found[key] = (lambda x, r=request: r.infer({0: x})[0], precision)
    return found


def time_interleaved(calls, rounds):
    """{name: (median, minimum, CPU median) seconds} over ``rounds`` interleaved rounds (each call once per round
    after a warm-up). On a loaded machine the median carries the other processes' preemptions (a short call
    loses proportionally more to one); the minimum is the run least disturbed; the CPU time (this process's,
    every thread) leaves the preemptions out: at 1 thread it is the figure a quiet machine would give."""
    for call in calls.values():
        call()
    times = {name: [] for name in calls}
    cpu = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            call()
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {name: (statistics.median(t), min(t), statistics.median(cpu[name])) for name, t in times.items()}


def kernel_comparison(rounds, batch=64):
    """The MNIST CNN's second convolution + 2x2 max-pool (32 -> 64 channels, 26x26 input, 1 thread): the float32
    Winograd + pool kernel against the int8 and bf16 in-place conv + pool kernels, checked against their NumPy
    twins first, then timed interleaved. Returns {name: (median, minimum) seconds}."""
    from minicnn.backend import cython_kernels as ck
    from minicnn.backend import tuning
    from minicnn.threads import thread_limits

    rng = np.random.default_rng(0)
    H, W, C, F, Ho, Wo = 26, 26, 32, 64, 24, 24
    x = rng.random((batch, H, W, C), dtype=np.float32)
    w = (rng.standard_normal((3, 3, C, F)) / 17).astype(np.float32)
    bias, y32 = np.zeros(F, np.float32), np.empty((batch, Ho // 2, Wo // 2, F), np.float32)
    work = np.empty((1, tuning.winograd_workspace_length(H, W, C, F, Ho, Wo)), np.float32)
    calls = {"float32 winograd+pool": lambda: ck.conv2d_winograd_bias_act_maxpool2_forward(
        y32, x, w, bias, work, 1, 0.0, 0, 0, Ho, Wo)}
    geometry = (Ho, Wo, 3, 3, 1, 1, 1, 1, True)
    for precision in ("int8", "bf16"):
        if lowp.missing(precision):
            continue
        fast, twin = lowp.kernels(precision), lowp.kernels(precision, "numpy")
        y = np.empty((batch * (Ho // 2) * (Wo // 2), F), np.float32)
        if precision == "int8":
            xp = np.empty(x.shape, np.uint8)
            fast.quantize_pad_u8(xp, x, 255.0, 0, 0, 0)
            wq = np.clip(np.rint(w.reshape(-1, F) / np.abs(w).max() * 127), -127, 127).astype(np.int8)
            args = (twin.pack_int8(wq), np.zeros(F, np.int32), np.full(F, 1e-4, np.float32), bias, 1, *geometry)
            name = "qconv_u8s8_bias_act"
        else:
            xp = np.empty(x.shape, np.uint16)
            fast.to_bf16_pad(xp, x, 0, 0)
            args, name = (twin.pack_bf16(twin.bf16_bits(w.reshape(-1, F))), bias, 1, *geometry), "conv_bf16_bias_act"
        want = np.empty_like(y)
        getattr(twin, name)(want, xp, *args)
        getattr(fast, name)(y, xp, *args)
        if not np.allclose(y, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max())):
            raise AssertionError(f"{name} disagrees with its NumPy twin")
        calls[f"{precision} conv+pool"] = lambda f=getattr(fast, name), y=y, xp=xp, args=args: f(y, xp, *args)
    with thread_limits(1):
        return time_interleaved(calls, rounds)


def step_profile(dataset, epochs, calibration, batch, rounds, model_dir):
    """CPU time (1 thread, medians of ``rounds``) of each step of the int8 pass on a batch of the test set,
    each from its input to the next step's input, and of the whole float32 and int8 ``predict_proba``."""
    from minicnn._lowp_steps import Product
    from minicnn.threads import thread_limits

    X_train, y_train, X_test, _ = DATASETS[dataset]()
    clf = fitted_model(dataset, X_train, y_train, epochs, model_dir)
    clf.set_params(n_threads=1)
    q = quantize(clf, X_train[:calibration])
    q.n_threads = 1
    xb = np.ascontiguousarray(X_test[:batch])

    def cpu(call):
        return time_interleaved({"call": call}, rounds)["call"][2]

    with thread_limits(1):
        x = clf._images(xb)
        for step in q._steps:
            run = (lambda s=step, x=x: s.forward(x)) if isinstance(step, Product) else \
                (lambda s=step, x=x: s.forward(x, False))
            name = type(getattr(step, "layer", step)).__name__
            if getattr(step, "pool", None) is not None:
                name += " + max-pool"
            handover = " -> uint8" if getattr(step, "next", None) is not None else ""
            print(f"{name + handover:32} {cpu(run) * 1e3:8.3f} ms")
            x = run()
        print(f"{'predict_proba int8':32} {cpu(lambda: q.predict_proba(xb)) * 1e3:8.3f} ms")
        print(f"{'predict_proba float32':32} {cpu(lambda: clf.predict_proba(xb)) * 1e3:8.3f} ms")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--calibration", type=int, default=1000, help="training images used to calibrate int8")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--datasets", default="mnist,fashion-mnist")
    p.add_argument("--model-dir", default=None, help="cache of the fitted float32 models")
    p.add_argument("--json", default=None)
    p.add_argument("--kernels", action="store_true", help="only the kernel comparison of the second convolution")
    p.add_argument("--steps", action="store_true", help="only the CPU time of each step of the int8 pass")
    args = p.parse_args()
    if args.steps:
        for dataset in args.datasets.split(","):
            print(f"{dataset}, batch {args.batch}, CPU time, medians of {args.rounds}:")
            step_profile(dataset, args.epochs, args.calibration, args.batch, args.rounds, args.model_dir)
        return
    if args.kernels:
        timings = kernel_comparison(args.rounds)
        base = timings["float32 winograd+pool"]
        for name, (median, best, cpu) in timings.items():
            print(f"{name:24} median {median * 1e3:7.2f} ms  best {best * 1e3:7.2f} ms  CPU {cpu * 1e3:7.2f} ms   "
                  f"x f32: median {base[0] / median:.2f}, best {base[1] / best:.2f}, CPU {base[2] / cpu:.2f}")
        return
    report = {"cpu_level": isa.choose_level(), "features": {f: f in isa.cpu_features() for f in
                                                               ("AVX512VNNI", "AVX512BF16")},
              "threads": args.threads, "batch": args.batch, "datasets": {}}
    for dataset in args.datasets.split(","):
        X_train, y_train, X_test, y_test = DATASETS[dataset]()
        clf = fitted_model(dataset, X_train, y_train, args.epochs, args.model_dir)
        clf.set_params(n_threads=args.threads)
        models = {"float32": clf}
        rows = {"float32": {"test_accuracy": float((clf.predict(X_test) == y_test).mean())}}
        for precision in ("int8", "bf16"):
            backend = "numpy" if lowp.missing(precision) else "auto"
            q = quantize(clf, X_train[:args.calibration], precision=precision, X_validation=X_test,
                         y_validation=y_test, backend=backend)
            q.n_threads = args.threads
            rows[precision] = {"test_accuracy": q.accuracy_, "top1_agreement": q.agreement_,
                               "max_abs_proba_difference": q.max_abs_difference_, "kernels": backend}
            if backend != "numpy":
                models[precision] = q
        xb, x1 = np.ascontiguousarray(X_test[:args.batch]), np.ascontiguousarray(X_test[:1])
        calls = {f"{name} batch": (lambda m=m: m.predict_proba(xb)) for name, m in models.items()}
        calls.update({f"{name} 1 sample": (lambda m=m: m.predict_proba(x1)) for name, m in models.items()})
        for name, (run, precision) in peers(clf, args.threads).items():   # the exported model takes NHWC
            rows.setdefault(name, {})["precision"] = precision
            calls[f"{name} batch"] = lambda run=run: run(xb)
            calls[f"{name} 1 sample"] = lambda run=run: run(x1)
        timings = time_interleaved(calls, args.rounds)
        for key, (median, best, cpu) in timings.items():
            name, kind = key.split(" ", 1)
            n, kind = (args.batch, "batch") if kind == "batch" else (1, "one")
            rows[name][f"{kind}_samples_per_s"] = round(n / median, 1)
            rows[name][f"{kind}_best_samples_per_s"] = round(n / best, 1)
            rows[name][f"{kind}_cpu_samples_per_s"] = round(n / cpu, 1)
        base = rows["float32"]
        for name, row in rows.items():
            for kind in ("batch", "one", "batch_best", "one_best", "batch_cpu", "one_cpu"):
                if f"{kind}_samples_per_s" in row:
                    row[f"{kind}_vs_float32"] = round(row[f"{kind}_samples_per_s"] / base[f"{kind}_samples_per_s"], 2)
        report["datasets"][dataset] = rows
        print(f"\n{dataset}: float32 test accuracy {base['test_accuracy']:.4f}")
        keys = ("batch_samples_per_s", "batch_vs_float32", "batch_best_vs_float32", "batch_cpu_vs_float32",
                "one_samples_per_s", "one_vs_float32", "one_best_vs_float32", "one_cpu_vs_float32")
        print(f"{'':14}{'accuracy':>9}{'agree':>8}{'batch/s':>10}{'x f32':>7}{'best':>6}{'CPU':>6}{'1-smp/s':>10}"
              f"{'x f32':>7}{'best':>6}{'CPU':>6}")
        for name, row in rows.items():
            cells = [f"{row[k]:.4f}" if isinstance(row.get(k), float) else "-" for k in ("test_accuracy",
                                                                                       "top1_agreement")]
            speed = [str(row.get(k, "-")) for k in keys]
            print(f"{name:14}{cells[0]:>9}{cells[1]:>8}{speed[0]:>10}{speed[1]:>7}{speed[2]:>6}{speed[3]:>6}"
                  f"{speed[4]:>10}{speed[5]:>7}{speed[6]:>6}{speed[7]:>6}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
