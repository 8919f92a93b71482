/* git: runs the git command line for the workspace's snapshots (snap.c), with the
 * environment that keeps them private: the user's repository is only read (its config,
 * its ignore rules), while the index and every object written go to the plugin's own
 * folder (GIT_INDEX_FILE, GIT_OBJECT_DIRECTORY). A command gets stdin from a buffer,
 * its stdout back whole, and is killed after GIT_TIMEOUT_MS. Any thread. */
#ifndef WS_GIT_H
#define WS_GIT_H

#include <limits.h>
#include <stddef.h>

#define GIT_TIMEOUT_MS 30000
#define GIT_HASH_MAX 65 /* a tree id (SHA-1 or SHA-256) and its NUL */

/* A worktree and where its snapshots live. */
struct git_repo {
	char top[PATH_MAX];    /* the worktree's top folder */
	char gitdir[PATH_MAX]; /* its git directory (read for config and ignore rules) */
	char store[PATH_MAX];  /* the plugin's folder for it: objects/, index */
};

/* Finds git on PATH (envp's) once; 0, or -1 when there is none. */
int git_init(char *const *envp);
/* Forgets what git_init kept. */
void git_shutdown(void);

/* Runs `git ARGS...` in r->top with the private environment (index: the index file to
 * use, NULL for r->store/index), stdin from in (inlen bytes, may be NULL), and puts its
 * stdout in *out (malloc'd, NUL-terminated; *outlen when not NULL). 0 when it exits 0;
 * else -1 with why (its stderr's first line, or what went wrong). */
int git_run(const struct git_repo *r, const char *index, const char *const *args,
	    const char *in, size_t inlen, char **out, size_t *outlen, char *why, size_t wn);

/* What git ignores under dir (its .gitignore files, .git/info/exclude, core.excludesFile)
 * and does not track: `git ls-files` run in dir as the user's own git would, its index
 * only read. *out (malloc'd) holds the paths relative to dir, each ended by a NUL, a
 * folder ignored whole once with a trailing '/'; *outlen its bytes. 0, or -1 with why
 * when dir is in no repository (or git cannot say). */
int git_ignored(const char *dir, char **out, size_t *outlen, char *why, size_t wn);

/* The repository dir belongs to (top and git directory; store left empty): 0, or -1
 * when it is in none (or git cannot say). */
int git_discover(const char *dir, struct git_repo *r);

#endif
