"""kiln.nn.modules: the layers, one file per family; each family's file holds
its functions (listed in kiln.nn.functional) beside the layers that call them.
This namespace holds the layers (the capitalised names of each family's
__all__) and the family modules themselves."""
from . import activation, container, conv, linear, loss, normalization, pooling, resize, rnn

_FAMILIES = (container, activation, linear, conv, pooling, normalization, resize, loss, rnn)
__all__ = [name for family in _FAMILIES for name in family.__all__ if name[:1].isupper()]
globals().update((name, getattr(family, name)) for family in _FAMILIES for name in family.__all__
                 if name[:1].isupper())
