#include "api.h"
#include "api_ops.h"
#include "compat.h"
#include "container.h"
#include "jsonin.h"
#include "plugins.h"
#include "task.h"

#include <stdlib.h>
#include <string.h>

static int session_id(const cJSON *p, const char **id, struct err *e)
{
	return jsonin_str(p, "sessionID", 1, id, e);
}

/* model: "provider/model" or {providerID, modelID|id}; written into buf. */
static int parse_model(const cJSON *p, char *buf, size_t n, const char **out, struct err *e)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(p, "model");
	if (!m || cJSON_IsNull(m))
		return 0;
	if (cJSON_IsString(m)) {
		*out = m->valuestring;
		return 0;
	}
	const char *pid = NULL, *mid = NULL;
	if (cJSON_IsObject(m) && !jsonin_str(m, "providerID", 1, &pid, e) &&
	    (!jsonin_str(m, "modelID", 0, &mid, e) && (mid || !jsonin_str(m, "id", 1, &mid, e)))) {
		snprintf(buf, n, "%s/%s", pid, mid);
		*out = buf;
		return 0;
	}
	if (!e || e->code == ERR_NONE)
		err_set(e, ERR_INVALID, "\"model\" must be \"provider/model\" or "
			"{\"providerID\",\"modelID\"}");
	else
		snprintf(e->msg + strlen(e->msg), sizeof(e->msg) - strlen(e->msg), " in \"model\"");
	return -1;
}

static int do_create(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	struct session_params sp = {0};
	char model[256];
	if (jsonin_str(p, "parentID", 0, &sp.parent_id, e) ||
	    jsonin_str(p, "title", 0, &sp.title, e) || jsonin_str(p, "agent", 0, &sp.agent, e) ||
	    jsonin_str(p, "directory", 0, &sp.directory, e) ||
	    parse_model(p, model, sizeof(model), &sp.model, e))
		return -1;
	char id[48];
	if (engine_session_create(E, &sp, id, e))
		return -1;
	return engine_session_json(E, id, w, e);
}

/* A non-negative integer param (absent: 0). */
static int count_param(const cJSON *p, const char *name, long long *out, struct err *e)
{
	*out = 0;
	if (jsonin_int(p, name, 0, out, e))
		return -1;
	if (*out >= 0)
		return 0;
	err_set(e, ERR_INVALID, "\"%s\" must not be negative", name);
	return -1;
}

/* OpenCode's filters: roots, start (updated since, ms), search (in the title), limit,
 * directory (exactly), path (a directory relative to the workspace, and below it; ""
 * is every directory), scope "project" (every directory of the project, which is the
 * workspace's: no directory filter). */
static int do_list(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	int roots = 0;
	long long start, limit;
	const char *scope = NULL, *path = NULL;
	struct session_query q = {0};
	if (jsonin_bool(p, "roots", &roots, e) || count_param(p, "start", &start, e) ||
	    count_param(p, "limit", &limit, e) || jsonin_str(p, "search", 0, &q.search, e) ||
	    jsonin_str(p, "directory", 0, &q.directory, e) || jsonin_str(p, "path", 0, &path, e) ||
	    jsonin_str(p, "scope", 0, &scope, e))
		return -1;
	if (scope && strcmp(scope, "project")) {
		err_set(e, ERR_INVALID, "\"scope\" must be \"project\" (got \"%.100s\")", scope);
		return -1;
	}
	char under[8192];
	if (path && *path) {
		snprintf(under, sizeof(under), "%s/%s", engine_workspace(E), path);
		q.under = under;
	}
	if (path || scope)
		q.directory = NULL;
	/* roots only: the children of no one is every root session */
	q.parent_id = roots ? "" : NULL;
	q.start = start;
	q.limit = limit > 1000000 ? 1000000 : (int)limit;
	if (q.search && !*q.search)
		q.search = NULL;
	return engine_session_query_json(E, &q, w);
}

static int do_get(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	const char *id;
	return session_id(p, &id, e) || engine_session_json(E, id, w, e) ? -1 : 0;
}

static int do_update(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	const char *id, *title = NULL;
	if (session_id(p, &id, e) || jsonin_str(p, "title", 0, &title, e) ||
	    engine_session_update(E, id, title, e))
		return -1;
	return engine_session_json(E, id, w, e);
}

static int do_delete(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	const char *id;
	if (session_id(p, &id, e) || engine_session_exists(E, id, e) ||
	    engine_session_delete(E, id, e))
		return -1;
	jw_bool(w, 1);
	return 0;
}

static int do_children(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	const char *id;
	if (session_id(p, &id, e) || engine_session_exists(E, id, e))
		return -1;
	return engine_session_list_json(E, id, w);
}

static int do_messages(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	const char *id;
	long long limit = 0;
	if (session_id(p, &id, e) || jsonin_int(p, "limit", 0, &limit, e))
		return -1;
	if (limit < 0) {
		err_set(e, ERR_INVALID, "\"limit\" must not be negative");
		return -1;
	}
	return engine_messages_json(E, id, (int)(limit > 100000 ? 100000 : limit), w, e);
}

/* A session and its messages with the last event seq they reflect: the loop computes
 * both at once, so a subscriber applies only events after that seq (a delta the
 * snapshot already holds would otherwise be appended twice). */
static int do_snapshot(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	const char *id;
	if (session_id(p, &id, e) || engine_session_exists(E, id, e))
		return -1;
	jw_obj(w);
	jw_kint(w, "seq", bus_last_seq(engine_bus(E)));
	jw_key(w, "session");
	if (engine_session_json(E, id, w, e))
		return -1;
	jw_key(w, "messages");
	if (engine_messages_json(E, id, 0, w, e))
		return -1;
	jw_obj_end(w);
	return 0;
}

static int do_message(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	const char *id, *mid;
	if (session_id(p, &id, e) || jsonin_str(p, "messageID", 1, &mid, e))
		return -1;
	return engine_message_json(E, id, mid, w, e);
}

/* ---- fork, revert, deleting a message, the workspace diff (engine revert.c) ---- */

static int do_fork(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	const char *id, *mid = NULL;
	char fork[ID_MAX];
	if (session_id(p, &id, e) || jsonin_str(p, "messageID", 0, &mid, e) ||
	    engine_session_fork(E, id, mid, fork, e))
		return -1;
	return engine_session_json(E, fork, w, e);
}

static int do_revert(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	const char *id, *mid, *part = NULL;
	if (session_id(p, &id, e) || jsonin_str(p, "messageID", 1, &mid, e) ||
	    jsonin_str(p, "partID", 0, &part, e) || engine_session_revert(E, id, mid, part, e))
		return -1;
	return engine_session_json(E, id, w, e);
}

static int do_unrevert(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	const char *id;
	if (session_id(p, &id, e) || engine_session_unrevert(E, id, e))
		return -1;
	return engine_session_json(E, id, w, e);
}

static int do_delete_message(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	const char *id, *mid;
	if (session_id(p, &id, e) || jsonin_str(p, "messageID", 1, &mid, e) ||
	    engine_message_delete(E, id, mid, e))
		return -1;
	jw_bool(w, 1);
	return 0;
}

static int do_diff(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	const char *id, *mid = NULL;
	if (session_id(p, &id, e) || jsonin_str(p, "messageID", 0, &mid, e))
		return -1;
	return engine_session_diff_json(E, id, mid, w, e);
}

static int do_abort(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	const char *id;
	if (session_id(p, &id, e) || engine_abort(E, id, e))
		return -1;
	jw_bool(w, 1);
	return 0;
}

static int do_turn_cancel(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	const char *id, *turn;
	if (session_id(p, &id, e) || jsonin_str(p, "turnID", 1, &turn, e) ||
	    engine_turn_cancel(E, id, turn, e))
		return -1;
	jw_bool(w, 1);
	return 0;
}

static int do_status(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	engine_status_json(E, w);
	return 0;
}

static int do_agents(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	agents_write_json(engine_agents(E), w);
	return 0;
}

static int do_health(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	const char *why = engine_store_failure(E);
	if (why) {
		err_set(e, ERR_UNAVAILABLE, "unhealthy: the store cannot write (%.400s)", why);
		return -1;
	}
	if (engine_draining(E)) { /* a load balancer sends elsewhere */
		err_set(e, ERR_UNAVAILABLE, "unhealthy: node %s is draining (shutting down)",
			engine_node(E));
		return -1;
	}
	jw_obj(w);
	jw_kbool(w, "healthy", 1);
	jw_kstr(w, "version", AGENTGATE_VERSION);
	if (engine_node(E)) {
		jw_key(w, "cluster");
		engine_cluster_json(E, w);
	}
	struct bus_nats_info nats;
	if (!bus_nats_info(engine_bus(E), &nats)) { /* --bus nats:// only */
		jw_key(w, "bus");
		jw_obj(w);
		jw_kstr(w, "kind", "nats");
		jw_kstr(w, "url", nats.url);
		jw_kbool(w, "connected", !nats.failure);
		if (nats.failure)
			jw_kstr(w, "error", nats.failure);
		jw_obj_end(w);
	}
	jw_obj_end(w);
	return 0;
}

static int do_task(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	const char *id;
	return jsonin_str(p, "taskID", 1, &id, e) || task_json(E, id, w, e) ? -1 : 0;
}

static int do_plugins(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	plugins_json(engine_host(E), w);
	return 0;
}

/* The mcp plugin keeps its servers' status in its kv store ("status": OpenCode's
 * {name: McpStatus} object); no plugin, no servers: {}. */
static int do_mcp(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	char *status = NULL;
	size_t n = 0;
	if (engine_kv_get(E, "plugin:mcp", "status", &status, &n, NULL)) {
		jw_raw(w, "{}");
		return 0;
	}
	cJSON *j = cJSON_ParseWithLength(status, n);
	jw_raw(w, cJSON_IsObject(j) ? status : "{}");
	cJSON_Delete(j);
	free(status);
	return 0;
}

static int do_permissions(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	engine_permission_list_json(E, w);
	return 0;
}

/* Both of OpenCode's shapes: {requestID, reply, message?} (POST /permission/{id}/reply)
 * and {sessionID, permissionID, response} (POST /session/{id}/permissions/{id}). */
static int do_permission_reply(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	const char *id = NULL, *reply = NULL, *message = NULL, *sid = NULL;
	if (jsonin_str(p, "requestID", 0, &id, e) ||
	    (!id && jsonin_str(p, "permissionID", 1, &id, e)) ||
	    jsonin_str(p, "reply", 0, &reply, e) ||
	    (!reply && jsonin_str(p, "response", 1, &reply, e)) ||
	    jsonin_str(p, "message", 0, &message, e) || jsonin_str(p, "sessionID", 0, &sid, e) ||
	    engine_permission_reply(E, id, reply, message, sid, e))
		return -1;
	jw_bool(w, 1);
	return 0;
}

static int do_prompt_async(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	return api_prompt(E, p, "ws", NULL, w, e);
}

static const struct {
	const char *name;
	int (*fn)(struct engine *, const cJSON *, struct jw *, struct err *);
} methods[] = {
	{"session.create", do_create},     {"session.list", do_list},
	{"session.get", do_get},           {"session.update", do_update},
	{"session.delete", do_delete},     {"session.children", do_children},
	{"session.messages", do_messages}, {"session.message", do_message},
	{"session.snapshot", do_snapshot},
	{"session.abort", do_abort},       {"session.status", do_status},
	{"turn.cancel", do_turn_cancel},
	{"session.prompt_async", do_prompt_async},
	{"agent.list", do_agents},         {"global.health", do_health},
	{"task.get", do_task},             {"plugin.list", do_plugins},
	{"mcp.status", do_mcp},
	{"session.fork", do_fork},         {"session.revert", do_revert},
	{"session.unrevert", do_unrevert}, {"session.deleteMessage", do_delete_message},
	{"session.diff", do_diff},
	{"permission.list", do_permissions}, {"permission.reply", do_permission_reply},
	{"config.providers", api_config_providers}, {"provider.list", api_provider_list},
	{"provider.auth", api_provider_auth},       {"config.get", api_config_get},
	{"command.list", api_command_list},         {"session.command", api_session_command},
	{"path.get", api_path_get},                 {"app.log", api_app_log},
	{"session.todo", api_session_todo},
	/* what OpenCode's front ends read besides sessions (compat.c) */
	{"project.current", compat_project_current}, {"project.list", compat_project_list},
	{"project.directories", compat_project_directories}, {"vcs.get", compat_vcs},
	{"lsp.status", compat_none},                  {"formatter.status", compat_none},
	{"experimental.capabilities", compat_capabilities},
	{"experimental.console", compat_console},     {"experimental.resource", compat_resources},
	{"experimental.workspace.list", compat_none},
	{"experimental.workspace.status", compat_none},
	{"v2.location.get", compat_location},         {"v2.agent.list", compat_agents_v2},
	{"v2.model.list", compat_models_v2},          {"v2.integration.list", compat_empty_v2},
	{"v2.skill.list", compat_empty_v2},           {"v2.reference.list", compat_empty_v2},
	{"v2.provider.list", compat_providers_v2},    {"v2.command.list", compat_commands_v2},
};

int api_call(struct engine *E, const char *method, const cJSON *params, struct jw *w,
	     int *unknown, struct err *e)
{
	*unknown = 0;
	if (params && !cJSON_IsObject(params)) {
		err_set(e, ERR_INVALID, "params must be an object");
		return -1;
	}
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (strcmp(methods[i].name, method))
			continue;
		/* all but the health check read the store, which would wait for the disk */
		if (methods[i].fn != do_health && engine_store_slow(E)) {
			err_set(e, ERR_UNAVAILABLE, "%s", engine_store_failure(E));
			return -1;
		}
		return methods[i].fn(E, params, w, e);
	}
	*unknown = 1;
	err_set(e, ERR_NOTFOUND, "no such method \"%s\"", method);
	return -1;
}

void api_prompt_free(struct api_prompt *ap)
{
	free(ap->text);
	ap->text = NULL;
}

/* The body's keys: OpenCode's prompt fields (SessionPromptData v1 and v2), agentgate's
 * own (policy, dedupeKey, text), what the transports put there (sessionID, wait), and
 * source, which the transport sets whatever the body says. */
static int prompt_keys_known(const cJSON *p, struct err *e)
{
	static const char *const known[] = {
		"sessionID", "parts", "text", "agent", "model", "messageID", "noReply", "tools",
		"system", "format", "variant", "policy", "dedupeKey", "wait", "source",
	};
	const cJSON *it;
	cJSON_ArrayForEach(it, p) {
		size_t i = 0;
		while (i < sizeof(known) / sizeof(known[0]) && strcmp(known[i], it->string))
			i++;
		if (i == sizeof(known) / sizeof(known[0])) {
			err_set(e, ERR_INVALID, "\"%.100s\" is not a prompt field (parts, agent, "
				"model, messageID, noReply, tools, system, format, policy, dedupeKey)",
				it->string);
			return -1;
		}
	}
	return 0;
}

/* v2's format and variant: only what agentgate does anyway is taken. Structured output
 * (json_schema) and model variants would be dropped, so they are refused. */
static int prompt_format_variant(const cJSON *p, struct err *e)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(p, "format");
	const char *type = jsonin_get(f, "type"), *variant = NULL;
	if (f && !cJSON_IsNull(f) && (!type || strcmp(type, "text"))) {
		err_set(e, ERR_INVALID, "format: only {\"type\":\"text\"} is supported%s%s%s",
			type ? " (structured output, \"" : "", type ? type : "", type ? "\", is not)" : "");
		return -1;
	}
	if (jsonin_str(p, "variant", 0, &variant, e))
		return -1;
	if (variant && *variant && strcmp(variant, "default")) {
		err_set(e, ERR_INVALID, "variant \"%.100s\": model variants are not supported",
			variant);
		return -1;
	}
	return 0;
}

int api_parse_prompt(const cJSON *p, const char *session_id, const char *source,
		     struct api_prompt *ap, struct err *e)
{
	struct prompt *pr = &ap->p;
	const char *policy = NULL, *text = NULL;
	memset(ap, 0, sizeof(*ap));
	pr->session_id = session_id;
	pr->source = source;
	if (!cJSON_IsObject(p)) {
		err_set(e, ERR_INVALID, "the prompt must be a JSON object");
		return -1;
	}
	if (prompt_keys_known(p, e) || jsonin_str(p, "agent", 0, &pr->agent, e) ||
	    jsonin_str(p, "messageID", 0, &pr->message_id, e) ||
	    jsonin_str(p, "policy", 0, &policy, e) ||
	    jsonin_str(p, "dedupeKey", 0, &pr->dedupe_key, e) ||
	    jsonin_str(p, "system", 0, &pr->system, e) ||
	    jsonin_str(p, "text", 0, &text, e) || jsonin_bool(p, "noReply", &pr->no_reply, e) ||
	    prompt_format_variant(p, e) ||
	    parse_model(p, ap->model, sizeof(ap->model), &pr->model, e))
		return -1;
	/* the source is the transport's to say, never the client's: a body claiming to
	 * be a background task's result would be let in during shutdown */
	if (turnq_policy_parse(policy, &pr->policy)) {
		err_set(e, ERR_INVALID, "\"policy\" must be queue, interrupt or reject (got \"%s\")",
			policy);
		return -1;
	}
	pr->tools = cJSON_GetObjectItemCaseSensitive(p, "tools");
	pr->parts = cJSON_GetObjectItemCaseSensitive(p, "parts");
	if (cJSON_IsNull(pr->parts))
		pr->parts = NULL;
	if (text && pr->parts) {
		err_set(e, ERR_INVALID, "a prompt has \"parts\" or \"text\", not both");
		return -1;
	}
	if (!text && !pr->parts) {
		err_set(e, ERR_INVALID, "missing \"parts\" (an array of parts: {\"type\":\"text\","
			"\"text\"}, file, agent, subtask)");
		return -1;
	}
	if (text && !(ap->text = strdup(text))) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return -1;
	}
	pr->text = ap->text;
	return 0;
}

/* ---- prompts ---- */

static void turn_ended(struct turn_waiter *tw, const char *state, const char *msg_id,
		       const char *error)
{
	struct api_wait *aw = container_of(tw, struct api_wait, tw);
	struct err err = {0}, *e = &err;
	struct jw w;
	jw_init(&w);
	if (!*msg_id) /* shutting down: the prompt stays queued */
		err_set(e, ERR_UNAVAILABLE, "%s", error ? error : "the server is shutting down");
	else if (aw->summary && strcmp(state, "completed"))
		err_set(e, ERR_INTERNAL, "the compaction %s: %s (message %s)", state,
			error ? error : "no summary", msg_id);
	else if (aw->summary)
		jw_bool(&w, 1);
	else
		engine_message_json(aw->E, aw->session, msg_id, &w, e);
	aw->fn(aw, e->code ? NULL : &w, e->code ? e : NULL);
	jw_free(&w);
}

int api_prompt(struct engine *E, const cJSON *params, const char *source, struct api_wait *aw,
	       struct jw *w, struct err *e)
{
	const char *sid;
	struct api_prompt ap = {0};
	struct prompt_result r;
	if (session_id(params, &sid, e))
		return -1;
	if (aw) {
		aw->E = E;
		aw->tw.fn = turn_ended;
		aw->summary = 0;
		snprintf(aw->session, sizeof(aw->session), "%s", sid);
	}
	int rc = api_parse_prompt(params, sid, source, &ap, e) ||
		 engine_prompt(E, &ap.p, &r, aw ? &aw->tw : NULL, e);
	api_prompt_free(&ap);
	if (rc)
		return -1;
	if (aw && !r.turn_id[0]) {
		/* noReply: no turn to wait for; the answer is the user message, as OpenCode's */
		if (w && engine_message_json(E, sid, r.user_message_id, w, e))
			return -1;
		return 1;
	}
	if (!aw && w) {
		jw_obj(w);
		jw_kstr(w, "sessionID", sid);
		if (r.turn_id[0])
			jw_kstr(w, "turnID", r.turn_id);
		jw_kstr(w, "messageID", r.user_message_id);
		jw_kbool(w, "coalesced", r.coalesced);
		jw_obj_end(w);
	}
	return 0;
}

int api_summarize(struct engine *E, const cJSON *params, const char *source,
		  struct api_wait *aw, struct err *e)
{
	const char *sid, *pid = NULL, *mid = NULL;
	int automatic = 0;
	char model[256];
	if (session_id(params, &sid, e) || jsonin_str(params, "providerID", 0, &pid, e) ||
	    jsonin_str(params, "modelID", 0, &mid, e) || jsonin_bool(params, "auto", &automatic, e))
		return -1;
	if (!pid != !mid) {
		err_set(e, ERR_INVALID, "\"%s\" needs \"%s\": the model is {providerID, modelID}",
			pid ? "providerID" : "modelID", pid ? "modelID" : "providerID");
		return -1;
	}
	snprintf(model, sizeof(model), "%s/%s", pid ? pid : "", mid ? mid : "");
	struct prompt p = {.session_id = sid, .source = source, .model = pid ? model : NULL,
			   .compact = automatic ? 2 : 1};
	aw->E = E;
	aw->tw.fn = turn_ended;
	aw->summary = 1;
	snprintf(aw->session, sizeof(aw->session), "%s", sid);
	return engine_prompt(E, &p, NULL, &aw->tw, e);
}

int api_submit(struct engine *E, const char *rpc, const cJSON *params, const char *source,
	       struct api_wait *aw, struct jw *w, struct err *e)
{
	if (!strcmp(rpc, "session.summarize"))
		return api_summarize(E, params, source, aw, e);
	return api_prompt(E, params, source, aw, w, e);
}

void api_wait_cancel(struct api_wait *aw)
{
	if (aw->E)
		engine_waiter_cancel(aw->E, &aw->tw);
}

int api_waiting(const struct api_wait *aw)
{
	return aw->tw.turn != NULL;
}

/* ---- subscriptions ---- */

int api_subscribe(struct engine *E, struct subscriber *s, const cJSON *params,
		  void (*wake)(struct subscriber *s), int64_t *seq, struct err *e)
{
	const char *sid = NULL;
	int desc = 0;
	long long since = -1;
	if (jsonin_str(params, "sessionID", 0, &sid, e) ||
	    jsonin_bool(params, "descendants", &desc, e) || jsonin_int(params, "since", 0, &since, e))
		return -1;
	if (sid && *sid && engine_session_exists(E, sid, e))
		return -1;
	if (subscriber_start(s, engine_bus(E), sid, desc, since, wake)) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return -1;
	}
	if (seq)
		*seq = bus_last_seq(engine_bus(E));
	return 0;
}

/* ---- the route table ---- */

static const struct api_route routes[] = {
	{"GET", "/global/health", "global.health", {NULL}, API_CALL, 0},
	{"GET", "/event", "subscribe", {NULL}, API_EVENTS, 0},
	{"GET", "/session", "session.list", {NULL}, API_CALL, 0},
	{"POST", "/session", "session.create", {NULL}, API_CALL, 0},
	{"GET", "/session/status", "session.status", {NULL}, API_CALL, 0},
	{"GET", "/session/*", "session.get", {"sessionID"}, API_CALL, 0},
	{"PATCH", "/session/*", "session.update", {"sessionID"}, API_CALL, 0},
	{"DELETE", "/session/*", "session.delete", {"sessionID"}, API_CALL, 0},
	{"GET", "/session/*/children", "session.children", {"sessionID"}, API_CALL, 0},
	{"GET", "/session/*/message", "session.messages", {"sessionID"}, API_CALL, 0},
	{"POST", "/session/*/message", "session.prompt", {"sessionID"}, API_PROMPT, 1},
	{"GET", "/session/*/message/*", "session.message", {"sessionID", "messageID"}, API_CALL, 0},
	{"POST", "/session/*/prompt_async", "session.prompt_async", {"sessionID"}, API_PROMPT, 0},
	{"DELETE", "/session/*/message/*", "session.deleteMessage", {"sessionID", "messageID"},
	 API_CALL, 0},
	{"POST", "/session/*/fork", "session.fork", {"sessionID"}, API_CALL, 0},
	{"POST", "/session/*/revert", "session.revert", {"sessionID"}, API_CALL, 0},
	{"POST", "/session/*/unrevert", "session.unrevert", {"sessionID"}, API_CALL, 0},
	{"GET", "/session/*/diff", "session.diff", {"sessionID"}, API_CALL, 0},
	{"POST", "/session/*/abort", "session.abort", {"sessionID"}, API_CALL, 0},
	{"POST", "/session/*/summarize", "session.summarize", {"sessionID"}, API_PROMPT, 1},
	{"DELETE", "/session/*/turn/*", "turn.cancel", {"sessionID", "turnID"}, API_CALL, 0},
	{"GET", "/agent", "agent.list", {NULL}, API_CALL, 0},
	{"GET", "/task/*", "task.get", {"taskID"}, API_CALL, 0},
	{"GET", "/plugin", "plugin.list", {NULL}, API_CALL, 0},
	{"GET", "/mcp", "mcp.status", {NULL}, API_CALL, 0},
	{"GET", "/metrics", "metrics", {NULL}, API_TEXT, 0},
	{"GET", "/permission", "permission.list", {NULL}, API_CALL, 0},
	{"POST", "/permission/*/reply", "permission.reply", {"requestID"}, API_CALL, 0},
	{"POST", "/session/*/permissions/*", "permission.reply", {"sessionID", "permissionID"},
	 API_CALL, 0},
	{"GET", "/config", "config.get", {NULL}, API_CALL, 0},
	{"GET", "/config/providers", "config.providers", {NULL}, API_CALL, 0},
	{"GET", "/provider", "provider.list", {NULL}, API_CALL, 0},
	{"GET", "/provider/auth", "provider.auth", {NULL}, API_CALL, 0},
	{"GET", "/command", "command.list", {NULL}, API_CALL, 0},
	{"POST", "/session/*/command", "session.command", {"sessionID"}, API_PROMPT, 1},
	{"GET", "/session/*/todo", "session.todo", {"sessionID"}, API_CALL, 0},
	{"GET", "/path", "path.get", {NULL}, API_CALL, 0},
	{"POST", "/log", "app.log", {NULL}, API_CALL, 0},
	{"GET", "/global/event", "global.event", {NULL}, API_EVENTS, 0},
	{"GET", "/project", "project.list", {NULL}, API_CALL, 0},
	{"GET", "/project/current", "project.current", {NULL}, API_CALL, 0},
	{"GET", "/project/*/directories", "project.directories", {"projectID"}, API_CALL, 0},
	{"GET", "/vcs", "vcs.get", {NULL}, API_CALL, 0},
	{"GET", "/lsp", "lsp.status", {NULL}, API_CALL, 0},
	{"GET", "/formatter", "formatter.status", {NULL}, API_CALL, 0},
	{"GET", "/experimental/capabilities", "experimental.capabilities", {NULL}, API_CALL, 0},
	{"GET", "/experimental/console", "experimental.console", {NULL}, API_CALL, 0},
	{"GET", "/experimental/resource", "experimental.resource", {NULL}, API_CALL, 0},
	{"GET", "/experimental/workspace", "experimental.workspace.list", {NULL}, API_CALL, 0},
	{"GET", "/experimental/workspace/status", "experimental.workspace.status", {NULL},
	 API_CALL, 0},
	{"GET", "/api/location", "v2.location.get", {NULL}, API_CALL, 0},
	{"GET", "/api/agent", "v2.agent.list", {NULL}, API_CALL, 0},
	{"GET", "/api/model", "v2.model.list", {NULL}, API_CALL, 0},
	{"GET", "/api/integration", "v2.integration.list", {NULL}, API_CALL, 0},
	{"GET", "/api/skill", "v2.skill.list", {NULL}, API_CALL, 0},
	{"GET", "/api/reference", "v2.reference.list", {NULL}, API_CALL, 0},
	{"GET", "/api/provider", "v2.provider.list", {NULL}, API_CALL, 0},
	{"GET", "/api/command", "v2.command.list", {NULL}, API_CALL, 0},
};

int api_match(const char *pattern, const char *path, char ids[2][64])
{
	int n = 0;
	while (*pattern && *path) {
		if (*pattern == '*' || *pattern == '{') {
			size_t len = strcspn(path, "/");
			if (!len || (ids && (len >= 64 || n == 2)))
				return 0;
			if (ids) {
				memcpy(ids[n], path, len);
				ids[n++][len] = 0;
			}
			path += len;
			pattern += *pattern == '*' ? 1 : strcspn(pattern, "}") + 1;
		} else if (*pattern++ != *path++) {
			return 0;
		}
	}
	return !*pattern && (!*path || !strcmp(path, "/"));
}

int api_wildcards(const char *pattern)
{
	int n = 0;
	for (; *pattern; pattern++)
		n += *pattern == '*' || *pattern == '{';
	return n;
}

const char *api_path_pattern(const char *path)
{
	const char *pattern = NULL;
	char probe[2][64]; /* an id segment over 63 bytes matches no route */
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (api_match(routes[i].pattern, path, probe) &&
		    (!pattern || api_wildcards(routes[i].pattern) < api_wildcards(pattern)))
			pattern = routes[i].pattern;
	return pattern;
}

const struct api_route *api_route(const char *method, const char *path, char ids[2][64],
				  char *allowed, size_t allowed_len)
{
	const char *pattern = api_path_pattern(path);
	const struct api_route *found = NULL;
	allowed[0] = 0;
	if (pattern)
		api_match(pattern, path, ids);
	for (size_t i = 0; pattern && i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strcmp(routes[i].pattern, pattern))
			continue;
		if (!strcmp(routes[i].http_method, method))
			found = &routes[i];
		size_t l = strlen(allowed);
		snprintf(allowed + l, allowed_len - l, "%s%s", l ? "," : "", routes[i].http_method);
	}
	if (found)
		return found;
	/* OpenCode's routes agentgate does not implement answer 501, not 404 or 405 */
	return api_not_implemented(method, path, allowed, allowed_len);
}
