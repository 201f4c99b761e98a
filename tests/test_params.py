"""The one parameter table (minicnn.params) and the three faces built from it agree on every value."""

import ast
import inspect
import io
import json
import re
import zipfile

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

import minicnn
from minicnn import params
from minicnn._estimator_base import ARCHITECTURE_PARAMS
from minicnn.estimator import CNNClassifier, CNNRegressor
from minicnn.io import ModelFileError

ESTIMATORS = (CNNClassifier, CNNRegressor)

#: Values tried for every parameter: valid for some, invalid for others. The table decides which.
CANDIDATES = (True, False, np.bool_(True), 0, 1, 2, -1, 0.0, 0.5, 1.0, 1.5, -0.5, 1e-3, float("nan"), float("inf"),
              np.int64(3), np.float32(0.25), "adam", "same", "relu", "numpy", "bogus", "", None, (), (1, 2),
              ("conv4",), 2**40)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_table_is_the_constructor(cls):
    signature = inspect.signature(cls.__init__)
    defaults = {name: p.default for name, p in signature.parameters.items() if name != "self"}
    assert list(defaults) == list(params.TABLE)
    assert defaults == params.DEFAULTS
    assert cls._parameter_constraints.keys() == params.TABLE.keys()


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_docstring_defaults_follow_the_table(cls):
    doc = cls.__doc__
    for name, default in params.DEFAULTS.items():
        match = re.search(rf"^    {name} : .*default=(.+)$", doc, flags=re.M)
        assert match, f"{name} is not documented in {cls.__name__}"
        assert ast.literal_eval(match.group(1).strip()) == default, (name, match.group(1), default)


def test_every_kind_is_described():
    for name in params.TABLE:
        assert params.describe(name)
        assert params.invalid(name, params.DEFAULTS[name]) is None, name


@pytest.mark.parametrize("name", [p.name for p in params.PARAMS])
def test_estimator_validation_agrees_with_the_table(name):
    """Whatever the table refuses, fit refuses naming the parameter; whatever it accepts passes validation."""
    for value in CANDIDATES:
        problem = params.invalid(name, value)
        for cls in ESTIMATORS:
            est = cls(**{name: value})
            if problem is None:
                try:
                    est._validate_params()
                except InvalidParameterError as exc:   # pragma: no cover - the assertion explains
                    pytest.fail(f"table accepts {name}={value!r} but the estimator refuses: {exc}")
            else:
                with pytest.raises(InvalidParameterError, match=rf"The '{name}' parameter of {cls.__name__} must be"):
                    est._validate_params()


@pytest.mark.parametrize("name", [p.name for p in params.PARAMS if p.kind in ("int", "float", "rates")])
def test_bools_are_never_numbers(name):
    for value in (True, False, np.bool_(False)):
        assert "not a bool" in params.invalid(name, value)
        for cls in ESTIMATORS:
            with pytest.raises(InvalidParameterError, match=rf"'{name}'.*not a bool.*Got {value!r}"):
                cls(**{name: value})._validate_params()


def test_a_number_as_placement_suggests_dropout_rate():
    with pytest.raises(InvalidParameterError, match=r"'dropout'.*dropout_rate=0\.3"):
        CNNClassifier(dropout=0.3)._validate_params()


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    X = np.random.default_rng(0).random((12, 16), dtype=np.float32)
    y = np.arange(12) % 2
    clf = CNNClassifier(layers=("conv2", "maxpool"), max_iter=1, backend="numpy", random_state=0).fit(X, y)
    path = tmp_path_factory.mktemp("params") / "model.npz"
    clf.save(path)
    return path


def _with_param(src, dst, name, value):
    """Copy the model file ``src`` to ``dst`` with one saved parameter replaced."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "header.npy":
                arr = np.lib.format.read_array(io.BytesIO(data))
                header = json.loads(arr.tobytes().decode())
                header["params"][name] = value
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
                data = buffer.getvalue()
            zout.writestr(info, data)


#: Parameters whose validity the table alone decides (the others are also parsed: layers, dropout, input_shape).
SIMPLE = [p.name for p in params.PARAMS if p.kind in ("int", "float", "bool", "choice", "verbose", "seed")]


@pytest.mark.parametrize("name", SIMPLE)
def test_load_and_load_predictor_agree_with_the_table(saved_model, tmp_path, name):
    json_values = [v for v in CANDIDATES if isinstance(v, (bool, int, float, str, type(None)))
                   and not (isinstance(v, float) and not np.isfinite(v))]
    for value in json_values:
        path = tmp_path / "edited.npz"
        _with_param(saved_model, path, name, value)
        accepted = params.invalid(name, value) is None
        if accepted and name in ARCHITECTURE_PARAMS:
            continue   # a valid value that changes the network's geometry no longer matches the saved weights
        for loader in (minicnn.load, minicnn.load_predictor):
            if accepted:
                loader(path)
            else:
                with pytest.raises(ModelFileError, match=rf"'{name}'"):
                    loader(path)


@pytest.mark.parametrize("name", [p.name for p in params.PARAMS if p.kind in ("int", "float", "choice")])
def test_cli_types_follow_the_table(name):
    import argparse

    parse = params.cli_type(name)
    p = params.TABLE[name]
    good = str(p.default) if p.default is not None else "None"
    assert parse(good) == p.default
    for text in ("bogus", "-1", "nan"):
        value = text
        if p.kind != "choice":
            try:
                value = float(text) if p.kind == "float" else int(text)
            except ValueError:
                pass
        if params.invalid(name, value) is not None:
            with pytest.raises(argparse.ArgumentTypeError, match=re.escape(repr(text))):
                parse(text)
