"""End-to-end benchmark: minicnn against ONNX Runtime and PyTorch on the models users train here (``minicnn bench``).

Two reference models, both expressed through :class:`minicnn.CNNClassifier`
and rebuilt layer for layer in PyTorch (when it is installed):

* ``mnist``: the Keras MNIST CNN, 28x28x1 -> conv32 3x3 relu -> conv64 3x3 relu
  -> maxpool 2 -> dropout 0.25 -> dense128 relu -> dropout 0.5 -> dense10, batch 128;
* ``digits``: 8x8x1 -> conv16 3x3 same relu -> maxpool 2 -> dropout 0.25 ->
  dense64 relu -> dropout 0.5 -> dense10, batch 64.

All contenders use Adam and random data of the right shape. In one process,
**interleaved** (round after round, every contender and thread count in
turn, so a load spike hits them all), it measures per step and reports the
median after warm-up:

* ``train``: samples/s of forward + backward + Adam update
  (:func:`minicnn.training.train_step`, the step ``fit`` runs, inside
  :func:`minicnn.threads.thread_limits`; ``torch``: ``zero_grad``, forward,
  cross-entropy, ``backward``, ``step``);
* ``infer``: samples/s of ``predict_proba`` on one training-size batch
  (``torch``: ``model(x)`` under ``inference_mode``);
* ``latency``: one-sample ``predict`` (the estimator, validation included)
  and one-sample ``network.forward`` (the engine alone), in microseconds.

ONNX Runtime (when ``onnxruntime`` and torch are installed) runs the torch
model exported to ONNX (:func:`onnx_model`), CPU provider, every graph
optimization on, ``intra_op_num_threads = n``: batch and one-sample
inference, interleaved with the others. Each row also gives its effective
GFLOP/s (multiply-adds of the conv and dense layers, :func:`macs_per_sample`)
and their share of the same-run sgemm at that thread count.

Then, each in its own subprocess: peak RSS of a training run per contender,
and the **cold start** (a fresh interpreter that imports minicnn, loads a
saved model and predicts one sample, once through :func:`minicnn.load` (an
estimator: imports scikit-learn) and once through
:func:`minicnn.load_predictor` (NumPy only); it also reports whether Numba
and scikit-learn were imported on each path). The same run measures NumPy's sgemm
GFLOP/s and a memcpy's GB/s as the physical yardstick.

Run ``python -m minicnn.tools.bench --help`` (or ``minicnn bench``, or
``python benchmarks/compare.py``). ``--quick`` runs a few-second smoke
version (the tests use it); ``--json PATH`` writes every number.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from ..files import write_bytes

MODELS = {
    "mnist": dict(input_shape=(28, 28, 1), batch_size=128, layers=("conv32", "conv64", "maxpool", "dense128"),
                  padding="valid", dropout=(2, 3), dropout_rate=(0.25, 0.5)),
    "digits": dict(input_shape=(8, 8, 1), batch_size=64, layers=("conv16", "maxpool", "dense64"),
                   padding="same", dropout=(1, 2), dropout_rate=(0.25, 0.5)),
}
#: The model zoo of docs/LAYERS.md (32x32 RGB input, ``batch_norm=True``, ``padding="same"``): name -> layer tokens.
ZOO = {
    "ResNet-8 style": ("conv16", "res16", "res32s2", "res64s2", "gap"),
    "plain, ResNet-8 shape": ("conv16", "conv16", "conv16", "conv32s2", "conv32", "conv64s2", "conv64", "gap"),
    "ResNet-20": ("conv16", "res16", "res16", "res16", "res32s2", "res32", "res32", "res64s2", "res64", "res64",
                  "gap"),
    "MobileNet style": ("conv16s2", "sep32", "sep64s2", "sep64", "sep128s2", "sep128", "gap"),
}
#: The 3-channel size grid (``--grid``): conv32 -> maxpool -> conv64 -> maxpool -> dense128 -> dense10 on RGB
#: images of each size, 3x3 "same" convolutions, no dropout; inference only, at every batch of GRID_BATCHES.
GRID_SIZES = (28, 64, 128)
GRID_BATCHES = (1, 8, 64, 256)
GRID_MODELS = {f"rgb{size}": dict(input_shape=(size, size, 3), batch_size=64,
                                  layers=("conv32", "maxpool", "conv64", "maxpool", "dense128"), padding="same",
                                  dropout=(), dropout_rate=0.5) for size in GRID_SIZES}
N_CLASSES = 10


def _spec(model):
    """The specification of a reference model (:data:`MODELS`) or a grid model (:data:`GRID_MODELS`)."""
    return MODELS[model] if model in MODELS else GRID_MODELS[model]
LEARNING_RATE = 3e-3
ENGINE_BACKENDS = ("numpy", "numba", "cython", "auto")
#: The numpy reference is only timed where it is affordable.
NUMPY_MODELS = ("digits",)

#: The speed targets (reported, never asserted): (description, (model, field, threads), op, value). ``field`` is a
#: key of a minicnn-auto result row, or one of the derived fields of :func:`_lookup`.
TARGETS = (
    ("mnist infer >= 1.5x onnxruntime @1 thread", ("mnist", "infer_vs_ort", 1), ">=", 1.5),
    ("mnist infer >= 1.5x onnxruntime @2 threads", ("mnist", "infer_vs_ort", 2), ">=", 1.5),
    ("mnist 1-sample predict <= 1.0x onnxruntime @1 thread", ("mnist", "latency_vs_ort", 1), "<=", 1.0),
    ("mnist 1-sample predict <= 1.0x onnxruntime @2 threads", ("mnist", "latency_vs_ort", 2), "<=", 1.0),
    ("digits infer >= 1.0x onnxruntime @1 thread", ("digits", "infer_vs_ort", 1), ">=", 1.0),
    ("digits infer >= 1.0x onnxruntime @2 threads", ("digits", "infer_vs_ort", 2), ">=", 1.0),
    ("digits 1-sample predict <= 1.0x onnxruntime @1 thread", ("digits", "latency_vs_ort", 1), "<=", 1.0),
    ("digits 1-sample predict <= 1.0x onnxruntime @2 threads", ("digits", "latency_vs_ort", 2), "<=", 1.0),
    ("mnist train >= 1.5x torch @2 threads", ("mnist", "train_vs_torch", 2), ">=", 1.5),
    ("digits train >= 3x torch @2 threads", ("digits", "train_vs_torch", 2), ">=", 3.0),
    ("mnist train numba >= 0.8x cython @2 threads", ("mnist", "numba_vs_cython_train", 2), ">=", 0.8),
    ("mnist infer numba >= 0.8x cython @2 threads", ("mnist", "numba_vs_cython_infer", 2), ">=", 0.8),
    ("mnist train 2 threads >= 1.7x 1 thread", ("mnist", "thread_scaling", None), ">=", 1.7),
    ("cold start <= 1.0 s (load_predictor)", ("cold", "predictor", None), "<=", 1.0),
    ("cold start <= 1.0 s (minicnn.load, estimator)", ("cold", "estimator", None), "<=", 1.0),
    ("cold start load_predictor <= 1.0x onnxruntime", ("cold", "predictor_vs_ort", None), "<=", 1.0),
    ("mnist peak RSS training <= torch", ("mnist", "rss_ratio", None), "<=", 1.0),
)


# ----------------------------------------------------------------------------- helpers
def _data(model, n, seed=0):
    spec = _spec(model)
    rng = np.random.default_rng(seed)
    X = rng.random((n, *spec["input_shape"]), dtype=np.float32)
    y = (np.arange(n) % N_CLASSES).astype(np.int64)
    return X, y


def _load_average():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


def machine_description(torch):
    """The machine part of the report: CPU, versions, and the instruction set the kernels run at."""
    from minicnn.backend.levels import describe

    return {"cpu": _cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "torch": torch.__version__ if torch else None,
            "kernels": describe({"cython", "numba"})}


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _median(values):
    return float(np.median(values)) if len(values) else float("nan")


def rotated_rounds(names, repeats):
    """``repeats`` rounds of ``names``, each round's order rotated one place from the last.

    In a fixed order each fresh process of a cold-start comparison runs after the same other one, and runs after
    the estimator's (which imports scikit-learn, ~1 s of both cores) were measured ~5-15 ms slower than the same
    runs after ONNX Runtime's: rotating gives every path every place.

    Examples
    --------
    >>> rotated_rounds(["a", "b", "c"], 4)
    [['a', 'b', 'c'], ['b', 'c', 'a'], ['c', 'a', 'b'], ['a', 'b', 'c']]
    """
    names = list(names)
    return [names[i % len(names):] + names[:i % len(names)] for i in range(repeats)]


# ----------------------------------------------------------------------------- contenders
class MinicnnContender:
    """A reference model built through CNNClassifier, stepped like ``fit`` steps it."""

    METRICS = ("train", "infer", "latency", "latency_engine")

    def __init__(self, model, backend):
        from minicnn import CNNClassifier

        spec = _spec(model)
        self.name, self.model, self.backend = f"minicnn-{backend}", model, backend
        self.batch = spec["batch_size"]
        self.clf = CNNClassifier(layers=spec["layers"], padding=spec["padding"], dropout=spec["dropout"],
                                 dropout_rate=spec["dropout_rate"], dropout_kind="element", optimizer="adam",
                                 learning_rate=LEARNING_RATE, batch_size=self.batch, max_iter=1, backend=backend,
                                 n_threads=1, random_state=0)
        X, y = _data(model, 2 * self.batch)
        with warnings.catch_warnings():   # one iteration never converges: not the benchmark's concern
            warnings.filterwarnings("ignore", message=r".*maximum iterations \(max_iter=1\)")
            self.clf.fit(X, y)   # builds network and optimizer (and compiles/loads kernels)
        self.xb, self.yb = X[:self.batch].copy(), y[:self.batch].copy()
        self.x1 = X[:1].copy()

    def train(self, n_threads, steps):
        from minicnn.threads import thread_limits
        from minicnn.training import train_step

        net, opt, loss = self.clf.network_, self.clf._optimizer, self.clf._loss_function
        times = []
        with thread_limits(n_threads, net.training_work(len(self.xb))):   # the team fit would use
            for _ in range(steps):
                start = time.perf_counter()
                train_step(net, loss, opt, self.xb, self.yb)
                times.append(time.perf_counter() - start)
        return times

    def infer(self, n_threads, steps):
        self.clf.n_threads = n_threads
        return _timed(lambda: self.clf.predict_proba(self.xb), steps)

    def latency(self, n_threads, steps):
        self.clf.n_threads = n_threads
        return _timed(lambda: self.clf.predict(self.x1), steps)

    def latency_engine(self, n_threads, steps):
        from minicnn.threads import kernel_thread_limits

        net = self.clf.network_
        with kernel_thread_limits(n_threads, net.forward_work_per_sample(), net.kernels):   # as predict does
            return _timed(lambda: net.forward(self.x1, training=False), steps)


class TorchContender:
    """The same architecture in PyTorch (NCHW, its default layout), Adam, cross-entropy."""

    METRICS = ("train", "infer", "latency", "latency_engine")

    def __init__(self, model):
        torch = _torch()
        nn = torch.nn
        spec = _spec(model)
        self.torch, self.name, self.model, self.backend = torch, "torch", model, "torch"
        self.batch = spec["batch_size"]
        torch.manual_seed(0)
        H, W, C = spec["input_shape"]
        if model == "mnist":
            self.net = nn.Sequential(nn.Conv2d(C, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(),
                                     nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(),
                                     nn.Linear(64 * ((H - 4) // 2) * ((W - 4) // 2), 128), nn.ReLU(),
                                     nn.Dropout(0.5), nn.Linear(128, N_CLASSES))
        elif model in GRID_MODELS:   # conv32 -> pool -> conv64 -> pool -> dense128 -> dense10, "same" padding
            self.net = nn.Sequential(nn.Conv2d(C, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                     nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                     nn.Linear(64 * (H // 4) * (W // 4), 128), nn.ReLU(), nn.Linear(128, N_CLASSES))
        else:
            self.net = nn.Sequential(nn.Conv2d(C, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                     nn.Dropout(0.25), nn.Flatten(), nn.Linear(16 * (H // 2) * (W // 2), 64),
                                     nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, N_CLASSES))
        self.opt = torch.optim.Adam(self.net.parameters(), lr=LEARNING_RATE)
        self.loss = nn.CrossEntropyLoss()
        X, y = _data(model, self.batch)
        self.xb = torch.from_numpy(np.ascontiguousarray(X.transpose(0, 3, 1, 2)))
        self.yb = torch.from_numpy(y)
        self.x1 = self.xb[:1].clone()

    def _step(self):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss(self.net(self.xb), self.yb)
        loss.backward()
        self.opt.step()

    def train(self, n_threads, steps):
        self.torch.set_num_threads(n_threads)
        self.net.train()
        return _timed(self._step, steps)

    def _inference(self, x, n_threads, steps):
        self.torch.set_num_threads(n_threads)
        self.net.eval()
        with self.torch.inference_mode():
            return _timed(lambda: self.net(x), steps)

    def infer(self, n_threads, steps):
        return self._inference(self.xb, n_threads, steps)

    def latency(self, n_threads, steps):
        return self._inference(self.x1, n_threads, steps)

    latency_engine = latency


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def onnx_model(torch_contender):
    """The ONNX model (serialized bytes, input ``x`` NCHW with a dynamic batch axis) ONNX Runtime is timed on.

    This is the one place the ONNX file comes from: today a PyTorch export of
    the torch contender (same architecture, same layer shapes; the legacy
    TorchScript exporter, which needs no onnxscript). Replacing it with
    minicnn's own exporter changes this function only (its input would then
    be NHWC: :class:`OrtContender` takes the layout from the model's input).
    """
    import io
    import warnings

    torch = torch_contender.torch
    net = torch_contender.net.eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch_contender.x1, buffer, input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    return buffer.getvalue()


class OrtContender:
    """ONNX Runtime (CPU provider, every graph optimization on, ``intra_op_num_threads = n``); inference only.

    One session per thread count (ONNX Runtime fixes its intra-op pool when a
    session is created); ``run`` on a training-size batch and on one sample.
    """

    METRICS = ("infer", "latency")

    def __init__(self, model, onnx_bytes, threads, data_nchw):
        ort = _onnxruntime()
        self.name, self.model, self.backend = "onnxruntime", model, "onnxruntime"
        self.sessions = {}
        for n in threads:
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.intra_op_num_threads = n
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            self.sessions[n] = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        self.input_name = self.sessions[threads[0]].get_inputs()[0].name
        self.xb = data_nchw
        self.x1 = np.ascontiguousarray(data_nchw[:1])

    def infer(self, n_threads, steps):
        run, feed = self.sessions[n_threads].run, {self.input_name: self.xb}
        return _timed(lambda: run(None, feed), steps)

    def latency(self, n_threads, steps):
        run, feed = self.sessions[n_threads].run, {self.input_name: self.x1}
        return _timed(lambda: run(None, feed), steps)


def _openvino():
    try:
        import openvino
    except ImportError:
        return None
    return openvino


#: OpenVINO's two contenders: float32 forced (``INFERENCE_PRECISION_HINT=f32``) and its default precision (bf16
#: where the CPU has AMX/AVX512-BF16, else f32).
OPENVINO_PRECISIONS = {"openvino-f32": {"INFERENCE_PRECISION_HINT": "f32"}, "openvino": {}}


class OpenVinoContender:
    """OpenVINO's CPU plugin on the same ONNX model as ONNX Runtime (``INFERENCE_NUM_THREADS = n``, latency
    hint, one stream); inference only. ``name`` is a key of :data:`OPENVINO_PRECISIONS`."""

    METRICS = ("infer", "latency")

    def __init__(self, model, onnx_bytes, threads, data_nchw, name):
        ov = _openvino()
        self.name, self.model, self.backend = name, model, name
        core = ov.Core()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.onnx")
            write_bytes(path, onnx_bytes)
            network = core.read_model(path)
        self.requests = {}
        for n in threads:
            config = {"INFERENCE_NUM_THREADS": n, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
                      **OPENVINO_PRECISIONS[name]}
            self.requests[n] = core.compile_model(network, "CPU", config).create_infer_request()
        precision = self.requests[threads[0]].get_compiled_model().get_property("INFERENCE_PRECISION_HINT")
        self.precision = precision.to_string() if hasattr(precision, "to_string") else str(precision)   # "f32"
        self.xb = data_nchw
        self.x1 = np.ascontiguousarray(data_nchw[:1])

    def infer(self, n_threads, steps):
        request, x = self.requests[n_threads], self.xb
        return _timed(lambda: request.infer({0: x}), steps)

    def latency(self, n_threads, steps):
        request, x = self.requests[n_threads], self.x1
        return _timed(lambda: request.infer({0: x}), steps)


def _timed(fn, steps):
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


# ----------------------------------------------------------------------------- physical yardstick
def physical(quick=False):
    """NumPy sgemm GFLOP/s at 1 and 2 BLAS threads and memcpy GB/s, measured now."""
    from threadpoolctl import threadpool_limits

    n = 256 if quick else 1024
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    out = np.empty_like(a)
    result = {"sgemm_n": n}
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            times = _timed(lambda: np.dot(a, a, out=out), 3 if quick else 15)
        result[f"sgemm_gflops_{threads}t"] = round(2 * n**3 / min(times) / 1e9, 1)
    size = (8 if quick else 64) * 2**20
    src = np.ones(size // 4, dtype=np.float32)
    dst = np.empty_like(src)
    times = _timed(lambda: np.copyto(dst, src), 3 if quick else 15)
    result["memcpy_gbs"] = round(2 * size / _median(times) / 1e9, 1)   # bytes read + written
    return result


# ----------------------------------------------------------------------------- subprocess probes
_RSS_CHILD = "rss"
_COLD_CODE = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
t1 = time.perf_counter()
estimator = sys.argv[3] == "estimator"
if estimator:
    import sklearn.base   # what the estimators are built on (timed apart: it is most of their cold start)
t2 = time.perf_counter()
import minicnn
model = minicnn.load(sys.argv[1]) if estimator else minicnn.load_predictor(sys.argv[1])
x = np.load(sys.argv[2])
t3 = time.perf_counter()
pred = model.predict(x)
t4 = time.perf_counter()
print(json.dumps({"in_process_s": t4 - t0, "numpy_import_s": t1 - t0, "sklearn_import_s": t2 - t1,
                  "minicnn_import_load_s": t3 - t2, "predict_s": t4 - t3,
                  "numba_imported": "numba" in sys.modules, "sklearn_imported": "sklearn" in sys.modules}))
"""

#: The same cold start in ONNX Runtime, on the model exported by :func:`minicnn.export_onnx` (the peer's number).
_COLD_ORT_CODE = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
t1 = time.perf_counter()
import onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
t3 = time.perf_counter()
name = session.get_inputs()[0].name
pred = session.run(None, {name: x.reshape(len(x), -1) if len(session.get_inputs()[0].shape) == 2 else x})
t4 = time.perf_counter()
print(json.dumps({"in_process_s": t4 - t0, "numpy_import_s": t1 - t0, "sklearn_import_s": 0.0,
                  "minicnn_import_load_s": t3 - t1, "predict_s": t4 - t3,
                  "numba_imported": "numba" in sys.modules, "sklearn_imported": "sklearn" in sys.modules}))
"""

#: The two ways to load a saved model: ``minicnn.load`` (an estimator) and ``minicnn.load_predictor``; with
#: ONNX Runtime installed, ``onnxruntime`` (an ``InferenceSession`` of the exported model) is timed beside them.
COLD_PATHS = ("estimator", "predictor")
COLD_ORT_PATH = "onnxruntime"


def _child_env():
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent.parent)  # the folder holding the minicnn package
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _vm_hwm_kib():
    """Peak RSS of this process in KiB (``VmHWM``; unlike ``ru_maxrss`` it is not inherited across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _rss_child(model, contender, n_threads, steps):
    """Run in a fresh process: build one contender, train ``steps`` steps, print peak RSS (KiB)."""
    before = _vm_hwm_kib()
    c = TorchContender(model) if contender == "torch" else MinicnnContender(model, contender)
    built = _vm_hwm_kib()
    c.train(n_threads, steps)
    peak = _vm_hwm_kib()
    print(json.dumps({"start_kib": before, "built_kib": built, "peak_kib": peak}))


def measure_rss(model, contender, n_threads, steps):
    """Peak RSS (MiB) of a fresh process that builds one contender and trains ``steps`` steps."""
    cmd = [sys.executable, "-m", "minicnn.tools.bench", "--_child", _RSS_CHILD, model, contender, str(n_threads),
           str(steps)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_child_env(), timeout=600)
    if done.returncode != 0:
        return {"model": model, "contender": contender, "error": done.stderr.strip().splitlines()[-1:]}
    info = json.loads(done.stdout.strip().splitlines()[-1])
    return {"model": model, "contender": contender, "threads": n_threads, "peak_rss_mib": round(info["peak_kib"] / 1024, 1),
            "training_delta_mib": round((info["peak_kib"] - info["built_kib"]) / 1024, 1)}


def measure_cold_start(model, workdir, repeats, with_ort=True):
    """Save a fitted ``model`` (backend auto), then time fresh processes that load it and predict one sample.

    Interleaves the load paths (:data:`COLD_PATHS`, and :data:`COLD_ORT_PATH` on the ONNX export when
    ``onnxruntime`` and ``onnx`` are installed and ``with_ort``); returns one result per path, medians of
    ``repeats`` fresh processes each.
    """
    c = MinicnnContender(model, "auto")
    path, xpath = os.path.join(workdir, f"{model}.npz"), os.path.join(workdir, f"{model}_x1.npy")
    c.clf.save(path)
    np.save(xpath, c.x1)
    paths = {kind: (_COLD_CODE, path, xpath, kind) for kind in COLD_PATHS}
    if with_ort and _onnxruntime() is not None:
        try:
            from ..onnx import export_onnx

            onnx_path = os.path.join(workdir, f"{model}.onnx")
            export_onnx(c.clf, onnx_path)
            paths[COLD_ORT_PATH] = (_COLD_ORT_CODE, onnx_path, xpath)
        except ImportError:   # onnx itself missing: no exported model to time
            pass
    runs = {kind: [] for kind in paths}
    for kinds in rotated_rounds(paths, repeats):
        for kind, args in ((kind, paths[kind]) for kind in kinds):
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True, env=_child_env(),
                                  timeout=300)
            wall = time.perf_counter() - start
            if done.returncode != 0:
                return [{"model": model, "path": kind, "error": done.stderr.strip().splitlines()[-1:]}]
            runs[kind].append(dict(json.loads(done.stdout.strip().splitlines()[-1]), wall_s=wall))
    out = []
    for kind in paths:
        entry = {"model": model, "path": kind, "repeats": repeats}
        for key in ("wall_s", "in_process_s", "numpy_import_s", "sklearn_import_s", "minicnn_import_load_s",
                    "predict_s"):
            entry[key] = round(_median([r[key] for r in runs[kind]]), 3)
        entry["numba_imported"] = any(r["numba_imported"] for r in runs[kind])
        entry["sklearn_imported"] = any(r["sklearn_imported"] for r in runs[kind])
        out.append(entry)
    return out


# ----------------------------------------------------------------------------- the run
def macs_per_sample(network):
    """Multiply-adds of one sample's forward pass through the conv and dense layers of ``network``."""
    total = 0
    for layer in network.walk():   # inner layers of blocks too
        w = layer.params.get("w")
        if w is not None:
            total += int(np.prod(layer.output_shape)) * (w.size // w.shape[-1])
    return total


#: Floating-point operations of a training step relative to the forward pass (forward + input and weight gradients).
TRAIN_FLOP_FACTOR = 3


def _result_row(model, name, n, m, report):
    """One result row: medians of the timed metrics, effective GFLOP/s and their share of the same-run sgemm."""
    batch = _spec(model)["batch_size"]
    row = {"model": model, "contender": name, "threads": n}
    flops = 2 * report["macs_per_sample"].get(model, 0)
    peak = report["physical"].get(f"sgemm_gflops_{n}t")
    if "train" in m:
        row["train_samples_s"] = round(batch / _median(m["train"]), 1)
        row["train_gflops"] = round(TRAIN_FLOP_FACTOR * flops * row["train_samples_s"] / 1e9, 2)
        row["n_train_steps"] = len(m["train"])
    row["infer_samples_s"] = round(batch / _median(m["infer"]), 1)
    row["infer_gflops"] = round(flops * row["infer_samples_s"] / 1e9, 2)
    if peak:
        row["infer_pct_sgemm"] = round(100 * row["infer_gflops"] / peak, 1)
        if "train" in m:
            row["train_pct_sgemm"] = round(100 * row["train_gflops"] / peak, 1)
    row["latency_predict_us"] = round(1e6 * _median(m["latency"]), 1)
    if "latency_engine" in m:
        row["latency_forward_us"] = round(1e6 * _median(m["latency_engine"]), 1)
    return row


#: Ratio columns: (suffix, reference contender).
REFERENCES = (("torch", "torch"), ("ort", "onnxruntime"), ("ov_f32", "openvino-f32"), ("ov", "openvino"))


def _add_ratios(results):
    """``<metric>_vs_torch`` / ``<metric>_vs_ort``: throughput as minicnn / reference, latency as minicnn / reference
    time (so > 1 is ahead for throughput, behind for latency); the reference's one-sample time is its ``run``/forward."""
    by = {(r["model"], r["contender"], r["threads"]): r for r in results}
    for r in results:
        if not r["contender"].startswith("minicnn"):
            continue
        for suffix, ref_name in REFERENCES:
            ref = by.get((r["model"], ref_name, r["threads"]))
            if ref is None:
                continue
            for key, ref_key, ratio in (("train_samples_s", "train_samples_s", f"train_vs_{suffix}"),
                                        ("infer_samples_s", "infer_samples_s", f"infer_vs_{suffix}"),
                                        ("latency_predict_us", "latency_predict_us", f"latency_vs_{suffix}"),
                                        ("latency_forward_us", "latency_forward_us", f"latency_forward_vs_{suffix}")):
                ref_value = ref.get(ref_key, ref.get("latency_predict_us") if key == "latency_forward_us" else None)
                if r.get(key) and ref_value:
                    r[ratio] = round(r[key] / ref_value, 2)


def run(models, backends, threads, rounds, steps, quick=False, with_torch=True, rss=True, cold=True, verbose=True,
        with_ort=True, with_openvino=True):
    """Measure everything; return the result dict (see the module docstring)."""
    torch = _torch() if with_torch else None
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if verbose else (lambda *a: None)
    report = {"command": "python -m minicnn.tools.bench " + " ".join(sys.argv[1:]) if sys.argv else "",
              "machine": machine_description(torch),
              "load_average_start": _load_average(), "settings": {"rounds": rounds, "steps": steps,
                                                                  "threads": list(threads)}}
    log("physical yardstick ...")
    report["physical"] = physical(quick)
    contenders, report["macs_per_sample"] = [], {}
    ort = _onnxruntime() if with_ort else None
    report["machine"]["onnxruntime"] = ort.__version__ if ort is not None else None
    ov = _openvino() if with_openvino else None
    report["machine"]["openvino"] = ov.__version__ if ov is not None else None
    if with_openvino and ov is None:
        log("openvino skipped: not installed (pip install openvino)")
    for model in models:
        for backend in backends:
            if backend == "numpy" and model not in NUMPY_MODELS:
                continue
            log(f"building {model} minicnn-{backend} ...")
            contenders.append(MinicnnContender(model, backend))
            report["macs_per_sample"].setdefault(model, macs_per_sample(contenders[-1].clf.network_))
        if torch is not None:
            contenders.append(TorchContender(model))
            if ort is not None:
                log(f"building {model} onnxruntime (ONNX exported from the torch model) ...")
                torch_c = contenders[-1]
                contenders.append(OrtContender(model, onnx_model(torch_c), list(threads), torch_c.xb.numpy()))
            if ov is not None:
                torch_c = next(c for c in contenders if c.name == "torch" and c.model == model)
                for name in OPENVINO_PRECISIONS:
                    log(f"building {model} {name} (the same ONNX model) ...")
                    contenders.append(OpenVinoContender(model, onnx_model(torch_c), list(threads),
                                                        torch_c.xb.numpy(), name))
                    report["machine"][f"{name}_precision"] = contenders[-1].precision
        elif ort is not None or ov is not None:
            log("onnxruntime/openvino skipped: their model is exported from the torch contender (torch not available)")
    samples = {}
    for r in range(rounds + 1):   # round 0 is the warm-up, discarded
        log(f"round {r}/{rounds}{' (warm-up)' if r == 0 else ''} load={_load_average()}")
        for c in contenders:
            k = max(1, steps // (4 if c.backend == "numpy" else 1))
            for n in threads:
                key = (c.model, c.name, n)
                for metric in c.METRICS:
                    times = getattr(c, metric)(n, k if metric in ("train", "infer") else 3 * k)
                    if r > 0:
                        samples.setdefault(key, {}).setdefault(metric, []).extend(times)
    results = [_result_row(model, name, n, m, report) for (model, name, n), m in samples.items()]
    _add_ratios(results)
    report["results"] = results
    report["load_average_timing_end"] = _load_average()
    if rss:
        report["rss"] = []
        n = max(threads)
        for model in models:
            for name in [b for b in backends if b == "auto" or not quick] + (["torch"] if torch else []):
                if name == "numpy" and model not in NUMPY_MODELS:
                    continue
                log(f"peak RSS {model} {name} ...")
                report["rss"].append(measure_rss(model, name, n, 3 if quick else 20))
    if cold:
        with tempfile.TemporaryDirectory() as tmp:
            report["cold_start"] = []
            for model in models:
                log(f"cold start {model} ...")
                report["cold_start"].extend(measure_cold_start(model, tmp, 1 if quick else 5))
    report["load_average_end"] = _load_average()
    report["targets"] = evaluate_targets(report)
    return report


def _grid_callers(contender):
    """``call(x_nhwc, x_nchw, n_threads)`` running one inference of ``contender`` on a batch."""
    if isinstance(contender, MinicnnContender):
        clf = contender.clf

        def call(x, _, n):
            clf.n_threads = n
            clf.predict_proba(x)
        return call
    if isinstance(contender, TorchContender):
        torch, net = contender.torch, contender.net.eval()

        def call(_, x, n):
            torch.set_num_threads(n)
            with torch.inference_mode():
                net(torch.from_numpy(x))
        return call
    if isinstance(contender, OrtContender):
        return lambda _, x, n: contender.sessions[n].run(None, {contender.input_name: x})
    return lambda _, x, n: contender.requests[n].infer({0: x})


def run_grid(threads, rounds, steps, sizes=GRID_SIZES, batches=GRID_BATCHES, log=lambda *a: None):
    """Inference samples/s of every contender on the 3-channel grid, interleaved per size (medians).

    Per image size: minicnn (backend auto), then PyTorch, ONNX Runtime and OpenVINO (f32 and default precision)
    where installed, on the same architecture; round after round every contender, batch and thread count in
    turn. Each measurement repeats a call up to ``steps`` times or about 0.2 s.
    """
    torch, ort, ov = _torch(), _onnxruntime(), _openvino()
    rows = []
    for size in sizes:
        model = f"rgb{size}"
        log(f"grid: building {model} ...")
        contenders = [MinicnnContender(model, "auto")]
        if torch is not None:
            contenders.append(TorchContender(model))
            torch_c = contenders[-1]
            # exported only for a peer that reads it, as run() does (the export itself needs the onnx package)
            onnx_bytes = onnx_model(torch_c) if ort is not None or ov is not None else None
            if ort is not None:
                contenders.append(OrtContender(model, onnx_bytes, list(threads), torch_c.xb.numpy()))
            if ov is not None:
                contenders += [OpenVinoContender(model, onnx_bytes, list(threads), torch_c.xb.numpy(), name)
                               for name in OPENVINO_PRECISIONS]
        callers = [(c.name, _grid_callers(c)) for c in contenders]
        X, _ = _data(model, max(batches), seed=1)
        inputs = {b: (X[:b].copy(), np.ascontiguousarray(X[:b].transpose(0, 3, 1, 2))) for b in batches}
        times, repeats = {}, {}
        for r in range(rounds + 1):   # round 0 warms up and sizes the repeats
            log(f"grid {model} round {r}/{rounds} load={_load_average()}")
            for b in batches:
                for n in threads:
                    for name, call in callers:
                        key = (name, b, n)
                        k = repeats.get(key, 1)
                        spent = _timed(lambda: call(*inputs[b], n), k)
                        if r == 0:
                            repeats[key] = max(1, min(steps, int(0.2 / max(min(spent), 1e-6))))
                        else:
                            times.setdefault(key, []).extend(spent)
        for (name, b, n), t in times.items():
            rows.append({"size": size, "batch": b, "threads": n, "contender": name,
                         "samples_s": round(b / _median(t), 1)})
    by = {(r["size"], r["batch"], r["threads"], r["contender"]): r for r in rows}
    for r in rows:
        if r["contender"] == "minicnn-auto":
            for suffix, ref in REFERENCES:
                other = by.get((r["size"], r["batch"], r["threads"], ref))
                if other:
                    r[f"vs_{suffix}"] = round(r["samples_s"] / other["samples_s"], 2)
    return rows


def format_grid(rows):
    """The grid rows of minicnn as a table of samples/s and throughput ratios (> 1: minicnn ahead)."""
    header = ("size", "batch", "thr", "minicnn/s") + tuple(f"x {ref}" for _, ref in REFERENCES)
    table = [header]
    for r in rows:
        if r["contender"] == "minicnn-auto":
            table.append((f"{r['size']}px", str(r["batch"]), str(r["threads"]), f"{r['samples_s']:.0f}",
                          *(str(r.get(f"vs_{suffix}", "")) for suffix, _ in REFERENCES)))
    return ["3-channel grid, inference samples/s (conv32-pool-conv64-pool-dense128; x ref: minicnn / ref):",
            *_table(table)]


def _lookup(report, model, field, threads):
    rows = {(r["contender"], r["threads"]): r for r in report["results"] if r["model"] == model}
    best = {n: r for (name, n), r in rows.items() if name == "minicnn-auto"}
    if field == "thread_scaling":
        return (best[2]["train_samples_s"] / best[1]["train_samples_s"]
                if 1 in best and 2 in best and "train_samples_s" in best[1] else None)
    if field == "rss_ratio":
        rss = {r["contender"]: r.get("peak_rss_mib") for r in report.get("rss", []) if r["model"] == model}
        return rss["auto"] / rss["torch"] if rss.get("auto") and rss.get("torch") else None
    if field.startswith("numba_vs_cython_"):
        key = field.rsplit("_", 1)[1] + "_samples_s"
        numba, cython = rows.get(("minicnn-numba", threads)), rows.get(("minicnn-cython", threads))
        return numba[key] / cython[key] if numba and cython and key in numba and key in cython else None
    row = best.get(threads)
    return None if row is None else row.get(field)


def _cold_lookup(cold, field):
    """The slowest model's cold-start wall time of load path ``field``, or ``<path>_vs_ort``: the largest ratio of
    that path's wall time to ONNX Runtime's on the same model (< 1: minicnn starts faster)."""
    wall = {(c["model"], c["path"]): c["wall_s"] for c in cold if "wall_s" in c}
    if field.endswith("_vs_ort"):
        path = field[:-len("_vs_ort")]
        ratios = [t / wall[(model, COLD_ORT_PATH)] for (model, p), t in wall.items()
                  if p == path and wall.get((model, COLD_ORT_PATH))]
        return max(ratios, default=None)
    return max((t for (_, p), t in wall.items() if p == field), default=None)


def evaluate_targets(report):
    """The issue's targets with the reached value (minicnn-auto) and whether each is met."""
    out = []
    for text, (model, field, threads), op, value in TARGETS:
        if model == "cold":
            reached = _cold_lookup(report.get("cold_start") or [], field)
        else:
            reached = _lookup(report, model, field, threads)
        met = None if reached is None else (reached >= value if op == ">=" else reached <= value)
        out.append({"target": text, "reached": None if reached is None else round(reached, 3), "met": met})
    return out


# ----------------------------------------------------------------------------- output
def format_report(report):
    """The report as plain-text tables."""
    lines = [f"machine: {report['machine']['cpu']}, {report['machine']['cpus']} CPUs, python "
             f"{report['machine']['python']}, numpy {report['machine']['numpy']}, torch {report['machine']['torch']}, "
             f"onnxruntime {report['machine'].get('onnxruntime')}",
             f"kernels: {report['machine'].get('kernels')}",
             f"load average: start {report['load_average_start']}, end {report.get('load_average_end')}",
             "physical: " + ", ".join(f"{k}={v}" for k, v in report["physical"].items()), ""]
    f = lambda r, key, fmt=".2f": "" if r.get(key) is None else format(r[key], fmt)
    lines += ["training (samples/s of a forward + backward + Adam step; GFLOP/s effective, "
              f"{TRAIN_FLOP_FACTOR}x the forward's):"]
    rows = [("model", "contender", "thr", "train/s", "x torch", "GFLOP/s", "% sgemm")]
    for r in report["results"]:
        if "train_samples_s" in r:
            rows.append((r["model"], r["contender"], str(r["threads"]), f(r, "train_samples_s", ".0f"),
                         f(r, "train_vs_torch"), f(r, "train_gflops"), f(r, "train_pct_sgemm", ".1f")))
    lines += _table(rows)
    lines += ["", "inference (batch: samples/s; one sample: predict = estimator incl. validation, forward = engine "
              "alone; x ort/x torch: throughput minicnn/ref (>1 ahead), latency minicnn/ref time (<1 ahead)):"]
    rows = [("model", "contender", "thr", "infer/s", "x ort", "x torch", "GFLOP/s", "% sgemm", "predict1 us", "x ort",
             "x torch", "forward1 us", "x ort", "x torch")]
    for r in report["results"]:
        rows.append((r["model"], r["contender"], str(r["threads"]), f(r, "infer_samples_s", ".0f"), f(r, "infer_vs_ort"),
                     f(r, "infer_vs_torch"), f(r, "infer_gflops"), f(r, "infer_pct_sgemm", ".1f"),
                     f(r, "latency_predict_us", ".1f"), f(r, "latency_vs_ort"), f(r, "latency_vs_torch"),
                     f(r, "latency_forward_us", ".1f"), f(r, "latency_forward_vs_ort"),
                     f(r, "latency_forward_vs_torch")))
    lines += _table(rows)
    ov_rows = [r for r in report["results"] if r.get("infer_vs_ov_f32") or r.get("infer_vs_ov")]
    if ov_rows:
        lines += ["", "vs OpenVINO (x ov_f32: INFERENCE_PRECISION_HINT=f32; x ov: its default precision, "
                  f"here {report['machine'].get('openvino_precision')}; throughput and one-sample time as above):"]
        rows = [("model", "contender", "thr", "infer x ov_f32", "infer x ov", "predict1 x ov_f32", "predict1 x ov")]
        for r in ov_rows:
            rows.append((r["model"], r["contender"], str(r["threads"]), f(r, "infer_vs_ov_f32"), f(r, "infer_vs_ov"),
                         f(r, "latency_vs_ov_f32"), f(r, "latency_vs_ov")))
        lines += _table(rows)
    if report.get("grid"):
        lines += ["", *format_grid(report["grid"])]
    if report.get("rss"):
        lines += ["", "peak RSS of a training run (own subprocess):"]
        rows = [("model", "contender", "peak MiB", "training delta MiB")]
        for r in report["rss"]:
            rows.append((r["model"], r["contender"], str(r.get("peak_rss_mib", r.get("error"))),
                         str(r.get("training_delta_mib", ""))))
        lines += _table(rows)
    if report.get("cold_start"):
        lines += ["", "cold start (fresh process: import minicnn, load, predict 1 sample; backend auto;",
                  "path estimator = minicnn.load, predictor = minicnn.load_predictor, onnxruntime = an",
                  "InferenceSession of the exported model, its 'minicnn import+load' column being onnxruntime's):"]
        keys = ("wall_s", "in_process_s", "numpy_import_s", "sklearn_import_s", "minicnn_import_load_s", "predict_s",
                "sklearn_imported", "numba_imported")
        rows = [("model", "path", "wall s", "in-process s", "numpy import", "sklearn import", "minicnn import+load",
                 "predict s", "sklearn loaded", "numba loaded")]
        for c in report["cold_start"]:
            rows.append((c["model"], c.get("path", ""), *(str(c.get(k, c.get("error"))) for k in keys)))
        lines += _table(rows)
    lines += ["", "targets (minicnn-auto; reported, not asserted):"]
    rows = [("target", "reached", "met")]
    for t in report["targets"]:
        rows.append((t["target"], str(t["reached"]), {True: "yes", False: "NO", None: "n/a"}[t["met"]]))
    lines += _table(rows)
    return "\n".join(lines)


def _table(rows):
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = ["  ".join(c.rjust(w) if i >= 2 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
           for row in rows]
    return [out[0], "-" * len(out[0]), *out[1:]]


class _OneLineParser(argparse.ArgumentParser):
    """Errors on one line (exit code 2), as every other ``minicnn`` command."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _parse(argv):
    p = _OneLineParser(prog="minicnn bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a few-second smoke run (digits, auto, 1 thread)")
    p.add_argument("--models", default=None, help="comma list of " + ",".join(MODELS))
    p.add_argument("--backends", default=None, help="comma list of " + ",".join(ENGINE_BACKENDS))
    p.add_argument("--threads", default=None, help="comma list of thread counts (default 1,2)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds after the warm-up (default 5)")
    p.add_argument("--steps", type=int, default=None, help="steps per contender per round (default 10)")
    p.add_argument("--no-torch", action="store_true",
                   help="skip PyTorch even when installed (and ONNX Runtime, whose model is exported from it)")
    p.add_argument("--no-onnxruntime", action="store_true", help="skip ONNX Runtime even when installed")
    p.add_argument("--no-openvino", action="store_true", help="skip OpenVINO even when installed")
    p.add_argument("--grid", action="store_true",
                   help="also run the 3-channel grid (28, 64, 128 px; batch 1, 8, 64, 256; inference)")
    p.add_argument("--no-rss", action="store_true", help="skip the peak-RSS subprocesses")
    p.add_argument("--no-cold-start", action="store_true", help="skip the cold-start subprocesses")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    p.add_argument("--_child", nargs="+", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    """Entry point of ``minicnn bench`` / ``python -m minicnn.tools.bench``; returns an exit code."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args._child:
        _, model, contender, n_threads, steps = args._child
        _rss_child(model, contender, int(n_threads), int(steps))
        return 0
    split = lambda s: [v.strip() for v in s.split(",") if v.strip()]
    models = split(args.models) if args.models else (["digits"] if args.quick else list(MODELS))
    backends = split(args.backends) if args.backends else (["auto"] if args.quick else list(ENGINE_BACKENDS))
    threads = [int(t) for t in split(args.threads)] if args.threads else ([1] if args.quick else [1, 2])
    bad = [m for m in models if m not in MODELS] + [b for b in backends if b not in ENGINE_BACKENDS]
    if bad or not threads or min(threads) < 1:
        raise SystemExit(f"minicnn bench: unknown models/backends {bad} or bad --threads={args.threads!r}")
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 5)
    steps = args.steps if args.steps is not None else (2 if args.quick else 10)
    report = run(models, backends, threads, rounds, steps, quick=args.quick, with_torch=not args.no_torch,
                 rss=not args.no_rss, cold=not args.no_cold_start, with_ort=not args.no_onnxruntime,
                 with_openvino=not args.no_openvino)
    if args.grid:
        log = lambda *a: print(*a, file=sys.stderr, flush=True)
        report["grid"] = run_grid(threads, rounds, steps, log=log)
    print(format_report(report))
    if args.json:
        from ..files import write_text

        write_text(args.json, json.dumps(report, indent=1))   # atomically
        from .._cli_report import wrote

        with open(args.json) as written:
            json.load(written)
        print(wrote(args.json, "JSON, every number of this run", "read back as JSON"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
