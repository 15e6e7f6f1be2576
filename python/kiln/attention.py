"""Multi-head attention: softmax(Q K^T / sqrt(head_dim) + mask) V per head.

Two modules share one computation:
- ``MultiheadAttention`` here is Jittor's ``jittor.attention.MultiheadAttention``
  (fairseq's layout: q_proj, k_proj, v_proj and out_proj Linear layers; flags
  self_attention / encoder_decoder_attention; weights averaged over heads).
- ``TorchMultiheadAttention`` is ``nn.MultiheadAttention``, PyTorch's module:
  in_proj_weight (or q/k/v_proj_weight when kdim/vdim differ), in_proj_bias,
  out_proj, bias_k/bias_v, batch_first; ``multi_head_attention_forward`` is
  its functional form (torch.nn.functional's signature).

Sequences are (length, batch, embed) unless batch_first. Masks are PyTorch's:
a boolean mask is True where attention is NOT allowed; a float mask is added
to the scores. attn_mask is (L, S) or (batch * heads, L, S); key_padding_mask
is (batch, S)."""
import math

import numpy as np

from ._core import cast, to_var, where
from ._create import zeros
from ._reduce import matmul, softmax
from ._shape import concat, reshape, transpose, unsqueeze
from . import init as _init
from .nn.module import Module
from .nn.modules.linear import Linear, dropout as _dropout, linear

__all__ = ["MultiheadAttention", "TorchMultiheadAttention", "multi_head_attention_forward"]


def _shape_str(shape):
    return str(tuple(int(s) for s in shape))


def _additive(mask, dtype, what, layer):
    """A mask as float scores to add: -inf where a boolean mask is True."""
    mask = to_var(mask)
    if mask.dtype.is_bool or mask.dtype.is_int:
        return where(cast(mask, "bool"), float("-inf"), 0.0).astype(dtype)
    if not mask.dtype.is_float:
        raise TypeError(f"{layer}: {what} must be bool or float, got {mask.dtype}")
    return mask.astype(dtype)


def _append_column(mask):
    """A zero (allowed) score for one more key at the end of the last dim."""
    return concat([mask, zeros(mask.shape[:-1] + (1,), dtype=mask.dtype)], -1)


def _attend(q, k, v, num_heads, out_weight, out_bias, bias_k=None, bias_v=None,
            add_zero_attn=False, dropout_p=0.0, attn_mask=None, key_padding_mask=None,
            need_weights=True, average_attn_weights=True, logits_only=False,
            layer="MultiheadAttention"):
    """Attention over projected q (L, N, E), k and v (S, N, E).

    Returns (output (L, N, E), weights): weights (N, L, S) averaged over heads,
    (N, heads, L, S) per head, or None without need_weights. logits_only
    returns the masked scores (N * heads, L, S) and the values
    (N * heads, S, head_dim) instead (fairseq's before_softmax)."""
    L, N, E = q.shape
    head_dim = E // num_heads
    if bias_k is not None:          # one more key and value, learned, for every batch item
        k = concat([k, bias_k.broadcast((1, N, E))], 0)
        v = concat([v, bias_v.broadcast((1, N, E))], 0)
    if add_zero_attn:               # one more key and value of zeros
        k = concat([k, zeros((1, N, E), dtype=k.dtype)], 0)
        v = concat([v, zeros((1, N, E), dtype=v.dtype)], 0)
    S = k.shape[0]
    extra = S - (key_padding_mask.shape[-1] if key_padding_mask is not None else S)

    # (len, N, E) -> (N * heads, len, head_dim): batch item n, head h is row n * heads + h
    def heads(x):
        return transpose(reshape(x, (x.shape[0], N * num_heads, head_dim)), 0, 1)

    q, k, v = heads(q * (1.0 / math.sqrt(head_dim))), heads(k), heads(v)
    scores = matmul(q, transpose(k, 1, 2))            # (N * heads, L, S)

    if attn_mask is not None:
        m = _additive(attn_mask, scores.dtype, "attn_mask", layer)
        if m.ndim == 2:
            m = unsqueeze(m, 0)
        for _ in range(S - m.shape[-1]):              # columns for bias_k / the zero key
            m = _append_column(m)
        scores = scores + m
    if key_padding_mask is not None:
        m = _additive(key_padding_mask, scores.dtype, "key_padding_mask", layer)
        for _ in range(extra):
            m = _append_column(m)
        m = reshape(m.broadcast((N, num_heads, S), [1]), (N * num_heads, 1, S))
        scores = scores + m
    if logits_only:
        return scores, v

    weights = softmax(scores, -1)
    attended = weights if dropout_p <= 0 else _dropout(weights, dropout_p, True)
    out = matmul(attended, v)                          # (N * heads, L, head_dim)
    out = reshape(transpose(out, 0, 1), (L, N, E))
    out = linear(out, out_weight, out_bias)
    if not need_weights:
        return out, None
    weights = reshape(weights, (N, num_heads, L, S))
    return out, (weights.mean(1) if average_attn_weights else weights)


def _check_masks(layer, attn_mask, key_padding_mask, N, L, S, num_heads):
    """Shape errors name the mask, the expected and the given shapes."""
    if attn_mask is not None:
        shape = tuple(to_var(attn_mask).shape)
        if len(shape) == 2 and shape != (L, S):
            raise ValueError(f"{layer}: the shape of the 2-D attn_mask is {shape}, but should be "
                             f"{(L, S)}")
        if len(shape) == 3 and shape != (N * num_heads, L, S):
            raise ValueError(f"{layer}: the shape of the 3-D attn_mask is {shape}, but should be "
                             f"{(N * num_heads, L, S)}")
        if len(shape) not in (2, 3):
            raise ValueError(f"{layer}: attn_mask must be 2-D or 3-D, got shape {shape}")
    if key_padding_mask is not None:
        shape = tuple(to_var(key_padding_mask).shape)
        if shape != (N, S):
            raise ValueError(f"{layer}: expected key_padding_mask of shape {(N, S)}, got "
                             f"{shape}")


def _causal_mask(L, S):
    return to_var(np.triu(np.ones((L, S), dtype=bool), 1))


def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads,
                                 in_proj_weight, in_proj_bias, bias_k, bias_v, add_zero_attn,
                                 dropout_p, out_proj_weight, out_proj_bias, training=True,
                                 key_padding_mask=None, need_weights=True, attn_mask=None,
                                 use_separate_proj_weight=False, q_proj_weight=None,
                                 k_proj_weight=None, v_proj_weight=None, static_k=None,
                                 static_v=None, average_attn_weights=True, is_causal=False):
    """torch.nn.functional.multi_head_attention_forward: query (L, N, E) or
    unbatched (L, E); key, value (S, N, kdim / vdim). static_k / static_v
    ((N * heads, S, head_dim)) replace the projected keys / values. With
    is_causal and no attn_mask, position i attends to positions <= i."""
    layer = "multi_head_attention_forward"
    query, key, value = to_var(query), to_var(key), to_var(value)
    batched = query.ndim == 3
    if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
        raise ValueError(f"{layer}: query, key and value must all be 3-D (batched) or 2-D "
                         f"(unbatched), got shapes {_shape_str(query.shape)}, "
                         f"{_shape_str(key.shape)} and {_shape_str(value.shape)}")
    if not batched:
        query, key, value = unsqueeze(query, 1), unsqueeze(key, 1), unsqueeze(value, 1)
        # a 3-D attn_mask (heads, L, S) already is (N * heads, L, S) with N = 1
        if key_padding_mask is not None:
            key_padding_mask = unsqueeze(to_var(key_padding_mask), 0)
    L, N, E = query.shape
    S = key.shape[0]
    if E != embed_dim_to_check:
        raise ValueError(f"{layer}: was expecting embedding dimension of {embed_dim_to_check}, "
                         f"but got {E} (query of shape {_shape_str(query.shape)})")
    if E % num_heads:
        raise ValueError(f"{layer}: embed_dim {E} is not divisible by num_heads {num_heads}")
    if key.shape[:2] != value.shape[:2]:
        raise ValueError(f"{layer}: key of shape {_shape_str(key.shape)} and value of shape "
                         f"{_shape_str(value.shape)} differ in length or batch")
    if key.shape[1] != N:
        raise ValueError(f"{layer}: query of shape {_shape_str(query.shape)} and key of shape "
                         f"{_shape_str(key.shape)} differ in batch size")
    if is_causal and attn_mask is None:
        attn_mask = _causal_mask(L, S)
    _check_masks(layer, attn_mask, key_padding_mask, N, L, S, num_heads)

    if use_separate_proj_weight:
        w_q, w_k, w_v = q_proj_weight, k_proj_weight, v_proj_weight
    else:
        w = to_var(in_proj_weight)
        w_q, w_k, w_v = w[:E], w[E:2 * E], w[2 * E:]
    if in_proj_bias is not None:
        b = to_var(in_proj_bias)
        b_q, b_k, b_v = b[:E], b[E:2 * E], b[2 * E:]
    else:
        b_q = b_k = b_v = None
    q = linear(query, w_q, b_q)
    k = linear(key, w_k, b_k) if static_k is None else None
    v = linear(value, w_v, b_v) if static_v is None else None
    head_dim = E // num_heads

    # static keys / values come per head; bring them back to (S, N, E)
    def unheads(x):
        x = to_var(x)
        return reshape(transpose(x, 0, 1), (x.shape[1], N, E))

    if static_k is not None:
        if tuple(static_k.shape)[::2] != (N * num_heads, head_dim):
            raise ValueError(f"{layer}: static_k must be of shape (N * heads, S, head_dim) = "
                             f"({N * num_heads}, S, {head_dim}), got "
                             f"{_shape_str(static_k.shape)}")
        k = unheads(static_k)
    if static_v is not None:
        if tuple(static_v.shape)[::2] != (N * num_heads, head_dim):
            raise ValueError(f"{layer}: static_v must be of shape (N * heads, S, head_dim) = "
                             f"({N * num_heads}, S, {head_dim}), got "
                             f"{_shape_str(static_v.shape)}")
        v = unheads(static_v)
    out, weights = _attend(q, k, v, num_heads, out_proj_weight, out_proj_bias, bias_k, bias_v,
                           add_zero_attn, dropout_p if training else 0.0, attn_mask,
                           key_padding_mask, need_weights, average_attn_weights, layer=layer)
    if not batched:
        out = reshape(out, (L, E))
        if weights is not None:
            weights = reshape(weights, weights.shape[1:])
    return out, weights


class TorchMultiheadAttention(Module):
    """PyTorch's nn.MultiheadAttention (kiln's nn.MultiheadAttention).

    forward(query, key, value, key_padding_mask=None, need_weights=True,
    attn_mask=None, average_attn_weights=True, is_causal=False) returns
    (output, weights); output is (L, N, E) ((N, L, E) with batch_first),
    weights (N, L, S) averaged over heads, (N, heads, L, S) otherwise, or
    None without need_weights."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False,
                 add_zero_attn=False, kdim=None, vdim=None, batch_first=False, dtype="float32"):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim and num_heads must be positive, got "
                             f"{embed_dim} and {num_heads}")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by "
                             f"num_heads ({num_heads})")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout, self.batch_first = float(dropout), batch_first
        self.head_dim = embed_dim // num_heads
        E = embed_dim
        # created in PyTorch's order, which is the state dict's
        if self._qkv_same_embed_dim:
            self.in_proj_weight = _init.constant((3 * E, E), dtype, 0.0)
            self.q_proj_weight = self.k_proj_weight = self.v_proj_weight = None
        else:
            self.q_proj_weight = _init.constant((E, E), dtype, 0.0)
            self.k_proj_weight = _init.constant((E, self.kdim), dtype, 0.0)
            self.v_proj_weight = _init.constant((E, self.vdim), dtype, 0.0)
            self.in_proj_weight = None
        self.in_proj_bias = _init.constant((3 * E,), dtype, 0.0) if bias else None
        self.out_proj = Linear(E, E, bias=bias, dtype=dtype)
        if add_bias_kv:
            self.bias_k = _init.constant((1, 1, E), dtype, 0.0)
            self.bias_v = _init.constant((1, 1, E), dtype, 0.0)
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self):
        """PyTorch's: xavier-uniform projections, zero biases, xavier-normal bias_k/v."""
        if self._qkv_same_embed_dim:
            _init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                _init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            _init.constant_(self.in_proj_bias, 0.0)
            _init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            _init.xavier_normal_(self.bias_k)
            _init.xavier_normal_(self.bias_v)

    def execute(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        query, key, value = to_var(query), to_var(key), to_var(value)
        if self.batch_first and query.ndim == 3:
            query, key, value = (transpose(x, 0, 1) for x in (query, key, value))
        out, weights = multi_head_attention_forward(
            query, key, value, self.embed_dim, self.num_heads, self.in_proj_weight,
            self.in_proj_bias, self.bias_k, self.bias_v, self.add_zero_attn, self.dropout,
            self.out_proj.weight, self.out_proj.bias, training=self.training,
            key_padding_mask=key_padding_mask, need_weights=need_weights, attn_mask=attn_mask,
            use_separate_proj_weight=not self._qkv_same_embed_dim,
            q_proj_weight=self.q_proj_weight, k_proj_weight=self.k_proj_weight,
            v_proj_weight=self.v_proj_weight, average_attn_weights=average_attn_weights,
            is_causal=is_causal)
        if self.batch_first and query.ndim == 3:
            out = transpose(out, 0, 1)
        return out, weights

    def extra_repr(self):
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"


# printed as PyTorch's name; __qualname__ stays unique, so pickling finds this class
TorchMultiheadAttention.__name__ = "MultiheadAttention"


class MultiheadAttention(Module):
    """Jittor's jittor.attention.MultiheadAttention (fairseq's layout).

    Parameters k_proj, v_proj, q_proj, out_proj (Linear), bias_k / bias_v with
    add_bias_kv. execute(query, key, value, ...) on (length, batch, embed)
    returns (output, weights): weights (batch, L, S) averaged over heads,
    (heads, batch, L, S) with need_head_weights, or None without
    need_weights. With self_attention the keys and values come from query;
    with encoder_decoder_attention the values come from key. batch_first:
    query, key, value and output are (batch, length, embed)."""

    def __init__(self, embed_dim, num_heads, kdim=None, vdim=None, dropout=0.0, bias=True,
                 add_bias_kv=False, add_zero_attn=False, self_attention=False,
                 encoder_decoder_attention=False, q_noise=0.0, qn_block_size=8,
                 batch_first=False, dtype="float32"):
        super().__init__()
        if q_noise:
            raise NotImplementedError("MultiheadAttention: quantization noise (q_noise > 0) is not "
                                      "supported")
        del qn_block_size   # only used with q_noise
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self.qkv_same_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout, self.batch_first = float(dropout), batch_first
        self.head_dim = embed_dim // num_heads
        if self.head_dim * num_heads != embed_dim:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by "
                             f"num_heads ({num_heads})")
        self.scaling = self.head_dim ** -0.5
        self.self_attention = self_attention
        self.encoder_decoder_attention = encoder_decoder_attention
        if self_attention and not self.qkv_same_dim:
            raise ValueError("MultiheadAttention: self-attention requires query, key and value "
                             "to be of the same size")
        self.k_proj = Linear(self.kdim, embed_dim, bias=bias, dtype=dtype)
        self.v_proj = Linear(self.vdim, embed_dim, bias=bias, dtype=dtype)
        self.q_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        if add_bias_kv:
            self.bias_k = _init.constant((1, 1, embed_dim), dtype, 0.0)
            self.bias_v = _init.constant((1, 1, embed_dim), dtype, 0.0)
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self.reset_parameters()

    def reset_parameters(self):
        # Jittor's (and fairseq's) scaled initialisation when q, k, v share a size;
        # out_proj keeps Linear's default weight, with a zero bias
        gain = 1 / math.sqrt(2) if self.qkv_same_dim else 1.0
        for proj in (self.k_proj, self.v_proj, self.q_proj):
            _init.xavier_uniform_(proj.weight, gain=gain)
        if self.out_proj.bias is not None:
            _init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            _init.xavier_normal_(self.bias_k)
            _init.xavier_normal_(self.bias_v)

    def execute(self, query, key=None, value=None, key_padding_mask=None,
                incremental_state=None, need_weights=True, static_kv=False, attn_mask=None,
                before_softmax=False, need_head_weights=False):
        layer = "MultiheadAttention"
        if incremental_state is not None:
            raise NotImplementedError(f"{layer}: incremental decoding (incremental_state) is not "
                                      "supported")
        del static_kv   # only meaningful with incremental_state
        need_weights = need_weights or need_head_weights
        query = to_var(query)
        if query.ndim != 3 or query.shape[2] != self.embed_dim:
            layout = "batch, tgt_len" if self.batch_first else "tgt_len, batch"
            raise ValueError(f"{layer}: expected query of shape ({layout}, {self.embed_dim}), "
                             f"got {_shape_str(query.shape)}")
        if self.batch_first:
            query = transpose(query, 0, 1)
            key = None if key is None else transpose(to_var(key), 0, 1)
            value = None if value is None else transpose(to_var(value), 0, 1)
        if self.self_attention:
            key = value = query
        elif self.encoder_decoder_attention:
            if key is None:
                raise ValueError(f"{layer}: encoder-decoder attention needs key")
            value = key
        elif key is None or value is None:
            raise ValueError(f"{layer}: key and value are required (or construct with "
                             "self_attention=True)")
        key, value = to_var(key), to_var(value)
        for what, x, dim in (("key", key, self.kdim), ("value", value, self.vdim)):
            if x.ndim != 3 or x.shape[1] != query.shape[1] or x.shape[2] != dim:
                raise ValueError(f"{layer}: expected {what} of shape (src_len, "
                                 f"{query.shape[1]}, {dim}), got {_shape_str(x.shape)}")
        if key.shape[0] != value.shape[0]:
            raise ValueError(f"{layer}: key of shape {_shape_str(key.shape)} and value of shape "
                             f"{_shape_str(value.shape)} differ in length")
        L, N, _ = query.shape
        S = key.shape[0]
        _check_masks(layer, attn_mask, key_padding_mask, N, L, S, self.num_heads)
        q, k, v = self.q_proj(query), self.k_proj(key), self.v_proj(value)
        result = _attend(q, k, v, self.num_heads, self.out_proj.weight, self.out_proj.bias,
                         self.bias_k, self.bias_v, self.add_zero_attn,
                         self.dropout if self.training else 0.0, attn_mask, key_padding_mask,
                         need_weights, average_attn_weights=False,
                         logits_only=before_softmax, layer=layer)
        if before_softmax:
            return result
        out, weights = result
        if weights is not None:
            weights = transpose(weights, 0, 1)        # (heads, batch, L, S)
            if not need_head_weights:
                weights = weights.mean(0)
        return (transpose(out, 0, 1) if self.batch_first else out), weights

    def extra_repr(self):
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"
