/* bench: figures, not pass/fail. Pure stages (SSE parsing, the wire codec, event
 * encoding) and the whole server: agentgate serve streaming N sessions from a scripted
 * provider (mockllm, whose tokens carry their send time) to an SSE subscriber, with
 * token-to-client latency, events/s, server CPU per delta, and RSS idle and under load.
 * Usage: bench [--quick]. Everything runs on 127.0.0.1 and stops by itself. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "bus.h"
#include "jw.h"
#include "sse.h"
#include "wire.h"

static int64_t mono_us_(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- pure stages ---- */

static int count_events(void *arg, const struct sse_event *ev)
{
	(*(long *)arg)++;
	return 0;
}

static char *openai_stream(size_t target, long *ntok)
{
	static const char chunk[] =
		"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
		"\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok \"},"
		"\"finish_reason\":null}]}\n\n";
	size_t n = target / (sizeof(chunk) - 1);
	char *b = malloc(n * (sizeof(chunk) - 1) + 1);
	for (size_t i = 0; i < n; i++)
		memcpy(b + i * (sizeof(chunk) - 1), chunk, sizeof(chunk) - 1);
	b[n * (sizeof(chunk) - 1)] = 0;
	*ntok = (long)n;
	return b;
}

static void on_text(void *arg, int r, const char *s, size_t n)
{
	(*(long *)arg)++;
}

static int to_wire(void *arg, const struct sse_event *ev)
{
	struct wire_state *w = arg;
	static long texts;
	struct wire_out out = {on_text, &texts};
	return wire_event(w, ev->type, ev->data, ev->data_len, &out);
}

static void pure_stages(void)
{
	long ntok, events = 0;
	size_t len = 64u << 20;
	char *s = openai_stream(len, &ntok);
	len = strlen(s);
	struct sse_parser p;
	sse_init(&p, 0, count_events, &events);
	int64_t t0 = mono_us_();
	for (size_t off = 0; off < len; off += 16384)
		sse_feed(&p, s + off, len - off < 16384 ? len - off : 16384);
	int64_t t1 = mono_us_();
	sse_free(&p);
	printf("sse parser:        %8.0f MB/s  (%ld events in %.1f MB)\n",
	       (double)len / (double)(t1 - t0), events, len / 1e6);
	struct wire_state w;
	wire_init(&w, WIRE_OPENAI);
	sse_init(&p, 0, to_wire, &w);
	t0 = mono_us_();
	for (size_t off = 0; off < len; off += 16384)
		sse_feed(&p, s + off, len - off < 16384 ? len - off : 16384);
	t1 = mono_us_();
	sse_free(&p);
	wire_free(&w);
	printf("sse + openai wire: %8.0f MB/s  %.2f M deltas/s\n", (double)len / (double)(t1 - t0),
	       (double)ntok / (double)(t1 - t0));
	free(s);
	struct bus *B = bus_create(NULL, 8192, 0);
	struct jw jw;
	jw_init(&jw);
	struct bus_env env = {.session_id = "ses_1fca000000000abcdefghijklmn", .root_id = "ses_1",
			      .turn_id = "turn_1fca000000000abcdefghijklmn", .path = "ses_1"};
	long n = 2000000;
	t0 = mono_us_();
	for (long i = 0; i < n; i++) {
		bus_begin(B, &jw, "message.part.delta");
		jw_obj(&jw);
		jw_kstr(&jw, "sessionID", env.session_id);
		jw_kstr(&jw, "messageID", "msg_1fca000000000abcdefghijklmn");
		jw_kstr(&jw, "partID", "prt_1fca000000000abcdefghijklmn");
		jw_kstr(&jw, "field", "text");
		jw_kstr(&jw, "delta", "tok ");
		jw_obj_end(&jw);
		bus_publish(B, &jw, "message.part.delta", &env);
	}
	t1 = mono_us_();
	printf("event encode+ring: %8.2f M events/s (%.0f ns each)\n", (double)n / (double)(t1 - t0),
	       1000.0 * (double)(t1 - t0) / (double)n);
	jw_free(&jw);
	bus_destroy(B);
}

/* "1.23 0.98 0.80": the load averages when the summary is printed. */
static const char *loadavg(void)
{
	static char buf[64];
	double a[3];
	FILE *f = fopen("/proc/loadavg", "r");
	if (f && fscanf(f, "%lf %lf %lf", &a[0], &a[1], &a[2]) == 3)
		snprintf(buf, sizeof(buf), "%.2f %.2f %.2f", a[0], a[1], a[2]);
	else
		snprintf(buf, sizeof(buf), "unknown");
	if (f)
		fclose(f);
	return buf;
}

/* ---- the server ---- */

#define MAXS 1024

struct run {
	char url[64];
	pid_t server, mock;
	atomic_int stop, connected;
	pthread_mutex_t lock;
	int64_t *lat;
	size_t nlat, cap;
	long events, deltas, idles;
	int64_t first_us, last_us;
	int nsess;
	char ids[MAXS][48];
	int64_t first_lat[MAXS]; /* latency of each session's first token, -1 until seen */
	int64_t prompted[MAXS];  /* when the prompt was sent */
	int64_t first_seen[MAXS]; /* when its first delta arrived, 0 until then */
	int mport;
	char dir[64];
	double floor_us; /* the floor probe's CPU per message, when measured */
};

static void add_lat(struct run *r, int64_t v)
{
	if (r->nlat == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 65536;
		r->lat = realloc(r->lat, r->cap * sizeof(*r->lat));
	}
	r->lat[r->nlat++] = v;
}

static int session_index(struct run *r, const char *id)
{
	for (int i = 0; i < r->nsess; i++)
		if (!strncmp(r->ids[i], id, strlen(r->ids[i])))
			return i;
	return -1;
}

/* A delta's text is the send times of the tokens it carries: "<us> <us> ...". */
static void on_delta(struct run *r, const char *json, int64_t now)
{
	const char *d = strstr(json, "\"delta\":\"");
	const char *sid = strstr(json, "\"sessionID\":\"");
	if (!d)
		return;
	int idx = sid ? session_index(r, sid + 13) : -1;
	for (const char *p = d + 9; *p && *p != '"';) {
		char *end;
		long long t = strtoll(p, &end, 10);
		if (end == p)
			break;
		add_lat(r, now - t);
		if (idx >= 0 && r->first_lat[idx] < 0) {
			r->first_lat[idx] = now - t;
			r->first_seen[idx] = now;
		}
		p = end;
		while (*p == ' ')
			p++;
	}
}

static int on_sse(void *arg, const struct sse_event *ev)
{
	struct run *r = arg;
	int64_t now = mono_us_();
	pthread_mutex_lock(&r->lock);
	r->events++;
	if (!r->first_us)
		r->first_us = now;
	r->last_us = now;
	if (strstr(ev->data, "\"type\":\"message.part.delta\"")) {
		r->deltas++;
		on_delta(r, ev->data, now);
	} else if (strstr(ev->data, "\"type\":\"session.idle\"")) {
		r->idles++;
	}
	atomic_store(&r->connected, 1);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

static size_t sub_write(char *b, size_t s, size_t n, void *arg)
{
	struct sse_parser *p = arg;
	sse_feed(p, b, s * n);
	return s * n;
}

static int sub_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	return atomic_load(&((struct run *)arg)->stop);
}

static void *subscriber(void *arg)
{
	struct run *r = arg;
	struct sse_parser p;
	/* a long reply's final message.part.updated carries its whole text (20,000 tokens: 240 KB) */
	sse_init(&p, 1 << 20, on_sse, r);
	char url[128];
	snprintf(url, sizeof(url), "%s/event", r->url);
	CURL *c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sub_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &p);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, sub_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, r);
	curl_easy_perform(c);
	curl_easy_cleanup(c);
	sse_free(&p);
	return NULL;
}

static size_t keep(char *b, size_t s, size_t n, void *arg)
{
	jw_append(arg, b, s * n);
	return s * n;
}

/* POSTs body to url+path; the response body goes to out (may be NULL). */
static long post(const struct run *r, const char *path, const char *body, struct jw *out)
{
	char url[256];
	snprintf(url, sizeof(url), "%s%s", r->url, path);
	struct jw sink;
	jw_init(&sink);
	CURL *c = curl_easy_init();
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out ? out : &sink);
	long code = 0;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	jw_free(&sink);
	return code;
}

static long proc_field(pid_t pid, const char *key)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	long v = -1;
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			v = atol(line + strlen(key));
	if (f)
		fclose(f);
	return v;
}

/* CPU time of every thread of pid, from /proc/PID/task/TID/schedstat (nanoseconds;
 * /proc/PID/stat counts in clock ticks, too coarse for a 50 ms run). */
static double cpu_seconds(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	unsigned long long total = 0;
	for (struct dirent *e; d && (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		char p2[320];
		snprintf(p2, sizeof(p2), "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
		FILE *f = fopen(p2, "r");
		unsigned long long ns = 0;
		if (f && fscanf(f, "%llu", &ns) == 1)
			total += ns;
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	return (double)total / 1e9;
}

/* What one thread of the server did, by name (ag-commit, ag-checkpoint, ...; the loop
 * has the process's name): CPU seconds, and how many times it was run (woken or
 * resumed after being preempted). */
struct tstat {
	char name[16];
	double secs;
	unsigned long long runs;
};

/* pid's threads, summed by name, into t (at most max): how many names. */
static int cpu_by_thread(pid_t pid, struct tstat *t, int max)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	int n = 0;
	for (struct dirent *e; d && (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		char p2[320], comm[16] = "";
		unsigned long long ns = 0, wait = 0, runs = 0;
		snprintf(p2, sizeof(p2), "/proc/%d/task/%s/comm", (int)pid, e->d_name);
		FILE *f = fopen(p2, "r");
		if (f && fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = 0;
		if (f)
			fclose(f);
		snprintf(p2, sizeof(p2), "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
		f = fopen(p2, "r");
		if (f && fscanf(f, "%llu %llu %llu", &ns, &wait, &runs) != 3)
			ns = runs = 0;
		if (f)
			fclose(f);
		int i = 0;
		while (i < n && strcmp(t[i].name, comm))
			i++;
		if (i == n && n < max)
			t[n++] = (struct tstat){.secs = 0};
		if (i < n) {
			snprintf(t[i].name, sizeof(t[i].name), "%s", comm);
			t[i].secs += (double)ns / 1e9;
			t[i].runs += runs;
		}
	}
	if (d)
		closedir(d);
	return n;
}

/* Per token, each thread's CPU and runs between two readings. */
/* What b[i] spent since a (the same thread by name, if it was there), per token. */
static struct tstat thread_delta(const struct tstat *a, int na, const struct tstat *bi,
				 size_t tokens)
{
	struct tstat before = {.secs = 0};
	for (int k = 0; k < na; k++)
		if (!strcmp(a[k].name, bi->name))
			before = a[k];
	struct tstat d = *bi;
	d.secs = tokens ? (bi->secs - before.secs) * 1e6 / (double)tokens : 0;
	d.runs = bi->runs - before.runs;
	return d;
}

static void print_threads(const struct tstat *a, int na, const struct tstat *b, int nb,
			  size_t tokens)
{
	printf("  by thread, per token ");
	for (int i = 0; i < nb && tokens; i++) {
		struct tstat d = thread_delta(a, na, &b[i], tokens);
		printf(" %s %.1f us %.2f runs;", d.name, d.secs, (double)d.runs / (double)tokens);
	}
	printf("\n");
}

/* us per token of the thread named name (0 if there is none). */
static double thread_us(const struct tstat *a, int na, const struct tstat *b, int nb,
			size_t tokens, const char *name)
{
	for (int i = 0; i < nb; i++)
		if (!strcmp(b[i].name, name))
			return thread_delta(a, na, &b[i], tokens).secs;
	return 0;
}

static pid_t spawn(char *const argv[], int *out_fd)
{
	int fds[2];
	if (pipe(fds))
		return -1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	*out_fd = fds[0];
	return pid;
}

/* A port nothing listens on now (the kernel's pick). A fixed formula could land on the
 * mock provider's own port, and the health check would then reach the wrong server. */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
	    !getsockname(fd, (struct sockaddr *)&a, &l))
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static int start_processes(struct run *r, const char *dir)
{
	int fd;
	snprintf(r->dir, sizeof(r->dir), "%s", dir);
	char *mock_argv[] = {MOCKLLM_BIN, NULL};
	r->mock = spawn(mock_argv, &fd);
	char line[64] = "";
	FILE *f = fdopen(fd, "r");
	int mport = 0;
	if (!f || !fgets(line, sizeof(line), f) || sscanf(line, "PORT %d", &mport) != 1)
		return -1;
	r->mport = mport;
	fclose(f);
	int port = free_port();
	if (port < 0)
		return -1;
	char sport[16], base[64], data[300], cfg[300];
	snprintf(sport, sizeof(sport), "%d", port);
	snprintf(base, sizeof(base), "http://127.0.0.1:%d/v1", mport);
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
	FILE *c = fopen(cfg, "w");
	fputs("{\"stall_timeout_ms\":600000,\"task\":{\"max_running\":64}}", c);
	fclose(c);
	/* AGENTGATE_BENCH_BIN: another build of the server, for a before/after figure */
	char *bin = getenv("AGENTGATE_BENCH_BIN") ? getenv("AGENTGATE_BENCH_BIN") : AGENTGATE_BIN;
	char *argv[] = {bin, "serve", "--port", sport, "--data", data, "--config", cfg,
			"--openai-base-url", base, NULL};
	setenv("AGENTGATE_LOG", "error", 1);
	r->server = spawn(argv, &fd);
	close(fd);
	snprintf(r->url, sizeof(r->url), "http://127.0.0.1:%d", port);
	for (int i = 0; i < 200; i++) {
		usleep(20000);
		CURL *h = curl_easy_init();
		char url[128];
		snprintf(url, sizeof(url), "%s/global/health", r->url);
		struct jw sink;
		jw_init(&sink);
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
		int ok = curl_easy_perform(h) == CURLE_OK;
		curl_easy_cleanup(h);
		jw_free(&sink);
		if (ok)
			return 0;
	}
	return -1;
}

static void stop_processes(struct run *r)
{
	kill(r->server, SIGTERM);
	kill(r->mock, SIGTERM);
	waitpid(r->server, NULL, 0);
	waitpid(r->mock, NULL, 0);
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct(int64_t *v, size_t n, double p)
{
	if (!n)
		return 0;
	size_t i = (size_t)(p * (double)(n - 1));
	return (double)v[i] / 1000.0;
}

static void create_and_prompt(struct run *r, int n, long tokens, int pace)
{
	char body[256];
	r->nsess = n;
	for (int i = 0; i < n; i++) {
		struct jw out;
		jw_init(&out);
		post(r, "/session", "{}", &out);
		const char *id = out.buf ? strstr(out.buf, "\"id\":\"") : NULL;
		snprintf(r->ids[i], sizeof(r->ids[i]), "%.30s", id ? id + 6 : "");
		r->first_lat[i] = -1;
		jw_free(&out);
	}
	for (int i = 0; i < n; i++) {
		char path[128];
		snprintf(path, sizeof(path), "/session/%s/prompt_async", r->ids[i]);
		snprintf(body, sizeof(body), "{\"model\":\"openai/stamped\",\"parts\":[{\"type\":"
			 "\"text\",\"text\":\"%ld %d\"}]}", tokens, pace);
		r->prompted[i] = mono_us_();
		post(r, path, body, NULL);
	}
}

static void report(struct run *r, int n, long tokens, int pace, long rss_idle, long rss_peak,
		   double cpu)
{
	qsort(r->lat, r->nlat, sizeof(*r->lat), cmp64);
	int64_t first[MAXS], p2f[MAXS];
	int nf = 0;
	for (int i = 0; i < n; i++)
		if (r->first_lat[i] >= 0) {
			p2f[nf] = r->first_seen[i] - r->prompted[i] - (int64_t)pace * 1000;
			first[nf++] = r->first_lat[i];
		}
	qsort(first, (size_t)nf, sizeof(*first), cmp64);
	qsort(p2f, (size_t)nf, sizeof(*p2f), cmp64);
	double secs = (double)(r->last_us - r->first_us) / 1e6;
	printf("\n%d sessions x %ld tokens, %s\n", n, tokens,
	       pace ? "paced like a model (one token per session every 20 ms)" : "as fast as the provider sends");
	printf("  tokens received       %zu of %ld\n", r->nlat, (long)n * tokens);
	printf("  events delivered      %ld (%ld deltas) in %.2f s = %.0f events/s to one subscriber\n",
	       r->events, r->deltas, secs, secs > 0 ? (double)r->events / secs : 0);
	printf("  token -> subscriber   p50 %.2f ms  p99 %.2f ms  max %.2f ms\n",
	       pct(r->lat, r->nlat, 0.5), pct(r->lat, r->nlat, 0.99), pct(r->lat, r->nlat, 1.0));
	printf("  first delta           p50 %.2f ms  p99 %.2f ms after the provider sent it\n",
	       pct(first, (size_t)nf, 0.5), pct(first, (size_t)nf, 0.99));
	printf("  prompt -> first delta p50 %.2f ms  p99 %.2f ms (HTTP prompt_async to subscriber,"
	       " less the provider's own first-token delay)\n", pct(p2f, (size_t)nf, 0.5),
	       pct(p2f, (size_t)nf, 0.99));
	printf("  server CPU            %.2f s = %.1f us per delta, %.1f us per token\n", cpu,
	       r->deltas ? cpu * 1e6 / (double)r->deltas : 0, r->nlat ? cpu * 1e6 / (double)r->nlat : 0);
	printf("  server RSS            idle %.1f MB, peak under load %.1f MB\n", rss_idle / 1024.0,
	       rss_peak / 1024.0);
}

/* mockllm and a server on a fresh data directory under dir (a mkdtemp template). */
static struct run *run_start(char *dir)
{
	struct run *r = calloc(1, sizeof(*r));
	if (!r || !mkdtemp(dir) || start_processes(r, dir)) {
		fprintf(stderr, "bench: cannot start mockllm and agentgate serve\n");
		free(r);
		return NULL;
	}
	return r;
}

static void run_stop(struct run *r, const char *dir)
{
	if (r->server)
		stop_processes(r);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench: could not remove %s\n", dir);
	free(r);
}

/* What one server run measured, for the summary. */
struct figures {
	double cpu_us_per_token;
	double p50_ms, p99_ms;
	long tokens, expected;
	long dropped;           /* subscribers cut off (agentgate_bus_subscribers_dropped_total) */
	double log_bytes_per_token, db_bytes_per_token;
	double loop_us, io_us; /* per token: the loop thread, the LLM I/O thread */
};

/* GET url into out (jw_init'd by the caller). */
static void http_get(const char *url, struct jw *out)
{
	CURL *c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_perform(c);
	curl_easy_cleanup(c);
}

/* A counter from GET /metrics, or -1. */
static long metric(const struct run *r, const char *name)
{
	char url[128];
	snprintf(url, sizeof(url), "%s/metrics", r->url);
	struct jw out;
	jw_init(&out);
	http_get(url, &out);
	long v = -1;
	for (const char *p = out.buf; p && (p = strstr(p, name)); p += strlen(name))
		if ((p == out.buf || p[-1] == '\n') && p[strlen(name)] == ' ')
			v = atol(p + strlen(name) + 1);
	jw_free(&out);
	return v;
}

/* Bytes on disk after the server stopped: the event log's rows, and the whole database
 * (its pages, after the checkpoint a clean stop makes, plus any WAL left). */
static void disk_figures(const char *dir, long tokens, struct figures *f)
{
	char path[128], wal[140];
	snprintf(path, sizeof(path), "%s/data/agentgate.db", dir);
	snprintf(wal, sizeof(wal), "%s-wal", path);
	sqlite3 *db;
	sqlite3_stmt *q;
	double log_bytes = 0;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT coalesce(sum(length(data)), 0) FROM event_batch", -1,
			       &q, NULL) == SQLITE_OK) {
		if (sqlite3_step(q) == SQLITE_ROW)
			log_bytes = (double)sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
	}
	sqlite3_close(db);
	struct stat a, b;
	double db_bytes = (stat(path, &a) ? 0 : (double)a.st_size) +
			  (stat(wal, &b) ? 0 : (double)b.st_size);
	f->log_bytes_per_token = tokens ? log_bytes / (double)tokens : 0;
	f->db_bytes_per_token = tokens ? db_bytes / (double)tokens : 0;
}

static int server_run(int n, long tokens, int pace, struct figures *fig)
{
	char dir[] = "/tmp/agentgate-bench-XXXXXX";
	struct run *r = run_start(dir);
	if (!r)
		return -1;
	pthread_mutex_init(&r->lock, NULL);
	sync(); /* the previous scenario's writeback must not land in this one's figures */
	usleep(300000);
	long rss_idle = proc_field(r->server, "VmRSS:");
	pthread_t th;
	pthread_create(&th, NULL, subscriber, r);
	for (int i = 0; i < 500 && !atomic_load(&r->connected); i++)
		usleep(10000);
	double cpu0 = cpu_seconds(r->server);
	struct tstat t0[16], t1[16];
	int nt0 = cpu_by_thread(r->server, t0, 16);
	create_and_prompt(r, n, tokens, pace);
	long rss_peak = 0;
	int64_t deadline = mono_us_() + 180 * 1000000LL;
	for (;;) {
		long rss = proc_field(r->server, "VmRSS:");
		if (rss > rss_peak)
			rss_peak = rss;
		pthread_mutex_lock(&r->lock);
		long idles = r->idles;
		pthread_mutex_unlock(&r->lock);
		if (idles >= n || mono_us_() > deadline)
			break;
		usleep(50000);
	}
	double cpu = cpu_seconds(r->server) - cpu0;
	int nt1 = cpu_by_thread(r->server, t1, 16);
	struct figures f = {.tokens = (long)r->nlat, .expected = (long)n * tokens};
	f.dropped = metric(r, "agentgate_bus_subscribers_dropped_total");
	atomic_store(&r->stop, 1);
	pthread_join(th, NULL);
	report(r, n, tokens, pace, rss_idle, rss_peak, cpu);
	f.cpu_us_per_token = r->nlat ? cpu * 1e6 / (double)r->nlat : 0;
	f.p50_ms = pct(r->lat, r->nlat, 0.5);
	f.p99_ms = pct(r->lat, r->nlat, 0.99);
	stop_processes(r);
	disk_figures(r->dir, f.tokens, &f);
	print_threads(t0, nt0, t1, nt1, r->nlat);
	/* the main thread (its name is the binary's) comes first in /proc's task list */
	f.loop_us = nt1 ? thread_us(t0, nt0, t1, nt1, r->nlat, t1[0].name) : 0;
	f.io_us = thread_us(t0, nt0, t1, nt1, r->nlat, "ag-llm-io");
	printf("  subscribers cut off   %ld\n", f.dropped);
	printf("  on disk               event log %.1f B per token, whole database %.1f B per token\n",
	       f.log_bytes_per_token, f.db_bytes_per_token);
	if (fig)
		*fig = f;
	free(r->lat);
	r->server = r->mock = 0;
	run_stop(r, dir);
	return 0;
}

/* ---- the floor: what relaying a token costs a thread that does nothing else ---- */

/* A connected pair of TCP sockets on 127.0.0.1, Nagle off (tokens go out as written). */
static int tcp_pair(int fd[2])
{
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &al))
		return -1;
	fd[0] = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd[0], (struct sockaddr *)&a, sizeof(a)))
		return -1;
	fd[1] = accept(l, NULL, NULL);
	close(l);
	setsockopt(fd[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd[1] < 0 ? -1 : 0;
}

/* This thread's CPU time in ns (/proc/thread-self/schedstat). */
static double thread_cpu_ns(void)
{
	FILE *f = fopen("/proc/thread-self/schedstat", "r");
	unsigned long long ns = 0;
	if (f && fscanf(f, "%llu", &ns) != 1)
		ns = 0;
	if (f)
		fclose(f);
	return (double)ns;
}

#define PROBE_MSG 300

struct probe {
	int in, out, n;
	double cpu_ns;
};

/* The relay: sleeps in epoll until a message arrives, reads it, writes it on. */
static void *relay_main(void *arg)
{
	struct probe *p = arg;
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = p->in};
	epoll_ctl(ep, EPOLL_CTL_ADD, p->in, &ev);
	char buf[4096];
	double c0 = thread_cpu_ns();
	for (long got = 0; got < (long)p->n * PROBE_MSG;) {
		if (epoll_wait(ep, &ev, 1, 5000) <= 0)
			break;
		ssize_t k = read(p->in, buf, sizeof(buf));
		if (k <= 0 || write(p->out, buf, (size_t)k) != k)
			break;
		got += k;
	}
	p->cpu_ns = thread_cpu_ns() - c0;
	close(ep);
	return NULL;
}

static void *sink_main(void *arg)
{
	struct probe *p = arg;
	char buf[4096];
	for (long got = 0; got < (long)p->n * PROBE_MSG;) {
		ssize_t k = read(p->out, buf, sizeof(buf));
		if (k <= 0)
			break;
		got += k;
	}
	return NULL;
}

/* n messages of PROBE_MSG bytes, one every pace_ms, source -> relay -> sink over
 * loopback: the relay thread's CPU per message, in us. */
static double floor_probe(int n, int pace_ms)
{
	int a[2], b[2];
	if (tcp_pair(a) || tcp_pair(b))
		return 0;
	struct probe relay = {.in = a[1], .out = b[0], .n = n}, sink = {.out = b[1], .n = n};
	pthread_t t1, t2;
	pthread_create(&t1, NULL, relay_main, &relay);
	pthread_create(&t2, NULL, sink_main, &sink);
	char msg[PROBE_MSG];
	memset(msg, 'x', sizeof(msg));
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (int i = 0; i < n; i++) {
		next.tv_nsec += (long)pace_ms * 1000000;
		while (next.tv_nsec >= 1000000000) {
			next.tv_nsec -= 1000000000;
			next.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		if (write(a[0], msg, sizeof(msg)) != (ssize_t)sizeof(msg))
			break;
	}
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	for (int i = 0; i < 2; i++) {
		close(a[i]);
		close(b[i]);
	}
	double us = relay.cpu_ns / 1000.0 / n;
	printf("\nfloor probe: a thread relaying %d-byte messages over loopback (wake, read, "
	       "write), one every %d ms\n  %.1f us CPU per message (%d messages)\n", PROBE_MSG,
	       pace_ms, us, n);
	return us;
}

/* An idle server's CPU: what it spends per second with nothing to do. */
static double idle_run(int secs)
{
	char dir[] = "/tmp/agentgate-bench-XXXXXX";
	struct run *r = run_start(dir);
	if (!r)
		return -1;
	sleep(3); /* start-up settles: its first commit, and the checkpoint up to 2 s after */
	double c0 = cpu_seconds(r->server);
	sleep((unsigned)secs);
	double ms = (cpu_seconds(r->server) - c0) * 1000.0 / secs;
	printf("\nidle server, %d s: %.3f ms CPU per second\n", secs, ms);
	run_stop(r, dir);
	return ms;
}

static long get_json_int(const char *url, const char *key)
{
	struct jw out;
	jw_init(&out);
	http_get(url, &out);
	const char *k = out.buf ? strstr(out.buf, key) : NULL;
	long v = k ? atol(k + strlen(key) + 2) : -1;
	jw_free(&out);
	return v;
}

/* Abort of a streaming turn: time until the provider sees its connection closed. */
static void abort_run(int samples)
{
	char dir[] = "/tmp/agentgate-bench-XXXXXX";
	struct run *r = run_start(dir);
	if (!r)
		return;
	char stats[64];
	snprintf(stats, sizeof(stats), "http://127.0.0.1:%d/_stats", r->mport);
	int64_t lat[64];
	int n = 0;
	for (int i = 0; i < samples && i < 64; i++) {
		struct jw out;
		jw_init(&out);
		post(r, "/session", "{}", &out);
		const char *id = out.buf ? strstr(out.buf, "\"id\":\"") : NULL;
		char sid[48], path[128];
		snprintf(sid, sizeof(sid), "%.30s", id ? id + 6 : "");
		jw_free(&out);
		snprintf(path, sizeof(path), "/session/%s/prompt_async", sid);
		post(r, path, "{\"model\":\"openai/stamped\",\"parts\":[{\"type\":\"text\","
		     "\"text\":\"100000 5\"}]}", NULL);
		for (int k = 0; k < 500 && get_json_int(stats, "\"active_streams\"") < 1; k++)
			usleep(2000);
		snprintf(path, sizeof(path), "/session/%s/abort", sid);
		int64_t t0 = mono_us_();
		post(r, path, "", NULL);
		while (get_json_int(stats, "\"active_streams\"") > 0 && mono_us_() - t0 < 2000000)
			;
		lat[n++] = mono_us_() - t0;
	}
	qsort(lat, (size_t)n, sizeof(*lat), cmp64);
	printf("\nabort of a streaming turn -> provider connection closed (%d samples, HTTP abort "
	       "round trip included)\n  p50 %.2f ms  max %.2f ms\n", n, pct(lat, (size_t)n, 0.5),
	       pct(lat, (size_t)n, 1.0));
	run_stop(r, dir);
}

/* One prompt's cost as the session grows: a short reply from the provider (mockllm's
 * "normal"), prompted with POST .../message and held until the reply; the server's CPU
 * for HISTORY_SAMPLES such prompts once the session has N turns behind it. The request
 * sent to the provider grows with the history by nature; the rest should not. */
#define HISTORY_SAMPLES 20

static void prompt_once(struct run *r, const char *path)
{
	if (post(r, path, "{\"model\":\"openai/normal\",\"parts\":[{\"type\":\"text\","
		 "\"text\":\"hello\"}]}", NULL) != 200)
		fprintf(stderr, "bench: a history prompt failed\n");
}

static void history_run(int quick)
{
	char dir[] = "/tmp/agentgate-bench-XXXXXX";
	struct run *r = run_start(dir);
	if (!r)
		return;
	struct jw out;
	jw_init(&out);
	post(r, "/session", "{}", &out);
	const char *id = out.buf ? strstr(out.buf, "\"id\":\"") : NULL;
	char path[128];
	snprintf(path, sizeof(path), "/session/%.30s/message", id ? id + 6 : "");
	jw_free(&out);
	printf("\none prompt (a short reply) on a session with N turns behind it, %d samples each\n",
	       HISTORY_SAMPLES);
	const int marks[] = {1, 100, 1000};
	int turns = 0;
	for (size_t m = 0; m < sizeof(marks) / sizeof(marks[0]); m++) {
		if (quick && marks[m] > 100)
			break;
		while (turns < marks[m]) {
			prompt_once(r, path);
			turns++;
		}
		double c0 = cpu_seconds(r->server);
		int64_t t0 = mono_us_();
		for (int i = 0; i < HISTORY_SAMPLES; i++)
			prompt_once(r, path);
		double cpu = cpu_seconds(r->server) - c0;
		int64_t wall = mono_us_() - t0;
		turns += HISTORY_SAMPLES;
		printf("  %4d turns   server CPU %6.0f us per prompt   prompt -> reply %6.2f ms\n",
		       marks[m], cpu * 1e6 / HISTORY_SAMPLES, (double)wall / 1000 / HISTORY_SAMPLES);
	}
	run_stop(r, dir);
}

int main(int argc, char **argv)
{
	int quick = 0;
	const char *only = NULL;
	long tokens = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = 1;
		else if (!strcmp(argv[i], "--only") && i + 1 < argc)
			only = argv[++i];
		else if (!strcmp(argv[i], "--tokens") && i + 1 < argc)
			tokens = atol(argv[++i]);
		else {
			fprintf(stderr, "usage: agentgate_bench [--quick] [--only pure|floor|idle|"
				"one|burst|paced|many|abort|history] [--tokens N]\n");
			return 2;
		}
	}
#define WANT(name) (!only || !strcmp(only, name))
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	printf("agentgate bench (%s)\n\n", quick ? "quick" : "full");
	double floor_us = 0, floor_after = 0, idle_ms = -1;
	struct figures one = {0}, burst = {0}, many = {0};
	if (WANT("pure"))
		pure_stages();
	if (WANT("floor") || WANT("one"))
		floor_us = floor_probe(quick ? 100 : 500, 20);
	if (WANT("idle"))
		idle_ms = idle_run(quick ? 3 : 10);
	if (WANT("one")) {
		server_run(1, tokens > 0 ? tokens : quick ? 100 : 500, 20, &one);
		/* again after it: the VM's speed drifts, and the ratio is to their mean */
		floor_after = floor_probe(quick ? 100 : 500, 20);
	}
	if (WANT("burst"))
		server_run(20, tokens > 0 ? tokens : quick ? 100 : 2000, 0, &burst);
	if (WANT("paced"))
		server_run(quick ? 20 : 100, tokens > 0 ? tokens : quick ? 50 : 200, 20, NULL);
	if (WANT("many"))
		server_run(quick ? 200 : 1000, tokens > 0 ? tokens : quick ? 50 : 100, 20, &many);
	if (WANT("abort"))
		abort_run(quick ? 5 : 20);
	if (WANT("history"))
		history_run(quick);
	printf("\nsummary (this machine, this run; load average %s)\n", loadavg());
	if (floor_after > 0) {
		double before = floor_us;
		floor_us = (before + floor_after) / 2;
		printf("  floor probe                    %.1f us CPU per relayed message (%.1f before "
		       "the paced stream, %.1f after)\n", floor_us, before, floor_after);
	} else if (floor_us > 0) {
		printf("  floor probe                    %.1f us CPU per relayed message\n", floor_us);
	}
	if (one.tokens && floor_us > 0)
		printf("  one paced stream               %.1f us CPU per token = %.1fx the floor "
		       "(LLM I/O thread %.1fx, loop %.1fx); event log %.1f B per token on disk\n",
		       one.cpu_us_per_token, one.cpu_us_per_token / floor_us, one.io_us / floor_us,
		       one.loop_us / floor_us, one.log_bytes_per_token);
	if (burst.tokens)
		printf("  20 sessions unpaced            %.1f us CPU per token (%ld tokens)\n",
		       burst.cpu_us_per_token, burst.tokens);
	if (many.expected)
		printf("  %ld paced sessions           %.1f us CPU per token, token -> subscriber "
		       "p50 %.1f ms p99 %.1f ms, %ld of %ld tokens, %ld subscribers cut off\n",
		       many.expected / (tokens > 0 ? tokens : quick ? 50 : 100), many.cpu_us_per_token,
		       many.p50_ms, many.p99_ms, many.tokens, many.expected, many.dropped);
	if (idle_ms >= 0)
		printf("  idle server                    %.3f ms CPU per second\n", idle_ms);
	curl_global_cleanup();
	return 0;
}
