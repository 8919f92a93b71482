/* store: the rows — what each public function writes (a logged op, store_batch.c) and
 * reads (a statement of the backend's, its rows handed to the caller) — and the choice
 * of backend at store_open. No SQL here: each backend has its own (store_sqlite.c,
 * store_pg.c). */
#include "store_int.h"
#include "log.h"
#include "vec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define V_UNSET (-1) /* a read's parameter not bound: the parameters end before it */

static int is_url(const char *where, const char *scheme)
{
	size_t n = strlen(scheme);
	return !strncmp(where, scheme, n) && !strncmp(where + n, "://", 3);
}

int store_check_where(const char *where, const char *what, struct err *e)
{
	if (is_url(where, "postgres") || is_url(where, "postgresql")) {
		char shown[1024];
		return store_pg_describe(where, shown, sizeof(shown), what, e);
	}
	if (!strncmp(where, "sqlite:", 7) && where[7])
		return 0;
	err_set(e, ERR_INVALID, "%s %.200s: expected sqlite:PATH (a SQLite database file) or "
		"postgres://USER@HOST:PORT/DATABASE (a PostgreSQL URL)", what, where);
	return -1;
}

/* `where`: postgres://... or postgresql://... (a libpq URL), sqlite:PATH (the database
 * file), or a directory holding agentgate.db (created if missing). */
static int open_backend(struct store *S, const char *where, struct err *e)
{
	if (is_url(where, "postgres") || is_url(where, "postgresql"))
		return store_pg_open(S, where, e);
	if (!strncmp(where, "sqlite:", 7) || strstr(where, "://")) {
		if (store_check_where(where, "store", e))
			return -1;
		return store_sqlite_open(S, where + 7, e);
	}
	if (mkdir(where, 0700) && errno != EEXIST) {
		err_set(e, ERR_INTERNAL, "cannot create the data directory %.300s: %s", where,
			strerror(errno));
		return -1;
	}
	char path[4096];
	if (snprintf(path, sizeof(path), "%s/agentgate.db", where) >= (int)sizeof(path)) {
		err_set(e, ERR_INVALID, "the data directory's path is too long");
		return -1;
	}
	return store_sqlite_open(S, path, e);
}

struct store *store_open(const char *where, struct loop *L, struct err *e)
{
	return store_open_as(where, NULL, L, e);
}

struct store *store_open_as(const char *where, const char *node, struct loop *L,
			    struct err *e)
{
	struct store *S = calloc(1, sizeof(*S));
	if (!S) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	snprintf(S->node, sizeof(S->node), "%s", node ? node : "");
	if (node && !is_url(where, "postgres") && !is_url(where, "postgresql")) {
		err_set(e, ERR_INVALID, "only a PostgreSQL store is shared by several nodes (got "
			"%.200s)", where);
		free(S);
		return NULL;
	}
	if (open_backend(S, where, e)) {
		free(S);
		return NULL;
	}
	if (store_batch_start(S, L)) {
		err_set(e, ERR_INTERNAL, "cannot start the store's committer thread");
		store_close(S);
		return NULL;
	}
	return S;
}

void store_close(struct store *S)
{
	if (!S)
		return;
	store_batch_stop(S);
	S->be->close(S);
	free(S);
}

const char *store_path(struct store *S)
{
	return S->where;
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

/* A read's parameters (bind_* them from 1), once the connection is the loop's (no
 * commit in flight, or it ended within its bound); NULL while the database is slow. */
static struct val *reader(struct store *S, enum stmt s)
{
	(void)s;
	if (store_db_ready(S))
		return NULL;
	for (int i = 0; i < OP_VALS; i++)
		S->rd[i].type = V_UNSET;
	return S->rd;
}

static void bind_text(struct val *q, int i, const char *s)
{
	q[i - 1] = (struct val){.type = s ? V_TEXT : V_NULL, .p = (char *)s, .n = s ? strlen(s) : 0};
}

static void bind_int(struct val *q, int i, int64_t v)
{
	q[i - 1] = (struct val){.type = V_INT, .i = v};
}

static const char *col(const struct row *r, int i)
{
	return r->ops->text(r, i);
}

static int64_t num(const struct row *r, int i)
{
	return r->ops->num(r, i);
}

static const void *blob(const struct row *r, int i, size_t *len)
{
	return r->ops->blob(r, i, len);
}

/* Runs read s with the parameters bound since reader(), handing each row to visit
 * (non-zero stops); the number of rows seen or -1. */
static int each_row(struct store *S, enum stmt s, row_fn visit, void *ctx)
{
	int n = 0;
	while (n < OP_VALS && S->rd[n].type != V_UNSET)
		n++;
	return S->be->query(S, s, S->rd, n, visit, ctx);
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

static int session_row(const struct row *q, void *ctx)
{
	struct visit *v = ctx;
	struct store_session r = {
		.id = col(q, 0), .parent_id = col(q, 1), .root_id = col(q, 2),
		.parent_tool_call_id = col(q, 3), .depth = (int)num(q, 4),
		.time_created = num(q, 5), .time_updated = num(q, 6), .data = col(q, 7),
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
	struct val *q = reader(S, ST_SES_GET);
	if (!q)
		return -1;
	bind_text(q, 1, id);
	return read_sessions(S, ST_SES_GET, cb, arg);
}

int store_session_list(struct store *S, const char *parent_id, store_session_cb cb, void *arg)
{
	struct val *q = reader(S, ST_SES_CHILDREN);
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

static int message_row(const struct row *q, void *ctx)
{
	struct visit *v = ctx;
	struct store_message r = {
		.id = col(q, 0), .session_id = col(q, 1), .role = col(q, 2),
		.parent_id = col(q, 3), .turn_id = col(q, 4), .finish = col(q, 5),
		.time_created = num(q, 6), .data = col(q, 7),
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
	struct val *q = reader(S, ST_MSG_LIST);
	if (!q)
		return -1;
	bind_text(q, 1, session_id);
	return read_messages(S, ST_MSG_LIST, cb, arg);
}

int store_message_list_turns(struct store *S, const char *session_id, const char *after,
			     const char *upto, store_message_cb cb, void *arg)
{
	struct val *q = reader(S, ST_MSG_TURNS);
	if (!q)
		return -1;
	bind_text(q, 1, session_id);
	bind_text(q, 2, after);
	bind_text(q, 3, upto);
	return read_messages(S, ST_MSG_TURNS, cb, arg);
}

int store_message_get(struct store *S, const char *id, store_message_cb cb, void *arg)
{
	struct val *q = reader(S, ST_MSG_GET);
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
	struct val *q = reader(S, ST_PART_LIST);
	if (!q)
		return -1;
	bind_text(q, 1, message_id);
	return read_parts(S, ST_PART_LIST, cb, arg);
}

int store_part_get(struct store *S, const char *id, store_part_cb cb, void *arg)
{
	struct val *q = reader(S, ST_PART_GET);
	if (!q)
		return -1;
	bind_text(q, 1, id);
	return read_parts(S, ST_PART_GET, cb, arg);
}

static int part_row(const struct row *q, void *ctx)
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

static int turn_row(const struct row *q, void *ctx)
{
	struct visit *v = ctx;
	struct store_turn r = {
		.id = col(q, 0), .session_id = col(q, 1), .user_message_id = col(q, 2),
		.source = col(q, 3), .state = col(q, 4), .policy = col(q, 5),
		.dedupe_key = col(q, 6), .error = col(q, 7), .time_created = num(q, 8),
		.time_started = num(q, 9), .time_ended = num(q, 10),
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
	struct val *q = reader(S, ST_TURN_GET);
	if (!q)
		return -1;
	bind_text(q, 1, id);
	return read_turns(S, ST_TURN_GET, cb, arg);
}

int store_turn_list_state(struct store *S, const char *state, store_turn_cb cb, void *arg)
{
	struct val *q = reader(S, ST_TURN_STATE);
	if (!q)
		return -1;
	bind_text(q, 1, state);
	return read_turns(S, ST_TURN_STATE, cb, arg);
}

int store_turn_before(struct store *S, const char *session_id, const char *turn_id,
		      store_turn_cb cb, void *arg)
{
	struct val *q = reader(S, ST_TURN_BEFORE);
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

static int event_batch_row(const struct row *q, void *ctx)
{
	struct visit *v = ctx;
	size_t len;
	const void *data = blob(q, 2, &len);
	return ((store_event_batch_cb)v->cb)(v->arg, num(q, 0), num(q, 1), data, len);
}

int store_event_batch_after(struct store *S, int64_t after, store_event_batch_cb cb, void *arg)
{
	struct val *q = reader(S, ST_EV_SINCE);
	if (!q)
		return -1;
	bind_int(q, 1, after);
	struct visit v = {(void *)cb, arg};
	return each_row(S, ST_EV_SINCE, event_batch_row, &v);
}

static int scalar_row(const struct row *q, void *ctx)
{
	*(int64_t *)ctx = num(q, 0);
	return 1;
}

static int64_t scalar(struct store *S, enum stmt s)
{
	int64_t v = -1;
	if (!reader(S, s) || each_row(S, s, scalar_row, &v) < 0)
		return -1;
	return v;
}

int store_session_times(struct store *S, int64_t *first_created, int64_t *last_updated)
{
	*first_created = scalar(S, ST_SES_FIRST);
	*last_updated = scalar(S, ST_SES_LAST);
	return *first_created < 0 || *last_updated < 0 ? -1 : 0;
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

static int kv_row(const struct row *q, void *ctx)
{
	struct visit *v = ctx;
	size_t len;
	const void *value = blob(q, 1, &len);
	return ((store_kv_cb)v->cb)(v->arg, col(q, 0), value, len);
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
	struct val *q = reader(S, ST_KV_GET);
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

static int kv_list_row(const struct row *q, void *ctx)
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
		size_t len;
		const void *value = blob(q, 1, &len);
		kv_give(l, key, value ? value : "", len);
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
	struct val *q = l.oom ? NULL : reader(S, ST_KV_LIST);
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
