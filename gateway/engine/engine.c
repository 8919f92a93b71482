/* engine: creation and teardown, and the public operations on sessions and messages.
 * The session cache is session.c, the turn ledger turn.c, the agent loop step.c. */
#include "engine_int.h"
#include "lease.h"
#include "datadir.h"
#include "jsonin.h"
#include "llm_http.h"
#include "log.h"
#include "provider_info.h"
#include "scripted.h"
#include "vec.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

int engine_store_ok(struct engine *E, const char *what, struct err *e)
{
	const char *why = store_failure(E->S);
	if (!why)
		return 0;
	err_set(e, ERR_UNAVAILABLE, "the store cannot write (%.300s): %s was not accepted; "
		"GET /global/health tells when it can again", why, what);
	return -1;
}

int engine_commit(struct engine *E, uint64_t mark, const char *what, struct err *e)
{
	int rc = store_commit_since(E->S, mark);
	if (rc == STORE_LATE)
		err_set(e, ERR_UNAVAILABLE, "the disk is slow: %s is kept and will be written "
			"when the disk answers, but it is not on disk yet", what);
	else if (rc)
		err_set(e, ERR_UNAVAILABLE, "the store could not save %s (%.300s); it was not "
			"accepted", what, store_failure(E->S) ? store_failure(E->S) : "see the log");
	return rc;
}

static int check_agent_model(struct engine *E, const char *agent, const char *model,
			     struct err *e)
{
	if (agent && !agents_find(&E->A, agent)) {
		err_set(e, ERR_INVALID, "unknown agent \"%s\" (GET /agent lists them)", agent);
		return -1;
	}
	if (model && llm_check_model(E->M, model, e))
		return -1;
	return 0;
}

static int session_fill_tree(struct engine *E, struct session *s, const struct session_params *p,
			     struct err *e)
{
	if (!p->parent_id || !*p->parent_id) {
		snprintf(s->root_id, sizeof(s->root_id), "%s", s->id);
		s->path = strdup(s->id);
		return 0;
	}
	struct session *parent = session_get(E, p->parent_id);
	if (!parent) {
		err_set(e, ERR_NOTFOUND, "parent session %s not found", p->parent_id);
		return -1;
	}
	snprintf(s->parent_id, sizeof(s->parent_id), "%s", parent->id);
	snprintf(s->root_id, sizeof(s->root_id), "%s", parent->root_id);
	s->depth = parent->depth + 1;
	if (asprintf(&s->path, "%s/%s", parent->path, s->id) < 0)
		s->path = NULL;
	if (!s->directory && parent->directory)
		s->directory = strdup(parent->directory);
	if (p->parent_tool_call_id)
		s->parent_tool_call_id = strdup(p->parent_tool_call_id);
	return 0;
}

int engine_session_create(struct engine *E, const struct session_params *p, char *id_out,
			  struct err *e)
{
	struct stat st;
	if (p->directory && p->directory[0] != '/') {
		err_set(e, ERR_INVALID, "directory \"%.200s\" must be an absolute path", p->directory);
		return -1;
	}
	int missing = p->directory ? stat(p->directory, &st) : 0;
	if (p->directory && (missing || !S_ISDIR(st.st_mode))) {
		err_set(e, ERR_INVALID, "directory \"%.200s\" %s%s", p->directory,
			!missing ? "is not a directory"
			: errno == ENOENT ? "does not exist" : "cannot be reached: ",
			missing && errno != ENOENT ? strerror(errno) : "");
		return -1;
	}
	if (check_agent_model(E, p->agent, p->model, e) || engine_store_ok(E, "the session", e))
		return -1;
	uint64_t mark = store_mark(E->S);
	char id[ID_MAX];
	id_new(id, "ses");
	struct session *s = session_alloc(E, id);
	if (!s) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return -1;
	}
	s->created = s->updated = now_ms();
	s->agent = p->agent ? strdup(p->agent) : NULL;
	s->model = p->model ? strdup(p->model) : NULL;
	s->background = p->background;
	if (p->directory)
		s->directory = strdup(p->directory);
	if (session_fill_tree(E, s, p, e)) {
		session_unlink(E, s);
		session_free(s);
		return -1;
	}
	if (!s->directory)
		s->directory = strdup(E->workspace);
	if (p->title)
		s->title = strdup(p->title);
	else if (asprintf(&s->title, "%s - %s", s->parent_id[0] ? "Child session" : "New session",
			  s->id) < 0)
		s->title = NULL;
	session_save(E, s, "session.created");
	int rc = engine_commit(E, mark, "the session", e);
	if (rc == -1) {
		session_unlink(E, s);
		session_free(s);
	}
	if (rc)
		return -1;
	if (!s->parent_id[0])
		engine_cluster_created(E, s->id);
	if (id_out)
		snprintf(id_out, ID_MAX, "%s", s->id);
	return 0;
}

int engine_session_exists(struct engine *E, const char *id, struct err *e)
{
	return session_get(E, id) ? 0 : session_missing(E, id, e);
}

int engine_session_json(struct engine *E, const char *id, struct jw *w, struct err *e)
{
	struct session *s = session_get(E, id);
	if (!s)
		return session_missing(E, id, e);
	session_write_json(s, w);
	return 0;
}

static int list_row(void *arg, const struct store_session *r)
{
	jw_raw(arg, r->data);
	return 0;
}

int engine_session_list_json(struct engine *E, const char *parent_id, struct jw *w)
{
	jw_arr(w);
	int n = store_session_list(E->S, parent_id, list_row, w);
	jw_arr_end(w);
	return n < 0 ? -1 : 0;
}

/* needle in hay, ASCII letters in either case (SQLite's LIKE '%needle%', which
 * OpenCode's search is). */
static int has_text(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	for (; *hay; hay++)
		if (!strncasecmp(hay, needle, n))
			return 1;
	return !n;
}

/* dir is top or below it (top given with or without a trailing '/'). */
static int dir_under(const char *dir, const char *top)
{
	size_t n = strlen(top);
	while (n > 1 && top[n - 1] == '/')
		n--;
	return !strncmp(dir, top, n) && (!dir[n] || dir[n] == '/' || (n == 1 && *top == '/'));
}

static int query_match(const struct session_query *q, const struct store_session *r)
{
	if (q->start && r->time_updated < q->start)
		return 0;
	if (!q->search && !q->directory && !q->under)
		return 1;
	cJSON *d = cJSON_Parse(r->data);
	const char *title = jsonin_get(d, "title"), *dir = jsonin_get(d, "directory");
	int ok = (!q->search || (title && has_text(title, q->search))) &&
		 (!q->directory || (dir && !strcmp(dir, q->directory))) &&
		 (!q->under || (dir && dir_under(dir, q->under)));
	cJSON_Delete(d);
	return ok;
}

struct query_ctx {
	const struct session_query *q;
	struct jw *w;
	int n;
};

static int query_row(void *arg, const struct store_session *r)
{
	struct query_ctx *c = arg;
	if (!query_match(c->q, r))
		return 0;
	jw_raw(c->w, r->data);
	return c->q->limit > 0 && ++c->n >= c->q->limit;
}

int engine_session_query_json(struct engine *E, const struct session_query *q, struct jw *w)
{
	struct query_ctx c = {q, w, 0};
	jw_arr(w);
	int n = store_session_list(E->S, q->parent_id, query_row, &c);
	jw_arr_end(w);
	return n < 0 ? -1 : 0;
}

int engine_session_times(struct engine *E, int64_t *first_created, int64_t *last_updated)
{
	return store_session_times(E->S, first_created, last_updated);
}

static void busy_probe(struct session *s, void *arg)
{
	if (turnq_busy(&s->q))
		*(int *)arg = 1;
}

int engine_tree_busy(struct engine *E, const char *session_id)
{
	int busy = 0;
	session_for_tree(E, session_id, busy_probe, &busy);
	return busy;
}

struct status_rows {
	struct engine *E;
	struct jw *w;
	char (*seen)[ID_MAX];
	int n, cap;
};

/* A session busy on another node (its turn running or queued in the store): busy. */
static int remote_status_row(void *arg, const struct store_turn *r)
{
	struct status_rows *sr = arg;
	struct session *s = session_cached(sr->E, r->session_id);
	for (int i = 0; i < sr->n; i++)
		if (!strcmp(sr->seen[i], r->session_id))
			return 0;
	if ((s && s->status != ST_IDLE) || sr->n == sr->cap)
		return 0; /* written from memory */
	snprintf(sr->seen[sr->n++], ID_MAX, "%s", r->session_id);
	jw_key(sr->w, r->session_id);
	jw_obj(sr->w);
	jw_kstr(sr->w, "type", "busy");
	jw_obj_end(sr->w);
	return 0;
}

void engine_status_json(struct engine *E, struct jw *w)
{
	jw_obj(w);
	for (int b = 0; b < SES_BUCKETS; b++) {
		for (struct session *s = E->buckets[b]; s; s = s->hnext) {
			if (s->status == ST_IDLE)
				continue;
			jw_key(w, s->id);
			session_status_json(E, s, w, 1);
		}
	}
	if (E->cluster) { /* the other nodes' busy sessions, as the store has them */
		struct status_rows sr = {.E = E, .w = w, .cap = 4096};
		sr.seen = calloc((size_t)sr.cap, ID_MAX);
		if (sr.seen) {
			store_turn_list_state(E->S, "running", remote_status_row, &sr);
			store_turn_list_state(E->S, "queued", remote_status_row, &sr);
		}
		free(sr.seen);
	}
	jw_obj_end(w);
}

struct msg_rows {
	struct {
		char *id, *data;
	} *v;
	int n, cap;
};

static int collect_msg(void *arg, const struct store_message *r)
{
	struct msg_rows *rows = arg;
	void *grown = vec_reserve(rows->v, &rows->cap, rows->n, sizeof(*rows->v));
	if (!grown)
		return 1;
	rows->v = grown;
	rows->v[rows->n].id = strdup(r->id);
	rows->v[rows->n].data = strdup(r->data);
	rows->n++;
	return 0;
}

static int part_row(void *arg, const struct store_part *r)
{
	jw_raw(arg, r->data);
	return 0;
}

static void write_with_parts(struct engine *E, const char *id, const char *info, struct jw *w)
{
	jw_obj(w);
	jw_kraw(w, "info", info);
	jw_key(w, "parts");
	jw_arr(w);
	store_part_list(E->S, id, part_row, w);
	jw_arr_end(w);
	jw_obj_end(w);
}

int engine_messages_json(struct engine *E, const char *session_id, int limit, struct jw *w,
			 struct err *e)
{
	if (engine_session_exists(E, session_id, e))
		return -1;
	msg_flush_session(E, session_id);
	struct msg_rows rows = {0};
	if (store_message_list(E->S, session_id, collect_msg, &rows) < 0) {
		err_set(e, ERR_INTERNAL, "store error listing messages of %s", session_id);
		return -1;
	}
	int first = limit > 0 && rows.n > limit ? rows.n - limit : 0;
	jw_arr(w);
	for (int i = 0; i < rows.n; i++) {
		if (i >= first)
			write_with_parts(E, rows.v[i].id, rows.v[i].data, w);
		free(rows.v[i].id);
		free(rows.v[i].data);
	}
	jw_arr_end(w);
	free(rows.v);
	return 0;
}

struct one_msg {
	const char *session_id;
	struct engine *E;
	struct jw *w;
	int found;
};

static int one_msg_row(void *arg, const struct store_message *r)
{
	struct one_msg *o = arg;
	if (strcmp(r->session_id, o->session_id))
		return 1;
	o->found = 1;
	write_with_parts(o->E, r->id, r->data, o->w);
	return 1;
}

int engine_message_json(struct engine *E, const char *session_id, const char *message_id,
			struct jw *w, struct err *e)
{
	if (engine_session_exists(E, session_id, e))
		return -1;
	msg_flush_session(E, session_id);
	struct one_msg o = {session_id, E, w, 0};
	store_message_get(E->S, message_id, one_msg_row, &o);
	if (!o.found) {
		err_set(e, ERR_NOTFOUND, "message %s not found in session %s", message_id,
			session_id);
		return -1;
	}
	return 0;
}

struct id_list {
	char (*v)[ID_MAX];
	int n, cap;
};

static int collect_child(void *arg, const struct store_session *r)
{
	struct id_list *l = arg;
	void *grown = vec_reserve(l->v, &l->cap, l->n, sizeof(*l->v));
	if (!grown)
		return 1;
	l->v = grown;
	snprintf(l->v[l->n++], ID_MAX, "%s", r->id);
	return 0;
}

static void delete_one(struct engine *E, const char *id)
{
	struct id_list kids = {0};
	store_session_list(E->S, id, collect_child, &kids);
	for (int i = 0; i < kids.n; i++)
		delete_one(E, kids.v[i]);
	free(kids.v);
	struct session *s = session_get(E, id);
	if (!s)
		return;
	struct jw info;
	jw_init(&info);
	session_write_json(s, &info);
	store_session_delete(E->S, id);
	todo_forget(E, id);
	bus_begin(E->B, &E->jw, "session.deleted");
	jw_obj(&E->jw);
	jw_kstr(&E->jw, "sessionID", s->id);
	jw_key(&E->jw, "info");
	jw_rawn(&E->jw, info.buf, info.len);
	jw_obj_end(&E->jw);
	jw_free(&info);
	struct bus_env env;
	session_env(s, NULL, &env);
	bus_publish(E->B, &E->jw, "session.deleted", &env);
	if (!s->parent_id[0])
		permission_forget_tree(E, s->id);
	session_unlink(E, s);
	session_free(s);
}

int engine_session_delete(struct engine *E, const char *id, struct err *e)
{
	if (engine_store_ok(E, "the deletion", e) || engine_abort(E, id, e))
		return -1;
	uint64_t mark = store_mark(E->S);
	delete_one(E, id);
	/* refused: the sessions reload from the store when next asked for */
	return engine_commit(E, mark, "the deletion", e) ? -1 : 0;
}

/* A custom event's type: see engine_emit. */
static int check_event_type(const char *type, struct err *e)
{
	size_t n = type ? strlen(type) : 0;
	if (n == 0 || n > EVENT_TYPE_MAX) {
		err_set(e, ERR_INVALID, "event type \"%.60s\" must be 1 to %d bytes", type ? type : "",
			EVENT_TYPE_MAX);
		return -1;
	}
	for (const char *p = type; *p; p++) {
		if (*p <= ' ' || *p > '~' || *p == '"' || *p == '\\') {
			err_set(e, ERR_INVALID, "event type \"%.60s\" has a byte that is not printable "
				"ASCII, or a space, quote or backslash", type);
			return -1;
		}
	}
	if (event_type_reserved(type)) {
		err_set(e, ERR_INVALID, "event type \"%s\" is in the engine's own namespace "
			"(session., message., server., permission., todo., command., resync)", type);
		return -1;
	}
	return 0;
}

/* properties_json as compact JSON text (caller frees), or NULL with e naming why. */
static char *event_properties(const char *type, const char *json, struct err *e)
{
	size_t n = json ? strlen(json) : 0;
	if (n > ENGINE_EMIT_MAX) {
		err_set(e, ERR_LIMIT, "the properties of event %s are %zu bytes, over the limit of "
			"%d", type, n, ENGINE_EMIT_MAX);
		return NULL;
	}
	struct err pe = {0};
	cJSON *props = jsonin_parse(json ? json : "", n, &pe);
	char *out = cJSON_IsObject(props) ? cJSON_PrintUnformatted(props) : NULL;
	cJSON_Delete(props);
	if (!out)
		err_set(e, ERR_INVALID, "the properties of event %s must be a JSON object%s%.300s",
			type, pe.msg[0] ? ": " : "", pe.msg);
	return out;
}

int engine_emit(struct engine *E, const char *session_id, const char *type,
		const char *properties_json, struct err *e)
{
	if (check_event_type(type, e))
		return -1;
	struct session *s = session_get(E, session_id);
	if (!s) {
		err_set(e, ERR_NOTFOUND, "session %s not found", session_id ? session_id : "(none)");
		return -1;
	}
	if (E->H.in_event) {
		err_set(e, ERR_BUSY, "event %s: engine_emit from inside a HOOK_EVENT callback "
			"would overtake the event being delivered; post it (loop_post)", type);
		return -1;
	}
	char *props = event_properties(type, properties_json, e);
	if (!props)
		return -1;
	struct bus_env env;
	session_env(s, s->cur, &env);
	bus_begin(E->B, &E->jw, type);
	jw_raw(&E->jw, props);
	free(props);
	if (bus_publish(E->B, &E->jw, type, &env) < 0) {
		err_set(e, ERR_INTERNAL, "out of memory publishing event %s", type);
		return -1;
	}
	return 0;
}

int engine_running(struct engine *E)
{
	return E->running;
}

struct bus *engine_bus(struct engine *E) { return E->B; }
const struct config *engine_config(struct engine *E) { return &E->C; }
const struct agents *engine_agents(struct engine *E) { return &E->A; }
const struct commands *engine_commands(struct engine *E) { return &E->cmds; }

const char *engine_store_failure(struct engine *E)
{
	return store_failure(E->S);
}

int engine_store_slow(struct engine *E)
{
	return store_slow(E->S);
}

int engine_flush(struct engine *E)
{
	msg_flush_dirty(E);
	return store_flush(E->S);
}

static int load_config(struct engine *E, const struct engine_opts *o, struct err *e)
{
	if (config_load(&E->C, o->config_path, e) || config_apply_env(&E->C, e))
		return -1;
	config_apply_flags(&E->C, o->model, o->stall_ms, o->openai_base_url, o->anthropic_base_url);
	return agents_load(&E->A, cJSON_GetObjectItemCaseSensitive(E->C.root, "agent"), e) ||
	       commands_load(&E->cmds, cJSON_GetObjectItemCaseSensitive(E->C.root, "command"),
			     &E->A, e) ? -1 : 0;
}

/* The working directory of root sessions: the flag's (relative to the cwd), else the
 * config's (relative to its file), else the cwd — an existing directory, made absolute. */
static int set_workspace(struct engine *E, const char *flag, struct err *e)
{
	const cJSON *ws = cJSON_GetObjectItemCaseSensitive(E->C.root, "workspace");
	char *joined = NULL, real[PATH_MAX];
	if (ws && (!cJSON_IsString(ws) || !*ws->valuestring)) {
		err_set(e, ERR_INVALID, "config: \"workspace\" must be a directory's path");
		return -1;
	}
	const char *dir = flag ? flag : ws ? ws->valuestring : ".";
	if (!flag && ws && dir[0] != '/' && E->C.dir && asprintf(&joined, "%s/%s", E->C.dir, dir) > 0)
		dir = joined;
	int ok = realpath(dir, real) != NULL;
	free(joined);
	struct stat st;
	if (!ok || stat(real, &st) || !S_ISDIR(st.st_mode)) {
		err_set(e, ERR_INVALID, "%s %s: %s", flag ? "--workspace" : ws ? "config workspace"
			: "the working directory", flag ? flag : ws ? ws->valuestring : ".",
			ok ? "not a directory" : strerror(errno));
		return -1;
	}
	E->workspace = strdup(real);
	return E->workspace ? 0 : -1;
}

const char *engine_workspace(struct engine *E)
{
	return E->workspace;
}

const char *engine_data_dir(struct engine *E)
{
	return E->data_dir ? E->data_dir : "";
}

static int load_providers(struct engine *E, struct err *e)
{
	static const char *const net[] = {"openai", "anthropic"};
	struct provider p;
	E->M = llm_create(E->L, &E->C);
	E->io = llmio_start(E->L);
	if (!E->M || !E->io || llm_load_catalog(E->M, e) ||
	    scripted_provider(&p, E->L, &E->C, e) || llm_register(E->M, &p)) {
		if (e && !e->msg[0])
			err_set(e, ERR_INTERNAL, "cannot start the LLM providers");
		return -1;
	}
	for (int i = 0; i < 2; i++)
		if (llm_http_provider(&p, E->io, net[i], &E->C, e) || llm_register(E->M, &p))
			return -1;
	return llm_check_model(E->M, E->C.model, e);
}

/* A provider that the default model or an agent's model uses and that has no key is
 * named now rather than at its first 401. Only a warning: a local OpenAI-compatible
 * server may take requests without one. */
static void warn_missing_keys(struct engine *E)
{
	char told[PROVIDER_COUNT][16] = {{0}};
	for (int i = -1; i < E->A.n; i++) {
		const char *model = i < 0 ? E->C.model : E->A.v[i].model;
		const char *slash = model ? strchr(model, '/') : NULL;
		struct provider_info pi;
		char id[16];
		snprintf(id, sizeof(id), "%.*s", slash ? (int)(slash - model) : 0, model ? model : "");
		if (provider_info_of(&E->C, id, &pi) || !*pi.env || pi.key_source)
			continue;
		int k = 0;
		while (k < PROVIDER_COUNT && told[k][0] && strcmp(told[k], id))
			k++;
		if (k == PROVIDER_COUNT || told[k][0])
			continue;
		snprintf(told[k], sizeof(told[k]), "%s", id);
		log_warn("no %s set (nor providers.%s.api_key), which %s (%s%s) needs unless its "
			 "server takes requests without a key", pi.env, id, model,
			 i < 0 ? "the default model" : "the model of agent ", i < 0 ? "" : E->A.v[i].name);
	}
}

/* Where the store is (store_open's `where`, malloc'd): --store, else the config's
 * "store" (a relative sqlite: path is relative to the config file), else the data
 * directory's agentgate.db. */
static char *store_where(struct engine *E, const char *flag, const char *dir, struct err *e)
{
	const cJSON *cs = cJSON_GetObjectItemCaseSensitive(E->C.root, "store");
	const char *w = flag ? flag : cs ? cs->valuestring : NULL;
	if (!flag && cs && !cJSON_IsString(cs)) {
		err_set(e, ERR_INVALID, "config \"store\": expected sqlite:PATH or "
			"postgres://USER@HOST:PORT/DATABASE");
		return NULL;
	}
	if (w && store_check_where(w, flag ? "--store" : "config \"store\"", e))
		return NULL;
	char *out = NULL;
	if (!w)
		out = strdup(dir);
	else if (!flag && !strncmp(w, "sqlite:", 7) && w[7] != '/' && E->C.dir)
		out = asprintf(&out, "sqlite:%s/%s", E->C.dir, w + 7) < 0 ? NULL : out;
	else
		out = strdup(w);
	if (!out)
		err_set(e, ERR_INTERNAL, "out of memory");
	return out;
}

/* A SQLite store outside the data directory has a one-owner lock of its own (two
 * gateways with two data directories must not share one database file). */
static int lock_store(struct engine *E, const char *where, const char *owner, struct err *e)
{
	E->store_lock_fd = -1;
	if (strncmp(where, "sqlite:", 7))
		return 0;
	const char *file = where + 7, *slash = strrchr(file, '/');
	char dir[PATH_MAX], real[PATH_MAX], db[PATH_MAX + 256];
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - file) : 1,
		 slash ? (slash == file ? "/" : file) : ".");
	if (!realpath(dir, real)) {
		err_set(e, ERR_INVALID, "store %.300s: %.100s: %s", where, dir, strerror(errno));
		return -1;
	}
	if (E->data_dir && !strcmp(real, E->data_dir))
		return 0; /* the data directory's lock covers it */
	snprintf(db, sizeof(db), "%s/%s", strcmp(real, "/") ? real : "", slash ? slash + 1 : file);
	E->store_lock_fd = datadir_lock_db(db, owner, e);
	return E->store_lock_fd < 0 ? -1 : 0;
}

int engine_check_config(struct loop *L, const char *path, struct err *e)
{
	struct engine *E = calloc(1, sizeof(*E));
	if (!E) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return -1;
	}
	E->L = L;
	E->lock_fd = E->store_lock_fd = -1;
	jw_init(&E->jw);
	struct engine_opts o = {.config_path = path};
	char *where = NULL;
	int rc = load_config(E, &o, e) || set_workspace(E, NULL, e) || permission_init(E, e) ||
		 compact_init(E, e) || load_providers(E, e) ||
		 !(where = store_where(E, NULL, "./data", e)) ? -1 : 0;
	free(where);
	engine_destroy(E);
	return rc;
}

/* A cluster node's name (--node, config cluster.node, else HOST:PORT) and lease expiry
 * (--lease-ms, config cluster.lease_ms, else 10 s). */
static int cluster_settings(struct engine *E, const struct engine_opts *o, char *node,
			    int64_t *lease_ms, struct err *e)
{
	const cJSON *sec = cJSON_GetObjectItemCaseSensitive(E->C.root, "cluster");
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(sec, "node");
	const cJSON *ms = cJSON_GetObjectItemCaseSensitive(sec, "lease_ms");
	const char *name = o->node ? o->node : cJSON_IsString(n) ? n->valuestring : NULL;
	*lease_ms = o->lease_ms > 0 ? o->lease_ms : cJSON_IsNumber(ms) ? (int64_t)ms->valuedouble
		    : 10000;
	if (*lease_ms < 300 || *lease_ms > 3600000) {
		err_set(e, ERR_INVALID, "the lease expiry (--lease-ms, cluster.lease_ms) must be "
			"300 to 3600000 ms (got %lld)", (long long)*lease_ms);
		return -1;
	}
	if (name && (!*name || strlen(name) >= LEASE_NODE_MAX || strpbrk(name, " .*>\t\n"))) {
		err_set(e, ERR_INVALID, "node name \"%.100s\" (--node, cluster.node): 1 to %d "
			"bytes without spaces, '.', '*' or '>' (it names a NATS subject)", name,
			LEASE_NODE_MAX - 1);
		return -1;
	}
	if (name) {
		snprintf(node, LEASE_NODE_MAX, "%s", name);
		return 0;
	}
	char host[48] = "node";
	gethostname(host, sizeof(host) - 1);
	const char *port = o->node_url ? strrchr(o->node_url, ':') : NULL;
	snprintf(node, LEASE_NODE_MAX, "%s-%s", host, port ? port + 1 : "0");
	for (char *p = node; *p; p++)
		if (strchr(" .*>", *p))
			*p = '-';
	return 0;
}

/* The bus: "local" (evlog.c in the store) or, on a cluster node, NATS JetStream. */
static int make_bus(struct engine *E, const char *bus, const char *node, struct err *e)
{
	if (!strcmp(bus, "local")) {
		E->B = bus_create(E->S, (size_t)E->C.event_ring, E->C.event_keep);
		if (!E->B)
			err_set(e, ERR_INTERNAL, "out of memory");
		return E->B ? 0 : -1;
	}
	E->B = bus_create_nats(E->L, bus, node, (size_t)E->C.event_ring, E->C.event_keep,
			       (size_t)E->C.bus_buffer_bytes, e);
	return E->B ? 0 : -1;
}

/* --bus, over the config's "bus", over "local"; NULL and e when it is neither local nor
 * nats://, or nats:// (the nodes share the store) with a store other than PostgreSQL. */
static const char *bus_where(struct engine *E, const struct engine_opts *o, const char *store,
			     struct err *e)
{
	const cJSON *cb = cJSON_GetObjectItemCaseSensitive(E->C.root, "bus");
	if (!o->bus && cb && !cJSON_IsString(cb)) {
		err_set(e, ERR_INVALID, "config \"bus\": expected \"local\" or nats://HOST:PORT");
		return NULL;
	}
	const char *what = o->bus ? "--bus" : "config \"bus\"";
	const char *bus = o->bus ? o->bus : cb ? cb->valuestring : "local";
	if (strcmp(bus, "local") && strncmp(bus, "nats://", 7)) {
		err_set(e, ERR_INVALID, "%s %s: expected local or nats://HOST:PORT", what, bus);
		return NULL;
	}
	if (!strncmp(bus, "nats://", 7) && strncmp(store, "postgres://", 11) &&
	    strncmp(store, "postgresql://", 13)) {
		err_set(e, ERR_INVALID, "--bus nats:// needs --store postgres://: nodes share the "
			"store");
		return NULL;
	}
	return bus;
}

struct engine *engine_create(struct loop *L, const struct engine_opts *o, struct err *e)
{
	struct engine *E = calloc(1, sizeof(*E));
	if (!E) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	E->L = L;
	jw_init(&E->jw);
	const char *dir = o->data_dir ? o->data_dir : "./data";
	E->store_lock_fd = -1;
	E->lock_fd = datadir_lock(dir, o->owner, e);
	E->data_dir = realpath(dir, NULL);
	if (E->lock_fd < 0 || load_config(E, o, e) || set_workspace(E, o->workspace, e) ||
	    permission_init(E, e) || compact_init(E, e) || load_providers(E, e))
		goto fail;
	warn_missing_keys(E);
	if (tools_register_builtin(&E->T) || task_register_tools(E)) {
		err_set(e, ERR_INTERNAL, "cannot register the built-in tools");
		goto fail;
	}
	char *where = store_where(E, o->store, dir, e);
	const char *bus = where ? bus_where(E, o, where, e) : NULL;
	int clustered = bus && strcmp(bus, "local");
	char node[LEASE_NODE_MAX];
	int64_t lease_ms = 0;
	if (!bus || (clustered && cluster_settings(E, o, node, &lease_ms, e)) ||
	    lock_store(E, where, o->owner, e) || !(E->S = store_open_as(where, clustered ? node : NULL, L, e)) ||
	    (clustered && engine_cluster_start(E, where, node, o->node_url, lease_ms, e))) {
		free(where);
		goto fail;
	}
	free(where);
	store_add_flush_hook(E->S, msg_store_due, E);
	timer_init(&E->sweeper, L, turn_sweep);
	timer_arm(&E->sweeper, SWEEP_IDLE_MS);
	if (make_bus(E, bus, clustered ? node : NULL, e))
		goto fail;
	return E;
fail:
	engine_destroy(E);
	return NULL;
}

void engine_destroy(struct engine *E)
{
	if (!E)
		return;
	E->closing = 1;
	timer_cancel(&E->sweeper);
	/* first stop what runs, while every session is still cached: a task's cancel
	 * aborts its child, and a child freed before its parent would be loaded again
	 * into a bucket already emptied (and leak) */
	for (int b = 0; b < SES_BUCKETS; b++)
		for (struct session *s = E->buckets[b]; s; s = s->hnext)
			if (s->cur)
				step_cancel(s->cur, "server shutting down");
	for (int b = 0; b < SES_BUCKETS; b++) {
		while (E->buckets[b]) {
			struct session *s = E->buckets[b];
			E->buckets[b] = s->hnext;
			struct turnq_item *it;
			while ((it = turnq_start_next(&s->q)) || (it = s->q.running)) {
				turnq_finish(&s->q);
				turn_free(container_of(it, struct turn, qi));
			}
			session_free(s);
		}
	}
	int durable = E->S && engine_flush(E) == 0;
	store_close(E->S); /* before the bus: its last attempt calls the bus's flush hook */
	engine_cluster_stop(E, durable); /* the leases go once their trees' writes are in */
	/* HOOK_EVENT's bus subscription goes with its callbacks; without a bus (a store
	 * that did not open) there is none, but the built-in tools' hooks are there */
	hooks_free(E);
	bus_destroy(E->B);
	llmio_stop(E->io); /* no transfer may outlive the providers it points to */
	llm_destroy(E->M);
	tools_free(&E->T);
	permission_free(E);
	free(E->workspace);
	free(E->data_dir);
	agents_free(&E->A);
	commands_free(&E->cmds);
	config_free(&E->C);
	jw_free(&E->jw);
	free(E->stats);
	datadir_unlock(E->store_lock_fd);
	datadir_unlock(E->lock_fd); /* last: nothing of this process touches the store now */
	free(E);
}

int engine_session_update(struct engine *E, const char *id, const char *title, struct err *e)
{
	struct session *s = session_get(E, id);
	if (!s) {
		err_set(e, ERR_NOTFOUND, "session %s not found", id ? id : "(none)");
		return -1;
	}
	if (engine_store_ok(E, "the change", e))
		return -1;
	uint64_t mark = store_mark(E->S);
	char *old = s->title;
	if (title)
		s->title = strdup(title);
	s->updated = now_ms();
	session_save(E, s, "session.updated");
	int rc = engine_commit(E, mark, "the change", e);
	if (rc == -1 && title) { /* forgotten: so is the new title */
		free(s->title);
		s->title = old;
	} else if (title) {
		free(old);
	}
	return rc ? -1 : 0;
}

/* ---- the turn ledger's public face (turn.c) ---- */

int engine_prompt(struct engine *E, const struct prompt *p, struct prompt_result *r,
		  struct turn_waiter *w, struct err *e)
{
	char node[LEASE_NODE_MAX];
	/* on a cluster node, whatever the prompt's source (a plugin's too), it runs here
	 * only under the tree's lease; the transports forwarded theirs already */
	int owner = engine_owner(E, p->session_id, node, e);
	if (owner == 1)
		err_set(e, ERR_UNAVAILABLE, "session %s runs on node %s: send the prompt there "
			"(or to any node's HTTP API, which forwards it)", p->session_id, node);
	return owner ? -1 : turn_accept(E, p, r, w, e);
}

void engine_waiter_cancel(struct engine *E, struct turn_waiter *w)
{
	turn_waiter_cancel(E, w);
}

int engine_abort(struct engine *E, const char *session_id, struct err *e)
{
	return turn_abort_tree(E, session_id, e);
}

const char *engine_abort_origin(struct engine *E, const char *session_id)
{
	return turn_abort_origin(E, session_id);
}

int engine_turn_cancel(struct engine *E, const char *session_id, const char *turn_id,
		       struct err *e)
{
	return turn_cancel(E, session_id, turn_id, e);
}

int engine_recover(struct engine *E, int resume_queued)
{
	/* a cluster node recovers only the trees it takes (cluster.c): the others' turns
	 * are running elsewhere */
	return E->cluster ? 0 : turn_recover(E, resume_queued);
}

void engine_shutdown(struct engine *E)
{
	turn_shutdown(E);
}

int engine_session_info(struct engine *E, const char *id, struct session_info *out,
			struct err *e)
{
	struct session *s = session_get(E, id);
	if (!s) {
		err_set(e, ERR_NOTFOUND, "session %s not found", id ? id : "(none)");
		return -1;
	}
	memset(out, 0, sizeof(*out));
	snprintf(out->id, sizeof(out->id), "%s", s->id);
	snprintf(out->parent_id, sizeof(out->parent_id), "%s", s->parent_id);
	snprintf(out->root_id, sizeof(out->root_id), "%s", s->root_id);
	snprintf(out->title, sizeof(out->title), "%s", s->title ? s->title : "");
	out->depth = s->depth;
	out->background = s->background;
	const char *model = s->cur ? s->cur->model : s->model;
	snprintf(out->model, sizeof(out->model), "%s", model ? model : "");
	snprintf(out->directory, sizeof(out->directory), "%s", s->directory ? s->directory : "");
	out->busy = turnq_busy(&s->q);
	out->last_activity = s->last_activity;
	if (s->cur && s->cur->stream) {
		/* a token, or a retry's attempt starting after its backoff */
		int64_t streamed = llm_stream_last_activity(s->cur->stream);
		out->quiet_ms = now_ms() - streamed;
		if (streamed > out->last_activity)
			out->last_activity = streamed;
	}
	return 0;
}

void engine_set_host(struct engine *E, void *host)
{
	E->host = host;
}

void *engine_host(struct engine *E)
{
	return E->host;
}

struct loop *engine_loop(struct engine *E)
{
	return E->L;
}

struct llm *engine_llm(struct engine *E)
{
	return E->M;
}

const struct tool_def *engine_tool(struct engine *E, const char *name)
{
	return tools_find(&E->T, name);
}

int engine_tool_register(struct engine *E, const struct tool_def *def, const char *owner)
{
	return tools_register(&E->T, def, owner);
}

int engine_tool_unregister(struct engine *E, const char *owner, const char *name)
{
	if (name)
		return tools_unregister_name(&E->T, owner, name);
	tools_unregister(&E->T, owner);
	return 0;
}
