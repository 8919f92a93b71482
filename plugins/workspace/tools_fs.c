/* The file tools: read (numbered lines, paged, binary files refused), write (a whole
 * file) and edit (an exact replacement, edit.c). write and edit compute the new text
 * and its diff before asking, and write only if the file is still what they read. */
#include "diff.h"
#include "edit.h"
#include "paths.h"
#include "sbuf.h"
#include "text.h"
#include "ws.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_LIMIT 2000          /* lines, by default */
#define READ_LINE_MAX 2000       /* bytes of one line */
#define READ_MAX_BYTES (50 * 1024)
#define READ_COUNT_MAX (64L << 20) /* lines of bigger files are not all counted */
#define EDIT_MAX_FILE (16L << 20)

/* ---- helpers ---- */

/* The file's bytes (malloc'd, NUL-terminated). 0; -1 with why; -2: over max bytes. */
static int slurp(const char *path, const char *rel, long max, char **out, size_t *len,
		 char *why, size_t wn)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		snprintf(why, wn, "cannot read %s: %s", rel, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (st.st_size > max) {
		close(fd);
		snprintf(why, wn, "%s is too big (%lld bytes, over %ld)", rel,
			 (long long)st.st_size, max);
		return -2;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	ssize_t n = 0;
	while (buf && got < (size_t)st.st_size &&
	       (n = read(fd, buf + got, (size_t)st.st_size - got)) > 0)
		got += (size_t)n;
	close(fd);
	if (!buf || n < 0) {
		snprintf(why, wn, "cannot read %s: %s", rel, buf ? strerror(errno) : "out of memory");
		free(buf);
		return -1;
	}
	buf[got] = 0;
	*out = buf;
	*len = got;
	return 0;
}

/* Creates the folders of path's parent that do not exist, below root (the missing part
 * of a resolved path holds plain names only). */
static int make_parents(const char *root, const char *path, char *why, size_t wn)
{
	char dir[PATH_MAX];
	size_t rl = strlen(root);
	snprintf(dir, sizeof(dir), "%s", path);
	for (char *p = dir + (rl > 1 ? rl : 0) + 1; (p = strchr(p, '/')); p++) {
		*p = 0;
		if (mkdir(dir, 0777) && errno != EEXIST) {
			snprintf(why, wn, "cannot create the folder %s: %s", dir, strerror(errno));
			return -1;
		}
		*p = '/';
	}
	return 0;
}

/* Replaces path's content at once: a temporary file beside it, renamed over it. */
static int write_atomic(const char *root, const char *path, const char *data, size_t len,
			const struct stat *old, char *why, size_t wn)
{
	static atomic_uint counter;
	char tmp[PATH_MAX + 64];
	const char *slash = strrchr(path, '/');
	int fd = -1;
	if (make_parents(root, path, why, wn))
		return -1;
	for (int i = 0; i < 100 && fd < 0; i++) {
		snprintf(tmp, sizeof(tmp), "%.*s/.ws-%d-%u.tmp", (int)(slash - path), path,
			 (int)getpid(), atomic_fetch_add(&counter, 1));
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			  old ? old->st_mode & 07777 : 0666);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	size_t done = 0;
	ssize_t n = 0;
	while (fd >= 0 && done < len && (n = write(fd, data + done, len - done)) > 0)
		done += (size_t)n;
	int ok = fd >= 0 && done == len && (!old || fchmod(fd, old->st_mode & 07777) == 0) &&
		 fsync(fd) == 0;
	int err = errno;
	if (fd >= 0 && close(fd) && ok)
		ok = 0, err = errno;
	if (ok && rename(tmp, path))
		ok = 0, err = errno;
	if (!ok) {
		if (fd >= 0)
			unlink(tmp);
		snprintf(why, wn, "cannot write %s: %s", path, strerror(err));
		return -1;
	}
	return 0;
}

/* Is the file still as prepare read it? */
static int unchanged(struct ws_job *j, struct stat *st, char *why, size_t wn)
{
	char *now = NULL;
	size_t len = 0;
	int exists = stat(j->path, st) == 0;
	if (exists != j->existed) {
		snprintf(why, wn, "%s was %s since this change was prepared; read it again and "
			 "redo the change", j->rel, exists ? "created" : "deleted");
		return 0;
	}
	if (!exists || !j->before)
		return 1;
	if (slurp(j->path, j->rel, EDIT_MAX_FILE, &now, &len, why, wn))
		return 0;
	int same = len == j->before_len && !memcmp(now, j->before, len);
	free(now);
	if (!same)
		snprintf(why, wn, "%s was changed by someone else since this change was prepared; "
			 "read it again and redo the change", j->rel);
	return same;
}

/* ---- read ---- */

static int read_parse(struct ws_job *j, const cJSON *in, char *why, size_t wn)
{
	const char *path;
	if (ws_in_str(in, "filePath", 1, &path, why, wn) ||
	    ws_in_int(in, "offset", 1, 0, &j->num1, why, wn) ||
	    ws_in_int(in, "limit", READ_LIMIT, 1, &j->num2, why, wn))
		return -1;
	if (!*path) {
		snprintf(why, wn, "the parameter \"filePath\" is empty");
		return -1;
	}
	j->num1 += j->num1 == 0; /* offset 0: from the start */
	return ws_resolve(j, path, why, wn);
}

static void read_ask(struct ws_job *j, struct ws_ask *a)
{
	ws_ask_fill(a, "read", j->rel, ws_meta("s", "filePath", j->rel, NULL), "Read %s", j->rel);
}

/* "File not found", with up to three names of its folder that look like it. */
static void not_found(struct ws_job *j)
{
	char dir[PATH_MAX], list[1024] = "";
	snprintf(dir, sizeof(dir), "%s", j->path);
	char *slash = strrchr(dir, '/'), *base = slash + 1;
	*slash = 0;
	struct dirent **ents;
	int n = scandir(dir[0] ? dir : "/", &ents, NULL, alphasort), shown = 0;
	for (int i = 0; i < n; i++) {
		const char *nm = ents[i]->d_name;
		if (shown < 3 && *base && nm[0] != '.' && (strcasestr(nm, base) || strcasestr(base, nm))) {
			size_t l = strlen(list);
			snprintf(list + l, sizeof(list) - l, "%s%s", shown++ ? ", " : "", nm);
		}
		free(ents[i]);
	}
	if (n >= 0)
		free(ents);
	if (shown)
		ws_fail(j, "File not found: %s. Did you mean one of these, in the same folder: %s?",
			j->rel, list);
	else
		ws_fail(j, "File not found: %s", j->rel);
}

/* A folder read: its entries (folders end in '/'), paged like lines. */
static void read_dir(struct ws_job *j)
{
	struct dirent **ents;
	struct sbuf out = {0};
	int n = scandir(j->path, &ents, NULL, alphasort), shown = 0, total = 0;
	if (n < 0) {
		ws_fail(j, "cannot list %s: %s", j->rel, strerror(errno));
		return;
	}
	for (int i = 0; i < n; i++) {
		const char *nm = ents[i]->d_name;
		if (strcmp(nm, ".") && strcmp(nm, "..") && ++total >= j->num1 && shown < j->num2) {
			struct stat st;
			char p[PATH_MAX + 256];
			snprintf(p, sizeof(p), "%s/%s", j->path, nm);
			sbuf_printf(&out, "%s%s\n", nm, stat(p, &st) == 0 && S_ISDIR(st.st_mode) ? "/" : "");
			shown++;
		}
		free(ents[i]);
	}
	free(ents);
	sbuf_printf(&out, "\n(%s is a folder: %d entries%s. Use list or glob to explore it.)\n",
		    j->rel, total, shown < total ? ", not all shown" : "");
	char *text = sbuf_take(&out, NULL);
	if (text)
		ws_done(j, text, j->rel, NULL);
	else
		ws_fail(j, "out of memory");
	free(text);
}

struct reading {
	struct sbuf out;
	int64_t line, first, last; /* lines read; shown from first to last */
	int cut, more;             /* stopped at the byte cap; lines after the last shown */
};

static void read_line(struct ws_job *j, struct reading *r, char *s, size_t n)
{
	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		n--;
	if (r->line < j->num1)
		return;
	if (r->cut || r->line >= j->num1 + j->num2) {
		r->more = 1;
		return;
	}
	size_t keep = n > READ_LINE_MAX ? text_utf8_cut(s, READ_LINE_MAX) : n;
	char *t = text_utf8_clean(s, keep, NULL);
	if (t && r->out.len + strlen(t) + 64 > READ_MAX_BYTES) {
		r->cut = r->more = 1;
	} else if (t) {
		sbuf_printf(&r->out, "%6lld\t%s%s\n", (long long)r->line, t,
			    keep < n ? "... (line cut at 2000 characters)" : "");
		r->first = r->first ? r->first : r->line;
		r->last = r->line;
	}
	free(t);
}

/* The footer: where the shown lines are in the file and how to read on. */
static void read_footer(struct ws_job *j, struct reading *r, int counted)
{
	if (r->line == 0)
		sbuf_puts(&r->out, "(The file is empty.)\n");
	else if (r->cut)
		sbuf_printf(&r->out, "\n(Output cut at 50 KB: lines %lld-%lld shown. Use offset=%lld "
			    "to read on.)\n", (long long)r->first, (long long)r->last,
			    (long long)r->last + 1);
	else if (r->more)
		sbuf_printf(&r->out, "\n(Lines %lld-%lld of %s%lld shown. Use offset=%lld to read "
			    "on.)\n", (long long)r->first, (long long)r->last,
			    counted ? "" : "at least ", (long long)r->line, (long long)r->last + 1);
	else
		sbuf_printf(&r->out, "\n(End of file: %lld lines.)\n", (long long)r->line);
}

static void read_file(struct ws_job *j, const struct stat *st)
{
	unsigned char head[4096];
	char why[256], *line = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *f = fopen(j->path, "re");
	if (!f) {
		ws_fail(j, "cannot read %s: %s", j->rel, strerror(errno));
		return;
	}
	size_t hn = fread(head, 1, sizeof(head), f);
	if (text_is_binary(j->rel, head, hn, why, sizeof(why))) {
		fclose(f);
		ws_fail(j, "Cannot read %s: it is a binary file (%s)", j->rel, why);
		return;
	}
	rewind(f);
	struct reading r = {0};
	int counted = st->st_size <= READ_COUNT_MAX;
	while ((n = getline(&line, &cap, f)) >= 0 && !ws_cancelled(j)) {
		r.line++;
		read_line(j, &r, line, (size_t)n);
		if (r.more && !counted)
			break;
	}
	free(line);
	fclose(f);
	if (r.line && j->num1 > r.line) {
		sbuf_free(&r.out);
		ws_fail(j, "offset %lld is past the end of %s (%lld lines)", (long long)j->num1,
			j->rel, (long long)r.line);
		return;
	}
	read_footer(j, &r, counted);
	char *text = sbuf_take(&r.out, NULL);
	char *meta = ws_meta("i", "lines", (int64_t)r.line, "b", "truncated", r.more, NULL);
	if (text)
		ws_done(j, text, j->rel, meta);
	else
		ws_fail(j, "out of memory");
	free(text);
	free(meta);
}

static void read_act(struct ws_job *j)
{
	struct stat st;
	if (stat(j->path, &st))
		not_found(j);
	else if (S_ISDIR(st.st_mode))
		read_dir(j);
	else if (!S_ISREG(st.st_mode))
		ws_fail(j, "Cannot read %s: it is not a regular file", j->rel);
	else
		read_file(j, &st);
}

/* ---- write ---- */

static int write_parse(struct ws_job *j, const cJSON *in, char *why, size_t wn)
{
	const char *path, *content;
	if (ws_in_str(in, "filePath", 1, &path, why, wn) ||
	    ws_in_str(in, "content", 1, &content, why, wn))
		return -1;
	if (!*path) {
		snprintf(why, wn, "the parameter \"filePath\" is empty");
		return -1;
	}
	if (!(j->after = strdup(content))) {
		snprintf(why, wn, "out of memory");
		return -1;
	}
	j->after_len = strlen(content);
	return ws_resolve(j, path, why, wn);
}

/* The file as it is (if it exists): j->existed, j->before. */
static int load_before(struct ws_job *j, long max, char *why, size_t wn)
{
	struct stat st;
	if (stat(j->path, &st)) {
		if (errno != ENOENT) {
			snprintf(why, wn, "cannot use %s: %s", j->rel, strerror(errno));
			return -1;
		}
		return 0;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, wn, "%s is %s, not a file", j->rel,
			 S_ISDIR(st.st_mode) ? "a folder" : "something else");
		return -1;
	}
	j->existed = 1;
	return slurp(j->path, j->rel, max, &j->before, &j->before_len, why, wn);
}

static int write_prepare(struct ws_job *j, char *why, size_t wn)
{
	int rc = load_before(j, EDIT_MAX_FILE, why, wn);
	if (rc == -1)
		return -1;
	/* a file too big to diff is still replaced: the diff says so */
	j->diff = rc == -2 ? strdup("(the old file is too big to show a diff)")
			   : diff_unified(j->rel, j->before ? j->before : "", j->before_len,
					  j->after, j->after_len);
	if (!j->diff)
		snprintf(why, wn, "out of memory");
	return j->diff ? 0 : -1;
}

static void write_ask(struct ws_job *j, struct ws_ask *a)
{
	ws_ask_fill(a, "edit", j->rel, ws_meta("s", "filePath", j->rel, "s", "diff", j->diff, "b",
						   "exists", j->existed, NULL),
		    "%s %s", j->existed ? "Overwrite" : "Create", j->rel);
}

/* Writes j->after if the file is still what prepare read; ends the call. */
static void commit(struct ws_job *j, const char *summary, char *meta)
{
	char why[PATH_MAX + 256];
	struct stat st;
	if (!unchanged(j, &st, why, sizeof(why)) ||
	    write_atomic(j->root, j->path, j->after, j->after_len, j->existed ? &st : NULL, why,
			 sizeof(why)))
		ws_fail(j, "%s", why);
	else
		ws_done(j, summary, j->rel, meta);
	free(meta);
}

static void write_act(struct ws_job *j)
{
	char out[PATH_MAX + 128];
	if (j->existed)
		snprintf(out, sizeof(out), "Wrote %zu bytes to %s, replacing its content.",
			 j->after_len, j->rel);
	else
		snprintf(out, sizeof(out), "Created %s (%zu bytes).", j->rel, j->after_len);
	commit(j, out, ws_meta("s", "filePath", j->rel, "s", "diff", j->diff, "b", "exists",
			       j->existed, NULL));
}

/* ---- edit ---- */

static int edit_parse(struct ws_job *j, const cJSON *in, char *why, size_t wn)
{
	const char *path, *old, *new_text;
	if (ws_in_str(in, "filePath", 1, &path, why, wn) ||
	    ws_in_str(in, "oldString", 1, &old, why, wn) ||
	    ws_in_str(in, "newString", 1, &new_text, why, wn) ||
	    ws_in_bool(in, "replaceAll", &j->flag, why, wn))
		return -1;
	if (!*path) {
		snprintf(why, wn, "the parameter \"filePath\" is empty");
		return -1;
	}
	if (!(j->arg = strdup(old)) || !(j->arg2 = strdup(new_text))) {
		snprintf(why, wn, "out of memory");
		return -1;
	}
	return ws_resolve(j, path, why, wn);
}

static int edit_prepare(struct ws_job *j, char *why, size_t wn)
{
	int rc = load_before(j, EDIT_MAX_FILE, why, wn);
	if (rc)
		return -1;
	if (!j->existed && *j->arg) {
		snprintf(why, wn, "File not found: %s (to create a file, use write, or edit with "
			 "an empty oldString)", j->rel);
		return -1;
	}
	if (!*j->arg && !j->before_len) { /* creating, or filling an empty file */
		j->after = strdup(j->arg2);
		j->after_len = strlen(j->arg2);
		j->count = 1;
	} else if (edit_replace(j->before, j->before_len, j->arg, j->arg2, j->flag, &j->after,
				&j->after_len, &j->count, why, wn)) {
		size_t l = strlen(why);
		snprintf(why + l, wn - l, " (in %s)", j->rel);
		return -1;
	}
	j->diff = j->after ? diff_unified(j->rel, j->before ? j->before : "", j->before_len,
					  j->after, j->after_len) : NULL;
	if (!j->diff)
		snprintf(why, wn, "out of memory");
	return j->diff ? 0 : -1;
}

static void edit_ask(struct ws_job *j, struct ws_ask *a)
{
	ws_ask_fill(a, "edit", j->rel, ws_meta("s", "filePath", j->rel, "s", "diff", j->diff, NULL),
		    "Edit %s", j->rel);
}

static void edit_act(struct ws_job *j)
{
	char out[PATH_MAX + 128];
	if (j->existed)
		snprintf(out, sizeof(out), "Edited %s: %d occurrence%s replaced.", j->rel, j->count,
			 j->count == 1 ? "" : "s");
	else
		snprintf(out, sizeof(out), "Created %s (%zu bytes).", j->rel, j->after_len);
	commit(j, out, ws_meta("s", "filePath", j->rel, "s", "diff", j->diff, "i",
			       "replacements", (int64_t)j->count, NULL));
}

/* ---- the definitions ---- */

const struct ws_tool ws_read = {
	.name = "read",
	.description =
		"Read a text file (or see a folder's entries).\n"
		"- filePath: relative to the session's working directory, or absolute inside it.\n"
		"- Returns up to 2000 lines from the start, each line prefixed with its number "
		"and a tab, as `cat -n` prints them. For long files, page with offset (the "
		"1-based line to start at) and limit (how many lines); the reply ends by saying "
		"where to continue. Read the whole file unless it is long.\n"
		"- Lines over 2000 characters are cut, and one call returns at most 50 KB.\n"
		"- Binary files (images, archives, compiled objects) are refused.\n"
		"- The line-number prefix is not part of the file: never copy it into edit's "
		"oldString or newString.\n"
		"- Read a file before editing or overwriting it. When several files may matter, "
		"read them in parallel (several calls in one turn) rather than one at a time.",
	.parameters =
		"{\"type\":\"object\",\"properties\":{"
		"\"filePath\":{\"type\":\"string\",\"description\":\"The file to read: relative to "
		"the working directory, or absolute inside it\"},"
		"\"offset\":{\"type\":\"integer\",\"description\":\"The line to start at (1-based)\"},"
		"\"limit\":{\"type\":\"integer\",\"description\":\"How many lines to read (default "
		"2000)\"}},\"required\":[\"filePath\"]}",
	.parse = read_parse, .ask = read_ask, .act = read_act,
};

const struct ws_tool ws_write = {
	.name = "write",
	.description =
		"Create a file, or replace the whole content of an existing one.\n"
		"- filePath: relative to the session's working directory, or absolute inside it. "
		"Missing parent folders are created.\n"
		"- It overwrites without merging. To change part of an existing file use edit "
		"instead: it is safer and its diff is smaller. Read an existing file before "
		"overwriting it.\n"
		"- Do not create documentation or README files unless you are asked to.\n"
		"- The change may need the user's approval; if it is refused, the call fails with "
		"the user's reason.",
	.parameters =
		"{\"type\":\"object\",\"properties\":{"
		"\"filePath\":{\"type\":\"string\",\"description\":\"The file to write: relative to "
		"the working directory, or absolute inside it\"},"
		"\"content\":{\"type\":\"string\",\"description\":\"The complete new content of the "
		"file\"}},\"required\":[\"filePath\",\"content\"]}",
	.parse = write_parse, .prepare = write_prepare, .ask = write_ask, .act = write_act,
	.writes = 1,
};

const struct ws_tool ws_edit = {
	.name = "edit",
	.description =
		"Replace exact text in a file.\n"
		"- oldString must match the file's current text exactly: indentation (tabs or "
		"spaces), blank lines and line breaks included. Copy it from read's output, "
		"leaving out the line-number prefix (the number and the tab after it).\n"
		"- oldString must occur exactly once. The edit fails if it is not found, or says "
		"how many times it occurs when it is not unique: then include more of the "
		"surrounding lines to single it out, or set replaceAll to change every "
		"occurrence (to rename a variable, say).\n"
		"- newString replaces it (empty to delete it); it must differ from oldString.\n"
		"- Read the file before editing it, and again after a failed edit instead of "
		"guessing its text.\n"
		"- An empty oldString creates a file that does not exist (or fills an empty one) "
		"with newString.\n"
		"- The result carries a unified diff of the change. The change may need the "
		"user's approval; if it is refused, the call fails with the user's reason.",
	.parameters =
		"{\"type\":\"object\",\"properties\":{"
		"\"filePath\":{\"type\":\"string\",\"description\":\"The file to change: relative to "
		"the working directory, or absolute inside it\"},"
		"\"oldString\":{\"type\":\"string\",\"description\":\"The exact text to replace\"},"
		"\"newString\":{\"type\":\"string\",\"description\":\"The text to put in its place "
		"(must differ from oldString)\"},"
		"\"replaceAll\":{\"type\":\"boolean\",\"description\":\"Replace every occurrence of "
		"oldString (default false)\"}},"
		"\"required\":[\"filePath\",\"oldString\",\"newString\"]}",
	.parse = edit_parse, .prepare = edit_prepare, .ask = edit_ask, .act = edit_act,
	.writes = 1,
};
