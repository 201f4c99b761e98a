"""The network is a tree: every place that visits layers reaches the layers inside blocks.

A nested network (a residual block with a projection, a separable block, a
chain inside a residual branch) is checked through each face that visits
layers: the gradients the optimizer reads (finite differences, every
backend), the optimizer step, backend binding, workspaces, work estimates,
pickling, ``summary()``, the model file, ``load_predictor`` and ONNX export.
A visitor that iterates the flat top-level list fails one of them.
"""

import os
import pickle
import re
import warnings

import numpy as np
import pytest

import minicnn
from minicnn.architecture import LAYER_KINDS, build_layers, build_network, parse_layers, weight_count
from minicnn.backend import get_backend
from minicnn.layers import BatchNorm, Chain, Conv2D, Dense, DepthwiseConv2D, GlobalMaxPool2D, Residual
from minicnn.network import Sequential
from minicnn.optim import Adam
from minicnn.placement import lint_placement, resolve_dropout

from gradcheck import ATOL, RTOL, numerical_grad
from helpers import importable_backends

BACKENDS = importable_backends(("numpy", "numba", "cython"))
#: Two-epoch fits only check that every face of a fitted model agrees with the others.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def nested_network(backend, dtype=np.float64, batch_norm=False):
    """conv -> residual (projection, inner chain) -> residual (identity) -> separable chain -> gmp -> dense."""
    def norm(layers):
        return [*layers, BatchNorm()] if batch_norm else layers

    main = Chain([*norm([Conv2D(4, 3, strides=2, padding="same", activation="tanh")]),
                  Conv2D(4, 3, padding="same")])
    projection = Chain(norm([Conv2D(4, 1, strides=2, padding="same")]))
    identity = Residual(Chain([Conv2D(4, 3, padding="same", activation="relu"), Conv2D(4, 3, padding="same")]),
                        activation="tanh")
    separable = Chain([DepthwiseConv2D(3, padding="same", activation="tanh"), Conv2D(3, 1, activation="tanh")])
    net = Sequential([Conv2D(3, 3, padding="same", activation="tanh"), Residual(main, projection, activation="tanh"),
                      identity, separable, GlobalMaxPool2D(), Dense(2)], backend=backend, dtype=dtype)
    net.build((6, 6, 2), rng=np.random.default_rng(0))
    return net


X = np.random.default_rng(1).standard_normal((3, 6, 6, 2))


@pytest.mark.parametrize("backend", BACKENDS)
def test_nested_gradients_at_the_optimizer_match_finite_differences(backend):
    """The gradients the optimizer reads (one flat buffer) equal finite differences, inner layers included."""
    net = nested_network(backend)
    r = np.random.default_rng(2).standard_normal((3, 2))

    def loss():
        return float(np.sum(net.forward(X, training=True) * r))

    net.forward(X, training=True)
    net.backward(r.copy())
    (flat_p, flat_g), = net.flat_params_and_grads()
    pairs = net.params_and_grads()
    assert sum(p.size for p, _ in pairs) == flat_p.size == net.n_params
    analytic = flat_g.copy()
    offset = 0
    inner = 0
    for layer in net.walk():
        for key in sorted(layer.params):
            size = layer.params[key].size
            want = numerical_grad(loss, layer.params[key])
            got = analytic[offset:offset + size].reshape(want.shape)
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=f"{layer!r} d{key}")
            inner += layer not in net.layers
            offset += size
    assert offset == flat_p.size and inner >= 8


@pytest.mark.parametrize("batch_norm", [False, True])
def test_an_optimizer_step_updates_every_inner_weight(batch_norm):
    """The measured bug: a block's inner weights got gradient 0.0 at the optimizer and never trained."""
    net = nested_network("numpy", np.float32, batch_norm)
    before = {id(p): p.copy() for p, _ in net.params_and_grads()}
    net.forward(X.astype(np.float32), training=True)
    net.backward(np.ones((3, 2), np.float32))
    Adam(1e-2).step(net.flat_params_and_grads(), kernels=net.kernels)
    for layer in net.walk():
        for key, param in layer.params.items():
            if key == "b" and isinstance(layer, Conv2D) and batch_norm:
                continue
            assert not np.array_equal(param, before[id(param)]), f"{layer!r}.{key} did not move"


def test_backend_binding_buffers_work_and_pickling_reach_inner_layers():
    net = nested_network("numpy", np.float32)
    leaves = [layer for layer in net.walk() if not layer.sublayers()]
    assert len(leaves) > len(net.layers)
    other = importable_backends(("numba", "cython"))
    if other:
        net.set_backend(other[0])
        assert all(layer.kernels is get_backend(other[0]) for layer in net.walk() if layer is not net)
    net.forward(X.astype(np.float32))
    assert all(layer._buffers for layer in leaves if isinstance(layer, Conv2D))
    net.release_buffers()
    assert not any(layer._buffers for layer in net.walk())
    # work estimate: the block's inner convolutions count (more than the network without them)
    flat = Sequential([Conv2D(3, 3, padding="same", activation="tanh"), GlobalMaxPool2D(), Dense(2)], backend="numpy")
    flat.build((6, 6, 2), rng=np.random.default_rng(0))
    inner_conv_work = sum(np.prod(layer.output_shape) * layer.params["w"][..., 0].size
                          for layer in net.walk() if isinstance(layer, Conv2D) and layer not in net.layers)
    assert net.forward_work_per_sample() >= flat.forward_work_per_sample() + inner_conv_work
    back = pickle.loads(pickle.dumps(net))
    for (p, _), (q, _) in zip(net.params_and_grads(), back.params_and_grads()):
        np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(back.forward(X.astype(np.float32)), net.forward(X.astype(np.float32)))


def test_summary_shows_inner_layers_and_counts_their_weights():
    net = nested_network("numpy")
    text = net.summary()
    rows = net.descendants()
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if line and set(line) == {"-"}]
    table = lines[rules[1] + 1:rules[2]]   # between the header's rule and the totals' rule
    assert len(table) == len(rows)
    for line, layer in zip(table, rows):
        assert f"{type(layer).__name__}({layer.describe()})" in line and line.rstrip().endswith(f"{layer.n_params:,}")
    assert len(re.findall(r"\bConv2D\(", text)) == sum(type(layer) is Conv2D for layer in rows)
    assert "DepthwiseConv2D(" in text and "Residual(projection shortcut" in text
    block = net.layers[1]
    assert block.n_params == sum(p.size for layer in block.walk() for p in layer.params.values()) > 0
    assert f"Total params: {net.n_params:,}" in text
    assert net.n_params == sum(p.size for p, _ in net.params_and_grads())


def test_a_residual_block_that_changes_the_shape_needs_a_projection():
    block = Residual(Chain([Conv2D(4, 3, padding="same")]))
    with pytest.raises(ValueError, match="needs a projection shortcut"):
        block.build((5, 5, 2), dtype=np.float32, rng=np.random.default_rng(0), backend=get_backend("numpy"))
    kept = Residual(Chain([Conv2D(2, 3, padding="same")]), Conv2D(2, 1))
    kept.build((5, 5, 2), dtype=np.float32, rng=np.random.default_rng(0), backend=get_backend("numpy"))
    assert kept.shortcut is None and len(list(kept.walk())) == 3   # identity: the unneeded projection is dropped
    with pytest.raises(TypeError, match="Layer instances"):
        Chain([Conv2D(2, 3), "dense"])


def test_first_layer_of_a_block_skips_the_input_gradient_only_at_the_network_input():
    net = Sequential([Residual(Chain([Conv2D(2, 3, padding="same"), Conv2D(2, 3, padding="same")])), Dense(1)],
                     backend="numpy")
    net.layers.insert(1, minicnn.layers.Flatten())
    net.build((4, 4, 2), rng=np.random.default_rng(0))
    block = net.layers[0]
    assert not block.needs_input_grad and not block.main.layers[0].needs_input_grad
    assert block.main.layers[1].needs_input_grad
    net.forward(np.ones((2, 4, 4, 2)), training=True)
    assert net.backward(np.ones((2, 1))) is None


# ---------------------------------------------------------------- tokens, every face
TOKEN_NETS = [("conv4s2", "res4", "res6s2", "gmp"), ("res3", "dw3s2", "sep5x2", "conv3d2", "maxpool", "dense3"),
              ("sep4s2", "res4", "dw2d2", "gap")]


def test_every_kind_appears_in_the_face_sweep():
    kinds = {token.kind for layers in TOKEN_NETS for token in parse_layers(layers)}
    assert kinds >= set(LAYER_KINDS) - {"avgpool"}


@pytest.mark.parametrize("layers", TOKEN_NETS)
@pytest.mark.parametrize("batch_norm", [False, True])
def test_block_tokens_fit_save_load_predict_and_export(layers, batch_norm, tmp_path):
    """Model file round trip (exact), Predictor, summary counts and ONNX Runtime, for every block token."""
    rng = np.random.default_rng(0)
    X = rng.random((24, 8 * 8 * 3), dtype=np.float32)
    y = np.arange(24) % 3
    clf = minicnn.CNNClassifier(layers=layers, input_shape=(8, 8, 3), batch_norm=batch_norm, max_iter=2,
                                batch_size=8, backend="numpy", random_state=0, dropout="after_each_layer",
                                dropout_rate=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # the variance-shift lint with batch_norm (tested below)
        clf.fit(X, y)
    net = clf.network_
    assert weight_count(parse_layers(layers), (8, 8, 3), 3, padding=clf.padding) == sum(
        layer.params["w"].size for layer in net.walk() if "w" in layer.params)
    assert f"Total params: {net.n_params:,}" in clf.summary()
    path = os.fspath(tmp_path / "model.npz")
    clf.save(path)
    back = minicnn.load(path)
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    for (p, _), (q, _) in zip(net.params_and_grads(), back.network_.params_and_grads()):
        np.testing.assert_array_equal(p, q)
    steps = [(layer.seed, layer.layer_id, layer.step) for layer in net.walk() if layer.stochastic]
    assert steps and steps == [(layer.seed, layer.layer_id, layer.step) for layer in back.network_.walk()
                               if layer.stochastic]
    np.testing.assert_allclose(minicnn.load_predictor(path).predict_proba(X), clf.predict_proba(X), rtol=1e-6)
    ort = pytest.importorskip("onnxruntime")
    from minicnn.onnx import to_onnx_model

    model = to_onnx_model(clf, input_ndim=2)
    ops = {node.op_type for node in model.graph.node}
    assert ("Add" in ops) == any(t.kind == "res" for t in parse_layers(layers))
    if any(t.kind in ("dw", "sep") for t in parse_layers(layers)):
        assert any(a.name == "group" and a.i > 1 for node in model.graph.node for a in node.attribute)
    session = ort.InferenceSession(model.SerializeToString())
    label, proba = session.run(None, {session.get_inputs()[0].name: X})
    np.testing.assert_allclose(proba, clf.predict_proba(X), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(label, clf.predict(X))


# ---------------------------------------------------------------- placement inside blocks
@pytest.mark.parametrize("dropout", ["after_each_layer", "last:3", (0, 1)])
def test_dropout_at_a_residual_block_goes_between_its_convolutions_never_on_the_skip_path(dropout):
    tokens = parse_layers(("res4s2", "sep4", "gap"))
    specs = [spec for spec in resolve_dropout(tokens, dropout, 0.3, "auto") if spec.after < 2]   # spatial on maps
    assert [spec.after for spec in specs] == [0, 1]
    for batch_norm in (False, True):
        net, origin = build_network(tokens, specs, n_outputs=2, input_shape=(6, 6, 3), rng=np.random.default_rng(0),
                                    backend="numpy", batch_norm=batch_norm)
        block = net.layers[0]
        main = [type(layer).__name__ for layer in block.main.layers]
        conv_positions = [i for i, name in enumerate(main) if name == "Conv2D"]
        (drop,) = [i for i, name in enumerate(main) if name == "SpatialDropout2D"]
        assert conv_positions[0] < drop < conv_positions[1]
        assert not any(layer.stochastic for layer in block.shortcut.walk())
        assert type(net.layers[2]).__name__ == "SpatialDropout2D"   # after the separable block, outside it
        assert origin[:3] == [0, 1, 1]


def test_after_last_pool_with_a_global_pooling_head_drops_the_pooled_vector():
    tokens = parse_layers(("res4", "res8s2", "gmp"))
    (spec,) = resolve_dropout(tokens, "after_last_pool", 0.5)
    assert (spec.after, spec.kind) == (2, "element")


def test_lint_warns_about_dropout_before_the_batchnorm_inside_a_block():
    tokens = parse_layers(("res4", "res4", "gap", "dense8"))
    inside = resolve_dropout(tokens, (1,), 0.3)
    messages = lint_placement(tokens, inside, batch_norm=True)
    assert len(messages) == 1 and "inside the block layers[1]='res4'" in messages[0]
    assert "variance shift" in messages[0]
    assert lint_placement(tokens, inside, batch_norm=False) == []
    assert lint_placement(tokens, resolve_dropout(tokens, "dense", 0.3), batch_norm=True) == []


# ---------------------------------------------------------------- depthwise against torch
@pytest.mark.parametrize("strides, padding, dilation", [(1, 1, 1), (2, (1, 0), 1), (1, 2, 2), (2, 0, 1)])
def test_depthwise_matches_torch_grouped_conv(strides, padding, dilation):
    torch = pytest.importorskip("torch")
    layer = DepthwiseConv2D(3, strides=strides, padding=padding, dilation=dilation, activation="tanh")
    layer.build((7, 6, 4), dtype=np.float64, rng=np.random.default_rng(0), backend=get_backend("numpy"))
    layer.params["b"][...] = np.random.default_rng(3).standard_normal(4)
    x = np.random.default_rng(4).standard_normal((2, 7, 6, 4))
    r = np.random.default_rng(5).standard_normal((2, *layer.output_shape))
    y = layer.forward(x, training=True).copy()
    dx = layer.backward(r.copy()).copy()
    tx = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    tw = torch.tensor(layer.params["w"].transpose(2, 0, 1)[:, None].copy(), requires_grad=True)
    tb = torch.tensor(layer.params["b"].copy(), requires_grad=True)
    pad = (padding, padding) if isinstance(padding, int) else padding
    ty = torch.tanh(torch.nn.functional.conv2d(tx, tw, tb, stride=strides, padding=pad, dilation=dilation, groups=4))
    (ty * torch.tensor(r.transpose(0, 3, 1, 2))).sum().backward()
    np.testing.assert_allclose(y, ty.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["w"], tw.grad.numpy()[:, 0].transpose(1, 2, 0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["b"], tb.grad.numpy(), rtol=1e-10, atol=1e-12)



def test_residual_block_with_projection_matches_torch():
    """A res<N>s2 block (conv-BN-relu-conv-BN + 1x1 conv-BN projection, relu after the add) against torch."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    layers, _ = build_layers(parse_layers(("res4s2",)), [], n_outputs=1, batch_norm=True)
    block = layers[0]
    rng = np.random.default_rng(0)
    block.build((6, 6, 3), dtype=np.float64, rng=rng, backend=get_backend("numpy"))
    conv1, bn1, _, conv2, bn2 = block.main.layers
    proj, bn3 = block.shortcut.layers
    for bn in (bn1, bn2, bn3):
        bn.params["gamma"][...] = rng.uniform(0.5, 2, bn.params["gamma"].shape)
        bn.params["beta"][...] = rng.normal(0, 0.5, bn.params["beta"].shape)
    x = rng.standard_normal((4, 6, 6, 3))
    r = rng.standard_normal((4, 3, 3, 4))
    y = block.forward(x, training=True).copy()
    dx = block.backward(r.copy()).copy()

    def t(a):
        return torch.tensor(np.ascontiguousarray(a), requires_grad=True)

    tx = t(x.transpose(0, 3, 1, 2))
    w = {id(c): t(c.params["w"].transpose(3, 2, 0, 1)) for c in (conv1, conv2, proj)}
    g = {id(b): (t(b.params["gamma"]), t(b.params["beta"])) for b in (bn1, bn2, bn3)}

    def bn(z, layer):
        return F.batch_norm(z, None, None, *g[id(layer)], training=True, eps=layer.eps)

    # TF "same" for 3x3 stride 2 on 6 pixels pads 0 before and 1 after
    a = F.relu(bn(F.conv2d(F.pad(tx, (0, 1, 0, 1)), w[id(conv1)], stride=2), bn1))
    a = bn(F.conv2d(a, w[id(conv2)], padding=1), bn2)
    s = bn(F.conv2d(tx, w[id(proj)], stride=2), bn3)
    ty = F.relu(a + s)
    (ty * torch.tensor(r.transpose(0, 3, 1, 2))).sum().backward()
    tol = dict(rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(y, ty.detach().numpy().transpose(0, 2, 3, 1), **tol)
    np.testing.assert_allclose(dx, tx.grad.numpy().transpose(0, 2, 3, 1), **tol)
    for conv in (conv1, conv2, proj):
        np.testing.assert_allclose(conv.grads["w"], w[id(conv)].grad.numpy().transpose(2, 3, 1, 0), **tol)
    for layer in (bn1, bn2, bn3):
        np.testing.assert_allclose(layer.grads["gamma"], g[id(layer)][0].grad.numpy(), **tol)


def test_global_max_pool_matches_torch():
    torch = pytest.importorskip("torch")
    layer = GlobalMaxPool2D()
    layer.build((5, 4, 3), dtype=np.float64, rng=None, backend=get_backend("numpy"))
    x = np.random.default_rng(0).standard_normal((2, 5, 4, 3))
    r = np.random.default_rng(1).standard_normal((2, 3))
    y = layer.forward(x, training=True).copy()
    dx = layer.backward(r).copy()
    tx = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    ty = torch.amax(tx, dim=(2, 3))
    (ty * torch.tensor(r)).sum().backward()
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(dx, tx.grad.numpy().transpose(0, 2, 3, 1))


def test_a_pipeline_with_blocks_converts_through_skl2onnx():
    skl2onnx = pytest.importorskip("skl2onnx")
    ort = pytest.importorskip("onnxruntime")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from minicnn.onnx import register_skl2onnx

    register_skl2onnx()
    rng = np.random.default_rng(0)
    X, y = rng.random((30, 64)), np.arange(30) % 3
    pipe = make_pipeline(StandardScaler(), minicnn.CNNClassifier(
        layers=("conv4", "res4s2", "dw3", "sep6", "gmp"), input_shape=(8, 8), max_iter=2, batch_norm=True,
        dropout="none", backend="numpy", random_state=0)).fit(X, y)
    onx = skl2onnx.to_onnx(pipe, X[:1].astype(np.float32), options={id(pipe[-1]): {"zipmap": False}})
    assert {"Add", "GlobalMaxPool"} <= {node.op_type for node in onx.graph.node}
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    label, proba = session.run(None, {session.get_inputs()[0].name: X.astype(np.float32)})
    np.testing.assert_allclose(proba, pipe.predict_proba(X), rtol=1e-4, atol=1e-5)
    assert label.tolist() == pipe.predict(X).tolist()
