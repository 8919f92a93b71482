#include "turnq.h"

#include <string.h>

static int same_key(const struct turnq_item *it, const char *key)
{
	return it && it->dedupe_key && !strcmp(it->dedupe_key, key);
}

enum turnq_verdict turnq_decide(const struct turnq *q, enum turn_policy policy,
				const char *dedupe_key, struct turnq_item **match)
{
	if (match)
		*match = NULL;
	if (dedupe_key && *dedupe_key) {
		if (same_key(q->running, dedupe_key)) {
			if (match)
				*match = q->running;
			return TURNQ_COALESCE;
		}
		for (struct turnq_item *it = q->head; it; it = it->next) {
			if (same_key(it, dedupe_key)) {
				if (match)
					*match = it;
				return TURNQ_COALESCE;
			}
		}
	}
	if (policy == TURN_POLICY_REJECT && turnq_busy(q))
		return TURNQ_BUSY;
	if (q->waiting >= TURNQ_MAX)
		return TURNQ_FULL;
	if (policy == TURN_POLICY_INTERRUPT && q->running)
		return TURNQ_INTERRUPT;
	return TURNQ_ENQUEUE;
}

void turnq_push(struct turnq *q, struct turnq_item *it)
{
	it->next = NULL;
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	q->waiting++;
}

struct turnq_item *turnq_start_next(struct turnq *q)
{
	if (q->running || !q->head)
		return NULL;
	struct turnq_item *it = q->head;
	q->head = it->next;
	if (!q->head)
		q->tail = NULL;
	it->next = NULL;
	q->waiting--;
	q->running = it;
	return it;
}

void turnq_finish(struct turnq *q)
{
	q->running = NULL;
}

void turnq_push_front(struct turnq *q, struct turnq_item *it)
{
	it->next = q->head;
	q->head = it;
	if (!q->tail)
		q->tail = it;
	q->waiting++;
}

void turnq_requeue(struct turnq *q)
{
	struct turnq_item *it = q->running;
	q->running = NULL;
	if (it)
		turnq_push_front(q, it);
}

int turnq_remove(struct turnq *q, struct turnq_item *it)
{
	struct turnq_item *prev = NULL;
	for (struct turnq_item *cur = q->head; cur; prev = cur, cur = cur->next) {
		if (cur != it)
			continue;
		if (prev)
			prev->next = cur->next;
		else
			q->head = cur->next;
		if (q->tail == cur)
			q->tail = prev;
		cur->next = NULL;
		q->waiting--;
		return 0;
	}
	return -1;
}

int turnq_busy(const struct turnq *q)
{
	return q->running || q->head;
}

int turnq_policy_parse(const char *s, enum turn_policy *out)
{
	if (!s || !strcmp(s, "queue"))
		*out = TURN_POLICY_QUEUE;
	else if (!strcmp(s, "interrupt"))
		*out = TURN_POLICY_INTERRUPT;
	else if (!strcmp(s, "reject"))
		*out = TURN_POLICY_REJECT;
	else
		return -1;
	return 0;
}
