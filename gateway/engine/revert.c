/* revert: the operations that rewrite a session's history after the fact, with
 * OpenCode's semantics — fork, revert, unrevert, deleting a message — and the workspace
 * diff of its turns. A rewound session keeps its hidden messages in the store, marked
 * by Session.revert, until its next prompt deletes them (revert_commit); plugins undo
 * and redo what their tools did outside the store at HOOK_SESSION_REVERT and say what
 * the turns changed at HOOK_SESSION_DIFF. Loop thread only. */
#include "engine_int.h"
#include "jsonin.h"
#include "log.h"
#include "vec.h"

#include <stdlib.h>
#include <string.h>

/* ---- the conversation as stored ---- */

struct hpart {
	char id[ID_MAX];
	char type[24];
	char *data;
};

struct hmsg {
	char id[ID_MAX], turn[ID_MAX];
	/* turnless: a noReply prompt's message, whose turn is only its place in the order
	 * (no turn row, no reply) */
	int user, turnless, oom;
	char *data;
	struct hpart *parts;
	int nparts, cap;
};

/* A session's messages in conversation order: by turn, then by id within the turn. */
struct conv {
	struct hmsg *v;
	int n, cap, oom;
};

static int conv_msg(void *arg, const struct store_message *r)
{
	struct conv *c = arg;
	void *grown = vec_reserve(c->v, &c->cap, c->n, sizeof(*c->v));
	if (!grown) {
		c->oom = 1;
		return 1;
	}
	c->v = grown;
	struct hmsg *m = &c->v[c->n];
	memset(m, 0, sizeof(*m));
	snprintf(m->id, sizeof(m->id), "%s", r->id);
	snprintf(m->turn, sizeof(m->turn), "%s", r->turn_id ? r->turn_id : "");
	m->user = !strcmp(r->role, "user");
	if (m->user) {
		cJSON *d = cJSON_Parse(r->data);
		m->turnless = d && !cJSON_HasObjectItem(d, "turnID");
		cJSON_Delete(d);
	}
	if (!(m->data = strdup(r->data))) {
		c->oom = 1;
		return 1;
	}
	c->n++;
	return 0;
}

static int conv_part(void *arg, const struct store_part *r)
{
	struct hmsg *m = arg;
	void *grown = vec_reserve(m->parts, &m->cap, m->nparts, sizeof(*m->parts));
	if (!grown) {
		m->oom = 1;
		return 1;
	}
	m->parts = grown;
	struct hpart *p = &m->parts[m->nparts];
	snprintf(p->id, sizeof(p->id), "%s", r->id);
	snprintf(p->type, sizeof(p->type), "%s", r->type);
	if (!(p->data = strdup(r->data))) {
		m->oom = 1;
		return 1;
	}
	m->nparts++;
	return 0;
}

static void conv_free(struct conv *c)
{
	for (int i = 0; i < c->n; i++) {
		for (int k = 0; k < c->v[i].nparts; k++)
			free(c->v[i].parts[k].data);
		free(c->v[i].parts);
		free(c->v[i].data);
	}
	free(c->v);
	memset(c, 0, sizeof(*c));
}

/* Reads the session's messages (with their parts when parts is set). -1 with e. */
static int conv_load(struct engine *E, const char *sid, int parts, struct conv *c,
		     struct err *e)
{
	memset(c, 0, sizeof(*c));
	msg_flush_session(E, sid);
	int bad = store_message_list(E->S, sid, conv_msg, c) < 0 || c->oom;
	for (int i = 0; parts && !bad && i < c->n; i++)
		bad = store_part_list(E->S, c->v[i].id, conv_part, &c->v[i]) < 0 || c->v[i].oom;
	if (!bad)
		return 0;
	conv_free(c);
	err_set(e, ERR_INTERNAL, "cannot read the messages of session %s (store error or out of "
		"memory)", sid);
	return -1;
}

static int conv_find(const struct conv *c, const char *message_id)
{
	for (int i = 0; message_id && i < c->n; i++)
		if (!strcmp(c->v[i].id, message_id))
			return i;
	return -1;
}

/* Is message m hidden by rp as a whole (k < 0), or its part k? */
static int hidden(const struct revert_point *rp, const struct hmsg *m, int k)
{
	if (!rp)
		return 0;
	int c = strcmp(m->turn, rp->turn_id);
	if (!c)
		c = strcmp(m->id, rp->message_id);
	if (c)
		return c > 0;
	if (!rp->part_id[0])
		return 1;
	return k >= 0 && strcmp(m->parts[k].id, rp->part_id) >= 0; /* part ids sort by age */
}

/* ---- turns still under way ---- */

static int turn_live(const struct session *s, const char *turn)
{
	if (s->cur && !strcmp(s->cur->id, turn))
		return 1;
	for (const struct turnq_item *it = s->q.head; it; it = it->next)
		if (!strcmp(container_of(it, const struct turn, qi)->id, turn))
			return 1;
	return 0;
}

/* 0 when nothing runs or waits in the session; else ERR_BUSY naming the turn. */
static int idle_for(const struct session *s, const char *what, struct err *e)
{
	const struct turn *t = s->cur ? s->cur
			       : s->q.head ? container_of(s->q.head, const struct turn, qi) : NULL;
	if (!t && !turnq_busy(&s->q))
		return 0;
	err_set(e, ERR_BUSY, "session %s is busy: turn %s is %s; %s it once the session is idle "
		"(POST /session/%s/abort ends what runs)", s->id, t ? t->id : "?",
		s->cur ? "running" : "queued", what, s->id);
	return -1;
}

static struct session *find_session(struct engine *E, const char *id, struct err *e)
{
	struct session *s = session_get(E, id);
	if (!s)
		session_missing(E, id, e);
	return s;
}

/* s's messages changed: what the model is sent and what pruning counted are rebuilt. */
static void forget(struct session *s)
{
	session_forget_history(s);
	compact_forget(s);
}

/* Writes the session row (session.updated) durably: 0; -1 forgotten; STORE_LATE kept. */
static int save_session(struct engine *E, struct session *s, const char *what, struct err *e)
{
	uint64_t mark = store_mark(E->S);
	s->updated = now_ms();
	session_save(E, s, "session.updated");
	return engine_commit(E, mark, what, e);
}

/* ---- Session.revert ---- */

void revert_free(struct revert_point *rp)
{
	if (!rp)
		return;
	free(rp->snapshot);
	free(rp->diff);
	free(rp);
}

void revert_write_json(const struct session *s, struct jw *w)
{
	const struct revert_point *rp = s->revert;
	if (!rp)
		return;
	jw_key(w, "revert");
	jw_obj(w);
	jw_kstr(w, "messageID", rp->message_id);
	if (rp->part_id[0])
		jw_kstr(w, "partID", rp->part_id);
	if (rp->snapshot)
		jw_kstr(w, "snapshot", rp->snapshot);
	if (rp->diff)
		jw_kstr(w, "diff", rp->diff);
	jw_kstr(w, "turnID", rp->turn_id);
	jw_obj_end(w);
}

void revert_load(struct session *s, const cJSON *d)
{
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(d, "revert");
	const char *mid = jsonin_get(r, "messageID"), *turn = jsonin_get(r, "turnID");
	const char *part = jsonin_get(r, "partID"), *snap = jsonin_get(r, "snapshot");
	const char *diff = jsonin_get(r, "diff");
	struct revert_point *rp = mid && turn ? calloc(1, sizeof(*rp)) : NULL;
	if (!rp)
		return;
	snprintf(rp->message_id, sizeof(rp->message_id), "%s", mid);
	snprintf(rp->turn_id, sizeof(rp->turn_id), "%s", turn);
	snprintf(rp->part_id, sizeof(rp->part_id), "%s", part ? part : "");
	rp->snapshot = snap ? strdup(snap) : NULL;
	rp->diff = diff ? strdup(diff) : NULL;
	s->revert = rp;
}

/* ---- HOOK_SESSION_REVERT ---- */

struct hook_revert_run {
	struct hook_revert pub;
	char *snapshot, *diff; /* owned */
};

static int keep_copy(char **slot, const char **pub, const char *s)
{
	if (!s)
		return 0;
	char *c = strdup(s);
	if (!c)
		return -1;
	free(*slot);
	*slot = c;
	*pub = c;
	return 0;
}

int hook_revert_set(struct hook_revert *hr, const char *snapshot, const char *diff)
{
	struct hook_revert_run *r = container_of(hr, struct hook_revert_run, pub);
	if (hr->action != HOOK_REVERT_REWIND)
		return -1;
	return keep_copy(&r->snapshot, &hr->snapshot_out, snapshot) ||
	       keep_copy(&r->diff, &hr->diff_out, diff) ? -1 : 0;
}

static int revert_hooks(struct engine *E, struct session *s, struct hook_revert_run *r,
			struct err *e)
{
	static const char *const what[] = {"revert", "unrevert", "commit"};
	if (!hooks_any(E, HOOK_SESSION_REVERT))
		return 0;
	struct hook_ctx c;
	char why[300];
	hooks_ctx(s, NULL, &c);
	if (hooks_run(E, HOOK_SESSION_REVERT, &c, &r->pub, why, sizeof(why)) == 0)
		return 0;
	err_set(e, ERR_INTERNAL, "the %s of session %s was refused: %s (nothing changed)",
		what[r->pub.action], s->id, why);
	return -1;
}

/* ---- revert ---- */

static int worth_keeping(const struct hpart *p)
{
	return !strcmp(p->type, "text") || !strcmp(p->type, "tool");
}

/* OpenCode's rule for where a revert starts: at a part with text or a tool call before
 * it in its message, that part; else the whole message — and for a message as a whole,
 * from the prompt of its turn (the last user message up to it) on. */
static int find_point(const struct conv *c, const char *sid, const char *message_id,
		      const char *part_id, struct revert_point *rp, struct err *e)
{
	int last_user = -1;
	for (int i = 0; i < c->n; i++) {
		const struct hmsg *m = &c->v[i];
		if (m->user)
			last_user = i;
		if (strcmp(m->id, message_id))
			continue;
		int k = 0, keep = 0;
		while (part_id && k < m->nparts && strcmp(m->parts[k].id, part_id))
			keep |= worth_keeping(&m->parts[k++]);
		if (part_id && k == m->nparts) {
			err_set(e, ERR_NOTFOUND, "part %s not found in message %s", part_id, message_id);
			return -1;
		}
		const struct hmsg *at = keep || last_user < 0 ? m : &c->v[last_user];
		snprintf(rp->message_id, sizeof(rp->message_id), "%s", at->id);
		snprintf(rp->turn_id, sizeof(rp->turn_id), "%s", at->turn);
		snprintf(rp->part_id, sizeof(rp->part_id), "%s", keep ? part_id : "");
		return 0;
	}
	err_set(e, ERR_NOTFOUND, "message %s not found in session %s", message_id, sid);
	return -1;
}

/* The tool calls rp hides, in conversation order: [{turnID, callID, tool, messageID,
 * partID}]. */
static cJSON *hidden_calls(const struct conv *c, const struct revert_point *rp)
{
	cJSON *arr = cJSON_CreateArray();
	for (int i = 0; arr && i < c->n; i++) {
		const struct hmsg *m = &c->v[i];
		for (int k = 0; k < m->nparts; k++) {
			if (strcmp(m->parts[k].type, "tool") || !hidden(rp, m, k))
				continue;
			cJSON *d = cJSON_Parse(m->parts[k].data), *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "turnID", m->turn);
			cJSON_AddStringToObject(o, "callID", jsonin_get(d, "callID") ? jsonin_get(d, "callID") : "");
			cJSON_AddStringToObject(o, "tool", jsonin_get(d, "tool") ? jsonin_get(d, "tool") : "");
			cJSON_AddStringToObject(o, "messageID", m->id);
			cJSON_AddStringToObject(o, "partID", m->parts[k].id);
			cJSON_AddItemToArray(arr, o);
			cJSON_Delete(d);
		}
	}
	return arr;
}

int engine_session_revert(struct engine *E, const char *id, const char *message_id,
			  const char *part_id, struct err *e)
{
	struct session *s = find_session(E, id, e);
	struct conv c;
	if (!s || idle_for(s, "revert", e) || engine_store_ok(E, "the revert", e) ||
	    conv_load(E, s->id, 1, &c, e))
		return -1;
	struct revert_point *rp = calloc(1, sizeof(*rp));
	int rc = rp ? find_point(&c, s->id, message_id, part_id && *part_id ? part_id : NULL,
				 rp, e) : -1;
	struct hook_revert_run r = {.pub = {.action = HOOK_REVERT_REWIND}};
	if (!rp)
		err_set(e, ERR_INTERNAL, "out of memory");
	if (!rc) {
		r.pub = (struct hook_revert){
			.action = HOOK_REVERT_REWIND, .message_id = rp->message_id,
			.part_id = rp->part_id[0] ? rp->part_id : NULL, .calls = hidden_calls(&c, rp),
			.snapshot = s->revert ? s->revert->snapshot : NULL};
		rc = revert_hooks(E, s, &r, e);
		cJSON_Delete((cJSON *)r.pub.calls);
	}
	conv_free(&c);
	if (rc) {
		free(r.snapshot);
		free(r.diff);
		free(rp);
		return -1;
	}
	rp->snapshot = r.snapshot ? r.snapshot
		       : s->revert && s->revert->snapshot ? strdup(s->revert->snapshot) : NULL;
	rp->diff = r.diff;
	struct revert_point *old = s->revert;
	s->revert = rp;
	rc = save_session(E, s, "the revert", e);
	if (rc == -1) {
		s->revert = old;
		revert_free(rp);
		return -1;
	}
	revert_free(old);
	log_info("session %s: reverted to message %s%s%s", s->id, rp->message_id,
		 rp->part_id[0] ? " part " : "", rp->part_id);
	return rc ? -1 : 0;
}

int engine_session_unrevert(struct engine *E, const char *id, struct err *e)
{
	struct session *s = find_session(E, id, e);
	if (!s || idle_for(s, "unrevert", e) || engine_store_ok(E, "the unrevert", e))
		return -1;
	struct revert_point *old = s->revert;
	if (!old)
		return 0;
	struct hook_revert_run r = {.pub = {.action = HOOK_REVERT_RESTORE,
					    .message_id = old->message_id,
					    .part_id = old->part_id[0] ? old->part_id : NULL,
					    .snapshot = old->snapshot}};
	if (revert_hooks(E, s, &r, e))
		return -1;
	s->revert = NULL;
	int rc = save_session(E, s, "the unrevert", e);
	if (rc == -1) {
		s->revert = old;
		return -1;
	}
	revert_free(old);
	log_info("session %s: unreverted", s->id);
	return rc ? -1 : 0;
}

/* ---- the next prompt deletes what was hidden ---- */

/* Deletes what rp hides; the turns left with no message go to turns (their rows too). */
static void delete_hidden(struct engine *E, struct session *s, const struct conv *c,
			  const struct revert_point *rp, cJSON *turns)
{
	for (int i = 0, first = 0; i < c->n; i++) {
		const struct hmsg *m = &c->v[i];
		if (i == 0 || strcmp(m->turn, c->v[i - 1].turn))
			first = i; /* the turn's first message */
		if (!hidden(rp, m, -1)) {
			for (int k = 0; k < m->nparts; k++) {
				if (!hidden(rp, m, k))
					continue;
				store_part_delete(E->S, m->parts[k].id);
				msg_publish_removed(E, s, NULL, m->id, m->parts[k].id);
			}
			continue;
		}
		store_message_delete(E->S, m->id);
		msg_publish_removed(E, s, NULL, m->id, NULL);
		int last = i + 1 == c->n || strcmp(m->turn, c->v[i + 1].turn);
		if (last && hidden(rp, &c->v[first], -1) && m->turn[0] && !m->turnless) {
			store_turn_delete(E->S, m->turn);
			cJSON_AddItemToArray(turns, cJSON_CreateString(m->turn));
		}
	}
}

struct revert_point *revert_commit(struct engine *E, struct session *s)
{
	struct revert_point *rp = s->revert;
	struct conv c;
	struct err e = {0};
	if (!rp)
		return NULL;
	if (conv_load(E, s->id, 1, &c, &e)) {
		log_error("session %s: %s; the reverted messages stay until the next prompt", s->id,
			  e.msg);
		return NULL;
	}
	cJSON *turns = cJSON_CreateArray();
	delete_hidden(E, s, &c, rp, turns);
	conv_free(&c);
	struct hook_revert_run r = {.pub = {.action = HOOK_REVERT_COMMIT,
					    .message_id = rp->message_id,
					    .part_id = rp->part_id[0] ? rp->part_id : NULL,
					    .turns = turns}};
	revert_hooks(E, s, &r, NULL);
	cJSON_Delete(turns);
	forget(s);
	s->revert = NULL;
	s->updated = now_ms();
	session_save(E, s, "session.updated");
	log_info("session %s: the messages reverted from %s are deleted", s->id, rp->message_id);
	return rp;
}

void revert_settle(struct session *s, struct revert_point *rp, int forgotten)
{
	if (!rp)
		return;
	if (forgotten && !s->revert) {
		s->revert = rp;
		forget(s);
		return;
	}
	revert_free(rp);
}

/* ---- deleting one message ---- */

struct found_msg {
	const char *session_id;
	char turn[ID_MAX];
	int found;
};

static int found_row(void *arg, const struct store_message *r)
{
	struct found_msg *f = arg;
	if (!strcmp(r->session_id, f->session_id)) {
		f->found = 1;
		snprintf(f->turn, sizeof(f->turn), "%s", r->turn_id ? r->turn_id : "");
	}
	return 1;
}

/* message_id's turn, when the session has that message: 0; else ERR_NOTFOUND. */
static int message_turn(struct engine *E, const struct session *s, const char *message_id,
			char *turn, struct err *e)
{
	struct found_msg f = {.session_id = s->id};
	msg_flush_session(E, s->id);
	if (message_id && *message_id)
		store_message_get(E->S, message_id, found_row, &f);
	if (!f.found) {
		err_set(e, ERR_NOTFOUND, "message %s not found in session %s",
			message_id ? message_id : "(none)", s->id);
		return -1;
	}
	snprintf(turn, ID_MAX, "%s", f.turn);
	return 0;
}

int engine_message_delete(struct engine *E, const char *session_id, const char *message_id,
			  struct err *e)
{
	struct session *s = find_session(E, session_id, e);
	char turn[ID_MAX];
	if (!s || message_turn(E, s, message_id, turn, e))
		return -1;
	if (turn_live(s, turn)) {
		int running = s->cur && !strcmp(s->cur->id, turn);
		err_set(e, ERR_BUSY, "message %s belongs to turn %s, which is %s: %s first", message_id,
			turn, running ? "running" : "queued",
			running ? "abort the session (POST /session/{id}/abort)"
				: "cancel the turn (DELETE /session/{id}/turn/{turnID})");
		return -1;
	}
	if (engine_store_ok(E, "the deletion", e))
		return -1;
	uint64_t mark = store_mark(E->S);
	store_message_delete(E->S, message_id);
	msg_publish_removed(E, s, NULL, message_id, NULL);
	forget(s);
	return engine_commit(E, mark, "the deletion", e) ? -1 : 0;
}

/* ---- the workspace diff ---- */

struct hook_diff_run {
	struct hook_diff pub;
	cJSON *files;
};

int hook_diff_add(struct hook_diff *hd, cJSON *files)
{
	struct hook_diff_run *r = container_of(hd, struct hook_diff_run, pub);
	const cJSON *f;
	int ok = cJSON_IsArray(files);
	cJSON *arr = ok ? files : NULL;
	cJSON_ArrayForEach(f, arr)
		ok &= cJSON_IsObject(f) && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(f, "file"));
	cJSON *item;
	while (ok && (item = cJSON_DetachItemFromArray(files, 0)))
		cJSON_AddItemToArray(r->files, item);
	cJSON_Delete(files);
	return ok ? 0 : -1;
}

/* The turns a diff is about: message_id's, or those with a message left visible. */
static cJSON *diff_turns(struct engine *E, const struct session *s, const char *message_id,
			 struct err *e)
{
	char turn[ID_MAX];
	struct conv c;
	cJSON *turns = cJSON_CreateArray();
	if (message_id && *message_id) {
		if (message_turn(E, s, message_id, turn, e)) {
			cJSON_Delete(turns);
			return NULL;
		}
		cJSON_AddItemToArray(turns, cJSON_CreateString(turn));
		return turns;
	}
	if (conv_load(E, s->id, 0, &c, e)) {
		cJSON_Delete(turns);
		return NULL;
	}
	for (int i = 0; i < c.n; i++)
		if (c.v[i].turn[0] && !c.v[i].turnless && !hidden(s->revert, &c.v[i], -1) &&
		    (i == 0 || strcmp(c.v[i].turn, c.v[i - 1].turn)))
			cJSON_AddItemToArray(turns, cJSON_CreateString(c.v[i].turn));
	conv_free(&c);
	return turns;
}

int engine_session_diff_json(struct engine *E, const char *id, const char *message_id,
			     struct jw *w, struct err *e)
{
	struct session *s = find_session(E, id, e);
	cJSON *turns = s ? diff_turns(E, s, message_id, e) : NULL;
	if (!turns)
		return -1;
	struct hook_diff_run r = {.files = cJSON_CreateArray()};
	r.pub = (struct hook_diff){.message_id = message_id && *message_id ? message_id : NULL,
				   .turns = turns, .files = r.files};
	if (hooks_any(E, HOOK_SESSION_DIFF) && cJSON_GetArraySize(turns)) {
		struct hook_ctx c;
		hooks_ctx(s, NULL, &c);
		hooks_run(E, HOOK_SESSION_DIFF, &c, &r.pub, NULL, 0);
	}
	char *json = r.files ? cJSON_PrintUnformatted(r.files) : NULL;
	jw_raw(w, json ? json : "[]");
	free(json);
	cJSON_Delete(r.files);
	cJSON_Delete(turns);
	return 0;
}

/* ---- fork ---- */

/* OpenCode's fork title: "<title> (fork #N)" becomes "<title> (fork #N+1)", any other
 * title gets " (fork #1)". */
static char *fork_title(const char *title)
{
	const char *t = title ? title : "", *p = strstr(t, " (fork #"), *q;
	char *out = NULL;
	while (p && strstr(p + 1, " (fork #"))
		p = strstr(p + 1, " (fork #");
	long n = 0;
	int numbered = p && p > t && (q = p + 8, *q >= '0' && *q <= '9');
	if (numbered) {
		char *end;
		n = strtol(q, &end, 10);
		numbered = !strcmp(end, ")") && n >= 0 && n < 1000000000;
	}
	if (numbered ? asprintf(&out, "%.*s (fork #%ld)", (int)(p - t), t, n + 1) < 0
		     : asprintf(&out, "%s (fork #1)", t) < 0)
		return NULL;
	return out;
}

/* Old message and turn ids to the fork's. */
struct idmap {
	char (*from)[ID_MAX], (*to)[ID_MAX];
	int n;
};

static const char *idmap_get(const struct idmap *m, const char *from)
{
	for (int i = m->n - 1; from && i >= 0; i--)
		if (!strcmp(m->from[i], from))
			return m->to[i];
	return NULL;
}

static void set_str(cJSON *o, const char *key, const char *v)
{
	if (!v) {
		cJSON_DeleteItemFromObjectCaseSensitive(o, key);
		return;
	}
	if (cJSON_HasObjectItem(o, key))
		cJSON_ReplaceItemInObjectCaseSensitive(o, key, cJSON_CreateString(v));
	else
		cJSON_AddStringToObject(o, key, v);
}

/* Copies message m (its parts that rp leaves visible) into ns as id `to` of turn
 * `turn`; parent: the copy of its user message. -1 out of memory. */
static int copy_message(struct engine *E, struct session *ns, const struct hmsg *m,
			const char *to, const char *turn, const char *parent,
			const struct revert_point *rp)
{
	cJSON *d = cJSON_Parse(m->data);
	if (!cJSON_IsObject(d)) {
		cJSON_Delete(d);
		return -1;
	}
	set_str(d, "id", to);
	set_str(d, "sessionID", ns->id);
	if (cJSON_HasObjectItem(d, "turnID"))
		set_str(d, "turnID", turn);
	if (!m->user)
		set_str(d, "parentID", parent);
	const cJSON *time = cJSON_GetObjectItemCaseSensitive(d, "time");
	const cJSON *created = cJSON_GetObjectItemCaseSensitive(time, "created");
	char *info = cJSON_PrintUnformatted(d);
	struct store_message r = {
		.id = to, .session_id = ns->id, .role = m->user ? "user" : "assistant",
		.parent_id = m->user ? NULL : parent, .turn_id = turn,
		.finish = jsonin_get(d, "finish"),
		.time_created = cJSON_IsNumber(created) ? (int64_t)created->valuedouble : now_ms(),
		.data = info,
	};
	int rc = info ? store_message_put(E->S, &r) : -1;
	if (!rc)
		msg_publish_json(E, ns, "message.updated", "info", info);
	free(info);
	cJSON_Delete(d);
	for (int k = 0; !rc && k < m->nparts; k++) {
		if (hidden(rp, m, k))
			continue;
		char pid[ID_MAX];
		id_new(pid, "prt");
		cJSON *pd = cJSON_Parse(m->parts[k].data);
		set_str(pd, "id", pid);
		set_str(pd, "sessionID", ns->id);
		set_str(pd, "messageID", to);
		char *data = cJSON_IsObject(pd) ? cJSON_PrintUnformatted(pd) : NULL;
		struct store_part pr = {.id = pid, .message_id = to, .session_id = ns->id,
					.type = m->parts[k].type, .data = data};
		rc = data ? store_part_put(E->S, &pr) : -1;
		if (!rc)
			msg_publish_json(E, ns, "message.part.updated", "part", data);
		free(data);
		cJSON_Delete(pd);
	}
	return rc;
}

struct turn_copy {
	struct engine *E;
	const char *session_id, *id;
	const struct idmap *msgs;
	int rc;
};

static int copy_turn_row(void *arg, const struct store_turn *r)
{
	struct turn_copy *x = arg;
	const char *user = idmap_get(x->msgs, r->user_message_id);
	struct store_turn t = *r;
	t.id = x->id;
	t.session_id = x->session_id;
	t.user_message_id = user ? user : r->user_message_id;
	x->rc = store_turn_put(x->E->S, &t);
	return 1;
}

/* Copies c.v[0..stop) into ns: new message, part and turn ids (the turns' rows copied
 * too, so the fork's ledger reads like any session's); what a revert hides and what
 * belongs to a turn still under way stays behind. */
static int copy_history(struct engine *E, const struct session *s, struct session *ns,
			const struct conv *c, int stop)
{
	struct idmap msgs = {calloc((size_t)stop + 1, ID_MAX), calloc((size_t)stop + 1, ID_MAX), 0};
	struct idmap turns = {calloc((size_t)stop + 1, ID_MAX), calloc((size_t)stop + 1, ID_MAX), 0};
	int rc = msgs.from && msgs.to && turns.from && turns.to ? 0 : -1;
	for (int i = 0; !rc && i < stop; i++) {
		const struct hmsg *m = &c->v[i];
		if (hidden(s->revert, m, -1))
			break;
		if (turn_live(s, m->turn))
			continue;
		snprintf(msgs.from[msgs.n], ID_MAX, "%s", m->id);
		id_new(msgs.to[msgs.n], "msg");
		msgs.n++;
		const char *turn = idmap_get(&turns, m->turn);
		if (!turn) {
			snprintf(turns.from[turns.n], ID_MAX, "%s", m->turn);
			id_new(turns.to[turns.n], "turn");
			turn = turns.to[turns.n++];
			struct turn_copy x = {E, ns->id, turn, &msgs, 0};
			store_turn_get(E->S, m->turn, copy_turn_row, &x);
			rc = x.rc;
		}
		cJSON *d = m->user ? NULL : cJSON_Parse(m->data);
		const char *parent = idmap_get(&msgs, jsonin_get(d, "parentID"));
		if (!rc)
			rc = copy_message(E, ns, m, msgs.to[msgs.n - 1], turn, parent, s->revert);
		cJSON_Delete(d);
	}
	free(msgs.from);
	free(msgs.to);
	free(turns.from);
	free(turns.to);
	return rc;
}

int engine_session_fork(struct engine *E, const char *id, const char *message_id,
			char *id_out, struct err *e)
{
	struct session *s = find_session(E, id, e);
	struct conv c;
	if (!s || conv_load(E, s->id, 1, &c, e))
		return -1;
	int stop = message_id && *message_id ? conv_find(&c, message_id) : c.n;
	if (stop < 0) {
		err_set(e, ERR_NOTFOUND, "message %s not found in session %s", message_id, s->id);
		conv_free(&c);
		return -1;
	}
	char *title = fork_title(s->title);
	struct session_params p = {.title = title, .agent = s->agent, .model = s->model,
				   .directory = s->directory};
	char nid[ID_MAX];
	int rc = title ? engine_session_create(E, &p, nid, e) : -1;
	free(title);
	struct session *ns = rc ? NULL : session_get(E, nid);
	if (!ns) {
		if (!rc)
			err_set(e, ERR_INTERNAL, "the fork %s vanished", nid);
		conv_free(&c);
		return -1;
	}
	uint64_t mark = store_mark(E->S);
	rc = copy_history(E, s, ns, &c, stop);
	conv_free(&c);
	if (rc)
		err_set(e, ERR_INTERNAL, "out of memory copying the messages of session %s", s->id);
	else
		rc = engine_commit(E, mark, "the fork's messages", e);
	if (rc == -1 || (rc && rc != STORE_LATE)) {
		engine_session_delete(E, nid, NULL);
		return -1;
	}
	snprintf(id_out, ID_MAX, "%s", nid);
	log_info("session %s: forked from %s%s%s", nid, s->id, message_id ? " before " : "",
		 message_id ? message_id : "");
	return rc ? -1 : 0;
}
