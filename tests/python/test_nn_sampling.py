"""Resampling and max pooling with indices: interpolate/resize (nearest,
nearest-exact, bilinear, bicubic, area, trilinear), affine_grid, grid_sample,
max pooling's indices and tie gradients, max unpooling, Jittor's
conv_transpose. Each is checked against an independent float64 NumPy
reference (written here from the definitions, not from kiln's code), against
PyTorch where it is installed, and its gradients against central differences."""
import itertools
import math

import numpy as np
import pytest

import kiln as jt
from kiln import nn
from ktest import check_grad

R = np.random.default_rng(7)
A = -0.75    # PyTorch's cubic convolution coefficient


def torch():
    return pytest.importorskip("torch")


def close(got, want, rtol=1e-10, atol=1e-12):
    got = got.numpy() if isinstance(got, jt.Var) else np.asarray(got)
    want = want.detach().numpy() if hasattr(want, "detach") else np.asarray(want)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


# ---- NumPy references: one (n_out, n_in) matrix per spatial dim ----

def nearest_matrix(n_in, n_out):
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        m[o, min(o * n_in // n_out, n_in - 1)] = 1      # floor(o * n_in / n_out), exactly
    return m


def linear_matrix(n_in, n_out, align_corners):
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        if align_corners:
            src = o * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        else:
            src = max((o + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = min(int(math.floor(src)), n_in - 1)
        lam = src - i0
        m[o, i0] += 1 - lam
        m[o, min(i0 + 1, n_in - 1)] += lam
    return m


def keys_kernel(d):
    """The cubic convolution kernel W(d) with a = -0.75."""
    d = abs(d)
    if d <= 1:
        return (A + 2) * d ** 3 - (A + 3) * d ** 2 + 1
    if d < 2:
        return A * d ** 3 - 5 * A * d ** 2 + 8 * A * d - 4 * A
    return 0.0


def cubic_matrix(n_in, n_out, align_corners):
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        if align_corners:
            src = o * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        else:
            src = (o + 0.5) * n_in / n_out - 0.5      # not clamped, unlike linear
        f = math.floor(src)
        for k in (-1, 0, 1, 2):                       # taps past the border repeat the edge
            m[o, min(max(f + k, 0), n_in - 1)] += keys_kernel(src - (f + k))
    return m


def area_matrix(n_in, n_out):
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        start, end = o * n_in // n_out, -(-(o + 1) * n_in // n_out)
        m[o, start:end] = 1.0 / (end - start)
    return m


def resample_2d(x, mh, mw):
    return np.einsum("oh,nchw,pw->ncop", mh, x, mw)


def ref_interpolate(x, size, mode, align_corners=False):
    (h, w), (oh, ow) = x.shape[2:], size
    if mode == "nearest":
        return resample_2d(x, nearest_matrix(h, oh), nearest_matrix(w, ow))
    if mode == "bilinear":
        return resample_2d(x, linear_matrix(h, oh, align_corners),
                           linear_matrix(w, ow, align_corners))
    if mode == "bicubic":
        return resample_2d(x, cubic_matrix(h, oh, align_corners),
                           cubic_matrix(w, ow, align_corners))
    assert mode == "area"
    return resample_2d(x, area_matrix(h, oh), area_matrix(w, ow))


def ref_grid_sample_bilinear_zeros(x, grid, align_corners):
    N, C, H, W = x.shape
    _, Ho, Wo, _ = grid.shape

    def unnormalize(g, n):
        return (g + 1) / 2 * (n - 1) if align_corners else ((g + 1) * n - 1) / 2
    out = np.zeros((N, C, Ho, Wo))
    for n, i, j in itertools.product(range(N), range(Ho), range(Wo)):
        px, py = unnormalize(grid[n, i, j, 0], W), unnormalize(grid[n, i, j, 1], H)
        x0, y0 = math.floor(px), math.floor(py)
        for (yy, wy), (xx, wx) in itertools.product(((y0, y0 + 1 - py), (y0 + 1, py - y0)),
                                                    ((x0, x0 + 1 - px), (x0 + 1, px - x0))):
            if 0 <= yy < H and 0 <= xx < W:             # zeros padding: outside reads 0
                out[n, :, i, j] += wy * wx * x[n, :, yy, xx]
    return out


def ref_affine_grid_2d(theta, size, align_corners):
    N, _, H, W = size

    def centres(n):
        if n == 1:
            return np.zeros(1)
        c = np.linspace(-1, 1, n)
        return c if align_corners else c * (n - 1) / n
    ys, xs = np.meshgrid(centres(H), centres(W), indexing="ij")
    base = np.stack([xs, ys, np.ones_like(xs)], -1)           # (H, W, 3)
    return np.einsum("hwk,nik->nhwi", base, theta)


def grid_from_pixels(px, py, H, W, align_corners):
    """Normalised grid values of pixel positions (x along W, y along H)."""
    if align_corners:
        return np.stack([2 * px / (W - 1) - 1, 2 * py / (H - 1) - 1], -1)
    return np.stack([(2 * px + 1) / W - 1, (2 * py + 1) / H - 1], -1)


def smooth_pixels(shape, lo, hi):
    """Pixel positions in [lo, hi) whose fractional parts keep 0.1 away from
    the integers and half-integers, where sampling has kinks (cell edges,
    borders, reflection axes), so central differences are meaningful."""
    whole = R.integers(lo, hi, size=shape)
    frac = R.uniform(0.1, 0.4, size=shape) + 0.5 * R.integers(0, 2, size=shape)
    return whole + frac


# ---- interpolate / resize ----

@pytest.mark.parametrize("mode,size,ac", [
    ("nearest", (8, 3), False), ("nearest", (2, 10), False),
    ("bilinear", (8, 3), False), ("bilinear", (7, 11), True), ("bilinear", (3, 2), False),
    ("bicubic", (8, 3), False), ("bicubic", (9, 13), True), ("bicubic", (3, 4), False),
    ("area", (2, 3), False), ("area", (3, 4), False), ("area", (5, 6), False),
])
def test_interpolate_matches_numpy_reference(mode, size, ac):
    x = R.standard_normal((2, 3, 5, 6))
    y = nn.interpolate(jt.array(x), size=size, mode=mode, align_corners=ac or None)
    close(y, ref_interpolate(x, size, mode, ac))


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "bilinear", "bicubic", "area"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_interpolate_matches_torch(mode, dtype):
    t = torch()
    F = t.nn.functional
    x = R.standard_normal((2, 3, 7, 9)).astype(dtype)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    interpolating = mode in ("bilinear", "bicubic")
    for kw in (dict(size=(11, 5)), dict(size=(3, 4)), dict(scale_factor=1.7),
               dict(scale_factor=(0.5, 2.3))):
        for ac in ((False, True) if interpolating else (None,)):
            want = F.interpolate(t.from_numpy(x), mode=mode, align_corners=ac, **kw)
            close(nn.interpolate(jt.array(x), mode=mode, align_corners=ac, **kw), want, **tol)


@pytest.mark.parametrize("mode", ["nearest", "trilinear", "area"])
def test_interpolate_3d_and_1d_match_torch(mode):
    t = torch()
    F = t.nn.functional
    x = R.standard_normal((2, 2, 4, 5, 6))
    close(nn.interpolate(jt.array(x), size=(3, 7, 4), mode=mode),
          F.interpolate(t.from_numpy(x), size=(3, 7, 4), mode=mode))
    m1 = {"trilinear": "linear"}.get(mode, mode)
    x1 = R.standard_normal((2, 3, 7))
    close(nn.interpolate(jt.array(x1), size=4, mode=m1),
          F.interpolate(t.from_numpy(x1), size=4, mode=m1))


@pytest.mark.parametrize("mode,ac", [("bilinear", False), ("bicubic", False),
                                     ("bicubic", True), ("area", None), ("nearest", None)])
def test_interpolate_gradient_finite_differences(mode, ac):
    x = R.standard_normal((1, 2, 4, 5))
    check_grad(lambda v: nn.interpolate(v, size=(3, 7), mode=mode, align_corners=ac), x)


def test_resize_module_and_function():
    t = torch()
    F = t.nn.functional
    x = np.arange(2 * 3 * 25, dtype=np.float32).reshape(2, 3, 5, 5)
    for size in (3, 4, 6):
        for ac in (True, False):
            for mode in ("bilinear", "bicubic"):
                want = F.interpolate(t.from_numpy(x), size=(size, size), mode=mode,
                                     align_corners=ac)
                close(nn.Resize((size, size), mode, ac)(jt.array(x)), want, rtol=1e-5, atol=1e-4)
    a = R.standard_normal((1, 1, 2, 2))
    close(nn.Resize((4, 4))(jt.array(a)), t.nn.Upsample(scale_factor=2)(t.from_numpy(a)))
    close(nn.resize(jt.array(a), 4, "area"), ref_interpolate(a, (4, 4), "area"))
    up = nn.Upsample(scale_factor=2, mode="bicubic", align_corners=True)
    close(up(jt.array(a)), ref_interpolate(a, (4, 4), "bicubic", True))


def test_interpolate_errors_name_the_function_and_values():
    x = jt.array(R.standard_normal((1, 2, 4, 4)))
    with pytest.raises(ValueError, match=r"interpolate: unsupported mode 'cubic'"):
        nn.interpolate(x, size=(2, 2), mode="cubic")
    with pytest.raises(ValueError, match=r"interpolate: mode 'bicubic' expects a 4-d .*"
                                         r"\(1, 2, 4, 4, 3\)"):
        nn.interpolate(jt.array(np.zeros((1, 2, 4, 4, 3))), size=(2, 2, 2), mode="bicubic")
    with pytest.raises(ValueError, match=r"interpolate: size \(2, 2, 2\) does not match the 2 "
                                         r"spatial dims .*\(1, 2, 4, 4\)"):
        nn.interpolate(x, size=(2, 2, 2))
    with pytest.raises(ValueError, match=r"interpolate: align_corners=True .* 'area'"):
        nn.interpolate(x, size=(2, 2), mode="area", align_corners=True)
    with pytest.raises(ValueError, match=r"Resize: unsupported mode 'linearr'"):
        nn.Resize((2, 2), "linearr")


# ---- affine_grid / grid_sample ----

@pytest.mark.parametrize("ac", [False, True])
def test_affine_grid_matches_numpy_and_torch(ac):
    theta = R.standard_normal((2, 2, 3))
    size = (2, 3, 4, 5)
    close(nn.affine_grid(jt.array(theta), size, ac), ref_affine_grid_2d(theta, size, ac))
    t = torch()
    F = t.nn.functional
    th = t.from_numpy(theta).requires_grad_()
    tg = F.affine_grid(th, size, ac)
    w = R.standard_normal(tg.shape)
    (tg * t.from_numpy(w)).sum().backward()
    jth = jt.array(theta)
    g = nn.affine_grid(jth, size, ac)
    close(jt.grad((g * jt.array(w)).sum(), jth), th.grad)
    theta3 = R.standard_normal((2, 3, 4))
    close(nn.affine_grid(jt.array(theta3), (2, 1, 3, 4, 2), ac),
          F.affine_grid(t.from_numpy(theta3), (2, 1, 3, 4, 2), ac))
    check_grad(lambda th: nn.affine_grid(th, (2, 1, 3, 2), ac), theta)


@pytest.mark.parametrize("ac", [False, True])
def test_grid_sample_bilinear_zeros_matches_numpy(ac):
    x = R.standard_normal((2, 3, 5, 6))
    grid = R.uniform(-1.3, 1.3, size=(2, 4, 3, 2))      # some positions outside: zeros
    close(nn.grid_sample(jt.array(x), jt.array(grid), "bilinear", "zeros", ac),
          ref_grid_sample_bilinear_zeros(x, grid, ac))


@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
def test_grid_sample_matches_torch_values_and_gradients(mode, padding_mode):
    t = torch()
    F = t.nn.functional
    x = R.standard_normal((2, 3, 5, 6))
    grid = R.uniform(-1.4, 1.4, size=(2, 4, 3, 2))
    for ac in (False, True):
        jx, jg = jt.array(x), jt.array(grid)
        y = nn.grid_sample(jx, jg, mode, padding_mode, ac)
        w = R.standard_normal(y.shape)
        gx, gg = jt.grad((y * jt.array(w)).sum(), [jx, jg])
        tx, tg = t.from_numpy(x).requires_grad_(), t.from_numpy(grid).requires_grad_()
        ty = F.grid_sample(tx, tg, mode, padding_mode, ac)
        (ty * t.from_numpy(w)).sum().backward()
        close(y, ty)
        close(gx, tx.grad)
        close(gg, tg.grad, rtol=1e-9, atol=1e-11)
    # float32 too, within float32 rounding
    x32, g32 = x.astype(np.float32), grid.astype(np.float32)
    close(nn.grid_sample(jt.array(x32), jt.array(g32), mode, padding_mode, False),
          F.grid_sample(t.from_numpy(x32), t.from_numpy(g32), mode, padding_mode, False),
          rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_grid_sample_5d_matches_torch(mode):
    t = torch()
    F = t.nn.functional
    x = R.standard_normal((2, 2, 3, 4, 5))
    grid = R.uniform(-1.2, 1.2, size=(2, 2, 3, 2, 3))
    for padding_mode in ("zeros", "border", "reflection"):
        jx, jg = jt.array(x), jt.array(grid)
        y = nn.grid_sample(jx, jg, mode, padding_mode, False)
        gx, gg = jt.grad((y * y).sum(), [jx, jg])
        tx, tg = t.from_numpy(x).requires_grad_(), t.from_numpy(grid).requires_grad_()
        ty = F.grid_sample(tx, tg, mode, padding_mode, False)
        (ty * ty).sum().backward()
        close(y, ty)
        close(gx, tx.grad)
        close(gg, tg.grad, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("mode,padding_mode,ac", [
    ("bilinear", "zeros", False), ("bilinear", "border", True),
    ("bilinear", "reflection", False), ("bicubic", "zeros", True),
    ("bicubic", "reflection", False),
])
def test_grid_sample_gradients_finite_differences(mode, padding_mode, ac):
    H, W = 3, 4
    x = R.standard_normal((1, 2, H, W))
    # positions inside and outside the image, away from the kinks
    px, py = smooth_pixels((1, 2, 2), -2, W + 1), smooth_pixels((1, 2, 2), -2, H + 1)
    grid = grid_from_pixels(px, py, H, W, ac)
    check_grad(lambda v, g: nn.grid_sample(v, g, mode, padding_mode, ac), x, grid)


@pytest.mark.parametrize("padding_mode", ["border", "reflection"])
def test_grid_sample_positions_on_the_border_match_torch(padding_mode):
    """A position exactly on the border (or past it) is clipped and, as in
    PyTorch, passes no gradient to the grid along that axis."""
    t = torch()
    F = t.nn.functional
    x = R.standard_normal((1, 2, 3, 4))
    for ac, edges in ((True, (-1.0, 1.0)), (False, (-0.75, 0.75))):     # pixels 0 and W - 1
        grid = np.array([[[[edges[0], 0.1], [edges[1], -0.3], [1.5, edges[0]]]]])
        jx, jg = jt.array(x), jt.array(grid)
        y = nn.grid_sample(jx, jg, "bilinear", padding_mode, ac)
        tg = t.from_numpy(grid).requires_grad_()
        ty = F.grid_sample(t.from_numpy(x), tg, "bilinear", padding_mode, ac)
        (ty * ty).sum().backward()
        close(y, ty)
        close(jt.grad((y * y).sum(), jg), tg.grad)


def test_grid_sample_nearest_rounds_half_to_even_and_has_no_grid_gradient():
    x = jt.array(np.arange(5.0).reshape(1, 1, 1, 5))
    # align_corners=True: pixel = (g + 1) * 2; positions 0.5, 1.5, 2.5 round to 0, 2, 2
    grid = jt.array(np.array([[[[-0.75, 0.0], [-0.25, 0.0], [0.25, 0.0]]]]))
    y = nn.grid_sample(x, grid, "nearest", "zeros", True)
    close(y, [[[[0.0, 2.0, 2.0]]]])
    close(jt.grad(y.sum(), grid), np.zeros((1, 1, 3, 2)))


def test_grid_sample_and_affine_grid_errors():
    x = jt.array(np.zeros((2, 3, 4, 5)))
    g = jt.array(np.zeros((2, 3, 3, 2)))
    with pytest.raises(ValueError, match=r"grid_sample: unsupported mode 'linear'"):
        nn.grid_sample(x, g, "linear")
    with pytest.raises(ValueError, match=r"grid_sample: unsupported padding_mode 'wrap'"):
        nn.grid_sample(x, g, padding_mode="wrap")
    with pytest.raises(ValueError, match=r"grid_sample: grid of shape \(2, 3, 3, 3\) does not "
                                         r"fit input of shape \(2, 3, 4, 5\)"):
        nn.grid_sample(x, jt.array(np.zeros((2, 3, 3, 3))))
    with pytest.raises(ValueError, match=r"grid_sample: grid of shape \(1, 3, 3, 2\) .*N=2"):
        nn.grid_sample(x, jt.array(np.zeros((1, 3, 3, 2))))
    with pytest.raises(ValueError, match=r"grid_sample: mode 'bicubic' needs a 4-d input"):
        nn.grid_sample(jt.array(np.zeros((1, 1, 2, 2, 2))), jt.array(np.zeros((1, 1, 1, 1, 3))),
                       "bicubic")
    with pytest.raises(ValueError, match=r"affine_grid: size \(2, 3, 4, 5\) needs theta of "
                                         r"shape \(2, 2, 3\), got \(2, 3, 3\)"):
        nn.affine_grid(jt.array(np.zeros((2, 3, 3))), (2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"affine_grid: size must be .*got \(2, 3\)"):
        nn.affine_grid(jt.array(np.zeros((2, 2, 3))), (2, 3))


# ---- max pooling: indices, ties; unpooling ----

@pytest.mark.parametrize("kw", [
    dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(2, 3), stride=(2, 1), padding=(1, 0), dilation=(2, 1), ceil_mode=True),
    dict(kernel_size=3, stride=1, padding=1),
])
def test_max_pool2d_indices_and_tie_gradients_match_torch(kw):
    t = torch()
    F = t.nn.functional
    x = R.integers(0, 3, size=(2, 3, 7, 8)).astype(np.float64)    # many ties
    jx = jt.array(x)
    y, idx = nn.max_pool2d(jx, return_indices=True, **kw)
    w = R.uniform(0.5, 1.5, size=y.shape)
    g = jt.grad((y * jt.array(w)).sum(), jx)
    tx = t.from_numpy(x).requires_grad_()
    ty, tidx = F.max_pool2d(tx, return_indices=True, **kw)
    (ty * t.from_numpy(w)).sum().backward()
    close(y, ty)
    assert idx.dtype == "int64"
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    close(g, tx.grad)
    # the layer, and the value without indices, agree
    close(nn.MaxPool2d(return_indices=False, **kw)(jx), ty)
    with jt.no_grad():
        close(nn.max_pool2d(jx, **kw), ty)


@pytest.mark.parametrize("nd, shape, k, s, p, ceil", [
    (2, (2, 3, 9, 9), 3, 2, 1, False), (2, (2, 3, 10, 7), 3, 2, 1, True),
    (2, (1, 2, 8, 8), 2, 1, 0, False), (2, (1, 2, 11, 11), 5, 3, 2, True),
    (2, (1, 1, 7, 7), 4, 2, 2, False), (1, (2, 3, 9), 3, 2, 1, False),
    (3, (1, 2, 7, 6, 5), 3, 2, 1, False),
])
def test_overlapping_max_pool_gradient_is_a_gather_matching_torch(nd, shape, k, s, p, ceil):
    """Without indices, windows that overlap send dout to each window's first
    maximum by a gather over the windows covering each input position."""
    t = torch()
    pool = getattr(t.nn.functional, f"max_pool{nd}d")
    x = R.integers(0, 3, size=shape).astype(np.float64)            # many ties
    jx = jt.array(x)
    y = getattr(nn, f"max_pool{nd}d")(jx, k, s, p, ceil_mode=ceil)
    w = R.uniform(0.5, 1.5, size=y.shape)
    before = jt.counters()["library_calls"]
    g = jt.grad((y * jt.array(w)).sum(), jx)
    tx = t.from_numpy(x).requires_grad_()
    (pool(tx, k, s, p, ceil_mode=ceil) * t.from_numpy(w)).sum().backward()
    close(g, tx.grad)
    assert jt.counters()["library_calls"] == before
    # the windows' gradient never reaches padding: an all -inf plane still
    # has finite gradients
    ninf = jt.array(np.full(shape, -np.inf, np.float32))
    gi = jt.grad(getattr(nn, f"max_pool{nd}d")(ninf, k, s, p, ceil_mode=ceil).sum(), ninf)
    assert np.isfinite(gi.numpy()).all()


@pytest.mark.parametrize("nd, shape, k, s, p, ceil", [
    (2, (2, 3, 9, 9), 3, 2, 1, False), (2, (2, 3, 10, 7), 3, 2, 1, True),
    (2, (1, 2, 11, 11), 5, 3, 2, True), (1, (2, 3, 9), 3, 2, 1, False),
])
def test_padded_max_pool_with_a_gradient_matches_torch(nd, shape, k, s, p, ceil):
    """With padding and a gradient to route, the CPU reads the windows from
    a copy of x padded with -inf (no bounds checks: the loads vectorise) and
    takes the value as the windows' max: values, NaN and ties included, and
    the gradient equal PyTorch's."""
    t = torch()
    pool = getattr(t.nn.functional, f"max_pool{nd}d")
    x = R.integers(-2, 3, size=shape).astype(np.float32)
    x.flat[5] = np.nan
    x.flat[-1] = -np.inf
    jx = jt.array(x)
    jx.requires_grad = True
    y = getattr(nn, f"max_pool{nd}d")(jx, k, s, p, ceil_mode=ceil)
    w = R.uniform(0.5, 1.5, size=y.shape).astype(np.float32)
    g = jt.grad((y * jt.array(w)).sum(), jx)
    tx = t.from_numpy(x).requires_grad_()
    ty = pool(tx, k, s, p, ceil_mode=ceil)
    (ty * t.from_numpy(w)).sum().backward()
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    np.testing.assert_allclose(g.numpy(), tx.grad.numpy(), rtol=1e-6)


def test_max_pool_tie_gradient_goes_to_the_first_element_only():
    x = jt.array(np.ones((1, 1, 4, 4)))
    g = jt.grad(nn.max_pool2d(x, 2).sum(), x)
    want = np.zeros((4, 4))
    want[::2, ::2] = 1       # the first element of each 2x2 window, row-major
    close(g, want.reshape(1, 1, 4, 4))
    close(jt.grad(nn.Pool(2)(x).sum(), x), want.reshape(1, 1, 4, 4))


def test_max_pool_1d_3d_and_adaptive_indices_match_torch():
    t = torch()
    F = t.nn.functional
    x1 = R.integers(0, 3, size=(2, 3, 9)).astype(np.float64)
    y, i = nn.max_pool1d(jt.array(x1), 3, 2, 1, return_indices=True)
    ty, ti = F.max_pool1d(t.from_numpy(x1), 3, 2, 1, return_indices=True)
    close(y, ty)
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    x3 = R.standard_normal((1, 2, 4, 5, 6))
    y, i = nn.MaxPool3d(2, return_indices=True)(jt.array(x3))
    ty, ti = F.max_pool3d(t.from_numpy(x3), 2, return_indices=True)
    close(y, ty)
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    x2 = R.integers(0, 3, size=(2, 2, 7, 9)).astype(np.float64)
    jx = jt.array(x2)
    y, i = nn.AdaptiveMaxPool2d((3, 4), return_indices=True)(jx)
    tx = t.from_numpy(x2).requires_grad_()
    ty, ti = F.adaptive_max_pool2d(tx, (3, 4), return_indices=True)
    close(y, ty)
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    ty.sum().backward()
    close(jt.grad(y.sum(), jx), tx.grad)


def test_jittor_pool_with_indices():
    a = jt.array([1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1]).reshape((1, 1, 4, 4))
    _, idx = nn.Pool(2, return_indices=True)(a)
    np.testing.assert_array_equal(idx.numpy().reshape(4), [0, 3, 12, 15])
    x = R.standard_normal((1, 2, 4, 4, 4))
    y, idx = nn.Pool3d(2, return_indices=True)(jt.array(x))
    np.testing.assert_array_equal(np.take_along_axis(x.reshape(1, 2, -1),
                                                     idx.numpy().reshape(1, 2, -1), 2),
                                  y.numpy().reshape(1, 2, -1))
    with pytest.raises(ValueError, match=r"Pool: return_indices=True needs op='maximum', "
                                         r"got op='mean'"):
        nn.Pool(2, return_indices=True, op="mean")


def test_unpool_round_trip_and_torch():
    t = torch()
    F = t.nn.functional
    x = R.uniform(0.1, 2.0, size=(2, 3, 6, 8))   # positive: the zeros unpooling adds lose
    jx = jt.array(x)
    y, idx = nn.max_pool2d(jx, 2, return_indices=True)
    up = nn.MaxUnpool2d(2)(y, idx)
    assert up.shape == (2, 3, 6, 8)
    # the maxima back in place, zeros elsewhere; pooling again gives them back
    flat = np.zeros((2, 3, 48))
    np.put_along_axis(flat, idx.numpy().reshape(2, 3, -1), y.numpy().reshape(2, 3, -1), 2)
    close(up, flat.reshape(2, 3, 6, 8))
    close(nn.max_pool2d(up, 2), y)
    ty, ti = F.max_pool2d(t.from_numpy(x), 2, return_indices=True)
    close(up, F.max_unpool2d(ty, ti, 2))
    # gradient: unpooling reads each value's gradient at its index
    w = R.standard_normal(up.shape)
    g = jt.grad((nn.max_unpool2d(y, idx, 2) * jt.array(w)).sum(), y)
    close(g, np.take_along_axis(w.reshape(2, 3, -1), idx.numpy().reshape(2, 3, -1), 2)
          .reshape(y.shape))
    # 1-d, with torch's default output size (in - 1) * stride - 2 * padding + kernel
    # (windows that do not overlap: PyTorch keeps one of two values sharing an index)
    x1 = R.standard_normal((2, 2, 8))
    y1, i1 = nn.max_pool1d(jt.array(x1), 2, 2, 1, return_indices=True)
    ty1, ti1 = F.max_pool1d(t.from_numpy(x1), 2, 2, 1, return_indices=True)
    close(nn.MaxUnpool1d(2, 2, 1)(y1, i1), F.max_unpool1d(ty1, ti1, 2, 2, 1))
    close(nn.max_unpool1d(y1, i1, 2, 2, 1, output_size=(1, 9)),
          F.max_unpool1d(ty1, ti1, 2, 2, 1, output_size=(9,)))


def test_unpool_overlapping_windows_adds_shared_maxima_as_jittor():
    inp = jt.array([[[[1., 2, 3, 4, 0], [5, 6, 7, 8, 0], [9, 10, 11, 12, 0],
                      [13, 14, 16, 15, 0], [0, 0, 0, 0, 0]]]])
    y, idx = nn.MaxPool2d(3, stride=2, return_indices=True)(inp)
    np.testing.assert_array_equal(idx.numpy(), [[[[12, 13], [17, 17]]]])
    out = nn.MaxUnpool2d(3, stride=2)(y, idx, output_size=inp.shape)
    want = np.zeros((5, 5))
    want[2, 2], want[2, 3], want[3, 2] = 11, 12, 32
    close(out, want.reshape(1, 1, 5, 5))


def test_unpool_errors():
    y = jt.array(np.zeros((1, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"max_unpool2d: indices of shape \(1, 2, 3\) must "
                                         r"match the input's shape \(1, 2, 3, 3\)"):
        nn.max_unpool2d(y, jt.zeros((1, 2, 3), dtype="int64"), 2)
    with pytest.raises(TypeError, match=r"MaxUnpool2d: indices must be an integer var, got "
                                        r"float"):
        nn.MaxUnpool2d(2)(y, jt.zeros((1, 2, 3, 3)))
    # an index past the result (9 values from a 3x3 output): an error, as PyTorch's
    idx = jt.array(np.full((1, 2, 3, 3), 9, dtype=np.int64))
    with pytest.raises(IndexError, match=r"max_unpool2d indices \(output size \(3, 3\)\)"):
        nn.max_unpool2d(y, idx, 2, output_size=(3, 3)).sync()


# ---- convolutions: Jittor's conv_transpose, bias=None/False ----

def test_conv_transpose_groups_and_bias_forms():
    x = jt.array(R.standard_normal((3, 6, 5, 5)))
    w = jt.array(R.standard_normal((6, 2, 3, 3)))
    ct = nn.ConvTranspose(6, 4, (3, 3), groups=2, bias=False)
    ct.weight = w
    close(nn.conv_transpose(x, w, groups=2), ct(x))
    close(nn.conv_transpose(x, w, None, 2, 1, 1, 2), nn.conv_transpose2d(x, w, None, 2, 1, 1, 2))
    close(nn.conv_transpose(x, w, False, groups=2), ct(x))
    b = jt.array(R.standard_normal(4))
    close(nn.conv_transpose(x, w, b, groups=2), ct(x) + b.reshape((1, 4, 1, 1)))
    wc = jt.array(R.standard_normal((4, 6, 3, 3)))
    close(nn.conv2d(x, wc, False, padding=1), nn.conv2d(x, wc, padding=1))
    t = torch()
    want = t.nn.functional.conv_transpose2d(t.from_numpy(x.numpy()), t.from_numpy(w.numpy()),
                                            groups=2, stride=2, padding=1)
    close(nn.conv_transpose(x, w, groups=2, stride=2, padding=1), want, rtol=1e-9, atol=1e-10)
    with pytest.raises(ValueError, match=r"conv_transpose: bias of shape \(3,\) does not match "
                                         r"the 4 output channels"):
        nn.conv_transpose(x, w, jt.zeros(3), groups=2)
