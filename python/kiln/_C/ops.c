/* ops.c: kiln._C's bindings of the core's op constructors, sync and autograd;
 * each is one C API call with its arguments converted, nothing more. */
#include "kiln_py.h"

#define VAR_ARG(name, obj, what) kl_var *name = klpy_var((obj), (what)); if (!name) return NULL

static PyObject *result(kl_status s, kl_var *out)
{
    return s == KL_OK ? klpy_wrap(out) : klpy_raise(s);
}

/* An op given by code or by name. */
static int op_code(PyObject *o, int count, kl_status (*from_name)(const char *, int *), int *out)
{
    if (PyLong_Check(o)) {
        long c = PyLong_AsLong(o);
        if (c < 0 || c >= count) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "invalid op code %ld", c);
            return 0;
        }
        *out = (int)c;
        return 1;
    }
    const char *name = PyUnicode_AsUTF8(o);
    if (!name) return 0;
    kl_status s = from_name(name, out);
    if (s != KL_OK) { klpy_raise(s); return 0; }
    return 1;
}

/* The name lookups, with the op as an int for op_code. */
#define FROM_NAME(fn, type, lookup) \
    static kl_status fn(const char *name, int *out) \
    { \
        type op = (type)0; \
        kl_status s = lookup(name, &op); \
        *out = (int)op; \
        return s; \
    }
FROM_NAME(unary_from, kl_unary_op, kl_unary_from_name)
FROM_NAME(binary_from, kl_binary_op, kl_binary_from_name)
FROM_NAME(reduce_from, kl_reduce_op, kl_reduce_from_name)
#undef FROM_NAME

static int conv_unary(PyObject *o, void *out)
{
    return op_code(o, KL_UNARY_COUNT, unary_from, out);
}

static int conv_binary(PyObject *o, void *out)
{
    return op_code(o, KL_BINARY_COUNT, binary_from, out);
}

static int conv_reduce(PyObject *o, void *out)
{
    return op_code(o, KL_REDUCE_COUNT, reduce_from, out);
}

/* A list of Python strings as C strings, valid while the list is held. */
typedef struct { PyObject *seq; int n; const char *s[KL_MAX_DIMS]; } str_list;

static int conv_strs(PyObject *o, void *out)
{
    str_list *l = out;
    if (!o) { Py_CLEAR(l->seq); return 1; } /* cleanup call */
    l->seq = PySequence_Fast(o, "expected a list of strings");
    if (!l->seq) return 0;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(l->seq);
    if (n > KL_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "at most %d expressions are supported, got %zd", KL_MAX_DIMS, n);
        Py_CLEAR(l->seq);
        return 0;
    }
    l->n = (int)n;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(l->seq, i);
        if (!PyUnicode_Check(item)) {
            PyErr_Format(PyExc_TypeError, "expressions must be strings, got %.100s", Py_TYPE(item)->tp_name);
            Py_CLEAR(l->seq);
            return 0;
        }
        l->s[i] = PyUnicode_AsUTF8(item);
        if (!l->s[i]) { Py_CLEAR(l->seq); return 0; }
    }
    return Py_CLEANUP_SUPPORTED;
}

/* A list of Vars as kl_var pointers (borrowed while the list is held). */
typedef struct { PyObject *seq; int n; kl_var **v; } var_list;

static int conv_vars(PyObject *o, void *out)
{
    var_list *l = out;
    if (!o) { Py_CLEAR(l->seq); PyMem_Free(l->v); l->v = NULL; return 1; }
    l->seq = PySequence_Fast(o, "expected a list of Vars");
    if (!l->seq) return 0;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(l->seq);
    l->n = (int)n;
    l->v = PyMem_Calloc(n ? (size_t)n : 1, sizeof *l->v);
    if (!l->v) { Py_CLEAR(l->seq); PyErr_NoMemory(); return 0; }
    for (Py_ssize_t i = 0; i < n; i++) {
        l->v[i] = klpy_var(PySequence_Fast_GET_ITEM(l->seq, i), "var list");
        if (!l->v[i]) { Py_CLEAR(l->seq); PyMem_Free(l->v); l->v = NULL; return 0; }
    }
    return Py_CLEANUP_SUPPORTED;
}

static PyObject *o_unary(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *x; int op;
    if (!PyArg_ParseTuple(args, "OO&", &x, conv_unary, &op)) return NULL;
    VAR_ARG(xv, x, "unary");
    kl_var *out;
    kl_status st = kl_unary((kl_unary_op)op, xv, &out);
    return result(st, out);
}

static PyObject *o_cast(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *x; kl_dtype t;
    if (!PyArg_ParseTuple(args, "OO&", &x, klpy_conv_dtype, &t)) return NULL;
    VAR_ARG(xv, x, "cast");
    kl_var *out;
    kl_status st = kl_cast(xv, t, &out);
    return result(st, out);
}

static PyObject *o_binary(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *a, *b; int op;
    if (!PyArg_ParseTuple(args, "OOO&", &a, &b, conv_binary, &op)) return NULL;
    VAR_ARG(av, a, "binary");
    VAR_ARG(bv, b, "binary");
    kl_var *out;
    kl_status st = kl_binary((kl_binary_op)op, av, bv, &out);
    return result(st, out);
}

static PyObject *o_where(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *c, *a, *b;
    if (!PyArg_ParseTuple(args, "OOO", &c, &a, &b)) return NULL;
    VAR_ARG(cv, c, "where");
    VAR_ARG(av, a, "where");
    VAR_ARG(bv, b, "where");
    kl_var *out;
    kl_status st = kl_where(cv, av, bv, &out);
    return result(st, out);
}

static PyObject *o_broadcast_to(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *x; klpy_shape sh; klpy_ints dims = {0, {0}};
    if (!PyArg_ParseTuple(args, "OO&|O&", &x, klpy_conv_shape, &sh, klpy_conv_ints, &dims)) return NULL;
    VAR_ARG(xv, x, "broadcast");
    kl_var *out;
    kl_status st = kl_broadcast_to(xv, sh.ndim, sh.dims, dims.n, dims.v, &out);
    return result(st, out);
}

static PyObject *o_reindex(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *x; klpy_shape sh; str_list idx = {0}, cond = {0}; var_list ex = {0};
    double overflow = 0;
    if (!PyArg_ParseTuple(args, "OO&O&|dO&O&", &x, klpy_conv_shape, &sh, conv_strs, &idx,
                          &overflow, conv_strs, &cond, conv_vars, &ex)) return NULL;
    PyObject *res = NULL;
    kl_var *xv = klpy_var(x, "reindex");
    if (xv) {
        kl_var *out;
        kl_status st = kl_reindex(xv, sh.ndim, sh.dims, idx.s, overflow, cond.n, cond.s,
                                  ex.n, ex.v, &out);
        res = result(st, out);
    }
    conv_strs(NULL, &idx); conv_strs(NULL, &cond); conv_vars(NULL, &ex);
    return res;
}

static PyObject *o_reindex_reduce(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *y; int op; klpy_shape sh; str_list idx = {0}, cond = {0}; var_list ex = {0};
    if (!PyArg_ParseTuple(args, "OO&O&O&|O&O&", &y, conv_reduce, &op, klpy_conv_shape, &sh,
                          conv_strs, &idx, conv_strs, &cond, conv_vars, &ex)) return NULL;
    PyObject *res = NULL;
    kl_var *yv = klpy_var(y, "reindex_reduce");
    if (yv) {
        kl_var *out;
        kl_status st = kl_reindex_reduce(yv, (kl_reduce_op)op, sh.ndim, sh.dims, idx.s,
                                         cond.n, cond.s, ex.n, ex.v, &out);
        res = result(st, out);
    }
    conv_strs(NULL, &idx); conv_strs(NULL, &cond); conv_vars(NULL, &ex);
    return res;
}

static PyObject *o_reduce(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *x; int op; klpy_ints dims = {0, {0}}; int keepdims = 0;
    if (!PyArg_ParseTuple(args, "OO&|O&p", &x, conv_reduce, &op, klpy_conv_ints, &dims, &keepdims))
        return NULL;
    VAR_ARG(xv, x, "reduce");
    kl_var *out;
    kl_status st = kl_reduce(xv, (kl_reduce_op)op, dims.n, dims.v, keepdims, &out);
    return result(st, out);
}

static PyObject *o_reshape(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *x; klpy_shape sh;
    if (!PyArg_ParseTuple(args, "OO&", &x, klpy_conv_shape, &sh)) return NULL;
    VAR_ARG(xv, x, "reshape");
    kl_var *out;
    kl_status st = kl_reshape(xv, sh.ndim, sh.dims, &out);
    return result(st, out);
}

/* full(shape, value, dtype): a Python int (or anything with __index__) keeps
 * all its digits (int64, range-checked by the core); others are doubles. */
static PyObject *o_check_index(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *x; long long lo, hi; const char *what;
    if (!PyArg_ParseTuple(args, "OLLs", &x, &lo, &hi, &what)) return NULL;
    VAR_ARG(xv, x, "check_index");
    kl_var *out;
    kl_status st = kl_check_index(xv, (int64_t)lo, (int64_t)hi, what, &out);
    return result(st, out);
}

static PyObject *o_full(PyObject *mod, PyObject *args)
{
    if (!klpy_enter()) return NULL;
    (void)mod;
    klpy_shape sh; PyObject *value; kl_dtype t;
    if (!PyArg_ParseTuple(args, "O&OO&", klpy_conv_shape, &sh, &value, klpy_conv_dtype, &t)) return NULL;
    kl_var *out;
    kl_status st;
    if (PyLong_Check(value) || (!PyFloat_Check(value) && PyIndex_Check(value))) {
        PyObject *i = PyNumber_Index(value);
        if (!i) return NULL;
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(i, &overflow);
        if (overflow && kl_dtype_is_float(t)) {
            double d = PyLong_AsDouble(i); /* beyond int64: a float dtype still takes it */
            Py_DECREF(i);
            if (d == -1.0 && PyErr_Occurred()) return NULL;
            st = kl_full(klpy_ctx, t, sh.ndim, sh.dims, d, &out);
            return result(st, out);
        }
        if (overflow) {
            PyErr_Format(PyExc_OverflowError, "full: Python int %R is out of range for %s", i, kl_dtype_name(t));
            Py_DECREF(i);
            return NULL;
        }
        Py_DECREF(i);
        if (v == -1 && PyErr_Occurred()) return NULL;
        st = kl_full_int(klpy_ctx, t, sh.ndim, sh.dims, (int64_t)v, &out);
    } else {
        double d = PyFloat_AsDouble(value);
        if (d == -1.0 && PyErr_Occurred()) return NULL;
        st = kl_full(klpy_ctx, t, sh.ndim, sh.dims, d, &out);
    }
    return result(st, out);
}

static PyObject *o_random(PyObject *mod, PyObject *args)
{
    if (!klpy_enter()) return NULL;
    (void)mod;
    klpy_shape sh; kl_dtype t; const char *kind; double a, b;
    if (!PyArg_ParseTuple(args, "O&O&sdd", klpy_conv_shape, &sh, klpy_conv_dtype, &t, &kind, &a, &b))
        return NULL;
    kl_random_kind k;
    if (!strcmp(kind, "uniform")) k = KL_RANDOM_UNIFORM;
    else if (!strcmp(kind, "normal")) k = KL_RANDOM_NORMAL;
    else {
        PyErr_Format(PyExc_ValueError, "random: unknown distribution '%s' (uniform or normal)", kind);
        return NULL;
    }
    kl_var *out;
    kl_status st = kl_random(klpy_ctx, t, sh.ndim, sh.dims, k, a, b, &out);
    return result(st, out);
}

static PyObject *o_index(PyObject *mod, PyObject *args)
{
    if (!klpy_enter()) return NULL;
    (void)mod;
    klpy_shape sh; int dim; kl_dtype t;
    if (!PyArg_ParseTuple(args, "O&iO&", klpy_conv_shape, &sh, &dim, klpy_conv_dtype, &t)) return NULL;
    kl_var *out;
    kl_status st = kl_index(klpy_ctx, t, sh.ndim, sh.dims, dim, &out);
    return result(st, out);
}

static PyObject *o_stop_grad(PyObject *mod, PyObject *x)
{
    (void)mod;
    VAR_ARG(xv, x, "stop_grad");
    kl_var *out;
    kl_status st = kl_stop_grad(xv, &out);
    return result(st, out);
}

static PyObject *o_sync(PyObject *mod, PyObject *arg)
{
    (void)mod;
    var_list l = {0};
    if (!conv_vars(arg, &l)) return NULL;
    kl_status s = l.n ? klpy_sync(l.v, l.n) : KL_OK;
    conv_vars(NULL, &l);
    if (s != KL_OK) return klpy_raise(s);
    Py_RETURN_NONE;
}

static PyObject *o_sync_all(PyObject *mod, PyObject *unused)
{
    if (!klpy_enter()) return NULL;
    (void)mod; (void)unused;
    kl_status s = klpy_sync(NULL, -1);
    if (s != KL_OK) return klpy_raise(s);
    Py_RETURN_NONE;
}

/* custom_grad(value, [inputs], fn): fn(dout, i) -> the gradient of input i
 * (a Var, or None). Runs inside kl_grad with the GIL held; an exception it
 * raises stays set and ends the grad call with it. */
static kl_status call_grad_fn(void *user, kl_var *dout, int input, kl_var **grad)
{
    *grad = NULL;
    if (kl_var_retain(dout) != KL_OK) return KL_ERR_VALUE;
    PyObject *d = klpy_wrap(dout);
    PyObject *r = d ? PyObject_CallFunction((PyObject *)user, "Oi", d, input) : NULL;
    Py_XDECREF(d);
    if (!r) return KL_ERR_VALUE; /* its exception stays set: o_grad raises it */
    if (r != Py_None) {
        kl_var *g = klpy_var(r, "custom_grad: the gradient function's result");
        if (!g || kl_var_retain(g) != KL_OK) {
            Py_DECREF(r);
            return KL_ERR_TYPE; /* klpy_var set the exception */
        }
        *grad = g;
    }
    Py_DECREF(r);
    return KL_OK;
}

/* The op may be freed inside a sync (GIL released) or during another
 * exception: take the GIL and keep any pending exception as it is. */
static void release_grad_fn(void *user)
{
    PyGILState_STATE st = PyGILState_Ensure();
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    Py_DECREF((PyObject *)user);
    PyErr_Restore(t, v, tb);
    PyGILState_Release(st);
}

static PyObject *o_custom_grad(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *value, *fn; var_list xs = {0};
    if (!PyArg_ParseTuple(args, "OO&O", &value, conv_vars, &xs, &fn)) return NULL;
    PyObject *res = NULL;
    kl_var *vv = klpy_var(value, "custom_grad");
    if (vv && !PyCallable_Check(fn)) PyErr_SetString(PyExc_TypeError, "custom_grad: fn must be callable");
    else if (vv) {
        kl_var *out;
        Py_INCREF(fn); /* the op's reference, dropped by release_grad_fn */
        kl_status st = kl_custom_grad(vv, xs.n, xs.v, call_grad_fn, fn, release_grad_fn, &out);
        res = result(st, out);
    }
    conv_vars(NULL, &xs);
    return res;
}

/* grad(y, dy or None, [xs]) -> [grads] */
static PyObject *o_grad(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *y, *dy; var_list xs = {0};
    if (!PyArg_ParseTuple(args, "OOO&", &y, &dy, conv_vars, &xs)) return NULL;
    PyObject *res = NULL;
    kl_var **grads = NULL;
    kl_var *yv = klpy_var(y, "grad");
    kl_var *dyv = NULL;
    if (!yv) goto done;
    if (dy != Py_None && !(dyv = klpy_var(dy, "grad"))) goto done;
    grads = PyMem_Calloc(xs.n ? (size_t)xs.n : 1, sizeof *grads);
    if (!grads) { PyErr_NoMemory(); goto done; }
    kl_status s = kl_grad(yv, dyv, xs.n, xs.v, grads);
    if (s != KL_OK) {
        if (!PyErr_Occurred()) klpy_raise(s); /* else a custom gradient's own exception */
        goto done;
    }
    res = PyList_New(xs.n);
    for (int i = 0; i < xs.n; i++) {
        PyObject *g = res ? klpy_wrap(grads[i]) : (kl_var_release(grads[i]), NULL);
        if (g) PyList_SET_ITEM(res, i, g);
        else Py_CLEAR(res);
    }
done:
    PyMem_Free(grads);
    conv_vars(NULL, &xs);
    return res;
}

static PyObject *o_conv_choose(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *x; kl_dtype dtype; int transposed; kl_conv_geometry g; klpy_shape t[6];
    long long n, ic, oc;
    if (!PyArg_ParseTuple(args, "OO&iipLLLO&O&O&O&O&O&", &x, klpy_conv_dtype, &dtype, &g.nd, &g.groups, &transposed,
                          &n, &ic, &oc, klpy_conv_shape, &t[0], klpy_conv_shape, &t[1], klpy_conv_shape, &t[2],
                          klpy_conv_shape, &t[3], klpy_conv_shape, &t[4], klpy_conv_shape, &t[5]))
        return NULL;
    kl_var *xv = klpy_var(x, "conv_choose");
    if (!xv) return NULL;
    g.transposed = transposed;
    g.n = n; g.ic = ic; g.oc = oc;
    int64_t *fields[6] = {g.in, g.out, g.kernel, g.stride, g.dilation, g.pad_lo};
    for (int f = 0; f < 6; f++) {
        if (t[f].ndim != g.nd || g.nd > 3) return PyErr_Format(PyExc_ValueError, "conv_choose: %d-d geometry", g.nd);
        memcpy(fields[f], t[f].dims, (size_t)g.nd * sizeof *fields[f]);
    }
    kl_conv_form form;
    kl_status st = kl_conv_choose(xv, dtype, &g, &form);
    if (st != KL_OK) return klpy_raise(st);
    return PyUnicode_FromString(form == KL_CONV_IM2COL ? "im2col" : "direct");
}

PyMethodDef klpy_op_methods[] = {
    {"conv_choose", o_conv_choose, METH_VARARGS,
     "conv_choose(x, dtype, nd, groups, transposed, n, ic, oc, in, out, kernel, stride, dilation, pad_lo): "
     "'direct' or 'im2col', the form that runs best on x's device"},
    {"unary", o_unary, METH_VARARGS, "unary(x, op)"},
    {"cast", o_cast, METH_VARARGS, "cast(x, dtype)"},
    {"binary", o_binary, METH_VARARGS, "binary(a, b, op)"},
    {"where", o_where, METH_VARARGS, "where(cond, a, b)"},
    {"broadcast_to", o_broadcast_to, METH_VARARGS, "broadcast_to(x, shape, dims=())"},
    {"reindex", o_reindex, METH_VARARGS,
     "reindex(x, shape, indexes, overflow_value=0, overflow_conditions=(), extras=())"},
    {"reindex_reduce", o_reindex_reduce, METH_VARARGS,
     "reindex_reduce(y, op, shape, indexes, overflow_conditions=(), extras=())"},
    {"reduce", o_reduce, METH_VARARGS, "reduce(x, op, dims=(), keepdims=False)"},
    {"reshape", o_reshape, METH_VARARGS, "reshape(x, shape)"},
    {"check_index", o_check_index, METH_VARARGS, "check_index(x, lo, hi, what): x, failing at sync outside [lo, hi)"},
    {"full", o_full, METH_VARARGS, "full(shape, value, dtype)"},
    {"random", o_random, METH_VARARGS, "random(shape, dtype, 'uniform'|'normal', a, b)"},
    {"index", o_index, METH_VARARGS, "index(shape, dim, dtype)"},
    {"stop_grad", o_stop_grad, METH_O, "stop_grad(x)"},
    {"custom_grad", o_custom_grad, METH_VARARGS, "custom_grad(value, inputs, fn): value with gradients fn(dout, i)"},
    {"sync", o_sync, METH_O, "sync([vars])"},
    {"sync_all", o_sync_all, METH_NOARGS, "computes every pending var a Var holds"},
    {"grad", o_grad, METH_VARARGS, "grad(y, dy or None, [xs]) -> [grads]"},
    {NULL, NULL, 0, NULL}
};
