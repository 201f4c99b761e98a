"""Cost of augmentation per digits training step: gather+augment vs the whole step, side by side, medians."""
import time, warnings
import numpy as np
from minicnn import CNNClassifier
from minicnn.augment import Augmenter
from minicnn.datasets import load_digits_images
from minicnn.threads import thread_limits
from minicnn.training import train_step
warnings.simplefilter("ignore")
X, y = load_digits_images()
est = CNNClassifier(max_iter=1, random_state=0).fit(X, y)   # defaults (the network and optimizer of a digits fit)
net, opt = est.network_, est._optimizer
kernels = net.kernels
rng = np.random.default_rng(0)
aug = Augmenter(("shift2", "crop2", "hflip"), kernels); aug.start_epoch(rng)
xb = np.empty((64, *X.shape[1:]), X.dtype)
idx = rng.permutation(len(X))[:64].astype(np.int64)
yb = est._prepare_y(y[idx], first=False, classes=None)
res = {"take": [], "augment": [], "step": []}
with thread_limits(1):
    for _ in range(300):
        t = time.perf_counter(); np.take(X, idx, axis=0, out=xb); res["take"].append(time.perf_counter() - t)
        t = time.perf_counter(); aug.gather(xb, X, idx); res["augment"].append(time.perf_counter() - t)
        t = time.perf_counter(); train_step(net, est._loss_function, opt, xb, yb); res["step"].append(time.perf_counter() - t)
m = {k: np.median(v) * 1e6 for k, v in res.items()}
print(f"digits batch 64, 1 thread, medians of 300 interleaved: np.take {m['take']:.1f} us, augment_batch "
      f"(shift2, crop2, hflip; {kernels.sources['augment_batch'] if hasattr(kernels, 'sources') else ''}) "
      f"{m['augment']:.1f} us, train_step {m['step']:.0f} us; augmentation extra = "
      f"{(m['augment'] - m['take']) / (m['step'] + m['take']) * 100:.2f}% of a step")
