"""jt.misc: Jittor's assorted tensor functions that have no other home."""
import math

from ._core import to_var
from ._create import full
from ._shape import concat, norm_dim, reindex, stack

__all__ = ["diagonal", "make_grid"]


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


def make_grid(x, nrow=8, padding=2, normalize=False, range=None, scale_each=False, pad_value=0):
    """Images [N, C, H, W] (or a list of [C, H, W]) tiled into one [C, H', W']
    image, nrow per row, padding pixels of pad_value between and around them
    (torchvision's and Jittor's make_grid). normalize maps each image set
    (each image with scale_each) from range, or its own min..max, to 0..1.
    One-channel images become three-channel, as in torchvision."""
    if isinstance(x, (list, tuple)):
        x = stack([to_var(i) for i in x])
    x = to_var(x)
    if x.ndim == 2:
        x = x.reshape((1, 1) + tuple(x.shape))
    elif x.ndim == 3:
        x = x.reshape((1,) + tuple(x.shape)) if x.shape[0] in (1, 3) else x.unsqueeze(1)
    if x.ndim != 4:
        raise ValueError(f"make_grid: expected images [N, C, H, W], got shape {list(x.shape)}")
    if x.shape[1] == 1:
        x = concat([x, x, x], 1)
    if normalize:
        x = _normalized(x, range, scale_each)
    n, c, h, w = x.shape
    if nrow <= 0:
        raise ValueError(f"make_grid: nrow must be positive, got {nrow}")
    cols = min(nrow, n)
    rows = int(math.ceil(n / cols))
    ch, cw = h + padding, w + padding
    if rows * cols > n:     # the last row's empty cells are padding too
        x = concat([x, full((rows * cols - n, c, h, w), pad_value, x.dtype)], 0)
    # every grid pixel reads its image's pixel, or pad_value in the padding
    out_shape = (c, rows * ch + padding, cols * cw + padding)
    y, xx = f"(i1-{padding})", f"(i2-{padding})"
    index = [f"{y}/{ch}*{cols}+{xx}/{cw}", "i0", f"{y}%{ch}", f"{xx}%{cw}"]
    outside = [f"i1<{padding}", f"i2<{padding}", f"{y}%{ch}>={h}", f"{xx}%{cw}>={w}"]
    return reindex(x, out_shape, index, float(pad_value), ["||".join(outside)])


def _normalized(x, value_range, scale_each):
    def scaled(t, lo, hi):
        return (t.clamp(lo, hi) - lo) / max(hi - lo, 1e-5)
    if value_range is not None:
        return scaled(x, float(value_range[0]), float(value_range[1]))
    if scale_each:
        return stack([scaled(t, float(t.min().item()), float(t.max().item())) for t in x])
    return scaled(x, float(x.min().item()), float(x.max().item()))
