"""Writes the seed corpora in seeds/ (run by hand when a format changes; the
files are committed). PyTorch is needed only for the .pth seeds.

    PYTHONPATH=python /usr/bin/python3 tests/fuzz/make_seeds.py"""
import argparse
import collections
import os
import pickle
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def write(kind, name, data):
    path = os.path.join(HERE, "seeds", kind, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def expr_seeds():
    cases = {
        "identity": "\x00\ni0",
        "flip": "\x00\nxshape0-1-i0",
        "conv_window": "\x01\ni0*2+i1-1\ni1\ni0<0||i0>=xshape0",
        "extra": "\x00\n@e0(i1)",
        "select": "\x02\n(i0<2)?i1:i0\nmax(i1-1,0)\nmin(i0,1)\ni0%2!=0",
        "folding": "\x00\n2*3+i0-(7/2)",
        "deep": "\x00\n" + "(" * 60 + "i0" + ")" * 60,
        "long": "\x00\n" + "+".join(["i0"] * 200),
        "overflow": "\x00\ni0+9223372036854775807*2",
        "bad": "\x01\ni0+\n@e9(i0)",
    }
    for name, text in cases.items():
        write("fuzz_expr", name, text.encode())


def api_seeds():
    # opcodes of fuzz_api.c: 0 from_host, 1 full, 2 random, 3 unary, 4 binary,
    # 5 where, 6 cast, 7 broadcast, 8 reduce, 9 reshape, 10/11 reindex(_reduce),
    # 12 check_index, 13 stop_grad, 14 grad, 15/16 read, 17 sync, 18 release, 19 getters
    progs = {
        "exp_sum": [0, 7, 1, 4, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 3, 0, 5, 1, 8, 1, 1, 0, 0, 2, 15, 2],
        "binary_grad": [2, 7, 2, 3, 2, 0, 0, 4, 0, 0, 9, 1, 14, 1, 0, 2, 15, 2],
        "reindex": [1, 4, 1, 4, 0, 7, 0, 0, 10, 0, 0, 3, 3, 2, 4, 3, 2, 0, 1, 5, 0, 1, 4, 16, 4],
        "int_div": [1, 4, 1, 3, 0, 0, 1, 1, 1, 3, 3, 255, 1, 1, 4, 0, 1, 3, 2, 15, 2],
        "check": [0, 4, 1, 3, 0, 7, 9, 1, 12, 0, 3, 3, 5, 15, 5],
    }
    for name, prog in progs.items():
        write("fuzz_api", name, bytes(prog))


def checkpoint_seeds():
    import kiln as jt
    state = collections.OrderedDict(weight=np.arange(6, dtype="float32").reshape(2, 3),
                                    bias=np.zeros(2, "float32"), steps=np.int64(3))
    path = os.path.join(HERE, "seeds", "fuzz_checkpoint", "kiln_state_dict")
    jt.save(state, path)
    for proto in (2, 4):
        write("fuzz_checkpoint", f"pickle_protocol{proto}",
              pickle.dumps({"w": np.ones((2, 2), "float64"), "lr": 0.1, "tags": ["a", b"b"],
                            "s": {1, 2}}, protocol=proto))
    try:
        import torch
    except ImportError:
        print("torch is missing: .pth seeds not written")
        return
    import io
    for legacy in (False, True):
        buf = io.BytesIO()
        torch.save({"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2, dtype=torch.int64),
                    "view": torch.arange(8.0)[2:6]}, buf, _use_new_zipfile_serialization=not legacy)
        write("fuzz_checkpoint", "torch_legacy.pth" if legacy else "torch_zip.pth", buf.getvalue())


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__).parse_args()
    expr_seeds()
    api_seeds()
    checkpoint_seeds()
