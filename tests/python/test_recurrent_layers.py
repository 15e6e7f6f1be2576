"""Recurrent layers, multi-head attention and weight norm against independent
float64 NumPy implementations of PyTorch's equations (LSTM gates i, f, g, o;
GRU gates r, z, n), central finite differences for gradients, PyTorch's
parameter names and shapes, and (when PyTorch is installed) PyTorch itself."""
import math

import numpy as np
import pytest

import kiln as jt
from kiln import nn
from kiln.attention import MultiheadAttention as JittorMultiheadAttention
from kiln.weightnorm import remove_weight_norm, weight_norm
from ktest import numeric_grads
from nnref import compare, torch

R = np.random.default_rng(7)
T, B, I, H, P = 3, 2, 4, 5, 3       # steps, batch, input, hidden, projection sizes


def rand(*shape, low=-1.0, high=1.0):
    return R.uniform(low, high, size=shape)


def sig(x):
    return 1 / (1 + np.exp(-x))


# ---- the NumPy reference ----

def np_step(mode, x, h, c, p, sfx=""):
    """One step of PyTorch's equations; p maps parameter names to arrays."""
    w_ih, w_hh = p["weight_ih" + sfx], p["weight_hh" + sfx]
    b_ih, b_hh = p.get("bias_ih" + sfx, 0.0), p.get("bias_hh" + sfx, 0.0)
    if mode == "LSTM":
        gates = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        i, f, g, o = np.split(gates, 4, -1)
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(c)
        if "weight_hr" + sfx in p:
            h = h @ p["weight_hr" + sfx].T
        return h, c
    if mode == "GRU":
        i_r, i_z, i_n = np.split(x @ w_ih.T + b_ih, 3, -1)
        h_r, h_z, h_n = np.split(h @ w_hh.T + b_hh, 3, -1)
        r, z = sig(i_r + h_r), sig(i_z + h_z)
        n = np.tanh(i_n + r * h_n)
        return (1 - z) * n + z * h, None
    pre = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    return (np.tanh(pre) if mode == "RNN_TANH" else np.maximum(pre, 0)), None


def np_layers(mode, p, x, h0, c0, num_layers, bidirectional, drop_between=False):
    """(output, h_n, c_n) for x (T, B, features), states (layers * dirs, B, .).
    drop_between: every layer after the first sees zeros (dropout p=1)."""
    dirs = 2 if bidirectional else 1
    hn, cn = [], []
    for layer in range(num_layers):
        outs = []
        for d in range(dirs):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            k = layer * dirs + d
            h, c = h0[k], (c0[k] if c0 is not None else None)
            ys = [None] * x.shape[0]
            for t in (range(x.shape[0] - 1, -1, -1) if d else range(x.shape[0])):
                h, c = np_step(mode, x[t], h, c, p, sfx)
                ys[t] = h
            outs.append(np.stack(ys))
            hn.append(h)
            cn.append(c)
        x = np.concatenate(outs, -1)
        if drop_between and layer < num_layers - 1:
            x = np.zeros_like(x)
    return x, np.stack(hn), (np.stack(cn) if mode == "LSTM" else None)


def params_of(m):
    return {k: v.numpy() for k, v in m.state_dict().items()}


# ---- cells ----

@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_cell(nonlinearity):
    cell = nn.RNNCell(I, H, nonlinearity=nonlinearity).double()
    x, h = rand(B, I), rand(B, H)
    mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
    want, _ = np_step(mode, x, h, None, params_of(cell))
    np.testing.assert_allclose(cell(jt.array(x), jt.array(h)).numpy(), want, rtol=1e-10)
    zero_state, _ = np_step(mode, x, np.zeros((B, H)), None, params_of(cell))
    np.testing.assert_allclose(cell(jt.array(x)).numpy(), zero_state, rtol=1e-10)
    # unbatched: one sample, no batch dim
    np.testing.assert_allclose(cell(jt.array(x[0]), jt.array(h[0])).numpy(), want[0],
                               rtol=1e-10)


def test_lstm_cell():
    cell = nn.LSTMCell(I, H).double()
    x, h, c = rand(B, I), rand(B, H), rand(B, H)
    wh, wc = np_step("LSTM", x, h, c, params_of(cell))
    gh, gc = cell(jt.array(x), (jt.array(h), jt.array(c)))
    np.testing.assert_allclose(gh.numpy(), wh, rtol=1e-10)
    np.testing.assert_allclose(gc.numpy(), wc, rtol=1e-10)
    zh, zc = np_step("LSTM", x, np.zeros((B, H)), np.zeros((B, H)), params_of(cell))
    gh, gc = cell(jt.array(x))
    np.testing.assert_allclose(gh.numpy(), zh, rtol=1e-10)
    np.testing.assert_allclose(gc.numpy(), zc, rtol=1e-10)


def test_gru_cell_with_and_without_bias():
    for bias in (True, False):
        cell = nn.GRUCell(I, H, bias=bias).double()
        x, h = rand(B, I), rand(B, H)
        want, _ = np_step("GRU", x, h, None, params_of(cell))
        np.testing.assert_allclose(cell(jt.array(x), jt.array(h)).numpy(), want, rtol=1e-10)
    assert "bias_ih" not in cell.state_dict()


def test_cell_gradient_finite_differences():
    cell = nn.GRUCell(I, H).double()
    x, h = rand(B, I), rand(B, H)
    w = R.uniform(0.5, 1.5, size=(B, H))
    weight = cell.weight_hh

    def loss_of(arrays):
        weight.update(jt.array(arrays[2]))
        return float((cell(jt.array(arrays[0]), jt.array(arrays[1])) * jt.array(w)).sum().item())

    w_hh = weight.numpy()
    numeric = numeric_grads(loss_of, [x, h, w_hh])
    weight.update(jt.array(w_hh))
    xs = [jt.array(x), jt.array(h)]
    loss = (cell(*xs) * jt.array(w)).sum()
    for got, want in zip(jt.grad(loss, xs + [weight]), numeric):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-8)


# ---- layers ----

LAYER_CASES = [
    # (class, mode, keywords)
    ("RNN", "RNN_TANH", dict()),
    ("RNN", "RNN_RELU", dict(nonlinearity="relu", num_layers=2)),
    ("RNN", "RNN_TANH", dict(num_layers=2, bidirectional=True, bias=False)),
    ("LSTM", "LSTM", dict()),
    ("LSTM", "LSTM", dict(num_layers=2, bidirectional=True, batch_first=True)),
    ("LSTM", "LSTM", dict(proj_size=P)),
    ("LSTM", "LSTM", dict(proj_size=P, num_layers=2, bidirectional=True)),
    ("GRU", "GRU", dict(num_layers=2, batch_first=True)),
    ("GRU", "GRU", dict(bidirectional=True, bias=False)),
]


def run_layer(m, x, with_state, mode, kw):
    """kiln's outputs and the NumPy reference's for input x (T, B, I)."""
    layers, dirs = kw.get("num_layers", 1), 2 if kw.get("bidirectional") else 1
    out_size = kw.get("proj_size") or H
    h0 = rand(layers * dirs, B, out_size) if with_state else np.zeros((layers * dirs, B, out_size))
    c0 = rand(layers * dirs, B, H) if with_state else np.zeros((layers * dirs, B, H))
    want = np_layers(mode, params_of(m), x, h0, c0 if mode == "LSTM" else None, layers,
                     dirs == 2)
    xin = np.swapaxes(x, 0, 1) if kw.get("batch_first") else x
    state = None
    if with_state:
        state = (jt.array(h0), jt.array(c0)) if mode == "LSTM" else jt.array(h0)
    y, hn = m(jt.array(xin)) if state is None else m(jt.array(xin), state)
    got = [y.numpy(), hn[0].numpy(), hn[1].numpy()] if mode == "LSTM" else [y.numpy(),
                                                                           hn.numpy()]
    if kw.get("batch_first"):
        got[0] = np.swapaxes(got[0], 0, 1)
    return got, want


@pytest.mark.parametrize("cls,mode,kw", LAYER_CASES)
@pytest.mark.parametrize("with_state", [True, False])
def test_layer_matches_numpy(cls, mode, kw, with_state):
    m = getattr(nn, cls)(I, H, **kw).double()
    got, want = run_layer(m, rand(T, B, I), with_state, mode, kw)
    layers, dirs = kw.get("num_layers", 1), 2 if kw.get("bidirectional") else 1
    out_size = kw.get("proj_size") or H
    assert got[0].shape == (T, B, dirs * out_size)
    assert got[1].shape == (layers * dirs, B, out_size)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)


def test_unbatched_sequence():
    m = nn.LSTM(I, H, bidirectional=True, proj_size=P).double()
    x, h0, c0 = rand(T, I), rand(2, P), rand(2, H)
    want_y, want_h, want_c = np_layers("LSTM", params_of(m), x[:, None], h0[:, None],
                                       c0[:, None], 1, True)
    y, (h, c) = m(jt.array(x), (jt.array(h0), jt.array(c0)))
    assert y.shape == (T, 2 * P) and h.shape == (2, P) and c.shape == (2, H)
    np.testing.assert_allclose(y.numpy(), want_y[:, 0], rtol=1e-9)
    np.testing.assert_allclose(h.numpy(), want_h[:, 0], rtol=1e-9)
    np.testing.assert_allclose(c.numpy(), want_c[:, 0], rtol=1e-9)


def test_dropout_acts_between_layers_in_training_only():
    m = nn.GRU(I, H, num_layers=2, dropout=1.0).double()
    x = rand(T, B, I)
    zeros = np.zeros((2, B, H))
    p = params_of(m)
    y_eval, _ = m.eval()(jt.array(x))
    np.testing.assert_allclose(y_eval.numpy(), np_layers("GRU", p, x, zeros, None, 2, False)[0],
                               rtol=1e-9)
    # p=1 drops all of layer 0's output, so layer 1 runs on zeros; the last layer's
    # output is not dropped
    y_train, h_train = m.train()(jt.array(x))
    want_y, want_h, _ = np_layers("GRU", p, x, zeros, None, 2, False, drop_between=True)
    np.testing.assert_allclose(y_train.numpy(), want_y, rtol=1e-9)
    np.testing.assert_allclose(h_train.numpy(), want_h, rtol=1e-9)
    assert np.abs(y_train.numpy()).min() > 0


@pytest.mark.parametrize("cls,kw,weight_name", [
    ("LSTM", dict(proj_size=P), "weight_hr_l0"),
    ("GRU", dict(num_layers=2), "weight_ih_l1"),
    ("RNN", dict(bidirectional=True, batch_first=True), "weight_hh_l0_reverse"),
])
def test_layer_gradient_finite_differences(cls, kw, weight_name):
    """d(loss)/d(input) and d(loss)/d(one weight) of loss = sum(output * w1) +
    sum(h_n * w2) (+ sum(c_n * w3)) against central differences of kiln's forward."""
    m = getattr(nn, cls)(I, H, **kw).double()
    weight = getattr(m, weight_name)
    x = rand(B, T, I) if kw.get("batch_first") else rand(T, B, I)
    y0, s0 = m(jt.array(x))
    states = list(s0) if cls == "LSTM" else [s0]
    ws = [R.uniform(0.5, 1.5, size=v.shape) for v in [y0] + states]

    def loss_var(xv):
        y, s = m(xv)
        outs = [y] + (list(s) if cls == "LSTM" else [s])
        return sum((o * jt.array(w)).sum() for o, w in zip(outs, ws))

    def loss_of(arrays):
        weight.update(jt.array(arrays[1]))
        return float(loss_var(jt.array(arrays[0])).item())

    w0 = weight.numpy()
    numeric = numeric_grads(loss_of, [x, w0])
    weight.update(jt.array(w0))
    xv = jt.array(x)
    got = jt.grad(loss_var(xv), [xv, weight])
    for g, n, what in zip(got, numeric, ["input", weight_name]):
        np.testing.assert_allclose(g.numpy(), n, rtol=1e-6, atol=1e-8, err_msg=what)


# ---- parameters: PyTorch's names, shapes and initialisation ----

def test_parameter_names_shapes_and_state_dict_round_trip():
    m = nn.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=P)
    G = 4 * H
    expected = []
    for layer, layer_in in ((0, I), (1, 2 * P)):
        for sfx in (f"_l{layer}", f"_l{layer}_reverse"):
            expected += [("weight_ih" + sfx, (G, layer_in)), ("weight_hh" + sfx, (G, P)),
                         ("bias_ih" + sfx, (G,)), ("bias_hh" + sfx, (G,)),
                         ("weight_hr" + sfx, (P, H))]
    assert [(k, tuple(v.shape)) for k, v in m.state_dict().items()] == expected
    assert len(m.parameters()) == len(expected)

    gru = nn.GRU(I, H, bias=False)
    assert [(k, tuple(v.shape)) for k, v in gru.state_dict().items()] == [
        ("weight_ih_l0", (3 * H, I)), ("weight_hh_l0", (3 * H, H))]
    assert [(k, tuple(v.shape)) for k, v in nn.RNNCell(I, H).state_dict().items()] == [
        ("weight_ih", (H, I)), ("weight_hh", (H, H)), ("bias_ih", (H,)), ("bias_hh", (H,))]

    # a state dict of plain arrays loads into a fresh layer, which then computes the same
    m.double()
    state = {k: v.numpy() for k, v in m.state_dict().items()}
    m2 = nn.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=P).double()
    m2.load_state_dict(state)
    x = jt.array(rand(T, B, I))
    np.testing.assert_array_equal(m(x)[0].numpy(), m2(x)[0].numpy())
    with pytest.raises(RuntimeError, match="weight_hr_l0"):
        nn.LSTM(I, H, num_layers=2, bidirectional=True).load_state_dict(state)


def test_initialisation_is_uniform_in_one_over_sqrt_hidden():
    m = nn.GRU(I, 25, num_layers=2)
    bound = 1 / math.sqrt(25)
    values = np.concatenate([p.numpy().ravel() for p in m.parameters()])
    assert np.abs(values).max() <= bound
    # spread over the whole range, not a constant
    assert values.min() < -0.8 * bound and values.max() > 0.8 * bound
    assert abs(values.mean()) < 0.1 * bound


def test_loads_pytorch_state_dict_and_matches_pytorch():
    t = torch()
    kw = dict(num_layers=2, bidirectional=True, proj_size=P)
    tm, m = t.nn.LSTM(I, H, **kw).double(), nn.LSTM(I, H, **kw).double()
    m.load_state_dict(tm.state_dict())
    x, h0, c0 = rand(T, B, I), rand(4, B, P), rand(4, B, H)
    ty, (th, tc) = tm(t.from_numpy(x), (t.from_numpy(h0), t.from_numpy(c0)))
    y, (h, c) = m(jt.array(x), (jt.array(h0), jt.array(c0)))
    for a, b in ((y, ty), (h, th), (c, tc)):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-9, atol=1e-12)
    # every parameter's gradient too
    compare(nn.GRU(I, H, num_layers=2), t.nn.GRU(I, H, num_layers=2), rand(T, B, I),
            call=lambda layer, x: layer(x)[0])


def test_errors_name_the_layer_and_shapes():
    m = nn.LSTM(I, H, proj_size=P)
    with pytest.raises(ValueError, match=r"LSTM: input.size\(-1\) .* Expected 4, got 6"):
        m(jt.zeros((T, B, 6)))
    with pytest.raises(ValueError, match=r"LSTM: expected hx\[0\] \(h_0\) of shape \(1, 2, 3\), "
                                         r"got \(1, 2, 5\)"):
        m(jt.zeros((T, B, I)), (jt.zeros((1, B, H)), jt.zeros((1, B, H))))
    with pytest.raises(ValueError, match="GRU: expected hx of shape"):
        nn.GRU(I, H)(jt.zeros((T, B, I)), jt.zeros((2, B, H)))
    with pytest.raises(ValueError, match="proj_size .* smaller than hidden_size"):
        nn.LSTM(I, H, proj_size=H)
    with pytest.raises(ValueError, match="GRUCell: expected hx of shape \\(2, 5\\)"):
        nn.GRUCell(I, H)(jt.zeros((B, I)), jt.zeros((B, 4)))
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(I, H, nonlinearity="sigmoid")


# ---- attention ----

def np_attention(q, k, v, W, b, Wo, bo, heads, mask=None):
    """softmax(Q K^T / sqrt(d) + mask) V per head, sequence-first (L, N, E);
    W = (W_q, W_k, W_v), b likewise; mask additive, (N, heads, L, S)."""
    Q, K, V = (x @ w.T + bb for x, w, bb in zip((q, k, v), W, b))
    L, N, E = Q.shape
    d = E // heads

    def split(x):                                   # (len, N, E) -> (N, heads, len, d)
        return x.reshape(x.shape[0], N, heads, d).transpose(1, 2, 0, 3)

    scores = split(Q) @ split(K).transpose(0, 1, 3, 2) / math.sqrt(d)
    if mask is not None:
        scores = scores + mask
    e = np.exp(scores - scores.max(-1, keepdims=True))
    weights = e / e.sum(-1, keepdims=True)
    out = (weights @ split(V)).transpose(2, 0, 1, 3).reshape(L, N, E)
    return out @ Wo.T + bo, weights


def torch_mha_reference(m, q, k, v, mask=None):
    """np_attention with nn.MultiheadAttention m's parameters."""
    p = params_of(m)
    return np_attention(q, k, v, np.split(p["in_proj_weight"], 3),
                        np.split(p["in_proj_bias"], 3), p["out_proj.weight"],
                        p["out_proj.bias"], m.num_heads, mask)


def test_attention_parameter_names():
    m = nn.MultiheadAttention(8, 2)
    assert [(k, tuple(v.shape)) for k, v in m.state_dict().items()] == [
        ("in_proj_weight", (24, 8)), ("in_proj_bias", (24,)), ("out_proj.weight", (8, 8)),
        ("out_proj.bias", (8,))]
    m = nn.MultiheadAttention(8, 2, kdim=6, vdim=5, add_bias_kv=True)
    assert [(k, tuple(v.shape)) for k, v in m.state_dict().items()] == [
        ("q_proj_weight", (8, 8)), ("k_proj_weight", (8, 6)), ("v_proj_weight", (8, 5)),
        ("in_proj_bias", (24,)), ("bias_k", (1, 1, 8)), ("bias_v", (1, 1, 8)),
        ("out_proj.weight", (8, 8)), ("out_proj.bias", (8,))]
    assert np.all(m.in_proj_bias.numpy() == 0) and np.all(m.out_proj.bias.numpy() == 0)
    j = JittorMultiheadAttention(8, 2)
    assert list(j.state_dict()) == ["k_proj.weight", "k_proj.bias", "v_proj.weight",
                                    "v_proj.bias", "q_proj.weight", "q_proj.bias",
                                    "out_proj.weight", "out_proj.bias"]


def test_attention_matches_numpy():
    m = nn.MultiheadAttention(8, 2).double()
    q, k, v = rand(3, B, 8), rand(4, B, 8), rand(4, B, 8)
    want_out, want_w = torch_mha_reference(m, q, k, v)
    out, w = m(jt.array(q), jt.array(k), jt.array(v))
    np.testing.assert_allclose(out.numpy(), want_out, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(w.numpy(), want_w.mean(1), rtol=1e-9)
    _, per_head = m(jt.array(q), jt.array(k), jt.array(v), average_attn_weights=False)
    np.testing.assert_allclose(per_head.numpy(), want_w, rtol=1e-9)
    out, none = m(jt.array(q), jt.array(k), jt.array(v), need_weights=False)
    assert none is None
    np.testing.assert_allclose(out.numpy(), want_out, rtol=1e-9, atol=1e-12)


def test_attention_masks():
    m = nn.MultiheadAttention(8, 2).double()
    q, k = rand(3, B, 8), rand(4, B, 8)
    attn_mask = np.array([[0, 1, 1, 0], [0, 0, 1, 1], [1, 0, 0, 0]], dtype=bool)
    padding = np.array([[0, 0, 0, 1], [0, 1, 0, 0]], dtype=bool)
    # bool masks: True is "may not attend" (-inf)
    additive = np.where(attn_mask, -np.inf, 0)[None, None] + \
        np.where(padding, -np.inf, 0)[:, None, None, :]
    want_out, want_w = torch_mha_reference(m, q, k, k, additive)
    out, w = m(jt.array(q), jt.array(k), jt.array(k), attn_mask=jt.array(attn_mask),
               key_padding_mask=jt.array(padding), average_attn_weights=False)
    np.testing.assert_allclose(out.numpy(), want_out, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(w.numpy(), want_w, rtol=1e-9, atol=1e-15)
    assert np.all(w.numpy()[np.broadcast_to(additive, want_w.shape) < 0] == 0)
    # float masks are added; a 3-D mask is per (batch item, head)
    float_mask = rand(B * 2, 3, 4)
    want_out, _ = torch_mha_reference(m, q, k, k, float_mask.reshape(B, 2, 3, 4))
    out, _ = m(jt.array(q), jt.array(k), jt.array(k), attn_mask=jt.array(float_mask))
    np.testing.assert_allclose(out.numpy(), want_out, rtol=1e-9, atol=1e-12)
    # is_causal: position i sees positions <= i
    causal = np.where(np.triu(np.ones((3, 3)), 1) > 0, -np.inf, 0)
    want_out, _ = torch_mha_reference(m, q, q, q, causal)
    out, _ = m(jt.array(q), jt.array(q), jt.array(q), is_causal=True)
    np.testing.assert_allclose(out.numpy(), want_out, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match=r"2-D attn_mask is \(3, 3\), but should be \(3, 4\)"):
        m(jt.array(q), jt.array(k), jt.array(k), attn_mask=jt.zeros((3, 3)))


def test_attention_batch_first_kdim_vdim_and_zero_attn():
    m = nn.MultiheadAttention(8, 4, kdim=6, vdim=5, batch_first=True,
                              add_zero_attn=True).double()
    q, k, v = rand(B, 3, 8), rand(B, 4, 6), rand(B, 4, 5)
    qs, ks, vs = (np.swapaxes(a, 0, 1) for a in (q, k, v))
    # a zero key and value appended after the projections
    p = params_of(m)
    Q = qs @ p["q_proj_weight"].T + p["in_proj_bias"][:8]
    K = np.concatenate([ks @ p["k_proj_weight"].T + p["in_proj_bias"][8:16], np.zeros((1, B, 8))])
    V = np.concatenate([vs @ p["v_proj_weight"].T + p["in_proj_bias"][16:], np.zeros((1, B, 8))])
    eye, zero = np.eye(8), np.zeros(8)
    want_out, want_w = np_attention(Q, K, V, (eye, eye, eye), (zero, zero, zero),
                                    p["out_proj.weight"], p["out_proj.bias"], 4)
    out, w = m(jt.array(q), jt.array(k), jt.array(v))
    np.testing.assert_allclose(out.numpy(), np.swapaxes(want_out, 0, 1), rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(w.numpy(), want_w.mean(1), rtol=1e-9)


def test_jittor_attention_matches_numpy():
    for kw, self_attention in ((dict(), False), (dict(self_attention=True), True)):
        m = JittorMultiheadAttention(8, 2, **kw).double()
        q = rand(3, B, 8)
        k = q if self_attention else rand(4, B, 8)
        v = q if self_attention else rand(4, B, 8)
        p = params_of(m)
        names = ("q_proj", "k_proj", "v_proj")
        want_out, want_w = np_attention(q, k, v, [p[n + ".weight"] for n in names],
                                        [p[n + ".bias"] for n in names], p["out_proj.weight"],
                                        p["out_proj.bias"], 2)
        out, w = m(jt.array(q)) if self_attention else m(jt.array(q), jt.array(k), jt.array(v))
        np.testing.assert_allclose(out.numpy(), want_out, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(w.numpy(), want_w.mean(1), rtol=1e-9)
    _, heads = m(jt.array(q), need_head_weights=True)
    np.testing.assert_allclose(heads.numpy(), want_w.transpose(1, 0, 2, 3), rtol=1e-9)
    # batch_first: the same computation on (batch, length, embed)
    bf = JittorMultiheadAttention(8, 2, self_attention=True, batch_first=True).double()
    bf.load_state_dict(m.state_dict())
    out, _ = bf(jt.array(np.swapaxes(q, 0, 1)))
    np.testing.assert_allclose(out.numpy(), np.swapaxes(want_out, 0, 1), rtol=1e-9, atol=1e-12)


def test_attention_gradient_finite_differences():
    m = nn.MultiheadAttention(4, 2).double()
    q, k = rand(2, 1, 4), rand(3, 1, 4)
    padding = jt.array(np.array([[False, True, False]]))
    w = R.uniform(0.5, 1.5, size=(2, 1, 4))
    weight = m.in_proj_weight

    def loss_var(qv, kv):
        return (m(qv, kv, kv, key_padding_mask=padding)[0] * jt.array(w)).sum()

    def loss_of(arrays):
        weight.update(jt.array(arrays[2]))
        return float(loss_var(jt.array(arrays[0]), jt.array(arrays[1])).item())

    w0 = weight.numpy()
    numeric = numeric_grads(loss_of, [q, k, w0])
    weight.update(jt.array(w0))
    xs = [jt.array(q), jt.array(k)]
    for g, n in zip(jt.grad(loss_var(*xs), xs + [weight]), numeric):
        np.testing.assert_allclose(g.numpy(), n, rtol=1e-6, atol=1e-8)


# ---- weight norm ----

class MatMul(nn.Module):
    def __init__(self, weight):
        super().__init__()
        self.linear = jt.array(weight)

    def execute(self, x):
        return jt.matmul(self.linear, x)


@pytest.mark.parametrize("dim", [-1, 0])
def test_weight_norm_recomputes_weight_from_g_and_v(dim):
    w0 = rand(3, 4)
    m = weight_norm(MatMul(w0), "linear", dim)
    assert list(m.state_dict()) == ["linear_g", "linear_v"]
    assert m.linear_g.shape == ((3, 1) if dim == -1 else (1, 4))
    x = rand(4, 2)
    np.testing.assert_allclose(m(jt.array(x)).numpy(), w0 @ x, rtol=1e-12)
    # new g and v: the next call uses g * v / ||v|| (norm along dim)
    g, v = rand(*m.linear_g.shape, low=0.5, high=2.0), rand(3, 4)
    m.linear_g.update(jt.array(g))
    m.linear_v.update(jt.array(v))
    want_w = g * v / np.sqrt((v * v).sum(dim, keepdims=True))
    np.testing.assert_allclose(m(jt.array(x)).numpy(), want_w @ x, rtol=1e-12)
    np.testing.assert_allclose(m.linear.numpy(), want_w, rtol=1e-12)


def test_weight_norm_gradients_reach_g_and_v():
    m = weight_norm(MatMul(rand(3, 4)), "linear", -1)
    x, r = rand(4, 2), R.uniform(0.5, 1.5, size=(3, 2))
    g, v = m.linear_g, m.linear_v

    def loss_of(arrays):
        g.update(jt.array(arrays[0]))
        v.update(jt.array(arrays[1]))
        return float((m(jt.array(x)) * jt.array(r)).sum().item())

    g0, v0 = g.numpy(), v.numpy()
    numeric = numeric_grads(loss_of, [g0, v0])
    g.update(jt.array(g0))
    v.update(jt.array(v0))
    got = jt.grad((m(jt.array(x)) * jt.array(r)).sum(), [g, v])
    for a, n in zip(got, numeric):
        assert np.abs(a.numpy()).max() > 1e-3
        np.testing.assert_allclose(a.numpy(), n, rtol=1e-6, atol=1e-9)
    # an optimizer step moves g and v, and the weight follows
    opt = jt.optim.SGD(m.parameters(), lr=0.1)
    before = m(jt.array(x)).numpy()
    opt.step((m(jt.array(x)) * jt.array(r)).sum())
    assert not np.allclose(m(jt.array(x)).numpy(), before)


def test_remove_weight_norm_and_errors():
    layer = nn.Linear(4, 3)
    weight_norm(layer, "weight", 0)
    assert list(layer.state_dict()) == ["bias", "weight_g", "weight_v"]
    with pytest.raises(RuntimeError, match="two weight_norm hooks"):
        weight_norm(layer, "weight", 0)
    layer.weight_g.update(layer.weight_g * 2)
    expected = layer.weight_g.numpy() * layer.weight_v.numpy() / np.linalg.norm(
        layer.weight_v.numpy(), axis=0, keepdims=True)
    remove_weight_norm(layer)
    assert list(layer.state_dict()) == ["bias", "weight"]
    np.testing.assert_allclose(layer.weight.numpy(), expected, rtol=1e-6)
    x = rand(2, 4).astype(np.float32)
    np.testing.assert_allclose(layer(jt.array(x)).numpy(),
                               x @ expected.T + layer.bias.numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="weight_norm of 'weight' not found"):
        remove_weight_norm(layer)


def test_forward_hooks():
    layer = nn.Linear(2, 2)
    calls = []
    pre = layer.register_forward_pre_hook(lambda mod, args: (args[0] * 2,))
    post = layer.register_forward_hook(lambda mod, args, out: calls.append(out.shape))
    x = jt.array(np.ones((1, 2), np.float32))
    np.testing.assert_allclose(layer(x).numpy(), nn.linear(x * 2, layer.weight,
                                                           layer.bias).numpy())
    assert calls == [(1, 2)]
    pre.remove()
    post.remove()
    np.testing.assert_allclose(layer(x).numpy(), nn.linear(x, layer.weight, layer.bias).numpy())
    assert calls == [(1, 2)]
