/* module.c: kiln._C's module: the process-wide context, status-to-exception
 * mapping, argument converters, and the context-level functions (flags, counters, names). */
#include "kiln_py.h"

kl_context *klpy_ctx = NULL;

PyObject *klpy_raise(kl_status s)
{
    if (s == KL_ERR_INTERRUPTED && PyErr_Occurred()) return NULL; /* a signal handler's exception */
    PyObject *exc;
    switch (s) {
    case KL_ERR_VALUE: exc = PyExc_ValueError; break;
    case KL_ERR_TYPE: exc = PyExc_TypeError; break;
    case KL_ERR_INDEX: exc = PyExc_IndexError; break;
    case KL_ERR_MEMORY: exc = PyExc_MemoryError; break;
    case KL_ERR_OVERFLOW: exc = PyExc_OverflowError; break;
    case KL_ERR_INTERRUPTED: exc = PyExc_KeyboardInterrupt; break;
    default: exc = PyExc_RuntimeError; break;
    }
    const char *msg = kl_last_error();
    PyErr_SetString(exc, msg && *msg ? msg : kl_status_name(s));
    return NULL;
}

int klpy_conv_shape(PyObject *o, void *out)
{
    klpy_shape *sh = out;
    if (PyLong_Check(o)) {   /* a single int is a 1-d shape */
        sh->ndim = 1;
        sh->dims[0] = PyLong_AsLongLong(o);
        return PyErr_Occurred() ? 0 : 1;
    }
    PyObject *seq = PySequence_Fast(o, "shape must be a sequence of ints");
    if (!seq) return 0;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > KL_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "shape has %zd dims, at most %d are supported", n, KL_MAX_DIMS);
        Py_DECREF(seq);
        return 0;
    }
    sh->ndim = (int)n;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *d = PyNumber_Index(PySequence_Fast_GET_ITEM(seq, i));
        if (!d) { Py_DECREF(seq); return 0; }
        sh->dims[i] = PyLong_AsLongLong(d);
        Py_DECREF(d);
        if (PyErr_Occurred()) { Py_DECREF(seq); return 0; }
    }
    Py_DECREF(seq);
    return 1;
}

int klpy_conv_ints(PyObject *o, void *out)
{
    klpy_ints *r = out;
    klpy_shape sh;
    if (!klpy_conv_shape(o, &sh)) return 0;
    r->n = sh.ndim;
    for (int i = 0; i < sh.ndim; i++) r->v[i] = (int)sh.dims[i];
    return 1;
}

int klpy_conv_dtype(PyObject *o, void *out)
{
    kl_dtype *t = out;
    if (PyLong_Check(o)) {
        long c = PyLong_AsLong(o);
        if (c < 0 || c >= KL_DTYPE_COUNT) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "invalid dtype code %ld", c);
            return 0;
        }
        *t = (kl_dtype)c;
        return 1;
    }
    if (PyUnicode_Check(o)) {
        kl_status s = kl_dtype_from_name(PyUnicode_AsUTF8(o), t);
        if (s != KL_OK) { klpy_raise(s); return 0; }
        return 1;
    }
    PyErr_Format(PyExc_TypeError, "dtype must be a name or code, got %.100s", Py_TYPE(o)->tp_name);
    return 0;
}

/* ---- buffers in ---- */

/* The kl_dtype of a struct-module format of one item, or -1. */
static int dtype_of_format(const char *fmt, Py_ssize_t itemsize)
{
    if (!fmt) return KL_UINT8;
    if (*fmt == '@' || *fmt == '=' || *fmt == '<') fmt++;
    else if ((*fmt == '>' || *fmt == '!') && itemsize == 1) fmt++;
    if (!fmt[0] || fmt[1]) return -1;
    switch (fmt[0]) {
    case '?': return KL_BOOL;
    case 'b': return KL_INT8;
    case 'B': case 'c': return KL_UINT8;
    case 'h': case 'i': case 'l': case 'q': case 'n':
        return itemsize == 1 ? KL_INT8 : itemsize == 2 ? KL_INT16 : itemsize == 4 ? KL_INT32
             : itemsize == 8 ? KL_INT64 : -1;
    case 'e': return KL_FLOAT16;
    case 'f': return KL_FLOAT32;
    case 'd': return KL_FLOAT64;
    default: return -1;
    }
}

/* from_buffer(obj): a new array Var holding a copy of a C-contiguous buffer. */
static PyObject *m_from_buffer(PyObject *mod, PyObject *obj)
{
    if (!klpy_enter()) return NULL;
    (void)mod;
    Py_buffer b;
    if (PyObject_GetBuffer(obj, &b, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    PyObject *res = NULL;
    int t = dtype_of_format(b.format, b.itemsize);
    if (t < 0) {
        PyErr_Format(PyExc_TypeError, "unsupported buffer element format '%s' (itemsize %zd)",
                     b.format ? b.format : "B", b.itemsize);
    } else if (b.ndim > KL_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "buffer has %d dims, at most %d are supported", b.ndim, KL_MAX_DIMS);
    } else {
        int64_t shape[KL_MAX_DIMS];
        for (int i = 0; i < b.ndim; i++) shape[i] = b.shape ? (int64_t)b.shape[i] : (int64_t)(b.len / b.itemsize);
        kl_var *v;
        kl_status s = kl_var_from_host(klpy_ctx, (kl_dtype)t, b.ndim, shape, b.buf, &v);
        res = s == KL_OK ? klpy_wrap(v) : klpy_raise(s);
    }
    PyBuffer_Release(&b);
    return res;
}

/* ---- context ---- */

/* Before os.fork: waits out another thread's sync, so that the child never
 * inherits a context in the middle of one (registered by kiln/_core.py). */
static PyObject *m_wait_idle(PyObject *mod, PyObject *unused)
{
    (void)mod; (void)unused;
    if (!klpy_enter()) return NULL;
    Py_RETURN_NONE;
}

static PyObject *m_set_var_class(PyObject *mod, PyObject *cls)
{
    (void)mod;
    if (klpy_set_var_class(cls) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *m_set_shape_class(PyObject *mod, PyObject *cls)
{
    (void)mod;
    if (klpy_set_shape_class(cls) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *m_seed(PyObject *mod, PyObject *arg)
{
    if (!klpy_enter()) return NULL;
    (void)mod;
    unsigned long long s = PyLong_AsUnsignedLongLongMask(arg);
    if (PyErr_Occurred()) return NULL;
    kl_context_seed(klpy_ctx, (uint64_t)s);
    Py_RETURN_NONE;
}

static PyObject *m_gc(PyObject *mod, PyObject *unused)
{
    if (!klpy_enter()) return NULL;
    (void)mod; (void)unused;
    kl_context_gc(klpy_ctx);
    Py_RETURN_NONE;
}

static PyObject *m_has_library(PyObject *mod, PyObject *arg)
{
    if (!klpy_enter()) return NULL;
    (void)mod;
    const char *name = PyUnicode_AsUTF8(arg);
    if (!name) return NULL;
    return PyBool_FromLong(kl_context_has_library(klpy_ctx, name));
}

static PyObject *m_set_debug(PyObject *mod, PyObject *arg)
{
    if (!klpy_enter()) return NULL;
    (void)mod;
    long level = PyLong_AsLong(arg);
    if (level == -1 && PyErr_Occurred()) return NULL;
    kl_context_set_debug(klpy_ctx, (int)level);
    Py_RETURN_NONE;
}

static PyObject *m_get_debug(PyObject *mod, PyObject *unused)
{
    if (!klpy_enter()) return NULL;
    (void)mod; (void)unused;
    return PyLong_FromLong(kl_context_debug(klpy_ctx));
}

static PyObject *m_cache_dir(PyObject *mod, PyObject *args)
{
    if (!klpy_enter()) return NULL;
    (void)mod;
    const char *dir = NULL;
    if (!PyArg_ParseTuple(args, "|z", &dir)) return NULL;
    if (dir) {
        kl_status s = kl_context_set_cache_dir(klpy_ctx, dir);
        if (s != KL_OK) return klpy_raise(s);
    }
    const char *cur = kl_context_cache_dir(klpy_ctx);
    return PyUnicode_FromString(cur ? cur : "");
}

static PyObject *m_synchronize(PyObject *mod, PyObject *unused)
{
    if (!klpy_enter()) return NULL;
    (void)mod; (void)unused;
    kl_status s;
    Py_BEGIN_ALLOW_THREADS
    s = kl_context_synchronize(klpy_ctx);
    Py_END_ALLOW_THREADS
    if (s != KL_OK) return klpy_raise(s);
    Py_RETURN_NONE;
}

static PyObject *m_cuda_device_count(PyObject *mod, PyObject *unused)
{
    (void)mod; (void)unused;
    return PyLong_FromLong(kl_cuda_device_count());
}

static PyObject *m_device(PyObject *mod, PyObject *unused)
{
    if (!klpy_enter()) return NULL;
    (void)mod; (void)unused;
    const char *name = kl_context_device(klpy_ctx);
    return PyUnicode_FromString(name ? name : "");
}

static PyObject *m_set_compile_check(PyObject *mod, PyObject *args)
{
    if (!klpy_enter()) return NULL;
    (void)mod;
    const char *backend = NULL;
    if (!PyArg_ParseTuple(args, "z", &backend)) return NULL;
    kl_status s = kl_context_set_compile_check(klpy_ctx, backend);
    if (s != KL_OK) return klpy_raise(s);
    Py_RETURN_NONE;
}

static PyObject *m_set_device(PyObject *mod, PyObject *args)
{
    if (!klpy_enter()) return NULL;
    (void)mod;
    const char *name = NULL;
    if (!PyArg_ParseTuple(args, "s", &name)) return NULL;
    kl_status s = kl_context_set_device(klpy_ctx, name);
    if (s != KL_OK) return klpy_raise(s);
    Py_RETURN_NONE;
}

static PyObject *m_counters(PyObject *mod, PyObject *unused)
{
    if (!klpy_enter()) return NULL;
    (void)mod; (void)unused;
    kl_counters c;
    kl_context_counters(klpy_ctx, &c);
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K}",
        "kernels_compiled", (unsigned long long)c.kernels_compiled,
        "cache_hits_memory", (unsigned long long)c.cache_hits_memory,
        "cache_hits_disk", (unsigned long long)c.cache_hits_disk,
        "kernels_launched", (unsigned long long)c.kernels_launched,
        "library_calls", (unsigned long long)c.library_calls,
        "bytes_allocated", (unsigned long long)c.bytes_allocated,
        "bytes_in_use", (unsigned long long)c.bytes_in_use,
        "bytes_cached", (unsigned long long)c.bytes_cached,
        "peak_bytes_in_use", (unsigned long long)c.peak_bytes_in_use,
        "vars_alive", (unsigned long long)c.vars_alive,
        "vars_held", (unsigned long long)c.vars_held,
        "ops_alive", (unsigned long long)c.ops_alive,
        "kernels_checked", (unsigned long long)c.kernels_checked,
        "bytes_moved_to_host", (unsigned long long)c.bytes_moved_to_host,
        "launches_grouped", (unsigned long long)c.launches_grouped,
        "group_forms", (unsigned long long)c.group_forms,
        "syncs_replayed", (unsigned long long)c.syncs_replayed);
}

/* ---- names ---- */

static PyObject *name_list(int n, const char *(*name)(int))
{
    PyObject *l = PyList_New(n);
    if (!l) return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *s = PyUnicode_FromString(name(i));
        if (!s) { Py_DECREF(l); return NULL; }
        PyList_SET_ITEM(l, i, s);
    }
    return l;
}

static const char *dtype_name_i(int i) { return kl_dtype_name((kl_dtype)i); }
static const char *unary_name_i(int i) { return kl_unary_name((kl_unary_op)i); }
static const char *binary_name_i(int i) { return kl_binary_name((kl_binary_op)i); }
static const char *reduce_name_i(int i) { return kl_reduce_name((kl_reduce_op)i); }

static PyObject *m_names(PyObject *mod, PyObject *arg)
{
    (void)mod;
    const char *kind = PyUnicode_AsUTF8(arg);
    if (!kind) return NULL;
    if (!strcmp(kind, "dtype")) return name_list(KL_DTYPE_COUNT, dtype_name_i);
    if (!strcmp(kind, "unary")) return name_list(KL_UNARY_COUNT, unary_name_i);
    if (!strcmp(kind, "binary")) return name_list(KL_BINARY_COUNT, binary_name_i);
    if (!strcmp(kind, "reduce")) return name_list(KL_REDUCE_COUNT, reduce_name_i);
    PyErr_Format(PyExc_ValueError, "names: unknown kind '%s'", kind);
    return NULL;
}

/* op_traits(kind): {name: set of trait names} for 'unary' or 'binary'
 * (include/kiln_ops.def), so Python asks the one table the core uses. */
static PyObject *m_op_traits(PyObject *mod, PyObject *arg)
{
    (void)mod;
    const char *kind = PyUnicode_AsUTF8(arg);
    if (!kind) return NULL;
    int unary = !strcmp(kind, "unary");
    if (!unary && strcmp(kind, "binary")) {
        PyErr_Format(PyExc_ValueError, "op_traits: unknown kind '%s' (unary or binary)", kind);
        return NULL;
    }
    static const struct { int bit; const char *name; } bits[] = {
        {KL_FLOAT_MATH, "float_math"}, {KL_LIBM, "libm"}, {KL_INT_IDENTITY, "int_identity"},
    };
    PyObject *d = PyDict_New();
    int n = unary ? KL_UNARY_COUNT : KL_BINARY_COUNT;
    for (int i = 0; d && i < n; i++) {
        int t = unary ? kl_unary_traits((kl_unary_op)i) : kl_binary_traits((kl_binary_op)i);
        PyObject *set = PySet_New(NULL);
        for (size_t b = 0; set && b < sizeof bits / sizeof bits[0]; b++) {
            if (!(t & bits[b].bit)) continue;
            PyObject *s = PyUnicode_FromString(bits[b].name);
            if (!s || PySet_Add(set, s) < 0) Py_CLEAR(set);
            Py_XDECREF(s);
        }
        const char *name = unary ? kl_unary_name((kl_unary_op)i) : kl_binary_name((kl_binary_op)i);
        if (!set || PyDict_SetItemString(d, name, set) < 0) Py_CLEAR(d);
        Py_XDECREF(set);
    }
    return d;
}

static PyObject *m_promote(PyObject *mod, PyObject *args)
{
    (void)mod;
    kl_dtype a, b, r;
    if (!PyArg_ParseTuple(args, "O&O&", klpy_conv_dtype, &a, klpy_conv_dtype, &b)) return NULL;
    kl_status s = kl_dtype_promote(a, b, &r);
    if (s != KL_OK) return klpy_raise(s);
    return PyLong_FromLong((long)r);
}

static PyObject *m_profile_enable(PyObject *mod, PyObject *arg)
{
    if (!klpy_enter()) return NULL;
    (void)mod;
    int on = PyObject_IsTrue(arg);
    if (on < 0) return NULL;
    kl_context_set_profile(klpy_ctx, on);
    Py_RETURN_NONE;
}

static PyObject *m_profile_enabled(PyObject *mod, PyObject *unused)
{
    (void)mod; (void)unused;
    return PyBool_FromLong(kl_context_profile_enabled(klpy_ctx));
}

/* The profiler's records so far, taken: [(name, ops, ms, input bytes, output bytes)]. */
static PyObject *m_profile_take(PyObject *mod, PyObject *unused)
{
    if (!klpy_enter()) return NULL;
    (void)mod; (void)unused;
    PyObject *list = PyList_New(0);
    kl_profile_record r[64];
    int n;
    while (list && (n = kl_context_profile_take(klpy_ctx, r, 64)) > 0)
        for (int i = 0; i < n && list; i++) {
            PyObject *t = Py_BuildValue("(ssdKK)", r[i].name, r[i].ops, r[i].ms,
                                        (unsigned long long)r[i].input_bytes, (unsigned long long)r[i].output_bytes);
            if (!t || PyList_Append(list, t) < 0) Py_CLEAR(list);
            Py_XDECREF(t);
        }
    return list;
}

/* One tuple per var that exists, oldest first: (id, user_refs, graph_refs,
 * (input ids), computed, nbytes, buffer id, op, dtype, shape, name or None). */
static PyObject *var_info_tuple(kl_var *v, int held_here)
{
    kl_var_info info;
    if (kl_var_get_info(v, &info) != KL_OK) return klpy_raise(KL_ERR_VALUE);
    info.user_refs -= held_here;
    int nd = kl_var_ndim(v);
    const int64_t *sh = kl_var_shape(v);
    PyObject *inputs = PyTuple_New(info.n_inputs), *shape = PyTuple_New(nd);
    if (!inputs || !shape) goto fail;
    for (int i = 0; i < info.n_inputs; i++) {
        PyObject *id = PyLong_FromUnsignedLongLong(info.inputs[i]);
        if (!id) goto fail;
        PyTuple_SET_ITEM(inputs, i, id);
    }
    for (int i = 0; i < nd; i++) {
        PyObject *d = PyLong_FromLongLong(sh[i]);
        if (!d) goto fail;
        PyTuple_SET_ITEM(shape, i, d);
    }
    return Py_BuildValue("(KiiNiKKssNz)", (unsigned long long)info.id, info.user_refs, info.graph_refs,
                         inputs, info.computed, (unsigned long long)info.nbytes,
                         (unsigned long long)info.buffer, info.op, kl_dtype_name(kl_var_dtype(v)), shape,
                         info.name);
fail:
    Py_XDECREF(inputs);
    Py_XDECREF(shape);
    return NULL;
}

static PyObject *m_live_vars(PyObject *mod, PyObject *unused)
{
    if (!klpy_enter()) return NULL;
    (void)mod; (void)unused;
    int64_t n = kl_context_vars(klpy_ctx, NULL, 0);
    kl_var **all = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *all);
    if (!all) return PyErr_NoMemory();
    n = kl_context_vars(klpy_ctx, all, n);
    /* held while the tuples are built: Python's collector may free Vars
     * (and so kiln's vars) at any allocation */
    for (int64_t i = 0; i < n; i++) kl_var_retain(all[i]);
    PyObject *list = PyList_New(0);
    for (int64_t i = 0; i < n && list; i++) {
        PyObject *t = var_info_tuple(all[i], 1);
        if (!t || PyList_Append(list, t) < 0) Py_CLEAR(list);
        Py_XDECREF(t);
    }
    for (int64_t i = 0; i < n; i++) kl_var_release(all[i]);
    PyMem_Free(all);
    return list;
}

static PyMethodDef module_methods[] = {
    {"live_vars", m_live_vars, METH_NOARGS,
     "every var that exists: (id, user_refs, graph_refs, inputs, computed, nbytes, buffer, op, dtype, "
     "shape, name)"},
    {"profile_enable", m_profile_enable, METH_O, "profile_enable(on): time and record every launch"},
    {"profile_enabled", m_profile_enabled, METH_NOARGS, "whether the profiler records"},
    {"profile_take", m_profile_take, METH_NOARGS, "the profiler's records so far, taken"},
    {"from_buffer", m_from_buffer, METH_O, "from_buffer(obj): a Var copying a C-contiguous buffer"},
    {"set_var_class", m_set_var_class, METH_O, "set the class new Vars are made of"},
    {"set_shape_class", m_set_shape_class, METH_O, "set the tuple subclass Var.shape returns"},
    {"wait_idle", m_wait_idle, METH_NOARGS, "wait until no thread is running a sync"},
    {"seed", m_seed, METH_O, "seed(n): reseed the random generator"},
    {"gc", m_gc, METH_NOARGS, "return cached memory to the system"},
    {"has_library", m_has_library, METH_O, "whether 'blas' or 'dnnl' is found and enabled"},
    {"set_debug", m_set_debug, METH_O, "set the debug print level"},
    {"get_debug", m_get_debug, METH_NOARGS, "the debug print level"},
    {"cache_dir", m_cache_dir, METH_VARARGS, "cache_dir([dir]): get or set the kernel cache folder"},
    {"counters", m_counters, METH_NOARGS, "the context's counters as a dict"},
    {"device", m_device, METH_NOARGS, "device(): where new vars go"},
    {"cuda_device_count", m_cuda_device_count, METH_NOARGS, "cuda_device_count(): GPUs the driver reports"},
    {"synchronize", m_synchronize, METH_NOARGS, "synchronize(): waits for every device's queued work"},
    {"set_device", m_set_device, METH_VARARGS, "set_device(name): where new vars go ('cpu', 'cuda')"},
    {"set_compile_check", m_set_compile_check, METH_VARARGS,
     "set_compile_check(backend): also compile every new kernel for backend ('cuda'; None: off)"},
    {"names", m_names, METH_O, "names(kind): names of 'dtype', 'unary', 'binary', 'reduce' by code"},
    {"promote", m_promote, METH_VARARGS, "promote(a, b): NumPy's promote_types on dtype codes"},
    {"op_traits", m_op_traits, METH_O, "op_traits(kind): {name: {'float_math', 'libm', 'int_identity'}}"},
    {NULL, NULL, 0, NULL}
};

static void module_free(void *mod)
{
    (void)mod;
    /* Vars may outlive the module during interpreter shutdown; the context
     * is left to the process exit rather than freed under them. */
}

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "kiln._C", "kiln's C core, bound to Python.", -1,
    module_methods, NULL, NULL, NULL, module_free
};

PyMODINIT_FUNC PyInit__C(void)
{
    if (PyType_Ready(&KlVar_Type) < 0 || PyType_Ready(&KlOwned_Type) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    if (PyModule_AddFunctions(m, klpy_op_methods) < 0) goto fail;
    if (PyModule_AddFunctions(m, klpy_code_methods) < 0) goto fail;
    if (PyModule_AddFunctions(m, klpy_mpi_methods) < 0) goto fail;
    Py_INCREF(&KlVar_Type);
    if (PyModule_AddObject(m, "Var", (PyObject *)&KlVar_Type) < 0) { Py_DECREF(&KlVar_Type); goto fail; }
    if (PyModule_AddIntConstant(m, "MAX_DIMS", KL_MAX_DIMS) < 0) goto fail;
    if (PyModule_AddIntConstant(m, "MAX_OP_INPUTS", KL_MAX_OP_INPUTS) < 0) goto fail;
    if (PyModule_AddStringConstant(m, "CODE_CUDA_RUNTIME", kl_code_cuda_runtime_decl()) < 0) goto fail;
    if (!klpy_ctx) {
        kl_status s = kl_context_new(&klpy_ctx);
        if (s != KL_OK) { klpy_raise(s); goto fail; }
        kl_context_set_keep_graphs(klpy_ctx, 1); /* Jittor's rule: jt.grad through computed values */
    }
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
