"""One training step of a small CNN on 8x8 images, batch 64 (the
examples/digits_cnn.py network: Conv(1,16,3,p1)-ReLU-MaxPool-Conv(16,32,3,p1)-
ReLU-MaxPool-Flatten-Linear(128,64)-ReLU-Linear(64,10), cross entropy, Adam),
in kiln and PyTorch with the same initial weights and data. Checks that a few
steps agree, then prints the median step times and the ratio."""
import numpy as np

from _harness import jt, median_time, report, torch

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
    opt.step(loss_fn(model(x), y))


torch_s = None
if torch is not None:
    tmodel = layers(torch.nn)
    tmodel.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in
                            model.state_dict().items()})
    topt = torch.optim.Adam(tmodel.parameters(), 1e-3)
    tx, ty = torch.from_numpy(X), torch.from_numpy(Y)
    tloss_fn = torch.nn.CrossEntropyLoss()

    def torch_step():
        topt.zero_grad()
        tloss_fn(tmodel(tx), ty).backward()
        topt.step()

    for _ in range(3):
        kiln_step()
        torch_step()
    for (name, p), tp in zip(model.named_parameters(), tmodel.parameters()):
        err = np.abs(p.numpy() - tp.detach().numpy()).max()
        assert err < 1e-5, f"{name} differs from PyTorch by {err}"
    torch_s = median_time(torch_step, repeat=50)
report("CNN digits b64 train step (Adam)", median_time(kiln_step, repeat=50), torch_s)
