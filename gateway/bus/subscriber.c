#include "subscriber.h"
#include "bus_int.h"
#include "jw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for one more reference: the ring doubles (and is unrolled) when full. */
static int grow(struct subscriber *s)
{
	if (s->n < s->cap)
		return 0;
	size_t cap = s->cap ? s->cap * 2 : 64;
	struct event **q = malloc(cap * sizeof(*q));
	if (!q)
		return -1;
	for (size_t i = 0; i < s->n; i++)
		q[i] = s->q[(s->head + i) % s->cap];
	free(s->q);
	s->q = q;
	s->head = 0;
	s->cap = cap;
	return 0;
}

static void cut_off(struct subscriber *s, int why)
{
	if (!s->overflow)
		bus_note_dropped(s->B);
	s->overflow = why;
}

static void push(struct subscriber *s, struct event *ev)
{
	if (grow(s)) {
		cut_off(s, 1); /* out of memory: as if over the byte bound */
		return;
	}
	event_ref(ev);
	s->q[(s->head + s->n) % s->cap] = ev;
	s->n++;
	s->bytes += ev->len;
	s->queued_seq = ev->seq;
}

static void on_live(void *arg, struct event *ev)
{
	struct subscriber *s = arg;
	int notice = ev->type && !strcmp(ev->type, "resync"); /* the log lost events: all hear it */
	if (s->catching_up || s->overflow ||
	    (!notice && !event_matches(ev, s->session_id, s->descendants)))
		return;
	struct bus_sub_limits l = bus_sub_limits(s->B);
	if (s->bytes + ev->len > l.max_bytes)
		cut_off(s, 1);
	else if (s->n && ev->time - s->q[s->head]->time > l.max_behind_ms)
		cut_off(s, 2);
	int was_empty = s->n == 0;
	if (!s->overflow)
		push(s, ev);
	if (was_empty || s->overflow)
		s->wake(s);
}

static void on_replay(void *arg, struct event *ev)
{
	push(arg, ev);
}

int subscriber_start(struct subscriber *s, struct bus *B, const char *session_id,
		     int descendants, int64_t since, void (*wake)(struct subscriber *s))
{
	memset(s, 0, sizeof(*s));
	if (grow(s))
		return -1;
	s->B = B;
	s->session_id = session_id && *session_id ? strdup(session_id) : NULL;
	s->descendants = descendants;
	s->wake = wake;
	s->queued_seq = s->sent_seq = since < 0 ? bus_last_seq(B) : since;
	s->catching_up = since >= 0 && since < bus_last_seq(B);
	if (s->catching_up && since + 1 < bus_oldest_seq(B)) {
		s->resync = event_resync(since, bus_oldest_seq(B), bus_last_seq(B));
		s->catching_up = 0;
		s->queued_seq = s->sent_seq = bus_last_seq(B);
	}
	bus_subscribe(B, &s->sub, on_live, s);
	return 0;
}

void subscriber_stop(struct subscriber *s)
{
	if (!s->q)
		return;
	bus_unsubscribe(s->B, &s->sub);
	while (s->n) {
		event_unref(s->q[s->head]);
		s->head = (s->head + 1) % s->cap;
		s->n--;
	}
	event_unref(s->resync);
	free(s->q);
	free(s->session_id);
	memset(s, 0, sizeof(*s));
}

/* Fills the queue with the next page of history; leaves catch-up once it is current. */
static void refill(struct subscriber *s)
{
	int64_t upto;
	int rc = bus_replay(s->B, s->queued_seq, s->session_id, s->descendants, on_replay, s,
			    SUB_PAGE, &upto);
	if (rc < 0) { /* BUS_RESYNC, or the store could not be read: say so, skip nothing silently */
		s->resync = event_resync(s->queued_seq, bus_oldest_seq(s->B), bus_last_seq(s->B));
		upto = bus_last_seq(s->B);
	}
	s->queued_seq = upto;
	if (upto >= bus_last_seq(s->B))
		s->catching_up = 0;
}

struct event *subscriber_next(struct subscriber *s)
{
	if (s->resync) {
		struct event *ev = s->resync;
		s->resync = NULL;
		return ev;
	}
	if (!s->n && s->catching_up)
		refill(s);
	if (s->resync)
		return subscriber_next(s);
	if (!s->n)
		return NULL;
	struct event *ev = s->q[s->head];
	s->head = (s->head + 1) % s->cap;
	s->n--;
	s->bytes -= ev->len;
	return ev;
}

void subscriber_why(const struct subscriber *s, char *buf, size_t n)
{
	struct bus_sub_limits l = bus_sub_limits(s->B);
	if (s->overflow == 2)
		snprintf(buf, n, "more than %lld ms behind", (long long)l.max_behind_ms);
	else
		snprintf(buf, n, "over %zu bytes of events queued", l.max_bytes);
}

int subscriber_pending(const struct subscriber *s)
{
	return s->n > 0 || s->catching_up || s->resync;
}
