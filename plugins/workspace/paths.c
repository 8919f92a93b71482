#include "paths.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* In place: what is written ("/name" per kept name) never passes what was read, since
 * every name read follows at least one '/'. */
void paths_normalize(char *abs)
{
	size_t o = 0;
	const char *r = abs;
	for (;;) {
		while (*r == '/')
			r++;
		size_t len = strcspn(r, "/");
		if (len == 0)
			break;
		if (len == 2 && r[0] == '.' && r[1] == '.') {
			while (o > 0 && abs[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
		} else if (!(len == 1 && r[0] == '.')) {
			abs[o++] = '/';
			memmove(abs + o, r, len);
			o += len;
		}
		r += len;
	}
	if (o == 0)
		abs[o++] = '/';
	abs[o] = 0;
}

int paths_inside(const char *root, const char *p)
{
	size_t rl = strlen(root);
	if (rl == 1 && root[0] == '/')
		return p[0] == '/';
	return !strncmp(p, root, rl) && (p[rl] == 0 || p[rl] == '/');
}

const char *paths_rel(const char *root, const char *p)
{
	size_t rl = strlen(root);
	if (!strcmp(root, p))
		return ".";
	return rl == 1 ? p + 1 : p + rl + 1;
}

static int fail(char *why, size_t wn, const char *fmt, const char *a, const char *b)
{
	snprintf(why, wn, fmt, a, b);
	return -1;
}

/* Appends the names of tail (not yet existing) to out, refusing "..". */
static int append_tail(char *out, size_t n, const char *tail, const char *path, char *why,
		       size_t wn)
{
	for (const char *r = tail;;) {
		while (*r == '/')
			r++;
		size_t len = strcspn(r, "/"), ol = strlen(out);
		if (len == 0)
			return 0;
		if (len == 2 && r[0] == '.' && r[1] == '.')
			return fail(why, wn, "path \"%s\": \"..\" after \"%s\", which does not "
				    "exist", path, out);
		if (!(len == 1 && r[0] == '.')) {
			if (ol + len + 2 > n)
				return fail(why, wn, "path \"%s\" is too long%s", path, "");
			snprintf(out + ol, n - ol, "%s%.*s", ol > 1 ? "/" : "", (int)len, r);
		}
		r += len;
	}
}

/* The real path of cand's longest existing prefix into real; *tail_at: where the rest
 * of cand starts. A name that exists but cannot be resolved (a dangling link) stops it. */
static int existing_prefix(const char *cand, char *real, size_t *tail_at, const char *path,
			   char *why, size_t wn)
{
	char head[PATH_MAX];
	struct stat st;
	snprintf(head, sizeof(head), "%s", cand);
	while (!realpath(head, real)) {
		if (errno != ENOENT)
			return fail(why, wn, "path \"%s\": %s", path, strerror(errno));
		if (lstat(head, &st) == 0)
			return fail(why, wn, "path \"%s\" goes through \"%s\", a symbolic link "
				    "whose target does not exist", path, head);
		char *slash = strrchr(head, '/');
		if (!slash || slash == head)
			return fail(why, wn, "path \"%s\": nothing of it exists%s", path, "");
		*slash = 0;
	}
	*tail_at = strlen(head);
	return 0;
}

int paths_resolve(const char *root, const char *path, char *out, size_t n, char *why,
		  size_t wn)
{
	char rroot[PATH_MAX], lroot[PATH_MAX], cand[PATH_MAX], lex[PATH_MAX], real[PATH_MAX];
	size_t tail_at = 0;
	if (!root || root[0] != '/' || !realpath(root, rroot))
		return fail(why, wn, "the session's directory \"%s\" cannot be used: %s",
			    root ? root : "(none)", root ? strerror(errno) : "not set");
	if (!path || !*path)
		path = ".";
	int len = path[0] == '/' ? snprintf(cand, sizeof(cand), "%s", path)
				 : snprintf(cand, sizeof(cand), "%s/%s", rroot, path);
	if (len < 0 || (size_t)len >= sizeof(cand))
		return fail(why, wn, "path \"%.200s\" is too long%s", path, "");
	snprintf(lex, sizeof(lex), "%s", cand);
	paths_normalize(lex);
	snprintf(lroot, sizeof(lroot), "%s", root);
	paths_normalize(lroot);
	if (!paths_inside(rroot, lex) && !paths_inside(lroot, lex))
		return fail(why, wn, "path \"%s\" is outside the session's directory %s", path,
			    rroot);
	if (existing_prefix(cand, real, &tail_at, path, why, wn))
		return -1;
	if (!paths_inside(rroot, real))
		return fail(why, wn, "path \"%s\" leads outside the session's directory through a "
			    "symbolic link (to %s)", path, real);
	if (strlen(real) >= n)
		return fail(why, wn, "path \"%s\" is too long%s", path, "");
	snprintf(out, n, "%s", real);
	return append_tail(out, n, cand + tail_at, path, why, wn);
}
