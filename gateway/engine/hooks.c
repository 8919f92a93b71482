/* hooks: the lists of callbacks per point, and the bus observer behind HOOK_EVENT. */
#include "engine_int.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

struct hook {
	struct hook *next;
	char *owner;
	hook_fn fn;
	void *arg;
	int removed; /* removed while a run was under way: freed when it ends */
};

static void on_event(void *arg, struct event *ev);

int hooks_add(struct engine *E, enum hook_point at, const char *owner, hook_fn fn, void *arg)
{
	struct hook *h = calloc(1, sizeof(*h));
	if (!h || !(h->owner = strdup(owner ? owner : ""))) {
		free(h);
		return -1;
	}
	h->fn = fn;
	h->arg = arg;
	struct hook **pp = &E->H.head[at];
	while (*pp)
		pp = &(*pp)->next;
	*pp = h;
	if (at == HOOK_EVENT && !E->H.observing) {
		bus_subscribe(E->B, &E->H.sub, on_event, E);
		E->H.observing = 1;
	}
	return 0;
}

/* Frees the removed callbacks (not while a run may still step over them). */
static void sweep(struct engine *E)
{
	if (E->H.running)
		return;
	for (int at = 0; at < HOOK_COUNT; at++) {
		for (struct hook **pp = &E->H.head[at]; *pp;) {
			struct hook *h = *pp;
			if (!h->removed) {
				pp = &h->next;
				continue;
			}
			*pp = h->next;
			free(h->owner);
			free(h);
		}
	}
	if (E->H.observing && !E->H.head[HOOK_EVENT]) {
		bus_unsubscribe(E->B, &E->H.sub);
		E->H.observing = 0;
	}
}

void hooks_remove_owner(struct engine *E, const char *owner)
{
	for (int at = 0; at < HOOK_COUNT; at++)
		for (struct hook *h = E->H.head[at]; h; h = h->next)
			if (!strcmp(h->owner, owner ? owner : ""))
				h->removed = 1;
	sweep(E);
}

void hooks_free(struct engine *E)
{
	for (int at = 0; at < HOOK_COUNT; at++)
		for (struct hook *h = E->H.head[at]; h; h = h->next)
			h->removed = 1;
	E->H.running = 0;
	sweep(E);
}

int hooks_run(struct engine *E, enum hook_point at, const struct hook_ctx *ctx, void *data,
	      char *why, size_t why_len)
{
	int refused = 0;
	char scratch[256];
	if (!why) {
		why = scratch;
		why_len = sizeof(scratch);
	}
	E->H.running++;
	for (struct hook *h = E->H.head[at]; h && !refused; h = h->next) {
		if (h->removed)
			continue;
		why[0] = 0;
		if (h->fn(h->arg, ctx, data, why, why_len) < 0) {
			refused = 1;
			if (!why[0])
				snprintf(why, why_len, "refused by %s", h->owner);
		}
	}
	E->H.running--;
	sweep(E);
	return refused ? -1 : 0;
}

void hooks_ctx(const struct session *s, const struct turn *t, struct hook_ctx *c)
{
	c->session_id = s->id;
	c->root_id = s->root_id[0] ? s->root_id : s->id;
	c->parent_id = s->parent_id[0] ? s->parent_id : NULL;
	c->depth = s->depth;
	c->agent = t ? t->agent : s->agent;
	c->turn_id = t ? t->id : NULL;
}

/* The event's context from its envelope: the path is root/.../parent/session. */
static void on_event(void *arg, struct event *ev)
{
	struct engine *E = arg;
	char root[ID_MAX] = "", parent[ID_MAX] = "";
	const char *path = ev->path ? ev->path : "";
	int depth = 0;
	snprintf(root, sizeof(root), "%.*s", (int)strcspn(path, "/"), path);
	const char *last = strrchr(path, '/');
	if (last) {
		const char *before = last;
		while (before > path && before[-1] != '/')
			before--;
		snprintf(parent, sizeof(parent), "%.*s", (int)(last - before), before);
	}
	for (const char *p = path; *p; p++)
		depth += *p == '/';
	struct hook_ctx c = {.session_id = ev->session_id, .root_id = root,
			     .parent_id = parent[0] ? parent : NULL, .depth = depth};
	hooks_run(E, HOOK_EVENT, &c, ev, NULL, 0);
}
