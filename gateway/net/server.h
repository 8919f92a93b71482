/* server: `agentgate serve` — one libwebsockets vhost whose single protocol serves the
 * HTTP routes, SSE (GET /event), static files (web/) and the WebSocket JSON-RPC API at
 * /ws. This header is shared by server.c (lifecycle, auth, limits), http.c and ws.c.
 * Loop thread only. */
#ifndef AG_SERVER_H
#define AG_SERVER_H
#include <libwebsockets.h>

#include "api.h"
#include "forward.h"
#include "door.h"
#include "engine.h"
#include "subscriber.h"

#define MAX_BODY (1024 * 1024)
#define MAX_WS_MESSAGE (1024 * 1024)
#define MAX_CONNECTIONS 1024 /* default of config server.max_connections */
#define HEARTBEAT_MS 10000 /* default of config server.sse_heartbeat_ms */
#define MAX_RPC_QUEUE 1024
/* Request heads lws can read at once beyond the connection limit: held requests,
 * streams and WebSockets give their header table back, so these are always enough
 * to read a request and answer 503 when the server is full. */
#define HEAD_SLACK 64
/* The front door (door.c) passes request heads of at most DOORCHECK_HEAD_MAX bytes and
 * DOORCHECK_FIELDS_MAX lines; lws's header table must hold any of them: it keeps 8
 * bytes more per unknown header and one more per query argument. */
#define HEAD_BYTES (DOORCHECK_HEAD_MAX + 1024)
#define HEAD_TIMEOUT_S 5   /* to send a whole request head, or lose the header slot */
/* An idle keep-alive connection is kept this long, and every answer says so
 * (keep-alive: timeout=): clients' pools (Node's fetch: 4 s) let theirs go first, so a
 * request never meets the server's close on a connection the client thought alive. */
#define KEEPALIVE_S 65
#define AG_STR_(x) #x
#define AG_STR(x) AG_STR_(x)

enum conn_kind { C_NONE, C_HTTP, C_SSE, C_WS };

struct frame {
	struct frame *next;
	size_t len;
	unsigned char buf[]; /* LWS_PRE bytes of headroom, then len bytes */
};

struct ws_wait;

struct conn {
	struct server *srv;
	struct lws *wsi;
	enum conn_kind kind;
	int counted;
	struct conn *next, *prev;  /* the server's list, for shutdown */
	/* HTTP request */
	char method[8];
	char path[1024];
	char *body;
	size_t body_len;
	int body_too_big;
	int handled;               /* this request was answered (or is being) */
	int expect_body, body_done, draining;
	/* HTTP response */
	char *resp;
	size_t resp_len, resp_off;
	int responding;
	int close_after;
	/* POST /session/{id}/message waiting for its turn */
	struct api_wait aw;
	/* a request another cluster node runs (forward.h) */
	struct fwd_call fwd;
	const struct api_route *fwd_route;
	/* its answer, held until the event streams have written the turn's events (http.c) */
	char *answer;
	size_t answer_len;
	int64_t answer_seq;
	uint64_t answer_mark;      /* on the NATS bus: this node's events up to the turn's end */
	int answer_unsettled;      /* ... not all delivered here yet (bus_settled) */
	struct timer answer_t;
	/* SSE / WS events */
	struct subscriber sub;
	int subscribed;
	int global;                /* GET /global/event: each event as {directory, payload} */
	struct timer hb;
	int hb_due;
	struct loop_watch hup;     /* held: lws does not read it, server.c watches for EOF */
	int closing;               /* shutdown: send the final event, then close */
	int bye_sent;
	/* WS */
	char *rx;
	size_t rx_len;
	struct frame *out_head, *out_tail;
	int out_n;
	struct ws_wait *waits;
};

struct server {
	struct engine *E;
	struct plugins *P;
	struct loop *L;
	struct door *door;         /* owns the listening socket */
	const char *token;
	const char *bind_host;     /* --host */
	char **allowed_hosts;      /* config server.allowed_hosts (owned) */
	int nallowed;
	char web_root[4096];
	int nconns;
	int max_conns;
	int heartbeat_ms;
	struct bus_sub_limits sub_limits; /* server.subscriber_max_bytes, _max_behind_ms */
	int shutting_down;
	int answers_held;  /* connections with an answer held for the event streams */
	lws_retry_bo_t idle; /* WS ping / hang-up policy; lives as long as the context */
	struct conn conns; /* list sentinel */
	struct timer shutdown_timer;
	struct forward *fwd; /* a cluster node's forwarder (forward.h), or NULL */
	struct timer drain_timer; /* a cluster node's drain: its bound (serve.c) */
	struct timer drained_t;   /* ... and its end, once forwarded requests are answered */
	struct bus_sub answers_sub; /* while answers are held: events may settle them */
	struct timer answers_check;
};

/* server.c */
/* Checks a WebSocket upgrade (path, subprotocol, access, token, limits): 0 to accept,
 * else the answer was written. */
int server_confirm_upgrade(struct server *S, struct lws *wsi);
int server_authorized(struct server *S, struct lws *wsi);
/* Cross-site and DNS-rebinding protection for every request and upgrade: Host must
 * name this server (its bind address, localhost, 127.0.0.1, ::1, server.allowed_hosts)
 * and a browser's request must come from this server's own origin. 0, or -1 with why
 * (a message naming the header) for a 403. */
int server_check_access(struct server *S, struct lws *wsi, char *why, size_t n);
void server_track(struct server *S, struct conn *c);
void server_untrack(struct server *S, struct conn *c);
/* A held request or stream (lws does not read an h1 connection while it answers) is
 * closed as soon as its client is gone: FIN, RST or half-close. */
void server_watch(struct server *S, struct conn *c);
void server_unwatch(struct conn *c); /* idempotent */
/* Maps an engine error to an HTTP status and an error name. */
int server_status_of(const struct err *e, const char **name);
void server_error_json(struct jw *w, const char *name, const char *msg);

/* The loop (lws's header pool, timeouts, WS pings every ping_s) and the front door
 * listening on host:port for S (max_conns set) into S->L and S->door. -1 with e set when
 * it cannot listen. */
int server_listen(struct server *S, const char *host, int port, int ping_s, struct err *e);
/* Closes the door and the loop (after server_detach_all). */
void server_close(struct server *S);
/* Refuses a non-loopback bind without a token unless insecure. */
int server_check_bind(const char *host, const char *token, int insecure, struct err *e);
void server_shutdown(struct server *S);
void server_maybe_done(struct server *S);
/* Detaches every connection from the engine before it is destroyed. */
void server_detach_all(struct server *S);

/* http.c */
int http_callback(struct conn *c, enum lws_callback_reasons reason, void *in, size_t len);
/* Lets go of everything the connection holds in the engine (idempotent). */
void http_detach(struct conn *c);
/* Held answers watch the bus (http.c): from the engine's start to the server's end. */
void http_start(struct server *S);
void http_stop(struct server *S);

/* metrics.c: GET /metrics, Prometheus' text format, into w. 0, or -1 out of memory. */
int metrics_write(struct server *S, struct jw *w);

/* ws.c */
int ws_callback(struct conn *c, enum lws_callback_reasons reason, void *in, size_t len);
void ws_detach(struct conn *c);

#endif
