"""jt.linalg: einsum and the LAPACK-backed matrix functions against NumPy float64,
their gradients (and some second derivatives) against central finite differences,
and the errors they raise."""
import gc

import numpy as np
import pytest

import kiln as jt
from kiln.linalg import LinAlgError

R = np.random.default_rng(11)


def well_conditioned(shape, dtype="float64"):
    """Random square matrices kept away from singular: a random matrix plus n I."""
    n = shape[-1]
    return (R.standard_normal(shape) + n * np.eye(n)).astype(dtype)


def spd(shape, dtype="float64"):
    """Random symmetric positive-definite matrices."""
    a = R.standard_normal(shape)
    return (a @ np.swapaxes(a, -1, -2) + shape[-1] * np.eye(shape[-1])).astype(dtype)


def tol(dtype):
    return dict(rtol=1e-4, atol=1e-4) if dtype == "float32" else dict(rtol=1e-10, atol=1e-10)


def as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def weighted_loss(fn, x_vars, weights):
    """sum_k <weights[k], fn(*x_vars)[k]> (None weights skip an output)."""
    outs = as_tuple(fn(*x_vars))
    return sum((o * jt.array(w)).sum() for o, w in zip(outs, weights) if w is not None)


def check_gradient(fn, arrays, weights=None, directions=2, eps=1e-6, rtol=1e-6, seed=0):
    """The gradient of a weighted sum of fn's outputs, projected on random directions,
    against central differences of the loss along them (float64)."""
    r = np.random.default_rng(seed)
    xs = [jt.array(a) for a in arrays]
    if weights is None:
        weights = [r.standard_normal(o.shape) for o in as_tuple(fn(*xs))]
    grads = jt.grad(weighted_loss(fn, xs, weights), xs)
    grads = [g.numpy() for g in grads]

    def loss_at(values):
        return float(weighted_loss(fn, [jt.array(v) for v in values], weights).numpy())

    for _ in range(directions):
        vs = [r.standard_normal(a.shape) for a in arrays]
        plus = loss_at([a + eps * v for a, v in zip(arrays, vs)])
        minus = loss_at([a - eps * v for a, v in zip(arrays, vs)])
        numeric = (plus - minus) / (2 * eps)
        analytic = sum(float((g * v).sum()) for g, v in zip(grads, vs))
        assert abs(analytic - numeric) <= rtol * max(1.0, abs(numeric)), (analytic, numeric)
    return grads


def check_second_derivative(fn, a, eps=1e-5, rtol=1e-5, seed=1):
    """v^T H u of a weighted sum of fn's outputs: the gradient of <grad, v> projected on
    u, against central differences of <grad, v> along u."""
    r = np.random.default_rng(seed)
    weights = [r.standard_normal(o.shape) for o in as_tuple(fn(jt.array(a)))]
    u, v = r.standard_normal(a.shape), r.standard_normal(a.shape)

    def grad_dot_v(values):
        x = jt.array(values)
        g = jt.grad(weighted_loss(fn, [x], weights), x)
        return float((g * jt.array(v)).sum().numpy())

    x = jt.array(a)
    g = jt.grad(weighted_loss(fn, [x], weights), x)
    h = jt.grad((g * jt.array(v)).sum(), x).numpy()
    numeric = (grad_dot_v(a + eps * u) - grad_dot_v(a - eps * u)) / (2 * eps)
    analytic = float((h * u).sum())
    assert abs(analytic - numeric) <= rtol * max(1.0, abs(numeric)), (analytic, numeric)


# ---------------------------------------------------------------------------
# values against NumPy
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(3, 3), (2, 4, 4), (2, 2, 3, 3)])
def test_inv_det_slogdet_match_numpy(dtype, shape):
    a = well_conditioned(shape, dtype)
    x = jt.array(a)
    ref = a.astype(np.float64)
    inv = jt.linalg.inv(x)
    assert inv.dtype == dtype
    np.testing.assert_allclose(inv.numpy(), np.linalg.inv(ref), **tol(dtype))
    det_shape = shape[:-2] or (1,)      # Jittor: (1,) for one matrix
    det = jt.linalg.det(x)
    assert det.shape == det_shape
    np.testing.assert_allclose(det.numpy(), np.linalg.det(ref).reshape(det_shape), **tol(dtype))
    sign, logdet = jt.linalg.slogdet(x)
    ref_sign, ref_log = np.linalg.slogdet(ref)
    np.testing.assert_array_equal(sign.numpy(), ref_sign.reshape(det_shape))
    np.testing.assert_allclose(logdet.numpy(), ref_log.reshape(det_shape), **tol(dtype))


def test_det_sign_and_singular_values():
    # a permutation (one swap) has det -1; a singular matrix det 0 and slogdet (0, -inf)
    x = jt.array(np.array([[0.0, 1.0], [1.0, 0.0]]))
    assert jt.linalg.det(x).item() == -1.0
    singular = jt.array(np.array([[1.0, 2.0], [2.0, 4.0]]))
    assert jt.linalg.det(singular).item() == 0.0
    sign, logdet = jt.linalg.slogdet(singular)
    assert sign.item() == 0.0 and logdet.item() == -np.inf


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_solve_matches_numpy_for_vectors_matrices_and_broadcast_batches(dtype):
    a = well_conditioned((2, 3, 3), dtype)
    b_vec = R.standard_normal((2, 3)).astype(dtype)
    got = jt.linalg.solve(jt.array(a), jt.array(b_vec))
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got.numpy(), np.linalg.solve(a, b_vec[..., None])[..., 0],
                               **tol(dtype))
    b_mat = R.standard_normal((4, 1, 3, 2)).astype(dtype)     # batch dims broadcast
    got = jt.linalg.solve(jt.array(a), jt.array(b_mat))
    assert got.shape == (4, 2, 3, 2)
    np.testing.assert_allclose(got.numpy(), np.linalg.solve(a, b_mat), **tol(dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(4, 4), (2, 3, 3)])
def test_cholesky_matches_numpy(dtype, shape):
    a = spd(shape, dtype)
    low = jt.linalg.cholesky(jt.array(a))
    np.testing.assert_allclose(low.numpy(), np.linalg.cholesky(a.astype(np.float64)), **tol(dtype))
    # only the lower triangle is read
    upper_garbage = a + np.triu(np.full(shape, 7.0, dtype), 1)
    np.testing.assert_array_equal(jt.linalg.cholesky(jt.array(upper_garbage)).numpy(), low.numpy())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(4, 3), (3, 3), (2, 3, 5), (2, 2, 5, 4)])
def test_qr_matches_numpy(dtype, shape):
    a = R.standard_normal(shape).astype(dtype)
    q, r = jt.linalg.qr(jt.array(a))
    ref_q, ref_r = np.linalg.qr(a.astype(np.float64))
    k = min(shape[-2:])
    assert q.shape == shape[:-1] + (k,) and r.shape == shape[:-2] + (k, shape[-1])
    # columns are determined up to sign: fix the signs by r's diagonal
    signs = np.sign(np.diagonal(r.numpy(), axis1=-2, axis2=-1)) * \
        np.sign(np.diagonal(ref_r, axis1=-2, axis2=-1))
    np.testing.assert_allclose(q.numpy() * signs[..., None, :], ref_q, **tol(dtype))
    np.testing.assert_allclose(r.numpy() * signs[..., :, None], ref_r, **tol(dtype))
    np.testing.assert_array_equal(np.tril(r.numpy()[..., :, :k], -1), 0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(5, 3), (3, 3), (3, 5), (2, 2, 5, 4)])
def test_svd_and_pinv_match_numpy(dtype, shape):
    a = R.standard_normal(shape).astype(dtype)
    u, s, v = jt.linalg.svd(jt.array(a))
    ref_u, ref_s, ref_vh = np.linalg.svd(a.astype(np.float64), full_matrices=False)
    np.testing.assert_allclose(s.numpy(), ref_s, **tol(dtype))
    # singular vectors are determined up to a sign per pair: compare u v-row products
    signs = np.sign(np.sum(u.numpy() * ref_u, axis=-2))
    np.testing.assert_allclose(u.numpy() * signs[..., None, :], ref_u, **tol(dtype))
    np.testing.assert_allclose(v.numpy() * signs[..., :, None], ref_vh, **tol(dtype))
    np.testing.assert_allclose(jt.linalg.pinv(jt.array(a)).numpy(),
                               np.linalg.pinv(a.astype(np.float64)), **tol(dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(4, 4), (2, 3, 3)])
def test_eigh_matches_numpy_and_reads_the_lower_triangle(dtype, shape):
    a = R.standard_normal(shape).astype(dtype)     # not symmetric: the lower triangle counts
    w, v = jt.linalg.eigh(jt.array(a))
    ref_w, ref_v = np.linalg.eigh(a.astype(np.float64), UPLO="L")
    np.testing.assert_allclose(w.numpy(), ref_w, **tol(dtype))
    signs = np.sign(np.sum(v.numpy() * ref_v, axis=-2))
    np.testing.assert_allclose(v.numpy() * signs[..., None, :], ref_v, **tol(dtype))


def test_integer_input_is_computed_in_float32():
    x = jt.array(np.array([[2, 1], [1, 3]], dtype=np.int32))
    inv = jt.linalg.inv(x)
    assert inv.dtype == "float32"
    np.testing.assert_allclose(inv.numpy(), np.linalg.inv([[2.0, 1.0], [1.0, 3.0]]), rtol=1e-6)


def test_degenerate_spectra_give_finite_values_and_eigenvalue_gradients():
    # repeated eigenvalues / singular values have no eigenvector derivative; the
    # values must still be exact and the well-defined gradients finite
    x = jt.array(np.eye(3))
    w, v = jt.linalg.eigh(x)
    np.testing.assert_array_equal(w.numpy(), np.ones(3))
    np.testing.assert_array_equal(np.abs(v.numpy()), np.eye(3))
    np.testing.assert_allclose(jt.grad(w.sum(), x).numpy(), np.eye(3))
    rank_one = jt.array(np.outer([1.0, 2.0, 3.0], [1.0, -1.0, 2.0]))
    u, s, vh = jt.linalg.svd(rank_one)
    assert np.all(np.isfinite(u.numpy())) and np.all(np.isfinite(vh.numpy()))
    g = jt.grad(s.sum(), rank_one).numpy()
    assert np.all(np.isfinite(g))


# ---------------------------------------------------------------------------
# gradients (float64, central differences)
# ---------------------------------------------------------------------------

def test_inv_det_slogdet_gradients():
    a = well_conditioned((2, 3, 3))
    grads = check_gradient(jt.linalg.inv, [a])
    check_gradient(jt.linalg.det, [a])
    check_gradient(lambda x: jt.linalg.slogdet(x)[1], [a])
    # the closed forms: d sum(det) = det * A^-T, d sum(log|det|) = A^-T
    x = jt.array(a)
    expected = np.linalg.det(a)[:, None, None] * np.swapaxes(np.linalg.inv(a), -1, -2)
    np.testing.assert_allclose(jt.grad(jt.linalg.det(x).sum(), x).numpy(), expected, rtol=1e-10)
    assert grads[0].shape == a.shape


def test_det_gradient_at_a_singular_matrix_is_the_adjugate():
    a = np.array([[1.0, 2.0, 0.0], [2.0, 4.0, 0.0], [0.0, 0.0, 3.0]])   # rank 2
    adjugate = np.array([[12.0, -6.0, 0.0], [-6.0, 3.0, 0.0], [0.0, 0.0, 0.0]])
    x = jt.array(a)
    np.testing.assert_allclose(jt.grad(jt.linalg.det(x).sum(), x).numpy(), adjugate.T,
                               atol=1e-12)


def test_solve_gradients_for_both_operands_with_broadcast_batch():
    a = well_conditioned((3, 3))
    b = R.standard_normal((2, 3, 3))          # a's batch broadcasts against b's
    ga, gb = check_gradient(jt.linalg.solve, [a, b])
    assert ga.shape == a.shape and gb.shape == b.shape
    check_gradient(jt.linalg.solve, [well_conditioned((2, 3, 3)), R.standard_normal((2, 3))])


def test_decomposition_gradients():
    def symmetric(f):
        # eigh and cholesky take symmetric input; build it from a free matrix
        return lambda x: f(x + x.transpose(-2, -1) + jt.array(6 * np.eye(3)))

    check_gradient(symmetric(jt.linalg.cholesky), [R.standard_normal((2, 3, 3))])
    check_gradient(symmetric(jt.linalg.eigh), [R.standard_normal((2, 3, 3))])
    # square and tall matrices share qr's and svd's formulas; wide ones add terms
    for shape in [(2, 4, 3), (2, 3, 4)]:
        a = R.standard_normal(shape)
        check_gradient(jt.linalg.qr, [a])
        check_gradient(jt.linalg.svd, [a])
    check_gradient(jt.linalg.pinv, [R.standard_normal((2, 4, 3))])


def test_eigh_gradient_follows_jittor_for_symmetric_perturbations():
    # Jittor's (and PyTorch's) eigenvalue gradient is V diag(gw) V^T
    a = spd((3, 3))
    x = jt.array(a)
    w, v = jt.linalg.eigh(x)
    gw = R.standard_normal(3)
    ref_w, ref_v = np.linalg.eigh(a)
    np.testing.assert_allclose(jt.grad((w * jt.array(gw)).sum(), x).numpy(),
                               ref_v @ np.diag(gw) @ ref_v.T, rtol=1e-10, atol=1e-12)


def test_second_derivatives():
    check_second_derivative(jt.linalg.inv, well_conditioned((2, 3, 3)))
    check_second_derivative(jt.linalg.det, well_conditioned((2, 3, 3)))
    check_second_derivative(jt.linalg.svd, R.standard_normal((2, 4, 3)))


def test_repeated_calls_keep_memory_flat():
    # a gradient rule holds its input, never its outputs (no cycle through the core)
    x = jt.array(well_conditioned((3, 3)))

    def step():
        u, s, v = jt.linalg.svd(x)
        loss = jt.linalg.inv(x).sum() + s.sum() + jt.linalg.det(x).sum()
        jt.grad(loss, x).numpy()

    for _ in range(2):
        step()
    gc.collect()
    before = jt.counters()["vars_alive"]
    for _ in range(10):
        step()
    gc.collect()
    assert jt.counters()["vars_alive"] == before


def test_gradient_is_lazy_and_float32_gradients_work():
    a = well_conditioned((2, 3, 3), "float32")
    x = jt.array(a)
    g = jt.grad(jt.linalg.inv(x).sum(), x)
    assert not g.is_computed          # built from kiln ops, computed on demand
    inv = np.linalg.inv(a.astype(np.float64))
    expected = -np.swapaxes(inv, -1, -2) @ np.ones((2, 3, 3)) @ np.swapaxes(inv, -1, -2)
    np.testing.assert_allclose(g.numpy(), expected, rtol=1e-4, atol=1e-4)
    assert g.dtype == "float32"


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------

def test_singular_and_non_square_matrices_raise_clear_errors():
    singular = jt.array(np.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 2.0], [2.0, 4.0]]]))
    with pytest.raises(LinAlgError,
                       match=r"inv: singular matrix \(batch index \(1,\)\).*\(2, 2, 2\)"):
        jt.linalg.inv(singular)
    with pytest.raises(LinAlgError, match=r"solve: singular matrix"):
        jt.linalg.solve(singular, jt.array(np.ones((2, 2))))
    for fn in (jt.linalg.inv, jt.linalg.det, jt.linalg.slogdet, jt.linalg.cholesky,
               jt.linalg.eigh):
        with pytest.raises(LinAlgError, match=r"expected square matrices .*\(2, 3\)"):
            fn(jt.array(np.ones((2, 3))))
    with pytest.raises(LinAlgError, match=r"svd: expected a matrix .*\(3,\)"):
        jt.linalg.svd(jt.array(np.ones(3)))
    with pytest.raises(LinAlgError, match=r"cholesky: .*not positive definite"):
        jt.linalg.cholesky(jt.array(np.array([[1.0, 2.0], [2.0, 1.0]])))
    with pytest.raises(LinAlgError, match=r"solve: b of shape \(4,\)"):
        jt.linalg.solve(jt.array(np.eye(3)), jt.array(np.ones(4)))
    with pytest.raises(LinAlgError, match="non-finite"):
        jt.linalg.svd(jt.array(np.array([[np.nan, 1.0], [0.0, 1.0]])))
    assert issubclass(LinAlgError, ValueError)


# ---------------------------------------------------------------------------
# einsum
# ---------------------------------------------------------------------------

EINSUM_CASES = [
    ("ij->ji", [(3, 4)]),
    ("ii->i", [(4, 4)]),
    ("ii", [(4, 4)]),                              # implicit output: the trace
    ("iji->j", [(3, 2, 3)]),
    ("...ii->...i", [(2, 3, 3)]),
    ("ij,jk", [(3, 4), (4, 5)]),                   # implicit: 'ik'
    ("ba,cb", [(4, 3), (5, 4)]),                   # implicit, alphabetical: 'ac'
    ("i,i", [(5,), (5,)]),
    ("bij,bjk->bki", [(2, 3, 4), (2, 4, 5)]),
    ("i...j,j...k->...ik", [(2, 4, 3, 5), (5, 4, 3, 6)]),
    ("...ij,jk->...ik", [(2, 3, 3, 4), (4, 5)]),
    ("ijk,jil->kl", [(3, 4, 5), (4, 3, 2)]),
    ("ab,ab,ab->", [(2, 3)] * 3),
    ("ij,jk,kl,lm->im", [(2, 3), (3, 4), (4, 5), (5, 2)]),
    ("i,j,k->kji", [(2,), (3,), (4,)]),
    ("ij,ij->", [(3, 1), (1, 4)]),                 # size-1 dims broadcast
    ("bi,bj->bij", [(1, 3), (4, 2)]),
    (",ij->ij", [(), (2, 3)]),                     # a scalar operand
    ("a b , b c -> a c", [(2, 3), (3, 4)]),        # spaces are ignored
]


# float32 on a few equations only: each (equation, dtype) compiles its own kernels
EINSUM_FLOAT32 = {"ii->i", "bij,bjk->bki", "i...j,j...k->...ik", "ij,ij->", "ij,jk,kl,lm->im"}


@pytest.mark.parametrize("equation,shapes,dtype",
                         [(e, s, "float64") for e, s in EINSUM_CASES] +
                         [(e, s, "float32") for e, s in EINSUM_CASES if e in EINSUM_FLOAT32])
def test_einsum_matches_numpy(equation, shapes, dtype):
    arrays = [R.standard_normal(s).astype(dtype) for s in shapes]
    got = jt.linalg.einsum(equation, *[jt.array(a) for a in arrays])
    expected = np.einsum(equation, *[a.astype(np.float64) for a in arrays])
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected, **tol(dtype))


def test_einsum_accepts_a_list_of_operands_and_numpy_arrays():
    a, b = R.standard_normal((2, 3)), R.standard_normal((3, 4))
    np.testing.assert_allclose(jt.linalg.einsum("ij,jk->ik", [jt.array(a), b]).numpy(), a @ b)


def test_einsum_is_lazy_and_differentiable():
    a = jt.random((3, 4)) * 2
    b = jt.random((4, 5)) + 1
    y = jt.linalg.einsum("ij,jk->ik", a, b)
    assert not a.is_computed and not y.is_computed
    check_gradient(lambda x, y: jt.linalg.einsum("bij,bjk->bik", x, y),
                   [R.standard_normal((2, 3, 4)), R.standard_normal((2, 4, 2))])
    check_gradient(lambda x: jt.linalg.einsum("iij->j", x), [R.standard_normal((3, 3, 2))])
    check_gradient(lambda x, y, z: jt.linalg.einsum("i,ij,j->", x, y, z),
                   [R.standard_normal(3), R.standard_normal((3, 4)), R.standard_normal(4)])
    check_gradient(lambda x, y: jt.linalg.einsum("ij,ij->i", x, y),
                   [R.standard_normal((3, 1)), R.standard_normal((3, 4))])


@pytest.mark.parametrize("equation,shapes,message", [
    ("i,i->", [(3,), (4,)], r"subscript 'i' has size 3 in operand 0 but 4 in operand 1"),
    ("ij->i", [(3,)], r"operand 0 has 1 dims but its subscripts .* name 2"),
    ("i,j->ij", [(3,)], r"2 input terms but 1 operands"),
    ("i->j", [(3,)], r"output subscript 'j' does not appear"),
    ("ij->ii", [(3, 3)], r"output subscript 'i' repeated"),
    ("i1->i", [(3, 3)], r"invalid subscript '1'"),
    ("i.->i", [(3, 3)], r"'\.' must come as an ellipsis"),
    ("i->i->i", [(3,)], r"more than one '->'"),
    ("i->...", [(3,)], r"ellipsis but no input has"),
    ("ii->i", [(3, 4)], r"repeated subscript 'i' spans dims of sizes 3 and 4"),
    ("...i...->i", [(3, 4)], r"more than one ellipsis"),
])
def test_einsum_bad_equations_raise(equation, shapes, message):
    with pytest.raises(ValueError, match=message):
        jt.linalg.einsum(equation, *[jt.array(np.ones(s)) for s in shapes])


def test_einsum_needs_operands_and_a_string():
    with pytest.raises(ValueError, match="at least one operand"):
        jt.linalg.einsum("i->i")
    with pytest.raises(TypeError, match="must be a string"):
        jt.linalg.einsum(3, jt.array(np.ones(2)))
