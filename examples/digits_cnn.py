"""Trains a small CNN on scikit-learn's digits (8x8 images of handwritten
digits, shipped by Debian's python3-sklearn) with kiln's nn.Module, optim,
CrossEntropyLoss and Dataset, and prints the test accuracy (80/20 split,
fixed seed).

    PYTHONPATH=python /usr/bin/python3 examples/digits_cnn.py [epochs]
    mpirun -np 2 -x PYTHONPATH=python /usr/bin/python3 examples/digits_cnn.py   # data-parallel

Conv(1,16,3,p1)-ReLU-MaxPool(2)-Conv(16,32,3,p1)-ReLU-MaxPool(2)-Flatten-
Linear(128,64)-ReLU-Linear(64,10), Adam, batch 32.
"""
import os
import sys
import time

import numpy as np
from sklearn.datasets import load_digits

import kiln as jt
from kiln import nn
from kiln.dataset import Dataset


class Digits(Dataset):
    """The digits as (1, 8, 8) float32 images in [0, 1] and int64 labels."""

    def __init__(self, images, labels, **attrs):
        super().__init__()
        self.images, self.labels = images, labels
        self.set_attrs(**attrs)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    def __len__(self):
        return len(self.labels)


def split(seed=0):
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]      # (n, 1, 8, 8)
    y = digits.target.astype(np.int64)
    order = np.random.RandomState(seed).permutation(len(x))
    x, y = x[order], y[order]
    cut = int(0.8 * len(x))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 2 * 2, 64), nn.ReLU(), nn.Linear(64, 10))

    def execute(self, x):
        return self.classifier(self.features(x))


def evaluate(model, data):
    """The accuracy on data; under mpirun each rank scores its share of the
    test set and the counts are summed across ranks."""
    model.eval()
    correct = total = 0
    with jt.no_grad():
        for x, y in data:
            pred = model(x).numpy().argmax(1)
            correct += int((pred == y.numpy()).sum())
            total += len(pred)
    model.train()
    correct, total = jt.mpi_all_reduce(jt.array([correct, total], "int64")).numpy()
    return correct / total


def main(epochs=15, batch_size=32, lr=2e-3, seed=0, verbose=True):
    jt.seed(seed)
    (xtr, ytr), (xte, yte) = split(seed)
    train = Digits(xtr, ytr, batch_size=batch_size, shuffle=True)
    test = Digits(xte, yte, batch_size=256)
    model = Net()
    optimizer = jt.optim.Adam(model.parameters(), lr)
    scheduler = jt.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    loss_fn = nn.CrossEntropyLoss()
    start = time.time()
    for epoch in range(epochs):
        total, n = 0.0, 0
        for x, y in train:
            loss = loss_fn(model(x), y)
            optimizer.step(loss)
            total += loss.item() * len(y)
            n += len(y)
        scheduler.step()
        if verbose and jt.rank == 0 and (epoch % 5 == 4 or epoch == epochs - 1):
            print(f"epoch {epoch + 1:2d}: loss {total / n:.4f}")
    accuracy = evaluate(model, test)
    if verbose and jt.rank == 0:
        print(f"test accuracy {accuracy * 100:.2f}% ({len(yte)} images, "
              f"{time.time() - start:.1f} s training, OMP_NUM_THREADS="
              f"{os.environ.get('OMP_NUM_THREADS', 'unset')})")
    return accuracy


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
