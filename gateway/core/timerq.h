/* timerq: the loop's timers in order of their deadlines — a pairing heap threaded
 * through the timers themselves, so arming never allocates and cannot fail. Insert is
 * O(1), removing the first or any other timer O(log n) amortised. Pure; the owner
 * (loop.c) serialises access. */
#ifndef AG_TIMERQ_H
#define AG_TIMERQ_H
#include <stdint.h>

struct tq_node {
	struct tq_node *child, *next; /* first child; next sibling */
	struct tq_node *prev;         /* previous sibling, or the parent of a first child */
	int64_t due;                  /* the deadline (any monotonic unit) */
	int queued;
};

struct timerq {
	struct tq_node *root;
};

void tq_insert(struct timerq *q, struct tq_node *n, int64_t due);
/* Removes n if it is queued (idempotent). */
void tq_remove(struct timerq *q, struct tq_node *n);
/* The node with the earliest deadline, or NULL. */
static inline struct tq_node *tq_first(const struct timerq *q)
{
	return q->root;
}

#endif
