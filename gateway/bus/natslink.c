/* natslink: the node's NATS connection, its requests and the subjects it serves.
 * libnats calls in on its own threads; each of those callbacks only queues an item (a
 * message or a state change) and posts one drain to the loop, so everything the caller
 * sees happens on the loop thread. The link is reference counted: the owner holds one
 * reference, a posted drain another, so a drain that runs after natslink_close still
 * finds the memory (and drops its items). */
#include "natslink.h"
#include "natslink_int.h"
#include "log.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum item_kind { IT_REPLY, IT_SERVE, IT_STATE };

struct item {
	struct item *next;
	enum item_kind kind;
	natsMsg *m;
	struct serve *sv; /* IT_SERVE */
	int up;           /* IT_STATE */
};

struct serve {
	struct serve *next;
	struct natslink *N;
	natsSubscription *sub;
	natslink_serve_fn fn;
	void *arg;
	int gone; /* unserved: its late requests are dropped */
	char subject[];
};

struct natslink_req {
	struct natslink *N;
	char reply[];
};

struct natslink {
	struct loop *L;
	atomic_int refs;
	int closing;
	char *url, *node;
	natsOptions *opts;
	natsConnection *nc;
	natsSubscription *inbox_sub;
	char inbox[64];
	uint64_t next_id;
	struct natslink_call calls; /* sentinel of the requests in flight */
	struct serve *serves;
	atomic_uint_fast64_t reconnects; /* counted on libnats' thread, with up */
	int ever_up;                       /* under mu */
	atomic_int up;
	natslink_watch_fn watch;
	void *watch_arg;
	pthread_mutex_t mu; /* the items, why, live subscriptions, closed */
	pthread_cond_t cond;
	struct item *head, *tail;
	int posted;
	int subs_live;      /* subscriptions whose last callback has not returned */
	int closed;         /* libnats' closed callback ran */
	char why[160];      /* the last connection failure, set on libnats' threads */
	char failure[256];  /* natslink_failure's answer (loop) */
};

static void unref(struct natslink *N)
{
	if (atomic_fetch_sub(&N->refs, 1) != 1)
		return;
	for (struct serve *s = N->serves, *next; s; s = next) {
		next = s->next;
		free(s);
	}
	pthread_mutex_destroy(&N->mu);
	pthread_cond_destroy(&N->cond);
	free(N->url);
	free(N->node);
	free(N);
}

static void drain(void *arg);

/* libnats' threads: queue an item and make sure one drain is on its way. */
static void enqueue(struct natslink *N, struct item *it)
{
	pthread_mutex_lock(&N->mu);
	if (N->tail)
		N->tail->next = it;
	else
		N->head = it;
	N->tail = it;
	int post = !N->posted;
	N->posted = 1;
	if (post)
		atomic_fetch_add(&N->refs, 1);
	pthread_mutex_unlock(&N->mu);
	if (post && loop_post(N->L, drain, N)) {
		log_error("nats: out of memory handing a message to the loop");
		pthread_mutex_lock(&N->mu);
		N->posted = 0;
		pthread_mutex_unlock(&N->mu);
		unref(N);
	}
}

static void push(struct natslink *N, enum item_kind kind, natsMsg *m, struct serve *sv, int up)
{
	struct item *it = calloc(1, sizeof(*it));
	if (!it) {
		natsMsg_Destroy(m);
		return;
	}
	*it = (struct item){.kind = kind, .m = m, .sv = sv, .up = up};
	enqueue(N, it);
}

static void state(struct natslink *N, int up, natsSubscription *sub, natsStatus s)
{
	if (up > 0) {
		pthread_mutex_lock(&N->mu);
		if (N->ever_up)
			atomic_fetch_add(&N->reconnects, 1);
		N->ever_up = 1;
		pthread_mutex_unlock(&N->mu);
	}
	if (up >= 0) {
		atomic_store(&N->up, up);
		push(N, IT_STATE, NULL, NULL, up);
	}
	if (N->watch)
		N->watch(N->watch_arg, up < 0 ? NATSLINK_ASYNC : up ? NATSLINK_UP : NATSLINK_DOWN,
			 sub, s);
}

static void on_connected(natsConnection *nc, void *arg)
{
	(void)nc;
	state(arg, 1, NULL, NATS_OK);
}

static void on_disconnected(natsConnection *nc, void *arg)
{
	struct natslink *N = arg;
	pthread_mutex_lock(&N->mu);
	if (!N->why[0])
		snprintf(N->why, sizeof(N->why), "connection lost");
	pthread_mutex_unlock(&N->mu);
	(void)nc;
	state(N, 0, NULL, NATS_OK);
}

static void on_closed(natsConnection *nc, void *arg)
{
	struct natslink *N = arg;
	(void)nc;
	pthread_mutex_lock(&N->mu);
	N->closed = 1;
	pthread_cond_broadcast(&N->cond);
	pthread_mutex_unlock(&N->mu);
}

static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus s, void *arg)
{
	(void)nc;
	state(arg, -1, sub, s);
}

/* Called by the reconnecting thread between rounds of attempts, its lock released: the
 * attempt's error is this thread's last one. 50 ms doubling to 2 s. */
static int64_t backoff(natsConnection *nc, int attempts, void *arg)
{
	struct natslink *N = arg;
	(void)nc;
	const char *txt = nats_GetLastError(NULL);
	pthread_mutex_lock(&N->mu);
	snprintf(N->why, sizeof(N->why), "%s", txt && *txt ? txt : "cannot connect");
	pthread_mutex_unlock(&N->mu);
	int64_t ms = 50;
	for (int i = 1; i < attempts && ms < 2000; i++)
		ms *= 2;
	return ms < 2000 ? ms : 2000;
}

static void sub_done(void *arg)
{
	struct natslink *N = arg;
	pthread_mutex_lock(&N->mu);
	N->subs_live--;
	pthread_cond_broadcast(&N->cond);
	pthread_mutex_unlock(&N->mu);
}

static void on_reply(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *arg)
{
	(void)nc;
	(void)sub;
	push(arg, IT_REPLY, m, NULL, 0);
}

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *arg)
{
	struct serve *sv = arg;
	(void)nc;
	(void)sub;
	push(sv->N, IT_SERVE, m, sv, 0);
}

/* An async subscription whose completion is counted (natslink_close waits for it). */
static int subscribe(struct natslink *N, natsSubscription **sub, const char *subject,
		     natsMsgHandler fn, void *arg)
{
	if (natsConnection_Subscribe(sub, N->nc, subject, fn, arg) != NATS_OK)
		return -1;
	pthread_mutex_lock(&N->mu);
	N->subs_live++;
	pthread_mutex_unlock(&N->mu);
	if (natsSubscription_SetOnCompleteCB(*sub, sub_done, N) != NATS_OK) {
		sub_done(N); /* closed already: nothing will call it */
		return -1;
	}
	return 0;
}

/* nats://HOST:PORT, nothing more. */
static int check_url(const char *url, struct err *e)
{
	const char *p = url && !strncmp(url, "nats://", 7) ? url + 7 : NULL;
	const char *colon = p ? strrchr(p, ':') : NULL;
	char *end = NULL;
	long port = colon ? strtol(colon + 1, &end, 10) : 0;
	if (!colon || colon == p || !end || *end || end == colon + 1 || port < 1 || port > 65535 ||
	    strchr(p, '/') || strchr(p, '@')) {
		err_set(e, ERR_INVALID, "NATS url %s: expected nats://HOST:PORT", url ? url : "(none)");
		return -1;
	}
	return 0;
}

static int set_options(struct natslink *N)
{
	char name[128];
	snprintf(name, sizeof(name), "agentgate %s", N->node);
	return natsOptions_Create(&N->opts) != NATS_OK ||
	       natsOptions_SetURL(N->opts, N->url) != NATS_OK ||
	       natsOptions_SetName(N->opts, name) != NATS_OK ||
	       natsOptions_SetMaxReconnect(N->opts, -1) != NATS_OK ||
	       natsOptions_SetCustomReconnectDelay(N->opts, backoff, N) != NATS_OK ||
	       natsOptions_SetTimeout(N->opts, 2000) != NATS_OK ||
	       natsOptions_SetPingInterval(N->opts, 2000) != NATS_OK ||

	       natsOptions_SetDisconnectedCB(N->opts, on_disconnected, N) != NATS_OK ||
	       natsOptions_SetReconnectedCB(N->opts, on_connected, N) != NATS_OK ||
	       natsOptions_SetClosedCB(N->opts, on_closed, N) != NATS_OK ||
	       natsOptions_SetErrorHandler(N->opts, on_async_error, N) != NATS_OK ||
	       natsOptions_SetRetryOnFailedConnect(N->opts, true, on_connected, N) != NATS_OK;
}

struct natslink *natslink_open(struct loop *L, const char *url, const char *node,
			       struct err *e)
{
	if (check_url(url, e))
		return NULL;
	struct natslink *N = calloc(1, sizeof(*N));
	if (!N || !(N->url = strdup(url)) || !(N->node = strdup(node ? node : "node"))) {
		if (N)
			free(N->url);
		free(N);
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	N->L = L;
	atomic_init(&N->refs, 1);
	pthread_mutex_init(&N->mu, NULL);
	pthread_cond_init(&N->cond, NULL);
	N->calls.next = N->calls.prev = &N->calls;
	snprintf(N->why, sizeof(N->why), "connecting");
	if (set_options(N)) {
		err_set(e, ERR_INTERNAL, "NATS at %s: cannot set the client's options", url);
		natsOptions_Destroy(N->opts);
		unref(N);
		return NULL;
	}
	natsStatus s = natsConnection_Connect(&N->nc, N->opts);
	if (s == NATS_OK)
		state(N, 1, NULL, NATS_OK);
	natsInbox *ib = NULL;
	if ((s != NATS_OK && s != NATS_NOT_YET_CONNECTED) || natsInbox_Create(&ib) != NATS_OK) {
		err_set(e, ERR_UNAVAILABLE, "NATS at %s: %s", url, natsStatus_GetText(s));
		natsInbox_Destroy(ib);
		natslink_close(N);
		return NULL;
	}
	char wild[80];
	snprintf(N->inbox, sizeof(N->inbox), "%s", (const char *)ib);
	natsInbox_Destroy(ib);
	snprintf(wild, sizeof(wild), "%s.*", N->inbox);
	if (subscribe(N, &N->inbox_sub, wild, on_reply, N)) {
		err_set(e, ERR_INTERNAL, "NATS at %s: cannot subscribe to the reply inbox", url);
		natslink_close(N);
		return NULL;
	}
	return N;
}

static void call_end(struct natslink_call *c)
{
	timer_cancel(&c->t);
	if (c->next) {
		c->prev->next = c->next;
		c->next->prev = c->prev;
	}
	c->next = c->prev = NULL;
	c->id = 0;
}

static void call_fail(struct natslink_call *c, const char *fmt, const char *what)
{
	struct err e = {ERR_UNAVAILABLE, ""};
	char why[200];
	snprintf(why, sizeof(why), fmt, what);
	snprintf(e.msg, sizeof(e.msg), "request to %s: %s", c->subject, why);
	natslink_reply_fn fn = c->fn;
	call_end(c);
	fn(c, NULL, 0, &e);
}

/* Waits (bounded) until cond holds under N->mu. */
static void wait_for(struct natslink *N, int *flag, int want)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 3;
	pthread_mutex_lock(&N->mu);
	while (*flag != want && pthread_cond_timedwait(&N->cond, &N->mu, &until) == 0)
		;
	pthread_mutex_unlock(&N->mu);
}

void natslink_close(struct natslink *N)
{
	if (!N)
		return;
	N->closing = 1;
	while (N->calls.next != &N->calls)
		call_end(N->calls.next);
	for (struct serve *s = N->serves; s; s = s->next)
		if (s->sub) {
			natsSubscription_Unsubscribe(s->sub);
			natsSubscription_Destroy(s->sub);
			s->sub = NULL;
		}
	if (N->inbox_sub) {
		natsSubscription_Unsubscribe(N->inbox_sub);
		natsSubscription_Destroy(N->inbox_sub);
	}
	if (N->nc) {
		natsConnection_Close(N->nc);
		wait_for(N, &N->closed, 1); /* no callback of this connection runs after it */
		natsConnection_Destroy(N->nc);
	}
	wait_for(N, &N->subs_live, 0);
	natsOptions_Destroy(N->opts);
	pthread_mutex_lock(&N->mu);
	struct item *it = N->head;
	N->head = N->tail = NULL;
	pthread_mutex_unlock(&N->mu);
	for (struct item *next; it; it = next) {
		next = it->next;
		natsMsg_Destroy(it->m);
		free(it);
	}
	unref(N);
}

const char *natslink_node(struct natslink *N)
{
	return N->node;
}

const char *natslink_url(struct natslink *N)
{
	return N->url;
}

const char *natslink_failure(struct natslink *N)
{
	if (atomic_load(&N->up))
		return NULL;
	pthread_mutex_lock(&N->mu);
	snprintf(N->failure, sizeof(N->failure), "NATS at %s: %s", N->url, N->why);
	pthread_mutex_unlock(&N->mu);
	return N->failure;
}

uint64_t natslink_reconnects(struct natslink *N)
{
	return atomic_load(&N->reconnects);
}

natsConnection *natslink_nc(struct natslink *N)
{
	return N->nc;
}

int natslink_up(struct natslink *N)
{
	return atomic_load(&N->up);
}

void natslink_watch(struct natslink *N, natslink_watch_fn fn, void *arg)
{
	N->watch = fn;
	N->watch_arg = arg;
}

/* ---- requests ---- */

static struct natslink_call *call_by_id(struct natslink *N, uint64_t id)
{
	for (struct natslink_call *c = N->calls.next; c != &N->calls; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

static void on_reply_loop(struct natslink *N, natsMsg *m)
{
	const char *subj = natsMsg_GetSubject(m), *dot = strrchr(subj, '.');
	struct natslink_call *c = dot ? call_by_id(N, strtoull(dot + 1, NULL, 10)) : NULL;
	if (!c)
		return; /* cancelled, timed out, or answered twice */
	if (natsMsg_IsNoResponders(m)) {
		c->undelivered = 1;
		call_fail(c, "no responders%s", " (nobody serves that subject)");
		return;
	}
	natslink_reply_fn fn = c->fn;
	call_end(c);
	fn(c, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), NULL);
}

static void on_call_timer(struct timer *t)
{
	struct natslink_call *c = container_of(t, struct natslink_call, t);
	if (c->why[0])
		call_fail(c, "%s", c->why);
	else
		call_fail(c, "%s", "no reply in time");
}

int natslink_request(struct natslink *N, struct natslink_call *c, const char *subject,
		     const void *data, size_t len, int64_t timeout_ms, natslink_reply_fn fn)
{
	size_t sl = subject ? strlen(subject) : 0;
	if (!sl || sl >= sizeof(c->subject) || (c->next && c->N == N) || !fn || N->closing)
		return -1;
	memset(c, 0, sizeof(*c));
	c->N = N;
	c->fn = fn;
	memcpy(c->subject, subject, sl + 1);
	c->id = ++N->next_id;
	timer_init(&c->t, N->L, on_call_timer);
	c->prev = N->calls.prev;
	c->next = &N->calls;
	N->calls.prev->next = c;
	N->calls.prev = c;
	if (!atomic_load(&N->up)) {
		snprintf(c->why, sizeof(c->why), "not connected to NATS at %s", N->url);
		c->undelivered = 1;
		timer_arm(&c->t, 0);
		return 0;
	}
	char reply[96];
	snprintf(reply, sizeof(reply), "%s.%" PRIu64, N->inbox, c->id);
	natsStatus s = natsConnection_PublishRequest(N->nc, subject, reply, data, (int)len);
	if (s != NATS_OK) {
		snprintf(c->why, sizeof(c->why), "cannot send: %s", natsStatus_GetText(s));
		c->undelivered = 1;
		timer_arm(&c->t, 0);
		return 0;
	}
	timer_arm(&c->t, timeout_ms > 0 ? timeout_ms : 1);
	return 0;
}

void natslink_cancel(struct natslink_call *c)
{
	if (c && c->id)
		call_end(c);
}

/* The connection went down: the requests in flight will get no reply. */
static void fail_calls(struct natslink *N)
{
	while (N->calls.next != &N->calls)
		call_fail(N->calls.next, "%s", "disconnected from NATS");
}

/* ---- serving ---- */

int natslink_serve(struct natslink *N, const char *subject, natslink_serve_fn fn, void *arg)
{
	size_t sl = subject ? strlen(subject) : 0;
	struct serve *sv = sl && fn && !N->closing ? calloc(1, sizeof(*sv) + sl + 1) : NULL;
	if (!sv)
		return -1;
	sv->N = N;
	sv->fn = fn;
	sv->arg = arg;
	memcpy(sv->subject, subject, sl + 1);
	if (subscribe(N, &sv->sub, subject, on_request, sv)) {
		natsSubscription_Destroy(sv->sub);
		free(sv);
		return -1;
	}
	sv->next = N->serves;
	N->serves = sv;
	return 0;
}

void natslink_unserve(struct natslink *N, const char *subject)
{
	for (struct serve *s = N->serves; s; s = s->next)
		if (!s->gone && !strcmp(s->subject, subject)) {
			s->gone = 1;
			natsSubscription_Unsubscribe(s->sub);
			natsSubscription_Destroy(s->sub);
			s->sub = NULL;
		}
}

static void on_request_loop(struct serve *sv, natsMsg *m)
{
	if (sv->gone)
		return;
	const char *reply = natsMsg_GetReply(m);
	size_t rl = reply ? strlen(reply) : 0;
	struct natslink_req *rq = malloc(sizeof(*rq) + rl + 1);
	if (!rq)
		return;
	rq->N = sv->N;
	memcpy(rq->reply, reply ? reply : "", rl + 1);
	atomic_fetch_add(&sv->N->refs, 1); /* the answer may come after natslink_close */
	sv->fn(sv->arg, rq, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
}

int natslink_respond(struct natslink_req *rq, const void *data, size_t len)
{
	struct natslink *N = rq->N;
	int rc = 0;
	if (rq->reply[0] && !N->closing)
		rc = natsConnection_Publish(N->nc, rq->reply, data, (int)len) == NATS_OK ? 0 : -1;
	free(rq);
	unref(N);
	return rc;
}

/* ---- the loop's side ---- */

static void on_state_loop(struct natslink *N, int up)
{
	if (up) {
		pthread_mutex_lock(&N->mu);
		N->why[0] = 0;
		pthread_mutex_unlock(&N->mu);
		log_info("nats: connected to %s as %s", N->url, N->node);
		return;
	}
	log_error("nats: lost the connection to %s; reconnecting", N->url);
	fail_calls(N);
}

static void drain(void *arg)
{
	struct natslink *N = arg;
	pthread_mutex_lock(&N->mu);
	struct item *it = N->head;
	N->head = N->tail = NULL;
	N->posted = 0;
	pthread_mutex_unlock(&N->mu);
	for (struct item *next; it; it = next) {
		next = it->next;
		if (!N->closing) {
			if (it->kind == IT_REPLY)
				on_reply_loop(N, it->m);
			else if (it->kind == IT_SERVE)
				on_request_loop(it->sv, it->m);
			else
				on_state_loop(N, it->up);
		}
		natsMsg_Destroy(it->m);
		free(it);
	}
	unref(N);
}
