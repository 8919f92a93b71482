/* snap: snapshots of a session's git worktree, for revert and diff. A snapshot is a
 * git tree of the whole worktree (what `git add -A` would take: ignored files are not
 * in it), written with a private index into the plugin's own object store under the
 * gateway's data directory — never the user's index, HEAD, refs or stash, and no object
 * in the user's repository. On those trees: the files two of them differ in, files put
 * back as a tree has them, and OpenCode's FileDiff between two states. Paths are
 * relative to the worktree's top (JSON arrays of strings). Any thread; snap_tree is
 * serialized (one private index per worktree), the others use an index of their own. */
#ifndef WS_SNAP_H
#define WS_SNAP_H

#include "git.h"

#include <cjson/cJSON.h>

/* Snapshots live in DATA/workspace/snapshots/<worktree hash>/; NULL turns them off. */
int snap_init(const char *data_dir, char *const *envp);
void snap_shutdown(void);
/* 1 when snapshots are on (git found, a data directory given). */
int snap_enabled(void);

/* The worktree dir is in, with its snapshot folder (created): 0, or -1 outside git. */
int snap_repo(const char *dir, struct git_repo *r);

/* A tree of the whole worktree as it is now. */
int snap_tree(const struct git_repo *r, char tree[GIT_HASH_MAX], char *why, size_t wn);
/* The files trees a and b differ in: [[status, path], ...], status "A" (only in b),
 * "D" (only in a), "M" or "T" (in both). NULL with why. */
cJSON *snap_changes(const struct git_repo *r, const char *a, const char *b, char *why,
		    size_t wn);
/* base (NULL: an empty tree) with paths as they are in the worktree now (a path that
 * no longer exists is left out). */
int snap_partial(const struct git_repo *r, const char *base, const cJSON *paths,
		 char tree[GIT_HASH_MAX], char *why, size_t wn);
/* The paths of the list that tree has (a new array). NULL with why. */
cJSON *snap_present(const struct git_repo *r, const char *tree, const cJSON *paths, char *why,
		    size_t wn);
/* Writes paths into the worktree as tree has them (each must be in it); the work
 * follows the paths, not the tree's size. */
int snap_checkout(const struct git_repo *r, const char *tree, const cJSON *paths, char *why,
		  size_t wn);
/* 0 when tree is still in r's store (older snapshots are pruned: snap_prune). */
int snap_has(const struct git_repo *r, const char *tree);
/* Deletes from every worktree's store what only snapshots older than days days hold:
 * `git prune --expire` over the store's objects, under a git directory of the store's
 * own with no refs, so the private index (the newest snapshot) and whatever a recent
 * object refers to are kept however old. 0, or -1 with why naming the first store that
 * failed (the others are pruned all the same). Serialized with snap_tree. Blocking. */
int snap_prune(int days, char *why, size_t wn);
/* Deletes path from the worktree, and its folders left empty (up to the top). */
void snap_remove(const struct git_repo *r, const char *path);
/* The unified diff between trees a and b (malloc'd, valid UTF-8; "" when equal). */
char *snap_patch(const struct git_repo *r, const char *a, const char *b, char *why, size_t wn);
/* FileDiff[] of the paths (an array of strings) that differ between tree a and tree b
 * (NULL: the worktree now): {file, before, after, additions, deletions, status, patch},
 * computed here from the paths' contents (git only reads the blobs), so the cost follows
 * the paths, not the worktree's size. before/after are "" for a binary file, one over
 * SNAP_CONTENT_MAX, or a side without the file. NULL with why. */
#define SNAP_CONTENT_MAX (256 * 1024)
cJSON *snap_diff(const struct git_repo *r, const char *a, const char *b, const cJSON *paths,
		 char *why, size_t wn);

#endif
