/* hooks: the points where code the engine did not write (the plugin host, observers)
 * takes part in its work. Each point is called from exactly one place in the engine,
 * named below; callbacks run there in the order they were added, and with none added a
 * call costs a test of an empty list. Every callback gets the context of the session it
 * concerns. Loop thread only (the plugin host brings other threads' work in through the
 * inbox first). Strings and data are borrowed for the call; what a callback may change
 * is said per point. A callback runs inside one of the engine's operations: it may read
 * (engine_session_info, engine_messages_json), but what it starts (a prompt, an abort)
 * goes through loop_post or a timer, after that operation. */
#ifndef AG_HOOKS_H
#define AG_HOOKS_H
#include <cjson/cJSON.h>
#include <stddef.h>

struct engine;

/* Where a call happens. */
struct hook_ctx {
	const char *session_id;
	const char *root_id;
	const char *parent_id;   /* parent session, NULL for a root */
	int depth;
	const char *agent;       /* the turn's agent, else the session's (NULL: the default) */
	const char *turn_id;     /* NULL where no turn applies */
};

enum hook_point {
	HOOK_EVENT,            /* every bus event (bus subscription); data: const struct event * */
	HOOK_PROMPT_SUBMIT,    /* engine_prompt, before the user message is written;
				* data: struct hook_prompt *; may refuse */
	HOOK_PROVIDER_REQUEST, /* step_begin, before each provider request; data: struct
				* llm_request * (system, messages, tools may be replaced by
				* pointers the callback keeps alive for the call) */
	HOOK_TOOL_BEFORE,      /* before a tool runs; data: struct hook_tool *; may refuse */
	HOOK_TOOL_AFTER,       /* when its call ended (toolrun_finish); data: struct hook_tool * */
	HOOK_PERMISSION_ASK,   /* when a permission is asked (the permission work calls it) */
	HOOK_SUBAGENT_START,   /* a task's child session was prompted; data: struct hook_subagent * */
	HOOK_SUBAGENT_END,     /* the child's turn ended; data: struct hook_subagent * */
	HOOK_TURN_END,         /* turn_end, the one way out of a turn; data: struct hook_turn_end * */
	HOOK_SESSION_IDLE,     /* a session's status became idle; data: NULL */
	HOOK_COUNT
};

struct hook_prompt {
	const char *text;       /* the prompt as the model will see it */
	const cJSON *parts;     /* the client's parts array, when it sent one (else NULL) */
	const char *source;     /* http, ws, cli, task, plugin:<id> */
	const char *message_id; /* the user message about to be written */
};

struct hook_tool {
	const char *tool, *call_id;
	const cJSON *input;
	const char *output;     /* TOOL_AFTER: the result, or NULL when it failed */
	const char *error;      /* TOOL_AFTER: why it failed, or NULL */
};

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
};

/* 0 to go on. At a point that may refuse, -1 refuses, with the reason written to
 * why (why_len bytes); elsewhere the return value is ignored. */
typedef int (*hook_fn)(void *arg, const struct hook_ctx *ctx, void *data, char *why,
		       size_t why_len);

/* Adds fn at a point for owner (an id such as "plugin:foo"); 0 or -1 (out of memory). */
int hooks_add(struct engine *E, enum hook_point at, const char *owner, hook_fn fn, void *arg);
/* Removes every callback owner added, at every point. */
void hooks_remove_owner(struct engine *E, const char *owner);

#endif
