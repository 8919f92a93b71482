/* fakehost: a host table for testing a plugin's own logic without a gateway. The thread
 * that calls fh_load is the loop; hooks and tools run when a test calls them; kv is in
 * memory; prompt_async, emit and log are recorded. One plugin at a time. What the real
 * host does around a plugin (loading checks, the observer thread, unload rules) is
 * tested against the real gateway, not here. */
#ifndef AG_FAKEHOST_H
#define AG_FAKEHOST_H

#include <agentgate/plugin.h>

#define FH_MAX 64

struct fh_prompt {
	char session[64], text[4096], dedupe[128];
};

struct fh_emit {
	char session[64], name[64], props[512];
};

struct fakehost {
	int nprompts, nemits;
	struct fh_prompt prompts[FH_MAX];
	struct fh_emit emits[FH_MAX];
	int coalesce; /* prompt_async answers "coalesced" while set */
	/* the last tool call's ending */
	int done, failed;
	char output[8192], title[128], error[512];
};

extern struct fakehost FH;

/* dlopens path and calls on_load with options (NULL: "{}"); the plugin's rc. */
int fh_load(const char *path, const char *options, struct ag_error *err);
/* on_unload (if any), drops what it registered, dlclose. */
void fh_unload(void);
/* Calls the hooks registered at id in order; the first result that is not CONTINUE. */
int fh_hook(int id, const struct ag_ctx *ctx, void *data);
/* Runs tool name with input; its ending is in FH. -1 when there is no such tool. */
int fh_tool(const char *name, const struct ag_ctx *ctx, const char *input_json);
/* The plugin's kv value of key (NUL-terminated, static), or NULL. */
const char *fh_kv(const char *key);
/* Does the log so far contain s? */
int fh_logged(const char *s);
/* A context for session s at depth d. */
struct ag_ctx fh_ctx(const char *session, int depth);

#endif
