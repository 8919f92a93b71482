/* libFuzzer harness for gateway/sse.c. Each input is parsed whole, in two pieces cut
 * at a position taken from the input, byte by byte (small inputs), and by a naive
 * reference parser written straight from the WHATWG rules; all four must report the
 * identical sequence of events and comments and the same final status. The first
 * bytes also choose max_line and a callback abort, so limits and aborts are covered. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"

#define ABORT_RC 99
#define BYTEWISE_MAX 4096

struct log {
	unsigned char *p;
	size_t len, cap;
	size_t events;
	size_t abort_at; /* the abort_at-th event returns ABORT_RC; 0 never */
};

struct cfg {
	size_t max_line; /* effective value, never 0 */
	size_t abort_at;
	size_t cut;
};

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_sse: %s\n", what);
		abort();
	}
}

static void log_put(struct log *l, const void *s, size_t n)
{
	if (l->len + n > l->cap) {
		size_t cap = l->cap ? l->cap : 256;
		while (cap < l->len + n)
			cap *= 2;
		l->p = realloc(l->p, cap);
		check(l->p != NULL, "out of memory");
		l->cap = cap;
	}
	if (n)
		memcpy(l->p + l->len, s, n);
	l->len += n;
}

static void log_bytes(struct log *l, char tag, const char *s, size_t n)
{
	log_put(l, &tag, 1);
	log_put(l, &n, sizeof(n));
	log_put(l, s, n);
}

static int on_event(void *arg, const struct sse_event *ev)
{
	struct log *l = arg;

	check(ev->data[ev->data_len] == '\0', "data not NUL-terminated");
	check(ev->type[ev->type_len] == '\0', "type not NUL-terminated");
	check(ev->retry_ms >= -1, "negative retry");
	log_bytes(l, 'T', ev->type, ev->type_len);
	log_bytes(l, 'D', ev->data, ev->data_len);
	log_bytes(l, 'I', ev->id, strlen(ev->id));
	log_put(l, &ev->retry_ms, sizeof(ev->retry_ms));
	l->events++;
	return l->abort_at && l->events == l->abort_at ? ABORT_RC : 0;
}

static int on_comment(void *arg, const char *text, size_t len)
{
	log_bytes(arg, 'C', text, len);
	return len > 0 && text[0] == '!' ? ABORT_RC + 1 : 0;
}

/* ---- the parser under test, fed at the given cut points ------------------------ */

/* Returns the final status: the first non-zero sse_feed result, else sse_finish's.
 * Checks that an error, once returned, is returned by every later call. */
static int run_parser(const uint8_t *d, size_t n, const struct cfg *c, const size_t *cuts,
		      size_t ncuts, struct log *l)
{
	struct sse_parser p;
	size_t off = 0;
	int first = 0;

	sse_init(&p, c->max_line, on_event, l);
	sse_set_comment_cb(&p, on_comment);
	for (size_t i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : n;
		int rc = sse_feed(&p, (const char *)d + off, to - off);
		check(!first || rc == first, "error not sticky");
		if (!first)
			first = rc;
		off = to;
	}
	int fin = sse_finish(&p);
	check(!first || fin == first, "finish lost the error");
	sse_free(&p);
	return first ? first : fin;
}

static int run_bytewise(const uint8_t *d, size_t n, const struct cfg *c, struct log *l)
{
	size_t *cuts = malloc((n + 1) * sizeof(*cuts));

	check(cuts != NULL, "out of memory");
	for (size_t i = 0; i < n; i++)
		cuts[i] = i + 1;
	int rc = run_parser(d, n, c, cuts, n, l);
	free(cuts);
	return rc;
}

/* ---- reference: whole input, one byte at a time, no cleverness --------------------- */

struct ref {
	struct log *log;
	size_t max_line;
	char *data, *type, *id;
	size_t dl, tl, il;
	int64_t retry;
};

static int ref_dispatch(struct ref *r)
{
	int rc = 0;

	if (r->dl > 0) {
		r->data[r->dl - 1] = '\0';
		r->type[r->tl] = '\0';
		r->id[r->il] = '\0';
		struct sse_event ev = { r->type, r->tl, r->data, r->dl - 1, r->id, r->retry };
		rc = on_event(r->log, &ev);
	}
	r->dl = 0;
	r->tl = 0;
	return rc;
}

static void ref_retry(struct ref *r, const char *v, size_t n)
{
	char buf[64];

	if (n == 0)
		return;
	for (size_t i = 0; i < n; i++)
		if (v[i] < '0' || v[i] > '9')
			return;
	while (n > 1 && v[0] == '0') {
		v++;
		n--;
	}
	if (n >= sizeof(buf))
		return; /* too many significant digits for int64_t */
	memcpy(buf, v, n);
	buf[n] = '\0';
	errno = 0;
	long long x = strtoll(buf, NULL, 10);
	if (errno == 0)
		r->retry = x;
}

static int ref_field(struct ref *r, const char *name, size_t nl, const char *v, size_t vl)
{
	if (nl == 4 && !memcmp(name, "data", 4)) {
		if (r->dl + vl > 4 * r->max_line)
			return SSE_ERR_EVENT_TOO_BIG;
		memcpy(r->data + r->dl, v, vl);
		r->dl += vl;
		r->data[r->dl++] = '\n';
	} else if (nl == 5 && !memcmp(name, "event", 5)) {
		memcpy(r->type, v, vl);
		r->tl = vl;
	} else if (nl == 2 && !memcmp(name, "id", 2)) {
		for (size_t i = 0; i < vl; i++)
			if (v[i] == '\0')
				return 0;
		memcpy(r->id, v, vl);
		r->il = vl;
	} else if (nl == 5 && !memcmp(name, "retry", 5)) {
		ref_retry(r, v, vl);
	}
	return 0;
}

static int ref_line(struct ref *r, const char *s, size_t n)
{
	size_t colon = 0;

	if (n == 0)
		return ref_dispatch(r);
	if (s[0] == ':')
		return on_comment(r->log, s + 1, n - 1);
	while (colon < n && s[colon] != ':')
		colon++;
	if (colon == n)
		return ref_field(r, s, n, "", 0);
	size_t vs = colon + 1;
	if (vs < n && s[vs] == ' ')
		vs++;
	return ref_field(r, s, colon, s + vs, n - vs);
}

static int run_ref(const uint8_t *d, size_t n, const struct cfg *c, struct log *l)
{
	const char *s = (const char *)d;
	struct ref r = { l, c->max_line, malloc(2 * n + 2), malloc(n + 1), malloc(n + 1),
			 0, 0, 0, -1 };
	size_t i = n >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3) ? 3 : 0;
	int rc = 0;

	check(r.data && r.type && r.id, "out of memory");
	while (i < n && !rc) {
		size_t start = i;
		while (i < n && s[i] != '\r' && s[i] != '\n')
			i++;
		if (i - start > c->max_line)
			rc = SSE_ERR_LINE_TOO_LONG;
		else if (i == n)
			break; /* unterminated last line: discarded at end of stream */
		else {
			size_t end = i;
			i += s[i] == '\r' && i + 1 < n && s[i + 1] == '\n' ? 2 : 1;
			rc = ref_line(&r, s + start, end - start);
		}
	}
	free(r.data);
	free(r.type);
	free(r.id);
	return rc;
}

/* ---- driver ---------------------------------------------------------------------------- */

static struct cfg make_cfg(const uint8_t *d, size_t n)
{
	struct cfg c = { SSE_DEFAULT_MAX_LINE, 0, n / 2 };

	if (n >= 1 && (d[0] & 1))
		c.max_line = 1 + d[0] % 97u; /* small limits for about half the inputs */
	if (n >= 2)
		c.abort_at = d[1] % 8u;
	if (n >= 4)
		c.cut = ((size_t)d[2] | (size_t)d[3] << 8) % (n + 1);
	return c;
}

static void expect_same(const struct log *a, int rca, const struct log *b, int rcb,
			const char *what)
{
	check(rca == rcb, what);
	check(a->len == b->len && (a->len == 0 || !memcmp(a->p, b->p, a->len)), what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfg c = make_cfg(data, size);
	struct log whole = { .abort_at = c.abort_at }, split = { .abort_at = c.abort_at };
	struct log ref = { .abort_at = c.abort_at };

	int rc_whole = run_parser(data, size, &c, NULL, 0, &whole);
	int rc_split = run_parser(data, size, &c, &c.cut, 1, &split);
	int rc_ref = run_ref(data, size, &c, &ref);
	expect_same(&whole, rc_whole, &split, rc_split, "two-piece split differs from whole");
	expect_same(&whole, rc_whole, &ref, rc_ref, "parser differs from reference");
	if (size <= BYTEWISE_MAX) {
		struct log bytes = { .abort_at = c.abort_at };
		int rc_bytes = run_bytewise(data, size, &c, &bytes);
		expect_same(&whole, rc_whole, &bytes, rc_bytes, "byte-by-byte differs from whole");
		free(bytes.p);
	}
	free(whole.p);
	free(split.p);
	free(ref.p);
	return 0;
}
