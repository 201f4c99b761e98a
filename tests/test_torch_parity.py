"""Layer outputs and gradients, losses and optimizer steps agree with PyTorch (skipped without torch)."""

import numpy as np
import pytest

from minicnn.backend import get_backend
from minicnn.layers import (Activation, AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, GlobalAvgPool2D,
                            MaxPool2D)
from minicnn.losses import mean_squared_error, softmax_cross_entropy
from minicnn.optim import SGD, Adam

from helpers import build_layer

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOL = dict(rtol=1e-9, atol=1e-10)   # float64 on both sides


def nchw(a):
    return torch.tensor(np.ascontiguousarray(a.transpose(0, 3, 1, 2)), requires_grad=True)


def nhwc(t):
    return t.detach().numpy().transpose(0, 2, 3, 1)


def run_layer(layer, x, dy, training=True, backend="numpy"):
    build_layer(layer, x.shape[1:], backend)
    y = layer.forward(x, training).copy()
    dx = layer.backward(dy).copy()
    return y, dx


@pytest.mark.parametrize("kwargs, torch_pad", [
    (dict(kernel_size=3), (0, 0, 0, 0)),
    (dict(kernel_size=3, padding="same"), (1, 1, 1, 1)),
    (dict(kernel_size=2, padding="same"), (0, 1, 0, 1)),            # TF "same": odd pixel after
    (dict(kernel_size=3, strides=2, padding=1), (1, 1, 1, 1)),
    (dict(kernel_size=(3, 2), dilation=2, padding=2, use_bias=False), (2, 2, 2, 2)),
])
@pytest.mark.parametrize("activation", ["identity", "relu", "tanh"])
def test_conv2d_matches_torch(kwargs, torch_pad, activation):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 9, 8, 3))
    layer = Conv2D(4, activation=activation, **kwargs)
    layer.build(x.shape[1:], dtype=np.float64, rng=rng, backend=get_backend("numpy"))
    if "b" in layer.params:
        layer.params["b"][...] = rng.standard_normal(4)
    y = layer.forward(x, True).copy()
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy).copy()

    xt = nchw(x)
    wt = torch.tensor(layer.params["w"].transpose(3, 2, 0, 1).copy(), requires_grad=True)
    bt = torch.tensor(layer.params["b"], requires_grad=True) if "b" in layer.params else None
    left, right, top, bottom = torch_pad[2], torch_pad[3], torch_pad[0], torch_pad[1]
    z = F.conv2d(F.pad(xt, (left, right, top, bottom)), wt, bt, stride=layer.strides, dilation=layer.dilation)
    yt = {"identity": z, "relu": F.relu(z), "tanh": torch.tanh(z)}[activation]
    yt.backward(torch.tensor(dy.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_allclose(y, nhwc(yt), **TOL)
    np.testing.assert_allclose(dx, nhwc(xt.grad), **TOL)
    np.testing.assert_allclose(layer.grads["w"], wt.grad.numpy().transpose(2, 3, 1, 0), **TOL)
    if bt is not None:
        np.testing.assert_allclose(layer.grads["b"], bt.grad.numpy(), **TOL)


@pytest.mark.parametrize("cls, torch_fn", [
    (MaxPool2D, lambda t, k, s, p: F.max_pool2d(t, k, s, p)),
    (AvgPool2D, lambda t, k, s, p: F.avg_pool2d(t, k, s, p, count_include_pad=False)),
])
@pytest.mark.parametrize("k, s, p", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0)])
def test_pooling_matches_torch(cls, torch_fn, k, s, p):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 7, 6, 3))
    layer = cls(k, strides=s, padding=p)
    layer.build(x.shape[1:], dtype=np.float64, rng=None, backend=get_backend("numpy"))
    y = layer.forward(x, True).copy()
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy).copy()
    xt = nchw(x)
    yt = torch_fn(xt, k, s, p)
    yt.backward(torch.tensor(dy.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_allclose(y, nhwc(yt), **TOL)
    np.testing.assert_allclose(dx, nhwc(xt.grad), **TOL)


def test_global_avg_pool_matches_torch():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 5, 4, 6))
    dy = rng.standard_normal((3, 6))
    y, dx = run_layer(GlobalAvgPool2D(), x, dy)
    xt = nchw(x)
    yt = xt.mean(dim=(2, 3))
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), **TOL)
    np.testing.assert_allclose(dx, nhwc(xt.grad), **TOL)


@pytest.mark.parametrize("activation", ["identity", "relu", "leaky_relu", "tanh", "sigmoid"])
def test_dense_and_activations_match_torch(activation):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 6))
    layer = Dense(5, activation=activation, alpha=0.1)
    layer.build((6,), dtype=np.float64, rng=rng, backend=get_backend("numpy"))
    layer.params["b"][...] = rng.standard_normal(5)
    y = layer.forward(x, True).copy()
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy).copy()
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(layer.params["w"].T.copy(), requires_grad=True)
    bt = torch.tensor(layer.params["b"], requires_grad=True)
    z = F.linear(xt, wt, bt)
    act = {"identity": lambda t: t, "relu": F.relu, "leaky_relu": lambda t: F.leaky_relu(t, 0.1),
           "tanh": torch.tanh, "sigmoid": torch.sigmoid}[activation]
    yt = act(z)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), **TOL)
    np.testing.assert_allclose(dx, xt.grad.numpy(), **TOL)
    np.testing.assert_allclose(layer.grads["w"], wt.grad.numpy().T, **TOL)
    np.testing.assert_allclose(layer.grads["b"], bt.grad.numpy(), **TOL)

    standalone = Activation(activation, alpha=0.1)
    ys, dxs = run_layer(standalone, z.detach().numpy().copy(), dy)
    np.testing.assert_allclose(ys, y, **TOL)


@pytest.mark.parametrize("shape", [(6, 5, 4, 3), (8, 5)])
def test_batchnorm_matches_torch(shape):
    rng = np.random.default_rng(9)
    x = rng.normal(2.0, 3.0, shape)
    dy = rng.standard_normal(shape)
    layer = BatchNorm(momentum=0.1, eps=1e-5)
    layer.build(shape[1:], dtype=np.float64, rng=None, backend=get_backend("numpy"))
    layer.params["gamma"][...] = rng.uniform(0.5, 1.5, shape[-1])
    layer.params["beta"][...] = rng.standard_normal(shape[-1])
    y = layer.forward(x, True).copy()
    dx = layer.backward(dy).copy()

    four_d = len(shape) == 4
    bn = (torch.nn.BatchNorm2d if four_d else torch.nn.BatchNorm1d)(shape[-1], momentum=0.1, eps=1e-5).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(layer.params["gamma"]))
        bn.bias.copy_(torch.tensor(layer.params["beta"]))
    xt = nchw(x) if four_d else torch.tensor(x, requires_grad=True)
    yt = bn(xt)
    yt.backward(torch.tensor(dy.transpose(0, 3, 1, 2).copy()) if four_d else torch.tensor(dy))
    to_np = nhwc if four_d else (lambda t: t.detach().numpy())
    np.testing.assert_allclose(y, to_np(yt), **TOL)
    np.testing.assert_allclose(dx, to_np(xt.grad), rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(layer.grads["gamma"], bn.weight.grad.numpy(), rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(layer.grads["beta"], bn.bias.grad.numpy(), rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(layer.running_mean, bn.running_mean.numpy(), **TOL)
    np.testing.assert_allclose(layer.running_var, bn.running_var.numpy(), **TOL)

    bn.eval()
    y_eval = layer.forward(x, False)
    np.testing.assert_allclose(y_eval, to_np(bn(xt)), **TOL)


def test_dropout_inference_matches_torch_eval():
    x = np.random.default_rng(10).standard_normal((4, 10))
    layer = Dropout(0.3)
    layer.build((10,), dtype=np.float64, rng=None, backend=get_backend("numpy"))
    drop = torch.nn.Dropout(0.3).eval()
    np.testing.assert_array_equal(layer.forward(x, False), drop(torch.tensor(x)).numpy())


def test_losses_match_torch():
    rng = np.random.default_rng(11)
    logits = rng.standard_normal((5, 4)) * 10
    labels = rng.integers(0, 4, 5)
    loss, grad = softmax_cross_entropy(logits, labels)
    lt = torch.tensor(logits, requires_grad=True)
    ref = F.cross_entropy(lt, torch.tensor(labels))
    ref.backward()
    np.testing.assert_allclose(loss, ref.item(), **TOL)
    np.testing.assert_allclose(grad, lt.grad.numpy(), **TOL)

    outputs, targets = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    loss, grad = mean_squared_error(outputs, targets)
    ot = torch.tensor(outputs, requires_grad=True)
    ref = F.mse_loss(ot, torch.tensor(targets))
    ref.backward()
    np.testing.assert_allclose(loss, ref.item(), **TOL)
    np.testing.assert_allclose(grad, ot.grad.numpy(), **TOL)


@pytest.mark.parametrize("ours, theirs", [
    (lambda: SGD(0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    (lambda: SGD(0.1, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
    (lambda: SGD(0.1, momentum=0.9, nesterov=True),
     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True)),
    (lambda: Adam(0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
    (lambda: Adam(0.01, weight_decay=0.1), lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1)),
])
def test_optimizers_match_torch(ours, theirs):
    rng = np.random.default_rng(12)
    param = rng.standard_normal(6)
    pt = torch.tensor(param.copy(), requires_grad=True)
    opt, topt = ours(), theirs([pt])
    for _ in range(5):
        grad = rng.standard_normal(6)
        opt.step([(param, grad)])
        pt.grad = torch.tensor(grad)
        topt.step()
    np.testing.assert_allclose(param, pt.detach().numpy(), rtol=1e-12, atol=1e-12)


def test_sgd_decoupled_weight_decay_shrinks_before_update():
    param, grad = np.array([2.0]), np.array([1.0])
    SGD(0.1, weight_decay=0.5).step([(param, grad)])
    np.testing.assert_allclose(param, [2.0 * (1 - 0.05) - 0.1])
