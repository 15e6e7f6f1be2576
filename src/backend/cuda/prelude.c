/* prelude.c: the text every CUDA kernel starts with. NVRTC compiles without
 * the C library's headers, so the fixed-width types and limits the
 * statements use are defined here; CUDA's device math library supplies
 * expf and the rest under their C names. Half precision is kept as its 16
 * bits and converted with the PTX instructions (no cuda_fp16.h needed);
 * scatters update through kl_atomic, a compare-and-swap on the aligned
 * 32- or 64-bit word that holds the target, for every dtype. */
#include "backend/cuda/cuda.h"
#include "codegen/prelude_common.h"

#define KL_STR_(x) #x
#define KL_STR(x) KL_STR_(x)

const char kl_cuda_prelude[] =
    "#ifndef KL_EMULATE /* emulate.c's header brings the C library's instead */\n"
    "typedef signed char int8_t; typedef unsigned char uint8_t;\n"
    "typedef short int16_t; typedef unsigned short uint16_t;\n"
    "typedef int int32_t; typedef unsigned int uint32_t;\n"
    "typedef long long int64_t; typedef unsigned long long uint64_t;\n"
    "typedef long long intptr_t;\n"
    "#define INT64_C(c) c##LL\n"
    "#define INT8_MIN (-128)\n#define INT8_MAX 127\n#define UINT8_MAX 255\n"
    "#define INT16_MIN (-32768)\n#define INT16_MAX 32767\n"
    "#define INT32_MIN (-2147483647 - 1)\n#define INT32_MAX 2147483647\n"
    "#define INT64_MIN (-9223372036854775807LL - 1)\n#define INT64_MAX 9223372036854775807LL\n"
    "#endif\n"
    "#ifndef INFINITY\n#define INFINITY __int_as_float(0x7f800000)\n#endif\n"
    "#ifndef NAN\n#define NAN __int_as_float(0x7fffffff)\n#endif\n"
    "#define KL_FN static __device__ __forceinline__\n"
    "#define KL_BLOCK " KL_STR(KL_CUDA_BLOCK) "\n"
    "#define KL_MAX_GRID " KL_STR(KL_CUDA_MAX_GRID) "\n"
    "#define KL_UNROLL " KL_STR(KL_CUDA_UNROLL) "\n"
    "#ifndef KL_EMULATE\n"
    "KL_FN float kl_f16_load(uint16_t h) { float f; asm(\"cvt.f32.f16 %0, %1;\" : \"=f\"(f) : \"h\"(h)); return f; }\n"
    "KL_FN uint16_t kl_f16_store(float f) { uint16_t h; asm(\"cvt.rn.f16.f32 %0, %1;\" : \"=h\"(h) : \"f\"(f)); return h; }\n"
    "#else\n"
    "KL_FN float kl_f16_load(uint16_t h) { _Float16 f; __builtin_memcpy(&f, &h, 2); return (float)f; }\n"
    "KL_FN uint16_t kl_f16_store(float x) { _Float16 f = (_Float16)x; uint16_t h; __builtin_memcpy(&h, &f, 2); return h; }\n"
    "#endif\n"
    /* an index outside its bounds: the first one is recorded, in memory the host reads */
    "KL_FN void kl_index_fail(int64_t *rec, int64_t v, int64_t lo, int64_t hi, int64_t what) {\n"
    "    if (atomicExch((unsigned long long *)&rec[0], 1ull) == 0) { rec[1] = v; rec[2] = lo; rec[3] = hi; rec[4] = what; }\n"
    "}\n"
    /* *p = f(*p) atomically, for a target of 1, 2, 4 or 8 bytes (unions reinterpret the bits) */
    "template <class T, class F> KL_FN void kl_atomic(T *p, F f) {\n"
    "    if constexpr (sizeof(T) == 8) {\n"
    "        unsigned long long *w = (unsigned long long *)p, old = *w, seen;\n"
    "        do { seen = old; union { unsigned long long u; T v; } a, b; a.u = seen; b.v = f(a.v);\n"
    "             old = atomicCAS(w, seen, b.u); } while (seen != old);\n"
    "    } else if constexpr (sizeof(T) == 4) {\n"
    "        unsigned *w = (unsigned *)p, old = *w, seen;\n"
    "        do { seen = old; union { unsigned u; T v; } a, b; a.u = seen; b.v = f(a.v);\n"
    "             old = atomicCAS(w, seen, b.u); } while (seen != old);\n"
    "    } else {\n"
    "        unsigned *w = (unsigned *)((unsigned long long)p & ~3ull), old = *w, seen;\n"
    "        const unsigned shift = (unsigned)((unsigned long long)p & 3ull) * 8;\n"
    "        const unsigned mask = ((1u << (8 * sizeof(T))) - 1) << shift;\n"
    "        do { seen = old; union { unsigned u; T v; } a, b; a.u = (seen & mask) >> shift; b.u = 0; b.v = f(a.v);\n"
    "             old = atomicCAS(w, seen, (seen & ~mask) | ((b.u << shift) & mask)); } while (seen != old);\n"
    "    }\n"
    "}\n"
    KL_PRELUDE_COMMON;

/* A user's device code (jt.code's cuda_src) ends with its key and an empty
 * kl_kernel: the entry every artifact's loader checks for. Its own kernels
 * are launched by name. */
const char kl_cuda_user_key_line[] =
    "\nextern \"C\" __device__ const char kl_kernel_key[] = \"%s\";\n"
    "extern \"C\" __global__ void kl_kernel(void) {}\n";
