"""The zoo nets' f32 inference with the blocked conv route on and off, against ONNX Runtime, interleaved in one process.

``python benchmarks/bench_blocked_route.py [--nets resnet8,mobilenet] [--batch 64] [--threads 1,2] [--rounds 21]``:
for each net (``profile_inference.ZOO``, 32x32 RGB, BatchNorm) and thread count, one fitted network predicts the
same batch with ``minicnn.layers.conv.BLOCKED_LEVELS`` emptied ("off": the convs the route takes run their former
routes) and as built ("on"), and ONNX Runtime runs the net's own export, in interleaved rounds (outputs checked
first). Prints medians (minima) in ms and the throughput ratio to ONNX Runtime of each; on a shared machine the
minima are the least disturbed calls.
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from profile_inference import build  # noqa: E402


def main(argv=None):
    import onnxruntime as ort

    from minicnn import export_onnx
    from minicnn.layers import conv

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", default="resnet8,mobilenet")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=21)
    args = p.parse_args(argv)
    built = conv.BLOCKED_LEVELS
    for net in args.nets.split(","):
        clf, shape = build(net, 32)
        X = np.random.default_rng(0).random((args.batch, *shape), dtype=np.float32)
        with tempfile.TemporaryDirectory() as folder:
            path = export_onnx(clf, os.path.join(folder, "net.onnx"))
            for n in map(int, args.threads.split(",")):
                options = ort.SessionOptions()
                options.intra_op_num_threads, options.inter_op_num_threads = n, 1
                sess = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
                name = sess.get_inputs()[0].name
                clf.set_params(n_threads=n)

                def ours(levels):
                    def call():
                        conv.BLOCKED_LEVELS = levels
                        try:
                            return clf.predict_proba(X)
                        finally:
                            conv.BLOCKED_LEVELS = built
                    return call

                calls = {"off": ours(()), "on": ours(built), "onnxruntime": lambda: sess.run(None, {name: X})}
                np.testing.assert_allclose(calls["on"](), calls["off"](), atol=1e-4)
                times = {k: [] for k in calls}
                for r in range(args.rounds + 1):   # round 0 warms up
                    for k, call in calls.items():
                        start = time.perf_counter()
                        call()
                        if r:
                            times[k].append(time.perf_counter() - start)
                med = {k: float(np.median(v)) for k, v in times.items()}
                low = {k: min(v) for k, v in times.items()}
                print(f"{net} batch {args.batch} threads {n} load {os.getloadavg()[0]:.1f}: "
                      + "  ".join(f"{k} {1e3 * med[k]:.2f} ({1e3 * low[k]:.2f}) ms" for k in calls)
                      + "  | x ORT " + "  ".join(f"{k} {med['onnxruntime'] / med[k]:.2f} "
                                                 f"({low['onnxruntime'] / low[k]:.2f})" for k in ("off", "on")),
                      flush=True)


if __name__ == "__main__":
    main()
