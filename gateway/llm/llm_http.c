#include "llm_http.h"
#include "jsonin.h"
#include "jw.h"
#include "container.h"
#include "log.h"
#include "provider_info.h"
#include "sse.h"
#include "wire.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ERRBODY_MAX 65536

/* A watched socket of curl's, kept by descriptor for the life of the llmio: the loop may
 * still hold an event for one that curl just gave up (loop_watch: unwatched, not freed). */
struct sockw {
	struct loop_watch w;
	struct llmio *io;
};

struct llmio {
	struct loop *L;
	CURLM *multi;
	struct timer timeout;   /* curl's own timeout (CURLMOPT_TIMERFUNCTION) */
	struct timer fb_check;  /* the first-byte check, while a transfer waits for one */
	int64_t fb_due;         /* when it fires (monotonic us) */
	struct xfer *active;    /* transfers curl runs */
	struct xfer **ready;    /* transfers with something for their sink, in order */
	size_t nready, capready;
	struct sockw **socks;   /* by descriptor */
	int nsocks;
	int stopping;
};

struct netprov {
	struct llmio *io;
	enum wire_kind kind;
	char name[16];
	char *base_url, *api_key;
	const char *key_env; /* the variable a key comes from (static), named when refused */
	cJSON *headers, *options;
	const struct config *C;
};

/* One attempt. References: the provider interface's (until its end is delivered or it
 * is cancelled), the transfer's (while curl has it), and the ready list's. */
struct xfer {
	int refs;
	int cancelled, queued;
	struct netprov *P;
	const struct llm_sink *sink;
	void *arg;
	char *url, *body, *model;
	struct curl_slist *headers;
	int64_t connect_ms, first_byte_ms;
	CURL *easy;
	struct xfer *next_active;
	struct sse_parser sse;
	struct wire_state ws;
	long status;
	char *errbody;
	size_t errlen;
	int64_t started_us;
	int got_byte;
	int64_t retry_after_ms, retry_after_s; /* the two headers, in ms; -1 if absent */
	char curl_err[CURL_ERROR_SIZE];
	/* what the sink has not been given yet */
	struct jw pend[2];
	int final; /* 1 done, 2 error */
	struct llm_error err;
	char errmsg[600];
	cJSON *calls;
	struct llm_usage usage;
	char finish[32];
};

static void xfer_unref(struct xfer *x)
{
	if (--x->refs)
		return;
	free(x->url);
	free(x->body);
	free(x->model);
	curl_slist_free_all(x->headers);
	sse_free(&x->sse);
	wire_free(&x->ws);
	free(x->errbody);
	jw_free(&x->pend[0]);
	jw_free(&x->pend[1]);
	cJSON_Delete(x->calls);
	free(x);
}

/* ---- handing over to the sink: never from inside a curl callback ----
 * Text and ends gathered while curl reads are given to the sinks once curl has
 * returned, so a sink may cancel, start or end any stream (curl forbids changing its
 * handles from its own callbacks). */

static void queue(struct xfer *x)
{
	struct llmio *io = x->P->io;
	if (x->queued)
		return;
	if (io->nready == io->capready) {
		size_t cap = io->capready ? io->capready * 2 : 64;
		struct xfer **r = realloc(io->ready, cap * sizeof(*r));
		if (!r) {
			log_error("llm: out of memory queueing a stream's text");
			return; /* the text waits in pend for the next read of this stream */
		}
		io->ready = r;
		io->capready = cap;
	}
	x->queued = 1;
	x->refs++;
	io->ready[io->nready++] = x;
}

static void deliver(struct xfer *x)
{
	x->queued = 0;
	for (int k = 1; k >= 0; k--) {
		if (x->pend[k].len && !x->cancelled)
			x->sink->text(x->arg, k, x->pend[k].buf, x->pend[k].len);
		jw_reset(&x->pend[k]);
	}
	if (x->final && !x->cancelled) {
		x->cancelled = 1; /* the attempt is over: nothing more reaches the sink */
		const cJSON *c;
		cJSON_ArrayForEach(c, x->calls)
			x->sink->tool_call(x->arg, cJSON_GetObjectItem(c, "id")->valuestring,
					   cJSON_GetObjectItem(c, "name")->valuestring,
					   cJSON_GetObjectItem(c, "arguments")->valuestring);
		if (x->final == 1)
			x->sink->done(x->arg, x->finish, &x->usage);
		else
			x->sink->error(x->arg, &x->err);
		xfer_unref(x); /* the provider interface's: the attempt has ended */
	}
	xfer_unref(x); /* the ready list's */
}

static void flush(struct llmio *io)
{
	while (io->nready) {
		/* a sink may queue more (another stream's end): take the list as it is */
		struct xfer **r = io->ready;
		size_t n = io->nready;
		io->ready = NULL;
		io->nready = io->capready = 0;
		for (size_t i = 0; i < n; i++)
			deliver(r[i]);
		free(r);
	}
}

/* ---- curl's callbacks ---- */

static void on_text(void *arg, int reasoning, const char *s, size_t n)
{
	struct xfer *x = arg;
	jw_append(&x->pend[reasoning ? 1 : 0], s, n);
	queue(x);
}

static int on_sse(void *arg, const struct sse_event *ev)
{
	struct xfer *x = arg;
	struct wire_out out = {on_text, x};
	int rc = wire_event(&x->ws, ev->type, ev->data, ev->data_len, &out);
	/* past limits.max_output_bytes: stop reading, the transfer is aborted */
	return rc < 0 || x->ws.over_limit ? -1 : 0;
}

/* retry-after-ms wins over retry-after when both come; values that do not parse count
 * as absent, values too large to represent saturate (the supervisor compares them with
 * retry.cap_ms). */
static size_t on_header(char *buf, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n;
	x->got_byte = 1;
	const char *colon = memchr(buf, ':', len);
	if (!colon)
		return len;
	size_t nlen = (size_t)(colon - buf), vlen = len - nlen - 1;
	if (nlen == 14 && !strncasecmp(buf, "retry-after-ms", 14))
		x->retry_after_ms = wire_retry_after_ms(colon + 1, vlen, 1, now_ms());
	else if (nlen == 11 && !strncasecmp(buf, "retry-after", 11))
		x->retry_after_s = wire_retry_after_ms(colon + 1, vlen, 1000, now_ms());
	return len;
}

static size_t on_body(char *buf, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n;
	if (x->cancelled)
		return 0; /* aborts the transfer */
	if (!x->status)
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
	if (x->status >= 300) {
		size_t keep = x->errlen + len > ERRBODY_MAX ? ERRBODY_MAX - x->errlen : len;
		char *b = realloc(x->errbody, x->errlen + keep + 1);
		if (b) {
			memcpy(b + x->errlen, buf, keep);
			x->errbody = b;
			x->errlen += keep;
			b[x->errlen] = 0;
		}
		return len;
	}
	return sse_feed(&x->sse, buf, len) < 0 ? 0 : len;
}

/* ---- the end of a transfer ---- */

static void fail(struct xfer *x, int status, const char *name, int retryable, const char *fmt,
		 const char *detail)
{
	snprintf(x->errmsg, sizeof(x->errmsg), fmt, detail);
	x->err = (struct llm_error){
		.status = status, .name = name, .message = x->errmsg, .retryable = retryable,
		.retry_after_ms = x->retry_after_ms >= 0 ? x->retry_after_ms
				  : x->retry_after_s >= 0 ? x->retry_after_s : 0,
	};
	x->final = 2;
}

static void http_error(struct xfer *x)
{
	char *msg = x->errbody ? wire_error_message(x->errbody, x->errlen) : NULL;
	char detail[560], nokey[120] = "";
	long s = x->status;
	if ((s == 401 || s == 403) && !x->P->api_key) /* refused, and we sent no key */
		snprintf(nokey, sizeof(nokey), "no %s set (nor providers.%s.api_key): ",
			 x->P->key_env, x->P->name);
	snprintf(detail, sizeof(detail), "%s%s (HTTP %ld from %s)", nokey,
		 msg ? msg : "the provider returned an error", x->status, x->P->name);
	free(msg);
	int retry = s == 429 || s == 529 || s == 408 || s >= 500;
	const char *name = s == 401 || s == 403 ? "ProviderAuthError" : "APIError";
	fail(x, (int)s, name, retry, "%s", detail);
	/* the whole body: OpenAI's code says it where the message may not */
	x->err.overflow = x->errbody && wire_context_overflow(x->errbody);
}

static void collect_calls(struct xfer *x)
{
	x->calls = cJSON_CreateArray();
	for (int i = 0; i < wire_tool_count(&x->ws); i++) {
		const struct wire_tool *t = wire_tool_at(&x->ws, i);
		cJSON *c = cJSON_CreateObject();
		char id[32];
		snprintf(id, sizeof(id), "call_%d", i);
		cJSON_AddStringToObject(c, "id", t->id ? t->id : id);
		cJSON_AddStringToObject(c, "name", t->name ? t->name : "");
		cJSON_AddStringToObject(c, "arguments", t->args && *t->args ? t->args : "{}");
		cJSON_AddItemToArray(x->calls, c);
	}
}

/* The transfer ended (rc from curl): decide done or error and queue it for the sink. */
static void finish(struct xfer *x, CURLcode rc)
{
	if (!x->status)
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
	if (x->ws.over_limit) { /* before rc: going over is what aborted the transfer */
		char msg[300];
		llm_output_limit_message(msg, sizeof(msg), (int64_t)x->ws.max_output, x->P->name,
					 x->model);
		fail(x, 0, "APIError", 0, "%s", msg);
	} else if (x->status >= 300) {
		http_error(x);
	} else if (rc != CURLE_OK) {
		fail(x, 0, "APIError", 1, "connection to the provider failed: %s",
		     x->curl_err[0] ? x->curl_err : curl_easy_strerror(rc));
	} else if (x->ws.error[0]) {
		fail(x, x->ws.error_status, "APIError", x->ws.error_retryable,
		     "the provider reported: %s", x->ws.error);
	} else if (!x->ws.finished && !x->ws.finish[0]) {
		fail(x, 0, "APIError", 1, "%s", "the provider closed the stream before it "
		     "finished (connection dropped)");
	} else {
		collect_calls(x);
		x->usage = x->ws.usage;
		snprintf(x->finish, sizeof(x->finish), "%s",
			 wire_tool_count(&x->ws) ? "tool-calls" : x->ws.finish[0] ? x->ws.finish : "stop");
		x->final = 1;
	}
	if (x->ws.malformed)
		log_warn("%s: skipped %d stream line(s) that were not JSON", x->P->name, x->ws.malformed);
	queue(x);
}

static void detach(struct llmio *io, struct xfer *x)
{
	for (struct xfer **pp = &io->active; *pp; pp = &(*pp)->next_active) {
		if (*pp == x) {
			*pp = x->next_active;
			break;
		}
	}
	curl_multi_remove_handle(io->multi, x->easy);
	curl_easy_cleanup(x->easy);
	x->easy = NULL;
	if (!io->active)
		timer_cancel(&io->fb_check);
	xfer_unref(x); /* the transfer's */
}

static void reap(struct llmio *io)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(io->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct xfer *x;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		sse_finish(&x->sse);
		finish(x, m->data.result);
		detach(io, x);
	}
}

/* curl acts on a socket (or its timeout), then what ended is reaped and everything
 * gathered goes to the sinks. */
static void act(struct llmio *io, curl_socket_t fd, int mask)
{
	int running;
	curl_multi_socket_action(io->multi, fd, mask, &running);
	reap(io);
	flush(io);
}

/* The first-byte timer set for due (monotonic us), unless it already fires sooner. */
static void fb_arm(struct llmio *io, int64_t due)
{
	if (timer_armed(&io->fb_check) && io->fb_due <= due)
		return;
	io->fb_due = due;
	timer_arm_us(&io->fb_check, due - mono_us());
}

/* A provider that accepted the connection but sends no byte is a failure too. The
 * timer fires at the first transfer's first-byte deadline and only while some transfer
 * still waits for its first byte: a stream that is flowing costs no wake-up. */
static void check_first_byte(struct timer *t)
{
	struct llmio *io = container_of(t, struct llmio, fb_check);
	int64_t now = mono_us(), next = 0;
	for (struct xfer *x = io->active, *nx; x; x = nx) {
		nx = x->next_active;
		int64_t due = x->started_us + x->first_byte_ms * 1000;
		if (x->got_byte)
			continue;
		if (now < due) {
			next = next && next < due ? next : due;
			continue;
		}
		char detail[64];
		snprintf(detail, sizeof(detail), "%lld ms", (long long)x->first_byte_ms);
		fail(x, 0, "APIError", 1, "no response from the provider within %s", detail);
		queue(x);
		detach(io, x);
	}
	if (next)
		fb_arm(io, next);
	flush(io);
}

/* ---- curl's sockets and timeout on the loop ---- */

static void on_ready(struct loop_watch *w, int ev)
{
	struct sockw *sw = container_of(w, struct sockw, w);
	int mask = (ev & LOOP_IN ? CURL_CSELECT_IN : 0) | (ev & LOOP_OUT ? CURL_CSELECT_OUT : 0) |
		   (ev & LOOP_HUP ? CURL_CSELECT_ERR | CURL_CSELECT_IN : 0);
	act(sw->io, w->fd, mask);
}

static struct sockw *sock_of(struct llmio *io, curl_socket_t s)
{
	if (s >= io->nsocks) {
		int n = s + 64;
		struct sockw **v = realloc(io->socks, (size_t)n * sizeof(*v));
		if (!v)
			return NULL;
		memset(v + io->nsocks, 0, (size_t)(n - io->nsocks) * sizeof(*v));
		io->socks = v;
		io->nsocks = n;
	}
	if (!io->socks[s] && (io->socks[s] = calloc(1, sizeof(struct sockw))))
		io->socks[s]->io = io;
	return io->socks[s];
}

/* CURLMOPT_SOCKETFUNCTION: what curl wants to hear about a socket, as a level-triggered
 * watch in the loop's own epoll set (a token wakes the loop once, and costs the same
 * with 1 stream or 1000). */
static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct llmio *io = userp;
	(void)e;
	(void)socketp;
	struct sockw *sw = sock_of(io, s);
	if (!sw) {
		log_error("llm: out of memory watching a provider socket");
		return -1;
	}
	if (what == CURL_POLL_REMOVE) {
		loop_unwatch(io->L, &sw->w);
		return 0;
	}
	int ev = LOOP_LEVEL | (what & CURL_POLL_IN ? LOOP_IN : 0) |
		 (what & CURL_POLL_OUT ? LOOP_OUT : 0);
	int rc = sw->w.on ? loop_watch_mod(io->L, &sw->w, ev) : loop_watch(io->L, &sw->w, s, ev, on_ready);
	if (rc)
		log_error("llm: cannot watch a provider socket: %s", strerror(errno));
	return rc ? -1 : 0;
}

static void on_timeout(struct timer *t)
{
	act(container_of(t, struct llmio, timeout), CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_TIMERFUNCTION: curl's next timeout; acted on from the loop, never from here. */
static int on_timer(CURLM *m, long timeout_ms, void *userp)
{
	struct llmio *io = userp;
	(void)m;
	if (timeout_ms < 0)
		timer_cancel(&io->timeout);
	else
		timer_arm_us(&io->timeout, timeout_ms ? timeout_ms * 1000 : 1);
	return 0;
}

static void start(struct llmio *io, struct xfer *x)
{
	CURL *e = x->easy;
	curl_easy_setopt(e, CURLOPT_URL, x->url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->curl_err);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)x->connect_ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	x->started_us = mono_us();
	x->next_active = io->active;
	io->active = x;
	x->refs++; /* the transfer's */
	fb_arm(io, x->started_us + x->first_byte_ms * 1000);
	curl_multi_add_handle(io->multi, e);
}

static void global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct llmio *llmio_start(struct loop *L)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, global_init);
	struct llmio *io = calloc(1, sizeof(*io));
	if (!io)
		return NULL;
	io->L = L;
	timer_init(&io->timeout, L, on_timeout);
	timer_init(&io->fb_check, L, check_first_byte);
	io->multi = curl_multi_init();
	if (!io->multi) {
		log_error("llm: cannot create the curl multi handle");
		free(io);
		return NULL;
	}
	curl_multi_setopt(io->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(io->multi, CURLMOPT_SOCKETDATA, io);
	curl_multi_setopt(io->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(io->multi, CURLMOPT_TIMERDATA, io);
	return io;
}

void llmio_stop(struct llmio *io)
{
	if (!io)
		return;
	while (io->active)
		detach(io, io->active);
	flush(io);
	curl_multi_cleanup(io->multi); /* its sockets are unwatched through on_socket */
	timer_cancel(&io->timeout);
	timer_cancel(&io->fb_check);
	for (int i = 0; i < io->nsocks; i++) {
		if (io->socks[i])
			loop_unwatch(io->L, &io->socks[i]->w);
		free(io->socks[i]);
	}
	free(io->socks);
	free(io->ready);
	free(io);
}

/* ---- the provider interface, loop thread ---- */

/* Appends the header line fmt makes; NULL (everything freed) when out of memory. */
__attribute__((format(printf, 2, 3)))
static struct curl_slist *add_header(struct curl_slist *h, const char *fmt, ...)
{
	char *line;
	va_list ap;
	va_start(ap, fmt);
	int n = h ? vasprintf(&line, fmt, ap) : -1;
	va_end(ap);
	if (n < 0) {
		curl_slist_free_all(h);
		return NULL;
	}
	struct curl_slist *grown = curl_slist_append(h, line);
	free(line);
	if (!grown)
		curl_slist_free_all(h);
	return grown;
}

/* The provider's own headers, the configured ones, and the request's (which replace
 * configured ones of the same name; those the provider owns are never taken). */
static struct curl_slist *request_headers(struct netprov *P, const struct llm_request *rq)
{
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	h = add_header(h, "Accept: text/event-stream");
	h = add_header(h, "Expect:"); /* no 100-continue round trip */
	if (P->api_key && *P->api_key)
		h = P->kind == WIRE_OPENAI ? add_header(h, "Authorization: Bearer %s", P->api_key)
					   : add_header(h, "x-api-key: %s", P->api_key);
	if (P->kind == WIRE_ANTHROPIC && !cJSON_GetObjectItem(P->headers, "anthropic-version") &&
	    !cJSON_GetObjectItem(rq->headers, "anthropic-version"))
		h = add_header(h, "anthropic-version: 2023-06-01");
	const cJSON *it;
	cJSON_ArrayForEach(it, P->headers)
		if (cJSON_IsString(it) && !cJSON_GetObjectItem(rq->headers, it->string))
			h = add_header(h, "%s: %s", it->string, it->valuestring);
	cJSON_ArrayForEach(it, rq->headers)
		if (cJSON_IsString(it) && wire_header_allowed(it->string, it->valuestring))
			h = add_header(h, "%s: %s", it->string, it->valuestring);
	return h;
}

static void *net_start(void *self, const struct llm_request *rq, const struct llm_sink *sink,
		       void *arg, struct err *e)
{
	struct netprov *P = self;
	struct xfer *x = calloc(1, sizeof(*x));
	if (!x) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	x->refs = 1; /* the provider interface's */
	x->P = P;
	x->sink = sink;
	x->arg = arg;
	x->connect_ms = P->C->connect_timeout_ms;
	x->first_byte_ms = P->C->first_byte_timeout_ms;
	x->retry_after_ms = x->retry_after_s = -1;
	sse_init(&x->sse, 0, on_sse, x);
	wire_init(&x->ws, P->kind);
	x->ws.max_output = (size_t)P->C->max_output_bytes;
	x->model = strdup(rq->model);
	x->body = wire_request(P->kind, rq, P->options, e);
	const char *path = P->kind == WIRE_OPENAI ? "/chat/completions" : "/v1/messages";
	size_t bl = strlen(P->base_url);
	while (bl && P->base_url[bl - 1] == '/')
		bl--;
	if (asprintf(&x->url, "%.*s%s", (int)bl, P->base_url, path) < 0)
		x->url = NULL;
	x->headers = request_headers(P, rq);
	x->easy = curl_easy_init();
	if (!x->body || !x->url || !x->headers || !x->model || !x->easy) {
		err_set(e, ERR_INTERNAL, "cannot build the %s request", P->name);
		curl_easy_cleanup(x->easy);
		xfer_unref(x);
		return NULL;
	}
	log_debug("session %s: POST %s (%zu bytes)", rq->session_id, x->url, strlen(x->body));
	start(P->io, x);
	return x;
}

/* Never called from inside curl (sinks run after it returned): the handle can go now. */
static void net_cancel(void *self, void *attempt)
{
	struct xfer *x = attempt;
	(void)self;
	x->cancelled = 1;
	if (x->easy)
		detach(x->P->io, x);
	xfer_unref(x); /* the provider interface's */
}

static int net_check_model(void *self, const char *model, struct err *e)
{
	struct netprov *P = self;
	if (!*model) {
		err_set(e, ERR_INVALID, "model \"%s/\" names no model", P->name);
		return -1;
	}
	return 0;
}

static void net_destroy(void *self)
{
	struct netprov *P = self;
	free(P->base_url);
	free(P->api_key);
	cJSON_Delete(P->headers);
	cJSON_Delete(P->options);
	free(P);
}

int llm_http_provider(struct provider *p, struct llmio *io, const char *name,
		      const struct config *C, struct err *e)
{
	int openai = !strcmp(name, "openai");
	struct netprov *P = calloc(1, sizeof(*P));
	if (!P)
		return -1;
	const cJSON *sec = config_provider(C, name);
	const char *key = provider_api_key(C, name);
	P->io = io;
	P->C = C;
	P->kind = openai ? WIRE_OPENAI : WIRE_ANTHROPIC;
	snprintf(P->name, sizeof(P->name), "%s", name);
	P->base_url = strdup(provider_base_url(C, name));
	P->api_key = key ? strdup(key) : NULL;
	struct provider_info pi;
	P->key_env = provider_info_of(C, name, &pi) ? "the API key" : pi.env;
	P->headers = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(sec, "headers"), 1);
	P->options = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(sec, "options"), 1);
	*p = (struct provider){
		.name = openai ? "openai" : "anthropic", .self = P, .start = net_start,
		.cancel = net_cancel, .check_model = net_check_model, .destroy = net_destroy,
	};
	(void)e;
	return 0;
}
