/* edit: the exact-string replacement of the edit tool. The model names text it read;
 * it must be found once (or replaceAll), so an edit never lands somewhere the model did
 * not mean. A file with CRLF line ends is matched with the model's LF text converted.
 * No state; any thread. */
#ifndef WS_EDIT_H
#define WS_EDIT_H

#include <stddef.h>

/* content[0..len) with old replaced by new_text: the one occurrence, or every one when
 * all. 0 with *out (malloc'd, NUL-terminated, *out_len) and *count; -1 with why (wn
 * bytes): old empty, equal to new_text, not found, or found several times without all. */
int edit_replace(const char *content, size_t len, const char *old, const char *new_text,
		 int all, char **out, size_t *out_len, int *count, char *why, size_t wn);

#endif
