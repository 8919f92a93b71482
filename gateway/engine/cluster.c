/* cluster: the engine's side of several nodes sharing one PostgreSQL store. A node runs
 * a session tree only while it holds the tree's lease (store/lease.h); this file keeps
 * the set of trees it holds, takes a lease when a request for a free tree arrives here
 * (a draining node sends it to the live node with the fewest leases instead), recovering
 * the tree first as a restart would (its running turns failed as interrupted, its queued
 * turns resumed), renews all leases every third of the expiry,
 * takes over the trees of nodes that died (their leases expired with turns left
 * running or queued), gives up idle trees (and drops their sessions from the cache, so
 * another node's later writes are never shadowed by a stale copy here), and drains.
 * Requests for a tree another node holds are forwarded to it by the transports
 * (net/forward.c). Loop thread only. */
#include "engine_int.h"
#include "lease.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HELD_BUCKETS 256
#define ORPHANS_PER_TICK 32
#define IDLE_RELEASE_MS 30000 /* an idle tree's lease is given up after this */

struct held {
	struct held *next;
	int64_t used;  /* ms since 1970 of the last request for it */
	int renewed;   /* seen in the last renewal */
	char root[ID_MAX];
};

struct cluster {
	struct engine *E;
	struct lease *Ls;
	struct held *held[HELD_BUCKETS];
	int nheld;
	struct timer tick;
	int64_t healthy_since; /* mono ms since renewals go through without a failure */
	struct timer valid;    /* armed at the last renewal's start + the expiry (less a
				* margin): no renewal by then, and the leases may be taken */
	int suspended;         /* the trees were stopped at that point (PostgreSQL away) */
	char failure[sizeof(((struct err *)0)->msg)]; /* the last lease error, "" once they work again */
	int draining;
	void (*drained)(void *arg);
	void *drained_arg;
	uint64_t taken, released, adopted; /* for GET /metrics */
};

static unsigned bucket(const char *root)
{
	unsigned h = 2166136261u;
	for (; *root; root++)
		h = (h ^ (unsigned char)*root) * 16777619u;
	return h % HELD_BUCKETS;
}

static struct held **find(struct cluster *C, const char *root)
{
	struct held **pp = &C->held[bucket(root)];
	while (*pp && strcmp((*pp)->root, root))
		pp = &(*pp)->next;
	return pp;
}

static struct held *hold(struct cluster *C, const char *root)
{
	struct held **pp = find(C, root);
	if (*pp)
		return *pp;
	struct held *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	snprintf(h->root, sizeof(h->root), "%s", root);
	h->used = now_ms();
	h->renewed = 1;
	*pp = h;
	C->nheld++;
	return h;
}

static void unhold(struct cluster *C, const char *root)
{
	struct held **pp = find(C, root), *h = *pp;
	if (!h)
		return;
	*pp = h->next;
	free(h);
	C->nheld--;
}

static void set_failure(struct cluster *C, const struct err *e)
{
	if (strcmp(C->failure, e->msg))
		log_warn("cluster: %s", e->msg);
	snprintf(C->failure, sizeof(C->failure), "%s", e->msg);
}

/* ---- a tree's sessions in this node's cache ---- */

static void drop_if_idle(struct session *s, void *arg)
{
	struct engine *E = arg;
	if (!s->cur && !turnq_busy(&s->q) && !timer_armed(&s->kick) && !s->waiting) {
		session_unlink(E, s);
		session_free(s);
	}
}

/* Forgets the cached copies of root's sessions: another node may have written them. */
static void forget_tree(struct engine *E, const char *root)
{
	session_for_tree(E, root, drop_if_idle, E);
}

static void fail_running(struct session *s, void *arg)
{
	if (s->cur)
		turn_end(s->cur, T_FAILED, "UnknownError", arg);
}

/* A lease just taken: what the cache has of the tree may be stale; then the tree is
 * recovered as after a restart. On failure (the store cannot be read now) the tree is
 * not held, so the next request or renewal tries again; the lease stays this node's. */
static int adopt(struct cluster *C, const char *root)
{
	if (!hold(C, root))
		return -1;
	forget_tree(C->E, root);
	if (turn_recover_tree(C->E, root, 1) < 0) {
		unhold(C, root);
		return -1;
	}
	C->taken++;
	return 0;
}

/* Gives a tree up: its queued turns go to the next node (a draining node's), its writes
 * are committed before its lease is released (else the lease is left to expire, and the
 * node that takes it fences this one). 0, or -1 while a turn of it runs. */
static int give_up(struct cluster *C, const char *root)
{
	struct err e = {0};
	if (turn_hand_over_tree(C->E, root, "this node is draining: the prompt is saved and "
				"runs on another node (its reply comes on the session's events)") < 0)
		return -1;
	if (store_flush(C->E->S) == 0 && lease_release(C->Ls, root, &e) == 0) {
		C->released++;
	} else {
		if (e.code)
			set_failure(C, &e);
		if (!C->draining)
			return -1; /* kept: tried again later */
	}
	forget_tree(C->E, root);
	unhold(C, root);
	return 0;
}

/* ---- the owner of a session ---- */

/* Expired leases of other nodes are taken over only once this node's own renewals have
 * gone through for a whole expiry: when PostgreSQL was unreachable for every node, each
 * live node renews its own leases first (they still name it) and keeps its trees. */
static int may_take_over(struct cluster *C)
{
	return !C->failure[0] && mono_us() / 1000 - C->healthy_since >= lease_expiry_ms(C->Ls);
}

static int root_of(struct engine *E, const char *id, char *root, struct err *e)
{
	return session_root(E, id, root) > 0 ? 0 : session_missing(E, id, e);
}

int engine_owner(struct engine *E, const char *session_id, char *node, struct err *e)
{
	struct cluster *C = E->cluster;
	char root[ID_MAX];
	if (!C)
		return 0;
	if (root_of(E, session_id, root, e))
		return -1;
	struct held *h = *find(C, root);
	if (h && (!C->draining || give_up(C, root) < 0)) {
		h->used = now_ms();
		return 0; /* held here (a draining node's tree while a turn of it runs) */
	}
	int given_up = h != NULL; /* h is freed then */
	int rc = given_up ? 0 : lease_take(C->Ls, root, may_take_over(C), node, e);
	if (rc != 0)
		return rc;
	if (C->draining) { /* given up, or taken to learn it was free: another node runs it */
		if (!given_up)
			lease_release(C->Ls, root, e);
		rc = lease_pick_peer(C->Ls, node, e);
		if (rc == 0)
			err_set(e, ERR_UNAVAILABLE, "node %s is draining (shutting down) and no "
				"other node is up to run session %s", lease_node(C->Ls), session_id);
		return rc == 1 ? 1 : -1;
	}
	if (adopt(C, root)) {
		err_set(e, ERR_UNAVAILABLE, "session %s: its tree could not be recovered on node "
			"%s (%s)", session_id, lease_node(C->Ls),
			store_failure(E->S) ? store_failure(E->S) : "out of memory");
		return -1;
	}
	return 0;
}

void engine_cluster_created(struct engine *E, const char *root)
{
	struct cluster *C = E->cluster;
	char node[LEASE_NODE_MAX];
	struct err e = {0};
	/* a new tree: nobody else can hold it; taken now so requests find it here (not
	 * while draining: the first request sends it to another node) */
	if (C && !C->draining && !*find(C, root) && lease_take(C->Ls, root, 0, node, &e) == 0)
		hold(C, root);
}

/* ---- the tick: renew, adopt orphans, release idle trees ---- */

static void renewed(void *arg, const char *root)
{
	struct cluster *C = arg;
	struct held *h = *find(C, root);
	if (h) {
		h->renewed = 1;
		return;
	}
	/* ours in the table but not here: a previous run under this node's name */
	if (!C->draining && adopt(C, root))
		log_error("cluster: recovering session tree %s failed", root);
}

static void each_held(struct cluster *C, void (*fn)(struct cluster *C, struct held *h))
{
	for (int b = 0; b < HELD_BUCKETS; b++)
		for (struct held *h = C->held[b], *next; h; h = next) {
			next = h->next;
			fn(C, h);
		}
}

static void clear_renewed(struct cluster *C, struct held *h)
{
	(void)C;
	h->renewed = 0;
}

static void fenced_stop(struct cluster *C, const char *why);

/* A held tree missing from the renewal: another node took its lease over, which fenced
 * this one (lease_take): it stops as fenced_stop says. */
static void drop_unrenewed(struct cluster *C, struct held *h)
{
	if (!h->renewed) {
		char why[300];
		snprintf(why, sizeof(why), "node %s lost the lease of session tree %s to another "
			 "node, which fenced it", lease_node(C->Ls), h->root);
		fenced_stop(C, why);
	}
}

/* Another node declared this one dead and took its trees over (lease.h): what this
 * process holds in memory is no longer its to write, and every commit is refused. It
 * stops at once, as after kill -9; a supervisor starts it again, afresh. */
static void fenced_stop(struct cluster *C, const char *why)
{
	log_error("cluster: %s; stopping now (exit 70): start this node again", why);
	_exit(70);
}

/* The leases may have expired (no renewal went through for an expiry): another node may
 * take the trees over, so this one stops running them now — running turns fail as
 * interrupted, queued ones are handed over, the cache forgets them. When PostgreSQL
 * answers again, the leases that still name this node come back (renewed). */
static void leases_lapsed(struct timer *t)
{
	struct cluster *C = container_of(t, struct cluster, valid);
	char why[300];
	snprintf(why, sizeof(why), "interrupted: node %s could not renew its session leases "
		 "for %lld ms (%.150s), so another node may run the session: the turn was stopped",
		 lease_node(C->Ls), (long long)lease_expiry_ms(C->Ls),
		 C->failure[0] ? C->failure : "PostgreSQL did not answer");
	log_error("cluster: %s", why + 13);
	C->suspended = 1;
	for (int b = 0; b < HELD_BUCKETS; b++)
		while (C->held[b]) {
			const char *root = C->held[b]->root;
			session_for_tree(C->E, root, fail_running, why);
			turn_hand_over_tree(C->E, root, "this node lost PostgreSQL for longer than "
					    "its session leases: the prompt is saved and runs when a "
					    "node takes the session (its reply comes on its events)");
			forget_tree(C->E, root);
			unhold(C, root);
		}
}

static void renew(struct cluster *C)
{
	struct err e = {0};
	int64_t sent = mono_us() / 1000;
	each_held(C, clear_renewed);
	if (store_fenced(C->E->S))
		fenced_stop(C, "the store refused a commit: this node was fenced by another");
	int held = lease_renew(C->Ls, renewed, C, &e);
	if (held == LEASE_FENCED)
		fenced_stop(C, e.msg);
	if (held >= 0) {
		/* PostgreSQL's expiry counts from after this was sent: a margin for the rest */
		timer_arm(&C->valid, lease_expiry_ms(C->Ls) - (mono_us() / 1000 - sent) - 50);
		if (C->suspended)
			log_info("cluster: leases renewed: the session trees still named this node's "
				 "are taken back");
		C->suspended = 0;
		if (C->failure[0]) {
			log_info("cluster: leases renewed again");
			C->healthy_since = mono_us() / 1000;
		}
		C->failure[0] = 0;
		each_held(C, drop_unrenewed);
		return;
	}
	set_failure(C, &e);
}

static void adopt_orphan(void *arg, const char *root)
{
	struct cluster *C = arg;
	char node[LEASE_NODE_MAX];
	struct err e = {0};
	/* a free lease (handed over by a draining node) is taken at once; an expired one
	 * only once this node may take over */
	if (*find(C, root) || lease_take(C->Ls, root, may_take_over(C), node, &e) != 0)
		return;
	log_info("cluster: node %s takes over session tree %s (its node left or died)",
		 lease_node(C->Ls), root);
	C->adopted++;
	if (adopt(C, root))
		log_error("cluster: recovering session tree %s failed", root);
}

/* Idle trees are given up after IDLE_RELEASE_MS (while PostgreSQL answers), and every
 * tree with no turn running while draining. */
static void release_idle(struct cluster *C, struct held *h)
{
	if (!C->draining && (C->failure[0] || engine_tree_busy(C->E, h->root) ||
			     now_ms() - h->used < IDLE_RELEASE_MS))
		return;
	give_up(C, h->root);
}

static void tick(struct timer *t)
{
	struct cluster *C = container_of(t, struct cluster, tick);
	struct err e = {0};
	int64_t every = lease_expiry_ms(C->Ls) / 3;
	renew(C);
	if (!C->draining && !C->failure[0] &&
	    lease_orphans(C->Ls, ORPHANS_PER_TICK, adopt_orphan, C, &e) < 0)
		set_failure(C, &e);
	each_held(C, release_idle);
	if (C->draining && !C->nheld && C->drained) {
		void (*fn)(void *) = C->drained;
		C->drained = NULL;
		fn(C->drained_arg); /* the node leaves the table at its end (engine_cluster_stop) */
		return;
	}
	timer_arm(t, C->draining ? 200 : (every > 50 ? every : 50));
}

/* ---- start, drain, stop ---- */

int engine_cluster_start(struct engine *E, const char *pg_url, const char *node,
			 const char *node_url, int64_t lease_ms, struct err *e)
{
	struct cluster *C = calloc(1, sizeof(*C));
	if (!C) {
		err_set(e, ERR_INTERNAL, "out of memory");
		return -1;
	}
	C->E = E;
	C->Ls = lease_open(pg_url, node, node_url, lease_ms, e);
	if (!C->Ls) {
		free(C);
		return -1;
	}
	C->healthy_since = mono_us() / 1000;
	E->cluster = C;
	timer_init(&C->tick, E->L, tick);
	timer_init(&C->valid, E->L, leases_lapsed);
	timer_arm(&C->tick, 0); /* at once: trees a dead node left are taken over */
	log_info("cluster: node %s, session leases of %lld ms", node, (long long)lease_ms);
	return 0;
}

void engine_cluster_drain(struct engine *E, void (*done)(void *arg), void *arg)
{
	struct cluster *C = E->cluster;
	struct err e = {0};
	if (!C) {
		done(arg);
		return;
	}
	if (!C->draining)
		log_info("cluster: node %s drains: no new sessions; %d tree(s) to finish or hand "
			 "over", lease_node(C->Ls), C->nheld);
	C->draining = 1;
	C->drained = done;
	C->drained_arg = arg;
	if (lease_set_draining(C->Ls, &e))
		set_failure(C, &e);
	timer_arm(&C->tick, 0);
}

void engine_cluster_stop(struct engine *E, int durable)
{
	struct cluster *C = E->cluster;
	struct err e = {0};
	if (!C)
		return;
	timer_cancel(&C->tick);
	timer_cancel(&C->valid);
	/* what still runs was failed as interrupted (engine_shutdown) and, when durable,
	 * committed: then the leases go at once; else they expire, and the node that takes
	 * a tree over fences this one's late commits */
	if (!durable)
		log_warn("cluster: the last writes were not committed: the leases are left to "
			 "expire (%lld ms)", (long long)lease_expiry_ms(C->Ls));
	else if (lease_release_all(C->Ls, &e))
		log_warn("cluster: %s", e.msg);
	for (int b = 0; b < HELD_BUCKETS; b++)
		while (C->held[b])
			unhold(C, C->held[b]->root);
	lease_close(C->Ls);
	free(C);
	E->cluster = NULL;
}

/* ---- what the node tells about itself ---- */

const char *engine_node(struct engine *E)
{
	return E->cluster ? lease_node(E->cluster->Ls) : NULL;
}

struct peers_ctx {
	const char *self;
	void (*fn)(void *arg, const char *node);
	void *arg;
};

static void live_peer(void *arg, const struct lease_peer *p)
{
	struct peers_ctx *pc = arg;
	if (p->alive && strcmp(p->node, pc->self))
		pc->fn(pc->arg, p->node);
}

int engine_cluster_peers(struct engine *E, void (*fn)(void *arg, const char *node), void *arg,
			 struct err *e)
{
	struct peers_ctx pc = {E->cluster ? lease_node(E->cluster->Ls) : "", fn, arg};
	return E->cluster ? lease_peers(E->cluster->Ls, live_peer, &pc, e) : 0;
}

int engine_node_alive(struct engine *E, const char *node, struct err *e)
{
	return E->cluster ? lease_node_alive(E->cluster->Ls, node, e) : 1;
}

int64_t engine_lease_ms(struct engine *E)
{
	return E->cluster ? lease_expiry_ms(E->cluster->Ls) : 0;
}

int engine_draining(struct engine *E)
{
	return E->cluster && E->cluster->draining;
}

static void peer_json(void *arg, const struct lease_peer *p)
{
	struct jw *w = arg;
	jw_obj(w);
	jw_kstr(w, "id", p->node);
	jw_kstr(w, "url", p->url);
	jw_kbool(w, "alive", p->alive);
	jw_kbool(w, "draining", p->draining);
	jw_kint(w, "leases", p->leases);
	jw_kint(w, "seenMsAgo", p->seen_ms_ago);
	jw_obj_end(w);
}

void engine_cluster_json(struct engine *E, struct jw *w)
{
	struct cluster *C = E->cluster;
	struct err e = {0};
	jw_obj(w);
	jw_kstr(w, "node", lease_node(C->Ls));
	jw_kbool(w, "draining", C->draining);
	jw_kint(w, "leases", C->nheld);
	jw_kint(w, "leaseMs", lease_expiry_ms(C->Ls));
	if (C->failure[0])
		jw_kstr(w, "error", C->failure);
	jw_key(w, "nodes");
	jw_arr(w);
	if (lease_peers(C->Ls, peer_json, w, &e) < 0)
		set_failure(C, &e);
	jw_arr_end(w);
	jw_obj_end(w);
}

void engine_cluster_counts(struct engine *E, struct engine_cluster_counts *out)
{
	struct cluster *C = E->cluster;
	memset(out, 0, sizeof(*out));
	if (!C)
		return;
	out->held = C->nheld;
	out->taken = C->taken;
	out->released = C->released;
	out->adopted = C->adopted;
	out->draining = C->draining;
	out->lease_ok = !C->failure[0];
}
