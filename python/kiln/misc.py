"""jt.misc: Jittor's assorted tensor functions that have no other home."""
from ._core import to_var
from ._shape import norm_dim, reindex

__all__ = ["diagonal"]


def diagonal(x, offset=0, dim1=0, dim2=1):
    """The diagonal of x over dims dim1 and dim2 (offset > 0: above the main
    one), as a last dim after the others, as torch.diagonal: a reindex, so
    lazy and differentiable."""
    x = to_var(x)
    d1, d2 = norm_dim(dim1, x.ndim, "diagonal"), norm_dim(dim2, x.ndim, "diagonal")
    if d1 == d2:
        raise ValueError(f"diagonal: dim1 and dim2 are both {d1}")
    r0, c0 = max(-offset, 0), max(offset, 0)
    length = max(min(x.shape[d1] - r0, x.shape[d2] - c0), 0)
    others = [d for d in range(x.ndim) if d not in (d1, d2)]
    shape = [x.shape[d] for d in others] + [length]
    k = f"i{len(others)}"
    idx = []
    for d in range(x.ndim):
        if d == d1:
            idx.append(f"{k}+{r0}")
        elif d == d2:
            idx.append(f"{k}+{c0}")
        else:
            idx.append(f"i{others.index(d)}")
    return reindex(x, shape, idx)
