/* lease: which node runs each session tree when several gateway nodes share one
 * PostgreSQL store (store_open_as). A lease is a row (root session id, node, expiry);
 * a node renews all of its leases in one statement, and a lease past its expiry is
 * free for any node to take. The node table says who is there (heartbeat, draining).
 * Time is PostgreSQL's clock, so the nodes' clocks do not matter.
 *
 * Each call is one round trip on the lease's own connection (not the store's, whose
 * transactions are pipelined), bounded by LEASE_IO_MS; a lost connection is made again
 * at the next call. Loop thread only; strings passed in are borrowed for the call. */
#ifndef AG_LEASE_H
#define AG_LEASE_H
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define LEASE_IO_MS 2000
#define LEASE_NODE_MAX 64 /* a node's name, its NUL included */

struct lease;

/* Connects to the PostgreSQL URL as node (its schema: store_pg.c's migration 2, which
 * the store has run). url_of_node is how the node is reached (for GET /global/health;
 * NULL: unknown).
 * NULL with e (ERR_UNAVAILABLE: PostgreSQL cannot be reached). */
struct lease *lease_open(const char *url, const char *node, const char *url_of_node,
			 int64_t expiry_ms, struct err *e);
void lease_close(struct lease *Ls);
int64_t lease_expiry_ms(const struct lease *Ls);
const char *lease_node(const struct lease *Ls);

/* Takes root's lease for this node: a free one, one already ours (renewed), and with
 * take_over an expired one of another node, which fences that node (lease_renew). 0: ours; 1: another node's (its name in
 * owner, LEASE_NODE_MAX bytes); -1 and e (ERR_UNAVAILABLE naming PostgreSQL's error). */
int lease_take(struct lease *Ls, const char *root, int take_over, char *owner,
	       struct err *e);
/* Renews every lease that still names this node, expired or not (nobody took it), and
 * calls fn with each root: the number held, or -1 and e (nothing renewed), or
 * LEASE_FENCED: another node took an expired lease of this one over, which fenced this
 * node (its commits are refused: store.h); the process is to stop. Also the node's
 * heartbeat. A node may only take expired leases over once its own renewals have
 * gone through for a whole expiry (cluster.c): after PostgreSQL was unreachable for all,
 * each live node renews its own first. */
#define LEASE_FENCED (-2)
int lease_renew(struct lease *Ls, void (*fn)(void *arg, const char *root), void *arg,
		struct err *e);
/* Gives up root's lease (if this node holds it): 0 or -1 and e. */
int lease_release(struct lease *Ls, const char *root, struct err *e);
/* Gives up every lease of this node and leaves the node table: 0 or -1. */
int lease_release_all(struct lease *Ls, struct err *e);
/* The roots of session trees with a running or queued turn and no live lease (their
 * node died, drained, or never held one), at most max of them: fn for each, the count
 * or -1 and e. */
int lease_orphans(struct lease *Ls, int max, void (*fn)(void *arg, const char *root),
		  void *arg, struct err *e);
/* Marks this node as draining in the node table (it takes no lease). */
int lease_set_draining(struct lease *Ls, struct err *e);

/* A live node other than this one that is not draining, the one with the fewest
 * leases, into node (LEASE_NODE_MAX bytes): 1, 0 when there is none, -1 and e. */
int lease_pick_peer(struct lease *Ls, char *node, struct err *e);
/* 1 when node's heartbeat is within the lease expiry, 0 when it is older or the node
 * left, -1 and e. */
int lease_node_alive(struct lease *Ls, const char *node, struct err *e);

/* A node as the node table has it. */
struct lease_peer {
	const char *node, *url;
	int64_t seen_ms_ago; /* since its last heartbeat */
	int alive;           /* heartbeat within the lease expiry */
	int draining;
	int64_t leases;      /* live leases it holds */
};
/* Calls fn for every node in the table, by name: the count or -1 and e. */
int lease_peers(struct lease *Ls, void (*fn)(void *arg, const struct lease_peer *p),
		void *arg, struct err *e);

#endif
