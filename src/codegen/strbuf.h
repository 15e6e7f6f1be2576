/* strbuf.h: a growable text buffer for generated source. */
#ifndef KL_STRBUF_H
#define KL_STRBUF_H

#include <stddef.h>

typedef struct {
    char *data;
    size_t len, cap;
    int failed; /* an allocation failed; the text is incomplete */
} kl_strbuf;

void kl_sb_printf(kl_strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kl_sb_append(kl_strbuf *sb, const char *text);
/* Appends n spaces (indentation without printf's slow '*' width path). */
void kl_sb_indent(kl_strbuf *sb, int n);
void kl_sb_free(kl_strbuf *sb);
/* Hands over the text (caller frees) and resets sb. */
char *kl_sb_take(kl_strbuf *sb);

#endif
