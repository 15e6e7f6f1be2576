"""searchsorted and unique (Jittor's and PyTorch's)."""
import numpy as np

from ._core import Var, array, to_var
from ._ops import astype

__all__ = ["searchsorted", "unique"]


def searchsorted(sorted_sequence, values, right=False, out_int32=False):
    """For each value, the index where it would be inserted into the sorted
    last dim of sorted_sequence (its leading dims match values', or it is
    1-D): the count of elements < value, or <= value with right=True. Lazy
    and fused: a broadcast comparison summed over the sorted dim."""
    s, v = to_var(sorted_sequence), to_var(values)
    if s.ndim == 0:
        raise ValueError("searchsorted: sorted_sequence must have at least one dim")
    if s.ndim > 1 and tuple(s.shape[:-1]) != tuple(v.shape[:-1]):
        raise ValueError(f"searchsorted: the leading dims of sorted_sequence {tuple(s.shape)} and "
                         f"values {tuple(v.shape)} differ")
    n = s.shape[-1]
    lead = v.shape[:-1] if v.ndim else ()
    m = v.shape[-1] if v.ndim else 1
    vv = v.reshape(lead + (m,)) if v.ndim else v.reshape((1,))
    ss = s if s.ndim > 1 else s.reshape((1,) * len(lead) + (n,))
    shape = tuple(lead) + (m, n)
    sb = ss.reshape(ss.shape[:-1] + (1, n)).broadcast(shape)
    vb = vv.reshape(tuple(lead) + (m, 1)).broadcast(shape)
    below = (sb <= vb) if right else (sb < vb)
    idx = astype(below, "int32").sum(-1)
    idx = astype(idx, "int32" if out_int32 else "int64")
    return idx if v.ndim else idx.reshape(())


def unique(x, return_inverse=False, return_counts=False, dim=None, sorted=True):
    """The sorted distinct values of x (along dim: distinct slices), with the
    inverse indices and the counts when asked, as torch.unique. Computed on
    the host: the result's size depends on the data."""
    del sorted   # always sorted, as torch's CPU implementation
    a = to_var(x).numpy()
    if dim is None:
        vals, inv, cnt = np.unique(a, return_inverse=True, return_counts=True)
        inv = inv.reshape(a.shape)
    else:
        vals, inv, cnt = np.unique(a, return_inverse=True, return_counts=True, axis=dim)
        inv = inv.reshape(-1)
    out = [array(vals)]
    if return_inverse:
        out.append(array(inv.astype(np.int64)))
    if return_counts:
        out.append(array(cnt.astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)
