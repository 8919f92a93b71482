/* evlog: the event log — numbering (seqs reserved durably ahead of use), the ring of
 * recent events, their persistence to the store (a batch per commit) and replay from a
 * seq. The bus (bus.c) fans events out; this keeps them. A shared log for several nodes
 * takes this one's place behind the same functions. Loop thread only. */
#include "batchz.h"
#include "bus_int.h"
#include "evlog.h"
#include "log.h"
#include "loop.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct evlog {
	struct store *S;
	int64_t seq;        /* the last seq handed out */
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
	struct batchz *Z;  /* packs batches for the store, unpacks them for replay */
	/* The open batch: the events after persisted, packed as they are appended, so a
	 * commit finishes a batch instead of packing thousands of events at once. */
	int64_t bfirst, blast; /* its first and last seq; 0: nothing packed */
	uint32_t bn;           /* its records */
	size_t bbytes;         /* their JSON */
	int bbroken;           /* packing failed (out of memory): packed again at persist */
	struct jw rec;         /* one record being encoded */
	struct base *bases;    /* each session's newest record in the batch (open hashing) */
	size_t nbases, capbases;
};

/* A session's newest record in the open batch: what its next one is told against. */
struct base {
	const struct event *ev; /* NULL: a free slot (the ring holds the event) */
	uint32_t index;         /* its record's place in the batch */
};

struct evlog *evlog_create(struct store *S, size_t ring_size, int64_t keep)
{
	struct evlog *G = calloc(1, sizeof(*G));
	if (!G)
		return NULL;
	G->ring = calloc(ring_size, sizeof(*G->ring));
	if (!G->ring) {
		free(G);
		return NULL;
	}
	G->S = S;
	G->Z = batchz_create();
	if (!G->Z) {
		free(G->ring);
		free(G);
		return NULL;
	}
	G->ring_size = ring_size;
	G->keep = keep;
	/* events up to the reservation may have reached subscribers without reaching the
	 * store (a crash between publish and commit): numbering goes on above them all */
	int64_t stored = S ? store_event_max_seq(S) : 0, reserved = S ? store_seq_reserved(S) : 0;
	G->seq = stored > reserved ? stored : reserved;
	if (G->seq < 0)
		G->seq = 0;
	G->reserved = G->seq;
	G->persisted = G->seq;
	jw_init(&G->rec);
	if (S && store_add_flush_hook(S, evlog_persist, G)) {
		evlog_destroy(G);
		return NULL;
	}
	return G;
}

void evlog_destroy(struct evlog *G)
{
	if (!G)
		return;
	for (size_t i = 0; i < G->ring_n; i++)
		event_unref(G->ring[(G->ring_head + i) % G->ring_size]);
	jw_free(&G->rec);
	batchz_destroy(G->Z);
	free(G->bases);
	free(G->ring);
	free(G);
}

int64_t evlog_last_seq(struct evlog *G)
{
	return G->seq;
}

static struct event *ring_at(struct evlog *G, size_t i)
{
	return G->ring[(G->ring_head + i) % G->ring_size];
}

static void ring_push(struct evlog *G, struct event *ev)
{
	event_ref(ev);
	if (G->ring_n == G->ring_size) {
		int64_t drop = G->ring[G->ring_head]->seq;
		if (drop > G->persisted)
			evlog_persist(G); /* the store takes what the ring is about to drop */
		if (drop > G->persisted)
			G->lost = drop; /* it could not: a resume from before here must resync */
		event_unref(G->ring[G->ring_head]);
		G->ring[G->ring_head] = ev;
		G->ring_head = (G->ring_head + 1) % G->ring_size;
		return;
	}
	G->ring[(G->ring_head + G->ring_n) % G->ring_size] = ev;
	G->ring_n++;
}

/* A stored row holds at most EVLOG_BATCH_MAX events and about EVLOG_BATCH_BYTES of their
 * JSON, so a replay page never decodes a huge one; within that, a commit's events go in
 * one row: the more of a stream's deltas a row holds, the fewer are stored whole. */
#define EVLOG_BATCH_MAX 8192
#define EVLOG_BATCH_BYTES ((size_t)4 << 20)

/* One stored record: seq (8 bytes), json length (4), session id length (2), path length
 * (2), all little-endian, then the session id, the path and the json. A batch's records
 * are in seq order.
 *
 * A record whose length has DIFF_BIT set is told as a change to an earlier record of the
 * batch (its session's newest), whose session and path it shares: the 4 bytes after the
 * length give that record's place in the batch (from 0), then come the length of the
 * prefix it keeps (4 bytes), of the suffix it keeps (4), and the bytes between. A
 * streamed reply's deltas differ from one another in their text and seq alone, so each
 * is a few dozen bytes before compression instead of a whole event. */
#define REC_HEAD 16
#define DIFF_BIT 0x80000000u
#define DIFF_HEAD 8
#define DIFF_MIN 32 /* bytes kept from the record before, below which a record is whole */

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

static void put_head(struct jw *w, int64_t seq, uint32_t len, size_t sl, size_t pl)
{
	unsigned char h[REC_HEAD];
	put_le(h, (uint64_t)seq, 8);
	put_le(h + 8, len, 4);
	put_le(h + 12, sl, 2);
	put_le(h + 14, pl, 2);
	jw_append(w, (const char *)h, REC_HEAD);
}

/* How much of b's start and end (not overlapping) it shares with a. */
static void shared_ends(const struct event *a, const struct event *b, size_t *pre, size_t *suf)
{
	size_t max = a->len < b->len ? a->len : b->len, p = 0, s = 0;
	while (p < max && a->json[p] == b->json[p])
		p++;
	while (s < max - p && a->json[a->len - 1 - s] == b->json[b->len - 1 - s])
		s++;
	*pre = p;
	*suf = s;
}

/* ev, whole or as a change to its session's newest record (base: NULL if none). */
static void encode_record(struct jw *w, const struct base *base, const struct event *ev)
{
	size_t sl = strlen(ev->session_id), pl = strlen(ev->path), pre = 0, suf = 0;
	if (pl > 0xffff)
		pl = 0xffff;
	if (base && !strcmp(base->ev->path, ev->path))
		shared_ends(base->ev, ev, &pre, &suf);
	if (pre + suf < DIFF_MIN) {
		put_head(w, ev->seq, (uint32_t)ev->len, sl, pl);
		jw_append(w, ev->session_id, sl);
		jw_append(w, ev->path, pl);
		jw_append(w, ev->json, ev->len);
		return;
	}
	unsigned char d[DIFF_HEAD];
	put_le(d, pre, 4);
	put_le(d + 4, suf, 4);
	put_head(w, ev->seq, (uint32_t)(ev->len - pre - suf) | DIFF_BIT, base->index & 0xffff,
		 base->index >> 16);
	jw_append(w, (const char *)d, DIFF_HEAD);
	jw_append(w, ev->json + pre, ev->len - pre - suf);
}

/* ---- the open batch ---- */

static size_t hash_id(const char *s)
{
	size_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* The slot of session_id's newest record, or the free slot where it goes; NULL when the
 * table cannot grow (out of memory). */
static struct base *base_slot(struct evlog *G, const char *session_id)
{
	if ((G->nbases + 1) * 2 > G->capbases) {
		size_t cap = G->capbases ? G->capbases * 2 : 256;
		struct base *old = G->bases, *nb = calloc(cap, sizeof(*nb));
		if (!nb)
			return NULL;
		G->bases = nb;
		G->capbases = cap;
		for (size_t i = 0; old && i < cap / 2; i++)
			if (old[i].ev)
				*base_slot(G, old[i].ev->session_id) = old[i];
		free(old);
	}
	size_t i = hash_id(session_id) & (G->capbases - 1);
	while (G->bases[i].ev && strcmp(G->bases[i].ev->session_id, session_id))
		i = (i + 1) & (G->capbases - 1);
	return &G->bases[i];
}

static void batch_clear(struct evlog *G)
{
	G->bfirst = G->blast = 0;
	G->bn = 0;
	G->bbytes = 0;
	G->bbroken = 0;
	G->nbases = 0;
	if (G->bases)
		memset(G->bases, 0, G->capbases * sizeof(*G->bases));
}

/* Packs ev into the open batch (opening one). */
static void batch_add(struct evlog *G, const struct event *ev)
{
	if (G->bbroken)
		return; /* the events are in the ring: packed again at persist */
	if (!G->bn && batchz_begin(G->Z)) {
		G->bbroken = 1;
		return;
	}
	struct base *b = base_slot(G, ev->session_id);
	jw_reset(&G->rec);
	encode_record(&G->rec, b && b->ev ? b : NULL, ev);
	if (!b || G->rec.oom || batchz_feed(G->Z, G->rec.buf, G->rec.len)) {
		G->bbroken = 1;
		return;
	}
	if (!b->ev)
		G->nbases++;
	*b = (struct base){ev, G->bn++};
	if (!G->bfirst)
		G->bfirst = ev->seq;
	G->blast = ev->seq;
	G->bbytes += ev->len;
}

/* The open batch from the ring again: after a failed pack or store write. */
static void batch_repack(struct evlog *G)
{
	batch_clear(G);
	for (size_t i = 0; i < G->ring_n; i++)
		if (ring_at(G, i)->seq > G->persisted)
			batch_add(G, ring_at(G, i));
}

/* The open batch goes to the store (a flush hook: just before each commit, and when a
 * batch is full or the ring is about to drop its oldest). */
void evlog_persist(void *arg)
{
	struct evlog *G = arg;
	if (!G->S || G->persisted >= G->seq)
		return;
	if (G->bbroken || !G->bn)
		batch_repack(G);
	const void *packed;
	size_t plen;
	int64_t first = G->bfirst, last = G->blast;
	if (!G->bn || G->bbroken || batchz_finish(G->Z, &packed, &plen)) {
		log_error("event log: out of memory writing events %lld..%lld to the store",
			  (long long)G->persisted + 1, (long long)G->seq);
		batch_clear(G);
		G->bbroken = 1;
		return;
	}
	int ok = store_event_batch_put(G->S, first, last, packed, plen) == 0;
	batch_clear(G);
	if (!ok) {
		G->bbroken = 1; /* packed again from the ring next time */
		return;
	}
	G->persisted = last;
	/* prune once a quarter of `keep` has been added since the last time */
	G->since_prune += last - first + 1;
	if (G->keep > 0 && G->since_prune > G->keep / 4) {
		G->since_prune = 0;
		store_event_prune(G->S, G->keep);
	}
}

/* Seqs are reserved durably before they are used: an event reaches subscribers before
 * its batch commits, and a restart must not hand its seq to another event. The next
 * block is written into the open batch when half of the current one is used, so it is
 * durable (a commit later) long before it is needed; only a burst of more than half a
 * block within one commit interval waits for a commit here. Without a store (tests of
 * the bus alone) nothing is kept. */
#define SEQ_BLOCK 8192

static void reserve(struct evlog *G, int64_t seq)
{
	if (!G->S) {
		G->reserved = seq;
		return;
	}
	if (G->reserving && store_durable(G->S) >= G->reserving_at) {
		G->reserved = G->reserving;
		G->reserving = 0;
		G->unreserved_from = 0;
	}
	if (!G->reserving && seq > G->reserved - SEQ_BLOCK / 2) {
		int64_t upto = (seq > G->reserved ? seq : G->reserved) + SEQ_BLOCK;
		if (store_seq_reserve(G->S, upto) == 0) {
			G->reserving = upto;
			G->reserving_at = store_mark(G->S);
		}
	}
	if (seq <= G->reserved)
		return;
	if (G->reserving && store_flush(G->S) == 0 && store_durable(G->S) >= G->reserving_at) {
		G->reserved = G->reserving;
		G->reserving = 0;
		return;
	}
	if (G->unreserved_from)
		return; /* said once per episode */
	G->unreserved_from = seq;
	log_error("event log: event seqs from %lld are not reserved on disk (the store cannot write "
		  "now): after a crash before it can, a client could see one of them again",
		  (long long)seq);
}


struct rec_at;

struct replay_ctx {
	struct batchz *Z;
	struct rec_at *recs; /* a batch's records in seq order (index_batch) */
	int cap;
	struct jw whole, cur; /* expand_batch's output, and a record being rebuilt */
	size_t *offs;         /* where each record of the batch starts in whole */
	uint32_t capoffs;
	const char *session_id;
	int descendants;
	bus_fn fn;
	void *arg;
	int64_t last;
	int n, max;
};

/* One record of a batch being replayed: its seq and where it starts. */
struct rec_at {
	int64_t seq;
	const unsigned char *p;
};

static int by_seq(const void *a, const void *b)
{
	const struct rec_at *x = a, *y = b;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

/* The diff record at p (its head checked to fit) rebuilt whole into c->cur from the
 * record it names, one of the n before it; -1 if it names none or claims more of it
 * than there is (damaged). */
static int rebuild(struct replay_ctx *c, const unsigned char *p, size_t mid, uint32_t n)
{
	uint32_t base = (uint32_t)get_le(p + 12, 4);
	if (base >= n)
		return -1;
	const unsigned char *ph = (const unsigned char *)c->whole.buf + c->offs[base];
	size_t pre = get_le(p + REC_HEAD, 4), suf = get_le(p + REC_HEAD + 4, 4);
	size_t pjl = get_le(ph + 8, 4), psl = get_le(ph + 12, 2), ppl = get_le(ph + 14, 2);
	if (pre > pjl || suf > pjl - pre)
		return -1;
	const char *pjson = (const char *)ph + REC_HEAD + psl + ppl;
	jw_reset(&c->cur);
	put_head(&c->cur, (int64_t)get_le(p, 8), (uint32_t)(pre + mid + suf), psl, ppl);
	jw_append(&c->cur, (const char *)ph + REC_HEAD, psl + ppl + pre);
	jw_append(&c->cur, (const char *)p + REC_HEAD + DIFF_HEAD, mid);
	jw_append(&c->cur, pjson + pjl - suf, suf);
	return 0;
}

/* An unpacked batch of the seqs first..last with every record whole (diff records
 * rebuilt) into c->whole, up to the first damaged record (one that does not fit, or a seq
 * outside the batch's): what follows it cannot be trusted. -1: out of memory. */
static int expand_batch(struct replay_ctx *c, const unsigned char *p, const unsigned char *end,
			int64_t first, int64_t last)
{
	jw_reset(&c->whole);
	for (uint32_t n = 0; end - p >= REC_HEAD; n++) {
		size_t jl = get_le(p + 8, 4), sl = get_le(p + 12, 2), pl = get_le(p + 14, 2);
		int64_t seq = (int64_t)get_le(p, 8);
		size_t size = REC_HEAD + sl + pl + jl;
		if (seq < first || seq > last)
			break;
		if (n == c->capoffs) {
			uint32_t cap = c->capoffs ? c->capoffs * 2 : 1024;
			size_t *o = realloc(c->offs, cap * sizeof(*o));
			if (!o)
				return -1;
			c->offs = o;
			c->capoffs = cap;
		}
		c->offs[n] = c->whole.len;
		if (jl & DIFF_BIT) {
			size = REC_HEAD + DIFF_HEAD + (jl & ~(size_t)DIFF_BIT);
			if ((size_t)(end - p) < size || rebuild(c, p, jl & ~(size_t)DIFF_BIT, n))
				break;
			jw_append(&c->whole, c->cur.buf, c->cur.len);
		} else {
			if (sl >= sizeof(((struct event *)0)->session_id) || (size_t)(end - p) < size)
				break;
			jw_append(&c->whole, (const char *)p, size);
		}
		if (c->whole.oom || c->cur.oom)
			return -1;
		p += size;
	}
	return 0;
}

/* The records of an unpacked batch, in seq order, into c->recs: how many (up to the
 * first damaged one: what follows it cannot be trusted), or -1 (out of memory). */
static int index_batch(struct replay_ctx *c, const unsigned char *p, const unsigned char *end)
{
	int n = 0;
	while (end - p >= REC_HEAD) {
		size_t jl = get_le(p + 8, 4), sl = get_le(p + 12, 2), pl = get_le(p + 14, 2);
		if (sl >= sizeof(((struct event *)0)->session_id) ||
		    (size_t)(end - p) < REC_HEAD + sl + pl + jl)
			break;
		if (n == c->cap) {
			int cap = c->cap ? c->cap * 2 : 1024;
			struct rec_at *r = realloc(c->recs, (size_t)cap * sizeof(*r));
			if (!r)
				return -1;
			c->recs = r;
			c->cap = cap;
		}
		c->recs[n++] = (struct rec_at){(int64_t)get_le(p, 8), p};
		p += REC_HEAD + sl + pl + jl;
	}
	if (n > 1)
		qsort(c->recs, (size_t)n, sizeof(*c->recs), by_seq);
	return n;
}

/* Delivers the events of one stored batch after c->last, until c->max have matched. */
static int replay_batch(void *arg, int64_t first_seq, int64_t last_seq, const void *data,
			size_t len)
{
	struct replay_ctx *c = arg;
	const void *raw = data;
	if (batchz_unpack(c->Z, data, len, &raw, &len)) {
		log_error("event log: stored events %lld..%lld are damaged: skipped",
			  (long long)first_seq, (long long)last_seq);
		len = 0;
	}
	if (expand_batch(c, raw, (const unsigned char *)raw + len, first_seq, last_seq))
		return 1;
	const unsigned char *whole = (const unsigned char *)c->whole.buf;
	int nrec = index_batch(c, whole, whole + c->whole.len);
	if (nrec < 0)
		return 1;
	for (int i = 0; i < nrec && c->n < c->max; i++) {
		const unsigned char *p = c->recs[i].p;
		int64_t seq = c->recs[i].seq;
		size_t jl = get_le(p + 8, 4), sl = get_le(p + 12, 2), pl = get_le(p + 14, 2);
		const unsigned char *sid = p + REC_HEAD, *path = sid + sl, *json = path + pl;
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
		event_type_from_json(ev);
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

int64_t evlog_oldest_seq(struct evlog *G)
{
	int64_t oldest = G->ring_n ? G->ring[G->ring_head]->seq : G->seq + 1;
	if (G->S) {
		int64_t st = store_event_min_seq(G->S);
		if (st > 0 && st < oldest)
			oldest = st;
	}
	return oldest;
}

/* Older events come from the store a page at a time, newer ones from the ring. */
static int replay_from_store(struct evlog *G, struct replay_ctx *c, int64_t oldest_ring)
{
	int64_t oldest_store = G->S ? store_event_min_seq(G->S) : 0;
	/* a failing store may hold events only in its log: the database has a gap */
	if (!G->S || oldest_store <= 0 || c->last + 1 < oldest_store || c->last < G->lost ||
	    store_failure(G->S))
		return BUS_RESYNC;
	while (c->last + 1 < oldest_ring && c->n < c->max) {
		int64_t before = c->last;
		int n = store_event_batch_after(G->S, c->last, replay_batch, c);
		if (n < 0)
			return -1;
		if (n == 0 || c->last == before)
			break;
	}
	return 0;
}

int evlog_replay(struct evlog *G, int64_t since, const char *session_id, int descendants,
	       bus_fn fn, void *arg, int max, int64_t *upto)
{
	struct replay_ctx c = {.Z = G->Z, .session_id = session_id, .descendants = descendants,
			       .fn = fn, .arg = arg, .last = since < 0 ? 0 : since, .max = max};
	jw_init(&c.whole);
	jw_init(&c.cur);
	*upto = G->seq;
	if (c.last >= G->seq)
		return 0;
	int64_t oldest_ring = G->ring_n ? G->ring[G->ring_head]->seq : G->seq + 1;
	if (c.last + 1 < oldest_ring) {
		int rc = replay_from_store(G, &c, oldest_ring);
		free(c.recs);
		jw_free(&c.whole);
		jw_free(&c.cur);
		free(c.offs);
		if (rc < 0)
			return rc;
		if (c.n >= max) {
			*upto = c.last;
			return c.n;
		}
	}
	for (size_t i = 0; i < G->ring_n; i++) {
		struct event *ev = G->ring[(G->ring_head + i) % G->ring_size];
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

int64_t evlog_next_seq(struct evlog *G)
{
	reserve(G, G->seq + 1);
	return G->seq + 1;
}

void evlog_append(struct evlog *G, struct event *ev)
{
	G->seq = ev->seq;
	if (!G->S) {
		ring_push(G, ev);
		return;
	}
	store_begin(G->S); /* a batch is open: its commit persists this event */
	ring_push(G, ev);
	batch_add(G, ev);
	if (G->bn >= EVLOG_BATCH_MAX || G->bbytes >= EVLOG_BATCH_BYTES)
		evlog_persist(G);
}
