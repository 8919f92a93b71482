/* observer: a plugin's event hooks run on a thread of their own, fed by a bounded queue
 * the loop pushes to. The loop never waits: when the queue is full the event is
 * dropped and counted, and the next one delivered says how many went missing. */
#include "host_int.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

struct entry {
	struct event *ev;
	struct hookreg *r;
	char root[ID_MAX], parent[ID_MAX];
	int depth;
	uint64_t dropped; /* events lost just before this one */
};

struct observer {
	pthread_t thread;
	pthread_mutex_t m;
	pthread_cond_t c;
	struct entry *ring;
	size_t cap, head, len;
	uint64_t dropping; /* dropped since the last push that fit */
	int stop;
};

static void deliver(struct ag_plugin *p, struct entry *en)
{
	struct ag_ctx ctx = {.size = sizeof(ctx), .session_id = en->ev->session_id,
			     .root_id = en->root, .parent_id = en->parent[0] ? en->parent : NULL,
			     .depth = en->depth};
	struct ag_event d = {.size = sizeof(d), .seq = en->ev->seq, .time = en->ev->time,
			     .type = en->ev->type, .json = en->ev->json,
			     .json_len = en->ev->len, .dropped = en->dropped,
			     .session_id = en->ev->session_id};
	if (!atomic_load(&en->r->removed)) {
		int rc = bridge_call(en->r, &ctx, &d);
		if (rc != AG_HOOK_CONTINUE) {
			atomic_fetch_add(&p->n.hook_errors, 1);
			log_warn("plugin %s: event hook returned %d (ignored)", p->id, rc);
		}
		atomic_fetch_add(&p->n.events_delivered, 1);
	}
	event_unref(en->ev);
}

static void *run(void *arg)
{
	struct ag_plugin *p = arg;
	struct observer *o = p->obs;
	pthread_mutex_lock(&o->m);
	for (;;) {
		while (!o->len && !o->stop)
			pthread_cond_wait(&o->c, &o->m);
		if (!o->len)
			break; /* stopped, and everything queued was delivered */
		struct entry en = o->ring[o->head];
		o->head = (o->head + 1) % o->cap;
		o->len--;
		pthread_mutex_unlock(&o->m);
		deliver(p, &en);
		pthread_mutex_lock(&o->m);
	}
	pthread_mutex_unlock(&o->m);
	return NULL;
}

int observer_start(struct ag_plugin *p)
{
	if (p->obs)
		return 0;
	struct observer *o = calloc(1, sizeof(*o));
	if (!o || !(o->ring = calloc((size_t)p->H->event_queue, sizeof(*o->ring)))) {
		free(o);
		return -1;
	}
	o->cap = (size_t)p->H->event_queue;
	pthread_mutex_init(&o->m, NULL);
	pthread_cond_init(&o->c, NULL);
	p->obs = o;
	if (pthread_create(&o->thread, NULL, run, p)) {
		p->obs = NULL;
		pthread_cond_destroy(&o->c);
		pthread_mutex_destroy(&o->m);
		free(o->ring);
		free(o);
		return -1;
	}
	pthread_setname_np(o->thread, "ag-observer"); /* at most 15 bytes: no plugin id */
	return 0;
}

void observer_push(struct hookreg *r, struct event *ev, const struct hook_ctx *c)
{
	struct ag_plugin *p = r->p;
	struct observer *o = p->obs;
	pthread_mutex_lock(&o->m);
	if (o->len == o->cap || o->stop) {
		if (!o->dropping++)
			log_warn("plugin %s: its event queue is full (%zu events): dropping events "
				 "until it catches up", p->id, o->cap);
		atomic_fetch_add(&p->n.events_dropped, 1);
		pthread_mutex_unlock(&o->m);
		return;
	}
	if (o->dropping)
		log_warn("plugin %s: %llu events dropped; delivering again", p->id,
			 (unsigned long long)o->dropping);
	struct entry *en = &o->ring[(o->head + o->len++) % o->cap];
	event_ref(ev);
	*en = (struct entry){.ev = ev, .r = r, .depth = c->depth, .dropped = o->dropping};
	snprintf(en->root, sizeof(en->root), "%s", c->root_id ? c->root_id : "");
	snprintf(en->parent, sizeof(en->parent), "%s", c->parent_id ? c->parent_id : "");
	o->dropping = 0;
	pthread_cond_signal(&o->c);
	pthread_mutex_unlock(&o->m);
}

void observer_stop(struct ag_plugin *p)
{
	struct observer *o = p->obs;
	if (!o)
		return;
	pthread_mutex_lock(&o->m);
	o->stop = 1;
	pthread_cond_signal(&o->c);
	pthread_mutex_unlock(&o->m);
	pthread_join(o->thread, NULL);
	pthread_cond_destroy(&o->c);
	pthread_mutex_destroy(&o->m);
	free(o->ring);
	free(o);
	p->obs = NULL;
}
