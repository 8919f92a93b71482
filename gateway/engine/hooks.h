/* hooks: the points where code the engine did not write (the plugin host, observers)
 * takes part in its work. Each point is called from exactly one place in the engine,
 * named below; callbacks run there in the order they were added, and with none added a
 * call costs a test of an empty list. Every callback gets the context of the session it
 * concerns. Loop thread only (the plugin host brings other threads' work in through the
 * inbox first). Strings and data are borrowed for the call. Four points may change what
 * they are shown, only through the hook_prompt_*, hook_request_* and hook_tool_*
 * functions below (and two hand something back, through hook_revert_set and
 * hook_diff_add), called on the data of the running callback during its call: the
 * engine owns all memory (it copies what it is given, except where a cJSON value is
 * said to be taken), and the changes accumulate — a later callback at the same point
 * sees the earlier ones' in the data's fields. A callback runs inside one of the
 * engine's operations: it may read (engine_session_info, engine_messages_json,
 * engine_kv_get) and emit (engine_emit, except from HOOK_EVENT), but what it starts (a
 * prompt, an abort) goes through loop_post or a timer, after that operation. */
#ifndef AG_HOOKS_H
#define AG_HOOKS_H
#include <cjson/cJSON.h>
#include <stddef.h>

#include "llm_types.h"

struct engine;

/* Where a call happens. */
struct hook_ctx {
	const char *session_id;
	const char *root_id;
	const char *parent_id;   /* parent session, NULL for a root */
	int depth;
	const char *agent;       /* the turn's agent, else the session's (NULL: the default) */
	const char *turn_id;     /* NULL where no turn applies */
	const char *directory;   /* the session's working directory (NULL for bus events) */
};

enum hook_point {
	HOOK_EVENT,            /* every bus event (bus subscription); data: const struct event * */
	HOOK_PROMPT_SUBMIT,    /* engine_prompt, before the user message is written;
				* data: struct hook_prompt *; may refuse, may change the text */
	HOOK_PROVIDER_REQUEST, /* step_begin, before each provider request; data: struct
				* hook_request *; may change the request (hook_request_*) */
	HOOK_TOOL_BEFORE,      /* before a tool runs; data: struct hook_tool *; may refuse,
				* may change the input */
	HOOK_TOOL_AFTER,       /* when its call ended, before its result is saved and shown
				* (toolrun_finish); data: struct hook_tool *; may change the
				* output or error */
	HOOK_PERMISSION_ASK,   /* when a permission is asked (the permission work calls it);
				* data: struct hook_permission *; callbacks may decide */
	HOOK_SUBAGENT_START,   /* a task's child session was prompted; data: struct hook_subagent * */
	HOOK_SUBAGENT_END,     /* the child's turn ended; data: struct hook_subagent * */
	HOOK_TURN_END,         /* turn_end, the one way out of a turn; data: struct hook_turn_end * */
	HOOK_SESSION_IDLE,     /* a session's status became idle; data: NULL */
	HOOK_HUMAN_WAIT,       /* a session's subtree began or stopped waiting on a human (a
				* permission ask in it or below it), called by permission.c for
				* each session on the asking one's path whose state changed,
				* itself first; data: const struct hook_wait * */
	HOOK_SESSION_COMPACT,  /* a compaction turn, before the model is asked for the summary
				* (compact.c); data: struct hook_compact *; may supply the
				* summary itself (hook_compact_set_summary) */
	HOOK_SESSION_REVERT,   /* revert.c: a session's history rewound (revert), brought
				* back (unrevert) or its hidden part deleted by the next
				* prompt (commit); data: struct hook_revert *; revert and
				* unrevert may refuse */
	HOOK_SESSION_DIFF,     /* revert.c: what the session's turns changed in the
				* workspace (GET /session/{id}/diff); data: struct hook_diff * */
	HOOK_COUNT
};

struct hook_prompt {
	const char *text;       /* the prompt's text parts joined by a blank line */
	const cJSON *parts;     /* the client's parts array, when it sent one (else NULL) */
	const char *source;     /* http, ws, cli, task, plugin:<id> */
	const char *message_id; /* the user message about to be written */
};

/* Replaces the prompt's text parts (copied) with one holding text, in the first one's
 * place: it is what the user message stores and what the model is sent; hp->text points
 * at it from now on. The prompt's file, agent and subtask parts stay. 0, or -1 for an
 * empty or NULL text (or out of memory). */
int hook_prompt_set_text(struct hook_prompt *hp, const char *text);

/* One provider request, changed for this request only (the agent and the provider's
 * configuration stay as they are). rq shows it as it stands: system, tools, params and
 * headers include the changes made so far; messages are the history, read-only. */
struct hook_request {
	const struct llm_request *rq;
};

/* Appends text (copied) to the system prompt, after a blank line. 0, or -1 for an
 * empty or NULL text. */
int hook_request_append_system(struct hook_request *hr, const char *text);
/* Sets key to value in the provider's request body, over the provider's configured
 * `options`. value is taken (freed by the engine, also when refused). -1 for a key the
 * wire format owns (model, messages, stream, tools, system), a NULL key or value. */
int hook_request_set_param(struct hook_request *hr, const char *key, cJSON *value);
/* Sends the HTTP header "name: value" (copied) with this request, replacing a configured
 * header or an earlier call's of the same name (any case). -1 for a name that is not an
 * HTTP token (CR, LF, ':' or space in it) or that the provider owns or is hop-by-hop
 * (Content-Type, Content-Length, Host, Authorization, x-api-key, Accept, Expect,
 * Connection, Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade), or a value
 * with CR, LF or another control byte. Providers without HTTP (scripted) ignore it. */
int hook_request_set_header(struct hook_request *hr, const char *name, const char *value);
/* Takes a tool out of this request's tools: the model is not offered it, and a call
 * to it from this request's reply fails ("not offered"). -1 when it is not offered. */
int hook_request_hide_tool(struct hook_request *hr, const char *name);
/* Offers a registered tool the agent does not list, in this request: a call to it from
 * this request's reply runs. 0 also when it is offered already; -1 for an unknown tool. */
int hook_request_add_tool(struct hook_request *hr, const char *name);

struct hook_tool {
	const char *tool, *call_id;
	const cJSON *input;     /* the arguments the tool runs with */
	const char *output;     /* TOOL_AFTER: the result, or NULL when it failed */
	const char *error;      /* TOOL_AFTER: why it failed, or NULL */
};

/* TOOL_BEFORE: the tool runs with input instead (taken: freed by the engine, also when
 * refused), and the tool part's state.input stores it. -1 unless input is a JSON object,
 * or at another point. */
int hook_tool_set_input(struct hook_tool *ht, cJSON *input);
/* TOOL_AFTER: the call completes with output (copied) — what is stored and what the
 * model sees — also when it had failed; ht->output points at it, ht->error is NULL.
 * -1 for a NULL output, or at another point. */
int hook_tool_set_output(struct hook_tool *ht, const char *output);
/* TOOL_AFTER: the call fails with error (copied), also when it had completed;
 * ht->error points at it, ht->output is NULL. -1 for an empty or NULL error, or at
 * another point. */
int hook_tool_set_error(struct hook_tool *ht, const char *error);

struct hook_subagent {
	const char *child_id;
	const char *parent_call_id; /* the task call */
	const char *agent;          /* the child's agent */
	int background;
	const char *state;          /* END: completed, failed, stalled, cancelled */
};

struct hook_turn_end {
	const char *state;              /* completed, failed, cancelled */
	const char *error;              /* NULL when it completed */
	const char *user_message_id;
	const char *terminal_message_id;
	const char *source;             /* the source of the prompt that opened it */
};

enum hook_decision {
	HOOK_PERMISSION_UNDECIDED = 0, /* ask a human (the first callback to decide wins) */
	HOOK_PERMISSION_ALLOWED,
	HOOK_PERMISSION_DENIED,
};

struct hook_permission {
	const char *permission;  /* "edit", "bash", ... */
	const cJSON *patterns;   /* array of what is asked for */
	const cJSON *metadata;   /* object: the tool's details */
	int decision;            /* enum hook_decision; callbacks set it once */
	char reason[256];        /* why, with a decision */
};

struct hook_wait {
	int waiting; /* 1: the subtree now waits on a human; 0: no longer */
};

struct hook_compact {
	int automatic;          /* 1: the engine started it (the context nears the model's
				 * limit, or the provider said it is over); 0: asked for */
	int overflow;           /* started by a provider's context-overflow error */
	const char *model;      /* PROVIDER/MODEL that would write the summary */
	const cJSON *messages;  /* the history it summarises, in the provider-neutral shape
				 * (llm_types.h), the compaction's instruction last */
	const char *summary;    /* the summary a callback set so far, or NULL */
};

/* The compaction's summary is text (copied) and the model is not asked; hc->summary
 * points at it. -1 for an empty or NULL text (or out of memory). */
int hook_compact_set_summary(struct hook_compact *hc, const char *text);

enum hook_revert_action { HOOK_REVERT_REWIND, HOOK_REVERT_RESTORE, HOOK_REVERT_COMMIT };

struct hook_revert {
	enum hook_revert_action action;
	const char *message_id; /* REWIND, COMMIT: the first message hidden / deleted */
	const char *part_id;    /* REWIND, COMMIT: the first part hidden / deleted inside
				 * message_id (its earlier parts stay), or NULL */
	const cJSON *calls;     /* REWIND: the tool calls hidden, in conversation order:
				 * [{turnID, callID, tool, messageID, partID}] */
	const cJSON *turns;     /* COMMIT: the turns whose messages were all deleted */
	const char *snapshot;   /* REWIND: what an earlier rewind of the session kept (NULL:
				 * none); RESTORE: the state to bring back */
	const char *snapshot_out, *diff_out; /* REWIND: set by hook_revert_set */
};
/* REWIND: the state before the rewind (what RESTORE gets back as snapshot) and a
 * unified diff of what it changed, both copied; NULL leaves one as it is. -1 at
 * another action (or out of memory). */
int hook_revert_set(struct hook_revert *hr, const char *snapshot, const char *diff);

struct hook_diff {
	const char *message_id; /* NULL: the whole session, else the turn of this message */
	const cJSON *turns;     /* the turns asked about, in order: ["turn_..."] */
	const cJSON *files;     /* FileDiff[] added so far */
};
/* Adds files (a JSON array of FileDiff objects: {file, before, after, additions,
 * deletions, ...}; taken, freed by the engine also when refused) to the answer. -1
 * unless it is an array of objects each with a string "file". */
int hook_diff_add(struct hook_diff *hd, cJSON *files);

/* 0 to go on. At a point that may refuse, -1 refuses, with the reason written to
 * why (why_len bytes); elsewhere the return value is ignored. */
typedef int (*hook_fn)(void *arg, const struct hook_ctx *ctx, void *data, char *why,
		       size_t why_len);

/* Adds fn at a point for owner (an id such as "plugin:foo"); 0 or -1 (out of memory). */
int hooks_add(struct engine *E, enum hook_point at, const char *owner, hook_fn fn, void *arg);
/* Removes every callback owner added, at every point. */
void hooks_remove_owner(struct engine *E, const char *owner);

#endif
