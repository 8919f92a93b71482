#include "store_int.h"
#include "log.h"
#include "store_faults.h"
#include "vec.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Versioned migrations: entry i moves the schema from user_version i to i+1. */
static const char *const migrations[] = {
	"CREATE TABLE session(id TEXT PRIMARY KEY, parent_id TEXT, root_id TEXT NOT NULL,"
	" parent_tool_call_id TEXT, depth INTEGER NOT NULL, time_created INTEGER NOT NULL,"
	" time_updated INTEGER NOT NULL, data TEXT NOT NULL);"
	"CREATE INDEX session_parent ON session(parent_id, id);"
	"CREATE TABLE message(id TEXT PRIMARY KEY, session_id TEXT NOT NULL, role TEXT NOT NULL,"
	" parent_id TEXT, turn_id TEXT, finish TEXT, time_created INTEGER NOT NULL,"
	" data TEXT NOT NULL);"
	"CREATE INDEX message_session ON message(session_id, id);"
	"CREATE TABLE part(id TEXT PRIMARY KEY, message_id TEXT NOT NULL,"
	" session_id TEXT NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL);"
	"CREATE INDEX part_message ON part(message_id, id);"
	"CREATE TABLE turn(id TEXT PRIMARY KEY, session_id TEXT NOT NULL,"
	" user_message_id TEXT NOT NULL, source TEXT NOT NULL, state TEXT NOT NULL,"
	" policy TEXT, dedupe_key TEXT, error TEXT, time_created INTEGER NOT NULL,"
	" time_started INTEGER, time_ended INTEGER);"
	"CREATE INDEX turn_session ON turn(session_id, id);"
	"CREATE INDEX turn_state ON turn(state, id);"
	"CREATE TABLE event(seq INTEGER PRIMARY KEY, session_id TEXT, path TEXT,"
	" data TEXT NOT NULL);",
	/* 2: conversation order is turn order (turn ids sort by acceptance, and turns run
	 * FIFO), then message order within the turn */
	"CREATE INDEX message_turn ON message(session_id, turn_id, id);",
	/* 3: a task's recent tool calls */
	"CREATE INDEX part_session ON part(session_id, type, id);",
	/* 4: the event log is written a batch per commit, one row per batch (a row per
	 * event cost an insert per streamed token); older single-event rows are dropped, a
	 * client resuming from before the upgrade gets a resync */
	"DROP TABLE event;"
	"CREATE TABLE event_batch(first_seq INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL,"
	" data BLOB NOT NULL);",
	/* 5: small named values: seq_reserved, the highest event seq that may have been
	 * sent (reserved durably before it is used, so a restart never reuses one) */
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
	/* 6: a small key-value store per owner (a plugin's own state) */
	"CREATE TABLE kv(owner TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
	" PRIMARY KEY(owner, key)) WITHOUT ROWID;",
};


#define SES_COLS "id, parent_id, root_id, parent_tool_call_id, depth, time_created, time_updated, data"
#define MSG_COLS "id, session_id, role, parent_id, turn_id, finish, time_created, data"
#define TURN_COLS "id, session_id, user_message_id, source, state, policy, dedupe_key, error," \
	" time_created, time_started, time_ended"

const char *const store_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN",
	[ST_COMMIT] = "COMMIT",
	[ST_SES_PUT] = "INSERT OR REPLACE INTO session(" SES_COLS ") VALUES(?,?,?,?,?,?,?,?)",
	[ST_SES_GET] = "SELECT " SES_COLS " FROM session WHERE id = ?",
	[ST_SES_ALL] = "SELECT " SES_COLS " FROM session ORDER BY time_updated DESC, id DESC",
	[ST_SES_ROOTS] = "SELECT " SES_COLS " FROM session WHERE parent_id IS NULL"
			 " ORDER BY time_updated DESC, id DESC",
	[ST_SES_CHILDREN] = "SELECT " SES_COLS " FROM session WHERE parent_id = ? ORDER BY id",
	[ST_SES_DEL] = "DELETE FROM session WHERE id = ?",
	[ST_SES_DEL_MSG] = "DELETE FROM message WHERE session_id = ?",
	[ST_SES_DEL_PART] = "DELETE FROM part WHERE session_id = ?",
	[ST_SES_DEL_TURN] = "DELETE FROM turn WHERE session_id = ?",
	[ST_MSG_PUT] = "INSERT OR REPLACE INTO message(" MSG_COLS ") VALUES(?,?,?,?,?,?,?,?)",
	[ST_MSG_LIST] = "SELECT " MSG_COLS " FROM message WHERE session_id = ? ORDER BY turn_id, id",
	[ST_MSG_GET] = "SELECT " MSG_COLS " FROM message WHERE id = ?",
	/* the messages of the turns after ?2 and up to ?3 (turn ids sort by acceptance) */
	[ST_MSG_TURNS] = "SELECT " MSG_COLS " FROM message WHERE session_id = ?1 AND"
			 " turn_id > ?2 AND turn_id <= ?3 ORDER BY turn_id, id",
	[ST_PART_PUT] = "INSERT OR REPLACE INTO part(id, message_id, session_id, type, data)"
			" VALUES(?,?,?,?,?)",
	[ST_PART_DATA] = "UPDATE part SET data = ? WHERE id = ?",
	[ST_PART_LIST] = "SELECT id, message_id, session_id, type, data FROM part"
			 " WHERE message_id = ? ORDER BY id",
	[ST_TURN_PUT] = "INSERT OR REPLACE INTO turn(" TURN_COLS ") VALUES(?,?,?,?,?,?,?,?,?,?,?)",
	[ST_TURN_STATE] = "SELECT " TURN_COLS " FROM turn WHERE state = ? ORDER BY id",
	[ST_PART_DEL] = "DELETE FROM part WHERE id = ?",
	[ST_TURN_DEL] = "DELETE FROM turn WHERE id = ?",
	[ST_TURN_GET] = "SELECT " TURN_COLS " FROM turn WHERE id = ?",
	[ST_EV_PUT] = "INSERT INTO event_batch(first_seq, last_seq, data) VALUES(?,?,?)",
	/* the first batch holding an event after ?1: batches are contiguous and ordered */
	[ST_EV_SINCE] = "SELECT first_seq, last_seq, data FROM event_batch WHERE first_seq >="
			" COALESCE((SELECT MAX(first_seq) FROM event_batch WHERE first_seq <= ?1 + 1), 0)"
			" AND last_seq > ?1 ORDER BY first_seq LIMIT 1",
	[ST_EV_MAX] = "SELECT COALESCE((SELECT last_seq FROM event_batch ORDER BY first_seq DESC"
		      " LIMIT 1), 0)",
	[ST_EV_MIN] = "SELECT COALESCE(MIN(first_seq), 0) FROM event_batch",
	/* whole batches whose every event is older than the newest ?1 */
	[ST_EV_PRUNE] = "DELETE FROM event_batch WHERE last_seq <= (SELECT MAX(last_seq)"
			" FROM event_batch) - ?",
	[ST_SEQ_PUT] = "INSERT OR REPLACE INTO meta(key, value) VALUES('seq_reserved', ?)",
	[ST_SEQ_GET] = "SELECT COALESCE((SELECT value FROM meta WHERE key = 'seq_reserved'), 0)",
	[ST_KV_PUT] = "INSERT OR REPLACE INTO kv(owner, key, value) VALUES(?,?,?)",
	[ST_KV_DEL] = "DELETE FROM kv WHERE owner = ? AND key = ?",
	[ST_KV_GET] = "SELECT key, value FROM kv WHERE owner = ? AND key = ?",
	/* keys sort bytewise (BINARY), as strcmp does: the list stops past the prefix */
	[ST_KV_LIST] = "SELECT key, value FROM kv WHERE owner = ? AND key >= ? ORDER BY key",
	[ST_MSG_DEL] = "DELETE FROM message WHERE id = ?",
	[ST_PART_DEL_MSG] = "DELETE FROM part WHERE message_id = ?",
	/* the session's turn just before ?2 in conversation order */
	[ST_TURN_BEFORE] = "SELECT " TURN_COLS " FROM turn WHERE session_id = ?1 AND id < ?2"
			   " ORDER BY id DESC LIMIT 1",
};


int store_fail_sql(struct store *S, const char *what)
{
	log_error("store: %s: %s", what, sqlite3_errmsg(S->db));
	return -1;
}

static int migrate(struct store *S, struct err *e)
{
	sqlite3_stmt *q;
	int ver = 0;
	if (sqlite3_prepare_v2(S->db, "PRAGMA user_version", -1, &q, NULL) != SQLITE_OK) {
		err_set(e, ERR_INTERNAL, "cannot read %.300s: %s", S->path, sqlite3_errmsg(S->db));
		return -1;
	}
	if (sqlite3_step(q) == SQLITE_ROW)
		ver = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	int target = (int)(sizeof(migrations) / sizeof(migrations[0]));
	if (ver > target) {
		err_set(e, ERR_INTERNAL, "%.300s has schema version %d, newer than this build knows (%d)",
			S->path, ver, target);
		return -1;
	}
	for (; ver < target; ver++) {
		char bump[64];
		snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", ver + 1);
		char *err = NULL;
		if (sqlite3_exec(S->db, "BEGIN", NULL, NULL, &err) ||
		    sqlite3_exec(S->db, migrations[ver], NULL, NULL, &err) ||
		    sqlite3_exec(S->db, bump, NULL, NULL, &err) ||
		    sqlite3_exec(S->db, "COMMIT", NULL, NULL, &err)) {
			int os = sqlite3_system_errno(S->db);
			err_set(e, ERR_INTERNAL, "cannot write %.300s (schema migration %d): %.100s%s%s%s",
				S->path, ver + 1, err ? err : "?", os ? " (" : "",
				os ? strerror(os) : "", os ? ")" : "");
			sqlite3_free(err);
			sqlite3_exec(S->db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
	}
	return 0;
}

static int wal_frames_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	(void)db;
	(void)name;
	((struct store *)arg)->wal_frames = frames;
	return SQLITE_OK;
}

/* Why the database cannot be used, for the one who asked to open it: SQLite's message
 * and the OS's reason behind it (an unwritable directory, a path that is a directory). */
static int open_failed(struct store *S, const char *what, struct err *e)
{
	int os = S->db ? sqlite3_system_errno(S->db) : 0;
	err_set(e, ERR_INTERNAL, "cannot %s %.300s: %.100s%s%s%s", what, S->path,
		S->db ? sqlite3_errmsg(S->db) : "out of memory", os ? " (" : "",
		os ? strerror(os) : "", os ? ")" : "");
	return -1;
}

static int open_db(struct store *S, const char *dir, struct err *e)
{
	if (mkdir(dir, 0700) && errno != EEXIST) {
		err_set(e, ERR_INTERNAL, "cannot create the data directory %.300s: %s", dir,
			strerror(errno));
		return -1;
	}
	snprintf(S->path, sizeof(S->path), "%s/agentgate.db", dir);
	/* serialized: the committer thread runs COMMIT on this connection while the loop
	 * keeps away from it */
	if (sqlite3_open_v2(S->path, &S->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			    SQLITE_OPEN_FULLMUTEX, store_faults_vfs()))
		return open_failed(S, "open", e);
	sqlite3_busy_timeout(S->db, 5000);
	/* WAL: readers (other connections, tests) see each commit while we keep writing.
	 * synchronous=NORMAL: a commit survives a process crash; only power loss may
	 * undo the last commits. */
	if (sqlite3_exec(S->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
			 "PRAGMA foreign_keys=OFF; PRAGMA wal_autocheckpoint=0;", NULL, NULL, NULL))
		return open_failed(S, "set up", e);
	/* after the pragmas: wal_autocheckpoint installs a WAL hook of its own */
	sqlite3_wal_hook(S->db, wal_frames_hook, S);
	return 0;
}

#define CKPT_INTERVAL_MS 500

static void *ckpt_main(void *arg)
{
	struct store *S = arg;
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(S->path, &db, SQLITE_OPEN_READWRITE, store_faults_vfs())) {
		log_error("store: checkpoint connection to %s failed; the WAL will grow", S->path);
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 1000);
	/* a connection learns the database is in WAL mode when it first reads it; until
	 * then a checkpoint is a no-op that reports -1 frames */
	sqlite3_exec(db, "PRAGMA synchronous=NORMAL; SELECT 1 FROM sqlite_master LIMIT 1",
		     NULL, NULL, NULL);
	pthread_mutex_lock(&S->ckpt_lock);
	while (!S->ckpt_stop) {
		/* asleep until a commit wrote something, then at most one checkpoint every
		 * CKPT_INTERVAL_MS: an idle server's checkpointer does not wake at all */
		while (!S->ckpt_dirty && !S->ckpt_stop)
			pthread_cond_wait(&S->ckpt_cond, &S->ckpt_lock);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += CKPT_INTERVAL_MS * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		while (!S->ckpt_stop &&
		       pthread_cond_timedwait(&S->ckpt_cond, &S->ckpt_lock, &ts) != ETIMEDOUT)
			;
		if (S->ckpt_stop)
			break;
		S->ckpt_dirty = 0;
		pthread_mutex_unlock(&S->ckpt_lock);
		/* PASSIVE: copies what it can without blocking the writer or readers */
		sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		pthread_mutex_lock(&S->ckpt_lock);
	}
	pthread_mutex_unlock(&S->ckpt_lock);
	sqlite3_close(db);
	return NULL;
}

static void ckpt_start(struct store *S)
{
	pthread_mutex_init(&S->ckpt_lock, NULL);
	pthread_cond_init(&S->ckpt_cond, NULL);
	S->ckpt_running = pthread_create(&S->ckpt_thread, NULL, ckpt_main, S) == 0;
	if (S->ckpt_running)
		pthread_setname_np(S->ckpt_thread, "ag-checkpoint");
	if (!S->ckpt_running)
		log_error("store: cannot start the checkpoint thread; the WAL will grow");
}

void store_ckpt_kick(struct store *S)
{
	if (!S->ckpt_running)
		return;
	pthread_mutex_lock(&S->ckpt_lock);
	S->ckpt_dirty = 1;
	pthread_cond_signal(&S->ckpt_cond);
	pthread_mutex_unlock(&S->ckpt_lock);
}

static void ckpt_stop(struct store *S)
{
	if (!S->ckpt_running)
		return;
	pthread_mutex_lock(&S->ckpt_lock);
	S->ckpt_stop = 1;
	pthread_cond_signal(&S->ckpt_cond);
	pthread_mutex_unlock(&S->ckpt_lock);
	pthread_join(S->ckpt_thread, NULL);
	S->ckpt_running = 0;
	pthread_cond_destroy(&S->ckpt_cond);
	pthread_mutex_destroy(&S->ckpt_lock);
}

struct store *store_open(const char *dir, struct loop *L, struct err *e)
{
	struct store *S = calloc(1, sizeof(*S));
	if (!S) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	if (open_db(S, dir, e))
		goto fail;
	if (migrate(S, e))
		goto fail;
	for (int i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(S->db, store_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &S->st[i],
				       NULL) != SQLITE_OK) {
			store_fail_sql(S, store_sql[i]);
			open_failed(S, "prepare statements on", e);
			goto fail;
		}
	}
	struct stat st;
	if (stat(S->path, &st)) {
		err_set(e, ERR_INTERNAL, "cannot stat %.300s: %s", S->path, strerror(errno));
		goto fail;
	}
	S->dev = st.st_dev;
	S->ino = st.st_ino;
	if (store_batch_start(S, L)) {
		err_set(e, ERR_INTERNAL, "cannot start the store's committer thread");
		goto fail;
	}
	ckpt_start(S);
	return S;
fail:
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(S->st[i]);
	sqlite3_close(S->db);
	free(S);
	return NULL;
}

void store_close(struct store *S)
{
	if (!S)
		return;
	store_batch_stop(S);
	ckpt_stop(S);
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(S->st[i]);
	/* leave a small WAL behind: fold it into the database now that nothing writes */
	sqlite3_wal_checkpoint_v2(S->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	sqlite3_close(S->db);
	free(S);
}

const char *store_path(struct store *S)
{
	return S->path;
}

int store_add_flush_hook(struct store *S, void (*fn)(void *arg), void *arg)
{
	if (S->nhooks == STORE_HOOKS_MAX)
		return -1;
	S->hooks[S->nhooks].fn = fn;
	S->hooks[S->nhooks].arg = arg;
	S->nhooks++;
	return 0;
}

/* A read statement, once the connection is the loop's (no commit in flight, or it
 * ended within its bound); NULL while the disk is slow. */
static sqlite3_stmt *reader(struct store *S, enum stmt s)
{
	return store_db_ready(S) ? NULL : S->st[s];
}

static void bind_text(sqlite3_stmt *q, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(q, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(q, i);
}

static const char *col(sqlite3_stmt *q, int i)
{
	return (const char *)sqlite3_column_text(q, i);
}

/* Steps statement s, handing each row to visit (non-zero stops); returns the number of
 * rows seen or -1. Bindings are cleared and the statement reset either way. */
static int each_row(struct store *S, enum stmt s, int (*visit)(sqlite3_stmt *q, void *ctx),
		    void *ctx)
{
	sqlite3_stmt *q = S->st[s];
	int rc, n = 0;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		n++;
		if (visit(q, ctx))
			break;
	}
	int bad = rc != SQLITE_ROW && rc != SQLITE_DONE;
	sqlite3_clear_bindings(q);
	sqlite3_reset(q);
	return bad ? store_fail_sql(S, store_sql[s]) : n;
}

struct visit {
	void *cb, *arg;
};

int store_session_put(struct store *S, const struct store_session *r)
{
	struct op *o = op_new(S, ST_SES_PUT);
	op_text(o, r->id);
	op_text(o, r->parent_id);
	op_text(o, r->root_id);
	op_text(o, r->parent_tool_call_id);
	op_int(o, r->depth, 0);
	op_int(o, r->time_created, 0);
	op_int(o, r->time_updated, 0);
	op_text(o, r->data);
	return op_done(S, o);
}

static int session_row(sqlite3_stmt *q, void *ctx)
{
	struct visit *v = ctx;
	struct store_session r = {
		.id = col(q, 0), .parent_id = col(q, 1), .root_id = col(q, 2),
		.parent_tool_call_id = col(q, 3), .depth = sqlite3_column_int(q, 4),
		.time_created = sqlite3_column_int64(q, 5),
		.time_updated = sqlite3_column_int64(q, 6), .data = col(q, 7),
	};
	return ((store_session_cb)v->cb)(v->arg, &r);
}

static int read_sessions(struct store *S, enum stmt s, store_session_cb cb, void *arg)
{
	struct visit v = {(void *)cb, arg};
	return each_row(S, s, session_row, &v);
}

int store_session_get(struct store *S, const char *id, store_session_cb cb, void *arg)
{
	sqlite3_stmt *q = reader(S, ST_SES_GET);
	if (!q)
		return -1;
	bind_text(q, 1, id);
	return read_sessions(S, ST_SES_GET, cb, arg);
}

int store_session_list(struct store *S, const char *parent_id, store_session_cb cb, void *arg)
{
	sqlite3_stmt *q = reader(S, ST_SES_CHILDREN);
	if (!q)
		return -1;
	if (!parent_id)
		return read_sessions(S, ST_SES_ALL, cb, arg);
	if (!*parent_id)
		return read_sessions(S, ST_SES_ROOTS, cb, arg);
	bind_text(q, 1, parent_id);
	return read_sessions(S, ST_SES_CHILDREN, cb, arg);
}

/* Logs each statement of order, n of them, with id as its one parameter. */
static int delete_by_id(struct store *S, const enum stmt *order, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++) {
		struct op *o = op_new(S, order[i]);
		op_text(o, id);
		if (op_done(S, o))
			return -1;
	}
	return 0;
}

int store_session_delete(struct store *S, const char *id)
{
	static const enum stmt order[] = {ST_SES_DEL_PART, ST_SES_DEL_MSG, ST_SES_DEL_TURN,
					  ST_SES_DEL};
	return delete_by_id(S, order, sizeof(order) / sizeof(order[0]), id);
}

int store_message_delete(struct store *S, const char *id)
{
	static const enum stmt order[] = {ST_PART_DEL_MSG, ST_MSG_DEL};
	return delete_by_id(S, order, sizeof(order) / sizeof(order[0]), id);
}

int store_part_delete(struct store *S, const char *id)
{
	static const enum stmt order[] = {ST_PART_DEL};
	return delete_by_id(S, order, 1, id);
}

int store_turn_delete(struct store *S, const char *id)
{
	static const enum stmt order[] = {ST_TURN_DEL};
	return delete_by_id(S, order, 1, id);
}

int store_message_put(struct store *S, const struct store_message *r)
{
	struct op *o = op_new(S, ST_MSG_PUT);
	op_text(o, r->id);
	op_text(o, r->session_id);
	op_text(o, r->role);
	op_text(o, r->parent_id);
	op_text(o, r->turn_id);
	op_text(o, r->finish);
	op_int(o, r->time_created, 0);
	op_text(o, r->data);
	return op_done(S, o);
}

static int message_row(sqlite3_stmt *q, void *ctx)
{
	struct visit *v = ctx;
	struct store_message r = {
		.id = col(q, 0), .session_id = col(q, 1), .role = col(q, 2),
		.parent_id = col(q, 3), .turn_id = col(q, 4), .finish = col(q, 5),
		.time_created = sqlite3_column_int64(q, 6), .data = col(q, 7),
	};
	return ((store_message_cb)v->cb)(v->arg, &r);
}

static int read_messages(struct store *S, enum stmt s, store_message_cb cb, void *arg)
{
	struct visit v = {(void *)cb, arg};
	return each_row(S, s, message_row, &v);
}

int store_message_list(struct store *S, const char *session_id, store_message_cb cb, void *arg)
{
	sqlite3_stmt *q = reader(S, ST_MSG_LIST);
	if (!q)
		return -1;
	bind_text(q, 1, session_id);
	return read_messages(S, ST_MSG_LIST, cb, arg);
}

int store_message_list_turns(struct store *S, const char *session_id, const char *after,
			     const char *upto, store_message_cb cb, void *arg)
{
	sqlite3_stmt *q = reader(S, ST_MSG_TURNS);
	if (!q)
		return -1;
	bind_text(q, 1, session_id);
	bind_text(q, 2, after);
	bind_text(q, 3, upto);
	return read_messages(S, ST_MSG_TURNS, cb, arg);
}

int store_message_get(struct store *S, const char *id, store_message_cb cb, void *arg)
{
	sqlite3_stmt *q = reader(S, ST_MSG_GET);
	if (!q)
		return -1;
	bind_text(q, 1, id);
	return read_messages(S, ST_MSG_GET, cb, arg);
}

int store_part_put(struct store *S, const struct store_part *r)
{
	struct op *o = op_new(S, ST_PART_PUT);
	op_text(o, r->id);
	op_text(o, r->message_id);
	op_text(o, r->session_id);
	op_text(o, r->type);
	op_text(o, r->data);
	return op_done(S, o);
}

int store_part_set_data(struct store *S, const char *id, const char *data)
{
	struct op *o = op_new(S, ST_PART_DATA);
	op_text(o, data);
	op_text(o, id);
	return op_done(S, o);
}

static int read_parts(struct store *S, enum stmt s, store_part_cb cb, void *arg);

int store_part_list(struct store *S, const char *message_id, store_part_cb cb, void *arg)
{
	sqlite3_stmt *q = reader(S, ST_PART_LIST);
	if (!q)
		return -1;
	bind_text(q, 1, message_id);
	return read_parts(S, ST_PART_LIST, cb, arg);
}

static int part_row(sqlite3_stmt *q, void *ctx)
{
	struct visit *v = ctx;
	struct store_part r = {
		.id = col(q, 0), .message_id = col(q, 1), .session_id = col(q, 2),
		.type = col(q, 3), .data = col(q, 4),
	};
	return ((store_part_cb)v->cb)(v->arg, &r);
}

static int read_parts(struct store *S, enum stmt s, store_part_cb cb, void *arg)
{
	struct visit v = {(void *)cb, arg};
	return each_row(S, s, part_row, &v);
}

int store_turn_put(struct store *S, const struct store_turn *r)
{
	struct op *o = op_new(S, ST_TURN_PUT);
	op_text(o, r->id);
	op_text(o, r->session_id);
	op_text(o, r->user_message_id);
	op_text(o, r->source);
	op_text(o, r->state);
	op_text(o, r->policy);
	op_text(o, r->dedupe_key);
	op_text(o, r->error);
	op_int(o, r->time_created, 0);
	op_int(o, r->time_started, 1);
	op_int(o, r->time_ended, 1);
	return op_done(S, o);
}

static int turn_row(sqlite3_stmt *q, void *ctx)
{
	struct visit *v = ctx;
	struct store_turn r = {
		.id = col(q, 0), .session_id = col(q, 1), .user_message_id = col(q, 2),
		.source = col(q, 3), .state = col(q, 4), .policy = col(q, 5),
		.dedupe_key = col(q, 6), .error = col(q, 7),
		.time_created = sqlite3_column_int64(q, 8),
		.time_started = sqlite3_column_int64(q, 9),
		.time_ended = sqlite3_column_int64(q, 10),
	};
	return ((store_turn_cb)v->cb)(v->arg, &r);
}

static int read_turns(struct store *S, enum stmt s, store_turn_cb cb, void *arg)
{
	struct visit v = {(void *)cb, arg};
	return each_row(S, s, turn_row, &v);
}

int store_turn_get(struct store *S, const char *id, store_turn_cb cb, void *arg)
{
	sqlite3_stmt *q = reader(S, ST_TURN_GET);
	if (!q)
		return -1;
	bind_text(q, 1, id);
	return read_turns(S, ST_TURN_GET, cb, arg);
}

int store_turn_list_state(struct store *S, const char *state, store_turn_cb cb, void *arg)
{
	sqlite3_stmt *q = reader(S, ST_TURN_STATE);
	if (!q)
		return -1;
	bind_text(q, 1, state);
	return read_turns(S, ST_TURN_STATE, cb, arg);
}

int store_turn_before(struct store *S, const char *session_id, const char *turn_id,
		      store_turn_cb cb, void *arg)
{
	sqlite3_stmt *q = reader(S, ST_TURN_BEFORE);
	if (!q)
		return -1;
	bind_text(q, 1, session_id);
	bind_text(q, 2, turn_id);
	return read_turns(S, ST_TURN_BEFORE, cb, arg);
}

int store_event_batch_put(struct store *S, int64_t first_seq, int64_t last_seq,
			  const void *data, size_t len)
{
	struct op *o = op_new(S, ST_EV_PUT);
	op_int(o, first_seq, 0);
	op_int(o, last_seq, 0);
	op_blob(o, data, len);
	return op_done(S, o);
}

static int event_batch_row(sqlite3_stmt *q, void *ctx)
{
	struct visit *v = ctx;
	return ((store_event_batch_cb)v->cb)(v->arg, sqlite3_column_int64(q, 0),
					       sqlite3_column_int64(q, 1), sqlite3_column_blob(q, 2),
					       (size_t)sqlite3_column_bytes(q, 2));
}

int store_event_batch_after(struct store *S, int64_t after, store_event_batch_cb cb, void *arg)
{
	sqlite3_stmt *q = reader(S, ST_EV_SINCE);
	if (!q)
		return -1;
	sqlite3_bind_int64(q, 1, after);
	struct visit v = {(void *)cb, arg};
	return each_row(S, ST_EV_SINCE, event_batch_row, &v);
}

static int64_t scalar(struct store *S, enum stmt s)
{
	sqlite3_stmt *q = reader(S, s);
	if (!q)
		return -1;
	int64_t v = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
	sqlite3_reset(q);
	return v;
}

int64_t store_event_max_seq(struct store *S)
{
	return scalar(S, ST_EV_MAX);
}

int64_t store_event_min_seq(struct store *S)
{
	return scalar(S, ST_EV_MIN);
}

int store_event_prune(struct store *S, int64_t keep)
{
	struct op *o = op_new(S, ST_EV_PRUNE);
	op_int(o, keep, 0);
	return op_done(S, o);
}

int store_seq_reserve(struct store *S, int64_t upto)
{
	struct op *o = op_new(S, ST_SEQ_PUT);
	op_int(o, upto, 0);
	return op_done(S, o);
}

int64_t store_seq_reserved(struct store *S)
{
	return scalar(S, ST_SEQ_GET);
}

/* ---- the key-value store ----
 * Reads answer from the batch log first: a value set while a commit was in flight or
 * the store was failing is in no transaction yet, but it was written. */

int store_kv_put(struct store *S, const char *owner, const char *key, const void *value,
		 size_t len)
{
	struct op *o = op_new(S, ST_KV_PUT);
	op_text(o, owner);
	op_text(o, key);
	op_blob(o, value, len);
	return op_done(S, o);
}

int store_kv_delete(struct store *S, const char *owner, const char *key)
{
	struct op *o = op_new(S, ST_KV_DEL);
	op_text(o, owner);
	op_text(o, key);
	return op_done(S, o);
}

static int kv_op(const struct op *o, const char *owner)
{
	return (o->st == ST_KV_PUT || o->st == ST_KV_DEL) && !strcmp(o->v[0].p, owner);
}

struct kv_find {
	const char *owner, *key;
	const struct op *found;
};

static int kv_find(void *arg, const struct op *o)
{
	struct kv_find *f = arg;
	if (!kv_op(o, f->owner) || strcmp(o->v[1].p, f->key))
		return 0;
	f->found = o;
	return 1;
}

static int kv_row(sqlite3_stmt *q, void *ctx)
{
	struct visit *v = ctx;
	return ((store_kv_cb)v->cb)(v->arg, col(q, 0), sqlite3_column_blob(q, 1),
				    (size_t)sqlite3_column_bytes(q, 1));
}

int store_kv_get(struct store *S, const char *owner, const char *key, store_kv_cb cb,
		 void *arg)
{
	struct kv_find f = {owner, key, NULL};
	store_log_each(S, kv_find, &f);
	if (f.found && f.found->st == ST_KV_DEL)
		return 0;
	if (f.found) {
		cb(arg, key, f.found->v[2].p, f.found->v[2].n);
		return 1;
	}
	sqlite3_stmt *q = reader(S, ST_KV_GET);
	if (!q)
		return -1;
	bind_text(q, 1, owner);
	bind_text(q, 2, key);
	struct visit v = {(void *)cb, arg};
	return each_row(S, ST_KV_GET, kv_row, &v);
}

/* A listing: the log's newest write of each key under the prefix (copied, in key order),
 * merged into the rows on disk as they come. */
struct kv_list {
	const char *owner, *prefix;
	size_t plen;
	struct kv_write {
		char *key, *value; /* value NULL: deleted */
		size_t len;
	} *w;
	int n, cap, next;
	store_kv_cb cb;
	void *arg;
	int calls, stop, oom;
};

static int kv_collect(void *arg, const struct op *o)
{
	struct kv_list *l = arg;
	if (!kv_op(o, l->owner) || strncmp(o->v[1].p, l->prefix, l->plen))
		return 0;
	for (int i = 0; i < l->n; i++)
		if (!strcmp(l->w[i].key, o->v[1].p))
			return 0; /* a newer write of the key came first */
	void *grown = vec_reserve(l->w, &l->cap, l->n, sizeof(*l->w));
	if (!grown)
		return l->oom = 1;
	l->w = grown;
	struct kv_write *w = &l->w[l->n++];
	*w = (struct kv_write){.key = strdup(o->v[1].p), .len = o->v[2].n};
	if (o->st == ST_KV_PUT && (w->value = malloc(w->len + 1)))
		memcpy(w->value, o->v[2].p, w->len);
	l->oom |= !w->key || (o->st == ST_KV_PUT && !w->value);
	return l->oom;
}

static int by_key(const void *a, const void *b)
{
	return strcmp(((const struct kv_write *)a)->key, ((const struct kv_write *)b)->key);
}

static void kv_give(struct kv_list *l, const char *key, const void *value, size_t len)
{
	if (!l->stop && value) {
		l->calls++;
		l->stop = l->cb(l->arg, key, value, len) != 0;
	}
}

/* Gives the logged writes of keys before key (NULL: all that are left). */
static void kv_give_logged(struct kv_list *l, const char *key)
{
	for (; l->next < l->n && (!key || strcmp(l->w[l->next].key, key) < 0); l->next++)
		kv_give(l, l->w[l->next].key, l->w[l->next].value, l->w[l->next].len);
}

static int kv_list_row(sqlite3_stmt *q, void *ctx)
{
	struct kv_list *l = ctx;
	const char *key = col(q, 0);
	if (strncmp(key, l->prefix, l->plen))
		return 1; /* past the prefix */
	kv_give_logged(l, key);
	if (l->next < l->n && !strcmp(l->w[l->next].key, key)) {
		struct kv_write *w = &l->w[l->next++]; /* the log's is newer */
		kv_give(l, key, w->value, w->len);
	} else {
		kv_give(l, key, sqlite3_column_blob(q, 1) ? sqlite3_column_blob(q, 1) : "",
			(size_t)sqlite3_column_bytes(q, 1));
	}
	return l->stop;
}

int store_kv_list(struct store *S, const char *owner, const char *prefix, store_kv_cb cb,
		  void *arg)
{
	struct kv_list l = {.owner = owner, .prefix = prefix, .plen = strlen(prefix), .cb = cb,
			    .arg = arg};
	store_log_each(S, kv_collect, &l);
	if (!l.oom && l.n)
		qsort(l.w, (size_t)l.n, sizeof(*l.w), by_key);
	sqlite3_stmt *q = l.oom ? NULL : reader(S, ST_KV_LIST);
	int rc = -1;
	if (q) {
		bind_text(q, 1, owner);
		bind_text(q, 2, prefix);
		rc = each_row(S, ST_KV_LIST, kv_list_row, &l);
	}
	if (rc >= 0)
		kv_give_logged(&l, NULL);
	for (int i = 0; i < l.n; i++) {
		free(l.w[i].key);
		free(l.w[i].value);
	}
	free(l.w);
	return rc < 0 ? -1 : l.calls;
}
