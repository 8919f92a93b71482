/* msg: messages and parts in memory while their turn runs, their OpenCode JSON shapes,
 * their store rows and their events. Streamed text is appended in memory, announced as
 * message.part.delta, and written to the store by the flush hook (within one commit
 * interval) rather than once per token. */
#include "engine_int.h"
#include "jsonin.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

static const char *part_type_name(enum part_type t)
{
	static const char *n[] = {"text",	 "reasoning",  "tool",  "step-start",
				  "step-finish", "compaction", "file",  "agent",
				  "subtask"};
	return n[t];
}

static const char *tool_state_name(enum tool_state s)
{
	static const char *n[] = {"pending", "running", "completed", "error"};
	return n[s];
}

struct msg *msg_new(struct engine *E, struct session *s, struct turn *t, int assistant)
{
	struct msg *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	id_new(m->id, "msg");
	m->s = s;
	m->t = t;
	m->assistant = assistant;
	m->created = now_ms();
	if (t) {
		snprintf(m->parent_id, sizeof(m->parent_id), "%s", t->user_msg);
		/* a compaction turn's replies are its summary (OpenCode's shape) */
		m->summary = assistant && t->compact;
		m->agent = strdup(m->summary ? "compaction" : t->agent);
		const char *slash = strchr(t->model, '/');
		m->provider = strndup(t->model, (size_t)(slash - t->model));
		m->model = strdup(slash + 1);
	}
	return m;
}

static void part_free(struct part *p)
{
	free(p->text);
	jw_free(&p->esc);
	free(p->call_id);
	free(p->tool);
	free(p->input);
	free(p->output);
	free(p->error);
	free(p->title);
	free(p->meta);
	free(p->reason);
	cJSON_Delete(p->extra);
	free(p);
}

/* Parts leave the dirty list before they are freed: the flush hook must not see them. */
static void undirty(struct part *p)
{
	*p->dprev = p->dnext;
	if (p->dnext)
		p->dnext->dprev = p->dprev;
	p->dirty = 0;
}

void msg_free(struct engine *E, struct msg *m)
{
	if (!m)
		return;
	for (struct part *p = m->parts, *n; p; p = n) {
		n = p->next;
		if (p->dirty)
			undirty(p);
		part_free(p);
	}
	free(m->agent);
	free(m->provider);
	free(m->model);
	free(m->finish);
	free(m->error_json);
	free(m->system);
	free(m->tools);
	free(m->source);
	free(m);
}

struct part *part_add(struct engine *E, struct msg *m, enum part_type type)
{
	struct part *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	id_new(p->id, "prt");
	p->m = m;
	p->type = type;
	p->start = now_ms();
	if (m->tail)
		m->tail->next = p;
	else
		m->parts = p;
	m->tail = p;
	return p;
}

static void write_tokens(struct jw *w, const struct llm_usage *u)
{
	jw_key(w, "tokens");
	jw_obj(w);
	jw_kint(w, "input", u->input);
	jw_kint(w, "output", u->output);
	jw_kint(w, "reasoning", u->reasoning);
	jw_key(w, "cache");
	jw_obj(w);
	jw_kint(w, "read", u->cache_read);
	jw_kint(w, "write", u->cache_write);
	jw_obj_end(w);
	jw_obj_end(w);
}

static void write_model(const struct msg *m, struct jw *w)
{
	jw_key(w, "model");
	jw_obj(w);
	jw_kstr(w, "providerID", m->provider);
	jw_kstr(w, "modelID", m->model);
	jw_obj_end(w);
}

void msg_write_info(const struct msg *m, struct jw *w)
{
	jw_obj(w);
	jw_kstr(w, "id", m->id);
	jw_kstr(w, "sessionID", m->s->id);
	jw_kstr(w, "role", m->assistant ? "assistant" : "user");
	jw_key(w, "time");
	jw_obj(w);
	jw_kint(w, "created", m->created);
	if (m->completed)
		jw_kint(w, "completed", m->completed);
	jw_obj_end(w);
	if (m->t)
		jw_kstr(w, "turnID", m->t->id);
	jw_kstr(w, "agent", m->agent);
	if (!m->assistant) {
		/* who sent it (http, ws, cli, task, plugin:<id>): the web UI shows a queued
		 * prompt's sender */
		if (m->t || m->source)
			jw_kstr(w, "source", m->t ? m->t->source : m->source);
		write_model(m, w);
		if (m->system)
			jw_kstr(w, "system", m->system);
		if (m->tools)
			jw_kraw(w, "tools", m->tools);
		jw_obj_end(w);
		return;
	}
	jw_kstr(w, "parentID", m->parent_id);
	jw_kstr(w, "providerID", m->provider);
	jw_kstr(w, "modelID", m->model);
	jw_kstr(w, "mode", m->agent);
	jw_key(w, "path");
	jw_obj(w);
	jw_kstr(w, "cwd", m->s->directory);
	jw_kstr(w, "root", m->s->directory);
	jw_obj_end(w);
	if (m->summary)
		jw_kbool(w, "summary", 1);
	jw_kint(w, "cost", 0);
	write_tokens(w, &m->tokens);
	if (m->finish)
		jw_kstr(w, "finish", m->finish);
	if (m->error_json)
		jw_kraw(w, "error", m->error_json);
	jw_obj_end(w);
}

static void write_tool_state(const struct part *p, struct jw *w)
{
	jw_key(w, "state");
	jw_obj(w);
	jw_kstr(w, "status", tool_state_name(p->ts));
	jw_kraw(w, "input", p->input ? p->input : "{}");
	if (p->ts == TS_PENDING)
		jw_kstr(w, "raw", p->input ? p->input : "");
	if (p->title || p->ts == TS_COMPLETED)
		jw_kstr(w, "title", p->title ? p->title : "");
	if (p->meta || p->ts == TS_COMPLETED)
		jw_kraw(w, "metadata", p->meta ? p->meta : "{}");
	if (p->ts == TS_COMPLETED)
		jw_kstr(w, "output", p->output ? p->output : "");
	if (p->ts == TS_ERROR)
		jw_kstr(w, "error", p->error ? p->error : "error");
	if (p->ts != TS_PENDING) {
		jw_key(w, "time");
		jw_obj(w);
		jw_kint(w, "start", p->start);
		if (p->end)
			jw_kint(w, "end", p->end);
		jw_obj_end(w);
	}
	jw_obj_end(w);
}

static void write_extra(const cJSON *extra, struct jw *w)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, extra) {
		char *v = cJSON_PrintUnformatted(it);
		if (!v) {
			w->oom = 1;
			return;
		}
		jw_kraw(w, it->string, v);
		free(v);
	}
}

void part_write_json(const struct part *p, struct jw *w)
{
	jw_obj(w);
	jw_kstr(w, "id", p->id);
	jw_kstr(w, "sessionID", p->m->s->id);
	jw_kstr(w, "messageID", p->m->id);
	jw_kstr(w, "type", part_type_name(p->type));
	switch (p->type) {
	case P_TEXT:
	case P_REASONING:
		jw_key(w, "text");
		if (p->esc.len == 0 && p->len)
			jw_strn(w, p->text, p->len); /* not streamed (a user's text) */
		else
			jw_str_escaped(w, p->esc.buf, p->esc.len);
		if (p->m->assistant) {
			jw_key(w, "time");
			jw_obj(w);
			jw_kint(w, "start", p->start);
			if (p->end)
				jw_kint(w, "end", p->end);
			jw_obj_end(w);
		}
		break;
	case P_TOOL:
		jw_kstr(w, "callID", p->call_id);
		jw_kstr(w, "tool", p->tool);
		write_tool_state(p, w);
		break;
	case P_STEP_START:
		break;
	case P_STEP_FINISH:
		jw_kstr(w, "reason", p->reason);
		jw_kint(w, "cost", 0);
		write_tokens(w, &p->tokens);
		break;
	case P_COMPACTION:
		jw_kbool(w, "auto", (p->flags & COMPACT_AUTO) != 0);
		if (p->flags & COMPACT_OVERFLOW)
			jw_kbool(w, "overflow", 1);
		break;
	case P_FILE:
	case P_AGENT:
	case P_SUBTASK:
		break;
	}
	write_extra(p->extra, w);
	jw_obj_end(w);
}

static int store_part(struct engine *E, struct part *p)
{
	struct jw w;
	jw_init(&w);
	part_write_json(p, &w);
	struct store_part r = {
		.id = p->id, .message_id = p->m->id, .session_id = p->m->s->id,
		.type = part_type_name(p->type), .data = w.buf,
	};
	int rc = w.oom ? -1 : store_part_put(E->S, &r);
	jw_free(&w);
	p->stored_us = mono_us();
	return rc;
}

int part_save(struct engine *E, struct part *p)
{
	if (p->dirty)
		undirty(p);
	int rc = store_part(E, p);
	bus_begin(E->B, &E->jw, "message.part.updated");
	jw_obj(&E->jw);
	jw_kstr(&E->jw, "sessionID", p->m->s->id);
	jw_key(&E->jw, "part");
	part_write_json(p, &E->jw);
	jw_kint(&E->jw, "time", now_ms());
	jw_obj_end(&E->jw);
	session_publish(E, p->m->s, p->m->t, "message.part.updated");
	return rc;
}

void msg_publish_json(struct engine *E, struct session *s, const char *type, const char *key,
		      const char *json)
{
	bus_begin(E->B, &E->jw, type);
	jw_obj(&E->jw);
	jw_kstr(&E->jw, "sessionID", s->id);
	jw_kraw(&E->jw, key, json);
	if (!strcmp(type, "message.part.updated"))
		jw_kint(&E->jw, "time", now_ms());
	jw_obj_end(&E->jw);
	session_publish(E, s, NULL, type);
}

int msg_save(struct engine *E, struct msg *m)
{
	struct jw w;
	jw_init(&w);
	msg_write_info(m, &w);
	struct store_message r = {
		.id = m->id, .session_id = m->s->id, .role = m->assistant ? "assistant" : "user",
		.parent_id = m->assistant ? m->parent_id : NULL,
		.turn_id = m->t ? m->t->id : m->order[0] ? m->order : NULL,
		.finish = m->finish, .time_created = m->created, .data = w.buf,
	};
	int rc = w.oom ? -1 : store_message_put(E->S, &r);
	bus_begin(E->B, &E->jw, "message.updated");
	jw_obj(&E->jw);
	jw_kstr(&E->jw, "sessionID", m->s->id);
	jw_key(&E->jw, "info");
	jw_rawn(&E->jw, w.buf, w.len);
	jw_obj_end(&E->jw);
	jw_free(&w);
	session_publish(E, m->s, m->t, "message.updated");
	return rc;
}

void part_append(struct engine *E, struct part *p, const char *s, size_t n)
{
	if (p->len + n + 1 > p->cap) {
		size_t cap = p->cap ? p->cap : 256;
		while (cap < p->len + n + 1)
			cap *= 2;
		char *t = realloc(p->text, cap);
		if (!t) {
			log_error("session %s: out of memory appending to part %s", p->m->s->id, p->id);
			return;
		}
		p->text = t;
		p->cap = cap;
	}
	memcpy(p->text + p->len, s, n);
	p->len += n;
	p->text[p->len] = 0;
	size_t esc_from = p->esc.len;
	jw_escape(&p->esc, s, n);
	if (!p->dirty) {
		p->dirty = 1;
		p->dnext = E->dirty;
		if (E->dirty)
			E->dirty->dprev = &p->dnext;
		p->dprev = &E->dirty;
		E->dirty = p;
	}
	bus_begin(E->B, &E->jw, "message.part.delta");
	jw_obj(&E->jw);
	jw_kstr(&E->jw, "sessionID", p->m->s->id);
	jw_kstr(&E->jw, "messageID", p->m->id);
	jw_kstr(&E->jw, "partID", p->id);
	jw_kstr(&E->jw, "field", "text");
	jw_key(&E->jw, "delta");
	jw_str_escaped(&E->jw, p->esc.buf + esc_from, p->esc.len - esc_from);
	jw_obj_end(&E->jw);
	session_publish(E, p->m->s, p->m->t, "message.part.delta");
}

/* Streamed parts were inserted when they began (part_save): only their JSON changes. */
static void store_text(struct engine *E, struct part *p, struct jw *w, int64_t now)
{
	undirty(p);
	jw_reset(w);
	part_write_json(p, w);
	if (!w->oom)
		store_part_set_data(E->S, p->id, w->buf);
	p->stored_us = now;
}

/* Writes the dirty parts stored at least min_age_us ago, and keeps the others dirty. */
static void store_dirty(struct engine *E, int64_t min_age_us)
{
	struct jw w;
	jw_init(&w);
	int64_t now = mono_us();
	for (struct part *p = E->dirty, *next; p; p = next) {
		next = p->dnext;
		if (now - p->stored_us >= min_age_us)
			store_text(E, p, &w, now);
	}
	jw_free(&w);
}

void msg_flush_dirty(void *arg)
{
	store_dirty(arg, 0);
}

/* A session's dirty parts are its running turn's streaming message's (a message's
 * parts are saved when its step ends, and forgotten with it). */
void msg_flush_session(struct engine *E, const char *session_id)
{
	struct session *s = session_cached(E, session_id);
	struct msg *m = s && s->cur ? s->cur->am : NULL;
	struct jw w;
	int64_t now = mono_us();
	jw_init(&w);
	for (struct part *p = m ? m->parts : NULL; p; p = p->next)
		if (p->dirty)
			store_text(E, p, &w, now);
	jw_free(&w);
}

void msg_store_due(void *arg)
{
	store_dirty(arg, PART_STORE_MS * 1000LL);
}

void msg_publish_removed(struct engine *E, struct session *s, struct turn *t,
			 const char *message_id, const char *part_id)
{
	const char *type = part_id ? "message.part.removed" : "message.removed";
	bus_begin(E->B, &E->jw, type);
	jw_obj(&E->jw);
	jw_kstr(&E->jw, "sessionID", s->id);
	jw_kstr(&E->jw, "messageID", message_id);
	if (part_id)
		jw_kstr(&E->jw, "partID", part_id);
	jw_obj_end(&E->jw);
	session_publish(E, s, t, type);
}

int msg_finished_ok(const char *finish)
{
	return finish && strcmp(finish, "error") && strcmp(finish, "aborted");
}

int msg_delete(struct engine *E, struct msg *m)
{
	int rc = store_message_delete(E->S, m->id);
	for (struct part *p = m->parts; p; p = p->next)
		msg_publish_removed(E, m->s, m->t, m->id, p->id);
	msg_publish_removed(E, m->s, m->t, m->id, NULL);
	return rc;
}

void msg_close_open_parts(struct engine *E, struct msg *m)
{
	for (int k = 0; k < 2; k++) {
		struct part *p = m->open[k];
		if (!p)
			continue;
		m->open[k] = NULL;
		p->end = now_ms();
		part_save(E, p);
	}
}

void msg_set_error(struct msg *m, const char *name, const char *message, int status,
		   int retryable)
{
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "name", name);
	jw_key(&w, "data");
	jw_obj(&w);
	jw_kstr(&w, "message", message);
	if (!strcmp(name, "APIError")) {
		if (status)
			jw_kint(&w, "statusCode", status);
		jw_kbool(&w, "isRetryable", retryable);
	}
	if (!strcmp(name, "ProviderAuthError"))
		jw_kstr(&w, "providerID", m->provider);
	jw_obj_end(&w);
	jw_obj_end(&w);
	free(m->error_json);
	m->error_json = jw_take(&w, NULL);
}


int engine_parts_text(const cJSON *parts, char **out, struct err *e)
{
	const cJSON *it;
	if (!cJSON_IsArray(parts)) {
		err_set(e, ERR_INVALID, "missing \"parts\" (an array of {\"type\":\"text\",\"text\"})");
		return -1;
	}
	struct jw w;
	jw_init(&w);
	jw_append(&w, "", 0);
	int i = 0;
	cJSON_ArrayForEach(it, parts) {
		const char *type = NULL, *t = NULL;
		if (!cJSON_IsObject(it) || jsonin_str(it, "type", 1, &type, e)) {
			err_set(e, ERR_INVALID, "parts[%d] must be an object with a \"type\"", i);
			jw_free(&w);
			return -1;
		}
		if (!strcmp(type, "text")) {
			if (jsonin_str(it, "text", 1, &t, e)) {
				err_set(e, ERR_INVALID, "parts[%d].text must be a string", i);
				jw_free(&w);
				return -1;
			}
			if (w.len)
				jw_append(&w, "\n\n", 2);
			jw_append(&w, t, strlen(t));
		} else if (strcmp(type, "file") && strcmp(type, "agent") && strcmp(type, "subtask")) {
			err_set(e, ERR_INVALID, "parts[%d].type: unknown part type \"%.60s\" (text, "
				"file, agent or subtask)", i, type);
			jw_free(&w);
			return -1;
		}
		i++;
	}
	*out = jw_take(&w, NULL);
	return *out ? 0 : -1;
}
