/* search: the tree tools — list (a tree of a folder), glob (files by name pattern,
 * newest first) and grep (lines matching a regular expression). They walk a folder
 * depth first in name order, skip the folders named in `ignore` (.git, node_modules,
 * ...) below it and, in a git repository, what git ignores (search_gitignore), never follow a symbolic link to a folder, and take a link to a file
 * only when it stays inside the root. Each result is capped at `limit` entries with a
 * note saying so, and a walk stops after MAX_VISIT entries or when cancelled. Blocking
 * file work: call from a worker thread. */
#ifndef WS_SEARCH_H
#define WS_SEARCH_H

#include "glob.h"

#include <regex.h>
#include <stdatomic.h>
#include <stddef.h>

struct search {
	const char *root;      /* the session's directory, real path: names are relative to it */
	const char *dir;       /* the folder searched, real path inside root */
	char *const *ignore;   /* folder names skipped, NULL-terminated */
	atomic_int *cancelled; /* may be NULL */
	int limit;             /* entries shown at most */
	/* what git ignores below dir, sorted (search_gitignore; a folder ends in '/') */
	char **gitignored;
	size_t ngitignored;
	char *gitignored_buf;
};

struct search_stats {
	int count;     /* entries found (files listed, files matched, lines matched) */
	int truncated; /* more than shown, or the walk stopped early */
};

/* Asks git what it ignores below s->dir (.gitignore files and the other exclude files,
 * as `git ls-files` reads them; a tracked file is never ignored), for the walks to skip.
 * Nothing when s->dir is in no repository or git is not there: the `ignore` names still
 * apply. Undone by search_done. */
void search_gitignore(struct search *s);
void search_done(struct search *s);

/* The text for the model (malloc'd), or NULL with why. */
char *search_list(const struct search *s, struct search_stats *st, char *why, size_t wn);
char *search_glob(const struct search *s, const struct glob *g, struct search_stats *st,
		  char *why, size_t wn);
/* include (may be NULL) filters the files by name. */
char *search_grep(const struct search *s, const regex_t *re, const struct glob *include,
		  struct search_stats *st, char *why, size_t wn);

/* regcomp (extended, newline-aware) of a pattern as models write them: \d, \D and \t
 * are turned into what POSIX understands. 0, or -1 with why naming the error. */
int search_regex(regex_t *re, const char *pattern, char *why, size_t wn);

#endif
