/* tool: the registry of tools a model may call, and the contract a tool implements.
 * A tool starts on the loop thread and completes later (or at once) with
 * tool_call_done()/tool_call_fail() on the loop thread; work on other threads comes back
 * through loop_post(). An aborted call gets cancel() and must not complete afterwards.
 * Later issues (subagents, plugins) register their tools here. */
#ifndef AG_TOOL_H
#define AG_TOOL_H
#include <cjson/cJSON.h>

#include "jw.h"

struct engine;

/* One running call as a tool sees it. Owned by the engine; valid until done/fail/cancel. */
struct tool_call {
	struct engine *E;
	const char *session_id;
	const char *call_id;    /* the model's tool call id */
	const char *tool;
	const cJSON *input;     /* arguments object */
	void *state;            /* the tool's own */
};

struct tool_def {
	const char *name;
	const char *description;
	const char *parameters; /* JSON Schema of the input, as JSON text */
	void (*run)(struct tool_call *c, void *arg);
	void (*cancel)(struct tool_call *c, void *arg); /* may be NULL: nothing to stop */
	void *arg;
};

struct tools {
	struct tool_def *v;
	int n;
};

/* Copies def (its strings must outlive the registry). -1 if the name is taken. */
int tools_register(struct tools *T, const struct tool_def *def);
const struct tool_def *tools_find(const struct tools *T, const char *name);
void tools_free(struct tools *T);
/* Registers echo and sleep. */
int tools_register_builtin(struct tools *T);

/* Completion, loop thread only; strings are copied. metadata_json may be NULL. */
void tool_call_done(struct tool_call *c, const char *output, const char *title,
		    const char *metadata_json);
void tool_call_fail(struct tool_call *c, const char *error, const char *metadata_json);
/* Replaces the running call's metadata (shown to clients while the tool runs). */
void tool_call_set_metadata(struct tool_call *c, const char *title, const char *metadata_json);
/* The loop the call runs on (for timers). */
struct loop *tool_call_loop(struct tool_call *c);

#endif
