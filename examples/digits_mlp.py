"""Trains a small multilayer perceptron on scikit-learn's digits (8x8 images of
handwritten digits, shipped by Debian's python3-sklearn) with kiln's autograd,
and prints the test accuracy.

    PYTHONPATH=python /usr/bin/python3 examples/digits_mlp.py [epochs]
"""
import sys
import time

import numpy as np
from sklearn.datasets import load_digits

import kiln as jt


def load(seed=0):
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.RandomState(seed).permutation(len(x))
    x, y = x[order], y[order]
    cut = int(0.8 * len(x))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def init(n_in, n_out, rng):
    bound = np.sqrt(6.0 / (n_in + n_out))
    w = rng.uniform(-bound, bound, (n_in, n_out)).astype(np.float32)
    return jt.array(w), jt.zeros((n_out,))


def forward(params, x):
    w1, b1, w2, b2 = params
    h = jt.nn.relu(jt.matmul(x, w1) + b1)
    return jt.matmul(h, w2) + b2


def cross_entropy(logits, onehot):
    return -(jt.nn.log_softmax(logits, dim=1) * onehot).sum(dim=1).mean()


def main(epochs=30, batch=64, lr=0.1, momentum=0.9):
    (xtr, ytr), (xte, yte) = load()
    rng = np.random.RandomState(0)
    params = [*init(64, 128, rng), *init(128, 10, rng)]
    velocity = [jt.zeros(p.shape) for p in params]
    start = time.time()
    for epoch in range(epochs):
        order = rng.permutation(len(xtr))
        for i in range(0, len(xtr) - batch + 1, batch):
            idx = order[i:i + batch]
            x = jt.array(xtr[idx])
            onehot = jt.array(np.eye(10, dtype=np.float32)[ytr[idx]])
            loss = cross_entropy(forward(params, x), onehot)
            grads = jt.grad(loss, params)
            for k in range(len(params)):
                velocity[k].update(velocity[k] * momentum + grads[k])
                params[k].update(params[k] - lr * velocity[k])
            jt.sync(params + velocity)
        if epoch % 10 == 9 or epoch == epochs - 1:
            print(f"epoch {epoch + 1}: loss {loss.item():.4f}")
    pred = forward(params, jt.array(xte)).numpy().argmax(axis=1)
    accuracy = (pred == yte).mean()
    print(f"test accuracy {accuracy * 100:.2f}% ({len(yte)} images, {time.time() - start:.1f} s)")
    return accuracy


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
