/* mcp: MCP servers' tools as agentgate tools. The servers come from the config's "mcp"
 * section (host->setting) and the plugin's own "mcp" option (which wins, per name), in
 * OpenCode's shape. This file is the loop's side: options, each server's tools
 * registered as SERVER_TOOL (and changed as the server's list changes), a permission ask
 * per call (the tool's name is the permission), every call and cancel handed to the I/O
 * thread (io.c), and the servers' state written to the kv store under "status"
 * (status.h has the shape) a moment after each change. */
#include "mcp.h"

#include <stdlib.h>
#include <string.h>

#define STATUS_DELAY_MS 50 /* changes within this are written as one */

static const char *const known_options[] = {"mcp", "timeout_ms", "startup_timeout_ms",
					    "restart_ms", "restart_max_ms", NULL};

static struct mcp {
	struct mcp_env env;
	struct srv_conf *conf;
	struct srv_view *view; /* per server: what the loop knows and registered */
	int n;
	uint64_t status_timer;
	int io;
} M;

/* ---- the status record ---- */

static void write_status(void *user)
{
	struct ag_error err = {0};
	char *json = status_json(M.view, M.n);
	M.status_timer = 0;
	if (!json || M.env.host->kv_set(M.env.self, "status", json, strlen(json), &err))
		M.env.host->log(M.env.self, AG_LOG_WARN, "cannot write the status: %s",
				json ? err.message : "out of memory");
	free(json);
}

static void status_changed(void)
{
	if (!M.status_timer)
		M.status_timer = M.env.host->timer_add(M.env.self, STATUS_DELAY_MS, write_status,
						       NULL);
}

/* ---- tools ---- */

/* The server and the server's tool behind a registered name. */
static const struct tooldef *find_tool(const char *name, int *server)
{
	for (int i = 0; i < M.n; i++)
		for (int k = 0; k < M.view[i].ntools; k++)
			if (!strcmp(M.view[i].tools[k].name, name)) {
				*server = i;
				return &M.view[i].tools[k];
			}
	return NULL;
}

/* ---- permission: the call's tool name is the permission (OpenCode's rule for MCP
 * tools; the gateway's defaults allow it), asked before the call goes to the server ---- */

enum ask_state { ASKING, ANSWERED_INSIDE, WAITING };
struct ask {
	struct io_cmd *cmd; /* sent on ALLOW */
	enum ask_state state;
};

static void ask_done(void *user, int decision, const char *message)
{
	struct ask *a = user;
	if (decision == AG_PERMISSION_ALLOW) {
		io_push(a->cmd);
	} else {
		M.env.host->tool_fail(M.env.self, a->cmd->call, message && *message ? message
				      : "permission denied", NULL);
		io_cmd_free(a->cmd);
	}
	if (a->state == ASKING)
		a->state = ANSWERED_INSIDE; /* permission_ask frees it when it returns */
	else
		free(a);
}

/* The request: the tool, every pattern ("*"), what a human reads. */
static void ask(const struct ag_tool_call *call, struct io_cmd *cmd, int server)
{
	int (*perm)(ag_plugin *, const struct ag_permission_request *, ag_permission_done_fn,
		    void *, struct ag_error *) = AG_HOST_FN(M.env.host, permission_ask);
	struct ag_error err = {0};
	char title[TOOL_NAME_MAX + 32];
	cJSON *meta = cJSON_CreateObject();
	struct ask *a = malloc(sizeof(*a));
	if (!perm || !a || !meta) { /* no permission system: as the defaults, allowed */
		free(a);
		cJSON_Delete(meta);
		io_push(cmd);
		return;
	}
	cJSON_AddStringToObject(meta, "server", M.conf[server].name);
	cJSON_AddStringToObject(meta, "tool", cmd->tool);
	cJSON_AddItemToObject(meta, "input", cJSON_Parse(cmd->args));
	char *meta_json = cJSON_PrintUnformatted(meta);
	cJSON_Delete(meta);
	snprintf(title, sizeof(title), "Use MCP tool %s", call->tool);
	struct ag_permission_request rq = {.size = sizeof(rq), .call = call->id,
					   .permission = call->tool, .patterns_json = "[\"*\"]",
					   .always_json = "[\"*\"]", .title = title,
					   .metadata_json = meta_json};
	*a = (struct ask){cmd, ASKING};
	int rc = perm(M.env.self, &rq, ask_done, a, &err);
	free(meta_json);
	if (a->state == ANSWERED_INSIDE) {
		free(a);
	} else if (rc) { /* refused before asking: done does not run */
		M.env.host->tool_fail(M.env.self, call->id, err.message[0] ? err.message
				      : "the permission ask failed", NULL);
		io_cmd_free(cmd);
		free(a);
	} else {
		a->state = WAITING; /* ask_done frees it */
	}
}

static void tool_run(void *user, const struct ag_tool_call *call)
{
	int server = -1;
	const struct tooldef *t = find_tool(call->tool, &server);
	struct io_cmd *c = calloc(1, sizeof(*c));
	if (!t || !c) {
		free(c);
		M.env.host->tool_fail(M.env.self, call->id, t ? "out of memory"
				      : "this MCP tool is no longer offered by its server", NULL);
		return;
	}
	*c = (struct io_cmd){.kind = CMD_CALL, .server = server, .call = call->id,
			     .tool = strdup(t->orig), .args = strdup(call->input_json ? call->input_json
										    : "{}")};
	if (!c->tool || !c->args) {
		io_cmd_free(c);
		M.env.host->tool_fail(M.env.self, call->id, "out of memory", NULL);
		return;
	}
	ask(call, c, server);
}

static void tool_cancel(void *user, const struct ag_tool_call *call)
{
	struct io_cmd *c = calloc(1, sizeof(*c));
	if (!c)
		return;
	*c = (struct io_cmd){.kind = CMD_CANCEL, .server = -1, .call = call->id};
	io_push(c);
}

static int register_one(int server, const struct tooldef *t)
{
	struct ag_error err = {0};
	struct ag_tool def = {.size = sizeof(def), .name = t->name, .description = t->description,
			      .parameters_json = t->schema, .run = tool_run,
			      .cancel = tool_cancel, .user = &M,
			      .timeout_ms = M.conf[server].timeout_ms};
	int rc = M.env.host->tool_register(M.env.self, &def, &err);
	if (rc)
		M.env.host->log(M.env.self, AG_LOG_WARN, "server %s: tool %s not registered: %s",
				M.conf[server].name, t->name, err.message);
	return rc;
}

static const struct tooldef *in_list(const struct tooldef *list, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(list[i].name, name))
			return &list[i];
	return NULL;
}

/* Makes the server's registered tools those of the new list: removed and changed ones
 * unregistered, new and changed ones registered. */
static void sync_tools(int server, const struct tooldef *tools, int n)
{
	struct srv_view *v = &M.view[server];
	struct tooldef *now = calloc((size_t)n + 1, sizeof(*now));
	int k = 0;
	for (int i = 0; i < v->ntools; i++) {
		const struct tooldef *t = in_list(tools, n, v->tools[i].name);
		if (!t || !tools_same(t, &v->tools[i]))
			M.env.host->tool_unregister(M.env.self, v->tools[i].name);
	}
	for (int i = 0; now && i < n; i++) {
		const struct tooldef *old = in_list(v->tools, v->ntools, tools[i].name);
		if (old && tools_same(old, &tools[i]) ? 0 : register_one(server, &tools[i]))
			continue;
		if (tools_copy(&now[k], &tools[i]))
			tools_clear(&now[k]); /* out of memory: registered, not listed */
		else
			k++;
	}
	tools_free(v->tools, v->ntools);
	v->tools = now;
	v->ntools = now ? k : 0;
}

/* ---- news from the I/O thread ---- */

static void update_free(struct mcp_update *u)
{
	tools_free(u->tools, u->ntools);
	free(u->error);
	free(u);
}

static void apply_update(void *arg)
{
	struct mcp_update *u = arg;
	struct srv_view *v = &M.view[u->server];
	v->state = u->state;
	v->restarts = u->restarts;
	v->pid = u->pid;
	free(v->error);
	v->error = u->error;
	u->error = NULL;
	if (u->has_tools)
		sync_tools(u->server, u->tools, u->ntools);
	update_free(u);
	status_changed();
}

void mcp_post_update(struct mcp_update *u)
{
	if (M.env.host->post(M.env.self, apply_update, u))
		update_free(u); /* unloading: nobody is told any more */
}

/* ---- options and load ---- */

/* The options object (*o, the caller deletes it) and its knobs into M.env. */
static int read_options(const char *json, cJSON **o, long long *timeout, struct ag_error *err)
{
	long long restart = 0, restart_max = 0, startup = 0;
	int rc = plug_options(json, known_options, o, err);
	if (!rc)
		rc = plug_opt_int(*o, "timeout_ms", 60000, 1, 86400000, timeout, err);
	if (!rc)
		rc = plug_opt_int(*o, "startup_timeout_ms", 30000, 1, 3600000, &startup, err);
	if (!rc)
		rc = plug_opt_int(*o, "restart_ms", 1000, 10, 3600000, &restart, err);
	if (!rc)
		rc = plug_opt_int(*o, "restart_max_ms", 60000, 10, 86400000, &restart_max, err);
	if (!rc && restart_max < restart)
		rc = plug_fail(err, AG_E_INVALID, "option \"restart_max_ms\" must be at least "
			       "\"restart_ms\"");
	M.env.restart_ms = restart;
	M.env.restart_max_ms = restart_max;
	M.env.startup_ms = startup;
	return rc;
}

/* A setting as text (host-allocated; NULL when unset or the host has none). */
static char *setting(const char *name)
{
	char *(*get)(ag_plugin *, const char *) = AG_HOST_FN(M.env.host, setting);
	return get ? get(M.env.self, name) : NULL;
}

/* The environment variables no server is handed ("secrets"), NULL-terminated. */
static char **secrets(void)
{
	char *json = setting("secrets");
	cJSON *a = json ? cJSON_Parse(json) : NULL, *it;
	const char *names[64];
	int n = 0;
	cJSON_ArrayForEach(it, a)
		if (cJSON_IsString(it) && n < 64)
			names[n++] = it->valuestring;
	char **v = plug_strv(names, n);
	cJSON_Delete(a);
	M.env.host->free(json);
	return v;
}

static int load_servers(const cJSON *mcp_opt, long long timeout, struct ag_error *err)
{
	char *from_config = setting("mcp"), why[256];
	char *merged = conf_merge(from_config, mcp_opt);
	char **hidden = secrets();
	int rc = merged && hidden ? conf_parse(merged, hidden, timeout, &M.conf, &M.n, why,
					       sizeof(why))
				  : (snprintf(why, sizeof(why), "out of memory"), -1);
	M.env.host->free(from_config);
	free(merged);
	free(hidden);
	if (rc)
		return plug_fail(err, AG_E_INVALID, "%s", why);
	M.view = calloc((size_t)M.n + 1, sizeof(*M.view));
	if (!M.view)
		return plug_fail(err, AG_E_INTERNAL, "out of memory");
	for (int i = 0; i < M.n; i++)
		M.view[i] = (struct srv_view){.name = M.conf[i].name,
					      .remote = M.conf[i].type == SRV_REMOTE};
	return AG_OK;
}

static void free_all(void)
{
	for (int i = 0; M.view && i < M.n; i++) {
		tools_free(M.view[i].tools, M.view[i].ntools);
		free(M.view[i].error);
	}
	free(M.view);
	conf_free(M.conf, M.n);
	memset(&M, 0, sizeof(M));
}

static int on_load(ag_plugin *self, const struct ag_host *host, const char *options_json,
		   struct ag_error *err)
{
	cJSON *o = NULL;
	long long timeout = 0;
	char why[256];
	memset(&M, 0, sizeof(M));
	M.env.host = host;
	M.env.self = self;
	int rc = read_options(options_json, &o, &timeout, err);
	if (!rc)
		rc = load_servers(cJSON_GetObjectItemCaseSensitive(o, "mcp"), timeout, err);
	cJSON_Delete(o);
	if (!rc && M.n && io_start(&M.env, M.conf, M.n, why, sizeof(why)))
		rc = plug_fail(err, AG_E_INTERNAL, "%s", why);
	if (rc) {
		free_all();
		return rc;
	}
	M.io = M.n > 0;
	/* at once, even with no servers: a reader after the load (agentgate run waiting for
	 * the servers to connect) must not see the record a previous process left */
	write_status(NULL);
	return AG_OK;
}

static void on_unload(ag_plugin *self)
{
	if (M.io)
		io_stop();
	free_all();
}

static const struct ag_plugin_info info = {
	.magic = AG_PLUGIN_MAGIC,
	.abi_major = AG_ABI_MAJOR,
	.abi_minor = AG_ABI_MINOR,
	.size = sizeof(struct ag_plugin_info),
	.id = "mcp",
	.version = "1.0.0",
	.description = "MCP servers (local over stdio, remote over Streamable HTTP) as tools",
	.on_load = on_load,
	.on_unload = on_unload,
};

AG_EXPORT const struct ag_plugin_info *AG_PLUGIN_ENTRY(void)
{
	return &info;
}
