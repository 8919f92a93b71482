/* outcap: a command's output kept within a bound — its first bytes and its last ones,
 * with a note saying how much was cut between them. A model needs both ends: what a
 * command started with and how it ended (the error, the summary). Not thread-safe: one
 * owner at a time. */
#ifndef WS_OUTCAP_H
#define WS_OUTCAP_H

#include <stddef.h>
#include <stdint.h>

struct outcap {
	size_t head_max, tail_max;
	char *head, *tail; /* tail: a ring of tail_max bytes */
	size_t head_len, tail_len, tail_pos; /* tail_pos: where the oldest tail byte is */
	uint64_t total; /* every byte added */
};

/* Keeps at most max bytes (a third from the start, the rest from the end). 0 or -1. */
int outcap_init(struct outcap *c, size_t max);
void outcap_free(struct outcap *c);
void outcap_add(struct outcap *c, const char *p, size_t n);
/* Were bytes dropped? */
int outcap_truncated(const struct outcap *c);
/* The kept text (malloc'd, valid UTF-8, NUL-terminated): everything when nothing was
 * dropped, else head + "\n\n... [N bytes of output cut: the first H and the last T of B
 * bytes are shown] ...\n\n" + tail. NULL when out of memory. */
char *outcap_text(const struct outcap *c);
/* Only the last at most max bytes (for live progress), malloc'd, valid UTF-8. */
char *outcap_tail(const struct outcap *c, size_t max);

#endif
