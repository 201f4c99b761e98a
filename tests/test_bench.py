"""``minicnn bench --quick``: the table and the JSON have the documented structure (speed is never asserted)."""

import importlib
import importlib.util
import json

from minicnn.tools import bench


def test_quick_bench_writes_table_and_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert bench.main(["--quick", "--rounds", "1", "--steps", "1", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    report = json.loads(path.read_text())
    for key in ("machine", "physical", "results", "rss", "cold_start", "targets", "load_average_start"):
        assert key in report
    assert report["physical"]["sgemm_gflops_1t"] > 0 and report["physical"]["memcpy_gbs"] > 0
    contenders = {r["contender"] for r in report["results"]}
    assert "minicnn-auto" in contenders
    for row in report["results"]:
        assert row["model"] == "digits" and row["threads"] == 1
        keys = ("infer_samples_s", "latency_predict_us", "infer_gflops")
        if row["contender"] != "onnxruntime":   # inference only
            keys += ("train_samples_s", "latency_forward_us", "train_gflops")
        for key in keys:
            assert row[key] > 0
        if row["contender"].startswith("minicnn"):
            for ref, suffix in (("torch", "torch"), ("onnxruntime", "ort")):
                if ref in contenders:
                    assert row[f"infer_vs_{suffix}"] > 0 and row[f"latency_vs_{suffix}"] > 0
    if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("torch"):
        assert "onnxruntime" in contenders and "onnxruntime" in out
    assert report["macs_per_sample"]["digits"] == 8 * 8 * 16 * 9 + 256 * 64 + 64 * 10   # conv, dense, dense
    assert all("peak_rss_mib" in r for r in report["rss"]), report["rss"]
    cold = {c["path"]: c for c in report["cold_start"]}
    with_ort = bool(importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx"))
    assert set(cold) == set(bench.COLD_PATHS) | ({bench.COLD_ORT_PATH} if with_ort else set())
    if with_ort:
        ratio = {t["target"]: t["reached"] for t in report["targets"]}["cold start load_predictor <= 1.0x onnxruntime"]
        assert ratio == round(cold["predictor"]["wall_s"] / cold[bench.COLD_ORT_PATH]["wall_s"], 3)
    for entry in cold.values():
        assert entry["wall_s"] > 0 and entry["numba_imported"] is False   # auto never needs Numba to predict
    assert cold["estimator"]["sklearn_imported"] is True
    assert cold["predictor"]["sklearn_imported"] is False   # load_predictor never imports scikit-learn
    assert len(report["targets"]) == len(bench.TARGETS)
    assert "minicnn-auto" in out and "targets" in out and "cold start" in out


def test_format_report_marks_unmet_and_missing_targets():
    report = {"machine": {"cpu": "x", "cpus": 2, "python": "3", "numpy": "2", "torch": None},
              "load_average_start": [0, 0, 0], "physical": {"memcpy_gbs": 1.0},
              "results": [{"model": "mnist", "contender": "minicnn-auto", "threads": 1, "train_samples_s": 10.0,
                           "infer_samples_s": 20.0, "latency_predict_us": 5.0, "latency_forward_us": 4.0}]}
    report["targets"] = bench.evaluate_targets(report)
    text = bench.format_report(report)
    assert "n/a" in text and "mnist" in text


def test_onnxruntime_missing_is_skipped_cleanly(monkeypatch):
    monkeypatch.setattr(bench, "_onnxruntime", lambda: None)
    report = bench.run(["digits"], ["cython"], [1], rounds=1, steps=1, quick=True, rss=False, cold=False,
                       verbose=False)
    assert "onnxruntime" not in {r["contender"] for r in report["results"]}
    assert report["machine"]["onnxruntime"] is None
