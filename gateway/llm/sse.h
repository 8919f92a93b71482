/* sse: incremental parser for Server-Sent Events (text/event-stream), following the
 * WHATWG EventSource parsing rules. Bytes are fed in chunks of any size and split;
 * complete events (and comments, e.g. keep-alives) are reported through callbacks.
 * Ownership: the parser owns its buffers; every pointer handed to a callback is valid
 * only during that call (copy what you keep). Threading: a parser is used by one
 * thread at a time; distinct parsers are independent. Depends on libc only. */
#ifndef AG_SSE_H
#define AG_SSE_H
#include <stddef.h>
#include <stdint.h>

#define SSE_DEFAULT_MAX_LINE 65536 /* used when sse_init is given max_line 0 */

enum sse_err {
	SSE_OK = 0,
	SSE_ERR_NOMEM = -1,          /* an allocation failed */
	SSE_ERR_LINE_TOO_LONG = -2,  /* a line exceeded max_line bytes */
	SSE_ERR_EVENT_TOO_BIG = -3,  /* an event's data exceeded 4 * max_line bytes */
	SSE_ERR_INVAL = -4,          /* NULL parser, or NULL buffer with a non-zero length */
};

struct sse_event {
	const char *type; /* NUL-terminated; "" (type_len 0) means the default "message" */
	size_t type_len;
	const char *data; /* data lines joined with "\n"; NUL-terminated, may hold NULs */
	size_t data_len;
	const char *id;   /* last event id seen on the stream (persists); "" if none */
	int64_t retry_ms; /* last valid retry value seen on the stream (persists); -1 if none */
};

/* Return 0 to go on; any other value stops parsing and sse_feed returns it (use
 * positive values, or negatives distinct from enum sse_err). */
typedef int (*sse_event_cb)(void *arg, const struct sse_event *ev);
/* A comment line (":..."): text is what follows the colon, NOT NUL-terminated.
 * Same return convention as sse_event_cb. */
typedef int (*sse_comment_cb)(void *arg, const char *text, size_t len);

struct sse_buf {
	char *p;
	size_t len, cap;
};

/* Fields are private; use the functions below. */
struct sse_parser {
	size_t max_line;
	sse_event_cb cb;
	sse_comment_cb comment_cb;
	void *arg;
	struct sse_buf line; /* an unterminated line carried over from the last chunk */
	struct sse_buf data; /* data lines, each followed by '\n' */
	struct sse_buf type;
	struct sse_buf id;
	int64_t retry_ms;
	int err;             /* sticky: an error or callback abort; cleared by sse_reset */
	unsigned char bom;   /* bytes of a leading BOM matched so far; 3 once past it */
	unsigned char cr;    /* the last chunk ended with CR: skip an LF that follows */
};

/* Prepares p; allocates nothing yet. max_line 0 selects SSE_DEFAULT_MAX_LINE.
 * cb may be NULL (events are parsed and dropped); arg is passed to both callbacks. */
void sse_init(struct sse_parser *p, size_t max_line, sse_event_cb cb, void *arg);
/* Optional comment callback (NULL to stop reporting); shares the arg given to sse_init. */
void sse_set_comment_cb(struct sse_parser *p, sse_comment_cb cb);
/* Parses the next len bytes of the stream, calling the callbacks for what completes.
 * Returns 0, a negative enum sse_err, or a callback's non-zero value. Errors and aborts
 * are sticky: later sse_feed/sse_finish calls return the same value until sse_reset.
 * Do not call sse_feed, sse_reset or sse_free on p from inside a callback. */
int sse_feed(struct sse_parser *p, const char *buf, size_t len);
/* End of stream: an unterminated line and an undispatched event are discarded (per
 * spec). The last event id and retry persist; the next sse_feed starts a new stream
 * (a leading BOM is skipped again), as on an EventSource reconnection.
 * Returns 0 or the sticky error. */
int sse_finish(struct sse_parser *p);
/* Forgets everything (pending data, last event id, retry, error) but keeps the
 * callbacks, max_line and allocated buffers, for a new independent stream. */
void sse_reset(struct sse_parser *p);
/* Releases the buffers and forgets the state as sse_reset does. Safe to call twice;
 * p may then be fed again (buffers are reallocated) or given to sse_init. */
void sse_free(struct sse_parser *p);
/* The last event id set by the stream ("" if none) and the last retry (-1 if none),
 * including those from blocks that dispatched no event. */
const char *sse_last_event_id(const struct sse_parser *p);
int64_t sse_retry_ms(const struct sse_parser *p);
/* A static message for an enum sse_err; other non-zero values read as a callback abort. */
const char *sse_strerror(int err);

#endif
