/* client: libagentgate-client's connection (sdk/include/agentgate/client.h). Each client
 * has its own libwebsockets context and one service thread that owns everything below
 * except the inbox: other threads put their calls there and wake it with
 * lws_cancel_service, and it picks them up in LWS_CALLBACK_EVENT_WAIT_CANCELLED (lws's
 * rule: one service thread; only lws_cancel_service from others). */
#include "client_int.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RX_MAX (256u << 20) /* the longest message read (a whole session's messages) */
#define CLOSE_GRACE_US (1000 * LWS_US_PER_MS)

enum req_kind { R_CALL, R_SUBSCRIBE, R_UNSUBSCRIBE };

/* A call on its way: in the inbox (any thread put it there), the send queue, or the
 * list of calls sent and waiting for their answer. */
struct req {
	struct req *next;
	enum req_kind kind;
	int64_t id;
	unsigned char *buf; /* LWS_PRE headroom, then the frame's text */
	size_t len;
	ag_client_result_fn done;
	void *user;
	/* R_SUBSCRIBE from the caller: what to follow */
	char *session_id;
	int descendants;
	int64_t since;
	ag_client_event_fn on_event;
	void *ev_user;
};

struct reqlist {
	struct req *head, *tail;
};

/* The one subscription, service thread only. */
struct sub {
	int active;
	char *session_id;
	int descendants;
	ag_client_event_fn on_event;
	void *user;
	int64_t last;        /* newest seq delivered (or the start point) */
	int known;           /* last is meaningful (a since, an answer, an event) */
	int64_t await_id;    /* a subscribe sent and not answered: its events are the old ones' */
	ag_client_result_fn first_done; /* the caller's done, until the first answer */
	void *first_user;
};

struct ag_client {
	struct agc_url url;
	char *auth;          /* "Bearer TOKEN" or NULL */
	ag_client_state_fn on_state;
	void *user;
	int backoff_min_ms, backoff_max_ms, give_up_ms, ping_s;
	int tls_flags;
	char *ca_file;
	lws_retry_bo_t idle;

	struct lws_context *ctx;
	pthread_t thread;
	pthread_mutex_t lock; /* inbox, closing, failed, dead */
	struct reqlist inbox;
	int closing, failed;
	int dead;            /* the context is gone: nothing may wake it */
	atomic_llong next_id;
	atomic_llong last_seq; /* sub.last as published for ag_client_last_seq */

	/* service thread */
	struct lws *wsi;
	int attempting;      /* a connection attempt or connection exists */
	int connected;
	int finished;        /* the service loop ends */
	int stopping;        /* closing, as the service thread has seen it */
	int attempts;        /* failed attempts since the last connection */
	int64_t down_since;  /* ms (monotonic) the client has been without a connection */
	uint32_t rng;
	lws_sorted_usec_list_t sul_connect, sul_close;
	struct reqlist out, sent;
	struct sub sub;
	unsigned char *rx;
	size_t rx_len, rx_cap;
	char close_why[160]; /* the server's close code and reason */
};

/* The client whose service thread this is (NULL on other threads). */
static _Thread_local struct ag_client *current;

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void list_push(struct reqlist *l, struct req *r)
{
	r->next = NULL;
	if (l->tail)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
}

static void list_push_front(struct reqlist *l, struct req *r)
{
	r->next = l->head;
	l->head = r;
	if (!l->tail)
		l->tail = r;
}

static struct req *list_pop(struct reqlist *l)
{
	struct req *r = l->head;
	if (r) {
		l->head = r->next;
		if (!l->head)
			l->tail = NULL;
		r->next = NULL;
	}
	return r;
}

static void req_free(struct req *r)
{
	if (!r)
		return;
	free(r->buf);
	free(r->session_id);
	free(r);
}

static void report(struct ag_client *c, enum ag_client_state st, const char *why)
{
	if (c->on_state)
		c->on_state(c->user, st, why ? why : "");
}

static void complete(ag_client_result_fn done, void *user, int code, const char *message,
		     const char *json)
{
	if (!done)
		return;
	struct ag_client_result r = {
		.size = sizeof(r), .code = code, .message = message ? message : "",
		.json = json ? json : "null",
	};
	r.len = strlen(r.json);
	done(user, &r);
}

const char *ag_client_strerror(int code)
{
	switch (code) {
	case AG_CLIENT_OK: return "ok";
	case AG_CLIENT_E_INVALID: return "invalid argument";
	case AG_CLIENT_E_NOMEM: return "out of memory";
	case AG_CLIENT_E_CONNECTION:
		return "the connection dropped before the answer (the call may have run)";
	case AG_CLIENT_E_CLOSED: return "the client was closed";
	case AG_CLIENT_E_FAILED: return "the client gave up connecting";
	case AG_CLIENT_E_THREAD: return "not allowed from this thread (a callback)";
	case AG_CLIENT_E_PROTOCOL: return "the server's answer is not JSON-RPC";
	default: return "";
	}
}

/* ---- the subscription ---- */

static void publish_last(struct ag_client *c)
{
	atomic_store(&c->last_seq, c->sub.known ? c->sub.last : -1);
}

/* Moves the subscription out of c (which then has none). */
static struct sub sub_take(struct ag_client *c)
{
	struct sub old = c->sub;
	memset(&c->sub, 0, sizeof(c->sub));
	publish_last(c);
	return old;
}

/* Frees a subscription taken out, telling its caller code when it was never answered.
 * Last, as callbacks may subscribe again. */
static void sub_end(struct sub *old, int code, const char *why)
{
	free(old->session_id);
	complete(old->first_done, old->first_user, code, why, NULL);
}

static void sub_clear(struct ag_client *c, int code, const char *why)
{
	struct sub old = sub_take(c);
	sub_end(&old, code, why);
}

/* An event the client makes itself, a resync notice: the server's history no longer
 * covers the client's (a new data directory), or the subscription could not be resumed
 * (error). sub.last moves first: the callback may subscribe again. */
static void deliver_resync(struct ag_client *c, ag_client_event_fn fn, void *user,
			   const char *session_id, int64_t since, int64_t last, const char *error)
{
	char json[1024], *m = NULL;
	if (error) {
		cJSON *msg = cJSON_CreateString(error);
		m = cJSON_PrintUnformatted(msg);
		cJSON_Delete(msg);
	}
	int n = snprintf(json, sizeof(json), "{\"type\":\"resync\",\"properties\":{\"since\":%lld,"
			 "\"oldest\":%lld,\"last\":%lld%s%s},\"seq\":%lld}", (long long)since,
			 (long long)last, (long long)last, m ? ",\"error\":" : "", m ? m : "",
			 (long long)last);
	free(m);
	if (n < 0 || n >= (int)sizeof(json))
		n = snprintf(json, sizeof(json), "{\"type\":\"resync\",\"properties\":{},\"seq\":%lld}",
			     (long long)last);
	char sid[256];
	snprintf(sid, sizeof(sid), "%s", session_id ? session_id : "");
	struct ag_client_event ev = {
		.size = sizeof(ev), .seq = last, .type = "resync",
		.session_id = session_id ? sid : NULL, .json = json, .len = (size_t)n,
	};
	if (fn)
		fn(user, &ev);
}

/* A subscribe request for the current subscription, resuming after sub.last. */
static struct req *subscribe_req(struct ag_client *c)
{
	char *params = agc_subscribe_params(c->sub.session_id, c->sub.descendants,
					    c->sub.known ? c->sub.last : -1);
	struct req *r = calloc(1, sizeof(*r));
	char err[128];
	if (r && params) {
		r->kind = R_SUBSCRIBE;
		r->id = atomic_fetch_add(&c->next_id, 1);
		r->buf = (unsigned char *)agc_request(r->id, "subscribe", params, LWS_PRE, &r->len,
						      err, sizeof(err));
	}
	free(params);
	if (!r || !r->buf) {
		req_free(r);
		return NULL;
	}
	c->sub.await_id = r->id;
	return r;
}

static void on_subscribe_answer(struct ag_client *c, const struct agc_frame *f)
{
	if (!c->sub.active || f->id != c->sub.await_id)
		return; /* answers a subscription since replaced */
	c->sub.await_id = 0;
	if (f->code) {
		char why[600];
		snprintf(why, sizeof(why), "subscribe: %s", f->message);
		struct sub old = sub_take(c);
		if (old.first_done) { /* the caller's own subscribe: its done says it */
			sub_end(&old, f->code, f->message);
			return;
		}
		/* a resumption refused (the session was deleted meanwhile): say so in the
		 * stream, and the subscription ends */
		deliver_resync(c, old.on_event, old.user, old.session_id, old.last, old.last, why);
		sub_end(&old, AG_CLIENT_E_CLOSED, why);
		return;
	}
	int64_t now = 0;
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(f->result, "seq");
	if (cJSON_IsNumber(seq))
		now = (int64_t)seq->valuedouble;
	int64_t before = c->sub.last;
	int went_back = c->sub.known && now < before;
	if (!c->sub.known || went_back) { /* live from here */
		c->sub.last = now;
		c->sub.known = 1;
		publish_last(c);
	}
	ag_client_result_fn done = c->sub.first_done;
	void *done_user = c->sub.first_user;
	c->sub.first_done = NULL;
	if (went_back) /* numbering went back: the server's history is not the one the
			* client saw, and events up to its last would be dropped as seen */
		deliver_resync(c, c->sub.on_event, c->sub.user, c->sub.session_id, before, now, NULL);
	char *json = f->result ? cJSON_PrintUnformatted(f->result) : NULL;
	complete(done, done_user, 0, "", json);
	free(json);
}

static void on_event(struct ag_client *c, const struct agc_frame *f)
{
	if (!c->sub.active || c->sub.await_id || !c->sub.on_event)
		return; /* no subscription, or the events of one being replaced */
	int resync = !strcmp(f->ev.type, "resync");
	if (!agc_gate(&c->sub.last, f->ev.seq, resync))
		return;
	if (f->ev.seq >= 0) {
		c->sub.known = 1;
		publish_last(c);
	}
	c->sub.on_event(c->sub.user, &f->ev);
}

/* ---- calls ---- */

static struct req *take_sent(struct ag_client *c, int64_t id)
{
	for (struct req **pp = &c->sent.head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next) {
		struct req *r = *pp;
		if (r->id != id)
			continue;
		*pp = r->next;
		if (c->sent.tail == r)
			c->sent.tail = prev;
		r->next = NULL;
		return r;
	}
	return NULL;
}

static void on_answer(struct ag_client *c, const struct agc_frame *f)
{
	struct req *r = take_sent(c, f->id);
	if (!r)
		return;
	if (r->kind == R_SUBSCRIBE) {
		on_subscribe_answer(c, f);
	} else if (f->code) {
		complete(r->done, r->user, f->code, f->message, NULL);
	} else {
		char *json = f->result ? cJSON_PrintUnformatted(f->result) : NULL;
		complete(r->done, r->user, json ? 0 : AG_CLIENT_E_NOMEM, json ? "" : "out of memory",
			 json);
		free(json);
	}
	req_free(r);
}

static void on_message(struct ag_client *c, const unsigned char *buf, size_t len)
{
	struct agc_frame f;
	agc_frame_parse(&f, (const char *)buf, len);
	if (f.kind == AGC_EVENT)
		on_event(c, &f);
	else if (f.kind == AGC_ANSWER)
		on_answer(c, &f);
	agc_frame_free(&f);
}

/* Ends every call in l with code. */
static void fail_list(struct ag_client *c, struct reqlist *l, int code, const char *why)
{
	struct req *r;
	while ((r = list_pop(l))) {
		if (r->kind == R_CALL)
			complete(r->done, r->user, code, why, NULL);
		else if (r->kind == R_SUBSCRIBE && r->on_event) /* a caller's, still in the inbox */
			complete(r->done, r->user, code, why, NULL);
		req_free(r);
	}
}

/* ---- the connection ---- */

static void connect_attempt(lws_sorted_usec_list_t *sul);

/* The next delay: min doubled per failed attempt up to max, ±20 %. */
static int64_t backoff_ms(struct ag_client *c)
{
	int64_t d = c->backoff_min_ms;
	for (int i = 0; i < c->attempts && d < c->backoff_max_ms; i++)
		d *= 2;
	if (d > c->backoff_max_ms)
		d = c->backoff_max_ms;
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 17;
	c->rng ^= c->rng << 5;
	int64_t jitter = d / 5;
	return d - jitter + (jitter ? (int64_t)(c->rng % (uint32_t)(2 * jitter + 1)) : 0);
}

static void give_up(struct ag_client *c, const char *why)
{
	char msg[400];
	snprintf(msg, sizeof(msg), "gave up connecting to %s:%d: %s", c->url.host, c->url.port, why);
	pthread_mutex_lock(&c->lock);
	c->failed = 1;
	struct reqlist in = c->inbox;
	c->inbox.head = c->inbox.tail = NULL;
	pthread_mutex_unlock(&c->lock);
	fail_list(c, &in, AG_CLIENT_E_FAILED, msg);
	fail_list(c, &c->out, AG_CLIENT_E_FAILED, msg);
	sub_clear(c, AG_CLIENT_E_FAILED, msg);
	report(c, AG_CLIENT_FAILED, msg);
}

static void finish(struct ag_client *c)
{
	if (c->finished)
		return;
	c->finished = 1;
	lws_sul_cancel(&c->sul_connect);
	lws_sul_cancel(&c->sul_close);
	pthread_mutex_lock(&c->lock);
	struct reqlist in = c->inbox;
	c->inbox.head = c->inbox.tail = NULL;
	pthread_mutex_unlock(&c->lock);
	static const char why[] = "closed by ag_client_close";
	fail_list(c, &c->sent, AG_CLIENT_E_CLOSED, why);
	fail_list(c, &c->out, AG_CLIENT_E_CLOSED, why);
	fail_list(c, &in, AG_CLIENT_E_CLOSED, why);
	sub_clear(c, AG_CLIENT_E_CLOSED, why);
	report(c, AG_CLIENT_CLOSED, "");
}

/* The connection dropped, or an attempt failed: calls sent and not answered end, the
 * subscription waits for the next connection, and one is scheduled. */
static void on_down(struct ag_client *c, const char *why, int fatal)
{
	if (!c->attempting)
		return;
	c->attempting = 0;
	c->connected = 0;
	c->wsi = NULL;
	c->rx_len = 0;
	c->sub.await_id = 0;
	struct req *r;
	while ((r = list_pop(&c->sent))) {
		if (r->kind == R_CALL)
			complete(r->done, r->user, AG_CLIENT_E_CONNECTION,
				 "the connection dropped before the answer (the call may have run)",
				 NULL);
		req_free(r);
	}
	/* subscribe and unsubscribe requests not sent are rebuilt from the state */
	struct reqlist keep = {0};
	while ((r = list_pop(&c->out))) {
		if (r->kind == R_CALL)
			list_push(&keep, r);
		else
			req_free(r);
	}
	c->out = keep;
	if (c->stopping) {
		finish(c);
		return;
	}
	if (!c->down_since)
		c->down_since = mono_ms();
	if (fatal) {
		give_up(c, why);
		return;
	}
	if (c->give_up_ms && mono_ms() - c->down_since >= c->give_up_ms) {
		give_up(c, why);
		return;
	}
	report(c, AG_CLIENT_DISCONNECTED, why);
	int64_t d = backoff_ms(c);
	c->attempts++;
	lws_sul_schedule(c->ctx, 0, &c->sul_connect, connect_attempt, d * LWS_US_PER_MS);
}

static void connect_attempt(lws_sorted_usec_list_t *sul)
{
	struct ag_client *c = lws_container_of(sul, struct ag_client, sul_connect);
	if (c->stopping || c->failed || c->attempting)
		return;
	struct lws_client_connect_info i;
	memset(&i, 0, sizeof(i));
	i.context = c->ctx;
	i.address = c->url.host;
	i.port = c->url.port;
	i.path = c->url.path;
	i.host = c->url.host_header;
	i.ssl_connection = c->tls_flags;
	i.protocol = NULL; /* the gateway's /ws takes no subprotocol */
	i.local_protocol_name = "agentgate-client";
	i.pwsi = &c->wsi;
	i.retry_and_idle_policy = &c->idle;
	i.userdata = c;
	c->attempting = 1;
	c->close_why[0] = 0;
	report(c, AG_CLIENT_CONNECTING, "");
	/* lws reports a failure here by returning NULL, not through the callback */
	if (!(c->wsi = lws_client_connect_via_info(&i)))
		on_down(c, "cannot start a connection", 0);
}

static void close_now(lws_sorted_usec_list_t *sul)
{
	struct ag_client *c = lws_container_of(sul, struct ag_client, sul_close);
	finish(c); /* the close handshake took too long: lws_context_destroy drops it */
}

/* Takes what other threads queued. */
static void drain_inbox(struct ag_client *c)
{
	pthread_mutex_lock(&c->lock);
	struct reqlist in = c->inbox;
	c->inbox.head = c->inbox.tail = NULL;
	if (c->closing)
		c->stopping = 1;
	pthread_mutex_unlock(&c->lock);
	struct req *r;
	while ((r = list_pop(&in))) {
		if (c->stopping || c->failed) {
			struct reqlist one = {r, r};
			fail_list(c, &one, c->stopping ? AG_CLIENT_E_CLOSED : AG_CLIENT_E_FAILED,
				  c->stopping ? "closed by ag_client_close"
					      : "the client gave up connecting");
			continue;
		}
		if (r->kind == R_CALL) {
			list_push(&c->out, r);
			continue;
		}
		int subscribe = r->kind == R_SUBSCRIBE;
		struct sub old = sub_take(c);
		if (subscribe) {
			c->sub = (struct sub){
				.active = 1, .session_id = r->session_id, .descendants = r->descendants,
				.on_event = r->on_event, .user = r->ev_user, .last = r->since,
				.known = r->since >= 0, .first_done = r->done, .first_user = r->user,
			};
			r->session_id = NULL;
			req_free(r);
			publish_last(c);
			struct req *s = c->connected ? subscribe_req(c) : NULL;
			if (s)
				list_push(&c->out, s);
			else if (c->connected)
				sub_clear(c, AG_CLIENT_E_NOMEM, "out of memory");
		} else {
			char err[64];
			if (c->connected)
				r->buf = (unsigned char *)agc_request(r->id, "unsubscribe", NULL, LWS_PRE,
								      &r->len, err, sizeof(err));
			if (r->buf)
				list_push(&c->out, r);
			else
				req_free(r);
		}
		/* last: its done may subscribe again */
		sub_end(&old, AG_CLIENT_E_CLOSED, subscribe
			? "replaced by a new subscription before the server answered"
			: "unsubscribed before the server answered");
	}
	if (c->stopping) {
		if (c->wsi && c->connected) {
			lws_callback_on_writable(c->wsi); /* sends the close frame */
			lws_sul_schedule(c->ctx, 0, &c->sul_close, close_now, CLOSE_GRACE_US);
		} else {
			finish(c);
		}
		return;
	}
	if (c->wsi && c->connected && c->out.head)
		lws_callback_on_writable(c->wsi);
}

/* Sends what is queued, as many frames as the socket takes now. */
static int on_writable(struct ag_client *c, struct lws *wsi)
{
	if (c->stopping) {
		static const char bye[] = "client closing";
		lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)bye, sizeof(bye) - 1);
		return -1;
	}
	struct req *r;
	while ((r = list_pop(&c->out))) {
		int n = lws_write(wsi, r->buf + LWS_PRE, r->len, LWS_WRITE_TEXT);
		if (n < (int)r->len) {
			list_push_front(&c->out, r);
			return -1;
		}
		free(r->buf);
		r->buf = NULL;
		if (r->kind == R_UNSUBSCRIBE)
			req_free(r); /* its answer needs no one */
		else
			list_push(&c->sent, r);
		if (lws_send_pipe_choked(wsi))
			break;
	}
	if (c->out.head)
		lws_callback_on_writable(wsi);
	return 0;
}

static int on_receive(struct ag_client *c, struct lws *wsi, const void *in, size_t len)
{
	if (c->rx_len + len > RX_MAX) {
		static const char why[] = "message too large for the client";
		lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)why,
				 sizeof(why) - 1);
		return -1;
	}
	if (c->rx_len + len + 1 > c->rx_cap) {
		size_t cap = c->rx_cap ? c->rx_cap : 65536;
		while (cap < c->rx_len + len + 1)
			cap *= 2;
		unsigned char *b = realloc(c->rx, cap);
		if (!b)
			return -1;
		c->rx = b;
		c->rx_cap = cap;
	}
	memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;
	if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
		return 0;
	size_t n = c->rx_len;
	c->rx_len = 0;
	if (!lws_frame_is_binary(wsi))
		on_message(c, c->rx, n);
	return 0;
}

static void on_established(struct ag_client *c)
{
	c->connected = 1;
	c->attempts = 0;
	c->down_since = 0;
	report(c, AG_CLIENT_CONNECTED, "");
	if (c->sub.active) { /* resume before anything the caller queued */
		struct req *s = subscribe_req(c);
		if (s)
			list_push_front(&c->out, s);
		else
			sub_clear(c, AG_CLIENT_E_NOMEM, "out of memory");
	}
	if (c->out.head && c->wsi)
		lws_callback_on_writable(c->wsi);
}

/* Why an attempt failed, for the state callback; *fatal when retrying cannot help. */
static void connect_error(struct ag_client *c, struct lws *wsi, const char *in, char *why,
			  size_t n, int *fatal)
{
	unsigned status = wsi ? lws_http_client_http_response(wsi) : 0;
	const char *what = in && *in ? in : "connection failed";
	*fatal = 0;
	if (status == 401 || (in && strstr(in, "unauthorized"))) {
		snprintf(why, n, "the server refused the token (401 Unauthorized): pass the "
			 "gateway's token");
		*fatal = 1;
	} else if (status == 403) {
		snprintf(why, n, "the server refused the connection (403 Forbidden: its Host "
			 "check; add the name to server.allowed_hosts)");
		*fatal = 1;
	} else if (status) {
		snprintf(why, n, "%s (HTTP %u)", what, status);
	} else {
		snprintf(why, n, "%s", what);
	}
}

/* Is wsi this client's connection now? Callbacks of one it has let go of (closing it,
 * or already counting it as down) must not touch the next one's state. */
static int current_wsi(const struct ag_client *c, const struct lws *wsi)
{
	return c->wsi && wsi == c->wsi;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		    size_t len)
{
	struct ag_client *c = lws_context_user(lws_get_context(wsi));
	if (!c)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
	case LWS_CALLBACK_CLIENT_RECEIVE:
	case LWS_CALLBACK_CLIENT_WRITEABLE:
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
	case LWS_CALLBACK_CLIENT_CLOSED:
	case LWS_CALLBACK_WSI_DESTROY:
		if (!current_wsi(c, wsi))
			return reason == LWS_CALLBACK_CLIENT_RECEIVE ||
			       reason == LWS_CALLBACK_CLIENT_WRITEABLE ? -1 : 0;
		break;
	default:
		break;
	}
	switch (reason) {
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		if (!c->finished)
			drain_inbox(c);
		return 0;
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		if (c->auth) {
			unsigned char **p = (unsigned char **)in, *end = *p + len;
			if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
							 (unsigned char *)c->auth,
							 (int)strlen(c->auth), p, end))
				return -1;
		}
		return 0;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		if (!c->finished)
			on_established(c);
		return 0;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		return c->finished ? -1 : on_receive(c, wsi, in, len);
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return c->finished ? -1 : on_writable(c, wsi);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (len >= 2) {
			const unsigned char *b = in;
			snprintf(c->close_why, sizeof(c->close_why), "closed by the server (%u%s%.*s)",
				 (unsigned)(b[0] << 8 | b[1]), len > 2 ? ": " : "",
				 (int)(len > 120 ? 118 : len - 2), (const char *)b + 2);
		}
		return 0;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
		char why[300];
		int fatal;
		connect_error(c, wsi, in, why, sizeof(why), &fatal);
		if (!c->finished)
			on_down(c, why, fatal);
		return 0;
	}
	case LWS_CALLBACK_CLIENT_CLOSED:
	case LWS_CALLBACK_WSI_DESTROY: /* the last word on a connection, whatever else came */
		if (!c->finished)
			on_down(c, c->close_why[0] ? c->close_why : "the connection closed", 0);
		return 0;
	default:
		return 0;
	}
}

static const struct lws_protocols protocols[] = {
	{"agentgate-client", callback, 0, 65536, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

static void *service(void *arg)
{
	struct ag_client *c = arg;
	current = c;
	lws_sul_schedule(c->ctx, 0, &c->sul_connect, connect_attempt, 1);
	while (!c->finished)
		if (lws_service(c->ctx, 0) < 0)
			break;
	pthread_mutex_lock(&c->lock);
	c->stopping = 1;
	pthread_mutex_unlock(&c->lock);
	finish(c); /* if lws_service failed: calls still end, once */
	pthread_mutex_lock(&c->lock);
	c->dead = 1; /* no lws_cancel_service from now on */
	pthread_mutex_unlock(&c->lock);
	lws_context_destroy(c->ctx); /* on the thread that serviced it */
	return NULL;
}

static void client_free(struct ag_client *c)
{
	if (!c)
		return;
	free(c->auth);
	free(c->ca_file);
	free(c->rx);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

struct ag_client *ag_client_open(const struct ag_client_opts *o, char *err, size_t errlen)
{
	char scratch[8];
	if (!err || !errlen) {
		err = scratch;
		errlen = sizeof(scratch);
	}
	err[0] = 0;
	if (!o || o->size < offsetof(struct ag_client_opts, keep_lws_log) + sizeof(int)) {
		snprintf(err, errlen, "opts: set opts.size = sizeof(struct ag_client_opts)");
		return NULL;
	}
	struct ag_client *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&c->lock, NULL);
	if (agc_url_parse(o->url, &c->url, err, errlen)) {
		client_free(c);
		return NULL;
	}
	if (o->token && (!*o->token || strpbrk(o->token, "\r\n"))) {
		snprintf(err, errlen, "token: empty or with a line break");
		client_free(c);
		return NULL;
	}
	size_t tl = o->token ? strlen(o->token) + 8 : 0;
	if (tl && (c->auth = malloc(tl)))
		snprintf(c->auth, tl, "Bearer %s", o->token);
	c->on_state = o->on_state;
	c->user = o->user;
	c->backoff_min_ms = o->reconnect_min_ms > 0 ? o->reconnect_min_ms : 100;
	c->backoff_max_ms = o->reconnect_max_ms > 0 ? o->reconnect_max_ms : 5000;
	if (c->backoff_max_ms < c->backoff_min_ms)
		c->backoff_max_ms = c->backoff_min_ms;
	c->give_up_ms = o->give_up_ms > 0 ? o->give_up_ms : 0;
	c->ping_s = o->ping_s > 0 ? o->ping_s : 20;
	c->idle.secs_since_valid_ping = (uint16_t)(c->ping_s > 30000 ? 30000 : c->ping_s);
	c->idle.secs_since_valid_hangup = (uint16_t)(c->ping_s > 15000 ? 30000 : 2 * c->ping_s);
	c->idle.jitter_percent = 0;
	if (c->url.tls)
		c->tls_flags = LCCSCF_USE_SSL |
			       (o->tls_insecure ? LCCSCF_ALLOW_SELFSIGNED | LCCSCF_ALLOW_EXPIRED |
							  LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK
						: 0);
	if (o->tls_ca_file && !(c->ca_file = strdup(o->tls_ca_file))) {
		snprintf(err, errlen, "out of memory");
		client_free(c);
		return NULL;
	}
	atomic_init(&c->next_id, 1);
	atomic_init(&c->last_seq, -1);
	c->rng = (uint32_t)(uintptr_t)c ^ (uint32_t)mono_ms() ^ 0x9e3779b9u;
	if (!c->rng)
		c->rng = 1;
	if (!o->keep_lws_log)
		lws_set_log_level(LLL_ERR, NULL);

	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.user = c;
	info.fd_limit_per_thread = 16;
	info.timeout_secs = 20;
	info.connect_timeout_secs = 10;
	if (c->url.tls) {
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.client_ssl_ca_filepath = c->ca_file;
	}
	c->ctx = lws_create_context(&info);
	if (!c->ctx) {
		snprintf(err, errlen, "libwebsockets could not create a context");
		client_free(c);
		return NULL;
	}
	if (pthread_create(&c->thread, NULL, service, c)) {
		snprintf(err, errlen, "cannot start the client's thread");
		lws_context_destroy(c->ctx);
		client_free(c);
		return NULL;
	}
	return c;
}

/* Hands r to the service thread: from another thread through the inbox and a wake-up
 * (only an empty inbox needs one: a non-empty one has one on its way); from a callback
 * on the service thread itself, at once. */
static int post(struct ag_client *c, struct req *r)
{
	pthread_mutex_lock(&c->lock);
	int rc = c->closing || c->dead ? AG_CLIENT_E_CLOSED : c->failed ? AG_CLIENT_E_FAILED : 0;
	if (!rc) {
		list_push(&c->inbox, r);
		if (c->inbox.head == r && current != c)
			lws_cancel_service(c->ctx);
	}
	pthread_mutex_unlock(&c->lock);
	if (rc) {
		req_free(r);
		return rc;
	}
	if (current == c)
		drain_inbox(c);
	return 0;
}

int ag_client_call(struct ag_client *c, const char *method, const char *params_json,
		   ag_client_result_fn done, void *user)
{
	if (!c)
		return AG_CLIENT_E_INVALID;
	struct req *r = calloc(1, sizeof(*r));
	if (!r)
		return AG_CLIENT_E_NOMEM;
	char err[200];
	r->kind = R_CALL;
	r->id = atomic_fetch_add(&c->next_id, 1);
	r->done = done;
	r->user = user;
	r->buf = (unsigned char *)agc_request(r->id, method, params_json, LWS_PRE, &r->len, err,
					      sizeof(err));
	if (!r->buf) {
		free(r);
		return strstr(err, "out of memory") ? AG_CLIENT_E_NOMEM : AG_CLIENT_E_INVALID;
	}
	return post(c, r);
}

int ag_client_subscribe(struct ag_client *c, const struct ag_client_subscription *s,
			ag_client_result_fn done, void *user)
{
	if (!c || !s || s->size < offsetof(struct ag_client_subscription, user) + sizeof(void *) ||
	    !s->on_event)
		return AG_CLIENT_E_INVALID;
	struct req *r = calloc(1, sizeof(*r));
	if (!r || (s->session_id && !(r->session_id = strdup(s->session_id)))) {
		free(r);
		return AG_CLIENT_E_NOMEM;
	}
	r->kind = R_SUBSCRIBE;
	r->descendants = s->descendants;
	r->since = s->since < 0 ? -1 : s->since;
	r->on_event = s->on_event;
	r->ev_user = s->user;
	r->done = done;
	r->user = user;
	return post(c, r);
}

int ag_client_unsubscribe(struct ag_client *c)
{
	if (!c)
		return AG_CLIENT_E_INVALID;
	struct req *r = calloc(1, sizeof(*r));
	if (!r)
		return AG_CLIENT_E_NOMEM;
	r->kind = R_UNSUBSCRIBE;
	r->id = atomic_fetch_add(&c->next_id, 1);
	return post(c, r);
}

int64_t ag_client_last_seq(struct ag_client *c)
{
	return c ? atomic_load(&c->last_seq) : -1;
}

int ag_client_close(struct ag_client *c)
{
	if (!c)
		return 0;
	if (current == c)
		return AG_CLIENT_E_THREAD;
	pthread_mutex_lock(&c->lock);
	c->closing = 1;
	if (!c->dead)
		lws_cancel_service(c->ctx);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	client_free(c);
	return 0;
}
