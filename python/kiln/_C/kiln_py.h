/* kiln_py.h: what the files of the kiln._C extension share: the Var object,
 * the process-wide context, argument conversion and status-to-exception mapping. */
#ifndef KILN_PY_H
#define KILN_PY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "kiln.h"

/* A Python handle on one kl_var. The Python class kiln.Var subclasses this
 * type; v may be rebound (in-place ops) because the graph itself is functional. */
typedef struct {
    PyObject_HEAD
    kl_var *v;
} KlVarObject;

extern PyTypeObject KlVar_Type;
extern PyTypeObject KlOwned_Type; /* var.c: what numpy() hands an array that takes a var's memory */
/* The one context of this process, made at module init. */
extern kl_context *klpy_ctx;

/* Sets the Python exception matching s, with kl_last_error() as message; returns NULL. */
PyObject *klpy_raise(kl_status s);
/* A new instance of the registered Var class holding v (the reference is taken over). */
PyObject *klpy_wrap(kl_var *v);
/* The kl_var of a Var object (borrowed), or NULL with TypeError set. */
kl_var *klpy_var(PyObject *o, const char *what);
/* Sets the Python class klpy_wrap instantiates (a subclass of KlVar_Type). */
int klpy_set_var_class(PyObject *cls);
/* Sets the tuple subclass Var.shape returns (kiln.Shape). */
int klpy_set_shape_class(PyObject *cls);

/* Converters for PyArg_ParseTuple's "O&". */
typedef struct { int ndim; int64_t dims[KL_MAX_DIMS]; } klpy_shape;
int klpy_conv_shape(PyObject *o, void *out);     /* klpy_shape* */
int klpy_conv_dtype(PyObject *o, void *out);     /* kl_dtype*: int code or name */
/* A sequence of at most KL_MAX_DIMS ints, as C ints (dims lists). */
typedef struct { int n; int v[KL_MAX_DIMS]; } klpy_ints;
int klpy_conv_ints(PyObject *o, void *out);

/* threads.c: every call into the core first waits out another thread's
 * sync (1; 0 with an exception set); syncs run with the GIL released and
 * check for signals between kernels (n < 0: every pending var); handles
 * dropped during a sync are released after it. */
int klpy_enter(void);
kl_status klpy_sync(kl_var *const *vars, int n);
/* kl_var_copy_to_host (computing v first if needed) with the GIL released. */
kl_status klpy_copy_to_host(kl_var *v, void *dst, size_t nbytes);
void klpy_release(kl_var *v);

/* Method tables: ops.c (the op constructors), code.c (jt.code), mpi.c. */
extern PyMethodDef klpy_op_methods[];
extern PyMethodDef klpy_code_methods[];
extern PyMethodDef klpy_mpi_methods[];

#endif
