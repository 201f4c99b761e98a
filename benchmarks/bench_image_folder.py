"""Reading a folder of small JPEGs: ``load_image_folder`` against a PyTorch loader, then from the cache.

(The benchmark of record against torchvision and Keras, with CPU time and peak memory per loader, is
``benchmarks/bench_image_loaders.py``; ``--memory`` here measures the larger-than-memory route.)

Run ``python benchmarks/bench_image_folder.py [--n 10000] [--size 32]`` (needs Pillow and torch).
It writes ``--n`` 64x64 RGB JPEGs in 10 class folders (not timed), then times
the decode + resize to ``--size`` + stack into one float32 array in [0, 1]:

* ``minicnn``: ``load_image_folder(root, image_size=(size, size))`` on
  ``--threads`` threads (``color="auto"`` reads every header first to choose
  the colour; ``color="rgb"`` skips that pass);
* ``torch``: torchvision's ``ImageFolder`` + ``DataLoader(num_workers=2,
  batch_size=256)`` with ``Resize`` + ``ToTensor`` when torchvision imports;
  otherwise the same work written out (a ``Dataset`` whose ``__getitem__`` is
  torchvision's ``pil_loader`` + Pillow's bilinear resize + ``/255``, which is
  what ``Resize`` + ``ToTensor`` do on a PIL image) in the same ``DataLoader``;
  the output says which ran;
* ``cache, first``: ``load_image_folder(..., cache=DIR)`` decoding and writing
  the cache; ``cache, second``: the same call reading it back;
  ``cache, mmap``: with ``mmap_mode="r"`` (maps the file, reads nothing yet).

Correctness first: the PyTorch arrays must equal minicnn's (both resize with
Pillow's bilinear filter). Each timing is the median of ``--repeats`` runs.

``--memory`` instead measures the larger-than-memory route in fresh
processes: peak memory of loading everything into memory and one epoch of
``partial_fit``, against ``cache=DIR, mmap_mode="r"`` and ``partial_fit`` on
chunks of ``--chunk`` rows. Peak RSS (VmHWM) counts the mapped file pages the
kernel may drop at any time; peak anonymous memory (RssAnon, sampled every
5 ms) is what the process holds itself.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np


def write_jpegs(root, n, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    for i in range(n):
        folder = os.path.join(root, f"class{i % 10}")
        os.makedirs(folder, exist_ok=True)
        pixels = np.repeat(np.repeat(base[i % 10], 8, 0), 8, 1).astype(np.int16)
        pixels += rng.integers(-30, 31, pixels.shape, dtype=np.int16)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(os.path.join(folder, f"{i:06d}.jpg"),
                                                                        quality=90)


def torch_loader(root, size):
    """``(name, load)``: torchvision's ImageFolder when it imports, else the same work as a plain Dataset."""
    import torch
    from PIL import Image

    try:
        from torchvision import datasets, transforms

        dataset = datasets.ImageFolder(root, transform=transforms.Compose([
            transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BILINEAR),
            transforms.ToTensor()]))
        name = "torchvision ImageFolder + DataLoader(num_workers=2)"
    except Exception as exc:   # an import error, or a build whose compiled ops do not match torch
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"

        class Folder(torch.utils.data.Dataset):
            def __init__(self):
                classes = sorted(os.listdir(root))
                self.items = [(os.path.join(root, c, f), k) for k, c in enumerate(classes)
                              for f in sorted(os.listdir(os.path.join(root, c)))]

            def __len__(self):
                return len(self.items)

            def __getitem__(self, index):
                path, label = self.items[index]
                with open(path, "rb") as f:   # torchvision's pil_loader
                    image = Image.open(f).convert("RGB")
                image = image.resize((size, size), Image.Resampling.BILINEAR)   # Resize on a PIL image
                pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())
                return pixels.permute(2, 0, 1).float().div(255), label   # ToTensor

        dataset = Folder()
        name = f"PIL + torch Dataset + DataLoader(num_workers=2) (torchvision not usable: {reason})"

    def load():
        loader = torch.utils.data.DataLoader(dataset, batch_size=256, num_workers=2)
        batches = [(x, t) for x, t in loader]
        return torch.cat([x for x, _ in batches]), torch.cat([t for _, t in batches])
    return name, load


def timed(run, repeats, before=None):
    times, result = [], None
    for _ in range(repeats):
        if before is not None:
            before()
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def speed(args):
    import shutil

    from minicnn.datasets import load_image_folder

    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "photos")
        print(f"writing {args.n} 64x64 RGB JPEGs ...", flush=True)
        write_jpegs(root, args.n)
        size = (args.size, args.size)
        name, load = torch_loader(root, args.size)   # first: forked workers before any OpenMP runs here
        t_torch, (Xt, yt) = timed(load, args.repeats)

        def ours():
            return load_image_folder(root, image_size=size, n_threads=args.threads)
        t_ours, (X, y, _) = timed(ours, args.repeats)
        t_rgb, (X_rgb, _, _) = timed(lambda: load_image_folder(root, image_size=size, color="rgb",
                                                               n_threads=args.threads), args.repeats)
        assert np.array_equal(X_rgb, X)
        same = np.abs(np.asarray(X) - Xt.permute(0, 2, 3, 1).numpy()).max()
        assert same <= 1e-6 and np.array_equal(y, yt.numpy()), f"arrays differ by {same}"
        cache = os.path.join(tmp, "cache")
        t_first, _ = timed(lambda: load_image_folder(root, image_size=size, n_threads=args.threads, cache=cache),
                           args.repeats, before=lambda: shutil.rmtree(cache, ignore_errors=True))
        t_second, (Xc, _, _) = timed(lambda: load_image_folder(root, image_size=size, cache=cache), args.repeats)
        t_mmap, (Xm, _, _) = timed(lambda: load_image_folder(root, image_size=size, cache=cache, mmap_mode="r"),
                                   args.repeats)
        assert np.array_equal(Xc, X) and np.array_equal(Xm, X)
    print(f"{args.n} JPEGs 64x64 RGB -> {size} float32, {args.threads} threads, median of {args.repeats} "
          f"(arrays equal: max |diff| {same:.1e})")
    print(f"  {'minicnn load_image_folder':<34} {t_ours:7.3f} s  ({args.n / t_ours:7.0f} images/s)")
    print(f"  {'minicnn, color=rgb (no header pass)':<34} {t_rgb:7.3f} s  ({args.n / t_rgb:7.0f} images/s)")
    print(f"  {'torch':<34} {t_torch:7.3f} s  ({args.n / t_torch:7.0f} images/s)   [{name}]")
    print(f"  {'minicnn cache, first (+ write)':<34} {t_first:7.3f} s")
    print(f"  {'minicnn cache, second':<34} {t_second:7.3f} s  ({t_ours / t_second:.0f}x faster than decoding)")
    print(f"  {'minicnn cache, mmap_mode=r':<34} {t_mmap:7.3f} s  ({t_ours / t_mmap:.0f}x)")
    print(f"  speed ratio torch / minicnn: {t_torch / t_ours:.2f}")


_MEMORY_CHILD = r"""
import sys, threading, time, warnings
import numpy as np
from minicnn import CNNClassifier
from minicnn.datasets import load_image_folder

route, root, cache, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
peak = [0]
def sample():
    while True:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    peak[0] = max(peak[0], int(line.split()[1]))
        time.sleep(0.005)
threading.Thread(target=sample, daemon=True).start()
clf = CNNClassifier(layers=("conv8", "maxpool", "conv16", "maxpool", "dense32"), batch_size=64, random_state=0,
                    n_threads=2)
time.sleep(0.05)
base = peak[0]   # the interpreter, NumPy, scikit-learn, minicnn: before any image
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    if route == "memory":
        X, y, names = load_image_folder(root, image_size=(64, 64))
        clf.partial_fit(X, y, classes=np.arange(len(names)))
    else:
        X, y, names = load_image_folder(root, image_size=(64, 64), cache=cache, mmap_mode="r")
        order = np.random.default_rng(0).permutation(len(X))   # rows are in class order: mix them
        for rows in np.array_split(order, -(-len(X) // chunk)):
            rows = np.sort(rows)   # read in file order
            clf.partial_fit(X[rows], y[rows], classes=np.arange(len(names)))
time.sleep(0.05)
with open("/proc/self/status") as f:
    hwm = [int(l.split()[1]) for l in f if l.startswith("VmHWM:")][0]
print(f"{X.nbytes / 2**20:.0f} {hwm / 1024:.0f} {peak[0] / 1024:.0f} {base / 1024:.0f}")
"""


def memory(args):
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "photos")
        print(f"writing {args.n} 64x64 RGB JPEGs ...", flush=True)
        write_jpegs(root, args.n)
        cache = os.path.join(tmp, "cache")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
        subprocess.run([sys.executable, "-c", _MEMORY_CHILD, "mmap", root, cache, str(args.chunk)], check=True,
                       env=env, capture_output=True)   # writes the cache (decoding streams into the file)
        print(f"{args.n} images of 64x64x3 float32, one epoch of partial_fit (a 2-conv CNN):")
        for route in ("memory", "mmap"):
            out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, route, root, cache, str(args.chunk)],
                                 check=True, env=env, capture_output=True, text=True).stdout.split()
            label = ("everything in memory" if route == "memory"
                     else f"cache + mmap_mode='r', chunks of {args.chunk}")
            print(f"  {label:<42} X {out[0]:>5} MiB  peak RSS {out[1]:>5} MiB  peak anonymous {out[2]:>5} MiB "
                  f"(of which {out[3]} MiB before reading any image)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="number of JPEGs (the issue's target: 10000)")
    parser.add_argument("--size", type=int, default=32, help="resize to SIZE x SIZE")
    parser.add_argument("--threads", type=int, default=2, help="minicnn decoding threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory", action="store_true", help="measure the larger-than-memory route instead")
    parser.add_argument("--chunk", type=int, default=1000, help="rows per partial_fit call with --memory")
    args = parser.parse_args(argv)
    (memory if args.memory else speed)(args)


if __name__ == "__main__":
    main()
