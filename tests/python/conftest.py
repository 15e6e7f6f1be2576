"""KILN_TEST_DEVICE=cuda runs the whole suite on the GPU (scripts/gpu_check.sh),
and KILN_TEST_DEVICE=cuda-emulate on the CUDA backend's emulator (its kernels
compiled for the CPU): new vars are made there from the start, and every
comparison with NumPy and PyTorch stays as it is."""
import os

from kiln import _C


def pytest_configure(config):
    device = os.environ.get("KILN_TEST_DEVICE", "cpu")
    if device not in ("cpu", "cuda", "cuda-emulate"):
        raise ValueError(f"KILN_TEST_DEVICE={device!r}: expected 'cpu', 'cuda' or 'cuda-emulate'")
    _C.set_device(device)  # fails, saying what is missing, without a usable GPU
