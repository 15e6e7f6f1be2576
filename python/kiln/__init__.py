"""kiln: a deep-learning framework with a C core (a lazy graph of meta-operators,
fused and compiled just in time) and Jittor's Python API: ``import kiln as jt``."""
import os as _os

# Ranks that mpirun put on one machine share its cores: each gets its part,
# pinned (so runs are reproducible), unless the user chose a count.
if ("OMPI_COMM_WORLD_LOCAL_SIZE" in _os.environ and "KILN_THREADS" not in _os.environ
        and "OMP_NUM_THREADS" not in _os.environ):
    _os.environ["KILN_THREADS"] = str(max(1, len(_os.sched_getaffinity(0))
                                          // max(1, int(_os.environ["OMPI_COMM_WORLD_LOCAL_SIZE"]))))
from . import _C
from ._core import Var, array, cast, to_var as _to_var, where
from ._dtype import DTYPES, as_dtype, dtype
from ._ops import (BINARY, UNARY, astype, clamp, install_number_protocol, isfinite, isinf, isnan)
from ._ops import binary_by_name as binary, unary_by_name as unary
from ._shape import (broadcast, broadcast_var, chunk, concat, expand, flatten, flip, permute,
                     reindex, reindex_reduce, reshape, split, squeeze, stack, transpose, unsqueeze)
from ._index import gather, getitem, scatter, setitem
from ._reduce import REDUCE_FUNCTIONS, arg_reduce
from ._reduce import (all, any, argmax, argmin, argsort, bmm, cumprod, cumsum, index,
                      log_softmax, logsumexp, matmul, max, mean, min, norm, prod, reduce, softmax,
                      sort, std, sum, topk, var)
from ._create import (arange, empty, eye, full, full_like, linspace, ones, ones_like, rand,
                      rand_like, randint, randint_like, randn, randn_like, random, seed,
                      set_global_seed, zeros, zeros_like)
from ._create import seed as set_seed
from ._autograd import backward, detach, enable_grad, grad, is_grad_enabled, no_grad, stop_grad
from ._flags import (clean, counters, display_memory_info, fetch_sync, flag_scope, flags, gc, sync,
                     sync_all)
from ._log import LOG, log_capture_scope
from . import profiler
from .profiler import profile_scope
from . import compile_extern, compiler, nn
from .nn import Module
from .nn.module import make_module
from . import dataset, init, io, lr_scheduler, optim, transform
from .io import load, save
from .code import code
from . import attention, weightnorm
from ._function import Function, numpy_code
from ._search import searchsorted, unique
from . import misc
from .misc import make_grid
from . import distributions
from ._create import normal
from . import core
from .core import (dump_all_graphs, liveness_info, number_of_hold_vars, number_of_lived_ops,
                   number_of_lived_vars)
from ._special import (ceil_int, erfinv, fetch, finfo, floor_int, iinfo, reindex_var, round_int,
                       safe_clip)
from . import models, utils
from . import linalg, sparse
from . import mkl_ops as _mkl_ops
# Jittor's jt.mkl_ops: the oneDNN calls, or None where oneDNN is unavailable
mkl_ops = _mkl_ops if _mkl_ops.available() else None
from .sparse import NanoVector
from . import distributed
from .distributed import (in_mpi, local_rank, mpi_all_reduce, mpi_broadcast, mpi_reduce, rank,
                          world_size)
mpi = distributed.MPI() if in_mpi else None   # Jittor's jt.mpi
mpi_ops = distributed                          # Jittor's jt.mpi_ops.mpi_all_reduce(...)
# Jittor's jt.cudnn is its cuDNN bindings, or None where they are unavailable;
# kiln has no CUDA backend, so programs that test it take their non-cuDNN path.
cudnn = None

__version__ = "0.1.0"

# ---- dtypes: jt.float32 ... (also callable: jt.float32(x) converts) ----
bool = as_dtype("bool")
int8, uint8, int16, int32, int64 = (as_dtype(n) for n in ("int8", "uint8", "int16", "int32",
                                                           "int64"))
float16, float32, float64 = as_dtype("float16"), as_dtype("float32"), as_dtype("float64")
bfloat16 = as_dtype("bfloat16")
float, int, double, half, long = float32, int32, float64, float16, int64

# ---- element-wise functions: jt.exp, jt.maximum, ... ----
globals().update(UNARY)
globals().update(BINARY)
_ALIASES = {
    "arcsin": "asin", "arccos": "acos", "arctan": "atan", "arcsinh": "asinh",
    "arccosh": "acosh", "arctanh": "atanh", "negative": "neg",
}
for _a, _n in _ALIASES.items():
    globals()[_a] = UNARY[_n]
_BINARY_ALIASES = {
    "sub": "subtract", "mul": "multiply", "div": "divide", "true_divide": "divide",
    "lt": "less", "le": "less_equal", "gt": "greater", "ge": "greater_equal", "eq": "equal",
    "ne": "not_equal",
}
for _a, _n in _BINARY_ALIASES.items():
    globals()[_a] = BINARY[_n]
cat = concat
clip = clamp
ternary = where
globals().update(REDUCE_FUNCTIONS)


def nonzero(x):
    """(n, ndim) int32 indices of x's nonzero elements (computed on the host)."""
    idx = where(x)
    return stack(idx, 1) if idx[0].shape[0] else zeros((0, len(idx)), dtype="int32")


class _Ops:
    """Jittor's jt.ops: every op by name (jt.ops.add, jt.ops.broadcast, ...)."""

    def __getattr__(self, name):
        try:
            return globals()[name]
        except KeyError:
            raise AttributeError(f"jt.ops has no op {name!r}") from None


ops = _Ops()


def dirty_fix_pytorch_runtime_error():
    """Jittor calls this before `import torch` so that torch's copies of
    shared libraries do not clash with its own. kiln loads its libraries
    (OpenBLAS, oneDNN, MPI) with dlopen into local scope, so torch imports
    cleanly after kiln without it; the call does nothing and returns None."""
    return None


def _debug_msg(x):
    """One line about a Var (Jittor's debug_msg), as jt.dump_all_graphs
    prints it (kiln.core.var_line), then its op."""
    for info in _C.live_vars():
        if info[0] == x._id:
            return f"{core.var_line(info, 0)} op={info[7]}"
    raise RuntimeError("debug_msg: the var was released")


def _out_hint(x):
    """Jittor's out_hint: x is stored when computed, for the gradients that
    read it (a bool mask of 1 byte per element, rather than recomputing the
    comparison from the float operands), unless gradients are off."""
    return x.stop_fuse() if is_grad_enabled() else x


def ternary_out_hint(cond, x, y):
    """where(cond, x, y) whose condition is stored for the backward (out_hint)."""
    cond = _to_var(cond)
    return where(_out_hint(cond), x, y)


def _setitem_op(x, index, value):
    """Jittor's Var.setitem op: a new var equal to x with x[index] = value
    (x itself unchanged; `x[index] = value` is the in-place form)."""
    y = x.clone()
    setitem(y, index, value)
    return y


# ---- Var's methods ----
def _install_methods():
    methods = dict(UNARY)
    methods.update(BINARY)
    methods.update({a: UNARY[n] for a, n in _ALIASES.items()})
    methods.update({a: BINARY[n] for a, n in _BINARY_ALIASES.items()})
    methods.update({
        "reindex": reindex, "reindex_reduce": reindex_reduce, "broadcast": broadcast,
        "broadcast_var": broadcast_var, "expand": expand, "broadcast_to": broadcast,
        "reshape": reshape, "view": reshape, "flatten": flatten, "squeeze": squeeze,
        "unsqueeze": unsqueeze, "permute": permute, "transpose": transpose, "flip": flip,
        "split": split, "chunk": chunk,
        "reduce": reduce, "sum": sum, "mean": mean, "max": max, "min": min, "prod": prod,
        "any": any, "all": all, "argmax": argmax, "argmin": argmin, "var": var, "std": std,
        "norm": norm, "cumsum": cumsum, "cumprod": cumprod, "argsort": argsort, "sort": sort,
        "topk": topk, "softmax": softmax, "log_softmax": log_softmax, "logsumexp": logsumexp,
        "matmul": matmul, "bmm": bmm, "clamp": clamp, "clip": clamp, "astype": astype,
        "__getitem__": getitem, "__setitem__": setitem, "gather": gather, "scatter": scatter,
        "backward": backward,
        "mpi_all_reduce": mpi_all_reduce, "mpi_reduce": mpi_reduce, "mpi_broadcast": mpi_broadcast,
        "relu": nn.relu,
        "copy": lambda x: x.clone(), "cast": astype, "isnan": isnan, "isinf": isinf,
        "isfinite": isfinite, "fetch_sync": lambda x: x.numpy(), "debug_msg": _debug_msg,
        "sqr": lambda x: x * x, "nonzero": nonzero, "getitem": getitem, "setitem": _setitem_op,
        "ternary": where, "arg_reduce": arg_reduce, "out_hint": _out_hint,
        "erfinv": erfinv, "safe_clip": safe_clip, "floor_int": floor_int, "ceil_int": ceil_int,
        "round_int": round_int, "reindex_var": reindex_var,
        "fuse_transpose": lambda x, perm: permute(x, *perm),  # kiln fuses every transpose
        "opt_grad": lambda x, opt: opt.find_grad(x),
        "start_grad": lambda x: x.requires_grad_(True) if x.dtype.is_float else x,
        "index_var": lambda x, dim=None: index(x.shape, dim),
        "peek": lambda x: f"{x.dtype}[{''.join(f'{d},' for d in x.shape)}]",
    })
    methods.update(REDUCE_FUNCTIONS)
    for name, dt in (("float32", float32), ("float64", float64), ("float16", float16),
                     ("bfloat16", bfloat16),
                     ("int8", int8), ("uint8", uint8), ("int16", int16), ("int32", int32),
                     ("int64", int64), ("bool", bool), ("float", float32), ("double", float64),
                     ("half", float16), ("int", int32), ("long", int64)):
        methods[name] = (lambda d: lambda x: cast(x, d))(dt)
    for name, f in methods.items():
        setattr(Var, name, f)
    Var.T = property(lambda x: permute(x))
    # Jittor's shape with a dynamic dim's bound as a negative number; kiln
    # computes dynamic-size results (where(cond), code ops with set_shape)
    # when they are made, so every dim is known
    Var.uncertain_shape = property(lambda x: list(x.shape))
    install_number_protocol(matmul)


_install_methods()
del _install_methods


def __getattr__(name):
    if name == "has_cuda":  # asked of the driver at the first read (kiln.compiler)
        return compiler.has_cuda
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
