/* libagentgate-client against the real `agentgate serve` on 127.0.0.1: calls and their
 * errors, a subscription to a session tree with its envelope, connections cut in the
 * middle of a stream (through a proxy this test controls) and the server killed or
 * stopped and started again — each time the subscription resumes with every event
 * exactly once, in order, as a fresh replay from the server shows them. Links the
 * client library and cJSON only, as a program built on it would. Every wait is bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <agentgate/client.h>
#include <cjson/cJSON.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client_int.h"
#include "spawn.h"

#define WAIT_MS 30000

static char dir[128], data[200], config[200], logpath[200];

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- what a client saw, guarded for the test's thread ---- */

#define MAX_EVENTS 20000

struct seen {
	int64_t seq;
	char type[48], session[48], parent[48], root[48], tool_call[64];
	int depth;
};

struct watch {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct seen *ev;
	int n;
	int states[8];      /* how many times each state was reported */
	char why[512];      /* the last DISCONNECTED/FAILED reason */
	int calls_done;
	int code;           /* the last call's outcome */
	char result[4096];
	char message[512];
	int sub_done, sub_code;
	int64_t sub_seq;
	struct ag_client *self; /* for the from-a-callback check */
	int close_rc;
	int stop_at_event;      /* > 0: call ag_client_close from the callback of event n */
};

static void watch_init(struct watch *w)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->ev = calloc(MAX_EVENTS, sizeof(*w->ev));
	w->sub_seq = -1;
}

static void watch_free(struct watch *w)
{
	free(w->ev);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
}

static void copy(char *dst, size_t n, const char *s)
{
	snprintf(dst, n, "%s", s ? s : "");
}

static void on_event(void *user, const struct ag_client_event *ev)
{
	struct watch *w = user;
	assert_int_equal(ev->len, strlen(ev->json));
	pthread_mutex_lock(&w->mu);
	if (w->n < MAX_EVENTS) {
		struct seen *s = &w->ev[w->n++];
		s->seq = ev->seq;
		copy(s->type, sizeof(s->type), ev->type);
		copy(s->session, sizeof(s->session), ev->session_id);
		copy(s->parent, sizeof(s->parent), ev->parent_id);
		copy(s->root, sizeof(s->root), ev->root_id);
		copy(s->tool_call, sizeof(s->tool_call), ev->parent_tool_call_id);
		s->depth = ev->depth;
	}
	int stop = w->stop_at_event && w->n == w->stop_at_event;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	if (stop)
		w->close_rc = ag_client_close(w->self);
}

static void on_state(void *user, enum ag_client_state st, const char *why)
{
	struct watch *w = user;
	pthread_mutex_lock(&w->mu);
	w->states[st]++;
	if (st == AG_CLIENT_DISCONNECTED || st == AG_CLIENT_FAILED)
		copy(w->why, sizeof(w->why), why);
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void on_done(void *user, const struct ag_client_result *r)
{
	struct watch *w = user;
	pthread_mutex_lock(&w->mu);
	w->code = r->code;
	copy(w->result, sizeof(w->result), r->json);
	copy(w->message, sizeof(w->message), r->message);
	w->calls_done++;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void on_subscribed(void *user, const struct ag_client_result *r)
{
	struct watch *w = user;
	pthread_mutex_lock(&w->mu);
	w->sub_done++;
	w->sub_code = r->code;
	if (!r->code) {
		cJSON *j = cJSON_Parse(r->json);
		w->sub_seq = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "seq"));
		cJSON_Delete(j);
	}
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* Waits (at most ms) until pred(w, arg) holds; returns whether it did. */
static int wait_for(struct watch *w, int (*pred)(struct watch *, const void *), const void *arg,
		    int ms)
{
	long long deadline = now_ms() + ms;
	pthread_mutex_lock(&w->mu);
	int ok;
	while (!(ok = pred(w, arg))) {
		long long left = deadline - now_ms();
		if (left <= 0)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		long long ns = ts.tv_nsec + (left > 100 ? 100 : left) * 1000000LL;
		ts.tv_sec += ns / 1000000000LL;
		ts.tv_nsec = ns % 1000000000LL;
		pthread_cond_timedwait(&w->cv, &w->mu, &ts);
	}
	pthread_mutex_unlock(&w->mu);
	return ok;
}

static int has_state(struct watch *w, const void *st)
{
	return w->states[*(const int *)st] > 0;
}

static int state_count_at_least(struct watch *w, const void *arg)
{
	const int *a = arg; /* {state, count} */
	return w->states[a[0]] >= a[1];
}

static int calls_at_least(struct watch *w, const void *n)
{
	return w->calls_done >= *(const int *)n;
}

static int subscribed(struct watch *w, const void *arg)
{
	return w->sub_done > 0;
}

static int events_at_least(struct watch *w, const void *n)
{
	return w->n >= *(const int *)n;
}

/* The session went idle (session.idle of it) at or after index from. */
struct idle_q {
	const char *session;
	int from;
};

static int went_idle(struct watch *w, const void *arg)
{
	const struct idle_q *q = arg;
	for (int i = q->from; i < w->n; i++)
		if (!strcmp(w->ev[i].type, "session.idle") && !strcmp(w->ev[i].session, q->session))
			return 1;
	return 0;
}

/* Waits for a session.idle of session at or after index from: the index after it. */
static int wait_idle(struct watch *w, const char *session, int from)
{
	struct idle_q q = {session, from};
	if (!wait_for(w, went_idle, &q, WAIT_MS))
		fail_msg("no session.idle of %s within %d ms (%d events; connected %d times, "
			 "disconnected %d times, last: %s)", session, WAIT_MS, w->n,
			 w->states[AG_CLIENT_CONNECTED], w->states[AG_CLIENT_DISCONNECTED], w->why);
	pthread_mutex_lock(&w->mu);
	int i = from;
	while (strcmp(w->ev[i].type, "session.idle") || strcmp(w->ev[i].session, session))
		i++;
	pthread_mutex_unlock(&w->mu);
	return i + 1;
}

static struct ag_client *open_client(struct watch *w, int port, const char *token)
{
	char url[64], err[256];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	struct ag_client_opts o = {
		.size = sizeof(o), .url = url, .token = token, .on_state = on_state, .user = w,
		.reconnect_min_ms = 20, .reconnect_max_ms = 200,
	};
	struct ag_client *c = ag_client_open(&o, err, sizeof(err));
	if (!c)
		fail_msg("ag_client_open: %s", err);
	w->self = c;
	return c;
}

/* A call, waited for: its code; the result in w->result. */
static int call(struct ag_client *c, struct watch *w, const char *method, const char *params)
{
	pthread_mutex_lock(&w->mu);
	int want = w->calls_done + 1;
	pthread_mutex_unlock(&w->mu);
	assert_int_equal(ag_client_call(c, method, params, on_done, w), 0);
	if (!wait_for(w, calls_at_least, &want, WAIT_MS))
		fail_msg("%s not answered within %d ms", method, WAIT_MS);
	return w->code;
}

/* session.create: the new id in out. */
static void create_session(struct ag_client *c, struct watch *w, char out[64])
{
	assert_int_equal(call(c, w, "session.create", "{\"title\":\"client test\"}"), 0);
	cJSON *j = cJSON_Parse(w->result);
	copy(out, 64, cJSON_GetStringValue(cJSON_GetObjectItem(j, "id")));
	cJSON_Delete(j);
	assert_memory_equal(out, "ses_", 4);
}

static void subscribe(struct ag_client *c, struct watch *w, const char *session, int64_t since)
{
	struct ag_client_subscription s = {
		.size = sizeof(s), .session_id = session, .descendants = 1, .since = since,
		.on_event = on_event, .user = w,
	};
	assert_int_equal(ag_client_subscribe(c, &s, on_subscribed, w), 0);
	assert_true(wait_for(w, subscribed, NULL, WAIT_MS));
	assert_int_equal(w->sub_code, 0);
}

static void prompt(struct ag_client *c, struct watch *w, const char *session, const char *text)
{
	char p[512];
	snprintf(p, sizeof(p), "{\"sessionID\":\"%s\",\"text\":\"%s\"}", session, text);
	assert_int_equal(call(c, w, "session.prompt", p), 0);
}

/* Every seq is larger than the one before: nothing twice, nothing out of order. */
static void assert_increasing(struct watch *w)
{
	for (int i = 1; i < w->n; i++)
		if (w->ev[i].seq >= 0 && w->ev[i - 1].seq >= 0 && w->ev[i].seq <= w->ev[i - 1].seq)
			fail_msg("event %d has seq %lld after %lld (%s after %s)", i,
				 (long long)w->ev[i].seq, (long long)w->ev[i - 1].seq, w->ev[i].type,
				 w->ev[i - 1].type);
}

/* The events of the tree after since, as a fresh client replays them from the server,
 * up to the n-th session.idle of root. */
static void replay(struct watch *ref, int port, const char *root, int64_t since, int idles)
{
	watch_init(ref);
	struct ag_client *c = open_client(ref, port, NULL);
	subscribe(c, ref, root, since);
	for (int k = 0, from = 0; k < idles; k++)
		from = wait_idle(ref, root, from);
	ag_client_close(c);
}

/* The numbered events of got, in order, are exactly those of ref. */
static void assert_same_events(struct watch *got, struct watch *ref)
{
	int i = 0, j = 0;
	for (;; i++, j++) {
		while (i < got->n && got->ev[i].seq < 0)
			i++; /* server.shutdown has no number */
		while (j < ref->n && ref->ev[j].seq < 0)
			j++;
		if (i == got->n || j == ref->n)
			break;
		if (got->ev[i].seq != ref->ev[j].seq || strcmp(got->ev[i].type, ref->ev[j].type))
			fail_msg("event %d: got seq %lld %s, the replay has seq %lld %s", i,
				 (long long)got->ev[i].seq, got->ev[i].type, (long long)ref->ev[j].seq,
				 ref->ev[j].type);
	}
	/* the replay stops at the idle the test waited for; the client may have more */
	if (j < ref->n)
		fail_msg("the client has %d numbered events, the replay more (next %lld %s)", i,
			 (long long)ref->ev[j].seq, ref->ev[j].type);
}

/* ---- a TCP proxy this test can cut ---- */

struct proxy {
	int port, target;
	int lfd;
	int ctl[2];          /* 'c' cuts every pair; 'q' quits */
	pthread_t th;
	int pairs[64][2];
	int npairs;
	atomic_int refuse;   /* close new connections at once */
	atomic_int cuts;
};

static void proxy_close_all(struct proxy *p)
{
	for (int i = 0; i < p->npairs; i++) {
		close(p->pairs[i][0]);
		close(p->pairs[i][1]);
	}
	p->npairs = 0;
}

static int dial(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	return fd;
}

static void *proxy_main(void *arg)
{
	struct proxy *p = arg;
	char buf[4096];
	for (;;) {
		struct pollfd fds[2 + 128];
		int n = 0;
		fds[n++] = (struct pollfd){.fd = p->ctl[0], .events = POLLIN};
		fds[n++] = (struct pollfd){.fd = p->lfd, .events = POLLIN};
		for (int i = 0; i < p->npairs; i++) {
			fds[n++] = (struct pollfd){.fd = p->pairs[i][0], .events = POLLIN};
			fds[n++] = (struct pollfd){.fd = p->pairs[i][1], .events = POLLIN};
		}
		if (poll(fds, (nfds_t)n, -1) < 0 && errno != EINTR)
			break;
		if (fds[0].revents) {
			char c;
			if (read(p->ctl[0], &c, 1) != 1 || c == 'q')
				break;
			proxy_close_all(p);
			atomic_fetch_add(&p->cuts, 1);
			continue;
		}
		if (fds[1].revents) {
			int cfd = accept(p->lfd, NULL, NULL);
			int sfd = cfd >= 0 && !atomic_load(&p->refuse) ? dial(p->target) : -1;
			if (sfd < 0 || p->npairs == 64) {
				if (cfd >= 0)
					close(cfd);
				if (sfd >= 0)
					close(sfd);
			} else {
				p->pairs[p->npairs][0] = cfd;
				p->pairs[p->npairs][1] = sfd;
				p->npairs++;
			}
			continue;
		}
		for (int i = 0; i < p->npairs; i++)
			for (int side = 0; side < 2; side++) {
				if (!fds[2 + 2 * i + side].revents)
					continue;
				ssize_t r = read(p->pairs[i][side], buf, sizeof(buf));
				if (r <= 0 || write(p->pairs[i][!side], buf, (size_t)r) != r) {
					close(p->pairs[i][0]);
					close(p->pairs[i][1]);
					p->pairs[i][0] = p->pairs[--p->npairs][0];
					p->pairs[i][1] = p->pairs[p->npairs][1];
					goto next; /* the poll set changed */
				}
			}
next:;
	}
	proxy_close_all(p);
	return NULL;
}

static void proxy_start(struct proxy *p, int target)
{
	memset(p, 0, sizeof(*p));
	p->target = target;
	p->lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	assert_int_equal(bind(p->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(p->lfd, 16), 0);
	assert_int_equal(getsockname(p->lfd, (struct sockaddr *)&a, &l), 0);
	p->port = ntohs(a.sin_port);
	assert_int_equal(pipe(p->ctl), 0);
	assert_int_equal(pthread_create(&p->th, NULL, proxy_main, p), 0);
}

static void proxy_cut(struct proxy *p)
{
	assert_int_equal(write(p->ctl[1], "c", 1), 1);
}

static void proxy_stop(struct proxy *p)
{
	assert_int_equal(write(p->ctl[1], "q", 1), 1);
	pthread_join(p->th, NULL);
	close(p->lfd);
	close(p->ctl[0]);
	close(p->ctl[1]);
}

/* ---- a client behind the proxy, and one beside it ---- */

/* c follows a new session (root) through the proxy; direct talks to the server itself
 * (prompts, checks) and never loses its connection to a cut. */
struct rig {
	struct proxy px;
	struct watch w, d;
	struct ag_client *c, *direct;
	char root[64];
	int64_t start; /* the seq the subscription started from */
};

static void rig_open(struct rig *r);
static void rig_close(struct rig *r);

/* The proxy cuts c off and refuses it until rig_back; returns once c knows. */
static void rig_away(struct rig *r)
{
	pthread_mutex_lock(&r->w.mu);
	int down[2] = {AG_CLIENT_DISCONNECTED, r->w.states[AG_CLIENT_DISCONNECTED] + 1};
	pthread_mutex_unlock(&r->w.mu);
	atomic_store(&r->px.refuse, 1);
	proxy_cut(&r->px);
	assert_true(wait_for(&r->w, state_count_at_least, down, WAIT_MS));
}

static void rig_back(struct rig *r)
{
	atomic_store(&r->px.refuse, 0);
}

/* ---- the server ---- */

static int port;
static pid_t server;

static void start_server(void)
{
	static const char *const none[] = {NULL};
	server = spawn_serve(AGENTGATE_BIN, port, data, config, NULL, logpath, none);
	if (server < 0)
		fail_msg("agentgate serve did not come up on port %d (log: %s)", port, logpath);
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/agentgate-client-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(config, sizeof(config), "%s/config.json", dir);
	snprintf(logpath, sizeof(logpath), "%s/serve.log", dir);
	/* "long" streams ~600 tokens, 3 ms apart: long enough to cut it several times */
	assert_int_equal(spawn_write_file(config, "{\"providers\":{\"scripted\":{\"pace_ms\":3}},"
					  "\"retry\":{\"base_ms\":10}}"), 0);
	port = spawn_free_port();
	start_server();
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int teardown(void **state)
{
	spawn_stop(server, SIGKILL);
	return 0;
}

static void rig_open(struct rig *r)
{
	memset(r, 0, sizeof(*r));
	proxy_start(&r->px, port);
	watch_init(&r->w);
	watch_init(&r->d);
	r->c = open_client(&r->w, r->px.port, NULL);
	r->direct = open_client(&r->d, port, NULL);
	create_session(r->direct, &r->d, r->root);
	subscribe(r->c, &r->w, r->root, -1);
	r->start = r->w.sub_seq;
}

/* Closes both clients and the proxy; r->w stays for the checks (watch_free it). */
static void rig_close(struct rig *r)
{
	ag_client_close(r->c);
	ag_client_close(r->direct);
	proxy_stop(&r->px);
	watch_free(&r->d);
}

/* ---- the tests ---- */

static void the_pure_parts_parse_urls_frames_and_keep_order(void **state)
{
	struct agc_url u;
	char err[256];
	assert_int_equal(agc_url_parse("http://127.0.0.1:4096", &u, err, sizeof(err)), 0);
	assert_string_equal(u.host, "127.0.0.1");
	assert_int_equal(u.port, 4096);
	assert_string_equal(u.path, "/ws");
	assert_string_equal(u.host_header, "127.0.0.1:4096");
	assert_int_equal(agc_url_parse("wss://gw.example/agentgate/", &u, err, sizeof(err)), 0);
	assert_true(u.tls);
	assert_int_equal(u.port, 443);
	assert_string_equal(u.path, "/agentgate/ws");
	assert_int_equal(agc_url_parse("ws://[::1]:81/ws?x=1", &u, err, sizeof(err)), 0);
	assert_string_equal(u.host, "::1");
	assert_string_equal(u.path, "/ws");
	assert_string_equal(u.host_header, "[::1]:81");
	assert_int_equal(agc_url_parse("ftp://x", &u, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "scheme"));
	assert_int_equal(agc_url_parse("http://h:99999", &u, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "port"));

	int64_t last = 10;
	assert_int_equal(agc_gate(&last, 11, 0), 1);
	assert_int_equal(agc_gate(&last, 11, 0), 0); /* a replayed event already delivered */
	assert_int_equal(agc_gate(&last, 5, 0), 0);
	assert_int_equal(agc_gate(&last, -1, 0), 1); /* server.shutdown */
	assert_int_equal(agc_gate(&last, 40, 1), 1);
	assert_int_equal(last, 40);

	struct agc_frame f;
	const char *ev = "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"type\":\"session.idle\","
			 "\"properties\":{},\"seq\":7,\"sessionID\":\"ses_b\",\"rootID\":\"ses_a\","
			 "\"parentID\":\"ses_a\",\"depth\":1}}";
	assert_int_equal(agc_frame_parse(&f, ev, strlen(ev)), 0);
	assert_int_equal(f.kind, AGC_EVENT);
	assert_int_equal(f.ev.seq, 7);
	assert_string_equal(f.ev.parent_id, "ses_a");
	assert_int_equal(f.ev.depth, 1);
	assert_null(f.ev.turn_id);
	agc_frame_free(&f);
	const char *er = "{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32602,\"message\":\"bad\"}}";
	assert_int_equal(agc_frame_parse(&f, er, strlen(er)), 0);
	assert_int_equal(f.kind, AGC_ANSWER);
	assert_int_equal(f.id, 3);
	assert_int_equal(f.code, -32602);
	agc_frame_free(&f);
	assert_int_equal(agc_frame_parse(&f, "{nope", 5), -1);
	agc_frame_free(&f);
	size_t len;
	assert_null(agc_request(1, "session.create", "[1]", 0, &len, err, sizeof(err)));
	assert_non_null(strstr(err, "object"));
	assert_null(agc_request(1, "no spaces", NULL, 0, &len, err, sizeof(err)));
}

static void calls_answer_with_results_and_named_errors(void **state)
{
	struct watch w;
	watch_init(&w);
	struct ag_client *c = open_client(&w, port, NULL);
	char sid[64];
	create_session(c, &w, sid);
	int st = AG_CLIENT_CONNECTED;
	assert_true(has_state(&w, &st));

	assert_int_equal(call(c, &w, "no.such.method", NULL), -32601);
	assert_non_null(strstr(w.message, "no.such.method"));
	assert_int_equal(call(c, &w, "session.get", "{\"sessionID\":\"ses_nope\"}"), -32004);
	assert_non_null(strstr(w.message, "ses_nope"));
	assert_int_equal(call(c, &w, "session.messages", "{\"sessionID\":\"x\",\"limit\":-1}"), -32602);
	char p[200];
	snprintf(p, sizeof(p), "{\"sessionID\":\"%s\",\"text\":\"hello\",\"wait\":true}", sid);
	assert_int_equal(call(c, &w, "session.prompt", p), 0);
	assert_non_null(strstr(w.result, "scripted demo model"));

	/* refused before anything is sent: done does not run */
	assert_int_equal(ag_client_call(c, "session.create", "[1]", on_done, &w), AG_CLIENT_E_INVALID);
	assert_int_equal(ag_client_call(c, "bad method", NULL, on_done, &w), AG_CLIENT_E_INVALID);
	struct ag_client_subscription nofn = {.size = sizeof(nofn)};
	assert_int_equal(ag_client_subscribe(c, &nofn, NULL, NULL), AG_CLIENT_E_INVALID);
	assert_int_equal(ag_client_close(c), 0);
	assert_int_equal(w.states[AG_CLIENT_CLOSED], 1);
	watch_free(&w);
}

static void a_subscription_streams_the_tree_with_its_envelope(void **state)
{
	struct watch w;
	watch_init(&w);
	struct ag_client *c = open_client(&w, port, NULL);
	char root[64];
	create_session(c, &w, root);
	char p[200];
	subscribe(c, &w, root, -1);
	assert_true(w.sub_seq > 0);
	assert_int_equal(ag_client_last_seq(c), w.sub_seq);
	prompt(c, &w, root, "task echo hi");
	wait_idle(&w, root, 0);
	pthread_mutex_lock(&w.mu); /* events may still arrive */
	assert_increasing(&w);
	int child_events = 0;
	for (int i = 0; i < w.n; i++) {
		assert_string_equal(w.ev[i].root, root);
		if (!strcmp(w.ev[i].session, root)) {
			assert_int_equal(w.ev[i].depth, 0);
			continue;
		}
		child_events++;
		assert_int_equal(w.ev[i].depth, 1);
		assert_string_equal(w.ev[i].parent, root);
		assert_true(w.ev[i].tool_call[0] != 0);
	}
	assert_true(child_events > 5);
	assert_true(ag_client_last_seq(c) >= w.ev[w.n - 1].seq);
	pthread_mutex_unlock(&w.mu);
	/* unsubscribed: nothing more arrives */
	assert_int_equal(ag_client_unsubscribe(c), 0);
	pthread_mutex_lock(&w.mu);
	int before = w.n;
	pthread_mutex_unlock(&w.mu);
	prompt(c, &w, root, "hello");
	snprintf(p, sizeof(p), "{\"sessionID\":\"%s\"}", root);
	assert_int_equal(call(c, &w, "session.get", p), 0); /* answered after the unsubscribe */
	ag_client_close(c);
	assert_int_equal(w.n, before);
	watch_free(&w);
}

static void cut_connections_resume_with_every_event_once_in_order(void **state)
{
	struct rig r;
	rig_open(&r);
	struct watch *w = &r.w;
	/* a reply of ~600 deltas and a subagent, cut five times while they stream */
	prompt(r.direct, &r.d, r.root, "long");
	for (int k = 1; k <= 5; k++) {
		int want = k * 60;
		if (!wait_for(w, events_at_least, &want, WAIT_MS))
			fail_msg("only %d events before cut %d", w->n, k);
		proxy_cut(&r.px);
		int again[2] = {AG_CLIENT_CONNECTED, k + 1};
		if (!wait_for(w, state_count_at_least, again, WAIT_MS))
			fail_msg("no reconnect after cut %d (%s)", k, w->why);
	}
	int first_idle = wait_idle(w, r.root, 0);
	/* calls made while no connection can be had wait in the queue */
	rig_away(&r);
	char p[200];
	snprintf(p, sizeof(p), "{\"sessionID\":\"%s\"}", r.root);
	assert_int_equal(ag_client_call(r.c, "session.get", p, on_done, w), 0);
	rig_back(&r);
	int one = 1;
	assert_true(wait_for(w, calls_at_least, &one, WAIT_MS));
	assert_int_equal(w->code, 0);
	assert_non_null(strstr(w->result, r.root));
	prompt(r.direct, &r.d, r.root, "task echo after the cuts");
	wait_idle(w, r.root, first_idle);
	rig_close(&r);
	assert_true(atomic_load(&r.px.cuts) >= 6);
	assert_increasing(w);
	struct watch ref;
	replay(&ref, port, r.root, r.start, 2);
	assert_true(ref.n > 600);
	assert_same_events(w, &ref);
	watch_free(&ref);
	watch_free(w);
}

/* The client's numbered events hold every one of ref's, in order, once. The client may
 * have seen a few more that the killed server had not committed. */
static void assert_holds_replay(struct watch *got, struct watch *ref)
{
	int i = 0;
	for (int j = 0; j < ref->n; j++) {
		if (ref->ev[j].seq < 0)
			continue;
		while (i < got->n && got->ev[i].seq != ref->ev[j].seq)
			i++;
		if (i == got->n)
			fail_msg("the replay's seq %lld (%s) never reached the client",
				 (long long)ref->ev[j].seq, ref->ev[j].type);
		assert_string_equal(got->ev[i].type, ref->ev[j].type);
	}
}

/* The server stops mid-stream (signo) and starts again; while it is away and coming
 * back the client cannot reach it (the proxy refuses), so everything the restart and
 * a prompt after it publish must come to the client by resuming from its last seq. */
static void restart_under_a_client(int signo, struct rig *r)
{
	rig_open(r);
	struct watch *w = &r->w;
	prompt(r->direct, &r->d, r->root, "long");
	int want = 100;
	assert_true(wait_for(w, events_at_least, &want, WAIT_MS));
	atomic_store(&r->px.refuse, 1);
	int st = spawn_stop(server, signo); /* mid-stream */
	if (signo == SIGTERM)
		assert_true(WIFEXITED(st));
	rig_away(r);
	start_server();
	int back[2] = {AG_CLIENT_CONNECTED, 2};
	assert_true(wait_for(&r->d, state_count_at_least, back, WAIT_MS));
	char p[200];
	snprintf(p, sizeof(p), "{\"sessionID\":\"%s\",\"text\":\"hello\",\"wait\":true}", r->root);
	assert_int_equal(call(r->direct, &r->d, "session.prompt", p), 0);
	pthread_mutex_lock(&w->mu);
	int before = w->n;
	pthread_mutex_unlock(&w->mu);
	rig_back(r);
	/* the cut turn ends as interrupted (at shutdown, or by recovery), then hello's */
	int next = signo == SIGKILL ? wait_idle(w, r->root, before) : before;
	wait_idle(w, r->root, next);
	rig_close(r);
	assert_increasing(w);
}

static void a_killed_and_restarted_server_loses_the_client_nothing(void **state)
{
	struct rig r;
	struct watch ref;
	restart_under_a_client(SIGKILL, &r);
	int interrupted = 0;
	for (int i = 0; i < r.w.n; i++)
		interrupted |= !strcmp(r.w.ev[i].type, "session.error");
	assert_true(interrupted); /* recovery's, published before the client was back */
	replay(&ref, port, r.root, r.start, 2);
	assert_holds_replay(&r.w, &ref);
	watch_free(&ref);
	watch_free(&r.w);
}

static void a_stopped_and_restarted_server_resumes_exactly(void **state)
{
	struct rig r;
	struct watch ref;
	restart_under_a_client(SIGTERM, &r);
	int seen_bye = 0;
	for (int i = 0; i < r.w.n; i++)
		seen_bye |= !strcmp(r.w.ev[i].type, "server.shutdown");
	assert_true(seen_bye);
	replay(&ref, port, r.root, r.start, 2);
	assert_same_events(&r.w, &ref);
	watch_free(&ref);
	watch_free(&r.w);
}

static void a_session_deleted_while_away_ends_the_subscription_with_a_resync(void **state)
{
	struct rig r;
	rig_open(&r);
	rig_away(&r);
	char p[200];
	snprintf(p, sizeof(p), "{\"sessionID\":\"%s\"}", r.root);
	assert_int_equal(call(r.direct, &r.d, "session.delete", p), 0);
	rig_back(&r);
	int one = 1;
	assert_true(wait_for(&r.w, events_at_least, &one, WAIT_MS));
	rig_close(&r);
	assert_int_equal(r.w.n, 1);
	assert_string_equal(r.w.ev[0].type, "resync");
	assert_string_equal(r.w.ev[0].session, r.root);
	watch_free(&r.w);
}

static void a_resume_from_before_what_is_kept_is_a_resync(void **state)
{
	/* a since from a numbering the server never had: it resumes live and says so */
	struct watch w;
	watch_init(&w);
	struct ag_client *c = open_client(&w, port, NULL);
	char root[64];
	create_session(c, &w, root);
	struct ag_client_subscription s = {
		.size = sizeof(s), .session_id = root, .descendants = 1, .since = 1LL << 40,
		.on_event = on_event, .user = &w,
	};
	assert_int_equal(ag_client_subscribe(c, &s, on_subscribed, &w), 0);
	int one = 1;
	assert_true(wait_for(&w, events_at_least, &one, WAIT_MS));
	assert_string_equal(w.ev[0].type, "resync");
	assert_true(w.ev[0].seq < (1LL << 40));
	prompt(c, &w, root, "hello");
	wait_idle(&w, root, 1);
	assert_increasing(&w);
	ag_client_close(c);
	watch_free(&w);
}

static void close_ends_queued_calls_and_no_callback_follows(void **state)
{
	struct watch w;
	watch_init(&w);
	struct ag_client *c = open_client(&w, spawn_free_port(), NULL); /* nobody there */
	int down = AG_CLIENT_DISCONNECTED;
	assert_true(wait_for(&w, has_state, &down, WAIT_MS));
	assert_int_equal(ag_client_call(c, "session.list", NULL, on_done, &w), 0);
	assert_int_equal(ag_client_call(c, "session.list", NULL, on_done, &w), 0);
	assert_int_equal(ag_client_close(c), 0);
	/* done before close returned, with the reason */
	assert_int_equal(w.calls_done, 2);
	assert_int_equal(w.code, AG_CLIENT_E_CLOSED);
	assert_int_equal(w.states[AG_CLIENT_CLOSED], 1);
	watch_free(&w);

	/* give_up_ms: FAILED, and calls after it are refused */
	watch_init(&w);
	char url[64], err[128];
	snprintf(url, sizeof(url), "ws://127.0.0.1:%d/ws", spawn_free_port());
	struct ag_client_opts o = {.size = sizeof(o), .url = url, .on_state = on_state, .user = &w,
				   .reconnect_min_ms = 10, .reconnect_max_ms = 50, .give_up_ms = 300};
	c = ag_client_open(&o, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(ag_client_call(c, "session.list", NULL, on_done, &w), 0);
	int failed = AG_CLIENT_FAILED;
	assert_true(wait_for(&w, has_state, &failed, WAIT_MS));
	assert_int_equal(w.calls_done, 1);
	assert_int_equal(w.code, AG_CLIENT_E_FAILED);
	assert_int_equal(ag_client_call(c, "session.list", NULL, on_done, &w), AG_CLIENT_E_FAILED);
	assert_int_equal(ag_client_close(c), 0);
	watch_free(&w);

	/* a bad URL is named */
	o.url = "gopher://x";
	assert_null(ag_client_open(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "gopher://x"));
}

static void close_from_a_callback_is_refused(void **state)
{
	struct watch w;
	watch_init(&w);
	w.stop_at_event = 1;
	w.close_rc = 1;
	struct ag_client *c = open_client(&w, port, NULL);
	char root[64];
	create_session(c, &w, root);
	subscribe(c, &w, root, -1);
	prompt(c, &w, root, "hello");
	int one = 1;
	assert_true(wait_for(&w, events_at_least, &one, WAIT_MS));
	wait_idle(&w, root, 0); /* the client goes on */
	assert_int_equal(w.close_rc, AG_CLIENT_E_THREAD);
	assert_int_equal(ag_client_close(c), 0);
	watch_free(&w);
}

static void a_token_is_sent_as_bearer_and_a_wrong_one_fails_fast(void **state)
{
	int p2 = spawn_free_port();
	char d2[240], l2[240];
	snprintf(d2, sizeof(d2), "%s/data-token", dir);
	snprintf(l2, sizeof(l2), "%s/serve-token.log", dir);
	static const char *const tok[] = {"--token", "s3cret", NULL};
	pid_t srv = spawn_serve(AGENTGATE_BIN, p2, d2, config, "s3cret", l2, tok);
	assert_true(srv > 0);
	struct watch w;
	watch_init(&w);
	struct ag_client *c = open_client(&w, p2, "wrong");
	int failed = AG_CLIENT_FAILED;
	assert_true(wait_for(&w, has_state, &failed, WAIT_MS));
	assert_non_null(strstr(w.why, "401"));
	ag_client_close(c);
	watch_free(&w);
	watch_init(&w);
	c = open_client(&w, p2, "s3cret");
	char sid[64];
	create_session(c, &w, sid);
	ag_client_close(c);
	watch_free(&w);
	spawn_stop(srv, SIGTERM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_pure_parts_parse_urls_frames_and_keep_order),
		cmocka_unit_test(calls_answer_with_results_and_named_errors),
		cmocka_unit_test(a_subscription_streams_the_tree_with_its_envelope),
		cmocka_unit_test(cut_connections_resume_with_every_event_once_in_order),
		cmocka_unit_test(a_killed_and_restarted_server_loses_the_client_nothing),
		cmocka_unit_test(a_stopped_and_restarted_server_resumes_exactly),
		cmocka_unit_test(a_session_deleted_while_away_ends_the_subscription_with_a_resync),
		cmocka_unit_test(a_resume_from_before_what_is_kept_is_a_resync),
		cmocka_unit_test(close_ends_queued_calls_and_no_callback_follows),
		cmocka_unit_test(close_from_a_callback_is_refused),
		cmocka_unit_test(a_token_is_sent_as_bearer_and_a_wrong_one_fails_fast),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
