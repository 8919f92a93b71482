/* bus: builds each event once (type, properties, the tree envelope, a seq from the
 * log) and hands it to every subscriber. The log numbers, keeps and replays events
 * behind a small table of functions: evlog.c on one node (the seq is known at once),
 * natslog.c on NATS JetStream (the stream numbers the event; it is delivered when it
 * comes back). The bus does not know where they are kept. Loop thread only. */
#include "bus.h"
#include "bus_int.h"
#include "evlog.h"
#include "loop.h"
#include "natslog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* The log behind the bus. */
struct bus_log {
	int64_t (*publish)(struct bus *B, struct jw *w, const char *type,
			   const struct bus_env *env);
	int64_t (*last_seq)(void *log);
	int64_t (*oldest_seq)(void *log);
	int (*replay)(void *log, int64_t since, const char *session_id, int descendants,
		      bus_fn fn, void *arg, int max, int64_t *upto);
	void (*destroy)(void *log);
};

struct bus {
	const struct bus_log *ops;
	void *log; /* struct evlog or struct natslog */
	struct bus_sub subs; /* sentinel */
	uint64_t dropped;    /* subscribers cut off for falling behind (bus_note_dropped) */
	struct bus_sub_limits limits;
};

void bus_set_sub_limits(struct bus *B, const struct bus_sub_limits *l)
{
	B->limits.max_bytes = l->max_bytes ? l->max_bytes : BUS_SUB_MAX_BYTES;
	B->limits.max_behind_ms = l->max_behind_ms > 0 ? l->max_behind_ms : BUS_SUB_MAX_BEHIND_MS;
}

struct bus_sub_limits bus_sub_limits(const struct bus *B)
{
	return B->limits;
}

static int64_t publish_local(struct bus *B, struct jw *w, const char *type,
			     const struct bus_env *env);
static int64_t publish_nats(struct bus *B, struct jw *w, const char *type,
			    const struct bus_env *env);

static int64_t local_last(void *log) { return evlog_last_seq(log); }
static int64_t local_oldest(void *log) { return evlog_oldest_seq(log); }
static void local_destroy(void *log) { evlog_destroy(log); }
static int local_replay(void *log, int64_t since, const char *session_id, int descendants,
			bus_fn fn, void *arg, int max, int64_t *upto)
{
	return evlog_replay(log, since, session_id, descendants, fn, arg, max, upto);
}

static const struct bus_log local_log = {
	.publish = publish_local, .last_seq = local_last, .oldest_seq = local_oldest,
	.replay = local_replay, .destroy = local_destroy,
};

static int64_t nats_last(void *log) { return natslog_last_seq(log); }
static int64_t nats_oldest(void *log) { return natslog_oldest_seq(log); }
static void nats_destroy(void *log) { natslog_destroy(log); }
static int nats_replay(void *log, int64_t since, const char *session_id, int descendants,
		       bus_fn fn, void *arg, int max, int64_t *upto)
{
	return natslog_replay(log, since, session_id, descendants, fn, arg, max, upto);
}

static const struct bus_log nats_log = {
	.publish = publish_nats, .last_seq = nats_last, .oldest_seq = nats_oldest,
	.replay = nats_replay, .destroy = nats_destroy,
};

static struct bus *bus_new(void)
{
	struct bus *B = calloc(1, sizeof(*B));
	if (!B)
		return NULL;
	B->subs.next = B->subs.prev = &B->subs;
	bus_set_sub_limits(B, &(struct bus_sub_limits){0});
	return B;
}

struct bus *bus_create(struct store *S, size_t ring_size, int64_t keep)
{
	struct bus *B = bus_new();
	if (!B || !(B->log = evlog_create(S, ring_size, keep))) {
		free(B);
		return NULL;
	}
	B->ops = &local_log;
	return B;
}

struct bus *bus_create_nats(struct loop *L, const char *url, const char *node, size_t ring_size,
			    int64_t keep, size_t max_pending, struct err *e)
{
	struct bus *B = bus_new();
	if (!B) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	B->ops = &nats_log;
	if (!(B->log = natslog_create(L, B, url, node, ring_size, keep,
				      max_pending ? max_pending : BUS_NATS_PENDING_MAX, e))) {
		free(B);
		return NULL;
	}
	return B;
}

void bus_destroy(struct bus *B)
{
	if (!B)
		return;
	B->ops->destroy(B->log);
	free(B);
}

struct natslink *bus_natslink(struct bus *B)
{
	return B->ops == &nats_log ? natslog_link(B->log) : NULL;
}

uint64_t bus_mark(struct bus *B)
{
	return B->ops == &nats_log ? natslog_mark(B->log) : 0;
}

int bus_settled(struct bus *B, uint64_t mark)
{
	return B->ops == &nats_log ? natslog_settled(B->log, mark) : 1;
}

int64_t bus_unsettled(struct bus *B)
{
	return B->ops == &nats_log ? natslog_unsettled(B->log) : 0;
}

int bus_nats_info(struct bus *B, struct bus_nats_info *out)
{
	if (B->ops != &nats_log)
		return -1;
	natslog_info(B->log, out);
	return 0;
}

void bus_begin(struct bus *B, struct jw *w, const char *type)
{
	jw_reset(w);
	jw_obj(w);
	jw_kstr(w, "type", type);
	jw_key(w, "properties");
}

/* seq < 0: without it (the NATS bus: the stream gives it) */
static void envelope(struct jw *w, int64_t seq, const struct bus_env *env)
{
	if (seq >= 0)
		jw_kint(w, "seq", seq);
	jw_kstr(w, "sessionID", env->session_id);
	jw_kstr(w, "rootID", env->root_id ? env->root_id : env->session_id);
	if (env->parent_id)
		jw_kstr(w, "parentID", env->parent_id);
	if (env->parent_tool_call_id)
		jw_kstr(w, "parentToolCallID", env->parent_tool_call_id);
	jw_kint(w, "depth", env->depth);
	if (env->turn_id)
		jw_kstr(w, "turnID", env->turn_id);
}

int64_t bus_publish(struct bus *B, struct jw *w, const char *type, const struct bus_env *env)
{
	return B->ops->publish(B, w, type, env);
}

/* The seq is the stream's: the JSON goes without it, and natslog splices "seq":N, in at
 * the offset given when the event comes back (the envelope's first key follows it). */
static int64_t publish_nats(struct bus *B, struct jw *w, const char *type,
			    const struct bus_env *env)
{
	size_t at = w->len + 1; /* after the ',' the envelope's first key brings */
	envelope(w, -1, env);
	jw_obj_end(w);
	if (w->oom)
		return -1;
	return natslog_publish(B->log, w->buf, w->len, at, type, env);
}

void bus_deliver(struct bus *B, struct event *ev)
{
	for (struct bus_sub *s = B->subs.next, *next; s != &B->subs; s = next) {
		next = s->next; /* a subscriber may leave from inside its callback */
		s->fn(s->arg, ev);
	}
}

static int64_t publish_local(struct bus *B, struct jw *w, const char *type,
			     const struct bus_env *env)
{
	int64_t seq = evlog_next_seq(B->log);
	envelope(w, seq, env);
	jw_obj_end(w);
	if (w->oom)
		return -1;
	struct event *ev = malloc(sizeof(*ev) + w->len + 1);
	if (!ev)
		return -1;
	memset(ev, 0, sizeof(*ev));
	ev->path = strdup(env->path ? env->path : env->session_id);
	atomic_init(&ev->refs, 1);
	ev->seq = seq;
	ev->time = now_ms();
	snprintf(ev->type_buf, sizeof(ev->type_buf), "%s", type); /* custom types are borrowed */
	ev->type = ev->type_buf;
	snprintf(ev->session_id, sizeof(ev->session_id), "%s", env->session_id);
	memcpy(ev->json, w->buf, w->len + 1);
	ev->len = w->len;
	ev->own = 1;
	evlog_append(B->log, ev);
	bus_deliver(B, ev);
	event_unref(ev);
	return seq;
}

void bus_subscribe(struct bus *B, struct bus_sub *s, bus_fn fn, void *arg)
{
	s->fn = fn;
	s->arg = arg;
	s->prev = B->subs.prev;
	s->next = &B->subs;
	B->subs.prev->next = s;
	B->subs.prev = s;
}

void bus_unsubscribe(struct bus *B, struct bus_sub *s)
{
	if (!s->next)
		return;
	s->prev->next = s->next;
	s->next->prev = s->prev;
	s->next = s->prev = NULL;
}

int64_t bus_last_seq(struct bus *B)
{
	return B->ops->last_seq(B->log);
}

int bus_replay(struct bus *B, int64_t since, const char *session_id, int descendants,
	       bus_fn fn, void *arg, int max, int64_t *upto)
{
	return B->ops->replay(B->log, since, session_id, descendants, fn, arg, max, upto);
}

int64_t bus_oldest_seq(struct bus *B)
{
	return B->ops->oldest_seq(B->log);
}

void bus_note_dropped(struct bus *B)
{
	B->dropped++;
}

uint64_t bus_dropped(struct bus *B)
{
	return B->dropped;
}
