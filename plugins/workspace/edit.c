#include "edit.h"
#include "sbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Occurrences of needle in hay[0..len), not overlapping; *first the first one's line. */
static int count_of(const char *hay, size_t len, const char *needle, size_t nl, int *first)
{
	int n = 0;
	for (const char *p = hay; (size_t)(p - hay) + nl <= len;) {
		const char *q = memmem(p, len - (size_t)(p - hay), needle, nl);
		if (!q)
			break;
		if (n++ == 0) {
			*first = 1;
			for (const char *r = hay; r < q; r++)
				*first += *r == '\n';
		}
		p = q + nl;
	}
	return n;
}

/* s with every "\n" not after a '\r' made "\r\n" (malloc'd). */
static char *to_crlf(const char *s)
{
	struct sbuf b = {0};
	for (const char *p = s; *p; p++) {
		if (*p == '\n' && (p == s || p[-1] != '\r'))
			sbuf_add(&b, "\r", 1);
		sbuf_add(&b, p, 1);
	}
	return sbuf_take(&b, NULL);
}

static int replace(const char *content, size_t len, const char *old, const char *new_text,
		   char **out, size_t *out_len)
{
	struct sbuf b = {0};
	size_t ol = strlen(old);
	const char *p = content, *end = content + len, *q;
	while ((q = memmem(p, (size_t)(end - p), old, ol))) {
		sbuf_add(&b, p, (size_t)(q - p));
		sbuf_puts(&b, new_text);
		p = q + ol;
	}
	sbuf_add(&b, p, (size_t)(end - p));
	*out = sbuf_take(&b, out_len);
	return *out ? 0 : -1;
}

int edit_replace(const char *content, size_t len, const char *old, const char *new_text,
		 int all, char **out, size_t *out_len, int *count, char *why, size_t wn)
{
	char *old_crlf = NULL, *new_crlf = NULL;
	int first = 0, n, rc = -1;
	if (!*old) {
		snprintf(why, wn, "oldString is empty: name the exact text to replace (to write "
			 "a whole file, use the write tool)");
		return -1;
	}
	if (!strcmp(old, new_text)) {
		snprintf(why, wn, "oldString and newString are the same: nothing would change");
		return -1;
	}
	n = count_of(content, len, old, strlen(old), &first);
	if (n == 0 && memmem(content, len, "\r\n", 2) && strchr(old, '\n')) {
		old_crlf = to_crlf(old);
		new_crlf = to_crlf(new_text);
		if (old_crlf && new_crlf && (n = count_of(content, len, old_crlf,
							  strlen(old_crlf), &first))) {
			old = old_crlf;
			new_text = new_crlf;
		}
	}
	if (n == 0)
		snprintf(why, wn, "oldString was not found in the file. It must match the file "
			 "exactly, whitespace and indentation included (read the file again to "
			 "see its current text)");
	else if (n > 1 && !all)
		snprintf(why, wn, "oldString was found %d times (first at line %d). Include more "
			 "of the surrounding lines to pick one, or set replaceAll to change "
			 "every occurrence", n, first);
	else if (replace(content, len, old, new_text, out, out_len))
		snprintf(why, wn, "out of memory");
	else
		rc = 0, *count = n;
	free(old_crlf);
	free(new_crlf);
	return rc;
}
