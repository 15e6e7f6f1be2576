"""Convolution as im2col plus a matrix product, in meta-ops: the input is
reindexed into a (N*out, C*kernel) matrix of windows (padding reads give 0),
which is multiplied by the (O, C*kernel) weight matrix with broadcast·mul·sum.
The core hands that product, and both products autograd derives from it (the
input and weight gradients), to BLAS; the window scatter of the input gradient
(col2im) is the reindex's backward, a fused reindex_reduce."""
import math

from ._shape import broadcast, reindex


def _index(coef_dim, coef, kern_dim, dil, pad):
    out = f"i{coef_dim}" if coef == 1 else f"i{coef_dim}*{coef}"
    k = f"i{kern_dim}" if dil == 1 else f"i{kern_dim}*{dil}"
    e = f"{out}+{k}"
    return f"{e}-{pad}" if pad > 0 else e


def conv_im2col(x, weight, stride, pads, dilation, outs):
    """x (N, C, *spatial), weight (O, C, *kernel), groups == 1; returns (N, O, *outs)."""
    nd = len(outs)
    N, C = x.shape[:2]
    O = weight.shape[0]
    ks = tuple(weight.shape[2:])
    M, K = N * math.prod(outs), C * math.prod(ks)
    # cols[n, o_1..o_nd, c, k_1..k_nd] = x[n, c, o_j*stride_j + k_j*dilation_j - pad_j]
    shape = (N, *outs, C, *ks)
    idx = ["i0", f"i{1 + nd}"] + [_index(1 + j, stride[j], 2 + nd + j, dilation[j], pads[j][0])
                                  for j in range(nd)]
    cols = reindex(x, shape, idx).reshape((M, K))
    wmat = weight.reshape((O, K))
    y = (broadcast(cols, (M, O, K), [1]) * broadcast(wmat, (M, O, K), [0])).sum(2)
    y = y.reshape((N, math.prod(outs), O))
    # (N, out, O) -> (N, O, out): a transpose the consumer's kernel reads in place
    y = reindex(y, (N, O, math.prod(outs)), ["i0", "i2", "i1"])
    return y.reshape((N, O, *outs))
