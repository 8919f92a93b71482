/* Internal to the engine's files (engine.c sessions, msg.c messages and parts,
 * turn.c the ledger, step.c the agent loop). Loop thread only. */
#ifndef AG_ENGINE_INT_H
#define AG_ENGINE_INT_H
#include "command.h"
#include "engine.h"
#include "hooks.h"
#include "id.h"
#include "store.h"
#include "vec.h"

#define SES_BUCKETS 1024

enum status_type { ST_IDLE, ST_BUSY, ST_RETRY };
/* What became of prompts, by source (stats.c) */
enum stat_outcome { STAT_ACCEPTED, STAT_COALESCED, STAT_COMPLETED, STAT_FAILED, STAT_CANCELLED,
		    STAT_KEPT, /* a noReply prompt: its user message kept, no turn */
		    STAT_OUTCOMES };
struct turn_stat {
	char source[48];
	uint64_t n[STAT_OUTCOMES];
};
enum turn_state { T_QUEUED, T_RUNNING, T_COMPLETED, T_FAILED, T_CANCELLED };
/* P_FILE, P_AGENT, P_SUBTASK: a user message's attachments, @agent mentions and
 * subtasks (OpenCode's FilePart, AgentPart, SubtaskPart), their fields in extra */
enum part_type { P_TEXT, P_REASONING, P_TOOL, P_STEP_START, P_STEP_FINISH, P_COMPACTION,
		 P_FILE, P_AGENT, P_SUBTASK };
enum tool_state { TS_PENDING, TS_RUNNING, TS_COMPLETED, TS_ERROR };

struct engine {
	struct loop *L;
	int lock_fd;         /* the data directory's lock (datadir.h) */
	int store_lock_fd;   /* a SQLite store's directory's, when not the data directory */
	struct store *S;
	struct bus *B;
	struct llm *M;
	struct llmio *io;   /* the LLM I/O thread (network providers) */
	void *host;         /* the plugin host (engine_set_host), opaque here */
	struct config C;
	struct agents A;
	struct commands cmds; /* the config's prompt templates (command.h) */
	struct tools T;
	struct session *buckets[SES_BUCKETS];
	struct part *dirty;  /* parts whose text changed since the last store write */
	struct jw jw;        /* scratch writer for events */
	int running;         /* sessions with a running turn */
	const char *aborting[16]; /* sessions whose subtree engine_abort is ending now */
	int naborting;
	struct timer sweeper;
	int sweep_fast;      /* the sweeper runs every SWEEP_MS (else SWEEP_IDLE_MS) */
	int closing;
	struct turn_stat *stats;   /* turns by source and outcome, for GET /metrics (stats.c) */
	int nstats, capstats;
	struct toolrun *calls[64]; /* running and just-finished tool calls, by id */
	uint64_t next_call_id, calls_dropped;
	char *workspace;     /* engine_workspace: the default directory of root sessions */
	char *data_dir;      /* engine_data_dir: the data directory, absolute */
	struct {
		struct perm_rules defaults, global; /* the built-in rules, then the config's */
		int64_t timeout_ms;  /* permission.timeout_ms: 0, asks wait for ever */
		struct ask *asks;    /* waiting on a human, oldest first */
		uint64_t seq;        /* asks made so far (an ask's place in time) */
		struct approval *approved; /* "always" replies, per session tree */
	} perm;
	struct {
		int automatic;   /* compaction.auto: compact before a turn that would not fit */
		int64_t reserve; /* compaction.reserve_tokens (0: from the model's output limit) */
		int prune;       /* compaction.prune: clear old tool outputs after each turn */
	} compact;
	struct cluster *cluster; /* several nodes share the store (cluster.c), or NULL */
	struct {
		struct hook *head[HOOK_COUNT];
		struct bus_sub sub; /* HOOK_EVENT's bus subscription, while it has callbacks */
		int observing, running;
		int in_event; /* HOOK_EVENT callbacks are running (engine_emit waits) */
	} H;
};

struct session {
	struct session *hnext;
	char id[ID_MAX], parent_id[ID_MAX], root_id[ID_MAX];
	char *parent_tool_call_id;
	char *path;
	int depth;
	char *title, *agent, *model, *directory;
	int64_t created, updated;
	struct turnq q;
	struct turn *cur;
	enum status_type status;
	int retry_attempt;
	char *retry_msg;
	int64_t retry_next;
	struct timer kick;
	int64_t last_activity;  /* time of the session's last stream event */
	int64_t last_used;      /* for evicting idle sessions from the cache */
	int background;         /* a background task's child: its parent is woken when it ends */
	int asks;               /* its tool calls' asks waiting on a human */
	int waiting;            /* asks waiting on a human in its subtree, its own included */
	/* a subagent's session: the turn its task started, for HOOK_SUBAGENT_START/END */
	char subagent_turn[ID_MAX];
	/* the ended turns' messages as the model sees them, up to turn hist_upto (step.c) */
	cJSON *hist;
	char hist_upto[ID_MAX];
	struct prune_state *prune; /* what clearing old tool outputs knows (compact.c) */
	/* tokens of the context its next request starts from: the last step's prompt and
	 * reply (0 after a compaction), known once read (compact.c) */
	int64_t ctx_tokens;
	int ctx_known;
	struct revert_point *revert; /* the point its history is rewound to (revert.c), or NULL */
	struct engine *E;
};

struct part {
	struct part *next;
	/* the engine's dirty list (E->dirty): streamed parts whose text the store lacks */
	struct part *dnext, **dprev;
	int dirty;
	int64_t stored_us; /* when the store last got its text (monotonic) */
	char id[ID_MAX];
	struct msg *m;
	enum part_type type;
	char *text;
	size_t len, cap;
	/* the text JSON-escaped as it streamed, so the part is re-encoded for the store
	 * every commit without escaping it all again */
	struct jw esc;
	int64_t start, end;
	char *call_id, *tool, *input, *output, *error, *title, *meta;
	enum tool_state ts;
	char *reason;
	struct llm_usage tokens;
	int flags; /* P_COMPACTION: its COMPACT_* bits */
	/* members written after the type's own, in order (a user part's fields: a file's
	 * mime, filename, url, source; a text's synthetic, ignored, metadata), or NULL */
	cJSON *extra;
};

struct msg {
	char id[ID_MAX];
	struct session *s;
	struct turn *t;
	int assistant;
	char parent_id[ID_MAX];
	char *agent, *provider, *model;
	char *finish;
	char *error_json; /* {"name":..,"data":{..}} */
	struct llm_usage tokens;
	int64_t created, completed;
	int summary; /* a compaction's summary: summary: true, agent and mode "compaction" */
	struct part *parts, *tail;
	struct part *open[2]; /* text / reasoning part receiving deltas */
	/* a user message's prompt options (OpenCode's UserMessage.system and .tools, the
	 * latter as JSON text), NULL when the prompt gave none */
	char *system, *tools;
	/* a user message without a turn (noReply): who sent it, and its place in the turn
	 * order (an id from the turn sequence; the store keeps it as the row's turn_id) */
	char *source;
	char order[ID_MAX];
};

struct toolrun {
	struct tool_call pub;   /* pub.id: the handle tools complete it by */
	struct toolrun *next;
	struct toolrun *hnext;  /* E->calls, by id, while the run exists */
	struct turn *t;
	struct part *p;
	const struct tool_def *def;
	cJSON *input;
	int finished;
};

struct turn {
	struct turnq_item qi;
	struct session *s;
	char id[ID_MAX], user_msg[ID_MAX];
	char *source, *dedupe, *agent, *model;
	enum turn_policy policy;
	enum turn_state state;
	char *error;
	int64_t created, started, ended;
	int steps;
	struct msg *am;          /* the assistant message of the current step */
	struct llm_stream *stream;
	struct toolrun *tools;
	int tools_pending;
	struct timer cont;       /* continues the loop after tools, outside their callbacks */
	struct turn_waiter *waiters;
	char terminal_msg[ID_MAX];
	/* the names of the tools the current step's request offered, when a provider
	 * request hook changed them (NULL: the agent's) */
	cJSON *offered;
	int compact;          /* a compaction turn: its COMPACT_* bits (0: a prompt's turn) */
	int compacted;        /* an automatic compaction was put in front of it */
	int overflow_retried; /* its request was retried once after a context overflow */
	/* what the prompt asked of this turn (turnopts.c, loaded when it starts): an extra
	 * system prompt, tools on or off ({name: bool}), subtasks to run first */
	char *system;
	cJSON *tools_map, *subtasks;
};

/* session.c: the session cache */
struct session *session_get(struct engine *E, const char *id);
/* Why session_get found no session id, in e: ERR_NOTFOUND, or ERR_UNAVAILABLE naming
 * the store's failure when it could not be read (PostgreSQL unreachable, a slow disk).
 * Returns -1. */
int session_missing(struct engine *E, const char *id, struct err *e);
/* The session if it is in the cache (the store is not read), else NULL. */
struct session *session_cached(struct engine *E, const char *id);
/* The root of session id's tree into root (ID_MAX), from the cache or one store read,
 * caching nothing (the tree may be another node's): 1, 0 for no such session, -1 when
 * the store cannot be read now. */
int session_root(struct engine *E, const char *id, char *root);
/* A new session in the cache (not yet in the store), or NULL. */
struct session *session_alloc(struct engine *E, const char *id);
void session_env(const struct session *s, const struct turn *t, struct bus_env *env);
void session_set_status(struct engine *E, struct session *s, enum status_type st);
/* Publishes session.status as it stands (a permission note came or went). */
void session_announce_status(struct engine *E, struct session *s);
/* Writes the status object ({type, attempt?, message?, next?, permission?}), with the
 * session's parentID inside it when parent is set. */
void session_status_json(struct engine *E, const struct session *s, struct jw *w, int parent);
/* 1 if path (root/.../id) has the segment id: the session at path is id or below it. */
int session_path_has(const char *path, const char *id);
void session_write_json(const struct session *s, struct jw *w);
void session_kick(struct session *s);
void session_unlink(struct engine *E, struct session *s);
void session_free(struct session *s);
/* Publishes the event built in E->jw (bus_begin) as the session's activity. */
void session_publish(struct engine *E, struct session *s, struct turn *t, const char *type);
/* Writes the session row and announces it (session.created / session.updated). */
void session_save(struct engine *E, struct session *s, const char *type);
/* Calls fn for every cached session in id's subtree, id included. */
void session_for_tree(struct engine *E, const char *id, void (*fn)(struct session *, void *),
		      void *arg);

/* revert.c: where a session's history is rewound to (Session.revert) */
struct revert_point {
	char message_id[ID_MAX]; /* the first message hidden */
	char part_id[ID_MAX];    /* "", or inside message_id the first part hidden */
	char turn_id[ID_MAX];    /* message_id's turn: its place in the conversation */
	char *snapshot, *diff;   /* what the plugins kept, or NULL */
};
/* Writes "revert": {...} into the session's JSON object when it is rewound. */
void revert_write_json(const struct session *s, struct jw *w);
/* Reads the point back from a stored Session JSON (d: its object). */
void revert_load(struct session *s, const cJSON *d);
void revert_free(struct revert_point *rp);
/* The next prompt of a rewound session deletes the hidden messages for good: the
 * writes join the prompt's (call it after its store_mark), and the point it cleared
 * is returned (NULL when the session was not rewound) for revert_settle. */
struct revert_point *revert_commit(struct engine *E, struct session *s);
/* After the prompt's commit: forgotten (its writes were dropped) puts the point back;
 * else it is freed. */
void revert_settle(struct session *s, struct revert_point *rp, int forgotten);

/* engine.c */
/* 0 when the store can write; else ERR_UNAVAILABLE naming why and that what (e.g. "the
 * prompt") was not accepted. */
int engine_store_ok(struct engine *E, const char *what, struct err *e);
/* Commits the writes made since mark (store_mark), as store_commit_since: 0; -1 they
 * were forgotten, e says what was not accepted and why; STORE_LATE they are kept and
 * will be written, e says it is not on disk yet. */
int engine_commit(struct engine *E, uint64_t mark, const char *what, struct err *e);

/* msg.c */
/* A compaction turn's kind (its user message's compaction part, turn->compact). */
#define COMPACT_ON 1       /* a compaction turn (POST /session/{id}/summarize alone) */
#define COMPACT_AUTO 2     /* started by the engine: the context nears the model's limit */
#define COMPACT_OVERFLOW 4 /* started by a provider's context-overflow error */
struct msg *msg_new(struct engine *E, struct session *s, struct turn *t, int assistant);
void msg_free(struct engine *E, struct msg *m);
struct part *part_add(struct engine *E, struct msg *m, enum part_type type);
void part_append(struct engine *E, struct part *p, const char *s, size_t n);
/* store + message.updated / message.part.updated; 0, or -1 when the store refused */
int msg_save(struct engine *E, struct msg *m);
/* Publishes a stored message's info (type message.updated, key "info") or part
 * (message.part.updated, "part") from its JSON, for s. */
void msg_publish_json(struct engine *E, struct session *s, const char *type, const char *key,
		      const char *json);
int part_save(struct engine *E, struct part *p);
void msg_write_info(const struct msg *m, struct jw *w);
void part_write_json(const struct part *p, struct jw *w);
void msg_set_error(struct msg *m, const char *name, const char *message, int status,
		   int retryable);
void msg_close_open_parts(struct engine *E, struct msg *m);
/* Deletes a message and its parts from the store, announcing message.part.removed and
 * message.removed; m stays for the caller to free. */
int msg_delete(struct engine *E, struct msg *m);
/* 1 for an assistant message's finish that stands (not NULL, "error" or "aborted"). */
int msg_finished_ok(const char *finish);
/* OpenCode's message.part.removed (part_id set) / message.removed: {sessionID,
 * messageID[, partID]}, with t's envelope (t may be NULL). */
void msg_publish_removed(struct engine *E, struct session *s, struct turn *t,
			 const char *message_id, const char *part_id);
/* Streamed text goes to the store at most every PART_STORE_MS per part (the commit
 * hook, msg_store_due), so a long reply is not rewritten whole ten times a second;
 * its deltas are in the event log by the next commit. Reads that need a session's
 * parts as they are now call msg_flush_session first (msg_flush_dirty: all). */
#define PART_STORE_MS 500
void msg_flush_dirty(void *arg);
/* msg_flush_dirty for one session's parts: what a read of its messages needs, without
 * rewriting every other stream's part (a thousand streams, a thousand prompts). */
void msg_flush_session(struct engine *E, const char *session_id);
void msg_store_due(void *arg); /* store flush hook */
void session_emit_error(struct engine *E, struct session *s, struct turn *t,
			const char *error_json);

/* turn.c */
#define SWEEP_MS 2000
/* While the store cannot write, queued turns wait, checking this often. */
#define STORE_WAIT_MS 500
/* Writes kept in memory for a failing store past this end the running turns (their
 * text so far is kept and written when the store recovers). */
#define STORE_PENDING_MAX (64u << 20)
/* With every cached session idle the sweeper only evicts: it runs this seldom. */
#define SWEEP_IDLE_MS 60000
/* The no-silent-busy sweeper (a timer callback), every SWEEP_MS while a session is busy,
 * else every SWEEP_IDLE_MS; turn_sweep_soon brings it back to SWEEP_MS (a session
 * became busy). */
void turn_sweep(struct timer *t);
void turn_sweep_soon(struct engine *E);
/* The implementations of engine_prompt, engine_waiter_cancel, engine_abort,
 * engine_turn_cancel, engine_recover and engine_shutdown (engine.h documents them). */
int turn_accept(struct engine *E, const struct prompt *p, struct prompt_result *r,
		struct turn_waiter *w, struct err *e);
void turn_waiter_cancel(struct engine *E, struct turn_waiter *w);
int turn_abort_tree(struct engine *E, const char *session_id, struct err *e);
int turn_cancel(struct engine *E, const char *session_id, const char *turn_id, struct err *e);
int turn_recover(struct engine *E, int resume_queued);
/* turn_recover for one session tree (root NULL: every tree). */
int turn_recover_tree(struct engine *E, const char *root, int resume_queued);
/* A tree with no turn running: its queued turns leave memory (their waiters are told
 * why), staying queued in the store for the node that takes it next. -1 while a turn of
 * the tree runs. */
int turn_hand_over_tree(struct engine *E, const char *root, const char *why);
/* cluster.c: starts the node (engine_create, with opts.bus nats://). */
int engine_cluster_start(struct engine *E, const char *pg_url, const char *node,
			 const char *node_url, int64_t lease_ms, struct err *e);
void turn_shutdown(struct engine *E);
void turn_start_next(struct session *s);
struct turn *turn_alloc(struct session *s, const char *id, const char *user_msg,
			const char *source, const char *dedupe, const char *agent,
			const char *model);
/* Writes t's user message: the prompt's parts (moved out of u, userparts.h) with its
 * options (p's system and tools), or a compaction turn's compaction part (p and u
 * unused: NULL). 0, or -1 out of memory. */
struct uparts;
int turn_write_user(struct engine *E, struct turn *t, const struct prompt *p,
		    struct uparts *u);
void turn_end(struct turn *t, enum turn_state st, const char *err_name, const char *err_msg);
int turn_save(struct engine *E, struct turn *t);
/* While engine_abort is ending a subtree that contains session_id: the session it was
 * first called on (session_id itself or an ancestor); else NULL. */
const char *turn_abort_origin(struct engine *E, const char *session_id);
const char *turn_state_name(enum turn_state st);
void turn_free(struct turn *t);

/* permission.c (engine.h has the asks' public face) */
/* The built-in rules, the config's and permission.timeout_ms; -1 with e naming a bad one. */
int permission_init(struct engine *E, struct err *e);
void permission_free(struct engine *E);
/* Call id ended (done, failed, cancelled): its pending asks end as not allowed, why. */
void permission_call_ended(struct engine *E, uint64_t call, const char *why);
/* Forgets the "always" replies of the tree rooted at root_id (deleted). */
void permission_forget_tree(struct engine *E, const char *root_id);
/* The note a session's busy status carries while it has asks pending (message,
 * permission: the oldest ask's id). */
void permission_status_note(struct engine *E, const struct session *s, struct jw *w);

/* stats.c: counts a turn of source accepted, coalesced into another, or ended */
void stats_turn(struct engine *E, const char *source, enum stat_outcome o);

/* task.c: registers task and check_task (built on engine.h, tool.h and hooks.h only) */
int task_register_tools(struct engine *E);

/* hooks.c */
/* Runs the callbacks at a point; -1 when one refused (the reason in why, which may be
 * NULL where refusing does not apply). */
int hooks_run(struct engine *E, enum hook_point at, const struct hook_ctx *ctx, void *data,
	      char *why, size_t why_len);
void hooks_ctx(const struct session *s, const struct turn *t, struct hook_ctx *c);
/* 1 when anything is registered at the point (saves building its data otherwise). */
#define hooks_any(E, at) ((E)->H.head[(at)] != NULL)
void hooks_free(struct engine *E);

/* The engine's side of the data the changing points hand out (hooks.h): the hook_*_set
 * functions find it from the public part and keep what they are given here. */
struct hook_prompt_run {
	struct hook_prompt pub;
	char *text; /* the replaced text, or NULL (owned) */
};

struct hook_request_run {
	struct hook_request pub; /* pub.rq = &rq */
	struct llm_request rq;
	struct engine *E;
	char *system;            /* owned once appended to (rq.system) */
	cJSON *tools;            /* owned (rq.tools) */
	cJSON *params, *headers; /* owned once set (rq.params, rq.headers) */
	int tools_changed;
};
void hook_request_free(struct hook_request_run *hr);

struct hook_compact_run {
	struct hook_compact pub;
	char *summary; /* set by a callback (owned), or NULL */
};

struct hook_tool_run {
	struct hook_tool pub;
	enum hook_point at;
	struct toolrun *r;
};

/* tool_call.c: a call's part is final; the last one of a turn continues the loop */
void toolrun_finish(struct toolrun *r);
/* Gives r its id and makes it findable by it; toolrun_forget when it is freed. */
void toolrun_track(struct engine *E, struct toolrun *r);
void toolrun_forget(struct engine *E, struct toolrun *r);
/* The running (not finished) call with that id, or NULL; nothing counted. */
struct toolrun *toolrun_find(struct engine *E, uint64_t id);
/* Runs HOOK_TOOL_BEFORE or HOOK_TOOL_AFTER for r (which they may change); -1 refused,
 * with why (TOOL_BEFORE). */
int toolrun_hooks(struct toolrun *r, enum hook_point at, char *why, size_t why_len);

/* step.c */
void step_begin(struct turn *t);
void step_cancel(struct turn *t, const char *why);
/* Fails the turn with its assistant message ending in error {name, message, status,
 * retryable} (a provider's error, a context overflow). */
void step_fail(struct turn *t, const char *name, const char *message, int status,
	       int retryable);
/* The callbacks of a step's stream (compact.c takes text, error and retry from them). */
extern const struct llm_sink step_sink;
/* Opens t's next step: its assistant message (with a step-start part) and the messages
 * its request sends, the session's kept history and its own turn's (a new array). NULL
 * when that failed: the turn ended. */
cJSON *step_open(struct turn *t);
/* The history kept with s is stale (a revert, a prune): rebuilt from the store at the
 * next step. */
void session_forget_history(struct session *s);
/* Starts t's provider request with system, tools (taken) and msgs, reporting to sink
 * with t as its argument, after HOOK_PROVIDER_REQUEST; a failure ends the turn. */
void step_request(struct turn *t, const char *system, cJSON *tools, const cJSON *msgs,
		  int64_t stall_ms, const struct llm_sink *sink);
/* The step's message is final: its parts closed, a step-finish part, finish and usage. */
void step_finish_message(struct engine *E, struct turn *t, const char *finish,
			 const struct llm_usage *u);

/* compact.c: a long session outlives its model's context window. A compaction turn asks
 * the model (or a HOOK_SESSION_COMPACT callback) for a summary of the history before it;
 * from then on the model sees the summary instead of that history (step.c's history). It
 * runs in the session's turn queue like every turn: asked for (POST .../summarize, a
 * prompt with compact set), put in front of the next turn when the last request's
 * context nears the model's limit, or in front of a turn whose request the provider
 * refused as over the context window (that turn then runs its request once more). */
/* compaction.auto, .prune and .reserve_tokens; -1 with e naming a bad value. */
int compact_init(struct engine *E, struct err *e);
/* turn_start_next: before the next queued turn starts, a compaction goes in front of it
 * when the session's context nears its model's limit. */
void compact_before_start(struct session *s);
/* step_begin of a compaction turn: its summary. */
void compact_step(struct turn *t);
/* A step's request failed as over the context window: 1 when that is handled (a
 * compaction put in front of the turn, which waits to run its request again; or the
 * turn failed naming the cause), 0 for the usual failure. */
int compact_on_overflow(struct turn *t, const struct llm_error *le);
/* A step of a prompt's turn finished with usage u: the context the next one starts from. */
void compact_note_usage(struct session *s, const struct llm_usage *u);
/* The texts a compaction turn stands for in history: its request (the instruction, in
 * its own turn) and the question its summary answers (in later turns). */
const char *compact_instruction(void);
const char *compact_question(void);
/* After a prompt's turn (turn_id) completed: the oldest tool outputs are cleared from what the
 * model is sent (OpenCode's prune): once the outputs behind the last two prompts pass
 * PRUNE_PROTECT tokens, those older than that are marked compacted (state.time.
 * compacted, message.part.updated) if that frees PRUNE_MINIMUM tokens at least. The
 * store keeps the outputs; the history says PRUNED_OUTPUT instead. */
#define PRUNE_PROTECT 40000
#define PRUNE_MINIMUM 20000
#define PRUNED_OUTPUT "[Old tool result content cleared]"
void compact_prune(struct session *s, const char *turn_id);
/* Forgets what compact_prune kept of s (its messages changed: a revert; a freed session). */
void compact_forget(struct session *s);
/* Recovery: the compaction bits of a turn read back from the store (0: a prompt's). */
int compact_kind(struct engine *E, const char *user_msg);

/* todo.c: drops a deleted session's todo list (in the deletion's batch). */
void todo_forget(struct engine *E, const char *session_id);

#endif
