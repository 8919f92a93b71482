#include "llm_http.h"
#include "jsonin.h"
#include "jw.h"
#include "log.h"
#include "provider_info.h"
#include "sse.h"
#include "wire.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Text waiting for the loop before a transfer pauses; AGENTGATE_LLM_PENDING_MAX changes it
 * (tests make it tiny so pause/resume happens all the time). */
#define PENDING_MAX (1024 * 1024)
static size_t pending_max = PENDING_MAX;
#define ERRBODY_MAX 65536

enum cmd_kind { CMD_START, CMD_CANCEL, CMD_RESUME };

struct xfer;

struct cmd {
	struct cmd *next;
	enum cmd_kind kind;
	struct xfer *x;
};

struct llmio {
	struct loop *L;
	CURLM *multi;
	int ep, wake_fd;      /* epoll set of curl's sockets, and the inbox's eventfd */
	int64_t deadline_us;  /* curl's next timeout (monotonic), or -1 */
	int64_t fb_due_us;    /* the first first-byte deadline to check (monotonic), or 0 */
	int64_t round_us;     /* when the last round that read a socket began, or 0 */
	pthread_t th;
	pthread_mutex_t lock;
	struct cmd *head, *tail;
	atomic_int stop;
	atomic_uint pauses;  /* transfers paused for a loop that fell behind, ever */
	struct xfer *active; /* I/O thread only */
	/* xfers with something for the loop, handed over once per poll round (I/O thread) */
	struct xfer **ready;
	size_t nready, capready;
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

struct xfer {
	atomic_int refs;          /* the loop's, the I/O thread's, and one per pending post */
	atomic_int cancelled;
	struct netprov *P;
	const struct llm_sink *sink;
	void *arg;
	char *url, *body, *model;
	struct curl_slist *headers;
	int64_t connect_ms, first_byte_ms;
	/* I/O thread */
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
	/* handed from the I/O thread to the loop, under lock */
	pthread_mutex_t lock;
	struct jw pend[2];
	int posted, paused, final; /* final: 1 done, 2 error */
	struct llm_error err;
	char errmsg[600];
	cJSON *calls;
	struct llm_usage usage;
	char finish[32];
};

static void xfer_unref(struct xfer *x)
{
	if (atomic_fetch_sub(&x->refs, 1) != 1)
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
	pthread_mutex_destroy(&x->lock);
	free(x);
}

/* Queues a command for the I/O thread. Cancel and resume carry a reference of their own
 * (taken here, dropped by run_cmds); start carries the I/O thread's. */
static void send_cmd(struct llmio *io, enum cmd_kind kind, struct xfer *x)
{
	struct cmd *c = calloc(1, sizeof(*c));
	if (!c) {
		log_error("llm: out of memory queueing a command for the I/O thread");
		return;
	}
	if (kind != CMD_START)
		atomic_fetch_add(&x->refs, 1);
	c->kind = kind;
	c->x = x;
	pthread_mutex_lock(&io->lock);
	if (io->tail)
		io->tail->next = c;
	else
		io->head = c;
	io->tail = c;
	pthread_mutex_unlock(&io->lock);
	uint64_t one = 1;
	if (write(io->wake_fd, &one, sizeof(one)) < 0)
		log_warn("llm: cannot wake the I/O thread");
}

/* ---- loop thread: what the I/O thread handed over ---- */

static void deliver(void *arg)
{
	struct xfer *x = arg;
	struct jw pend[2];
	pthread_mutex_lock(&x->lock);
	pend[0] = x->pend[0];
	pend[1] = x->pend[1];
	jw_init(&x->pend[0]);
	jw_init(&x->pend[1]);
	int final = x->final, resume = x->paused && !final;
	x->posted = 0;
	x->paused = 0;
	pthread_mutex_unlock(&x->lock);
	for (int k = 1; k >= 0; k--)
		if (pend[k].len && !atomic_load(&x->cancelled))
			x->sink->text(x->arg, k, pend[k].buf, pend[k].len);
	jw_free(&pend[0]);
	jw_free(&pend[1]);
	int live = !atomic_load(&x->cancelled); /* a sink callback may have cancelled */
	if (live && resume)
		send_cmd(x->P->io, CMD_RESUME, x);
	if (live && final) {
		atomic_store(&x->cancelled, 1); /* the attempt is over: nothing more reaches the sink */
		const cJSON *c;
		cJSON_ArrayForEach(c, x->calls)
			x->sink->tool_call(x->arg, cJSON_GetObjectItem(c, "id")->valuestring,
					   cJSON_GetObjectItem(c, "name")->valuestring,
					   cJSON_GetObjectItem(c, "arguments")->valuestring);
		if (final == 1)
			x->sink->done(x->arg, x->finish, &x->usage);
		else
			x->sink->error(x->arg, &x->err);
		xfer_unref(x); /* the loop's reference: the attempt has ended */
	}
	xfer_unref(x); /* this post's */
}

struct batch {
	size_t n;
	struct xfer *x[];
};

static void deliver_batch(void *arg)
{
	struct batch *b = arg;
	for (size_t i = 0; i < b->n; i++)
		deliver(b->x[i]);
	free(b);
}

/* I/O thread, with x->lock held: make sure a delivery is on its way. Deliveries are
 * gathered and handed to the loop once per poll round (flush_ready), so a busy round
 * with many streams wakes the loop once, not once per stream. */
static void post_locked(struct xfer *x)
{
	struct llmio *io = x->P->io;
	if (x->posted)
		return;
	if (io->nready == io->capready) {
		size_t cap = io->capready ? io->capready * 2 : 64;
		struct xfer **r = realloc(io->ready, cap * sizeof(*r));
		if (!r)
			return;
		io->ready = r;
		io->capready = cap;
	}
	x->posted = 1;
	atomic_fetch_add(&x->refs, 1);
	io->ready[io->nready++] = x;
}

static void flush_ready(struct llmio *io)
{
	if (!io->nready)
		return;
	struct batch *b = malloc(sizeof(*b) + io->nready * sizeof(b->x[0]));
	if (b) {
		b->n = io->nready;
		memcpy(b->x, io->ready, io->nready * sizeof(b->x[0]));
		if (loop_post(io->L, deliver_batch, b) == 0) {
			io->nready = 0;
			return;
		}
		free(b);
	}
	/* out of memory: try again next round (the xfers stay marked as posted) */
}

/* ---- I/O thread: the transfer ---- */

static void on_text(void *arg, int reasoning, const char *s, size_t n)
{
	struct xfer *x = arg;
	pthread_mutex_lock(&x->lock);
	jw_append(&x->pend[reasoning ? 1 : 0], s, n);
	post_locked(x);
	pthread_mutex_unlock(&x->lock);
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
	if (atomic_load(&x->cancelled))
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
	pthread_mutex_lock(&x->lock);
	int full = x->pend[0].len + x->pend[1].len > pending_max;
	if (full)
		x->paused = 1;
	pthread_mutex_unlock(&x->lock);
	if (full) {
		atomic_fetch_add(&x->P->io->pauses, 1);
		return CURL_WRITEFUNC_PAUSE; /* the loop resumes us once it has caught up */
	}
	return sse_feed(&x->sse, buf, len) < 0 ? 0 : len;
}

static void fail_locked(struct xfer *x, int status, const char *name, int retryable,
			const char *fmt, const char *detail)
{
	snprintf(x->errmsg, sizeof(x->errmsg), fmt, detail);
	x->err = (struct llm_error){
		.status = status, .name = name, .message = x->errmsg, .retryable = retryable,
		.retry_after_ms = x->retry_after_ms >= 0 ? x->retry_after_ms
				  : x->retry_after_s >= 0 ? x->retry_after_s : 0,
	};
	x->final = 2;
}

static void http_error_locked(struct xfer *x)
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
	fail_locked(x, (int)s, name, retry, "%s", detail);
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

/* The transfer ended (rc from curl): decide done or error and hand it to the loop. */
static void finish(struct xfer *x, CURLcode rc)
{
	if (!x->status)
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
	pthread_mutex_lock(&x->lock);
	if (x->ws.over_limit) { /* before rc: going over is what aborted the transfer */
		char msg[300];
		llm_output_limit_message(msg, sizeof(msg), (int64_t)x->ws.max_output, x->P->name,
					 x->model);
		fail_locked(x, 0, "APIError", 0, "%s", msg);
	} else if (x->status >= 300) {
		http_error_locked(x);
	} else if (rc != CURLE_OK) {
		fail_locked(x, 0, "APIError", 1, "connection to the provider failed: %s",
			    x->curl_err[0] ? x->curl_err : curl_easy_strerror(rc));
	} else if (x->ws.error[0]) {
		fail_locked(x, x->ws.error_status, "APIError", x->ws.error_retryable,
			    "the provider reported: %s", x->ws.error);
	} else if (!x->ws.finished && !x->ws.finish[0]) {
		fail_locked(x, 0, "APIError", 1, "%s", "the provider closed the stream before "
			    "it finished (connection dropped)");
	} else {
		collect_calls(x);
		x->usage = x->ws.usage;
		snprintf(x->finish, sizeof(x->finish), "%s",
			 wire_tool_count(&x->ws) ? "tool-calls" : x->ws.finish[0] ? x->ws.finish : "stop");
		x->final = 1;
	}
	if (x->ws.malformed)
		log_warn("%s: skipped %d stream line(s) that were not JSON", x->P->name, x->ws.malformed);
	post_locked(x);
	pthread_mutex_unlock(&x->lock);
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
	xfer_unref(x); /* the I/O thread's reference */
}

static void start(struct llmio *io, struct xfer *x)
{
	if (atomic_load(&x->cancelled) || !(x->easy = curl_easy_init())) {
		xfer_unref(x);
		return;
	}
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
	int64_t due = x->started_us + x->first_byte_ms * 1000;
	if (!io->fb_due_us || due < io->fb_due_us)
		io->fb_due_us = due;
	x->next_active = io->active;
	io->active = x;
	curl_multi_add_handle(io->multi, e);
}

/* Unpausing hands curl's held data to on_body at once; if that fails (the output limit
 * was passed, or the attempt was cancelled) curl reports it here and not through the
 * multi handle, so the transfer ends here. */
static void resume(struct llmio *io, struct xfer *x)
{
	CURLcode rc = curl_easy_pause(x->easy, CURLPAUSE_CONT);
	if (rc == CURLE_OK)
		return;
	finish(x, rc);
	detach(io, x);
}

static void run_cmds(struct llmio *io)
{
	pthread_mutex_lock(&io->lock);
	struct cmd *c = io->head;
	io->head = io->tail = NULL;
	pthread_mutex_unlock(&io->lock);
	while (c) {
		struct cmd *next = c->next;
		if (c->kind == CMD_START)
			start(io, c->x);
		else if (c->kind == CMD_CANCEL && c->x->easy)
			detach(io, c->x);
		else if (c->kind == CMD_RESUME && c->x->easy)
			resume(io, c->x);
		if (c->kind != CMD_START)
			xfer_unref(c->x); /* the command's reference */
		free(c);
		c = next;
	}
}

/* A provider that accepted the connection but sends no byte is a failure too. The
 * thread wakes for that at the first transfer's first-byte deadline (fb_due_us), and
 * only while some transfer still waits for its first byte: a flowing stream and an
 * idle gateway cost no wake-up. A deadline met by a byte leaves a stale wake that finds
 * nothing to do and sets the next one. */
static void check_first_byte(struct llmio *io)
{
	int64_t now = mono_us();
	if (!io->fb_due_us || now < io->fb_due_us)
		return;
	io->fb_due_us = 0;
	for (struct xfer *x = io->active, *next; x; x = next) {
		next = x->next_active;
		int64_t due = x->started_us + x->first_byte_ms * 1000;
		if (x->got_byte)
			continue;
		if (now < due) {
			if (!io->fb_due_us || due < io->fb_due_us)
				io->fb_due_us = due;
			continue;
		}
		pthread_mutex_lock(&x->lock);
		char detail[64];
		snprintf(detail, sizeof(detail), "%lld ms", (long long)x->first_byte_ms);
		fail_locked(x, 0, "APIError", 1, "no response from the provider within %s", detail);
		post_locked(x);
		pthread_mutex_unlock(&x->lock);
		detach(io, x);
	}
}

/* curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION): kept in an epoll set
 * so a wake-up costs the same with 1 stream or 500 (curl_multi_poll is poll(2), which
 * scans every connection on every wake-up). */
static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct llmio *io = userp;
	if (what == CURL_POLL_REMOVE) {
		epoll_ctl(io->ep, EPOLL_CTL_DEL, s, NULL);
		return 0;
	}
	struct epoll_event ev = {.data.fd = s};
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if (epoll_ctl(io->ep, socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev) && errno == EEXIST)
		epoll_ctl(io->ep, EPOLL_CTL_MOD, s, &ev);
	curl_multi_assign(io->multi, s, io);
	return 0;
}

static int on_timer(CURLM *m, long timeout_ms, void *userp)
{
	struct llmio *io = userp;
	io->deadline_us = timeout_ms < 0 ? -1 : mono_us() + timeout_ms * 1000;
	return 0;
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

/* How long to sleep: until curl's timeout or the first first-byte deadline, whichever
 * comes first; without either, until something happens (-1). */
static int wait_ms(struct llmio *io)
{
	int64_t due = io->deadline_us;
	if (io->fb_due_us && (due < 0 || io->fb_due_us < due))
		due = io->fb_due_us;
	if (due < 0)
		return -1;
	int64_t left = (due - mono_us() + 999) / 1000;
	return left <= 0 ? 0 : left > 3600000 ? 3600000 : (int)left;
}

/* Under load, rounds that read sockets begin at most every LLM_ROUND_MIN_US: what
 * arrives meanwhile is read and handed to the loop together, so a token costs a share of
 * a recv and a wake-up instead of one of each (measured: 4.2 -> 2.4 us of server CPU
 * per token with 20 streams at full speed). A token waits at most that long more; when
 * rounds are further apart than that, nothing waits — and a lone stream, whose next
 * token is not there yet, goes straight back to sleep in epoll_wait: the pause is taken
 * only when something is already waiting to be read. */
#define LLM_ROUND_MIN_US 200

/* epoll_wait, after the pause above when sockets are ready within it. */
static int wait_round(struct llmio *io, struct epoll_event *evs, int max)
{
	int64_t wait = io->round_us ? io->round_us + LLM_ROUND_MIN_US - mono_us() : 0;
	if (wait <= 0)
		return epoll_wait(io->ep, evs, max, wait_ms(io));
	int n = epoll_wait(io->ep, evs, max, 0);
	if (n == 0)
		return epoll_wait(io->ep, evs, max, wait_ms(io));
	if (n < 0)
		return n;
	/* level-triggered: what is ready stays ready while more gathers */
	struct timespec ts = {0, (long)wait * 1000L};
	nanosleep(&ts, NULL);
	return epoll_wait(io->ep, evs, max, 0);
}

static void io_round(struct llmio *io)
{
	struct epoll_event evs[64];
	int running, n = wait_round(io, evs, 64);
	int64_t began = mono_us();
	io->round_us = 0;
	for (int i = 0; i < n; i++) {
		int fd = evs[i].data.fd;
		if (fd == io->wake_fd) {
			uint64_t v;
			if (read(io->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				log_warn("llm: reading the wake-up eventfd: %s", strerror(errno));
			continue;
		}
		int mask = (evs[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
			   (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
			   (evs[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
		curl_multi_socket_action(io->multi, fd, mask, &running);
		io->round_us = began;
	}
	if (io->deadline_us >= 0 && mono_us() >= io->deadline_us) {
		io->deadline_us = -1;
		curl_multi_socket_action(io->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
}

static void *io_main(void *arg)
{
	struct llmio *io = arg;
	while (!atomic_load(&io->stop)) {
		run_cmds(io);
		flush_ready(io);
		io_round(io);
		reap(io);
		check_first_byte(io);
	}
	while (io->active)
		detach(io, io->active);
	run_cmds(io);
	flush_ready(io);
	return NULL;
}

static void global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const char *pm = getenv("AGENTGATE_LLM_PENDING_MAX");
	if (pm && atol(pm) > 0)
		pending_max = (size_t)atol(pm);
}

static void llmio_free(struct llmio *io)
{
	if (io->multi)
		curl_multi_cleanup(io->multi);
	if (io->ep >= 0)
		close(io->ep);
	if (io->wake_fd >= 0)
		close(io->wake_fd);
	pthread_mutex_destroy(&io->lock);
	free(io->ready);
	free(io);
}

struct llmio *llmio_start(struct loop *L)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, global_init);
	struct llmio *io = calloc(1, sizeof(*io));
	if (!io)
		return NULL;
	io->L = L;
	io->deadline_us = -1;
	pthread_mutex_init(&io->lock, NULL);
	io->multi = curl_multi_init();
	io->ep = epoll_create1(EPOLL_CLOEXEC);
	io->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = io->wake_fd};
	if (!io->multi || io->ep < 0 || io->wake_fd < 0 ||
	    epoll_ctl(io->ep, EPOLL_CTL_ADD, io->wake_fd, &ev))
		goto fail;
	curl_multi_setopt(io->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(io->multi, CURLMOPT_SOCKETDATA, io);
	curl_multi_setopt(io->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(io->multi, CURLMOPT_TIMERDATA, io);
	if (pthread_create(&io->th, NULL, io_main, io))
		goto fail;
	pthread_setname_np(io->th, "ag-llm-io");
	return io;
fail:
	log_error("llm: cannot start the LLM I/O thread");
	llmio_free(io);
	return NULL;
}

void llmio_stop(struct llmio *io)
{
	if (!io)
		return;
	atomic_store(&io->stop, 1);
	uint64_t one = 1;
	if (write(io->wake_fd, &one, sizeof(one)) < 0)
		log_warn("llm: cannot wake the I/O thread to stop it");
	pthread_join(io->th, NULL);
	llmio_free(io);
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
	atomic_init(&x->refs, 2);
	pthread_mutex_init(&x->lock, NULL);
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
	if (!x->body || !x->url || !x->headers || !x->model) {
		err_set(e, ERR_INTERNAL, "cannot build the %s request", P->name);
		atomic_store(&x->refs, 1);
		xfer_unref(x);
		return NULL;
	}
	log_debug("session %s: POST %s (%zu bytes)", rq->session_id, x->url, strlen(x->body));
	send_cmd(P->io, CMD_START, x);
	return x;
}

static void net_cancel(void *self, void *attempt)
{
	struct xfer *x = attempt;
	atomic_store(&x->cancelled, 1);
	send_cmd(x->P->io, CMD_CANCEL, x);
	xfer_unref(x); /* the loop's */
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

unsigned llmio_pauses(struct llmio *io)
{
	return atomic_load(&io->pauses);
}
