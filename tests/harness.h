/* Test harness: a real engine on a real loop and store in a fresh temp directory,
 * driven until a condition holds (bounded by a timeout, never a bare sleep), with a
 * recorder of bus events and a second SQLite connection to look at what is durable. */
#ifndef AG_HARNESS_H
#define AG_HARNESS_H
#include <stdint.h>

#include "engine.h"

struct h {
	char dir[256];
	struct loop *L;
	struct engine *E;
	struct bus_sub sub;
	char **events; /* JSON of every event seen, in order */
	char **types;
	int nevents, cap;
	const char *openai_base, *anthropic_base; /* set before h_start to reach a mock */
	const char *workspace;                    /* set before h_start: --workspace */
};

/* Creates dir and writes config_json (NULL: none) to dir/config.json. */
void h_dir(struct h *h, const char *config_json);
/* Creates loop + engine on h->dir (recover: run engine_recover). Asserts on failure. */
void h_start(struct h *h, int recover);
/* Stops the engine; at rest (nothing running or queued) it first checks the ledger
 * invariants of every session (h_check_ledger). */
void h_stop(struct h *h);
/* Services the loop until pred(arg) returns non-zero or timeout_ms passes; returns the
 * predicate's last value. */
int h_until(struct h *h, int (*pred)(struct h *h, void *arg), void *arg, int timeout_ms);
/* Services the loop for ms (lets timers such as the store commit run). */
void h_spin(struct h *h, int ms);
int h_idle(struct h *h, void *session_id); /* predicate: the tree is not busy */
/* Count of recorded events of a type (optionally for one session). */
int h_count(struct h *h, const char *type, const char *session_id);
/* Creates a session, returns its id in out. */
void h_session(struct h *h, char *out);
/* Prompts, asserts acceptance; the turn id goes to turn_out when given. */
void h_prompt(struct h *h, const char *sid, const char *text, const char *source,
	      char *turn_out);
/* Same with a model (PROVIDER/MODEL). */
void h_prompt_model(struct h *h, const char *sid, const char *text, const char *model,
		    char *turn_out);

/* SQL on a separate connection to h->dir/agentgate.db: the first column of the first
 * row as an integer / string (malloc'd, NULL when no row). Tests use the named helpers
 * below; raw SQL is left for the odd question about the store's own format. */
int64_t h_sql_int(struct h *h, const char *sql, ...);
char *h_sql_str(struct h *h, const char *sql, ...);

/* What the store holds, asked by what it means (the schema stays in harness.c). Strings
 * are malloc'd (NULL when there is none); a NULL filter matches anything. */

/* Turns. */
char *h_turn_state(struct h *h, const char *turn);  /* "queued", "running", "completed"... */
char *h_turn_error(struct h *h, const char *turn);  /* why the turn failed */
char *h_turn_key(struct h *h, const char *turn);    /* the turn's dedupe key */
char *h_turn_prompt(struct h *h, const char *turn); /* text of the turn's user message */
int h_turns(struct h *h, const char *sid, const char *state); /* count, in a session */
int h_turns_from(struct h *h, const char *sid, const char *source, const char *state); /* count */
int h_tree_turns(struct h *h, const char *root, const char *state); /* count, in root's tree */
int h_turns_keyed(struct h *h, const char *key); /* count of turns with that dedupe key */
/* The session's newest turn from source in state. */
char *h_last_turn(struct h *h, const char *sid, const char *source, const char *state);
int h_turn_after(struct h *h, const char *turn, const char *before); /* 1: started after it ended */

/* Messages. A reply is an assistant message: one per step of a turn. */
int h_messages(struct h *h, const char *sid, const char *role); /* count */
int h_replies(struct h *h, const char *turn, const char *finish); /* count, of the turn */
int h_unfinished(struct h *h, const char *sid); /* replies with no finish yet */
int h_unanswered(struct h *h, const char *sid); /* turns' user messages without one terminal reply */
char *h_reply_error(struct h *h, const char *turn); /* message of the reply that ended in error */
char *h_reply_error_name(struct h *h, const char *turn, const char *finish); /* its error's name */
int64_t h_reply_tokens(struct h *h, const char *turn); /* output tokens of the first reply */

/* Reply parts; "of" is a session or a turn id. */
char *h_reply_text(struct h *h, const char *turn);  /* its text parts in order, '|' between */
char *h_last_text(struct h *h, const char *of);     /* the newest text part */
int64_t h_reply_len(struct h *h, const char *turn); /* characters in the turn's text parts */
int64_t h_longest_text(struct h *h, const char *sid); /* characters in the longest text part */
int h_parts(struct h *h, const char *of, const char *type); /* count of parts of a type */
int h_parts_mentioning(struct h *h, const char *text); /* count of parts holding text, any case */

/* Tool calls (tool parts); "of" is a session or a turn id. */
int h_tool_calls(struct h *h, const char *of, const char *tool, const char *status); /* count */
char *h_tool_output(struct h *h, const char *of, const char *tool); /* the first call's output */
char *h_tool_input(struct h *h, const char *of, const char *tool); /* its input, as JSON */
char *h_tool_error(struct h *h, const char *of); /* error of the newest call that failed */
int h_tool_errors_like(struct h *h, const char *pattern); /* count of errors matching SQL LIKE */
char *h_task_session(struct h *h, const char *sid); /* session its first tool call started */

/* Sessions. */
char *h_session_at(struct h *h, int i); /* the i-th session by id */
int h_sessions(struct h *h, const char *root); /* count, in root's tree */
char *h_session_title(struct h *h, const char *sid);
char *h_child(struct h *h, const char *parent); /* the first child session */
int h_children(struct h *h, const char *parent); /* count of child sessions */
char *h_parent(struct h *h, const char *sid);
char *h_spawned_by(struct h *h, const char *sid); /* id of the tool call that started it */
int h_depth(struct h *h, const char *sid); /* 0 for a root */
int h_deepest(struct h *h); /* the greatest depth of any session */

/* The value of owner's kv key on disk, as text (NULL: none). */
char *h_kv_value(struct h *h, const char *owner, const char *key);
/* The engine's listing of owner's kv keys under prefix, "k=v,k=v" (text values; NULL
 * when the listing failed). Not the disk's: the engine's view, writes waiting included. */
char *h_kv_list(struct h *h, const char *owner, const char *prefix);

/* The highest event seq the store holds (0: none). */
int64_t h_durable_seq(struct h *h);

/* The DESIGN.md ledger invariants, checked on what is durable (flushes first): one
 * terminal assistant message per turn's user message (a noReply message has no turn and
 * no reply), bound to its turn, none unfinished, turns one at a time in order, replies
 * never overlapping, nothing left queued or running. */
void h_check_ledger(struct h *h, const char *sid);

#endif
