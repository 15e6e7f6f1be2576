"""Helpers of the nn tests: run a kiln layer and the same PyTorch layer (weights
copied through state_dict, so parameter names must match) on one input and
compare outputs and gradients."""
import numpy as np
import pytest

import kiln as jt


def torch():
    """PyTorch, or skip the test."""
    return pytest.importorskip("torch")


def to_torch(t, a):
    return t.from_numpy(np.ascontiguousarray(a))


def copy_to_torch(layer, tlayer):
    """Loads layer's state into tlayer (strict: the names must agree)."""
    t = torch()
    state = {k: to_torch(t, v.numpy()) for k, v in layer.state_dict().items()}
    tlayer.load_state_dict(state, strict=True)


def compare(layer, tlayer, *inputs, rtol=1e-6, atol=1e-8, grads=True, dtype="float64",
            seed=0, call=None):
    """layer(*inputs) against tlayer(*inputs): output, input gradients and
    parameter gradients of sum(out * r) for a fixed random r."""
    t = torch()
    if dtype == "float64":
        layer.double()
        tlayer.double()
    copy_to_torch(layer, tlayer)
    xs = [jt.array(a) for a in inputs]
    for x in xs:
        if x.dtype.is_float and grads:
            x.requires_grad = True   # else a synced output may have dropped x's graph
    txs = [to_torch(t, a) for a in inputs]
    for tx in txs:
        if tx.dtype.is_floating_point and grads:
            tx.requires_grad_(True)
    out = call(layer, *xs) if call else layer(*xs)
    tout = call(tlayer, *txs) if call else tlayer(*txs)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=rtol, atol=atol,
                               err_msg="forward")
    if not grads:
        return out
    r = np.random.default_rng(seed).uniform(0.5, 1.5, size=tout.shape).astype(
        tout.detach().numpy().dtype)
    tlayer.zero_grad()
    (tout * to_torch(t, r)).sum().backward()
    params = dict(layer.named_parameters())
    float_xs = [x for x in xs if x.dtype.is_float]
    loss = (out * jt.array(r)).sum()
    gs = jt.grad(loss, float_xs + list(params.values()))
    tparams = dict(tlayer.named_parameters())
    k = 0
    for x, tx in zip(xs, txs):
        if x.dtype.is_float:
            np.testing.assert_allclose(gs[k].numpy(), tx.grad.numpy(), rtol=rtol, atol=atol,
                                       err_msg="input gradient")
            k += 1
    for name, g in zip(params, gs[k:]):
        tg = tparams[name].grad
        want = np.zeros(g.shape) if tg is None else tg.numpy()
        np.testing.assert_allclose(g.numpy(), want, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of {name}")
    return out
