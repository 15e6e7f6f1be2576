"""Basic layers: Linear (a broadcast·multiply·sum over the shared last dim),
Embedding (a reindex gather), Dropout/Dropout2d, Flatten/Unflatten, Identity,
with their functional forms linear, embedding, dropout, dropout2d."""
import math

from ... import _C
from ..._core import cast, checked_index, out, to_var, where
from ..module import Module
from ..._shape import broadcast, flatten, reindex
from ... import init as _init
__all__ = ["Linear", "Identity", "Flatten", "Unflatten", "Embedding", "Dropout", "Dropout2d",
           "linear", "embedding", "dropout", "dropout2d", "Bilinear"]


def linear(x, weight, bias=None):
    """x @ weight.T + bias with weight of shape (out, in), PyTorch's layout:
    y[n, m] = sum_k x[n, k] * w[m, k], both read along k (contiguous)."""
    x, weight = to_var(x), to_var(weight)
    if x.ndim == 0:
        raise ValueError("linear: input must have at least one dim")
    M, K = weight.shape
    if x.shape[-1] != K:
        raise ValueError(f"linear: input of shape {x.shape} does not match weight of shape "
                         f"{weight.shape}: {x.shape[-1]} != {K} (in_features)")
    lead = x.shape[:-1]
    x2 = x.reshape((-1, K)) if x.ndim != 2 else x
    n = x2.shape[0]
    shape = (n, M, K)
    prod = broadcast(x2, shape, [1]) * broadcast(weight, shape, [0])
    y = prod.sum(2)
    if y.dtype != prod.dtype:      # a contraction keeps the dtype (half sums widen)
        y = y.astype(prod.dtype)
    if bias is not None:
        y = y + bias
    return y if x.ndim == 2 else y.reshape(lead + (M,))


class Linear(Module):
    """y = x W^T + b; PyTorch's initialisation (uniform, bound 1/sqrt(in))."""

    def __init__(self, in_features, out_features, bias=True, dtype="float32"):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features) if in_features > 0 else 0
        self.weight = _init.uniform((out_features, in_features), dtype, -bound, bound)
        self.bias = _init.uniform((out_features,), dtype, -bound, bound) if bias else None

    def execute(self, x):
        return linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Bilinear(Module):
    """y_o = x1^T A_o x2 + b_o."""

    def __init__(self, in1_features, in2_features, out_features, bias=True, dtype="float32"):
        super().__init__()
        bound = 1 / math.sqrt(in1_features)
        self.weight = _init.uniform((out_features, in1_features, in2_features), dtype, -bound,
                                    bound)
        self.bias = _init.uniform((out_features,), dtype, -bound, bound) if bias else None

    def execute(self, x1, x2):
        x1, x2 = to_var(x1), to_var(x2)
        n = x1.shape[0]
        o, i, j = self.weight.shape
        shape = (n, o, i, j)
        t = broadcast(x1, shape, [1, 3]) * broadcast(self.weight, shape, [0]) * \
            broadcast(x2, shape, [1, 2])
        y = t.sum([2, 3])
        return y + self.bias if self.bias is not None else y


class Identity(Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
        del args, kwargs

    def execute(self, x):
        return x


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def execute(self, x):
        return flatten(to_var(x), self.start_dim, self.end_dim)


class Unflatten(Module):
    def __init__(self, dim, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def execute(self, x):
        x = to_var(x)
        d = self.dim % x.ndim
        return x.reshape(x.shape[:d] + self.unflattened_size + x.shape[d + 1:])


def embedding(x, weight, padding_idx=None):
    """weight[x]: a reindex gather; its gradient is a scatter-add into weight.
    padding_idx rows get no gradient."""
    x, weight = to_var(x), to_var(weight)
    if not (x.dtype.is_int or x.dtype.is_bool):
        x = x.int32()
    if x.ndim == 0:
        x = x.reshape((1,))
        squeeze = True
    else:
        squeeze = False
    nd = x.ndim
    D = weight.shape[1]
    if padding_idx is not None:
        pad = padding_idx % weight.shape[0]
        keep = (x != pad).reshape(x.shape + (1,))
    idx = ",".join(f"i{k}" for k in range(nd))
    x = checked_index(x, 0, weight.shape[0], f"Embedding with {weight.shape[0]} rows")
    y = reindex(weight, x.shape + (D,), [f"@e0({idx})", f"i{nd}"], 0, (), [x])
    if padding_idx is not None:
        y = where(keep, y, y.detach())   # the padding row gets no gradient
    return y.reshape((D,)) if squeeze else y


class Embedding(Module):
    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, dtype="float32",
                 _weight=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx
        if _weight is not None:
            self.weight = to_var(_weight)
        else:
            w = _init.gauss((num_embeddings, embedding_dim), dtype, 0.0, 1.0)
            if padding_idx is not None:
                import numpy as np
                row = np.ones((num_embeddings, 1), np.float32)
                row[padding_idx % num_embeddings] = 0
                w = w * to_var(row)
            self.weight = w

    def execute(self, x):
        return embedding(x, self.weight, self.padding_idx)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"


def _keep_mask(shape, p, dtype):
    code = _C.names("dtype").index("float32") if dtype is None else dtype.code
    u = out(_C.random(tuple(shape), code, "uniform", 0.0, 1.0))
    return cast(u >= p, u.dtype)


def dropout(x, p=0.5, training=True, inplace=False):
    """Zeros elements with probability p and scales the rest by 1/(1-p)."""
    del inplace
    x = to_var(x)
    if not training or p == 0:
        return x
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if p == 1:
        return x * 0
    dt = x.dtype if x.dtype.is_float else None
    return x * _keep_mask(x.shape, p, dt) * (1.0 / (1 - p))


def dropout2d(x, p=0.5, training=True, inplace=False):
    """Zeros whole channels (dim 1) with probability p."""
    del inplace
    x = to_var(x)
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0
    shape = x.shape[:2] + (1,) * (x.ndim - 2)
    dt = x.dtype if x.dtype.is_float else None
    return x * _keep_mask(shape, p, dt) * (1.0 / (1 - p))


class Dropout(Module):
    def __init__(self, p=0.5, inplace=False, is_train=False):
        super().__init__()
        del inplace, is_train
        self.p = p

    def execute(self, x):
        return dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class Dropout2d(Dropout):
    def execute(self, x):
        return dropout2d(x, self.p, self.training)
