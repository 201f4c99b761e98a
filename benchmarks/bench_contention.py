"""Training speed at the default ``n_threads`` against ``n_threads=1`` while another process keeps a core busy.

    python benchmarks/bench_contention.py [--model mnist] [--rounds 5] [--steps 4] [--no-busy]

For each OpenMP wait setting (GNU OpenMP reads it once, when the runtime loads, so each runs in a fresh
process): minicnn's default (``GOMP_SPINCOUNT`` set by :func:`minicnn.threads.configure_openmp_waiting`
when the environment sets none), libgomp's own default spin count (300000), ``OMP_WAIT_POLICY=active``
and ``OMP_WAIT_POLICY=passive``. Each child builds the reference model of ``minicnn bench`` (Cython
backend) and times training steps, interleaving ``n_threads=None`` (every available CPU) and
``n_threads=1``, round after round; it reports the median samples/s of each and their ratio. A busy loop
(one Python process spinning) runs on the machine during every child unless ``--no-busy``. The target:
ratio >= 1 (the default never slower than one thread). Speed is reported, never asserted.

``--inference``: small-batch inference instead (``predict_proba`` on batches of 1 to 128 MNIST samples and
1 to 512 digits samples), interleaving an explicit ``n_threads=2``, ``n_threads=None`` and ``n_threads=1``
in this process under the busy loop. The target: 2 threads never slower than 1 (the team of a step shrinks
to the CPUs other processes leave free, :func:`minicnn.threads.thread_limits`).
"""

import argparse
import json
import os
import subprocess
import sys
import time

SETTINGS = {
    "minicnn default": {},
    "GOMP_SPINCOUNT=300000 (libgomp default)": {"GOMP_SPINCOUNT": "300000"},
    "OMP_WAIT_POLICY=active": {"OMP_WAIT_POLICY": "active"},
    "OMP_WAIT_POLICY=passive": {"OMP_WAIT_POLICY": "passive"},
}

_CHILD = """
import json, sys, time
import numpy as np
from minicnn.tools.bench import MinicnnContender
model, backend, rounds, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
c = MinicnnContender(model, backend)
times = {"None": [], "1": []}
for r in range(rounds + 1):
    for key, n in (("None", None), ("1", 1)):
        t = c.train(n, steps)
        if r:
            times[key].extend(t)
import os
print(json.dumps({k: c.batch / float(np.median(v)) for k, v in times.items()} | {
    "GOMP_SPINCOUNT": os.environ.get("GOMP_SPINCOUNT"), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")}))
"""


def run_setting(extra_env, model, backend, rounds, steps):
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    env.update(extra_env)
    done = subprocess.run([sys.executable, "-c", _CHILD, model, backend, str(rounds), str(steps)],
                          capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


INFERENCE_BATCHES = {"mnist": (1, 8, 32, 128), "digits": (1, 64, 512)}


def run_inference(rounds, steps):
    """Median seconds of ``predict_proba`` per (model, batch, n_threads), interleaved round after round."""
    import warnings

    import numpy as np

    from minicnn.tools.bench import MinicnnContender, _data

    times = {}
    for model, batches in INFERENCE_BATCHES.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = MinicnnContender(model, "auto").clf
        X, _ = _data(model, max(batches))
        for r in range(rounds + 1):   # round 0: warm-up
            for batch in batches:
                xb = X[:batch].copy()
                for n in (1, 2, None):
                    clf.n_threads = n
                    for _ in range(steps):
                        start = time.perf_counter()
                        clf.predict_proba(xb)
                        if r:
                            times.setdefault((model, batch), {}).setdefault(n, []).append(
                                time.perf_counter() - start)
    return {key: {n: float(np.median(v)) for n, v in by_n.items()} for key, by_n in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mnist", choices=("mnist", "digits"))
    p.add_argument("--backend", default="cython")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--no-busy", action="store_true", help="no busy-loop process (the quiet-machine cost)")
    p.add_argument("--inference", action="store_true", help="small-batch inference at 1, 2 and None threads")
    args = p.parse_args(argv)
    busy = None if args.no_busy else subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        if args.inference:
            print(f"inference, backend auto, busy loop: {'no' if args.no_busy else 'yes'}, "
                  f"load average {os.getloadavg()}")
            print(f"{'model':7s} {'batch':>5s} {'1 thread us':>12s} {'2 threads us':>13s} {'None us':>9s} "
                  f"{'2t/1t speed':>12s} {'None/1t':>8s}")
            for (model, batch), t in run_inference(args.rounds, args.steps).items():
                print(f"{model:7s} {batch:5d} {1e6 * t[1]:12.0f} {1e6 * t[2]:13.0f} {1e6 * t[None]:9.0f} "
                      f"{t[1] / t[2]:12.2f} {t[1] / t[None]:8.2f}")
            return 0
        print(f"{args.model}, backend {args.backend}, busy loop: {'no' if args.no_busy else 'yes'}, "
              f"load average {os.getloadavg()}")
        print(f"{'setting':42s} {'n_threads=None':>15s} {'n_threads=1':>12s} {'ratio':>6s}")
        for name, extra in SETTINGS.items():
            r = run_setting(extra, args.model, args.backend, args.rounds, args.steps)
            if "error" in r:
                print(f"{name:42s} error: {r['error']}")
                continue
            print(f"{name:42s} {r['None']:15.0f} {r['1']:12.0f} {r['None'] / r['1']:6.2f}   "
                  f"(GOMP_SPINCOUNT={r['GOMP_SPINCOUNT']}, OMP_WAIT_POLICY={r['OMP_WAIT_POLICY']})")
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
