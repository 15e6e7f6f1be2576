"""One training step of an MLP, 784-256-10, batch 64 (Linear-ReLU-Linear,
cross entropy, SGD with momentum), in kiln (nn.Module + optim, Jittor's
optimizer.step(loss)) and PyTorch (backward + step, eager and with the model
under torch.compile), from the same initial weights and data; every step
reads its loss with item(), as a training loop that logs does. Checks that a
few steps agree, then prints the median step times."""
import numpy as np

from _harness import COMPILE, compare, jt, torch, torch_compiled, torch_training_step

rng = np.random.RandomState(0)
X = rng.rand(64, 784).astype(np.float32)
Y = rng.randint(0, 10, 64).astype(np.int64)

jt.seed(0)
model = jt.nn.Sequential(jt.nn.Linear(784, 256), jt.nn.ReLU(), jt.nn.Linear(256, 10))
opt = jt.optim.SGD(model.parameters(), 0.01, momentum=0.9)
x, y = jt.array(X), jt.array(Y)
loss_fn = jt.nn.CrossEntropyLoss()


def kiln_step():
    loss = loss_fn(model(x), y)
    opt.step(loss)
    return loss.item()


def torch_trainer(compiled=False):
    """A PyTorch copy of the kiln model as it is now, and its step function
    (the forward under torch.compile when compiled)."""
    tmodel = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    tmodel.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in model.state_dict().items()})
    topt = torch.optim.SGD(tmodel.parameters(), 0.01, momentum=0.9)
    tx, ty = torch.from_numpy(X), torch.from_numpy(Y)
    tloss_fn = torch.nn.CrossEntropyLoss()
    forward = torch_compiled(tmodel) if compiled else tmodel
    return tmodel, torch_training_step(forward, topt, tloss_fn, tx, ty)


torch_step = compiled_step = None
if torch is not None:
    tmodel, torch_step = torch_trainer()
    for _ in range(3):           # same start, same steps: same weights
        kiln_step()
        torch_step()
    for (name, p), tp in zip(model.named_parameters(), tmodel.parameters()):
        err = np.abs(p.numpy() - tp.detach().numpy()).max()
        assert err < 1e-5, f"{name} differs from PyTorch by {err}"
    if COMPILE:
        _, compiled_step = torch_trainer(compiled=True)
compare("MLP 784-256-10 b64 train step", kiln_step, torch_step, compiled_step, repeat=50)
