"""jittor.einops on kiln: rearrange, reduce, repeat, einsum and parse_shape on
kiln Vars against the same operations written with NumPy, their gradients, the
layers (Rearrange, Reduce, EinMix) and the errors bad patterns raise."""
import pickle

import numpy as np
import pytest

import kiln as jt
from kiln.einops import EinopsError, asnumpy, einsum, parse_shape, rearrange, reduce, repeat
from kiln.einops._backends import JittorBackend, NumpyBackend, get_backend
from kiln.einops.einops import _enumerate_directions
from kiln.einops.layers.jittor import EinMix, Rearrange, Reduce

R = np.random.default_rng(5)
X = np.arange(2 * 3 * 4 * 6, dtype=np.float64).reshape(2, 3, 4, 6)


def both(fn, x, *args, **kwargs):
    """fn on a NumPy array and on a kiln Var; the two results, as NumPy arrays."""
    from_numpy = fn(x, *args, **kwargs)
    from_kiln = fn(jt.array(x), *args, **kwargs)
    assert isinstance(from_kiln, jt.Var)
    return from_numpy, from_kiln.numpy()


@pytest.mark.parametrize("pattern,lengths,expected", [
    ("b c h w -> b h w c", {}, X.transpose(0, 2, 3, 1)),
    ("b c h w -> b (c h w)", {}, X.reshape(2, -1)),
    ("b c h w -> (w h) c b", {}, X.transpose(3, 2, 1, 0).reshape(24, 3, 2)),
    ("b c (h h2) (w w2) -> b (c h2 w2) h w", dict(h2=2, w2=3),
     X.reshape(2, 3, 2, 2, 2, 3).transpose(0, 1, 3, 5, 2, 4).reshape(2, 18, 2, 2)),
    ("b ... w -> w b ...", {}, X.transpose(3, 0, 1, 2)),
    ("b ... -> b (...)", {}, X.reshape(2, -1)),
    ("... h w -> ... (w h)", {}, X.transpose(0, 1, 3, 2).reshape(2, 3, 24)),
    ("b c h w -> b c () h 1 w", {}, X.reshape(2, 3, 1, 4, 1, 6)),
    ("b 3 h w -> b h w", {}, None),                 # 3 is not allowed in rearrange
])
def test_rearrange_matches_numpy(pattern, lengths, expected):
    if expected is None:
        with pytest.raises(EinopsError, match="numbered axes"):
            rearrange(jt.array(X), pattern, **lengths)
        return
    got_np, got_kiln = both(rearrange, X, pattern, **lengths)
    np.testing.assert_array_equal(got_np, expected)
    np.testing.assert_array_equal(got_kiln, expected)


def test_rearrange_stacks_lists_and_inverts():
    parts = [R.standard_normal((3, 4)) for _ in range(5)]
    got = rearrange([jt.array(p) for p in parts], "n h w -> h (n w)")
    np.testing.assert_array_equal(got.numpy(), np.concatenate(parts, axis=1))
    there = rearrange(jt.array(X), "b c (h h2) w -> (w b) h2 c h", h2=2)
    back = rearrange(there, "(w b) h2 c h -> b c (h h2) w", b=2, h2=2)
    np.testing.assert_array_equal(back.numpy(), X)


def test_many_elementary_axes_fit_kilns_dims_by_merging_neighbours():
    # ten elementary axes, but neighbours that move together are handled as one dim
    x = R.standard_normal((2 * 2, 2 * 3, 3 * 2, 2 * 2, 3 * 2))
    pattern = "(a1 a2) (b1 b2) (c1 c2) (d1 d2) (e1 e2) -> (d1 d2 e1 e2) (a1 a2 b1 b2) c1 c2"
    lengths = dict(a1=2, b1=2, c1=3, d1=2, e1=3)
    got_np, got_kiln = both(rearrange, x, pattern, **lengths)
    expected = x.transpose(3, 4, 0, 1, 2).reshape(4 * 6, 4 * 6, 3, 2)
    np.testing.assert_array_equal(got_np, expected)
    np.testing.assert_array_equal(got_kiln, expected)
    del lengths["c1"]
    got_np, got_kiln = both(reduce, x, "(a1 a2) (b1 b2) c (d1 d2) (e1 e2) -> a2 e2", "sum",
                            **lengths)
    expected = x.reshape(2, 2, 2, 3, 6, 2, 2, 3, 2).sum(axis=(0, 2, 3, 4, 5, 6, 7))
    np.testing.assert_allclose(got_np, expected)
    np.testing.assert_allclose(got_kiln, expected)


@pytest.mark.parametrize("reduction", ["min", "max", "sum", "mean", "prod"])
def test_reduce_matches_numpy(reduction):
    x = R.uniform(0.5, 1.5, size=(2, 3, 4, 6))
    cases = [
        ("b c h w -> b c", getattr(x, reduction)(axis=(2, 3))),
        ("b c (h h2) (w w2) -> b c h w",
         getattr(x.reshape(2, 3, 2, 2, 2, 3), reduction)(axis=(3, 5))),
        ("b c h w -> w b", getattr(x, reduction)(axis=(1, 2)).T),
        ("b ... -> b", getattr(x, reduction)(axis=(1, 2, 3))),
        ("... -> ", getattr(x, reduction)()),
        ("b c h w -> b () c ()", getattr(x, reduction)(axis=(2, 3))[:, None, :, None]),
        ("b c h w -> b c h w", x),
    ]
    for pattern, expected in cases:
        got_np, got_kiln = both(reduce, x, pattern, reduction, h2=2, w2=3) \
            if "h2" in pattern else both(reduce, x, pattern, reduction)
        np.testing.assert_allclose(got_np, expected, rtol=1e-12)
        np.testing.assert_allclose(got_kiln, expected, rtol=1e-12)


def test_reduce_with_a_callable_and_integer_inputs():
    x = R.standard_normal((2, 3, 4))
    got = reduce(jt.array(x), "a b c -> a", lambda t, axes: jt.logsumexp(t, list(axes)))
    np.testing.assert_allclose(got.numpy(), np.log(np.exp(x).sum(axis=(1, 2))), rtol=1e-12)
    ints = np.arange(24, dtype=np.int64).reshape(2, 3, 4)
    np.testing.assert_array_equal(reduce(jt.array(ints), "a b c -> c", "max").numpy(),
                                  ints.max(axis=(0, 1)))
    with pytest.raises(NotImplementedError, match="non-floating"):
        reduce(jt.array(ints), "a b c -> c", "mean")


@pytest.mark.parametrize("pattern,lengths,expected", [
    ("h w -> h w c", dict(c=3), np.repeat(X[0, 0][..., None], 3, axis=-1)),
    ("h w -> (r h) w", dict(r=2), np.tile(X[0, 0], (2, 1))),
    ("h w -> (h r) w", dict(r=2), np.repeat(X[0, 0], 2, axis=0)),
    ("h w -> (h h2) (w w2)", dict(h2=2, w2=3), np.repeat(np.repeat(X[0, 0], 2, 0), 3, 1)),
    ("h w -> 2 w h", {}, np.stack([X[0, 0].T] * 2)),
    ("... -> c ... d", dict(c=2, d=3), np.broadcast_to(X[0, 0][None, :, :, None], (2, 4, 6, 3))),
])
def test_repeat_matches_numpy(pattern, lengths, expected):
    got_np, got_kiln = both(repeat, X[0, 0], pattern, **lengths)
    np.testing.assert_array_equal(got_np, expected)
    np.testing.assert_array_equal(got_kiln, expected)


def test_gradients_flow_through_kiln():
    x_np = R.standard_normal((2, 3, 4))
    x = jt.array(x_np)
    w = R.standard_normal((3, 2, 4))
    y = rearrange(x, "a b c -> b a c")
    np.testing.assert_allclose(jt.grad((y * jt.array(w)).sum(), x).numpy(), w.transpose(1, 0, 2))
    # repeating 3 times: each element's gradient is the sum of its copies' weights
    w = R.standard_normal((2, 3, 3, 4))
    y = repeat(x, "a b c -> a r b c", r=3)
    np.testing.assert_allclose(jt.grad((y * jt.array(w)).sum(), x).numpy(), w.sum(axis=1))
    # mean pooling spreads the gradient evenly; max sends it to the maximum
    y = reduce(x, "a b (c c2) -> a b c", "mean", c2=2)
    np.testing.assert_allclose(jt.grad(y.sum(), x).numpy(), np.full(x_np.shape, 0.5))
    g = jt.grad(reduce(x, "a b c -> a", "max").sum(), x).numpy()
    expected = (x_np == x_np.max(axis=(1, 2), keepdims=True)).astype(np.float64)
    np.testing.assert_array_equal(g, expected)


def test_parse_shape_einsum_and_helpers():
    x = jt.array(X)
    assert parse_shape(x, "b _ h w") == {"b": 2, "h": 4, "w": 6}
    assert parse_shape(x, "b ...") == {"b": 2}
    with pytest.raises(RuntimeError, match="different number of dimensions"):
        parse_shape(x, "b h w")
    a, b = R.standard_normal((2, 3)), R.standard_normal((3, 5))
    got = einsum(jt.array(a), jt.array(b), "batch inner, inner out -> batch out")
    np.testing.assert_allclose(got.numpy(), a @ b, rtol=1e-12)
    np.testing.assert_allclose(einsum(a, b, "i j, j k -> k i"), (a @ b).T, rtol=1e-12)
    with pytest.raises(EinopsError, match="unknown axis 'z'"):
        einsum(a, b, "i j, j k -> z")
    np.testing.assert_array_equal(asnumpy(x), X)
    i, j = [d.numpy() for d in _enumerate_directions(jt.zeros((2, 3)))]
    np.testing.assert_array_equal(i, [[0], [1]])
    np.testing.assert_array_equal(j, [[0, 1, 2]])


def test_backends():
    assert isinstance(get_backend(jt.array(X)), JittorBackend)
    assert isinstance(get_backend(X), NumpyBackend)
    with pytest.raises(RuntimeError, match="unknown to einops"):
        get_backend([1, 2])
    tiled = JittorBackend().tile(jt.array(X[0]), (2, 1, 3))
    np.testing.assert_array_equal(tiled.numpy(), np.tile(X[0], (2, 1, 3)))


@pytest.mark.parametrize("call,message", [
    (lambda x: rearrange(x, "b c h w -> b c h"), "only one side"),
    (lambda x: rearrange(x, "b c h w -> b c h w", q=2), "axis 'q' is not used"),
    (lambda x: rearrange(x, "b c h -> b c h"), "expected 3 dims, got 4"),
    (lambda x: rearrange(x, "b c (h h2) w -> b c h h2 w", h2=3), "cannot be split"),
    (lambda x: rearrange(x, "b c (h h2) w -> b c h h2 w"), "cannot infer the sizes"),
    (lambda x: rearrange(x, "b (c c2) h w -> b c c2 h w", c2=2), "cannot be split"),
    (lambda x: rearrange(x, "b c h w -> b c (h w"), "unclosed"),
    (lambda x: rearrange(x, "b c h w -> b c ((h) w)"), "nested parentheses"),
    (lambda x: rearrange(x, "b b h w -> b h w"), "appears twice"),
    (lambda x: rearrange(x, "b (c ...) -> b c ..."), "ellipsis inside parentheses"),
    (lambda x: rearrange(x, "b c h w -> b c h w ..."), "ellipsis on the right side but not"),
    (lambda x: rearrange(x, "b c h w_ -> b c h w_"), "must not start or end with an underscore"),
    (lambda x: rearrange(x, "b c h w"), "'left -> right'"),
    (lambda x: repeat(x, "b c h w -> b c h w r"), "sizes of the new axes"),
    (lambda x: reduce(x, "b c h w -> b c z", "sum"), "does not have"),
    (lambda x: reduce(x, "b c h w -> b", "median"), "unknown reduction"),
])
def test_bad_patterns_raise_einops_errors(call, message):
    with pytest.raises(EinopsError, match=message):
        call(jt.array(X))


def test_rearrange_and_reduce_layers():
    layer = Rearrange("b c (h h2) w -> b (c h2) h w", h2=2)
    x = jt.array(X)
    np.testing.assert_array_equal(layer(x).numpy(),
                                  rearrange(X, "b c (h h2) w -> b (c h2) h w", h2=2))
    assert repr(layer) == "Rearrange('b c (h h2) w -> b (c h2) h w', h2=2)"
    again = pickle.loads(pickle.dumps(layer))
    np.testing.assert_array_equal(again(x).numpy(), layer(x).numpy())
    with pytest.raises(EinopsError, match="cannot be split"):
        layer(jt.array(np.zeros((2, 3, 5, 6))))
    with pytest.raises(EinopsError, match="only one side"):
        Rearrange("a b -> a")                     # checked when the layer is made
    pool = Reduce("b c (h h2) (w w2) -> b c h w", "max", h2=2, w2=2)
    np.testing.assert_array_equal(pool(x).numpy(), jt.nn.MaxPool2d(2)(x).numpy())
    assert pool.parameters() == []
    g = jt.grad(Reduce("... -> ", "sum")(layer(x)), x)
    np.testing.assert_array_equal(g.numpy(), np.ones(X.shape))


def test_einmix_layer():
    jt.set_seed(3)
    mix = EinMix("b (t c) -> b t d", weight_shape="c d", bias_shape="d", t=2, c=3, d=4)
    assert mix.einsum_pattern == "abc,cd->abd"
    assert [tuple(p.shape) for p in mix.parameters()] == [(3, 4), (1, 1, 4)]
    bound = (3 / 3) ** 0.5                        # fan_in = c = 3
    assert np.all(np.abs(mix.weight.numpy()) <= bound)
    x_np = R.standard_normal((5, 6)).astype(np.float32)
    w, b = mix.weight.numpy(), mix.bias.numpy()
    expected = np.einsum("btc,cd->btd", x_np.reshape(5, 2, 3), w) + b
    np.testing.assert_allclose(mix(jt.array(x_np)).numpy(), expected, rtol=1e-5, atol=1e-6)
    x = jt.array(x_np)
    gw = jt.grad(mix(x).sum(), mix.weight).numpy()
    np.testing.assert_allclose(gw, np.einsum("btc,btd->cd", x_np.reshape(5, 2, 3),
                                             np.ones((5, 2, 4))), rtol=1e-5)
    merged = EinMix("b c -> (b d)", weight_shape="c d", c=6, d=2)
    assert merged(x).shape == (10,) and merged.bias is None
    # a state dict moves the weights to another EinMix of the same pattern
    other = EinMix("b (t c) -> b t d", weight_shape="c d", bias_shape="d", t=2, c=3, d=4)
    other.load_state_dict(mix.state_dict())
    np.testing.assert_array_equal(other(x).numpy(), mix(x).numpy())
    with pytest.raises(EinopsError, match="size of the weight's axis 'd'"):
        EinMix("b c -> b d", weight_shape="c d", c=3)
    with pytest.raises(EinopsError, match="ellipsis"):
        EinMix("b ... c -> b ... d", weight_shape="c d", c=3, d=2)
