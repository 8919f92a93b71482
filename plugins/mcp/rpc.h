/* rpc: MCP's JSON-RPC 2.0 — the client's messages (initialize, tools/list, tools/call,
 * notifications/cancelled, answers to the server's requests), reading what a server
 * sends, and the two framings the transports need: newline-delimited lines (stdio's
 * messages, SSE's fields) and SSE events. Pure (cJSON only), so unit-tested alone; any
 * thread, no state beyond the caller's structs. Every built message is one line of
 * JSON (cJSON escapes newlines inside strings), malloc'd, freed by the caller. */
#ifndef MCP_RPC_H
#define MCP_RPC_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define RPC_PROTOCOL "2025-06-18" /* the version asked for; older ones are accepted */

/* ---- building ---- */

/* {"jsonrpc":"2.0","id":id,"method":method[,"params":params]}; params is taken. */
char *rpc_request(int64_t id, const char *method, cJSON *params);
char *rpc_notification(const char *method, cJSON *params);
/* The answer to a server's request id (copied): a result (taken) or an error. */
char *rpc_result(const cJSON *id, cJSON *result);
char *rpc_error(const cJSON *id, int code, const char *message);

cJSON *rpc_initialize_params(const char *client_version);
cJSON *rpc_list_params(const char *cursor); /* cursor may be NULL */
/* args_json: the arguments object (NULL or unparsable: {}). progress: the token asked
 * for progress notifications, or < 0 for none. */
cJSON *rpc_call_params(const char *tool, const char *args_json, int64_t progress);
cJSON *rpc_cancel_params(int64_t id, const char *reason);

/* Is v a protocol version this client speaks? */
int rpc_version_ok(const char *v);

/* ---- reading ---- */

enum rpc_kind { RPC_INVALID, RPC_RESPONSE, RPC_REQUEST, RPC_NOTIFICATION };
struct rpc_msg {
	enum rpc_kind kind;
	int64_t id;            /* a response's numeric id, else -1 */
	const cJSON *id_json;  /* a request's or response's id as sent */
	const char *method;    /* requests and notifications */
	const cJSON *params, *result, *error; /* borrowed from the message */
};
/* Classifies one parsed message (borrowed); RPC_INVALID when it is none of them. */
enum rpc_kind rpc_read(const cJSON *msg, struct rpc_msg *out);
/* An error object as "message (code N)". */
void rpc_error_text(const cJSON *error, char *buf, size_t n);

/* ---- framing ---- */

/* Grows *buf (capacity *cap) to hold need bytes: 0, or -1 out of memory (unchanged). */
int buf_reserve(char **buf, size_t *cap, size_t need);

/* Splits a byte stream into lines. A line longer than max is dropped whole (counted
 * in ->dropped) rather than grown without bound. */
struct linebuf {
	char *buf;
	size_t len, cap, max;
	int skipping;  /* inside a line that was too long */
	unsigned dropped;
};
typedef void (*line_fn)(void *user, char *line, size_t len);
/* Feeds n bytes; calls fn for each complete line (NUL-terminated, without its \n or a
 * trailing \r; fn may modify it). Returns 0, or -1 when out of memory. */
int linebuf_feed(struct linebuf *b, const char *data, size_t n, line_fn fn, void *user);
/* At EOF: hands over an unterminated last line, if any. */
void linebuf_flush(struct linebuf *b, line_fn fn, void *user);
void linebuf_free(struct linebuf *b);

/* Server-Sent Events: the data of each event (multi-line data joined by \n). Events
 * whose type is not "message" are skipped. */
struct sse {
	struct linebuf lines;
	char *data;
	size_t len, cap;
	int other_type;
	void (*on_event)(void *user, const char *data, size_t len);
	void *user;
};
void sse_init(struct sse *s, size_t max, void (*on_event)(void *, const char *, size_t),
	      void *user);
int sse_feed(struct sse *s, const char *data, size_t n);
void sse_free(struct sse *s);

#endif
