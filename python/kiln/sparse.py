"""Sparse arrays in coordinate form (Jittor's jt.sparse; PyTorch's sparse COO).

A SparseVar holds ``indices`` (an int Var of shape [ndim, nnz]: one column per
stored element), ``values`` ([nnz], any dtype) and the dense ``shape``. It
is a container, not a new kind of Var: to_dense() and spmm() are built from
kiln's scatter and gather meta-ops, so they are lazy, fuse and have
gradients with respect to the values (and the dense operand)."""
from ._core import to_var
from ._create import zeros
from ._shape import reindex, reindex_reduce, stack


class NanoVector(tuple):
    """Jittor's small integer vector (a shape): a tuple of ints that compares
    equal to a list or tuple with the same entries."""

    def __new__(cls, *values):
        if len(values) == 1 and not isinstance(values[0], int):
            values = values[0]
        return super().__new__(cls, (int(v) for v in values))

    def __eq__(self, other):
        if isinstance(other, (list, tuple)):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = tuple.__hash__

    def __add__(self, other):
        return NanoVector(tuple(self) + tuple(other))

    def __repr__(self):
        return "[" + "".join(f"{v}," for v in self) + "]"


class SparseVar:
    """A sparse array: ``values[k]`` sits at ``indices[:, k]`` of an array of
    ``shape``; the other elements are zero. Repeated coordinates add up
    (as PyTorch's to_dense of an uncoalesced tensor)."""

    def __init__(self, indices, values, shape):
        indices, values = to_var(indices), to_var(values)
        shape = NanoVector(shape)
        if indices.ndim != 2 or indices.shape[0] != len(shape):
            raise ValueError(f"sparse_array: indices must have shape [ndim={len(shape)}, nnz], "
                             f"got {list(indices.shape)}")
        if indices.dtype.is_float:
            raise TypeError(f"sparse_array: indices must be integers, got {indices.dtype}")
        if values.ndim != 1 or values.shape[0] != indices.shape[1]:
            raise ValueError(f"sparse_array: values must have shape [nnz={indices.shape[1]}], "
                             f"got {list(values.shape)}")
        self.indices, self.values, self.shape = indices, values, shape
        self.ndim = len(shape)

    def _indices(self):
        return self.indices

    def _values(self):
        return self.values

    @property
    def dtype(self):
        return self.values.dtype

    def t(self):
        """The transpose of a 2-d sparse array (its last two dims swapped)."""
        if self.ndim < 2:
            raise ValueError(f"SparseVar.t: needs 2 or more dims, shape is {list(self.shape)}")
        order = list(range(self.ndim))
        order[-1], order[-2] = order[-2], order[-1]
        shape = [self.shape[d] for d in order]
        return SparseVar(stack([self.indices[d] for d in order]), self.values, shape)

    def to_dense(self):
        """The dense Var: each value added at its coordinates."""
        if self.values.shape[0] == 0:
            return zeros(tuple(self.shape), self.values.dtype)
        coords = [f"@e{d}(i0)" for d in range(self.ndim)]
        rows = [self.indices[d] for d in range(self.ndim)]
        return reindex_reduce(self.values, "add", tuple(self.shape), coords, extras=rows)

    def __matmul__(self, other):
        return spmm(self, other)

    def __repr__(self):
        return (f"SparseVar(shape={list(self.shape)}, nnz={self.values.shape[0]}, "
                f"dtype={self.values.dtype})")


def sparse_array(indices, values, shape):
    """A SparseVar from coordinates [ndim, nnz], values [nnz] and the dense shape."""
    return SparseVar(indices, values, shape)


def spmm(sparse, dense):
    """sparse [n, m] @ dense [m, k] -> dense [n, k], touching only the stored
    elements: each value times its row of ``dense``, added into its output row."""
    if not isinstance(sparse, SparseVar):
        raise TypeError(f"spmm: the first operand must be a SparseVar, got {type(sparse).__name__}")
    dense = to_var(dense)
    if sparse.ndim != 2 or dense.ndim != 2 or sparse.shape[1] != dense.shape[0]:
        raise ValueError(f"spmm: shapes {list(sparse.shape)} and {list(dense.shape)} do not "
                         "multiply (need [n, m] @ [m, k])")
    n, k = sparse.shape[0], dense.shape[1]
    nnz = sparse.values.shape[0]
    if nnz == 0:
        return zeros((n, k), dense.dtype)
    row, col = sparse.indices[0], sparse.indices[1]
    picked = reindex(dense, (nnz, k), ["@e0(i0)", "i1"], extras=[col])
    products = picked * sparse.values.astype(dense.dtype).reshape((nnz, 1))
    return reindex_reduce(products, "add", (n, k), ["@e0(i0)", "i1"], extras=[row])


__all__ = ["NanoVector", "SparseVar", "sparse_array", "spmm"]
