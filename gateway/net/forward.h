/* forward: on a cluster node, a request for a session tree that another node runs
 * (engine_owner) travels to that node over NATS (bus/natslink.h, subject
 * ag.rpc.<node>) and its answer comes back; and this node runs the requests the others
 * forward to it, exactly as its own transports would (api.h). The transports call
 * forward_try before running a request themselves; a single node forwards nothing.
 *
 * A forwarded request whose node does not answer (it died: no responders) is tried
 * again, asking PostgreSQL for the tree's owner each time, until a live node takes it
 * or the lease expiry (plus 3 s) passes: a tree taken over by this node runs here. One
 * that may have reached its node (no reply in time, NATS lost meanwhile) is answered
 * 503 "may or may not have run" instead: sending it again could run it twice.
 * A prompt held until its turn ends is watched: if its node's heartbeat stops, the
 * caller gets a 503 naming it (the prompt was durable before the owner took it, and the
 * node that takes the tree over runs or fails it). Loop thread only. */
#ifndef AG_FORWARD_H
#define AG_FORWARD_H
#include <cjson/cJSON.h>
#include <stdint.h>

#include "engine.h"
#include "err.h"
#include "natslink.h"

enum fwd_kind {
	FWD_CALL,    /* api_call */
	FWD_PROMPT,  /* api_submit, held until the turn ends when wait is set */
	FWD_COMMAND, /* POST /session/{id}/command: the command's prompt, held */
};

struct forward;
struct fwd_exec;

/* One request on its way, embedded in the transport's connection or wait. done runs
 * once on the loop thread: result is the answer's JSON text (NULL when the operation
 * answers nothing, a prompt not held) or e names why not. */
struct fwd_call {
	struct natslink_call call;
	void (*done)(struct fwd_call *f, const char *result, size_t len, const struct err *e);
	struct forward *F;
	struct fwd_call *next, *prev; /* in F's list while under way */
	struct fwd_exec *local;       /* running here after a takeover */
	struct timer retry;
	cJSON *req;                   /* the request as sent (kept for a retry) */
	int64_t give_up_us;           /* mono_us: no owner answered by then */
	char node[64], session[64];
	int held;
	int64_t seq;                  /* the answering node's last event seq with its answer:
				       * a held prompt's events are all at or below it */
	struct gather *gather;        /* asking every node (forward_try) */
};

/* The forwarder of a cluster node (serving ag.rpc.<node>), or NULL on a single node. */
struct forward *forward_start(struct engine *E, struct err *e);
void forward_stop(struct forward *F);

/* 0: the request is this node's to run (a single node, or it holds the tree); 1:
 * forwarded, f->done will answer; -1 and e (an unknown session, PostgreSQL or NATS
 * unreachable). rpc and kind as the route says; params hold sessionID (or, for
 * session.create, parentID; for task.get, taskID: the child session's id) and are
 * copied. */
int forward_try(struct forward *F, struct fwd_call *f, const char *rpc, enum fwd_kind kind,
		int wait, const cJSON *params, const char *source, struct err *e);
/* What names no session but is held by one node, which one unknown, is asked of every
 * live node by forward_try (this one included) and the answers combined: the pending
 * permission asks (permission.list: the arrays joined) and a reply to one by its id alone
 * (permission.reply without sessionID: the node that has it answers). */

/* The caller went away: done is not called. Idempotent. */
void forward_cancel(struct fwd_call *f);

/* Requests under way: forwarded by this node and not answered yet, or run here for
 * another node (a drain waits for them). */
int forward_busy(const struct forward *F);

struct forward_counts {
	uint64_t sent, served, retried, failed;
};
void forward_counts(struct forward *F, struct forward_counts *out);

#endif
