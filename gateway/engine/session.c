/* session: the session cache in front of the store (a hash of the sessions in use; a
 * session idle for long leaves it and is loaded again when asked for), a session's
 * JSON, its status events and its tree. Loop thread only. */
#include "engine_int.h"
#include "jsonin.h"

#include <stdlib.h>
#include <string.h>

#define AG_VERSION "0.1.0"

static unsigned hash(const char *s)
{
	unsigned h = 2166136261u;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h % SES_BUCKETS;
}

static void kick_fired(struct timer *t)
{
	struct session *s = container_of(t, struct session, kick);
	turn_start_next(s);
}

void session_kick(struct session *s)
{
	if (!timer_armed(&s->kick))
		timer_arm_us(&s->kick, 1);
}

struct session *session_alloc(struct engine *E, const char *id)
{
	struct session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	snprintf(s->id, sizeof(s->id), "%s", id);
	s->E = E;
	timer_init(&s->kick, E->L, kick_fired);
	unsigned h = hash(s->id);
	s->hnext = E->buckets[h];
	E->buckets[h] = s;
	return s;
}

void session_free(struct session *s)
{
	timer_cancel(&s->kick);
	free(s->parent_tool_call_id);
	free(s->path);
	free(s->title);
	free(s->agent);
	free(s->model);
	free(s->directory);
	free(s->retry_msg);
	cJSON_Delete(s->hist);
	compact_forget(s);
	revert_free(s->revert);
	free(s);
}

static char *json_str(const cJSON *o, const char *k)
{
	const char *v = jsonin_get(o, k);
	return v ? strdup(v) : NULL;
}

static int load_row(void *arg, const struct store_session *r)
{
	struct session **out = arg;
	struct session *s = *out;
	cJSON *d = cJSON_Parse(r->data);
	snprintf(s->parent_id, sizeof(s->parent_id), "%s", r->parent_id ? r->parent_id : "");
	snprintf(s->root_id, sizeof(s->root_id), "%s", r->root_id);
	s->parent_tool_call_id = r->parent_tool_call_id ? strdup(r->parent_tool_call_id) : NULL;
	s->depth = r->depth;
	s->created = r->time_created;
	s->updated = r->time_updated;
	s->title = json_str(d, "title");
	s->agent = json_str(d, "agent");
	s->directory = json_str(d, "directory");
	s->path = json_str(d, "path");
	s->background = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "background"));
	const cJSON *model = cJSON_GetObjectItemCaseSensitive(d, "model");
	const char *pid = jsonin_get(model, "providerID");
	const char *mid = jsonin_get(model, "id");
	if (pid && mid && asprintf(&s->model, "%s/%s", pid, mid) < 0)
		s->model = NULL;
	revert_load(s, d);
	cJSON_Delete(d);
	return 1;
}

struct session *session_cached(struct engine *E, const char *id)
{
	if (!id || !*id || strlen(id) >= ID_MAX)
		return NULL;
	for (struct session *s = E->buckets[hash(id)]; s; s = s->hnext)
		if (!strcmp(s->id, id))
			return s;
	return NULL;
}

int session_missing(struct engine *E, const char *id, struct err *e)
{
	const char *why = store_failure(E->S);
	if (why)
		err_set(e, ERR_UNAVAILABLE, "session %.64s cannot be read now (%.300s); GET "
			"/global/health tells when it can again", id ? id : "(none)", why);
	else
		err_set(e, ERR_NOTFOUND, "session %s not found", id ? id : "(none)");
	return -1;
}

static int root_row(void *arg, const struct store_session *r)
{
	snprintf(arg, ID_MAX, "%s", r->root_id);
	return 0;
}

int session_root(struct engine *E, const char *id, char *root)
{
	if (!id || !*id || strlen(id) >= ID_MAX)
		return 0;
	struct session *s = session_cached(E, id);
	if (s) {
		snprintf(root, ID_MAX, "%s", s->root_id);
		return 1;
	}
	int rc = store_session_get(E->S, id, root_row, root);
	return rc < 0 ? -1 : rc > 0;
}

const char *engine_session_directory(struct engine *E, const char *id)
{
	struct session *s = session_cached(E, id);
	return s && s->directory ? s->directory : E->workspace;
}

struct session *session_get(struct engine *E, const char *id)
{
	if (!id || !*id || strlen(id) >= ID_MAX)
		return NULL;
	struct session *cached = session_cached(E, id);
	if (cached) {
		cached->last_used = now_ms();
		return cached;
	}
	struct session probe = {0}, *ps = &probe;
	if (store_session_get(E->S, id, load_row, &ps) <= 0)
		return NULL;
	struct session *s = session_alloc(E, id);
	if (!s)
		return NULL;
	memcpy(s->parent_id, probe.parent_id, sizeof(s->parent_id));
	memcpy(s->root_id, probe.root_id, sizeof(s->root_id));
	s->parent_tool_call_id = probe.parent_tool_call_id;
	s->depth = probe.depth;
	s->created = probe.created;
	s->updated = probe.updated;
	s->title = probe.title;
	s->agent = probe.agent;
	s->directory = probe.directory;
	s->path = probe.path ? probe.path : strdup(id);
	s->model = probe.model;
	s->background = probe.background;
	s->revert = probe.revert;
	s->last_used = now_ms();
	return s;
}

void session_env(const struct session *s, const struct turn *t, struct bus_env *env)
{
	env->session_id = s->id;
	env->root_id = s->root_id;
	env->parent_id = s->parent_id[0] ? s->parent_id : NULL;
	env->parent_tool_call_id = s->parent_tool_call_id;
	env->turn_id = t ? t->id : NULL;
	env->path = s->path;
	env->depth = s->depth;
}

void session_write_json(const struct session *s, struct jw *w)
{
	jw_obj(w);
	jw_kstr(w, "id", s->id);
	jw_kstr(w, "slug", s->id);
	jw_kstr(w, "projectID", "global");
	jw_kstr(w, "directory", s->directory);
	if (s->parent_id[0])
		jw_kstr(w, "parentID", s->parent_id);
	if (s->parent_tool_call_id)
		jw_kstr(w, "parentToolCallID", s->parent_tool_call_id);
	jw_kstr(w, "rootID", s->root_id);
	jw_kint(w, "depth", s->depth);
	jw_kstr(w, "path", s->path);
	if (s->background)
		jw_kbool(w, "background", 1);
	jw_kstr(w, "title", s->title);
	jw_kstr(w, "version", AG_VERSION);
	if (s->agent)
		jw_kstr(w, "agent", s->agent);
	if (s->model)
		model_write_json(w, "model", s->model, "id");
	revert_write_json(s, w);
	jw_key(w, "time");
	jw_obj(w);
	jw_kint(w, "created", s->created);
	jw_kint(w, "updated", s->updated);
	jw_obj_end(w);
	jw_obj_end(w);
}

/* Writes the row and announces it (session.created or session.updated). */
void session_save(struct engine *E, struct session *s, const char *type)
{
	struct jw w;
	jw_init(&w);
	session_write_json(s, &w);
	struct store_session r = {
		.id = s->id, .parent_id = s->parent_id[0] ? s->parent_id : NULL,
		.root_id = s->root_id, .parent_tool_call_id = s->parent_tool_call_id,
		.depth = s->depth, .time_created = s->created, .time_updated = s->updated,
		.data = w.buf,
	};
	if (!w.oom)
		store_session_put(E->S, &r);
	bus_begin(E->B, &E->jw, type);
	jw_obj(&E->jw);
	jw_kstr(&E->jw, "sessionID", s->id);
	jw_key(&E->jw, "info");
	jw_rawn(&E->jw, w.buf, w.len);
	jw_obj_end(&E->jw);
	jw_free(&w);
	struct bus_env env;
	session_env(s, NULL, &env);
	bus_publish(E->B, &E->jw, type, &env);
}

void session_status_json(struct engine *E, const struct session *s, struct jw *w, int parent)
{
	static const char *names[] = {"idle", "busy", "retry"};
	jw_obj(w);
	jw_kstr(w, "type", names[s->status]);
	if (s->status == ST_RETRY) {
		jw_kint(w, "attempt", s->retry_attempt);
		jw_kstr(w, "message", s->retry_msg);
		jw_kint(w, "next", s->retry_next);
	} else if (s->status == ST_BUSY && s->asks) {
		permission_status_note(E, s, w);
	}
	if (parent && s->parent_id[0])
		jw_kstr(w, "parentID", s->parent_id);
	jw_obj_end(w);
}

void session_announce_status(struct engine *E, struct session *s)
{
	struct bus_env env;
	session_env(s, s->cur, &env);
	bus_begin(E->B, &E->jw, "session.status");
	jw_obj(&E->jw);
	jw_kstr(&E->jw, "sessionID", s->id);
	jw_key(&E->jw, "status");
	session_status_json(E, s, &E->jw, 0);
	if (s->parent_id[0])
		jw_kstr(&E->jw, "parentID", s->parent_id);
	jw_obj_end(&E->jw);
	bus_publish(E->B, &E->jw, "session.status", &env);
}

void session_set_status(struct engine *E, struct session *s, enum status_type st)
{
	if (st == s->status && st != ST_RETRY)
		return;
	s->status = st;
	session_announce_status(E, s);
	if (st != ST_IDLE) {
		turn_sweep_soon(E); /* the sweeper watches what is busy */
		return;
	}
	struct bus_env env;
	session_env(s, s->cur, &env);
	bus_begin(E->B, &E->jw, "session.idle");
	jw_obj(&E->jw);
	jw_kstr(&E->jw, "sessionID", s->id);
	jw_obj_end(&E->jw);
	bus_publish(E->B, &E->jw, "session.idle", &env);
	if (hooks_any(E, HOOK_SESSION_IDLE)) {
		struct hook_ctx c;
		hooks_ctx(s, NULL, &c);
		hooks_run(E, HOOK_SESSION_IDLE, &c, NULL, NULL, 0);
	}
}

void session_unlink(struct engine *E, struct session *s)
{
	for (struct session **pp = &E->buckets[hash(s->id)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == s) {
			*pp = s->hnext;
			return;
		}
	}
}

int session_path_has(const char *path, const char *id)
{
	size_t n = strlen(id);
	for (const char *p = path ? strstr(path, id) : NULL; p; p = strstr(p + 1, id))
		if ((p == path || p[-1] == '/') && (p[n] == 0 || p[n] == '/'))
			return 1;
	return 0;
}

/* Iterates the cached sessions of id's subtree, id itself included. */
void session_for_tree(struct engine *E, const char *id, void (*fn)(struct session *, void *),
		     void *arg)
{
	for (int b = 0; b < SES_BUCKETS; b++) {
		for (struct session *s = E->buckets[b], *next; s; s = next) {
			next = s->hnext;
			if (session_path_has(s->path, id))
				fn(s, arg);
		}
	}
}

void session_emit_error(struct engine *E, struct session *s, struct turn *t,
			const char *error_json)
{
	bus_begin(E->B, &E->jw, "session.error");
	jw_obj(&E->jw);
	jw_kstr(&E->jw, "sessionID", s->id);
	jw_kraw(&E->jw, "error", error_json);
	jw_obj_end(&E->jw);
	session_publish(E, s, t, "session.error");
}

void session_publish(struct engine *E, struct session *s, struct turn *t, const char *type)
{
	struct bus_env env;
	s->last_activity = now_ms();
	session_env(s, t, &env);
	bus_publish(E->B, &E->jw, type, &env);
}
