"""kiln.sparse: coordinate-form sparse arrays (to_dense, transpose, spmm)
against NumPy, with gradients against central differences."""
import numpy as np
import pytest

import kiln as jt
from ktest import check, check_grad, data, rng

INDICES = np.array([[0, 1, 1, 2, 1], [2, 0, 2, 3, 0]])   # (1, 0) stored twice


def dense_of(indices, values, shape):
    out = np.zeros(shape, values.dtype)
    np.add.at(out, tuple(indices), values)
    return out


def test_to_dense_adds_each_value_at_its_coordinates():
    values = data(rng(0), (5,))
    s = jt.sparse.sparse_array(jt.array(INDICES), jt.array(values), jt.NanoVector([3, 4]))
    check(s.to_dense(), dense_of(INDICES, values, (3, 4)))
    check(s.t().to_dense(), dense_of(INDICES, values, (3, 4)).T)
    assert s.shape == [3, 4] and s.ndim == 2 and s.dtype == "float64"


def test_spmm_matches_the_dense_product():
    r = rng(1)
    values, dense = data(r, (5,)), data(r, (4, 6))
    s = jt.sparse.sparse_array(jt.array(INDICES), jt.array(values), (3, 4))
    check(jt.sparse.spmm(s, jt.array(dense)), dense_of(INDICES, values, (3, 4)) @ dense)
    check(s @ jt.array(dense), dense_of(INDICES, values, (3, 4)) @ dense)


def test_gradients_reach_the_values_and_the_dense_operand():
    r = rng(2)
    idx = jt.array(INDICES)
    check_grad(lambda v: jt.sparse.sparse_array(idx, v, (3, 4)).to_dense(), data(r, (5,)))
    check_grad(lambda v, d: jt.sparse.spmm(jt.sparse.sparse_array(idx, v, (3, 4)), d),
               data(r, (5,)), data(r, (4, 2)))


def test_empty_and_malformed_sparse_arrays():
    empty = jt.sparse.sparse_array(jt.zeros((2, 0), "int32"), jt.zeros((0,)), (2, 3))
    check(empty.to_dense(), np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"indices must have shape \[ndim=2, nnz\]"):
        jt.sparse.sparse_array(jt.array(INDICES[:1]), jt.zeros((5,)), (3, 4))
    with pytest.raises(ValueError, match=r"values must have shape \[nnz=5\]"):
        jt.sparse.sparse_array(jt.array(INDICES), jt.zeros((4,)), (3, 4))
    with pytest.raises(TypeError, match="indices must be integers"):
        jt.sparse.sparse_array(jt.array(INDICES.astype("float32")), jt.zeros((5,)), (3, 4))
    s = jt.sparse.sparse_array(jt.array(INDICES), jt.zeros((5,)), (3, 4))
    with pytest.raises(ValueError, match=r"do not multiply"):
        jt.sparse.spmm(s, jt.zeros((3, 2)))


def test_nano_vector_is_a_shape():
    v = jt.NanoVector([2, 3])
    assert v == [2, 3] and v == (2, 3) and v != [3, 2] and list(v + [4]) == [2, 3, 4]
    assert jt.NanoVector(2, 3) == v and repr(v) == "[2,3,]"
