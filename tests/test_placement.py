"""Dropout placement rules (pure functions), the variance-shift lint, and the layer lists they build."""

import doctest

import pytest

import numpy as np

from minicnn import _progress, architecture, inputs, placement
from minicnn.architecture import LAYER_KINDS, build_layers, build_network, parse_layers, weight_count
from minicnn.layers import Conv2D, Dense
from minicnn.placement import DropoutSpec, lint_placement, resolve_dropout

LAYERS = ("conv8", "conv16x5", "maxpool", "conv32", "avgpool", "dense64", "dense32")


def positions(layers, dropout, rate=0.5, kind="auto"):
    return [s.after for s in resolve_dropout(parse_layers(layers), dropout, rate, kind)]


# ---------------------------------------------------------------- tokens
def test_parse_tokens():
    tokens = parse_layers(LAYERS)
    assert [(t.kind, t.units, t.kernel_size) for t in tokens] == [
        ("conv", 8, None), ("conv", 16, 5), ("maxpool", None, None), ("conv", 32, None),
        ("avgpool", None, None), ("dense", 64, None), ("dense", 32, None)]
    assert [t.output for t in parse_layers(("conv4", "gap", "dense8"))] == ["map", "vector", "vector"]


@pytest.mark.parametrize("bad", ["conv", "conv0", "dense", "Dense8", "maxpool2", "conv8x", "conv8x0", "pool", 8])
def test_invalid_token_names_index_and_value(bad):
    with pytest.raises(ValueError, match=r"layers\[1\]=") as info:
        parse_layers(("conv4", bad))
    assert repr(bad) in str(info.value) and "dense<N>" in str(info.value)


@pytest.mark.parametrize("layers", [("dense8", "conv4"), ("conv4", "gap", "maxpool")])
def test_maps_after_vectors_rejected(layers):
    with pytest.raises(ValueError, match="outputs flat vectors"):
        parse_layers(layers)


def test_layers_must_be_a_sequence_of_tokens():
    with pytest.raises(ValueError, match="Received: layers='conv8'"):
        parse_layers("conv8")


# ---------------------------------------------------------------- policies
@pytest.mark.parametrize("dropout, expected", [
    ("none", []),
    ("after_last_pool", [4]),
    ("after_each_layer", [0, 1, 3, 5, 6]),
    ("dense", [5, 6]),
    ("last:1", [6]),
    ("last:3", [4, 5, 6]),
    ("last:7", [0, 1, 2, 3, 4, 5, 6]),
    ((0, 2, 6), [0, 2, 6]),
    ([3], [3]),
    ((), []),
])
def test_policy_positions(dropout, expected):
    assert positions(LAYERS, dropout) == expected


def test_after_last_pool_counts_global_average_pooling():
    assert positions(("conv4", "maxpool", "conv8", "gap", "dense8"), "after_last_pool") == [3]


@pytest.mark.parametrize("layers, dropout, match", [
    (("conv4", "dense8"), "after_last_pool", "needs a pooling layer"),
    (("conv4", "maxpool"), "dense", "needs at least one dense layer"),
    (LAYERS, "last:0", r"1 <= K <= len\(layers\)=7. Received: dropout='last:0'"),
    (LAYERS, "last:8", "Received: dropout='last:8'"),
    (LAYERS, "last:x", "Received: dropout='last:x'"),
    (LAYERS, "after_pool", "Received: dropout='after_pool'"),
    (LAYERS, (7,), r"ints in \[0, 7\).*Received: dropout=\(7,\)"),
    (LAYERS, (-1,), r"Received: dropout=\(-1,\)"),
    (LAYERS, (True,), r"Received: dropout=\(True,\)"),
    (LAYERS, (2, 1), "strictly increasing"),
    (LAYERS, (2, 2), "strictly increasing"),
    (LAYERS, 3, "Received: dropout=3"),
])
def test_placement_errors_name_parameter_and_value(layers, dropout, match):
    with pytest.raises(ValueError, match=match):
        positions(layers, dropout)


def test_policy_error_lists_valid_choices():
    with pytest.raises(ValueError) as info:
        positions(LAYERS, "everywhere")
    for choice in placement.POLICIES:
        assert choice in str(info.value)


# ---------------------------------------------------------------- rates and kinds
def test_rates_broadcast_and_per_dropout():
    tokens = parse_layers(LAYERS)
    assert [s.rate for s in resolve_dropout(tokens, "dense", 0.3)] == [0.3, 0.3]
    assert [s.rate for s in resolve_dropout(tokens, "dense", (0.1, 0.4))] == [0.1, 0.4]
    assert [s.rate for s in resolve_dropout(tokens, "none", (), "auto")] == []


@pytest.mark.parametrize("rate, match", [
    (1.0, "Received: dropout_rate=1.0"),
    (-0.1, "Received: dropout_rate=-0.1"),
    ("0.5", "Received: dropout_rate='0.5'"),
    (True, "Received: dropout_rate=True"),
    ((0.1,), r"places 2, but 1 rates were given. Received: dropout_rate=\(0.1,\)"),
    ((0.1, 0.2, 0.3), "places 2, but 3 rates"),
    ((0.1, 1.5), r"Received: dropout_rate=\(0.1, 1.5\)"),
])
def test_invalid_rates(rate, match):
    with pytest.raises(ValueError, match=match):
        resolve_dropout(parse_layers(LAYERS), "dense", rate)


def test_auto_kind_is_spatial_on_maps_and_element_on_vectors():
    specs = resolve_dropout(parse_layers(("conv4", "maxpool", "gap", "dense8")), "last:4", 0.2, "auto")
    assert [s.kind for s in specs] == ["spatial", "spatial", "element", "element"]
    specs = resolve_dropout(parse_layers(("conv4", "maxpool", "dense8")), "last:3", 0.2, "element")
    assert [s.kind for s in specs] == ["element"] * 3


def test_spatial_kind_on_vectors_is_rejected():
    with pytest.raises(ValueError, match="dropout_kind='spatial'.*layers\\[2\\]='dense8'"):
        resolve_dropout(parse_layers(("conv4", "maxpool", "dense8")), "dense", 0.2, "spatial")
    with pytest.raises(ValueError, match="Received: dropout_kind='channel'"):
        resolve_dropout(parse_layers(("conv4", "maxpool")), "none", 0.2, "channel")


# ---------------------------------------------------------------- lint
def test_lint_silent_without_batch_norm_or_after_last_normalization():
    tokens = parse_layers(("conv4", "maxpool", "conv8", "maxpool", "dense16"))
    assert lint_placement(tokens, resolve_dropout(tokens, "after_each_layer"), batch_norm=False) == []
    assert lint_placement(tokens, resolve_dropout(tokens, "dense"), batch_norm=True) == []
    assert lint_placement(tokens, resolve_dropout(tokens, "none"), batch_norm=True) == []


def test_lint_flags_dropout_feeding_batch_norm_directly_or_through_pooling():
    tokens = parse_layers(("conv4", "maxpool", "conv8", "maxpool", "dense16"))
    specs = resolve_dropout(tokens, (0, 1, 3, 4), 0.2)
    messages = lint_placement(tokens, specs, batch_norm=True)
    assert len(messages) == 3   # after layers 0, 1 and 3; not after the last dense
    assert "layers[0]='conv4' feeds the BatchNorm of layers[2]='conv8'" in messages[0]
    assert "layers[1]='maxpool' feeds the BatchNorm of layers[2]='conv8'" in messages[1]
    assert "layers[3]='maxpool' feeds the BatchNorm of layers[4]='dense16'" in messages[2]
    assert all("variance shift" in m and "dropout=(4,)" in m for m in messages)


# ---------------------------------------------------------------- layer lists
def names(layers):
    return [type(layer).__name__ for layer in layers]


def test_build_layers_inserts_flatten_and_output_without_dropout():
    tokens = parse_layers(("conv4", "maxpool", "dense8"))
    layers, origin = build_layers(tokens, resolve_dropout(tokens, "last:3", 0.25, "auto"), n_outputs=3)
    assert names(layers) == ["Conv2D", "SpatialDropout2D", "MaxPool2D", "SpatialDropout2D", "Flatten", "Dense",
                             "Dropout", "Dense"]
    assert origin == [0, 0, 1, 1, None, 2, 2, None]
    assert layers[-1].units == 3 and layers[-1].activation == "identity"
    assert all(layer.rate == 0.25 for layer in layers if layer.stochastic)


def test_build_layers_batch_norm_puts_dropout_after_norm_and_activation():
    tokens = parse_layers(("conv4x5", "gap", "dense8"))
    layers, _ = build_layers(tokens, resolve_dropout(tokens, (0, 2), (0.1, 0.2), "auto"), n_outputs=2, batch_norm=True,
                             activation="tanh", dropout_scaling="test_time")
    assert names(layers) == ["Conv2D", "BatchNorm", "Activation", "SpatialDropout2D", "GlobalAvgPool2D", "Dense",
                             "BatchNorm", "Activation", "Dropout", "Dense"]
    conv, dense = layers[0], layers[5]
    assert conv.kernel_size == (5, 5) and conv.activation == "identity" and not conv.use_bias
    assert dense.activation == "identity" and layers[7].activation == "tanh"
    assert [layer.scaling for layer in layers if layer.stochastic] == ["test_time", "test_time"]


def test_build_layers_no_hidden_layers():
    layers, _ = build_layers(parse_layers(()), [], n_outputs=4)
    assert names(layers) == ["Flatten", "Dense"]


def test_dropout_spec_is_a_plain_record():
    assert DropoutSpec(1, 0.5, "element") == DropoutSpec(1, 0.5, "element")


@pytest.mark.parametrize("module", [placement, architecture, inputs, _progress])
def test_private_module_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


# ---------------------------------------------------------------- the architecture table
#: One token of every kind in the table (a new kind without an example here fails the next test).
EXAMPLES = {"conv": "conv3x2", "maxpool": "maxpool", "avgpool": "avgpool", "gap": "gap", "dense": "dense5",
            "res": "res4s2", "dw": "dw3", "sep": "sep4x3", "gmp": "gmp"}


def test_every_table_kind_has_an_example_and_parses_to_itself():
    assert set(EXAMPLES) == set(LAYER_KINDS)
    for kind, text in EXAMPLES.items():
        (token,) = parse_layers((text,))
        assert token.kind == kind and token.output == LAYER_KINDS[kind].output


@pytest.mark.parametrize("layers", [
    (), ("conv3", "maxpool", "dense5"), ("conv3x2", "avgpool", "conv4", "gap", "dense5", "dense2"),
    ("maxpool", "conv2x3", "maxpool", "dense4"), ("gap",), ("dense7", "dense3"), ("conv2", "conv3x1", "avgpool"),
    ("conv4s2", "res4", "res6s2", "gmp"), ("conv3d2", "res2", "dw2s2", "sep5x1", "dense3"),
    ("sep3s2", "res3", "dw2d2", "gap"),
])
@pytest.mark.parametrize("options", [
    {}, {"kernel_size": 2, "padding": "same", "pool_size": 3}, {"batch_norm": True, "pool_size": 2},
])
def test_weight_count_equals_the_weights_of_the_built_network(layers, options):
    """The shape rules of the table agree with the layers the builders make (every kind, both paddings)."""
    tokens = parse_layers(layers)
    for input_shape in [(9, 8, 2), (12, 12, 1)]:
        network, _ = build_network(tokens, [], n_outputs=3, input_shape=input_shape, rng=np.random.default_rng(0),
                                   backend="numpy", **options)
        built = sum(layer.params["w"].size for layer in network.walk() if "w" in layer.params)
        assert weight_count(tokens, input_shape, 3, **options) == built


@pytest.mark.parametrize("number", [0.5, 0, 1, 0.25, np.float32(0.3), np.int64(2)])
def test_a_number_for_dropout_suggests_dropout_rate(number):
    with pytest.raises(ValueError, match=r"did you mean dropout_rate=") as info:
        resolve_dropout(parse_layers(("conv4", "maxpool")), number)
    assert f"dropout={number!r}" in str(info.value)
    assert placement.number_hint(number) in str(info.value)


@pytest.mark.parametrize("face", ["CNNClassifier", "CNNRegressor"])
def test_estimators_suggest_dropout_rate_for_a_number_passed_as_dropout(face):
    import minicnn

    from sklearn.utils._param_validation import InvalidParameterError

    X, y = np.zeros((4, 6, 6, 1), dtype=np.float32), np.array([0, 1, 0, 1])
    for number in (0.5, 3, np.float64(0.2)):
        est = getattr(minicnn, face)(layers=("conv2", "maxpool"), dropout=number, max_iter=1)
        with pytest.raises(InvalidParameterError, match=r"'dropout' parameter.*did you mean dropout_rate=.*Got "):
            est.fit(X, y)
    with pytest.raises(InvalidParameterError) as info:   # other bad values keep scikit-learn's message alone
        getattr(minicnn, face)(dropout=None).fit(X, y)
    assert "dropout_rate" not in str(info.value)
