"""Convolution as im2col plus a matrix product, in meta-ops: the input is
reindexed into a (groups, N*out, kernel*C/groups) stack of window matrices
(padding reads give 0), which is multiplied by the (groups, O/groups,
kernel*C/groups) weight matrices with broadcast·mul·sum. The core hands that
product, and both products autograd derives from it (the input and weight
gradients), to BLAS; the window scatter of the input gradient (col2im) is
the reindex's backward, a fused reindex_reduce."""
import math

from ..._shape import broadcast, reindex


def _index(out_dim, stride, kern_dim, dilation, pad):
    out = f"i{out_dim}" if stride == 1 else f"i{out_dim}*{stride}"
    k = f"i{kern_dim}" if dilation == 1 else f"i{kern_dim}*{dilation}"
    e = f"{out}+{k}"
    return f"{e}-{pad}" if pad > 0 else e


def conv_im2col(x, weight, stride, pads, dilation, outs, groups=1):
    """x (N, C, *spatial), weight (O, C/groups, *kernel); returns (N, O, *outs)."""
    nd = len(outs)
    N, C = x.shape[:2]
    O, Cg = weight.shape[:2]
    ks = tuple(weight.shape[2:])
    G, Og = groups, O // groups
    P, K = math.prod(outs), Cg * math.prod(ks)
    # cols[g, n, o_1..o_nd, k_1..k_nd, c] = x[n, g*Cg + c, o_j*stride_j + k_j*dilation_j - pad_j]:
    # channels innermost, so the copy's inner loop is long (kernel dims are short)
    shape = (G, N, *outs, *ks, Cg)
    cdim = 2 + 2 * nd
    channel = f"i{cdim}" if G == 1 else f"i0*{Cg}+i{cdim}"
    idx = ["i1", channel] + [_index(2 + j, stride[j], 2 + nd + j, dilation[j], pads[j][0]) for j in range(nd)]
    cols = reindex(x, shape, idx).reshape((G, N * P, K))
    # the weight's (c, k) order made (k, c) to match
    wperm = weight.reshape((G, Og, Cg, math.prod(ks)))
    wmat = reindex(wperm, (G, Og, math.prod(ks), Cg), ["i0", "i1", "i3", "i2"]).reshape((G, Og, K))
    y = (broadcast(cols, (G, N * P, Og, K), [2]) * broadcast(wmat, (G, N * P, Og, K), [1])).sum(3)
    # (G, N*P, Og) -> (N, G*Og, P): a transpose the consumer's kernel reads in place
    y = y.reshape((G, N, P, Og))
    group, within = ("0", "i1") if G == 1 else (f"i1/{Og}", f"i1%{Og}")
    y = reindex(y, (N, O, P), [group, "i0", "i2", within])
    return y.reshape((N, O, *outs))
