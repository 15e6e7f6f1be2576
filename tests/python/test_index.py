"""Index values are checked where Jittor and PyTorch check them (kiln/_index.py:
getitem, gather, scatter; Embedding, cross-entropy targets): a value out of
range raises IndexError at the sync, naming the op, instead of reading 0;
boolean masks must match the dims they index; jt.flags.check_indices = 0
turns the value check off. gather and scatter are checked against NumPy and
finite differences here too."""
import numpy as np
import pytest

import kiln as jt


@pytest.fixture
def x():
    return jt.array(np.arange(12, dtype="float32").reshape(3, 4))


def test_var_indices_in_range_gather_as_numpy(x):
    a = np.arange(12, dtype="float32").reshape(3, 4)
    i = np.array([2, -1, 0, -3])
    np.testing.assert_array_equal(x[jt.array(i)].numpy(), a[i])
    np.testing.assert_array_equal(x[:, jt.array([3, -4])].numpy(), a[:, [3, -4]])


@pytest.mark.parametrize("bad", [3, -4, 100])
def test_var_index_out_of_range_raises_at_the_sync(x, bad):
    y = x[jt.array([0, bad])]                       # building is lazy
    with pytest.raises(IndexError, match=rf"getitem on dim 0 of shape \(3, 4\): index {bad} "
                                         r"is out of range \[-3, 3\)"):
        y.numpy()
    with pytest.raises(IndexError):                 # still pending: it fails again
        y.sum().item()
    with pytest.raises(IndexError, match="dim 1"):
        x[:, jt.array([4])].numpy()


def test_setitem_with_a_bad_var_index_raises(x):
    x[jt.array([5])] = 1.0
    with pytest.raises(IndexError, match="index 5"):
        x.numpy()


def test_embedding_ids_are_checked():
    emb = jt.nn.Embedding(3, 2)
    assert emb(jt.array([0, 2])).shape == (2, 2)
    with pytest.raises(IndexError, match=r"Embedding with 3 rows: index 7 is out of range \[0, 3\)"):
        emb(jt.array([[1, 7]])).numpy()
    with pytest.raises(IndexError, match="index -1"):
        emb(jt.array([-1])).numpy()


def test_cross_entropy_targets_are_checked_but_ignore_index_passes():
    logits = jt.array(np.random.default_rng(0).standard_normal((3, 4)).astype("float32"))
    with pytest.raises(IndexError, match=r"cross_entropy target \(4 classes\): index 9"):
        jt.nn.cross_entropy_loss(logits, jt.array([1, 9, 0])).item()
    ok = jt.nn.cross_entropy_loss(logits, jt.array([1, -100, 0]), ignore_index=-100).item()
    assert np.isfinite(ok)
    with pytest.raises(IndexError, match="index -100"):
        jt.nn.cross_entropy_loss(logits, jt.array([1, -100, 0])).item()


def test_the_flag_turns_the_check_off(x):
    jt.flags.check_indices = 0
    try:
        np.testing.assert_array_equal(x[jt.array([7])].numpy(), np.zeros((1, 4), "float32"))
    finally:
        jt.flags.check_indices = 1
    with pytest.raises(IndexError):
        x[jt.array([7])].numpy()


@pytest.mark.parametrize("mask", [np.array([True, False]), np.ones(4, bool),
                                  (slice(None), np.ones(5, bool)), np.ones((3, 3), bool),
                                  np.ones((2, 4), bool)])
def test_boolean_masks_must_match_their_dims(x, mask):
    with pytest.raises(IndexError, match="boolean index did not match"):
        x[mask]
    with pytest.raises(IndexError, match="boolean index did not match"):
        x[mask] = 0.0


def test_boolean_masks_of_the_right_shape(x):
    a = np.arange(12, dtype="float32").reshape(3, 4)
    m = a % 3 == 0
    np.testing.assert_array_equal(x[m].numpy(), a[m])
    np.testing.assert_array_equal(x[jt.array([True, False, True])].numpy(), a[[True, False, True]])
    np.testing.assert_array_equal(x[..., np.array([1, 0, 0, 1], bool)].numpy(),
                                  a[..., [True, False, False, True]])


# ---- gather and scatter along a dim ----

def _idx(shape, n, seed):
    return np.random.RandomState(seed).randint(0, n, size=shape)


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_gather_as_numpy_take_along_axis(dim):
    a = np.random.RandomState(0).randn(3, 4, 5)
    shape = list(a.shape)
    shape[dim] = 6                                  # the gathered dim may grow
    shape[(dim + 1) % 3] -= 1                       # the others may shrink
    i = _idx(shape, a.shape[dim], 1)
    want = np.take_along_axis(a[tuple(slice(0, s) if d != dim % 3 else slice(None)
                                      for d, s in enumerate(shape))], i, dim)
    np.testing.assert_array_equal(jt.gather(jt.array(a), dim, jt.array(i)).numpy(), want)
    np.testing.assert_array_equal(jt.array(a).gather(dim, jt.array(i)).numpy(), want)


def test_gather_gradient_adds_at_repeated_indexes():
    a = np.random.RandomState(2).randn(4, 3)
    i = np.array([[0, 1, 1], [3, 3, 3]])
    x = jt.array(a)
    g = jt.grad((jt.gather(x, 0, jt.array(i)) * jt.array([[1.0, 2, 3], [4, 5, 6]])).sum(), x).numpy()
    want = np.zeros_like(a)
    np.add.at(want, (i, np.arange(3)[None].repeat(2, 0)), [[1.0, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(g, want)


def _scatter_ref(a, dim, i, src, reduce):
    out = a.copy()
    for pos in np.ndindex(*i.shape):
        tgt = list(pos)
        tgt[dim] = i[pos]
        v = src if np.isscalar(src) else src[pos]
        tgt = tuple(tgt)
        if reduce == "add":
            out[tgt] += v
        elif reduce == "multiply":
            out[tgt] *= v
        else:
            out[tgt] = v
    return out


@pytest.mark.parametrize("reduce", ["void", "add", "multiply"])
@pytest.mark.parametrize("dim", [0, 1])
def test_scatter_as_a_loop(dim, reduce):
    r = np.random.RandomState(3)
    a = r.randn(4, 5)
    # distinct targets for "void" (a repeated one takes some value), repeats otherwise
    i = np.argsort(r.rand(4, 5), axis=dim)[:3] if dim == 0 else np.argsort(r.rand(4, 5), axis=1)[:, :3]
    if reduce != "void":
        i[0, 0] = i[1, 0] if dim == 0 else i[0, 1]
    src = r.randn(4, 5)                             # larger than the index: its corner is used
    got = jt.scatter(jt.array(a), dim, jt.array(i), jt.array(src), reduce=reduce).numpy()
    np.testing.assert_allclose(got, _scatter_ref(a, dim, i, src, reduce), rtol=1e-12)
    got = jt.array(a).scatter(dim, jt.array(i), 7.0).numpy()
    np.testing.assert_array_equal(got, _scatter_ref(a, dim, i, 7.0, "void"))


def test_scatter_gradients_by_finite_differences():
    r = np.random.RandomState(4)
    a, src = r.randn(3, 4), r.randn(2, 4)
    i = np.array([[0, 2, 1, 0], [1, 0, 2, 2]])
    w = r.randn(3, 4)

    def f(av, sv):
        return (jt.scatter(av, 0, jt.array(i), sv, reduce="add") * jt.array(w)).sum()

    x, s = jt.array(a), jt.array(src)
    gx, gs = jt.grad(f(x, s), [x, s])
    eps = 1e-6
    for arr, g, which in ((a, gx.numpy(), 0), (src, gs.numpy(), 1)):
        num = np.zeros_like(arr)
        for pos in np.ndindex(*arr.shape):
            d = np.zeros_like(arr)
            d[pos] = eps
            args = [jt.array(a), jt.array(src)]
            hi = list(args)
            hi[which] = jt.array(arr + d)
            lo = list(args)
            lo[which] = jt.array(arr - d)
            num[pos] = (f(*hi).item() - f(*lo).item()) / (2 * eps)
        np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-8)


def test_gather_and_scatter_indexes_are_checked(x):
    with pytest.raises(IndexError, match=r"gather on dim 1 of shape \(3, 4\): index 4 is out "
                                         r"of range \[0, 4\)"):
        jt.gather(x, 1, jt.array([[0, 4]])).numpy()
    with pytest.raises(IndexError, match="index -1"):
        jt.gather(x, 0, jt.array([[-1]])).numpy()
    with pytest.raises(IndexError, match=r"scatter on dim 0 of shape \(3, 4\): index 3"):
        jt.scatter(x, 0, jt.array([[3]]), 1.0).numpy()
    with pytest.raises(ValueError, match="as many dims"):
        jt.gather(x, 0, jt.array([0, 1]))
    with pytest.raises(ValueError, match="larger than the input"):
        jt.gather(x, 0, jt.array(np.zeros((2, 5), "int32")))
    with pytest.raises(TypeError, match="integer"):
        jt.gather(x, 0, jt.array([[0.5]]))
    with pytest.raises(ValueError, match="must cover"):
        jt.scatter(x, 0, jt.array([[0, 1]]), jt.array([[1.0]]))
    with pytest.raises(ValueError, match="reduce"):
        jt.scatter(x, 0, jt.array([[0]]), 1.0, reduce="max")


def test_chained_setitem_writes_through_basic_views():
    a = jt.zeros((3, 4, 2, 2))
    a[1][2][0][0] = 1
    want = np.zeros((3, 4, 2, 2))
    want[1, 2, 0, 0] = 1
    np.testing.assert_array_equal(a.numpy(), want)
    row = a[2]                       # a view, as in NumPy
    row[1:3] = 5
    want[2, 1:3] = 5
    np.testing.assert_array_equal(a.numpy(), want)
    a[0][a[0] == 0] = 7              # a mask written into a view
    want[0][want[0] == 0] = 7
    np.testing.assert_array_equal(a.numpy(), want)
    b = jt.zeros((3, 3))
    b[[0, 1]][0] = 9                 # integer-array indexing copies (NumPy)
    assert b.numpy().sum() == 0
    x = jt.array(np.arange(6.0).reshape(2, 3))
    y = x * 2
    y[0][1] = 0.0                    # gradients see the written value
    g = jt.grad(y.sum(), x)
    np.testing.assert_array_equal(g.numpy(), [[2, 0, 2], [2, 2, 2]])


def _kernels_loaded():
    c = jt.counters()
    return c["kernels_compiled"] + c["cache_hits_disk"]


def test_slices_at_new_offsets_reuse_their_kernel():
    """Offsets and bounds are kernel arguments: a loop over slices compiles
    (or loads) its kernels once, not once per offset."""
    x = jt.array(np.arange(200, dtype=np.float32))
    for i in range(2):                                   # offset 0 and the others
        x[i:i + 7].sum().item()
    before = _kernels_loaded()
    got = [x[i:i + 7].sum().item() for i in range(2, 40, 3)]
    assert _kernels_loaded() == before
    assert got == [sum(range(i, i + 7)) for i in range(2, 40, 3)]
    s = jt.zeros(40)
    piece = jt.ones(4)
    for i in range(2):
        s = s.setitem(slice(4 * i, 4 * i + 4), piece)
        s.sync()
    before = _kernels_loaded()
    for i in range(2, 10):
        s = s.setitem(slice(4 * i, 4 * i + 4), piece)
        s.sync()
    assert _kernels_loaded() == before
    np.testing.assert_array_equal(s.numpy(), np.ones(40))
