/* agentgate client library (libagentgate-client), version 1: a WebSocket JSON-RPC client
 * of `agentgate serve` for programs that build on it. It connects to /ws, sends calls and
 * hands their answers to completion callbacks, follows one event subscription (a session,
 * or its whole tree) and keeps it alive: when the connection drops it reconnects with
 * backoff and subscribes again from the last sequence number it delivered, so the event
 * callback sees every event once, in order — or an explicit `resync` when the server no
 * longer has what was missed. docs/API.md describes the methods and the events.
 *
 * It depends on the C standard headers alone (the library itself uses libwebsockets and
 * cJSON). Link with `pkg-config --libs agentgate-client`, or in CMake
 * find_package(agentgate-client) and agentgate::client (agentgate::client_static).
 *
 * Threads. Each client owns one service thread, started by ag_client_open, that does all
 * its network work and runs every callback — one at a time, never two at once, never
 * after ag_client_close has returned. The other functions may be called from any thread,
 * callbacks included (they queue the work and wake the service thread), except where a
 * function says otherwise.
 *
 * Ownership. Strings passed in are copied before the function returns. Pointers handed
 * to a callback are borrowed for that call only: copy what you keep.
 *
 * Errors. Functions return 0 or a negative AG_CLIENT_E_* code. A call's completion
 * carries either a result or an error: a JSON-RPC code from the server (-32602 bad
 * params, -32004 not found, ...: docs/API.md) with its message, or an AG_CLIENT_E_* code
 * from the library.
 */
#ifndef AGENTGATE_CLIENT_H
#define AGENTGATE_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AG_CLIENT_VERSION_MAJOR 1
#define AG_CLIENT_VERSION_MINOR 0

#if defined(__GNUC__)
#define AG_CLIENT_API __attribute__((visibility("default")))
#else
#define AG_CLIENT_API
#endif

enum ag_client_error {
	AG_CLIENT_OK = 0,
	AG_CLIENT_E_INVALID = -1,    /* a bad argument (the message names it) */
	AG_CLIENT_E_NOMEM = -2,      /* out of memory */
	AG_CLIENT_E_CONNECTION = -3, /* the connection dropped after the call was sent and
				      * before its answer: it may or may not have run */
	AG_CLIENT_E_CLOSED = -4,     /* ag_client_close ended it before it was answered */
	AG_CLIENT_E_FAILED = -5,     /* the client gave up connecting (ag_client_opts.give_up_ms,
				      * or the server refused the token or the origin) */
	AG_CLIENT_E_THREAD = -6,     /* called from a thread where it may not be */
	AG_CLIENT_E_PROTOCOL = -7,   /* the server answered something that is not JSON-RPC */
};

/* The connection's life, as the state callback reports it. */
enum ag_client_state {
	AG_CLIENT_CONNECTING = 1,   /* an attempt starts (the first, or a reconnect) */
	AG_CLIENT_CONNECTED = 2,    /* the WebSocket is open; queued calls go out now */
	AG_CLIENT_DISCONNECTED = 3, /* it dropped or an attempt failed (why says how); the
				     * next attempt follows after a backoff */
	AG_CLIENT_FAILED = 4,       /* no more attempts: a 401/403, or give_up_ms passed
				     * without a connection. Calls fail with AG_CLIENT_E_FAILED;
				     * only ag_client_close remains to be called */
	AG_CLIENT_CLOSED = 5,       /* ag_client_close: the last callback */
};

/* An event, as the server sent it, with the tree envelope read out. Borrowed for the
 * callback. String fields are NULL when the event does not carry them. */
struct ag_client_event {
	uint32_t size;          /* sizeof(struct ag_client_event) as the library knew it */
	int64_t seq;            /* the global sequence number; -1 when the event has none
				 * (server.shutdown) */
	const char *type;       /* "message.part.delta", "session.idle", ..., or "resync" */
	const char *session_id; /* the session it is about */
	const char *root_id;    /* the root of its tree */
	const char *parent_id;  /* its parent session (a subagent's) */
	const char *parent_tool_call_id; /* the task call that spawned that session */
	const char *turn_id;    /* where a turn applies */
	int depth;              /* 0 for a root session, 1 for its children, ... */
	const char *json;       /* the whole event object: {"type","properties","seq",...} */
	size_t len;             /* strlen(json) */
};

/* A call's outcome. Borrowed for the callback. */
struct ag_client_result {
	uint32_t size;       /* sizeof(struct ag_client_result) as the library knew it */
	int code;            /* 0: json holds the result; else the error's code */
	const char *message; /* the error's message ("" on success) */
	const char *json;    /* the result as JSON text ("null" on error) */
	size_t len;          /* strlen(json) */
};

struct ag_client;

/* Service thread. Called once per call, with the result or the error. */
typedef void (*ag_client_result_fn)(void *user, const struct ag_client_result *r);
/* Service thread. One event of the subscription; events are delivered once each, in
 * increasing seq order (a reconnect replays what was missed; what was seen is dropped).
 * A "resync" event ({"type":"resync","properties":{"since","oldest","last"}}) means the
 * server no longer has every event after the client's last one — it was away too long,
 * or the server's history was reset: reload what you display (session.messages), then
 * events continue from its seq. */
typedef void (*ag_client_event_fn)(void *user, const struct ag_client_event *ev);
/* Service thread. The connection changed state; why (borrowed, may be "") says why for
 * DISCONNECTED and FAILED. */
typedef void (*ag_client_state_fn)(void *user, enum ag_client_state st, const char *why);

struct ag_client_opts {
	uint32_t size;        /* sizeof(struct ag_client_opts): set it (fields only grow) */
	const char *url;      /* ws://, wss://, http:// or https://HOST[:PORT][/PATH]: the
			       * gateway, or its WebSocket endpoint; "/ws" is added to a path
			       * that does not end with it. Required. */
	const char *token;    /* sent as "Authorization: Bearer TOKEN", or NULL */
	ag_client_state_fn on_state; /* NULL: not told */
	void *user;           /* handed to on_state */
	int reconnect_min_ms; /* first backoff (0: 100); doubled per failed attempt, ±20 % */
	int reconnect_max_ms; /* longest backoff (0: 5000) */
	int give_up_ms;       /* stop trying after this long without a connection
			       * (0: never) */
	int ping_s;           /* ping an idle connection after this many seconds and drop
			       * it when nothing came back for twice as long (0: 20) */
	int tls_insecure;     /* wss: accept self-signed, expired or misnamed certificates */
	const char *tls_ca_file; /* wss: a PEM file of CAs to trust instead of the system's */
	int keep_lws_log;     /* 0: libwebsockets' own log is set to errors only, which is
			       * process-wide (lws_set_log_level); 1: leave it alone */
};

/* Starts a client: copies opts, starts the service thread, and begins connecting (the
 * state callback follows; calls made meanwhile are queued). NULL on a bad option (err,
 * when given, names it) or when the thread or libwebsockets cannot start. Any thread. */
AG_CLIENT_API struct ag_client *ag_client_open(const struct ag_client_opts *opts, char *err,
					       size_t errlen);

/* Sends a JSON-RPC call: method ("session.create", ...) with params_json (a JSON
 * object's text, or NULL for none). While disconnected it waits in a queue and goes out
 * once connected; a call already sent when the connection drops is not sent again (it
 * may have run: session.prompt takes a client-chosen "messageID" that makes a retry
 * safe) and completes with AG_CLIENT_E_CONNECTION. done (may be NULL) runs once, on the
 * service thread. Returns 0 (done will run), or AG_CLIENT_E_INVALID (the method or the
 * params are not what is expected; done will not run), AG_CLIENT_E_NOMEM,
 * AG_CLIENT_E_CLOSED after ag_client_close began, AG_CLIENT_E_FAILED after FAILED.
 * Any thread. */
AG_CLIENT_API int ag_client_call(struct ag_client *c, const char *method,
				 const char *params_json, ag_client_result_fn done, void *user);

/* What to follow. session_id NULL: every session's events. */
struct ag_client_subscription {
	uint32_t size;          /* sizeof(struct ag_client_subscription) */
	const char *session_id; /* a session, or NULL for all */
	int descendants;        /* 1: its whole tree (children, grandchildren, ...) */
	int64_t since;          /* replay the events after this seq first; -1: from now on */
	ag_client_event_fn on_event; /* required */
	void *user;             /* handed to on_event */
};

/* Follows sub (replacing any earlier subscription of this client: from the answer on,
 * only the new one's events arrive). It stays in force across reconnects, resuming
 * from the last seq delivered. done (may be NULL) runs once with the server's first
 * answer — {"seq": N}, the newest seq then — or its error (an unknown session: -32004,
 * and the subscription ends), or AG_CLIENT_E_CLOSED / AG_CLIENT_E_FAILED. Should a
 * later re-subscription be refused (the session was deleted meanwhile), the event
 * callback gets a "resync" event whose properties carry "error" and the subscription
 * ends. Returns 0, AG_CLIENT_E_INVALID (no on_event), AG_CLIENT_E_NOMEM,
 * AG_CLIENT_E_CLOSED or AG_CLIENT_E_FAILED. Any thread. */
AG_CLIENT_API int ag_client_subscribe(struct ag_client *c, const struct ag_client_subscription *sub,
				      ag_client_result_fn done, void *user);

/* Ends the subscription: no event is delivered once the service thread has taken this
 * (from a callback on the service thread: at once). 0, or AG_CLIENT_E_CLOSED. Any
 * thread. */
AG_CLIENT_API int ag_client_unsubscribe(struct ag_client *c);

/* The seq of the last event delivered (-1 before the first): a program that keeps it
 * can pass it as `since` after a restart of its own. Any thread. */
AG_CLIENT_API int64_t ag_client_last_seq(struct ag_client *c);

/* Closes the connection (a WebSocket close, bounded to one second), completes every
 * queued or unanswered call with AG_CLIENT_E_CLOSED, reports AG_CLIENT_CLOSED, stops
 * the service thread and frees c. No callback runs after it returns. Not from a
 * callback (the service thread cannot wait for itself): AG_CLIENT_E_THREAD, and
 * nothing happens. NULL: 0. Any other thread. */
AG_CLIENT_API int ag_client_close(struct ag_client *c);

/* A text for an AG_CLIENT_E_* code ("" for others). */
AG_CLIENT_API const char *ag_client_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif
