#define _POSIX_C_SOURCE 200809L
#include "outbox.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int outbox_init(struct outbox *o, size_t cap)
{
	memset(o, 0, sizeof(*o));
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int rc = pthread_cond_init(&o->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (rc)
		return -1;
	pthread_mutex_init(&o->mu, NULL);
	o->cap = cap;
	o->ring = calloc(cap, sizeof(*o->ring));
	return o->ring ? 0 : -1;
}

size_t outbox_free(struct outbox *o)
{
	size_t n = o->len;
	for (size_t i = 0; i < o->len; i++)
		outbox_item_free(&o->ring[(o->head + i) % o->cap]);
	free(o->ring);
	pthread_cond_destroy(&o->cv);
	pthread_mutex_destroy(&o->mu);
	memset(o, 0, sizeof(*o));
	return n;
}

void outbox_item_free(struct outbox_item *it)
{
	free(it->type);
	free(it->body);
	memset(it, 0, sizeof(*it));
}

long long outbox_push(struct outbox *o, const char *type, int64_t seq, const char *body,
		      size_t len, uint64_t *was_dropping)
{
	struct outbox_item it = {.type = strdup(type), .body = malloc(len + 1), .seq = seq};
	long long rc = 0;
	*was_dropping = 0;
	if (!it.type || !it.body) {
		outbox_item_free(&it);
		return -1;
	}
	memcpy(it.body, body, len);
	it.body[len] = 0;
	pthread_mutex_lock(&o->mu);
	if (o->len == o->cap) {
		rc = (long long)++o->dropping;
	} else {
		o->ring[(o->head + o->len++) % o->cap] = it;
		*was_dropping = o->dropping;
		o->dropping = 0;
		pthread_cond_signal(&o->cv);
	}
	pthread_mutex_unlock(&o->mu);
	if (rc)
		outbox_item_free(&it);
	return rc;
}

int outbox_pop(struct outbox *o, struct outbox_item *it)
{
	pthread_mutex_lock(&o->mu);
	while (!o->len && !o->stop)
		pthread_cond_wait(&o->cv, &o->mu);
	int rc = o->stop ? -1 : 0;
	if (!rc) {
		*it = o->ring[o->head];
		o->head = (o->head + 1) % o->cap;
		o->len--;
	}
	pthread_mutex_unlock(&o->mu);
	return rc;
}

int outbox_sleep(struct outbox *o, int64_t ms)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += (time_t)(ms / 1000);
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&o->mu);
	int rc = 0;
	while (!o->stop && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&o->cv, &o->mu, &until);
	int stop = o->stop;
	pthread_mutex_unlock(&o->mu);
	return stop;
}

void outbox_stop(struct outbox *o)
{
	pthread_mutex_lock(&o->mu);
	o->stop = 1;
	pthread_cond_broadcast(&o->cv);
	pthread_mutex_unlock(&o->mu);
}

int outbox_stopping(struct outbox *o)
{
	pthread_mutex_lock(&o->mu);
	int stop = o->stop;
	pthread_mutex_unlock(&o->mu);
	return stop;
}
