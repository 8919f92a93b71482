/* fakehost: a host table for testing a plugin's own logic without a gateway. The thread
 * that calls fh_load is the loop; hooks and tools run when a test calls them; kv is in
 * memory; prompt_async, emit and log are recorded. A tool may end later from any thread
 * (fh_wait waits for it, running posted callbacks meanwhile, as the loop would);
 * permission asks, progress and settings are recorded or answered from FH. One plugin at
 * a time. What the real host does around a plugin (loading checks, the observer thread,
 * unload rules) is tested against the real gateway, not here. */
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

/* A permission a tool asked for. */
struct fh_ask {
	char permission[32], patterns[512], title[160], metadata[4096];
};

enum fh_perm {
	FH_PERM_ALLOW = 0,    /* answered at once (inside permission_ask) */
	FH_PERM_DENY = 1,     /* at once, with perm_message */
	FH_PERM_LATER = 2,    /* allowed from a posted callback, after permission_ask returned */
	FH_PERM_NOTFOUND = 3, /* permission_ask fails (the call is not running) */
};

struct fakehost {
	int nprompts, nemits;
	struct fh_prompt prompts[FH_MAX];
	struct fh_emit emits[FH_MAX];
	int coalesce; /* prompt_async answers "coalesced" while set */
	/* the last tool call's ending (under the host's lock: it may come from any thread) */
	int done, failed;
	char output[8192], title[128], error[512], metadata[8192];
	/* permissions: how asks are answered, and those asked */
	int perm;
	char perm_message[128];
	int nasks;
	struct fh_ask asks[FH_MAX];
	/* tool_progress calls, and the last one's metadata */
	int nprogress;
	char progress[4096];
};

extern struct fakehost FH;

/* dlopens path and calls on_load with options (NULL: "{}"); the plugin's rc. */
int fh_load(const char *path, const char *options, struct ag_error *err);
/* on_unload (if any), drops what it registered, dlclose. */
void fh_unload(void);
/* Calls the hooks registered at id in order; the first result that is not CONTINUE. */
int fh_hook(int id, const struct ag_ctx *ctx, void *data);
/* Runs tool name with input; its ending is in FH (now, or after fh_wait). -1 when there is
 * no such tool. */
int fh_tool(const char *name, const struct ag_ctx *ctx, const char *input_json);
/* Waits at most ms for the last tool call to end, running posted callbacks on this
 * thread meanwhile; 1 when it ended. */
int fh_wait(int ms);
/* The same, until the last call reported progress (tool_progress) at least once. */
int fh_wait_progress(int ms);
/* Cancels the last tool call (its cancel, as an abort would); later endings are GONE. */
void fh_cancel(void);
/* With on, the host has permission_ask (answered as FH.perm says); without, it is NULL. */
void fh_permissions(int on);
/* The plugin's kv value of key (NUL-terminated, static), or NULL. */
const char *fh_kv(const char *key);
/* Does the log so far contain s? */
int fh_logged(const char *s);
/* A context for session s at depth d (no directory: set .directory). */
struct ag_ctx fh_ctx(const char *session, int depth);
/* setting(self, "secrets") answers ["FH_SECRET"]; "workspace" this (may be NULL). */
void fh_set_workspace(const char *dir);

#endif
