#include "text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const binary_ext[] = {
	".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".7z", ".rar", ".jar", ".war",
	".exe", ".dll", ".so", ".dylib", ".o", ".a", ".lib", ".obj", ".class", ".pyc", ".pyo",
	".wasm", ".bin", ".dat", ".db", ".sqlite", ".png", ".jpg", ".jpeg", ".gif", ".bmp",
	".ico", ".webp", ".pdf", ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".odt",
	".ods", ".odp", ".mp3", ".mp4", ".mov", ".avi", ".wav", ".ogg", ".flac", ".woff",
	".woff2", ".ttf", ".otf", NULL};

int text_is_binary(const char *name, const unsigned char *p, size_t n, char *why, size_t wn)
{
	const char *dot = strrchr(name, '.'), *slash = strrchr(name, '/');
	if (dot && (!slash || dot > slash))
		for (const char *const *e = binary_ext; *e; e++)
			if (!strcasecmp(dot, *e)) {
				snprintf(why, wn, "its extension %s marks a binary format", dot);
				return 1;
			}
	size_t ctl = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == 0) {
			snprintf(why, wn, "it contains a NUL byte (at offset %zu)", i);
			return 1;
		}
		ctl += p[i] < 9 || (p[i] > 13 && p[i] < 32);
	}
	if (n && ctl * 10 > n * 3) {
		snprintf(why, wn, "%zu of its first %zu bytes are control characters", ctl, n);
		return 1;
	}
	return 0;
}

/* The length of the valid UTF-8 sequence at p (at most n bytes), 0 if invalid; *need is
 * the length its first byte announces. */
static size_t seq_len(const unsigned char *p, size_t n, size_t *need)
{
	unsigned c = p[0];
	size_t k = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
		 : (c & 0xf8) == 0xf0 ? 4 : 0;
	*need = k;
	if (k == 0 || k > n || (k == 2 && c < 0xc2) || (k == 4 && c > 0xf4))
		return 0;
	for (size_t i = 1; i < k; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if (k == 3 && ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f)))
		return 0; /* overlong, surrogate */
	if (k == 4 && ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f)))
		return 0;
	return k;
}

size_t text_utf8_cut(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t back = 0;
	while (back < 3 && back < n && (p[n - 1 - back] & 0xc0) == 0x80)
		back++;
	if (back == n)
		return n;
	size_t start = n - 1 - back, need = 0;
	seq_len(p + start, n - start, &need);
	return need > back + 1 ? start : n; /* the sequence at start is incomplete */
}

char *text_utf8_clean(const char *s, size_t n, size_t *out_len)
{
	const unsigned char *p = (const unsigned char *)s;
	char *out = malloc(n * 3 + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n;) {
		size_t need = 0, k = p[i] ? seq_len(p + i, n - i, &need) : 0;
		if (k) {
			memcpy(o, p + i, k);
			o += k;
			i += k;
		} else {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	*o = 0;
	if (out_len)
		*out_len = (size_t)(o - out);
	return out;
}
