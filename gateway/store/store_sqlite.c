/* store_sqlite: the default backend — one SQLite database file (WAL) opened serialized:
 * the loop applies writes and reads on it, the committer thread runs each COMMIT while
 * the loop keeps away, and a checkpoint thread with its own connection folds the WAL
 * into the file. The schema's versioned migrations and the SQL of every statement are
 * here. */
#include "store_int.h"
#include "log.h"
#include "store_faults.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define WAL_RESTART_FRAMES 4096 /* 16 MiB of 4 KiB pages */
#define CKPT_INTERVAL_MS 2000

struct sqlite_db {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	char path[4096];
	dev_t dev;
	ino_t ino;
	/* WAL checkpoints run on their own thread and connection */
	pthread_t ckpt_thread;
	int ckpt_running, ckpt_stop;
	int ckpt_dirty; /* a commit wrote since the last checkpoint (under ckpt_lock) */
	pthread_mutex_t ckpt_lock;
	pthread_cond_t ckpt_cond;
	int wal_frames; /* frames in the WAL after the last commit (committer thread) */
};

/* Versioned migrations: entry i moves the schema from user_version i to i+1. A new one
 * gets its PostgreSQL form in store_pg.c's list too. */
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

static const char *const sql[ST_COUNT] = {
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
	[ST_PART_GET] = "SELECT id, message_id, session_id, type, data FROM part WHERE id = ?",
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
	[ST_SES_FIRST] = "SELECT COALESCE(MIN(time_created), 0) FROM session",
	[ST_SES_LAST] = "SELECT COALESCE(MAX(time_updated), 0) FROM session",
};

static struct sqlite_db *DB(struct store *S)
{
	return S->db;
}

/* Why the database cannot be used, for the one who asked to open it: SQLite's message
 * and the OS's reason behind it (an unwritable directory, a path that is a directory). */
static int open_failed(struct sqlite_db *d, const char *what, struct err *e)
{
	int os = d->db ? sqlite3_system_errno(d->db) : 0;
	err_set(e, ERR_INTERNAL, "cannot %s %.300s: %.100s%s%s%s", what, d->path,
		d->db ? sqlite3_errmsg(d->db) : "out of memory", os ? " (" : "",
		os ? strerror(os) : "", os ? ")" : "");
	return -1;
}

static int migrate(struct sqlite_db *d, struct err *e)
{
	sqlite3_stmt *q;
	int ver = 0;
	if (sqlite3_prepare_v2(d->db, "PRAGMA user_version", -1, &q, NULL) != SQLITE_OK) {
		err_set(e, ERR_INTERNAL, "cannot read %.300s: %s", d->path, sqlite3_errmsg(d->db));
		return -1;
	}
	if (sqlite3_step(q) == SQLITE_ROW)
		ver = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	int target = (int)(sizeof(migrations) / sizeof(migrations[0]));
	if (ver > target) {
		err_set(e, ERR_INTERNAL, "%.300s has schema version %d, newer than this build "
			"knows (%d)", d->path, ver, target);
		return -1;
	}
	for (; ver < target; ver++) {
		char bump[64];
		snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", ver + 1);
		char *err = NULL;
		if (sqlite3_exec(d->db, "BEGIN", NULL, NULL, &err) ||
		    sqlite3_exec(d->db, migrations[ver], NULL, NULL, &err) ||
		    sqlite3_exec(d->db, bump, NULL, NULL, &err) ||
		    sqlite3_exec(d->db, "COMMIT", NULL, NULL, &err)) {
			int os = sqlite3_system_errno(d->db);
			err_set(e, ERR_INTERNAL, "cannot write %.300s (schema migration %d): %.100s%s%s%s",
				d->path, ver + 1, err ? err : "?", os ? " (" : "",
				os ? strerror(os) : "", os ? ")" : "");
			sqlite3_free(err);
			sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
	}
	return 0;
}

static int wal_frames_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	(void)db;
	(void)name;
	((struct sqlite_db *)arg)->wal_frames = frames;
	return SQLITE_OK;
}

static int open_db(struct sqlite_db *d, const char *path, struct err *e)
{
	snprintf(d->path, sizeof(d->path), "%s", path);
	/* serialized: the committer thread runs COMMIT on this connection while the loop
	 * keeps away from it */
	if (sqlite3_open_v2(d->path, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			    SQLITE_OPEN_FULLMUTEX, store_faults_vfs()))
		return open_failed(d, "open", e);
	sqlite3_busy_timeout(d->db, 5000);
	/* WAL: readers (other connections, tests) see each commit while we keep writing.
	 * synchronous=NORMAL: a commit survives a process crash; only power loss may
	 * undo the last commits. */
	if (sqlite3_exec(d->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
			 "PRAGMA foreign_keys=OFF; PRAGMA wal_autocheckpoint=0;", NULL, NULL, NULL))
		return open_failed(d, "set up", e);
	/* after the pragmas: wal_autocheckpoint installs a WAL hook of its own */
	sqlite3_wal_hook(d->db, wal_frames_hook, d);
	return 0;
}

static void *ckpt_main(void *arg)
{
	struct sqlite_db *d = arg;
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(d->path, &db, SQLITE_OPEN_READWRITE, store_faults_vfs())) {
		log_error("store: checkpoint connection to %s failed; the WAL will grow", d->path);
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 1000);
	/* a connection learns the database is in WAL mode when it first reads it; until
	 * then a checkpoint is a no-op that reports -1 frames */
	sqlite3_exec(db, "PRAGMA synchronous=NORMAL; SELECT 1 FROM sqlite_master LIMIT 1",
		     NULL, NULL, NULL);
	pthread_mutex_lock(&d->ckpt_lock);
	while (!d->ckpt_stop) {
		/* asleep until a commit wrote something, then at most one checkpoint every
		 * CKPT_INTERVAL_MS: an idle server's checkpointer does not wake at all */
		while (!d->ckpt_dirty && !d->ckpt_stop)
			pthread_cond_wait(&d->ckpt_cond, &d->ckpt_lock);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += CKPT_INTERVAL_MS * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		while (!d->ckpt_stop &&
		       pthread_cond_timedwait(&d->ckpt_cond, &d->ckpt_lock, &ts) != ETIMEDOUT)
			;
		if (d->ckpt_stop)
			break;
		d->ckpt_dirty = 0;
		pthread_mutex_unlock(&d->ckpt_lock);
		/* PASSIVE: copies what it can without blocking the writer or readers */
		sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		pthread_mutex_lock(&d->ckpt_lock);
	}
	pthread_mutex_unlock(&d->ckpt_lock);
	sqlite3_close(db);
	return NULL;
}

static void ckpt_start(struct sqlite_db *d)
{
	pthread_mutex_init(&d->ckpt_lock, NULL);
	pthread_cond_init(&d->ckpt_cond, NULL);
	d->ckpt_running = pthread_create(&d->ckpt_thread, NULL, ckpt_main, d) == 0;
	if (d->ckpt_running)
		pthread_setname_np(d->ckpt_thread, "ag-checkpoint");
	if (!d->ckpt_running)
		log_error("store: cannot start the checkpoint thread; the WAL will grow");
}

/* Committer thread: a commit wrote pages, so the checkpoint thread has work. */
static void ckpt_kick(struct sqlite_db *d)
{
	if (!d->ckpt_running)
		return;
	pthread_mutex_lock(&d->ckpt_lock);
	if (!d->ckpt_dirty) /* else it is already counting down to its next checkpoint */
		pthread_cond_signal(&d->ckpt_cond);
	d->ckpt_dirty = 1;
	pthread_mutex_unlock(&d->ckpt_lock);
}

static void ckpt_stop(struct sqlite_db *d)
{
	if (!d->ckpt_running)
		return;
	pthread_mutex_lock(&d->ckpt_lock);
	d->ckpt_stop = 1;
	pthread_cond_signal(&d->ckpt_cond);
	pthread_mutex_unlock(&d->ckpt_lock);
	pthread_join(d->ckpt_thread, NULL);
	d->ckpt_running = 0;
	pthread_cond_destroy(&d->ckpt_cond);
	pthread_mutex_destroy(&d->ckpt_lock);
}

/* ---- the backend ---- */

static int sq_begin(struct store *S)
{
	sqlite3_stmt *q = DB(S)->st[ST_BEGIN];
	int rc = sqlite3_step(q);
	sqlite3_reset(q);
	return rc == SQLITE_DONE ? 0 : -1;
}

static void bind(sqlite3_stmt *q, const struct val *args, int n)
{
	for (int i = 0; i < n; i++) {
		const struct val *v = &args[i];
		if (v->type == V_INT)
			sqlite3_bind_int64(q, i + 1, v->i);
		else if (v->type == V_TEXT)
			sqlite3_bind_text(q, i + 1, v->p, (int)v->n, SQLITE_STATIC);
		else if (v->type == V_BLOB)
			sqlite3_bind_blob64(q, i + 1, v->p, v->n, SQLITE_STATIC);
		else
			sqlite3_bind_null(q, i + 1);
	}
}

static int sq_apply(struct store *S, const struct op *o)
{
	sqlite3_stmt *q = DB(S)->st[o->st];
	bind(q, o->v, o->nv);
	int rc = sqlite3_step(q);
	sqlite3_clear_bindings(q);
	sqlite3_reset(q);
	return rc == SQLITE_DONE ? 0 : -1;
}

static void sq_rollback(struct store *S)
{
	if (!sqlite3_get_autocommit(DB(S)->db))
		sqlite3_exec(DB(S)->db, "ROLLBACK", NULL, NULL, NULL);
}

static const char *sq_text(const struct row *r, int i)
{
	return (const char *)sqlite3_column_text(r->q, i);
}

static int64_t sq_num(const struct row *r, int i)
{
	return sqlite3_column_int64(r->q, i);
}

static const void *sq_blob(const struct row *r, int i, size_t *len)
{
	const void *p = sqlite3_column_blob(r->q, i);
	*len = (size_t)sqlite3_column_bytes(r->q, i);
	return p;
}

static const struct row_ops sq_row = {sq_text, sq_num, sq_blob};

/* Steps statement st, handing each row to visit (non-zero stops); the number of rows
 * seen or -1. Bindings are cleared and the statement reset either way. */
static int sq_query(struct store *S, enum stmt st, const struct val *args, int nargs,
		    row_fn visit, void *ctx)
{
	sqlite3_stmt *q = DB(S)->st[st];
	bind(q, args, nargs);
	int rc, n = 0;
	struct row r = {.ops = &sq_row, .q = q};
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		n++;
		if (visit(&r, ctx))
			break;
	}
	int bad = rc != SQLITE_ROW && rc != SQLITE_DONE;
	if (bad)
		log_error("store: %s: %s", sql[st], sqlite3_errmsg(DB(S)->db));
	sqlite3_clear_bindings(q);
	sqlite3_reset(q);
	return bad ? -1 : n;
}

static const char *sq_errmsg(struct store *S)
{
	return sqlite3_errmsg(DB(S)->db);
}

/* Is the file at our path still the one we opened? Deleted or replaced, our writes go
 * to a file nobody will open again. */
static int sq_gone(struct store *S, char *why, size_t n)
{
	struct sqlite_db *d = DB(S);
	struct stat st;
	if (stat(d->path, &st) == 0 && st.st_dev == d->dev && st.st_ino == d->ino)
		return 0;
	snprintf(why, n, "the database file %.4000s was deleted or replaced while the "
		 "server ran; nothing more can be written (restart the server)", d->path);
	return 1;
}

/* The checkpoint thread copies the WAL into the database, but SQLite starts the WAL over
 * only when a transaction begins with every frame copied, which never happens while
 * commits follow each other without a pause. Past a bound the committer restarts it: the
 * frames not yet copied are copied, then the WAL is reused from its start. */
static void wal_bound(struct sqlite_db *d)
{
	if (d->wal_frames < WAL_RESTART_FRAMES)
		return;
	if (sqlite3_wal_checkpoint_v2(d->db, NULL, SQLITE_CHECKPOINT_RESTART, NULL, NULL) == SQLITE_OK)
		d->wal_frames = 0;
}

static int sq_commit(struct store *S, char *err, size_t n)
{
	struct sqlite_db *d = DB(S);
	int rc = sqlite3_step(d->st[ST_COMMIT]);
	sqlite3_reset(d->st[ST_COMMIT]);
	if (rc != SQLITE_DONE) {
		snprintf(err, n, "%s", sqlite3_errmsg(d->db));
		return -1;
	}
	wal_bound(d);
	ckpt_kick(d);
	return 0;
}

static void free_db(struct sqlite_db *d)
{
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(d->st[i]);
	sqlite3_close(d->db);
	free(d);
}

static void sq_close(struct store *S)
{
	struct sqlite_db *d = DB(S);
	ckpt_stop(d);
	for (int i = 0; i < ST_COUNT; i++) {
		sqlite3_finalize(d->st[i]);
		d->st[i] = NULL;
	}
	/* leave a small WAL behind: fold it into the database now that nothing writes */
	sqlite3_wal_checkpoint_v2(d->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	free_db(d);
	S->db = NULL;
}

static const struct store_backend sqlite_backend = {
	.name = "sqlite", .sql = sql, .slow_ms = 250, .ack_ms = 250, .slow_what = "the disk",
	.begin = sq_begin, .apply = sq_apply, .rollback = sq_rollback, .query = sq_query,
	.errmsg = sq_errmsg, .gone = sq_gone, .commit = sq_commit, .close = sq_close,
};

int store_sqlite_open(struct store *S, const char *path, struct err *e)
{
	struct sqlite_db *d = calloc(1, sizeof(*d));
	if (!d) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return -1;
	}
	if (open_db(d, path, e) || migrate(d, e))
		goto fail;
	for (int i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(d->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &d->st[i],
				       NULL) != SQLITE_OK) {
			log_error("store: %s: %s", sql[i], sqlite3_errmsg(d->db));
			open_failed(d, "prepare statements on", e);
			goto fail;
		}
	}
	struct stat st;
	if (stat(d->path, &st)) {
		err_set(e, ERR_INTERNAL, "cannot stat %.300s: %s", d->path, strerror(errno));
		goto fail;
	}
	d->dev = st.st_dev;
	d->ino = st.st_ino;
	ckpt_start(d);
	S->be = &sqlite_backend;
	S->db = d;
	snprintf(S->where, sizeof(S->where), "%s", d->path);
	return 0;
fail:
	free_db(d);
	return -1;
}
