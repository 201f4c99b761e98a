"""The placement study: plans, nested rate selection, statistics, resumability, budgets, the end-to-end command."""

import io
import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats as sps

from minicnn.tools.study import data as study_data
from minicnn.tools.study import grid, make_plan, report, run_study, stats
from minicnn.tools.study.cli import parse_budget
from minicnn.tools.study.runner import CSV_FIELDS, did_not_train, read_csv, run_plan

from helpers import run_cli

VERDICTS = ("holds", "does not hold", "not significant")


def tiny_plan(labels=("base/none", "base/after_last_pool/element/0.5"), seeds=2):
    plan = make_plan("digits", quick=True, seeds=seeds)
    keep = [c for c in plan.configs if c.label in labels]
    return replace(plan, configs=keep, shared={})


# --------------------------------------------------------------------------- plans


@pytest.mark.parametrize("data", ["mnist", "fashion-mnist"])
def test_default_plan_covers_the_issue(data):
    plan = make_plan(data)
    assert plan.sizes == (1000, 10000) and len(plan.seeds) >= 10 and plan.meaningful
    groups = {c.group: c for c in plan.configs}
    assert groups["keras"].layers == grid.KERAS_MNIST   # the post's premise: a model with many weights
    runs = plan.runs(60000)
    assert {size for c, size, _, _ in runs if c.group == "base"} == {1000, 10000}
    # every claim's arms are trained for its model, with more than one rate to choose from
    for claim in stats.CLAIMS:
        for arm in (claim.treatment, claim.control):
            members = stats._arm_members([dict(group=c.group, placement=c.placement, kind=c.kind)
                                          for c in plan.configs], claim.group, arm)
            assert members, (claim.key, arm)
            if arm != "none":
                assert len({(m["placement"], m["kind"]) for m in members}) * len(plan.profile.rates) >= 2


def test_default_study_fits_three_hours_on_two_cores():
    pools = {"digits": 1257, "mnist": 60000, "fashion-mnist": 60000}
    total = sum(make_plan(d).estimated_cost_s(pools[d]) for d in grid.DEFAULT_DATA) / 2
    assert 0.5 * 3600 < total <= 2.8 * 3600   # about 2 h 45 min since the residual deep model joined


def _weight_layers(layers):
    """Convolutions and dense layers on the longest path of ``layers`` (a residual block counts its two)."""
    return sum(2 if t.startswith("res") else 1 for t in layers if t.startswith(("conv", "res", "dense")))


@pytest.mark.parametrize("data", grid.DEFAULT_DATA)
def test_every_profile_has_a_residual_deep_model_that_tests_the_deep_claim(data):
    from minicnn import architecture, placement
    from minicnn.layers.composite import Residual
    from minicnn.layers.dropout import Dropout

    plan = make_plan(data)
    models = {m.group: m for m in plan.profile.models}
    deep, resdeep = models["deep"], models["resdeep"]
    assert resdeep.batch_norm and resdeep.max_size == deep.max_size
    assert set(resdeep.arms) >= {"after_each_layer", "after_last_pool"}
    # similar depth to the plain deep model (within one layer), with the same pools and dense head
    assert abs(_weight_layers(resdeep.layers) - _weight_layers(deep.layers)) <= 1
    assert [t for t in resdeep.layers if not t.startswith(("conv", "res"))] == \
        [t for t in deep.layers if not t.startswith("conv")]
    # the built network holds residual blocks, and dropout after every layer reaches inside each of them
    config = next(c for c in plan.configs if c.group == "resdeep" and c.placement == "after_each_layer")
    params = config.estimator_params()
    tokens = architecture.parse_layers(params["layers"])
    specs = placement.resolve_dropout(tokens, params["dropout"], 0.5, params["dropout_kind"])
    network, _ = architecture.build_network(tokens, specs, n_outputs=10, input_shape=(8, 8, 1) if data == "digits"
                                            else (28, 28, 1), rng=np.random.default_rng(0), backend="numpy",
                                            padding=config.padding, batch_norm=config.batch_norm)
    blocks = [layer for layer in network.walk() if isinstance(layer, Residual)]
    assert len(blocks) == sum(t.startswith("res") for t in resdeep.layers)
    assert all(any(isinstance(inner, Dropout) for inner in block.walk()) for block in blocks)
    claims = [c for c in stats.CLAIMS if c.group == "resdeep"]
    assert [(c.treatment, c.control) for c in claims] == [("after_each_layer", "after_last_pool")]


def test_identical_networks_share_one_run():
    plan = make_plan("mnist", layers=("conv8", "maxpool"))
    # the pool is the last layer: last:1 puts dropout exactly where after_last_pool does
    assert plan.shared["user/last:1/element/0.5"] == "user/after_last_pool/element/0.5"
    resolved = [c.resolved() for c in plan.unique_configs]
    assert len(set(resolved)) == len(resolved) < len(plan.configs)
    for config in plan.configs:
        assert plan.shared[config.label] in {c.label for c in plan.unique_configs}


def test_placements_a_model_cannot_take_are_left_out():
    plan = make_plan("x.npz", layers=("dense16", "dense16"))
    assert {c.placement for c in plan.configs} == {"none", "after_each_layer", "last:1", "last:2"}


@pytest.mark.parametrize("kwargs, match", [
    (dict(data="cifar"), "data"),
    (dict(data="x.npz"), "layers"),
    (dict(seeds=1), "seeds"),
    (dict(seeds=(3, 3)), "seeds"),
    (dict(sizes=(5,)), "sizes"),
    (dict(rates=(0.0,)), "rates"),
    (dict(rates=(1.0,)), "rates"),
    (dict(epochs_scale=0), "epochs_scale"),
])
def test_make_plan_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_plan(**kwargs)


def test_training_subsets_are_paired_by_seed_and_stratified():
    y = np.repeat(np.arange(10), 50)
    a, b, c = (study_data.training_subset(y, 100, s) for s in (0, 0, 1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.bincount(y[a]).tolist() == [10] * 10
    assert len(study_data.training_subset(y, "full", 0)) == 500


def test_fashion_mnist_loader_contract():
    try:
        X, y, X_test, y_test = study_data.load_fashion_mnist()
    except FileNotFoundError as exc:
        assert "dataset-fashion-mnist" in str(exc)
        pytest.skip("Fashion-MNIST idx files not installed")
    assert X.shape == (60000, 28, 28, 1) and X_test.shape == (10000, 28, 28, 1)
    assert X.dtype == np.float32 and 0.0 <= X.min() and X.max() <= 1.0
    assert y.dtype == np.int64 and set(np.unique(y_test)) == set(range(10))


def test_fashion_mnist_missing_files_say_how_to_install(tmp_path, monkeypatch):
    from minicnn import datasets

    monkeypatch.delattr(datasets, "load_fashion_mnist", raising=False)
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        study_data.load_fashion_mnist(tmp_path)


# --------------------------------------------------------------------------- budget


def test_budget_cuts_the_grid_and_says_when_verdicts_are_not_meaningful():
    plan = make_plan("mnist", rates=(0.1, 0.25, 0.5))
    full = plan.estimated_cost_s(60000) / 2
    roomy, wall = grid.fit_budget(make_plan("mnist", rates=(0.1, 0.25, 0.5)), 2 * full, 60000, 2)
    assert roomy.cuts == [] and wall == pytest.approx(full) and roomy.meaningful
    cut, wall = grid.fit_budget(plan, full / 3, 60000, 2)
    assert wall <= full / 3 and cut.cuts and cut.cuts[0].startswith("rates")
    assert {c.rate for c in cut.configs if c.placement != "none"} == {0.25, 0.5}
    tight, wall = grid.fit_budget(make_plan("mnist"), 1.0, 60000, 2)
    assert wall > 1.0 and not tight.meaningful and len(tight.seeds) == 3
    assert any("not meaningful" in c for c in tight.cuts)


@pytest.mark.parametrize("text, seconds", [("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("90s", 90),
                                           ("0.5h", 1800)])
def test_parse_budget(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["30", "m", "-5m", "0m", "", "1x"])
def test_parse_budget_rejects(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="duration"):
        parse_budget(text)


def test_over_budget_run_says_so_in_report_and_stdout(tmp_path, monkeypatch):
    import minicnn.tools.study as study

    monkeypatch.setattr(study, "measure_epoch_cost", lambda plan: {"base": 50.0})   # a very slow machine
    plan_labels = {"base/none", "base/after_last_pool/element/0.5"}
    real = grid.make_plan

    def small_plan(*args, **kwargs):
        plan = real(*args, **kwargs)
        return replace(plan, configs=[c for c in plan.configs if c.label in plan_labels], shared={})

    monkeypatch.setattr(study, "make_plan", small_plan)
    out = io.StringIO()
    _, meta = run_study(tmp_path, data="digits", sizes=(100,), seeds=10, budget_s=1.0, n_jobs=1, stream=out,
                        verbose=1)
    assert meta["over_budget"] and "NOT MEANINGFUL" in meta["warning"] and "over-budget" in meta["warning"]
    assert "NOT MEANINGFUL" in out.getvalue()
    text = (tmp_path / "report.md").read_text()
    assert text.count("NOT MEANINGFUL") == 2 and "Cut to fit the wall-time budget" in text


# --------------------------------------------------------------------------- statistics


def test_paired_test_matches_scipy():
    rng = np.random.default_rng(0)
    d = rng.normal(0.01, 0.02, 15)
    r = stats.paired_test(d)
    assert r["p_t"] == pytest.approx(sps.ttest_1samp(d, 0.0).pvalue)
    assert r["p_wilcoxon"] == pytest.approx(sps.wilcoxon(d).pvalue)
    half = sps.t.ppf(0.975, 14) * d.std(ddof=1) / np.sqrt(15)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert r["d_z"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert np.isnan(stats.paired_test([0.1])["p_t"])
    assert stats.paired_test([0.0, 0.0, 0.0])["p_t"] == 1.0


def test_welch_test_matches_scipy():
    a, b = np.array([0.03, 0.05, 0.04, 0.06]), np.array([0.0, 0.01, -0.01, 0.02, 0.0])
    r = stats.welch_test(a, b)
    assert r["p_t"] == pytest.approx(sps.ttest_ind(a, b, equal_var=False).pvalue)
    assert r["mean"] == pytest.approx(a.mean() - b.mean()) and r["ci_low"] < r["mean"] < r["ci_high"]


def test_holm_adjustment():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    adjusted = stats.holm([0.02, float("nan"), 0.04])
    assert adjusted[0] == pytest.approx(0.04) and np.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)
    p = np.random.default_rng(1).uniform(0, 0.1, 20)
    adj = np.array(stats.holm(p))
    assert np.all(adj >= p) and np.all(np.diff(adj[np.argsort(p)]) >= 0)   # never smaller, order kept


def test_verdict_rules():
    assert stats.verdict(0.02, 0.01) == "holds"
    assert stats.verdict(-0.02, 0.01) == "does not hold"
    assert stats.verdict(0.02, 0.2) == "not significant"
    assert stats.verdict(0.02, float("nan")) == "not significant"


def test_did_not_train_flags_chance_level_loss():
    assert did_not_train(math.log(10), 10) and did_not_train(2.2, 10)
    assert not did_not_train(0.3, 10) and not did_not_train(0.5, 2)


def synthetic_rows(effects, n_seeds=10, noise=0.002, seed=0, datas=("mnist", "fashion-mnist")):
    """Rows where the treatment arm of each claim is better by ``effects[key]`` at its best rate.

    At rate 0.1 every dropout run has a *high test* but *low validation* accuracy: a selection that peeked at
    the test set would pick it; nested selection must pick rate 0.5.
    """
    rng = np.random.default_rng(seed)
    rows = []
    sizes = {"1000": 1000, "10000": 10000}
    configs = {c.label: c for c in make_plan("mnist").configs}

    def arm_effect(config, size):
        total = 0.0
        for claim in stats.CLAIMS:
            if claim.group == config.group and claim.key in effects and not claim.across_sizes:
                kind = config.kind if claim.key.startswith("spatial") else "element"   # kind only matters there
                rows_ = [dict(group=config.group, placement=config.placement, kind=kind)]
                if stats._arm_members(rows_, claim.group, claim.treatment) and not \
                        stats._arm_members(rows_, claim.group, claim.control):
                    total += effects[claim.key] if (not claim.smallest_only or size == "1000") else 0.0
        return total

    for data in datas:
        for size, n in sizes.items():
            for s in range(n_seeds):
                base = 0.9 + rng.normal(0, 0.02)   # shared per block: pairing must remove it
                for config in configs.values():
                    if not config.trains_at(n):
                        continue
                    effect = arm_effect(config, size)
                    test = base + effect + rng.normal(0, noise)
                    val = test + rng.normal(0, noise)
                    if config.rate == 0.1:
                        test, val = test + 0.05, val - 0.05
                    rows.append(dict(data=data, group=config.group, layers=",".join(config.layers),
                                     batch_norm=config.batch_norm, placement=config.placement, kind=config.kind,
                                     rate=config.rate, size=size, n_train=n, seed=s, schedule="constant",
                                     max_epochs=10, epochs=5, stopped_early=True, final_train_loss=0.1,
                                     did_not_train=False, val_accuracy=val, test_accuracy=test, train_time_s=0.1,
                                     same_as=""))
    return rows


def _synthetic_with_rate_01(effects):
    rows = synthetic_rows(effects)
    extra = []
    for row in rows:   # add a rate-0.1 twin of every rate-0.25 run (the default mnist plan has no 0.1)
        if row["rate"] == 0.25:
            extra.append(dict(row, rate=0.1, test_accuracy=row["test_accuracy"] + 0.05,
                              val_accuracy=row["val_accuracy"] - 0.05))
    return rows + extra


def test_rates_are_chosen_on_validation_never_on_test():
    rows = _synthetic_with_rate_01({})
    chosen = stats.select(rows, "base", "after_last_pool")
    assert chosen and all(r["rate"] != 0.1 for r in chosen.values())   # 0.1 wins on test, loses on validation
    # permuting the test accuracies changes no choice: selection never reads them
    shuffled = [dict(r, test_accuracy=t) for r, t in
                zip(rows, np.random.default_rng(0).permutation([r["test_accuracy"] for r in rows]))]
    again = stats.select(shuffled, "base", "after_last_pool")
    assert {k: (r["rate"], r["placement"]) for k, r in chosen.items()} == \
        {k: (r["rate"], r["placement"]) for k, r in again.items()}


def test_analyse_detects_planted_effects_per_data_set_and_size():
    effects = dict(after_last_pool=0.02, every_layer_deep=-0.03, no_dropout_before_bn=0.04,
                   every_layer_deep_residual=0.03)
    results = stats.analyse(_synthetic_with_rate_01(effects))
    cells = {(r["key"], r["data"], str(r["size"])): r for r in results}
    for data in ("mnist", "fashion-mnist"):
        for size in ("1000", "10000"):
            assert cells[("after_last_pool", data, size)]["verdict"] == "holds"
            assert cells[("after_last_pool", data, size)]["mean"] == pytest.approx(0.02, abs=0.003)
            assert cells[("spatial_conv_maps", data, size)]["verdict"] == "not significant"
        assert cells[("no_dropout_before_bn", data, "1000")]["verdict"] == "holds"
        assert cells[("every_layer_deep", data, "1000")]["verdict"] == "does not hold"
        assert ("every_layer_deep", data, "10000") not in cells          # the deep model is cut at 10000
        assert cells[("every_layer_deep_residual", data, "1000")]["verdict"] == "holds"
        assert ("every_layer_deep_residual", data, "10000") not in cells
        assert ("last_layers_small_data", data, "10000") not in cells    # a small-data claim: smallest size only
        assert cells[("small_sets_little_gain", data, "1000 vs 10000")]["n"] == 10
    assert all(r["n"] == 10 for r in results)                           # one pair per seed: sizes never pooled
    assert all(r["p_holm"] >= r["p_t"] for r in results)
    assert stats.holm([r["p_t"] for r in results]) == [r["p_holm"] for r in results]   # one family


def test_recommendation_reads_validation_only():
    rows = _synthetic_with_rate_01(dict(after_last_pool=0.02))
    rec = stats.recommend(rows, "mnist", "base")
    assert rec["rate"] != 0.1 and rec["size"] == "10000" and rec["n_seeds"] == 10
    assert rec["test_ci"][0] <= rec["test_mean"] <= rec["test_ci"][1]
    lines = report.recommendation_lines(rec, "mnist")
    assert "95% CI" in lines[0] and "dropout_rate=" in lines[0]


def test_report_renders_every_verdict_and_the_recommendation():
    rows = _synthetic_with_rate_01(dict(after_last_pool=0.02, every_layer_deep=-0.03))
    results = stats.analyse(rows)
    recs = {"mnist": stats.recommend(rows, "mnist", "base")}
    text = report.render(rows, results, recs, dict(command="minicnn study"))
    table = [line for line in text.splitlines() if line.startswith("| ") and line.endswith("** |")]
    assert len(table) == len(results) and all(any(f"**{v}**" in line for v in VERDICTS) for line in table)
    assert "NOT MEANINGFUL" not in text and "keep" in text
    assert text.index("## Recommendation") > text.index("## Verdicts")


# --------------------------------------------------------------------------- training runs


def test_test_set_never_chooses_anything(monkeypatch, tmp_path):
    """Scrambling the test labels changes test accuracies only: validation scores, epochs, choices stay."""
    plan = tiny_plan(("base/none", "base/after_last_pool/element/0.5", "base/after_each_layer/element/0.5"))
    clean = [report.typed(r) for r in run_plan(plan, tmp_path / "a.csv", n_jobs=1, verbose=0)]
    real = study_data.load_split

    def scrambled(data, test_size):
        X_pool, y_pool, X_test, y_test = real(data, test_size)
        return X_pool, y_pool, X_test, (y_test + 1) % 10

    monkeypatch.setattr(study_data, "load_split", scrambled)
    dirty = [report.typed(r) for r in run_plan(plan, tmp_path / "b.csv", n_jobs=1, verbose=0)]

    def key(r):
        return (r["placement"], r["seed"])

    clean, dirty = sorted(clean, key=key), sorted(dirty, key=key)
    for c, d in zip(clean, dirty):
        assert (c["val_accuracy"], c["epochs"], c["final_train_loss"]) == \
            (d["val_accuracy"], d["epochs"], d["final_train_loss"])
    assert [r["test_accuracy"] for r in clean] != [r["test_accuracy"] for r in dirty]
    for arm in ("after_last_pool", "conv_maps_element"):
        assert {k: key(r) for k, r in stats.select(clean, "base", arm).items()} == \
            {k: key(r) for k, r in stats.select(dirty, "base", arm).items()}


def test_study_resumes_and_skips_finished_runs(tmp_path, monkeypatch):
    import minicnn.tools.study.runner as runner

    plan = tiny_plan()
    path = tmp_path / "runs.csv"
    first = run_plan(plan, path, n_jobs=1, verbose=0)
    assert len(first) == 4 and set(first[0]) == set(CSV_FIELDS)
    # an interrupted study: the last run never reached the CSV
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))
    calls = []
    real = runner.run_one
    monkeypatch.setattr(runner, "run_one", lambda *a: calls.append(a) or real(*a))
    again = run_plan(plan, path, n_jobs=1, verbose=0)
    assert len(calls) == 1 and len(again) == 4 and len(read_csv(path)) == 4
    calls.clear()
    assert len(run_plan(plan, path, n_jobs=1, verbose=0)) == 4 and calls == []   # nothing left to train
    strip = [{k: v for k, v in r.items() if k != "train_time_s"} for r in (first, again)[0]]
    assert sorted(map(str, strip)) == sorted(map(str, [{k: v for k, v in r.items() if k != "train_time_s"}
                                                        for r in again]))


def test_resume_refuses_a_csv_of_another_format(tmp_path):
    (tmp_path / "runs.csv").write_text("group,placement\nbase,none\n")
    with pytest.raises(ValueError, match="delete it or choose another --out"):
        run_plan(tiny_plan(), tmp_path / "runs.csv", n_jobs=1, verbose=0)


# loky retires an idle worker after its timeout; on a loaded machine that can land while jobs are queued, and
# loky says so in a UserWarning that is about the pool, not the study
@pytest.mark.filterwarnings("ignore:A worker stopped while some jobs were given to the executor:UserWarning")
def test_run_plan_is_deterministic_and_parallel_safe(tmp_path):
    plan = tiny_plan()
    serial = run_plan(plan, tmp_path / "s.csv", n_jobs=1, verbose=0)
    parallel = run_plan(plan, tmp_path / "p.csv", n_jobs=2, verbose=0)

    def strip(rows):
        return sorted(str({k: v for k, v in r.items() if k != "train_time_s"}) for r in rows)

    assert strip(serial) == strip(parallel)


def test_scheduler_runs_on_a_dask_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    plan = tiny_plan()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:
        rows = run_plan(plan, tmp_path / "d.csv", scheduler=cluster.scheduler_address, verbose=0)
    local = run_plan(plan, tmp_path / "l.csv", n_jobs=1, verbose=0)

    def acc(rows):
        return sorted((r["placement"], r["seed"], r["test_accuracy"]) for r in rows)

    assert len(rows) == 4 and acc(rows) == acc(local)


def test_scheduler_without_dask_says_what_to_install(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_dask(name, *args, **kwargs):
        if name.split(".")[0] in ("distributed", "dask"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    code, _, err = run_cli("study", "--data", "digits", "--quick", "--scheduler", "tcp://127.0.0.1:8786",
                           "--out", tmp_path, "--quiet")
    assert code == 1
    assert "pip install 'dask[distributed]' dask-ml" in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------- the command on user data


@pytest.fixture(scope="module")
def user_study(tmp_path_factory):
    from minicnn import datasets

    folder = tmp_path_factory.mktemp("user")
    X, y = datasets.load_digits_images()
    np.savez(folder / "my.npz", X=X[:400], y=y[:400])
    code, stdout, stderr = run_cli("study", "--data", folder / "my.npz", "--layers", "conv4,maxpool,dense16",
                                   "--quick", "--n-jobs", "1", "--out", folder / "out")
    assert code == 0, stderr
    return folder / "out", stdout


def test_user_data_study_end_to_end(user_study):
    out, stdout = user_study
    rows = report.read_runs(out / "runs.csv")
    assert {r["group"] for r in rows} == {"user"} and {r["layers"] for r in rows} == {"conv4,maxpool,dense16"}
    assert all(0 <= r["val_accuracy"] <= 1 and 0 <= r["test_accuracy"] <= 1 for r in rows)
    assert {r["n_train"] for r in rows} == {320}   # 400 images, 20% held out as the test set
    text = (out / "report.md").read_text()
    assert text.splitlines()[2].startswith("> **NOT MEANINGFUL")   # the quick run says so up front ...
    rec = text[text.index("## Recommendation"):]
    assert "95% CI" in rec and "NOT MEANINGFUL" in rec                # ... and next to the recommendation
    assert "NOT MEANINGFUL" in stdout and "recommendation" in stdout
    assert (out / "study_accuracy_by_size.png").is_file() or "pip install matplotlib" in text


def test_from_csv_reproduces_the_report(user_study, tmp_path):
    out, _ = user_study
    code, _, err = run_cli("study", "--from-csv", out / "runs.csv", "--docs", "--out", tmp_path)
    assert code == 0, err
    assert (tmp_path / "STUDY.md").read_text().split("## Verdicts")[1] == \
        (out / "report.md").read_text().split("## Verdicts")[1]


def test_user_data_needs_layers(tmp_path):
    code, _, err = run_cli("study", "--data", tmp_path / "my.npz", "--out", tmp_path)
    assert code == 1 and "--layers" in err


def test_schedule_is_one_value_with_a_constant_fallback(monkeypatch):
    import minicnn

    params = minicnn.CNNClassifier().get_params()
    expected = {"lr_schedule": "cosine"} if "lr_schedule" in params else {}
    assert grid.schedule_params("cosine") == expected
    assert grid.schedule_params("constant") == {} and grid.schedule_params(None) == {}
    monkeypatch.setattr(minicnn.CNNClassifier, "get_params", lambda self, deep=True: dict(params, lr_schedule="x"))
    assert grid.schedule_params("cosine") == {"lr_schedule": "cosine"}
    monkeypatch.setattr(minicnn.CNNClassifier, "get_params",
                        lambda self, deep=True: {k: v for k, v in params.items() if k != "lr_schedule"})
    assert grid.schedule_params("cosine") == {}


def test_budget_measures_the_cost_of_a_fit_on_the_data():
    from minicnn.tools.study import measure_epoch_cost

    plan = make_plan("digits", quick=True)
    costs = measure_epoch_cost(plan, n_images=100)
    assert set(costs) == {m.group for m in plan.profile.models} == {"base", "bn", "deep", "resdeep"}
    assert all(0 < c < 60 for c in costs.values())   # CPU seconds per epoch per 1000 images, finite and positive
