"""bfloat16 (stored as 16 bits, computed in float32) and Jittor's
half-precision dtype rules (kiln/_amp.py), against NumPy float64 references."""
import numpy as np
import pytest

import kiln as jt

R = np.random.default_rng(3)


def bf16_round(x):
    """float64 -> the nearest bfloat16 value (ties to the even one), as
    float64: of the two bfloat16 neighbours of the float32 value, the closer."""
    out = []
    for v in np.asarray(x, np.float64).ravel():
        f = np.float32(v)
        if not np.isfinite(f):
            out.append(float(f))
            continue
        bits = int(np.array(f).view(np.uint32))
        low = bits & 0xFFFF0000
        cands = [np.array(low, np.uint32).view(np.float32), np.array(low + 0x10000, np.uint32).view(np.float32)]
        # the candidate past the largest finite one is infinity, at 2**128 for rounding
        d = [abs((2.0 ** 128 if np.isinf(c) else float(c)) - float(f)) for c in cands]
        pick = 0 if d[0] < d[1] else 1 if d[1] < d[0] else (0 if (low >> 16) % 2 == 0 else 1)
        out.append(float(cands[pick]))
    return np.array(out).reshape(np.shape(x))


def test_storage_rounds_to_nearest_even_and_keeps_specials():
    vals = np.array([1.0, 1.00390625, 1.01171875, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.0e38, 3.4e38,
                     -np.inf, np.inf, np.nan, 1e-40, -0.0, 0.1, 123.456])
    got = jt.array(vals).bfloat16()
    assert got.dtype == "bfloat16" and got.dtype.itemsize == 2
    back = got.numpy()
    assert back.dtype == np.float32          # NumPy has no bfloat16
    np.testing.assert_array_equal(back.astype(np.float64), bf16_round(vals))
    assert np.signbit(back[11])


def test_arithmetic_reductions_and_matmul_match_rounded_float64():
    a0, b0 = R.standard_normal((6, 7)), R.standard_normal((7, 5))
    a, b = jt.array(a0).bfloat16(), jt.array(b0).bfloat16()
    ar, br = bf16_round(a0), bf16_round(b0)
    c = a * b[:, 0].reshape(1, 7) + 1
    assert c.dtype == "bfloat16"
    # one rounding of the float32 result (the kernel keeps a*b+1 in float32)
    np.testing.assert_allclose(c.numpy(), bf16_round(ar * br[:, 0] + 1), rtol=2 ** -8)
    m = jt.matmul(a, b)
    assert m.dtype == "bfloat16"
    np.testing.assert_allclose(m.numpy(), ar @ br, rtol=2 ** -7, atol=1e-2)
    np.testing.assert_array_equal(a.max(1).numpy(), ar.max(1).astype(np.float32))
    s = a.sum(1)                                   # Jittor: a half sum is float32
    assert s.dtype == "float32"
    np.testing.assert_allclose(s.numpy(), ar.sum(1), rtol=1e-6)
    idx = jt.array([0, 2, 0, 1])
    sc = jt.zeros(3, "bfloat16").scatter(0, idx, jt.array([1.5, 2.0, 3.25, 4.0]).bfloat16(), reduce="add")
    np.testing.assert_array_equal(sc.numpy(), [4.75, 4.0, 2.0])


def test_gradients_keep_the_dtype():
    a = jt.array(R.standard_normal((4, 4))).bfloat16()
    b = jt.array(R.standard_normal((4, 4))).bfloat16()
    da, db = jt.grad(jt.matmul(a, b), [a, b])
    assert da.dtype == "bfloat16" and db.dtype == "bfloat16"
    np.testing.assert_allclose(da.numpy(), np.ones((4, 4)) @ b.numpy().T, rtol=2 ** -7, atol=1e-2)
    lin = jt.nn.Linear(4, 3).bfloat16()
    assert lin.weight.dtype == "bfloat16" and lin(a).dtype == "bfloat16"


def test_promotion_and_the_scalar_rule():
    h, b = jt.float16([1, 2, 3]), jt.bfloat16([1, 2, 3])
    assert (b * 1).dtype == "bfloat16" and (b * jt.int8([1, 2, 3])).dtype == "bfloat16"
    assert (h * b).dtype == "float32"                     # neither holds the other
    assert (b * jt.float32([1, 2, 3])).dtype == "float32"
    assert (b * jt.float32([1, 2, 3]).sum()).dtype == "bfloat16"   # a scalar var keeps half
    assert (h * jt.float64([2.0])).dtype == "float16"
    assert jt.int32([0, 1, 0]).ternary(h, jt.float32(1)).dtype == "float16"


def test_amp_flags_choose_half_results():
    x = jt.random((3, 4)).float16()
    assert x.sum().dtype == "float32" and x.mean().dtype == "float32"
    assert (x ** x).dtype == "float32" and x.exp().dtype == "float32" and x.log().dtype == "float32"
    assert x.sin().dtype == "float16"
    with jt.flag_scope(amp_reg=4):
        assert x.sum().dtype == "float16" and x.exp().dtype == "float32"
    with jt.flag_scope(amp_reg=8):
        assert x.sum().dtype == "float32" and (x ** x).dtype == "float16"
    with jt.flag_scope(amp_level=3):
        assert x.mean().dtype == "float16" and x.log().dtype == "float16"
    with jt.flag_scope(amp_reg=16):
        assert jt.array([1.0, 2.0]).dtype == "float16" and jt.random([3]).dtype == "float16"
    assert jt.array([1.0, 2.0]).dtype == "float32"
    np.testing.assert_allclose(x.exp().numpy(), np.exp(x.numpy().astype(np.float64)), rtol=1e-6)


def test_what_bfloat16_cannot_do_is_refused_clearly():
    b = jt.bfloat16([1.0, 2.0])
    with pytest.raises(BufferError, match="no buffer format"):
        memoryview(b)
    assert np.asarray(b).dtype == np.float32 and not b.data.flags.writeable
    with pytest.raises(TypeError, match="bfloat16 inputs and outputs are not supported"):
        jt.code(b.shape, b.dtype, [b], cpu_src="@out(0) = @in0(0);")
    fi = jt.finfo("bfloat16")
    assert (fi.bits, fi.eps, fi.nmant) == (16, 2 ** -7, 7)
    assert fi.max == float(bf16_round(3.3895e38)) and fi.tiny == 2.0 ** -126
    assert jt.safe_clip(jt.bfloat16(np.inf)).item() == fi.max
