/* evlog: the event log behind the bus — seq numbering (reserved durably ahead of use,
 * so a restart never reuses a seq a client saw), a ring of recent events, persistence
 * to the store a batch per commit, and replay from a seq (store pages, then the ring).
 * A shared log for several nodes replaces this one behind the same functions; the
 * fan-out (bus.c) does not change. Loop thread only. */
#ifndef AG_EVLOG_H
#define AG_EVLOG_H
#include <stddef.h>
#include <stdint.h>

#include "bus.h"

struct store;
struct evlog;

/* ring_size: events kept in memory for replay; keep: events kept in the store (none
 * without a store). NULL when out of memory. */
struct evlog *evlog_create(struct store *S, size_t ring_size, int64_t keep);
void evlog_destroy(struct evlog *G);
/* The seq the next event gets, reserved before it is used. */
int64_t evlog_next_seq(struct evlog *G);
/* Keeps ev (a reference is taken); its seq is the one evlog_next_seq gave. */
void evlog_append(struct evlog *G, struct event *ev);
int64_t evlog_last_seq(struct evlog *G);
int64_t evlog_oldest_seq(struct evlog *G);
/* As bus_replay. */
int evlog_replay(struct evlog *G, int64_t since, const char *session_id, int descendants,
		 bus_fn fn, void *arg, int max, int64_t *upto);
/* Hands the events not yet stored to the store's open batch (its flush hook; the ring
 * calls it too before dropping one). */
void evlog_persist(void *log);

#endif
