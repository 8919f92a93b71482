/* paths: where the workspace tools may touch the file system. Every path a model names
 * is resolved against the session's directory (its root): a relative path from there,
 * an absolute one only when it lies inside. The part of the path that exists is
 * resolved by the kernel (realpath), so ".." or a symbolic link that leads out of the
 * root is refused; the part that does not exist yet (a file or folders to create) may
 * hold plain names only. No state; any thread. */
#ifndef WS_PATHS_H
#define WS_PATHS_H

#include <stddef.h>

/* Collapses "." and ".." and repeated slashes of an absolute path, in place, without
 * looking at the disk ("/a/./b/../c" -> "/a/c"; ".." above "/" stays "/"). */
void paths_normalize(char *abs);

/* Is p (a normalized absolute path) root itself or inside it? */
int paths_inside(const char *root, const char *p);

/* Resolves path against root (absolute) into out (n bytes, PATH_MAX is enough): the
 * real path of its longest existing prefix followed by the names that do not exist
 * yet. Returns 0, or -1 with why (wn bytes) naming the path and the reason: outside
 * the root ("..", an absolute path elsewhere, a symbolic link out), a dangling link, a
 * missing root. An empty path is the root. */
int paths_resolve(const char *root, const char *path, char *out, size_t n, char *why,
		  size_t wn);

/* p (inside root, both real) relative to root: a pointer into p, or "." for the root. */
const char *paths_rel(const char *root, const char *p);

#endif
