"""Each layer's forward and gradients against PyTorch (same weights, float64),
plus finite differences for a few, and layer behaviour (eval mode, running
statistics, default initialisation)."""
import numpy as np
import pytest

import kiln as jt
from kiln import nn
from ktest import check_grad
from nnref import compare, torch

R = np.random.default_rng(0)


def rand(*shape, low=-1.0, high=1.0):
    return R.uniform(low, high, size=shape)


# ---- linear, embedding ----

def test_linear():
    t = torch()
    compare(nn.Linear(5, 3), t.nn.Linear(5, 3), rand(4, 5))
    compare(nn.Linear(5, 3, bias=False), t.nn.Linear(5, 3, bias=False), rand(2, 6, 5))


def test_linear_finite_differences():
    w, b = rand(3, 4), rand(3)
    check_grad(lambda x, w, b: nn.linear(x, w, b), rand(2, 4), w, b)


def test_embedding():
    t = torch()
    idx = R.integers(0, 10, size=(3, 4))
    compare(nn.Embedding(10, 6), t.nn.Embedding(10, 6), idx)
    compare(nn.Embedding(10, 6, padding_idx=2), t.nn.Embedding(10, 6, padding_idx=2),
            np.array([[2, 3, 2], [1, 2, 0]]))


def test_bilinear():
    t = torch()
    compare(nn.Bilinear(3, 4, 2), t.nn.Bilinear(3, 4, 2), rand(5, 3), rand(5, 4))


# ---- convolutions ----

@pytest.mark.parametrize("kw", [
    dict(), dict(stride=2), dict(padding=1), dict(padding=(2, 1), dilation=(1, 2)),
    dict(padding="same"), dict(padding="same", dilation=2), dict(groups=2),
    dict(groups=4, padding=1), dict(stride=(2, 1), padding=1, bias=False),
    dict(padding=1, padding_mode="reflect"), dict(padding=2, padding_mode="circular"),
    dict(padding=1, padding_mode="replicate"),
])
def test_conv2d(kw):
    t = torch()
    args = (4, 8, 3)
    kernel = kw.pop("kernel", 3)
    compare(nn.Conv2d(4, 8, kernel, **kw), t.nn.Conv2d(*args, **kw), rand(2, 4, 7, 6))


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_conv2d_depthwise_and_even_kernel():
    t = torch()
    compare(nn.Conv2d(6, 6, 3, padding=1, groups=6), t.nn.Conv2d(6, 6, 3, padding=1, groups=6),
            rand(2, 6, 5, 5))
    compare(nn.Conv2d(3, 4, (2, 4), padding="same"), t.nn.Conv2d(3, 4, (2, 4), padding="same"),
            rand(1, 3, 6, 7))


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1), dict(groups=2, dilation=2)])
def test_conv2d_direct_form(kw, monkeypatch):
    """The fused direct form (used for depthwise convs) for every case."""
    from kiln.nn.modules import conv as _conv
    t = torch()
    monkeypatch.setattr(_conv, "_USE_GEMM", False)
    compare(nn.Conv2d(4, 8, 3, **kw), t.nn.Conv2d(4, 8, 3, **kw), rand(2, 4, 7, 6))


def test_conv_alias_and_unbatched():
    assert nn.Conv is nn.Conv2d
    c = nn.Conv2d(2, 3, 3)
    x = rand(2, 5, 5)
    np.testing.assert_allclose(c(jt.array(x)).numpy(), c(jt.array(x[None])).numpy()[0],
                               rtol=1e-5, atol=1e-6)


def test_conv1d():
    t = torch()
    compare(nn.Conv1d(3, 5, 3, stride=2, padding=1), t.nn.Conv1d(3, 5, 3, stride=2, padding=1),
            rand(2, 3, 9))
    compare(nn.Conv1d(4, 4, 3, groups=2, dilation=2), t.nn.Conv1d(4, 4, 3, groups=2, dilation=2),
            rand(2, 4, 9))
    compare(nn.Conv1d(4, 8, 3, groups=2, stride=2), t.nn.Conv1d(4, 8, 3, groups=2, stride=2),
            rand(2, 4, 9))


def test_conv3d():
    t = torch()
    compare(nn.Conv3d(2, 3, 3, padding=1), t.nn.Conv3d(2, 3, 3, padding=1), rand(1, 2, 4, 5, 3))
    compare(nn.Conv3d(2, 4, (2, 3, 2), stride=(1, 2, 1), groups=2),
            t.nn.Conv3d(2, 4, (2, 3, 2), stride=(1, 2, 1), groups=2), rand(2, 2, 4, 5, 3))
    compare(nn.Conv3d(4, 8, 2, padding=(1, 0, 1), dilation=(1, 2, 1), groups=2),
            t.nn.Conv3d(4, 8, 2, padding=(1, 0, 1), dilation=(1, 2, 1), groups=2),
            rand(1, 4, 3, 5, 4))


@pytest.mark.parametrize("kw", [dict(), dict(stride=2), dict(stride=2, padding=1),
                                dict(stride=2, padding=1, output_padding=1),
                                dict(stride=3, dilation=2, groups=2)])
def test_conv_transpose2d(kw):
    t = torch()
    compare(nn.ConvTranspose2d(4, 6, 3, **kw), t.nn.ConvTranspose2d(4, 6, 3, **kw),
            rand(2, 4, 4, 5))


def test_conv_transpose1d():
    t = torch()
    compare(nn.ConvTranspose1d(3, 2, 4, stride=2, padding=1),
            t.nn.ConvTranspose1d(3, 2, 4, stride=2, padding=1), rand(2, 3, 5))


def test_conv2d_finite_differences():
    def f(x, w, b):
        return nn.conv2d(x, w, b, stride=2, padding=1)
    check_grad(f, rand(1, 2, 5, 4), rand(3, 2, 3, 3), rand(3), rtol=1e-5, atol=1e-7)

    def g(x, w):
        return nn.conv2d(x, w, None, padding=1, groups=2)
    check_grad(g, rand(1, 4, 3, 3), rand(2, 2, 3, 3))


def test_conv_errors():
    c = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match="channels"):
        c(jt.zeros((1, 2, 5, 5)))
    with pytest.raises(ValueError, match="too small"):
        c(jt.zeros((1, 3, 2, 2)))
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2d(3, 4, 3, groups=2)


# ---- pooling ----

@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2),
                                dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=3, stride=2, ceil_mode=True),
                                dict(kernel_size=2, stride=1, dilation=2)])
def test_max_pool2d(kw):
    t = torch()
    compare(nn.MaxPool2d(**kw), t.nn.MaxPool2d(**kw), rand(2, 3, 7, 8))


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
                                dict(kernel_size=3, stride=2, ceil_mode=True),
                                dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                                     count_include_pad=False),
                                dict(kernel_size=2, divisor_override=3)])
def test_avg_pool2d(kw):
    t = torch()
    compare(nn.AvgPool2d(**kw), t.nn.AvgPool2d(**kw), rand(2, 3, 7, 8))


def test_pool_1d_3d():
    t = torch()
    compare(nn.MaxPool1d(3, 2), t.nn.MaxPool1d(3, 2), rand(2, 3, 9))
    compare(nn.AvgPool1d(3, 2, 1), t.nn.AvgPool1d(3, 2, 1), rand(2, 3, 9))
    compare(nn.MaxPool3d(2), t.nn.MaxPool3d(2), rand(1, 2, 4, 4, 6))


@pytest.mark.parametrize("size", [1, 2, (3, 2), (5, 3), (None, 2)])
def test_adaptive_pools(size):
    t = torch()
    compare(nn.AdaptiveAvgPool2d(size), t.nn.AdaptiveAvgPool2d(size), rand(2, 3, 7, 6))
    compare(nn.AdaptiveMaxPool2d(size), t.nn.AdaptiveMaxPool2d(size), rand(2, 3, 7, 6))


def test_jittor_pool():
    x = rand(1, 2, 6, 6)
    ref = nn.MaxPool2d(2)(jt.array(x)).numpy()
    np.testing.assert_allclose(nn.Pool(2, op="maximum")(jt.array(x)).numpy(), ref)
    avg = nn.Pool(2, op="mean")(jt.array(x)).numpy()
    np.testing.assert_allclose(avg, x.reshape(1, 2, 3, 2, 3, 2).mean((3, 5)), rtol=1e-12)


def test_max_pool_finite_differences():
    check_grad(lambda x: nn.max_pool2d(x, 3, 2, 1), rand(1, 2, 5, 5))
    check_grad(lambda x: nn.avg_pool2d(x, 3, 2, 1, count_include_pad=False), rand(1, 2, 5, 5))


# ---- normalisation ----

def test_batchnorm2d_train_and_eval():
    t = torch()
    bn, tbn = nn.BatchNorm2d(3), t.nn.BatchNorm2d(3)
    x = rand(4, 3, 5, 5) * 3 + 1
    compare(bn, tbn, x)
    for k in ("running_mean", "running_var"):
        np.testing.assert_allclose(getattr(bn, k).numpy(), getattr(tbn, k).numpy(),
                                   rtol=1e-10, err_msg=k)
    assert int(bn.num_batches_tracked.item()) == int(tbn.num_batches_tracked) == 1
    x2 = rand(4, 3, 5, 5) * 2
    bn(jt.array(x2)).sync()
    tbn(t.from_numpy(x2))
    np.testing.assert_allclose(bn.running_var.numpy(), tbn.running_var.numpy(), rtol=1e-10)
    bn.eval()
    tbn.eval()
    compare(bn, tbn, x)


def test_batchnorm1d_and_options():
    t = torch()
    compare(nn.BatchNorm1d(4), t.nn.BatchNorm1d(4), rand(6, 4))
    compare(nn.BatchNorm1d(4, affine=False), t.nn.BatchNorm1d(4, affine=False), rand(3, 4, 5))
    bn, tbn = nn.BatchNorm2d(2, momentum=None), t.nn.BatchNorm2d(2, momentum=None)
    for _ in range(3):
        x = rand(3, 2, 2, 2)
        compare(bn, tbn, x)
    np.testing.assert_allclose(bn.running_mean.numpy(), tbn.running_mean.numpy(), rtol=1e-10)
    bn, tbn = nn.BatchNorm2d(2, track_running_stats=False), \
        t.nn.BatchNorm2d(2, track_running_stats=False)
    bn.eval()
    tbn.eval()
    compare(bn, tbn, rand(3, 2, 2, 2))


def _launches(fn):
    """The kernel launches fn's syncs make: (name, ops, ms, input bytes, output bytes)."""
    from kiln import _C
    _C.profile_take()
    _C.profile_enable(True)
    try:
        fn()
    finally:
        records = _C.profile_take()
        _C.profile_enable(False)
    return records


def test_batchnorm_statistics_and_gradient_in_one_pass_each():
    """Training-mode batch norm reads the batch once for its statistics (the
    sum and the sum of squares of x less a per-channel shift: one kernel
    with two outputs) and once for its gradient's two sums; on float32 data
    far from 0 the shift keeps the variance accurate (float64 reference)."""
    r = np.random.default_rng(3)
    N, C, H, W = 8, 16, 6, 7
    x0 = (r.standard_normal((N, C, H, W)) + 100 + r.uniform(-50, 50, (1, C, 1, 1))).astype(np.float32)
    u0 = r.standard_normal(x0.shape).astype(np.float32)
    w0, b0 = r.uniform(0.5, 1.5, C).astype(np.float32), r.standard_normal(C).astype(np.float32)
    x, u = jt.array(x0), jt.array(u0)
    w, b = jt.array(w0), jt.array(b0)
    y = nn.batch_norm(x, weight=w, bias=b, training=True)

    def batch_passes(records):
        """Reductions over the whole batch, and how many sums each makes (the
        shift, a mean of the first row read through a slice of x, aside)."""
        return [r[4] // (4 * C) for r in records
                if r[0] == "reduce" and r[3] >= x0.nbytes and "reindex" not in r[1]]

    assert batch_passes(_launches(y.sync)) == [2]
    dx, dw, db = jt.grad((y * u).sum(), [x, w, b])
    assert batch_passes(_launches(lambda: jt.sync([dx, dw, db]))) == [2]

    x64, u64 = x0.astype(np.float64), u0.astype(np.float64)
    dims = (0, 2, 3)
    mean, var = x64.mean(dims, keepdims=True), x64.var(dims, keepdims=True)
    rstd = 1 / np.sqrt(var + 1e-5)
    xhat = (x64 - mean) * rstd
    want_y = xhat * w0.reshape(1, C, 1, 1) + b0.reshape(1, C, 1, 1)
    np.testing.assert_allclose(y.numpy(), want_y, atol=5e-5)
    want_db, want_dw = u64.sum(dims), (u64 * xhat).sum(dims)
    n = N * H * W
    want_dx = w0.reshape(1, C, 1, 1) * rstd * (u64 - (want_db.reshape(1, C, 1, 1) + xhat * want_dw.reshape(1, C, 1, 1)) / n)
    np.testing.assert_allclose(db.numpy(), want_db, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(dw.numpy(), want_dw, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(dx.numpy(), want_dx, rtol=1e-3, atol=2e-5)


def test_batchnorm_training_gradients_finite_differences():
    """Training-mode batch norm's gradient is written out (two reductions
    and one pass): against central differences for x, weight and bias, 2-d
    and 4-d, with and without the affine parameters."""
    check_grad(lambda x, w, b: nn.batch_norm(x, weight=w, bias=b, training=True),
               rand(4, 3, 3, 2) * 2 + 1, rand(3) + 0.5, rand(3))
    check_grad(lambda x, w, b: nn.batch_norm(x, weight=w, bias=b, training=True),
               rand(6, 4), rand(4) + 0.5, rand(4))
    check_grad(lambda x: nn.batch_norm(x, training=True), rand(3, 2, 4))


def test_batchnorm_training_second_order():
    """A gradient of the gradient through training-mode batch norm (the
    batch statistics' own derivatives in x): d/dx of sum(v * dL/dx) against
    central differences of dL/dx."""
    r = np.random.default_rng(5)
    x0 = r.standard_normal((4, 3, 2, 2)) * 2 + 1
    w0, b0 = r.uniform(0.5, 1.5, 3), r.standard_normal(3)
    u, v = r.standard_normal(x0.shape), r.standard_normal(x0.shape)

    def first(x_np):
        x = jt.array(x_np)
        y = nn.batch_norm(x, weight=jt.array(w0), bias=jt.array(b0), training=True)
        return jt.grad((nn.relu(y) * y * jt.array(u)).sum(), x)

    x = jt.array(x0)
    y = nn.batch_norm(x, weight=jt.array(w0), bias=jt.array(b0), training=True)
    g = jt.grad((nn.relu(y) * y * jt.array(u)).sum(), x)
    h = jt.grad((g * jt.array(v)).sum(), x).numpy()
    eps = 1e-6
    for idx in [(0, 0, 0, 0), (1, 2, 1, 0), (3, 1, 1, 1)]:
        d = np.zeros_like(x0)
        d[idx] = eps
        num = ((first(x0 + d).numpy() - first(x0 - d).numpy()) * v).sum() / (2 * eps)
        np.testing.assert_allclose(h[idx], num, rtol=1e-5, atol=1e-6)


def test_batchnorm_eval_under_no_grad_follows_its_state():
    """Inference keeps the per-channel scale and shift between calls; an
    update of the statistics or parameters, load_state_dict or eps are seen."""
    r = np.random.default_rng(7)
    bn = nn.BatchNorm2d(3)
    bn.eval()
    x_np = r.standard_normal((2, 3, 4, 4))
    x = jt.array(x_np.astype("float32"))

    def want():
        m, v = bn.running_mean.numpy(), bn.running_var.numpy()
        s = bn.weight.numpy() / np.sqrt(v + bn.eps)
        return x_np * s[:, None, None] + (bn.bias.numpy() - m * s)[:, None, None]

    for change in (None, "stats", "weight", "state_dict", "eps"):
        if change == "stats":
            bn.running_mean.update(jt.array(r.standard_normal(3).astype("float32")))
            bn.running_var.update(jt.array(r.uniform(0.5, 2, 3).astype("float32")))
        elif change == "weight":
            bn.weight.update(jt.array(r.standard_normal(3).astype("float32")))
        elif change == "state_dict":
            bn.load_state_dict({"bias": r.standard_normal(3).astype("float32")}, strict=False)
        elif change == "eps":
            bn.eps = 0.5
        with jt.no_grad():
            got = bn(x).numpy()
        np.testing.assert_allclose(got, want(), rtol=1e-5, atol=1e-5, err_msg=str(change))


def test_batchnorm_stats_are_buffers():
    bn = nn.BatchNorm2d(3)
    names = [n for n, _ in bn.named_parameters()]
    assert names == ["weight", "bias"]
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var",
                                                  "num_batches_tracked"]


def test_layer_group_instance_norm():
    t = torch()
    compare(nn.LayerNorm(5), t.nn.LayerNorm(5), rand(2, 3, 5))
    compare(nn.LayerNorm((3, 5), elementwise_affine=False),
            t.nn.LayerNorm((3, 5), elementwise_affine=False), rand(2, 3, 5))
    compare(nn.GroupNorm(2, 6), t.nn.GroupNorm(2, 6), rand(2, 6, 3, 3))
    compare(nn.InstanceNorm2d(3), t.nn.InstanceNorm2d(3), rand(2, 3, 4, 4))
    compare(nn.InstanceNorm2d(3, affine=True), t.nn.InstanceNorm2d(3, affine=True),
            rand(2, 3, 4, 4))
    compare(nn.LocalResponseNorm(3), t.nn.LocalResponseNorm(3), rand(2, 5, 3, 3))


def test_layer_norm_finite_differences():
    check_grad(lambda x, w, b: nn.layer_norm(x, 4, w, b), rand(2, 4), rand(4), rand(4))


# ---- activations ----

@pytest.mark.parametrize("name,args", [
    ("ReLU", ()), ("ReLU6", ()), ("LeakyReLU", (0.2,)), ("ELU", (0.7,)), ("GELU", ()),
    ("SiLU", ()), ("Sigmoid", ()), ("Tanh", ()), ("Softmax", (1,)), ("LogSoftmax", (1,)),
    ("Hardswish", ()), ("Hardsigmoid", ()), ("Softplus", ()), ("Mish", ()), ("SELU", ()),
    ("Hardtanh", ()), ("Softsign", ()), ("LogSigmoid", ()), ("Tanhshrink", ()),
])
def test_activation(name, args):
    t = torch()
    compare(getattr(nn, name)(*args), getattr(t.nn, name)(*args), rand(3, 4, 2, low=-5, high=5))


def test_gelu_tanh_and_prelu():
    t = torch()
    compare(nn.GELU("tanh"), t.nn.GELU("tanh"), rand(3, 4))
    compare(nn.PReLU(), t.nn.PReLU(), rand(2, 3, 4))
    compare(nn.PReLU(3), t.nn.PReLU(3), rand(2, 3, 4))


# ---- dropout ----

def test_dropout():
    jt.seed(3)
    x = jt.ones((200, 100))
    d = nn.Dropout(0.3)
    y = d(x).numpy()
    kept = (y != 0).mean()
    assert abs(kept - 0.7) < 0.02
    np.testing.assert_allclose(y[y != 0], 1 / 0.7, rtol=1e-6)
    d.eval()
    assert d(x) is x or np.all(d(x).numpy() == 1)
    y2 = nn.Dropout2d(0.5)(jt.ones((8, 50, 3, 3))).numpy()
    per_channel = y2.reshape(8, 50, 9)
    assert np.all(per_channel.min(2) == per_channel.max(2))   # whole channels
    g = jt.grad((nn.dropout(x, 0.5) * 1).sum(), x)
    assert set(np.unique(g.numpy())) <= {0.0, 2.0}


def test_dropout_reproducible():
    jt.seed(5)
    a = nn.dropout(jt.ones((50,)), 0.5).numpy()
    jt.seed(5)
    b = nn.dropout(jt.ones((50,)), 0.5).numpy()
    np.testing.assert_array_equal(a, b)


# ---- shape layers ----

def test_pads():
    t = torch()
    x = rand(2, 3, 4, 5)
    for layer, tlayer in [(nn.ZeroPad2d(2), t.nn.ZeroPad2d(2)),
                          (nn.ZeroPad2d((1, 0, 2, 3)), t.nn.ZeroPad2d((1, 0, 2, 3))),
                          (nn.ConstantPad2d((1, 2, 0, 1), 3.5), t.nn.ConstantPad2d((1, 2, 0, 1),
                                                                                  3.5)),
                          (nn.ReflectionPad2d((2, 1, 3, 1)), t.nn.ReflectionPad2d((2, 1, 3, 1))),
                          (nn.ReplicationPad2d((3, 1, 0, 2)),
                           t.nn.ReplicationPad2d((3, 1, 0, 2)))]:
        compare(layer, tlayer, x)
    F = t.nn.functional
    for mode in ("constant", "reflect", "replicate", "circular"):
        got = nn.pad(jt.array(x), (1, 2, 2, 1), mode)
        np.testing.assert_allclose(got.numpy(), F.pad(t.from_numpy(x), (1, 2, 2, 1), mode))
    np.testing.assert_allclose(nn.pad(jt.array(x), (-1, 1)).numpy(),
                               F.pad(t.from_numpy(x), (-1, 1)).numpy())


def test_pixel_shuffle_flatten_identity():
    t = torch()
    compare(nn.PixelShuffle(2), t.nn.PixelShuffle(2), rand(2, 8, 3, 4))
    compare(nn.PixelUnshuffle(2), t.nn.PixelUnshuffle(2), rand(2, 2, 4, 6))
    compare(nn.Flatten(), t.nn.Flatten(), rand(2, 3, 4))
    compare(nn.Flatten(0, 1), t.nn.Flatten(0, 1), rand(2, 3, 4))
    compare(nn.Identity(), t.nn.Identity(), rand(2, 3))
    compare(nn.Unflatten(1, (2, 3)), t.nn.Unflatten(1, (2, 3)), rand(4, 6))


@pytest.mark.parametrize("kw", [
    dict(scale_factor=2), dict(size=(5, 7)), dict(scale_factor=1.5),
    dict(scale_factor=2, mode="bilinear", align_corners=False),
    dict(scale_factor=2, mode="bilinear", align_corners=True),
    dict(size=(3, 9), mode="bilinear", align_corners=False),
    dict(size=(7, 3), mode="bilinear", align_corners=True),
])
def test_upsample(kw):
    t = torch()
    compare(nn.Upsample(**kw), t.nn.Upsample(**kw), rand(2, 3, 4, 5), rtol=1e-5, atol=1e-6)


def test_interpolate_functional():
    t = torch()
    x = rand(1, 2, 5, 4)
    F = t.nn.functional
    got = nn.interpolate(jt.array(x), size=(3, 3), mode="bilinear", align_corners=False)
    want = F.interpolate(t.from_numpy(x), size=(3, 3), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    got = nn.interpolate(jt.array(rand(1, 2, 5)), scale_factor=2, mode="linear")
    assert got.shape == (1, 2, 10)


# ---- functional forms and initialisation ----

def test_functional_names():
    x = jt.array(rand(1, 2, 6, 6))
    w = jt.array(rand(3, 2, 3, 3))
    assert nn.conv2d(x, w, padding=1).shape == (1, 3, 6, 6)
    assert nn.max_pool2d(x, 2).shape == (1, 2, 3, 3)
    assert nn.avg_pool2d(x, 2).shape == (1, 2, 3, 3)
    assert nn.pool(x, 2, "maximum").shape == (1, 2, 3, 3)
    assert nn.dropout(x, 0.5, training=False) is x
    assert nn.pad(x, (1, 1, 1, 1)).shape == (1, 2, 8, 8)
    assert nn.interpolate(x, scale_factor=2).shape == (1, 2, 12, 12)
    assert nn.resize(x, (3, 3)).shape == (1, 2, 3, 3)
    assert nn.adaptive_avg_pool2d(x, 1).shape == (1, 2, 1, 1)
    assert nn.linear(jt.ones((2, 3)), jt.ones((4, 3))).shape == (2, 4)
    import kiln.nn.functional as F
    assert F.relu is nn.relu


def test_default_init_bounds():
    jt.seed(0)
    lin = nn.Linear(100, 50)
    w = lin.weight.numpy()
    assert np.abs(w).max() <= 0.1 + 1e-7 and np.abs(w).max() > 0.09
    assert abs(w.std() - 0.1 / np.sqrt(3)) < 0.005
    conv = nn.Conv2d(8, 16, 3)
    bound = 1 / np.sqrt(8 * 9)
    assert np.abs(conv.weight.numpy()).max() <= bound + 1e-7
    assert np.abs(conv.bias.numpy()).max() <= bound + 1e-7
    emb = nn.Embedding(1000, 10).weight.numpy()
    assert abs(emb.std() - 1) < 0.05
    bn = nn.BatchNorm2d(4)
    np.testing.assert_array_equal(bn.weight.numpy(), 1)
    np.testing.assert_array_equal(bn.bias.numpy(), 0)
    assert nn.PReLU().weight.numpy()[0] == pytest.approx(0.25)


def test_init_reproducible_under_seed():
    jt.seed(42)
    a = nn.Linear(4, 3).weight.numpy()
    jt.seed(42)
    b = nn.Linear(4, 3).weight.numpy()
    np.testing.assert_array_equal(a, b)


# ---- shape arguments are validated (issue: dilation=0 accepted, stride=0 ZeroDivisionError) ----

@pytest.mark.parametrize("kwargs,match", [
    (dict(dilation=0), "dilation must be positive"),
    (dict(stride=0), "stride must be positive"),
    (dict(stride=(1, -1)), "stride must be positive"),
    (dict(padding=-1), "padding must be at least 0"),
    (dict(groups=0), "groups must be a positive int"),
    (dict(kernel_size=0), "kernel_size must be positive"),
])
def test_conv_arguments_are_validated(kwargs, match):
    args = dict(in_channels=2, out_channels=2, kernel_size=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        jt.nn.Conv2d(**args)
    if "kernel_size" not in kwargs:
        w = jt.random((2, 2, 3, 3))
        with pytest.raises(ValueError, match=match):
            jt.nn.conv2d(jt.random((1, 2, 8, 8)), w, **kwargs)


def test_conv_transpose_output_padding_must_be_below_stride_or_dilation():
    with pytest.raises(ValueError, match="output_padding"):
        jt.nn.ConvTranspose2d(1, 1, 3, stride=1, output_padding=2)
    with pytest.raises(ValueError, match="output_padding"):
        jt.nn.conv_transpose2d(jt.random((1, 1, 4, 4)), jt.random((1, 1, 3, 3)), stride=2,
                               output_padding=2)
    y = jt.nn.ConvTranspose2d(1, 1, 3, stride=2, output_padding=1)(jt.random((1, 1, 4, 4)))
    assert y.shape == (1, 1, 10, 10)


@pytest.mark.parametrize("kwargs,match", [(dict(stride=0), "stride must be positive"),
                                          (dict(padding=-1), "padding must be at least 0"),
                                          (dict(dilation=0), "dilation must be positive")])
def test_pool_arguments_are_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        jt.nn.max_pool2d(jt.random((1, 1, 8, 8)), 2, **kwargs)


def _unfold_reference(x, k, d, p, s):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    oh = (h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    out = np.zeros((n, c * k[0] * k[1], oh * ow))
    for ci in range(c):
        for ki in range(k[0]):
            for kj in range(k[1]):
                for r in range(oh):
                    for q in range(ow):
                        out[:, (ci * k[0] + ki) * k[1] + kj, r * ow + q] = \
                            xp[:, ci, r * s[0] + ki * d[0], q * s[1] + kj * d[1]]
    return out


def test_unfold_and_fold_against_loops():
    a = np.random.default_rng(9).standard_normal((2, 3, 6, 7))
    for k, d, p, s in (((2, 2), (2, 2), (2, 2), (2, 2)), ((2, 3), (1, 1), (1, 0), (1, 2))):
        cols = nn.unfold(jt.array(a), k, d, p, s)
        want = _unfold_reference(a, k, d, p, s)
        np.testing.assert_allclose(cols.numpy(), want, rtol=1e-12)
        # fold is unfold's adjoint: <unfold(x), y> == <x, fold(y)>
        y = np.random.default_rng(1).standard_normal(want.shape)
        back = nn.fold(jt.array(y), (6, 7), k, d, p, s).numpy()
        np.testing.assert_allclose((want * y).sum(), (a * back).sum(), rtol=1e-10)
    with pytest.raises(ValueError, match="columns given"):
        nn.fold(jt.ones(1, 4, 5), (6, 7), 2)
