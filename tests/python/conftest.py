"""KILN_TEST_DEVICE=cuda runs the whole suite on the GPU (scripts/gpu_check.sh):
new vars are made there from the start, and every comparison with NumPy and
PyTorch stays as it is."""
import os

import kiln as jt


def pytest_configure(config):
    device = os.environ.get("KILN_TEST_DEVICE", "cpu")
    if device == "cuda":
        jt.flags.use_cuda = 1  # fails, saying what is missing, without a usable GPU
    elif device != "cpu":
        raise ValueError(f"KILN_TEST_DEVICE={device!r}: expected 'cpu' or 'cuda'")
