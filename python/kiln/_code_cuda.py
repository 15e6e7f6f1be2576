"""jt.code's CUDA form: cuda_src (with cuda_header and cuda_grad_src) on a
CUDA device.

As in Jittor, the definitions cuda_src begins with that start with '_'
(``__global__`` kernels, ``__device__`` functions) are device code; the rest
is host code, run at sync with the device's pointers, that launches them with
``kernel<<<grid, block[, shared bytes[, stream]]>>>(args)``.

The device code (cuda_header, then those definitions, templates translated)
is compiled by the device's toolchain: NVRTC on a GPU, the host C++ compiler
on the emulator. The host code is C++ compiled like cpu_src. Each launch
becomes a call through the kl_code_cuda_runtime the core hands the host code
(src/ops/code_cuda.c), its arguments converted to the kernel's parameter
types (each kernel's parameters are declared for the host too), and
cudaMemset, cudaMemcpy, cudaDeviceSynchronize and cudaGetLastError go
through the same runtime. Kernels are given C linkage so that they are
found by name; templates of kernels are therefore not supported.
"""
import re

from . import _C
from .code import _IDENT, _SET_SHAPE, _Translator

_HOST_RUNTIME = r"""
#include <tuple>
%(runtime)s
/* jt.code's CUDA host code: the runtime the core hands it, and the names of
   CUDA's runtime API it may use, on that runtime */
static thread_local kl_code_cuda_runtime *kl_rt;
/* the op's device code, compiled by the device at the first launch */
static const char kl_device_code[] =
%(device_code)s;
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
typedef struct kl_cuda_stream *cudaStream_t;
typedef int cudaError_t;
enum { cudaSuccess = 0 };
enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost,
                      cudaMemcpyDeviceToDevice, cudaMemcpyDefault };
static inline cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t = 0) { return kl_rt->fill(kl_rt, p, v, n); }
static inline cudaError_t cudaMemset(void *p, int v, size_t n) { return kl_rt->fill(kl_rt, p, v, n); }
static inline cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind k, cudaStream_t = 0) {
    return kl_rt->copy(kl_rt, d, s, n, (int)k);
}
static inline cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind k) {
    cudaError_t e = kl_rt->copy(kl_rt, d, s, n, (int)k);
    return e ? e : kl_rt->synchronize(kl_rt);
}
static inline cudaError_t cudaDeviceSynchronize(void) { return kl_rt->synchronize(kl_rt); }
static inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return kl_rt->synchronize(kl_rt); }
static inline cudaError_t cudaGetLastError(void) { return kl_rt->status; }
static inline cudaError_t cudaPeekAtLastError(void) { return kl_rt->status; }
static inline const char *cudaGetErrorString(cudaError_t e) { return e ? kl_rt->message(kl_rt) : "no error"; }
/* a failure is kept by the runtime and ends the op with its message */
#define checkCudaErrors(call) ((void)(call))
template <class F> struct kl_launcher;
template <class... P> struct kl_launcher<void(P...)> {
    template <size_t... I>
    static void go(std::tuple<P...> &a, const char *name, dim3 g, dim3 b, size_t shared, std::index_sequence<I...>) {
        void *params[sizeof...(P) + 1] = {(void *)&std::get<I>(a)...};
        const unsigned grid[3] = {g.x, g.y, g.z}, block[3] = {b.x, b.y, b.z};
        kl_rt->launch(kl_rt, kl_device_code, name, grid, block, (unsigned)shared, params);
    }
    template <class... A>
    static void launch(const char *name, dim3 g, dim3 b, size_t shared, A &&...a) {
        static_assert(sizeof...(A) == sizeof...(P), "a kernel launched with another number of arguments than its parameters");
        std::tuple<P...> args(std::forward<A>(a)...);  /* converted as a call converts them */
        go(args, name, g, b, shared, std::index_sequence_for<P...>{});
    }
};
"""


def _c_string(text):
    """text as a C string literal, a line of it per line."""
    lines, split = [], text.split("\n")
    for n, line in enumerate(split):
        out = []
        for ch in line:
            if ch in "\\\"":
                out.append("\\" + ch)
            elif " " <= ch <= "~":
                out.append(ch)
            else:
                out.extend(f"\\{b:03o}" for b in ch.encode("utf-8"))
        lines.append('"' + "".join(out) + ('\\n"' if n + 1 < len(split) else '"'))
    return "\n".join(lines)


class _Kernel:
    __slots__ = ("name", "params")

    def __init__(self, name, params):
        self.name, self.params = name, params


class DeviceTranslator(_Translator):
    """Templates in device code: as on the host, except that @alias makes
    macros (device code has no kl_code_var) and set_shape is refused."""

    def __init__(self, kernel):
        super().__init__(kernel, None)
        self.macros = []

    def alias(self, i, j, in_header):
        _, after = super().alias(i, j, True)
        new, arr, _ = self.alias_order[-1]
        self.macros.append(_alias_macros(new, arr))
        return "", after

    def identifier(self, m):
        if _SET_SHAPE.match(self.text, m.end()) and self.lookup(m.group()) is not None:
            self.fail(m.start(), "set_shape belongs in the host code (after the kernels), not in device code")
        return super().identifier(m)


def _alias_macros(new, a):
    lines = [f"#define {new}_p {a.name}_p", f"typedef {a.name}_type {new}_type;",
             f"enum {{ {new}_dim = {a.ndim} }};"]
    for d in range(a.ndim):
        lines += [f"#define {new}_shape{d} {a.name}_shape{d}", f"#define {new}_stride{d} {a.name}_stride{d}"]
    return "\n".join(lines)


def _skip_space_and_comments(t, i):
    text = t.text
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        end = t.skip_literal(i) if text[i] == "/" else None
        if end is None:
            break
        i = end
    return i


def device_end(t, text, where):
    """Where cuda_src's leading device definitions end (Jittor's rule: each
    begins with '_' and runs through its braces, or to its ';')."""
    t.where, t.text = where, text
    i = 0
    while True:
        i = _skip_space_and_comments(t, i)
        if i >= len(text) or not (text[i] == "_" or text.startswith("template", i)):
            return i    # (a template: refused by find_kernels, with the reason)
        j = i
        while j < len(text) and text[j] not in "{;":
            end = t.skip_literal(j) if text[j] in "/\"'" else None
            j = end if end is not None else j + 1
        if j >= len(text):
            t.fail(i, "this definition has no body")
        i = j + 1 if text[j] == ";" else t.balanced(j)[1]


def _code_tokens(t, start, end):
    """(position, identifier) of the names in text[start:end] outside comments
    and literals."""
    text, i = t.text, start
    while i < end:
        c = text[i]
        lit = t.skip_literal(i) if c in "/\"'" else None
        if lit is not None:
            i = lit
        elif c.isalpha() or c == "_":
            m = _IDENT.match(text, i)
            yield i, m.group()
            i = m.end()
        elif c.isdigit():
            i += 1
            while i < end and (text[i].isalnum() or text[i] in "._'"):
                i += 1
        else:
            i += 1


def find_kernels(t, text, where):
    """The __global__ functions of device code: their names and parameter
    lists, and the text with each given C linkage (found by name) and no
    `static` (which C linkage forbids)."""
    t.where, t.text = where, text
    kernels, edits = [], []
    for pos, word in list(_code_tokens(t, 0, len(text))):
        if word != "__global__":
            continue
        # the declaration's start: after the last ; { } or preprocessor line before it
        start = max(text.rfind(ch, 0, pos) for ch in ";}{") + 1
        for line in re.finditer(r"^[ \t]*#(?:.*\\\n)*.*$", text[:pos], re.M):
            start = max(start, line.end())
        prefix = [(p, w) for p, w in _code_tokens(t, start, pos)]
        if any(w == "template" for _, w in prefix):
            t.fail(pos, "a kernel template cannot be launched by name: write the kernel for the types it "
                        "needs (in0_type, out0_type ... name the arrays' types)")
        j, name = pos + len(word), None
        while True:
            j = _skip_space_and_comments(t, j)
            if j >= len(text):
                t.fail(pos, "a __global__ function without a parameter list")
            if text[j] == "(":
                break
            m = _IDENT.match(text, j)
            if m:
                name, j = m.group(), m.end()
                if name == "static":
                    edits.append((m.start(), len(name), " " * len(name)))
                if name == "__launch_bounds__":
                    j = _skip_space_and_comments(t, j)
                    if text[j:j + 1] == "(":
                        j = t.balanced(j)[1]
                    name = None
            else:
                j += 1
        if name is None:
            t.fail(pos, "a __global__ function without a name")
        close = t.balanced(j)[1]
        kernels.append(_Kernel(name, text[j + 1:close - 1]))
        edits += [(p, len(w), " " * len(w)) for p, w in prefix if w == "static"]
        edits.append((pos, 0, 'extern "C" '))
    seen = set()
    for k in kernels:
        if k.name in seen:
            t.fail(0, f"two kernels named {k.name}: kernels are found by name, so each needs its own")
        seen.add(k.name)
    for p, n, rep in sorted(edits, reverse=True):
        text = text[:p] + rep + text[p + n:]
    return kernels, text


def rewrite_launches(t, text, kernels, where):
    """kernel<<<grid, block[, shared[, stream]]>>>(args) in host code as a
    call through the runtime (the stream is the device's own)."""
    t.where, t.text = where, text
    names = {k.name for k in kernels}
    out, last = [], 0
    for pos, word in list(_code_tokens(t, 0, len(text))):
        if pos < last:
            continue
        j = _skip_space_and_comments(t, pos + len(word))
        if not text.startswith("<<<", j):
            continue
        if word not in names:
            t.fail(pos, f"{word}<<<...>>>: no kernel {word} is defined in cuda_header or the definitions "
                        "cuda_src begins with (__global__ functions, before the host code)")
        k, depth = j + 3, 0
        while k < len(text) and not (depth == 0 and text.startswith(">>>", k)):
            lit = t.skip_literal(k) if text[k] in "/\"'" else None
            if lit is not None:
                k = lit
                continue
            depth += text[k] in "([{"
            depth -= text[k] in ")]}"
            k += 1
        if k >= len(text):
            t.fail(j, "no '>>>' closing this launch's configuration")
        cfg = _split_top(t, j + 3, k)
        if not 2 <= len(cfg) <= 4:
            t.fail(j, "a launch's configuration is <<<grid, block[, shared bytes[, stream]]>>>")
        a = _skip_space_and_comments(t, k + 3)
        if text[a:a + 1] != "(":
            t.fail(k, "a launch's arguments in parentheses should follow '>>>'")
        args_end = t.balanced(a)[1]
        args = text[a + 1:args_end - 1]
        shared = cfg[2] if len(cfg) > 2 else "0"
        call = (f'kl_launcher<decltype(kl_sig_{word})>::launch("{word}", dim3({cfg[0]}), dim3({cfg[1]}), '
                f"(size_t)({shared})" + (f", {args}" if args.strip() else "") + ")")
        out += [text[last:pos], call.replace("\n", " ") + "\n" * text.count("\n", pos, args_end)]
        last = args_end
    out.append(text[last:])
    return "".join(out)


def _split_top(t, start, end):
    """text[start:end] split at its top-level commas."""
    text, parts, depth, s, i = t.text, [], 0, start, start
    while i < end:
        lit = t.skip_literal(i) if text[i] in "/\"'" else None
        if lit is not None:
            i = lit
            continue
        c = text[i]
        depth += c in "([{"
        depth -= c in ")]}"
        if c == "," and depth == 0:
            parts.append(text[s:i].strip())
            s = i + 1
        i += 1
    parts.append(text[s:end].strip())
    return parts


_DYNAMIC_SHARED = re.compile(r"extern\s+__shared__\s+([^;\[\]{}]*?)\s*\b([A-Za-z_]\w*)\s*\[\s*\]\s*;")


def dynamic_shared(text, where):
    """`extern __shared__ T name[];` (the launch's dynamic shared memory): on
    the emulator, name is its block of host memory. Line numbers are kept."""
    def emulated(m):
        typ = re.sub(r"__align__\s*\([^)]*\)", "", m.group(1)).strip()
        line = text.count("\n", 0, m.end()) + 1
        return (f"\n#ifdef KL_EMULATE\n#define {m.group(2)} (({typ} *)kl_emu_dynamic_shared)\n#else\n"
                f"{m.group(0)}\n#endif\n#line {line} \"{where}\"\n")
    return _DYNAMIC_SHARED.sub(emulated, text)


def host_header(header):
    """What of cuda_header the host code sees: its #define and #undef lines
    (launch sizes), continuation lines included."""
    out, keep = [], False
    for line in header.split("\n"):
        stripped = line.lstrip()
        if not keep:
            keep = stripped.startswith("#") and stripped[1:].lstrip().startswith(("define", "undef"))
        out.append(line if keep else "")
        keep = keep and line.rstrip().endswith("\\")
    return "\n".join(out)


class Parts:
    """One kernel's CUDA form: the device code, and what the host code adds
    at file scope (the runtime, the device code as a string, the kernels'
    parameter declarations) and where it finds the runtime in buf[]."""

    def __init__(self, device_code, host_scope, runtime_buf):
        self.device_code, self.host_scope, self.runtime_buf = device_code, host_scope, runtime_buf


def split(kernel, header, src, what):
    """cuda_header and one cuda_src (what: "cuda_src", "cuda_grad_src[k]")
    as (Parts, the host code's header, the host code's body); the body keeps
    its line numbers."""
    scan = _Translator(kernel, None)
    end = device_end(scan, src, what)
    head_kernels, head_dev = find_kernels(scan, header, "cuda_header")
    src_kernels, src_dev = find_kernels(scan, src[:end], what)
    kernels = head_kernels + src_kernels
    if len({k.name for k in kernels}) != len(kernels):
        scan.fail(0, "a kernel in cuda_header has the name of one in cuda_src")
    body = "\n" * src.count("\n", 0, end) + src[end:]
    body = rewrite_launches(scan, body, kernels, what)

    head_dev, src_dev = dynamic_shared(head_dev, "cuda_header"), dynamic_shared(src_dev, what)
    dt = DeviceTranslator(kernel)
    dev_header = dt.translate(head_dev, "cuda_header", in_header=True) if header.strip() else ""
    dev_src = dt.translate(src_dev, what)
    lines = [f"/* jt.code device code ({what}), generated by kiln from the user's Python (edit that, not this) */",
             "typedef int64_t index_t;"]
    for a in kernel.arrays:
        lines.append(f"typedef {a.ctype} {a.name}_type; enum {{ {a.name}_dim = {a.ndim} }};")
    for n, a in kernel.names.items():
        if n != a.name:
            lines.append(_alias_macros(n, a))
    lines += dt.macros
    if dev_header:
        lines += ['#line 1 "cuda_header"', dev_header]
    lines += [f'#line 1 "{what}"', dev_src, '#line 1 "kiln-generated"', "#ifdef KL_EMULATE",
              'extern "C" int kl_emulate_user(const char *name, void **p, const unsigned *grid, '
              "const unsigned *block, unsigned shared) {"]
    lines += [f'    if (!strcmp(name, "{k.name}")) return kl_emu_user_launch({k.name}, p, grid, block, shared);'
              for k in kernels]
    lines += ["    return -1;", "}", "#endif"]
    device_code = "\n".join(lines) + "\n"

    ht = _Translator(kernel, None)
    sigs = [f"void kl_sig_{k.name}({ht.translate(k.params, what).replace(chr(10), ' ')});" for k in kernels]
    host_scope = "\n".join([_HOST_RUNTIME % {"runtime": _C.CODE_CUDA_RUNTIME, "device_code": _c_string(device_code)},
                            "/* the kernels' parameters, by which a launch converts its arguments */"] + sigs)
    return Parts(device_code, host_scope, kernel.dims_buf + 1), host_header(header), body
