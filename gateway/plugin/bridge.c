/* bridge: a plugin's hooks at the engine's hook points. Each registration is one
 * engine callback that turns the engine's data into the ABI's (strings, JSON text),
 * calls the plugin, times it, and takes its out-values back: checked, applied through
 * the hooks.h setters, freed. Anything wrong (an error returned, a malformed
 * out-value) fails open: logged with the plugin id, counted, ignored. Loop thread,
 * except observer events, which only queue here. */
#include "host_int.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

static const char *const names[AG_HOOK_MAX + 1] = {
	[AG_HOOK_EVENT] = "event",
	[AG_HOOK_PROMPT_SUBMIT] = "prompt.submit",
	[AG_HOOK_PROVIDER_REQUEST] = "provider.request",
	[AG_HOOK_TOOL_BEFORE] = "tool.before",
	[AG_HOOK_TOOL_AFTER] = "tool.after",
	[AG_HOOK_PERMISSION_ASK] = "permission.ask",
	[AG_HOOK_SUBAGENT_START] = "subagent.start",
	[AG_HOOK_SUBAGENT_END] = "subagent.end",
	[AG_HOOK_TURN_END] = "turn.end",
	[AG_HOOK_SESSION_IDLE] = "session.idle",
	[AG_HOOK_SESSION_COMPACT] = "session.compact",
	[AG_HOOK_SESSION_REVERT] = "session.revert",
	[AG_HOOK_SESSION_DIFF] = "session.diff",
};

static const enum hook_point points[AG_HOOK_MAX + 1] = {
	[AG_HOOK_EVENT] = HOOK_EVENT,
	[AG_HOOK_PROMPT_SUBMIT] = HOOK_PROMPT_SUBMIT,
	[AG_HOOK_PROVIDER_REQUEST] = HOOK_PROVIDER_REQUEST,
	[AG_HOOK_TOOL_BEFORE] = HOOK_TOOL_BEFORE,
	[AG_HOOK_TOOL_AFTER] = HOOK_TOOL_AFTER,
	[AG_HOOK_PERMISSION_ASK] = HOOK_PERMISSION_ASK,
	[AG_HOOK_SUBAGENT_START] = HOOK_SUBAGENT_START,
	[AG_HOOK_SUBAGENT_END] = HOOK_SUBAGENT_END,
	[AG_HOOK_TURN_END] = HOOK_TURN_END,
	[AG_HOOK_SESSION_IDLE] = HOOK_SESSION_IDLE,
	[AG_HOOK_SESSION_COMPACT] = HOOK_SESSION_COMPACT,
	[AG_HOOK_SESSION_REVERT] = HOOK_SESSION_REVERT,
	[AG_HOOK_SESSION_DIFF] = HOOK_SESSION_DIFF,
};

const char *bridge_hook_name(int id)
{
	return id >= 1 && id <= AG_HOOK_MAX && names[id] ? names[id] : "unknown";
}

void bridge_ctx(const struct hook_ctx *c, struct ag_ctx *out)
{
	*out = (struct ag_ctx){.size = sizeof(*out), .session_id = c->session_id,
			       .root_id = c->root_id, .parent_id = c->parent_id,
			       .depth = c->depth, .agent = c->agent, .turn_id = c->turn_id,
			       .directory = c->directory};
}

int bridge_call(struct hookreg *r, const struct ag_ctx *ctx, void *data)
{
	struct ag_plugin *p = r->p;
	int on_loop = r->id != AG_HOOK_EVENT;
	int64_t t0 = mono_us();
	if (on_loop)
		p->H->in_hook++;
	int rc = r->fn(r->user, ctx, data);
	if (on_loop)
		p->H->in_hook--;
	int64_t us = mono_us() - t0;
	atomic_fetch_add(&p->n.hook_calls, 1);
	atomic_fetch_add(&p->n.hook_us, (uint_fast64_t)us);
	if (us > p->H->slow_hook_us && on_loop) {
		atomic_fetch_add(&p->n.slow_hooks, 1);
		log_warn("plugin %s: hook %s took %lld ms on the loop (plugins.slow_hook_ms is "
			 "%lld)", p->id, names[r->id], (long long)(us / 1000),
			 (long long)(p->H->slow_hook_us / 1000));
	}
	return rc;
}

/* Something a hook did wrong: logged, counted; the hook then counts as absent. */
static int failed_open(struct hookreg *r, const char *what)
{
	atomic_fetch_add(&r->p->n.hook_errors, 1);
	log_warn("plugin %s: hook %s: %s (ignored: the gateway goes on without it)", r->p->id,
		 names[r->id], what);
	return -1;
}

/* 1 refused (where allowed), 0 go on, -1 an error (failed open). */
static int verdict(struct hookreg *r, int rc, int may_refuse)
{
	if (rc == AG_HOOK_CONTINUE)
		return 0;
	if (rc == AG_HOOK_REFUSE && may_refuse) {
		atomic_fetch_add(&r->p->n.hook_refusals, 1);
		return 1;
	}
	char what[64];
	snprintf(what, sizeof(what), rc == AG_HOOK_REFUSE ? "refused where it cannot"
				     : "returned %d", rc);
	return failed_open(r, what);
}

/* The refusal's reason for the engine, with the plugin named. */
static void refusal(struct hookreg *r, const char *reason, char *why, size_t why_len)
{
	snprintf(why, why_len, "%s (plugin %s)", reason && *reason ? reason : "refused",
		 r->p->id);
}

static char *print(const cJSON *j)
{
	return j ? cJSON_PrintUnformatted(j) : NULL;
}

/* ---- one converter per point: engine data in, plugin out-values back ---- */

static int prompt_submit(struct hookreg *r, const struct ag_ctx *ctx, struct hook_prompt *hp,
			 char *why, size_t why_len)
{
	cJSON *own = NULL;
	if (!hp->parts && (own = cJSON_CreateArray())) {
		cJSON *part = cJSON_CreateObject();
		cJSON_AddStringToObject(part, "type", "text");
		cJSON_AddStringToObject(part, "text", hp->text);
		cJSON_AddItemToArray(own, part);
	}
	char *parts = print(hp->parts ? hp->parts : own);
	cJSON_Delete(own);
	struct ag_prompt_submit d = {.size = sizeof(d), .text = hp->text, .parts_json = parts,
				     .source = hp->source, .message_id = hp->message_id};
	int v = verdict(r, bridge_call(r, ctx, &d), 1);
	if (v == 1)
		refusal(r, d.reason, why, why_len);
	else if (v == 0 && d.parts_out) {
		cJSON *j = cJSON_Parse(d.parts_out);
		char *text = NULL;
		struct err e = {0};
		if (!j || engine_parts_text(j, &text, &e) || !*text)
			failed_open(r, "parts_out is not a JSON array of parts with text");
		else
			hook_prompt_set_text(hp, text);
		free(text);
		cJSON_Delete(j);
	}
	free(parts);
	free(d.parts_out);
	free(d.reason);
	return v == 1 ? -1 : 0;
}

/* Each string of a JSON array out-value through fn; a malformed one fails open. */
static void each_name(struct hookreg *r, struct hook_request *hr, const char *json,
		      const char *what, int (*fn)(struct hook_request *, const char *))
{
	cJSON *j = cJSON_Parse(json), *it;
	char msg[96];
	snprintf(msg, sizeof(msg), "%s is not a JSON array of tool names", what);
	if (!cJSON_IsArray(j))
		failed_open(r, msg);
	cJSON *arr = cJSON_IsArray(j) ? j : NULL;
	cJSON_ArrayForEach(it, arr) {
		if (!cJSON_IsString(it) || fn(hr, it->valuestring)) {
			snprintf(msg, sizeof(msg), "%s: \"%.40s\" is not a tool this request can take",
				 what, cJSON_IsString(it) ? it->valuestring : "(not a string)");
			failed_open(r, msg);
		}
	}
	cJSON_Delete(j);
}

static void request_params(struct hookreg *r, struct hook_request *hr, const char *json)
{
	cJSON *j = cJSON_Parse(json);
	if (!cJSON_IsObject(j)) {
		failed_open(r, "params_json is not a JSON object");
	} else {
		while (j->child) {
			cJSON *it = cJSON_DetachItemViaPointer(j, j->child);
			char msg[96];
			snprintf(msg, sizeof(msg), "params_json: \"%.40s\" is the wire format's own",
				 it->string);
			char *key = strdup(it->string);
			if (!key || hook_request_set_param(hr, key, it))
				failed_open(r, msg);
			free(key);
		}
	}
	cJSON_Delete(j);
}

static void request_headers(struct hookreg *r, struct hook_request *hr, const char *json)
{
	cJSON *j = cJSON_Parse(json), *it;
	if (!cJSON_IsObject(j))
		failed_open(r, "headers_json is not a JSON object");
	cJSON *obj = cJSON_IsObject(j) ? j : NULL;
	cJSON_ArrayForEach(it, obj) {
		if (!cJSON_IsString(it) || hook_request_set_header(hr, it->string, it->valuestring)) {
			char msg[96];
			snprintf(msg, sizeof(msg), "headers_json: header \"%.40s\" refused", it->string);
			failed_open(r, msg);
		}
	}
	cJSON_Delete(j);
}

static char *tool_names(const cJSON *tools)
{
	cJSON *names_arr = cJSON_CreateArray(), *t;
	cJSON_ArrayForEach(t, tools) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name");
		if (cJSON_IsString(n))
			cJSON_AddItemToArray(names_arr, cJSON_CreateString(n->valuestring));
	}
	char *s = print(names_arr);
	cJSON_Delete(names_arr);
	return s;
}

static void provider_request(struct hookreg *r, const struct ag_ctx *ctx, struct hook_request *hr)
{
	char *tools = tool_names(hr->rq->tools);
	struct ag_provider_request d = {.size = sizeof(d), .provider = hr->rq->provider,
					.model = hr->rq->model, .system = hr->rq->system,
					.tools_json = tools};
	if (verdict(r, bridge_call(r, ctx, &d), 0) == 0) {
		if (d.system_append && hook_request_append_system(hr, d.system_append))
			failed_open(r, "system_append could not be added");
		if (d.params_json)
			request_params(r, hr, d.params_json);
		if (d.headers_json)
			request_headers(r, hr, d.headers_json);
		if (d.hide_tools_json)
			each_name(r, hr, d.hide_tools_json, "hide_tools_json", hook_request_hide_tool);
		if (d.add_tools_json)
			each_name(r, hr, d.add_tools_json, "add_tools_json", hook_request_add_tool);
	}
	free(tools);
	free(d.system_append);
	free(d.params_json);
	free(d.headers_json);
	free(d.hide_tools_json);
	free(d.add_tools_json);
}

static int tool_before(struct hookreg *r, const struct ag_ctx *ctx, struct hook_tool *ht,
		       char *why, size_t why_len)
{
	char *input = print(ht->input);
	struct ag_tool_before d = {.size = sizeof(d), .tool = ht->tool, .call_id = ht->call_id,
				   .input_json = input ? input : "{}"};
	int v = verdict(r, bridge_call(r, ctx, &d), 1);
	if (v == 1) {
		refusal(r, d.reason, why, why_len);
	} else if (v == 0 && d.input_out) {
		cJSON *j = cJSON_Parse(d.input_out);
		if (!cJSON_IsObject(j)) {
			failed_open(r, "input_out is not a JSON object");
			cJSON_Delete(j);
		} else {
			hook_tool_set_input(ht, j);
		}
	}
	free(input);
	free(d.input_out);
	free(d.reason);
	return v == 1 ? -1 : 0;
}

static void tool_after(struct hookreg *r, const struct ag_ctx *ctx, struct hook_tool *ht)
{
	char *input = print(ht->input);
	struct ag_tool_after d = {.size = sizeof(d), .tool = ht->tool, .call_id = ht->call_id,
				  .input_json = input ? input : "{}", .output = ht->output,
				  .error = ht->error};
	if (verdict(r, bridge_call(r, ctx, &d), 0) == 0) {
		if (d.output_out && (ht->error || hook_tool_set_output(ht, d.output_out)))
			failed_open(r, "output_out set on a call that failed (use error_out)");
		if (d.error_out && (!ht->error || hook_tool_set_error(ht, d.error_out)))
			failed_open(r, "error_out set on a call that completed (use output_out)");
	}
	free(input);
	free(d.output_out);
	free(d.error_out);
}

static void permission_ask(struct hookreg *r, const struct ag_ctx *ctx, struct hook_permission *hp)
{
	char *patterns = print(hp->patterns), *meta = print(hp->metadata);
	struct ag_permission_ask d = {.size = sizeof(d), .permission = hp->permission,
				      .patterns_json = patterns ? patterns : "[]",
				      .metadata_json = meta ? meta : "{}",
				      .decision = AG_PERMISSION_ASK};
	if (verdict(r, bridge_call(r, ctx, &d), 0) == 0 && hp->decision == HOOK_PERMISSION_UNDECIDED) {
		if (d.decision == AG_PERMISSION_ALLOW || d.decision == AG_PERMISSION_DENY) {
			hp->decision = d.decision == AG_PERMISSION_ALLOW ? HOOK_PERMISSION_ALLOWED
									 : HOOK_PERMISSION_DENIED;
			snprintf(hp->reason, sizeof(hp->reason), "%s (plugin %s)",
				 d.reason && *d.reason ? d.reason
				 : d.decision == AG_PERMISSION_ALLOW ? "allowed" : "denied",
				 r->p->id);
		} else if (d.decision != AG_PERMISSION_ASK) {
			failed_open(r, "decision is not ASK, ALLOW or DENY");
		}
	}
	free(patterns);
	free(meta);
	free(d.reason);
}

static void subagent(struct hookreg *r, const struct ag_ctx *ctx, const struct hook_subagent *hs)
{
	struct ag_subagent d = {.size = sizeof(d), .child_id = hs->child_id,
				.parent_call_id = hs->parent_call_id, .agent = hs->agent,
				.background = hs->background, .state = hs->state};
	verdict(r, bridge_call(r, ctx, &d), 0);
}

static void turn_end(struct hookreg *r, const struct ag_ctx *ctx, const struct hook_turn_end *he)
{
	struct ag_turn_end d = {.size = sizeof(d), .state = he->state, .error = he->error,
				.user_message_id = he->user_message_id,
				.terminal_message_id = he->terminal_message_id,
				.source = he->source};
	verdict(r, bridge_call(r, ctx, &d), 0);
}

static void session_compact(struct hookreg *r, const struct ag_ctx *ctx, struct hook_compact *hc)
{
	char *msgs = print(hc->messages);
	struct ag_session_compact d = {.size = sizeof(d), .automatic = hc->automatic,
				       .overflow = hc->overflow, .model = hc->model,
				       .messages_json = msgs ? msgs : "[]"};
	if (verdict(r, bridge_call(r, ctx, &d), 0) == 0 && d.summary_out &&
	    hook_compact_set_summary(hc, d.summary_out))
		failed_open(r, "summary_out is empty");
	free(msgs);
	free(d.summary_out);
}

static const char *const revert_actions[] = {"revert", "unrevert", "commit"};

static int session_revert(struct hookreg *r, const struct ag_ctx *ctx, struct hook_revert *hr,
			  char *why, size_t why_len)
{
	char *calls = print(hr->calls), *turns = print(hr->turns);
	struct ag_session_revert d = {.size = sizeof(d), .action = revert_actions[hr->action],
				      .message_id = hr->message_id, .part_id = hr->part_id,
				      .calls_json = calls ? calls : "[]",
				      .turns_json = turns ? turns : "[]",
				      .snapshot = hr->snapshot};
	int v = verdict(r, bridge_call(r, ctx, &d), hr->action != HOOK_REVERT_COMMIT);
	if (v == 1)
		refusal(r, d.reason, why, why_len);
	else if (v == 0 && (d.snapshot_out || d.diff_out) &&
		 hook_revert_set(hr, d.snapshot_out, d.diff_out))
		failed_open(r, "snapshot_out / diff_out set at an action other than revert");
	free(calls);
	free(turns);
	free(d.snapshot_out);
	free(d.diff_out);
	free(d.reason);
	return v == 1 ? -1 : 0;
}

static void session_diff(struct hookreg *r, const struct ag_ctx *ctx, struct hook_diff *hd)
{
	char *turns = print(hd->turns);
	struct ag_session_diff d = {.size = sizeof(d), .message_id = hd->message_id,
				    .turns_json = turns ? turns : "[]"};
	if (verdict(r, bridge_call(r, ctx, &d), 0) == 0 && d.files_out &&
	    hook_diff_add(hd, cJSON_Parse(d.files_out)))
		failed_open(r, "files_out is not a JSON array of FileDiff objects with a \"file\"");
	free(turns);
	free(d.files_out);
}

/* Does an event filter (hook_events) take this event? */
static int wanted(const struct hookreg *r, const struct event *ev)
{
	const cJSON *t;
	if (!r->types)
		return 1;
	cJSON_ArrayForEach(t, r->types) {
		size_t n = strlen(t->valuestring);
		if (n >= 2 && !strcmp(t->valuestring + n - 2, ".*")
			    ? !strncmp(ev->type, t->valuestring, n - 1)
			    : !strcmp(ev->type, t->valuestring))
			return 1;
	}
	return 0;
}

/* The engine's callback for every registration. */
static int on_hook(void *arg, const struct hook_ctx *c, void *data, char *why, size_t why_len)
{
	struct hookreg *r = arg;
	if (atomic_load(&r->removed) || atomic_load(&r->p->closing))
		return 0;
	if (r->id == AG_HOOK_EVENT) {
		if (wanted(r, data))
			observer_push(r, data, c);
		return 0;
	}
	struct ag_ctx ctx;
	bridge_ctx(c, &ctx);
	switch (r->id) {
	case AG_HOOK_PROMPT_SUBMIT: return prompt_submit(r, &ctx, data, why, why_len);
	case AG_HOOK_PROVIDER_REQUEST: provider_request(r, &ctx, data); return 0;
	case AG_HOOK_TOOL_BEFORE: return tool_before(r, &ctx, data, why, why_len);
	case AG_HOOK_TOOL_AFTER: tool_after(r, &ctx, data); return 0;
	case AG_HOOK_PERMISSION_ASK: permission_ask(r, &ctx, data); return 0;
	case AG_HOOK_SUBAGENT_START:
	case AG_HOOK_SUBAGENT_END: subagent(r, &ctx, data); return 0;
	case AG_HOOK_TURN_END: turn_end(r, &ctx, data); return 0;
	case AG_HOOK_SESSION_COMPACT: session_compact(r, &ctx, data); return 0;
	case AG_HOOK_SESSION_REVERT: return session_revert(r, &ctx, data, why, why_len);
	case AG_HOOK_SESSION_DIFF: session_diff(r, &ctx, data); return 0;
	default: verdict(r, bridge_call(r, &ctx, NULL), 0); return 0; /* SESSION_IDLE */
	}
}

static int add(struct ag_plugin *p, int id, ag_hook_fn fn, void *user, cJSON *types);

int bridge_hook(struct ag_plugin *p, int id, ag_hook_fn fn, void *user)
{
	return add(p, id, fn, user, NULL);
}

int bridge_hook_events(struct ag_plugin *p, ag_hook_fn fn, void *user, const char *types_json)
{
	cJSON *types = types_json ? cJSON_Parse(types_json) : NULL, *t;
	int ok = cJSON_IsArray(types);
	cJSON *arr = ok ? types : NULL;
	cJSON_ArrayForEach(t, arr)
		ok &= cJSON_IsString(t) && *t->valuestring;
	if (!ok) {
		log_warn("plugin %s: hook_events: types_json must be a JSON array of event types",
			 p->id);
		cJSON_Delete(types);
		return AG_E_INVALID;
	}
	int rc = add(p, AG_HOOK_EVENT, fn, user, types);
	if (rc)
		cJSON_Delete(types);
	return rc;
}

static int add(struct ag_plugin *p, int id, ag_hook_fn fn, void *user, cJSON *types)
{
	if (id < 1 || id > AG_HOOK_MAX || !names[id] || !fn) {
		log_warn("plugin %s: hook: %s", p->id, fn ? "unknown hook id" : "NULL function");
		return AG_E_INVALID;
	}
	for (struct hookreg *r = p->hooks; r; r = r->next)
		if (r->id == id && r->fn == fn && r->user == user && !atomic_load(&r->removed))
			return AG_E_INVALID;
	struct hookreg *r = calloc(1, sizeof(*r));
	if (!r)
		return AG_E_INTERNAL;
	*r = (struct hookreg){.p = p, .id = id, .fn = fn, .user = user, .types = types};
	if ((id == AG_HOOK_EVENT && observer_start(p)) ||
	    hooks_add(p->H->E, points[id], p->owner, on_hook, r)) {
		free(r);
		return AG_E_INTERNAL;
	}
	struct hookreg **pp = &p->hooks;
	while (*pp)
		pp = &(*pp)->next;
	*pp = r;
	return AG_OK;
}

int bridge_unhook(struct ag_plugin *p, int id, ag_hook_fn fn, void *user)
{
	for (struct hookreg *r = p->hooks; r; r = r->next)
		if (r->id == id && r->fn == fn && r->user == user && !atomic_load(&r->removed)) {
			atomic_store(&r->removed, 1); /* inert; freed with the plugin's other hooks */
			return AG_OK;
		}
	return AG_E_NOTFOUND;
}

/* After hooks_remove_owner: no engine callback refers to the registrations now. */
void bridge_free(struct ag_plugin *p)
{
	while (p->hooks) {
		struct hookreg *r = p->hooks;
		p->hooks = r->next;
		cJSON_Delete(r->types);
		free(r);
	}
}
