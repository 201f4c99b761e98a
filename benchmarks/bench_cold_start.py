"""Cold start: fresh processes that load a saved model and predict one sample, medians, interleaved.

Paths: ``minicnn.load`` (an estimator, imports scikit-learn), ``minicnn.load_predictor`` (NumPy and the
compiled kernels only) and, when installed, ONNX Runtime on the model exported by ``minicnn.export_onnx``
(the logic is :func:`minicnn.tools.bench.measure_cold_start`, also run by ``minicnn bench``)::

    python benchmarks/bench_cold_start.py [--repeats 9] [--models digits,mnist] [--source-only]
    python benchmarks/bench_cold_start.py --baseline /path/to/other/checkout [--repeats 15]

``--baseline`` times another copy of the package (e.g. an older commit: ``git archive <commit> | tar -x -C
DIR``, its compiled kernels copied in) beside this one and ONNX Runtime, interleaved (each
round's order rotated), on the same saved model: wall time and the child process's CPU time (user + sys), medians.

The package's bytecode is compiled first, as an installation has it (``pip install`` compiles every module;
the peers' modules come compiled too): without it each fresh process compiles minicnn's modules from source,
and with ``PYTHONDONTWRITEBYTECODE`` set (as on some CI machines) it does so every time (~0.1 s of a digits
cold start here). ``--source-only`` skips that step, to time that case.
"""

import argparse
import compileall
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

import minicnn
from minicnn.tools.bench import (_COLD_CODE, _COLD_ORT_CODE, MinicnnContender, _median, _table, measure_cold_start,
                                 rotated_rounds)

KEYS = ("wall_s", "in_process_s", "numpy_import_s", "sklearn_import_s", "minicnn_import_load_s", "predict_s")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=9, help="fresh processes per path (median reported)")
    p.add_argument("--models", default="digits,mnist")
    p.add_argument("--source-only", action="store_true", help="do not compile the package's bytecode first")
    p.add_argument("--baseline", help="another checkout's root (holding minicnn/) to time beside this one")
    args = p.parse_args()
    if not args.source_only:
        compileall.compile_dir(os.path.dirname(minicnn.__file__), quiet=1)
        if args.baseline:
            compileall.compile_dir(os.path.join(args.baseline, "minicnn"), quiet=1)
    print("load average at start:", _load_average())
    if args.baseline:
        with tempfile.TemporaryDirectory() as tmp:
            rows = [("model", "path", "wall_s", "cpu_s", "minicnn_import_load_s", "predict_s", "x ort wall", "x ort cpu")]
            for model in args.models.split(","):
                rows += _side_by_side(model, tmp, args.repeats, args.baseline)
        print("\n".join(_table(rows)))
        print("load average at end:", _load_average())
        return
    rows = [("model", "path", *KEYS, "x onnxruntime (wall)")]
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            results = measure_cold_start(model, tmp, args.repeats)
            ort = {r["path"]: r for r in results}.get("onnxruntime", {}).get("wall_s")
            for r in results:
                ratio = f"{r['wall_s'] / ort:.2f}" if ort and "wall_s" in r else ""
                rows.append((model, r["path"], *(str(r.get(k, r.get("error"))) for k in KEYS), ratio))
    print("\n".join(_table(rows)))
    print("load average at end:", _load_average())


def _side_by_side(model, workdir, repeats, baseline):
    """Rows of interleaved fresh processes: load_predictor here, in ``baseline``, and ONNX Runtime."""
    from minicnn.onnx import export_onnx

    c = MinicnnContender(model, "auto")
    path, xpath, onnx_path = (os.path.join(workdir, f"{model}{ext}") for ext in (".npz", "_x1.npy", ".onnx"))
    c.clf.save(path)
    np.save(xpath, c.x1)
    export_onnx(c.clf, onnx_path)
    here = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(minicnn.__file__))))
    other = dict(here, PYTHONPATH=os.path.abspath(baseline))
    runs = {"predictor (baseline)": ([_COLD_CODE, path, xpath, "predictor"], other),
            "predictor": ([_COLD_CODE, path, xpath, "predictor"], here),
            "onnxruntime": ([_COLD_ORT_CODE, onnx_path, xpath], here)}
    times = {name: [] for name in runs}
    for names in rotated_rounds(runs, repeats):
        for name, (argv, env) in ((name, runs[name]) for name in names):
            before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
            done = subprocess.run([sys.executable, "-c", *argv], capture_output=True, text=True, env=env,
                                  timeout=300, check=True, cwd=workdir)   # not a checkout's root: "-c" imports from cwd
            wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            inside = json.loads(done.stdout.strip().splitlines()[-1])
            times[name].append((wall, cpu, inside["minicnn_import_load_s"], inside["predict_s"]))
    medians = {name: [_median([t[i] for t in ts]) for i in range(4)] for name, ts in times.items()}
    ort = medians["onnxruntime"]
    return [(model, name, *(f"{v:.4f}" for v in m), f"{m[0] / ort[0]:.2f}", f"{m[1] / ort[1]:.2f}")
            for name, m in medians.items()]


def _load_average():
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


if __name__ == "__main__":
    main()
