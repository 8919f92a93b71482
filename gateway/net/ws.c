/* ws: the WebSocket JSON-RPC 2.0 API at /ws — requests onto api.c, subscriptions onto a
 * subscriber, responses and events as text frames, as many per writable callback as
 * the socket takes, with bounded queues: a client that cannot keep up is closed with a
 * reason naming `since`. */
#include "api.h"
#include "jsonin.h"
#include "log.h"
#include "server.h"

#include <stdlib.h>
#include <string.h>

#define WS_FRAMES_PER_WRITE 256

enum {
	RPC_PARSE = -32700,
	RPC_INVALID = -32600,
	RPC_NO_METHOD = -32601,
	RPC_PARAMS = -32602,
	RPC_INTERNAL = -32603,
	RPC_NOT_FOUND = -32004,
	RPC_BUSY = -32009,
	RPC_LIMIT = -32029,
	RPC_UNAVAILABLE = -32003,
};

/* A session.prompt with "wait": answered when the turn ends. */
struct ws_wait {
	struct api_wait aw;
	struct fwd_call fwd; /* or a request another cluster node runs */
	struct conn *c;
	struct ws_wait *next;
	char *id_json; /* the request id, as JSON */
	char session[64];
};

static void queue_frame(struct conn *c, const char *a, size_t alen, const char *b, size_t blen,
			const char *z)
{
	size_t zlen = z ? strlen(z) : 0, len = alen + blen + zlen;
	struct frame *f = malloc(sizeof(*f) + LWS_PRE + len);
	if (!f)
		return;
	f->next = NULL;
	f->len = len;
	memcpy(f->buf + LWS_PRE, a, alen);
	memcpy(f->buf + LWS_PRE + alen, b, blen);
	if (zlen)
		memcpy(f->buf + LWS_PRE + alen + blen, z, zlen);
	if (c->out_tail)
		c->out_tail->next = f;
	else
		c->out_head = f;
	c->out_tail = f;
	c->out_n++;
	lws_callback_on_writable(c->wsi);
}

static void reply(struct conn *c, const char *id_json, const char *result, size_t len)
{
	struct jw w;
	jw_init(&w);
	jw_append(&w, "{\"jsonrpc\":\"2.0\",\"id\":", 22);
	jw_append(&w, id_json, strlen(id_json));
	jw_append(&w, ",\"result\":", 10);
	queue_frame(c, w.buf, w.len, result, len, "}");
	jw_free(&w);
}

static void reply_error(struct conn *c, const char *id_json, int code, const char *msg)
{
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "jsonrpc", "2.0");
	jw_kraw(&w, "id", id_json ? id_json : "null");
	jw_key(&w, "error");
	jw_obj(&w);
	jw_kint(&w, "code", code);
	jw_kstr(&w, "message", msg);
	jw_obj_end(&w);
	jw_obj_end(&w);
	if (!w.oom)
		queue_frame(c, w.buf, w.len, "", 0, NULL);
	jw_free(&w);
}

static int rpc_code(const struct err *e)
{
	switch (e->code) {
	case ERR_INVALID: return RPC_PARAMS;
	case ERR_NOTFOUND: return RPC_NOT_FOUND;
	case ERR_BUSY: return RPC_BUSY;
	case ERR_LIMIT: return RPC_LIMIT;
	case ERR_UNAVAILABLE: return RPC_UNAVAILABLE;
	default: return RPC_INTERNAL;
	}
}

/* ---- subscriptions ---- */

static void ws_wake(struct subscriber *s)
{
	struct conn *c = lws_container_of(s, struct conn, sub);
	lws_callback_on_writable(c->wsi);
}

static int do_subscribe(struct conn *c, const cJSON *p, struct jw *w, struct err *e)
{
	if (c->subscribed)
		subscriber_stop(&c->sub);
	c->subscribed = 0;
	int64_t seq;
	if (api_subscribe(c->srv->E, &c->sub, p, ws_wake, &seq, e))
		return -1;
	c->subscribed = 1;
	jw_obj(w);
	jw_kint(w, "seq", seq);
	jw_obj_end(w);
	lws_callback_on_writable(c->wsi);
	return 0;
}

/* ---- prompts ---- */

static void ws_wait_drop(struct conn *c, struct ws_wait *ww)
{
	for (struct ws_wait **pp = &c->waits; *pp; pp = &(*pp)->next) {
		if (*pp == ww) {
			*pp = ww->next;
			break;
		}
	}
	free(ww->id_json);
	free(ww);
}

/* A wait for the answer to request id_json, not yet in c's list; NULL and e. */
static struct ws_wait *ws_wait_new(struct conn *c, const char *id_json, struct err *e)
{
	struct ws_wait *ww = calloc(1, sizeof(*ww));
	if (!ww || !(ww->id_json = strdup(id_json))) {
		free(ww);
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	ww->c = c;
	return ww;
}

static void wait_done(struct api_wait *aw, struct jw *result, const struct err *e)
{
	struct ws_wait *ww = container_of(aw, struct ws_wait, aw);
	struct conn *c = ww->c;
	if (e) /* ERR_UNAVAILABLE: the server stopped with the prompt still queued */
		reply_error(c, ww->id_json, rpc_code(e), e->msg);
	else
		reply(c, ww->id_json, result->buf, result->len);
	ws_wait_drop(c, ww);
}

/* session.prompt: without "wait" it is session.prompt_async; with it, the reply to this
 * request is the turn's terminal message, sent when the turn ends. session.summarize:
 * always answered when its compaction ends (true). */
static int do_prompt(struct conn *c, const char *method, const char *id_json, const cJSON *p,
		     struct jw *w, struct err *e)
{
	int wait = !strcmp(method, "session.summarize");
	if (!wait && jsonin_bool(p, "wait", &wait, e))
		return -1;
	if (!wait)
		return api_prompt(c->srv->E, p, "ws", NULL, w, e);
	struct ws_wait *ww = ws_wait_new(c, id_json, e);
	if (!ww)
		return -1;
	ww->aw.fn = wait_done;
	int rc = api_submit(c->srv->E, method, p, "ws", &ww->aw, w, e);
	if (rc) { /* -1, or 1: noReply, answered now with the user message */
		free(ww->id_json);
		free(ww);
		return rc < 0 ? -1 : 0;
	}
	ww->next = c->waits;
	c->waits = ww;
	return 1; /* answered later */
}

/* ---- requests another cluster node runs (forward.h) ---- */

static void forwarded(struct fwd_call *f, const char *result, size_t len, const struct err *e)
{
	struct ws_wait *ww = container_of(f, struct ws_wait, fwd);
	if (e)
		reply_error(ww->c, ww->id_json, rpc_code(e), e->msg);
	else
		reply(ww->c, ww->id_json, result ? result : "null", result ? len : 4);
	ws_wait_drop(ww->c, ww);
}

/* 0: this node runs it; 1: forwarded, answered later; -1 and e. */
static int forward(struct conn *c, const char *method, const char *id_json, const cJSON *p,
		   struct err *e)
{
	int prompt = !strcmp(method, "session.prompt") || !strcmp(method, "session.summarize");
	int wait = !strcmp(method, "session.summarize");
	if (!c->srv->fwd || (!wait && prompt && jsonin_bool(p, "wait", &wait, e)))
		return c->srv->fwd ? -1 : 0;
	struct ws_wait *ww = ws_wait_new(c, id_json, e);
	if (!ww)
		return -1;
	ww->fwd.done = forwarded;
	int rc = forward_try(c->srv->fwd, &ww->fwd, method, prompt ? FWD_PROMPT : FWD_CALL, wait,
			     p, "ws", e);
	if (rc != 1) {
		free(ww->id_json);
		free(ww);
		return rc;
	}
	ww->next = c->waits;
	c->waits = ww;
	return 1;
}

/* ---- requests ---- */

/* Runs one request; returns what to answer through w / e, or 1 when answered later. */
static int dispatch(struct conn *c, const char *method, const char *id_json, const cJSON *p,
		    struct jw *w, struct err *e, int *unknown)
{
	*unknown = 0;
	if (p && !cJSON_IsObject(p)) {
		err_set(e, ERR_INVALID, "params must be an object");
		return -1;
	}
	if (!strcmp(method, "subscribe"))
		return do_subscribe(c, p, w, e);
	if (!strcmp(method, "unsubscribe")) {
		if (c->subscribed)
			subscriber_stop(&c->sub);
		c->subscribed = 0;
		jw_bool(w, 1);
		return 0;
	}
	int rc = forward(c, method, id_json, p, e);
	if (rc)
		return rc;
	if (!strcmp(method, "session.prompt") || !strcmp(method, "session.summarize"))
		return do_prompt(c, method, id_json, p, w, e);
	return api_call(c->srv->E, method, p, w, unknown, e);
}

static void handle_message(struct conn *c, const char *buf, size_t len)
{
	struct err e = {0};
	cJSON *req = jsonin_parse(buf, len, &e);
	if (!req) {
		reply_error(c, NULL, RPC_PARSE, e.msg);
		return;
	}
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(req, "method");
	const cJSON *ver = cJSON_GetObjectItemCaseSensitive(req, "jsonrpc");
	char *id_json = id && (cJSON_IsString(id) || cJSON_IsNumber(id) || cJSON_IsNull(id))
				? cJSON_PrintUnformatted(id) : strdup("null");
	if (!cJSON_IsObject(req) || !cJSON_IsString(ver) || strcmp(ver->valuestring, "2.0") ||
	    !cJSON_IsString(m) || (id && !cJSON_IsString(id) && !cJSON_IsNumber(id) &&
				   !cJSON_IsNull(id))) {
		reply_error(c, id_json, RPC_INVALID, "invalid request: expected {\"jsonrpc\":\"2.0\","
			    "\"method\": string, \"id\"?: string|number, \"params\"?: object}");
		goto out;
	}
	struct jw w;
	jw_init(&w);
	int unknown = 0;
	int rc = dispatch(c, m->valuestring, id_json,
			  cJSON_GetObjectItemCaseSensitive(req, "params"), &w, &e, &unknown);
	if (id && rc == 0)
		reply(c, id_json, w.buf ? w.buf : "null", w.buf ? w.len : 4);
	else if (id && rc < 0)
		reply_error(c, id_json, unknown ? RPC_NO_METHOD : rpc_code(&e), e.msg);
	jw_free(&w);
out:
	free(id_json);
	cJSON_Delete(req);
}

static int on_receive(struct conn *c, const void *in, size_t len)
{
	if (c->rx_len + len > MAX_WS_MESSAGE) {
		static const char why[] = "message over 1048576 bytes";
		lws_close_reason(c->wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
				 (unsigned char *)why, sizeof(why) - 1);
		return -1;
	}
	char *b = realloc(c->rx, c->rx_len + len + 1);
	if (!b)
		return -1;
	memcpy(b + c->rx_len, in, len);
	c->rx = b;
	c->rx_len += len;
	if (!lws_is_final_fragment(c->wsi) || lws_remaining_packet_payload(c->wsi))
		return 0;
	if (lws_frame_is_binary(c->wsi)) {
		reply_error(c, NULL, RPC_PARSE, "binary frames are not accepted: send JSON text");
	} else {
		handle_message(c, c->rx, c->rx_len);
	}
	c->rx_len = 0;
	if (c->out_n > MAX_RPC_QUEUE) {
		static const char why[] = "client too slow: responses are not being read";
		lws_close_reason(c->wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, (unsigned char *)why,
				 sizeof(why) - 1);
		return -1;
	}
	return 0;
}

/* ---- writing ---- */

static int write_frame(struct conn *c, unsigned char *p, size_t len)
{
	return lws_write(c->wsi, p, len, LWS_WRITE_TEXT) < (int)len ? -1 : 0;
}

static int close_slow(struct conn *c)
{
	char why[123], what[80]; /* a close reason: at most 123 bytes */
	subscriber_why(&c->sub, what, sizeof(what));
	int n = snprintf(why, sizeof(why), "client too slow: %s; subscribe again with "
			 "since=%lld", what, (long long)c->sub.sent_seq);
	n = n < (int)sizeof(why) ? n : (int)sizeof(why) - 1;
	log_warn("ws: closing a slow client at seq %lld", (long long)c->sub.sent_seq);
	lws_close_reason(c->wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, (unsigned char *)why,
			 (size_t)n);
	return -1;
}

/* Shutdown: after the last queued event, a final server.shutdown event to subscribers,
 * then a close frame. */
static int say_goodbye(struct conn *c)
{
	static const char bye[] = "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"type\":"
				  "\"server.shutdown\",\"properties\":{}}}";
	if (c->subscribed && !c->bye_sent) {
		c->bye_sent = 1;
		unsigned char buf[LWS_PRE + sizeof(bye)];
		memcpy(buf + LWS_PRE, bye, sizeof(bye) - 1);
		if (write_frame(c, buf + LWS_PRE, sizeof(bye) - 1))
			return -1;
		lws_callback_on_writable(c->wsi);
		return 0;
	}
	static const char why[] = "server shutting down";
	lws_close_reason(c->wsi, LWS_CLOSE_STATUS_GOINGAWAY, (unsigned char *)why, sizeof(why) - 1);
	return -1;
}

/* Writes the next queued reply or event as one frame: 1 if one was written, 0 if
 * there is none, -1 to close. */
static int write_next(struct conn *c)
{
	static const char pre[] = "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":";
	if (c->out_head) {
		struct frame *f = c->out_head;
		c->out_head = f->next;
		if (!c->out_head)
			c->out_tail = NULL;
		c->out_n--;
		int rc = write_frame(c, f->buf + LWS_PRE, f->len);
		free(f);
		return rc ? -1 : 1;
	}
	if (!c->subscribed)
		return 0;
	if (c->sub.overflow)
		return close_slow(c);
	struct event *ev = subscriber_next(&c->sub);
	if (!ev)
		return 0;
	size_t len = sizeof(pre) - 1 + ev->len + 1;
	unsigned char *buf = malloc(LWS_PRE + len);
	if (!buf) {
		event_unref(ev);
		return -1;
	}
	memcpy(buf + LWS_PRE, pre, sizeof(pre) - 1);
	memcpy(buf + LWS_PRE + sizeof(pre) - 1, ev->json, ev->len);
	buf[LWS_PRE + len - 1] = '}';
	c->sub.sent_seq = ev->seq;
	event_unref(ev);
	int rc = write_frame(c, buf + LWS_PRE, len);
	free(buf);
	return rc ? -1 : 1;
}

/* Can another frame be written now? Behind the front door the socket is lws's end of a
 * socketpair, full long before the client's socket is: the door empties it first. */
static int has_room(struct conn *c)
{
	if (!lws_send_pipe_choked(c->wsi))
		return 1;
	door_flush(c->srv->door, lws_get_socket_fd(c->wsi));
	return !lws_send_pipe_choked(c->wsi);
}

/* As many frames as the socket takes now (up to WS_FRAMES_PER_WRITE, so other
 * connections get their turn): one frame per writable callback could not keep up with
 * a busy server, and the subscriber was cut off where SSE, writing 64 KiB at a time,
 * kept up. lws allows further writes in the callback while the pipe is not choked. */
static int on_writable(struct conn *c)
{
	int rc, budget = WS_FRAMES_PER_WRITE;
	do
		rc = write_next(c);
	while (rc == 1 && --budget && has_room(c));
	if (rc < 0)
		return -1;
	if (c->closing && !c->out_head && !(c->subscribed && subscriber_pending(&c->sub)))
		return say_goodbye(c);
	if (c->out_head || (c->subscribed && (subscriber_pending(&c->sub) || c->sub.overflow)))
		lws_callback_on_writable(c->wsi);
	return 0;
}

void ws_detach(struct conn *c)
{
	if (c->subscribed)
		subscriber_stop(&c->sub);
	c->subscribed = 0;
	while (c->waits) {
		struct ws_wait *ww = c->waits;
		c->waits = ww->next;
		api_wait_cancel(&ww->aw);
		forward_cancel(&ww->fwd);
		free(ww->id_json);
		free(ww);
	}
	while (c->out_head) {
		struct frame *f = c->out_head;
		c->out_head = f->next;
		free(f);
	}
	c->out_tail = NULL;
	free(c->rx);
	c->rx = NULL;
	server_untrack(c->srv, c);
}

int ws_callback(struct conn *c, enum lws_callback_reasons reason, void *in, size_t len)
{
	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		c->kind = C_WS;
		if (!c->counted)
			server_track(c->srv, c);
		/* the door held the client's bytes since the upgrade: frames from now on */
		door_websocket(c->srv->door, lws_get_socket_fd(c->wsi));
		return 0;
	case LWS_CALLBACK_RECEIVE:
		return on_receive(c, in, len);
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return on_writable(c);
	case LWS_CALLBACK_CLOSED:
		ws_detach(c);
		return 0;
	default:
		return 0;
	}
}
