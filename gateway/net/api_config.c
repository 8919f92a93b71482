/* api_config: GET /config — OpenCode's Config built from agentgate's: the default model,
 * the agents (AgentConfig), the providers and their configured models (ProviderConfig,
 * models.dev's model shape), the commands, the permission rules and the MCP servers.
 * Secrets are left out: API keys, and the environment, headers and OAuth settings of
 * MCP servers. agentgate's own options (limits, retries, server, plugins...) are not
 * OpenCode's and are not shown. Loop thread. */
#include "api_ops.h"
#include "catalog_json.h"
#include "provider_info.h"

#include <stdlib.h>
#include <string.h>

/* Writes v (a config value) as JSON without the members named in drop (NULL-ended). */
static void raw_without(struct jw *w, const cJSON *v, const char *const *drop)
{
	cJSON *copy = cJSON_Duplicate(v, 1);
	for (int i = 0; copy && cJSON_IsObject(copy) && drop && drop[i]; i++)
		cJSON_DeleteItemFromObjectCaseSensitive(copy, drop[i]);
	char *s = copy ? cJSON_PrintUnformatted(copy) : NULL;
	jw_raw(w, s ? s : "null");
	free(s);
	cJSON_Delete(copy);
}

static void agent_json(struct jw *w, const struct agent *a, const cJSON *cfg)
{
	jw_obj(w);
	if (a->description)
		jw_kstr(w, "description", a->description);
	jw_kstr(w, "mode", a->mode);
	if (a->prompt)
		jw_kstr(w, "prompt", a->prompt);
	if (a->model)
		jw_kstr(w, "model", a->model);
	jw_kint(w, "maxSteps", a->max_steps);
	jw_kint(w, "steps", a->max_steps);
	if (a->tools) { /* only these: every other tool off */
		jw_key(w, "tools");
		jw_obj(w);
		jw_kbool(w, "*", 0);
		for (int t = 0; t < a->ntools; t++)
			jw_kbool(w, a->tools[t], 1);
		jw_obj_end(w);
	}
	const cJSON *perm = cJSON_GetObjectItemCaseSensitive(cfg, "permission");
	if (perm) {
		jw_key(w, "permission");
		raw_without(w, perm, NULL);
	}
	jw_obj_end(w);
}

static void agents_json(struct jw *w, struct engine *E)
{
	const struct agents *A = engine_agents(E);
	const cJSON *sec = cJSON_GetObjectItemCaseSensitive(engine_config(E)->root, "agent");
	jw_key(w, "agent");
	jw_obj(w);
	for (int i = 0; i < A->n; i++) {
		jw_key(w, A->v[i].name);
		agent_json(w, &A->v[i], cJSON_GetObjectItemCaseSensitive(sec, A->v[i].name));
	}
	jw_obj_end(w);
}

/* A model as the config describes one (models.dev's shape). */
static void config_model(struct jw *w, const struct model_info *mi)
{
	jw_obj(w);
	jw_kstr(w, "id", mi->id);
	catalog_write_modelsdev(w, mi);
	jw_kstr(w, "status", "active");
	jw_obj_end(w);
}

/* The providers the config has a section for, with the models it lists. */
static void providers_json(struct jw *w, struct engine *E)
{
	const struct config *C = engine_config(E);
	const struct catalog *K = llm_catalog(engine_llm(E));
	struct provider_info pi;
	jw_key(w, "provider");
	jw_obj(w);
	for (int i = 0; !provider_info_at(C, i, &pi); i++) {
		if (!config_provider(C, pi.id))
			continue;
		jw_key(w, pi.id);
		jw_obj(w);
		jw_kstr(w, "id", pi.id);
		jw_kstr(w, "name", pi.name);
		jw_key(w, "env");
		jw_arr(w);
		if (*pi.env)
			jw_str(w, pi.env);
		jw_arr_end(w);
		jw_kstr(w, "npm", pi.npm);
		jw_key(w, "options");
		jw_obj(w);
		if (*pi.base_url)
			jw_kstr(w, "baseURL", pi.base_url);
		jw_obj_end(w);
		jw_key(w, "models");
		jw_obj(w);
		for (int m = 0; m < catalog_count(K); m++) {
			const struct model_info *mi = catalog_at(K, m);
			if (mi->configured && !strcmp(mi->provider, pi.id)) {
				jw_key(w, mi->id);
				config_model(w, mi);
			}
		}
		jw_obj_end(w);
		jw_obj_end(w);
	}
	jw_obj_end(w);
}

/* The config's section named key, without the members in drop, when it has one. */
static void section(struct jw *w, const struct config *C, const char *key,
		    const char *const *drop)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(C->root, key);
	if (!v)
		return;
	jw_key(w, key);
	raw_without(w, v, drop);
}

static void mcp_json(struct jw *w, const struct config *C)
{
	static const char *const secret[] = {"environment", "headers", "oauth", NULL};
	const cJSON *sec = cJSON_GetObjectItemCaseSensitive(C->root, "mcp"), *s;
	if (!cJSON_IsObject(sec))
		return;
	jw_key(w, "mcp");
	jw_obj(w);
	cJSON_ArrayForEach(s, sec) {
		jw_key(w, s->string);
		raw_without(w, s, secret);
	}
	jw_obj_end(w);
}

int api_config_get(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	static const char *const not_rules[] = {"timeout_ms", NULL};
	const struct config *C = engine_config(E);
	jw_obj(w);
	jw_kstr(w, "model", C->model);
	jw_kstr(w, "default_agent", DEFAULT_AGENT);
	jw_kstr(w, "share", "disabled");
	agents_json(w, E);
	providers_json(w, E);
	jw_key(w, "command");
	commands_write_config(engine_commands(E), w);
	section(w, C, "permission", not_rules);
	mcp_json(w, C);
	jw_obj_end(w);
	return 0;
}
