/* ptools: tools registered by plugins. A plugin tool is an engine tool whose run and
 * cancel call the plugin; each running call is a record (pcall) in the host's live
 * set, keyed by the engine's call id. Exactly one ending takes the record out of the
 * set — the plugin's tool_done/tool_fail (any thread), an abort's cancel, or the
 * timeout — and every later one finds nothing: AG_E_GONE, counted. The record itself
 * is freed on the loop. */
#include "host_int.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

struct ptool {
	struct ag_plugin *p;
	struct ptool *next; /* the plugin's tools, registration order */
	char *name;
	void (*run)(void *user, const struct ag_tool_call *call);
	void (*cancel)(void *user, const struct ag_tool_call *call);
	void *user;
	int64_t timeout_ms;
};

struct pcall {
	struct pcall *next;
	struct ag_plugin *p;
	struct ptool *t;
	struct ag_tool_call call;
	struct ag_ctx ctx;
	char root[ID_MAX], parent[ID_MAX];
	char *input, *directory;
	struct timer timeout;
	int64_t timeout_end_us; /* when the timeout fires (monotonic), while armed */
	int64_t timeout_left_us; /* what was left of it when its asks paused it, or -1 */
	int asks;     /* its permission asks not answered yet: the timeout waits meanwhile */
	int in_run;   /* run() has not returned: the call stays readable until it does */
	int ended;    /* ended while in_run: freed when run() returns */
};

/* ---- the live set ---- */

static void calls_add(struct plugins *H, struct pcall *pc)
{
	pthread_mutex_lock(&H->calls_lock);
	pc->next = H->calls;
	H->calls = pc;
	pthread_mutex_unlock(&H->calls_lock);
}

/* Takes call id of plugin p out of the set (or of any plugin, p NULL); NULL if absent. */
static struct pcall *calls_take(struct plugins *H, struct ag_plugin *p, uint64_t id)
{
	struct pcall *pc = NULL;
	pthread_mutex_lock(&H->calls_lock);
	for (struct pcall **pp = &H->calls; *pp; pp = &(*pp)->next)
		if ((*pp)->call.id == id && (!p || (*pp)->p == p)) {
			pc = *pp;
			*pp = pc->next;
			break;
		}
	pthread_mutex_unlock(&H->calls_lock);
	return pc;
}

static void pcall_free(struct pcall *pc)
{
	timer_cancel(&pc->timeout);
	if (pc->in_run) {
		pc->ended = 1;
		return;
	}
	pc->p->inflight--;
	free(pc->input);
	free(pc->directory);
	free(pc);
}

/* ---- the engine's side ---- */

static void timed_out(struct timer *tm)
{
	struct pcall *pc = container_of(tm, struct pcall, timeout);
	if (calls_take(pc->p->H, pc->p, pc->call.id) != pc)
		return; /* a completion is on its way to the loop: it frees pc */
	char why[160];
	snprintf(why, sizeof(why), "tool %s timed out after %lld ms", pc->t->name,
		 (long long)pc->t->timeout_ms);
	if (pc->t->cancel)
		pc->t->cancel(pc->t->user, &pc->call);
	tool_fail(pc->p->H->E, pc->call.id, why, NULL);
	pcall_free(pc);
}

static int fill_ctx(struct ag_plugin *p, struct pcall *pc, const struct tool_call *c)
{
	struct session_info si;
	if (engine_session_info(p->H->E, c->session_id, &si, NULL))
		return -1;
	memcpy(pc->root, si.root_id[0] ? si.root_id : si.id, ID_MAX);
	memcpy(pc->parent, si.parent_id, ID_MAX);
	if (!(pc->directory = strdup(si.directory)))
		return -1;
	pc->ctx = (struct ag_ctx){.size = sizeof(pc->ctx), .session_id = c->session_id,
				  .root_id = pc->root, .parent_id = pc->parent[0] ? pc->parent : NULL,
				  .depth = si.depth, .agent = c->agent, .turn_id = c->turn_id,
				  .directory = pc->directory};
	return 0;
}

static void run(struct tool_call *c, void *arg)
{
	struct ptool *t = arg;
	struct ag_plugin *p = t->p;
	struct pcall *pc = calloc(1, sizeof(*pc));
	if (atomic_load(&p->closing) || !pc || fill_ctx(p, pc, c) ||
	    !(pc->input = cJSON_PrintUnformatted(c->input))) {
		if (pc) {
			free(pc->input);
			free(pc->directory);
		}
		free(pc);
		tool_call_fail(c, atomic_load(&p->closing) ? "the tool's plugin is unloading"
							    : "out of memory starting the tool", NULL);
		return;
	}
	pc->p = p;
	pc->t = t;
	pc->call = (struct ag_tool_call){.size = sizeof(pc->call), .id = c->id, .ctx = &pc->ctx,
					 .tool = t->name, .call_id = c->call_id,
					 .input_json = pc->input};
	timer_init(&pc->timeout, p->H->L, timed_out);
	p->inflight++;
	atomic_fetch_add(&p->n.tool_calls, 1);
	calls_add(p->H, pc);
	pc->timeout_left_us = -1;
	if (t->timeout_ms > 0) {
		pc->timeout_end_us = mono_us() + t->timeout_ms * 1000;
		timer_arm(&pc->timeout, t->timeout_ms);
	}
	p->H->in_hook++; /* inside the engine's step: no interrupting prompt from here */
	pc->in_run = 1;
	t->run(t->user, &pc->call); /* may end the call before it returns */
	pc->in_run = 0;
	p->H->in_hook--;
	if (pc->ended)
		pcall_free(pc);
}

static void cancel(struct tool_call *c, void *arg)
{
	struct ptool *t = arg;
	struct pcall *pc = calls_take(t->p->H, t->p, c->id);
	if (!pc)
		return; /* a completion is on its way: the engine drops it */
	if (t->cancel) {
		t->p->H->in_hook++;
		t->cancel(t->user, &pc->call);
		t->p->H->in_hook--;
	}
	pcall_free(pc);
}

static void release(void *arg)
{
	struct ptool *t = arg;
	free(t->name);
	free(t);
}

/* ---- the plugin's side ---- */

struct ending {
	struct pcall *pc;
	int ok;
	char *text, *title, *meta;
};

static void finish(struct pcall *pc, int ok, const char *text, const char *title,
		   const char *meta)
{
	struct engine *E = pc->p->H->E;
	uint64_t id = pc->call.id;
	pcall_free(pc); /* before: the engine may go on to the next step at once */
	if (ok)
		tool_done(E, id, text, title, meta);
	else
		tool_fail(E, id, text, meta);
}

static void ending_run(void *arg)
{
	struct ending *en = arg;
	finish(en->pc, en->ok, en->text, en->title, en->meta);
	free(en->text);
	free(en->title);
	free(en->meta);
	free(en);
}

int ptools_end(struct ag_plugin *p, uint64_t id, const char *output, const char *title,
	       const char *error, const char *metadata_json)
{
	struct pcall *pc = calls_take(p->H, p, id);
	if (!pc) {
		atomic_fetch_add(&p->n.tool_dropped, 1);
		log_info("plugin %s: completion of tool call %llu dropped: it ended already, was "
			 "cancelled or timed out, or never was", p->id, (unsigned long long)id);
		return AG_E_GONE;
	}
	int ok = error == NULL;
	const char *text = ok ? output : error;
	if (loop_is_current(p->H->L)) {
		finish(pc, ok, text, title, metadata_json);
		return AG_OK;
	}
	struct ending *en = calloc(1, sizeof(*en));
	if (en) {
		*en = (struct ending){pc, ok, text ? strdup(text) : NULL,
				      title ? strdup(title) : NULL,
				      metadata_json ? strdup(metadata_json) : NULL};
	}
	/* not gated: an ending must reach the loop even while the host stops */
	if (!en || loop_post(p->H->L, ending_run, en)) {
		if (en) {
			free(en->text);
			free(en->title);
			free(en->meta);
			free(en);
		}
		calls_add(p->H, pc); /* back: the timeout or an abort will end it */
		return AG_E_INTERNAL;
	}
	return AG_OK;
}

int ptools_running(struct ag_plugin *p, uint64_t id)
{
	struct plugins *H = p->H;
	int live = 0;
	pthread_mutex_lock(&H->calls_lock);
	for (struct pcall *pc = H->calls; pc && !live; pc = pc->next)
		live = pc->call.id == id && pc->p == p;
	pthread_mutex_unlock(&H->calls_lock);
	return live;
}

void ptools_asking(struct ag_plugin *p, uint64_t id, int delta)
{
	struct plugins *H = p->H;
	pthread_mutex_lock(&H->calls_lock);
	struct pcall *pc = H->calls;
	while (pc && (pc->call.id != id || pc->p != p))
		pc = pc->next;
	pthread_mutex_unlock(&H->calls_lock);
	if (!pc)
		return; /* ended: freed only on the loop, where this runs, so pc stayed valid */
	pc->asks += delta;
	if (delta > 0 && pc->asks == 1 && timer_armed(&pc->timeout)) {
		int64_t left = pc->timeout_end_us - mono_us();
		pc->timeout_left_us = left > 0 ? left : 0;
		timer_cancel(&pc->timeout);
	} else if (delta < 0 && pc->asks == 0 && pc->timeout_left_us >= 0) {
		pc->timeout_end_us = mono_us() + pc->timeout_left_us;
		timer_arm_us(&pc->timeout, pc->timeout_left_us);
		pc->timeout_left_us = -1;
	}
}

int ptools_progress(struct ag_plugin *p, uint64_t id, const char *title, const char *meta)
{
	return ptools_running(p, id) && tool_progress(p->H->E, id, title, meta) == 0 ? AG_OK
										     : AG_E_GONE;
}

static int valid_name(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n < 1 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

static int check_tool(struct ag_plugin *p, const struct ag_tool *t, struct ag_error *err)
{
	if (!t || !AG_HAS(t, struct ag_tool, timeout_ms) || !t->run) {
		plugin_errorf(err, AG_E_INVALID, "tool_register needs a struct ag_tool of ABI 1.0's "
			      "size with a run function");
		return AG_E_INVALID;
	}
	if (!valid_name(t->name)) {
		plugin_errorf(err, AG_E_INVALID, "tool name \"%.70s\" is not [a-zA-Z0-9_-]{1,64}",
			      t->name ? t->name : "(null)");
		return AG_E_INVALID;
	}
	cJSON *schema = t->parameters_json ? cJSON_Parse(t->parameters_json) : NULL;
	int bad = t->parameters_json && !cJSON_IsObject(schema);
	cJSON_Delete(schema);
	if (bad) {
		plugin_errorf(err, AG_E_INVALID, "tool %s: parameters_json is not a JSON object "
			      "(a JSON Schema)", t->name);
		return AG_E_INVALID;
	}
	if (engine_tool(p->H->E, t->name)) {
		plugin_errorf(err, AG_E_INVALID, "a tool named %s is registered already", t->name);
		return AG_E_INVALID;
	}
	return AG_OK;
}

int ptools_register(struct ag_plugin *p, const struct ag_tool *t, struct ag_error *err)
{
	int rc = check_tool(p, t, err);
	if (rc)
		return rc;
	struct ptool *pt = calloc(1, sizeof(*pt));
	if (!pt || !(pt->name = strdup(t->name))) {
		free(pt);
		plugin_errorf(err, AG_E_INTERNAL, "out of memory");
		return AG_E_INTERNAL;
	}
	*pt = (struct ptool){.p = p, .name = pt->name, .run = t->run, .cancel = t->cancel,
			     .user = t->user, .timeout_ms = t->timeout_ms};
	struct tool_def def = {.name = t->name, .description = t->description,
			       .parameters = t->parameters_json, .run = run, .cancel = cancel,
			       .arg = pt, .release = release};
	if (engine_tool_register(p->H->E, &def, p->owner)) {
		release(pt);
		plugin_errorf(err, AG_E_INTERNAL, "out of memory registering tool %s", t->name);
		return AG_E_INTERNAL;
	}
	struct ptool **pp = &p->tools;
	while (*pp)
		pp = &(*pp)->next;
	*pp = pt;
	return AG_OK;
}

/* Off the plugin's list (the engine frees the ptool when no call holds it). */
static void unlist(struct ag_plugin *p, struct ptool *t)
{
	for (struct ptool **pp = &p->tools; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			return;
		}
}

int ptools_unregister(struct ag_plugin *p, const char *name)
{
	for (struct ptool *t = p->tools; t && name; t = t->next)
		if (!strcmp(t->name, name)) {
			unlist(p, t);
			engine_tool_unregister(p->H->E, p->owner, name); /* may free t */
			return AG_OK;
		}
	return AG_E_NOTFOUND;
}

void ptools_remove_all(struct ag_plugin *p)
{
	p->tools = NULL;
	engine_tool_unregister(p->H->E, p->owner, NULL);
}

void ptools_json(struct ag_plugin *p, struct jw *w)
{
	jw_arr(w);
	for (struct ptool *t = p->tools; t; t = t->next)
		jw_str(w, t->name);
	jw_arr_end(w);
}
