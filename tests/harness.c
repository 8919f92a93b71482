#include "harness.h"
#include "log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <libwebsockets.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void record(void *arg, struct event *ev)
{
	struct h *h = arg;
	if (h->nevents == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 256;
		h->events = realloc(h->events, (size_t)h->cap * sizeof(char *));
		h->types = realloc(h->types, (size_t)h->cap * sizeof(char *));
	}
	h->events[h->nevents] = strndup(ev->json, ev->len);
	h->types[h->nevents] = strdup(ev->type);
	h->nevents++;
}

void h_dir(struct h *h, const char *config_json)
{
	memset(h, 0, sizeof(*h));
	snprintf(h->dir, sizeof(h->dir), "/tmp/agentgate-test-XXXXXX");
	assert_non_null(mkdtemp(h->dir));
	if (config_json) {
		char path[300];
		snprintf(path, sizeof(path), "%s/config.json", h->dir);
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fputs(config_json, f);
		fclose(f);
	}
}

void h_start(struct h *h, int recover)
{
	char cfg[300];
	snprintf(cfg, sizeof(cfg), "%s/config.json", h->dir);
	struct loop_config lc = {.port = -1};
	log_init_from_env(LOG_WARN);
	h->L = loop_create(&lc);
	assert_non_null(h->L);
	struct err e = {0};
	struct engine_opts o = {
		.data_dir = h->dir, .config_path = access(cfg, R_OK) == 0 ? cfg : NULL,
		.openai_base_url = h->openai_base, .anthropic_base_url = h->anthropic_base,
		.workspace = h->workspace,
	};
	h->E = engine_create(h->L, &o, &e);
	if (!h->E)
		fail_msg("engine_create: %s", e.msg);
	bus_subscribe(engine_bus(h->E), &h->sub, record, h);
	if (recover)
		assert_int_equal(engine_recover(h->E, 1), 0);
}

static void check_all_ledgers(struct h *h);

void h_stop(struct h *h)
{
	check_all_ledgers(h);
	if (h->E)
		bus_unsubscribe(engine_bus(h->E), &h->sub);
	engine_destroy(h->E);
	loop_destroy(h->L);
	h->E = NULL;
	h->L = NULL;
	for (int i = 0; i < h->nevents; i++) {
		free(h->events[i]);
		free(h->types[i]);
	}
	free(h->events);
	free(h->types);
	h->events = h->types = NULL;
	h->nevents = h->cap = 0;
}

static void tick(struct timer *t)
{
	timer_arm(t, 5); /* keeps lws_service returning while we wait on a condition */
}

int h_until(struct h *h, int (*pred)(struct h *h, void *arg), void *arg, int timeout_ms)
{
	struct timer t;
	timer_init(&t, h->L, tick);
	timer_arm(&t, 5);
	int64_t end = mono_us() + (int64_t)timeout_ms * 1000;
	int ok;
	while (!(ok = pred(h, arg)) && mono_us() < end)
		loop_service(h->L);
	timer_cancel(&t);
	return ok;
}

static int never(struct h *h, void *arg)
{
	return 0;
}

void h_spin(struct h *h, int ms)
{
	h_until(h, never, NULL, ms);
}

int h_idle(struct h *h, void *session_id)
{
	return !engine_tree_busy(h->E, session_id);
}

int h_count(struct h *h, const char *type, const char *session_id)
{
	int n = 0;
	char needle[80];
	snprintf(needle, sizeof(needle), "\"sessionID\":\"%s\"", session_id ? session_id : "");
	for (int i = 0; i < h->nevents; i++)
		if (!strcmp(h->types[i], type) && (!session_id || strstr(h->events[i], needle)))
			n++;
	return n;
}

static int store_writes(struct h *h, void *arg)
{
	return engine_store_failure(h->E) == NULL;
}

/* A loaded machine can make a commit take longer than the store's slow-disk bound, and
 * the engine then refuses new work (503, "it was not accepted") — right for clients,
 * beside the point of the tests that only need a session or a prompt: they wait for the
 * store and try again (bounded). Tests of a failing store drive the engine directly. */
static int refused_for_the_store(struct h *h, const struct err *e, int attempt)
{
	if (e->code != ERR_UNAVAILABLE || !strstr(e->msg, "was not accepted") || attempt >= 5)
		return 0;
	h_until(h, store_writes, NULL, 10000);
	return 1;
}

void h_session(struct h *h, char *out)
{
	struct err e = {0};
	struct session_params p = {.title = "test"};
	for (int i = 0; engine_session_create(h->E, &p, out, &e); i++)
		if (!refused_for_the_store(h, &e, i))
			fail_msg("session create: %s", e.msg);
}

static void prompt_with(struct h *h, const struct prompt *p, char *turn_out)
{
	struct err e = {0};
	struct prompt_result r;
	for (int i = 0; engine_prompt(h->E, p, &r, NULL, &e); i++)
		if (!refused_for_the_store(h, &e, i))
			fail_msg("prompt \"%s\": %s", p->text, e.msg);
	if (turn_out)
		strcpy(turn_out, r.turn_id);
}

void h_prompt(struct h *h, const char *sid, const char *text, const char *source,
	      char *turn_out)
{
	struct prompt p = {.session_id = sid, .text = text, .source = source};
	prompt_with(h, &p, turn_out);
}

void h_prompt_model(struct h *h, const char *sid, const char *text, const char *model,
		    char *turn_out)
{
	struct prompt p = {.session_id = sid, .text = text, .source = "http", .model = model};
	prompt_with(h, &p, turn_out);
}

static sqlite3_stmt *query(struct h *h, sqlite3 **db, const char *sql, va_list ap)
{
	char path[300], q[2048];
	snprintf(path, sizeof(path), "%s/agentgate.db", h->dir);
	vsnprintf(q, sizeof(q), sql, ap);
	assert_int_equal(sqlite3_open_v2(path, db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_busy_timeout(*db, 2000);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(*db, q, -1, &st, NULL) != SQLITE_OK)
		fail_msg("sql %s: %s", q, sqlite3_errmsg(*db));
	return st;
}

int64_t h_sql_int(struct h *h, const char *sql, ...)
{
	sqlite3 *db;
	va_list ap;
	va_start(ap, sql);
	sqlite3_stmt *st = query(h, &db, sql, ap);
	va_end(ap);
	int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

char *h_sql_str(struct h *h, const char *sql, ...)
{
	sqlite3 *db;
	va_list ap;
	va_start(ap, sql);
	sqlite3_stmt *st = query(h, &db, sql, ap);
	va_end(ap);
	char *v = NULL;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		v = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* The DESIGN.md ledger invariants, checked on what is durable. */
void h_check_ledger(struct h *h, const char *sid)
{
	engine_flush(h->E);
	/* exactly one terminal assistant message per turn's user message */
	assert_int_equal(h_unanswered(h, sid), 0);
	/* a user message no turn opened (noReply) has no reply and no turnID */
	assert_int_equal(h_sql_int(h,
		"SELECT COUNT(*) FROM message u WHERE u.role='user' AND u.session_id='%s' AND "
		"u.id NOT IN (SELECT user_message_id FROM turn) AND (json_extract(u.data, "
		"'$.turnID') IS NOT NULL OR EXISTS (SELECT 1 FROM message a WHERE "
		"a.parent_id=u.id))", sid), 0);
	/* every assistant message is bound to its turn's user message */
	assert_int_equal(h_sql_int(h,
		"SELECT COUNT(*) FROM message a LEFT JOIN turn t ON t.id=a.turn_id "
		"WHERE a.session_id='%s' AND a.role='assistant' AND "
		"(t.id IS NULL OR a.parent_id IS NOT t.user_message_id)", sid), 0);
	/* nothing left unfinished once the turns ended */
	assert_int_equal(h_unfinished(h, sid), 0);
	/* turns ran one at a time, in the order they were accepted */
	assert_int_equal(h_sql_int(h,
		"SELECT COUNT(*) FROM turn a JOIN turn b ON a.session_id=b.session_id AND a.id<b.id "
		"WHERE a.session_id='%s' AND b.time_started IS NOT NULL AND "
		"(b.time_started < a.time_ended OR b.time_started < a.time_started)", sid), 0);
	/* assistant messages never overlap in time */
	assert_int_equal(h_sql_int(h,
		"SELECT COUNT(*) FROM message a JOIN message b ON a.session_id=b.session_id "
		"AND a.id<b.id WHERE a.session_id='%s' AND a.role='assistant' AND "
		"b.role='assistant' AND b.time_created < json_extract(a.data,'$.time.completed')",
		sid), 0);
	/* no turn is left queued or running */
	assert_int_equal(h_turns(h, sid, "queued"), 0);
	assert_int_equal(h_turns(h, sid, "running"), 0);
}

/* The ledger invariants hold for every session whenever nothing runs or waits, so every
 * test that stops its engine at rest is checked. A test that stops it mid-turn (a crash,
 * as far as the store knows) is checked once it has restarted and recovered. */
static void check_all_ledgers(struct h *h)
{
	if (!h->E || engine_running(h->E) || engine_flush(h->E) || h_turns(h, NULL, "queued") ||
	    h_turns(h, NULL, "running"))
		return;
	int n = h_sessions(h, NULL);
	for (int i = 0; i < n; i++) {
		char *sid = h_session_at(h, i);
		if (sid)
			h_check_ledger(h, sid);
		free(sid);
	}
}

/* What a test asks of the store, by name: with the ledger above, the only code in the
 * tests that knows the schema (and the SQL dialect). */

/* "col='v'" or, for v NULL, "1" (any); b is the caller's buffer. */
static const char *eq(char b[160], const char *col, const char *v)
{
	if (v)
		snprintf(b, 160, "%s='%s'", col, v);
	else
		snprintf(b, 160, "1");
	return b;
}
#define EQ(col, v) eq((char[160]){0}, col, v)

char *h_turn_state(struct h *h, const char *turn)
{
	return h_sql_str(h, "SELECT state FROM turn WHERE id='%s'", turn);
}

char *h_turn_error(struct h *h, const char *turn)
{
	return h_sql_str(h, "SELECT error FROM turn WHERE id='%s'", turn);
}

char *h_turn_key(struct h *h, const char *turn)
{
	return h_sql_str(h, "SELECT dedupe_key FROM turn WHERE id='%s'", turn);
}

char *h_turn_prompt(struct h *h, const char *turn)
{
	return h_sql_str(h, "SELECT json_extract(p.data,'$.text') FROM turn t JOIN part p ON "
			 "p.message_id=t.user_message_id WHERE t.id='%s' ORDER BY p.id LIMIT 1", turn);
}

int h_turns_from(struct h *h, const char *sid, const char *source, const char *state)
{
	return (int)h_sql_int(h, "SELECT COUNT(*) FROM turn WHERE %s AND %s AND %s",
			      EQ("session_id", sid), EQ("source", source), EQ("state", state));
}

int h_turns(struct h *h, const char *sid, const char *state)
{
	return h_turns_from(h, sid, NULL, state);
}

int h_tree_turns(struct h *h, const char *root, const char *state)
{
	return (int)h_sql_int(h, "SELECT COUNT(*) FROM turn t JOIN session s ON s.id=t.session_id "
			      "WHERE s.root_id='%s' AND %s", root, EQ("t.state", state));
}

int h_turns_keyed(struct h *h, const char *key)
{
	return (int)h_sql_int(h, "SELECT COUNT(*) FROM turn WHERE dedupe_key='%s'", key);
}

char *h_last_turn(struct h *h, const char *sid, const char *source, const char *state)
{
	return h_sql_str(h, "SELECT id FROM turn WHERE session_id='%s' AND %s AND %s ORDER BY id "
			 "DESC LIMIT 1", sid, EQ("source", source), EQ("state", state));
}

int h_turn_after(struct h *h, const char *turn, const char *before)
{
	return (int)h_sql_int(h, "SELECT (SELECT time_started FROM turn WHERE id='%s') >= "
			      "(SELECT time_ended FROM turn WHERE id='%s')", turn, before);
}

int h_messages(struct h *h, const char *sid, const char *role)
{
	return (int)h_sql_int(h, "SELECT COUNT(*) FROM message WHERE %s AND %s",
			      EQ("session_id", sid), EQ("role", role));
}

int h_replies(struct h *h, const char *turn, const char *finish)
{
	return (int)h_sql_int(h, "SELECT COUNT(*) FROM message WHERE turn_id='%s' AND "
			      "role='assistant' AND %s", turn, EQ("finish", finish));
}

int h_unfinished(struct h *h, const char *sid)
{
	return (int)h_sql_int(h, "SELECT COUNT(*) FROM message WHERE %s AND role='assistant' AND "
			      "finish IS NULL", EQ("session_id", sid));
}

int h_unanswered(struct h *h, const char *sid)
{
	return (int)h_sql_int(h,
		"SELECT COUNT(*) FROM message u WHERE u.role='user' AND u.session_id='%s' AND "
		"u.id IN (SELECT user_message_id FROM turn) AND "
		"(SELECT COUNT(*) FROM message a WHERE a.parent_id=u.id AND a.role='assistant' "
		"AND a.finish IS NOT NULL AND a.finish != 'tool-calls') != 1", sid);
}

char *h_reply_error(struct h *h, const char *turn)
{
	return h_sql_str(h, "SELECT json_extract(data,'$.error.data.message') FROM message WHERE "
			 "turn_id='%s' AND role='assistant' AND finish='error'", turn);
}

char *h_reply_error_name(struct h *h, const char *turn, const char *finish)
{
	return h_sql_str(h, "SELECT json_extract(data,'$.error.name') FROM message WHERE "
			 "turn_id='%s' AND role='assistant' AND finish='%s'", turn, finish);
}

int64_t h_reply_tokens(struct h *h, const char *turn)
{
	return h_sql_int(h, "SELECT json_extract(data,'$.tokens.output') FROM message WHERE "
			 "turn_id='%s' AND role='assistant' ORDER BY id LIMIT 1", turn);
}

/* Parts of the assistant's messages (p, m) in a session or turn: ids of both differ. */
#define REPLY_PARTS "part p JOIN message m ON m.id=p.message_id WHERE m.role='assistant' AND "
static const char *in(char b[160], const char *of)
{
	if (of)
		snprintf(b, 160, "(p.session_id='%s' OR m.turn_id='%s')", of, of);
	else
		snprintf(b, 160, "1");
	return b;
}
#define IN(of) in((char[160]){0}, of)

char *h_reply_text(struct h *h, const char *turn)
{
	return h_sql_str(h, "SELECT group_concat(t,'|') FROM (SELECT json_extract(p.data,'$.text') "
			 "t FROM " REPLY_PARTS "m.turn_id='%s' AND p.type='text' ORDER BY m.id, p.id)",
			 turn);
}

char *h_last_text(struct h *h, const char *of)
{
	return h_sql_str(h, "SELECT json_extract(p.data,'$.text') FROM " REPLY_PARTS "%s AND "
			 "p.type='text' ORDER BY m.turn_id DESC, p.id DESC LIMIT 1", IN(of));
}

int64_t h_reply_len(struct h *h, const char *turn)
{
	return h_sql_int(h, "SELECT COALESCE(SUM(length(json_extract(p.data,'$.text'))),0) FROM "
			 REPLY_PARTS "m.turn_id='%s' AND p.type='text'", turn);
}

int64_t h_longest_text(struct h *h, const char *sid)
{
	return h_sql_int(h, "SELECT COALESCE(MAX(length(json_extract(p.data,'$.text'))),0) FROM "
			 REPLY_PARTS "p.session_id='%s' AND p.type='text'", sid);
}

int h_parts(struct h *h, const char *of, const char *type)
{
	return (int)h_sql_int(h, "SELECT COUNT(*) FROM " REPLY_PARTS "%s AND p.type='%s'", IN(of),
			      type);
}

int h_parts_mentioning(struct h *h, const char *text)
{
	return (int)h_sql_int(h, "SELECT COUNT(*) FROM part WHERE data LIKE '%%%s%%'", text);
}

#define TOOL_STATE(field) "json_extract(p.data,'$.state." field "')"

int h_tool_calls(struct h *h, const char *of, const char *tool, const char *status)
{
	return (int)h_sql_int(h, "SELECT COUNT(*) FROM " REPLY_PARTS "%s AND p.type='tool' AND %s "
			      "AND %s", IN(of), EQ("json_extract(p.data,'$.tool')", tool),
			      EQ(TOOL_STATE("status"), status));
}

char *h_tool_output(struct h *h, const char *of, const char *tool)
{
	return h_sql_str(h, "SELECT " TOOL_STATE("output") " FROM " REPLY_PARTS "%s AND "
			 "p.type='tool' AND %s ORDER BY p.id LIMIT 1", IN(of),
			 EQ("json_extract(p.data,'$.tool')", tool));
}

char *h_tool_input(struct h *h, const char *of, const char *tool)
{
	return h_sql_str(h, "SELECT json(" TOOL_STATE("input") ") FROM " REPLY_PARTS "%s AND "
			 "p.type='tool' AND %s ORDER BY p.id LIMIT 1", IN(of),
			 EQ("json_extract(p.data,'$.tool')", tool));
}

char *h_tool_error(struct h *h, const char *of)
{
	return h_sql_str(h, "SELECT " TOOL_STATE("error") " FROM " REPLY_PARTS "%s AND "
			 "p.type='tool' AND " TOOL_STATE("status") "='error' ORDER BY p.id DESC "
			 "LIMIT 1", IN(of));
}

int h_tool_errors_like(struct h *h, const char *pattern)
{
	return (int)h_sql_int(h, "SELECT COUNT(*) FROM part p WHERE p.type='tool' AND "
			      TOOL_STATE("error") " LIKE '%s'", pattern);
}

char *h_task_session(struct h *h, const char *sid)
{
	return h_sql_str(h, "SELECT " TOOL_STATE("metadata.sessionId") " FROM part p WHERE "
			 "p.session_id='%s' AND p.type='tool' ORDER BY p.id LIMIT 1", sid);
}

char *h_session_at(struct h *h, int i)
{
	return h_sql_str(h, "SELECT id FROM session ORDER BY id LIMIT 1 OFFSET %d", i);
}

int h_sessions(struct h *h, const char *root)
{
	return (int)h_sql_int(h, "SELECT COUNT(*) FROM session WHERE %s", EQ("root_id", root));
}

char *h_session_title(struct h *h, const char *sid)
{
	return h_sql_str(h, "SELECT json_extract(data,'$.title') FROM session WHERE id='%s'", sid);
}

char *h_child(struct h *h, const char *parent)
{
	return h_sql_str(h, "SELECT id FROM session WHERE parent_id='%s' ORDER BY id LIMIT 1",
			 parent);
}

int h_children(struct h *h, const char *parent)
{
	return (int)h_sql_int(h, "SELECT COUNT(*) FROM session WHERE parent_id='%s'", parent);
}

char *h_parent(struct h *h, const char *sid)
{
	return h_sql_str(h, "SELECT parent_id FROM session WHERE id='%s'", sid);
}

char *h_spawned_by(struct h *h, const char *sid)
{
	return h_sql_str(h, "SELECT parent_tool_call_id FROM session WHERE id='%s'", sid);
}

int h_depth(struct h *h, const char *sid)
{
	return (int)h_sql_int(h, "SELECT depth FROM session WHERE id='%s'", sid);
}

int h_deepest(struct h *h)
{
	return (int)h_sql_int(h, "SELECT MAX(depth) FROM session");
}

char *h_kv_value(struct h *h, const char *owner, const char *key)
{
	return h_sql_str(h, "SELECT CAST(value AS TEXT) FROM kv WHERE owner='%s' AND key='%s'",
			 owner, key);
}

static int kv_join(void *arg, const char *key, const void *value, size_t len)
{
	struct jw *w = arg;
	if (w->len)
		jw_append(w, ",", 1);
	jw_append(w, key, strlen(key));
	jw_append(w, "=", 1);
	jw_append(w, value, len);
	return 0;
}

char *h_kv_list(struct h *h, const char *owner, const char *prefix)
{
	struct jw w;
	jw_init(&w);
	jw_append(&w, "", 0);
	if (engine_kv_list(h->E, owner, prefix, kv_join, &w) < 0) {
		jw_free(&w);
		return NULL;
	}
	return jw_take(&w, NULL);
}

int64_t h_durable_seq(struct h *h)
{
	return h_sql_int(h, "SELECT COALESCE(MAX(last_seq), 0) FROM event_batch");
}
