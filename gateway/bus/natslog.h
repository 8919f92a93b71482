/* natslog: the event log of a node among several, on NATS JetStream. Every event this
 * node publishes goes to the stream AGENTGATE (subjects ag.ev.<rootID>, file storage,
 * at most `keep` messages), asynchronously: a publisher thread sends what the loop
 * queued, in order, each with a Nats-Msg-Id so a resend after a lost ack is stored once,
 * and resends from the oldest unacknowledged after a reconnect or an ack timeout. The
 * queue is bounded in bytes; past it new events are dropped, counted, logged, and local
 * subscribers get a resync notice. The stream's sequence is the event's seq: the JSON
 * travels without it and it is spliced in when the event comes back. One consumer per
 * node, in stream order from the stream's end at start (re-created from the last
 * delivered seq after a reconnect, a gap or missed heartbeats), feeds the ring and the
 * bus's subscribers: every node delivers every node's events once, in seq order.
 * Replay serves the ring, older events from JetStream (bounded in count and time).
 * Loop thread only, except where a function says otherwise. */
#ifndef AG_NATSLOG_H
#define AG_NATSLOG_H
#include <stddef.h>
#include <stdint.h>

#include "bus.h"

struct natslog;
struct loop;
struct err;

struct natslog *natslog_create(struct loop *L, struct bus *B, const char *url,
			       const char *node, size_t ring_size, int64_t keep,
			       size_t max_pending, struct err *e);
void natslog_destroy(struct natslog *G);
/* Queues an event (json without its seq; "seq":N, goes in at offset at): 0, or -1 when
 * out of memory. An event over the bound is dropped (and counted): still 0. */
int64_t natslog_publish(struct natslog *G, const char *json, size_t len, size_t at,
			const char *type, const struct bus_env *env);
int64_t natslog_last_seq(struct natslog *G);
int64_t natslog_oldest_seq(struct natslog *G);
/* As bus_replay. */
int natslog_replay(struct natslog *G, int64_t since, const char *session_id, int descendants,
		   bus_fn fn, void *arg, int max, int64_t *upto);
struct natslink *natslog_link(struct natslog *G);
/* This node's events accepted and not delivered back yet (bus_unsettled). */
int64_t natslog_unsettled(struct natslog *G);
/* This node's events published so far (a mark), and whether all of them up to a mark
 * came back (or were dropped as too big). */
uint64_t natslog_mark(struct natslog *G);
int natslog_settled(struct natslog *G, uint64_t mark);
void natslog_info(struct natslog *G, struct bus_nats_info *out);

#endif
