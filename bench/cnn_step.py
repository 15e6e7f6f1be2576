"""One training step of a small CNN on 8x8 images, batch 64 (the
examples/digits_cnn.py network: Conv(1,16,3,p1)-ReLU-MaxPool-Conv(16,32,3,p1)-
ReLU-MaxPool-Flatten-Linear(128,64)-ReLU-Linear(64,10), cross entropy, Adam),
in kiln and PyTorch (eager, and the model under torch.compile) from the same
initial weights and data; every step reads its loss with item(). Checks that
a few steps agree, then prints the median step times."""
import numpy as np

from _harness import COMPILE, compare, jt, torch, torch_compiled, torch_training_step

rng = np.random.RandomState(0)
X = rng.rand(64, 1, 8, 8).astype(np.float32)
Y = rng.randint(0, 10, 64).astype(np.int64)


def layers(nn):
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))


jt.seed(0)
model = layers(jt.nn)
opt = jt.optim.Adam(model.parameters(), 1e-3)
x, y = jt.array(X), jt.array(Y)
loss_fn = jt.nn.CrossEntropyLoss()


def kiln_step():
    loss = loss_fn(model(x), y)
    opt.step(loss)
    return loss.item()


def torch_trainer(compiled=False):
    """A PyTorch copy of the kiln model as it is now, and its step function."""
    tmodel = layers(torch.nn)
    tmodel.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in model.state_dict().items()})
    topt = torch.optim.Adam(tmodel.parameters(), 1e-3)
    tx, ty = torch.from_numpy(X), torch.from_numpy(Y)
    tloss_fn = torch.nn.CrossEntropyLoss()
    forward = torch_compiled(tmodel) if compiled else tmodel
    return tmodel, torch_training_step(forward, topt, tloss_fn, tx, ty)


torch_step = compiled_step = None
if torch is not None:
    tmodel, torch_step = torch_trainer()
    for _ in range(3):
        kiln_step()
        torch_step()
    for (name, p), tp in zip(model.named_parameters(), tmodel.parameters()):
        err = np.abs(p.numpy() - tp.detach().numpy()).max()
        assert err < 1e-5, f"{name} differs from PyTorch by {err}"
    if COMPILE:
        _, compiled_step = torch_trainer(compiled=True)
compare("CNN digits b64 train step (Adam)", kiln_step, torch_step, compiled_step, repeat=50)
