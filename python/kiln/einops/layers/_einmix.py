"""EinMix: a linear layer written as an einsum pattern with a weight (and bias)."""
import string
import warnings

from .. import EinopsError
from ..parsing import ParsedExpression


def _report_axes(axes, message):
    if axes:
        raise EinopsError(message.format(sorted(str(a) for a in axes)))


class _EinmixMixin:
    """EinMix(pattern, weight_shape, bias_shape=None, **axes_lengths): the einsum of
    the input (the pattern's left side) with a weight whose axes weight_shape names,
    giving the right side, plus a bias over the axes bias_shape names. Axes in
    parentheses are split before and merged after. The weight is uniform in
    +-sqrt(3 / fan_in), the bias in +-sqrt(1 / fan_in), fan_in being the product of
    the weight's axes that the output does not have."""

    def __init__(self, pattern, weight_shape, bias_shape=None, **axes_lengths):
        super().__init__()
        self.pattern = pattern
        self.weight_shape = weight_shape
        self.bias_shape = bias_shape
        self.axes_lengths = axes_lengths
        self.initialize_einmix(pattern, weight_shape, bias_shape, axes_lengths)

    def initialize_einmix(self, pattern, weight_shape, bias_shape, axes_lengths):
        if pattern.count("->") != 1:
            raise EinopsError(f"EinMix pattern has the form 'left -> right', got {pattern!r}")
        left_pattern, right_pattern = pattern.split("->")
        left = ParsedExpression(left_pattern)
        right = ParsedExpression(right_pattern)
        weight = ParsedExpression(weight_shape)
        _report_axes(right.identifiers - left.identifiers - weight.identifiers,
                     "unrecognized identifiers on the right side of EinMix: {}")
        if left.has_ellipsis or right.has_ellipsis or weight.has_ellipsis:
            raise EinopsError("EinMix does not take an ellipsis")
        if any(e.has_non_unitary_anonymous_axes for e in (left, right, weight)):
            raise EinopsError("EinMix does not take numbered axes")
        if "(" in weight_shape or ")" in weight_shape:
            raise EinopsError(f"parentheses are not allowed in the weight shape {weight_shape!r}")

        pre_pattern = pre_lengths = post_pattern = None
        if any(len(group) != 1 for group in left.composition):
            names = [a for group in left.composition for a in group]
            pre_pattern = f"{left_pattern}->{' '.join(names)}"
            pre_lengths = {k: v for k, v in axes_lengths.items() if k in names}
        if any(len(group) != 1 for group in right.composition):
            names = [a for group in right.composition for a in group]
            post_pattern = f"{' '.join(names)}->{right_pattern}"
        self._create_rearrange_layers(pre_pattern, pre_lengths, post_pattern, {})

        for axis in weight.identifiers:
            if axis not in axes_lengths:
                raise EinopsError(f"give the size of the weight's axis {axis!r}")
        _report_axes(set(axes_lengths) - left.identifiers - weight.identifiers,
                     "axes {} are not used in the pattern")
        _report_axes(weight.identifiers - left.identifiers - right.identifiers,
                     "weight axes {} are neither in the input nor in the output")
        if not weight.identifiers:
            warnings.warn("EinMix: the weight has no axes (it is one number)")

        weight_axes = [group[0] for group in weight.composition]
        fan_in = 1
        for axis in weight_axes:
            if axis not in right.identifiers:
                fan_in *= axes_lengths[axis]
        bias_dims = None
        if bias_shape is not None:
            if not isinstance(bias_shape, str):
                raise EinopsError("bias_shape is a string naming the axes the bias has")
            bias = ParsedExpression(bias_shape)
            _report_axes(bias.identifiers - right.identifiers,
                         "bias axes {} are not in the output")
            _report_axes(bias.identifiers - set(axes_lengths),
                         "give the sizes of the bias axes {}")
            # shaped to broadcast against the einsum's output (the right side's axes)
            bias_dims = [axes_lengths[a] if a in bias.identifiers else 1
                         for group in right.composition for a in group]
        self._create_parameters([axes_lengths[a] for a in weight_axes], (3 / fan_in) ** 0.5,
                                bias_dims, (1 / fan_in) ** 0.5)

        axes = list(dict.fromkeys(left.flat_axes_order() + weight.flat_axes_order() +
                                  right.flat_axes_order()))
        if len(axes) > len(string.ascii_lowercase):
            raise EinopsError(f"too many axes in EinMix pattern {pattern!r}")
        letter = dict(zip(axes, string.ascii_lowercase))
        self.einsum_pattern = "{},{}->{}".format(
            "".join(letter[a] for a in left.flat_axes_order()),
            "".join(letter[a] for a in weight.flat_axes_order()),
            "".join(letter[a] for a in right.flat_axes_order()))

    def _create_rearrange_layers(self, pre_reshape_pattern, pre_reshape_lengths,
                                 post_reshape_pattern, post_reshape_lengths):
        raise NotImplementedError("a framework's EinMix defines _create_rearrange_layers")

    def _create_parameters(self, weight_shape, weight_bound, bias_shape, bias_bound):
        raise NotImplementedError("a framework's EinMix defines _create_parameters")

    def __repr__(self):
        params = f"{self.pattern!r}, weight_shape={self.weight_shape!r}"
        if self.bias_shape is not None:
            params += f", bias_shape={self.bias_shape!r}"
        for axis, length in self.axes_lengths.items():
            params += f", {axis}={length}"
        return f"{type(self).__name__}({params})"
