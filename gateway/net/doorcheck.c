/* doorcheck: request heads and WebSocket frame headers, checked before libwebsockets
 * reads them (see doorcheck.h). The head is read by one state machine, a byte at a time;
 * each rule is checked at the byte that can break it. */
#include "doorcheck.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum {
	S_START,     /* empty lines before the request line */
	S_START_CR,
	S_METHOD,
	S_TARGET,
	S_VERSION,
	S_LINE_CR,   /* CR at the end of the request line or a header line */
	S_LINE,      /* the start of a header line, or of the empty line */
	S_END_CR,
	S_NAME,
	S_VALUE,
};

/* headers seen (doorcheck_head.seen) */
enum {
	SEEN_LENGTH = 1,
	SEEN_UPGRADE = 2,
	SEEN_CONN_UPGRADE = 4,
	SEEN_KEY = 8,
	SEEN_VERSION13 = 16,
};

#define METHOD_SHOWN 32 /* characters of an unknown method the answer repeats */

static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};

void doorcheck_head_init(struct doorcheck_head *h)
{
	memset(h, 0, sizeof(*h));
	h->state = S_START;
	h->content_length = -1;
}

static int refuse(struct doorcheck_refusal *r, int status, const char *name, const char *fmt, ...)
{
	va_list ap;
	r->status = status;
	r->name = name;
	va_start(ap, fmt);
	vsnprintf(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
	return DOORCHECK_REFUSED;
}

#define bad(r, ...) refuse(r, 400, "BadRequest", __VA_ARGS__)

/* RFC 7230 tchar: what a method or a header name is made of. */
static int is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* What a byte that may not be in a request is called in a message. */
static const char *byte_name(unsigned char c, char buf[16])
{
	if (!c)
		return "a NUL byte";
	if (c == '\r')
		return "a CR not followed by LF";
	snprintf(buf, 16, "the byte 0x%02x", c);
	return buf;
}

static int too_many_fields(struct doorcheck_refusal *r)
{
	return refuse(r, 431, "RequestHeaderFieldsTooLarge", "the request has more than %d "
		      "header lines and query arguments (the limit)", DOORCHECK_FIELDS_MAX);
}

static int request_line_end(struct doorcheck_head *h, const char *buf, size_t end,
			    struct doorcheck_refusal *r)
{
	const char *v = buf + h->tok;
	size_t n = end - h->tok;
	if (n == 8 && (!memcmp(v, "HTTP/1.1", 8) || !memcmp(v, "HTTP/1.0", 8)))
		return 0;
	if (n == 8 && !memcmp(v, "HTTP/", 5) && v[5] >= '0' && v[5] <= '9' && v[6] == '.' &&
	    v[7] >= '0' && v[7] <= '9')
		return refuse(r, 505, "HTTPVersionNotSupported", "%.8s is not supported: send "
			      "HTTP/1.1", v);
	return bad(r, "the request line must be METHOD PATH HTTP/1.1, with single spaces");
}

/* [b, e) without the spaces and tabs around it. */
static void trim(const char **b, const char **e)
{
	while (*b < *e && (**b == ' ' || **b == '\t'))
		(*b)++;
	while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
		(*e)--;
}

static int is(const char *b, const char *e, const char *word)
{
	size_t n = strlen(word);
	return (size_t)(e - b) == n && !strncasecmp(b, word, n);
}

/* Does a Connection value list the token "upgrade"? */
static int lists_upgrade(const char *b, const char *e)
{
	while (b < e) {
		const char *comma = memchr(b, ',', (size_t)(e - b));
		const char *te = comma ? comma : e, *tb = b;
		trim(&tb, &te);
		if (is(tb, te, "upgrade"))
			return 1;
		b = comma ? comma + 1 : e;
	}
	return 0;
}

/* A complete header line: the few headers that decide how the stream is framed, or that
 * libwebsockets would act on without asking. */
static int field_end(struct doorcheck_head *h, const char *buf, size_t end,
		     struct doorcheck_refusal *r)
{
	const char *nb = buf + h->name, *ne = nb + h->name_len;
	const char *vb = buf + h->tok, *ve = buf + end;
	if (is(nb, ne, "content-length")) {
		trim(&vb, &ve);
		if (h->seen & SEEN_LENGTH)
			return bad(r, "more than one Content-Length header");
		int64_t v = 0;
		int ok = ve > vb && ve - vb <= 15;
		for (const char *p = vb; ok && p < ve; p++) {
			ok = *p >= '0' && *p <= '9';
			v = v * 10 + (*p - '0');
		}
		if (!ok)
			return bad(r, "Content-Length must be a number of bytes (up to 15 digits)");
		h->seen |= SEEN_LENGTH;
		h->content_length = v;
	} else if (is(nb, ne, "transfer-encoding")) {
		return refuse(r, 411, "LengthRequired", "a request body with Transfer-Encoding "
			      "(chunked) is not accepted: send the body with a Content-Length");
	} else if (is(nb, ne, "upgrade")) {
		/* libwebsockets compares the value after its leading spaces (only) with
		 * "websocket"; anything else it answers with a non-JSON 403 or, for h2c, an
		 * HTTP/2 upgrade */
		while (vb < ve && *vb == ' ')
			vb++;
		if ((h->seen & SEEN_UPGRADE) || !is(vb, ve, "websocket"))
			return bad(r, "only one Upgrade header, \"Upgrade: websocket\", is accepted "
				   "(for a WebSocket at /ws)");
		h->seen |= SEEN_UPGRADE;
	} else if (is(nb, ne, "connection")) {
		if (lists_upgrade(vb, ve))
			h->seen |= SEEN_CONN_UPGRADE;
	} else if (is(nb, ne, "sec-websocket-key")) {
		trim(&vb, &ve);
		if (vb < ve)
			h->seen |= SEEN_KEY;
	} else if (is(nb, ne, "sec-websocket-version")) {
		trim(&vb, &ve);
		if (is(vb, ve, "13"))
			h->seen |= SEEN_VERSION13;
	}
	return 0;
}

static int head_end(struct doorcheck_head *h, struct doorcheck_refusal *r)
{
	h->len = h->pos + 1 - h->skip;
	h->websocket = !!(h->seen & SEEN_UPGRADE);
	if (!h->websocket)
		return DOORCHECK_DONE;
	/* libwebsockets drops a WebSocket upgrade without these without an answer */
	if (strcmp(h->method, "GET"))
		return bad(r, "a WebSocket upgrade must be a GET request");
	if (!(h->seen & SEEN_CONN_UPGRADE))
		return bad(r, "a WebSocket upgrade needs \"Connection: Upgrade\"");
	if (!(h->seen & SEEN_KEY))
		return bad(r, "a WebSocket upgrade needs a Sec-WebSocket-Key header");
	if (!(h->seen & SEEN_VERSION13))
		return bad(r, "a WebSocket upgrade needs \"Sec-WebSocket-Version: 13\"");
	return DOORCHECK_DONE;
}

static int method_end(struct doorcheck_head *h, const char *buf, struct doorcheck_refusal *r)
{
	size_t n = h->pos - h->tok;
	if (!n)
		return bad(r, "the request line must be METHOD PATH HTTP/1.1, with single spaces");
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strlen(methods[i]) == n && !memcmp(buf + h->tok, methods[i], n)) {
			memcpy(h->method, methods[i], n + 1);
			return 0;
		}
	return refuse(r, 501, "NotImplemented", "the method %.*s is not implemented (GET, HEAD, "
		      "POST, PATCH and DELETE are)", (int)n, buf + h->tok);
}

/* One byte of the request target. */
static int target_byte(struct doorcheck_head *h, const char *buf, unsigned char c,
		       struct doorcheck_refusal *r)
{
	char nb[16];
	if (h->pos == h->tok && c != '/' && c != '*')
		return bad(r, "the request target must be a path starting with / (or * for "
			   "OPTIONS)");
	if (h->pos == h->tok + 1 && buf[h->tok] == '*')
		return bad(r, "the request target * stands alone");
	if (c < 0x21 || c == 0x7f) {
		if (c == '\r' || c == '\n')
			return bad(r, "the request line must be METHOD PATH HTTP/1.1, with single "
				   "spaces");
		return bad(r, "the request target contains %s: send it percent-encoded",
			   byte_name(c, nb));
	}
	if (h->pct) {
		int v = hexval(c);
		if (v < 0)
			return bad(r, "the request target has a %% not followed by two hex digits");
		h->pct_val = (unsigned char)(h->pct_val << 4 | v);
		if (++h->pct < 3)
			return 0;
		h->pct = 0;
		if (!h->pct_val)
			return bad(r, "the request target contains a NUL byte (%%00): no route, file "
				   "or query argument has one");
		return 0;
	}
	if (c == '%') {
		h->pct = 1;
		h->pct_val = 0;
		return 0;
	}
	/* libwebsockets splits the target at every '&' and ';', and at the first '?' */
	if ((c == '?' && !h->in_query) || c == '&' || c == ';') {
		h->in_query |= c == '?';
		if (++h->fields > DOORCHECK_FIELDS_MAX)
			return too_many_fields(r);
	}
	return 0;
}

static int target_end(struct doorcheck_head *h, const char *buf, struct doorcheck_refusal *r)
{
	if (h->pos == h->tok)
		return bad(r, "the request line must be METHOD PATH HTTP/1.1, with single spaces");
	if (h->pct)
		return bad(r, "the request target has a %% not followed by two hex digits");
	if (buf[h->tok] == '*' && strcmp(h->method, "OPTIONS"))
		return bad(r, "the request target * is for OPTIONS only");
	return 0;
}

static int head_byte(struct doorcheck_head *h, const char *buf, struct doorcheck_refusal *r)
{
	unsigned char c = (unsigned char)buf[h->pos];
	char nb[16];
	switch (h->state) {
	case S_START:
		/* RFC 7230 3.5: empty lines before a request line are ignored */
		if (c == '\r') {
			h->state = S_START_CR;
			return 0;
		}
		if (c == '\n') {
			h->skip = h->pos + 1;
			return 0;
		}
		h->skip = h->pos;
		h->tok = h->pos;
		h->state = S_METHOD;
		/* fall through */
	case S_METHOD:
		if (c == ' ') {
			if (method_end(h, buf, r))
				return DOORCHECK_REFUSED;
			h->state = S_TARGET;
			h->tok = h->pos + 1;
			return 0;
		}
		if (!is_tchar(c))
			return bad(r, "the request line must be METHOD PATH HTTP/1.1, with single "
				   "spaces");
		if (h->pos - h->tok >= METHOD_SHOWN) /* no method we know is this long */
			return refuse(r, 501, "NotImplemented", "the method %.*s... is not implemented "
				      "(GET, HEAD, POST, PATCH and DELETE are)", METHOD_SHOWN, buf + h->tok);
		return 0;
	case S_START_CR:
		if (c != '\n')
			return bad(r, "the request contains %s", byte_name('\r', nb));
		h->skip = h->pos + 1;
		h->state = S_START;
		return 0;
	case S_TARGET:
		if (c != ' ')
			return target_byte(h, buf, c, r);
		if (target_end(h, buf, r))
			return DOORCHECK_REFUSED;
		h->state = S_VERSION;
		h->tok = h->pos + 1;
		return 0;
	case S_VERSION:
		if (c == '\r' || c == '\n') {
			if (request_line_end(h, buf, h->pos, r))
				return DOORCHECK_REFUSED;
			h->lines = 1;
			h->state = c == '\r' ? S_LINE_CR : S_LINE;
			return 0;
		}
		if (c < 0x21 || c >= 0x7f || h->pos - h->tok >= 8)
			return bad(r, "the request line must be METHOD PATH HTTP/1.1, with single "
				   "spaces");
		return 0;
	case S_LINE_CR:
		if (c != '\n')
			return bad(r, "the request contains %s", byte_name('\r', nb));
		h->state = S_LINE;
		return 0;
	case S_LINE:
		if (c == '\r') {
			h->state = S_END_CR;
			return 0;
		}
		if (c == '\n')
			return head_end(h, r);
		h->lines++;
		if (c == ' ' || c == '\t')
			return refuse(r, 400, "BadRequest", "line %d of the request head starts with a "
				      "space or a tab: obsolete line folding (RFC 7230 section 3.2.4) is not "
				      "accepted; send each header on one line", h->lines);
		if (!is_tchar(c))
			return refuse(r, 400, "BadRequest", "line %d of the request head does not "
				      "start with a header name", h->lines);
		if (++h->fields > DOORCHECK_FIELDS_MAX)
			return too_many_fields(r);
		h->name = h->pos;
		h->state = S_NAME;
		return 0;
	case S_END_CR:
		if (c != '\n')
			return bad(r, "the request contains %s", byte_name('\r', nb));
		return head_end(h, r);
	case S_NAME:
		if (c == ':') {
			h->name_len = h->pos - h->name;
			h->tok = h->pos + 1;
			h->state = S_VALUE;
			return 0;
		}
		if (is_tchar(c))
			return 0;
		if (c == ' ' || c == '\t')
			return refuse(r, 400, "BadRequest", "line %d of the request head has a space "
				      "between the header name and the colon", h->lines);
		if (c == '\r' || c == '\n')
			return refuse(r, 400, "BadRequest", "line %d of the request head has no colon", h->lines);
		return refuse(r, 400, "BadRequest", "line %d of the request head has %s in its "
			      "header name", h->lines,
			      byte_name(c, nb));
	case S_VALUE:
		if (c == '\r' || c == '\n') {
			if (field_end(h, buf, h->pos, r))
				return DOORCHECK_REFUSED;
			h->state = c == '\r' ? S_LINE_CR : S_LINE;
			return 0;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return refuse(r, 400, "BadRequest", "the value of header %.*s contains %s",
				      (int)(h->name_len > 64 ? 64 : h->name_len), buf + h->name,
				      byte_name(c, nb));
		return 0;
	}
	return bad(r, "internal: unknown state");
}

int doorcheck_head_feed(struct doorcheck_head *h, const char *buf, size_t len,
			struct doorcheck_refusal *r)
{
	for (; h->pos < len; h->pos++) {
		if (h->pos >= DOORCHECK_HEAD_MAX)
			return refuse(r, 431, "RequestHeaderFieldsTooLarge", "the request head (request "
				      "line and headers) is over %d bytes, the limit", DOORCHECK_HEAD_MAX);
		int rc = head_byte(h, buf, r);
		if (rc == DOORCHECK_DONE) {
			h->pos++;
			return rc;
		}
		if (rc)
			return rc;
	}
	return DOORCHECK_MORE;
}

size_t doorcheck_ws_feed(struct doorcheck_ws *w, const unsigned char *buf, size_t len,
			 int *refused, struct doorcheck_refusal *r)
{
	size_t n = 0;
	*refused = 0;
	for (;;) {
		uint64_t take = w->payload_left < len - n ? w->payload_left : len - n;
		n += (size_t)take;
		w->payload_left -= take;
		if (w->payload_left || len - n < 2)
			return n;
		/* a frame header: 2 bytes, 2 or 8 of length, 4 of mask */
		const unsigned char *f = buf + n;
		if (!(f[1] & 0x80)) {
			*refused = 1;
			refuse(r, 1002, NULL, "client frames must be masked (RFC 6455 section 5.1)");
			return n;
		}
		unsigned l7 = f[1] & 0x7f;
		size_t hl = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + 4;
		if (len - n < hl)
			return n;
		uint64_t plen = l7;
		if (l7 == 126)
			plen = (uint64_t)f[2] << 8 | f[3];
		if (l7 == 127) {
			if (f[2] & 0x80) {
				*refused = 1;
				refuse(r, 1002, NULL, "a frame length has its most significant bit set "
				       "(RFC 6455 section 5.2)");
				return n;
			}
			plen = 0;
			for (int i = 2; i < 10; i++)
				plen = plen << 8 | f[i];
		}
		n += hl;
		w->payload_left = plen;
	}
}

size_t doorcheck_ws_close_frame(unsigned char out[131], int code, const char *reason)
{
	size_t rl = strlen(reason);
	if (rl > DOORCHECK_REASON_MAX)
		rl = DOORCHECK_REASON_MAX;
	out[0] = 0x88;                          /* FIN, close */
	out[1] = (unsigned char)(0x80 | (2 + rl)); /* masked */
	memset(out + 2, 0, 4);                  /* a zero mask: the payload reads as is */
	out[6] = (unsigned char)(code >> 8);
	out[7] = (unsigned char)code;
	memcpy(out + 8, reason, rl);
	return 8 + rl;
}
