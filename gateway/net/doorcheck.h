/* doorcheck: the rules of the front door (door.c) — what a client may send before
 * libwebsockets reads it. Request heads are checked as their bytes arrive, one head at a
 * time; after a WebSocket upgrade, the client's frames are checked header by header. A
 * head or frame that breaks a rule is refused with a status and a message naming the
 * problem, where libwebsockets 4.1.6 would close without an answer, wait for its head
 * timeout, answer a non-JSON 403, or accept it (an unmasked frame).
 * Pure: no lws, no I/O, no allocation. A state belongs to one stream and one thread at a
 * time. Fuzzed (tests/fuzz/fuzz_door.c) and tested at every split point
 * (tests/test_doorcheck.c). */
#ifndef AG_DOORCHECK_H
#define AG_DOORCHECK_H
#include <stddef.h>
#include <stdint.h>

/* The longest request head: request line, header lines and the empty line. */
#define DOORCHECK_HEAD_MAX 16384
/* Header lines plus query arguments of one request. libwebsockets 4.1.6 keeps a slot for
 * each known header line and each query argument (95 in all, a few for itself) and drops
 * the connection when they run out; every line is counted here, known or not. */
#define DOORCHECK_FIELDS_MAX 80
/* The longest close reason a refused frame is answered with (a close frame's payload
 * is at most 125 bytes: the code, then the reason). */
#define DOORCHECK_REASON_MAX 123

struct doorcheck_refusal {
	int status;        /* an HTTP status; for a frame, a WebSocket close code (1002) */
	const char *name;  /* the error's name in docs/API.md ("BadRequest", ...), static */
	char message[240]; /* names the problem; for a frame, at most DOORCHECK_REASON_MAX */
};

enum doorcheck_rc {
	DOORCHECK_REFUSED = -1,
	DOORCHECK_MORE = 0,    /* nothing wrong so far; the head is not complete */
	DOORCHECK_DONE = 1,    /* a complete head that may be passed on */
};

/* One request head. The fields above "results" are private. */
struct doorcheck_head {
	size_t pos;          /* bytes examined */
	int state;
	size_t tok;          /* start of the token being read (method, target, name, value) */
	size_t name, name_len; /* the current header line's name */
	int pct;             /* hex digits of a %XX escape read so far */
	unsigned char pct_val;
	int in_query;
	int fields;          /* header lines and query arguments so far */
	int lines;           /* lines so far, the request line included */
	unsigned seen;       /* headers seen (bits private to doorcheck.c) */
	/* results, set once doorcheck_head_feed returns DOORCHECK_DONE */
	size_t skip;         /* empty lines before the request line: not passed on */
	size_t len;          /* the head after them, its empty line included */
	int64_t content_length; /* -1 when there is none */
	int websocket;       /* a WebSocket upgrade (Upgrade: websocket) */
	char method[8];      /* GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS */
};

/* Readies h for the next head. */
void doorcheck_head_init(struct doorcheck_head *h);

/* buf holds the bytes received for this head so far: the same start on every call, len
 * growing. Bytes examined before are not examined again, so a head that arrives a byte
 * at a time costs what one arriving at once does. DONE: the head is buf[h->skip,
 * h->skip + h->len); bytes after it are its body or the next request and are not looked
 * at. REFUSED: r names the problem. A problem is refused at the byte that shows it (a
 * folded line at its first byte, an over-long head at byte DOORCHECK_HEAD_MAX + 1), so
 * the answer never waits for the end of the head, and the verdict does not depend on
 * how the bytes were split. */
int doorcheck_head_feed(struct doorcheck_head *h, const char *buf, size_t len,
			struct doorcheck_refusal *r);

/* A WebSocket client's stream after the upgrade. Zero it to start. */
struct doorcheck_ws {
	uint64_t payload_left; /* bytes of the current frame's payload still to come */
};

/* buf: client bytes not passed on yet, starting where the last call's count ended.
 * Returns how many of them may be passed on: payload, and frame headers once whole and
 * checked (an incomplete header is held back, and examined again with more bytes). When
 * the frame header at buf + the returned count is refused, *refused is set and r says
 * why (status 1002): a client frame without a mask (RFC 6455 section 5.1), or a length
 * with its most significant bit set. */
size_t doorcheck_ws_feed(struct doorcheck_ws *w, const unsigned char *buf, size_t len,
			 int *refused, struct doorcheck_refusal *r);

/* Writes the masked close frame a client would send with code and reason (at most
 * DOORCHECK_REASON_MAX bytes, cut there) into out, which has room for 131 bytes.
 * Returns its length. */
size_t doorcheck_ws_close_frame(unsigned char out[131], int code, const char *reason);

#endif
