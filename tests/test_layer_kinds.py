"""Every token list and help text comes from the one table of layer kinds (``LAYER_KINDS``).

A new row in the table must show up in the error messages, the ``--help`` of
the command, the parameter table and the estimators' docstrings; the texts
that cannot be generated (prose docstrings) are checked against the table.
"""

import re
from pathlib import Path

import pytest

import minicnn
from minicnn import architecture, cli, params, placement
from minicnn.architecture import LAYER_KINDS, POOLING_TOKENS, TOKEN_HELP, parse_layers
from minicnn.onnx import _graph

FORMS = [kind.help.strip("'") for kind in LAYER_KINDS.values()]


def _layers_param():
    (param,) = [p for p in params.PARAMS if p.name == "layers"]
    return param


@pytest.mark.parametrize("where, text", [
    ("TOKEN_HELP", TOKEN_HELP),
    ("cli.LAYERS_GRAMMAR", cli.LAYERS_GRAMMAR),
    ("params layers doc", _layers_param().doc),
    ("CNNClassifier docstring", minicnn.CNNClassifier.__doc__),
    ("CNNRegressor docstring", minicnn.CNNRegressor.__doc__),
])
def test_every_kind_is_listed_in_every_help_text(where, text):
    missing = [form for form in FORMS if form not in text]
    assert not missing, f"{where} does not list {missing}"


def test_an_unknown_token_error_lists_every_kind():
    with pytest.raises(ValueError) as info:
        parse_layers(("conv4", "resnet"))
    assert all(form in str(info.value) for form in FORMS)


def test_prose_pooling_lists_match_the_table():
    assert set(POOLING_TOKENS) == {"maxpool", "avgpool", "gap", "gmp"}
    for text in (placement.__doc__, minicnn.CNNClassifier.__doc__):
        assert all(f"``{name}``" in text for name in POOLING_TOKENS)
    with pytest.raises(ValueError, match="needs a pooling layer") as info:
        placement.resolve_dropout(parse_layers(("conv4",)), "after_last_pool")
    assert all(name in str(info.value) for name in POOLING_TOKENS)


def test_every_layer_a_token_builds_has_an_onnx_translation_and_shape_sections():
    """The checklist of a new kind: its layers export to ONNX and document their input and output shapes."""
    examples = {"conv": "conv3s2", "res": "res4s2", "dw": "dw3", "sep": "sep4", "maxpool": "maxpool",
                "avgpool": "avgpool", "gap": "gap", "gmp": "gmp", "dense": "dense3"}
    assert set(examples) == set(LAYER_KINDS)
    translated = set(_graph.TRANSLATORS) | set(_graph.COMPOSITE_TRANSLATORS)
    networks = [parse_layers(tuple(examples.values())[:-3] + ("gmp", "dense3")), parse_layers(("avgpool", "gap"))]
    for tokens in networks:
        for batch_norm in (False, True):
            specs = placement.resolve_dropout(tokens, "last:1", 0.1)
            layers, _ = architecture.build_layers(tokens, specs, n_outputs=2, batch_norm=batch_norm)
            for layer in (inner for top in layers for inner in top.walk()):
                assert type(layer) in translated, f"{type(layer).__name__} has no ONNX translator"
                doc = type(layer).__doc__
                assert "Input shape" in doc and "Output shape" in doc, type(layer).__name__


DOC = Path(__file__).resolve().parent.parent / "docs" / "LAYERS.md"


def test_the_layers_doc_lists_every_kind():
    text = DOC.read_text()
    missing = [form for form in FORMS if f"`{form}`" not in text]
    assert not missing, f"docs/LAYERS.md does not list {missing}"


def test_the_zoo_numbers_in_the_doc_are_those_of_the_built_networks():
    import numpy as np

    from minicnn.tools.bench import macs_per_sample

    rows = re.findall(r"^\| [^|]+ \| `([a-z0-9,]+)` \| ([0-9,]+) \| ([0-9.]+) M \|$", DOC.read_text(), re.MULTILINE)
    assert len(rows) == 4
    for layers, weights, macs in rows:
        tokens = parse_layers(tuple(layers.split(",")))
        network, _ = architecture.build_network(tokens, [], n_outputs=10, input_shape=(32, 32, 3),
                                                rng=np.random.default_rng(0), backend="numpy", padding="same",
                                                batch_norm=True)
        assert network.n_params == int(weights.replace(",", "")), layers
        assert round(macs_per_sample(network) / 1e6, 2 if float(macs) < 10 else 1) == float(macs), layers


def test_every_public_layer_documents_its_input_and_output_shapes():
    from minicnn import layers

    for name in layers.__all__:
        if name in ("Layer", "Composite"):   # the protocol and the abstract composite
            continue
        doc = getattr(layers, name).__doc__
        assert "Input shape\n    -----------" in doc and "Output shape\n    ------------" in doc, name
