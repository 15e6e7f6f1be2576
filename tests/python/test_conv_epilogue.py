"""A convolution's epilogue (src/opt/epilogue.c): under no_grad, the
per-channel scale and shift of an eval() batch norm, a bias, a residual add
and a ReLU after a convolution run inside oneDNN's call as post-ops; the
profile shows one "(library conv, epilogue)" step where a convolution and an
element-wise kernel ran. Every case is checked against NumPy in float64 and
against the same graph with gradients enabled, which keeps the epilogue a
kernel of its own (a backward pass would otherwise compute the convolution
again); chains the library cannot run stay kernels and stay right."""
import numpy as np
import pytest

import kiln as jt
from kiln import nn

pytestmark = pytest.mark.skipif(not jt._C.has_library("dnnl"), reason="oneDNN (libdnnl.so.2) not installed")

EPILOGUE = "(library conv, epilogue)"


def conv_ref(x, w, stride=1, padding=0):
    """float64 cross-correlation, NCHW / OIHW."""
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, o, oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j].astype(np.float64))
    return out


def bn_ref(y, bn):
    mean, var = bn.running_mean.numpy().astype(np.float64), bn.running_var.numpy().astype(np.float64)
    scale = bn.weight.numpy() / np.sqrt(var + bn.eps)
    shift = bn.bias.numpy() - mean * scale
    return y * scale[None, :, None, None] + shift[None, :, None, None]


def randomised_bn(c, r):
    bn = nn.BatchNorm2d(c)
    bn.running_mean.update(jt.array(r.standard_normal(c).astype("float32")))
    bn.running_var.update(jt.array((r.random(c) + 0.5).astype("float32")))
    bn.weight.update(jt.array(r.standard_normal(c).astype("float32")))
    bn.bias.update(jt.array(r.standard_normal(c).astype("float32")))
    bn.eval()
    return bn


def profiled(fn):
    with jt.profile_scope(print_report=False) as rows:
        out = fn()
    names = [r[0] for r in rows[1:] for _ in range(int(r[2]))]
    return out, names


def no_grad_and_grad(fn):
    """fn under no_grad (profiled) and with gradients enabled."""
    def run():
        with jt.no_grad():
            return fn().numpy()
    fused, names = profiled(run)
    unfused, plain_names = profiled(lambda: fn().numpy())
    assert not any(EPILOGUE in n for n in plain_names), plain_names
    return fused, unfused, names


def test_conv_batch_norm_relu():
    r = np.random.default_rng(0)
    conv, bn = nn.Conv2d(8, 16, 3, padding=1, bias=False), randomised_bn(16, r)
    x_np = r.standard_normal((2, 8, 9, 7)).astype("float32")
    x = jt.array(x_np)
    fused, unfused, names = no_grad_and_grad(lambda: nn.relu(bn(conv(x))))
    assert sum(EPILOGUE in n for n in names) == 1, names
    assert not any("(library conv)" in n for n in names), names
    want = np.maximum(bn_ref(conv_ref(x_np, conv.weight.numpy(), padding=1), bn), 0)
    np.testing.assert_allclose(fused, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fused, unfused, rtol=1e-5, atol=1e-5)


def test_residual_block_with_a_downsample():
    """relu(bn2(conv2(x)) + bn_d(conv_d(x))): both convolutions carry their
    epilogues, the downsample's result is the other's residual."""
    r = np.random.default_rng(1)
    conv2, bn2 = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), randomised_bn(16, r)
    convd, bnd = nn.Conv2d(8, 16, 1, stride=2, bias=False), randomised_bn(16, r)
    x_np = r.standard_normal((2, 8, 10, 10)).astype("float32")
    x = jt.array(x_np)
    fused, unfused, names = no_grad_and_grad(lambda: nn.relu(bn2(conv2(x)) + bnd(convd(x))))
    assert sum(EPILOGUE in n for n in names) == 2, names
    main = bn_ref(conv_ref(x_np, conv2.weight.numpy(), stride=2, padding=1), bn2)
    down = bn_ref(conv_ref(x_np, convd.weight.numpy(), stride=2), bnd)
    want = np.maximum(main + down, 0)
    np.testing.assert_allclose(fused, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fused, unfused, rtol=1e-5, atol=1e-5)


def test_residual_of_a_stored_input():
    """relu(conv(x) + bias + x): the residual is the block's input, read by
    the convolution too."""
    r = np.random.default_rng(2)
    conv = nn.Conv2d(8, 8, 3, padding=1)
    x_np = r.standard_normal((1, 8, 6, 6)).astype("float32")
    x = jt.array(x_np)
    fused, unfused, names = no_grad_and_grad(lambda: nn.relu(conv(x) + x))
    assert sum(EPILOGUE in n for n in names) == 1, names
    want = conv_ref(x_np, conv.weight.numpy(), padding=1) + conv.bias.numpy()[None, :, None, None]
    np.testing.assert_allclose(fused, np.maximum(want + x_np, 0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fused, unfused, rtol=1e-5, atol=1e-5)


def test_bias_broadcast_explicitly():
    """A bias broadcast to the result's shape by an op of its own is still
    a per-channel operand, not a link of the chain."""
    r = np.random.default_rng(8)
    conv = nn.Conv2d(4, 16, 3, padding=1, bias=False)
    x_np = r.standard_normal((2, 4, 5, 5)).astype("float32")
    b_np = r.standard_normal(16).astype("float32")
    x, b = jt.array(x_np), jt.array(b_np)

    def f():
        y = conv(x)
        return nn.relu(y + b.reshape((1, 16, 1, 1)).broadcast(y.shape))
    fused, unfused, names = no_grad_and_grad(f)
    assert sum(EPILOGUE in n for n in names) == 1, names
    want = np.maximum(conv_ref(x_np, conv.weight.numpy(), padding=1) + b_np[None, :, None, None], 0)
    np.testing.assert_allclose(fused, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fused, unfused, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("tail", ["relu6", "subtract", "sigmoid", "two residuals"])
def test_chains_the_library_does_not_run_stay_kernels(tail):
    r = np.random.default_rng(3)
    conv = nn.Conv2d(4, 8, 3, padding=1, bias=False)
    x_np = r.standard_normal((2, 4, 5, 5)).astype("float32")
    other_np = r.standard_normal((2, 8, 5, 5)).astype("float32")
    x, other = jt.array(x_np), jt.array(other_np)
    y_ref = conv_ref(x_np, conv.weight.numpy(), padding=1)
    fns = {
        "relu6": (lambda y: nn.relu6(y), lambda y: np.clip(y, 0, 6)),
        "subtract": (lambda y: y - other, lambda y: y - other_np),
        "sigmoid": (lambda y: jt.sigmoid(y), lambda y: 1 / (1 + np.exp(-y))),
        "two residuals": (lambda y: (y + other) + other * 2, lambda y: y + 3 * other_np),
    }
    f, f_ref = fns[tail]
    fused, unfused, names = no_grad_and_grad(lambda: f(conv(x)))
    np.testing.assert_allclose(fused, f_ref(y_ref), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fused, unfused, rtol=1e-5, atol=1e-5)
    if tail in ("sigmoid", "subtract"):
        assert not any(EPILOGUE in n for n in names), names


def test_a_convolution_result_read_elsewhere_is_not_absorbed():
    r = np.random.default_rng(4)
    conv = nn.Conv2d(4, 8, 3, padding=1, bias=False)
    x = jt.array(r.standard_normal((1, 4, 5, 5)).astype("float32"))
    with jt.no_grad():
        y = conv(x)
        z = nn.relu(y)
        (zz, yy), names = profiled(lambda: (z.numpy(), y.numpy()))
    assert not any(EPILOGUE in n for n in names), names
    np.testing.assert_allclose(zz, np.maximum(yy, 0))


def test_gradients_through_a_frozen_batch_norm():
    """With gradients enabled the epilogue stays a kernel, and the float32
    gradients are those of the unfused graph (against finite differences of
    the float64 NumPy forward)."""
    r = np.random.default_rng(5)
    conv, bn = nn.Conv2d(3, 4, 3, padding=1, bias=False), randomised_bn(4, r)
    x_np = r.standard_normal((1, 3, 4, 4)).astype("float32")
    w = r.standard_normal((1, 4, 4, 4)).astype("float32")

    def loss_of(x_arr):
        return float((np.maximum(bn_ref(conv_ref(x_arr, conv.weight.numpy(), padding=1), bn), 0) * w).sum())

    x = jt.array(x_np)
    x.requires_grad = True
    y = nn.relu(bn(conv(x)))
    (gx,) = jt.grad((y * jt.array(w)).sum(), [x])
    num = np.zeros(x_np.shape)
    eps = 1e-6
    for i in np.ndindex(x_np.shape):
        d = np.zeros(x_np.shape)
        d[i] = eps
        num[i] = (loss_of(x_np + d) - loss_of(x_np - d)) / (2 * eps)
    np.testing.assert_allclose(gx.numpy(), num, rtol=1e-4, atol=1e-4)


def test_resnet18_inference_matches_with_gradients_enabled():
    from kiln.models import resnet18
    jt.set_global_seed(0)
    model = resnet18(num_classes=10)
    r = np.random.default_rng(6)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.update(jt.array(r.standard_normal(c).astype("float32") * 0.1))
            m.running_var.update(jt.array((r.random(c) + 0.5).astype("float32")))
    model.eval()
    x = jt.array(r.standard_normal((2, 3, 32, 32)).astype("float32"))
    with jt.no_grad():
        fused, names = profiled(lambda: model(x).numpy())
    # 20 convolutions: all but the last, whose epilogue the average pool
    # reads inline, and the stem's, which the max pool's windows may read
    # inline too (three cheap ops once batch norm's scale and shift are kept)
    assert sum(EPILOGUE in n for n in names) >= 18, names
    np.testing.assert_allclose(fused, model(x).numpy(), rtol=1e-5, atol=1e-5)
