"""jt.code: user kernels in C++/C with Jittor's template syntax, checked
against NumPy (and gradients against analytic values and finite differences)."""
import os
import subprocess
import sys
import uuid
import warnings

import numpy as np
import pytest

import kiln as jt
from kiln.code import CodeTranslationError, code

jt_code = jt.code


def fresh():
    """A comment that makes a source new to every cache (so it compiles)."""
    return f"// {uuid.uuid4().hex}\n"


def rnd(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ---- element-wise kernels with their gradients (Jittor's documentation) ----

SQUARE2 = """
    for (int i=0; i<in0_shape0; i++)
        @out(i) = @in0(i)*@in0(i)*2;
"""
SQUARE2_GRAD = """
    for (int i=0; i<in0_shape0; i++) {
        @out(i) = @dout(i)*@in0(i)*4;
    }
"""


def test_square_forward_and_grad():
    na = rnd(10)
    a = jt.array(na)
    b = jt_code(a.shape, a.dtype, [a], cpu_src=SQUARE2, cpu_grad_src=[SQUARE2_GRAD])
    nc = rnd(10, seed=1)
    c = jt.array(nc)
    da = jt.grad(c * b, a)
    np.testing.assert_allclose(b.numpy(), na * na * 2, rtol=1e-6)
    np.testing.assert_allclose(da.numpy(), nc * na * 4, rtol=1e-6)


def test_a_times_b_plus_c_grads_vs_finite_differences():
    src = """
        for (int i=0; i<in0_shape0; i++)
            for (int j=0; j<in0_shape1; j++)
                @out(i,j) = @in0(i,j)*@in1(i,j) + @in2(i,j);
    """
    grads = [
        """for (int i=0; i<in0_shape0; i++) for (int j=0; j<in0_shape1; j++)
               @out(i,j) = @dout(i,j)*@in1(i,j);""",
        """for (int i=0; i<in0_shape0; i++) for (int j=0; j<in0_shape1; j++)
               @out(i,j) = @dout(i,j)*@in0(i,j);""",
        """for (int i=0; i<dout_shape0; i++) for (int j=0; j<dout_shape1; j++)
               @out(i,j) = @dout(i,j);""",
    ]
    xs = [rnd(3, 4, seed=s).astype(np.float64) for s in range(3)]
    w = rnd(3, 4, seed=7).astype(np.float64)

    def f(*arrs):
        vs = [jt.array(x) for x in arrs]
        y = jt_code(vs[0].shape, vs[0].dtype, vs, cpu_src=src, cpu_grad_src=grads)
        return vs, y

    vs, y = f(*xs)
    loss = (y * jt.array(w)).sum()
    gs = jt.grad(loss, vs)
    np.testing.assert_allclose(y.numpy(), xs[0] * xs[1] + xs[2], rtol=1e-12)
    analytic = [w * xs[1], w * xs[0], w]
    eps = 1e-6
    for k in range(3):
        np.testing.assert_allclose(gs[k].numpy(), analytic[k], rtol=1e-10)
        fd = np.zeros_like(xs[k])
        for idx in np.ndindex(*xs[k].shape):
            plus = [x.copy() for x in xs]
            minus = [x.copy() for x in xs]
            plus[k][idx] += eps
            minus[k][idx] -= eps
            lp = (f(*plus)[1].numpy() * w).sum()
            lm = (f(*minus)[1].numpy() * w).sum()
            fd[idx] = (lp - lm) / (2 * eps)
        np.testing.assert_allclose(gs[k].numpy(), fd, rtol=1e-6, atol=1e-8)


def test_grad_with_jittor_numbering_and_pout():
    # in a gradient kernel Jittor numbers dout in{n} and the output in{n+1}
    a = jt.array(rnd(6))
    b = jt_code(a.shape, a.dtype, [a], cpu_src="""
            for (int i=0; i<in0_shape0; i++) @out(i) = std::exp(@in0(i));""",
                cpu_grad_src=["""
            for (int i=0; i<in0_shape0; i++) @out(i) = @in1(i) * @in2(i);  // dout * pout
        """])
    g = jt.grad(b.sum(), a)
    np.testing.assert_allclose(g.numpy(), np.exp(a.numpy()), rtol=1e-6)
    b2 = jt_code(a.shape, a.dtype, [a], cpu_src="""
            for (int i=0; i<in0_shape0; i++) @out(i) = std::exp(@in0(i));""",
                 cpu_grad_src=["""
            for (int i=0; i<in0_shape0; i++) @out(i) = @dout(i) * @pout(i);"""])
    np.testing.assert_allclose(jt.grad(b2.sum(), a).numpy(), np.exp(a.numpy()), rtol=1e-6)


def test_backward_fills_grad_of_parameters():
    x = jt.array(rnd(5))
    x.requires_grad = True
    y = jt_code(x.shape, x.dtype, [x], cpu_src=SQUARE2, cpu_grad_src=[SQUARE2_GRAD])
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * x.numpy(), rtol=1e-6)


def test_no_grad_source_warns_once_and_is_constant():
    kc = sys.modules["kiln.code"]     # jt.code is the function; the module is kiln.code
    kc._warned[0] = False
    a = jt.array(rnd(4))
    with pytest.warns(UserWarning, match="constants for autograd"):
        b = jt_code(a.shape, a.dtype, [a], cpu_src=SQUARE2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jt_code(a.shape, a.dtype, [a], cpu_src=SQUARE2)      # no second warning
    g = jt.grad((b + a).sum(), a)
    np.testing.assert_allclose(g.numpy(), np.ones(4))         # only through "+ a"


def test_jittor_1_0_spellings():
    # in0shape0 / outshape0 / Tin0 / in0p: the names of Jittor's first release
    a = jt.array(rnd(6))
    b = jt_code(a.shape, a.dtype, [a], cpu_src="""
            Tin0 *p = in0p;
            for (int i=0; i<in0shape0; i++) @out(i) = p[i]*p[i]*2 + 0*outshape0;""",
                cpu_grad_src=["""
            for (int i=0; i<in0shape0; i++) @out(i) = @dout(i)*@in0(i)*4;"""])
    g = jt.grad(b.sum(), a)
    np.testing.assert_allclose(b.numpy(), 2 * a.numpy() ** 2, rtol=1e-6)
    np.testing.assert_allclose(g.numpy(), 4 * a.numpy(), rtol=1e-6)


def test_data_constants_reach_the_gradient_kernel():
    x = rnd(5)
    a = jt.array(x)
    b = jt_code(a.shape, a.dtype, [a], data={"s": 3.0},
                cpu_src="for (int i=0; i<in0_shape0; i++) @out(i) = s * @in0(i) * @in0(i);",
                cpu_grad_src=["for (int i=0; i<in0_shape0; i++) "
                              "@out(i) = 2 * data[\"s\"] * @in0(i) * @dout(i);"])
    np.testing.assert_allclose(jt.grad(b.sum(), a).numpy(), 6 * x, rtol=1e-6)
    np.testing.assert_allclose(b.numpy(), 3 * x * x, rtol=1e-6)


# ---- outputs ----

def test_multiple_outputs_with_alias_and_header():
    a = jt.array(np.array([3, 2, 1, 7, -4], np.float32))
    lo, hi = jt_code([(1,), (1,)], [a.dtype, a.dtype], [a],
                     cpu_header="""
                         #include <algorithm>
                         @alias(x, in0)
                     """,
                     cpu_src="""
                         @alias(b, out0)
                         @alias(c, out1)
                         @b(0) = @c(0) = @x(0);
                         for (int i=0; i<x_shape0; i++) {
                             @b(0) = std::min(@b(0), @x(i));
                             @c(0) = std::max(@c(0), @x(i));
                         }
                     """)
    assert lo.numpy().tolist() == [-4] and hi.numpy().tolist() == [7]


def test_multiple_outputs_of_different_dtypes_and_shapes():
    a = jt.array(np.array([3, 2, 1], np.int32))
    b, c = jt_code([[2], [4]], ["float32", "float64"], [a], cpu_src="""
        @alias(a, in0)
        @alias(b, out0)
        @alias(c, out1)
        for (int i=0; i<c_shape0; i++) @c(i) = 0;
        for (int i=0; i<a_shape0; i++) {
            if (i<b_shape0) @b(i) = @a(i);
            if (i<c_shape0) @c(i) = @a(i);
        }""")
    assert b.shape == (2,) and c.shape == (4,)
    assert b.dtype == "float32" and c.dtype == "float64"
    assert b.numpy().tolist() == [3, 2] and c.numpy().tolist() == [3, 2, 1, 0]


def test_outputs_form_updates_vars_in_place():
    a = jt.array(np.array([3, 2, 1], np.int32))
    b = jt.array(np.array([1, 2], np.int32))
    c = jt.array(np.array([3, 4, 5, 6], np.int32))
    r = jt_code(outputs=[b, c], inputs=[a], cpu_src="""
        @alias(a, in0)
        @alias(b, out0)
        @alias(c, out1)
        for (int i=0; i<a_shape0; i++) {
            if (i<b_shape0) @b(i) += @a(i);
            if (i<c_shape0) @c(i) += @a(i);
        }""")
    assert r[0] is b and r[1] is c
    assert b.numpy().tolist() == [4, 4] and c.numpy().tolist() == [6, 6, 6, 6]
    d = jt.array(np.zeros(3, np.float32))
    jt_code([a], [d], cpu_src="for (int i=0; i<in0_shape0; i++) @out(i) += 2*@in0(i);")
    assert d.numpy().tolist() == [6, 4, 2]


def test_dynamic_size_output_selects_positive_elements():
    x = np.array([5, -4, 3, -2, 1, 0, 8], np.float32)
    a = jt.array(x)
    pos = jt_code([-a.shape[0]], a.dtype, [a], cpu_src="""
        int n = 0;
        for (int i = 0; i < in0_shape0; i++)
            if (@in0(i) > 0) @out(n++) = @in0(i);
        out->set_shape({n});
    """)
    assert pos.shape == (4,)
    np.testing.assert_array_equal(pos.numpy(), x[x > 0])
    np.testing.assert_array_equal((pos * 2).numpy(), 2 * x[x > 0])   # usable downstream


def test_dynamic_two_outputs_jittor_example():
    a = jt.array([5, -4, 3, -2, 1])
    b, c = jt_code([(-5,), (-5,)], [a.dtype, a.dtype], [a], cpu_src="""
        @alias(a, in0)
        @alias(b, out0)
        @alias(c, out1)
        int num_b=0, num_c=0;
        for (int i=0; i<a_shape0; i++) {
            if (@a(i)>0)
                @b(num_b++) = @a(i);
            else
                @c(num_c++) = @a(i);
        }
        b->set_shape({num_b});
        c->set_shape({num_c});
    """)
    assert b.numpy().tolist() == [5, 3, 1]
    assert c.numpy().tolist() == [-4, -2]


def test_dynamic_2d_output_in_c():
    a = jt.array(rnd(6))
    m = jt_code([-6, 2], "float32", [a], lang="c", cpu_src="""
        int r = 0;
        for (int i = 0; i < in0_shape0; i++)
            if (@in0(i) > 0) { @out(r, 0) = (float)i; @out(r, 1) = @in0(i); r++; }
        out0->set_shape({r, 2});
    """)
    x = a.numpy()
    np.testing.assert_array_equal(m.numpy(), np.stack([np.nonzero(x > 0)[0], x[x > 0]], 1))


def test_dynamic_size_beyond_its_bound_is_an_error():
    a = jt.array(rnd(3))
    with pytest.raises(RuntimeError, match="outside 0..3"):
        jt_code([-3], "float32", [a], cpu_src="out->set_shape({7});")


# ---- the template language ----

def test_header_include_and_comments():
    a = jt.array([3, 2, 1])
    b = jt_code(a.shape, a.dtype, [a],
                cpu_header="""
                    #include <algorithm>
                    // a comment with @out(i) inside is left alone
                    /* so is
                       this one, @in9 */
                """,
                cpu_src="""
                    // test comment: @nothing(here)
                    /*
                    multi line
                    */
                    @alias(a, in0)
                    for (int i=0; i<a_shape0; i++)
                        @out(i) = @a(i);
                    std::sort(&@out(0), &@out(a_shape0));
                    const char *s = "@in0(not a template)"; (void)s;
                """)
    assert b.numpy().tolist() == [1, 2, 3]


def test_nested_indices_strides_types_and_names():
    x = rnd(3, 4)
    idx = np.array([2, 0, 1, 2], np.int32)
    a, i = jt.array(x), jt.array(idx)
    # gather rows: out(r, c) = in0(in1(r), c), in a 3-d output to exercise strides
    g = jt_code([4, 2, 4], "float32", [a, i], cpu_src="""
        static_assert(sizeof(@in0_type) == 4 && sizeof(in1_type) == 4, "types");
        for (int r = 0; r < out_shape0; r++)
            for (int k = 0; k < out_shape1; k++)
                for (int c = 0; c < out_shape2; c++)
                    @out(r, k, c) = @in0(@in1(r), c) * (k + 1)
                        + 0 * (out_stride0 - out_shape1 * out_shape2) + 0 * in0_stride1;
        if (in0->num != in0_shape0 * in0_shape1 || out->ndim != 3 || in0_dim != 2) abort();
    """)
    want = np.stack([x[idx], 2 * x[idx]], 1)
    np.testing.assert_allclose(g.numpy(), want, rtol=1e-6)


def test_helper_functions_with_args_def():
    a = jt.array(rnd(5))
    b = jt_code(a.shape, a.dtype, [a],
                cpu_header="""
                    static void twice(@ARGS_DEF) {
                        @PRECALC
                        for (int i = 0; i < in0_shape0; i++) @out(i) = 2 * @in0(i);
                    }
                """,
                cpu_src="twice(@ARGS);")
    np.testing.assert_allclose(b.numpy(), 2 * a.numpy())


def test_data_dict_named_constants_without_recompiling():
    a = jt.array(rnd(5))
    src = fresh() + """
        for (int i = 0; i < in0_shape0; i++)
            @out(i) = @in0(i) * scale + data["shift"] + k;
    """
    b = jt_code(a.shape, a.dtype, [a], cpu_src=src, data={"scale": 2.5, "shift": -1.0, "k": 3})
    np.testing.assert_allclose(b.numpy(), a.numpy() * 2.5 - 1 + 3, rtol=1e-6)
    before = jt.counters()["kernels_compiled"]
    c = jt_code(a.shape, a.dtype, [a], cpu_src=src, data={"scale": -1.0, "shift": 0.5, "k": 7})
    np.testing.assert_allclose(c.numpy(), -a.numpy() + 0.5 + 7, rtol=1e-6)
    assert jt.counters()["kernels_compiled"] == before


def test_plain_c_and_cpp_modes():
    x = rnd(7)
    a = jt.array(x)
    c_src = """
        for (int i = 0; i < in0_shape0; i++) @out(i) = fabsf(@in0(i));
    """
    cpp_src = """
        std::vector<float> v(in0_p, in0_p + in0_shape0);
        std::transform(v.begin(), v.end(), v.begin(), [](float t) { return std::fabs(t); });
        std::copy(v.begin(), v.end(), out_p);
    """
    np.testing.assert_array_equal(jt_code(a.shape, a.dtype, [a], cpu_src=c_src, lang="c").numpy(),
                                  np.abs(x))
    np.testing.assert_array_equal(jt_code(a.shape, a.dtype, [a], cpu_src=cpp_src).numpy(), np.abs(x))
    with pytest.raises(RuntimeError, match="compile"):
        jt_code(a.shape, a.dtype, [a], cpu_src=cpp_src, lang="c")    # C++ is not C


def test_new_shape_does_not_recompile():
    src = fresh() + """
        for (int i = 0; i < in0_shape0; i++)
            for (int j = 0; j < in0_shape1; j++)
                @out(j, i) = @in0(i, j);
    """
    x = rnd(3, 5)
    c0 = jt.counters()["kernels_compiled"]
    t = jt_code([5, 3], "float32", [jt.array(x)], cpu_src=src)
    np.testing.assert_array_equal(t.numpy(), x.T)
    c1 = jt.counters()["kernels_compiled"]
    assert c1 == c0 + 1
    y = rnd(40, 7)
    t2 = jt_code([7, 40], "float32", [jt.array(y)], cpu_src=src)
    np.testing.assert_array_equal(t2.numpy(), y.T)
    assert jt.counters()["kernels_compiled"] == c1


def test_openmp_and_stdlib_knn():
    n, k = 300, 10
    pts = np.random.default_rng(3).random((n, 3)).astype(np.float32)
    a = jt.array(pts)
    b = jt_code([n, k], "int32", [a],
                cpu_header="#include <algorithm>",
                cpu_src="""
                    using namespace std;
                    auto n=out_shape0, k=out_shape1;
                    // one point per iteration, in parallel
                    #pragma omp parallel for
                    for (int i=0; i<n; i++) {
                        vector<pair<float,int>> id(n);
                        for (int j=0; j<n; j++) {
                            auto dx = @in0(i,0)-@in0(j,0);
                            auto dy = @in0(i,1)-@in0(j,1);
                            auto dz = @in0(i,2)-@in0(j,2);
                            id[j] = {dx*dx+dy*dy+dz*dz, j};
                        }
                        nth_element(id.begin(), id.begin()+k, id.end());
                        for (int j=0; j<k; j++)
                            @out(i,j) = id[j].second;
                    }""")
    got = b.numpy()
    assert got.dtype == np.int32 and got.shape == (n, k)
    d = ((pts[:, None, :].astype(np.float64) - pts[None, :, :]) ** 2).sum(-1)
    want = np.sort(d, 1)[:, :k]
    np.testing.assert_allclose(np.sort(np.take_along_axis(d, got, 1), 1), want, atol=1e-6)


# ---- errors ----

def test_compile_error_shows_numbered_source_and_path():
    a = jt.array(rnd(3))
    src = fresh() + """for (int i=0; i<in0_shape0; i++)
    @out(i) = @in0(i) * undefined_thing;
"""
    with pytest.raises(RuntimeError) as e:
        jt_code(a.shape, a.dtype, [a], cpu_src=src)  # compile-marker
    msg = str(e.value)
    assert "undefined_thing" in msg                      # the compiler's message
    assert "cpu_src:3:" in msg                           # at the user's line
    assert "> 3 |     @out(i) = @in0(i) * undefined_thing;" in msg   # numbered listing
    assert "generated source: /" in msg and ".cc" in msg
    frames = [f for f in __import__("traceback").extract_tb(e.tb) if f.filename == __file__]
    assert "compile-marker" in frames[-1].line


def test_grad_compile_error_names_its_source():
    a = jt.array(rnd(3))
    with pytest.raises(RuntimeError, match=r"cpu_grad_src\[0\]:2:") as e:
        jt_code(a.shape, a.dtype, [a], cpu_src=fresh() + SQUARE2,
                cpu_grad_src=[fresh() + "@out(0) = nope;"])
    assert "> 2 | @out(0) = nope;" in str(e.value)


def test_translation_errors():
    a = jt.array(rnd(2, 2))
    with pytest.raises(CodeTranslationError, match=r"line 2: @in0\(\.\.\.\) takes 2 indices"):
        jt_code(a.shape, a.dtype, [a], cpu_src="\n@out(0,0) = @in0(0);")
    with pytest.raises(CodeTranslationError, match="unknown template @in5"):
        jt_code(a.shape, a.dtype, [a], cpu_src="@out(0,0) = @in5(0);")
    with pytest.raises(CodeTranslationError, match="whose shape is fixed"):
        jt_code(a.shape, a.dtype, [a], cpu_src="out->set_shape({1, 1});")
    with pytest.raises(CodeTranslationError, match="no closing bracket"):
        jt_code(a.shape, a.dtype, [a], cpu_src="@out(0,0 = 1;")
    with pytest.raises(CodeTranslationError, match="no such key"):
        jt_code(a.shape, a.dtype, [a], cpu_src='@out(0,0) = data["y"];', data={"x": 1})


def test_cuda_only_raises_clearly_and_argument_errors():
    a = jt.array(rnd(3))
    if not a._device.startswith("cuda"):   # (on a CUDA device it runs: test_code_cuda.py)
        with pytest.raises(RuntimeError, match="only cuda_src, which runs on a CUDA device.*use_cuda = 1"):
            jt_code(a.shape, a.dtype, [a], cuda_src="@out(0) = 1;")
    with pytest.raises(ValueError, match="lang"):
        jt_code(a.shape, a.dtype, [a], cpu_src="", lang="fortran")
    with pytest.raises(ValueError, match="gradient sources for 1 inputs"):
        jt_code(a.shape, a.dtype, [a], cpu_src="(void)0;", cpu_grad_src=["", ""])


def test_missing_cxx_compiler_is_one_clear_error(tmp_path):
    env = dict(os.environ, KILN_CXX="/nonexistent/c++", KILN_CACHE_DIR=str(tmp_path))
    env["PYTHONPATH"] = os.path.join(os.path.dirname(__file__), "..", "..", "python")
    prog = ("import kiln as jt; from kiln.code import code\n"
            "a = jt.array([1.0, 2.0])\n"
            "try:\n"
            "    code(a.shape, a.dtype, [a], cpu_src='@out(0) = 1;')\n"
            "except RuntimeError as e:\n"
            "    print('ERR', e)\n"
            "print(code(a.shape, a.dtype, [a], lang='c', "
            "cpu_src='@out(0) = 5; @out(1) = @in0(1);').numpy().tolist())\n")
    run = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, env=env,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "ERR jt.code: no C++ compiler" in run.stdout and "lang='c'" in run.stdout
    assert "[5.0, 2.0]" in run.stdout      # plain C still works


def test_knn_example_runs():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.path.join(root, "python"))
    run = subprocess.run([sys.executable, os.path.join(root, "examples", "code_op.py"), "500"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "matches NumPy: True" in run.stdout


def test_knn_example_edges():
    """The example's k-bounded insertion: ties, k = n, a block boundary (its
    distances go in blocks of 256), nearest first; k > n is refused."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, os.path.join(root, "examples"))
    try:
        from code_op import check, knn
    finally:
        sys.path.pop(0)
    rng = np.random.default_rng(5)
    grid = np.stack(np.meshgrid(np.arange(4), np.arange(4), [0], indexing="ij"), -1).reshape(-1, 3)
    for pts, k in ((rng.random((300, 3)), 10), (rng.random((257, 3)), 257), (grid, 5), (rng.random((1, 3)), 1)):
        pts = pts.astype(np.float32)
        idx = knn(jt.array(pts), k).numpy()
        assert idx.shape == (len(pts), k) and check(pts, idx, k)
        d = ((pts[:, None, :].astype(np.float64) - pts[None, :, :]) ** 2).sum(-1)
        assert np.all(np.diff(np.take_along_axis(d, idx.astype(np.int64), 1), axis=1) >= 0)   # nearest first
    with pytest.raises(ValueError, match="k=4 neighbours asked of 3 points"):
        knn(jt.array(np.zeros((3, 3), np.float32)), 4)


def test_help_has_examples():
    doc = code.__doc__
    assert "Example" in doc and "@in0(i" in doc and "set_shape" in doc and "cpu_grad_src" in doc


def test_gradient_kernels_of_a_two_output_op():
    """Each output's gradient runs the gradient kernels with that output as
    pout and its gradient as dout; the shares of both outputs add up."""
    a0, b0 = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 4.0])
    a, b = jt.array(a0), jt.array(b0)
    prod, total = jt.code([a.shape, a.shape], [a.dtype, a.dtype], [a, b],
        cpu_src="""
            for (int i = 0; i < in0_shape0; i++) {
                @out0(i) = @in0(i) * @in1(i);
                @out1(i) = @in0(i) + @in1(i) + @out0(i);
            }""",
        cpu_grad_src=["""
            for (int i = 0; i < in0_shape0; i++)   // d out/d a: b (out0), 1 + b (out1)
                @out(i) = @dout(i) * (@pout(i) == @in0(i) * @in1(i) ? @in1(i) : 1 + @in1(i));
        """, """
            for (int i = 0; i < in0_shape0; i++)
                @out(i) = @dout(i) * (@pout(i) == @in0(i) * @in1(i) ? @in0(i) : 1 + @in0(i));
        """])
    np.testing.assert_array_equal(prod.numpy(), a0 * b0)
    np.testing.assert_array_equal(total.numpy(), a0 + b0 + a0 * b0)
    ga, gb = jt.grad((prod * 2 + total * 3).sum(), [a, b])
    np.testing.assert_allclose(ga.numpy(), 2 * b0 + 3 * (1 + b0))
    np.testing.assert_allclose(gb.numpy(), 2 * a0 + 3 * (1 + a0))
    ga_only, = jt.grad(prod.sum(), [a])
    np.testing.assert_allclose(ga_only.numpy(), b0)
