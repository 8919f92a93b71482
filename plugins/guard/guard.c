/* guard: refuses tool calls that would touch protected files. Its TOOL_BEFORE hook reads
 * every string field of the call's input named in "fields" (default filePath and path,
 * at any depth) and, for the tools named in "shell_tools" (default bash), every word of
 * "command"; a value matching one of "patterns" (default .env and *.pem, match.h says
 * how) fails the call with a reason naming the field, the value and the pattern — the
 * model reads it as the tool's error. A guard rail for honest mistakes, not a sandbox:
 * a command can always build a name the words do not show. */
#include "match.h"
#include "plug.h"

static const char *const default_patterns[] = {".env", "*.pem", NULL};
static const char *const default_fields[] = {"filePath", "path", NULL};
static const char *const default_shell_tools[] = {"bash", NULL};
static const char *const known_options[] = {"patterns", "fields", "shell_tools", NULL};

static struct guard {
	const struct ag_host *host;
	ag_plugin *self;
	char **patterns, **fields, **shell_tools;
} G;

static int refuse(const struct ag_ctx *ctx, struct ag_tool_before *tb, const char *what,
		  const char *value, const char *pattern)
{
	char why[768];
	/* the host adds which plugin refused: "... (plugin guard)" */
	snprintf(why, sizeof(why), "refused: %s \"%.256s\" matches the protected pattern "
		 "\"%.128s\"", what, value, pattern);
	G.host->log(G.self, AG_LOG_INFO, "session %s: %s call %s: %s", ctx->session_id,
		    tb->tool, tb->call_id, why);
	tb->reason = G.host->strdup(why);
	return AG_HOOK_REFUSE;
}

/* The first field of `fields` under node (any depth) whose value is protected. */
static const cJSON *find_path(const cJSON *node, const char **pattern)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, node) {
		const cJSON *hit = NULL;
		if (cJSON_IsString(it) && it->string && plug_strv_has(G.fields, it->string) &&
		    (*pattern = match_path(G.patterns, it->valuestring)))
			return it;
		if ((cJSON_IsObject(it) || cJSON_IsArray(it)) && (hit = find_path(it, pattern)))
			return hit;
	}
	return NULL;
}

static int tool_before(void *user, const struct ag_ctx *ctx, void *data)
{
	struct ag_tool_before *tb = data;
	cJSON *in = cJSON_Parse(tb->input_json);
	const char *pattern = NULL;
	const cJSON *field = cJSON_IsObject(in) ? find_path(in, &pattern) : NULL;
	const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(in, "command");
	char word[256];
	int rc = AG_HOOK_CONTINUE;
	if (field)
		rc = refuse(ctx, tb, field->string, field->valuestring, pattern);
	else if (cJSON_IsString(cmd) && plug_strv_has(G.shell_tools, tb->tool) &&
		 (pattern = match_command(G.patterns, cmd->valuestring, word, sizeof(word))))
		rc = refuse(ctx, tb, "command word", word, pattern);
	cJSON_Delete(in);
	return rc;
}

static void guard_free(void)
{
	free(G.patterns);
	free(G.fields);
	free(G.shell_tools);
	memset(&G, 0, sizeof(G));
}

static int guard_load(ag_plugin *self, const struct ag_host *host, const char *options,
		      struct ag_error *err)
{
	cJSON *o = NULL;
	memset(&G, 0, sizeof(G));
	G.host = host;
	G.self = self;
	int rc = plug_options(options, known_options, &o, err);
	if (!rc)
		rc = plug_opt_strv(o, "patterns", default_patterns, &G.patterns, err);
	if (!rc)
		rc = plug_opt_strv(o, "fields", default_fields, &G.fields, err);
	if (!rc)
		rc = plug_opt_strv(o, "shell_tools", default_shell_tools, &G.shell_tools, err);
	if (!rc && !G.patterns[0])
		rc = plug_fail(err, AG_E_INVALID, "option \"patterns\" must not be empty");
	if (!rc && (rc = host->hook(self, AG_HOOK_TOOL_BEFORE, tool_before, NULL)))
		plug_fail(err, rc, "cannot register the tool_before hook");
	cJSON_Delete(o);
	if (rc)
		guard_free();
	return rc;
}

static void guard_unload(ag_plugin *self)
{
	guard_free();
}

static const struct ag_plugin_info info = {
	.magic = AG_PLUGIN_MAGIC,
	.abi_major = AG_ABI_MAJOR,
	.abi_minor = AG_ABI_MINOR,
	.size = sizeof(struct ag_plugin_info),
	.id = "guard",
	.version = "1.0.0",
	.description = "refuses tool calls on protected paths (.env, *.pem, ...)",
	.on_load = guard_load,
	.on_unload = guard_unload,
};

AG_EXPORT const struct ag_plugin_info *AG_PLUGIN_ENTRY(void)
{
	return &info;
}
