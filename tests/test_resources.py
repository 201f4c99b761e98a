"""Resource use: no RSS growth over repeated fit/predict cycles, bounded memory when predicting 1,000,000 samples.

Both are opt-in (``--runslow``): they measure the process's resident set size (Linux ``/proc``) and run for a
while. A fast default test checks the mechanism the bound rests on (predict runs in fixed-size batches).
"""

import gc
import os

import numpy as np
import pytest

from minicnn import CNNClassifier, _estimator_base
from minicnn.datasets import load_digits_images

from helpers import first_digits

SMALL = dict(layers=("conv8", "maxpool", "dense16"), padding="same", max_iter=2, backend="auto", random_state=0)


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def reset_peak_rss():
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


needs_proc = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")


def test_predict_runs_in_fixed_size_batches(monkeypatch):
    X, y = load_digits_images()
    est = CNNClassifier(**{**SMALL, "backend": "numpy", "max_iter": 1}).fit(X[:100], y[:100])
    sizes = []
    forward = est.network_.forward
    monkeypatch.setattr(est.network_, "forward", lambda x, *a, **k: sizes.append(len(x)) or forward(x, *a, **k))
    big = np.repeat(X[:10], 300, axis=0)       # 3,000 samples
    est.predict(big)
    assert max(sizes) == _estimator_base.PREDICT_BATCH and sum(sizes) == len(big)


@needs_proc
@pytest.mark.slow
def test_no_rss_growth_over_200_fit_predict_cycles():
    X, y = first_digits(400)

    def cycle(seed):
        est = CNNClassifier(**{**SMALL, "random_state": seed, "max_iter": 1}).fit(X, y)
        est.predict_proba(X)
        est.predict_proba(X, mc_samples=2)

    for seed in range(20):                       # warm up: kernels compiled, caches and pools filled
        cycle(seed)
    gc.collect()
    start = rss_bytes()
    samples = []
    for seed in range(200):
        cycle(seed)
        if seed % 20 == 19:
            gc.collect()
            samples.append(rss_bytes())
    growth = samples[-1] - start
    # A leak of one small network per cycle would be >= 200 x ~40 KiB; allow 16 MiB of allocator noise.
    assert growth < 16 << 20, f"RSS grew by {growth / 2**20:.1f} MiB over 200 cycles: {samples}"
    assert samples[-1] - samples[len(samples) // 2] < 8 << 20, f"RSS still growing: {samples}"


@needs_proc
@pytest.mark.slow
def test_predict_one_million_samples_in_bounded_memory():
    X, y = load_digits_images()
    est = CNNClassifier(**SMALL).fit(X, y)
    n = 1_000_000
    big = np.empty((n, 8, 8, 1), dtype=np.float32)
    for start in range(0, n, len(X)):
        chunk = X[: min(len(X), n - start)]
        big[start:start + len(chunk)] = chunk
    est.predict(big[:2048])                      # warm up the workspaces
    gc.collect()
    if not reset_peak_rss():
        pytest.skip("cannot reset the peak RSS (/proc/self/clear_refs)")
    before = rss_bytes()
    labels = est.predict(big)
    increase = peak_rss_bytes() - before
    logits_bytes = n * len(est.classes_) * 8      # the float64 (n, n_classes) array predict fills
    input_bytes = big.nbytes
    print(f"\npredict on {n:,} samples: peak RSS +{increase / 2**20:.1f} MiB; input {input_bytes / 2**20:.0f} "
          f"MiB, (n, n_classes) float64 output {logits_bytes / 2**20:.0f} MiB")
    assert labels.shape == (n,)
    np.testing.assert_array_equal(labels[: len(X)], est.predict(X))
    # Bounded: the (n, n_classes) output plus the labels plus batch workspaces; never a copy of the input
    # (256 MiB) nor per-sample activations of all samples at once.
    assert increase < logits_bytes + labels.nbytes + (64 << 20), f"peak RSS +{increase / 2**20:.1f} MiB"
