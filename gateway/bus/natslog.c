/* natslog: the event log on NATS JetStream (natslog.h says what it promises).
 *
 * Threads. The loop queues this node's events (natslog_publish) and delivers what the
 * consumer brought (drain_in). The worker thread (`ag-nats-log`) owns every blocking
 * call into JetStream: it checks the stream, (re)creates the consumer, sends queued
 * events in order within a window, resends from the oldest unacknowledged one after a
 * reconnect, an error ack or an ack timeout, and refreshes the stream's first seq.
 * libnats' threads run on_ack (marks an event stored), on_msg (the consumer: checks the
 * order and hands messages to the loop) and the link's watch (connection changes). One
 * mutex covers what they share; nobody holds it across a call into libnats that can
 * wait on the network.
 *
 * Order. JetStream stores one connection's messages in the order sent. Events go out on
 * a connection of the worker's own that never reconnects by itself: libnats holds what
 * is published while it reconnects and sends it first once back, ahead of the older
 * events this log must resend, so that connection is replaced instead (a new one, then
 * everything unacknowledged again, oldest first). After an error ack, or on a new
 * connection, the window is one message until one is stored, so a retried event is
 * never stored behind a later one. Resends carry the same Nats-Msg-Id, so what was
 * stored already is acknowledged as a duplicate (JetStream's duplicate window, 2
 * minutes), not stored twice. Acks, the consumer and the JetStream API use the link's
 * connection (natslink.c).
 *
 * The consumer: push, ephemeral, no acks, flow control and heartbeats, from a stream
 * seq. on_msg checks the consumer's own sequence: a gap (a message lost in transit, a
 * slow consumer) or missed heartbeats make the worker re-create it from the last seq
 * received, and a seq already received is skipped, so nothing is delivered twice or out
 * of order. */
#include "natslog.h"
#include "bus_int.h"
#include "err.h"
#include "evlog.h"
#include "log.h"
#include "loop.h"
#include "natslink.h"
#include "natslink_int.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STREAM "AGENTGATE"
#define SUBJECTS "ag.ev.>"
#define WINDOW 256                 /* events sent and not yet acknowledged */
#define ACK_TIMEOUT_US 3000000     /* the oldest unacknowledged event is resent after */
#define RETRY_US 250000            /* after an error ack or a failed send */
#define INFO_EVERY_US 2000000      /* the stream's first seq is looked up again */
#define JS_WAIT_MS 2000            /* JetStream API requests */
#define REPLAY_BUDGET_US 1000000   /* one replay page reads JetStream at most this long */
#define REPLAY_BATCH 256
#define HEARTBEAT_NS 2000000000LL
#define MSG_OVERHEAD 256           /* subject, reply and headers, counted per event */
#define FLUSH_ON_CLOSE_US 2000000  /* natslog_destroy waits this long for the last acks */

struct pub {
	struct pub *next;
	uint64_t id;
	natsMsg *m;
	size_t bytes;
	int acked;
	int64_t sent_us; /* 0: not sent since the last rewind */
};

struct inmsg {
	struct inmsg *next;
	natsMsg *m;
	int64_t seq;
};

struct natslog {
	struct loop *L;
	struct bus *B;
	struct natslink *N;
	jsCtx *js;
	struct evlog *ring; /* delivered events, for replay (no store) */
	int64_t keep;
	size_t max_pending;
	atomic_int refs;
	int closing;
	char node[64];
	char boot[40];      /* this process's run: message ids stay unique across restarts */
	char ack_inbox[64];
	natsSubscription *ack_sub;
	pthread_t thread;
	int thread_started;
	natsConnection *pc; /* the worker's: events are published on it alone */

	pthread_mutex_t mu; /* everything below up to "loop only" */
	pthread_cond_t cond;
	int stop;
	/* publishing */
	struct pub *head, *tail, *cursor; /* cursor: the next to send */
	size_t pending_bytes;
	int64_t rewind_at;  /* resend from head at this time (mono µs), 0: none due */
	int careful;        /* a window of one until a message is stored */
	int max_payload;    /* the server's, once connected */
	uint64_t published, too_big;
	/* the stream and the consumer */
	int ready;          /* stream checked and consumer made since the last connect */
	int recreate;       /* the consumer must be made again */
	int64_t first_seq;  /* the stream's first seq (the worker's last look), 0: unknown */
	int64_t start_last; /* the stream's last seq at the first look, -1 before */
	natsSubscription *csub;
	int creating, fresh;
	uint64_t dseq;      /* the consumer's last sequence */
	int64_t recv_max;   /* the newest stream seq handed to the loop */
	int subs_live;      /* consumers whose last callback has not returned */
	struct inmsg *in_head, *in_tail;
	int posted;
	uint64_t restarts, dupes, gaps;

	/* loop only */
	int64_t last;       /* the last delivered seq */
	int started;        /* last was set from start_last */
	uint64_t next_id;
	uint64_t back;      /* events this run published that came back (natslog_unsettled) */
	uint64_t dropped;
	int dropping;       /* events are being dropped (the buffer is full) */
};

static void unref(struct natslog *G)
{
	if (atomic_fetch_sub(&G->refs, 1) != 1)
		return;
	pthread_mutex_destroy(&G->mu);
	pthread_cond_destroy(&G->cond);
	free(G);
}

/* ---- events to and from messages ---- */

/* A subject token: the root id, with what NATS reserves ('.', '*', '>', spaces) as '_'. */
static void subject_for(char *out, size_t n, const char *root)
{
	int k = snprintf(out, n, "ag.ev.");
	for (const char *p = root; *p && (size_t)k + 1 < n; p++)
		out[k++] = (*p == '.' || *p == '*' || *p == '>' || *p <= ' ') ? '_' : *p;
	out[k] = 0;
}

static natsMsg *message_for(struct natslog *G, uint64_t id, const char *json, size_t len,
			    size_t at, const struct bus_env *env)
{
	char subj[128], reply[96], msgid[128], at_s[24], time_s[24];
	subject_for(subj, sizeof(subj), env->root_id ? env->root_id : env->session_id);
	snprintf(reply, sizeof(reply), "%s.%" PRIu64, G->ack_inbox, id);
	snprintf(msgid, sizeof(msgid), "%s.%s.%" PRIu64, G->node, G->boot, id);
	snprintf(at_s, sizeof(at_s), "%zu", at);
	snprintf(time_s, sizeof(time_s), "%" PRId64, now_ms());
	natsMsg *m = NULL;
	if (natsMsg_Create(&m, subj, reply, json, (int)len) != NATS_OK)
		return NULL;
	if (natsMsgHeader_Set(m, "Nats-Msg-Id", msgid) != NATS_OK ||
	    natsMsgHeader_Set(m, "Ag-Node", G->node) != NATS_OK ||
	    natsMsgHeader_Set(m, "Ag-Sid", env->session_id) != NATS_OK ||
	    natsMsgHeader_Set(m, "Ag-Path", env->path ? env->path : env->session_id) != NATS_OK ||
	    natsMsgHeader_Set(m, "Ag-At", at_s) != NATS_OK ||
	    natsMsgHeader_Set(m, "Ag-Time", time_s) != NATS_OK) {
		natsMsg_Destroy(m);
		return NULL;
	}
	return m;
}

static const char *header(natsMsg *m, const char *key)
{
	const char *v = NULL;
	return natsMsgHeader_Get(m, key, &v) == NATS_OK ? v : NULL;
}

/* The event a stream message carries, with "seq":N, spliced in; NULL for a message
 * that is not one of ours (logged) or out of memory. */
static struct event *event_of(struct natslog *G, natsMsg *m, int64_t seq)
{
	const char *at_s = header(m, "Ag-At"), *sid = header(m, "Ag-Sid");
	const char *path = header(m, "Ag-Path"), *node = header(m, "Ag-Node");
	const char *time_s = header(m, "Ag-Time"), *data = natsMsg_GetData(m);
	const char *msgid = header(m, "Nats-Msg-Id");
	size_t len = (size_t)natsMsg_GetDataLength(m);
	size_t at = at_s ? strtoull(at_s, NULL, 10) : 0;
	if (!sid || !path || !node || !data || at < 2 || at > len || data[at - 1] != ',') {
		log_error("nats: stream message %lld is not an agentgate event: skipped",
			  (long long)seq);
		return NULL;
	}
	char st[32];
	int sl = snprintf(st, sizeof(st), "\"seq\":%lld,", (long long)seq);
	struct event *ev = calloc(1, sizeof(*ev) + len + (size_t)sl + 1);
	char *pathz = ev ? strdup(path) : NULL;
	if (!pathz) {
		free(ev);
		return NULL;
	}
	atomic_init(&ev->refs, 1);
	ev->seq = seq;
	ev->time = time_s ? strtoll(time_s, NULL, 10) : now_ms();
	ev->path = pathz;
	ev->own = !strcmp(node, G->node);
	/* one of this run's (not an earlier process of the same node name): node.boot.n */
	size_t nl = strlen(G->node), bl = strlen(G->boot);
	if (ev->own && msgid && !strncmp(msgid, G->node, nl) && msgid[nl] == '.' &&
	    !strncmp(msgid + nl + 1, G->boot, bl) && msgid[nl + 1 + bl] == '.')
		ev->own = 2;
	snprintf(ev->session_id, sizeof(ev->session_id), "%s", sid);
	memcpy(ev->json, data, at);
	memcpy(ev->json + at, st, (size_t)sl);
	memcpy(ev->json + at + sl, data + at, len - at);
	ev->len = len + (size_t)sl;
	event_type_from_json(ev);
	return ev;
}

static int64_t stream_seq(natsMsg *m, uint64_t *dseq, uint64_t *pending)
{
	jsMsgMetaData *meta = NULL;
	if (natsMsg_GetMetaData(&meta, m) != NATS_OK)
		return -1;
	int64_t seq = (int64_t)meta->Sequence.Stream;
	if (dseq)
		*dseq = meta->Sequence.Consumer;
	if (pending)
		*pending = meta->NumPending;
	jsMsgMetaData_Destroy(meta);
	return seq;
}

/* ---- the loop: delivery ---- */

static void sync_start(struct natslog *G)
{
	if (G->started)
		return;
	pthread_mutex_lock(&G->mu);
	if (G->start_last >= 0) {
		G->last = G->start_last;
		G->started = 1;
	}
	pthread_mutex_unlock(&G->mu);
}

/* A resync notice to every local subscriber: events between since and now are lost. */
static void notice(struct natslog *G, int64_t since)
{
	struct event *ev = event_resync(since, natslog_oldest_seq(G), G->last);
	if (ev) {
		bus_deliver(G->B, ev);
		event_unref(ev);
	}
}

static void deliver(struct natslog *G, natsMsg *m, int64_t seq)
{
	if (seq <= G->last)
		return;
	struct event *ev = event_of(G, m, seq);
	if (G->last && seq > G->last + 1) {
		log_error("nats: events %lld..%lld left the stream before this node read them",
			  (long long)G->last + 1, (long long)seq - 1);
		notice(G, G->last);
	}
	G->last = seq;
	if (!ev)
		return;
	G->back += ev->own == 2;
	ev->own = ev->own != 0;
	evlog_append(G->ring, ev);
	bus_deliver(G->B, ev);
	event_unref(ev);
}

static void drain_in(void *arg)
{
	struct natslog *G = arg;
	pthread_mutex_lock(&G->mu);
	struct inmsg *it = G->in_head;
	G->in_head = G->in_tail = NULL;
	G->posted = 0;
	pthread_mutex_unlock(&G->mu);
	if (!G->closing)
		sync_start(G);
	for (struct inmsg *next; it; it = next) {
		next = it->next;
		if (!G->closing)
			deliver(G, it->m, it->seq);
		natsMsg_Destroy(it->m);
		free(it);
	}
	unref(G);
}

/* ---- libnats' threads ---- */

/* The consumer's messages, in order: a gap in the consumer's own sequence re-creates
 * it (from the last seq received); a seq received already is skipped. */
static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *arg)
{
	struct natslog *G = arg;
	(void)nc;
	uint64_t dseq = 0;
	int64_t seq = stream_seq(m, &dseq, NULL);
	struct inmsg *it = seq > 0 ? calloc(1, sizeof(*it)) : NULL;
	int post = 0;
	pthread_mutex_lock(&G->mu);
	if (!G->csub && G->creating)
		G->csub = sub; /* its first message came before js_Subscribe returned */
	if (!it || sub != G->csub || G->recreate || G->stop) {
		free(it);
		it = NULL;
	} else if (!G->fresh && dseq != G->dseq + 1) {
		G->recreate = 1; /* lost in transit: start again after the last one received */
		pthread_cond_signal(&G->cond);
		free(it);
		it = NULL;
	} else {
		G->fresh = 0;
		G->dseq = dseq;
		if (seq <= G->recv_max) {
			G->dupes++;
			free(it);
			it = NULL;
		} else {
			G->gaps += seq > G->recv_max + 1 && G->recv_max > 0;
			G->recv_max = seq;
			*it = (struct inmsg){.m = m, .seq = seq};
			if (G->in_tail)
				G->in_tail->next = it;
			else
				G->in_head = it;
			G->in_tail = it;
			post = !G->posted;
			G->posted = 1;
		}
	}
	if (post)
		atomic_fetch_add(&G->refs, 1);
	pthread_mutex_unlock(&G->mu);
	if (!it)
		natsMsg_Destroy(m);
	if (post && loop_post(G->L, drain_in, G)) {
		log_error("nats: out of memory handing events to the loop");
		unref(G);
	}
}

static struct pub *pub_by_id(struct natslog *G, uint64_t id)
{
	for (struct pub *p = G->head; p && p->id <= id; p = p->next)
		if (p->id == id)
			return p;
	return NULL;
}

/* JetStream's answer to one publish: {"stream":..,"seq":N[,"duplicate":true]} or an
 * error (or no responders: JetStream is not there yet). */
static void on_ack(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *arg)
{
	struct natslog *G = arg;
	(void)nc;
	(void)sub;
	const char *subj = natsMsg_GetSubject(m), *dot = strrchr(subj, '.');
	const char *d = natsMsg_GetData(m);
	int ok = !natsMsg_IsNoResponders(m) && d && strstr(d, "\"seq\"") && !strstr(d, "\"error\"");
	uint64_t id = dot ? strtoull(dot + 1, NULL, 10) : 0;
	pthread_mutex_lock(&G->mu);
	struct pub *p = pub_by_id(G, id);
	if (p && ok) {
		p->acked = 1;
		G->careful = 0;
	} else if (p && !G->rewind_at) {
		G->rewind_at = mono_us() + RETRY_US;
		G->careful = 1;
	}
	pthread_cond_signal(&G->cond);
	pthread_mutex_unlock(&G->mu);
	if (p && !ok)
		log_error("nats: JetStream did not store event %" PRIu64 ": %.*s; resending",
			  id, natsMsg_GetDataLength(m) > 200 ? 200 : natsMsg_GetDataLength(m),
			  d && natsMsg_GetDataLength(m) ? d : "no responders");
	natsMsg_Destroy(m);
}

static void on_link(void *arg, enum natslink_event ev, natsSubscription *sub, natsStatus s)
{
	struct natslog *G = arg;
	pthread_mutex_lock(&G->mu);
	if (ev == NATSLINK_DOWN)
		G->ready = 0;
	else if (ev == NATSLINK_ASYNC && sub && sub == G->csub &&
		 (s == NATS_MISSED_HEARTBEAT || s == NATS_SLOW_CONSUMER))
		G->recreate = 1;
	pthread_cond_signal(&G->cond);
	pthread_mutex_unlock(&G->mu);
}

static void sub_done(void *arg)
{
	struct natslog *G = arg;
	pthread_mutex_lock(&G->mu);
	G->subs_live--;
	pthread_cond_broadcast(&G->cond);
	pthread_mutex_unlock(&G->mu);
}

/* ---- the worker ---- */

/* Under G->mu: waits at most us, or until signalled. */
static void wait_us(struct natslog *G, int64_t us)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_nsec += (long)(us % 1000000) * 1000;
	t.tv_sec += us / 1000000 + t.tv_nsec / 1000000000;
	t.tv_nsec %= 1000000000;
	pthread_cond_timedwait(&G->cond, &G->mu, &t);
}

/* Under G->mu: everything not yet acknowledged is sent again, oldest first. */
static void rewind_all(struct natslog *G)
{
	for (struct pub *p = G->head; p; p = p->next)
		p->sent_us = 0;
	G->cursor = G->head;
	G->rewind_at = 0;
}

/* Under G->mu: the acknowledged events at the head leave the buffer. */
static void pop_acked(struct natslog *G)
{
	while (G->head && G->head->acked) {
		struct pub *p = G->head;
		G->head = p->next;
		if (!G->head)
			G->tail = NULL;
		if (G->cursor == p)
			G->cursor = p->next;
		G->pending_bytes -= p->bytes;
		G->published++;
		natsMsg_Destroy(p->m);
		free(p);
	}
}

/* The worker's publishing connection, made (unlocked) when there is none or it closed:
 * 0 when there is one. A new one resends everything unacknowledged. */
static int publisher(struct natslog *G)
{
	if (G->pc && !natsConnection_IsClosed(G->pc))
		return 0;
	if (G->pc) {
		natsConnection_Destroy(G->pc);
		G->pc = NULL;
	}
	natsOptions *o = NULL;
	char name[128];
	snprintf(name, sizeof(name), "agentgate %s events", G->node);
	pthread_mutex_unlock(&G->mu);
	natsStatus s = natsOptions_Create(&o);
	if (s == NATS_OK)
		s = natsOptions_SetURL(o, natslink_url(G->N));
	if (s == NATS_OK)
		s = natsOptions_SetName(o, name);
	if (s == NATS_OK)
		s = natsOptions_SetAllowReconnect(o, false);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(o, JS_WAIT_MS);
	if (s == NATS_OK)
		s = natsOptions_SetPingInterval(o, 2000);
	natsConnection *pc = NULL;
	if (s == NATS_OK)
		s = natsConnection_Connect(&pc, o);
	natsOptions_Destroy(o);
	pthread_mutex_lock(&G->mu);
	if (s != NATS_OK)
		return -1;
	G->pc = pc;
	G->careful = 1;
	rewind_all(G);
	return 0;
}

/* Under G->mu, released around each send. */
static void send_some(struct natslog *G)
{
	if (!G->cursor || G->rewind_at || G->stop || !G->ready)
		return;
	if (publisher(G)) {
		G->rewind_at = mono_us() + RETRY_US;
		return;
	}
	natsConnection *nc = G->pc;
	while (G->cursor && !G->rewind_at && !G->stop && G->ready) {
		uint64_t inflight = G->cursor->id - G->head->id;
		if (inflight >= (G->careful ? 1u : WINDOW))
			return;
		struct pub *p = G->cursor;
		G->cursor = p->next;
		p->sent_us = mono_us();
		pthread_mutex_unlock(&G->mu);
		natsStatus s = natsConnection_PublishMsg(nc, p->m); /* p stays: only we free */
		pthread_mutex_lock(&G->mu);
		if (s == NATS_MAX_PAYLOAD) {
			p->acked = 1; /* it can never be stored: dropped, counted, said */
			G->too_big++;
			log_error("nats: an event of %d bytes is over the server's max_payload: "
				  "dropped", natsMsg_GetDataLength(p->m));
		} else if (s != NATS_OK) {
			G->rewind_at = mono_us() + RETRY_US;
			G->careful = 1;
			return;
		}
	}
}

static int stream_info(struct natslog *G, int create, int64_t *first, int64_t *last)
{
	jsErrCode jerr = 0;
	jsStreamInfo *si = NULL;
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = JS_WAIT_MS;
	natsStatus s = js_GetStreamInfo(&si, G->js, STREAM, &jo, &jerr);
	if (create && (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr)) {
		jsStreamConfig cfg;
		jsStreamConfig_Init(&cfg);
		const char *subjects[] = {SUBJECTS};
		cfg.Name = STREAM;
		cfg.Subjects = subjects;
		cfg.SubjectsLen = 1;
		cfg.Storage = js_FileStorage;
		cfg.MaxMsgs = G->keep > 0 ? G->keep : -1;
		s = js_AddStream(&si, G->js, &cfg, &jo, &jerr);
		if (s != NATS_OK && (jerr == JSStreamNameExistErr || jerr == JSStreamSubjectOverlapErr))
			/* another node made it first */
			s = js_GetStreamInfo(&si, G->js, STREAM, &jo, &jerr);
		else if (s == NATS_OK)
			log_info("nats: created the stream " STREAM " (" SUBJECTS ", file storage, "
				 "at most %lld messages)", (long long)cfg.MaxMsgs);
	}
	if (s != NATS_OK) {
		if (create)
			log_error("nats: the stream " STREAM ": %s (JetStream error %d)",
				  nats_GetLastError(NULL), (int)jerr);
		return -1;
	}
	/* 0 in a stream that never held a message: its first will be 1 */
	*first = si->State.FirstSeq ? (int64_t)si->State.FirstSeq : 1;
	*last = (int64_t)si->State.LastSeq;
	jsStreamInfo_Destroy(si);
	return 0;
}

static void drop_consumer(struct natslog *G, natsSubscription *sub)
{
	if (!sub)
		return;
	natsSubscription_Unsubscribe(sub);
	natsSubscription_Destroy(sub);
	pthread_mutex_lock(&G->mu);
	for (int i = 0; i < 30 && G->subs_live > 0; i++)
		wait_us(G, 100000); /* its last callback returns before the next one starts */
	pthread_mutex_unlock(&G->mu);
}

static natsSubscription *make_consumer(struct natslog *G, int64_t from)
{
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = JS_WAIT_MS;
	jsSubOptions so;
	jsSubOptions_Init(&so);
	so.Stream = STREAM;
	so.Config.DeliverPolicy = js_DeliverByStartSequence;
	so.Config.OptStartSeq = (uint64_t)from;
	so.Config.AckPolicy = js_AckNone;
	so.Config.FlowControl = true;
	so.Config.Heartbeat = HEARTBEAT_NS;
	so.Config.MemoryStorage = true;
	natsSubscription *sub = NULL;
	jsErrCode jerr = 0;
	if (js_Subscribe(&sub, G->js, SUBJECTS, on_msg, G, &jo, &so, &jerr) != NATS_OK) {
		log_error("nats: cannot create the consumer on " STREAM ": %s (JetStream error %d)",
			  nats_GetLastError(NULL), (int)jerr);
		return NULL;
	}
	natsSubscription_SetPendingLimits(sub, -1, -1);
	return sub;
}

/* After a connect, or when the consumer must be made again: the stream exists, the
 * consumer continues after the last seq received, unacknowledged events go again. */
static int setup(struct natslog *G)
{
	int64_t first = 0, last = 0;
	if (stream_info(G, 1, &first, &last))
		return -1;
	int max_payload = (int)natsConnection_GetMaxPayload(natslink_nc(G->N));
	pthread_mutex_lock(&G->mu);
	G->first_seq = first;
	G->max_payload = max_payload;
	int again = G->start_last >= 0;
	if (!again)
		G->start_last = G->recv_max = last; /* this node starts at the stream's end */
	else if (last < G->recv_max)
		log_error("nats: the stream " STREAM " ends at %lld, before the %lld this node "
			  "delivered: it was purged or recreated", (long long)last,
			  (long long)G->recv_max);
	int64_t from = G->recv_max + 1;
	natsSubscription *old = G->csub;
	G->csub = NULL;
	G->creating = 1;
	G->fresh = 1;
	G->dseq = 0;
	G->recreate = 0;
	pthread_mutex_unlock(&G->mu);
	drop_consumer(G, old);
	natsSubscription *sub = make_consumer(G, from);
	pthread_mutex_lock(&G->mu);
	G->creating = 0;
	if (sub && !G->csub)
		G->csub = sub;
	if (sub) {
		G->subs_live++;
		G->restarts += again;
		G->ready = 1;
		G->careful = 1;
		rewind_all(G);
	}
	pthread_mutex_unlock(&G->mu);
	if (sub && natsSubscription_SetOnCompleteCB(sub, sub_done, G) != NATS_OK)
		sub_done(G);
	return sub ? 0 : -1;
}

static void *worker(void *arg)
{
	struct natslog *G = arg;
	int64_t next_info = 0;
	pthread_mutex_lock(&G->mu);
	while (!G->stop) {
		if (!natslink_up(G->N)) {
			G->ready = 0;
			wait_us(G, 100000);
			continue;
		}
		if (!G->ready || G->recreate) {
			pthread_mutex_unlock(&G->mu);
			int rc = setup(G);
			pthread_mutex_lock(&G->mu);
			if (rc)
				wait_us(G, 500000);
			next_info = mono_us() + INFO_EVERY_US;
			continue;
		}
		int64_t now = mono_us();
		if (now >= next_info) {
			int64_t first, last;
			pthread_mutex_unlock(&G->mu);
			int rc = stream_info(G, 0, &first, &last);
			pthread_mutex_lock(&G->mu);
			if (!rc)
				G->first_seq = first;
			next_info = now + INFO_EVERY_US;
		}
		pop_acked(G);
		if (G->head && G->head->sent_us && now - G->head->sent_us > ACK_TIMEOUT_US) {
			log_error("nats: no ack for event %" PRIu64 " in %d ms: resending from it",
				  G->head->id, ACK_TIMEOUT_US / 1000);
			G->careful = 1;
			rewind_all(G);
		}
		if (G->rewind_at && now >= G->rewind_at)
			rewind_all(G);
		send_some(G);
		wait_us(G, G->rewind_at ? RETRY_US : 50000);
	}
	pthread_mutex_unlock(&G->mu);
	if (G->pc) {
		natsConnection_Close(G->pc);
		natsConnection_Destroy(G->pc);
	}
	return NULL;
}

/* ---- the loop: life, publishing, reading ---- */

struct natslog *natslog_create(struct loop *L, struct bus *B, const char *url,
			       const char *node, size_t ring_size, int64_t keep,
			       size_t max_pending, struct err *e)
{
	struct natslog *G = calloc(1, sizeof(*G));
	if (!G || !(G->ring = evlog_create(NULL, ring_size, 0))) {
		free(G);
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	G->L = L;
	G->B = B;
	G->keep = keep;
	G->max_pending = max_pending;
	G->start_last = -1;
	atomic_init(&G->refs, 1);
	pthread_mutex_init(&G->mu, NULL);
	pthread_cond_init(&G->cond, NULL);
	snprintf(G->node, sizeof(G->node), "%s", node);
	snprintf(G->boot, sizeof(G->boot), "%llx%x", (long long)now_ms(), (unsigned)getpid());
	if (!(G->N = natslink_open(L, url, node, e))) {
		natslog_destroy(G);
		return NULL;
	}
	natslink_watch(G->N, on_link, G);
	natsInbox *ib = NULL;
	char wild[80];
	if (natsInbox_Create(&ib) != NATS_OK ||
	    natsConnection_JetStream(&G->js, natslink_nc(G->N), NULL) != NATS_OK)
		goto fail;
	snprintf(G->ack_inbox, sizeof(G->ack_inbox), "%s", (const char *)ib);
	natsInbox_Destroy(ib);
	ib = NULL;
	snprintf(wild, sizeof(wild), "%s.*", G->ack_inbox);
	if (natsConnection_Subscribe(&G->ack_sub, natslink_nc(G->N), wild, on_ack, G) != NATS_OK)
		goto fail;
	natsSubscription_SetPendingLimits(G->ack_sub, -1, -1);
	if (pthread_create(&G->thread, NULL, worker, G))
		goto fail;
	G->thread_started = 1;
	pthread_setname_np(G->thread, "ag-nats-log");
	return G;
fail:
	natsInbox_Destroy(ib);
	err_set(e, ERR_INTERNAL, "NATS at %s: cannot set up the event log", url);
	natslog_destroy(G);
	return NULL;
}

void natslog_destroy(struct natslog *G)
{
	if (!G)
		return;
	G->closing = 1;
	pthread_mutex_lock(&G->mu);
	/* a graceful stop's last events (session.idle...) still go out: bounded, and only
	 * while they can */
	int64_t until = mono_us() + FLUSH_ON_CLOSE_US;
	while (G->head && G->ready && G->thread_started && mono_us() < until)
		wait_us(G, 20000);
	if (G->head)
		log_error("nats: closing with %zu bytes of events not stored by JetStream",
			  G->pending_bytes);
	G->stop = 1;
	pthread_cond_broadcast(&G->cond);
	natsSubscription *csub = G->csub;
	G->csub = NULL;
	pthread_mutex_unlock(&G->mu);
	if (G->thread_started)
		pthread_join(G->thread, NULL);
	drop_consumer(G, csub);
	if (G->ack_sub) {
		natsSubscription_Unsubscribe(G->ack_sub);
		natsSubscription_Destroy(G->ack_sub);
	}
	natslink_close(G->N); /* no libnats callback into G runs after it */
	jsCtx_Destroy(G->js);
	for (struct pub *p = G->head, *next; p; p = next) {
		next = p->next;
		natsMsg_Destroy(p->m);
		free(p);
	}
	for (struct inmsg *it = G->in_head, *next; it; it = next) {
		next = it->next;
		natsMsg_Destroy(it->m);
		free(it);
	}
	G->head = NULL;
	G->in_head = NULL;
	evlog_destroy(G->ring);
	G->ring = NULL;
	unref(G);
}

int64_t natslog_publish(struct natslog *G, const char *json, size_t len, size_t at,
			const char *type, const struct bus_env *env)
{
	size_t bytes = len + MSG_OVERHEAD;
	pthread_mutex_lock(&G->mu);
	int full = G->pending_bytes + bytes > G->max_pending;
	int too_big = G->max_payload > 0 && len + MSG_OVERHEAD > (size_t)G->max_payload;
	size_t pending = G->pending_bytes;
	pthread_mutex_unlock(&G->mu);
	sync_start(G);
	if (too_big && !full) {
		G->dropped++;
		log_error("nats: event %s of %zu bytes dropped: over the NATS server's max_payload; "
			  "local subscribers are told to resync", type, len);
		notice(G, G->last);
		return 0;
	}
	if (full) {
		G->dropped++;
		if (!G->dropping) {
			G->dropping = 1;
			log_error("nats: event %s of %zu bytes dropped: %zu bytes of events wait for "
				  "NATS (%s), the bound is %zu; local subscribers are told to resync",
				  type, len, pending, natslink_failure(G->N) ? natslink_failure(G->N)
				  : "connected", G->max_pending);
			notice(G, G->last);
		}
		return 0;
	}
	uint64_t id = ++G->next_id;
	struct pub *p = calloc(1, sizeof(*p));
	natsMsg *m = p ? message_for(G, id, json, len, at, env) : NULL;
	if (!m) {
		free(p);
		return -1;
	}
	*p = (struct pub){.id = id, .m = m, .bytes = bytes};
	if (G->dropping) {
		G->dropping = 0;
		log_info("nats: events are published again (%llu dropped so far)",
			 (unsigned long long)G->dropped);
		notice(G, G->last);
	}
	pthread_mutex_lock(&G->mu);
	if (G->tail)
		G->tail->next = p;
	else
		G->head = p;
	G->tail = p;
	if (!G->cursor)
		G->cursor = p;
	G->pending_bytes += bytes;
	pthread_cond_signal(&G->cond);
	pthread_mutex_unlock(&G->mu);
	return 0;
}

int64_t natslog_last_seq(struct natslog *G)
{
	sync_start(G);
	return G->last;
}

int64_t natslog_oldest_seq(struct natslog *G)
{
	pthread_mutex_lock(&G->mu);
	int64_t first = G->first_seq;
	pthread_mutex_unlock(&G->mu);
	int64_t last = natslog_last_seq(G);
	if (evlog_last_seq(G->ring) > 0) {
		int64_t ro = evlog_oldest_seq(G->ring);
		if (first <= 0 || ro < first)
			return ro;
	}
	return first > 0 && first <= last + 1 ? first : last + 1;
}

struct root_find {
	char *out;
	size_t n;
	int found;
};

static void on_root(void *arg, struct event *ev)
{
	struct root_find *rf = arg;
	size_t k = strcspn(ev->path, "/");
	if (k && k < rf->n) {
		memcpy(rf->out, ev->path, k);
		rf->out[k] = 0;
		rf->found = 1;
	}
}

/* The root of a session with an event in the ring (the first step of its path): 0, or
 * -1 when none is there (the replay then reads every root's events). */
static int root_of(struct natslog *G, const char *sid, char *out, size_t n)
{
	struct root_find rf = {out, n, 0};
	int64_t upto;
	if (evlog_last_seq(G->ring) <= 0)
		return -1;
	evlog_replay(G->ring, evlog_oldest_seq(G->ring) - 1, sid, 0, on_root, &rf, 1, &upto);
	return rf.found ? 0 : -1;
}

struct replay_page {
	struct natslog *G;
	const char *session_id;
	int descendants;
	bus_fn fn;
	void *arg;
	int n, max;
	int64_t pos, end; /* the last seq examined; the last one this page reads */
	int done;
};

/* One fetched batch: delivers what matches, up to c->end or max. -1: bad metadata. */
static int replay_batch(struct replay_page *c, natsMsgList *list)
{
	for (int i = 0; i < list->Count && !c->done && c->n < c->max; i++) {
		int64_t seq = stream_seq(list->Msgs[i], NULL, NULL);
		if (seq < 0)
			return -1;
		if (seq > c->end) {
			c->done = 1;
			break;
		}
		c->pos = seq;
		struct event *ev = event_of(c->G, list->Msgs[i], seq);
		if (ev && event_matches(ev, c->session_id, c->descendants)) {
			c->fn(c->arg, ev);
			c->n++;
		}
		event_unref(ev);
		c->done = seq >= c->end;
	}
	return 0;
}

/* The last seq a replay up to stop_before reads: the root's last message when it is
 * older (a filtered replay then knows where it ends), else stop_before - 1. */
static int64_t replay_end(struct natslog *G, const char *filter, int64_t since,
			  int64_t stop_before, jsOptions *jo)
{
	int64_t end = stop_before - 1;
	if (!strcmp(filter, SUBJECTS))
		return end;
	natsMsg *lm = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_GetLastMsg(&lm, G->js, STREAM, filter, jo, &jerr);
	if (s == NATS_OK && (int64_t)natsMsg_GetSequence(lm) < end)
		end = (int64_t)natsMsg_GetSequence(lm);
	else if (s == NATS_NOT_FOUND)
		end = since; /* none of that root's events is in the stream */
	natsMsg_Destroy(lm);
	return end;
}

/* Events since < seq < stop_before from JetStream, through an ephemeral pull consumer
 * filtered by the session's root when it is known: how many matched, *upto the last
 * seq examined (stop_before - 1 when all were), or -1 when JetStream cannot be read or
 * the page got nowhere in its time. Where a page ends is decided by seqs, never by the
 * consumer's count of pending messages (nats-server 2.9 miscounts it, seen here). */
static int replay_js(struct natslog *G, int64_t since, int64_t stop_before, const char *sid,
		     int descendants, bus_fn fn, void *arg, int max, int64_t *upto)
{
	char root[64], filter[128] = SUBJECTS;
	if (sid && !root_of(G, sid, root, sizeof(root)))
		subject_for(filter, sizeof(filter), root);
	if (!natslink_up(G->N))
		return -1;
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = JS_WAIT_MS;
	struct replay_page c = {.G = G, .session_id = sid, .descendants = descendants, .fn = fn,
				.arg = arg, .max = max, .pos = since,
				.end = replay_end(G, filter, since, stop_before, &jo)};
	if (c.end <= since) {
		*upto = stop_before - 1;
		return 0;
	}
	jsSubOptions so;
	jsSubOptions_Init(&so);
	so.Stream = STREAM;
	so.Config.DeliverPolicy = js_DeliverByStartSequence;
	so.Config.OptStartSeq = (uint64_t)since + 1;
	so.Config.AckPolicy = js_AckNone;
	so.Config.MemoryStorage = true;
	natsSubscription *sub = NULL;
	jsErrCode jerr = 0;
	if (js_PullSubscribe(&sub, G->js, filter, NULL, &jo, &so, &jerr) != NATS_OK) {
		log_error("nats: cannot read the stream " STREAM " from %lld: %s (JetStream error %d)",
			  (long long)since + 1, nats_GetLastError(NULL), (int)jerr);
		return -1;
	}
	int64_t deadline = mono_us() + REPLAY_BUDGET_US;
	int rc = 0;
	while (!c.done && c.n < max) {
		int64_t left_ms = (deadline - mono_us()) / 1000;
		if (left_ms <= 0)
			break; /* the budget is spent: the page ends where it got to */
		natsMsgList list = {0};
		int64_t want = c.end - c.pos < REPLAY_BATCH ? c.end - c.pos : REPLAY_BATCH;
		natsStatus s = natsSubscription_Fetch(&list, sub, (int)want, left_ms, &jerr);
		if (s != NATS_OK && s != NATS_TIMEOUT) {
			log_error("nats: reading the stream " STREAM " after %lld: %s", (long long)c.pos,
				  natsStatus_GetText(s));
			rc = -1;
		} else if (replay_batch(&c, &list)) {
			rc = -1;
		}
		natsMsgList_Destroy(&list);
		if (rc)
			break;
	}
	natsSubscription_Unsubscribe(sub);
	natsSubscription_Destroy(sub);
	if (rc || (!c.done && c.pos == since))
		return -1;
	*upto = c.done ? stop_before - 1 : c.pos;
	return c.n;
}

int natslog_replay(struct natslog *G, int64_t since, const char *session_id, int descendants,
		   bus_fn fn, void *arg, int max, int64_t *upto)
{
	int64_t last = natslog_last_seq(G);
	*upto = last;
	if (since < 0)
		since = 0;
	if (since >= last)
		return 0;
	int64_t ring_oldest = evlog_last_seq(G->ring) > 0 ? evlog_oldest_seq(G->ring) : last + 1;
	int n = 0;
	if (since + 1 < ring_oldest) {
		if (since + 1 < natslog_oldest_seq(G))
			return BUS_RESYNC;
		int64_t js_upto = since;
		n = replay_js(G, since, ring_oldest, session_id, descendants, fn, arg, max, &js_upto);
		if (n < 0)
			return n;
		if (js_upto < ring_oldest - 1 || n >= max) {
			*upto = js_upto;
			return n;
		}
		since = ring_oldest - 1;
	}
	int64_t u;
	int m = evlog_replay(G->ring, since, session_id, descendants, fn, arg, max - n, &u);
	if (m < 0)
		return m;
	*upto = u;
	return n + m;
}

uint64_t natslog_mark(struct natslog *G)
{
	return G->next_id;
}

int natslog_settled(struct natslog *G, uint64_t mark)
{
	pthread_mutex_lock(&G->mu);
	uint64_t lost = G->too_big;
	pthread_mutex_unlock(&G->mu);
	return G->back + lost >= mark;
}

int64_t natslog_unsettled(struct natslog *G)
{
	pthread_mutex_lock(&G->mu);
	uint64_t lost = G->too_big;
	pthread_mutex_unlock(&G->mu);
	int64_t n = (int64_t)G->next_id - (int64_t)G->back - (int64_t)lost;
	return n > 0 ? n : 0;
}

struct natslink *natslog_link(struct natslog *G)
{
	return G->N;
}

void natslog_info(struct natslog *G, struct bus_nats_info *out)
{
	memset(out, 0, sizeof(*out));
	out->url = natslink_url(G->N);
	out->failure = natslink_failure(G->N);
	out->reconnects = natslink_reconnects(G->N);
	out->dropped = G->dropped;
	pthread_mutex_lock(&G->mu);
	out->published = G->published;
	out->dropped += G->too_big;
	out->pending_bytes = G->pending_bytes;
	out->consumer_restarts = G->restarts;
	out->duplicates = G->dupes;
	out->consuming = G->ready && G->csub;
	pthread_mutex_unlock(&G->mu);
}
