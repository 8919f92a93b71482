/* The bus on NATS JetStream and the node link (gateway/bus/nats*.c), against a real
 * nats-server this test starts (tests/natsserver.sh). Two links or two buses on one
 * loop stand for two nodes. Skipped, saying so, only when nats-server is not installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loop.h"
#include "natslink.h"
#include "natstmp.h"

static struct natstmp ns;
static struct loop *L;

static void tick(struct timer *t)
{
	timer_arm(t, 5);
}

/* Services the loop until pred(arg) or timeout_ms; the predicate's last value. */
static int until(int (*pred)(void *arg), void *arg, int timeout_ms)
{
	struct timer t;
	timer_init(&t, L, tick);
	timer_arm(&t, 5);
	int64_t end = mono_us() + (int64_t)timeout_ms * 1000;
	int ok;
	while (!(ok = pred(arg)) && mono_us() < end)
		lws_service(loop_lws(L), 0);
	timer_cancel(&t);
	return ok;
}

static int link_up(void *arg)
{
	return natslink_failure(arg) == NULL;
}

static int link_down(void *arg)
{
	return natslink_failure(arg) != NULL;
}

/* ---- request / reply ---- */

struct caller {
	struct natslink_call call;
	int done;
	char data[256];
	struct err e;
	int64_t at_us;
};

static void on_reply(struct natslink_call *c, const char *data, size_t len, const struct err *e)
{
	struct caller *k = container_of(c, struct caller, call);
	k->done++;
	k->at_us = mono_us();
	k->e = e ? *e : (struct err){0};
	snprintf(k->data, sizeof(k->data), "%.*s", (int)len, data ? data : "");
}

static int caller_done(void *arg)
{
	return ((struct caller *)arg)->done > 0;
}

struct server {
	struct natslink_req *held; /* answered later */
	int hold, seen;
};

static void serve_echo(void *arg, struct natslink_req *rq, const char *data, size_t len)
{
	struct server *s = arg;
	s->seen++;
	if (s->hold) {
		s->held = rq;
		return;
	}
	char out[300];
	int n = snprintf(out, sizeof(out), "echo:%.*s", (int)len, data);
	assert_int_equal(natslink_respond(rq, out, (size_t)n), 0);
}

static int held(void *arg)
{
	return ((struct server *)arg)->held != NULL;
}

static void test_request_reply(void **state)
{
	(void)state;
	struct err e = {0};
	struct natslink *a = natslink_open(L, ns.url, "node-a", &e);
	struct natslink *b = natslink_open(L, ns.url, "node-b", &e);
	assert_non_null(a);
	assert_non_null(b);
	assert_true(until(link_up, a, 10000));
	assert_true(until(link_up, b, 10000));
	assert_string_equal(natslink_node(a), "node-a");
	struct server srv = {0};
	assert_int_equal(natslink_serve(b, "ag.node.node-b", serve_echo, &srv), 0);
	/* the subscription reaches the server before a request can find it */
	struct caller k = {0};
	for (int i = 0; i < 100; i++) { /* bounded: until the server knows b serves it */
		memset(&k, 0, sizeof(k));
		assert_int_equal(natslink_request(a, &k.call, "ag.node.node-b", "hi", 2, 5000, on_reply), 0);
		assert_true(until(caller_done, &k, 6000));
		if (k.e.code == ERR_NONE)
			break;
	}
	assert_int_equal(k.e.code, ERR_NONE);
	assert_string_equal(k.data, "echo:hi");
	assert_int_equal(k.done, 1);

	/* answered later: the request waits for the answer, however the server is driven */
	srv.hold = 1;
	memset(&k, 0, sizeof(k));
	assert_int_equal(natslink_request(a, &k.call, "ag.node.node-b", "later", 5, 5000, on_reply), 0);
	assert_true(until(held, &srv, 5000));
	assert_int_equal(k.done, 0);
	assert_int_equal(natslink_respond(srv.held, "done", 4), 0);
	srv.held = NULL;
	assert_true(until(caller_done, &k, 5000));
	assert_string_equal(k.data, "done");

	/* no responders: an error at once, long before the 20 s timeout */
	memset(&k, 0, sizeof(k));
	int64_t t0 = mono_us();
	assert_int_equal(natslink_request(a, &k.call, "ag.node.nobody", "x", 1, 20000, on_reply), 0);
	assert_true(until(caller_done, &k, 10000));
	assert_int_equal(k.e.code, ERR_UNAVAILABLE);
	assert_non_null(strstr(k.e.msg, "no responders"));
	assert_non_null(strstr(k.e.msg, "ag.node.nobody"));
	assert_true(k.at_us - t0 < 10000000);

	/* cancelled: fn is never called, and the late answer is dropped */
	memset(&k, 0, sizeof(k));
	assert_int_equal(natslink_request(a, &k.call, "ag.node.node-b", "c", 1, 5000, on_reply), 0);
	assert_true(until(held, &srv, 5000));
	natslink_cancel(&k.call);
	assert_int_equal(natslink_respond(srv.held, "late", 4), 0);
	srv.held = NULL;
	struct caller k2 = {0}; /* a request after it gets its own answer, not the late one */
	srv.hold = 0;
	assert_int_equal(natslink_request(a, &k2.call, "ag.node.node-b", "after", 5, 5000, on_reply), 0);
	assert_true(until(caller_done, &k2, 5000));
	assert_string_equal(k2.data, "echo:after");
	assert_int_equal(k.done, 0);

	/* a timeout names itself */
	srv.hold = 1;
	memset(&k, 0, sizeof(k));
	assert_int_equal(natslink_request(a, &k.call, "ag.node.node-b", "t", 1, 200, on_reply), 0);
	assert_true(until(caller_done, &k, 5000));
	assert_int_equal(k.e.code, ERR_UNAVAILABLE);
	assert_non_null(strstr(k.e.msg, "no reply in time"));
	assert_true(until(held, &srv, 5000));
	natslink_respond(srv.held, "x", 1); /* the server may answer after the caller gave up */
	srv.held = NULL;

	/* unserved: nobody answers any more (once the server has the unsubscription: a
	 * request it still hands to b meanwhile is dropped there and times out) */
	natslink_unserve(b, "ag.node.node-b");
	srv.hold = 0;
	for (int i = 0; i < 20; i++) {
		memset(&k, 0, sizeof(k));
		assert_int_equal(natslink_request(a, &k.call, "ag.node.node-b", "u", 1, 1000, on_reply), 0);
		assert_true(until(caller_done, &k, 2000));
		if (strstr(k.e.msg, "no responders"))
			break;
	}
	assert_non_null(strstr(k.e.msg, "no responders"));

	/* a request held by the server when its link closes is still answerable (dropped) */
	natslink_close(b);
	natslink_close(a);
}

static void test_bad_url(void **state)
{
	(void)state;
	struct err e = {0};
	assert_null(natslink_open(L, "http://127.0.0.1:4222", "n", &e));
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "nats://HOST:PORT"));
	assert_null(natslink_open(L, "nats://127.0.0.1:99999", "n", &e));
}

/* Unreachable at first: the link says why, requests fail at once naming it, and it
 * connects by itself once the server is there. */
static void test_reconnect(void **state)
{
	(void)state;
	struct err e = {0};
	natstmp_stop(&ns, SIGKILL);
	struct natslink *a = natslink_open(L, ns.url, "node-a", &e);
	assert_non_null(a);
	assert_true(until(link_down, a, 1000));
	struct caller k = {0};
	assert_int_equal(natslink_request(a, &k.call, "ag.node.x", "x", 1, 5000, on_reply), 0);
	assert_int_equal(k.done, 0); /* never from inside natslink_request */
	assert_true(until(caller_done, &k, 1000));
	assert_non_null(strstr(k.e.msg, "not connected"));
	const char *why = natslink_failure(a);
	assert_non_null(why);
	assert_non_null(strstr(why, ns.url));
	assert_int_equal(natstmp_restart(&ns), 0);
	assert_true(until(link_up, a, 15000));
	natstmp_stop(&ns, SIGKILL);
	assert_true(until(link_down, a, 15000));
	assert_int_equal(natstmp_restart(&ns), 0);
	assert_true(until(link_up, a, 15000));
	assert_true(natslink_reconnects(a) >= 1);
	natslink_close(a);
}

int main(void)
{
	int rc = natstmp_start(&ns);
	if (rc == NATSTMP_NONE) {
		printf("test_natsbus: SKIPPED: nats-server is not installed (Debian: nats-server)\n");
		return 77;
	}
	if (rc) {
		fprintf(stderr, "test_natsbus: nats-server did not start\n");
		return 1;
	}
	struct loop_config lc = {.port = -1};
	L = loop_create(&lc);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_reply),
		cmocka_unit_test(test_bad_url),
		cmocka_unit_test(test_reconnect),
	};
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	loop_destroy(L);
	natstmp_destroy(&ns);
	return rc;
}
