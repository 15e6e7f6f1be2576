"""Convert PyTorch model source code to kiln (Jittor-style) source code.

    from kiln.utils.pytorch_converter import convert
    kiln_code = convert(pytorch_code)

The source is parsed with :mod:`ast`, rewritten by a ``NodeTransformer`` and
printed back with :func:`ast.unparse` (so comments and formatting of the input
are not preserved).  What it does:

* imports: ``import torch`` / ``import torch.nn as nn`` /
  ``import torch.nn.functional as F`` / ``from torch import nn`` /
  ``from torch.nn import Conv2d`` ... are removed and the output starts with
  ``import kiln as jt`` and ``from kiln import nn``; every use of a name bound
  to a torch module or object is rewritten (``torch.xxx`` -> ``jt.xxx``,
  ``F.relu`` -> ``nn.relu``, ``Conv2d`` -> ``nn.Conv``...).  Without imports,
  ``torch``, ``nn`` and ``F`` are assumed to mean torch, torch.nn and
  torch.nn.functional (as in snippets).
* names: kiln keeps PyTorch's names, so most map one to one; the renames are
  Jittor's (``torch.cat`` -> ``jt.concat``, ``torch.tensor``/``torch.Tensor(...)``/
  ``torch.from_numpy`` -> ``jt.array``, ``torch.Tensor`` as a type -> ``jt.Var``,
  ``torch.mm`` -> ``jt.matmul``, ``torch.manual_seed`` -> ``jt.set_global_seed``,
  ``nn.Conv2d`` -> ``nn.Conv``, ``F.cross_entropy`` -> ``nn.cross_entropy_loss``,
  ``torch.nn.init.*`` -> ``jt.init.*``...).  A Jittor name is used when kiln has
  it (or has neither name), the PyTorch name when kiln only has that one;
  ``nn.MaxPool2d``/``nn.AvgPool2d`` become ``nn.Pool(..., op=...)`` only when
  kiln lacks them.
* keywords: a PyTorch keyword the kiln target does not accept is renamed to
  Jittor's spelling when that one is accepted (``training`` -> ``is_train``,
  ``negative_slope`` -> ``scale``, ``keepdim`` -> ``keepdims``); ``inplace``,
  ``device``, ``non_blocking``, ``pin_memory``, ``memory_format`` and ``layout``
  are dropped when not accepted; any other unaccepted keyword is kept and
  reported.
* methods: ``def forward`` in a class -> ``def execute`` (and ``.forward(...)``
  calls -> ``.execute(...)``); ``x.size()`` -> ``x.shape``; ``x.size(i)`` ->
  ``x.shape[i]``; ``x.dim()`` -> ``x.ndim``; ``.contiguous()``, ``.cuda()``,
  ``.cpu()`` and ``.to(device)`` are dropped; ``.to(dtype)``/``.type(dtype)`` ->
  ``.astype(dtype)``; statements left as a bare name by a drop
  (``model.cuda()``, ``model = model.to(device)``) are removed;
  ``torch.device(s)`` -> ``s``; ``torch.cuda.is_available()`` ->
  ``jt.flags.use_cuda`` (``jt.has_cuda`` when kiln has it).
* max/argmax: ``x.max(d)[0]`` -> ``x.max(d)``, ``x.max(d)[1]`` ->
  ``x.argmax(d)[0]`` and ``x.argmax(d)`` -> ``x.argmax(d)[0]`` (likewise min and
  the ``torch.`` functions), because kiln's max(dim) returns the values only and
  its argmax Jittor's ``(indices, values)`` pair (checked at conversion time).
* everything else (``.view``, ``.permute``, ``.transpose``, ``.item()``,
  ``.numpy()``, ``super().__init__()``, ``nn.Module``, ``torch.no_grad()``...) is
  kept.

Nothing is dropped silently: constructs the converter cannot map -- a
``torch``/``nn``/``F`` name kiln does not provide, an unaccepted keyword, a
tensor method kiln's Var lacks, ``torch.max(x, dim)`` (which returns values
only in kiln), torchvision imports -- are kept as written (name-mapped) and
listed in a comment at the top of the output; ``convert(src, report=lst)``
also appends the messages to ``lst``.
"""
import ast
import importlib
import inspect

__all__ = ["convert"]

_HEADER_IMPORTS = "import kiln as jt\nfrom kiln import nn\n"

# torch.<name> -> jt.<name> (Jittor's spellings, used when kiln has them)
_TORCH_RENAMES = {
    "cat": "concat", "mm": "matmul", "manual_seed": "set_global_seed", "Tensor": "Var",
    "clip": "clamp",
}
# torch.<name>(...) as a call -> jt.<name>(...)
_TORCH_CALL_RENAMES = {"Tensor": "array", "tensor": "array", "as_tensor": "array",
                       "from_numpy": "array"}
_TYPED_TENSORS = {
    "FloatTensor": "float32", "DoubleTensor": "float64", "HalfTensor": "float16",
    "LongTensor": "int64", "IntTensor": "int32", "ShortTensor": "int16",
    "CharTensor": "int8", "ByteTensor": "uint8", "BoolTensor": "bool",
}
_NN_RENAMES = {"Conv2d": "Conv", "ConvTranspose2d": "ConvTranspose"}
_NN_FALLBACKS = {"MaxPool2d": ("Pool", "maximum"), "AvgPool2d": ("Pool", "mean")}
_F_RENAMES = {
    "cross_entropy": "cross_entropy_loss", "binary_cross_entropy": "bce_loss",
}
# PyTorch keyword -> Jittor keyword, used when the kiln target lacks the former
_KW_RENAMES = {"training": "is_train", "negative_slope": "scale", "keepdim": "keepdims"}
# keywords that mean nothing to kiln: dropped when the target does not take them
_DROPPABLE_KW = {"inplace", "device", "non_blocking", "pin_memory", "memory_format", "layout"}
# methods dropped entirely (x.cuda() -> x)
_DROPPED_METHODS = {"contiguous", "cuda", "cpu"}
# common torch.Tensor methods: reported when kiln's Var lacks them
_TENSOR_METHODS = {
    "masked_fill", "repeat", "index_select", "gather", "scatter", "expand_as", "view_as",
    "type_as", "new_zeros", "new_ones", "new_full", "new_tensor", "new_empty", "unbind",
    "nonzero", "masked_select", "narrow", "unfold", "roll", "repeat_interleave", "t",
    "is_contiguous", "storage", "data_ptr", "addmm", "baddbmm", "index_add", "index_fill",
    "scatter_add", "where", "masked_scatter", "element_size", "pin_memory", "share_memory_",
    "retain_grad", "register_hook", "half", "sum_to_size", "diag", "triu", "tril", "outer",
}
_TORCH_DTYPE_NAMES = {
    "float32", "float", "float64", "double", "float16", "half", "bfloat16", "int64", "long",
    "int32", "int", "int16", "short", "int8", "uint8", "bool",
}


def _kiln():
    import kiln
    return kiln


_ARG_PAIR = []


def _argmax_returns_pair():
    """Whether kiln's argmax returns Jittor's (indices, values) pair rather than
    PyTorch's indices (checked once on a tiny Var; Jittor's behaviour assumed when
    it cannot be run)."""
    if not _ARG_PAIR:
        try:
            r = _kiln().argmax(_kiln().array([1.0, 3.0, 2.0]), 0)
            _ARG_PAIR.append(isinstance(r, tuple))
        except Exception:
            _ARG_PAIR.append(True)
    return _ARG_PAIR[0]


def _lookup(root, parts):
    """Walk attributes (importing kiln submodules on the way); -> (obj, missing index)."""
    obj = root
    for i, p in enumerate(parts):
        nxt = getattr(obj, p, None)
        if nxt is None and inspect.ismodule(obj):
            try:
                nxt = importlib.import_module(f"{obj.__name__}.{p}")
            except ImportError:
                nxt = None
        if nxt is None:
            return None, i
        obj = nxt
    return obj, None


def _has(root, name):
    return _lookup(root, [name])[0] is not None


def _accepts(func, kw):
    """True/False when func's signature says whether it takes keyword kw; None when
    it cannot be told (no signature, **kwargs)."""
    if func is None:
        return None
    target = func
    if inspect.isclass(func):
        target = func.__init__
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    for p in sig.parameters.values():
        if p.kind == p.VAR_KEYWORD:
            return None
    p = sig.parameters.get(kw)
    return p is not None and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)


def _expr(src, like=None):
    node = ast.parse(src, mode="eval").body
    if like is not None:
        for n in ast.walk(node):
            ast.copy_location(n, like)
    return node


def _dotted(node):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    return None


class _Converter(ast.NodeTransformer):
    def __init__(self):
        self.kiln = _kiln()
        self.messages = []
        self.aliases = {"torch": "torch", "nn": "torch.nn", "F": "torch.nn.functional"}
        self.class_depth = 0

    # ---- bookkeeping ----
    def note(self, node, msg):
        line = getattr(node, "lineno", None)
        m = f"line {line}: {msg}" if line is not None else msg
        if m not in self.messages:
            self.messages.append(m)

    def canon(self, node):
        """'torch.nn.functional.relu' for F.relu (when F is bound to torch.nn.functional)."""
        parts = _dotted(node)
        if parts is None or parts[0] not in self.aliases:
            return None
        return ".".join([self.aliases[parts[0]]] + parts[1:])

    def _pick(self, module, jittor_name, torch_name):
        if _has(module, jittor_name) or not _has(module, torch_name):
            return jittor_name
        return torch_name

    def map_path(self, canon, node, call=False):
        """Canonical torch path -> (kiln expression source, kiln object or None)."""
        k = self.kiln
        parts = canon.split(".")
        if parts == ["torch"]:
            return "jt", k
        if parts[:2] == ["torch", "nn"]:
            if len(parts) == 2:
                return "nn", k.nn
            if parts[2] == "functional":
                if len(parts) == 3:
                    return "nn", k.nn
                name = parts[3]
                name = self._pick(k.nn, _F_RENAMES[name], name) if name in _F_RENAMES else name
                return self._resolve(k.nn, "nn", [name] + parts[4:], canon, node)
            if parts[2] == "init":
                if len(parts) == 3:
                    return self._resolve(k, "jt", ["init"], canon, node)
                return self._resolve(k, "jt", ["init"] + parts[3:], canon, node)
            name = parts[2]
            if name in _NN_RENAMES:
                name = self._pick(k.nn, _NN_RENAMES[name], name)
            return self._resolve(k.nn, "nn", [name] + parts[3:], canon, node)
        name = parts[1]
        if call and len(parts) == 2 and name in _TORCH_CALL_RENAMES:
            name = self._pick(k, _TORCH_CALL_RENAMES[name], name)
        elif len(parts) == 2 and name in _TYPED_TENSORS and not call:
            return "jt." + _TYPED_TENSORS[name], getattr(k, _TYPED_TENSORS[name], None)
        elif name in _TORCH_RENAMES:
            name = self._pick(k, _TORCH_RENAMES[name], name)
        return self._resolve(k, "jt", [name] + parts[2:], canon, node)

    def _resolve(self, root, prefix, parts, canon, node):
        src = ".".join([prefix] + parts)
        obj, missing = _lookup(root, parts)
        if missing is not None:
            have = ".".join([prefix] + parts[:missing + 1])
            self.note(node, f"{canon} -> {src}: kiln has no {have} (kept, name-mapped only)")
        return src, obj

    # ---- imports ----
    def visit_Import(self, node):
        kept = []
        for a in node.names:
            top = a.name.split(".")[0]
            if top == "torch":
                if a.asname:
                    self.aliases[a.asname] = a.name
                    self.map_path(a.name, node)   # reports a target kiln lacks
                else:
                    self.aliases["torch"] = "torch"
            else:
                bound = a.asname or top
                self.aliases.pop(bound, None)
                if top in ("torchvision", "torchaudio", "torchtext"):
                    self.note(node, f"import {a.name}: no kiln equivalent (kept)")
                kept.append(a)
        if not kept:
            return None
        node.names = kept
        return node

    def visit_ImportFrom(self, node):
        mod = node.module or ""
        if node.level or mod.split(".")[0] != "torch":
            for a in node.names:
                self.aliases.pop(a.asname or a.name, None)
            if mod.split(".")[0] in ("torchvision", "torchaudio", "torchtext") and not node.level:
                self.note(node, f"from {mod} import ...: no kiln equivalent (kept)")
            return node
        if any(a.name == "*" for a in node.names):
            star = {"torch": "kiln", "torch.nn": "kiln.nn", "torch.nn.functional": "kiln.nn"}
            if mod in star:
                return ast.copy_location(
                    ast.ImportFrom(module=star[mod], names=[ast.alias(name="*")], level=0), node)
            self.note(node, f"from {mod} import *: no kiln equivalent (kept)")
            return node
        for a in node.names:
            self.aliases[a.asname or a.name] = f"{mod}.{a.name}"
            self.map_path(f"{mod}.{a.name}", node)   # reports a target kiln lacks
        return None

    # ---- names and attributes ----
    def visit_Name(self, node):
        if node.id in self.aliases:
            if isinstance(node.ctx, ast.Load):
                src, _ = self.map_path(self.aliases[node.id], node)
                return _expr(src, node)
            self.aliases.pop(node.id)   # rebound by the code itself
        return node

    def visit_Attribute(self, node):
        canon = self.canon(node)
        if canon is not None and isinstance(node.ctx, ast.Load):
            src, _ = self.map_path(canon, node)
            return _expr(src, node)
        if canon is not None:  # assignment to a torch attribute (torch.backends...)
            src, _ = self.map_path(canon, node)
            new = _expr(src, node)
            if isinstance(new, ast.Attribute):
                new.ctx = node.ctx
                return new
            return node
        self.generic_visit(node)
        return node

    # ---- definitions ----
    def visit_ClassDef(self, node):
        node.bases = [self.visit(b) for b in node.bases]
        node.keywords = [self.visit(k) for k in node.keywords]
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        self.class_depth += 1
        body = []
        for stmt in node.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == "forward":
                stmt.name = "execute"
            r = self.visit(stmt)
            if r is None:
                continue
            body.extend(r if isinstance(r, list) else [r])
        self.class_depth -= 1
        node.body = body
        return node

    # ---- statements left empty by drops ----
    def visit_Expr(self, node):
        was_call = isinstance(node.value, ast.Call)
        self.generic_visit(node)
        if was_call and isinstance(node.value, (ast.Name, ast.Attribute, ast.Constant)):
            return None   # e.g. model.cuda() -> model
        return node

    def visit_Assign(self, node):
        self.generic_visit(node)
        if (len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Name) and node.value.id == node.targets[0].id):
            return None   # model = model.to(device) -> model = model
        return node

    # ---- x.max(dim)[0] / x.max(dim)[1] ----
    def _max_kind(self, call):
        """'method' / 'torch' for a max/min call that takes a dim, else None."""
        f = call.func
        canon = self.canon(f)
        if canon in ("torch.max", "torch.min"):
            if len(call.args) == 2 or any(kw.arg == "dim" for kw in call.keywords):
                return "torch"
            return None
        if canon is None and isinstance(f, ast.Attribute) and f.attr in ("max", "min") and (
                len(call.args) == 1 or any(kw.arg == "dim" for kw in call.keywords)):
            return "method"
        return None

    def visit_Subscript(self, node):
        sl = node.slice
        idx = sl.value if isinstance(sl, ast.Constant) and type(sl.value) is int else None
        if idx in (0, 1) and isinstance(node.value, ast.Call) and self._max_kind(node.value):
            node.value._kiln_pick = idx   # values (0) or indices (1) of PyTorch's max(dim)
            new = self.visit(node.value)
            if idx == 0:
                return new                 # kiln's max(dim) is the values
            if _argmax_returns_pair():     # argmax(dim) -> (indices, values)
                return ast.copy_location(
                    ast.Subscript(value=new, slice=ast.Constant(0), ctx=ast.Load()), node)
            return new
        self.generic_visit(node)
        return node

    # ---- calls ----
    def visit_Call(self, node):
        canon = self.canon(node.func)
        node.args = [self.visit(a) for a in node.args]
        node.keywords = [self.visit(k) for k in node.keywords]
        if canon is not None:
            return self.torch_call(node, canon)
        node.func = self.visit(node.func)
        if isinstance(node.func, ast.Attribute):
            return self.method_call(node)
        return node

    def fix_keywords(self, node, target, what):
        keep = []
        for kw in node.keywords:
            if kw.arg is None:       # **kwargs
                keep.append(kw)
                continue
            ok = _accepts(target, kw.arg)
            if ok is not False:
                if ok is None and target is None and kw.arg in _DROPPABLE_KW:
                    continue
                keep.append(kw)
                continue
            alt = _KW_RENAMES.get(kw.arg)
            if alt and alt != kw.arg and _accepts(target, alt):
                kw.arg = alt
                keep.append(kw)
            elif kw.arg in _DROPPABLE_KW:
                continue
            else:
                self.note(node, f"{what}: keyword '{kw.arg}' is not accepted by kiln's "
                                f"version (kept)")
                keep.append(kw)
        node.keywords = keep

    def torch_call(self, node, canon):
        k = self.kiln
        parts = canon.split(".")
        name = parts[-1]
        if canon == "torch.device":
            if node.args:
                return node.args[0]
            self.note(node, "torch.device(...) without a positional argument (kept)")
        if canon == "torch.cuda.is_available" and not node.args:
            return _expr("jt.has_cuda" if _has(k, "has_cuda") else "jt.flags.use_cuda", node)
        if len(parts) == 2 and name in _TYPED_TENSORS:
            dt = _TYPED_TENSORS[name]
            shape_like = (len(node.args) > 1 or (len(node.args) == 1 and isinstance(
                node.args[0], ast.Constant) and isinstance(node.args[0].value, int)))
            fn = "empty" if shape_like else "array"
            node.func = _expr(f"jt.{fn}", node.func)
            node.keywords = [kw for kw in node.keywords if kw.arg != "dtype"]
            node.keywords.append(ast.keyword(arg="dtype", value=_expr(f"jt.{dt}", node)))
            self.fix_keywords(node, getattr(k, fn, None), canon)
            return node
        if parts[:2] == ["torch", "nn"] and len(parts) == 3 and name in _NN_FALLBACKS:
            jname, op = _NN_FALLBACKS[name]
            if not _has(k.nn, name) and _has(k.nn, jname):
                node.func = _expr(f"nn.{jname}", node.func)
                node.keywords.append(ast.keyword(arg="op", value=ast.Constant(op)))
                self.fix_keywords(node, getattr(k.nn, jname), canon)
                return node
        pick = getattr(node, "_kiln_pick", None)
        if pick == 1:
            canon = "torch.arg" + name
        src, target = self.map_path(canon, node.func, call=True)
        node.func = _expr(src, node.func)
        if pick is not None:
            self.fix_keywords(node, target, canon)
            return node
        if canon in ("torch.argmax", "torch.argmin") and _argmax_returns_pair():
            self.fix_keywords(node, target, canon)
            return ast.copy_location(
                ast.Subscript(value=node, slice=ast.Constant(0), ctx=ast.Load()), node)
        if parts[:2] == ["torch", "nn"] and name in ("ReLU", "ReLU6") and node.args:
            if _accepts(target, "inplace") is False:
                node.args = []   # nn.ReLU(True): the inplace flag
        if canon in ("torch.max", "torch.min") and (
                len(node.args) > 1 or any(kw.arg == "dim" for kw in node.keywords)):
            self.note(node, f"{canon}(x, dim/other): kiln's {src} takes a dim and returns the "
                            f"values only (PyTorch: (values, indices), or the element-wise "
                            f"{name} of two tensors); check (kept)")
        self.fix_keywords(node, target, canon)
        return node

    def _is_device_like(self, arg):
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return arg.value.split(":")[0] in ("cpu", "cuda", "mps", "meta")
        parts = _dotted(arg)
        if parts is not None:
            return any("device" in p.lower() or p in ("cpu", "cuda", "gpu") for p in parts)
        if isinstance(arg, ast.Call):
            f = _dotted(arg.func)
            return f is not None and f[-1] == "device"
        return False

    def _dtype_of(self, arg):
        """jt dtype expression node when arg (already converted) names a dtype."""
        parts = _dotted(arg)
        if parts and len(parts) == 2 and parts[0] == "jt" and parts[1] in _TORCH_DTYPE_NAMES:
            return arg
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and \
                arg.value in _TORCH_DTYPE_NAMES:
            return arg
        return None

    def method_call(self, node):
        func = node.func
        recv, attr = func.value, func.attr
        if attr == "size" and len(node.args) <= 1 and all(
                kw.arg == "dim" for kw in node.keywords) and len(node.keywords) <= 1:
            shape = ast.copy_location(ast.Attribute(value=recv, attr="shape", ctx=ast.Load()),
                                      node)
            idx = node.args[0] if node.args else (node.keywords[0].value if node.keywords
                                                  else None)
            if idx is None:
                return shape
            return ast.copy_location(ast.Subscript(value=shape, slice=idx, ctx=ast.Load()), node)
        if attr in _DROPPED_METHODS:
            return recv
        if attr in ("dim", "ndimension") and not node.args and not node.keywords:
            return ast.copy_location(ast.Attribute(value=recv, attr="ndim", ctx=ast.Load()), node)
        if attr == "nelement" and not node.args:
            func.attr = "numel"
            return node
        if attr == "forward":
            func.attr = "execute"
            return node
        if attr in ("to", "type"):
            dtype = None
            rest = []
            for a in node.args:
                d = self._dtype_of(a)
                if d is not None and dtype is None:
                    dtype = d
                elif attr == "to" and self._is_device_like(a):
                    continue
                else:
                    rest.append(a)
            kws = []
            for kw in node.keywords:
                if kw.arg == "dtype":
                    dtype = kw.value
                elif kw.arg in _DROPPABLE_KW or kw.arg == "copy":
                    continue
                else:
                    kws.append(kw)
            if attr == "type" and dtype is None:
                if node.args or node.keywords:
                    self.note(node, f".type({ast.unparse(node.args[0]) if node.args else ''})"
                                    f": not a known dtype (kept)")
                return node
            if rest or kws:
                self.note(node, f".to({', '.join(ast.unparse(a) for a in rest)}): argument "
                                f"not recognised as a device or dtype (dropped the call; "
                                f"check)")
            if dtype is None:
                return recv
            func.attr = "astype"
            node.args, node.keywords = [dtype], []
            return node
        pick = getattr(node, "_kiln_pick", None)
        if pick is not None:
            if pick == 1:
                func.attr = "arg" + attr
            return node
        if attr in ("argmax", "argmin") and _argmax_returns_pair():
            return ast.copy_location(
                ast.Subscript(value=node, slice=ast.Constant(0), ctx=ast.Load()), node)
        if attr in ("max", "min") and (node.args or any(kw.arg == "dim" for kw in node.keywords)):
            self.note(node, f".{attr}(dim): kiln returns the values only (PyTorch: (values, "
                            f"indices)); use arg{attr} for indices (kept)")
            return node
        k = self.kiln
        if (attr in _TENSOR_METHODS or (attr.endswith("_") and not attr.startswith("_"))) \
                and not hasattr(k.Var, attr):
            self.note(node, f".{attr}(): kiln's Var has no such method (kept)")
        return node


def _fill_empty_bodies(tree):
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            body = getattr(node, field, None)
            if isinstance(body, list) and field == "body" and not body and \
                    not isinstance(node, ast.Module):
                body.append(ast.Pass())
        if isinstance(node, ast.Try) and not node.body:
            node.body.append(ast.Pass())


def _insert_header(tree):
    """The kiln imports after the docstring and __future__ imports."""
    at = 0
    body = tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        at = 1
    while at < len(body) and isinstance(body[at], ast.ImportFrom) and \
            body[at].module == "__future__":
        at += 1
    header = ast.parse(_HEADER_IMPORTS).body
    # drop a duplicate of the header already present (re-converting kiln code)
    existing = {ast.dump(s) for s in body}
    header = [h for h in header if ast.dump(h) not in existing]
    tree.body[at:at] = header


def convert(source, report=None, *, header=True):
    """PyTorch model source -> kiln source (a string).

    ``report``: a list to which a message is appended for every construct that
    could not be mapped (each also listed in a comment at the top of the result
    unless ``header=False``).  Raises SyntaxError for source that does not parse."""
    tree = ast.parse(source)
    conv = _Converter()
    tree = conv.visit(tree)
    _fill_empty_bodies(tree)
    _insert_header(tree)
    ast.fix_missing_locations(tree)
    code = ast.unparse(tree) + "\n"
    if report is not None:
        report.extend(conv.messages)
    if header and conv.messages:
        lines = [f"# kiln.utils.pytorch_converter: {len(conv.messages)} construct(s) could not "
                 f"be fully mapped and were kept:"]
        lines += [f"#   {m}" for m in conv.messages]
        code = "\n".join(lines) + "\n" + code
    return code
