/* fx: a test plugin that misbehaves on purpose, built only against the SDK header. The
 * descriptor's defects are compile-time (FX_MAGIC, FX_MAJOR, FX_MINOR, FX_NO_ENTRY,
 * FX_ID); its behaviour is chosen by words in its options ("fail_load", "rewrite",
 * "refuse", "hook_error", "malformed", "slow", "observer", "observer_slow", "leave",
 * "emit", "permission_hook", "compact"). What it saw is kept in fx_state, which tests read with
 * dlsym. */
#include <agentgate/plugin.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef FX_MAGIC
#define FX_MAGIC AG_PLUGIN_MAGIC
#endif
#ifndef FX_MAJOR
#define FX_MAJOR AG_ABI_MAJOR
#endif
#ifndef FX_MINOR
#define FX_MINOR AG_ABI_MINOR
#endif
#ifndef FX_ID
#define FX_ID "fx"
#endif

#include "fx_state.h"

AG_EXPORT struct fx_state fx_state;

static const struct ag_host *host;
static ag_plugin *self;
static char opts[512];
static atomic_uint_fast64_t hung_call; /* the call "hang" left running */

static int has(const char *word)
{
	return strstr(opts, word) != NULL;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* ---- hooks ---- */

static int on_tool_before(void *user, const struct ag_ctx *ctx, void *data)
{
	struct ag_tool_before *d = data;
	if (has("slow_hook"))
		sleep_ms(60);
	if (has("hook_error"))
		return AG_E_INTERNAL;
	if (has("malformed")) {
		d->input_out = host->strdup("this is not JSON");
		return AG_HOOK_CONTINUE;
	}
	if (has("refuse") && strstr(d->input_json, "secret")) {
		d->reason = host->strdup("fx says no to secrets");
		return AG_HOOK_REFUSE;
	}
	if (has("rewrite") && !strcmp(d->tool, "echo"))
		d->input_out = host->strdup("{\"text\":\"rewritten input\"}");
	return AG_HOOK_CONTINUE;
}

static int on_tool_after(void *user, const struct ag_ctx *ctx, void *data)
{
	struct ag_tool_after *d = data;
	if (has("malformed")) {
		d->error_out = host->strdup("an error on a call that completed");
		return AG_HOOK_CONTINUE;
	}
	if (has("rewrite") && d->output) {
		char buf[256];
		snprintf(buf, sizeof(buf), "after: %s", d->output);
		d->output_out = host->strdup(buf);
	}
	return AG_HOOK_CONTINUE;
}

static int on_prompt(void *user, const struct ag_ctx *ctx, void *data)
{
	struct ag_prompt_submit *d = data;
	if (has("malformed")) {
		d->parts_out = host->strdup("[{\"type\":");
		return AG_HOOK_CONTINUE;
	}
	if (has("refuse") && strstr(d->text, "forbidden")) {
		d->reason = host->strdup("fx refuses forbidden prompts");
		return AG_HOOK_REFUSE;
	}
	if (has("rewrite") && !strncmp(d->text, "shout ", 6)) {
		char buf[256];
		snprintf(buf, sizeof(buf), "[{\"type\":\"text\",\"text\":\"SHOUTED %s\"}]", d->text + 6);
		d->parts_out = host->strdup(buf);
	}
	return AG_HOOK_CONTINUE;
}

static int on_request(void *user, const struct ag_ctx *ctx, void *data)
{
	struct ag_provider_request *d = data;
	if (has("malformed")) {
		d->params_json = host->strdup("[1,2]");
		d->hide_tools_json = host->strdup("{\"not\":\"an array\"}");
		return AG_HOOK_CONTINUE;
	}
	d->system_append = host->strdup("fx was here");
	if (has("request")) {
		d->params_json = host->strdup("{\"temperature\":0.3}");
		d->headers_json = host->strdup("{\"x-fx\":\"from the plugin\"}");
		d->hide_tools_json = host->strdup("[\"sleep\"]");
	}
	return AG_HOOK_CONTINUE;
}

static int on_event(void *user, const struct ag_ctx *ctx, void *data)
{
	const struct ag_event *ev = data;
	long long last = atomic_exchange(&fx_state.last_seq, ev->seq);
	if (ev->seq <= last)
		atomic_fetch_add(&fx_state.seq_out_of_order, 1);
	atomic_fetch_add(&fx_state.dropped_seen, (long long)ev->dropped);
	atomic_fetch_add(&fx_state.events, 1);
	if (has("observer_slow"))
		sleep_ms(20);
	return AG_HOOK_CONTINUE;
}

static int on_turn_end(void *user, const struct ag_ctx *ctx, void *data)
{
	const struct ag_turn_end *d = data;
	atomic_fetch_add(&fx_state.turn_ends, 1);
	if (has("emit")) {
		char props[160];
		snprintf(props, sizeof(props), "{\"state\":\"%s\"}", d->state);
		host->emit(self, ctx->session_id, "turn", props, NULL);
	}
	return AG_HOOK_CONTINUE;
}

/* "permission_hook": patterns with fx-allow are allowed, with fx-deny denied; the rest
 * are left to a human. */
static int on_permission(void *user, const struct ag_ctx *ctx, void *data)
{
	struct ag_permission_ask *d = data;
	if (strstr(d->patterns_json, "fx-allow")) {
		d->decision = AG_PERMISSION_ALLOW;
	} else if (strstr(d->patterns_json, "fx-deny")) {
		d->decision = AG_PERMISSION_DENY;
		d->reason = host->strdup("fx denies it");
	}
	return AG_HOOK_CONTINUE;
}

/* "compact": the summary is fx's own, naming how many messages it was shown */
static int on_compact(void *user, const struct ag_ctx *ctx, void *data)
{
	struct ag_session_compact *d = data;
	int n = 0;
	for (const char *p = d->messages_json; (p = strstr(p, "\"role\"")); p++)
		n++;
	atomic_fetch_add(&fx_state.compacts, 1);
	atomic_store(&fx_state.compact_auto, d->automatic);
	atomic_store(&fx_state.compact_overflow, d->overflow);
	atomic_store(&fx_state.compact_msgs, n);
	snprintf(fx_state.compact_model, sizeof(fx_state.compact_model), "%s", d->model);
	if (has("compact")) {
		char buf[64];
		snprintf(buf, sizeof(buf), "fx summary of %d messages", n);
		d->summary_out = host->strdup(buf);
	}
	return AG_HOOK_CONTINUE;
}

static int on_idle(void *user, const struct ag_ctx *ctx, void *data)
{
	atomic_fetch_add(&fx_state.idle_calls, 1);
	return AG_HOOK_CONTINUE;
}

/* ---- prompts from threads: fx_fire(session, threads, each, key) ---- */

struct wave {
	char sid[64], key[64];
	int each;
};

static void prompt_done(void *user, const char *turn_id, const char *state,
			const char *assistant_message_id, const char *error)
{
	snprintf(fx_state.last_done_state, sizeof(fx_state.last_done_state), "%s", state);
	snprintf(fx_state.last_done_error, sizeof(fx_state.last_done_error), "%s",
		 error ? error : "");
	atomic_fetch_add(&fx_state.dones, 1);
}

/* One prompt from a thread of the caller's (the test's): prompt_async's rc, the turn. */
AG_EXPORT int fx_prompt(const char *sid, const char *text, char *turn_out)
{
	struct ag_prompt pr = {.size = sizeof(pr), .text = text};
	struct ag_prompt_ack ack = {.size = sizeof(ack)};
	int rc = host->prompt_async(self, sid, &pr, prompt_done, NULL, &ack, NULL);
	snprintf(turn_out, 48, "%s", ack.turn_id);
	return rc;
}

AG_EXPORT int fx_cancel(const char *sid, const char *turn)
{
	return host->prompt_cancel(self, sid, turn, NULL);
}

static void *fire(void *arg)
{
	struct wave *w = arg;
	for (int i = 0; i < w->each; i++) {
		struct ag_prompt pr = {.size = sizeof(pr), .text = "wake up from fx",
				       .dedupe_key = w->key[0] && i % 2 ? w->key : NULL};
		struct ag_prompt_ack ack = {.size = sizeof(ack)};
		struct ag_error err = {0};
		if (host->prompt_async(self, w->sid, &pr, prompt_done, NULL, &ack, &err) == AG_OK) {
			atomic_fetch_add(&fx_state.prompts_ok, 1);
			atomic_fetch_add(&fx_state.coalesced, ack.coalesced);
		} else {
			atomic_fetch_add(&fx_state.prompts_failed, 1);
		}
	}
	free(w);
	atomic_fetch_add(&fx_state.threads_done, 1);
	return NULL;
}

/* Starts threads that each send `each` prompts (every other one with key, if any). */
AG_EXPORT void fx_fire(const char *sid, int threads, int each, const char *key)
{
	for (int i = 0; i < threads; i++) {
		struct wave *w = calloc(1, sizeof(*w));
		snprintf(w->sid, sizeof(w->sid), "%s", sid);
		snprintf(w->key, sizeof(w->key), "%s", key ? key : "");
		w->each = each;
		pthread_t t;
		pthread_create(&t, NULL, fire, w);
		pthread_detach(t);
	}
}

/* ---- the tool: input {"mode": now|twice|thread|hang|kv|fail|ask PATTERN} ---- */

struct later {
	uint64_t id;
	int delay_ms;
};

static void *complete_later(void *arg)
{
	struct later *l = arg;
	sleep_ms(l->delay_ms);
	struct ag_error err = {0};
	char *s = host->session_get(self, "ses_whatever", &err); /* loop-only: refused */
	atomic_store(&fx_state.thread_loop_rc, s ? 0 : err.code);
	host->free(s);
	atomic_store(&fx_state.thread_done_rc,
		     host->tool_done(self, l->id, "done from a thread", NULL, NULL));
	free(l);
	return NULL;
}

static void spawn(uint64_t id, int delay_ms)
{
	pthread_t t;
	struct later *l = malloc(sizeof(*l));
	l->id = id;
	l->delay_ms = delay_ms;
	pthread_create(&t, NULL, complete_later, l);
	pthread_detach(t);
}

/* ---- mode "ask PATTERN": asks for bash PATTERN; the answer ends the call ---- */

static void asked(void *user, int decision, const char *message)
{
	uint64_t *id = user;
	char out[300];
	atomic_store(&fx_state.perm_decision, decision);
	atomic_fetch_add(&fx_state.perm_answers, 1);
	snprintf(fx_state.perm_message, sizeof(fx_state.perm_message), "%s", message ? message : "");
	snprintf(out, sizeof(out), "allowed (%s)", message ? message : "");
	if (decision == AG_PERMISSION_ALLOW)
		host->tool_done(self, *id, out, NULL, NULL);
	else
		host->tool_fail(self, *id, message, NULL);
	free(id);
}

static void ask(const struct ag_tool_call *c, const char *pattern)
{
	char pats[200];
	struct ag_error err = {0};
	snprintf(pats, sizeof(pats), "[\"%.*s\"]", (int)strcspn(pattern, "\""), pattern);
	struct ag_permission_request rq = {.size = sizeof(rq), .call = c->id + 1000,
					   .permission = "bash", .patterns_json = pats};
	atomic_store(&fx_state.perm_foreign_rc, host->permission_ask(self, &rq, asked, NULL, NULL));
	uint64_t *id = malloc(sizeof(*id));
	*id = c->id;
	rq.call = c->id;
	int rc = host->permission_ask(self, &rq, asked, id, &err);
	atomic_store(&fx_state.perm_rc, rc);
	if (rc) {
		free(id);
		host->tool_fail(self, c->id, err.message, NULL);
	}
}

static void tool_run(void *user, const struct ag_tool_call *c)
{
	const char *in = c->input_json;
	if (strstr(in, "\"twice\"")) {
		host->tool_done(self, c->id, "first", NULL, NULL);
		atomic_store(&fx_state.second_done_rc, host->tool_done(self, c->id, "second", NULL, NULL));
	} else if (strstr(in, "\"thread\"")) {
		spawn(c->id, 30);
	} else if (strstr(in, "\"burst\"")) { /* wakes race the tool's own round-trip */
		fx_fire(c->ctx->session_id, 2, 5, "wake");
		spawn(c->id, 30);
	} else if (strstr(in, "\"ask ")) { /* fx_slow too: its timeout waits for the answer */
		ask(c, strstr(in, "\"ask ") + 5);
	} else if (strstr(in, "\"hang\"") || !strcmp(c->tool, "fx_slow")) {
		atomic_store(&hung_call, c->id);
	} else if (strstr(in, "\"kv\"")) {
		struct ag_error err = {0};
		char *v = NULL;
		size_t n = 0;
		int rc = host->kv_set(self, "greeting", "kept value", 10, &err);
		if (rc == AG_OK)
			rc = host->kv_get(self, "greeting", &v, &n, &err);
		atomic_store(&fx_state.kv_rc, rc);
		snprintf(fx_state.kv_value, sizeof(fx_state.kv_value), "%.*s", (int)n, v ? v : "");
		host->free(v);
		host->tool_done(self, c->id, "kv done", NULL, NULL);
	} else if (strstr(in, "\"fail\"")) {
		host->tool_fail(self, c->id, "fx failed on purpose", NULL);
	} else {
		char out[200];
		snprintf(out, sizeof(out), "fx ran in %s at depth %d", c->ctx->session_id, c->ctx->depth);
		host->tool_done(self, c->id, out, "fx", "{\"fx\":true}");
	}
}

static void tool_cancel(void *user, const struct ag_tool_call *c)
{
	atomic_fetch_add(&fx_state.cancels, 1);
	/* a completion after the cancel must be dropped */
	atomic_store(&fx_state.late_done_rc, host->tool_done(self, c->id, "too late", NULL, NULL));
}

static const struct ag_tool fx_tool = {
	.size = sizeof(struct ag_tool),
	.name = "fx",
	.description = "The fixture tool: does what its mode says.",
	.parameters_json = "{\"type\":\"object\",\"properties\":{\"mode\":{\"type\":\"string\"}}}",
	.run = tool_run,
	.cancel = tool_cancel,
};

static const struct ag_tool fx_slow_tool = {
	.size = sizeof(struct ag_tool),
	.name = "fx_slow",
	.description = "Never ends by itself; times out after 200 ms.",
	.parameters_json = "{\"type\":\"object\"}",
	.run = tool_run,
	.cancel = tool_cancel,
	.timeout_ms = 200,
};

/* ---- timers and posts ---- */

static void timer_fn(void *user)
{
	atomic_fetch_add((atomic_int *)user, 1);
}

static void posted(void *user)
{
	/* on the loop: a loop-only call works here */
	atomic_store(&fx_state.posted_ran, host->on_loop(self) ? 1 : -1);
	host->timer_add(self, 5, timer_fn, &fx_state.timer_fired);
}

static void *post_from_thread(void *arg)
{
	host->post(self, posted, NULL);
	return NULL;
}

static void start_timers(void)
{
	uint64_t t = host->timer_add(self, 20, timer_fn, &fx_state.timer_cancelled_fired);
	host->timer_cancel(self, t);
	pthread_t th;
	pthread_create(&th, NULL, post_from_thread, NULL);
	pthread_join(th, NULL);
}

/* A host table one minor newer than this gateway's, as a newer plugin would see it. */
struct ag_host_future {
	struct ag_host base;
	int (*future_fn)(ag_plugin *self);
};

static int on_load(ag_plugin *p, const struct ag_host *h, const char *options,
		   struct ag_error *err)
{
	host = h;
	self = p;
	snprintf(opts, sizeof(opts), "%s", options);
	const struct ag_host_future *fh = (const void *)h;
	atomic_store(&fx_state.future_fn_present,
		     AG_HAS(&fh->base, struct ag_host_future, future_fn) ? 1 : 0);
	int rc = h->tool_register(p, &fx_tool, err);
	if (!rc)
		rc = h->tool_register(p, &fx_slow_tool, err);
	h->hook(p, AG_HOOK_TOOL_BEFORE, on_tool_before, NULL);
	h->hook(p, AG_HOOK_TOOL_AFTER, on_tool_after, NULL);
	h->hook(p, AG_HOOK_PROMPT_SUBMIT, on_prompt, NULL);
	h->hook(p, AG_HOOK_PROVIDER_REQUEST, on_request, NULL);
	h->hook(p, AG_HOOK_TURN_END, on_turn_end, NULL);
	h->hook(p, AG_HOOK_SESSION_IDLE, on_idle, NULL);
	h->hook(p, AG_HOOK_SESSION_COMPACT, on_compact, NULL);
	if (has("observer"))
		h->hook(p, AG_HOOK_EVENT, on_event, NULL);
	if (has("permission_hook"))
		h->hook(p, AG_HOOK_PERMISSION_ASK, on_permission, NULL);
	char *ws = AG_HOST_FN(h, setting) ? h->setting(p, "workspace") : NULL;
	snprintf(fx_state.workspace, sizeof(fx_state.workspace), "%s", ws ? ws : "");
	h->free(ws);
	if (has("timers"))
		start_timers();
	if (has("fail_load")) {
		snprintf(err->message, sizeof(err->message), "fx was told to fail");
		return AG_E_INVALID;
	}
	atomic_store(&fx_state.loaded, 1);
	return rc;
}

static void on_unload(ag_plugin *p)
{
	atomic_store(&fx_state.post_at_unload_rc, host->post(self, posted, NULL));
	atomic_store(&fx_state.unloaded, 1);
}

static const struct ag_plugin_info info = {
	.magic = FX_MAGIC,
	.abi_major = FX_MAJOR,
	.abi_minor = FX_MINOR,
	.size = sizeof(struct ag_plugin_info),
	.id = FX_ID,
	.version = "1.2.3",
	.description = "a plugin that misbehaves on purpose",
	.on_load = on_load,
	.on_unload = on_unload,
};

#ifdef FX_NO_ENTRY
AG_EXPORT const struct ag_plugin_info *not_the_entry(void)
#else
AG_EXPORT const struct ag_plugin_info *AG_PLUGIN_ENTRY(void)
#endif
{
	return &info;
}
