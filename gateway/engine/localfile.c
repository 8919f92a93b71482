#include "localfile.h"
#include "media.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LISTING_MAX 1000 /* entries a directory's listing names */

void localfile_free(struct localfile *f)
{
	free(f->bytes);
	f->bytes = NULL;
	f->len = 0;
}

/* Collapses ".", ".." and repeated slashes of an absolute path in place ("/a/./b/../c"
 * -> "/a/c"; ".." above "/" stays "/"). */
static void normalize(char *p)
{
	char *out = p, *in = p;
	while (*in) {
		while (*in == '/')
			in++;
		if (!*in)
			break;
		size_t n = strcspn(in, "/");
		if (n == 1 && in[0] == '.') {
			in += n;
			continue;
		}
		if (n == 2 && in[0] == '.' && in[1] == '.') {
			while (out > p && *--out != '/')
				;
			in += n;
			continue;
		}
		*out++ = '/';
		memmove(out, in, n);
		out += n;
		in += n;
	}
	if (out == p)
		*out++ = '/';
	*out = 0;
}

/* p relative to root when it is root or below it (both normalized): a pointer into p
 * ("" for root itself), else NULL. */
static const char *inside(const char *root, const char *p)
{
	size_t n = strlen(root);
	if (n == 1) /* "/" */
		return p + 1;
	if (strncmp(root, p, n) || (p[n] && p[n] != '/'))
		return NULL;
	return p[n] ? p + n + 1 : p + n;
}

/* A file:// URL's ?start=N&end=M. */
static void line_range(const char *q, struct localfile *out)
{
	const char *s = strstr(q, "start="), *e = strstr(q, "end=");
	if (s)
		out->first_line = strtol(s + 6, NULL, 10);
	if (e)
		out->last_line = strtol(e + 4, NULL, 10);
	if (out->first_line < 0)
		out->first_line = 0;
	if (out->last_line < 0)
		out->last_line = 0;
}

/* The path ref names, absolute and normalized, into abs (PATH_MAX). */
static int ref_path(const char *dir, const char *ref, char *abs, struct localfile *out,
		    char *why, size_t wn)
{
	const char *p = ref;
	int url = !strncmp(ref, "file://", 7);
	size_t n;
	if (url) {
		p = ref + 7;
		if (!strncmp(p, "localhost/", 10))
			p += 9;
		if (*p != '/') {
			snprintf(why, wn, "%.300s: a file:// URL with a host (only local paths)", ref);
			return -1;
		}
		n = strcspn(p, "?#");
		if (p[n] == '?')
			line_range(p + n, out);
	} else {
		n = strlen(p);
	}
	if (!n || n >= PATH_MAX) {
		snprintf(why, wn, "%.300s: %s", ref, n ? "the path is too long" : "an empty path");
		return -1;
	}
	char dec[PATH_MAX];
	long dl = (long)n;
	if (url)
		dl = media_pct_decode(p, n, dec);
	else
		memcpy(dec, p, n + 1);
	if (dl < 0 || memchr(dec, 0, (size_t)dl)) {
		snprintf(why, wn, "%.300s: a malformed %%-escape or a %%00 in the URL", ref);
		return -1;
	}
	int len = dec[0] == '/' ? snprintf(abs, PATH_MAX, "%s", dec)
				: snprintf(abs, PATH_MAX, "%s/%s", dir, dec);
	if (len < 0 || len >= PATH_MAX) {
		snprintf(why, wn, "%.300s: the path is too long", ref);
		return -1;
	}
	normalize(abs);
	return 0;
}

/* Opens rel (relative to dir) beneath dir: the kernel refuses any way out. */
static int open_beneath(const char *dir, const char *rel, const char *abs, int *err_out)
{
	int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		*err_out = errno;
		return -1;
	}
	struct open_how how = {.flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY,
			       .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
	int fd = (int)syscall(SYS_openat2, dfd, *rel ? rel : ".", &how, sizeof(how));
	int err = errno;
	close(dfd);
	if (fd >= 0 || err != ENOSYS) {
		*err_out = err;
		return fd;
	}
	/* no openat2: the real path must still be inside the directory's */
	char rd[PATH_MAX], rp[PATH_MAX];
	if (!realpath(dir, rd) || !realpath(abs, rp)) {
		*err_out = errno;
		return -1;
	}
	if (!inside(rd, rp)) {
		*err_out = EXDEV;
		return -1;
	}
	fd = open(rp, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
	*err_out = errno;
	return fd;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The directory's entries, sorted, one a line ("name/" for a directory). */
static int listing(int fd, struct localfile *out)
{
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -1;
	}
	char **names = NULL;
	size_t n = 0, cap = 0, more = 0, total = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == LISTING_MAX) {
			more++;
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **g = realloc(names, cap * sizeof(*g));
			if (!g)
				break;
			names = g;
		}
		if (asprintf(&names[n], "%s%s", de->d_name, de->d_type == DT_DIR ? "/" : "") < 0)
			break;
		total += strlen(names[n++]) + 1;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_names);
	out->bytes = malloc(total + 64);
	size_t at = 0;
	for (size_t i = 0; i < n; i++) {
		if (out->bytes)
			at += (size_t)sprintf((char *)out->bytes + at, "%s\n", names[i]);
		free(names[i]);
	}
	free(names);
	if (!out->bytes)
		return -1;
	if (more)
		at += (size_t)sprintf((char *)out->bytes + at, "(%zu more)\n", more);
	out->bytes[at] = 0;
	out->len = at;
	out->is_dir = 1;
	return 0;
}

static int read_all(int fd, size_t size, struct localfile *out)
{
	out->bytes = malloc(size + 1);
	if (!out->bytes)
		return -1;
	size_t at = 0;
	while (at < size) {
		ssize_t r = read(fd, out->bytes + at, size - at);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break; /* shrank meanwhile: what there is */
		at += (size_t)r;
	}
	out->bytes[at] = 0;
	out->len = at;
	return 0;
}

int localfile_read(const char *dir, const char *ref, size_t max, struct localfile *out,
		   char *why, size_t wn)
{
	char abs[PATH_MAX], nd[PATH_MAX], rd[PATH_MAX];
	memset(out, 0, sizeof(*out));
	snprintf(nd, sizeof(nd), "%s", dir);
	normalize(nd);
	if (ref_path(nd, ref, abs, out, why, wn))
		return -1;
	const char *rel = inside(nd, abs);
	if (!rel && realpath(nd, rd))
		rel = inside(rd, abs); /* named through the directory's real path */
	if (!rel) {
		snprintf(why, wn, "%.300s is outside the session's directory %.300s", ref, nd);
		return -1;
	}
	const char *slash = strrchr(abs, '/');
	snprintf(out->name, sizeof(out->name), "%.255s", slash[1] ? slash + 1 : abs);
	int err = 0, fd = open_beneath(nd, rel, abs, &err);
	if (fd < 0) {
		if (err == EXDEV || err == ELOOP)
			snprintf(why, wn, "%.300s leads out of the session's directory %.300s (a "
				 "symbolic link or \"..\")", ref, nd);
		else
			snprintf(why, wn, "%.300s: %s", ref, strerror(err));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st)) {
		snprintf(why, wn, "%.300s: %s", ref, strerror(errno));
		close(fd);
		return -1;
	}
	if (S_ISDIR(st.st_mode))
		return listing(fd, out) ? (snprintf(why, wn, "%.300s: cannot list it", ref), -1)
					: 0;
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, wn, "%.300s is not a regular file or a directory", ref);
		close(fd);
		return -1;
	}
	if ((size_t)st.st_size > max) {
		snprintf(why, wn, "%.300s is %lld bytes, over limits.max_file_bytes (%zu)", ref,
			 (long long)st.st_size, max);
		close(fd);
		return -1;
	}
	int rc = read_all(fd, (size_t)st.st_size, out);
	close(fd);
	if (rc)
		snprintf(why, wn, "%.300s: out of memory", ref);
	return rc;
}

size_t localfile_lines(unsigned char *text, size_t n, long first, long last)
{
	if (first <= 0 && last <= 0)
		return n;
	size_t from = first <= 1 ? 0 : n, to = n;
	long line = 1;
	for (size_t i = 0; i < n; i++) {
		if (text[i] != '\n')
			continue;
		if (last > 0 && line == last) {
			to = i + 1;
			break;
		}
		if (++line == first)
			from = i + 1;
	}
	if (from > to)
		from = to;
	memmove(text, text + from, to - from);
	text[to - from] = 0;
	return to - from;
}
