#include "llm.h"
#include "log.h"
#include "wire.h"

#include <stdlib.h>
#include <string.h>

#define MAX_PROVIDERS 8

struct llm {
	struct loop *L;
	const struct config *C;
	struct provider prov[MAX_PROVIDERS];
	struct llm_stats stats[MAX_PROVIDERS]; /* prov[i]'s */
	int nprov;
	struct catalog *K;
};

struct llm_stream {
	struct llm *M;
	const struct provider *p;
	void *attempt;
	struct llm_sink sink;
	void *arg;
	/* owned copy of the request */
	struct llm_request rq;
	char *session_id, *provider, *model, *system;
	cJSON *messages, *tools, *params, *headers;
	int64_t stall_ms;
	int retries, stall_retries;
	int64_t out_bytes;          /* text + reasoning + tool-call arguments, this attempt */
	int over_limit;             /* tool calls passed max_output_bytes: done becomes error */
	cJSON *calls;               /* this attempt's tool calls, handed on with done */
	size_t delivered[2], seen[2]; /* text/reasoning bytes shown, and seen this attempt */
	int64_t last_activity;      /* epoch ms of the last content token or attempt start */
	int64_t last_progress_us;   /* the same, monotonic, for the watchdog */
	struct timer stall_timer, retry_timer, attempt_timer;
};

void llm_output_limit_message(char *buf, size_t n, int64_t limit, const char *provider,
			      const char *model)
{
	snprintf(buf, n, "LLM reply too long: over limits.max_output_bytes %lld (text, reasoning "
		 "and tool-call arguments of one reply) from %s/%s", (long long)limit, provider,
		 model);
}

int64_t llm_backoff_ms(int64_t base, int64_t cap, int attempt, int64_t retry_after_ms,
		       unsigned rnd)
{
	int64_t d = base;
	for (int i = 1; i < attempt && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	/* jitter in [-20%, +20%] */
	int64_t span = d / 5;
	if (span > 0)
		d += (int64_t)(rnd % (unsigned)(2 * span + 1)) - span;
	if (d < retry_after_ms)
		d = retry_after_ms;
	return d < 0 ? 0 : d;
}

struct llm *llm_create(struct loop *L, const struct config *C)
{
	struct llm *M = calloc(1, sizeof(*M));
	if (!M)
		return NULL;
	M->L = L;
	M->C = C;
	return M;
}

void llm_destroy(struct llm *M)
{
	if (!M)
		return;
	for (int i = 0; i < M->nprov; i++)
		if (M->prov[i].destroy)
			M->prov[i].destroy(M->prov[i].self);
	catalog_free(M->K);
	free(M);
}

int llm_load_catalog(struct llm *M, struct err *e)
{
	catalog_free(M->K);
	M->K = catalog_load(M->C, e);
	return M->K ? 0 : -1;
}

const struct catalog *llm_catalog(const struct llm *M)
{
	return M->K;
}

int llm_register(struct llm *M, const struct provider *p)
{
	if (M->nprov == MAX_PROVIDERS)
		return -1;
	M->prov[M->nprov++] = *p;
	return 0;
}

static const struct provider *find(struct llm *M, const char *name, size_t n)
{
	for (int i = 0; i < M->nprov; i++)
		if (strlen(M->prov[i].name) == n && !strncmp(M->prov[i].name, name, n))
			return &M->prov[i];
	return NULL;
}

int llm_check_model(struct llm *M, const char *id, struct err *e)
{
	const char *slash = id ? strchr(id, '/') : NULL;
	if (!slash || slash == id || !slash[1]) {
		err_set(e, ERR_INVALID, "model \"%s\" must be PROVIDER/MODEL, e.g. scripted/demo",
			id ? id : "");
		return -1;
	}
	const struct provider *p = find(M, id, (size_t)(slash - id));
	if (!p) {
		char names[128] = "";
		for (int i = 0; i < M->nprov; i++) {
			strncat(names, i ? ", " : "", sizeof(names) - strlen(names) - 1);
			strncat(names, M->prov[i].name, sizeof(names) - strlen(names) - 1);
		}
		err_set(e, ERR_INVALID, "unknown provider \"%.*s\" in model \"%s\" (known: %s)",
			(int)(slash - id), id, id, names);
		return -1;
	}
	return p->check_model ? p->check_model(p->self, slash + 1, e) : 0;
}

static struct llm_stats *stats_of(const struct llm_stream *st)
{
	return &st->M->stats[st->p - st->M->prov];
}

int llm_stats(struct llm *M, int i, struct llm_stats *out)
{
	if (!M || i < 0 || i >= M->nprov)
		return -1;
	*out = M->stats[i];
	out->provider = M->prov[i].name;
	return 0;
}

int64_t llm_stream_last_activity(const struct llm_stream *st)
{
	return st->last_activity;
}

static void stream_free(struct llm_stream *st)
{
	timer_cancel(&st->stall_timer);
	timer_cancel(&st->retry_timer);
	timer_cancel(&st->attempt_timer);
	free(st->session_id);
	free(st->provider);
	free(st->model);
	free(st->system);
	cJSON_Delete(st->messages);
	cJSON_Delete(st->tools);
	cJSON_Delete(st->params);
	cJSON_Delete(st->headers);
	cJSON_Delete(st->calls);
	free(st);
}

/* Marks content progress. The watchdog is not re-armed per token (that would re-sort
 * the loop's timer list for every token); when it fires it checks this stamp. */
static void progress(struct llm_stream *st)
{
	st->last_progress_us = mono_us();
	st->last_activity = now_ms();
}

static void fail(struct llm_stream *st, const struct llm_error *e);

/* Counts n more bytes of output against limits.max_output_bytes; 0 while within it. */
static int over_output_limit(struct llm_stream *st, size_t n)
{
	if (st->out_bytes + (int64_t)n <= st->M->C->max_output_bytes) {
		st->out_bytes += (int64_t)n;
		return 0;
	}
	return 1;
}

/* The reply passed limits.max_output_bytes: not retried (the same request would run into
 * it again), and nothing past the limit is shown. */
static void output_limit_fail(struct llm_stream *st)
{
	char msg[300];
	llm_output_limit_message(msg, sizeof(msg), st->M->C->max_output_bytes, st->provider,
				 st->model);
	log_warn("session %s: %s", st->session_id, msg);
	if (st->attempt)
		st->p->cancel(st->p->self, st->attempt);
	struct llm_error e = {.name = "APIError", .message = msg};
	fail(st, &e);
}

/* Text a retry repeats is not shown twice: only bytes past what was delivered pass. */
static void on_text(void *arg, int reasoning, const char *s, size_t n)
{
	struct llm_stream *st = arg;
	int k = reasoning ? 1 : 0;
	if (!n)
		return; /* empty deltas are not progress */
	if (over_output_limit(st, n)) {
		output_limit_fail(st); /* providers allow a cancel from inside a text callback */
		return;
	}
	progress(st);
	size_t start = st->seen[k], end = start + n;
	st->seen[k] = end;
	if (end <= st->delivered[k])
		return;
	size_t skip = st->delivered[k] > start ? st->delivered[k] - start : 0;
	st->delivered[k] = end;
	st->sink.text(st->arg, reasoning, s + skip, n - skip);
}

/* Tool calls come in a provider's loop that ends with done, where no cancel may happen.
 * They are held until done: then either all of them go on, or — past the limit — none
 * does and done turns into the limit's error (no tool part is left pending). */
static void on_tool_call(void *arg, const char *id, const char *name, const char *args)
{
	struct llm_stream *st = arg;
	if (st->over_limit || over_output_limit(st, args ? strlen(args) : 0)) {
		st->over_limit = 1;
		return;
	}
	progress(st);
	cJSON *c = cJSON_CreateObject();
	if (!st->calls)
		st->calls = cJSON_CreateArray();
	cJSON_AddStringToObject(c, "id", id ? id : "");
	cJSON_AddStringToObject(c, "name", name ? name : "");
	cJSON_AddStringToObject(c, "arguments", args ? args : "");
	cJSON_AddItemToArray(st->calls, c);
}

static void on_done(void *arg, const char *finish, const struct llm_usage *u)
{
	struct llm_stream *st = arg;
	st->attempt = NULL;
	if (st->over_limit) {
		output_limit_fail(st);
		return;
	}
	const cJSON *c;
	cJSON_ArrayForEach(c, st->calls) /* as the provider's loop did: the stream still lives */
		st->sink.tool_call(st->arg, cJSON_GetObjectItem(c, "id")->valuestring,
				   cJSON_GetObjectItem(c, "name")->valuestring,
				   cJSON_GetObjectItem(c, "arguments")->valuestring);
	struct llm_stats *ps = stats_of(st);
	ps->completed++;
	if (u) {
		ps->tokens_input += u->input;
		ps->tokens_output += u->output;
		ps->tokens_reasoning += u->reasoning;
		ps->tokens_cache_read += u->cache_read;
		ps->tokens_cache_write += u->cache_write;
	}
	struct llm_sink sink = st->sink;
	void *sarg = st->arg;
	stream_free(st);
	sink.done(sarg, finish, u);
}

static void fail(struct llm_stream *st, const struct llm_error *e)
{
	stats_of(st)->failed++;
	struct llm_sink sink = st->sink;
	void *sarg = st->arg;
	st->attempt = NULL;
	stream_free(st);
	sink.error(sarg, e);
}

static int start_attempt(struct llm_stream *st, struct err *e);

static void retry_fired(struct timer *t)
{
	struct llm_stream *st = container_of(t, struct llm_stream, retry_timer);
	struct err e = {0};
	if (start_attempt(st, &e)) {
		struct llm_error le = {.name = "UnknownError", .message = e.msg};
		fail(st, &le);
	}
}

/* Schedules another attempt if the policy allows one; 0 if scheduled. */
static int schedule_retry(struct llm_stream *st, const struct llm_error *e)
{
	const struct config *C = st->M->C;
	int *used = e->stalled ? &st->stall_retries : &st->retries;
	int max = e->stalled ? C->stall_retry_max : C->retry_max;
	if (!e->retryable || *used >= max)
		return -1;
	(*used)++;
	stats_of(st)->retries++;
	int attempt = st->retries + st->stall_retries;
	int64_t wait = llm_backoff_ms(C->retry_base_ms, C->retry_cap_ms, *used,
				      e->retry_after_ms, (unsigned)rand());
	log_warn("session %s: %s/%s attempt failed (%s); retry %d in %lld ms", st->session_id,
		 st->provider, st->model, e->message, attempt, (long long)wait);
	st->seen[0] = st->seen[1] = 0;
	st->out_bytes = 0;
	st->over_limit = 0;
	cJSON_Delete(st->calls);
	st->calls = NULL;
	timer_cancel(&st->stall_timer);
	timer_cancel(&st->attempt_timer);
	timer_arm(&st->retry_timer, wait);
	if (st->sink.retry)
		st->sink.retry(st->arg, attempt + 1, e->message, now_ms() + wait);
	return 0;
}

/* A provider asking for a longer wait than retry.cap_ms would keep the session "retrying"
 * for as long as it likes: that attempt fails instead, naming the value and the cap. */
static int retry_after_over_cap(struct llm_stream *st, const struct llm_error *e)
{
	int64_t cap = st->M->C->retry_cap_ms;
	if (!e->retryable || e->retry_after_ms <= cap)
		return 0;
	char msg[800];
	snprintf(msg, sizeof(msg), "provider asked to retry after %s%lld ms, over retry.cap_ms "
		 "%lld: %s", e->retry_after_ms == INT64_MAX ? "more than " : "",
		 (long long)e->retry_after_ms, (long long)cap,
		 e->message ? e->message : "the provider returned an error");
	log_warn("session %s: %s/%s: %s", st->session_id, st->provider, st->model, msg);
	struct llm_error le = *e;
	le.message = msg;
	le.retryable = 0;
	fail(st, &le);
	return 1;
}

static void on_error(void *arg, const struct llm_error *e)
{
	struct llm_stream *st = arg;
	st->attempt = NULL;
	/* a request over the context window fails the same way every time: not retried
	 * here (the engine compacts and retries), whoever said so (scripted included) */
	struct llm_error le = *e;
	le.overflow = e->overflow || wire_context_overflow(e->message);
	if (le.overflow) {
		le.retryable = 0;
		fail(st, &le);
		return;
	}
	if (retry_after_over_cap(st, e) || schedule_retry(st, e) == 0)
		return;
	fail(st, e);
}

static void stall_fired(struct timer *t)
{
	struct llm_stream *st = container_of(t, struct llm_stream, stall_timer);
	int64_t quiet_us = mono_us() - st->last_progress_us;
	if (quiet_us < st->stall_ms * 1000) {
		timer_arm_us(t, st->stall_ms * 1000 - quiet_us);
		return;
	}
	char msg[200];
	snprintf(msg, sizeof(msg), "LLM stream stalled: no content token for %lld ms from %s/%s",
		 (long long)st->stall_ms, st->provider, st->model);
	log_warn("session %s: %s", st->session_id, msg);
	stats_of(st)->stalls++;
	if (st->attempt)
		st->p->cancel(st->p->self, st->attempt);
	struct llm_error e = {.name = "APIError", .message = msg, .retryable = 1, .stalled = 1};
	on_error(st, &e);
}

/* A stream that keeps sending (a token every second under a longer stall timeout, or
 * without end) is cut at limits.max_attempt_ms. Retried like a stall, from the same
 * budget (retry.stall_max): a slow provider may recover, and the total stays bounded. */
static void attempt_fired(struct timer *t)
{
	struct llm_stream *st = container_of(t, struct llm_stream, attempt_timer);
	char msg[240];
	snprintf(msg, sizeof(msg), "LLM attempt too slow: over limits.max_attempt_ms %lld ms "
		 "while %s/%s was still streaming", (long long)st->M->C->max_attempt_ms,
		 st->provider, st->model);
	log_warn("session %s: %s", st->session_id, msg);
	stats_of(st)->too_slow++;
	if (st->attempt)
		st->p->cancel(st->p->self, st->attempt);
	struct llm_error e = {.name = "APIError", .message = msg, .retryable = 1, .stalled = 1};
	on_error(st, &e);
}

static const struct llm_sink inner = {
	.text = on_text, .tool_call = on_tool_call, .done = on_done, .error = on_error,
};

static int start_attempt(struct llm_stream *st, struct err *e)
{
	st->last_progress_us = mono_us();
	st->last_activity = now_ms(); /* a retry's attempt is activity: check_task sees it */
	timer_arm(&st->stall_timer, st->stall_ms);
	timer_arm(&st->attempt_timer, st->M->C->max_attempt_ms);
	stats_of(st)->requests++;
	st->attempt = st->p->start(st->p->self, &st->rq, &inner, st, e);
	if (!st->attempt) {
		timer_cancel(&st->stall_timer);
		timer_cancel(&st->attempt_timer);
		return -1;
	}
	return 0;
}

/* The messages every attempt sends: an item that is a cJSON reference (the session's
 * kept history, which outlives the stream: llm_types.h) is kept by reference, the rest
 * is copied, so a step does not copy the whole conversation. */
static cJSON *keep_messages(const cJSON *msgs)
{
	cJSON *out = cJSON_CreateArray();
	for (const cJSON *m = msgs ? msgs->child : NULL; m && out; m = m->next) {
		int ok = m->type & cJSON_IsReference
				 ? cJSON_AddItemReferenceToArray(out, (cJSON *)m)
				 : cJSON_AddItemToArray(out, cJSON_Duplicate(m, 1));
		if (!ok) {
			cJSON_Delete(out);
			return NULL;
		}
	}
	return out;
}

static int copy_request(struct llm_stream *st, const struct llm_request *rq)
{
	st->session_id = strdup(rq->session_id ? rq->session_id : "-");
	st->provider = strdup(rq->provider);
	st->model = strdup(rq->model);
	st->system = rq->system ? strdup(rq->system) : NULL;
	st->messages = keep_messages(rq->messages);
	st->tools = rq->tools ? cJSON_Duplicate(rq->tools, 1) : cJSON_CreateArray();
	/* every attempt, retries included, sends this request's params and headers */
	st->params = rq->params ? cJSON_Duplicate(rq->params, 1) : NULL;
	st->headers = rq->headers ? cJSON_Duplicate(rq->headers, 1) : NULL;
	if (!st->session_id || !st->provider || !st->model || !st->messages || !st->tools ||
	    (rq->params && !st->params) || (rq->headers && !st->headers))
		return -1;
	st->rq = (struct llm_request){
		.session_id = st->session_id, .provider = st->provider, .model = st->model,
		.system = st->system, .messages = st->messages, .tools = st->tools,
		.stall_ms = st->stall_ms, .params = st->params, .headers = st->headers,
		.files_refused = rq->files_refused,
	};
	return 0;
}

struct llm_stream *llm_stream_start(struct llm *M, const struct llm_request *rq,
				    const struct llm_sink *sink, void *arg, struct err *e)
{
	const struct provider *p = find(M, rq->provider, strlen(rq->provider));
	if (!p) {
		err_set(e, ERR_INVALID, "unknown provider \"%s\"", rq->provider);
		return NULL;
	}
	struct llm_stream *st = calloc(1, sizeof(*st));
	if (!st) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	st->M = M;
	st->p = p;
	st->sink = *sink;
	st->arg = arg;
	st->stall_ms = rq->stall_ms > 0 ? rq->stall_ms : M->C->stall_ms;
	st->last_activity = now_ms();
	timer_init(&st->stall_timer, M->L, stall_fired);
	timer_init(&st->retry_timer, M->L, retry_fired);
	timer_init(&st->attempt_timer, M->L, attempt_fired);
	if (copy_request(st, rq)) {
		err_set(e, ERR_INTERNAL, "out of memory");
		stream_free(st);
		return NULL;
	}
	if (start_attempt(st, e)) {
		stream_free(st);
		return NULL;
	}
	return st;
}

void llm_stream_cancel(struct llm_stream *st)
{
	if (!st)
		return;
	if (st->attempt)
		st->p->cancel(st->p->self, st->attempt);
	stream_free(st);
}
