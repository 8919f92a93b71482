#include "ndjson.h"
#include "jsonin.h"
#include "jw.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

void ndjson_init(struct ndjson *n, FILE *out, const char *root, int json)
{
	memset(n, 0, sizeof(*n));
	n->out = out;
	n->root = root;
	n->json = json;
	n->at_line_start = 1;
}

/* The run line type for a root part update, or NULL when OpenCode prints none. */
static const char *line_type(const cJSON *part)
{
	const char *type = jsonin_get(part, "type");
	const cJSON *time = cJSON_GetObjectItemCaseSensitive(part, "time");
	if (!type)
		return NULL;
	if (!strcmp(type, "step-start"))
		return "step_start";
	if (!strcmp(type, "step-finish"))
		return "step_finish";
	if (!strcmp(type, "text") && cJSON_GetObjectItemCaseSensitive(time, "end"))
		return "text";
	if (!strcmp(type, "reasoning") && cJSON_GetObjectItemCaseSensitive(time, "end"))
		return "reasoning";
	if (!strcmp(type, "tool")) {
		const char *st = jsonin_get(cJSON_GetObjectItemCaseSensitive(part, "state"), "status");
		if (st && (!strcmp(st, "completed") || !strcmp(st, "error")))
			return "tool_use";
	}
	return NULL;
}

static void envelope(struct jw *w, const cJSON *ev)
{
	static const char *keys[] = {"rootID", "parentID", "parentToolCallID", "turnID"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (jsonin_get(ev, keys[i]))
			jw_kstr(w, keys[i], jsonin_get(ev, keys[i]));
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(ev, "depth");
	jw_kint(w, "depth", cJSON_IsNumber(d) ? d->valueint : 0);
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(ev, "seq");
	if (cJSON_IsNumber(seq))
		jw_kint(w, "seq", (int64_t)seq->valuedouble);
}

static void emit(struct ndjson *n, struct jw *w)
{
	jw_obj_end(w);
	if (!w->oom) {
		log_lock(); /* a whole line, never cut by a log record */
		fwrite(w->buf, 1, w->len, n->out);
		fputc('\n', n->out);
		fflush(n->out);
		log_unlock();
	}
	jw_free(w);
}

static void begin(struct jw *w, const char *type, const char *root, int64_t ts)
{
	jw_init(w);
	jw_obj(w);
	jw_kstr(w, "type", type);
	jw_kint(w, "timestamp", ts);
	jw_kstr(w, "sessionID", root);
}

/* One event, read from its JSON: its type, session and the time it is stamped with. */
struct ev {
	const char *type, *session_id;
	int64_t time;
};

static void json_root(struct ndjson *n, const struct ev *e, const cJSON *ev)
{
	const cJSON *props = cJSON_GetObjectItemCaseSensitive(ev, "properties");
	struct jw w;
	if (!strcmp(e->type, "session.error")) {
		n->errors++;
		begin(&w, "error", n->root, e->time);
		char *err = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(props, "error"));
		jw_kraw(&w, "error", err);
		free(err);
		envelope(&w, ev);
		emit(n, &w);
		return;
	}
	if (strcmp(e->type, "message.part.updated"))
		return;
	const cJSON *part = cJSON_GetObjectItemCaseSensitive(props, "part");
	const char *type = line_type(part);
	if (!type)
		return;
	begin(&w, type, n->root, e->time);
	char *p = cJSON_PrintUnformatted(part);
	jw_kraw(&w, "part", p);
	free(p);
	envelope(&w, ev);
	emit(n, &w);
}

static void json_child(struct ndjson *n, const struct ev *e, const cJSON *ev)
{
	const cJSON *props = cJSON_GetObjectItemCaseSensitive(ev, "properties");
	struct jw w;
	if (!strcmp(e->type, "message.part.delta")) {
		begin(&w, "subtask_delta", n->root, e->time);
		jw_kstr(&w, "childSessionID", e->session_id);
		jw_kstr(&w, "messageID", jsonin_get(props, "messageID"));
		jw_kstr(&w, "partID", jsonin_get(props, "partID"));
		jw_kstr(&w, "delta", jsonin_get(props, "delta"));
	} else if (!strcmp(e->type, "message.part.updated")) {
		begin(&w, "subtask_event", n->root, e->time);
		jw_kstr(&w, "childSessionID", e->session_id);
		char *p = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(props, "part"));
		jw_kraw(&w, "part", p);
		free(p);
	} else {
		return;
	}
	envelope(&w, ev);
	emit(n, &w);
}

/* A custom event (engine_emit, e.g. plugin.<id>.<name>) goes out as it is, under its
 * own type: {type, timestamp, sessionID: root, childSessionID?, properties, envelope}. */
static void json_custom(struct ndjson *n, const struct ev *e, const cJSON *ev, int child)
{
	struct jw w;
	begin(&w, e->type, n->root, e->time);
	if (child)
		jw_kstr(&w, "childSessionID", e->session_id);
	char *p = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(ev, "properties"));
	jw_kraw(&w, "properties", p ? p : "{}");
	free(p);
	envelope(&w, ev);
	emit(n, &w);
}

/* Ends the reply's current line, and gets it out before anything goes to stderr. */
static void text_newline(struct ndjson *n)
{
	if (!n->at_line_start)
		fputc('\n', n->out);
	n->at_line_start = 1;
	fflush(n->out);
}

/* The log's line hook: a record is about to go to where the reply goes. */
static void end_line_for_log(void *arg)
{
	text_newline(arg);
}

void ndjson_share_screen(struct ndjson *n, int shared)
{
	log_set_line_hook(shared && !n->json ? end_line_for_log : NULL, n);
}

void ndjson_end(struct ndjson *n)
{
	log_set_line_hook(NULL, NULL);
	if (!n->json)
		text_newline(n);
}

static void text_event_locked(struct ndjson *n, const struct ev *e, const cJSON *ev, int child);

/* Default format: the root's reply streams as text; tools and child steps get a line.
 * Under the log's lock: a log record waits, then ends the line first (end_line_for_log). */
static void text_event(struct ndjson *n, const struct ev *e, const cJSON *ev, int child)
{
	log_lock();
	text_event_locked(n, e, ev, child);
	log_unlock();
}

static void text_event_locked(struct ndjson *n, const struct ev *e, const cJSON *ev, int child)
{
	const cJSON *props = cJSON_GetObjectItemCaseSensitive(ev, "properties");
	const cJSON *depth = cJSON_GetObjectItemCaseSensitive(ev, "depth");
	int indent = cJSON_IsNumber(depth) ? depth->valueint * 2 : 0;
	if (!child && !strcmp(e->type, "message.part.delta")) {
		const char *d = jsonin_get(props, "delta");
		fputs(d ? d : "", n->out);
		n->at_line_start = d && *d ? d[strlen(d) - 1] == '\n' : n->at_line_start;
	} else if (!strcmp(e->type, "message.part.updated")) {
		const cJSON *part = cJSON_GetObjectItemCaseSensitive(props, "part");
		const char *type = line_type(part);
		/* the root shows finished tools; a child shows each finished step item */
		if (!type || (!child && strcmp(type, "tool_use")))
			return;
		const char *who = child ? e->session_id : "";
		text_newline(n);
		if (!strcmp(type, "tool_use"))
			fprintf(n->out, "%*s| %s %s %s\n", indent, "", jsonin_get(part, "tool"),
				jsonin_get(cJSON_GetObjectItemCaseSensitive(part, "state"), "status"), who);
		else if (!strcmp(type, "text"))
			fprintf(n->out, "%*s| %s text: %.160s\n", indent, "", who, jsonin_get(part, "text"));
		else
			fprintf(n->out, "%*s| %s %s\n", indent, "", who, type);
	} else if (!child && !strcmp(e->type, "session.error")) {
		n->errors++;
		const cJSON *err = cJSON_GetObjectItemCaseSensitive(props, "error");
		const char *msg = jsonin_get(cJSON_GetObjectItemCaseSensitive(err, "data"), "message");
		text_newline(n);
		fprintf(stderr, "error: %s\n", msg ? msg : jsonin_get(err, "name"));
	}
	fflush(n->out);
}

void ndjson_feed(struct ndjson *n, const cJSON *ev, int64_t time)
{
	struct ev e = {jsonin_get(ev, "type"), jsonin_get(ev, "sessionID"), time};
	if (!e.type || !e.session_id)
		return;
	int child = strcmp(e.session_id, n->root) != 0;
	if (!n->json)
		text_event(n, &e, ev, child);
	else if (!event_type_reserved(e.type) || !strncmp(e.type, "permission.", 11))
		json_custom(n, &e, ev, child);
	else if (child)
		json_child(n, &e, ev);
	else
		json_root(n, &e, ev);
}

void ndjson_on_event(void *arg, struct event *e)
{
	struct ndjson *n = arg;
	if (!event_matches(e, n->root, 1))
		return;
	cJSON *ev = cJSON_ParseWithLength(e->json, e->len);
	if (ev)
		ndjson_feed(n, ev, e->time);
	cJSON_Delete(ev);
}
