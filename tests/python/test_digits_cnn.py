"""examples/digits_cnn.py, shortened: a few epochs of the CNN on scikit-learn's
digits reach an accuracy far above chance (10%)."""
import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_example():
    pytest.importorskip("sklearn")
    path = os.path.join(ROOT, "examples", "digits_cnn.py")
    spec = importlib.util.spec_from_file_location("digits_cnn", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_digits_cnn_learns():
    demo = load_example()
    accuracy = demo.main(epochs=3, verbose=False)
    assert accuracy >= 0.85, accuracy


def test_digits_cnn_is_reproducible():
    demo = load_example()
    (xtr, ytr), _ = demo.split(0)
    assert xtr.shape == (1437, 1, 8, 8)
    a = demo.main(epochs=1, verbose=False)
    b = demo.main(epochs=1, verbose=False)
    assert a == b
