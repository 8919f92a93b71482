/* tools: MCP tools as agentgate tools (tools.h). */
#include "tools.h"
#include "rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char empty_schema[] = "{\"type\":\"object\",\"properties\":{}}";

void tools_sanitize(const char *in, char *out, size_t n)
{
	size_t i = 0;
	if (!n)
		return;
	for (; in[i] && i + 1 < n; i++) {
		char c = in[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 (c >= '0' && c <= '9') || c == '_' || c == '-';
		out[i] = ok ? c : '_';
	}
	out[i] = '\0';
}

int tools_name(const char *server, const char *tool, char *out, size_t n)
{
	char s[TOOL_NAME_MAX + 2], t[TOOL_NAME_MAX + 2];
	if (strlen(server) + 1 + strlen(tool) > TOOL_NAME_MAX || n <= TOOL_NAME_MAX)
		return -1;
	tools_sanitize(server, s, sizeof(s));
	tools_sanitize(tool, t, sizeof(t));
	snprintf(out, n, "%s_%s", s, t);
	return 0;
}

void tools_clear(struct tooldef *t)
{
	free(t->name);
	free(t->orig);
	free(t->description);
	free(t->schema);
	memset(t, 0, sizeof(*t));
}

void tools_free(struct tooldef *t, int n)
{
	for (int i = 0; t && i < n; i++)
		tools_clear(&t[i]);
	free(t);
}

int tools_copy(struct tooldef *dst, const struct tooldef *src)
{
	dst->name = strdup(src->name);
	dst->orig = strdup(src->orig);
	dst->description = strdup(src->description);
	dst->schema = strdup(src->schema);
	return dst->name && dst->orig && dst->description && dst->schema ? 0 : -1;
}

int tools_same(const struct tooldef *a, const struct tooldef *b)
{
	return !strcmp(a->name, b->name) && !strcmp(a->orig, b->orig) &&
	       !strcmp(a->description, b->description) && !strcmp(a->schema, b->schema);
}

static void note(char *buf, size_t n, const char *fmt, const char *a)
{
	size_t used = buf ? strlen(buf) : 0;
	if (buf && used + 1 < n)
		snprintf(buf + used, n - used, fmt, a);
}

/* One entry of tools/list into d; 0, 1 to skip it (noted), -1 out of memory. */
static int one_tool(const char *server, const cJSON *t, struct tooldef *d, char *skipped,
		    size_t skipped_len)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(t, "name");
	const cJSON *desc = cJSON_GetObjectItemCaseSensitive(t, "description");
	const cJSON *schema = cJSON_GetObjectItemCaseSensitive(t, "inputSchema");
	char full[TOOL_NAME_MAX + 1], fallback[TOOL_NAME_MAX + 80];
	if (!cJSON_IsString(name) || !*name->valuestring) {
		note(skipped, skipped_len, "%sa tool without a name; ", "");
		return 1;
	}
	if (tools_name(server, name->valuestring, full, sizeof(full))) {
		note(skipped, skipped_len, "%s: its name is longer than 64 characters with the "
		     "server's; ", name->valuestring);
		return 1;
	}
	snprintf(fallback, sizeof(fallback), "The tool %s of the MCP server %s.", name->valuestring,
		 server);
	memset(d, 0, sizeof(*d));
	d->name = strdup(full);
	d->orig = strdup(name->valuestring);
	d->description = strdup(cJSON_IsString(desc) && *desc->valuestring ? desc->valuestring
									   : fallback);
	d->schema = cJSON_IsObject(schema) ? cJSON_PrintUnformatted(schema) : strdup(empty_schema);
	return d->name && d->orig && d->description && d->schema ? 0 : -1;
}

static int name_taken(const struct tooldef *t, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(t[i].name, name))
			return 1;
	return 0;
}

int tools_from_list(const char *server, const cJSON *tools, struct tooldef **out, int *n,
		    char *skipped, size_t skipped_len)
{
	int cap = cJSON_GetArraySize(tools), k = 0;
	struct tooldef *t = calloc((size_t)cap + 1, sizeof(*t));
	const cJSON *it;
	if (!t)
		return -1;
	cJSON_ArrayForEach(it, tools) {
		int rc = one_tool(server, it, &t[k], skipped, skipped_len);
		if (rc < 0) {
			tools_free(t, k + 1);
			return -1;
		}
		if (rc == 0 && name_taken(t, k, t[k].name)) {
			note(skipped, skipped_len, "%s: another tool has the same name once "
			     "sanitised; ", t[k].orig);
			tools_clear(&t[k]);
			continue;
		}
		k += rc == 0;
	}
	*out = t;
	*n = k;
	return 0;
}

/* ---- flattening ---- */

struct text {
	char *s;
	size_t len, cap;
	int oom;
};

static void put(struct text *b, const char *s, size_t n)
{
	if (b->oom || (b->oom = buf_reserve(&b->s, &b->cap, b->len + n + 1) != 0))
		return;
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

/* A new block: blocks are separated by one newline. */
static void block(struct text *b, const char *s)
{
	if (b->len)
		put(b, "\n", 1);
	put(b, s, strlen(s));
}

static const char *str(const cJSON *o, const char *key, const char *def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : def;
}

/* Decoded size of base64 text. */
static size_t b64_bytes(const char *s)
{
	size_t n = strlen(s), pad = 0;
	while (n > pad && s[n - 1 - pad] == '=')
		pad++;
	return n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) - (n % 4 ? 0 : pad);
}

static void describe_media(struct text *b, const cJSON *c, const char *kind)
{
	char line[512];
	snprintf(line, sizeof(line), "[%s: %s, %zu bytes, not shown]", kind,
		 str(c, "mimeType", "unknown type"), b64_bytes(str(c, "data", "")));
	block(b, line);
}

static void describe_link(struct text *b, const cJSON *c)
{
	char line[2048];
	const char *desc = str(c, "description", NULL), *mime = str(c, "mimeType", NULL);
	snprintf(line, sizeof(line), "[resource link: %s <%s>%s%s%s%s%s]", str(c, "name", "?"),
		 str(c, "uri", "?"), mime ? " (" : "", mime ? mime : "", mime ? ")" : "",
		 desc ? ": " : "", desc ? desc : "");
	block(b, line);
}

static void embedded(struct text *b, const cJSON *c)
{
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(c, "resource");
	const char *text = str(r, "text", NULL);
	char line[1024];
	if (text) {
		block(b, text);
		return;
	}
	snprintf(line, sizeof(line), "[resource %s: %s, %zu bytes, not shown]", str(r, "uri", "?"),
		 str(r, "mimeType", "binary"), b64_bytes(str(r, "blob", "")));
	block(b, line);
}

static void content_item(struct text *b, const cJSON *c)
{
	const char *type = str(c, "type", "");
	char line[128];
	if (!strcmp(type, "text"))
		block(b, str(c, "text", ""));
	else if (!strcmp(type, "image") || !strcmp(type, "audio"))
		describe_media(b, c, type);
	else if (!strcmp(type, "resource"))
		embedded(b, c);
	else if (!strcmp(type, "resource_link"))
		describe_link(b, c);
	else {
		snprintf(line, sizeof(line), "[%.64s content, not shown]", *type ? type : "untyped");
		block(b, line);
	}
}

int tools_flatten(const cJSON *result, char **out)
{
	struct text b = {0};
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(result, "content"), *it;
	const cJSON *structured = cJSON_GetObjectItemCaseSensitive(result, "structuredContent");
	cJSON_ArrayForEach(it, content)
		content_item(&b, it);
	if (!b.len && structured) {
		char *s = cJSON_PrintUnformatted(structured);
		if (s)
			block(&b, s);
		free(s);
	}
	put(&b, "", 0);
	if (b.oom) {
		free(b.s);
		return -1;
	}
	*out = b.s;
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "isError"));
}
