/* subscriber: one client's view of the bus, shared by SSE and WebSocket. It filters by
 * session (and subtree), replays from a sequence number a page at a time (so catching
 * up never needs an unbounded queue), then follows live events in a queue bounded by
 * what a client can take: bytes queued and how far behind the newest event its oldest
 * unsent one is (bus_sub_limits) — a burst that a reader keeping up with the steady
 * rate absorbs never cuts it off, however many events it holds. A client past either
 * bound is marked for disconnection: it must not slow the others, and it can come back
 * with `since`. Loop thread only. */
#ifndef AG_SUBSCRIBER_H
#define AG_SUBSCRIBER_H
#include <stddef.h>
#include <stdint.h>

#include "bus.h"

#define SUB_PAGE 1024 /* events replayed per page */

struct subscriber {
	struct bus_sub sub;
	struct bus *B;
	char *session_id; /* NULL: every session */
	int descendants;
	int catching_up;  /* replaying history; live events are picked up by the replay */
	int64_t queued_seq; /* newest seq queued or examined */
	int64_t sent_seq;   /* newest seq the transport wrote (resume point) */
	struct event **q;  /* a ring of cap references, n of them from head */
	size_t head, n, cap;
	size_t bytes;      /* JSON bytes queued */
	int overflow;      /* 1: over max_bytes, 2: over max_behind_ms */
	struct event *resync; /* a resync notice to send first */
	void (*wake)(struct subscriber *s); /* asks the transport for a writable callback */
};

/* since < 0: live events only. session_id may be NULL. 0, or -1 (out of memory). */
int subscriber_start(struct subscriber *s, struct bus *B, const char *session_id,
		     int descendants, int64_t since, void (*wake)(struct subscriber *s));
void subscriber_stop(struct subscriber *s);
/* The next event to send (the caller owns the reference), or NULL. */
struct event *subscriber_next(struct subscriber *s);
int subscriber_pending(const struct subscriber *s);
/* Why an overflowed subscriber was cut off, for its client: "more than N ms behind". */
void subscriber_why(const struct subscriber *s, char *buf, size_t n);

#endif
