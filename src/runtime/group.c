/* group.c: kernels of one structure launched as one. A training step's
 * optimiser makes a small kernel per parameter, all of one plan, whose
 * results only the program reads; launched one by one, each pays a launch
 * (a fork and join of the threads on a CPU, a kernel launch on a GPU).
 * Fused kernels of one plan with a group form (the backend's render_group)
 * whose results no later step of the sync reads wait for the last of them,
 * which launches them all through that form: one kernel over the members'
 * elements end to end, each member with its own buffers and arguments.
 * Aliases of waiting results (a parameter's update names its new value)
 * read nothing: they wait too, and run when the sync's other steps have.
 *
 * The group form's arguments: iarg[0] the member count M, iarg[1..M] where
 * each member's elements end in the joined space, then each member's
 * integer arguments; buffers and float arguments member after member. */
#include "runtime/step.h"
#include "core/dtype.h"
#include <stdlib.h>
#include <string.h>

/* Plans with a group open at once; a candidate of a further plan runs alone. */
#define MAX_OPEN 32
/* What waiting members hold that their own launches would have freed
 * sooner (their inputs that nothing outside the graph holds), all open
 * groups together: past this every open group closes (each runs in its
 * last member's place) and new ones open. */
#define MAX_HELD_BYTES ((uint64_t)256 << 20)

static uint64_t bytes_of(const kl_var *v) { return (uint64_t)v->numel * kl_dtype_size(v->dtype); }

/* Marks (1) or unmarks (0) the vars st reads from memory. */
static void mark_reads(const kl_step *st, uint8_t mark)
{
    if (st->plan) {
        for (int i = 1 + st->args.n_extra; i < st->args.n_bufs; i++) st->args.bufs[i]->read_mark = mark;
    } else if (st->pattern) {
        kl_var *in[2 + KL_MAX_EPILOGUE];
        for (int i = 0, n = kl_pattern_operands(st->pattern, in); i < n; i++)
            if (in[i]) in[i]->read_mark = mark;
    } else {
        for (int i = 0; i < st->v->op.n_inputs; i++) st->v->op.inputs[i]->read_mark = mark;
    }
}

/* Marks (1) or unmarks (0) st's results: its var and its siblings'. */
static void mark_outputs(const kl_step *st, uint8_t mark)
{
    for (int j = 0; j <= st->args.n_extra; j++) (j ? st->args.bufs[j] : st->v)->read_mark = mark;
}

/* A fused kernel with a group form whose results no step reads. */
static int candidate(const kl_step *st)
{
    if (!st->plan || !st->plan->group || st->args.n_checks || st->v->read_mark) return 0;
    for (int j = 1; j <= st->args.n_extra; j++)
        if (st->args.bufs[j]->read_mark) return 0;
    return 1;
}

typedef struct {
    const kl_plan *plan;
    kl_step *first, *last;
    int n;
} open_group;

static void close_group(open_group *g)
{
    if (g->n >= 2) { /* a lone member runs in its place: no member joined it, its group_next is NULL */
        for (kl_step *m = g->first; m != g->last; m = m->group_next) m->deferred = KL_DEFERRED_MEMBER;
        g->last->group_first = g->first;
    }
    g->n = 0;
}

/* Marks what the sync's steps read: an alias's input only when something
 * reads the alias (latest first, so an alias's readers are marked before it). */
static void mark_all_reads(kl_step *steps, int n_steps)
{
    for (int i = n_steps - 1; i >= 0; i--)
        if (!steps[i].is_alias || steps[i].v->read_mark) mark_reads(&steps[i], 1);
}

/* Aliases of results that wait for their group's launch wait too: until
 * every other step has run (nothing but aliases reads them). */
static void defer_aliases(kl_step *steps, int n_steps)
{
    for (int i = 0; i < n_steps; i++)
        if (steps[i].deferred) mark_outputs(&steps[i], 1);
    for (int i = 0; i < n_steps; i++)
        if (steps[i].is_alias && steps[i].v->op.inputs[0]->read_mark) {
            steps[i].deferred = KL_DEFERRED_ALIAS;
            steps[i].v->read_mark = 1;
        }
    for (int i = 0; i < n_steps; i++)
        if (steps[i].deferred) mark_outputs(&steps[i], 0);
}

void kl_groups_form(kl_step *steps, int n_steps)
{
    mark_all_reads(steps, n_steps);
    open_group open[MAX_OPEN];
    int n_open = 0;
    uint64_t held = 0; /* by the open groups' members */
    for (int i = 0; i < n_steps; i++) {
        kl_step *st = &steps[i];
        if (!candidate(st)) continue;
        uint64_t holds = 0;
        for (int b = 1 + st->args.n_extra; b < st->args.n_bufs; b++)
            if (st->args.bufs[b]->user_refs == 0) holds += bytes_of(st->args.bufs[b]);
        if (held + holds > MAX_HELD_BYTES) {
            for (int k = 0; k < n_open; k++) close_group(&open[k]);
            held = 0;
        }
        open_group *g = NULL;
        for (int k = 0; k < n_open && !g; k++)
            if (open[k].plan == st->plan) g = &open[k];
        if (!g && n_open == MAX_OPEN) continue;
        if (!g) *(g = &open[n_open++]) = (open_group){st->plan, NULL, NULL, 0};
        if (g->n) g->last->group_next = st;
        else g->first = st;
        g->last = st;
        g->n++;
        held += holds;
    }
    for (int k = 0; k < n_open; k++) close_group(&open[k]);
    for (int i = 0; i < n_steps; i++) mark_reads(&steps[i], 0);
    defer_aliases(steps, n_steps);
}

/* The launch's arrays, member after member (see the top of the file). */
typedef struct {
    void **ptrs;
    int64_t *iargs;
    double *fargs;
    kl_buffer **out;
} group_arrays;

static void arrays_free(group_arrays *a)
{
    free(a->ptrs);
    free(a->iargs);
    free(a->fargs);
    free(a->out);
}

kl_status kl_group_run(kl_context *ctx, kl_step *last)
{
    const kl_step *first = last->group_first;
    kl_backend *dev = last->v->device;
    const kl_launch_plan *shape = &first->args; /* every member's counts: one plan */
    int members = 0;
    for (const kl_step *m = first; m; m = m->group_next) members++;
    int nb = shape->n_bufs, ni = shape->n_iargs, nf = shape->n_fargs, n_out = 1 + shape->n_extra;
    group_arrays a = {
        malloc((size_t)members * (size_t)nb * sizeof *a.ptrs),
        malloc((size_t)(1 + members + members * ni) * sizeof *a.iargs),
        malloc((size_t)(members * nf + 1) * sizeof *a.fargs),
        calloc((size_t)members * (size_t)n_out, sizeof *a.out),
    };
    if (!a.ptrs || !a.iargs || !a.fargs || !a.out) {
        arrays_free(&a);
        return kl_error(KL_ERR_MEMORY, "out of memory launching a group of %d kernels", members);
    }
    kl_residency_next_step(ctx);
    kl_status s = KL_OK;
    for (const kl_step *m = first; m && s == KL_OK; m = m->group_next) s = kl_step_inputs_resident(m);
    int made = 0; /* members whose outputs are allocated */
    int64_t end = 0;
    a.iargs[0] = members;
    for (const kl_step *m = first; m && s == KL_OK; m = m->group_next, made++) {
        void **ptrs = a.ptrs + (size_t)made * (size_t)nb;
        kl_step_input_pointers(m, ptrs);
        s = kl_step_outputs_new(ctx, m, a.out + (size_t)made * (size_t)n_out, ptrs);
        if (s != KL_OK) break;
        a.iargs[1 + made] = end += m->args.work;
        memcpy(a.iargs + 1 + members + made * ni, m->args.iargs, (size_t)ni * sizeof *a.iargs);
        memcpy(a.fargs + made * nf, m->args.fargs, (size_t)nf * sizeof *a.fargs);
    }
    if (s == KL_OK) {
        kl_launch_args la = {a.ptrs, a.iargs, a.fargs, members * nb, 1 + members + members * ni, members * nf, end, 1};
        s = dev->ops->launch(dev, last->plan->group->fn, &la);
        ctx->counters.kernels_launched++;
        if (s == KL_OK) ctx->counters.launches_grouped += (uint64_t)members;
    }
    int k = 0;
    for (const kl_step *m = first; m && k < made; m = m->group_next, k++) {
        if (s == KL_OK) kl_step_outputs_set(m, a.out + (size_t)k * (size_t)n_out);
        else kl_step_outputs_release(m, a.out + (size_t)k * (size_t)n_out); /* every member stays pending */
    }
    arrays_free(&a);
    return s;
}
