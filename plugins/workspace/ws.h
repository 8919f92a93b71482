/* ws: what the workspace plugin's files share — one call's job and one tool's
 * behaviour. A call goes through the same stages whatever the tool (workspace.c):
 *
 *   run (loop): parse the input, resolve paths          -> fails at once, or
 *   prepare (worker, optional): what to ask about (a diff)
 *   ask (loop): the permission, when the host has a permission system
 *   act (worker): do it, and end the call with ws_done / ws_fail
 *
 * A job lives in the plugin's registry from run until it ends, so an abort (cancel, on
 * the loop) can find it by call id and flag it; every stage checks the flag. */
#ifndef WS_WS_H
#define WS_WS_H

#include "git.h"
#include "glob.h"
#include "plug.h"

#include <limits.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdint.h>

struct ws_job;

/* The permission a tool asks before it acts (strings owned by the job or static). */
struct ws_ask {
	const char *permission; /* "read", "edit", "bash", ... */
	const char *pattern;    /* the one pattern asked for: a path, a command */
	char title[160];        /* "Edit src/a.c" */
	char *metadata;         /* JSON object (malloc'd, freed by the caller), or NULL */
};

struct ws_tool {
	const char *name, *description, *parameters;
	/* loop: reads the input (cJSON object) into the job; 0, or -1 with why */
	int (*parse)(struct ws_job *j, const cJSON *in, char *why, size_t wn);
	/* worker, may be NULL: work needed before asking (edit: the new text, its diff) */
	int (*prepare)(struct ws_job *j, char *why, size_t wn);
	/* loop: what to ask */
	void (*ask)(struct ws_job *j, struct ws_ask *a);
	/* worker: does the work and ends the call (ws_done or ws_fail) */
	void (*act)(struct ws_job *j);
	int writes; /* it may change files: snapshotted around act (history.c) */
};

struct ws_job {
	struct ws_job *next; /* the registry */
	const struct ws_tool *tool;
	uint64_t id;
	atomic_int cancelled;
	int cancel_fd;        /* bash: an eventfd written on cancel, else -1 */
	char root[PATH_MAX];  /* the session's directory, real path */
	char path[PATH_MAX];  /* the resolved file or folder (or bash's workdir) */
	const char *rel;      /* path relative to root: inside path, or "." */
	/* what the tools read from their input and prepare */
	char *arg;            /* edit: oldString; bash: command; glob/grep: pattern */
	char *arg2;           /* edit: newString; bash: description */
	int64_t num1, num2;   /* read: offset, limit; bash: timeout */
	int flag;             /* edit: replaceAll */
	struct glob glob;     /* glob: pattern; grep: include */
	int has_glob;
	regex_t re;           /* grep */
	int has_re;
	char *before;         /* write/edit: the file as it was (NULL: it did not exist) */
	size_t before_len;
	int existed;
	char *after;          /* write/edit: the file as it will be (write: its content) */
	size_t after_len;
	char *diff;
	int count;            /* edit: occurrences replaced */
	/* the permission answer while permission_ask runs */
	int asking, answered, decision;
	char *answer;
	/* whose call it is, and the worktree before it acted (history.c) */
	char session[64], turn[64], call[128];
	struct git_repo *repo; /* set while its changes are being recorded */
	char snap_before[GIT_HASH_MAX];
};

/* The plugin's settings, read in on_load. */
struct ws_config {
	const struct ag_host *host;
	ag_plugin *self;
	char **ignore;           /* folder names the tree tools skip */
	int gitignore;           /* and what git ignores, in a repository */
	int snapshot_days;       /* snapshots older than this are pruned (0: never) */
	char **envp;             /* bash's environment: the gateway's, minus the secrets */
	char *shell;
	int64_t timeout_ms, max_timeout_ms, grace_ms;
	long long max_output;    /* bash output kept */
	long long list_limit, search_limit;
};

extern struct ws_config WS;

/* Runs fn(arg) on a worker (any thread): 0, or -1 when it cannot be queued. */
int ws_background(void (*fn)(void *arg), void *arg);

/* End the call (any thread) and free the job. */
void ws_done(struct ws_job *j, const char *output, const char *title, const char *metadata);
void ws_fail(struct ws_job *j, const char *fmt, ...) AG_PRINTF(2, 3);
int ws_cancelled(struct ws_job *j);

/* Input helpers (loop): a string field (required or not), an integer (a number or a
 * numeric string), a boolean. 0, or -1 with why naming the field. */
int ws_in_str(const cJSON *in, const char *name, int required, const char **out, char *why,
	      size_t wn);
int ws_in_int(const cJSON *in, const char *name, int64_t def, int64_t min, int64_t *out,
	      char *why, size_t wn);
int ws_in_bool(const cJSON *in, const char *name, int *out, char *why, size_t wn);
/* Resolves path (NULL or "": the root) into j->path / j->rel. */
int ws_resolve(struct ws_job *j, const char *path, char *why, size_t wn);

/* Fills a: the permission, its one pattern, the metadata (taken) and a title. */
void ws_ask_fill(struct ws_ask *a, const char *permission, const char *pattern,
		 char *metadata, const char *title_fmt, ...) AG_PRINTF(5, 6);

/* A JSON object's text from key/value pairs: "s" a string, "i" an int64, "b" a
 * boolean: ws_meta("s", "diff", d, "b", "exists", 1, NULL). malloc'd. */
char *ws_meta(const char *type, ...);

/* The tools (tools_fs.c, tools_search.c, tools_bash.c). */
extern const struct ws_tool ws_read, ws_write, ws_edit, ws_list, ws_glob, ws_grep, ws_bash;

#endif
