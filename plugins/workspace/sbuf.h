/* sbuf: a growing text buffer. Appending after a failed allocation does nothing and
 * sbuf_take then returns NULL, so callers check once, at the end. One owner. */
#ifndef WS_SBUF_H
#define WS_SBUF_H

#include <stddef.h>

struct sbuf {
	char *p;
	size_t len, cap;
	int failed;
};

void sbuf_add(struct sbuf *b, const char *s, size_t n);
void sbuf_puts(struct sbuf *b, const char *s);
void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The text (NUL-terminated, malloc'd; *len if not NULL), or NULL if anything failed.
 * The buffer is empty afterwards. */
char *sbuf_take(struct sbuf *b, size_t *len);
void sbuf_free(struct sbuf *b);

#endif
