/* natslink: this node's one connection to NATS, shared by the event log on JetStream
 * (natslog.c) and by requests between nodes (the session forwarding of issue 17). It
 * connects in the background and reconnects forever with a backoff (50 ms doubling to
 * 2 s); natslink_failure says why it is not connected. Requests carry an id in their
 * reply subject (one wildcard inbox per node); a request to a subject nobody serves is
 * answered at once by the server ("no responders"), not left to its timeout. libnats'
 * threads hand everything to the loop with loop_post: every callback below runs on the
 * loop thread, and every function is for the loop thread only. libnats is used only by
 * gateway/bus/nats*.c (contrib/layers.sh). */
#ifndef AG_NATSLINK_H
#define AG_NATSLINK_H
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "loop.h"

struct natslink;
struct natslink_call;

/* url: nats://host:port; node: this node's name (subjects and headers carry it). NULL
 * with e filled when the url is not nats://HOST:PORT or out of memory; an unreachable
 * server is not an error (it is retried; natslink_failure says so). */
struct natslink *natslink_open(struct loop *L, const char *url, const char *node,
			       struct err *e);
/* Cancels the requests in flight (their fn is not called), stops serving, closes. */
void natslink_close(struct natslink *N);
const char *natslink_node(struct natslink *N);
const char *natslink_url(struct natslink *N);
/* NULL while connected, else why not ("NATS at nats://...: connection refused"). */
const char *natslink_failure(struct natslink *N);
/* Times the connection was re-established after a loss, since the start. */
uint64_t natslink_reconnects(struct natslink *N);

/* e: ERR_UNAVAILABLE for no responders, a timeout or a lost connection, naming which
 * (and the subject); data/len are then NULL/0. */
typedef void (*natslink_reply_fn)(struct natslink_call *c, const char *data, size_t len,
				  const struct err *e);

/* A request in flight, embedded in its caller (container_of gets the caller back).
 * Fields are the link's. */
struct natslink_call {
	struct natslink *N;
	natslink_reply_fn fn;
	uint64_t id;     /* in the reply subject; 0 while idle */
	struct timer t;  /* the timeout, or an immediate failure */
	struct natslink_call *next, *prev;
	char subject[96];
	char why[128];   /* a failure decided before the request went out */
	int undelivered; /* with a failure: the request surely reached nobody (not connected,
			  * not sent, no responders), so sending it again cannot run it twice;
			  * 0 after a timeout or a lost connection: it may have run */
};

/* Sends data to subject and calls fn exactly once (never from inside this call) with the
 * reply or an error, unless cancelled first. 0, or -1 (subject too long / empty, c in
 * flight already, out of memory: fn will not be called). */
int natslink_request(struct natslink *N, struct natslink_call *c, const char *subject,
		     const void *data, size_t len, int64_t timeout_ms, natslink_reply_fn fn);
/* fn is then never called; a late reply is dropped. Idempotent. */
void natslink_cancel(struct natslink_call *c);

/* Serving: fn gets each request on subject; answer it now or later (a held prompt
 * answers when its turn ends) with natslink_respond, exactly once (frees rq). A request
 * sent without a reply subject is answered into the void. */
struct natslink_req;
typedef void (*natslink_serve_fn)(void *arg, struct natslink_req *rq, const char *data,
				  size_t len);
int natslink_serve(struct natslink *N, const char *subject, natslink_serve_fn fn, void *arg);
/* Stops serving subject (requests already handed out still take their answers). */
void natslink_unserve(struct natslink *N, const char *subject);
int natslink_respond(struct natslink_req *rq, const void *data, size_t len);

#endif
