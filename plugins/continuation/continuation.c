/* continuation: a todo list per session (the tools todowrite and todoread, OpenCode's
 * shapes) and, when a root session goes idle after a completed turn with todos still
 * pending or in progress, a prompt that wakes it to go on with them. The wake enters the
 * session's turn queue through prompt_async (source plugin:<id>) with the dedupe key
 * "continuation:<session>", so it can never race a user's message; at most max_wakes
 * wakes follow one prompt from anyone else, so a model that never finishes is not woken
 * forever. Lists and wake counts live in the plugin's kv store ("todos/<session>",
 * "wakes/<session>"); a list with nothing open is forgotten there. Each list written is
 * also handed to the gateway (session_todo_set, ABI 1.1), which serves it to clients
 * (GET /session/{id}/todo) and announces it (todo.updated). Everything runs on the loop.
 */
#include "plug.h"
#include "todos.h"

#define ID_MAX 128

static const char *const known_options[] = {"max_wakes", NULL};

static struct continuation {
	const struct ag_host *host;
	ag_plugin *self;
	int max_wakes;
	char source[ID_MAX + 8];     /* "plugin:<id>": our own wakes' turns */
	char last_end[ID_MAX];      /* the session whose turn ended last, and */
	int last_end_completed;     /* whether it completed (no wake after an abort) */
} C;

/* ---- the kv store ----------------------------------------------------------------- */

static void key_of(char *key, size_t n, const char *what, const char *session)
{
	snprintf(key, n, "%s/%s", what, session);
}

/* The session's todo list, or NULL (none, or unreadable: logged). */
static cJSON *todos_load(const char *session)
{
	char key[ID_MAX + 8], *v = NULL;
	size_t len = 0;
	struct ag_error err = {0};
	key_of(key, sizeof(key), "todos", session);
	int rc = C.host->kv_get(C.self, key, &v, &len, &err);
	if (rc) {
		if (rc != AG_E_NOTFOUND)
			C.host->log(C.self, AG_LOG_WARN, "session %s: cannot read todos: %s",
				    session, err.message);
		return NULL;
	}
	cJSON *t = cJSON_ParseWithLength(v, len);
	C.host->free(v);
	return t;
}

static int todos_store(const char *session, const cJSON *todos, struct ag_error *err)
{
	char key[ID_MAX + 8];
	key_of(key, sizeof(key), "todos", session);
	if (!todos_open(todos)) {
		int rc = C.host->kv_delete(C.self, key, err);
		return rc == AG_E_NOTFOUND ? AG_OK : rc;
	}
	char *text = cJSON_PrintUnformatted(todos);
	if (!text)
		return plug_fail(err, AG_E_INTERNAL, "out of memory");
	int rc = C.host->kv_set(C.self, key, text, strlen(text), err);
	cJSON_free(text);
	return rc;
}

/* Hands the whole list, open or not, to the gateway, which serves it (GET
 * /session/{id}/todo) and announces it (todo.updated); a host older than ABI 1.1 has no
 * such list. */
static int todos_publish(const char *session, const cJSON *todos, struct ag_error *err)
{
	int (*set)(ag_plugin *, const char *, const char *, struct ag_error *) =
		AG_HOST_FN(C.host, session_todo_set);
	if (!set)
		return AG_OK;
	char *text = cJSON_PrintUnformatted(todos);
	if (!text)
		return plug_fail(err, AG_E_INTERNAL, "out of memory");
	int rc = set(C.self, session, text, err);
	cJSON_free(text);
	return rc;
}

static int wakes_get(const char *session)
{
	char key[ID_MAX + 8], *v = NULL, num[16] = "";
	size_t len = 0;
	key_of(key, sizeof(key), "wakes", session);
	if (C.host->kv_get(C.self, key, &v, &len, NULL))
		return 0;
	memcpy(num, v, len < sizeof(num) - 1 ? len : sizeof(num) - 1);
	C.host->free(v);
	return atoi(num);
}

static int wakes_set(const char *session, int n)
{
	char key[ID_MAX + 8], num[16];
	struct ag_error err = {0};
	key_of(key, sizeof(key), "wakes", session);
	int rc = n ? C.host->kv_set(C.self, key, num,
				    (size_t)snprintf(num, sizeof(num), "%d", n), &err)
		   : C.host->kv_delete(C.self, key, &err);
	if (rc && rc != AG_E_NOTFOUND)
		C.host->log(C.self, AG_LOG_WARN, "session %s: cannot store the wake count: %s",
			    session, err.message);
	return rc == AG_E_NOTFOUND ? AG_OK : rc;
}

/* ---- the tools ---------------------------------------------------------------------- */

static const char todowrite_desc[] =
	"Create or replace this session's todo list; pass the whole list each time. Use it "
	"for work of three or more steps, or when the user asks for several things: write "
	"the items first, mark the one you work on in_progress (one at a time), and mark "
	"each completed as soon as it is done, or cancelled when it no longer applies. "
	"If you stop while todos are still pending or in_progress, you will be prompted to "
	"continue with them.";

static const char todowrite_params[] =
	"{\"type\":\"object\",\"properties\":{\"todos\":{\"type\":\"array\","
	"\"description\":\"The updated todo list\",\"items\":{\"type\":\"object\","
	"\"properties\":{"
	"\"content\":{\"type\":\"string\",\"description\":\"Brief description of the task\"},"
	"\"status\":{\"type\":\"string\",\"enum\":[\"pending\",\"in_progress\",\"completed\","
	"\"cancelled\"],\"description\":\"Current status of the task: pending, in_progress, "
	"completed, cancelled\"},"
	"\"priority\":{\"type\":\"string\",\"enum\":[\"high\",\"medium\",\"low\"],"
	"\"description\":\"Priority level of the task: high, medium, low\"},"
	"\"id\":{\"type\":\"string\",\"description\":\"Unique identifier for the todo item\"}},"
	"\"required\":[\"content\",\"status\",\"priority\",\"id\"]}}},\"required\":[\"todos\"]}";

static const char todoread_desc[] = "Read this session's todo list, as todowrite last "
				    "wrote it (an empty list once nothing is left open).";
static const char todoread_params[] = "{\"type\":\"object\",\"properties\":{}}";

/* Ends a call with the list: its JSON as output, "N todos" (open ones) as title. */
static void reply_list(uint64_t id, const cJSON *todos)
{
	char title[32], *out = cJSON_Print(todos);
	cJSON *meta = cJSON_CreateObject();
	cJSON_AddItemToObject(meta, "todos", cJSON_Duplicate(todos, 1));
	char *meta_text = cJSON_PrintUnformatted(meta);
	snprintf(title, sizeof(title), "%d todos", todos_open(todos));
	if (out && meta_text)
		C.host->tool_done(C.self, id, out, title, meta_text);
	else
		C.host->tool_fail(C.self, id, "out of memory", NULL);
	cJSON_free(out);
	cJSON_free(meta_text);
	cJSON_Delete(meta);
}

static void todowrite_run(void *user, const struct ag_tool_call *call)
{
	char why[256];
	struct ag_error err = {0};
	cJSON *todos = todos_parse(call->input_json, why, sizeof(why));
	if (!todos) {
		C.host->tool_fail(C.self, call->id, why, NULL);
		return;
	}
	if (todos_store(call->ctx->session_id, todos, &err) ||
	    todos_publish(call->ctx->session_id, todos, &err))
		C.host->tool_fail(C.self, call->id, err.message, NULL);
	else
		reply_list(call->id, todos);
	cJSON_Delete(todos);
}

static void todoread_run(void *user, const struct ag_tool_call *call)
{
	cJSON *todos = todos_load(call->ctx->session_id);
	if (!cJSON_IsArray(todos)) {
		cJSON_Delete(todos);
		todos = cJSON_CreateArray();
	}
	reply_list(call->id, todos);
	cJSON_Delete(todos);
}

/* ---- the wake ----------------------------------------------------------------------- */

/* plugin.<id>.<name> for the session, {sessionID, wake, maxWakes, open}. */
static void emit(const char *session, const char *name, int wake, int open)
{
	char props[256];
	snprintf(props, sizeof(props), "{\"sessionID\":\"%s\",\"wake\":%d,\"maxWakes\":%d,"
		 "\"open\":%d}", session, wake, C.max_wakes, open);
	C.host->emit(C.self, session, name, props, NULL);
}

static void wake(const char *session, const cJSON *todos, int wakes)
{
	char dedupe[ID_MAX + 16];
	struct ag_error err = {0};
	struct ag_prompt_ack ack = {.size = sizeof(ack)};
	char *text = todos_wake_text(todos, wakes + 1, C.max_wakes);
	snprintf(dedupe, sizeof(dedupe), "continuation:%s", session);
	struct ag_prompt p = {.size = sizeof(p), .text = text, .dedupe_key = dedupe};
	/* counted first: a wake that cannot be counted is not sent */
	int rc = !text ? AG_E_INTERNAL : wakes_set(session, wakes + 1);
	if (!rc)
		rc = C.host->prompt_async(C.self, session, &p, NULL, NULL, &ack, &err);
	if (rc)
		C.host->log(C.self, AG_LOG_WARN, "session %s: cannot wake it: %s", session,
			    text ? err.message : "out of memory");
	else if (!ack.coalesced)
		emit(session, "wake", wakes + 1, todos_open(todos));
	free(text);
}

static int session_idle(void *user, const struct ag_ctx *ctx, void *data)
{
	const char *sid = ctx->session_id;
	if (!sid || ctx->depth > 0 ||
	    (!strcmp(C.last_end, sid) && !C.last_end_completed))
		return AG_HOOK_CONTINUE;
	cJSON *todos = todos_load(sid);
	int open = todos_open(todos), wakes = open ? wakes_get(sid) : 0;
	if (open && wakes < C.max_wakes) {
		wake(sid, todos, wakes);
	} else if (open && wakes == C.max_wakes) {
		C.host->log(C.self, AG_LOG_INFO, "session %s: %d todos still open after %d wakes; "
			    "no more until the next prompt", sid, open, wakes);
		emit(sid, "exhausted", wakes, open);
		wakes_set(sid, wakes + 1); /* said once */
	}
	cJSON_Delete(todos);
	return AG_HOOK_CONTINUE;
}

/* A turn that was not our wake gives the session its wakes back; an ended turn that did
 * not complete (aborted, failed) is not followed by a wake. */
static int turn_end(void *user, const struct ag_ctx *ctx, void *data)
{
	const struct ag_turn_end *te = data;
	if (!ctx->session_id)
		return AG_HOOK_CONTINUE;
	snprintf(C.last_end, sizeof(C.last_end), "%s", ctx->session_id);
	C.last_end_completed = te->state && !strcmp(te->state, "completed");
	if (AG_HAS(te, struct ag_turn_end, source) && te->source &&
	    strcmp(te->source, C.source) && wakes_get(ctx->session_id))
		wakes_set(ctx->session_id, 0);
	return AG_HOOK_CONTINUE;
}

/* ---- load --------------------------------------------------------------------------- */

static int add_tool(const char *name, const char *desc, const char *params,
		    void (*run)(void *, const struct ag_tool_call *), struct ag_error *err)
{
	struct ag_tool t = {.size = sizeof(t), .name = name, .description = desc,
			    .parameters_json = params, .run = run};
	return C.host->tool_register(C.self, &t, err);
}

static int hook(int id, ag_hook_fn fn, struct ag_error *err)
{
	int rc = C.host->hook(C.self, id, fn, NULL);
	return rc ? plug_fail(err, rc, "cannot register hook %d", id) : AG_OK;
}

static int continuation_load(ag_plugin *self, const struct ag_host *host, const char *options,
			     struct ag_error *err)
{
	cJSON *o = NULL;
	long long max_wakes = 3;
	memset(&C, 0, sizeof(C));
	C.host = host;
	C.self = self;
	snprintf(C.source, sizeof(C.source), "plugin:%s", host->id(self));
	int rc = plug_options(options, known_options, &o, err);
	if (!rc)
		rc = plug_opt_int(o, "max_wakes", 3, 0, 100, &max_wakes, err);
	C.max_wakes = (int)max_wakes;
	if (!rc)
		rc = add_tool("todowrite", todowrite_desc, todowrite_params, todowrite_run, err);
	if (!rc)
		rc = add_tool("todoread", todoread_desc, todoread_params, todoread_run, err);
	if (!rc)
		rc = hook(AG_HOOK_TURN_END, turn_end, err);
	if (!rc)
		rc = hook(AG_HOOK_SESSION_IDLE, session_idle, err);
	cJSON_Delete(o);
	return rc;
}

static const struct ag_plugin_info info = {
	.magic = AG_PLUGIN_MAGIC,
	.abi_major = AG_ABI_MAJOR,
	.abi_minor = AG_ABI_MINOR,
	.size = sizeof(struct ag_plugin_info),
	.id = "continuation",
	.version = "1.0.0",
	.description = "todowrite/todoread, and a wake on idle while todos are open",
	.on_load = continuation_load,
};

AG_EXPORT const struct ag_plugin_info *AG_PLUGIN_ENTRY(void)
{
	return &info;
}
