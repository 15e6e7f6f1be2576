/* var.c: the Var type of kiln._C: a handle on a kl_var with its shape, dtype
 * and a read-only buffer export of its data (numpy.asarray(var) is zero-copy). */
#include "kiln_py.h"

static PyTypeObject *var_class = &KlVar_Type;
static PyTypeObject *shape_class = &PyTuple_Type; /* what Var.shape is: a tuple (sub)class */

int klpy_set_shape_class(PyObject *cls)
{
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &PyTuple_Type) ||
        ((PyTypeObject *)cls)->tp_basicsize != PyTuple_Type.tp_basicsize) {
        PyErr_SetString(PyExc_TypeError, "the shape class must subclass tuple, with __slots__ = ()");
        return -1;
    }
    Py_INCREF(cls);
    if (shape_class != &PyTuple_Type) Py_DECREF((PyObject *)shape_class);
    shape_class = (PyTypeObject *)cls;
    return 0;
}

int klpy_set_var_class(PyObject *cls)
{
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &KlVar_Type)) {
        PyErr_SetString(PyExc_TypeError, "the Var class must subclass kiln._C.Var");
        return -1;
    }
    Py_INCREF(cls);
    if (var_class != &KlVar_Type) Py_DECREF((PyObject *)var_class);
    var_class = (PyTypeObject *)cls;
    return 0;
}

PyObject *klpy_wrap(kl_var *v)
{
    KlVarObject *o = (KlVarObject *)var_class->tp_alloc(var_class, 0);
    if (!o) { kl_var_release(v); return NULL; }
    o->v = v;
    return (PyObject *)o;
}

kl_var *klpy_var(PyObject *o, const char *what)
{
    if (!klpy_enter()) return NULL;
    if (!PyObject_TypeCheck(o, &KlVar_Type)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a Var, got %.100s", what, Py_TYPE(o)->tp_name);
        return NULL;
    }
    kl_var *v = ((KlVarObject *)o)->v;
    if (!v) PyErr_Format(PyExc_ValueError, "%s: the Var is uninitialised", what);
    return v;
}

static void var_dealloc(KlVarObject *self)
{
    if (self->v) klpy_release(self->v);
    self->v = NULL;
    Py_TYPE(self)->tp_free((PyObject *)self);
}

#define SELF_VAR(self, what) kl_var *v = klpy_var((PyObject *)(self), what); if (!v) return NULL

static PyObject *var_get_shape(KlVarObject *self, void *closure)
{
    (void)closure;
    SELF_VAR(self, "shape");
    int nd = kl_var_ndim(v);
    const int64_t *sh = kl_var_shape(v);
    PyObject *t = shape_class == &PyTuple_Type ? PyTuple_New(nd) : shape_class->tp_alloc(shape_class, nd);
    if (!t) return NULL;
    for (int i = 0; i < nd; i++) {
        PyObject *d = PyLong_FromLongLong(sh[i]);
        if (!d) { Py_DECREF(t); return NULL; }
        PyTuple_SET_ITEM(t, i, d);
    }
    return t;
}

static PyObject *var_get_ndim(KlVarObject *self, void *closure)
{
    (void)closure;
    SELF_VAR(self, "ndim");
    return PyLong_FromLong(kl_var_ndim(v));
}

static PyObject *var_get_dtype_code(KlVarObject *self, void *closure)
{
    (void)closure;
    SELF_VAR(self, "dtype");
    return PyLong_FromLong((long)kl_var_dtype(v));
}

static PyObject *var_get_numel(KlVarObject *self, void *closure)
{
    (void)closure;
    SELF_VAR(self, "numel");
    return PyLong_FromLongLong(kl_var_numel(v));
}

static PyObject *var_get_id(KlVarObject *self, void *closure)
{
    (void)closure;
    SELF_VAR(self, "id");
    return PyLong_FromUnsignedLongLong(kl_var_id(v));
}

static PyObject *var_get_op(KlVarObject *self, void *closure)
{
    (void)closure;
    SELF_VAR(self, "op");
    return PyUnicode_FromString(kl_var_op_name(v));
}

static PyObject *var_get_computed(KlVarObject *self, void *closure)
{
    (void)closure;
    SELF_VAR(self, "is_computed");
    return PyBool_FromLong(kl_var_is_computed(v));
}

static PyObject *var_get_scatters_planes(KlVarObject *self, void *closure)
{
    (void)closure;
    SELF_VAR(self, "_scatters_planes");
    return PyBool_FromLong(kl_var_device_scatters_planes(v));
}

static PyObject *var_get_device(KlVarObject *self, void *closure)
{
    (void)closure;
    SELF_VAR(self, "_device");
    return PyUnicode_FromString(kl_var_device(v));
}

static PyObject *var_get_keep_graph(KlVarObject *self, void *closure)
{
    (void)closure;
    SELF_VAR(self, "requires_grad");
    return PyBool_FromLong(kl_var_requires_grad(v));
}

static int var_set_keep_graph(KlVarObject *self, PyObject *value, void *closure)
{
    (void)closure;
    kl_var *v = klpy_var((PyObject *)self, "requires_grad");
    if (!v) return -1;
    int on = value ? PyObject_IsTrue(value) : 0;
    if (on < 0) return -1;
    kl_var_set_requires_grad(v, on);
    return 0;
}

static PyGetSetDef var_getset[] = {
    {"shape", (getter)var_get_shape, NULL, "the shape, a tuple", NULL},
    {"ndim", (getter)var_get_ndim, NULL, "number of dimensions", NULL},
    {"_dtype_code", (getter)var_get_dtype_code, NULL, "kl_dtype code", NULL},
    {"_numel", (getter)var_get_numel, NULL, "number of elements", NULL},
    {"_id", (getter)var_get_id, NULL, "the kl_var's id", NULL},
    {"_op", (getter)var_get_op, NULL, "name of the op producing the var", NULL},
    {"is_computed", (getter)var_get_computed, NULL, "whether the data exists", NULL},
    {"_scatters_planes", (getter)var_get_scatters_planes, NULL,
     "whether the var's device runs a scatter over disjoint planes in parallel (else gather)", NULL},
    {"_device", (getter)var_get_device, NULL, "the name of the device the var is on", NULL},
    {"_keep_graph", (getter)var_get_keep_graph, (setter)var_set_keep_graph,
     "the core's requires_grad: the var (and what is computed from it) keeps its graph", NULL},
    {NULL, NULL, NULL, NULL, NULL}
};

/* Makes self hold other's kl_var: how in-place ops update a Var. */
static PyObject *var_rebind(KlVarObject *self, PyObject *other)
{
    kl_var *nv = klpy_var(other, "rebind");
    if (!nv) return NULL;
    kl_var_retain(nv);
    kl_var *old = self->v;
    self->v = nv;
    if (old) klpy_release(old);
    Py_RETURN_NONE;
}

/* A second Var object on the same kl_var. */
static PyObject *var_alias(KlVarObject *self, PyObject *unused)
{
    (void)unused;
    SELF_VAR(self, "alias");
    kl_var_retain(v);
    return klpy_wrap(v);
}

/* A computed var forgets its producing graph (after a backward pass). */
static PyObject *var_set_name(KlVarObject *self, PyObject *name)
{
    SELF_VAR(self, "name");
    const char *s = PyUnicode_AsUTF8(name);
    if (!s) return NULL;
    if (kl_var_set_name(v, s) != KL_OK) return klpy_raise(KL_ERR_VALUE);
    Py_RETURN_NONE;
}

static PyObject *var_stop_fuse(KlVarObject *self, PyObject *unused)
{
    (void)unused;
    SELF_VAR(self, "stop_fuse");
    if (kl_var_stop_fuse(v) != KL_OK) return klpy_raise(KL_ERR_VALUE);
    Py_INCREF(self);
    return (PyObject *)self;
}

static PyObject *var_release_graph(KlVarObject *self, PyObject *unused)
{
    (void)unused;
    SELF_VAR(self, "release_graph");
    kl_var_release_graph(v);
    Py_RETURN_NONE;
}

/* Copies the var's value into a writable C-contiguous buffer of its size
 * (numpy() hands it a new array), with the GIL released. */
static PyObject *var_copy_into(KlVarObject *self, PyObject *target)
{
    SELF_VAR(self, "copy_into");
    Py_buffer b;
    if (PyObject_GetBuffer(target, &b, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) return NULL;
    size_t need = (size_t)kl_var_numel(v) * kl_dtype_size(kl_var_dtype(v));
    PyObject *res = NULL;
    if ((size_t)b.len != need) {
        PyErr_Format(PyExc_ValueError, "copy_into: the target holds %zd bytes, the var has %zu", b.len, need);
    } else {
        kl_var_retain(v); /* the Var object may be rebound meanwhile */
        kl_status s = need ? klpy_copy_to_host(v, b.buf, need) : KL_OK;
        klpy_release(v);
        if (s == KL_OK) {
            res = Py_None;
            Py_INCREF(res);
        } else if (!PyErr_Occurred()) {
            klpy_raise(s);
        }
    }
    PyBuffer_Release(&b);
    return res;
}

/* ---- buffer export ---- */

/* What a buffer view owns: the var it reads (kept alive even if the Var
 * object is rebound) and its shape and strides. */
typedef struct {
    kl_var *v;
    Py_ssize_t shape[KL_MAX_DIMS], strides[KL_MAX_DIMS];
    char format[2];
} view_info;

static const char *format_of(kl_dtype t)
{
    switch (t) {
    case KL_BOOL: return "?";
    case KL_INT8: return "b";
    case KL_UINT8: return "B";
    case KL_INT16: return "h";
    case KL_INT32: return "i";
    case KL_INT64: return "q";
    case KL_FLOAT16: return "e";
    case KL_FLOAT32: return "f";
    case KL_FLOAT64: return "d";
    default: return "B";
    }
}

/* Holds v (kept alive even if its Var object is rebound) with its shape,
 * C-contiguous strides and format for a buffer view. */
static void view_info_set(view_info *info, kl_var *v)
{
    kl_var_retain(v);
    info->v = v;
    kl_dtype t = kl_var_dtype(v);
    Py_ssize_t stride = (Py_ssize_t)kl_dtype_size(t);
    for (int i = kl_var_ndim(v) - 1; i >= 0; i--) {
        info->shape[i] = (Py_ssize_t)kl_var_shape(v)[i];
        info->strides[i] = stride;
        stride *= info->shape[i];
    }
    info->format[0] = format_of(t)[0];
    info->format[1] = 0;
}

/* Fills a buffer view of info's var over data, exported by obj. */
static void view_fill(Py_buffer *view, int flags, view_info *info, void *data, int readonly, PyObject *obj,
                      void *internal)
{
    Py_ssize_t item = (Py_ssize_t)kl_dtype_size(kl_var_dtype(info->v));
    view->buf = data;
    view->len = (Py_ssize_t)kl_var_numel(info->v) * item;
    view->itemsize = item;
    view->readonly = readonly;
    view->ndim = kl_var_ndim(info->v);
    view->format = (flags & PyBUF_FORMAT) ? info->format : NULL;
    view->shape = (flags & PyBUF_ND) ? info->shape : NULL;
    view->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? info->strides : NULL;
    view->suboffsets = NULL;
    view->internal = internal;
    Py_INCREF(obj);
    view->obj = obj;
}

/* ---- numpy(): a copy, or the memory itself when no one else can see it ---- */

/* What a NumPy array made by numpy() without a copy rests on: the only
 * handle left on the var (unreachable from Python), exported writable. */
typedef struct {
    PyObject_HEAD
    view_info info;
} OwnedObject;

static void owned_dealloc(OwnedObject *self)
{
    if (self->info.v) klpy_release(self->info.v);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int owned_getbuffer(OwnedObject *self, Py_buffer *view, int flags)
{
    const void *data = NULL;
    kl_status s = kl_var_data(self->info.v, &data);
    if (s != KL_OK) { klpy_raise(s); view->obj = NULL; return -1; }
    view_fill(view, flags, &self->info, (void *)data, 0, (PyObject *)self, NULL);
    return 0;
}

static PyBufferProcs owned_as_buffer = {(getbufferproc)owned_getbuffer, NULL};

PyTypeObject KlOwned_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kiln._C.Owned",
    .tp_basicsize = sizeof(OwnedObject),
    .tp_dealloc = (destructor)owned_dealloc,
    .tp_as_buffer = &owned_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "the memory of a var that numpy() handed to a NumPy array",
};

/* The NumPy array numpy.asarray/empty(...) makes (numpy's C API is not
 * needed). The two functions are looked up once: numpy() is on every tiny
 * op's path, and the lookup cost a tenth of it. */
static PyObject *call_numpy(const char *fn, PyObject *args)
{
    static PyObject *asarray, *empty; /* held for the interpreter's life, like the module itself */
    PyObject **slot = strcmp(fn, "asarray") == 0 ? &asarray : &empty;
    if (!*slot) {
        PyObject *np = PyImport_ImportModule("numpy");
        if (!np) return NULL;
        *slot = PyObject_GetAttrString(np, fn);
        Py_DECREF(np);
        if (!*slot) return NULL;
    }
    return PyObject_CallObject(*slot, args);
}

/* A writable NumPy array of the value. When the Var object is a temporary
 * (`f(x).numpy()`: the caller's stack holds the only reference, so it dies
 * right after) and its var is the sole owner of its buffer, the array takes
 * the buffer over instead of copying it; anything else is copied. */
static PyObject *var_numpy(KlVarObject *self, PyObject *unused)
{
    (void)unused;
    SELF_VAR(self, "numpy");
    int temporary = Py_REFCNT(self) == 1;
    kl_dtype t = kl_var_dtype(v);
    if (t == KL_BFLOAT16) {
        /* NumPy has no bfloat16: the values as float32, which holds each exactly */
        kl_var *f;
        kl_status s = kl_cast(v, KL_FLOAT32, &f);
        if (s != KL_OK) return klpy_raise(s);
        PyObject *fv = klpy_wrap(f);
        PyObject *arr = fv ? PyObject_CallMethod(fv, "numpy", NULL) : NULL;
        Py_XDECREF(fv);
        return arr;
    }
    if (temporary && kl_var_numel(v) > 0) {
        kl_status s = kl_var_is_computed(v) ? KL_OK : klpy_sync(&v, 1);
        if (s != KL_OK) return klpy_raise(s);
        if (kl_var_is_sole_owner(v)) {
            OwnedObject *o = PyObject_New(OwnedObject, &KlOwned_Type);
            if (!o) return NULL;
            view_info_set(&o->info, v);
            PyObject *args = PyTuple_Pack(1, (PyObject *)o);
            Py_DECREF(o);
            PyObject *arr = args ? call_numpy("asarray", args) : NULL;
            Py_XDECREF(args);
            return arr;
        }
    }
    PyObject *shape = var_get_shape(self, NULL); /* its items checked */
    if (!shape) return NULL;
    PyObject *args = Py_BuildValue("(Ns)", shape, format_of(t));
    PyObject *arr = args ? call_numpy("empty", args) : NULL;
    Py_XDECREF(args);
    if (!arr) return NULL;
    PyObject *done = var_copy_into(self, arr);
    if (!done) { Py_DECREF(arr); return NULL; }
    Py_DECREF(done);
    return arr;
}

static PyMethodDef var_methods[] = {
    {"numpy", (PyCFunction)var_numpy, METH_NOARGS, "a writable NumPy array of the value (a copy, or the memory of a temporary)"},
    {"_copy_into", (PyCFunction)var_copy_into, METH_O, "copy the value into a writable buffer of its size"},
    {"_release_graph", (PyCFunction)var_release_graph, METH_NOARGS, "a computed var forgets its graph"},
    {"_set_name", (PyCFunction)var_set_name, METH_O, "the name dumps show (jt.dump_all_graphs)"},
    {"stop_fuse", (PyCFunction)var_stop_fuse, METH_NOARGS,
     "stop_fuse(): stored when computed, never inlined into its consumers; returns the var"},
    {"_rebind", (PyCFunction)var_rebind, METH_O, "make this Var hold other's value"},
    {"_alias", (PyCFunction)var_alias, METH_NOARGS, "a new Var object on the same value"},
    {NULL, NULL, 0, NULL}
};

static int var_getbuffer(KlVarObject *self, Py_buffer *view, int flags)
{
    static char empty[16];
    view->obj = NULL;
    kl_var *v = klpy_var((PyObject *)self, "buffer");
    if (!v) return -1;
    if (flags & PyBUF_WRITABLE) {
        PyErr_SetString(PyExc_BufferError, "Var data is read-only (use numpy() for a writable copy)");
        return -1;
    }
    if (kl_var_dtype(v) == KL_BFLOAT16) {
        PyErr_SetString(PyExc_BufferError, "a bfloat16 Var has no buffer format (NumPy has no bfloat16); "
                                           "numpy() gives its values as float32");
        return -1;
    }
    const void *data = NULL;
    int64_t numel = kl_var_numel(v);
    if (numel > 0) {
        kl_status s = kl_var_is_computed(v) ? KL_OK : klpy_sync(&v, 1);
        if (s == KL_OK) s = kl_var_data(v, &data);
        if (s != KL_OK) { klpy_raise(s); return -1; }
    }
    view_info *info = PyMem_Calloc(1, sizeof *info);
    if (!info) { PyErr_NoMemory(); return -1; }
    view_info_set(info, v);
    view_fill(view, flags, info, data ? (void *)data : (void *)empty, 1, (PyObject *)self, info);
    return 0;
}

static void var_releasebuffer(KlVarObject *self, Py_buffer *view)
{
    (void)self;
    view_info *info = view->internal;
    if (info) {
        klpy_release(info->v);
        PyMem_Free(info);
    }
    view->internal = NULL;
}

static PyBufferProcs var_as_buffer = {
    (getbufferproc)var_getbuffer,
    (releasebufferproc)var_releasebuffer,
};

PyTypeObject KlVar_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kiln._C.Var",
    .tp_basicsize = sizeof(KlVarObject),
    .tp_dealloc = (destructor)var_dealloc,
    .tp_as_buffer = &var_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A handle on one variable of kiln's lazy graph.",
    .tp_methods = var_methods,
    .tp_getset = var_getset,
    .tp_new = PyType_GenericNew,
};
