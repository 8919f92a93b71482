/* hooks: the lists of callbacks per point, the bus observer behind HOOK_EVENT, and the
 * changes callbacks make to a prompt, a provider request or a tool call. */
#include "engine_int.h"
#include "log.h"
#include "jsonin.h"
#include "wire.h"

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
	c->directory = s->directory;
}

/* The event's context from its envelope: the path is root/.../parent/session. */
static void on_event(void *arg, struct event *ev)
{
	struct engine *E = arg;
	/* on the NATS bus every node delivers every node's events: plugins react to their
	 * own node's only, or each node would (a continuation woken once per node) */
	if (!ev->own)
		return;
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
	E->H.in_event++;
	hooks_run(E, HOOK_EVENT, &c, ev, NULL, 0);
	E->H.in_event--;
}

/* ---- what callbacks may change ---- */

/* Replaces *dst with a copy of v; -1 (nothing changed) when out of memory. */
static int replace(char **dst, const char *v)
{
	char *copy = strdup(v);
	if (!copy)
		return -1;
	free(*dst);
	*dst = copy;
	return 0;
}

int hook_prompt_set_text(struct hook_prompt *hp, const char *text)
{
	struct hook_prompt_run *run = container_of(hp, struct hook_prompt_run, pub);
	if (!text || !*text || replace(&run->text, text))
		return -1;
	hp->text = run->text;
	return 0;
}

int hook_compact_set_summary(struct hook_compact *hc, const char *text)
{
	struct hook_compact_run *run = container_of(hc, struct hook_compact_run, pub);
	if (!text || !*text || replace(&run->summary, text))
		return -1;
	hc->summary = run->summary;
	return 0;
}

void hook_request_free(struct hook_request_run *hr)
{
	free(hr->system);
	cJSON_Delete(hr->tools);
	cJSON_Delete(hr->params);
	cJSON_Delete(hr->headers);
}

int hook_request_append_system(struct hook_request *hr, const char *text)
{
	struct hook_request_run *run = container_of(hr, struct hook_request_run, pub);
	const char *old = run->rq.system;
	char *joined;
	if (!text || !*text ||
	    asprintf(&joined, "%s%s%s", old ? old : "", old && *old ? "\n\n" : "", text) < 0)
		return -1;
	free(run->system);
	run->system = joined;
	run->rq.system = joined;
	return 0;
}

/* The object *o (created when NULL), or NULL when out of memory. */
static cJSON *object(cJSON **o)
{
	if (!*o)
		*o = cJSON_CreateObject();
	return *o;
}

int hook_request_set_param(struct hook_request *hr, const char *key, cJSON *value)
{
	struct hook_request_run *run = container_of(hr, struct hook_request_run, pub);
	if (!key || !value || wire_param_owned(key) || !object(&run->params)) {
		cJSON_Delete(value);
		return -1;
	}
	cJSON_DeleteItemFromObjectCaseSensitive(run->params, key);
	cJSON_AddItemToObject(run->params, key, value);
	run->rq.params = run->params;
	return 0;
}

int hook_request_set_header(struct hook_request *hr, const char *name, const char *value)
{
	struct hook_request_run *run = container_of(hr, struct hook_request_run, pub);
	if (!wire_header_allowed(name, value) || !object(&run->headers))
		return -1;
	cJSON_DeleteItemFromObject(run->headers, name); /* header names have no case */
	if (!cJSON_AddStringToObject(run->headers, name, value))
		return -1;
	run->rq.headers = run->headers;
	return 0;
}

/* The position of the tool called name in a request's tools, or -1. */
static int tool_at(const cJSON *tools, const char *name)
{
	int i = 0;
	for (const cJSON *t = tools ? tools->child : NULL; name && t; t = t->next, i++) {
		const char *n = jsonin_get(t, "name");
		if (n && !strcmp(n, name))
			return i;
	}
	return -1;
}

int hook_request_hide_tool(struct hook_request *hr, const char *name)
{
	struct hook_request_run *run = container_of(hr, struct hook_request_run, pub);
	int i = tool_at(run->tools, name);
	if (i < 0)
		return -1;
	cJSON_DeleteItemFromArray(run->tools, i);
	run->tools_changed = 1;
	return 0;
}

int hook_request_add_tool(struct hook_request *hr, const char *name)
{
	struct hook_request_run *run = container_of(hr, struct hook_request_run, pub);
	const struct tool_def *def = name ? tools_find(&run->E->T, name) : NULL;
	if (!def)
		return -1;
	if (tool_at(run->tools, name) >= 0)
		return 0;
	cJSON *schema = tools_schema(def);
	if (!schema || !cJSON_AddItemToArray(run->tools, schema)) {
		cJSON_Delete(schema);
		return -1;
	}
	run->tools_changed = 1;
	return 0;
}

int hook_tool_set_input(struct hook_tool *ht, cJSON *input)
{
	struct hook_tool_run *run = container_of(ht, struct hook_tool_run, pub);
	char *json = run->at == HOOK_TOOL_BEFORE && cJSON_IsObject(input)
			     ? cJSON_PrintUnformatted(input) : NULL;
	if (!json) {
		cJSON_Delete(input);
		return -1;
	}
	struct toolrun *r = run->r;
	cJSON_Delete(r->input);
	r->input = input;
	r->pub.input = input;
	free(r->p->input);
	r->p->input = json; /* the part's state.input: what ran */
	ht->input = input;
	return 0;
}

/* TOOL_AFTER: the call ends as ts with text as its output or error. */
static int set_result(struct hook_tool *ht, enum tool_state ts, const char *text)
{
	struct hook_tool_run *run = container_of(ht, struct hook_tool_run, pub);
	struct part *p = run->r->p;
	char **keep = ts == TS_COMPLETED ? &p->output : &p->error;
	char **drop = ts == TS_COMPLETED ? &p->error : &p->output;
	if (run->at != HOOK_TOOL_AFTER || !text || replace(keep, text))
		return -1;
	free(*drop);
	*drop = NULL;
	p->ts = ts;
	ht->output = p->output;
	ht->error = p->error;
	return 0;
}

int hook_tool_set_output(struct hook_tool *ht, const char *output)
{
	return set_result(ht, TS_COMPLETED, output);
}

int hook_tool_set_error(struct hook_tool *ht, const char *error)
{
	return error && *error ? set_result(ht, TS_ERROR, error) : -1;
}
