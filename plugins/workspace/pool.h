/* pool: the plugin's worker threads, so that walking a tree, reading a big file or
 * waiting for a command never blocks the gateway's loop. It starts with min threads and
 * grows to max when work is queued and no worker is idle (a long command holds its
 * worker for its whole run). pool_submit from any thread; pool_destroy joins every
 * worker after the queue is empty. */
#ifndef WS_POOL_H
#define WS_POOL_H

struct pool;

struct pool *pool_create(int min, int max);
/* Queues fn(arg). 0, or -1 (out of memory, or stopping): fn is then not called. */
int pool_submit(struct pool *P, void (*fn)(void *arg), void *arg);
/* Runs what is queued, then joins and frees. */
void pool_destroy(struct pool *P);

#endif
