#include "jw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jw_init(struct jw *w)
{
	memset(w, 0, sizeof(*w));
}

void jw_reset(struct jw *w)
{
	w->len = 0;
	w->oom = 0;
	w->depth = 0;
	w->nonfirst = 0;
	w->after_key = 0;
	if (w->buf)
		w->buf[0] = 0;
}

void jw_free(struct jw *w)
{
	free(w->buf);
	jw_init(w);
}

static int reserve(struct jw *w, size_t n)
{
	if (w->oom)
		return -1;
	if (w->len + n + 1 <= w->cap)
		return 0;
	size_t cap = w->cap ? w->cap : 256;
	while (cap < w->len + n + 1)
		cap *= 2;
	char *b = realloc(w->buf, cap);
	if (!b) {
		w->oom = 1;
		return -1;
	}
	w->buf = b;
	w->cap = cap;
	return 0;
}

static void put(struct jw *w, const char *s, size_t n)
{
	if (reserve(w, n))
		return;
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = 0;
}

static void putc1(struct jw *w, char c)
{
	if (reserve(w, 1))
		return;
	w->buf[w->len++] = c;
	w->buf[w->len] = 0;
}

void jw_append(struct jw *w, const char *s, size_t n)
{
	put(w, s, n);
}

char *jw_take(struct jw *w, size_t *len)
{
	if (w->oom || reserve(w, 0)) {
		jw_free(w);
		return NULL;
	}
	char *b = w->buf;
	if (len)
		*len = w->len;
	jw_init(w);
	return b;
}

/* Comma before a value or key unless it is the first at its level or follows a key. */
static void sep(struct jw *w)
{
	if (w->after_key) {
		w->after_key = 0;
		return;
	}
	uint64_t bit = 1ULL << (w->depth & 63);
	if (w->nonfirst & bit)
		putc1(w, ',');
	w->nonfirst |= bit;
}

static void open(struct jw *w, char c)
{
	sep(w);
	putc1(w, c);
	w->depth++;
	w->nonfirst &= ~(1ULL << (w->depth & 63));
}

static void close_(struct jw *w, char c)
{
	w->depth--;
	putc1(w, c);
}

void jw_obj(struct jw *w) { open(w, '{'); }
void jw_obj_end(struct jw *w) { close_(w, '}'); }
void jw_arr(struct jw *w) { open(w, '['); }
void jw_arr_end(struct jw *w) { close_(w, ']'); }

/* Length of a valid UTF-8 sequence at s (n bytes available), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t need;
	unsigned min;
	if (c < 0xc2 || c > 0xf4)
		return 0;
	if (c < 0xe0) {
		need = 2;
		min = 0x80;
	} else if (c < 0xf0) {
		need = 3;
		min = 0x800;
	} else {
		need = 4;
		min = 0x10000;
	}
	if (n < need)
		return 0;
	unsigned cp = c & (0x3f >> (need - 1));
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need;
}

size_t jw_utf8_len(const char *s, size_t n)
{
	return utf8_len((const unsigned char *)s, n);
}

void jw_escape(struct jw *w, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t run = 0; /* bytes copied verbatim in one go */
	for (size_t i = 0; i < n;) {
		unsigned c = p[i];
		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			i++;
			run++;
			continue;
		}
		if (c >= 0x80) {
			size_t l = utf8_len(p + i, n - i);
			if (l) {
				i += l;
				run += l;
				continue;
			}
		}
		put(w, (const char *)p + i - run, run);
		run = 0;
		char esc[8];
		switch (c) {
		case '"': put(w, "\\\"", 2); break;
		case '\\': put(w, "\\\\", 2); break;
		case '\n': put(w, "\\n", 2); break;
		case '\r': put(w, "\\r", 2); break;
		case '\t': put(w, "\\t", 2); break;
		default:
			if (c >= 0x80) {
				put(w, "\\ufffd", 6);
			} else {
				snprintf(esc, sizeof(esc), "\\u%04x", c);
				put(w, esc, 6);
			}
		}
		i++;
	}
	put(w, (const char *)p + n - run, run);
}

void jw_strn(struct jw *w, const char *s, size_t n)
{
	sep(w);
	putc1(w, '"');
	jw_escape(w, s, n);
	putc1(w, '"');
}

void jw_str_escaped(struct jw *w, const char *esc, size_t n)
{
	sep(w);
	putc1(w, '"');
	put(w, esc ? esc : "", n);
	putc1(w, '"');
}

void jw_str(struct jw *w, const char *s)
{
	if (!s) {
		jw_null(w);
		return;
	}
	jw_strn(w, s, strlen(s));
}

void jw_key(struct jw *w, const char *k)
{
	jw_str(w, k);
	putc1(w, ':');
	w->after_key = 1;
}

void jw_int(struct jw *w, int64_t v)
{
	char b[24];
	int n = snprintf(b, sizeof(b), "%lld", (long long)v);
	sep(w);
	put(w, b, (size_t)n);
}

void jw_double(struct jw *w, double v)
{
	char b[32];
	int n = snprintf(b, sizeof(b), "%.17g", v);
	sep(w);
	put(w, b, (size_t)n);
}

void jw_bool(struct jw *w, int v)
{
	sep(w);
	put(w, v ? "true" : "false", v ? 4 : 5);
}

void jw_null(struct jw *w)
{
	sep(w);
	put(w, "null", 4);
}

void jw_rawn(struct jw *w, const char *json, size_t n)
{
	if (!json || !n) {
		jw_null(w);
		return;
	}
	sep(w);
	put(w, json, n);
}

void jw_raw(struct jw *w, const char *json)
{
	jw_rawn(w, json, json ? strlen(json) : 0);
}

void jw_kstr(struct jw *w, const char *k, const char *s)
{
	jw_key(w, k);
	jw_str(w, s);
}

void jw_kint(struct jw *w, const char *k, int64_t v)
{
	jw_key(w, k);
	jw_int(w, v);
}

void jw_kbool(struct jw *w, const char *k, int v)
{
	jw_key(w, k);
	jw_bool(w, v);
}

void jw_kraw(struct jw *w, const char *k, const char *json)
{
	jw_key(w, k);
	jw_raw(w, json);
}
