"""Decode + resize + stack of a folder of small JPEGs: minicnn, torchvision and Keras side by side.

Run ``python benchmarks/bench_image_loaders.py [--n 10000] [--size 32] [--rounds 5]``.
Once, it writes ``--n`` 64x64 RGB JPEGs in 10 class folders under ``--root``
(default ``/tmp/minicnn-bench-jpegs``; kept between runs): Fashion-MNIST
images (from the Debian ``fashion-mnist`` idx files, else digits) scaled to
64x64 and coloured per image (a random tint and background), quality 90.
Then, in interleaved rounds (the order rotates every round), each loader runs
in a fresh process that imports its library, then times reading the whole
folder into one float32 array in [0, 1] of ``--size`` x ``--size`` RGB images:

* ``minicnn``: ``load_image_folder(root, image_size=(s, s), color="rgb",
  n_threads=2)`` (NHWC; ``--threads N`` for another count);
* ``torchvision``: ``ImageFolder(root, Resize((s, s)) + ToTensor())`` in a
  ``DataLoader(batch_size=256, num_workers=2)``, batches concatenated (NCHW);
  when torchvision's compiled operators do not load with the installed torch
  (a CUDA wheel on a CPU torch), its meta registrations are skipped: the
  Python ``ImageFolder``, ``Resize`` and ``ToTensor`` used here do not call
  them;
* ``keras``: ``keras.utils.image_dataset_from_directory(root, image_size=(s, s),
  batch_size=256, shuffle=False)`` iterated and concatenated, divided by 255,
  run by ``--keras-python`` (a separate environment with keras and
  tensorflow-cpu: ``python -m venv /tmp/kerasenv && /tmp/kerasenv/bin/pip
  install keras tensorflow-cpu pillow numpy``; skipped when absent);
* ``minicnn cache``: ``cache=DIR`` decoding and writing the cache (first),
  then the same call reading it (second), in one process;
* ``minicnn-reduced``: the ``minicnn`` call with ``reducing_gap=1.0`` (libjpeg
  decodes each JPEG at 1/2 scale, 32x32, in the DCT domain: Pillow's
  ``Image.draft``, as ``Image.thumbnail`` does; other pixels, mean |diff|
  reported; recorded in the model);
* ``minicnn-before`` (with ``--before DIR``): the ``minicnn`` row run with
  ``DIR`` first on ``PYTHONPATH``, e.g. an export of an earlier commit
  (``git archive COMMIT minicnn | tar -x -C DIR``), for an A/B in one run.

Correctness first: every loader's array is compared with minicnn's in the
first round (torchvision resizes with Pillow's bilinear filter, so equal;
Keras decodes with libjpeg-turbo through TensorFlow and resizes with
``tf.image.resize``: the mean difference is reported). Reported per loader:
median seconds, images/s, and the peak RSS (VmHWM) of the process, with the
RSS after imports before reading any image, and for torchvision the largest
worker's peak. The load average is printed before and after.
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

DEFAULT_ROOT = "/tmp/minicnn-bench-jpegs"


def write_jpegs(root, n, seed=0):
    """``n`` 64x64 RGB JPEGs in 10 class folders, from Fashion-MNIST (or digits), coloured per image."""
    from PIL import Image

    from minicnn import datasets

    try:
        X, y = datasets.load_fashion_mnist()[:2]
    except (FileNotFoundError, OSError):
        X, y = datasets.load_digits_images()
    rng = np.random.default_rng(seed)
    index = rng.choice(len(X), n, replace=len(X) < n)
    for i, j in enumerate(index):
        folder = os.path.join(root, f"class{int(y[j])}")
        os.makedirs(folder, exist_ok=True)
        gray = Image.fromarray(np.rint(X[j, :, :, 0] * 255).astype(np.uint8)).resize((64, 64),
                                                                                       Image.Resampling.BILINEAR)
        g = np.asarray(gray, dtype=np.float32)[:, :, None] / 255
        tint, background = rng.uniform(0.3, 1.0, 3), rng.uniform(0.0, 0.4, 3)
        rgb = np.rint(255 * (g * tint + (1 - g) * background)).astype(np.uint8)
        Image.fromarray(rgb).save(os.path.join(folder, f"{i:06d}.jpg"), quality=90)


_CHILD = r"""
import json, os, resource, sys, time
import numpy as np
loader, root, size, out, n_threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])

def cpu():
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

def rss(key):
    with open("/proc/self/status") as f:
        return [int(line.split()[1]) / 1024 for line in f if line.startswith(key)][0]

result = {}
cpu_start = None
if loader == "torchvision":
    import torch
    try:
        import torchvision
    except RuntimeError:   # a CUDA wheel's operators on a CPU torch: the folder reading needs none of them
        import types
        sys.modules.pop("torchvision", None)
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
        import torchvision
        result["note"] = "compiled operators not loaded"
    from torchvision import datasets, transforms
    torch.set_num_threads(1)
    result["version"] = torchvision.__version__
    base = rss("VmRSS:")
    start, cpu_start = time.perf_counter(), cpu()
    dataset = datasets.ImageFolder(root, transform=transforms.Compose([
        transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BILINEAR),
        transforms.ToTensor()]))
    loader_ = torch.utils.data.DataLoader(dataset, batch_size=256, num_workers=2)
    xs, ys = [], []
    for x, t in loader_:
        xs.append(x)
        ys.append(t)
    X, y = torch.cat(xs).numpy(), torch.cat(ys).numpy()
    seconds, cpu_s = time.perf_counter() - start, cpu() - cpu_start
    del loader_
    result["worker_peak_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    X = X.transpose(0, 2, 3, 1)
elif loader == "keras":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras, tensorflow as tf
    result["version"] = f"keras {keras.__version__}, tensorflow {tf.__version__}"
    base = rss("VmRSS:")
    start, cpu_start = time.perf_counter(), cpu()
    ds = keras.utils.image_dataset_from_directory(root, image_size=(size, size), batch_size=256, shuffle=False,
                                                  interpolation="bilinear", verbose=False)
    xs, ys = [], []
    for x, t in ds:
        xs.append(x.numpy())
        ys.append(t.numpy())
    X = np.concatenate(xs)
    X /= np.float32(255)
    y = np.concatenate(ys)
    seconds, cpu_s = time.perf_counter() - start, cpu() - cpu_start
else:
    import shutil, tempfile
    import minicnn
    from minicnn.datasets import load_image_folder
    result["version"] = f"from {os.path.dirname(os.path.dirname(minicnn.__file__))}"
    base = rss("VmRSS:")
    if loader in ("minicnn", "minicnn-before", "minicnn-reduced"):
        gap = {"reducing_gap": 1.0} if loader == "minicnn-reduced" else {}
        start, cpu_start = time.perf_counter(), cpu()
        X, y, _ = load_image_folder(root, image_size=(size, size), color="rgb", n_threads=n_threads, **gap)
        seconds, cpu_s = time.perf_counter() - start, cpu() - cpu_start
    else:
        cache = tempfile.mkdtemp(prefix="minicnn-bench-cache-")
        try:
            start, cpu_start = time.perf_counter(), cpu()
            load_image_folder(root, image_size=(size, size), color="rgb", n_threads=n_threads, cache=cache)
            result["first"], result["first_cpu"] = time.perf_counter() - start, cpu() - cpu_start
            start, cpu_start = time.perf_counter(), cpu()
            X, y, _ = load_image_folder(root, image_size=(size, size), color="rgb", n_threads=n_threads, cache=cache)
            seconds, cpu_s = time.perf_counter() - start, cpu() - cpu_start
            start = time.perf_counter()
            load_image_folder(root, image_size=(size, size), color="rgb", n_threads=n_threads, cache=cache,
                              mmap_mode="r")
            result["mmap"] = time.perf_counter() - start
        finally:
            shutil.rmtree(cache)
    X = np.asarray(X)
result.update(seconds=seconds, cpu_s=cpu_s, peak_mib=rss("VmHWM:"), base_mib=base, shape=list(X.shape), dtype=str(X.dtype))
if out != "-":
    np.save(out + ".X.npy", np.ascontiguousarray(X, dtype=np.float32))
    np.save(out + ".y.npy", np.asarray(y))
print(json.dumps(result))
"""


def run_child(python, loader, root, size, out, env, cwd=None, n_threads=2):
    """One loader in a fresh process (``cwd``: its working folder, first on its ``sys.path``)."""
    done = subprocess.run([python, "-c", _CHILD, loader, root, str(size), out, str(n_threads)], env=env,
                          capture_output=True, text=True, cwd=cwd)
    if done.returncode:
        raise RuntimeError(f"{loader} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000, help="number of JPEGs (default 10000)")
    parser.add_argument("--size", type=int, default=32, help="resize to SIZE x SIZE (default 32)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians are reported")
    parser.add_argument("--root", default=DEFAULT_ROOT, help="folder of the JPEGs (written once)")
    parser.add_argument("--keras-python", default="/tmp/kerasenv/bin/python",
                        help="python of an environment with keras and tensorflow-cpu (skipped when absent)")
    parser.add_argument("--loaders", default="minicnn,torchvision,keras,minicnn-cache")
    parser.add_argument("--threads", type=int, default=2,
                        help="n_threads of the minicnn rows (default 2, as torchvision's num_workers)")
    parser.add_argument("--before", default=None,
                        help="a folder holding an earlier minicnn package: adds the row minicnn-before")
    args = parser.parse_args(argv)

    root = os.path.abspath(os.path.join(args.root, str(args.n)))
    if not os.path.isdir(root):
        print(f"writing {args.n} 64x64 RGB JPEGs under {root} ...", flush=True)
        write_jpegs(root + ".tmp", args.n)
        os.replace(root + ".tmp", root)
    for d, _, files in os.walk(root):   # the files in the page cache before any timing, for every loader alike
        for f in files:
            with open(os.path.join(d, f), "rb") as fh:
                fh.read()
    loaders = args.loaders.split(",")
    if "torchvision" in loaders and importlib.util.find_spec("torchvision") is None:
        print("torchvision: skipped (not installed: pip install torchvision==0.28.0 --no-deps)")
        loaders.remove("torchvision")
    if "keras" in loaders and not os.path.exists(args.keras_python):
        print(f"keras: skipped ({args.keras_python} not found)")
        loaders.remove("keras")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="2")
    keras_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    envs, cwds = {"keras": keras_env}, {}
    if args.before is not None:   # python -c puts its working folder first on sys.path: run it there
        loaders.insert(1, "minicnn-before")
        cwds["minicnn-before"] = os.path.abspath(args.before)
        envs["minicnn-before"] = dict(env, PYTHONPATH=os.pathsep.join([cwds["minicnn-before"],
                                                                       env["PYTHONPATH"]]))
    results = {name: [] for name in loaders}
    print(f"load average before: {loadavg()}  ({os.cpu_count()} CPUs)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = loaders[r % len(loaders):] + loaders[:r % len(loaders)]
            for name in order:
                out = os.path.join(tmp, name) if r == 0 else "-"
                python = args.keras_python if name == "keras" else sys.executable
                results[name].append(run_child(python, name, root, args.size, out, envs.get(name, env),
                                               cwds.get(name), args.threads))
            print(f"round {r + 1}: " + ", ".join(f"{n} {results[n][-1]['seconds']:.2f} s "
                                                  f"({results[n][-1]['cpu_s']:.2f} CPU s)" for n in loaders),
                  flush=True)
        X = np.load(os.path.join(tmp, "minicnn.X.npy"))
        y = np.load(os.path.join(tmp, "minicnn.y.npy"))
        agreement = {}
        for name in loaders:
            Xo, yo = np.load(os.path.join(tmp, f"{name}.X.npy")), np.load(os.path.join(tmp, f"{name}.y.npy"))
            assert Xo.shape == X.shape and np.array_equal(yo, y), f"{name}: shape {Xo.shape} or labels differ"
            diff = np.abs(Xo - X)
            agreement[name] = (float(diff.max()), float(diff.mean()))
            if name not in ("keras", "minicnn-reduced"):   # the same decoder and filter: the same array
                assert diff.max() <= 1e-6, f"{name} differs from minicnn by {diff.max()}"
    print(f"load average after:  {loadavg()}")
    print(f"\n{args.n} JPEGs 64x64 RGB -> {X.shape[1:]} float32 in [0, 1], median of {args.rounds} interleaved "
          f"rounds (fresh process each)")
    print(f"  {'loader':<14} {'seconds':>8} {'images/s':>9} {'t / minicnn':>11} {'CPU s':>7} {'peak RSS':>9} "
          f"{'after imports':>13}  |diff| max / mean")
    ours = statistics.median(r["seconds"] for r in results["minicnn"]) if "minicnn" in results else None
    for name in loaders:
        t = statistics.median(r["seconds"] for r in results[name])
        peak = statistics.median(r["peak_mib"] for r in results[name])
        cpu_s = statistics.median(r["cpu_s"] for r in results[name])
        base = statistics.median(r["base_mib"] for r in results[name])
        extra = ""
        if name == "torchvision":
            extra = f"  (+ largest worker {statistics.median(r['worker_peak_mib'] for r in results[name]):.0f} MiB)"
        if name == "minicnn-cache":
            first = statistics.median(r["first"] for r in results[name])
            first_cpu = statistics.median(r["first_cpu"] for r in results[name])
            mmap = statistics.median(r["mmap"] for r in results[name])
            ratios = sorted(r["first"] / r["seconds"] for r in results[name])
            extra = (f"  (first load, decode + write: {first:.3f} s, {first_cpu:.2f} CPU s; second {first / t:.0f}x "
                     f"faster, per round {ratios[0]:.0f}x to {ratios[-1]:.0f}x; mmap_mode='r' {mmap:.3f} s)")
        ratio = f"{t / ours:.2f}x" if ours else ""
        version = results[name][0].get("version", "")
        print(f"  {name:<14} {t:8.3f} {args.n / t:9.0f} {ratio:>11} {cpu_s:7.2f} {peak:6.0f} MiB {base:9.0f} MiB  "
              f"{agreement[name][0]:.1e} / {agreement[name][1]:.1e}{extra} {version}")


if __name__ == "__main__":
    main()
