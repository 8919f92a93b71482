/* server: one MCP server's life on the I/O thread — start (process or HTTP session),
 * initialize + notifications/initialized, tools/list page by page (again on
 * notifications/tools/list_changed), tools/call and notifications/cancelled, the
 * server's own requests answered (ping; anything else "not supported"). Every request
 * is a pending record by JSON-RPC id; initialize and tools/list have a deadline
 * (startup_timeout_ms), calls the host's tool timeout (the server's "timeout"). Whatever
 * ends a server — it exits, its transport fails, it misses a deadline — goes through
 * server_on_down: its calls fail at once naming the server and why, and it starts
 * again after a backoff (restart_ms doubling to restart_max_ms; back to restart_ms once
 * it stayed up that long). Changes go to the loop as struct mcp_update (mcp.c). */
#include "mcp.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LIST_PAGES_MAX 100

int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const struct ag_host *H(const struct server *s)
{
	return s->env->host;
}

/* ---- news for the loop ---- */

static void publish(struct server *s, struct tooldef *tools, int ntools, int has_tools)
{
	struct mcp_update *u = calloc(1, sizeof(*u));
	if (!u) {
		tools_free(tools, ntools);
		return;
	}
	*u = (struct mcp_update){.server = s->idx, .state = s->state, .restarts = s->restarts,
				 .pid = s->proc.pid, .has_tools = has_tools, .tools = tools,
				 .ntools = ntools};
	u->error = s->error[0] ? strdup(s->error) : NULL;
	mcp_post_update(u);
}

/* ---- pending requests ---- */

static struct pending *pending_take(struct server *s, int (*match)(const struct pending *,
								   int64_t, uint64_t),
				    int64_t id, uint64_t call)
{
	for (struct pending **pp = &s->pending; *pp; pp = &(*pp)->next)
		if (match(*pp, id, call)) {
			struct pending *p = *pp;
			*pp = p->next;
			return p;
		}
	return NULL;
}

static int by_id(const struct pending *p, int64_t id, uint64_t call)
{
	return p->id == id;
}

static int by_call(const struct pending *p, int64_t id, uint64_t call)
{
	return p->kind == P_CALL && p->call == call;
}

static void pending_free(struct pending *p)
{
	free(p->tool);
	free(p);
}

static int transport_send(struct server *s, const char *msg, int64_t id)
{
	return s->conf->type == SRV_LOCAL ? stdio_send(s, msg) : http_send(s, msg, id);
}

/* Sends a request and records it; returns its id, or -1 (nothing recorded). */
static int64_t request(struct server *s, enum pend_kind kind, const char *method,
		       cJSON *params, uint64_t call, const char *tool)
{
	int64_t id = ++s->next_id;
	char *msg = rpc_request(id, method, params);
	struct pending *p = calloc(1, sizeof(*p));
	if (!msg || !p || transport_send(s, msg, id)) {
		free(msg);
		free(p);
		return -1;
	}
	free(msg);
	*p = (struct pending){.id = id, .kind = kind, .call = call,
			      .tool = tool ? strdup(tool) : NULL,
			      .deadline = kind == P_CALL ? 0 : mono_ms() + s->env->startup_ms};
	p->next = s->pending;
	s->pending = p;
	return id;
}

static void notify(struct server *s, const char *method, cJSON *params)
{
	char *msg = rpc_notification(method, params);
	if (msg)
		transport_send(s, msg, -1);
	free(msg);
}

static void answer(struct server *s, char *msg)
{
	if (msg)
		transport_send(s, msg, -1);
	free(msg);
}

/* ---- start and end ---- */

static void start(struct server *s)
{
	char why[400] = "";
	int rc;
	if (s->started)
		s->restarts++;
	s->started = 1;
	s->running = 1;
	s->state = ST_CONNECTING; /* error keeps the last failure until it connects */
	s->protocol[0] = '\0';
	s->restart_at = 0;
	rc = s->conf->type == SRV_LOCAL ? stdio_start(s, why, sizeof(why))
					: http_start(s, why, sizeof(why));
	if (!rc && request(s, P_INIT, "initialize", rpc_initialize_params(H(s)->version), 0,
			   NULL) < 0)
		snprintf(why, sizeof(why), "cannot send initialize");
	if (rc || why[0]) {
		server_on_down(s, why);
		return;
	}
	publish(s, NULL, 0, 0);
}

static void fail_calls(struct server *s, const char *why)
{
	char msg[800];
	while (s->pending) {
		struct pending *p = s->pending;
		s->pending = p->next;
		if (p->kind == P_CALL) {
			snprintf(msg, sizeof(msg), "MCP server \"%s\" failed during the call to %s: %s",
				 s->conf->name, p->tool ? p->tool : "its tool", why);
			H(s)->tool_fail(s->env->self, p->call, msg, NULL);
		}
		pending_free(p);
	}
}

static void transport_stop(struct server *s)
{
	if (s->conf->type == SRV_LOCAL)
		stdio_stop(s);
	else
		http_stop(s);
	cJSON_Delete(s->inbox);
	s->inbox = NULL;
	cJSON_Delete(s->acc);
	s->acc = NULL;
	s->relist = 0;
}

void server_on_down(struct server *s, const char *why)
{
	int64_t now = mono_ms();
	if (!s->running)
		return;
	s->running = 0;
	transport_stop(s);
	fail_calls(s, why);
	if (s->up_since && now - s->up_since >= s->env->restart_max_ms)
		s->backoff_ms = s->env->restart_ms; /* it had been well for a while */
	s->up_since = 0;
	s->state = ST_FAILED;
	snprintf(s->error, sizeof(s->error), "%s", why);
	s->restart_at = now + s->backoff_ms;
	H(s)->log(s->env->self, AG_LOG_WARN, "server %s: %s; starting it again in %lld ms",
		  s->conf->name, why, (long long)s->backoff_ms);
	s->backoff_ms = s->backoff_ms * 2 < s->env->restart_max_ms ? s->backoff_ms * 2
								     : s->env->restart_max_ms;
	publish(s, NULL, 0, 0);
}

void server_init(struct server *s, const struct mcp_env *env, struct srv_conf *c, int idx,
		 CURLM *multi)
{
	memset(s, 0, sizeof(*s));
	s->env = env;
	s->conf = c;
	s->idx = idx;
	s->multi = multi;
	s->proc.in = s->proc.out = s->proc.err = -1;
	s->backoff_ms = env->restart_ms;
	if (c->error) {
		s->state = ST_FAILED;
		snprintf(s->error, sizeof(s->error), "%s", c->error);
	} else if (!c->enabled) {
		s->state = ST_DISABLED;
	} else {
		s->state = ST_CONNECTING;
		s->restart_at = mono_ms(); /* the first start */
	}
	publish(s, NULL, 0, 0);
}

void server_shutdown(struct server *s)
{
	if (s->running) {
		s->running = 0;
		transport_stop(s);
	}
	fail_calls(s, "the mcp plugin is unloading");
}

/* ---- initialize and tools/list ---- */

static void list_page(struct server *s, const char *cursor)
{
	if (request(s, P_LIST, "tools/list", rpc_list_params(cursor), 0, NULL) < 0)
		server_on_down(s, "cannot send tools/list");
}

static void list_start(struct server *s)
{
	if (s->acc) { /* a listing runs: list again once it ends */
		s->relist = 1;
		return;
	}
	s->acc = cJSON_CreateArray();
	s->pages = 0;
	list_page(s, NULL);
}

static void list_done(struct server *s)
{
	struct tooldef *defs = NULL;
	int n = 0;
	char skipped[1024] = "";
	int rc = tools_from_list(s->conf->name, s->acc, &defs, &n, skipped, sizeof(skipped));
	cJSON_Delete(s->acc);
	s->acc = NULL;
	if (rc) {
		server_on_down(s, "out of memory listing its tools");
		return;
	}
	if (skipped[0])
		H(s)->log(s->env->self, AG_LOG_WARN, "server %s: tools not offered: %s",
			  s->conf->name, skipped);
	if (s->state != ST_CONNECTED)
		s->up_since = mono_ms();
	s->state = ST_CONNECTED;
	s->error[0] = '\0';
	publish(s, defs, n, 1);
	if (s->relist) {
		s->relist = 0;
		list_start(s);
	}
}

static void on_list(struct server *s, const struct rpc_msg *m)
{
	char err[300];
	const cJSON *tools = cJSON_GetObjectItemCaseSensitive(m->result, "tools"), *it;
	const cJSON *next = cJSON_GetObjectItemCaseSensitive(m->result, "nextCursor");
	if (m->error || !cJSON_IsArray(tools)) {
		rpc_error_text(m->error, err, sizeof(err));
		char why[400];
		snprintf(why, sizeof(why), "tools/list failed: %s", m->error ? err
						: "the answer has no tools array");
		server_on_down(s, why);
		return;
	}
	cJSON_ArrayForEach(it, tools)
		cJSON_AddItemToArray(s->acc, cJSON_Duplicate(it, 1));
	if (cJSON_IsString(next) && *next->valuestring && ++s->pages < LIST_PAGES_MAX)
		list_page(s, next->valuestring);
	else
		list_done(s);
}

static void on_init(struct server *s, const struct rpc_msg *m)
{
	char err[300], why[400];
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(m->result, "protocolVersion");
	const cJSON *caps = cJSON_GetObjectItemCaseSensitive(m->result, "capabilities");
	if (m->error) {
		rpc_error_text(m->error, err, sizeof(err));
		snprintf(why, sizeof(why), "initialize failed: %s", err);
		server_on_down(s, why);
		return;
	}
	if (!cJSON_IsString(v) || !rpc_version_ok(v->valuestring)) {
		snprintf(why, sizeof(why), "it speaks MCP protocol version %.40s, which agentgate "
			 "does not", cJSON_IsString(v) ? v->valuestring : "(none)");
		server_on_down(s, why);
		return;
	}
	snprintf(s->protocol, sizeof(s->protocol), "%s", v->valuestring);
	notify(s, "notifications/initialized", NULL);
	if (s->conf->type == SRV_REMOTE)
		http_connected(s);
	if (cJSON_HasObjectItem(caps, "tools")) {
		list_start(s);
		return;
	}
	s->acc = cJSON_CreateArray(); /* no tools: connected with none */
	list_done(s);
}

/* ---- calls ---- */

static void on_call(struct server *s, struct pending *p, const struct rpc_msg *m)
{
	char err[300], *text = NULL;
	size_t len = strlen(s->conf->name) + strlen(p->tool) + 400;
	char *msg = malloc(len);
	int rc = m->error ? -2 : tools_flatten(m->result, &text);
	if (rc == -2)
		rpc_error_text(m->error, err, sizeof(err));
	if (msg && rc == -2)
		snprintf(msg, len, "MCP server \"%s\": %s failed: %s", s->conf->name, p->tool, err);
	if (rc == -1 || !msg)
		H(s)->tool_fail(s->env->self, p->call, "out of memory reading the result", NULL);
	else if (rc == -2)
		H(s)->tool_fail(s->env->self, p->call, msg, NULL);
	else if (rc == 1)
		H(s)->tool_fail(s->env->self, p->call, *text ? text : "the tool reported an error "
				"without a message", NULL);
	else
		H(s)->tool_done(s->env->self, p->call, text, NULL, NULL);
	free(text);
	free(msg);
}

static void not_available(struct server *s, uint64_t call)
{
	char msg[900];
	const char *name = s->conf->name;
	if (s->state == ST_DISABLED)
		snprintf(msg, sizeof(msg), "MCP server \"%s\" is disabled", name);
	else if (s->state == ST_CONNECTING && !s->error[0])
		snprintf(msg, sizeof(msg), "MCP server \"%s\" is not ready yet (starting)", name);
	else
		snprintf(msg, sizeof(msg), "MCP server \"%s\" is not available: %s%s", name,
			 s->error, s->state == ST_CONNECTING ? "; it is being started again"
				   : s->restart_at ? "; it will be started again" : "");
	H(s)->tool_fail(s->env->self, call, msg, NULL);
}

void server_call(struct server *s, struct io_cmd *cmd)
{
	if (s->state != ST_CONNECTED || !s->running) {
		not_available(s, cmd->call);
		return;
	}
	int64_t id = s->next_id + 1; /* the id request() takes: its progress token */
	if (request(s, P_CALL, "tools/call", rpc_call_params(cmd->tool, cmd->args, id),
		    cmd->call, cmd->tool) < 0) {
		char msg[400];
		snprintf(msg, sizeof(msg), "MCP server \"%s\": cannot send the call", s->conf->name);
		H(s)->tool_fail(s->env->self, cmd->call, msg, NULL);
	}
}

int server_cancel(struct server *s, uint64_t call)
{
	struct pending *p = pending_take(s, by_call, 0, call);
	if (!p)
		return 0;
	notify(s, "notifications/cancelled", rpc_cancel_params(p->id, "aborted by agentgate "
							       "(the call was cancelled or timed out)"));
	if (s->conf->type == SRV_REMOTE)
		http_cancel(s, p->id);
	pending_free(p);
	return 1;
}

void server_request_failed(struct server *s, int64_t id, const char *why)
{
	char msg[900];
	struct pending *p = pending_take(s, by_id, id, 0);
	if (!p)
		return;
	if (p->kind == P_CALL) {
		snprintf(msg, sizeof(msg), "MCP server \"%s\": %s failed: %s", s->conf->name,
			 p->tool, why);
		H(s)->tool_fail(s->env->self, p->call, msg, NULL);
		pending_free(p);
		return;
	}
	snprintf(msg, sizeof(msg), "%s failed: %s", p->kind == P_INIT ? "initialize"
						    : "tools/list", why);
	pending_free(p);
	server_on_down(s, msg);
}

/* ---- what the server sends ---- */

static void on_response(struct server *s, const struct rpc_msg *m)
{
	struct pending *p = pending_take(s, by_id, m->id, 0);
	if (!p)
		return; /* cancelled, or not ours */
	if (p->kind == P_INIT)
		on_init(s, m);
	else if (p->kind == P_LIST)
		on_list(s, m);
	else
		on_call(s, p, m);
	pending_free(p);
}

static void on_progress(struct server *s, const cJSON *params)
{
	const cJSON *tok = cJSON_GetObjectItemCaseSensitive(params, "progressToken");
	const cJSON *pr = cJSON_GetObjectItemCaseSensitive(params, "progress");
	const cJSON *total = cJSON_GetObjectItemCaseSensitive(params, "total");
	const cJSON *text = cJSON_GetObjectItemCaseSensitive(params, "message");
	int (*progress)(ag_plugin *, uint64_t, const char *, const char *) =
		AG_HOST_FN(H(s), tool_progress);
	char title[300];
	if (!progress || !cJSON_IsNumber(tok) || !cJSON_IsNumber(pr))
		return;
	for (struct pending *p = s->pending; p; p = p->next)
		if (p->kind == P_CALL && (double)p->id == tok->valuedouble) {
			if (cJSON_IsNumber(total))
				snprintf(title, sizeof(title), "%s: %g of %g%s%.200s", p->tool,
					 pr->valuedouble, total->valuedouble,
					 cJSON_IsString(text) ? ": " : "",
					 cJSON_IsString(text) ? text->valuestring : "");
			else
				snprintf(title, sizeof(title), "%s: %g%s%.200s", p->tool,
					 pr->valuedouble, cJSON_IsString(text) ? ": " : "",
					 cJSON_IsString(text) ? text->valuestring : "");
			progress(s->env->self, p->call, title, NULL);
		}
}

static void on_notification(struct server *s, const struct rpc_msg *m)
{
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(m->params, "data");
	if (!strcmp(m->method, "notifications/tools/list_changed")) {
		if (s->state == ST_CONNECTED || s->acc)
			list_start(s);
	} else if (!strcmp(m->method, "notifications/progress")) {
		on_progress(s, m->params);
	} else if (!strcmp(m->method, "notifications/message")) {
		char *d = data ? cJSON_PrintUnformatted(data) : NULL;
		H(s)->log(s->env->self, AG_LOG_INFO, "[%s] %.500s", s->conf->name,
			  cJSON_IsString(data) ? data->valuestring : d ? d : "");
		free(d);
	}
}

static void on_request(struct server *s, const struct rpc_msg *m)
{
	if (!strcmp(m->method, "ping"))
		answer(s, rpc_result(m->id_json, cJSON_CreateObject()));
	else
		answer(s, rpc_error(m->id_json, -32601, "agentgate does not support this method"));
}

void server_on_message(struct server *s, const cJSON *msg)
{
	struct rpc_msg m;
	switch (rpc_read(msg, &m)) {
	case RPC_RESPONSE: on_response(s, &m); break;
	case RPC_REQUEST: on_request(s, &m); break;
	case RPC_NOTIFICATION: on_notification(s, &m); break;
	default:
		H(s)->log(s->env->self, AG_LOG_DEBUG, "server %s sent a message that is not "
			  "JSON-RPC (ignored)", s->conf->name);
	}
}

void server_inbox(struct server *s, cJSON *msg)
{
	if (!s->inbox)
		s->inbox = cJSON_CreateArray();
	if (s->inbox)
		cJSON_AddItemToArray(s->inbox, msg);
	else
		cJSON_Delete(msg);
}

void server_dispatch(struct server *s)
{
	cJSON *msg;
	while (s->running && s->inbox && (msg = cJSON_DetachItemFromArray(s->inbox, 0))) {
		server_on_message(s, msg);
		cJSON_Delete(msg);
	}
}

/* ---- time ---- */

static void deadlines(struct server *s, int64_t now)
{
	char why[200];
	for (struct pending *p = s->pending; p; p = p->next)
		if (p->deadline && now >= p->deadline) {
			snprintf(why, sizeof(why), "no answer to %s within %lld ms",
				 p->kind == P_INIT ? "initialize" : "tools/list",
				 (long long)s->env->startup_ms);
			server_on_down(s, why);
			return;
		}
}

void server_tick(struct server *s, int64_t now)
{
	if (!s->running && s->restart_at && now >= s->restart_at) {
		start(s);
		return;
	}
	if (!s->running)
		return;
	deadlines(s, now);
	if (s->running && s->conf->type == SRV_LOCAL)
		stdio_tick(s, now);
	if (s->running && s->conf->type == SRV_REMOTE)
		http_tick(s, now);
}

int64_t server_next_deadline(const struct server *s)
{
	int64_t d = s->running ? 0 : s->restart_at, t;
	for (const struct pending *p = s->pending; p; p = p->next)
		if (p->deadline && (!d || p->deadline < d))
			d = p->deadline;
	t = s->conf->type == SRV_LOCAL ? stdio_deadline(s) : http_deadline(s);
	if (t && (!d || t < d))
		d = t;
	return d;
}
