/* cmd_attach: `agentgate attach URL` (cmd_attach.h). The client library's thread only
 * hands what arrives — events, call answers, connection changes — to the main thread,
 * which does everything else: the NDJSON (ndjson.c, as `run` prints it), permission
 * asks (termask.c, as `run` asks them), and deciding when the turn and every subagent
 * have ended. That is read from the events themselves, which the subscription resumes
 * without loss across reconnects: the prompt's terminal reply (the assistant message
 * answering its user message, finish other than tool-calls), then no session of the
 * tree busy and no user message of it unanswered (a background task's result arrives as
 * a new prompt before its child goes idle). */
#include "cmd_attach.h"
#include "id.h"
#include "jsonin.h"
#include "loop.h"
#include "ndjson.h"
#include "termask.h"
#include "vec.h"

#include <agentgate/client.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GIVE_UP_MS 60000   /* without the gateway this long, attach gives up */
#define ABORT_WAIT_MS 2000 /* interrupted: how long the abort may take */

/* What the client's thread hands over. */
struct item {
	struct item *next;
	enum { I_EVENT, I_STATE, I_ANSWER } kind;
	int code;   /* I_STATE: the state; I_ANSWER: 0 or the error's code */
	int tag;    /* I_ANSWER: the call it answers */
	char *json; /* I_EVENT: the event; I_ANSWER: the result */
	char *text; /* I_STATE: why; I_ANSWER: the error's message */
};

/* A set of ids (the tree's busy sessions, its unanswered user messages). */
struct idset {
	char (*id)[ID_MAX];
	int n, cap;
};

struct attach {
	const struct cli *cli;
	struct ag_client *c;
	pthread_mutex_t mu; /* items */
	struct item *head, *tail;
	int wake[2];        /* the client's thread → main */
	/* main thread */
	struct ndjson out;
	struct termask *ask;
	int tty;
	char root[ID_MAX], msg_id[ID_MAX];
	int next_tag;
	int ever_connected, down, gone; /* gone: the client gave up */
	char why[512];
	int prompted, terminal_seen, turn_over, turn_failed;
	struct idset busy, pending;
};

static int sig_pipe[2] = {-1, -1};

static void on_signal(int signo)
{
	char b = (char)signo;
	if (write(sig_pipe[1], &b, 1) < 0) {
		/* nothing to do: a signal already waits in the pipe */
	}
}

/* ---- the client's thread: hand everything over ---- */

static void push(struct attach *a, struct item *it)
{
	pthread_mutex_lock(&a->mu);
	int was_empty = !a->head;
	if (a->tail)
		a->tail->next = it;
	else
		a->head = it;
	a->tail = it;
	pthread_mutex_unlock(&a->mu);
	if (was_empty && write(a->wake[1], "x", 1) < 0) {
		/* the pipe is full: the main thread has a wake-up waiting */
	}
}

static struct item *item_new(int kind, int code, const char *json, size_t len, const char *text)
{
	struct item *it = calloc(1, sizeof(*it));
	if (!it)
		return NULL;
	it->kind = kind;
	it->code = code;
	it->json = json ? strndup(json, len) : NULL;
	it->text = text ? strdup(text) : NULL;
	return it;
}

static void item_free(struct item *it)
{
	free(it->json);
	free(it->text);
	free(it);
}

static void on_event(void *user, const struct ag_client_event *ev)
{
	struct item *it = item_new(I_EVENT, 0, ev->json, ev->len, NULL);
	if (it)
		push(user, it);
}

static void on_state(void *user, enum ag_client_state st, const char *why)
{
	struct item *it = item_new(I_STATE, st, NULL, 0, why);
	if (it)
		push(user, it);
}

struct call_ctx {
	struct attach *a;
	int tag;
};

static void on_answer(void *user, const struct ag_client_result *r)
{
	struct call_ctx *cc = user;
	struct item *it = item_new(I_ANSWER, r->code, r->json, r->len, r->message);
	if (it) {
		it->tag = cc->tag;
		push(cc->a, it);
	}
	free(cc);
}

/* ---- the tree's state, from its events ---- */

static int idset_find(const struct idset *s, const char *id)
{
	for (int i = 0; i < s->n; i++)
		if (!strcmp(s->id[i], id))
			return i;
	return -1;
}

static void idset_add(struct idset *s, const char *id)
{
	if (!id || idset_find(s, id) >= 0)
		return;
	void *grown = vec_reserve(s->id, &s->cap, s->n, sizeof(*s->id));
	if (!grown)
		return;
	s->id = grown;
	snprintf(s->id[s->n++], ID_MAX, "%s", id);
}

static void idset_del(struct idset *s, const char *id)
{
	int i = id ? idset_find(s, id) : -1;
	if (i >= 0)
		memcpy(s->id[i], s->id[--s->n], ID_MAX);
}

/* The turn and everything it started have ended. */
static int done(const struct attach *a)
{
	return a->prompted && a->turn_over && !a->busy.n && !a->pending.n;
}

static void track(struct attach *a, const char *type, const cJSON *props)
{
	if (!strcmp(type, "session.status")) {
		const char *sid = jsonin_get(props, "sessionID");
		const char *st = jsonin_get(cJSON_GetObjectItemCaseSensitive(props, "status"), "type");
		if (st && !strcmp(st, "idle"))
			idset_del(&a->busy, sid);
		else
			idset_add(&a->busy, sid);
	} else if (!strcmp(type, "message.updated")) {
		const cJSON *info = cJSON_GetObjectItemCaseSensitive(props, "info");
		const char *role = jsonin_get(info, "role"), *finish = jsonin_get(info, "finish");
		const char *parent = jsonin_get(info, "parentID");
		if (role && !strcmp(role, "user")) {
			idset_add(&a->pending, jsonin_get(info, "id"));
		} else if (finish && strcmp(finish, "tool-calls") && parent) {
			idset_del(&a->pending, parent);
			if (!strcmp(parent, a->msg_id)) {
				const cJSON *err = cJSON_GetObjectItemCaseSensitive(info, "error");
				a->terminal_seen = 1;
				a->turn_failed = err && !cJSON_IsNull(err);
			}
		}
	} else if (!strcmp(type, "session.updated") && a->terminal_seen &&
		   !strcmp(jsonin_get(props, "sessionID") ? jsonin_get(props, "sessionID") : "",
			   a->root)) {
		/* the turn's end announces the session last, after its session.error: the
		 * error line is out by now */
		a->turn_over = 1;
	}
}

/* ---- calls ---- */

static void reply_ask(void *arg, const char *id, const char *reply, const char *message);

static int call_start(struct attach *a, const char *method, const char *params)
{
	struct call_ctx *cc = malloc(sizeof(*cc));
	int rc = cc ? 0 : AG_CLIENT_E_NOMEM, tag = ++a->next_tag;
	if (cc) {
		/* cc is the client thread's from here: on_answer may free it at once */
		*cc = (struct call_ctx){a, tag};
		rc = ag_client_call(a->c, method, params, on_answer, cc);
	}
	if (!rc)
		return tag;
	free(cc);
	fprintf(stderr, "agentgate attach: cannot send %s: %s\n", method, ag_client_strerror(rc));
	return -1;
}

static void on_event_json(struct attach *a, const char *json)
{
	cJSON *ev = cJSON_Parse(json);
	const char *type = jsonin_get(ev, "type");
	if (!type) {
		cJSON_Delete(ev);
		return;
	}
	const cJSON *props = cJSON_GetObjectItemCaseSensitive(ev, "properties");
	if (!strcmp(type, "resync"))
		fprintf(stderr, "agentgate attach: the gateway no longer has every event since the "
			"last one shown: the output has a gap\n");
	ndjson_feed(&a->out, ev, now_ms());
	if (!strncmp(type, "permission.", 11)) {
		const char *id = jsonin_get(props, "id");
		if (strcmp(type, "permission.asked") || !id) {
			termask_event(a->ask, type, props);
		} else if (a->cli->yes) {
			reply_ask(a, id, "once", NULL);
		} else if (!a->tty) {
			char msg[300];
			snprintf(msg, sizeof(msg), "rejected: agentgate attach has no terminal to ask on "
				 "(stdin is not a TTY); run it with --yes to allow this (%.60s) and every "
				 "other ask", jsonin_get(props, "permission") ? jsonin_get(props, "permission")
									      : "ask");
			reply_ask(a, id, "reject", msg);
		} else {
			termask_event(a->ask, type, props);
		}
	}
	track(a, type, props);
	cJSON_Delete(ev);
}

static void reply_ask(void *arg, const char *id, const char *reply, const char *message)
{
	struct attach *a = arg;
	cJSON *p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "requestID", id);
	cJSON_AddStringToObject(p, "reply", reply);
	if (message)
		cJSON_AddStringToObject(p, "message", message);
	char *params = cJSON_PrintUnformatted(p);
	cJSON_Delete(p);
	if (!params || call_start(a, "permission.reply", params) < 0)
		fprintf(stderr, "agentgate attach: cannot answer permission %s\n", id);
	free(params); /* its answer (an ask already answered elsewhere) needs no one */
}

static void on_state_change(struct attach *a, int st, const char *why)
{
	if (st == AG_CLIENT_CONNECTED) {
		if (a->down)
			fprintf(stderr, "agentgate attach: reconnected\n");
		a->ever_connected = 1;
		a->down = 0;
	} else if (st == AG_CLIENT_DISCONNECTED) {
		snprintf(a->why, sizeof(a->why), "%s", why);
		if (!a->ever_connected)
			a->gone = 1; /* the gateway is not there: say so now rather than wait */
		else if (!a->down)
			fprintf(stderr, "agentgate attach: connection lost (%s); reconnecting\n", why);
		a->down = 1;
	} else if (st == AG_CLIENT_FAILED) {
		snprintf(a->why, sizeof(a->why), "%s", why);
		a->gone = 1;
	}
}

/* Handles what the client handed over; the answer to call `tag` (if it came) goes to
 * *ans (the caller frees it). */
static void drain(struct attach *a, int tag, struct item **ans, int discard)
{
	char buf[64];
	while (read(a->wake[0], buf, sizeof(buf)) > 0)
		;
	for (;;) {
		pthread_mutex_lock(&a->mu);
		struct item *it = a->head;
		if (it && !(a->head = it->next))
			a->tail = NULL;
		pthread_mutex_unlock(&a->mu);
		if (!it)
			return;
		if (discard)
			;
		else if (it->kind == I_EVENT)
			on_event_json(a, it->json);
		else if (it->kind == I_STATE)
			on_state_change(a, it->code, it->text ? it->text : "");
		if (it->kind == I_ANSWER && tag && it->tag == tag && ans && !*ans) {
			*ans = it;
			continue;
		}
		item_free(it);
	}
}

/* Runs the main loop once (at most ms; -1: until something happens). Returns the
 * signal that arrived, or 0. */
static int pump(struct attach *a, int ms, int tag, struct item **ans)
{
	struct pollfd p[3] = {
		{.fd = a->wake[0], .events = POLLIN},
		{.fd = sig_pipe[0], .events = POLLIN},
		{.fd = termask_wants_input(a->ask) ? 0 : -1, .events = POLLIN},
	};
	if (poll(p, 3, ms) < 0 && errno != EINTR)
		return 0;
	if (p[2].revents) {
		char buf[256];
		ssize_t n = read(0, buf, sizeof(buf));
		if (n > 0)
			termask_input(a->ask, buf, (size_t)n);
		else if (n == 0 || errno != EINTR)
			termask_closed(a->ask);
	}
	drain(a, tag, ans, 0);
	char s;
	if (p[1].revents && read(sig_pipe[0], &s, 1) == 1)
		return s;
	return 0;
}

/* A call, waited for (events keep flowing meanwhile). Its answer, or NULL when the
 * client gave up or a signal came (*sig). */
static struct item *await(struct attach *a, const char *method, const char *params, int *sig)
{
	int tag = call_start(a, method, params);
	struct item *ans = NULL;
	while (tag > 0 && !ans && !a->gone && !(*sig = pump(a, -1, tag, &ans)))
		;
	return ans;
}

/* ---- the command ---- */

static int fail(const char *fmt, const char *a, const char *b, int rc)
{
	fprintf(stderr, "agentgate attach: ");
	fprintf(stderr, fmt, a, b);
	fputc('\n', stderr);
	return rc;
}

/* The session to prompt or follow: --session (checked), or a new one. */
static int open_session(struct attach *a, int *sig)
{
	cJSON *p = cJSON_CreateObject();
	char title[81];
	if (a->cli->session) {
		cJSON_AddStringToObject(p, "sessionID", a->cli->session);
	} else {
		snprintf(title, sizeof(title), "%s", a->cli->prompt);
		cJSON_AddStringToObject(p, "title", title);
		if (a->cli->agent)
			cJSON_AddStringToObject(p, "agent", a->cli->agent);
	}
	char *params = cJSON_PrintUnformatted(p);
	cJSON_Delete(p);
	struct item *ans = await(a, a->cli->session ? "session.get" : "session.create", params, sig);
	free(params);
	if (!ans)
		return -1;
	int rc = ans->code;
	if (rc) {
		fail("%s%s", ans->text, "", 0);
	} else {
		cJSON *s = cJSON_Parse(ans->json);
		snprintf(a->root, sizeof(a->root), "%s", jsonin_get(s, "id") ? jsonin_get(s, "id") : "");
		cJSON_Delete(s);
	}
	item_free(ans);
	return rc ? -2 : 0;
}

static int subscribe(struct attach *a, int *sig)
{
	struct ag_client_subscription s = {
		.size = sizeof(s), .session_id = a->root, .descendants = 1, .since = -1,
		.on_event = on_event, .user = a,
	};
	struct call_ctx *cc = malloc(sizeof(*cc));
	if (!cc)
		return -1;
	int tag = ++a->next_tag;
	*cc = (struct call_ctx){a, tag}; /* the client thread's once handed over */
	if (ag_client_subscribe(a->c, &s, on_answer, cc)) {
		free(cc);
		return -1;
	}
	struct item *ans = NULL;
	while (!ans && !a->gone && !(*sig = pump(a, -1, tag, &ans)))
		;
	int rc = ans ? ans->code : -1;
	if (ans && rc)
		fail("subscribe: %s%s", ans->text, "", 0);
	if (ans)
		item_free(ans);
	return rc;
}

/* session.prompt with a messageID of our own, so that a prompt whose answer the
 * connection lost can be sent again: a second one is refused as "already used", which
 * says the first one landed. */
static int send_prompt(struct attach *a, int *sig)
{
	id_new(a->msg_id, "msg");
	cJSON *p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "sessionID", a->root);
	cJSON_AddStringToObject(p, "text", a->cli->prompt);
	cJSON_AddStringToObject(p, "messageID", a->msg_id);
	if (a->cli->agent)
		cJSON_AddStringToObject(p, "agent", a->cli->agent);
	if (a->cli->model)
		cJSON_AddStringToObject(p, "model", a->cli->model);
	char *params = cJSON_PrintUnformatted(p);
	cJSON_Delete(p);
	int rc = -1;
	for (int attempt = 0; params && attempt < 5; attempt++) {
		struct item *ans = await(a, "session.prompt", params, sig);
		if (!ans)
			break;
		int code = ans->code;
		int landed = code == 0 || (attempt && ans->text && strstr(ans->text, "already used"));
		if (!landed && code != AG_CLIENT_E_CONNECTION)
			fail("%s%s", ans->text, "", 0);
		item_free(ans);
		if (landed) {
			a->prompted = 1;
			rc = 0;
			break;
		}
		if (code != AG_CLIENT_E_CONNECTION) {
			rc = -2;
			break;
		}
	}
	free(params);
	return rc;
}

/* Interrupted while a turn runs: abort it (as `run` does), briefly waited for. */
static void abort_turn(struct attach *a)
{
	char params[128];
	snprintf(params, sizeof(params), "{\"sessionID\":\"%s\"}", a->root);
	int tag = call_start(a, "session.abort", params);
	struct item *ans = NULL;
	int64_t until = now_ms() + ABORT_WAIT_MS;
	while (tag > 0 && !ans && !a->gone && now_ms() < until)
		pump(a, (int)(until - now_ms()), tag, &ans);
	if (ans)
		item_free(ans);
}

static int run_attach(struct attach *a)
{
	int sig = 0, rc;
	/* the first connection: the gateway is there, or we say it is not */
	while (!a->ever_connected && !a->gone && !(sig = pump(a, -1, 0, NULL)))
		;
	if (sig)
		return 130;
	if (a->gone)
		return fail("cannot reach %s: %s", a->cli->url, a->why, 1);
	if ((rc = open_session(a, &sig)) || (rc = subscribe(a, &sig)))
		return sig ? 130 : a->gone ? fail("lost %s: %s", a->cli->url, a->why, 1)
			   : rc == -2 || rc == -32004 ? 2 : 1;
	ndjson_init(&a->out, stdout, a->root, a->cli->json);
	if (!a->cli->prompt)
		fprintf(stderr, "agentgate attach: following %s and its subagents (Ctrl-C stops)\n",
			a->root);
	if (a->cli->prompt && (rc = send_prompt(a, &sig)))
		return sig ? 130 : a->gone ? fail("lost %s: %s", a->cli->url, a->why, 1)
			   : rc == -2 ? 2 : 1;
	while (!sig && !a->gone && !done(a))
		sig = pump(a, -1, 0, NULL);
	if (!a->cli->json && !a->out.at_line_start)
		fputc('\n', stdout);
	if (sig) {
		if (a->prompted && !a->gone)
			abort_turn(a);
		return 130;
	}
	if (a->gone)
		return fail("lost %s before the turn ended: %s", a->cli->url, a->why, 1);
	return a->turn_failed || a->out.errors ? 1 : 0;
}

int cmd_attach(const struct cli *c)
{
	struct attach a;
	memset(&a, 0, sizeof(a));
	a.cli = c;
	a.tty = isatty(0);
	pthread_mutex_init(&a.mu, NULL);
	if (pipe(a.wake) || pipe(sig_pipe)) {
		perror("agentgate attach: pipe");
		return 1;
	}
	fcntl(a.wake[0], F_SETFL, O_NONBLOCK);
	fcntl(a.wake[1], F_SETFL, O_NONBLOCK);
	fcntl(sig_pipe[1], F_SETFL, O_NONBLOCK);
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* the root is known once the session is; events come only after the subscription */
	ndjson_init(&a.out, stdout, a.root, c->json);
	a.ask = termask_create(stderr, reply_ask, &a);
	char err[512];
	struct ag_client_opts o = {
		.size = sizeof(o), .url = c->url, .token = c->token, .on_state = on_state,
		.user = &a, .give_up_ms = GIVE_UP_MS,
	};
	int rc = 1;
	if (!a.ask)
		fprintf(stderr, "agentgate attach: out of memory\n");
	else if (!(a.c = ag_client_open(&o, err, sizeof(err))))
		rc = fail("%s%s", err, "", 2);
	else
		rc = run_attach(&a);
	ag_client_close(a.c); /* after it, no callback runs: the items can go */
	drain(&a, 0, NULL, 1);
	termask_destroy(a.ask);
	free(a.busy.id);
	free(a.pending.id);
	close(a.wake[0]);
	close(a.wake[1]);
	pthread_mutex_destroy(&a.mu);
	return rc;
}
