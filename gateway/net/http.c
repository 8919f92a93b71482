/* http: the HTTP side of the server — routing onto api.c, JSON responses and errors,
 * the long-held POST /session/{id}/message, SSE at GET /event, and static files. */
#include "api.h"
#include "container.h"
#include "jsonin.h"
#include "media.h"
#include "log.h"
#include "server.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CHUNK 16384

/* ---- responses ---- */

/* The head of a response; with it, in the same write, the whole body when it is at most
 * CHUNK bytes (1 if so): one write instead of two, and one trip through the front door's
 * relay. */
static int write_headers(struct conn *c, int status, const char *type, long long len,
			 const char *extra_name, const char *extra_value, const char *body)
{
	unsigned char buf[LWS_PRE + 1024 + CHUNK], *start = buf + LWS_PRE, *p = start,
		*end = buf + LWS_PRE + 1023;
	if (lws_add_http_common_headers(c->wsi, (unsigned)status, type,
					len < 0 ? LWS_ILLEGAL_HTTP_CONTENT_LEN : (lws_filepos_t)len,
					&p, end))
		return -1;
	if (lws_add_http_header_by_name(c->wsi, (const unsigned char *)"cache-control:",
					(const unsigned char *)"no-store", 8, &p, end))
		return -1;
	if (extra_name && lws_add_http_header_by_name(c->wsi, (const unsigned char *)extra_name,
						      (const unsigned char *)extra_value,
						      (int)strlen(extra_value), &p, end))
		return -1;
	static const char ka[] = "timeout=" AG_STR(KEEPALIVE_S);
	if (!(extra_name && !strcmp(extra_name, "connection:")) &&
	    lws_add_http_header_by_name(c->wsi, (const unsigned char *)"keep-alive:",
					(const unsigned char *)ka, (int)sizeof(ka) - 1, &p, end))
		return -1;
	if (lws_finalize_http_header(c->wsi, &p, end))
		return -1;
	int inline_body = body && len >= 0 && len <= CHUNK;
	if (inline_body) {
		memcpy(p, body, (size_t)len);
		p += len;
	}
	if (lws_write(c->wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) < (int)(p - start))
		return -1;
	return inline_body;
}

/* Sends status + body (taking ownership of body). */
static int respond_ex(struct conn *c, int status, const char *type, char *body, size_t len,
		      const char *hname, const char *hvalue)
{
	c->resp = body;
	c->resp_len = len;
	c->resp_off = 0;
	c->responding = 1;
	c->handled = 1;
	/* answering before an announced body was read: the connection cannot be reused */
	c->close_after = (hname && !strcmp(hname, "connection:")) || (c->expect_body && !c->body_done);
	int inlined = write_headers(c, status, type, (long long)len, hname, hvalue, body);
	if (inlined < 0)
		return -1;
	if (inlined)
		c->resp_off = len; /* the writable callback only ends the transaction */
	lws_callback_on_writable(c->wsi);
	return 0;
}

static int respond_json(struct conn *c, int status, struct jw *w)
{
	size_t len;
	char *body = jw_take(w, &len);
	if (!body)
		return -1;
	return respond_ex(c, status, "application/json", body, len, NULL, NULL);
}

static int respond_error(struct conn *c, int status, const char *name, const char *msg,
			 const char *hname, const char *hvalue)
{
	struct jw w;
	jw_init(&w);
	server_error_json(&w, name, msg);
	size_t len;
	char *body = jw_take(&w, &len);
	if (!body)
		return -1;
	return respond_ex(c, status, "application/json", body, len, hname, hvalue);
}

static int respond_err(struct conn *c, const struct err *e)
{
	const char *name;
	int status = server_status_of(e, &name);
	char msg[1200];
	if (e->msg[0])
		return respond_error(c, status, name, e->msg, NULL, NULL);
	/* a failure nobody described is still named by what failed */
	snprintf(msg, sizeof(msg), "%s %s failed (%s; the server log may say more)", c->method,
		 c->path, name);
	return respond_error(c, status, name, msg, NULL, NULL);
}

static int write_body(struct conn *c)
{
	size_t left = c->resp_len - c->resp_off, n = left > CHUNK ? CHUNK : left;
	unsigned char buf[LWS_PRE + CHUNK];
	if (n)
		memcpy(buf + LWS_PRE, c->resp + c->resp_off, n);
	int final = c->resp_off + n == c->resp_len;
	if (n && lws_write(c->wsi, buf + LWS_PRE, n, final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) <
	    (int)n)
		return -1;
	c->resp_off += n;
	if (!final) {
		lws_callback_on_writable(c->wsi);
		return 0;
	}
	free(c->resp);
	c->resp = NULL;
	c->responding = 0;
	server_unwatch(c);
	if (c->close_after && c->expect_body && !c->body_done) {
		/* let the client finish sending (we discard it) so it reads our answer, then
		 * close; a client that never finishes is cut off by the timeout */
		c->draining = 1;
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_HTTP_CONTENT, 5);
		return 0;
	}
	if (c->close_after)
		return -1;
	return lws_http_transaction_completed(c->wsi) ? -1 : 0;
}

/* ---- request details ---- */

/* Copies the urlarg `name` (already url-decoded by lws) into buf: 0 if present, -1 if
 * absent, -2 if some argument could not be read (too long): the caller answers 400
 * rather than acting as if a filter had not been given. */
static int query_arg(struct lws *wsi, const char *name, char *buf, int len)
{
	size_t nl = strlen(name);
	char frag[4096];
	for (int i = 0; lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i) > 0; i++) {
		if (lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i) < 0)
			return -2;
		if (!strncmp(frag, name, nl) && frag[nl] == '=') {
			size_t vl = strlen(frag + nl + 1);
			if (vl >= (size_t)len)
				return -2;
			memcpy(buf, frag + nl + 1, vl + 1);
			return 0;
		}
	}
	return -1;
}

static int query_flag(struct lws *wsi, const char *name)
{
	char v[16];
	return !query_arg(wsi, name, v, sizeof(v)) && (!strcmp(v, "true") || !strcmp(v, "1"));
}

/* Every query argument must be readable, so none is silently ignored. */
static int query_ok(struct lws *wsi)
{
	char frag[4096];
	for (int i = 0; lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i) > 0; i++)
		if (lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i) < 0)
			return 0;
	return 1;
}

static void read_method(struct conn *c)
{
	static const struct {
		enum lws_token_indexes tok;
		const char *name;
	} m[] = {
		{WSI_TOKEN_GET_URI, "GET"},       {WSI_TOKEN_POST_URI, "POST"},
		{WSI_TOKEN_PATCH_URI, "PATCH"},   {WSI_TOKEN_PUT_URI, "PUT"},
		{WSI_TOKEN_DELETE_URI, "DELETE"}, {WSI_TOKEN_OPTIONS_URI, "OPTIONS"},
		{WSI_TOKEN_HEAD_URI, "HEAD"},     {WSI_TOKEN_CONNECT, "CONNECT"},
	};
	snprintf(c->method, sizeof(c->method), "?");
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		if (lws_hdr_total_length(c->wsi, m[i].tok) > 0)
			snprintf(c->method, sizeof(c->method), "%s", m[i].name);
}

/* ---- the long-held prompt ---- */

/* Its answer goes out after the turn's events: a client reading the event stream beside
 * it may stop reading when the answer comes (OpenCode's `run --attach` exits), and the
 * events were published before the answer but are written by the streams' next
 * writable callbacks while the answer would be written at once. So the answer waits
 * until no event stream has an event up to the turn's end still to write, or
 * ANSWER_WAIT_MS (a stream whose client reads slowly holds no answer longer). */
#define ANSWER_WAIT_MS 1000

/* 1 while some event stream has events up to seq still to write. */
static int streams_behind(struct server *S, int64_t seq)
{
	for (struct conn *x = S->conns.next; x != &S->conns && !S->shutting_down; x = x->next)
		if (x->kind == C_SSE && x->subscribed && x->sub.sent_seq < seq &&
		    subscriber_pending(&x->sub))
			return 1;
	return 0;
}

/* Ends holding c's answer: its body (the caller's now), or NULL when none is held. */
static char *answer_unhold(struct conn *c)
{
	char *body = c->answer;
	if (!body)
		return NULL;
	c->answer = NULL;
	c->srv->answers_held--;
	timer_cancel(&c->answer_t);
	return body;
}

static void answer_release(struct conn *c)
{
	char *body = answer_unhold(c);
	respond_ex(c, 200, "application/json", body, c->answer_len, NULL, NULL);
}

static void answer_timeout(struct timer *t)
{
	answer_release(container_of(t, struct conn, answer_t));
}

/* Whether c's answer may go: the turn's events (all this node published up to its end,
 * or up to the seq the owner node named) were delivered here, and no stream still has
 * them to write. */
static int answer_due(struct server *S, struct conn *c)
{
	struct bus *B = engine_bus(S->E);
	if (c->answer_unsettled) {
		if (!bus_settled(B, c->answer_mark))
			return 0;
		c->answer_unsettled = 0;
		c->answer_seq = bus_last_seq(B);
	}
	return c->answer_seq <= bus_last_seq(B) && !streams_behind(S, c->answer_seq);
}

/* After a stream wrote, or events came: the answers held that may go now. */
static void answers_due(struct server *S)
{
	for (struct conn *c = S->conns.next; c != &S->conns && S->answers_held; c = c->next)
		if (c->answer && answer_due(S, c))
			answer_release(c);
}

static void answers_check(struct timer *t)
{
	answers_due(container_of(t, struct server, answers_check));
}

/* An event was delivered: once the streams have it queued (after this delivery), held
 * answers are looked at again. */
static void answers_event(void *arg, struct event *ev)
{
	struct server *S = arg;
	(void)ev;
	if (S->answers_held && !timer_armed(&S->answers_check))
		timer_arm(&S->answers_check, 0);
}

void http_start(struct server *S)
{
	timer_init(&S->answers_check, S->L, answers_check);
	bus_subscribe(engine_bus(S->E), &S->answers_sub, answers_event, S);
}

void http_stop(struct server *S)
{
	bus_unsubscribe(engine_bus(S->E), &S->answers_sub);
	timer_cancel(&S->answers_check);
}

/* Holds c's answer (result taken) until answer_due, for ANSWER_WAIT_MS at most; 0, or -1
 * when it goes at once. */
static int answer_hold(struct conn *c, struct jw *result, int64_t seq, uint64_t mark,
		       int unsettled)
{
	c->answer_seq = seq;
	c->answer_mark = mark;
	c->answer_unsettled = unsettled;
	if (answer_due(c->srv, c) || !(c->answer = jw_take(result, &c->answer_len)))
		return -1;
	c->srv->answers_held++;
	timer_init(&c->answer_t, c->srv->L, answer_timeout);
	timer_arm(&c->answer_t, ANSWER_WAIT_MS);
	return 0;
}

static void prompt_answered(struct api_wait *aw, struct jw *result, const struct err *e)
{
	struct conn *c = container_of(aw, struct conn, aw);
	struct bus *B = engine_bus(c->srv->E);
	uint64_t mark = bus_mark(B);
	if (e && e->code == ERR_UNAVAILABLE) /* shutting down: the prompt stays queued */
		respond_error(c, 503, "ServiceUnavailable", e->msg, "connection:", "close");
	else if (e)
		respond_err(c, e);
	else if (answer_hold(c, result, bus_last_seq(B), mark, !bus_settled(B, mark)))
		respond_json(c, 200, result);
}

/* A prompt held until its turn ends: the header table goes back to the pool (everything
 * needed is copied), and a client that leaves is noticed at once. */
static int hold(struct conn *c)
{
	lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
	lws_http_headers_detach(c->wsi);
	server_watch(c->srv, c);
	return 0;
}

/* POST /session/{id}/command: the command's prompt, then as POST /session/{id}/message. */
static int do_command(struct conn *c, const cJSON *params)
{
	struct api_command ac;
	struct err e = {0};
	if (api_command_prepare(c->srv->E, params, &ac, &e)) {
		api_command_free(&ac);
		return respond_err(c, &e);
	}
	c->aw.fn = prompt_answered;
	int rc = api_prompt(c->srv->E, ac.params, "http", &c->aw, NULL, &e);
	if (!rc)
		api_command_executed(c->srv->E, &ac);
	api_command_free(&ac);
	return rc ? respond_err(c, &e) : hold(c);
}

static int do_prompt(struct conn *c, const struct api_route *r, const cJSON *params)
{
	struct err e = {0};
	if (!strcmp(r->rpc, "session.command"))
		return do_command(c, params);
	struct jw w;
	jw_init(&w);
	c->aw.fn = prompt_answered;
	int rc = api_submit(c->srv->E, r->rpc, params, "http", r->wait ? &c->aw : NULL, &w, &e);
	if (rc < 0 || (r->wait && rc == 1)) { /* rc 1: noReply, the user message now */
		rc = rc < 0 ? respond_err(c, &e) : respond_json(c, 200, &w);
		jw_free(&w);
		return rc;
	}
	jw_free(&w);
	if (!r->wait)
		return respond_ex(c, 204, "application/json", NULL, 0, NULL, NULL);
	return hold(c);
}

/* ---- the event stream (GET /event, SSE output; the SSE parser is llm/sse.c) ---- */

static void events_wake(struct subscriber *s)
{
	struct conn *c = lws_container_of(s, struct conn, sub);
	lws_callback_on_writable(c->wsi);
}

static void events_heartbeat(struct timer *t)
{
	struct conn *c = lws_container_of(t, struct conn, hb);
	c->hb_due = 1;
	lws_callback_on_writable(c->wsi);
	timer_arm(t, c->srv->heartbeat_ms);
}

static int64_t since_of(struct lws *wsi)
{
	char v[32];
	int n = lws_hdr_custom_copy(wsi, v, sizeof(v), "last-event-id:", 14);
	if (n <= 0 && query_arg(wsi, "since", v, sizeof(v)) &&
	    query_arg(wsi, "lastEventID", v, sizeof(v)))
		return -1;
	char *end;
	long long s = strtoll(v, &end, 10);
	return *v && !*end && s >= 0 ? s : -1;
}

static int events_start(struct conn *c, int global)
{
	char sid[64] = "";
	c->global = global;
	if (query_arg(c->wsi, "sessionID", sid, sizeof(sid)) == -2)
		return respond_error(c, 400, "BadRequest", "a query argument is too long (a "
				     "sessionID is at most 63 characters)", NULL, NULL);
	struct err e = {0};
	cJSON *params = cJSON_CreateObject();
	if (*sid)
		cJSON_AddStringToObject(params, "sessionID", sid);
	cJSON_AddBoolToObject(params, "descendants", query_flag(c->wsi, "descendants"));
	cJSON_AddNumberToObject(params, "since", (double)since_of(c->wsi));
	int rc = api_subscribe(c->srv->E, &c->sub, params, events_wake, NULL, &e);
	cJSON_Delete(params);
	if (rc)
		return e.code == ERR_INTERNAL ? -1 : respond_err(c, &e);
	c->subscribed = 1;
	c->kind = C_SSE;
	if (write_headers(c, 200, "text/event-stream", -1, "x-accel-buffering:", "no", NULL))
		return -1;
	/* a stream lives long: give its header table back to the pool (we read what we
	 * need above) */
	lws_http_headers_detach(c->wsi);
	lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
	timer_init(&c->hb, c->srv->L, events_heartbeat);
	timer_arm(&c->hb, c->srv->heartbeat_ms);
	static const char hello[] = "data: {\"type\":\"server.connected\",\"properties\":{}}\n\n";
	static const char global_hello[] =
		"data: {\"payload\":{\"type\":\"server.connected\",\"properties\":{}}}\n\n";
	const char *h = global ? global_hello : hello;
	size_t hl = global ? sizeof(global_hello) - 1 : sizeof(hello) - 1;
	unsigned char buf[LWS_PRE + sizeof(global_hello)];
	memcpy(buf + LWS_PRE, h, hl);
	if (lws_write(c->wsi, buf + LWS_PRE, hl, LWS_WRITE_HTTP) < 0)
		return -1;
	/* nothing the client sends is read from now on: the door hands the client's
	 * socket itself to lws, so the stream costs no relaying; and a client that
	 * leaves is noticed at once */
	door_hand_over(c->srv->door, lws_get_socket_fd(c->wsi));
	server_watch(c->srv, c);
	lws_callback_on_writable(c->wsi);
	return 0;
}

static const char shutdown_frame[] =
	"data: {\"type\":\"server.shutdown\",\"properties\":{}}\n\n";
static const char global_shutdown_frame[] =
	"data: {\"payload\":{\"type\":\"server.shutdown\",\"properties\":{}}}\n\n";

/* A buffer with LWS_PRE headroom, grown as needed and reused (loop thread only). */
static unsigned char *scratch(size_t need)
{
	static unsigned char *buf;
	static size_t cap;
	if (need + LWS_PRE > cap) {
		size_t ncap = cap ? cap : 65536;
		while (ncap < need + LWS_PRE)
			ncap *= 2;
		unsigned char *nb = realloc(buf, ncap);
		if (!nb)
			return NULL;
		buf = nb;
		cap = ncap;
	}
	return buf + LWS_PRE;
}

/* GET /global/event's wrapping of ev, OpenCode's GlobalEvent: {"directory": the
 * directory of ev's session (the workspace for events of none), "payload": ev}. The
 * part before ev goes to pre (the closing brace is the caller's). */
static void global_prefix(struct conn *c, const struct event *ev, struct jw *pre)
{
	const char *dir = engine_session_directory(c->srv->E, ev->session_id);
	jw_reset(pre);
	jw_append(pre, "{\"directory\":\"", 14);
	jw_escape(pre, dir, strlen(dir));
	jw_append(pre, "\",\"payload\":", 12);
}

/* Appends one SSE frame for ev at *n; NULL when out of memory. */
static unsigned char *events_frame(struct conn *c, unsigned char *p, size_t *n,
				   const struct event *ev)
{
	static struct jw pre; /* loop thread only, reused */
	if (c->global)
		global_prefix(c, ev, &pre);
	size_t extra = c->global ? pre.len + 1 : 0;
	if (pre.oom || !(p = scratch(*n + ev->len + extra + 48)))
		return NULL;
	*n += (size_t)sprintf((char *)p + *n, "id: %lld\ndata: ", (long long)ev->seq);
	if (c->global) {
		memcpy(p + *n, pre.buf, pre.len);
		*n += pre.len;
	}
	memcpy(p + *n, ev->json, ev->len);
	*n += ev->len;
	if (c->global)
		p[(*n)++] = '}';
	p[(*n)++] = '\n';
	p[(*n)++] = '\n';
	return p;
}

/* Writes the queued events (up to about 64 KiB) in one write. */
static int events_write(struct conn *c)
{
	if (c->sub.overflow) {
		char why[96];
		subscriber_why(&c->sub, why, sizeof(why));
		log_warn("sse: client %s; closing (resume with Last-Event-ID: %lld)", why,
			 (long long)c->sub.sent_seq);
		return -1;
	}
	size_t n = 0;
	unsigned char *p = scratch(256);
	struct event *ev;
	while (p && n < 65536 && (ev = subscriber_next(&c->sub))) {
		p = events_frame(c, p, &n, ev);
		c->sub.sent_seq = ev->seq;
		event_unref(ev);
	}
	if (!p)
		return -1;
	if (!n && c->hb_due)
		n = (size_t)sprintf((char *)p, ": heartbeat %lld\n\n", (long long)now_ms());
	c->hb_due = 0;
	if (!n && c->closing) {
		const char *bye = c->global ? global_shutdown_frame : shutdown_frame;
		size_t bl = c->global ? sizeof(global_shutdown_frame) - 1 : sizeof(shutdown_frame) - 1;
		memcpy(p, bye, bl);
		lws_write(c->wsi, p, bl, LWS_WRITE_HTTP_FINAL);
		return -1; /* close after the final event */
	}
	if (n && lws_write(c->wsi, p, n, LWS_WRITE_HTTP) < (int)n)
		return -1;
	if (subscriber_pending(&c->sub) || c->closing)
		lws_callback_on_writable(c->wsi);
	if (c->srv->answers_held)
		answers_due(c->srv);
	return 0;
}

/* ---- static files from web/ ---- */

static const char *mime_of(const char *path)
{
	static const struct {
		const char *ext, *mime;
	} m[] = {
		{".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
		{".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
		{".json", "application/json"}, {".svg", "image/svg+xml"}, {".png", "image/png"},
		{".ico", "image/x-icon"}, {".txt", "text/plain; charset=utf-8"},
		{".map", "application/json"}, {".woff2", "font/woff2"},
	};
	const char *dot = strrchr(path, '.');
	for (size_t i = 0; dot && i < sizeof(m) / sizeof(m[0]); i++)
		if (!strcmp(dot, m[i].ext))
			return m[i].mime;
	return "application/octet-stream";
}

/* The file under web_root that path names, or -1: no "..", no escape via symlinks. */
static int static_path(struct server *S, const char *path, char out[PATH_MAX])
{
	char full[PATH_MAX * 2];
	if (!S->web_root[0] || strstr(path, "..") || strchr(path, '\\') || path[0] != '/')
		return -1;
	snprintf(full, sizeof(full), "%s%s", S->web_root, strcmp(path, "/") ? path : "/index.html");
	struct stat st;
	if (!realpath(full, out) || stat(out, &st) || !S_ISREG(st.st_mode))
		return -1;
	size_t rl = strlen(S->web_root);
	return strncmp(out, S->web_root, rl) || out[rl] != '/' ? -1 : 0;
}

static int serve_static(struct conn *c)
{
	char file[PATH_MAX];
	if (static_path(c->srv, c->path, file))
		return respond_error(c, 404, "NotFoundError", "no such route or file", NULL, NULL);
	const char *mime = mime_of(file);
	const char *cache = strstr(mime, "text/html") ? "no-cache" : "public, max-age=3600";
	unsigned char hdr[512], *p = hdr, *end = hdr + sizeof(hdr);
	if (lws_add_http_header_by_name(c->wsi, (const unsigned char *)"cache-control:",
					(const unsigned char *)cache, (int)strlen(cache), &p, end) ||
	    lws_add_http_header_by_name(c->wsi, (const unsigned char *)"x-content-type-options:",
					(const unsigned char *)"nosniff", 7, &p, end))
		return -1;
	int n = lws_serve_http_file(c->wsi, file, mime, (const char *)hdr, (int)(p - hdr));
	if (n < 0 || (n > 0 && lws_http_transaction_completed(c->wsi)))
		return -1;
	return 0;
}

/* ---- GET /metrics ---- */

static int serve_metrics(struct conn *c)
{
	struct jw w;
	jw_init(&w);
	size_t len;
	char *body = metrics_write(c->srv, &w) ? NULL : jw_take(&w, &len);
	jw_free(&w);
	if (!body)
		return respond_error(c, 500, "UnknownError", "out of memory", NULL, NULL);
	return respond_ex(c, 200, "text/plain; version=0.0.4; charset=utf-8", body, len, NULL,
			  NULL);
}

/* ---- dispatch ---- */

/* A body must say it is JSON: a web page can send text/plain or a form to any origin
 * without asking first, never application/json. 0, or -1 with the type in why. */
static int json_body_type(struct conn *c, char *why, size_t n)
{
	char type[128] = "";
	if (!c->body_len)
		return 0;
	lws_hdr_copy(c->wsi, type, sizeof(type), WSI_TOKEN_HTTP_CONTENT_TYPE);
	size_t l = strlen("application/json");
	if (!strncasecmp(type, "application/json", l) && strchr("; \t", type[l]))
		return 0;
	if (*type)
		snprintf(why, n, "the request body must be JSON with Content-Type: "
			 "application/json (got Content-Type: %s)", type);
	else
		snprintf(why, n, "the request body must be JSON with Content-Type: "
			 "application/json (got no Content-Type)");
	return -1;
}

/* The body as a JSON object (an empty body is {}); NULL with e on anything else. */
static cJSON *body_object(struct conn *c, struct err *e)
{
	if (!c->body_len)
		return cJSON_CreateObject();
	cJSON *j = jsonin_parse(c->body, c->body_len, e);
	if (j && !cJSON_IsObject(j)) {
		err_set(e, ERR_INVALID, "the request body must be a JSON object");
		cJSON_Delete(j);
		return NULL;
	}
	return j;
}

/* The x-opencode-directory header, %-decoded, into dir (4096 bytes): 0, or -1 when
 * absent, malformed or not a directory here. A client made with a directory sends it on
 * every request, also to a gateway on another machine: unlike a directory asked for in
 * the body or the query, one that is not here is passed over (logged), not refused. */
static int header_directory(struct conn *c, char *dir)
{
	char raw[4096];
	struct stat st;
	int n = lws_hdr_custom_copy(c->wsi, raw, sizeof(raw), "x-opencode-directory:", 21);
	if (n <= 0)
		return -1;
	long d = media_pct_decode(raw, (size_t)n, dir);
	if (d <= 0 || memchr(dir, 0, (size_t)d))
		return -1;
	if (dir[0] != '/' || stat(dir, &st) || !S_ISDIR(st.st_mode)) {
		log_warn("x-opencode-directory %.300s is not a directory here: passed over", dir);
		return -1;
	}
	return 0;
}

/* A numeric query argument as a number (anything else as a string, which the
 * operation rejects naming it). */
static void add_query_number(struct conn *c, cJSON *params, const char *name)
{
	char v[32];
	if (query_arg(c->wsi, name, v, sizeof(v)))
		return;
	char *end;
	long long n = strtoll(v, &end, 10);
	if (*v && !*end)
		cJSON_AddNumberToObject(params, name, (double)n);
	else
		cJSON_AddStringToObject(params, name, v);
}

/* A string query argument, unless the body has that member. */
static void add_query_string(struct conn *c, cJSON *params, const char *name)
{
	char v[4096];
	if (!cJSON_GetObjectItemCaseSensitive(params, name) &&
	    !query_arg(c->wsi, name, v, sizeof(v)))
		cJSON_AddStringToObject(params, name, v);
}

static void add_query(struct conn *c, const char *method, cJSON *params)
{
	add_query_number(c, params, "limit");
	/* GET /session's filters, as OpenCode's (the TUI sends them) */
	add_query_number(c, params, "start");
	add_query_string(c, params, "search");
	add_query_string(c, params, "path");
	add_query_string(c, params, "scope");
	if (query_flag(c->wsi, "roots"))
		cJSON_AddBoolToObject(params, "roots", 1);
	char mid[256];
	/* GET /session/{id}/diff?messageID= (the route's own id segments come after) */
	if (!cJSON_GetObjectItemCaseSensitive(params, "messageID") &&
	    !query_arg(c->wsi, "messageID", mid, sizeof(mid)))
		cJSON_AddStringToObject(params, "messageID", mid);
	char dir[4096];
	/* a new session's directory: the body's, else ?directory= (the v2 SDK's
	 * session.create), else x-opencode-directory (a client made with a directory
	 * sends it on every request, %-encoded; as in OpenCode, it filters no session
	 * list: only ?directory= does) */
	if (!cJSON_GetObjectItemCaseSensitive(params, "directory") &&
	    (!query_arg(c->wsi, "directory", dir, sizeof(dir)) ||
	     (!strcmp(method, "session.create") && !header_directory(c, dir))))
		cJSON_AddStringToObject(params, "directory", dir);
}

/* The route's '*' segments as the params they name (over what the body said). */
static void add_ids(const struct api_route *r, cJSON *params, char ids[2][64])
{
	for (int i = 0; i < 2 && r->ids[i]; i++) {
		cJSON_DeleteItemFromObject(params, r->ids[i]);
		cJSON_AddStringToObject(params, r->ids[i], ids[i]);
	}
}

static int call_api(struct conn *c, const char *method, cJSON *params)
{
	struct jw w;
	struct err e = {0};
	int unknown;
	jw_init(&w);
	if (api_call(c->srv->E, method, params, &w, &unknown, &e)) {
		jw_free(&w);
		return respond_err(c, &e);
	}
	return respond_json(c, 200, &w);
}

/* ---- requests another cluster node runs (forward.h) ---- */

static void forwarded(struct fwd_call *f, const char *result, size_t len, const struct err *e)
{
	struct conn *c = container_of(f, struct conn, fwd);
	const struct api_route *r = c->fwd_route;
	if (e)
		respond_err(c, e);
	else if (r->kind == API_PROMPT && !r->wait && strcmp(r->rpc, "session.command"))
		respond_ex(c, 204, "application/json", NULL, 0, NULL, NULL);
	else if (f->held && result) {
		/* as prompt_answered: after this node's streams wrote the turn's events */
		struct jw w;
		jw_init(&w);
		jw_append(&w, result, len);
		if (answer_hold(c, &w, f->seq, 0, 0))
			respond_json(c, 200, &w);
		jw_free(&w);
	} else {
		if (!result) {
			result = "null";
			len = 4;
		}
		char *body = malloc(len + 1);
		if (body)
			memcpy(body, result, len + 1);
		respond_ex(c, 200, "application/json", body, body ? len : 0, NULL, NULL);
	}
}

/* 0: this node runs the request; 1: forwarded (held until the answer); -1: answered
 * with the error. */
static int forward(struct conn *c, const struct api_route *r, const cJSON *params)
{
	struct err e = {0};
	enum fwd_kind kind = r->kind == API_CALL ? FWD_CALL
			     : !strcmp(r->rpc, "session.command") ? FWD_COMMAND : FWD_PROMPT;
	c->fwd.done = forwarded;
	c->fwd_route = r;
	int rc = forward_try(c->srv->fwd, &c->fwd, r->rpc, kind, r->wait, params, "http", &e);
	if (rc < 0)
		respond_err(c, &e);
	else if (rc == 1)
		hold(c);
	return rc;
}

/* "/session/" where an id is expected, which must not fall back to the "/session" list
 * (a NUL byte, "/session/%00", is refused by the door). */
static int empty_id(const char *path)
{
	char probe[sizeof(((struct conn *)0)->path) + 1];
	size_t n = strlen(path);
	if (n < 2 || path[n - 1] != '/' || n + 1 >= sizeof(probe))
		return 0;
	snprintf(probe, sizeof(probe), "%sx", path);
	const char *pattern = api_path_pattern(probe);
	return pattern && pattern[strlen(pattern) - 1] == '*';
}

static int handle(struct conn *c)
{
	char ids[2][64] = {"", ""};
	if (c->handled)
		return 0; /* lws may report the end of an empty body after we answered */
	c->handled = 1;
	if (empty_id(c->path)) {
		char msg[1200];
		snprintf(msg, sizeof(msg), "%s ends where an id is expected: the id is empty",
			 c->path);
		return respond_error(c, 400, "BadRequest", msg, NULL, NULL);
	}
	int is_get = !strcmp(c->method, "GET") || !strcmp(c->method, "HEAD");
	char allowed[64];
	const struct api_route *r = api_route(c->method, c->path, ids, allowed, sizeof(allowed));
	if (c->body_too_big)
		return respond_error(c, 413, "PayloadTooLarge", "request body over 1048576 bytes",
				     "connection:", "close");
	if (!r && !*allowed)
		return is_get ? serve_static(c)
			      : respond_error(c, 404, "NotFoundError", "no such route", NULL, NULL);
	if (!r) {
		char msg[1200];
		snprintf(msg, sizeof(msg), "%s is not allowed on %s (allowed: %s)", c->method,
			 c->path, allowed);
		return respond_error(c, 405, "MethodNotAllowed", msg, "allow:", allowed);
	}
	if (!query_ok(c->wsi))
		return respond_error(c, 400, "BadRequest", "a query argument is too long (4 KiB "
				     "at most)", NULL, NULL);
	if (r->kind == API_EVENTS)
		return events_start(c, !strcmp(r->rpc, "global.event"));
	if (r->kind == API_TEXT)
		return serve_metrics(c);
	if (r->kind == API_NOTIMPL) {
		char msg[1200];
		snprintf(msg, sizeof(msg), "%s %s is not implemented by agentgate: %s (docs/API.md, "
			 "\"Not implemented\")", r->http_method, r->pattern,
			 api_not_implemented_why(r));
		return respond_error(c, 501, "NotImplemented", msg, NULL, NULL);
	}
	char why[200];
	if (json_body_type(c, why, sizeof(why)))
		return respond_error(c, 415, "UnsupportedMediaType", why, NULL, NULL);
	struct err e = {0};
	cJSON *body = body_object(c, &e);
	if (!body)
		return respond_err(c, &e);
	add_ids(r, body, ids);
	if (r->kind == API_CALL)
		add_query(c, r->rpc, body);
	int rc = forward(c, r, body);
	if (rc == 0)
		rc = r->kind == API_PROMPT ? do_prompt(c, r, body) : call_api(c, r->rpc, body);
	else
		rc = rc < 0 ? -1 : 0;
	cJSON_Delete(body);
	return rc;
}

static void reset_request(struct conn *c)
{
	c->handled = 0;
	c->expect_body = 0;
	c->body_done = 0;
	c->draining = 0;
	free(c->body);
	c->body = NULL;
	c->body_len = 0;
	c->body_too_big = 0;
}

static int on_request(struct conn *c, const char *uri, size_t len)
{
	c->kind = C_HTTP;
	reset_request(c);
	if (!c->counted)
		server_track(c->srv, c);
	snprintf(c->path, sizeof(c->path), "%s", uri);
	read_method(c);
	char cl[32] = "";
	lws_hdr_copy(c->wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH);
	long long clen = atoll(cl); /* digits only: the door checked it */
	c->expect_body = clen > 0;
	/* the door's stand-in for a request head it refused (door.h): answered before
	 * anything else, and the connection closed */
	const struct doorcheck_refusal *refused;
	if (!strcmp(uri, DOOR_REFUSAL_PATH) &&
	    (refused = door_refusal(c->srv->door, lws_get_socket_fd(c->wsi)))) {
		c->handled = 1;
		return respond_error(c, refused->status, refused->name, refused->message,
				     "connection:", "close");
	}
	if (c->srv->nconns > c->srv->max_conns) {
		char msg[96];
		snprintf(msg, sizeof(msg), "too many connections (server.max_connections is %d)",
			 c->srv->max_conns);
		return respond_error(c, 503, "ServiceUnavailable", msg, "connection:", "close");
	}
	char why[600];
	if (server_check_access(c->srv, c->wsi, why, sizeof(why)))
		return respond_error(c, 403, "Forbidden", why, "connection:", "close");
	if (!server_authorized(c->srv, c->wsi))
		return respond_error(c, 401, "Unauthorized", "missing or wrong token",
				     "www-authenticate:", "Basic realm=\"agentgate\"");
	if (c->srv->shutting_down)
		return respond_error(c, 503, "ServiceUnavailable", "the server is shutting down",
				     "connection:", "close");
	if (len >= sizeof(c->path)) {
		c->handled = 1;
		return respond_error(c, 414, "URITooLong", "the path is over 1023 bytes",
				     "connection:", "close");
	}
	if (clen > MAX_BODY) {
		c->body_too_big = 1;
		return handle(c);
	}
	if (clen > 0 && strcmp(c->method, "GET") && strcmp(c->method, "HEAD"))
		return 0; /* handled at LWS_CALLBACK_HTTP_BODY_COMPLETION */
	return handle(c);
}

static int on_body(struct conn *c, const void *in, size_t len)
{
	if (c->handled)
		return 0; /* answered already (an early error): the rest is not needed */
	if (c->body_too_big || c->body_len + len > MAX_BODY) {
		c->body_too_big = 1;
		return 0;
	}
	char *b = realloc(c->body, c->body_len + len + 1);
	if (!b)
		return -1;
	memcpy(b + c->body_len, in, len);
	c->body = b;
	c->body_len += len;
	b[c->body_len] = 0;
	return 0;
}

void http_detach(struct conn *c)
{
	api_wait_cancel(&c->aw);
	forward_cancel(&c->fwd);
	free(answer_unhold(c));
	server_unwatch(c);
	if (c->subscribed) {
		subscriber_stop(&c->sub);
		timer_cancel(&c->hb);
		c->subscribed = 0;
	}
	reset_request(c);
	free(c->resp);
	c->resp = NULL;
	server_untrack(c->srv, c);
}

int http_callback(struct conn *c, enum lws_callback_reasons reason, void *in, size_t len)
{
	switch (reason) {
	case LWS_CALLBACK_HTTP:
		return on_request(c, in, len);
	case LWS_CALLBACK_HTTP_BODY:
		return on_body(c, in, len);
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		c->body_done = 1;
		return c->draining ? -1 : handle(c);
	case LWS_CALLBACK_HTTP_WRITEABLE:
		if (c->kind == C_SSE)
			return events_write(c);
		return c->responding ? write_body(c) : 0;
	case LWS_CALLBACK_HTTP_FILE_COMPLETION:
		return lws_http_transaction_completed(c->wsi) ? -1 : 0;
	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		/* lws frees this per-connection memory at the end of each keep-alive
		 * transaction, after dropping the protocol: let go of everything here */
		if (c->kind == C_HTTP || c->kind == C_SSE)
			http_detach(c);
		return 0;
	default:
		return 0;
	}
}
