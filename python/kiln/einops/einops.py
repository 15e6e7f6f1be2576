"""rearrange, reduce and repeat: reshapes, transposes, reductions and repeats
written as patterns of named axes ('b c (h h2) (w w2) -> b c h w')."""
import functools
import numbers
import string

from . import EinopsError
from ._backends import get_backend
from .parsing import ELLIPSIS, AnonymousAxis, ParsedExpression, check_axis_name

_reductions = ("min", "max", "sum", "mean", "prod")
_operations = _reductions + ("rearrange", "repeat")


def _product(values):
    result = 1
    for v in values:
        result *= v
    return result


@functools.lru_cache(256)
def _parse_pattern(pattern, operation, axes_lengths):
    """Parses and checks what does not depend on the tensor's shape."""
    if not isinstance(pattern, str) or pattern.count("->") != 1:
        raise EinopsError(f"a pattern has the form 'left -> right', got {pattern!r}")
    left_text, right_text = pattern.split("->")
    left, right = ParsedExpression(left_text), ParsedExpression(right_text)
    if not left.has_ellipsis and right.has_ellipsis:
        raise EinopsError(f"ellipsis on the right side but not on the left of {pattern!r}")
    if left.has_ellipsis and left.has_ellipsis_parenthesized:
        raise EinopsError(f"ellipsis inside parentheses on the left side of {pattern!r}")
    named_left = {a for a in left.identifiers if not isinstance(a, AnonymousAxis)}
    named_right = {a for a in right.identifiers if not isinstance(a, AnonymousAxis)}
    given = {name for name, _ in axes_lengths}
    if operation == "rearrange":
        if left.has_non_unitary_anonymous_axes or right.has_non_unitary_anonymous_axes:
            raise EinopsError("rearrange does not take numbered axes other than 1 "
                              f"(in {pattern!r})")
        difference = named_left ^ named_right
        if difference:
            raise EinopsError(f"axes on only one side of {pattern!r}: {sorted(difference)} "
                              "(rearrange keeps every axis)")
    elif operation == "repeat":
        difference = named_left - named_right
        if difference:
            raise EinopsError(f"axes of the left side missing on the right of repeat "
                              f"{pattern!r}: {sorted(difference)}")
        unsized = named_right - named_left - given - {ELLIPSIS}
        if unsized:
            raise EinopsError(f"give the sizes of the new axes of repeat {pattern!r}: "
                              f"{sorted(unsized)}")
    elif operation in _reductions or callable(operation):
        difference = named_right - named_left
        if difference:
            raise EinopsError(f"axes on the right side of reduction {pattern!r} that the left "
                              f"side does not have: {sorted(difference)}")
    else:
        raise EinopsError(f"unknown reduction {operation!r}; expected one of {_reductions} "
                          "or a callable")
    for name, length in axes_lengths:
        if not check_axis_name(name):
            raise EinopsError(f"invalid axis name {name!r}")
        if name not in named_left and name not in named_right:
            raise EinopsError(f"axis {name!r} is not used in {pattern!r}")
        if not isinstance(length, numbers.Integral) or length < 0:
            raise EinopsError(f"the length of axis {name!r} must be a non-negative int, got "
                              f"{length!r}")
    return left, right


def _expand(composition, ellipsis_axes):
    """Dims as lists of elementary axes, the ellipsis replaced by its axes."""
    groups = []
    for c in composition:
        if c == ELLIPSIS:
            groups.extend([a] for a in ellipsis_axes)
        else:
            group = []
            for a in c:
                group.extend(ellipsis_axes if a == ELLIPSIS else [a])
            groups.append(group)
    return groups


def _merge_runs(left_axes, right_axes):
    """Blocks of elementary axes handled as one dim: neighbours on the left that are
    both reduced, or both kept and neighbours in the same order on the right.
    (Fewer dims: kiln's vars have at most 8.)"""
    right_pos = {a: i for i, a in enumerate(right_axes)}
    blocks = []
    for a in left_axes:
        if blocks:
            prev = blocks[-1][-1]
            both_reduced = prev not in right_pos and a not in right_pos
            adjacent = (prev in right_pos and a in right_pos
                        and right_pos[a] == right_pos[prev] + 1)
            if both_reduced or adjacent:
                blocks[-1].append(a)
                continue
        blocks.append([a])
    return blocks


@functools.lru_cache(1024)
def _plan(pattern, operation, axes_lengths, shape):
    """How to apply a pattern to a tensor of this shape: (first shape, reduced dims,
    permutation, (position, length) of each new dim, final shape)."""
    left, right = _parse_pattern(pattern, operation, axes_lengths)
    n_dims = len(left.composition) - (1 if left.has_ellipsis else 0)
    if left.has_ellipsis:
        if len(shape) < n_dims:
            raise EinopsError(f"expected at least {n_dims} dims, got {len(shape)}")
    elif len(shape) != n_dims:
        raise EinopsError(f"expected {n_dims} dims, got {len(shape)}")
    ellipsis_axes = [(ELLIPSIS, i) for i in range(len(shape) - n_dims)]
    left_groups = _expand(left.composition, ellipsis_axes)
    right_groups = _expand(right.composition, ellipsis_axes)

    lengths = {name: int(length) for name, length in axes_lengths}
    for group in left_groups + right_groups:
        for a in group:
            if isinstance(a, AnonymousAxis):
                lengths[a] = a.value
    for group, dim in zip(left_groups, shape):
        unknown = [a for a in group if a not in lengths]
        known = _product(lengths[a] for a in group if a in lengths)
        if len(unknown) > 1:
            raise EinopsError(f"cannot infer the sizes of {unknown}: give all but one")
        if unknown:
            if known == 0 or dim % known != 0:
                raise EinopsError(f"shape mismatch: a dim of length {dim} cannot be split into "
                                  f"parts of {known}")
            lengths[unknown[0]] = dim // known
        elif dim != known:
            raise EinopsError(f"shape mismatch: {dim} != {known}")

    left_axes = [a for g in left_groups for a in g]
    right_axes = [a for g in right_groups for a in g]
    for a in right_axes:
        if a not in lengths:
            raise EinopsError(f"the size of new axis {a!r} is not given")
    in_left = set(left_axes)
    blocks = _merge_runs(left_axes, right_axes)
    first_shape = tuple(_product(lengths[a] for a in b) for b in blocks)
    kept = [b for b in blocks if b[0] in right_axes]
    reduced = [i for i, b in enumerate(blocks) if b[0] not in right_axes]
    # the right side's order, in blocks: kept blocks, and runs of new axes
    order, i = [], 0
    while i < len(right_axes):
        a = right_axes[i]
        if a in in_left:
            block = next(b for b in kept if b[0] == a)
            order.append(block)
            i += len(block)
        else:
            run = [a]
            while i + len(run) < len(right_axes) and right_axes[i + len(run)] not in in_left:
                run.append(right_axes[i + len(run)])
            order.append(run)
            i += len(run)
    permutation = tuple(kept.index(b) for b in order if b[0] in in_left)
    added = {pos: _product(lengths[a] for a in b) for pos, b in enumerate(order)
             if b[0] not in in_left}
    final_shape = tuple(_product(lengths[a] for a in g) for g in right_groups)
    return first_shape, tuple(reduced), permutation, tuple(sorted(added.items())), final_shape


def _apply(tensor, pattern, operation, axes_lengths):
    if isinstance(tensor, list):
        if not tensor:
            raise TypeError("einops cannot be applied to an empty list")
        tensor = get_backend(tensor[0]).stack_on_zeroth_dimension(tensor)
    backend = get_backend(tensor)
    shape = backend.shape(tensor)
    first_shape, reduced, permutation, added, final_shape = _plan(
        pattern, operation, tuple(sorted(axes_lengths.items())), tuple(int(s) for s in shape))
    if tuple(shape) != first_shape:
        tensor = backend.reshape(tensor, first_shape)
    if callable(operation):
        tensor = operation(tensor, reduced)
    elif reduced:
        if operation == "mean" and not backend.is_float_type(tensor):
            raise NotImplementedError("reduce_mean is not available for non-floating tensors")
        tensor = backend.reduce(tensor, operation, reduced)
    if permutation != tuple(range(len(permutation))):
        tensor = backend.transpose(tensor, permutation)
    if added:
        tensor = backend.add_axes(tensor, len(permutation) + len(added), dict(added))
    if tuple(backend.shape(tensor)) != final_shape:
        tensor = backend.reshape(tensor, final_shape)
    return tensor


def reduce(tensor, pattern, reduction, **axes_lengths):
    """Rearranges tensor by the pattern, reducing the axes that only the left side
    names with `reduction`: 'min', 'max', 'sum', 'mean', 'prod', or a callable
    f(tensor, reduced_axes). E.g. reduce(x, 'b c (h h2) (w w2) -> b c h w', 'max',
    h2=2, w2=2) is 2x2 max pooling. tensor: a jittor Var or a NumPy array (or a list
    of them, stacked first); axes_lengths give axis sizes."""
    try:
        return _apply(tensor, pattern, reduction, axes_lengths)
    except EinopsError as e:
        if isinstance(tensor, list):
            where = "Input is a list."
        else:
            try:
                where = f"Input tensor shape: {tuple(get_backend(tensor).shape(tensor))}."
            except RuntimeError:
                where = f"Input of type {type(tensor).__name__}."
        name = reduction if isinstance(reduction, str) else getattr(reduction, "__name__",
                                                                     "callable")
        raise EinopsError(f"Error while processing {name}-reduction pattern {pattern!r}. {where} "
                          f"Additional info: {axes_lengths}. {e}") from None


def rearrange(tensor, pattern, **axes_lengths):
    """Reorders, splits, merges, adds or removes length-1 axes by a pattern, e.g.
    rearrange(x, 'b c h w -> b (c h w)'); a list of tensors is stacked first."""
    return reduce(tensor, pattern, "rearrange", **axes_lengths)


def repeat(tensor, pattern, **axes_lengths):
    """Repeats along the axes that only the right side names (their sizes in
    axes_lengths, or numbers in the pattern), e.g. repeat(x, 'h w -> h w c', c=3)."""
    return reduce(tensor, pattern, "repeat", **axes_lengths)


def parse_shape(x, pattern):
    """{axis name: length} of x's dims, named by a pattern of axes ('_' skips a dim,
    '...' any number of them): parse_shape(x, 'b _ h w')."""
    exp = ParsedExpression(pattern, allow_underscore=True)
    shape = get_backend(x).shape(x)
    if exp.has_composed_axes():
        raise RuntimeError(f"Can't parse shape with composite axes: {pattern} {shape}")
    n = len(exp.composition)
    if exp.has_ellipsis:
        if len(shape) < n - 1:
            raise RuntimeError(f"Can't parse shape with this number of dimensions: {pattern} "
                               f"{shape}")
        at = exp.composition.index(ELLIPSIS)
        composition = (exp.composition[:at] + [["_"]] * (len(shape) - n + 1) +
                       exp.composition[at + 1:])
    else:
        if len(shape) != n:
            raise RuntimeError(f"Can't parse shape with different number of dimensions: "
                               f"{pattern} {shape}")
        composition = exp.composition
    return {axis[0]: length for axis, length in zip(composition, shape) if axis[0] != "_"}


def _enumerate_directions(x):
    """For each dim of x, an arange along it shaped to broadcast against x
    (NumPy's ogrid): result[i, j, k] = i + 2j + 3k from i, j, k = this(x)."""
    backend = get_backend(x)
    shape = backend.shape(x)
    result = []
    for axis, length in enumerate(shape):
        target = [1] * len(shape)
        target[axis] = length
        result.append(backend.reshape(backend.arange(0, length), tuple(target)))
    return result


def asnumpy(tensor):
    """tensor as a NumPy array."""
    return get_backend(tensor).to_numpy(tensor)


@functools.lru_cache(256)
def _compact_einsum_pattern(pattern):
    """einops' einsum pattern (named axes, e.g. 'batch h, h out -> batch out') as a
    one-letter einsum equation."""
    if "->" not in pattern:
        raise EinopsError(f"einsum pattern must contain '->', got {pattern!r}")
    lefts, right = pattern.split("->")
    letters, names = iter(string.ascii_letters), {}

    def term(text, allow_new):
        exp = ParsedExpression(text, allow_duplicates=allow_new)
        out = ""
        for c in exp.composition:
            if c == ELLIPSIS:
                out += "..."
                continue
            if len(c) != 1:
                raise EinopsError(f"einsum takes one named axis per dim, got {c} in {pattern!r}")
            name = c[0]
            if isinstance(name, AnonymousAxis):
                raise EinopsError(f"einsum does not take numbered axes ({pattern!r})")
            if name not in names:
                if not allow_new:
                    raise EinopsError(f"unknown axis {name!r} on the right side of {pattern!r}")
                try:
                    names[name] = next(letters)
                except StopIteration:
                    raise EinopsError(f"too many axes in {pattern!r}") from None
            out += names[name]
        return out

    inputs = [term(t, True) for t in lefts.split(",")]
    return ",".join(inputs) + "->" + term(right, False)


def einsum(*tensors_and_pattern):
    """einsum with named axes, the tensors first and the pattern last:
    einsum(x, w, 'batch h, h out -> batch out')."""
    if len(tensors_and_pattern) < 2:
        raise ValueError("einsum takes at least one tensor and a pattern")
    *tensors, pattern = tensors_and_pattern
    if not isinstance(pattern, str):
        raise ValueError("einsum's last argument must be the pattern string")
    return get_backend(tensors[0]).einsum(_compact_einsum_pattern(pattern), *tensors)


__all__ = ["rearrange", "reduce", "repeat", "einsum", "parse_shape", "asnumpy"]
