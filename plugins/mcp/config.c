/* config: the "mcp" section, OpenCode's shape, into struct srv_conf (mcp.h). A malformed
 * server is kept with ->error (it shows as failed, naming the key) so one typo does not
 * take the other servers down. Runs on the loop in on_load. */
#include "mcp.h"

#include <stdlib.h>
#include <string.h>

extern char **environ;

static const char *const server_keys[] = {"type", "command", "environment", "url", "headers",
					  "enabled", "timeout", "oauth", NULL};

static int conf_err(struct srv_conf *c, const char *fmt, const char *a)
{
	char buf[300];
	snprintf(buf, sizeof(buf), fmt, a);
	free(c->error);
	c->error = strdup(buf);
	return -1;
}

static int known_keys(struct srv_conf *c, const cJSON *o)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, o) {
		int ok = 0;
		for (const char *const *k = server_keys; *k && !ok; k++)
			ok = !strcmp(*k, it->string);
		if (!ok)
			return conf_err(c, "config: unknown key \"%s\"", it->string);
	}
	return 0;
}

static int strings_of(const cJSON *o, int array)
{
	const cJSON *it;
	if (array ? !cJSON_IsArray(o) : !cJSON_IsObject(o))
		return 0;
	cJSON_ArrayForEach(it, o)
		if (!cJSON_IsString(it))
			return 0;
	return 1;
}

/* "NAME=" prefix of an environment entry matches name? */
static int env_is(const char *entry, const char *name)
{
	size_t n = strlen(name);
	return !strncmp(entry, name, n) && entry[n] == '=';
}

static int env_dropped(const char *entry, char *const *secrets, const cJSON *extra)
{
	const cJSON *it;
	for (; secrets && *secrets; secrets++)
		if (env_is(entry, *secrets))
			return 1;
	cJSON_ArrayForEach(it, extra)
		if (env_is(entry, it->string))
			return 1;
	return 0;
}

/* The child's environment: ours less the secrets, plus "environment". */
static int build_env(struct srv_conf *c, const cJSON *extra, char *const *secrets)
{
	size_t n = 0, k = 0;
	const cJSON *it;
	while (environ && environ[n])
		n++;
	c->envp = calloc(n + (size_t)cJSON_GetArraySize(extra) + 1, sizeof(char *));
	if (!c->envp)
		return conf_err(c, "%sout of memory", "");
	for (size_t i = 0; i < n; i++)
		if (!env_dropped(environ[i], secrets, extra) && !(c->envp[k++] = strdup(environ[i])))
			return conf_err(c, "%sout of memory", "");
	cJSON_ArrayForEach(it, extra) {
		size_t len = strlen(it->string) + strlen(it->valuestring) + 2;
		if (!(c->envp[k] = malloc(len)))
			return conf_err(c, "%sout of memory", "");
		snprintf(c->envp[k++], len, "%s=%s", it->string, it->valuestring);
	}
	return 0;
}

static int parse_local(struct srv_conf *c, const cJSON *o, char *const *secrets)
{
	const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(o, "command");
	const cJSON *env = cJSON_GetObjectItemCaseSensitive(o, "environment"), *it;
	int n = cJSON_GetArraySize(cmd), k = 0;
	if (!strings_of(cmd, 1) || n < 1 || !*cmd->child->valuestring)
		return conf_err(c, "config: \"command\" must be a non-empty array of strings%s", "");
	if (env && !strings_of(env, 0))
		return conf_err(c, "config: \"environment\" must be an object of strings%s", "");
	if (!(c->argv = calloc((size_t)n + 1, sizeof(char *))))
		return conf_err(c, "%sout of memory", "");
	cJSON_ArrayForEach(it, cmd)
		if (!(c->argv[k++] = strdup(it->valuestring)))
			return conf_err(c, "%sout of memory", "");
	return build_env(c, env, secrets);
}

static int parse_remote(struct srv_conf *c, const cJSON *o)
{
	const cJSON *url = cJSON_GetObjectItemCaseSensitive(o, "url");
	const cJSON *hdrs = cJSON_GetObjectItemCaseSensitive(o, "headers"), *it;
	if (!cJSON_IsString(url) || (strncmp(url->valuestring, "http://", 7) &&
				     strncmp(url->valuestring, "https://", 8)))
		return conf_err(c, "config: \"url\" must be an http:// or https:// URL%s", "");
	if (hdrs && !strings_of(hdrs, 0))
		return conf_err(c, "config: \"headers\" must be an object of strings%s", "");
	if (!(c->url = strdup(url->valuestring)))
		return conf_err(c, "%sout of memory", "");
	cJSON_ArrayForEach(it, hdrs) {
		size_t len = strlen(it->string) + strlen(it->valuestring) + 3;
		char *line = malloc(len);
		struct curl_slist *l = NULL;
		if (strpbrk(it->string, ":\r\n") || strpbrk(it->valuestring, "\r\n")) {
			free(line);
			return conf_err(c, "config: header \"%s\" has a colon or line break", it->string);
		}
		if (line) {
			snprintf(line, len, "%s: %s", it->string, it->valuestring);
			l = curl_slist_append(c->headers, line);
			free(line);
		}
		if (!l)
			return conf_err(c, "%sout of memory", "");
		c->headers = l;
	}
	return 0;
}

static int parse_common(struct srv_conf *c, const cJSON *o, int64_t default_timeout_ms)
{
	const cJSON *en = cJSON_GetObjectItemCaseSensitive(o, "enabled");
	const cJSON *to = cJSON_GetObjectItemCaseSensitive(o, "timeout");
	c->enabled = 1;
	c->timeout_ms = default_timeout_ms;
	if (en && !cJSON_IsBool(en))
		return conf_err(c, "config: \"enabled\" must be true or false%s", "");
	c->enabled = !cJSON_IsFalse(en);
	if (to) {
		double d = cJSON_IsNumber(to) ? to->valuedouble : 0;
		if (!(d >= 1 && d <= 86400000) || d != (double)(int64_t)d)
			return conf_err(c, "config: \"timeout\" must be an integer number of "
					"milliseconds from 1 to 86400000%s", "");
		c->timeout_ms = (int64_t)d;
	}
	return 0;
}

static void parse_one(struct srv_conf *c, const cJSON *o, char *const *secrets,
		      int64_t default_timeout_ms)
{
	const cJSON *type;
	if (!cJSON_IsObject(o)) {
		conf_err(c, "config: the server must be an object%s", "");
		return;
	}
	type = cJSON_GetObjectItemCaseSensitive(o, "type");
	c->type = cJSON_IsString(type) && !strcmp(type->valuestring, "remote") ? SRV_REMOTE
										: SRV_LOCAL;
	if (known_keys(c, o) || parse_common(c, o, default_timeout_ms))
		return;
	if (!cJSON_IsString(type) || (strcmp(type->valuestring, "local") &&
				      strcmp(type->valuestring, "remote"))) {
		conf_err(c, "config: \"type\" must be \"local\" or \"remote\"%s", "");
		return;
	}
	if (c->type == SRV_LOCAL)
		parse_local(c, o, secrets);
	else
		parse_remote(c, o);
}

int conf_parse(const char *mcp_json, char *const *secrets, int64_t default_timeout_ms,
	       struct srv_conf **out, int *n, char *why, size_t why_len)
{
	cJSON *root = cJSON_Parse(mcp_json ? mcp_json : "{}");
	const cJSON *it;
	int k = 0;
	*out = NULL;
	*n = 0;
	if (!cJSON_IsObject(root)) {
		snprintf(why, why_len, "\"mcp\" must be an object of servers by name");
		cJSON_Delete(root);
		return -1;
	}
	struct srv_conf *c = calloc((size_t)cJSON_GetArraySize(root) + 1, sizeof(*c));
	if (!c) {
		snprintf(why, why_len, "out of memory");
		cJSON_Delete(root);
		return -1;
	}
	cJSON_ArrayForEach(it, root) {
		c[k].name = strdup(it->string);
		if (!*it->string)
			conf_err(&c[k], "config: a server needs a name%s", "");
		else
			parse_one(&c[k], it, secrets, default_timeout_ms);
		k++;
	}
	cJSON_Delete(root);
	*out = c;
	*n = k;
	return 0;
}

char *conf_merge(const char *setting_json, const cJSON *options_mcp)
{
	cJSON *all = setting_json ? cJSON_Parse(setting_json) : NULL;
	const cJSON *it;
	if (!all || cJSON_IsNull(all)) {
		cJSON_Delete(all);
		all = cJSON_CreateObject();
	}
	if (!cJSON_IsObject(all) || (options_mcp && !cJSON_IsObject(options_mcp))) {
		cJSON_Delete(all);
		return strdup("null"); /* conf_parse refuses it, saying what "mcp" must be */
	}
	cJSON_ArrayForEach(it, options_mcp) {
		cJSON_DeleteItemFromObjectCaseSensitive(all, it->string);
		cJSON_AddItemToObject(all, it->string, cJSON_Duplicate(it, 1));
	}
	char *s = cJSON_PrintUnformatted(all);
	cJSON_Delete(all);
	return s;
}

static void strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

void conf_free(struct srv_conf *c, int n)
{
	for (int i = 0; c && i < n; i++) {
		free(c[i].name);
		strv_free(c[i].argv);
		strv_free(c[i].envp);
		free(c[i].url);
		curl_slist_free_all(c[i].headers);
		free(c[i].error);
	}
	free(c);
}
