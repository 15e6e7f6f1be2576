/* dnnl.c: finding oneDNN at run time and running convolutions with it.
 *
 * The build never sees oneDNN's headers: the few C entry points used are
 * declared here, with its descriptors as opaque storage larger than 2.x's
 * (696-byte memory descriptors, 5976-byte convolution descriptors), and the
 * library is used only when dnnl_version() says 2.x, whose enum values these
 * are. Each convolution lets oneDNN choose its layouts (format "any": its
 * blocked layouts run several times faster than plain NCHW) and reorders
 * kiln's row-major operands into them; primitives are created once per
 * shape and kept, most recently used first. A forward convolution's
 * epilogue runs as post-ops on the blocked result while it is in cache:
 * per-channel scales and shifts as binary post-ops, a residual as a sum
 * post-op (reordered into the result first), a ReLU as an eltwise one. */
#include "backend/cpu/dnnl.h"
#include "core/error.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { /* oneDNN 2.x's values (dnnl_types.h) */
    F32 = 3, TAG_ANY = 1, ENGINE_CPU = 1, STREAM_DEFAULT = 1, SUCCESS = 0,
    FORWARD_TRAINING = 64, FORWARD_INFERENCE = 96, BACKWARD_DATA = 160, BACKWARD_WEIGHTS = 192,
    CONVOLUTION_DIRECT = 1, ELTWISE_RELU = 0x1f, BINARY_ADD = 0x1fff0, BINARY_MUL = 0x1fff1,
    ARG_SRC = 1, ARG_DST = 17, ARG_WEIGHTS = 33, ARG_DIFF_SRC = 129, ARG_DIFF_DST = 145, ARG_DIFF_WEIGHTS = 161,
    ARG_FROM = 1, ARG_TO = 17, ARG_SRC_1 = 2, ARG_POST_OP_BASE = 16384,
    QUERY_IMPL_INFO = 8, QUERY_SRC = 129, QUERY_DIFF_SRC = 130, QUERY_WEIGHTS = 131, QUERY_DIFF_WEIGHTS = 132,
    QUERY_DST = 133, QUERY_DIFF_DST = 134,
};
/* plain tags by spatial rank 1..3: ncw nchw ncdhw / oiw oihw oidhw / goiw goihw goidhw */
static const int ACTIVATION_TAG[4] = {0, 4, 5, 7}, WEIGHT_TAG[4] = {0, 4, 5, 7}, GROUP_WEIGHT_TAG[4] = {0, 5, 7, 8};

#define MAX_CACHED 128
/* A first layer (RGB: up to 4 input channels per group) reads plain NCHW:
 * with "any" oneDNN 2.6 picks brgconv on channels-last, 2x slower than its
 * direct kernel reading NCHW (ResNet's 7x7 stem at batch 8: 8.9 against
 * 4.3 ms, and no reorder of the input). 2.6 runs no binary post-ops there,
 * so such a layer's epilogue stays a kernel, still the faster whole. */
enum { FIRST_LAYER_CHANNELS = 4 };
#define WEIGHT_SLOTS 8 /* reordered weights kept per primitive (layers of one shape share it) */
#define MD_BYTES 1024
#define OP_DESC_BYTES 8192

typedef int64_t dims_t[12];
typedef struct { _Alignas(16) unsigned char bytes[MD_BYTES]; } md_t;
typedef struct { int arg; void *memory; } exec_arg;
typedef struct { int major, minor, patch; const char *hash; unsigned cpu_runtime, gpu_runtime; } version_t;

struct kl_dnnl_api {
    const version_t *(*version)(void);
    int (*engine_create)(void **engine, int kind, size_t index);
    int (*engine_destroy)(void *engine);
    int (*stream_create)(void **stream, void *engine, unsigned flags);
    int (*stream_wait)(void *stream);
    int (*stream_destroy)(void *stream);
    int (*md_init_by_tag)(md_t *md, int ndims, const int64_t *dims, int data_type, int tag);
    int (*md_equal)(const void *a, const void *b);
    size_t (*md_size)(const void *md);
    int (*conv_forward_init)(void *desc, int prop, int alg, const void *src, const void *w, const void *bias,
                             const void *dst, const int64_t *strides, const int64_t *dilates,
                             const int64_t *pad_l, const int64_t *pad_r);
    int (*conv_backward_data_init)(void *desc, int alg, const void *diff_src, const void *w, const void *diff_dst,
                                   const int64_t *strides, const int64_t *dilates, const int64_t *pad_l,
                                   const int64_t *pad_r);
    int (*conv_backward_weights_init)(void *desc, int alg, const void *src, const void *diff_w,
                                      const void *diff_bias, const void *diff_dst, const int64_t *strides,
                                      const int64_t *dilates, const int64_t *pad_l, const int64_t *pad_r);
    int (*pd_create)(void **pd, const void *op_desc, const void *attr, void *engine, const void *hint);
    int (*pd_destroy)(void *pd);
    const void *(*pd_query_md)(const void *pd, int what, int index);
    int (*pd_query)(const void *pd, int what, int index, void *result);
    int (*primitive_create)(void **p, const void *pd);
    int (*primitive_destroy)(void *p);
    int (*primitive_execute)(const void *p, void *stream, int nargs, const exec_arg *args);
    int (*reorder_pd_create)(void **pd, const void *src_md, void *src_engine, const void *dst_md,
                             void *dst_engine, const void *attr);
    int (*memory_create)(void **m, const void *md, void *engine, void *handle);
    int (*memory_set_data_handle)(void *m, void *handle);
    int (*memory_destroy)(void *m);
    int (*attr_create)(void **attr);
    int (*attr_destroy)(void *attr);
    int (*attr_set_post_ops)(void *attr, const void *post_ops);
    int (*post_ops_create)(void **post_ops);
    int (*post_ops_destroy)(void *post_ops);
    int (*post_ops_append_binary)(void *post_ops, int alg, const void *src1);
    int (*post_ops_append_eltwise)(void *post_ops, float scale, int alg, float alpha, float beta);
    int (*post_ops_append_sum)(void *post_ops, float scale);
    int (*sgemm)(char ta, char tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                 const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
};

/* One operand: kiln's plain memory and, when oneDNN wants another layout,
 * its own memory (in the run's scratch) and the reorder between them. */
typedef struct {
    int arg;
    void *user, *inner, *reorder;
    size_t inner_bytes, offset;
} operand;

/* The two forms a convolution of one shape may take: its layouts left to
 * oneDNN ("any", what convolutions that keep layouts between them use), or,
 * for a forward convolution that reads and writes row-major arrays, channel
 * blocks of 16: oneDNN 2.6 then picks its direct kernel, about as fast as
 * the channels-last brgconv "any" gives, and the reorders to and from NCHW
 * are simple block copies (a 8x64x56x56 array: 0.17 ms each way against
 * 0.41 and 0.26 for channels last; the lone 3x3 convolution 4.8 -> 4.1 ms). */
typedef enum { FORM_ANY, FORM_ROW_MAJOR_IO } conv_form;

struct kl_dnnl_conv {
    kl_conv_shape shape;
    conv_form form;
    kl_dnnl_conv *next;
    int refused; /* an epilogue oneDNN would run only in a slower implementation: kept to say no at once */
    void *pd, *primitive;
    operand ops[3]; /* a, b, out */
    void *post[KL_MAX_EPILOGUE]; /* a scale's or shift's memory */
    void *residual_in;           /* reorders a residual into the blocked result */
    const char *impl;
    uint32_t layout[2];          /* a forward convolution's src and dst layouts (KEPT_TAGS; 0: row-major) */
    size_t scratch_bytes;
    struct { uint64_t id; void *data; } weights[WEIGHT_SLOTS];
    uint64_t seen[WEIGHT_SLOTS]; /* weight ids met once, not (yet) kept */
    int next_slot, next_seen;
};

void kl_dnnl_init(kl_dnnl *d, kl_host_allocator *alloc)
{
    memset(d, 0, sizeof *d);
    d->alloc = alloc;
    const char *want = getenv("KILN_DNNL");
    d->disabled = want && strcmp(want, "0") == 0;
}

#define LOAD(field, name) ok = ok && (*(void **)&api->field = dlsym(d->handle, name)) != NULL

int kl_dnnl_available(kl_dnnl *d)
{
    if (d->tried) return d->available;
    d->tried = 1;
    if (d->disabled) return 0;
    d->handle = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!d->handle) return 0;
    struct kl_dnnl_api *api = calloc(1, sizeof *api);
    int ok = api != NULL;
    if (ok) {
        LOAD(version, "dnnl_version");
        LOAD(engine_create, "dnnl_engine_create");
        LOAD(engine_destroy, "dnnl_engine_destroy");
        LOAD(stream_create, "dnnl_stream_create");
        LOAD(stream_wait, "dnnl_stream_wait");
        LOAD(stream_destroy, "dnnl_stream_destroy");
        LOAD(md_init_by_tag, "dnnl_memory_desc_init_by_tag");
        LOAD(md_equal, "dnnl_memory_desc_equal");
        LOAD(md_size, "dnnl_memory_desc_get_size");
        LOAD(conv_forward_init, "dnnl_dilated_convolution_forward_desc_init");
        LOAD(conv_backward_data_init, "dnnl_dilated_convolution_backward_data_desc_init");
        LOAD(conv_backward_weights_init, "dnnl_dilated_convolution_backward_weights_desc_init");
        LOAD(pd_create, "dnnl_primitive_desc_create");
        LOAD(pd_destroy, "dnnl_primitive_desc_destroy");
        LOAD(pd_query_md, "dnnl_primitive_desc_query_md");
        LOAD(pd_query, "dnnl_primitive_desc_query");
        LOAD(primitive_create, "dnnl_primitive_create");
        LOAD(primitive_destroy, "dnnl_primitive_destroy");
        LOAD(primitive_execute, "dnnl_primitive_execute");
        LOAD(reorder_pd_create, "dnnl_reorder_primitive_desc_create");
        LOAD(memory_create, "dnnl_memory_create");
        LOAD(memory_set_data_handle, "dnnl_memory_set_data_handle");
        LOAD(memory_destroy, "dnnl_memory_destroy");
        LOAD(attr_create, "dnnl_primitive_attr_create");
        LOAD(attr_destroy, "dnnl_primitive_attr_destroy");
        LOAD(attr_set_post_ops, "dnnl_primitive_attr_set_post_ops");
        LOAD(post_ops_create, "dnnl_post_ops_create");
        LOAD(post_ops_destroy, "dnnl_post_ops_destroy");
        LOAD(post_ops_append_binary, "dnnl_post_ops_append_binary");
        LOAD(post_ops_append_eltwise, "dnnl_post_ops_append_eltwise");
        LOAD(post_ops_append_sum, "dnnl_post_ops_append_sum");
        LOAD(sgemm, "dnnl_sgemm");
    }
    ok = ok && api->version()->major == 2;
    ok = ok && api->engine_create(&d->engine, ENGINE_CPU, 0) == SUCCESS;
    ok = ok && api->stream_create(&d->stream, d->engine, STREAM_DEFAULT) == SUCCESS;
    if (!ok) {
        if (api && d->stream) api->stream_destroy(d->stream);
        if (api && d->engine) api->engine_destroy(d->engine);
        free(api);
        dlclose(d->handle);
        d->handle = d->engine = d->stream = NULL;
        return 0;
    }
    d->api = api;
    d->available = 1;
    return 1;
}

static void drop_weights(kl_dnnl *d, kl_dnnl_conv *c)
{
    for (int i = 0; i < WEIGHT_SLOTS; i++) {
        kl_host_free(d->alloc, c->weights[i].data, c->ops[1].inner_bytes);
        c->weights[i].data = NULL;
        c->weights[i].id = 0;
    }
}

static void conv_free(kl_dnnl *d, kl_dnnl_conv *c)
{
    struct kl_dnnl_api *api = d->api;
    drop_weights(d, c);
    for (int i = 0; i < 3; i++) {
        operand *o = &c->ops[i];
        if (o->reorder) api->primitive_destroy(o->reorder);
        if (o->inner) api->memory_destroy(o->inner);
        if (o->user) api->memory_destroy(o->user);
    }
    for (int i = 0; i < KL_MAX_EPILOGUE; i++)
        if (c->post[i]) api->memory_destroy(c->post[i]);
    if (c->residual_in) api->primitive_destroy(c->residual_in);
    if (c->primitive) api->primitive_destroy(c->primitive);
    if (c->pd) api->pd_destroy(c->pd);
    free(c);
}

void kl_dnnl_trim(kl_dnnl *d)
{
    for (kl_dnnl_conv *c = d->available ? d->convs : NULL; c; c = c->next) drop_weights(d, c);
}

void kl_dnnl_free(kl_dnnl *d)
{
    if (!d->available) return;
    while (d->convs) {
        kl_dnnl_conv *c = d->convs;
        d->convs = c->next;
        conv_free(d, c);
    }
    d->api->stream_destroy(d->stream);
    d->api->engine_destroy(d->engine);
    free(d->api);
    /* the library stays loaded: its OpenMP threads may outlive this call */
    d->available = 0;
}

/* The dims of a convolution's src (of_result 0) or dst (1), (n, channels,
 * spatial...), and the bytes the array holds row-major. */
static size_t activation(const kl_conv_shape *s, int of_result, int64_t *dims)
{
    size_t bytes = sizeof(float);
    dims[0] = s->n;
    dims[1] = of_result ? s->oc : s->ic;
    for (int j = 0; j < s->nd; j++) dims[2 + j] = of_result ? s->out[j] : s->in[j];
    for (int j = 0; j < 2 + s->nd; j++) bytes *= (size_t)dims[j];
    return bytes;
}

/* Descriptors of src, weights and dst: kiln's row-major layouts, or (any)
 * left for oneDNN to choose, src and dst then in activation_tag (TAG_ANY:
 * oneDNN's choice too). */
static int make_mds(struct kl_dnnl_api *api, const kl_conv_shape *s, int any, int activation_tag, md_t *src, md_t *w,
                    md_t *dst)
{
    int nd = s->nd, nw = 0;
    dims_t ds, dd, dw;
    activation(s, 0, ds);
    activation(s, 1, dd);
    if (s->groups > 1) dw[nw++] = s->groups;
    dw[nw++] = s->oc / s->groups;
    dw[nw++] = s->ic / s->groups;
    for (int j = 0; j < nd; j++) dw[nw++] = s->k[j];
    int atag = any ? activation_tag : ACTIVATION_TAG[nd];
    int wtag = any ? TAG_ANY : s->groups > 1 ? GROUP_WEIGHT_TAG[nd] : WEIGHT_TAG[nd];
    return api->md_init_by_tag(src, 2 + nd, ds, F32, atag) == SUCCESS &&
           api->md_init_by_tag(w, nw, dw, F32, wtag) == SUCCESS &&
           api->md_init_by_tag(dst, 2 + nd, dd, F32, atag) == SUCCESS;
}

/* An operand's memories and reorder; input operands reorder user -> inner. */
static int setup_operand(kl_dnnl *d, operand *o, int arg, const md_t *user_md, const void *inner_md, int is_output)
{
    struct kl_dnnl_api *api = d->api;
    o->arg = arg;
    if (api->memory_create(&o->user, user_md, d->engine, NULL) != SUCCESS) return 0;
    if (api->md_equal(user_md, inner_md)) return 1;
    o->inner_bytes = api->md_size(inner_md);
    if (api->memory_create(&o->inner, inner_md, d->engine, NULL) != SUCCESS) return 0;
    void *rpd = NULL;
    int ok = is_output ? api->reorder_pd_create(&rpd, inner_md, d->engine, user_md, d->engine, NULL) == SUCCESS
                       : api->reorder_pd_create(&rpd, user_md, d->engine, inner_md, d->engine, NULL) == SUCCESS;
    ok = ok && api->primitive_create(&o->reorder, rpd) == SUCCESS;
    if (rpd) api->pd_destroy(rpd);
    return ok;
}

/* The layouts an activation may be kept in between convolutions (channels
 * last, channel blocks of 16, 8, 4), by spatial rank 1..3: oneDNN 2.x's tags. */
static const int KEPT_TAGS[4][4] = {{0}, {17, 47, 60, 51}, {20, 69, 93, 75}, {21, 112, 133, 119}};

/* md's layout as one of KEPT_TAGS (0: none of them): the tag is the number,
 * so equal numbers are equal layouts of the same dims. */
static uint32_t layout_number(kl_dnnl *d, const void *md, int nd, const int64_t *dims)
{
    for (int t = 0; t < 4; t++) {
        md_t candidate;
        if (d->api->md_init_by_tag(&candidate, 2 + nd, dims, F32, KEPT_TAGS[nd][t]) == SUCCESS &&
            d->api->md_equal(&candidate, md))
            return (uint32_t)KEPT_TAGS[nd][t];
    }
    return 0;
}

/* Numbers a forward convolution's src and dst layouts: 0 where it reads or
 * writes row-major, another layout than KEPT_TAGS, or one of another size
 * (padded channels), which a buffer of the array's size cannot hold. */
static void number_layouts(kl_dnnl *d, kl_dnnl_conv *c)
{
    const kl_conv_shape *s = &c->shape;
    if (s->kind != KL_CONV_FORWARD) return;
    for (int of_result = 0; of_result < 2; of_result++) {
        dims_t dims;
        const operand *o = &c->ops[of_result ? 2 : 0];
        if (o->inner && o->inner_bytes == activation(s, of_result, dims))
            c->layout[of_result] =
                layout_number(d, d->api->pd_query_md(c->pd, of_result ? QUERY_DST : QUERY_SRC, 0), s->nd, dims);
    }
}

/* The primitive attribute carrying e as post-ops (*attr NULL: no epilogue). */
static int epilogue_attr(struct kl_dnnl_api *api, const kl_conv_shape *s, const md_t *channel, void **attr)
{
    *attr = NULL;
    if (!s->epilogue.n) return 1;
    void *post = NULL;
    int ok = api->attr_create(attr) == SUCCESS && api->post_ops_create(&post) == SUCCESS;
    for (int i = 0; ok && i < s->epilogue.n; i++) {
        switch (s->epilogue.op[i]) {
        case KL_EPI_SCALE: ok = api->post_ops_append_binary(post, BINARY_MUL, channel) == SUCCESS; break;
        case KL_EPI_SHIFT: ok = api->post_ops_append_binary(post, BINARY_ADD, channel) == SUCCESS; break;
        case KL_EPI_RESIDUAL: ok = api->post_ops_append_sum(post, 1.0f) == SUCCESS; break;
        case KL_EPI_RELU: ok = api->post_ops_append_eltwise(post, 1.0f, ELTWISE_RELU, 0.0f, 0.0f) == SUCCESS; break;
        default: ok = 0;
        }
    }
    ok = ok && api->attr_set_post_ops(*attr, post) == SUCCESS;
    if (post) api->post_ops_destroy(post);
    return ok;
}

/* The memories a run points at the epilogue's operands, and the reorder
 * that puts a residual where the sum post-op adds it. */
static int setup_epilogue(kl_dnnl *d, kl_dnnl_conv *c, const md_t *channel, const md_t *dst)
{
    struct kl_dnnl_api *api = d->api;
    const kl_epilogue *e = &c->shape.epilogue;
    int ok = 1;
    for (int i = 0; ok && i < e->n; i++) {
        if (e->op[i] == KL_EPI_SCALE || e->op[i] == KL_EPI_SHIFT)
            ok = api->memory_create(&c->post[i], channel, d->engine, NULL) == SUCCESS;
        if (e->op[i] == KL_EPI_RESIDUAL && c->ops[2].inner) {
            void *rpd = NULL;
            ok = api->memory_create(&c->post[i], dst, d->engine, NULL) == SUCCESS &&
                 api->reorder_pd_create(&rpd, dst, d->engine, api->pd_query_md(c->pd, QUERY_DST, 0), d->engine,
                                        NULL) == SUCCESS &&
                 api->primitive_create(&c->residual_in, rpd) == SUCCESS;
            if (rpd) api->pd_destroy(rpd);
        }
    }
    return ok;
}

/* Whether the row-major form applies to s: a forward convolution without
 * groups whose channels fill blocks of 16 (a first layer's input aside). */
static int row_major_form_applies(const kl_conv_shape *s)
{
    return s->kind == KL_CONV_FORWARD && s->groups == 1 && s->oc % 16 == 0 &&
           (s->ic % 16 == 0 || s->ic <= FIRST_LAYER_CHANNELS);
}

static kl_dnnl_conv *create(kl_dnnl *d, const kl_conv_shape *s, conv_form form, int debug)
{
    struct kl_dnnl_api *api = d->api;
    md_t src, w, dst, asrc, aw, adst;
    int chosen = form == FORM_ROW_MAJOR_IO ? KEPT_TAGS[s->nd][1] : TAG_ANY; /* channel blocks of 16, or any */
    if (!make_mds(api, s, 0, 0, &src, &w, &dst) || !make_mds(api, s, 1, chosen, &asrc, &aw, &adst)) return NULL;
    if (s->kind == KL_CONV_FORWARD && s->ic / s->groups <= FIRST_LAYER_CHANNELS) asrc = src;
    int64_t strides[3], dilates[3], pad_l[3], pad_r[3];
    for (int j = 0; j < s->nd; j++) {
        strides[j] = s->stride[j];
        dilates[j] = s->dilation[j] - 1;
        pad_l[j] = s->pad_lo[j];
        pad_r[j] = s->pad_hi[j];
    }
    void *desc = malloc(OP_DESC_BYTES), *fwd_desc = malloc(OP_DESC_BYTES);
    kl_dnnl_conv *c = calloc(1, sizeof *c);
    void *hint = NULL, *attr = NULL;
    md_t channel; /* a per-channel operand of the epilogue: (1, oc, 1...) */
    dims_t dc = {1, s->oc, 1, 1, 1};
    int ok = desc && fwd_desc && c &&
             api->md_init_by_tag(&channel, 2 + s->nd, dc, F32, ACTIVATION_TAG[s->nd]) == SUCCESS;
    int forward = s->kind == KL_CONV_FORWARD;
    ok = ok && (forward || !s->epilogue.n) && epilogue_attr(api, s, &channel, &attr);
    ok = ok && api->conv_forward_init(fwd_desc, forward ? FORWARD_INFERENCE : FORWARD_TRAINING, CONVOLUTION_DIRECT,
                                      &asrc, &aw, NULL, &adst, strides, dilates, pad_l, pad_r) == SUCCESS;
    if (ok && forward) {
        ok = api->pd_create(&c->pd, fwd_desc, attr, d->engine, NULL) == SUCCESS;
    } else if (ok) {
        ok = api->pd_create(&hint, fwd_desc, NULL, d->engine, NULL) == SUCCESS;
        if (ok && s->kind == KL_CONV_BACKWARD_DATA)
            ok = api->conv_backward_data_init(desc, CONVOLUTION_DIRECT, &asrc, &aw, &adst, strides, dilates, pad_l,
                                              pad_r) == SUCCESS;
        else if (ok)
            ok = api->conv_backward_weights_init(desc, CONVOLUTION_DIRECT, &asrc, &aw, NULL, &adst, strides, dilates,
                                                 pad_l, pad_r) == SUCCESS;
        ok = ok && api->pd_create(&c->pd, desc, NULL, d->engine, hint) == SUCCESS;
    }
    if (hint) api->pd_destroy(hint);
    if (attr) api->attr_destroy(attr);
    free(desc);
    free(fwd_desc);
    if (c) {
        c->shape = *s;
        c->form = form;
    }
    ok = ok && api->primitive_create(&c->primitive, c->pd) == SUCCESS;
    if (ok) {
        const void *pd = c->pd;
        switch (s->kind) {
        case KL_CONV_FORWARD:
            ok = setup_operand(d, &c->ops[0], ARG_SRC, &src, api->pd_query_md(pd, QUERY_SRC, 0), 0) &&
                 setup_operand(d, &c->ops[1], ARG_WEIGHTS, &w, api->pd_query_md(pd, QUERY_WEIGHTS, 0), 0) &&
                 setup_operand(d, &c->ops[2], ARG_DST, &dst, api->pd_query_md(pd, QUERY_DST, 0), 1) &&
                 setup_epilogue(d, c, &channel, &dst);
            break;
        case KL_CONV_BACKWARD_DATA:
            ok = setup_operand(d, &c->ops[0], ARG_DIFF_DST, &dst, api->pd_query_md(pd, QUERY_DIFF_DST, 0), 0) &&
                 setup_operand(d, &c->ops[1], ARG_WEIGHTS, &w, api->pd_query_md(pd, QUERY_WEIGHTS, 0), 0) &&
                 setup_operand(d, &c->ops[2], ARG_DIFF_SRC, &src, api->pd_query_md(pd, QUERY_DIFF_SRC, 0), 1);
            break;
        default:
            ok = setup_operand(d, &c->ops[0], ARG_SRC, &src, api->pd_query_md(pd, QUERY_SRC, 0), 0) &&
                 setup_operand(d, &c->ops[1], ARG_DIFF_DST, &dst, api->pd_query_md(pd, QUERY_DIFF_DST, 0), 0) &&
                 setup_operand(d, &c->ops[2], ARG_DIFF_WEIGHTS, &w, api->pd_query_md(pd, QUERY_DIFF_WEIGHTS, 0), 1);
        }
    }
    if (!ok) {
        if (c) conv_free(d, c);
        return NULL;
    }
    for (int i = 0; i < 3; i++) {
        c->ops[i].offset = c->scratch_bytes;
        c->scratch_bytes += (c->ops[i].inner_bytes + 63) / 64 * 64;
    }
    c->impl = "?";
    api->pd_query(c->pd, QUERY_IMPL_INFO, 0, &c->impl);
    number_layouts(d, c);
    if (debug) {
        static const char *const kinds[] = {"forward", "backward data", "backward weights"};
        fprintf(stderr, "[kiln] oneDNN convolution %s%s: n=%lld %lld->%lld groups=%d, %d post-ops, implementation %s, "
                "%zu bytes of reorders\n", kinds[s->kind], form == FORM_ROW_MAJOR_IO ? " (row-major arrays)" : "",
                (long long)s->n, (long long)s->ic, (long long)s->oc, s->groups, s->epilogue.n, c->impl,
                c->scratch_bytes);
    }
    return c;
}

/* The primitive for s; for an epilogue oneDNN does not run, or runs only in
 * a slower implementation than the bare convolution's (a reference loop,
 * say), the record of that (refused set): the epilogue stays a kernel. */
static kl_dnnl_conv *get_form(kl_dnnl *d, const kl_conv_shape *s, conv_form form, int debug);

static kl_dnnl_conv *create_or_refuse(kl_dnnl *d, const kl_conv_shape *s, conv_form form, int debug)
{
    const char *bare_impl = NULL;
    if (s->epilogue.n) {
        kl_conv_shape bare = *s;
        memset(&bare.epilogue, 0, sizeof bare.epilogue);
        kl_dnnl_conv *b = get_form(d, &bare, form, debug);
        bare_impl = b ? b->impl : NULL;
    }
    kl_dnnl_conv *c = s->epilogue.n && !bare_impl ? NULL : create(d, s, form, debug);
    if (c && bare_impl && strcmp(c->impl, bare_impl) != 0) {
        if (debug) fprintf(stderr, "[kiln] oneDNN convolution: post-ops refused (%s, not %s)\n", c->impl, bare_impl);
        conv_free(d, c);
        c = NULL;
    }
    /* a bare convolution that failed is asked again next time (the failure
     * may have been for memory); an epilogue's refusal is kept, and so is a
     * row-major form's (the form "any" stands in) */
    if (!c && (s->epilogue.n || form == FORM_ROW_MAJOR_IO) && (c = calloc(1, sizeof *c)) != NULL) {
        c->shape = *s;
        c->form = form;
        c->refused = 1;
    }
    return c;
}

static kl_dnnl_conv *get_form(kl_dnnl *d, const kl_conv_shape *s, conv_form form, int debug)
{
    if (!kl_dnnl_available(d)) return NULL;
    kl_dnnl_conv **link = &d->convs;
    for (kl_dnnl_conv *c = d->convs; c; link = &c->next, c = c->next) {
        if (c->form == form && memcmp(&c->shape, s, sizeof *s) == 0) {
            *link = c->next; /* move to the front */
            c->next = d->convs;
            d->convs = c;
            return c->refused ? NULL : c;
        }
    }
    kl_dnnl_conv *c = create_or_refuse(d, s, form, debug);
    if (!c) return NULL;
    int refused = c->refused;
    c->next = d->convs;
    d->convs = c;
    if (++d->n_convs > MAX_CACHED) { /* drop the least recently used */
        kl_dnnl_conv **p = &d->convs;
        while ((*p)->next) p = &(*p)->next;
        conv_free(d, *p);
        *p = NULL;
        d->n_convs--;
    }
    return refused ? NULL : c;
}

kl_dnnl_conv *kl_dnnl_conv_get(kl_dnnl *d, const kl_conv_shape *s, int debug)
{
    return get_form(d, s, FORM_ANY, debug);
}

kl_dnnl_conv *kl_dnnl_conv_get_row_major(kl_dnnl *d, const kl_conv_shape *s, int debug)
{
    return row_major_form_applies(s) ? get_form(d, s, FORM_ROW_MAJOR_IO, debug) : NULL;
}

size_t kl_dnnl_conv_scratch_bytes(const kl_dnnl_conv *c) { return c->scratch_bytes; }

uint32_t kl_dnnl_conv_layout(const kl_dnnl_conv *c, int of_result) { return c->layout[of_result != 0]; }

static int run(kl_dnnl *d, void *primitive, int n, const exec_arg *args)
{
    return d->api->primitive_execute(primitive, d->stream, n, args) == SUCCESS;
}

kl_status kl_dnnl_conv_to_row_major(kl_dnnl *d, kl_dnnl_conv *c, void *result)
{
    struct kl_dnnl_api *api = d->api;
    const kl_conv_shape *s = &c->shape;
    dims_t dims;
    size_t bytes = activation(s, 1, dims);
    md_t kept, plain;
    void *from = NULL, *to = NULL, *rpd = NULL, *reorder = NULL, *copy = kl_host_alloc(d->alloc, bytes);
    int ok = copy && c->layout[1] &&
             api->md_init_by_tag(&kept, 2 + s->nd, dims, F32, (int)c->layout[1]) == SUCCESS &&
             api->md_init_by_tag(&plain, 2 + s->nd, dims, F32, ACTIVATION_TAG[s->nd]) == SUCCESS &&
             api->memory_create(&from, &kept, d->engine, copy) == SUCCESS &&
             api->memory_create(&to, &plain, d->engine, result) == SUCCESS &&
             api->reorder_pd_create(&rpd, &kept, d->engine, &plain, d->engine, NULL) == SUCCESS &&
             api->primitive_create(&reorder, rpd) == SUCCESS;
    if (ok) {
        memcpy(copy, result, bytes);
        exec_arg r[2] = {{ARG_FROM, from}, {ARG_TO, to}};
        ok = run(d, reorder, 2, r) && api->stream_wait(d->stream) == SUCCESS;
    }
    if (reorder) api->primitive_destroy(reorder);
    if (rpd) api->pd_destroy(rpd);
    if (to) api->memory_destroy(to);
    if (from) api->memory_destroy(from);
    kl_host_free(d->alloc, copy, bytes);
    return ok ? KL_OK : kl_error(KL_ERR_RUNTIME, "oneDNN failed to put a convolution's result back in row-major order");
}

/* The slot for reordered weights with these contents (-1: none, use the
 * scratch); *ready when they are there already. Weights are kept from their
 * second use on: training changes them every step, so nothing is kept there,
 * while inference reuses them from the second call. A slot being refilled has
 * id 0 until its reorder succeeds. */
static int weight_slot(kl_dnnl *d, kl_dnnl_conv *c, uint64_t id, size_t bytes, int *ready)
{
    *ready = 0;
    if (!id) return -1;
    for (int i = 0; i < WEIGHT_SLOTS; i++)
        if (c->weights[i].id == id) { *ready = 1; return i; }
    int seen = 0;
    for (int i = 0; i < WEIGHT_SLOTS; i++) seen |= c->seen[i] == id;
    if (!seen) {
        c->seen[c->next_seen] = id;
        c->next_seen = (c->next_seen + 1) % WEIGHT_SLOTS;
        return -1;
    }
    int i = c->next_slot;
    if (!c->weights[i].data && !(c->weights[i].data = kl_host_alloc(d->alloc, bytes))) return -1;
    c->next_slot = (i + 1) % WEIGHT_SLOTS;
    c->weights[i].id = 0;
    return i;
}

/* Points the epilogue's memories at its operands and adds their arguments;
 * a residual goes where the sum post-op reads it, the memory the primitive
 * writes (dst: out, or oneDNN's layout of it), before the convolution runs:
 * reordered, or copied when it is row-major there or kept in that layout. */
static int bind_epilogue(kl_dnnl *d, kl_dnnl_conv *c, const void *const *operands, void *dst, int residual_kept,
                         exec_arg *args, int *n_args)
{
    struct kl_dnnl_api *api = d->api;
    const kl_epilogue *e = &c->shape.epilogue;
    int ok = 1;
    for (int i = 0; ok && i < e->n; i++) {
        if (e->op[i] == KL_EPI_RELU) continue;
        if (e->op[i] != KL_EPI_RESIDUAL) {
            ok = api->memory_set_data_handle(c->post[i], (void *)operands[i]) == SUCCESS;
            args[(*n_args)++] = (exec_arg){ARG_POST_OP_BASE * (i + 1) | ARG_SRC_1, c->post[i]};
        } else if (c->residual_in && !residual_kept) {
            exec_arg r[2] = {{ARG_FROM, c->post[i]}, {ARG_TO, c->ops[2].inner}};
            ok = api->memory_set_data_handle(c->post[i], (void *)operands[i]) == SUCCESS &&
                 run(d, c->residual_in, 2, r);
        } else {
            dims_t dims;
            memcpy(dst, operands[i], activation(&c->shape, 1, dims));
        }
    }
    return ok;
}

kl_status kl_dnnl_conv_run(kl_dnnl *d, kl_dnnl_conv *c, const float *a, const float *b, float *out, void *scratch,
                           uint64_t weights_id, const void *const *epilogue, const kl_dnnl_kept *kept)
{
    struct kl_dnnl_api *api = d->api;
    kl_dnnl_kept none = {0, 0, 0};
    if (!kept) kept = &none;
    /* the plan kept arrays in this primitive's layouts, which a primitive
     * made again for the same shape has too */
    if ((kept->a && kept->a != c->layout[0]) || (kept->residual && kept->residual != c->layout[1]) ||
        (kept->out && kept->out != c->layout[1]))
        return kl_error(KL_ERR_RUNTIME, "internal: a convolution's arrays are not in the layouts planned");
    void *data[3] = {(void *)a, (void *)b, out};
    exec_arg args[3 + KL_MAX_EPILOGUE];
    int ok = 1, n_args = 3;
    void *dst = out;
    for (int i = 0; i < 3 && ok; i++) {
        operand *o = &c->ops[i];
        if ((i == 0 && kept->a) || (i == 2 && kept->out)) { /* already, or to be left, in the inner layout */
            ok = api->memory_set_data_handle(o->inner, data[i]) == SUCCESS;
            args[i] = (exec_arg){o->arg, o->inner};
            continue;
        }
        ok = api->memory_set_data_handle(o->user, data[i]) == SUCCESS;
        int ready = 0, slot = o->inner && i == 1 ? weight_slot(d, c, weights_id, o->inner_bytes, &ready) : -1;
        void *inner = slot >= 0 ? c->weights[slot].data : (char *)scratch + o->offset;
        if (ok && o->inner) ok = api->memory_set_data_handle(o->inner, inner) == SUCCESS;
        args[i] = (exec_arg){o->arg, o->inner ? o->inner : o->user};
        if (i == 2 && o->inner) dst = inner;
        if (ok && o->inner && i < 2 && !ready) {
            exec_arg r[2] = {{ARG_FROM, o->user}, {ARG_TO, o->inner}};
            ok = run(d, o->reorder, 2, r);
            if (ok && slot >= 0) c->weights[slot].id = weights_id;
        }
    }
    ok = ok && bind_epilogue(d, c, epilogue, dst, kept->residual != 0, args, &n_args);
    ok = ok && run(d, c->primitive, n_args, args);
    operand *o = &c->ops[2];
    if (ok && o->inner && !kept->out) {
        exec_arg r[2] = {{ARG_FROM, o->inner}, {ARG_TO, o->user}};
        ok = run(d, o->reorder, 2, r);
    }
    ok = ok && api->stream_wait(d->stream) == SUCCESS;
    return ok ? KL_OK : kl_error(KL_ERR_RUNTIME, "oneDNN failed to run a convolution");
}

kl_status kl_dnnl_sgemm(kl_dnnl *d, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const float *a,
                        int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc)
{
    if (d->api->sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc) != SUCCESS)
        return kl_error(KL_ERR_RUNTIME, "oneDNN's sgemm failed (%lld x %lld x %lld)", (long long)m, (long long)n,
                        (long long)k);
    return KL_OK;
}
