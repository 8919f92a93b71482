/* localfile: reads a file a prompt names by path, from inside its session's directory
 * only. The name (a file:// URL, an absolute path or one relative to the directory) is
 * checked lexically, then opened by the kernel beneath the directory (openat2 with
 * RESOLVE_BENEATH, so neither ".." nor a symbolic link can lead out of it, also when
 * the tree changes meanwhile); where the kernel lacks openat2, the real path is checked
 * instead. A directory reads as a listing. Reads are synchronous and bounded by max
 * bytes. No state; any thread. */
#ifndef AG_LOCALFILE_H
#define AG_LOCALFILE_H
#include <stddef.h>

struct localfile {
	unsigned char *bytes; /* the content, or a directory's listing (malloc'd, NUL follows) */
	size_t len;
	int is_dir;
	char name[256];       /* the last path segment (the directory's own name for "") */
	long first_line, last_line; /* a file:// URL's ?start=N&end=M (1-based; 0 when absent) */
};

/* Reads ref inside dir (an absolute path). 0, or -1 with why (wn bytes) naming ref and
 * the reason: outside dir, leading out through ".." or a symbolic link, no such file,
 * not a regular file or directory, over max bytes ("limits.max_file_bytes"), a URL
 * with a host or a %00. */
int localfile_read(const char *dir, const char *ref, size_t max, struct localfile *out,
		   char *why, size_t wn);
void localfile_free(struct localfile *f);

/* The lines first..last (1-based, inclusive; last 0: to the end) of text[0..n), in
 * place: the new length. */
size_t localfile_lines(unsigned char *text, size_t n, long first, long last);

#endif
