#include "bus.h"
#include "log.h"
#include "loop.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bus {
	struct store *S;
	int64_t seq;
	int64_t reserved;   /* seqs up to here are durably reserved (store_seq_reserve) */
	int64_t reserving;  /* a larger reservation in the open batch, or 0 */
	uint64_t reserving_at; /* its store_mark(): durable once store_durable() reaches it */
	int64_t unreserved_from; /* the first seq published beyond the reservation, or 0 */
	struct event **ring;
	size_t ring_size, ring_n, ring_head; /* head = index of the oldest */
	int64_t keep;
	int64_t since_prune;
	int64_t persisted; /* the newest seq handed to the store */
	int64_t lost;      /* the newest seq neither stored nor in the ring (store errors) */
	struct jw batch;   /* reused encoding buffer */
	struct bus_sub subs; /* sentinel */
};

void event_ref(struct event *ev)
{
	atomic_fetch_add_explicit(&ev->refs, 1, memory_order_relaxed);
}

void event_unref(struct event *ev)
{
	if (ev && atomic_fetch_sub_explicit(&ev->refs, 1, memory_order_acq_rel) == 1) {
		free(ev->path);
		free(ev);
	}
}

/* An id occurs in a '/'-separated path as a whole component. */
static int path_has(const char *path, const char *id)
{
	size_t n = strlen(id);
	for (const char *p = path; p && (p = strstr(p, id)); p += n) {
		int starts = p == path || p[-1] == '/';
		int ends = p[n] == 0 || p[n] == '/';
		if (starts && ends)
			return 1;
	}
	return 0;
}

int event_matches(const struct event *ev, const char *session_id, int descendants)
{
	if (!session_id || !*session_id)
		return 1;
	if (!strcmp(ev->session_id, session_id))
		return 1;
	return descendants && path_has(ev->path, session_id);
}

struct bus *bus_create(struct store *S, size_t ring_size, int64_t keep)
{
	struct bus *B = calloc(1, sizeof(*B));
	if (!B)
		return NULL;
	B->ring = calloc(ring_size, sizeof(*B->ring));
	if (!B->ring) {
		free(B);
		return NULL;
	}
	B->S = S;
	B->ring_size = ring_size;
	B->keep = keep;
	/* events up to the reservation may have reached subscribers without reaching the
	 * store (a crash between publish and commit): numbering goes on above them all */
	int64_t stored = S ? store_event_max_seq(S) : 0, reserved = S ? store_seq_reserved(S) : 0;
	B->seq = stored > reserved ? stored : reserved;
	if (B->seq < 0)
		B->seq = 0;
	B->reserved = B->seq;
	B->persisted = B->seq;
	jw_init(&B->batch);
	B->subs.next = B->subs.prev = &B->subs;
	if (S && store_add_flush_hook(S, bus_persist, B)) {
		bus_destroy(B);
		return NULL;
	}
	return B;
}

void bus_destroy(struct bus *B)
{
	if (!B)
		return;
	for (size_t i = 0; i < B->ring_n; i++)
		event_unref(B->ring[(B->ring_head + i) % B->ring_size]);
	jw_free(&B->batch);
	free(B->ring);
	free(B);
}

void bus_begin(struct bus *B, struct jw *w, const char *type)
{
	jw_reset(w);
	jw_obj(w);
	jw_kstr(w, "type", type);
	jw_key(w, "properties");
}

static void envelope(struct jw *w, int64_t seq, const struct bus_env *env)
{
	jw_kint(w, "seq", seq);
	jw_kstr(w, "sessionID", env->session_id);
	jw_kstr(w, "rootID", env->root_id ? env->root_id : env->session_id);
	if (env->parent_id)
		jw_kstr(w, "parentID", env->parent_id);
	if (env->parent_tool_call_id)
		jw_kstr(w, "parentToolCallID", env->parent_tool_call_id);
	jw_kint(w, "depth", env->depth);
	if (env->turn_id)
		jw_kstr(w, "turnID", env->turn_id);
}

static struct event *ring_at(struct bus *B, size_t i)
{
	return B->ring[(B->ring_head + i) % B->ring_size];
}

static void ring_push(struct bus *B, struct event *ev)
{
	event_ref(ev);
	if (B->ring_n == B->ring_size) {
		int64_t drop = B->ring[B->ring_head]->seq;
		if (drop > B->persisted)
			bus_persist(B); /* the store takes what the ring is about to drop */
		if (drop > B->persisted)
			B->lost = drop; /* it could not: a resume from before here must resync */
		event_unref(B->ring[B->ring_head]);
		B->ring[B->ring_head] = ev;
		B->ring_head = (B->ring_head + 1) % B->ring_size;
		return;
	}
	B->ring[(B->ring_head + B->ring_n) % B->ring_size] = ev;
	B->ring_n++;
}

#define BUS_BATCH_MAX 1024

/* One stored record: seq (8 bytes), json length (4), session id length (2), path length
 * (2), all little-endian, then the session id, the path and the json. */
#define REC_HEAD 16

static void put_le(unsigned char *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void encode_record(struct jw *w, const struct event *ev)
{
	size_t sl = strlen(ev->session_id), pl = strlen(ev->path);
	unsigned char h[REC_HEAD];
	put_le(h, (uint64_t)ev->seq, 8);
	put_le(h + 8, ev->len, 4);
	put_le(h + 12, sl, 2);
	put_le(h + 14, pl > 0xffff ? 0xffff : pl, 2);
	jw_append(w, (const char *)h, REC_HEAD);
	jw_append(w, ev->session_id, sl);
	jw_append(w, ev->path, pl > 0xffff ? 0xffff : pl);
	jw_append(w, ev->json, ev->len);
}

/* Events not yet in the store are the newest ones of the ring. */
void bus_persist(void *arg)
{
	struct bus *B = arg;
	if (!B->S || B->persisted >= B->seq || !B->ring_n)
		return;
	/* the ring holds consecutive seqs: the first one not stored is at a known index */
	int64_t skip = B->persisted + 1 - ring_at(B, 0)->seq;
	size_t from = skip > 0 ? (size_t)skip : 0;
	if (from >= B->ring_n)
		return;
	jw_reset(&B->batch);
	int64_t first = ring_at(B, from)->seq, last = ring_at(B, B->ring_n - 1)->seq;
	for (size_t i = from; i < B->ring_n; i++)
		encode_record(&B->batch, ring_at(B, i));
	if (B->batch.oom) {
		log_error("bus: out of memory writing events %lld..%lld to the store",
			  (long long)first, (long long)last);
		return;
	}
	if (store_event_batch_put(B->S, first, last, B->batch.buf, B->batch.len) == 0)
		B->persisted = last;
	/* prune once a quarter of `keep` has been added since the last time */
	B->since_prune += last - first + 1;
	if (B->keep > 0 && B->since_prune > B->keep / 4) {
		B->since_prune = 0;
		store_event_prune(B->S, B->keep);
	}
}

/* Seqs are reserved durably before they are used: an event reaches subscribers before
 * its batch commits, and a restart must not hand its seq to another event. The next
 * block is written into the open batch when half of the current one is used, so it is
 * durable (a commit later) long before it is needed; only a burst of more than half a
 * block within one commit interval waits for a commit here. Without a store (tests of
 * the bus alone) nothing is kept. */
#define SEQ_BLOCK 8192

static void reserve(struct bus *B, int64_t seq)
{
	if (!B->S) {
		B->reserved = seq;
		return;
	}
	if (B->reserving && store_durable(B->S) >= B->reserving_at) {
		B->reserved = B->reserving;
		B->reserving = 0;
		B->unreserved_from = 0;
	}
	if (!B->reserving && seq > B->reserved - SEQ_BLOCK / 2) {
		int64_t upto = (seq > B->reserved ? seq : B->reserved) + SEQ_BLOCK;
		if (store_seq_reserve(B->S, upto) == 0) {
			B->reserving = upto;
			B->reserving_at = store_mark(B->S);
		}
	}
	if (seq <= B->reserved)
		return;
	if (B->reserving && store_flush(B->S) == 0 && store_durable(B->S) >= B->reserving_at) {
		B->reserved = B->reserving;
		B->reserving = 0;
		return;
	}
	if (B->unreserved_from)
		return; /* said once per episode */
	B->unreserved_from = seq;
	log_error("bus: event seqs from %lld are not reserved on disk (the store cannot write "
		  "now): after a crash before it can, a client could see one of them again",
		  (long long)seq);
}

int64_t bus_publish(struct bus *B, struct jw *w, const char *type, const struct bus_env *env)
{
	int64_t seq = B->seq + 1;
	reserve(B, seq);
	envelope(w, seq, env);
	jw_obj_end(w);
	if (w->oom)
		return -1;
	struct event *ev = malloc(sizeof(*ev) + w->len + 1);
	if (!ev)
		return -1;
	memset(ev, 0, sizeof(*ev));
	ev->path = strdup(env->path ? env->path : env->session_id);
	atomic_init(&ev->refs, 1);
	ev->seq = seq;
	ev->time = now_ms();
	ev->type = type;
	snprintf(ev->session_id, sizeof(ev->session_id), "%s", env->session_id);
	memcpy(ev->json, w->buf, w->len + 1);
	ev->len = w->len;
	B->seq = seq;
	if (B->S)
		store_begin(B->S); /* a batch is open: its commit persists this event */
	ring_push(B, ev);
	if (B->seq - B->persisted >= BUS_BATCH_MAX)
		bus_persist(B); /* bounds a stored row, so a replay page never decodes a huge one */
	for (struct bus_sub *s = B->subs.next, *next; s != &B->subs; s = next) {
		next = s->next; /* a subscriber may leave from inside its callback */
		s->fn(s->arg, ev);
	}
	event_unref(ev);
	return seq;
}

void bus_subscribe(struct bus *B, struct bus_sub *s, bus_fn fn, void *arg)
{
	s->fn = fn;
	s->arg = arg;
	s->prev = B->subs.prev;
	s->next = &B->subs;
	B->subs.prev->next = s;
	B->subs.prev = s;
}

void bus_unsubscribe(struct bus *B, struct bus_sub *s)
{
	if (!s->next)
		return;
	s->prev->next = s->next;
	s->next->prev = s->prev;
	s->next = s->prev = NULL;
}

int64_t bus_last_seq(struct bus *B)
{
	return B->seq;
}

struct replay_ctx {
	const char *session_id;
	int descendants;
	bus_fn fn;
	void *arg;
	int64_t last;
	int n, max;
};

/* An event read back from the store names its type as it was published: the JSON
 * begins {"type":"...". */
static void type_from_json(struct event *ev)
{
	static const char head[] = "{\"type\":\"";
	size_t hl = sizeof(head) - 1, n = 0;
	if (ev->len > hl && !memcmp(ev->json, head, hl))
		while (hl + n < ev->len && ev->json[hl + n] != '"' && n < sizeof(ev->type_buf) - 1)
			n++;
	memcpy(ev->type_buf, ev->json + hl, n);
	ev->type_buf[n] = 0;
	ev->type = ev->type_buf;
}

/* Delivers the events of one stored batch after c->last, until c->max have matched. */
static int replay_batch(void *arg, int64_t first_seq, int64_t last_seq, const void *data,
			size_t len)
{
	struct replay_ctx *c = arg;
	const unsigned char *p = data, *end = p + len;
	(void)first_seq;
	while (c->n < c->max && end - p >= REC_HEAD) {
		int64_t seq = (int64_t)get_le(p, 8);
		size_t jl = get_le(p + 8, 4), sl = get_le(p + 12, 2), pl = get_le(p + 14, 2);
		if (sl >= sizeof(((struct event *)0)->session_id) ||
		    (size_t)(end - p) < REC_HEAD + sl + pl + jl)
			break; /* a damaged record: what follows cannot be trusted */
		const unsigned char *sid = p + REC_HEAD, *path = sid + sl, *json = path + pl;
		p = json + jl;
		if (seq <= c->last)
			continue;
		c->last = seq;
		struct event *ev = calloc(1, sizeof(*ev) + jl + 1);
		char *pathz = ev ? strndup((const char *)path, pl) : NULL;
		if (!pathz) {
			free(ev);
			return 1;
		}
		atomic_init(&ev->refs, 1);
		ev->seq = seq;
		ev->path = pathz;
		memcpy(ev->session_id, sid, sl);
		memcpy(ev->json, json, jl);
		ev->len = jl;
		type_from_json(ev);
		if (event_matches(ev, c->session_id, c->descendants)) {
			c->fn(c->arg, ev);
			c->n++;
		}
		event_unref(ev);
	}
	if (c->last < last_seq && c->n < c->max)
		c->last = last_seq; /* damaged tail: skip to the batch's end rather than loop */
	return 1;
}

int64_t bus_oldest_seq(struct bus *B)
{
	int64_t oldest = B->ring_n ? B->ring[B->ring_head]->seq : B->seq + 1;
	if (B->S) {
		int64_t st = store_event_min_seq(B->S);
		if (st > 0 && st < oldest)
			oldest = st;
	}
	return oldest;
}

/* Older events come from the store a page at a time, newer ones from the ring. */
static int replay_from_store(struct bus *B, struct replay_ctx *c, int64_t oldest_ring)
{
	int64_t oldest_store = B->S ? store_event_min_seq(B->S) : 0;
	/* a failing store may hold events only in its log: the database has a gap */
	if (!B->S || oldest_store <= 0 || c->last + 1 < oldest_store || c->last < B->lost ||
	    store_failure(B->S))
		return BUS_RESYNC;
	while (c->last + 1 < oldest_ring && c->n < c->max) {
		int64_t before = c->last;
		int n = store_event_batch_after(B->S, c->last, replay_batch, c);
		if (n < 0)
			return -1;
		if (n == 0 || c->last == before)
			break;
	}
	return 0;
}

int bus_replay(struct bus *B, int64_t since, const char *session_id, int descendants,
	       bus_fn fn, void *arg, int max, int64_t *upto)
{
	struct replay_ctx c = {session_id, descendants, fn, arg, since < 0 ? 0 : since, 0, max};
	*upto = B->seq;
	if (c.last >= B->seq)
		return 0;
	int64_t oldest_ring = B->ring_n ? B->ring[B->ring_head]->seq : B->seq + 1;
	if (c.last + 1 < oldest_ring) {
		int rc = replay_from_store(B, &c, oldest_ring);
		if (rc < 0)
			return rc;
		if (c.n >= max) {
			*upto = c.last;
			return c.n;
		}
	}
	for (size_t i = 0; i < B->ring_n; i++) {
		struct event *ev = B->ring[(B->ring_head + i) % B->ring_size];
		if (ev->seq <= c.last || !event_matches(ev, session_id, descendants))
			continue;
		fn(arg, ev);
		if (++c.n >= max) {
			*upto = ev->seq;
			return c.n;
		}
	}
	return c.n;
}
