"""examples/digits_cnn.py, shortened: a few epochs of the CNN on scikit-learn's
digits reach an accuracy far above chance (10%)."""
import importlib.util
import os
import subprocess
import sys

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


TWO_RUNS = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("digits_cnn", sys.argv[1])
demo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(demo)
(xtr, ytr), _ = demo.split(0)
assert xtr.shape == (1437, 1, 8, 8)
print(repr(demo.main(epochs=1, verbose=False)), repr(demo.main(epochs=1, verbose=False)))
"""


def test_digits_cnn_is_reproducible():
    # bit-identical at a fixed thread count: KILN_THREADS pins it (otherwise
    # the count follows the machine's load, and oneDNN's sums follow the count)
    load_example()
    env = dict(os.environ, KILN_THREADS="2", PYTHONPATH=os.path.join(ROOT, "python"))
    out = subprocess.run([sys.executable, "-c", TWO_RUNS, os.path.join(ROOT, "examples", "digits_cnn.py")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    a, b = out.stdout.split()
    assert a == b
