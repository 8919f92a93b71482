#include "timerq.h"

#include <stddef.h>

/* Makes the later of two roots the first child of the earlier; returns the earlier. */
static struct tq_node *meld(struct tq_node *a, struct tq_node *b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	if (b->due < a->due) {
		struct tq_node *t = a;
		a = b;
		b = t;
	}
	b->next = a->child;
	if (a->child)
		a->child->prev = b;
	b->prev = a;
	a->child = b;
	a->next = a->prev = NULL;
	return a;
}

/* The two-pass pairing of a sibling list into one heap. */
static struct tq_node *merge_pairs(struct tq_node *first)
{
	struct tq_node *acc = NULL, *n = first;
	/* pass one, left to right: meld pairs, chaining the results backwards */
	while (n) {
		struct tq_node *a = n, *b = n->next;
		n = b ? b->next : NULL;
		a->next = a->prev = NULL;
		if (b)
			b->next = b->prev = NULL;
		struct tq_node *m = meld(a, b);
		m->next = acc;
		acc = m;
	}
	/* pass two, right to left: meld each into the result */
	struct tq_node *res = NULL;
	while (acc) {
		struct tq_node *next = acc->next;
		acc->next = NULL;
		res = meld(res, acc);
		acc = next;
	}
	return res;
}

void tq_insert(struct timerq *q, struct tq_node *n, int64_t due)
{
	tq_remove(q, n);
	n->child = n->next = n->prev = NULL;
	n->due = due;
	n->queued = 1;
	q->root = meld(q->root, n);
}

void tq_remove(struct timerq *q, struct tq_node *n)
{
	if (!n->queued)
		return;
	n->queued = 0;
	struct tq_node *sub = merge_pairs(n->child);
	if (n == q->root) {
		q->root = sub;
	} else {
		/* unlink n from its sibling list, then meld its children back in */
		if (n->prev->child == n)
			n->prev->child = n->next;
		else
			n->prev->next = n->next;
		if (n->next)
			n->next->prev = n->prev;
		q->root = meld(q->root, sub);
	}
	n->child = n->next = n->prev = NULL;
}
