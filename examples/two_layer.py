"""The two-layer network of Jittor's introduction, run on kiln: learn y = x*x
with sigmoid hidden units, an L2 loss and plain gradient descent through jt.grad.

    PYTHONPATH=python python3 examples/two_layer.py [steps]

Prints the loss as it trains; it falls by well over 10x."""
import sys

import numpy as np

import kiln as jt


def sigmoid(x):
    return 1 / (1 + jt.exp(-x))


class Linear:
    def __init__(self, in_size, out_size):
        self.w = jt.random((in_size, out_size))
        self.b = jt.random((out_size,))

    def __call__(self, x):
        return jt.matmul(x, self.w) + self.b

    def parameters(self):
        return [self.w, self.b]


class Model:
    def __init__(self):
        self.layer1 = Linear(1, 10)
        self.layer2 = Linear(10, 1)

    def __call__(self, x):
        x = self.layer1(x)
        x = sigmoid(x)
        return self.layer2(x)

    def parameters(self):
        return self.layer1.parameters() + self.layer2.parameters()


def get_data(n, batch_size):
    for _ in range(n):
        x = np.random.rand(batch_size, 1)
        y = x * x
        yield jt.float32(x), jt.float32(y)


def train(steps=1000, batch_size=50, learning_rate=0.1, log_every=100):
    np.random.seed(0)
    jt.seed(3)
    model = Model()
    losses = []
    for i, (x, y) in enumerate(get_data(steps, batch_size)):
        pred_y = model(x)
        loss = (pred_y - y) ** 2
        loss_mean = loss.mean()
        ps = model.parameters()
        gs = jt.grad(loss_mean, ps)
        for p, g in zip(ps, gs):
            p -= g * learning_rate
        jt.sync(ps + [loss_mean])   # the step's update and loss in one go
        losses.append(loss_mean.item())
        if i % log_every == 0 or i == steps - 1:
            print(f"step {i:4d}  loss {losses[-1]:.6f}")
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    print(f"loss fell from {first:.6f} to {last:.6f} ({first / last:.1f}x)")
    return losses


if __name__ == "__main__":
    train(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
