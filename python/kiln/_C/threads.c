/* threads.c: how kiln._C shares the one context between Python threads and
 * lets Ctrl-C through.
 *
 * A sync runs its kernels with the GIL released, so other Python threads go
 * on. The context itself is not thread-safe: while a sync runs ("busy"), any
 * other thread that calls into kiln waits (with the GIL released) until it
 * ends, and Var objects freed meanwhile have their handles released later,
 * by the syncing thread. `busy` is only changed while holding the GIL, so a
 * thread holding the GIL reads it without the mutex.
 *
 * Between kernels the sync asks (at most every 20 ms) whether a signal
 * arrived: the syncing thread takes the GIL back for a moment and runs
 * Python's signal handlers; KeyboardInterrupt stops the sync there. */
#include "kiln_py.h"
#include <pthread.h>
#include <time.h>

static pthread_mutex_t busy_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t busy_done = PTHREAD_COND_INITIALIZER;
static int busy;
static unsigned long busy_thread;
static PyThreadState *sync_state;  /* the syncing thread's saved state */
static double last_signal_check;

/* Handles released while busy (guarded by the GIL), released after the sync. */
static kl_var **deferred;
static Py_ssize_t n_deferred, cap_deferred;

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int klpy_enter(void)
{
    while (busy) {
        if (busy_thread == PyThread_get_thread_ident()) {
            PyErr_SetString(PyExc_RuntimeError, "kiln was called while this thread's own sync is running "
                                                "(from a signal handler?); call it after the sync");
            return 0;
        }
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&busy_mutex);
        while (busy) pthread_cond_wait(&busy_done, &busy_mutex);
        pthread_mutex_unlock(&busy_mutex);
        Py_END_ALLOW_THREADS
    }
    return 1;
}

void klpy_release(kl_var *v)
{
    if (!v) return;
    if (!busy) {
        kl_var_release(v);
        return;
    }
    if (n_deferred == cap_deferred) {
        Py_ssize_t cap = cap_deferred ? 2 * cap_deferred : 64;
        kl_var **p = PyMem_Realloc(deferred, (size_t)cap * sizeof *p);
        if (!p) return; /* leaks one handle rather than racing the sync */
        deferred = p;
        cap_deferred = cap;
    }
    deferred[n_deferred++] = v;
}

/* Between kernels, in the syncing thread (GIL not held). */
static int interrupted(void *arg)
{
    (void)arg;
    double t = now_seconds();
    if (t - last_signal_check < 0.02) return 0;
    last_signal_check = t;
    PyEval_RestoreThread(sync_state);
    int stop = PyErr_CheckSignals() != 0; /* leaves the handler's exception set */
    sync_state = PyEval_SaveThread();
    return stop;
}

/* Runs work(arg) on the context with the GIL released, other threads'
 * calls into kiln waiting meanwhile. */
static kl_status run_busy(kl_status (*work)(void *), void *arg)
{
    if (!klpy_enter()) return KL_ERR_INTERRUPTED; /* the exception is set */
    busy = 1;
    busy_thread = PyThread_get_thread_ident();
    last_signal_check = now_seconds();
    kl_context_set_interrupt(klpy_ctx, interrupted, NULL);
    sync_state = PyEval_SaveThread();
    kl_status s = work(arg);
    PyEval_RestoreThread(sync_state);
    kl_context_set_interrupt(klpy_ctx, NULL, NULL);
    pthread_mutex_lock(&busy_mutex);
    busy = 0;
    pthread_cond_broadcast(&busy_done);
    pthread_mutex_unlock(&busy_mutex);
    while (n_deferred > 0) kl_var_release(deferred[--n_deferred]);
    return s;
}

typedef struct { kl_var *const *vars; int n; } sync_work;

static kl_status do_sync(void *arg)
{
    sync_work *w = arg;
    return w->n < 0 ? kl_sync_all(klpy_ctx) : kl_sync(w->vars, w->n);
}

kl_status klpy_sync(kl_var *const *vars, int n)
{
    sync_work w = {vars, n};
    return run_busy(do_sync, &w);
}

typedef struct { kl_var *v; void *dst; size_t nbytes; } copy_work;

static kl_status do_copy(void *arg)
{
    copy_work *w = arg;
    return kl_var_copy_to_host(w->v, w->dst, w->nbytes);
}

kl_status klpy_copy_to_host(kl_var *v, void *dst, size_t nbytes)
{
    copy_work w = {v, dst, nbytes};
    return run_busy(do_copy, &w);
}
