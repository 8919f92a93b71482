/* bus: builds each event once (type, properties, the tree envelope, a seq from the
 * log) and hands it to every subscriber. The log (evlog.c) numbers, keeps and replays
 * events; the bus does not know where they are kept. Loop thread only. */
#include "bus.h"
#include "evlog.h"
#include "loop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bus {
	struct evlog *log;
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

struct bus *bus_create(struct store *S, size_t ring_size, int64_t keep)
{
	struct bus *B = calloc(1, sizeof(*B));
	if (!B || !(B->log = evlog_create(S, ring_size, keep))) {
		free(B);
		return NULL;
	}
	B->subs.next = B->subs.prev = &B->subs;
	bus_set_sub_limits(B, &(struct bus_sub_limits){0});
	return B;
}

void bus_destroy(struct bus *B)
{
	if (!B)
		return;
	evlog_destroy(B->log);
	free(B);
}

void bus_begin(struct bus *B, struct jw *w, const char *type)
{
	jw_reset(w);
	jw_obj(w);
	jw_kstr(w, "type", type);
	jw_key(w, "properties");
}

static void envelope(struct jw *w, int64_t seq, const struct bus_env *env)
{
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
	evlog_append(B->log, ev);
	for (struct bus_sub *s = B->subs.next, *next; s != &B->subs; s = next) {
		next = s->next; /* a subscriber may leave from inside its callback */
		s->fn(s->arg, ev);
	}
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
	return evlog_last_seq(B->log);
}

int bus_replay(struct bus *B, int64_t since, const char *session_id, int descendants,
	       bus_fn fn, void *arg, int max, int64_t *upto)
{
	return evlog_replay(B->log, since, session_id, descendants, fn, arg, max, upto);
}

int64_t bus_oldest_seq(struct bus *B)
{
	return evlog_oldest_seq(B->log);
}

void bus_note_dropped(struct bus *B)
{
	B->dropped++;
}

uint64_t bus_dropped(struct bus *B)
{
	return B->dropped;
}

struct natslink *bus_natslink(struct bus *B)
{
	(void)B;
	return NULL;
}
