"""The placement study: grid, shared runs, statistics and verdicts, the quick end-to-end run."""

import csv
import io
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest
from scipy import stats as sps

from minicnn.cli import main
from minicnn.study import grid, make_plan, report, stats
from minicnn.study.runner import CSV_FIELDS, run_plan, training_subset

VERDICTS = ("holds", "does not hold", "not significant")


# --------------------------------------------------------------------------- grid


def test_default_plan_covers_the_brief():
    plan = make_plan()
    assert plan.sizes == (100, 300, "full") and plan.seeds == (0, 1, 2, 3, 4)
    main = [c for c in plan.configs if c.group == "main"]
    assert {c.placement for c in main} == set(grid.PLACEMENTS)
    assert {c.rate for c in main if c.placement != "none"} == {0.1, 0.25, 0.5}
    assert {c.kind for c in main if c.placement != "none"} == {"element", "spatial"}
    bn = [c for c in plan.configs if c.group == "batch_norm"]
    assert all(c.batch_norm for c in bn) and {c.placement for c in bn} == {"none", "after_each_layer", "last:1"}
    deep = [c for c in plan.configs if c.group == "deep"]
    assert len(deep[0].layers) > len(main[0].layers)
    assert {c.placement for c in deep} >= {"after_each_layer", "after_last_pool"}


def test_identical_networks_share_one_run():
    plan = make_plan()
    shared = plan.shared
    # one dense layer: "dense" and "last:1" put the same single dropout after it
    assert shared["main/dense/element/0.25"] == "main/last:1/element/0.25"
    # after a dense layer "spatial" (dropout_kind="auto") is element-wise
    assert shared["main/last:1/spatial/0.5"] == "main/last:1/element/0.5"
    # on conv maps spatial differs from element-wise
    assert shared["main/after_last_pool/spatial/0.5"] == "main/after_last_pool/spatial/0.5"
    assert len(plan.unique_configs) < len(plan.configs)
    resolved = [c.resolved() for c in plan.unique_configs]
    assert len(set(resolved)) == len(resolved)


@pytest.mark.parametrize("kwargs, match", [
    (dict(data="cifar"), "data"),
    (dict(seeds=1), "seeds"),
    (dict(seeds=(3, 3)), "seeds"),
    (dict(sizes=(5,)), "sizes"),
    (dict(steps=0), "steps"),
])
def test_make_plan_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_plan(**kwargs)


def test_epochs_give_each_size_the_same_step_budget():
    plan = make_plan(steps=600)
    assert plan.epochs(100) == 150 and plan.epochs(1257) == 15
    assert plan.epochs(10_000) == plan.profile.min_epochs


def test_training_subsets_are_paired_by_seed_and_stratified():
    y = np.repeat(np.arange(10), 50)
    a, b, c = training_subset(y, 100, 0), training_subset(y, 100, 0), training_subset(y, 100, 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.bincount(y[a]).tolist() == [10] * 10
    assert len(training_subset(y, "full", 0)) == 500


# --------------------------------------------------------------------------- statistics


def test_paired_test_matches_scipy():
    rng = np.random.default_rng(0)
    d = rng.normal(0.01, 0.02, 15)
    r = stats.paired_test(d)
    assert r["p_t"] == pytest.approx(sps.ttest_1samp(d, 0.0).pvalue)
    assert r["p_wilcoxon"] == pytest.approx(sps.wilcoxon(d).pvalue)
    assert r["ci_low"] < r["mean"] < r["ci_high"]
    assert np.isnan(stats.paired_test([0.1])["p_t"])
    assert stats.paired_test([0.0, 0.0, 0.0])["p_t"] == 1.0


def test_holm_adjustment():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    adjusted = stats.holm([0.02, float("nan"), 0.04])
    assert adjusted[0] == pytest.approx(0.04) and np.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)


def test_verdict_rules():
    assert stats.verdict(0.02, 0.01) == "holds"
    assert stats.verdict(-0.02, 0.01) == "does not hold"
    assert stats.verdict(0.02, 0.2) == "not significant"
    assert stats.verdict(0.02, float("nan")) == "not significant"


def synthetic_rows(effects, n_seeds=6, noise=0.002, seed=0):
    """Runs.csv-like rows where ``effects[claim key]`` is the treatment's true advantage."""
    rng = np.random.default_rng(seed)
    rows = []
    sizes = {"100": 100, "full": 1000}

    def add(group, placement, kind, rate, size, s, accuracy):
        rows.append(dict(group=group, model="m", layers="x", batch_norm=group == "batch_norm", placement=placement,
                         kind=kind, rate=rate, size=size, n_train=sizes[size], seed=s, epochs=1,
                         test_accuracy=accuracy, train_time_s=0.1, same_as=""))

    for size in sizes:
        for s in range(n_seeds):
            base = 0.9 + rng.normal(0, 0.02)   # shared per block: pairing must remove it
            def acc(effect=0.0):
                return base + effect + rng.normal(0, noise)
            add("main", "none", "-", 0.0, size, s, acc())
            for rate in (0.1, 0.5):
                add("main", "after_last_pool", "element", rate, size, s, acc(effects["after_last_pool"]))
                add("main", "after_last_pool", "spatial", rate, size, s,
                    acc(effects["after_last_pool"] + effects["spatial_for_conv_maps"]))
                add("main", "after_each_layer", "element", rate, size, s, acc())
                add("main", "after_each_layer", "spatial", rate, size, s, acc(effects["spatial_for_conv_maps"]))
                for k in ("last:1", "last:2"):
                    add("main", k, "element", rate, size, s, acc(effects["last_layers_small_data"]))
                add("main", "last:2", "spatial", rate, size, s,
                    acc(effects["last_layers_small_data"] + effects["spatial_for_conv_maps"]))
                add("deep", "after_last_pool", "element", rate, size, s, acc())
                add("deep", "after_each_layer", "element", rate, size, s, acc(effects["every_layer_deep"]))
                add("batch_norm", "after_each_layer", "element", rate, size, s, acc())
                add("batch_norm", "last:1", "element", rate, size, s, acc(effects["dropout_before_bn_hurts"]))
            add("deep", "none", "-", 0.0, size, s, acc())
            add("batch_norm", "none", "-", 0.0, size, s, acc())
    return rows


def test_analyse_detects_planted_effects():
    effects = dict(after_last_pool=0.02, every_layer_deep=-0.03, last_layers_small_data=0.0,
                   dropout_before_bn_hurts=0.05, spatial_for_conv_maps=0.0)
    primary, exploratory = stats.analyse(synthetic_rows(effects))
    by_key = {r["key"]: r for r in primary}
    assert set(by_key) == set(effects)
    assert by_key["after_last_pool"]["verdict"] == "holds"
    assert by_key["every_layer_deep"]["verdict"] == "does not hold"
    assert by_key["dropout_before_bn_hurts"]["verdict"] == "holds"
    assert by_key["last_layers_small_data"]["verdict"] == "not significant"
    assert by_key["spatial_for_conv_maps"]["verdict"] == "not significant"
    assert by_key["after_last_pool"]["mean"] == pytest.approx(0.02, abs=0.003)
    assert by_key["every_layer_deep"]["mean"] == pytest.approx(-0.03, abs=0.003)
    # pairs: one per (size, seed), except the small-data claim (smallest size only)
    assert by_key["after_last_pool"]["n"] == 12 and by_key["last_layers_small_data"]["n"] == 6
    assert all(r["p_holm"] >= r["p_t"] for r in primary)
    assert set(by_key["every_layer_deep"]["breakdown"]["rate"]) == {0.1, 0.5}
    assert exploratory and all("mean" in r for r in exploratory)


def test_report_renders_verdicts_and_tables(tmp_path):
    effects = dict(after_last_pool=0.02, every_layer_deep=-0.03, last_layers_small_data=0.0,
                   dropout_before_bn_hurts=0.05, spatial_for_conv_maps=0.0)
    rows = synthetic_rows(effects)
    primary, exploratory = stats.analyse(rows)
    text = report.render(rows, primary, exploratory, dict(data="digits", command="minicnn study"))
    verdict_lines = [line for line in text.splitlines() if line.startswith("- Verdict: ")]
    assert len(verdict_lines) == 5
    assert "**holds**" in verdict_lines[0] and "**does not hold**" in verdict_lines[1]
    assert "paired t-test" in text and "Holm" in text and "Wilcoxon" in text
    assert "| none | - | - |" in text and "keep" in text
    report.write_runs(rows, tmp_path / "runs.csv")
    back = report.read_runs(tmp_path / "runs.csv")
    assert back == rows


# --------------------------------------------------------------------------- end to end


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    code, stdout, stderr = run_cli("study", "--quick", "--n-jobs", "1", "--out", out)
    assert code == 0, stderr
    return out, stdout


def test_quick_study_writes_csv_and_report(quick_study):
    out, stdout = quick_study
    with open(out / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    plan = make_plan(quick=True)
    assert len(rows) == len(plan.configs) * len(plan.sizes) * len(plan.seeds)
    assert set(rows[0]) == set(CSV_FIELDS)
    trained = [r for r in rows if not r["same_as"]]
    assert len(trained) == plan.n_runs
    assert all(0.0 <= float(r["test_accuracy"]) <= 1.0 and float(r["train_time_s"]) > 0 for r in rows)
    # shared runs are copies of the run they name
    by_key = {(r["group"], r["placement"], r["kind"], r["rate"], r["seed"]): r for r in rows}
    copy = by_key[("main", "dense", "element", "0.5", "0")]
    source = by_key[("main", "last:1", "element", "0.5", "0")]
    assert copy["same_as"] == "main/last:1/element/0.5" and copy["test_accuracy"] == source["test_accuracy"]
    # the default placement must actually learn something
    alp = [float(r["test_accuracy"]) for r in rows if r["group"] == "main" and r["placement"] == "after_last_pool"]
    assert np.mean(alp) > 0.3

    text = (out / "report.md").read_text()
    verdicts = [line for line in text.splitlines() if line.startswith("- Verdict: ")]
    assert len(verdicts) == 5
    assert all(any(f"**{v}**" in line for v in VERDICTS) for line in verdicts)
    assert "paired t-test" in text and "Holm" in text
    assert ("study_claims.png" in text and (out / "study_claims.png").is_file()) or "pip install matplotlib" in text
    assert sum(any(v in line for v in VERDICTS) for line in stdout.splitlines()) == 5


def test_study_from_csv_reproduces_the_report(quick_study, tmp_path):
    out, _ = quick_study
    code, _, err = run_cli("study", "--from-csv", out / "runs.csv", "--out", tmp_path)
    assert code == 0, err
    original = [line for line in (out / "report.md").read_text().splitlines() if line.startswith("- Verdict")]
    again = [line for line in (tmp_path / "report.md").read_text().splitlines() if line.startswith("- Verdict")]
    assert again == original


def tiny_plan():
    plan = make_plan(quick=True, seeds=2, steps=20)
    keep = [c for c in plan.configs if c.label in ("main/none", "main/dense/element/0.5", "main/last:1/element/0.5")]
    return grid.StudyPlan(plan.data, plan.sizes, plan.seeds, keep, plan.profile, plan.steps, quick=True)


def test_run_plan_is_deterministic_and_parallel_safe():
    plan = tiny_plan()
    serial = run_plan(plan, n_jobs=1, verbose=0)
    parallel = run_plan(plan, n_jobs=2, verbose=0)
    assert len(serial) == 6 and sum(1 for r in serial if r["same_as"]) == 2
    strip = [{k: v for k, v in r.items() if k != "train_time_s"} for r in serial]
    assert strip == [{k: v for k, v in r.items() if k != "train_time_s"} for r in parallel]


def test_scheduler_runs_on_a_dask_cluster():
    distributed = pytest.importorskip("distributed")
    plan = tiny_plan()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:
        rows = run_plan(plan, scheduler=cluster.scheduler_address, verbose=0)
    assert len(rows) == 6
    local = run_plan(plan, n_jobs=1, verbose=0)
    assert [r["test_accuracy"] for r in rows] == [r["test_accuracy"] for r in local]


def test_scheduler_without_dask_says_what_to_install(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_dask(name, *args, **kwargs):
        if name.split(".")[0] in ("distributed", "dask"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    code, _, err = run_cli("study", "--quick", "--scheduler", "tcp://127.0.0.1:8786", "--out", tmp_path, "--quiet")
    assert code == 1
    assert "pip install 'dask[distributed]' dask-ml" in err and len(err.strip().splitlines()) == 1
