/* code.c: kiln._C's bindings for user kernels (jt.code): one call that builds
 * a code op with kl_code, and one that compiles kernel sources ahead of their
 * first run, so that a compile error surfaces where jt.code was called rather
 * than at some later sync. The translation of Jittor's template syntax into
 * these sources is Python's work (kiln/code.py). */
#include "kiln_py.h"

/* code(inputs, outputs, source, lang, grad_sources) -> [vars]
 * outputs: a sequence of (dtype, shape) where a negative dim is dynamic
 * (at most -dim, set by the kernel). grad_sources: a sequence of str or None. */
static PyObject *c_code(PyObject *mod, PyObject *args)
{
    if (!klpy_enter()) return NULL;
    (void)mod;
    PyObject *ins, *outs, *grads;
    const char *source;
    int lang; /* kl_code_lang: 0 C, 1 C++, 2 CUDA host code */
    if (!PyArg_ParseTuple(args, "OOsiO", &ins, &outs, &source, &lang, &grads)) return NULL;
    PyObject *in_seq = NULL, *out_seq = NULL, *grad_seq = NULL, *res = NULL;
    kl_var *in_vars[KL_MAX_DIMS * 2 + 16];
    kl_code_output specs[KL_MAX_DIMS * 2 + 16];
    const char *grad_src[KL_MAX_DIMS * 2 + 16];
    kl_var *made[KL_MAX_DIMS * 2 + 16];
    const int cap = (int)(sizeof in_vars / sizeof *in_vars);
    if (!(in_seq = PySequence_Fast(ins, "code: inputs must be a sequence of Vars"))) goto done;
    if (!(out_seq = PySequence_Fast(outs, "code: outputs must be a sequence of (dtype, shape)"))) goto done;
    if (!(grad_seq = PySequence_Fast(grads, "code: grad_sources must be a sequence"))) goto done;
    Py_ssize_t ni = PySequence_Fast_GET_SIZE(in_seq), no = PySequence_Fast_GET_SIZE(out_seq);
    Py_ssize_t ng = PySequence_Fast_GET_SIZE(grad_seq);
    if (ni > cap || no > cap || ng > cap) {
        PyErr_Format(PyExc_ValueError, "code: at most %d inputs and outputs", cap);
        goto done;
    }
    for (Py_ssize_t i = 0; i < ni; i++)
        if (!(in_vars[i] = klpy_var(PySequence_Fast_GET_ITEM(in_seq, i), "code input"))) goto done;
    for (Py_ssize_t i = 0; i < no; i++) {
        PyObject *spec = PySequence_Fast_GET_ITEM(out_seq, i);
        klpy_shape sh;
        if (!PyArg_ParseTuple(spec, "O&O&", klpy_conv_dtype, &specs[i].dtype, klpy_conv_shape, &sh)) goto done;
        specs[i].ndim = sh.ndim;
        for (int d = 0; d < sh.ndim; d++) specs[i].shape[d] = sh.dims[d];
    }
    for (Py_ssize_t k = 0; k < ng; k++) {
        PyObject *g = PySequence_Fast_GET_ITEM(grad_seq, k);
        if (g == Py_None) grad_src[k] = NULL;
        else if (!(grad_src[k] = PyUnicode_AsUTF8(g))) goto done;
    }
    kl_status s = kl_code(klpy_ctx, (int)ni, in_vars, (int)no, specs, source, (kl_code_lang)lang,
                          (int)ng, grad_src, made);
    if (s != KL_OK) { klpy_raise(s); goto done; }
    res = PyList_New(no);
    for (Py_ssize_t i = 0; i < no; i++) {
        PyObject *v = res ? klpy_wrap(made[i]) : (kl_var_release(made[i]), NULL);
        if (v) PyList_SET_ITEM(res, i, v);
        else Py_CLEAR(res);
    }
done:
    Py_XDECREF(in_seq);
    Py_XDECREF(out_seq);
    Py_XDECREF(grad_seq);
    return res;
}

/* code_compile([sources], lang, device=False): compiles (or finds in the
 * caches) every source as the executor would, several at once; raises
 * RuntimeError with the compiler's output on failure. A later run of the same
 * source costs a lookup. device: the sources are CUDA ops' device code, for
 * the current device. */
static PyObject *c_code_compile(PyObject *mod, PyObject *args)
{
    if (!klpy_enter()) return NULL;
    (void)mod;
    PyObject *srcs;
    int lang, device = 0; /* kl_code_lang: 0 C, 1 C++, 2 CUDA host code */
    if (!PyArg_ParseTuple(args, "Oi|p", &srcs, &lang, &device)) return NULL;
    PyObject *seq = PySequence_Fast(srcs, "code_compile: expected a sequence of sources");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    const char **text = PyMem_Calloc(n ? (size_t)n : 1, sizeof *text);
    PyObject *res = NULL;
    if (!text) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t i = 0; i < n; i++)
        if (!(text[i] = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i)))) goto done;
    kl_status s = device ? kl_code_compile_device(klpy_ctx, (int)n, text)
                         : kl_code_compile(klpy_ctx, (int)n, text, (kl_code_lang)lang);
    if (s != KL_OK) { klpy_raise(s); goto done; }
    res = Py_None;
    Py_INCREF(res);
done:
    PyMem_Free(text);
    Py_DECREF(seq);
    return res;
}

PyMethodDef klpy_code_methods[] = {
    {"code", c_code, METH_VARARGS,
     "code(inputs, [(dtype, shape)], source, lang, [grad source or None]) -> [vars]"},
    {"code_compile", c_code_compile, METH_VARARGS,
     "code_compile([sources], lang, device=False): compile user kernels (device: CUDA ops' device code) now "
     "(errors name the source file)"},
    {NULL, NULL, 0, NULL}
};
