"""jt.save / jt.load and Module.load: kiln's own checkpoints go through the
allow-list unpickler (kiln/io/safe_pickle.py), so a file can neither run code
nor make kiln allocate more than the file holds; allow_pickle=True is the
explicit, unsafe way to read arbitrary pickles."""
import base64
import argparse
import collections
import io
import os
import pickle
import pickletools
import tracemalloc
import zipfile

import numpy as np
import pytest

import kiln as jt
from kiln.io import pth as _pth
from kiln.io.safe_pickle import CheckpointError


class _Payload:
    """Unpickling this runs os.system (touches a marker file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class Trusted:
    """A user's class: loadable only with allow_pickle=True."""

    def __init__(self, v):
        self.v = v


class _Peak:
    """The peak of Python-tracked memory (the unpickler's objects, NumPy's
    arrays) inside the block, in MiB: a crafted size that was allocated shows,
    even when the allocation is virtual only."""

    def __enter__(self):
        tracemalloc.start()
        return self

    def __exit__(self, *exc):
        self.mib = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        return False


def test_round_trip_keeps_containers_and_arrays(tmp_path):
    obj = {"w": jt.array(np.arange(6, dtype="float32").reshape(2, 3)),
           "od": collections.OrderedDict(a=np.int64(3), b=[1, 2.5, "s", (None, True)]),
           "set": {1, 2}, "bytes": b"xy", "ba": bytearray(b"z"), "f": np.float32(2.5),
           "args": argparse.Namespace(lr=0.1), "i8": np.arange(4, dtype="int8")}
    p = tmp_path / "o.pkl"
    jt.save(obj, p)
    got = jt.load(p)
    np.testing.assert_array_equal(got["w"], np.arange(6, dtype="float32").reshape(2, 3))
    assert got["od"] == collections.OrderedDict(a=3, b=[1, 2.5, "s", (None, True)])
    assert type(got["od"]) is collections.OrderedDict
    assert got["set"] == {1, 2} and got["bytes"] == b"xy" and got["ba"] == bytearray(b"z")
    assert got["f"] == np.float32(2.5) and got["args"].lr == 0.1
    assert got["i8"].dtype == np.int8


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_plain_pickles_of_arrays_load_at_every_protocol(tmp_path, protocol):
    p = tmp_path / "p.pkl"
    want = {"w": np.ones((2, 3), "float32"), "d": np.arange(5.0), "s": np.float64(1.5)}
    p.write_bytes(pickle.dumps(want, protocol=protocol))
    got = jt.load(p)
    for k, v in want.items():
        np.testing.assert_array_equal(got[k], v)
        assert np.asarray(got[k]).dtype == np.asarray(v).dtype


@pytest.mark.parametrize("how", ["jt.load", "Module.load"])
def test_a_pickle_that_runs_code_is_refused(tmp_path, how):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps({"weight": _Payload(marker)}))
    with pytest.raises(CheckpointError, match=r"refusing to load the global '(posix|os)\.system'"
                       r".*allow_pickle=True") as e:
        if how == "jt.load":
            jt.load(p)
        else:
            jt.nn.Linear(2, 2).load(str(p))
    assert isinstance(e.value, ValueError) and isinstance(e.value, pickle.UnpicklingError)
    assert not marker.exists(), "the payload ran"


def test_a_users_class_needs_allow_pickle(tmp_path):
    p = tmp_path / "t.pkl"
    p.write_bytes(pickle.dumps({"t": Trusted(3)}))
    with pytest.raises(CheckpointError, match="Trusted"):
        jt.load(p)
    assert jt.load(p, allow_pickle=True)["t"].v == 3


# ---- crafted files must not allocate what they declare ----

CRAFTED = {
    # bytearray(2**30) called by the pickle
    "bytearray_by_size": b"\x80\x02c__builtin__\nbytearray\nJ\x00\x00\x00\x40\x85R.",
    "bytes_by_size": b"\x80\x02c__builtin__\nbytes\nJ\x00\x00\x00\x40\x85R.",
    # list(range(2**30))
    "list_of_range": b"\x80\x02c__builtin__\nlist\nc__builtin__\nrange\nJ\x00\x00\x00\x40\x85R\x85R.",
    # a BINBYTES8 / BYTEARRAY8 that declares 2**60 bytes
    "binbytes8": b"\x80\x04\x8e" + (2 ** 33).to_bytes(8, "little") + b"xx.",
    "bytearray8": b"\x80\x05\x96" + (2 ** 33).to_bytes(8, "little") + b"xx.",
    "binunicode8": b"\x80\x04\x8d" + (2 ** 33).to_bytes(8, "little") + b"xx.",
    # an ndarray rebuilt with shape (2**30,)
    "reconstruct": pickle.dumps(np.zeros(3), protocol=2).replace(b"K\x00\x85",
                                                                 b"J\x00\x00\x00\x40\x85"),
    # a memo entry at index 2**28: the C unpickler sizes its memo table to it (2 GB)
    "memo_index": b"\x80\x02Nr\x00\x00\x00\x100N.",
    # a subarray dtype of 4 GB
    "huge_dtype": b"\x80\x02cnumpy\ndtype\nX\x02\x00\x00\x00f4J\x00\x00\x00\x40\x86\x85R.",
}


# frames the length check's walk cannot follow: the C unpickler drops what
# is left of a frame when an opcode reaches past it, and runs bytes the walk
# never read (a fuzzed checkpoint hid a terabyte BYTEARRAY8 behind one)
FRAMED = {
    # a FRAME inside a frame: the walk stops at the STOP left in the outer
    # frame, the C unpickler runs the 8 GB BYTEARRAY8 after it
    "frame_in_frame": b"\x80\x05\x95" + (10).to_bytes(8, "little") + b"\x95" + (11).to_bytes(8, "little") + b"."
                      + b"\x96" + (2 ** 33).to_bytes(8, "little") + b"NN",
    # a string whose bytes run past the end of its frame
    "op_across_frame_end": b"\x80\x05\x95" + (2).to_bytes(8, "little") + b"N\x8c\x02ab0.",
}


@pytest.mark.parametrize("name", sorted(FRAMED))
def test_frames_the_check_cannot_follow_are_refused(tmp_path, name):
    p = tmp_path / "x.pkl"
    p.write_bytes(FRAMED[name])
    with _Peak() as peak, pytest.raises(CheckpointError, match="frame"):
        jt.load(p)
    assert peak.mib < 64, f"the crafted size was allocated ({peak.mib:.0f} MiB)"


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_crafted_sizes_fail_without_allocating(tmp_path, name):
    p = tmp_path / "x.pkl"
    p.write_bytes(CRAFTED[name])
    with _Peak() as peak, pytest.raises(CheckpointError) as e:
        jt.load(p)
    assert str(p) in str(e.value)
    assert peak.mib < 64, f"the crafted size was allocated ({peak.mib:.0f} MiB)"


def test_codecs_encode_only_decodes_text(tmp_path):
    p = tmp_path / "c.pkl"
    p.write_bytes(b"\x80\x02c_codecs\nencode\nX\x02\x00\x00\x00abX\x04\x00\x00\x00zlib\x86R.")
    with pytest.raises(CheckpointError, match="_codecs.encode"):
        jt.load(p)


def test_not_a_pickle(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("hello")
    with pytest.raises(ValueError, match="not a pickle written by kiln.save"):
        jt.load(p)


# ---- PyTorch checkpoints: declared sizes checked against the file ----

def _tensor_pickle(size, stride):
    """_rebuild_tensor_v2(persistent FloatStorage '0' of 4 elements, 0, size, stride)."""
    def tup(v):
        body = b"".join(b"J" + int(x).to_bytes(4, "little", signed=True) for x in v)
        return b"(" + body + b"t"
    return (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n("
            b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\n"
            b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQ"
            b"K\x00" + tup(size) + tup(stride) + b"\x89ccollections\nOrderedDict\n)RtR.")


def _zip(path, pkl, record=np.arange(4, dtype="<f4").tobytes(), compress=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compress) as z:
        z.writestr("ck/data.pkl", pkl)
        z.writestr("ck/data/0", record)
    return path


def test_stride_zero_expansion_is_refused(tmp_path):
    p = _zip(tmp_path / "s0.pth", _tensor_pickle((1 << 27,), (0,)))
    with _Peak() as peak, pytest.raises(_pth.PthError, match="repeats 1 stored elements"):
        jt.load(p)
    assert peak.mib < 64, f"{peak.mib:.0f} MiB allocated"
    # a modest expansion (an expanded tensor saved as such) still loads
    p = _zip(tmp_path / "ok.pth", _tensor_pickle((3, 4), (0, 1)))
    np.testing.assert_array_equal(jt.load(p), np.tile(np.arange(4, dtype="float32"), (3, 1)))


def test_zip_record_that_claims_to_inflate_too_far_is_refused(tmp_path):
    pkl = _tensor_pickle((4,), (1,)).replace(b"K\x04tQ", b"J\x00\x00\x00\x10tQ")  # numel 2**28
    p = _zip(tmp_path / "bomb.pth", pkl, record=bytes(4096), compress=zipfile.ZIP_DEFLATED)
    # the central directory now claims 1 GiB for the record's 4 KiB of deflate
    data = bytearray(p.read_bytes())
    at = data.index(b"PK\x01\x02")
    while data[at + 46:at + 46 + 9] != b"ck/data/0":
        at = data.index(b"PK\x01\x02", at + 4)
    data[at + 24:at + 28] = (1 << 30).to_bytes(4, "little")
    p.write_bytes(bytes(data))
    with _Peak() as peak, pytest.raises(_pth.PthError, match="claims to inflate"):
        jt.load(p)
    assert peak.mib < 64, f"{peak.mib:.0f} MiB allocated"


def test_legacy_storage_size_beyond_the_file(tmp_path):
    torch = pytest.importorskip("torch")
    p = tmp_path / "legacy.pth"
    torch.save({"w": torch.ones(3)}, p, _use_new_zipfile_serialization=False)
    data = bytearray(p.read_bytes())
    f = io.BytesIO(bytes(data))
    for _ in range(5):  # magic, protocol, sys_info, object, key list
        for op, _, _ in pickletools.genops(f):
            pass
    at = f.tell()
    assert int.from_bytes(data[at:at + 8], "little") == 3
    data[at:at + 8] = (1 << 60).to_bytes(8, "little")
    p.write_bytes(bytes(data))
    with _Peak() as peak, pytest.raises(_pth.PthError, match="declares .* bytes, the file has"):
        jt.load(p)
    assert peak.mib < 64, f"{peak.mib:.0f} MiB allocated"


def test_crafted_numpy_states_never_reach_numpy(tmp_path):
    """A dtype state that crashes NumPy's own __setstate__ (a segfault in NumPy
    1.24; found by tests/fuzz/fuzz_checkpoint.py): kiln builds NumPy objects
    itself, so it is refused. In a child process, in case it is not."""
    import subprocess
    import sys
    seed = os.path.join(os.path.dirname(__file__), "..", "fuzz", "seeds", "fuzz_checkpoint",
                        "crash_dtype_state")
    code = ("import kiln as jt, sys\n"
            "try:\n    jt.load(sys.argv[1])\n"
            "except ValueError as e:\n    print('refused:', e)\n")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    run = subprocess.run([sys.executable, "-c", code, seed], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, PYTHONPATH=os.path.join(root, "python")))
    assert run.returncode == 0, run.stderr[-2000:]
    assert "refused:" in run.stdout and "dtype state" in run.stdout, run.stdout
    # object arrays (whose state holds arbitrary objects) are not rebuilt either
    p = tmp_path / "objects.pkl"
    p.write_bytes(pickle.dumps({"a": np.array([1, "x"], dtype=object)}, protocol=2))
    with pytest.raises(CheckpointError, match="plain numbers"):
        jt.load(p)


def test_a_dtype_string_numpy_cannot_parse_is_refused(tmp_path):
    # fuzz_checkpoint's finding: numpy.dtype("f6,") raises SyntaxError
    # (NumPy hands the comma string to ast.literal_eval)
    found = base64.b64decode(
        "gAJ9cQAoWAEAAAB3cQFjbnVtcHkuY29yZS5tdWx0aWFycmF5Cl9yZWNvbnN0cnVjdApxAmNudW1weQpuZGFycmF5CnED"
        "SwCFcQRjX2NvZGVjcwplbmNvZGUKcQVYAQAAACxxBlgGAAAAbGF0aW4xcQeGcQhScQmHcQpScQsoSwFLAksChnEMY251"
        "bXB5CmR0eXBlCnENWAIAAABmNnEOiYiHcQ9ScRAoSwNYAQAAADxxEU5OLg==")
    p = tmp_path / "bad_dtype.pkl"
    p.write_bytes(found)
    with pytest.raises(CheckpointError, match="bad dtype"):
        jt.load(p)
