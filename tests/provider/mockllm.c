/* mockllm: a scripted mock LLM provider for agentgate's tests.
 *
 * A real HTTP/1.1 server on 127.0.0.1 that streams the OpenAI chat-completions and the
 * Anthropic Messages wire formats, and misbehaves on purpose. The request's "model"
 * picks a scenario (see tests/provider/README.md); everything after a '@' in the model
 * is ignored for that choice but kept for the per-model request counters, so parallel
 * tests can use "flaky@t1", "flaky@t2" and not share a counter.
 *
 *   mockllm [--port N] [--exit-on-stdin-eof] [--verbose]
 *
 * Prints "PORT <n>\n" on stdout once listening. Single-threaded: one ppoll() loop, every
 * delay is a per-connection timer. Streams are sent with Transfer-Encoding: chunked and
 * Connection: close (one HTTP chunk per SSE event), so a dropped stream is a transport
 * error for the client, not a clean end of body. Other responses carry Content-Length.
 * Every connection is closed after its one response.
 *
 * Scenarios are written once as provider-neutral ops (start, text, reasoning, tool call,
 * argument fragment, finish, ...); a per-provider renderer turns each op into bytes at
 * the moment it is sent. Depends on libc and libcjson only. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HDR_MAX (64 * 1024)                  /* request line + headers */
#define BODY_MAX (1024 * 1024)               /* larger bodies get 413 */
#define RAW_MAX (HDR_MAX + 2 * BODY_MAX)     /* bytes buffered per request, framing included */
#define NEVER INT64_MAX
#define WRITE_BUDGET 64                      /* writes per connection per loop turn */
#define DRAIN_US 2000000                     /* linger after a response for the client's FIN */
#define LONG_DEFAULT 500
#define LONG_MAX_COUNT 100000000LL
#define MAX_TOOLS 16
#define UNUSED __attribute__((unused))

/* ---- utilities ------------------------------------------------------------------ */

static void die(const char *what)
{
	fprintf(stderr, "mockllm: %s: %s\n", what, strerror(errno));
	exit(2);
}

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct buf {
	char *p;
	size_t len, cap, off; /* off: bytes already sent (output buffers) */
};

/* Room for extra bytes plus a NUL; the buffer is always allocated afterwards. */
static void buf_reserve(struct buf *b, size_t extra)
{
	if (b->len + extra + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + extra + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p)
		die("realloc");
	b->p = p;
	b->cap = cap;
}

static void buf_add(struct buf *b, const void *d, size_t n)
{
	buf_reserve(b, n);
	if (n)
		memcpy(b->p + b->len, d, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		die("vsnprintf");
	buf_reserve(b, (size_t)n);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

__attribute__((format(printf, 2, 3))) static void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

static void buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

/* s as a JSON string literal, quotes included. Free with cJSON_free. */
static char *jq(const char *s)
{
	cJSON *j = cJSON_CreateString(s ? s : "");
	char *out = j ? cJSON_PrintUnformatted(j) : NULL;
	cJSON_Delete(j);
	if (!out)
		die("cJSON");
	return out;
}

static int g_verbose;

__attribute__((format(printf, 1, 2))) static void vlog(const char *fmt, ...)
{
	if (!g_verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("mockllm: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---- scripts: provider-neutral ops ----------------------------------------------- */

enum prov { OA, AN }; /* OpenAI chat completions, Anthropic messages */

enum opk {
	OP_START,     /* OA: role chunk; AN: message_start + ping */
	OP_TEXT,      /* q1: text */
	OP_REASON,    /* q1: reasoning text */
	OP_TOOL,      /* idx: tool index; q1: call id; q2: tool name */
	OP_ARGS,      /* idx: tool index; q1: argument fragment */
	OP_MALFORMED, /* a data line that is not JSON */
	OP_FINISH,    /* idx: FIN_* */
	OP_KEEPALIVE, /* repeats forever, delay_ms apart */
	OP_STALL,     /* sends nothing more, keeps the connection */
	OP_DROP,      /* closes the connection mid-stream */
	OP_COUNT
};

enum { FIN_STOP, FIN_TOOLS };

struct op {
	enum opk k;
	int delay_ms; /* wait before this op (and between its repeats) */
	int idx;
	long long repeat;
	char *q1, *q2; /* JSON string literals (jq), or NULL */
};

struct script {
	struct op *v;
	size_t n, cap;
};

static struct op *op_add(struct script *s, enum opk k, int delay_ms, int idx, const char *a,
			 const char *b)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 16;
		s->v = realloc(s->v, s->cap * sizeof *s->v);
		if (!s->v)
			die("realloc");
	}
	struct op *o = &s->v[s->n++];
	*o = (struct op){ k, delay_ms, idx, 1, a ? jq(a) : NULL, b ? jq(b) : NULL };
	return o;
}

static void script_free(struct script *s)
{
	for (size_t i = 0; i < s->n; i++) {
		cJSON_free(s->v[i].q1);
		cJSON_free(s->v[i].q2);
	}
	free(s->v);
	memset(s, 0, sizeof *s);
}

/* What a scenario may look at in the request. */
struct reqinfo {
	enum prov prov;
	int n;             /* requests for this model before this one */
	int step2;         /* the history holds a tool result */
	char *tool_result; /* text of the last tool result ("" if none) */
	char *last_user;   /* text of the last user message ("" if none) */
	char *recall;      /* the conversation received: "N msgs: role:text|role:text..." */
};

static void start(struct script *s) { op_add(s, OP_START, 0, 0, NULL, NULL); }
static void say(struct script *s, int delay_ms, const char *t) { op_add(s, OP_TEXT, delay_ms, 0, t, NULL); }
static void think(struct script *s, const char *t) { op_add(s, OP_REASON, 0, 0, t, NULL); }
static void finish(struct script *s, int why) { op_add(s, OP_FINISH, 0, why, NULL, NULL); }

static void hello(struct script *s)
{
	say(s, 0, "Hello");
	say(s, 0, " from");
	say(s, 0, " mock");
	say(s, 0, ".");
}

static void tool_call(struct script *s, const struct reqinfo *ri, int idx)
{
	char id[32];
	snprintf(id, sizeof id, ri->prov == AN ? "toolu_mock_%d" : "call_mock_%d", idx + 1);
	op_add(s, OP_TOOL, 0, idx, id, "echo");
}

/* Adds the k-th 3-byte fragment of json for tool idx; 0 when there is none. */
static int frag(struct script *s, int idx, const char *json, size_t k)
{
	size_t len = strlen(json);
	if (k * 3 >= len)
		return 0;
	char f[4] = { 0 };
	memcpy(f, json + k * 3, len - k * 3 < 3 ? len - k * 3 : 3);
	op_add(s, OP_ARGS, 0, idx, f, NULL);
	return 1;
}

static long long parse_count(const char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s))
		return LONG_DEFAULT;
	char *e;
	errno = 0;
	long long n = strtoll(s, &e, 10);
	while (isspace((unsigned char)*e))
		e++;
	if (*e || errno)
		return errno == ERANGE ? LONG_MAX_COUNT : LONG_DEFAULT;
	return n > LONG_MAX_COUNT ? LONG_MAX_COUNT : n;
}

/* ---- scenarios -------------------------------------------------------------------- */

#define ARGS_ONE "{\"text\":\"from mock\"}"
#define ARGS_A "{\"text\":\"a\"}"
#define ARGS_B "{\"text\":\"b\"}"

static void b_normal(struct script *s, const struct reqinfo *ri UNUSED)
{
	start(s);
	hello(s);
	finish(s, FIN_STOP);
}

static void b_reasoning(struct script *s, const struct reqinfo *ri UNUSED)
{
	start(s);
	think(s, "Thinking");
	think(s, " it");
	think(s, " over.");
	hello(s);
	finish(s, FIN_STOP);
}

static void b_tools(struct script *s, const struct reqinfo *ri)
{
	start(s);
	if (ri->step2) {
		say(s, 0, "tool said: ");
		if (*ri->tool_result)
			say(s, 0, ri->tool_result);
		finish(s, FIN_STOP);
		return;
	}
	tool_call(s, ri, 0);
	for (size_t k = 0; frag(s, 0, ARGS_ONE, k); k++)
		;
	finish(s, FIN_TOOLS);
}

/* OpenAI: the two calls' fragments interleave by index. Anthropic content blocks cannot
 * interleave, so there the second tool_use block follows the first. */
static void b_tools2(struct script *s, const struct reqinfo *ri)
{
	start(s);
	if (ri->step2) {
		say(s, 0, "got both");
		finish(s, FIN_STOP);
		return;
	}
	tool_call(s, ri, 0);
	if (ri->prov == AN) {
		for (size_t k = 0; frag(s, 0, ARGS_A, k); k++)
			;
		tool_call(s, ri, 1);
		for (size_t k = 0; frag(s, 1, ARGS_B, k); k++)
			;
	} else {
		frag(s, 0, ARGS_A, 0);
		tool_call(s, ri, 1);
		for (size_t k = 0; frag(s, 1, ARGS_B, k) | frag(s, 0, ARGS_A, k + 1); k++)
			;
	}
	finish(s, FIN_TOOLS);
}

static void b_stall_first(struct script *s, const struct reqinfo *ri UNUSED)
{
	op_add(s, OP_STALL, 0, 0, NULL, NULL);
}

static void b_stall_mid(struct script *s, const struct reqinfo *ri UNUSED)
{
	start(s);
	say(s, 0, "Partial");
	say(s, 0, " answer");
	op_add(s, OP_STALL, 0, 0, NULL, NULL);
}

static void b_stall_keepalive(struct script *s, const struct reqinfo *ri UNUSED)
{
	start(s);
	say(s, 0, "Partial");
	say(s, 0, " answer");
	op_add(s, OP_KEEPALIVE, 100, 0, NULL, NULL);
}

static void b_drop_mid(struct script *s, const struct reqinfo *ri)
{
	if (ri->n > 0) {
		b_normal(s, ri);
		return;
	}
	start(s);
	say(s, 0, "Hello");
	say(s, 0, " from");
	op_add(s, OP_DROP, 0, 0, NULL, NULL);
}

static void b_malformed(struct script *s, const struct reqinfo *ri UNUSED)
{
	start(s);
	say(s, 0, "Hello");
	op_add(s, OP_MALFORMED, 0, 0, NULL, NULL);
	say(s, 0, " from");
	say(s, 0, " mock");
	say(s, 0, ".");
	finish(s, FIN_STOP);
}

static void b_slow(struct script *s, const struct reqinfo *ri UNUSED)
{
	start(s);
	for (int i = 0; i < 10; i++) {
		char t[8];
		snprintf(t, sizeof t, "t%d ", i);
		say(s, 200, t);
	}
	finish(s, FIN_STOP);
}

/* "stamped": the last user message is "N [PACE_MS]"; each token's text is the
 * CLOCK_MONOTONIC microsecond at which it is written, so a benchmark can measure
 * provider-write -> subscriber latency per token. */
static void b_stamped(struct script *s, const struct reqinfo *ri)
{
	long long n = 100, pace = 20;
	if (sscanf(ri->last_user, "%lld %lld", &n, &pace) < 1 || n < 1 || n > LONG_MAX_COUNT)
		n = 100;
	start(s);
	op_add(s, OP_TEXT, (int)(pace < 0 ? 0 : pace), 0, "", NULL)->repeat = n;
	finish(s, FIN_STOP);
}

/* "endless": "tok " deltas as fast as the socket takes them, until the client closes. */
/* "recall": answers with the conversation it was sent (recall_of). */
static void b_recall(struct script *s, const struct reqinfo *ri)
{
	start(s);
	say(s, 0, ri->recall ? ri->recall : "0 msgs: ");
	finish(s, FIN_STOP);
}

static void b_endless(struct script *s, const struct reqinfo *ri UNUSED)
{
	start(s);
	op_add(s, OP_TEXT, 0, 0, "tok ", NULL)->repeat = LLONG_MAX;
}

/* "endless-args": one tool call whose arguments never end. */
static void b_endless_args(struct script *s, const struct reqinfo *ri)
{
	start(s);
	tool_call(s, ri, 0);
	op_add(s, OP_ARGS, 0, 0, "{\"text\":\"", NULL);
	op_add(s, OP_ARGS, 0, 0, "aaaaaaaaaaaaaaaa", NULL)->repeat = LLONG_MAX;
}

/* "drip": a "drip " delta every N ms (the last user message if it is a number, else
 * 1500) until the client closes: never a stall, never an end. */
static void b_drip(struct script *s, const struct reqinfo *ri)
{
	char *end;
	long long pace = strtoll(ri->last_user, &end, 10);
	if (end == ri->last_user || *end || pace < 1 || pace > 3600000)
		pace = 1500;
	start(s);
	op_add(s, OP_TEXT, (int)pace, 0, "drip ", NULL)->repeat = LLONG_MAX;
}

static void b_long(struct script *s, const struct reqinfo *ri)
{
	long long n = parse_count(ri->last_user);
	start(s);
	if (n > 0)
		op_add(s, OP_TEXT, 0, 0, "tok ", NULL)->repeat = n;
	finish(s, FIN_STOP);
}

/* Provider error bodies. Messages may hold one %s: the model (or the route). */
struct errdef {
	int status;
	const char *oa_type, *oa_code, *oa_msg; /* {"error":{"message","type"[,"code"]}} */
	const char *an_type, *an_msg;           /* {"type":"error","error":{"type","message"}} */
	const char *header;                     /* one extra response header, or NULL */
};

#define MSG_RATE "Rate limit reached for requests"
#define MSG_500 "The server had an error while processing your request"
#define MSG_AUTH "Incorrect API key provided"
/* A 429 in both formats, with the given retry header line. */
#define RATE_LIMITED(header) { 429, "rate_limit_error", NULL, MSG_RATE, "rate_limit_error", MSG_RATE, header }
static const struct errdef E_RATE = RATE_LIMITED("retry-after: 1");
static const struct errdef E_RATE_MS = RATE_LIMITED("retry-after-ms: 50");
static const struct errdef E_RATE_HOUR = RATE_LIMITED("retry-after: 3600");
static const struct errdef E_RATE_HUGE = RATE_LIMITED("retry-after: 99999999999999999");
static const struct errdef E_RATE_MS_HUGE = RATE_LIMITED("retry-after-ms: 99999999999999999999999");
static const struct errdef E_RATE_DATE = RATE_LIMITED("retry-after: Fri, 31 Dec 2100 23:59:59 GMT");
static const struct errdef E_RATE_PAST = RATE_LIMITED("retry-after: Wed, 21 Oct 2015 07:28:00 GMT");
static const struct errdef E_RATE_DECIMAL = RATE_LIMITED("retry-after: 0.25");
static const struct errdef E_SERVER = { 500, "server_error", NULL, MSG_500, "api_error", MSG_500, NULL };
static const struct errdef E_OVERLOADED = { 529, "overloaded_error", NULL, "Overloaded",
					    "overloaded_error", "Overloaded", NULL };
static const struct errdef E_BADMODEL = { 400, "invalid_request_error", "model_not_found",
					  "The model `%s` does not exist", "invalid_request_error",
					  "model: %s does not exist", NULL };
static const struct errdef E_AUTH = { 401, "invalid_request_error", "invalid_api_key", MSG_AUTH,
				      "authentication_error", MSG_AUTH, NULL };
static const struct errdef E_UNKNOWN = { 404, "invalid_request_error", "model_not_found",
					 "model not found: %s", "not_found_error",
					 "model not found: %s", NULL };
static const struct errdef E_BADJSON = { 400, "invalid_request_error", NULL,
					 "We could not parse the JSON body of your request.",
					 "invalid_request_error", "Request body is not valid JSON", NULL };
static const struct errdef E_NOMODEL = { 400, "invalid_request_error", NULL,
					 "you must provide a model parameter", "invalid_request_error",
					 "model: Field required", NULL };
static const struct errdef E_NOSTREAM = { 400, "invalid_request_error", NULL,
					  "mockllm only streams: set \"stream\": true",
					  "invalid_request_error",
					  "mockllm only streams: set \"stream\": true", NULL };
static const struct errdef E_TOOBIG = { 413, "invalid_request_error", NULL, "Request too large",
					"request_too_large",
					"Request exceeds the maximum allowed number of bytes", NULL };
static const struct errdef E_HDRBIG = { 431, "invalid_request_error", NULL,
					"Request header fields too large", "invalid_request_error",
					"Request header fields too large", NULL };
static const struct errdef E_BADHTTP = { 400, "invalid_request_error", NULL, "Malformed HTTP request",
					 "invalid_request_error", "Malformed HTTP request", NULL };
/* A request over the model's context window, as each API words it. */
static const struct errdef E_OVERFLOW = {
	400, "invalid_request_error", "context_length_exceeded",
	"This model's maximum context length is 8192 tokens. However, your messages resulted "
	"in 9012 tokens. Please reduce the length of the messages.",
	"invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum", NULL };
static const struct errdef E_ROUTE = { 404, "not_found_error", NULL, "Unknown route: %s",
				       "not_found_error", "Unknown route: %s", NULL };

enum { F_BYTEWISE = 1, F_TSID = 2, F_STAMP = 4 };
#define ERR_ODD (-2)

struct scenario {
	const char *name;
	void (*build)(struct script *s, const struct reqinfo *ri);
	const struct errdef *err; /* answered instead of streaming ... */
	int err_times;            /* ... for the first err_times requests; -1: always;
				   * ERR_ODD: the 1st, 3rd, 5th... */
	int flags;
};

static const struct scenario SCENARIOS[] = {
	{ "normal", b_normal, NULL, 0, 0 },
	{ "reasoning", b_reasoning, NULL, 0, 0 },
	{ "tools", b_tools, NULL, 0, 0 },
	{ "tools2", b_tools2, NULL, 0, 0 },
	{ "bytewise", b_normal, NULL, 0, F_BYTEWISE },
	{ "stall-first", b_stall_first, NULL, 0, 0 },
	{ "stall-mid", b_stall_mid, NULL, 0, 0 },
	{ "stall-keepalive", b_stall_keepalive, NULL, 0, 0 },
	{ "rate-limit", b_normal, &E_RATE, 1, 0 },
	{ "rate-limit-ms", b_normal, &E_RATE_MS, 1, 0 },
	{ "rate-limit-hour", b_normal, &E_RATE_HOUR, 1, 0 },
	{ "rate-limit-huge", b_normal, &E_RATE_HUGE, 1, 0 },
	{ "rate-limit-ms-huge", b_normal, &E_RATE_MS_HUGE, 1, 0 },
	{ "rate-limit-date", b_normal, &E_RATE_DATE, 1, 0 },
	{ "rate-limit-past", b_normal, &E_RATE_PAST, 1, 0 },
	{ "rate-limit-decimal", b_normal, &E_RATE_DECIMAL, 1, 0 },
	{ "flaky", b_normal, &E_SERVER, 1, 0 },
	{ "overloaded", b_normal, &E_OVERLOADED, 2, 0 },
	{ "always-500", NULL, &E_SERVER, -1, 0 },
	{ "drop-mid", b_drop_mid, NULL, 0, 0 },
	{ "malformed", b_malformed, NULL, 0, 0 },
	{ "bad-request", NULL, &E_BADMODEL, -1, 0 },
	{ "auth", NULL, &E_AUTH, -1, 0 },
	{ "slow", b_slow, NULL, 0, 0 },
	{ "long", b_long, NULL, 0, F_TSID },
	{ "endless", b_endless, NULL, 0, 0 },
	{ "endless-args", b_endless_args, NULL, 0, 0 },
	{ "drip", b_drip, NULL, 0, 0 },
	{ "recall", b_recall, NULL, 0, 0 },
	{ "stamped", b_stamped, NULL, 0, F_STAMP },
	{ "overflow", b_recall, &E_OVERFLOW, 1, 0 },
	{ "overflow-odd", b_recall, &E_OVERFLOW, ERR_ODD, 0 },
	{ "overflow-always", NULL, &E_OVERFLOW, -1, 0 },
};

static const struct scenario *scenario_find(const char *model)
{
	size_t len = strcspn(model, "@");
	for (size_t i = 0; i < sizeof SCENARIOS / sizeof *SCENARIOS; i++)
		if (strlen(SCENARIOS[i].name) == len && !strncmp(SCENARIOS[i].name, model, len))
			return &SCENARIOS[i];
	return NULL;
}

/* ---- connections ------------------------------------------------------------------ */

enum cst { ST_RECV, ST_SEND, ST_DRAIN, ST_CLOSED };

struct request {
	char *method, *path; /* path without the query */
	int minor;           /* HTTP/1.<minor> */
	cJSON *headers;      /* lowercased name -> value (repeats joined with ", ") */
	long long cl;        /* Content-Length, -1 if absent */
	int te_chunked, expect100, sent100;
	size_t hdr_len;      /* bytes up to and including the blank line; 0 until seen */
	struct buf dec;      /* decoded chunked body */
	const char *body;
	size_t body_len;
};

enum { BLK_TEXT, BLK_THINK, BLK_TOOL };

struct render {
	enum prov prov;
	char *model_q;  /* the model as a JSON literal */
	int ts_ids;     /* OpenAI chunk ids carry the send time */
	int stamp;      /* text tokens are their own send time ("<us> ") */
	int blk, blk_kind, nblocks; /* Anthropic: open block (-1 none) */
	int tool_blk[MAX_TOOLS];    /* Anthropic: tool index -> block index */
	long long ntok, nreason, ticks;
};

struct conn {
	int fd;
	enum cst st;
	struct buf in, out;
	struct request rq;
	struct script sc;
	size_t pc;          /* next op */
	long long rep;      /* repeats of ops[pc] done */
	struct render r;
	int64_t due;        /* when ops[pc] may run */
	int64_t wdue;       /* bytewise: when the next byte may go */
	int64_t wake;       /* service the connection at this time even without events */
	short events;
	unsigned is_stream : 1, finished : 1, chunked : 1, term : 1, bytewise : 1;
};

static struct {
	cJSON *by_model, *last, *last_by_model;
	long long total, client_aborts, active;
	int64_t accept_pause;
	struct conn **v;
	size_t n, cap;
} g;

static void conn_new(int fd)
{
	struct conn *c = calloc(1, sizeof *c);
	if (!c || !(c->rq.headers = cJSON_CreateObject()))
		die("calloc");
	c->fd = fd;
	c->rq.cl = -1;
	c->events = POLLIN;
	c->wake = NEVER;
	c->r.blk = -1;
	if (g.n == g.cap) {
		g.cap = g.cap ? 2 * g.cap : 64;
		g.v = realloc(g.v, g.cap * sizeof *g.v);
		if (!g.v)
			die("realloc");
	}
	g.v[g.n++] = c;
}

static void conn_free(struct conn *c)
{
	buf_free(&c->in);
	buf_free(&c->out);
	buf_free(&c->rq.dec);
	cJSON_Delete(c->rq.headers);
	free(c->rq.method);
	free(c->rq.path);
	script_free(&c->sc);
	cJSON_free(c->r.model_q);
	free(c);
}

/* Reads and discards what the peer sent. 1 if the peer has closed (or failed). */
static int drain_input(int fd)
{
	char b[4096];
	for (int i = 0; i < 64; i++) {
		ssize_t n = recv(fd, b, sizeof b, 0);
		if (n > 0 || (n < 0 && errno == EINTR))
			continue;
		return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
	}
	return 0;
}

static void stream_over(struct conn *c, int by_client)
{
	if (!c->is_stream || c->finished)
		return;
	c->finished = 1;
	g.active--;
	if (by_client)
		g.client_aborts++;
}

static void conn_close(struct conn *c, int by_client)
{
	if (c->st == ST_CLOSED)
		return;
	if (by_client && c->is_stream && !c->finished)
		vlog("fd %d: client closed the stream", c->fd);
	stream_over(c, by_client);
	close(c->fd);
	c->fd = -1;
	c->st = ST_CLOSED;
	c->events = 0;
	c->wake = NEVER;
}

/* After a complete response: half-close, then wait (bounded) for the client's FIN so
 * that unread request bytes cannot turn our close into a reset that loses the reply. */
static void conn_finish(struct conn *c)
{
	stream_over(c, 0);
	shutdown(c->fd, SHUT_WR);
	c->st = ST_DRAIN;
	c->events = POLLIN;
	c->wake = now_us() + DRAIN_US;
}

/* ---- output framing ---------------------------------------------------------------- */

/* Appends one SSE event (or comment) as one HTTP chunk. */
__attribute__((format(printf, 2, 3))) static void emit(struct conn *c, const char *fmt, ...)
{
	struct buf d = { 0 };
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&d, fmt, ap);
	va_end(ap);
	if (c->chunked)
		buf_printf(&c->out, "%zx\r\n", d.len);
	buf_add(&c->out, d.p, d.len);
	if (c->chunked)
		buf_str(&c->out, "\r\n");
	buf_free(&d);
}

/* ---- OpenAI renderer ----------------------------------------------------------------- */

static void oa_id(const struct conn *c, char *id, size_t n)
{
	if (c->r.ts_ids)
		snprintf(id, n, "mock-%lld", (long long)now_us());
	else
		snprintf(id, n, "chatcmpl-mock");
}

#define OA_HEAD "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":%s,"

static void oa_chunk(struct conn *c, const char *delta, const char *finish_reason)
{
	char id[48];
	oa_id(c, id, sizeof id);
	emit(c, OA_HEAD "\"choices\":[{\"index\":0,\"delta\":%s,\"finish_reason\":%s}]}\n\n", id,
	     c->r.model_q, delta, finish_reason);
}

__attribute__((format(printf, 2, 3))) static void oa_delta(struct conn *c, const char *fmt, ...)
{
	struct buf d = { 0 };
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&d, fmt, ap);
	va_end(ap);
	oa_chunk(c, d.p, "null");
	buf_free(&d);
}

static void oa_start(struct conn *c, const struct op *o UNUSED)
{
	oa_delta(c, "{\"role\":\"assistant\",\"content\":\"\"}");
}

/* The JSON string a text op sends: its text, or in stamped mode the send time. */
static const char *text_of(const struct conn *c, const struct op *o, char *buf, size_t n)
{
	if (!c->r.stamp)
		return o->q1;
	snprintf(buf, n, "\"%lld \"", (long long)now_us());
	return buf;
}

static void oa_text(struct conn *c, const struct op *o)
{
	char b[40];
	c->r.ntok++;
	oa_delta(c, "{\"content\":%s}", text_of(c, o, b, sizeof b));
}

static void oa_reason(struct conn *c, const struct op *o)
{
	c->r.nreason++;
	oa_delta(c, "{\"reasoning_content\":%s}", o->q1);
}

static void oa_tool(struct conn *c, const struct op *o)
{
	oa_delta(c,
		 "{\"tool_calls\":[{\"index\":%d,\"id\":%s,\"type\":\"function\","
		 "\"function\":{\"name\":%s,\"arguments\":\"\"}}]}",
		 o->idx, o->q1, o->q2);
}

static void oa_args(struct conn *c, const struct op *o)
{
	c->r.ntok++;
	oa_delta(c, "{\"tool_calls\":[{\"index\":%d,\"function\":{\"arguments\":%s}}]}", o->idx, o->q1);
}

static void oa_malformed(struct conn *c, const struct op *o UNUSED)
{
	emit(c, "data: {not json\n\n");
}

static void oa_finish(struct conn *c, const struct op *o)
{
	oa_chunk(c, "{}", o->idx == FIN_TOOLS ? "\"tool_calls\"" : "\"stop\"");
	long long out = c->r.ntok + c->r.nreason;
	char id[48], det[96] = "";
	if (c->r.nreason)
		snprintf(det, sizeof det, ",\"completion_tokens_details\":{\"reasoning_tokens\":%lld}",
			 c->r.nreason);
	oa_id(c, id, sizeof id);
	emit(c, OA_HEAD "\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":%lld,"
		"\"total_tokens\":%lld%s}}\n\n",
	     id, c->r.model_q, out, 12 + out, det);
	emit(c, "data: [DONE]\n\n");
}

static void oa_keepalive(struct conn *c, const struct op *o UNUSED)
{
	emit(c, ": keep-alive\n\n");
	if (++c->r.ticks % 3 == 0)
		oa_delta(c, "{\"content\":\"\"}");
}

/* ---- Anthropic renderer -------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void an_ev(struct conn *c, const char *type,
							const char *fmt, ...)
{
	struct buf d = { 0 };
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&d, fmt, ap);
	va_end(ap);
	emit(c, "event: %s\ndata: %s\n\n", type, d.p);
	buf_free(&d);
}

#define AN_DELTA "{\"type\":\"content_block_delta\",\"index\":%d,\"delta\":"

static void an_close(struct conn *c)
{
	if (c->r.blk < 0)
		return;
	if (c->r.blk_kind == BLK_THINK)
		an_ev(c, "content_block_delta",
		      AN_DELTA "{\"type\":\"signature_delta\",\"signature\":\"bW9ja3NpZw==\"}}", c->r.blk);
	an_ev(c, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":%d}", c->r.blk);
	c->r.blk = -1;
}

static int an_open(struct conn *c, int kind, const char *block_json)
{
	an_close(c);
	c->r.blk = c->r.nblocks++;
	c->r.blk_kind = kind;
	an_ev(c, "content_block_start",
	      "{\"type\":\"content_block_start\",\"index\":%d,\"content_block\":%s}", c->r.blk,
	      block_json);
	return c->r.blk;
}

/* The open block if it is a text/thinking block of that kind, else a new one. */
static int an_ensure(struct conn *c, int kind)
{
	if (c->r.blk >= 0 && c->r.blk_kind == kind)
		return c->r.blk;
	return an_open(c, kind, kind == BLK_TEXT ? "{\"type\":\"text\",\"text\":\"\"}"
						 : "{\"type\":\"thinking\",\"thinking\":\"\"}");
}

static void an_ping(struct conn *c)
{
	an_ev(c, "ping", "{\"type\": \"ping\"}");
}

static void an_start(struct conn *c, const struct op *o UNUSED)
{
	an_ev(c, "message_start",
	      "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_mock\",\"type\":\"message\","
	      "\"role\":\"assistant\",\"model\":%s,\"content\":[],\"stop_reason\":null,"
	      "\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}",
	      c->r.model_q);
	an_ping(c);
}

static void an_text_delta(struct conn *c, const char *q)
{
	int i = an_ensure(c, BLK_TEXT);
	an_ev(c, "content_block_delta", AN_DELTA "{\"type\":\"text_delta\",\"text\":%s}}", i, q);
}

static void an_text(struct conn *c, const struct op *o)
{
	char b[40];
	c->r.ntok++;
	an_text_delta(c, text_of(c, o, b, sizeof b));
}

static void an_reason(struct conn *c, const struct op *o)
{
	c->r.nreason++;
	int i = an_ensure(c, BLK_THINK);
	an_ev(c, "content_block_delta", AN_DELTA "{\"type\":\"thinking_delta\",\"thinking\":%s}}", i,
	      o->q1);
}

static void an_tool(struct conn *c, const struct op *o)
{
	struct buf b = { 0 };
	buf_printf(&b, "{\"type\":\"tool_use\",\"id\":%s,\"name\":%s,\"input\":{}}", o->q1, o->q2);
	int i = an_open(c, BLK_TOOL, b.p);
	buf_free(&b);
	if (o->idx >= 0 && o->idx < MAX_TOOLS)
		c->r.tool_blk[o->idx] = i;
	an_ev(c, "content_block_delta", AN_DELTA "{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}",
	      i);
}

static void an_args(struct conn *c, const struct op *o)
{
	c->r.ntok++;
	int i = o->idx >= 0 && o->idx < MAX_TOOLS ? c->r.tool_blk[o->idx] : c->r.blk;
	an_ev(c, "content_block_delta", AN_DELTA "{\"type\":\"input_json_delta\",\"partial_json\":%s}}",
	      i, o->q1);
}

static void an_malformed(struct conn *c, const struct op *o UNUSED)
{
	emit(c, "event: content_block_delta\ndata: {not json\n\n");
}

static void an_finish(struct conn *c, const struct op *o)
{
	an_close(c);
	an_ev(c, "message_delta",
	      "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"%s\",\"stop_sequence\":null},"
	      "\"usage\":{\"output_tokens\":%lld}}",
	      o->idx == FIN_TOOLS ? "tool_use" : "end_turn", c->r.ntok + c->r.nreason);
	an_ev(c, "message_stop", "{\"type\":\"message_stop\"}");
}

static void an_keepalive(struct conn *c, const struct op *o UNUSED)
{
	an_ping(c);
	if (++c->r.ticks % 3 == 0)
		an_text_delta(c, "\"\"");
}

typedef void (*render_fn)(struct conn *c, const struct op *o);

static const render_fn RENDER[2][OP_COUNT] = {
	[OA] = { [OP_START] = oa_start, [OP_TEXT] = oa_text, [OP_REASON] = oa_reason,
		 [OP_TOOL] = oa_tool, [OP_ARGS] = oa_args, [OP_MALFORMED] = oa_malformed,
		 [OP_FINISH] = oa_finish, [OP_KEEPALIVE] = oa_keepalive },
	[AN] = { [OP_START] = an_start, [OP_TEXT] = an_text, [OP_REASON] = an_reason,
		 [OP_TOOL] = an_tool, [OP_ARGS] = an_args, [OP_MALFORMED] = an_malformed,
		 [OP_FINISH] = an_finish, [OP_KEEPALIVE] = an_keepalive },
};

/* ---- sending ---------------------------------------------------------------------------- */

static void conn_abort(struct conn *c)
{
	vlog("fd %d: dropping the connection mid-stream", c->fd);
	drain_input(c->fd); /* unread input would turn the FIN into a reset */
	conn_close(c, 0);
}

/* Runs ops[pc]: renders it into the (empty) output buffer and schedules the next op. */
static void script_step(struct conn *c, int64_t now)
{
	const struct op *o = &c->sc.v[c->pc];
	if (o->k == OP_STALL) {
		c->due = NEVER;
		return;
	}
	if (o->k == OP_DROP) {
		conn_abort(c);
		return;
	}
	RENDER[c->r.prov][o->k](c, o);
	if (o->k == OP_KEEPALIVE) {
		c->due = now + o->delay_ms * 1000LL;
		return;
	}
	if (++c->rep >= o->repeat) {
		c->rep = 0;
		c->pc++;
	}
	c->due = now + (c->pc < c->sc.n ? c->sc.v[c->pc].delay_ms * 1000LL : 0);
}

/* 1 if bytes went out and the caller may go on; 0 if it must wait (events/wake set). */
static int conn_write(struct conn *c, int64_t now)
{
	if (c->bytewise && now < c->wdue) {
		c->wake = c->wdue;
		return 0;
	}
	size_t n = c->bytewise ? 1 : c->out.len - c->out.off;
	ssize_t w = send(c->fd, c->out.p + c->out.off, n, MSG_NOSIGNAL);
	if (w < 0) {
		if (errno == EINTR)
			return 1;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			c->events = POLLIN | POLLOUT;
		else
			conn_close(c, 1);
		return 0;
	}
	c->out.off += (size_t)w;
	if (c->bytewise)
		c->wdue = now + 1000;
	return 1;
}

/* Moves a responding connection forward: output first, then the script, then the end. */
static void conn_pump(struct conn *c)
{
	c->events = POLLIN;
	c->wake = NEVER;
	for (int budget = WRITE_BUDGET; c->st == ST_SEND; budget--) {
		if (budget == 0) {
			c->wake = 0;
			return;
		}
		int64_t now = now_us();
		if (c->out.off < c->out.len) {
			if (!conn_write(c, now))
				return;
			continue;
		}
		c->out.off = c->out.len = 0;
		if (c->pc < c->sc.n) {
			if (now < c->due) {
				c->wake = c->due;
				return;
			}
			script_step(c, now);
		} else if (c->chunked && !c->term) {
			buf_str(&c->out, "0\r\n\r\n");
			c->term = 1;
		} else {
			conn_finish(c);
		}
	}
}

/* ---- responses ------------------------------------------------------------------------------ */

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 413: return "Payload Too Large";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 529: return "Overloaded";
	default: return "Unknown";
	}
}

static void respond(struct conn *c, int status, const char *extra_headers, const char *body,
		    size_t blen)
{
	buf_printf(&c->out,
		   "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
		   "%sConnection: close\r\n\r\n",
		   status, reason_phrase(status), blen, extra_headers);
	buf_add(&c->out, body, blen);
	c->st = ST_SEND;
}

static void respond_error(struct conn *c, enum prov p, const struct errdef *e, const char *arg)
{
	struct buf m = { 0 }, body = { 0 }, hdr = { 0 };
	buf_printf(&m, p == AN ? e->an_msg : e->oa_msg, arg);
	char *mq = jq(m.p);
	if (p == AN) {
		buf_printf(&body, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":%s}}",
			   e->an_type, mq);
	} else {
		buf_printf(&body, "{\"error\":{\"message\":%s,\"type\":\"%s\"", mq, e->oa_type);
		if (e->oa_code)
			buf_printf(&body, ",\"code\":\"%s\"", e->oa_code);
		buf_str(&body, "}}");
	}
	buf_str(&hdr, "");
	if (e->header)
		buf_printf(&hdr, "%s\r\n", e->header);
	vlog("fd %d: %d %s", c->fd, e->status, m.p);
	respond(c, e->status, hdr.p, body.p, body.len);
	cJSON_free(mq);
	buf_free(&m);
	buf_free(&body);
	buf_free(&hdr);
}

static void respond_json(struct conn *c, cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);
	if (!s)
		die("cJSON_Print");
	respond(c, 200, "", s, strlen(s));
	cJSON_free(s);
	cJSON_Delete(o);
}

static void stream_start(struct conn *c, enum prov p, const struct scenario *sc,
			 const struct reqinfo *ri, const char *model)
{
	vlog("fd %d: streaming scenario %s (request %d for %s%s)", c->fd, sc->name, ri->n + 1, model,
	     ri->step2 ? ", second step" : "");
	c->is_stream = 1;
	g.active++;
	c->chunked = c->rq.minor >= 1;
	c->bytewise = !!(sc->flags & F_BYTEWISE);
	c->r.prov = p;
	c->r.model_q = jq(model);
	c->r.ts_ids = !!(sc->flags & F_TSID);
	c->r.stamp = !!(sc->flags & F_STAMP);
	buf_printf(&c->out,
		   "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
		   "Cache-Control: no-cache\r\n%sConnection: close\r\n\r\n",
		   c->chunked ? "Transfer-Encoding: chunked\r\n" : "");
	sc->build(&c->sc, ri);
	c->due = now_us() + (c->sc.n ? c->sc.v[0].delay_ms * 1000LL : 0);
	c->st = ST_SEND;
}

/* ---- request bookkeeping and routes ------------------------------------------------------- */

/* Counts a request for model; returns how many came before it. */
static int stats_bump(const char *model)
{
	cJSON *it = cJSON_GetObjectItemCaseSensitive(g.by_model, model);
	if (!it)
		it = cJSON_AddNumberToObject(g.by_model, model, 0);
	if (!it)
		die("cJSON");
	int n = it->valueint;
	cJSON_SetNumberValue(it, n + 1);
	return n;
}

/* Records the request as "last" (and last for its model). Takes body. */
static void stats_last(const struct conn *c, cJSON *body, const char *model)
{
	cJSON *last = cJSON_CreateObject();
	cJSON_AddStringToObject(last, "path", c->rq.path);
	cJSON_AddItemToObject(last, "headers", cJSON_Duplicate(c->rq.headers, 1));
	cJSON_AddItemToObject(last, "body", body ? body : cJSON_CreateNull());
	if (model) {
		cJSON_DeleteItemFromObjectCaseSensitive(g.last_by_model, model);
		cJSON_AddItemToObject(g.last_by_model, model, cJSON_Duplicate(last, 1));
	}
	cJSON_Delete(g.last);
	g.last = last;
}

/* The text of a message content: a string, or the "text" of each part of an array. */
static char *content_text(const cJSON *content)
{
	struct buf b = { 0 };
	const cJSON *it;
	buf_str(&b, "");
	if (cJSON_IsString(content))
		buf_str(&b, content->valuestring);
	else if (cJSON_IsArray(content))
		cJSON_ArrayForEach(it, content) {
			const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "text"));
			if (t)
				buf_str(&b, t);
		}
	return b.p;
}

static void set_str(char **dst, char *s)
{
	free(*dst);
	*dst = s;
}

static void scan_an_results(struct reqinfo *ri, const cJSON *content)
{
	const cJSON *b;
	if (!cJSON_IsArray(content))
		return;
	cJSON_ArrayForEach(b, content) {
		const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "type"));
		if (t && !strcmp(t, "tool_result")) {
			ri->step2 = 1;
			set_str(&ri->tool_result,
				content_text(cJSON_GetObjectItemCaseSensitive(b, "content")));
		}
	}
}

/* "N msgs: role:text|role:text..." of the conversation a request carried, system prompt
 * left out (OpenAI's shape; an assistant message's tool calls show as "+calls"). */
static char *recall_of(const cJSON *msgs)
{
	struct buf list = { 0 }, b = { 0 };
	const cJSON *m;
	int n = 0;
	buf_str(&list, "");
	cJSON_ArrayForEach(m, msgs) {
		const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "role"));
		if (role && !strcmp(role, "system"))
			continue; /* the agent's prompt, not the conversation */
		char *text = content_text(cJSON_GetObjectItemCaseSensitive(m, "content"));
		buf_printf(&list, "%s%s:%s%s", n++ ? "|" : "", role ? role : "?", text,
			   cJSON_GetObjectItemCaseSensitive(m, "tool_calls") ? "+calls" : "");
		free(text);
	}
	buf_printf(&b, "%d msgs: %s", n, list.p);
	buf_free(&list);
	return b.p;
}

static void reqinfo_scan(struct reqinfo *ri, const cJSON *body)
{
	ri->tool_result = content_text(NULL);
	ri->last_user = content_text(NULL);
	const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(body, "messages"), *m;
	if (!cJSON_IsArray(msgs))
		return;
	ri->recall = recall_of(msgs);
	cJSON_ArrayForEach(m, msgs) {
		const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "role"));
		const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
		if (!role)
			continue;
		if (ri->prov == OA && !strcmp(role, "tool")) {
			ri->step2 = 1;
			set_str(&ri->tool_result, content_text(content));
		} else if (!strcmp(role, "user")) {
			set_str(&ri->last_user, content_text(content));
			if (ri->prov == AN)
				scan_an_results(ri, content);
		}
	}
}

static void decide(struct conn *c, const cJSON *body, const char *model, const struct reqinfo *ri)
{
	enum prov p = ri->prov;
	const struct scenario *sc = model ? scenario_find(model) : NULL;
	if (!cJSON_IsObject(body))
		respond_error(c, p, &E_BADJSON, "");
	else if (!model)
		respond_error(c, p, &E_NOMODEL, "");
	else if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "stream")))
		respond_error(c, p, &E_NOSTREAM, model);
	else if (!sc)
		respond_error(c, p, &E_UNKNOWN, model);
	else if (sc->err && (sc->err_times == -1 || ri->n < sc->err_times ||
			     (sc->err_times == ERR_ODD && ri->n % 2 == 0)))
		respond_error(c, p, sc->err, model);
	else
		stream_start(c, p, sc, ri, model);
}

static void h_completion(struct conn *c, enum prov p)
{
	g.total++;
	cJSON *body = cJSON_ParseWithLength(c->rq.body, c->rq.body_len);
	const char *model = cJSON_IsObject(body)
		? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, "model"))
		: NULL;
	struct reqinfo ri = { .prov = p, .n = model ? stats_bump(model) : 0 };
	reqinfo_scan(&ri, body);
	decide(c, body, model, &ri);
	stats_last(c, body, model);
	free(ri.tool_result);
	free(ri.last_user);
	free(ri.recall);
}

static void h_openai(struct conn *c) { h_completion(c, OA); }
static void h_anthropic(struct conn *c) { h_completion(c, AN); }

static void h_stats(struct conn *c)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "total", (double)g.total);
	cJSON_AddItemToObject(o, "by_model", cJSON_Duplicate(g.by_model, 1));
	cJSON_AddItemToObject(o, "last", g.last ? cJSON_Duplicate(g.last, 1) : cJSON_CreateNull());
	cJSON_AddItemToObject(o, "last_by_model", cJSON_Duplicate(g.last_by_model, 1));
	cJSON_AddNumberToObject(o, "active_streams", (double)g.active);
	cJSON_AddNumberToObject(o, "client_aborts", (double)g.client_aborts);
	respond_json(c, o);
}

static void stats_init(void)
{
	cJSON_Delete(g.by_model);
	cJSON_Delete(g.last);
	cJSON_Delete(g.last_by_model);
	g.by_model = cJSON_CreateObject();
	g.last_by_model = cJSON_CreateObject();
	g.last = NULL;
	g.total = g.client_aborts = 0;
	if (!g.by_model || !g.last_by_model)
		die("cJSON");
}

static void h_reset(struct conn *c)
{
	stats_init();
	cJSON *o = cJSON_CreateObject();
	cJSON_AddTrueToObject(o, "ok");
	respond_json(c, o);
}

static const struct route {
	const char *method, *path;
	void (*fn)(struct conn *c);
} ROUTES[] = {
	{ "POST", "/v1/chat/completions", h_openai },
	{ "POST", "/v1/messages", h_anthropic },
	{ "GET", "/_stats", h_stats },
	{ "POST", "/_reset", h_reset },
};

static enum prov path_prov(const struct request *rq)
{
	return rq->path && !strcmp(rq->path, "/v1/messages") ? AN : OA;
}

static void dispatch(struct conn *c)
{
	vlog("fd %d: %s %s (%zu body bytes)", c->fd, c->rq.method, c->rq.path, c->rq.body_len);
	for (size_t i = 0; i < sizeof ROUTES / sizeof *ROUTES; i++) {
		if (!strcmp(c->rq.method, ROUTES[i].method) && !strcmp(c->rq.path, ROUTES[i].path)) {
			ROUTES[i].fn(c);
			return;
		}
	}
	struct buf what = { 0 };
	buf_printf(&what, "%s %s", c->rq.method, c->rq.path);
	respond_error(c, OA, &E_ROUTE, what.p);
	buf_free(&what);
}

/* ---- request parsing ---------------------------------------------------------------------- */

static int parse_reqline(struct request *rq, char *line)
{
	char *sp1 = strchr(line, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp2 || sp1 == line || sp1[1] != '/')
		return -400;
	*sp1 = *sp2 = 0;
	if (!strcmp(sp2 + 1, "HTTP/1.1"))
		rq->minor = 1;
	else if (!strcmp(sp2 + 1, "HTTP/1.0"))
		rq->minor = 0;
	else
		return -400;
	rq->method = strdup(line);
	rq->path = strndup(sp1 + 1, strcspn(sp1 + 1, "?"));
	if (!rq->method || !rq->path)
		die("strdup");
	return 0;
}

static void header_store(cJSON *h, const char *name, const char *v)
{
	cJSON *old = cJSON_GetObjectItemCaseSensitive(h, name);
	if (!old) {
		cJSON_AddStringToObject(h, name, v);
		return;
	}
	struct buf b = { 0 };
	buf_printf(&b, "%s, %s", old->valuestring, v);
	cJSON_ReplaceItemInObjectCaseSensitive(h, name, cJSON_CreateString(b.p));
	buf_free(&b);
}

static int header_apply(struct request *rq, const char *name, const char *v)
{
	if (!strcmp(name, "content-length")) {
		size_t len = strlen(v);
		if (!len || strspn(v, "0123456789") != len)
			return -400;
		long long n = len > 15 ? (long long)BODY_MAX + 1 : strtoll(v, NULL, 10);
		if (rq->cl >= 0 && rq->cl != n)
			return -400;
		rq->cl = n;
	} else if (!strcmp(name, "transfer-encoding")) {
		if (strcasecmp(v, "chunked"))
			return -400;
		rq->te_chunked = 1;
	} else if (!strcmp(name, "expect") && !strcasecmp(v, "100-continue")) {
		rq->expect100 = 1;
	}
	return 0;
}

static int parse_header(struct request *rq, char *line)
{
	char *colon = strchr(line, ':');
	if (!colon || colon == line)
		return -400;
	*colon = 0;
	for (char *p = line; *p; p++) {
		if (*p == ' ' || *p == '\t')
			return -400;
		*p = (char)tolower((unsigned char)*p);
	}
	char *v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	size_t vl = strlen(v);
	while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
		v[--vl] = 0;
	header_store(rq->headers, line, v);
	return header_apply(rq, line, v);
}

static int parse_head(struct conn *c)
{
	char *h = strndup(c->in.p, c->rq.hdr_len - 4), *save = NULL, *line;
	if (!h)
		die("strndup");
	line = strtok_r(h, "\r\n", &save);
	int rc = line ? parse_reqline(&c->rq, line) : -400;
	while (rc == 0 && (line = strtok_r(NULL, "\r\n", &save)))
		rc = parse_header(&c->rq, line);
	free(h);
	return rc;
}

/* Decodes a chunked body from p[0..n): 1 complete, 0 incomplete, <0 an HTTP status. */
static int chunked_decode(const char *p, size_t n, struct buf *out)
{
	size_t i = 0;
	out->len = 0;
	for (;;) {
		const char *eol = memmem(p + i, n - i, "\r\n", 2);
		if (!eol)
			return 0;
		if (!isxdigit((unsigned char)p[i]))
			return -400;
		unsigned long long sz = strtoull(p + i, NULL, 16);
		i = (size_t)(eol - p) + 2;
		if (sz == 0)
			break;
		if (sz > BODY_MAX || out->len + sz > BODY_MAX)
			return -413;
		if (n - i < sz + 2)
			return 0;
		if (memcmp(p + i + sz, "\r\n", 2))
			return -400;
		buf_add(out, p + i, sz);
		i += sz + 2;
	}
	for (;;) { /* trailer fields, then the blank line */
		const char *eol = memmem(p + i, n - i, "\r\n", 2);
		if (!eol)
			return 0;
		if (eol == p + i)
			return 1;
		i = (size_t)(eol - p) + 2;
	}
}

static int body_ready(struct conn *c)
{
	struct request *rq = &c->rq;
	const char *p = c->in.p + rq->hdr_len;
	size_t n = c->in.len - rq->hdr_len;
	if (rq->te_chunked) {
		int rc = chunked_decode(p, n, &rq->dec);
		if (rc == 1) {
			buf_str(&rq->dec, "");
			rq->body = rq->dec.p;
			rq->body_len = rq->dec.len;
		}
		return rc;
	}
	size_t want = rq->cl > 0 ? (size_t)rq->cl : 0;
	if (n < want)
		return 0;
	rq->body = p;
	rq->body_len = want;
	return 1;
}

static void send_continue(struct conn *c)
{
	static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
	c->rq.sent100 = 1;
	/* A fresh socket's send buffer takes 25 bytes; a failure shows up on the next read. */
	if (send(c->fd, msg, sizeof msg - 1, MSG_NOSIGNAL) < 0)
		vlog("fd %d: 100 Continue: %s", c->fd, strerror(errno));
}

/* 1 when the request is complete, 0 if more is needed, <0 an HTTP error status. */
static int req_parse(struct conn *c)
{
	struct request *rq = &c->rq;
	if (!rq->hdr_len) {
		char *e = memmem(c->in.p, c->in.len, "\r\n\r\n", 4);
		if (!e)
			return c->in.len > HDR_MAX ? -431 : 0;
		rq->hdr_len = (size_t)(e - c->in.p) + 4;
		if (rq->hdr_len > HDR_MAX)
			return -431;
		int rc = parse_head(c);
		if (rc)
			return rc;
		if (rq->cl > BODY_MAX)
			return -413;
	}
	int done = body_ready(c);
	if (done == 0 && rq->expect100 && !rq->sent100)
		send_continue(c);
	return done;
}

static void respond_http_error(struct conn *c, int status)
{
	const struct errdef *e = status == 413 ? &E_TOOBIG : status == 431 ? &E_HDRBIG : &E_BADHTTP;
	respond_error(c, path_prov(&c->rq), e, "");
}

static void conn_recv(struct conn *c)
{
	while (c->in.len <= RAW_MAX) {
		buf_reserve(&c->in, 16384);
		ssize_t n = recv(c->fd, c->in.p + c->in.len, 16384, 0);
		if (n > 0) {
			c->in.len += (size_t)n;
			c->in.p[c->in.len] = 0;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		conn_close(c, 0); /* EOF or error before a complete request */
		return;
	}
	int rc = c->in.len > RAW_MAX ? -413 : req_parse(c);
	if (rc < 0)
		respond_http_error(c, -rc);
	else if (rc > 0)
		dispatch(c);
}

/* ---- the loop ------------------------------------------------------------------------------ */

static void conn_service(struct conn *c, short rev, int64_t now)
{
	if (c->st == ST_RECV && rev)
		conn_recv(c);
	else if (c->st == ST_SEND && (rev & (POLLIN | POLLHUP | POLLERR)) && drain_input(c->fd))
		conn_close(c, 1);
	else if (c->st == ST_DRAIN && ((rev && drain_input(c->fd)) || now >= c->wake))
		conn_close(c, 0);
	if (c->st == ST_SEND)
		conn_pump(c);
}

static void accept_all(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) /* EMFILE and kin: back off */
				g.accept_pause = now_us() + 100000;
			return;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		conn_new(fd);
	}
}

static void sweep(void)
{
	size_t j = 0;
	for (size_t i = 0; i < g.n; i++) {
		if (g.v[i]->st == ST_CLOSED)
			conn_free(g.v[i]);
		else
			g.v[j++] = g.v[i];
	}
	g.n = j;
}

static int stdin_ended(void)
{
	char b[4096];
	ssize_t n = read(0, b, sizeof b);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
}

static volatile sig_atomic_t g_stop;
static sigset_t g_waitmask;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

/* TERM/INT stay blocked except inside ppoll, so a signal can never be missed. */
static void setup_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &g_waitmask);
	sigdelset(&g_waitmask, SIGTERM);
	sigdelset(&g_waitmask, SIGINT);
}

/* Fills fds; returns the earliest wake time. */
static int64_t poll_setup(struct pollfd *fds, int lfd, int watch_stdin, int64_t now)
{
	int paused = g.accept_pause > now;
	int64_t wake = paused ? g.accept_pause : NEVER;
	fds[0] = (struct pollfd){ paused ? -1 : lfd, POLLIN, 0 };
	fds[1] = (struct pollfd){ watch_stdin ? 0 : -1, POLLIN, 0 };
	for (size_t i = 0; i < g.n; i++) {
		fds[i + 2] = (struct pollfd){ g.v[i]->fd, g.v[i]->events, 0 };
		if (g.v[i]->wake < wake)
			wake = g.v[i]->wake;
	}
	return wake;
}

static void run(int lfd, int watch_stdin)
{
	struct pollfd *fds = NULL;
	size_t fcap = 0;
	while (!g_stop) {
		if (fcap < g.n + 2) {
			fcap = 2 * (g.n + 2);
			if (!(fds = realloc(fds, fcap * sizeof *fds)))
				die("realloc");
		}
		int64_t now = now_us(), wake = poll_setup(fds, lfd, watch_stdin, now);
		struct timespec ts, *tp = NULL;
		if (wake != NEVER) {
			int64_t d = wake > now ? wake - now : 0;
			ts = (struct timespec){ d / 1000000, (d % 1000000) * 1000 };
			tp = &ts;
		}
		size_t n = g.n;
		int rc = ppoll(fds, n + 2, tp, &g_waitmask);
		if (rc < 0 && errno != EINTR)
			die("ppoll");
		if (g_stop || (rc > 0 && fds[1].revents && stdin_ended()))
			break;
		now = now_us();
		for (size_t i = 0; i < n; i++) {
			short rev = rc > 0 ? fds[i + 2].revents : 0;
			if (rev || g.v[i]->wake <= now)
				conn_service(g.v[i], rev, now);
		}
		if (rc > 0 && fds[0].revents)
			accept_all(lfd);
		sweep();
	}
	free(fds);
}

static int listen_on(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
	if (fd < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0)
		die("bind");
	if (listen(fd, SOMAXCONN) < 0)
		die("listen");
	socklen_t len = sizeof a;
	if (getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		die("getsockname");
	printf("PORT %d\n", ntohs(a.sin_port));
	fflush(stdout);
	return fd;
}

static void usage(FILE *f)
{
	fputs("usage: mockllm [--port N] [--exit-on-stdin-eof] [--verbose]\n"
	      "  --port N             listen on 127.0.0.1:N (default 0: an ephemeral port)\n"
	      "  --exit-on-stdin-eof  exit when stdin reaches end of file\n"
	      "  --verbose            log requests and decisions to stderr\n"
	      "Prints \"PORT <n>\" once listening; exits on SIGTERM or SIGINT.\n",
	      f);
}

static int parse_port(const char *s)
{
	char *e;
	long v = strtol(s, &e, 10);
	if (!*s || *e || v < 0 || v > 65535) {
		fprintf(stderr, "mockllm: bad port: %s\n", s);
		exit(2);
	}
	return (int)v;
}

int main(int argc, char **argv)
{
	int port = 0, watch_stdin = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--port") && i + 1 < argc)
			port = parse_port(argv[++i]);
		else if (!strncmp(argv[i], "--port=", 7))
			port = parse_port(argv[i] + 7);
		else if (!strcmp(argv[i], "--exit-on-stdin-eof"))
			watch_stdin = 1;
		else if (!strcmp(argv[i], "--verbose") || !strcmp(argv[i], "-v"))
			g_verbose = 1;
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	setup_signals();
	stats_init();
	int lfd = listen_on(port);
	run(lfd, watch_stdin);
	for (size_t i = 0; i < g.n; i++)
		conn_close(g.v[i], 0);
	sweep();
	free(g.v);
	close(lfd);
	cJSON_Delete(g.by_model);
	cJSON_Delete(g.last);
	cJSON_Delete(g.last_by_model);
	return 0;
}
