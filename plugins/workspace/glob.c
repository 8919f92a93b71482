#include "glob.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GLOB_MAX_ALTS 64
#define GLOB_MAX_LEN 1024
#define GLOB_BUDGET 200000 /* steps per match: pathological patterns stop, unmatched */

/* [...] at *pp against c: 1 match, 0 not, -1 not a class (no closing ']'). */
static int cls(const char **pp, unsigned char c)
{
	const unsigned char *p = (const unsigned char *)*pp + 1;
	int neg = 0, hit = 0;
	if (*p == '!' || *p == '^') {
		neg = 1;
		p++;
	}
	const unsigned char *first = p;
	for (; *p && (*p != ']' || p == first); p++) {
		unsigned lo = *p, hi;
		if (lo == '\\' && p[1])
			lo = *++p;
		hi = lo;
		if (p[1] == '-' && p[2] && p[2] != ']') {
			hi = p[2];
			p += 2;
		}
		hit |= c >= lo && c <= hi;
	}
	if (*p != ']')
		return -1;
	*pp = (const char *)p + 1;
	return hit != neg;
}

static int m(const char *start, const char *p, const char *s, long *budget);

/* p at a run of '*': whole-name "**" spans folders, anything else one name. */
static int star(const char *start, const char *p, const char *s, long *budget)
{
	const char *q = p;
	while (*q == '*')
		q++;
	int whole = q - p > 1 && (p == start || p[-1] == '/') && (*q == '/' || *q == 0);
	if (whole && *q == 0)
		return 1;
	if (whole) { /* "**" + "/": zero or more folders */
		if (m(start, q + 1, s, budget))
			return 1;
		for (const char *t = s; *t; t++)
			if (*t == '/' && m(start, q + 1, t + 1, budget))
				return 1;
		return 0;
	}
	for (const char *t = s;; t++) {
		if (m(start, q, t, budget))
			return 1;
		if (!*t || *t == '/')
			return 0;
	}
}

static int m(const char *start, const char *p, const char *s, long *budget)
{
	for (;;) {
		if (--*budget < 0)
			return 0;
		if (*p == 0)
			return *s == 0;
		if (*p == '*')
			return star(start, p, s, budget);
		if (!*s)
			return 0;
		if (*p == '?') {
			if (*s == '/')
				return 0;
		} else if (*p == '[') {
			const char *q = p;
			int r = cls(&q, (unsigned char)*s);
			if (r == 0 || (r > 0 && *s == '/'))
				return 0;
			if (r > 0) {
				p = q;
				s++;
				continue;
			}
			if (*s != '[')
				return 0;
		} else {
			if (*p == '\\' && p[1])
				p++;
			if (*p != *s)
				return 0;
		}
		p++;
		s++;
	}
}

int glob_match(const struct glob *g, const char *path)
{
	for (int i = 0; i < g->n; i++) {
		long budget = GLOB_BUDGET;
		if (m(g->pats[i], g->pats[i], path, &budget))
			return 1;
	}
	return 0;
}

/* The '}' closing the '{' at p with at least one ',' at its level, or NULL. */
static const char *brace_end(const char *p)
{
	int depth = 0, comma = 0;
	for (const char *q = p; *q; q++) {
		if (*q == '\\' && q[1])
			q++;
		else if (*q == '{')
			depth++;
		else if (*q == ',' && depth == 1)
			comma = 1;
		else if (*q == '}' && --depth == 0)
			return comma ? q : NULL;
	}
	return NULL;
}

static int add(struct glob *g, const char *pat)
{
	const char *p = pat;
	int anchored = 0;
	while (p[0] == '.' && p[1] == '/')
		p += 2;
	if (*p == '/') {
		anchored = 1;
		while (*p == '/')
			p++;
	}
	size_t len = strlen(p);
	while (len > 1 && p[len - 1] == '/')
		len--;
	int any_depth = !anchored && !memchr(p, '/', len);
	char *s = malloc(len + 4), **v;
	if (!s || !(v = realloc(g->pats, (size_t)(g->n + 1) * sizeof(*v)))) {
		free(s);
		return -1;
	}
	snprintf(s, len + 4, "%s%.*s", any_depth ? "**/" : "", (int)len, p);
	g->pats = v;
	g->pats[g->n++] = s;
	return 0;
}

/* Adds pat with its first brace group expanded (recursively). */
static int expand(struct glob *g, const char *pat)
{
	const char *open = pat, *close = NULL;
	for (; *open; open++) {
		if (*open == '\\' && open[1])
			open++;
		else if (*open == '{' && (close = brace_end(open)))
			break;
	}
	if (!close)
		return g->n >= GLOB_MAX_ALTS ? -1 : add(g, pat);
	char buf[GLOB_MAX_LEN * 2];
	int depth = 0;
	for (const char *a = open + 1, *q = a; q <= close; q++) {
		if (*q == '\\' && q[1]) {
			q++;
			continue;
		}
		depth += *q == '{';
		if (*q == '}' && q != close)
			depth--;
		if ((*q == ',' && depth == 0) || q == close) {
			snprintf(buf, sizeof(buf), "%.*s%.*s%s", (int)(open - pat), pat,
				 (int)(q - a), a, close + 1);
			if (expand(g, buf))
				return -1;
			a = q + 1;
		}
	}
	return 0;
}

int glob_compile(struct glob *g, const char *pattern, char *why, size_t wn)
{
	memset(g, 0, sizeof(*g));
	if (!pattern || !*pattern || strlen(pattern) > GLOB_MAX_LEN) {
		snprintf(why, wn, "the pattern must be 1 to %d bytes", GLOB_MAX_LEN);
		return -1;
	}
	if (expand(g, pattern)) {
		glob_free(g);
		snprintf(why, wn, "pattern \"%s\" has more than %d alternatives", pattern,
			 GLOB_MAX_ALTS);
		return -1;
	}
	return 0;
}

void glob_free(struct glob *g)
{
	for (int i = 0; i < g->n; i++)
		free(g->pats[i]);
	free(g->pats);
	g->pats = NULL;
	g->n = 0;
}
