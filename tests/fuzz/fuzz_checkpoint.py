"""fuzz_checkpoint.py: atheris harness for kiln's checkpoint readers (jt.load
on kiln's own pickles, PyTorch's zip and legacy formats; kiln/io/safe_pickle.py
and kiln/io/pth.py). Every input must load or fail with a ValueError (kiln's
CheckpointError / PthError are both); any other exception, a crash, a hang
(-timeout) or an allocation past -rss_limit_mb is a finding. A global a
pickle names must never be called: os.system, eval and friends are replaced
by tripwires for the run.

    python3 fuzz_checkpoint.py [libFuzzer flags] CORPUS_DIR SEED_DIR"""
import builtins
import os
import subprocess
import sys
import tempfile

import atheris

import kiln as jt
from kiln.io import checkpoint as _io, pth as _pth, safe_pickle as _safe_pickle

for _module in (_safe_pickle, _pth, _io):  # coverage of the readers only
    for _f in vars(_module).values():
        if callable(_f) and getattr(_f, "__module__", None) == _module.__name__ and \
                hasattr(_f, "__code__"):
            setattr(_module, _f.__name__, atheris.instrument_func(_f))


class Tripwire(Exception):
    pass


def _tripwire(*args, **kwargs):
    raise Tripwire(f"a checkpoint called a forbidden global with {args!r}")


# what the loaders import lazily is imported now: the tripwires below would
# trip the import machinery (it calls exec)
import argparse  # noqa: E402,F401
try:
    import numpy.dtypes  # noqa: E402,F401  (NumPy >= 1.25)
except ImportError:
    pass

os.system = os.popen = os.execv = os.execvp = os.spawnv = subprocess.Popen = _tripwire
builtins.eval = _tripwire

_PATH = os.path.join(tempfile.mkdtemp(prefix="kiln-fuzz-ckpt-"), "input.bin")


def test_one_input(data):
    with open(_PATH, "wb") as f:
        f.write(data)
    try:
        jt.load(_PATH)
    except ValueError:      # CheckpointError, PthError: the promised failure
        pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
