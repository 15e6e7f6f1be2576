/* strbuf.c: the growable text buffer behind code generation. */
#include "codegen/strbuf.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reserve(kl_strbuf *sb, size_t extra)
{
    if (sb->failed) return 0;
    if (sb->len + extra + 1 <= sb->cap) return 1;
    size_t cap = sb->cap ? sb->cap : 256;
    while (cap < sb->len + extra + 1) cap *= 2;
    char *p = realloc(sb->data, cap);
    if (!p) { sb->failed = 1; return 0; }
    sb->data = p;
    sb->cap = cap;
    return 1;
}

void kl_sb_printf(kl_strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(sb, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

void kl_sb_append(kl_strbuf *sb, const char *text)
{
    size_t n = strlen(text);
    if (!reserve(sb, n)) return;
    memcpy(sb->data + sb->len, text, n + 1);
    sb->len += n;
}

void kl_sb_free(kl_strbuf *sb)
{
    free(sb->data);
    sb->data = NULL;
    sb->len = sb->cap = 0;
    sb->failed = 0;
}

char *kl_sb_take(kl_strbuf *sb)
{
    char *p = sb->data;
    if (!p) p = calloc(1, 1);
    sb->data = NULL;
    sb->len = sb->cap = 0;
    return p;
}

void kl_sb_indent(kl_strbuf *sb, int n)
{
    static const char spaces[] = "                                                                ";
    while (n > 0) {
        int k = n < (int)sizeof spaces - 1 ? n : (int)sizeof spaces - 1;
        kl_sb_append(sb, spaces + (sizeof spaces - 1 - (size_t)k));
        n -= k;
    }
}
