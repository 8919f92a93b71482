/* agentgate plugin ABI, version 1.1. The only header a plugin needs: it depends on the C
 * standard headers alone, and a plugin links nothing from the gateway — everything it
 * may call arrives as the host table handed to on_load.
 *
 * A plugin is a shared object exporting one function, AG_PLUGIN_ENTRY, that returns a
 * const descriptor (struct ag_plugin_info). The gateway dlopen()s it with RTLD_NOW |
 * RTLD_LOCAL, checks the descriptor, calls on_load on its service thread (the "loop")
 * and, at shutdown, on_unload. Everything a plugin registered (hooks, tools, timers) is
 * removed when it unloads.
 *
 * Rules every declaration below follows (sdk/ABI.md says them at length):
 *  - Versions. AG_ABI_MAJOR changes only when an existing field or function changes
 *    meaning or place; the host loads a plugin only of its own major. AG_ABI_MINOR grows
 *    when something is appended; a plugin of a newer minor still loads, and what the
 *    host lacks reads as NULL through AG_HOST_FN.
 *  - Sizes. Every struct starts with `uint32_t size` (its size as the writer knew it)
 *    and only grows at its end. Read a field newer than your minimum with AG_HAS.
 *  - Ownership. Pointers passed to you are borrowed for the call (copy what you keep).
 *    What you pass in is copied by the host before the call returns. Out-values you
 *    hand back (the `*_out` and `reason` fields of hook data, strings returned to you)
 *    are allocated with host->alloc / host->strdup and freed with host->free; the host
 *    frees the out-values you set in hook data.
 *  - Threads. Each function says where it may be called: "loop" functions only on the
 *    gateway's service thread (in on_load, hooks, tool run/cancel, timers, post
 *    callbacks, prompt done callbacks); called from another thread they do nothing and
 *    return AG_E_THREAD. "any" functions are safe from every thread.
 *  - Errors. Functions return AG_OK (0) or a negative AG_E_* code; those that can fail
 *    for a reason worth telling fill an optional struct ag_error. A hook that returns
 *    an error, or hands back a malformed out-value, fails open: the gateway goes on as
 *    if the hook were absent, logs the plugin id and the reason, and counts it.
 */
#ifndef AGENTGATE_PLUGIN_H
#define AGENTGATE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AG_PLUGIN_MAGIC 0x41475031u /* "AGP1" */
#define AG_ABI_MAJOR 1
#define AG_ABI_MINOR 1

/* The one symbol a plugin exports. */
#define AG_PLUGIN_ENTRY agentgate_plugin_entry
#define AG_PLUGIN_ENTRY_NAME "agentgate_plugin_entry"

#if defined(__GNUC__)
#define AG_EXPORT __attribute__((visibility("default")))
#define AG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define AG_EXPORT
#define AG_PRINTF(f, a)
#endif

/* Does the struct at p (whose first member is its size) have field? */
#define AG_HAS(p, type, field) \
	((p)->size >= offsetof(type, field) + sizeof(((type *)0)->field))
/* host->fn if this host has it, else NULL. */
#define AG_HOST_FN(host, fn) (AG_HAS(host, struct ag_host, fn) ? (host)->fn : NULL)

enum ag_status {
	AG_OK = 0,
	AG_E_INVALID = -1,     /* bad argument: the error names it */
	AG_E_NOTFOUND = -2,    /* unknown session, turn, key, tool call */
	AG_E_BUSY = -3,        /* the session or plugin is busy (e.g. a running turn) */
	AG_E_LIMIT = -4,       /* a named limit was reached */
	AG_E_INTERNAL = -5,    /* out of memory, store error */
	AG_E_UNAVAILABLE = -6, /* the store cannot write now, or the gateway is stopping */
	AG_E_THREAD = -7,      /* a loop-only function was called from another thread */
	AG_E_GONE = -8,        /* the call ended already, was cancelled, or the plugin unloads */
};

/* Why a call failed, filled when the caller passes one (every pointer may be NULL). */
struct ag_error {
	int code;          /* the AG_E_* returned */
	char message[256]; /* names the problem */
};

enum ag_log_level { AG_LOG_ERROR = 0, AG_LOG_WARN = 1, AG_LOG_INFO = 2, AG_LOG_DEBUG = 3 };

/* The host's handle for one loaded plugin. Opaque; valid from on_load to on_unload. */
typedef struct ag_plugin ag_plugin;

/* Where a hook call or tool call happens. Strings borrowed; NULL where not applicable. */
struct ag_ctx {
	uint32_t size;
	const char *session_id;
	const char *root_id;   /* the root of its session tree (itself for a root) */
	const char *parent_id; /* parent session, NULL for a root */
	int depth;             /* 0 for a root, 1 for its children, ... */
	const char *agent;     /* the turn's agent, else the session's; NULL: the default */
	const char *turn_id;   /* the turn under way, NULL where none applies */
	const char *directory; /* the session's working directory (absolute); tools resolve
				* paths against it. NULL where unknown (observer events). */
};

/* ---- hooks ------------------------------------------------------------------------ */

enum ag_hook_id {
	/* Every event the gateway publishes, read-only, on the plugin's own observer
	 * thread (not the loop), in seq order, through a bounded queue: when the plugin
	 * falls behind, events are dropped, counted, and `dropped` says how many went
	 * missing before this one. Data: const struct ag_event *. */
	AG_HOOK_EVENT = 1,
	/* A prompt from any source, before its user message is written. The hook may
	 * replace its parts (parts_out) or refuse it (AG_HOOK_REFUSE with reason: the
	 * client gets the reason in its error). Loop. Data: struct ag_prompt_submit *. */
	AG_HOOK_PROMPT_SUBMIT = 2,
	/* Before each provider request of a turn: append to the system prompt, set body
	 * params and headers, hide or add tools — for this request only. Loop.
	 * Data: struct ag_provider_request *. Refusal is not possible here. */
	AG_HOOK_PROVIDER_REQUEST = 3,
	/* Before a tool runs: rewrite its input (input_out) or block it (AG_HOOK_REFUSE:
	 * the call fails with reason, which the model sees). Loop.
	 * Data: struct ag_tool_before *. */
	AG_HOOK_TOOL_BEFORE = 4,
	/* When a tool call ended, before the model or any client sees its result: rewrite
	 * the output or error. Loop. Data: struct ag_tool_after *. */
	AG_HOOK_TOOL_AFTER = 5,
	/* When a tool asks for a permission: allow, deny, or leave it to a human. Loop.
	 * Data: struct ag_permission_ask *. */
	AG_HOOK_PERMISSION_ASK = 6,
	/* A task's child session got its first turn / that turn ended. Loop.
	 * Data: const struct ag_subagent *. */
	AG_HOOK_SUBAGENT_START = 7,
	AG_HOOK_SUBAGENT_END = 8,
	/* A turn ended, whatever way; ctx->turn_id is that turn. Loop.
	 * Data: const struct ag_turn_end *. */
	AG_HOOK_TURN_END = 9,
	/* A session has nothing running or queued. Loop. Data: NULL. When a turn's end
	 * leaves its session idle, the turn's TURN_END comes first, in the same operation
	 * (so a plugin can remember how the last turn ended). */
	AG_HOOK_SESSION_IDLE = 10,
	/* A compaction turn is about to ask the model for a summary of the session's
	 * history (the context nears the model's window, the provider said it is over, or
	 * a client asked: POST /session/{id}/summarize): the hook may write the summary
	 * itself (summary_out), and then the model is not asked. The summary stands for
	 * that history in every later request. Loop. Data: struct ag_session_compact *.
	 * Since ABI 1.1. */
	AG_HOOK_SESSION_COMPACT = 11,
	/* A session's history is rewound to a message (action "revert": the messages
	 * from there on are hidden from the model and clients), brought back ("unrevert"),
	 * or the hidden messages are deleted for good by the session's next prompt
	 * ("commit"). A plugin undoes and redoes here what the hidden tool calls did
	 * outside the store (files). Revert and unrevert may refuse (AG_HOOK_REFUSE with
	 * reason: nothing changes and the client gets the reason). Loop: the work done
	 * here holds the gateway up, so keep it to what the rewind touches. Since ABI 1.1.
	 * Data: struct ag_session_revert *. */
	AG_HOOK_SESSION_REVERT = 12,
	/* A client asks what the session's turns changed in the workspace
	 * (GET /session/{id}/diff): add files to files_out. Loop. Since ABI 1.1.
	 * Data: struct ag_session_diff *. */
	AG_HOOK_SESSION_DIFF = 13,
};
#define AG_HOOK_MAX 13

/* Hook return values. Anything else (a negative AG_E_*) is an error: logged with the
 * plugin id, counted, and the gateway goes on as if the hook were absent. */
enum ag_hook_result {
	AG_HOOK_CONTINUE = 0, /* go on (with the out-values set, if any) */
	AG_HOOK_REFUSE = 1,   /* where the hook may refuse: stop, with `reason` */
};

/* ctx and data are borrowed for the call. */
typedef int (*ag_hook_fn)(void *user, const struct ag_ctx *ctx, void *data);

struct ag_event {
	uint32_t size;
	int64_t seq;            /* the event's global sequence number */
	int64_t time;           /* ms since 1970 */
	const char *type;       /* "message.part.updated", "plugin.<id>.<name>", ... */
	const char *json;       /* the whole event as clients receive it */
	size_t json_len;
	uint64_t dropped;       /* events this plugin missed just before this one */
	const char *session_id; /* the session it concerns (also in ctx), or "" */
};

struct ag_prompt_submit {
	uint32_t size;
	const char *text;       /* the prompt's text parts, joined by a blank line ("" for
				 * a prompt of files only) */
	const char *parts_json; /* its parts as the client sent them: [{"type":"text",
				 * "text":...}, {"type":"file",...}, ...] */
	const char *source;     /* "http", "ws", "cli", "task", "plugin:<id>" */
	const char *message_id; /* the user message about to be written */
	/* out: a JSON array of parts whose text parts, joined, replace the prompt's text
	 * parts (its file, agent and subtask parts stay as the client sent them; an array
	 * with no text refuses nothing and is ignored, logged) */
	char *parts_out;
	char *reason;           /* out, with AG_HOOK_REFUSE: why (the client sees it) */
};

struct ag_provider_request {
	uint32_t size;
	const char *provider, *model;
	const char *system;     /* the system prompt as built so far (may be NULL) */
	const char *tools_json; /* names of the tools offered: ["read", "task", ...] */
	char *system_append;    /* out: appended to the system prompt */
	char *params_json;      /* out: object merged into the request body, e.g.
				 * {"temperature":0.2}; the wire format's own keys
				 * (model, messages, stream, tools, system) are refused */
	char *headers_json;     /* out: object of extra HTTP headers, {"x-trace":"abc"} */
	char *hide_tools_json;  /* out: array of tool names not offered this time */
	char *add_tools_json;   /* out: array of registered tools to offer as well */
};

struct ag_tool_before {
	uint32_t size;
	const char *tool;
	const char *call_id;    /* the model's id for this call */
	const char *input_json; /* the arguments object */
	char *input_out;        /* out: replaces the arguments (must be an object) */
	char *reason;           /* out, with AG_HOOK_REFUSE: why (the model sees it) */
};

struct ag_tool_after {
	uint32_t size;
	const char *tool, *call_id, *input_json;
	const char *output;     /* the result, or NULL when the call failed */
	const char *error;      /* why it failed, or NULL */
	char *output_out;       /* out: replaces the output (a completed call) */
	char *error_out;        /* out: replaces the error (a failed call) */
};

enum ag_permission {
	AG_PERMISSION_ASK = 0,   /* leave it to a human (or the next plugin) */
	AG_PERMISSION_ALLOW = 1,
	AG_PERMISSION_DENY = 2,
};

struct ag_permission_ask {
	uint32_t size;
	const char *permission;    /* "edit", "bash", "read", ... */
	const char *patterns_json; /* what it is asked for: ["src/main.c"], ["git status"] */
	const char *metadata_json; /* the tool's details, an object */
	int decision;              /* out: enum ag_permission (starts as ASK) */
	char *reason;              /* out: shown with a DENY */
};

struct ag_subagent {
	uint32_t size;
	const char *child_id;
	const char *parent_call_id; /* the task tool call that made the child */
	const char *agent;          /* the child's agent */
	int background;
	const char *state;          /* END: completed, failed, stalled, cancelled */
};

struct ag_turn_end {
	uint32_t size;
	const char *state;               /* completed, failed, cancelled */
	const char *error;               /* NULL when it completed */
	const char *user_message_id;
	const char *terminal_message_id; /* its one terminal assistant message */
	const char *source;              /* who sent the prompt that opened it */
};

struct ag_session_compact {
	uint32_t size;
	int automatic;             /* 1: the gateway started it; 0: a client asked for it */
	int overflow;              /* started by the provider's context-overflow error */
	const char *model;         /* "provider/model" that would write the summary */
	const char *messages_json; /* the history it summarises, the model's view:
				    * [{"role":"user"|"assistant"|"tool","content":...,
				    *   "tool_calls"?:[{id,name,arguments}],"tool_call_id"?,
				    *   "files"?:[{mime,filename?,url}]}] (files: a user
				    * message's attachments, url a data: URL), the
				    * compaction's instruction last */
	char *summary_out;         /* out: the summary (non-empty text) */
};

struct ag_session_revert {
	uint32_t size;
	const char *action;     /* "revert", "unrevert" or "commit" */
	const char *message_id; /* revert, commit: the first message hidden / deleted */
	const char *part_id;    /* revert, commit: inside message_id, the first part hidden /
				 * deleted (the message's earlier parts stay), or NULL */
	/* revert: the tool calls hidden, in conversation order (undo them newest last):
	 * [{"turnID","callID","tool","messageID","partID"}] */
	const char *calls_json;
	/* commit: the turns whose messages were all deleted: ["turn_...", ...] */
	const char *turns_json;
	/* revert: what an earlier revert of this session (not yet unreverted) handed back
	 * in snapshot_out, or NULL; unrevert: the one to restore */
	const char *snapshot;
	char *snapshot_out; /* out, revert: the state before it, which unrevert restores
			     * (shown to clients as Session.revert.snapshot) */
	char *diff_out;     /* out, revert: a unified diff of what it changed
			     * (Session.revert.diff) */
	char *reason;       /* out, with AG_HOOK_REFUSE: why */
};

struct ag_session_diff {
	uint32_t size;
	const char *message_id; /* NULL: the whole session; else the turn of this message */
	const char *turns_json; /* the turns asked about, in order: ["turn_...", ...] */
	/* out: a JSON array of OpenCode's FileDiff objects, {"file", "before", "after",
	 * "additions", "deletions", "status"?, "patch"?}; the gateway answers with every
	 * plugin's files together */
	char *files_out;
};

/* ---- tools -------------------------------------------------------------------------- */

/* One running call. Valid on the loop from run() until the call ends (tool_done,
 * tool_fail, cancel or timeout) — and at least until run() returns, even when run()
 * ended it; other threads keep only `id`. */
struct ag_tool_call {
	uint32_t size;
	uint64_t id;            /* the handle for tool_done / tool_fail, from any thread */
	const struct ag_ctx *ctx;
	const char *tool;
	const char *call_id;
	const char *input_json; /* the arguments object */
};

struct ag_tool {
	uint32_t size;
	const char *name;            /* [a-zA-Z0-9_-]{1,64}, unique among all tools */
	const char *description;     /* what the model reads */
	const char *parameters_json; /* JSON Schema of the input (an object schema) */
	/* Loop. Starts the call: end it now or later (any thread) with tool_done/fail. */
	void (*run)(void *user, const struct ag_tool_call *call);
	/* Loop; may be NULL. The call was aborted or timed out: stop its work. A
	 * completion after this is dropped (AG_E_GONE). */
	void (*cancel)(void *user, const struct ag_tool_call *call);
	void *user;
	int64_t timeout_ms;          /* > 0: the call fails with a timeout after this */
};

/* ---- permissions --------------------------------------------------------------------- */

/* What a running tool call asks a human (or the rules, or a plugin) to allow. */
struct ag_permission_request {
	uint32_t size;
	uint64_t call;             /* the asking tool call's id (ag_tool_call.id) */
	const char *permission;    /* "edit", "bash", "read", ...: the rules' key */
	const char *patterns_json; /* what is asked for, matched by the rules: ["src/a.c"],
				    * ["git status"] */
	const char *always_json;   /* what an "always" reply remembers (NULL: patterns) */
	const char *title;         /* one line a human reads: "Edit src/a.c" */
	const char *metadata_json; /* details a client shows (a diff, a command), or NULL */
};

/* Loop. The answer: AG_PERMISSION_ALLOW or AG_PERMISSION_DENY, with why (the human's
 * message, the rule, the plugin, an abort or timeout; borrowed). Runs exactly once,
 * also when the call is aborted first (DENY). */
typedef void (*ag_permission_done_fn)(void *user, int decision, const char *message);

/* ---- prompts ------------------------------------------------------------------------ */

enum ag_prompt_flags {
	AG_PROMPT_QUEUE = 0,          /* wait behind a running turn (the default) */
	AG_PROMPT_INTERRUPT = 1,      /* cancel the running turn and go first */
	AG_PROMPT_REJECT_IF_BUSY = 2, /* fail with AG_E_BUSY if anything runs or waits */
};

struct ag_prompt {
	uint32_t size;
	const char *text;       /* the prompt (or parts_json) */
	const char *parts_json; /* instead of text: OpenCode's parts as the HTTP API takes
				 * them ([{"type":"text","text":...}], file, agent, subtask) */
	const char *agent;      /* NULL: the session's */
	const char *model;      /* "provider/model", NULL: the agent's or session's */
	const char *dedupe_key; /* a queued prompt of this session with the same key
				 * absorbs this one (coalesced), or NULL */
	unsigned flags;         /* enum ag_prompt_flags */
};

/* What prompt_async accepted. */
struct ag_prompt_ack {
	uint32_t size;
	char turn_id[48];
	char message_id[48]; /* the user message written */
	int coalesced;       /* joined a queued turn with the same dedupe key */
};

/* Loop. The turn ended: state is completed, failed or cancelled, or "queued" when the
 * gateway stopped before it ran (it runs after the next start). error: NULL when it
 * completed. Strings borrowed. */
typedef void (*ag_prompt_done_fn)(void *user, const char *turn_id, const char *state,
				  const char *assistant_message_id, const char *error);

struct ag_session_params {
	uint32_t size;
	const char *parent_id; /* NULL: a root session */
	const char *title, *agent, *model, *directory; /* each may be NULL */
};

/* ---- the host table ----------------------------------------------------------------- */

struct ag_host {
	uint32_t size;
	uint16_t abi_major, abi_minor;
	const char *version; /* the gateway's version */

	/* any: a log line tagged with the plugin id. */
	void (*log)(ag_plugin *self, int level, const char *fmt, ...) AG_PRINTF(3, 4);
	/* any: the allocator of out-values and of strings the host returns. */
	void *(*alloc)(size_t n);
	void (*free)(void *p);
	char *(*strdup)(const char *s);

	/* loop: fn(user, ctx, data) at hook point id, after the hooks registered before it
	 * (plugins in load order). The same fn+user twice is AG_E_INVALID. */
	int (*hook)(ag_plugin *self, int id, ag_hook_fn fn, void *user);
	int (*unhook)(ag_plugin *self, int id, ag_hook_fn fn, void *user);

	/* any: runs fn(user) on the loop soon, in order. AG_E_GONE once the plugin unloads
	 * (fn is then not called). */
	int (*post)(ag_plugin *self, void (*fn)(void *user), void *user);
	/* loop: fn(user) once after ms; returns a timer id (> 0), or 0 on failure. */
	uint64_t (*timer_add)(ag_plugin *self, int64_t ms, void (*fn)(void *user), void *user);
	/* loop: AG_OK, or AG_E_NOTFOUND if it fired or was cancelled already. */
	int (*timer_cancel)(ag_plugin *self, uint64_t timer);

	/* any: enqueues a prompt in session_id's turn queue, exactly as a client's prompt
	 * (source "plugin:<id>"). Returns once the prompt is durable (AG_OK, ack filled)
	 * or refused (the error says why). done (may be NULL) runs on the loop when the
	 * turn ends; until then the plugin cannot unload. */
	int (*prompt_async)(ag_plugin *self, const char *session_id, const struct ag_prompt *p,
			    ag_prompt_done_fn done, void *user, struct ag_prompt_ack *ack,
			    struct ag_error *err);
	/* any: cancels a queued prompt's turn (its done runs with "cancelled"). A running
	 * turn is AG_E_BUSY; an ended one AG_E_NOTFOUND. */
	int (*prompt_cancel)(ag_plugin *self, const char *session_id, const char *turn_id,
			     struct ag_error *err);

	/* loop: creates a session; its id goes to id_out (48 bytes). */
	int (*session_create)(ag_plugin *self, const struct ag_session_params *p, char *id_out,
			      struct ag_error *err);
	/* loop: the Session object / the messages ([{info, parts}], the last `limit`, 0:
	 * all) as JSON, host-allocated (free with host->free), or NULL with err. */
	char *(*session_get)(ag_plugin *self, const char *session_id, struct ag_error *err);
	char *(*session_messages)(ag_plugin *self, const char *session_id, int limit,
				  struct ag_error *err);

	/* loop: registers a tool (copied) owned by this plugin. */
	int (*tool_register)(ag_plugin *self, const struct ag_tool *tool, struct ag_error *err);
	int (*tool_unregister)(ag_plugin *self, const char *name);
	/* any: ends call `id` with its output (title and metadata_json may be NULL). A call
	 * that ended, was cancelled or timed out gives AG_E_GONE (and is counted). */
	int (*tool_done)(ag_plugin *self, uint64_t id, const char *output, const char *title,
			 const char *metadata_json);
	int (*tool_fail)(ag_plugin *self, uint64_t id, const char *error,
			 const char *metadata_json);

	/* loop: the plugin's own keys (≤ 256 bytes) and values (≤ 64 KiB) in the gateway's
	 * store, durable when kv_set returns AG_OK. kv_get: *value host-allocated, followed
	 * by a NUL not counted in *len (so text can be used as a string). */
	int (*kv_get)(ag_plugin *self, const char *key, char **value, size_t *len,
		      struct ag_error *err);
	int (*kv_set)(ag_plugin *self, const char *key, const void *value, size_t len,
		      struct ag_error *err);
	int (*kv_delete)(ag_plugin *self, const char *key, struct ag_error *err);

	/* loop: publishes event "plugin.<id>.<name>" for session_id with the session's
	 * tree envelope and these properties (a JSON object), on every transport. */
	int (*emit)(ag_plugin *self, const char *session_id, const char *name,
		    const char *properties_json, struct ag_error *err);

	/* any: 1 on the loop thread. */
	int (*on_loop)(ag_plugin *self);
	/* any: the plugin's id (its descriptor's); its prompts' source is "plugin:<id>". */
	const char *(*id)(ag_plugin *self);
	/* loop: AG_HOOK_EVENT for the listed event types only — a JSON array of exact types
	 * and prefixes ending in ".*" (["session.idle", "plugin.*"]). The others never
	 * reach the plugin's queue, so they cost it nothing and are not counted as drops. */
	int (*hook_events)(ag_plugin *self, ag_hook_fn fn, void *user, const char *types_json);

	/* loop: asks for a permission on behalf of running tool call rq->call. The rules
	 * (config "permission", global and per agent) decide at once, or a plugin's
	 * PERMISSION_ASK hook, or a human: the ask is published (permission.asked, with
	 * the session's tree envelope) and waits for a reply. Time spent waiting is not a
	 * stall and not a subagent's budget. done runs once with the decision (possibly
	 * before permission_ask returns). AG_E_NOTFOUND if the call is not running. */
	int (*permission_ask)(ag_plugin *self, const struct ag_permission_request *rq,
			      ag_permission_done_fn done, void *user, struct ag_error *err);
	/* any: replaces a running call's title and metadata (what clients show while it
	 * runs, e.g. a command's output so far). AG_E_GONE once the call ended. */
	int (*tool_progress)(ag_plugin *self, uint64_t id, const char *title,
			     const char *metadata_json);
	/* any: a gateway setting a plugin may need, as JSON text (host-allocated), or NULL
	 * if unset: "workspace" (the default working directory), "mcp" (the config's
	 * "mcp" section), "secrets" (an array of environment variable names a tool must
	 * not hand to a child process: provider keys, the gateway's token), "data" (the
	 * gateway's data directory, absolute: a plugin may keep files in a folder of its
	 * own below it, named for its id; since ABI 1.1). */
	char *(*setting)(ag_plugin *self, const char *name);

	/* ---- ABI 1.1 ---- */

	/* loop: replaces session_id's todo list — a JSON array of OpenCode's Todo
	 * {content, status, priority, id} ("[]" empties it) — which clients read with GET
	 * /session/{id}/todo; publishes todo.updated {sessionID, todos}. Durable when it
	 * returns AG_OK, and deleted with the session. AG_E_NOTFOUND for an unknown session,
	 * AG_E_INVALID naming a malformed item, AG_E_LIMIT over 64 KiB, AG_E_BUSY from
	 * inside an AG_HOOK_EVENT callback (post it). */
	int (*session_todo_set)(ag_plugin *self, const char *session_id, const char *todos_json,
				struct ag_error *err);
};

/* ---- the descriptor ------------------------------------------------------------------- */

struct ag_plugin_info {
	uint32_t magic;                /* AG_PLUGIN_MAGIC */
	uint16_t abi_major, abi_minor; /* AG_ABI_MAJOR, AG_ABI_MINOR built against */
	uint32_t size;                 /* sizeof(struct ag_plugin_info) */
	const char *id;                /* [a-z0-9_-]{1,32}, unique in the gateway */
	const char *version;           /* the plugin's own, free form */
	const char *description;
	/* loop: registers hooks and tools, starts threads. options_json is the plugin's
	 * "options" from the config ("{}" when none), borrowed. Return AG_OK, or an
	 * AG_E_* with err (never NULL here) filled: the plugin is then not loaded (and, if
	 * required, the gateway does not start). What it registered before failing is
	 * removed. */
	int (*on_load)(ag_plugin *self, const struct ag_host *host, const char *options_json,
		       struct ag_error *err);
	/* loop, may be NULL: stop threads, free state. Runs only when no work of the
	 * plugin is in flight; host calls made now return AG_E_GONE. */
	void (*on_unload)(ag_plugin *self);
};

typedef const struct ag_plugin_info *(*ag_plugin_entry_fn)(void);

/* Declared here so a plugin's definition is checked against it. */
AG_EXPORT const struct ag_plugin_info *AG_PLUGIN_ENTRY(void);

#ifdef __cplusplus
}
#endif

#endif
