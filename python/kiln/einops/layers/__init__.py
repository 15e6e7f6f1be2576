"""What the einops layers share, whatever the framework: the pattern is checked
when the layer is made, and applied on each call."""
from .. import EinopsError
from ..einops import _parse_pattern, reduce

__all__ = ["RearrangeMixin", "ReduceMixin"]


class RearrangeMixin:
    """A layer applying rearrange(x, pattern, **axes_lengths)."""

    def __init__(self, pattern, **axes_lengths):
        super().__init__()
        self.pattern = pattern
        self.axes_lengths = axes_lengths
        self._check()

    def _reduction(self):
        return "rearrange"

    def _check(self):
        try:
            _parse_pattern(self.pattern, self._reduction(),
                           tuple(sorted(self.axes_lengths.items())))
        except EinopsError as e:
            raise EinopsError(f"{type(self).__name__}({self.pattern!r}): {e}") from None

    def __repr__(self):
        params = repr(self.pattern)
        for axis, length in self.axes_lengths.items():
            params += f", {axis}={length}"
        return f"{type(self).__name__}({params})"

    def _apply_recipe(self, x):
        return reduce(x, self.pattern, self._reduction(), **self.axes_lengths)


class ReduceMixin(RearrangeMixin):
    """A layer applying reduce(x, pattern, reduction, **axes_lengths)."""

    def __init__(self, pattern, reduction, **axes_lengths):
        self.reduction = reduction
        super().__init__(pattern, **axes_lengths)

    def _reduction(self):
        return self.reduction

    def __repr__(self):
        params = f"{self.pattern!r}, {self.reduction!r}"
        for axis, length in self.axes_lengths.items():
            params += f", {axis}={length}"
        return f"{type(self).__name__}({params})"
