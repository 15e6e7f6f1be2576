"""One ResNet-18 training step (batch 8, 224x224, train-mode batch norm, cross
entropy, SGD with momentum) in kiln (Jittor's optimizer.step(loss)) and
torchvision/PyTorch (backward + step), from the same weights and data; checks
the first step's loss and updated weights agree. Also a new process's time to
its first training step with an empty kernel cache, then with a filled one."""
import tempfile

import numpy as np

from _harness import COMPILE, compare, jt, new_process_seconds, torch, torch_compiled, torch_training_step

import kiln.models as models

FIRST_STEP = """
import time, numpy as np
t0 = time.perf_counter()
import kiln as jt, kiln.models as models
m = models.resnet18()
opt = jt.optim.SGD(m.parameters(), 0.01, momentum=0.9)
x = jt.array(np.zeros((8, 3, 224, 224), np.float32))
y = jt.array(np.arange(8, dtype=np.int64))
loss = jt.nn.cross_entropy_loss(m(x), y)
opt.step(loss)
loss.item()
print(time.perf_counter() - t0)
"""


with tempfile.TemporaryDirectory() as cache:
    cold = new_process_seconds(FIRST_STEP, cache)
    warm = new_process_seconds(FIRST_STEP, cache)
print(f"{'resnet18 first train step, new process':<40} cold {cold:7.2f} s   warm {warm:7.2f} s")

rng = np.random.RandomState(0)
X = rng.rand(8, 3, 224, 224).astype(np.float32)
Y = rng.randint(0, 1000, 8).astype(np.int64)
jt.seed(0)
model = models.resnet18()
opt = jt.optim.SGD(model.parameters(), 0.01, momentum=0.9)
x, y = jt.array(X), jt.array(Y)
loss_fn = jt.nn.CrossEntropyLoss()


def kiln_step():
    loss = loss_fn(model(x), y)
    opt.step(loss)
    return loss.item()


torch_step = compiled_step = None
try:
    import torchvision
except ImportError:
    torchvision = None
if torch is not None and torchvision is not None:
    def torch_trainer(compiled=False):
        """A torchvision copy of the kiln model as it is now, and its step."""
        tmodel = torchvision.models.resnet18()
        tmodel.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()})
        topt = torch.optim.SGD(tmodel.parameters(), 0.01, momentum=0.9)
        tx, ty = torch.from_numpy(X), torch.from_numpy(Y)
        tloss_fn = torch.nn.CrossEntropyLoss()
        forward = torch_compiled(tmodel) if compiled else tmodel
        return tmodel, torch_training_step(forward, topt, tloss_fn, tx, ty)

    if COMPILE:
        _, compiled_step = torch_trainer(compiled=True)
    tmodel, torch_step = torch_trainer()
    kloss = kiln_step()
    tloss = torch_step()
    assert abs(kloss - tloss) <= 1e-3 * abs(tloss), (kloss, tloss)
    kp = dict(model.named_parameters())
    for name, tp in tmodel.named_parameters():
        got, want = kp[name].numpy(), tp.detach().numpy()
        err = np.abs(got - want).max()
        assert err <= 1e-3 * max(1e-2, np.abs(want).max()), f"{name} differs from PyTorch by {err}"
compare("resnet18 train step batch 8", kiln_step, torch_step, compiled_step, repeat=5, warmup=1)
