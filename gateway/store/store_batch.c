/* store_batch: the open batch of writes and how it reaches the database, whichever the
 * backend (store_int.h).
 *
 * Every write is applied to the open transaction at once (so reads see it) and also kept
 * as an operation in the batch log until its batch commits. COMMITs run on the committer
 * thread: the loop hands the transaction over and goes on serving streams and requests;
 * writes made meanwhile wait in the log and form the next batch. So a slow or frozen
 * database delays commits but not the loop. Where an answer must wait for durability
 * (store_flush), the wait is bounded: the backend's ack_ms for the caller's own commit,
 * and a caller behind a commit that has run the backend's slow_ms is refused at once.
 *
 * A failed write or commit (full disk, I/O error, a lost connection) rolls the
 * transaction back; the log is kept and applied again in a new transaction by a retry
 * timer (backoff up to RETRY_MAX_MS), and writes made meanwhile join it. A database that
 * can never be written again (SQLite: the file deleted or replaced under the server) is
 * noticed before each commit and ends all writing: no retry can put the data where a
 * restart will look. */
#include "log.h"
#include "store_int.h"
#include "vec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS 5000
/* A commit the thread ends within COLLECT_MS of being asked is taken back by the loop at
 * its next wake-up (collect_timer: COLLECT_MS at the latest); a slower one wakes it. So
 * a stream's commits ride on its tokens' wake-ups instead of adding two of their own. */
#define COLLECT_MS 50

/* A completion posted to the loop holds a reference: the store may be closed first. */
struct cm_token {
	int refs;
	struct store *S;
};

static void commit_timer_fired(struct timer *t);
static void retry_fired(struct timer *t);

/* ---- the log ---- */

static void op_free(struct op *o)
{
	for (int i = 0; i < o->nv; i++)
		free(o->v[i].p);
}

static size_t op_bytes(const struct op *o)
{
	size_t n = 0;
	for (int i = 0; i < o->nv; i++)
		n += o->v[i].n;
	return n;
}

/* Drops ops[from..to) (freeing them) and closes the gap. */
static void log_drop(struct store *S, int from, int to)
{
	for (int i = from; i < to; i++) {
		S->log_bytes -= op_bytes(&S->ops[i]);
		op_free(&S->ops[i]);
	}
	if (to < S->nops)
		memmove(&S->ops[from], &S->ops[to], (size_t)(S->nops - to) * sizeof(*S->ops));
	S->nops -= to - from;
}

static int committing(const struct store *S)
{
	return S->cm_started_us != 0;
}

/* The open batch could not be written: roll it back, keep its log, retry later. */
static void fail_batch(struct store *S, const char *what, const char *why)
{
	if (!S->failure) {
		S->failed_at = now_ms();
		S->backoff_ms = RETRY_FIRST_MS;
		if (asprintf(&S->failure, "%s: %s", what, why) < 0)
			S->failure = NULL;
		log_error("store: %s failed (%s); %d write(s) are kept in memory and retried; "
			  "requests that must be durable get 503 until then", what, why, S->nops);
	} else if (S->backoff_ms < RETRY_MAX_MS) {
		S->backoff_ms = S->backoff_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : S->backoff_ms * 2;
	}
	S->be->rollback(S);
	S->in_tx = 0;
	S->applied = S->committing_n = 0;
	S->retry_due = S->retrying = 0;
	timer_cancel(&S->commit_timer);
	if (!S->lost)
		timer_arm(&S->retry_timer, S->backoff_ms);
}

int store_begin(struct store *S)
{
	if (S->in_tx)
		return 0;
	if (committing(S) || (S->failure && !S->retrying)) {
		S->want_batch = 1; /* opened when the commit in flight ends, or by the retry */
		return 0;
	}
	if (S->be->begin(S))
		return -1;
	S->in_tx = 1;
	S->want_batch = 0;
	timer_arm_slack(&S->commit_timer, STORE_COMMIT_MS - STORE_COMMIT_SLACK_MS,
			STORE_COMMIT_SLACK_MS);
	return 0;
}

/* Applies the logged writes not yet in the open transaction: none while a commit is in
 * flight or the store fails (until a retry). A failure leaves them in the log. */
static void apply_pending(struct store *S)
{
	if (committing(S) || (S->failure && !S->retrying))
		return;
	if (store_begin(S)) {
		fail_batch(S, "BEGIN", S->be->errmsg(S));
		return;
	}
	for (; S->applied < S->nops; S->applied++) {
		if (S->be->apply(S, &S->ops[S->applied])) {
			fail_batch(S, S->be->sql[S->ops[S->applied].st], S->be->errmsg(S));
			return;
		}
	}
}

/* While writes wait (failing or slow), a part's newer text replaces its older one in
 * the log: streamed text would otherwise be logged again at every attempt. */
static void coalesce(struct store *S, const struct op *o)
{
	if (o->st != ST_PART_DATA)
		return; /* (while writes go through, every op is applied and none waits) */
	for (int i = S->nops - 1; i >= S->applied && i >= S->committing_n; i--) {
		const struct op *x = &S->ops[i];
		if (x->st == ST_PART_DATA && !strcmp(x->v[1].p, o->v[1].p)) {
			log_drop(S, i, i + 1);
			return;
		}
	}
}

struct op *op_new(struct store *S, enum stmt st)
{
	void *grown = vec_reserve(S->ops, &S->cap, S->nops, sizeof(*S->ops));
	if (!grown)
		return NULL;
	S->ops = grown;
	struct op *o = &S->ops[S->nops];
	memset(o, 0, sizeof(*o));
	o->st = st;
	return o;
}

static struct val *op_val(struct op *o, int type)
{
	if (!o || o->nv == OP_VALS)
		return NULL;
	struct val *v = &o->v[o->nv++];
	v->type = type;
	return v;
}

void op_text(struct op *o, const char *s)
{
	struct val *v = op_val(o, s ? V_TEXT : V_NULL);
	if (v && s) {
		v->n = strlen(s);
		v->p = strdup(s);
		if (!v->p)
			v->type = -1; /* out of memory: op_done refuses the op */
	}
}

void op_blob(struct op *o, const void *p, size_t n)
{
	struct val *v = op_val(o, V_BLOB);
	if (v) {
		v->n = n;
		v->p = malloc(n ? n : 1);
		if (v->p)
			memcpy(v->p, p, n);
		else
			v->type = -1;
	}
}

void op_int(struct op *o, int64_t i, int null_if_zero)
{
	struct val *v = op_val(o, null_if_zero && !i ? V_NULL : V_INT);
	if (v)
		v->i = i;
}

int op_done(struct store *S, struct op *o)
{
	if (!o)
		return -1;
	for (int i = 0; i < o->nv; i++) {
		if (o->v[i].type < 0) {
			op_free(o);
			log_error("store: out of memory logging a write (%s)", S->be->sql[o->st]);
			return -1;
		}
	}
	struct op op = *o; /* the slot may move while older ops are dropped */
	coalesce(S, &op);
	op.seq = ++S->op_seq;
	S->ops[S->nops++] = op;
	S->log_bytes += op_bytes(&op);
	apply_pending(S);
	return 0;
}

void store_log_each(struct store *S, int (*fn)(void *arg, const struct op *o), void *arg)
{
	for (int i = S->nops - 1; i >= 0; i--)
		if (fn(arg, &S->ops[i]))
			return;
}

/* ---- commits on the committer thread ---- */

static void cm_posted(void *arg);

static void *cm_main(void *arg)
{
	struct store *S = arg;
	pthread_mutex_lock(&S->cm_lock);
	for (;;) {
		while (!S->cm_stop && S->cm_state != CM_ASKED)
			pthread_cond_wait(&S->cm_cond, &S->cm_lock);
		if (S->cm_state != CM_ASKED)
			break;
		struct cm_token *tok = S->token;
		int64_t asked = S->cm_started_us;
		pthread_mutex_unlock(&S->cm_lock);
		char err[sizeof(S->cm_err)] = "";
		int rc = S->be->commit(S, err, sizeof(err));
		pthread_mutex_lock(&S->cm_lock);
		S->cm_rc = rc;
		memcpy(S->cm_err, err, sizeof(err));
		S->cm_state = CM_DONE;
		pthread_cond_broadcast(&S->cm_done_cond);
		pthread_mutex_unlock(&S->cm_lock);
		/* the loop finishes the commit; if the post fails it does so at its next
		 * store call (store_failure, a timer, a read). Read after CM_DONE: while
		 * collect_timer may still fire, it will find the commit done. */
		if (mono_us() < asked + COLLECT_MS * 1000)
			loop_post_lazy(S->L, cm_posted, tok);
		else
			loop_post(S->L, cm_posted, tok);
		pthread_mutex_lock(&S->cm_lock);
	}
	pthread_mutex_unlock(&S->cm_lock);
	return NULL;
}

static void committed(struct store *S)
{
	if (S->failure)
		log_info("store: writing again after %lld ms", (long long)(now_ms() - S->failed_at));
	free(S->failure);
	S->failure = NULL;
	S->retrying = 0;
	timer_cancel(&S->retry_timer);
	if (S->committing_n)
		S->durable = S->ops[S->committing_n - 1].seq;
	log_drop(S, 0, S->committing_n);
	S->applied = S->committing_n = 0;
}

/* The loop takes back a finished commit: drop what it stored, or keep it all on failure;
 * then the writes that waited form the next batch. */
static void cm_finish(struct store *S)
{
	if (!committing(S))
		return;
	pthread_mutex_lock(&S->cm_lock);
	int done = S->cm_state == CM_DONE, rc = S->cm_rc;
	char err[sizeof(S->cm_err)];
	memcpy(err, S->cm_err, sizeof(err));
	if (done)
		S->cm_state = CM_IDLE;
	pthread_mutex_unlock(&S->cm_lock);
	if (!done)
		return;
	S->cm_started_us = 0;
	if (rc == 0)
		committed(S);
	else
		fail_batch(S, "commit", err);
	if (S->nops > S->applied || S->want_batch)
		apply_pending(S);
}

static void cm_posted(void *arg)
{
	struct cm_token *tok = arg;
	if (tok->S)
		cm_finish(tok->S);
	if (--tok->refs == 0)
		free(tok);
}

/* Until COLLECT_MS after the ask: has the thread ended the commit? After that, the
 * thread wakes the loop itself (cm_main). */
static void collect_fired(struct timer *t)
{
	struct store *S = container_of(t, struct store, collect_timer);
	cm_finish(S);
	int64_t left = committing(S) ? S->cm_started_us + COLLECT_MS * 1000 - mono_us() : 0;
	if (left > 0)
		timer_arm_slack(t, 0, (left + 999) / 1000);
}

static void cm_ask(struct store *S)
{
	S->committing_n = S->nops;
	S->in_tx = 0;
	S->cm_started_us = mono_us();
	S->token->refs++; /* the thread's post */
	timer_cancel(&S->commit_timer);
	timer_arm_slack(&S->collect_timer, 0, COLLECT_MS);
	pthread_mutex_lock(&S->cm_lock);
	S->cm_state = CM_ASKED;
	pthread_cond_signal(&S->cm_cond);
	pthread_mutex_unlock(&S->cm_lock);
}

/* Waits for the commit in flight until the monotonic time until_us (0: for as long as it
 * takes); 0 when it has finished, -1 when it still runs. */
static int cm_wait(struct store *S, int64_t until_us)
{
	if (!committing(S))
		return 0;
	pthread_mutex_lock(&S->cm_lock);
	while (S->cm_state == CM_ASKED) {
		if (!until_us) {
			pthread_cond_wait(&S->cm_done_cond, &S->cm_lock);
			continue;
		}
		if (mono_us() >= until_us)
			break;
		struct timespec ts = {.tv_sec = until_us / 1000000,
				      .tv_nsec = (until_us % 1000000) * 1000};
		pthread_cond_timedwait(&S->cm_done_cond, &S->cm_lock, &ts);
	}
	pthread_mutex_unlock(&S->cm_lock);
	cm_finish(S);
	return committing(S) ? -1 : 0;
}

int store_db_ready(struct store *S)
{
	return cm_wait(S, committing(S) ? S->cm_started_us + S->be->slow_ms * 1000LL : 0);
}

void store_batch_lost(struct store *S, const char *what, const char *why)
{
	fail_batch(S, what, why);
}

/* ---- committing ---- */

/* Can the database still be written at all (SQLite: is the file at our path still the
 * one we opened)? If not, writing ends for good. */
static int db_gone(struct store *S)
{
	char why[4200];
	if (!S->be->gone || !S->be->gone(S, why, sizeof(why)))
		return 0;
	S->lost = 1;
	free(S->failure);
	S->failure = NULL;
	fail_batch(S, "commit", why);
	return 1;
}

/* A retry, when one is due: the kept log, applied again in a new transaction. */
static int retry(struct store *S)
{
	if (S->lost || !S->retry_due)
		return -1;
	S->retry_due = 0;
	S->retrying = 1;
	apply_pending(S);
	return S->in_tx ? 0 : -1;
}

#define STORE_PENDING 1

/* Hands the open batch to the committer and waits up to wait_ms (-1: as long as it
 * takes) for it: 0 committed, -1 failed or failing (kept and retried), STORE_PENDING
 * still running. */
static int commit(struct store *S, int64_t wait_ms)
{
	if (S->in_hooks || committing(S))
		return committing(S) ? STORE_PENDING : 0;
	if (S->failure && retry(S))
		return -1;
	if (!S->in_tx)
		return 0;
	S->in_hooks = 1;
	for (int i = 0; i < S->nhooks; i++)
		S->hooks[i].fn(S->hooks[i].arg);
	S->in_hooks = 0;
	if (!S->in_tx || committing(S))
		return -1; /* a hook's write failed: the batch was rolled back and is kept */
	if (db_gone(S))
		return -1;
	cm_ask(S);
	if (wait_ms == 0)
		return STORE_PENDING;
	if (cm_wait(S, wait_ms < 0 ? 0 : mono_us() + wait_ms * 1000))
		return STORE_PENDING;
	return S->failure ? -1 : 0;
}

static void commit_timer_fired(struct timer *t)
{
	commit(container_of(t, struct store, commit_timer), 0);
}

static void retry_fired(struct timer *t)
{
	struct store *S = container_of(t, struct store, retry_timer);
	S->retry_due = 1;
	commit(S, 0);
}

int store_flush(struct store *S)
{
	if (S->in_hooks)
		return 0; /* a hook's own writes join the batch being committed */
	/* behind a commit that is already slow, a caller is refused rather than kept */
	if (committing(S) && !S->closing && store_db_ready(S))
		return -1;
	int rc = commit(S, S->closing ? -1 : S->be->ack_ms);
	return rc == STORE_PENDING ? STORE_LATE : rc;
}

uint64_t store_mark(struct store *S)
{
	return S->op_seq;
}

/* The bus's own writes stay: it counts them as stored (event batches, seq reservation). */
static int bus_owned(enum stmt st)
{
	return st == ST_EV_PUT || st == ST_EV_PRUNE || st == ST_SEQ_PUT;
}

int store_commit_since(struct store *S, uint64_t mark)
{
	uint64_t end = S->op_seq;
	int rc = store_flush(S);
	if (rc != -1)
		return rc;
	/* nothing after the commit in flight (if any) is in a transaction now */
	for (int i = S->nops - 1; i >= S->committing_n; i--) {
		const struct op *o = &S->ops[i];
		if (o->seq > mark && o->seq <= end && !bus_owned(o->st))
			log_drop(S, i, i + 1);
	}
	return -1;
}

uint64_t store_durable(struct store *S)
{
	cm_finish(S);
	return S->durable;
}

int store_fenced(struct store *S)
{
	return atomic_load(&S->fenced);
}

int store_slow(struct store *S)
{
	cm_finish(S);
	return committing(S) && mono_us() - S->cm_started_us > S->be->slow_ms * 1000LL;
}

const char *store_failure(struct store *S)
{
	if (store_slow(S)) {
		free(S->slow_msg);
		if (asprintf(&S->slow_msg, "%s is slow: a commit has been in progress for %lld ms",
			     S->be->slow_what, (long long)(mono_us() - S->cm_started_us) / 1000) < 0)
			S->slow_msg = NULL;
		return S->slow_msg ? S->slow_msg : "the store is slow";
	}
	return S->failure;
}

size_t store_pending_bytes(struct store *S)
{
	return store_failure(S) ? S->log_bytes : 0;
}

/* ---- start and stop ---- */

int store_batch_start(struct store *S, struct loop *L)
{
	S->L = L;
	S->token = calloc(1, sizeof(*S->token));
	if (!S->token)
		return -1;
	S->token->refs = 1;
	S->token->S = S;
	timer_init(&S->commit_timer, L, commit_timer_fired);
	timer_init(&S->collect_timer, L, collect_fired);
	timer_init(&S->retry_timer, L, retry_fired);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&S->cm_lock, NULL);
	pthread_cond_init(&S->cm_cond, NULL);
	pthread_cond_init(&S->cm_done_cond, &ca);
	pthread_condattr_destroy(&ca);
	S->cm_running = pthread_create(&S->cm_thread, NULL, cm_main, S) == 0;
	if (S->cm_running)
		pthread_setname_np(S->cm_thread, "ag-commit");
	if (!S->cm_running) {
		log_error("store: cannot start the committer thread");
		return -1;
	}
	return 0;
}

void store_batch_stop(struct store *S)
{
	if (!S->token)
		return;
	S->closing = 1;
	cm_wait(S, 0);
	S->retry_due = 1; /* a last attempt for what is kept */
	if (store_flush(S) && S->nops)
		log_error("store: %d write(s) could not be stored and are lost: %s", S->nops,
			  S->failure ? S->failure : "see above");
	if (S->cm_running) {
		pthread_mutex_lock(&S->cm_lock);
		S->cm_stop = 1;
		pthread_cond_signal(&S->cm_cond);
		pthread_mutex_unlock(&S->cm_lock);
		pthread_join(S->cm_thread, NULL);
		S->cm_running = 0;
	}
	pthread_cond_destroy(&S->cm_cond);
	pthread_cond_destroy(&S->cm_done_cond);
	pthread_mutex_destroy(&S->cm_lock);
	log_drop(S, 0, S->nops);
	free(S->ops);
	free(S->failure);
	free(S->slow_msg);
	timer_cancel(&S->commit_timer);
	timer_cancel(&S->collect_timer);
	timer_cancel(&S->retry_timer);
	S->token->S = NULL;
	if (--S->token->refs == 0)
		free(S->token);
	S->token = NULL;
}
