/* outbox: the webhook's bounded FIFO between the observer thread (which must never
 * wait on the network) and the sender thread. push never blocks for long and drops the
 * newest item when the box is full; pop and sleep wait on a condition that stop ends.
 * Any thread. */
#ifndef AG_OUTBOX_H
#define AG_OUTBOX_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct outbox_item {
	char *type;  /* the event's type */
	char *body;  /* the event's JSON */
	int64_t seq;
};

struct outbox {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct outbox_item *ring;
	size_t cap, head, len;
	uint64_t dropping; /* dropped since the last push that fit */
	int stop;
};

int outbox_init(struct outbox *o, size_t cap);
/* Frees what is still queued; returns how many items that was. */
size_t outbox_free(struct outbox *o);
/* Queues copies of type and body. 0, or the number dropped in a row so far (this one
 * included) when the box is full; *was_dropping gets the count of a streak that this
 * push ended (0 if none). -1 when out of memory (dropped too). */
long long outbox_push(struct outbox *o, const char *type, int64_t seq, const char *body,
		      size_t len, uint64_t *was_dropping);
/* Waits for the oldest item and takes it (the caller frees it with outbox_item_free):
 * 0, or -1 once stop was called. */
int outbox_pop(struct outbox *o, struct outbox_item *it);
/* Waits ms or until stop: 1 when stopping. */
int outbox_sleep(struct outbox *o, int64_t ms);
void outbox_stop(struct outbox *o);
int outbox_stopping(struct outbox *o);
void outbox_item_free(struct outbox_item *it);

#endif
