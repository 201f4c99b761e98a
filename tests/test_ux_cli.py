"""New-user findings on the command: every command says what file it wrote (path, size, what checked it) and
writes nothing else; evaluate and mc-report find the data fit recorded; mc-report ends with a plain verdict."""

import os
import re
import time

import numpy as np
import pytest

from minicnn import cli
from minicnn.uncertainty import verdict

from helpers import run_cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--layers", "conv4,maxpool,dense8", "--epochs", "2", "--backend", "numpy"]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A model written by `minicnn fit` on digits with a recorded non-default split, and an input file."""
    folder = tmp_path_factory.mktemp("fitted")
    code, out, err = _quiet_cli("fit", *SMALL, "--quiet", "--test-size", "0.3", "--seed", "3",
                                "--out", folder / "model.npz")
    assert code == 0, err
    np.save(folder / "X.npy", np.random.default_rng(0).random((5, 8, 8, 1), dtype=np.float32))
    return folder


def _quiet_cli(*argv):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the 2-epoch fit's ConvergenceWarning
        return run_cli(*argv)


#: command -> (arguments, in a folder holding model.npz and X.npy; the files it must write there).
COMMAND_RUNS = {
    "fit": (SMALL + ["--out", "new.npz", "--checkpoint", "fit.ckpt.npz"], ["new.npz", "fit.ckpt.npz"]),
    "predict": (["--model", "model.npz", "X.npy", "--out", "p.csv"], ["p.csv"]),
    "evaluate": (["--model", "model.npz"], []),
    "summary": (["--model", "model.npz"], []),
    "export": (["--model", "model.npz", "--out", "m.onnx"], ["m.onnx"]),
    "mc-report": (["--model", "model.npz", "--mc-samples", "2", "--limit", "50"], []),
    "bench": (["--quick", "--no-rss", "--no-cold-start", "--json", "b.json"], ["b.json"]),
    "study": (["--from-csv", os.path.join(REPO, "docs", "study_runs.csv"), "--out", "st", "--quiet"],
              ["st/report.md"]),
}


def test_every_command_has_a_run():
    assert set(COMMAND_RUNS) == set(cli.COMMANDS)


def _files(folder):
    return {os.path.relpath(os.path.join(d, f), folder): os.stat(os.path.join(d, f)).st_mtime_ns
            for d, _, names in os.walk(folder) for f in names}


@pytest.mark.parametrize("command", sorted(COMMAND_RUNS))
def test_a_command_names_every_file_it_writes_with_its_size(command, fitted, monkeypatch):
    if command == "export":
        pytest.importorskip("onnx")
    argv, must = COMMAND_RUNS[command]
    monkeypatch.chdir(fitted)
    before = _files(fitted)
    start = time.time()
    code, out, err = _quiet_cli(command, *argv)
    assert code == 0, err
    written = sorted(p for p, m in _files(fitted).items() if before.get(p) != m)
    assert set(must) <= set(written), (written, must)
    said = out + err
    for path in written:
        folder, name = os.path.split(path)
        if folder:   # a folder's files: one line for the folder, each file with its size
            assert re.search(rf"wrote {re.escape(folder)}/: .*\b{re.escape(name)} \(\d+(\.\d)? (B|kB|MB)\)", said), said
        else:
            assert re.search(rf"^(wrote|saved model to) {re.escape(name)} \(\d+(\.\d)? (B|kB|MB); .+; checked: .+\)$",
                             said, re.M), said
    assert time.time() >= start
    if not must:
        assert written == [] and "wrote " not in said and "saved model to" not in said


def test_export_says_what_verified_it(fitted, monkeypatch):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    monkeypatch.chdir(fitted)
    code, _, err = run_cli("export", "--model", "model.npz", "--out", "v.onnx")
    assert code == 0 and "checked: onnx.checker, and ONNX Runtime matches predict_proba within" in err, err


# ------------------------------------------------------------------ evaluate / mc-report and the recorded data
def test_evaluate_and_mc_report_use_the_data_fit_recorded(fitted, monkeypatch):
    monkeypatch.chdir(fitted)
    code, out, err = run_cli("evaluate", "--model", "model.npz")
    assert code == 0, err
    assert "on 540 samples from digits (the --test-size 0.3 split of --seed 3" in out   # 30% of 1797
    assert "recorded in the model by 'minicnn fit'" in out
    code, out, err = _quiet_cli("mc-report", "--model", "model.npz", "--mc-samples", "2")
    assert code == 0 and "held-out samples: 540" in out, err
    code, explicit, _ = run_cli("evaluate", "--model", "model.npz", "--data", "digits", "--test-size", "0.3",
                                "--seed", "3")
    assert explicit.splitlines()[1:] == run_cli("evaluate", "--model", "model.npz")[1].splitlines()[1:]


def test_evaluate_without_data_names_the_recorded_file_data(tmp_path, monkeypatch):
    from minicnn.datasets import load_digits_images

    monkeypatch.chdir(tmp_path)
    X, y = load_digits_images()
    np.savez("mine.npz", X=X[:300], y=y[:300])
    code, _, err = _quiet_cli("fit", *SMALL, "--quiet", "--data", "mine.npz", "--out", "m.npz")
    assert code == 0, err
    for command in ("evaluate", "mc-report"):
        code, _, err = run_cli(command, "--model", "m.npz")
        assert code == 1
        assert f"{command} needs --data: m.npz was fitted with --data mine.npz" in err, err
    code, out, err = run_cli("evaluate", "--model", "m.npz", "--data", "mine.npz")
    assert code == 0 and "on 60 samples from mine.npz" in out, err


def test_a_model_saved_by_the_estimator_keeps_the_digits_default(tmp_path):
    import warnings

    from minicnn import CNNClassifier
    from minicnn.datasets import load_digits_images

    X, y = load_digits_images()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        CNNClassifier(layers=("conv4", "maxpool", "dense8"), max_iter=1, random_state=0).fit(X, y).save(
            tmp_path / "m.npz")
    code, out, err = run_cli("evaluate", "--model", tmp_path / "m.npz")
    assert code == 0 and "from digits (the --test-size 0.2 split of --seed 0" in out, err


# ------------------------------------------------------------------ mc-report's verdict
def _report(plain_loss, mc_loss, confidence, spread):
    row = dict(log_loss=plain_loss, brier=0.1, ece=0.02, accuracy=0.9, auroc_confidence=confidence)
    return {"deterministic": row, "mc": dict(row, log_loss=mc_loss, auroc_std=spread), "n_samples": 500,
            "mc_samples": 30}


@pytest.mark.parametrize("plain, mc, confidence, spread, says, advice", [
    (0.14, 0.18, 0.96, 0.92, "made the probabilities worse", "predict without --mc-samples"),
    (0.20, 0.15, 0.90, 0.93, "made the probabilities better", "predict with --mc-samples 30"),
    (0.20, 0.201, 0.85, 0.90, "no better or worse", "use the MC spread to flag doubtful inputs"),
    (0.20, 0.25, float("nan"), float("nan"), "could not be scored", "predict without --mc-samples"),
])
def test_the_verdict_is_one_plain_sentence_that_follows_the_numbers(plain, mc, confidence, spread, says, advice):
    text = verdict(_report(plain, mc, confidence, spread))
    assert text.startswith("Verdict: on these 500 held-out samples Monte-Carlo dropout ")
    assert says in text and advice in text and text.endswith(".") and "\n" not in text
    assert text.count(". ") == 0   # one sentence


def test_mc_report_ends_with_the_verdict(fitted, monkeypatch):
    monkeypatch.chdir(fitted)
    code, out, err = _quiet_cli("mc-report", "--model", "model.npz", "--mc-samples", "2", "--limit", "60")
    assert code == 0, err
    assert out.strip().splitlines()[-1].startswith("Verdict: on these 60 held-out samples Monte-Carlo dropout")


def test_a_refit_model_drops_the_data_record_of_the_fit_before(fitted, tmp_path):
    import warnings

    import minicnn
    from minicnn.datasets import load_digits_images

    model = minicnn.load(fitted / "model.npz")
    assert model._data_record == {"data": "digits", "test_data": None, "test_size": 0.3, "seed": 3}
    X, y = load_digits_images()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X[:200], y[:200])
    model.save(tmp_path / "refit.npz")
    assert getattr(minicnn.load(tmp_path / "refit.npz"), "_data_record", None) is None


@pytest.mark.parametrize("extra, same", [([], True), (["--test-size", "0.5"], False), (["--seed", "7"], False)])
def test_evaluate_says_it_scored_the_fits_split_only_when_it_did(extra, same, tmp_path, capsys):
    rng = np.random.default_rng(0)
    data, model = str(tmp_path / "d.npz"), str(tmp_path / "m.npz")
    np.savez(data, X=rng.random((40, 8, 8, 1)).astype(np.float32), y=np.arange(40) % 2)
    assert cli.main(["fit", "--data", data, "--layers", "conv2,maxpool", "--max-iter", "1", "--out", model,
                 "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", "--model", model, "--data", data, *extra]) == 0
    out, err = capsys.readouterr()
    assert ("as 'minicnn fit' held it out" in out) is same
    assert ("not the split 'minicnn fit' held out" in out) is not same
    assert ("may include training images" in err) is not same


@pytest.mark.parametrize("labels, message", [(np.arange(40) % 2 + 5, r"labels \[5, 6\] are not among"),
                                             (np.array(["a", "b"] * 20), r"labels \['a', 'b'\] are not among")])
def test_evaluate_names_labels_the_model_does_not_know(labels, message, tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.random((40, 8, 8, 1)).astype(np.float32)
    fitted, other, model = str(tmp_path / "f.npz"), str(tmp_path / "o.npz"), str(tmp_path / "m.npz")
    np.savez(fitted, X=X, y=np.arange(40) % 2)
    np.savez(other, X=X, y=labels)
    assert cli.main(["fit", "--data", fitted, "--layers", "conv2,maxpool", "--max-iter", "1", "--out", model,
                     "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", "--model", model, "--data", other, "--test-data", other]) != 0
    err = capsys.readouterr().err
    assert re.search(message, err) and "y_true" not in err


@pytest.mark.parametrize("command, data", [("evaluate", ["--data"]), ("evaluate", ["--test-data"]),
                                           ("mc-report", ["--data"])])
def test_a_model_fitted_on_a_folder_is_scored_on_it_as_the_fit_read_it(command, data, tmp_path, capsys):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    for name, count in (("a", 7), ("b", 9)):   # unequal classes, larger than --image-size, RGB
        (tmp_path / "f" / name).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(tmp_path / "f" / name / f"{i}.jpg")
    folder, model = f"folder:{tmp_path / 'f'}", str(tmp_path / "m.npz")
    assert cli.main(["fit", "--data", folder, "--image-size", "8,8", "--layers", "conv2,maxpool", "--max-iter", "1",
                     "--out", model, "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main([command, "--model", model, *data, folder]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("width", [2, 3])
def test_evaluate_names_a_target_width_the_regressor_does_not_predict(width, tmp_path, capsys):
    from minicnn import CNNRegressor

    rng = np.random.default_rng(0)
    X = rng.random((30, 8, 8, 1)).astype(np.float32)
    model, data = str(tmp_path / "r.npz"), str(tmp_path / "d.npz")
    CNNRegressor(layers=("conv2", "maxpool"), max_iter=1, random_state=0).fit(X, rng.random(30)).save(model)
    np.savez(data, X=X, y=rng.random((30, width)))
    assert cli.main(["evaluate", "--model", model, "--data", data, "--test-data", data]) != 0
    err = capsys.readouterr().err
    assert f"targets have {width} column(s); the model predicts 1" in err and "multioutput" not in err
