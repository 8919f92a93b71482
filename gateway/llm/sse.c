#include "sse.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const char BOM[3] = { '\xEF', '\xBB', '\xBF' };

#define BOM_DONE 3
#define MAX_LINE_CAP (SIZE_MAX / 8) /* keeps 4 * max_line and buffer sizes from overflowing */

/* ---- growable buffers ---------------------------------------------------------- */

/* Makes room for need bytes plus a NUL, doubling the capacity. */
static int buf_reserve(struct sse_buf *b, size_t need)
{
	if (need < b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap <= need)
		cap *= 2;
	char *np = realloc(b->p, cap);
	if (!np)
		return SSE_ERR_NOMEM;
	b->p = np;
	b->cap = cap;
	return 0;
}

static int buf_append(struct sse_buf *b, const char *s, size_t n)
{
	if (buf_reserve(b, b->len + n))
		return SSE_ERR_NOMEM;
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static int buf_set(struct sse_buf *b, const char *s, size_t n)
{
	b->len = 0;
	return buf_append(b, s, n);
}

static const char *buf_str(const struct sse_buf *b)
{
	return b->p ? b->p : "";
}

static void buf_clear(struct sse_buf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}

static void buf_free(struct sse_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* ---- fields and dispatch --------------------------------------------------------- */

static bool name_is(const char *name, size_t n, const char *want)
{
	return n == strlen(want) && memcmp(name, want, n) == 0;
}

static int on_data(struct sse_parser *p, const char *v, size_t n)
{
	/* data.len counts the previous lines and their '\n': the event's data would be
	 * data.len + n bytes if dispatched after this line. */
	if (p->data.len + n > 4 * p->max_line)
		return SSE_ERR_EVENT_TOO_BIG;
	if (buf_append(&p->data, v, n) || buf_append(&p->data, "\n", 1))
		return SSE_ERR_NOMEM;
	return 0;
}

/* retry: ASCII digits only (at least one), fitting in int64_t; otherwise ignored. */
static void on_retry(struct sse_parser *p, const char *v, size_t n)
{
	int64_t ms = 0;

	if (n == 0)
		return;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return;
		int d = v[i] - '0';
		if (ms > (INT64_MAX - d) / 10)
			return;
		ms = ms * 10 + d;
	}
	p->retry_ms = ms;
}

static int on_field(struct sse_parser *p, const char *name, size_t nlen, const char *v,
		    size_t vlen)
{
	if (name_is(name, nlen, "data"))
		return on_data(p, v, vlen);
	if (name_is(name, nlen, "event"))
		return buf_set(&p->type, v, vlen);
	if (name_is(name, nlen, "id"))
		return memchr(v, '\0', vlen) ? 0 : buf_set(&p->id, v, vlen);
	if (name_is(name, nlen, "retry"))
		on_retry(p, v, vlen);
	return 0; /* unknown fields are ignored */
}

/* Blank line: dispatch if any data line arrived; always reset data and type. */
static int dispatch(struct sse_parser *p)
{
	int rc = 0;

	if (p->data.len > 0 && p->cb) {
		p->data.p[--p->data.len] = '\0'; /* drop the last '\n' */
		struct sse_event ev = {
			.type = buf_str(&p->type),
			.type_len = p->type.len,
			.data = p->data.p,
			.data_len = p->data.len,
			.id = buf_str(&p->id),
			.retry_ms = p->retry_ms,
		};
		rc = p->cb(p->arg, &ev);
	}
	buf_clear(&p->data);
	buf_clear(&p->type);
	return rc;
}

/* One complete line, without its terminator. */
static int process_line(struct sse_parser *p, const char *s, size_t n)
{
	if (n == 0)
		return dispatch(p);
	if (s[0] == ':')
		return p->comment_cb ? p->comment_cb(p->arg, s + 1, n - 1) : 0;
	const char *colon = memchr(s, ':', n);
	if (!colon)
		return on_field(p, s, n, s + n, 0);
	size_t nlen = (size_t)(colon - s);
	const char *v = colon + 1;
	size_t vlen = n - nlen - 1;
	if (vlen > 0 && v[0] == ' ') {
		v++;
		vlen--;
	}
	return on_field(p, s, nlen, v, vlen);
}

/* ---- line splitting ---------------------------------------------------------------- */

/* Remembers where the next CR and LF are so a chunk is scanned once (memchr), even
 * when it holds many lines ending in the other character. NULL means "not looked yet";
 * end means "none left". */
struct eol_scan {
	const char *end, *cr, *lf;
};

static const char *find_or_end(const char *pos, const char *end, char c)
{
	const char *hit = memchr(pos, c, (size_t)(end - pos));
	return hit ? hit : end;
}

static const char *next_eol(struct eol_scan *sc, const char *pos)
{
	if (!sc->cr || sc->cr < pos)
		sc->cr = find_or_end(pos, sc->end, '\r');
	if (!sc->lf || sc->lf < pos)
		sc->lf = find_or_end(pos, sc->end, '\n');
	return sc->cr < sc->lf ? sc->cr : sc->lf;
}

/* A line ended at this chunk: joins any carried-over start, then processes it. */
static int take_line(struct sse_parser *p, const char *s, size_t n)
{
	if (p->line.len == 0) {
		if (n > p->max_line)
			return SSE_ERR_LINE_TOO_LONG;
		return process_line(p, s, n);
	}
	if (p->line.len + n > p->max_line)
		return SSE_ERR_LINE_TOO_LONG;
	if (buf_append(&p->line, s, n))
		return SSE_ERR_NOMEM;
	size_t total = p->line.len;
	p->line.len = 0; /* the bytes stay valid: process_line never touches line */
	return process_line(p, p->line.p, total);
}

/* The chunk ended mid-line: keep the bytes for the next chunk. */
static int stash(struct sse_parser *p, const char *s, size_t n)
{
	if (p->line.len + n > p->max_line)
		return SSE_ERR_LINE_TOO_LONG;
	return buf_append(&p->line, s, n);
}

static int feed_lines(struct sse_parser *p, const char *pos, const char *end)
{
	struct eol_scan sc = { end, NULL, NULL };

	if (p->cr && pos < end) {
		p->cr = 0;
		if (*pos == '\n')
			pos++; /* second half of a CRLF split across chunks */
	}
	while (pos < end) {
		const char *eol = next_eol(&sc, pos);
		if (eol == end)
			return stash(p, pos, (size_t)(end - pos));
		int rc = take_line(p, pos, (size_t)(eol - pos));
		if (rc)
			return rc;
		pos = eol + 1;
		if (*eol == '\r' && pos == end)
			p->cr = 1;
		else if (*eol == '\r' && *pos == '\n')
			pos++;
	}
	return 0;
}

/* Skips a UTF-8 BOM at stream start, byte by byte so it may span chunks. On a
 * mismatch the bytes held back are parsed as ordinary stream bytes. */
static int skip_bom(struct sse_parser *p, const char **pos, const char *end)
{
	while (p->bom < BOM_DONE && *pos < end) {
		if (**pos != BOM[p->bom]) {
			size_t held = p->bom;
			p->bom = BOM_DONE;
			return feed_lines(p, BOM, BOM + held);
		}
		p->bom++;
		(*pos)++;
	}
	return 0;
}

/* ---- public API ---------------------------------------------------------------------- */

void sse_init(struct sse_parser *p, size_t max_line, sse_event_cb cb, void *arg)
{
	memset(p, 0, sizeof(*p));
	if (max_line == 0)
		max_line = SSE_DEFAULT_MAX_LINE;
	p->max_line = max_line < MAX_LINE_CAP ? max_line : MAX_LINE_CAP;
	p->cb = cb;
	p->arg = arg;
	p->retry_ms = -1;
}

void sse_set_comment_cb(struct sse_parser *p, sse_comment_cb cb)
{
	p->comment_cb = cb;
}

int sse_feed(struct sse_parser *p, const char *buf, size_t len)
{
	if (!p || (!buf && len))
		return SSE_ERR_INVAL;
	if (p->err)
		return p->err;
	if (len == 0)
		return 0;
	const char *pos = buf, *end = buf + len;
	int rc = skip_bom(p, &pos, end);
	if (!rc)
		rc = feed_lines(p, pos, end);
	p->err = rc;
	return rc;
}

/* Drops what belongs to the current stream only. */
static void end_stream(struct sse_parser *p)
{
	buf_clear(&p->line);
	buf_clear(&p->data);
	buf_clear(&p->type);
	p->bom = 0;
	p->cr = 0;
}

int sse_finish(struct sse_parser *p)
{
	if (!p)
		return SSE_ERR_INVAL;
	if (p->err)
		return p->err;
	/* Bytes held back as a possible BOM turned out to be an unterminated line. */
	if (p->bom < BOM_DONE && p->bom > p->max_line)
		p->err = SSE_ERR_LINE_TOO_LONG;
	end_stream(p);
	return p->err;
}

void sse_reset(struct sse_parser *p)
{
	end_stream(p);
	buf_clear(&p->id);
	p->retry_ms = -1;
	p->err = 0;
}

void sse_free(struct sse_parser *p)
{
	buf_free(&p->line);
	buf_free(&p->data);
	buf_free(&p->type);
	buf_free(&p->id);
	sse_reset(p);
}

const char *sse_last_event_id(const struct sse_parser *p)
{
	return buf_str(&p->id);
}

int64_t sse_retry_ms(const struct sse_parser *p)
{
	return p->retry_ms;
}

const char *sse_strerror(int err)
{
	switch (err) {
	case SSE_OK:
		return "success";
	case SSE_ERR_NOMEM:
		return "out of memory";
	case SSE_ERR_LINE_TOO_LONG:
		return "SSE line too long";
	case SSE_ERR_EVENT_TOO_BIG:
		return "SSE event too big";
	case SSE_ERR_INVAL:
		return "invalid argument";
	default:
		return "stopped by callback";
	}
}
