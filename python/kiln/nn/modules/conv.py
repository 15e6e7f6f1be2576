"""Convolutions from meta-ops. The direct form: the input reindexed into
windows [N, (G,) O/g, *out, C/g, *kernel] (padding = reads out of bounds,
which give 0), the weight broadcast over [N, *out], the product summed over
the window dims. Which form a convolution is built in, the core decides by
asking the device (kl_conv_choose, src/opt/conv.c): where it runs the
convolution as a library call (oneDNN: float32, 1-d and 2-d), the direct
form, which the core recognises with the two forms its autograd derives
(the input and weight gradients) and hands all three over; else, where the
device runs matrix products, groups == 1 and wide groups as im2col (a
window reindex) times the weight matrices (conv_gemm.py; 3-d:
_im2col_flat here); else, and for depthwise and narrow groups, the direct
form's fused kernel. Transposed convolutions: the scatter form (a
convolution's input gradient, a library call too) or a gather.
Gradients are the core's autograd of these meta-ops.
Layers: Conv1d/2d/3d (Jittor's Conv), ConvTranspose1d/2d."""
import math

import numpy as np

from .conv_gemm import conv_im2col
from ... import _C
from ..._core import to_var
from ..._dtype import DTYPES
from ..module import Module
from ..._shape import broadcast, reindex, reindex_reduce
from ... import init as _init
__all__ = ["conv1d", "conv2d", "conv3d", "conv", "conv_transpose", "conv_transpose1d",
           "conv_transpose2d", "conv_transpose3d", "Conv1d", "Conv2d", "Conv3d", "Conv",
           "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "ConvTranspose",
           "unfold", "fold", "Unfold", "Fold"]

_MAX_DIMS = 8
_USE_GEMM = True     # False: never the im2col form (tests run the direct form with it)


def _choose_form(x, weight, groups, transposed, n, ic, oc, ins, outs, ks, stride, dilation, pad_lo):
    """'direct' or 'im2col': the core asks x's device which form of this
    convolution runs best there (kl_conv_choose, src/opt/conv.c)."""
    dtype = DTYPES[_C.promote(x._dtype_code, weight._dtype_code)].name
    nd = len(ks)
    form = _C.conv_choose(x, dtype, nd, groups, transposed, n, ic, oc, tuple(ins), tuple(outs),
                          tuple(ks), tuple(stride), tuple(dilation), tuple(pad_lo))
    return "direct" if form == "im2col" and not _USE_GEMM and not transposed else form


def _tuple(v, n, name="argument", minimum=None):
    """v as n ints (one int repeats), each at least `minimum` when given."""
    if isinstance(v, (list, tuple)):
        if len(v) != n:
            raise ValueError(f"{name} must have {n} values, got {tuple(v)}")
        t = tuple(int(a) for a in v)
    else:
        t = (int(v),) * n
    if minimum is not None and any(a < minimum for a in t):
        raise ValueError(f"{name} must be {'positive' if minimum == 1 else f'at least {minimum}'}, "
                         f"got {t}")
    return t


def _check_output_padding(opad, stride, dilation, name):
    """PyTorch's rule: each output padding below its stride or its dilation."""
    for o, s, d in zip(opad, stride, dilation):
        if o >= max(s, d):
            raise ValueError(f"{name}: output_padding {tuple(opad)} must be smaller than the "
                             f"stride {tuple(stride)} or the dilation {tuple(dilation)}")


def _check_groups(groups, name):
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{name}: groups must be a positive int, got {groups!r}")


def _term(coef, name):
    return "" if coef == 0 else name if coef == 1 else f"{name}*{coef}"


def _affine(*terms, const=0):
    """An index expression: the sum of the non-empty terms plus const."""
    parts = [t for t in terms if t]
    e = "+".join(parts) if parts else "0"
    if const > 0:
        e = f"{e}+{const}"
    elif const < 0:
        e = f"{e}-{-const}"
    return e


def _pads(padding, nd, ks, stride, dilation, name):
    """(low, high) padding per spatial dim; 'same' pads the extra on the high side."""
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * nd
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{name}: padding='same' is not supported for strided "
                                 "convolutions")
            out = []
            for k, d in zip(ks, dilation):
                total = d * (k - 1)
                out.append((total // 2, total - total // 2))
            return out
        raise ValueError(f"{name}: padding must be an int, a tuple, 'same' or 'valid', "
                         f"got {padding!r}")
    p = _tuple(padding, nd, f"{name}: padding", minimum=0)
    return [(v, v) for v in p]


def _kernel_exprs(ks, first_dim, separate):
    """Per kernel dim: its index expression, given the kernel dims start at
    first_dim (separate dims) or are one flattened dim there."""
    if separate:
        return [f"i{first_dim + j}" for j in range(len(ks))]
    exprs = []
    for j, k in enumerate(ks):
        inner = int(math.prod(ks[j + 1:]))
        e = f"i{first_dim}" if inner == 1 else f"i{first_dim}/{inner}"
        exprs.append(e if j == 0 else f"({e})%{k}")
    return exprs


def _add_bias(y, bias, channels, nd, name):
    """y plus a per-channel bias; None or False (Jittor code passes either) adds none."""
    if bias is None or bias is False:
        return y
    bias = to_var(bias)
    if bias.numel() != channels:
        raise ValueError(f"{name}: bias of shape {bias.shape} does not match the "
                         f"{channels} output channels")
    return y + bias.reshape((1, channels) + (1,) * nd)


def _check_input(x, w, nd, name, transposed=False):
    x, w = to_var(x), to_var(w)
    batched = x.ndim == nd + 2
    if not batched:
        if x.ndim != nd + 1:
            raise ValueError(f"{name}: expected a {nd + 2}-d (batched) or {nd + 1}-d input, "
                             f"got shape {x.shape}")
        x = x.reshape((1,) + x.shape)
    if w.ndim != nd + 2:
        raise ValueError(f"{name}: expected a {nd + 2}-d weight, got shape {w.shape}")
    if not x.dtype.is_float:
        x = x.float32()
    return x, w, batched


def conv_nd(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, nd=2,
            name="conv2d"):
    """N-d convolution (cross-correlation), PyTorch's semantics and layouts:
    x (N, C, *spatial), weight (O, C/groups, *kernel)."""
    x, weight, batched = _check_input(x, weight, nd, name)
    N, C = x.shape[:2]
    sp = x.shape[2:]
    O, Cg = weight.shape[:2]
    ks = weight.shape[2:]
    stride = _tuple(stride, nd, f"{name}: stride", minimum=1)
    dilation = _tuple(dilation, nd, f"{name}: dilation", minimum=1)
    _check_groups(groups, name)
    if C % groups or O % groups:
        raise ValueError(f"{name}: groups={groups} must divide the input channels ({C}) and "
                         f"the output channels ({O})")
    if Cg * groups != C:
        raise ValueError(f"{name}: input of shape {x.shape} has {C} channels, but weight of "
                         f"shape {weight.shape} expects {Cg * groups} (groups={groups})")
    pads = _pads(padding, nd, ks, stride, dilation, name)
    outs = []
    for j in range(nd):
        lo, hi = pads[j]
        o = (sp[j] + lo + hi - dilation[j] * (ks[j] - 1) - 1) // stride[j] + 1
        if o <= 0:
            raise ValueError(f"{name}: input of shape {x.shape} is too small for kernel "
                             f"{tuple(ks)} (dilation {dilation}, padding {pads})")
        outs.append(o)
    form = _choose_form(x, weight, groups, False, N, C, O, sp, outs, ks, stride, dilation,
                        [lo for lo, _ in pads])
    if form == "direct":
        # a library call where the device has one (forward and both gradients);
        # else one fused kernel (depthwise and narrow groups: faster, measured)
        y = _conv_direct(x, weight, stride, pads, dilation, groups, outs)
    elif 3 + 2 * nd <= _MAX_DIMS:
        # im2col + a (batched) matrix product, which the core hands to BLAS
        y = conv_im2col(x, weight, stride, pads, dilation, outs, groups)
    else:
        y = _im2col_flat(x, weight, stride, pads, dilation, outs, groups)
    y = _add_bias(y, bias, O, nd, name)
    return y if batched else y.reshape(y.shape[1:])


def _im2col_flat(x, weight, stride, pads, dilation, outs, groups):
    """im2col with the kernel dims flattened into one (3-d convolutions, where
    separate dims would pass the core's 8): windows (N*out, G, C/g*kernel)
    times the weight (G, O/g, C/g*kernel), summed over the last dim."""
    nd = len(outs)
    N = x.shape[0]
    O, Cg = weight.shape[:2]
    ks = tuple(weight.shape[2:])
    G, Og, R = groups, O // groups, int(math.prod(ks))
    P = int(math.prod(outs))
    M, K = N * P, Cg * R
    kexpr = _kernel_exprs(ks, 3 + nd, False)
    idx = ["i0", f"i{1 + nd}*{Cg}+i{2 + nd}" if G > 1 else f"i{2 + nd}"]
    for j in range(nd):
        idx.append(_affine(_term(stride[j], f"i{1 + j}"), _term(dilation[j], kexpr[j]),
                           const=-pads[j][0]))
    cols = reindex(x, (N, *outs, G, Cg, R), idx).reshape((M, G, K))
    shape = (M, G, Og, K)
    y = (broadcast(cols, shape, [2]) * broadcast(weight.reshape((G, Og, K)), shape, [0])).sum(3)
    y = reindex(y.reshape((N, P, O)), (N, O, P), ["i0", "i2", "i1"])
    return y.reshape((N, O, *outs))


def _conv_direct(x, weight, stride, pads, dilation, groups, outs):
    """One reindex·broadcast·mul·sum over [N, (G,) O/g, *out, C/g, *kernel]
    (the group dim only when groups > 1; the kernel dims flattened into one
    where separate dims would pass the core's 8)."""
    nd = len(outs)
    N = x.shape[0]
    O, Cg = weight.shape[:2]
    ks = weight.shape[2:]
    G, Og = groups, O // groups
    lead = (N, G, Og) if G > 1 else (N, O)
    first_out = len(lead)
    separate = first_out + 1 + 2 * nd <= _MAX_DIMS
    cdim = first_out + nd
    kexpr = _kernel_exprs(ks, cdim + 1, separate)
    cexpr = f"i{cdim}" if G == 1 else f"i1*{Cg}+i{cdim}"
    idx = ["i0", cexpr]
    for j in range(nd):
        idx.append(_affine(_term(stride[j], f"i{first_out + j}"), _term(dilation[j], kexpr[j]),
                           const=-pads[j][0]))
    kshape = tuple(ks) if separate else (int(math.prod(ks)),)
    shape = (*lead, *outs, Cg, *kshape)
    xx = reindex(x, shape, idx)
    w = weight.reshape(lead[1:] + (Cg,) + kshape)
    ww = broadcast(w, shape, [0] + list(range(first_out, first_out + nd)))
    y = (xx * ww).sum(list(range(cdim, len(shape))))
    return y.reshape((N, O, *outs)) if G > 1 else y


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return conv_nd(x, weight, bias, stride, padding, dilation, groups, 1, "conv1d")


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return conv_nd(x, weight, bias, stride, padding, dilation, groups, 2, "conv2d")


def conv3d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return conv_nd(x, weight, bias, stride, padding, dilation, groups, 3, "conv3d")


conv = conv2d


def conv_transpose_nd(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                      dilation=1, nd=2, name="conv_transpose2d"):
    """The gradient of conv_nd with respect to its input, as a gather:
    out[n, o, y] = sum x[n, c, (y + p - k*d) / s] * w[c, o, k] where the
    division is exact. weight (C_in, C_out/groups, *kernel), PyTorch's layout."""
    x, weight, batched = _check_input(x, weight, nd, name)
    N, C = x.shape[:2]
    sp = x.shape[2:]
    Cw, Og = weight.shape[:2]
    ks = weight.shape[2:]
    if Cw != C:
        raise ValueError(f"{name}: input of shape {x.shape} has {C} channels, weight of "
                         f"shape {weight.shape} expects {Cw}")
    _check_groups(groups, name)
    if C % groups:
        raise ValueError(f"{name}: groups={groups} must divide the input channels ({C})")
    stride = _tuple(stride, nd, f"{name}: stride", minimum=1)
    dilation = _tuple(dilation, nd, f"{name}: dilation", minimum=1)
    pad = _tuple(padding, nd, f"{name}: padding", minimum=0)
    opad = _tuple(output_padding, nd, f"{name}: output_padding", minimum=0)
    _check_output_padding(opad, stride, dilation, name)
    Cg, O = C // groups, Og * groups
    outs = [(sp[j] - 1) * stride[j] - 2 * pad[j] + dilation[j] * (ks[j] - 1) + opad[j] + 1
            for j in range(nd)]
    # described as the forward convolution whose input gradient it is
    if _choose_form(x, weight, groups, True, N, O, C, outs, sp, ks, stride, dilation, pad) == "direct":
        y = _conv_transpose_scatter(x, weight, stride, pad, dilation, groups, outs)
        y = _add_bias(y, bias, O, nd, name)
        return y if batched else y.reshape(y.shape[1:])
    separate = 3 + 2 * nd <= _MAX_DIMS
    cdim = 2 + nd
    kexpr = _kernel_exprs(ks, cdim + 1, separate)
    cexpr = f"i{cdim}" if groups == 1 else f"i1/{Og}*{Cg}+i{cdim}"
    idx, conds = ["i0", cexpr], []
    for j in range(nd):
        num = _affine(f"i{2 + j}", f"-{_term(dilation[j], kexpr[j])}", const=pad[j])
        num = num.replace("+-", "-")
        if stride[j] == 1:
            idx.append(num)
        else:
            idx.append(f"({num})/{stride[j]}")
            conds.append(f"({num})%{stride[j]}!=0")
    kshape = tuple(ks) if separate else (int(math.prod(ks)),)
    shape = (N, O, *outs, Cg, *kshape)
    xx = reindex(x, shape, idx, 0, ["||".join(f"({c})" for c in conds)] if conds else [])
    w = weight if separate else weight.reshape((C, Og) + kshape)
    oexpr = "i1" if groups == 1 else f"i1%{Og}"
    widx = [cexpr, oexpr] + [f"i{cdim + 1 + j}" for j in range(len(kshape))]
    ww = reindex(w, shape, widx)
    y = (xx * ww).sum(list(range(cdim, len(shape))))
    y = _add_bias(y, bias, O, nd, name)
    return y if batched else y.reshape(y.shape[1:])


def _conv_transpose_scatter(x, weight, stride, pads, dilation, groups, outs):
    """The scatter form: y[n, g*O/g + o, i*stride + k*dilation - pad] += x[n, g*C/g + c, i] *
    w[g*C/g + c, o, k], a reindex_reduce over [N, (G,) C/g, *in, O/g, *kernel]. It is
    exactly the input gradient of a convolution, which the core hands to oneDNN
    (its gradients are a convolution forward and a weight gradient, handed over too)."""
    nd = len(outs)
    N, C = x.shape[:2]
    sp = tuple(x.shape[2:])
    Og = weight.shape[1]
    ks = tuple(weight.shape[2:])
    G, Cg = groups, C // groups
    lead = (N, G, Cg) if G > 1 else (N, C)
    first_in = len(lead)
    cdim = first_in + nd
    shape = (*lead, *sp, Og, *ks)
    cexpr = f"i{cdim}" if G == 1 else f"i1*{Og}+i{cdim}"
    idx = ["i0", cexpr] + [_affine(_term(stride[j], f"i{first_in + j}"),
                                   _term(dilation[j], f"i{cdim + 1 + j}"), const=-pads[j])
                           for j in range(nd)]
    xx = broadcast(x.reshape((N, G, Cg) + sp) if G > 1 else x, shape,
                   [cdim] + list(range(cdim + 1, cdim + 1 + nd)))
    w = weight.reshape((G, Cg, Og) + ks) if G > 1 else weight
    ww = broadcast(w, shape, [0] + list(range(first_in, first_in + nd)))
    return reindex_reduce(xx * ww, "add", (N, G * Og, *outs), idx)


def conv_transpose1d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    return conv_transpose_nd(x, weight, bias, stride, padding, output_padding, groups,
                             dilation, 1, "conv_transpose1d")


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    return conv_transpose_nd(x, weight, bias, stride, padding, output_padding, groups,
                             dilation, 2, "conv_transpose2d")


def conv_transpose3d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    return conv_transpose_nd(x, weight, bias, stride, padding, output_padding, groups,
                             dilation, 3, "conv_transpose3d")


def conv_transpose(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                   dilation=1):
    """Jittor's nn.conv_transpose: conv_transpose2d, weight (C_in, C_out/groups, kH, kW)."""
    return conv_transpose_nd(x, weight, bias, stride, padding, output_padding, groups,
                             dilation, 2, "conv_transpose")


def _init_weight_bias(shape, fan_in, n_bias, dtype):
    """PyTorch's default: kaiming_uniform(a=sqrt(5)) = uniform(+-1/sqrt(fan_in)),
    the bias (n_bias values, or none) likewise."""
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
    w = _init.uniform(shape, dtype, -bound, bound)
    b = _init.uniform((n_bias,), dtype, -bound, bound) if n_bias else None
    return w, b


class _ConvNd(Module):
    _nd = 2
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", output_padding=0,
                 dtype="float32"):
        super().__init__()
        nd = self._nd
        name = type(self).__name__
        _check_groups(groups, name)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: groups={groups} must divide in_channels "
                             f"({in_channels}) and out_channels ({out_channels})")
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(f"{name}: unknown padding_mode {padding_mode!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _tuple(kernel_size, nd, f"{name}: kernel_size", minimum=1)
        self.stride = _tuple(stride, nd, f"{name}: stride", minimum=1)
        self.padding = padding if isinstance(padding, str) else \
            _tuple(padding, nd, f"{name}: padding", minimum=0)
        self.dilation = _tuple(dilation, nd, f"{name}: dilation", minimum=1)
        self.output_padding = _tuple(output_padding, nd, f"{name}: output_padding", minimum=0)
        if self._transposed:
            _check_output_padding(self.output_padding, self.stride, self.dilation, name)
        self.groups, self.padding_mode = groups, padding_mode
        rf = int(math.prod(self.kernel_size))
        if self._transposed:
            shape = (in_channels, out_channels // groups) + self.kernel_size
            fan_in = out_channels // groups * rf     # PyTorch's fan of this layout
        else:
            shape = (out_channels, in_channels // groups) + self.kernel_size
            fan_in = in_channels // groups * rf
        self.weight, self.bias = _init_weight_bias(shape, fan_in, out_channels if bias else 0,
                                                   dtype)

    def _padded(self, x):
        """Non-zero padding modes pad explicitly, then convolve unpadded."""
        if self.padding_mode == "zeros":
            return x, self.padding
        from .resize import pad
        if isinstance(self.padding, str):
            pads = _pads(self.padding, self._nd, self.kernel_size, self.stride, self.dilation,
                         type(self).__name__)
        else:
            pads = [(p, p) for p in self.padding]
        flat = []
        for lo, hi in reversed(pads):
            flat += [lo, hi]
        return pad(x, flat, self.padding_mode), 0

    def execute(self, x):
        if self._transposed:
            return conv_transpose_nd(x, self.weight, self.bias, self.stride, self.padding,
                                     self.output_padding, self.groups, self.dilation, self._nd,
                                     type(self).__name__)
        x, padding = self._padded(x)
        return conv_nd(x, self.weight, self.bias, self.stride, padding, self.dilation,
                       self.groups, self._nd, type(self).__name__)

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * self._nd:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._nd:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv1d(_ConvNd):
    _nd = 1


class Conv2d(_ConvNd):
    _nd = 2


class Conv3d(_ConvNd):
    _nd = 3


Conv = Conv2d


class _ConvTransposeNd(_ConvNd):
    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 dtype="float32"):
        if padding_mode != "zeros":
            raise ValueError(f"{type(self).__name__}: only padding_mode='zeros' is supported")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, output_padding, dtype)


class ConvTranspose1d(_ConvTransposeNd):
    _nd = 1


class ConvTranspose2d(_ConvTransposeNd):
    _nd = 2


class ConvTranspose3d(_ConvTransposeNd):
    _nd = 3


ConvTranspose = ConvTranspose2d


# ---- unfold / fold: the sliding windows a convolution reads, as columns ----

def _window_geometry(name, kernel_size, dilation, padding, stride):
    k = _tuple(kernel_size, 2, f"{name}: kernel_size", minimum=1)
    d = _tuple(dilation, 2, f"{name}: dilation", minimum=1)
    p = _tuple(padding, 2, f"{name}: padding", minimum=0)
    s = _tuple(stride, 2, f"{name}: stride", minimum=1)
    return k, d, p, s


def _window_indexes(k, d, p, s, ow):
    """Input (row, col) of column element (i1 = channel * kh * kw + window
    position, i2 = output position), as reindex expressions."""
    kh, kw = k
    row = f"(i2/{ow})*{s[0]}-{p[0]}+((i1/{kw})%{kh})*{d[0]}"
    col = f"(i2%{ow})*{s[1]}-{p[1]}+(i1%{kw})*{d[1]}"
    return f"i1/{kh * kw}", row, col


def unfold(x, kernel_size, dilation=1, padding=0, stride=1):
    """PyTorch's F.unfold (im2col): (N, C, H, W) -> (N, C*kh*kw, L), each
    column one window (padding reads zeros). A reindex: lazy, differentiable."""
    x = to_var(x)
    if x.ndim != 4:
        raise ValueError(f"unfold: expected a 4-d input (N, C, H, W), got shape {x.shape}")
    k, d, p, s = _window_geometry("unfold", kernel_size, dilation, padding, stride)
    n, c, h, w = x.shape
    oh = (h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    if oh <= 0 or ow <= 0:
        raise ValueError(f"unfold: kernel {k} (dilation {d}) does not fit input {h}x{w} "
                         f"padded by {p}")
    ch, row, col = _window_indexes(k, d, p, s, ow)
    return reindex(x, (n, c * k[0] * k[1], oh * ow), ["i0", ch, row, col])


def fold(x, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """PyTorch's F.fold (col2im): (N, C*kh*kw, L) -> (N, C, H, W), summing
    where windows overlap; the inverse arrangement of unfold."""
    x = to_var(x)
    if x.ndim != 3:
        raise ValueError(f"fold: expected a 3-d input (N, C*kh*kw, L), got shape {x.shape}")
    k, d, p, s = _window_geometry("fold", kernel_size, dilation, padding, stride)
    h, w = _tuple(output_size, 2, "fold: output_size", minimum=1)
    n, ckk, length = x.shape
    if ckk % (k[0] * k[1]):
        raise ValueError(f"fold: dim 1 ({ckk}) is not a multiple of the kernel's {k[0] * k[1]} "
                         "positions")
    oh = (h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    if oh * ow != length:
        raise ValueError(f"fold: {length} columns given, output_size {(h, w)} with kernel {k} "
                         f"makes {oh * ow}")
    ch, row, col = _window_indexes(k, d, p, s, ow)
    return reindex_reduce(x, "add", (n, ckk // (k[0] * k[1]), h, w), ["i0", ch, row, col])


class Unfold(Module):
    def __init__(self, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.kernel_size, self.dilation, self.padding, self.stride = kernel_size, dilation, padding, stride

    def execute(self, x):
        return unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)


class Fold(Module):
    def __init__(self, output_size, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.output_size, self.kernel_size = output_size, kernel_size
        self.dilation, self.padding, self.stride = dilation, padding, stride

    def execute(self, x):
        return fold(x, self.output_size, self.kernel_size, self.dilation, self.padding, self.stride)
