#include "pool.h"

#include <pthread.h>
#include <stdlib.h>

struct work {
	struct work *next;
	void (*fn)(void *arg);
	void *arg;
};

struct pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct work *head, *tail;
	pthread_t *threads;
	int nthreads, max, idle, queued, stopping;
};

static void *worker(void *arg)
{
	struct pool *P = arg;
	pthread_mutex_lock(&P->mu);
	for (;;) {
		while (!P->head && !P->stopping) {
			P->idle++;
			pthread_cond_wait(&P->cv, &P->mu);
			P->idle--;
		}
		struct work *w = P->head;
		if (!w)
			break; /* stopping with nothing queued */
		P->head = w->next;
		P->queued--;
		if (!P->head)
			P->tail = NULL;
		pthread_mutex_unlock(&P->mu);
		w->fn(w->arg);
		free(w);
		pthread_mutex_lock(&P->mu);
	}
	pthread_mutex_unlock(&P->mu);
	return NULL;
}

/* With P->mu held. */
static int grow(struct pool *P)
{
	if (P->nthreads >= P->max)
		return -1;
	if (pthread_create(&P->threads[P->nthreads], NULL, worker, P))
		return -1;
	P->nthreads++;
	return 0;
}

struct pool *pool_create(int min, int max)
{
	struct pool *P = calloc(1, sizeof(*P));
	if (!P || !(P->threads = calloc((size_t)max, sizeof(pthread_t)))) {
		free(P);
		return NULL;
	}
	pthread_mutex_init(&P->mu, NULL);
	pthread_cond_init(&P->cv, NULL);
	P->max = max;
	pthread_mutex_lock(&P->mu);
	while (P->nthreads < min && grow(P) == 0)
		;
	int ok = P->nthreads > 0;
	pthread_mutex_unlock(&P->mu);
	if (!ok) {
		pool_destroy(P);
		return NULL;
	}
	return P;
}

int pool_submit(struct pool *P, void (*fn)(void *arg), void *arg)
{
	struct work *w = malloc(sizeof(*w));
	if (!w)
		return -1;
	*w = (struct work){NULL, fn, arg};
	pthread_mutex_lock(&P->mu);
	if (P->stopping) {
		pthread_mutex_unlock(&P->mu);
		free(w);
		return -1;
	}
	if (P->tail)
		P->tail->next = w;
	else
		P->head = w;
	P->tail = w;
	if (++P->queued > P->idle)
		grow(P); /* at max, the work waits for a worker */
	pthread_cond_signal(&P->cv);
	pthread_mutex_unlock(&P->mu);
	return 0;
}

void pool_destroy(struct pool *P)
{
	if (!P)
		return;
	pthread_mutex_lock(&P->mu);
	P->stopping = 1;
	pthread_cond_broadcast(&P->cv);
	int n = P->nthreads;
	pthread_mutex_unlock(&P->mu);
	for (int i = 0; i < n; i++)
		pthread_join(P->threads[i], NULL);
	pthread_mutex_destroy(&P->mu);
	pthread_cond_destroy(&P->cv);
	free(P->threads);
	free(P);
}
