"""Jittor's own training code runs unchanged with ``import kiln as jt``: the
README's Module example (execute, nn.Relu, nn.SGD, optim.step(loss)) and a
Dataset-driven loop with set_attrs."""
import numpy as np

import kiln as jt
from kiln import Module, nn
from kiln.dataset import Dataset


def test_jittor_readme_example():
    class Model(Module):
        def __init__(self):
            self.layer1 = nn.Linear(1, 10)
            self.relu = nn.Relu()
            self.layer2 = nn.Linear(10, 1)

        def execute(self, x):
            x = self.layer1(x)
            x = self.relu(x)
            x = self.layer2(x)
            return x

    def get_data(n):
        for i in range(n):
            x = np.random.rand(batch_size, 1)
            y = x * x
            yield jt.float32(x), jt.float32(y)

    jt.seed(0)
    learning_rate = 0.1
    batch_size = 50
    n = 400
    model = Model()
    optim = nn.SGD(model.parameters(), learning_rate)
    losses = []
    for i, (x, y) in enumerate(get_data(n)):
        pred_y = model(x)
        dy = pred_y - y
        loss = dy * dy
        loss_mean = loss.mean()
        optim.step(loss_mean)
        losses.append(float(loss_mean.data.sum()))
    assert np.mean(losses[-20:]) < np.mean(losses[:20]) / 10, (losses[:3], losses[-3:])


def test_jittor_dataset_training_loop():
    class Blobs(Dataset):
        def __init__(self):
            super().__init__()
            rng = np.random.RandomState(0)
            self.y = rng.randint(0, 3, 300)
            self.x = (rng.randn(300, 2) * 0.3 + np.eye(3)[self.y][:, :2] * 2).astype(np.float32)
            self.set_attrs(total_len=300, batch_size=30, shuffle=True)

        def __getitem__(self, k):
            return self.x[k], self.y[k]

    jt.seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
    optimizer = jt.optim.Adam(model.parameters(), 0.05)
    data = Blobs()
    for epoch in range(8):
        for x, y in data:
            optimizer.step(nn.cross_entropy_loss(model(x), y))
    model.eval()
    pred, _ = jt.argmax(model(jt.array(data.x)), 1)
    assert (pred.numpy() == data.y).mean() > 0.9


def test_batchnorm_is_train_false_starts_in_eval_mode():
    import numpy as np
    bn = jt.nn.BatchNorm(3, is_train=False)
    x = jt.array(np.random.default_rng(0).standard_normal((4, 3, 2, 2)).astype(np.float32) + 5)
    y = bn(x)
    np.testing.assert_array_equal(bn.running_mean.numpy(), np.zeros(3, np.float32))  # not updated
    np.testing.assert_allclose(y.numpy(), x.numpy() / np.sqrt(1 + 1e-5), rtol=1e-5)  # running stats
    bn.train()
    bn(x)
    assert float(bn.running_mean.numpy().mean()) > 0.3


def test_instance_and_group_norm_take_jittors_is_train():
    import numpy as np
    x = np.random.default_rng(1).standard_normal((2, 4, 3, 3)).astype(np.float32)
    xc = x - x.mean((2, 3), keepdims=True)
    expected = xc / np.sqrt((xc * xc).mean((2, 3), keepdims=True) + 1e-5)
    for layer in (jt.nn.InstanceNorm2d(4, is_train=True), jt.nn.InstanceNorm2d(4, is_train=False),
                  jt.nn.GroupNorm(4, 4, is_train=False)):
        np.testing.assert_allclose(layer(jt.array(x)).numpy(), expected, rtol=1e-4, atol=1e-5)
    assert not jt.nn.InstanceNorm2d(4, is_train=False).training
    # with running statistics, is_train=False means they are used, not updated
    tracked = jt.nn.InstanceNorm2d(4, track_running_stats=True, is_train=False)
    np.testing.assert_allclose(tracked(jt.array(x)).numpy(), x / np.sqrt(1 + 1e-5), rtol=1e-5)
