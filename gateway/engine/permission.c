/* permission: what a running tool call may do (engine.h). The rules decide first
 * (permrule.c over the built-in defaults, the config's and the agent's), then the
 * HOOK_PERMISSION_ASK callbacks, then the "always" replies of the session's tree; what
 * is left waits for a human as an ask: published (permission.asked, with the tree
 * envelope, so whoever watches the root sees a grandchild's), listed, and ended exactly
 * once by ask_end — a reply, its call's end (an abort), or the timeout. While it waits,
 * the session and each of its ancestors count it (HOOK_HUMAN_WAIT when that starts or
 * stops), so the task budget pauses and the sweeper and the cache leave them alone.
 * Loop thread. */
#include "engine_int.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

#define PERMISSION_MAX 256
/* A timeout up to ten years: past any use, far from overflowing the timer. */
#define TIMEOUT_MAX 315360000000.0

/* What a human is asked; in E->perm.asks from ask_human to ask_end. */
struct ask {
	struct ask *next;
	struct engine *E;
	char id[ID_MAX], session[ID_MAX], root[ID_MAX], message_id[ID_MAX];
	uint64_t call, seq;
	char *permission, *title, *call_id;
	cJSON *patterns, *always, *metadata;
	int64_t created;
	permission_done_fn done;
	void *arg;
	struct timer timeout;
};

/* The "always" replies given in one session tree. */
struct approval {
	struct approval *next;
	char root[ID_MAX];
	struct perm_rules rules;
};

static const char REJECTED[] = "The user rejected permission to use this specific tool call.";

/* ---- set-up ---- */

static int defaults(struct perm_rules *d)
{
	snprintf(d->origin, sizeof(d->origin), "default");
	/* reading is free; changing files and running commands ask; other tools (MCP
	 * servers', plugins') are allowed unless a rule says otherwise */
	return perm_rules_add(d, "*", "*", PERM_ALLOW) || perm_rules_add(d, "edit", "*", PERM_ASK) ||
	       perm_rules_add(d, "write", "*", PERM_ASK) || perm_rules_add(d, "bash", "*", PERM_ASK);
}

int permission_init(struct engine *E, struct err *e)
{
	const cJSON *sec = cJSON_GetObjectItemCaseSensitive(E->C.root, "permission");
	const cJSON *t = cJSON_IsObject(sec) ? cJSON_GetObjectItemCaseSensitive(sec, "timeout_ms")
					      : NULL;
	if (t && (!cJSON_IsNumber(t) || t->valuedouble < 0 || t->valuedouble > TIMEOUT_MAX)) {
		err_set(e, ERR_INVALID, "config \"permission\": \"timeout_ms\" must be a number of "
			"ms from 0 (no timeout) to %.0f", TIMEOUT_MAX);
		return -1;
	}
	E->perm.timeout_ms = t ? (int64_t)t->valuedouble : 0;
	snprintf(E->perm.global.origin, sizeof(E->perm.global.origin), "config");
	if (defaults(&E->perm.defaults)) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return -1;
	}
	return perm_rules_parse(&E->perm.global, sec, getenv("HOME"), "config \"permission\"", e);
}

static void ask_free(struct ask *a)
{
	timer_cancel(&a->timeout);
	free(a->permission);
	free(a->title);
	free(a->call_id);
	cJSON_Delete(a->patterns);
	cJSON_Delete(a->always);
	cJSON_Delete(a->metadata);
	free(a);
}

void permission_free(struct engine *E)
{
	while (E->perm.asks) { /* none is left once every call was cancelled */
		struct ask *a = E->perm.asks;
		E->perm.asks = a->next;
		ask_free(a);
	}
	while (E->perm.approved) {
		struct approval *ap = E->perm.approved;
		E->perm.approved = ap->next;
		perm_rules_free(&ap->rules);
		free(ap);
	}
	perm_rules_free(&E->perm.defaults);
	perm_rules_free(&E->perm.global);
}

/* ---- the "always" replies of a tree ---- */

static struct approval *approval_of(struct engine *E, const char *root, int create)
{
	for (struct approval *ap = E->perm.approved; ap; ap = ap->next)
		if (!strcmp(ap->root, root))
			return ap;
	struct approval *ap = create ? calloc(1, sizeof(*ap)) : NULL;
	if (!ap)
		return NULL;
	snprintf(ap->root, sizeof(ap->root), "%s", root);
	snprintf(ap->rules.origin, sizeof(ap->rules.origin), "an \"always\" reply");
	ap->next = E->perm.approved;
	E->perm.approved = ap;
	return ap;
}

void permission_forget_tree(struct engine *E, const char *root_id)
{
	for (struct approval **pp = &E->perm.approved; *pp; pp = &(*pp)->next) {
		struct approval *ap = *pp;
		if (strcmp(ap->root, root_id))
			continue;
		*pp = ap->next;
		perm_rules_free(&ap->rules);
		free(ap);
		return;
	}
}

/* 1 when the tree's "always" replies allow every pattern of the ask. */
static int always_allows(struct engine *E, const char *root, const char *permission,
			 const cJSON *patterns)
{
	struct approval *ap = approval_of(E, root, 0);
	const struct perm_rules *sets[] = {ap ? &ap->rules : NULL};
	struct perm_hit hit;
	return ap && perm_eval(sets, 1, permission, patterns, &hit) == PERM_ALLOW;
}

static int remember(struct engine *E, const struct ask *a)
{
	struct approval *ap = approval_of(E, a->root, 1);
	const cJSON *it;
	if (!ap)
		return -1;
	cJSON_ArrayForEach(it, a->always)
		if (perm_rules_add(&ap->rules, a->permission, it->valuestring, PERM_ALLOW))
			return -1;
	return 0;
}

/* ---- events ---- */

static void write_json(struct jw *w, const char *key, const cJSON *v)
{
	char *s = cJSON_PrintUnformatted(v);
	jw_kraw(w, key, s ? s : "null");
	free(s);
}

/* The ask as OpenCode's PermissionRequest (v2), with v1's Permission fields beside. */
static void write_ask(const struct ask *a, struct jw *w)
{
	jw_obj(w);
	jw_kstr(w, "id", a->id);
	jw_kstr(w, "sessionID", a->session);
	jw_kstr(w, "permission", a->permission);
	write_json(w, "patterns", a->patterns);
	write_json(w, "always", a->always);
	write_json(w, "metadata", a->metadata);
	jw_key(w, "tool");
	jw_obj(w);
	jw_kstr(w, "messageID", a->message_id);
	jw_kstr(w, "callID", a->call_id);
	jw_obj_end(w);
	jw_kstr(w, "title", a->title);
	jw_kstr(w, "type", a->permission);
	write_json(w, "pattern", a->patterns);
	jw_kstr(w, "messageID", a->message_id);
	jw_kstr(w, "callID", a->call_id);
	jw_key(w, "time");
	jw_obj(w);
	jw_kint(w, "created", a->created);
	jw_obj_end(w);
	jw_obj_end(w);
}

static void publish_asked(struct engine *E, struct session *s, const struct ask *a)
{
	bus_begin(E->B, &E->jw, "permission.asked");
	write_ask(a, &E->jw);
	session_publish(E, s, s->cur, "permission.asked");
}

static void publish_replied(struct engine *E, struct session *s, const struct ask *a,
			    const char *reply, const char *message)
{
	bus_begin(E->B, &E->jw, "permission.replied");
	jw_obj(&E->jw);
	jw_kstr(&E->jw, "sessionID", a->session);
	jw_kstr(&E->jw, "requestID", a->id);
	jw_kstr(&E->jw, "reply", reply);
	jw_kstr(&E->jw, "permissionID", a->id);
	jw_kstr(&E->jw, "response", reply);
	if (message)
		jw_kstr(&E->jw, "message", message);
	jw_obj_end(&E->jw);
	session_publish(E, s, s->cur, "permission.replied");
}

void engine_permission_list_json(struct engine *E, struct jw *w)
{
	jw_arr(w);
	for (struct ask *a = E->perm.asks; a; a = a->next)
		write_ask(a, w);
	jw_arr_end(w);
}

void permission_status_note(struct engine *E, const struct session *s, struct jw *w)
{
	for (struct ask *a = E->perm.asks; a; a = a->next) {
		if (strcmp(a->session, s->id))
			continue;
		char msg[300];
		snprintf(msg, sizeof(msg), "waiting for permission: %.260s", a->title);
		jw_kstr(w, "message", msg);
		jw_kstr(w, "permission", a->id);
		return;
	}
}

/* ---- waiting on a human ---- */

/* s and its ancestors count one more (delta 1) or one less (-1) ask in their subtree;
 * HOOK_HUMAN_WAIT tells each one whose subtree starts or stops waiting. */
static void wait_change(struct engine *E, struct session *s, int delta)
{
	s->asks += delta;
	for (struct session *x = s; x; x = x->parent_id[0] ? session_get(E, x->parent_id) : NULL) {
		int before = x->waiting;
		x->waiting += delta;
		if ((before > 0) == (x->waiting > 0) || !hooks_any(E, HOOK_HUMAN_WAIT))
			continue;
		struct hook_wait hw = {x->waiting > 0};
		struct hook_ctx c;
		hooks_ctx(x, x->cur, &c);
		hooks_run(E, HOOK_HUMAN_WAIT, &c, &hw, NULL, 0);
	}
}

/* The one way an ask ends: out of the list, counted off, announced, answered, freed. */
static void ask_end(struct ask *a, int allowed, const char *reply, const char *message)
{
	struct engine *E = a->E;
	for (struct ask **pp = &E->perm.asks; *pp; pp = &(*pp)->next)
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	timer_cancel(&a->timeout);
	struct session *s = session_get(E, a->session);
	log_info("session %s: permission %s (%s) %s: %s", a->session, a->id, a->permission,
		 reply, message ? message : "");
	if (s) {
		wait_change(E, s, -1);
		publish_replied(E, s, a, reply, allowed ? NULL : message);
		if (s->status == ST_BUSY)
			session_announce_status(E, s);
	}
	a->done(a->arg, allowed, message);
	ask_free(a);
}

static void timed_out(struct timer *tm)
{
	struct ask *a = container_of(tm, struct ask, timeout);
	char msg[400];
	snprintf(msg, sizeof(msg), "permission %s (%.100s: %.150s) timed out: nobody answered "
		 "within permission.timeout_ms (%lld ms)", a->id, a->permission, a->title,
		 (long long)a->E->perm.timeout_ms);
	ask_end(a, 0, "reject", msg);
}

/* The oldest pending ask that pred takes, made no later than seq. */
static struct ask *first(struct engine *E, uint64_t seq, int (*pred)(struct ask *, const void *),
			 const void *arg)
{
	for (struct ask *a = E->perm.asks; a; a = a->next)
		if (a->seq <= seq && pred(a, arg))
			return a;
	return NULL;
}

static int of_call(struct ask *a, const void *arg)
{
	return a->call == *(const uint64_t *)arg;
}

void permission_call_ended(struct engine *E, uint64_t call, const char *why)
{
	struct ask *a;
	while ((a = first(E, E->perm.seq, of_call, &call)))
		ask_end(a, 0, "reject", why);
}

/* ---- asking ---- */

/* An array of strings (a copy), an empty one for NULL; NULL with e for anything else. */
static cJSON *string_array(const cJSON *v, const char *what, struct err *e)
{
	const cJSON *it;
	if (v && !cJSON_IsArray(v)) {
		err_set(e, ERR_INVALID, "permission ask: \"%s\" must be an array of strings", what);
		return NULL;
	}
	cJSON_ArrayForEach(it, v)
		if (!cJSON_IsString(it)) {
			err_set(e, ERR_INVALID, "permission ask: \"%s\" must hold strings only", what);
			return NULL;
		}
	return v ? cJSON_Duplicate(v, 1) : cJSON_CreateArray();
}

static char *default_title(const char *permission, const cJSON *patterns)
{
	const char *first = cJSON_GetStringValue(cJSON_GetArrayItem(patterns, 0));
	int more = cJSON_GetArraySize(patterns) - 1;
	char *t = NULL;
	if (!first)
		return strdup(permission);
	if (asprintf(&t, "%s %.200s%s", permission, first, more > 0 ? " (and more)" : "") < 0)
		return NULL;
	return t;
}

/* A new ask for call r, its arguments checked and copied; NULL with e. */
static struct ask *ask_new(struct engine *E, struct toolrun *r, const char *permission,
			   const cJSON *patterns, const cJSON *always, const char *title,
			   const cJSON *metadata, struct err *e)
{
	if (!permission || !*permission || strlen(permission) > PERMISSION_MAX) {
		err_set(e, ERR_INVALID, "permission ask: the permission must be 1 to %d bytes",
			PERMISSION_MAX);
		return NULL;
	}
	if (metadata && !cJSON_IsObject(metadata)) {
		err_set(e, ERR_INVALID, "permission ask: \"metadata\" must be an object");
		return NULL;
	}
	struct ask *a = calloc(1, sizeof(*a));
	if (!a || !(a->patterns = string_array(patterns, "patterns", e)) ||
	    !(a->always = string_array(always ? always : patterns, "always", e))) {
		if (a)
			ask_free(a);
		return NULL;
	}
	struct session *s = r->t->s;
	a->E = E;
	a->call = r->pub.id;
	id_new(a->id, "per");
	memcpy(a->session, s->id, ID_MAX);
	memcpy(a->root, s->root_id[0] ? s->root_id : s->id, ID_MAX);
	memcpy(a->message_id, r->p->m->id, ID_MAX);
	a->permission = strdup(permission);
	a->title = title && *title ? strdup(title) : default_title(permission, a->patterns);
	a->call_id = strdup(r->p->call_id);
	a->metadata = metadata ? cJSON_Duplicate(metadata, 1) : cJSON_CreateObject();
	a->created = now_ms();
	timer_init(&a->timeout, E->L, timed_out);
	if (!a->permission || !a->title || !a->call_id || !a->metadata) {
		ask_free(a);
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	return a;
}

/* The rules: PERM_ALLOW or PERM_DENY with why, or PERM_ASK. */
static enum perm_action by_rules(struct engine *E, const struct ask *a, const char *agent,
				 char *why, size_t n)
{
	const struct agent *ag = agents_find(&E->A, agent);
	const struct perm_rules *sets[] = {&E->perm.defaults, &E->perm.global,
					   ag ? &ag->perm : NULL};
	struct perm_hit hit;
	enum perm_action act = perm_eval(sets, 3, a->permission, a->patterns, &hit);
	char rule[400];
	perm_hit_describe(&hit, rule, sizeof(rule));
	if (act == PERM_DENY)
		snprintf(why, n, "The user has specified a rule which prevents you from using this "
			 "specific tool call: permission %.100s (%.200s) is denied by the rule %.400s",
			 a->permission, a->title, rule);
	else if (act == PERM_ALLOW)
		snprintf(why, n, "allowed by the rule %.400s", rule);
	return act;
}

/* HOOK_PERMISSION_ASK: 1 allowed, 0 denied (why filled), -1 left to a human. */
static int by_hook(struct engine *E, const struct ask *a, struct toolrun *r, char *why,
		   size_t n)
{
	if (!hooks_any(E, HOOK_PERMISSION_ASK))
		return -1;
	struct hook_permission hp = {.permission = a->permission, .patterns = a->patterns,
				     .metadata = a->metadata};
	struct hook_ctx c;
	hooks_ctx(r->t->s, r->t, &c);
	hooks_run(E, HOOK_PERMISSION_ASK, &c, &hp, NULL, 0);
	if (hp.decision == HOOK_PERMISSION_UNDECIDED)
		return -1;
	int allowed = hp.decision == HOOK_PERMISSION_ALLOWED;
	snprintf(why, n, "%s", hp.reason[0] ? hp.reason : allowed ? "allowed by a hook"
							       : "denied by a hook");
	return allowed;
}

/* Decides a without a human if something can: 1 allowed, 0 denied (why), -1 no. */
static int decide(struct engine *E, const struct ask *a, struct toolrun *r, char *why,
		  size_t n)
{
	enum perm_action act = by_rules(E, a, r->t->agent, why, n);
	if (act != PERM_ASK)
		return act == PERM_ALLOW;
	int hooked = by_hook(E, a, r, why, n);
	if (hooked >= 0)
		return hooked;
	if (!always_allows(E, a->root, a->permission, a->patterns))
		return -1;
	snprintf(why, n, "allowed by an earlier \"always\" reply in this session tree");
	return 1;
}

static void ask_human(struct engine *E, struct ask *a, struct toolrun *r)
{
	struct session *s = r->t->s;
	struct ask **tail = &E->perm.asks;
	while (*tail)
		tail = &(*tail)->next;
	*tail = a;
	a->seq = ++E->perm.seq;
	log_info("session %s: permission %s asked: %s", s->id, a->id, a->title);
	wait_change(E, s, 1);
	publish_asked(E, s, a);
	session_announce_status(E, s);
	if (E->perm.timeout_ms > 0)
		timer_arm(&a->timeout, E->perm.timeout_ms);
}

int engine_permission_ask(struct engine *E, uint64_t call_id, const char *permission,
			  const cJSON *patterns, const cJSON *always, const char *title,
			  const cJSON *metadata, permission_done_fn done, void *arg,
			  struct err *e)
{
	struct toolrun *r = toolrun_find(E, call_id);
	if (!r) {
		err_set(e, ERR_NOTFOUND, "tool call %llu is not running (it ended, was cancelled, "
			"or never was)", (unsigned long long)call_id);
		return -1;
	}
	if (!done) {
		err_set(e, ERR_INVALID, "permission ask: no done callback");
		return -1;
	}
	struct ask *a = ask_new(E, r, permission, patterns, always, title, metadata, e);
	if (!a)
		return -1;
	a->done = done;
	a->arg = arg;
	char why[1024];
	int allowed = decide(E, a, r, why, sizeof(why));
	if (allowed < 0) {
		ask_human(E, a, r);
		return 0;
	}
	log_info("session %s: permission %s for %s: %s", r->t->s->id, a->permission, a->title, why);
	ask_free(a);
	done(arg, allowed, why);
	return 0;
}

/* ---- replies ---- */

static int in_tree(struct ask *a, const void *root)
{
	return !strcmp(a->root, root);
}

static int of_session(struct ask *a, const void *session)
{
	return !strcmp(a->session, session);
}

/* The tree's pending asks that its "always" replies now cover end allowed. */
static void answer_covered(struct engine *E, const char *root, uint64_t seq)
{
	for (struct ask *a = E->perm.asks, *next; a; a = next) {
		next = a->next;
		if (a->seq > seq || !in_tree(a, root) ||
		    !always_allows(E, root, a->permission, a->patterns))
			continue;
		ask_end(a, 1, "always", "allowed by an \"always\" reply in this session tree");
		next = E->perm.asks; /* done may have changed the list: start over */
	}
}

static struct ask *find(struct engine *E, const char *id)
{
	for (struct ask *a = E->perm.asks; a && id; a = a->next)
		if (!strcmp(a->id, id))
			return a;
	return NULL;
}

/* session_id is the ask's session or one of its ancestors. */
static int reaches(struct engine *E, const struct ask *a, const char *session_id)
{
	struct session *s = session_get(E, a->session);
	return s && session_path_has(s->path, session_id);
}

static int reply_always(struct engine *E, struct ask *a, const char *message, struct err *e)
{
	char root[ID_MAX];
	memcpy(root, a->root, ID_MAX);
	if (remember(E, a)) {
		err_set(e, ERR_INTERNAL, "out of memory remembering the reply");
		return -1;
	}
	uint64_t seq = E->perm.seq;
	ask_end(a, 1, "always", message ? message : "allowed always by a reply");
	answer_covered(E, root, seq);
	return 0;
}

static void reply_reject(struct engine *E, struct ask *a, const char *message)
{
	char session[ID_MAX], *why = NULL;
	memcpy(session, a->session, ID_MAX);
	if (message && *message &&
	    asprintf(&why, "The user rejected permission to use this specific tool call with "
		     "the following feedback: %s", message) < 0)
		why = NULL;
	uint64_t seq = E->perm.seq;
	ask_end(a, 0, "reject", why ? why : REJECTED);
	free(why);
	/* the session's other asks go too (OpenCode's rule: a "no" stops its turn's asks) */
	while ((a = first(E, seq, of_session, session)))
		ask_end(a, 0, "reject", REJECTED);
}

int engine_permission_reply(struct engine *E, const char *request_id, const char *reply,
			    const char *message, const char *session_id, struct err *e)
{
	struct ask *a = find(E, request_id);
	if (!a) {
		err_set(e, ERR_NOTFOUND, "permission request %s is not pending (answered, timed "
			"out, aborted, or never asked; GET /permission lists the pending ones)",
			request_id ? request_id : "(none)");
		return -1;
	}
	if (session_id && !reaches(E, a, session_id)) {
		err_set(e, ERR_NOTFOUND, "permission request %s is not in session %s or below it",
			a->id, session_id);
		return -1;
	}
	if (reply && !strcmp(reply, "once")) {
		ask_end(a, 1, "once", message && *message ? message : "allowed once by a reply");
		return 0;
	}
	if (reply && !strcmp(reply, "always"))
		return reply_always(E, a, message && *message ? message : NULL, e);
	if (reply && !strcmp(reply, "reject")) {
		reply_reject(E, a, message);
		return 0;
	}
	err_set(e, ERR_INVALID, "the reply must be \"once\", \"always\" or \"reject\" (got \"%.40s\")",
		reply ? reply : "");
	return -1;
}

/* ---- the rules as OpenCode's v2 API shows them ---- */

static void rules_v2_json(const struct perm_rules *R, struct jw *w)
{
	for (int i = 0; i < R->n; i++) {
		jw_obj(w);
		jw_kstr(w, "action", R->v[i].permission);
		jw_kstr(w, "resource", R->v[i].pattern);
		jw_kstr(w, "effect", perm_action_name(R->v[i].action));
		jw_obj_end(w);
	}
}

void engine_permission_rules_json(struct engine *E, const char *agent, struct jw *w)
{
	const struct agent *a = agent ? agents_find(&E->A, agent) : NULL;
	jw_arr(w);
	rules_v2_json(&E->perm.defaults, w);
	rules_v2_json(&E->perm.global, w);
	if (a)
		rules_v2_json(&a->perm, w);
	jw_arr_end(w);
}
