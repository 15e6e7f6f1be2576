"""jt.code: kernels written by the user in C++ (or C) inside Python, with
Jittor's template syntax (``@in0(i,j)``, ``@out(i)``, ``in0_shape0``,
``@alias``, ``out0->set_shape({n})`` ...).

The template text is translated here, once per (source, dtypes, ranks), into a
complete source for the core's user-kernel ABI::

    extern "C" void kl_kernel(void *const *buf, const int64_t *iarg, const double *farg)

buf[] holds the outputs, then the inputs, then the outputs' writable dims;
iarg holds the dims of the outputs then of the inputs. Shapes and strides are
read from iarg inside the kernel, never pasted in as numbers, so a new shape
reuses the compiled kernel. The core (kl_code) runs it, caches it and calls
the gradient kernels during backward.
"""
import re
import warnings

import numpy as np

from . import _C
from ._core import Var, array, out as _link, rebind, state
from ._dtype import as_dtype

__all__ = ["code"]

_CTYPES = {
    "bool": "bool", "int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t",
    "int32": "int32_t", "int64": "int64_t", "float16": "_Float16", "float32": "float",
    "float64": "double",
}
# the language of a kernel's source, as kl_code takes it (kl_code_lang)
_LANG_C, _LANG_CXX, _LANG_CUDA = 0, 1, 2
_MAX_INPUTS = _C.MAX_OP_INPUTS   # the core's limit on a code op's inputs (and outputs)
_MAX_DIMS = _C.MAX_DIMS

_PRELUDE_CXX = """\
#include <cstdint>
#include <cstddef>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <utility>
#include <vector>
#include <algorithm>
"""
_PRELUDE_C = """\
#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
"""
_VAR_STRUCT = """\
typedef int64_t index_t;
/* what in0, out0, ... point to (Jittor's Var*): out0->set_shape({n}) sets a
   dynamic output's size */
typedef struct kl_code_var {
    void *p;              /* the data */
    const int64_t *shape; /* its dims (a dynamic output: the most it may hold) */
    int64_t *dims;        /* outputs: the dims the kernel may set */
    int ndim;
    int64_t num;          /* number of elements */
    int64_t size;         /* bytes */
} kl_code_var;
"""
_KEYWORDS = frozenset("""auto break case char const continue default do double else enum extern
float for goto if inline int long register restrict return short signed sizeof static struct
switch typedef union unsigned void volatile while bool true false class new delete this
template typename namespace using operator public private protected virtual friend try catch
throw nullptr constexpr decltype""".split())

_RESERVED = frozenset(("buf", "iarg", "farg", "data", "index_t"))
_IDENT = re.compile(r"[A-Za-z_]\w*")
_PPNUM = re.compile(r"\.?\d(?:[eEpP][+-]|['\w.])*")
_NAME_PARTS = re.compile(r"(?P<base>[A-Za-z_]\w*?)(?P<suffix>_type|_p|_dim|_shape\d+|_stride\d+)?$")
_SET_SHAPE = re.compile(r"\s*->\s*set_shape\s*\(")
_DATA_KEY = re.compile(r"\s*\[\s*(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')\s*\]")


class CodeTranslationError(ValueError):
    """A template in a jt.code source that cannot be translated."""


# ---- arrays a kernel sees ----

class _Array:
    """One buffer of a kernel: its C name prefix (in0, out0, ...), where its
    pointer is in buf[], where its dims are in iarg, and for outputs where its
    writable dims are."""

    __slots__ = ("name", "buf", "iarg", "ctype", "itemsize", "ndim", "dims_at", "dynamic")

    def __init__(self, name, buf, iarg, dt, ndim, dims_at=None, dynamic=()):
        self.name, self.buf, self.iarg, self.ndim = name, buf, iarg, ndim
        self.ctype, self.itemsize = _CTYPES[dt.name], dt.itemsize
        self.dims_at, self.dynamic = dims_at, tuple(dynamic)


class _Kernel:
    """The buffers of one kernel (a forward kernel or one gradient kernel) and
    the names the user's source may use for them."""

    def __init__(self, outs, ins, visible_ins, aliases):
        # outs: [(name, dtype, ndim, dynamic dims)]; ins: [(name, dtype, ndim)];
        # aliases: {other name: array name}, e.g. {"out": "out0"}
        self.arrays = []
        iarg = buf = dims_at = 0
        for name, dt, nd, dyn in outs:
            self.arrays.append(_Array(name, buf, iarg, dt, nd, dims_at, dyn))
            buf, iarg, dims_at = buf + 1, iarg + nd, dims_at + nd
        self.outputs = list(self.arrays)
        for name, dt, nd in ins:
            self.arrays.append(_Array(name, buf, iarg, dt, nd))
            buf, iarg = buf + 1, iarg + nd
        self.dims_buf = buf                       # the writable dims array
        self.by_name = {a.name: a for a in self.arrays}
        # ARGS_DEF / ARGS / PRECALC list these (Jittor: inputs, then outputs)
        self.visible = [self.by_name[n] for n in visible_ins] + self.outputs
        self.names = {a.name: a for a in self.visible}   # user-visible name -> array
        self.names.update({n: self.by_name[t] for n, t in aliases.items()})


# ---- the translator ----

class _Translator:
    """Rewrites Jittor's templates in one kernel's header and body. Comments,
    strings and character literals are copied untouched; each expansion keeps
    the newlines it replaces, so the compiler's line numbers stay the user's.
    Arguments of templates are translated where they stand (recursively), so
    @in0(@in1(i), j) works and errors point at the user's line."""

    def __init__(self, kernel, data_keys):
        self.k = kernel
        self.aliases = {}           # alias -> _Array
        self.alias_order = []       # (alias, array, in_header)
        self.data_keys = data_keys  # {key: index} or None
        self.where = "cpu_src"
        self.text = ""

    # -- errors --
    def fail(self, pos, msg):
        line = self.text.count("\n", 0, pos) + 1
        src_line = self.text.split("\n")[line - 1].strip()
        raise CodeTranslationError(f"jt.code: {self.where} line {line}: {msg}\n    {line} | {src_line}")

    def lookup(self, name):
        return self.aliases.get(name) or self.k.names.get(name)

    # -- scanning helpers (all positions index self.text) --
    def skip_literal(self, pos):
        """End of the comment, string or char literal starting at pos, or None."""
        text = self.text
        if text.startswith("//", pos):
            end = text.find("\n", pos)
            return len(text) if end < 0 else end
        if text.startswith("/*", pos):
            end = text.find("*/", pos + 2)
            if end < 0:
                self.fail(pos, "unterminated /* comment")
            return end + 2
        q = text[pos]
        if q in "\"'":
            i = pos + 1
            while i < len(text):
                c = text[i]
                if c == "\\":
                    i += 2
                    continue
                if c == q:
                    return i + 1
                if c == "\n":
                    break
                i += 1
            self.fail(pos, f"unterminated {'string' if q == chr(34) else 'character'} literal")
        return None

    def balanced(self, pos):
        """self.text[pos] is an opening bracket: returns (argument spans split at
        top-level commas, index after the closing bracket)."""
        text, close = self.text, {"(": ")", "[": "]", "{": "}"}
        stack, spans, start, i = [], [], pos + 1, pos
        while i < len(text):
            c = text[i]
            end = self.skip_literal(i) if c in "/\"'" else None
            if end is not None:
                i = end
                continue
            if c.isalnum() or c == "_":       # a name or a number (1'000 is not a char)
                i = (_PPNUM if c.isdigit() else _IDENT).match(text, i).end()
                continue
            if c in close:
                stack.append(close[c])
            elif c in ")]}":
                if not stack or c != stack[-1]:
                    self.fail(i, f"unbalanced '{c}'")
                stack.pop()
                if not stack:
                    spans.append((start, i))
                    return spans, i + 1
            elif c == "," and len(stack) == 1:
                spans.append((start, i))
                start = i + 1
            i += 1
        self.fail(pos, f"no closing bracket for '{text[pos]}'")

    def strip_span(self, span):
        s, e = span
        while s < e and self.text[s].isspace():
            s += 1
        while e > s and self.text[e - 1].isspace():
            e -= 1
        return s, e

    # -- the walk --
    def translate(self, text, where, in_header=False):
        self.where, self.text = where, text
        return self.walk(0, len(text), in_header)

    def sub(self, span):
        """A template's argument, translated in place, on one line."""
        s, e = self.strip_span(span)
        return self.walk(s, e, False).replace("\n", " ")

    def walk(self, pos, end, in_header):
        text, outp, i = self.text, [], pos
        while i < end:
            c = text[i]
            lit = self.skip_literal(i) if c in "/\"'" else None
            if lit is not None:
                outp.append(text[i:lit])
                i = lit
                continue
            if c == "@":
                rep, j = self.template(i, in_header)
            elif c.isdigit() or (c == "." and text[i + 1:i + 2].isdigit()):
                j = _PPNUM.match(text, i).end()
                rep = text[i:j]
            elif c.isalpha() or c == "_":
                rep, j = self.identifier(_IDENT.match(text, i))
            else:
                outp.append(c)
                i += 1
                continue
            outp.append(rep + "\n" * text.count("\n", i, j))
            i = j
        return "".join(outp)

    def identifier(self, m):
        """set_shape calls and data["key"] reads; any other name is copied."""
        text, name, j = self.text, m.group(), m.end()
        sm = _SET_SHAPE.match(text, j)
        if sm and self.lookup(name) is not None:
            arr = self.lookup(name)
            if arr not in self.k.outputs:
                self.fail(m.start(), f"set_shape on {name}, which is not an output")
            spans, after = self.balanced(sm.end() - 1)
            if len(spans) != 1 or self.strip_span(spans[0])[0] == self.strip_span(spans[0])[1]:
                self.fail(m.start(), "set_shape takes one argument, e.g. out0->set_shape({n})")
            s, e = self.strip_span(spans[0])
            if text[s] == "{":
                elems, close = self.balanced(s)
                if close != e:
                    self.fail(s, "set_shape's argument should be a list like {n} or {n, m}")
                elems = [sp for sp in elems if self.strip_span(sp)[0] < self.strip_span(sp)[1]]
            else:
                elems = [(s, e)]
            if len(elems) != arr.ndim:
                self.fail(m.start(), f"set_shape on {name} gives {len(elems)} sizes, "
                                     f"it has {arr.ndim} dims")
            if not arr.dynamic:
                self.fail(m.start(), f"set_shape on {name}, whose shape is fixed: declare "
                                     "its dynamic dims with negative sizes (the most they may be)")
            sets = ", ".join(f"{arr.name}->dims[{d}] = (int64_t)({self.sub(sp)})"
                             for d, sp in enumerate(elems))
            return f"({sets}, (void)0)", after
        if name == "data" and self.data_keys is not None:
            dm = _DATA_KEY.match(text, j)
            if dm:
                key = dm.group(1)[1:-1]
                if key not in self.data_keys:
                    self.fail(m.start(), f"data[{dm.group(1)}]: no such key in data "
                                         f"(keys: {', '.join(self.data_keys) or 'none'})")
                return f"kl_data_p[{self.data_keys[key]}]", dm.end()
        return name, j

    def template(self, i, in_header):
        text = self.text
        m = _IDENT.match(text, i + 1)
        if not m:
            self.fail(i, "'@' must be followed by a name, as in @in0(i) or @alias(a, in0)")
        name, j = m.group(), m.end()
        if name == "alias":
            return self.alias(i, j, in_header)
        if name in ("ARGS_DEF", "ARGS", "PRECALC"):
            return self.args(name), j
        arr = self.lookup(name)
        if arr is not None and text[j:j + 1] == "(":
            spans, after = self.balanced(j)
            if len(spans) == 1 and self.strip_span(spans[0])[0] == self.strip_span(spans[0])[1]:
                spans = []
            if len(spans) != arr.ndim:
                self.fail(i, f"@{name}(...) takes {arr.ndim} indices ({name} has "
                             f"{arr.ndim} dims), got {len(spans)}")
            return f"{arr.name}_p[{_index(arr, [self.sub(sp) for sp in spans])}]", after
        parts = _NAME_PARTS.match(name)
        if parts and self.lookup(parts.group("base")) is not None:
            return name, j          # @in0_type, @out_shape0, @a_p ...: the name itself
        known = ", ".join(sorted(set(self.k.names) | set(self.aliases)))
        self.fail(i, f"unknown template @{name} (arrays here: {known}; also @alias, "
                     "@ARGS_DEF, @ARGS, @PRECALC)")

    def alias(self, i, j, in_header):
        if self.text[j:j + 1] != "(":
            self.fail(i, "@alias needs arguments: @alias(new_name, in0)")
        spans, after = self.balanced(j)
        if len(spans) != 2:
            self.fail(i, "@alias takes two names: @alias(new_name, in0)")
        new, target = (self.text[s:e] for s, e in map(self.strip_span, spans))
        if not _IDENT.fullmatch(new) or not _IDENT.fullmatch(target):
            self.fail(i, f"@alias({new}, {target}): both must be names")
        arr = self.lookup(target)
        if arr is None:
            self.fail(i, f"@alias: unknown array '{target}'")
        if new in self.k.names or new in self.aliases:
            self.fail(i, f"@alias: '{new}' already names an array")
        self.aliases[new] = arr
        self.alias_order.append((new, arr, in_header))
        # in the header only the types are declared (the arrays live in the
        # kernel, which declares the names first thing); in the body, here
        return ("" if in_header else _alias_decls(new, arr, with_type=True)), after

    def args(self, which):
        vis = self.k.visible
        if which == "PRECALC":
            return " ".join(_stride_decls(a) for a in vis)
        parts = []
        for a in vis:
            if which == "ARGS_DEF":
                parts.append(f"{a.name}_type *__restrict__ {a.name}_p")
                parts += [f"int64_t {a.name}_shape{d}" for d in range(a.ndim)]
            else:
                parts.append(f"{a.name}_p")
                parts += [f"{a.name}_shape{d}" for d in range(a.ndim)]
        return ", ".join(parts + ["int kl_unused_arg" if which == "ARGS_DEF" else "0"])


def _index(arr, idx):
    if not idx:
        return "0"
    terms = [f"({e})*{arr.name}_stride{d}" for d, e in enumerate(idx[:-1])]
    return "+".join(terms + [f"({idx[-1]})"])


def _stride_decls(a):
    if a.ndim == 0:
        return ""
    s = [f"{a.name}_stride{a.ndim - 1} = 1"]
    for d in range(a.ndim - 2, -1, -1):
        s.append(f"{a.name}_stride{d} = {a.name}_shape{d + 1} * {a.name}_stride{d + 1}")
    return "const int64_t " + ", ".join(s) + ";"


def _alias_decls(new, a, with_type):
    """Declarations making `new` name everything `a` names (one line)."""
    d = [f"kl_code_var *const {new} = {a.name};",
         f"{a.name}_type *const {new}_p = {a.name}_p;"]
    dims = [f"{new}_shape{k} = {a.name}_shape{k}, {new}_stride{k} = {a.name}_stride{k}"
            for k in range(a.ndim)]
    if dims:
        d.append("const int64_t " + ", ".join(dims) + ";")
    if with_type:
        d.append(f"typedef {a.name}_type {new}_type; enum {{ {new}_dim = {a.ndim} }};")
    return " ".join(d)


def _array_decls(a, dims_buf, host_copy_of=None):
    """The kernel's view of one buffer: pointer, shape, strides, Var-like
    struct. host_copy_of: CUDA host code reads this input (the op's
    constants) through a host copy, which is input host_copy_of."""
    if host_copy_of is None:
        lines = [f"    {a.name}_type *__restrict__ {a.name}_p = ({a.name}_type *)buf[{a.buf}];"]
    else:
        lines = [f"    {a.name}_type *__restrict__ {a.name}_p = "
                 f"({a.name}_type *)kl_rt->host_input(kl_rt, {host_copy_of});",
                 f"    if (!{a.name}_p) return;  /* the runtime keeps why */"]
    if a.ndim:
        shapes = ", ".join(f"{a.name}_shape{d} = iarg[{a.iarg + d}]" for d in range(a.ndim))
        lines.append(f"    const int64_t {shapes};")
        lines.append("    " + _stride_decls(a))
        num = " * ".join(f"{a.name}_shape{d}" for d in range(a.ndim))
    else:
        num = "1"
    dims = f"(int64_t *)buf[{dims_buf}] + {a.dims_at}" if a.dims_at is not None else "(int64_t *)0"
    lines.append(f"    kl_code_var {a.name}[1] = {{{{(void *){a.name}_p, iarg + {a.iarg}, {dims}, "
                 f"{a.ndim}, {num}, ({num}) * {a.itemsize}}}}};")
    return lines


def _old_style_decls(kernel, names, used):
    """Jittor 1.0's spellings (in0shape0, Tin0, outp ...), declared when used."""
    file_scope, body = [], []
    for n, a in names.items():
        if f"T{n}" in used:
            file_scope.append(f"typedef {a.name}_type T{n};")
        if f"{n}p" in used:
            body.append(f"    {a.name}_type *const {n}p = {a.name}_p;")
        for d in range(a.ndim):
            for kind in ("shape", "stride"):
                if f"{n}{kind}{d}" in used:
                    body.append(f"    const int64_t {n}{kind}{d} = {a.name}_{kind}{d};")
    return file_scope, body


def _numbered(text, marks=()):
    lines = text.split("\n")
    w = len(str(len(lines)))
    return "\n".join(f"{'>' if i + 1 in marks else ' '} {i + 1:>{w}} | {line}"
                     for i, line in enumerate(lines))


def _src_kind(lang):
    """How the user's sources of a language are named: cpu_src, cuda_src ..."""
    return "cuda" if lang == _LANG_CUDA else "cpu"


def _generate(kernel, header, body, lang, data_spec, init_pairs, what):
    """A complete kernel source: prelude, types, the translated header, then
    kl_kernel with the buffer views and the translated body in a block; and
    for CUDA the op's device code (else None)."""
    cxx, cuda = lang != _LANG_C, lang == _LANG_CUDA
    header_what = f"{_src_kind(lang)}_header"
    if cuda:
        from . import _code_cuda
        cuda_parts, header, body = _code_cuda.split(kernel, header, body, what)
    data_keys = {k: i for i, (k, _) in enumerate(data_spec)} if data_spec is not None else None
    tr = _Translator(kernel, data_keys)
    header_c = tr.translate(header, header_what, in_header=True) if header.strip() else ""
    body_c = tr.translate(body, what)
    used = set(_IDENT.findall(header)) | set(_IDENT.findall(body))
    names = dict(kernel.names)
    names.update(tr.aliases)
    old_file, old_body = _old_style_decls(kernel, names, used)

    src = ["/* jt.code kernel, generated by kiln from the user's Python (edit that, not this) */",
           _PRELUDE_CXX if cxx else _PRELUDE_C, _VAR_STRUCT]
    for a in kernel.arrays:
        src.append(f"typedef {a.ctype} {a.name}_type; enum {{ {a.name}_dim = {a.ndim} }};")
    for n, a in kernel.names.items():       # out, dout, pout ...: types at file scope
        if n != a.name:
            src.append(f"typedef {a.name}_type {n}_type; enum {{ {n}_dim = {a.ndim} }};")
    for n, a, in_header in tr.alias_order:
        if in_header:
            src.append(f"typedef {a.name}_type {n}_type; enum {{ {n}_dim = {a.ndim} }};")
    src += old_file
    if header_c:
        src.append(f'#line 1 "{header_what}"')
        src.append(header_c)
    if cuda:   # after the header: the kernels' parameters may use its macros
        src.append('#line 1 "kiln-generated"')
        src.append(cuda_parts.host_scope)
    text = "\n".join(src) + "\n"
    after = [f'#line {text.count(chr(10)) + 2} "kiln-generated"',
             ('extern "C" ' if cxx else "")
             + "void kl_kernel(void *const *buf, const int64_t *iarg, const double *farg)", "{",
             "    (void)farg;"]
    if cuda:
        after.append(f"    kl_rt = (kl_code_cuda_runtime *)buf[{cuda_parts.runtime_buf}];")
    n_out = len(kernel.outputs)
    for a in kernel.arrays:
        on_host = cuda and a.name == "kl_data"
        after += _array_decls(a, kernel.dims_buf, a.buf - n_out if on_host else None)
    for n, a in kernel.names.items():
        if n != a.name:
            after.append("    " + _alias_decls(n, a, with_type=False))
    for n, a, in_header in tr.alias_order:
        if in_header:
            after.append("    " + _alias_decls(n, a, with_type=False))
    for i, (k, is_int) in enumerate(data_spec or ()):
        parts = _NAME_PARTS.match(k) if _IDENT.fullmatch(k) else None
        if parts and k not in _KEYWORDS and k not in _RESERVED and not k.startswith("kl_") \
                and parts.group("base") not in names:
            t = "int64_t" if is_int else "double"
            after.append(f"    const {t} {k} = ({t})kl_data_p[{i}];")
    for o, init in init_pairs:
        if cuda:
            after.append(f"    kl_rt->copy(kl_rt, {o}_p, {init}_p, (size_t){o}[0].size, cudaMemcpyDeviceToDevice);")
        else:
            after.append(f"    memcpy({o}_p, {init}_p, (size_t){o}[0].size);")
    after += old_body
    after += ["    {", f'#line 1 "{what}"', body_c, "    }", "}", ""]
    return text + "\n".join(after), (cuda_parts.device_code if cuda else None)


# ---- the op ----

def _is_var_list(x):
    return isinstance(x, (list, tuple)) and all(isinstance(v, Var) for v in x)


def _is_shape(s):
    return isinstance(s, (list, tuple)) and all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in s)


def _out_specs(shape, dtype):
    """[(dtype, shape tuple)] from Jittor's single or multiple output form."""
    if type(shape) in (list, tuple) and type(dtype) not in (list, tuple) \
            and all(type(d) is int for d in shape):     # the common case, quickly
        return [(as_dtype(dtype if dtype is not None else "float32"), tuple(shape))], False
    if isinstance(shape, (int, np.integer)):
        shape = [int(shape)]
    multi = isinstance(dtype, (list, tuple)) or (
        isinstance(shape, (list, tuple)) and len(shape) > 0
        and all(isinstance(s, (list, tuple)) for s in shape))
    if not multi:
        if not _is_shape(shape):
            raise TypeError(f"jt.code: shape must be a list of ints, got {shape!r}")
        return [(as_dtype(dtype if dtype is not None else "float32"), tuple(int(d) for d in shape))], False
    shapes = list(shape)
    dtypes = list(dtype) if isinstance(dtype, (list, tuple)) else [dtype] * len(shapes)
    if len(shapes) != len(dtypes):
        raise ValueError(f"jt.code: {len(shapes)} output shapes but {len(dtypes)} dtypes")
    for s in shapes:
        if not _is_shape(s):
            raise TypeError(f"jt.code: each output shape must be a list of ints, got {s!r}")
    return [(as_dtype(d if d is not None else "float32"), tuple(int(x) for x in s))
            for s, d in zip(shapes, dtypes)], True


def _grad_list(grads, n_inputs, what="cpu"):
    if grads is None:
        return []
    if isinstance(grads, str):
        if n_inputs != 1:
            raise TypeError(f"jt.code: {what}_grad_src must be a list with one source per input")
        grads = [grads]
    grads = list(grads)
    if len(grads) > n_inputs:
        raise ValueError(f"jt.code: {len(grads)} gradient sources for {n_inputs} inputs")
    for g in grads:
        if g is not None and not isinstance(g, str):
            raise TypeError(f"jt.code: gradient sources must be strings, got {type(g).__name__}")
    return [g if g and g.strip() else None for g in grads]


_translations = {}   # key -> (forward source, grad sources)
_compiled = set()    # sources this process has compiled or found in a cache
_warned = [False]


def _compile_now(pairs, lang, texts):
    """Compiles the (host source, device code) pairs not compiled yet: the
    host sources for the host, device code for the current device."""
    host = [h for h, _ in pairs if h not in _compiled]
    device = _C.device()
    dev = [d for _, d in pairs if d is not None and (device, d) not in _compiled]
    try:
        if host:
            _C.code_compile(host, lang)
        if dev:
            _C.code_compile(dev, lang, True)
    except RuntimeError as e:
        raise _compile_error(e, texts) from None
    _compiled.update(host)
    _compiled.update((device, d) for d in dev)


def _compile_error(e, texts):
    """The core's compile error, with the user's sources numbered."""
    msg = str(e)
    m = re.search(r"source kept at (.*?); compiler output:\n(.*)", msg, re.S)
    if not m:
        return RuntimeError(f"jt.code: {msg}")
    path, log = m.group(1), m.group(2).rstrip()
    parts = ["jt.code: the kernel failed to compile.", "", "compiler output:", log]
    def lines_of(name):   # gcc's "cpu_src:12:", NVRTC's "cuda_src(12):"
        return {int(a or b) for a, b in re.findall(re.escape(name) + r"(?::(\d+):|\((\d+)\):)", log)}

    for name, text in texts:
        marks = lines_of(name)
        if marks or (name == texts[0][0] and not any(lines_of(n) for n, _ in texts)):
            parts += ["", f"{name} (line numbers as the compiler gives them):",
                      _numbered(text, marks)]
    parts += ["", f"generated source: {path}"]
    return RuntimeError("\n".join(parts))


def code(shape=None, dtype=None, inputs=None, cpu_src="", cpu_grad_src=None, cpu_header="",
         cuda_src="", cuda_grad_src=None, cuda_header="", data=None, lang="c++", outputs=None):
    """Runs a kernel written in C++ (or C, or CUDA) on vars: Jittor's code op.

    Forms::

        jt.code(shape, dtype, inputs, cpu_src=..., ...)          -> Var
        jt.code([shape0, shape1], [dtype0, dtype1], inputs, ...) -> [Var, Var]
        jt.code(outputs=[b, c], inputs=[a], cpu_src=...)          -> [b, c]

    In the last form the output vars keep their values as the kernel's
    starting point and are updated in place.

    Inside cpu_src (and cpu_header):

    * ``@in0(i, j)``, ``@out0(i)``, ``@out(i)`` (out is out0): elements, with
      the right strides; indices may themselves use templates,
      ``@out(i) = @in0(@in1(i), 0)``.
    * ``in0_shape0``, ``in0_stride0``, ``in0_p`` (pointer), ``in0_type`` (or
      ``@in0_type``), ``in0_dim``; the same for ``out0``, ``out`` ...; shapes are
      read at run time, so a new shape does not recompile.
    * ``in0->num``, ``in0->shape[d]``, and for outputs declared with negative
      sizes (dynamic: at most that many) ``out0->set_shape({n})`` sets the size
      the kernel produced.
    * ``@alias(a, in0)`` makes ``a``, ``@a(i)``, ``a_shape0``, ``a_type`` ...
      name in0.
    * ``data={"scale": 2.0, "k": 3}``: named constants in the kernel
      (``scale``, ``k``; also ``data["scale"]``), passed at run time, so new
      values do not recompile.
    * ``@ARGS_DEF`` / ``@ARGS`` / ``@PRECALC``: parameter list, argument list
      and stride declarations, to write helper functions in cpu_header.
    * comments, ``#pragma omp parallel for``, and in C++ the standard library
      (``<vector>``, ``<utility>``, ``<algorithm>`` are included).

    lang="c++" (default) compiles with the system C++ compiler (``c++``, or
    $KILN_CXX); lang="c" compiles plain C with ``cc`` ($KILN_CC).

    Gradients: cpu_grad_src holds one source per input (None to skip one):
    it computes that input's gradient into ``@out`` (shaped like the input)
    from ``@in0``..., ``@pout`` (the forward output) and ``@dout`` (the
    output's gradient). With several outputs the kernels run once for each
    output a gradient reaches, with that output as ``@pout`` and its gradient
    as ``@dout`` (as Jittor), and the shares add. Without gradient sources the
    op is a constant for autograd. A compile error raises RuntimeError with the compiler's message,
    the source numbered by line, and the generated file's path.

    cuda_src (with cuda_header and cuda_grad_src) runs instead of cpu_src
    when the op's inputs are on a CUDA device (``jt.flags.use_cuda = 1``),
    in Jittor's form: the definitions it begins with that start with ``_``
    (``__global__`` kernels, ``__device__`` functions) are device code,
    compiled by NVRTC (on the emulator, ``cuda-emulate``, by the C++
    compiler); the rest is host code that launches them with
    ``kernel<<<grid, block[, shared bytes]>>>(@ARGS)`` and may call
    cudaMemsetAsync, cudaMemcpy, cudaDeviceSynchronize and cudaGetLastError.
    ``@ARGS_DEF`` / ``@ARGS`` give a kernel every array's pointer and dims,
    ``@PRECALC`` their strides. Arguments convert to the kernel's parameter
    types; kernels are found by name (no kernel templates); cuda_header's
    ``#define`` lines are seen by the host code too. A launch of over 1024
    threads a block, or a grid with an empty dim, raises ValueError. An op
    with only cuda_src on the CPU raises RuntimeError. The host code must
    not read device memory itself (in0_p, out0_p: cudaMemcpy them), and
    threads it starts must not call the CUDA functions. Example::

        c = jt.code(a.shape, a.dtype, [a, b], cuda_src='''
            __global__ static void kernel1(@ARGS_DEF) {
                @PRECALC
                for (int i = threadIdx.x + blockIdx.x * blockDim.x; i < in0_shape0;
                     i += blockDim.x * gridDim.x)
                    @out(i) = @in0(i) * @in1(i);
            }
            kernel1<<<(in0_shape0 - 1) / 1024 + 1, 1024>>>(@ARGS);
        ''')

    Example: an element-wise op with its gradient::

        a, b = jt.random([5]), jt.random([5])
        c = jt.code(a.shape, a.dtype, [a, b],
            cpu_src='''
                for (int i = 0; i < in0_shape0; i++)
                    @out(i) = @in0(i) * @in1(i) + 1;
            ''',
            cpu_grad_src=['''
                for (int i = 0; i < in0_shape0; i++)
                    @out(i) = @dout(i) * @in1(i);     // d c / d a
            ''', '''
                for (int i = 0; i < in0_shape0; i++)
                    @out(i) = @dout(i) * @in0(i);     // d c / d b
            '''])
        da, db = jt.grad(c.sum(), [a, b])             # db == a

    Example: a dynamic-size output (the positive elements)::

        a = jt.array([5, -4, 3, -2, 1])
        b = jt.code([-a.shape[0]], a.dtype, [a],
            cpu_src='''
                int n = 0;
                for (int i = 0; i < in0_shape0; i++)
                    if (@in0(i) > 0) @out(n++) = @in0(i);
                out->set_shape({n});
            ''')
        # b: [5, 3, 1]

    Example: two outputs, an alias, a header and a data constant::

        a = jt.array([3.0, 2.0, 1.0])
        lo, hi = jt.code([(1,), (1,)], [a.dtype, a.dtype], [a],
            cpu_header="#include <algorithm>",
            cpu_src='''
                @alias(x, in0)
                @out0(0) = @out1(0) = @x(0);
                for (int i = 1; i < x_shape0; i++) {
                    @out0(0) = std::min(@out0(0), @x(i));
                    @out1(0) = std::max(@out1(0), @x(i));
                }
                @out1(0) *= scale;            // a constant from data
            ''', data={"scale": 10.0})
        # lo: [1.], hi: [30.]

    Example: k nearest neighbours of n 3-D points (OpenMP over points)::

        n, k = 1000, 10
        a = jt.random((n, 3))
        b = jt.code([n, k], "int32", [a],
            cpu_header="#include <algorithm>",
            cpu_src='''
                using namespace std;
                auto n = out_shape0, k = out_shape1;
                #pragma omp parallel for
                for (int i = 0; i < n; i++) {
                    vector<pair<float, int>> id(n);
                    for (int j = 0; j < n; j++) {
                        auto dx = @in0(i,0) - @in0(j,0), dy = @in0(i,1) - @in0(j,1),
                             dz = @in0(i,2) - @in0(j,2);
                        id[j] = {dx*dx + dy*dy + dz*dz, j};
                    }
                    nth_element(id.begin(), id.begin() + k, id.end());
                    for (int j = 0; j < k; j++) @out(i, j) = id[j].second;
                }
            ''')
    """
    # ---- arguments ----
    if outputs is None and shape is not None and _is_var_list(dtype) and dtype \
            and isinstance(shape, (list, tuple)) and _is_var_list(shape):
        inputs, outputs, shape, dtype = shape, dtype, None, None   # code(inputs, outputs)
    single_given = False
    if outputs is not None:
        if shape is not None or dtype is not None:
            raise TypeError("jt.code: give either shape and dtype, or outputs, not both")
        if isinstance(outputs, Var):
            outputs, single_given = [outputs], True
        if not _is_var_list(outputs) or not outputs:
            raise TypeError("jt.code: outputs must be a non-empty list of Vars")
        specs = [(o.dtype, tuple(o.shape)) for o in outputs]
        multi = not single_given
    else:
        if shape is None:
            raise TypeError("jt.code: the output shape (or outputs=[...]) is required")
        if hasattr(shape, "tolist") and not isinstance(shape, (list, tuple)):
            shape = shape.tolist()
        specs, multi = _out_specs(shape, dtype)
    if inputs is None:
        inputs = []
    elif isinstance(inputs, Var):
        inputs = [inputs]
    inputs = [x if isinstance(x, Var) else array(x) for x in inputs]
    lang_l = str(lang).lower()
    if lang_l in ("c++", "cpp", "cxx", "c++17"):
        lang_code = _LANG_CXX
    elif lang_l == "c":
        lang_code = _LANG_C
    else:
        raise ValueError(f"jt.code: lang must be 'c++' or 'c', got {lang!r}")
    # the op runs where its first input is (else on the current device): a
    # CUDA device runs cuda_src when there is one
    device = inputs[0]._device if inputs else _C.device()
    if not isinstance(cuda_src or "", str) or not isinstance(cuda_header or "", str):
        raise TypeError("jt.code: cuda_src and cuda_header must be strings")
    if cuda_src and cuda_src.strip() and device.startswith("cuda"):
        lang_code = _LANG_CUDA
        cpu_src, cpu_header, cpu_grad_src = cuda_src, cuda_header or "", cuda_grad_src
    elif not cpu_src or not cpu_src.strip():
        if cuda_src and cuda_src.strip():
            raise RuntimeError(f"jt.code: this op has only cuda_src, which runs on a CUDA device, and its "
                               f"inputs are on {device}: set jt.flags.use_cuda = 1 (an NVIDIA GPU) before "
                               "making them, or give cpu_src to run it on the CPU")
        raise ValueError("jt.code: cpu_src is required (the kernel's body)")
    src_what = _src_kind(lang_code)
    if not isinstance(cpu_src, str) or not isinstance(cpu_header or "", str):
        raise TypeError("jt.code: cpu_src and cpu_header must be strings")
    cpu_header = cpu_header or ""
    grads = _grad_list(cpu_grad_src, len(inputs), src_what)
    if lang_code == _LANG_CUDA and (any(x.dtype.name == "float16" for x in inputs)
                           or any(dt.name == "float16" for dt, _ in specs)):
        raise TypeError("jt.code: float16 inputs and outputs are not supported in cuda_src; cast to float32 "
                        "around the op")
    if any(x.dtype.name == "bfloat16" for x in inputs) or any(dt.name == "bfloat16" for dt, _ in specs):
        raise TypeError("jt.code: bfloat16 inputs and outputs are not supported (kernels store it as "
                        "16 raw bits, with no C arithmetic type); cast to float32 around the op")
    for dt, sh in specs:
        if len(sh) > _MAX_DIMS:
            raise ValueError(f"jt.code: an output has {len(sh)} dims, at most {_MAX_DIMS}")
    if any(d < 0 for _, sh in specs for d in sh):
        if outputs is not None:
            raise ValueError("jt.code: outputs given as vars cannot have dynamic sizes")
        if any(g for g in grads):
            raise ValueError("jt.code: outputs of dynamic size cannot have gradient kernels")
    # several outputs with gradient kernels: the op runs without them and each
    # output gets a custom gradient rule running them (_multi_output_grads)
    multi_grads = any(g for g in grads) and len(specs) > 1
    data_spec, data_var = None, None
    if data is not None:
        if not isinstance(data, dict):
            raise TypeError(f"jt.code: data must be a dict of numbers, got {type(data).__name__}")
        data_spec, vals = [], []
        for key, v in data.items():
            if not isinstance(key, str):
                raise TypeError(f"jt.code: data keys must be strings, got {key!r}")
            if isinstance(v, (bool, np.bool_, int, np.integer)):
                if abs(int(v)) > 2**53:
                    raise ValueError(f"jt.code: data[{key!r}] = {v} is too large to pass exactly")
                data_spec.append((key, True))
            elif isinstance(v, (float, np.floating)):
                data_spec.append((key, False))
            else:
                raise TypeError(f"jt.code: data[{key!r}] must be a number, got {type(v).__name__}")
            vals.append(float(v))
        data_spec = tuple(data_spec)
        data_var = array(np.array(vals or [0.0], np.float64))
    n_user = len(inputs)
    hidden = ([data_var] if data_var is not None else []) + (list(outputs) if outputs is not None else [])
    all_ins = inputs + hidden
    if len(all_ins) > _MAX_INPUTS or len(specs) > _MAX_INPUTS:
        raise ValueError(f"jt.code: at most {_MAX_INPUTS} inputs and {_MAX_INPUTS} outputs"
                         + (" (data and outputs=[...] take one input each)" if hidden else ""))
    if any(grads) and len(all_ins) + 2 > _MAX_INPUTS:
        raise ValueError(f"jt.code: with gradient kernels at most {_MAX_INPUTS - 2} inputs")
    for x in all_ins:
        if x.ndim > _MAX_DIMS:
            raise ValueError(f"jt.code: an input has {x.ndim} dims, at most {_MAX_DIMS}")

    # ---- translation (once per source, dtypes and ranks) ----
    in_sig = tuple((x.dtype.name, x.ndim) for x in inputs)
    out_sig = tuple((dt.name, len(sh), tuple(i for i, d in enumerate(sh) if d < 0))
                    for dt, sh in specs)
    key = (cpu_src, cpu_header, tuple(grads), lang_code, out_sig, in_sig, data_spec,
           outputs is not None)
    texts = [(f"{src_what}_src", cpu_src), (f"{src_what}_header", cpu_header)]
    texts += [(f"{src_what}_grad_src[{k}]", g) for k, g in enumerate(grads) if g]
    tr = _translations.get(key)
    if tr is None:
        tr = _translate_all(cpu_src, cpu_header, [] if multi_grads else grads, lang_code, specs, inputs,
                            data_spec, outputs is not None)
        if len(_translations) >= 4096:   # sources built on the fly: keep the table bounded
            _translations.clear()
        _translations[key] = tr
    source, grad_sources = tr
    _compile_now([source] + [g for g in grad_sources if g], lang_code, texts)

    if not any(grads) and state.grad_enabled and not _warned[0] \
            and any(x.dtype.is_float for x in inputs) and any(dt.is_float for dt, _ in specs):
        _warned[0] = True
        warnings.warn(f"jt.code: no {src_what}_grad_src was given, so the op's outputs are constants "
                      "for autograd (no gradient flows to its inputs); this warning is shown once",
                      stacklevel=2)

    # ---- the op ----
    out_specs = [(dt.code, sh) for dt, sh in specs]
    try:
        made = _C.code(all_ins, out_specs, source[0], lang_code, [g and g[0] for g in grad_sources])
    except RuntimeError as e:
        if "compile failed" in str(e):
            raise _compile_error(e, texts[:2]) from None
        raise
    made = [_link(o, *inputs[:n_user]) for o in made]
    if multi_grads:
        made = _multi_output_grads(made, inputs[:n_user], hidden, grads, cpu_header, lang_code, data_spec)
    if outputs is not None:
        for o, new in zip(outputs, made):
            rebind(o, new)
        return outputs[0] if single_given else list(outputs)
    return made if multi else made[0]


def _grad_source(inputs, hidden_specs, k, out_dtype, out_ndim, header, body, lang, data_spec):
    """The gradient kernel of input k for one output (pout) and its gradient
    (dout), run as an op of its own: Jittor's numbering (dout is in{n},
    pout in{n+1}). (host source, device code or None)"""
    n = len(inputs)
    ins = [(f"in{i}", x.dtype, x.ndim) for i, x in enumerate(inputs)]
    gk = _Kernel([("out0", inputs[k].dtype, inputs[k].ndim, [])],
                 ins + hidden_specs + [(f"in{n + 1}", out_dtype, out_ndim), (f"in{n}", out_dtype, out_ndim)],
                 [f"in{i}" for i in range(n + 2)],
                 {"out": "out0", "dout": f"in{n}", "pout": f"in{n + 1}", "pout0": f"in{n + 1}"})
    return _generate(gk, header, body, lang, data_spec, [], f"{_src_kind(lang)}_grad_src[{k}]")


def _multi_output_grads(made, inputs, hidden, grads, header, lang, data_spec):
    """Each output of a several-output code op carries a rule that runs the
    gradient kernels with that output as pout and its gradient as dout
    (Jittor calls them once per output reaching the loss; the shares add)."""
    from ._function import _attach
    hidden_specs = []
    if data_spec is not None:
        hidden_specs.append(("kl_data", as_dtype("float64"), 1))
    taped = [k for k, g in enumerate(grads) if g and inputs[k].dtype.is_float]

    def rule_for(j):
        def rule(douts):
            pout, dout = made[j].detach(), douts[0]
            got = []
            for k in taped:
                src = _grad_source(inputs, hidden_specs, k, pout.dtype, pout.ndim, header, grads[k],
                                   lang, data_spec)
                _compile_now([src], lang, [])
                spec = [(inputs[k].dtype.code, tuple(inputs[k].shape))]
                g, = _C.code([x.detach() for x in inputs] + hidden + [pout, dout], spec, src[0], lang, [])
                got.append(_link(g))
            return got
        return rule

    return [_attach([o], [inputs[k] for k in taped], rule_for(j))[0] for j, o in enumerate(made)]


def _translate_all(cpu_src, cpu_header, grads, lang, specs, inputs, data_spec, has_init):
    """(kl_kernel's source, its device code or None) of the op and of each
    gradient kernel (None: none)."""
    n = len(inputs)
    ins = [(f"in{k}", x.dtype, x.ndim) for k, x in enumerate(inputs)]
    hidden = []
    if data_spec is not None:
        hidden.append(("kl_data", as_dtype("float64"), 1))
    init_pairs = []
    if has_init:
        for i, (dt, sh) in enumerate(specs):
            hidden.append((f"kl_init{i}", dt, len(sh)))
            init_pairs.append((f"out{i}", f"kl_init{i}"))
    outs = [(f"out{i}", dt, len(sh), [d for d, s in enumerate(sh) if s < 0])
            for i, (dt, sh) in enumerate(specs)]
    fwd = _Kernel(outs, ins + hidden, [f"in{k}" for k in range(n)], {"out": "out0"})
    source = _generate(fwd, cpu_header, cpu_src, lang, data_spec, init_pairs, f"{_src_kind(lang)}_src")
    grad_sources = []
    for k, g in enumerate(grads):
        if not g:
            grad_sources.append(None)
            continue
        # the core's gradient kernel: one output shaped like input k
        odt, osh = specs[0]
        grad_sources.append(_grad_source(inputs, hidden, k, odt, len(osh), cpu_header, g, lang,
                                         data_spec))
    return source, tuple(grad_sources)
