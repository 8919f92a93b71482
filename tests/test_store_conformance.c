/* The store's contract, run against one backend (argv[1]: sqlite or postgres): what the
 * engine and the event log rely on. Rows come back as written, NULLs included; listings
 * keep their orders with ids compared bytewise; a second put replaces; reads see writes
 * not yet committed; a flush or a mark makes writes visible to another connection and
 * they survive a reopen; event batches are found by the seqs they hold and pruned
 * whole; seq reservations and the kv store persist; a database that stops answering
 * refuses writes naming why, keeps what it acknowledged, never writes what it refused,
 * and recovers without a reopen. A real loop drives the store's timers. PostgreSQL is a
 * server of the test's own (pgtmp.h), each test in a fresh database collated by ICU's
 * en-US, so text the store sorts must sort bytewise by its own collation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "log.h"
#include "pgtmp.h"
#include "store.h"

/* ---- the backend under test ---- */

struct backend {
	const char *name;
	void (*fresh)(char *where, size_t n);  /* an empty store's location */
	char *(*peek)(const char *where, const char *sql); /* another connection's answer */
	void (*down)(void);  /* the database stops taking writes */
	void (*up)(void);
	const char *why;     /* what store_failure names meanwhile */
	const char *newer;   /* SQL making the schema's version one this build does not know */
	int utf8_exact;      /* text that is not UTF-8 comes back as it was written */
};

static const struct backend *B;
static char sqlite_root[64], faults[128];
static struct pgtmp pg;
static int ndb;

static char *sqlite_peek(const char *where, const char *sql)
{
	sqlite3 *db;
	char *out = NULL;
	if (sqlite3_open_v2(where + strlen("sqlite:"), &db, SQLITE_OPEN_READWRITE, NULL) ==
	    SQLITE_OK) {
		sqlite3_stmt *q;
		if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK) {
			int rc = sqlite3_step(q);
			if (rc == SQLITE_ROW)
				out = strdup(sqlite3_column_text(q, 0) ? (const char *)sqlite3_column_text(q, 0) : "");
			else if (rc == SQLITE_DONE)
				out = strdup("");
			sqlite3_finalize(q);
		}
	}
	sqlite3_close(db);
	return out;
}

static void sqlite_fresh(char *where, size_t n)
{
	snprintf(where, n, "sqlite:%s/db%d.sqlite", sqlite_root, ++ndb);
}

static void disk(const char *mode)
{
	if (!mode) {
		unlink(faults);
		return;
	}
	FILE *f = fopen(faults, "w");
	assert_non_null(f);
	fputs(mode, f);
	fclose(f);
}

static void sqlite_fail(void)
{
	disk("ioerr");
}

static void sqlite_heal(void)
{
	disk(NULL);
}

static char *pg_peek(const char *where, const char *sql)
{
	PGconn *c = PQconnectdb(where);
	char *out = NULL;
	if (PQstatus(c) == CONNECTION_OK) {
		PGresult *r = PQexec(c, sql);
		if (PQresultStatus(r) == PGRES_TUPLES_OK)
			out = strdup(PQntuples(r) && !PQgetisnull(r, 0, 0) ? PQgetvalue(r, 0, 0) : "");
		else if (PQresultStatus(r) == PGRES_COMMAND_OK)
			out = strdup("");
		PQclear(r);
	}
	PQfinish(c);
	return out;
}

static void pg_fresh(char *where, size_t n)
{
	char name[32];
	snprintf(name, sizeof(name), "conformance%d", ++ndb);
	assert_int_equal(pgtmp_createdb(&pg, name, where, n), 0);
}

static void pg_fail(void)
{
	pgtmp_stop(&pg);
}

static void pg_heal(void)
{
	assert_int_equal(pgtmp_restart(&pg), 0);
}

static const struct backend backends[] = {
	{"sqlite", sqlite_fresh, sqlite_peek, sqlite_fail, sqlite_heal, "disk I/O error",
	 "PRAGMA user_version = 99", 1},
	{"postgres", pg_fresh, pg_peek, pg_fail, pg_heal, "PostgreSQL",
	 "UPDATE agentgate_schema SET version = 99", 0},
};

/* ---- a store on a loop ---- */

struct fx {
	struct h h;
	struct store *S;
	char where[300];
};

static void fx_reopen(struct fx *f)
{
	struct err e = {0};
	if (f->S)
		store_close(f->S);
	f->S = store_open(f->where, f->h.L, &e);
	if (!f->S)
		fail_msg("store_open %s: %s", f->where, e.msg);
}

static void fx_open(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	struct loop_config lc = {.port = -1};
	f->h.L = loop_create(&lc);
	assert_non_null(f->h.L);
	B->fresh(f->where, sizeof(f->where));
	fx_reopen(f);
}

static void fx_close(struct fx *f)
{
	store_close(f->S);
	loop_destroy(f->h.L);
}

static int64_t peek_int(struct fx *f, const char *sql)
{
	char *v = B->peek(f->where, sql);
	if (!v)
		fail_msg("%s: cannot ask %s", sql, f->where);
	int64_t n = atoll(v);
	free(v);
	return n;
}

static int64_t rows(struct fx *f, const char *table, const char *id)
{
	char sql[200];
	snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s WHERE id = '%s'", table, id);
	return peek_int(f, sql);
}

/* ---- readers that collect ---- */

struct list {
	char s[2048];
};

static void add(struct list *l, const char *v)
{
	size_t n = strlen(l->s);
	snprintf(l->s + n, sizeof(l->s) - n, "%s%s", n ? "," : "", v ? v : "NULL");
}

static int ses_id(void *arg, const struct store_session *r)
{
	add(arg, r->id);
	return 0;
}

static int msg_id(void *arg, const struct store_message *r)
{
	add(arg, r->id);
	return 0;
}

static int part_id(void *arg, const struct store_part *r)
{
	add(arg, r->id);
	return 0;
}

static int turn_id(void *arg, const struct store_turn *r)
{
	add(arg, r->id);
	return 0;
}

static int kv_key(void *arg, const char *key, const void *value, size_t len)
{
	char kv[256];
	snprintf(kv, sizeof(kv), "%s=%.*s", key, (int)len, (const char *)value);
	add(arg, kv);
	return 0;
}

static const char *sessions(struct store *S, const char *parent, struct list *l)
{
	l->s[0] = 0;
	assert_true(store_session_list(S, parent, ses_id, l) >= 0);
	return l->s;
}

static const char *messages(struct store *S, const char *sid, struct list *l)
{
	l->s[0] = 0;
	assert_true(store_message_list(S, sid, msg_id, l) >= 0);
	return l->s;
}

static const char *parts(struct store *S, const char *mid, struct list *l)
{
	l->s[0] = 0;
	assert_true(store_part_list(S, mid, part_id, l) >= 0);
	return l->s;
}

static const char *turns(struct store *S, const char *state, struct list *l)
{
	l->s[0] = 0;
	assert_true(store_turn_list_state(S, state, turn_id, l) >= 0);
	return l->s;
}

static const char *keys(struct store *S, const char *owner, const char *prefix, struct list *l)
{
	l->s[0] = 0;
	assert_true(store_kv_list(S, owner, prefix, kv_key, l) >= 0);
	return l->s;
}

/* One row copied out of a callback. */
struct copy {
	int n;
	struct store_session s;
	struct store_message m;
	struct store_part p;
	struct store_turn t;
	char *str[16];
};

static const char *keep(struct copy *c, const char *s)
{
	return s ? (c->str[c->n++ % 16] = strdup(s)) : NULL;
}

static void copy_free(struct copy *c)
{
	for (int i = 0; i < 16 && i < c->n; i++)
		free(c->str[i]);
	memset(c, 0, sizeof(*c));
}

static int got_session(void *arg, const struct store_session *r)
{
	struct copy *c = arg;
	c->s = *r;
	c->s.id = keep(c, r->id);
	c->s.parent_id = keep(c, r->parent_id);
	c->s.root_id = keep(c, r->root_id);
	c->s.parent_tool_call_id = keep(c, r->parent_tool_call_id);
	c->s.data = keep(c, r->data);
	return 0;
}

static int got_message(void *arg, const struct store_message *r)
{
	struct copy *c = arg;
	c->m = *r;
	c->m.id = keep(c, r->id);
	c->m.session_id = keep(c, r->session_id);
	c->m.role = keep(c, r->role);
	c->m.parent_id = keep(c, r->parent_id);
	c->m.turn_id = keep(c, r->turn_id);
	c->m.finish = keep(c, r->finish);
	c->m.data = keep(c, r->data);
	return 0;
}

static int got_part(void *arg, const struct store_part *r)
{
	struct copy *c = arg;
	c->p = *r;
	c->p.id = keep(c, r->id);
	c->p.message_id = keep(c, r->message_id);
	c->p.session_id = keep(c, r->session_id);
	c->p.type = keep(c, r->type);
	c->p.data = keep(c, r->data);
	return 0;
}

static int got_turn(void *arg, const struct store_turn *r)
{
	struct copy *c = arg;
	c->t = *r;
	c->t.id = keep(c, r->id);
	c->t.session_id = keep(c, r->session_id);
	c->t.user_message_id = keep(c, r->user_message_id);
	c->t.source = keep(c, r->source);
	c->t.state = keep(c, r->state);
	c->t.policy = keep(c, r->policy);
	c->t.dedupe_key = keep(c, r->dedupe_key);
	c->t.error = keep(c, r->error);
	return 0;
}

static void put_session(struct store *S, const char *id, const char *parent, int64_t updated,
			const char *data)
{
	struct store_session r = {.id = id, .parent_id = parent, .root_id = parent ? parent : id,
				  .depth = parent ? 1 : 0, .time_created = 1, .time_updated = updated,
				  .data = data ? data : "{}"};
	assert_int_equal(store_session_put(S, &r), 0);
}

static void put_message(struct store *S, const char *id, const char *sid, const char *turn)
{
	struct store_message r = {.id = id, .session_id = sid, .role = "user", .turn_id = turn,
				  .time_created = 1, .data = "{}"};
	assert_int_equal(store_message_put(S, &r), 0);
}

static void put_turn(struct store *S, const char *id, const char *sid, const char *state)
{
	struct store_turn r = {.id = id, .session_id = sid, .user_message_id = "msg_x",
			       .source = "http", .state = state, .time_created = 1};
	assert_int_equal(store_turn_put(S, &r), 0);
}

/* ---- rows ---- */

static void check_rows(struct store *S)
{
	struct copy c = {0};
	assert_int_equal(store_session_get(S, "ses_child", got_session, &c), 1);
	assert_string_equal(c.s.id, "ses_child");
	assert_string_equal(c.s.parent_id, "ses_root");
	assert_string_equal(c.s.root_id, "ses_root");
	assert_string_equal(c.s.parent_tool_call_id, "call_1");
	assert_int_equal(c.s.depth, 1);
	assert_int_equal(c.s.time_created, 1700000000123LL);
	assert_int_equal(c.s.time_updated, 1700000000456LL);
	assert_string_equal(c.s.data, "{\"title\":\"h\\u00e9 \xe2\x9c\x93\"}");
	copy_free(&c);
	assert_int_equal(store_session_get(S, "ses_root", got_session, &c), 1);
	assert_null(c.s.parent_id);
	assert_null(c.s.parent_tool_call_id);
	copy_free(&c);
	assert_int_equal(store_session_get(S, "ses_none", got_session, &c), 0);

	assert_int_equal(store_message_get(S, "msg_1", got_message, &c), 1);
	assert_string_equal(c.m.session_id, "ses_child");
	assert_string_equal(c.m.role, "assistant");
	assert_string_equal(c.m.parent_id, "msg_0");
	assert_string_equal(c.m.turn_id, "turn_1");
	assert_null(c.m.finish);
	assert_int_equal(c.m.time_created, 42);
	assert_string_equal(c.m.data, "{\"role\":\"assistant\"}");
	copy_free(&c);

	assert_int_equal(store_part_list(S, "msg_1", got_part, &c), 1);
	assert_string_equal(c.p.id, "prt_1");
	assert_string_equal(c.p.session_id, "ses_child");
	assert_string_equal(c.p.type, "text");
	assert_string_equal(c.p.data, "{\"text\":\"hello\"}");
	copy_free(&c);
	/* a part by its id (a prompt's part id is checked unused this way) */
	assert_int_equal(store_part_get(S, "prt_1", got_part, &c), 1);
	assert_string_equal(c.p.message_id, "msg_1");
	assert_string_equal(c.p.type, "text");
	assert_string_equal(c.p.data, "{\"text\":\"hello\"}");
	copy_free(&c);
	assert_int_equal(store_part_get(S, "prt_none", got_part, &c), 0);

	assert_int_equal(store_turn_list_state(S, "running", got_turn, &c), 1);
	assert_string_equal(c.t.id, "turn_1");
	assert_string_equal(c.t.user_message_id, "msg_0");
	assert_string_equal(c.t.source, "ws");
	assert_null(c.t.policy);
	assert_string_equal(c.t.dedupe_key, "k1");
	assert_null(c.t.error);
	assert_int_equal(c.t.time_created, 3);
	assert_int_equal(c.t.time_started, 0); /* stored as NULL */
	assert_int_equal(c.t.time_ended, 9);
	copy_free(&c);
}

static void rows_come_back_as_written_with_their_nulls(void **state)
{
	struct fx f;
	fx_open(&f);
	put_session(f.S, "ses_root", NULL, 5, NULL);
	struct store_session s = {.id = "ses_child", .parent_id = "ses_root", .root_id = "ses_root",
				  .parent_tool_call_id = "call_1", .depth = 1,
				  .time_created = 1700000000123LL, .time_updated = 1700000000456LL,
				  .data = "{\"title\":\"h\\u00e9 \xe2\x9c\x93\"}"};
	assert_int_equal(store_session_put(f.S, &s), 0);
	struct store_message m = {.id = "msg_1", .session_id = "ses_child", .role = "assistant",
				  .parent_id = "msg_0", .turn_id = "turn_1", .time_created = 42,
				  .data = "{\"role\":\"assistant\"}"};
	assert_int_equal(store_message_put(f.S, &m), 0);
	struct store_part p = {.id = "prt_1", .message_id = "msg_1", .session_id = "ses_child",
			       .type = "text", .data = "{\"text\":\"hello\"}"};
	assert_int_equal(store_part_put(f.S, &p), 0);
	struct store_turn t = {.id = "turn_1", .session_id = "ses_child", .user_message_id = "msg_0",
			       .source = "ws", .state = "running", .dedupe_key = "k1",
			       .time_created = 3, .time_started = 0, .time_ended = 9};
	assert_int_equal(store_turn_put(f.S, &t), 0);
	check_rows(f.S); /* not committed yet: read from the open transaction */
	assert_int_equal(store_flush(f.S), 0);
	check_rows(f.S);
	fx_reopen(&f);
	check_rows(f.S);
	fx_close(&f);
}

static void listings_keep_their_order_with_ids_compared_bytewise(void **state)
{
	struct fx f;
	struct list l;
	int64_t first = -1, last = -1;
	fx_open(&f);
	assert_int_equal(store_session_times(f.S, &first, &last), 0);
	assert_true(first == 0 && last == 0); /* no session yet */
	put_session(f.S, "ses_B", NULL, 5, NULL);
	put_session(f.S, "ses_a", NULL, 5, NULL);
	put_session(f.S, "ses_c", NULL, 9, NULL);
	put_session(f.S, "ses_cb", "ses_c", 1, NULL);
	put_session(f.S, "ses_cA", "ses_c", 2, NULL);
	put_session(f.S, "ses_c_", "ses_c", 3, NULL);
	for (int pass = 0; pass < 2; pass++) {
		/* roots and all: the most recently updated first, then by id descending */
		assert_string_equal(sessions(f.S, "", &l), "ses_c,ses_a,ses_B");
		assert_string_equal(sessions(f.S, NULL, &l), "ses_c,ses_a,ses_B,ses_c_,ses_cA,ses_cb");
		/* children: oldest id first ('A' < '_' < 'b' in bytes) */
		assert_string_equal(sessions(f.S, "ses_c", &l), "ses_cA,ses_c_,ses_cb");
		assert_int_equal(store_flush(f.S), 0);
	}
	/* messages in conversation order: by turn (none first), then by id */
	put_message(f.S, "msg_b", "ses_a", "turn_a");
	put_message(f.S, "msg_A", "ses_a", "turn_a");
	put_message(f.S, "msg_z", "ses_a", "turn_B");
	put_message(f.S, "msg_y", "ses_a", NULL);
	put_message(f.S, "msg_other", "ses_B", "turn_a");
	assert_string_equal(messages(f.S, "ses_a", &l), "msg_y,msg_z,msg_A,msg_b");
	l.s[0] = 0;
	assert_int_equal(store_message_list_turns(f.S, "ses_a", "turn_B", "turn_a", msg_id, &l), 2);
	assert_string_equal(l.s, "msg_A,msg_b");
	l.s[0] = 0;
	assert_int_equal(store_message_list_turns(f.S, "ses_a", "", "turn_B", msg_id, &l), 1);
	assert_string_equal(l.s, "msg_z");
	/* parts by id; turns in a state by id */
	const char *pids[] = {"prt_b", "prt_A", "prt__"};
	for (int i = 0; i < 3; i++) {
		struct store_part p = {.id = pids[i], .message_id = "msg_A", .session_id = "ses_a",
				       .type = "text", .data = "{}"};
		assert_int_equal(store_part_put(f.S, &p), 0);
	}
	assert_string_equal(parts(f.S, "msg_A", &l), "prt_A,prt__,prt_b");
	put_turn(f.S, "turn_b", "ses_a", "queued");
	put_turn(f.S, "turn_C", "ses_a", "queued");
	put_turn(f.S, "turn_a", "ses_a", "completed");
	assert_string_equal(turns(f.S, "queued", &l), "turn_C,turn_b");
	/* a listing stops when its callback says so */
	l.s[0] = 0;
	assert_int_equal(store_session_list(f.S, NULL, ses_id, &l), 6);
	/* the oldest creation and the newest update over every session */
	assert_int_equal(store_session_times(f.S, &first, &last), 0);
	assert_true(first == 1 && last == 9);
	fx_reopen(&f);
	assert_string_equal(messages(f.S, "ses_a", &l), "msg_y,msg_z,msg_A,msg_b");
	assert_string_equal(sessions(f.S, "ses_c", &l), "ses_cA,ses_c_,ses_cb");
	fx_close(&f);
}

static void a_second_put_replaces_the_row(void **state)
{
	struct fx f;
	struct list l;
	struct copy c = {0};
	fx_open(&f);
	put_session(f.S, "ses_1", NULL, 1, "{\"v\":1}");
	assert_int_equal(store_flush(f.S), 0);
	put_session(f.S, "ses_1", NULL, 2, "{\"v\":2}");
	put_turn(f.S, "turn_1", "ses_1", "queued");
	put_turn(f.S, "turn_1", "ses_1", "running");
	assert_int_equal(store_flush(f.S), 0);
	put_turn(f.S, "turn_1", "ses_1", "completed");
	assert_int_equal(store_session_get(f.S, "ses_1", got_session, &c), 1);
	assert_string_equal(c.s.data, "{\"v\":2}");
	assert_int_equal(c.s.time_updated, 2);
	copy_free(&c);
	assert_string_equal(sessions(f.S, NULL, &l), "ses_1");
	assert_string_equal(turns(f.S, "completed", &l), "turn_1");
	assert_string_equal(turns(f.S, "running", &l), "");
	/* a part's text replaced in place */
	struct store_part p = {.id = "prt_1", .message_id = "msg_1", .session_id = "ses_1",
			       .type = "text", .data = "{\"text\":\"a\"}"};
	assert_int_equal(store_part_put(f.S, &p), 0);
	assert_int_equal(store_part_set_data(f.S, "prt_1", "{\"text\":\"ab\"}"), 0);
	assert_int_equal(store_flush(f.S), 0);
	assert_int_equal(store_part_set_data(f.S, "prt_1", "{\"text\":\"abc\"}"), 0);
	fx_reopen(&f);
	assert_int_equal(store_part_list(f.S, "msg_1", got_part, &c), 1);
	assert_string_equal(c.p.data, "{\"text\":\"abc\"}");
	copy_free(&c);
	assert_int_equal(rows(&f, "turn", "turn_1"), 1);
	fx_close(&f);
}

static void deleting_a_session_takes_its_messages_parts_and_turns(void **state)
{
	struct fx f;
	struct list l;
	fx_open(&f);
	put_session(f.S, "ses_1", NULL, 1, NULL);
	put_session(f.S, "ses_2", NULL, 1, NULL);
	put_message(f.S, "msg_1", "ses_1", "turn_1");
	put_message(f.S, "msg_2", "ses_2", "turn_2");
	struct store_part p = {.id = "prt_1", .message_id = "msg_1", .session_id = "ses_1",
			       .type = "text", .data = "{}"};
	assert_int_equal(store_part_put(f.S, &p), 0);
	put_turn(f.S, "turn_1", "ses_1", "queued");
	put_turn(f.S, "turn_2", "ses_2", "queued");
	assert_int_equal(store_flush(f.S), 0);
	assert_int_equal(store_session_delete(f.S, "ses_1"), 0);
	assert_int_equal(store_flush(f.S), 0);
	assert_string_equal(sessions(f.S, NULL, &l), "ses_2");
	assert_string_equal(messages(f.S, "ses_1", &l), "");
	assert_string_equal(parts(f.S, "msg_1", &l), "");
	assert_string_equal(turns(f.S, "queued", &l), "turn_2");
	assert_string_equal(messages(f.S, "ses_2", &l), "msg_2");
	fx_close(&f);
}

static void single_rows_are_deleted_and_turns_found_by_id_and_by_order(void **state)
{
	struct fx f;
	struct list l;
	struct copy c = {0};
	fx_open(&f);
	put_session(f.S, "ses_1", NULL, 1, NULL);
	put_message(f.S, "msg_1", "ses_1", "turn_a");
	put_message(f.S, "msg_2", "ses_1", "turn_a");
	const char *pids[] = {"prt_1", "prt_2", "prt_3"};
	for (int i = 0; i < 3; i++) {
		struct store_part p = {.id = pids[i], .message_id = i < 2 ? "msg_1" : "msg_2",
				       .session_id = "ses_1", .type = "text", .data = "{}"};
		assert_int_equal(store_part_put(f.S, &p), 0);
	}
	put_turn(f.S, "turn_B", "ses_1", "completed");
	put_turn(f.S, "turn_a", "ses_1", "completed");
	put_turn(f.S, "turn_c", "ses_1", "queued");
	put_turn(f.S, "turn_0", "ses_other", "completed");
	assert_int_equal(store_flush(f.S), 0);
	/* by id; the one just before another in the session (ids compared bytewise) */
	assert_int_equal(store_turn_get(f.S, "turn_a", got_turn, &c), 1);
	assert_string_equal(c.t.session_id, "ses_1");
	copy_free(&c);
	assert_int_equal(store_turn_get(f.S, "turn_none", got_turn, &c), 0);
	assert_int_equal(store_turn_before(f.S, "ses_1", "turn_c", got_turn, &c), 1);
	assert_string_equal(c.t.id, "turn_a");
	copy_free(&c);
	assert_int_equal(store_turn_before(f.S, "ses_1", "turn_a", got_turn, &c), 1);
	assert_string_equal(c.t.id, "turn_B");
	copy_free(&c);
	assert_int_equal(store_turn_before(f.S, "ses_1", "turn_B", got_turn, &c), 0);
	/* a message goes with its parts; a part and a turn alone */
	assert_int_equal(store_message_delete(f.S, "msg_1"), 0);
	assert_int_equal(store_part_delete(f.S, "prt_3"), 0);
	assert_int_equal(store_turn_delete(f.S, "turn_a"), 0);
	for (int pass = 0; pass < 2; pass++) {
		assert_string_equal(messages(f.S, "ses_1", &l), "msg_2");
		assert_string_equal(parts(f.S, "msg_1", &l), "");
		assert_string_equal(parts(f.S, "msg_2", &l), "");
		assert_int_equal(store_turn_get(f.S, "turn_a", got_turn, &c), 0);
		assert_int_equal(store_turn_before(f.S, "ses_1", "turn_c", got_turn, &c), 1);
		assert_string_equal(c.t.id, "turn_B");
		copy_free(&c);
		fx_reopen(&f);
	}
	assert_int_equal(rows(&f, "part", "prt_1") + rows(&f, "part", "prt_2"), 0);
	fx_close(&f);
}

/* ---- durability ---- */

static void reads_see_writes_made_between_other_reads(void **state)
{
	struct fx f;
	struct list l;
	fx_open(&f);
	put_session(f.S, "ses_1", NULL, 1, NULL);
	assert_string_equal(sessions(f.S, NULL, &l), "ses_1");
	put_session(f.S, "ses_2", NULL, 2, NULL);
	assert_string_equal(sessions(f.S, NULL, &l), "ses_2,ses_1");
	put_session(f.S, "ses_3", NULL, 3, NULL);
	assert_int_equal(rows(&f, "session", "ses_1"), 0); /* nothing committed yet */
	assert_int_equal(store_flush(f.S), 0);
	assert_int_equal(rows(&f, "session", "ses_1") + rows(&f, "session", "ses_3"), 2);
	fx_reopen(&f);
	assert_string_equal(sessions(f.S, NULL, &l), "ses_3,ses_2,ses_1");
	fx_close(&f);
}

static int committed(struct h *h, void *arg)
{
	struct fx *f = arg;
	return rows(f, "session", "ses_timer") == 1;
}

static void a_mark_and_its_commit_make_writes_durable_and_the_timer_commits_the_rest(void **state)
{
	struct fx f;
	fx_open(&f);
	uint64_t mark = store_mark(f.S);
	put_session(f.S, "ses_1", NULL, 1, NULL);
	uint64_t written = store_mark(f.S);
	assert_true(written > mark);
	assert_int_equal(rows(&f, "session", "ses_1"), 0);
	assert_int_equal(store_commit_since(f.S, mark), 0);
	assert_true(store_durable(f.S) >= written);
	assert_int_equal(rows(&f, "session", "ses_1"), 1);
	/* without a flush, the commit timer (STORE_COMMIT_MS) writes it */
	put_session(f.S, "ses_timer", NULL, 1, NULL);
	assert_true(h_until(&f.h, committed, &f, 5000));
	assert_null(store_failure(f.S));
	assert_int_equal(store_pending_bytes(f.S), 0);
	fx_close(&f);
}

/* ---- the event log ---- */

struct found {
	int64_t first, last;
	int calls;
	unsigned char data[64];
	size_t len;
};

static int found_batch(void *arg, int64_t first, int64_t last, const void *data, size_t len)
{
	struct found *x = arg;
	x->first = first;
	x->last = last;
	x->calls++;
	x->len = len < sizeof(x->data) ? len : sizeof(x->data);
	memcpy(x->data, data, x->len);
	return 0;
}

static int64_t first_after(struct store *S, int64_t after, struct found *x)
{
	memset(x, 0, sizeof(*x));
	assert_true(store_event_batch_after(S, after, found_batch, x) >= 0);
	assert_true(x->calls <= 1);
	return x->calls ? x->first : 0;
}

static void event_batches_are_found_by_their_seqs_kept_byte_for_byte_and_pruned_whole(void **state)
{
	struct fx f;
	struct found x;
	fx_open(&f);
	assert_int_equal(store_event_max_seq(f.S), 0);
	assert_int_equal(store_event_min_seq(f.S), 0);
	assert_int_equal(first_after(f.S, 0, &x), 0);
	const int64_t b[][2] = {{1, 3}, {4, 10}, {11, 11}, {12, 20}};
	for (int i = 0; i < 4; i++) {
		unsigned char data[16];
		for (int k = 0; k < 16; k++)
			data[k] = (unsigned char)(k * 17 + b[i][0]); /* zero and high bytes */
		data[0] = 0;
		data[1] = 0xff;
		assert_int_equal(store_event_batch_put(f.S, b[i][0], b[i][1], data, sizeof(data)), 0);
		if (i == 1)
			assert_int_equal(store_flush(f.S), 0);
	}
	for (int pass = 0; pass < 2; pass++) {
		assert_int_equal(store_event_min_seq(f.S), 1);
		assert_int_equal(store_event_max_seq(f.S), 20);
		const int64_t cases[][2] = {{0, 1}, {2, 1}, {3, 4}, {5, 4}, {9, 4}, {10, 11},
					    {11, 12}, {19, 12}, {20, 0}, {99, 0}};
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			assert_int_equal(first_after(f.S, cases[i][0], &x), cases[i][1]);
		first_after(f.S, 5, &x);
		assert_int_equal(x.last, 10);
		assert_int_equal(x.len, 16);
		assert_int_equal(x.data[0], 0);
		assert_int_equal(x.data[1], 0xff);
		assert_int_equal(x.data[15], (unsigned char)(15 * 17 + 4));
		fx_reopen(&f);
	}
	/* keep the newest 10 events: batches wholly older go, the one holding seq 11 stays */
	assert_int_equal(store_event_prune(f.S, 10), 0);
	assert_int_equal(store_event_min_seq(f.S), 11);
	assert_int_equal(first_after(f.S, 0, &x), 11);
	fx_reopen(&f);
	assert_int_equal(store_event_min_seq(f.S), 11);
	fx_close(&f);
}

static void a_seq_reservation_survives_a_reopen(void **state)
{
	struct fx f;
	fx_open(&f);
	assert_int_equal(store_seq_reserved(f.S), 0);
	assert_int_equal(store_seq_reserve(f.S, 8192), 0);
	assert_int_equal(store_seq_reserved(f.S), 8192);
	assert_int_equal(store_seq_reserve(f.S, 16384), 0);
	fx_reopen(&f);
	assert_int_equal(store_seq_reserved(f.S), 16384);
	fx_close(&f);
}

/* ---- the kv store ---- */

static int kv_value(void *arg, const char *key, const void *value, size_t len)
{
	memcpy(arg, value, len);
	((char *)arg)[len] = 0;
	return 0;
}

static void kv_values_are_bytes_listed_by_prefix_in_byte_order(void **state)
{
	struct fx f;
	struct list l;
	char v[64];
	fx_open(&f);
	assert_int_equal(store_kv_put(f.S, "plug", "k/b", "2", 1), 0);
	assert_int_equal(store_kv_put(f.S, "plug", "k/A", "1", 1), 0);
	assert_int_equal(store_kv_put(f.S, "plug", "k/_", "", 0), 0);
	assert_int_equal(store_kv_put(f.S, "plug", "other", "x", 1), 0);
	assert_int_equal(store_kv_put(f.S, "else", "k/c", "y", 1), 0);
	assert_int_equal(store_kv_put(f.S, "plug", "bin", "a\0b\xff", 4), 0);
	assert_string_equal(keys(f.S, "plug", "k/", &l), "k/A=1,k/_=,k/b=2");
	assert_int_equal(store_flush(f.S), 0);
	assert_int_equal(store_kv_delete(f.S, "plug", "k/b"), 0);
	assert_string_equal(keys(f.S, "plug", "k/", &l), "k/A=1,k/_=");
	fx_reopen(&f);
	assert_string_equal(keys(f.S, "plug", "k/", &l), "k/A=1,k/_=");
	assert_int_equal(store_kv_get(f.S, "plug", "k/A", kv_value, v), 1);
	assert_string_equal(v, "1");
	assert_int_equal(store_kv_get(f.S, "plug", "k/b", kv_value, v), 0);
	char bin[8] = "";
	assert_int_equal(store_kv_get(f.S, "plug", "bin", kv_value, bin), 1);
	assert_memory_equal(bin, "a\0b\xff", 4);
	fx_close(&f);
}

/* ---- a failing database ---- */

static int writing(struct h *h, void *arg)
{
	return store_failure(((struct fx *)arg)->S) == NULL;
}

static void a_failing_database_refuses_writes_naming_why_and_recovers_without_a_reopen(void **state)
{
	struct fx f;
	struct list l;
	char v[64];
	fx_open(&f);
	put_session(f.S, "ses_acked", NULL, 1, NULL);
	assert_int_equal(store_flush(f.S), 0);
	B->down();
	put_session(f.S, "ses_kept", NULL, 2, NULL);
	assert_int_equal(store_flush(f.S), -1);
	const char *why = store_failure(f.S);
	assert_non_null(why);
	if (!strstr(why, B->why))
		fail_msg("store_failure names \"%s\", not %s", why, B->why);
	/* a durable write made now is refused and forgotten: never written later */
	uint64_t mark = store_mark(f.S);
	put_session(f.S, "ses_refused", NULL, 3, NULL);
	assert_int_equal(store_commit_since(f.S, mark), -1);
	/* writes are kept meanwhile, and the kv store answers from them */
	assert_int_equal(store_kv_put(f.S, "plug", "k", "kept", 4), 0);
	assert_int_equal(store_kv_get(f.S, "plug", "k", kv_value, v), 1);
	assert_string_equal(v, "kept");
	assert_true(store_pending_bytes(f.S) > 0);
	B->up();
	assert_true(h_until(&f.h, writing, &f, 20000));
	assert_int_equal(store_flush(f.S), 0);
	assert_int_equal(rows(&f, "session", "ses_acked"), 1);
	assert_int_equal(rows(&f, "session", "ses_kept"), 1);
	assert_int_equal(rows(&f, "session", "ses_refused"), 0);
	assert_string_equal(sessions(f.S, NULL, &l), "ses_kept,ses_acked");
	fx_reopen(&f);
	assert_int_equal(store_kv_get(f.S, "plug", "k", kv_value, v), 1);
	assert_string_equal(v, "kept");
	fx_close(&f);
}

static void text_that_is_not_utf8_does_not_stop_the_store(void **state)
{
	struct fx f;
	struct copy c = {0};
	fx_open(&f);
	struct store_turn t = {.id = "turn_1", .session_id = "ses_1", .user_message_id = "msg_1",
			       .source = "http", .state = "failed", .dedupe_key = "key \xc3\x28",
			       .error = "provider said \xff\xfe!", .time_created = 1};
	assert_int_equal(store_turn_put(f.S, &t), 0);
	put_session(f.S, "ses_1", NULL, 1, NULL);
	assert_int_equal(store_flush(f.S), 0);
	assert_null(store_failure(f.S));
	fx_reopen(&f);
	assert_int_equal(store_turn_list_state(f.S, "failed", got_turn, &c), 1);
	if (B->utf8_exact) {
		assert_string_equal(c.t.error, "provider said \xff\xfe!");
		assert_string_equal(c.t.dedupe_key, "key \xc3\x28");
	} else { /* each byte that starts no character becomes U+FFFD */
		assert_string_equal(c.t.error, "provider said \xef\xbf\xbd\xef\xbf\xbd!");
		assert_string_equal(c.t.dedupe_key, "key \xef\xbf\xbd(");
	}
	copy_free(&c);
	fx_close(&f);
}

static void a_database_from_a_newer_build_is_refused(void **state)
{
	struct fx f;
	fx_open(&f);
	store_close(f.S);
	f.S = NULL;
	free(B->peek(f.where, B->newer));
	struct err e = {0};
	assert_null(store_open(f.where, f.h.L, &e));
	assert_non_null(strstr(e.msg, "newer than this build"));
	loop_destroy(f.h.L);
}

/* ---- PostgreSQL only ---- */

static void pg_a_second_gateway_on_the_same_database_is_refused_naming_the_first(void **state)
{
	struct fx f;
	fx_open(&f);
	struct err e = {0};
	assert_null(store_open(f.where, f.h.L, &e));
	assert_int_equal(e.code, ERR_BUSY);
	assert_non_null(strstr(e.msg, "in use by another gateway"));
	char pid[32];
	snprintf(pid, sizeof(pid), "agentgate pid %ld", (long)getpid());
	assert_non_null(strstr(e.msg, pid));
	store_close(f.S);
	f.S = NULL;
	fx_reopen(&f); /* the lock went with the first one's connection */
	fx_close(&f);
}

static void pg_a_connection_killed_mid_batch_is_reconnected_and_nothing_is_lost(void **state)
{
	struct fx f;
	struct list l;
	fx_open(&f);
	put_session(f.S, "ses_1", NULL, 1, NULL);
	assert_int_equal(store_flush(f.S), 0);
	put_session(f.S, "ses_2", NULL, 2, NULL);
	assert_string_equal(sessions(f.S, NULL, &l), "ses_2,ses_1"); /* into the server's transaction */
	char sql[300];
	snprintf(sql, sizeof(sql), "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity"
		 " WHERE datname = '%s'", strrchr(f.where, '/') + 1);
	char *n = pgtmp_query(&pg, "postgres", sql);
	assert_non_null(n);
	assert_string_equal(n, "1");
	free(n);
	put_session(f.S, "ses_3", NULL, 3, NULL);
	/* the transaction died with its connection: this read or the next commit says so */
	l.s[0] = 0;
	if (store_session_list(f.S, NULL, ses_id, &l) >= 0)
		assert_int_equal(store_flush(f.S), -1);
	assert_non_null(store_failure(f.S));
	assert_true(h_until(&f.h, writing, &f, 20000));
	assert_int_equal(store_flush(f.S), 0);
	assert_string_equal(sessions(f.S, NULL, &l), "ses_3,ses_2,ses_1");
	assert_int_equal(rows(&f, "session", "ses_2"), 1);
	fx_close(&f);
}

static void pg_a_commit_sent_twice_does_no_harm(void **state)
{
	struct fx f;
	struct found x;
	fx_open(&f);
	/* a retry after a commit whose answer was lost repeats every write, event batches
	 * included */
	assert_int_equal(store_event_batch_put(f.S, 1, 2, "ab", 2), 0);
	assert_int_equal(store_flush(f.S), 0);
	assert_int_equal(store_event_batch_put(f.S, 1, 2, "ab", 2), 0);
	assert_int_equal(store_flush(f.S), 0);
	assert_null(store_failure(f.S));
	assert_int_equal(first_after(f.S, 0, &x), 1);
	assert_int_equal(x.last, 2);
	fx_close(&f);
}

static int slow(struct h *h, void *arg)
{
	return store_slow(((struct fx *)arg)->S);
}

static int not_slow(struct h *h, void *arg)
{
	return !store_slow(((struct fx *)arg)->S) && store_failure(((struct fx *)arg)->S) == NULL;
}

static void pg_a_commit_held_up_in_postgresql_does_not_hold_the_loop(void **state)
{
	struct fx f;
	fx_open(&f);
	put_session(f.S, "ses_1", NULL, 1, NULL);
	assert_int_equal(store_flush(f.S), 0);
	/* another connection holds the table: the next commit waits inside PostgreSQL */
	PGconn *c = PQconnectdb(f.where);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	PQclear(PQexec(c, "BEGIN"));
	PGresult *r = PQexec(c, "LOCK TABLE session IN ACCESS EXCLUSIVE MODE");
	assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	put_session(f.S, "ses_2", NULL, 2, NULL);
	/* the answer waits a bounded time for its commit, then says it is not durable yet */
	assert_int_equal(store_flush(f.S), STORE_LATE);
	assert_true(h_until(&f.h, slow, &f, 5000));
	const char *why = store_failure(f.S);
	assert_non_null(why);
	assert_non_null(strstr(why, "PostgreSQL is slow: a commit has been in progress"));
	/* reads are refused at once rather than queued behind it; writes are kept */
	struct list l;
	l.s[0] = 0;
	assert_int_equal(store_session_list(f.S, NULL, ses_id, &l), -1);
	put_session(f.S, "ses_3", NULL, 3, NULL);
	PQclear(PQexec(c, "COMMIT"));
	PQfinish(c);
	assert_true(h_until(&f.h, not_slow, &f, 10000));
	assert_int_equal(store_flush(f.S), 0);
	assert_string_equal(sessions(f.S, NULL, &l), "ses_3,ses_2,ses_1");
	fx_close(&f);
}

int main(int argc, char **argv)
{
	const char *which = argc > 1 ? argv[1] : "sqlite";
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (!strcmp(backends[i].name, which))
			B = &backends[i];
	if (!B) {
		fprintf(stderr, "usage: %s sqlite|postgres\n", argv[0]);
		return 2;
	}
	log_init_from_env(LOG_WARN);
	snprintf(sqlite_root, sizeof(sqlite_root), "/tmp/agentgate-conf-XXXXXX");
	if (!mkdtemp(sqlite_root))
		return 1;
	/* before the first store: the fault-injecting VFS reads this variable once */
	snprintf(faults, sizeof(faults), "%s/faults", sqlite_root);
	setenv("AGENTGATE_STORE_FAULTS", faults, 1);
	if (B == &backends[1]) {
		int rc = pgtmp_start(&pg);
		if (rc) {
			fprintf(stderr, "test_store_conformance: cannot start PostgreSQL%s\n",
				rc == PGTMP_NONE ? ": it is not installed (contrib/deps.sh --test)" : "");
			return 1;
		}
	}
	const struct CMUnitTest common[] = {
		cmocka_unit_test(rows_come_back_as_written_with_their_nulls),
		cmocka_unit_test(listings_keep_their_order_with_ids_compared_bytewise),
		cmocka_unit_test(a_second_put_replaces_the_row),
		cmocka_unit_test(deleting_a_session_takes_its_messages_parts_and_turns),
		cmocka_unit_test(single_rows_are_deleted_and_turns_found_by_id_and_by_order),
		cmocka_unit_test(reads_see_writes_made_between_other_reads),
		cmocka_unit_test(a_mark_and_its_commit_make_writes_durable_and_the_timer_commits_the_rest),
		cmocka_unit_test(event_batches_are_found_by_their_seqs_kept_byte_for_byte_and_pruned_whole),
		cmocka_unit_test(a_seq_reservation_survives_a_reopen),
		cmocka_unit_test(kv_values_are_bytes_listed_by_prefix_in_byte_order),
		cmocka_unit_test(a_failing_database_refuses_writes_naming_why_and_recovers_without_a_reopen),
		cmocka_unit_test(text_that_is_not_utf8_does_not_stop_the_store),
		cmocka_unit_test(a_database_from_a_newer_build_is_refused),
	};
	const struct CMUnitTest pg_only[] = {
		cmocka_unit_test(pg_a_second_gateway_on_the_same_database_is_refused_naming_the_first),
		cmocka_unit_test(pg_a_connection_killed_mid_batch_is_reconnected_and_nothing_is_lost),
		cmocka_unit_test(pg_a_commit_sent_twice_does_no_harm),
		cmocka_unit_test(pg_a_commit_held_up_in_postgresql_does_not_hold_the_loop),
	};
	int failed = cmocka_run_group_tests_name(B->name, common, NULL, NULL);
	if (B == &backends[1])
		failed += cmocka_run_group_tests_name("postgres only", pg_only, NULL, NULL);
	pgtmp_destroy(&pg);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", sqlite_root);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", sqlite_root);
	return failed ? 1 : 0;
}
