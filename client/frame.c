/* frame: what the server sends and what the client sends it, and the resume rule
 * (client_int.h). Pure: cJSON only. */
#include "client_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int64_t int_of(const cJSON *o, const char *k, int64_t dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	/* seqs are integers well inside a double's exact range */
	return cJSON_IsNumber(v) && v->valuedouble >= -1 && v->valuedouble < 9007199254740992.0
		       ? (int64_t)v->valuedouble : dflt;
}

static void read_event(struct agc_frame *f, const cJSON *ev)
{
	struct ag_client_event *e = &f->ev;
	e->size = sizeof(*e);
	e->seq = int_of(ev, "seq", -1);
	e->type = str(ev, "type");
	e->session_id = str(ev, "sessionID");
	e->root_id = str(ev, "rootID");
	e->parent_id = str(ev, "parentID");
	e->parent_tool_call_id = str(ev, "parentToolCallID");
	e->turn_id = str(ev, "turnID");
	e->depth = (int)int_of(ev, "depth", 0);
	char *json = cJSON_PrintUnformatted(ev);
	e->json = json;
	e->len = json ? strlen(json) : 0;
	if (!e->type || !json) /* an event must say what it is */
		f->kind = AGC_OTHER;
}

int agc_frame_parse(struct agc_frame *f, const char *buf, size_t len)
{
	memset(f, 0, sizeof(*f));
	f->kind = AGC_OTHER;
	f->root = cJSON_ParseWithLength(buf, len);
	if (!cJSON_IsObject(f->root))
		return f->root ? 0 : -1;
	const char *method = str(f->root, "method");
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(f->root, "params");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(f->root, "id");
	if (method && !strcmp(method, "event") && cJSON_IsObject(params)) {
		f->kind = AGC_EVENT;
		read_event(f, params);
		return 0;
	}
	if (!cJSON_IsNumber(id))
		return 0; /* our ids are numbers; an error without one answers no call of ours */
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(f->root, "error");
	f->id = (int64_t)id->valuedouble;
	if (cJSON_IsObject(err)) {
		f->kind = AGC_ANSWER;
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
		f->code = cJSON_IsNumber(code) && code->valuedouble > -1e9 && code->valuedouble < 1e9
				  ? code->valueint : -32603;
		f->message = str(err, "message") ? str(err, "message") : "(no message)";
		if (!f->code)
			f->code = -32603;
	} else if (cJSON_HasObjectItem(f->root, "result")) {
		f->kind = AGC_ANSWER;
		f->result = cJSON_GetObjectItemCaseSensitive(f->root, "result");
		f->message = "";
	}
	return 0;
}

void agc_frame_free(struct agc_frame *f)
{
	cJSON_Delete(f->root);
	free((char *)f->ev.json);
	memset(f, 0, sizeof(*f));
}

int agc_gate(int64_t *last, int64_t seq, int resync)
{
	if (resync) {
		if (seq > *last)
			*last = seq;
		return 1;
	}
	if (seq < 0)
		return 1; /* no number (server.shutdown): nothing to order it by */
	if (seq <= *last)
		return 0;
	*last = seq;
	return 1;
}

static int plain_name(const char *m)
{
	if (!m || !*m || strlen(m) > 128)
		return 0;
	for (; *m; m++)
		if (!((*m >= 'a' && *m <= 'z') || (*m >= 'A' && *m <= 'Z') ||
		      (*m >= '0' && *m <= '9') || *m == '.' || *m == '_' || *m == '-'))
			return 0;
	return 1;
}

char *agc_request(int64_t id, const char *method, const char *params_json, size_t pre,
		  size_t *len, char *err, size_t errlen)
{
	if (!plain_name(method)) {
		snprintf(err, errlen, "method \"%.60s\": expected a name such as session.create",
			 method ? method : "(null)");
		return NULL;
	}
	char *params = NULL;
	if (params_json) {
		cJSON *p = cJSON_Parse(params_json);
		if (!cJSON_IsObject(p)) {
			snprintf(err, errlen, "%s: params must be a JSON object (got %.60s)", method,
				 params_json);
			cJSON_Delete(p);
			return NULL;
		}
		params = cJSON_PrintUnformatted(p); /* one line, whatever the caller's layout */
		cJSON_Delete(p);
		if (!params) {
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
	}
	size_t cap = pre + 80 + strlen(method) + (params ? strlen(params) : 0);
	char *buf = malloc(cap);
	if (!buf) {
		free(params);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	int n = snprintf(buf + pre, cap - pre, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"%s\"%s%s}",
			 (long long)id, method, params ? ",\"params\":" : "", params ? params : "");
	free(params);
	*len = (size_t)n;
	return buf;
}

char *agc_subscribe_params(const char *session_id, int descendants, int64_t since)
{
	cJSON *p = cJSON_CreateObject();
	if (session_id)
		cJSON_AddStringToObject(p, "sessionID", session_id);
	cJSON_AddBoolToObject(p, "descendants", descendants != 0);
	if (since >= 0)
		cJSON_AddNumberToObject(p, "since", (double)since);
	char *s = cJSON_PrintUnformatted(p);
	cJSON_Delete(p);
	return s;
}
