#include "outcap.h"
#include "text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int outcap_init(struct outcap *c, size_t max)
{
	memset(c, 0, sizeof(*c));
	c->head_max = max / 3;
	c->tail_max = max - c->head_max;
	c->head = malloc(c->head_max + 1);
	c->tail = malloc(c->tail_max + 1);
	if (!c->head || !c->tail) {
		outcap_free(c);
		return -1;
	}
	return 0;
}

void outcap_free(struct outcap *c)
{
	free(c->head);
	free(c->tail);
	c->head = c->tail = NULL;
}

void outcap_add(struct outcap *c, const char *p, size_t n)
{
	c->total += n;
	size_t h = c->head_max - c->head_len < n ? c->head_max - c->head_len : n;
	memcpy(c->head + c->head_len, p, h);
	c->head_len += h;
	p += h;
	n -= h;
	if (n >= c->tail_max) { /* only the newest tail_max bytes matter */
		memcpy(c->tail, p + n - c->tail_max, c->tail_max);
		c->tail_len = c->tail_max;
		c->tail_pos = 0;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		size_t at = (c->tail_pos + c->tail_len) % (c->tail_max ? c->tail_max : 1);
		c->tail[at] = p[i];
		if (c->tail_len < c->tail_max)
			c->tail_len++;
		else
			c->tail_pos = (c->tail_pos + 1) % c->tail_max;
	}
}

int outcap_truncated(const struct outcap *c)
{
	return c->total > c->head_len + c->tail_len;
}

/* The ring's last k bytes in order into dst. */
static void tail_copy(const struct outcap *c, char *dst, size_t k)
{
	size_t skip = c->tail_len - k;
	for (size_t i = 0; i < k; i++)
		dst[i] = c->tail[(c->tail_pos + skip + i) % c->tail_max];
}

/* Skips continuation bytes at the start of p: a cut inside a sequence. */
static size_t lead_skip(const char *p, size_t n)
{
	size_t s = 0;
	while (s < n && s < 3 && ((unsigned char)p[s] & 0xc0) == 0x80)
		s++;
	return s;
}

char *outcap_text(const struct outcap *c)
{
	int cut = outcap_truncated(c);
	size_t hl = cut ? text_utf8_cut(c->head, c->head_len) : c->head_len;
	char note[192] = "";
	char *raw = malloc(c->head_len + c->tail_len + 1), *out;
	if (!raw)
		return NULL;
	memcpy(raw, c->head, hl);
	tail_copy(c, raw + hl, c->tail_len);
	size_t ts = cut ? lead_skip(raw + hl, c->tail_len) : 0;
	if (!cut) {
		out = text_utf8_clean(raw, hl + c->tail_len, NULL);
		free(raw);
		return out;
	}
	snprintf(note, sizeof(note), "\n\n... [%llu bytes of output cut: the first %zu and the "
		 "last %zu of %llu bytes are shown] ...\n\n",
		 (unsigned long long)(c->total - hl - (c->tail_len - ts)), hl, c->tail_len - ts,
		 (unsigned long long)c->total);
	char *h = text_utf8_clean(raw, hl, NULL), *t = text_utf8_clean(raw + hl + ts,
								     c->tail_len - ts, NULL);
	free(raw);
	out = h && t ? malloc(strlen(h) + strlen(note) + strlen(t) + 1) : NULL;
	if (out)
		sprintf(out, "%s%s%s", h, note, t);
	free(h);
	free(t);
	return out;
}

char *outcap_tail(const struct outcap *c, size_t max)
{
	size_t from_tail = c->tail_len < max ? c->tail_len : max;
	size_t from_head = c->total > c->head_len + c->tail_len ? 0 : max - from_tail;
	from_head = from_head < c->head_len ? from_head : c->head_len;
	char *raw = malloc(from_head + from_tail + 1);
	if (!raw)
		return NULL;
	memcpy(raw, c->head + c->head_len - from_head, from_head);
	tail_copy(c, raw + from_head, from_tail);
	size_t s = lead_skip(raw, from_head + from_tail);
	char *out = text_utf8_clean(raw + s, from_head + from_tail - s, NULL);
	free(raw);
	return out;
}
