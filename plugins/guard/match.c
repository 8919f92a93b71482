#include "match.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

const char *match_path(char *const *patterns, const char *path)
{
	for (char *const *p = patterns; *p; p++) {
		if (fnmatch(*p, path, 0) == 0)
			return *p;
		for (const char *s = strchr(path, '/'); s; s = strchr(s + 1, '/'))
			if (s[1] && fnmatch(*p, s + 1, 0) == 0)
				return *p;
	}
	return NULL;
}

static int breaks_word(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || strchr(";|&<>()`", c);
}

/* Copies the word starting at *s into w (unquoted), advancing *s past it. */
static size_t next_word(const char **s, char *w)
{
	const char *p = *s;
	size_t n = 0;
	char quote = 0;
	for (; *p && (quote || !breaks_word(*p)); p++) {
		if (quote && *p == quote)
			quote = 0;
		else if (!quote && (*p == '\'' || *p == '"'))
			quote = *p;
		else if (*p == '\\' && quote != '\'' && p[1])
			w[n++] = *++p;
		else
			w[n++] = *p;
	}
	w[n] = 0;
	*s = p;
	return n;
}

static const char *match_word(char *const *patterns, const char *w)
{
	const char *hit = match_path(patterns, w);
	const char *eq = strchr(w, '=');
	if (!hit && eq && eq[1])
		hit = match_path(patterns, eq + 1);
	return hit;
}

const char *match_command(char *const *patterns, const char *command, char *word,
			  size_t word_len)
{
	char *w = malloc(strlen(command) + 1);
	const char *hit = NULL;
	if (!w)
		return NULL;
	for (const char *s = command; *s && !hit;) {
		if (breaks_word(*s)) {
			s++;
			continue;
		}
		if (next_word(&s, w))
			hit = match_word(patterns, w);
	}
	if (hit && word_len) {
		strncpy(word, w, word_len - 1);
		word[word_len - 1] = 0;
	}
	free(w);
	return hit;
}
