/* natslink_int: what the other libnats users of bus/ (natslog.c) need of the link: its
 * connection and word of its state changes. Only gateway/bus/nats*.c include this (it
 * includes libnats). */
#ifndef AG_NATSLINK_INT_H
#define AG_NATSLINK_INT_H
#include <nats/nats.h>

#include "natslink.h"

/* The connection (never NULL once natslink_open returned). Thread-safe (libnats). */
natsConnection *natslink_nc(struct natslink *N);
/* 1 while connected. Any thread. */
int natslink_up(struct natslink *N);

enum natslink_event {
	NATSLINK_UP,    /* connected, first time or again */
	NATSLINK_DOWN,  /* the connection was lost */
	NATSLINK_ASYNC, /* an asynchronous error on sub (a consumer's missed heartbeats) */
};
/* One watcher (natslog): fn runs on libnats' threads (not the loop), so it only takes
 * its own locks and signals; it must not call back into the link. Set before anything
 * can happen: right after natslink_open. */
typedef void (*natslink_watch_fn)(void *arg, enum natslink_event ev, natsSubscription *sub,
				  natsStatus s);
void natslink_watch(struct natslink *N, natslink_watch_fn fn, void *arg);

#endif
