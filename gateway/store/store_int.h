/* Internal to the store's files. store.c: the rows (what each public function writes and
 * reads) and store_open's choice of backend; store_batch.c: the batch log, commits on
 * the committer thread, retries, failures; a backend (store_sqlite.c, store_pg.c): one
 * database's connection, schema, SQL and transactions, behind struct store_backend.
 * Loop thread unless a field or function says otherwise. */
#ifndef AG_STORE_INT_H
#define AG_STORE_INT_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "store.h"

/* A PostgreSQL message on one line (newlines and tabs as one space, no trailing ones),
 * "unknown error" for none: store_pg.c, lease_pg.c. Pure. */
void pg_one_line(char *out, size_t n, const char *msg);

/* Every statement the store runs; each backend has its SQL for each (its sql[] table). */
enum stmt {
	ST_BEGIN, ST_COMMIT,
	ST_SES_PUT, ST_SES_GET, ST_SES_ALL, ST_SES_ROOTS, ST_SES_CHILDREN, ST_SES_DEL,
	ST_SES_DEL_MSG, ST_SES_DEL_PART, ST_SES_DEL_TURN,
	ST_MSG_PUT, ST_MSG_LIST, ST_MSG_GET, ST_MSG_TURNS,
	ST_PART_PUT, ST_PART_DATA, ST_PART_LIST, ST_PART_GET,
	ST_TURN_PUT, ST_TURN_STATE,
	ST_PART_DEL, ST_TURN_DEL, ST_TURN_GET,
	ST_EV_PUT, ST_EV_SINCE, ST_EV_MAX, ST_EV_MIN, ST_EV_PRUNE,
	ST_SEQ_PUT, ST_SEQ_GET,
	ST_KV_PUT, ST_KV_DEL, ST_KV_GET, ST_KV_LIST,
	ST_MSG_DEL, ST_PART_DEL_MSG, ST_TURN_BEFORE,
	ST_SES_FIRST, ST_SES_LAST,
	ST_COUNT
};

/* One value: a statement's parameter, copied into the log (op_*) or borrowed for a read
 * (reader/bind_*). */
enum { V_NULL, V_INT, V_TEXT, V_BLOB };

struct val {
	int type;
	int64_t i;
	char *p;
	size_t n;
};

#define OP_VALS 11

/* One logged write: a statement and its values, copied. */
struct op {
	enum stmt st;
	int nv;
	uint64_t seq;
	struct val v[OP_VALS];
};

/* One row a read hands its visitor, read column by column through its backend (so
 * SQLite makes the same column calls it would make alone). Values are valid during the
 * call. text: NULL for SQL NULL; num: 0 for NULL; blob: its bytes and length (NULL
 * possible for an empty one). */
struct row;

struct row_ops {
	const char *(*text)(const struct row *r, int i);
	int64_t (*num)(const struct row *r, int i);
	const void *(*blob)(const struct row *r, int i, size_t *len);
};

struct row {
	const struct row_ops *ops;
	void *q;  /* the backend's statement or result */
	int i;    /* the row's index in it, where the backend needs one */
};

typedef int (*row_fn)(const struct row *r, void *ctx); /* non-zero stops the read */

/* A database behind the store. The loop thread calls everything but commit, and never
 * while a commit runs (store_db_ready); the committer thread calls commit. */
struct store_backend {
	const char *name;
	const char *const *sql;  /* the statements, by enum stmt (for logs) */
	int slow_ms;             /* a commit running longer: store_slow, reads refused */
	int ack_ms;              /* store_flush waits this long for its own commit */
	const char *slow_what;   /* store_failure while slow: "the disk", "PostgreSQL" */
	int (*begin)(struct store *S);                     /* opens a transaction */
	int (*apply)(struct store *S, const struct op *o);  /* a logged write, into it */
	void (*rollback)(struct store *S);                 /* drops the open transaction */
	/* A read: visit each row of st with args; the rows seen, or -1 (logged). A backend
	 * whose transaction dies with a failed read says so with store_batch_lost. */
	int (*query)(struct store *S, enum stmt st, const struct val *args, int nargs,
		     row_fn visit, void *ctx);
	const char *(*errmsg)(struct store *S); /* why begin or apply failed */
	/* Before a commit: 1 with why when nothing can be written ever again (NULL: never). */
	int (*gone)(struct store *S, char *why, size_t n);
	/* Committer thread: commits the open transaction; 0, or -1 with err. */
	int (*commit)(struct store *S, char *err, size_t n);
	void (*close)(struct store *S); /* after the committer stopped: frees db */
};

/* The committer thread's hand-off. The loop sets CM_ASKED; the thread runs the COMMIT
 * (the connection is serialized, and the loop does not touch it meanwhile) and sets
 * CM_DONE with its result. */
enum cm_state { CM_IDLE, CM_ASKED, CM_DONE };

struct store {
	const struct store_backend *be;
	void *db;          /* the backend's own state */
	struct loop *L;
	char where[4096];  /* store_path: the database, without secrets */
	char node[64];     /* a cluster node's name: written by several nodes at once
			    * (store_open_as); "" for a single gateway */
	_Atomic int fenced; /* a commit was refused: this node was fenced (committer sets) */
	/* the open batch */
	int in_tx, want_batch;
	struct timer commit_timer;
	struct timer collect_timer; /* takes back a commit the thread ended quickly */
	struct {
		void (*fn)(void *arg);
		void *arg;
	} hooks[STORE_HOOKS_MAX];
	int nhooks, in_hooks;
	uint64_t durable; /* the seq of the newest op known to be committed */
	/* the batch log: writes kept until their batch commits */
	struct op *ops;
	int nops, cap;
	int applied;     /* ops[0..applied) are in the open transaction */
	int committing_n; /* ops[0..committing_n) are in the COMMIT the thread runs */
	uint64_t op_seq;
	size_t log_bytes;
	/* a failing store: why, since when, and the retry */
	char *failure;
	int64_t failed_at;
	int lost, retry_due, retrying, closing;
	int64_t backoff_ms;
	struct timer retry_timer;
	char *slow_msg;  /* store_failure's text while a commit is slow */
	/* the committer thread (cm_* under cm_lock) */
	pthread_t cm_thread;
	int cm_running;
	pthread_mutex_t cm_lock;
	pthread_cond_t cm_cond, cm_done_cond;
	enum cm_state cm_state;
	int cm_stop, cm_rc;
	char cm_err[512];
	int64_t cm_started_us;  /* loop: when the commit in flight was asked for, or 0 */
	struct cm_token *token; /* lets a completion posted to the loop outlive the store */
	/* the read being built (reader, bind_*) */
	struct val rd[OP_VALS];
};

/* The backends: open the database named by `where` (a file path for SQLite, a URL for
 * PostgreSQL), create or migrate its schema and set S->be, S->db and S->where; 0, or -1
 * with e naming the database and why. */
int store_sqlite_open(struct store *S, const char *path, struct err *e);
int store_pg_open(struct store *S, const char *url, struct err *e);
/* The URL for messages (postgres://USER@HOST:PORT/DATABASE, never a password): 0, or -1
 * with e naming it by `what` when it is no PostgreSQL URL. */
int store_pg_describe(const char *url, char *out, size_t n, const char *what, struct err *e);

/* store_batch.c */
int store_batch_start(struct store *S, struct loop *L);
/* Waits for a commit in flight (unbounded), makes a last attempt for the kept log, stops
 * the thread. */
void store_batch_stop(struct store *S);
/* Before the loop reads: a commit in flight is waited for, bounded (the backend's
 * slow_ms from its start); 0 when the connection is the loop's again, -1 when slow. */
int store_db_ready(struct store *S);
/* The open transaction is gone with the connection (a backend's failed read): the
 * batch is failed as a failed commit is, kept and retried. */
void store_batch_lost(struct store *S, const char *what, const char *why);
/* Building a logged write: op_new, then one op_* per statement parameter in order,
 * then op_done (which logs it and applies it to the open transaction). */
struct op *op_new(struct store *S, enum stmt st);
void op_text(struct op *o, const char *s);
void op_blob(struct op *o, const void *p, size_t n);
void op_int(struct op *o, int64_t i, int null_if_zero);
int op_done(struct store *S, struct op *o);
/* Calls fn for each logged write not yet known to be on disk, newest first, until it
 * returns non-zero. Such a write may be outside the open transaction (a commit in
 * flight, a failing store): a read that must see every write looks here first. fn may
 * not write. */
void store_log_each(struct store *S, int (*fn)(void *arg, const struct op *o), void *arg);

#endif
