"""Cold start: fresh processes that load a saved model and predict one sample, medians, interleaved.

Paths: ``minicnn.load`` (an estimator, imports scikit-learn), ``minicnn.load_predictor`` (NumPy and the
compiled kernels only) and, when installed, ONNX Runtime on the model exported by ``minicnn.export_onnx``
(the logic is :func:`minicnn.tools.bench.measure_cold_start`, also run by ``minicnn bench``)::

    python benchmarks/bench_cold_start.py [--repeats 9] [--models digits,mnist]
"""

import argparse
import tempfile

from minicnn.tools.bench import _table, measure_cold_start

KEYS = ("wall_s", "in_process_s", "numpy_import_s", "sklearn_import_s", "minicnn_import_load_s", "predict_s")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=9, help="fresh processes per path (median reported)")
    p.add_argument("--models", default="digits,mnist")
    args = p.parse_args()
    rows = [("model", "path", *KEYS, "x onnxruntime (wall)")]
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            results = measure_cold_start(model, tmp, args.repeats)
            ort = {r["path"]: r for r in results}.get("onnxruntime", {}).get("wall_s")
            for r in results:
                ratio = f"{r['wall_s'] / ort:.2f}" if ort and "wall_s" in r else ""
                rows.append((model, r["path"], *(str(r.get(k, r.get("error"))) for k in KEYS), ratio))
    print("\n".join(_table(rows)))


if __name__ == "__main__":
    main()
