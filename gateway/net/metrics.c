/* metrics: GET /metrics — the gateway's state and counters in Prometheus' text format
 * (version 0.0.4): sessions and turns (engine), provider requests and tokens (llm),
 * the event bus and its subscribers (bus, and this server's connections), plugins and
 * MCP servers as GET /plugin and GET /mcp report them (read through api_call, so the
 * two can never disagree), and the process. Everything is read when scraped; the
 * counters behind it are plain integers kept on the loop thread. Loop thread. */
#include "api.h"
#include "llm.h"
#include "server.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void put(struct jw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct jw *w, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		jw_append(w, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* A family's HELP and TYPE lines (once, before its samples). */
static void family(struct jw *w, const char *name, const char *type, const char *help)
{
	put(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped as the format asks (\\, \", \n). */
static void label(struct jw *w, const char *k, const char *v, int first)
{
	put(w, "%s%s=\"", first ? "{" : ",", k);
	for (const char *p = v ? v : ""; *p; p++) {
		const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
		if (esc)
			jw_append(w, esc, 2);
		else
			jw_append(w, p, 1);
	}
	jw_append(w, "\"", 1);
}

/* name{k1="v1",k2="v2"} value; k1/k2 NULL for none. */
static void sample(struct jw *w, const char *name, const char *k1, const char *v1,
		   const char *k2, const char *v2, double value)
{
	jw_append(w, name, strlen(name));
	if (k1)
		label(w, k1, v1, 1);
	if (k2)
		label(w, k2, v2, 0);
	if (k1)
		jw_append(w, "}", 1);
	if (value == (double)(int64_t)value && value < 9e15 && value > -9e15)
		put(w, " %lld\n", (long long)value);
	else
		put(w, " %.6f\n", value);
}

static void gauge(struct jw *w, const char *name, const char *help, double v)
{
	family(w, name, "gauge", help);
	sample(w, name, NULL, NULL, NULL, NULL, v);
}

/* ---- sessions and turns ---- */

/* The engine counts prompts (accepted, coalesced, kept) and turns' ends by source: two
 * families, one pass each. */
static int prompt_outcome(const char *outcome)
{
	return !strcmp(outcome, "accepted") || !strcmp(outcome, "coalesced") ||
	       !strcmp(outcome, "kept");
}

static void prompt_count(void *arg, const char *source, const char *outcome, uint64_t n)
{
	if (prompt_outcome(outcome))
		sample(arg, "agentgate_prompts_total", "source", source, "result", outcome, (double)n);
}

static void turn_end_count(void *arg, const char *source, const char *outcome, uint64_t n)
{
	if (!prompt_outcome(outcome))
		sample(arg, "agentgate_turns_total", "source", source, "outcome", outcome, (double)n);
}

static void engine_part(struct server *S, struct jw *w)
{
	static const char *const states[] = {"idle", "busy", "retry"};
	struct engine_metrics m;
	engine_metrics(S->E, &m);
	family(w, "agentgate_sessions", "gauge",
	       "Sessions in memory by status (sessions not in memory are idle).");
	for (int i = 0; i < 3; i++)
		sample(w, "agentgate_sessions", "state", states[i], NULL, NULL, m.sessions[i]);
	gauge(w, "agentgate_turns_running", "Turns running now (one per busy session at most).",
	      m.turns_running);
	gauge(w, "agentgate_turns_queued", "Turns waiting in the sessions' queues (queue depth).",
	      m.turns_queued);
	family(w, "agentgate_prompts_total", "counter",
	       "Prompts by source (http, ws, cli, task, plugin:<id>): accepted as a turn of "
	       "their own, coalesced into one with the same dedupe key, or kept without a "
	       "turn (noReply).");
	engine_turn_counts(S->E, prompt_count, w);
	family(w, "agentgate_turns_total", "counter", "Turns ended, by source and outcome.");
	engine_turn_counts(S->E, turn_end_count, w);
	family(w, "agentgate_tool_completions_dropped_total", "counter",
	       "Tool completions for calls that had already ended (late, repeated or foreign).");
	sample(w, "agentgate_tool_completions_dropped_total", NULL, NULL, NULL, NULL,
	       (double)m.tool_completions_dropped);
	gauge(w, "agentgate_store_writable", "1 while the store can write, 0 while it fails.",
	      !m.store_failing);
}

/* ---- providers ---- */

static void provider_part(struct server *S, struct jw *w)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} counters[] = {
		{"agentgate_provider_requests_total", "Provider attempts started, retries included.",
		 offsetof(struct llm_stats, requests)},
		{"agentgate_provider_retries_total", "Attempts started again after a failure or stall.",
		 offsetof(struct llm_stats, retries)},
		{"agentgate_provider_stalls_total", "Attempts cut by the stall watchdog (no content "
		 "token for the stall timeout).", offsetof(struct llm_stats, stalls)},
		{"agentgate_provider_attempt_timeouts_total", "Attempts cut at limits.max_attempt_ms.",
		 offsetof(struct llm_stats, too_slow)},
		{"agentgate_provider_completed_total", "Streams that ended with a reply.",
		 offsetof(struct llm_stats, completed)},
		{"agentgate_provider_failures_total", "Streams that ended with an error, after any "
		 "retries.", offsetof(struct llm_stats, failed)},
	};
	static const struct {
		const char *kind;
		size_t off;
	} tokens[] = {
		{"input", offsetof(struct llm_stats, tokens_input)},
		{"output", offsetof(struct llm_stats, tokens_output)},
		{"reasoning", offsetof(struct llm_stats, tokens_reasoning)},
		{"cache_read", offsetof(struct llm_stats, tokens_cache_read)},
		{"cache_write", offsetof(struct llm_stats, tokens_cache_write)},
	};
	struct llm *M = engine_llm(S->E);
	struct llm_stats st;
	for (size_t k = 0; k < sizeof(counters) / sizeof(counters[0]); k++) {
		family(w, counters[k].name, "counter", counters[k].help);
		for (int i = 0; llm_stats(M, i, &st) == 0; i++)
			sample(w, counters[k].name, "provider", st.provider, NULL, NULL,
			       (double)*(const uint64_t *)((const char *)&st + counters[k].off));
	}
	family(w, "agentgate_tokens_total", "counter", "Tokens as the providers reported them.");
	for (int i = 0; llm_stats(M, i, &st) == 0; i++)
		for (size_t k = 0; k < sizeof(tokens) / sizeof(tokens[0]); k++)
			sample(w, "agentgate_tokens_total", "provider", st.provider, "kind", tokens[k].kind,
			       (double)*(const uint64_t *)((const char *)&st + tokens[k].off));
}

/* ---- the event bus and its subscribers ---- */

static void counter(struct jw *w, const char *name, const char *help, double v)
{
	family(w, name, "counter", help);
	sample(w, name, NULL, NULL, NULL, NULL, v);
}

/* The NATS bus (--bus nats://): its connection and this node's events (bus.h). */
static void nats_part(struct bus *B, struct jw *w)
{
	struct bus_nats_info i;
	if (bus_nats_info(B, &i))
		return;
	gauge(w, "agentgate_nats_connected", "1 while connected to NATS (--bus nats://).",
	      i.failure ? 0 : 1);
	counter(w, "agentgate_nats_reconnects_total", "Times the NATS connection came back.",
		(double)i.reconnects);
	counter(w, "agentgate_nats_events_published_total",
		"This node's events stored by JetStream.", (double)i.published);
	gauge(w, "agentgate_nats_events_pending_bytes",
	      "This node's events waiting for JetStream (bus_buffer_bytes at most).",
	      (double)i.pending_bytes);
	counter(w, "agentgate_nats_events_dropped_total",
		"This node's events dropped: the buffer was full (subscribers were told to resync).",
		(double)i.dropped);
	counter(w, "agentgate_nats_consumer_restarts_total",
		"The event consumer re-created (a reconnect, a gap, missed heartbeats).",
		(double)i.consumer_restarts);
	counter(w, "agentgate_nats_duplicates_total",
		"Stream messages received again and skipped (delivered once).", (double)i.duplicates);
}

static void bus_part(struct server *S, struct jw *w)
{
	struct bus *B = engine_bus(S->E);
	int64_t last = bus_last_seq(B);
	int n[2] = {0, 0};
	int64_t lag[2] = {0, 0}, max = 0;
	for (struct conn *c = S->conns.next; c != &S->conns; c = c->next) {
		if (!c->subscribed || (c->kind != C_SSE && c->kind != C_WS))
			continue;
		int k = c->kind == C_WS;
		/* what waits for it: its queue, and what it has still to replay */
		int64_t l = (int64_t)c->sub.n + (c->sub.catching_up ? last - c->sub.queued_seq : 0);
		n[k]++;
		lag[k] += l;
		if (l > max)
			max = l;
	}
	gauge(w, "agentgate_bus_last_seq", "The newest event's sequence number.", (double)last);
	gauge(w, "agentgate_bus_oldest_seq", "The oldest sequence number still replayable.",
	      (double)bus_oldest_seq(B));
	family(w, "agentgate_bus_subscribers", "gauge", "Event streams open, by transport.");
	sample(w, "agentgate_bus_subscribers", "transport", "sse", NULL, NULL, n[0]);
	sample(w, "agentgate_bus_subscribers", "transport", "ws", NULL, NULL, n[1]);
	family(w, "agentgate_bus_lag_events", "gauge",
	       "Events waiting to be written to subscribers (queued or still to replay), by "
	       "transport.");
	sample(w, "agentgate_bus_lag_events", "transport", "sse", NULL, NULL, (double)lag[0]);
	sample(w, "agentgate_bus_lag_events", "transport", "ws", NULL, NULL, (double)lag[1]);
	gauge(w, "agentgate_bus_lag_max_events", "Events waiting for the slowest subscriber.",
	      (double)max);
	family(w, "agentgate_bus_subscribers_dropped_total", "counter",
	       "Subscribers cut off for falling behind (server.subscriber_max_bytes or _max_behind_ms).");
	sample(w, "agentgate_bus_subscribers_dropped_total", NULL, NULL, NULL, NULL,
	       (double)bus_dropped(B));
	nats_part(B, w);
	gauge(w, "agentgate_connections", "HTTP requests, streams and WebSockets open.", S->nconns);
	gauge(w, "agentgate_connections_max", "server.max_connections.", S->max_conns);
}

/* ---- plugins and MCP servers, as the API reports them ---- */

static cJSON *api_json(struct server *S, const char *method)
{
	struct jw r;
	struct err e = {0};
	int unknown;
	jw_init(&r);
	cJSON *j = api_call(S->E, method, NULL, &r, &unknown, &e) || r.oom
			   ? NULL : cJSON_ParseWithLength(r.buf, r.len);
	jw_free(&r);
	return j;
}

static void plugin_part(struct server *S, struct jw *w)
{
	static const struct {
		const char *key, *name, *help;
		double scale;
	} counters[] = {
		{"hookCalls", "agentgate_plugin_hook_calls_total", "Hook calls into the plugin.", 1},
		{"hookTimeUs", "agentgate_plugin_hook_seconds_total", "Time spent in the plugin's "
		 "hooks.", 1e-6},
		{"hookErrors", "agentgate_plugin_hook_errors_total", "Hooks that failed (failing open).", 1},
		{"hookRefusals", "agentgate_plugin_hook_refusals_total", "Hooks that refused.", 1},
		{"slowHooks", "agentgate_plugin_slow_hooks_total", "Hooks over plugins.slow_hook_ms.", 1},
		{"eventsDelivered", "agentgate_plugin_events_delivered_total", "Events delivered to the "
		 "plugin's observer.", 1},
		{"eventsDropped", "agentgate_plugin_events_dropped_total", "Events dropped: the "
		 "plugin's observer queue was full.", 1},
		{"prompts", "agentgate_plugin_prompts_total", "Prompts the plugin sent.", 1},
		{"toolCalls", "agentgate_plugin_tool_calls_total", "Calls of the plugin's tools.", 1},
		{"toolDropped", "agentgate_plugin_tool_dropped_total", "Tool completions for calls "
		 "already ended.", 1},
		{"threadErrors", "agentgate_plugin_thread_errors_total", "Loop-only functions called "
		 "from another thread.", 1},
	};
	cJSON *list = api_json(S, "plugin.list");
	const cJSON *p;
	family(w, "agentgate_plugins_loaded", "gauge", "Plugins loaded.");
	sample(w, "agentgate_plugins_loaded", NULL, NULL, NULL, NULL, cJSON_GetArraySize(list));
	family(w, "agentgate_plugin_inflight", "gauge", "The plugin's tool calls and prompts not "
	       "ended.");
	cJSON_ArrayForEach(p, list)
		sample(w, "agentgate_plugin_inflight", "plugin",
		       cJSON_GetStringValue(cJSON_GetObjectItem(p, "id")), NULL, NULL,
		       cJSON_GetNumberValue(cJSON_GetObjectItem(p, "inflight")));
	for (size_t k = 0; k < sizeof(counters) / sizeof(counters[0]); k++) {
		family(w, counters[k].name, "counter", counters[k].help);
		cJSON_ArrayForEach(p, list) {
			const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(p, "counters"),
							     counters[k].key);
			if (cJSON_IsNumber(v))
				sample(w, counters[k].name, "plugin",
				       cJSON_GetStringValue(cJSON_GetObjectItem(p, "id")), NULL, NULL,
				       v->valuedouble * counters[k].scale);
		}
	}
	cJSON_Delete(list);
}

/* GET /mcp: {name: {status, tools, restarts, ...}} (OpenCode's shape), or a list of
 * {name, status, ...}. */
static void mcp_part(struct server *S, struct jw *w)
{
	static const char *const states[] = {"connected", "connecting", "failed", "disabled"};
	cJSON *all = api_json(S, "mcp.status");
	const cJSON *m;
	family(w, "agentgate_mcp_server_up", "gauge", "1 while the MCP server is connected.");
	cJSON_ArrayForEach(m, all) {
		const char *name = m->string ? m->string
					     : cJSON_GetStringValue(cJSON_GetObjectItem(m, "name"));
		const char *st = cJSON_GetStringValue(cJSON_GetObjectItem(m, "status"));
		sample(w, "agentgate_mcp_server_up", "server", name, NULL, NULL,
		       st && !strcmp(st, "connected"));
	}
	family(w, "agentgate_mcp_server_status", "gauge", "The MCP server's status (1 for the "
	       "current one).");
	cJSON_ArrayForEach(m, all) {
		const char *name = m->string ? m->string
					     : cJSON_GetStringValue(cJSON_GetObjectItem(m, "name"));
		const char *st = cJSON_GetStringValue(cJSON_GetObjectItem(m, "status"));
		for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
			sample(w, "agentgate_mcp_server_status", "server", name, "status", states[i],
			       st && !strcmp(st, states[i]));
	}
	family(w, "agentgate_mcp_server_tools", "gauge", "Tools the MCP server offers.");
	cJSON_ArrayForEach(m, all)
		sample(w, "agentgate_mcp_server_tools", "server",
		       m->string ? m->string : cJSON_GetStringValue(cJSON_GetObjectItem(m, "name")),
		       NULL, NULL, cJSON_GetArraySize(cJSON_GetObjectItem(m, "tools")));
	family(w, "agentgate_mcp_server_restarts_total", "counter", "Restarts of the MCP server.");
	cJSON_ArrayForEach(m, all)
		sample(w, "agentgate_mcp_server_restarts_total", "server",
		       m->string ? m->string : cJSON_GetStringValue(cJSON_GetObjectItem(m, "name")),
		       NULL, NULL, cJSON_GetNumberValue(cJSON_GetObjectItem(m, "restarts")) > 0
				   ? cJSON_GetNumberValue(cJSON_GetObjectItem(m, "restarts")) : 0);
	cJSON_Delete(all);
}

/* ---- the process (the names Prometheus' client libraries use) ---- */

static void process_part(struct jw *w)
{
	long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	unsigned long long utime = 0, stime = 0, start = 0, boot = 0;
	long rss = 0;
	char buf[2048];
	FILE *f = fopen("/proc/self/stat", "r");
	if (f) {
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = 0;
		fclose(f);
		/* after "(comm)", field 3 on: utime is 14, stime 15, starttime 22 */
		const char *p = strrchr(buf, ')');
		if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d "
				"%*d %*d %*d %*d %llu", &utime, &stime, &start) != 3)
			utime = stime = start = 0;
	}
	if ((f = fopen("/proc/stat", "r"))) {
		while (fgets(buf, sizeof(buf), f))
			if (sscanf(buf, "btime %llu", &boot) == 1)
				break;
		fclose(f);
	}
	if ((f = fopen("/proc/self/statm", "r"))) {
		if (fscanf(f, "%*d %ld", &rss) != 1)
			rss = 0;
		fclose(f);
	}
	int fds = 0;
	DIR *d = opendir("/proc/self/fd");
	for (struct dirent *e; d && (e = readdir(d));)
		fds += e->d_name[0] != '.';
	if (d)
		closedir(d);
	family(w, "process_cpu_seconds_total", "counter", "User and system CPU time, all threads.");
	sample(w, "process_cpu_seconds_total", NULL, NULL, NULL, NULL,
	       tick > 0 ? (double)(utime + stime) / (double)tick : 0);
	gauge(w, "process_resident_memory_bytes", "Resident memory.", (double)rss * (double)page);
	gauge(w, "process_open_fds", "Open file descriptors.", fds - (d ? 1 : 0));
	gauge(w, "process_start_time_seconds", "When the process started, seconds since 1970.",
	      tick > 0 && boot ? (double)boot + (double)start / (double)tick : 0);
}

/* ---- a cluster node (engine/cluster.c, forward.c) ---- */

static void cluster_part(struct server *S, struct jw *w)
{
	struct engine_cluster_counts c;
	struct forward_counts f;
	if (!engine_node(S->E))
		return;
	engine_cluster_counts(S->E, &c);
	forward_counts(S->fwd, &f);
	family(w, "agentgate_node_info", "gauge", "This cluster node's name.");
	sample(w, "agentgate_node_info", "node", engine_node(S->E), NULL, NULL, 1);
	gauge(w, "agentgate_node_draining", "1 while the node drains (SIGTERM).", c.draining);
	gauge(w, "agentgate_node_leases_ok", "1 while the node's leases renew in PostgreSQL.",
	      c.lease_ok);
	gauge(w, "agentgate_leases_held", "Session trees this node runs (their leases).", c.held);
	counter(w, "agentgate_leases_taken_total", "Leases this node took (a tree then recovered).",
		c.taken);
	counter(w, "agentgate_leases_adopted_total", "Trees taken over from a node that died.",
		c.adopted);
	counter(w, "agentgate_leases_released_total", "Leases of idle trees given up.",
		c.released);
	counter(w, "agentgate_forwarded_total", "Requests sent to the node running their "
		"session.", f.sent);
	counter(w, "agentgate_forward_served_total", "Requests other nodes sent here.", f.served);
	counter(w, "agentgate_forward_retries_total", "Forwarded requests sent again (their node "
		"did not answer).", f.retried);
	counter(w, "agentgate_forward_failures_total", "Forwarded requests answered with an error "
		"(the owner's, or none answered in time).", f.failed);
}

int metrics_write(struct server *S, struct jw *w)
{
	family(w, "agentgate_build_info", "gauge", "The gateway's version.");
	sample(w, "agentgate_build_info", "version", AGENTGATE_VERSION, NULL, NULL, 1);
	engine_part(S, w);
	provider_part(S, w);
	bus_part(S, w);
	cluster_part(S, w);
	plugin_part(S, w);
	mcp_part(S, w);
	process_part(w);
	return w->oom ? -1 : 0;
}
