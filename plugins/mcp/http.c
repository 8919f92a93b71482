/* http: a remote server over MCP's Streamable HTTP transport, on the I/O thread's curl
 * multi handle. Every message is its own POST (Accept: application/json,
 * text/event-stream); a request's answer comes back as a JSON body or as an SSE stream
 * that may carry the server's own messages first. The Mcp-Session-Id the server gives
 * at initialize goes on every later request, with MCP-Protocol-Version; after
 * initialization a GET stream carries what the server sends unasked (tools/list_changed),
 * reopened while the server keeps one (a 405 means it does not). A 404 on a session
 * means the server forgot it: the server is started again. Parsed messages go to the
 * server's inbox (server.c dispatches them after the transfer callbacks return), so no
 * transfer is freed under its own callback. I/O thread only. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include "mcp.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BODY_MAX (16u << 20)
#define STREAM_ID (-2)            /* the GET stream's transfer */
#define STREAM_RETRY_MS 1000

struct xfer {
	struct server *s;
	CURL *easy;
	int64_t id;             /* the request it carries; -1 none; STREAM_ID */
	struct curl_slist *hdrs;
	char *body;             /* what is sent (curl does not copy POSTFIELDS) */
	char *resp;             /* a JSON answer */
	size_t rlen, rcap;
	struct sse sse;
	int is_sse, answered, too_big;
	char err[CURL_ERROR_SIZE];
	struct xfer *next;
};

struct http_conn {
	char session[256];
	struct xfer *xfers;
	int stream_ok;          /* open the GET stream (after initialization, until a 405) */
	int64_t stream_at;      /* when to open it */
};

/* ---- what arrives ---- */

/* One parsed message (taken): to the inbox; is it the answer to x's request? */
static void got(struct xfer *x, cJSON *msg)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
	if (x->id >= 0 && cJSON_IsNumber(id) && id->valuedouble == (double)x->id &&
	    !cJSON_HasObjectItem(msg, "method"))
		x->answered = 1;
	server_inbox(x->s, msg);
}

static void got_text(struct xfer *x, const char *text, size_t len)
{
	cJSON *doc = cJSON_ParseWithLength(text, len), *it;
	if (cJSON_IsArray(doc)) { /* a batch */
		while ((it = cJSON_DetachItemFromArray(doc, 0)))
			got(x, it);
		cJSON_Delete(doc);
	} else if (cJSON_IsObject(doc)) {
		got(x, doc);
	} else {
		cJSON_Delete(doc);
	}
}

static void on_event(void *user, const char *data, size_t len)
{
	got_text(user, data, len);
}

static size_t on_header(char *buf, size_t size, size_t n, void *user)
{
	struct xfer *x = user;
	size_t len = size * n, k = len;
	while (k && (buf[k - 1] == '\r' || buf[k - 1] == '\n'))
		k--;
	if (k > 15 && !strncasecmp(buf, "mcp-session-id:", 15)) {
		const char *v = buf + 15;
		while (*v == ' ' && v < buf + k)
			v++;
		snprintf(x->s->http->session, sizeof(x->s->http->session), "%.*s",
			 (int)(buf + k - v), v);
	} else if (k > 13 && !strncasecmp(buf, "content-type:", 13)) {
		x->is_sse = memmem(buf, k, "text/event-stream", 17) != NULL;
	}
	return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
	struct xfer *x = user;
	size_t len = size * n;
	if (x->is_sse)
		return sse_feed(&x->sse, data, len) ? 0 : len;
	if (x->rlen + len + 1 > BODY_MAX) {
		x->too_big = 1;
		return 0;
	}
	if (buf_reserve(&x->resp, &x->rcap, x->rlen + len + 1))
		return 0;
	memcpy(x->resp + x->rlen, data, len);
	x->rlen += len;
	x->resp[x->rlen] = '\0';
	return len;
}

/* ---- transfers ---- */

static void xfer_free(struct xfer *x)
{
	if (x->easy) {
		curl_multi_remove_handle(x->s->multi, x->easy);
		curl_easy_cleanup(x->easy);
	}
	curl_slist_free_all(x->hdrs);
	free(x->body);
	free(x->resp);
	sse_free(&x->sse);
	free(x);
}

static void unlink_xfer(struct http_conn *h, struct xfer *x)
{
	for (struct xfer **pp = &h->xfers; *pp; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			return;
		}
}

static int add_header(struct curl_slist **l, const char *name, const char *value)
{
	char line[512];
	snprintf(line, sizeof(line), "%s: %s", name, value);
	struct curl_slist *n = curl_slist_append(*l, line);
	if (n)
		*l = n;
	return n ? 0 : -1;
}

/* Our headers, then the configured ones (which may add to, not replace, them). */
static struct curl_slist *headers(struct server *s, int post)
{
	struct curl_slist *l = NULL;
	int rc = add_header(&l, "Accept", post ? "application/json, text/event-stream"
					       : "text/event-stream");
	if (post)
		rc |= add_header(&l, "Content-Type", "application/json");
	if (s->http->session[0])
		rc |= add_header(&l, "Mcp-Session-Id", s->http->session);
	if (s->protocol[0])
		rc |= add_header(&l, "MCP-Protocol-Version", s->protocol);
	for (const struct curl_slist *c = s->conf->headers; c && !rc; c = c->next) {
		struct curl_slist *n = curl_slist_append(l, c->data);
		rc = n ? 0 : -1;
		l = n ? n : l;
	}
	if (rc) {
		curl_slist_free_all(l);
		return NULL;
	}
	return l;
}

static struct xfer *xfer_new(struct server *s, int64_t id, const char *body)
{
	struct xfer *x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	x->s = s;
	x->id = id;
	sse_init(&x->sse, BODY_MAX, on_event, x);
	x->hdrs = headers(s, body != NULL);
	x->body = body ? strdup(body) : NULL;
	x->easy = curl_easy_init();
	if (!x->hdrs || (body && !x->body) || !x->easy) {
		xfer_free(x);
		return NULL;
	}
	CURL *e = x->easy;
	curl_easy_setopt(e, CURLOPT_URL, s->conf->url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)s->env->startup_ms);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->err);
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	if (body)
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
	return x;
}

static int xfer_start(struct server *s, struct xfer *x)
{
	if (curl_multi_add_handle(s->multi, x->easy) != CURLM_OK) {
		curl_easy_cleanup(x->easy);
		x->easy = NULL;
		xfer_free(x);
		return -1;
	}
	x->next = s->http->xfers;
	s->http->xfers = x;
	return 0;
}

int http_start(struct server *s, char *why, size_t why_len)
{
	s->http = calloc(1, sizeof(*s->http));
	if (!s->http) {
		snprintf(why, why_len, "out of memory");
		return -1;
	}
	return 0;
}

int http_send(struct server *s, const char *body, int64_t id)
{
	struct xfer *x = s->http ? xfer_new(s, id, body) : NULL;
	return x ? xfer_start(s, x) : -1;
}

void http_connected(struct server *s)
{
	s->http->stream_ok = 1;
	s->http->stream_at = mono_ms();
}

void http_cancel(struct server *s, int64_t id)
{
	for (struct xfer *x = s->http ? s->http->xfers : NULL; x; x = x->next)
		if (x->id == id) {
			unlink_xfer(s->http, x);
			xfer_free(x);
			return;
		}
}

static int has_stream(const struct http_conn *h)
{
	for (const struct xfer *x = h->xfers; x; x = x->next)
		if (x->id == STREAM_ID)
			return 1;
	return 0;
}

void http_tick(struct server *s, int64_t now)
{
	struct http_conn *h = s->http;
	if (!h || !h->stream_ok || !h->stream_at || now < h->stream_at || has_stream(h))
		return;
	h->stream_at = 0;
	struct xfer *x = xfer_new(s, STREAM_ID, NULL);
	if (!x || xfer_start(s, x))
		h->stream_at = now + STREAM_RETRY_MS;
}

int64_t http_deadline(const struct server *s)
{
	return s->http && s->http->stream_ok ? s->http->stream_at : 0;
}

/* ---- a transfer's end ---- */

static void stream_done(struct server *s, CURLcode res, long status)
{
	if (res == CURLE_OK && status != 200) {
		s->http->stream_ok = 0; /* 405: the server offers no stream */
		return;
	}
	s->http->stream_at = mono_ms() + STREAM_RETRY_MS;
}

/* A request's transfer ended without its answer: say why. */
static void unanswered(struct xfer *x, long status)
{
	char why[CURL_ERROR_SIZE + 300];
	if (x->too_big)
		snprintf(why, sizeof(why), "its answer was over %u bytes", BODY_MAX);
	else if (status >= 400)
		snprintf(why, sizeof(why), "HTTP %ld%s%.200s", status, x->rlen ? ": " : "",
			 x->rlen ? x->resp : "");
	else
		snprintf(why, sizeof(why), "no answer to request %lld (HTTP %ld)",
			 (long long)x->id, status);
	server_request_failed(x->s, x->id, why);
}

void http_done(CURL *easy, CURLcode res)
{
	struct xfer *x = NULL;
	long status = 0;
	char why[CURL_ERROR_SIZE + 200];
	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	struct server *s = x->s;
	unlink_xfer(s->http, x);
	if (x->is_sse)
		sse_feed(&x->sse, "\n\n", 2); /* an event the stream did not close */
	else if (x->rlen && status != 404)
		got_text(x, x->resp, x->rlen);
	if (x->id == STREAM_ID) {
		stream_done(s, res, status);
	} else if (res != CURLE_OK && !x->too_big) {
		snprintf(why, sizeof(why), "cannot reach %s: %s", s->conf->url,
			 x->err[0] ? x->err : curl_easy_strerror(res));
		xfer_free(x);
		server_on_down(s, why);
		return;
	} else if (status == 404 && s->http->session[0]) {
		xfer_free(x);
		server_on_down(s, "the server ended the session (HTTP 404)");
		return;
	} else if (x->id >= 0 && !x->answered) {
		unanswered(x, status);
	}
	xfer_free(x);
}

void http_stop(struct server *s)
{
	if (!s->http)
		return;
	while (s->http->xfers) {
		struct xfer *x = s->http->xfers;
		s->http->xfers = x->next;
		xfer_free(x);
	}
	free(s->http);
	s->http = NULL;
}
