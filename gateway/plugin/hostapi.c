/* hostapi: the table of functions a plugin gets in on_load (struct ag_host). Each one
 * checks where it was called from: loop-only functions refuse other threads with
 * AG_E_THREAD; prompt_async and prompt_cancel from another thread hand their work to
 * the loop and wait for its answer (xcall), so they return with the loop's guarantee. */
#include "host_int.h"
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef AGENTGATE_VERSION
#define AGENTGATE_VERSION "0.0.0"
#endif

void plugin_errorf(struct ag_error *err, int code, const char *fmt, ...)
{
	if (!err)
		return;
	va_list ap;
	va_start(ap, fmt);
	err->code = code;
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

int plugin_err_code(const struct err *e)
{
	switch (e->code) {
	case ERR_INVALID: return AG_E_INVALID;
	case ERR_NOTFOUND: return AG_E_NOTFOUND;
	case ERR_BUSY: return AG_E_BUSY;
	case ERR_LIMIT: return AG_E_LIMIT;
	case ERR_UNAVAILABLE: return AG_E_UNAVAILABLE;
	default: return AG_E_INTERNAL;
	}
}

/* An engine error handed to the plugin; returns the AG_E_* code. */
static int from_err(const struct err *e, struct ag_error *err)
{
	int code = plugin_err_code(e);
	plugin_errorf(err, code, "%s", e->msg);
	return code;
}

int plugin_loop_only(struct ag_plugin *p, const char *fn)
{
	if (loop_is_current(p->H->L))
		return 0;
	atomic_fetch_add(&p->n.thread_errors, 1);
	log_error("plugin %s: %s called from a thread that is not the loop: refused (it is "
		  "loop-only; use post)", p->id, fn);
	return AG_E_THREAD;
}

int plugin_gone(struct ag_plugin *p, struct ag_error *err)
{
	if (!atomic_load(&p->closing))
		return 0;
	plugin_errorf(err, AG_E_GONE, "plugin %s is unloading", p->id);
	return AG_E_GONE;
}

/* The checks every loop-only function makes first. */
static int loop_call(struct ag_plugin *p, const char *fn, struct ag_error *err)
{
	int rc = p ? plugin_loop_only(p, fn) : AG_E_INVALID;
	if (rc) {
		plugin_errorf(err, rc, p ? "%s is loop-only" : "%s: no plugin handle", fn);
		return rc;
	}
	return plugin_gone(p, err);
}

/* ---- log, memory ---- */

static void api_log(ag_plugin *p, int level, const char *fmt, ...)
{
	enum log_level l = level <= AG_LOG_ERROR ? LOG_ERROR : level >= AG_LOG_DEBUG ? LOG_DEBUG
							       : (enum log_level)level;
	if (!log_enabled(l))
		return;
	char line[1536];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt ? fmt : "", ap);
	va_end(ap);
	log_msg(l, "plugin %s: %s", p ? p->id : "?", line);
}

static void *api_alloc(size_t n)
{
	return malloc(n ? n : 1);
}

static void api_free(void *ptr)
{
	free(ptr);
}

static char *api_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* ---- getting to the loop ---- */

/* Refuses a call when the host stops or the plugin unloads; else posts fn(arg), under
 * the gate so plugins_stop/unload can answer everything posted before. */
static int gate_post(struct ag_plugin *p, void (*fn)(void *), void *arg, struct ag_error *err)
{
	struct plugins *H = p->H;
	pthread_mutex_lock(&H->gate);
	int rc = H->stopping ? AG_E_UNAVAILABLE : atomic_load(&p->closing) ? AG_E_GONE : AG_OK;
	if (rc == AG_OK && loop_post(H->L, fn, arg))
		rc = AG_E_INTERNAL;
	pthread_mutex_unlock(&H->gate);
	if (rc)
		plugin_errorf(err, rc, rc == AG_E_UNAVAILABLE ? "the gateway is stopping"
				       : rc == AG_E_GONE ? "plugin %s is unloading"
							 : "out of memory", p->id);
	return rc;
}

struct post {
	struct ag_plugin *p;
	void (*fn)(void *user);
	void *user;
};

static void post_run(void *arg)
{
	struct post *x = arg;
	x->fn(x->user);
	free(x);
}

static int api_post(ag_plugin *p, void (*fn)(void *user), void *user)
{
	if (!p || !fn)
		return AG_E_INVALID;
	struct post *x = malloc(sizeof(*x));
	if (!x)
		return AG_E_INTERNAL;
	*x = (struct post){p, fn, user};
	int rc = gate_post(p, post_run, x, NULL);
	if (rc)
		free(x);
	return rc;
}

/* A call made from another thread, run on the loop while the caller waits. */
struct xcall {
	void (*fn)(struct xcall *x);
	struct ag_plugin *p;
	int rc;
	pthread_mutex_t m;
	pthread_cond_t c;
	int done;
	/* the call's arguments, borrowed from the waiting caller */
	const char *session_id, *turn_id;
	const struct ag_prompt *prompt;
	ag_prompt_done_fn done_fn;
	void *user;
	struct ag_prompt_ack *ack;
	struct ag_error *err;
};

static void xcall_on_loop(void *arg)
{
	struct xcall *x = arg;
	x->fn(x);
	pthread_mutex_lock(&x->m);
	x->done = 1;
	pthread_cond_signal(&x->c);
	pthread_mutex_unlock(&x->m);
}

static int xcall(struct xcall *x)
{
	struct ag_plugin *p = x->p;
	if (loop_is_current(p->H->L)) {
		pthread_mutex_lock(&p->H->gate);
		int stopping = p->H->stopping;
		pthread_mutex_unlock(&p->H->gate);
		if (stopping) {
			plugin_errorf(x->err, AG_E_UNAVAILABLE, "the gateway is stopping");
			return AG_E_UNAVAILABLE;
		}
		if (plugin_gone(p, x->err))
			return AG_E_GONE;
		x->fn(x);
		return x->rc;
	}
	pthread_mutex_init(&x->m, NULL);
	pthread_cond_init(&x->c, NULL);
	int rc = gate_post(p, xcall_on_loop, x, x->err);
	if (rc == AG_OK) {
		pthread_mutex_lock(&x->m);
		while (!x->done)
			pthread_cond_wait(&x->c, &x->m);
		pthread_mutex_unlock(&x->m);
		rc = x->rc;
	}
	pthread_cond_destroy(&x->c);
	pthread_mutex_destroy(&x->m);
	return rc;
}

/* ---- prompts ---- */

struct pwait {
	struct turn_waiter tw;
	struct ag_plugin *p;
	ag_prompt_done_fn done;
	void *user;
	char turn_id[48];
};

static void prompt_ended(struct turn_waiter *tw, const char *state, const char *msg_id,
			 const char *error)
{
	struct pwait *w = container_of(tw, struct pwait, tw);
	w->p->inflight--;
	w->done(w->user, w->turn_id, state, msg_id, error);
	free(w);
}

/* The prompt: text, or parts_json parsed into *parts (OpenCode's parts, as the HTTP
 * API takes them). */
static int prompt_input(const struct ag_prompt *pr, cJSON **parts, struct err *e)
{
	*parts = NULL;
	if (pr->text)
		return 0;
	if (!pr->parts_json) {
		err_set(e, ERR_INVALID, "the prompt has neither text nor parts_json");
		return -1;
	}
	if (!(*parts = cJSON_Parse(pr->parts_json))) {
		err_set(e, ERR_INVALID, "parts_json is not JSON");
		return -1;
	}
	return 0;
}

static void do_prompt(struct xcall *x)
{
	struct ag_plugin *p = x->p;
	const struct ag_prompt *pr = x->prompt;
	struct err err = {0}, *e = &err;
	struct pwait *w = NULL;
	cJSON *parts = NULL;
	if ((pr->flags & AG_PROMPT_INTERRUPT) && p->H->in_hook) {
		/* the running turn may be the one inside whose hook this runs */
		err_set(e, ERR_BUSY, "a prompt with AG_PROMPT_INTERRUPT cannot be sent from "
			"inside a hook (post it, then send it)");
		goto fail;
	}
	if (prompt_input(pr, &parts, e))
		goto fail;
	struct prompt q = {
		.session_id = x->session_id, .text = pr->text, .parts = parts, .source = p->owner,
		.agent = pr->agent, .model = pr->model, .dedupe_key = pr->dedupe_key,
		.policy = pr->flags & AG_PROMPT_INTERRUPT ? TURN_POLICY_INTERRUPT
			  : pr->flags & AG_PROMPT_REJECT_IF_BUSY ? TURN_POLICY_REJECT : TURN_POLICY_QUEUE,
	};
	if (x->done_fn && !(w = calloc(1, sizeof(*w)))) {
		err_set(e, ERR_INTERNAL, "out of memory");
		goto fail;
	}
	struct prompt_result r;
	if (w) {
		*w = (struct pwait){.tw.fn = prompt_ended, .p = p, .done = x->done_fn,
				    .user = x->user};
		p->inflight++; /* before: the turn may end while it is accepted */
	}
	if (engine_prompt(p->H->E, &q, &r, w ? &w->tw : NULL, e)) {
		if (w)
			p->inflight--;
		goto fail;
	}
	atomic_fetch_add(&p->n.prompts, 1);
	if (w)
		snprintf(w->turn_id, sizeof(w->turn_id), "%s", r.turn_id);
	if (x->ack && AG_HAS(x->ack, struct ag_prompt_ack, coalesced)) {
		snprintf(x->ack->turn_id, sizeof(x->ack->turn_id), "%s", r.turn_id);
		snprintf(x->ack->message_id, sizeof(x->ack->message_id), "%s", r.user_message_id);
		x->ack->coalesced = r.coalesced;
	}
	cJSON_Delete(parts);
	x->rc = AG_OK;
	return;
fail:
	cJSON_Delete(parts);
	free(w);
	x->rc = from_err(e, x->err);
}

static int api_prompt_async(ag_plugin *p, const char *session_id, const struct ag_prompt *pr,
			    ag_prompt_done_fn done, void *user, struct ag_prompt_ack *ack,
			    struct ag_error *err)
{
	if (!p || !session_id || !pr || !AG_HAS(pr, struct ag_prompt, flags)) {
		plugin_errorf(err, AG_E_INVALID, "prompt_async needs a plugin handle, a session "
			      "id and a struct ag_prompt (of ABI 1.0's size or larger)");
		return AG_E_INVALID;
	}
	struct xcall x = {.fn = do_prompt, .p = p, .session_id = session_id, .prompt = pr,
			  .done_fn = done, .user = user, .ack = ack, .err = err};
	return xcall(&x);
}

static void do_cancel(struct xcall *x)
{
	struct err e = {0};
	x->rc = engine_turn_cancel(x->p->H->E, x->session_id, x->turn_id, &e) ? from_err(&e, x->err)
									       : AG_OK;
}

static int api_prompt_cancel(ag_plugin *p, const char *session_id, const char *turn_id,
			     struct ag_error *err)
{
	if (!p || !session_id || !turn_id) {
		plugin_errorf(err, AG_E_INVALID, "prompt_cancel needs a session id and a turn id");
		return AG_E_INVALID;
	}
	struct xcall x = {.fn = do_cancel, .p = p, .session_id = session_id, .turn_id = turn_id,
			  .err = err};
	return xcall(&x);
}

/* ---- hooks ---- */

static int api_hook(ag_plugin *p, int id, ag_hook_fn fn, void *user)
{
	int rc = loop_call(p, "hook", NULL);
	return rc ? rc : bridge_hook(p, id, fn, user);
}

static int api_unhook(ag_plugin *p, int id, ag_hook_fn fn, void *user)
{
	int rc = loop_call(p, "unhook", NULL);
	return rc ? rc : bridge_unhook(p, id, fn, user);
}

static int api_hook_events(ag_plugin *p, ag_hook_fn fn, void *user, const char *types_json)
{
	int rc = loop_call(p, "hook_events", NULL);
	return rc ? rc : bridge_hook_events(p, fn, user, types_json);
}

/* ---- timers ---- */

struct ptimer {
	struct timer t;
	struct ptimer *next;
	struct ag_plugin *p;
	uint64_t id;
	void (*fn)(void *user);
	void *user;
};

static void ptimer_unlink(struct ptimer *pt)
{
	for (struct ptimer **pp = &pt->p->timers; *pp; pp = &(*pp)->next)
		if (*pp == pt) {
			*pp = pt->next;
			return;
		}
}

static void ptimer_fired(struct timer *t)
{
	struct ptimer *pt = container_of(t, struct ptimer, t);
	ptimer_unlink(pt);
	pt->fn(pt->user);
	free(pt);
}

static uint64_t api_timer_add(ag_plugin *p, int64_t ms, void (*fn)(void *user), void *user)
{
	static uint64_t next_id;
	struct ptimer *pt;
	if (loop_call(p, "timer_add", NULL) || !fn || ms < 0 || !(pt = calloc(1, sizeof(*pt))))
		return 0;
	*pt = (struct ptimer){.next = p->timers, .p = p, .id = ++next_id, .fn = fn, .user = user};
	timer_init(&pt->t, p->H->L, ptimer_fired);
	timer_arm(&pt->t, ms);
	p->timers = pt;
	return pt->id;
}

static int api_timer_cancel(ag_plugin *p, uint64_t id)
{
	int rc = loop_call(p, "timer_cancel", NULL);
	if (rc)
		return rc;
	for (struct ptimer *pt = p->timers; pt; pt = pt->next)
		if (pt->id == id) {
			timer_cancel(&pt->t);
			ptimer_unlink(pt);
			free(pt);
			return AG_OK;
		}
	return AG_E_NOTFOUND;
}

void ptimers_cancel_all(struct ag_plugin *p)
{
	while (p->timers) {
		struct ptimer *pt = p->timers;
		p->timers = pt->next;
		timer_cancel(&pt->t);
		free(pt);
	}
}

/* ---- sessions ---- */

static int api_session_create(ag_plugin *p, const struct ag_session_params *sp, char *id_out,
			      struct ag_error *err)
{
	int rc = loop_call(p, "session_create", err);
	if (rc)
		return rc;
	if (!sp || !id_out || !AG_HAS(sp, struct ag_session_params, directory)) {
		plugin_errorf(err, AG_E_INVALID, "session_create needs parameters and id_out");
		return AG_E_INVALID;
	}
	struct session_params q = {.parent_id = sp->parent_id, .title = sp->title,
				   .agent = sp->agent, .model = sp->model,
				   .directory = sp->directory};
	struct err e = {0};
	return engine_session_create(p->H->E, &q, id_out, &e) ? from_err(&e, err) : AG_OK;
}

/* JSON written by an engine call, as a host-allocated string. */
static char *json_of(struct ag_plugin *p, const char *session_id, int limit,
		     struct ag_error *err, int messages)
{
	struct err e = {0};
	struct jw w;
	jw_init(&w);
	int rc = messages ? engine_messages_json(p->H->E, session_id, limit, &w, &e)
			  : engine_session_json(p->H->E, session_id, &w, &e);
	if (rc) {
		jw_free(&w);
		from_err(&e, err);
		return NULL;
	}
	return jw_take(&w, NULL);
}

static char *api_session_get(ag_plugin *p, const char *session_id, struct ag_error *err)
{
	if (loop_call(p, "session_get", err))
		return NULL;
	return json_of(p, session_id, 0, err, 0);
}

static char *api_session_messages(ag_plugin *p, const char *session_id, int limit,
				  struct ag_error *err)
{
	if (loop_call(p, "session_messages", err))
		return NULL;
	return json_of(p, session_id, limit, err, 1);
}

/* ---- tools ---- */

static int api_tool_register(ag_plugin *p, const struct ag_tool *t, struct ag_error *err)
{
	int rc = loop_call(p, "tool_register", err);
	return rc ? rc : ptools_register(p, t, err);
}

static int api_tool_unregister(ag_plugin *p, const char *name)
{
	int rc = loop_call(p, "tool_unregister", NULL);
	return rc ? rc : ptools_unregister(p, name);
}

static int api_tool_done(ag_plugin *p, uint64_t id, const char *output, const char *title,
			 const char *metadata_json)
{
	return p ? ptools_end(p, id, output ? output : "", title, NULL, metadata_json)
		 : AG_E_INVALID;
}

static int api_tool_fail(ag_plugin *p, uint64_t id, const char *error, const char *metadata_json)
{
	return p ? ptools_end(p, id, NULL, NULL, error ? error : "the tool failed", metadata_json)
		 : AG_E_INVALID;
}

static int api_tool_progress(ag_plugin *p, uint64_t id, const char *title,
			     const char *metadata_json)
{
	return p ? ptools_progress(p, id, title, metadata_json) : AG_E_INVALID;
}

/* ---- kv ---- */

static int api_kv_get(ag_plugin *p, const char *key, char **value, size_t *len,
		      struct ag_error *err)
{
	int rc = loop_call(p, "kv_get", err);
	if (rc)
		return rc;
	struct err e = {0};
	if (!key || !value) {
		plugin_errorf(err, AG_E_INVALID, "kv_get needs a key and a value pointer");
		return AG_E_INVALID;
	}
	size_t n = 0;
	if (engine_kv_get(p->H->E, p->owner, key, value, &n, &e))
		return from_err(&e, err);
	if (len)
		*len = n;
	return AG_OK;
}

static int api_kv_set(ag_plugin *p, const char *key, const void *value, size_t len,
		      struct ag_error *err)
{
	int rc = loop_call(p, "kv_set", err);
	if (rc)
		return rc;
	struct err e = {0};
	if (!key || (!value && len)) {
		plugin_errorf(err, AG_E_INVALID, "kv_set needs a key (and a value when len > 0)");
		return AG_E_INVALID;
	}
	return engine_kv_set(p->H->E, p->owner, key, value ? value : "", len, &e)
		       ? from_err(&e, err) : AG_OK;
}

static int api_kv_delete(ag_plugin *p, const char *key, struct ag_error *err)
{
	int rc = loop_call(p, "kv_delete", err);
	if (rc)
		return rc;
	struct err e = {0};
	if (!key) {
		plugin_errorf(err, AG_E_INVALID, "kv_delete needs a key");
		return AG_E_INVALID;
	}
	return engine_kv_delete(p->H->E, p->owner, key, &e) ? from_err(&e, err) : AG_OK;
}

/* ---- events ---- */

static int api_emit(ag_plugin *p, const char *session_id, const char *name,
		    const char *properties_json, struct ag_error *err)
{
	int rc = loop_call(p, "emit", err);
	if (rc)
		return rc;
	if (!session_id || !name || !*name || strlen(name) + strlen(p->id) + 8 > 47) {
		plugin_errorf(err, AG_E_INVALID, "emit needs a session id and a name of at most "
			      "%zu bytes", strlen(p->id) < 39 ? 39 - strlen(p->id) : 0);
		return AG_E_INVALID;
	}
	char type[48];
	snprintf(type, sizeof(type), "plugin.%s.%s", p->id, name);
	struct err e = {0};
	return engine_emit(p->H->E, session_id, type, properties_json ? properties_json : "{}", &e)
		       ? from_err(&e, err) : AG_OK;
}

static int api_session_todo_set(ag_plugin *p, const char *session_id, const char *todos_json,
				struct ag_error *err)
{
	int rc = loop_call(p, "session_todo_set", err);
	if (rc)
		return rc;
	struct err e = {0};
	return engine_todo_set(p->H->E, session_id, todos_json, &e) ? from_err(&e, err) : AG_OK;
}

/* ---- permissions ---- */

struct pask {
	struct ag_plugin *p;
	ag_permission_done_fn done;
	void *user;
	uint64_t call;
};

static void pask_done(void *arg, int allowed, const char *message)
{
	struct pask *pa = arg;
	pa->p->inflight--;
	ptools_asking(pa->p, pa->call, -1);
	pa->done(pa->user, allowed ? AG_PERMISSION_ALLOW : AG_PERMISSION_DENY, message);
	free(pa);
}

/* JSON text a plugin passed (NULL stays NULL); -1 when it does not parse. */
static int parse_arg(const char *json, const char *what, cJSON **out, struct ag_error *err)
{
	*out = json ? cJSON_Parse(json) : NULL;
	if (!json || *out)
		return 0;
	plugin_errorf(err, AG_E_INVALID, "permission_ask: %s is not JSON", what);
	return -1;
}

static int api_permission_ask(ag_plugin *p, const struct ag_permission_request *rq,
			      ag_permission_done_fn done, void *user, struct ag_error *err)
{
	int rc = loop_call(p, "permission_ask", err);
	if (rc)
		return rc;
	if (!rq || !AG_HAS(rq, struct ag_permission_request, metadata_json) || !done) {
		plugin_errorf(err, AG_E_INVALID, "permission_ask needs a request of ABI 1.0's size "
			      "and a done function");
		return AG_E_INVALID;
	}
	if (!ptools_running(p, rq->call)) {
		plugin_errorf(err, AG_E_NOTFOUND, "tool call %llu is not a running call of plugin %s",
			      (unsigned long long)rq->call, p->id);
		return AG_E_NOTFOUND;
	}
	cJSON *pats = NULL, *always = NULL, *meta = NULL;
	struct pask *pa = NULL;
	struct err e = {0};
	rc = AG_E_INVALID;
	if (parse_arg(rq->patterns_json, "patterns_json", &pats, err) ||
	    parse_arg(rq->always_json, "always_json", &always, err) ||
	    parse_arg(rq->metadata_json, "metadata_json", &meta, err))
		goto out;
	if (!(pa = calloc(1, sizeof(*pa)))) {
		plugin_errorf(err, rc = AG_E_INTERNAL, "out of memory");
		goto out;
	}
	*pa = (struct pask){p, done, user, rq->call};
	p->inflight++; /* an ask waiting is the plugin's work in flight */
	ptools_asking(p, rq->call, 1); /* and the tool's timeout waits with it */
	rc = engine_permission_ask(p->H->E, rq->call, rq->permission, pats, always, rq->title,
				   meta, pask_done, pa, &e) ? from_err(&e, err) : AG_OK;
	if (rc) {
		p->inflight--;
		ptools_asking(p, rq->call, -1);
		free(pa);
	}
out:
	cJSON_Delete(pats);
	cJSON_Delete(always);
	cJSON_Delete(meta);
	return rc;
}

/* ---- settings ---- */

/* Environment variables no tool may hand to a child process. */
static const char *const secrets[] = {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AGENTGATE_TOKEN"};

static char *api_setting(ag_plugin *p, const char *name)
{
	const cJSON *root = p ? engine_config(p->H->E)->root : NULL;
	cJSON *v = NULL;
	if (!root || !name)
		return NULL;
	if (!strcmp(name, "workspace")) {
		v = cJSON_CreateString(engine_workspace(p->H->E)); /* flag, config or cwd */
	} else if (!strcmp(name, "mcp")) {
		v = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(root, "mcp"), 1);
	} else if (!strcmp(name, "data") && *engine_data_dir(p->H->E)) {
		v = cJSON_CreateString(engine_data_dir(p->H->E)); /* a plugin keeps files below */
	} else if (!strcmp(name, "secrets")) {
		v = cJSON_CreateStringArray(secrets, (int)(sizeof(secrets) / sizeof(secrets[0])));
	}
	char *out = v ? cJSON_PrintUnformatted(v) : NULL;
	cJSON_Delete(v);
	return out;
}

/* ---- identity ---- */

static int api_on_loop(ag_plugin *p)
{
	return p && loop_is_current(p->H->L);
}

static const char *api_id(ag_plugin *p)
{
	return p ? p->id : NULL;
}

void hostapi_init(struct ag_host *a)
{
	*a = (struct ag_host){
		.size = sizeof(*a), .abi_major = AG_ABI_MAJOR, .abi_minor = AG_ABI_MINOR,
		.version = AGENTGATE_VERSION,
		.log = api_log, .alloc = api_alloc, .free = api_free, .strdup = api_strdup,
		.hook = api_hook, .unhook = api_unhook, .post = api_post,
		.timer_add = api_timer_add, .timer_cancel = api_timer_cancel,
		.prompt_async = api_prompt_async, .prompt_cancel = api_prompt_cancel,
		.session_create = api_session_create, .session_get = api_session_get,
		.session_messages = api_session_messages,
		.tool_register = api_tool_register, .tool_unregister = api_tool_unregister,
		.tool_done = api_tool_done, .tool_fail = api_tool_fail,
		.kv_get = api_kv_get, .kv_set = api_kv_set, .kv_delete = api_kv_delete,
		.emit = api_emit, .on_loop = api_on_loop, .id = api_id,
		.hook_events = api_hook_events, .tool_progress = api_tool_progress,
		.setting = api_setting, .permission_ask = api_permission_ask,
		.session_todo_set = api_session_todo_set,
	};
}
