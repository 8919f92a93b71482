/* engine: sessions, the turn ledger and the agent loop. Every prompt, whatever its
 * source, becomes a durable user message plus a turn in its session's FIFO queue before
 * it is acknowledged; one turn runs at a time; each turn is bound to its user message
 * and ends with exactly one terminal assistant message. Every change is published on
 * the bus. Loop thread only; strings passed in are borrowed for the call. */
#ifndef AG_ENGINE_H
#define AG_ENGINE_H
#include <stdint.h>

#include "agent.h"
#include "bus.h"
#include "command.h"
#include "config.h"
#include "err.h"
#include "id.h"
#include "jw.h"
#include "llm.h"
#include "loop.h"
#include "tool.h"
#include "turnq.h"

struct engine;
struct session;

struct engine_opts {
	const char *data_dir;
	const char *owner;       /* who holds the data directory: "agentgate serve at URL" */
	const char *config_path; /* NULL: defaults */
	const char *model;       /* overrides the config's default model */
	int64_t stall_ms;        /* > 0 overrides config and environment */
	const char *openai_base_url, *anthropic_base_url; /* flags override env/config */
	const char *workspace;   /* --workspace: over the config's "workspace", over the cwd */
	const char *store;       /* --store: over the config's "store", over DATA/agentgate.db */
	const char *bus;         /* --bus: over the config's "bus", over "local"; nats://HOST:PORT:
				  * a cluster node */
	const char *node;        /* a cluster node's name (unique among the nodes) */
	const char *node_url;    /* how the node is reached, for GET /global/health */
	int64_t lease_ms;        /* a cluster node's session leases expire after this */
};

/* Takes the data directory's lock (datadir.h: a second owner gets ERR_BUSY naming the
 * first), opens the store (sqlite:PATH or postgres://...: store.h; a SQLite file outside
 * the data directory has its own directory locked too), loads config, agents, tools and
 * providers. NULL with e filled. */
struct engine *engine_create(struct loop *L, const struct engine_opts *o, struct err *e);
/* Reads the config file at path as engine_create would — numbers and limits, agents,
 * permission rules, the workspace, the providers (scripted rules included) and the
 * model — without a data directory: 0, or -1 with e naming the first problem. */
int engine_check_config(struct loop *L, const char *path, struct err *e);
/* Ends running turns as interrupted (in memory only: a restart recovers them the same
 * way), flushes and frees everything. */
void engine_destroy(struct engine *E);
/* Graceful stop: running turns fail with "interrupted" (terminal messages written),
 * queued turns stay queued for the next start, everything is committed. */
void engine_shutdown(struct engine *E);
/* ---- several nodes on one PostgreSQL store (cluster.c) ----
 * With opts.bus nats://..., engine_create opens the store shared and starts the node:
 * a session tree runs on the node holding its lease (store/lease.h). */

/* Who runs session_id's tree: 0 this node (the lease is taken if it was free; a tree
 * new to this node is recovered first, as after a restart); 1 another node, named in
 * node (LEASE_NODE_MAX bytes: 64; a draining node names a live peer for a free tree);
 * -1 and e: ERR_NOTFOUND, or ERR_UNAVAILABLE (PostgreSQL unreachable, or draining with
 * no peer up). Always 0 on a single node. */
int engine_owner(struct engine *E, const char *session_id, char *node, struct err *e);
/* A root session was created here: its lease is taken at once. */
void engine_cluster_created(struct engine *E, const char *root);
/* Graceful drain: no lease is taken any more; idle trees are given up now, busy ones
 * when their turns end; then done(arg) runs (at once on a single node). */
void engine_cluster_drain(struct engine *E, void (*done)(void *arg), void *arg);
/* Stops the node's timer and, when the last writes were durable, gives up every lease
 * and leaves the node table (else the leases expire). engine_destroy calls it. */
void engine_cluster_stop(struct engine *E, int durable);
/* The node's name, or NULL on a single node. */
const char *engine_node(struct engine *E);
int engine_draining(struct engine *E);
/* Calls fn with the name of every other node whose heartbeat is within the lease
 * expiry: the nodes in the table, or -1 and e. */
int engine_cluster_peers(struct engine *E, void (*fn)(void *arg, const char *node), void *arg,
			 struct err *e);
/* Is the node's heartbeat within the lease expiry: 1, 0, or -1 and e. */
int engine_node_alive(struct engine *E, const char *node, struct err *e);
int64_t engine_lease_ms(struct engine *E); /* 0 on a single node */
/* {node, draining, leases, leaseMs, error?, nodes: [{id, url, alive, draining, leases,
 * seenMsAgo}]} for GET /global/health. Cluster nodes only. */
void engine_cluster_json(struct engine *E, struct jw *w);
struct engine_cluster_counts {
	int held, draining, lease_ok;
	uint64_t taken, released, adopted;
};
void engine_cluster_counts(struct engine *E, struct engine_cluster_counts *out);

/* Start-up recovery: turns left running by a crash fail with "interrupted"; queued
 * turns are put back in their queues and start when resume_queued is set (serve), or
 * are left queued for the server (run). */
int engine_recover(struct engine *E, int resume_queued);

struct bus *engine_bus(struct engine *E);
const struct config *engine_config(struct engine *E);
const struct agents *engine_agents(struct engine *E);
/* The config's prompt templates (command.h). */
const struct commands *engine_commands(struct engine *E);
/* NULL while the store writes; else why it cannot (store_failure). */
const char *engine_store_failure(struct engine *E);
/* 1 while the disk is so slow that reading the store would wait for it (store_slow). */
int engine_store_slow(struct engine *E);
/* Commits pending writes now (streamed text included). */
int engine_flush(struct engine *E);

struct session_params {
	const char *parent_id;           /* NULL: a root session */
	const char *parent_tool_call_id; /* the task call that made it */
	const char *title, *agent, *model, *directory;
	int background; /* the child of a background task */
};
/* Creates a session; its id is written to id_out (ID_MAX bytes). */
int engine_session_create(struct engine *E, const struct session_params *p, char *id_out,
			  struct err *e);
/* 0 if the session exists (loading it from the store), else ERR_NOTFOUND in e. */
int engine_session_exists(struct engine *E, const char *id, struct err *e);
/* What a session is in the tree, and what it is doing. */
struct session_info {
	char id[ID_MAX], parent_id[ID_MAX], root_id[ID_MAX]; /* parent_id "" for a root */
	char title[128];
	int depth, background;
	char model[128];        /* the running turn's model, else the session's, else "" */
	int busy;               /* a turn runs or waits */
	int64_t last_activity;  /* ms since 1970 of its last stream event or provider attempt
				 * (a retry's included), 0 if none */
	int64_t quiet_ms;       /* how long its live provider stream has sent no content (0: none) */
	char directory[4096];   /* its working directory */
};
int engine_session_info(struct engine *E, const char *id, struct session_info *out,
			struct err *e);
/* The plugin host serving this engine, kept for the transports (opaque here), or NULL. */
void engine_set_host(struct engine *E, void *host);
void *engine_host(struct engine *E);
/* The loop the engine runs on (for timers of code built on this header). */
struct loop *engine_loop(struct engine *E);
/* A registered tool's definition, or NULL. */
const struct tool_def *engine_tool(struct engine *E, const char *name);
/* Registers a tool for owner (tools_register on the engine's registry). */
int engine_tool_register(struct engine *E, const struct tool_def *def, const char *owner);
/* Unregisters owner's tool name, or all of owner's tools when name is NULL; -1 if
 * owner has no tool of that name. Running calls keep their definition. */
int engine_tool_unregister(struct engine *E, const char *owner, const char *name);
/* Writes the Session JSON. */
int engine_session_json(struct engine *E, const char *id, struct jw *w, struct err *e);
/* Writes Session[]: every session (parent_id NULL) or the roots (""), most recently
 * updated first, or one parent's children. */
int engine_session_list_json(struct engine *E, const char *parent_id, struct jw *w);
/* What GET /session filters by (OpenCode's query); a member left 0 or NULL filters
 * nothing. Strings are borrowed for the call. */
struct session_query {
	const char *parent_id; /* as engine_session_list_json's */
	int64_t start;         /* updated at or after this (ms since 1970) */
	const char *search;    /* in the title, ASCII letters in either case */
	const char *directory; /* working in exactly this directory */
	const char *under;     /* working in this directory or below it */
	int limit;             /* at most this many */
};
/* engine_session_list_json's Session[], filtered by q (same order). */
int engine_session_query_json(struct engine *E, const struct session_query *q, struct jw *w);
/* The oldest session's creation and the last update of any session (ms since 1970),
 * both 0 when there is no session. 0, or -1 when the store cannot be read. */
int engine_session_times(struct engine *E, int64_t *first_created, int64_t *last_updated);
/* Changes the title (NULL keeps it) and announces session.updated. */
int engine_session_update(struct engine *E, const char *id, const char *title, struct err *e);
/* Deletes a session and its descendants (aborting what runs). */
int engine_session_delete(struct engine *E, const char *id, struct err *e);
/* Writes [{info, parts}] / {info, parts}. */
int engine_messages_json(struct engine *E, const char *session_id, int limit, struct jw *w,
			 struct err *e);
int engine_message_json(struct engine *E, const char *session_id, const char *message_id,
			struct jw *w, struct err *e);
/* Writes {sessionID: status} for every session that is not idle. */
void engine_status_json(struct engine *E, struct jw *w);
/* 1 if the session or any descendant has a running or queued turn. */
int engine_tree_busy(struct engine *E, const char *session_id);

/* ---- fork, revert and the workspace diff (revert.c), OpenCode's semantics ----
 * Messages are in conversation order: by turn, then by id within the turn. */

/* A new root session titled "<title> (fork #N)" with the source's directory, agent
 * and model, and copies (new ids) of its messages before message_id (NULL: all), none
 * of a turn still running or queued and none hidden by a revert. Its id goes to id_out. */
int engine_session_fork(struct engine *E, const char *id, const char *message_id,
			char *id_out, struct err *e);
/* Rewinds the session to message_id (part_id: inside it, the parts from there on):
 * OpenCode's rule picks the point (an assistant message without a part: from its
 * prompt on). The messages from the point on stay in the store and in GET /message,
 * marked by Session.revert; the plugins undo what their hidden tool calls did
 * (HOOK_SESSION_REVERT); the session's next prompt deletes them for good. ERR_BUSY
 * while a turn runs or waits; ERR_NOTFOUND for a message or part it does not have. */
int engine_session_revert(struct engine *E, const char *id, const char *message_id,
			  const char *part_id, struct err *e);
/* Brings back what the last revert hid (and the plugins' files); nothing to do when the
 * session is not rewound. ERR_BUSY while a turn runs or waits. */
int engine_session_unrevert(struct engine *E, const char *id, struct err *e);
/* Deletes a message and its parts (message.removed). ERR_BUSY while its turn runs or
 * waits, naming the turn. */
int engine_message_delete(struct engine *E, const char *session_id, const char *message_id,
			  struct err *e);
/* Writes FileDiff[]: what the session's visible turns changed in the workspace (from
 * its first snapshot to now), or message_id's turn alone, as the plugins tell
 * (HOOK_SESSION_DIFF); [] when none can. */
int engine_session_diff_json(struct engine *E, const char *id, const char *message_id,
			     struct jw *w, struct err *e);

struct prompt {
	const char *session_id;
	const char *text;       /* the prompt, when it has no parts */
	const char *source;     /* web, ws, http, cli, plugin, task ... */
	const char *agent;      /* NULL: the session's */
	const char *model;      /* NULL: agent's, then session's, then default */
	const char *message_id; /* client-chosen user message id (msg_...), or NULL */
	const char *dedupe_key;
	enum turn_policy policy;
	/* OpenCode's parts ([{type: text|file|agent|subtask, ...}], userparts.h): what the
	 * user message keeps, in place of text; NULL: text is the prompt */
	const cJSON *parts;
	int no_reply;           /* keep the user message, run no turn (no reply) */
	const char *system;     /* an extra system prompt for this turn, or NULL */
	const cJSON *tools;     /* {tool: true|false} for this turn (wildcards), or NULL */
	int compact;            /* 1: a compaction (POST /session/{id}/summarize): the turn
				 * asks the model for a summary of the history before it, which
				 * the model sees instead of that history from then on; text,
				 * parts and the options above are not used, nor the prompt
				 * hooks. 2: the same, marked automatic (OpenCode's auto: true) */
};

struct prompt_result {
	char turn_id[48];        /* "" for a noReply prompt: it has no turn */
	char user_message_id[48];
	int coalesced; /* joined an existing turn with the same dedupe key */
};

/* A caller waiting for a turn to end (HTTP POST /message, agentgate run). Embedded in the
 * caller's object; fn runs once on the loop thread with the final state, the id of the
 * terminal assistant message and the turn's error (NULL when it completed) — or, at
 * shutdown, with state "queued", an empty id and why the turn did not run. */
struct turn_waiter {
	void (*fn)(struct turn_waiter *w, const char *state, const char *assistant_message_id,
		   const char *error);
	struct turn_waiter *next;
	void *turn;
};

/* The text of a prompt's parts ([{"type":"text","text":...}, ...]): its text parts
 * joined by a blank line (malloc'd into *out; file, agent and subtask parts are passed
 * over), or -1 with e naming the bad part. */
int engine_parts_text(const cJSON *parts, char **out, struct err *e);

/* Accepts a prompt: durable before it returns 0. w (optional) is attached to the turn;
 * a noReply prompt has none (r->turn_id is "" and w is never called). */
int engine_prompt(struct engine *E, const struct prompt *p, struct prompt_result *r,
		  struct turn_waiter *w, struct err *e);
/* Detaches a waiter that no longer wants its callback (client went away). */
void engine_waiter_cancel(struct engine *E, struct turn_waiter *w);
/* Aborts the session's running and queued turns and those of all its descendants. */
int engine_abort(struct engine *E, const char *session_id, struct err *e);
/* While an engine_abort is ending session_id's turns (e.g. from a turn waiter): the
 * session that abort was called on — session_id itself, or the ancestor whose tree it
 * ends (the first of nested aborts). NULL when no abort is under way for it. The string
 * lives as long as the call that asked. */
const char *engine_abort_origin(struct engine *E, const char *session_id);

/* Cancels a queued turn of the session: it leaves the queue and ends as cancelled the
 * way every turn ends (its user message gets its one terminal reply, with the error
 * "cancelled before it ran"; waiters are called; events published). ERR_BUSY when the
 * turn is running (engine_abort stops it), ERR_NOTFOUND for an unknown session, or a
 * turn it does not have or that has ended. */
int engine_turn_cancel(struct engine *E, const char *session_id, const char *turn_id,
		       struct err *e);

/* Custom events: at most this much properties JSON. */
#define ENGINE_EMIT_MAX (64 * 1024)
/* Publishes an event of type (the plugin host uses plugin.<id>.<name>) with
 * properties_json (a JSON object, copied) and the session's tree envelope, on the bus:
 * every transport, the event log and replay carry it. type: 1 to EVENT_TYPE_MAX bytes
 * of printable ASCII without space, quote or backslash, outside the engine's own
 * namespaces (event_type_reserved). ERR_INVALID naming what is wrong with the type or
 * the properties; ERR_LIMIT over ENGINE_EMIT_MAX; ERR_NOTFOUND for an unknown session;
 * ERR_BUSY from inside a HOOK_EVENT callback (it would reach some subscribers before
 * the event being delivered: post it with loop_post instead). */
int engine_emit(struct engine *E, const char *session_id, const char *type,
		const char *properties_json, struct err *e);

/* A small key-value store per owner (the plugin host gives each plugin its own,
 * "plugin:<id>"), in the engine's store. owner and key: 1 to ENGINE_KV_KEY_MAX bytes
 * (ERR_LIMIT past it, ERR_INVALID when empty); a value: bytes, at most
 * ENGINE_KV_VALUE_MAX. Reads see every write made so far. Strings and values passed in
 * are copied. */
#define ENGINE_KV_KEY_MAX 256
#define ENGINE_KV_VALUE_MAX (64 * 1024)
/* owner's value of key in *value_out (malloc'd, the caller frees it; a NUL follows the
 * len_out bytes). ERR_NOTFOUND when there is none; ERR_UNAVAILABLE while the disk is
 * too slow to read. */
int engine_kv_get(struct engine *E, const char *owner, const char *key, char **value_out,
		  size_t *len_out, struct err *e);
/* Sets key to len bytes of value: durable before it returns 0, like a prompt. While the
 * store cannot write, ERR_UNAVAILABLE (503) naming why: refused and forgotten, or — the
 * disk slow — kept and written later, which the message says. */
int engine_kv_set(struct engine *E, const char *owner, const char *key, const void *value,
		  size_t len, struct err *e);
/* Deletes key, durable as engine_kv_set; ERR_NOTFOUND when there is none. */
int engine_kv_delete(struct engine *E, const char *owner, const char *key, struct err *e);
/* Calls fn for each of owner's keys that start with prefix (NULL or "": all), in byte
 * order, with its value (valid during the call), until fn returns non-zero. fn may read
 * but not write the store. The number of calls, or -1 (a bad owner, the disk too slow
 * to read, out of memory). */
typedef int (*engine_kv_fn)(void *arg, const char *key, const void *value, size_t len);
int engine_kv_list(struct engine *E, const char *owner, const char *prefix, engine_kv_fn fn,
		   void *arg);

/* ---- todo lists (todo.c) ----
 * A session's todo list, OpenCode's Todo[] ({content, status, priority, id?}), set by a
 * plugin (the host's session_todo_set) and durable like a prompt. */
/* Replaces the list with todos_json (a JSON array; "[]" empties it) and publishes
 * todo.updated {sessionID, todos}. ERR_NOTFOUND for an unknown session, ERR_INVALID
 * naming a malformed item, ERR_LIMIT over ENGINE_KV_VALUE_MAX, ERR_UNAVAILABLE while the
 * store cannot write. */
int engine_todo_set(struct engine *E, const char *session_id, const char *todos_json,
		    struct err *e);
/* Writes the session's list ([] when none was set). ERR_NOTFOUND for an unknown
 * session. */
int engine_todo_json(struct engine *E, const char *session_id, struct jw *w, struct err *e);

/* ---- permissions (permission.c) ----
 * A running tool call asks before it acts. The rules decide first (config "permission",
 * then the agent's "permission"; last match wins; allow and deny answer at once, naming
 * the rule), then HOOK_PERMISSION_ASK callbacks (a plugin may decide), then "always"
 * replies remembered for the session's tree, then a human: permission.asked is
 * published with the session's tree envelope and the ask waits, listed by
 * engine_permission_list_json, until engine_permission_reply answers it, the call ends
 * (an abort: "aborted"), or permission.timeout_ms passes. While a human is asked the
 * session shows busy with a note, and the time is neither a stall nor a subagent's
 * budget (HOOK_HUMAN_WAIT pauses it). */

/* The answer: allowed (1) or not (0), and why — the rule, the plugin, the human's
 * message, an abort or the timeout (borrowed for the call). Runs once, on the loop,
 * possibly before engine_permission_ask returns. */
typedef void (*permission_done_fn)(void *arg, int allowed, const char *message);

/* Asks for call_id (a running tool call's tool_call.id) to use permission ("bash",
 * "edit", an MCP tool's name, ...) on patterns (an array of strings: commands, paths;
 * NULL or empty: "*"). always: what an "always" reply remembers (NULL: patterns); title:
 * one line a human reads (NULL: made from the permission and patterns); metadata: an
 * object a client shows (NULL: {}). Everything is copied. 0 once done ran or the ask
 * waits; -1 with ERR_NOTFOUND when call_id is not a running call, ERR_INVALID naming a
 * malformed argument (done is then not called). */
int engine_permission_ask(struct engine *E, uint64_t call_id, const char *permission,
			  const cJSON *patterns, const cJSON *always, const char *title,
			  const cJSON *metadata, permission_done_fn done, void *arg,
			  struct err *e);
/* Answers a pending ask: reply "once" (allowed this time), "always" (allowed, and the
 * ask's always patterns are allowed for the rest of the session tree, which also
 * answers the tree's pending asks they cover) or "reject" (not allowed; message, when
 * given, is what the model reads; the session's other pending asks are rejected too).
 * session_id (may be NULL) must be the ask's session or an ancestor of it. Publishes
 * permission.replied. ERR_NOTFOUND for an ask that is not pending, ERR_INVALID for
 * another reply. */
int engine_permission_reply(struct engine *E, const char *request_id, const char *reply,
			    const char *message, const char *session_id, struct err *e);
/* Writes the pending asks, oldest first, as permission.asked's properties. */
void engine_permission_list_json(struct engine *E, struct jw *w);
/* Writes the rules an agent's asks are judged by (NULL or an unknown name: no agent's),
 * in the order they apply — the built-in defaults, the config's, the agent's; the last
 * that matches wins — as OpenCode's PermissionV2.Ruleset: [{action: the permission,
 * resource: the pattern, effect: allow|ask|deny}]. */
void engine_permission_rules_json(struct engine *E, const char *agent, struct jw *w);

/* The working directory of new root sessions (absolute): --workspace, else the
 * config's "workspace" (relative to the config file), else the process's. Fixed at
 * engine_create; any thread. */
const char *engine_workspace(struct engine *E);
/* The data directory (absolute; "" when it could not be resolved). Any thread. */
const char *engine_data_dir(struct engine *E);
/* The directory a session works in, when the session is in the cache (the store is
 * not read: cheap enough per event), else the workspace. */
const char *engine_session_directory(struct engine *E, const char *id);
/* Publishes command.executed {name, sessionID, arguments, messageID} for a command
 * whose prompt was accepted (command.c). */
void engine_command_executed(struct engine *E, const char *session_id, const char *name,
			     const char *arguments, const char *message_id);

/* GET /metrics: what the engine is doing now, read from its cache (sessions not in
 * memory are idle and not counted). */
struct engine_metrics {
	int sessions[3];          /* in memory, by status: idle, busy, retry */
	int turns_running, turns_queued;
	uint64_t tool_completions_dropped; /* late, repeated or foreign tool completions */
	int store_failing;        /* the store cannot write now */
};
void engine_metrics(struct engine *E, struct engine_metrics *m);
/* Turns by source (http, ws, cli, task, plugin:<id>) and outcome: accepted, coalesced
 * (joined a turn with the same dedupe key), completed, failed, cancelled — each count
 * since the process started. */
typedef void (*engine_count_fn)(void *arg, const char *source, const char *outcome, uint64_t n);
void engine_turn_counts(struct engine *E, engine_count_fn fn, void *arg);
/* The provider supervisor (llm_stats for its counters). */
struct llm *engine_llm(struct engine *E);

/* Number of sessions with a running turn (for the sweeper and tests). */
int engine_running(struct engine *E);

#endif
