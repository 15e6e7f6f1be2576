/* mpi.c: kiln._C's bindings of the MPI functions (src/dist, src/ops/collective.c). */
#include "kiln_py.h"

static PyObject *result(kl_status s, kl_var *out)
{
    return s == KL_OK ? klpy_wrap(out) : klpy_raise(s);
}

/* "add"/"sum", "mean", "max"/"maximum", "min"/"minimum" as the core's reduce op. */
static int conv_op(PyObject *o, void *out)
{
    const char *name = PyUnicode_AsUTF8(o);
    if (!name) return 0;
    kl_status s = kl_reduce_from_name(name, out);
    if (s != KL_OK) {
        klpy_raise(s);
        return 0;
    }
    return 1;
}

static PyObject *p_start(PyObject *mod, PyObject *unused)
{
    (void)mod; (void)unused;
    if (!klpy_enter()) return NULL;
    kl_status s = kl_mpi_start(klpy_ctx);
    if (s != KL_OK) return klpy_raise(s);
    return Py_BuildValue("iiii", kl_mpi_rank(klpy_ctx), kl_mpi_world_size(klpy_ctx), kl_mpi_local_rank(klpy_ctx),
                         kl_mpi_local_size(klpy_ctx));
}

static PyObject *p_all_reduce(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *x; int op;
    if (!PyArg_ParseTuple(args, "OO&", &x, conv_op, &op)) return NULL;
    kl_var *xv = klpy_var(x, "mpi_all_reduce");
    if (!xv) return NULL;
    kl_var *out;
    kl_status s = kl_mpi_all_reduce(xv, (kl_reduce_op)op, &out);
    return result(s, out);
}

static PyObject *p_reduce(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *x; int op, root;
    if (!PyArg_ParseTuple(args, "OO&i", &x, conv_op, &op, &root)) return NULL;
    kl_var *xv = klpy_var(x, "mpi_reduce");
    if (!xv) return NULL;
    kl_var *out;
    kl_status s = kl_mpi_reduce(xv, (kl_reduce_op)op, root, &out);
    return result(s, out);
}

static PyObject *p_broadcast(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *x; int root;
    if (!PyArg_ParseTuple(args, "Oi", &x, &root)) return NULL;
    kl_var *xv = klpy_var(x, "mpi_broadcast");
    if (!xv) return NULL;
    kl_var *out;
    kl_status s = kl_mpi_broadcast(xv, root, &out);
    return result(s, out);
}

static PyObject *p_all_reduce_many(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *seq_in; int op;
    if (!PyArg_ParseTuple(args, "OO&", &seq_in, conv_op, &op)) return NULL;
    PyObject *seq = PySequence_Fast(seq_in, "mpi_all_reduce_many: expected a list of Vars");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    kl_var *xs[KL_MPI_MAX_BUCKET];
    if (n < 1 || n > KL_MPI_MAX_BUCKET) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "mpi_all_reduce_many: %zd vars given (1 to %d)", n, KL_MPI_MAX_BUCKET);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if (!(xs[i] = klpy_var(PySequence_Fast_GET_ITEM(seq, i), "mpi_all_reduce_many"))) {
            Py_DECREF(seq);
            return NULL;
        }
    kl_var *out;
    kl_status s = kl_mpi_all_reduce_many((int)n, xs, (kl_reduce_op)op, &out);
    Py_DECREF(seq);
    return result(s, out);
}

/* all_reduce_host(buffer, dtype): MPI_Allreduce (sum) in place on a
 * writable C-contiguous buffer, the GIL released. */
static PyObject *p_all_reduce_host(PyObject *mod, PyObject *args)
{
    (void)mod;
    Py_buffer view;
    kl_dtype t;
    if (!PyArg_ParseTuple(args, "w*O&", &view, klpy_conv_dtype, &t)) return NULL;
    size_t esize = kl_dtype_size(t);
    if (!esize || view.len % (Py_ssize_t)esize) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError, "all_reduce_host: %zd bytes are not whole %s elements", view.len,
                     kl_dtype_name(t));
        return NULL;
    }
    kl_status s;
    Py_BEGIN_ALLOW_THREADS
    s = kl_mpi_all_reduce_host(klpy_ctx, view.buf, (int64_t)(view.len / (Py_ssize_t)esize), t);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (s != KL_OK) return klpy_raise(s);
    Py_RETURN_NONE;
}

static PyObject *p_barrier(PyObject *mod, PyObject *unused)
{
    (void)mod; (void)unused;
    kl_status s;
    Py_BEGIN_ALLOW_THREADS
    s = kl_mpi_barrier(klpy_ctx);
    Py_END_ALLOW_THREADS
    if (s != KL_OK) return klpy_raise(s);
    Py_RETURN_NONE;
}

static PyObject *p_abort(PyObject *mod, PyObject *args)
{
    (void)mod;
    int code; const char *message;
    if (!PyArg_ParseTuple(args, "is", &code, &message)) return NULL;
    kl_mpi_abort(klpy_ctx, code, message);
    Py_RETURN_NONE;
}

static PyObject *p_finish(PyObject *mod, PyObject *unused)
{
    (void)mod; (void)unused;
    if (!klpy_enter()) return NULL;
    kl_status s = kl_mpi_finish(klpy_ctx);
    if (s != KL_OK) return klpy_raise(s);
    Py_RETURN_NONE;
}

PyMethodDef klpy_mpi_methods[] = {
    {"mpi_start", p_start, METH_NOARGS,
     "mpi_start() -> (rank, world_size, local_rank, local_size): joins mpirun's job (a world of one without it)"},
    {"mpi_all_reduce", p_all_reduce, METH_VARARGS, "mpi_all_reduce(x, op)"},
    {"mpi_reduce", p_reduce, METH_VARARGS, "mpi_reduce(x, op, root)"},
    {"mpi_broadcast", p_broadcast, METH_VARARGS, "mpi_broadcast(x, root)"},
    {"mpi_all_reduce_many", p_all_reduce_many, METH_VARARGS,
     "mpi_all_reduce_many([xs], op): the all_reduce of up to 10 vars as one flat var"},
    {"mpi_all_reduce_host", p_all_reduce_host, METH_VARARGS,
     "mpi_all_reduce_host(buffer, dtype): MPI_Allreduce (sum) in place, outside the graph"},
    {"mpi_barrier", p_barrier, METH_NOARGS, "waits for every rank"},
    {"mpi_abort", p_abort, METH_VARARGS, "mpi_abort(code, message): ends every rank of the job"},
    {"mpi_finish", p_finish, METH_NOARGS, "leaves the MPI job (MPI_Finalize)"},
    {NULL, NULL, 0, NULL},
};
