"""jittor.einops: einops' readable tensor operations (rearrange, reduce, repeat,
einsum, parse_shape) for kiln Vars and NumPy arrays, and the layers Rearrange,
Reduce and EinMix (in jittor.einops.layers.jittor)."""


class EinopsError(RuntimeError):
    """A pattern that cannot be applied: bad syntax, unknown or missing axis sizes,
    or a tensor whose shape does not fit it."""


from .einops import asnumpy, einsum, parse_shape, rearrange, reduce, repeat  # noqa: E402

__all__ = ["rearrange", "reduce", "repeat", "einsum", "parse_shape", "asnumpy", "EinopsError"]
