"""Every token list and help text comes from the one table of layer kinds (``LAYER_KINDS``).

A new row in the table must show up in the error messages, the ``--help`` of
the command, the parameter table and the estimators' docstrings; the texts
that cannot be generated (prose docstrings) are checked against the table.
"""

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
