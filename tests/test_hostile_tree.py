"""Hostile layer tokens and shapes for the tree network, swept by kind over every row of ``LAYER_KINDS``.

* every numeric field of every token form refuses 0 and leading zeros, naming the token;
* a layer that needs maps after one that outputs vectors is refused when the tokens are parsed, naming both
  (never later as a geometry error with a padding hint);
* the shape rule (output shape and weight count, used to check model files before allocating) equals the
  network that builds, for every token on every small map, both paddings, with and without BatchNorm,
  including the maps where a strided block does not change the shape (1x1).
"""

import itertools
import re
import warnings

import numpy as np
import pytest

from minicnn import CNNClassifier, load, load_predictor
from minicnn.architecture import LAYER_KINDS, build_network, parse_layers, weight_count
from minicnn.placement import resolve_dropout

#: Token forms written with every optional field, per kind (a test below checks every kind is here).
FORMS = {
    "conv": ["conv3", "conv3x1", "conv3x2s2", "conv2s3d2", "conv3d2", "conv4s2"],
    "res": ["res3", "res2", "res3s2", "res2s3", "res4s2"],
    "dw": ["dw3", "dw1", "dw1s2", "dw2d2", "dw3s2", "dw2s3d2"],
    "sep": ["sep3", "sep2x1", "sep3s2", "sep2x2d2", "sep4x3s3"],
    "maxpool": ["maxpool"], "avgpool": ["avgpool"], "gap": ["gap"], "gmp": ["gmp"], "dense": ["dense3"],
}
SHAPES = [(1, 1, 3), (1, 2, 2), (2, 2, 3), (3, 5, 1), (5, 4, 2), (8, 8, 3)]


def test_every_kind_has_forms_here():
    assert set(FORMS) == set(LAYER_KINDS)
    for kind, forms in FORMS.items():
        assert all(token.kind == kind for token in parse_layers(forms))


def _numeric_fields(token):
    """``(start, end)`` of each number written in ``token``."""
    return [m.span() for m in re.finditer(r"[0-9]+", token)]


def _bad_numbers():
    bad = set()
    for forms in FORMS.values():
        for form in forms:
            for start, end in _numeric_fields(form):
                for replacement in ("0", "0" + form[start:end], "00"):
                    bad.add(form[:start] + replacement + form[end:])
    return sorted(bad)


@pytest.mark.parametrize("token", _bad_numbers())
def test_zero_and_leading_zeros_in_every_field_of_every_token_are_refused_naming_it(token):
    with pytest.raises(ValueError, match=re.escape(f"layers[1]={token!r}")):
        parse_layers(("conv2", token))
    with pytest.raises(ValueError, match=re.escape(f"layers[0]={token!r}")):
        CNNClassifier(layers=(token,), dropout="none").fit(np.zeros((4, 6, 6, 1), np.float32), [0, 1, 0, 1])


VECTOR_KINDS = [kind for kind, row in LAYER_KINDS.items() if row.output == "vector"]
MAP_CONSUMERS = [kind for kind, row in LAYER_KINDS.items() if row.input == "map"]


@pytest.mark.parametrize("vector, consumer", list(itertools.product(VECTOR_KINDS, MAP_CONSUMERS)))
def test_a_layer_that_needs_maps_after_a_vector_layer_is_refused_at_parse_naming_both(vector, consumer):
    first, second = FORMS[vector][0], FORMS[consumer][0]
    layers = ("conv2", first, second)
    message = re.escape(f"layers[2]={second!r} needs (height, width, channels) maps, but layers[1]={first!r} "
                        f"outputs flat vectors")
    with pytest.raises(ValueError, match=message):
        parse_layers(layers)
    with pytest.raises(ValueError, match=message):   # the estimator says the same, before building anything
        CNNClassifier(layers=layers, dropout="none").fit(np.zeros((4, 6, 6, 1), np.float32), [0, 1, 0, 1])


def _built(tokens, shape, padding, batch_norm):
    """The network ``tokens`` build for ``shape`` with the output layer of 2 units, or None if it does not fit."""
    try:
        network, _ = build_network(tokens, [], n_outputs=2, input_shape=shape, rng=np.random.default_rng(0),
                                   backend="numpy", padding=padding, batch_norm=batch_norm)
    except ValueError as exc:
        assert "does not fit" in str(exc)
        return None
    return network


@pytest.mark.parametrize("kind", sorted(FORMS))
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_the_shape_rule_is_the_built_network_for_every_token_on_every_small_map(kind, padding):
    """Weight count and output shape, single tokens and a token after a strided block, BatchNorm or not."""
    checked = 0
    for form, shape, batch_norm in itertools.product(FORMS[kind], SHAPES, (False, True)):
        for layers in ((form,), ("res3s2", form), (form, "gmp")):
            if LAYER_KINDS[kind].output == "vector" and layers == (form, "gmp"):
                continue
            tokens = parse_layers(layers)
            network = _built(tokens, shape, padding, batch_norm)
            if network is None:
                continue
            weights = sum(layer.params["w"].size for layer in network.walk() if "w" in layer.params)
            assert weight_count(tokens, shape, 2, padding=padding) == weights, (layers, shape, padding, batch_norm)
            out = shape
            for token in tokens:
                out, _ = LAYER_KINDS[token.kind].shape(token, out, {"kernel_size": 3, "padding": padding,
                                                                    "pool_size": 2})
            hidden = network.layers[-2].input_shape if type(network.layers[-2]).__name__ == "Flatten" else None
            if hidden is not None and len(hidden) == 3:
                assert tuple(out) == tuple(hidden), (layers, shape, padding)
            checked += 1
    assert checked


@pytest.mark.parametrize("layers, shape", [(("maxpool", "maxpool", "maxpool", "res2s2"), (8, 8, 2)),
                                           (("res3s2",), (1, 1, 3)), (("conv3s2", "res3s2", "res3s3"), (2, 2, 3))])
def test_a_strided_block_that_keeps_a_1x1_map_saves_and_loads_on_every_face(tmp_path, layers, shape):
    """An identity shortcut where the stride cannot shrink the map: the file's weights match the rule."""
    X = np.random.default_rng(0).random((12, *shape), dtype=np.float32)
    y = np.arange(12) % 3
    clf = CNNClassifier(layers=layers, padding="same", dropout="after_each_layer", dropout_rate=0.2, max_iter=1,
                        backend="numpy", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    tokens = parse_layers(layers)
    assert weight_count(tokens, shape, 3, padding="same") == sum(
        layer.params["w"].size for layer in clf.network_.walk() if "w" in layer.params)
    assert resolve_dropout(tokens, "after_each_layer", 0.2)
    clf.save(tmp_path / "m.npz")
    for model in (load(tmp_path / "m.npz"), load_predictor(tmp_path / "m.npz")):
        np.testing.assert_allclose(model.predict_proba(X), clf.predict_proba(X), rtol=1e-6)


def _huge_forms():
    """Every form with a number of units or a kernel size far beyond any memory (terabytes of weights)."""
    huge = set()
    for kind, forms in FORMS.items():
        for form in forms:
            token = parse_layers((form,))[0]
            if token.units is not None:
                huge.add(re.sub(r"^([a-z]+)[0-9]+", r"\g<1>99999999999", form))
            if token.kernel_size is not None:
                huge.add(re.sub(r"(x|^dw)([0-9]+)", r"\g<1>1000000", form, count=1))
    return sorted(huge)


@pytest.mark.parametrize("token", _huge_forms())
def test_a_token_too_large_for_memory_is_refused_naming_it(token):
    """A dense layer too large is a MemoryError; a conv-like one is refused before allocating
    (tests/test_window_limits.py): a ValueError naming the token and the layer's kernel_size."""
    assert "99999999999" in token or "1000000" in token
    fit = CNNClassifier(layers=(token,), padding="same", dropout="none").fit
    if parse_layers((token,))[0].kind == "dense":
        with pytest.raises(MemoryError, match=re.escape(f"does not fit in memory at layers[0]={token!r}")):
            fit(np.zeros((4, 6, 6, 1), np.float32), [0, 1, 0, 1])
        return
    with pytest.raises(ValueError, match=re.escape(f"does not fit images of shape (height, width, "
                                                   f"channels)=(6, 6, 1) at layers[0]={token!r}")) as info:
        fit(np.zeros((4, 6, 6, 1), np.float32), [0, 1, 0, 1])
    assert "kernel_size=" in str(info.value) and "padding='same', fewer pooling" not in str(info.value)


@pytest.mark.parametrize("backend", ["numba", "cython"])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_every_block_kind_is_bit_identical_across_thread_counts_and_round_trips_on_compiled_backends(
        tmp_path, backend, batch_norm):
    """numpy is swept in test_tree; here the compiled backends: 1 vs 2 threads, model file, pickle, Predictor."""
    import pickle

    from helpers import importable_backends

    if backend not in importable_backends((backend,)):
        pytest.skip(f"{backend} backend not importable")
    layers = ("conv3s2", "res4", "res5s2", "dw3", "sep4x2d2", "gmp", "dense4")
    assert {t.kind for t in parse_layers(layers)} >= set(LAYER_KINDS) - {"maxpool", "avgpool", "gap"}
    X = np.random.default_rng(0).random((16, 9, 9, 2), dtype=np.float32)
    y = np.arange(16) % 3
    fitted = []
    for n_threads in (1, 2):
        clf = CNNClassifier(layers=layers, batch_norm=batch_norm, dropout="after_each_layer", dropout_rate=0.2,
                            max_iter=2, batch_size=8, backend=backend, n_threads=n_threads, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted.append(clf.fit(X, y))
    for (p, _), (q, _) in zip(fitted[0].network_.params_and_grads(), fitted[1].network_.params_and_grads()):
        np.testing.assert_array_equal(p, q)
    clf = fitted[0]
    clf.save(tmp_path / "m.npz")
    expected = clf.predict_proba(X)
    np.testing.assert_array_equal(load(tmp_path / "m.npz").predict_proba(X), expected)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(X), expected)
    np.testing.assert_allclose(load_predictor(tmp_path / "m.npz").predict_proba(X), expected, rtol=1e-5)
