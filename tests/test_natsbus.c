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

#include "bus.h"
#include "engine.h"
#include "hooks.h"
#include "jw.h"
#include "pgtmp.h"
#include "loop.h"
#include "natslink.h"
#include "natstmp.h"

#include <cjson/cJSON.h>

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
		loop_service(L);
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

/* ---- the bus on JetStream ---- */

/* What one node's subscriber saw. */
struct rec {
	struct bus_sub sub;
	int n, cap;
	int64_t *seq;
	int *own;
	char **json;
	char **type;
};

static void rec_add(struct rec *r, struct event *ev)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 256;
		r->seq = realloc(r->seq, (size_t)r->cap * sizeof(*r->seq));
		r->own = realloc(r->own, (size_t)r->cap * sizeof(*r->own));
		r->json = realloc(r->json, (size_t)r->cap * sizeof(*r->json));
		r->type = realloc(r->type, (size_t)r->cap * sizeof(*r->type));
	}
	r->seq[r->n] = ev->seq;
	r->own[r->n] = ev->own;
	r->json[r->n] = strndup(ev->json, ev->len);
	r->type[r->n] = strdup(ev->type);
	r->n++;
}

static void on_rec(void *arg, struct event *ev)
{
	rec_add(arg, ev);
}

static void rec_free(struct rec *r)
{
	for (int i = 0; i < r->n; i++) {
		free(r->json[i]);
		free(r->type[i]);
	}
	free(r->seq);
	free(r->own);
	free(r->json);
	free(r->type);
	memset(r, 0, sizeof(*r));
}

/* Events of type "test.note" a recorder holds. */
static int notes(const struct rec *r)
{
	int n = 0;
	for (int i = 0; i < r->n; i++)
		n += !strcmp(r->type[i], "test.note");
	return n;
}

struct want {
	struct rec *r;
	int n;
};

static int has_notes(void *arg)
{
	struct want *w = arg;
	return notes(w->r) >= w->n;
}

static struct bus *node_at(const char *url, const char *name, size_t ring, int64_t keep,
			   size_t max_pending)
{
	struct err e = {0};
	struct bus *B = bus_create_nats(L, url, name, ring, keep, max_pending, &e);
	if (!B)
		fprintf(stderr, "bus_create_nats: %s\n", e.msg);
	assert_non_null(B);
	assert_non_null(bus_natslink(B));
	assert_string_equal(natslink_node(bus_natslink(B)), name);
	return B;
}

static struct bus *node(const char *name, size_t ring, int64_t keep, size_t max_pending)
{
	return node_at(ns.url, name, ring, keep, max_pending);
}

static int consuming(void *arg)
{
	struct bus_nats_info i;
	return bus_nats_info(arg, &i) == 0 && i.consuming && !i.failure;
}

/* Publishes {"node":..,"i":i} in session sid (root root). */
static void note(struct bus *B, const char *node_name, int i, const char *sid, const char *root)
{
	struct jw w;
	jw_init(&w);
	bus_begin(B, &w, "test.note");
	jw_obj(&w);
	jw_kstr(&w, "node", node_name);
	jw_kint(&w, "i", i);
	jw_obj_end(&w);
	char path[128];
	if (strcmp(sid, root))
		snprintf(path, sizeof(path), "%s/%s", root, sid);
	else
		snprintf(path, sizeof(path), "%s", sid);
	struct bus_env env = {.session_id = sid, .root_id = root, .path = path,
			      .parent_id = strcmp(sid, root) ? root : NULL,
			      .depth = strcmp(sid, root) ? 1 : 0};
	assert_int_equal(bus_publish(B, &w, "test.note", &env), 0);
	jw_free(&w);
}

/* The JSON is what the local bus writes: "seq" right after the properties, equal to the
 * event's seq, then the envelope. */
static void check_shape(const char *json, int64_t seq)
{
	cJSON *j = cJSON_Parse(json);
	assert_non_null(j);
	assert_int_equal((int64_t)cJSON_GetObjectItem(j, "seq")->valuedouble, seq);
	assert_non_null(cJSON_GetObjectItem(j, "sessionID"));
	assert_non_null(cJSON_GetObjectItem(j, "rootID"));
	cJSON_Delete(j);
	char want[64];
	snprintf(want, sizeof(want), "},\"seq\":%lld,\"sessionID\":", (long long)seq);
	assert_non_null(strstr(json, want));
}

/* What (node, i) an event carries, from its JSON. */
static void note_of(const char *json, char *node_out, size_t n, int *i)
{
	cJSON *j = cJSON_Parse(json);
	assert_non_null(j);
	cJSON *p = cJSON_GetObjectItem(j, "properties");
	snprintf(node_out, n, "%s", cJSON_GetObjectItem(p, "node")->valuestring);
	*i = (int)cJSON_GetObjectItem(p, "i")->valuedouble;
	cJSON_Delete(j);
}

/* Both recorders hold the same notes, in increasing seq order, each once; every node's
 * notes are in its publishing order (i = 0, 1, ...); own says who published. Returns
 * the first note's seq. */
static int64_t check_same(struct rec *a, struct rec *b, const char *name_a, int per_node,
			  int contiguous)
{
	assert_int_equal(notes(a), notes(b));
	int64_t first = 0, prev = 0;
	int next_a = 0, next_b = 0, ia = 0, ib = 0;
	for (; ia < a->n; ia++) {
		if (strcmp(a->type[ia], "test.note"))
			continue;
		while (strcmp(b->type[ib], "test.note"))
			ib++;
		assert_int_equal(a->seq[ia], b->seq[ib]);
		assert_string_equal(a->json[ia], b->json[ib]);
		if (prev)
			assert_true(contiguous ? a->seq[ia] == prev + 1 : a->seq[ia] > prev);
		prev = a->seq[ia];
		if (!first)
			first = prev;
		check_shape(a->json[ia], a->seq[ia]);
		char who[32];
		int i;
		note_of(a->json[ia], who, sizeof(who), &i);
		int mine = !strcmp(who, name_a);
		assert_int_equal(a->own[ia], mine);
		assert_int_equal(b->own[ib], !mine);
		assert_int_equal(i, mine ? next_a++ : next_b++);
		ib++;
	}
	assert_int_equal(next_a, per_node);
	assert_int_equal(next_b, per_node);
	return first;
}

/* The node's events are all acknowledged: published reached n, nothing pending. */
struct acked {
	struct bus *B;
	uint64_t n;
};

static int all_acked(void *arg)
{
	struct acked *a = arg;
	struct bus_nats_info i;
	return bus_nats_info(a->B, &i) == 0 && i.published >= a->n && i.pending_bytes == 0;
}

struct replayed {
	struct rec r;
};

static void on_replayed(void *arg, struct event *ev)
{
	rec_add(arg, ev);
}

/* Two nodes publish at once: one global seq order, seen the same by both, exactly
 * once; replay from before a ring of 16 reads JetStream; a session filter reads only
 * its root's subject. */
static void test_two_nodes(void **state)
{
	(void)state;
	struct bus *A = node("node-a", 16, 100000, 0), *B = node("node-b", 16, 100000, 0);
	assert_true(until(consuming, A, 15000));
	assert_true(until(consuming, B, 15000));
	struct rec ra = {0}, rb = {0};
	bus_subscribe(A, &ra.sub, on_rec, &ra);
	bus_subscribe(B, &rb.sub, on_rec, &rb);
	enum { N = 200 };
	for (int i = 0; i < N; i++) {
		note(A, "node-a", i, i % 3 ? "ses_r1" : "ses_r1c", "ses_r1");
		note(B, "node-b", i, "ses_r2", "ses_r2");
	}
	assert_true(bus_unsettled(A) > 0); /* on their way: none can be back yet */
	struct want wa = {&ra, 2 * N}, wb = {&rb, 2 * N};
	assert_true(until(has_notes, &wa, 20000));
	assert_true(until(has_notes, &wb, 20000));
	assert_int_equal(bus_unsettled(A), 0);
	assert_int_equal(bus_unsettled(B), 0);
	int64_t first = check_same(&ra, &rb, "node-a", N, 1);
	assert_int_equal(bus_last_seq(A), first + 2 * N - 1);
	assert_int_equal(bus_last_seq(B), bus_last_seq(A));

	/* replay from before the ring: JetStream, then the ring; the same events */
	struct rec rp = {0};
	int64_t upto = 0, since = first - 1;
	int total = 0;
	for (int page = 0; page < 100 && since < bus_last_seq(A); page++) {
		int n = bus_replay(A, since, NULL, 0, on_replayed, &rp, 64, &upto);
		assert_true(n >= 0);
		assert_true(upto > since);
		total += n;
		since = upto;
	}
	assert_int_equal(total, 2 * N);
	assert_int_equal(rp.n, 2 * N);
	for (int i = 0; i < rp.n; i++) {
		assert_int_equal(rp.seq[i], first + i);
		assert_string_equal(rp.json[i], ra.json[i]);
	}
	rec_free(&rp);

	/* a child session's replay with descendants: its root's subject only, in order */
	int64_t n = bus_replay(B, first - 1, "ses_r1", 1, on_replayed, &rp, 10000, &upto);
	assert_int_equal(n, N);
	assert_int_equal(upto, bus_last_seq(B));
	for (int i = 0; i < rp.n; i++) {
		char who[32];
		int k;
		note_of(rp.json[i], who, sizeof(who), &k);
		assert_string_equal(who, "node-a");
		assert_int_equal(k, i);
		assert_false(rp.own[i]); /* B replays A's events */
	}
	rec_free(&rp);
	n = bus_replay(B, first - 1, "ses_r1c", 0, on_replayed, &rp, 10000, &upto);
	assert_int_equal(n, (N + 2) / 3);
	rec_free(&rp);

	struct acked ack = {A, N};
	assert_true(until(all_acked, &ack, 10000));
	struct bus_nats_info info;
	assert_int_equal(bus_nats_info(A, &info), 0);
	assert_int_equal(info.published, N);
	assert_int_equal(info.dropped, 0);
	assert_int_equal(info.pending_bytes, 0);
	assert_string_equal(info.url, ns.url);
	bus_unsubscribe(A, &ra.sub);
	bus_unsubscribe(B, &rb.sub);
	rec_free(&ra);
	rec_free(&rb);
	bus_destroy(A);
	bus_destroy(B);
}

static int bus_down(void *arg)
{
	struct bus_nats_info i;
	return bus_nats_info(arg, &i) == 0 && i.failure;
}

static int types(const struct rec *r, const char *type)
{
	int n = 0;
	for (int i = 0; i < r->n; i++)
		n += !strcmp(r->type[i], type);
	return n;
}

/* nats-server killed (SIGKILL) while events are in flight, more published while it is
 * gone, then started again: every event arrives at both nodes once, in order. */
static void test_restart(void **state)
{
	(void)state;
	struct bus *A = node("node-a", 64, 100000, 0), *B = node("node-b", 64, 100000, 0);
	assert_true(until(consuming, A, 15000));
	assert_true(until(consuming, B, 15000));
	struct rec ra = {0}, rb = {0};
	bus_subscribe(A, &ra.sub, on_rec, &ra);
	bus_subscribe(B, &rb.sub, on_rec, &rb);
	enum { N = 300 };
	for (int i = 0; i < 100; i++) {
		note(A, "node-a", i, "ses_k1", "ses_k1");
		note(B, "node-b", i, "ses_k2", "ses_k2");
	}
	struct want some = {&ra, 20};
	assert_true(until(has_notes, &some, 20000)); /* part delivered, part in flight */
	natstmp_stop(&ns, SIGKILL);
	for (int i = 100; i < 200; i++) {
		note(A, "node-a", i, "ses_k1", "ses_k1");
		note(B, "node-b", i, "ses_k2", "ses_k2");
	}
	assert_true(until(bus_down, A, 15000));
	assert_int_equal(natstmp_restart(&ns), 0);
	for (int i = 200; i < N; i++) {
		note(A, "node-a", i, "ses_k1", "ses_k1");
		note(B, "node-b", i, "ses_k2", "ses_k2");
	}
	struct want wa = {&ra, 2 * N}, wb = {&rb, 2 * N};
	assert_true(until(has_notes, &wa, 60000));
	assert_true(until(has_notes, &wb, 60000));
	check_same(&ra, &rb, "node-a", N, 1);
	assert_int_equal(types(&ra, "resync"), 0);
	struct acked ack = {A, N};
	assert_true(until(all_acked, &ack, 10000));
	struct bus_nats_info ia;
	assert_int_equal(bus_nats_info(A, &ia), 0);
	assert_int_equal(ia.published, N);
	assert_true(ia.reconnects >= 1);
	assert_true(ia.consumer_restarts >= 1);
	bus_unsubscribe(A, &ra.sub);
	bus_unsubscribe(B, &rb.sub);
	rec_free(&ra);
	rec_free(&rb);
	bus_destroy(A);
	bus_destroy(B);
}

/* Past the buffer's bound while NATS is gone: new events are dropped and counted, local
 * subscribers get a resync notice (and another when events flow again), and what was
 * kept is published in order once NATS is back. */
static void test_overflow(void **state)
{
	(void)state;
	struct bus *A = node("node-a", 64, 100000, 8192);
	assert_true(until(consuming, A, 15000));
	struct rec ra = {0};
	bus_subscribe(A, &ra.sub, on_rec, &ra);
	natstmp_stop(&ns, SIGTERM);
	assert_true(until(bus_down, A, 15000));
	enum { N = 100 };
	for (int i = 0; i < N; i++)
		note(A, "node-a", i, "ses_o1", "ses_o1");
	assert_int_equal(types(&ra, "resync"), 1); /* at once, while NATS is still gone */
	assert_int_equal(notes(&ra), 0);
	struct bus_nats_info info;
	assert_int_equal(bus_nats_info(A, &info), 0);
	assert_true(info.dropped > 0 && info.dropped < N);
	assert_true(info.pending_bytes > 0 && info.pending_bytes <= 8192);
	int kept = N - (int)info.dropped;
	assert_int_equal(natstmp_restart(&ns), 0);
	struct want w = {&ra, kept};
	assert_true(until(has_notes, &w, 30000));
	note(A, "node-a", N, "ses_o1", "ses_o1"); /* accepted again: a second notice */
	assert_int_equal(types(&ra, "resync"), 2);
	w.n = kept + 1;
	assert_true(until(has_notes, &w, 30000));
	int k = 0;
	for (int i = 0; i < ra.n; i++) {
		if (strcmp(ra.type[i], "test.note"))
			continue;
		char who[32];
		int at;
		note_of(ra.json[i], who, sizeof(who), &at);
		assert_int_equal(at, k < kept ? k : N); /* the first `kept`, then the new one */
		k++;
	}
	struct acked ack = {A, (uint64_t)kept + 1};
	assert_true(until(all_acked, &ack, 10000)); /* the worker counts acks as it pops them */
	bus_unsubscribe(A, &ra.sub);
	rec_free(&ra);
	bus_destroy(A);
}

/* A stream that keeps 50 events: a replay from before its first seq is a resync; from
 * its first seq on it is served from JetStream and the ring. */
static void test_retention(void **state)
{
	(void)state;
	struct natstmp own;
	assert_int_equal(natstmp_start(&own), 0);
	struct bus *A = node_at(own.url, "node-a", 16, 50, 0);
	assert_true(until(consuming, A, 15000));
	struct rec ra = {0};
	bus_subscribe(A, &ra.sub, on_rec, &ra);
	struct want w = {&ra, 0};
	for (int i = 0; i < 120; i++) { /* at the consumer's pace: none leaves unread */
		note(A, "node-a", i, "ses_t1", "ses_t1");
		w.n = i + 1;
		assert_true(until(has_notes, &w, 20000));
	}
	int64_t last = bus_last_seq(A);
	assert_int_equal(last, 120);
	int64_t oldest = 0;
	/* the worker looks at the stream's first seq every 2 s */
	struct rec rp = {0};
	int64_t upto;
	for (int i = 0; i < 100 && (oldest = bus_oldest_seq(A)) != last - 49; i++) {
		struct want none = {&rp, 1};
		until(has_notes, &none, 100);
	}
	assert_int_equal(oldest, last - 49);
	assert_int_equal(bus_replay(A, 10, NULL, 0, on_replayed, &rp, 1000, &upto), BUS_RESYNC);
	assert_int_equal(bus_replay(A, oldest - 1, NULL, 0, on_replayed, &rp, 1000, &upto), 50);
	assert_int_equal(upto, last);
	for (int i = 0; i < rp.n; i++)
		assert_int_equal(rp.seq[i], oldest + i);
	rec_free(&rp);
	bus_unsubscribe(A, &ra.sub);
	rec_free(&ra);
	bus_destroy(A);
	natstmp_destroy(&own);
}

/* NATS unreachable from the start: the bus starts anyway, says why, keeps its events,
 * delivers them once NATS is there; and a bus closed while NATS is away closes. */
static void test_down_at_start(void **state)
{
	(void)state;
	natstmp_stop(&ns, SIGTERM);
	struct bus *A = node("node-a", 64, 100000, 0);
	assert_true(until(bus_down, A, 5000));
	struct rec ra = {0};
	bus_subscribe(A, &ra.sub, on_rec, &ra);
	for (int i = 0; i < 5; i++)
		note(A, "node-a", i, "ses_d1", "ses_d1");
	struct bus_nats_info info;
	assert_int_equal(bus_nats_info(A, &info), 0);
	assert_non_null(strstr(info.failure, ns.url));
	assert_true(info.pending_bytes > 0);
	assert_int_equal(bus_unsettled(A), 5);
	struct bus *C = node("node-c", 64, 100000, 0); /* closed before NATS comes back */
	note(C, "node-c", 0, "ses_d2", "ses_d2");
	bus_destroy(C);
	assert_int_equal(natstmp_restart(&ns), 0);
	struct want w = {&ra, 5};
	assert_true(until(has_notes, &w, 30000));
	for (int i = 0; i < ra.n; i++) {
		char who[32];
		int k;
		note_of(ra.json[i], who, sizeof(who), &k);
		assert_int_equal(k, i);
	}
	assert_int_equal(bus_unsettled(A), 0);
	bus_unsubscribe(A, &ra.sub);
	rec_free(&ra);
	bus_destroy(A);
}

/* ---- two engines (nodes) on one PostgreSQL store and one NATS ---- */

static int count_event(void *arg, const struct hook_ctx *ctx, void *data, char *why, size_t n)
{
	(void)ctx;
	(void)data;
	(void)why;
	(void)n;
	++*(int *)arg;
	return 0;
}

static int idle_seen(void *arg)
{
	return types(arg, "session.idle") > 0;
}

/* A node's engine on the NATS bus: its subscribers see its own turn's events and
 * another node's; its plugins (event hooks) hear only its own. (One gateway per
 * PostgreSQL database for now: the other node is a bare bus.) A SQLite store is
 * refused for the NATS bus. */
static void test_engine_hooks(void **state)
{
	(void)state;
	struct pgtmp pg;
	int rc = pgtmp_start(&pg);
	if (rc == PGTMP_NONE) {
		printf("test_engine_hooks: SKIPPED: PostgreSQL's server is not installed\n");
		skip();
	}
	assert_int_equal(rc, 0);
	char url[200], d1[] = "/tmp/ag-natsbus-XXXXXX";
	assert_int_equal(pgtmp_createdb(&pg, "natsbus", url, sizeof(url)), 0);
	assert_non_null(mkdtemp(d1));
	struct err e = {0};
	struct engine_opts o1 = {.data_dir = d1, .owner = "test node n1", .store = url,
				 .bus = ns.url, .node = "n1"};
	struct engine *E1 = engine_create(L, &o1, &e);
	if (!E1)
		fail_msg("engine n1: %s", e.msg);
	struct bus *B1 = engine_bus(E1), *B2 = node("n2", 64, 100000, 0);
	assert_string_equal(natslink_node(bus_natslink(B1)), "n1");
	assert_true(until(consuming, B1, 15000));
	assert_true(until(consuming, B2, 15000));
	int hooked = 0;
	assert_int_equal(hooks_add(E1, HOOK_EVENT, "test", count_event, &hooked), 0);
	struct rec r1 = {0}, r2 = {0};
	bus_subscribe(B1, &r1.sub, on_rec, &r1);
	bus_subscribe(B2, &r2.sub, on_rec, &r2);

	char sid[64];
	struct session_params sp = {.title = "on n1"};
	assert_int_equal(engine_session_create(E1, &sp, sid, &e), 0);
	struct prompt p = {.session_id = sid, .text = "hello", .source = "http"};
	struct prompt_result pr;
	assert_int_equal(engine_prompt(E1, &p, &pr, NULL, &e), 0);
	note(B2, "n2", 0, "ses_other", "ses_other");
	assert_true(until(idle_seen, &r1, 30000));
	struct want w1 = {&r1, 1}, w2 = {&r2, 1};
	assert_true(until(has_notes, &w1, 30000));
	assert_true(until(idle_seen, &r2, 30000));
	assert_true(until(has_notes, &w2, 30000));
	/* both nodes saw the same events in the same order */
	assert_int_equal(r1.n, r2.n);
	int own = 0;
	for (int i = 0; i < r1.n; i++) {
		assert_int_equal(r1.seq[i], r2.seq[i]);
		assert_string_equal(r1.json[i], r2.json[i]);
		assert_int_equal(r1.own[i], strcmp(r1.type[i], "test.note") != 0);
		assert_int_equal(r2.own[i], !r1.own[i]);
		own += r1.own[i];
	}
	assert_true(own >= 3); /* the turn's events, at least */
	assert_int_equal(hooked, own); /* n1's plugins hear n1's events, not n2's note */

	bus_unsubscribe(B1, &r1.sub);
	bus_unsubscribe(B2, &r2.sub);
	rec_free(&r1);
	rec_free(&r2);
	engine_destroy(E1);
	bus_destroy(B2);

	/* nodes share the store: one node's SQLite file cannot be it */
	struct engine_opts o3 = {.data_dir = d1, .owner = "test node n3", .bus = ns.url};
	assert_null(engine_create(L, &o3, &e));
	assert_string_equal(e.msg, "--bus nats:// needs --store postgres://: nodes share the store");
	struct engine_opts o4 = {.data_dir = d1, .owner = "test", .store = url, .bus = "nats:/x"};
	assert_null(engine_create(L, &o4, &e));
	assert_non_null(strstr(e.msg, "expected local or nats://HOST:PORT"));
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d1);
	assert_int_equal(system(cmd), 0);
	pgtmp_destroy(&pg);
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
		cmocka_unit_test(test_two_nodes),
		cmocka_unit_test(test_restart),
		cmocka_unit_test(test_overflow),
		cmocka_unit_test(test_retention),
		cmocka_unit_test(test_down_at_start),
		cmocka_unit_test(test_engine_hooks),
	};
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	loop_destroy(L);
	natstmp_destroy(&ns);
	return rc;
}
