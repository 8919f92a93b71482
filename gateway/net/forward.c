/* forward: requests for session trees other cluster nodes run (forward.h).
 *
 * The wire: a request is {"rpc", "kind": "call"|"prompt"|"command", "wait", "source",
 * "params"}; its answer {"result": JSON|null}, {"error": {"code", "message"}} (err.h's
 * codes) or {"moved": NODE} when the tree's lease moved on meanwhile. */
#include "forward.h"
#include "api.h"
#include "jsonin.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

#define CALL_TIMEOUT_MS 30000
#define HELD_TIMEOUT_MS (7LL * 24 * 3600 * 1000) /* a held prompt: its node is watched */
#define RETRY_MS 250
#define WATCH_MS 1000

struct forward {
	struct engine *E;
	struct natslink *N;
	char subject[96];
	struct fwd_call list; /* sentinel: requests under way */
	struct timer watch;   /* held prompts' nodes */
	struct fwd_exec *execs; /* requests running here for another node (or after takeover) */
	struct bus_sub sub;     /* while answers settle: events may settle them */
	struct timer settle;
	int settling;
	struct forward_counts n;
};

/* A request run on this node: from another node (rq), or one of ours after its tree
 * was taken over here (f). */
struct fwd_exec {
	struct fwd_exec *next;
	struct forward *F;
	struct api_wait aw;
	struct natslink_req *rq;
	struct fwd_call *f;
	/* a held prompt's answer waits until this node's events up to the turn's end came
	 * back from the bus (bus_settled), so its seq covers them: SETTLE_MS at most */
	char *result;
	uint64_t mark;
	int64_t settle_by_us;
};

#define SETTLE_MS 1000

static const char *const kinds[] = {"call", "prompt", "command"};

/* ---- the answer ---- */

/* {"result": JSON, "seq": the newest event delivered here} */
static char *answer_text(const char *json, int64_t seq, size_t *len)
{
	char *out = NULL;
	int n = asprintf(&out, "{\"result\":%s,\"seq\":%lld}", json && *json ? json : "null",
			 (long long)seq);
	*len = n > 0 ? (size_t)n : 0;
	return n > 0 ? out : NULL;
}

static char *answer_result(struct forward *F, const struct jw *w, size_t *len)
{
	return answer_text(w && w->len ? w->buf : NULL, bus_last_seq(engine_bus(F->E)), len);
}

static char *answer_error(const struct err *e, size_t *len)
{
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "error");
	jw_obj(&w);
	jw_kint(&w, "code", e->code);
	jw_kstr(&w, "message", e->msg);
	jw_obj_end(&w);
	jw_obj_end(&w);
	char *out = jw_take(&w, len);
	jw_free(&w);
	return out;
}

/* An answer's {"code", "message"} (answer_error's) into out: 0, or -1 when it is not one. */
static int error_of(const cJSON *err, struct err *out)
{
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
	const char *msg = jsonin_get(err, "message");
	if (!msg || !cJSON_IsNumber(code) || code->valueint <= ERR_NONE ||
	    code->valueint > ERR_UNAVAILABLE)
		return -1;
	err_set(out, (enum err_code)code->valueint, "%s", msg);
	return 0;
}

static void exec_unlink(struct fwd_exec *x)
{
	for (struct fwd_exec **pp = &x->F->execs; *pp; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			return;
		}
}

static void deliver(struct fwd_call *f, const char *data, size_t len);

/* Sends the answer where the request came from, and ends x. */
static void exec_answer(struct fwd_exec *x, const struct jw *result, const struct err *e)
{
	size_t len = 0;
	char *out = e && e->code ? answer_error(e, &len)
		    : x->result ? answer_text(x->result, bus_last_seq(engine_bus(x->F->E)), &len)
		    : answer_result(x->F, result, &len);
	exec_unlink(x);
	free(x->result);
	if (x->rq)
		natslink_respond(x->rq, out ? out : "{}", out ? len : 2);
	else if (x->f) {
		x->f->local = NULL;
		deliver(x->f, out ? out : "{}", out ? len : 2);
	}
	free(out);
	free(x);
}

/* The held answers whose events came back (or that waited SETTLE_MS) go now. */
static void settle_due(struct timer *t)
{
	struct forward *F = container_of(t, struct forward, settle);
	struct bus *B = engine_bus(F->E);
	int64_t now = mono_us();
	F->settling = 0;
	for (struct fwd_exec *x = F->execs, *next; x; x = next) {
		next = x->next;
		if (!x->result)
			continue;
		if (bus_settled(B, x->mark) || now >= x->settle_by_us)
			exec_answer(x, NULL, NULL);
		else
			F->settling++;
	}
	if (F->settling)
		timer_arm(t, SETTLE_MS / 4); /* the bound, if no event comes */
}

static void settle_event(void *arg, struct event *ev)
{
	struct forward *F = arg;
	(void)ev;
	if (F->settling)
		timer_arm(&F->settle, 0);
}

static void exec_turn_ended(struct api_wait *aw, struct jw *result, const struct err *e)
{
	struct fwd_exec *x = container_of(aw, struct fwd_exec, aw);
	struct bus *B = engine_bus(x->F->E);
	x->mark = bus_mark(B);
	if (e || bus_settled(B, x->mark) || !(x->result = strdup(result->len ? result->buf
									 : "null"))) {
		exec_answer(x, result, e);
		return;
	}
	x->settle_by_us = mono_us() + SETTLE_MS * 1000LL;
	x->F->settling++;
	timer_arm(&x->F->settle, SETTLE_MS / 4);
}

/* Runs the request as this node's transports would; the answer now or when the turn
 * ends. */
static void execute(struct fwd_exec *x, const cJSON *req)
{
	struct engine *E = x->F->E;
	const char *rpc = jsonin_get(req, "rpc"), *kind = jsonin_get(req, "kind");
	const char *source = jsonin_get(req, "source");
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(req, "params");
	int wait = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "wait")), unknown, rc;
	struct err er = {0}, *e = &er;
	struct jw w;
	jw_init(&w);
	x->aw.fn = exec_turn_ended;
	x->next = x->F->execs;
	x->F->execs = x;
	if (!rpc || !kind || !cJSON_IsObject(params)) {
		err_set(e, ERR_INVALID, "a forwarded request needs rpc, kind and params");
		rc = -1;
	} else if (!strcmp(kind, "call")) {
		rc = api_call(E, rpc, params, &w, &unknown, e);
	} else if (!strcmp(kind, "command")) {
		struct api_command ac;
		rc = api_command_prepare(E, params, &ac, e) ||
		     api_prompt(E, ac.params, source ? source : "http", &x->aw, NULL, e) ? -1 : 0;
		if (!rc)
			api_command_executed(E, &ac);
		api_command_free(&ac);
		wait = 1;
	} else {
		rc = api_submit(E, rpc, params, source ? source : "http", wait ? &x->aw : NULL, &w,
				e);
	}
	if (rc || !wait) /* an error, a call, a prompt not held, or noReply (rc 1) */
		exec_answer(x, rc < 0 ? NULL : &w, rc < 0 ? e : NULL);
	jw_free(&w);
}

static void list_add(struct forward *F, struct fwd_call *f)
{
	f->prev = F->list.prev;
	f->next = &F->list;
	F->list.prev->next = f;
	F->list.prev = f;
}

static void list_del(struct fwd_call *f)
{
	if (!f->next)
		return;
	f->prev->next = f->next;
	f->next->prev = f->prev;
	f->next = f->prev = NULL;
}

/* ---- asking every node (permission.list, permission.reply by id) ---- */

#define GATHER_MS 3000

enum gather_mode { G_CONCAT, G_FIRST_OK };

struct leg {
	struct natslink_call call;
	struct gather *g;
};

struct gather {
	struct fwd_call *f;
	enum gather_mode mode;
	int pending, nlegs;
	struct leg *legs;
	cJSON *all;         /* G_CONCAT: the arrays joined */
	char *ok;           /* G_FIRST_OK: the first answer that is not an error */
	struct err first_err; /* this node's own error, else the first */
	struct timer t;
};

static enum gather_mode gather_mode(const char *rpc, const cJSON *params, int *gathered)
{
	*gathered = !strcmp(rpc, "permission.list") ||
		    (!strcmp(rpc, "permission.reply") && !jsonin_get(params, "sessionID"));
	return !strcmp(rpc, "permission.list") ? G_CONCAT : G_FIRST_OK;
}

static void gather_free(struct gather *g)
{
	for (int i = 0; i < g->nlegs; i++)
		natslink_cancel(&g->legs[i].call);
	timer_cancel(&g->t);
	cJSON_Delete(g->all);
	free(g->ok);
	free(g->legs);
	free(g);
}

static void gather_end(struct gather *g)
{
	struct fwd_call *f = g->f;
	char *text = g->mode == G_CONCAT ? cJSON_PrintUnformatted(g->all) : g->ok;
	const struct err *e = text || g->mode == G_CONCAT ? NULL : &g->first_err;
	f->gather = NULL;
	list_del(f);
	f->done(f, text, text ? strlen(text) : 0, e);
	if (g->mode == G_CONCAT)
		free(text);
	gather_free(g);
}

/* One node's answer ({"result"} or {"error"} as a forward's), or NULL: none. */
static void gather_add(struct gather *g, const char *data, size_t len)
{
	cJSON *a = data ? cJSON_ParseWithLength(data, len) : NULL;
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(a, "result");
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(a, "error");
	if (g->mode == G_CONCAT && cJSON_IsArray(res)) {
		const cJSON *it;
		cJSON_ArrayForEach(it, res)
			cJSON_AddItemToArray(g->all, cJSON_Duplicate(it, 1));
	} else if (g->mode == G_FIRST_OK && res && !g->ok) {
		g->ok = cJSON_PrintUnformatted(res);
	} else if (err && !g->first_err.code) {
		error_of(err, &g->first_err);
	}
	cJSON_Delete(a);
	/* ended from the timer, never from inside forward_try (this node's own answer) */
	if (--g->pending == 0 || (g->mode == G_FIRST_OK && g->ok))
		timer_arm(&g->t, 0);
}

static void leg_reply(struct natslink_call *c, const char *data, size_t len,
		      const struct err *e)
{
	struct leg *l = container_of(c, struct leg, call);
	gather_add(l->g, e ? NULL : data, e ? 0 : len);
}

static void gather_due(struct timer *t)
{
	struct gather *g = container_of(t, struct gather, t);
	gather_end(g); /* all answered, or the first that could; else those in time */
}

struct peer_names {
	char (*v)[64];
	int n, cap;
};

static void peer_name(void *arg, const char *node)
{
	struct peer_names *p = arg;
	if (p->n < p->cap)
		snprintf(p->v[p->n++], 64, "%s", node);
}

static void execute_local(struct forward *F, const char *rpc, const cJSON *params,
			  struct gather *g)
{
	struct err er = {0}, *e = &er;
	struct jw w;
	int unknown;
	size_t len = 0;
	jw_init(&w);
	int rc = api_call(F->E, rpc, params, &w, &unknown, e);
	char *out = rc ? answer_error(e, &len) : answer_result(F, &w, &len);
	jw_free(&w);
	gather_add(g, out, len);
	free(out);
}

/* Asks every live node, this one first: 1 (f->done answers), or -1 and e. */
static int gather_start(struct forward *F, struct fwd_call *f, enum gather_mode mode,
			const char *rpc, const cJSON *params, struct err *e)
{
	struct peer_names peers = {.cap = 64};
	struct gather *g = calloc(1, sizeof(*g));
	peers.v = calloc(64, 64);
	cJSON *req = cJSON_CreateObject();
	if (!g || !peers.v || !req || engine_cluster_peers(F->E, peer_name, &peers, e) < 0 ||
	    !(g->legs = calloc((size_t)peers.n + 1, sizeof(*g->legs))) ||
	    (mode == G_CONCAT && !(g->all = cJSON_CreateArray()))) {
		if (!e->code)
			err_set(e, ERR_INTERNAL, "out of memory");
		free(peers.v);
		cJSON_Delete(req);
		if (g)
			gather_free(g);
		return -1;
	}
	g->f = f;
	g->mode = mode;
	g->pending = peers.n + 1;
	f->F = F;
	f->gather = g;
	list_add(F, f);
	timer_init(&g->t, engine_loop(F->E), gather_due);
	timer_arm(&g->t, GATHER_MS);
	cJSON_AddStringToObject(req, "rpc", rpc);
	cJSON_AddStringToObject(req, "kind", "call");
	cJSON_AddBoolToObject(req, "local", 1);
	cJSON_AddItemToObject(req, "params", cJSON_Duplicate(params, 1));
	char *body = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	for (int i = 0; i < peers.n; i++) {
		char subject[96];
		struct leg *l = &g->legs[g->nlegs++];
		l->g = g;
		snprintf(subject, sizeof(subject), "ag.rpc.%s", peers.v[i]);
		if (!body || natslink_request(F->N, &l->call, subject, body, strlen(body),
					      GATHER_MS, leg_reply))
			g->pending--; /* not asked: left out */
	}
	free(body);
	free(peers.v);
	execute_local(F, rpc, params, g);
	return 1;
}

/* ---- serving the other nodes ---- */

static const char *tree_key(const cJSON *params, const char *rpc)
{
	const char *sid = jsonin_get(params, "sessionID");
	if (!sid && rpc && !strcmp(rpc, "session.create"))
		sid = jsonin_get(params, "parentID");
	if (!sid && rpc && !strcmp(rpc, "task.get")) /* a task's id is its child session's */
		sid = jsonin_get(params, "taskID");
	return sid && *sid ? sid : NULL;
}

static void on_request(void *arg, struct natslink_req *rq, const char *data, size_t len)
{
	struct forward *F = arg;
	struct err er = {0}, *e = &er;
	char node[64], *out;
	size_t olen = 0;
	cJSON *req = cJSON_ParseWithLength(data, len);
	/* asked of every node ("local"): what this node holds, whoever owns the tree */
	int local = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "local"));
	const char *sid = local ? NULL : tree_key(cJSON_GetObjectItemCaseSensitive(req, "params"),
						  jsonin_get(req, "rpc"));
	int owner = sid ? engine_owner(F->E, sid, node, e) : 0;
	if (!req)
		err_set(e, ERR_INVALID, "a forwarded request that is not JSON");
	if (!req || owner < 0) {
		out = answer_error(e, &olen);
	} else if (owner == 1) {
		olen = (size_t)asprintf(&out, "{\"moved\":\"%s\"}", node);
	} else {
		struct fwd_exec *x = calloc(1, sizeof(*x));
		if (x) {
			x->F = F;
			x->rq = rq;
			F->n.served++;
			execute(x, req);
			cJSON_Delete(req);
			return;
		}
		err_set(e, ERR_INTERNAL, "out of memory");
		out = answer_error(e, &olen);
	}
	natslink_respond(rq, out ? out : "{}", out ? olen : 2);
	free(out);
	cJSON_Delete(req);
}

/* ---- forwarding ours ---- */

static void finish(struct fwd_call *f, const char *result, size_t len, const struct err *e)
{
	list_del(f);
	timer_cancel(&f->retry);
	cJSON_Delete(f->req);
	f->req = NULL;
	if (e)
		f->F->n.failed++;
	f->done(f, result, len, e);
}

static int send_to_owner(struct fwd_call *f, int lookup, struct err *e);

static void retry_due(struct timer *t)
{
	struct fwd_call *f = container_of(t, struct fwd_call, retry);
	struct err er = {0}, *e = &er;
	f->F->n.retried++;
	if (send_to_owner(f, 1, e))
		finish(f, NULL, 0, e);
}

/* The owner did not answer (gone) or its lease moved on: ask again, for a while. */
static void again(struct fwd_call *f, const char *why)
{
	struct err er = {0}, *e = &er;
	if (mono_us() < f->give_up_us) {
		timer_arm(&f->retry, RETRY_MS);
		return;
	}
	err_set(e, ERR_UNAVAILABLE, "session %.64s: node %.64s runs it and does not answer "
		"(%.200s), and no other node took it over in time", f->session, f->node, why);
	finish(f, NULL, 0, e);
}

static void deliver(struct fwd_call *f, const char *data, size_t len)
{
	cJSON *a = cJSON_ParseWithLength(data, len);
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(a, "result");
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(a, "error");
	const char *moved = jsonin_get(a, "moved");
	struct err er = {0}, *e = &er;
	if (moved) {
		cJSON_Delete(a);
		again(f, "its lease moved");
		return;
	}
	if (res) {
		const cJSON *seq = cJSON_GetObjectItemCaseSensitive(a, "seq");
		f->seq = cJSON_IsNumber(seq) ? (int64_t)seq->valuedouble : 0;
		char *text = cJSON_IsNull(res) ? NULL : cJSON_PrintUnformatted(res);
		finish(f, text, text ? strlen(text) : 0, NULL);
		free(text);
	} else {
		if (error_of(err, e))
			err_set(e, ERR_INTERNAL, "node %.64s answered what is not an answer", f->node);
		finish(f, NULL, 0, e);
	}
	cJSON_Delete(a);
}

static void on_reply(struct natslink_call *c, const char *data, size_t len, const struct err *e)
{
	struct fwd_call *f = container_of(c, struct fwd_call, call);
	struct err er = {0}, *unknown = &er;
	if (!e) {
		deliver(f, data, len);
	} else if (c->undelivered) { /* it reached nobody: the tree's node is gone */
		again(f, e->msg);
	} else { /* it may have run there: sending it again could run it twice */
		err_set(unknown, ERR_UNAVAILABLE, "session %.64s: node %.64s may or may not have "
			"run the request (%.200s); read the session to know", f->session, f->node,
			e->msg);
		finish(f, NULL, 0, unknown);
	}
}

/* Runs f here: its tree was taken over by this node while it waited. */
static int run_here(struct fwd_call *f, struct err *e)
{
	struct fwd_exec *x = calloc(1, sizeof(*x));
	if (!x) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return -1;
	}
	x->F = f->F;
	x->f = f;
	f->local = x;
	execute(x, f->req);
	return 0;
}

/* Sends f to its tree's node: f->node as forward_try found it, or (lookup) as the lease
 * table says now, which may be this node after a takeover. */
static int send_to_owner(struct fwd_call *f, int lookup, struct err *e)
{
	struct forward *F = f->F;
	int owner = lookup ? engine_owner(F->E, f->session, f->node, e) : 1;
	if (owner < 0)
		return -1;
	if (owner == 0)
		return run_here(f, e);
	char subject[96], *body = cJSON_PrintUnformatted(f->req);
	snprintf(subject, sizeof(subject), "ag.rpc.%s", f->node);
	int rc = body ? natslink_request(F->N, &f->call, subject, body, strlen(body),
					 f->held ? HELD_TIMEOUT_MS : CALL_TIMEOUT_MS, on_reply)
		      : -1;
	free(body);
	if (rc) {
		err_set(e, ERR_INTERNAL, "cannot forward the request to node %.64s", f->node);
		return -1;
	}
	F->n.sent++;
	return 0;
}

int forward_try(struct forward *F, struct fwd_call *f, const char *rpc, enum fwd_kind kind,
		int wait, const cJSON *params, const char *source, struct err *e)
{
	const char *sid = F ? tree_key(params, rpc) : NULL;
	char node[64];
	int gathered;
	enum gather_mode mode = F ? gather_mode(rpc, params, &gathered) : G_CONCAT;
	if (F && gathered && kind == FWD_CALL) {
		memset(&f->call, 0, sizeof(f->call));
		f->local = NULL;
		f->req = NULL;
		f->held = 0;
		timer_init(&f->retry, engine_loop(F->E), retry_due);
		return gather_start(F, f, mode, rpc, params, e);
	}
	if (!sid)
		return 0;
	int owner = engine_owner(F->E, sid, node, e);
	if (owner <= 0)
		return owner;
	memset(&f->call, 0, sizeof(f->call));
	f->F = F;
	f->local = NULL;
	f->held = kind == FWD_COMMAND || (kind == FWD_PROMPT && wait);
	f->give_up_us = mono_us() + (engine_lease_ms(F->E) + 3000) * 1000;
	snprintf(f->session, sizeof(f->session), "%s", sid);
	snprintf(f->node, sizeof(f->node), "%s", node);
	timer_init(&f->retry, engine_loop(F->E), retry_due);
	f->req = cJSON_CreateObject();
	cJSON *p = cJSON_Duplicate(params, 1);
	if (!f->req || !p || !cJSON_AddStringToObject(f->req, "rpc", rpc) ||
	    !cJSON_AddStringToObject(f->req, "kind", kinds[kind]) ||
	    !cJSON_AddBoolToObject(f->req, "wait", wait) ||
	    !cJSON_AddStringToObject(f->req, "source", source)) {
		cJSON_Delete(p);
		cJSON_Delete(f->req);
		f->req = NULL;
		err_set(e, ERR_INTERNAL, "out of memory");
		return -1;
	}
	cJSON_AddItemToObject(f->req, "params", p);
	list_add(F, f);
	if (send_to_owner(f, 0, e)) {
		list_del(f);
		cJSON_Delete(f->req);
		f->req = NULL;
		return -1;
	}
	if (f->held && !timer_armed(&F->watch))
		timer_arm(&F->watch, WATCH_MS);
	return 1;
}

/* f's run here after a takeover, if any, ends without an answer. */
static void drop_local(struct fwd_call *f)
{
	if (!f->local)
		return;
	api_wait_cancel(&f->local->aw);
	exec_unlink(f->local);
	free(f->local->result);
	free(f->local);
	f->local = NULL;
}

void forward_cancel(struct fwd_call *f)
{
	if (!f->F || !f->next)
		return;
	if (f->gather) {
		gather_free(f->gather);
		f->gather = NULL;
		list_del(f);
		return;
	}
	natslink_cancel(&f->call);
	timer_cancel(&f->retry);
	drop_local(f);
	list_del(f);
	cJSON_Delete(f->req);
	f->req = NULL;
}

/* Held prompts whose node stopped its heartbeat are answered 503 (forward.h). */
static void watch(struct timer *t)
{
	struct forward *F = container_of(t, struct forward, watch);
	int held = 0, nasked = 0;
	struct node_alive {
		char node[64];
		int alive;
	} asked[16]; /* each node asked once a pass (many prompts may wait on one) */
	for (struct fwd_call *f = F->list.next, *next; f != &F->list; f = next) {
		next = f->next;
		struct err er = {0}, *e = &er;
		if (!f->held)
			continue;
		held = 1; /* watched again next time, also while it waits to be sent again */
		if (f->local || !f->call.id)
			continue;
		int k = 0;
		while (k < nasked && strcmp(asked[k].node, f->node))
			k++;
		int alive = k < nasked ? asked[k].alive : engine_node_alive(F->E, f->node, e);
		if (k == nasked && nasked < (int)(sizeof(asked) / sizeof(asked[0]))) {
			snprintf(asked[nasked].node, sizeof(asked[nasked].node), "%s", f->node);
			asked[nasked++].alive = alive;
		}
		if (alive != 0)
			continue; /* alive, or PostgreSQL cannot tell now */
		natslink_cancel(&f->call);
		err_set(e, ERR_UNAVAILABLE, "node %.64s, which ran session %.64s, stopped (its "
			"heartbeat is older than the lease): the prompt was saved before it was "
			"accepted, and the node that takes the session over fails its turn as "
			"interrupted or runs it; read the session's messages for the outcome",
			f->node, f->session);
		finish(f, NULL, 0, e);
	}
	if (held)
		timer_arm(t, WATCH_MS);
}

/* ---- start and stop ---- */

struct forward *forward_start(struct engine *E, struct err *e)
{
	struct natslink *N = bus_natslink(engine_bus(E));
	if (!N || !engine_node(E))
		return NULL;
	struct forward *F = calloc(1, sizeof(*F));
	if (!F) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	F->E = E;
	F->N = N;
	F->list.next = F->list.prev = &F->list;
	timer_init(&F->watch, engine_loop(E), watch);
	timer_init(&F->settle, engine_loop(E), settle_due);
	bus_subscribe(engine_bus(E), &F->sub, settle_event, F);
	snprintf(F->subject, sizeof(F->subject), "ag.rpc.%s", engine_node(E));
	if (natslink_serve(N, F->subject, on_request, F)) {
		err_set(e, ERR_INTERNAL, "cannot serve %s on NATS", F->subject);
		free(F);
		return NULL;
	}
	return F;
}

void forward_stop(struct forward *F)
{
	if (!F)
		return;
	natslink_unserve(F->N, F->subject);
	timer_cancel(&F->watch);
	timer_cancel(&F->settle);
	bus_unsubscribe(engine_bus(F->E), &F->sub);
	while (F->list.next != &F->list) {
		struct fwd_call *f = F->list.next;
		if (f->gather) {
			gather_free(f->gather);
			f->gather = NULL;
		}
		drop_local(f); /* running here: answered once, below, as the others */
		struct err er = {0}, *e = &er;
		natslink_cancel(&f->call);
		err_set(e, ERR_UNAVAILABLE, "the server is shutting down");
		finish(f, NULL, 0, e);
	}
	while (F->execs) {
		struct fwd_exec *x = F->execs;
		struct err er = {0}, *e = &er;
		api_wait_cancel(&x->aw);
		err_set(e, ERR_UNAVAILABLE, "node %s is shutting down", engine_node(F->E));
		exec_answer(x, NULL, e);
	}
	free(F);
}

int forward_busy(const struct forward *F)
{
	return F && (F->list.next != &F->list || F->execs);
}

void forward_counts(struct forward *F, struct forward_counts *out)
{
	if (F)
		*out = F->n;
	else
		memset(out, 0, sizeof(*out));
}
