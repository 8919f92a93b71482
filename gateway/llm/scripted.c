#include "scripted.h"
#include "jsonin.h"
#include "jw.h"
#include "log.h"
#include "media.h"

#include <errno.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The demo rules: what `agentgate run "..."` does out of the box. */
static const char builtin_rules[] =
	"[{\"regex\":\"^(hi|hello|hey)\\\\b\",\"steps\":[{\"text\":\"Hello! I am agentgate's "
	"scripted demo model. Try: echo <text>, sleep <ms>, long, task <prompt>, stall, fail.\"}]},"
	"{\"regex\":\"^echo (.+)$\",\"steps\":[{\"text\":\"Calling the echo tool.\",\"tools\":"
	"[{\"name\":\"echo\",\"input\":{\"text\":\"{{1}}\"}}]},"
	"{\"text\":\"The echo tool returned: {{tool_output}}\"}]},"
	"{\"regex\":\"^sleep ([0-9]+)\",\"steps\":[{\"text\":\"Sleeping.\",\"tools\":"
	"[{\"name\":\"sleep\",\"input\":{\"ms\":\"{{1}}\"}}]},{\"text\":\"Slept {{1}} ms.\"}]},"
	"{\"regex\":\"^long\",\"long\":true,\"steps\":[{\"text\":\"Streaming a long answer. \"}]},"
	"{\"regex\":\"^(task|delegate) (.+)$\",\"steps\":[{\"text\":\"Delegating to a subagent.\","
	"\"tools\":[{\"name\":\"task\",\"input\":{\"description\":\"delegated task\","
	"\"prompt\":\"{{2}}\",\"subagent_type\":\"general\"}}]},"
	"{\"text\":\"The subagent reported: {{tool_output}}\"}]},"
	"{\"regex\":\"^(bg|background) (.+)$\",\"steps\":[{\"text\":\"Starting a background "
	"subagent.\",\"tools\":[{\"name\":\"task\",\"input\":{\"description\":\"background task\","
	"\"prompt\":\"{{2}}\",\"subagent_type\":\"general\",\"background\":true}}]},"
	"{\"text\":\"The subagent works in the background: {{tool_output}}\"}]},"
	"{\"regex\":\"^stall\",\"steps\":[{\"text\":\"I will stop talking after this\","
	"\"stall_after\":3}]},"
	"{\"regex\":\"^fail\",\"steps\":[{\"text\":\"About to fail.\",\"error\":"
	"{\"status\":400,\"message\":\"scripted failure requested by the prompt\"}}]},"
	"{\"attachments\":true,\"steps\":[{\"text\":\"I received {{files}}.\"}]},"
	"{\"steps\":[{\"text\":\"You said: {{prompt}}\"}]}]";

#define LONG_TEXT                                                                         \
	"agentgate streams every token of this reply to every subscriber as it is produced, " \
	"stores it within a fraction of a second, and keeps the session tree visible. "

struct rule {
	char *substr;     /* case-insensitive substring, or */
	regex_t re;       /* an extended regex */
	int has_re;
	int attachments;  /* matches only a prompt with files */
	cJSON *steps;     /* array of step objects (owned) */
};

struct scripted {
	struct loop *L;
	struct rule *rules;
	int nrules;
	int64_t pace_us;
	size_t max_output; /* limits.max_output_bytes: what an attempt plans at most */
	char **models;
	int nmodels;
};

enum tok_kind { TK_REASONING, TK_TEXT };

struct token {
	enum tok_kind kind;
	char *s;
};

struct attempt {
	struct scripted *P;
	const struct llm_sink *sink;
	void *arg;
	struct timer t;
	struct token *toks;
	int ntoks, next;
	cJSON *tool_calls; /* [{id,name,arguments}] emitted after the tokens */
	int stall_after;   /* -1: never */
	cJSON *error;      /* {status,message,retryable,retry_after_ms} or NULL */
	int64_t pace_us;
	int64_t in_chars, out_tokens;
	size_t planned; /* bytes of text and reasoning planned */
};

static int rule_compile(struct rule *r, const cJSON *o, int idx, struct err *e)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "match");
	const cJSON *re = cJSON_GetObjectItemCaseSensitive(o, "regex");
	const cJSON *steps = cJSON_GetObjectItemCaseSensitive(o, "steps");
	if (!cJSON_IsArray(steps) || cJSON_GetArraySize(steps) == 0) {
		err_set(e, ERR_INVALID, "scripted rule %d: \"steps\" must be a non-empty array", idx);
		return -1;
	}
	if (cJSON_IsString(re)) {
		int rc = regcomp(&r->re, re->valuestring, REG_EXTENDED | REG_ICASE);
		if (rc) {
			char buf[128];
			regerror(rc, &r->re, buf, sizeof(buf));
			err_set(e, ERR_INVALID, "scripted rule %d: bad regex \"%s\": %s", idx,
				re->valuestring, buf);
			return -1;
		}
		r->has_re = 1;
	} else if (cJSON_IsString(m)) {
		r->substr = strdup(m->valuestring);
	}
	r->steps = cJSON_Duplicate(steps, 1);
	r->attachments = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "attachments"));
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "long")))
		cJSON_AddBoolToObject(cJSON_GetArrayItem(r->steps, 0), "long", 1);
	return 0;
}

/* The rules array: inline, from a file (an array, or {"rules": [...]}), or built in. */
static cJSON *rules_json(const cJSON *sec, struct err *e)
{
	const cJSON *inl = cJSON_GetObjectItemCaseSensitive(sec, "rules");
	const cJSON *file = cJSON_GetObjectItemCaseSensitive(sec, "rules_file");
	if (cJSON_IsArray(inl))
		return cJSON_Duplicate(inl, 1);
	if (!cJSON_IsString(file))
		return cJSON_Parse(builtin_rules);
	char *text = config_read_file(file->valuestring, "scripted rules file", e);
	if (!text)
		return NULL;
	cJSON *doc = cJSON_Parse(text);
	free(text);
	cJSON *arr = cJSON_IsObject(doc) ? cJSON_DetachItemFromObject(doc, "rules") : doc;
	if (arr != doc)
		cJSON_Delete(doc);
	if (!cJSON_IsArray(arr)) {
		err_set(e, ERR_INVALID, "scripted rules file %s: expected a JSON array of rules "
			"or {\"rules\": [...]}", file->valuestring);
		cJSON_Delete(arr);
		return NULL;
	}
	return arr;
}

static int load_models(struct scripted *P, const cJSON *sec)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(sec, "models");
	P->models = calloc((size_t)cJSON_GetArraySize(m) + 1, sizeof(char *));
	if (!P->models)
		return -1;
	P->models[P->nmodels++] = strdup("demo");
	const cJSON *it;
	cJSON_ArrayForEach(it, m) { /* ids, or {id: model} (catalog.h) */
		const char *id = cJSON_IsString(it) ? it->valuestring : it->string;
		if (id && strcmp(id, "demo"))
			P->models[P->nmodels++] = strdup(id);
	}
	return 0;
}

/* pace_ms in us, at most a day: a rule cannot overflow the timer arithmetic. */
static int64_t pace_us_of(const cJSON *v)
{
	double ms = v->valuedouble;
	return !(ms > 0) ? 0 : ms > 86400000.0 ? 86400000000LL : (int64_t)(ms * 1000);
}

static int load(struct scripted *P, const struct config *C, struct err *e)
{
	const cJSON *sec = config_provider(C, "scripted");
	const cJSON *pace = cJSON_GetObjectItemCaseSensitive(sec, "pace_ms");
	P->pace_us = cJSON_IsNumber(pace) ? pace_us_of(pace) : 10000;
	P->max_output = (size_t)C->max_output_bytes;
	if (load_models(P, sec))
		return -1;
	cJSON *arr = rules_json(sec, e);
	if (!arr)
		return -1;
	int n = cJSON_GetArraySize(arr), rc = 0;
	P->rules = calloc((size_t)n + 1, sizeof(*P->rules));
	for (int i = 0; P->rules && i < n && !rc; i++) {
		rc = rule_compile(&P->rules[i], cJSON_GetArrayItem(arr, i), i, e);
		P->nrules += rc == 0;
	}
	cJSON_Delete(arr);
	return P->rules ? rc : -1;
}

static void destroy(void *self)
{
	struct scripted *P = self;
	for (int i = 0; i < P->nrules; i++) {
		if (P->rules[i].has_re)
			regfree(&P->rules[i].re);
		free(P->rules[i].substr);
		cJSON_Delete(P->rules[i].steps);
	}
	for (int i = 0; i < P->nmodels; i++)
		free(P->models[i]);
	free(P->models);
	free(P->rules);
	free(P);
}

static int check_model(void *self, const char *model, struct err *e)
{
	struct scripted *P = self;
	for (int i = 0; i < P->nmodels; i++)
		if (!strcmp(P->models[i], model))
			return 0;
	err_set(e, ERR_INVALID, "unknown model \"scripted/%s\" (the scripted provider serves: "
		"demo%s)", model, P->nmodels > 1 ? " and providers.scripted.models" : "");
	return -1;
}

/* What the request says: the prompt and its files, how many assistant steps answered
 * it, the last tool output. */
struct view {
	const char *prompt;
	const cJSON *files; /* the prompt's attachments (llm_types.h), or NULL */
	int step;
	const char *tool_output;
	int64_t chars;
};

static void read_request(const struct llm_request *rq, struct view *v)
{
	memset(v, 0, sizeof(*v));
	v->prompt = "";
	v->tool_output = "";
	const cJSON *m;
	cJSON_ArrayForEach(m, rq->messages) {
		const char *role = jsonin_get(m, "role");
		const char *content =
			jsonin_get(m, "content");
		if (!role)
			continue;
		v->chars += content ? (int64_t)strlen(content) : 0;
		if (!strcmp(role, "user")) {
			v->prompt = content ? content : "";
			v->files = cJSON_GetObjectItemCaseSensitive(m, "files");
			v->step = 0;
			v->tool_output = "";
		} else if (!strcmp(role, "assistant")) {
			v->step++;
		} else if (!strcmp(role, "tool") && content) {
			v->tool_output = content;
		}
	}
}

static int rule_matches(struct rule *r, const struct view *v, regmatch_t *g, size_t ng)
{
	const char *prompt = v->prompt;
	if (r->attachments && cJSON_GetArraySize(v->files) == 0)
		return 0;
	if (r->has_re)
		return regexec(&r->re, prompt, ng, g, 0) == 0;
	if (r->substr)
		return strcasestr(prompt, r->substr) != NULL;
	g[0].rm_so = -1;
	return 1;
}

/* {{files}}: each attachment as "NAME (MIME, N bytes)", joined by ", " ("no files"). */
static char *describe_files(const cJSON *files)
{
	struct jw w;
	jw_init(&w);
	jw_append(&w, "", 0);
	const cJSON *f;
	cJSON_ArrayForEach(f, files) {
		const char *name = jsonin_get(f, "filename"), *mime = jsonin_get(f, "mime");
		const char *url = jsonin_get(f, "url"), *m, *b64;
		size_t ml, bytes = 0;
		if (url && !media_data_split(url, &m, &ml, &b64))
			bytes = media_b64_decoded_len(b64, strlen(b64));
		char one[512];
		int n = snprintf(one, sizeof(one), "%s%s (%s, %zu bytes)", w.len ? ", " : "",
				 name ? name : "file", mime ? mime : "?", bytes);
		jw_append(&w, one, n < (int)sizeof(one) ? (size_t)n : sizeof(one) - 1);
	}
	if (!w.len)
		jw_append(&w, "no files", 8);
	return jw_take(&w, NULL);
}

/* Expands {{prompt}}, {{tool_output}}, {{files}} and {{N}} (regex group N). JSON-escapes
 * the inserted values when json is set, so templated tool inputs stay valid JSON. */
static char *expand(const char *tpl, const struct view *v, const regmatch_t *g, int json)
{
	struct jw w;
	jw_init(&w);
	for (const char *p = tpl; *p;) {
		const char *open = strstr(p, "{{"), *close = open ? strstr(open, "}}") : NULL;
		if (!open || !close) {
			jw_append(&w, p, strlen(p));
			break;
		}
		jw_append(&w, p, (size_t)(open - p));
		size_t klen = (size_t)(close - open - 2);
		const char *val = "";
		size_t vlen = 0;
		char *own = NULL;
		if (klen == 5 && !strncmp(open + 2, "files", 5)) {
			own = describe_files(v->files);
			val = own ? own : "";
			vlen = strlen(val);
		} else if (klen == 6 && !strncmp(open + 2, "prompt", 6)) {
			val = v->prompt;
			vlen = strlen(val);
		} else if (klen == 11 && !strncmp(open + 2, "tool_output", 11)) {
			val = v->tool_output;
			vlen = strlen(val);
		} else if (klen == 1 && open[2] >= '0' && open[2] <= '9' && g[open[2] - '0'].rm_so >= 0) {
			val = v->prompt + g[open[2] - '0'].rm_so;
			vlen = (size_t)(g[open[2] - '0'].rm_eo - g[open[2] - '0'].rm_so);
		}
		if (json)
			jw_escape(&w, val, vlen);
		else if (vlen)
			jw_append(&w, val, vlen);
		free(own);
		p = close + 2;
	}
	char *out = jw_take(&w, NULL);
	return out ? out : strdup("");
}

/* Splits text into tokens of a word plus the whitespace before it. Planning stops just
 * past limits.max_output_bytes: a rule with a huge text or repeat costs no more memory
 * than that, and streaming it runs into the supervisor's limit like any provider. */
static int tokenize(struct attempt *a, enum tok_kind kind, const char *text)
{
	const char *p = text;
	while (*p && a->planned <= a->P->max_output) {
		const char *q = p;
		while (*q == ' ' || *q == '\n')
			q++;
		while (*q && *q != ' ' && *q != '\n')
			q++;
		struct token *t = realloc(a->toks, (size_t)(a->ntoks + 1) * sizeof(*t));
		if (!t)
			return -1;
		a->toks = t;
		a->toks[a->ntoks].kind = kind;
		a->toks[a->ntoks].s = strndup(p, (size_t)(q - p));
		a->ntoks++;
		a->planned += (size_t)(q - p);
		p = q;
	}
	return 0;
}

static void add_text(struct attempt *a, const cJSON *step, const char *key, enum tok_kind kind,
		     const struct view *v, const regmatch_t *g)
{
	const char *tpl = jsonin_get(step, key);
	if (!tpl)
		return;
	char *text = expand(tpl, v, g, 0);
	const cJSON *rep = cJSON_GetObjectItemCaseSensitive(step, "repeat");
	int n = cJSON_IsNumber(rep) ? rep->valueint : 1;
	tokenize(a, kind, text);
	if (kind == TK_TEXT && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(step, "long")))
		n = 0; /* "long": the demo's 500-token answer */
	for (int i = 1; i < n && *text && a->planned <= a->P->max_output; i++)
		tokenize(a, kind, text);
	if (n == 0)
		for (int i = 0; i < 20; i++)
			tokenize(a, kind, LONG_TEXT);
	free(text);
}

static void add_tools(struct attempt *a, const cJSON *step, const struct view *v,
		      const regmatch_t *g)
{
	static int counter;
	const cJSON *tools = cJSON_GetObjectItemCaseSensitive(step, "tools"), *t;
	cJSON_ArrayForEach(t, tools) {
		const char *name = jsonin_get(t, "name");
		const cJSON *input = cJSON_GetObjectItemCaseSensitive(t, "input");
		if (!name)
			continue;
		char *raw = input ? cJSON_PrintUnformatted(input) : strdup("{}");
		char *args = expand(raw, v, g, 1);
		char id[32];
		snprintf(id, sizeof(id), "call_scripted_%d", ++counter);
		cJSON *call = cJSON_CreateObject();
		cJSON_AddStringToObject(call, "id", id);
		cJSON_AddStringToObject(call, "name", name);
		cJSON_AddStringToObject(call, "arguments", args);
		cJSON_AddItemToArray(a->tool_calls, call);
		free(raw);
		free(args);
	}
}

static void plan(struct attempt *a, const struct view *v)
{
	struct scripted *P = a->P;
	regmatch_t g[10];
	for (int i = 0; i < 10; i++)
		g[i].rm_so = g[i].rm_eo = -1;
	struct rule *r = NULL;
	for (int i = 0; i < P->nrules && !r; i++)
		if (rule_matches(&P->rules[i], v, g, 10))
			r = &P->rules[i];
	if (!r)
		return; /* no rule: an empty reply that finishes with "stop" */
	int n = cJSON_GetArraySize(r->steps);
	const cJSON *step = cJSON_GetArrayItem(r->steps, v->step < n ? v->step : n - 1);
	const cJSON *pace = cJSON_GetObjectItemCaseSensitive(step, "pace_ms");
	const cJSON *stall = cJSON_GetObjectItemCaseSensitive(step, "stall_after");
	if (cJSON_IsNumber(pace))
		a->pace_us = pace_us_of(pace);
	if (cJSON_IsNumber(stall))
		a->stall_after = stall->valueint;
	add_text(a, step, "reasoning", TK_REASONING, v, g);
	add_text(a, step, "text", TK_TEXT, v, g);
	if (v->step < n) /* past the last step: text only, so a rule cannot loop forever */
		add_tools(a, step, v, g);
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(step, "error");
	if (cJSON_IsObject(err))
		a->error = cJSON_Duplicate(err, 1);
}

static void attempt_free(struct attempt *a)
{
	timer_cancel(&a->t);
	for (int i = 0; i < a->ntoks; i++)
		free(a->toks[i].s);
	free(a->toks);
	cJSON_Delete(a->tool_calls);
	cJSON_Delete(a->error);
	free(a);
}

/* A non-negative number of ms from JSON; huge values saturate instead of overflowing
 * the conversion. */
static int64_t ms_of(const cJSON *v)
{
	if (!cJSON_IsNumber(v) || !(v->valuedouble > 0))
		return 0;
	return v->valuedouble >= 9.2e18 ? INT64_MAX : (int64_t)v->valuedouble;
}

static void finish(struct attempt *a)
{
	const struct llm_sink *sink = a->sink;
	void *arg = a->arg;
	if (a->error) {
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(a->error, "status");
		const cJSON *ra = cJSON_GetObjectItemCaseSensitive(a->error, "retry_after_ms");
		const char *msg = cJSON_GetStringValue(
			cJSON_GetObjectItemCaseSensitive(a->error, "message"));
		int status = cJSON_IsNumber(st) ? st->valueint : 500;
		char *m = strdup(msg ? msg : "scripted error");
		struct llm_error e = {
			.status = status, .name = "APIError", .message = m,
			.retryable = status == 429 || status >= 500,
			.retry_after_ms = ms_of(ra), /* the supervisor holds it to retry.cap_ms */
		};
		attempt_free(a);
		sink->error(arg, &e);
		free(m);
		return;
	}
	const cJSON *c;
	cJSON_ArrayForEach(c, a->tool_calls) {
		sink->tool_call(arg, cJSON_GetObjectItem(c, "id")->valuestring,
				cJSON_GetObjectItem(c, "name")->valuestring,
				cJSON_GetObjectItem(c, "arguments")->valuestring);
	}
	struct llm_usage u = {.input = a->in_chars / 4 + 1, .output = a->out_tokens};
	const char *reason = cJSON_GetArraySize(a->tool_calls) ? "tool-calls" : "stop";
	attempt_free(a);
	sink->done(arg, reason, &u);
}

static void tick(struct timer *t)
{
	struct attempt *a = container_of(t, struct attempt, t);
	if (a->stall_after >= 0 && a->next >= a->stall_after)
		return; /* stalled on purpose: the supervisor's watchdog ends it */
	if (a->next < a->ntoks) {
		struct token *tk = &a->toks[a->next++];
		a->out_tokens++;
		timer_arm_us(&a->t, a->pace_us);
		a->sink->text(a->arg, tk->kind == TK_REASONING, tk->s, strlen(tk->s));
		return;
	}
	finish(a);
}

static void *start(void *self, const struct llm_request *rq, const struct llm_sink *sink,
		   void *arg, struct err *e)
{
	struct scripted *P = self;
	struct attempt *a = calloc(1, sizeof(*a));
	if (!a || !(a->tool_calls = cJSON_CreateArray())) {
		free(a);
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	a->P = P;
	a->sink = sink;
	a->arg = arg;
	a->pace_us = P->pace_us;
	a->stall_after = -1;
	struct view v;
	read_request(rq, &v);
	a->in_chars = v.chars + (rq->system ? (int64_t)strlen(rq->system) : 0);
	plan(a, &v);
	timer_init(&a->t, P->L, tick);
	timer_arm_us(&a->t, a->pace_us);
	return a;
}

static void cancel(void *self, void *attempt)
{
	attempt_free(attempt);
}

int scripted_provider(struct provider *p, struct loop *L, const struct config *C,
		      struct err *e)
{
	struct scripted *P = calloc(1, sizeof(*P));
	if (!P)
		return -1;
	P->L = L;
	if (load(P, C, e)) {
		destroy(P);
		return -1;
	}
	*p = (struct provider){
		.name = "scripted", .self = P, .start = start, .cancel = cancel,
		.check_model = check_model, .destroy = destroy,
	};
	return 0;
}
