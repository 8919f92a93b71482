#include "search.h"
#include "git.h"
#include "paths.h"
#include "sbuf.h"
#include "text.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_VISIT 200000          /* entries a walk looks at */
#define MAX_FOUND 20000           /* results collected before sorting */
#define MAX_DEPTH 64
#define GREP_MAX_FILE (8L << 20)  /* bigger files are not searched */
#define GREP_LINE_MAX 400         /* bytes of a matching line shown */

/* ---- the walk ---- */

struct walker {
	const struct search *s;
	/* rel: relative to s->dir. Return 1 to stop the walk. */
	int (*file)(struct walker *w, const char *rel, const struct stat *st);
	void (*dir)(struct walker *w, const char *rel, int depth);
	void *arg;
	long visited;
	int stopped; /* cut short: limit, cancel or MAX_VISIT */
	int depth;   /* of the folder being read, for file() */
};

enum kind { K_SKIP, K_DIR, K_FILE };

static int ignored(const struct search *s, const char *name)
{
	for (char *const *p = s->ignore; p && *p; p++)
		if (!strcmp(*p, name))
			return 1;
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void search_gitignore(struct search *s)
{
	char *buf, why[256];
	size_t len, n = 0;
	if (git_ignored(s->dir, &buf, &len, why, sizeof(why)))
		return;
	for (size_t i = 0; i < len; i++)
		n += !buf[i];
	char **v = n ? malloc(n * sizeof(*v)) : NULL;
	if (!v) {
		free(buf);
		return;
	}
	n = 0;
	for (size_t i = 0; i < len; i += strlen(buf + i) + 1)
		v[n++] = buf + i;
	qsort(v, n, sizeof(*v), by_name);
	s->gitignored = v;
	s->ngitignored = n;
	s->gitignored_buf = buf;
}

void search_done(struct search *s)
{
	free(s->gitignored);
	free(s->gitignored_buf);
	s->gitignored = NULL;
	s->gitignored_buf = NULL;
	s->ngitignored = 0;
}

/* Whether git ignores rel/name (relative to s->dir; folder: as a whole). */
static int git_ignores(const struct search *s, const char *rel, const char *name, int folder)
{
	char path[PATH_MAX], *key = path;
	if (!s->ngitignored || snprintf(path, sizeof(path), "%s%s%s%s", rel, *rel ? "/" : "",
					name, folder ? "/" : "") >= (int)sizeof(path))
		return 0;
	return bsearch(&key, s->gitignored, s->ngitignored, sizeof(char *), by_name) != NULL;
}

/* What the walk does with abs: a folder to enter, a file to visit, or nothing. */
static enum kind kind_of(const struct search *s, const struct dirent *e, const char *abs)
{
	struct stat st;
	unsigned char t = e->d_type;
	if (t == DT_UNKNOWN) {
		if (lstat(abs, &st))
			return K_SKIP;
		t = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG
		    : S_ISLNK(st.st_mode) ? DT_LNK : DT_UNKNOWN;
	}
	if (t == DT_DIR)
		return ignored(s, e->d_name) ? K_SKIP : K_DIR;
	if (t == DT_REG)
		return K_FILE;
	if (t != DT_LNK || stat(abs, &st) || !S_ISREG(st.st_mode))
		return K_SKIP; /* links to folders are not followed */
	char real[PATH_MAX];
	return realpath(abs, real) && paths_inside(s->root, real) ? K_FILE : K_SKIP;
}

static int walk_dir(struct walker *w, const char *abs, const char *rel, int depth);

/* Visits entry e of folder abs/rel in pass (0: folders, 1: files); 1 to stop. */
static int visit(struct walker *w, const char *abs, const char *rel, const struct dirent *e,
		 enum kind k, int pass, int depth)
{
	char *cabs = NULL, *crel = NULL;
	int stop = 0;
	if (asprintf(&cabs, "%s/%s", abs, e->d_name) < 0)
		return 1;
	if (asprintf(&crel, "%s%s%s", rel, *rel ? "/" : "", e->d_name) < 0) {
		free(cabs);
		return 1;
	}
	struct stat st;
	if (pass == 0 && k == K_DIR) {
		if (w->dir)
			w->dir(w, crel, depth);
		stop = walk_dir(w, cabs, crel, depth + 1);
	} else if (pass == 1 && k == K_FILE && stat(cabs, &st) == 0) {
		w->depth = depth;
		stop = w->file(w, crel, &st);
	}
	free(cabs);
	free(crel);
	return stop;
}

static int walk_dir(struct walker *w, const char *abs, const char *rel, int depth)
{
	struct dirent **ents;
	int stop = 0, n;
	if (depth > MAX_DEPTH)
		return 0;
	if (w->s->cancelled && atomic_load(w->s->cancelled)) {
		w->stopped = 1;
		return 1;
	}
	if ((n = scandir(abs, &ents, NULL, alphasort)) < 0)
		return 0;
	enum kind *kinds = calloc((size_t)n + 1, sizeof(*kinds));
	for (int i = 0; kinds && i < n; i++) {
		const char *nm = ents[i]->d_name;
		char *p = NULL;
		if (!strcmp(nm, ".") || !strcmp(nm, "..") || asprintf(&p, "%s/%s", abs, nm) < 0)
			continue;
		kinds[i] = kind_of(w->s, ents[i], p);
		if (kinds[i] != K_SKIP && git_ignores(w->s, rel, nm, kinds[i] == K_DIR))
			kinds[i] = K_SKIP;
		free(p);
	}
	for (int pass = 0; kinds && pass < 2 && !stop; pass++)
		for (int i = 0; i < n && !stop; i++) {
			if (kinds[i] == K_SKIP || (kinds[i] == K_DIR) != (pass == 0))
				continue;
			if (++w->visited > MAX_VISIT) {
				w->stopped = stop = 1;
				break;
			}
			stop = visit(w, abs, rel, ents[i], kinds[i], pass, depth);
		}
	for (int i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	free(kinds);
	return stop;
}

/* The prefix that makes a path relative to s->dir relative to s->root ("" or "x/"). */
static char *prefix_of(const struct search *s)
{
	const char *r = paths_rel(s->root, s->dir);
	char *p = NULL;
	if (asprintf(&p, "%s%s", strcmp(r, ".") ? r : "", strcmp(r, ".") ? "/" : "") < 0)
		return NULL;
	return p;
}

/* ---- list ---- */

struct listing {
	struct sbuf out;
	int files, entries;
};

static void indent(struct sbuf *b, int depth)
{
	for (int i = 0; i <= depth; i++)
		sbuf_puts(b, "  ");
}

static void list_dir(struct walker *w, const char *rel, int depth)
{
	struct listing *l = w->arg;
	const char *base = strrchr(rel, '/');
	indent(&l->out, depth);
	sbuf_printf(&l->out, "%s/\n", base ? base + 1 : rel);
	l->entries++;
}

static int list_file(struct walker *w, const char *rel, const struct stat *st)
{
	struct listing *l = w->arg;
	if (l->files >= w->s->limit) {
		w->stopped = 1;
		return 1;
	}
	const char *base = strrchr(rel, '/');
	indent(&l->out, w->depth);
	sbuf_printf(&l->out, "%s\n", base ? base + 1 : rel);
	l->files++;
	l->entries++;
	return 0;
}

char *search_list(const struct search *s, struct search_stats *st, char *why, size_t wn)
{
	struct listing l = {0};
	struct walker w = {.s = s, .file = list_file, .dir = list_dir, .arg = &l};
	sbuf_printf(&l.out, "%s/\n", strcmp(s->dir, "/") ? s->dir : "");
	walk_dir(&w, s->dir, "", 0);
	if (w.stopped)
		sbuf_printf(&l.out, "\n(Listing cut after %d files. Pass a subfolder as path, or "
			    "use glob, to see more.)\n", l.files);
	else if (l.entries == 0)
		sbuf_puts(&l.out, "  (empty)\n");
	*st = (struct search_stats){l.files, w.stopped};
	char *out = sbuf_take(&l.out, NULL);
	if (!out)
		snprintf(why, wn, "out of memory");
	return out;
}

/* ---- glob ---- */

struct hit {
	char *path; /* relative to the root */
	int64_t mtime;
	int line;   /* grep: the line, and its text */
	char *text;
	int order;  /* found order: ties keep it */
};

struct hits {
	struct hit *v;
	int n, cap, full;
	const char *prefix;
	const struct glob *g;
	const regex_t *re;
};

static int hits_add(struct hits *h, const char *rel, int64_t mtime, int line, char *text)
{
	if (h->n >= MAX_FOUND) {
		h->full = 1;
		free(text);
		return -1;
	}
	if (h->n == h->cap) {
		int cap = h->cap ? h->cap * 2 : 64;
		struct hit *v = realloc(h->v, (size_t)cap * sizeof(*v));
		if (!v) {
			free(text);
			return -1;
		}
		h->v = v;
		h->cap = cap;
	}
	struct hit *x = &h->v[h->n];
	*x = (struct hit){NULL, mtime, line, text, h->n};
	if (asprintf(&x->path, "%s%s", h->prefix, rel) < 0) {
		free(text);
		return -1;
	}
	h->n++;
	return 0;
}

static void hits_free(struct hits *h)
{
	for (int i = 0; i < h->n; i++) {
		free(h->v[i].path);
		free(h->v[i].text);
	}
	free(h->v);
}

/* Newest first; within a file (grep), by line; else in the order found. */
static int hit_cmp(const void *a, const void *b)
{
	const struct hit *x = a, *y = b;
	if (x->mtime != y->mtime)
		return x->mtime > y->mtime ? -1 : 1;
	return x->order - y->order;
}

static int64_t mtime_of(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static int glob_file(struct walker *w, const char *rel, const struct stat *st)
{
	struct hits *h = w->arg;
	if (glob_match(h->g, rel) && hits_add(h, rel, mtime_of(st), 0, NULL)) {
		w->stopped = 1;
		return 1;
	}
	return 0;
}

/* Walks s with file() collecting into h, then sorts h: newest first. */
static int collect(const struct search *s, struct hits *h,
		   int (*file)(struct walker *w, const char *rel, const struct stat *st))
{
	struct walker w = {.s = s, .file = file, .arg = h};
	if (h->prefix)
		walk_dir(&w, s->dir, "", 0);
	qsort(h->v, (size_t)h->n, sizeof(*h->v), hit_cmp);
	return w.stopped;
}

/* The text built in out (NULL with why when anything failed); frees h. */
static char *hits_text(struct hits *h, struct sbuf *out, char *why, size_t wn)
{
	int ok = h->prefix != NULL;
	hits_free(h);
	free((char *)h->prefix);
	char *text = ok ? sbuf_take(out, NULL) : NULL;
	if (!ok)
		sbuf_free(out);
	if (!text)
		snprintf(why, wn, "out of memory");
	return text;
}

char *search_glob(const struct search *s, const struct glob *g, struct search_stats *st,
		  char *why, size_t wn)
{
	struct hits h = {.g = g, .prefix = prefix_of(s)};
	struct sbuf out = {0};
	int stopped = collect(s, &h, glob_file);
	int shown = h.n < s->limit ? h.n : s->limit;
	for (int i = 0; i < shown; i++)
		sbuf_printf(&out, "%s\n", h.v[i].path);
	if (h.n == 0)
		sbuf_puts(&out, stopped ? "No files found before the search was cut short.\n"
					: "No files found.\n");
	else if (shown < h.n || stopped)
		sbuf_printf(&out, "\n(Showing the %d most recently modified of %d%s matching files. "
			    "Narrow the pattern or pass a subfolder as path.)\n", shown, h.n,
			    stopped ? " or more" : "");
	*st = (struct search_stats){h.n, shown < h.n || stopped};
	return hits_text(&h, &out, why, wn);
}

/* ---- grep ---- */

static char *read_small(const char *path, off_t size, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf = fd >= 0 ? malloc((size_t)size + 1) : NULL;
	size_t got = 0;
	ssize_t n = 0;
	while (buf && got < (size_t)size && (n = read(fd, buf + got, (size_t)size - got)) > 0)
		got += (size_t)n;
	if (fd >= 0)
		close(fd);
	if (buf)
		buf[got] = 0;
	*len = got;
	return buf;
}

/* Every matching line of buf[0..len) into h; 1 when h is full. */
static int grep_lines(struct hits *h, const char *rel, int64_t mtime, char *buf, size_t len)
{
	int line = 0;
	for (char *p = buf; p < buf + len;) {
		char *nl = memchr(p, '\n', (size_t)(buf + len - p)), *end = nl ? nl : buf + len;
		line++;
		*end = 0;
		if (end > p && end[-1] == '\r')
			end[-1] = 0;
		if (regexec(h->re, p, 0, NULL, 0) == 0) {
			size_t l = strlen(p), cut = l > GREP_LINE_MAX ? text_utf8_cut(p, GREP_LINE_MAX) : l;
			char *t = text_utf8_clean(p, cut, NULL);
			if (t && cut < l) {
				char *more = NULL;
				if (asprintf(&more, "%s...", t) >= 0) {
					free(t);
					t = more;
				}
			}
			if (!t || hits_add(h, rel, mtime, line, t))
				return 1;
		}
		p = end + 1;
	}
	return 0;
}

static int grep_file(struct walker *w, const char *rel, const struct stat *st)
{
	struct hits *h = w->arg;
	char *abs = NULL, why[128];
	size_t len = 0;
	if ((h->g && !glob_match(h->g, rel)) || st->st_size > GREP_MAX_FILE)
		return 0;
	if (asprintf(&abs, "%s/%s", w->s->dir, rel) < 0)
		return 1;
	char *buf = read_small(abs, st->st_size, &len);
	free(abs);
	int stop = 0;
	if (buf && !text_is_binary(rel, (unsigned char *)buf, len < 8192 ? len : 8192, why,
				   sizeof(why)))
		stop = grep_lines(h, rel, mtime_of(st), buf, len);
	free(buf);
	if (stop)
		w->stopped = 1;
	return stop;
}

char *search_grep(const struct search *s, const regex_t *re, const struct glob *include,
		  struct search_stats *st, char *why, size_t wn)
{
	struct hits h = {.g = include, .re = re, .prefix = prefix_of(s)};
	struct sbuf out = {0};
	int stopped = collect(s, &h, grep_file);
	int shown = h.n < s->limit ? h.n : s->limit;
	if (h.n == 0)
		sbuf_puts(&out, stopped ? "No matches found before the search was cut short.\n"
					: "No matches found.\n");
	else
		sbuf_printf(&out, "Found %d%s match%s%s\n", h.n, stopped ? " or more" : "",
			    h.n == 1 && !stopped ? "" : "es",
			    shown < h.n ? " (the first in the most recently modified files shown)"
					: "");
	for (int i = 0; i < shown; i++)
		sbuf_printf(&out, "%s:%d: %s\n", h.v[i].path, h.v[i].line, h.v[i].text);
	if (shown < h.n)
		sbuf_printf(&out, "\n(Showing %d of %d matches. Narrow the pattern, pass include "
			    "or a subfolder as path.)\n", shown, h.n);
	*st = (struct search_stats){h.n, shown < h.n || stopped};
	return hits_text(&h, &out, why, wn);
}

/* The ']' ending the bracket expression that starts at p, or NULL. */
static const char *class_end(const char *p)
{
	const char *q = p + 1;
	q += *q == '^';
	q += *q == ']'; /* first: a literal */
	while (*q && *q != ']') {
		if (*q == '[' && (q[1] == ':' || q[1] == '.' || q[1] == '=')) {
			char close[3] = {q[1], ']', 0};
			const char *e = strstr(q + 2, close);
			if (e) {
				q = e + 2;
				continue;
			}
		}
		q++;
	}
	return *q ? q : NULL;
}

int search_regex(regex_t *re, const char *pattern, char *why, size_t wn)
{
	struct sbuf b = {0};
	for (const char *p = pattern; *p; p++) {
		const char *e = *p == '[' ? class_end(p) : NULL;
		if (e) {
			sbuf_add(&b, p, (size_t)(e - p) + 1);
			p = e;
		} else if (*p == '\\' && (p[1] == 'd' || p[1] == 'D' || p[1] == 't')) {
			sbuf_puts(&b, p[1] == 'd' ? "[0-9]" : p[1] == 'D' ? "[^0-9]" : "\t");
			p++;
		} else if (*p == '\\' && p[1]) {
			sbuf_add(&b, p, 2);
			p++;
		} else {
			sbuf_add(&b, p, 1);
		}
	}
	char *ere = sbuf_take(&b, NULL);
	int rc = ere ? regcomp(re, ere, REG_EXTENDED | REG_NEWLINE) : REG_ESPACE;
	free(ere);
	if (rc) {
		char msg[128];
		regerror(rc, re, msg, sizeof(msg));
		snprintf(why, wn, "bad regular expression \"%s\": %s", pattern, msg);
		return -1;
	}
	return 0;
}
