/* serve: `agentgate serve` — the engine behind HTTP, SSE and WebSocket, from start-up
 * to a graceful stop. */
#include "serve.h"
#include "log.h"
#include "paths.h"
#include "plugins.h"
#include "server.h"

#ifndef AG_WEB_INSTALL_DIR
#define AG_WEB_INSTALL_DIR "/usr/local/share/agentgate/web"
#endif

#include <arpa/inet.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The node's trees are finished or handed over; requests it forwarded, or runs for
 * another node, are answered before it stops (within the drain's bound). */
static void drained_check(struct timer *t)
{
	struct server *S = container_of(t, struct server, drained_t);
	if (forward_busy(S->fwd)) {
		timer_arm(t, 100);
		return;
	}
	log_info("serve: drained: every session tree finished or handed over");
	server_shutdown(S);
}

static void drained(void *arg)
{
	struct server *S = arg;
	timer_arm(&S->drained_t, 0);
}

/* A cluster node's first SIGTERM drains it (engine_cluster_drain): its trees finish or
 * go to the other nodes, for at most DRAIN_MS; a second signal, or SIGINT, stops now. */
#define DRAIN_MS 30000

static void drain_over(struct timer *t)
{
	struct server *S = container_of(t, struct server, drain_timer);
	log_warn("serve: drain took over %d ms: stopping (running turns fail as interrupted; "
		 "queued turns go to the other nodes)", DRAIN_MS);
	server_shutdown(S);
}

static void on_signal(void *arg, int signo)
{
	struct server *S = arg;
	log_info("serve: signal %d", signo);
	if (signo == SIGTERM && engine_node(S->E) && !engine_draining(S->E)) {
		timer_arm(&S->drain_timer, DRAIN_MS);
		engine_cluster_drain(S->E, drained, S);
		return;
	}
	server_shutdown(S);
}

/* --web, AGENTGATE_WEB, ./web, web/ beside the binary's build directory, where an
 * installation beside the binary keeps it, then the installed one. */
static void find_web_root(struct server *S, const char *flag)
{
	const char *tries[3] = {flag, getenv("AGENTGATE_WEB"), "web"};
	for (int i = 0; i < 3; i++)
		if (tries[i] && realpath(tries[i], S->web_root))
			return;
	if (!paths_beside_exe("../web", S->web_root, sizeof(S->web_root)) ||
	    !paths_beside_exe(AG_REL_WEB, S->web_root, sizeof(S->web_root)) ||
	    realpath(AG_WEB_INSTALL_DIR, S->web_root))
		return;
	S->web_root[0] = 0;
	log_warn("serve: no web/ directory found: static files are off (use --web DIR)");
}

/* The engine, its plugins (loaded before recovery resumes any queued turn), then
 * recovery. NULL when the engine or a required plugin cannot start (told on stderr). */
static struct engine *start_engine(struct server *S, const struct serve_opts *so)
{
	struct err e = {0};
	char owner[300];
	snprintf(owner, sizeof(owner), "agentgate serve at http://%s:%d", so->host, so->port);
	struct engine_opts o = so->engine;
	char url[300];
	snprintf(url, sizeof(url), "http://%s:%d", so->host, so->port);
	o.owner = owner;
	o.node_url = url;
	struct engine *E = engine_create(S->L, &o, &e);
	if (!E) {
		fprintf(stderr, "agentgate serve: %s\n", e.msg);
		return NULL;
	}
	S->P = plugins_create(E);
	if (!S->P || plugins_load_all(S->P, so->plugins, so->nplugins, &e)) {
		fprintf(stderr, "agentgate serve: %s\n", S->P ? e.msg : "out of memory");
		plugins_destroy(S->P);
		S->P = NULL;
		engine_destroy(E);
		return NULL;
	}
	if (engine_recover(E, 1))
		log_error("serve: start-up recovery failed; see the lines above");
	return E;
}

/* server.allowed_hosts: names besides the bind address and loopback that clients may
 * use in Host (e.g. behind a reverse proxy). */
static int allowed_hosts(const cJSON *sec, struct server *S, struct err *e)
{
	const cJSON *ah = cJSON_GetObjectItemCaseSensitive(sec, "allowed_hosts"), *h;
	if (!ah)
		return 0;
	if (!cJSON_IsArray(ah)) {
		err_set(e, ERR_INVALID, "config server.allowed_hosts: expected an array of host names");
		return -1;
	}
	S->allowed_hosts = calloc((size_t)cJSON_GetArraySize(ah) + 1, sizeof(char *));
	if (!S->allowed_hosts)
		return -1;
	cJSON_ArrayForEach(h, ah) {
		if (!cJSON_IsString(h) || !*h->valuestring) {
			err_set(e, ERR_INVALID, "config server.allowed_hosts: expected an array of "
				"host names (got a %s)", cJSON_IsString(h) ? "empty string" : "non-string");
			return -1;
		}
		if (!(S->allowed_hosts[S->nallowed++] = strdup(h->valuestring)))
			return -1;
	}
	return 0;
}

static void free_settings(struct server *S)
{
	for (int i = 0; i < S->nallowed; i++)
		free(S->allowed_hosts[i]);
	free(S->allowed_hosts);
}

/* The config's "server" section is needed before the engine (which needs the loop):
 * {"max_connections": 1024, "ws_ping_s": 30, "sse_heartbeat_ms": 10000,
 *  "subscriber_max_bytes": 67108864, "subscriber_max_behind_ms": 15000,
 *  "allowed_hosts": ["gateway.internal"]}. */
static int server_settings(const char *config_path, struct server *S, int *ping_s,
			   struct err *e)
{
	struct config cfg;
	if (config_load(&cfg, config_path, e)) {
		config_free(&cfg); /* what it had read before the bad value */
		return -1;
	}
	const cJSON *sec = cJSON_GetObjectItemCaseSensitive(cfg.root, "server");
	const cJSON *mc = cJSON_GetObjectItemCaseSensitive(sec, "max_connections");
	const cJSON *ping = cJSON_GetObjectItemCaseSensitive(sec, "ws_ping_s");
	const cJSON *hb = cJSON_GetObjectItemCaseSensitive(sec, "sse_heartbeat_ms");
	S->heartbeat_ms = cJSON_IsNumber(hb) && hb->valueint >= 50 ? hb->valueint : HEARTBEAT_MS;
	S->max_conns = cJSON_IsNumber(mc) && mc->valueint > 0 ? mc->valueint : MAX_CONNECTIONS;
	*ping_s = cJSON_IsNumber(ping) && ping->valueint > 0 ? ping->valueint : 30;
	const cJSON *sb = cJSON_GetObjectItemCaseSensitive(sec, "subscriber_max_bytes");
	const cJSON *sm = cJSON_GetObjectItemCaseSensitive(sec, "subscriber_max_behind_ms");
	S->sub_limits.max_bytes = cJSON_IsNumber(sb) && sb->valuedouble >= 65536 &&
				  sb->valuedouble <= 1e12 ? (size_t)sb->valuedouble : 0;
	S->sub_limits.max_behind_ms = cJSON_IsNumber(sm) && sm->valuedouble >= 100 &&
				      sm->valuedouble <= 864e5 ? (int64_t)sm->valuedouble : 0;
	int rc = allowed_hosts(sec, S, e);
	config_free(&cfg);
	return rc;
}

int serve_check_config(const char *path, struct err *e)
{
	struct server S;
	int ping_s;
	memset(&S, 0, sizeof(S));
	int rc = server_settings(path, &S, &ping_s, e);
	free_settings(&S);
	return rc;
}

int serve_run(const struct serve_opts *o)
{
	struct server S;
	int ping_s = 30;
	struct err e = {0};
	memset(&S, 0, sizeof(S));
	S.conns.next = S.conns.prev = &S.conns;
	S.token = o->token;
	S.bind_host = o->host;
	log_init_from_env(LOG_INFO);
	if (server_check_bind(o->host, o->token, o->insecure, &e) ||
	    server_settings(o->engine.config_path, &S, &ping_s, &e)) {
		fprintf(stderr, "agentgate serve: %s\n", e.msg[0] ? e.msg : "out of memory");
		free_settings(&S);
		return 2;
	}
	find_web_root(&S, o->web_root);
	if (server_listen(&S, o->host, o->port, ping_s, &e)) {
		fprintf(stderr, "agentgate serve: %s\n", e.msg);
		free_settings(&S);
		return 1;
	}
	S.E = start_engine(&S, o);
	if (!S.E) {
		server_close(&S);
		free_settings(&S);
		return 2;
	}
	bus_set_sub_limits(engine_bus(S.E), &S.sub_limits);
	timer_init(&S.drain_timer, S.L, drain_over);
	timer_init(&S.drained_t, S.L, drained_check);
	http_start(&S);
	S.fwd = forward_start(S.E, &e);
	if (!S.fwd && e.code) {
		fprintf(stderr, "agentgate serve: %s\n", e.msg);
		http_stop(&S);
		plugins_destroy(S.P);
		engine_destroy(S.E);
		server_close(&S);
		free_settings(&S);
		return 2;
	}
	loop_on_signal(S.L, on_signal, &S);
	log_info("serve: listening on http://%s:%d (data %s, model %s%s)", o->host, o->port,
		 o->engine.data_dir, engine_config(S.E)->model, o->token ? ", token required" : "");
	loop_run(S.L);
	plugins_stop(S.P);      /* no-ops after a signal; cover any other way out */
	timer_cancel(&S.drain_timer);
	timer_cancel(&S.drained_t);
	forward_stop(S.fwd);    /* requests under way for other nodes are answered 503 */
	http_stop(&S);
	engine_shutdown(S.E);
	server_detach_all(&S);  /* lws closes the sockets later, in loop_destroy */
	plugins_destroy(S.P);   /* after the engine ended every call a plugin had */
	engine_destroy(S.E);
	server_close(&S);
	free_settings(&S);
	log_info("serve: stopped");
	return 0;
}
