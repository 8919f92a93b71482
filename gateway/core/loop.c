#include "loop.h"
#include "log.h"

#include <libwebsockets.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

struct loop_msg {
	struct loop_msg *next;
	void (*fn)(void *arg);
	void *arg;
};

struct loop {
	struct lws_context *ctx;
	void *user;
	atomic_int stop;
	pthread_mutex_t lock;
	struct loop_msg *head, *tail;
	struct lws_protocols *protocols;
	void (*on_signal)(void *arg, int signo);
	void *signal_arg;
	pthread_t thread; /* the loop's: its creator, which runs it */
	int epfd; /* the watched descriptors; lws owns it once adopted */
	struct timerq timers;
	struct loop_watch tw; /* the timerfd, in the watch set */
	int64_t tfd_due;      /* what the timerfd is set to (ns), 0: disarmed */
	struct timer *slack;  /* timers armed with slack (a short list) */
	atomic_int lazy;      /* the inbox holds lazy posts */
};

static struct loop *signal_loop;
static volatile sig_atomic_t signal_pending;

static void signal_handler(int signo)
{
	signal_pending = signo;
	if (signal_loop)
		lws_cancel_service(signal_loop->ctx);
}

void loop_on_signal(struct loop *L, void (*fn)(void *arg, int signo), void *arg)
{
	L->on_signal = fn;
	L->signal_arg = arg;
	signal_loop = L;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = signal_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void loop_drain(struct loop *L)
{
	pthread_mutex_lock(&L->lock);
	struct loop_msg *m = L->head;
	L->head = L->tail = NULL;
	pthread_mutex_unlock(&L->lock);
	while (m) {
		struct loop_msg *next = m->next;
		m->fn(m->arg);
		free(m);
		m = next;
	}
}

static void timers_run(struct loop *L);

static void watch_fire(struct loop *L)
{
	struct epoll_event ev[64];
	int n, timers = 0;
	do {
		n = epoll_wait(L->epfd, ev, 64, 0);
		for (int i = 0; i < n; i++) {
			struct loop_watch *w = ev[i].data.ptr;
			uint32_t e = ev[i].events;
			if (w == &L->tw)
				timers = 1; /* after the batch: a timer may free a watch in it */
			else if (w->on)
				w->fn(w, (e & EPOLLIN ? LOOP_IN : 0) | (e & EPOLLOUT ? LOOP_OUT : 0) |
					 (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR) ? LOOP_HUP : 0));
		}
	} while (n == 64);
	if (timers)
		timers_run(L);
}

/* One epoll set holds every watched descriptor, and lws polls that set as a raw file:
 * a watch costs two system calls in its lifetime and nothing while idle. */
static int watch_set(struct loop *L)
{
	if (L->epfd >= 0)
		return 0;
	int fd = epoll_create1(EPOLL_CLOEXEC);
	if (fd < 0)
		return -1;
	lws_sock_file_fd_type u;
	u.filefd = fd;
	struct lws_vhost *vh = lws_get_vhost_by_name(L->ctx, "default");
	if (!vh || !lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, u, "agentgate-inbox",
					       NULL)) {
		close(fd);
		errno = ENOTSUP;
		return -1;
	}
	L->epfd = fd;
	return 0;
}

int loop_watch(struct loop *L, struct loop_watch *w, int fd, int ev_mask,
	       void (*fn)(struct loop_watch *w, int ev))
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET |
					   (ev_mask & LOOP_OUT ? EPOLLOUT : 0u),
				 .data.ptr = w};
	if (w->on)
		return 0;
	if (watch_set(L) || epoll_ctl(L->epfd, EPOLL_CTL_ADD, fd, &ev))
		return -1;
	w->fn = fn;
	w->fd = fd;
	w->on = 1;
	return 0;
}

void loop_unwatch(struct loop *L, struct loop_watch *w)
{
	if (!w->on)
		return;
	w->on = 0;
	epoll_ctl(L->epfd, EPOLL_CTL_DEL, w->fd, NULL);
}

static int inbox_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user,
		    void *in, size_t len)
{
	struct loop *L = lws_context_user(lws_get_context(wsi));
	if (reason == LWS_CALLBACK_RAW_RX_FILE && L && L->epfd >= 0) {
		watch_fire(L);
		return 0;
	}
	if (reason != LWS_CALLBACK_EVENT_WAIT_CANCELLED)
		return 0;
	/* Delivered once per vhost protocol; the first call empties the queue. */
	if (!L)
		return 0;
	int signo = signal_pending;
	if (signo && L->on_signal) {
		signal_pending = 0;
		L->on_signal(L->signal_arg, signo);
	}
	loop_drain(L);
	return 0;
}

static struct lws_protocols *build_protocols(const struct lws_protocols *extra)
{
	size_t n = 0;
	while (extra && extra[n].name)
		n++;
	struct lws_protocols *p = calloc(n + 2, sizeof(*p));
	if (!p)
		return NULL;
	if (n)
		memcpy(p, extra, n * sizeof(*p));
	p[n].name = "agentgate-inbox";
	p[n].callback = inbox_cb;
	return p;
}

struct loop *loop_create(const struct loop_config *cfg)
{
	struct loop *L = calloc(1, sizeof(*L));
	if (!L)
		return NULL;
	pthread_mutex_init(&L->lock, NULL);
	L->thread = pthread_self();
	L->user = cfg->user;
	L->epfd = -1;
	L->tw.fd = -1;
	L->protocols = build_protocols(cfg->protocols);
	if (!L->protocols)
		goto fail;
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = cfg->port < 0 ? CONTEXT_PORT_NO_LISTEN : cfg->port;
	info.iface = cfg->iface;
	info.protocols = L->protocols;
	info.mounts = cfg->mounts;
	info.headers = cfg->headers;
	info.user = L;
	lws_set_log_level(LLL_ERR, NULL); /* lws's own chatter; ours goes through log.h */
	info.retry_and_idle_policy = cfg->retry;
	info.options = cfg->options;
	info.max_http_header_pool2 = (unsigned)(cfg->header_pool > 0 ? cfg->header_pool : 64);
	info.max_http_header_data2 = (unsigned)cfg->header_bytes;
	info.timeout_secs_ah_idle = (unsigned)cfg->head_timeout_s;
	info.keepalive_timeout = cfg->keepalive_s;
	L->ctx = lws_create_context(&info);
	if (!L->ctx) {
		log_error("loop: cannot create the libwebsockets context (port %d)", cfg->port);
		goto fail;
	}
	return L;
fail:
	free(L->protocols);
	pthread_mutex_destroy(&L->lock);
	free(L);
	return NULL;
}

void loop_destroy(struct loop *L)
{
	if (!L)
		return;
	if (signal_loop == L)
		signal_loop = NULL;
	lws_context_destroy(L->ctx);
	if (L->tw.fd >= 0)
		close(L->tw.fd);
	loop_drain(L); /* callbacks posted during teardown still free what they carry */
	free(L->protocols);
	pthread_mutex_destroy(&L->lock);
	free(L);
}

struct lws_context *loop_lws(struct loop *L)
{
	return L->ctx;
}

void *loop_user(struct loop *L)
{
	return L->user;
}

int loop_is_current(struct loop *L)
{
	return pthread_equal(L->thread, pthread_self());
}

static void slack_run(struct loop *L);

int loop_service(struct loop *L)
{
	int rc = lws_service(L->ctx, 0);
	if (atomic_exchange_explicit(&L->lazy, 0, memory_order_acquire))
		loop_drain(L);
	slack_run(L);
	return rc;
}

int loop_run(struct loop *L)
{
	while (!atomic_load(&L->stop))
		if (loop_service(L) < 0)
			break;
	return 0;
}

void loop_stop(struct loop *L)
{
	atomic_store(&L->stop, 1);
	lws_cancel_service(L->ctx);
}

static int post(struct loop *L, void (*fn)(void *arg), void *arg, int lazy)
{
	struct loop_msg *m = malloc(sizeof(*m));
	if (!m)
		return -1;
	m->next = NULL;
	m->fn = fn;
	m->arg = arg;
	pthread_mutex_lock(&L->lock);
	/* a non-empty inbox already has a wake-up on its way, unless it holds lazy posts
	 * alone (the flag is cleared before the inbox is drained) */
	int wake = !lazy && (!L->head || atomic_load(&L->lazy));
	if (L->tail)
		L->tail->next = m;
	else
		L->head = m;
	L->tail = m;
	if (lazy)
		atomic_store_explicit(&L->lazy, 1, memory_order_release);
	pthread_mutex_unlock(&L->lock);
	if (wake)
		lws_cancel_service(L->ctx);
	return 0;
}

int loop_post(struct loop *L, void (*fn)(void *arg), void *arg)
{
	return post(L, fn, arg, 0);
}

int loop_post_lazy(struct loop *L, void (*fn)(void *arg), void *arg)
{
	return post(L, fn, arg, 1);
}

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void tfd_noop(struct loop_watch *w, int ev)
{
	(void)w;
	(void)ev; /* never called: watch_fire runs the timers itself */
}

/* The timerfd, made and watched on first use. */
static int tfd_open(struct loop *L)
{
	if (L->tw.fd >= 0)
		return 0;
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (fd < 0)
		return -1;
	if (loop_watch(L, &L->tw, fd, LOOP_IN, tfd_noop)) {
		close(fd);
		return -1;
	}
	return 0;
}

static void tfd_set(struct loop *L, int64_t due)
{
	struct itimerspec its = {.it_value = {.tv_sec = due / 1000000000,
					      .tv_nsec = due % 1000000000}};
	if (timerfd_settime(L->tw.fd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
		L->tfd_due = due;
	else
		log_error("loop: cannot set the timer: %s", strerror(errno));
}

/* Sets the timerfd to the first deadline when it would otherwise wake later (or not
 * at all). */
static void tfd_update(struct loop *L)
{
	struct tq_node *first = tq_first(&L->timers);
	if (!first || (L->tfd_due && L->tfd_due <= first->due) || tfd_open(L))
		return;
	tfd_set(L, first->due > 0 ? first->due : 1);
}

/* The timer the timerfd was set for moved or is gone: set it to the first deadline, or
 * disarm it, rather than wake for nothing. */
static void tfd_moved(struct loop *L)
{
	struct tq_node *first = tq_first(&L->timers);
	if (first && first->due == L->tfd_due)
		return;
	tfd_set(L, first ? (first->due > 0 ? first->due : 1) : 0);
}

/* Runs every timer that is due; each may arm or cancel timers, its own included. */
static void timers_run(struct loop *L)
{
	uint64_t ticks;
	while (read(L->tw.fd, &ticks, sizeof(ticks)) > 0)
		;
	L->tfd_due = 0;
	int64_t now = mono_ns();
	struct tq_node *n;
	while ((n = tq_first(&L->timers)) && n->due <= now) {
		struct timer *t = container_of(n, struct timer, node);
		timer_cancel(t);
		t->fn(t);
	}
	tfd_update(L);
}

/* The timers with slack whose window opened before this wake-up's end fire now. One
 * armed meanwhile (its window opens at or after now) waits for the next wake-up. */
static void slack_run(struct loop *L)
{
	if (!L->slack)
		return;
	int64_t now = mono_ns();
	for (struct timer *t = L->slack; t;) {
		if (t->early >= now) {
			t = t->snext;
			continue;
		}
		timer_cancel(t);
		t->fn(t);
		t = L->slack; /* fn may arm or cancel any timer: start over */
	}
}

static void slack_unlink(struct timer *t)
{
	if (!t->early)
		return;
	struct timer **pp = &t->L->slack;
	while (*pp && *pp != t)
		pp = &(*pp)->snext;
	if (*pp)
		*pp = t->snext;
	t->early = 0;
	t->snext = NULL;
}

void timer_init(struct timer *t, struct loop *L, void (*fn)(struct timer *t))
{
	memset(t, 0, sizeof(*t));
	t->L = L;
	t->fn = fn;
}

/* Was the timerfd set for this timer? */
static int tfd_for(const struct timer *t)
{
	return t->node.queued && t->node.due == t->L->tfd_due;
}

void timer_arm_us(struct timer *t, int64_t us)
{
	int moved = tfd_for(t);
	slack_unlink(t);
	tq_insert(&t->L->timers, &t->node, mono_ns() + (us < 1 ? 1 : us) * 1000);
	if (moved)
		tfd_moved(t->L);
	else
		tfd_update(t->L);
}

void timer_arm_slack(struct timer *t, int64_t ms, int64_t slack_ms)
{
	timer_arm(t, ms + slack_ms);
	t->early = mono_ns() + (ms < 0 ? 0 : ms) * 1000000;
	if (!t->early)
		t->early = 1;
	t->snext = t->L->slack;
	t->L->slack = t;
}

void timer_arm(struct timer *t, int64_t ms)
{
	timer_arm_us(t, ms * 1000);
}

void timer_cancel(struct timer *t)
{
	if (!t->L)
		return;
	int moved = tfd_for(t);
	tq_remove(&t->L->timers, &t->node);
	slack_unlink(t);
	if (moved)
		tfd_moved(t->L);
}

int timer_armed(const struct timer *t)
{
	return t->node.queued;
}
