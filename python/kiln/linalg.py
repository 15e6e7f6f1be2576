"""jt.linalg (Jittor's jittor.linalg): einsum, and the matrix functions inv, det,
slogdet, solve, cholesky, qr, svd, eigh and pinv.

einsum is built from kiln's lazy ops (reindex, sum, permute, reshape, matmul), so it
stays lazy and autograd differentiates it like any other expression.

The matrix functions compute their values with LAPACK (OpenBLAS or the reference
liblapack, loaded with ctypes; the d- routines for float64, the s- routines for
everything else), one matrix of a batch (..., m, n) at a time. That needs the input's
value, so calling one of them computes its input.

Gradients: each function is a jt.Function (kiln's custom-gradient op): its outputs
hold LAPACK's values, and when jt.grad reaches them it calls the function's rule,
which returns the input's gradient as kiln ops (the standard matrix-calculus
formulas, e.g. inv: -Y^T g Y^T), so gradients are lazy. A rule's coefficients (Y in
that example) are computed again from the differentiable input (inv(x), not a saved
constant), so a gradient can itself be differentiated: second and higher derivatives
are exact. (Keeping the outputs instead would make each output's rule hold the output
itself, a reference cycle through the core that Python cannot collect.)

Gradient conventions follow Jittor (and PyTorch): eigh and cholesky read one triangle
of their input, but their gradients are the ones for symmetric perturbations (eigh:
V (diag(gw) + F o V^T gV) V^T; cholesky: symmetrised). Where a gradient does not exist
(svd/eigh with exactly repeated values, zero singular values in the terms that divide
by them, rank-deficient qr, slogdet of a singular matrix) those terms are taken as 0,
a choice that is exact for losses that do not depend on the arbitrary basis of a
repeated eigen/singular space.
"""
import ctypes
import ctypes.util

import numpy as np

from ._core import Var, array, cast, to_var, where
from ._create import eye
from ._function import Function
from ._reduce import matmul
from ._shape import concat, permute, reindex, reshape

__all__ = ["LinAlgError", "einsum", "inv", "det", "slogdet", "solve", "cholesky", "qr",
           "svd", "eigh", "pinv"]


class LinAlgError(ValueError):
    """A matrix function got a matrix it is not defined for (singular, not positive
    definite, not square) or LAPACK failed to converge (NumPy's LinAlgError)."""


# ---------------------------------------------------------------------------
# LAPACK through ctypes
# ---------------------------------------------------------------------------

_LAPACK_CANDIDATES = ("openblas", "lapack")
_LAPACK_SONAMES = ("libopenblas.so.0", "libopenblas.so", "liblapack.so.3", "liblapack.so")
_lapack_lib = None


def _lapack():
    """The LAPACK library, loaded on first use (so that importing kiln never needs it)."""
    global _lapack_lib
    if _lapack_lib is None:
        tried = []
        names = [ctypes.util.find_library(n) for n in _LAPACK_CANDIDATES]
        for name in [n for n in names if n] + list(_LAPACK_SONAMES):
            try:
                lib = ctypes.CDLL(name)
            except OSError:
                tried.append(name)
                continue
            if hasattr(lib, "dgesdd_") and hasattr(lib, "sgetrf_"):
                _lapack_lib = lib
                break
            tried.append(name)
        if _lapack_lib is None:
            raise OSError("jt.linalg needs LAPACK (OpenBLAS or liblapack); none could be loaded "
                          f"(tried {', '.join(tried)}). Install libopenblas0 or liblapack3.")
    return _lapack_lib


def _i(v):
    return ctypes.byref(ctypes.c_int(int(v)))


def _p(a):
    return a.ctypes.data_as(ctypes.c_void_p)


def _ch(c):
    return ctypes.c_char_p(c.encode())


_ONE_CHAR = ctypes.c_size_t(1)   # gfortran's hidden length of a CHARACTER argument


class _Routines:
    """LAPACK routines on one column-major (Fortran-ordered) matrix of dtype float32 or
    float64. Each returns LAPACK's info."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self.prefix = "d" if self.dtype == np.float64 else "s"
        self.lib = _lapack()

    def _fn(self, name):
        return getattr(self.lib, self.prefix + name + "_")

    def _work(self, query):
        """Runs a workspace query (lwork = -1) and returns the workspace array."""
        size = np.zeros(1, self.dtype)
        query(size)
        return np.zeros(max(1, int(size[0])), self.dtype)

    def getrf(self, a, ipiv):
        m, n = a.shape
        info = ctypes.c_int(0)
        self._fn("getrf")(_i(m), _i(n), _p(a), _i(max(1, m)), _p(ipiv), ctypes.byref(info))
        return info.value

    def getri(self, a, ipiv):
        n = a.shape[0]
        info = ctypes.c_int(0)
        f = self._fn("getri")
        work = self._work(lambda w: f(_i(n), _p(a), _i(max(1, n)), _p(ipiv), _p(w), _i(-1),
                                      ctypes.byref(info)))
        f(_i(n), _p(a), _i(max(1, n)), _p(ipiv), _p(work), _i(work.size), ctypes.byref(info))
        return info.value

    def gesv(self, a, b, ipiv):
        n, nrhs = b.shape
        info = ctypes.c_int(0)
        self._fn("gesv")(_i(n), _i(nrhs), _p(a), _i(max(1, n)), _p(ipiv), _p(b), _i(max(1, n)),
                         ctypes.byref(info))
        return info.value

    def potrf(self, a):
        n = a.shape[0]
        info = ctypes.c_int(0)
        self._fn("potrf")(_ch("L"), _i(n), _p(a), _i(max(1, n)), ctypes.byref(info), _ONE_CHAR)
        return info.value

    def geqrf(self, a, tau):
        m, n = a.shape
        info = ctypes.c_int(0)
        f = self._fn("geqrf")
        work = self._work(lambda w: f(_i(m), _i(n), _p(a), _i(max(1, m)), _p(tau), _p(w),
                                      _i(-1), ctypes.byref(info)))
        f(_i(m), _i(n), _p(a), _i(max(1, m)), _p(tau), _p(work), _i(work.size),
          ctypes.byref(info))
        return info.value

    def orgqr(self, a, tau):
        m, k = a.shape
        info = ctypes.c_int(0)
        f = self._fn("orgqr")
        work = self._work(lambda w: f(_i(m), _i(k), _i(k), _p(a), _i(max(1, m)), _p(tau),
                                      _p(w), _i(-1), ctypes.byref(info)))
        f(_i(m), _i(k), _i(k), _p(a), _i(max(1, m)), _p(tau), _p(work), _i(work.size),
          ctypes.byref(info))
        return info.value

    def gesdd(self, a, s, u, vt):
        m, n = a.shape
        k = min(m, n)
        info = ctypes.c_int(0)
        iwork = np.zeros(max(1, 8 * k), np.int32)
        f = self._fn("gesdd")

        def call(work, lwork):
            f(_ch("S"), _i(m), _i(n), _p(a), _i(max(1, m)), _p(s), _p(u), _i(max(1, m)), _p(vt),
              _i(max(1, k)), _p(work), _i(lwork), _p(iwork), ctypes.byref(info), _ONE_CHAR)

        work = self._work(lambda w: call(w, -1))
        call(work, work.size)
        return info.value

    def syevd(self, a, w):
        n = a.shape[0]
        info = ctypes.c_int(0)
        f = self._fn("syevd")
        size, isize = np.zeros(1, self.dtype), np.zeros(1, np.int32)

        def call(work, lwork, iwork, liwork):
            f(_ch("V"), _ch("L"), _i(n), _p(a), _i(max(1, n)), _p(w), _p(work), _i(lwork),
              _p(iwork), _i(liwork), ctypes.byref(info), _ONE_CHAR, _ONE_CHAR)

        call(size, -1, isize, -1)
        work = np.zeros(max(1, int(size[0])), self.dtype)
        iwork = np.zeros(max(1, int(isize[0])), np.int32)
        call(work, work.size, iwork, iwork.size)
        return info.value


# ---------------------------------------------------------------------------
# inputs: checks, values, batches
# ---------------------------------------------------------------------------

def _float_input(x):
    """x as a float32 or float64 Var (LAPACK's two real types)."""
    x = to_var(x)
    if x.dtype.name not in ("float32", "float64"):
        x = cast(x, "float32")
    return x


def _check_matrix(name, x, square=True):
    if x.ndim < 2:
        raise LinAlgError(f"{name}: expected a matrix or a batch of matrices (..., m, n), "
                          f"got shape {tuple(x.shape)}")
    if square and x.shape[-1] != x.shape[-2]:
        raise LinAlgError(f"{name}: expected square matrices (..., n, n), got shape "
                          f"{tuple(x.shape)}")


def _batch(a):
    """(..., m, n) NumPy array -> (batch, m, n) array and the batch shape."""
    return a.reshape((-1,) + a.shape[-2:]), a.shape[:-2]


def _where_in_batch(batch_shape, b):
    """'' for one matrix, else ' (batch index (i, j))' for error messages."""
    if not batch_shape:
        return ""
    return f" (batch index {tuple(int(i) for i in np.unravel_index(b, batch_shape))})"


def _values(x):
    """x's value as a NumPy array of x's dtype."""
    return np.asarray(x.numpy())


# ---------------------------------------------------------------------------
# values with gradients
# ---------------------------------------------------------------------------

class _Computed(Function):
    """Outputs whose values were computed outside the graph (by LAPACK) and whose
    gradients `rule(*douts)` gives: one gradient (or None) per input."""

    def __init__(self, values, dtype, rule):
        self.values, self.dtype, self.rule = values, dtype, rule

    def execute(self, *inputs):
        return [array(np.ascontiguousarray(v, dtype=self.dtype)) for v in self.values]

    def grad(self, *douts):
        return self.rule(*douts)


def _with_gradient(inputs, values, rule):
    """Vars holding `values` (from `inputs`), their gradients given by `rule`.
    The rule must not hold the outputs (see the module docstring)."""
    return _Computed(values, inputs[0].dtype.np, rule)(*inputs)


# small helpers on Vars (the last two dims are the matrix)

def _mT(x):
    return x.transpose(-2, -1)


def _eye_like(n, x):
    return eye(n, dtype=x.dtype).detach()


def _diagonal(x):
    """(..., n, n) -> (..., n)."""
    return (x * _eye_like(x.shape[-1], x)).sum(-1)


def _diag_embed(v):
    """(..., n) -> (..., n, n) with v on the diagonal."""
    return v.unsqueeze(-1) * _eye_like(v.shape[-1], v)


def _mask(array_bool, like):
    """A constant of like's dtype from a NumPy bool array."""
    return array(np.ascontiguousarray(array_bool, dtype=like.dtype.np)).detach()


def _batch_mask(per_matrix, like):
    """A (..., 1, 1) constant from one bool per matrix."""
    return _mask(per_matrix.reshape(per_matrix.shape + (1, 1)), like)


def _sum_to(g, shape):
    """g summed over the dims that broadcasting added to reach it from `shape`."""
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    lead = g.ndim - len(shape)
    dims = list(range(lead)) + [lead + i for i, s in enumerate(shape)
                                if s == 1 and g.shape[lead + i] != 1]
    return reshape(g.sum(dims) if dims else g, shape)


def _pairwise_inverse_gaps(v, values):
    """F[..., i, j] = 1 / (v_j - v_i) for i != j, and 0 where v_i == v_j exactly
    (including the diagonal): those pairs have no derivative (see the module
    docstring). `values` is v's value, which decides where."""
    defined = (values[..., None, :] - values[..., :, None]) != 0
    keep = _mask(defined, v)
    gap = v.unsqueeze(-2) - v.unsqueeze(-1)
    return where(keep, 1.0 / where(keep, gap, 1.0), 0.0)


def _reciprocal_where_nonzero(v, values):
    """1 / v where v's value is not zero, else 0."""
    keep = _mask(values != 0, v)
    return where(keep, 1.0 / where(keep, v, 1.0), 0.0)


# ---------------------------------------------------------------------------
# the matrix functions
# ---------------------------------------------------------------------------

def _lu(x_np, routines):
    """LU factors (lu, ipiv, info) of each matrix of x_np, and the batch shape."""
    mats, batch_shape = _batch(x_np)
    factors = []
    for a in mats:
        lu = np.array(a, dtype=routines.dtype, order="F")
        ipiv = np.zeros(a.shape[0], np.int32)
        factors.append((lu, ipiv, routines.getrf(lu, ipiv)))
    return factors, batch_shape


def _singular_error(name, shape, batch_shape, b, routine, info):
    return LinAlgError(f"{name}: singular matrix{_where_in_batch(batch_shape, b)} in input of "
                       f"shape {tuple(shape)} (LAPACK {routine} info={info}: U[{info - 1}, "
                       f"{info - 1}] is exactly zero)")


def inv(x):
    """The inverse of each matrix of x (..., n, n). Raises LinAlgError for a singular one."""
    x = _float_input(x)
    _check_matrix("inv", x)
    x_np = _values(x)
    routines = _Routines(x_np.dtype)
    factors, batch_shape = _lu(x_np, routines)
    results = []
    for b, (lu, ipiv, info) in enumerate(factors):
        if info > 0:
            raise _singular_error("inv", x.shape, batch_shape, b, routines.prefix + "getrf", info)
        info = routines.getri(lu, ipiv)
        if info > 0:
            raise _singular_error("inv", x.shape, batch_shape, b, routines.prefix + "getri", info)
        results.append(lu)
    value = np.array(results).reshape(x.shape)

    def rule(g):
        y_t = _mT(inv(x))
        return -matmul(matmul(y_t, g), y_t)

    return _with_gradient([x], [value], rule)[0]


def _lu_determinants(factors):
    """(sign, log|det|) of each LU-factored matrix (0 and -inf where singular)."""
    signs, logs = [], []
    for lu, ipiv, info in factors:
        d = np.diagonal(lu).astype(np.float64)
        swaps = np.count_nonzero(ipiv != np.arange(1, ipiv.size + 1))
        signs.append((-1.0) ** swaps * np.prod(np.sign(d)))
        with np.errstate(divide="ignore"):
            logs.append(np.sum(np.log(np.abs(d))))
    return np.array(signs), np.array(logs)


def _det_shape(x):
    # Jittor returns shape (1,) for a single matrix
    return tuple(x.shape[:-2]) or (1,)


def _safe_inverse(x, invertible):
    """inv(x) where `invertible` (a NumPy bool per matrix), the identity elsewhere."""
    if invertible.all():
        return inv(x)
    return inv(where(_batch_mask(invertible, x), x, _eye_like(x.shape[-1], x)))


def _adjugate_from_svd(a):
    """adj(a) of a singular float64 matrix: det(U) det(V) V diag(prod_{j!=i} s_j) U^T."""
    u, s, vt = np.linalg.svd(a)
    cofactors = np.array([np.prod(np.delete(s, i)) for i in range(s.size)])
    return np.linalg.det(u) * np.linalg.det(vt) * (vt.T * cofactors) @ u.T


def det(x):
    """The determinant of each matrix of x (..., n, n): shape (...), (1,) for one matrix."""
    x = _float_input(x)
    _check_matrix("det", x)
    x_np = _values(x)
    factors, batch_shape = _lu(x_np, _Routines(x_np.dtype))
    signs, logs = _lu_determinants(factors)
    invertible = np.array([info == 0 for _, _, info in factors]).reshape(batch_shape)
    value = (signs * np.exp(logs)).reshape(_det_shape(x))

    def rule(g):
        # d det = tr(adj(A) dA), adj(A) = det(A) inv(A) where A is invertible
        g = reshape(g, batch_shape).unsqueeze(-1).unsqueeze(-1)
        d = reshape(det(x), batch_shape).unsqueeze(-1).unsqueeze(-1)
        adj_t = d * _mT(_safe_inverse(x, invertible))
        if not invertible.all():
            # at an exactly singular matrix the adjugate comes from the SVD, as a
            # constant: its own derivative is not provided there
            adj = np.zeros((len(factors),) + x_np.shape[-2:], np.float64)
            for b, a in enumerate(x_np.reshape(adj.shape)):
                if not invertible.reshape(-1)[b]:
                    adj[b] = _adjugate_from_svd(a.astype(np.float64))
            adj_singular = array(np.swapaxes(adj, -1, -2).reshape(x_np.shape).astype(x_np.dtype))
            adj_t = where(_batch_mask(invertible, x), adj_t, adj_singular.detach())
        return g * adj_t

    return _with_gradient([x], [value], rule)[0]


def slogdet(x):
    """(sign, log|det|) of each matrix of x (..., n, n); sign 0 and -inf for a singular
    one. Shapes (...), (1,) for one matrix."""
    x = _float_input(x)
    _check_matrix("slogdet", x)
    x_np = _values(x)
    factors, batch_shape = _lu(x_np, _Routines(x_np.dtype))
    signs, logs = _lu_determinants(factors)
    invertible = np.array([info == 0 for _, _, info in factors]).reshape(batch_shape)
    shape = _det_shape(x)

    def rule(g_sign, g_log):
        # d log|det| = tr(inv(A) dA); the sign is piecewise constant
        g = reshape(g_log, batch_shape).unsqueeze(-1).unsqueeze(-1)
        a_inv_t = _mT(_safe_inverse(x, invertible))
        if not invertible.all():   # log|det| has no derivative at a singular matrix
            a_inv_t = a_inv_t * _batch_mask(invertible, x)
        return g * a_inv_t

    return tuple(_with_gradient([x], [signs.reshape(shape), logs.reshape(shape)], rule))


def solve(a, b):
    """x with a @ x = b. a: (..., n, n); b: (..., n) (a vector per matrix, when b has one
    dim fewer than a) or (..., n, k). Batch dims broadcast. Raises LinAlgError for a
    singular a."""
    a, b = _float_input(a), _float_input(b)
    _check_matrix("solve", a)
    if a.dtype != b.dtype:   # compute in the wider type
        wide = "float64" if "float64" in (a.dtype.name, b.dtype.name) else "float32"
        a, b = cast(a, wide), cast(b, wide)
    n = a.shape[-1]
    vector = b.ndim == a.ndim - 1
    b_mat = b.unsqueeze(-1) if vector else b
    if b_mat.ndim < 2 or b_mat.shape[-2] != n:
        raise LinAlgError(f"solve: b of shape {tuple(b.shape)} does not match a of shape "
                          f"{tuple(a.shape)} (b needs {n} rows)")
    try:
        batch_shape = tuple(np.broadcast_shapes(a.shape[:-2], b_mat.shape[:-2]))
    except ValueError:
        raise LinAlgError(f"solve: batch dims of a {tuple(a.shape)} and b {tuple(b.shape)} "
                          "do not broadcast") from None
    k = b_mat.shape[-1]
    a_np = np.broadcast_to(_values(a), batch_shape + (n, n)).reshape(-1, n, n)
    b_np = np.broadcast_to(_values(b_mat), batch_shape + (n, k)).reshape(-1, n, k)
    routines = _Routines(a_np.dtype)
    results = []
    for i, (am, bm) in enumerate(zip(a_np, b_np)):
        lu = np.array(am, order="F")
        rhs = np.array(bm, order="F")
        info = routines.gesv(lu, rhs, np.zeros(n, np.int32))
        if info > 0:
            raise _singular_error("solve", a.shape, batch_shape, i, routines.prefix + "gesv", info)
        results.append(rhs)
    value = np.array(results).reshape(batch_shape + (n, k))
    if vector:
        value = value[..., 0]

    def rule(g):
        # X = A^-1 B: gB = A^-T gX, gA = -gB X^T
        g_mat = g.unsqueeze(-1) if vector else g
        x_sol = solve(a, b)
        x_mat = x_sol.unsqueeze(-1) if vector else x_sol
        gb = solve(_mT(a), g_mat)
        ga = -matmul(gb, _mT(x_mat))
        return _sum_to(ga, a.shape), _sum_to(gb[..., 0] if vector else gb, b.shape)

    return _with_gradient([a, b], [value], rule)[0]


def cholesky(x):
    """Lower-triangular L with x = L @ L^T for each symmetric positive-definite matrix of
    x (..., n, n); only x's lower triangle is read. Raises LinAlgError if one is not
    positive definite."""
    x = _float_input(x)
    _check_matrix("cholesky", x)
    x_np = _values(x)
    routines = _Routines(x_np.dtype)
    mats, batch_shape = _batch(x_np)
    results = []
    for b, a in enumerate(mats):
        low = np.array(a, order="F")
        info = routines.potrf(low)
        if info > 0:
            raise LinAlgError(f"cholesky: matrix{_where_in_batch(batch_shape, b)} of input "
                              f"shape {tuple(x.shape)} is not positive definite (LAPACK "
                              f"{routines.prefix}potrf info={info}: the leading minor of "
                              f"order {info} is not positive)")
        results.append(np.tril(low))
    value = np.array(results).reshape(x.shape)
    n = x.shape[-1]
    # Phi(X): the lower triangle with half the diagonal
    phi = np.tril(np.ones((n, n))) - 0.5 * np.eye(n)

    def rule(g):
        # dL = L Phi(L^-1 dA L^-T)  =>  S = L^-T Phi(L^T gL) L^-1, gA = (S + S^T) / 2
        low = cholesky(x)
        low_inv = inv(low)
        inner = matmul(_mT(low), g)
        s = matmul(matmul(_mT(low_inv), inner * _mask(phi, inner)), low_inv)
        return (s + _mT(s)) * 0.5

    return _with_gradient([x], [value], rule)[0]


def qr(x):
    """Reduced QR of each matrix of x (..., m, n): q (..., m, k) with orthonormal
    columns and upper-triangular r (..., k, n), k = min(m, n); LAPACK's signs (r's
    diagonal may be negative), as NumPy and PyTorch."""
    x = _float_input(x)
    _check_matrix("qr", x, square=False)
    x_np = _values(x)
    routines = _Routines(x_np.dtype)
    mats, batch_shape = _batch(x_np)
    m, n = x.shape[-2:]
    k = min(m, n)
    qs, rs = [], []
    for a in mats:
        f = np.array(a, order="F")
        tau = np.zeros(max(1, k), routines.dtype)
        routines.geqrf(f, tau)
        rs.append(np.triu(f[:k, :]))
        q = np.array(f[:, :k], order="F")
        routines.orgqr(q, tau)
        qs.append(q)
    q_value = np.array(qs).reshape(batch_shape + (m, k))
    r_value = np.array(rs).reshape(batch_shape + (k, n))
    # the rule inverts r's leading k x k block: where that is singular the gradient
    # does not exist and is taken as 0 (see the module docstring)
    invertible = np.all(np.diagonal(r_value[..., :k], axis1=-2, axis2=-1) != 0, axis=-1)
    lower = np.tril(np.ones((k, k)))
    strict_lower = np.tril(np.ones((k, k)), -1)

    def rule(gq, gr):
        q, r = qr(x)
        r1 = r if n == k else r[..., :k]
        gr1 = gr if n == k else gr[..., :k]
        if n > k:
            # wide: x = [X | Y], r = [R1 | Q^T Y]: Y gets Q gR2, and Q gets Y gR2^T
            gy = matmul(q, gr[..., k:])
            gq = gq + matmul(x[..., k:], _mT(gr[..., k:]))
        # square or tall part: M = R1 gR1^T - gQ^T Q, gX = (gQ + Q copyltu(M)) R1^-T,
        # copyltu(M) = tril(M) + tril(M, -1)^T
        mm = matmul(r1, _mT(gr1)) - matmul(_mT(gq), q)
        sym = mm * _mask(lower, mm) + _mT(mm * _mask(strict_lower, mm))
        r1_inv_t = _mT(_safe_inverse(r1, invertible))
        if not invertible.all():
            r1_inv_t = r1_inv_t * _batch_mask(invertible, r1)
        gx = matmul(gq + matmul(q, sym), r1_inv_t)
        return gx if n == k else concat([gx, gy], -1)

    return tuple(_with_gradient([x], [q_value, r_value], rule))


def _svd_values(name, x_np, routines):
    """(u, s, vh) of each matrix, reduced (k = min(m, n)), as NumPy arrays."""
    if not np.all(np.isfinite(x_np)):
        raise LinAlgError(f"{name}: input of shape {x_np.shape} has non-finite values")
    mats, batch_shape = _batch(x_np)
    m, n = x_np.shape[-2:]
    k = min(m, n)
    us, ss, vts = [], [], []
    for b, a in enumerate(mats):
        f = np.array(a, order="F")
        s = np.zeros(k, routines.dtype)
        u = np.zeros((m, k), routines.dtype, order="F")
        vt = np.zeros((k, n), routines.dtype, order="F")
        info = routines.gesdd(f, s, u, vt)
        if info > 0:
            raise LinAlgError(f"{name}: SVD did not converge for matrix"
                              f"{_where_in_batch(batch_shape, b)} of input shape "
                              f"{x_np.shape} (LAPACK {routines.prefix}gesdd info={info})")
        us.append(u)
        ss.append(s)
        vts.append(vt)
    return (np.array(us).reshape(batch_shape + (m, k)), np.array(ss).reshape(batch_shape + (k,)),
            np.array(vts).reshape(batch_shape + (k, n)))


def svd(x):
    """Reduced SVD of each matrix of x (..., m, n): (u, s, v) with x = u @ diag(s) @ v,
    u (..., m, k), s (..., k) descending, v (..., k, n) (Jittor's v is V^T), k = min(m, n)."""
    x = _float_input(x)
    _check_matrix("svd", x, square=False)
    x_np = _values(x)
    values = _svd_values("svd", x_np, _Routines(x_np.dtype))
    s_value = values[1]
    m, n = x.shape[-2:]
    k = min(m, n)

    def rule(gu, gs, gvh):
        # with F_ij = 1/(s_j^2 - s_i^2), Ju = F o U^T gU, Jv = F o V^T gV:
        # gA = U [(Ju + Ju^T) S + S (Jv + Jv^T) + diag(gs)] V^T
        #      + (I - U U^T) gU S^-1 V^T + U S^-1 gV^T (I - V V^T)
        u, s, vh = svd(x)
        v, gv = _mT(vh), _mT(gvh)
        f = _pairwise_inverse_gaps(s * s, s_value * s_value)
        ju = f * matmul(_mT(u), gu)
        jv = f * matmul(vh, gv)
        inner = (ju + _mT(ju)) * s.unsqueeze(-2) + s.unsqueeze(-1) * (jv + _mT(jv)) \
            + _diag_embed(gs)
        ga = matmul(matmul(u, inner), vh)
        if m > k or n > k:
            s_inv = _reciprocal_where_nonzero(s, s_value)
            if m > k:
                ga = ga + matmul((gu - matmul(u, matmul(_mT(u), gu))) * s_inv.unsqueeze(-2), vh)
            if n > k:
                ga = ga + matmul(u * s_inv.unsqueeze(-2), _mT(gv - matmul(v, matmul(vh, gv))))
        return ga

    return tuple(_with_gradient([x], list(values), rule))


def eigh(x):
    """Eigenvalues (ascending) and eigenvectors of each symmetric matrix of x (..., n, n),
    reading its lower triangle: (w (..., n), v (..., n, n)) with x = v diag(w) v^T."""
    x = _float_input(x)
    _check_matrix("eigh", x)
    x_np = _values(x)
    if not np.all(np.isfinite(x_np)):
        raise LinAlgError(f"eigh: input of shape {x_np.shape} has non-finite values")
    routines = _Routines(x_np.dtype)
    mats, batch_shape = _batch(x_np)
    n = x.shape[-1]
    ws, vs = [], []
    for b, a in enumerate(mats):
        f = np.array(a, order="F")
        w = np.zeros(n, routines.dtype)
        info = routines.syevd(f, w)
        if info > 0:
            raise LinAlgError(f"eigh: eigenvalues did not converge for matrix"
                              f"{_where_in_batch(batch_shape, b)} of input shape "
                              f"{tuple(x.shape)} (LAPACK {routines.prefix}syevd info={info})")
        ws.append(w)
        vs.append(f)
    w_value = np.array(ws).reshape(batch_shape + (n,))
    v_value = np.array(vs).reshape(x.shape)

    def rule(gw, gv):
        # gA = V (diag(gw) + F o V^T gV) V^T, F_ij = 1/(w_j - w_i)
        w, v = eigh(x)
        f = _pairwise_inverse_gaps(w, w_value)
        return matmul(matmul(v, _diag_embed(gw) + f * matmul(_mT(v), gv)), _mT(v))

    return tuple(_with_gradient([x], [w_value, v_value], rule))


def pinv(x):
    """Moore-Penrose pseudo-inverse of each matrix of x (..., m, n) -> (..., n, m), from
    the SVD with singular values up to 1e-15 * max(s) dropped (NumPy's default)."""
    x = _float_input(x)
    _check_matrix("pinv", x, square=False)
    x_np = _values(x)
    u, s, vh = _svd_values("pinv", x_np, _Routines(x_np.dtype))
    cutoff = 1e-15 * (s.max(axis=-1, keepdims=True) if s.shape[-1] else 0)
    with np.errstate(divide="ignore"):
        s_inv = np.where(s > cutoff, 1.0 / s, 0.0).astype(x_np.dtype)
    value = np.matmul(np.swapaxes(vh, -1, -2) * s_inv[..., None, :], np.swapaxes(u, -1, -2))

    def rule(g):
        # for constant rank: gA = -P^T g P^T + (I - A P) g^T P P^T + P^T P g^T (I - P A)
        p = pinv(x)
        p_t, g_t = _mT(p), _mT(g)
        term1 = -matmul(matmul(p_t, g), p_t)
        term2 = matmul(g_t - matmul(x, matmul(p, g_t)), matmul(p, p_t))
        term3 = matmul(matmul(p_t, p), g_t - matmul(matmul(g_t, p), x))
        return term1 + term2 + term3

    return _with_gradient([x], [value], rule)[0]


# ---------------------------------------------------------------------------
# einsum
# ---------------------------------------------------------------------------

def _parse_term(term, equation, where_):
    """Labels of one subscript term: letters, and the ellipsis as the label None."""
    labels, i = [], 0
    while i < len(term):
        c = term[i]
        if c == ".":
            if term[i:i + 3] != "...":
                raise ValueError(f"einsum: '.' must come as an ellipsis '...' in {where_} "
                                 f"of {equation!r}")
            if None in labels:
                raise ValueError(f"einsum: more than one ellipsis in {where_} of {equation!r}")
            labels.append(None)
            i += 3
            continue
        if not c.isascii() or not c.isalpha():
            raise ValueError(f"einsum: invalid subscript {c!r} in {where_} of {equation!r} "
                             "(subscripts are letters a-z, A-Z and '...')")
        labels.append(c)
        i += 1
    return labels


def _parse_equation(equation, n_operands):
    if not isinstance(equation, str):
        raise TypeError(f"einsum: the equation must be a string, got {type(equation).__name__}")
    eq = equation.replace(" ", "")
    if eq.count("->") > 1:
        raise ValueError(f"einsum: more than one '->' in {equation!r}")
    if "->" in eq:
        lhs, rhs = eq.split("->")
    else:
        lhs, rhs = eq, None
    if "-" in lhs or ">" in lhs or (rhs is not None and ("-" in rhs or ">" in rhs)):
        raise ValueError(f"einsum: misplaced '-' or '>' in {equation!r}")
    terms = lhs.split(",")
    if len(terms) != n_operands:
        raise ValueError(f"einsum: {equation!r} has {len(terms)} input terms but "
                         f"{n_operands} operands were given")
    inputs = [_parse_term(t, equation, f"input term {k}") for k, t in enumerate(terms)]
    if rhs is None:
        # implicit output: the ellipsis, then the labels seen once, in alphabetical order
        counts = {}
        for labels in inputs:
            for c in labels:
                if c is not None:
                    counts[c] = counts.get(c, 0) + 1
        output = ([None] if any(None in labels for labels in inputs) else []) + \
            sorted(c for c, k in counts.items() if k == 1)
    else:
        output = _parse_term(rhs, equation, "the output")
        seen = set()
        for c in output:
            if c in seen:
                raise ValueError(f"einsum: output subscript {c!r} repeated in {equation!r}")
            seen.add(c)
            if c is not None and not any(c in labels for labels in inputs):
                raise ValueError(f"einsum: output subscript {c!r} does not appear in the inputs "
                                 f"of {equation!r}")
        if None in output and not any(None in labels for labels in inputs):
            raise ValueError(f"einsum: the output of {equation!r} has an ellipsis but no input has")
    return inputs, output


class _Operand:
    """A Var with one label per dim (labels: letters, or ('...', i) for the i-th
    dim from the right covered by an ellipsis)."""

    def __init__(self, var, labels):
        self.var = var
        self.labels = list(labels)


def _expand_ellipsis(labels, ndim, k, equation):
    n_named = len([c for c in labels if c is not None])
    if None not in labels:
        if n_named != ndim:
            raise ValueError(f"einsum: operand {k} has {ndim} dims but its subscripts in "
                             f"{equation!r} name {n_named}")
        return labels
    covered = ndim - n_named
    if covered < 0:
        raise ValueError(f"einsum: operand {k} has {ndim} dims, fewer than the {n_named} its "
                         f"subscripts in {equation!r} name")
    pos = labels.index(None)
    return labels[:pos] + [("...", covered - 1 - i) for i in range(covered)] + labels[pos + 1:]


def _take_diagonals(op):
    """Repeated labels in one operand select the diagonal: 'ii' -> 'i'."""
    unique = list(dict.fromkeys(op.labels))
    if len(unique) == len(op.labels):
        return op
    sizes = {}
    for c, s in zip(op.labels, op.var.shape):
        if sizes.setdefault(c, s) != s:
            raise ValueError(f"einsum: repeated subscript {_label_name(c)!r} spans dims of sizes "
                             f"{sizes[c]} and {s}")
    shape = [sizes[c] for c in unique]
    var = reindex(op.var, shape, [f"i{unique.index(c)}" for c in op.labels])
    return _Operand(var, unique)


def _label_name(c):
    return "..." if isinstance(c, tuple) else c


def _sum_labels(op, labels):
    dims = [i for i, c in enumerate(op.labels) if c in labels]
    if not dims:
        return op
    return _Operand(op.var.sum(dims), [c for c in op.labels if c not in labels])


def _squeeze_labels(op, labels):
    """Drops size-1 dims of the given labels."""
    keep = [i for i, c in enumerate(op.labels) if c not in labels]
    if len(keep) == len(op.labels):
        return op
    return _Operand(reshape(op.var, tuple(op.var.shape[i] for i in keep)),
                    [op.labels[i] for i in keep])


def _arrange(op, labels):
    """op's var permuted so that its labels come in the given order (a subset equal to op's)."""
    perm = [op.labels.index(c) for c in labels]
    return permute(op.var, perm) if perm != list(range(len(perm))) else op.var


def _contract_pair(a, b, keep):
    """The product of two operands, summed over the labels they share that are not
    in `keep`; a matmul when there are such labels, a broadcast product otherwise."""
    size_a = dict(zip(a.labels, a.var.shape))
    size_b = dict(zip(b.labels, b.var.shape))
    shared = [c for c in a.labels if c in size_b]
    summed = [c for c in shared if c not in keep]
    # a summed label of size 1 on one side broadcasts: sum the other side over it first
    ones_a = [c for c in summed if size_a[c] == 1 and size_b[c] != 1]
    ones_b = [c for c in summed if size_b[c] == 1 and size_a[c] != 1]
    if ones_a or ones_b:
        a = _squeeze_labels(_sum_labels(a, ones_b), ones_a)
        b = _squeeze_labels(_sum_labels(b, ones_a), ones_b)
        return _contract_pair(a, b, keep)
    # labels only one side has and nothing later needs are summed before the product
    a = _sum_labels(a, [c for c in a.labels if c not in size_b and c not in keep])
    b = _sum_labels(b, [c for c in b.labels if c not in size_a and c not in keep])
    batch = [c for c in a.labels if c in b.labels and c not in summed]
    free_a = [c for c in a.labels if c not in b.labels]
    free_b = [c for c in b.labels if c not in a.labels]
    sa = dict(zip(a.labels, a.var.shape))
    sb = dict(zip(b.labels, b.var.shape))
    nb = len(batch)
    if summed:
        va = _arrange(a, batch + free_a + summed)
        vb = _arrange(b, batch + summed + free_b)
        rows = int(np.prod([sa[c] for c in free_a], dtype=np.int64))
        inner = int(np.prod([sa[c] for c in summed], dtype=np.int64))
        cols = int(np.prod([sb[c] for c in free_b], dtype=np.int64))
        va = reshape(va, tuple(sa[c] for c in batch) + (rows, inner))
        vb = reshape(vb, tuple(sb[c] for c in batch) + (inner, cols))
        batch_sizes = tuple(max(sa[c], sb[c]) for c in batch)
        product = reshape(matmul(va, vb), batch_sizes + tuple(sa[c] for c in free_a) +
                          tuple(sb[c] for c in free_b))
    else:
        va = _arrange(a, batch + free_a)
        vb = _arrange(b, batch + free_b)
        va = reshape(va, tuple(va.shape) + (1,) * len(free_b))
        vb = reshape(vb, tuple(vb.shape[:nb]) + (1,) * len(free_a) + tuple(vb.shape[nb:]))
        product = va * vb
    return _Operand(product, batch + free_a + free_b)


def _check_sizes(operands, equation):
    """Each label has one size, or size 1 where it broadcasts (NumPy's rule)."""
    sizes, where_from = {}, {}
    for k, op in enumerate(operands):
        for c, s in zip(op.labels, op.var.shape):
            old = sizes.get(c)
            if old is None or old == 1:
                sizes[c], where_from[c] = s, k
            elif s != 1 and s != old:
                raise ValueError(f"einsum: subscript {_label_name(c)!r} has size {old} in operand "
                                 f"{where_from[c]} but {s} in operand {k} of {equation!r}")
    return sizes


def einsum(equation, *operands):
    """Einstein summation over the operands (NumPy's einsum, Jittor's jt.linalg.einsum):
    'ij,jk->ik' is a matrix product, 'ii->i' a diagonal, '...ij->...ji' a batched
    transpose; without '->' the output is the labels seen once, in alphabetical order.
    Size-1 dims broadcast. Built from lazy kiln ops (matmul for contractions), so the
    result is differentiable."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])   # einsum(eq, [a, b]) as PyTorch allows
    if not operands:
        raise ValueError("einsum: at least one operand is needed")
    vars_ = [x if isinstance(x, Var) else array(x) for x in operands]
    inputs, output = _parse_equation(equation, len(vars_))
    ops = [_Operand(v, _expand_ellipsis(labels, v.ndim, k, equation))
           for k, (v, labels) in enumerate(zip(vars_, inputs))]
    n_ellipsis = max([sum(isinstance(c, tuple) for c in op.labels) for op in ops] + [0])
    out_labels = []
    for c in output:
        out_labels += [("...", n_ellipsis - 1 - i) for i in range(n_ellipsis)] if c is None else [c]
    ops = [_take_diagonals(op) for op in ops]
    sizes = _check_sizes(ops, equation)

    def needed_elsewhere(skip):
        keep = set(out_labels)
        for j, op in enumerate(ops):
            if j not in skip:
                keep.update(op.labels)
        return keep

    # labels that only one operand has and the output does not are summed right away
    ops = [_sum_labels(op, [c for c in op.labels if c not in needed_elsewhere({k})])
           for k, op in enumerate(ops)]
    while len(ops) > 1:
        # greedy order: the pair whose product is smallest, sharing labels preferred
        best = None
        for i in range(len(ops)):
            for j in range(i + 1, len(ops)):
                keep = needed_elsewhere({i, j})
                result = set(ops[i].labels) | set(ops[j].labels)
                size = int(np.prod([sizes[c] for c in result if c in keep], dtype=np.int64))
                shares = bool(set(ops[i].labels) & set(ops[j].labels))
                score = (not shares, size)
                if best is None or score < best[0]:
                    best = (score, i, j, keep)
        _, i, j, keep = best
        product = _contract_pair(ops[i], ops[j], keep)
        ops = [op for k, op in enumerate(ops) if k not in (i, j)] + [product]
    result = _sum_labels(ops[0], [c for c in ops[0].labels if c not in out_labels])
    return _arrange(result, out_labels)
