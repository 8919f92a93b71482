/* match: which protected pattern a path, or a word of a shell command, hits. Pure (no
 * host, no state), so the guard's rules are tested on their own. */
#ifndef AG_GUARD_MATCH_H
#define AG_GUARD_MATCH_H

#include <stddef.h>

/* The first of patterns (NULL-terminated fnmatch(3) globs, no flags) matching path as a
 * whole or any tail of it that starts after a '/': its basename too, so "*.pem" and
 * ".env" protect those files in every directory, and a pattern naming a folder, such as
 * secrets/ followed by a star, protects it wherever it is. NULL when none does. */
const char *match_path(char *const *patterns, const char *path);

/* Splits a shell command into words and calls match_path on each (and on what follows
 * the first '=' of a word, as in --file=.env). Words end at blanks and at ; | & < > ( )
 * and backquotes; quotes and backslashes are removed as the shell would. The first word
 * that matches is copied to word (word_len bytes, truncated); returns its pattern, or
 * NULL. */
const char *match_command(char *const *patterns, const char *command, char *word,
			  size_t word_len);

#endif
