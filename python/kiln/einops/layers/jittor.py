"""einops layers as kiln (Jittor) Modules: Rearrange, Reduce, EinMix."""
import kiln as jt

from . import RearrangeMixin, ReduceMixin
from ._einmix import _EinmixMixin

__all__ = ["Rearrange", "Reduce", "EinMix"]


class Rearrange(RearrangeMixin, jt.nn.Module):
    """rearrange(x, pattern, **axes_lengths) as a layer."""

    def execute(self, input):
        return self._apply_recipe(input)


class Reduce(ReduceMixin, jt.nn.Module):
    """reduce(x, pattern, reduction, **axes_lengths) as a layer."""

    def execute(self, input):
        return self._apply_recipe(input)


class EinMix(_EinmixMixin, jt.nn.Module):
    """A linear layer as an einsum pattern (see _EinmixMixin)."""

    def _create_parameters(self, weight_shape, weight_bound, bias_shape, bias_bound):
        self.weight = jt.init.uniform(weight_shape, "float32", -weight_bound, weight_bound)
        if bias_shape is not None:
            self.bias = jt.init.uniform(bias_shape, "float32", -bias_bound, bias_bound)
        else:
            self.bias = None

    def _create_rearrange_layers(self, pre_reshape_pattern, pre_reshape_lengths,
                                 post_reshape_pattern, post_reshape_lengths):
        self.pre_rearrange = None
        if pre_reshape_pattern is not None:
            self.pre_rearrange = Rearrange(pre_reshape_pattern, **pre_reshape_lengths)
        self.post_rearrange = None
        if post_reshape_pattern is not None:
            self.post_rearrange = Rearrange(post_reshape_pattern, **post_reshape_lengths)

    def execute(self, input):
        if self.pre_rearrange is not None:
            input = self.pre_rearrange(input)
        result = jt.linalg.einsum(self.einsum_pattern, input, self.weight)
        if self.bias is not None:
            result = result + self.bias
        if self.post_rearrange is not None:
            result = self.post_rearrange(result)
        return result


