/* probe: a test plugin that makes the first-party plugins observable end to end. It
 * announces every turn that ends as the event plugin.probe.turn_end {sessionID, turnID,
 * state, source} (so a test sees which turns a plugin's prompts opened), and offers two
 * tools with the argument names of real file and shell tools: probe_read {filePath}
 * answers "read PATH", probe_bash {command} answers "ran COMMAND". */
#include <agentgate/plugin.h>
#include <cjson/cJSON.h>

#include <stdio.h>
#include <string.h>

static const struct ag_host *host;
static ag_plugin *self;

static int on_turn_end(void *user, const struct ag_ctx *ctx, void *data)
{
	const struct ag_turn_end *te = data;
	cJSON *p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "sessionID", ctx->session_id);
	cJSON_AddStringToObject(p, "turnID", ctx->turn_id ? ctx->turn_id : "");
	cJSON_AddStringToObject(p, "state", te->state ? te->state : "");
	cJSON_AddStringToObject(p, "source", te->source ? te->source : "");
	char *props = cJSON_PrintUnformatted(p);
	host->emit(self, ctx->session_id, "turn_end", props, NULL);
	cJSON_free(props);
	cJSON_Delete(p);
	return AG_HOOK_CONTINUE;
}

/* Answers "<verb> <input[field]>". */
static void answer(const struct ag_tool_call *call, const char *verb, const char *field)
{
	cJSON *in = cJSON_Parse(call->input_json);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, field);
	char out[1024];
	if (cJSON_IsString(v)) {
		snprintf(out, sizeof(out), "%s %s", verb, v->valuestring);
		host->tool_done(self, call->id, out, NULL, NULL);
	} else {
		snprintf(out, sizeof(out), "%s must be a string", field);
		host->tool_fail(self, call->id, out, NULL);
	}
	cJSON_Delete(in);
}

static void read_run(void *user, const struct ag_tool_call *call)
{
	answer(call, "read", "filePath");
}

static void bash_run(void *user, const struct ag_tool_call *call)
{
	answer(call, "ran", "command");
}

static int add_tool(const char *name, const char *field,
		    void (*run)(void *, const struct ag_tool_call *), struct ag_error *err)
{
	char params[256];
	snprintf(params, sizeof(params), "{\"type\":\"object\",\"properties\":{\"%s\":"
		 "{\"type\":\"string\"}},\"required\":[\"%s\"]}", field, field);
	struct ag_tool t = {.size = sizeof(t), .name = name, .description = "a test probe",
			    .parameters_json = params, .run = run};
	return host->tool_register(self, &t, err);
}

static int probe_load(ag_plugin *p, const struct ag_host *h, const char *options,
		      struct ag_error *err)
{
	host = h;
	self = p;
	int rc = host->hook(self, AG_HOOK_TURN_END, on_turn_end, NULL);
	if (!rc)
		rc = add_tool("probe_read", "filePath", read_run, err);
	if (!rc)
		rc = add_tool("probe_bash", "command", bash_run, err);
	return rc;
}

static const struct ag_plugin_info info = {
	.magic = AG_PLUGIN_MAGIC,
	.abi_major = AG_ABI_MAJOR,
	.abi_minor = AG_ABI_MINOR,
	.size = sizeof(struct ag_plugin_info),
	.id = "probe",
	.version = "0",
	.description = "test probe: turn ends as events, path and shell tools",
	.on_load = probe_load,
};

AG_EXPORT const struct ag_plugin_info *AG_PLUGIN_ENTRY(void)
{
	return &info;
}
