/* todo: a session's todo list, OpenCode's Todo[] ({content, status, priority, id?}). A
 * plugin sets it (the continuation plugin's todowrite, through the host's
 * session_todo_set); GET /session/{id}/todo serves it; each change is published as
 * todo.updated {sessionID, todos}. Kept in the engine's kv store (owner TODO_OWNER, key
 * the session id), so it is durable like a prompt and survives a restart, and deleted
 * with its session. Loop thread. */
#include "engine_int.h"

#include <stdlib.h>
#include <string.h>

#define TODO_OWNER "engine:todo"

/* One item: an object whose content, status and priority are strings (id too, when
 * given). 0, or -1 with e naming what is wrong. */
static int check_item(const cJSON *it, int i, struct err *e)
{
	static const char *const need[] = {"content", "status", "priority"};
	if (!cJSON_IsObject(it)) {
		err_set(e, ERR_INVALID, "todos[%d] must be an object {content, status, priority, id}",
			i);
		return -1;
	}
	for (size_t k = 0; k < sizeof(need) / sizeof(need[0]); k++)
		if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(it, need[k]))) {
			err_set(e, ERR_INVALID, "todos[%d].%s must be a string", i, need[k]);
			return -1;
		}
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
	if (id && !cJSON_IsString(id)) {
		err_set(e, ERR_INVALID, "todos[%d].id must be a string", i);
		return -1;
	}
	return 0;
}

/* todos_json parsed and checked: a JSON array of todos, or NULL with e. */
static cJSON *parse_todos(const char *todos_json, struct err *e)
{
	cJSON *t = todos_json ? cJSON_Parse(todos_json) : NULL;
	if (!cJSON_IsArray(t)) {
		err_set(e, ERR_INVALID, "the todo list must be a JSON array of {content, status, "
			"priority, id}");
		cJSON_Delete(t);
		return NULL;
	}
	int i = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, t) {
		if (check_item(it, i++, e)) {
			cJSON_Delete(t);
			return NULL;
		}
	}
	return t;
}

static void publish(struct engine *E, struct session *s, const char *todos)
{
	struct bus_env env;
	session_env(s, s->cur, &env);
	bus_begin(E->B, &E->jw, "todo.updated");
	jw_obj(&E->jw);
	jw_kstr(&E->jw, "sessionID", s->id);
	jw_kraw(&E->jw, "todos", todos);
	jw_obj_end(&E->jw);
	bus_publish(E->B, &E->jw, "todo.updated", &env);
}

int engine_todo_set(struct engine *E, const char *session_id, const char *todos_json,
		    struct err *e)
{
	struct session *s = session_get(E, session_id);
	if (!s)
		return session_missing(E, session_id, e);
	if (E->H.in_event) {
		err_set(e, ERR_BUSY, "a todo list set from inside a HOOK_EVENT callback would "
			"overtake the event being delivered; post it (loop_post)");
		return -1;
	}
	cJSON *t = parse_todos(todos_json, e);
	char *text = t ? cJSON_PrintUnformatted(t) : NULL;
	cJSON_Delete(t);
	if (!text) {
		if (e && !e->code)
			err_set(e, ERR_INTERNAL, "out of memory");
		return -1;
	}
	int rc = engine_kv_set(E, TODO_OWNER, s->id, text, strlen(text), e);
	if (!rc)
		publish(E, s, text);
	free(text);
	return rc;
}

int engine_todo_json(struct engine *E, const char *session_id, struct jw *w, struct err *e)
{
	char *v = NULL;
	size_t n = 0;
	struct err miss = {0};
	if (engine_session_exists(E, session_id, e))
		return -1;
	if (engine_kv_get(E, TODO_OWNER, session_id, &v, &n, &miss)) {
		if (miss.code != ERR_NOTFOUND) {
			if (e)
				*e = miss;
			return -1;
		}
		jw_raw(w, "[]");
		return 0;
	}
	jw_rawn(w, v, n);
	free(v);
	return 0;
}

void todo_forget(struct engine *E, const char *session_id)
{
	store_kv_delete(E->S, TODO_OWNER, session_id);
}
