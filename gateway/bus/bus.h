/* bus: every state change becomes one event with a global sequence number, encoded once
 * into JSON and handed to every subscriber (WS, SSE, NDJSON, hooks). The event log
 * (evlog.h) numbers and keeps them — a ring, and the store a batch per commit — so a
 * subscriber can resume from a sequence number or learn that it must resync. Nothing
 * here knows who listens. Loop thread only, except event_ref/event_unref. */
#ifndef AG_BUS_H
#define AG_BUS_H
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "jw.h"

struct store;
struct loop;
struct natslink;
struct err;

/* The tree envelope every event carries at its top level. Strings borrowed. */
struct bus_env {
	const char *session_id;
	const char *root_id;
	const char *parent_id;           /* parent session or NULL */
	const char *parent_tool_call_id; /* the task call that spawned the session or NULL */
	const char *turn_id;             /* NULL where no turn applies */
	const char *path;                /* "ses_root/ses_child/..." ancestry incl. itself */
	int depth;
};

/* The longest event type, in bytes. */
#define EVENT_TYPE_MAX 47

/* An encoded event, shared by reference between subscribers' queues. The reference
 * count is atomic and the event owns its strings, so a reference may be handed to
 * another thread; the event is immutable once published. */
struct event {
	atomic_int refs;
	int64_t seq;
	int64_t time; /* ms since 1970, when published */
	const char *type; /* type_buf, or a static string (a resync notice) */
	char type_buf[EVENT_TYPE_MAX + 1];
	char *path;       /* ancestry for tree filters (owned) */
	char session_id[48];
	int own;          /* 1: THIS node published it (always, on the local bus) */
	size_t len;
	char json[]; /* {"type":..,"properties":{..},"seq":..,envelope fields} */
};

void event_ref(struct event *ev);
void event_unref(struct event *ev);

/* 1 for a type in the engine's own namespaces (session.*, message.*, server.*,
 * permission.*, todo.*, command.*, resync): clients act on those, so a custom event may
 * not take one. */
int event_type_reserved(const char *type);

/* Does ev belong to session_id (or, with descendants, to its subtree)? NULL id = all. */
int event_matches(const struct event *ev, const char *session_id, int descendants);

typedef void (*bus_fn)(void *arg, struct event *ev);

struct bus_sub {
	bus_fn fn;
	void *arg;
	struct bus_sub *next, *prev;
};

struct bus;

/* ring_size: events kept in memory for replay; keep: events kept in the store. */
struct bus *bus_create(struct store *S, size_t ring_size, int64_t keep);
/* The bus of a node among several (natslog.h): events go to the JetStream stream
 * AGENTGATE on the NATS server at url (nats://HOST:PORT), which numbers them; each node
 * delivers every node's events in stream order. keep: the stream's max messages;
 * max_pending: bytes of this node's events waiting for NATS before new ones are dropped
 * (0: BUS_NATS_PENDING_MAX). node names this node. NULL with e filled. */
#define BUS_NATS_PENDING_MAX ((size_t)64 << 20)
struct bus *bus_create_nats(struct loop *L, const char *url, const char *node, size_t ring_size,
			    int64_t keep, size_t max_pending, struct err *e);
void bus_destroy(struct bus *B);
/* The NATS bus's connection, for requests between nodes (natslink.h); NULL on the local
 * bus. */
struct natslink *bus_natslink(struct bus *B);
/* What /metrics and /global/health say of the NATS bus: 0 and *out filled, or -1 on the
 * local bus. */
struct bus_nats_info {
	const char *url;
	const char *failure; /* NULL while connected */
	uint64_t published;  /* this node's events stored by JetStream */
	uint64_t dropped;    /* this node's events dropped: the buffer was full */
	size_t pending_bytes; /* this node's events waiting for JetStream's ack */
	uint64_t consumer_restarts; /* the ordered consumer re-created (reconnects, gaps) */
	uint64_t duplicates; /* deliveries skipped as already delivered */
	uint64_t reconnects;
	int consuming;       /* the consumer runs: the stream's new events reach this node */
};
int bus_nats_info(struct bus *B, struct bus_nats_info *out);
/* Events this node published that its subscribers have not had yet: always 0 on the
 * local bus (delivery is at once); on the NATS bus, those on their way through
 * JetStream. State read now (a snapshot) reflects them while bus_last_seq does not: a
 * snapshot's seq means "every event up to it" only when this is 0. */
int64_t bus_unsettled(struct bus *B);
/* A mark of the events this node published so far, and whether every one of them has
 * been delivered here (always, on the local bus): then bus_last_seq covers them. */
uint64_t bus_mark(struct bus *B);
int bus_settled(struct bus *B, uint64_t mark);

/* Building one event: begin writes the head into w, the caller writes the properties
 * object, publish completes, sequences and delivers it. Returns the seq or -1. On the
 * NATS bus the stream numbers it and it is delivered when it comes back: 0 (accepted),
 * or -1 (out of memory). */
void bus_begin(struct bus *B, struct jw *w, const char *type);
int64_t bus_publish(struct bus *B, struct jw *w, const char *type, const struct bus_env *env);

/* Subscribers see every event published after they join; they filter themselves. */
void bus_subscribe(struct bus *B, struct bus_sub *s, bus_fn fn, void *arg);
void bus_unsubscribe(struct bus *B, struct bus_sub *s);

int64_t bus_last_seq(struct bus *B);


#define BUS_RESYNC (-2)

/* Calls fn for the matching events with seq > since, oldest first, from the store and
 * the ring, at most max of them; *upto is the last seq examined (bus_last_seq when all
 * were). Returns how many matched, BUS_RESYNC when events after since are no longer
 * kept (the caller tells its client to resync), or -1 on a store error. */
int bus_replay(struct bus *B, int64_t since, const char *session_id, int descendants,
	       bus_fn fn, void *arg, int max, int64_t *upto);
/* The oldest seq still replayable. */
int64_t bus_oldest_seq(struct bus *B);

/* What one subscriber's live queue may hold before it is cut off (subscriber.h): its
 * events' JSON bytes, and the time between its oldest unsent event and the newest. */
#define BUS_SUB_MAX_BYTES (64u << 20)
#define BUS_SUB_MAX_BEHIND_MS 15000
struct bus_sub_limits {
	size_t max_bytes;      /* 0: BUS_SUB_MAX_BYTES */
	int64_t max_behind_ms; /* 0: BUS_SUB_MAX_BEHIND_MS */
};
void bus_set_sub_limits(struct bus *B, const struct bus_sub_limits *l);
struct bus_sub_limits bus_sub_limits(const struct bus *B);

/* A subscriber fell too far behind and is being cut off (subscriber.c); how many were,
 * since the start (GET /metrics). */
void bus_note_dropped(struct bus *B);
uint64_t bus_dropped(struct bus *B);

#endif
