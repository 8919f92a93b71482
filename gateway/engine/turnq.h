/* turnq: the rules of one session's turn queue, free of I/O so they are unit tested
 * alone. At most one turn runs; the rest wait in FIFO order. A new prompt is queued,
 * coalesced into a waiting/running turn with the same dedupe key, rejected, or it
 * interrupts the running turn. Items are embedded in the caller's turn objects.
 * Not thread-safe: the engine uses it on the loop thread only. */
#ifndef AG_TURNQ_H
#define AG_TURNQ_H
#include <stddef.h>

enum turn_policy { TURN_POLICY_QUEUE = 0, TURN_POLICY_INTERRUPT, TURN_POLICY_REJECT };

enum turnq_verdict {
	TURNQ_ENQUEUE,   /* append; runs when everything before it has ended */
	TURNQ_COALESCE,  /* a turn with the same dedupe key is waiting or running: reuse it */
	TURNQ_INTERRUPT, /* append, and the caller cancels the running turn */
	TURNQ_BUSY,      /* policy reject and the session has a running or waiting turn */
	TURNQ_FULL,      /* the queue already holds TURNQ_MAX waiting turns */
};

#define TURNQ_MAX 256

struct turnq_item {
	struct turnq_item *next;
	const char *dedupe_key; /* borrowed from the owning turn; NULL for none */
};

struct turnq {
	struct turnq_item *running;
	struct turnq_item *head, *tail; /* waiting, oldest first */
	size_t waiting;
};

/* Decides what a new prompt does; on TURNQ_COALESCE *match is the existing item. */
enum turnq_verdict turnq_decide(const struct turnq *q, enum turn_policy policy,
				const char *dedupe_key, struct turnq_item **match);
void turnq_push(struct turnq *q, struct turnq_item *it);
/* If nothing runs and something waits, makes the oldest waiting item the running one
 * and returns it; otherwise NULL. */
struct turnq_item *turnq_start_next(struct turnq *q);
/* The running item ended (any terminal state). */
void turnq_finish(struct turnq *q);
/* Puts it first in line, before every waiting item (a compaction run in front of the
 * turn it makes room for). Not bounded by TURNQ_MAX: the engine's own, not a prompt. */
void turnq_push_front(struct turnq *q, struct turnq_item *it);
/* The running item goes back to the front of the line, to run again when it is next
 * (its request is retried after a compaction put in front of it). */
void turnq_requeue(struct turnq *q);
/* Removes a waiting item (cancelled before it ran); returns 0, or -1 if absent. */
int turnq_remove(struct turnq *q, struct turnq_item *it);
int turnq_busy(const struct turnq *q);
int turnq_policy_parse(const char *s, enum turn_policy *out);

#endif
