/* tool: the registry of tools a model may call, and the contract a tool implements.
 * A tool starts on the loop thread (run) and ends later or at once. While run() runs,
 * and until the call ends, `c` is valid on the loop thread: tool_call_done/fail end it
 * there. Work that ends elsewhere, or later, keeps c->E and c->id and ends the call with
 * tool_done/tool_fail, from any thread: a call that has ended already (a second
 * completion), was cancelled (an abort, its session deleted) or never existed is
 * dropped and counted, never touched. An aborted call gets cancel() first.
 * Tools are registered by an owner (a plugin id; the engine's own are "builtin") and
 * all of an owner's unregistered at once; a definition stays put while calls hold it. */
#ifndef AG_TOOL_H
#define AG_TOOL_H
#include <cjson/cJSON.h>
#include <stdint.h>

#include "jw.h"

struct engine;

/* One running call as a tool sees it. Owned by the engine; valid until done/fail/cancel. */
struct tool_call {
	struct engine *E;
	uint64_t id;            /* the call's handle for tool_done/tool_fail, from any thread */
	const char *session_id;
	const char *call_id;    /* the model's tool call id */
	const char *tool;
	const cJSON *input;     /* arguments object */
	const char *turn_id;    /* the turn that made the call */
	const char *agent;      /* that turn's agent (NULL: the default) */
	void *state;            /* the tool's own */
};

struct tool_def {
	const char *name;
	const char *description;
	const char *parameters; /* JSON Schema of the input, as JSON text */
	void (*run)(struct tool_call *c, void *arg);
	/* May be NULL: nothing to stop. The call is still live inside it: a cancel that
	 * ends it (tool_call_done/fail, on the loop) gives it that result; otherwise it
	 * ends as an error naming why the turn ended. */
	void (*cancel)(struct tool_call *c, void *arg);
	void *arg;
	void (*release)(void *arg); /* may be NULL: called when the tool is freed */
};

struct tool_entry;
struct tools {
	struct tool_entry *head;
};

/* Copies def (its strings too) for owner. -1 if the name is taken or out of memory;
 * def->release is then not called (the caller still owns def->arg). */
int tools_register(struct tools *T, const struct tool_def *def, const char *owner);
/* Removes every tool of owner: no new call finds them; running calls keep theirs. */
void tools_unregister(struct tools *T, const char *owner);
/* Removes owner's tool called name; -1 if owner has none of that name. */
int tools_unregister_name(struct tools *T, const char *owner, const char *name);
/* The registered tool called name, or NULL. The pointer stays valid while held. */
const struct tool_def *tools_find(const struct tools *T, const char *name);
/* A running call's hold on its definition (it outlives an unregister until released). */
void tools_hold(const struct tool_def *def);
void tools_release(struct tools *T, const struct tool_def *def);
/* Calls fn for every registered tool, in registration order. */
void tools_each(const struct tools *T, void (*fn)(void *arg, const struct tool_def *def),
		void *arg);
void tools_free(struct tools *T);
/* def as a provider request offers it: {name, description, parameters} (caller frees). */
cJSON *tools_schema(const struct tool_def *def);
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

/* Ends call id of engine E from any thread (another thread's completion reaches the
 * loop through its inbox). 0 when taken (or handed to the loop), -1 when dropped: the
 * call ended already, was cancelled, or never was. Strings are copied. */
int tool_done(struct engine *E, uint64_t id, const char *output, const char *title,
	      const char *metadata_json);
int tool_fail(struct engine *E, uint64_t id, const char *error, const char *metadata_json);
/* Replaces running call id's title and metadata (what clients see while it runs), from
 * any thread; -1 when the call is gone. Strings are copied. */
int tool_progress(struct engine *E, uint64_t id, const char *title, const char *metadata_json);
/* Completions dropped so far (late, repeated, or for calls that are gone). */
uint64_t tool_dropped(struct engine *E);

#endif
