/* store_pg: the PostgreSQL backend (libpq), with SQLite's guarantees (store_int.h).
 *
 * The loop never waits on the network for a write: apply copies the write (a pg_op,
 * its values ready for the wire) into the open transaction's list, and the committer
 * thread sends BEGIN, the list and COMMIT in one pipelined round trip when the batch is
 * handed over (store_batch.c). A read must see every write made so far, so it sends the
 * list waiting ahead of it into the server's open transaction, then the SELECT, in one
 * round trip on the loop thread, bounded by PG_READ_MS. The connection alternates
 * between the loop and the committer exactly as SQLite's does.
 *
 * A lost connection, a timeout or a failed statement fails the batch (kept and
 * retried by store_batch.c); the committer reconnects at the retry. Because a commit
 * whose answer was lost may have happened, every write is idempotent (upserts): the
 * retry may send it twice. PostgreSQL refuses invalid UTF-8 in text, so text values
 * are sent with each invalid byte replaced by U+FFFD; one bad value would otherwise
 * fail every retry of the batch. One gateway writes a database at a time: each of its
 * connections holds a session advisory lock (PG_LOCK_KEY); a second is refused at
 * start-up naming the first. Cluster nodes (a shared store, store_open_as) hold the
 * same lock shared: they exclude a single gateway, not each other, and each writes
 * only the session trees it holds the lease of (lease_pg.c). Schema migrations run
 * under a second lock (PG_MIGRATE_KEY), one node at a time. */
#include "store_int.h"
#include "jw.h"
#include "log.h"
#include "vec.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PG_READ_MS 1000    /* a read waits this long for PostgreSQL, then fails */
#define PG_COMMIT_MS 10000 /* a commit, then the connection is dropped and the batch failed */
#define PG_LOCK_KEY "1634170983" /* 0x61676767 "aggg": the writing gateway's advisory lock */
#define PG_MIGRATE_KEY "1634170984" /* the schema's migration, one connection at a time */
#define PG_LOCK_WAIT_MS 3000 /* for the lock a departed gateway's session still holds */

/* A write or a read's parameters, as libpq sends them: text and integers as text
 * (format 0, NUL-terminated), blobs as bytes (format 1). */
struct pg_op {
	enum stmt st;
	int n;
	const char *vals[OP_VALS];
	int lens[OP_VALS], fmts[OP_VALS];
	char *buf; /* every value */
};

struct pg_db {
	PGconn *conn;          /* NULL once dropped, until the committer reconnects */
	char *url;             /* as given (a password included): only to connect */
	char who[64];          /* our application_name */
	struct pg_op *pending; /* writes of the open transaction not yet sent */
	int npending, cap;
	int srv_tx;            /* the open transaction has begun on the server */
	int abort_srv;         /* a failed transaction may be open there: ROLLBACK first */
	int shared;            /* a cluster node's: the lock is held shared, commits fenced */
	struct store *S;
	char err[512];         /* why the last apply failed */
};

/* Versioned migrations: entry i moves the schema from version i to i+1 (the row of
 * agentgate_schema). Entry 1 is SQLite's schema at its version 6, in PostgreSQL's
 * words; a migration added to store_sqlite.c's list gets its form here. Text that is
 * compared or sorted is COLLATE "C": ids sort by creation bytewise, as in SQLite. */
#define ID "TEXT COLLATE \"C\""
static const char *const migrations[] = {
	"CREATE TABLE session(id " ID " PRIMARY KEY, parent_id " ID ", root_id " ID " NOT NULL,"
	" parent_tool_call_id " ID ", depth BIGINT NOT NULL, time_created BIGINT NOT NULL,"
	" time_updated BIGINT NOT NULL, data TEXT NOT NULL);"
	"CREATE INDEX session_parent ON session(parent_id, id);"
	"CREATE TABLE message(id " ID " PRIMARY KEY, session_id " ID " NOT NULL, role " ID
	" NOT NULL, parent_id " ID ", turn_id " ID ", finish " ID ", time_created BIGINT NOT NULL,"
	" data TEXT NOT NULL);"
	"CREATE INDEX message_session ON message(session_id, id);"
	"CREATE INDEX message_turn ON message(session_id, turn_id, id);"
	"CREATE TABLE part(id " ID " PRIMARY KEY, message_id " ID " NOT NULL,"
	" session_id " ID " NOT NULL, type " ID " NOT NULL, data TEXT NOT NULL);"
	"CREATE INDEX part_message ON part(message_id, id);"
	"CREATE INDEX part_session ON part(session_id, type, id);"
	"CREATE TABLE turn(id " ID " PRIMARY KEY, session_id " ID " NOT NULL,"
	" user_message_id " ID " NOT NULL, source " ID " NOT NULL, state " ID " NOT NULL,"
	" policy " ID ", dedupe_key " ID ", error TEXT, time_created BIGINT NOT NULL,"
	" time_started BIGINT, time_ended BIGINT);"
	"CREATE INDEX turn_session ON turn(session_id, id);"
	"CREATE INDEX turn_state ON turn(state, id);"
	"CREATE TABLE event_batch(first_seq BIGINT PRIMARY KEY, last_seq BIGINT NOT NULL,"
	" data BYTEA NOT NULL);"
	"CREATE TABLE meta(key " ID " PRIMARY KEY, value BIGINT NOT NULL);"
	"CREATE TABLE kv(owner " ID " NOT NULL, key " ID " NOT NULL, value BYTEA NOT NULL,"
	" PRIMARY KEY(owner, key));",
	/* 2: cluster nodes (lease_pg.c): who runs each session tree, and who is there */
	"CREATE TABLE lease(root_id " ID " PRIMARY KEY, node " ID " NOT NULL,"
	" expires_at TIMESTAMPTZ NOT NULL);"
	"CREATE INDEX lease_node ON lease(node);"
	"CREATE TABLE node(id " ID " PRIMARY KEY, url TEXT NOT NULL, started BIGINT NOT NULL,"
	" seen_at TIMESTAMPTZ NOT NULL, draining BOOLEAN NOT NULL,"
	" fenced BOOLEAN NOT NULL DEFAULT false);"
	/* a node's commit ends with this: it fails once another node fenced it (took its
	 * trees over), and its share lock on the row orders it against that fencing */
	"CREATE FUNCTION agentgate_fence(n TEXT) RETURNS void LANGUAGE plpgsql AS $f$"
	" DECLARE f BOOLEAN; BEGIN"
	" SELECT fenced INTO f FROM node WHERE id = n FOR SHARE;"
	" IF f IS NULL OR f THEN RAISE EXCEPTION 'this node (%) was fenced: another node took its"
	" session trees over, and its writes are refused', n; END IF; END $f$;",
};

#define SES_COLS "id, parent_id, root_id, parent_tool_call_id, depth, time_created, time_updated, data"
#define MSG_COLS "id, session_id, role, parent_id, turn_id, finish, time_created, data"
#define TURN_COLS "id, session_id, user_message_id, source, state, policy, dedupe_key, error," \
	" time_created, time_started, time_ended"
#define X(c) c " = EXCLUDED." c /* an upsert's column */

/* SQLite's statements (store_sqlite.c), with the same parameters in the same order;
 * INSERT OR REPLACE is an upsert, and NULL turn ids sort first as SQLite sorts them. */
static const char *const sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN",
	[ST_COMMIT] = "COMMIT",
	[ST_SES_PUT] = "INSERT INTO session(" SES_COLS ") VALUES($1,$2,$3,$4,$5,$6,$7,$8)"
		       " ON CONFLICT (id) DO UPDATE SET " X("parent_id") ", " X("root_id") ", "
		       X("parent_tool_call_id") ", " X("depth") ", " X("time_created") ", "
		       X("time_updated") ", " X("data"),
	[ST_SES_GET] = "SELECT " SES_COLS " FROM session WHERE id = $1",
	[ST_SES_ALL] = "SELECT " SES_COLS " FROM session ORDER BY time_updated DESC, id DESC",
	[ST_SES_ROOTS] = "SELECT " SES_COLS " FROM session WHERE parent_id IS NULL"
			 " ORDER BY time_updated DESC, id DESC",
	[ST_SES_CHILDREN] = "SELECT " SES_COLS " FROM session WHERE parent_id = $1 ORDER BY id",
	[ST_SES_DEL] = "DELETE FROM session WHERE id = $1",
	[ST_SES_DEL_MSG] = "DELETE FROM message WHERE session_id = $1",
	[ST_SES_DEL_PART] = "DELETE FROM part WHERE session_id = $1",
	[ST_SES_DEL_TURN] = "DELETE FROM turn WHERE session_id = $1",
	[ST_MSG_PUT] = "INSERT INTO message(" MSG_COLS ") VALUES($1,$2,$3,$4,$5,$6,$7,$8)"
		       " ON CONFLICT (id) DO UPDATE SET " X("session_id") ", " X("role") ", "
		       X("parent_id") ", " X("turn_id") ", " X("finish") ", " X("time_created")
		       ", " X("data"),
	[ST_MSG_LIST] = "SELECT " MSG_COLS " FROM message WHERE session_id = $1"
			" ORDER BY turn_id NULLS FIRST, id",
	[ST_MSG_GET] = "SELECT " MSG_COLS " FROM message WHERE id = $1",
	[ST_MSG_TURNS] = "SELECT " MSG_COLS " FROM message WHERE session_id = $1 AND"
			 " turn_id > $2 AND turn_id <= $3 ORDER BY turn_id, id",
	[ST_PART_PUT] = "INSERT INTO part(id, message_id, session_id, type, data)"
			" VALUES($1,$2,$3,$4,$5) ON CONFLICT (id) DO UPDATE SET "
			X("message_id") ", " X("session_id") ", " X("type") ", " X("data"),
	[ST_PART_DATA] = "UPDATE part SET data = $1 WHERE id = $2",
	[ST_PART_LIST] = "SELECT id, message_id, session_id, type, data FROM part"
			 " WHERE message_id = $1 ORDER BY id",
	[ST_PART_GET] = "SELECT id, message_id, session_id, type, data FROM part WHERE id = $1",
	[ST_TURN_PUT] = "INSERT INTO turn(" TURN_COLS ") VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)"
			" ON CONFLICT (id) DO UPDATE SET " X("session_id") ", "
			X("user_message_id") ", " X("source") ", " X("state") ", " X("policy") ", "
			X("dedupe_key") ", " X("error") ", " X("time_created") ", "
			X("time_started") ", " X("time_ended"),
	[ST_TURN_STATE] = "SELECT " TURN_COLS " FROM turn WHERE state = $1 ORDER BY id",
	[ST_PART_DEL] = "DELETE FROM part WHERE id = $1",
	[ST_TURN_DEL] = "DELETE FROM turn WHERE id = $1",
	[ST_TURN_GET] = "SELECT " TURN_COLS " FROM turn WHERE id = $1",
	/* an upsert, unlike SQLite's INSERT: a retried commit may write the batch twice */
	[ST_EV_PUT] = "INSERT INTO event_batch(first_seq, last_seq, data) VALUES($1,$2,$3)"
		      " ON CONFLICT (first_seq) DO UPDATE SET " X("last_seq") ", " X("data"),
	[ST_EV_SINCE] = "SELECT first_seq, last_seq, data FROM event_batch WHERE first_seq >="
			" COALESCE((SELECT MAX(first_seq) FROM event_batch"
			" WHERE first_seq <= $1::bigint + 1), 0)"
			" AND last_seq > $1::bigint ORDER BY first_seq LIMIT 1",
	[ST_EV_MAX] = "SELECT COALESCE((SELECT last_seq FROM event_batch ORDER BY first_seq DESC"
		      " LIMIT 1), 0)",
	[ST_EV_MIN] = "SELECT COALESCE(MIN(first_seq), 0) FROM event_batch",
	[ST_EV_PRUNE] = "DELETE FROM event_batch WHERE last_seq <= (SELECT MAX(last_seq)"
			" FROM event_batch) - $1::bigint",
	[ST_SEQ_PUT] = "INSERT INTO meta(key, value) VALUES('seq_reserved', $1)"
		       " ON CONFLICT (key) DO UPDATE SET " X("value"),
	[ST_SEQ_GET] = "SELECT COALESCE((SELECT value FROM meta WHERE key = 'seq_reserved'), 0)",
	[ST_KV_PUT] = "INSERT INTO kv(owner, key, value) VALUES($1,$2,$3)"
		      " ON CONFLICT (owner, key) DO UPDATE SET " X("value"),
	[ST_KV_DEL] = "DELETE FROM kv WHERE owner = $1 AND key = $2",
	[ST_KV_GET] = "SELECT key, value FROM kv WHERE owner = $1 AND key = $2",
	[ST_KV_LIST] = "SELECT key, value FROM kv WHERE owner = $1 AND key >= $2 ORDER BY key",
	[ST_MSG_DEL] = "DELETE FROM message WHERE id = $1",
	[ST_PART_DEL_MSG] = "DELETE FROM part WHERE message_id = $1",
	[ST_TURN_BEFORE] = "SELECT " TURN_COLS " FROM turn WHERE session_id = $1 AND id < $2"
			   " ORDER BY id DESC LIMIT 1",
	[ST_SES_FIRST] = "SELECT COALESCE(MIN(time_created), 0) FROM session",
	[ST_SES_LAST] = "SELECT COALESCE(MAX(time_updated), 0) FROM session",
};

static struct pg_db *DB(struct store *S)
{
	return S->db;
}

/* libpq's message on one line, without its trailing newline. */
void pg_one_line(char *out, size_t n, const char *msg)
{
	snprintf(out, n, "%s", msg && *msg ? msg : "unknown error");
	char *w = out;
	for (const char *p = out; *p; p++) /* newlines and tabs become one space */
		if (!(*p == '\n' || *p == '\t' || *p == ' ') || (w > out && w[-1] != ' '))
			*w++ = *p == '\n' || *p == '\t' ? ' ' : *p;
	*w = 0;
	for (size_t l = strlen(out); l && out[l - 1] == ' '; l--)
		out[l - 1] = 0;
}

static void quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message; /* notices ("already exists, skipping") are not the log's business */
}

/* ---- values for the wire ---- */

/* Copies n bytes of text, each byte that starts no valid UTF-8 sequence replaced by
 * U+FFFD; the length written (out NULL: only measured). */
static size_t utf8_clean(char *out, const char *s, size_t n)
{
	size_t w = 0;
	for (size_t i = 0; i < n;) {
		size_t l = (unsigned char)s[i] < 0x80 ? 1 : jw_utf8_len(s + i, n - i);
		if (out)
			memcpy(out + w, l ? s + i : "\xef\xbf\xbd", l ? l : 3);
		w += l ? l : 3;
		i += l ? l : 1;
	}
	return w;
}

static int op_fill(struct pg_op *o, enum stmt st, const struct val *v, int n)
{
	size_t need = 1;
	for (int i = 0; i < n; i++)
		need += v[i].type == V_TEXT ? utf8_clean(NULL, v[i].p, v[i].n) + 1
			: v[i].type == V_BLOB ? v[i].n : v[i].type == V_INT ? 24 : 0;
	*o = (struct pg_op){.st = st, .n = n, .buf = malloc(need)};
	if (!o->buf)
		return -1;
	char *p = o->buf;
	for (int i = 0; i < n; i++) {
		o->vals[i] = v[i].type == V_NULL ? NULL : p;
		if (v[i].type == V_TEXT) {
			p += utf8_clean(p, v[i].p, v[i].n);
			*p++ = 0;
		} else if (v[i].type == V_INT) {
			p += sprintf(p, "%lld", (long long)v[i].i) + 1;
		} else if (v[i].type == V_BLOB) {
			memcpy(p, v[i].p, v[i].n);
			o->lens[i] = (int)v[i].n;
			o->fmts[i] = 1;
			p += v[i].n;
		}
	}
	return 0;
}

static void drop_pending(struct pg_db *d)
{
	for (int i = 0; i < d->npending; i++)
		free(d->pending[i].buf);
	d->npending = 0;
}

/* ---- one round trip: commands, a sync, their results ---- */

struct trip {
	PGconn *c;
	int ms;            /* how long it may take */
	int64_t until_us;  /* mono_us() deadline */
	int want_rows;     /* keep the result that has rows (the read's) */
	PGresult *rows;
	int dead;          /* the connection cannot be used again */
	char err[400];
};

static int trip_dead(struct trip *t, const char *why)
{
	t->dead = 1;
	if (!t->err[0])
		pg_one_line(t->err, sizeof(t->err), why ? why : PQerrorMessage(t->c));
	return -1;
}

/* Waits until the socket is readable (or writable too, when asked), or the deadline. */
static int trip_wait(struct trip *t, int writable)
{
	for (;;) {
		int64_t left = (t->until_us - mono_us()) / 1000;
		if (left <= 0) {
			char why[96];
			snprintf(why, sizeof(why), "no answer within %d ms", t->ms);
			return trip_dead(t, why);
		}
		if (PQsocket(t->c) < 0)
			return trip_dead(t, NULL);
		struct pollfd p = {PQsocket(t->c), (short)(POLLIN | (writable ? POLLOUT : 0)), 0};
		int r = poll(&p, 1, (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return trip_dead(t, strerror(errno));
	}
}

static int trip_send(struct trip *t, enum stmt st, const struct pg_op *o)
{
	char name[16];
	snprintf(name, sizeof(name), "ag%d", (int)st);
	int ok = o ? PQsendQueryPrepared(t->c, name, o->n, o->vals, o->lens, o->fmts, 1)
		   : PQsendQueryPrepared(t->c, name, 0, NULL, NULL, NULL, 1);
	return ok ? 0 : trip_dead(t, NULL);
}

static int trip_rollback(struct trip *t)
{
	return PQsendQueryParams(t->c, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 1)
		       ? 0 : trip_dead(t, NULL);
}

static void trip_result(struct trip *t, PGresult *r)
{
	ExecStatusType s = PQresultStatus(r);
	if (s == PGRES_TUPLES_OK && t->want_rows && !t->rows) {
		t->rows = r;
		return;
	}
	if ((s == PGRES_FATAL_ERROR || s == PGRES_BAD_RESPONSE) && !t->err[0]) {
		const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
		pg_one_line(t->err, sizeof(t->err), m ? m : PQresultErrorMessage(r));
	}
	PQclear(r);
}

/* Sends the sync and what is queued, then reads every result up to the sync: 0, or -1
 * with err (and dead when the connection is lost or late). */
static int trip_run(struct trip *t)
{
	if (t->dead || PQpipelineSync(t->c) != 1)
		return trip_dead(t, NULL);
	int f;
	while ((f = PQflush(t->c)) == 1)
		if (trip_wait(t, 1) || !PQconsumeInput(t->c))
			return trip_dead(t, NULL);
	if (f < 0)
		return trip_dead(t, NULL);
	for (;;) {
		while (PQisBusy(t->c))
			if (trip_wait(t, 0) || !PQconsumeInput(t->c))
				return trip_dead(t, NULL);
		PGresult *r = PQgetResult(t->c);
		if (!r) {
			if (PQstatus(t->c) == CONNECTION_BAD)
				return trip_dead(t, NULL);
			continue; /* the end of one command's results */
		}
		if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			break;
		}
		trip_result(t, r);
	}
	return t->err[0] ? -1 : 0;
}

/* What a transaction's round trip starts with: ends a failed one the server may hold,
 * begins this one if it has writes and has not begun, then sends the writes waiting. */
static void trip_prefix(struct trip *t, struct pg_db *d, int begin, int *begun)
{
	*begun = 0;
	if (d->abort_srv)
		trip_rollback(t);
	if (begin && !d->srv_tx) {
		trip_send(t, ST_BEGIN, NULL);
		*begun = 1;
	}
	for (int i = 0; i < d->npending && !t->dead; i++)
		trip_send(t, d->pending[i].st, &d->pending[i]);
}

/* After a round trip of the open transaction: its writes have left, and the server
 * holds the transaction (ok), or a failed one to roll back. */
static void trip_after(struct pg_db *d, struct trip *t, int ok, int begun)
{
	drop_pending(d);
	if (t->dead) {
		PQfinish(d->conn);
		d->conn = NULL;
		d->srv_tx = d->abort_srv = 0;
		return;
	}
	d->abort_srv = !ok;
	d->srv_tx = ok && (d->srv_tx || begun);
}

/* ---- connecting ---- */

static int exec_ok(PGconn *c, const char *q, char *err, size_t n)
{
	PGresult *r = PQexec(c, q);
	ExecStatusType s = PQresultStatus(r);
	int ok = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
	if (!ok)
		pg_one_line(err, n, PQresultErrorMessage(r));
	PQclear(r);
	return ok ? 0 : -1;
}

/* Who holds the writer's lock: "pid N (application name) from ADDRESS since TIME". */
static void lock_holder(PGconn *c, char *out, size_t n)
{
	PGresult *r = PQexec(c, "SELECT a.pid, a.application_name, COALESCE(host(a.client_addr),"
			     " 'a local socket'), to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS')"
			     " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
			     " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0"
			     " AND l.objid = " PG_LOCK_KEY " AND l.objsubid = 1");
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		snprintf(out, n, "%s, connected from %s since %s (PostgreSQL backend pid %s)",
			 PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3),
			 PQgetvalue(r, 0, 0));
	else
		snprintf(out, n, "another connection");
	PQclear(r);
}

/* 0 holding the lock; 1 held by another (err says who); -1 failed. A holder may be a
 * gateway that has just exited or lost its connection, whose session the server has
 * not ended yet: the lock is waited for, up to PG_LOCK_WAIT_MS. */
static int take_lock(PGconn *c, int shared, char *err, size_t n)
{
	int64_t until = mono_us() + PG_LOCK_WAIT_MS * 1000LL;
	for (;;) {
		PGresult *r = PQexec(c, shared ? "SELECT pg_try_advisory_lock_shared(" PG_LOCK_KEY ")"
					       : "SELECT pg_try_advisory_lock(" PG_LOCK_KEY ")");
		int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
		int got = ok && PQgetvalue(r, 0, 0)[0] == 't';
		if (!ok)
			pg_one_line(err, n, PQresultErrorMessage(r));
		PQclear(r);
		if (!ok || got)
			return got ? 0 : -1;
		if (mono_us() >= until)
			break;
		struct timespec ts = {0, 50 * 1000000L};
		nanosleep(&ts, NULL);
	}
	char who[300];
	lock_holder(c, who, sizeof(who));
	snprintf(err, n, shared ? "the database is in use by a single gateway (not a cluster "
		 "node): %s" : "the database is in use by another gateway: %s", who);
	return 1;
}

static int migrate_locked(PGconn *c, char *err, size_t n);

/* Nodes starting together would each create the schema: one at a time. */
static int migrate(PGconn *c, char *err, size_t n)
{
	if (exec_ok(c, "SELECT pg_advisory_lock(" PG_MIGRATE_KEY ")", err, n))
		return -1;
	int rc = migrate_locked(c, err, n);
	char ignored[200];
	exec_ok(c, "SELECT pg_advisory_unlock(" PG_MIGRATE_KEY ")", ignored, sizeof(ignored));
	return rc;
}

static int migrate_locked(PGconn *c, char *err, size_t n)
{
	int target = (int)(sizeof(migrations) / sizeof(migrations[0])), ver = 0;
	if (exec_ok(c, "CREATE TABLE IF NOT EXISTS agentgate_schema(version INTEGER NOT NULL)",
		    err, n) || exec_ok(c, "BEGIN", err, n))
		return -1;
	PGresult *r = PQexec(c, "SELECT version FROM agentgate_schema FOR UPDATE");
	int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok)
		pg_one_line(err, n, PQresultErrorMessage(r));
	else if (PQntuples(r))
		ver = atoi(PQgetvalue(r, 0, 0));
	int fresh = ok && !PQntuples(r);
	PQclear(r);
	if (ok && ver > target) {
		snprintf(err, n, "its schema has version %d, newer than this build knows (%d)", ver,
			 target);
		ok = 0;
	}
	if (ok && fresh)
		ok = !exec_ok(c, "INSERT INTO agentgate_schema(version) VALUES(0)", err, n);
	for (; ok && ver < target; ver++) {
		char bump[96];
		snprintf(bump, sizeof(bump), "UPDATE agentgate_schema SET version = %d", ver + 1);
		if (exec_ok(c, migrations[ver], err, n) || exec_ok(c, bump, err, n)) {
			char why[400];
			snprintf(why, sizeof(why), "%s", err);
			snprintf(err, n, "schema migration %d failed: %.300s", ver + 1, why);
			ok = 0;
		}
	}
	if (ok && !exec_ok(c, "COMMIT", err, n))
		return 0;
	PQclear(PQexec(c, "ROLLBACK"));
	return -1;
}

static int prepare_all(PGconn *c, char *err, size_t n)
{
	for (int i = 0; i < ST_COUNT; i++) {
		char name[16];
		snprintf(name, sizeof(name), "ag%d", i);
		if (!sql[i]) {
			snprintf(err, n, "statement %d has no PostgreSQL form (store_pg.c)", i);
			return -1;
		}
		PGresult *r = PQprepare(c, name, sql[i], 0, NULL);
		int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		if (!ok) {
			char why[300];
			pg_one_line(why, sizeof(why), PQresultErrorMessage(r));
			snprintf(err, n, "%.200s (preparing: %.100s)", why, sql[i]);
		}
		PQclear(r);
		if (!ok)
			return -1;
	}
	return 0;
}

/* A connection ready for the store, or NULL with err (busy: another gateway holds the
 * lock). Blocking: store_open, then the committer thread. */
static PGconn *pg_connect(struct pg_db *d, int migrating, char *err, size_t n, int *busy)
{
	/* the URL's own settings come after (and override) these defaults */
	const char *const kw[] = {"connect_timeout", "keepalives", "keepalives_idle",
				  "keepalives_interval", "keepalives_count", "tcp_user_timeout",
				  "application_name", "dbname", "client_encoding", NULL};
	const char *const val[] = {"5", "1", "10", "5", "3", "15000", d->who, d->url, "UTF8",
				   NULL};
	*busy = 0;
	PGconn *c = PQconnectdbParams(kw, val, 1);
	if (!c || PQstatus(c) != CONNECTION_OK) {
		pg_one_line(err, n, c ? PQerrorMessage(c) : "out of memory");
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, quiet, NULL);
	/* the server too notices a gateway that vanished (its lock goes with the session) */
	if (exec_ok(c, "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5;"
		    " SET tcp_keepalives_count = 3", err, n))
		goto fail;
	int lock = take_lock(c, d->shared, err, n);
	*busy = lock == 1;
	if (lock || (migrating && migrate(c, err, n)) || prepare_all(c, err, n))
		goto fail;
	if (PQenterPipelineMode(c) != 1 || PQsetnonblocking(c, 1)) {
		pg_one_line(err, n, PQerrorMessage(c));
		goto fail;
	}
	return c;
fail:
	PQfinish(c);
	return NULL;
}

/* ---- the backend ---- */

static int pg_begin(struct store *S)
{
	(void)S; /* BEGIN goes with the transaction's first round trip */
	return 0;
}

static int pg_apply(struct store *S, const struct op *o)
{
	struct pg_db *d = DB(S);
	void *grown = vec_reserve(d->pending, &d->cap, d->npending, sizeof(*d->pending));
	if (!grown || op_fill(&((struct pg_op *)grown)[d->npending], o->st, o->v, o->nv)) {
		if (grown)
			d->pending = grown;
		snprintf(d->err, sizeof(d->err), "out of memory");
		return -1;
	}
	d->pending = grown;
	d->npending++;
	return 0;
}

static void pg_rollback(struct store *S)
{
	struct pg_db *d = DB(S);
	drop_pending(d);
	if (d->srv_tx)
		d->abort_srv = 1;
	d->srv_tx = 0;
}

static int64_t be_int(const unsigned char *p, int len)
{
	uint64_t v = 0;
	for (int i = 0; i < len; i++)
		v = v << 8 | p[i];
	if (len < 8 && len > 0 && (p[0] & 0x80))
		v |= ~0ULL << (8 * len); /* sign-extend int2, int4 */
	return (int64_t)v;
}

enum { OID_BOOL = 16, OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23 };

/* Results come in binary: integers big-endian, text and bytea as their bytes (libpq
 * ends every value with a NUL). */
static const char *pg_text(const struct row *r, int i)
{
	return PQgetisnull(r->q, r->i, i) ? NULL : PQgetvalue(r->q, r->i, i);
}

static int64_t pg_num(const struct row *r, int i)
{
	Oid t = PQftype(r->q, i);
	if (PQgetisnull(r->q, r->i, i) ||
	    !(t == OID_INT8 || t == OID_INT4 || t == OID_INT2 || t == OID_BOOL))
		return 0;
	return be_int((const unsigned char *)PQgetvalue(r->q, r->i, i), PQgetlength(r->q, r->i, i));
}

static const void *pg_blob(const struct row *r, int i, size_t *len)
{
	*len = (size_t)PQgetlength(r->q, r->i, i);
	return pg_text(r, i);
}

static const struct row_ops pg_row = {pg_text, pg_num, pg_blob};

/* Hands each row of a result to visit: the rows seen. */
static int visit_rows(PGresult *res, row_fn visit, void *ctx)
{
	struct row r = {.ops = &pg_row, .q = res};
	int rows = PQntuples(res);
	for (r.i = 0; r.i < rows; r.i++)
		if (visit(&r, ctx))
			return r.i + 1;
	return rows;
}

static int pg_query(struct store *S, enum stmt st, const struct val *args, int nargs,
		    row_fn visit, void *ctx)
{
	struct pg_db *d = DB(S);
	if (!d->conn)
		return -1; /* dropped: the batch has failed, and its retry reconnects */
	struct pg_op q;
	if (op_fill(&q, st, args, nargs)) {
		log_error("store: out of memory reading (%s)", sql[st]);
		return -1;
	}
	int begun;
	struct trip t = {.c = d->conn, .ms = PG_READ_MS, .until_us = mono_us() + PG_READ_MS * 1000LL,
			 .want_rows = 1};
	int had_tx = d->srv_tx || d->npending;
	trip_prefix(&t, d, d->npending > 0, &begun);
	trip_send(&t, st, &q);
	int rc = trip_run(&t);
	free(q.buf);
	trip_after(d, &t, rc == 0, begun);
	if (rc == 0) {
		rc = t.rows ? visit_rows(t.rows, visit, ctx) : 0;
		PQclear(t.rows);
		return rc;
	}
	PQclear(t.rows);
	log_error("store: PostgreSQL (%s): %s: %s", S->where, sql[st], t.err);
	/* the transaction's writes that reached the server died with it */
	if (t.dead || had_tx) {
		char why[600];
		snprintf(why, sizeof(why), "PostgreSQL at %.150s: %s", S->where, t.err);
		store_batch_lost(S, "read", why);
	}
	return -1;
}

static const char *pg_errmsg(struct store *S)
{
	return DB(S)->err;
}

static int pg_commit(struct store *S, char *err, size_t n)
{
	struct pg_db *d = DB(S);
	char why[400] = "";
	int busy;
	if (!d->conn && !(d->conn = pg_connect(d, 0, why, sizeof(why), &busy))) {
		drop_pending(d);
		snprintf(err, n, "PostgreSQL at %.150s: %s", S->where, why);
		return -1;
	}
	int begun;
	struct trip t = {.c = d->conn, .ms = PG_COMMIT_MS,
			 .until_us = mono_us() + PG_COMMIT_MS * 1000LL};
	trip_prefix(&t, d, 1, &begun);
	if (d->shared && !t.dead) { /* a cluster node: still in charge of its trees? */
		const char *node[] = {S->node};
		if (!PQsendQueryParams(t.c, "SELECT agentgate_fence($1)", 1, NULL, node, NULL,
				       NULL, 1))
			trip_dead(&t, NULL);
	}
	trip_send(&t, ST_COMMIT, NULL);
	int rc = trip_run(&t);
	trip_after(d, &t, rc == 0, begun);
	d->srv_tx = 0; /* committed, or failed: either way no longer open */
	if (rc && strstr(t.err, ") was fenced: "))
		atomic_store(&S->fenced, 1);
	if (rc)
		snprintf(err, n, "PostgreSQL at %.150s: %s", S->where, t.err);
	return rc;
}

/* The lock is let go at once, so that a gateway opened right after finds it free (the
 * server ends a closed connection's session when it gets to it). */
static void unlock(struct store *S)
{
	struct pg_db *d = DB(S);
	int begun;
	struct trip t = {.c = d->conn, .ms = PG_READ_MS, .until_us = mono_us() + PG_READ_MS * 1000LL};
	trip_prefix(&t, d, 0, &begun);
	if (!t.dead && !PQsendQueryParams(t.c, "SELECT pg_advisory_unlock_all()", 0, NULL, NULL,
					  NULL, NULL, 1))
		trip_dead(&t, NULL);
	if (trip_run(&t))
		log_error("store: PostgreSQL at %s: %s", S->where, t.err);
}

static void pg_close(struct store *S)
{
	struct pg_db *d = DB(S);
	drop_pending(d);
	free(d->pending);
	if (d->conn)
		unlock(S);
	PQfinish(d->conn); /* the server rolls back what is open */
	free(d->url);
	free(d);
	S->db = NULL;
}

static const struct store_backend pg_backend = {
	.name = "postgres", .sql = sql, .slow_ms = 250, .ack_ms = 250, .slow_what = "PostgreSQL",
	.begin = pg_begin, .apply = pg_apply, .rollback = pg_rollback, .query = pg_query,
	.errmsg = pg_errmsg, .gone = NULL, .commit = pg_commit, .close = pg_close,
};

int store_pg_describe(const char *url, char *out, size_t n, const char *what, struct err *e)
{
	char *msg = NULL;
	PQconninfoOption *opts = PQconninfoParse(url, &msg);
	if (!opts) {
		char why[300];
		pg_one_line(why, sizeof(why), msg ? msg : "out of memory");
		err_set(e, ERR_INVALID, "%s: not a PostgreSQL URL (%s)", what, why);
		PQfreemem(msg);
		return -1;
	}
	const char *user = "", *host = "", *port = "", *db = "";
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		const char *v = o->val ? o->val : "";
		if (!strcmp(o->keyword, "user"))
			user = v;
		else if (!strcmp(o->keyword, "host"))
			host = v;
		else if (!strcmp(o->keyword, "port"))
			port = v;
		else if (!strcmp(o->keyword, "dbname"))
			db = v;
	}
	snprintf(out, n, "postgres://%s%s%s%s%s/%s", user, *user ? "@" : "", host, *port ? ":" : "",
		 port, db);
	PQconninfoFree(opts);
	return 0;
}

int store_pg_open(struct store *S, const char *url, struct err *e)
{
	struct pg_db *d = calloc(1, sizeof(*d));
	if (!d || !(d->url = strdup(url))) {
		free(d);
		err_set(e, ERR_INTERNAL, "out of memory");
		return -1;
	}
	if (store_pg_describe(url, S->where, sizeof(S->where), "store", e)) {
		free(d->url);
		free(d);
		return -1;
	}
	char host[64] = "";
	gethostname(host, sizeof(host) - 1);
	/* PostgreSQL keeps 63 bytes of an application_name */
	snprintf(d->who, sizeof(d->who), "agentgate pid %ld on %.32s", (long)getpid(), host);
	d->shared = S->node[0] != 0;
	d->S = S;
	char why[400] = "";
	int busy;
	d->conn = pg_connect(d, 1, why, sizeof(why), &busy);
	if (!d->conn) {
		err_set(e, busy ? ERR_BUSY : ERR_UNAVAILABLE, "cannot use the PostgreSQL database "
			"%.200s: %.250s", S->where, why);
		free(d->url);
		free(d);
		return -1;
	}
	S->be = &pg_backend;
	S->db = d;
	return 0;
}
