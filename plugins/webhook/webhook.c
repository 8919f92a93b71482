/* webhook: POSTs chosen events (option "events", default session.idle, session.error
 * and permission.asked; "*" for all, "plugin.*" for a prefix) as JSON to "url", so a bot learns a session
 * finished without polling. The observer thread only copies an event into a bounded
 * outbox (option "outbox"; when full, new events are dropped, counted and logged); one
 * sender thread of the plugin's own delivers them in order with libcurl, each request
 * bounded by "timeout_ms", retrying network errors, 408, 429 and 5xx up to
 * "max_retries" times with a doubling wait ("retry_ms" up to "retry_max_ms"). Neither
 * the loop nor the observer ever waits on the network. At unload an attempt or a wait
 * under way is cut short (curl_multi_wakeup) and what was not delivered is logged. */
#define _POSIX_C_SOURCE 200809L
#include "outbox.h"
#include "plug.h"

#include <curl/curl.h>
#include <inttypes.h>

static const char *const known_options[] = {"url", "events", "headers", "timeout_ms",
					    "max_retries", "retry_ms", "retry_max_ms",
					    "outbox", NULL};
static const char *const default_events[] = {"session.idle", "session.error",
					     "permission.asked", NULL};

enum { SENT, RETRY, GIVE_UP, STOPPING };

static struct webhook {
	const struct ag_host *host;
	ag_plugin *self;
	char *url;
	char **events;
	struct curl_slist *headers; /* Content-Type and the "headers" option */
	long long timeout_ms, max_retries, retry_ms, retry_max_ms, outbox_cap;
	struct outbox box;
	CURLM *multi;
	CURL *easy;
	pthread_t thread;
	int curl_ready, box_ready, running;
} W;

/* ---- the observer thread ---------------------------------------------------------- */

/* Is type one of "events": exact, "*", or a prefix ending in ".*" ("plugin.*"). A host
 * with hook_events filters already; an older one sends everything. */
static int wanted(const char *type)
{
	for (char **e = W.events; *e; e++) {
		size_t n = strlen(*e);
		if (!strcmp(*e, "*") || !strcmp(*e, type) ||
		    (n > 2 && !strcmp(*e + n - 2, ".*") && !strncmp(*e, type, n - 1)))
			return 1;
	}
	return 0;
}

static int on_event(void *user, const struct ag_ctx *ctx, void *data)
{
	const struct ag_event *ev = data;
	uint64_t ended = 0;
	if (ev->dropped)
		W.host->log(W.self, AG_LOG_WARN, "%" PRIu64 " events were dropped before seq %"
			    PRId64 " (this observer fell behind); any of them may be missing",
			    ev->dropped, ev->seq);
	if (!wanted(ev->type))
		return AG_HOOK_CONTINUE;
	long long full = outbox_push(&W.box, ev->type, ev->seq, ev->json, ev->json_len, &ended);
	if (full == 1 || full < 0)
		W.host->log(W.self, AG_LOG_WARN, "outbox full (%lld events waiting to be sent): "
			    "dropping %s (seq %" PRId64 ") and what follows until it drains",
			    W.outbox_cap, ev->type, ev->seq);
	if (ended)
		W.host->log(W.self, AG_LOG_WARN, "outbox drained: %" PRIu64 " events were dropped",
			    ended);
	return AG_HOOK_CONTINUE;
}

/* ---- the sender thread ------------------------------------------------------------ */

static size_t discard(char *p, size_t size, size_t n, void *user)
{
	return size * n;
}

/* Runs the easy handle on the multi handle until it ends (SENT, with curl's result in
 * *res) or the plugin stops (STOPPING). */
static int perform(CURLcode *res)
{
	int running = 1, left, rc = SENT;
	CURLMsg *msg;
	*res = CURLE_FAILED_INIT;
	curl_multi_add_handle(W.multi, W.easy);
	while (running) {
		if (outbox_stopping(&W.box)) {
			rc = STOPPING;
			break;
		}
		if (curl_multi_perform(W.multi, &running) != CURLM_OK)
			break;
		if (running)
			curl_multi_poll(W.multi, NULL, 0, 1000, NULL);
	}
	while ((msg = curl_multi_info_read(W.multi, &left)))
		if (msg->msg == CURLMSG_DONE)
			*res = msg->data.result;
	curl_multi_remove_handle(W.multi, W.easy);
	return rc;
}

/* One POST of it: SENT, RETRY, GIVE_UP or STOPPING; why says what went wrong. */
static int post(const struct outbox_item *it, char *why, size_t why_len)
{
	char err[CURL_ERROR_SIZE] = "", h_event[160], h_seq[64];
	long status = 0;
	CURLcode res;
	snprintf(h_event, sizeof(h_event), "X-Agentgate-Event: %.128s", it->type);
	snprintf(h_seq, sizeof(h_seq), "X-Agentgate-Seq: %" PRId64, it->seq);
	struct curl_slist extra[2] = {{h_event, &extra[1]}, {h_seq, W.headers}};
	curl_easy_setopt(W.easy, CURLOPT_HTTPHEADER, extra);
	curl_easy_setopt(W.easy, CURLOPT_POSTFIELDS, it->body);
	curl_easy_setopt(W.easy, CURLOPT_ERRORBUFFER, err);
	if (perform(&res) == STOPPING)
		return STOPPING;
	curl_easy_getinfo(W.easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_setopt(W.easy, CURLOPT_ERRORBUFFER, NULL);
	if (res == CURLE_OK && status >= 200 && status < 300)
		return SENT;
	if (res != CURLE_OK)
		snprintf(why, why_len, "%s", *err ? err : curl_easy_strerror(res));
	else
		snprintf(why, why_len, "HTTP status %ld", status);
	if (res == CURLE_URL_MALFORMAT || res == CURLE_UNSUPPORTED_PROTOCOL)
		return GIVE_UP;
	if (res == CURLE_OK && status != 408 && status != 429 && status < 500)
		return GIVE_UP;
	return RETRY;
}

static int64_t backoff_ms(int attempt)
{
	long long ms = W.retry_ms;
	for (int i = 1; i < attempt && ms < W.retry_max_ms; i++)
		ms *= 2;
	return ms < W.retry_max_ms ? ms : W.retry_max_ms;
}

/* Delivers it, retrying; 1 when the plugin stops before it is through. */
static int deliver(const struct outbox_item *it)
{
	char why[CURL_ERROR_SIZE + 32];
	for (int attempt = 1;; attempt++) {
		int r = post(it, why, sizeof(why));
		if (r == SENT || r == STOPPING)
			return r == STOPPING;
		if (r == GIVE_UP || attempt > W.max_retries) {
			W.host->log(W.self, AG_LOG_ERROR, "POST %s (seq %" PRId64 ") to %s: %s; "
				    "giving up after %d attempt%s", it->type, it->seq, W.url, why,
				    attempt, attempt == 1 ? "" : "s");
			return 0;
		}
		int64_t wait = backoff_ms(attempt);
		W.host->log(W.self, AG_LOG_WARN, "POST %s (seq %" PRId64 ") to %s: %s (attempt "
			    "%d of %lld); retrying in %" PRId64 " ms", it->type, it->seq, W.url,
			    why, attempt, W.max_retries + 1, wait);
		if (outbox_sleep(&W.box, wait))
			return 1;
	}
}

static void *sender(void *arg)
{
	struct outbox_item it;
	while (!outbox_pop(&W.box, &it)) {
		int stopped = deliver(&it);
		if (stopped)
			W.host->log(W.self, AG_LOG_WARN, "unloading: %s (seq %" PRId64 ") was not "
				    "delivered", it.type, it.seq);
		outbox_item_free(&it);
	}
	return NULL;
}

/* ---- options and load ------------------------------------------------------------- */

static int header_name_ok(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("!#$%&'*+-.^_`|~", *s)))
			return 0;
	return 1;
}

static int add_header(const char *name, const char *value, struct ag_error *err)
{
	size_t n = strlen(name) + strlen(value) + 3;
	char *line = malloc(n);
	struct curl_slist *l = NULL;
	if (line) {
		snprintf(line, n, "%s: %s", name, value);
		l = curl_slist_append(W.headers, line);
		free(line);
	}
	if (!l)
		return plug_fail(err, AG_E_INTERNAL, "out of memory");
	W.headers = l;
	return AG_OK;
}

static int opt_headers(const cJSON *o, struct ag_error *err)
{
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "headers"), *it;
	int rc = add_header("Content-Type", "application/json", err);
	if (h && !cJSON_IsObject(h))
		return plug_fail(err, AG_E_INVALID, "option \"headers\" must be an object of "
				 "header names to string values");
	cJSON_ArrayForEach(it, h) {
		if (rc)
			return rc;
		if (!header_name_ok(it->string) || !cJSON_IsString(it) ||
		    strpbrk(it->valuestring, "\r\n"))
			return plug_fail(err, AG_E_INVALID, "option \"headers\": \"%.64s\" must be "
					 "a header name with a one-line string value", it->string);
		rc = add_header(it->string, it->valuestring, err);
	}
	return rc;
}

static int opt_url(const cJSON *o, struct ag_error *err)
{
	const char *url = NULL;
	int rc = plug_opt_str(o, "url", NULL, &url, err);
	if (!rc && (!url || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))))
		rc = plug_fail(err, AG_E_INVALID, "option \"url\" is required: an http:// or "
			       "https:// URL to POST events to");
	if (!rc && !(W.url = strdup(url)))
		rc = plug_fail(err, AG_E_INTERNAL, "out of memory");
	return rc;
}

static int parse_options(const char *options, struct ag_error *err)
{
	cJSON *o = NULL;
	int rc = plug_options(options, known_options, &o, err);
	if (!rc)
		rc = opt_url(o, err);
	if (!rc)
		rc = plug_opt_strv(o, "events", default_events, &W.events, err);
	if (!rc)
		rc = opt_headers(o, err);
	if (!rc)
		rc = plug_opt_int(o, "timeout_ms", 10000, 1, 600000, &W.timeout_ms, err);
	if (!rc)
		rc = plug_opt_int(o, "max_retries", 5, 0, 1000, &W.max_retries, err);
	if (!rc)
		rc = plug_opt_int(o, "retry_ms", 1000, 1, 3600000, &W.retry_ms, err);
	if (!rc)
		rc = plug_opt_int(o, "retry_max_ms", 60000, 1, 86400000, &W.retry_max_ms, err);
	if (!rc)
		rc = plug_opt_int(o, "outbox", 1000, 1, 1000000, &W.outbox_cap, err);
	cJSON_Delete(o);
	return rc;
}

static int curl_setup(struct ag_error *err)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		return plug_fail(err, AG_E_INTERNAL, "curl_global_init failed");
	W.curl_ready = 1;
	W.multi = curl_multi_init();
	W.easy = curl_easy_init();
	if (!W.multi || !W.easy)
		return plug_fail(err, AG_E_INTERNAL, "cannot create curl handles");
	curl_easy_setopt(W.easy, CURLOPT_URL, W.url);
	curl_easy_setopt(W.easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(W.easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(W.easy, CURLOPT_TIMEOUT_MS, (long)W.timeout_ms);
	curl_easy_setopt(W.easy, CURLOPT_CONNECTTIMEOUT_MS, (long)W.timeout_ms);
	curl_easy_setopt(W.easy, CURLOPT_USERAGENT, "agentgate-webhook/1");
	curl_easy_setopt(W.easy, CURLOPT_WRITEFUNCTION, discard);
	return AG_OK;
}

/* The observer, for the chosen types only where the host can filter (ABI 1.0 hosts
 * without hook_events send every event, and wanted() picks). */
static int hook_events(struct ag_error *err)
{
	int (*filtered)(ag_plugin *, ag_hook_fn, void *, const char *) =
		AG_HOST_FN(W.host, hook_events);
	int n = 0;
	while (W.events[n])
		n++;
	if (!filtered || plug_strv_has(W.events, "*"))
		return W.host->hook(W.self, AG_HOOK_EVENT, on_event, NULL);
	cJSON *a = cJSON_CreateStringArray((const char *const *)W.events, n);
	char *types = cJSON_PrintUnformatted(a);
	int rc = types ? filtered(W.self, on_event, NULL, types) : AG_E_INTERNAL;
	cJSON_free(types);
	cJSON_Delete(a);
	return rc;
}

static void webhook_free(void)
{
	size_t left = 0;
	if (W.running) {
		outbox_stop(&W.box);
		curl_multi_wakeup(W.multi);
		pthread_join(W.thread, NULL);
	}
	if (W.box_ready)
		left = outbox_free(&W.box);
	if (left)
		W.host->log(W.self, AG_LOG_WARN, "unloading: %zu queued events were not delivered",
			    left);
	if (W.easy)
		curl_easy_cleanup(W.easy);
	if (W.multi)
		curl_multi_cleanup(W.multi);
	if (W.curl_ready)
		curl_global_cleanup();
	curl_slist_free_all(W.headers);
	free(W.url);
	free(W.events);
	memset(&W, 0, sizeof(W));
}

static int webhook_load(ag_plugin *self, const struct ag_host *host, const char *options,
			struct ag_error *err)
{
	memset(&W, 0, sizeof(W));
	W.host = host;
	W.self = self;
	int rc = parse_options(options, err);
	if (!rc)
		rc = curl_setup(err);
	if (!rc && outbox_init(&W.box, (size_t)W.outbox_cap))
		rc = plug_fail(err, AG_E_INTERNAL, "out of memory");
	W.box_ready = !rc;
	if (!rc && pthread_create(&W.thread, NULL, sender, NULL))
		rc = plug_fail(err, AG_E_INTERNAL, "cannot start the sender thread");
	W.running = !rc;
	if (!rc && (rc = hook_events(err)))
		plug_fail(err, rc, "cannot register the event hook");
	if (rc)
		webhook_free();
	return rc;
}

static void webhook_unload(ag_plugin *self)
{
	webhook_free();
}

static const struct ag_plugin_info info = {
	.magic = AG_PLUGIN_MAGIC,
	.abi_major = AG_ABI_MAJOR,
	.abi_minor = AG_ABI_MINOR,
	.size = sizeof(struct ag_plugin_info),
	.id = "webhook",
	.version = "1.0.0",
	.description = "POSTs chosen events to a URL, with retries, off the loop",
	.on_load = webhook_load,
	.on_unload = webhook_unload,
};

AG_EXPORT const struct ag_plugin_info *AG_PLUGIN_ENTRY(void)
{
	return &info;
}
