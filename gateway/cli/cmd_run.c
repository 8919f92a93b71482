#include "cmd_run.h"
#include "cmd_config.h"
#include "engine.h"
#include "id.h"
#include "log.h"
#include "ndjson.h"
#include "plugins.h"
#include "runask.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The prompt waits for the MCP servers still connecting, at most this long: a little
 * over the mcp plugin's default startup_timeout_ms, after which it fails a server. */
#define MCP_WAIT_MS 35000
#define MCP_POLL_MS 50

struct run {
	struct engine *E;
	struct plugins *P;
	struct loop *L;
	struct ndjson out;
	struct runask *ask;
	struct bus_sub sub;
	struct turn_waiter w;
	char session[ID_MAX];
	int turn_over;
	int failed;
	int interrupted;
	const struct cli *c;
	struct timer mcp_wait; /* the prompt waits for MCP servers to connect */
	int64_t mcp_deadline;
	int exit_code;         /* set when the prompt could not be sent */
};

static void maybe_finish(struct run *r)
{
	if (r->turn_over && !engine_tree_busy(r->E, r->session))
		loop_stop(r->L);
}

static void on_event(void *arg, struct event *ev)
{
	struct run *r = arg;
	ndjson_on_event(&r->out, ev);
	runask_on_event(r->ask, ev);
	if (!strcmp(ev->type, "session.idle"))
		maybe_finish(r);
}

static void on_turn_end(struct turn_waiter *w, const char *state, const char *msg_id,
			const char *error)
{
	struct run *r = container_of(w, struct run, w);
	r->turn_over = 1;
	r->failed = strcmp(state, "completed") != 0;
	maybe_finish(r);
}

static void on_signal(void *arg, int signo)
{
	struct run *r = arg;
	log_warn("run: signal %d, aborting session %s", signo, r->session);
	r->interrupted = 1;
	engine_abort(r->E, r->session, NULL);
	loop_stop(r->L);
}

/* Do stdout and stderr reach the same place (a terminal each, or one pipe or file)? */
static int same_screen(void)
{
	struct stat o, e;
	if (isatty(1) && isatty(2))
		return 1;
	return !fstat(1, &o) && !fstat(2, &e) && o.st_dev == e.st_dev && o.st_ino == e.st_ino;
}

static int open_session(struct run *r, const struct cli *c, struct err *e)
{
	if (c->session) {
		if (engine_session_exists(r->E, c->session, e))
			return -1;
		snprintf(r->session, sizeof(r->session), "%s", c->session);
		return 0;
	}
	char title[81];
	snprintf(title, sizeof(title), "%s", c->prompt);
	struct session_params sp = {.title = title, .agent = c->agent};
	return engine_session_create(r->E, &sp, r->session, e);
}

static int send_prompt(struct run *r)
{
	struct err e = {0};
	struct prompt p = {
		.session_id = r->session, .text = r->c->prompt, .source = "cli",
		.agent = r->c->agent, .model = r->c->model,
	};
	struct prompt_result pr;
	if (engine_prompt(r->E, &p, &pr, &r->w, &e)) {
		fprintf(stderr, "agentgate run: %s\n", e.msg);
		return e.code == ERR_INTERNAL ? 1 : 2;
	}
	return 0;
}

/* 1 while an MCP server is still connecting (the mcp plugin's status record: its
 * tools are not registered yet), naming the first in name. */
static int mcp_connecting(struct engine *E, char *name, size_t n)
{
	char *status = NULL;
	size_t len = 0;
	if (engine_kv_get(E, "plugin:mcp", "status", &status, &len, NULL))
		return 0;
	cJSON *j = cJSON_ParseWithLength(status, len), *srv;
	int connecting = 0;
	cJSON_ArrayForEach(srv, j) {
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(srv, "status");
		if (cJSON_IsString(st) && !strcmp(st->valuestring, "connecting")) {
			if (name)
				snprintf(name, n, "%s", srv->string);
			connecting = 1;
			break;
		}
	}
	cJSON_Delete(j);
	free(status);
	return connecting;
}

static void mcp_check(struct timer *t)
{
	struct run *r = container_of(t, struct run, mcp_wait);
	char name[128];
	if (mcp_connecting(r->E, name, sizeof(name))) {
		if (mono_us() / 1000 < r->mcp_deadline) {
			timer_arm(t, MCP_POLL_MS);
			return;
		}
		fprintf(stderr, "agentgate run: MCP server \"%s\" is still connecting after %d s: "
			"the prompt runs without its tools\n", name, MCP_WAIT_MS / 1000);
	}
	if ((r->exit_code = send_prompt(r)))
		loop_stop(r->L);
}

static int start(struct run *r, const struct cli *c)
{
	struct err e = {0};
	struct engine_opts o = {
		.data_dir = c->data ? c->data : "./data", .owner = "agentgate run",
		.config_path = c->config,
		.model = c->model, .stall_ms = c->stall_ms,
		.openai_base_url = c->openai_base_url, .anthropic_base_url = c->anthropic_base_url,
		.workspace = c->workspace, .store = c->store,
	};
	r->E = engine_create(r->L, &o, &e);
	if (r->E && !(r->P = plugins_create(r->E)))
		snprintf(e.msg, sizeof(e.msg), "out of memory");
	if (!r->P || plugins_load_all(r->P, c->plugins, c->nplugins, &e) ||
	    !(r->ask = runask_start(r->E, r->L, c->yes, 0, stderr)) || /* after the plugins' hooks */
	    engine_recover(r->E, 0) || open_session(r, c, &e)) {
		fprintf(stderr, "agentgate run: %s\n", e.msg[0] ? e.msg : "cannot start");
		return e.code == ERR_INTERNAL ? 1 : 2;
	}
	ndjson_init(&r->out, stdout, r->session, c->json);
	ndjson_share_screen(&r->out, same_screen());
	bus_subscribe(engine_bus(r->E), &r->sub, on_event, r);
	r->w.fn = on_turn_end;
	r->c = c;
	timer_init(&r->mcp_wait, r->L, mcp_check);
	r->mcp_deadline = mono_us() / 1000 + MCP_WAIT_MS;
	if (!mcp_connecting(r->E, NULL, 0))
		return send_prompt(r);
	timer_arm(&r->mcp_wait, MCP_POLL_MS);
	return 0;
}

int cmd_run(const struct cli *c)
{
	struct run r;
	memset(&r, 0, sizeof(r));
	log_init_from_env(LOG_WARN);
	config_warn_unknown_keys(c->config);
	struct loop_config lc = {.port = -1};
	r.L = loop_create(&lc);
	if (!r.L)
		return 1;
	loop_on_signal(r.L, on_signal, &r);
	int rc = start(&r, c);
	if (rc == 0) {
		loop_run(r.L);
		rc = r.exit_code ? r.exit_code
		     : r.interrupted ? 130 : (r.failed || r.out.errors) ? 1 : 0;
		ndjson_end(&r.out);
	}
	timer_cancel(&r.mcp_wait);
	if (r.E) {
		engine_waiter_cancel(r.E, &r.w);
		bus_unsubscribe(engine_bus(r.E), &r.sub);
		runask_stop(r.ask);
		plugins_stop(r.P);
		engine_shutdown(r.E);
	}
	plugins_destroy(r.P);
	engine_destroy(r.E);
	loop_destroy(r.L);
	ndjson_share_screen(&r.out, 0); /* r goes: the log forgets it, however start ended */
	return rc;
}
