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
        if row["contender"] not in ("onnxruntime", "openvino-f32", "openvino"):   # inference only
            keys += ("train_samples_s", "latency_forward_us", "train_gflops")
        for key in keys:
            assert row[key] > 0
        if row["contender"].startswith("minicnn"):
            for ref, suffix in (("torch", "torch"), ("onnxruntime", "ort"), ("openvino-f32", "ov_f32"),
                                ("openvino", "ov")):
                if ref in contenders:
                    assert row[f"infer_vs_{suffix}"] > 0 and row[f"latency_vs_{suffix}"] > 0
    if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("torch"):
        assert "onnxruntime" in contenders and "onnxruntime" in out
    if importlib.util.find_spec("openvino") and importlib.util.find_spec("torch"):
        assert {"openvino-f32", "openvino"} <= contenders and "vs OpenVINO" in out
        assert report["machine"]["openvino-f32_precision"] == "f32"
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


def test_grid_rows_compare_minicnn_with_every_installed_peer():
    rows = bench.run_grid([1], rounds=1, steps=1, sizes=(28,), batches=(1, 2))
    contenders = {r["contender"] for r in rows}
    assert "minicnn-auto" in contenders
    peers = {"torch": "torch", "onnxruntime": "ort", "openvino-f32": "ov_f32", "openvino": "ov"}
    if importlib.util.find_spec("torch"):
        assert "torch" in contenders
        for module, names in (("onnxruntime", ["onnxruntime"]), ("openvino", ["openvino-f32", "openvino"])):
            if importlib.util.find_spec(module):
                assert set(names) <= contenders
    for r in rows:
        assert r["size"] == 28 and r["batch"] in (1, 2) and r["samples_s"] > 0
        if r["contender"] == "minicnn-auto":
            for name, suffix in peers.items():
                assert (f"vs_{suffix}" in r) == (name in contenders)
    text = "\n".join(bench.format_grid(rows))
    assert "28px" in text and "minicnn/s" in text


def test_openvino_missing_is_skipped_cleanly(monkeypatch):
    monkeypatch.setattr(bench, "_openvino", lambda: None)
    report = bench.run(["digits"], ["cython"], [1], rounds=1, steps=1, quick=True, rss=False, cold=False,
                       verbose=False)
    assert not {"openvino", "openvino-f32"} & {r["contender"] for r in report["results"]}
    assert report["machine"]["openvino"] is None
    rows = bench.run_grid([1], rounds=1, steps=1, sizes=(28,), batches=(1,))
    assert not {"openvino", "openvino-f32"} & {r["contender"] for r in rows}
