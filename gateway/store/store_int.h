/* Internal to the store's files: store.c (schema, statements, rows, the checkpoint
 * thread) and store_batch.c (the batch log, commits on the committer thread, retries,
 * failures). Loop thread unless a field says otherwise. */
#ifndef AG_STORE_INT_H
#define AG_STORE_INT_H
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <sys/types.h>

#include "store.h"

enum stmt {
	ST_BEGIN, ST_COMMIT,
	ST_SES_PUT, ST_SES_GET, ST_SES_ALL, ST_SES_ROOTS, ST_SES_CHILDREN, ST_SES_DEL,
	ST_SES_DEL_MSG, ST_SES_DEL_PART, ST_SES_DEL_TURN,
	ST_MSG_PUT, ST_MSG_LIST, ST_MSG_GET, ST_MSG_TURNS,
	ST_PART_PUT, ST_PART_DATA, ST_PART_LIST,
	ST_TURN_PUT, ST_TURN_STATE,
	ST_PART_DEL, ST_TURN_DEL, ST_TURN_GET,
	ST_EV_PUT, ST_EV_SINCE, ST_EV_MAX, ST_EV_MIN, ST_EV_PRUNE,
	ST_SEQ_PUT, ST_SEQ_GET,
	ST_KV_PUT, ST_KV_DEL, ST_KV_GET, ST_KV_LIST,
	ST_MSG_DEL, ST_PART_DEL_MSG, ST_TURN_BEFORE,
	ST_COUNT
};

extern const char *const store_sql[ST_COUNT];

/* One logged write: a statement and its values, copied. */
enum { V_NULL, V_INT, V_TEXT, V_BLOB };

struct val {
	int type;
	int64_t i;
	char *p;
	size_t n;
};

#define OP_VALS 11

struct op {
	enum stmt st;
	int nv;
	uint64_t seq;
	struct val v[OP_VALS];
};

/* The committer thread's hand-off. The loop sets CM_ASKED; the thread runs the COMMIT
 * (the connection is serialized, and the loop does not touch it meanwhile) and sets
 * CM_DONE with its result. */
enum cm_state { CM_IDLE, CM_ASKED, CM_DONE };

struct store {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	struct loop *L;
	char path[4096];
	dev_t dev;
	ino_t ino;
	/* WAL checkpoints run on their own thread and connection (store.c) */
	pthread_t ckpt_thread;
	int ckpt_running, ckpt_stop;
	int ckpt_dirty; /* a commit wrote since the last checkpoint (under ckpt_lock) */
	pthread_mutex_t ckpt_lock;
	pthread_cond_t ckpt_cond;
	int wal_frames; /* frames in the WAL after the last commit (committer thread) */
	/* the open batch */
	int in_tx, want_batch;
	struct timer commit_timer;
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
	char cm_err[256];
	int64_t cm_started_us;  /* loop: when the commit in flight was asked for, or 0 */
	struct cm_token *token; /* lets a completion posted to the loop outlive the store */
};

/* store.c */
int store_fail_sql(struct store *S, const char *what);

/* store_batch.c */
int store_batch_start(struct store *S, struct loop *L);
/* Waits for a commit in flight (unbounded), makes a last attempt for the kept log, stops
 * the thread. */
void store_batch_stop(struct store *S);
/* Before the loop reads: a commit in flight is waited for, bounded (STORE_STUCK_MS from
 * its start); 0 when the connection is the loop's again, -1 when the disk is slow. */
int store_db_ready(struct store *S);
/* Committer thread: a commit wrote pages, so the checkpoint thread has work (store.c). */
void store_ckpt_kick(struct store *S);
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
