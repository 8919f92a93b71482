/* api_catalog: the model catalog in OpenCode's shapes — GET /config/providers
 * ({providers, default}: the connected providers), GET /provider ({all, default,
 * connected}) and GET /provider/auth. The models are the catalog's (llm/catalog.h), the
 * providers' names, URLs and connection state provider_info's. API keys are never
 * written. Loop thread. */
#include "api_ops.h"
#include "catalog_json.h"
#include "provider_info.h"

#include <string.h>

static void flags(struct jw *w, int text, int audio, int image, int video, int pdf)
{
	jw_obj(w);
	jw_kbool(w, "text", text);
	jw_kbool(w, "audio", audio);
	jw_kbool(w, "image", image);
	jw_kbool(w, "video", video);
	jw_kbool(w, "pdf", pdf);
	jw_obj_end(w);
}

static void kdouble(struct jw *w, const char *k, double v)
{
	jw_key(w, k);
	jw_double(w, v);
}

static void capabilities(struct jw *w, const struct model_info *mi)
{
	jw_key(w, "capabilities");
	jw_obj(w);
	jw_kbool(w, "temperature", mi->temperature);
	jw_kbool(w, "reasoning", mi->reasoning);
	jw_kbool(w, "attachment", mi->attachment);
	jw_kbool(w, "toolcall", mi->tool_call);
	jw_key(w, "input");
	flags(w, 1, mi->input_audio, mi->input_image, mi->input_video, mi->input_pdf);
	jw_key(w, "output");
	flags(w, 1, 0, 0, 0, 0);
	jw_kbool(w, "interleaved", 0);
	jw_obj_end(w);
}

/* cost: OpenCode's {input, output, cache: {read, write}}; models.dev's flat cache_read
 * and cache_write beside them when flat is set (the v1 SDK's GET /provider type). */
static void cost(struct jw *w, const struct model_info *mi, int flat)
{
	jw_key(w, "cost");
	jw_obj(w);
	kdouble(w, "input", mi->cost_input);
	kdouble(w, "output", mi->cost_output);
	jw_key(w, "cache");
	jw_obj(w);
	kdouble(w, "read", mi->cost_cache_read);
	kdouble(w, "write", mi->cost_cache_write);
	jw_obj_end(w);
	if (flat) {
		kdouble(w, "cache_read", mi->cost_cache_read);
		kdouble(w, "cache_write", mi->cost_cache_write);
	}
	jw_obj_end(w);
}

static void empty(struct jw *w, const char *k)
{
	jw_key(w, k);
	jw_obj(w);
	jw_obj_end(w);
}

/* OpenCode's Model; with v1 set, also the models.dev members the v1 SDK's GET
 * /provider type names (attachment, reasoning, temperature, tool_call, modalities). */
static void model_json(struct jw *w, const struct model_info *mi,
		       const struct provider_info *pi, int v1)
{
	jw_obj(w);
	jw_kstr(w, "id", mi->id);
	jw_kstr(w, "providerID", mi->provider);
	jw_key(w, "api");
	jw_obj(w);
	jw_kstr(w, "id", mi->id);
	jw_kstr(w, "url", pi->base_url);
	jw_kstr(w, "npm", pi->npm);
	jw_obj_end(w);
	jw_kstr(w, "name", mi->name);
	capabilities(w, mi);
	cost(w, mi, v1);
	jw_key(w, "limit");
	jw_obj(w);
	jw_kint(w, "context", mi->context);
	jw_kint(w, "output", mi->output);
	jw_obj_end(w);
	jw_kstr(w, "status", "active");
	empty(w, "options");
	empty(w, "headers");
	jw_kstr(w, "release_date", mi->release_date);
	if (v1)
		catalog_write_flags(w, mi);
	jw_obj_end(w);
}

/* OpenCode's Provider: {id, name, source, env, options, models} (and, with v1, the
 * models.dev members api and npm). */
static void provider_json(struct jw *w, const struct catalog *K,
			  const struct provider_info *pi, int v1)
{
	jw_obj(w);
	jw_kstr(w, "id", pi->id);
	jw_kstr(w, "name", pi->name);
	jw_kstr(w, "source", pi->key_source ? pi->key_source : !strcmp(pi->id, "scripted")
			     ? "custom" : "config");
	jw_key(w, "env");
	jw_arr(w);
	if (*pi->env)
		jw_str(w, pi->env);
	jw_arr_end(w);
	jw_key(w, "options");
	jw_obj(w);
	if (*pi->base_url)
		jw_kstr(w, "baseURL", pi->base_url);
	jw_obj_end(w);
	if (v1) {
		jw_kstr(w, "npm", pi->npm);
		if (*pi->base_url)
			jw_kstr(w, "api", pi->base_url);
	}
	jw_key(w, "models");
	jw_obj(w);
	for (int i = 0; i < catalog_count(K); i++) {
		const struct model_info *mi = catalog_at(K, i);
		if (strcmp(mi->provider, pi->id))
			continue;
		jw_key(w, mi->id);
		model_json(w, mi, pi, v1);
	}
	jw_obj_end(w);
	jw_obj_end(w);
}

/* A provider's default model: the configured default when it is this provider's,
 * else its first in the catalog; NULL when it has none. */
static const char *default_model(const struct catalog *K, const struct config *C,
				 const char *provider)
{
	const struct model_info *d = catalog_lookup(K, C->model);
	if (d && !strcmp(d->provider, provider))
		return d->id;
	for (int i = 0; i < catalog_count(K); i++)
		if (!strcmp(catalog_at(K, i)->provider, provider))
			return catalog_at(K, i)->id;
	return NULL;
}

/* The listed providers (all, or the connected ones) as "key": [Provider...], then
 * "default": {providerID: modelID}. */
static void providers_json(struct engine *E, struct jw *w, const char *key, int all, int v1)
{
	const struct config *C = engine_config(E);
	const struct catalog *K = llm_catalog(engine_llm(E));
	struct provider_info pi;
	jw_key(w, key);
	jw_arr(w);
	for (int i = 0; !provider_info_at(C, i, &pi); i++)
		if (all || pi.connected)
			provider_json(w, K, &pi, v1);
	jw_arr_end(w);
	jw_key(w, "default");
	jw_obj(w);
	for (int i = 0; !provider_info_at(C, i, &pi); i++) {
		const char *m = default_model(K, C, pi.id);
		if ((all || pi.connected) && m)
			jw_kstr(w, pi.id, m);
	}
	jw_obj_end(w);
}

int api_config_providers(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	jw_obj(w);
	providers_json(E, w, "providers", 0, 0);
	jw_obj_end(w);
	return 0;
}

int api_provider_list(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	struct provider_info pi;
	jw_obj(w);
	providers_json(E, w, "all", 1, 1);
	jw_key(w, "connected");
	jw_arr(w);
	for (int i = 0; !provider_info_at(engine_config(E), i, &pi); i++)
		if (pi.connected)
			jw_str(w, pi.id);
	jw_arr_end(w);
	jw_obj_end(w);
	return 0;
}

/* No provider is signed in to through the gateway: keys come from its environment or
 * config, so there is no method, OAuth or other, to offer. */
int api_provider_auth(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	jw_obj(w);
	jw_obj_end(w);
	return 0;
}
