/* glob: file name patterns as models write them (ripgrep's and .gitignore's dialect):
 * `*` and `?` within a name, `[a-z]` and `[!a-z]` classes, `{a,b}` alternatives, and
 * `**` as a whole name for any number of folders (src/STARSTAR/x.c matches src/x.c and
 * src/a/b/x.c, where STARSTAR is the two stars). A pattern without a '/' matches a file's name in any folder ("*.c"); one with a '/'
 * is anchored at the folder searched (a leading '/' anchors a name alone). Paths are
 * relative, '/'-separated. No state beyond the compiled struct; any thread. */
#ifndef WS_GLOB_H
#define WS_GLOB_H

#include <stddef.h>

struct glob {
	char **pats; /* the alternatives, braces expanded, anchored */
	int n;
};

/* 0, or -1 with why (an empty or too long pattern, too many alternatives). */
int glob_compile(struct glob *g, const char *pattern, char *why, size_t wn);
int glob_match(const struct glob *g, const char *path);
void glob_free(struct glob *g);

#endif
