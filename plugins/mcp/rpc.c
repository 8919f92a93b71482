/* rpc: MCP's JSON-RPC messages and framing (rpc.h). */
#include "rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const versions[] = {RPC_PROTOCOL, "2025-03-26", "2024-11-05", NULL};

/* ---- building ---- */

static char *print_take(cJSON *o)
{
	char *s = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	return s;
}

static cJSON *envelope(void)
{
	cJSON *o = cJSON_CreateObject();
	if (o)
		cJSON_AddStringToObject(o, "jsonrpc", "2.0");
	return o;
}

/* A request (id >= 0) or a notification (id < 0); params is taken. */
static char *message(int64_t id, const char *method, cJSON *params)
{
	cJSON *o = envelope();
	if (!o) {
		cJSON_Delete(params);
		return NULL;
	}
	if (id >= 0)
		cJSON_AddNumberToObject(o, "id", (double)id);
	cJSON_AddStringToObject(o, "method", method);
	if (params)
		cJSON_AddItemToObject(o, "params", params);
	return print_take(o);
}

char *rpc_request(int64_t id, const char *method, cJSON *params)
{
	return message(id < 0 ? 0 : id, method, params);
}

char *rpc_notification(const char *method, cJSON *params)
{
	return message(-1, method, params);
}

char *rpc_result(const cJSON *id, cJSON *result)
{
	cJSON *o = envelope();
	if (!o) {
		cJSON_Delete(result);
		return NULL;
	}
	cJSON_AddItemToObject(o, "id", id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull());
	cJSON_AddItemToObject(o, "result", result ? result : cJSON_CreateObject());
	return print_take(o);
}

char *rpc_error(const cJSON *id, int code, const char *message)
{
	cJSON *o = envelope(), *e = cJSON_CreateObject();
	if (!o || !e) {
		cJSON_Delete(o);
		cJSON_Delete(e);
		return NULL;
	}
	cJSON_AddItemToObject(o, "id", id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull());
	cJSON_AddNumberToObject(e, "code", code);
	cJSON_AddStringToObject(e, "message", message);
	cJSON_AddItemToObject(o, "error", e);
	return print_take(o);
}

cJSON *rpc_initialize_params(const char *client_version)
{
	cJSON *p = cJSON_CreateObject(), *info = cJSON_CreateObject();
	if (!p || !info) {
		cJSON_Delete(p);
		cJSON_Delete(info);
		return NULL;
	}
	cJSON_AddStringToObject(p, "protocolVersion", RPC_PROTOCOL);
	cJSON_AddItemToObject(p, "capabilities", cJSON_CreateObject());
	cJSON_AddStringToObject(info, "name", "agentgate");
	cJSON_AddStringToObject(info, "version", client_version ? client_version : "0");
	cJSON_AddItemToObject(p, "clientInfo", info);
	return p;
}

cJSON *rpc_list_params(const char *cursor)
{
	cJSON *p = cJSON_CreateObject();
	if (p && cursor)
		cJSON_AddStringToObject(p, "cursor", cursor);
	return p;
}

cJSON *rpc_call_params(const char *tool, const char *args_json, int64_t progress)
{
	cJSON *p = cJSON_CreateObject();
	cJSON *args = args_json ? cJSON_Parse(args_json) : NULL;
	if (!cJSON_IsObject(args)) {
		cJSON_Delete(args);
		args = cJSON_CreateObject();
	}
	if (!p) {
		cJSON_Delete(args);
		return NULL;
	}
	cJSON_AddStringToObject(p, "name", tool);
	cJSON_AddItemToObject(p, "arguments", args);
	if (progress >= 0) {
		cJSON *meta = cJSON_AddObjectToObject(p, "_meta");
		if (meta)
			cJSON_AddNumberToObject(meta, "progressToken", (double)progress);
	}
	return p;
}

cJSON *rpc_cancel_params(int64_t id, const char *reason)
{
	cJSON *p = cJSON_CreateObject();
	if (p) {
		cJSON_AddNumberToObject(p, "requestId", (double)id);
		if (reason)
			cJSON_AddStringToObject(p, "reason", reason);
	}
	return p;
}

int rpc_version_ok(const char *v)
{
	for (const char *const *k = versions; v && *k; k++)
		if (!strcmp(*k, v))
			return 1;
	return 0;
}

/* ---- reading ---- */

/* A numeric id that is an exact integer (ours are), else -1. */
static int64_t id_of(const cJSON *id)
{
	if (!cJSON_IsNumber(id))
		return -1;
	double d = id->valuedouble;
	if (!(d >= 0 && d < 9007199254740992.0) || d != (double)(int64_t)d)
		return -1;
	return (int64_t)d;
}

enum rpc_kind rpc_read(const cJSON *msg, struct rpc_msg *out)
{
	memset(out, 0, sizeof(*out));
	out->id = -1;
	if (!cJSON_IsObject(msg))
		return RPC_INVALID;
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
	const cJSON *method = cJSON_GetObjectItemCaseSensitive(msg, "method");
	out->params = cJSON_GetObjectItemCaseSensitive(msg, "params");
	out->result = cJSON_GetObjectItemCaseSensitive(msg, "result");
	out->error = cJSON_GetObjectItemCaseSensitive(msg, "error");
	if (cJSON_IsString(method)) {
		out->method = method->valuestring;
		out->id_json = id;
		return out->kind = id && !cJSON_IsNull(id) ? RPC_REQUEST : RPC_NOTIFICATION;
	}
	if (id && (out->result || cJSON_IsObject(out->error))) {
		out->id_json = id;
		out->id = id_of(id);
		return out->kind = RPC_RESPONSE;
	}
	return RPC_INVALID;
}

void rpc_error_text(const cJSON *error, char *buf, size_t n)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(error, "message");
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(error, "code");
	snprintf(buf, n, "%s (code %d)", cJSON_IsString(m) ? m->valuestring : "no message",
		 cJSON_IsNumber(c) ? c->valueint : 0);
}

/* ---- framing ---- */

int buf_reserve(char **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap : 256;
	while (c < need)
		c *= 2;
	char *p = realloc(*buf, c);
	if (!p)
		return -1;
	*buf = p;
	*cap = c;
	return 0;
}

static void emit_line(struct linebuf *b, line_fn fn, void *user)
{
	if (b->len && b->buf[b->len - 1] == '\r')
		b->len--;
	b->buf[b->len] = '\0';
	fn(user, b->buf, b->len);
	b->len = 0;
}

int linebuf_feed(struct linebuf *b, const char *data, size_t n, line_fn fn, void *user)
{
	while (n) {
		const char *nl = memchr(data, '\n', n);
		size_t take = nl ? (size_t)(nl - data) : n;
		if (!b->skipping && b->len + take > b->max) {
			b->skipping = 1; /* the rest of this line goes nowhere */
			b->dropped++;
			b->len = 0;
		}
		if (!b->skipping) {
			if (buf_reserve(&b->buf, &b->cap, b->len + take + 1))
				return -1;
			memcpy(b->buf + b->len, data, take);
			b->len += take;
		}
		if (!nl)
			break;
		if (b->skipping)
			b->skipping = 0;
		else
			emit_line(b, fn, user);
		data = nl + 1;
		n -= take + 1;
	}
	return 0;
}

void linebuf_flush(struct linebuf *b, line_fn fn, void *user)
{
	if (b->len && !b->skipping)
		emit_line(b, fn, user);
	b->len = 0;
	b->skipping = 0;
}

void linebuf_free(struct linebuf *b)
{
	free(b->buf);
	memset(b, 0, sizeof(*b));
}

static void sse_dispatch(struct sse *s)
{
	if (s->len && !s->other_type) {
		s->data[--s->len] = '\0'; /* the last data line's \n */
		s->on_event(s->user, s->data, s->len);
	}
	s->len = 0;
	s->other_type = 0;
}

static void sse_line(void *user, char *line, size_t len)
{
	struct sse *s = user;
	if (!len) {
		sse_dispatch(s);
		return;
	}
	char *colon = memchr(line, ':', len);
	if (colon == line)
		return; /* a comment */
	const char *value = colon ? colon + 1 : line + len;
	if (colon)
		*colon = '\0';
	if (*value == ' ')
		value++;
	if (!strcmp(line, "event")) {
		s->other_type = *value && strcmp(value, "message");
	} else if (!strcmp(line, "data")) {
		size_t vl = strlen(value);
		if (s->len + vl + 2 > s->lines.max ||
		    buf_reserve(&s->data, &s->cap, s->len + vl + 2))
			return; /* an oversized event arrives truncated and fails to parse */
		memcpy(s->data + s->len, value, vl);
		s->len += vl;
		s->data[s->len++] = '\n';
		s->data[s->len] = '\0';
	}
}

void sse_init(struct sse *s, size_t max, void (*on_event)(void *, const char *, size_t),
	      void *user)
{
	memset(s, 0, sizeof(*s));
	s->lines.max = max;
	s->on_event = on_event;
	s->user = user;
}

int sse_feed(struct sse *s, const char *data, size_t n)
{
	return linebuf_feed(&s->lines, data, n, sse_line, s);
}

void sse_free(struct sse *s)
{
	linebuf_free(&s->lines);
	free(s->data);
	s->data = NULL;
	s->len = s->cap = 0;
}
