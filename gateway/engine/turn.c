/* turn: the ledger. A prompt becomes a user message and a queued turn, written and
 * committed before it is acknowledged. Turns of a session run one at a time, FIFO;
 * each ends in exactly one terminal assistant message, whatever ended it (completion,
 * error, abort, interruption, restart). */
#include "engine_int.h"
#include "jsonin.h"
#include "log.h"
#include "turnopts.h"
#include "userparts.h"
#include "vec.h"

#include <stdlib.h>
#include <string.h>

const char *turn_state_name(enum turn_state st)
{
	static const char *n[] = {"queued", "running", "completed", "failed", "cancelled"};
	return n[st];
}

static const char *policy_name(enum turn_policy p)
{
	static const char *n[] = {"queue", "interrupt", "reject"};
	return n[p];
}

int turn_save(struct engine *E, struct turn *t)
{
	struct store_turn r = {
		.id = t->id, .session_id = t->s->id, .user_message_id = t->user_msg,
		.source = t->source, .state = turn_state_name(t->state),
		.policy = policy_name(t->policy), .dedupe_key = t->dedupe, .error = t->error,
		.time_created = t->created, .time_started = t->started, .time_ended = t->ended,
	};
	return store_turn_put(E->S, &r);
}

static void cont_fired(struct timer *tm)
{
	struct turn *t = container_of(tm, struct turn, cont);
	step_begin(t);
}

struct turn *turn_alloc(struct session *s, const char *id, const char *user_msg,
			const char *source, const char *dedupe, const char *agent,
			const char *model)
{
	struct turn *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->s = s;
	if (id)
		snprintf(t->id, sizeof(t->id), "%s", id);
	else
		id_new(t->id, "turn");
	if (user_msg)
		snprintf(t->user_msg, sizeof(t->user_msg), "%s", user_msg);
	else
		id_new(t->user_msg, "msg");
	t->source = strdup(source ? source : "api");
	t->dedupe = dedupe && *dedupe ? strdup(dedupe) : NULL;
	t->qi.dedupe_key = t->dedupe;
	t->agent = strdup(agent);
	t->model = strdup(model);
	t->created = now_ms();
	timer_init(&t->cont, s->E->L, cont_fired);
	return t;
}

void turn_free(struct turn *t)
{
	if (!t)
		return;
	for (struct turn_waiter *w = t->waiters; w; w = w->next)
		w->turn = NULL; /* a waiter left behind must not reach a freed turn */
	timer_cancel(&t->cont);
	msg_free(t->s->E, t->am);
	free(t->source);
	free(t->dedupe);
	free(t->agent);
	free(t->model);
	free(t->error);
	cJSON_Delete(t->offered);
	topts_free(t);
	free(t);
}

/* The agent and model a prompt runs with: the prompt's, else the agent's or session's,
 * else the defaults. */
static int resolve(struct engine *E, struct session *s, const struct prompt *p,
		   const char **agent, const char **model, struct err *e)
{
	*agent = p->agent ? p->agent : s->agent ? s->agent : DEFAULT_AGENT;
	const struct agent *a = agents_find(&E->A, *agent);
	if (!a) {
		err_set(e, ERR_INVALID, "unknown agent \"%s\" (GET /agent lists them)", *agent);
		return -1;
	}
	*model = p->model ? p->model : a->model ? a->model : s->model ? s->model : E->C.model;
	return llm_check_model(E->M, *model, e);
}

/* Saves m, a prompt's user message, with the prompt's options and parts; frees m. */
static int write_user_message(struct engine *E, struct msg *m, const struct prompt *p,
			      struct uparts *u)
{
	if (p->system && *p->system)
		m->system = strdup(p->system);
	if (p->tools && p->tools->child)
		m->tools = cJSON_PrintUnformatted(p->tools);
	int rc = uparts_write(E, m, u);
	msg_free(E, m);
	return rc;
}

int turn_write_user(struct engine *E, struct turn *t, const struct prompt *p,
		    struct uparts *u)
{
	struct msg *m = msg_new(E, t->s, t, 0);
	if (!m)
		return -1;
	memcpy(m->id, t->user_msg, sizeof(m->id));
	if (!t->compact)
		return write_user_message(E, m, p, u);
	struct part *cp = part_add(E, m, P_COMPACTION);
	int rc = -1;
	if (cp) {
		cp->flags = t->compact;
		rc = msg_save(E, m) | part_save(E, cp);
	}
	msg_free(E, m);
	return rc ? -1 : 0;
}

static void attach(struct turn *t, struct turn_waiter *w)
{
	if (!w)
		return;
	w->turn = t;
	w->next = t->waiters;
	t->waiters = w;
}

static int exists_row(void *arg, const struct store_message *r)
{
	return 1;
}

static int check_prompt(struct engine *E, const struct prompt *p, struct session **s,
			struct err *e)
{
	*s = session_get(E, p->session_id);
	if (!*s)
		return session_missing(E, p->session_id, e);
	if (p->message_id && !id_valid(p->message_id, "msg")) {
		err_set(e, ERR_INVALID, "messageID \"%s\" is not a msg_ id", p->message_id);
		return -1;
	}
	if (p->message_id && store_message_get(E->S, p->message_id, exists_row, NULL) != 0) {
		err_set(e, ERR_INVALID, "messageID %s is already used", p->message_id);
		return -1;
	}
	/* while closing, only a background child's result is still taken: it is
	 * queued (nothing starts now) and runs after the restart */
	if (E->closing && (!p->source || strcmp(p->source, "task"))) {
		err_set(e, ERR_BUSY, "the server is shutting down");
		return -1;
	}
	/* nothing may restart a subtree while engine_abort is ending it (a background
	 * child's wake would otherwise revive its aborted parent) */
	if (turn_abort_origin(E, (*s)->id)) {
		err_set(e, ERR_BUSY, "session %s is being aborted", (*s)->id);
		return -1;
	}
	return 0;
}

/* HOOK_SUBAGENT_START / END: a task's child session got its first turn, or that turn
 * ended (its state, with a stall told apart from other failures). */
static void subagent_hook(struct turn *t, enum hook_point at)
{
	struct session *s = t->s;
	if (!hooks_any(s->E, at))
		return;
	const char *state = NULL;
	if (at == HOOK_SUBAGENT_END)
		state = t->state == T_FAILED && t->error && strstr(t->error, "LLM stream stalled")
				? "stalled"
				: turn_state_name(t->state);
	struct hook_ctx c;
	struct hook_subagent hs = {.child_id = s->id, .parent_call_id = s->parent_tool_call_id,
				   .agent = t->agent, .background = s->background, .state = state};
	hooks_ctx(s, NULL, &c);
	hooks_run(s->E, at, &c, &hs, NULL, 0);
}

/* HOOK_PROMPT_SUBMIT: the prompt before its user message (message_id, of turn t or of
 * none) is written; a refusal is the caller's error. A callback's text replaces the
 * client's text parts in u. */
static int submit_hooks(struct engine *E, struct session *s, struct turn *t,
			const char *source, const char *message_id, const struct prompt *p,
			struct uparts *u, struct err *e)
{
	if (!hooks_any(E, HOOK_PROMPT_SUBMIT))
		return 0;
	struct hook_ctx c;
	struct hook_prompt_run hp = {.pub = {.text = u->text, .parts = p->parts,
					     .source = source, .message_id = message_id}};
	char why[256];
	hooks_ctx(s, t, &c);
	if (hooks_run(E, HOOK_PROMPT_SUBMIT, &c, &hp.pub, why, sizeof(why)) == 0) {
		int bad = hp.text && uparts_set_text(u, hp.text);
		free(hp.text);
		if (bad)
			err_set(e, ERR_INTERNAL, "out of memory");
		return bad ? -1 : 0;
	}
	free(hp.text);
	err_set(e, ERR_INVALID, "the prompt was refused: %s", why);
	return -1;
}

/* A new turn's user message (with the text the prompt hooks left) and row, committed:
 * 0; -1 refused, nothing kept; STORE_LATE kept, not on disk yet (engine_commit). */
static int write_turn(struct engine *E, struct turn *t, const struct prompt *p,
		      struct uparts *u, struct err *e)
{
	if (!p->compact && submit_hooks(E, t->s, t, t->source, t->user_msg, p, u, e))
		return -1;
	uint64_t mark = store_mark(E->S);
	/* a rewound session's hidden messages go for good with the prompt (revert.c) */
	struct revert_point *rewound = revert_commit(E, t->s);
	int bad = turn_write_user(E, t, p, u) | turn_save(E, t);
	if (bad) {
		revert_settle(t->s, rewound, 1);
		err_set(e, ERR_INTERNAL, "out of memory saving the prompt");
		return -1;
	}
	char what[96];
	snprintf(what, sizeof(what), "the prompt (message %s)", t->user_msg);
	int rc = engine_commit(E, mark, what, e);
	revert_settle(t->s, rewound, rc == -1);
	return rc;
}

static int turn_enqueue(struct engine *E, struct session *s, const struct prompt *p,
			const char *agent, const char *model, struct uparts *u,
			struct prompt_result *r, struct turn_waiter *w, struct err *e);

/* noReply: the user message is kept and announced, and no turn runs. It has no turn,
 * so no reply; it takes a place in the turn order (an id of the turn sequence), so the
 * turns accepted after it show it to the model and those before do not. */
static int accept_no_reply(struct engine *E, struct session *s, const struct prompt *p,
			   const char *agent, const char *model, struct uparts *u,
			   struct prompt_result *r, struct err *e)
{
	if (engine_store_ok(E, "the prompt", e))
		return -1;
	struct msg *m = msg_new(E, s, NULL, 0);
	const char *slash = strchr(model, '/');
	if (!m)
		goto oom;
	if (p->message_id)
		snprintf(m->id, sizeof(m->id), "%s", p->message_id);
	id_new(m->order, "turn");
	m->agent = strdup(agent);
	m->provider = strndup(model, (size_t)(slash - model));
	m->model = strdup(slash + 1);
	m->source = strdup(p->source ? p->source : "api");
	char id[ID_MAX];
	memcpy(id, m->id, sizeof(id));
	if (submit_hooks(E, s, NULL, m->source, id, p, u, e)) {
		msg_free(E, m);
		return -1;
	}
	uint64_t mark = store_mark(E->S);
	/* a rewound session's hidden messages go for good with any prompt, one without a
	 * reply too, as OpenCode's (revert.c) */
	struct revert_point *rewound = revert_commit(E, s);
	if (write_user_message(E, m, p, u)) {
		revert_settle(s, rewound, 1);
		goto oom;
	}
	s->updated = now_ms();
	session_save(E, s, "session.updated");
	if (r) {
		r->turn_id[0] = 0;
		snprintf(r->user_message_id, sizeof(r->user_message_id), "%s", id);
		r->coalesced = 0;
	}
	log_info("session %s: message %s kept without a reply (noReply, source %s)", s->id, id,
		 p->source ? p->source : "api");
	stats_turn(E, p->source, STAT_KEPT);
	char what[96];
	snprintf(what, sizeof(what), "the prompt (message %s)", id);
	int rc = engine_commit(E, mark, what, e);
	revert_settle(s, rewound, rc == -1);
	return rc ? -1 : 0;
oom:
	err_set(e, ERR_INTERNAL, "out of memory saving the prompt");
	return -1;
}

/* What the prompt asks beyond its parts, checked before they are read: its tools, and
 * what noReply cannot go with. */
static int check_options(struct engine *E, const struct prompt *p, struct err *e)
{
	if (topts_check_tools(E, p->tools, e))
		return -1;
	if (p->no_reply && (p->dedupe_key || p->policy != TURN_POLICY_QUEUE)) {
		err_set(e, ERR_INVALID, "noReply: a prompt without a reply has no turn, so no "
			"\"%s\"", p->dedupe_key ? "dedupeKey" : "policy");
		return -1;
	}
	return 0;
}

/* Subtask parts run the task tool: the turn must be able to call it. */
static int check_subtasks(struct engine *E, const struct prompt *p, const char *agent,
			  const struct uparts *u, struct err *e)
{
	if (!u->subtasks)
		return 0;
	if (p->no_reply) {
		err_set(e, ERR_INVALID, "noReply: a subtask part needs a turn to run in");
		return -1;
	}
	if (!topts_tool_usable(agents_find(&E->A, agent), p->tools, "task")) {
		err_set(e, ERR_INVALID, "a subtask part runs the task tool, which this turn "
			"cannot call (agent %s%s)", agent,
			topts_tool_state(p->tools, "task") == 0 ? ", tools turns it off" : "");
		return -1;
	}
	return 0;
}

static int verdict_error(struct session *s, enum turnq_verdict v, struct err *e)
{
	if (v == TURNQ_BUSY)
		err_set(e, ERR_BUSY, "session %s is busy (a turn is running or queued) and the "
			"prompt asked to be rejected when busy", s->id);
	else
		err_set(e, ERR_LIMIT, "session %s already has %d queued turns", s->id, TURNQ_MAX);
	return -1;
}

int turn_accept(struct engine *E, const struct prompt *p, struct prompt_result *r,
		  struct turn_waiter *w, struct err *e)
{
	struct session *s;
	const char *agent, *model;
	struct uparts u = {0};
	if (check_prompt(E, p, &s, e) || resolve(E, s, p, &agent, &model, e))
		return -1;
	/* a compaction has no parts nor options: its user message is its compaction part */
	if (!p->compact && (check_options(E, p, e) || uparts_parse(E, s, p, agent, model, &u, e)))
		return -1;
	if (check_subtasks(E, p, agent, &u, e)) {
		uparts_free(&u);
		return -1;
	}
	if (p->no_reply) {
		int rc = accept_no_reply(E, s, p, agent, model, &u, r, e);
		uparts_free(&u);
		return rc;
	}
	int rc = turn_enqueue(E, s, p, agent, model, &u, r, w, e);
	uparts_free(&u);
	return rc;
}

/* The prompt as a turn: queued (or joined to a queued turn with its dedupe key), its
 * user message and row committed, the waiter attached. */
static int turn_enqueue(struct engine *E, struct session *s, const struct prompt *p,
			const char *agent, const char *model, struct uparts *u,
			struct prompt_result *r, struct turn_waiter *w, struct err *e)
{
	struct turnq_item *match;
	enum turnq_verdict v = turnq_decide(&s->q, p->policy, p->dedupe_key, &match);
	if (v == TURNQ_BUSY || v == TURNQ_FULL)
		return verdict_error(s, v, e);
	struct turn *t = v == TURNQ_COALESCE ? container_of(match, struct turn, qi) : NULL;
	if (!t) {
		if (engine_store_ok(E, "the prompt", e))
			return -1;
		t = turn_alloc(s, NULL, p->message_id, p->source, p->dedupe_key, agent, model);
		if (!t)
			goto oom;
		t->policy = p->policy;
		t->compact = !p->compact ? 0 : COMPACT_ON | (p->compact > 1 ? COMPACT_AUTO : 0);
		int rc = write_turn(E, t, p, u, e);
		if (rc == -1) {
			turn_free(t);
			return -1;
		}
		turnq_push(&s->q, &t->qi); /* STORE_LATE: kept, so it runs; the caller hears 503 */
		if (s->parent_tool_call_id && !s->subagent_turn[0]) {
			memcpy(s->subagent_turn, t->id, sizeof(t->id));
			subagent_hook(t, HOOK_SUBAGENT_START);
		}
		log_info("session %s: turn %s queued (source %s, %zu waiting)", s->id, t->id,
			 t->source, s->q.waiting);
		stats_turn(E, t->source, STAT_ACCEPTED);
		if (v == TURNQ_INTERRUPT && s->cur)
			turn_end(s->cur, T_CANCELLED, "MessageAbortedError",
				 "interrupted by a newer prompt");
		/* busy from the moment work is accepted, not from when it starts: a client
		 * asking between the two must never see idle with a turn waiting */
		if (s->status == ST_IDLE) /* a retry under way keeps saying so */
			session_set_status(E, s, ST_BUSY);
		session_kick(s);
		if (rc)
			return -1;
	}
	if (v == TURNQ_COALESCE)
		stats_turn(E, p->source, STAT_COALESCED);
	if (r) {
		snprintf(r->turn_id, sizeof(r->turn_id), "%s", t->id);
		snprintf(r->user_message_id, sizeof(r->user_message_id), "%s", t->user_msg);
		r->coalesced = v == TURNQ_COALESCE;
	}
	attach(t, w);
	return 0;
oom:
	turn_free(t);
	err_set(e, ERR_INTERNAL, "out of memory");
	return -1;
}

void turn_waiter_cancel(struct engine *E, struct turn_waiter *w)
{
	struct turn *t = w->turn;
	if (!t)
		return;
	for (struct turn_waiter **pp = &t->waiters; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	w->turn = NULL;
}

static void running_probe(struct session *s, void *arg)
{
	*(int *)arg |= s->cur != NULL;
}

/* Does a session of the tree run a turn (which may wait on this session's next)? */
static int tree_running(struct engine *E, const char *root)
{
	int running = 0;
	session_for_tree(E, root, running_probe, &running);
	return running;
}

void turn_start_next(struct session *s)
{
	struct engine *E = s->E;
	if (s->cur || E->closing)
		return;
	/* a draining cluster node finishes what runs (a subagent's turns included) and
	 * hands the rest over: queued turns stay in the store for the next node */
	if (engine_draining(E) && !tree_running(E, s->root_id))
		return;
	if (store_failure(E->S) && turnq_busy(&s->q)) {
		/* queued work waits for the store: running it now would pile up writes
		 * that cannot be made durable */
		timer_arm(&s->kick, STORE_WAIT_MS);
		return;
	}
	compact_before_start(s);
	struct turnq_item *it = turnq_start_next(&s->q);
	if (!it)
		return;
	struct turn *t = container_of(it, struct turn, qi);
	s->cur = t;
	t->state = T_RUNNING;
	t->started = now_ms();
	/* durable before the model is called: after a crash a started turn is failed as
	 * interrupted, never run a second time (its tools may have acted already) */
	if (turn_save(E, t) || store_flush(E->S))
		log_error("session %s: turn %s: the store could not record its start; a crash "
			  "now would run it again", s->id, t->id);
	E->running++;
	log_info("session %s: turn %s running (%s, %s)", s->id, t->id, t->agent, t->model);
	session_set_status(E, s, ST_BUSY);
	topts_load(t);
	step_begin(t);
}

/* The turn's last word: the current assistant message if it has not finished, or a new
 * one when the last finished with tool-calls or none was written. */
static void terminal_message(struct engine *E, struct turn *t, enum turn_state st,
			     const char *err_name, const char *err_msg)
{
	struct msg *m = t->am;
	if (m && m->finish && strcmp(m->finish, "tool-calls")) {
		memcpy(t->terminal_msg, m->id, sizeof(m->id));
		return;
	}
	if (!m || m->finish) {
		msg_free(E, m);
		m = t->am = msg_new(E, t->s, t, 1);
		if (!m)
			return;
	}
	msg_close_open_parts(E, m);
	free(m->finish);
	m->finish = strdup(st == T_CANCELLED ? "aborted" : st == T_COMPLETED ? "stop" : "error");
	if (err_name)
		msg_set_error(m, err_name, err_msg ? err_msg : err_name, 0, 0);
	m->completed = now_ms();
	msg_save(E, m);
	memcpy(t->terminal_msg, m->id, sizeof(m->id));
}

/* Calls every waiter of t once, detached first so a callback may not reach the turn. */
static void notify(struct turn *t, const char *state, const char *msg_id, const char *error)
{
	struct turn_waiter *w = t->waiters;
	t->waiters = NULL;
	while (w) {
		struct turn_waiter *next = w->next;
		w->turn = NULL;
		w->fn(w, state, msg_id, error);
		w = next;
	}
}

void turn_end(struct turn *t, enum turn_state st, const char *err_name, const char *err_msg)
{
	struct session *s = t->s;
	struct engine *E = s->E;
	step_cancel(t, err_msg ? err_msg : "turn ended");
	terminal_message(E, t, st, err_name, err_msg);
	t->state = st;
	t->ended = now_ms();
	free(t->error);
	t->error = err_msg ? strdup(err_msg) : NULL;
	turn_save(E, t);
	if (st == T_FAILED && t->am && t->am->error_json)
		session_emit_error(E, s, t, t->am->error_json);
	s->updated = t->ended;
	session_save(E, s, "session.updated");
	log_info("session %s: turn %s %s%s%s", s->id, t->id, turn_state_name(st),
		 err_msg ? ": " : "", err_msg ? err_msg : "");
	stats_turn(E, t->source, st == T_COMPLETED ? STAT_COMPLETED
				 : st == T_CANCELLED ? STAT_CANCELLED : STAT_FAILED);
	if (s->cur == t) {
		s->cur = NULL;
		E->running--;
		turnq_finish(&s->q);
	} else {
		turnq_remove(&s->q, &t->qi);
	}
	if (hooks_any(E, HOOK_TURN_END)) {
		struct hook_ctx c;
		struct hook_turn_end he = {turn_state_name(t->state), t->error, t->user_msg,
					   t->terminal_msg, t->source};
		hooks_ctx(s, t, &c);
		hooks_run(E, HOOK_TURN_END, &c, &he, NULL, 0);
	}
	if (!strcmp(t->id, s->subagent_turn))
		subagent_hook(t, HOOK_SUBAGENT_END);
	notify(t, turn_state_name(t->state), t->terminal_msg, t->error);
	char ended[ID_MAX];
	int prune = st == T_COMPLETED && !t->compact;
	snprintf(ended, sizeof(ended), "%s", t->id);
	turn_free(t);
	if (prune)
		compact_prune(s, ended);
	if (turnq_busy(&s->q))
		session_kick(s);
	else
		session_set_status(E, s, ST_IDLE);
}

static void abort_session(struct session *s, void *arg)
{
	(void)arg;
	while (s->q.head) {
		struct turn *t = container_of(s->q.head, struct turn, qi);
		turn_end(t, T_CANCELLED, "MessageAbortedError", "aborted before it ran");
	}
	if (s->cur)
		turn_end(s->cur, T_CANCELLED, "MessageAbortedError", "aborted");
}

int turn_cancel(struct engine *E, const char *session_id, const char *turn_id, struct err *e)
{
	struct session *s = session_get(E, session_id);
	if (!s) {
		err_set(e, ERR_NOTFOUND, "session %s not found", session_id ? session_id : "(none)");
		return -1;
	}
	if (s->cur && turn_id && !strcmp(s->cur->id, turn_id)) {
		err_set(e, ERR_BUSY, "turn %s is running; abort the session to stop it", turn_id);
		return -1;
	}
	for (struct turnq_item *it = s->q.head; it && turn_id; it = it->next) {
		struct turn *t = container_of(it, struct turn, qi);
		if (!strcmp(t->id, turn_id)) {
			turn_end(t, T_CANCELLED, "MessageAbortedError", "cancelled before it ran");
			return 0;
		}
	}
	err_set(e, ERR_NOTFOUND, "session %s has no queued turn %s (unknown, or ended)", s->id,
		turn_id ? turn_id : "(none)");
	return -1;
}

const char *turn_abort_origin(struct engine *E, const char *session_id)
{
	struct session *s = session_get(E, session_id);
	for (int i = 0; s && i < E->naborting; i++) /* outermost first: the first cause */
		if (session_path_has(s->path, E->aborting[i]))
			return E->aborting[i];
	return NULL;
}

int turn_abort_tree(struct engine *E, const char *session_id, struct err *e)
{
	struct session *s = session_get(E, session_id);
	if (!s) {
		err_set(e, ERR_NOTFOUND, "session %s not found", session_id ? session_id : "");
		return -1;
	}
	/* while the subtree ends, nothing inside it may be prompted anew (a background
	 * child's wake would otherwise restart its aborted parent) */
	int pushed = E->naborting < (int)(sizeof(E->aborting) / sizeof(E->aborting[0]));
	if (pushed)
		E->aborting[E->naborting++] = s->id;
	session_for_tree(E, s->id, abort_session, NULL);
	if (pushed)
		E->naborting--;
	return 0;
}

/* ---- start-up recovery ---- */

struct trow {
	char id[ID_MAX], session_id[ID_MAX], user_msg[ID_MAX];
	char *source, *dedupe, *policy;
	int64_t created, started;
};

struct trows {
	struct trow *v;
	int n, cap;
};

static int collect_turn(void *arg, const struct store_turn *r)
{
	struct trows *l = arg;
	void *grown = vec_reserve(l->v, &l->cap, l->n, sizeof(*l->v));
	if (!grown)
		return 1;
	l->v = grown;
	struct trow *t = &l->v[l->n++];
	memset(t, 0, sizeof(*t));
	snprintf(t->id, sizeof(t->id), "%s", r->id);
	snprintf(t->session_id, sizeof(t->session_id), "%s", r->session_id);
	snprintf(t->user_msg, sizeof(t->user_msg), "%s", r->user_message_id);
	t->source = strdup(r->source ? r->source : "api");
	t->dedupe = r->dedupe_key ? strdup(r->dedupe_key) : NULL;
	t->policy = r->policy ? strdup(r->policy) : NULL;
	t->created = r->time_created;
	t->started = r->time_started;
	return 0;
}

static void trow_free(struct trow *r)
{
	free(r->source);
	free(r->dedupe);
	free(r->policy);
}

static void trows_free(struct trows *l)
{
	for (int i = 0; i < l->n; i++)
		trow_free(&l->v[i]);
	free(l->v);
}

struct meta {
	char *agent, *model, *finish, *am_id;
	int64_t am_created;
	const char *turn_id;
};

static int user_meta_row(void *arg, const struct store_message *r)
{
	struct meta *m = arg;
	cJSON *d = cJSON_Parse(r->data);
	const cJSON *model = cJSON_GetObjectItemCaseSensitive(d, "model");
	const char *a = jsonin_get(d, "agent");
	const char *pid = jsonin_get(model, "providerID");
	const char *mid = jsonin_get(model, "modelID");
	m->agent = strdup(a ? a : DEFAULT_AGENT);
	if (!pid || !mid || asprintf(&m->model, "%s/%s", pid, mid) < 0)
		m->model = NULL;
	cJSON_Delete(d);
	return 1;
}

/* The last assistant message the turn wrote before the crash, if any. */
static int last_am_row(void *arg, const struct store_message *r)
{
	struct meta *m = arg;
	if (!r->turn_id || strcmp(r->turn_id, m->turn_id) || strcmp(r->role, "assistant"))
		return 0;
	free(m->am_id);
	free(m->finish);
	m->am_id = strdup(r->id);
	m->finish = r->finish ? strdup(r->finish) : NULL;
	m->am_created = r->time_created;
	return 0;
}

static struct turn *turn_from_row(struct engine *E, struct session *s, const struct trow *r,
				  struct meta *m)
{
	m->turn_id = r->id;
	store_message_get(E->S, r->user_msg, user_meta_row, m);
	const char *model = m->model ? m->model : E->C.model;
	struct turn *t = turn_alloc(s, r->id, r->user_msg, r->source, r->dedupe,
				    m->agent ? m->agent : DEFAULT_AGENT, model);
	if (!t)
		return NULL;
	t->created = r->created;
	t->started = r->started;
	turnq_policy_parse(r->policy, &t->policy);
	t->compact = compact_kind(E, r->user_msg);
	return t;
}

/* Tool calls that were pending or running when the process died end as errors. */
static int interrupt_tool_row(void *arg, const struct store_part *r)
{
	struct engine *E = arg;
	if (strcmp(r->type, "tool"))
		return 0;
	cJSON *d = cJSON_Parse(r->data);
	cJSON *state = cJSON_GetObjectItemCaseSensitive(d, "state");
	const char *st = jsonin_get(state, "status");
	if (st && (!strcmp(st, "pending") || !strcmp(st, "running"))) {
		cJSON_ReplaceItemInObject(state, "status", cJSON_CreateString("error"));
		cJSON_DeleteItemFromObject(state, "error");
		cJSON_AddStringToObject(state, "error", "interrupted: the server stopped");
		char *json = cJSON_PrintUnformatted(d);
		struct store_part p = *r;
		p.data = json;
		if (json)
			store_part_put(E->S, &p);
		free(json);
	}
	cJSON_Delete(d);
	return 0;
}

static void recover_running(struct engine *E, const struct trow *r)
{
	struct session *s = session_get(E, r->session_id);
	struct meta m = {0};
	struct turn *t = s ? turn_from_row(E, s, r, &m) : NULL;
	if (!t) {
		log_error("recovery: turn %s of missing session %s left as is", r->id,
			  r->session_id);
		goto out;
	}
	store_message_list(E->S, s->id, last_am_row, &m);
	if (m.am_id) {
		store_part_list(E->S, m.am_id, interrupt_tool_row, E);
		t->am = msg_new(E, s, t, 1);
		if (t->am) {
			snprintf(t->am->id, sizeof(t->am->id), "%s", m.am_id);
			t->am->created = m.am_created;
			t->am->finish = m.finish ? strdup(m.finish) : NULL;
		}
	}
	t->state = T_RUNNING;
	turnq_push(&s->q, &t->qi);
	turnq_start_next(&s->q);
	s->cur = t;
	s->status = ST_BUSY; /* as the log left it: turn_end announces idle */
	E->running++;
	log_warn("session %s: turn %s was running when the process stopped; failing it as "
		 "interrupted", s->id, t->id);
	turn_end(t, T_FAILED, "UnknownError", "interrupted");
out:
	free(m.agent);
	free(m.model);
	free(m.finish);
	free(m.am_id);
}

static void requeue(struct engine *E, const struct trow *r)
{
	struct session *s = session_get(E, r->session_id);
	struct meta m = {0};
	struct turn *t = s ? turn_from_row(E, s, r, &m) : NULL;
	free(m.agent);
	free(m.model);
	if (!t)
		return;
	turnq_push(&s->q, &t->qi);
	session_kick(s);
}

/* Is the row's session in root's tree (any tree when root is NULL)? Read from the
 * store, so that sessions of trees another node runs are not cached here: 1, 0, or -1
 * when the store cannot be read now. */
static int in_tree(struct engine *E, const struct trow *r, const char *root)
{
	char found[ID_MAX] = "";
	if (!root)
		return 1;
	int rc = session_root(E, r->session_id, found);
	return rc < 0 ? -1 : rc > 0 && !strcmp(found, root);
}

/* Keeps the rows of root's tree (every row when root is NULL): 0, or -1 when the store
 * cannot be read now (nothing is recovered then). */
static int keep_tree(struct engine *E, struct trows *l, const char *root)
{
	int n = 0;
	for (int i = 0; i < l->n; i++) {
		int in = in_tree(E, &l->v[i], root);
		if (in < 0)
			return -1;
		if (in)
			l->v[n++] = l->v[i];
		else
			trow_free(&l->v[i]);
	}
	l->n = n;
	return 0;
}

int turn_recover_tree(struct engine *E, const char *root, int resume_queued)
{
	struct trows running = {0}, queued = {0};
	if (store_turn_list_state(E->S, "running", collect_turn, &running) < 0 ||
	    store_turn_list_state(E->S, "queued", collect_turn, &queued) < 0 ||
	    keep_tree(E, &running, root) || keep_tree(E, &queued, root)) {
		trows_free(&running);
		trows_free(&queued);
		return -1;
	}
	int failed = running.n, resumed = resume_queued ? queued.n : 0;
	for (int i = 0; i < running.n; i++)
		recover_running(E, &running.v[i]);
	for (int i = 0; i < resumed; i++)
		requeue(E, &queued.v[i]);
	if (failed || resumed)
		log_info("recovery%s%s: %d interrupted turn(s) failed, %d queued turn(s) resumed",
			 root ? " of session tree " : "", root ? root : "", failed, resumed);
	trows_free(&running);
	trows_free(&queued);
	return store_flush(E->S);
}

int turn_recover(struct engine *E, int resume_queued)
{
	return turn_recover_tree(E, NULL, resume_queued);
}

static void hand_over(struct session *s, void *arg)
{
	const char *why = arg;
	struct turnq_item *it;
	timer_cancel(&s->kick);
	while ((it = s->q.head)) {
		struct turn *t = container_of(it, struct turn, qi);
		turnq_remove(&s->q, it);
		notify(t, "queued", "", why);
		turn_free(t);
	}
}

int turn_hand_over_tree(struct engine *E, const char *root, const char *why)
{
	if (tree_running(E, root))
		return -1;
	session_for_tree(E, root, hand_over, (void *)why);
	return 0;
}

void turn_shutdown(struct engine *E)
{
	if (!E->closing) {
		E->closing = 1;
		for (int b = 0; b < SES_BUCKETS; b++) {
			for (struct session *s = E->buckets[b]; s; s = s->hnext) {
				if (s->cur)
					turn_end(s->cur, T_FAILED, "UnknownError",
						 "interrupted: the server shut down");
				/* callers waiting on a turn that stays queued learn so now */
				for (struct turnq_item *it = s->q.head; it; it = it->next)
					notify(container_of(it, struct turn, qi), "queued", "",
					       "the server is shutting down: the prompt is saved and "
					       "runs when the server starts again");
			}
		}
	}
	engine_flush(E);
}

/* A session is busy only while something can end its turn: a provider request (or its
 * retry), a tool call (a subagent included), or the continuation after tools. Anything
 * else is a bug; make it visible instead of leaving the session busy forever. */
static void sweep_session(struct session *s)
{
	struct engine *E = s->E;
	struct turn *t = s->cur;
	if (t && !t->stream && t->tools_pending == 0 && !timer_armed(&t->cont) && !s->asks) {
		log_error("BUG: session %s turn %s is busy with no provider request, tool or "
			  "subagent running; failing it", s->id, t->id);
		turn_end(t, T_FAILED, "UnknownError", "internal error: the turn was busy with "
			 "nothing running (reported in the server log)");
	} else if (!t && s->status != ST_IDLE && !turnq_busy(&s->q)) {
		log_error("BUG: session %s shows %s with no turn; setting it idle", s->id,
			  s->status == ST_BUSY ? "busy" : "retry");
		session_set_status(E, s, ST_IDLE);
	} else if (t && store_pending_bytes(E->S) > STORE_PENDING_MAX) {
		char msg[512];
		snprintf(msg, sizeof(msg), "the store cannot write (%.300s) and %zu MiB of writes "
			 "wait in memory: the turn was stopped so that they stay bounded",
			 store_failure(E->S), store_pending_bytes(E->S) >> 20);
		turn_end(t, T_FAILED, "StoreError", msg);
	} else if (!t && turnq_busy(&s->q) && !timer_armed(&s->kick)) {
		log_error("BUG: session %s has queued turns and none running; starting one", s->id);
		session_kick(s);
	}
}

/* Sessions idle this long leave the cache (the store keeps them; session_get reloads). */
#define SESSION_IDLE_EVICT_MS (10 * 60 * 1000)

static int evictable(struct session *s, int64_t now)
{
	return !s->cur && !turnq_busy(&s->q) && !timer_armed(&s->kick) && s->status == ST_IDLE &&
	       !s->waiting &&
	       now - s->last_used > SESSION_IDLE_EVICT_MS &&
	       !engine_tree_busy(s->E, s->id);
}

void turn_sweep(struct timer *tm)
{
	struct engine *E = container_of(tm, struct engine, sweeper);
	int64_t now = now_ms();
	int active = 0;
	for (int b = 0; b < SES_BUCKETS; b++)
		for (struct session *s = E->buckets[b], *next; s; s = next) {
			next = s->hnext;
			sweep_session(s);
			if (evictable(s, now)) {
				session_unlink(E, s);
				session_free(s);
			} else {
				active |= s->cur || turnq_busy(&s->q) || s->status != ST_IDLE;
			}
		}
	/* an idle server is not woken every SWEEP_MS: only eviction is left to do */
	E->sweep_fast = active;
	timer_arm(tm, active ? SWEEP_MS : SWEEP_IDLE_MS);
}

void turn_sweep_soon(struct engine *E)
{
	if (!E->sweep_fast && !E->closing) {
		E->sweep_fast = 1;
		timer_arm(&E->sweeper, SWEEP_MS);
	}
}
