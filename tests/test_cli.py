"""The ``minicnn`` command: fit -> predict/summary round trip, every input format, one-line errors."""

import csv
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minicnn.cli import main
from minicnn.datasets import load_digits_images, save_idx

from helpers import run_cli

REPO = Path(__file__).resolve().parent.parent
SMALL_LAYERS = ["conv16,maxpool,dense64", "--padding", "same"]


def read_csv(text):
    return list(csv.reader(io.StringIO(text)))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A model trained by ``minicnn fit`` on digits (3 epochs), with the test images it holds out."""
    path = tmp_path_factory.mktemp("cli") / "model.npz"
    code, out, err = run_cli("fit", "--epochs", 3, "--out", path, "--seed", 1, "--layers", *SMALL_LAYERS)
    assert code == 0, err
    assert "Epoch 1/3" in out   # verbose progress by default
    accuracy = float(out.split("test accuracy: ")[1].split()[0])
    assert accuracy > 0.8
    assert "train time:" in out and path.is_file()
    return path


N_DIGITS = 12   # samples in the digits fixture (conftest.py)


def test_fit_predict_summary_round_trip(model, digits, tmp_path):
    from minicnn import load

    X, _ = digits
    expected = load(model).predict(X)
    np.savez(tmp_path / "x.npz", X=X)
    code, out, err = run_cli("predict", "--model", model, tmp_path / "x.npz")
    assert code == 0, err
    rows = read_csv(out)
    assert rows[0] == ["id", "prediction"]
    assert [int(r[1]) for r in rows[1:]] == expected.tolist()
    assert [r[0] for r in rows[1:]] == [str(i) for i in range(len(X))]

    code, out, err = run_cli("summary", "--model", model)
    assert code == 0, err
    assert "<-- dropout" in out and "Dropout placement:" in out and "after layers[1]='maxpool'" in out
    assert load(model).get_params()["layers"] == ("conv16", "maxpool", "dense64")


@pytest.mark.parametrize("fmt", ["npy", "idx", "idx.gz"])
def test_predict_reads_every_input_format(model, digits, tmp_path, fmt):
    from minicnn import load

    X, y = digits
    if fmt == "npy":
        path = tmp_path / "x.npy"
        np.save(path, X)
    else:
        path = tmp_path / f"x.{fmt}"
        save_idx(X, y, path, tmp_path / f"y.{fmt}")
        X = np.rint(X * 255) / 255   # what an idx file can hold
    out_csv = tmp_path / "preds.csv"
    code, _, err = run_cli("predict", "--model", model, path, "--out", out_csv, "--proba")
    assert code == 0, err
    rows = read_csv(out_csv.read_text())
    clf = load(model)
    assert rows[0] == ["id", "prediction"] + [f"proba_{c}" for c in clf.classes_]
    proba = np.array([[float(v) for v in r[2:]] for r in rows[1:]])
    np.testing.assert_allclose(proba, clf.predict_proba(X.astype(np.float32)), rtol=1e-5, atol=1e-6)
    assert [int(r[1]) for r in rows[1:]] == clf.predict(X.astype(np.float32)).tolist()


def test_predict_png_images(model, digits, tmp_path):
    pytest.importorskip("PIL", reason="PNG input needs Pillow")
    from PIL import Image

    X, _ = digits
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"digit{i}.png")
        Image.fromarray(np.rint(X[i, :, :, 0] * 255).astype(np.uint8), mode="L").save(paths[-1])
    code, out, err = run_cli("predict", "--model", model, *paths)
    assert code == 0, err
    rows = read_csv(out)
    assert [r[0] for r in rows[1:]] == [str(p) for p in paths]   # keyed by the path as given


def test_fit_reads_npz_and_idx_training_data(tmp_path):
    X, y = load_digits_images()
    np.savez(tmp_path / "train.npz", X=X[:200], y=y[:200])
    code, out, err = run_cli("fit", "--data", tmp_path / "train.npz", "--epochs", 1, "--quiet", "--layers",
                             "conv4,maxpool,dense8", "--out", tmp_path / "a.npz", "--dropout-rate", "0.1,0.2",
                             "--dropout", "1,2")
    assert code == 0, err
    assert "(40 images)" in out and "Epoch" not in out
    save_idx(X[:100], y[:100], tmp_path / "x.idx", tmp_path / "y.idx")
    code, out, err = run_cli("fit", "--data", f"idx:{tmp_path / 'x.idx'},{tmp_path / 'y.idx'}", "--epochs", 1,
                             "--quiet", "--layers", "conv4,maxpool,dense8", "--out", tmp_path / "b.npz")
    assert code == 0, err
    assert (tmp_path / "b.npz").is_file()


def _bad_cases(tmp):
    np.save(tmp / "x.npy", np.zeros((2, 8, 8, 1), dtype=np.float32))
    np.savez(tmp / "noX.npz", images=np.zeros(3))
    (tmp / "junk.idx").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05")
    (tmp / "junk.csv").write_text("group\nmain\n")
    (tmp / "a.png").write_bytes(b"not a png")
    return [
        ("no command", ["--debug"]),
        ("nothing at all", []),
        ("unknown command", ["nosuch"]),
        ("unknown option", ["fit", "--nosuch"]),
        ("zero epochs", ["fit", "--epochs", "0"]),
        ("epochs not a number", ["fit", "--epochs", "many"]),
        ("rate out of range", ["fit", "--dropout-rate", "1.5"]),
        ("rate list with a bad entry", ["fit", "--dropout-rate", "0.2,x"]),
        ("bad test size", ["fit", "--test-size", "1"]),
        ("negative learning rate", ["fit", "--learning-rate", "-1"]),
        ("nan learning rate", ["fit", "--learning-rate", "nan"]),
        ("bad padding", ["fit", "--padding", "full"]),
        ("unknown data", ["fit", "--data", "cifar"]),
        ("missing npz", ["fit", "--data", tmp / "missing.npz"]),
        ("npz without X", ["fit", "--data", tmp / "noX.npz"]),
        ("idx needs two files", ["fit", "--data", "idx:only_one"]),
        ("bad layer token", ["fit", "--layers", "conv8,bogus", "--epochs", "1", "--quiet"]),
        ("bad placement", ["fit", "--dropout", "everywhere", "--epochs", "1", "--quiet"]),
        ("last:K too large", ["fit", "--dropout", "last:9", "--epochs", "1", "--quiet"]),
        ("one rate per dropout", ["fit", "--dropout", "after_last_pool", "--dropout-rate", "0.1,0.2",
                                  "--epochs", "1", "--quiet"]),
        ("predict without model", ["predict", tmp / "x.npy"]),
        ("missing model", ["predict", "--model", tmp / "missing.npz", tmp / "x.npy"]),
        ("model is not a model", ["predict", "--model", tmp / "noX.npz", tmp / "x.npy"]),
        ("missing input", ["predict", "--model", tmp / "noX.npz", tmp / "missing.npy"]),
        ("summary of a non-model", ["summary", "--model", tmp / "x.npy"]),
        ("summary without model", ["summary"]),
        ("study with one seed", ["study", "--seeds", "1", "--out", tmp / "s"]),
        ("study bad sizes", ["study", "--sizes", "5", "--out", tmp / "s"]),
        ("study bad data", ["study", "--data", "cifar"]),
        ("study bad csv", ["study", "--from-csv", tmp / "junk.csv", "--out", tmp / "s"]),
        ("study missing csv", ["study", "--from-csv", tmp / "missing.csv", "--out", tmp / "s"]),
    ]


def test_every_bad_argument_exits_nonzero_with_one_line(tmp_path):
    for name, argv in _bad_cases(tmp_path):
        code, out, err = run_cli(*argv)
        assert code != 0, name
        lines = [line for line in err.strip().splitlines() if not line.startswith("usage: minicnn [")]
        assert len(lines) == 1, (name, err)
        assert "error" in lines[0] and "Traceback" not in err, (name, err)


def test_bad_model_files_and_inputs_exit_nonzero(model, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 8, 8, 1), dtype=np.float32))
    np.save(tmp_path / "wrong_shape.npy", np.zeros((2, 5, 5, 1), dtype=np.float32))
    np.savez(tmp_path / "noX.npz", images=np.zeros(3))
    (tmp_path / "junk.idx").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05")
    cases = [
        [tmp_path / "noX.npz"],                       # npz without X
        [tmp_path / "junk.idx"],                      # labels file given as images
        [tmp_path / "wrong_shape.npy"],               # 5x5 images for an 8x8 model
        [tmp_path / "x.npy", tmp_path / "x.npy"],     # several non-PNG inputs
    ]
    for inputs in cases:
        code, _, err = run_cli("predict", "--model", model, *inputs)
        assert code == 1, inputs
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (inputs, err)


def test_png_without_reader_gives_install_hint(model, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_png_readers(name, *args, **kwargs):
        if name.split(".")[0] in ("PIL", "matplotlib"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_png_readers)
    (tmp_path / "a.png").write_bytes(b"\x89PNG")
    code, _, err = run_cli("predict", "--model", model, tmp_path / "a.png")
    assert code == 1
    assert "pip install pillow" in err and len(err.strip().splitlines()) == 1


def test_fit_checks_the_layer_grammar_before_loading_data(tmp_path):
    code, out, err = run_cli("fit", "--layers", "conv16,bogus", "--data", str(tmp_path / "absent.npz"))
    assert code == 2 and "layers[1]='bogus'" in err and "absent" not in err, err


def test_evaluate_scores_the_test_set_fit_held_out(tmp_path):
    model = tmp_path / "m.npz"
    code, out, _ = run_cli("fit", "--epochs", "2", "--quiet", "--out", model)
    accuracy = next(line for line in out.splitlines() if line.startswith("test accuracy:")).split()[2]
    code, out, err = run_cli("evaluate", "--model", model)
    assert code == 0 and f"accuracy: {accuracy}" in out.splitlines(), out + err
    assert "confusion matrix" in out and "macro avg" in out and "weighted avg" in out
    X, y = load_digits_images()
    np.savez(tmp_path / "t.npz", X=X[:50], y=y[:50])
    code, out, err = run_cli("evaluate", "--model", model, "--test-data", str(tmp_path / "t.npz"))
    assert code == 0 and "on 50 samples" in out, err
    code, out, err = run_cli("evaluate", "--model", tmp_path / "absent.npz")
    assert code == 1 and "--model file not found" in err


def test_evaluate_scores_a_regressor_with_r2(tmp_path):
    import warnings

    from sklearn.metrics import r2_score

    from minicnn import CNNRegressor

    X, y = load_digits_images()
    target = (y - 4.5) / 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # a 2-epoch fit: its warnings are not what this test is about
        reg = CNNRegressor(layers=("conv4", "gap"), max_iter=2, random_state=0).fit(X[:200], target[:200])
    reg.save(tmp_path / "r.npz")
    np.savez(tmp_path / "t.npz", X=X[200:260], y=target[200:260])
    code, out, err = run_cli("evaluate", "--model", tmp_path / "r.npz", "--test-data", str(tmp_path / "t.npz"))
    assert code == 0, err
    assert f"R^2: {r2_score(target[200:260], reg.predict(X[200:260])):.4f}" in out.splitlines()


def test_debug_reraises(tmp_path):
    with pytest.raises(ValueError, match="expected digits, mnist"):
        main(["fit", "--data", "cifar", "--debug"])


@pytest.mark.parametrize("debug", [False, True])
def test_warnings_are_one_line_each_like_the_errors(tmp_path, debug):
    """A warning during a command prints as ``minicnn CMD: warning: Category: message`` (Python's form with --debug)."""
    import warnings

    with warnings.catch_warnings(record=True) as python_form:
        warnings.simplefilter("always")
        code, out, err = run_cli("fit", "--epochs", "1", "--quiet", "--out", tmp_path / "m.npz", "--batch-norm",
                                 "--dropout", "after_each_layer", *(["--debug"] if debug else []))
    assert code == 0 and "saved model" in out
    lines = err.splitlines()
    if debug:
        assert "warning:" not in err
        assert any("variance shift" in str(w.message) for w in python_form)
        return
    assert not python_form
    assert lines and all(line.startswith("minicnn fit: warning: ") for line in lines), err
    assert any(line.startswith("minicnn fit: warning: UserWarning: ") and "variance shift" in line for line in lines)
    assert any(line.startswith("minicnn fit: warning: ConvergenceWarning: CNNClassifier: maximum iterations "
                               "(--epochs 1)") for line in lines)   # --quiet: no stop line, so the warning


def test_a_run_with_progress_shows_the_stop_line_instead_of_the_max_iter_warning(tmp_path):
    code, out, err = run_cli("fit", "--epochs", "2", "--out", tmp_path / "m.npz")
    assert code == 0 and "max_iter=2 epochs reached" in out and "ConvergenceWarning" not in err, err


def test_cli_messages_use_the_options_spelling_for_every_parameter():
    """Every estimator parameter written ``name=value`` in a message becomes an option the parser has."""
    from minicnn import params
    from minicnn._cli_words import cli_spelling
    from minicnn.cli import build_parser

    fit = build_parser()._subparsers._group_actions[0].choices["fit"]
    options = {flag for action in fit._actions for flag in action.option_strings}
    for p in params.PARAMS:
        if p.name in ("verbose", "warm_start"):   # not options of one fit
            continue
        text = cli_spelling(f"Received: {p.name}={p.default!r}.")
        flag = text.split()[1]
        assert flag in options and f"{p.name}=" not in text, (p.name, text)


def test_cli_warnings_use_option_spellings(tmp_path):
    """A warning the estimator words with Python keywords reaches the command line with the options' spelling."""
    X, y = load_digits_images()
    np.savez(tmp_path / "d.npz", X=X[:200, :, :, 0], y=y[:200])   # (n, 8, 8) read as channels_last 8x8x1
    X3 = np.repeat(X[:200], 3, axis=-1).transpose(0, 3, 1, 2)      # (n, 3, 8, 8): channels first, read as last
    np.savez(tmp_path / "c.npz", X=X3, y=y[:200])
    code, out, err = run_cli("fit", "--data", str(tmp_path / "c.npz"), "--epochs", "1", "--quiet",
                             "--out", tmp_path / "m.npz")
    assert code == 0 and "--data-format channels_first" in err and "data_format=" not in err, err


def _subparsers():
    import argparse

    from minicnn.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, action.choices


def test_help_for_every_command_lists_every_option_with_its_default():
    import argparse

    parser, commands = _subparsers()
    assert sorted(commands) == sorted(["fit", "predict", "summary", "bench", "study"]) or set(commands) >= {
        "fit", "predict", "summary", "bench", "study"}
    for command, sub in commands.items():
        code, out, _ = run_cli(command, "--help")
        assert code == 0 and "usage: minicnn " + command in out
        assert sub.description and len(sub.description) > 40, command
        text = " ".join(out.split())
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction) or not action.option_strings:
                continue
            assert action.help and len(action.help) > 10, (command, action.option_strings)
            assert action.option_strings[0] in out, (command, action.option_strings)
            helptext = sub.formatter_class(prog="x")._get_help_string(action)
            assert "default" in helptext or "required" in helptext, (command, action.option_strings, helptext)
        assert "default: " in text


def test_layers_help_documents_the_token_grammar():
    code, out, _ = run_cli("fit", "--help")
    text = " ".join(out.split())
    from minicnn.architecture import LAYER_KINDS

    for kind in LAYER_KINDS.values():   # every kind of the one table, as the table writes it
        assert kind.help.strip("'") in text, kind.help


def test_no_command_exits_2_with_usage_and_version():
    from minicnn import __version__

    code, out, err = run_cli()
    assert code == 2 and "usage: minicnn" in err and "choose a command" in err and out == ""
    code, out, err = run_cli("--version")
    assert code == 0 and out.strip() == f"minicnn {__version__}"


def _parse_fit(*argv):
    from minicnn import cli

    return cli.classifier(cli.build_parser().parse_args(["fit", *map(str, argv)]))


def test_fit_defaults_are_the_estimators_defaults():
    """One set of defaults: 'minicnn fit' trains CNNClassifier() (seeded, verbose), whatever the table says."""
    from minicnn import CNNClassifier

    assert _parse_fit().get_params() == CNNClassifier(random_state=0, verbose=1).get_params()
    assert _parse_fit("--quiet", "--seed", 7).get_params() == CNNClassifier(random_state=7).get_params()


def _other_value(p):
    """A valid value of table parameter ``p`` other than its default, and how it is typed."""
    if p.kind == "choice":
        value = next(c for c in p.choices if c != p.default)
        return value, value
    if p.kind == "bool":
        return (not p.default), None
    if p.kind == "int":
        value = (p.default or 1) + 1
        return value, str(value)
    if p.kind == "float":
        value = p.default / 2 if p.default else 0.25
        if p.high is not None and value >= p.high:
            value = p.high / 2
        return value, repr(value)
    return {"tokens": (("conv4", "maxpool"), "conv4,maxpool"), "dropout": ((0, 1), "0,1"),
            "rates": ((0.1, 0.2), "0.1,0.2"), "shape": ((8, 8, 1), "8,8,1"),
            "augment": (("shift2", "hflip"), "shift2,hflip"), "class_weight": ({0: 1.0, 7: 2.5}, "0:1,7:2.5")}[p.kind]


@pytest.mark.parametrize("argv", [["--augment", "spin3"], ["--augment", "shift0"], ["--augment", "hflip,hflip"],
                                  ["--class-weight", "heavy"], ["--class-weight", "0:"], ["--class-weight", "0:-1"],
                                  ["--class-weight", "0:nan"]])
def test_bad_augment_and_class_weight_options_are_one_line_errors(argv):
    code, _, err = run_cli("fit", *argv)
    assert code == 2 and argv[1] in err and len(err.strip().splitlines()) == 1, err


def test_every_estimator_parameter_reaches_the_estimator():
    from minicnn import cli, params

    exposed = {p.name for p in cli._estimator_params()}
    assert exposed >= {"kernel_size", "optimizer", "weight_decay", "early_stopping", "validation_fraction",
                       "activation", "pool_size", "data_format", "input_shape", "layers", "padding", "batch_size",
                       "max_iter", "dropout", "dropout_rate", "dropout_kind", "learning_rate", "backend"}
    assert exposed == {p.name for p in params.PARAMS} - {"random_state", "verbose", "warm_start", "checkpoint_path"}
    for p in cli._estimator_params():
        value, text = _other_value(p)
        flag = "--epochs" if p.name == "max_iter" else "--" + p.name.replace("_", "-")
        argv = [f"--{'no-' if not value else ''}{p.name.replace('_', '-')}"] if p.kind == "bool" else [flag, text]
        assert _parse_fit(*argv).get_params()[p.name] == value, (p.name, argv)


def test_out_path_is_checked_before_training(tmp_path, monkeypatch):
    """A bad --out fails in well under a second, before any data is loaded or any epoch runs."""
    from minicnn import cli

    def no_training(*args, **kwargs):
        raise AssertionError("the data were loaded before --out was checked")

    monkeypatch.setattr(cli, "load_training_data", no_training)
    np.savez(tmp_path / "train.npz", X=np.zeros((4, 8, 8, 1)), y=np.arange(4) % 2)
    read_only = tmp_path / "ro.npz"
    read_only.write_bytes(b"keep")
    os.chmod(read_only, 0o444)
    for out, match in ((tmp_path / "missing" / "m.npz", "does not exist"), (tmp_path, "directory"),
                       (tmp_path / "train.npz", "same file"), (read_only, "ermission")):
        code, _, err = run_cli("fit", "--data", tmp_path / "train.npz", "--out", out)
        assert code == 1 and match in err and len(err.strip().splitlines()) == 1, (out, err)
    assert read_only.read_bytes() == b"keep" and (tmp_path / "train.npz").stat().st_size > 100


def test_predict_out_never_overwrites_the_model_or_an_input(model, tmp_path):
    copy = tmp_path / "m.npz"
    shutil.copy(model, copy)
    (tmp_path / "link.npz").symlink_to(copy)
    np.save(tmp_path / "x.npy", np.zeros((2, 8, 8, 1), np.float32))
    before = copy.read_bytes()
    for out in (copy, tmp_path / "link.npz", tmp_path / "x.npy"):
        code, _, err = run_cli("predict", "--model", copy, tmp_path / "x.npy", "--out", out)
        assert code == 1 and "same file" in err, (out, err)
    assert copy.read_bytes() == before
    code, _, err = run_cli("predict", "--model", copy, tmp_path / "x.npy", "--out", tmp_path / "p.csv")
    assert code == 0 and (tmp_path / "p.csv").read_text().startswith("id,prediction")


def test_fit_test_data_scores_a_separate_test_set(tmp_path):
    X, y = load_digits_images()
    np.savez(tmp_path / "train.npz", X=X[:120], y=y[:120])
    np.savez(tmp_path / "test.npz", X=X[1000:1050], y=y[1000:1050])
    save_idx(X[1000:1030], y[1000:1030], tmp_path / "tx.idx.gz", tmp_path / "ty.idx.gz")
    for test, n in ((tmp_path / "test.npz", 50), (f"idx:{tmp_path / 'tx.idx.gz'},{tmp_path / 'ty.idx.gz'}", 30)):
        code, out, err = run_cli("fit", "--data", tmp_path / "train.npz", "--test-data", test, "--epochs", 1,
                                 "--quiet", "--layers", "conv4,maxpool", "--out", tmp_path / "m.npz")
        assert code == 0, err
        from minicnn import load

        expected = load(tmp_path / "m.npz").score(X[1000:1000 + n], y[1000:1000 + n])
        assert f"test accuracy: {expected:.4f} ({n} images)" in out


def test_bench_delegates_to_the_bench_module(monkeypatch):
    import minicnn.tools.bench as bench

    monkeypatch.setattr(bench, "main", lambda argv: print("bench module called with", argv) or 0)
    code, out, _ = run_cli("bench", "--quick")
    assert code == 0 and "bench module called with ['--quick']" in out

    def refuse(argv):
        raise SystemExit("minicnn bench: unknown models ['x']")

    monkeypatch.setattr(bench, "main", refuse)   # the runner's own refusal, as one line
    code, _, err = run_cli("bench", "--quick")
    assert code == 1 and err.strip() == "minicnn bench: error: unknown models ['x']"
    code, _, err = run_cli("bench", "--models", "x")   # refused before the runner starts, naming the option
    assert code == 2 and "argument --models:" in err and "'x'" in err, err


@pytest.mark.parametrize("launcher", ["module", "script"])
def test_console_entry_points(launcher, tmp_path):
    if launcher == "script":
        exe = shutil.which("minicnn")
        if exe is None:
            pytest.skip("the minicnn console script is not installed (pip install -e .)")
        cmd = [exe]
    else:
        cmd = [sys.executable, "-m", "minicnn"]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(cmd + ["fit", "--epochs", "0"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--epochs" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run(cmd + ["--help"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0 and "predict" in done.stdout


@pytest.mark.slow
def test_default_fit_is_the_readme_main_job(tmp_path, monkeypatch):
    """``minicnn fit`` with no options: digits, CNNClassifier's defaults, >= 0.97 held-out accuracy, model.npz."""
    from minicnn import CNNClassifier, load

    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("fit", "--quiet")
    assert code == 0, err
    assert float(out.split("test accuracy: ")[1].split()[0]) >= 0.97
    assert "(360 images)" in out and (tmp_path / "model.npz").is_file()
    assert load("model.npz").get_params() == CNNClassifier(random_state=0).get_params()


@pytest.mark.parametrize("via", ["fifo", "proc_fd_pipe"])
def test_fit_out_into_a_fifo_or_pipe_writes_the_model_there(tmp_path, via):
    """``fit --out /dev/stdout | cat`` and ``--out FIFO``: accepted before training, the model arrives, no file made."""
    import stat
    import threading

    from minicnn import load

    np.savez(tmp_path / "train.npz", X=np.random.default_rng(0).random((8, 6, 6, 1)), y=np.arange(8) % 2)
    received = []
    if via == "fifo":
        out = tmp_path / "fifo"
        os.mkfifo(out)
        source = out
    else:
        source, w = os.pipe()
        out = f"/proc/self/fd/{w}"

    def read():
        with (os.fdopen(source, "rb") if isinstance(source, int) else open(source, "rb")) as f:
            received.append(f.read())
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        code, _, err = run_cli("fit", "--data", tmp_path / "train.npz", "--out", out, "--epochs", 1, "--layers", "conv2,maxpool",
                           "--test-size", 0.25, "--quiet")
    finally:
        if via != "fifo":
            os.close(w)
    thread.join(timeout=30)
    assert code == 0, err
    assert not thread.is_alive() and received
    (tmp_path / "copy.npz").write_bytes(received[0])
    assert load(tmp_path / "copy.npz").n_features_in_ == 36
    if via == "fifo":
        assert stat.S_ISFIFO(os.stat(out).st_mode)


@pytest.mark.parametrize("kind", ["missing", "directory", "dot", "devnull", "empty_file"])
def test_predict_input_kinds_get_the_error_of_what_they_are(model, tmp_path, kind, monkeypatch):
    """A directory without images is a directory, a device or empty file is unreadable data, only a missing path
    is 'not found'."""
    if kind in ("directory", "dot"):   # a folder is read as a folder of images: Pillow says what it holds
        pytest.importorskip("PIL", reason="reading a folder of images needs Pillow")
    (tmp_path / "empty.npy").write_bytes(b"")
    monkeypatch.chdir(tmp_path)   # "." holds no images (a folder of images is an input like its files)
    path = {"missing": tmp_path / "missing.npy", "directory": tmp_path, "dot": ".", "devnull": os.devnull,
            "empty_file": tmp_path / "empty.npy"}[kind]
    code, _, err = run_cli("predict", "--model", model, path)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert ("not found" in err) == (kind == "missing"), err
    if kind in ("directory", "dot"):
        assert "is a directory" in err


def test_evaluate_on_data_of_another_shape_names_the_data_it_scored(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "big.npz", X=rng.random((60, 12, 12, 1)).astype(np.float32), y=np.arange(60) % 3)
    model = tmp_path / "m.npz"
    code, _, err = run_cli("fit", "--data", str(tmp_path / "big.npz"), "--epochs", "1", "--quiet", "--out", model)
    assert code == 0, err
    code, _, err = run_cli("evaluate", "--model", model)   # fit recorded its own file: named, not read unasked
    assert code == 1 and f"evaluate needs --data: {model} was fitted with --data {tmp_path / 'big.npz'}" in err, err
    assert f"run: minicnn evaluate --model {model} --data {tmp_path / 'big.npz'}" in err, err   # the command to run
    import minicnn

    plain = minicnn.load(model)
    del plain._data_record   # as CNNClassifier.save writes it: no record of the data
    plain.save(tmp_path / "plain.npz")
    code, _, err = run_cli("evaluate", "--model", tmp_path / "plain.npz")   # the default --data: digits, 8x8
    assert code == 1 and "digits" in err and "--data or --test-data the model was fitted on" in err, err
