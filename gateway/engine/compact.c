/* compact: a long session outlives its model's context window (engine_int.h has the
 * contract). A compaction is a turn of its own — a user message with a compaction part,
 * answered by an assistant message with summary: true — in the session's queue like
 * every turn. It takes its place in conversation order (turn ids) just before the turn
 * it makes room for, so the turns before it are the history it summarises and the
 * turns after it see the summary instead (step.c's history). Loop thread only. */
#include "engine_int.h"
#include "jsonin.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

/* Without compaction.reserve_tokens a reply is given the model's output limit, at most
 * this and half the window (OpenCode caps it the same way). */
#define RESERVE_MAX 32000

static const char instruction[] =
	"Summarize the conversation so far for another agent who will continue it without "
	"seeing it. Keep what is needed to go on: the user's goals and instructions, what was "
	"decided and why, what was done and what is left to do, the files, names, commands and "
	"values that matter, and open questions. Do not call tools; reply with the summary "
	"only.";
static const char question[] = "What have we done so far?";
static const char summarizer[] =
	"You summarize a conversation between a user and an AI agent so that the work can go "
	"on from your summary alone.";

const char *compact_instruction(void)
{
	return instruction;
}

const char *compact_question(void)
{
	return question;
}

int compact_init(struct engine *E, struct err *e)
{
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(E->C.root, "compaction");
	long long reserve = 0;
	int automatic = 1, prune = 1;
	E->compact.automatic = 1;
	E->compact.prune = 1;
	if (!c)
		return 0;
	if (!cJSON_IsObject(c)) {
		err_set(e, ERR_INVALID, "config: \"compaction\" must be an object");
		return -1;
	}
	if (jsonin_bool(c, "auto", &automatic, e) || jsonin_bool(c, "prune", &prune, e) ||
	    jsonin_int(c, "reserve_tokens", 0, &reserve, e) || reserve < 0) {
		err_set(e, ERR_INVALID, "config: \"compaction.auto\" and \"compaction.prune\" must "
			"be true or false and \"compaction.reserve_tokens\" a non-negative integer");
		return -1;
	}
	E->compact.automatic = automatic;
	E->compact.prune = prune;
	E->compact.reserve = reserve;
	return 0;
}

/* ---- how full the context is ---- */

static int64_t usage_total(const struct llm_usage *u)
{
	return u->input + u->cache_read + u->cache_write + u->output;
}

void compact_note_usage(struct session *s, const struct llm_usage *u)
{
	if (u && usage_total(u) > 0) {
		s->ctx_tokens = usage_total(u);
		s->ctx_known = 1;
	}
}

static int64_t count(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) && v->valuedouble > 0 && v->valuedouble < 9e15
		       ? (int64_t)v->valuedouble : 0;
}

/* The last reply in conversation order tells: a summary starts from nothing, another
 * reply from its prompt and itself. */
static int ctx_row(void *arg, const struct store_message *r)
{
	int64_t *tokens = arg;
	if (strcmp(r->role, "assistant") || !r->finish)
		return 0;
	cJSON *d = cJSON_Parse(r->data);
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(d, "tokens");
	const cJSON *cache = cJSON_GetObjectItemCaseSensitive(t, "cache");
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "summary"))) {
		if (msg_finished_ok(r->finish))
			*tokens = 0;
	} else {
		struct llm_usage u = {
			.input = count(t, "input"), .output = count(t, "output"),
			.cache_read = count(cache, "read"), .cache_write = count(cache, "write"),
		};
		if (usage_total(&u) > 0)
			*tokens = usage_total(&u);
	}
	cJSON_Delete(d);
	return 0;
}

static int64_t context_tokens(struct session *s)
{
	if (!s->ctx_known) {
		int64_t tokens = 0;
		if (store_message_list(s->E->S, s->id, ctx_row, &tokens) < 0)
			return 0;
		s->ctx_tokens = tokens;
		s->ctx_known = 1;
	}
	return s->ctx_tokens;
}

/* What a request to model may fill: its window less the room for a reply; 0 unknown. */
static int64_t usable(struct engine *E, const char *model)
{
	const struct model_info *mi = catalog_lookup(llm_catalog(E->M), model);
	if (!mi || mi->context <= 0)
		return 0;
	int64_t reserve = E->compact.reserve;
	if (!reserve) {
		reserve = mi->output > 0 && mi->output < RESERVE_MAX ? mi->output : RESERVE_MAX;
		if (reserve > mi->context / 2)
			reserve = mi->context / 2;
	}
	return mi->context - reserve > 0 ? mi->context - reserve : 1;
}

/* ---- the compaction turn in the ledger ---- */

static int compaction_part(void *arg, const struct store_part *r)
{
	int *flags = arg;
	if (strcmp(r->type, "compaction"))
		return 0;
	cJSON *d = cJSON_Parse(r->data);
	*flags = COMPACT_ON | (cJSON_IsTrue(cJSON_GetObjectItem(d, "auto")) ? COMPACT_AUTO : 0) |
		 (cJSON_IsTrue(cJSON_GetObjectItem(d, "overflow")) ? COMPACT_OVERFLOW : 0);
	cJSON_Delete(d);
	return 1;
}

int compact_kind(struct engine *E, const char *user_msg)
{
	int flags = 0;
	store_part_list(E->S, user_msg, compaction_part, &flags);
	return flags;
}

static int turn_id_row(void *arg, const struct store_turn *r)
{
	snprintf(arg, ID_MAX, "%s", r->id);
	return 1;
}

struct below {
	char lo[ID_MAX];
	const char *next;
};

/* A message between the turn below next and next: a noReply prompt's, whose place in
 * the order is a turn id with no turn row. */
static int order_row(void *arg, const struct store_message *r)
{
	struct below *b = arg;
	if (r->turn_id && strcmp(r->turn_id, b->next) < 0 && strcmp(r->turn_id, b->lo) > 0)
		snprintf(b->lo, sizeof(b->lo), "%s", r->turn_id);
	return 0;
}

/* A compaction turn that sorts just before next (after every turn and every message
 * before it, earlier compactions in front of next included), written; not yet queued.
 * NULL logged. */
static struct turn *make_before(struct session *s, struct turn *next, int flags)
{
	struct engine *E = s->E;
	struct below b = {.lo = "", .next = next->id};
	char id[ID_MAX];
	/* what sorts below next must be known: an id under it would reorder the past (a
	 * compaction under a noReply message the history already holds would be skipped
	 * by the next turn's history, which reads on from there) */
	int known = store_turn_before(E->S, s->id, next->id, turn_id_row, b.lo) >= 0 &&
		    store_message_list_turns(E->S, s->id, b.lo, next->id, order_row, &b) >= 0;
	struct turn *c = !known || id_between(id, b.lo, next->id) ? NULL
			 : turn_alloc(s, id, NULL, "compaction", NULL, next->agent, next->model);
	if (c) {
		c->compact = flags;
		if (turn_write_user(E, c, NULL, NULL) | turn_save(E, c)) {
			turn_free(c);
			c = NULL;
		}
	}
	if (!c)
		log_error("session %s: cannot put a compaction in front of turn %s", s->id, next->id);
	else
		stats_turn(E, c->source, STAT_ACCEPTED);
	return c;
}

void compact_before_start(struct session *s)
{
	struct engine *E = s->E;
	if (!E->compact.automatic || !s->q.head)
		return;
	struct turn *next = container_of(s->q.head, struct turn, qi);
	if (next->compact || next->compacted)
		return;
	int64_t limit = usable(E, next->model), used = limit ? context_tokens(s) : 0;
	if (!limit || used < limit)
		return;
	next->compacted = 1; /* once: a compaction that fails is not tried again for it */
	struct turn *c = make_before(s, next, COMPACT_ON | COMPACT_AUTO);
	if (!c)
		return;
	log_info("session %s: %lld tokens of context reach %s's limit of %lld; turn %s "
		 "compacts the history first", s->id, (long long)used, next->model,
		 (long long)limit, c->id);
	turnq_push_front(&s->q, &c->qi);
}

/* ---- the summary ---- */

/* HOOK_SESSION_COMPACT: the summary a callback supplies (owned), or NULL. */
static char *hook_summary(struct turn *t, const cJSON *msgs)
{
	struct engine *E = t->s->E;
	if (!hooks_any(E, HOOK_SESSION_COMPACT))
		return NULL;
	struct hook_ctx c;
	struct hook_compact_run hc = {.pub = {
		.automatic = (t->compact & COMPACT_AUTO) != 0,
		.overflow = (t->compact & COMPACT_OVERFLOW) != 0,
		.model = t->model, .messages = msgs}};
	hooks_ctx(t->s, t, &c);
	hooks_run(E, HOOK_SESSION_COMPACT, &c, &hc.pub, NULL, 0);
	return hc.summary;
}

static int has_text(const struct msg *m)
{
	for (const struct part *p = m ? m->parts : NULL; p; p = p->next)
		if (p->type == P_TEXT && p->len)
			return 1;
	return 0;
}

/* The summary is written: the session's next request starts from it. */
static void compacted(struct turn *t, const char *finish, const struct llm_usage *u)
{
	struct session *s = t->s;
	struct engine *E = s->E;
	if (!has_text(t->am)) {
		turn_end(t, T_FAILED, "UnknownError", "the summary was empty: the compaction "
			 "changed nothing");
		return;
	}
	step_finish_message(E, t, finish, u);
	s->ctx_tokens = 0;
	s->ctx_known = 1;
	bus_begin(E->B, &E->jw, "session.compacted");
	jw_obj(&E->jw);
	jw_kstr(&E->jw, "sessionID", s->id);
	jw_obj_end(&E->jw);
	session_publish(E, s, t, "session.compacted");
	turn_end(t, T_COMPLETED, NULL, NULL);
}

static void on_done(void *arg, const char *finish, const struct llm_usage *u)
{
	struct turn *t = arg;
	t->stream = NULL;
	if (t->s->status == ST_RETRY)
		session_set_status(t->s->E, t->s, ST_BUSY);
	compacted(t, finish && strcmp(finish, "tool-calls") ? finish : "stop", u);
}

static void on_tool_call(void *arg, const char *id, const char *name, const char *args)
{
	struct turn *t = arg;
	log_warn("session %s: turn %s: the model called tool %s while summarizing (it was "
		 "offered none); ignored", t->s->id, t->id, name ? name : "?");
}

static void write_summary(struct turn *t, char *summary)
{
	struct engine *E = t->s->E;
	struct part *p = part_add(E, t->am, P_TEXT);
	if (!p) {
		free(summary);
		turn_end(t, T_FAILED, "UnknownError", "out of memory");
		return;
	}
	p->text = summary;
	p->len = p->cap = strlen(summary);
	p->end = now_ms();
	part_save(E, p);
	compacted(t, "stop", NULL);
}

void compact_step(struct turn *t)
{
	struct engine *E = t->s->E;
	cJSON *msgs = step_open(t); /* its message is the summary (msg_new) */
	if (!msgs)
		return;
	char *summary = hook_summary(t, msgs);
	if (summary) {
		cJSON_Delete(msgs);
		write_summary(t, summary);
		return;
	}
	const struct agent *a = agents_find(&E->A, t->agent);
	struct llm_sink sink = step_sink; /* text, errors and retries as any step's */
	sink.tool_call = on_tool_call;
	sink.done = on_done;
	step_request(t, summarizer, cJSON_CreateArray(), msgs, a ? a->stall_ms : 0, &sink);
	cJSON_Delete(msgs);
}

/* ---- a request over the context window ---- */

static int first_turn_row(void *arg, const struct store_message *r)
{
	const char **turn = arg;
	*turn = r->turn_id && strcmp(r->turn_id, *turn) < 0 ? "" : *turn;
	return 1;
}

/* 1 when the session has messages of turns before t: something to compact (also when
 * the store cannot say: a compaction is then tried). */
static int has_history(struct engine *E, struct session *s, const struct turn *t)
{
	const char *turn = t->id;
	return store_message_list_turns(E->S, s->id, "", t->id, first_turn_row, &turn) < 0 ||
	       !*turn;
}

/* The turn fails with ContextOverflowError: what (a format naming the model) and the
 * provider's own words. */
static void fail_overflow(struct turn *t, const struct llm_error *le, const char *what)
{
	char head[300], why[800];
	snprintf(head, sizeof(head), what, t->model);
	snprintf(why, sizeof(why), "%s: %s", head, le->message ? le->message : "the provider "
		 "said so");
	step_fail(t, "ContextOverflowError", why, le->status, 0);
}

int compact_on_overflow(struct turn *t, const struct llm_error *le)
{
	struct session *s = t->s;
	struct engine *E = s->E;
	if (t->compact || t->am->parts != t->am->tail)
		return 0; /* the summary itself, or a reply already under way: as any error */
	if (t->overflow_retried) {
		fail_overflow(t, le, "the request is still over the context window of %s after "
			      "a compaction was tried");
		return 1;
	}
	if (!has_history(E, s, t)) {
		fail_overflow(t, le, "the request is over the context window of %s and the "
			      "session has no older turns to compact");
		return 1;
	}
	struct turn *c = make_before(s, t, COMPACT_ON | COMPACT_AUTO | COMPACT_OVERFLOW);
	if (!c)
		return 0;
	log_warn("session %s: turn %s: the request is over %s's context window (%s); turn %s "
		 "compacts the history, then the request runs once more", s->id, t->id, t->model,
		 le->message ? le->message : "", c->id);
	/* the failed step leaves no trace: its message (a step-start, nothing else) goes,
	 * and the turn waits behind the compaction to run that step again */
	msg_delete(E, t->am);
	msg_free(E, t->am);
	t->am = NULL;
	t->steps--;
	t->overflow_retried = 1;
	t->compacted = 1; /* no automatic one in front of the retry as well */
	t->state = T_QUEUED;
	t->started = 0;
	turn_save(E, t);
	s->cur = NULL;
	E->running--;
	turnq_requeue(&s->q);
	turnq_push_front(&s->q, &c->qi);
	session_kick(s);
	return 1;
}

/* ---- clearing old tool outputs (OpenCode's prune) ----
 * The session keeps, per message since its last clearing, what the walk needs: a user
 * message (it counts prompts), or an assistant message's uncleared tool output tokens
 * (after its newest cleared output) and whether the walk stops there (a summary, an
 * output cleared before). A turn's end reads its own messages only; the parts of older
 * ones are read again only to clear them. */

struct prune_row {
	char msg[ID_MAX];
	int user, stop;
	int64_t tokens;
};

struct prune_state {
	struct prune_row *v;
	int n, cap;
	char read_upto[ID_MAX]; /* the turn the rows reach */
};

void compact_forget(struct session *s)
{
	if (s->prune) {
		free(s->prune->v);
		free(s->prune);
		s->prune = NULL;
	}
}

/* A completed tool part's output in tokens (characters / 4, as OpenCode estimates);
 * -1 when it is cleared already; 0 for any other part. */
static int64_t output_tokens(const char *data)
{
	cJSON *d = cJSON_Parse(data);
	const cJSON *state = cJSON_GetObjectItemCaseSensitive(d, "state");
	const char *status = jsonin_get(state, "status"), *out = jsonin_get(state, "output");
	const cJSON *time = cJSON_GetObjectItemCaseSensitive(state, "time");
	int64_t n = !status || strcmp(status, "completed") ? 0
		    : cJSON_GetObjectItemCaseSensitive(time, "compacted") ? -1
		    : out ? (int64_t)(strlen(out) + 2) / 4 : 0;
	cJSON_Delete(d);
	return n;
}

/* One message's tool parts, in order, as output_tokens sees them. */
struct tparts {
	struct {
		char *id, *data;
		int64_t tokens;
	} *v;
	int n, cap, oom;
};

static int tpart_add(void *arg, const struct store_part *r)
{
	struct tparts *t = arg;
	if (strcmp(r->type, "tool"))
		return 0;
	void *grown = vec_reserve(t->v, &t->cap, t->n, sizeof(*t->v));
	char *id = strdup(r->id), *data = strdup(r->data);
	if (!grown || !id || !data) {
		free(id);
		free(data);
		return t->oom = 1;
	}
	t->v = grown;
	t->v[t->n].id = id;
	t->v[t->n].data = data;
	t->v[t->n++].tokens = output_tokens(r->data);
	return 0;
}

static void tparts_free(struct tparts *t)
{
	for (int i = 0; i < t->n; i++) {
		free(t->v[i].id);
		free(t->v[i].data);
	}
	free(t->v);
}

static int tparts_read(struct engine *E, const char *msg, struct tparts *t)
{
	*t = (struct tparts){0};
	if (store_part_list(E->S, msg, tpart_add, t) < 0 || t->oom) {
		tparts_free(t);
		return -1;
	}
	return 0;
}

static int prune_push(struct prune_state *P, const struct prune_row *r)
{
	void *grown = vec_reserve(P->v, &P->cap, P->n, sizeof(*P->v));
	if (!grown)
		return -1;
	P->v = grown;
	P->v[P->n++] = *r;
	return 0;
}

struct prune_read {
	struct engine *E;
	struct prune_state *P;
	int failed;
};

/* A message after the rows: a user's counts; an assistant's, with tool outputs to count
 * or where the walk stops, is kept. */
static int prune_row(void *arg, const struct store_message *m)
{
	struct prune_read *x = arg;
	struct prune_row r = {.user = !strcmp(m->role, "user")};
	snprintf(r.msg, sizeof(r.msg), "%s", m->id);
	if (!r.user) {
		cJSON *d = cJSON_Parse(m->data);
		r.stop = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "summary")) &&
			 msg_finished_ok(m->finish);
		cJSON_Delete(d);
		struct tparts t;
		if (tparts_read(x->E, m->id, &t))
			return x->failed = 1;
		for (int i = 0; i < t.n; i++)
			if (t.v[i].tokens < 0) {
				r.stop = 1; /* what came before it is cleared too: count after it */
				r.tokens = 0;
			} else {
				r.tokens += t.v[i].tokens;
			}
		tparts_free(&t);
	}
	return (r.user || r.stop || r.tokens) && prune_push(x->P, &r) ? (x->failed = 1) : 0;
}

/* The messages of the turns since the rows' end, up to turn_id. */
static int prune_catch_up(struct session *s, const char *turn_id)
{
	if (!s->prune && !(s->prune = calloc(1, sizeof(*s->prune))))
		return -1;
	struct prune_state *P = s->prune;
	struct prune_read x = {s->E, P, 0};
	if (strcmp(turn_id, P->read_upto) <= 0)
		return 0;
	if (store_message_list_turns(s->E->S, s->id, P->read_upto, turn_id, prune_row, &x) < 0 ||
	    x.failed) {
		compact_forget(s); /* read again from the start next time */
		return -1;
	}
	snprintf(P->read_upto, sizeof(P->read_upto), "%s", turn_id);
	return 0;
}

/* Marks the completed outputs of parts [from, to) of t cleared: in the store and to
 * the session's subscribers. */
static void clear_parts(struct engine *E, struct session *s, const struct tparts *t, int from,
			int to, int64_t now)
{
	for (int i = from; i < to; i++) {
		if (t->v[i].tokens <= 0)
			continue;
		cJSON *d = cJSON_Parse(t->v[i].data);
		cJSON *time = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(d, "state"), "time");
		char *data = cJSON_IsObject(time) &&
				     cJSON_AddNumberToObject(time, "compacted", (double)now)
			     ? cJSON_PrintUnformatted(d) : NULL;
		if (data && !store_part_set_data(E->S, t->v[i].id, data))
			msg_publish_json(E, s, "message.part.updated", "part", data);
		free(data);
		cJSON_Delete(d);
	}
}

struct walk {
	int cross;      /* the row whose outputs cross PROTECT, or -1 */
	int oldest;     /* the oldest row counted (the walk stops at a row that stops it) */
	int64_t before; /* tokens counted newer than cross */
	int64_t older;  /* tokens of the rows from oldest up to cross */
};

/* Walks back from the newest row, past the last two prompts' work (never cleared). */
static struct walk prune_walk(const struct prune_state *P)
{
	struct walk w = {-1, -1, 0, 0};
	int64_t total = 0;
	for (int k = P->n - 1, prompts = 0; k >= 0; k--) {
		if (P->v[k].user) {
			prompts++;
			continue;
		}
		if (prompts < 2)
			continue;
		w.oldest = k;
		if (w.cross < 0 && total + P->v[k].tokens > PRUNE_PROTECT) {
			w.cross = k;
			w.before = total;
		} else if (w.cross >= 0) {
			w.older += P->v[k].tokens;
		}
		total += P->v[k].tokens;
		if (P->v[k].stop)
			break;
	}
	return w;
}

/* The newest cleared part of t, or -1. */
static int last_cleared(const struct tparts *t)
{
	for (int i = t->n - 1; i >= 0; i--)
		if (t->v[i].tokens < 0)
			return i;
	return -1;
}

/* Clears the counted outputs of the rows from w->oldest up to w->cross. */
static void clear_older(struct session *s, const struct walk *w, int64_t now)
{
	struct prune_state *P = s->prune;
	for (int k = w->oldest; k < w->cross; k++) {
		struct tparts t;
		if (P->v[k].user || !P->v[k].tokens || tparts_read(s->E, P->v[k].msg, &t))
			continue;
		clear_parts(s->E, s, &t, last_cleared(&t) + 1, t.n, now);
		tparts_free(&t);
	}
}

void compact_prune(struct session *s, const char *turn_id)
{
	struct engine *E = s->E;
	struct tparts t;
	if (!E->compact.prune || prune_catch_up(s, turn_id))
		return;
	struct prune_state *P = s->prune;
	struct walk w = prune_walk(P);
	if (w.cross < 0 || w.before + P->v[w.cross].tokens + w.older <= PRUNE_MINIMUM ||
	    tparts_read(E, P->v[w.cross].msg, &t))
		return;
	/* the crossing message's parts, newest first: those past PROTECT are cleared */
	int first = last_cleared(&t) + 1, upto = first - 1;
	int64_t run = w.before, freed = w.older, kept = 0;
	for (int i = t.n - 1; i >= first; i--) {
		if (t.v[i].tokens <= 0)
			continue;
		run += t.v[i].tokens;
		if (run <= PRUNE_PROTECT) {
			kept += t.v[i].tokens;
			continue;
		}
		if (upto < first)
			upto = i;
		freed += t.v[i].tokens;
	}
	if (freed > PRUNE_MINIMUM) {
		int64_t now = now_ms();
		clear_parts(E, s, &t, first, upto + 1, now);
		clear_older(s, &w, now);
		log_info("session %s: cleared old tool outputs (~%lld tokens) from its history",
			 s->id, (long long)freed);
		/* what lies behind the crossing message is cleared: the walk stops there */
		P->v[w.cross].stop = 1;
		P->v[w.cross].tokens = kept;
		memmove(P->v, P->v + w.cross, (size_t)(P->n - w.cross) * sizeof(*P->v));
		P->n -= w.cross;
		session_forget_history(s);
	}
	tparts_free(&t);
}
