"""Hostile command lines: every error is one line, in the command's spelling, with the right exit code.

Exit codes: 2 for arguments the command refuses before doing anything (a bad value, an unknown option,
options that do not go together), 1 for an error while running (a missing or unreadable file), 0 otherwise.
Every message is ``minicnn COMMAND: error: ...`` on one line and names the option (``--data``, ``--out``,
``--model``) as typed, never a Python parameter spelling such as ``layers=('conv2',)``.
"""

import warnings

import numpy as np
import pytest

from helpers import run_cli

COMMANDS = ("fit", "predict", "evaluate", "summary", "export", "mc-report", "study", "bench")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from minicnn import CNNClassifier

    folder = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    X = rng.random((40, 8, 8, 1), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        CNNClassifier(layers=("conv2", "maxpool"), max_iter=1, random_state=0, backend="numpy").fit(
            X, np.arange(40) % 2).save(folder / "m.npz")
    np.save(folder / "x.npy", X)
    (folder / "sub").mkdir()
    (folder / "dir.npz").mkdir()
    return folder


def check(argv, code, *needles):
    got, _, err = run_cli(*argv)
    command = next((a for a in map(str, argv) if a in COMMANDS), None)
    assert got == code, (argv, err)
    assert err.count("\n") == 1, f"not one line: {err!r}"
    prefix = f"minicnn {command}: error: " if command else "minicnn: error: "
    assert err.startswith(prefix), err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_option_is_reported_by_its_command(files, command):
    required = {"predict": ["--model", files / "m.npz", files / "x.npy"], "summary": ["--model", files / "m.npz"],
                "export": ["--model", files / "m.npz", "--out", files / "m.onnx"],
                "evaluate": ["--model", files / "m.npz"], "mc-report": ["--model", files / "m.npz"]}.get(command, [])
    check([command, *required, "--no-such-option"], 2, "unrecognized arguments: --no-such-option",
          f"(see 'minicnn {command} --help')")


@pytest.mark.parametrize("option", ["--out", "--model"])
@pytest.mark.parametrize("command", ["fit", "predict", "summary"])
def test_a_directory_where_a_file_belongs_is_named_with_its_option(files, command, option):
    if command == "fit" and option == "--model" or command == "summary" and option == "--out":
        pytest.skip("the command takes no such option")
    argv = {"fit": ["fit", "--quiet", "--epochs", "1"],
            "predict": ["predict", "--model", files / "m.npz", files / "x.npy"],
            "summary": ["summary", "--model", files / "m.npz"]}[command]
    argv = argv + [option, files / "sub"]
    if command == "predict" and option == "--model":
        argv = ["predict", "--model", files / "sub", files / "x.npy"]
    if command == "summary":
        argv = ["summary", "--model", files / "sub"]
    check(argv, 1, f"{option} {files / 'sub'} is a directory")


@pytest.mark.parametrize("option", ["--data", "--test-data"])
@pytest.mark.parametrize("spec", ["missing.npz", "idx:missing-images,missing-labels", "{folder}/dir.npz"])
def test_missing_data_files_are_named_with_their_option(files, option, spec):
    spec = spec.format(folder=files)
    extra = ["--data", "digits"] if option == "--test-data" else []
    err = check(["fit", "--quiet", "--epochs", "1", "--out", files / "o.npz", *extra, option, spec], 1,
                f"{option} {spec}:")
    assert "Errno" not in err


@pytest.mark.parametrize("value, needle", [
    ("conv0", "Received: layers[0]='conv0'"), ("conv2,,maxpool", "no empty token"), ("", "no empty token"),
    ("dense4,maxpool", "--layers dense4,maxpool"), ("foo", "'foo'"),
])
def test_bad_layer_tokens_are_refused_as_arguments(value, needle):
    check(["fit", "--layers", value], 2, "argument --layers:", needle)


@pytest.mark.parametrize("argv, needles", [
    (["--layers", "conv2"], ["--dropout after_last_pool", "--layers conv2"]),
    (["--layers", "conv2,maxpool", "--dropout", "5"], ["--dropout 5"]),
    (["--layers", "conv2,maxpool", "--dropout-rate", "0.1,0.2"], ["--dropout-rate 0.1,0.2"]),
    (["--layers", "conv2,maxpool", "--dropout", "last:9"], ["--dropout last:9"]),
])
def test_options_that_do_not_go_together_exit_2_before_reading_data(argv, needles, monkeypatch):
    import minicnn.cli as cli

    monkeypatch.setattr(cli, "load_training_data", lambda *a, **k: pytest.fail("data read before the check"))
    err = check(["fit", *argv], 2, "the options do not go together", *needles)
    assert "=(" not in err and "='" not in err   # no Python spelling of a parameter


def test_study_sizes_below_the_smallest_run_are_refused_as_arguments():
    from minicnn.tools.study.grid import MIN_SIZE

    check(["study", "--quick", "--sizes", str(MIN_SIZE - 1)], 2, "argument --sizes:", f">= {MIN_SIZE}")
