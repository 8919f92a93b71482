/* cmd_config: `agentgate config check FILE` (cmd_config.h). Two passes. The first walks
 * the file against the table below — every option the gateway reads, with the JSON
 * types it takes — and names each unknown key by its path (a misspelt option is
 * otherwise silently ignored) and each value of the wrong type. When the types are
 * right, the second hands the file to the gateway's own readers: the engine's
 * (config_load, agents, permission rules, workspace, providers and the scripted rules,
 * the model) and the server's (server.*), which say what is wrong with the values.
 * `serve` and `run` walk the same table at start-up and warn of each unknown key
 * (config_warn_unknown_keys); wrong types stay the engine's errors there.
 * A key added to the config is added to `keys` below and to contrib/agentgate.sample.json
 * (test_run checks that the two agree). */
#include "cmd_config.h"
#include "config.h"
#include "engine.h"
#include "log.h"
#include "serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	K_STR = 1, K_NUM = 2, K_BOOL = 4, K_OBJ = 8, K_ARR = 16,
	K_OPEN = 32, /* its members belong to someone else (rules, a plugin's options) */
};

/* Paths: members joined by '.', '*' for any member name, "[]" for array items. */
static const struct key {
	const char *path;
	unsigned kinds;
} keys[] = {
	{"$schema", K_STR},
	{"model", K_STR},
	{"workspace", K_STR},
	{"store", K_STR}, /* sqlite:PATH or postgres://... (store.h) */
	{"cluster", K_OBJ}, /* a cluster node (engine/cluster.c) */
	{"cluster.node", K_STR},
	{"cluster.lease_ms", K_NUM},
	{"bus", K_STR},   /* local or nats://HOST:PORT (bus.h) */
	{"bus_buffer_bytes", K_NUM}, /* this node's events waiting for NATS, at most */
	{"stall_timeout_ms", K_NUM},
	{"connect_timeout_ms", K_NUM},
	{"first_byte_timeout_ms", K_NUM},
	{"event_keep", K_NUM},
	{"event_ring", K_NUM},
	{"retry", K_OBJ},
	{"retry.max", K_NUM},
	{"retry.stall_max", K_NUM},
	{"retry.base_ms", K_NUM},
	{"retry.cap_ms", K_NUM},
	{"limits", K_OBJ},
	{"limits.max_output_bytes", K_NUM},
	{"limits.max_attempt_ms", K_NUM},
	{"limits.max_file_bytes", K_NUM},
	{"compaction", K_OBJ},
	{"compaction.auto", K_BOOL},
	{"compaction.prune", K_BOOL},
	{"compaction.reserve_tokens", K_NUM},
	{"task", K_OBJ},
	{"task.max_depth", K_NUM},
	{"task.max_running", K_NUM},
	{"task.budget_ms", K_NUM},
	{"agent", K_OBJ},
	{"agent.*", K_OBJ},
	{"agent.*.description", K_STR},
	{"agent.*.mode", K_STR},
	{"agent.*.prompt", K_STR},
	{"agent.*.model", K_STR},
	{"agent.*.tools", K_ARR | K_OBJ | K_OPEN},
	{"agent.*.maxSteps", K_NUM},
	{"agent.*.steps", K_NUM},
	{"agent.*.stall_timeout_ms", K_NUM},
	{"agent.*.permission", K_STR | K_OBJ | K_OPEN},
	{"permission", K_STR | K_OBJ | K_OPEN}, /* OpenCode's rules, and timeout_ms */
	{"command", K_OBJ}, /* prompt templates (engine/command.h) */
	{"command.*", K_OBJ},
	{"command.*.template", K_STR},
	{"command.*.description", K_STR},
	{"command.*.agent", K_STR},
	{"command.*.model", K_STR},
	{"command.*.subtask", K_BOOL},
	{"providers", K_OBJ},
	{"providers.openai", K_OBJ},
	{"providers.openai.base_url", K_STR},
	{"providers.openai.api_key", K_STR},
	{"providers.openai.headers", K_OBJ | K_OPEN},
	{"providers.openai.options", K_OBJ | K_OPEN},
	{"providers.openai.models", K_ARR | K_OBJ | K_OPEN},
	{"providers.anthropic", K_OBJ},
	{"providers.anthropic.base_url", K_STR},
	{"providers.anthropic.api_key", K_STR},
	{"providers.anthropic.headers", K_OBJ | K_OPEN},
	{"providers.anthropic.options", K_OBJ | K_OPEN},
	{"providers.anthropic.models", K_ARR | K_OBJ | K_OPEN},
	{"providers.scripted", K_OBJ},
	{"providers.scripted.pace_ms", K_NUM},
	{"providers.scripted.rules", K_ARR | K_OPEN},
	{"providers.scripted.rules_file", K_STR},
	{"providers.scripted.models", K_ARR | K_OBJ | K_OPEN}, /* the catalog (catalog.h) */
	{"server", K_OBJ},
	{"server.max_connections", K_NUM},
	{"server.ws_ping_s", K_NUM},
	{"server.sse_heartbeat_ms", K_NUM},
	{"server.subscriber_max_bytes", K_NUM},
	{"server.subscriber_max_behind_ms", K_NUM},
	{"server.allowed_hosts", K_ARR | K_OPEN},
	{"plugins", K_ARR | K_OBJ},
	{"plugins[]", K_OBJ},
	{"plugins[].path", K_STR},
	{"plugins[].options", K_OBJ | K_OPEN},
	{"plugins[].required", K_BOOL},
	{"plugins.slow_hook_ms", K_NUM},
	{"plugins.event_queue", K_NUM},
	{"plugins.load", K_ARR},
	{"plugins.load[]", K_OBJ},
	{"plugins.load[].path", K_STR},
	{"plugins.load[].options", K_OBJ | K_OPEN},
	{"plugins.load[].required", K_BOOL},
	{"mcp", K_OBJ | K_OPEN}, /* the mcp plugin's servers (plugins/README.md) */
};

static const char *kind_name(const cJSON *v)
{
	return cJSON_IsString(v) ? "a string" : cJSON_IsNumber(v) ? "a number"
	       : cJSON_IsBool(v) ? "true/false" : cJSON_IsObject(v) ? "an object"
	       : cJSON_IsArray(v) ? "an array" : "null";
}

static unsigned kind_of(const cJSON *v)
{
	return cJSON_IsString(v) ? K_STR : cJSON_IsNumber(v) ? K_NUM : cJSON_IsBool(v) ? K_BOOL
	       : cJSON_IsObject(v) ? K_OBJ : cJSON_IsArray(v) ? K_ARR : 0;
}

static void expected(unsigned kinds, char *out, size_t n)
{
	static const char *const names[] = {"a string", "a number", "true/false", "an object",
					    "an array"};
	out[0] = 0;
	for (int i = 0, first = 1; i < 5; i++)
		if (kinds & (1u << i)) {
			size_t l = strlen(out);
			snprintf(out + l, n - l, "%s%s", first ? "" : " or ", names[i]);
			first = 0;
		}
}

int config_key_matches(const char *pattern, const char *path)
{
	while (*pattern && *path) {
		if (*pattern == '*') {
			pattern++;
			path += strcspn(path, ".[");
			continue;
		}
		if (*pattern++ != *path++)
			return 0;
	}
	return !*pattern && !*path;
}

static const struct key *find_key(const char *path)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (config_key_matches(keys[i].path, path))
			return &keys[i];
	return NULL;
}

/* Reports unknown keys and (unless unknown_only) wrong types; returns how many of the
 * latter. pattern is the path as the table writes it ("plugins[].path"), shown as the
 * user wrote it ("plugins[2].path"). */
static int walk(const cJSON *v, char *pattern, char *shown, size_t cap, int unknown_only,
		config_problem_fn fn, void *arg)
{
	int wrong = 0, i = 0;
	size_t plen = strlen(pattern), slen = strlen(shown);
	const cJSON *m;
	cJSON_ArrayForEach(m, v) {
		if (cJSON_IsArray(v)) {
			snprintf(pattern + plen, cap - plen, "[]");
			snprintf(shown + slen, cap - slen, "[%d]", i++);
		} else {
			snprintf(pattern + plen, cap - plen, "%s%s", plen ? "." : "", m->string);
			snprintf(shown + slen, cap - slen, "%s%s", slen ? "." : "", m->string);
		}
		const struct key *k = find_key(pattern);
		char msg[600], want[80];
		if (!k) {
			snprintf(msg, sizeof(msg), "unknown key \"%s\" (agentgate does not read it: "
				 "misspelt, or not an option here)", shown);
			fn(arg, msg);
		} else if (!(kind_of(m) & k->kinds)) {
			expected(k->kinds, want, sizeof(want));
			snprintf(msg, sizeof(msg), "\"%s\" must be %s (it is %s)", shown, want,
				 kind_name(m));
			if (!unknown_only)
				fn(arg, msg);
			wrong++;
		} else if (!(k->kinds & K_OPEN) && (cJSON_IsObject(m) || cJSON_IsArray(m))) {
			wrong += walk(m, pattern, shown, cap, unknown_only, fn, arg);
		}
		pattern[plen] = 0;
		shown[slen] = 0;
	}
	return wrong;
}

int config_check_keys(const cJSON *root, config_problem_fn fn, void *arg)
{
	char pattern[512] = "", shown[512] = "";
	return walk(root, pattern, shown, sizeof(pattern), 0, fn, arg);
}

static void warn_unknown(void *arg, const char *msg)
{
	log_warn("config %s: %s", (const char *)arg, msg);
}

void config_warn_unknown_keys(const char *path)
{
	char pattern[512] = "", shown[512] = "";
	char *text = path ? config_read_file(path, "config file", NULL) : NULL;
	cJSON *root = text ? config_parse(text) : NULL;
	if (cJSON_IsObject(root))
		walk(root, pattern, shown, sizeof(pattern), 1, warn_unknown, (void *)path);
	cJSON_Delete(root);
	free(text);
}

void config_keys(void (*fn)(void *arg, const char *path), void *arg)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		fn(arg, keys[i].path);
}

/* ---- the command ---- */

struct report {
	const char *file;
	int n;
	char last[512]; /* the engine's and the server's readers may both refuse a value */
};

static void print_problem(void *arg, const char *msg)
{
	struct report *r = arg;
	char prefix[600];
	snprintf(prefix, sizeof(prefix), "config %s: ", r->file);
	if (!strncmp(msg, prefix, strlen(prefix)))
		msg += strlen(prefix); /* the file is named once, at the start of the line */
	if (!strcmp(msg, r->last))
		return;
	snprintf(r->last, sizeof(r->last), "%s", msg);
	printf("%s: %s\n", r->file, msg);
	r->n++;
}

int cmd_config(const struct cli *c)
{
	struct report r = {c->check, 0, ""};
	struct err e = {0};
	char *text = config_read_file(c->check, "config file", &e);
	if (!text) {
		fprintf(stderr, "agentgate config check: %s\n", e.msg);
		return 1;
	}
	cJSON *root = config_parse(text);
	if (!cJSON_IsObject(root)) {
		const char *at = cJSON_GetErrorPtr();
		printf("%s: not a JSON object%s", c->check, root ? "\n" : "");
		if (!root)
			printf(" (a parse error near byte %ld)\n", at ? (long)(at - text) : 0L);
		cJSON_Delete(root);
		free(text);
		return 1;
	}
	/* types first: the readers below would stop at the first of those */
	int wrong_types = config_check_keys(root, print_problem, &r);
	cJSON_Delete(root);
	free(text);
	if (!wrong_types) {
		/* the values, as the gateway itself reads them */
		struct loop_config lc = {.port = -1};
		struct loop *L = loop_create(&lc);
		if (L && engine_check_config(L, c->check, &e))
			print_problem(&r, e.msg);
		loop_destroy(L);
		memset(&e, 0, sizeof(e));
		if (serve_check_config(c->check, &e))
			print_problem(&r, e.msg);
	}
	if (r.n) {
		printf("%s: %d problem%s\n", c->check, r.n, r.n == 1 ? "" : "s");
		return 1;
	}
	printf("%s: ok\n", c->check);
	return 0;
}
