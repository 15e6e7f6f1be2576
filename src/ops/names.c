/* names.c: op names generated from kiln_ops.def, and lookups by name. */
#include "kiln.h"
#include "core/error.h"
#include <string.h>

static const char *const unary_names[] = {
#define KL_UNARY(ID, name, traits) #name,
#include "kiln_ops.def"
#undef KL_UNARY
};
static const char *const binary_names[] = {
#define KL_BINARY(ID, name, traits) #name,
#include "kiln_ops.def"
#undef KL_BINARY
};
static const char *const reduce_names[] = {
#define KL_REDUCE(ID, name, scatter) #name,
#include "kiln_ops.def"
#undef KL_REDUCE
};
static const char *const scatter_names[] = {
#define KL_REDUCE(ID, name, scatter) #scatter,
#include "kiln_ops.def"
#undef KL_REDUCE
};

static const int unary_traits[] = {
#define KL_UNARY(ID, name, traits) traits,
#include "kiln_ops.def"
#undef KL_UNARY
};
static const int binary_traits[] = {
#define KL_BINARY(ID, name, traits) traits,
#include "kiln_ops.def"
#undef KL_BINARY
};

int kl_unary_traits(kl_unary_op op) { return (unsigned)op < KL_UNARY_COUNT ? unary_traits[op] : 0; }
int kl_binary_traits(kl_binary_op op) { return (unsigned)op < KL_BINARY_COUNT ? binary_traits[op] : 0; }

const char *kl_unary_name(kl_unary_op op) { return (unsigned)op < KL_UNARY_COUNT ? unary_names[op] : "?"; }
const char *kl_binary_name(kl_binary_op op) { return (unsigned)op < KL_BINARY_COUNT ? binary_names[op] : "?"; }
const char *kl_reduce_name(kl_reduce_op op) { return (unsigned)op < KL_REDUCE_COUNT ? reduce_names[op] : "?"; }

static int find(const char *const *names, int n, const char *name)
{
    for (int i = 0; name && i < n; i++)
        if (strcmp(names[i], name) == 0) return i;
    return -1;
}

kl_status kl_unary_from_name(const char *name, kl_unary_op *out)
{
    KL_ARG(out, "kl_unary_from_name", "out");
    int i = find(unary_names, KL_UNARY_COUNT, name);
    if (i < 0) return kl_error(KL_ERR_VALUE, "unknown unary op '%s'", name ? name : "(null)");
    *out = (kl_unary_op)i;
    return KL_OK;
}

kl_status kl_binary_from_name(const char *name, kl_binary_op *out)
{
    KL_ARG(out, "kl_binary_from_name", "out");
    static const struct { const char *alias; kl_binary_op op; } aliases[] = {
        {"sub", KL_SUB}, {"mul", KL_MUL}, {"div", KL_DIV}, {"truediv", KL_DIV},
        {"floordiv", KL_FLOOR_DIVIDE}, {"atan2", KL_ARCTAN2},
    };
    int i = find(binary_names, KL_BINARY_COUNT, name);
    if (i >= 0) { *out = (kl_binary_op)i; return KL_OK; }
    for (size_t k = 0; name && k < sizeof aliases / sizeof aliases[0]; k++)
        if (strcmp(aliases[k].alias, name) == 0) { *out = aliases[k].op; return KL_OK; }
    return kl_error(KL_ERR_VALUE, "unknown binary op '%s'", name ? name : "(null)");
}

kl_status kl_reduce_from_name(const char *name, kl_reduce_op *out)
{
    KL_ARG(out, "kl_reduce_from_name", "out");
    static const struct { const char *alias; kl_reduce_op op; } aliases[] = {
        {"mul", KL_REDUCE_PROD}, {"maximum", KL_REDUCE_MAX}, {"minimum", KL_REDUCE_MIN},
        {"and", KL_REDUCE_ALL}, {"or", KL_REDUCE_ANY}, {"add", KL_REDUCE_SUM},
    };
    int i = find(reduce_names, KL_REDUCE_COUNT, name);
    if (i < 0) i = find(scatter_names, KL_REDUCE_COUNT, name);
    if (i >= 0 && name && strcmp(name, "-") != 0) { *out = (kl_reduce_op)i; return KL_OK; }
    for (size_t k = 0; name && k < sizeof aliases / sizeof aliases[0]; k++)
        if (strcmp(aliases[k].alias, name) == 0) { *out = aliases[k].op; return KL_OK; }
    return kl_error(KL_ERR_VALUE, "unknown reduce op '%s' (expected sum, prod, max, min, mean, "
                    "any, all, bitwise_and, bitwise_or, bitwise_xor, logical_xor or add, multiply, "
                    "maximum, minimum, logical_or, logical_and)",
                    name ? name : "(null)");
}
