#include "provider_info.h"

#include <stdlib.h>
#include <string.h>

static const struct {
	const char *id, *name, *env, *npm;
} known[PROVIDER_COUNT] = {
	{"scripted", "Scripted (embedded, no network)", "", "agentgate:scripted"},
	{"openai", "OpenAI-compatible", "OPENAI_API_KEY", "@ai-sdk/openai-compatible"},
	{"anthropic", "Anthropic", "ANTHROPIC_API_KEY", "@ai-sdk/anthropic"},
};

static int index_of(const char *id)
{
	for (int i = 0; id && i < PROVIDER_COUNT; i++)
		if (!strcmp(known[i].id, id))
			return i;
	return -1;
}

static const char *config_key(const struct config *C, const char *id)
{
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(config_provider(C, id), "api_key");
	return cJSON_IsString(k) && *k->valuestring ? k->valuestring : NULL;
}

const char *provider_api_key(const struct config *C, const char *id)
{
	int i = index_of(id);
	if (i <= 0)
		return NULL;
	const char *env = getenv(known[i].env);
	return env && *env ? env : config_key(C, id);
}

const char *provider_base_url(const struct config *C, const char *id)
{
	if (!strcmp(id, "openai"))
		return C->openai_base_url ? C->openai_base_url : "https://api.openai.com/v1";
	if (!strcmp(id, "anthropic"))
		return C->anthropic_base_url ? C->anthropic_base_url : "https://api.anthropic.com";
	return "";
}

int provider_info_at(const struct config *C, int i, struct provider_info *out)
{
	if (i < 0 || i >= PROVIDER_COUNT)
		return -1;
	memset(out, 0, sizeof(*out));
	out->id = known[i].id;
	out->name = known[i].name;
	out->env = known[i].env;
	out->npm = known[i].npm;
	out->base_url = provider_base_url(C, out->id);
	if (i == 0) {
		out->connected = 1;
		return 0;
	}
	const char *env = getenv(known[i].env);
	out->key_source = env && *env ? "env" : config_key(C, out->id) ? "config" : NULL;
	const char *set_url = i == 1 ? C->openai_base_url : C->anthropic_base_url;
	out->connected = out->key_source || set_url;
	return 0;
}

int provider_info_of(const struct config *C, const char *id, struct provider_info *out)
{
	return provider_info_at(C, index_of(id), out);
}
