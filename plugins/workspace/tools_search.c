/* The tree tools: list, glob and grep (search.c does the walking). Each resolves its
 * folder inside the session's directory and runs on a worker. */
#include "paths.h"
#include "search.h"
#include "ws.h"

#include <errno.h>
#include <sys/stat.h>

/* The optional "path" input: the folder to search, j->path. */
static int folder(struct ws_job *j, const cJSON *in, char *why, size_t wn)
{
	const char *path;
	struct stat st;
	if (ws_in_str(in, "path", 0, &path, why, wn) || ws_resolve(j, path, why, wn))
		return -1;
	if (stat(j->path, &st) || !S_ISDIR(st.st_mode)) {
		snprintf(why, wn, "path \"%s\" is not a folder%s", path && *path ? path : j->rel,
			 errno == ENOENT ? " (it does not exist)" : "");
		return -1;
	}
	return 0;
}

static struct search search_of(struct ws_job *j, long long limit)
{
	struct search s = {.root = j->root, .dir = j->path, .ignore = WS.ignore,
			   .cancelled = &j->cancelled, .limit = (int)limit};
	if (WS.gitignore)
		search_gitignore(&s);
	return s;
}

static void finish(struct ws_job *j, struct search *s, char *text, const char *title,
		   const struct search_stats *st, const char *why)
{
	search_done(s);
	char *meta = ws_meta("i", "count", (int64_t)st->count, "b", "truncated", st->truncated,
			     NULL);
	if (text)
		ws_done(j, text, title, meta);
	else
		ws_fail(j, "%s", why);
	free(text);
	free(meta);
}

/* ---- list ---- */

static int list_parse(struct ws_job *j, const cJSON *in, char *why, size_t wn)
{
	return folder(j, in, why, wn);
}

static void list_ask(struct ws_job *j, struct ws_ask *a)
{
	ws_ask_fill(a, "list", j->rel, ws_meta("s", "path", j->rel, NULL), "List %s", j->rel);
}

static void list_act(struct ws_job *j)
{
	char why[256];
	struct search s = search_of(j, WS.list_limit);
	struct search_stats st = {0};
	finish(j, &s, search_list(&s, &st, why, sizeof(why)), j->rel, &st, why);
}

/* ---- glob ---- */

/* An absolute pattern inside the root becomes one anchored at the root. */
static const char *relative_pattern(struct ws_job *j, const char *pattern, char *why,
				    size_t wn)
{
	size_t rl = strlen(j->root);
	if (pattern[0] != '/')
		return pattern;
	if (!strncmp(pattern, j->root, rl) && pattern[rl] == '/' &&
	    !ws_resolve(j, NULL, why, wn))
		return pattern + rl; /* "/rest": anchored */
	snprintf(why, wn, "pattern \"%s\" is outside the session's directory %s", pattern,
		 j->root);
	return NULL;
}

static int glob_parse(struct ws_job *j, const cJSON *in, char *why, size_t wn)
{
	const char *pattern, *rel;
	if (ws_in_str(in, "pattern", 1, &pattern, why, wn) || folder(j, in, why, wn) ||
	    !(rel = relative_pattern(j, pattern, why, wn)) ||
	    glob_compile(&j->glob, rel, why, wn))
		return -1;
	j->has_glob = 1;
	if (!(j->arg = strdup(pattern))) {
		snprintf(why, wn, "out of memory");
		return -1;
	}
	return 0;
}

static void glob_ask(struct ws_job *j, struct ws_ask *a)
{
	ws_ask_fill(a, "glob", j->arg, ws_meta("s", "pattern", j->arg, "s", "path", j->rel, NULL),
		    "Find files %.120s", j->arg);
}

static void glob_act(struct ws_job *j)
{
	char why[256];
	struct search s = search_of(j, WS.search_limit);
	struct search_stats st = {0};
	finish(j, &s, search_glob(&s, &j->glob, &st, why, sizeof(why)), j->arg, &st, why);
}

/* ---- grep ---- */

static int grep_parse(struct ws_job *j, const cJSON *in, char *why, size_t wn)
{
	const char *pattern, *include;
	if (ws_in_str(in, "pattern", 1, &pattern, why, wn) ||
	    ws_in_str(in, "include", 0, &include, why, wn) || folder(j, in, why, wn))
		return -1;
	if (!*pattern || strlen(pattern) > 4096) {
		snprintf(why, wn, "the parameter \"pattern\" must be 1 to 4096 bytes");
		return -1;
	}
	if (include && *include) {
		if (glob_compile(&j->glob, include, why, wn))
			return -1;
		j->has_glob = 1;
	}
	if (search_regex(&j->re, pattern, why, wn))
		return -1;
	j->has_re = 1;
	j->arg = strdup(pattern);
	j->arg2 = include ? strdup(include) : NULL;
	if (!j->arg || (include && !j->arg2)) {
		snprintf(why, wn, "out of memory");
		return -1;
	}
	return 0;
}

static void grep_ask(struct ws_job *j, struct ws_ask *a)
{
	ws_ask_fill(a, "grep", j->arg,
		    ws_meta("s", "pattern", j->arg, "s", "path", j->rel, "s", "include", j->arg2, NULL),
		    "Search for %.120s", j->arg);
}

static void grep_act(struct ws_job *j)
{
	char why[256];
	struct search s = search_of(j, WS.search_limit);
	struct search_stats st = {0};
	finish(j, &s, search_grep(&s, &j->re, j->has_glob ? &j->glob : NULL, &st, why,
				  sizeof(why)), j->arg, &st, why);
}

/* ---- the definitions ---- */

const struct ws_tool ws_list = {
	.name = "list",
	.description =
		"List the files and folders under a folder as an indented tree (folders first, "
		"then files, by name). path: the folder (default: the session's working "
		"directory; relative paths start there). Version-control, dependency and build "
		"folders (.git, node_modules, build, dist, ...) and, in a git repository, what "
		"its .gitignore files ignore are left out, and the listing "
		"stops after 100 files: pass a subfolder to look deeper. To find files by name "
		"prefer glob; to search their content, grep.",
	.parameters =
		"{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\",\"description\":"
		"\"The folder to list: relative to the working directory, or absolute inside it "
		"(default: the working directory)\"}}}",
	.parse = list_parse, .ask = list_ask, .act = list_act,
};

const struct ws_tool ws_glob = {
	.name = "glob",
	.description =
		"Find files by name pattern anywhere below a folder. Returns their paths "
		"(relative to the working directory), the most recently modified first, at most "
		"100.\n"
		"- Patterns: `*` matches within one name, `**` any number of folders, `?` one "
		"character, `[abc]` one of a set, `{ts,tsx}` alternatives.\n"
		"- A pattern without a '/' matches file names at any depth (\"*.test.js\", "
		"\"Makefile\"); one with a '/' is matched from the folder searched "
		"(\"src/**/*.c\", \"docs/*.md\").\n"
		"- path: the folder to search (default: the working directory).\n"
		"- .git, node_modules and similar folders are skipped, and in a git repository "
		"what its .gitignore files ignore.\n"
		"- Use it instead of find or ls in bash; when several searches may help, run "
		"them in parallel.",
	.parameters =
		"{\"type\":\"object\",\"properties\":{"
		"\"pattern\":{\"type\":\"string\",\"description\":\"The glob pattern to match file "
		"paths against\"},"
		"\"path\":{\"type\":\"string\",\"description\":\"The folder to search in (default: "
		"the working directory)\"}},\"required\":[\"pattern\"]}",
	.parse = glob_parse, .ask = glob_ask, .act = glob_act,
};

const struct ws_tool ws_grep = {
	.name = "grep",
	.description =
		"Search the content of files with a regular expression. Returns the matching "
		"lines as `path:line: text`, the most recently modified files first, at most 100 "
		"lines.\n"
		"- pattern: a POSIX extended regular expression: alternation a|b, groups, "
		"repetition {n,m}, classes like [[:space:]]; \\w, \\s, \\b and \\d work too. There "
		"is no lookaround and no lazy quantifier. Escape literal ( ) [ ] { } . * + ? | "
		"with a backslash.\n"
		"- path: the folder to search (default: the working directory).\n"
		"- include: only files whose names match this glob (\"*.c\", \"*.{ts,tsx}\", "
		"\"src/**/*.py\").\n"
		"- Binary files, files over 8 MB, .git, node_modules and similar folders, and in a "
		"git repository what its .gitignore files ignore, are skipped.\n"
		"- Use it instead of grep or rg in bash. To count matches or combine searches, "
		"use bash.",
	.parameters =
		"{\"type\":\"object\",\"properties\":{"
		"\"pattern\":{\"type\":\"string\",\"description\":\"The regular expression to search "
		"for in file contents\"},"
		"\"path\":{\"type\":\"string\",\"description\":\"The folder to search in (default: "
		"the working directory)\"},"
		"\"include\":{\"type\":\"string\",\"description\":\"File pattern to include in the "
		"search (e.g. \\\"*.js\\\", \\\"*.{ts,tsx}\\\")\"}},\"required\":[\"pattern\"]}",
	.parse = grep_parse, .ask = grep_ask, .act = grep_act,
};
