#include "catalog.h"

#include <stdlib.h>
#include <string.h>

struct catalog {
	struct model_info *m;
	int n, cap;
};

static const char *const providers[] = {"scripted", "openai", "anthropic"};

static void info_free(struct model_info *mi)
{
	free(mi->provider);
	free(mi->id);
	free(mi->name);
	free(mi->release_date);
}

void catalog_free(struct catalog *K)
{
	if (!K)
		return;
	for (int i = 0; i < K->n; i++)
		info_free(&K->m[i]);
	free(K->m);
	free(K);
}

int catalog_count(const struct catalog *K)
{
	return K ? K->n : 0;
}

const struct model_info *catalog_at(const struct catalog *K, int i)
{
	return K && i >= 0 && i < K->n ? &K->m[i] : NULL;
}

const struct model_info *catalog_find(const struct catalog *K, const char *provider,
				      const char *model)
{
	for (int i = 0; K && provider && model && i < K->n; i++)
		if (!strcmp(K->m[i].provider, provider) && !strcmp(K->m[i].id, model))
			return &K->m[i];
	return NULL;
}

const struct model_info *catalog_lookup(const struct catalog *K, const char *id)
{
	const char *slash = id ? strchr(id, '/') : NULL;
	if (!slash || slash == id || !slash[1] || slash - id >= 64)
		return NULL;
	char prov[64];
	memcpy(prov, id, (size_t)(slash - id));
	prov[slash - id] = 0;
	return catalog_find(K, prov, slash + 1);
}

/* A new entry provider/id with everything unknown, or NULL (out of memory). */
static struct model_info *add(struct catalog *K, const char *provider, const char *id)
{
	if (K->n == K->cap) {
		int cap = K->cap ? K->cap * 2 : 8;
		struct model_info *m = realloc(K->m, (size_t)cap * sizeof(*m));
		if (!m)
			return NULL;
		K->m = m;
		K->cap = cap;
	}
	struct model_info *mi = &K->m[K->n];
	memset(mi, 0, sizeof(*mi));
	mi->provider = strdup(provider);
	mi->id = strdup(id);
	mi->name = strdup(id);
	mi->release_date = strdup("");
	if (!mi->provider || !mi->id || !mi->name || !mi->release_date) {
		info_free(mi);
		return NULL;
	}
	mi->tool_call = mi->temperature = 1;
	K->n++;
	return mi;
}

static int set_str(char **dst, const cJSON *v)
{
	char *s = strdup(v->valuestring);
	if (!s)
		return -1;
	free(*dst);
	*dst = s;
	return 0;
}

/* A number >= 0 at obj.key into *out (left alone when absent). */
static int num(const cJSON *obj, const char *key, double *out, const char *path,
	       struct err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!v)
		return 0;
	if (!cJSON_IsNumber(v) || v->valuedouble < 0) {
		err_set(e, ERR_INVALID, "config %s.%s must be a number >= 0", path, key);
		return -1;
	}
	*out = v->valuedouble;
	return 0;
}

static int flag(const cJSON *obj, const char *key, int *out, const char *path, struct err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!v)
		return 0;
	if (!cJSON_IsBool(v)) {
		err_set(e, ERR_INVALID, "config %s.%s must be true or false", path, key);
		return -1;
	}
	*out = cJSON_IsTrue(v);
	return 0;
}

static int modalities(const cJSON *mod, struct model_info *mi, const char *path, struct err *e)
{
	const cJSON *in = cJSON_GetObjectItemCaseSensitive(mod, "input"), *it;
	if (!in)
		return 0;
	if (!cJSON_IsArray(in)) {
		err_set(e, ERR_INVALID, "config %s.modalities.input must be an array of strings",
			path);
		return -1;
	}
	cJSON_ArrayForEach(it, in) {
		const char *s = cJSON_IsString(it) ? it->valuestring : "";
		int *f = !strcmp(s, "image") ? &mi->input_image : !strcmp(s, "pdf") ? &mi->input_pdf
			 : !strcmp(s, "audio") ? &mi->input_audio
			 : !strcmp(s, "video") ? &mi->input_video : NULL;
		if (f)
			*f = 1;
		else if (strcmp(s, "text")) {
			err_set(e, ERR_INVALID, "config %s.modalities.input: unknown modality \"%s\" "
				"(text, image, pdf, audio, video)", path, s);
			return -1;
		}
	}
	mi->attachment |= mi->input_image | mi->input_pdf | mi->input_audio | mi->input_video;
	return 0;
}

static int limits_costs(const cJSON *m, struct model_info *mi, const char *path, struct err *e)
{
	char sub[200];
	double ctx = 0, out = 0;
	const cJSON *lim = cJSON_GetObjectItemCaseSensitive(m, "limit");
	const cJSON *cost = cJSON_GetObjectItemCaseSensitive(m, "cost");
	snprintf(sub, sizeof(sub), "%.150s.limit", path);
	if (num(lim, "context", &ctx, sub, e) || num(lim, "output", &out, sub, e))
		return -1;
	mi->context = (int64_t)ctx;
	mi->output = (int64_t)out;
	snprintf(sub, sizeof(sub), "%.150s.cost", path);
	return num(cost, "input", &mi->cost_input, sub, e) ||
	       num(cost, "output", &mi->cost_output, sub, e) ||
	       num(cost, "cache_read", &mi->cost_cache_read, sub, e) ||
	       num(cost, "cache_write", &mi->cost_cache_write, sub, e) ? -1 : 0;
}

/* One {ID: MODEL} member of providers.P.models. */
static int load_entry(struct model_info *mi, const cJSON *m, const char *path, struct err *e)
{
	if (!cJSON_IsObject(m)) {
		err_set(e, ERR_INVALID, "config %s must be an object", path);
		return -1;
	}
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(m, "name");
	const cJSON *date = cJSON_GetObjectItemCaseSensitive(m, "release_date");
	if ((name && !cJSON_IsString(name)) || (date && !cJSON_IsString(date))) {
		err_set(e, ERR_INVALID, "config %s.%s must be a string", path,
			name && !cJSON_IsString(name) ? "name" : "release_date");
		return -1;
	}
	if ((name && set_str(&mi->name, name)) || (date && set_str(&mi->release_date, date))) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return -1;
	}
	return flag(m, "attachment", &mi->attachment, path, e) ||
	       flag(m, "reasoning", &mi->reasoning, path, e) ||
	       flag(m, "tool_call", &mi->tool_call, path, e) ||
	       flag(m, "temperature", &mi->temperature, path, e) ||
	       modalities(cJSON_GetObjectItemCaseSensitive(m, "modalities"), mi, path, e) ||
	       limits_costs(m, mi, path, e) ? -1 : 0;
}

static int oom(struct err *e)
{
	err_set(e, ERR_INTERNAL, "out of memory");
	return -1;
}

static int load_provider(struct catalog *K, const struct config *C, const char *prov,
			 struct err *e)
{
	const cJSON *models = cJSON_GetObjectItemCaseSensitive(config_provider(C, prov), "models");
	const cJSON *it;
	char path[160];
	if (models && !cJSON_IsArray(models) && !cJSON_IsObject(models)) {
		err_set(e, ERR_INVALID, "config providers.%s.models must be an array of model ids "
			"or an object {id: model}", prov);
		return -1;
	}
	cJSON_ArrayForEach(it, models) {
		const char *id = cJSON_IsArray(models) ? it->valuestring : it->string;
		if (!id || !*id || strchr(id, '/') == id) {
			err_set(e, ERR_INVALID, "config providers.%s.models: a model id must be a "
				"non-empty string", prov);
			return -1;
		}
		if (catalog_find(K, prov, id)) {
			err_set(e, ERR_INVALID, "config providers.%s.models lists \"%s\" twice",
				prov, id);
			return -1;
		}
		struct model_info *mi = add(K, prov, id);
		if (!mi)
			return oom(e);
		mi->configured = 1;
		snprintf(path, sizeof(path), "providers.%s.models.%.100s", prov, id);
		if (cJSON_IsObject(models) && load_entry(mi, it, path, e))
			return -1;
	}
	return 0;
}

/* The embedded model, unless the config describes it: it takes images and PDFs (it
 * describes what it was given). */
static int builtin(struct catalog *K)
{
	struct model_info *mi = add(K, "scripted", "demo");
	if (!mi)
		return -1;
	free(mi->name);
	mi->name = strdup("Scripted demo (embedded, no network)");
	mi->context = 200000;
	mi->output = 32000;
	mi->attachment = mi->reasoning = mi->configured = 1;
	mi->input_image = mi->input_pdf = 1;
	return mi->name ? 0 : -1;
}

/* A model named by the default or an agent, not listed: known by name only. */
static int named(struct catalog *K, const char *id)
{
	const char *slash = id ? strchr(id, '/') : NULL;
	if (!slash || slash == id || !slash[1] || slash - id >= 64 || catalog_lookup(K, id))
		return 0;
	char prov[64];
	memcpy(prov, id, (size_t)(slash - id));
	prov[slash - id] = 0;
	return add(K, prov, slash + 1) ? 0 : -1;
}

static int load_named(struct catalog *K, const struct config *C)
{
	const cJSON *agents = cJSON_GetObjectItemCaseSensitive(C->root, "agent"), *a;
	if (named(K, C->model))
		return -1;
	cJSON_ArrayForEach(a, agents) {
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(a, "model");
		if (cJSON_IsString(m) && named(K, m->valuestring))
			return -1;
	}
	return 0;
}

struct catalog *catalog_load(const struct config *C, struct err *e)
{
	struct catalog *K = calloc(1, sizeof(*K));
	if (!K) {
		oom(e);
		return NULL;
	}
	for (size_t i = 0; i < sizeof(providers) / sizeof(providers[0]); i++)
		if (load_provider(K, C, providers[i], e)) {
			catalog_free(K);
			return NULL;
		}
	if ((!catalog_find(K, "scripted", "demo") && builtin(K)) || load_named(K, C)) {
		catalog_free(K);
		oom(e);
		return NULL;
	}
	return K;
}
