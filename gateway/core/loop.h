/* loop: the one service thread. It owns the libwebsockets context; everything with
 * state (sessions, store, timers, hooks) runs here. Other threads hand work in with
 * loop_post(), which queues a callback and wakes the loop through lws_cancel_service();
 * the queue is drained in LWS_CALLBACK_EVENT_WAIT_CANCELLED. */
#ifndef AG_LOOP_H
#define AG_LOOP_H
#include <stdint.h>

#include "container.h"
#include "timerq.h"

/* libwebsockets' types stay behind this header: only loop.c and net/ include lws. */
struct loop;
struct lws_context;
struct lws_protocols;
struct lws_http_mount;
struct lws_protocol_vhost_options;
struct lws_retry_bo;

struct loop_config {
	int port;                 /* < 0: no listening socket (agentgate run) */
	const char *iface;        /* bind address, NULL = all */
	/* Server protocols (terminated by a zeroed entry) or NULL; the loop adds its own. */
	const struct lws_protocols *protocols;
	const struct lws_http_mount *mounts;
	const struct lws_protocol_vhost_options *headers; /* extra response headers */
	void *user;               /* returned by loop_user() */
	const struct lws_retry_bo *retry; /* idle policy: WS ping / hang-up, or NULL */
	uint64_t options;         /* extra LWS_SERVER_OPTION_* bits */
	/* Request heads being read at once (0: 64). A connection waiting for one is not
	 * read at all and is reset after 5 s, so a server sizes this above its own
	 * connection limit. */
	int header_pool;
	int header_bytes;         /* the longest request head lws can read (0: 4096) */
	/* Seconds a connection may take to send its request head (0: lws's 10 s). */
	int head_timeout_s;
	/* Seconds an idle HTTP/1.1 connection is kept for its next request (0: lws's 5). */
	int keepalive_s;
};

/* Creates the context; NULL on failure (logged). Loop thread = the caller. */
struct loop *loop_create(const struct loop_config *cfg);
void loop_destroy(struct loop *L);
struct lws_context *loop_lws(struct loop *L);
void *loop_user(struct loop *L);

/* 1 on the loop's thread (the one that created it and runs it). Any thread. */
int loop_is_current(struct loop *L);
/* Services events until loop_stop(). Returns 0. */
int loop_run(struct loop *L);
/* One round of loop_run: waits for and serves what is ready, then runs the timers with
 * slack that are within their window and the lazy posts. For tests that drive the
 * loop themselves. Loop thread only; returns lws_service's result. */
int loop_service(struct loop *L);
/* Asks loop_run to return after the current callback. Any thread, and signal handlers. */
void loop_stop(struct loop *L);

/* Catches SIGINT and SIGTERM: fn(arg, signo) then runs on the loop thread (once per
 * signal). Also ignores SIGPIPE. One loop per process may do this. */
void loop_on_signal(struct loop *L, void (*fn)(void *arg, int signo), void *arg);

/* Queues fn(arg) to run on the loop thread. Any thread; never blocks on the loop.
 * Returns 0, or -1 if out of memory (fn is then not called). */
int loop_post(struct loop *L, void (*fn)(void *arg), void *arg);
/* As loop_post, but does not wake the loop: fn runs at its next wake-up for whatever
 * reason. For news nobody waits on, where the poster makes sure a wake-up comes in
 * time (a timer of the loop's own). Any thread. */
int loop_post_lazy(struct loop *L, void (*fn)(void *arg), void *arg);
/* Runs what is queued now. Loop thread only (used by tests that drive the loop). */
void loop_drain(struct loop *L);

/* A watch on a descriptor lws does not read: a connection whose answer is under way (is
 * its client still there?), or the front door's sockets. fn(w, ev) runs on the loop
 * thread with LOOP_IN when input arrived, LOOP_OUT when the descriptor became writable
 * (only if asked for), LOOP_HUP when the peer shut its side or the socket failed.
 * Edge-triggered: once per arrival, so fn reads until EAGAIN (or a short read) or
 * remembers that it did not. Embedded in its owner, which must unwatch before it frees
 * it or closes the descriptor; fn must not free other watches (it may unwatch them:
 * their events are then dropped). Loop thread only. loop_watch returns 0, or -1 with
 * errno set. */
enum { LOOP_IN = 1, LOOP_OUT = 2, LOOP_HUP = 4 };
struct loop_watch {
	void (*fn)(struct loop_watch *w, int ev);
	int fd;
	int on;
};
/* ev: LOOP_IN, or LOOP_IN | LOOP_OUT (LOOP_HUP is always reported) */
int loop_watch(struct loop *L, struct loop_watch *w, int fd, int ev,
	       void (*fn)(struct loop_watch *w, int ev));
void loop_unwatch(struct loop *L, struct loop_watch *w); /* idempotent */

/* A timer embedded in its owner; arming never allocates. Deadlines are kept to the
 * nanosecond in the loop's own queue (timerq.h) and one timerfd wakes the loop at the
 * first of them: the loop sleeps until then, never polls early. Loop thread only. */
struct timer {
	struct tq_node node; /* its place in the loop's queue (loop.c) */
	struct loop *L;
	void (*fn)(struct timer *t);
	int64_t early;       /* armed with slack: may fire from here on (ns); else 0 */
	struct timer *snext; /* in the loop's list of timers armed with slack */
};
void timer_init(struct timer *t, struct loop *L, void (*fn)(struct timer *t));
void timer_arm_us(struct timer *t, int64_t us);
void timer_arm(struct timer *t, int64_t ms);
/* Fires at the loop's first wake-up from ms on, by ms + slack_ms at the latest: a timer
 * that another wake-up (a token, a request) can carry costs no wake-up of its own. */
void timer_arm_slack(struct timer *t, int64_t ms, int64_t slack_ms);
void timer_cancel(struct timer *t);
int timer_armed(const struct timer *t);

/* Wall-clock milliseconds since 1970 (the times in stored records and events). */
int64_t now_ms(void);
/* Monotonic microseconds (for intervals). */
int64_t mono_us(void);

#endif
