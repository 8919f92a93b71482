/* provider_info: what a client is told about each provider, beside its models (the
 * catalog): its display name, the environment variable of its key, its base URL, where
 * its key came from, and whether it can serve requests ("connected"). scripted, the
 * embedded model, is always connected; openai and anthropic once a key is set (the
 * environment, else the config) or a base URL was given (a local server may need no
 * key). Read from the config and the environment (getenv), nothing else: `agentgate
 * models` asks it without a server. Any thread, once the config is loaded. */
#ifndef AG_PROVIDER_INFO_H
#define AG_PROVIDER_INFO_H
#include "config.h"

#define PROVIDER_COUNT 3

struct provider_info {
	const char *id;         /* scripted, openai, anthropic */
	const char *name;       /* for people */
	const char *env;        /* the key's environment variable, "" for scripted */
	const char *npm;        /* OpenCode's name for the wire format's client package */
	const char *base_url;   /* where requests go ("" for scripted) */
	const char *key_source; /* "env", "config", or NULL when there is no key */
	int connected;
};

/* The i-th provider (0 <= i < PROVIDER_COUNT, in the catalog's order): 0, or -1 past
 * the end. Strings are static or the config's. */
int provider_info_at(const struct config *C, int i, struct provider_info *out);
/* The same by id; -1 for an unknown one. */
int provider_info_of(const struct config *C, const char *id, struct provider_info *out);
/* A network provider's API key: its environment variable, else the config's api_key;
 * NULL when neither is set (or empty). */
const char *provider_api_key(const struct config *C, const char *id);
/* A network provider's base URL: the config's (after flags and environment), else the
 * official service's. */
const char *provider_base_url(const struct config *C, const char *id);

#endif
