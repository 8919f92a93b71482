/* store: everything durable, in one database owned by the loop thread: SQLite (a file,
 * WAL; the default) or PostgreSQL, behind the same functions (store_int.h's backend
 * table). Writes join a transaction that a timer commits within STORE_COMMIT_MS, so
 * streamed text is readable by other connections while it streams; store_flush()
 * commits at once where a caller must not acknowledge before the data is durable.
 * Nothing outside this module speaks SQL. Records carry the API's JSON (`data`) beside
 * the columns that are queried. Loop thread only. Strings passed in are borrowed for
 * the call. */
#ifndef AG_STORE_H
#define AG_STORE_H
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "loop.h"

/* A batch commits STORE_COMMIT_MS after its first write at the latest, and up to
 * STORE_COMMIT_SLACK_MS sooner when the loop is awake anyway (a token, a request): a
 * timer that costs no wake-up of its own. */
#define STORE_COMMIT_MS 200
#define STORE_COMMIT_SLACK_MS 50

struct store;

struct store_session {
	const char *id, *parent_id, *root_id, *parent_tool_call_id;
	int depth;
	int64_t time_created, time_updated;
	const char *data; /* Session JSON */
};

struct store_message {
	const char *id, *session_id, *role, *parent_id, *turn_id, *finish;
	int64_t time_created;
	const char *data; /* Message info JSON */
};

struct store_part {
	const char *id, *message_id, *session_id, *type;
	const char *data; /* Part JSON */
};

struct store_turn {
	const char *id, *session_id, *user_message_id, *source, *state, *policy;
	const char *dedupe_key, *error;
	int64_t time_created, time_started, time_ended;
};

/* Opens, creating or migrating its schema, the database `where` names:
 *   sqlite:PATH              the SQLite database file PATH (its directory must exist)
 *   postgres://... (or postgresql://...) a PostgreSQL database, a libpq URL; one
 *                            gateway at a time writes it (a session advisory lock)
 *   DIR                      DIR/agentgate.db, DIR created if missing
 * NULL on failure, with e naming the database and why. */
struct store *store_open(const char *where, struct loop *L, struct err *e);
/* store_open, or with node set, a PostgreSQL database written by several gateway nodes
 * at once, each running its own session trees (lease.h): the nodes hold the advisory
 * lock shared, so a single gateway cannot open it meanwhile, nor a node while a single
 * gateway has it. Anything but PostgreSQL is refused for a node. A node's commits are
 * fenced: once another node has taken its trees over (it was declared dead), each of
 * its commits fails (store_fenced). */
struct store *store_open_as(const char *where, const char *node, struct loop *L,
			    struct err *e);
/* 1 once a commit was refused because this node was fenced off by another. */
int store_fenced(struct store *S);
/* Whether `where` names a store as a user gives one (sqlite:PATH or a PostgreSQL URL),
 * without opening it: 0, or -1 with e naming it by `what` ("--store") and the problem. */
int store_check_where(const char *where, const char *what, struct err *e);
void store_close(struct store *S); /* commits what is pending */
/* Commits the open batch now and waits for it, bounded: 0 durable; -1 not written (the
 * store is failing, or the disk is slow and a commit before this one still runs: see
 * store_failure; the writes are kept and retried); STORE_LATE handed to the disk but not
 * confirmed within a quarter second: it will be written when the disk answers (kept and
 * retried if that fails). */
#define STORE_LATE (-2)
int store_flush(struct store *S);
/* store_mark: the number of the newest write logged so far.
 * For writes that must be durable before the caller answers: mark, write, then
 * store_commit_since(mark), which returns as store_flush. On -1 the writes made since
 * the mark are forgotten (the bus's event log excepted), so a caller that answers "not
 * saved" tells the truth; on STORE_LATE they are kept and will be written. */
uint64_t store_mark(struct store *S);
int store_commit_since(struct store *S, uint64_t mark);
/* NULL while writes go through; else why they do not (full disk, I/O error, the file
 * deleted or replaced, PostgreSQL unreachable, a commit that has run for more than the
 * backend's bound: 100 ms on SQLite). Writes made meanwhile are kept in memory and
 * retried with backoff; reads see what is on disk (PostgreSQL: fail while it cannot
 * be reached), except while the database is slow (store_slow), when they fail at once. */
const char *store_failure(struct store *S);
/* 1 while a commit has run longer than the backend's bound: reads would wait for it. */
int store_slow(struct store *S);
/* Memory held by writes waiting for a failing store (0 while writes go through). */
size_t store_pending_bytes(struct store *S);
/* fn is called just before each commit, so a module can write what it buffers (the
 * engine its streamed text, the bus its events); its writes join that commit. */
#define STORE_HOOKS_MAX 4
/* Joins the open batch, starting one (and its commit timer) if none is open: for a
 * module whose hook has something to write although nothing else was written. Every
 * write is kept in memory until its batch commits (so a failed commit loses nothing);
 * writes return -1 only when out of memory. */
int store_begin(struct store *S);
int store_add_flush_hook(struct store *S, void (*fn)(void *arg), void *arg);
/* The database: SQLite's file, or PostgreSQL's URL without its password. */
const char *store_path(struct store *S);
/* The store_mark() of the newest write known to be on disk: a write whose mark (read
 * right after it) is at most this is durable. */
uint64_t store_durable(struct store *S);

int store_session_put(struct store *S, const struct store_session *r);
/* Calls cb for each row (strings valid during the call). Return non-zero from cb to stop. */
typedef int (*store_session_cb)(void *arg, const struct store_session *r);
int store_session_get(struct store *S, const char *id, store_session_cb cb, void *arg);
/* parent_id NULL: every session, "": root sessions (both most recently updated first);
 * an id: that session's children, oldest first. */
int store_session_list(struct store *S, const char *parent_id, store_session_cb cb, void *arg);
/* The oldest session's time_created and the newest time_updated (0 without sessions):
 * 0, or -1 when they cannot be read. */
int store_session_times(struct store *S, int64_t *first_created, int64_t *last_updated);
int store_session_delete(struct store *S, const char *id);

int store_message_put(struct store *S, const struct store_message *r);
/* Deletes a message and its parts. */
int store_message_delete(struct store *S, const char *id);
typedef int (*store_message_cb)(void *arg, const struct store_message *r);
/* A session's messages in conversation order: by turn, then by id within the turn. */
int store_message_list(struct store *S, const char *session_id, store_message_cb cb, void *arg);
int store_message_get(struct store *S, const char *id, store_message_cb cb, void *arg);
/* The messages of the session's turns with ids after `after` ("" for the first) and up
 * to `upto` included, in conversation order. */
int store_message_list_turns(struct store *S, const char *session_id, const char *after,
			     const char *upto, store_message_cb cb, void *arg);

int store_part_put(struct store *S, const struct store_part *r);
int store_part_delete(struct store *S, const char *id);
/* Replaces the JSON of a part already stored (no index churn: for streamed text). */
int store_part_set_data(struct store *S, const char *id, const char *data);
typedef int (*store_part_cb)(void *arg, const struct store_part *r);
int store_part_list(struct store *S, const char *message_id, store_part_cb cb, void *arg);
/* The part with that id (cb once), as store_message_get: rows visited, or -1. */
int store_part_get(struct store *S, const char *id, store_part_cb cb, void *arg);

int store_turn_put(struct store *S, const struct store_turn *r);
int store_turn_delete(struct store *S, const char *id);
typedef int (*store_turn_cb)(void *arg, const struct store_turn *r);
/* The turn with that id (cb called once, or not at all). */
int store_turn_get(struct store *S, const char *id, store_turn_cb cb, void *arg);
/* Turns in a state (any session), oldest first. */
int store_turn_list_state(struct store *S, const char *state, store_turn_cb cb, void *arg);
/* The session's turn with the greatest id below turn_id (cb called once, or not). */
int store_turn_before(struct store *S, const char *session_id, const char *turn_id,
		      store_turn_cb cb, void *arg);

/* The event log: opaque batches of events, first_seq..last_seq, one row per batch. */
int store_event_batch_put(struct store *S, int64_t first_seq, int64_t last_seq,
			  const void *data, size_t len);
typedef int (*store_event_batch_cb)(void *arg, int64_t first_seq, int64_t last_seq,
				    const void *data, size_t len);
/* Calls cb for the first batch that holds an event after `after`, if there is one. */
int store_event_batch_after(struct store *S, int64_t after, store_event_batch_cb cb, void *arg);
int64_t store_event_max_seq(struct store *S);
int64_t store_event_min_seq(struct store *S);
/* Event seqs up to upto may be sent before their events are stored: recorded in the
 * open batch (durable once store_durable() reaches its mark), so a restart starts above
 * them. 0 or -1. */
int store_seq_reserve(struct store *S, int64_t upto);
int64_t store_seq_reserved(struct store *S); /* 0 when none was recorded */
/* Deletes the batches whose events are all older than the newest keep. */
int store_event_prune(struct store *S, int64_t keep);

/* A small key-value store per owner. Reads see every write made so far, also one that
 * waits in the batch log (a commit in flight, a failing store). Values are bytes. */
typedef int (*store_kv_cb)(void *arg, const char *key, const void *value, size_t len);
int store_kv_put(struct store *S, const char *owner, const char *key, const void *value,
		 size_t len);
int store_kv_delete(struct store *S, const char *owner, const char *key);
/* Calls cb with owner's key and its value (valid during the call): 1; 0 when there is
 * none; -1 when the disk cannot be read now (store_slow). cb may not write. */
int store_kv_get(struct store *S, const char *owner, const char *key, store_kv_cb cb,
		 void *arg);
/* Calls cb for each of owner's keys that start with prefix, in byte order, until it
 * returns non-zero: the number of calls, or -1 (the disk cannot be read now, or out of
 * memory). cb may not write. */
int store_kv_list(struct store *S, const char *owner, const char *prefix, store_kv_cb cb,
		  void *arg);

#endif
