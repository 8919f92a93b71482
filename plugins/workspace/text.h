/* text: what the tools do to bytes before a model reads them — refuse binary files,
 * keep UTF-8 valid, cut long lines. No state; any thread. */
#ifndef WS_TEXT_H
#define WS_TEXT_H

#include <stddef.h>

/* Does a file named name whose first bytes are p[0..n) look binary? By extension
 * (archives, objects, images...) or content (a NUL byte, or over 30% control bytes).
 * When it does, why (wn bytes) says which. */
int text_is_binary(const char *name, const unsigned char *p, size_t n, char *why, size_t wn);

/* The length of the longest prefix of p[0..n) that does not end inside a UTF-8
 * sequence (so a cut there keeps the text valid). */
size_t text_utf8_cut(const char *p, size_t n);

/* A malloc'd, NUL-terminated copy of p[0..n) with every invalid UTF-8 sequence and NUL
 * byte replaced by U+FFFD; NULL when out of memory. *out_len (may be NULL) its length. */
char *text_utf8_clean(const char *p, size_t n, size_t *out_len);

#endif
