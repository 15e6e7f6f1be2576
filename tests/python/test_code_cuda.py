"""jt.code's CUDA form (python/kiln/_code_cuda.py, src/ops/code_cuda.c):
cuda_src's kernels and the host code launching them, run on the emulated
GPU ("cuda-emulate", src/backend/cuda/emulate.c), which compiles the same
device code NVRTC does for the host and runs each block as a team of its
threads, and on a GPU where there is one. With KILN_COMPILE_CHECK=cuda (as
scripts/test.sh runs the suite) every device code is also compiled by NVRTC
for compute_90; the nvrtc_check tests do so regardless. Values are checked
against NumPy in float64, gradients against finite differences."""
import os
import re

import numpy as np
import pytest

import kiln as jt
from kiln import _C
from kiln.code import CodeTranslationError
from ktest import cuda_device_missing

r = np.random.default_rng(0)


NO_GPU = cuda_device_missing()


@pytest.fixture(autouse=True, params=["cuda-emulate", "cuda"])
def device(request):
    """Each test on the emulator, and on a GPU where there is one."""
    if request.param == "cuda" and NO_GPU:
        pytest.skip(f"no CUDA device: {NO_GPU}")
    before = _C.device()
    _C.set_device(request.param)
    yield request.param
    _C.set_device(before)


MUL = """
    __global__ static void mul(@ARGS_DEF) {
        @PRECALC
        int i = threadIdx.x + blockIdx.x * blockDim.x;
        int stride = blockDim.x * gridDim.x;
        for (; i < in0_shape0; i += stride)
            @out(i) = @in0(i) * @in0(i) * @in1(i);
    }
    mul<<<(in0_shape0 - 1) / 64 + 1, 64>>>(@ARGS);
"""
GRAD_A = """
    __global__ static void grad_a(@ARGS_DEF) {
        @PRECALC
        for (int i = threadIdx.x + blockIdx.x * blockDim.x; i < in0_shape0; i += blockDim.x * gridDim.x)
            @out(i) = @dout(i) * 2 * @in0(i) * @in1(i);
    }
    grad_a<<<3, 32>>>(@ARGS);
"""
GRAD_B = """
    __global__ static void grad_b(@ARGS_DEF) {
        @PRECALC
        for (int i = threadIdx.x + blockIdx.x * blockDim.x; i < in0_shape0; i += blockDim.x * gridDim.x)
            @out(i) = @dout(i) * @in0(i) * @in0(i);
    }
    grad_b<<<2, 128>>>(@ARGS);
"""


def mul(a, b):
    return jt.code(a.shape, a.dtype, [a, b], cuda_src=MUL, cuda_grad_src=[GRAD_A, GRAD_B])


def test_elementwise_kernel_runs_on_the_device_with_every_block():
    a, b = r.standard_normal(1000), r.standard_normal(1000)
    x, y = jt.array(a), jt.array(b)
    assert x._device.startswith("cuda")
    np.testing.assert_allclose(mul(x, y).numpy(), a * a * b, rtol=1e-12)


def test_gradients_follow_finite_differences():
    a, b = r.standard_normal(37), r.standard_normal(37)
    w = r.standard_normal(37)
    x, y = jt.array(a), jt.array(b)
    gx, gy = jt.grad((mul(x, y) * jt.array(w)).sum(), [x, y])

    def loss(a_, b_):
        return float((mul(jt.array(a_), jt.array(b_)).numpy() * w).sum())

    eps = 1e-6
    for k in (0, 5, 36):
        e = np.zeros(37)
        e[k] = eps
        np.testing.assert_allclose(gx.numpy()[k], (loss(a + e, b) - loss(a - e, b)) / (2 * eps), rtol=1e-6)
        np.testing.assert_allclose(gy.numpy()[k], (loss(a, b + e) - loss(a, b - e)) / (2 * eps), rtol=1e-6)


def test_two_dim_grid_and_block_index_the_elements():
    a = r.standard_normal((13, 21)).astype(np.float32)
    out = jt.code(a.shape, a.dtype, [jt.array(a)], cuda_src="""
        __global__ static void kernel1(@ARGS_DEF) {
            @PRECALC
            for (int i = blockIdx.y * blockDim.y + threadIdx.y; i < in0_shape0; i += blockDim.y * gridDim.y)
            for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < in0_shape1; j += blockDim.x * gridDim.x)
                @out(i, j) = @in0(i, j) * (i + 1) - j;
        }
        kernel1<<<dim3(2, 3), dim3(8, 4)>>>(@ARGS);
    """)
    i, j = np.indices(a.shape)
    np.testing.assert_allclose(out.numpy(), a * (i + 1) - j, rtol=1e-6)


def test_warp_shuffles_in_a_two_dim_block_and_a_three_dim_grid():
    # warps are 32 consecutive threads in x-then-y order; every block of a 3-d grid runs
    a = r.standard_normal((8, 64))
    out = jt.code([8], a.dtype, [jt.array(a)], cuda_src="""
        __global__ void warp_sums(const double *x, double *y) {
            const int block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
            const int t = threadIdx.x + blockDim.x * threadIdx.y;
            double v = x[block * 64 + t];
            for (int s = 16; s > 0; s /= 2) v += __shfl_down_sync(0xffffffffu, v, s);
            if (t % 32 == 0) atomicAdd(&y[block], v);
        }
        cudaMemsetAsync(out0_p, 0, out0->size);
        warp_sums<<<dim3(2, 2, 2), dim3(16, 4)>>>(in0_p, out0_p);
    """)
    np.testing.assert_allclose(out.numpy(), a.sum(1), rtol=1e-12)


def test_shared_memory_block_reduction():
    a = r.standard_normal((5, 700)).astype(np.float32)
    out = jt.code([5], a.dtype, [jt.array(a)], cuda_src="""
        __global__ static void row_sums(@ARGS_DEF) {
            @PRECALC
            __shared__ float part[128];
            const int row = blockIdx.x;
            float s = 0;
            for (int j = threadIdx.x; j < in0_shape1; j += blockDim.x) s += @in0(row, j);
            part[threadIdx.x] = s;
            __syncthreads();
            for (int w = blockDim.x / 2; w > 0; w /= 2) {
                if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
                __syncthreads();
            }
            if (threadIdx.x == 0) @out(row) = part[0];
        }
        row_sums<<<in0_shape0, 128>>>(@ARGS);
    """)
    np.testing.assert_allclose(out.numpy(), a.astype(np.float64).sum(1), rtol=1e-5)


def test_dynamic_shared_memory_sized_by_the_launch():
    a = r.standard_normal((4, 300))
    out = jt.code([4], a.dtype, [jt.array(a)], cuda_src="""
        __global__ void row_max(const double *x, int cols, double *y) {
            extern __shared__ double part[];
            double m = -1e300;
            for (int j = threadIdx.x; j < cols; j += blockDim.x) m = fmax(m, x[blockIdx.x * cols + j]);
            part[threadIdx.x] = m;
            __syncthreads();
            if (threadIdx.x == 0) {
                for (int t = 1; t < blockDim.x; t++) m = fmax(m, part[t]);
                y[blockIdx.x] = fmax(m, part[0]);
            }
        }
        row_max<<<in0_shape0, 64, 64 * sizeof(double)>>>(in0_p, in0_shape1, out0_p);
    """)
    np.testing.assert_array_equal(out.numpy(), a.max(1))


def test_arguments_are_converted_to_the_kernels_parameter_types():
    # in0_shape0 is int64 and 2 an int: the kernel takes an int and a double
    a = r.standard_normal(50)
    out = jt.code(a.shape, a.dtype, [jt.array(a)], cuda_src="""
        __global__ void scale(const double *x, double *y, int n, double k) {
            for (int i = threadIdx.x; i < n; i += blockDim.x) y[i] = x[i] * k;
        }
        scale<<<1, 32>>>(in0_p, out0_p, in0_shape0, 2);
    """)
    np.testing.assert_allclose(out.numpy(), a * 2, rtol=1e-15)


def test_kernel_in_the_header_with_its_block_size_defined_there():
    a = r.standard_normal(300).astype(np.float32)
    header = """
        #define BLOCK 32
        #define real float
        #define HELPER static __device__
        HELPER float twice(float v) { return 2 * v; }
        __global__ void twice_all(const real *x, real *y, int n) {
            int i = blockIdx.x * BLOCK + threadIdx.x;
            if (i < n) y[i] = twice(x[i]);
        }
    """
    out = jt.code(a.shape, a.dtype, [jt.array(a)], cuda_header=header,
                  cuda_src="twice_all<<<(in0_shape0 + BLOCK - 1) / BLOCK, BLOCK>>>(in0_p, out0_p, in0_shape0);")
    np.testing.assert_allclose(out.numpy(), 2 * a, rtol=1e-6)


def test_a_macro_continued_over_lines_is_not_part_of_the_kernel_after_it():
    # the continuation line says "template": it belongs to the macro, not the kernel
    header = "#define DECL \\\n    template <class T> T\n__global__ void k(float *y) { y[0] = 7; }\n"
    out = jt.code([1], "float32", [], cuda_header=header, cuda_src="k<<<1, 1>>>(out0_p);")
    np.testing.assert_array_equal(out.numpy(), [7])


def test_data_constants_reach_the_host_code():
    a = r.standard_normal(40)
    src = """
        __global__ void affine(const double *x, double *y, int n, double k, double c) {
            for (int i = threadIdx.x; i < n; i += blockDim.x) y[i] = x[i] * k + c;
        }
        affine<<<1, 64>>>(in0_p, out0_p, in0_shape0, k, data["c"]);
    """
    for k, c in ((3.0, 1.0), (-0.5, 4.0)):   # new values, the same compiled code
        out = jt.code(a.shape, a.dtype, [jt.array(a)], cuda_src=src, data={"k": k, "c": c})
        np.testing.assert_allclose(out.numpy(), a * k + c, rtol=1e-15)


def test_memset_and_atomics_make_a_histogram():
    v = r.integers(0, 10, 5000).astype(np.int32)
    out = jt.code([10], "int32", [jt.array(v)], cuda_src="""
        __global__ void count(const int *v, int n, int *h) {
            for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
                atomicAdd(&h[v[i]], 1);
        }
        cudaMemsetAsync(out0_p, 0, out0->size);
        count<<<4, 256>>>(in0_p, in0_shape0, out0_p);
    """)
    np.testing.assert_array_equal(out.numpy(), np.bincount(v, minlength=10))


def test_dynamic_output_sized_by_a_count_read_back():
    a = r.standard_normal(200).astype(np.float32)
    kept, n = jt.code([(-200,), (1,)], ["float32", "int32"], [jt.array(a)], cuda_src="""
        __global__ void keep_positive(const float *x, int n, float *y, int *count) {
            for (int i = threadIdx.x; i < n; i += blockDim.x)
                if (x[i] > 0) y[atomicAdd(count, 1)] = x[i];
        }
        cudaMemsetAsync(out1_p, 0, sizeof(int));
        keep_positive<<<1, 64>>>(in0_p, in0_shape0, out0_p, out1_p);
        int got = 0;
        cudaMemcpy(&got, out1_p, sizeof(int), cudaMemcpyDeviceToHost);
        out0->set_shape({got});
    """)
    assert int(n.numpy()[0]) == (a > 0).sum()
    np.testing.assert_array_equal(np.sort(kept.numpy()), np.sort(a[a > 0]))


def test_outputs_given_as_vars_start_from_their_values():
    start = np.arange(12, dtype=np.float32)
    add = jt.array(np.full(12, 0.5, np.float32))
    b = jt.array(start)
    jt.code(inputs=[add], outputs=[b], cuda_src="""
        __global__ void add_to(const float *x, float *y, int n) {
            for (int i = threadIdx.x; i < n; i += blockDim.x) y[i] += x[i];
        }
        add_to<<<1, 32>>>(in0_p, out0_p, in0_shape0);
    """)
    np.testing.assert_allclose(b.numpy(), start + 0.5)


def test_cuda_src_runs_on_the_device_and_cpu_src_on_the_cpu(device):
    kw = dict(cpu_src="for (int i = 0; i < in0_shape0; i++) @out(i) = @in0(i) + 1;",
              cuda_src="""
        __global__ void add2(@ARGS_DEF) { @PRECALC for (int i = threadIdx.x; i < in0_shape0; i += blockDim.x) @out(i) = @in0(i) + 2; }
        add2<<<1, 32>>>(@ARGS);""")
    a = np.arange(5.0)
    np.testing.assert_array_equal(jt.code([5], "float64", [jt.array(a)], **kw).numpy(), a + 2)
    _C.set_device("cpu")
    np.testing.assert_array_equal(jt.code([5], "float64", [jt.array(a)], **kw).numpy(), a + 1)


@pytest.fixture
def nvrtc_check():
    """The compile check on: device code is compiled by NVRTC too."""
    try:
        _C.set_compile_check("cuda")
    except RuntimeError as e:
        pytest.skip(f"no NVRTC: {e}")
    yield
    _C.set_compile_check("cuda" if os.environ.get("KILN_COMPILE_CHECK") == "cuda" else None)


def test_device_code_compiles_with_nvrtc(nvrtc_check):
    before = jt.counters()["kernels_checked"]
    a = r.standard_normal(64)
    # a kernel new to every cache: its text names this run's value
    tag = int.from_bytes(os.urandom(3), "little")
    out = jt.code(a.shape, a.dtype, [jt.array(a)], cuda_src=f"""
        __global__ void tagged(const double *x, double *y, int n) {{
            for (int i = threadIdx.x; i < n; i += blockDim.x) y[i] = x[i] + {tag}.0;
        }}
        tagged<<<1, 32>>>(in0_p, out0_p, in0_shape0);
    """)
    np.testing.assert_allclose(out.numpy(), a + tag)
    assert jt.counters()["kernels_checked"] > before


# ---- what goes wrong says so ----

def test_cuda_src_alone_on_the_cpu_says_to_use_cuda():
    _C.set_device("cpu")
    with pytest.raises(RuntimeError, match="use_cuda"):
        jt.code([3], "float32", [jt.array(np.ones(3, np.float32))], cuda_src=MUL)


def test_a_block_over_1024_threads_is_refused_with_the_launch():
    x = jt.code([4], "float32", [jt.array(np.ones(4, np.float32))], cuda_src="""
        __global__ void k(float *y) { y[threadIdx.x % 4] = 1; }
        k<<<1, 2048>>>(out0_p);
    """)
    with pytest.raises(ValueError, match=r"k<<<\(1, 1, 1\), \(2048, 1, 1\)>>>: a block holds at most 1024"):
        x.numpy()


def test_more_shared_memory_than_a_block_has_is_refused():
    x = jt.code([4], "float32", [jt.array(np.ones(4, np.float32))], cuda_src="""
        __global__ void k(float *y) { extern __shared__ float s[]; s[0] = 1; y[0] = s[0]; }
        k<<<1, 32, 300000>>>(out0_p);
    """)
    with pytest.raises(ValueError, match="300000 bytes of dynamic shared memory; a block of .* at most"):
        x.numpy()


def test_a_shuffle_in_a_partial_warp_is_refused_on_the_emulator(device):
    # 48 threads: the second warp has 16; on a GPU the missing lanes' values are undefined
    if device != "cuda-emulate":
        pytest.skip("undefined on a GPU: only the emulator can say so")
    x = jt.code([1], "float32", [jt.array(np.ones(48, np.float32))], cuda_src="""
        __global__ void k(const float *x, float *y) {
            float v = x[threadIdx.x];
            for (int s = 16; s > 0; s /= 2) v += __shfl_down_sync(0xffffffffu, v, s);
            if (threadIdx.x == 0) y[0] = v;
        }
        k<<<1, 48>>>(in0_p, out0_p);
    """)
    with pytest.raises(ValueError, match="last warp of a 48-thread block, which has only 16 threads"):
        x.numpy()


def test_launching_an_undefined_kernel_names_it():
    with pytest.raises(CodeTranslationError, match="cuda_src line 2: .*no kernel missing is defined"):
        jt.code([4], "float32", [jt.array(np.ones(4, np.float32))], cuda_src="""
            missing<<<1, 32>>>(out0_p);
        """)


def test_set_shape_in_device_code_is_refused():
    with pytest.raises(CodeTranslationError, match="cuda_src line 2: set_shape belongs in the host code"):
        jt.code([-4], "float32", [jt.array(np.ones(4, np.float32))], cuda_src="""
            __global__ void k(float *y) { out0->set_shape({1}); }
            k<<<1, 1>>>(out0_p);
        """)


def test_kernel_templates_are_refused():
    with pytest.raises(CodeTranslationError, match="kernel template"):
        jt.code([4], "float32", [jt.array(np.ones(4, np.float32))], cuda_src="""
            template <class T> __global__ void k(T *y) { y[0] = 1; }
            k<<<1, 1>>>(out0_p);
        """)


def test_a_device_compile_error_points_at_the_users_line():
    with pytest.raises(RuntimeError) as e:
        jt.code([4], "float32", [jt.array(np.ones(4, np.float32))], cuda_src="""
            __global__ void k(float *y) {
                y[0] = not_declared;
            }
            k<<<1, 1>>>(out0_p);
        """)
    msg = str(e.value)
    assert "not_declared" in msg and "generated source:" in msg
    assert re.search(r"\n> 3 \| +y\[0\] = not_declared;", msg), msg


def test_an_nvrtc_error_points_at_the_users_line(nvrtc_check):
    # the emulator's compiler has the C++ library; NVRTC has not
    with pytest.raises(RuntimeError) as e:
        jt.code([4], "float32", [jt.array(np.ones(4, np.float32))], cuda_header="#include <vector>",
                cuda_src="""
            __global__ void k(float *y) { y[0] = 1; }
            k<<<1, 1>>>(out0_p);
        """)
    msg = str(e.value)
    assert "NVRTC" in msg and "vector" in msg
    assert re.search(r"cuda_header \(line numbers.*\n> 1 \| #include <vector>", msg), msg


def test_a_launch_with_the_wrong_number_of_arguments_fails_to_compile():
    with pytest.raises(RuntimeError, match="another number of arguments"):
        jt.code([4], "float32", [jt.array(np.ones(4, np.float32))], cuda_src="""
            __global__ void k(float *y, int n) { y[0] = n; }
            k<<<1, 1>>>(out0_p);
        """)
