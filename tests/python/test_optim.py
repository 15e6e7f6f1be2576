"""Optimizers against torch.optim on the same problem (same initial weights,
same data, a few steps, same values), both training styles, param groups,
state_dict, LR schedulers, gradient clipping, and flat memory over steps."""
import numpy as np
import pytest

import kiln as jt
from kiln import nn
from nnref import copy_to_torch, torch

R = np.random.default_rng(0)
X = R.standard_normal((16, 5))
Y = R.integers(0, 3, 16)


def models(t):
    jt.seed(1)
    ours = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    theirs = t.nn.Sequential(t.nn.Linear(5, 8), t.nn.Tanh(), t.nn.Linear(8, 3)).double()
    copy_to_torch(ours, theirs)
    return ours, theirs


def run(make_ours, make_theirs, steps=5, style="jittor", groups=False):
    t = torch()
    ours, theirs = models(t)
    if groups:
        p_ours = [{"params": ours[0].parameters(), "lr": 0.05}, {"params": ours[2].parameters()}]
        p_theirs = [{"params": list(theirs[0].parameters()), "lr": 0.05},
                    {"params": list(theirs[2].parameters())}]
    else:
        p_ours, p_theirs = ours.parameters(), theirs.parameters()
    opt, topt = make_ours(p_ours), make_theirs(p_theirs)
    x, y = jt.array(X), jt.array(Y)
    tx, ty = t.from_numpy(X), t.from_numpy(Y)
    for _ in range(steps):
        loss = nn.cross_entropy(ours(x), y)
        if style == "jittor":
            opt.step(loss)
        else:
            opt.zero_grad()
            loss.backward()
            opt.step()
        topt.zero_grad()
        t.nn.functional.cross_entropy(theirs(tx), ty).backward()
        topt.step()
        for (name, p), tp in zip(ours.named_parameters(), theirs.parameters()):
            np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-9, atol=1e-12,
                                       err_msg=name)
    return opt, topt


CASES = {
    "sgd": (lambda p: jt.optim.SGD(p, 0.1), lambda p, t: t.optim.SGD(p, 0.1)),
    "sgd_momentum": (lambda p: jt.optim.SGD(p, 0.1, momentum=0.9, weight_decay=1e-2,
                                            dampening=0.1),
                     lambda p, t: t.optim.SGD(p, 0.1, momentum=0.9, weight_decay=1e-2,
                                              dampening=0.1)),
    "sgd_nesterov": (lambda p: jt.optim.SGD(p, 0.1, momentum=0.8, nesterov=True),
                     lambda p, t: t.optim.SGD(p, 0.1, momentum=0.8, nesterov=True)),
    "adam": (lambda p: jt.optim.Adam(p, 0.01), lambda p, t: t.optim.Adam(p, 0.01)),
    "adam_wd_amsgrad": (lambda p: jt.optim.Adam(p, 0.01, betas=(0.8, 0.9), weight_decay=0.1,
                                                amsgrad=True),
                        lambda p, t: t.optim.Adam(p, 0.01, betas=(0.8, 0.9), weight_decay=0.1,
                                                  amsgrad=True)),
    "adamw": (lambda p: jt.optim.AdamW(p, 0.01), lambda p, t: t.optim.AdamW(p, 0.01)),
    "rmsprop": (lambda p: jt.optim.RMSprop(p, 0.01), lambda p, t: t.optim.RMSprop(p, 0.01)),
    "rmsprop_centered_momentum": (
        lambda p: jt.optim.RMSprop(p, 0.01, momentum=0.5, centered=True, weight_decay=0.01),
        lambda p, t: t.optim.RMSprop(p, 0.01, momentum=0.5, centered=True, weight_decay=0.01)),
    "adagrad": (lambda p: jt.optim.Adagrad(p, 0.1, lr_decay=0.01, weight_decay=0.01,
                                           initial_accumulator_value=0.1),
                lambda p, t: t.optim.Adagrad(p, 0.1, lr_decay=0.01, weight_decay=0.01,
                                             initial_accumulator_value=0.1)),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("style", ["jittor", "pytorch"])
def test_matches_torch(name, style):
    t = torch()
    ours, theirs = CASES[name]
    run(ours, lambda p: theirs(p, t), style=style)


@pytest.mark.parametrize("name", ["sgd_momentum", "adam"])
def test_param_groups(name):
    t = torch()
    ours, theirs = CASES[name]
    opt, _ = run(ours, lambda p: theirs(p, t), groups=True)
    assert opt.param_groups[0]["lr"] == 0.05 and opt.param_groups[1]["lr"] == 0.1 or \
        opt.param_groups[1]["lr"] == 0.01


def test_state_dict_resume_matches_uninterrupted():
    t = torch()
    ours, theirs = models(t)
    x, y = jt.array(X), jt.array(Y)
    opt = jt.optim.Adam(ours.parameters(), 0.01)
    for _ in range(3):
        opt.step(nn.cross_entropy(ours(x), y))
    saved_model = {k: v.numpy() for k, v in ours.state_dict().items()}
    saved_opt = opt.state_dict()
    assert saved_opt["state"][0]["step"] == 3 and "exp_avg" in saved_opt["state"][0]
    assert saved_opt["param_groups"][0]["params"] == [0, 1, 2, 3]
    for _ in range(2):
        opt.step(nn.cross_entropy(ours(x), y))
    want = ours.state_dict()["2.weight"].numpy()
    # resume in fresh objects, through jt.save's format (NumPy arrays)
    from kiln.io import to_numpy_tree
    fresh, _ = models(t)
    fresh.load_state_dict(saved_model)
    opt2 = jt.optim.Adam(fresh.parameters(), 0.5)
    opt2.load_state_dict(to_numpy_tree(saved_opt))
    assert opt2.param_groups[0]["lr"] == 0.01
    for _ in range(2):
        opt2.step(nn.cross_entropy(fresh(x), y))
    np.testing.assert_allclose(fresh.state_dict()["2.weight"].numpy(), want, rtol=1e-12)


def test_load_torch_optimizer_state():
    t = torch()
    ours, theirs = models(t)
    topt = t.optim.SGD(theirs.parameters(), 0.1, momentum=0.9)
    for _ in range(2):
        topt.zero_grad()
        t.nn.functional.cross_entropy(theirs(t.from_numpy(X)), t.from_numpy(Y)).backward()
        topt.step()
    ours.load_state_dict(theirs.state_dict())
    opt = jt.optim.SGD(ours.parameters(), 0.1, momentum=0.9)
    opt.load_state_dict(topt.state_dict())
    opt.step(nn.cross_entropy(ours(jt.array(X)), jt.array(Y)))
    topt.zero_grad()
    t.nn.functional.cross_entropy(theirs(t.from_numpy(X)), t.from_numpy(Y)).backward()
    topt.step()
    np.testing.assert_allclose(ours[0].weight.numpy(), theirs[0].weight.detach().numpy(),
                               rtol=1e-9)


def test_frozen_parameters_are_not_updated():
    lin = nn.Linear(3, 2)
    before = lin.weight.numpy()
    lin.weight.requires_grad = False
    opt = jt.optim.SGD(lin.parameters(), 1.0)
    opt.step((lin(jt.ones((2, 3))) ** 2).sum())
    np.testing.assert_array_equal(lin.weight.numpy(), before)


def test_jittor_lr_attribute_and_positional_order():
    lin = nn.Linear(2, 2)
    opt = jt.optim.SGD(lin.parameters(), 0.1, 0.9, 1e-4)       # Jittor: lr, momentum, wd
    assert opt.param_groups[0]["momentum"] == 0.9
    assert opt.param_groups[0]["weight_decay"] == 1e-4
    opt.lr = 0.01
    assert opt.param_groups[0]["lr"] == 0.01 and opt.lr == 0.01
    adam = jt.optim.Adam(lin.parameters(), 1e-3, 1e-6, (0.8, 0.9))  # Jittor: lr, eps, betas
    assert adam.param_groups[0]["eps"] == 1e-6 and adam.param_groups[0]["betas"] == (0.8, 0.9)
    assert jt.nn.SGD is jt.optim.SGD and jt.nn.Adam is jt.optim.Adam


SCHEDULERS = {
    "step": (lambda o, m: m.StepLR(o, 3, 0.5)),
    "multistep": (lambda o, m: m.MultiStepLR(o, [2, 5, 6], 0.3)),
    "exponential": (lambda o, m: m.ExponentialLR(o, 0.9)),
    "cosine": (lambda o, m: m.CosineAnnealingLR(o, 7, eta_min=0.001)),
    "lambda": (lambda o, m: m.LambdaLR(o, lambda e: 1 / (1 + e))),
}


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_schedulers_match_torch(name):
    t = torch()
    ours, theirs = models(t)
    opt = jt.optim.SGD(ours.parameters(), 0.1)
    topt = t.optim.SGD(theirs.parameters(), 0.1)
    s = SCHEDULERS[name](opt, jt.lr_scheduler)
    ts = SCHEDULERS[name](topt, t.optim.lr_scheduler)
    assert jt.optim.lr_scheduler is jt.lr_scheduler
    for _ in range(12):
        assert opt.param_groups[0]["lr"] == pytest.approx(topt.param_groups[0]["lr"],
                                                          rel=1e-12, abs=1e-15)
        assert s.get_last_lr() == pytest.approx(ts.get_last_lr())
        topt.step()
        s.step()
        ts.step()


@pytest.mark.parametrize("norm_type", [2, 1, float("inf")])
def test_clip_grad_norm_matches_torch(norm_type):
    t = torch()
    ours, theirs = models(t)
    loss = nn.cross_entropy(ours(jt.array(X)), jt.array(Y)) * 10
    loss.backward()
    (t.nn.functional.cross_entropy(theirs(t.from_numpy(X)), t.from_numpy(Y)) * 10).backward()
    total = nn.clip_grad_norm_(ours.parameters(), 0.5, norm_type)
    ttotal = t.nn.utils.clip_grad_norm_(theirs.parameters(), 0.5, norm_type)
    assert total.item() == pytest.approx(ttotal.item(), rel=1e-10)
    for p, tp in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-10)


def test_optimizer_clip_grad_norm_jittor_style():
    lin = nn.Linear(3, 1)
    opt = jt.optim.SGD(lin.parameters(), 1.0)
    before = lin.weight.numpy()
    opt.backward((lin(jt.ones((4, 3)) * 100)).sum())
    opt.clip_grad_norm(0.1)
    opt.step()
    delta = np.sqrt(((lin.weight.numpy() - before) ** 2).sum() +
                    0)  # the bias moves too; the joint norm is at most 0.1
    assert delta <= 0.1 + 1e-6
    assert lin.weight.grad is None           # Jittor's step clears what backward made


def _train_steps(model, opt, x, y, n, style):
    for _ in range(n):
        loss = nn.cross_entropy(model(x), y)
        if style == "jittor":
            opt.step(loss)
        else:
            opt.zero_grad()
            loss.backward()
            opt.step()
        del loss


@pytest.mark.parametrize("style", ["jittor", "pytorch"])
@pytest.mark.parametrize("make", [lambda p: jt.optim.SGD(p, 0.1, momentum=0.9),
                                  lambda p: jt.optim.Adam(p, 1e-3)])
def test_memory_is_flat(style, make):
    jt.seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 3))
    opt = make(model.parameters())
    x = jt.array(R.standard_normal((8, 1, 4, 4)).astype(np.float32))
    y = jt.array(R.integers(0, 3, 8))
    _train_steps(model, opt, x, y, 5, style)
    jt.gc()
    c0 = jt.counters()
    _train_steps(model, opt, x, y, 20, style)
    jt.gc()
    c1 = jt.counters()
    assert c1["vars_alive"] == c0["vars_alive"]
    assert c1["bytes_in_use"] == c0["bytes_in_use"]


def test_kept_losses_do_not_hold_their_steps_activations():
    """optimizer.step(loss) computes the loss and frees its graph, as PyTorch
    does after backward: a loss history list must not keep every step's
    activations alive (memory would grow each step)."""
    jt.seed(1)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    opt = jt.optim.SGD(model.parameters(), 0.01, momentum=0.9)
    x = jt.randn(256, 32)
    y = jt.array(np.arange(256) % 4)
    losses, in_use = [], []
    for _ in range(6):
        loss = nn.cross_entropy_loss(model(x), y)
        opt.step(loss)
        losses.append(loss)
        in_use.append(jt.counters()["bytes_in_use"])
    # each kept loss holds its own value (one 64-byte block), nothing more
    assert in_use[-1] - in_use[2] <= 3 * 64, in_use
    assert losses[0].is_computed
    assert float(losses[-1].item()) < float(losses[0].item())


def test_sgd_nesterov_with_dampening_follows_the_formula():
    """Jittor's programs may combine them (PyTorch refuses): buf = m*buf +
    (1-d)*g after a first buf = g, and the step is g + m*buf."""
    w0 = np.array([1.0, -2.0, 0.5])
    p = jt.array(w0)
    opt = jt.optim.SGD([p], 0.1, momentum=0.9, dampening=0.3, nesterov=True)
    ref, buf = w0.copy(), None
    for _ in range(3):
        opt.step((p * p).sum())                   # gradient 2p
        g = 2 * ref
        buf = g if buf is None else 0.9 * buf + 0.7 * g
        ref = ref - 0.1 * (g + 0.9 * buf)
        np.testing.assert_allclose(p.numpy(), ref, rtol=1e-12)
    with pytest.raises(ValueError, match="requires momentum > 0"):
        jt.optim.SGD([p], 0.1, nesterov=True)


@pytest.mark.parametrize("style", ["jittor", "pytorch"])
def test_training_steps_replay_their_plan(style):
    """From the second step on, a training step's syncs replay the plan
    recorded for its graph (src/runtime/step_cache.c): one lookup instead of
    fusion and a description per kernel, the launches' arguments read
    afresh; the values still follow PyTorch's, step by step (run compares)."""
    t = torch()
    ours, theirs = CASES["adam"]
    before = jt.counters()["syncs_replayed"]
    run(ours, lambda p: theirs(p, t), steps=6, style=style)
    assert jt.counters()["syncs_replayed"] - before >= 4


@pytest.mark.parametrize("groups", [False, True])
@pytest.mark.parametrize("name", list(CASES))
def test_the_update_is_one_kernel(name, groups):
    """A step's new parameters and new state (momentum, moments, maxima)
    are one kernel: a parameter's element-wise results share a loop
    (src/opt/siblings.c), the parameter's reading the state's as it is
    made, and the parameters' kernels, one structure whatever their shapes,
    run as one launch (src/runtime/group.c), each with its group's learning
    rate (test_param_groups checks the values)."""
    jt.seed(1)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    params = ([{"params": model[0].parameters(), "lr": 0.05}, {"params": model[2].parameters()}]
              if groups else model.parameters())
    opt = CASES[name][0](params)
    x, y = jt.array(X.astype(np.float32)), jt.array(Y)
    for step in range(2):
        nn.cross_entropy(model(x), y).backward()
        jt.sync([p.grad for p in model.parameters()])    # the gradients apart from the step
        launched = jt.counters()["kernels_launched"]
        opt.step()
        assert jt.counters()["kernels_launched"] - launched == 1, step
